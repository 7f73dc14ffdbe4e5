# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest script of test-daemon-share.sh: one of two guests that share one
# host reader (a "Shared ..." entry of the daemon: vicc behind a private
# pcscd).  It asks the host to attach the shared entry, waits for the card,
# says it is ready, and waits for the host's start signal: a second reader
# (the daemon's loopback entry) that the host plugs into both guests once
# both are ready.  Then, for LOOP_S seconds, it runs rounds of
#   SELECT EF FID (00 A4 00 0C 02 FID), READ BINARY 64 (00 B0 00 00 40)
# and checks every answer: EF FID's 64 bytes, different in each guest, so
# an APDU of the other guest between the two would show as a wrong answer.
# Then it asks for the detaches, one reader after the other, and checks
# the readers go.
#
# From the host (/ccid-test/params): VICC_ATR (hex prefix), FID (4 hex
# digits), EXPECT (the 64 bytes of EF FID and 9000, hex), LOOP_S,
# PAUSE_US (between rounds).

T=ccid-guest-tool
. /ccid-test/params

ccid_dev() {
	for _i in /sys/bus/usb/devices/*:*; do
		[ "$(cat "$_i/bInterfaceClass" 2>/dev/null)" = 0b ] && return 0
	done
	return 1
}
host_request attach
wait_until 90 ccid_dev || { fail shared-reader "no CCID USB device 90 s after the attach request"; exit 1; }
pcscd_start || { fail pcscd-start "pcscd did not start"; exit 1; }
if $T -t 60000 find-reader "$VICC_ATR" >/tmp/find.log 2>&1; then
	R=$(sed -n 's/^reader=//p' /tmp/find.log)
	pass shared-reader "$(grep '^atr=' /tmp/find.log) reader=$R"
else
	fail shared-reader "no reader with the card's ATR $VICC_ATR: $(tail -n 2 /tmp/find.log | tr '\n' ' ')"
	exit 1
fi
host_request ready
# The start signal: the second reader.
check go-signal $T -t 120000 wait-reader 2

host_request loop-start
t_end=$(( $(uptime_ms) + LOOP_S * 1000 ))
rounds=0 bad=0
while [ "$(uptime_ms)" -lt "$t_end" ]; do
	if $T -r "$R" -t 20000 apdu "00A4000C02$FID=9000" "00B0000040=$EXPECT" >/tmp/round.log 2>&1; then
		rounds=$((rounds + 1))
	else
		bad=$((bad + 1))
		[ "$bad" -le 3 ] && note "round $((rounds + bad)) failed: $(tail -n 2 /tmp/round.log | tr '\n' ' ')"
	fi
	# Longer than the reader's idle (1 s, the host's agent.conf): the
	# transaction ends and the other guest gets its turn.
	usleep "$PAUSE_US"
done
host_request loop-end
metric rounds "$rounds" rounds
if [ "$rounds" -gt 0 ] && [ "$bad" = 0 ]; then
	pass apdu-loop "$rounds rounds of SELECT $FID + READ BINARY in $LOOP_S s, every answer right"
else
	fail apdu-loop "$rounds good rounds, $bad bad"
fi

no_reader() { ! $T list; }
no_ccid_dev() { ! ccid_dev; }
shared_gone() { ! $T list 2>/dev/null | grep -qxF "reader=$R"; }
# One reader after the other: the guest's pcscd (1.9.9) sometimes kept
# both readers listed when both USB devices left within a second.
host_request detach-shared
if wait_until 30 shared_gone; then
	pass shared-gone "pcscd no longer lists $R"
else
	fail shared-gone "pcscd still lists $R 30 s after the detach request"
fi
host_request detach-signal
if wait_until 15 no_ccid_dev; then
	pass usb-gone "no USB device with a CCID interface after the detach"
else
	fail usb-gone "a CCID USB device is still there 15 s after the detach request"
fi
if wait_until 30 no_reader; then
	pass readers-gone "pcscd lists no reader after the detach"
else
	fail readers-gone "pcscd still lists: $($T list 2>&1 | tr '\n' ' ')"
	ps ax | grep -v grep | grep pcscd
	dmesg | tail -n 20
fi
