#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The one-line libccid edit for the project's own USB ID is written twice:
in docs/usb-identity.md, for users, and in the guest kit's lib.sh, where
the guest test runs it.  They must be the same line, or the test proves a
command nobody is told to run.

Usage: check_own_id_edit.py SOURCE_ROOT
"""
import re
import sys


def doc_line(path):
    text = open(path, encoding="utf-8").read()
    m = re.search(r"<!-- own-id-edit:[^>]*-->\s*```sh\n(.*?)\n```", text, re.S)
    if not m:
        sys.exit(f"{path}: no own-id-edit block (the marker comment, then a sh code block)")
    lines = m.group(1).strip().splitlines()
    if len(lines) != 1:
        sys.exit(f"{path}: the own-id-edit block must be one line, has {len(lines)}")
    return lines[0].strip()


def kit_line(path):
    text = open(path, encoding="utf-8").read()
    m = re.search(r"# BEGIN own-id-edit\n(.*?)\n\s*# END own-id-edit", text, re.S)
    if not m:
        sys.exit(f"{path}: no '# BEGIN own-id-edit' ... '# END own-id-edit' block")
    lines = m.group(1).strip().splitlines()
    if len(lines) != 1:
        sys.exit(f"{path}: the own-id-edit block must be one line, has {len(lines)}")
    return lines[0].strip()


def main():
    root = sys.argv[1]
    doc = doc_line(f"{root}/docs/usb-identity.md")
    kit = kit_line(f"{root}/tests/guest/rootfs/usr/lib/ccid-guest/lib.sh")
    if doc != kit:
        print("docs/usb-identity.md and lib.sh differ:")
        print(f"  doc: {doc}")
        print(f"  kit: {kit}")
        return 1
    for needle in ("0x1209", "0xCC1D", "/etc/libccid_Info.plist"):
        if needle not in doc:
            print(f"the edit does not mention {needle}: {doc}")
            return 1
    print("ok: docs/usb-identity.md and lib.sh run the same edit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
