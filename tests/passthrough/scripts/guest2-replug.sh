# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest 2, run C: after run B's kill the passed-through reader still works;
# then the host unplugs the emulated reader under guest 1 (restarts
# `ccid-agent serve`): guest 1's agent sends device_disconnect, so the
# reader leaves this guest, and comes back when guest 1 sees it again.

VID=$CCID_VID
PID=$CCID_PID
T=ccid-guest-tool

usb_wait $VID $PID 60 || { fail g2c-usb "no reader"; exit 1; }
ccid_stock_list $VID $PID
pcscd_start
check_grep g2c-atr-after-kill '^atr=3B' $T -t 30000 atr
check g2c-pattern-after-kill $T -t 60000 pattern 65536
reader_gone() { ! usb_present $VID $PID; }
note "ptest unplug-now"
if wait_until 60 reader_gone; then
	pass g2c-unplugged "the reader left guest 2"
else
	fail g2c-unplugged "the reader stayed for 60 s"
fi
if usb_wait $VID $PID 90; then
	pass g2c-replugged "the reader is back"
else
	fail g2c-replugged "not back after 90 s"
	exit 1
fi
# pcscd may list the replugged reader a moment before libccid can open it
# ("SCardConnect: Reader is unavailable", seen once with guest 1's TLS
# link): the same 30 s for it to become usable, then the checks.
atr_ok() { $T -t 5000 atr 2>/dev/null | grep -q '^atr=3B'; }
wait_until 30 atr_ok || note "reader not usable 30 s after the replug"
check_grep g2c-atr-after-replug '^atr=3B' $T -t 30000 atr
check g2c-pattern-after-replug $T -t 60000 pattern 65536
