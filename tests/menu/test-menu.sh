#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# ccid-menu under Xvfb on a private session bus (test-menu.py says what is
# tested).  Usage: test-menu.sh AGENT MENU SRCDIR [ARTIFACT-DIR]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { printf 'test-menu: error: %s\n' "$*" >&2; exit 2; }
for p in dbus-run-session Xvfb import qemu-system-x86_64; do
	command -v $p >/dev/null || die "$p not found (scripts/deps.txt lists the packages)"
done
exec dbus-run-session -- /usr/bin/python3 "$HERE/test-menu.py" "$@"
