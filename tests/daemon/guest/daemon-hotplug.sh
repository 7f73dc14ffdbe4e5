# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest script of test-daemon-guest.sh: the guest boots with only a USB
# controller and a QMP socket; it asks the host (REQUEST lines) to attach
# the daemon's virtual entry, to detach it and to attach it again, and
# checks each time what its stock kernel, pcscd, libccid and OpenSC see:
#   1. attach: a USB device with a CCID interface (class 0x0B) appears,
#      pcscd lists a reader, its ATR is the virtual card's, OpenSC reads
#      the ATR and lists the CAC token over PKCS#11;
#   2. detach: the reader leaves pcscd's list and the USB device goes;
#   3. attach again: reader and ATR are back.
# The reader is found by its CCID interface class, not by its USB ID.
#
# From the host (/ccid-test/params): VATR, the virtual card's ATR (hex).

T=ccid-guest-tool
. /ccid-test/params

# sysfs path of the first USB device with a CCID (class 0x0B) interface.
ccid_dev() {
	for _i in /sys/bus/usb/devices/*:*; do
		[ "$(cat "$_i/bInterfaceClass" 2>/dev/null)" = 0b ] || continue
		echo "${_i%:*}"
		return 0
	done
	return 1
}
no_ccid_dev() { ! ccid_dev; }
no_reader() { ! $T list; }

# --- 1. attach ---------------------------------------------------------------
t0=$(uptime_ms)
host_request attach
if wait_until 60 ccid_dev; then
	D=$(ccid_dev)
	VID=$(cat "$D/idVendor") PID=$(cat "$D/idProduct")
	metric attach_to_usb_ms $(( $(uptime_ms) - t0 )) ms
	pass usb-enumerated "CCID interface on $VID:$PID ($D)"
else
	fail usb-enumerated "no USB device with a CCID interface 60 s after the attach request"
	exit 1
fi
# A stock guest: libccid's list is the package's and names the reader's
# default USB ID (docs/usb-identity.md).
ccid_stock_list "$VID" "$PID"
pcscd_start || { fail pcscd-start "pcscd did not start"; exit 1; }
check_grep reader '^reader=' $T -t 30000 wait-reader
if $T -t 30000 find-reader "$VATR" >/tmp/vfind.log 2>&1; then
	metric attach_to_atr_ms $(( $(uptime_ms) - t0 )) ms
fi
cat /tmp/vfind.log
VREADER=$(sed -n 's/^reader=//p' /tmp/vfind.log)
got=$(sed -n 's/^atr=\([0-9A-F]*\).*/\1/p' /tmp/vfind.log)
if [ -n "$VREADER" ] && [ "$got" = "$VATR" ]; then
	pass atr-virtual "atr=$got reader=$VREADER"
else
	fail atr-virtual "atr '$got' on reader '$VREADER', the host expects $VATR"
fi
check_grep opensc-atr '^[0-9a-f]{2}(:[0-9a-f]{2})+$' opensc-tool -r "$VREADER" -a
check_grep pkcs11-token 'token label|CAC' sh -c \
	"pkcs11-tool -L | grep -A 3 -F '$VREADER'"

# --- 2. detach ---------------------------------------------------------------
t0=$(uptime_ms)
host_request detach
if wait_until 30 no_reader; then
	metric detach_to_reader_gone_ms $(( $(uptime_ms) - t0 )) ms
	pass reader-gone "pcscd lists no reader $(( $(uptime_ms) - t0 )) ms after the detach request"
else
	fail reader-gone "pcscd still lists a reader 30 s after the detach request: $($T list 2>&1 | tr '\n' ' ')"
fi
if wait_until 10 no_ccid_dev; then
	metric detach_to_usb_gone_ms $(( $(uptime_ms) - t0 )) ms
	pass usb-gone "no USB device with a CCID interface"
else
	fail usb-gone "the CCID device is still there: $(ccid_dev)"
fi

# --- 3. attach again ----------------------------------------------------------
t0=$(uptime_ms)
host_request attach
check_grep reader-again '^reader=' $T -t 60000 wait-reader
if $T -t 30000 find-reader "$VATR" >/tmp/vfind2.log 2>&1; then
	metric reattach_to_atr_ms $(( $(uptime_ms) - t0 )) ms
	pass atr-again "$(grep '^atr=' /tmp/vfind2.log)"
else
	fail atr-again "$(tail -n 1 /tmp/vfind2.log)"
fi
check_grep opensc-atr-again '^[0-9a-f]{2}(:[0-9a-f]{2})+$' opensc-tool -a
