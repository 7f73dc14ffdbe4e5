#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# PC/SC readers as "Shared <reader>" entries of `ccid-agent daemon`, on a
# private pcscd with the vpcd driver (tests/pcsc/private-pcscd.sh: two
# readers, "Virtual PCD 00 00" and "... 01") and the vicc test card
# (tests/pcsc/vicc_card.py), on a private session bus:
#   - both readers become entries (mode shared, card pcsc), no-card; a
#     configured pcsc entry (card=pcsc:PCD 00 00) follows its reader too;
#   - vicc connects: card-present with the card's ATR; vicc killed:
#     no-card; back: card-present (watch --json sees the State change);
#   - attach by a part of the label into a paused QEMU: the usb-redir
#     device appears; a second VM shares the reader (two holders);
#     insert/remove are refused (NotSupported, exit 5);
#   - a host application holds the card exclusively (pcsc-test-app
#     hold): unavailable, the reason says so; it lets go: card-present;
#   - pcscd stopped: the entries stay, unavailable, with the reason.
#
# Usage: test-daemon-pcsc.sh AGENT PCSC_TEST_APP
# Exit status: 0 pass, 1 fail, 2 setup error, 77 skipped (no private
# pcscd possible here).
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PCSC=$(cd "$HERE/../pcsc" && pwd)
AGENT=${1:?usage: test-daemon-pcsc.sh PATH-TO-ccid-agent}
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")
PCSC_APP=${2:?usage: test-daemon-pcsc.sh AGENT PCSC_TEST_APP}
PY=/usr/bin/python3

die() { printf 'test-daemon-pcsc: error: %s\n' "$*" >&2; exit 2; }
if [[ -z ${CCID_DAEMON_TEST_BUS:-} ]]; then
	command -v dbus-run-session >/dev/null || die "dbus-run-session not found (Debian package dbus-daemon)"
	export CCID_DAEMON_TEST_BUS=1
	exec dbus-run-session -- "${BASH_SOURCE[0]}" "$AGENT" "$PCSC_APP"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ccid-daemon-pcsc.XXXXXX")
export XDG_DATA_HOME=$WORK/data XDG_CONFIG_HOME=$WORK/config XDG_RUNTIME_DIR=$WORK/run
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
PCSCD_DIR=$WORK/pcscd
DPID=
QPID=
QPID2=
WPID=
HPID=
vicc_start() {
	$PY "$PCSC/vicc_card.py" --port "$VPCD_PORT" >>"$WORK/vicc.log" 2>&1 &
	echo $! >"$WORK/vicc.pid"
	disown $!
}
vicc_stop() {
	local pid
	pid=$(cat "$WORK/vicc.pid" 2>/dev/null) || return 0
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$WORK/vicc.pid"
}
cleanup() {
	local p
	for p in $DPID $QPID $QPID2 $WPID $HPID; do kill -KILL "$p" 2>/dev/null || true; done
	vicc_stop
	"$PCSC/private-pcscd.sh" stop "$PCSCD_DIR" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

rc=0
"$PCSC/private-pcscd.sh" start "$PCSCD_DIR" >"$WORK/pcscd.env" || rc=$?
((rc == 77)) && { echo "test-daemon-pcsc: no private pcscd possible here (skipping)"; exit 77; }
((rc == 0)) || die "cannot start the private pcscd"
# shellcheck disable=SC1091
. "$WORK/pcscd.env"
export PCSCLITE_CSOCK_NAME

FAILS=0
PASSES=0
pass() { echo "PASS $1: ${*:2}"; PASSES=$((PASSES + 1)); }
fail() { echo "FAIL $1: ${*:2}"; FAILS=$((FAILS + 1)); }

# entry_is ID PYTHON_EXPR SECONDS: waits until the entry (as `e`) of
# list --json satisfies the expression.
# It checks again at each event of the daemon (a `watch --json` on fd
# $EFD, started with the daemon), not by polling with sleeps.
entry_check() {
	"$AGENT" list --json 2>/dev/null | $PY -c "
import json, sys
e = [x for x in json.load(sys.stdin) if x['id'] == sys.argv[1]]
sys.exit(0 if e and ($2) else 1)" "$1" 2>/dev/null
}
now_ms() { date +%s%3N; }
entry_is() {
	local end left line
	end=$(($(now_ms) + $3 * 1000))
	until entry_check "$1" "$2"; do
		left=$((end - $(now_ms)))
		((left > 0)) || return 1
		IFS= read -r -t "$((left / 1000)).$(printf '%03d' $((left % 1000)))" -u "$EFD" line ||
			{ entry_check "$1" "$2"; return; }
	done
}
entry_json() {
	"$AGENT" list --json | $PY -c 'import json,sys; print([x for x in json.load(sys.stdin) if x["id"] == sys.argv[1]])' "$1"
}

# A configured entry names its reader by a part of the name.
mkdir -p "$XDG_CONFIG_HOME/ccid-emu"
printf '[entry mine]\ncard=pcsc:PCD 00 00\nlabel=My reader\n' >"$XDG_CONFIG_HOME/ccid-emu/agent.conf"
"$AGENT" daemon >"$WORK/daemon.log" 2>&1 &
DPID=$!
gdbus wait --session --timeout 10 org.ccidemu.Agent1 || die "no daemon: $(cat "$WORK/daemon.log")"
# The daemon's events: kept in watch.json for the checks at the end, and
# read as they come by entry_is (tee from a FIFO).
mkfifo "$WORK/watch.fifo"
"$AGENT" watch --json >"$WORK/watch.fifo" 2>"$WORK/watch.err" &
WPID=$!
exec {EFD}< <(exec tee "$WORK/watch.json" <"$WORK/watch.fifo")
TPID=$!
IFS= read -r -t 10 -u "$EFD" line && [[ $line == *'"ready"'* ]] || die "watch --json did not get ready: $(cat "$WORK/watch.err")"

R0=pcsc-virtual-pcd-00-00
R1=pcsc-virtual-pcd-00-01
for id in $R0 $R1; do
	if entry_is $id 'e[0]["state"] == "no-card" and e[0]["mode"] == "shared" and e[0]["card"] == "pcsc" and e[0]["label"].startswith("Shared Virtual PCD 00 0") and e[0]["atr"] == ""' 10; then
		pass "reader-entry-$id" "$(entry_json $id)"
	else
		fail "reader-entry-$id" "$("$AGENT" list 2>&1 | tr '\n' ';') $(cat "$WORK/daemon.log")"
	fi
done

vicc_start
if entry_is $R0 'e[0]["state"] == "card-present" and e[0]["atr"].startswith("3B")' 15; then
	pass card-present "$(entry_json $R0)"
else
	fail card-present "$(entry_json $R0)"
fi

if entry_is mine 'e[0]["state"] == "card-present" and e[0]["atr"].startswith("3B") and e[0]["mode"] == "shared"' 5; then
	pass configured-entry "$(entry_json mine)"
else
	fail configured-entry "$(entry_json mine)"
fi

# -daemonize: QEMU returns once set up, its QMP sockets listening.
qemu-system-x86_64 -machine pc -accel tcg -nodefaults -display none -S -device qemu-xhci \
	-qmp "unix:$WORK/vm.qmp,server=on,wait=off" -qmp "unix:$WORK/vm.obs,server=on,wait=off" \
	-daemonize -pidfile "$WORK/vm.pid" >"$WORK/qemu.log" 2>&1 || die "QEMU: $(cat "$WORK/qemu.log")"
QPID=$(cat "$WORK/vm.pid")
out=$("$AGENT" vm add vm --qmp "unix:$WORK/vm.qmp" 2>&1) || fail vm-add "$out"
rc=0
out=$("$AGENT" attach "PCD 00 00" vm 2>&1) || rc=$?
dev=$($PY "$HERE/qmp-query.py" "$WORK/vm.obs" | grep '^ccidemu-' || true)
if ((rc == 0)) && [[ $dev == ccidemu-*-$R0 ]]; then
	pass attach-shared "$out; QEMU has $dev"
else
	fail attach-shared "rc=$rc $out; devices '$dev'; $(tail -n 3 "$WORK/daemon.log")"
fi
entry_is $R0 'e[0]["holders"] == ["vm"]' 2 && pass holders "$(entry_json $R0)" || fail holders "$(entry_json $R0)"
# A second VM shares the same reader: one device model each.
qemu-system-x86_64 -machine pc -accel tcg -nodefaults -display none -S -device qemu-xhci \
	-qmp "unix:$WORK/vm2.qmp,server=on,wait=off" \
	-daemonize -pidfile "$WORK/vm2.pid" >"$WORK/qemu2.log" 2>&1 || die "QEMU: $(cat "$WORK/qemu2.log")"
QPID2=$(cat "$WORK/vm2.pid")
out=$("$AGENT" vm add vm2 --qmp "unix:$WORK/vm2.qmp" 2>&1) || fail vm2-add "$out"
out=$("$AGENT" attach $R0 vm2 2>&1) && pass attach-second-vm "$out" || fail attach-second-vm "$out"
entry_is $R0 'e[0]["holders"] == ["vm", "vm2"]' 2 && pass shared-by-two "$(entry_json $R0)" ||
	fail shared-by-two "$(entry_json $R0)"
out=$("$AGENT" vm remove vm2 2>&1) && pass vm2-remove "$out" || fail vm2-remove "$out"
kill -KILL "$QPID2" 2>/dev/null || true
entry_is $R0 'e[0]["holders"] == ["vm"]' 2 && pass holders-after-vm2 "$(entry_json $R0)" ||
	fail holders-after-vm2 "$(entry_json $R0)"
rc=0
out=$("$AGENT" remove $R0 2>&1) || rc=$?
((rc == 5)) && [[ $out == *"holds a real card (pcsc): remove it in the reader itself"* ]] &&
	pass remove-not-supported "$out" || fail remove-not-supported "rc=$rc $out"

vicc_stop
entry_is $R0 'e[0]["state"] == "no-card" and e[0]["atr"] == ""' 15 &&
	pass card-removed "$(entry_json $R0)" || fail card-removed "$(entry_json $R0)"
vicc_start
entry_is $R0 'e[0]["state"] == "card-present"' 15 &&
	pass card-back "$(entry_json $R0)" || fail card-back "$(entry_json $R0)"
out=$("$AGENT" detach $R0 vm 2>&1) && pass detach "$out" || fail detach "$out"

# A host application holds the card exclusively (BeyondTrust's "reader
# and card unavailable"): pcscd's SCARD_STATE_EXCLUSIVE.  It lets go when
# it exits.
t0=$(now_ms)
"$PCSC_APP" -r "PCD 00 00" -t 10000 hold 60000 >"$WORK/hold.log" 2>&1 &
HPID=$!
if entry_is $R0 'e[0]["state"] == "unavailable" and "holds the card exclusively" in e[0]["reason"]' 15; then
	pass held-exclusively "after $(($(now_ms) - t0)) ms: $(entry_json $R0)"
	# Plain `list` says why too, under the entry.
	"$AGENT" list | grep -A1 "^$R0 " | grep -q '^  reason: a host application holds the card exclusively' &&
		pass list-shows-reason "$("$AGENT" list | tr '\n' ';')" ||
		fail list-shows-reason "$("$AGENT" list | tr '\n' ';')"
else
	fail held-exclusively "$(entry_json $R0) $(cat "$WORK/hold.log")"
fi
t0=$(now_ms)
kill -TERM "$HPID" 2>/dev/null || true
wait "$HPID" 2>/dev/null || true
HPID=
entry_is $R0 'e[0]["state"] == "card-present" and e[0]["reason"] == ""' 15 &&
	pass exclusive-hold-ended "after $(($(now_ms) - t0)) ms: $(entry_json $R0)" ||
	fail exclusive-hold-ended "$(entry_json $R0)"

"$PCSC/private-pcscd.sh" stop "$PCSCD_DIR" >/dev/null 2>&1 || true
if entry_is $R0 'e[0]["state"] == "unavailable" and "not connected" in e[0]["reason"]' 15; then
	pass pcscd-gone-unavailable "$(entry_json $R0)"
else
	fail pcscd-gone-unavailable "$(entry_json $R0)"
fi
entry_is mine 'e[0]["state"] == "unavailable"' 5 &&
	pass configured-entry-unavailable "$(entry_json mine)" ||
	fail configured-entry-unavailable "$(entry_json mine)"
kill -TERM "$WPID"
wait "$WPID" 2>/dev/null || true
wait "$TPID" 2>/dev/null || true    # tee has written every line
WPID=
if $PY - "$WORK/watch.json" <<'PYEOF'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
states = [e["changed"]["State"] for e in ev
          if e["event"] == "changed" and e.get("entry") == "pcsc-virtual-pcd-00-00" and "State" in e["changed"]]
sys.exit(0 if "card-present" in states and "no-card" in states and "unavailable" in states else 1)
PYEOF
then
	pass watch-states "State changes seen by watch --json"
else
	fail watch-states "$(cat "$WORK/watch.json")"
fi

kill -0 "$DPID" && pass daemon-alive "running" || fail daemon-alive "$(tail -n 5 "$WORK/daemon.log")"
rc=0
kill -TERM "$DPID"
wait "$DPID" || rc=$?
DPID=
((rc == 0)) && pass sigterm "status 0" || fail sigterm "status $rc: $(tail -n 5 "$WORK/daemon.log")"
echo "test-daemon-pcsc: $PASSES passed, $FAILS failed"
((FAILS == 0))
