#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Steady-state cost of one short-APDU XfrBlock round trip (see README.md).
#
#   bench/run.sh
#
# Builds bench_xfrblock in build-bench/ if needed (BENCH_BUILD_DIR to
# override), runs it under callgrind for N1 and N2 round trips (BENCH_N1,
# BENCH_N2) and prints
#
#   instructions_per_xfrblock=I    (Ir(N2) - Ir(N1)) / (N2 - N1)
#   allocs_per_apdu=A              heap allocations in the loop / N2
#
# Exits 1 if the bench fails or a target is missed (I <= 3000, A == 0).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BENCH_BUILD_DIR:-$root/build-bench}
n1=${BENCH_N1:-2000}
n2=${BENCH_N2:-12000}
max_instr=3000

if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" "$root" -Dtests=false -Dbuildtype=debugoptimized >/dev/null
fi
meson compile -C "$build" -j 2 bench/bench_xfrblock >/dev/null
bin="$build/bench/bench_xfrblock"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# Total instructions (Ir) of one run, from callgrind's "totals:" line.
ir_of() {
	valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$1" \
		"$bin" "$1" >"$tmp/out.$1" 2>"$tmp/err.$1" ||
		{ cat "$tmp/err.$1" >&2; exit 1; }
	sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$tmp/cg.$1"
}

ir1=$(ir_of "$n1")
ir2=$(ir_of "$n2")
allocs=$(sed -n 's/.*allocs=\([0-9a-z]*\).*/\1/p' "$tmp/out.$n2")
if [ -z "$ir1" ] || [ -z "$ir2" ] || [ -z "$allocs" ]; then
	echo "bench/run.sh: could not read callgrind totals or the bench output" >&2
	exit 1
fi

instr=$(( (ir2 - ir1) / (n2 - n1) ))
echo "instructions_per_xfrblock=$instr"
if [ "$allocs" = unknown ]; then
	echo "allocs_per_apdu=unknown (sanitizer build: no malloc shim)"
	exit 1
fi
# Integer division would hide one stray allocation per N2 round trips.
awk -v a="$allocs" -v n="$n2" 'BEGIN { printf "allocs_per_apdu=%g\n", a / n }'
echo "(N1=$n1 Ir=$ir1, N2=$n2 Ir=$ir2, allocations in loop=$allocs)"
status=0
if [ "$instr" -gt "$max_instr" ]; then
	echo "target missed: more than $max_instr instructions per XfrBlock" >&2
	status=1
fi
if [ "$allocs" -ne 0 ]; then
	echo "target missed: heap allocations in steady state" >&2
	status=1
fi
exit $status
