#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# What meson installs for ccid-menu: the man page formats without groff
# warnings and documents every option `ccid-menu --help` lists; the
# .desktop files parse and name the program and its icon; every icon the
# program names (menu_states.c, menu_tray.c, menu_window.c) exists as an
# SVG, with a -symbolic variant, and every SVG is well-formed XML.
#
# Usage: test-menu-files.sh MENU
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MDIR=$(cd "$HERE/../../host-agent/menu" && pwd)
MENU=${1:?usage: test-menu-files.sh PATH-TO-ccid-menu}
FAILS=0
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }

warn=$(groff -ww -man -z "$MDIR/data/ccid-menu.1" 2>&1) || fail "groff: $warn"
[[ -z $warn ]] || fail "groff warnings: $warn"
mapfile -t OPTS < <("$MENU" --help | awk '/^Application Options:/ { on = 1; next } on && /^ +(-[a-z], )?--[a-z]/ { o = ($1 ~ /^--/) ? $1 : $2; sub(/=.*/, "", o); print o }' | grep -v -e '^--display$')
((${#OPTS[@]} >= 4)) || fail "ccid-menu --help lists only: ${OPTS[*]}"
for o in "${OPTS[@]}"; do
	grep -q -- "${o//-/\\\\-}" "$MDIR/data/ccid-menu.1" || fail "the man page lacks option $o"
done

for f in "$MDIR"/data/*.desktop; do
	/usr/bin/python3 - "$f" <<'PY' || fail "$f"
import sys
from gi.repository import GLib
k = GLib.KeyFile()
k.load_from_file(sys.argv[1], GLib.KeyFileFlags.NONE)
g = "Desktop Entry"
assert k.get_string(g, "Type") == "Application", "Type"
assert k.get_string(g, "Exec").split()[0] == "ccid-menu", "Exec"
assert k.get_string(g, "Icon") == "ccid-menu", "Icon"
assert k.get_string(g, "Name"), "Name"
PY
done

ICONS=$MDIR/icons/hicolor/scalable
# The state icons, and the program's own icon (tray, window, .desktop).
mapfile -t NAMES < <( (grep -oh '"ccid-emu-[a-z-]*"' "$MDIR"/menu_*.c | tr -d '"'; echo ccid-menu) | sed 's/-symbolic$//' | sort -u)
((${#NAMES[@]} >= 4)) || fail "icon names found in the sources: ${NAMES[*]}"
for n in "${NAMES[@]}"; do
	for v in "$n" "$n-symbolic"; do
		ls "$ICONS"/*/"$v.svg" >/dev/null 2>&1 || fail "no icon $v.svg under $ICONS"
	done
done
for svg in "$ICONS"/*/*.svg; do
	/usr/bin/python3 -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' "$svg" ||
		fail "$svg is not well-formed XML"
done

if ((FAILS)); then
	echo "test-menu-files: $FAILS failed"
	exit 1
fi
echo "test-menu-files: PASS (${#OPTS[@]} options, ${#NAMES[@]} icons)"
