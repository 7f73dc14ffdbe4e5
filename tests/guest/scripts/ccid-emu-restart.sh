# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest script, second boot of test-ccid-emu-guest.sh: the same two
# `ccid-agent serve` processes as the first boot, which ended with QEMU
# killed in the middle of a 10 s card operation.  Both readers must come
# back and answer: the agents kept running and serve the new QEMU.

VID=$CCID_VID
PID=$CCID_PID
T=ccid-guest-tool
. /ccid-test/params

two_devices() { [ "$(usb_find $VID $PID | wc -l)" -ge 2 ]; }
if wait_until 30 two_devices; then
	pass restart-usb-enumerated "2 devices $VID:$PID"
else
	fail restart-usb-enumerated "want 2 USB devices $VID:$PID after 30 s, have $(usb_find $VID $PID | wc -l)"
	exit 1
fi
ccid_stock_list $VID $PID
pcscd_start || { fail pcscd-start "pcscd did not start"; exit 1; }
check_grep restart-readers '^reader=.*ccid-emu.* 01 00' $T -t 20000 wait-reader 2

check_grep restart-atr-virtual "^atr=$VATR " $T -t 20000 find-reader "$VATR" &&
	metric boot_to_atr_ms "$(uptime_ms)" ms
VREADER=$(sed -n 's/^reader=//p' /tmp/restart-atr-virtual.log)
check_grep restart-atr-loopback '^atr=3B880163636964' $T -t 20000 find-reader 3B880163636964
LREADER=$(sed -n 's/^reader=//p' /tmp/restart-atr-loopback.log)
[ -n "$VREADER" ] && [ -n "$LREADER" ] || exit 1

# The loopback card was in a DELAY when the last QEMU died: it must
# answer new commands, a new DELAY included.
check restart-apdu-loopback $T -r "$LREADER" apdu '00A4040000=9000' echo:255
check restart-delay-1s $T -r "$LREADER" -t 20000 apdu '8003000004000003E8=9000'
check restart-apdu-virtual $T -r "$VREADER" -g apdu '00A4040007A0000000790100=*9000'
check_grep restart-pkcs11-token 'token label *: ' sh -c \
	"pkcs11-tool -L | grep -A 3 -F '$VREADER'"

[ "$(failures)" -eq 0 ] || pcscd_log
