#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""No C file of the agent's process calls the libpcsclite functions that
change its process-wide lists directly: they go through the one lock in
ccid-emu/cards/pcsc_client.c (which says why).

Usage: check_pcsc_calls.py SOURCE_ROOT

The guest-side tools (tests/pcsc/guest, tests/guest/tool) are programs of
their own, one thread each, and may call libpcsclite as they like.
"""
import pathlib
import re
import sys

CALL = re.compile(r"\bSCard(EstablishContext|ReleaseContext|Disconnect)\s*\(")
WRAPPERS = {"ccid-emu/cards/pcsc_client.c", "ccid-emu/cards/ccid_pcsc_client.h"}
OWN_PROCESS = ("tests/pcsc/guest/", "tests/guest/tool/")
TREES = ("ccid-emu", "usbredir-bridge", "host-agent", "tests", "bench")


def main(root):
    root = pathlib.Path(root)
    bad = []
    scanned = 0
    for tree in TREES:
        for path in sorted((root / tree).rglob("*.[ch]")):
            rel = path.relative_to(root).as_posix()
            if rel in WRAPPERS or rel.startswith(OWN_PROCESS):
                continue
            scanned += 1
            text = path.read_text(encoding="utf-8", errors="replace")
            for lineno, line in enumerate(text.splitlines(), 1):
                if CALL.search(line):
                    bad.append(f"{rel}:{lineno}: {line.strip()}")
    if scanned == 0:
        print(f"no C files under {root}: wrong SOURCE_ROOT?")
        return 1
    for b in bad:
        print(f"{b}\n  -> call ccid_pcsc_context_establish / "
              "ccid_pcsc_context_release / ccid_pcsc_card_disconnect "
              "(ccid_pcsc_client.h)")
    print(f"{scanned} C files scanned, {len(bad)} direct calls")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
