#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Boots the test guest (build-guest.sh) under qemu-system-x86_64 with one
# USB host controller, optional usb-redir devices and extra QEMU
# arguments, runs a guest shell script in it and collects its results.
#
# Usage: boot-guest.sh [OPTIONS] [-- EXTRA_QEMU_ARGS...]
#   -s, --script FILE        guest script, run as /ccid-test/script.sh with
#                            /usr/lib/ccid-guest/lib.sh's helpers
#   -c, --controller C       xhci (qemu-xhci, default), ehci (ich9-usb-ehci1
#                            with uhci companions) or uhci (piix3-usb-uhci)
#   -r, --redir SOCKET       add a usb-redir device connected to SOCKET: a
#                            unix socket path or HOST:PORT (repeatable)
#       --redir-reconnect S  let QEMU start before the redir server and
#                            reconnect every S seconds
#       --redir-opts OPTS    extra usb-redir properties, e.g. filter=...
#   -f, --file SRC[:DEST]    copy SRC into the guest (default DEST
#                            /ccid-test/NAME) (repeatable)
#   -e, --expect NAMES       results that must PASS (repeatable, or
#                            comma-separated)
#   -t, --timeout SEC        kill the guest after SEC seconds (default 300)
#   -w, --workdir DIR        keep logs here (default: a new directory
#                            under tests/guest/out/runs/)
#       --pidfile FILE       QEMU writes its PID here
#       --qmp SOCKET         QMP server on this unix socket (device_add,
#                            device_del, quit, ...)
#   -m, --memory MB          guest RAM (default 512)
#       --smp N              guest CPUs (default 1)
#       --accel A            QEMU accelerator (default tcg)
#       --append ARGS        extra kernel command line
#       --debug              pcscd --debug and libccid logs in the guest
#       --shell              console on this terminal and a shell after
#                            the script; no timeout (needs a terminal)
#   -q, --quiet              do not copy the guest console to stdout
#       --bzimage            boot the compressed kernel instead of the PVH
#                            vmlinux (the path a boot loader takes; slower)
#       --no-build           do not run build-guest.sh first
#       --out DIR            the guest build (default tests/guest/out)
#
# The guest reports on its second serial port (results.log):
#   RESULT <name> PASS|FAIL|SKIP <detail>, METRIC <name> <value> <unit>,
#   NOTE <text>, REQUEST <words> and DATA <name> <hex> (for host scripts;
#   DATA is not echoed), and DONE <rc> <fails> when the script ends; then
#   it powers off.  Exit status: 0 the script finished, no FAIL and every
#   --expect PASSed (or, without --expect, at least one PASS); 1 a result
#   failed or is missing; 2 usage or setup error; 3 timeout; 4 QEMU exited
#   before DONE.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${GUEST_OUT:-$HERE/out}
QEMU=${QEMU:-qemu-system-x86_64}

SCRIPT=
CONTROLLER=xhci
REDIRS=()
REDIR_RECONNECT=
REDIR_OPTS=
FILES=()
EXPECT=()
TIMEOUT=300
WORK=
PIDFILE=
QMP=
MEMORY=512
SMP=1
ACCEL=tcg
APPEND=
DEBUG=0
SHELL_MODE=0
QUIET=0
BUILD=1
BZIMAGE=0
EXTRA=()

say() { printf 'boot-guest: %s\n' "$*"; }
die() { printf 'boot-guest: error: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '3,48p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while (($#)); do
	case $1 in
	-s|--script) SCRIPT=${2:?$1 needs a file}; shift ;;
	-c|--controller) CONTROLLER=${2:?$1 needs xhci, ehci or uhci}; shift ;;
	-r|--redir) REDIRS+=("${2:?$1 needs a socket}"); shift ;;
	--redir-reconnect) REDIR_RECONNECT=${2:?$1 needs seconds}; shift ;;
	--redir-opts) REDIR_OPTS=${2:?$1 needs properties}; shift ;;
	-f|--file) FILES+=("${2:?$1 needs SRC[:DEST]}"); shift ;;
	-e|--expect) IFS=', ' read -r -a names <<<"${2:?$1 needs names}"
		EXPECT+=("${names[@]}"); shift ;;
	-t|--timeout) TIMEOUT=${2:?$1 needs seconds}; shift ;;
	-w|--workdir) WORK=${2:?$1 needs a directory}; shift ;;
	--pidfile) PIDFILE=${2:?$1 needs a file}; shift ;;
	--qmp) QMP=${2:?$1 needs a socket path}; shift ;;
	-m|--memory) MEMORY=${2:?$1 needs MB}; shift ;;
	--smp) SMP=${2:?$1 needs a count}; shift ;;
	--accel) ACCEL=${2:?$1 needs an accelerator}; shift ;;
	--append) APPEND=${2:?$1 needs kernel arguments}; shift ;;
	--debug) DEBUG=1 ;;
	--shell) SHELL_MODE=1 ;;
	-q|--quiet) QUIET=1 ;;
	--no-build) BUILD=0 ;;
	--bzimage) BZIMAGE=1 ;;
	--out) OUT=${2:?$1 needs a directory}; shift ;;
	-h|--help) usage; exit 0 ;;
	--) shift; EXTRA=("$@"); break ;;
	*) die "unknown argument '$1' (try --help)" ;;
	esac
	shift
done

[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "--timeout: '$TIMEOUT' is not a positive number of seconds"
[[ -z $REDIR_RECONNECT || $REDIR_RECONNECT =~ ^[1-9][0-9]*$ ]] ||
	die "--redir-reconnect: '$REDIR_RECONNECT' is not a positive number of seconds"
if [[ -n $SCRIPT ]]; then
	[[ -r $SCRIPT ]] || die "--script: cannot read '$SCRIPT'"
elif ((!SHELL_MODE)); then
	die "no --script (and no --shell): nothing to run in the guest"
fi
command -v "$QEMU" >/dev/null || die "$QEMU not found (package qemu-system-x86)"
command -v cpio >/dev/null || die "cpio not found (package cpio)"
for name in "${EXPECT[@]}"; do
	[[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "--expect: '$name' is not a result name"
done

if ((BUILD)); then
	GUEST_OUT=$OUT "$HERE/build-guest.sh" >&2 || die "build-guest.sh failed"
fi
[[ -f $OUT/vmlinuz && -f $OUT/initramfs.img ]] ||
	die "no guest in $OUT: run tests/guest/build-guest.sh"
KERNEL=$OUT/vmlinuz
((!BZIMAGE)) && [[ -f $OUT/vmlinux ]] && KERNEL=$OUT/vmlinux

if [[ -z $WORK ]]; then
	mkdir -p "$OUT/runs"
	# Keep the 20 newest default work directories.
	find "$OUT/runs" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' |
		sort -rn | tail -n +20 | cut -d' ' -f2- | xargs -r rm -rf
	WORK=$(mktemp -d "$OUT/runs/$(date +%Y%m%d-%H%M%S)-XXXX")
fi
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# --- initramfs: the built one plus a cpio with the script and files -----------
# The kernel unpacks concatenated archives in order, later files winning.

EXTRA_ROOT=$WORK/extra
rm -rf "$EXTRA_ROOT"
mkdir -p "$EXTRA_ROOT/ccid-test"
[[ -n $SCRIPT ]] && install -m 755 "$SCRIPT" "$EXTRA_ROOT/ccid-test/script.sh"
# What the guest script may want to know about its machine.
cat >"$EXTRA_ROOT/ccid-test/env" <<EOF
CCIDG_CONTROLLER=$CONTROLLER
CCIDG_REDIRS=${#REDIRS[@]}
EOF
for spec in "${FILES[@]}"; do
	src=${spec%%:*}
	dest=/ccid-test/${src##*/}
	[[ $spec == *:* ]] && dest=${spec#*:}
	[[ -r $src ]] || die "--file: cannot read '$src'"
	[[ $dest == /* && $dest != */../* ]] || die "--file: '$dest' is not an absolute guest path"
	mkdir -p "$EXTRA_ROOT$(dirname "$dest")"
	cp -a "$src" "$EXTRA_ROOT$dest"
done
cp "$OUT/initramfs.img" "$WORK/initrd.img"
(cd "$EXTRA_ROOT" && find . -mindepth 1 | LC_ALL=C sort |
	cpio -o -H newc -R 0:0 --quiet) >>"$WORK/initrd.img"

# --- QEMU command line ------------------------------------------------------------

KARGS="console=ttyS0,115200 quiet loglevel=4 panic=-1 rdinit=/init"
KARGS+=" mitigations=off random.trust_cpu=on"
((DEBUG)) && KARGS+=" ccidg.debug=1"
((SHELL_MODE)) && KARGS+=" ccidg.shell=1"
[[ -n $APPEND ]] && KARGS+=" $APPEND"

# Every controller's bus is usb.0, so extra -device usb-* need no bus=.
# shellcheck disable=SC2054 # commas separate QEMU properties
case $CONTROLLER in
xhci) USB=(-device qemu-xhci,id=usb) ;;
ehci)
	# A bare usb-ehci rejects full-speed devices; ICH9's EHCI hands them
	# to its UHCI companions, as on real hardware.
	USB=(-device ich9-usb-ehci1,id=usb,addr=1d.7,multifunction=on
		-device ich9-usb-uhci1,masterbus=usb.0,firstport=0,addr=1d.0,multifunction=on
		-device ich9-usb-uhci2,masterbus=usb.0,firstport=2,addr=1d.1
		-device ich9-usb-uhci3,masterbus=usb.0,firstport=4,addr=1d.2) ;;
uhci) USB=(-device piix3-usb-uhci,id=usb) ;;
*) die "--controller: '$CONTROLLER' is not xhci, ehci or uhci" ;;
esac

i=0
for sock in "${REDIRS[@]}"; do
	if [[ $sock =~ ^([^/]*):([0-9]+)$ ]]; then
		chardev="socket,id=redir$i,host=${BASH_REMATCH[1]:-127.0.0.1},port=${BASH_REMATCH[2]}"
	else
		chardev="socket,id=redir$i,path=$sock"
	fi
	[[ -n $REDIR_RECONNECT ]] && chardev+=",reconnect=$REDIR_RECONNECT"
	USB+=(-chardev "$chardev" -device "usb-redir,chardev=redir$i,id=redirdev$i,bus=usb.0${REDIR_OPTS:+,$REDIR_OPTS}")
	i=$((i + 1))
done

CONSOLE=(-serial "file:$WORK/console.log")
((SHELL_MODE)) && CONSOLE=(-serial mon:stdio)
CMD=("$QEMU" -nodefaults -no-user-config -machine pc -accel "$ACCEL"
	-m "$MEMORY" -smp "$SMP" -display none -vga none -no-reboot
	-kernel "$KERNEL" -initrd "$WORK/initrd.img" -append "$KARGS"
	"${CONSOLE[@]}" -serial "file:$WORK/results.log"
	"${USB[@]}")
[[ -n $PIDFILE ]] && CMD+=(-pidfile "$PIDFILE")
[[ -n $QMP ]] && CMD+=(-qmp "unix:$QMP,server=on,wait=off")
CMD+=("${EXTRA[@]}")
printf '%q ' "${CMD[@]}" >"$WORK/qemu.cmd"
echo >>"$WORK/qemu.cmd"

# --- run ------------------------------------------------------------------------------

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
elapsed() { local ms=$(($(now_ms) - T0)); printf '+%d.%03ds' $((ms / 1000)) $((ms % 1000)); }

QPID=
PIDS=()
cleanup() {
	[[ -n $QPID ]] && kill "$QPID" 2>/dev/null
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

: >"$WORK/results.log"
: >"$WORK/results.timed"
: >"$WORK/console.log"
say "workdir $WORK"
say "controller $CONTROLLER, ${#REDIRS[@]} usb-redir, timeout ${TIMEOUT}s"

T0=$(now_ms)
if ((SHELL_MODE)); then
	# Explicitly our stdin: bash gives background jobs /dev/null.
	"${CMD[@]}" 0<&0 2>"$WORK/qemu.log" &
else
	"${CMD[@]}" </dev/null >"$WORK/qemu.log" 2>&1 &
fi
QPID=$!

# Results with their arrival time (host clock since QEMU started).
(
	tail -n +1 -F -s 0.05 --pid="$QPID" "$WORK/results.log" 2>/dev/null |
		while IFS= read -r line; do
			line=${line//$'\r'/}
			[[ -n $line ]] || continue
			printf '%s %s\n' "$(elapsed)" "$line" >>"$WORK/results.timed"
			# File contents (export_file) are for scripts, not eyes.
			[[ $line == "DATA "* && $line != "DATA "*" end "* ]] && continue
			printf 'boot-guest: %s %s\n' "$(elapsed)" "$line"
		done
) &
PIDS+=($!)
if ((!QUIET && !SHELL_MODE)); then
	(
		tail -n +1 -F -s 0.1 --pid="$QPID" "$WORK/console.log" 2>/dev/null |
			sed -u 's/\r$//; s/^/guest| /'
	) &
	PIDS+=($!)
fi

TIMED_OUT=0
while kill -0 "$QPID" 2>/dev/null; do
	if ((!SHELL_MODE && $(now_ms) - T0 > TIMEOUT * 1000)); then
		TIMED_OUT=1
		say "timeout after ${TIMEOUT}s: stopping QEMU"
		kill -TERM "$QPID" 2>/dev/null
		for _ in $(seq 50); do
			kill -0 "$QPID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$QPID" 2>/dev/null || true
		break
	fi
	sleep 0.1
done
QRC=0
wait "$QPID" || QRC=$?
QPID=
WALL_MS=$(($(now_ms) - T0))
for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
PIDS=()
# The initrd copy is 11 MB and rebuilt from extra/ and the guest on demand.
rm -f "$WORK/initrd.img"

# --- verdict ----------------------------------------------------------------------------

declare -A STATUS=()
NPASS=0 NFAIL=0 NSKIP=0 DONE=
while read -r _ kind name status _; do
	case $kind in
	RESULT)
		case $status in
		PASS) NPASS=$((NPASS + 1)); [[ ${STATUS[$name]:-} == FAIL ]] || STATUS[$name]=PASS ;;
		SKIP) NSKIP=$((NSKIP + 1)); [[ -n ${STATUS[$name]:-} ]] || STATUS[$name]=SKIP ;;
		*) NFAIL=$((NFAIL + 1)); STATUS[$name]=FAIL ;;
		esac ;;
	DONE) DONE="$name" ;;
	esac
done <"$WORK/results.timed"

MISSING=()
for name in "${EXPECT[@]}"; do
	[[ ${STATUS[$name]:-} == PASS ]] || MISSING+=("$name")
done

RC=0
if ((TIMED_OUT)); then
	RC=3
elif [[ -z $DONE ]]; then
	say "QEMU exited (status $QRC) before the guest reported DONE; see $WORK/console.log and qemu.log"
	sed 's/^/qemu| /' "$WORK/qemu.log" >&2
	RC=4
elif ((NFAIL || ${#MISSING[@]})); then
	RC=1
elif ((${#EXPECT[@]} == 0 && NPASS == 0)); then
	say "no result passed"
	RC=1
fi
((${#MISSING[@]})) && say "expected but not passed: ${MISSING[*]}"
say "$(printf 'summary: %d passed, %d failed, %d skipped, %d expected missing; wall %d.%03ds; exit %d' \
	"$NPASS" "$NFAIL" "$NSKIP" "${#MISSING[@]}" $((WALL_MS / 1000)) $((WALL_MS % 1000)) "$RC")"
exit "$RC"
