# SPDX-License-Identifier: LGPL-2.1-or-later
"""ccid-menu's window as AT-SPI shows it, and waiting for it to change:
shared by test-menu.py and test-menu-guest.sh (menu_click.py)."""
import time

import gi
gi.require_version("Atspi", "2.0")
from gi.repository import Atspi, GLib  # noqa: E402


def listen():
    """Wake-ups for wait_for; they also keep libatspi's cache current (with
    the cache off, libatspi re-enters its D-Bus dispatch while handling an
    event during a call, and hangs).  Keep the returned listener."""
    listener = Atspi.EventListener.new(lambda ev: None)
    for ev in ("object:property-change:accessible-name", "object:text-changed",
               "object:state-changed", "object:children-changed"):
        listener.register(ev)
    return listener


def wait_for(cond, timeout, what):
    """Runs the main loop (AT-SPI events, D-Bus calls and signals) until
    cond() is true; returns its value, or None after the deadline."""
    ctx = GLib.MainContext.default()
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = cond()
        except GLib.Error:
            r = None
        if r:
            return r
        left = deadline - time.monotonic()
        if left <= 0:
            print(f"  (gave up waiting for {what} after {timeout} s)", flush=True)
            return None
        tick = GLib.timeout_add(min(100, int(left * 1000) + 1), lambda: False)
        ctx.iteration(True)
        GLib.source_remove(tick) if ctx.find_source_by_id(tick) else None


# --- the window -------------------------------------------------------------------

def find_app():
    desk = Atspi.get_desktop(0)
    for i in range(desk.get_child_count()):
        app = desk.get_child_at_index(i)
        if app is not None and app.get_name() == "ccid-menu":
            return app
    return None


def walk(acc):
    yield acc
    for i in range(acc.get_child_count()):
        c = acc.get_child_at_index(i)
        if c is not None:
            yield from walk(c)


def window_model(app):
    """{vm title: [(accessible name, checked, sensitive)]} and the status
    and message texts, as AT-SPI shows them."""
    sections, status, message = {}, None, None
    for acc in walk(app):
        role = acc.get_role()
        states = acc.get_state_set()
        if role == Atspi.Role.LABEL and acc.get_name() in ("Status", "Message"):
            text = acc.get_text_iface()
            value = text.get_text(0, text.get_character_count()) \
                if states.contains(Atspi.StateType.SHOWING) else ""
            if acc.get_name() == "Status":
                status = value
            else:
                message = value
        if role == Atspi.Role.CHECK_BOX:
            frame = acc.get_parent().get_parent()
            sections.setdefault(frame.get_name(), []).append(
                (acc.get_name(), states.contains(Atspi.StateType.CHECKED),
                 states.contains(Atspi.StateType.SENSITIVE), acc))
    return sections, status, message


def item(app, vm, entry_label):
    for name, checked, sensitive, acc in window_model(app)[0].get(vm, []):
        if name.startswith(entry_label + ","):
            return name, checked, sensitive, acc
    return None


def click(acc):
    acc.get_action_iface().do_action(0)
