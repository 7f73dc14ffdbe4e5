#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Host-side check of ccid-guest-tool's APDU encoding and argument
# checking (its `encode` command needs no PC/SC): exact bytes of short and
# extended PATTERN/ECHO/DELAYED PATTERN APDUs at the length boundaries,
# the loopback data pattern byte[i] = (i*31+7) & 0xFF, and refusal of
# bad specs.
#
# Usage: test-tool-encode.sh PATH_TO_ccid-guest-tool
set -euo pipefail
export LC_ALL=C

TOOL=${1:?usage: test-tool-encode.sh PATH_TO_ccid-guest-tool}
fails=0

# The loopback pattern, n bytes, as uppercase hex.
pattern_hex() {
	awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "%02X", (i * 31 + 7) % 256 }'
}

expect() {
	local spec=$1 want=$2 got
	got=$("$TOOL" encode "$spec" 2>&1) || true
	if [[ $got == "$want" ]]; then
		echo "ok   $spec"
	else
		echo "FAIL $spec: got ${got:0:80}, want ${want:0:80}"
		fails=$((fails + 1))
	fi
}

refuse() {
	local spec=$1 rc=0
	"$TOOL" encode "$spec" >/dev/null 2>&1 || rc=$?
	if ((rc == 2)); then
		echo "ok   refused '$spec'"
	else
		echo "FAIL '$spec': exit $rc, want 2"
		fails=$((fails + 1))
	fi
}

expect pattern:1 8002000001
expect pattern:255 80020000FF
expect pattern:256 8002000000
expect pattern:257 80020000000101
expect pattern:65535 8002000000FFFF
expect pattern:65536 80020000000000
expect echo:0 80010000
expect echo:1 8001000001"$(pattern_hex 1)"00
expect echo:255 80010000FF"$(pattern_hex 255)"00
expect echo:256 8001000000"0100$(pattern_hex 256)"0000
expect echo:65535 8001000000"FFFF$(pattern_hex 65535)"0000
expect '00 a4 04 00 07 a0:00:00:00:79:03:00=*9000|*61..' 00A4040007A0000000790300
expect '80ca9f7f=..9000' 80CA9F7F
# DELAYED PATTERN: 4 big-endian delay bytes, then Le (short or extended).
expect dpattern:10000:1 800400000400002710""01
expect dpattern:3000:256 80040000040000""0BB8""00
expect dpattern:0:257 80040000""000004""00000000""0101
expect dpattern:600000:65536 80040000""000004""000927C0""0000

refuse pattern:0
refuse pattern:65537
refuse pattern:-1
refuse echo:65536
refuse echo:1x
refuse 00A4
refuse 00A4040
refuse 00A4040G
refuse '00A40400=9'
refuse '00A40400=9000|'
refuse '00A40400=1|2|3|4|5'
refuse dpattern:1000
refuse dpattern:1000:0
refuse dpattern:600001:1
refuse dpattern::1
refuse dpattern:1000:65537

echo "$fails failure(s)"
((fails == 0))
