#!/bin/sh
# The DPDK dataplane benchmarks (make bench): round trips of `slm ping`
# through slmd over memif (a local client, shared memory both ways) and
# from a kernel UDP client through a veth to slmd's DPDK port (af_xdp and
# af_packet), beside the io_uring path on loopback measured in the same
# run, then `slm bench-rpc` request rates over each path.  Prints Markdown
# tables; docs/benchmarks.md records the figures.
#
# slmd's lcore spins (dataplane.spin_us = 1 s) and the client busy-polls,
# pinned to another CPU than the lcore's (the last CPU: the placement
# plan's dataplane core on a small box), as a latency measurement wants.
#
#   BENCH_PINGS     round trips per row (default 20000)
#   BENCH_SECONDS   seconds per request-rate run (default 5)
# Needs root (network namespaces, DPDK); says so and stops otherwise.
set -eu
BUILD=${SLM_BUILD:-build}
BIN=$BUILD/bin
N=${BENCH_PINGS:-20000}
SECS=${BENCH_SECONDS:-5}
if [ "$(id -u)" != 0 ]; then
	echo "bench_dpdk: skipped: needs root for netns/DPDK"
	exit 0
fi
if ! grep -q 'define HAVE_DPDK 1' "$BUILD/gen/slm_features.h" 2>/dev/null; then
	echo "bench_dpdk: skipped: this build has no DPDK"
	exit 0
fi
TMP=$(mktemp -d)
TAG=b$(printf '%x' $$ | tail -c 6)
NS_S=${TAG}srv NS_C=${TAG}cli IF_S=${TAG}s IF_C=${TAG}c
SLMD_PID=
cleanup() {
	[ -n "$SLMD_PID" ] && kill "$SLMD_PID" 2>/dev/null && wait "$SLMD_PID" 2>/dev/null
	ip netns del "$NS_S" 2>/dev/null || true
	ip netns del "$NS_C" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap "exit 143" INT TERM
CLIENT_CPU=0

ip netns add "$NS_S"
ip netns add "$NS_C"
ip link add "$IF_S" type veth peer name "$IF_C"
ip link set "$IF_S" netns "$NS_S"
ip link set "$IF_C" netns "$NS_C"
for ns in "$NS_S" "$NS_C"; do
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	ip -n "$ns" link set lo up
done
ip -n "$NS_S" link set "$IF_S" up
ip -n "$NS_C" addr add 10.77.0.1/24 dev "$IF_C"
ip -n "$NS_C" link set "$IF_C" up
ip netns exec "$NS_C" ethtool -K "$IF_C" tx off >/dev/null

slmd_start() { # slmd_start NETNS ARGS...: sets SLMD_PID, URL
	ns=$1
	shift
	if [ "$ns" = - ]; then
		"$BIN/slmd" --set log.target=stderr "$@" >"$TMP/slmd.log" 2>&1 &
	else
		ip netns exec "$ns" "$BIN/slmd" --set log.target=stderr "$@" >"$TMP/slmd.log" 2>&1 &
	fi
	SLMD_PID=$!
	i=0
	while ! grep -q 'ready: serving on' "$TMP/slmd.log" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -ge 150 ] || ! kill -0 "$SLMD_PID" 2>/dev/null; then
			cat "$TMP/slmd.log"
			return 1
		fi
		sleep 0.1
	done
	URL=$(sed -n 's/.*ready: serving on \([a-z]*:[^ ]*\).*/\1/p' "$TMP/slmd.log" | head -n1)
}

slmd_stop() {
	kill "$SLMD_PID"
	wait "$SLMD_PID" || true
	SLMD_PID=
}

client() { # client NETNS CMD...: pinned to CLIENT_CPU
	ns=$1
	shift
	if [ "$ns" = - ]; then
		taskset -c $CLIENT_CPU "$@"
	else
		ip netns exec "$ns" taskset -c $CLIENT_CPU "$@"
	fi
}

ping_row() { # ping_row LABEL NETNS URL
	client "$2" "$BIN/slm" ping -s "$3" -n "$N" --json >"$TMP/p.json"
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("| %s | %.2f | %.2f | %.2f | %.1f | %d |" % (sys.argv[2], d["min_us"], d["p50_us"], d["p99_us"], d["p999_us"], d["lost"]))' \
		"$TMP/p.json" "$1"
}

rate_row() { # rate_row LABEL NETNS URL RUN...
	label=$1 ns=$2 url=$3
	shift 3
	# shellcheck disable=SC2068
	client "$ns" "$BIN/slm" bench-rpc -s "$url" $@ --duration "$SECS" --json >"$TMP/b.json"
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); r=d["reply_us"]; print("| %s | %s | %.0f | %d | %d | %.1f | %.1f | %.1f |" % (sys.argv[2], sys.argv[3], d["rps"], d["errors"], d["retransmits"], r["p50"], r["p99"], r["p999"]))' \
		"$TMP/b.json" "$label" "$*"
}

SPIN="--set dataplane.spin_us=1000000"
VETH_AFX="--set dataplane.kind=dpdk --set dpdk.port=net_af_xdp0,iface=$IF_S --set dataplane.listen=udp://10.77.0.2:7070"
VETH_AFP="--set dataplane.kind=dpdk --set dpdk.port=net_af_packet0,iface=$IF_S --set dataplane.listen=udp://10.77.0.2:7070"
MEMIF="--set dataplane.kind=dpdk --set dpdk.memif_socket=$TMP/memif.sock --set dataplane.listen=udp://0.0.0.0:7070"

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r)"
echo
echo "### Round trips of slm ping through slmd (microseconds, $N each)"
echo
echo "| path | min | p50 | p99 | p999 | lost |"
echo "|---|---|---|---|---|---|"
# shellcheck disable=SC2086
slmd_start - $MEMIF $SPIN
ping_row "memif, local client (shared memory)" - "$URL"
slmd_stop
# shellcheck disable=SC2086
if slmd_start "$NS_S" $VETH_AFX $SPIN; then
	ping_row "kernel UDP client -> veth -> DPDK af_xdp" "$NS_C" "$URL"
	slmd_stop
else
	echo "| kernel UDP client -> veth -> DPDK af_xdp | (af_xdp does not start here) |||||"
fi
# shellcheck disable=SC2086
slmd_start "$NS_S" $VETH_AFP $SPIN
ping_row "kernel UDP client -> veth -> DPDK af_packet" "$NS_C" "$URL"
slmd_stop
# shellcheck disable=SC2086
slmd_start - --set dataplane.listen=udp://127.0.0.1:0 $SPIN
ping_row "kernel UDP client -> loopback -> io_uring (baseline)" - "$URL"
slmd_stop

echo
echo "### Request rate: slm bench-rpc ($SECS s each; without a model every generate is refused ESTATE: the dataplane's request path)"
echo
echo "| path | run | requests/s | errors | retransmits | reply p50 us | p99 us | p999 us |"
echo "|---|---|---|---|---|---|---|---|"
# shellcheck disable=SC2086
slmd_start - $MEMIF $SPIN
rate_row "memif" - "$URL" --rate 10000 --spin-us 1
rate_row "memif" - "$URL" --concurrency 64 --spin-us 1
slmd_stop
# shellcheck disable=SC2086
if slmd_start "$NS_S" $VETH_AFX $SPIN; then
	rate_row "veth, af_xdp" "$NS_C" "$URL" --rate 10000 --spin-us 1
	rate_row "veth, af_xdp" "$NS_C" "$URL" --concurrency 64 --spin-us 1
	slmd_stop
fi
# shellcheck disable=SC2086
slmd_start "$NS_S" $VETH_AFP $SPIN
rate_row "veth, af_packet" "$NS_C" "$URL" --rate 10000 --spin-us 1
rate_row "veth, af_packet" "$NS_C" "$URL" --concurrency 64 --spin-us 1
slmd_stop
# shellcheck disable=SC2086
slmd_start - --set dataplane.listen=udp://127.0.0.1:0 $SPIN
rate_row "loopback, io_uring" - "$URL" --rate 10000 --spin-us 1
rate_row "loopback, io_uring" - "$URL" --concurrency 64 --spin-us 1
slmd_stop
