#!/bin/sh
# Kernel benchmark: GEMV (decode) and GEMM (prefill) speed per weight type
# and ISA tier, beside the memory read bandwidth measured by the same run.
# Results go to docs/benchmarks.md (by hand: note whether the machine was
# quiet).  Environment: SLM_BUILD (build folder), BENCH_THREADS (default:
# all CPUs), BENCH_GEMV_MB (default 1024), BENCH_QUICK=1 for a short run.
set -eu
BUILD=${SLM_BUILD:-build}
SLM="$BUILD/bin/slm"
THREADS=${BENCH_THREADS:-$(nproc)}
GEMV_MB=${BENCH_GEMV_MB:-1024}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	GEMV_MB=256
	TYPES=Q4_0,Q8_0,Q4_K
else
	TYPES=Q4_0,Q8_0,Q4_K,Q6_K,Q5_K,Q3_K,Q2_K,Q4_1,Q5_0,Q5_1,F16,BF16,F32
fi
echo "slm bench-kernels, $THREADS threads, $(date -u +%Y-%m-%dT%H:%MZ)," \
	"load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$SLM" bench-kernels -t "$THREADS" --gemv-mb "$GEMV_MB" --types "$TYPES" \
	--simd avx512,avx2 --gemm-tokens 128 --gemm-in 4096 --gemm-out 4096
echo
echo "scalar tier (the specification), key types:"
"$SLM" bench-kernels -t "$THREADS" --gemv-mb 256 --types Q4_0,Q8_0,Q4_K \
	--simd scalar --gemm-tokens 32 --gemm-in 2048 --gemm-out 1024 -r 2
