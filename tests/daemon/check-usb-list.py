# SPDX-License-Identifier: LGPL-2.1-or-later
"""Checks a `ccid-agent list --json` snapshot from test-daemon-usb.sh's
guest against the values the guest knew (expect-NAME: KEY=VALUE lines).

usage: check-usb-list.py NAME LIST.json EXPECT.env
Prints what it found; exits 1 naming the first check that failed.
"""
import json
import sys


def fail(msg):
    print(msg)
    sys.exit(1)


name, list_path, env_path = sys.argv[1:4]
with open(list_path, encoding="utf-8") as f:
    entries = json.load(f)
with open(env_path, encoding="utf-8") as f:
    want = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
by_id = {e["id"]: e for e in entries}
pt = by_id.get(want["PT"])
sh = by_id.get(want["SH"])
if pt is None or sh is None:
    fail(f"entries {want['PT']} and {want['SH']} not both in {sorted(by_id)}")
for key in ("id", "label", "mode", "card", "state", "holders", "host_holders", "peer"):
    if key not in pt:
        fail(f"passthrough entry has no '{key}': {pt}")
if pt["mode"] != "passthrough" or pt["card"] != "usb" or sh["mode"] != "shared":
    fail(f"modes: {pt['mode']}/{pt['card']}, {sh['mode']}")
if pt["peer"] != sh["id"] or sh["peer"] != pt["id"]:
    fail(f"peers: {pt['id']} -> '{pt['peer']}', {sh['id']} -> '{sh['peer']}'")
if sh["label"] != "Shared " + sh["label"][7:] or not sh["label"].startswith("Shared "):
    fail(f"shared label {sh['label']!r}")
hosts = [(h["process"], h["pid"]) for h in pt["host_holders"]]

if name == "start":
    if ("pcscd", int(want["PCSCD"])) not in hosts or pt["holders"]:
        fail(f"start: want pcscd[{want['PCSCD']}] as host holder, no VM; got {hosts}, {pt['holders']}")
    if pt["state"] == "unavailable":
        fail(f"start: pcscd alone must not make it unavailable: {pt['reason']}")
elif name in ("attached", "race-free"):
    if pt["holders"] != [want["HOLDER"]] or hosts:
        fail(f"{name}: want holders [{want['HOLDER']}] and no host holder, got {pt['holders']}, {hosts}")
    if sh["holders"]:
        fail(f"{name}: the shared entry has holders {sh['holders']}")
    if sh["state"] != "unavailable" or f"VM '{want['HOLDER']}'" not in sh["reason"]:
        fail(f"{name}: the shared entry must be unavailable naming VM {want['HOLDER']}: {sh['state']}: {sh['reason']}")
elif name == "shared-two":
    if sh["holders"] != want["HOLDERS"].split(",") or pt["holders"]:
        fail(f"shared-two: want shared holders {want['HOLDERS']}, got {sh['holders']}, passthrough {pt['holders']}")
elif name == "holder-process":
    if ("ccid-agent", int(want["OTHER"])) not in hosts:
        fail(f"holder-process: want ccid-agent[{want['OTHER']}], got {hosts}")
    if pt["state"] != "unavailable" or want["OTHER"] not in pt["reason"]:
        fail(f"holder-process: want unavailable naming pid {want['OTHER']}, got {pt['state']}: {pt['reason']}")
else:
    fail(f"unknown snapshot {name}")
print(f"{name}: {pt['id']} ({pt['label']}) {pt['state']} holders={pt['holders']} host={hosts}; "
      f"{sh['id']} ({sh['label']}) {sh['state']} holders={sh['holders']}")
