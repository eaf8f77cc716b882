#!/bin/sh
# Tokenizer: vocabulary load time and tokenization throughput of a 1 MiB
# mixed text, for each test vocabulary (SPM 32k, Llama-3 BPE 128k, Qwen2
# BPE 152k).  Figures go to docs/benchmarks.md.
set -eu
BUILD=${SLM_BUILD:-build}
DATA=${SLM_TESTDATA:-$BUILD/testdata}
export SLM_TEST_DATA=${SLM_TEST_DATA:-tests/data}
set --
for v in spm llama3-bpe qwen2-bpe; do
	f=$DATA/vocab/vocab-$v.gguf
	[ -e "$f" ] || { echo "bench_tokenizer: missing $f (run make testdata)"; exit 1; }
	set -- "$@" "$f"
done
"$BUILD/bench/bench_tokenizer" "$@"
