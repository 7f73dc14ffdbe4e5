#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# ccid-emu's reader under the project's own USB ID in a real guest: starts
# `ccid-agent serve -c loopback --usb-id ccid-emu` on a unix socket, boots
# the test guest behind each USB host controller with a usb-redir device
# on that socket, and runs scripts/ccid-emu-loopback.sh (stock pcscd +
# libccid ignore 1209:CC1D; after the documented one-line edit, short and
# 64 KiB extended APDUs are checked byte by byte and round trips timed).
#
# Usage: selftest-ccid-emu.sh [--agent PATH] [--controllers "xhci ehci uhci"]
#                             [--quiet] [--keep DIR]
#   --agent  the ccid-agent binary (default: $CCID_AGENT, then
#            build*/host-agent/ccid-agent in the source tree, then PATH)
# Exit status: 0 when every boot passed, 1 otherwise, 2 on setup errors.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
CONTROLLERS=(xhci ehci uhci)
QUIET=()
KEEP=
AGENT=${CCID_AGENT:-}

die() { printf 'selftest: error: %s\n' "$*" >&2; exit 2; }

while (($#)); do
	case $1 in
	--agent) AGENT=${2:?--agent needs a path}; shift ;;
	--controllers) read -r -a CONTROLLERS <<<"${2:?--controllers needs a list}"; shift ;;
	--quiet|-q) QUIET=(-q) ;;
	--keep) KEEP=${2:?--keep needs a directory}; shift ;;
	-h|--help) sed -n '3,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done

# shellcheck source=host-lib.sh
. "$HERE/host-lib.sh"
hl_find_agent "$SRC" || die "no ccid-agent: build the project or pass --agent"
"$HERE/build-guest.sh" || die "build-guest.sh failed"

if [[ -n $KEEP ]]; then
	mkdir -p "$KEEP"
	WORK=$(cd "$KEEP" && pwd)
else
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/ccid-emu-selftest.XXXXXX")
fi
SOCK=$WORK/ccid0.sock
rm -f "$SOCK"

AGENT_PID=
cleanup() {
	[[ -n $AGENT_PID ]] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
	[[ -n $KEEP ]] || rm -rf "$WORK"
	return 0
}
trap cleanup EXIT

"$AGENT" serve -c loopback --usb-id ccid-emu -l "unix:$SOCK" >"$WORK/agent.out" 2>"$WORK/agent.log" &
AGENT_PID=$!
for _ in $(seq 50); do
	[[ -S $SOCK ]] && break
	kill -0 "$AGENT_PID" 2>/dev/null || die "ccid-agent exited: $(tail -n 3 "$WORK/agent.log")"
	sleep 0.1
done
[[ -S $SOCK ]] || die "ccid-agent did not create $SOCK"

EXPECT=usb-enumerated,usb-endpoints,raw-idle-reply,raw-idle-64k,raw-partial-idle,raw-cancel-pending,own-id-edit,stock-ignored,reader,atr,atr-historical,usb-claimed,opensc-atr
EXPECT+=,tool-detects-mismatch,apdu-select,apdu-unknown-ins,apdu-unknown-cla,echo-short-0,echo-short-255
EXPECT+=,pattern-short-256,pattern-ext-257,echo-ext-256,pattern-ext-4096,echo-ext-4096
EXPECT+=,zlp-resp-64,zlp-resp-256,zlp-resp-4096,zlp-cmd-64,zlp-cmd-4096,pattern-ext-65536,echo-ext-65535,bench-echo0,bench-pattern64k,own-bundle-refused

metric() {
	awk -v n="$2" '$2 == "METRIC" && $3 == n { printf "%s (host %s)", $4, $1; found = 1; exit }
		END { if (!found) printf "-" }' "$1"
}

ROWS=()
FAILED=0
for c in "${CONTROLLERS[@]}"; do
	echo "=== ccid-emu loopback behind $c"
	rc=0
	"$HERE/boot-guest.sh" --no-build "${QUIET[@]}" -c "$c" -r "$SOCK" \
		-s "$HERE/scripts/ccid-emu-loopback.sh" -e "$EXPECT" -t 300 \
		-w "$WORK/$c" || rc=$?
	((rc == 0)) || FAILED=1
	t=$WORK/$c/results.timed
	ROWS+=("$(printf '%-4s exit %d  userspace %s  atr %s  apdu/s %s  64k-resp/s %s' \
		"$c" "$rc" "$(metric "$t" boot_userspace_ms)" "$(metric "$t" boot_to_atr_ms)" \
		"$(metric "$t" loopback_apdus_per_s)" "$(metric "$t" loopback_64k_responses_per_s)")")
done

echo "=== summary (guest uptime ms; host: seconds since QEMU started)"
printf '%s\n' "${ROWS[@]}"
if ((FAILED)); then
	echo "selftest: FAIL (agent log: $WORK/agent.log${KEEP:+; runs in $WORK})"
else
	echo "selftest: PASS"
fi
exit "$FAILED"
