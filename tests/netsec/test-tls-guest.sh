#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A reader from another machine, as docs/remote-reader.md sets it up, in a
# booted guest: the usb-redir chardev is TLS with x509 certificates (made
# here with certtool) and client-certificate verification.
#
#   --direction agent-server  ccid-agent serve --listen tcp: --tls-creds,
#                             QEMU connects with tls-creds-x509
#                             endpoint=client and its client certificate
#   --direction qemu-server   QEMU's chardev listens (server=on,
#                             endpoint=server,verify-peer=on), ccid-agent
#                             serve --connect with its client certificate
#                             (a laptop's reader shared into a remote VM)
#   --direction plain         the same as agent-server without TLS, for the
#                             per-APDU comparison
#
# The guest (guest-tls.sh) sees the reader, reads the card's ATR and runs
# APDUs; the agent's log must name the peer by its certificate.
#
# Usage: test-tls-guest.sh [--agent PATH] [--direction D] [--quiet] [--keep DIR]
# Exit status: 0 passed, 1 failed, 2 setup error.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
GUEST=$SRC/tests/guest
DIRECTION=agent-server
QUIET=()
KEEP=
AGENT=${CCID_AGENT:-}

die() { printf 'test-tls-guest: error: %s\n' "$*" >&2; exit 2; }

while (($#)); do
	case $1 in
	--agent) AGENT=${2:?--agent needs a path}; shift ;;
	--direction) DIRECTION=${2:?--direction needs agent-server, qemu-server or plain}; shift ;;
	--quiet|-q) QUIET=(-q) ;;
	--keep) KEEP=${2:?--keep needs a directory}; shift ;;
	-h|--help) sed -n '3,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done
case $DIRECTION in agent-server|qemu-server|plain) ;; *) die "unknown --direction '$DIRECTION'" ;; esac

# shellcheck source=../guest/host-lib.sh
. "$GUEST/host-lib.sh"
hl_find_agent "$SRC" || die "no ccid-agent: build the project or pass --agent"
command -v certtool >/dev/null || die "certtool not found: apt-get install gnutls-bin"
"$GUEST/build-guest.sh" || die "build-guest.sh failed"
hl_work "$KEEP" ccid-emu-tls-guest

cleanup() {
	agent_stop tls >/dev/null 2>&1 || true
	[[ -n $KEEP ]] || rm -rf "$WORK"
	return 0
}
trap cleanup EXIT

"$HERE/make-certs.sh" "$WORK/certs" || die "make-certs.sh failed"
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
CTL=(--control "$WORK/run/tls.ctl")
QARGS=()
case $DIRECTION in
agent-server)
	agent_start tls --card loopback --listen "tcp:127.0.0.1:$PORT" \
		--tls-creds "$WORK/certs/server" "${CTL[@]}" ||
		die "agent did not start: $(tail -n 3 "$WORK/agent-tls.log")"
	QARGS=(-object "tls-creds-x509,id=tls0,dir=$WORK/certs/client,endpoint=client"
		-chardev "socket,id=tlsredir,host=127.0.0.1,port=$PORT,reconnect=1,tls-creds=tls0")
	EXPECT_PEER='CN=client'
	;;
qemu-server)
	QARGS=(-object "tls-creds-x509,id=tls0,dir=$WORK/certs/server,endpoint=server,verify-peer=on"
		-chardev "socket,id=tlsredir,host=127.0.0.1,port=$PORT,server=on,wait=off,tls-creds=tls0")
	# The agent retries until QEMU listens.
	agent_start tls --card loopback --connect "tcp:127.0.0.1:$PORT" \
		--tls-creds "$WORK/certs/client" "${CTL[@]}" ||
		die "agent did not start: $(tail -n 3 "$WORK/agent-tls.log")"
	EXPECT_PEER='CN=localhost'
	;;
plain)
	agent_start tls --card loopback --listen "tcp:127.0.0.1:$PORT" "${CTL[@]}" ||
		die "agent did not start: $(tail -n 3 "$WORK/agent-tls.log")"
	QARGS=(-chardev "socket,id=tlsredir,host=127.0.0.1,port=$PORT,reconnect=1")
	EXPECT_PEER='tcp:127.0.0.1:'
	;;
esac
QARGS+=(-device "usb-redir,chardev=tlsredir,id=tlsredir0,bus=usb.0")

rc=0
"$GUEST/boot-guest.sh" --no-build "${QUIET[@]}" -c xhci -s "$HERE/guest-tls.sh" \
	-e usb-enumerated,reader,card,apdu-select,echo-short-255,pattern-ext-4096,echo-ext-4096,pattern-ext-65536,bench \
	-w "$WORK/boot" -t "${BOOT_TIMEOUT:-150}" -- "${QARGS[@]}" || rc=$?
grep -E '^METRIC' "$WORK/boot/results.log" 2>/dev/null | tr -d '\r' | sed "s/^/test-tls-guest: $DIRECTION: /" || true
if grep -q "reader attached to the VM (.*$EXPECT_PEER" "$WORK/agent-tls.log"; then
	echo "test-tls-guest: agent: $(grep -m1 'reader attached to the VM' "$WORK/agent-tls.log")"
else
	echo "test-tls-guest: the agent's log does not name the peer by '$EXPECT_PEER':"
	tail -n 5 "$WORK/agent-tls.log"
	rc=1
fi
arc=0
agent_stop tls || arc=$?
if ((rc == 0 && arc == 0)); then
	echo "test-tls-guest: $DIRECTION: PASS"
	exit 0
fi
echo "test-tls-guest: $DIRECTION: FAIL (boot-guest.sh exit $rc, agent exit $arc${KEEP:+; logs in $WORK})"
exit 1
