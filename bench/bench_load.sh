#!/bin/sh
# Load benchmark (issue 3): how fast a 668 MB model's weights reach
# memory, per load method, against the raw O_DIRECT rate of the same run.
#
# The model has TinyLlama-1.1B's shape and llama-quantize's Q4_K_M layout
# with random bytes (bench/gen_shape_model.c); it is written once into
# $BUILD/bench/.  As root every read starts cold (--cold drops the page
# cache); otherwise the runs are warm and say so.
#   BENCH_LOAD_REPEAT=N   repetitions per method (default 5)
#   BENCH_LOAD_MODES="uring read mmap"
set -eu
BUILD=${SLM_BUILD:-build}
SLM=$BUILD/bin/slm
out=$BUILD/bench
model=$out/tinyllama-shape-Q4_K_M.gguf
repeat=${BENCH_LOAD_REPEAT:-5}
modes=${BENCH_LOAD_MODES:-uring read mmap}
mkdir -p "$out"

if [ ! -s "$model" ]; then
	echo "bench_load: writing $model (random weights, TinyLlama Q4_K_M shape)"
	# shellcheck disable=SC2046
	${CC:-gcc} -std=gnu11 -O2 -D_GNU_SOURCE -I. -Iinclude -I"$BUILD/gen" \
		-o "$out/gen_shape_model" bench/gen_shape_model.c \
		"$BUILD/lib/libslmcore.a" $(pkg-config --libs inih libcjson \
		liburing hwloc libsystemd 2>/dev/null) -lm -lpthread
	"$out/gen_shape_model" "$model.part"
	mv "$model.part" "$model"
fi

cold=
if [ "$(id -u)" -eq 0 ]; then
	cold=--cold
else
	echo "bench_load: not root: warm runs (the page cache is not dropped)"
fi

echo "bench_load: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in $modes; do
	echo
	echo "-- $mode"
	"$SLM" bench-load -m "$model" --mode "$mode" $cold -r "$repeat"
done
