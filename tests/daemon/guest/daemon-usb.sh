# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest 1 of test-daemon-usb.sh: ccid-emu's emulated reader (1209:CC1D,
# loopback card) arrives over usb-redir; pcscd + libccid drive it; a
# dbus-daemon, `ccid-agent daemon` and three QEMUs (vm1..vm3, a firmware that only halts) run
# here.  Checks the passthrough entry and its exclusion rules; `list
# --json` snapshots go to the host as DATA (list-NAME, with the values
# the host checks them against in expect-NAME).

VID=$CCID_VID
PID=$CCID_PID
T=ccid-guest-tool
O=/opt/ccid-agent
A=$O/bin/ccid-agent
export LD_LIBRARY_PATH=$O/lib
export XDG_CONFIG_HOME=/tmp/xdg-config XDG_DATA_HOME=/tmp/xdg-data XDG_RUNTIME_DIR=/tmp/xdg-run
mkdir -p $XDG_CONFIG_HOME $XDG_DATA_HOME $XDG_RUNTIME_DIR
chmod 700 $XDG_RUNTIME_DIR

now_ms() { echo $(($(cut -d' ' -f1 /proc/uptime | tr -d .) * 10)); }

# snapshot NAME KEY=VALUE...: `list --json` and the expected values.
snapshot() {
	_n=$1
	shift
	$A list --json >/tmp/list-$_n.json 2>/tmp/list-$_n.err ||
		fail list-json-$_n "$(cat /tmp/list-$_n.err)"
	: >/tmp/expect-$_n.env
	for kv; do echo "$kv" >>/tmp/expect-$_n.env; done
	echo "PT=$PT" >>/tmp/expect-$_n.env
	echo "SH=$SH" >>/tmp/expect-$_n.env
	export_file list-$_n /tmp/list-$_n.json
	export_file expect-$_n /tmp/expect-$_n.env
}

# expect_busy NAME WANT CMD...: CMD exits 4 (Busy) and says WANT (ERE).
expect_busy() {
	_n=$1
	_w=$2
	shift 2
	"$@" >/tmp/$_n.out 2>&1
	_rc=$?
	if [ $_rc -eq 4 ] && grep -Eq "$_w" /tmp/$_n.out; then
		pass $_n "$(cat /tmp/$_n.out)"
	else
		fail $_n "exit $_rc, want 4 and /$_w/: $(cat /tmp/$_n.out)"
	fi
}

pcscd_has_card() { $T -t 3000 atr 2>/dev/null | grep -q '^atr=3B'; }

# --- the reader, driven by this guest's pcscd ---------------------------------
if ! usb_wait $VID $PID 30; then
	fail usb-enumerated "no USB device $VID:$PID after 30 s"
	exit 1
fi
ccid_stock_list $VID $PID
pcscd_start
check_grep g1-atr '^atr=3B' $T -t 20000 atr
PCSCD=$(cat "$CCIDG_STATE/pcscd.pid")

# --- three QEMUs: a USB controller and a QMP socket each ----------------------
# Running (usb-redir talks to its peer only while the VM runs) a firmware
# that only halts; a human monitor on 127.0.0.1:444N for `info usb`.
ifconfig lo 127.0.0.1 up
for n in 1 2 3; do
	QEMU_MODULE_DIR=$O/qemu $O/bin/qemu-system-x86_64 -L $O/qemu \
		-bios halt.bin -nodefaults -no-user-config -display none -machine pc \
		-accel tcg,tb-size=16 -m 16 -device qemu-xhci,id=xhci \
		-monitor tcp:127.0.0.1:444$n,server=on,wait=off \
		-qmp unix:/tmp/vm$n.qmp,server=on,wait=off >/tmp/vm$n.log 2>&1 &
	echo $! >/tmp/vm$n.pid
done
# usb_info N: QEMU N's whole answer to `info usb` (its prompt came back
# after it) in /tmp/info-usb-N.txt.  The monitor answers while nc's input
# is open; a slow answer is asked for again by the caller's wait_until.
usb_info() {
	(printf 'info usb\n'; sleep 1) | nc 127.0.0.1 444$1 2>/dev/null |
		tr -d '\r' >/tmp/info-usb-$1.txt
	[ "$(grep -o '(qemu)' /tmp/info-usb-$1.txt | wc -l)" -ge 2 ]
}
# usb_in_vm N WORDS: QEMU N's `info usb` lists a device and says WORDS.
usb_in_vm() { usb_info "$1" && grep -q "$2" /tmp/info-usb-$1.txt; }
if wait_until 30 sh -c 'test -S /tmp/vm1.qmp && test -S /tmp/vm2.qmp && test -S /tmp/vm3.qmp'; then
	pass qemu-in-guest "three QEMUs with QMP sockets"
else
	fail qemu-in-guest "$(cat /tmp/vm1.log)"
	exit 1
fi

# --- the session bus and the daemon --------------------------------------------
$O/bin/dbus-daemon --config-file=$O/etc/session.conf --fork --nopidfile \
	>/tmp/dbus.log 2>&1 || { fail dbus-daemon "$(cat /tmp/dbus.log)"; exit 1; }
export DBUS_SESSION_BUS_ADDRESS=unix:path=/tmp/session-bus
$A daemon >/tmp/daemon.log 2>&1 &
DAEMON=$!
entries_there() {
	$A list >/tmp/list.txt 2>&1 &&
		grep -q ' passthrough ' /tmp/list.txt && grep -q ' shared ' /tmp/list.txt
}
t0=$(now_ms)
if wait_until 30 entries_there; then
	pass daemon-entries "$(tr '\n' '|' </tmp/list.txt)"
	metric daemon_entries_ms $(($(now_ms) - t0)) ms
else
	fail daemon-entries "$(cat /tmp/list.txt; tail -n 20 /tmp/daemon.log)"
	exit 1
fi
PT=$(awk '$3 == "passthrough" { print $1; exit }' /tmp/list.txt)
SH=$(awk '$3 == "shared" { print $1; exit }' /tmp/list.txt)
note "passthrough entry $PT, shared entry $SH, pcscd pid $PCSCD, daemon pid $DAEMON"
# The two entries were matched by pcscd's SCARD_ATTR_CHANNEL_ID (USB bus
# and address), not by the name.
check_grep correlated-by-channel-id "entries '$PT' and '$SH' are one reader \(by channel id\)" cat /tmp/daemon.log
for n in 1 2 3; do
	check vm-add-$n $A vm add vm$n --qmp unix:/tmp/vm$n.qmp
done
# pcscd holds the reader: a host holder with its pid (looked at every 2 s).
wait_until 10 sh -c "$A list | grep -q 'pcscd\[$PCSCD\]'" ||
	fail pcscd-holder "$($A list)"
snapshot start PCSCD=$PCSCD

# What a CLI call costs by itself here (a process start under TCG).
t0=$(now_ms)
$A vms >/dev/null 2>&1
metric cli_call_ms $(($(now_ms) - t0)) ms

# --- passthrough: taken from pcscd ----------------------------------------------
t0=$(now_ms)
if $A attach "$PT" vm1 >/tmp/pt1.out 2>&1; then
	metric pt_attach_ms $(($(now_ms) - t0)) ms
	pass pt-attach "$(cat /tmp/pt1.out)"
else
	fail pt-attach "$(cat /tmp/pt1.out; tail -n 20 /tmp/daemon.log)"
fi
# pcscd was told the reader left (a synthetic udev "remove"): it closes it.
if wait_until 10 sh -c "! $A list | grep -q 'pcscd\['"; then
	pass pcscd-let-go "pcscd no longer holds the reader"
	metric pcscd_let_go_ms $(($(now_ms) - t0)) ms
else
	fail pcscd-let-go "$($A list; $A list-usb)"
fi
check_grep pt-claimed-by-daemon "ccid-agent \(pid $DAEMON\)" $A list-usb
# usbredirhost told QEMU about the device (device_connect, with the real
# reader's speed): it is on vm1's USB bus at full speed (before that,
# QEMU lists the usb-redir device at its default, 1.5 Mb/s).
if wait_until 20 usb_in_vm 1 'Speed 12 Mb/s.*ID: ccidemu-'; then
	pass pt-in-vm1 "$(grep 'ID: ccidemu-' /tmp/info-usb-1.txt)"
else
	fail pt-in-vm1 "$(cat /tmp/info-usb-1.txt)"
fi
if pcscd_has_card; then
	fail pt-pcscd-lost "this guest's pcscd still reaches the card"
else
	pass pt-pcscd-lost "this guest's pcscd cannot reach the card"
fi
snapshot attached HOLDER=vm1
expect_busy shared-refused-pt-held "holder: vm1" $A attach "$SH" vm2
expect_busy pt-second-refused "holder: vm1" $A attach "$PT" vm2
t0=$(now_ms)
check pt-detach $A detach "$PT" vm1
metric pt_detach_ms $(($(now_ms) - t0)) ms
if ! wait_until 20 usb_info 1 || grep -q 'ID: ccidemu-' /tmp/info-usb-1.txt; then
	fail pt-gone-from-vm1 "$(cat /tmp/info-usb-1.txt)"
else
	pass pt-gone-from-vm1 "vm1's info usb: $(tr '\n' ' ' </tmp/info-usb-1.txt | cut -c1-120)"
fi
if wait_until 30 pcscd_has_card; then
	metric pt_pcscd_back_ms $(($(now_ms) - t0)) ms
	pass pt-pcscd-back "pcscd reads the card again after the detach"
else
	fail pt-pcscd-back "$(tail -n 20 $CCIDG_PCSCD_LOG)"
fi

# --- 50 concurrent Attach calls, one client process each -----------------------
rm -rf /tmp/race
mkdir -p /tmp/race
t0=$(now_ms)
i=0
while [ $i -lt 50 ]; do
	( $A attach "$PT" vm$((i % 3 + 1)) >/tmp/race/$i.out 2>&1; echo $? >/tmp/race/$i.rc ) &
	i=$((i + 1))
done
wait_until 120 sh -c '[ $(ls /tmp/race/*.rc 2>/dev/null | wc -l) -eq 50 ]'
metric race_ms $(($(now_ms) - t0)) ms
ok=$(grep -lx 0 /tmp/race/*.rc | wc -l)
busy=$(grep -lx 4 /tmp/race/*.rc | wc -l)
metric race_ok $ok calls
metric race_busy $busy calls
WIN=$($A list | awk -v id="$PT" '$1 == id { print $5 }' | cut -d, -f1)
named=0
for f in /tmp/race/*.rc; do
	[ "$(cat $f)" = 4 ] && grep -q "holder: $WIN)" "${f%.rc}.out" && named=$((named + 1))
done
if [ "$ok" -eq 1 ] && [ "$busy" -eq 49 ] && [ "$named" -eq 49 ]; then
	pass race "1 success ($WIN), 49 Busy naming it: $(cat "$(grep -lx 4 /tmp/race/*.rc | head -n 1 | sed 's/rc$/out/')")"
else
	fail race "$ok successes, $busy Busy, $named naming '$WIN'; $(cat /tmp/race/*.out | sort | uniq -c | head -n 5)"
fi
snapshot race-free HOLDER=$WIN
check race-detach $A detach "$PT" "$WIN"
wait_until 30 pcscd_has_card || fail pcscd-back-after-race "$(tail -n 5 $CCIDG_PCSCD_LOG)"

# --- two VMs share the reader: passthrough refused naming both ------------------
check shared-attach-vm2 $A attach "$SH" vm2
check shared-attach-vm3 $A attach "$SH" vm3
expect_busy pt-refused-shared "VMs vm2, vm3 hold.*holders: vm2, vm3" $A attach "$PT" vm1
snapshot shared-two HOLDERS=vm2,vm3
check shared-detach-vm2 $A detach "$SH" vm2
check shared-detach-vm3 $A detach "$SH" vm3

# --- a host process other than pcscd holds it: unavailable, Busy naming it ----
pcscd_stop
$A passthrough --device $VID:$PID -l tcp:127.0.0.1:7000 >/tmp/other.out 2>/tmp/other.log &
OTHER=$!
if wait_until 20 grep -q '^device: ' /tmp/other.out; then
	pass other-holder-started "ccid-agent passthrough, pid $OTHER"
else
	fail other-holder-started "$(cat /tmp/other.log)"
fi
if wait_until 10 sh -c "$A list | grep -q 'ccid-agent\[$OTHER\]'"; then
	pass other-holder-listed "$($A list | grep "^$PT ")"
else
	fail other-holder-listed "$($A list)"
fi
expect_busy pt-refused-host-process "ccid-agent \(pid $OTHER\)" $A attach "$PT" vm1
snapshot holder-process OTHER=$OTHER
kill $OTHER
wait $OTHER

# --- a kernel driver bound to the reader (as usbhid to a YubiKey's HID
# interfaces): detached for the session, bound again after it ---------------
drv_bound() { usb_describe $VID $PID | grep -q 'driver=usbserial'; }
if insmod $O/modules/usbserial.ko vendor=0x$VID product=0x$PID &&
   wait_until 10 drv_bound; then
	pass kernel-driver-bound "$(usb_describe $VID $PID | tr '\n' ' ')"
else
	fail kernel-driver-bound "$(usb_describe $VID $PID | tr '\n' ' ')"
fi
check pt-attach-kernel-driver $A attach "$PT" vm1
check_grep pt-kernel-driver-detached 'driver=usbfs' usb_describe $VID $PID
if wait_until 20 usb_in_vm 1 'Speed 12 Mb/s.*ID: ccidemu-'; then
	pass pt-in-vm1-kernel-driver "$(grep 'ID: ccidemu-' /tmp/info-usb-1.txt)"
else
	fail pt-in-vm1-kernel-driver "$(cat /tmp/info-usb-1.txt)"
fi
check pt-detach-kernel-driver $A detach "$PT" vm1
if wait_until 10 drv_bound; then
	pass kernel-driver-rebound "$(usb_describe $VID $PID | tr '\n' ' ')"
else
	fail kernel-driver-rebound "$(usb_describe $VID $PID | tr '\n' ' ')"
fi
rmmod usbserial

# --- a VM dies while it has the reader: free again, pcscd gets it back -------
pcscd_start
PCSCD=$(cat "$CCIDG_STATE/pcscd.pid")
wait_until 20 pcscd_has_card || fail pcscd-restarted "$(tail -n 5 $CCIDG_PCSCD_LOG)"
check pt-attach-vm3 $A attach "$PT" vm3
t0=$(now_ms)
kill -KILL "$(cat /tmp/vm3.pid)"
pt_free() { $A list | awk -v id="$PT" '$1 == id && $5 !~ /vm3/ { ok = 1 } END { exit !ok }'; }
if wait_until 10 pt_free; then
	metric vm_killed_to_free_ms $(($(now_ms) - t0)) ms
	pass pt-free-after-vm-killed "$($A list | grep "^$PT ")"
else
	fail pt-free-after-vm-killed "$($A list)"
fi
if wait_until 30 pcscd_has_card; then
	metric vm_killed_to_pcscd_ms $(($(now_ms) - t0)) ms
	pass pcscd-back-after-vm-killed "pcscd reads the card again"
else
	fail pcscd-back-after-vm-killed "$(tail -n 5 $CCIDG_PCSCD_LOG)"
fi

# --- unplug and plug again: the same entries come back -----------------------
pt_state() { $A list | awk -v id="$PT" '$1 == id { print $2 }'; }
pt_unplugged() { ! usb_present $VID $PID && [ "$(pt_state)" = unavailable ]; }
pt_available() { _s=$(pt_state); [ -n "$_s" ] && [ "$_s" != unavailable ]; }
host_request unplug
if wait_until 30 pt_unplugged; then
	pass pt-unplugged "$($A list --json | tr -d '\n' | grep -o '"id":"'"$PT"'"[^}]*"reason":"[^"]*"')"
else
	fail pt-unplugged "$($A list)"
fi
check_grep pt-reason-unplugged 'the reader is unplugged' $A list --json
host_request plug
if usb_wait $VID $PID 60 && wait_until 30 pt_available; then
	pass pt-replugged "$($A list | grep "^$PT ")"
else
	fail pt-replugged "$($A list)"
fi
n=$($A list | grep -c ' passthrough ')
if [ "$n" -eq 1 ]; then
	pass pt-same-entry "one passthrough entry, id $PT, after the replug"
else
	fail pt-same-entry "$n passthrough entries: $($A list)"
fi
check_grep pt-peer-again "\"peer\":\"$SH\"" $A list --json

kill -0 $DAEMON && pass daemon-alive "RSS $(awk '/^VmRSS:/ { print $2 }' /proc/$DAEMON/status) kB"
note "daemon log:"
sed 's/^/  daemon| /' /tmp/daemon.log | tail -n 60
