#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A private pcscd with a vpcd (virtual smart-card reader) driver, for tests
# that need real PC/SC without touching the system's pcscd.
#
#   private-pcscd.sh start DIR [PORT]   start it in the background, wait
#                                       until it answers, print its env
#   private-pcscd.sh stop DIR           stop the instance started in DIR
#   private-pcscd.sh run DIR [PORT]     run it in the foreground (exec)
#   private-pcscd.sh env DIR            print the client environment again
#
# Why a mount namespace: pcscd 1.9.9 ignores PCSCLITE_CSOCK_NAME for its own
# socket and always creates /run/pcscd/pcscd.comm.  So it runs in a mount
# namespace of its own where DIR/run is bind-mounted on /run/pcscd; only
# that process sees the bind mount, and the system's /run/pcscd (and any
# pcscd serving it) is never touched.  Clients find the private instance
# through PCSCLITE_CSOCK_NAME=DIR/run/pcscd.comm, which libpcsclite reads
# once, at the first SCardEstablishContext of the process.
#
# The reader configuration lives in DIR/reader.conf.d (pcscd -c); vpcd
# listens for a virtual card (vicc, tests/pcsc/vicc_card.py) on TCP PORT
# and PORT+1, giving two readers: "Virtual PCD 00 00" (PORT) and
# "Virtual PCD 00 01" (PORT+1).  Without PORT a free pair is picked.
#
# `start` prints, one per line:
#   PCSCLITE_CSOCK_NAME=DIR/run/pcscd.comm
#   VPCD_PORT=PORT
#   PCSCD_PID=PID
# and writes the same lines to DIR/env.  pcscd's own log goes to
# DIR/pcscd.log (PCSCD_DEBUG=1 adds -d, PCSCD_APDU_LOG=1 adds -a).
#
# Needs root for the mount namespace (or unprivileged user namespaces, in
# which case /run/pcscd must already exist).  Exits 77 (the "skip" status
# of meson and automake) when pcscd, the vpcd driver or unshare is
# missing, so test suites can skip cleanly.

set -eu

VPCD_LIB=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
WAIT_PATH=$(cd "$(dirname "$0")/../common" && pwd)/wait-path.py
SKIP=77

die() { echo "private-pcscd: $*" >&2; exit 1; }
skip() { echo "private-pcscd: $* (skipping)" >&2; exit $SKIP; }

usage() {
	sed -n '4,12p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

check_tools() {
	command -v pcscd >/dev/null 2>&1 || [ -x /usr/sbin/pcscd ] ||
		skip "pcscd not installed (Debian package pcscd)"
	[ -e "$VPCD_LIB" ] || skip "vpcd driver $VPCD_LIB not installed (Debian package vsmartcard-vpcd)"
	command -v unshare >/dev/null 2>&1 || skip "unshare not found (util-linux)"
	# A container without CAP_SYS_ADMIN (or with user namespaces off)
	# cannot make the mount namespace.
	$(ns_cmd) true 2>/dev/null ||
		skip "cannot create a mount namespace ($(ns_cmd) failed)"
}

ns_cmd() {
	if [ "$(id -u)" = 0 ]; then
		echo "unshare --mount --propagation private"
	else
		echo "unshare --user --map-root-user --mount --propagation private"
	fi
}

pcscd_bin() {
	command -v pcscd 2>/dev/null || echo /usr/sbin/pcscd
}

# A TCP port P such that P and P+1 are both free on all addresses (vpcd
# binds INADDR_ANY).  Bound and released by Python: good enough for tests,
# which retry if another process steals the port meanwhile.
free_port_pair() {
	/usr/bin/python3 - <<'EOF'
import random, socket
for _ in range(200):
    p = random.randint(20000, 60000)
    socks = []
    try:
        for q in (p, p + 1):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("", q))
            socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(p)
    break
else:
    raise SystemExit("no free port pair found")
EOF
}

prepare() {
	dir=$1
	port=$2
	mkdir -p "$dir/run" "$dir/reader.conf.d"
	chmod 0755 "$dir/run"
	# Same format as Debian's /etc/reader.conf.d/vpcd.
	cat >"$dir/reader.conf.d/vpcd" <<EOF
FRIENDLYNAME "Virtual PCD"
DEVICENAME   /dev/null:$port
LIBPATH      $VPCD_LIB
CHANNELID    $port
EOF
	# A bind mount needs its mount point; pcscd's own packaging creates
	# this (empty) directory at boot.  Ours stays empty: only the private
	# namespace sees anything mounted on it.
	if [ ! -d /run/pcscd ]; then
		if [ "$(id -u)" = 0 ]; then
			mkdir -p /run/pcscd
		else
			skip "/run/pcscd does not exist and we are not root"
		fi
	fi
	{
		echo "PCSCLITE_CSOCK_NAME=$dir/run/pcscd.comm"
		echo "VPCD_PORT=$port"
	} >"$dir/env.tmp"
}

# The command line that runs pcscd in its own mount namespace.  Ends in
# exec, so the PID that unshare starts is pcscd's PID.
exec_pcscd() {
	dir=$1
	flags="-f -c $dir/reader.conf.d"
	[ "${PCSCD_DEBUG:-0}" = 1 ] && flags="$flags -d"
	[ "${PCSCD_APDU_LOG:-0}" = 1 ] && flags="$flags -a"
	ns=$(ns_cmd)
	# Socket activation variables from a systemd session would make pcscd
	# use an inherited socket instead of its own.
	unset LISTEN_FDS LISTEN_PID LISTEN_FDNAMES
	# shellcheck disable=SC2086,SC2016
	exec $ns sh -c 'mount --bind "$1" /run/pcscd && shift && exec "$@"' \
		sh "$dir/run" "$(pcscd_bin)" $flags
}

cmd=${1:-}
[ $# -ge 2 ] || usage
dir=$2
port=${3:-}

case $cmd in
run)
	check_tools
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[ -n "$port" ] || port=$(free_port_pair)
	prepare "$dir" "$port"
	mv "$dir/env.tmp" "$dir/env"
	exec_pcscd "$dir"
	;;
start)
	check_tools
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [ -f "$dir/pcscd.pid" ] && kill -0 "$(cat "$dir/pcscd.pid")" 2>/dev/null; then
		die "a private pcscd already runs for $dir (pid $(cat "$dir/pcscd.pid"))"
	fi
	[ -n "$port" ] || port=$(free_port_pair)
	prepare "$dir" "$port"
	rm -f "$dir/run/pcscd.comm" "$dir/run/pcscd.pid"
	(exec_pcscd "$dir") >"$dir/pcscd.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$dir/pcscd.pid"
	# Ready when the socket exists; pcscd creates it after loading the
	# reader configuration.  Waited for with inotify (and pcscd's exit
	# with a pidfd), not by polling.
	rc=0
	/usr/bin/python3 "$WAIT_PATH" exists 10 "$dir/run/pcscd.comm" "$pid" || rc=$?
	case $rc in
	0) ;;
	3) cat "$dir/pcscd.log" >&2; die "pcscd exited during startup (log above)" ;;
	*) kill "$pid" 2>/dev/null; die "pcscd did not create its socket within 10 s" ;;
	esac
	echo "PCSCD_PID=$pid" >>"$dir/env.tmp"
	mv "$dir/env.tmp" "$dir/env"
	cat "$dir/env"
	;;
stop)
	[ -f "$dir/pcscd.pid" ] || exit 0
	pid=$(cat "$dir/pcscd.pid")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		/usr/bin/python3 "$WAIT_PATH" exit 5 "$pid" ||
			kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$dir/pcscd.pid"
	;;
env)
	cat "$dir/env"
	;;
*)
	usage
	;;
esac
