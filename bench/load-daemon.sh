#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Load (c) of bench/README.md: `ccid-agent daemon` with 16 entries
# attached to 4 QEMUs (paused, TCG, no guest: hot-plugging and the
# usbredir handshake need only QEMU's device tree and main loop), 4
# readers per VM; prints the daemon's peak RSS (VmHWM) and how much of it
# is anonymous memory, and fails above 20 MiB.  The issues set no target
# for the daemon (16 MiB is the per-agent target of `serve`, load (b));
# 20 MiB is a tripwire for growth: most of the RSS is shared-library text
# (OpenSSL, NSS, GIO), not the daemon's own memory.  Runs on a private
# session bus (dbus-run-session).
#
#   bench/load-daemon.sh [--agent PATH] [--entries N] [--vms N]
set -euo pipefail
export LC_ALL=C
# meson test sets MALLOC_PERTURB_, which makes glibc fill (and so make
# resident) every block it hands out: RSS is measured as users run it.
unset MALLOC_PERTURB_

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
AGENT=${CCID_AGENT:-$SRC/build/host-agent/ccid-agent}
ENTRIES=16
VMS=4
RSS_LIMIT_KB=$((20 * 1024))
PY=/usr/bin/python3

die() { printf 'load-daemon: error: %s\n' "$*" >&2; exit 2; }
while (($#)); do
	case $1 in
	--agent) AGENT=${2:?}; shift ;;
	--entries) ENTRIES=${2:?}; shift ;;
	--vms) VMS=${2:?}; shift ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")
if [[ -z ${CCID_LOAD_BUS:-} ]]; then
	command -v dbus-run-session >/dev/null || die "dbus-run-session not found (dbus-daemon)"
	export CCID_LOAD_BUS=1
	exec dbus-run-session -- "${BASH_SOURCE[0]}" --agent "$AGENT" --entries "$ENTRIES" --vms "$VMS"
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ccid-load-daemon.XXXXXX")
export XDG_DATA_HOME=$WORK/data XDG_CONFIG_HOME=$WORK/config XDG_RUNTIME_DIR=$WORK/run
export PCSCLITE_CSOCK_NAME=$WORK/no-pcscd.comm     # no host readers as entries
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

# Entries: the built-in virtual CAC card, one PIV card, loopback cards.
{
	echo "[entry piv1]"
	echo "card=piv:$WORK/piv1"
	for ((i = 2; i < ENTRIES; i++)); do
		echo "[entry loop$i]"
		echo "card=loopback"
	done
} >"$XDG_CONFIG_HOME/ccid-emu/agent.conf"

"$AGENT" daemon >"$WORK/daemon.log" 2>&1 &
DPID=$!
gdbus wait --session --timeout 10 org.ccidemu.Agent1 ||
	die "the daemon did not appear: $(cat "$WORK/daemon.log")"

# -daemonize: QEMU returns once it is set up, its QMP socket listening.
for ((v = 0; v < VMS; v++)); do
	qemu-system-x86_64 -machine pc -accel tcg -nodefaults -display none -S \
		-qmp "unix:$WORK/vm$v.qmp,server=on,wait=off" -device qemu-xhci \
		-daemonize -pidfile "$WORK/vm$v.pid" >"$WORK/vm$v.log" 2>&1 ||
		die "QEMU vm$v did not start: $(cat "$WORK/vm$v.log")"
	PIDS+=("$(cat "$WORK/vm$v.pid")")
	"$AGENT" vm add "vm$v" --qmp "unix:$WORK/vm$v.qmp" >/dev/null
done

mapfile -t IDS < <("$AGENT" list --json | $PY -c 'import json,sys; [print(e["id"]) for e in json.load(sys.stdin)]')
((${#IDS[@]} == ENTRIES)) || die "the daemon has ${#IDS[@]} entries, expected $ENTRIES: ${IDS[*]}"
rss_idle=$(awk '/^VmRSS:/ { print $2 }' "/proc/$DPID/status")
i=0
for id in "${IDS[@]}"; do
	"$AGENT" attach "$id" "vm$((i % VMS))" >/dev/null ||
		die "attach $id vm$((i % VMS)) failed: $(tail -n 5 "$WORK/daemon.log")"
	i=$((i + 1))
done
# Every entry held by its VM, as the daemon reports it.
held=$("$AGENT" list --json | $PY -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if e["holders"]))')
rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$DPID/status")
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$DPID/status")
anon=$(awk '/^RssAnon:/ { print $2 }' "/proc/$DPID/status")
mib() { echo "$(($1 / 1024)).$((($1 % 1024) * 10 / 1024))"; }
echo "load (c): daemon with $ENTRIES entries ($held attached, $((ENTRIES / VMS)) per VM) on $VMS paused QEMUs: RSS $(mib "$rss") MiB (peak $(mib "$hwm") MiB; $(mib "$rss_idle") MiB before attaching; $(mib "$anon") MiB of it anonymous)"
((held == ENTRIES)) || { echo "load (c): FAIL only $held of $ENTRIES entries attached"; exit 1; }
((hwm <= RSS_LIMIT_KB)) || { echo "load (c): FAIL peak RSS above 20 MiB"; exit 1; }
cp "$WORK/daemon.log" "${LOAD_DAEMON_LOG:-/dev/null}"
kill -TERM "$DPID"
wait "$DPID" || { echo "load (c): FAIL the daemon exited with $?"; DPID=; exit 1; }
DPID=
echo "load (c): PASS"
