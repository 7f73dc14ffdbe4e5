#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Count the results of one `meson test` run from its JSON log(s).

Usage: testlog-count.py LOG.json...

meson writes one JSON object per test, one per line, each with a "result"
field.  Prints "PASSED FAILED SKIPPED" on the first line, then one line per
test that did not pass ("project:suite / name RESULT").  A missing log counts as no
test: the caller decides what an exit status without results means.
"""
import json
import sys

PASS = {"OK", "EXPECTEDFAIL"}
SKIP = {"SKIP"}


def main(paths):
    passed = failed = skipped = 0
    bad = []
    for path in paths:
        try:
            f = open(path, encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        with f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    entry = json.loads(line)
                    result = entry["result"]
                except (ValueError, KeyError, TypeError):
                    # A torn log (meson killed mid-write) must not pass.
                    failed += 1
                    bad.append(f"{path}:{lineno} unreadable")
                    continue
                if result in PASS:
                    passed += 1
                elif result in SKIP:
                    skipped += 1
                else:
                    failed += 1
                    # meson's name already carries "project:suite / ".
                    bad.append(f"{entry.get('name', '?')} {result}")
    print(passed, failed, skipped)
    for b in bad:
        print(b)


if __name__ == "__main__":
    main(sys.argv[1:])
