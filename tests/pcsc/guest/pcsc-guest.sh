# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest script of test-pcsc-guest.sh: ccid-emu's reader (1209:CC1D) behind
# usb-redir, served by `ccid-agent serve --card pcsc:...` with the vicc
# card of the host's private pcscd behind it.  The guest's stock kernel,
# pcscd and libccid drive it; pcsc-test-app (the host's own PC/SC test
# application, same binary) talks to it.
#
# From the host: /ccid-test/params (HOST_ATR, LOCK_MS, HOLD_MS,
# CROSSTALK_S, SEED, N_SHORT), /ccid-test/pcsc-test-app,
# /ccid-test/apdus.txt and /ccid-test/host-answers.txt (what the host
# application got for those APDUs straight from the private pcscd),
# /ccid-test/short-apdus.txt and short-answers.txt (the first N_SHORT).
#
# REQUEST lines for the host: "crosstalk S" (run the host application's
# SELECT + READ sequences for S seconds), "hold MS" (hold the card
# exclusively for MS ms), "kill-vicc" (SIGKILL the card 1 s later),
# "start-vicc".

VID=$CCID_VID
PID=$CCID_PID
A=/ccid-test/pcsc-test-app
R=ccid-emu
T=ccid-guest-tool
. /ccid-test/params

# --- the reader ------------------------------------------------------------------------
if usb_wait $VID $PID 30; then
	pass usb-enumerated "$(usb_describe $VID $PID | head -n 1)"
else
	fail usb-enumerated "no USB device $VID:$PID after 30 s"
	exit 1
fi
# libccid does not list 1209:CC1D yet (docs/guest-kit.md).
ccid_stock_list $VID $PID
pcscd_start || { fail pcscd-start "pcscd did not start"; exit 1; }
check_grep reader '^reader=.*ccid-emu' $T -t 20000 wait-reader 1 ||
	{ pcscd_log; exit 1; }

# --- the ATR: the host card's, as a host application sees it ---------------------------
if $A -r $R -t 20000 atr >/tmp/atr.log 2>&1; then
	metric boot_to_atr_ms "$(uptime_ms)" ms
fi
cat /tmp/atr.log
got=$(sed -n 's/^atr=\([0-9A-F]*\).*/\1/p' /tmp/atr.log)
READER=$(sed -n 's/^reader=//p' /tmp/atr.log)
if [ -n "$got" ] && [ "$got" = "$HOST_ATR" ]; then
	pass atr "atr=$got (host: $HOST_ATR) reader=$READER"
else
	fail atr "guest ATR '$got', host application sees $HOST_ATR: $(tail -n 1 /tmp/atr.log)"
	pcscd_log
	exit 1
fi
# OpenSC prints it as 3b:95:...
opensc=$(opensc-tool -r "$READER" -a 2>&1 | grep -E '^[0-9a-f]{2}(:[0-9a-f]{2})+$' |
	tr -d ':' | tr 'a-f' 'A-F')
if [ "$opensc" = "$HOST_ATR" ]; then
	pass opensc-atr "opensc-tool -a: $opensc"
else
	fail opensc-atr "opensc-tool -a printed '$opensc', host $HOST_ATR"
fi

# --- APDUs: byte-identical to the host application's answers ---------------------------
# Compares answer files line by line; names the first APDU that differs.
rp_compare() {    # rp_compare NAME APDUS HOST_ANSWERS GUEST_ANSWERS
	rp_n=$(grep -c . "$3")
	if cmp -s "$3" "$4"; then
		pass "$1" "$rp_n answers byte-identical to the host's (sizes: $(awk '{ printf "%d ", length($0) / 2 }' "$4"))"
		return 0
	fi
	rp_line=$(awk 'NR == FNR { h[FNR] = $0; n = FNR; next }
		h[FNR] != $0 { print FNR; found = 1; exit }
		END { if (!found) print "(count: host " n ", guest " FNR ")" }' "$3" "$4")
	fail "$1" "answer $rp_line differs: apdu $(grep -v '^#' "$2" | sed -n "${rp_line}p" | cut -c1-40), host $(sed -n "${rp_line}p" "$3" | cut -c1-40)..., guest $(sed -n "${rp_line}p" "$4" | cut -c1-40)..."
	return 1
}
if check apdus-run $A -r $R -t 120000 run /ccid-test/apdus.txt /tmp/guest-answers.txt; then
	rp_compare apdus-same /ccid-test/apdus.txt /ccid-test/host-answers.txt /tmp/guest-answers.txt
	# The largest answers vpcd can carry: 65533 data bytes + SW.
	n_big=$(awk 'length($0) == 131070 && /9000$/' /tmp/guest-answers.txt | wc -l)
	if [ "$n_big" -ge 2 ]; then
		pass apdu-ext-65535 "$n_big answers of 65535 bytes (READ BINARY of EF 2000, PATTERN 65533), extended APDUs"
	else
		fail apdu-ext-65535 "$n_big answers of 65535 bytes, expected 2"
	fi
fi

# --- cross-talk: the guest and a host application on the same card at once ------------
# Bursts of 4 sequences (12 APDUs, no gap longer than the agent's idle),
# then 150-450 ms quiet so the host application gets in.
host_request crosstalk "$CROSSTALK_S"
if $A -r $R -s "$SEED" crosstalk "$CROSSTALK_S" 4 300 >/tmp/crosstalk.log 2>&1; then
	pass crosstalk "$(grep '^crosstalk' /tmp/crosstalk.log)"
else
	fail crosstalk "$(tail -n 3 /tmp/crosstalk.log | tr '\n' ' ')"
fi
for k in sequences mixed errors; do
	metric "crosstalk_$k" "$(sed -n "s/.* $k=\([0-9]*\).*/\1/p" /tmp/crosstalk.log)" ""
done

# --- a host application holds the card exclusively ------------------------------------
# The guest powers its card off first, so the agent lets go of its
# connection and the host application can connect exclusively.
check unpower $A -r $R unpower
host_request hold "$HOLD_MS"
# No fixed wait for the host to take the card: the APDU is tried until one
# is held up by the hold.  One that goes through means the host has not
# connected yet; powering the card off again lets the agent release it at
# once, so the host's connect (retried every 50 ms) gets in.  The hold
# began after the last such release (t_free).
t_free=$(uptime_ms)
rc=0
while [ $(( $(uptime_ms) - t_free )) -lt 20000 ]; do
	$A -r $R -t 20000 xfr 00A4000C021001 >/tmp/lock1.log 2>&1
	rc=$?
	[ $rc -eq 0 ] || break
	cat /tmp/lock1.log
	$A -r $R unpower >/dev/null 2>&1
	t_free=$(uptime_ms)
done
cat /tmp/lock1.log
ms=$(sed -n 's/^xfr error ms=\([0-9]*\).*/\1/p' /tmp/lock1.log)
if [ $rc -eq 3 ] && [ -n "$ms" ] && [ "$ms" -ge $((LOCK_MS - 100)) ] &&
	[ "$ms" -le $((LOCK_MS + 2500)) ]; then
	pass lock-wait-fail "the APDU waited $ms ms (lock_timeout $LOCK_MS ms), then failed: $(head -n 1 /tmp/lock1.log)"
else
	fail lock-wait-fail "rc=$rc, want a PC/SC error after ~$LOCK_MS ms: $(tail -n 2 /tmp/lock1.log | tr '\n' ' ')"
fi
metric lock_fail_ms "${ms:-0}" ms
# The same APDU again, until the card is free: it must work.
ok=0
while [ $(( $(uptime_ms) - t_free )) -lt $((HOLD_MS + 3 * LOCK_MS + 5000)) ]; do
	if $A -r $R -t 20000 xfr 00A4000C021001 >/tmp/lock2.log 2>&1; then
		ok=1
		break
	fi
	cat /tmp/lock2.log
done
t_ok=$(( $(uptime_ms) - t_free ))
cat /tmp/lock2.log
if [ $ok = 1 ] && grep -q 'resp=9000$' /tmp/lock2.log && [ $t_ok -ge $((HOLD_MS - 1000)) ]; then
	pass lock-recover "SELECT answers 9000 once the host let go, $t_ok ms after the card was free to take (held $HOLD_MS ms): $(cat /tmp/lock2.log)"
else
	fail lock-recover "ok=$ok after $t_ok ms (host holds $HOLD_MS ms): $(tail -n 1 /tmp/lock2.log)"
fi
metric lock_recover_ms "$t_ok" ms
check lock-after-apdus $A -r $R run /ccid-test/short-apdus.txt /tmp/short-1.txt &&
	rp_compare lock-after-same /ccid-test/short-apdus.txt /ccid-test/short-answers.txt /tmp/short-1.txt

# --- the card dies mid-APDU ------------------------------------------------------------
pcsc_scan -n >/tmp/pcsc_scan.log 2>&1 &
scan_pid=$!
scan_count() {    # scan_count REGEX: pcsc_scan's card states that match
	tr '\r' '\n' </tmp/pcsc_scan.log | grep 'Card state: ' | grep -c -E "$1"
}
scan_more() { [ "$(scan_count "$1")" -gt "$2" ]; }
wait_until 10 scan_more 'Card inserted' 0 || note "pcsc_scan did not report the card within 10 s"

# vicc's DELAY, 5 s; the host kills vicc once vicc says the DELAY began
# (so the request may go out at once).
$A -r $R -t 20000 xfr 801000000400001388 >/tmp/kill.log 2>&1 &
kill_pid=$!
host_request kill-vicc
wait $kill_pid
rc=$?
cat /tmp/kill.log
ms=$(sed -n 's/^xfr [a-z]* ms=\([0-9]*\).*/\1/p' /tmp/kill.log)
if [ $rc -eq 3 ] && [ -n "$ms" ] && [ "$ms" -lt 4500 ]; then
	pass kill-apdu-error "the APDU failed after $ms ms (of a 5 s DELAY): $(head -n 1 /tmp/kill.log)"
else
	fail kill-apdu-error "rc=$rc: $(tail -n 2 /tmp/kill.log | tr '\n' ' ')"
fi
check_grep kill-card-removed '^wait-card absent' $T -r $R -t 10000 wait-card absent
if wait_until 10 scan_more 'Card removed' 0; then
	pass kill-pcsc-scan-removed "pcsc_scan: Card removed"
else
	fail kill-pcsc-scan-removed "pcsc_scan did not report the removal"
fi

# The card comes back: the guest sees it and it works.
host_request start-vicc
check_grep vicc-back-inserted '^wait-card present' $T -r $R -t 20000 wait-card present
if wait_until 10 scan_more 'Card inserted' 1; then
	pass vicc-back-pcsc-scan "pcsc_scan: Card inserted again"
else
	fail vicc-back-pcsc-scan "pcsc_scan did not report the new card"
fi
check_grep vicc-back-atr "^atr=$HOST_ATR " $A -r $R -t 20000 atr
check vicc-back-apdus $A -r $R run /ccid-test/short-apdus.txt /tmp/short-2.txt &&
	rp_compare vicc-back-same /ccid-test/short-apdus.txt /ccid-test/short-answers.txt /tmp/short-2.txt

kill $scan_pid 2>/dev/null
echo "----- pcsc_scan"
tr '\r' '\n' </tmp/pcsc_scan.log | grep -E 'Reader|Card state' | head -n 40
note "pcscd log: $(grep -c . "$CCIDG_PCSCD_LOG") lines"
pcscd_log
