#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# ccid-agent's PIV commands as a subprocess: `piv init|info|reset`, the
# selftest on a piv card (default store under XDG_DATA_HOME, and a given
# directory), and the errors for a corrupt store and bad command lines.
#
#   test_piv_cli.sh PATH/TO/ccid-agent
set -u
agent=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ccid-piv-cli-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
XDG_DATA_HOME=$tmp/xdg
export XDG_DATA_HOME
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "not ok - $1"; sed 's/^/    /' "$tmp/out" "$tmp/err"; }

# expect NAME STATUS PATTERN(stdout+stderr, grep -E) -- COMMAND...
expect() {
	name=$1 want=$2 pattern=$3
	shift 4
	"$@" >"$tmp/out" 2>"$tmp/err"
	got=$?
	if [ "$got" -ne "$want" ]; then
		echo "    exit status $got, expected $want"
		bad "$name"
	elif ! cat "$tmp/out" "$tmp/err" | grep -Eq -- "$pattern"; then
		echo "    output does not match /$pattern/"
		bad "$name"
	else
		ok "$name"
	fi
}

card=$tmp/card
expect "piv init" 0 "created a PIV card in $card" -- "$agent" piv init "$card"
expect "piv init again refuses" 1 "already holds a card; 'ccid-agent piv reset" -- \
	"$agent" piv init "$card"
expect "piv info of a new card" 0 'pin: 3 of 3 tries left, default' -- \
	"$agent" piv info "$card"
expect "piv info: management key" 0 'management key: 3DES, default' -- \
	"$agent" piv info "$card"
if [ "$(stat -c %a "$card")" = 700 ] && [ "$(stat -c %a "$card/card.ini")" = 600 ]; then
	ok "modes 0700 and 0600"
else
	echo "    modes $(stat -c %a "$card") $(stat -c %a "$card/card.ini")" >"$tmp/out"; : >"$tmp/err"
	bad "modes 0700 and 0600"
fi
serial=$("$agent" piv info "$card" | sed -n 's/^serial: //p')
expect "piv reset" 0 "reset the PIV card in $card to a new one" -- \
	"$agent" piv reset "$card"
if [ -n "$serial" ] && ! "$agent" piv info "$card" | grep -q "^serial: $serial\$"; then
	ok "reset gives a new serial"
else
	"$agent" piv info "$card" >"$tmp/out" 2>"$tmp/err"
	bad "reset gives a new serial"
fi
expect "selftest on the card" 0 'selftest: [0-9]+ passed, 0 failed' -- \
	"$agent" selftest --card "piv:$card"
expect "selftest reads the serial" 0 'GET SERIAL: [0-9]+' -- \
	"$agent" selftest --card "piv:$card"
expect "selftest on the default card creates it" 0 \
	"virtual PIV card in $XDG_DATA_HOME/ccid-emu/piv/default \\(created now" -- \
	"$agent" selftest --card piv
expect "piv info without DIR shows the default card" 0 \
	"card: $XDG_DATA_HOME/ccid-emu/piv/default" -- "$agent" piv info
expect "selftest, 2 slots: a card each" 0 "virtual PIV card in $card-1" -- \
	"$agent" selftest --card "piv:$card" --slots 2

printf '[card]\nformat=1\nserial=5\n[pin]\nvalue=zz\n' >"$card/card.ini"
expect "corrupt store: info names the file and the field" 1 \
	"$card/card.ini: \\[pin\\] value: wrong number of hex digits" -- \
	"$agent" piv info "$card"
expect "corrupt store: selftest fails naming it" 1 "$card/card.ini: \\[pin\\] value" -- \
	"$agent" selftest --card "piv:$card"
expect "piv info of an empty directory" 1 "no PIV card there \\(.ccid-agent piv init" -- \
	"$agent" piv info "$tmp"
expect "piv without an action" 2 'expected init, info or reset' -- "$agent" piv
expect "piv with an unknown action" 2 "unknown action 'frob'" -- \
	"$agent" piv frob "$card"
expect "--card piv: without a directory" 2 "card 'piv:' needs a card directory" -- \
	"$agent" selftest --card piv:

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
