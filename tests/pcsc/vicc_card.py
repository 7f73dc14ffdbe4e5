#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A virtual ISO 7816 card for vpcd, the test card of tests/pcsc.

Built on Debian's virtualsmartcard library (package python3-virtualsmartcard,
the library behind `vicc`), with its own connection loop because the stock
one is too slow and too fragile for tests:

- vpcd writes the 2-byte length and the body of each message separately
  without TCP_NODELAY, so with Nagle and delayed ACKs the stock vicc costs
  about 49 ms per APDU.  TCP_NODELAY plus TCP_QUICKACK (re-armed after every
  receive: Linux clears it) bring that to a fraction of a millisecond.
- the stock loop assumes recv() returns whole messages, which is wrong for
  extended APDUs.

Run it with /usr/bin/python3 (Debian's interpreter, where the library and
pycryptodome live).  It puts the library on sys.path and maps the `Crypto`
package the library imports to Debian's `Cryptodome` by itself.

The card (ATR from the library's ISO 7816 OS with extended length):

  MF 3F00 with transparent EFs, selected with 00 A4 00 0C 02 FID:
    1001..1004   64 bytes each, byte[i] = (FID_low * 37 + i * 11) & 0xFF
    2000         65533 bytes, byte[i] = (i * 31 + 7) & 0xFF
  00 B0 P1 P2 Le        READ BINARY (short or extended Le)
  80 10 00 00 04 t t t t   DELAY: print "vicc: DELAY t ms", sleep t ms
                           (big-endian), answer 90 00
  80 12 00 00 00 HH LL     PATTERN: Ne = HHLL bytes of the EF 2000 pattern
                           + 90 00 (Ne <= 65533: vpcd's 16-bit framing
                           caps a response at 65535 bytes)
  80 14 00 00 Lc data      ECHO: data + 90 00 (short or extended Lc)
  80 16 00 00 04           COUNT: number of APDUs executed before this one
                           (4 bytes big-endian) + 90 00
  other                    whatever the library answers (6D00 etc.)

Control messages from vpcd (power on/off, reset, ATR) are handled; power-up
and reset select the MF again, as on a real card.

Options: --port PORT (vpcd's port), --host HOST (default 127.0.0.1),
--connect-timeout S (retry while pcscd starts; default 10).  Prints
"vicc: connected to HOST:PORT" on stdout once connected.  Exits 0 when vpcd
closes the connection.
"""

import argparse
import importlib
import importlib.util
import socket
import struct
import sys
import time


class _CryptoAlias:
    """Import hook: `Crypto.X` is Debian's `Cryptodome.X` (same modules,
    renamed package), without writing a symlink anywhere."""

    def find_spec(self, name, path=None, target=None):
        if name != "Crypto" and not name.startswith("Crypto."):
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        real = importlib.import_module("Cryptodome" + spec.name[6:])
        sys.modules[spec.name] = real
        return real

    def exec_module(self, module):
        pass


def _setup_path():
    """Debian's virtualsmartcard package is not on the default path, and
    its crypto helper imports `Crypto` where Debian ships `Cryptodome`."""
    lib = "/usr/lib/python3/site-packages/virtualsmartcard"
    if lib not in sys.path:
        sys.path.insert(0, lib)
    if importlib.util.find_spec("Crypto") is None:
        if importlib.util.find_spec("Cryptodome") is None:
            sys.exit("vicc: python3-pycryptodome is not installed")
        sys.meta_path.insert(0, _CryptoAlias())


_setup_path()

from virtualsmartcard.ConstantDefinitions import FDB  # noqa: E402
from virtualsmartcard.SmartcardFilesystem import (  # noqa: E402
    MF, TransparentStructureEF)
from virtualsmartcard.SmartcardSAM import SAM  # noqa: E402
from virtualsmartcard.VirtualSmartcard import Iso7816OS  # noqa: E402

CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4
SMALL_FIDS = (0x1001, 0x1002, 0x1003, 0x1004)
BIG_FID = 0x2000
BIG_LEN = 65533
MAX_FRAME = 0xFFFF


def small_file(fid):
    return bytes(((fid & 0xFF) * 37 + i * 11) & 0xFF for i in range(64))


def pattern(n):
    return bytes((i * 31 + 7) & 0xFF for i in range(n))


def parse_body(apdu):
    """(data, ne) of an ISO 7816-4 APDU; ne None when absent."""
    body = apdu[4:]
    if not body:
        return b"", None
    if len(body) == 1:
        return b"", body[0] or 256
    if body[0] != 0:
        lc = body[0]
        data = body[1:1 + lc]
        rest = body[1 + lc:]
        return data, ((rest[0] or 256) if rest else None)
    if len(body) == 3:
        return b"", ((body[1] << 8 | body[2]) or 65536)
    lc = body[1] << 8 | body[2]
    data = body[3:3 + lc]
    rest = body[3 + lc:]
    return data, (((rest[0] << 8 | rest[1]) or 65536) if rest else None)


class TestCard:
    def __init__(self):
        mf = MF(filedescriptor=FDB["DF"])
        sam = SAM(b"1234", b"1234567890")
        sam.set_MF(mf)
        for fid in SMALL_FIDS:
            mf.append(TransparentStructureEF(parent=mf, fid=fid,
                                             filedescriptor=0,
                                             data=small_file(fid)))
        mf.append(TransparentStructureEF(parent=mf, fid=BIG_FID,
                                         filedescriptor=0,
                                         data=pattern(BIG_LEN)))
        self.os = Iso7816OS(mf, sam, extended_length=True)
        self.count = 0

    def atr(self):
        return self.os.getATR()

    def power_up(self):
        self.os.powerUp()

    def reset(self):
        self.os.reset()

    def execute(self, apdu):
        n = self.count
        self.count += 1
        if len(apdu) >= 4 and apdu[0] == 0x80:
            try:
                data, ne = parse_body(apdu)
            except IndexError:
                return b"\x67\x00"
            ins = apdu[1]
            if ins == 0x10:
                if len(data) != 4:
                    return b"\x67\x00"
                # Tests wait for this line to act inside the delay.
                print("vicc: DELAY %d ms" % struct.unpack(">I", data)[0],
                      flush=True)
                time.sleep(struct.unpack(">I", data)[0] / 1000.0)
                return b"\x90\x00"
            if ins == 0x12:
                if ne is None or ne > BIG_LEN:
                    return b"\x67\x00"
                return pattern(ne) + b"\x90\x00"
            if ins == 0x14:
                return data + b"\x90\x00"
            if ins == 0x16:
                return struct.pack(">I", n) + b"\x90\x00"
            return b"\x6D\x00"
        try:
            return self.os.execute(apdu)
        except Exception as e:  # the library has bugs (e.g. SELECT with FCI)
            print("vicc: library error on %s: %r" % (apdu.hex(), e),
                  file=sys.stderr)
            return b"\x6F\x00"


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
        # Linux turns quick-ACK mode off again by itself.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    return bytes(buf)


def send_frame(sock, payload):
    if len(payload) > MAX_FRAME:
        print("vicc: response of %d bytes does not fit vpcd's framing"
              % len(payload), file=sys.stderr)
        payload = b"\x6F\x00"
    sock.sendall(struct.pack(">H", len(payload)) + payload)


def connect(host, port, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection((host, port))
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("vicc: cannot connect to vpcd at %s:%d" % (host, port))
            time.sleep(0.05)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    return sock


def main():
    ap = argparse.ArgumentParser(description="test card for vpcd")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--connect-timeout", type=float, default=10.0)
    args = ap.parse_args()

    card = TestCard()
    sock = connect(args.host, args.port, args.connect_timeout)
    print("vicc: connected to %s:%d" % (args.host, args.port), flush=True)
    while True:
        head = recv_exact(sock, 2)
        if head is None:
            return 0
        size = struct.unpack(">H", head)[0]
        msg = recv_exact(sock, size) if size else b""
        if msg is None:
            return 0
        if size == 1:
            ctrl = msg[0]
            if ctrl == CTRL_ATR:
                send_frame(sock, card.atr())
            elif ctrl == CTRL_ON:
                card.power_up()
            elif ctrl == CTRL_RESET:
                card.reset()
            # CTRL_OFF: nothing to forget beyond what power-up resets.
            continue
        if size == 0:
            continue
        send_frame(sock, card.execute(msg))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
