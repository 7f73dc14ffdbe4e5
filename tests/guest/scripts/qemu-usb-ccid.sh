# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest script: the kit's own check, with QEMU's built-in CCID reader
# (usb-ccid, VID:PID 08e6:4433, listed in libccid) and its emulated CAC
# card (ccid-card-emulated).  Run by selftest-qemu-ccid.sh.
#
# Shows: the kernel enumerates the reader, stock pcscd + libccid list it,
# the ATR reaches opensc-tool, and OpenSC's PKCS#11 module sees the CAC
# token and its three certificates.

VID=08e6
PID=4433

if usb_wait $VID $PID 30; then
	metric usb_enumerated_ms "$(uptime_ms)" ms
	check_grep usb-enumerated 'class=0b' usb_describe $VID $PID
else
	fail usb-enumerated "no USB device $VID:$PID after 30 s"
	exit 1
fi

if ! pcscd_start; then
	fail pcscd-start "pcscd did not start"
	exit 1
fi
check_grep pcscd-reader '^reader=.*' ccid-guest-tool -t 20000 wait-reader
check_grep atr '^atr=3B' ccid-guest-tool -t 20000 atr &&
	metric boot_to_atr_ms "$(uptime_ms)" ms
# libccid claims the interface through usbfs once pcscd opened the reader.
check_grep usb-claimed 'driver=usbfs' usb_describe $VID $PID

check_grep opensc-atr '^3[Bb]' opensc-tool -a
check_grep opensc-readers 'Yes' opensc-tool -l

# QEMU 7.2's usb-ccid owes a zero-length packet after every answer that
# fills whole 64-byte packets.  Behind UHCI/EHCI, which move one packet at
# a time, the ZLP ends that transfer; behind qemu-xhci the whole answer
# already left in one short transfer and the ZLP arrives as the (empty)
# answer to the next command: libccid reports "Not enough data received:
# 0 bytes" and the session dies.  Not a kit problem: see docs/guest-kit.md.
if [ "${CCIDG_CONTROLLER:-}" = xhci ]; then
	for t in pkcs11-token pkcs11-objects pkcs11-certs cert-id-cert \
		cert-signing-cert cert-encryption-cert apdu-select bench; do
		skip "$t" "QEMU 7.2 usb-ccid ZLP bug behind qemu-xhci"
	done
	exit 0
fi

check_grep pkcs11-token 'token label' pkcs11-tool -L
check_grep pkcs11-objects 'Certificate Object' pkcs11-tool -O

ncerts=$(grep -c 'Certificate Object' /tmp/pkcs11-objects.log)
if [ "$ncerts" -eq 3 ]; then
	pass pkcs11-certs "3 certificate objects"
else
	fail pkcs11-certs "$ncerts certificate objects, expected 3"
fi
for nick in id-cert signing-cert encryption-cert; do
	if grep -q "CN=$nick" /tmp/pkcs11-objects.log; then
		pass "cert-$nick" "subject CN=$nick"
	else
		fail "cert-$nick" "no certificate with CN=$nick"
	fi
done

# A raw APDU through the whole stack: SELECT the CAC's ACA applet by AID.
# The ACA answers 61xx (T=0: response waiting) or 9000.
check apdu-select ccid-guest-tool -t 20000 apdu '00A4040007A0000000790300=*9000|*61..'
check_grep bench '^bench ' ccid-guest-tool -t 60000 bench 50 '00A4040007A0000000790300=*9000|*61..' &&
	metric usb_ccid_apdus_per_s "$(sed -n 's/.*apdus_per_s=\([0-9.]*\).*/\1/p' /tmp/bench.log)" apdu/s

[ "$(failures)" -eq 0 ] || pcscd_log
