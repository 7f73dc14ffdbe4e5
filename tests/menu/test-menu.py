#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""ccid-menu against the real daemon, under Xvfb, on a private session bus
(run by test-menu.sh inside dbus-run-session).

One ccid-menu process shows the window and the tray item (--window
--tray, one model).  The window is read and clicked through AT-SPI, the
tray menu read and clicked through com.canonical.dbusmenu on the item the
program registers with the StatusNotifierWatcher (menu_bus.py).  QEMUs
are paused (-S): hot-plugging needs only their device tree.

  - no display: a clear message;
  - the daemon absent at start: a clear message on stderr, in the window
    and in the tray menu; the menu fills in when the daemon starts;
  - entries with the right states in each VM's section: card present,
    unavailable with the reason (a pcsc card without pcscd), unavailable
    "in use by VM win11" (a single-session entry held elsewhere),
    connected (check mark);
  - Connect in the window: the daemon reports the session (ccid-agent list
    --json holders), a "Reader shared" notification;
  - the tray menu's layout has the same entries, states (icon-name and
    accessible-desc) and check marks as the window;
  - `ccid-agent remove`: the entry says "no card" within 1 s, in the window
    and the tray; a "Card removed" notification;
  - Disconnect through the tray (dbusmenu Event "clicked");
  - an attach refused with Busy (a tray click on a greyed item) and a
    detach refused with Busy (one under way) are a notification and a
    message in the window naming the holder;
  - the daemon killed while the menu is open: the menu says so, keeps
    running, and fills in again when a daemon comes back;
  - screenshots of the window and of the popped-up tray menu.

Waits are on AT-SPI events and D-Bus signals under deadlines (re-checked
every 100 ms), never fixed sleeps.

Usage: test-menu.py AGENT MENU SRCDIR [ARTIFACT-DIR]
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import gi
gi.require_version("Atspi", "2.0")
from gi.repository import Atspi, GLib  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from menu_atspi import click, find_app, item, listen, wait_for, walk, window_model  # noqa: E402
from menu_bus import DesktopBus  # noqa: E402

AGENT, MENU, SRC = (os.path.abspath(a) for a in sys.argv[1:4])
ART = os.path.abspath(sys.argv[4]) if len(sys.argv) > 4 else None
WORK = tempfile.mkdtemp(prefix="ccid-menu-test.")
PASSES = 0
FAILS = 0
FAILED = []      # repeated at the end, where CI's log tail shows them
PROCS = []
QEMU_PIDS = []   # daemonized: not our children

STATE_ICONS = {"card present": "ccid-emu-card-present",
               "no card": "ccid-emu-no-card",
               "unavailable": "ccid-emu-unavailable"}


def check(name, ok, detail=""):
    global PASSES, FAILS
    if ok:
        PASSES += 1
        print(f"PASS {name}: {detail}", flush=True)
    else:
        FAILS += 1
        FAILED.append(f"FAIL {name}: {detail}"[:300])
        print(f"FAIL {name}: {detail}", flush=True)
    return ok


def agent(*args, check_rc=True):
    r = subprocess.run([AGENT, *args], capture_output=True, text=True, timeout=60)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f"ccid-agent {' '.join(args)}: {r.stderr}")
    return r


def list_json():
    return {e["id"]: e for e in json.loads(agent("list", "--json").stdout)}


def start_daemon():
    log = open(os.path.join(WORK, "daemon.log"), "a")
    env = dict(os.environ, PCSCLITE_CSOCK_NAME=os.path.join(WORK, "no-pcscd.comm"))
    p = subprocess.Popen([AGENT, "daemon"], stdout=log, stderr=log, env=env)
    PROCS.append(p)
    subprocess.run(["gdbus", "wait", "--session", "--timeout", "10",
                    "org.ccidemu.Agent1"], check=True)
    return p


def qemu(name):
    """A paused QEMU with a USB controller; -daemonize returns once its QMP
    socket exists."""
    pidfile = os.path.join(WORK, name + ".pid")
    subprocess.run(["qemu-system-x86_64", "-machine", "pc", "-accel", "tcg",
                    "-nodefaults", "-display", "none", "-S", "-device", "qemu-xhci",
                    "-qmp", f"unix:{WORK}/{name}.qmp,server=on,wait=off",
                    "-daemonize", "-pidfile", pidfile], check=True, timeout=60)
    with open(pidfile) as f:
        pid = int(f.read())
    QEMU_PIDS.append(pid)
    return pid


# --- the tray menu ------------------------------------------------------------

def tray_model(bus):
    """{vm label: [(label, accessible-desc, toggle-state, enabled, icon-name, id)]},
    the status item's label, the menu path."""
    menu, root = bus.menu_layout(bus.items[0])
    sections, status = {}, None
    for cid, props, children in root[2]:
        if props.get("visible", True) is False or props.get("type") == "separator":
            continue
        if props.get("children-display") == "submenu":
            sections[props.get("label")] = [
                (p.get("label", ""), p.get("accessible-desc", ""),
                 p.get("toggle-state", -1), p.get("enabled", True),
                 p.get("icon-name", ""), i)
                for i, p, _ in children if p.get("visible", True)]
        elif props.get("enabled", True) is False:
            status = props.get("label")
    return sections, status, menu


def screenshot(name):
    if ART is None:
        return
    os.makedirs(ART, exist_ok=True)
    path = os.path.join(ART, name)
    r = subprocess.run(["import", "-window", "root", path], capture_output=True, timeout=30)
    check("screenshot-" + name, r.returncode == 0 and os.path.getsize(path) > 0,
          path if r.returncode == 0 else r.stderr.decode())


def main():
    xdg = {k: os.path.join(WORK, k.lower()) for k in
           ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR")}
    for d in xdg.values():
        os.makedirs(d, mode=0o700)
    os.environ.update(xdg)
    os.makedirs(os.path.join(xdg["XDG_CONFIG_HOME"], "ccid-emu"))
    with open(os.path.join(xdg["XDG_CONFIG_HOME"], "ccid-emu", "agent.conf"), "w") as f:
        f.write("[entry lab]\ncard=loopback\nlabel=Lab test card\nsingle-session=true\n\n"
                "[entry host]\ncard=pcsc:Gemalto PC Twin Reader\n"
                "label=Shared Gemalto PC Twin Reader\n")
    # The icons from the source tree, found as installed ones would be.
    os.environ["XDG_DATA_DIRS"] = os.path.join(SRC, "host-agent", "menu") + \
        ":" + os.environ.get("XDG_DATA_DIRS", "/usr/local/share:/usr/share")
    os.environ.pop("NO_AT_BRIDGE", None)
    os.environ["GTK_THEME"] = "Adwaita"

    # No display at all: a clear message, no crash.
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run([MENU, "--window"], env=env, capture_output=True, text=True, timeout=30)
    check("no-display", r.returncode == 1 and "cannot open the display" in r.stderr,
          f"rc={r.returncode}: {r.stderr.strip()}")

    # Xvfb tells its display number when it is ready.
    rfd, wfd = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(wfd), "-screen", "0", "800x600x24",
                             "-nolisten", "tcp"], pass_fds=(wfd,),
                            stderr=open(os.path.join(WORK, "xvfb.log"), "w"))
    PROCS.append(xvfb)
    os.close(wfd)
    with os.fdopen(rfd) as f:
        os.environ["DISPLAY"] = ":" + f.readline().strip()

    bus = DesktopBus()
    listener = listen()  # noqa: F841 (kept alive)

    # --- the daemon absent at start -----------------------------------------
    menu_err = open(os.path.join(WORK, "menu.err"), "w")
    menu = subprocess.Popen([MENU, "--window", "--tray"], stderr=menu_err)
    PROCS.append(menu)
    app = wait_for(find_app, 20, "ccid-menu on the accessibility bus")
    if not check("menu-starts", app is not None, "ccid-menu is on the AT-SPI bus"):
        return
    st = wait_for(lambda: (window_model(app)[1] or "").find("not running") >= 0
                  and window_model(app)[1], 10, "the daemon-absent status")
    check("no-daemon-window", st and "start it with 'ccid-agent daemon'" in st, repr(st))
    wait_for(lambda: bus.items, 10, "the tray item registration")
    check("tray-registered", bool(bus.items), repr(bus.items))
    tstatus = wait_for(lambda: tray_model(bus)[1], 10, "the tray's status line")
    check("no-daemon-tray", tstatus and "not running" in tstatus, repr(tstatus))
    menu_err.flush()
    err = open(os.path.join(WORK, "menu.err")).read()
    check("no-daemon-stderr", "the ccid-agent daemon is not running" in err.lower()
          and "ccid-agent daemon" in err, err.strip())

    # --- the daemon comes: entries and states ---------------------------------
    daemon = start_daemon()
    st = wait_for(lambda: "No VMs" in (window_model(app)[1] or "") and window_model(app)[1],
                  10, "the no-VMs status")
    check("daemon-appears", st, repr(st))
    qpids = {vm: qemu(vm) for vm in ("vm1", "win11")}
    for vm in qpids:
        agent("vm", "add", vm, "--qmp", f"unix:{WORK}/{vm}.qmp")
    agent("attach", "lab", "win11")
    r = agent("attach", "host", "vm1", check_rc=False)   # no pcscd: unavailable
    check("host-unavailable", r.returncode != 0 and list_json()["host"]["state"] == "unavailable",
          r.stderr.strip())

    def expected_states():
        s = window_model(app)[0]
        want = {("vm1 (paused)", "Lab test card"): ("unavailable, in use by VM win11", False, False),
                ("vm1 (paused)", "Virtual CAC card (ccid-emu)"): ("card present", False, True),
                ("vm1 (paused)", "Shared Gemalto PC Twin Reader"): ("unavailable, ", False, False),
                ("win11 (paused)", "Lab test card"): ("card present, connected", True, True),
                ("win11 (paused)", "Virtual CAC card (ccid-emu)"): ("card present", False, True)}
        for (vm, label), (words, checked, sensitive) in want.items():
            found = [x for x in s.get(vm, []) if x[0].startswith(label + ", " + words)
                     and x[1] == checked and x[2] == sensitive]
            if not found:
                return None
        return s
    s = wait_for(expected_states, 10, "the entries' states")
    if not check("window-states", s is not None, repr(window_model(app)[0])):
        return
    screenshot("ccid-menu-window.png")

    # --- Connect from the window ------------------------------------------------
    name, checked, sensitive, acc = item(app, "vm1 (paused)", "Virtual CAC card (ccid-emu)")
    t0 = time.monotonic()
    click(acc)
    got = wait_for(lambda: item(app, "vm1 (paused)", "Virtual CAC card (ccid-emu)")[1], 15,
                   "the check mark")
    ms = (time.monotonic() - t0) * 1000
    check("connect-checked", got, f"checked {ms:.0f} ms after the click")
    holders = list_json()["virtual"]["holders"]
    check("connect-daemon-session", holders == ["vm1"], f"holders {holders}")
    n = wait_for(lambda: [x for x in bus.notifications if x[0] == "Reader shared"
                          and "vm1" in x[1]], 5, "the shared notification")
    check("notify-shared", n, repr(n))

    # --- the tray menu matches the window -------------------------------------------
    def same_as_window():
        win = window_model(app)[0]
        tray, _, _ = tray_model(bus)
        if sorted(win) != sorted(tray):
            return None
        for vm, witems in win.items():
            titems = tray[vm]
            if len(titems) != len(witems):
                return None
            for (wname, wchecked, wsens, _), (label, desc, toggle, enabled, icon, _) in \
                    zip(witems, titems):
                state = next(w for w in STATE_ICONS if ", " + w in wname)
                if desc != wname or toggle != int(wchecked) or enabled != wsens \
                        or icon != STATE_ICONS[state] or not wname.startswith(label.split(" (")[0]):
                    return None
        return tray
    tray = wait_for(same_as_window, 5, "the tray layout to match the window")
    check("tray-matches-window", tray is not None,
          f"tray {tray_model(bus)[0]!r} window {window_model(app)[0]!r}")
    screenshot_tray(menu)

    # --- the card pulled out: "no card" within 1 s ------------------------------------
    t0 = time.monotonic()
    agent("remove", "virtual")
    got = wait_for(lambda: ", no card" in item(app, "vm1 (paused)", "Virtual CAC card (ccid-emu)")[0],
                   1.0, "no card in the window")
    ms = (time.monotonic() - t0) * 1000
    check("remove-no-card-1s", got and ms < 1000, f"{ms:.0f} ms from 'ccid-agent remove' to the window")
    screenshot("ccid-menu-window-states.png")   # all three states at once
    got = wait_for(lambda: [x for x in tray_model(bus)[0]["vm1 (paused)"]
                            if x[4] == "ccid-emu-no-card" and x[2] == 1], 2, "no card in the tray")
    check("remove-no-card-tray", got, repr(got))
    n = wait_for(lambda: [x for x in bus.notifications if x[0] == "Card removed"], 5,
                 "the card-removed notification")
    check("notify-card-removed", n, repr(n))
    agent("insert", "virtual")
    got = wait_for(lambda: ", card present" in item(app, "vm1 (paused)", "Virtual CAC card (ccid-emu)")[0],
                   1.0, "card present again")
    check("insert-card-present", got, "")
    n = wait_for(lambda: [x for x in bus.notifications if x[0] == "Card inserted"], 5,
                 "the card-inserted notification")
    check("notify-card-inserted", n, repr(n))

    # --- Disconnect through the tray ---------------------------------------------------------
    tray, _, menu_path = tray_model(bus)
    vid = [x for x in tray["vm1 (paused)"] if x[0].startswith("Virtual CAC")][0][5]
    bus.menu_event(bus.items[0], menu_path, vid)
    got = wait_for(lambda: not item(app, "vm1 (paused)", "Virtual CAC card (ccid-emu)")[1]
                   and list_json()["virtual"]["holders"] == [], 15, "the disconnect")
    check("tray-disconnect", got, repr(list_json()["virtual"]["holders"]))
    n = wait_for(lambda: [x for x in bus.notifications if x[0] == "Reader unshared"], 5,
                 "the unshared notification")
    check("notify-unshared", n, repr(n))

    # --- an attach refused with Busy -------------------------------------------------------
    # A tray host may send "clicked" for any item, also a greyed one (or
    # one its stale layout still shows free): the menu asks the daemon,
    # which decides, and tells the user why not.
    tray, _, menu_path = tray_model(bus)
    lid = [x for x in tray["vm1 (paused)"] if x[0].startswith("Lab test card")][0][5]
    bus.menu_event(bus.items[0], menu_path, lid)
    n = wait_for(lambda: [x for x in bus.notifications
                          if x[0] == "Could not connect Lab test card to VM vm1"], 5,
                 "the attach-refused notification")
    check("attach-busy-notification", n and "held by VM 'win11'" in n[0][1], repr(n))
    msg = window_model(app)[2]
    check("attach-busy-window-message", msg and "held by VM 'win11'" in msg, repr(msg))
    check("attach-busy-unchanged", list_json()["lab"]["holders"] == ["win11"],
          repr(list_json()["lab"]["holders"]))

    # --- a refused request: Busy from the daemon ---------------------------------------------
    # win11's QEMU is stopped, so a detach started from the command line
    # stays under way (device_del unanswered) and the daemon refuses what
    # the menu asks for that entry meanwhile, with Busy.
    os.kill(qpids["win11"], signal.SIGSTOP)
    bg = subprocess.Popen([AGENT, "detach", "lab", "win11"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    PROCS.append(bg)
    # The daemon has the detach under way once an attach is refused for
    # that reason (an attach has no effect on an entry the VM holds).
    busy = wait_for(lambda: "being detached" in agent("attach", "lab", "win11",
                                                      check_rc=False).stderr,
                    10, "the detach under way")
    check("busy-setup", busy, "the daemon says the detach is under way")
    name, checked, sensitive, acc = item(app, "win11 (paused)", "Lab test card")
    click(acc)
    msg = wait_for(lambda: "being detached" in (window_model(app)[2] or "") and window_model(app)[2],
                   10, "the Busy message in the window")
    check("busy-window-message", msg and "Could not disconnect Lab test card from VM win11" in msg,
          repr(msg))
    n = wait_for(lambda: [x for x in bus.notifications
                          if x[0].startswith("Could not disconnect") and "being detached" in x[1]],
                 5, "the Busy notification")
    check("busy-notification", n, repr(n))
    os.kill(qpids["win11"], signal.SIGCONT)
    bg.wait(timeout=30)
    check("menu-alive-after-busy", menu.poll() is None, "")

    # --- the daemon killed while open ---------------------------------------------------------
    daemon.kill()
    daemon.wait()
    st = wait_for(lambda: "not running" in (window_model(app)[1] or "")
                  and not window_model(app)[0] and window_model(app)[1], 5, "the daemon-gone status")
    check("daemon-killed-window", st, repr(st))
    n = wait_for(lambda: [x for x in bus.notifications if x[0] == "Smart-card daemon stopped"], 5,
                 "the daemon-stopped notification")
    check("daemon-killed-notification", n, repr(n))
    check("daemon-killed-menu-alive", menu.poll() is None, "ccid-menu still running")
    start_daemon()
    # A daemon that remembers its VMs has vm1 already; an older one not.
    if "vm1" not in [v["name"] for v in json.loads(agent("vms", "--json").stdout)]:
        agent("vm", "add", "vm1", "--qmp", f"unix:{WORK}/vm1.qmp")
    s = wait_for(lambda: item(app, "vm1 (paused)", "Virtual CAC card (ccid-emu)"), 10,
                 "the entries after the daemon came back")
    check("daemon-back", s and ", card present" in s[0], repr(s and s[0]))

    menu.send_signal(signal.SIGTERM)
    rc = menu.wait(timeout=10)
    check("menu-exits-0", rc == 0, f"status {rc}")


def screenshot_tray(menu):
    """The tray menu as a tray host pops it up: ccid-menu pops its own
    exported GtkMenu on SIGUSR1 (tests and screenshots only)."""
    if ART is None:
        return
    menu.send_signal(signal.SIGUSR1)
    app = find_app()
    shown = wait_for(lambda: [a for a in walk(app) if a.get_role() == Atspi.Role.CHECK_MENU_ITEM
                              and a.get_state_set().contains(Atspi.StateType.SHOWING)
                              and a.get_name().startswith("Virtual CAC")], 5, "the popped-up menu")
    check("tray-popup", shown, "")
    screenshot("ccid-menu-tray.png")
    menu.send_signal(signal.SIGUSR1)


def on_term(signum, frame):
    raise SystemExit("terminated (meson's timeout?)")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_term)
    try:
        main()
    except Exception as e:  # a crash of the test is a failure, with its reason
        import traceback
        traceback.print_exc()
        check("test-ran", False, repr(e))
    finally:
        for p in reversed(PROCS):
            if p.poll() is None:
                p.kill()
                p.wait()
        for q in QEMU_PIDS:
            try:
                os.kill(q, signal.SIGCONT)
                os.kill(q, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for f in ("menu.err", "daemon.log"):
            p = os.path.join(WORK, f)
            if os.path.exists(p):
                print(f"--- {f}:\n" + open(p).read(), flush=True)
        shutil.rmtree(WORK, ignore_errors=True)
    for line in FAILED:
        print(line)
    print(f"{PASSES} passed, {FAILS} failed")
    sys.exit(1 if FAILS or not PASSES else 0)
