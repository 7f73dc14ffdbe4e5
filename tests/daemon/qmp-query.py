#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Test helper: the device ids QEMU has under /machine/peripheral, read
through a second QMP monitor of the VM (the daemon holds the first).

Usage: qmp-query.py SOCKET  -> one device id per line
"""
import json
import socket
import sys

s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
f = s.makefile("rw")


def reply():
    while True:
        m = json.loads(f.readline())
        if "event" not in m:
            return m


reply()                                   # greeting
s.sendall(b'{"execute": "qmp_capabilities"}\n')
reply()
s.sendall(b'{"execute": "qom-list", "arguments": {"path": "/machine/peripheral"}}\n')
r = reply()
for p in r["return"]:
    if p["type"].startswith("child<"):
        print(p["name"])
