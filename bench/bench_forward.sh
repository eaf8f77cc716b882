#!/bin/sh
# Forward pass benchmark (issue 5): pp512 and tg64 of models with
# TinyLlama-1.1B's and Qwen2.5-0.5B's shapes (random weights from `slm
# mkmodel`, made once into $BENCH_MODELS, about 3.7 GB) in Q4_0, Q8_0 and
# Q4_K_M, as llama-bench measures them, beside the decode limit the same
# run measures.  docs/benchmarks.md records the figures next to
# llama.cpp's (by hand: note the load average each run prints).
# Environment: SLM_BUILD (build folder), BENCH_THREADS (default 2),
# BENCH_REPS (default 5), BENCH_MODELS (default $SLM_BUILD/bench-models),
# BENCH_QUICK=1 for one model and short runs.
set -eu
BUILD=${SLM_BUILD:-build}
SLM="$BUILD/bin/slm"
THREADS=${BENCH_THREADS:-2}
REPS=${BENCH_REPS:-5}
MODELS=${BENCH_MODELS:-$BUILD/bench-models}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	LIST="qwen05-Q4_0"
	REPS=2
else
	LIST="tinyllama-Q4_0 tinyllama-Q8_0 tinyllama-Q4_K_M qwen05-Q4_0
		qwen05-Q8_0 qwen05-Q4_K_M"
fi
mkdir -p "$MODELS"
for m in $LIST; do
	f="$MODELS/$m.gguf"
	if [ ! -e "$f" ]; then
		echo "making $f (slm mkmodel, once)"
		"$SLM" mkmodel --preset "${m%-*}" --type "${m#*-}" --quiet -o "$f"
	fi
done
echo "slm bench, $THREADS threads, $REPS repetitions, $(date -u +%Y-%m-%dT%H:%MZ)"
for m in $LIST; do
	echo
	"$SLM" bench -m "$MODELS/$m.gguf" -t "$THREADS" -p 512 -n 64 -r "$REPS"
done
