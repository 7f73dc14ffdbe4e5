# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest script of test-tls-guest.sh: the reader arrives over a usb-redir
# chardev that is TLS between QEMU and ccid-agent (either one the TLS
# server).  An unmodified guest's pcscd lists it, the loopback card answers
# short and extended APDUs, checked byte by byte, and a round-trip
# benchmark gives the per-APDU cost through TLS.
T=ccid-guest-tool

if usb_wait $CCID_VID $CCID_PID 30; then
	pass usb-enumerated "$(usb_describe $CCID_VID $CCID_PID | head -n 1)"
else
	fail usb-enumerated "no USB device $CCID_VID:$CCID_PID after 30 s"
	exit 1
fi
pcscd_start || { fail pcscd-start "pcscd did not start"; exit 1; }
check_grep reader '^reader=.*\[ccid-emu\]' $T -t 20000 wait-reader 1
check_grep card '^atr=3B' $T -t 20000 atr &&
	metric boot_to_atr_ms "$(uptime_ms)" ms
check apdu-select $T apdu '00A4040000=9000'
check echo-short-255 $T echo 255
check pattern-ext-4096 $T pattern 4096
check echo-ext-4096 $T echo 4096
check pattern-ext-65536 $T pattern 65536
if $T -t 60000 bench 200 echo:0 >/tmp/bench.log 2>&1; then
	pass bench "$(tr '\n' ' ' </tmp/bench.log)"
	r=$(sed -n 's/.*apdus_per_s=\([0-9.]*\).*/\1/p' /tmp/bench.log)
	m=$(sed -n 's/.*mean_ms=\([0-9.]*\).*/\1/p' /tmp/bench.log)
	[ -n "$r" ] && metric apdus_per_s "$r" 1/s
	[ -n "$m" ] && metric apdu_mean_ms "$m" ms
else
	fail bench "$(tail -n 2 /tmp/bench.log)"
fi
[ "$(failures)" -eq 0 ] || pcscd_log
