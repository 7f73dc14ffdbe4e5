#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Count the results of one `meson test` run from its JSON log(s).

Usage: testlog-count.py [--strict-skips ALLOWLIST] LOG.json...

meson writes one JSON object per test, one per line, each with a "result"
field.  Prints "PASSED FAILED SKIPPED" on the first line, then one line per
test that did not pass ("project:suite / name RESULT"), each followed by up
to MAX_WHY lines of why, indented with "    why: ": Check's failure lines
(FILE:LINE:F:case:...) when there are any, else the last lines the test
printed.  CI often shows only the tail of a run, where the summary is.  A
missing log counts as no test: the caller decides what an exit status
without results means.

With --strict-skips (what ./bootstrap does under CI=true) a skipped test
counts as failed, with the reason it printed, unless ALLOWLIST names it:
a test that cannot run proves nothing, and "0 failed" must not hide it.
ALLOWLIST has one test a line, "suite / name: why it may skip", '#'
comments; the project part of meson's name is left out.
"""
import json
import re
import sys

MAX_WHY = 6
MAX_WHY_CHARS = 240
# Check: "../tests/x.c:662:F:idle:test_idle_release:0: message"
CHECK_FAILURE = re.compile(r"^\S+:\d+:[FE]:")


def why_lines(output):
    lines = [ln.rstrip() for ln in (output or "").splitlines() if ln.strip()]
    picked = [ln for ln in lines if CHECK_FAILURE.match(ln)]
    if not picked:
        picked = lines[-MAX_WHY:]
    out = []
    for ln in picked[:MAX_WHY]:
        if len(ln) > MAX_WHY_CHARS:
            ln = ln[:MAX_WHY_CHARS] + "..."
        out.append("    why: " + ln)
    return out

PASS = {"OK", "EXPECTEDFAIL"}
SKIP = {"SKIP"}


def read_allowlist(path):
    """{"suite / name": reason}; a line without a reason is an error."""
    allowed = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, sep, reason = line.partition(":")
            if not sep or not reason.strip() or " / " not in name:
                sys.exit(f"{path}:{lineno}: want 'suite / name: reason', "
                         f"got {line!r}")
            allowed[name.strip()] = reason.strip()
    return allowed


def short_name(name):
    """'project:suite / name' -> 'suite / name'."""
    head, sep, tail = name.partition(" / ")
    return head.rsplit(":", 1)[-1] + sep + tail


def main(argv):
    allowed = None
    if argv[:1] == ["--strict-skips"]:
        if len(argv) < 2:
            sys.exit("--strict-skips needs the allow-list file")
        allowed = read_allowlist(argv[1])
        argv = argv[2:]
    paths = argv
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
                elif result in SKIP and (allowed is None or
                                         short_name(entry.get("name", "?"))
                                         in allowed):
                    skipped += 1
                elif result in SKIP:
                    failed += 1
                    bad.append(f"{entry.get('name', '?')} SKIP (not on the "
                               f"allow-list: a test that cannot run fails)")
                    bad.extend(why_lines(entry.get("stdout")))
                else:
                    failed += 1
                    # meson's name already carries "project:suite / ".
                    bad.append(f"{entry.get('name', '?')} {result}")
                    bad.extend(why_lines(entry.get("stdout")))
    print(passed, failed, skipped)
    for b in bad:
        print(b)


if __name__ == "__main__":
    main(sys.argv[1:])
