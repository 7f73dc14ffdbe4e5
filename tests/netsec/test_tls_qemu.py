# SPDX-License-Identifier: LGPL-2.1-or-later
"""TLS between `ccid-agent serve` and real QEMU usb-redir chardevs with
tls-creds-x509 (issue 13, item 2), without booting a guest: QEMU's
firmware runs, its usb-redir device exchanges hellos with the agent, and
the agent reports "reader attached to the VM".

Both directions succeed with good certificates; a wrong CA, an expired
certificate, a missing client certificate, a host name the certificate does
not name, and plain TCP against TLS (both ways round) are refused, with
the agent naming the cause and the fix, and QEMU's own trace events (or
its start-up error) showing its side.  Certificates come from
make-certs.sh (certtool)."""

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netsec_lib import Agent, check, finish, free_port  # noqa: E402

QEMU = os.environ.get("QEMU", "qemu-system-x86_64")
TRACES = ["qio_channel_tls_handshake_fail", "qio_channel_tls_credentials_deny",
          "qio_channel_tls_credentials_allow"]


class Qemu:
    def __init__(self, work, name, chardev, creds=None, endpoint=None,
                 verify=False, sanity=True):
        self.log_path = os.path.join(work, f"qemu-{name}.log")
        args = [QEMU, "-M", "pc", "-nodefaults", "-display", "none",
                "-accel", "tcg"]
        for t in TRACES:
            args += ["-trace", t]
        if creds is not None:
            obj = f"tls-creds-x509,id=tls0,dir={creds},endpoint={endpoint}"
            if verify:
                obj += ",verify-peer=on"
            if not sanity:
                # QEMU checks its own certificate at start-up; to see the
                # peer refuse a bad one, QEMU must be made to use it.
                obj += ",sanity-check=off"
            args += ["-object", obj]
            chardev += ",tls-creds=tls0"
        args += ["-chardev", chardev, "-device", "qemu-xhci",
                 "-device", "usb-redir,chardev=c0,id=r0"]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_text(self, needle, timeout=10.0):
        import select
        end = time.monotonic() + timeout
        while needle not in self.text():
            if time.monotonic() >= end or self.proc.poll() is not None:
                return needle in self.text()
            select.select([], [], [], 0.02)
        return True

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def agent_listen(work, name, port, creds):
    args = ["--card", "loopback", "--listen", f"tcp:127.0.0.1:{port}",
            "--control", os.path.join(work, name, "a.ctl")]
    if creds:
        args += ["--tls-creds", creds]
    a = Agent(work, name, args)
    check(a.ready(), f"{name}: agent listens")
    return a


def agent_connect(work, name, port, creds, host="127.0.0.1"):
    args = ["--card", "loopback", "--connect", f"tcp:{host}:{port}",
            "--control", os.path.join(work, name, "a.ctl")]
    if creds:
        args += ["--tls-creds", creds]
    a = Agent(work, name, args)
    check(a.ready(), f"{name}: agent runs")
    return a


def case(work, name, agent_mode, agent_creds, qemu_creds, expect_agent,
         expect_qemu, attached=False, sanity=True, host="127.0.0.1"):
    """One agent and one QEMU; waits for the agent's line and QEMU's."""
    port = free_port()
    c = os.path.join(work, "certs")
    ac = os.path.join(c, agent_creds) if agent_creds else None
    qc = os.path.join(c, qemu_creds) if qemu_creds else None
    t0 = time.monotonic()
    if agent_mode == "listen":
        a = agent_listen(work, name, port, ac)
        q = Qemu(work, name, f"socket,id=c0,host={host},port={port}",
                 qc, "client", sanity=sanity)
    else:
        q = Qemu(work, name, f"socket,id=c0,host={host},port={port},server=on,wait=off",
                 qc, "server", verify=True, sanity=sanity)
        a = agent_connect(work, name, port, ac, host)
    try:
        ok = a.wait_log(expect_agent, 20)
        dt = time.monotonic() - t0
        check(ok, f"{name}: agent says '{expect_agent}' ({dt:.2f} s)"
              + ("" if ok else f"; agent log: {a.log_text().strip()[-400:]}"))
        if attached is not None:
            seen = "reader attached to the VM" in a.log_text()
            check(seen == attached, f"{name}: reader {'is' if attached else 'is not'} attached")
        if expect_qemu:
            ok = q.wait_text(expect_qemu, 10)
            check(ok, f"{name}: QEMU shows '{expect_qemu}'"
                  + ("" if ok else f"; QEMU: {q.text().strip()[-300:]}"))
        return dt
    finally:
        q.stop()
        a.stop()


def main():
    work = tempfile.mkdtemp(prefix="ccid-netsec-tls.")
    try:
        r = subprocess.run([os.environ.get("MAKE_CERTS", "make-certs.sh"),
                            os.path.join(work, "certs")], capture_output=True, text=True)
        if not check(r.returncode == 0, f"certificates made with certtool ({r.stderr.strip()[-200:]})"):
            finish()
        # Both directions, good certificates: the usbredir session runs.
        dt = case(work, "agent-server", "listen", "server", "client",
                  "reader attached to the VM (tcp:127.0.0.1:", "qio_channel_tls_credentials_allow",
                  attached=True)
        print(f"     agent as TLS server: QEMU start to reader attached {dt:.2f} s")
        dt = case(work, "qemu-server", "connect", "client", "server",
                  "reader attached to the VM (tcp:127.0.0.1:", "qio_channel_tls_credentials_allow",
                  attached=True)
        print(f"     agent as TLS client: QEMU start to reader attached {dt:.2f} s")
        with open(os.path.join(work, "agent-agent-server.log")) as f:
            check("CN=client" in f.read(), "agent-server: the peer is named by its certificate")

        # Refusals when the agent is the server.
        case(work, "client-wrong-ca", "listen", "server", "client-otherca",
             "its client certificate is not signed by the CA in", None, sanity=False)
        case(work, "client-expired", "listen", "server", "client-expired",
             "its client certificate has expired", None, sanity=False)
        case(work, "client-no-cert", "listen", "server", "client-nocert",
             "it sent no client certificate", None)
        case(work, "server-wrong-ca", "listen", "server-otherca", "client",
             "it probably refused our certificate", "qio_channel_tls_credentials_deny",
             sanity=True)
        case(work, "server-expired", "listen", "server-expired", "client",
             "it probably refused our certificate", "qio_channel_tls_credentials_deny")
        case(work, "plain-qemu-to-tls", "listen", "server", None,
             "is the peer using plain TCP", None)
        case(work, "tls-qemu-to-plain", "listen", None, "client",
             "speaks TLS and this socket is plain: add --tls-creds", "qio_channel_tls_handshake_fail")

        # Refusals when QEMU is the server (verify-peer=on).
        case(work, "qemu-server-wrong-ca", "connect", "client", "server-otherca",
             "its server certificate is not signed by the CA in", "qio_channel_tls_handshake_fail",
             sanity=False)
        case(work, "qemu-server-expired", "connect", "client", "server-expired",
             "its server certificate has expired", "qio_channel_tls_handshake_fail",
             sanity=False)
        case(work, "qemu-server-wrong-host", "connect", "client", "server",
             "does not name the host 127.0.0.2", "qio_channel_tls_handshake_fail",
             host="127.0.0.2")
        case(work, "agent-client-wrong-ca", "connect", "client-otherca", "server",
             "it probably refused our certificate", "qio_channel_tls_credentials_deny")
        case(work, "agent-client-expired", "connect", "client-expired", "server",
             "it probably refused our certificate", "qio_channel_tls_credentials_deny")
        case(work, "agent-client-no-cert", "connect", "client-nocert", "server",
             "it probably refused our certificate", "qio_channel_tls_credentials_deny")
        case(work, "plain-agent-to-tls", "connect", None, "server",
             "add --tls-creds DIR", "qio_channel_tls_handshake_fail")
        case(work, "tls-agent-to-plain", "connect", "client", None,
             "is the peer using plain TCP", None)

        # QEMU's own side of a bad certificate: it refuses to start.
        q = Qemu(work, "qemu-own-expired", "socket,id=c0,host=127.0.0.1,port=1",
                 os.path.join(work, "certs", "client-expired"), "client")
        code = q.proc.wait(30)
        q.stop()
        check(code != 0 and "has expired" in q.text(),
              f"QEMU refuses its own expired certificate: {q.text().strip()[-160:]}")
    finally:
        subprocess.run(["rm", "-rf", work])
    finish()


if __name__ == "__main__":
    main()
