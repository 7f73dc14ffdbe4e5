#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The reader against a second CCID driver: GnuPG's scdaemon and its own
# libusb CCID driver, in a stock Debian 12 guest with no pcscd
# (scripts/scdaemon-ccid.sh).  Two `ccid-agent serve` with the default USB
# identity, one with the loopback card (T=1), one with the embedded
# virtual CAC card (T=0 only).  docs/driver-conformance.md has what
# scdaemon's driver requires and what the guest shows.
#
# Usage: test-scdaemon-guest.sh [--agent PATH] [--controllers "xhci"]
#                               [--quiet] [--keep DIR]
# Exit status: 0 when every controller passed, 1 otherwise, 2 on setup
# errors.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
CONTROLLERS=(xhci)
QUIET=()
KEEP=
AGENT=${CCID_AGENT:-}
# libcacard's soft card ATR (the virtual card), as test-ccid-emu-guest.sh.
VATR=3B7A18000073667465206364313434

die() { printf 'test-scdaemon-guest: error: %s\n' "$*" >&2; exit 2; }

while (($#)); do
	case $1 in
	--agent) AGENT=${2:?--agent needs a path}; shift ;;
	--controllers) read -r -a CONTROLLERS <<<"${2:?--controllers needs a list}"; shift ;;
	--quiet|-q) QUIET=(-q) ;;
	--keep) KEEP=${2:?--keep needs a directory}; shift ;;
	-h|--help) sed -n '3,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done

# shellcheck source=host-lib.sh
. "$HERE/host-lib.sh"
hl_find_agent "$SRC" || die "no ccid-agent: build the project or pass --agent"
"$HERE/build-guest.sh" || die "build-guest.sh failed"
hl_work "$KEEP" ccid-emu-scdaemon

AGENTS=()
cleanup() {
	local a
	for a in "${AGENTS[@]}"; do agent_stop "$a" >/dev/null 2>&1 || true; done
	[[ -n $KEEP ]] || rm -rf "$WORK"
	return 0
}
trap cleanup EXIT

EXPECT=usb-enumerated,stock-plist,no-pcscd,scd-reader-list,scd-loopback-atr,scd-apdu-short
EXPECT+=,scd-apdu-ext-echo,scd-apdu-ext-pattern,scd-time-extension,scd-virtual-t0-refused,scd-loopback-after-t0
EXPECT+=,scd-after-long-answer

FAILED=0
for C in "${CONTROLLERS[@]}"; do
	echo "=== scdaemon's CCID driver in the guest behind $C"
	D=$WORK/$C
	rm -rf "$D"
	mkdir -p "$D"
	agent_start "virtual-$C" -l "unix:$D/virtual.sock" || die "cannot start the virtual card agent"
	AGENTS+=("virtual-$C")
	agent_start "loopback-$C" -c loopback -l "unix:$D/loopback.sock" || die "cannot start the loopback agent"
	AGENTS+=("loopback-$C")
	printf 'VATR=%s\n' "$VATR" >"$D/params"
	rc=0
	"$HERE/boot-guest.sh" --no-build "${QUIET[@]}" -c "$C" \
		-r "$D/virtual.sock" -r "$D/loopback.sock" \
		-s "$HERE/scripts/scdaemon-ccid.sh" -f "$D/params:/ccid-test/params" \
		-e "$EXPECT" -w "$D/boot" -t 240 || rc=$?
	if ((rc != 0)); then
		echo "test-scdaemon-guest: $C: boot-guest.sh exit $rc"
		FAILED=1
	fi
	grep ' NOTE ' "$D/boot/results.timed" || true
	for a in "virtual-$C" "loopback-$C"; do agent_stop "$a" || FAILED=1; done
	AGENTS=()
done
if ((FAILED)); then
	echo "test-scdaemon-guest: FAIL (${KEEP:+logs in $WORK; }rerun with --keep DIR for the logs)"
else
	echo "test-scdaemon-guest: PASS"
fi
exit "$FAILED"
