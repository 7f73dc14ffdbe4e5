#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A system-wide `ccid-agent daemon --system` under the D-Bus policy that
# meson installs (host-agent/data/org.ccidemu.Agent1.conf), on a private
# bus of the system type (a real dbus-daemon with the system bus's default
# policy: nothing owned, no method calls, unless a policy file allows it):
#   - root's daemon owns org.ccidemu.Agent1; root's CLI (CCID_AGENT_BUS=system)
#     lists the entries;
#   - the user nobody lists them too (properties, object manager) but
#     cannot call a method (AccessDenied) and cannot take the name;
#   - nobody in the group libvirt may call methods (the call reaches the
#     daemon, which answers it);
#   - activation: with that daemon gone, nobody's `ccid-agent list` starts
#     it through the system bus activation file meson installs
#     (host-agent/data/org.ccidemu.Agent1.system-service.in), as root.
#
# Usage: test-daemon-system.sh AGENT       (as root)
# Exit status: 0 pass, 1 fail, 2 setup error.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA=$(cd "$HERE/../../host-agent/data" && pwd)
POLICY=$DATA/org.ccidemu.Agent1.conf
AGENT=${1:?usage: test-daemon-system.sh PATH-TO-ccid-agent}
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")
PY=/usr/bin/python3

die() { printf 'test-daemon-system: error: %s\n' "$*" >&2; exit 2; }
[[ $(id -u) == 0 ]] || die "needs root: the system-wide daemon runs as root"
getent group libvirt >/dev/null || die "no group libvirt (package libvirt-daemon-system)"
command -v dbus-daemon >/dev/null || die "dbus-daemon not found (package dbus-daemon)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ccid-daemon-system.XXXXXX")
chmod 755 "$WORK"
export XDG_CONFIG_HOME=$WORK/config XDG_DATA_HOME=$WORK/data XDG_RUNTIME_DIR=$WORK/run
export PCSCLITE_CSOCK_NAME=$WORK/no-pcscd.comm
mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR" "$WORK/services"
# The installed activation file, as meson configures it, with the built
# program and the test's own files.
sed "s|@AGENT@|$AGENT|g; s|@CONFIG@|$WORK/agent.conf|g; s|@STATE@|$WORK/state/vms.conf|g" \
	"$DATA/org.ccidemu.Agent1.system-service.in" >"$WORK/services/org.ccidemu.Agent1.service"
chmod 700 "$XDG_RUNTIME_DIR"
BPID= DPID= APID=
cleanup() {
	# The activated daemon is the bus's child, not ours.
	if [[ -n $APID ]]; then kill "$APID" 2>/dev/null || true; fi
	[[ -n $DPID ]] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	[[ -n $BPID ]] && kill "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null
	rm -rf "$WORK"
	return 0
}
trap cleanup EXIT

# The system bus's own default policy (as /usr/share/dbus-1/system.conf),
# plus the installed policy file.
cat >"$WORK/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=$WORK/system_bus_socket</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus" />
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <servicedir>$WORK/services</servicedir>
  <include>$POLICY</include>
</busconfig>
EOF
dbus-daemon --config-file="$WORK/bus.conf" --nofork --print-address=3 3>"$WORK/bus.addr" \
	2>"$WORK/bus.log" &
BPID=$!
for _ in $(seq 100); do [[ -s $WORK/bus.addr ]] && break; sleep 0.05; done
[[ -s $WORK/bus.addr ]] || die "dbus-daemon did not start: $(cat "$WORK/bus.log")"
chmod 755 "$WORK"
export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$WORK/system_bus_socket
export CCID_AGENT_BUS=system

FAILS=0
pass() { echo "PASS $1: ${*:2}"; }
fail() { echo "FAIL $1: ${*:2}"; FAILS=$((FAILS + 1)); }
AS_NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
AS_LIBVIRT=(setpriv --reuid=nobody --regid=nogroup --groups=libvirt)

"$AGENT" daemon --system --no-readers --no-libvirt >"$WORK/daemon.log" 2>&1 &
DPID=$!
gdbus wait --system --timeout 10 org.ccidemu.Agent1 ||
	die "the daemon did not get the name: $(cat "$WORK/daemon.log") $(cat "$WORK/bus.log")"
grep -q 'on the system bus' "$WORK/daemon.log" && pass root-owns "$(grep ready "$WORK/daemon.log")" ||
	fail root-owns "$(cat "$WORK/daemon.log")"

has_virtual() { $PY -c 'import json, sys; sys.exit(0 if any(e["id"] == "virtual" for e in json.load(sys.stdin)) else 1)'; }
out=$("$AGENT" list --json 2>&1) && has_virtual <<<"$out" && pass root-list "$out" || fail root-list "$out"
out=$("${AS_NOBODY[@]}" "$AGENT" list --json 2>&1) && has_virtual <<<"$out" &&
	pass user-reads "nobody: $out" || fail user-reads "nobody: $out"
rc=0
out=$("${AS_NOBODY[@]}" "$AGENT" remove virtual 2>&1) || rc=$?
((rc != 0)) && [[ $out == *AccessDenied* || $out == *"denied"* ]] &&
	pass user-cannot-call "exit $rc: $out" || fail user-cannot-call "exit $rc: $out"
[[ $("$AGENT" list --json | $PY -c 'import json, sys; print([e["state"] for e in json.load(sys.stdin) if e["id"] == "virtual"][0])') == card-present ]] &&
	pass card-untouched "the denied remove changed nothing" || fail card-untouched "$("$AGENT" list 2>&1)"
rc=0
out=$("${AS_NOBODY[@]}" timeout 10 "$AGENT" daemon --system --no-readers --no-libvirt --replace 2>&1) || rc=$?
((rc != 0)) && kill -0 "$DPID" 2>/dev/null && [[ $(gdbus call --system -d org.freedesktop.DBus -o /org/freedesktop/DBus \
	-m org.freedesktop.DBus.GetConnectionUnixUser org.ccidemu.Agent1) == "(uint32 0,)" ]] &&
	pass user-cannot-own "exit $rc: $out" || fail user-cannot-own "exit $rc: $out"
rc=0
out=$("${AS_LIBVIRT[@]}" "$AGENT" vm add probe --qmp "unix:$WORK/no-such.qmp" 2>&1) || rc=$?
[[ $out == *"cannot add VM 'probe'"* && $out != *AccessDenied* ]] &&
	pass libvirt-group-calls "the call reached the daemon: exit $rc: $out" || fail libvirt-group-calls "exit $rc: $out"
kill -0 "$DPID" 2>/dev/null && pass daemon-alive "still running" || fail daemon-alive "$(tail -n 5 "$WORK/daemon.log")"

# Activation: the daemon gone, an unprivileged client starts it.
kill "$DPID" && wait "$DPID" 2>/dev/null || true
DPID=
end=$(($(date +%s%3N) + 5000))
while gdbus call --system -d org.freedesktop.DBus -o /org/freedesktop/DBus \
	-m org.freedesktop.DBus.NameHasOwner org.ccidemu.Agent1 | grep -q true; do
	(($(date +%s%3N) < end)) || die "the killed daemon kept its name"
	sleep 0.05
done
out=$("${AS_NOBODY[@]}" "$AGENT" list --json 2>&1) && has_virtual <<<"$out" && apid=$(gdbus call --system \
	-d org.freedesktop.DBus -o /org/freedesktop/DBus -m org.freedesktop.DBus.GetConnectionUnixProcessID \
	org.ccidemu.Agent1 | sed -n 's/^(uint32 \([0-9]*\),)$/\1/p') && APID=$apid &&
	[[ $(stat -c %u "/proc/$apid") == 0 && $(tr '\0' ' ' <"/proc/$apid/cmdline") == "$AGENT daemon --system "* ]] &&
	pass activation "nobody's list started $(tr '\0' ' ' <"/proc/$apid/cmdline")(pid $apid, root)" ||
	fail activation "$out; bus log: $(tail -n 5 "$WORK/bus.log")"

if ((FAILS)); then
	echo "bus log:"; sed 's/^/  | /' "$WORK/bus.log"
	echo "daemon log:"; sed 's/^/  | /' "$WORK/daemon.log"
	echo "test-daemon-system: FAIL"
	exit 1
fi
echo "test-daemon-system: PASS"
