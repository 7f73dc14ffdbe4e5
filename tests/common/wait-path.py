#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Waits for an event instead of polling with sleeps, for shell tests.

  wait-path.py exists TIMEOUT PATH [PID]
      until PATH exists (inotify on its directory); exit 0, 1 on timeout,
      3 if process PID exits first (a pidfd).
  wait-path.py exit TIMEOUT PID
      until process PID exits (a pidfd, so any process, not only a
      child); exit 0, 1 on timeout.

TIMEOUT in seconds (fractions allowed).  Linux only (inotify, pidfd_open).
"""
import ctypes
import os
import select
import sys
import time

IN_CREATE = 0x100
IN_MOVED_TO = 0x80


def inotify_dir(path):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        sys.exit("wait-path: inotify_init1: %s" % os.strerror(ctypes.get_errno()))
    d = os.path.dirname(os.path.abspath(path)).encode()
    if libc.inotify_add_watch(fd, d, IN_CREATE | IN_MOVED_TO) < 0:
        sys.exit("wait-path: watch %s: %s" % (d.decode(), os.strerror(ctypes.get_errno())))
    return fd


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("exists", "exit"):
        sys.exit(__doc__)
    end = time.monotonic() + float(sys.argv[2])
    if sys.argv[1] == "exit":
        try:
            pfd = os.pidfd_open(int(sys.argv[3]))
        except ProcessLookupError:
            return 0
        return 0 if select.select([pfd], [], [], max(0, end - time.monotonic()))[0] else 1
    path = sys.argv[3]
    fds = [inotify_dir(path)]
    pfd = None
    if len(sys.argv) > 4:
        try:
            pfd = os.pidfd_open(int(sys.argv[4]))
            fds.append(pfd)
        except ProcessLookupError:
            return 3
    while True:
        if os.path.exists(path):
            return 0
        left = end - time.monotonic()
        if left <= 0:
            return 1
        ready = select.select(fds, [], [], left)[0]
        if pfd is not None and pfd in ready and not os.path.exists(path):
            return 3
        if fds[0] in ready:
            try:
                os.read(fds[0], 65536)
            except BlockingIOError:
                pass


sys.exit(main())
