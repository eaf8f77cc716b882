#!/bin/sh
# Load benchmark (issue 3): how fast a 668 MB model's weights reach
# memory, per load method and huge-page policy, against the raw O_DIRECT
# rate of the same run.
#
# The model has TinyLlama-1.1B's shape and llama-quantize's Q4_K_M layout
# with random bytes (bench/gen_shape_model.c); it is written once into
# $BUILD/bench/.  As root every read starts cold (--cold drops the page
# cache); otherwise the runs are warm and say so.
#   BENCH_LOAD_REPEAT=N     repetitions per configuration (default 5)
#   BENCH_LOAD_HUGETLB=1    as root, also run with 2 MiB pages reserved
#                           (vm.nr_hugepages raised for the run, then
#                           restored)
set -eu
BUILD=${SLM_BUILD:-build}
SLM=$BUILD/bin/slm
out=$BUILD/bench
model=$out/tinyllama-shape-Q4_K_M.gguf
repeat=${BENCH_LOAD_REPEAT:-5}
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

run() {
	echo
	echo "-- $*"
	# shellcheck disable=SC2086
	"$SLM" bench-load -m "$model" $cold -r "$repeat" "$@"
}

echo "bench_load: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
run --mode uring
run --mode uring --set model.load_thp=fault
run --mode uring --set model.load_thp=off
run --mode read
run --mode mmap

if [ "${BENCH_LOAD_HUGETLB:-0}" = 1 ] && [ "$(id -u)" -eq 0 ]; then
	nr=/proc/sys/vm/nr_hugepages
	before=$(cat $nr)
	# The region, plus as much again for the raw read's destination.
	echo $((before + 700)) >$nr
	trap 'echo "$before" >'"$nr" EXIT
	run --mode uring
	echo "$before" >$nr
	trap - EXIT
fi
