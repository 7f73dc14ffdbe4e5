#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Guest-boot test of the PIN-retry guard (docs/serve.md#pin-retry-guard):
# a stock Debian 12 guest (tests/guest kit) guesses the PIN of the
# virtual PIV card behind `ccid-agent serve --card piv:DIR` (guard on, the
# default) with yubico-piv-tool and OpenSC (guest/pin-guard-guest.sh).
# The host then checks:
#   - the card took exactly two wrong guesses: `ccid-agent piv info`
#     says 1 of 3 tries left;
#   - the agent logged one refusal per later attempt;
#   - the agent's whole log, with every log on (-v, G_MESSAGES_DEBUG=all),
#     holds neither the guest's PIN nor its guess, in ASCII or hex;
#   - the host user's own reader (pin_guard=off) verifies the right PIN
#     with the last try: `ccid-agent selftest` can only ask, so this
#     step is the "pin guard serve" test's; here the card's count is
#     what proves the try is left.
#
# --daemon: the same guest, its reader from `ccid-agent daemon` instead
# (an entry `card=piv:DIR`, attached on the guest's request over QMP), on
# a private session bus.  The host also checks that each refusal reached
# the user: a PinGuardRefused signal (`ccid-agent watch --json`), the
# entry's PinGuardRefusals count (`ccid-agent list --json`) and, with
# --menu PATH, ccid-menu's "PIN try kept for you" message in its window
# (read through AT-SPI under Xvfb; a screenshot goes to --artifacts DIR).
#
# Usage: test-pin-guard-guest.sh [--agent PATH] [--daemon [--menu PATH]
#                                [--artifacts DIR]] [--quiet] [--keep DIR]
# Exit status: 0 pass, 1 fail, 2 setup error, 77 skipped (no QEMU).
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
GUEST=$SRC/tests/guest
QUIET=()
KEEP=
AGENT=${CCID_AGENT:-}
MODE=serve
MENU=
ART=
ARGS=("$@")
NEW_PIN=80642975
GUESS=97531864
N_GUESSES=5

die() { printf 'test-pin-guard-guest: error: %s\n' "$*" >&2; exit 2; }
skip() { printf 'test-pin-guard-guest: %s: skipped\n' "$*"; exit 77; }

while (($#)); do
	case $1 in
	--agent) AGENT=${2:?--agent needs a path}; shift ;;
	--quiet|-q) QUIET=(-q) ;;
	--keep) KEEP=${2:?--keep needs a directory}; shift ;;
	--daemon) MODE=daemon ;;
	--menu) MENU=${2:?--menu needs a path}; shift ;;
	--artifacts) ART=${2:?--artifacts needs a directory}; shift ;;
	-h|--help) sed -n '3,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done

command -v "${QEMU:-qemu-system-x86_64}" >/dev/null || skip "no qemu-system-x86_64"
[[ -z $MENU || $MODE == daemon ]] || die "--menu needs --daemon"
# The daemon and its clients on a private session bus.
if [[ $MODE == daemon && -z ${CCID_PIN_GUARD_TEST_BUS:-} ]]; then
	command -v dbus-run-session >/dev/null || die "dbus-run-session not found (Debian package dbus-daemon)"
	export CCID_PIN_GUARD_TEST_BUS=1
	exec dbus-run-session -- "${BASH_SOURCE[0]}" "${ARGS[@]}"
fi
# shellcheck source=../guest/host-lib.sh
. "$GUEST/host-lib.sh"
hl_find_agent "$SRC" || die "no ccid-agent: build the project or pass --agent"
"$GUEST/build-guest.sh" || die "build-guest.sh failed"
hl_work "$KEEP" ccid-pin-guard-guest

AGENTS=()
PIDS=()
cleanup() {
	local a p
	for a in "${AGENTS[@]}"; do agent_stop "$a" >/dev/null 2>&1 || true; done
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[[ -n $KEEP ]] || rm -rf "$WORK"
	return 0
}
trap cleanup EXIT

FAILS=0

CARD=$WORK/card
ATR=$("$AGENT" selftest --card "piv:$WORK/atr-probe" 2>/dev/null |
	sed -n 's/.*IccPowerOn: ATR \([0-9A-F ]*\)$/\1/p' | tr -d ' ' | cut -c1-40)
[[ $ATR == 3B8E8131FE45* ]] || die "cannot read the piv card's ATR from the selftest (got '$ATR')"

cat >"$WORK/params" <<EOP
ATR=$ATR
NEW_PIN=$NEW_PIN
GUESS=$GUESS
N_GUESSES=$N_GUESSES
VIA=$MODE
EOP
EXPECT=(usb-enumerated atr change-pin pkcs11-guess right-pin-refused still-one-try)
for ((i = 1; i <= N_GUESSES; i++)); do EXPECT+=("guess-$i"); done
LOG=$WORK/agent-guard.log
# Everything the user can read, searched for the PIN below.
OUTPUTS=("$LOG" "$WORK/agent-guard.out")

# The guest, reading the card behind `serve`.
run_serve() {
	local rc=0 arc=0

	G_MESSAGES_DEBUG=all agent_start guard -v -c "piv:$CARD" -l "unix:$WORK/piv.sock" ||
		die "cannot start the agent: $(tail -n 5 "$LOG")"
	AGENTS=(guard)
	"$GUEST/boot-guest.sh" --no-build "${QUIET[@]}" -r "$WORK/piv.sock" \
		-s "$HERE/guest/pin-guard-guest.sh" -f "$WORK/params:/ccid-test/params" \
		-w "$WORK/boot" -t 600 || rc=$?
	guest_result $rc
	agent_stop guard || arc=$?
	AGENTS=()
	((arc == 0)) || hres agent-exit FAIL "exit $arc"
}

guest_result() {
	if guest_expect "$WORK/boot/results.timed" "${EXPECT[@]}"; then
		hres guest PASS "${#EXPECT[@]} guest results passed"
	else
		hres guest FAIL "boot-guest.sh exit $1; guest results missing or failed (above)"
	fi
}

# The guest, its reader attached by `ccid-agent daemon` when it asks.
VM=guessing-guest
on_request() {
	local rc=0 out
	case $1 in
	attach)
		out=$("$AGENT" vm add "$VM" --qmp "unix:$WORK/qmp.sock" 2>&1) || rc=$?
		echo "vm-add rc=$rc $out" >>"$WORK/requests.log"
		rc=0
		out=$("$AGENT" attach guarded "$VM" 2>&1) || rc=$?
		echo "attach rc=$rc $out" >>"$WORK/requests.log" ;;
	*) echo "unknown request '$*'" >>"$WORK/requests.log" ;;
	esac
}

start_menu() {
	local dnum
	mkfifo "$WORK/display"
	Xvfb -displayfd 3 -screen 0 800x600x24 -nolisten tcp 3>"$WORK/display" 2>"$WORK/xvfb.log" &
	PIDS+=($!)
	read -r dnum <"$WORK/display" || die "Xvfb did not start: $(cat "$WORK/xvfb.log")"
	export DISPLAY=:$dnum
	unset NO_AT_BRIDGE
	export XDG_DATA_DIRS=$SRC/host-agent/menu:${XDG_DATA_DIRS:-/usr/local/share:/usr/share}
	"$MENU" --window --no-notify >"$WORK/menu.log" 2>&1 &
	MPID=$!
	PIDS+=("$MPID")
	OUTPUTS+=("$WORK/menu.log")
}

run_daemon() {
	local rc=0 boot watch

	export XDG_CONFIG_HOME=$WORK/xdg-config
	# No pcscd for the daemon: the host's readers would be entries too.
	export PCSCLITE_CSOCK_NAME=$WORK/no-pcscd.comm
	mkdir -p "$XDG_CONFIG_HOME/ccid-emu"
	cat >"$XDG_CONFIG_HOME/ccid-emu/agent.conf" <<EOC
[entry guarded]
card=piv:$CARD
label=Guarded PIV card
EOC
	G_MESSAGES_DEBUG=all "$AGENT" daemon --no-readers --no-libvirt --no-usb \
		>"$WORK/agent-guard.out" 2>"$LOG" &
	DPID=$!
	PIDS+=("$DPID")
	gdbus wait --session --timeout 10 org.ccidemu.Agent1 ||
		die "the daemon did not appear on the bus: $(tail -n 5 "$LOG")"
	# The daemon's events, from before the guest can guess.
	: >"$WORK/events.json"
	"$AGENT" watch --json >"$WORK/events.json" 2>"$WORK/events.err" &
	PIDS+=($!)
	OUTPUTS+=("$WORK/events.json")
	timeout 10 grep -q -m 1 '"ready"' <(tail -n +1 -F "$WORK/events.json" 2>/dev/null) ||
		die "watch --json did not get ready: $(cat "$WORK/events.err")"
	if [[ -n $MENU ]]; then
		start_menu
		# Read while the guest runs: its power-off ends the session,
		# and the menu's next message replaces this one.
		/usr/bin/python3 "$HERE/menu_message.py" "PIN try kept for you" "$ART" 900 \
			>"$WORK/menu-message.txt" 2>&1 &
		MSGPID=$!
		PIDS+=("$MSGPID")
	fi

	: >"$WORK/requests.log"
	mkdir -p "$WORK/boot"
	"$GUEST/boot-guest.sh" --no-build "${QUIET[@]}" -c xhci --qmp "$WORK/qmp.sock" \
		-s "$HERE/guest/pin-guard-guest.sh" -f "$WORK/params:/ccid-test/params" \
		--pidfile "$WORK/boot/qemu.pid" -w "$WORK/boot" -t 600 &
	boot=$!
	watch_requests "$WORK/boot/results.log" "$boot" on_request &
	watch=$!
	wait "$boot" || rc=$?
	wait "$watch" 2>/dev/null || true
	cat "$WORK/requests.log"
	guest_result $rc
	if [[ -n $MENU ]]; then
		timeout 20 tail --pid="$MSGPID" -f /dev/null || kill "$MSGPID" 2>/dev/null
	fi
	grep -q '^attach rc=0' "$WORK/requests.log" &&
		hres daemon-attach PASS "$(grep -m 1 '^attach' "$WORK/requests.log")" ||
		hres daemon-attach FAIL "$(tr '\n' ';' <"$WORK/requests.log")"
}

if [[ $MODE == daemon ]]; then
	run_daemon
else
	run_serve
fi

# Refusals: guesses 3..N, OpenSC's (it may ask more than once), the right PIN.
refused=$(grep -c "PIN guard: refused the guest's" "$LOG" || true)
want=$((N_GUESSES - 2 + 2))
if ((refused >= want)); then
	hres refusals-logged PASS "$refused refusals logged, e.g.: $(grep -m 1 "PIN guard: refused" "$LOG")"
else
	hres refusals-logged FAIL "$refused refusal lines, expected at least $want"
fi

# Through the daemon, each refusal reached the user: a D-Bus signal, the
# entry's count, and the menu's message.
daemon_checks() {
	local events count msg arc=0
	events=$(/usr/bin/python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["event"] == "pin-guard-refused":
        assert (e["entry"], e["vm"], e["command"], e["reference"]) == ("guarded", sys.argv[2], "VERIFY", 0x80), e
        n += 1
print(n)' "$WORK/events.json" "$VM" 2>&1 || true)
	if ((events == refused)); then
		hres dbus-signal PASS "$events PinGuardRefused signals (watch --json), e.g.: $(grep -m 1 pin-guard-refused "$WORK/events.json")"
	else
		hres dbus-signal FAIL "$events pin-guard-refused events for $refused refusals: $(grep pin-guard "$WORK/events.json" | head -n 3)"
	fi
	count=$("$AGENT" list --json | /usr/bin/python3 -c '
import json, sys
print([e for e in json.load(sys.stdin) if e["id"] == "guarded"][0]["pin_guard_refusals"])' || true)
	if [[ $count == "$refused" ]]; then
		hres entry-count PASS "list --json: pin_guard_refusals $count"
	else
		hres entry-count FAIL "list --json: pin_guard_refusals '$count', $refused refused"
	fi
	if [[ -n $MENU ]]; then
		msg=$(cat "$WORK/menu-message.txt")
		if [[ $msg == *"VM $VM sent a VERIFY that could have used the last try of PIN 0x80 on Guarded PIV card"*"not blocked"* ]]; then
			hres menu-window-message PASS "$msg"
		else
			hres menu-window-message FAIL "window: $msg; menu log: $(tail -n 3 "$WORK/menu.log")"
		fi
		if grep -q "^ccid-menu: PIN try kept for you: VM $VM sent a VERIFY" "$WORK/menu.log"; then
			hres menu-message-log PASS "$(grep -c 'PIN try kept for you' "$WORK/menu.log") messages"
		else
			hres menu-message-log FAIL "$(tail -n 5 "$WORK/menu.log")"
		fi
		kill -0 "$MPID" 2>/dev/null && hres menu-alive PASS "ccid-menu still running" ||
			hres menu-alive FAIL "ccid-menu exited: $(tail -n 5 "$WORK/menu.log")"
	fi
	kill -TERM "$DPID"
	wait "$DPID" || arc=$?
	((arc == 0)) && hres daemon-exit PASS "status 0" || hres daemon-exit FAIL "exit $arc: $(tail -n 5 "$LOG")"
}
[[ $MODE != daemon ]] || daemon_checks

# The card, read by the host once the agent or daemon has let go of it.
info=$("$AGENT" piv info "$CARD" 2>&1) || true
if grep -q "pin: 1 of 3 tries left\$" <<<"$info"; then
	hres last-try-kept PASS "ccid-agent piv info: pin: 1 of 3 tries left"
else
	hres last-try-kept FAIL "ccid-agent piv info: ${info//$'\n'/; }"
fi


# No PIN bytes in any log line: ASCII, and hex as any dump would spell it.
hexpin() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
leaks=()
# serve -v marks its debug lines "[debug]"; the daemon leaves them to
# GLib's handler (": DEBUG: ", on stdout).
debug_lines=$(cat "${OUTPUTS[@]}" | grep -c -e '\[debug\]' -e ': DEBUG: ' || true)
for secret in "$NEW_PIN" "$GUESS"; do
	h=$(hexpin "$secret")
	spaced=$(sed 's/../& /g; s/ $//' <<<"$h")
	for pat in "$secret" "$h" "$spaced" "${spaced// /:}"; do
		if grep -qiF -- "$pat" "${OUTPUTS[@]}"; then
			leaks+=("$pat")
		fi
	done
done
if ((${#leaks[@]} == 0 && debug_lines > 0)); then
	hres no-pin-in-logs PASS "$(cat "${OUTPUTS[@]}" | wc -l) lines in ${#OUTPUTS[@]} outputs ($debug_lines debug) hold neither PIN nor guess"
else
	hres no-pin-in-logs FAIL "found: ${leaks[*]:-} (debug lines: $debug_lines)"
fi

guesses=$(awk '$2 == "METRIC" && $3 ~ /^guess_/ { printf "%s%s", sep, $4; sep = "," }' "$WORK/boot/results.timed")
echo "=== summary: $N_GUESSES yubico-piv-tool guesses (tries left reported: $guesses), 1 OpenSC guess, 1 right PIN; $refused refused by the guard; card left with 1 try"
if ((FAILS)); then
	echo "test-pin-guard-guest: FAIL (${KEEP:+logs in $WORK; }rerun with --keep DIR for the logs)"
	exit 1
fi
echo "test-pin-guard-guest: PASS"
