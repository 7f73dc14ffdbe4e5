#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Two guests share one host reader through `ccid-agent daemon`
# (docs/daemon.md): a private pcscd with vpcd and the vicc card
# (tests/pcsc), whose reader is the daemon's shared entry; two guests of
# the guest kit (TCG, booted at the same time, each with only a USB
# controller and a QMP socket) ask for the entry (`vm add`, `attach`), and
# when both have the card the host plugs the loopback entry into both as
# the start signal.  Both then run SELECT + READ BINARY rounds on the one
# card at the same time, each on its own EF (guest/daemon-share.sh), and
# check every answer (the reader's [reader] policy: idle=1s, see below);
# the host checks that the two loops overlapped in time and that the
# daemon listed both VMs as holders.  Both detach, one reader at a time.
#
# Usage: test-daemon-share.sh [--agent PATH] [--loop SECONDS] [--quiet]
#                             [--keep DIR]
# Exit status: 0 pass, 1 fail, 2 setup error.
# Needs root (or unprivileged user namespaces) for the private pcscd.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
GUEST=$SRC/tests/guest
PCSC=$SRC/tests/pcsc
AGENT=${CCID_AGENT:-}
QUIET=()
KEEP=
LOOP_S=15
ARGS=("$@")
PY=/usr/bin/python3
ENTRY=pcsc-virtual-pcd-00-00

die() { printf 'test-daemon-share: error: %s\n' "$*" >&2; exit 2; }

while (($#)); do
	case $1 in
	--agent) AGENT=${2:?--agent needs a path}; shift ;;
	--loop) LOOP_S=${2:?--loop needs seconds}; shift ;;
	--quiet|-q) QUIET=(-q) ;;
	--keep) KEEP=${2:?--keep needs a directory}; shift ;;
	-h|--help) sed -n '3,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done
[[ $LOOP_S =~ ^[1-9][0-9]*$ ]] || die "--loop: '$LOOP_S' is not a number of seconds"

if [[ -z ${CCID_DAEMON_TEST_BUS:-} ]]; then
	command -v dbus-run-session >/dev/null || die "dbus-run-session not found (Debian package dbus-daemon)"
	export CCID_DAEMON_TEST_BUS=1
	exec dbus-run-session -- "${BASH_SOURCE[0]}" "${ARGS[@]}"
fi

# shellcheck source=../guest/host-lib.sh
. "$GUEST/host-lib.sh"
hl_find_agent "$SRC" || die "no ccid-agent: build the project or pass --agent"
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")
"$GUEST/build-guest.sh" || die "build-guest.sh failed"
hl_work "$KEEP" ccid-daemon-share
export XDG_CONFIG_HOME=$WORK/xdg-config
mkdir -p "$XDG_CONFIG_HOME"
PCSCD_DIR=$WORK/pcscd

DPID= VPID=
BOOTS=()
cleanup() {
	local p
	for p in "${BOOTS[@]}"; do kill "$p" 2>/dev/null || true; done
	[[ -n $DPID ]] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	[[ -n $VPID ]] && kill -KILL "$VPID" 2>/dev/null
	"$PCSC/private-pcscd.sh" stop "$PCSCD_DIR" >/dev/null 2>&1 || true
	[[ -n $KEEP ]] || rm -rf "$WORK"
	return 0
}
trap cleanup EXIT

FAILS=0

"$PCSC/private-pcscd.sh" start "$PCSCD_DIR" >"$WORK/pcscd.env" ||
	die "cannot start the private pcscd (root or unprivileged user namespaces needed)"
# shellcheck disable=SC1091
. "$WORK/pcscd.env"
export PCSCLITE_CSOCK_NAME
$PY "$PCSC/vicc_card.py" --port "$VPCD_PORT" >"$WORK/vicc.log" 2>&1 &
VPID=$!
disown "$VPID"

# The loopback entry is the start signal (see above).
mkdir -p "$XDG_CONFIG_HOME/ccid-emu"
# The shared reader keeps a guest's transaction for 1 s after its last
# APDU ([reader] policy): a TCG guest under load can take longer than the
# default 200 ms between its SELECT and its READ BINARY, and the other
# guest's SELECT would come in between (seen: a READ answered with the
# other EF's bytes).  The guests pause longer than that between rounds,
# so the card goes back and forth.
cat >"$XDG_CONFIG_HOME/ccid-emu/agent.conf" <<EOF
[entry loopback]
card=loopback
label=Start signal

[reader Virtual PCD 00 00]
idle=1s
EOF
"$AGENT" daemon --no-libvirt >"$WORK/daemon.log" 2>&1 &
DPID=$!
gdbus wait --session --timeout 10 org.ccidemu.Agent1 || die "the daemon did not appear on the bus: $(cat "$WORK/daemon.log")"
entry_field() {    # entry_field ID FIELD: the entry's FIELD (lists joined by ,)
	"$AGENT" list --json | $PY -c '
import json, sys
e = [x for x in json.load(sys.stdin) if x["id"] == sys.argv[1]]
v = e[0][sys.argv[2]] if e else ""
print(",".join(v) if isinstance(v, list) else v)' "$1" "$2"
}
ATR=
for _ in $(seq 300); do
	[[ $(entry_field $ENTRY state) == card-present ]] && ATR=$(entry_field $ENTRY atr) && break
	sleep 0.05
done
[[ -n $ATR ]] || die "the shared entry $ENTRY never had the card: $("$AGENT" list 2>&1 | tr '\n' ';') $(cat "$WORK/vicc.log")"
echo "shared entry $ENTRY, card ATR $ATR"

# EF 1001 and EF 1002 of vicc: byte[i] = (FID_low * 37 + i * 11) & 0xFF.
ef_hex() { $PY -c 'import sys; f = int(sys.argv[1]); print("".join("%02X" % ((f * 37 + i * 11) & 0xFF) for i in range(64)) + "9000")' "$1"; }

on_request() {    # the guest's requests; VM and the rest from the environment
	local what=$1 out rc e
	echo "$(now_ms) $what" >>"$D/requests.log"
	case $what in
	attach)
		rc=0
		out=$("$AGENT" vm add "$VM" --qmp "unix:$QMP" 2>&1) || rc=$?
		echo "vm-add rc=$rc $out" >>"$D/requests.log"
		rc=0
		out=$("$AGENT" attach "$ENTRY" "$VM" 2>&1) || rc=$?
		echo "attach rc=$rc $out" >>"$D/requests.log" ;;
	ready)
		: >"$D/ready"
		# The second guest ready gives both the start signal.
		if [[ -f $WORK/A/ready && -f $WORK/B/ready ]] && mkdir "$WORK/go" 2>/dev/null; then
			echo "holders $(entry_field $ENTRY holders)" >"$WORK/holders.log"
			for v in share-A share-B; do
				rc=0
				out=$("$AGENT" attach loopback "$v" 2>&1) || rc=$?
				echo "go $v rc=$rc $out" >>"$WORK/go.log"
			done
		fi ;;
	loop-start|loop-end) ;;
	detach-shared|detach-signal)
		e=$([[ $what == detach-shared ]] && echo "$ENTRY" || echo loopback)
		rc=0
		out=$("$AGENT" detach "$e" "$VM" 2>&1) || rc=$?
		echo "detach $e rc=$rc $out" >>"$D/requests.log" ;;
	*) echo "unknown request '$*'" >>"$D/requests.log" ;;
	esac
}


WATCHES=()
for g in A B; do
	D=$WORK/$g
	mkdir -p "$D"
	fid=$([[ $g == A ]] && echo 1 || echo 2)
	cat >"$D/params" <<EOF
VICC_ATR=${ATR:0:16}
FID=100$fid
EXPECT=$(ef_hex "$fid")
LOOP_S=$LOOP_S
PAUSE_US=1300000
EOF
	: >"$D/requests.log"
	"$GUEST/boot-guest.sh" --no-build "${QUIET[@]}" --qmp "$D/qmp.sock" -m 384 \
		-s "$HERE/guest/daemon-share.sh" -f "$D/params:/ccid-test/params" \
		-e shared-reader,go-signal,apdu-loop,shared-gone,usb-gone,readers-gone \
		--pidfile "$D/qemu.pid" -w "$D/boot" -t 240 >"$D/boot.out" 2>&1 &
	BOOTS+=($!)
	# The watcher needs the results file that boot-guest.sh creates.
	for _ in $(seq 100); do [[ -f $D/boot/results.log ]] && break; sleep 0.05; done
	(
		VM=share-$g
		QMP=$D/qmp.sock
		watch_requests "$D/boot/results.log" "${BOOTS[-1]}" on_request
	) &
	WATCHES+=($!)
done
RCS=()
for p in "${BOOTS[@]}"; do
	rc=0
	wait "$p" || rc=$?
	RCS+=("$rc")
done
BOOTS=()
for p in "${WATCHES[@]}"; do wait "$p" 2>/dev/null || true; done

for i in 0 1; do
	g=$([[ $i == 0 ]] && echo A || echo B)
	D=$WORK/$g
	grep -E 'RESULT|METRIC|NOTE' "$D/boot.out" | sed "s/^/$g| /"
	sed "s/^/$g requests| /" "$D/requests.log"
	if [[ ${RCS[$i]} == 0 ]]; then
		hres "guest-$g" PASS "$(grep -m 1 'RESULT apdu-loop' "$D/boot.out" | sed 's/.*RESULT //')"
	else
		hres "guest-$g" FAIL "boot-guest.sh exit ${RCS[$i]}: $(grep 'RESULT .* FAIL' "$D/boot.out" | tr '\n' ';') (logs: $D)"
	fi
	for want in "vm-add rc=0" "attach rc=0" "detach $ENTRY rc=0" "detach loopback rc=0"; do
		grep -q "^$want" "$D/requests.log" || hres "$g-${want// /-}" FAIL "no '$want' in $D/requests.log"
	done
done
[[ -f $WORK/go.log ]] && cat "$WORK/go.log"
if [[ $(cat "$WORK/holders.log" 2>/dev/null) == "holders share-A,share-B" ||
	$(cat "$WORK/holders.log" 2>/dev/null) == "holders share-B,share-A" ]]; then
	hres two-holders PASS "list --json: $ENTRY held by both VMs"
else
	hres two-holders FAIL "$(cat "$WORK/holders.log" 2>/dev/null || echo 'no start signal given')"
fi
# The loops ran at the same time: each started before the other ended.
sa=$(awk '$2 == "loop-start" { print $1 }' "$WORK/A/requests.log")
ea=$(awk '$2 == "loop-end" { print $1 }' "$WORK/A/requests.log")
sb=$(awk '$2 == "loop-start" { print $1 }' "$WORK/B/requests.log")
eb=$(awk '$2 == "loop-end" { print $1 }' "$WORK/B/requests.log")
if [[ -n $sa && -n $ea && -n $sb && -n $eb ]] && ((sa < eb && sb < ea)); then
	ov=$(( (ea < eb ? ea : eb) - (sa > sb ? sa : sb) ))
	hres loops-overlap PASS "the two APDU loops overlapped for ${ov} ms (A ${sa}..${ea}, B ${sb}..${eb})"
else
	hres loops-overlap FAIL "A '${sa}'..'${ea}', B '${sb}'..'${eb}'"
fi
holders=$(entry_field $ENTRY holders)
[[ -z $holders ]] && hres entry-free PASS "no holders after both detached" || hres entry-free FAIL "holders '$holders'"
kill -0 "$DPID" 2>/dev/null && hres daemon-alive PASS "still running" || hres daemon-alive FAIL "the daemon exited"

echo "daemon log:"; sed 's/^/  | /' "$WORK/daemon.log"
if ((FAILS)); then
	echo "test-daemon-share: FAIL (rerun with --keep DIR for the logs)"
	exit 1
fi
echo "test-daemon-share: PASS"
