#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fault soak of `ccid-agent serve` under valgrind memcheck (tests/soak/README.md).

Two agents run under memcheck, each on its own unix socket with a loopback
card:

  * agent "steady" is never restarted.  Each cycle a usbredir peer
    (soak-peer: a fake QEMU on the real usbredirparser, its own process)
    attaches, powers the card on, checks an ECHO and leaves a 60 s DELAY
    APDU in flight; then one fault, in turn:
      hang    the peer is SIGKILLed mid-APDU;
      drop    the peer closes its socket mid-APDU;
      remove  the card is pulled (`remove` on the control socket)
              mid-APDU, then pushed back; the peer must get the failed
              answer, then use the card again.
    After every cycle its descriptors (/proc/PID/fd) and RSS are sampled:
    from cycle --window on they must stay flat.
  * agent "restarted" gets SIGTERM with a peer attached and an APDU in
    flight every --restart-every cycles, and is started again; the peer
    must see it go, and the new one must serve the next peer.

  * with --pcsc-dir (tests/pcsc), agent "pcsc" serves the vicc test card
    behind a private pcscd (tests/pcsc/private-pcscd.sh, vicc_card.py)
    with the pcsc backend; every --pcsc-every cycles a peer leaves a vicc
    DELAY in flight and, in turn:
      card-kill       the card is killed (SIGKILL of vicc: pulled out
                      mid-APDU), then started again;
      pcscd-restart   pcscd is killed mid-APDU and started again, then
                      the card.
    The peer must get the failed answer, then use the card again.

  * with --virtual-every, agent "virtual" serves its default card (the
    embedded virtual CAC card, libcacard); every --virtual-every cycles a
    peer streams APDUs at it (no operation of that card lasts) and the
    card is pulled (virtual-remove), then pushed back.

  * with --vm-every, `ccid-agent daemon` on a private session bus: every
    --vm-every cycles a paused QEMU gets its entry and is SIGKILLed
    (vm-killed); with --daemon-restart-every, every so many cycles the
    daemon is SIGTERMed while a VM holds the entry and started again
    (daemon-restart): it must re-attach the entry vms.conf remembers.

Every fault must release the reader within 1 s: the agent logs "QEMU
disconnected" (hang, drop), the peer gets its answer (remove, card-kill,
pcscd-restart, virtual-remove) or sees the socket close (restart), the
daemon logs the session's end (vm-killed), QEMU reports the usb-redir
chardev disconnected (daemon-restart).  Waits are on those events, under
deadlines.  At the end every agent gets SIGTERM; memcheck must report 0
errors and 0 definite or indirect leaks for every agent and daemon
process (--error-exitcode).

Exit status 0 when everything held; the figures go to stdout.
"""
import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

RELEASE_DEADLINE = float(os.environ.get("SOAK_RELEASE_DEADLINE", "1.0"))  # s, fault to release
START_DEADLINE = 120.0        # an agent under valgrind on a busy machine
STEP_DEADLINE = 60.0          # a peer's enumeration, power on, echo
SETTLE_DEADLINE = 2.0         # descriptors of the previous step closing


class Failure(Exception):
    pass


class Lines:
    """Lines from a pipe, waited for under a deadline."""

    def __init__(self, f, name, copy_to=None):
        self.copy = open(copy_to, "ab") if copy_to else None
        self.fd = f.fileno()
        os.set_blocking(self.fd, False)
        self.buf = b""
        self.lines = []
        self.name = name
        self.eof = False

    def _read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not r:
            return
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        if not data:
            self.eof = True
            return
        if self.copy:
            self.copy.write(data)
            self.copy.flush()
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self.lines.append(line.decode(errors="replace"))

    def wait_for(self, needle, deadline, what):
        """Consumes lines up to the first that contains @needle."""
        while True:
            for i, line in enumerate(self.lines):
                if needle in line:
                    self.last = line
                    del self.lines[: i + 1]
                    return time.monotonic()
            now = time.monotonic()
            if now >= deadline or self.eof:
                raise Failure("%s: no '%s' from %s in time (last lines: %s)"
                              % (what, needle, self.name, self.lines[-5:]))
            self._read(deadline - now)

    def drain(self):
        self._read(0)
        self.lines.clear()


def wait_release(lines, needle, t0, what):
    """The release event, due within RELEASE_DEADLINE of the fault at @t0;
    a late one is still waited for, so the failure says how late."""
    try:
        return lines.wait_for(needle, t0 + RELEASE_DEADLINE, what)
    except Failure:
        t1 = lines.wait_for(needle, t0 + STEP_DEADLINE, what)
        raise Failure("%s: released after %.0f ms (limit %.0f ms)"
                      % (what, (t1 - t0) * 1000, RELEASE_DEADLINE * 1000))


class Agent:
    def __init__(self, args, name, workdir, card="loopback", env=None,
                 daemon=False):
        self.args = args
        self.daemon = daemon
        self.card = card
        self.env = env
        self.name = name
        self.sock = os.path.join(workdir, name + ".sock")
        self.ctl = os.path.join(workdir, name + ".ctl")
        self.workdir = workdir
        self.runs = 0
        self.proc = None
        self.vg_logs = []

    def start(self):
        self.runs += 1
        cmd = []
        if self.args.valgrind:
            log = os.path.join(self.workdir, "%s-%d.vg.log" % (self.name, self.runs))
            self.vg_logs.append(log)
            cmd = ["valgrind", "--tool=memcheck", "--error-exitcode=99",
                   "--leak-check=full", "--show-leak-kinds=definite,indirect",
                   "--errors-for-leak-kinds=definite,indirect",
                   "--track-fds=no", "--num-callers=30",
                   # A small freed-block queue, filled within the first
                   # cycles, so RSS can be flat afterwards.
                   "--freelist-vol=2000000",
                   "--log-file=" + log]
            if self.args.suppressions:
                cmd.append("--suppressions=" + self.args.suppressions)
        if self.daemon:
            cmd += [self.args.agent, "daemon"]
        else:
            cmd += [self.args.agent, "serve"]
            if self.card is not None:       # None: serve's default card
                cmd += ["--card", self.card]
            cmd += ["--listen", "unix:" + self.sock, "--control", self.ctl]
        env = dict(os.environ)
        env.update(self.env or {})
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=env)
        self.out = Lines(self.proc.stdout, self.name + " stdout")
        self.err = Lines(self.proc.stderr, self.name + " stderr",
                         os.path.join(self.workdir, self.name + ".err"))
        if self.daemon:
            r = subprocess.run(["gdbus", "wait", "--session", "--timeout",
                                str(int(START_DEADLINE)), "org.ccidemu.Agent1"],
                               env=env, capture_output=True, text=True)
            if r.returncode != 0:
                raise Failure("the daemon did not appear on the bus: %s"
                              % r.stderr)
        else:
            self.out.wait_for("control: ", time.monotonic() + START_DEADLINE,
                              "starting " + self.name)

    def status(self):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(self.ctl)
            s.sendall(b"status\n")
            data = b""
            while b"\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    raise Failure("%s: control socket closed" % self.name)
                data += chunk
        return json.loads(data.split(b"\n")[0])

    def ctl_cmd(self, line):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(self.ctl)
            s.sendall(line.encode() + b"\n")
            data = b""
            while b"\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        reply = json.loads(data.split(b"\n")[0])
        if "error" in reply:
            raise Failure("%s: '%s' failed: %s" % (self.name, line, reply["error"]))
        return reply

    def sample(self):
        pid = self.proc.pid
        fds = len(os.listdir("/proc/%d/fd" % pid))
        rss = 0
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        return fds, rss

    def stop(self, signalled=False):
        """SIGTERM (unless @signalled: sent already); returns the exit
        status.  One SIGTERM only: a second one while the agent cleans up
        takes the default action and kills it half-way."""
        if not signalled:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=START_DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Failure("%s did not exit after SIGTERM" % self.name)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc


def check_exit(agent, rc):
    if rc != 0:
        log = agent.vg_logs[-1] if agent.vg_logs else None
        tail = ""
        if log and os.path.exists(log):
            with open(log) as f:
                tail = "".join(f.readlines()[-60:])
        raise Failure("%s exited with %d (99: memcheck errors or leaks)\n%s"
                      % (agent.name, rc, tail))


def settled_fds(agent, expect):
    """The agent's descriptor count once it is @expect, or whatever it is
    after SETTLE_DEADLINE: what the previous step closed may still be
    closing (the daemon forgets a removed VM from an idle callback, a
    control connection is closed after its reply).  A descriptor that
    stays open is still counted."""
    deadline = time.monotonic() + SETTLE_DEADLINE
    while True:
        n = agent.sample()[0]
        if expect is None or n == expect or time.monotonic() >= deadline:
            return n
        select.select([], [], [], 0.01)


def in_use_at_exit(log):
    """Heap still allocated at exit (memcheck's "in use at exit"): one-time
    state of the libraries, and anything a long run would pile up without
    losing it."""
    with open(log) as f:
        for line in f:
            if "in use at exit:" in line:
                return int(line.split("in use at exit:")[1].split()[0]
                           .replace(",", ""))
    return 0


def memcheck_summary(logs):
    """Errors and definite+indirect leak bytes over all logs."""
    errors = leaked = 0
    for log in logs:
        with open(log) as f:
            for line in f:
                if "ERROR SUMMARY:" in line:
                    errors += int(line.split("ERROR SUMMARY:")[1].split()[0])
                for kind in ("definitely lost:", "indirectly lost:"):
                    if kind in line:
                        leaked += int(line.split(kind)[1].split()[0].replace(",", ""))
    return errors, leaked


class Peer:
    def __init__(self, args, sock, mode, vicc=False, card=None):
        self.mode = mode
        if vicc:
            card = "vicc"
        self.proc = subprocess.Popen([args.peer, sock, mode] +
                                     ([card] if card else []),
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        self.out = Lines(self.proc.stdout, "peer " + mode)

    def wait_for(self, needle, deadline, what):
        try:
            return self.out.wait_for(needle, deadline, what)
        except Failure as e:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            err = self.proc.stderr.read().decode(errors="replace")
            raise Failure("%s; peer exit %s, stderr: %s" % (e, self.proc.returncode,
                                                            err.strip()))

    def finish(self, expect_rc=0):
        try:
            rc = self.proc.wait(timeout=STEP_DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure("peer %s did not exit" % self.mode)
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        if expect_rc is not None and rc != expect_rc:
            raise Failure("peer %s exited with %d: %s" % (self.mode, rc, err))


def cycle_steady(args, agent, kind):
    """One fault on the steady agent; returns the release time in s."""
    # What the last cycle left: no peer, the card in.  Checked now, not at
    # the end of that cycle, so the control connection is long closed
    # when the descriptors are counted.
    st = agent.status()
    if st["attached"] or not st["slots"][0]["present"]:
        raise Failure("before %s: %s" % (kind, st))
    agent.err.drain()
    peer = Peer(args, agent.sock, "hang" if kind == "hang" else kind)
    peer.wait_for("inflight", time.monotonic() + STEP_DEADLINE, kind)
    t0 = time.monotonic()
    if kind == "hang":
        peer.proc.kill()
        t1 = wait_release(agent.err, "QEMU disconnected", t0, kind)
        peer.finish(expect_rc=-signal.SIGKILL)
    elif kind == "drop":
        t1 = wait_release(agent.err, "QEMU disconnected", t0, kind)
        peer.finish()
    else:
        agent.ctl_cmd("remove 0")
        t1 = wait_release(peer, "answered", t0, kind)
        agent.ctl_cmd("insert 0")
        peer.wait_for("echo-ok", time.monotonic() + STEP_DEADLINE, kind)
        peer.finish()
        agent.err.wait_for("QEMU disconnected", time.monotonic() + STEP_DEADLINE,
                           kind + " (peer leaving)")
    return t1 - t0


def cycle_restart(args, agent):
    peer = Peer(args, agent.sock, "gone")
    peer.wait_for("inflight", time.monotonic() + STEP_DEADLINE, "restart")
    t0 = time.monotonic()
    agent.proc.send_signal(signal.SIGTERM)
    t1 = wait_release(peer, "gone", t0, "restart")
    peer.finish()
    check_exit(agent, agent.stop(signalled=True))
    agent.start()
    return t1 - t0


def cycle_virtual(args, agent, samples):
    """The default card (the embedded virtual CAC card) pulled while a peer
    streams APDUs at it: libcacard answers each APDU at once on the
    agent's thread, so no operation of the card lasts; the removal falls
    between two APDUs or while one is on its way.  The peer must get the
    failed answer within the deadline, then use the card again once it is
    pushed back.  Appends the agent's (fds, RSS) before the cycle to
    @samples."""
    fds = settled_fds(agent, samples[-1][0] if samples else None)
    samples.append((fds, agent.sample()[1]))
    st = agent.status()
    if st["attached"] or not st["slots"][0]["present"]:
        raise Failure("before virtual-remove: %s" % st)
    agent.err.drain()
    peer = Peer(args, agent.sock, "stream", card="virtual")
    peer.wait_for("streaming", time.monotonic() + STEP_DEADLINE, "virtual-remove")
    t0 = time.monotonic()
    agent.ctl_cmd("remove 0")
    t1 = wait_release(peer, "answered", t0, "virtual-remove")
    agent.ctl_cmd("insert 0")
    peer.wait_for("echo-ok", time.monotonic() + STEP_DEADLINE, "virtual-remove")
    peer.finish()
    agent.err.wait_for("QEMU disconnected", time.monotonic() + STEP_DEADLINE,
                       "virtual-remove (peer leaving)")
    return t1 - t0


class PcscPeers:
    """The private pcscd and the vicc card of tests/pcsc."""

    def __init__(self, pcsc_dir, workdir):
        self.script = os.path.join(pcsc_dir, "private-pcscd.sh")
        self.vicc_py = os.path.join(pcsc_dir, "vicc_card.py")
        self.dir = os.path.join(workdir, "pcsc")
        self.port = None
        self.vicc = None
        self.env = {}

    def start_pcscd(self):
        cmd = ["/bin/sh", self.script, "start", self.dir]
        if self.port:
            cmd.append(self.port)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise Failure("private-pcscd.sh start failed (%d): %s%s"
                          % (r.returncode, r.stdout, r.stderr))
        for line in r.stdout.splitlines():
            k, _, v = line.partition("=")
            if k == "PCSCLITE_CSOCK_NAME":
                self.env[k] = v
            elif k == "VPCD_PORT":
                self.port = v

    def kill_pcscd(self):
        """SIGKILL, like a crash.  Only the signal: the stop command would
        wait for the (unreaped) process and delay the measurement."""
        pidfile = os.path.join(self.dir, "pcscd.pid")
        with open(pidfile) as f:
            pid = int(f.read())
        os.kill(pid, signal.SIGKILL)
        os.remove(pidfile)

    def start_vicc(self):
        self.vicc = subprocess.Popen(["/usr/bin/python3", self.vicc_py,
                                      "--port", self.port],
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)
        self.vicc_out = Lines(self.vicc.stdout, "vicc")
        self.vicc_out.wait_for("vicc: connected", time.monotonic() + STEP_DEADLINE,
                               "starting vicc")

    def kill_vicc(self):
        if self.vicc is None:
            return
        self.vicc.kill()
        self.vicc.wait()
        self.vicc.stdout.close()
        self.vicc = None

    def stop(self):
        self.kill_vicc()
        subprocess.run(["/bin/sh", self.script, "stop", self.dir],
                       capture_output=True)


class Qmp:
    """A second QMP monitor of a soak QEMU, the soak's own eyes on it (the
    daemon holds the first)."""

    def __init__(self, path):
        # QEMU creates the socket file when it binds, a moment before it
        # listens.
        deadline = time.monotonic() + STEP_DEADLINE
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(STEP_DEADLINE)
            try:
                self.sock.connect(path)
                break
            except (ConnectionRefusedError, FileNotFoundError) as e:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise Failure("QEMU's monitor %s: %s" % (path, e))
                select.select([], [], [], 0.01)
        self.buf = b""
        self._reply()                       # the greeting
        self.cmd("qmp_capabilities")

    def _reply(self):
        while True:
            while b"\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    raise Failure("QEMU closed its monitor")
                self.buf += data
            line, self.buf = self.buf.split(b"\n", 1)
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, name, **args):
        self.sock.sendall(json.dumps({"execute": name, "arguments": args})
                          .encode() + b"\n")
        msg = self._reply()
        if "error" in msg:
            raise Failure("QMP %s: %s" % (name, msg["error"]))
        return msg.get("return")

    def own_devices(self):
        """The daemon's usb-redir devices (ids "ccidemu-..."), attached to
        the guest's USB bus or not."""
        return sorted(p["name"] for p in
                      self.cmd("qom-list", path="/machine/peripheral")
                      if p["name"].startswith("ccidemu-"))

    def connected(self):
        """The daemon's devices whose usbredir socket is open, as QEMU sees
        it: a socket chardev's name becomes "disconnected:..." the moment
        QEMU reads the end of its stream, and usb-redir drops its device
        from the USB bus in the same turn of QEMU's main loop.  (The
        device's own "attached" property cannot tell: a paused QEMU never
        attaches a usb-redir device, its attach timer runs on the guest's
        clock.)"""
        names = {c["label"]: c["filename"] for c in self.cmd("query-chardev")}
        return [d for d in self.own_devices()
                if d in names and not names[d].startswith("disconnected")]

    def wait_connected(self, n, deadline):
        """Polls until @n devices are connected (QEMU raises no QMP event
        when a chardev closes or a usb-redir device detaches): returns the
        time it saw them, or None at the deadline."""
        while True:
            t = time.monotonic()
            if len(self.connected()) == n:
                return t
            if t >= deadline:
                return None
            select.select([], [], [], 0.005)

    def close(self):
        self.sock.close()


class DaemonVms:
    """`ccid-agent daemon` on a private session bus, and paused QEMUs (a
    USB controller, QMP, no guest) it attaches a loopback entry to."""

    def __init__(self, args, workdir):
        self.args = args
        self.dir = os.path.join(workdir, "daemon")
        run = os.path.join(self.dir, "run")
        conf = os.path.join(self.dir, "config", "ccid-emu")
        os.makedirs(run, mode=0o700)
        os.makedirs(conf)
        os.makedirs(os.path.join(self.dir, "data"))
        with open(os.path.join(conf, "agent.conf"), "w") as f:
            f.write("[entry loop1]\ncard=loopback\n")
        self.env = {
            "XDG_RUNTIME_DIR": run,
            "XDG_CONFIG_HOME": os.path.join(self.dir, "config"),
            "XDG_DATA_HOME": os.path.join(self.dir, "data"),
            # No pcscd: the host's readers would be entries too.
            "PCSCLITE_CSOCK_NAME": os.path.join(self.dir, "no-pcscd.comm"),
        }
        self.bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork",
                                     "--print-address=1"],
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL,
                                    stdin=subprocess.DEVNULL)
        addr = Lines(self.bus.stdout, "dbus-daemon")
        addr.wait_for("unix:", time.monotonic() + STEP_DEADLINE, "session bus")
        self.bus_out = addr
        self.env["DBUS_SESSION_BUS_ADDRESS"] = self.bus_address(addr)
        self.agent = Agent(args, "daemon", workdir, env=self.env, daemon=True)
        self.n = 0
        self.fds = []

    @staticmethod
    def bus_address(lines):
        # wait_for consumed the line; dbus-daemon prints just the address
        return lines.last

    def cli(self, *argv):
        env = dict(os.environ)
        env.update(self.env)
        r = subprocess.run([self.args.agent] + list(argv), env=env,
                           capture_output=True, text=True, timeout=STEP_DEADLINE)
        if r.returncode != 0:
            raise Failure("ccid-agent %s: %s%s" % (" ".join(argv), r.stdout,
                                                  r.stderr))
        return r.stdout

    def start_qemu(self, name, observer=False):
        """A paused QEMU (no guest) with a USB controller and the daemon's
        QMP socket, and with @observer a second one for the soak."""
        qmp = os.path.join(self.dir, name + ".qmp")
        obs = os.path.join(self.dir, name + ".obs")
        cmd = ["qemu-system-x86_64", "-machine", "pc", "-accel", "tcg",
               "-nodefaults", "-display", "none", "-S",
               "-qmp", "unix:%s,server=on,wait=off" % qmp, "-device", "qemu-xhci"]
        if observer:
            cmd += ["-qmp", "unix:%s,server=on,wait=off" % obs]
        qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + STEP_DEADLINE
        while not (os.path.exists(qmp) and (not observer or os.path.exists(obs))):
            if qemu.poll() is not None or time.monotonic() > deadline:
                qemu.kill()
                qemu.wait()
                raise Failure("QEMU did not create %s: %s"
                              % (qmp, qemu.stderr.read().decode()))
            select.select([], [], [], 0.02)
        return qemu, qmp, obs

    @staticmethod
    def end_qemu(qemu):
        if qemu.poll() is None:
            qemu.kill()
        qemu.wait()
        qemu.stderr.close()

    def cycle(self):
        """A VM with the entry attached, SIGKILLed; returns the time until
        the daemon ended the session."""
        # Counted before, when the last VM's connection is closed.
        self.fds.append(settled_fds(self.agent, self.fds[-1] if self.fds else None))
        self.n += 1
        name = "vm%d" % self.n
        qemu, qmp, _ = self.start_qemu(name)
        try:
            self.cli("vm", "add", name, "--qmp", "unix:" + qmp)
            self.cli("attach", "loop1", name)
            self.agent.err.drain()
            t0 = time.monotonic()
            qemu.kill()
            t1 = wait_release(self.agent.err, "entry 'loop1' left VM '%s'" % name,
                              t0, "VM killed")
        finally:
            self.end_qemu(qemu)
        self.cli("vm", "remove", name)
        return t1 - t0

    def remembered(self, name):
        """The entries vms.conf remembers for VM @name (None: not there)."""
        path = os.path.join(self.dir, "config", "ccid-emu", "vms.conf")
        group = None
        try:
            with open(path) as f:
                for line in f:
                    line = line.strip()
                    if line.startswith("["):
                        group = line
                    elif group == "[vm %s]" % name and line.startswith("entries="):
                        return [e for e in line[8:].split(";") if e]
        except FileNotFoundError:
            pass
        return None

    def restart_cycle(self):
        """The daemon SIGTERMed while a VM holds its entry, then started
        again.  Returns (release, reattach): the time from the signal until
        QEMU detached the reader (its usb-redir socket closed), and from
        the new daemon's start until the remembered entry was attached to
        the VM again (docs/daemon.md, "Remembered VMs and attachments")."""
        self.fds.append(settled_fds(self.agent, self.fds[-1] if self.fds else None))
        self.n += 1
        name = "vm%d" % self.n
        qemu, qmp, obs_path = self.start_qemu(name, observer=True)
        obs = None
        try:
            obs = Qmp(obs_path)
            self.cli("vm", "add", name, "--qmp", "unix:" + qmp)
            self.agent.err.drain()
            self.cli("attach", "loop1", name)
            # The session starts (and is remembered) once QEMU has the
            # device; the attach call returns before.
            self.agent.err.wait_for("entry 'loop1' attached to VM '%s'" % name,
                                    time.monotonic() + STEP_DEADLINE,
                                    "daemon restart (attach)")
            if obs.wait_connected(1, time.monotonic() + STEP_DEADLINE) is None:
                raise Failure("daemon restart: the reader never appeared in "
                              "VM %s: %s" % (name, obs.own_devices()))
            # Written right after the daemon logs the session.
            deadline = time.monotonic() + STEP_DEADLINE
            while self.remembered(name) != ["loop1"]:
                if time.monotonic() > deadline:
                    raise Failure("daemon restart: vms.conf does not remember "
                                  "loop1 in %s: %s" % (name, self.remembered(name)))
                select.select([], [], [], 0.01)
            t0 = time.monotonic()
            self.agent.proc.send_signal(signal.SIGTERM)
            t1 = obs.wait_connected(0, t0 + RELEASE_DEADLINE)
            if t1 is None:
                t1 = obs.wait_connected(0, t0 + STEP_DEADLINE)
                raise Failure("daemon restart: reader released %s"
                              % ("after %.0f ms (limit %.0f ms)"
                                 % ((t1 - t0) * 1000, RELEASE_DEADLINE * 1000)
                                 if t1 else "never"))
            check_exit(self.agent, self.agent.stop(signalled=True))
            # docs/daemon.md: a stopped daemon leaves the VM its dead
            # device, which the next one unplugs.
            left = obs.own_devices()
            if len(left) != 1 or obs.connected():
                raise Failure("daemon restart: after the daemon stopped, VM %s "
                              "has devices %s, connected %s"
                              % (name, left, obs.connected()))
            if self.remembered(name) != ["loop1"]:
                raise Failure("daemon restart: the stopping daemon forgot "
                              "loop1 in %s: %s" % (name, self.remembered(name)))
            t2 = time.monotonic()
            self.agent.start()
            t3 = obs.wait_connected(1, time.monotonic() + STEP_DEADLINE)
            if t3 is None:
                raise Failure("daemon restart: the remembered entry was not "
                              "attached to %s again: %s"
                              % (name, obs.own_devices()))
            self.agent.err.wait_for("entry 'loop1' attached to VM '%s'" % name,
                                    time.monotonic() + STEP_DEADLINE,
                                    "daemon restart (re-attach)")
            # The old daemon's dead device is unplugged, the new one is in.
            deadline = time.monotonic() + STEP_DEADLINE
            while True:
                after = obs.own_devices()
                # One device: the stale one unplugged (its id may be the
                # new one's), the new one plugged and connected.
                if len(after) == 1:
                    break
                if time.monotonic() > deadline:
                    raise Failure("daemon restart: VM %s has devices %s"
                                  % (name, after))
                select.select([], [], [], 0.02)
            self.agent.err.drain()
            qemu.kill()
            self.agent.err.wait_for("entry 'loop1' left VM '%s'" % name,
                                    time.monotonic() + STEP_DEADLINE,
                                    "daemon restart (VM gone)")
        finally:
            if obs:
                obs.close()
            self.end_qemu(qemu)
        self.cli("vm", "remove", name)
        return t1 - t0, t3 - t2

    def stop(self):
        self.bus.kill()
        self.bus.wait()
        self.bus.stdout.close()


def wait_present(agent, present=True):
    """Polls the agent's status until its card is in (or out), as pcscd
    reports it, under a deadline."""
    deadline = time.monotonic() + STEP_DEADLINE
    while True:
        st = agent.status()
        if st["slots"][0]["present"] == present:
            return
        if time.monotonic() >= deadline:
            raise Failure("%s: the card did not %s: %s"
                          % (agent.name, "come back" if present else "go", st))
        select.select([], [], [], 0.05)


def cycle_pcsc(args, agent, pcsc, kind):
    wait_present(agent)
    agent.err.drain()
    peer = Peer(args, agent.sock, "remove", vicc=True)
    peer.wait_for("inflight", time.monotonic() + STEP_DEADLINE, kind)
    t0 = time.monotonic()
    if kind == "card-kill":
        pcsc.kill_vicc()
        t1 = wait_release(peer, "answered", t0, kind)
        # Back only once pcscd has seen it go, as a card pulled out and
        # pushed in again by hand: vpcd takes the new connection of vicc
        # only after its presence poll saw the old one die.
        wait_present(agent, False)
    else:
        pcsc.kill_pcscd()
        t1 = wait_release(peer, "answered", t0, kind)
        pcsc.kill_vicc()
        pcsc.start_pcscd()
    pcsc.start_vicc()
    peer.wait_for("echo-ok", time.monotonic() + STEP_DEADLINE, kind)
    peer.finish()
    agent.err.wait_for("QEMU disconnected", time.monotonic() + STEP_DEADLINE,
                       kind + " (peer leaving)")
    return t1 - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agent", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--window", type=int, default=100,
                    help="cycle from which fds and RSS must stay flat")
    ap.add_argument("--restart-every", type=int, default=50)
    ap.add_argument("--rss-slack-kib", type=int, default=1024,
                    help="RSS growth allowed over the window")
    ap.add_argument("--suppressions")
    ap.add_argument("--pcsc-dir", help="tests/pcsc: add the pcsc agent")
    ap.add_argument("--pcsc-every", type=int, default=5)
    ap.add_argument("--vm-every", type=int, default=0,
                    help="kill a VM attached through the daemon every N "
                    "cycles (0: no daemon)")
    ap.add_argument("--virtual-every", type=int, default=0,
                    help="pull the default (virtual) card of agent "
                    "'virtual' every N cycles (0: no virtual agent)")
    ap.add_argument("--virtual-rss-slack-kib", type=int,
                    help="RSS growth allowed to the virtual agent over the "
                    "window (default: --rss-slack-kib); NSS and libcacard's "
                    "allocations settle over the first ~700 removals "
                    "(README.md)")
    ap.add_argument("--daemon-restart-every", type=int, default=0,
                    help="restart the daemon (with --vm-every) while a VM "
                    "holds its entry every N cycles (0: never)")
    ap.add_argument("--no-valgrind", dest="valgrind", action="store_false")
    args = ap.parse_args()
    if args.window >= args.cycles:
        ap.error("--window must be below --cycles")
    if args.daemon_restart_every and not args.vm_every:
        ap.error("--daemon-restart-every needs --vm-every (the daemon)")

    workdir = tempfile.mkdtemp(prefix="ccid-soak-")
    steady = Agent(args, "steady", workdir)
    restarted = Agent(args, "restarted", workdir)
    kinds = ["hang", "drop", "remove"]
    pcsc_kinds = ["card-kill", "pcscd-restart"]
    release = {k: [] for k in kinds + ["restart"] + pcsc_kinds}
    pcsc = pcsc_agent = None
    n_pcsc = 0
    vms = None
    release["vm-killed"] = []
    release["virtual-remove"] = []
    release["daemon-restart"] = []
    reattach = []
    virtual = None
    vbase = vlast = None
    vsamples = []
    if args.virtual_every:
        # serve's default card, its NSS database made on first use here.
        virtual = Agent(args, "virtual", workdir, card=None,
                        env={"XDG_DATA_HOME": os.path.join(workdir, "virtual-data")})
    daemon_fds = []
    base = last = None
    t_start = time.monotonic()
    try:
        steady.start()
        restarted.start()
        if args.pcsc_dir:
            pcsc = PcscPeers(args.pcsc_dir, workdir)
            pcsc.start_pcscd()
            pcsc.start_vicc()
            pcsc_agent = Agent(args, "pcsc", workdir,
                               card="pcsc:Virtual PCD 00 00", env=pcsc.env)
            pcsc_agent.start()
        if args.vm_every:
            vms = DaemonVms(args, workdir)
            vms.agent.start()
        if virtual:
            virtual.start()
        for i in range(1, args.cycles + 1):
            kind = kinds[i % 3]
            release[kind].append(cycle_steady(args, steady, kind))
            if i % args.restart_every == 0:
                release["restart"].append(cycle_restart(args, restarted))
            if pcsc_agent and i % args.pcsc_every == 0:
                k = pcsc_kinds[n_pcsc % 2]
                n_pcsc += 1
                release[k].append(cycle_pcsc(args, pcsc_agent, pcsc, k))
            if vms and i % args.vm_every == 0:
                release["vm-killed"].append(vms.cycle())
            if vms and args.daemon_restart_every and \
                    i % args.daemon_restart_every == 0:
                rel, back = vms.restart_cycle()
                release["daemon-restart"].append(rel)
                reattach.append(back)
            if virtual and i % args.virtual_every == 0:
                release["virtual-remove"].append(
                    cycle_virtual(args, virtual, vsamples))
                if i >= args.window and vbase is None:
                    vbase = vsamples[-1]
                vlast = vsamples[-1]
            sample = steady.sample()
            if i == args.window:
                base = sample
            last = sample
            if i % 50 == 0 or i == args.cycles:
                print("cycle %d: fds %d rss %d KiB%s"
                      % (i, sample[0], sample[1],
                         ", virtual fds %d rss %d KiB" % vsamples[-1]
                         if vsamples else ""), flush=True)
        check_exit(steady, steady.stop())
        check_exit(restarted, restarted.stop())
        if pcsc_agent:
            check_exit(pcsc_agent, pcsc_agent.stop())
            pcsc.stop()
        if vms:
            check_exit(vms.agent, vms.agent.stop())
            vms.stop()
        if virtual:
            check_exit(virtual, virtual.stop())
    except Exception as e:      # Failure, or a bug here: clean up anyway
        print("FAIL: %s" % (e if isinstance(e, Failure) else repr(e)),
              flush=True)
        daemon = vms.agent if vms else None
        for a in (steady, restarted, pcsc_agent, daemon, virtual):
            if a and a.proc and a.proc.poll() is None:
                for _ in range(5):
                    a.err._read(0.2)
        for a in (steady, restarted, pcsc_agent, daemon, virtual):
            if a and a.proc and a.proc.poll() is None:
                a.proc.kill()
        if pcsc:
            pcsc.stop()
        if vms:
            vms.stop()
        print("logs in %s" % workdir)
        return 1

    elapsed = time.monotonic() - t_start
    if vms:
        daemon_fds = vms.fds
    errors, leaked = memcheck_summary(
        steady.vg_logs + restarted.vg_logs +
        (pcsc_agent.vg_logs if pcsc_agent else []) +
        (vms.agent.vg_logs if vms else []) +
        (virtual.vg_logs if virtual else [])) if args.valgrind else (0, 0)
    print("cycles: %d in %.0f s (%s), agent runs: steady 1, restarted %d, "
          "pcsc %d (%d pcsc faults), virtual %d, daemon %d"
          % (args.cycles, elapsed, "memcheck" if args.valgrind else "no valgrind",
             restarted.runs, 1 if pcsc_agent else 0, n_pcsc,
             1 if virtual else 0, vms.agent.runs if vms else 0))
    for k, v in release.items():
        if v:
            print("release after %-7s n=%-4d max %.0f ms, mean %.0f ms"
                  % (k, len(v), max(v) * 1000, sum(v) / len(v) * 1000))
    if reattach:
        print("restarted daemon re-attached its remembered entry: n=%d, "
              "max %.0f ms, mean %.0f ms after its start"
              % (len(reattach), max(reattach) * 1000,
                 sum(reattach) / len(reattach) * 1000))
    if vbase:
        print("virtual agent from its first sample at cycle >= %d: fds %d -> %d, "
              "RSS %d -> %d KiB" % (args.window, vbase[0], vlast[0], vbase[1],
                                   vlast[1]))
    print("steady agent from cycle %d to %d: fds %d -> %d, RSS %d -> %d KiB"
          % (args.window, args.cycles, base[0], last[0], base[1], last[1]))
    if args.valgrind:
        print("memcheck: %d errors, %d bytes definitely or indirectly lost"
              % (errors, leaked))
        print("heap in use at exit: steady %d bytes%s" % (
            in_use_at_exit(steady.vg_logs[-1]),
            ", virtual %d bytes" % in_use_at_exit(virtual.vg_logs[-1])
            if virtual else ""))
    else:
        print("memcheck: not run (--no-valgrind)")
    if daemon_fds:
        print("daemon descriptors before each VM: %s"
              % (daemon_fds if len(daemon_fds) <= 12 else
                 daemon_fds[:3] + ["..."] + daemon_fds[-3:]))
    ok = True
    if last[0] != base[0]:
        print("FAIL: descriptors grew")
        ok = False
    if vbase and vlast[0] != vbase[0]:
        print("FAIL: the virtual agent's descriptors grew")
        ok = False
    vslack = args.virtual_rss_slack_kib
    if vslack is None:
        vslack = args.rss_slack_kib
    if vbase and vlast[1] - vbase[1] > vslack:
        print("FAIL: the virtual agent's RSS grew by %d KiB (slack %d)"
              % (vlast[1] - vbase[1], vslack))
        ok = False
    if len(set(daemon_fds[1:])) > 1:
        print("FAIL: the daemon's descriptors changed across VM faults")
        ok = False
    if last[1] - base[1] > args.rss_slack_kib:
        print("FAIL: RSS grew by %d KiB (slack %d)" % (last[1] - base[1],
                                                    args.rss_slack_kib))
        ok = False
    if errors or leaked:
        print("FAIL: memcheck found errors or leaks (logs in %s)" % workdir)
        ok = False
    if ok:
        subprocess.run(["rm", "-rf", workdir])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
