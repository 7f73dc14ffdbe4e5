#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes the hand-made seeds of the fuzz corpus (tests/fuzz/corpus/*/seed-*).

The encodings mirror fuzz_script.c (fuzz_bulk_out, fuzz_control),
fuzz_loopback_apdu.c and fuzz_piv_applet.c.  Re-run after changing either; files the fuzzer
found (hash names) are left alone.

    python3 tests/fuzz/gen_seeds.py
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# --- fuzz_script.c ops --------------------------------------------------
MSG, RAW, ZLP, PULL, DRAIN, INTR, TIMER, INSERT, REMOVE, HWERR, COMPLETE, \
    MODE, ABORT, RESET, REBIND, SETCONF, CONTROL = range(17)

# Index into fz_pc_types[].
T_POWER_ON, T_POWER_OFF, T_SLOT_STATUS, T_XFR, T_GET_PARAMS, T_RESET_PARAMS, \
    T_SET_PARAMS, T_ESCAPE, T_CLOCK, T_T0APDU, T_SECURE, T_MECHANICAL, \
    T_ABORT, T_SET_RATE = range(14)

CAP_MAX = 0xFF          # pull with the largest buffer
CAP_PKT = 0x00          # pull one packet


def u16(v):
    return struct.pack('<H', v)


def config(n_slots=1, extended=True, packet=64, max_msg=None, busy=1, te=122,
           present=0x01):
    """5 config bytes + the slot-presence byte (see fz_config_read)."""
    b0 = (n_slots - 1) | (0x08 if extended else 0)
    psel = {8: 0, 16: 1, 32: 2, 64: 3}[packet]
    b1 = ((busy - 1) & 0x0F) | psel << 4
    mlen = 0
    if max_msg is not None:
        b1 |= 0x40
        mlen = max_msg - 271
    return bytes([b0, b1]) + u16(mlen) + bytes([te, present])


def msg(type_idx, slot=0, seq=0, spec=(0, 0, 0), payload=b'', split=0,
        split_arg=None, zlp=False, drain=True):
    """A structured PC_to_RDR message op with an explicit payload."""
    out = bytes([MSG, type_idx, slot, seq]) + bytes(spec)
    plen = len(payload)
    if plen < 0x80:
        out += bytes([plen])
    else:
        out += bytes([0x80]) + u16(plen)
    f = 0x01 | (split & 3) << 2 | (0x10 if zlp else 0) | (0x20 if drain else 0)
    out += bytes([f]) + payload
    if split in (2, 3):
        out += bytes([split_arg])
    return out


def msg_pattern(type_idx, plen, slot=0, seq=0, spec=(0, 0, 0), split=0,
                split_arg=None, zlp=False, drain=True):
    """Same with a generated payload of plen bytes (long messages)."""
    out = bytes([MSG, type_idx, slot, seq]) + bytes(spec)
    if plen < 0x80:
        out += bytes([plen])
    elif plen < 0x10000:
        out += bytes([0x80]) + u16(plen)
    else:
        out += bytes([0xC1]) + u16(plen - 0x10000)
    f = (split & 3) << 2 | (0x10 if zlp else 0) | (0x20 if drain else 0)
    out += bytes([f])
    if split in (2, 3):
        out += bytes([split_arg])
    return out


def complete(slot=0, status=0, resp_len=2, atr_mode=0):
    st = (status & 7) | (atr_mode & 3) << 3
    if resp_len < 0x80:
        return bytes([COMPLETE, slot, st, resp_len])
    if resp_len >= 0x10000:
        return bytes([COMPLETE, slot, st, 0xC0 | (resp_len - 0x10000)]) + u16(0)
    return bytes([COMPLETE, slot, st, 0x80]) + u16(resp_len)


def mode(slot, m, status=0, resp_len=2):
    if resp_len < 0x80:
        return bytes([MODE, slot, m, status, resp_len])
    if resp_len >= 0x10000:
        return bytes([MODE, slot, m, status, 0xC0 | (resp_len - 0x10000)]) + u16(0)
    return bytes([MODE, slot, m, status, 0x80]) + u16(resp_len)


def pull(capsel=CAP_MAX):
    return bytes([PULL, capsel])


def drain(capsel=CAP_MAX):
    return bytes([DRAIN, capsel])


def timer(ms):
    assert ms % 8 == 0 and ms < 1024
    return bytes([TIMER, ms // 8])


def control(bm, req, value, index, wlength, data=b'', capsel=0):
    """Structured control op (fuzz_control only): types[] index of bm."""
    types = [0x00, 0x80, 0x01, 0x81, 0x02, 0x82, 0x21, 0xA1, 0x22, 0xA2, 0x40, 0xC0]
    sel = types.index(bm) | (0x40 if index > 0xFF else 0)
    out = bytes([CONTROL, sel, req, value & 0xFF, value >> 8, index & 0xFF])
    if index > 0xFF:
        out += bytes([index >> 8])
    out += bytes([wlength, capsel]) + data
    return out


APDU_ECHO = bytes([0x80, 0x01, 0x00, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF])
POWER_ON = msg(T_POWER_ON) + complete(0, 0, atr_mode=0) + drain()


def bulk_seeds():
    s = {}
    s['power-on-xfr'] = config() + POWER_ON + \
        msg(T_XFR, seq=1, payload=APDU_ECHO, drain=False) + \
        complete(0, 0, 6) + pull() + pull()
    # Every command type once, card answering immediately.
    body = config() + mode(0, 1, 0, 2)
    specs = {
        T_POWER_ON: (1, 0, 0), T_SET_PARAMS: (1, 0, 0), T_CLOCK: (1, 0, 0),
        T_T0APDU: (1, 0, 0), T_MECHANICAL: (1, 0, 0),
    }
    payloads = {
        T_XFR: APDU_ECHO,
        T_SET_PARAMS: bytes([0x11, 0x10, 0x00, 0x4D, 0x00, 0x20, 0x00]),
        T_ESCAPE: b'\x01\x02',
        T_SECURE: bytes([0, 0x0F, 0x82, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        T_SET_RATE: bytes(8),
    }
    for t in range(14):
        body += msg(t, seq=t, spec=specs.get(t, (0, 0, 0)), payload=payloads.get(t, b''))
    s['all-commands'] = body
    # SetParameters for T=0 with its 5-byte structure, then GetParameters.
    s['set-params-t0'] = config() + POWER_ON + \
        msg(T_SET_PARAMS, seq=1, spec=(0, 0, 0),
            payload=bytes([0x11, 0x00, 0x00, 0x0A, 0x00])) + \
        msg(T_GET_PARAMS, seq=2) + msg(T_RESET_PARAMS, seq=3)
    # Extended APDU chaining, both directions, with the smallest messages.
    chain = config(max_msg=271) + POWER_ON
    chain += msg_pattern(T_XFR, 261, seq=1, spec=(0, 1, 0))
    chain += msg_pattern(T_XFR, 261, seq=2, spec=(0, 3, 0))
    chain += msg_pattern(T_XFR, 100, seq=3, spec=(0, 2, 0), drain=False)
    chain += complete(0, 0, 700) + drain()
    chain += msg(T_XFR, seq=4, spec=(0, 0x10, 0))
    chain += msg(T_XFR, seq=5, spec=(0, 0x10, 0))
    s['chaining'] = chain
    # A chained command one part too long for the 65544-byte APDU buffer.
    s['chain-overflow'] = config() + POWER_ON + \
        msg_pattern(T_XFR, 65544, seq=1, spec=(0, 1, 0)) + \
        msg_pattern(T_XFR, 10, seq=2, spec=(0, 2, 0)) + \
        msg_pattern(T_XFR, 65540, seq=3, spec=(0, 1, 0)) + \
        msg_pattern(T_XFR, 4, seq=4, spec=(0, 2, 0), drain=False) + \
        complete(0, 0, 2) + drain()
    # Abort of a pending APDU: class request then bulk Abort.
    s['abort'] = config() + POWER_ON + \
        msg(T_XFR, seq=1, payload=APDU_ECHO, drain=False) + \
        bytes([ABORT, 0, 2, 0x06]) + complete(0, 0, 6) + drain()
    s['abort-bulk-first'] = config() + POWER_ON + \
        msg(T_XFR, seq=1, payload=APDU_ECHO, drain=False) + \
        bytes([ABORT, 0, 2, 0x05]) + drain()
    # Multi-packet command in packet-sized transfers, ZLP-terminated.
    s['multi-packet'] = config() + POWER_ON + \
        msg_pattern(T_XFR, 246, seq=1, split=1, zlp=True, drain=False) + \
        complete(0, 0, 128 - 10 + 64) + pull(CAP_PKT) + pull(CAP_PKT) + \
        pull(CAP_PKT) + pull(CAP_PKT) + pull(CAP_PKT)
    # Odd-sized transfers: the first short one ends the message early.
    s['split-odd'] = config(packet=16) + POWER_ON + \
        msg_pattern(T_XFR, 100, seq=1, split=2, split_arg=6) + drain(0x01)
    # Time extension while the card thinks, then the answer.
    s['time-extension'] = config(te=122) + POWER_ON + \
        msg(T_XFR, seq=1, payload=APDU_ECHO, drain=False) + \
        timer(600) + pull() + timer(600) + pull() + timer(1000) + \
        complete(0, 0, 6) + drain()
    # Card events around an APDU in flight.
    s['card-events'] = config() + POWER_ON + \
        msg(T_XFR, seq=1, payload=APDU_ECHO, drain=False) + \
        bytes([REMOVE, 0]) + drain() + bytes([INTR, 8, INSERT, 0, INTR, 8]) + \
        POWER_ON + msg(T_XFR, seq=2, payload=APDU_ECHO, drain=False) + \
        bytes([HWERR, 0, INTR, 8]) + drain() + \
        bytes([REBIND, 0, 0x02, INTR, 8]) + POWER_ON + \
        bytes([RESET, 0x00, INTR, 8]) + drain()
    # Backend errors and failure to start.
    s['backend-errors'] = config() + msg(T_POWER_ON) + complete(0, 6) + drain() + \
        msg(T_POWER_ON, seq=1) + complete(0, 0, atr_mode=3) + drain() + \
        POWER_ON + msg(T_XFR, seq=2, payload=APDU_ECHO, drain=False) + \
        complete(0, 7) + drain() + mode(0, 2) + \
        msg(T_XFR, seq=3, payload=APDU_ECHO) + msg(T_POWER_ON, seq=4)
    # The backend finds the card gone while powering on / transmitting.
    s['backend-enocard'] = config() + bytes([INTR, 8]) + msg(T_POWER_ON) + \
        complete(0, 5) + drain() + bytes([INTR, 8, INSERT, 0, INTR, 8]) + \
        POWER_ON + msg(T_XFR, seq=2, payload=APDU_ECHO, drain=False) + \
        complete(0, 5) + drain() + bytes([INTR, 8])
    # Four slots, two may be busy.
    multi = config(n_slots=4, busy=2, present=0x0F)
    for i in range(4):
        multi += msg(T_POWER_ON, slot=i, seq=i, drain=False)
    for i in range(4):
        multi += complete(i, 0)
    multi += drain() + bytes([INTR, 8])
    for i in range(4):
        multi += msg(T_XFR, slot=i, seq=10 + i, payload=APDU_ECHO, drain=False)
    for i in range(4):
        multi += complete(i, 0, 6)
    s['multi-slot'] = multi + drain()
    # Largest response, pulled in small pieces, then immediately again.
    s['max-response'] = config() + POWER_ON + \
        msg(T_XFR, seq=1, payload=APDU_ECHO, drain=False) + \
        complete(0, 0, 65538) + pull(0x3F) + pull(0x3F) + drain(0x00) + \
        mode(0, 1, 0, 65538) + msg(T_XFR, seq=2, payload=APDU_ECHO)
    # Short APDU level: a response that cannot fit is an overrun.
    s['short-level-overrun'] = config(extended=False, max_msg=271) + POWER_ON + \
        msg(T_XFR, seq=1, payload=APDU_ECHO, drain=False) + \
        complete(0, 0, 300) + drain()
    # Bad headers: wrong slot, dwLength lies, truncated and raw junk.
    s['bad-headers'] = config() + \
        bytes([MSG, T_SLOT_STATUS, 0xF0, 5, 0, 0, 0, 0, 0, 0x20]) + \
        bytes([MSG, T_XFR, 0, 1, 0, 0, 0, 4, 0x23, 0xFF, 0xFF, 0, 0, 1, 2, 3, 4]) + \
        bytes([RAW, 5, 0x6F, 1, 2, 3, 4]) + bytes([ZLP]) + drain() + \
        bytes([RAW, 10, 0x99, 0, 0, 0, 0, 0, 7, 0, 0, 0]) + drain()
    # Replies nobody reads pile up past the queue.
    flood = config() + mode(0, 1)
    for i in range(40):
        flood += msg(T_SLOT_STATUS, seq=i, drain=False)
    s['queue-flood'] = flood + drain()
    return s


def control_seeds():
    s = {}
    base = config()
    c = base
    c += control(0x80, 6, 0x0100, 0, 18)
    c += control(0x80, 6, 0x0200, 0, 9)
    c += control(0x80, 6, 0x0200, 0, 0xFF)
    for i in range(4):
        c += control(0x80, 6, 0x0300 | i, 0x0409, 0xFF)
    c += control(0x81, 6, 0x2100, 0, 54)
    c += control(0x80, 0, 0, 0, 2) + control(0x81, 0, 0, 0, 2) + \
        control(0x82, 0, 0, 0x81, 2)
    c += control(0x80, 8, 0, 0, 1) + control(0x81, 10, 0, 0, 1)
    c += control(0x01, 11, 0, 0, 0) + control(0x00, 5, 7, 0, 0)
    c += control(0xA1, 2, 0, 0, 4) + control(0xA1, 3, 0, 0, 4)
    c += control(0x21, 1, 0x0100, 0, 0)
    s['standard-requests'] = c
    # Halts on each endpoint with traffic in between.
    h = base + bytes(0)
    h += control(0x02, 3, 0, 0x81, 0) + msg(T_SLOT_STATUS) + pull()
    h += control(0x02, 1, 0, 0x81, 0) + drain()
    h += control(0x02, 3, 0, 0x02, 0) + msg(T_SLOT_STATUS, seq=1)
    h += control(0x02, 1, 0, 0x02, 0) + msg(T_SLOT_STATUS, seq=2)
    h += control(0x02, 3, 0, 0x83, 0) + bytes([INSERT, 0, INTR, 8])
    h += control(0x02, 1, 0, 0x83, 0) + bytes([INTR, 8])
    h += control(0x00, 9, 0, 0, 0) + control(0x00, 9, 1, 0, 0) + drain()
    s['halts'] = h
    # Mid-message halt and SET_CONFIGURATION(0) with a reply half read.
    m = base + POWER_ON + msg(T_XFR, seq=1, payload=APDU_ECHO, drain=False) + \
        complete(0, 0, 300) + pull(CAP_PKT) + control(0x02, 3, 0, 0x81, 0) + \
        pull(CAP_PKT) + control(0x02, 1, 0, 0x81, 0) + pull(CAP_PKT) + \
        control(0x00, 9, 0, 0, 0) + pull() + control(0x00, 9, 1, 0, 0)
    s['halt-mid-message'] = m
    # Remote wake-up on a device that offers it.
    w = bytes([0x18]) + config()[1:] + control(0x00, 3, 1, 0, 0) + \
        control(0x80, 0, 0, 0, 2) + control(0x00, 1, 1, 0, 0)
    s['remote-wakeup'] = w
    # Raw invalid configs (b0 bit 7): ccid_dev_new must reject with a reason.
    s['bad-config-slots'] = bytes([0x80, 0x00]) + u16(200) + bytes([0])
    s['bad-config-level'] = bytes([0x80, 0x11]) + u16(200) + bytes([0]) + \
        struct.pack('<I', 0x00060000) + bytes([64, 4]) + u16(500)
    s['raw-config-valid'] = bytes([0x80, 0x11]) + u16(32777) + bytes([0x04]) + \
        struct.pack('<I', 0x00040000) + bytes([8, 1]) + u16(10) + bytes([1])
    # Product strings from the input: valid UTF-8 (2-, 3-, 4-byte forms)
    # and the forms a strict decoder refuses (overlong, surrogate, > U+10FFFF).
    def raw_cfg(product):
        return bytes([0x80, 0x11]) + u16(32777) + bytes([0x08]) + \
            struct.pack('<I', 0x00040000) + bytes([64, 4]) + u16(500) + \
            bytes([len(product)]) + product + bytes([1])
    s['string-utf8'] = raw_cfg('Lecteur \u00e9 \u20ac \U0001F511'.encode())
    s['string-overlong'] = raw_cfg(b'\xc0\xaf')
    s['string-surrogate'] = raw_cfg(b'\xed\xa0\x80')
    s['string-too-big'] = raw_cfg(b'\xf4\x90\x80\x80')
    s['string-127-units'] = raw_cfg(b'x' * 127)
    # The bulk seeds are valid control-flavour scripts too.
    for k in ('power-on-xfr', 'chaining', 'abort', 'card-events'):
        s[k] = bulk_seeds()[k]
    return s


def loopback_seeds():
    def raw(apdu):
        assert len(apdu) < 0xE0
        return bytes([0, len(apdu)]) + apdu

    def build(cla_i, ins_i, csel, p1=0, p2=0, nc=None, ne=None, delay=None, data=b''):
        out = bytes([1, cla_i | ins_i << 3, csel, p1, p2])
        if csel & 1:
            out += u16(nc) if csel & 4 else bytes([nc])
        if csel & 2:
            out += u16(ne)
        if delay is not None:
            out += struct.pack('<I', delay) if csel & 0x10 else bytes([delay])
        elif csel & 0x20:
            out += data
        return out

    s = {}
    std = bytes([0x01]) + u16(0)          # timer on, default config
    s['echo-short'] = std + raw(APDU_ECHO)
    s['apdu-cases'] = std + raw(bytes([0, 0xA4, 4, 0])) + \
        raw(bytes([0x80, 2, 0, 0, 0x10])) + raw(bytes([0x80, 2, 0, 0, 0])) + \
        raw(bytes([0x80, 1, 0, 0, 2, 1, 2, 0])) + \
        raw(bytes([0x80, 2, 0, 0, 0, 0x01, 0x00])) + \
        raw(bytes([0x80, 1, 0, 0, 0, 0, 3, 1, 2, 3])) + \
        raw(bytes([0x80, 1, 0, 0, 0, 0, 3, 1, 2, 3, 0, 0])) + \
        raw(bytes([0x12, 0x34, 0, 0])) + raw(bytes([0x80, 0x99, 0, 0])) + \
        raw(bytes([0, 0xB0, 0, 0]))
    s['malformed'] = std + raw(b'\x80') + raw(bytes([0x80, 1, 0, 0, 5, 1])) + \
        raw(bytes([0x80, 1, 0, 0, 0, 0])) + raw(bytes([0x80, 1, 0, 0, 0, 0, 0, 1])) + \
        raw(bytes([0x80, 3, 0, 0, 2, 0, 1])) + \
        raw(bytes([0x80, 1, 0, 0, 2, 1, 2, 0, 0])) + \
        raw(bytes([0x80, 1, 0, 0, 0, 0, 2, 1, 2, 0]))
    # Builder: ECHO extended 3E, PATTERN 2E with Ne = 65536, DELAY, 4E.
    s['built-extended'] = std + build(0, 0, 0x85, nc=1000) + \
        build(0, 1, 0x82, ne=0) + build(0, 2, 0x01, nc=4, delay=100) + \
        build(0, 3, 0x03, nc=4, ne=300, delay=125) + build(0, 0, 0x87, nc=70, ne=0)
    # Small messages force chaining both ways.
    s['chained'] = bytes([0x05]) + u16(0) + build(0, 0, 0x85, nc=2000) + \
        build(0, 1, 0x82, ne=0)
    # Answers of exactly one message body, and one byte more (271-byte
    # messages: 261-byte chunks; ECHO of 259 bytes answers 261).
    s['chunk-boundary'] = bytes([0x05]) + u16(0) + build(0, 0, 0x85, nc=259) + \
        build(0, 0, 0x85, nc=260) + build(0, 1, 0x82, ne=522)
    s['short-level'] = bytes([0x07]) + u16(0) + build(0, 1, 0x02, ne=255) + \
        build(0, 1, 0x82, ne=1000) + raw(APDU_ECHO)
    s['power-abort-reinsert'] = std + raw(APDU_ECHO) + bytes([3]) + raw(APDU_ECHO) + \
        bytes([4, 0x01]) + raw(APDU_ECHO) + bytes([5]) + raw(APDU_ECHO)
    s['small-pulls'] = bytes([0x21]) + u16(0x1000) + build(0, 1, 0x82, ne=500) + \
        raw(APDU_ECHO)
    return s


def piv_seeds():
    """fuzz_piv_applet.c: flags byte, then { u16 big-endian length, APDU }."""
    def rec(hexstr):
        a = bytes.fromhex(hexstr.replace(' ', ''))
        return struct.pack('>H', len(a)) + a
    pin = '313233343536FFFF'
    s = {}
    s['select-getdata'] = bytes([0]) + rec('00A4040005A000000308') + \
        rec('00CB3FFF055C035FC10200') + rec('00CB3FFF035C017E00') + \
        rec('00FD000000') + rec('00F8000000') + rec('00F7008000')
    s['verify-change-unblock'] = bytes([0]) + rec('00200080') + \
        rec('0020008008313233343537FFFF') * 3 + \
        rec('002C008010' + '3132333435363738' + pin) + \
        rec('0024008010' + pin + '363534333231FFFF') + rec('0020FF80')
    s['put-chain-getresponse'] = bytes([1]) + \
        rec('10DB3FFF0A5C035FC10553820BB8' + '00' * 0) + \
        rec('00DB3FFF0E5C035FC1055308' + 'AB' * 8) + \
        rec('00CB3FFF055C035FC10510') + rec('00C0000000')
    s['keygen-ec-sign-ecdh'] = bytes([3]) + \
        rec('004700 9C 05 AC03800111'.replace(' ', '')) + \
        rec('0020008008' + pin) + \
        rec('0087119C' + '26' + '7C24 8200 8120' + '11' * 32) + \
        rec('004700 9D 05 AC03800114'.replace(' ', '')) + \
        rec('0087149D' + '66' + '7C64 8200 8561 04' + '22' * 96)
    s['mgmt-witness'] = bytes([0]) + rec('0087039B047C028000') + \
        rec('0087039B0C7C0A80080102030405060708') + \
        rec('0087039B047C028100') + rec('0087039B0C7C0A82080102030405060708')
    s['yubico-admin'] = bytes([3]) + \
        rec('00FFFFFF1B039B18' + '0102030405060708' * 3) + \
        rec('00FA0506') + rec('00FB0000')
    return s


def main():
    for target, seeds in (('fuzz_bulk_out', bulk_seeds()),
                          ('fuzz_control', control_seeds()),
                          ('fuzz_loopback_apdu', loopback_seeds()),
                          ('fuzz_piv_applet', piv_seeds())):
        d = os.path.join(HERE, 'corpus', target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, 'seed-' + name), 'wb') as f:
                f.write(data)
        print(f'{target}: {len(seeds)} seeds', file=sys.stderr)


if __name__ == '__main__':
    main()
