#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Clicks an entry in ccid-menu's window through AT-SPI and waits for the
check mark to follow (test-menu-guest.sh).

Usage: menu_click.py VM ENTRY-LABEL connect|disconnect [TIMEOUT-S]
VM is the section title ("guest-xhci"); prints the milliseconds from the
click to the check mark; exit status 0 when it came within TIMEOUT-S."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from menu_atspi import click, find_app, item, listen, wait_for  # noqa: E402

vm, label, what = sys.argv[1:4]
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 30
want = what == "connect"
listener = listen()
app = wait_for(find_app, 20, "ccid-menu on the accessibility bus")
if app is None:
    sys.exit("menu_click: ccid-menu is not on the accessibility bus")
it = wait_for(lambda: (lambda x: x if x and x[2] and x[1] != want else None)(item(app, vm, label)),
              20, f"'{label}' in section '{vm}', sensitive")
if it is None:
    sys.exit(f"menu_click: no sensitive '{label}' to {what} in section '{vm}': "
             f"{item(app, vm, label)!r}")
t0 = time.monotonic()
click(it[3])
done = wait_for(lambda: item(app, vm, label)[1] == want, timeout, "the check mark")
ms = (time.monotonic() - t0) * 1000
print(f"{what} {'ok' if done else 'TIMEOUT'} ms={ms:.0f} name={item(app, vm, label)[0]!r}")
sys.exit(0 if done else 1)
