#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The first run, as a new user does it: `ccid-agent serve` with no
# arguments (the embedded virtual card, the default socket), QEMU started
# with exactly the `qemu:` line it prints plus a USB controller, and an
# unmodified Debian 12 guest (scripts/first-run.sh): pcscd lists the
# reader and OpenSC lists the card's three certificates, with no file
# edited in the guest.
#
# Usage: test-first-run.sh [--agent PATH] [--controller xhci|ehci|uhci]
#                          [--quiet] [--keep DIR]
# Exit status: 0 passed, 1 failed, 2 setup error.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
CONTROLLER=xhci
QUIET=()
KEEP=
AGENT=${CCID_AGENT:-}

die() { printf 'test-first-run: error: %s\n' "$*" >&2; exit 2; }

while (($#)); do
	case $1 in
	--agent) AGENT=${2:?--agent needs a path}; shift ;;
	--controller) CONTROLLER=${2:?--controller needs xhci, ehci or uhci}; shift ;;
	--quiet|-q) QUIET=(-q) ;;
	--keep) KEEP=${2:?--keep needs a directory}; shift ;;
	-h|--help) sed -n '3,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done

# shellcheck source=host-lib.sh
. "$HERE/host-lib.sh"
hl_find_agent "$SRC" || die "no ccid-agent: build the project or pass --agent"
"$HERE/build-guest.sh" || die "build-guest.sh failed"
hl_work "$KEEP" ccid-emu-first-run

cleanup() {
	agent_stop first >/dev/null 2>&1 || true
	[[ -n $KEEP ]] || rm -rf "$WORK"
	return 0
}
trap cleanup EXIT

# No arguments at all: what `./bootstrap run` ends in.
agent_start first || die "ccid-agent serve did not start: $(tail -n 3 "$WORK/agent-first.log")"
QLINE=$(sed -n 's/^qemu: //p' "$WORK/agent-first.out")
[[ -n $QLINE ]] || die "ccid-agent serve printed no qemu: line"
echo "test-first-run: agent printed: qemu: $QLINE"
read -r -a QARGS <<<"$QLINE"

# The embedded card's certificate names, from the database it created.
DB=$XDG_DATA_HOME/ccid-emu/nssdb
cns=()
for nick in ccid-emu-id ccid-emu-sign ccid-emu-enc; do
	cn=$(certutil -L -d "sql:$DB" -n "$nick" -a |
		openssl x509 -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= //p')
	[[ $cn =~ ^[A-Za-z0-9\ ._-]+$ ]] || die "certificate $nick: CN '$cn' is not plain"
	cns+=("$cn")
done
cat >"$WORK/params" <<-EOF2
CERT_CN1='${cns[0]}'
CERT_CN2='${cns[1]}'
CERT_CN3='${cns[2]}'
EOF2

rc=0
"$HERE/boot-guest.sh" --no-build "${QUIET[@]}" -c "$CONTROLLER" \
	-s "$HERE/scripts/first-run.sh" -f "$WORK/params:/ccid-test/params" \
	-e usb-enumerated,stock-plist,reader,card,pkcs11-objects,pkcs11-three-certs,cert1-subject,cert2-subject,cert3-subject \
	-w "$WORK/boot" -t 180 -- "${QARGS[@]}" || rc=$?
arc=0
agent_stop first || arc=$?
if ((rc == 0 && arc == 0)); then
	echo "test-first-run: PASS"
	exit 0
fi
echo "test-first-run: FAIL (boot-guest.sh exit $rc, agent exit $arc${KEEP:+; logs in $WORK})"
exit 1
