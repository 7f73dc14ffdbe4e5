#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# ccid-menu against a booted guest: the guest (tests/guest, behind xHCI,
# with only a QMP socket) asks the host to attach the daemon's virtual
# entry, to detach it and to attach it again (tests/daemon/guest/
# daemon-hotplug.sh); the host does each by clicking the entry in
# `ccid-menu --window` through AT-SPI (menu_click.py).  The guest's pcscd,
# libccid and OpenSC must see the reader come, go and come back.  The
# guest measures request -> reader + ATR; with pcscd already running
# (the second attach) that is the click-to-reader time.
# Runs under Xvfb on a private session bus.
#
# Usage: test-menu-guest.sh AGENT MENU [--quiet]
# Exit status: 0 pass, 1 fail, 2 setup error.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
GUEST=$SRC/tests/guest
VATR=3B7A18000073667465206364313434
die() { printf 'test-menu-guest: error: %s\n' "$*" >&2; exit 2; }

AGENT=${1:-}
MENU=${2:-}
QUIET=()
[[ ${3:-} == --quiet ]] && QUIET=(-q)
[[ -x $AGENT && -x $MENU ]] || die "usage: test-menu-guest.sh PATH-TO-ccid-agent PATH-TO-ccid-menu [--quiet]"
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")
MENU=$(cd "$(dirname "$MENU")" && pwd)/$(basename "$MENU")

if [[ -z ${CCID_MENU_TEST_BUS:-} ]]; then
	command -v dbus-run-session >/dev/null || die "dbus-run-session not found (Debian package dbus-daemon)"
	command -v Xvfb >/dev/null || die "Xvfb not found (Debian package xvfb)"
	export CCID_MENU_TEST_BUS=1
	exec dbus-run-session -- "${BASH_SOURCE[0]}" "$@"
fi
"$GUEST/build-guest.sh" || die "build-guest.sh failed"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ccid-menu-guest.XXXXXX")
export HL_DIR=$WORK
# shellcheck source=../guest/host-lib.sh
. "$GUEST/host-lib.sh"
export XDG_DATA_HOME=$WORK/xdg-data XDG_CONFIG_HOME=$WORK/xdg-config XDG_RUNTIME_DIR=$WORK/xdg-run
export PCSCLITE_CSOCK_NAME=$WORK/no-pcscd.comm   # the host's readers stay out
export XDG_DATA_DIRS=$SRC/host-agent/menu:${XDG_DATA_DIRS:-/usr/local/share:/usr/share}
unset NO_AT_BRIDGE
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"

PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

FAILS=0

# Xvfb says its display number once it is ready.
mkfifo "$WORK/display"
Xvfb -displayfd 3 -screen 0 800x600x24 -nolisten tcp 3>"$WORK/display" 2>"$WORK/xvfb.log" &
PIDS+=($!)
read -r DNUM <"$WORK/display"
export DISPLAY=:$DNUM

"$AGENT" daemon >"$WORK/daemon.log" 2>&1 &
PIDS+=($!)
gdbus wait --session --timeout 10 org.ccidemu.Agent1 || die "the daemon did not appear: $(cat "$WORK/daemon.log")"
"$MENU" --window --no-notify >"$WORK/menu.log" 2>&1 &
MPID=$!
PIDS+=("$MPID")

echo "VATR=$VATR" >"$WORK/params"
VM=guest-xhci
QMP=$WORK/qmp.sock
added=0
on_request() {
	local what=$1 rc=0 out
	case $what in
	attach)
		if ((!added)); then
			out=$("$AGENT" vm add "$VM" --qmp "unix:$QMP" 2>&1) || rc=$?
			echo "vm-add rc=$rc $out" >>"$WORK/requests.log"
			added=1
			rc=0
		fi
		out=$(/usr/bin/python3 "$HERE/menu_click.py" "$VM" "Virtual CAC card (ccid-emu)" connect 60 2>&1) || rc=$?
		echo "click-connect rc=$rc $out" >>"$WORK/requests.log" ;;
	detach)
		out=$(/usr/bin/python3 "$HERE/menu_click.py" "$VM" "Virtual CAC card (ccid-emu)" disconnect 60 2>&1) || rc=$?
		echo "click-disconnect rc=$rc $out" >>"$WORK/requests.log" ;;
	*) echo "unknown request '$*'" >>"$WORK/requests.log" ;;
	esac
}

: >"$WORK/requests.log"
D=$WORK/boot
mkdir -p "$D"
rc=0
"$GUEST/boot-guest.sh" --no-build "${QUIET[@]}" -c xhci --qmp "$QMP" \
	-s "$SRC/tests/daemon/guest/daemon-hotplug.sh" -f "$WORK/params:/ccid-test/params" \
	-e usb-enumerated,reader,atr-virtual,opensc-atr,pkcs11-token,reader-gone,usb-gone,reader-again,atr-again,opensc-atr-again \
	--pidfile "$D/qemu.pid" -w "$D" -t 400 &
BOOT=$!
watch_requests "$D/results.log" "$BOOT" on_request &
WATCH=$!
wait "$BOOT" || rc=$?
wait "$WATCH" 2>/dev/null || true
cat "$WORK/requests.log"

if ((rc == 0)); then
	hres menu-guest-hotplug PASS "connect, disconnect, connect again from the menu: the guest's pcscd and OpenSC saw the reader come, go and come back"
else
	hres menu-guest-hotplug FAIL "boot-guest.sh exit $rc"
fi
n=$(grep -c '^click-connect rc=0 connect ok' "$WORK/requests.log" || true)
[[ $n == 2 ]] && hres menu-clicks-connect PASS "2 connects, check mark each time" ||
	hres menu-clicks-connect FAIL "$n successful connect clicks, want 2"
grep -q '^click-disconnect rc=0 disconnect ok' "$WORK/requests.log" &&
	hres menu-click-disconnect PASS "$(grep -m 1 '^click-disconnect' "$WORK/requests.log")" ||
	hres menu-click-disconnect FAIL "$(tr '\n' ';' <"$WORK/requests.log")"
kill -0 "$MPID" 2>/dev/null && hres menu-alive PASS "ccid-menu still running" ||
	hres menu-alive FAIL "ccid-menu exited: $(tail -n 5 "$WORK/menu.log")"

T=$D/results.timed
echo "=== summary"
echo "request -> USB device $(guest_metric "$T" attach_to_usb_ms) ms; request -> reader + ATR $(guest_metric "$T" attach_to_atr_ms) ms (pcscd started on the device); again, pcscd running (click to reader): $(guest_metric "$T" reattach_to_atr_ms) ms; disconnect -> reader gone $(guest_metric "$T" detach_to_reader_gone_ms) ms"
echo "menu log:"; sed 's/^/  | /' "$WORK/menu.log"
if ((FAILS)); then
	echo "test-menu-guest: FAIL"
	exit 1
fi
echo "test-menu-guest: PASS"
