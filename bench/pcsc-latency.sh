#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Added latency per APDU of the pcsc card backend (shared mode, issue 4).
#
#   bench/pcsc-latency.sh [BUILD_DIR]
#
# Runs the "latency" case of tests/pcsc/test-pcsc (built in BUILD_DIR,
# default build/, which must be configured with -Dtests=true).  That case
# starts a private pcscd with the vpcd driver and the vicc test card
# (tests/pcsc/private-pcscd.sh, tests/pcsc/vicc_card.py) and times N
# SELECT APDUs (PCSC_LATENCY_APDUS, default 5000):
#
#   host app, direct                   SCardTransmit to the card
#   host app, direct in a transaction  the same inside SCardBeginTransaction
#   guest via device + pcsc backend    XfrBlock into the CCID device model,
#                                      the pcsc backend, pcscd, the card,
#                                      and the DataBlock back out
#
# The difference between the last two is what ccid-emu adds.  vicc runs
# with TCP_NODELAY and TCP_QUICKACK: the stock vicc costs ~49 ms per APDU
# (Nagle + delayed ACK) and would hide everything else.
#
# Needs pcscd, vsmartcard-vpcd, python3-virtualsmartcard and
# python3-pycryptodome; exits 77 if they are missing.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}

if [ ! -f "$build/build.ninja" ]; then
	echo "pcsc-latency: $build is not a meson build directory" >&2
	exit 2
fi
meson compile -C "$build" -j 2 tests/pcsc/test-pcsc host-agent/ccid-agent >/dev/null

PCSC_TEST_DIR=$root/tests/pcsc \
CCID_AGENT=$build/host-agent/ccid-agent \
CK_RUN_CASE=latency \
PCSC_LATENCY_APDUS=${PCSC_LATENCY_APDUS:-5000} \
	exec "$build/tests/pcsc/test-pcsc"
