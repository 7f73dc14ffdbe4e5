#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The systemd units and D-Bus activation files that meson installs for the
# daemon (host-agent/data): the user unit and the system unit (--system)
# pass `systemd-analyze verify` (no warning either; their man page link is
# checked against the man page in the tree), and the system bus's
# activation file names the system unit, root and the installed command.
# Activation itself is tested by daemon-activation (session bus) and
# daemon-system (system bus).  No systemd runs here: files only.
#
# Usage: test-installed-units.sh AGENT
# Exit status: 0 pass, 1 fail, 2 setup error.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA=$(cd "$HERE/../../host-agent/data" && pwd)
AGENT=${1:?usage: test-installed-units.sh PATH-TO-ccid-agent}
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")
die() { printf 'test-installed-units: error: %s\n' "$*" >&2; exit 2; }
command -v systemd-analyze >/dev/null || die "systemd-analyze not found (package systemd)"

FAILS=0
pass() { echo "PASS $1: ${*:2}"; }
fail() { echo "FAIL $1: ${*:2}"; FAILS=$((FAILS + 1)); }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ccid-units.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/system" "$WORK/user" "$WORK/man/man1" "$WORK/run"
chmod 700 "$WORK/run"
ln -s "$DATA/ccid-agent.1" "$WORK/man/man1/ccid-agent.1"
# As meson's configure_file does, with the built program for @AGENT@
# (verify checks that ExecStart= is executable).
subst() { sed "s|@AGENT@|$AGENT|g; s|@CONFIG@|/etc/ccid-emu/agent.conf|g; s|@STATE@|/var/lib/ccid-emu/vms.conf|g" "$1"; }
subst "$DATA/ccid-agent-system.service.in" >"$WORK/system/ccid-agent.service"
subst "$DATA/ccid-agent.service.in" >"$WORK/user/ccid-agent.service"
subst "$DATA/org.ccidemu.Agent1.system-service.in" >"$WORK/org.ccidemu.Agent1.service"
grep -q '@[A-Z]*@' "$WORK"/system/* "$WORK"/user/* "$WORK/org.ccidemu.Agent1.service" &&
	fail substituted "a template variable left: $(grep -h '@[A-Z]*@' "$WORK"/system/* "$WORK"/user/* "$WORK"/*.service)"

verify() {    # verify NAME [--user] FILE
	local name=$1 out rc=0
	shift
	out=$(cd "$WORK" && MANPATH=$WORK/man XDG_RUNTIME_DIR=$WORK/run \
		systemd-analyze "$@" 2>&1) || rc=$?
	if ((rc == 0)) && [[ -z $out ]]; then
		pass "$name" "systemd-analyze ${*}: no complaint"
	else
		fail "$name" "systemd-analyze $* (exit $rc): $out"
	fi
}
verify system-unit verify "$WORK/system/ccid-agent.service"
verify user-unit --user verify "$WORK/user/ccid-agent.service"

# The system unit: the daemon on the system bus, Type=dbus with its name,
# and the alias the activation file names.
u=$WORK/system/ccid-agent.service
grep -qx "ExecStart=$AGENT daemon --system .*" "$u" && grep -qx 'Type=dbus' "$u" &&
	grep -qx 'BusName=org.ccidemu.Agent1' "$u" && grep -qx 'Alias=dbus-org.ccidemu.Agent1.service' "$u" &&
	pass system-unit-content "$(grep -E '^(ExecStart|Type|BusName|Alias)=' "$u" | tr '\n' ' ')" ||
	fail system-unit-content "$(cat "$u")"
s=$WORK/org.ccidemu.Agent1.service
/usr/bin/python3 - "$s" "$AGENT" <<'PY' && pass system-activation-file "$(tr '\n' ' ' <"$s")" || fail system-activation-file "$(cat "$s")"
import configparser, sys
c = configparser.ConfigParser(interpolation=None)
c.optionxform = str
c.read(sys.argv[1])
d = c["D-BUS Service"]
ok = (d["Name"] == "org.ccidemu.Agent1" and d["User"] == "root" and
      d["SystemdService"] == "dbus-org.ccidemu.Agent1.service" and
      d["Exec"].split()[:3] == [sys.argv[2], "daemon", "--system"])
sys.exit(0 if ok else 1)
PY

if ((FAILS)); then
	echo "test-installed-units: FAIL"
	exit 1
fi
echo "test-installed-units: PASS"
