# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest script of test-first-run.sh: what a new user sees.  The host ran
# `ccid-agent serve` with no arguments and started QEMU with the `qemu:`
# line it printed, verbatim.  Nothing in this guest is edited: libccid's
# list is checked to be the package's, pcscd runs as shipped.
#
# From the host (/ccid-test/params): CERT_CN1..3, the embedded virtual
# card's certificate names.

. /ccid-test/params
T=ccid-guest-tool

if usb_wait $CCID_VID $CCID_PID 30; then
	pass usb-enumerated "$(usb_describe $CCID_VID $CCID_PID | head -n 1)"
else
	fail usb-enumerated "no USB device $CCID_VID:$CCID_PID after 30 s"
	exit 1
fi
ccid_stock_list $CCID_VID $CCID_PID
pcscd_start || { fail pcscd-start "pcscd did not start"; exit 1; }
check_grep reader '^reader=SCM Microsystems Inc\. SCR 335 \[ccid-emu\] \([0-9A-F]{8}\) 00 00$' \
	$T -t 20000 wait-reader 1
R=$(sed -n 's/^reader=//p' /tmp/reader.log | head -n 1)
check_grep card '^atr=3B' $T -r "$R" -t 20000 atr &&
	metric boot_to_atr_ms "$(uptime_ms)" ms
check_grep pkcs11-objects 'Certificate Object' pkcs11-tool --slot-description "$R" -O
n=$(grep -c 'Certificate Object' /tmp/pkcs11-objects.log)
if [ "$n" -eq 3 ]; then
	pass pkcs11-three-certs "OpenSC lists the virtual card's 3 certificates"
else
	fail pkcs11-three-certs "$n certificate objects, expected 3"
fi
i=1
for cn in "$CERT_CN1" "$CERT_CN2" "$CERT_CN3"; do
	if grep -q -E "subject: .*CN=$cn(,|\$)" /tmp/pkcs11-objects.log; then
		pass "cert$i-subject" "CN=$cn"
	else
		fail "cert$i-subject" "no certificate with CN=$cn"
	fi
	i=$((i + 1))
done
[ "$(failures)" -eq 0 ] || pcscd_log
