#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The guest test of the pcsc shared-mode backend (docs/shared-mode.md,
# "The guest test"): a private pcscd with vpcd and the vicc test card on
# the host, `ccid-agent serve --card pcsc:...` in front of it, and the
# guest-boot kit's Debian 12 guest (tests/guest) using ccid-emu's reader
# through usb-redir with its stock kernel, pcscd and libccid.  Behind each
# controller:
#   - the guest's reader shows the card with the ATR a host application
#     sees (pcsc-test-app, opensc-tool);
#   - SELECT / READ BINARY and extended APDUs with 65535-byte answers give
#     byte-identical answers in the guest and on the host;
#   - cross-talk: the guest loops SELECT + READ + READ sequences while a
#     host application runs its own on the same card; both count
#     sequences and mixed-up answers (must be 0);
#   - a host application holds the card exclusively: the guest's APDU
#     waits lock_timeout and fails cleanly, the next one works once the
#     card is free; no guest APDU reaches the card meanwhile;
#   - vicc killed during a guest APDU: the APDU fails, the guest sees the
#     card removed (SCardGetStatusChange, pcsc_scan), and inserted again
#     when vicc comes back; the agent keeps running (ctl status).
#
# Usage: test-pcsc-guest.sh [--agent PATH] [--controllers "xhci uhci"]
#                           [--crosstalk SECONDS] [--quiet] [--keep DIR]
# Exit status: 0 passed, 1 failed, 2 setup error, 77 skipped (no QEMU,
# pcscd, vpcd, vicc's Python pieces, a C compiler or libpcsclite-dev).
# Needs root (or unprivileged user namespaces) for the private pcscd.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
GUEST_KIT=$SRC/tests/guest
CONTROLLERS=(xhci uhci)
QUIET=()
KEEP=
CROSSTALK_S=${PCSC_GUEST_CROSSTALK_SECONDS:-15}
AGENT=${CCID_AGENT:-}
READER="Virtual PCD 00 00"
LOCK_MS=3000     # the agent's lock_timeout
HOLD_MS=6000     # how long the host application holds the card

die() { printf 'test-pcsc-guest: error: %s\n' "$*" >&2; exit 2; }
skip() { printf 'test-pcsc-guest: %s (skipping)\n' "$*" >&2; exit 77; }

while (($#)); do
	case $1 in
	--agent) AGENT=${2:?--agent needs a path}; shift ;;
	--controllers) read -r -a CONTROLLERS <<<"${2:?--controllers needs a list}"; shift ;;
	--crosstalk) CROSSTALK_S=${2:?--crosstalk needs seconds}; shift ;;
	--quiet|-q) QUIET=(-q) ;;
	--keep) KEEP=${2:?--keep needs a directory}; shift ;;
	-h|--help) sed -n '3,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done
[[ $CROSSTALK_S =~ ^[1-9][0-9]*$ ]] || die "--crosstalk: '$CROSSTALK_S' is not a number of seconds"

# --- what we need, or skip -------------------------------------------------------------
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
command -v pcscd >/dev/null || [[ -x /usr/sbin/pcscd ]] || skip "pcscd not installed"
[[ -e /usr/lib/pcsc/drivers/serial/libifdvpcd.so ]] || skip "vpcd not installed (vsmartcard-vpcd)"
[[ -x /usr/bin/python3 && -d /usr/lib/python3/site-packages/virtualsmartcard/virtualsmartcard &&
	-d /usr/lib/python3/dist-packages/Cryptodome ]] ||
	skip "vicc needs /usr/bin/python3, python3-virtualsmartcard and python3-pycryptodome"
CC=${CC:-cc}
command -v "$CC" >/dev/null || skip "no C compiler ($CC)"
pkg-config --exists libpcsclite || skip "libpcsclite-dev not installed"

if [[ -z $AGENT ]]; then
	for cand in "$SRC"/build*/host-agent/ccid-agent; do
		[[ -x $cand ]] && AGENT=$cand && break
	done
fi
[[ -n $AGENT && -x $AGENT ]] || die "no ccid-agent: build the project or pass --agent"

"$GUEST_KIT/build-guest.sh" >&2 || die "build-guest.sh failed"

if [[ -n $KEEP ]]; then
	mkdir -p "$KEEP"
	WORK=$(cd "$KEEP" && pwd)
else
	# Short: pcscd's socket path must fit sockaddr_un.
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/pcsc-guest.XXXXXX")
fi
export HL_DIR=$WORK
# shellcheck source=../guest/host-lib.sh
. "$GUEST_KIT/host-lib.sh"
export XDG_DATA_HOME=$WORK/xdg-data XDG_RUNTIME_DIR=$WORK/xdg-run
mkdir -p "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"

PCSCD_DIR=$WORK/pcscd
AGENTS=()
cleanup() {
	local a
	for a in "${AGENTS[@]}"; do agent_stop "$a" >/dev/null 2>&1 || true; done
	vicc_stop
	"$HERE/private-pcscd.sh" stop "$PCSCD_DIR" >/dev/null 2>&1 || true
	[[ -n $KEEP ]] || rm -rf "$WORK"
	return 0
}
trap cleanup EXIT

# --- the host: private pcscd, vicc, the host application ----------------------------------
vicc_start() {
	/usr/bin/python3 "$HERE/vicc_card.py" --port "$VPCD_PORT" >>"$WORK/vicc.log" 2>&1 &
	echo $! >"$WORK/vicc.pid"
	# Killed on purpose later; no "Killed" job report from bash.
	disown $!
}
vicc_stop() {
	local pid
	pid=$(cat "$WORK/vicc.pid" 2>/dev/null) || return 0
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -f "$WORK/vicc.pid"
}

rc=0
"$HERE/private-pcscd.sh" start "$PCSCD_DIR" >"$WORK/pcscd.env" || rc=$?
((rc == 77)) && skip "no private pcscd possible here"
((rc == 0)) || die "cannot start the private pcscd"
# shellcheck disable=SC1091
. "$WORK/pcscd.env"
export PCSCLITE_CSOCK_NAME
vicc_start

# One binary for both sides: plain flags, since it also runs in the guest
# (Debian 12 like the host, libpcsclite.so.1 and libc only).
APP=$WORK/pcsc-test-app
# shellcheck disable=SC2046
"$CC" -std=gnu11 -O2 -Wall -Wextra -o "$APP" "$HERE/guest/pcsc-test-app.c" \
	$(pkg-config --cflags --libs libpcsclite) || die "cannot build pcsc-test-app"
happ() { "$APP" -r "$READER" "$@"; }

FAILS=0

# The APDUs both sides send: SELECT / READ BINARY on the small files,
# errors (file not found, offset and Le beyond the file, unknown INS),
# then extended APDUs: READ BINARY of the 65533-byte EF 2000 and PATTERN
# 65533 (65535-byte answers, the most vpcd carries), PATTERN 256, and an
# ECHO of a 60000-byte command.
make_apdus() {
	local f
	{
		echo "# SELECT FILE + READ BINARY"
		for f in 1001 1002 1003 1004; do
			echo "00A4000C02$f"
			echo "00B0000040"
		done
		echo "00B0001010"
		echo "00B0003F01"
		echo "00A4000C029999"
		echo "00B0000000"
		echo "80AA000000"
		echo "# extended"
		echo "00A4000C022000"
		echo "00B0000000FFFD"
		echo "8012000000FFFD"
		echo "80120000000100"
		printf '8014000000EA60'
		/usr/bin/python3 -c 'import sys; sys.stdout.write("".join("%02X" % ((i * 13 + 5) & 255) for i in range(60000)))'
		echo "0000"
	} >"$WORK/apdus.txt"
	# The first SELECT/READ pairs, for the checks after lock and kill.
	awk '!/^#/ && n++ < 8' "$WORK/apdus.txt" >"$WORK/short-apdus.txt"
}
make_apdus

happ -t 20000 atr >"$WORK/host-atr.log" || die "host application: no card: $(cat "$WORK/host-atr.log")"
HOST_ATR=$(sed -n 's/^atr=\([0-9A-F]*\).*/\1/p' "$WORK/host-atr.log")
[[ -n $HOST_ATR ]] || die "host application printed no ATR"
happ run "$WORK/apdus.txt" "$WORK/host-answers.txt" >/dev/null || die "host application: the APDUs failed"
happ run "$WORK/short-apdus.txt" "$WORK/short-answers.txt" >/dev/null || die "host application: the APDUs failed"
# The expectations must be what the test says they are, or comparing them
# proves little.
n_big=$(awk 'length($0) == 131070 && /9000$/' "$WORK/host-answers.txt" | wc -l)
((n_big == 2)) || die "the host's answers hold $n_big 65535-byte answers, expected 2"
[[ $(sed -n 2p "$WORK/host-answers.txt") == *9000 && $(sed -n 2p "$WORK/host-answers.txt" | wc -c) == 133 ]] ||
	die "the host's READ BINARY of 1001 is not 64 bytes + 9000"
echo "host: card ATR $HOST_ATR, $(grep -c . "$WORK/host-answers.txt") host answers recorded"

# --- what the guest's REQUEST lines ask for (run by watch_requests) ---------------------
on_request() {
	local what=$1 arg=${2:-}
	echo "$(date +%T.%N | cut -c1-12) $*" >>"$D/requests.log"
	case $what in
	crosstalk)
		happ -s "$RANDOM" crosstalk "$arg" 1 20 >"$D/host-crosstalk.log" 2>&1 &
		echo $! >"$D/host-crosstalk.pid" ;;
	hold)
		happ -t 5000 hold "$arg" >"$D/hold.log" 2>&1 &
		echo $! >"$D/hold.pid" ;;
	kill-vicc)
		# The guest has just sent a 5 s DELAY: kill vicc inside it,
		# once vicc says it is in it.
		wait_line "$WORK/vicc.log" '^vicc: DELAY' 10 ||
			echo "host: vicc never started the DELAY" >>"$D/requests.log"
		echo "$(date +%T.%N | cut -c1-12) SIGKILL vicc $(cat "$WORK/vicc.pid")" >>"$D/requests.log"
		vicc_stop
		# The agent keeps running, and says the card is gone (its
		# log line first, then its status).
		wait_line "$WORK/agent-$AG.log" "card removed from '$READER'" 5 || true
		agent_ctl "$AG" status >"$D/status-killed.json" 2>&1 || true ;;
	start-vicc)
		vicc_start ;;
	*) echo "host: unknown guest request '$*'" >>"$D/requests.log" ;;
	esac
}

# wait_line FILE REGEX SECONDS: a line matching REGEX is in FILE, now or
# as it is written (tail -F follows with inotify; no polling loop).
wait_line() {
	grep -q -m 1 -E -e "$2" < <(timeout "$3" tail -n +1 -F "$1" 2>/dev/null)
}
# wait_app PIDFILE SECONDS: the host application a request started has
# exited (not this shell's child: a pidfd, tests/common/wait-path.py).
wait_app() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 1
	/usr/bin/python3 "$SRC/tests/common/wait-path.py" exit "$2" "$pid"
}

EXPECT=(usb-enumerated stock-plist reader atr opensc-atr apdus-run apdus-same apdu-ext-65535 crosstalk
	unpower lock-wait-fail lock-recover lock-after-apdus lock-after-same
	kill-apdu-error kill-card-removed kill-pcsc-scan-removed vicc-back-inserted
	vicc-back-pcsc-scan vicc-back-atr vicc-back-apdus vicc-back-same)

ROWS=()
FAILED=0
T_SUITE=$SECONDS
for C in "${CONTROLLERS[@]}"; do
	echo "=== pcsc backend in the guest behind $C"
	T_C=$SECONDS
	FAILS=0
	D=$WORK/$C
	rm -rf "$D"
	mkdir -p "$D"
	AG=pcsc-$C
	agent_start "$AG" --card "pcsc:$READER,lock_timeout=$LOCK_MS" -l "unix:$D/ccid.sock" ||
		die "cannot start the agent: $(tail -n 3 "$WORK/agent-$AG.log")"
	AGENTS+=("$AG")
	cat >"$D/params" <<-EOF
	HOST_ATR=$HOST_ATR
	LOCK_MS=$LOCK_MS
	HOLD_MS=$HOLD_MS
	CROSSTALK_S=$CROSSTALK_S
	SEED=$RANDOM
	EOF
	: >"$D/requests.log"

	rc=0
	"$GUEST_KIT/boot-guest.sh" --no-build "${QUIET[@]}" -c "$C" -r "$D/ccid.sock" \
		-s "$HERE/guest/pcsc-guest.sh" -f "$D/params:/ccid-test/params" \
		-f "$APP:/ccid-test/pcsc-test-app" \
		-f "$WORK/apdus.txt:/ccid-test/apdus.txt" \
		-f "$WORK/host-answers.txt:/ccid-test/host-answers.txt" \
		-f "$WORK/short-apdus.txt:/ccid-test/short-apdus.txt" \
		-f "$WORK/short-answers.txt:/ccid-test/short-answers.txt" \
		-w "$D/boot" -t 300 &
	BOOT=$!
	mkdir -p "$D/boot"
	watch_requests "$D/boot/results.log" "$BOOT" on_request &
	WATCH=$!
	wait "$BOOT" || rc=$?
	wait "$WATCH" 2>/dev/null || true
	TIMED=$D/boot/results.timed

	if ((rc == 0)) && guest_expect "$TIMED" "${EXPECT[@]}"; then
		hres guest PASS "${#EXPECT[@]} guest results passed"
	else
		hres guest FAIL "boot-guest.sh exit $rc; guest results missing or failed (above)"
	fi

	# The host application's side of the cross-talk.
	if wait_app "$D/host-crosstalk.pid" 30 && grep -q '^crosstalk ' "$D/host-crosstalk.log" &&
		grep -q ' mixed=0 errors=0 ' "$D/host-crosstalk.log"; then
		hres host-crosstalk PASS "$(grep '^crosstalk ' "$D/host-crosstalk.log")"
	else
		hres host-crosstalk FAIL "$(tail -n 3 "$D/host-crosstalk.log" 2>/dev/null | tr '\n' ' ')"
	fi
	# Did the two really overlap?  The host application's transactions
	# had to wait for the guest's (waited_begins > 0).
	if grep -q ' waited_begins=[1-9]' "$D/host-crosstalk.log" 2>/dev/null; then
		hres crosstalk-overlap PASS "the host application waited for the guest's transaction $(sed -n 's/.* waited_begins=\([0-9]*\).*/\1/p' "$D/host-crosstalk.log") times"
	else
		hres crosstalk-overlap FAIL "the host application never waited for the guest: no overlap shown"
	fi
	# The exclusive hold: no APDU of the guest reached the card meanwhile.
	if wait_app "$D/hold.pid" 20 && grep -q '^hold released' "$D/hold.log" &&
		grep -q ' others=0$' "$D/hold.log"; then
		hres host-hold PASS "$(grep '^hold done' "$D/hold.log")"
	else
		hres host-hold FAIL "$(tr '\n' ' ' <"$D/hold.log" 2>/dev/null)"
	fi
	if grep -q '"present": false' "$D/status-killed.json" 2>/dev/null; then
		hres agent-card-gone PASS "ctl status after the kill: $(cat "$D/status-killed.json")"
	else
		hres agent-card-gone FAIL "ctl status after the kill: $(cat "$D/status-killed.json" 2>/dev/null)"
	fi
	st=$(agent_ctl "$AG" status 2>&1 || true)
	if agent_alive "$AG" && [[ $st == *'"card": "pcsc"'* && $st == *'"present": true'* ]]; then
		hres agent-alive PASS "after the guest: $st"
	else
		hres agent-alive FAIL "agent gone or card absent: $st $(tail -n 3 "$WORK/agent-$AG.log")"
	fi
	arc=0
	agent_stop "$AG" || arc=$?
	if ((arc == 0)); then
		hres agent-sigterm PASS "clean exit 0 on SIGTERM"
	else
		hres agent-sigterm FAIL "exit $arc on SIGTERM: $(tail -n 3 "$WORK/agent-$AG.log")"
	fi
	AGENTS=()

	hct() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" "$D/host-crosstalk.log" 2>/dev/null; }
	ROWS+=("$(printf '%-4s %-4s  atr %s ms (host %s s)  crosstalk guest %s seq %s mixed, host %s seq %s mixed  lock fail %s ms, recover %s ms  %d s' \
		"$C" "$( ((FAILS)) && echo FAIL || echo ok)" \
		"$(guest_metric "$TIMED" boot_to_atr_ms)" "$(guest_metric_host "$TIMED" boot_to_atr_ms)" \
		"$(guest_metric "$TIMED" crosstalk_sequences)" "$(guest_metric "$TIMED" crosstalk_mixed)" \
		"$(hct sequences)" "$(hct mixed)" \
		"$(guest_metric "$TIMED" lock_fail_ms)" "$(guest_metric "$TIMED" lock_recover_ms)" \
		$((SECONDS - T_C)))")
	((FAILS == 0)) || FAILED=1
	# vicc must be back for the next controller.
	happ -t 10000 atr >/dev/null || die "the card did not come back after $C"
done

echo "=== summary (guest uptime ms; host seconds since QEMU started; crosstalk ${CROSSTALK_S} s)"
printf '%s\n' "${ROWS[@]}"
echo "total $((SECONDS - T_SUITE)) s"
if ((FAILED)); then
	echo "test-pcsc-guest: FAIL (${KEEP:+logs in $WORK; }rerun with --keep DIR for the logs)"
else
	echo "test-pcsc-guest: PASS"
fi
exit "$FAILED"
