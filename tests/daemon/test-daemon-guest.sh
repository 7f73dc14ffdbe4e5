#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Hot attach into a running guest through `ccid-agent daemon`
# (docs/daemon.md): a stock Debian 12 guest (tests/guest) boots with only
# a USB controller and a QMP socket.  On the guest's requests the host
# runs `ccid-agent vm add`, `ccid-agent attach virtual VM`, `ccid-agent
# detach virtual VM` and `attach` again; the guest's udev, pcscd, libccid
# and OpenSC see the reader come, go and come back (guest script:
# guest/daemon-hotplug.sh).  When the guest powers off, the daemon ends the
# session and the entry is free again.  Runs on a private session bus
# (dbus-run-session) with temporary XDG directories.
#
# One daemon serves a guest behind each USB controller in turn (a VM each,
# so the daemon also sees VMs come and go).
#
# Usage: test-daemon-guest.sh [--agent PATH] [--controllers "xhci ehci uhci"]
#                             [--quiet] [--keep DIR]
# Exit status: 0 pass, 1 fail, 2 setup error.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
GUEST=$SRC/tests/guest
AGENT=${CCID_AGENT:-}
CONTROLLERS=(xhci ehci uhci)
QUIET=()
KEEP=
ARGS=("$@")
# The virtual card's ATR (libcacard's soft card), as the guest must see it.
VATR=3B7A18000073667465206364313434

die() { printf 'test-daemon-guest: error: %s\n' "$*" >&2; exit 2; }

while (($#)); do
	case $1 in
	--agent) AGENT=${2:?--agent needs a path}; shift ;;
	--controllers) read -r -a CONTROLLERS <<<"${2:?--controllers needs a list}"; shift ;;
	--quiet|-q) QUIET=(-q) ;;
	--keep) KEEP=${2:?--keep needs a directory}; shift ;;
	-h|--help) sed -n '3,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done

# A private session bus for the daemon and its clients.
if [[ -z ${CCID_DAEMON_TEST_BUS:-} ]]; then
	command -v dbus-run-session >/dev/null || die "dbus-run-session not found (Debian package dbus-daemon)"
	export CCID_DAEMON_TEST_BUS=1
	exec dbus-run-session -- "${BASH_SOURCE[0]}" "${ARGS[@]}"
fi

# shellcheck source=../guest/host-lib.sh
. "$GUEST/host-lib.sh"
hl_find_agent "$SRC" || die "no ccid-agent: build the project or pass --agent"
"$GUEST/build-guest.sh" || die "build-guest.sh failed"
hl_work "$KEEP" ccid-daemon-guest
export XDG_CONFIG_HOME=$WORK/xdg-config
# No pcscd for the daemon: the host's readers would be entries too
# (tests/daemon/test-daemon-pcsc.sh covers them).
export PCSCLITE_CSOCK_NAME=$WORK/no-pcscd.comm
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"

DPID=
cleanup() {
	[[ -n ${EPID:-} ]] && kill "$EPID" 2>/dev/null
	[[ -n $DPID ]] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	[[ -n $KEEP ]] || rm -rf "$WORK"
	return 0
}
trap cleanup EXIT

FAILS=0
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

"$AGENT" daemon >"$WORK/daemon.log" 2>&1 &
DPID=$!
gdbus wait --session --timeout 10 org.ccidemu.Agent1 || die "the daemon did not appear on the bus: $(cat "$WORK/daemon.log")"
RSS0=$(rss_kb "$DPID")
# The daemon's events (`watch --json`) on fd $EFD: the checks below wait
# for them instead of polling.
exec {EFD}< <(exec "$AGENT" watch --json 2>"$WORK/events.err")
EPID=$!
IFS= read -r -t 10 -u "$EFD" line && [[ $line == *'"ready"'* ]] ||
	die "watch --json did not get ready: $(cat "$WORK/events.err")"
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

echo "VATR=$VATR" >"$WORK/params"
# What the guest's REQUEST lines ask for (run by watch_requests, in one
# subshell per boot: `added` lives across the requests of one boot).
added=0
on_request() {
	local what=$1 t0 out rc
	case $what in
	attach)
		if ((!added)); then
			rc=0
			out=$("$AGENT" vm add "$VM" --qmp "unix:$QMP" 2>&1) || rc=$?
			echo "vm-add rc=$rc $out" >>"$WORK/requests.log"
			added=1
		fi
		t0=$(now_ms)
		rc=0
		out=$("$AGENT" attach virtual "$VM" 2>&1) || rc=$?
		echo "attach rc=$rc ms=$(($(now_ms) - t0)) $out" >>"$WORK/requests.log"
		echo "host: attach: rc=$rc $out" ;;
	detach)
		t0=$(now_ms)
		rc=0
		out=$("$AGENT" detach virtual "$VM" 2>&1) || rc=$?
		echo "detach rc=$rc ms=$(($(now_ms) - t0)) $out" >>"$WORK/requests.log"
		echo "host: detach: rc=$rc $out" ;;
	*) echo "unknown request '$*'" >>"$WORK/requests.log" ;;
	esac
}

# The entry has no holder any more.
free_again() {
	"$AGENT" list --json | /usr/bin/python3 -c '
import json, sys
e = [x for x in json.load(sys.stdin) if x["id"] == "virtual"][0]
sys.exit(0 if e["holders"] == [] else 1)'
}

vm_state() {
	"$AGENT" vms --json | /usr/bin/python3 -c '
import json, sys
print([v for v in json.load(sys.stdin) if v["name"] == sys.argv[1]][0]["state"])' "$1"
}

# One guest behind one controller: attach, detach, attach, power off.
boot_one() {
	local C=$1 rc=0 n_attach ok=0 state out T t_exit
	VM=guest-$C
	QMP=$WORK/qmp-$C.sock
	D=$WORK/boot-$C
	mkdir -p "$D"
	: >"$WORK/requests.log"
	echo "=== hot attach into a guest behind $C"
	"$GUEST/boot-guest.sh" --no-build "${QUIET[@]}" -c "$C" --qmp "$QMP" \
		-s "$HERE/guest/daemon-hotplug.sh" -f "$WORK/params:/ccid-test/params" \
		-e usb-enumerated,stock-plist,reader,atr-virtual,opensc-atr,pkcs11-token,reader-gone,usb-gone,reader-again,atr-again,opensc-atr-again \
		--pidfile "$D/qemu.pid" -w "$D" -t 400 &
	BOOT=$!
	watch_requests "$D/results.log" "$BOOT" on_request &
	WATCH=$!
	wait "$BOOT" || rc=$?
	t_exit=$(now_ms)
	wait "$WATCH" 2>/dev/null || true
	cat "$WORK/requests.log"

	if ((rc == 0)); then
		hres "$C-guest-hotplug" PASS "attach, detach, attach again: the guest's pcscd and OpenSC saw the reader come, go and come back"
	else
		hres "$C-guest-hotplug" FAIL "boot-guest.sh exit $rc (logs: $D)"
	fi
	for want in "vm-add rc=0" "attach rc=0" "detach rc=0"; do
		if grep -q "^$want" "$WORK/requests.log"; then
			hres "$C-cli-${want%% *}" PASS "$(grep -m 1 "^$want" "$WORK/requests.log")"
		else
			hres "$C-cli-${want%% *}" FAIL "no '$want' in: $(tr '\n' ';' <"$WORK/requests.log")"
		fi
	done
	n_attach=$(grep -c '^attach rc=0' "$WORK/requests.log" || true)
	if [[ $n_attach == 2 ]]; then
		hres "$C-attach-twice-ok" PASS "2 successful attaches"
	else
		hres "$C-attach-twice-ok" FAIL "$n_attach successful attaches, want 2"
	fi

	# The guest powered off: its session ends and the entry is free.
	until_event 5 free_again && ok=1
	if ((ok)); then
		hres "$C-entry-free-after-poweroff" PASS "holders empty $(($(now_ms) - t_exit)) ms after QEMU exited"
	else
		hres "$C-entry-free-after-poweroff" FAIL "$("$AGENT" list 2>&1 | tr '\n' ';')"
	fi
	state=$(vm_state "$VM" || true)
	if [[ $state == gone ]]; then
		hres "$C-vm-gone" PASS "vms: state gone"
	else
		hres "$C-vm-gone" FAIL "VM state '$state'"
	fi
	if out=$("$AGENT" vm remove "$VM" 2>&1); then
		hres "$C-vm-remove" PASS "$out"
	else
		hres "$C-vm-remove" FAIL "$out"
	fi

	T=$D/results.timed
	SUMMARY+=("$C: attach->USB $(guest_metric "$T" attach_to_usb_ms) ms, attach->ATR $(guest_metric "$T" attach_to_atr_ms) ms (incl. pcscd start), re-attach->ATR $(guest_metric "$T" reattach_to_atr_ms) ms, detach->reader gone $(guest_metric "$T" detach_to_reader_gone_ms) ms, detach->USB gone $(guest_metric "$T" detach_to_usb_gone_ms) ms; CLI: $(sed -n 's/^\(attach\|detach\) rc=0 ms=\([0-9]*\).*/\1 \2 ms/p' "$WORK/requests.log" | tr '\n' ' ')")
}

SUMMARY=()
for CONTROLLER in "${CONTROLLERS[@]}"; do
	boot_one "$CONTROLLER"
	if ! kill -0 "$DPID" 2>/dev/null; then
		hres daemon-alive FAIL "the daemon exited: $(tail -n 5 "$WORK/daemon.log")"
		break
	fi
done
kill -0 "$DPID" 2>/dev/null &&
	hres daemon-alive PASS "RSS ${RSS0} kB at start, $(rss_kb "$DPID") kB after ${#CONTROLLERS[@]} guests"
echo "=== summary"
printf '%s\n' "${SUMMARY[@]}"
echo "daemon log:"; sed 's/^/  | /' "$WORK/daemon.log"
if ((FAILS)); then
	echo "test-daemon-guest: FAIL (${KEEP:+logs in $WORK; }rerun with --keep DIR for the logs)"
	exit 1
fi
echo "test-daemon-guest: PASS"
