#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Builds the libFuzzer targets with clang-14 (ASan + UBSan, UBSan fatal)
# in their own build dir and runs each for SECONDS on a scratch copy of its
# committed corpus.
#
#   tests/fuzz/run-fuzzers.sh SECONDS [TARGET...]
#
# Prints "target=NAME execs=N" per target and exits non-zero if any target
# found a crash, leak, timeout or sanitizer report; the reproducer is left
# in tests/fuzz/artifacts/NAME/ (git-ignored): copy it into
# tests/fuzz/corpus/NAME/ so it becomes a regression test.
#
# Environment:
#   FUZZ_BUILD_DIR   build dir (default: build-fuzz at the top of the tree)
#   FUZZ_MERGE=1     afterwards, merge inputs that add coverage into the
#                    committed corpus (libFuzzer -merge=1, minimising)
#   FUZZ_ARGS        extra libFuzzer flags
#   FUZZ_RUNS=N      stop each target after N executions (SECONDS still caps
#                    the time); e.g. FUZZ_RUNS=10000000 for the recorded runs
#
# Each target's full libFuzzer log is kept as artifacts/NAME/last-run.log.
set -eu

usage() {
	echo "usage: $0 SECONDS [TARGET...]" >&2
	exit 2
}
[ $# -ge 1 ] || usage
secs=$1
shift
case $secs in ''|*[!0-9]*) usage ;; esac

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
targets=${*:-fuzz_bulk_out fuzz_control fuzz_loopback_apdu fuzz_piv_applet fuzz_usbredir_bridge fuzz_agent_control fuzz_daemon_qmp fuzz_daemon_dbus fuzz_daemon_files fuzz_pcsc_card fuzz_nss_card fuzz_sock_setup}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT INT TERM

if [ ! -f "$build/build.ninja" ]; then
	CC=clang-14 meson setup "$build" "$root" \
		-Dfuzzing=true -Dbuildtype=debugoptimized \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args="-fsanitize=fuzzer-no-link -fno-sanitize-recover=all -fno-omit-frame-pointer" \
		>"$scratch/setup.log" 2>&1 || { cat "$scratch/setup.log" >&2; exit 1; }
fi
compile_targets=
for t in $targets; do
	compile_targets="$compile_targets tests/fuzz/$t"
done
# shellcheck disable=SC2086
meson compile -C "$build" -j 2 $compile_targets >"$scratch/build.log" 2>&1 ||
	{ cat "$scratch/build.log" >&2; exit 1; }

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}"
failed=0
for t in $targets; do
	bin="$build/tests/fuzz/$t"
	corpus="$root/tests/fuzz/corpus/$t"
	work="$scratch/$t"
	art="$root/tests/fuzz/artifacts/$t"
	log="$scratch/$t.log"
	mkdir -p "$work" "$art"
	cp "$corpus"/* "$work"/
	rc=0
	runs=
	[ -n "${FUZZ_RUNS:-}" ] && runs="-runs=$FUZZ_RUNS"
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$secs" $runs -max_len=16384 -timeout=30 \
		-rss_limit_mb=2560 -use_value_profile=1 -print_final_stats=1 \
		-artifact_prefix="$art/" ${FUZZ_ARGS:-} "$work" >"$log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	covft=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)
	echo "target=$t execs=${execs:-0} exec/s=${rate:-0} ${covft:-}"
	cp "$log" "$art/last-run.log"
	# 72: stopped early with SIGINT (kill -INT on the fuzzer), not a finding.
	[ "$rc" -eq 72 ] && grep -q 'libFuzzer: run interrupted' "$log" && rc=0
	if [ "$rc" -ne 0 ] || grep -q -e '^==[0-9]*==ERROR' -e 'runtime error:' \
	    -e 'FUZZ INVARIANT BROKEN' "$log"; then
		failed=1
		echo "target=$t FAILED (exit $rc); log tail:" >&2
		tail -n 60 "$log" >&2
		ls -1 "$art" >&2
	elif [ "${FUZZ_MERGE:-0}" = 1 ]; then
		"$bin" -merge=1 -max_len=16384 "$corpus" "$work" >"$log.merge" 2>&1 ||
			{ echo "target=$t merge failed" >&2; tail -n 20 "$log.merge" >&2; failed=1; }
	fi
done
exit $failed
