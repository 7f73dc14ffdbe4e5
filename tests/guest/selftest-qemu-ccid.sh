#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The guest kit's own end-to-end check, with QEMU's built-in CCID reader
# (usb-ccid + ccid-card-emulated on a fresh NSS database) instead of
# ccid-emu: builds the guest if needed, boots it behind each USB host
# controller running scripts/qemu-usb-ccid.sh, then once more running
# scripts/unknown-vidpid.sh, and prints a table of results and timings.
#
# Usage: selftest-qemu-ccid.sh [--controllers "xhci ehci uhci"] [--quiet]
#                              [--keep DIR]
# Exit status: 0 when every boot passed, 1 otherwise, 2 on setup errors.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONTROLLERS=(xhci ehci uhci)
QUIET=()
KEEP=

die() { printf 'selftest: error: %s\n' "$*" >&2; exit 2; }

while (($#)); do
	case $1 in
	--controllers) read -r -a CONTROLLERS <<<"${2:?--controllers needs a list}"; shift ;;
	--quiet|-q) QUIET=(-q) ;;
	--keep) KEEP=${2:?--keep needs a directory}; shift ;;
	-h|--help) sed -n '3,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done

"$HERE/build-guest.sh" || die "build-guest.sh failed"

if [[ -n $KEEP ]]; then
	mkdir -p "$KEEP"
	WORK=$(cd "$KEEP" && pwd)
else
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/ccid-guest-selftest.XXXXXX")
	trap 'rm -rf "$WORK"' EXIT
fi
"$HERE/make-nssdb.sh" "$WORK/nssdb" >/dev/null || die "cannot create the NSS database"

CARD=(-device usb-ccid
	-device "ccid-card-emulated,backend=certificates,db=sql:$WORK/nssdb,cert1=id-cert,cert2=signing-cert,cert3=encryption-cert")

BASIC=usb-enumerated,pcscd-reader,atr,usb-claimed,opensc-atr,opensc-readers
FULL=$BASIC,pkcs11-token,pkcs11-objects,pkcs11-certs,cert-id-cert,cert-signing-cert,cert-encryption-cert,apdu-select,bench
UNKNOWN=usb-enumerated,plist-remove,unknown-ignored,unknown-unclaimed,readerconf-refused,plist-add,listed-after-add,atr-after-add,opensc-after-add

# metric NAME FILE: the guest's value and the host's arrival time of it.
metric() {
	awk -v n="$2" '$2 == "METRIC" && $3 == n { printf "%s (host %s)", $4, $1; found = 1; exit }
		END { if (!found) printf "-" }' "$1"
}

declare -a ROWS=()
FAILED=0
run() {
	local label=$1 controller=$2 script=$3 expect=$4 rc=0
	shift 4
	echo "=== $label: $script behind $controller"
	"$HERE/boot-guest.sh" --no-build "${QUIET[@]}" -c "$controller" \
		-s "$HERE/scripts/$script" -e "$expect" -t 300 \
		-w "$WORK/$label" -- "$@" || rc=$?
	((rc == 0)) || FAILED=1
	local timed=$WORK/$label/results.timed
	ROWS+=("$(printf '%-16s %-4s exit %d  userspace %s  atr %s  apdu/s %s' \
		"$label" "$controller" "$rc" \
		"$(metric "$timed" boot_userspace_ms)" \
		"$(metric "$timed" boot_to_atr_ms)" \
		"$(metric "$timed" usb_ccid_apdus_per_s)")")
}

for c in "${CONTROLLERS[@]}"; do
	expect=$FULL
	# See scripts/qemu-usb-ccid.sh: QEMU's usb-ccid breaks behind xhci.
	[[ $c == xhci ]] && expect=$BASIC
	run "usb-ccid-$c" "$c" qemu-usb-ccid.sh "$expect" "${CARD[@]}"
done
run unknown-vidpid uhci unknown-vidpid.sh "$UNKNOWN" "${CARD[@]}"

echo "=== summary (guest uptime ms; host: seconds since QEMU started)"
printf '%s\n' "${ROWS[@]}"
((FAILED == 0)) && echo "selftest: PASS" || echo "selftest: FAIL (logs: ${KEEP:-rerun with --keep DIR})"
exit "$FAILED"
