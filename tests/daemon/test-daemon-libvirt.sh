#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# libvirt domains through `ccid-agent daemon` (docs/daemon.md, "libvirt
# domains"), with Debian's libvirt: a qemu:///session libvirtd and
# virtlogd of the test's own (private HOME and XDG directories; nothing of
# the system's libvirt is touched), a TCG domain booting the guest kit
# (tests/guest) with only a USB controller, and the daemon watching
# qemu:///session:
#   - the domain started after the daemon appears as a VM (lifecycle event);
#   - on the guest's requests (guest/daemon-libvirt.sh): `ccid-agent attach
#     virtual DOMAIN` (virDomainAttachDeviceFlags with a <redirdev>),
#     `virsh dumpxml` shows the redirdev, the guest's pcscd reads the
#     virtual card's ATR; `detach` (virDomainDetachDeviceAlias and the
#     DEVICE_REMOVED event): the redirdev is gone from dumpxml and the
#     reader from the guest; attach again; then `virsh destroy`: the
#     session ends and the entry is free within 1 s;
#   - the domain started again gets its remembered entry back;
#   - bad input: vm add of a domain that does not exist, of one that is a VM
#     already;
#   - the redirdev socket serves only the domain's QEMU: while an attach
#     waits for QEMU (QEMU stopped with SIGSTOP), a process of another uid
#     (root, from the root part of the test) connects to the socket and is
#     refused (closed, and the daemon's log says so), then QEMU continues
#     and its session works (entry held, redirdev in dumpxml).
# qemu:///session is per user, and root's qemu:///session is the system
# instance: run as root, the test runs itself as the user nobody.
#
# Usage: test-daemon-libvirt.sh [--agent PATH] [--quiet] [--keep DIR]
# Exit status: 0 pass, 1 fail, 2 setup error.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
GUEST=$SRC/tests/guest
# Run as root, the test copies what the user runs into a kit directory
# (the tree may not be readable by others): this script, host-lib.sh,
# the guest script, the kernel and initramfs, ccid-agent, its library and
# its libvirt module.
KIT=${CCID_LIBVIRT_KIT:-}
if [[ -n $KIT ]]; then
	HOSTLIB=$KIT/host-lib.sh GSCRIPT=$KIT/daemon-libvirt.sh GOUT=$KIT
else
	HOSTLIB=$GUEST/host-lib.sh GSCRIPT=$HERE/guest/daemon-libvirt.sh GOUT=$GUEST/out
fi
AGENT=${CCID_AGENT:-}
QUIET=0
KEEP=
ARGS=("$@")
VATR=3B7A18000073667465206364313434
URI=qemu:///session

die() { printf 'test-daemon-libvirt: error: %s\n' "$*" >&2; exit 2; }

while (($#)); do
	case $1 in
	--agent) AGENT=${2:?--agent needs a path}; shift ;;
	--quiet|-q) QUIET=1 ;;
	--keep) KEEP=${2:?--keep needs a directory}; shift ;;
	-h|--help) sed -n '3,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done

for p in libvirtd virtlogd virsh qemu-system-x86_64 cpio; do
	command -v "$p" >/dev/null ||
		die "$p not found (packages libvirt-daemon-system, libvirt-clients, qemu-system-x86, cpio)"
done
# shellcheck source=../guest/host-lib.sh
. "$HOSTLIB"
[[ -n $KIT ]] || hl_find_agent "$SRC" || die "no ccid-agent: build the project or pass --agent"
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")

# --- as root: the same test as an unprivileged user ------------------------------
if [[ $(id -u) == 0 ]]; then
	"$GUEST/build-guest.sh" >&2 || die "build-guest.sh failed"
	if [[ -n $KEEP ]]; then
		mkdir -p "$KEEP"
		W=$(cd "$KEEP" && pwd)
	else
		W=$(mktemp -d /tmp/ccid-daemon-libvirt.XXXXXX)
	fi
	chmod 755 "$W"
	K=$W/kit
	mkdir -p "$K/bin"
	cp "${BASH_SOURCE[0]}" "$K/test-daemon-libvirt.sh"
	cp "$GUEST/host-lib.sh" "$K/"
	cp "$HERE/guest/daemon-libvirt.sh" "$K/"
	cp "$GUEST/out/initramfs.img" "$K/"
	if [[ -f $GUEST/out/vmlinux ]]; then cp "$GUEST/out/vmlinux" "$K/"; else cp "$GUEST/out/vmlinuz" "$K/"; fi
	cp "$AGENT" "$K/bin/ccid-agent"
	# The daemon's libvirt module, looked for next to the program.
	[[ -f $(dirname "$AGENT")/libccid-agent-libvirt.so ]] &&
		cp "$(dirname "$AGENT")/libccid-agent-libvirt.so" "$K/bin/"
	# Its libraries from the build tree (libccidemu), found by
	# LD_LIBRARY_PATH before the build tree's RUNPATH.
	ldd "$AGENT" | awk -v src="$SRC/" 'index($3, src) == 1 { print $3 }' |
		while read -r lib; do cp "$lib" "$K/bin/"; done
	chown -R nobody:nogroup "$W"
	# A connector of another uid (root) for the test's peer check: it
	# connects to each socket path written to peer.req and appends to
	# peer.res whether the daemon closed the connection at once.
	mkfifo -m 600 "$W/peer.req"
	chown nobody:nogroup "$W/peer.req"
	/usr/bin/python3 - "$W/peer.req" "$W/peer.res" <<'PY' &
import os, socket, sys, time
req, res = sys.argv[1:3]
while True:
    with open(req) as f:
        for line in f:
            path = line.strip()
            if path == "quit":
                sys.exit(0)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            t0 = time.monotonic()
            try:
                s.connect(path)
            except OSError as e:
                out = "connect-failed %s" % e
            else:
                s.settimeout(5)
                try:
                    d = s.recv(1)
                    out = ("refused uid=%d pid=%d ms=%d" % (os.getuid(), os.getpid(),
                           (time.monotonic() - t0) * 1000)) if d == b"" else "open: data"
                except socket.timeout:
                    out = "open: not closed within 5 s"
                except OSError as e:
                    out = "refused uid=%d pid=%d (%s)" % (os.getuid(), os.getpid(), e)
            s.close()
            with open(res, "a") as r:
                r.write(out + "\n")
PY
	PEERPID=$!
	rc=0
	QARG=()
	((QUIET)) && QARG=(--quiet)
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
		env HOME="$W" CCID_LIBVIRT_KIT="$K" LD_LIBRARY_PATH="$K/bin" \
		CCID_LIBVIRT_PEER="$W/peer" \
		"$K/test-daemon-libvirt.sh" --agent "$K/bin/ccid-agent" \
		--keep "$W" "${QARG[@]}" || rc=$?
	kill "$PEERPID" 2>/dev/null || true
	wait "$PEERPID" 2>/dev/null || true
	[[ -n $KEEP ]] || rm -rf "$W"
	exit "$rc"
fi

# --- a private session bus for the daemon and its clients -----------------------
if [[ -z ${CCID_DAEMON_TEST_BUS:-} ]]; then
	command -v dbus-run-session >/dev/null || die "dbus-run-session not found (Debian package dbus-daemon)"
	export CCID_DAEMON_TEST_BUS=1
	exec dbus-run-session -- "${BASH_SOURCE[0]}" "${ARGS[@]}"
fi

if [[ -z $KIT ]]; then
	"$GUEST/build-guest.sh" >&2 || die "build-guest.sh failed"
fi
hl_work "$KEEP" ccid-daemon-libvirt
export HOME=$WORK XDG_CONFIG_HOME=$WORK/xdg-config XDG_CACHE_HOME=$WORK/xdg-cache
# Short: the usbredir socket's path must fit in 108 bytes.
export XDG_RUNTIME_DIR
XDG_RUNTIME_DIR=$(mktemp -d /tmp/ccid-lv-run.XXXXXX)
chmod 700 "$XDG_RUNTIME_DIR"
export PCSCLITE_CSOCK_NAME=$WORK/no-pcscd.comm
export LIBVIRT_AUTOSTART=0
mkdir -p "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME"
DOM=ccidemu-lv-$$
VIRSH=(virsh -q -c "$URI")

DPID= LVPID= LOGPID=
cleanup() {
	"${VIRSH[@]}" destroy "$DOM" >/dev/null 2>&1 || true
	"${VIRSH[@]}" undefine "$DOM" >/dev/null 2>&1 || true
	[[ -n $DPID ]] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	[[ -n $LVPID ]] && kill "$LVPID" 2>/dev/null
	[[ -n $LOGPID ]] && kill "$LOGPID" 2>/dev/null
	rm -rf "$XDG_RUNTIME_DIR"
	[[ -n $KEEP ]] || rm -rf "$WORK"
	return 0
}
trap cleanup EXIT

FAILS=0
# until_ms DEADLINE_MS CMD...: runs CMD every 20 ms until it succeeds.
until_ms() {
	local end=$(($(now_ms) + $1))
	shift
	until "$@"; do
		(($(now_ms) < end)) || return 1
		sleep 0.02
	done
}

# --- the daemon, before libvirtd -------------------------------------------------------
# No libvirtd yet: the daemon must not load its libvirt module (~11 MiB,
# docs/daemon.md), and must load it once libvirtd's socket appears.
"$AGENT" daemon --no-readers --libvirt "$URI" >"$WORK/daemon.log" 2>&1 &
DPID=$!
gdbus wait --session --timeout 10 org.ccidemu.Agent1 ||
	die "the daemon did not appear on the bus: $(cat "$WORK/daemon.log")"
module_loaded() { grep -q libccid-agent-libvirt "/proc/$DPID/maps"; }
! module_loaded || die "the daemon loaded libvirt with no libvirtd running"

# --- libvirt: the user's own virtlogd and libvirtd --------------------------------
virtlogd --daemon --pid-file "$WORK/virtlogd.pid" || die "virtlogd did not start"
until_ms 5000 test -s "$WORK/virtlogd.pid" || die "virtlogd wrote no pid file"
LOGPID=$(cat "$WORK/virtlogd.pid")
libvirtd --daemon --pid-file "$WORK/libvirtd.pid" || die "libvirtd did not start"
until_ms 5000 test -s "$WORK/libvirtd.pid" || die "libvirtd wrote no pid file"
LVPID=$(cat "$WORK/libvirtd.pid")
until_ms 10000 "${VIRSH[@]}" version >/dev/null 2>&1 ||
	die "libvirtd does not answer on $URI: $("${VIRSH[@]}" version 2>&1)"
until_ms 5000 module_loaded ||
	die "libvirtd runs, but the daemon did not load its libvirt module: $(cat "$WORK/daemon.log")"

# --- the domain: the guest kit as boot-guest.sh boots it, under libvirt -----------
mkdir -p "$WORK/extra/ccid-test"
install -m 755 "$GSCRIPT" "$WORK/extra/ccid-test/script.sh"
printf 'CCIDG_CONTROLLER=xhci\nCCIDG_REDIRS=0\n' >"$WORK/extra/ccid-test/env"
echo "VATR=$VATR" >"$WORK/extra/ccid-test/params"
cp "$GOUT/initramfs.img" "$WORK/initrd.img"
(cd "$WORK/extra" && find . -mindepth 1 | LC_ALL=C sort |
	cpio -o -H newc -R 0:0 --quiet) >>"$WORK/initrd.img"
KERNEL=$GOUT/vmlinuz
[[ -f $GOUT/vmlinux ]] && KERNEL=$GOUT/vmlinux
cat >"$WORK/domain.xml" <<EOF
<domain type='qemu'>
  <name>$DOM</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$KERNEL</kernel>
    <initrd>$WORK/initrd.img</initrd>
    <cmdline>console=ttyS0,115200 quiet loglevel=4 panic=-1 rdinit=/init mitigations=off random.trust_cpu=on</cmdline>
  </os>
  <features><acpi/></features>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
    <controller type='usb' model='qemu-xhci'/>
    <serial type='file'><source path='$WORK/console.log'/><target port='0'/></serial>
    <serial type='file'><source path='$WORK/results.log'/><target port='1'/></serial>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
"${VIRSH[@]}" define "$WORK/domain.xml" >/dev/null || die "virsh define failed"


vm_state() {
	"$AGENT" vms --json | /usr/bin/python3 -c '
import json, sys
v = [v for v in json.load(sys.stdin) if v["name"] == sys.argv[1]]
print(v[0]["state"] if v else "absent")' "$DOM"
}
vm_is() { [[ $(vm_state) == "$1" ]]; }
free_again() {
	"$AGENT" list --json | /usr/bin/python3 -c '
import json, sys
e = [x for x in json.load(sys.stdin) if x["id"] == "virtual"][0]
sys.exit(0 if e["holders"] == [] else 1)'
}
redirdevs() { "${VIRSH[@]}" dumpxml "$DOM" 2>/dev/null | grep -c "<redirdev bus='usb' type='unix'>" || true; }
has_redirdev() { [[ $(redirdevs) -ge 1 ]]; }
no_redirdev() { [[ $(redirdevs) == 0 ]]; }

: >"$WORK/results.log"
: >"$WORK/console.log"
t_start=$(now_ms)
"${VIRSH[@]}" start "$DOM" >/dev/null || die "virsh start failed: $(tail -n 5 "$XDG_CACHE_HOME/libvirt/qemu/log/$DOM.log" 2>/dev/null)"
if until_ms 5000 vm_is running; then
	hres vm-found PASS "domain $DOM is VM $DOM, running, $(($(now_ms) - t_start)) ms after virsh start"
else
	hres vm-found FAIL "VM state '$(vm_state)' 5 s after virsh start; daemon log: $(tail -n 5 "$WORK/daemon.log")"
fi
QPID=$(cat "$XDG_RUNTIME_DIR/libvirt/qemu/run/$DOM.pid" 2>/dev/null || true)
[[ -n $QPID ]] || die "no QEMU pid file for $DOM"

# Bad input while it runs.
rc=0; out=$("$AGENT" vm add "$DOM" --libvirt "$URI" 2>&1) || rc=$?
if ((rc == 4)) && [[ $out == *"already registered"* ]]; then
	hres vm-add-twice PASS "exit 4: $out"
else
	hres vm-add-twice FAIL "exit $rc: $out"
fi
rc=0; out=$("$AGENT" vm add nosuch-domain --libvirt "$URI" 2>&1) || rc=$?
if ((rc == 1)) && [[ $out == *"no domain 'nosuch-domain'"* ]]; then
	hres vm-add-unknown PASS "exit 1: $out"
else
	hres vm-add-unknown FAIL "exit $rc: $out"
fi

# The guest's requests.
on_request() {
	local t0 out rc
	case $1 in
	attach)
		t0=$(now_ms)
		rc=0
		out=$("$AGENT" attach virtual "$DOM" 2>&1) || rc=$?
		echo "attach rc=$rc ms=$(($(now_ms) - t0)) $out" >>"$WORK/requests.log"
		if has_redirdev; then
			echo "dumpxml-redirdev yes: $("${VIRSH[@]}" dumpxml "$DOM" | grep -A 4 '<redirdev' | tr -s ' \n' ' ')" >>"$WORK/requests.log"
		else
			echo "dumpxml-redirdev no" >>"$WORK/requests.log"
		fi ;;
	detach)
		t0=$(now_ms)
		rc=0
		out=$("$AGENT" detach virtual "$DOM" 2>&1) || rc=$?
		echo "detach rc=$rc ms=$(($(now_ms) - t0)) $out" >>"$WORK/requests.log"
		if no_redirdev; then
			echo "dumpxml-gone yes" >>"$WORK/requests.log"
		else
			echo "dumpxml-gone no" >>"$WORK/requests.log"
		fi ;;
	destroy)
		# Timed from QEMU's exit (virsh destroy itself takes ~1 s:
		# libvirt's SIGTERM, wait, cleanup).
		t0=$(now_ms)
		"${VIRSH[@]}" destroy "$DOM" >/dev/null 2>&1 &
		until_ms 10000 eval '! kill -0 "$QPID" 2>/dev/null' || true
		t1=$(now_ms)
		if until_ms 3000 free_again; then
			echo "destroy-free ms=$(($(now_ms) - t1)) (virsh destroy to QEMU gone $((t1 - t0)) ms)" >>"$WORK/requests.log"
		else
			echo "destroy-free never" >>"$WORK/requests.log"
		fi
		wait ;;
	*) echo "unknown request '$*'" >>"$WORK/requests.log" ;;
	esac
}
: >"$WORK/requests.log"
watch_requests "$WORK/results.log" "$QPID" on_request &
WATCH=$!
# The guest runs until the host destroys it (or the deadline).
end=$(($(now_ms) + 150000))
while kill -0 "$QPID" 2>/dev/null && (($(now_ms) < end)); do sleep 0.2; done
kill -0 "$QPID" 2>/dev/null && "${VIRSH[@]}" destroy "$DOM" >/dev/null 2>&1
wait "$WATCH" 2>/dev/null || true
((QUIET)) || sed 's/^/guest| /' "$WORK/console.log" | tail -n 40
sed 's/^/results| /' "$WORK/results.log"
cat "$WORK/requests.log"

for name in usb-enumerated atr-virtual reader-gone usb-gone atr-again; do
	if grep -q "^RESULT $name PASS" "$WORK/results.log"; then
		hres "guest-$name" PASS "$(grep -m 1 "^RESULT $name " "$WORK/results.log")"
	else
		hres "guest-$name" FAIL "$(grep -m 1 "^RESULT $name " "$WORK/results.log" || echo "no result $name")"
	fi
done
grep -q '^RESULT [^ ]* FAIL' "$WORK/results.log" &&
	hres guest-no-fail FAIL "$(grep '^RESULT [^ ]* FAIL' "$WORK/results.log" | tr '\n' ';')"
n=$(grep -c '^attach rc=0' "$WORK/requests.log" || true)
[[ $n == 2 ]] && hres attach-cli PASS "2 attaches" || hres attach-cli FAIL "$n successful attaches, want 2"
n=$(grep -c '^dumpxml-redirdev yes' "$WORK/requests.log" || true)
[[ $n == 2 ]] && hres dumpxml-redirdev PASS "virsh dumpxml showed the redirdev after each attach" ||
	hres dumpxml-redirdev FAIL "$n of 2 attaches showed in dumpxml"
grep -q '^detach rc=0' "$WORK/requests.log" && hres detach-cli PASS "$(grep -m 1 '^detach' "$WORK/requests.log")" ||
	hres detach-cli FAIL "$(grep -m 1 '^detach' "$WORK/requests.log" || echo no detach)"
grep -q '^dumpxml-gone yes' "$WORK/requests.log" && hres dumpxml-gone PASS "no redirdev in dumpxml once detach returned" ||
	hres dumpxml-gone FAIL "the redirdev stayed in dumpxml"
free_ms=$(sed -n 's/^destroy-free ms=\([0-9]*\).*/\1/p' "$WORK/requests.log")
if [[ -n $free_ms ]] && ((free_ms < 1000)); then
	hres destroy-free PASS "entry free ${free_ms} ms after the destroyed domain's QEMU exited ($(grep -o '(virsh.*' "$WORK/requests.log"))"
else
	hres destroy-free FAIL "entry not free within 1 s of virsh destroy ($(grep '^destroy' "$WORK/requests.log" || echo 'no destroy request'))"
fi
st=$(vm_state)
[[ $st == gone ]] && hres vm-gone PASS "VM state gone" || hres vm-gone FAIL "VM state '$st'"

# The domain comes back: its remembered entry with it.
mv "$WORK/results.log" "$WORK/results-1.log"
: >"$WORK/results.log"
t0=$(now_ms)
"${VIRSH[@]}" start "$DOM" >/dev/null || die "virsh start (again) failed"
if until_ms 20000 has_redirdev; then
	hres remembered-back PASS "the redirdev is in the domain again $(($(now_ms) - t0)) ms after virsh start"
else
	hres remembered-back FAIL "no redirdev 20 s after virsh start; daemon log: $(tail -n 5 "$WORK/daemon.log" | tr '\n' ';')"
fi

# A daemon killed while the domain holds the entry: the next one unplugs
# the dead device and attaches the remembered entry again.
holds() {
	"$AGENT" list --json | /usr/bin/python3 -c '
import json, sys
e = [x for x in json.load(sys.stdin) if x["id"] == "virtual"][0]
sys.exit(0 if e["holders"] == [sys.argv[1]] else 1)' "$DOM"
}
only_new_redirdev() {
	local x
	x=$("${VIRSH[@]}" dumpxml "$DOM" 2>/dev/null)
	[[ $(grep -c "<redirdev bus='usb' type='unix'>" <<<"$x") == 1 &&
		$x == *"<alias name='ua-ccidemu-1-virtual'/>"* ]]
}
kill -KILL "$DPID"
wait "$DPID" 2>/dev/null || true
"$AGENT" daemon --no-readers --libvirt "$URI" >>"$WORK/daemon.log" 2>&1 &
DPID=$!
t0=$(now_ms)
if until_ms 20000 only_new_redirdev && until_ms 5000 holds; then
	hres daemon-restart PASS "the dead device replaced by a new one, entry held by $DOM again, $(($(now_ms) - t0)) ms after the restart"
else
	hres daemon-restart FAIL "dumpxml: $("${VIRSH[@]}" dumpxml "$DOM" | grep -A 3 '<redirdev' | tr -s ' \n' ' '); list: $("$AGENT" list 2>&1 | tr '\n' ';')"
fi

# The socket of a redirdev serves the domain's QEMU only.  QEMU stopped,
# an attach waits on its socket; another uid connects first.
PEER=${CCID_LIBVIRT_PEER:-}
sockdir=$XDG_RUNTIME_DIR/ccid-emu/libvirt
new_sock() { comm -13 <(printf '%s\n' "${before[@]}") <(ls "$sockdir" 2>/dev/null | sort) | grep '\.sock$' | head -n 1 || true; }
has_new_sock() { [[ -n $(new_sock) ]]; }
if [[ -z $PEER ]]; then
	hres wrong-uid FAIL "needs another uid: run the test as root (it runs itself as nobody and connects as root)"
elif ! out=$("$AGENT" detach virtual "$DOM" 2>&1); then
	hres wrong-uid FAIL "detach before the check failed: $out"
else
	QPID2=$(cat "$XDG_RUNTIME_DIR/libvirt/qemu/run/$DOM.pid")
	mapfile -t before < <(ls "$sockdir" 2>/dev/null | sort)
	kill -STOP "$QPID2"
	"$AGENT" attach virtual "$DOM" >"$WORK/attach-peer.log" 2>&1 &
	APID=$!
	if until_ms 10000 has_new_sock; then
		sock=$sockdir/$(new_sock)
		# (A fifo: bounded, in case the connector is gone.)
		timeout 5 bash -c 'echo "$1" >"$2"' _ "$sock" "$PEER.req" || true
		until_ms 10000 test -s "$PEER.res" || true
		res=$(cat "$PEER.res" 2>/dev/null || true)
		logline=$(grep "refused a connection to $sock from pid" "$WORK/daemon.log" || true)
		if [[ $res == "refused uid=0 "* && $logline == *"uid 0: the domain's QEMU runs as uid $(id -u)"* ]]; then
			hres wrong-uid PASS "root's connection to $sock: $res; daemon: $logline"
		else
			hres wrong-uid FAIL "connector: '${res:-no answer}'; daemon log: '${logline:-no refusal}'"
		fi
	else
		hres wrong-uid FAIL "no socket appeared in $sockdir for the attach"
	fi
	kill -CONT "$QPID2"
	rc=0; wait "$APID" || rc=$?
	if ((rc == 0)) && until_ms 5000 holds && has_redirdev; then
		hres qemu-after-refusal PASS "QEMU's own connection served: $(cat "$WORK/attach-peer.log")"
	else
		hres qemu-after-refusal FAIL "attach exit $rc: $(cat "$WORK/attach-peer.log"); list: $("$AGENT" list 2>&1 | tr '\n' ';')"
	fi
fi
"${VIRSH[@]}" destroy "$DOM" >/dev/null 2>&1 || true
if kill -0 "$DPID" 2>/dev/null; then
	hres daemon-alive PASS "RSS $(awk '/^VmRSS:/ { print $2 }' "/proc/$DPID/status") kB"
else
	hres daemon-alive FAIL "the daemon exited"
fi

echo "=== summary (guest times from the guest's request; CLI times as the host saw them)"
grep '^METRIC' "$WORK/results-1.log" || true
grep -E '^(attach|detach) rc=0|^destroy-free' "$WORK/requests.log" | sed 's/ ms=/: /; s/ rc=0//' | cut -c1-60
echo "daemon log:"; sed 's/^/  | /' "$WORK/daemon.log"
if ((FAILS)); then
	echo "test-daemon-libvirt: FAIL (rerun with --keep DIR for the logs)"
	exit 1
fi
echo "test-daemon-libvirt: PASS"
