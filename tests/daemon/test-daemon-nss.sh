#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The ATR of an `nss:` entry (docs/daemon.md, "Entries"): a softhsm2 token
# behind an NSS database (tests/nss/make-softhsm-nssdb.sh) configured as
# [entry tok] card=nss:DB, on a private session bus:
#   - before any attach the Atr is unknown ("");
#   - the built-in virtual entry attached first (libcacard is set up once
#     per process: the daemon sets it up for both kinds at start);
#   - attached to a paused QEMU, the entry shows the ATR of libcacard's
#     card for the token (its CAC ATR), and the state card-present;
#   - detached and attached again: the same ATR.
#
# Usage: test-daemon-nss.sh AGENT
# Exit status: 0 pass, 1 fail, 2 setup error (softhsm2, libnss3-tools,
# opensc, openssl or QEMU missing: the message names the package).
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NSS=$(cd "$HERE/../nss" && pwd)
AGENT=${1:?usage: test-daemon-nss.sh PATH-TO-ccid-agent}
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")
PY=/usr/bin/python3
# libcacard's CAC card (cac_get_atr), the same for a soft (virtual) card
# and a token's card.
CATR=3B7A18000073667465206364313434

die() { printf 'test-daemon-nss: error: %s\n' "$*" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (package qemu-system-x86)"
if [[ -z ${CCID_DAEMON_TEST_BUS:-} ]]; then
	command -v dbus-run-session >/dev/null || die "dbus-run-session not found (Debian package dbus-daemon)"
	export CCID_DAEMON_TEST_BUS=1
	exec dbus-run-session -- "${BASH_SOURCE[0]}" "$AGENT"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ccid-daemon-nss.XXXXXX")
export XDG_DATA_HOME=$WORK/data XDG_CONFIG_HOME=$WORK/config XDG_RUNTIME_DIR=$WORK/run
export PCSCLITE_CSOCK_NAME=$WORK/no-pcscd.comm
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME/ccid-emu" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
DPID= QPID=
cleanup() {
	[[ -n $DPID ]] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	[[ -n $QPID ]] && kill -KILL "$QPID" 2>/dev/null
	rm -rf "$WORK"
	return 0
}
trap cleanup EXIT

rc=0
"$NSS/make-softhsm-nssdb.sh" "$WORK/nss" >"$WORK/fixture.log" 2>&1 || rc=$?
((rc == 0)) || die "the softhsm2 fixture failed (exit $rc): $(tail -n 3 "$WORK/fixture.log")"
export SOFTHSM2_CONF=$WORK/nss/softhsm2.conf

FAILS=0
pass() { echo "PASS $1: ${*:2}"; }
fail() { echo "FAIL $1: ${*:2}"; FAILS=$((FAILS + 1)); }
# entry_is ID PYTHON_EXPR SECONDS: waits until the entry (as `e`) of
# list --json satisfies the expression.
entry_is() {
	local id=$1 expr=$2 end=$(($(date +%s%3N) + $3 * 1000))
	until "$AGENT" list --json 2>/dev/null | $PY -c "
import json, sys
e = [x for x in json.load(sys.stdin) if x['id'] == sys.argv[1]]
sys.exit(0 if e and ($expr) else 1)" "$id" 2>/dev/null; do
		(($(date +%s%3N) < end)) || return 1
		sleep 0.05
	done
}
entry_json() {
	"$AGENT" list --json | $PY -c 'import json,sys; print([x for x in json.load(sys.stdin) if x["id"] == sys.argv[1]])' "$1"
}

cat >"$XDG_CONFIG_HOME/ccid-emu/agent.conf" <<EOF2
[entry tok]
card=nss:$WORK/nss/hwdb
EOF2
"$AGENT" daemon --no-readers --no-usb --no-libvirt >"$WORK/daemon.log" 2>&1 &
DPID=$!
gdbus wait --session --timeout 10 org.ccidemu.Agent1 || die "no daemon: $(cat "$WORK/daemon.log")"

entry_is tok "e[0]['card'] == 'nss' and e[0]['atr'] == ''" 5 &&
	pass atr-unknown "before any attach: $(entry_json tok)" || fail atr-unknown "$(entry_json tok)"

qemu-system-x86_64 -machine pc -accel tcg -nodefaults -display none -S -device qemu-xhci \
	-qmp "unix:$WORK/vm1.qmp,server=on,wait=off" >"$WORK/vm1.log" 2>&1 &
QPID=$!
end=$(($(date +%s%3N) + 10000))
until [[ -S $WORK/vm1.qmp ]]; do
	(($(date +%s%3N) < end)) || die "QEMU made no QMP socket: $(cat "$WORK/vm1.log")"
	sleep 0.05
done
"$AGENT" vm add vm1 --qmp "unix:$WORK/vm1.qmp" >/dev/null || die "vm add vm1 failed"

out=$("$AGENT" attach virtual vm1 2>&1) && pass attach-virtual-first "$out" ||
	fail attach-virtual-first "$out; $(tail -n 5 "$WORK/daemon.log")"
out=$("$AGENT" attach tok vm1 2>&1) && pass attach "$out" || fail attach "$out; $(tail -n 5 "$WORK/daemon.log")"
entry_is tok "e[0]['atr'] == '$CATR' and e[0]['state'] == 'card-present'" 5 &&
	pass atr-nss "the token's card: $(entry_json tok)" || fail atr-nss "want $CATR: $(entry_json tok)"
out=$("$AGENT" detach tok vm1 2>&1) || fail detach "$out"
out=$("$AGENT" attach tok vm1 2>&1) || fail attach-again "$out"
entry_is tok "e[0]['atr'] == '$CATR'" 5 &&
	pass atr-nss-again "$(entry_json tok)" || fail atr-nss-again "want $CATR: $(entry_json tok)"
kill -0 "$DPID" 2>/dev/null && pass daemon-alive "still running" || fail daemon-alive "$(tail -n 5 "$WORK/daemon.log")"

if ((FAILS)); then
	echo "daemon log:"; sed 's/^/  | /' "$WORK/daemon.log"
	echo "test-daemon-nss: FAIL"
	exit 1
fi
echo "test-daemon-nss: PASS"
