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

Every fault must release the reader within 1 s: the agent logs "QEMU
disconnected" (hang, drop), the peer gets its answer (remove, card-kill,
pcscd-restart) or sees the socket close (restart).  Waits are on those events, under deadlines.
At the end both agents get SIGTERM; memcheck must report 0 errors and 0
definite or indirect leaks for every agent process (--error-exitcode).

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
            cmd += [self.args.agent, "serve", "--card", self.card,
                    "--listen", "unix:" + self.sock, "--control", self.ctl]
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
    def __init__(self, args, sock, mode, vicc=False):
        self.mode = mode
        self.proc = subprocess.Popen([args.peer, sock, mode] +
                                     (["vicc"] if vicc else []),
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

    def cycle(self):
        """A VM with the entry attached, SIGKILLed; returns the time until
        the daemon ended the session."""
        # Counted before, when the last VM's connection is long closed.
        self.fds.append(self.agent.sample()[0])
        self.n += 1
        name = "vm%d" % self.n
        qmp = os.path.join(self.dir, name + ".qmp")
        qemu = subprocess.Popen(
            ["qemu-system-x86_64", "-machine", "pc", "-accel", "tcg",
             "-nodefaults", "-display", "none", "-S",
             "-qmp", "unix:%s,server=on,wait=off" % qmp, "-device", "qemu-xhci"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + STEP_DEADLINE
            while not os.path.exists(qmp):
                if qemu.poll() is not None or time.monotonic() > deadline:
                    raise Failure("QEMU did not create %s: %s"
                                  % (qmp, qemu.stderr.read().decode()))
                select.select([], [], [], 0.02)
            self.cli("vm", "add", name, "--qmp", "unix:" + qmp)
            self.cli("attach", "loop1", name)
            self.agent.err.drain()
            t0 = time.monotonic()
            qemu.kill()
            t1 = wait_release(self.agent.err, "entry 'loop1' left VM '%s'" % name,
                              t0, "VM killed")
        finally:
            if qemu.poll() is None:
                qemu.kill()
            qemu.wait()
            qemu.stderr.close()
        self.cli("vm", "remove", name)
        return t1 - t0

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
    ap.add_argument("--no-valgrind", dest="valgrind", action="store_false")
    args = ap.parse_args()
    if args.window >= args.cycles:
        ap.error("--window must be below --cycles")

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
            sample = steady.sample()
            if i == args.window:
                base = sample
            last = sample
            if i % 50 == 0 or i == args.cycles:
                print("cycle %d: fds %d rss %d KiB" % (i, sample[0], sample[1]),
                      flush=True)
        check_exit(steady, steady.stop())
        check_exit(restarted, restarted.stop())
        if pcsc_agent:
            check_exit(pcsc_agent, pcsc_agent.stop())
            pcsc.stop()
        if vms:
            check_exit(vms.agent, vms.agent.stop())
            vms.stop()
    except Failure as e:
        print("FAIL: %s" % e, flush=True)
        daemon = vms.agent if vms else None
        for a in (steady, restarted, pcsc_agent, daemon):
            if a and a.proc and a.proc.poll() is None:
                for _ in range(5):
                    a.err._read(0.2)
        for a in (steady, restarted, pcsc_agent, daemon):
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
        (vms.agent.vg_logs if vms else [])) if args.valgrind else (0, 0)
    print("cycles: %d in %.0f s (%s), agent runs: steady 1, restarted %d, "
          "pcsc %d (%d pcsc faults)"
          % (args.cycles, elapsed, "memcheck" if args.valgrind else "no valgrind",
             restarted.runs, 1 if pcsc_agent else 0, n_pcsc))
    for k, v in release.items():
        if v:
            print("release after %-7s n=%-4d max %.0f ms, mean %.0f ms"
                  % (k, len(v), max(v) * 1000, sum(v) / len(v) * 1000))
    print("steady agent from cycle %d to %d: fds %d -> %d, RSS %d -> %d KiB"
          % (args.window, args.cycles, base[0], last[0], base[1], last[1]))
    if args.valgrind:
        print("memcheck: %d errors, %d bytes definitely or indirectly lost"
              % (errors, leaked))
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
