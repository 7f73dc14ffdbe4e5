#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# ccid-agent as a subprocess: both selftests pass, and bad command lines
# exit 2 with a message naming what was wrong.
#
#   test_cli.sh PATH/TO/ccid-agent
set -u
agent=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ccid-cli-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
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

expect "selftest loopback" 0 'selftest: [0-9]+ passed, 0 failed' -- \
	"$agent" selftest --card loopback
expect "selftest loopback shows time extensions" 0 \
	'DELAY 1500 ms: SW 9000 after [0-9]+ ms with [2-9] time-extension' -- \
	"$agent" selftest --card loopback
expect "selftest loopback, 3 slots" 0 'slot 2:' -- \
	"$agent" selftest --card loopback --slots 3

export XDG_DATA_HOME="$tmp/xdg"
expect "selftest virtual creates the NSS DB" 0 'created now' -- \
	"$agent" selftest
expect "selftest virtual prints 3 subjects" 0 \
	'certificate 2: [0-9]+ bytes, subject "CN=ccid-emu virtual card encryption' -- \
	"$agent" selftest
expect "selftest virtual reuses the NSS DB" 0 'nssdb \(existing' -- \
	"$agent" selftest
expect "selftest virtual:DIR" 0 'selftest: [0-9]+ passed, 0 failed' -- \
	"$agent" selftest --card "virtual:$tmp/xdg/ccid-emu/nssdb"
expect "selftest virtual --certs" 0 'selftest: [0-9]+ passed, 0 failed' -- \
	"$agent" selftest --certs ccid-emu-enc,ccid-emu-sign,ccid-emu-id

expect "help" 0 'selftest' -- "$agent" --help
expect "selftest --help" 0 '--card=CARD' -- "$agent" selftest --help
expect "no command" 2 'Usage: ccid-agent COMMAND' -- "$agent"
expect "unknown command" 2 "unknown command 'frobnicate'" -- \
	"$agent" frobnicate
expect "unknown option" 2 'Unknown option --bogus' -- \
	"$agent" selftest --bogus
expect "unknown card" 2 "unknown card 'smartie'" -- \
	"$agent" selftest --card smartie
expect "virtual: without a directory" 2 "needs an NSS database directory" -- \
	"$agent" selftest --card virtual:
expect "bad pin_guard" 2 "card option 'pin_guard=maybe': expected pin_guard=keep-last .* or pin_guard=off" -- \
	"$agent" selftest --card loopback,pin_guard=maybe
expect "pin_guard=off accepted" 0 'selftest: [0-9]+ passed, 0 failed' -- \
	"$agent" selftest --card loopback,pin_guard=off
expect "too many slots" 2 'slots must be 1..8, got 9' -- \
	"$agent" selftest --slots 9
expect "slots not a number" 2 'Cannot parse integer value' -- \
	"$agent" selftest --slots many
expect "extra argument" 2 "unexpected argument 'now'" -- \
	"$agent" selftest now
expect "--certs with two names" 2 'exactly three nicknames' -- \
	"$agent" selftest --certs a,b
expect "--certs with loopback" 2 'only applies to virtual' -- \
	"$agent" selftest --card loopback --certs a,b,c
expect "missing NSS DB" 1 "NSS database directory $tmp/none does not exist" -- \
	"$agent" selftest --card "virtual:$tmp/none"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
