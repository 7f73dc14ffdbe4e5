# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Helpers for guest test scripts (busybox sh).  /init sources this file
# before the test script, so scripts call these functions directly.
#
# Results protocol, one line each on the results port (/dev/ttyS1, which
# boot-guest.sh records) and echoed on the console:
#   RESULT <name> PASS|FAIL|SKIP <detail>
#   METRIC <name> <value> <unit>
#   NOTE <text>
#   REQUEST <words>       asks a host-side watcher to act (host_request)
#   DATA <name> <hex>     a file for the host, in pieces (export_file)
#   DONE <script exit status> <number of FAIL results>     (init only)
# <name> is one word: letters, digits, '.', '_', '-'.

# boot-guest.sh's facts about the machine: CCIDG_CONTROLLER (xhci, ehci
# or uhci), CCIDG_REDIRS (number of usb-redir devices).
[ -r /ccid-test/env ] && . /ccid-test/env

CCIDG_PORT=/dev/ttyS1
CCIDG_STATE=/run/ccidg
CCIDG_PCSCD_LOG=/tmp/pcscd.log

# Called once by /init: the port is raw so nothing is echoed or rewritten.
ccidg_results_open() {
	mkdir -p "$CCIDG_STATE"
	: >"$CCIDG_STATE/fails"
	if stty -F "$CCIDG_PORT" raw -echo 115200 2>/dev/null &&
		: 2>/dev/null >"$CCIDG_PORT"; then
		echo "$CCIDG_PORT" >"$CCIDG_STATE/port"
	else
		echo "lib.sh: no results port $CCIDG_PORT, results on the console only"
		: >"$CCIDG_STATE/port"
	fi
}

# One protocol line to the results port and the console.
emit() {
	port=$(cat "$CCIDG_STATE/port" 2>/dev/null)
	[ -n "$port" ] && printf '%s\n' "$*" >"$port"
	printf '%s\n' "$*"
}

uptime_ms() {
	awk '{ printf "%d", $1 * 1000 }' /proc/uptime
}

# result NAME PASS|FAIL|SKIP [DETAIL...]
result() {
	_name=$1 _status=$2
	shift 2
	case $_name in
	'' | *[!A-Za-z0-9._-]*)
		_name="bad-name"
		set -- "result name '$1' is not one word" ;;
	esac
	case $_status in
	PASS | SKIP) ;;
	FAIL) echo x >>"$CCIDG_STATE/fails" ;;
	*) echo x >>"$CCIDG_STATE/fails"
	   set -- "bad status '$_status': $*"
	   _status=FAIL ;;
	esac
	# One line on the wire whatever the detail holds.
	emit "RESULT $_name $_status $(printf '%s' "$*" | tr '\r\n\t' '   ' | cut -c1-300)"
}
pass() { _n=$1; shift; result "$_n" PASS "$@"; }
fail() { _n=$1; shift; result "$_n" FAIL "$@"; }
skip() { _n=$1; shift; result "$_n" SKIP "$@"; }
metric() { emit "METRIC $1 $2 ${3:-}"; }
note() { emit "NOTE $*"; }

# host_request WORDS...: one "REQUEST <words>" line for a host script
# that watches results.log (e.g. "REQUEST remove virtual": pull the card
# out).  The guest learns that it was done from what it observes (a card
# event), not from an answer: the results port only goes out.
host_request() {
	emit "REQUEST $*"
}

# export_file NAME FILE: FILE to the host as "DATA NAME <hex>" lines of 48
# bytes and a last "DATA NAME end <size>"; the host joins the hex in
# order (host-lib.sh: guest_data).  For certificates, signatures and the
# like, not megabytes: 115200 baud is about 11 KB/s.
export_file() {
	case $1 in
	'' | *[!A-Za-z0-9._-]*) echo "export_file: '$1' is not one word" >&2; return 1 ;;
	esac
	[ -r "$2" ] || { echo "export_file: cannot read '$2'" >&2; return 1; }
	_port=$(cat "$CCIDG_STATE/port" 2>/dev/null)
	# Only to the port: the console would just repeat the hex.
	xxd -p -c 48 "$2" | sed "s/^/DATA $1 /" >"${_port:-/dev/console}"
	emit "DATA $1 end $(wc -c <"$2" | tr -d ' ')"
}

# Number of FAIL results so far.
failures() {
	wc -l <"$CCIDG_STATE/fails" | tr -d ' '
}

# check NAME CMD [ARGS...]: PASS when CMD exits 0.  Its output is shown
# on the console and kept in /tmp/NAME.log; the detail is its last line.
check() {
	_name=$1
	shift
	_log=/tmp/$_name.log
	"$@" >"$_log" 2>&1
	_rc=$?
	sed 's/^/  | /' "$_log"
	_last=$(grep -v '^[[:space:]]*$' "$_log" | tail -n 1)
	if [ "$_rc" -eq 0 ]; then
		pass "$_name" "$_last"
	else
		fail "$_name" "rc=$_rc: $_last"
	fi
	return "$_rc"
}

# check_grep NAME REGEX CMD [ARGS...]: PASS when CMD exits 0 and its output
# matches the extended REGEX; the detail is the first matching line.
check_grep() {
	_name=$1 _re=$2
	shift 2
	_log=/tmp/$_name.log
	"$@" >"$_log" 2>&1
	_rc=$?
	sed 's/^/  | /' "$_log"
	_hit=$(grep -E -m 1 -e "$_re" "$_log")
	if [ "$_rc" -eq 0 ] && [ -n "$_hit" ]; then
		pass "$_name" "$_hit"
		return 0
	fi
	fail "$_name" "rc=$_rc, no line matches /$_re/: $(grep -v '^[[:space:]]*$' "$_log" | tail -n 1)"
	return 1
}

# wait_until SECONDS CMD [ARGS...]: runs CMD every 0.1 s until it succeeds.
wait_until() {
	_deadline=$(( $(uptime_ms) + $1 * 1000 ))
	shift
	while ! "$@" >/dev/null 2>&1; do
		[ "$(uptime_ms)" -ge "$_deadline" ] && return 1
		usleep 100000
	done
	return 0
}

# usb_find VID PID: sysfs paths of the USB devices with that VID:PID (hex,
# any case, no 0x).
usb_find() {
	_v=$(echo "$1" | tr 'A-F' 'a-f')
	_p=$(echo "$2" | tr 'A-F' 'a-f')
	for _d in /sys/bus/usb/devices/*; do
		[ -f "$_d/idVendor" ] || continue
		[ "$(cat "$_d/idVendor")" = "$_v" ] &&
			[ "$(cat "$_d/idProduct")" = "$_p" ] && echo "$_d"
	done
	return 0
}
usb_present() { [ -n "$(usb_find "$1" "$2")" ]; }

# usb_wait VID PID SECONDS
usb_wait() {
	wait_until "$3" usb_present "$1" "$2"
}

# usb_describe VID PID: one line per matching device and interface.
usb_describe() {
	for _d in $(usb_find "$1" "$2"); do
		echo "$(basename "$_d") $(cat "$_d/idVendor"):$(cat "$_d/idProduct")" \
			"speed=$(cat "$_d/speed") class=$(cat "$_d/bDeviceClass")" \
			"product='$(cat "$_d/product" 2>/dev/null)'" \
			"manufacturer='$(cat "$_d/manufacturer" 2>/dev/null)'"
		for _i in "$_d"/*:*; do
			[ -f "$_i/bInterfaceClass" ] || continue
			echo "  $(basename "$_i") class=$(cat "$_i/bInterfaceClass")" \
				"endpoints=$(cd "$_i" && ls -d ep_* 2>/dev/null | tr '\n' ' ')" \
				"driver=$(basename "$(readlink "$_i/driver" 2>/dev/null)" 2>/dev/null)"
		done
	done
}

# pcscd_start [ARGS...]: starts pcscd in the foreground of a background
# job (log in /tmp/pcscd.log) and waits up to 10 s for its socket.  With
# ccidg.debug=1, pcscd logs at debug level and libccid logs everything.
pcscd_start() {
	_args="--foreground"
	if [ -n "${CCIDG_DEBUG:-}" ]; then
		_args="$_args --debug --apdu"
		export LIBCCID_ifdLogLevel=0x000F
	fi
	rm -f /run/pcscd/pcscd.comm
	# shellcheck disable=SC2086
	pcscd $_args "$@" >>"$CCIDG_PCSCD_LOG" 2>&1 &
	echo $! >"$CCIDG_STATE/pcscd.pid"
	if ! wait_until 10 test -S /run/pcscd/pcscd.comm; then
		echo "lib.sh: pcscd did not create its socket"
		pcscd_log
		return 1
	fi
	return 0
}

pcscd_stop() {
	_pid=$(cat "$CCIDG_STATE/pcscd.pid" 2>/dev/null)
	[ -n "$_pid" ] || return 0
	kill "$_pid" 2>/dev/null
	wait_until 5 sh -c "! kill -0 $_pid" || kill -9 "$_pid" 2>/dev/null
	rm -f "$CCIDG_STATE/pcscd.pid"
	return 0
}

pcscd_restart() {
	pcscd_stop
	pcscd_start "$@"
}

pcscd_log() {
	echo "----- $CCIDG_PCSCD_LOG"
	sed 's/^/  pcscd| /' "$CCIDG_PCSCD_LOG" 2>/dev/null
	echo "-----"
}

# --- libccid's reader list ----------------------------------------------------
# pcscd (hotplug) and libccid both accept a USB reader only if its VID:PID
# is in the ifd-ccid bundle's Info.plist (Debian: /etc/libccid_Info.plist,
# a conffile); see docs/usb-identity.md.  The three arrays ifdVendorID,
# ifdProductID and ifdFriendlyName are parallel.  Changes take effect when
# pcscd (re)starts.

CCID_PLIST=/etc/libccid_Info.plist

# The USB identity `ccid-agent serve` presents by default (scr335): a
# VID:PID that stock libccid lists, so the guest needs no edit.
CCID_VID=04e6
CCID_PID=5115
# The project's own ID (`--usb-id ccid-emu`), which it does not list.
CCID_OWN_VID=1209
CCID_OWN_PID=cc1d

# ccid_stock_list VID PID: result "stock-plist": libccid's list is byte
# for byte the one the libccid package shipped (build-guest.sh recorded
# its SHA-256 from the .deb), and it lists VID:PID.  Proves that a test
# ran on a stock guest, with no edit.
ccid_stock_list() {
	_want=$(cat /etc/ccid-guest/libccid-plist.sha256 2>/dev/null)
	_have=$(sha256sum "$CCID_PLIST" | cut -d' ' -f1)
	if [ -z "$_want" ] || [ "$_have" != "$_want" ]; then
		fail stock-plist "$CCID_PLIST is not the package's (sha256 $_have, package ${_want:-unknown})"
	elif ! ccid_plist_has "$1" "$2"; then
		fail stock-plist "the stock list does not name $1:$2"
	else
		pass stock-plist "unmodified $CCID_PLIST (sha256 ${_have%"${_have#????????????}"}...) lists $1:$2"
	fi
}

# ccid_plist_add_own_id: the one-line edit docs/usb-identity.md gives for
# the project's own ID 1209:CC1D, run exactly as documented (the scripts
# suite checks that the two stay the same).  pcscd must be (re)started
# after it.
ccid_plist_add_own_id() {
	# BEGIN own-id-edit
	sed -i -e '/<key>ifdVendorID<\/key>/{n;s|$|\n\t\t<string>0x1209</string>|}' -e '/<key>ifdProductID<\/key>/{n;s|$|\n\t\t<string>0xCC1D</string>|}' -e '/<key>ifdFriendlyName<\/key>/{n;s|$|\n\t\t<string>ccid-emu Virtual Reader</string>|}' /etc/libccid_Info.plist
	# END own-id-edit
}

_hex4() {
	printf '0x%04X' "0x${1#0x}"
}

# ccid_plist_has VID PID
ccid_plist_has() {
	_v=$(_hex4 "$1") _p=$(_hex4 "$2")
	awk -v v="$_v" -v p="$_p" '
		/<key>/ { key = $0; sub(/.*<key>/, "", key); sub(/<\/key>.*/, "", key); n = 0; next }
		/<string>/ {
			s = $0; sub(/.*<string>/, "", s); sub(/<\/string>.*/, "", s); s = toupper(s)
			sub(/^0X/, "0x", s)
			if (key == "ifdVendorID") vid[n] = s
			if (key == "ifdProductID") pid[n] = s
			n++
		}
		END { for (i in vid) if (vid[i] == v && pid[i] == p) exit 0; exit 1 }
	' "$CCID_PLIST"
}

# ccid_plist_add VID PID NAME: puts the reader first in the three arrays.
ccid_plist_add() {
	ccid_plist_has "$1" "$2" && return 0
	_v=$(_hex4 "$1") _p=$(_hex4 "$2")
	awk -v v="$_v" -v p="$_p" -v name="$3" '
		{ print }
		/<key>ifdVendorID<\/key>/ { want = v; next }
		/<key>ifdProductID<\/key>/ { want = p; next }
		/<key>ifdFriendlyName<\/key>/ { want = name; next }
		/<array>/ && want != "" { print "\t\t<string>" want "</string>"; want = "" }
	' "$CCID_PLIST" >"$CCID_PLIST.new" && mv "$CCID_PLIST.new" "$CCID_PLIST"
}

# ccid_plist_remove VID PID: drops the reader from the three arrays, so a
# listed device can stand in for one with an unknown VID:PID.
ccid_plist_remove() {
	_v=$(_hex4 "$1") _p=$(_hex4 "$2")
	awk -v v="$_v" -v p="$_p" '
		function val(line,   s) {
			s = line; sub(/.*<string>/, "", s); sub(/<\/string>.*/, "", s)
			s = toupper(s); sub(/^0X/, "0x", s); return s
		}
		function keyof(line,   k) {
			k = line; sub(/.*<key>/, "", k); sub(/<\/key>.*/, "", k); return k
		}
		NR == FNR {
			if ($0 ~ /<key>/) { key = keyof($0); n = 0 }
			else if ($0 ~ /<string>/) {
				if (key == "ifdVendorID") vid[n] = val($0)
				if (key == "ifdProductID") pid[n] = val($0)
				n++
			}
			next
		}
		FNR == 1 { for (i in vid) if (vid[i] == v && pid[i] == p) drop[i] = 1 }
		/<key>/ { key = keyof($0); n = 0; print; next }
		/<string>/ && (key == "ifdVendorID" || key == "ifdProductID" || key == "ifdFriendlyName") {
			if (!(n in drop)) print
			n++
			next
		}
		{ print }
	' "$CCID_PLIST" "$CCID_PLIST" >"$CCID_PLIST.new" && mv "$CCID_PLIST.new" "$CCID_PLIST"
}
