# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest 2, run A of the nested passthrough test: the reader guest 1 passes
# through arrives with its own VID:PID and descriptors; stock pcscd +
# libccid read the ATR and exchange short and extended APDUs (64 KiB both
# ways); round trips timed for the comparison with guest 1.

VID=$CCID_VID
PID=$CCID_PID
T=ccid-guest-tool

if usb_wait $VID $PID 60; then
	metric usb_enumerated_ms "$(uptime_ms)" ms
	check_grep g2-usb-class 'class=0b' usb_describe $VID $PID
	check_grep g2-usb-endpoints 'ep_02 ep_81 ep_83' usb_describe $VID $PID
else
	fail g2-usb-enumerated "no USB device $VID:$PID after 60 s"
	exit 1
fi
ccid_stock_list $VID $PID
pcscd_start
check_grep g2-reader '^reader=.*ccid-emu' $T -t 30000 wait-reader
check_grep g2-atr '^atr=3B' $T -t 30000 atr &&
	metric boot_to_atr_ms "$(uptime_ms)" ms
check_grep g2-atr-historical '63636964' $T atr
check g2-apdu-select $T apdu '00A4040000=9000'
check g2-apdu-unknown-ins $T apdu '80FF0000=6D00'
check g2-echo-255 $T echo 255
check g2-pattern-256 $T pattern 256
check g2-echo-4096 $T echo 4096
check g2-pattern-65536 $T -t 60000 pattern 65536
check g2-echo-65535 $T -t 60000 echo 65535
if $T -t 120000 bench 200 >/tmp/g2-bench.log 2>&1; then
	pass g2-bench "$(tail -n 1 /tmp/g2-bench.log)"
	metric g2_echo0_mean_ms "$(sed -n 's/.*mean_ms=\([0-9.]*\).*/\1/p' /tmp/g2-bench.log)" ms
	metric g2_echo0_apdus_per_s "$(sed -n 's/.*apdus_per_s=\([0-9.]*\).*/\1/p' /tmp/g2-bench.log)" /s
else
	fail g2-bench "$(tail -n 1 /tmp/g2-bench.log)"
fi
if $T -t 120000 bench 20 pattern:65536 >/tmp/g2-bench64.log 2>&1; then
	metric g2_pattern64k_mean_ms "$(sed -n 's/.*mean_ms=\([0-9.]*\).*/\1/p' /tmp/g2-bench64.log)" ms
fi
