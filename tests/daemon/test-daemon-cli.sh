#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# `ccid-agent daemon` and its CLI against real QEMUs (paused, TCG, no
# guest: hot-plugging only needs QEMU's device tree) on a private session
# bus (dbus-run-session):
#   - a corrupt configuration file: a clear error naming the file, the
#     defaults, the daemon runs; a good one adds entries and policies;
#   - list/vms --json checked with a JSON parser;
#   - attach/detach: the usb-redir device appears in and leaves QEMU's
#     device tree (read through a second QMP monitor);
#   - bad input: unknown entry or VM, ambiguous label, bad VM name or
#     address, a missing socket, two sockets that are not QEMU monitors
#     (`ccid-agent serve`'s usbredir and control sockets), a VM without a
#     USB controller, attach twice, detach of what is not attached, insert
#     on a card that cannot be moved: each a clear error and exit code,
#     and the daemon keeps running;
#   - cold plug: `qemu-args` before QEMU runs, the entry attached once it
#     does;
#   - a QEMU stopped with SIGSTOP: attach fails after the 10 s QMP reply
#     timeout, naming the command; after SIGCONT the VM is found again;
#   - 50 concurrent Attach calls for a single-session entry from separate
#     clients: exactly one succeeds, 49 are Busy naming the holder; 20
#     concurrent detaches: one succeeds;
#   - card remove/insert follow in list --json and watch --json;
#   - a VM killed with SIGKILL: its session ends and the entry is free
#     within 1 s; watch --json reports it;
#   - remembered attachments ($XDG_CONFIG_HOME/ccid-emu/vms.conf): a daemon
#     killed with a device plugged comes back, unplugs the dead device and
#     attaches the entry again; a VM that exits and comes back on the same
#     QMP socket gets its entry back; a detach forgets; a corrupt file is
#     a clear error and an empty state;
#   - SIGTERM stops the daemon with status 0.
#
# Usage: test-daemon-cli.sh AGENT   (environment: DAEMON_WRAP, see below)
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
AGENT=${1:-${CCID_AGENT:-}}
PY=/usr/bin/python3

die() { printf 'test-daemon-cli: error: %s\n' "$*" >&2; exit 2; }
[[ -n $AGENT && -x $AGENT ]] || die "usage: test-daemon-cli.sh PATH-TO-ccid-agent"
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")

if [[ -z ${CCID_DAEMON_TEST_BUS:-} ]]; then
	command -v dbus-run-session >/dev/null || die "dbus-run-session not found (Debian package dbus-daemon)"
	export CCID_DAEMON_TEST_BUS=1
	exec dbus-run-session -- "${BASH_SOURCE[0]}" "$AGENT"
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ccid-daemon-cli.XXXXXX")
export XDG_DATA_HOME=$WORK/data XDG_CONFIG_HOME=$WORK/config XDG_RUNTIME_DIR=$WORK/run
# No pcscd for the daemon: the host's readers would be entries too
# (tests/daemon/test-daemon-pcsc.sh covers them).
export PCSCLITE_CSOCK_NAME=$WORK/no-pcscd.comm
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME/ccid-emu" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"

PIDS=()
DPID=
cleanup() {
	local p
	for p in "${PIDS[@]}" $DPID; do kill -KILL "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

FAILS=0
PASSES=0
pass() { echo "PASS $1: ${*:2}"; PASSES=$((PASSES + 1)); }
fail() { echo "FAIL $1: ${*:2}"; FAILS=$((FAILS + 1)); }
now_ms() { date +%s%3N; }

# run NAME WANT_RC REGEX CMD...: CMD's exit code is WANT_RC and its output
# (stdout + stderr) matches REGEX.
run() {
	local name=$1 want=$2 re=$3 out rc=0
	shift 3
	out=$("$@" 2>&1) || rc=$?
	if [[ $rc == "$want" ]] && grep -Eq -e "$re" <<<"$out"; then
		pass "$name" "rc=$rc: $out"
	else
		fail "$name" "rc=$rc (want $want), output does not match /$re/ or: $out"
	fi
}

# json NAME PYTHON_EXPR CMD...: CMD's stdout parses as JSON (in `j`) and
# PYTHON_EXPR is true.
json() {
	local name=$1 expr=$2 out rc=0
	shift 2
	out=$("$@" 2>"$WORK/json.err") || rc=$?
	if ((rc != 0)); then
		fail "$name" "rc=$rc: $(cat "$WORK/json.err")"
		return
	fi
	if $PY -c "import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if ($expr) else 1)" "$out"; then
		pass "$name" "$out"
	else
		fail "$name" "not JSON or not ($expr): $out"
	fi
}

# The daemon's events (`watch --json`) on fd $EFD, while it runs: the
# waits below check the daemon's state again at each event it sends,
# instead of polling with sleeps.
EFD=
EPID=
events_start() {
	local line
	events_stop
	exec {EFD}< <(exec "$AGENT" watch --json 2>>"$WORK/events.err")
	EPID=$!
	PIDS+=($EPID)
	IFS= read -r -t 10 -u "$EFD" line && [[ $line == *'"ready"'* ]] ||
		die "watch --json did not get ready: $line $(cat "$WORK/events.err")"
}
events_stop() {
	[[ -n $EPID ]] || return 0
	kill "$EPID" 2>/dev/null || true
	exec {EFD}<&-
	EPID=
}
# until_event SECONDS CMD...: CMD succeeds now or after one of the
# daemon's next events, within SECONDS.
until_event() {
	local end left line
	end=$(($(now_ms) + $1 * 1000))
	shift
	until "$@" >/dev/null 2>&1; do
		left=$((end - $(now_ms)))
		((left > 0)) || return 1
		IFS= read -r -t "$((left / 1000)).$(printf '%03d' $((left % 1000)))" -u "$EFD" line ||
			{ "$@" >/dev/null 2>&1; return; }
	done
}

# DAEMON_WRAP: e.g. "valgrind -q --error-exitcode=9" for a manual run.
start_daemon() {
	${DAEMON_WRAP:-} "$AGENT" daemon "$@" >"$WORK/daemon.log" 2>&1 &
	DPID=$!
	gdbus wait --session --timeout 10 org.ccidemu.Agent1 ||
		die "the daemon did not appear: $(cat "$WORK/daemon.log")"
	events_start
}
stop_daemon() {
	local rc=0
	events_stop
	kill -TERM "$DPID"
	wait "$DPID" || rc=$?
	DPID=
	return "$rc"
}
daemon_alive() {
	if kill -0 "$DPID" 2>/dev/null && "$AGENT" list >/dev/null 2>&1; then
		pass "daemon-alive-$1" "still serving"
	else
		fail "daemon-alive-$1" "$(tail -n 5 "$WORK/daemon.log")"
	fi
}

# qemu NAME [ARGS...]: a paused QEMU with a QMP socket for the daemon
# and one for the test ($WORK/NAME.qmp, $WORK/NAME.obs).
qemu() {
	local name=$1
	shift
	# -daemonize: QEMU returns once set up, its QMP sockets listening.
	qemu-system-x86_64 -machine pc -accel tcg -nodefaults -display none -S \
		-qmp "unix:$WORK/$name.qmp,server=on,wait=off" \
		-qmp "unix:$WORK/$name.obs,server=on,wait=off" "$@" \
		-daemonize -pidfile "$WORK/$name.pid" >"$WORK/$name.log" 2>&1 ||
		die "QEMU $name did not start: $(cat "$WORK/$name.log")"
	PIDS+=("$(cat "$WORK/$name.pid")")
	eval "QPID_${name//-/_}=$(cat "$WORK/$name.pid")"
}
devices() { $PY "$HERE/qmp-query.py" "$WORK/$1.obs" | grep '^ccidemu-' || true; }
holders_of() {    # holders_of ENTRY: its holders, comma-separated
	"$AGENT" list --json | $PY -c 'import json,sys; print(",".join([e for e in json.load(sys.stdin) if e["id"] == sys.argv[1]][0]["holders"]))' "$1"
}
holders_are() { [[ $(holders_of "$1" 2>/dev/null) == "$2" ]]; }
wait_holders() {    # wait_holders ENTRY WANT SECONDS
	until_event "$3" holders_are "$1" "$2"
}

# --- no daemon: this bus has no service file to start one -------------------
run no-daemon 6 "the daemon cannot be reached: .*start it with 'ccid-agent daemon'" "$AGENT" list

# --- configuration ------------------------------------------------------------
CONF=$XDG_CONFIG_HOME/ccid-emu/agent.conf
printf '[entry solo\ncard=loopback\n\x01garbage\n' >"$CONF"
start_daemon
if grep -q "configuration: $CONF: .*using the defaults" "$WORK/daemon.log"; then
	pass corrupt-config-error "$(grep configuration: "$WORK/daemon.log")"
else
	fail corrupt-config-error "no clear error: $(cat "$WORK/daemon.log")"
fi
json corrupt-config-defaults 'len(j) == 1 and j[0]["id"] == "virtual"' "$AGENT" list --json
run corrupt-config-property 0 "$CONF" gdbus call --session --dest org.ccidemu.Agent1 \
	--object-path /org/ccidemu/Agent1 --method org.freedesktop.DBus.Properties.Get \
	org.ccidemu.Agent1.Manager ConfigErrors
stop_daemon && pass sigterm-exit-0 "status 0" || fail sigterm-exit-0 "status $?"

cat >"$CONF" <<EOF
[entry solo]
card=loopback
label=Solo test card
single-session=true

[entry mypiv]
card=piv:$WORK/piv-card
label=Writable PIV card

[entry loop2]
card=loopback
label=Second test card

[entry host]
card=pcsc:Some Reader
label=A host reader

[entry usb-1050-0407-0123456789ab]
card=loopback
label=Reader with a long id

[entry broken]
card=virtual:
EOF
start_daemon
if grep -q "\[entry broken\] card: .*needs an NSS database directory" "$WORK/daemon.log"; then
	pass bad-entry-skipped "$(grep 'entry broken' "$WORK/daemon.log")"
else
	fail bad-entry-skipped "$(cat "$WORK/daemon.log")"
fi
json list-json 'sorted(e["id"] for e in j) == ["host", "loop2", "mypiv", "solo", "usb-1050-0407-0123456789ab", "virtual"] and [e for e in j if e["id"] == "mypiv"][0]["card"] == "piv" and all(set(e) >= {"id", "label", "mode", "card", "state", "atr", "holders", "reason", "single_session"} for e in j) and [e for e in j if e["id"] == "solo"][0]["single_session"] is True and all(e["state"] == "card-present" and e["holders"] == [] for e in j if e["id"] != "host") and [e for e in j if e["id"] == "host"][0]["state"] == "unavailable" and "not connected" in [e for e in j if e["id"] == "host"][0]["reason"] and [e for e in j if e["id"] == "host"][0]["mode"] == "shared"' \
	"$AGENT" list --json
json vms-json-empty 'j == []' "$AGENT" vms --json
run list-text 0 '^solo +card-present +virtual +loopback +- +Solo test card' "$AGENT" list
# Every column starts where its heading does, however long an id is.
out=$("$AGENT" list 2>&1) || true
if $PY - "$out" <<'PYEOF'
import re, sys
lines = [l for l in sys.argv[1].splitlines() if not l.startswith("  reason: ")]
starts = [m.start() for m in re.finditer(r"\S+", lines[0])]
assert [lines[0][s:].split()[0] for s in starts] == ["ID", "STATE", "MODE", "CARD", "HOLDERS", "LABEL"], lines[0]
assert any(l.startswith("usb-1050-0407-0123456789ab ") for l in lines), "no long id row"
for l in lines[1:]:
    for s in starts[1:]:
        assert l[s - 1] == " " and l[s] != " ", (s, l)
PYEOF
then
	pass list-text-columns "$out"
else
	fail list-text-columns "columns not aligned: $out"
fi

# --- bad input ------------------------------------------------------------------
run unknown-entry 3 "no entry 'nope' \(entries: .*virtual" "$AGENT" attach nope vm1
run unknown-vm 3 "no VM 'vm1' \(add it with 'ccid-agent vm add vm1" "$AGENT" attach virtual vm1
run ambiguous-label 2 "'test card' is part of 2 entry labels: give an id" "$AGENT" insert "test card"
run bad-vm-name 2 "VM name 'a b': use 1 to 64" "$AGENT" vm add "a b" --qmp "unix:$WORK/x"
run bad-qmp-address 2 "QMP address 'tcp:1.2.3.4:5' of VM 'x': write unix:PATH" "$AGENT" vm add x --qmp tcp:1.2.3.4:5
run vm-add-no-qmp 2 "needs --qmp unix:PATH" "$AGENT" vm add x
run missing-socket 1 "cannot add VM 'x': QMP socket $WORK/none.sock: cannot connect: .*start QEMU with -qmp" \
	"$AGENT" vm add x --qmp "unix:$WORK/none.sock"
# Sockets that are not QEMU monitors: serve's control socket (it waits
# for a request and says nothing), and a server that greets with another
# protocol's banner.
# Both say when they listen (serve its "control:" line, the banner
# server "listening"), read from their stdout: no polling for sockets.
exec {SFD}< <(exec "$AGENT" serve -c loopback -l "unix:$WORK/serve.sock" --control "$WORK/serve.ctl" \
	2>"$WORK/serve.err")
PIDS+=($!)
while IFS= read -r -t 10 -u "$SFD" line && [[ $line != control:* ]]; do :; done
[[ ${line:-} == control:* ]] || die "serve did not get ready: $(cat "$WORK/serve.err")"
exec {BFD}< <(exec $PY -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(4)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n\x00\xff\n")
    c.close()
' "$WORK/banner.sock")
PIDS+=($!)
IFS= read -r -t 10 -u "$BFD" line && [[ $line == listening ]] || die "the banner server did not start"
run not-qemu-banner 1 "cannot add VM 'x': QMP socket $WORK/banner.sock: is not a QEMU monitor \(-qmp\): its greeting is not a JSON object: \"SSH-2.0-OpenSSH_9.2p1 Debian-2\?\"" \
	"$AGENT" vm add x --qmp "unix:$WORK/banner.sock"
run not-qemu-silent 1 "cannot add VM 'y': QMP socket $WORK/serve.ctl: no QMP greeting within 3000 ms" \
	"$AGENT" vm add y --qmp "unix:$WORK/serve.ctl"
json not-qemu-not-added 'j == []' "$AGENT" vms --json
run insert-not-supported 5 "entry 'host' holds a real card \(pcsc\): insert it in the reader itself" \
	"$AGENT" insert host
daemon_alive after-bad-vms

# --- attach and detach against QEMU's device tree ---------------------------------
qemu vm1 -device qemu-xhci
run vm-add 0 "VM vm1 added \(/org/ccidemu/Agent1/vm/vm1\)" "$AGENT" vm add vm1 --qmp "unix:$WORK/vm1.qmp"
run vm-add-twice 4 "VM 'vm1' is already registered" "$AGENT" vm add vm1 --qmp "unix:$WORK/vm1.qmp"
json vms-json 'len(j) == 1 and j[0]["name"] == "vm1" and j[0]["state"] == "paused" and j[0]["entries"] == [] and j[0]["qmp"].startswith("unix:")' \
	"$AGENT" vms --json
run attach-by-label 0 "attached Virtual CAC to vm1" "$AGENT" attach "Virtual CAC" vm1
dev=$(devices vm1)
[[ $dev == ccidemu-*-virtual ]] && pass device-in-qemu "QEMU has usb-redir $dev" ||
	fail device-in-qemu "devices: '$dev'"
json holders-after-attach '[e for e in j if e["id"] == "virtual"][0]["holders"] == ["vm1"]' "$AGENT" list --json
json vm-entries-after-attach 'j[0]["entries"] == ["virtual"]' "$AGENT" vms --json
run attach-twice 4 "entry 'virtual' is attached to VM 'vm1' already \(holder: vm1\)" "$AGENT" attach virtual vm1
run detach 0 "detached virtual from vm1" "$AGENT" detach virtual vm1
dev=$(devices vm1)
[[ -z $dev ]] && pass device-gone-from-qemu "no ccidemu device left" ||
	fail device-gone-from-qemu "still: $dev"
run detach-not-attached 3 "entry 'virtual' is not attached to VM 'vm1'" "$AGENT" detach virtual vm1
run attach-again 0 "attached virtual to vm1" "$AGENT" attach virtual vm1
run detach-again 0 "detached virtual from vm1" "$AGENT" detach virtual vm1

# The virtual PIV card as a daemon entry: a card kind like any other.
run piv-attach 0 "attached mypiv to vm1" "$AGENT" attach mypiv vm1
dev=$(devices vm1)
[[ $dev == ccidemu-*-mypiv ]] && pass piv-device-in-qemu "QEMU has usb-redir $dev" ||
	fail piv-device-in-qemu "devices: '$dev'"
[[ -f $WORK/piv-card/card.ini ]] && pass piv-store-created "$(ls "$WORK/piv-card")" ||
	fail piv-store-created "no card.ini in $WORK/piv-card"
run piv-remove 0 "card of mypiv removed" "$AGENT" remove mypiv
json piv-no-card '[e for e in j if e["id"] == "mypiv"][0]["state"] == "no-card"' "$AGENT" list --json
run piv-insert 0 "card of mypiv inserted" "$AGENT" insert mypiv
run piv-detach 0 "detached mypiv from vm1" "$AGENT" detach mypiv vm1

qemu nousb
run vm-add-nousb 0 "VM nousb added" "$AGENT" vm add nousb --qmp "unix:$WORK/nousb.qmp"
run attach-no-usb-controller 1 "cannot attach entry 'loop2' to VM 'nousb': VM 'nousb' refused the usb-redir device: .*USB controller" \
	"$AGENT" attach loop2 nousb
json free-after-failed-attach '[e for e in j if e["id"] == "loop2"][0]["holders"] == []' "$AGENT" list --json
daemon_alive after-bad-attach

# --- a QEMU that stops answering (SIGSTOP) ------------------------------------------
qemu hung -device qemu-xhci
run vm-add-hung 0 "VM hung added" "$AGENT" vm add hung --qmp "unix:$WORK/hung.qmp"
kill -STOP "$QPID_hung"
run attach-hung-vm 1 "QEMU did not answer 'getfd' within 10000 ms \(is it stopped or hung\?\)" \
	"$AGENT" attach loop2 hung
json free-after-hung '[e for e in j if e["id"] == "loop2"][0]["holders"] == []' "$AGENT" list --json
kill -CONT "$QPID_hung"
vm_state_is() { "$AGENT" vms --json | grep -q "\"name\":\"$1\",\"qmp\":\"[^\"]*\",\"state\":\"$2\""; }
ok=0
until_event 10 vm_state_is hung paused && ok=1
((ok)) && pass hung-vm-back "found again after SIGCONT" || fail hung-vm-back "$("$AGENT" vms 2>&1 | tr '\n' ';')"
run attach-after-hung 0 "attached loop2 to hung" "$AGENT" attach loop2 hung
run detach-after-hung 0 "detached loop2 from hung" "$AGENT" detach loop2 hung
run vm-remove-hung 0 "VM hung removed" "$AGENT" vm remove hung

# --- 50 concurrent attaches of a single-session entry -----------------------------
qemu vm2 -device qemu-xhci
run vm-add-vm2 0 "VM vm2 added" "$AGENT" vm add vm2 --qmp "unix:$WORK/vm2.qmp"
RACE=$WORK/race
mkdir -p "$RACE"
RPIDS=()
for i in $(seq 50); do
	vm=vm$((i % 2 + 1))
	( rc=0; "$AGENT" attach solo "$vm" >"$RACE/$i.out" 2>&1 || rc=$?; echo "$rc" >"$RACE/$i.rc" ) &
	RPIDS+=($!)
done
wait "${RPIDS[@]}"
wait_all=0
(($(ls "$RACE"/*.rc 2>/dev/null | wc -l) == 50)) && wait_all=1
((wait_all)) || fail race-finished "only $(ls "$RACE"/*.rc | wc -l) of 50 attaches returned"
ok=$(grep -lx 0 "$RACE"/*.rc | wc -l)
busy=$(grep -lx 4 "$RACE"/*.rc | wc -l)
holder=$("$AGENT" list --json | $PY -c 'import json,sys; print(",".join([e for e in json.load(sys.stdin) if e["id"] == "solo"][0]["holders"]))')
named=$(grep -l "entry 'solo' is single-session and held by VM '$holder' (holder: $holder)\|entry 'solo' is being attached to VM '$holder' already (holder: $holder)\|entry 'solo' is attached to VM '$holder' already (holder: $holder)" "$RACE"/*.out | wc -l)
if ((ok == 1 && busy == 49 && named == 49)) && [[ $holder == vm1 || $holder == vm2 ]]; then
	pass race-50-attaches "1 success, 49 Busy naming holder $holder"
else
	fail race-50-attaches "$ok successes, $busy Busy, $named naming holder '$holder': $(cat "$RACE"/*.out | sort | uniq -c)"
fi
# 20 concurrent detaches of that one attachment: one does it, the others
# are told it is being detached (Busy) or no longer attached (NotFound).
RACE2=$WORK/race2
mkdir -p "$RACE2"
RPIDS=()
for i in $(seq 20); do
	( rc=0; "$AGENT" detach solo "$holder" >"$RACE2/$i.out" 2>&1 || rc=$?; echo "$rc" >"$RACE2/$i.rc" ) &
	RPIDS+=($!)
done
wait "${RPIDS[@]}"
ok=$(grep -lx 0 "$RACE2"/*.rc | wc -l)
other=$(grep -Elx '3|4' "$RACE2"/*.rc | wc -l)
if ((ok == 1 && other == 19)) && [[ -z $(holders_of solo) ]]; then
	pass race-20-detaches "1 detach, 19 Busy or NotFound, entry free"
else
	fail race-20-detaches "$ok successes, $other Busy/NotFound: $(cat "$RACE2"/*.out | sort | uniq -c)"
fi

# --- cold plug: qemu-args first, QEMU later ----------------------------------------
rc=0
out=$("$AGENT" qemu-args loop2 --vm later1 --qmp "$WORK/later1.qmp" 2>&1) || rc=$?
line=$(sed -n 's/^qemu: //p' <<<"$out")
if ((rc == 0)) && [[ $line == "-qmp unix:$WORK/later1.qmp,server=on,wait=off" ]]; then
	pass qemu-args "$out"
else
	fail qemu-args "rc=$rc: $out"
fi
json planned-vm '[v for v in j if v["name"] == "later1"][0]["state"] in ("gone", "connecting") and [v for v in j if v["name"] == "later1"][0]["entries"] == []' \
	"$AGENT" vms --json
run qemu-args-unknown-entry 3 "no entry 'nope'" "$AGENT" qemu-args nope --vm later2
run qemu-args-vm-taken 4 "VM 'later1' is already registered" "$AGENT" qemu-args loop2 --vm later1
# QEMU starts with what was printed (qemu() adds the same -qmp).
qemu later1 -device qemu-xhci
if wait_holders loop2 later1 10; then
	pass cold-plugged "loop2 attached to later1 once it ran: $(devices later1)"
else
	fail cold-plugged "holders of loop2: '$(holders_of loop2)': $(tail -n 5 "$WORK/daemon.log")"
fi
run cold-plug-detach 0 "detached loop2 from later1" "$AGENT" detach loop2 later1
run cold-plug-vm-remove 0 "VM later1 removed" "$AGENT" vm remove later1

# --- card events and a VM that dies, seen by watch --json -------------------------
# Its lines come through a FIFO to tee, which keeps them in watch.json
# and hands them to this script as they come (no polling the file).
mkfifo "$WORK/watch.fifo"
"$AGENT" watch --json >"$WORK/watch.fifo" 2>"$WORK/watch.err" &
WPID=$!
PIDS+=($WPID)
exec {TWFD}< <(exec tee "$WORK/watch.json" <"$WORK/watch.fifo")
TPID=$!
# watch_line REGEX SECONDS: reads the watch's lines until one matches.
watch_line() {
	local line
	while IFS= read -r -t "$2" -u "$TWFD" line; do
		grep -Eq -e "$1" <<<"$line" && return 0
	done
	return 1
}
watch_line '"ready"' 10 || fail watch-ready "$(cat "$WORK/watch.err")"
run attach-vm2 0 "attached virtual to vm2" "$AGENT" attach virtual vm2
run remove-card 0 "card of virtual removed" "$AGENT" remove virtual
json state-no-card '[e for e in j if e["id"] == "virtual"][0]["state"] == "no-card"' "$AGENT" list --json
run insert-card 0 "card of virtual inserted" "$AGENT" insert virtual
json state-card-present '[e for e in j if e["id"] == "virtual"][0]["state"] == "card-present"' "$AGENT" list --json

T0=$(now_ms)
kill -KILL "$QPID_vm2"
freed=0
if until_event 5 holders_are virtual ""; then
	freed=$(($(now_ms) - T0))
fi
if ((freed > 0 && freed <= 1000)); then
	pass vm-killed-entry-free "holders empty ${freed} ms after SIGKILL of QEMU"
else
	fail vm-killed-entry-free "after $(($(now_ms) - T0)) ms: $("$AGENT" list 2>&1 | tr '\n' ';')"
fi
json vm-killed-state-gone '[v for v in j if v["name"] == "vm2"][0]["state"] == "gone"' "$AGENT" vms --json
run attach-gone-vm 1 "VM 'vm2' is not running \(gone\): start it again on its QMP socket" "$AGENT" attach loop2 vm2
watch_line '"session-ended".*"vm2"' 5 || true
kill -TERM "$WPID"
wait "$WPID" || true
wait "$TPID" 2>/dev/null || true    # tee has written every line
if $PY - "$WORK/watch.json" <<'PYEOF'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
def has(pred):
    return any(pred(e) for e in ev)
ok = (ev[0] == {"event": "ready"}
      and has(lambda e: e["event"] == "session-started" and e.get("entry") == "virtual" and e.get("vm") == "vm2")
      and has(lambda e: e["event"] == "changed" and e.get("entry") == "virtual" and e["changed"].get("State") == "no-card")
      and has(lambda e: e["event"] == "changed" and e.get("entry") == "virtual" and e["changed"].get("Holders") == [])
      and has(lambda e: e["event"] == "session-ended" and e.get("vm") == "vm2" and e.get("reason") in ("vm-gone", "vm-shutdown", "peer-closed")))
sys.exit(0 if ok else 1)
PYEOF
then
	pass watch-json "$(wc -l <"$WORK/watch.json") JSON events: ready, session-started, State, Holders, session-ended"
else
	fail watch-json "$(cat "$WORK/watch.json")"
fi

# --- remembered attachments -------------------------------------------------------
STATE=$XDG_CONFIG_HOME/ccid-emu/vms.conf

# A daemon killed with a device plugged: the next one remembers the VM,
# unplugs the dead device and attaches the entry again.
run attach-before-crash 0 "attached virtual to vm1" "$AGENT" attach virtual vm1
stale=$(devices vm1)
if grep -q '^\[vm vm1\]' "$STATE" && grep -q '^entries=virtual;' "$STATE"; then
	pass state-written "$(tr '\n' ' ' <"$STATE")"
else
	fail state-written "$(cat "$STATE" 2>&1)"
fi
kill -KILL "$DPID"
wait "$DPID" 2>/dev/null || true
start_daemon
if wait_holders virtual vm1 10; then
	pass restored-after-crash "virtual attached to vm1 again after the restart"
else
	fail restored-after-crash "holders '$(holders_of virtual)': $(cat "$WORK/daemon.log")"
fi
now=$(devices vm1)
if [[ -n $stale ]] && grep -q "unplugging $stale, left by an earlier daemon" "$WORK/daemon.log" &&
	[[ $(wc -w <<<"$now") == 1 ]]; then
	pass stale-device-unplugged "$stale of the killed daemon unplugged; now $now"
else
	fail stale-device-unplugged "before: '$stale', now: '$now': $(cat "$WORK/daemon.log")"
fi

# The VM exits and comes back (same QMP socket): the entry follows it.
kill -KILL "$QPID_vm1"
wait_holders virtual "" 2 && pass vm1-exit-frees "holders empty" || fail vm1-exit-frees "holders '$(holders_of virtual)'"
rm -f "$WORK/vm1.qmp" "$WORK/vm1.obs"
qemu vm1 -device qemu-xhci
if wait_holders virtual vm1 15; then
	pass vm-back-reattached "virtual attached to the new vm1 ($(devices vm1))"
else
	fail vm-back-reattached "holders '$(holders_of virtual)': $(tail -n 5 "$WORK/daemon.log")"
fi

# A detach forgets: after a restart the entry stays detached.
run detach-forgets 0 "detached virtual from vm1" "$AGENT" detach virtual vm1
stop_daemon || true
start_daemon
until_event 5 vm_state_is vm1 paused || true
json restored-vm-no-entry '[v for v in j if v["name"] == "vm1"][0]["state"] == "paused" and [v for v in j if v["name"] == "vm1"][0]["entries"] == []' "$AGENT" vms --json
[[ -z $(devices vm1) ]] && pass restored-nothing-plugged "no device in vm1" || fail restored-nothing-plugged "$(devices vm1)"

# A corrupt state file: a clear error, nothing remembered, the daemon runs.
stop_daemon || true
printf '[vm vm1\nqmp=\x02\n' >"$STATE"
start_daemon
if grep -q "remembered VMs: $STATE: .*no VM remembered" "$WORK/daemon.log"; then
	pass corrupt-state-error "$(grep 'remembered VMs' "$WORK/daemon.log")"
else
	fail corrupt-state-error "$(cat "$WORK/daemon.log")"
fi
json corrupt-state-empty 'j == []' "$AGENT" vms --json
run vm-add-after-corrupt 0 "VM vm1 added" "$AGENT" vm add vm1 --qmp "unix:$WORK/vm1.qmp"
run attach-after-corrupt 0 "attached virtual to vm1" "$AGENT" attach virtual vm1

run vm-remove 0 "VM vm1 removed" "$AGENT" vm remove vm1
[[ -z $(devices vm1) ]] && pass vm-remove-unplugs "no ccidemu device left in vm1" ||
	fail vm-remove-unplugs "still: $(devices vm1)"
run vm-remove-unknown 3 "no VM 'vm1'" "$AGENT" vm remove vm1
grep -q 'vm1' "$STATE" && fail vm-remove-forgets "$(cat "$STATE")" || pass vm-remove-forgets "vm1 not in $STATE"
daemon_alive at-end
RSS=$(awk '/^VmRSS:/ { print $2 }' "/proc/$DPID/status")
echo "daemon RSS: $RSS kB (4 entries, 3 VMs seen)"
stop_daemon && pass sigterm-exit-0-end "status 0" || fail sigterm-exit-0-end "status $?: $(cat "$WORK/daemon.log")"

echo "test-daemon-cli: $PASSES passed, $FAILS failed"
((FAILS == 0))
