# SPDX-License-Identifier: LGPL-2.1-or-later
"""Who may connect to `ccid-agent serve` (issue 13, item 1):

- unix sockets are born owner-only (even under umask 0), in a 0700
  directory; a symlink in the way is not followed;
- peers are checked with SO_PEERCRED: another uid is refused on the reader
  and the control socket, --allow-group lets a group in;
- a stale socket is replaced only when connect() says ECONNREFUSED; another
  user's live socket (EACCES) is left alone, with a message;
- plain TCP listens only on loopback;
- accept() failing with EMFILE backs off instead of spinning;
- --connect never blocks the main loop: with the peer silent (SYN dropped)
  the control socket still answers.

Needs root (it runs the agent and its peers as other uids, as CI does)."""

import os
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netsec_lib import (Agent, check, cpu_seconds, ctl_status, finish,  # noqa: E402
                        free_port, unix_hello, as_user)

NOBODY = 65534          # the agent's uid where it must not be root
OTHER = 65533           # another user
GROUP = 4242            # the group --allow-group lets in


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def hello_ok(data):
    # usbredir header: type 0 (hello), a length, an id, then the version
    # string, which names the agent.
    return bool(data) and len(data) > 12 and data[:4] == b"\0\0\0\0" and \
        b"ccid-emu" in data


def test_modes(work):
    run = os.path.join(work, "modes", "run")        # does not exist yet
    sock = os.path.join(run, "r.sock")
    a = Agent(work, "modes", ["--card", "loopback", "--listen", "unix:" + sock],
              umask=0)
    try:
        check(a.ready(), "modes: agent serves under umask 0")
        check(mode(run) == 0o700, f"modes: new directory is 0700 ({oct(mode(run))})")
        check(mode(sock) == 0o600, f"modes: reader socket is 0600 ({oct(mode(sock))})")
        ctl = a.control_path()
        check(ctl is not None and mode(ctl) == 0o600,
              f"modes: control socket is 0600 ({ctl and oct(mode(ctl))})")
    finally:
        a.stop()
    # A umask that would leave the owner without write access to a new
    # directory (found by fuzz_sock_setup) changes nothing either.
    run2 = os.path.join(work, "modes2", "run")
    sock2 = os.path.join(run2, "r.sock")
    a = Agent(work, "modes2", ["--card", "loopback", "--listen", "unix:" + sock2],
              umask=0o277)
    try:
        check(a.ready(), "modes: agent serves under umask 0277")
        check(mode(run2) == 0o700 and mode(sock2) == 0o600,
              f"modes: umask 0277 still gives 0700 / 0600 ({oct(mode(run2))}, {oct(mode(sock2))})")
    finally:
        a.stop()
    # A symlink where the control socket goes is not followed or replaced.
    d = os.path.join(work, "symlink")
    os.makedirs(d, mode=0o700)
    victim = os.path.join(work, "victim")
    with open(victim, "w") as f:
        f.write("keep")
    os.chmod(victim, 0o644)
    os.symlink(victim, os.path.join(d, "r.ctl"))
    a = Agent(work, "symlink", ["--card", "loopback", "--listen",
                                "unix:" + os.path.join(d, "r.sock")])
    rc = a.exit_code()
    a.stop()
    check(rc == 2 and "exists and is not a socket" in a.log_text(),
          f"symlink: refused (exit {rc}): {a.log_text().strip()[-160:]}")
    check(mode(victim) == 0o644 and open(victim).read() == "keep",
          "symlink: its target is untouched")


def test_peercred(work):
    home = os.path.join(work, "peer")
    os.makedirs(home, mode=0o700)
    os.chown(home, NOBODY, NOBODY)
    sock = os.path.join(home, "run", "r.sock")
    a = Agent(work, "peercred", ["--card", "loopback", "--listen", "unix:" + sock],
              uid=NOBODY, gid=NOBODY, env={"XDG_RUNTIME_DIR": home})
    try:
        check(a.ready(), "peercred: agent serves as uid 65534")
        ctl = a.control_path()
        # root gets past the file mode, not past SO_PEERCRED.
        data, err = unix_hello(sock)
        check(data == b"", f"peercred: root's connection is closed unserved ({data!r}, {err})")
        check(a.wait_log("runs as uid 0, not our uid 65534"),
              "peercred: the refusal names the uids")
        rc, out, _ = ctl_status(ctl)
        check(rc != 0, f"peercred: root's control request is refused ({rc}: {out.strip()})")
        check(a.wait_log("control socket " + ctl + ": refused a connection"),
              "peercred: control socket refusal logged")
        # The owner is served on both.
        r = subprocess.run([sys.executable, "-c",
                            "import socket,sys; s=socket.socket(socket.AF_UNIX);"
                            f"s.connect({sock!r}); s.settimeout(3);"
                            "sys.stdout.buffer.write(s.recv(4096))"],
                           capture_output=True, preexec_fn=as_user(NOBODY, NOBODY))
        check(hello_ok(r.stdout), f"peercred: the owner gets the usbredir hello ({r.stdout[:24]!r})")
        rc, out, _ = ctl_status(ctl, preexec=as_user(NOBODY, NOBODY))
        check(rc == 0 and "slot" in out, f"peercred: the owner's ctl status works ({rc}: {out.strip()[:80]})")
    finally:
        a.stop()


def test_allow_group(work):
    base = os.path.join(work, "grp")
    os.makedirs(base, mode=0o755)
    os.chown(base, NOBODY, NOBODY)
    sock = os.path.join(base, "qemu", "r.sock")
    a = Agent(work, "group", ["--card", "loopback", "--allow-group", str(GROUP),
                              "--listen", "unix:" + sock,
                              "--control", os.path.join(base, "ctl", "r.ctl")],
              uid=NOBODY, gid=NOBODY, groups=(GROUP,), env={"XDG_RUNTIME_DIR": base})
    try:
        check(a.ready(), "group: agent serves with --allow-group")
        d = os.path.dirname(sock)
        st = os.lstat(d)
        check(stat.S_IMODE(st.st_mode) == 0o2750 and st.st_gid == GROUP,
              f"group: socket directory is 2750 of group {GROUP} ({oct(stat.S_IMODE(st.st_mode))}, {st.st_gid})")
        st = os.lstat(sock)
        check(stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == GROUP,
              f"group: socket is 0660 of group {GROUP} ({oct(stat.S_IMODE(st.st_mode))}, {st.st_gid})")
        probe = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
                 "try:\n s.connect(%r)\nexcept OSError as e:\n print('ERR',e.errno); sys.exit(0)\n"
                 "s.settimeout(3)\nsys.stdout.buffer.write(s.recv(4096))\n" % sock)
        r = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                           preexec_fn=as_user(OTHER, GROUP))
        check(hello_ok(r.stdout), f"group: a member of the group is served ({r.stdout[:24]!r})")
        r = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                           preexec_fn=as_user(OTHER, OTHER))
        check(r.stdout.startswith(b"ERR 13"), f"group: a non-member cannot even connect ({r.stdout[:24]!r})")
        data, _ = unix_hello(sock)
        check(data == b"" and a.wait_log("neither our uid 65534 nor in the allowed group 4242"),
              "group: root, not in the group, is refused by SO_PEERCRED")
    finally:
        a.stop()


def test_stale(work):
    d = os.path.join(work, "stale")
    os.makedirs(d, mode=0o777)
    os.chmod(d, 0o777)             # no sticky bit: anyone could unlink
    path = os.path.join(d, "r.sock")
    # Another user's live socket: our probe gets EACCES.
    other = socket.socket(socket.AF_UNIX)
    pid = os.fork()
    if pid == 0:
        os.setgid(OTHER)
        os.setuid(OTHER)
        os.umask(0o077)
        other.bind(path)
        other.listen(4)
        os._exit(0)
    os.waitpid(pid, 0)
    ino = os.lstat(path).st_ino
    a = Agent(work, "stale-eacces", ["--card", "loopback", "--listen", "unix:" + path,
                                     "--control", os.path.join(d, "n.ctl")],
              uid=NOBODY, gid=NOBODY, env={"XDG_RUNTIME_DIR": d})
    rc = a.exit_code()
    a.stop()
    log = a.log_text()
    check(rc == 1 and "cannot be probed (Permission denied); leaving it alone" in log,
          f"stale: another user's socket (EACCES) is left alone (exit {rc}): {log.strip()[-200:]}")
    check(os.path.exists(path) and os.lstat(path).st_ino == ino,
          "stale: that socket file is still there")
    other.close()
    os.unlink(path)
    # A socket nobody listens on: replaced.
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()
    a = Agent(work, "stale-refused", ["--card", "loopback", "--listen", "unix:" + path,
                                      "--control", os.path.join(d, "m.ctl")])
    ok = a.ready()
    a.stop()
    check(ok, "stale: a socket that refuses connections is replaced")


def test_tcp_loopback(work):
    port = free_port()
    for addr in (f"tcp:0.0.0.0:{port}", f"tcp:[::]:{port}"):
        a = Agent(work, "tcp-any", ["--card", "loopback", "--listen", addr])
        rc = a.exit_code()
        a.stop()
        log = a.log_text()
        check(rc == 2 and "without TLS" in log and "could use the card" in log
              and "--tls-creds" in log and f"tcp:127.0.0.1:{port}" in log,
              f"tcp: {addr} without TLS is refused naming risk and fix (exit {rc}): {log.strip()[-300:]}")
    a = Agent(work, "tcp-lo", ["--card", "loopback", "--listen", f"tcp:localhost:{port}"])
    ok = a.ready()
    a.stop()
    check(ok, "tcp: localhost is allowed without TLS")
    certs = os.path.join(work, "certs")
    subprocess.run([os.environ.get("MAKE_CERTS", "make-certs.sh"), certs], check=True)
    a = Agent(work, "tcp-any-tls", ["--card", "loopback", "--listen", f"tcp:0.0.0.0:{port}",
                                    "--tls-creds", os.path.join(certs, "server")])
    ok = a.ready()
    a.stop()
    check(ok and "tls-creds-x509" in a.out.decode(),
          "tcp: 0.0.0.0 with --tls-creds listens and prints QEMU's TLS arguments")
    for args, msg in ((["--listen", "unix:" + os.path.join(work, "x.sock"), "--tls-creds", certs],
                       "--tls-creds needs a tcp:HOST:PORT address"),
                      (["--listen", f"tcp:127.0.0.1:{port}", "--allow-group", "0"],
                       "--allow-group applies to a unix --listen socket"),
                      (["--listen", "unix:" + os.path.join(work, "y.sock"), "--allow-group", "no-such-group-x"],
                       "--allow-group 'no-such-group-x': no such group"),
                      (["--listen", f"tcp:127.0.0.1:{port}", "--tls-creds", os.path.join(certs, "client")],
                       "server-cert.pem is missing")):
        a = Agent(work, "tcp-usage", ["--card", "loopback"] + args)
        rc = a.exit_code()
        a.stop()
        check(rc in (1, 2) and msg in a.log_text(),
              f"usage: {' '.join(args[2:])}: exit {rc}, '{msg}' ({a.log_text().strip()[-160:]})")


def test_accept_backoff(work):
    d = os.path.join(work, "emfile")
    sock = os.path.join(d, "r.sock")
    a = Agent(work, "emfile", ["--card", "loopback", "--listen", "unix:" + sock])
    clients = []
    try:
        check(a.ready(), "emfile: agent serves")
        ctl = a.control_path()
        pid = a.proc.pid
        nfd = len(os.listdir(f"/proc/{pid}/fd"))
        # Two more descriptors, then every further accept() fails EMFILE.
        subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={nfd + 2}:"], check=True)
        for _ in range(4):
            c = socket.socket(socket.AF_UNIX)
            c.connect(ctl)
            clients.append(c)
        r = socket.socket(socket.AF_UNIX)
        r.connect(sock)                    # waits in the reader's backlog
        clients.append(r)
        check(a.wait_log("accept failed: Too many open files; pausing"),
              "emfile: accept failure reported")
        t0, c0 = time.monotonic(), cpu_seconds(pid)
        # A window of wall time in which a spinning loop would burn a
        # whole core; the agent must stay nearly idle.
        select_wait(1.5)
        used = cpu_seconds(pid) - c0
        wall = time.monotonic() - t0
        check(used < 0.3, f"emfile: {used:.2f} s CPU in {wall:.2f} s while accept fails (no busy loop)")
        # Once descriptors are free again the waiting peers are served.
        for c in clients[:4]:
            c.close()
        subprocess.run(["prlimit", f"--pid={pid}", "--nofile=1024:"], check=True)
        rc, out, secs = ctl_status(ctl, timeout=5)
        check(rc == 0, f"emfile: control answers again after the back-off ({rc}, {secs:.2f} s)")
        r.settimeout(5)
        try:
            data = r.recv(4096)
        except socket.timeout:
            data = None
        check(hello_ok(data), "emfile: the reader peer that waited is served")
    finally:
        for c in clients:
            c.close()
        a.stop()


def select_wait(seconds):
    import select
    select.select([], [], [], seconds)


def syn_sent_to(port):
    """Whether a TCP connect to @port is in SYN_SENT (/proc/net/tcp{,6}:
    state 02, remote address ADDR:PORT in hex)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 3 and fields[3] == "02" and \
                    int(fields[2].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def test_connect_async(work):
    # A peer whose accept queue is full: the kernel drops our SYN, so
    # connect() neither succeeds nor fails for a long time.
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    for _ in range(3):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(("127.0.0.1", port))
        fillers.append(f)
    d = os.path.join(work, "connect")
    a = Agent(work, "connect", ["--card", "loopback", "--connect", f"tcp:127.0.0.1:{port}",
                                "--control", os.path.join(d, "c.ctl")])
    try:
        check(a.ready(5), "connect: the agent serves while its peer is silent")
        end = time.monotonic() + 5
        pending = False
        while time.monotonic() < end and not pending:
            pending = syn_sent_to(port)
        check(pending, "connect: its connect is pending (SYN_SENT)")
        worst = 0.0
        for _ in range(5):
            rc, out, secs = ctl_status(os.path.join(d, "c.ctl"), timeout=3)
            check(rc == 0, f"connect: control answers during the pending connect ({rc}: {out.strip()[:60]})")
            worst = max(worst, secs)
        print(f"     slowest ctl status during the pending connect: {worst * 1000:.0f} ms")
        check(syn_sent_to(port), "connect: the connect was still pending throughout")
    finally:
        a.stop()
        for f in fillers:
            f.close()
        lst.close()
    # A peer that accepts and never says a word (a TLS chardev waiting for
    # a ClientHello): named after 5 s, control still answers meanwhile.
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    port = lst.getsockname()[1]
    a = Agent(work, "silent", ["--card", "loopback", "--connect", f"tcp:127.0.0.1:{port}",
                               "--control", os.path.join(d, "s.ctl")])
    try:
        check(a.ready(5), "silent: the agent serves")
        conn, _ = lst.accept()
        rc, _, secs = ctl_status(os.path.join(d, "s.ctl"), timeout=3)
        check(rc == 0, f"silent: control answers while the peer is silent ({secs * 1000:.0f} ms)")
        check(a.wait_log("sent nothing within 5000 ms", 10) and "--tls-creds" in a.log_text(),
              "silent: the agent names the silent peer and the fix")
        conn.close()
    finally:
        a.stop()
        lst.close()


def main():
    if os.geteuid() != 0:
        check(False, "these tests run peers as other uids and need root "
              "(CI runs as root; run: sudo meson test -C build 'netsec sockets')")
        finish()
    work = tempfile.mkdtemp(prefix="ccid-netsec.")
    os.chmod(work, 0o755)
    try:
        for t in (test_modes, test_peercred, test_allow_group, test_stale,
                  test_tcp_loopback, test_accept_backoff, test_connect_async):
            print(f"--- {t.__name__}", flush=True)
            try:
                t(work)
            except Exception as e:      # one broken test, not the rest
                check(False, f"{t.__name__}: {type(e).__name__}: {e}")
    finally:
        subprocess.run(["rm", "-rf", work])
    finish()


if __name__ == "__main__":
    main()
