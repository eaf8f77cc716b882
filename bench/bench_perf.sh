#!/bin/sh
# The cost of the always-on counters on a hot path (ctl/perf.h): per
# call hot and with cold caches, per decode step, and the reader's
# snapshot.  Figures go to docs/benchmarks.md.
set -eu
BUILD=${SLM_BUILD:-build}
"$BUILD/bench/bench_perf" "$@"
