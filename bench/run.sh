#!/bin/sh
# Run every benchmark driver (bench/*.sh) against a build folder.  Each
# prints its own table; docs/benchmarks.md records the figures.
set -eu
BUILD=${1:-build}
export SLM_BUILD=$BUILD
found=0
for b in bench/bench_*.sh; do
	[ -e "$b" ] || continue
	found=1
	echo "== $(basename "$b" .sh)"
	sh "$b"
done
[ "$found" -eq 1 ] || echo "bench: no benchmarks yet"
