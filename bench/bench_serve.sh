#!/bin/sh
# The serving-core benchmark (make bench): `slm bench-serve` in process on
# the golden llama-s model (Q8_0) and on slmd's synthetic default model:
# time to first token for a 1500-token prompt cold, repeated from another
# client, and sharing 1400 tokens with a new 100-token suffix; aggregate
# tok/s for 1, 4, 8 and 16 streams of 128 tokens.  Prints Markdown tables;
# docs/benchmarks.md records the figures.
#
#   BENCH_ROUNDS   TTFT rounds per row (default 5)
#   BENCH_STREAMS  stream counts (default 1,4,8,16)
set -eu
BUILD=${SLM_BUILD:-build}
BIN=$BUILD/bin
ROUNDS=${BENCH_ROUNDS:-5}
STREAMS=${BENCH_STREAMS:-1,4,8,16}
TESTDATA=${SLM_TESTDATA:-$BUILD/testdata}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
for m in "$TESTDATA/models/llama-s-Q8_0.gguf" ""; do
	if [ -n "$m" ] && [ ! -f "$m" ]; then
		echo "skipped: $m is not generated (make testdata)"
		continue
	fi
	echo
	"$BIN/slm" bench-serve --set "model.path=$m" --rounds "$ROUNDS" \
		--streams "$STREAMS"
done
