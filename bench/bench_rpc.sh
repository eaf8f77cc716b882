#!/bin/sh
# The RPC benchmarks (make bench): round trips of `slm ping` through slmd
# with its dataplane spinning and sleeping, beside a raw UDP echo measured
# at the same moment, and request-rate runs of `slm bench-rpc`.  Prints
# Markdown tables; docs/benchmarks.md records the figures.
#
#   BENCH_PINGS     round trips per ping row (default 20000)
#   BENCH_SECONDS   seconds per request-rate run (default 10)
#   BENCH_MODEL     model of the generate runs (default: golden llama-s Q8_0)
set -eu
BUILD=${SLM_BUILD:-build}
BIN=$BUILD/bin
N=${BENCH_PINGS:-20000}
# The model generate requests run on: a golden file the build makes.
MODEL=${BENCH_MODEL:-${SLM_TESTDATA:-$BUILD/testdata}/models/llama-s-Q8_0.gguf}
SECS=${BENCH_SECONDS:-10}
TMP=$(mktemp -d)
SLMD_PID=
cleanup() {
	[ -n "$SLMD_PID" ] && kill "$SLMD_PID" 2>/dev/null && wait "$SLMD_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

cc -O2 -o "$TMP/rawudp" bench/rawudp.c -lpthread

slmd_start() { # slmd_start ARGS...: sets SLMD_PID, URL
	"$BIN/slmd" --set dataplane.listen=udp://127.0.0.1:0 --set log.target=stderr \
		--set "ctl.socket=$TMP/ctl.sock" "$@" >"$TMP/slmd.log" 2>&1 &
	SLMD_PID=$!
	i=0
	while ! grep -q 'ready: serving on' "$TMP/slmd.log" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 100 ] || { cat "$TMP/slmd.log"; exit 1; }
		sleep 0.1
	done
	URL=$(sed -n 's/.*ready: serving on \(udp:[^ ]*\).*/\1/p' "$TMP/slmd.log")
}

slmd_stop() {
	kill "$SLMD_PID"
	wait "$SLMD_PID" || true
	SLMD_PID=
}

cpu_ticks() { # user+system clock ticks of a process
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

ping_row() { # ping_row LABEL SLM-PING-ARGS...
	label=$1
	shift
	"$BIN/slm" ping -s "$URL" -n "$N" --json "$@" >"$TMP/p.json"
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("| %s | %.1f | %.1f | %.1f | %.1f | %d |" % (sys.argv[2], d["min_us"], d["p50_us"], d["p99_us"], d["p999_us"], d["lost"]))' \
		"$TMP/p.json" "$label"
}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r)"
echo
echo "### Round trips (microseconds, $N each)"
echo
echo "| path | min | p50 | p99 | p999 | lost |"
echo "|---|---|---|---|---|---|"
set -- $("$TMP/rawudp" "$N")
echo "| raw UDP echo, both busy-polling (baseline) | $1 | $2 | $3 | $4 | 0 |"

slmd_start --set dataplane.spin_us=1000000
ping_row "slm ping, slmd spinning (spin_us=1000000)"
slmd_stop
slmd_start --set dataplane.spin_us=50
ping_row "slm ping, slmd spin_us=50, back to back"
ping_row "slm ping, slmd spin_us=50, a ping every 200 us" -i 200
slmd_stop
slmd_start --set dataplane.spin_us=1000
ping_row "slm ping, slmd spin_us=1000, a ping every 200 us" -i 200
slmd_stop
slmd_start --set dataplane.spin_us=0
ping_row "slm ping, slmd sleeping (spin_us=0)"
ping_row "slm ping, slmd and client sleeping" --spin-us 0
# What spinning costs when idle: slmd's CPU over 2 s without traffic.
t0=$(cpu_ticks "$SLMD_PID")
sleep 2
idle0=$(( $(cpu_ticks "$SLMD_PID") - t0 ))
slmd_stop
slmd_start --set dataplane.spin_us=1000000
t0=$(cpu_ticks "$SLMD_PID")
sleep 2
idle1=$(( $(cpu_ticks "$SLMD_PID") - t0 ))
slmd_stop
hz=$(getconf CLK_TCK)
echo
echo "Idle CPU of slmd over 2 s: spin_us=0: $((idle0 * 1000 / hz / 2)) ms/s;" \
	"spin_us=1000000 (a second of spinning after the last datagram, then" \
	"sleep): $((idle1 * 1000 / hz / 2)) ms/s."

echo
echo "### Request rate ($SECS s each; 1-token generates of 4-token prompts on the golden llama-s Q8_0)"
echo
echo "| slmd | client | run | requests/s | errors | retransmits | reply p50 us | reply p99 us | reply p999 us |"
echo "|---|---|---|---|---|---|---|---|---|"
rate_row() { # rate_row SLMD-LABEL CLIENT-SPIN RUN...
	label=$1 cspin=$2
	shift 2
	# shellcheck disable=SC2068
	"$BIN/slm" bench-rpc -s "$URL" $@ --prompt-len 4 --max-tokens 1 --duration "$SECS" \
		--spin-us "$cspin" --json >"$TMP/b.json"
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); r=d["reply_us"]; print("| %s | %s | %s | %.0f | %d (%s) | %d | %.1f | %.1f | %.1f |" % (sys.argv[2], sys.argv[3], sys.argv[4], d["rps"], d["errors"], ",".join("%s %d" % kv for kv in d["errors_by_code"].items()), d["retransmits"], r["p50"], r["p99"], r["p999"]))' \
		"$TMP/b.json" "$label" "$([ "$cspin" = 0 ] && echo sleeps || echo spins)" "$*"
}
slmd_start --set dataplane.spin_us=1000000 --set "model.path=$MODEL"
rate_row spinning 0 --rate 10000
rate_row spinning 1 --rate 10000
rate_row spinning 0 --rate 50000
rate_row spinning 0 --concurrency 64
slmd_stop
grep 'dataplane: counters' "$TMP/slmd.log" | sed 's/.*counters: /slmd counters: /'
slmd_start --set dataplane.spin_us=50 --set "model.path=$MODEL"
rate_row "spin_us=50" 1 --rate 10000
rate_row "spin_us=50" 0 --concurrency 64
slmd_stop
echo
echo "### Generate latency (1-token generate of a 4-token prompt, closed loop, one at a time, $SECS s)"
echo
echo "| slmd | client | requests | TTFT p50 us | p99 | p999 | total p50 us | p99 | p999 |"
echo "|---|---|---|---|---|---|---|---|---|"
latency_row() { # latency_row SLMD-LABEL CLIENT-SPIN
	"$BIN/slm" bench-rpc -s "$URL" --concurrency 1 --prompt-len 4 --max-tokens 1 \
		--duration "$SECS" --spin-us "$2" --json >"$TMP/l.json"
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); t=d["ttft_us"]; a=d["total_us"]; print("| %s | %s | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |" % (sys.argv[2], sys.argv[3], d["requests"], t["p50"], t["p99"], t["p999"], a["p50"], a["p99"], a["p999"]))' \
		"$TMP/l.json" "$1" "$([ "$2" = 0 ] && echo sleeps || echo spins)"
}
slmd_start --set "model.path=$MODEL"
latency_row "defaults (spin_us=50)" 1
latency_row "defaults (spin_us=50)" 0
slmd_stop
