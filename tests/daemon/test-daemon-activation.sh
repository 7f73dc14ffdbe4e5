#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# D-Bus activation of `ccid-agent daemon`: a private session bus whose
# service directory holds the tree's service file
# (host-agent/data/org.ccidemu.Agent1.service.in, naming the built
# binary).  With no daemon running, `ccid-agent list --json` starts it
# through the bus and gets the entries; a second client finds the same
# daemon.
#
# Usage: test-daemon-activation.sh AGENT
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
AGENT=${1:?usage: test-daemon-activation.sh PATH-TO-ccid-agent}
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")
PY=/usr/bin/python3

die() { printf 'test-daemon-activation: error: %s\n' "$*" >&2; exit 2; }
command -v dbus-run-session >/dev/null || die "dbus-run-session not found (Debian package dbus-daemon)"

if [[ -z ${CCID_DAEMON_TEST_BUS:-} ]]; then
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/ccid-daemon-act.XXXXXX")
	mkdir -p "$WORK/services" "$WORK/run"
	chmod 700 "$WORK/run"
	sed "s|@AGENT@|$AGENT|" "$SRC/host-agent/data/org.ccidemu.Agent1.service.in" \
		>"$WORK/services/org.ccidemu.Agent1.service"
	cat >"$WORK/bus.conf" <<-CONF
	<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
	 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
	<busconfig>
	  <type>session</type>
	  <listen>unix:dir=$WORK/run</listen>
	  <servicedir>$WORK/services</servicedir>
	  <policy context="default">
	    <allow send_destination="*" eavesdrop="true"/>
	    <allow eavesdrop="true"/>
	    <allow own="*"/>
	  </policy>
	</busconfig>
	CONF
	export CCID_DAEMON_TEST_BUS=$WORK
	# The bus, and so the daemon it starts, never sees the user's files.
	export XDG_DATA_HOME=$WORK/data XDG_CONFIG_HOME=$WORK/config XDG_RUNTIME_DIR=$WORK/run
	export PCSCLITE_CSOCK_NAME=$WORK/no-pcscd.comm    # no host readers
	rc=0
	dbus-run-session --config-file="$WORK/bus.conf" -- "${BASH_SOURCE[0]}" "$AGENT" || rc=$?
	rm -rf "$WORK"
	exit "$rc"
fi
WORK=$CCID_DAEMON_TEST_BUS

FAILS=0
DPID=
if out=$("$AGENT" list --json 2>&1) &&
	$PY -c 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if [e["id"] for e in j] == ["virtual"] else 1)' "$out"; then
	echo "PASS activated-list: $out"
else
	echo "FAIL activated-list: $out"
	FAILS=$((FAILS + 1))
fi
DPID=$(gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
	--method org.freedesktop.DBus.GetConnectionUnixProcessID org.ccidemu.Agent1 2>/dev/null |
	sed -n 's/^(uint32 \([0-9]*\),)$/\1/p')
if [[ -n $DPID ]] && grep -q 'daemon' "/proc/$DPID/cmdline"; then
	echo "PASS activated-daemon: pid $DPID: $(tr '\0' ' ' <"/proc/$DPID/cmdline")"
else
	echo "FAIL activated-daemon: no daemon process owns the name (pid '$DPID')"
	FAILS=$((FAILS + 1))
fi
rc=0
out=$("$AGENT" attach virtual nope 2>&1) || rc=$?
if ((rc == 3)) && [[ $out == *"no VM 'nope'"* ]]; then
	echo "PASS second-client: $out"
else
	echo "FAIL second-client: rc=$rc $out"
	FAILS=$((FAILS + 1))
fi
if [[ -n $DPID ]]; then
	# D-Bus started it, so it is not our child: its exit is seen
	# through a pidfd (taken before the signal), within 5 s.
	# (kill -0 would still find it as a zombie until D-Bus reaps it.)
	if ! $PY -c '
import os, select, signal, sys
pid = int(sys.argv[1])
fd = os.pidfd_open(pid)
os.kill(pid, signal.SIGTERM)
sys.exit(0 if select.select([fd], [], [], 5)[0] else 1)' "$DPID"; then
		echo "FAIL daemon-stops: still running after SIGTERM"
		FAILS=$((FAILS + 1))
		kill -KILL "$DPID"
	fi
fi
echo "test-daemon-activation: $FAILS failed"
((FAILS == 0))
