#!/bin/sh
# Build each libFuzzer harness with clang against the project's sources and
# run it for a bounded time.  Usage: tests/fuzz/run.sh SECONDS harness.c...
# A harness declares the sources it needs in a line "// fuzz-sources: ...".
set -eu
seconds=$1
shift
[ $# -gt 0 ] || { echo "fuzz: no harnesses yet"; exit 0; }
out=build-fuzz
mkdir -p "$out"
cflags="-std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -I. -Iinclude -I$out/gen $(pkg-config --cflags libcjson)"
mkdir -p "$out/gen"
./tools/features.sh >"$out/gen/slm_features.h"
status=0
for harness in "$@"; do
	name=$(basename "$harness" .c)
	srcs=$(sed -n 's|^// fuzz-sources: ||p' "$harness")
	libs=$(sed -n 's|^// fuzz-libs: ||p' "$harness")
	echo "fuzz: building $name"
	# shellcheck disable=SC2086
	clang $cflags -o "$out/$name" "$harness" $srcs $libs -lm -lpthread
	corpus="$out/corpus-$name"
	mkdir -p "$corpus"
	seeds=tests/fuzz/seeds/$name
	echo "fuzz: running $name for ${seconds}s"
	# shellcheck disable=SC2086
	if ! "$out/$name" -max_total_time="$seconds" -print_final_stats=1 \
		-rss_limit_mb=2048 "$corpus" $( [ -d "$seeds" ] && echo "$seeds" ) \
		>"$out/$name.log" 2>&1; then
		echo "fuzz: $name FOUND A CRASH; see $out/$name.log"
		tail -n 40 "$out/$name.log"
		status=1
	else
		grep -E 'stat::number_of_executed_units|stat::peak_rss' "$out/$name.log" | sed "s/^/fuzz: $name: /"
	fi
done
exit $status
