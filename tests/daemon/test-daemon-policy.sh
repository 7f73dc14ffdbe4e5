#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Entry details of `ccid-agent daemon` (docs/daemon.md, "Entries"): the
# ATR of emulated cards and the agent.conf policy of discovered PC/SC
# readers, on a private pcscd with vpcd (tests/pcsc: readers "Virtual PCD
# 00 00" and "... 01") and a private session bus:
#   - list --json: the loopback and PIV entries show their cards' ATRs at
#     once; the virtual card's shows after its first attach (a paused QEMU);
#   - [reader PCD 00 01] with idle=, lock_timeout= and single-session=true:
#     that reader's entry has them (idle_ms, lock_timeout_ms, single_session)
#     and a second VM's attach is refused (Busy, exit 4, naming the
#     holder); the other reader keeps the defaults and takes two VMs;
#   - a [reader] group with a bad value is a clear message, the daemon runs.
#   - with --no-libvirt, vm add --libvirt is refused clearly.
#
# Usage: test-daemon-policy.sh AGENT
# Exit status: 0 pass, 1 fail, 2 setup error.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PCSC=$(cd "$HERE/../pcsc" && pwd)
AGENT=${1:?usage: test-daemon-policy.sh PATH-TO-ccid-agent}
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")
PY=/usr/bin/python3
# libcacard's soft CAC card; the loopback card (3B 88 01 "ccidloop" TCK);
# the PIV card (ccid-emu/cards/card_piv.c: "ccid-PIV" and TCK).
VATR=3B7A18000073667465206364313434
LATR=3B8801636369646C6F6F70$(printf '%02X' $((0x88 ^ 0x01 ^ 0x63 ^ 0x63 ^ 0x69 ^ 0x64 ^ 0x6C ^ 0x6F ^ 0x6F ^ 0x70)))
PATR_HEAD=3B8E8131FE458073C021C058636369642D504956

die() { printf 'test-daemon-policy: error: %s\n' "$*" >&2; exit 2; }
if [[ -z ${CCID_DAEMON_TEST_BUS:-} ]]; then
	command -v dbus-run-session >/dev/null || die "dbus-run-session not found (Debian package dbus-daemon)"
	export CCID_DAEMON_TEST_BUS=1
	exec dbus-run-session -- "${BASH_SOURCE[0]}" "$AGENT"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ccid-daemon-policy.XXXXXX")
export XDG_DATA_HOME=$WORK/data XDG_CONFIG_HOME=$WORK/config XDG_RUNTIME_DIR=$WORK/run
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME/ccid-emu" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
PCSCD_DIR=$WORK/pcscd
DPID= QPID1= QPID2=
cleanup() {
	local p
	[[ -n $DPID ]] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	for p in $QPID1 $QPID2; do kill -KILL "$p" 2>/dev/null || true; done
	"$PCSC/private-pcscd.sh" stop "$PCSCD_DIR" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

"$PCSC/private-pcscd.sh" start "$PCSCD_DIR" >"$WORK/pcscd.env" ||
	die "cannot start the private pcscd (root or unprivileged user namespaces needed)"
# shellcheck disable=SC1091
. "$WORK/pcscd.env"
export PCSCLITE_CSOCK_NAME

FAILS=0
pass() { echo "PASS $1: ${*:2}"; }
fail() { echo "FAIL $1: ${*:2}"; FAILS=$((FAILS + 1)); }
# entry_is ID PYTHON_EXPR SECONDS: waits until the entry (as `e`) of
# list --json satisfies the expression.
entry_is() {
	local id=$1 expr=$2 t
	for ((t = 0; t < $3 * 20; t++)); do
		if "$AGENT" list --json 2>/dev/null | $PY -c "
import json, sys
e = [x for x in json.load(sys.stdin) if x['id'] == sys.argv[1]]
sys.exit(0 if e and ($expr) else 1)" "$id" 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	return 1
}
entry_json() {
	"$AGENT" list --json | $PY -c 'import json,sys; print([x for x in json.load(sys.stdin) if x["id"] == sys.argv[1]])' "$1"
}

cat >"$XDG_CONFIG_HOME/ccid-emu/agent.conf" <<EOF
[entry lab]
card=loopback

[entry p]
card=piv:$WORK/piv

[reader PCD 00 01]
idle=50
lock_timeout=3s
single-session=true

[reader Nothing like it]
idle=soon
EOF
"$AGENT" daemon --no-libvirt >"$WORK/daemon.log" 2>&1 &
DPID=$!
gdbus wait --session --timeout 10 org.ccidemu.Agent1 || die "no daemon: $(cat "$WORK/daemon.log")"

R0=pcsc-virtual-pcd-00-00
R1=pcsc-virtual-pcd-00-01
entry_is lab "e[0]['atr'] == '$LATR'" 5 && pass atr-loopback "$(entry_json lab)" || fail atr-loopback "want $LATR: $(entry_json lab)"
entry_is p "e[0]['atr'].startswith('$PATR_HEAD') and len(e[0]['atr']) == ${#PATR_HEAD} + 2" 5 &&
	pass atr-piv "$(entry_json p)" || fail atr-piv "want $PATR_HEAD..: $(entry_json p)"
[[ -d $WORK/piv ]] && fail piv-untouched "listing created the PIV card's directory" || pass piv-untouched "no card made to know its ATR"
entry_is virtual "e[0]['atr'] == ''" 5 && pass atr-virtual-unknown "before any attach: $(entry_json virtual)" ||
	fail atr-virtual-unknown "$(entry_json virtual)"
entry_is $R1 "e[0]['single_session'] and e[0]['idle_ms'] == 50 and e[0]['lock_timeout_ms'] == 3000" 10 &&
	pass reader-policy "$(entry_json $R1)" || fail reader-policy "$(entry_json $R1) $(tail -n 5 "$WORK/daemon.log")"
entry_is $R0 "not e[0]['single_session'] and e[0]['idle_ms'] > 0 and e[0]['idle_ms'] != 50 and e[0]['lock_timeout_ms'] != 3000" 5 &&
	pass reader-defaults "$(entry_json $R0)" || fail reader-defaults "$(entry_json $R0)"
msg=$(gdbus call --session -d org.ccidemu.Agent1 -o /org/ccidemu/Agent1 \
	-m org.freedesktop.DBus.Properties.Get org.ccidemu.Agent1.Manager ConfigErrors)
[[ $msg == *"[reader Nothing like it]"*"idle=soon"*"group skipped"* ]] &&
	pass bad-reader-group "$msg" || fail bad-reader-group "ConfigErrors: $msg"

# Two paused QEMUs with a USB controller.
start_qemu() {
	qemu-system-x86_64 -machine pc -accel tcg -nodefaults -display none -S -device qemu-xhci \
		-qmp "unix:$WORK/$1.qmp,server=on,wait=off" >"$WORK/$1.log" 2>&1 &
	echo $!
}
QPID1=$(start_qemu vm1)
QPID2=$(start_qemu vm2)
for _ in $(seq 100); do [[ -S $WORK/vm1.qmp && -S $WORK/vm2.qmp ]] && break; sleep 0.05; done
"$AGENT" vm add vm1 --qmp "unix:$WORK/vm1.qmp" >/dev/null || die "vm add vm1 failed"
"$AGENT" vm add vm2 --qmp "unix:$WORK/vm2.qmp" >/dev/null || die "vm add vm2 failed"

out=$("$AGENT" attach virtual vm1 2>&1) || fail attach-virtual "$out"
entry_is virtual "e[0]['atr'] == '$VATR'" 5 && pass atr-virtual "after the attach: $(entry_json virtual)" ||
	fail atr-virtual "want $VATR: $(entry_json virtual)"

out=$("$AGENT" attach $R1 vm1 2>&1) && pass policy-attach-first "$out" || fail policy-attach-first "$out"
rc=0
out=$("$AGENT" attach $R1 vm2 2>&1) || rc=$?
((rc == 4)) && [[ $out == *"single-session"*"vm1"* ]] && pass policy-single-session "exit 4: $out" ||
	fail policy-single-session "exit $rc: $out"
out=$("$AGENT" attach $R0 vm1 2>&1) && out2=$("$AGENT" attach $R0 vm2 2>&1) &&
	pass defaults-shared "$out; $out2" || fail defaults-shared "$out ${out2:-}"
# libvirt is off here (--no-libvirt): a libvirt VM is refused clearly.
rc=0
out=$("$AGENT" vm add dom --libvirt qemu:///session 2>&1) || rc=$?
((rc == 1)) && [[ $out == *"qemu:///session is not watched"* ]] && pass libvirt-not-watched "exit 1: $out" ||
	fail libvirt-not-watched "exit $rc: $out"
kill -0 "$DPID" 2>/dev/null && pass daemon-alive "still running" || fail daemon-alive "$(tail -n 5 "$WORK/daemon.log")"

if ((FAILS)); then
	echo "daemon log:"; sed 's/^/  | /' "$WORK/daemon.log"
	echo "test-daemon-policy: FAIL"
	exit 1
fi
echo "test-daemon-policy: PASS"
