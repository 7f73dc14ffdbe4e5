# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest script of test-daemon-libvirt.sh: the guest is a libvirt domain
# with only a USB controller.  It asks the host (REQUEST lines) to attach
# the daemon's virtual entry (through libvirt's API), to detach it, to
# attach it again, and at last to destroy the domain; each time it checks
# what its stock kernel, pcscd and libccid see:
#   1. attach: a USB device with a CCID interface appears, pcscd lists a
#      reader, and its ATR is the virtual card's;
#   2. detach: the reader leaves pcscd's list and the USB device goes;
#   3. attach again: the ATR is back; then the host destroys the domain
#      (the guest waits for that, so the session is live when it dies).
#
# From the host (/ccid-test/params): VATR, the virtual card's ATR (hex).

T=ccid-guest-tool
. /ccid-test/params

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
	metric attach_to_usb_ms $(( $(uptime_ms) - t0 )) ms
	pass usb-enumerated "CCID interface on $(cat "$(ccid_dev)/idVendor"):$(cat "$(ccid_dev)/idProduct")"
else
	fail usb-enumerated "no USB device with a CCID interface 60 s after the attach request"
	exit 1
fi
pcscd_start || { fail pcscd-start "pcscd did not start"; exit 1; }
if $T -t 30000 find-reader "$VATR" >/tmp/vfind.log 2>&1; then
	metric attach_to_atr_ms $(( $(uptime_ms) - t0 )) ms
fi
cat /tmp/vfind.log
got=$(sed -n 's/^atr=\([0-9A-F]*\).*/\1/p' /tmp/vfind.log)
if [ "$got" = "$VATR" ]; then
	pass atr-virtual "atr=$got $(grep '^reader=' /tmp/vfind.log)"
else
	fail atr-virtual "atr '$got', the host expects $VATR"
fi

# --- 2. detach ---------------------------------------------------------------
t0=$(uptime_ms)
host_request detach
if wait_until 30 no_reader; then
	metric detach_to_reader_gone_ms $(( $(uptime_ms) - t0 )) ms
	pass reader-gone "pcscd lists no reader $(( $(uptime_ms) - t0 )) ms after the detach request"
else
	fail reader-gone "pcscd still lists a reader 30 s after the detach request"
fi
if wait_until 10 no_ccid_dev; then
	metric detach_to_usb_gone_ms $(( $(uptime_ms) - t0 )) ms
	pass usb-gone "no USB device with a CCID interface"
else
	fail usb-gone "the CCID device is still there: $(ccid_dev)"
fi

# --- 3. attach again, then the host destroys the domain -----------------------
t0=$(uptime_ms)
host_request attach
if $T -t 60000 find-reader "$VATR" >/tmp/vfind2.log 2>&1; then
	metric reattach_to_atr_ms $(( $(uptime_ms) - t0 )) ms
	pass atr-again "$(grep '^atr=' /tmp/vfind2.log)"
else
	fail atr-again "$(tail -n 1 /tmp/vfind2.log)"
fi
host_request destroy
# The host destroys the domain now; this only waits for that.
wait_until 60 false
fail destroyed "the host did not destroy the domain within 60 s"
