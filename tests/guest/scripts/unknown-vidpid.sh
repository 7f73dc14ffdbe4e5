# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest script: does the stock Debian 12 pcscd + libccid accept a CCID
# reader whose VID:PID is not in libccid's list?  ccid-emu's reader is
# 1209:CC1D, which libccid 1.5.2 does not list.  Until ccid-emu's own
# reader can be plugged in, QEMU's usb-ccid (08e6:4433) stands in for it:
# its entry is removed from /etc/libccid_Info.plist first, which makes it
# exactly as unknown to pcscd and libccid as 1209:CC1D is (both look only
# at that list; neither looks at the interface class).  Run by
# selftest-qemu-ccid.sh.
#
# Expected: not listed with the stock list (class 0x0B alone is not
# enough), not listed through a reader.conf.d entry either, listed and
# working once the VID:PID is added to the list.

VID=08e6
PID=4433
CONF=/etc/reader.conf.d/ccid-emu-test

if ! usb_wait $VID $PID 30; then
	fail usb-enumerated "no USB device $VID:$PID after 30 s"
	exit 1
fi
check_grep usb-enumerated 'class=0b' usb_describe $VID $PID

ccid_plist_remove $VID $PID
if ccid_plist_has $VID $PID; then
	fail plist-remove "$VID:$PID still in $CCID_PLIST"
	exit 1
fi
pass plist-remove "$VID:$PID no longer in $CCID_PLIST"

# 1. Unknown VID:PID, stock configuration: udev hotplug must ignore it.
pcscd_start
ccid-guest-tool -t 8000 wait-reader >/tmp/unknown.log 2>&1
rc=$?
cat /tmp/unknown.log
if [ $rc -eq 4 ]; then
	pass unknown-ignored "no reader after 8 s: pcscd ignores class 0x0B with an unlisted VID:PID"
else
	fail unknown-ignored "rc=$rc: $(tail -n 1 /tmp/unknown.log)"
fi
# The USB interface stays unclaimed: nobody opened it.
check_grep unknown-unclaimed 'driver= *$' usb_describe $VID $PID
pcscd_stop

# 2. A reader.conf.d entry naming the device and libccid: pcscd does load
#    libccid for it, and libccid refuses a device missing from its list.
mkdir -p /etc/reader.conf.d
cat >"$CONF" <<CONF_EOF
FRIENDLYNAME "ccid-emu reader.conf test"
DEVICENAME   usb:$VID/$PID
LIBPATH      /usr/lib/pcsc/drivers/ifd-ccid.bundle/Contents/Linux/libccid.so
CONF_EOF
: >"$CCIDG_PCSCD_LOG"
pcscd_start
ccid-guest-tool -t 8000 wait-reader >/tmp/readerconf.log 2>&1
rc=$?
cat /tmp/readerconf.log
if [ $rc -eq 4 ]; then
	pass readerconf-refused "no reader: libccid refuses an unlisted VID:PID even by name"
else
	fail readerconf-refused "rc=$rc: $(tail -n 1 /tmp/readerconf.log)"
fi
pcscd_log
pcscd_stop
rm -f "$CONF"

# 3. The fix a stock guest needs: the VID:PID in libccid's list.
ccid_plist_add $VID $PID "ccid-emu stand-in reader"
check plist-add ccid_plist_has $VID $PID
: >"$CCIDG_PCSCD_LOG"
pcscd_start
check_grep listed-after-add 'stand-in' ccid-guest-tool -t 20000 wait-reader
check_grep atr-after-add '^atr=3B' ccid-guest-tool -t 20000 atr
check_grep opensc-after-add '^3[Bb]' opensc-tool -a

[ "$(failures)" -eq 0 ] || pcscd_log
