# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Host-side helpers for guest tests (bash), sourced by the test scripts
# next to it: start and stop `ccid-agent serve`, answer a running guest's
# REQUEST lines, take DATA files out of a results log, and judge results.
# See docs/guest-kit.md ("Host helpers").
#
# Every function reports on stdout as "host: ..." and returns non-zero on
# failure; none exits the calling script.

# --- results ---------------------------------------------------------------------------

# hres NAME PASS|FAIL DETAIL...: a host-side result line; a FAIL counts
# in FAILS (the script sets FAILS=0 and exits non-zero when it is not 0).
hres() {
	local name=$1 st=$2
	shift 2
	echo "host: RESULT $name $st $*"
	[[ $st == PASS ]] || FAILS=$((FAILS + 1))
	return 0
}

# now_ms: the wall clock in milliseconds, for measured times.
now_ms() { date +%s%3N; }

# --- the test's setting ---------------------------------------------------------------

# hl_find_agent SRC: unless AGENT names one already, the first
# SRC/build*/host-agent/ccid-agent, else ccid-agent on PATH; returns 1
# when there is none.
hl_find_agent() {
	local cand
	if [[ -z ${AGENT:-} ]]; then
		for cand in "$1"/build*/host-agent/ccid-agent; do
			[[ -x $cand ]] && AGENT=$cand && break
		done
	fi
	[[ -n ${AGENT:-} ]] || AGENT=$(command -v ccid-agent || true)
	[[ -n $AGENT && -x $AGENT ]]
}

# hl_work KEEP PREFIX: sets WORK to KEEP (created) when given, else to a
# new directory ${TMPDIR:-/tmp}/PREFIX.XXXXXX; HL_DIR to WORK; and
# XDG_DATA_HOME and XDG_RUNTIME_DIR to directories inside it, so a test
# never touches the user's own card databases or sockets.
hl_work() {
	if [[ -n $1 ]]; then
		mkdir -p "$1"
		WORK=$(cd "$1" && pwd)
	else
		WORK=$(mktemp -d "${TMPDIR:-/tmp}/$2.XXXXXX")
	fi
	export HL_DIR=$WORK
	export XDG_DATA_HOME=$WORK/xdg-data XDG_RUNTIME_DIR=$WORK/xdg-run
	mkdir -p "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR"
	chmod 700 "$XDG_RUNTIME_DIR"
}

# --- ccid-agent serve ---------------------------------------------------------------
# AGENT must name the ccid-agent binary.  Each agent has a name; its files
# live in $HL_DIR/agent-NAME.{out,log,pid} and its sockets are the
# caller's choice.

HL_DIR=${HL_DIR:-${TMPDIR:-/tmp}}

# agent_start NAME SERVE_ARGS...: starts `ccid-agent serve SERVE_ARGS` in
# the background and waits (10 s) for its "control:" line, which it
# prints once it serves.
agent_start() {
	local name=$1
	shift
	: >"$HL_DIR/agent-$name.out"
	"$AGENT" serve "$@" >"$HL_DIR/agent-$name.out" 2>>"$HL_DIR/agent-$name.log" &
	echo $! >"$HL_DIR/agent-$name.pid"
	for _ in $(seq 100); do
		grep -q '^control: ' "$HL_DIR/agent-$name.out" && return 0
		if ! kill -0 "$(agent_pid "$name")" 2>/dev/null; then
			echo "host: agent $name exited at start: $(tail -n 3 "$HL_DIR/agent-$name.log")"
			return 1
		fi
		sleep 0.1
	done
	echo "host: agent $name printed no control: line in 10 s"
	return 1
}

agent_pid() { cat "$HL_DIR/agent-$1.pid" 2>/dev/null; }
agent_alive() { local p; p=$(agent_pid "$1") && [[ -n $p ]] && kill -0 "$p" 2>/dev/null; }
agent_control() { sed -n 's/^control: //p' "$HL_DIR/agent-$1.out"; }

# agent_ctl NAME COMMAND...: `ccid-agent ctl` on that agent's control
# socket; prints the JSON reply.
agent_ctl() {
	local name=$1
	shift
	"$AGENT" ctl --control "$(agent_control "$name")" "$@"
}

# agent_stop NAME: SIGTERM, and the exit status of the agent (0 is a
# clean shutdown); SIGKILL after 5 s.
agent_stop() {
	local pid rc=0
	pid=$(agent_pid "$1")
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || { rm -f "$HL_DIR/agent-$1.pid"; return 0; }
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "host: agent $1 ignored SIGTERM for 5 s"
		kill -KILL "$pid" 2>/dev/null
		rc=124
	fi
	wait "$pid" 2>/dev/null || rc=$?
	rm -f "$HL_DIR/agent-$1.pid"
	return "$rc"
}

# --- guest results ------------------------------------------------------------------

# guest_data LOG NAME FILE: joins the guest's "DATA NAME <hex>" lines
# (export_file) from the raw results LOG into FILE and checks the size
# given by "DATA NAME end <size>".
guest_data() {
	local log=$1 name=$2 file=$3 size
	size=$(awk -v n="$name" '$1 == "DATA" && $2 == n && $3 == "end" { s = $4 } END { print s }' \
		<(tr -d '\r' <"$log"))
	if [[ -z $size ]]; then
		echo "host: the guest sent no DATA $name"
		return 1
	fi
	# basenc (coreutils) wants upper-case hex and no line breaks.
	tr -d '\r' <"$log" | awk -v n="$name" '$1 == "DATA" && $2 == n && $3 != "end" { printf "%s", toupper($3) }' |
		basenc --base16 -d >"$file" || return 1
	if [[ $(stat -c %s "$file") != "$size" ]]; then
		echo "host: DATA $name: got $(stat -c %s "$file") bytes, the guest sent $size"
		return 1
	fi
}

# guest_status TIMED NAME: PASS, FAIL, SKIP or MISSING for a result name
# in a results.timed file (any FAIL of a repeated name wins).
guest_status() {
	awk -v n="$2" '$2 == "RESULT" && $3 == n {
			if ($4 == "FAIL" || s == "FAIL") s = "FAIL"
			else if ($4 == "PASS") s = "PASS"
			else if (s == "") s = $4
		}
		END { print (s == "" ? "MISSING" : s) }' "$1"
}

# guest_expect TIMED NAME...: every NAME PASSed; the others are printed.
guest_expect() {
	local timed=$1 name st bad=0
	shift
	for name; do
		st=$(guest_status "$timed" "$name")
		if [[ $st != PASS ]]; then
			echo "host: guest result $name: $st"
			bad=1
		fi
	done
	# FAILs not on the list count too.
	if awk '$2 == "RESULT" && $4 == "FAIL" { found = 1 } END { exit !found }' "$timed"; then
		awk '$2 == "RESULT" && $4 == "FAIL" { print "host: guest FAIL: " $0 }' "$timed"
		bad=1
	fi
	return "$bad"
}

# guest_metric TIMED NAME: the guest's value of a METRIC ("-" if none).
guest_metric() {
	awk -v n="$2" '$2 == "METRIC" && $3 == n { v = $4 } END { print (v == "" ? "-" : v) }' "$1"
}

# guest_metric_host TIMED NAME: the host's arrival time of a METRIC
# (seconds since QEMU started, "-" if none).
guest_metric_host() {
	awk -v n="$2" '$2 == "METRIC" && $3 == n { v = $1 } END { sub(/^\+/, "", v); sub(/s$/, "", v); print (v == "" ? "-" : v) }' "$1"
}

# --- REQUEST lines --------------------------------------------------------------------

# watch_requests LOG PID HANDLER: calls `HANDLER WORDS...` for every
# "REQUEST WORDS..." line the guest writes to the raw results LOG, in
# order, until process PID (boot-guest.sh) exits.  Run it in the
# background.  HL_POLL_S: how often the log is polled (default 0.05 s;
# the benchmark's event timing uses 0.002).
watch_requests() {
	local log=$1 pid=$2 handler=$3 line
	tail -n +1 -F -s "${HL_POLL_S:-0.05}" --pid="$pid" "$log" 2>/dev/null |
		while IFS= read -r line; do
			line=${line//$'\r'/}
			[[ $line == "REQUEST "* ]] || continue
			# shellcheck disable=SC2086 # the words are the arguments
			"$handler" ${line#REQUEST }
		done
}
