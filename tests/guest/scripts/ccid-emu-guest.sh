# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest script, first boot of test-ccid-emu-guest.sh: two ccid-emu readers
# (1209:CC1D) behind usb-redir, one `ccid-agent serve` with the virtual
# CAC card, one with the loopback card, driven by the guest's stock
# kernel, pcscd, libccid and OpenSC.  The host script answers REQUEST
# lines (card removal and insertion, killing QEMU) and checks the
# signature exported with DATA lines.
#
# From the host (/ccid-test/params): VATR (the virtual card's ATR, hex),
# CERT_CN1..3 (its certificates' CNs), SIGN_PIN; /ccid-test/challenge.bin
# is the data to sign.
#
# Ends by asking the host to kill QEMU in the middle of a 10 s card
# operation: this boot never reports DONE.

VID=$CCID_VID
PID=$CCID_PID
T=ccid-guest-tool
. /ccid-test/params

# --- USB: two devices, full speed, CCID interface ------------------------------
two_devices() { [ "$(usb_find $VID $PID | wc -l)" -ge 2 ]; }
if wait_until 30 two_devices; then
	metric usb_enumerated_ms "$(uptime_ms)" ms
	pass usb-enumerated "$(usb_find $VID $PID | wc -l) devices $VID:$PID"
else
	fail usb-enumerated "want 2 USB devices $VID:$PID after 30 s, have $(usb_find $VID $PID | wc -l)"
	grep -H . /sys/bus/usb/devices/*/idVendor /sys/bus/usb/devices/*/idProduct
	exit 1
fi
usb_describe $VID $PID
speeds=$(for d in $(usb_find $VID $PID); do cat "$d/speed"; done | tr '\n' ' ')
if [ "$speeds" = "12 12 " ]; then
	pass usb-full-speed "speed (Mbit/s) of both: $speeds"
else
	fail usb-full-speed "speeds '$speeds', expected 12 (full speed) for both"
fi
n_ccid=$(usb_describe $VID $PID | grep -c 'class=0b endpoints=ep_02 ep_81 ep_83')
if [ "$n_ccid" -eq 2 ]; then
	pass usb-ccid-interface "class 0x0B, endpoints 02/81/83 on both"
else
	fail usb-ccid-interface "$n_ccid of 2 devices have the CCID interface"
fi

# --- pcscd + libccid: two readers; which is which, by the card's ATR -------
ccid_stock_list $VID $PID
pcscd_start || { fail pcscd-start "pcscd did not start"; exit 1; }
check_grep readers '^reader=.*ccid-emu.* 01 00' $T -t 20000 wait-reader 2 &&
	metric boot_to_readers_ms "$(uptime_ms)" ms

if $T -t 20000 find-reader "$VATR" >/tmp/vfind.log 2>&1; then
	metric boot_to_atr_ms "$(uptime_ms)" ms
fi
cat /tmp/vfind.log
VREADER=$(sed -n 's/^reader=//p' /tmp/vfind.log)
got=$(sed -n 's/^atr=\([0-9A-F]*\).*/\1/p' /tmp/vfind.log)
if [ -n "$VREADER" ] && [ "$got" = "$VATR" ]; then
	pass atr-virtual "atr=$got reader=$VREADER"
else
	fail atr-virtual "no reader with the virtual card's ATR $VATR: $(tail -n 1 /tmp/vfind.log)"
	pcscd_log
	exit 1
fi
# "ccid" in the loopback card's historical bytes
$T -t 20000 find-reader 3B880163636964 >/tmp/lfind.log 2>&1
cat /tmp/lfind.log
LREADER=$(sed -n 's/^reader=//p' /tmp/lfind.log)
if [ -n "$LREADER" ] && [ "$LREADER" != "$VREADER" ]; then
	pass atr-loopback "$(grep '^atr=' /tmp/lfind.log) reader=$LREADER"
else
	fail atr-loopback "no second reader with the loopback card: $(tail -n 1 /tmp/lfind.log)"
	exit 1
fi
check_grep usb-claimed 'driver=usbfs' usb_describe $VID $PID

# OpenSC's view of the same ATR (it prints 3b:7a:...).
check_grep opensc-tool-atr '^[0-9a-f]{2}(:[0-9a-f]{2})+$' opensc-tool -r "$VREADER" -a
got=$(grep -E '^[0-9a-f]{2}(:[0-9a-f]{2})+$' /tmp/opensc-tool-atr.log | tr -d ':' | tr 'a-f' 'A-F')
if [ "$got" = "$VATR" ]; then
	pass opensc-atr-match "opensc-tool -a: $got"
else
	fail opensc-atr-match "opensc-tool -a printed '$got', host expects $VATR"
fi

# --- APDUs ---------------------------------------------------------------------------
# SELECT of the CAC's first PKI applet: T=0, so the answer waits behind
# 61 xx; -g fetches it with GET RESPONSE, the last SW must be 90 00.
check apdu-virtual-select $T -r "$VREADER" -g apdu '00A4040007A0000000790100=*9000'
check apdu-loopback-select $T -r "$LREADER" apdu '00A4040000=9000'

# --- OpenSC PKCS#11: the CAC token, its certificates, a signature ---------
check_grep pkcs11-token 'token label *: ' sh -c \
	"pkcs11-tool -L | grep -A 3 -F '$VREADER'"
check_grep pkcs11-objects 'Certificate Object' \
	pkcs11-tool --slot-description "$VREADER" -O
ncerts=$(grep -c 'Certificate Object' /tmp/pkcs11-objects.log)
if [ "$ncerts" -eq 3 ]; then
	pass pkcs11-certs "3 certificate objects"
else
	fail pkcs11-certs "$ncerts certificate objects, expected 3"
fi
i=1
for cn in "$CERT_CN1" "$CERT_CN2" "$CERT_CN3"; do
	if grep -q -E "subject: .*CN=$cn(,|\$)" /tmp/pkcs11-objects.log; then
		pass "pkcs11-cert$i-subject" "CN=$cn"
	else
		fail "pkcs11-cert$i-subject" "no certificate with CN=$cn"
	fi
	i=$((i + 1))
done

# Keys 0001 (ID) and 0002 (signature): one signature each, with two
# mechanisms; the host verifies them against the certificates.
sign() {    # sign ID MECHANISM OUT
	pkcs11-tool --slot-description "$VREADER" --login --pin "$SIGN_PIN" \
		--sign --id "$1" -m "$2" -i /ccid-test/challenge.bin -o "$3"
}
for id in 0001 0002; do
	mech=SHA256-RSA-PKCS
	[ $id = 0001 ] && mech=RSA-PKCS
	if check "pkcs11-sign-$id" sign $id $mech /tmp/sig-$id.bin &&
		[ "$(wc -c </tmp/sig-$id.bin)" -eq 256 ]; then
		export_file "sig-$id" /tmp/sig-$id.bin
	else
		fail "pkcs11-sign-$id" "no 256-byte signature"
	fi
	if check "pkcs11-read-cert-$id" pkcs11-tool --slot-description "$VREADER" \
		--read-object --type cert --id $id -o /tmp/cert-$id.der; then
		export_file "cert-$id" /tmp/cert-$id.der
	fi
done

# --- the loopback card: extended APDUs up to 64 KiB ----------------------------
check pattern-ext-65536 $T -r "$LREADER" -t 60000 pattern 65536
check echo-ext-65535 $T -r "$LREADER" -t 60000 echo 65535
check pattern-ext-257 $T -r "$LREADER" pattern 257
check echo-ext-4096 $T -r "$LREADER" echo 4096

# --- time extension: a card operation of 10 s ------------------------------------
# libccid gives up on a bulk-IN read after a few seconds unless the reader
# keeps asking for more time (bStatus 0x80, time extension).
t0=$(uptime_ms)
check delay-10s $T -r "$LREADER" -t 40000 apdu '800300000400002710=9000'
dt=$(( $(uptime_ms) - t0 ))
ms=$(sed -n 's/.* ms=\([0-9]*\).*/\1/p' /tmp/delay-10s.log)
metric delay_10s_ms "${ms:-0}" ms
if [ -n "$ms" ] && [ "$ms" -ge 9900 ] && [ "$ms" -le 20000 ]; then
	pass delay-10s-duration "answer after $ms ms (10000 asked, $dt ms in all)"
else
	fail delay-10s-duration "answer after '${ms}' ms, expected 10000..20000"
fi
# Time extension and a 64 KiB answer together.
check delayed-pattern-3s-64k $T -r "$LREADER" -t 60000 apdu dpattern:3000:65536

# --- card removal and insertion from the host -------------------------------------
# pcsc_scan watches both readers; ccid-guest-tool waits for the events.
pcsc_scan -n >/tmp/pcsc_scan.log 2>&1 &
scan_pid=$!
# pcsc_scan prints "Reader N: NAME" and then "Card state: ...".
scan_events() {    # scan_events READER: its card states, one a line
	tr '\r' '\n' </tmp/pcsc_scan.log | awk -v r="$1" '
		/Reader [0-9]+: / { sub(/.*Reader [0-9]+: /, ""); cur = $0; next }
		/Card state: / && cur == r { sub(/.*Card state: /, ""); print }'
}
scan_count() {    # scan_count READER REGEX: how many states match
	scan_events "$1" | grep -c -E "$2"
}
scan_more() {     # scan_more READER REGEX N: more than N states match
	[ "$(scan_count "$1" "$2")" -gt "$3" ]
}
all_inserted() { [ "$(tr '\r' '\n' </tmp/pcsc_scan.log | grep -c 'Card inserted')" -ge 2 ]; }
wait_until 10 all_inserted || note "pcsc_scan did not report both cards within 10 s"

# replug NAME READER: the host pulls the card of agent NAME out and
# pushes it back; the guest sees both events and the card works after.
# (Variables rp_*: lib.sh's helpers use _name-style globals.)
replug() {
	rp_n=$1 rp_r=$2
	rp_before=$(scan_count "$rp_r" 'Card inserted')
	$T -r "$rp_r" -t 20000 wait-card absent >/tmp/wait-absent-$rp_n.log 2>&1 &
	rp_w=$!
	usleep 300000
	host_request remove "$rp_n"
	if wait $rp_w; then
		pass "$rp_n-removed-event" "$(cat /tmp/wait-absent-$rp_n.log)"
	else
		fail "$rp_n-removed-event" "$(tail -n 1 /tmp/wait-absent-$rp_n.log)"
	fi
	# With the card out, connecting must fail (4: still no card at the
	# deadline).
	$T -r "$rp_r" -t 1500 atr >/tmp/absent-$rp_n.log 2>&1
	rp_rc=$?
	if [ $rp_rc -eq 4 ]; then
		pass "$rp_n-absent-no-card" "no card to connect to while removed"
	else
		fail "$rp_n-absent-no-card" "rc=$rp_rc: $(tail -n 1 /tmp/absent-$rp_n.log)"
	fi
	if wait_until 10 scan_more "$rp_r" 'Card removed' 0; then
		pass "$rp_n-pcsc-scan-removed" "pcsc_scan: Card removed in $rp_r"
	else
		fail "$rp_n-pcsc-scan-removed" "pcsc_scan did not report the removal"
	fi
	host_request insert "$rp_n"
	check "$rp_n-inserted-event" $T -r "$rp_r" -t 20000 wait-card present
	if wait_until 10 scan_more "$rp_r" 'Card inserted' "$rp_before"; then
		pass "$rp_n-pcsc-scan-inserted" "pcsc_scan: Card inserted in $rp_r"
	else
		fail "$rp_n-pcsc-scan-inserted" "pcsc_scan did not report the insertion"
	fi
}

replug virtual "$VREADER"
check_grep virtual-atr-after-replug "^atr=$VATR " $T -r "$VREADER" -t 20000 atr
check virtual-apdu-after-replug $T -r "$VREADER" -g apdu '00A4040007A0000000790100=*9000'
check_grep virtual-pkcs11-after-replug 'Certificate Object' \
	pkcs11-tool --slot-description "$VREADER" -O
check virtual-sign-after-replug sign 0002 SHA256-RSA-PKCS /tmp/sig-again.bin

replug loopback "$LREADER"
check loopback-echo-after-replug $T -r "$LREADER" -t 20000 echo 4096

kill $scan_pid 2>/dev/null
echo "----- pcsc_scan"
tr '\r' '\n' </tmp/pcsc_scan.log | grep -v '^[[:space:]|/\\-]*$'

# What the drivers complained about: pcscd logs errors at its default
# level (libccid's included).
note "pcscd log: $(grep -c . "$CCIDG_PCSCD_LOG") lines"
pcscd_log

# --- QEMU killed in the middle of a card operation -------------------------------
# The host kills QEMU once the loopback agent reports its card busy with
# this 10 s DELAY; the second boot checks that the agents still serve.
$T -r "$LREADER" -t 40000 apdu '800300000400002710=9000' >/tmp/kill-delay.log 2>&1 &
host_request kill-qemu
sleep 30
fail qemu-killed "QEMU was not killed within 30 s of the request"
