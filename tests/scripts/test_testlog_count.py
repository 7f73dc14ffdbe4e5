#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""scripts/testlog-count.py on hand-made meson JSON logs.

The counts decide CI's "N passed, N failed" line, and the "why" lines are
often all a reader of a failed CI run gets to see, so both are pinned here.
"""
import json
import os
import subprocess
import sys
import tempfile

SCRIPT = sys.argv[1]


def run(entries, raw_tail="", args=()):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        for e in entries:
            f.write(json.dumps(e) + "\n")
        f.write(raw_tail)
        path = f.name
    try:
        out = subprocess.run([sys.executable, SCRIPT, *args, path], check=True,
                             capture_output=True, text=True).stdout
    finally:
        os.unlink(path)
    return out.splitlines()


def expect(got, want, what):
    if got != want:
        print(f"FAIL {what}:\n  got  {got!r}\n  want {want!r}")
        sys.exit(1)
    print(f"ok {what}")


# A Check failure: only the FILE:LINE:F: line is the why, not the chatter.
check_out = ("Running suite(s): pcsc\nidle release: host waited 401 ms\n"
             "92%: Checks: 14, Failures: 1, Errors: 0\n"
             "../tests/pcsc/test_pcsc.c:662:F:idle:test_idle_release:0: "
             "idle=0: host waited 200635 us\n")
lines = run([
    {"name": "p:unit / a", "result": "OK", "stdout": "fine\n"},
    {"name": "p:unit / b", "result": "SKIP", "stdout": ""},
    {"name": "p:integration / pcsc", "result": "FAIL", "stdout": check_out},
    {"name": "p:unit / c", "result": "EXPECTEDFAIL", "stdout": ""},
])
expect(lines, [
    "2 1 1",
    "p:integration / pcsc FAIL",
    "    why: ../tests/pcsc/test_pcsc.c:662:F:idle:test_idle_release:0: "
    "idle=0: host waited 200635 us",
], "Check failure line picked out")

# No Check line: the last six non-empty lines, long ones cut.
script_out = "\n".join(f"step {i}" for i in range(10)) + "\n\n" + "x" * 300
lines = run([{"name": "p:guest / boot", "result": "TIMEOUT",
              "stdout": script_out}])
expect(lines[:2], ["0 1 0", "p:guest / boot TIMEOUT"], "timeout counted")
expect(lines[2:], ["    why: step 5", "    why: step 6", "    why: step 7",
                   "    why: step 8", "    why: step 9",
                   "    why: " + "x" * 240 + "..."], "tail of the output")

# A torn log line fails; a missing log counts nothing.
lines = run([{"name": "p:unit / a", "result": "OK"}], raw_tail='{"name": ')
expect(lines[0], "1 1 0", "torn line counted as a failure")
out = subprocess.run([sys.executable, SCRIPT, "/nonexistent/log.json"],
                     check=True, capture_output=True, text=True).stdout
expect(out, "0 0 0\n", "missing log")

# --strict-skips: a skip fails, with what the test said, unless the
# allow-list names it (with a reason).
with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as al:
    al.write("# tests that may skip\n"
             "unit / allowed: needs a GPU, which CI has not  # comment\n")
    allow = al.name
skips = [
    {"name": "p:unit / allowed", "result": "SKIP", "stdout": "no GPU\n"},
    {"name": "p:guest / nss card", "result": "SKIP",
     "stdout": "test-nss-guest: no qemu-system-x86_64: skipped\n"},
    {"name": "p:unit / ok", "result": "OK", "stdout": ""},
]
lines = run(skips, args=("--strict-skips", allow))
expect(lines, [
    "1 1 1",
    "p:guest / nss card SKIP (not on the allow-list: a test that cannot run fails)",
    "    why: test-nss-guest: no qemu-system-x86_64: skipped",
], "strict: unlisted skip fails, listed skip counts as skipped")
expect(run(skips)[0], "1 0 2", "not strict: skips are skips")
with open(allow, "w") as al:
    al.write("unit / allowed\n")
bad = subprocess.run([sys.executable, SCRIPT, "--strict-skips", allow,
                      "/nonexistent/log.json"], capture_output=True, text=True)
os.unlink(allow)
expect((bad.returncode != 0, "want 'suite / name: reason'" in bad.stderr),
       (True, True), "allow-list entry without a reason refused")
