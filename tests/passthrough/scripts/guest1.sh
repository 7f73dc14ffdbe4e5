# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest 1 of the nested passthrough test (test-nested-passthrough.sh): sees
# ccid-emu's emulated reader (1209:CC1D, loopback card) through usb-redir
# from `ccid-agent serve` on the host, and passes it through with
# `ccid-agent passthrough` (libusb, usbredirhost) on TCP port 7000, which
# QEMU's user networking forwards to the host for guest 2.
#
# Talks to the host with NOTE lines: "ptest ready" once the passthrough
# serves; then waits until guest 2 has connected and gone away
# $PT_SESSIONS times (the host's runs A, B, C), then checks the reader is
# the host's (guest 1's) again.

VID=$CCID_VID
PID=$CCID_PID
T=ccid-guest-tool
A=/opt/ccid-agent/bin/ccid-agent
export LD_LIBRARY_PATH=/opt/ccid-agent/lib
# GLib's TLS module from the layer; the certificates from the host.
export GIO_EXTRA_MODULES=/opt/ccid-agent/gio
TLS="--tls-creds /ccid-test/tls"
PT_SESSIONS=${PT_SESSIONS:-3}
[ -f /ccid-test/pt.env ] && . /ccid-test/pt.env

# --- network: virtio-net, static address of QEMU's user network ------------
for m in failover net_failover virtio_net; do
	insmod /opt/ccid-agent/modules/$m.ko || note "insmod $m failed"
done
wait_until 10 sh -c 'ls /sys/class/net | grep -qv "^lo$"'
IFACE=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
ifconfig lo 127.0.0.1 up
if ifconfig "$IFACE" 10.0.2.15 netmask 255.255.255.0 up; then
	pass network "$IFACE 10.0.2.15"
else
	fail network "no interface ($IFACE)"
	exit 1
fi

# --- the emulated reader, directly ------------------------------------------
if ! usb_wait $VID $PID 30; then
	fail usb-enumerated "no USB device $VID:$PID after 30 s"
	exit 1
fi
ccid_stock_list $VID $PID
pcscd_start
check_grep g1-atr '^atr=3B' $T -t 20000 atr
check g1-pattern-65536 $T -t 20000 pattern 65536
if $T -t 60000 bench 200 >/tmp/g1-bench.log 2>&1; then
	pass g1-bench "$(tail -n 1 /tmp/g1-bench.log)"
	metric g1_echo0_mean_ms "$(sed -n 's/.*mean_ms=\([0-9.]*\).*/\1/p' /tmp/g1-bench.log)" ms
	metric g1_echo0_apdus_per_s "$(sed -n 's/.*apdus_per_s=\([0-9.]*\).*/\1/p' /tmp/g1-bench.log)" /s
else
	fail g1-bench "$(tail -n 1 /tmp/g1-bench.log)"
fi
if $T -t 60000 bench 20 pattern:65536 >/tmp/g1-bench64.log 2>&1; then
	metric g1_pattern64k_mean_ms "$(sed -n 's/.*mean_ms=\([0-9.]*\).*/\1/p' /tmp/g1-bench64.log)" ms
fi

# --- list-usb and the refusal while pcscd holds it --------------------------
check_grep list-usb-reader "^$VID:$PID" $A list-usb
check_grep list-usb-held-pcscd 'pcscd \(pid [0-9]+\) has claimed' $A list-usb
check_grep list-usb-json '"held": true' $A list-usb --json
$A passthrough --device $VID:$PID -l tcp:0.0.0.0:7000 $TLS >/tmp/refused.out 2>/tmp/refused.log
rc=$?
if [ $rc -eq 1 ] && grep -q 'in use: pcscd (pid [0-9]*) has claimed.*stop pcscd' /tmp/refused.log; then
	pass refuse-pcscd "$(cat /tmp/refused.log)"
else
	fail refuse-pcscd "rc=$rc: $(cat /tmp/refused.log)"
fi
check_grep usb-still-pcscd 'driver=usbfs' usb_describe $VID $PID
pcscd_stop
# pcscd's usbfs claim goes with it; passthrough needs the interface free.
usbfs_free() { ! usb_describe $VID $PID | grep -q 'driver=usbfs'; }
wait_until 5 usbfs_free || fail usbfs-released "pcscd gone, its usbfs claim still there after 5 s"

# --- passthrough --------------------------------------------------------------
$A passthrough --device $VID:$PID -l tcp:0.0.0.0:7000 $TLS >/tmp/pt1.out 2>/tmp/pt1.log &
PT=$!
if wait_until 20 grep -q '^device: ' /tmp/pt1.out; then
	pass passthrough-start "$(grep '^qemu: ' /tmp/pt1.out)"
else
	fail passthrough-start "$(cat /tmp/pt1.log)"
	exit 1
fi
check_grep list-usb-held-agent 'ccid-agent \(pid [0-9]+\) has claimed' $A list-usb
$A passthrough --device $VID:$PID -l tcp:0.0.0.0:7001 $TLS >/tmp/second.out 2>/tmp/second.log
rc=$?
if [ $rc -eq 1 ] && grep -q "ccid-agent (pid $PT) has claimed" /tmp/second.log; then
	pass refuse-second "$(cat /tmp/second.log)"
else
	fail refuse-second "rc=$rc: $(cat /tmp/second.log)"
fi
# pcscd cannot take it either while passed through
pcscd_start
sleep 2
if $T -t 3000 atr >/tmp/g1-blocked.log 2>&1; then
	fail pcscd-blocked "guest 1's pcscd reached the card: $(cat /tmp/g1-blocked.log)"
else
	pass pcscd-blocked "$(tail -n 1 /tmp/g1-blocked.log)"
fi
pcscd_stop

note "ptest ready"
n=0
i=0
while [ $i -lt 3000 ]; do   # 600 s
	n=$(grep -c 'QEMU disconnected' /tmp/pt1.log)
	[ "$n" -ge "$PT_SESSIONS" ] && break
	kill -0 $PT 2>/dev/null || break
	sleep 0.2
	i=$((i + 1))
done
sed 's/^/  pt1| /' /tmp/pt1.log
if [ "$n" -ge "$PT_SESSIONS" ]; then
	pass guest2-sessions "$n sessions ended"
else
	fail guest2-sessions "only $n of $PT_SESSIONS sessions ended"
fi
if grep -q 'reader unplugged' /tmp/pt1.log && grep -q 'plugged in again and claimed' /tmp/pt1.log; then
	pass hotplug-seen "$(grep 'plugged in again' /tmp/pt1.log | head -n 1)"
else
	fail hotplug-seen "no unplug/replug in the agent's log"
fi

# --- stop it: the reader is guest 1's again ----------------------------------
kill -TERM $PT
wait $PT
rc=$?
if [ $rc -eq 0 ] && grep -q 'SIGTERM received: releasing' /tmp/pt1.log; then
	pass passthrough-stop "exit 0"
else
	fail passthrough-stop "exit $rc: $(tail -n 3 /tmp/pt1.log)"
fi
if usb_describe $VID $PID | grep -q 'driver=usbfs'; then
	fail released "still claimed: $(usb_describe $VID $PID)"
else
	pass released "$(usb_describe $VID $PID | tr '\n' ' ')"
fi
pcscd_start
check_grep g1-after-atr '^atr=3B' $T -t 20000 atr
check g1-after-pattern-65536 $T -t 20000 pattern 65536
check g1-after-echo-65535 $T -t 20000 echo 65535
