#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The daemon's USB readers and passthrough entries, with real libusb,
# pcscd, dbus-daemon and QEMU, on a host without USB: the USB bus is a
# guest's (the template is tests/passthrough/test-nested-passthrough.sh).
#
#   host: ccid-agent serve -c loopback  --usb-redir-->  guest 1
#   guest 1: the kernel, libusb and pcscd + libccid see the reader; a
#            dbus-daemon, `ccid-agent daemon` and three QEMUs (a USB
#            controller and a QMP socket each; a firmware that only
#            halts) to attach to.
#
# Guest 1 (guest/daemon-usb.sh) checks the two entries of the reader
# ("Shared <pcscd's name>" and the passthrough "<model>", each naming the
# other), pcscd as the host holder with its pid, passthrough taken from
# pcscd and given back, the exclusion rules both ways with Busy naming
# the VMs, 50 concurrent attaches from separate client processes, and a
# host process other than pcscd as holder.  Its `list --json` snapshots
# come to the host as DATA and are checked here with Python's JSON
# parser.
#
# Guest 1's layer (/opt/ccid-agent, appended to its initramfs by
# boot-guest.sh -f): ccid-agent, qemu-system-x86_64 with its TCG and
# usb-redir modules and a halting firmware, dbus-daemon, and the shared libraries of
# those the kit's image lacks.  The kit is used, not changed.
#
# usage: test-daemon-usb.sh [--agent PATH] [--keep DIR] [-q]
# exit: 0 pass, 1 fail, 2 setup error
set -u -o pipefail
export LC_ALL=C

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
die() { echo "test-daemon-usb: error: $*" >&2; exit 2; }
[[ -n $AGENT && -x $AGENT ]] || die "--agent PATH (or CCID_AGENT) needed"
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")
QEMU=$(command -v qemu-system-x86_64) || die "no qemu-system-x86_64 (Debian package qemu-system-x86)"
QEMU_MODS=/usr/lib/x86_64-linux-gnu/qemu
for f in "$QEMU_MODS/accel-tcg-x86_64.so" "$QEMU_MODS/hw-usb-redirect.so" \
	/usr/bin/dbus-daemon; do
	[[ -r $f ]] || die "$f missing (Debian packages qemu-system-x86, dbus-daemon)"
done

W=${KEEP:-$(mktemp -d "${TMPDIR:-/tmp}/ccid-dusb.XXXXXX")}
mkdir -p "$W"
T0=$(date +%s.%N)
log() { printf "test: [%6.1f s] %s\n" "$(awk -v a="$(date +%s.%N)" -v b="$T0" "BEGIN{print a-b}")" "$*"; }

SERVE_PID=
cleanup() {
	[[ -n $SERVE_PID ]] && kill "$SERVE_PID" 2>/dev/null
	wait 2>/dev/null
	[[ -z $KEEP ]] && rm -rf "$W"
}
trap cleanup EXIT

log "building the guest image (cached)"
"$KIT/build-guest.sh" >"$W/build.log" 2>&1 || { cat "$W/build.log"; exit 2; }
# shellcheck source=../guest/host-lib.sh
. "$KIT/host-lib.sh"

# --- guest 1's layer ---------------------------------------------------------
L=$W/layer
mkdir -p "$L/bin" "$L/lib" "$L/qemu" "$L/etc" "$L/modules"
in_kit() {
	[[ -e $KIT/out/rootfs/usr/lib/x86_64-linux-gnu/$1 || -e $KIT/out/rootfs/lib/x86_64-linux-gnu/$1 ]]
}
# add_libs FILE: the shared libraries FILE loads that the kit lacks.
add_libs() {
	local lib b
	while read -r lib; do
		b=$(basename "$lib")
		in_kit "$b" || [[ -e $L/lib/$b ]] || cp -L "$lib" "$L/lib/$b"
	done < <(ldd "$1" | awk '/=> \//{print $3}')
}
cp "$AGENT" "$L/bin/ccid-agent"
cp "$QEMU" "$L/bin/qemu-system-x86_64"
cp /usr/bin/dbus-daemon "$L/bin/"
cp "$QEMU_MODS/accel-tcg-x86_64.so" "$QEMU_MODS/hw-usb-redirect.so" "$L/qemu/"
# The VMs' firmware: the reset vector halts (hlt; jmp back), so a VM runs
# (QEMU's usb-redir talks to its peer only while the VM runs) at no CPU
# cost, and its USB controller takes devices with no guest driver.
head -c 65536 /dev/zero >"$L/qemu/halt.bin"
printf '\xf4\xeb\xfd' | dd of="$L/qemu/halt.bin" bs=1 seek=65520 conv=notrunc status=none
# The originals: the agent's build tree finds its libraries by $ORIGIN.
for f in "$AGENT" "$QEMU" /usr/bin/dbus-daemon "$L"/qemu/*.so; do add_libs "$f"; done
# A session bus of its own: no service directories, everything allowed.
cat >"$L/etc/session.conf" <<'XML'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=/tmp/session-bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
XML
# usbserial (its generic driver): a kernel driver to bind to the reader,
# as usbhid is bound to a YubiKey's HID interfaces.
# shellcheck disable=SC1091
. "$KIT/out/guest.env"
DEB=$(ls "$KIT"/out/debs/linux-image-"$KERNEL_VERSION"_*.deb | head -n 1)
dpkg-deb --fsys-tarfile "$DEB" | tar -xO \
	"./lib/modules/$KERNEL_VERSION/kernel/drivers/usb/serial/usbserial.ko" \
	>"$L/modules/usbserial.ko" || die "cannot take usbserial.ko from $DEB"
FILES=()
for f in "$L"/bin/* "$L"/lib/* "$L"/qemu/* "$L"/etc/* "$L"/modules/*; do
	FILES+=(-f "$f:/opt/ccid-agent/${f#"$L"/}")
done
log "layer: $(ls "$L/lib" | wc -l) libraries, $(du -sh "$L" | cut -f1) ($(du -sh "$L/bin" | cut -f1) programs)"

# --- the emulated reader on the host ------------------------------------------
SOCK=$W/g1.sock
serve_start() {
	: >"$W/serve.out"
	"$AGENT" serve -c loopback -l "unix:$SOCK" --control "$W/g1.ctl" \
		>"$W/serve.out" 2>>"$W/serve.log" &
	SERVE_PID=$!
	echo "$SERVE_PID" >"$W/serve.pid"
	for _ in $(seq 100); do
		grep -q '^control: ' "$W/serve.out" && return 0
		sleep 0.1
	done
	echo "test: serve did not start: $(tail -n 3 "$W/serve.log")"
	return 1
}
serve_start || exit 2

# The guest's REQUEST lines: unplug (serve stops: the reader leaves
# guest 1's USB bus) and plug (serve again: QEMU reconnects within 1 s).
on_request() {
	local pid
	pid=$(cat "$W/serve.pid" 2>/dev/null)
	case $1 in
	unplug) kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; echo "unplugged" >>"$W/requests.log" ;;
	plug) serve_start >>"$W/requests.log" 2>&1 && echo "plugged" >>"$W/requests.log" ;;
	*) echo "unknown request '$*'" >>"$W/requests.log" ;;
	esac
}

log "booting guest 1 (the daemon, pcscd and three QEMUs inside)"
rc=0
mkdir -p "$W/g1"
: >"$W/g1/results.log"
"$KIT/boot-guest.sh" --no-build $QUIET -c xhci -r "$SOCK" --redir-reconnect 1 \
	-m 1024 -s "$HERE/guest/daemon-usb.sh" "${FILES[@]}" -w "$W/g1" -t 400 \
	>"$W/g1.stdout" 2>&1 &
BOOT=$!
watch_requests "$W/g1/results.log" "$BOOT" on_request &
WATCH=$!
wait "$BOOT" || rc=$?
wait "$WATCH" 2>/dev/null
# serve may have been restarted in the watcher's subshell.
SERVE_PID=$(cat "$W/serve.pid" 2>/dev/null)
log "guest 1: exit $rc; requests: $(tr '\n' ' ' <"$W/requests.log" 2>/dev/null)"

FAILS=0
if ((rc == 0)); then
	hres guest1 PASS "every guest check passed"
else
	hres guest1 FAIL "boot-guest.sh exit $rc"
	tail -n 80 "$W/g1.stdout"
fi

# --- the list --json snapshots, with a JSON parser ---------------------------
for snap in start attached race-free shared-two holder-process; do
	if guest_data "$W/g1/results.log" "list-$snap" "$W/list-$snap.json" >/dev/null &&
	   guest_data "$W/g1/results.log" "expect-$snap" "$W/expect-$snap.env" >/dev/null; then
		if out=$(/usr/bin/python3 "$HERE/check-usb-list.py" "$snap" \
			"$W/list-$snap.json" "$W/expect-$snap.env" 2>&1); then
			hres "json-$snap" PASS "$out"
		else
			hres "json-$snap" FAIL "$out"
		fi
	else
		hres "json-$snap" FAIL "the guest sent no list-$snap snapshot"
	fi
done

echo "---- results"
grep -h -E '^(RESULT|METRIC)' "$W/g1/results.log" 2>/dev/null | tr -d '\r' | sed "s/^/g1: /"
m() { grep -h "METRIC $1 " "$W/g1/results.log" 2>/dev/null | tr -d '\r' | awk '{print $3}'; }
echo "---- passthrough attach (CLI returns; a CLI call alone $(m cli_call_ms) ms) $(m pt_attach_ms) ms, pcscd let go $(m pcscd_let_go_ms) ms after the attach started, detach $(m pt_detach_ms) ms, pcscd has the reader again $(m pt_pcscd_back_ms) ms after detach; race: $(m race_ok) success, $(m race_busy) Busy of 50 in $(m race_ms) ms"
if ((FAILS)); then
	echo "test-daemon-usb: FAIL${KEEP:+ (logs in $W)}"
	[[ -n $KEEP ]] || echo "rerun with --keep DIR for the logs"
	exit 1
fi
log "test-daemon-usb: PASS"
