#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Waits for ccid-menu's window to show a message with TITLE in it, as
AT-SPI reads it, prints the message and, given a DIRECTORY, saves a
screenshot of the screen there (test-pin-guard-guest.sh --menu).

Usage: menu_message.py TITLE [DIRECTORY] [TIMEOUT-S]
Exit status 0 when the message came within TIMEOUT-S (default 20)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "menu"))
from menu_atspi import find_app, listen, wait_for, window_model  # noqa: E402

title = sys.argv[1]
art = sys.argv[2] if len(sys.argv) > 2 else ""
timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 20
listener = listen()
app = wait_for(find_app, 20, "ccid-menu on the accessibility bus")
if app is None:
    sys.exit("menu_message: ccid-menu is not on the accessibility bus")
msg = wait_for(lambda: (lambda m: m if m and title in m else None)(window_model(app)[2]),
               timeout, f"a message '{title}' in the window")
if art:
    os.makedirs(art, exist_ok=True)
    path = os.path.join(art, "ccid-menu-pin-guard.png")
    r = subprocess.run(["import", "-window", "root", path], capture_output=True, timeout=30)
    if r.returncode != 0:
        sys.exit(f"menu_message: screenshot failed: {r.stderr.decode()}")
print(msg if msg else f"no message '{title}': {window_model(app)[2]!r}")
sys.exit(0 if msg else 1)
