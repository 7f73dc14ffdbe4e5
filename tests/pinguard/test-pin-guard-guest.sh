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
# Usage: test-pin-guard-guest.sh [--agent PATH] [--quiet] [--keep DIR]
# Exit status: 0 pass, 1 fail, 2 setup error, 77 skipped (no QEMU).
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
GUEST=$SRC/tests/guest
QUIET=()
KEEP=
AGENT=${CCID_AGENT:-}
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
	-h|--help) sed -n '3,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done

command -v "${QEMU:-qemu-system-x86_64}" >/dev/null || skip "no qemu-system-x86_64"
# shellcheck source=../guest/host-lib.sh
. "$GUEST/host-lib.sh"
hl_find_agent "$SRC" || die "no ccid-agent: build the project or pass --agent"
"$GUEST/build-guest.sh" || die "build-guest.sh failed"
hl_work "$KEEP" ccid-pin-guard-guest

AGENTS=()
cleanup() {
	local a
	for a in "${AGENTS[@]}"; do agent_stop "$a" >/dev/null 2>&1 || true; done
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
EOP

G_MESSAGES_DEBUG=all agent_start guard -v -c "piv:$CARD" -l "unix:$WORK/piv.sock" ||
	die "cannot start the agent: $(tail -n 5 "$WORK/agent-guard.log")"
AGENTS=(guard)
rc=0
"$GUEST/boot-guest.sh" --no-build "${QUIET[@]}" -r "$WORK/piv.sock" \
	-s "$HERE/guest/pin-guard-guest.sh" -f "$WORK/params:/ccid-test/params" \
	-w "$WORK/boot" -t 600 || rc=$?
EXPECT=(usb-enumerated atr change-pin pkcs11-guess right-pin-refused still-one-try)
for ((i = 1; i <= N_GUESSES; i++)); do EXPECT+=("guess-$i"); done
if guest_expect "$WORK/boot/results.timed" "${EXPECT[@]}"; then
	hres guest PASS "${#EXPECT[@]} guest results passed"
else
	hres guest FAIL "boot-guest.sh exit $rc; guest results missing or failed (above)"
fi
arc=0
agent_stop guard || arc=$?
AGENTS=()
((arc == 0)) || hres agent-exit FAIL "exit $arc"
LOG=$WORK/agent-guard.log

info=$("$AGENT" piv info "$CARD" 2>&1) || true
if grep -q "pin: 1 of 3 tries left\$" <<<"$info"; then
	hres last-try-kept PASS "ccid-agent piv info: pin: 1 of 3 tries left"
else
	hres last-try-kept FAIL "ccid-agent piv info: ${info//$'\n'/; }"
fi

# Refusals: guesses 3..N, OpenSC's (it may ask more than once), the right PIN.
refused=$(grep -c "PIN guard: refused the guest's" "$LOG" || true)
want=$((N_GUESSES - 2 + 2))
if ((refused >= want)); then
	hres refusals-logged PASS "$refused refusals logged, e.g.: $(grep -m 1 "PIN guard: refused" "$LOG")"
else
	hres refusals-logged FAIL "$refused refusal lines, expected at least $want"
fi

# No PIN bytes in any log line: ASCII, and hex as any dump would spell it.
hexpin() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
leaks=()
debug_lines=$(grep -c '\[debug\]' "$LOG" || true)
for secret in "$NEW_PIN" "$GUESS"; do
	h=$(hexpin "$secret")
	spaced=$(sed 's/../& /g; s/ $//' <<<"$h")
	for pat in "$secret" "$h" "$spaced" "${spaced// /:}"; do
		if grep -qiF -- "$pat" "$LOG" "$WORK/agent-guard.out"; then
			leaks+=("$pat")
		fi
	done
done
if ((${#leaks[@]} == 0 && debug_lines > 0)); then
	hres no-pin-in-logs PASS "$(wc -l <"$LOG") log lines ($debug_lines debug) hold neither PIN nor guess"
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
