# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest 2, run B: exchanges 64 KiB APDUs in a loop until the host kills
# this QEMU (SIGKILL) in the middle of one.  Nothing here is expected to
# finish; the host judges guest 1's reader afterwards.

VID=$CCID_VID
PID=$CCID_PID
T=ccid-guest-tool

usb_wait $VID $PID 60 || { fail g2b-usb "no reader"; exit 1; }
ccid_stock_list $VID $PID
pcscd_start
check_grep g2b-atr '^atr=3B' $T -t 30000 atr
note "ptest apdu-loop"
$T -t 600000 bench 100000 pattern:65536 echo:65535
