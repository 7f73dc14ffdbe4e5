#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# End-to-end test of `ccid-agent passthrough` with real libusb, on a host
# without USB: the USB bus is a guest's.
#
#   host: ccid-agent serve -c loopback  --usb-redir-->  guest 1
#   guest 1: kernel + libusb see 1209:CC1D; ccid-agent passthrough claims it
#            and serves it on TCP 7000 --QEMU user net hostfwd--> host port
#   host: guest 2 (a second QEMU) with -device usb-redir on that port sees
#         the reader and drives it with stock pcscd + libccid
#   the link from guest 1 to guest 2 is TLS with client certificates, as
#   between two machines (docs/remote-reader.md)
#
# Runs of guest 2: A (ATR, APDUs, 64 KiB both ways, timing), B (killed with
# SIGKILL in the middle of 64 KiB APDUs), C (the reader still works; then
# the host restarts `serve`, which unplugs and replugs the reader under
# guest 1: guest 2 sees it leave and come back).  Guest 1 checks the
# refusals (pcscd holds it, a second passthrough), the release, and that
# its own pcscd can use the reader after the agent stops.
#
# Guest 1's layer: ccid-agent and the shared libraries the kit's image
# lacks (/opt/ccid-agent/{bin,lib}), virtio-net modules from the kit's
# kernel package (/opt/ccid-agent/modules); passed with boot-guest.sh -f,
# which appends them as a cpio archive.  The kit is used, not changed.
#
# usage: test-nested-passthrough.sh [--agent PATH] [--keep DIR] [-q]
# exit: 0 pass, 1 fail, 2 setup error, 77 skipped (no QEMU)
set -u -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
KIT=$(cd "$HERE/../guest" && pwd)
AGENT=${CCID_AGENT:-}
KEEP=
QUIET=
while [[ $# -gt 0 ]]; do
	case $1 in
	--agent) AGENT=$2; shift ;;
	--keep) KEEP=$2; shift ;;
	-q) QUIET=-q ;;
	*) echo "usage: $0 [--agent PATH] [--keep DIR] [-q]" >&2; exit 2 ;;
	esac
	shift
done
[[ -n $AGENT && -x $AGENT ]] || { echo "test: --agent PATH (or CCID_AGENT) needed" >&2; exit 2; }
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")
command -v qemu-system-x86_64 >/dev/null || { echo "test: SKIP, no qemu-system-x86_64"; exit 77; }

W=${KEEP:-$(mktemp -d "${TMPDIR:-/tmp}/ccid-pt.XXXXXX")}
mkdir -p "$W"
T0=$(date +%s.%N)
log() { printf "test: [%6.1f s] %s\n" "$(awk -v a="$(date +%s.%N)" -v b="$T0" "BEGIN{print a-b}")" "$*"; }

SERVE_PID=
G1_PID=
cleanup() {
	[[ -n $SERVE_PID ]] && kill "$SERVE_PID" 2>/dev/null
	[[ -n $G1_PID ]] && kill "$G1_PID" 2>/dev/null
	wait 2>/dev/null
	[[ -z $KEEP ]] && rm -rf "$W"
}
trap cleanup EXIT

# --- the guest image, built once ------------------------------------------------
log "building the guest image (cached)"
"$KIT/build-guest.sh" >"$W/build.log" 2>&1 || { cat "$W/build.log"; exit 2; }
# shellcheck disable=SC1091
. "$KIT/out/guest.env"

# --- guest 1's layer ---------------------------------------------------------
L=$W/layer
mkdir -p "$L/bin" "$L/lib" "$L/modules"
cp "$AGENT" "$L/bin/ccid-agent"
# Every library the agent loads that the kit's image does not have.
while read -r lib; do
	b=$(basename "$lib")
	[[ -e $KIT/out/rootfs/usr/lib/x86_64-linux-gnu/$b ]] && continue
	cp -L "$lib" "$L/lib/$b"
done < <(ldd "$AGENT" | awk '/=> \//{print $3}')
DEB=$(ls "$KIT"/out/debs/linux-image-"$KERNEL_VERSION"_*.deb | head -n 1)
dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$W" --wildcards \
	"./lib/modules/$KERNEL_VERSION/kernel/drivers/net/virtio_net.ko" \
	"./lib/modules/$KERNEL_VERSION/kernel/drivers/net/net_failover.ko" \
	"./lib/modules/$KERNEL_VERSION/kernel/net/core/failover.ko" ||
	{ echo "test: cannot take virtio-net modules from $DEB"; exit 2; }
find "$W/lib/modules" -name '*.ko' -exec cp {} "$L/modules/" \;
# Guest 1's agent listens on a non-loopback address, so with TLS (plain TCP
# is refused there): GLib's TLS module, loaded at run time, and the server
# certificates (docs/remote-reader.md); guest 2's QEMU connects with the
# client certificate.
mkdir -p "$L/gio"
cp /usr/lib/x86_64-linux-gnu/gio/modules/libgiognutls.so "$L/gio/" ||
	{ echo "test: no GLib TLS module: apt-get install glib-networking"; exit 2; }
"$HERE/../netsec/make-certs.sh" "$W/certs" >"$W/certs.log" 2>&1 ||
	{ cat "$W/certs.log"; exit 2; }
FILES=()
for f in "$L"/bin/* "$L"/lib/* "$L"/modules/* "$L"/gio/*; do
	FILES+=(-f "$f:/opt/ccid-agent/${f#"$L"/}")
done
for f in ca-cert.pem server-cert.pem server-key.pem; do
	FILES+=(-f "$W/certs/server/$f:/ccid-test/tls/$f")
done
log "layer: $(ls "$L/lib" | wc -l) libraries, $(ls "$L/modules" | wc -l) modules, $(du -sh "$L" | cut -f1)"

# --- the emulated reader on the host ------------------------------------------
SOCK=$W/g1.sock
serve_start() {
	"$AGENT" serve -c loopback -l "unix:$SOCK" --control "$W/g1.ctl" \
		>"$W/serve.out" 2>>"$W/serve.log" &
	SERVE_PID=$!
	for _ in $(seq 100); do
		grep -q '^control: ' "$W/serve.out" && return 0
		sleep 0.1
	done
	echo "test: serve did not start: $(tail -n 3 "$W/serve.log")"
	return 1
}
serve_stop() {
	kill -TERM "$SERVE_PID" 2>/dev/null
	wait "$SERVE_PID" 2>/dev/null
	SERVE_PID=
}
serve_start || exit 2

# A free port for guest 1's forwarded passthrough socket.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# wait_note LOG TEXT SECONDS: until the guest's results log has NOTE TEXT.
wait_note() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -q "NOTE $2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

log "booting guest 1 (reader from serve, passthrough on tcp:127.0.0.1:$PORT)"
"$KIT/boot-guest.sh" --no-build $QUIET -c xhci -r "$SOCK" --redir-reconnect 1 \
	-s "$HERE/scripts/guest1.sh" "${FILES[@]}" -w "$W/g1" -t 900 \
	--append net.ifnames=0 -- \
	-netdev "user,id=ptnet0,hostfwd=tcp:127.0.0.1:$PORT-10.0.2.15:7000" \
	-device virtio-net-pci,netdev=ptnet0 >"$W/g1.stdout" 2>&1 &
G1_PID=$!
if ! wait_note "$W/g1/results.log" "ptest ready" 300; then
	log "guest 1 never got ready"
	cat "$W/g1.stdout"
	exit 1
fi
log "guest 1 passes the reader through"

RC=0
boot2() {   # NAME SCRIPT [boot-guest args...]
	local name=$1 script=$2
	shift 2
	"$KIT/boot-guest.sh" --no-build $QUIET -c xhci \
		-s "$HERE/scripts/$script" -w "$W/$name" -t 400 "$@" -- \
		-object "tls-creds-x509,id=tls0,dir=$W/certs/client,endpoint=client" \
		-chardev "socket,id=ptredir,host=127.0.0.1,port=$PORT,tls-creds=tls0" \
		-device "usb-redir,chardev=ptredir,id=ptredir0,bus=usb.0"
}

log "guest 2, run A: ATR, APDUs, 64 KiB, timing"
boot2 g2a guest2.sh >"$W/g2a.stdout" 2>&1
rc=$?
log "guest 2, run A: exit $rc"
[[ $rc -eq 0 ]] || { RC=1; tail -n 40 "$W/g2a.stdout"; }

log "guest 2, run B: killed in the middle of 64 KiB APDUs"
boot2 g2b guest2-kill.sh --pidfile "$W/g2b.pid" >"$W/g2b.stdout" 2>&1 &
B=$!
if wait_note "$W/g2b/results.log" "ptest apdu-loop" 200; then
	sleep 3
	kill -KILL "$(cat "$W/g2b.pid")"
	log "guest 2, run B: QEMU killed"
else
	log "guest 2, run B: never reached the APDU loop"
	RC=1
	kill "$(cat "$W/g2b.pid" 2>/dev/null)" 2>/dev/null
fi
wait $B

log "guest 2, run C: still usable, then unplug/replug under guest 1"
boot2 g2c guest2-replug.sh >"$W/g2c.stdout" 2>&1 &
C=$!
if wait_note "$W/g2c/results.log" "ptest unplug-now" 200; then
	log "unplugging the reader from guest 1 (serve stops)"
	serve_stop
	sleep 2
	serve_start || RC=1
	log "reader plugged into guest 1 again (serve restarted)"
else
	log "guest 2, run C: never asked for the unplug"
	RC=1
fi
wait $C
rc=$?
log "guest 2, run C: exit $rc"
[[ $rc -eq 0 ]] || { RC=1; tail -n 40 "$W/g2c.stdout"; }

wait $G1_PID
rc=$?
G1_PID=
log "guest 1: exit $rc"
[[ $rc -eq 0 ]] || { RC=1; tail -n 60 "$W/g1.stdout"; }

echo "---- results"
for g in g1 g2a g2b g2c; do
	grep -h -E '^(RESULT|METRIC)' "$W/$g/results.log" 2>/dev/null | tr -d '\r' | sed "s/^/$g: /"
done
m() { grep -h "METRIC $2 " "$W/$1/results.log" 2>/dev/null | tr -d '\r' | awk '{print $3}'; }
echo "---- APDU round trip (ECHO, 0 bytes, mean of 200): guest 1 direct $(m g1 g1_echo0_mean_ms) ms, guest 2 passthrough $(m g2a g2_echo0_mean_ms) ms"
echo "---- 64 KiB PATTERN (mean of 20): guest 1 direct $(m g1 g1_pattern64k_mean_ms) ms, guest 2 passthrough $(m g2a g2_pattern64k_mean_ms) ms"
log "done, exit $RC${KEEP:+ (logs in $W)}"
exit $RC
