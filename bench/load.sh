#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Load: several VMs' readers on ONE shared PC/SC card, and the agent's
# memory with 16 readers (bench/README.md "Load").
#
#   bench/load.sh [--vms N] [--apdus N] [--readers N] [--agent PATH]
#                 [--load-peers PATH] [--daemon] [--quick]
#
# (a) N (default 8) `ccid-agent serve --card pcsc:...` instances, each
#     behind its own usbredir peer (bench/load_peers: the real
#     usbredirparser in the usb-guest role, as QEMU), all on the one card
#     of a private pcscd (tests/pcsc/private-pcscd.sh) with vpcd and the
#     vicc test card (tests/pcsc/vicc_card.py).  Every peer sends --apdus
#     (default 1000) ECHO APDUs at once with data only it can recognise:
#     the run fails on any crossed answer or error.
# (b) the RSS of those agents (VmHWM, the peak) after the run, and of
#     --readers (default 16) loopback `serve` agents with a peer attached.
# --daemon adds (c): `ccid-agent daemon` with 16 entries attached to 4
#     paused QEMUs (no guest), its peak RSS (needs qemu-system-x86_64 and
#     dbus-run-session).
# --quick: 2 VMs x 100 APDUs, 4 readers (the CI test "load short").
#
# Needs root (or user namespaces) for the private pcscd, vsmartcard-vpcd,
# python3-virtualsmartcard.  Exit: 0 pass, 1 fail, 2 setup error.
set -euo pipefail
export LC_ALL=C
# meson test sets MALLOC_PERTURB_, which makes glibc fill (and so make
# resident) every block it hands out: RSS is measured as users run it.
unset MALLOC_PERTURB_

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
VMS=8
APDUS=1000
READERS=16
AGENT=${CCID_AGENT:-$SRC/build/host-agent/ccid-agent}
PEERS=${LOAD_PEERS:-$SRC/build/bench/load_peers}
DAEMON=0
RSS_LIMIT_KB=$((16 * 1024))

die() { printf 'load: error: %s\n' "$*" >&2; exit 2; }

while (($#)); do
	case $1 in
	--vms) VMS=${2:?}; shift ;;
	--apdus) APDUS=${2:?}; shift ;;
	--readers) READERS=${2:?}; shift ;;
	--agent) AGENT=${2:?}; shift ;;
	--load-peers) PEERS=${2:?}; shift ;;
	--daemon) DAEMON=1 ;;
	--quick) VMS=2; APDUS=100; READERS=4 ;;
	-h|--help) sed -n '3,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done
[[ -x $AGENT ]] || die "no ccid-agent at $AGENT (build first, or --agent PATH)"
[[ -x $PEERS ]] || die "no load_peers at $PEERS (a build with tests, or --load-peers PATH)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ccid-load.XXXXXX")
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	"$SRC/tests/pcsc/private-pcscd.sh" stop "$WORK/pcscd" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

# serve_start NAME CARD: a serve agent on $WORK/NAME.sock; returns once
# it printed its "control:" line (read from its stdout pipe, no polling).
serve_start() {
	local name=$1 card=$2 line fd
	exec {fd}< <(exec "$AGENT" serve --card "$card" --listen "unix:$WORK/$name.sock" \
		2>"$WORK/$name.err")
	PIDS+=($!)
	eval "PID_$name=$!"
	while IFS= read -r -t 20 -u "$fd" line; do
		[[ $line == control:* ]] && { exec {fd}<&-; return 0; }
	done
	die "serve $name did not get ready: $(tail -n 3 "$WORK/$name.err")"
}

peak_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
FAILS=0

# --- (a) N readers on one shared pcsc card -------------------------------------
mkdir -p "$WORK/pcscd"
env_out=$("$SRC/tests/pcsc/private-pcscd.sh" start "$WORK/pcscd") ||
	die "private pcscd did not start (root, pcscd, vsmartcard-vpcd needed)"
eval "$(grep -E '^(PCSCLITE_CSOCK_NAME|VPCD_PORT|PCSCD_PID)=' <<<"$env_out" | sed 's/^/export /')"
exec {vfd}< <(exec /usr/bin/python3 "$SRC/tests/pcsc/vicc_card.py" --port "$VPCD_PORT" 2>"$WORK/vicc.err")
PIDS+=($!)
IFS= read -r -t 20 -u "$vfd" line && [[ $line == vicc:\ connected* ]] ||
	die "vicc did not connect: $(cat "$WORK/vicc.err")"

SOCKS=()
for ((i = 0; i < VMS; i++)); do
	serve_start "vm$i" "pcsc:Virtual PCD 00 00"
	SOCKS+=("$WORK/vm$i.sock")
done
echo "=== (a) $VMS readers (one serve agent each) x $APDUS APDUs on one shared pcsc card (vicc)"
rc=0
"$PEERS" -n "$APDUS" "${SOCKS[@]}" | tee "$WORK/peers.log" || rc=$?
ok=$(awk '/^peer [0-9]+: ok/ { s += $4 } END { print s + 0 }' "$WORK/peers.log")
crossed=$(awk '/^peer [0-9]+: ok/ { s += $6 } END { print s + 0 }' "$WORK/peers.log")
errors=$(awk '/^peer [0-9]+: ok/ { s += $8 } END { print s + 0 }' "$WORK/peers.log")
want=$((VMS * APDUS))
if ((rc == 0 && ok == want && crossed == 0 && errors == 0)); then
	echo "load (a): PASS $ok of $want answers right, 0 crossed, 0 errors"
else
	echo "load (a): FAIL $ok of $want right, $crossed crossed, $errors errors (load_peers exit $rc)"
	FAILS=$((FAILS + 1))
fi
max=0
for ((i = 0; i < VMS; i++)); do
	eval "p=\$PID_vm$i"
	kb=$(peak_kb "$p")
	((kb > max)) && max=$kb
done
echo "load (b1): pcsc serve agents after the run: peak RSS (VmHWM) at most $((max / 1024)).$(((max % 1024) * 10 / 1024)) MiB per agent"
((max <= RSS_LIMIT_KB)) || { echo "load (b1): FAIL above 16 MiB"; FAILS=$((FAILS + 1)); }

# --- (b) many readers attached: one serve agent per reader ----------------------
SOCKS=()
for ((i = 0; i < READERS; i++)); do
	serve_start "r$i" loopback
	SOCKS+=("$WORK/r$i.sock")
done
"$PEERS" -n 100 -i 01 "${SOCKS[@]}" >"$WORK/readers.log" ||
	{ echo "load (b2): FAIL: $(tail -n 3 "$WORK/readers.log")"; FAILS=$((FAILS + 1)); }
max=0 total=0
for ((i = 0; i < READERS; i++)); do
	eval "p=\$PID_r$i"
	kb=$(peak_kb "$p")
	((kb > max)) && max=$kb
	total=$((total + kb))
done
echo "load (b2): $READERS loopback readers attached (one serve agent each, 100 APDUs each): peak RSS at most $((max / 1024)).$(((max % 1024) * 10 / 1024)) MiB per agent, $((total / 1024)) MiB together"
((max <= RSS_LIMIT_KB)) || { echo "load (b2): FAIL above 16 MiB"; FAILS=$((FAILS + 1)); }

if ((DAEMON)); then
	"$HERE/load-daemon.sh" --agent "$AGENT" || FAILS=$((FAILS + 1))
fi

if ((FAILS)); then
	echo "load: FAIL ($FAILS)"
	exit 1
fi
echo "load: PASS"
