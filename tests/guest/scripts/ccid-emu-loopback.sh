# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest script: ccid-emu's reader under the project's own USB ID 1209:CC1D
# (`ccid-agent serve -c loopback --usb-id ccid-emu`), with the loopback
# card, plugged in through usb-redir and driven by the guest's pcscd +
# libccid.  Run by selftest-ccid-emu.sh.  This is the one guest test of
# the own-ID path; every other one runs the default ID on a stock guest.
#
# 1. The kernel enumerates 1209:CC1D with a CCID interface.
# 2. After the one-line edit docs/usb-identity.md gives
#    (ccid_plist_add_own_id runs it verbatim), pcscd + libccid list it,
#    and the loopback card answers short and extended APDUs, up to 64 KiB
#    both ways, checked byte by byte; round trips are timed.
# 3. Without that entry (the stock list), they do not list it: its
#    VID:PID is not in libccid's list (docs/usb-identity.md).
# 4. Nor with a driver bundle of its own naming 1209:CC1D and libccid.

VID=$CCID_OWN_VID
PID=$CCID_OWN_PID
T=ccid-guest-tool

if usb_wait $VID $PID 30; then
	metric usb_enumerated_ms "$(uptime_ms)" ms
	check_grep usb-enumerated 'class=0b' usb_describe $VID $PID
else
	fail usb-enumerated "no USB device $VID:$PID after 30 s"
	grep -H . /sys/bus/usb/devices/*/idVendor /sys/bus/usb/devices/*/idProduct
	exit 1
fi
check_grep usb-endpoints 'ep_02 ep_81 ep_83' usb_describe $VID $PID

# --- 1b. replies the guest leaves waiting, raw libusb (before pcscd) ------------
# The controller stops an endpoint nobody polls (UHCI after 32 frames, xHCI
# when a read is cancelled) and QEMU then frees what it buffered for it: no
# reply may be lost or come out of step (docs/serve.md, "Data path").
ccid-usb-raw idle-reply idle-64k partial-idle cancel-pending >/tmp/raw.log 2>&1
for c in idle-reply idle-64k partial-idle cancel-pending; do
	line=$(grep -E "^(ok|FAIL) $c( |\$)" /tmp/raw.log)
	case $line in
	ok*) pass "raw-$c" "${line#ok $c}" ;;
	*) fail "raw-$c" "${line:-no result: $(tail -n 1 /tmp/raw.log)}" ;;
	esac
done

# --- 2. with the VID:PID listed --------------------------------------------------
stock_listed=0
ccid_plist_has $VID $PID && stock_listed=1
ccid_plist_add_own_id
check own-id-edit ccid_plist_has $VID $PID
pcscd_start
check_grep reader '^reader=.*ccid-emu' $T -t 20000 wait-reader
check_grep atr '^atr=3B' $T -t 20000 atr &&
	metric boot_to_atr_ms "$(uptime_ms)" ms
check_grep atr-historical '63636964' $T atr     # "ccid" in the ATR
check_grep usb-claimed 'driver=usbfs' usb_describe $VID $PID
check_grep opensc-atr '^3[Bb]' opensc-tool -a

# The tool must notice a wrong answer (16 pattern bytes + 9000 here).
$T apdu '8002000010=*9001' >/tmp/neg.log 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q 'matches no expected answer' /tmp/neg.log; then
	pass tool-detects-mismatch "$(tail -n 1 /tmp/neg.log)"
else
	fail tool-detects-mismatch "rc=$rc: $(tail -n 1 /tmp/neg.log)"
fi
check apdu-select $T apdu '00A4040000=9000'
check apdu-unknown-ins $T apdu '80FF0000=6D00'
check apdu-unknown-cla $T apdu 'A0010000=6E00'
check echo-short-0 $T echo 0
check echo-short-255 $T echo 255
check pattern-short-256 $T pattern 256
check pattern-ext-257 $T pattern 257
check echo-ext-256 $T echo 256
check pattern-ext-4096 $T pattern 4096
check echo-ext-4096 $T echo 4096
# Messages of exactly 64*k bytes (10-byte CCID header + data + SW): the
# bulk transfer ends without a short packet, the classic ZLP trap.
check zlp-resp-64 $T pattern 52
check zlp-resp-256 $T pattern 244
check zlp-resp-4096 $T pattern 4084
check zlp-cmd-64 $T echo 48
check zlp-cmd-4096 $T echo 4077
check pattern-ext-65536 $T -t 60000 pattern 65536
check echo-ext-65535 $T -t 60000 echo 65535

check_grep bench-echo0 '^bench ' $T -t 120000 bench 200 &&
	metric loopback_apdus_per_s "$(sed -n 's/.*apdus_per_s=\([0-9.]*\).*/\1/p' /tmp/bench-echo0.log)" apdu/s
check_grep bench-pattern64k '^bench ' $T -t 120000 bench 10 pattern:65536 &&
	metric loopback_64k_responses_per_s "$(sed -n 's/.*apdus_per_s=\([0-9.]*\).*/\1/p' /tmp/bench-pattern64k.log)" apdu/s

# --- 3. stock guest ---------------------------------------------------------------
# Last, so boot_to_atr_ms above is not inflated by this 8 s wait.  pcscd
# reads the list when it starts, so a restart without the entry is what a
# stock guest sees.
pcscd_stop
if [ $stock_listed -eq 1 ]; then
	# Then libccid has shipped the project's entry: update the docs
	# and this test.
	fail stock-ignored "this libccid already lists $VID:$PID"
else
	ccid_plist_remove $VID $PID
	: >"$CCIDG_PCSCD_LOG"
	pcscd_start
	$T -t 8000 wait-reader >/tmp/stock.log 2>&1
	rc=$?
	cat /tmp/stock.log
	if [ $rc -eq 4 ]; then
		pass stock-ignored "stock pcscd+libccid: no reader for unlisted $VID:$PID"
	else
		fail stock-ignored "rc=$rc: $(tail -n 1 /tmp/stock.log)"
	fi
fi

# --- 4. a driver bundle of our own instead of editing libccid's list -------
# pcscd's hotplug matches the new bundle and loads libccid through it, but
# libccid checks the device against its own ifd-ccid.bundle list only.
pcscd_stop
B=/usr/lib/pcsc/drivers/ccid-emu.bundle/Contents
mkdir -p $B/Linux
ln -sf /usr/lib/pcsc/drivers/ifd-ccid.bundle/Contents/Linux/libccid.so $B/Linux/libccid.so
cat >$B/Info.plist <<PLIST_EOF
<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0">
<dict>
	<key>CFBundleExecutable</key>
	<string>libccid.so</string>
	<key>ifdVendorID</key>
	<array>
		<string>0x$VID</string>
	</array>
	<key>ifdProductID</key>
	<array>
		<string>0x$PID</string>
	</array>
	<key>ifdFriendlyName</key>
	<array>
		<string>ccid-emu own bundle</string>
	</array>
</dict>
</plist>
PLIST_EOF
: >"$CCIDG_PCSCD_LOG"
pcscd_start
$T -t 8000 wait-reader >/tmp/bundle.log 2>&1
rc=$?
cat /tmp/bundle.log
if [ $rc -eq 4 ]; then
	pass own-bundle-refused "an extra bundle does not help: libccid reads only its own list"
else
	fail own-bundle-refused "rc=$rc: $(tail -n 1 /tmp/bundle.log)"
fi
rm -rf /usr/lib/pcsc/drivers/ccid-emu.bundle

[ "$(failures)" -eq 0 ] || pcscd_log
