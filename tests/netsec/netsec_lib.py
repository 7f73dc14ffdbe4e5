# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for the netsec tests: start `ccid-agent serve` (optionally as
another uid), wait for its lines under a deadline, run checks and report.

Every wait is for a real event (a line on the agent's stdout or stderr, a
socket answering) under a deadline; nothing synchronises by sleeping."""

import os
import select
import signal
import socket
import subprocess
import sys
import time

AGENT = os.environ.get("CCID_AGENT", "ccid-agent")
FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)
    return cond


def finish():
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed:")
        for f in FAILURES:
            print("  " + f)
        sys.exit(1)
    print("all checks passed")
    sys.exit(0)


def as_user(uid, gid, groups=()):
    """preexec_fn: drop to uid/gid with these supplementary groups."""
    def drop():
        os.setgroups(list(groups))
        os.setgid(gid)
        os.setuid(uid)
    return drop


class Agent:
    """`ccid-agent serve ARGS` with stdout on a pipe and stderr in a file."""

    def __init__(self, workdir, name, args, uid=None, gid=None, groups=(),
                 umask=None, env=None):
        self.log_path = os.path.join(workdir, f"agent-{name}.log")
        self.out = b""
        e = dict(os.environ)
        e.update(env or {})
        e.setdefault("XDG_RUNTIME_DIR", os.path.join(workdir, "xdg-run"))

        def pre():
            if umask is not None:
                os.umask(umask)
            if uid is not None:
                as_user(uid, gid, groups)()
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([AGENT, "serve"] + list(args),
                                     stdout=subprocess.PIPE, stderr=self.log,
                                     env=e, preexec_fn=pre)

    def wait_out(self, needle, timeout=10.0):
        """Waits for @needle on stdout; FALSE at the deadline or exit."""
        end = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while needle.encode() not in self.out:
            left = end - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return needle.encode() in self.out
                self.out += chunk
        return True

    def ready(self, timeout=10.0):
        return self.wait_out("control: ", timeout)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, needle, timeout=10.0):
        """Waits for @needle in the agent's stderr (a file it appends
        to), checking whenever the file grows."""
        end = time.monotonic() + timeout
        while True:
            if needle in self.log_text():
                return True
            if time.monotonic() >= end or self.proc.poll() is not None:
                return needle in self.log_text()
            # The agent writes a line per event; re-read at a short
            # period until the deadline.
            select.select([], [], [], 0.02)

    def control_path(self):
        for line in self.out.decode(errors="replace").splitlines():
            if line.startswith("control: "):
                return line[len("control: "):]
        return None

    def exit_code(self, timeout=10.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.proc.stdout.close()


def ctl_status(control, timeout=3.0, preexec=None):
    """Runs `ccid-agent ctl status` and returns (rc, output, seconds)."""
    t0 = time.monotonic()
    try:
        p = subprocess.run([AGENT, "ctl", "--control", control, "status"],
                           capture_output=True, timeout=timeout,
                           preexec_fn=preexec)
        return p.returncode, (p.stdout + p.stderr).decode(errors="replace"), \
            time.monotonic() - t0
    except subprocess.TimeoutExpired:
        return None, "timed out", time.monotonic() - t0


def unix_hello(path, timeout=3.0):
    """Connects to a reader socket and returns its first bytes (the
    usbredir hello), b"" if it closed the connection, or None on a
    connect error (with the errno)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        return None, e.errno
    try:
        data = s.recv(4096)
    except socket.timeout:
        data = None
    except ConnectionResetError:
        data = b""
    s.close()
    return data, 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    """utime + stime of @pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
