# slmd's DPDK backend on one end of a veth (an af_packet vdev, in a
# network namespace of its own), a kernel UDP client in another: ping,
# info, many clients, two lcores with two queues, a link that is down at
# start, RX interrupts (net_tap), the errors of a bad setup, and a clean
# stop with the port's and lcores' figures.
#
# It checks greedy generate through the DPDK path against llama.cpp's
# continuation (golden data) and concurrent generates.
. tests/lib.sh
. tests/rpc_lib.sh
. tests/dpdk_lib.sh
dpdk_require
netns_pair || { fail "could not make the network namespaces"; finish; }

MODEL=${SLM_TESTDATA:-build/testdata}/models/llama-s-F32.gguf
model_args=()
[ -f "$MODEL" ] && model_args=(--set "model.path=$MODEL")

start_dpdk main "${model_args[@]}" || exit 1
if [ "$SLMD_URL" = "udp://$SRV_IP:7070" ] &&
	grep -q 'port net_af_packet0 (net_af_packet' "$SLMD_LOG" &&
	grep -q 'link up' "$SLMD_LOG"; then
	ok "slmd serves $SLMD_URL through DPDK (af_packet on $IF_S)"
else
	fail "slmd's start: $(grep -E 'dpdk|ready' "$SLMD_LOG" | head -5)"
fi
[ ! -d "/var/run/dpdk/slmd-$SLMD_PID" ] && ok "no DPDK runtime folder left while it runs" ||
	fail "/var/run/dpdk/slmd-$SLMD_PID exists"

in_cli "$BIN/slm" ping -s "$SLMD_URL" -n 300 --json >"$TMP/ping.json" 2>"$TMP/ping.err" ||
	fail "slm ping: $(cat "$TMP/ping.err")"
if [ "$(json_get "$TMP/ping.json" 'd["n"]')" = 300 ] &&
	[ "$(json_get "$TMP/ping.json" 'd["lost"]')" = 0 ] &&
	json_get "$TMP/ping.json" 'd["min_us"] > 0 and d["min_us"] <= d["p50_us"] <= d["p99_us"]' | grep -q True; then
	ok "slm ping from the kernel side: 300 round trips, none lost (p50 $(json_get "$TMP/ping.json" 'd["p50_us"]') us)"
else
	fail "slm ping: $(cat "$TMP/ping.json")"
fi

in_cli "$BIN/slm" server-info -s "$SLMD_URL" --json >"$TMP/info.json" || fail "slm server-info"
if json_get "$TMP/info.json" 'd["max_request"] == 65536 and d["version"].startswith("slmd")' | grep -q True; then
	ok "slm server-info over DPDK"
else
	fail "slm server-info: $(cat "$TMP/info.json")"
fi

# Generate: greedy and concurrent, against the golden continuation.
if serving_core_present "$SLMD_URL" in_cli; then
	if [ ! -f "$MODEL" ]; then
		fail "slmd serves generate but the golden model $MODEL is missing"
	else
		python3 - "$DATA/golden/greedy.jsonl" "$TMP" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d['model'] == 'models/llama-s-F32.gguf':
        open(sys.argv[2] + '/g.ids', 'w').write(','.join(map(str, d['prompt_ids'])))
        json.dump(d, open(sys.argv[2] + '/g.json', 'w'))
        break
PY
		n=$(json_get "$TMP/g.json" 'len(d["gen_ids"])')
		in_cli "$BIN/slm" generate -s "$SLMD_URL" --json --ids "$(cat "$TMP/g.ids")" \
			--max-tokens "$n" --temp 0 --ignore-eos >"$TMP/gen.json" 2>"$TMP/gen.err" ||
			fail "generate over DPDK: $(cat "$TMP/gen.err")"
		if python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(a["ids"] != b["gen_ids"])' \
			"$TMP/gen.json" "$TMP/g.json"; then
			ok "greedy generate over DPDK gives llama.cpp's $n tokens"
		else
			fail "generate over DPDK differs from the golden continuation"
		fi
		pids=()
		for i in 1 2 3 4; do
			in_cli "$BIN/slm" generate -s "$SLMD_URL" --json --ids "$(cat "$TMP/g.ids")" \
				--max-tokens "$n" --temp 0 --ignore-eos >"$TMP/gen.$i.json" 2>&1 &
			pids+=($!)
		done
		bad=0
		for i in 1 2 3 4; do
			wait "${pids[$((i - 1))]}" || bad=$((bad + 1))
			python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(a["ids"] != b["gen_ids"])' \
				"$TMP/gen.$i.json" "$TMP/g.json" || bad=$((bad + 1))
		done
		[ $bad -eq 0 ] && ok "4 concurrent generates over DPDK, all right" ||
			fail "concurrent generates over DPDK: $bad wrong"
	fi
else
	fail "slmd does not serve generate over DPDK: $(cat "$TMP/probe")"
fi

# Many clients at once, each with its own socket (port).
pids=()
for i in $(seq 1 8); do
	in_cli "$BIN/slm" ping -s "$SLMD_URL" -n 100 --spin-us 0 --json \
		>"$TMP/pp.$i.json" 2>&1 &
	pids+=($!)
done
bad=0
for pid in "${pids[@]}"; do wait "$pid" || bad=$((bad + 1)); done
lost=$(python3 -c 'import json,sys; print(sum(json.load(open(f))["lost"] for f in sys.argv[1:]))' \
	"$TMP"/pp.*.json 2>&1)
[ $bad -eq 0 ] && [ "$lost" = 0 ] && ok "8 concurrent clients x 100 pings: none lost" ||
	fail "concurrent clients: $bad failed, lost $lost"

stop_slmd || fail "slmd did not stop cleanly"
pings=$(counter pings)
if [ "$pings" -ge 1100 ] && [ "$(counter rx_frames)" -ge "$pings" ] &&
	[ "$(counter tx_frames)" -ge "$pings" ] &&
	grep -q 'dpdk: net_af_packet0: rx [0-9]* frames' "$SLMD_LOG" &&
	grep -q 'dpdk: lcore 0 (CPU' "$SLMD_LOG"; then
	ok "stop: pings=$pings, frames counted, port and lcore figures logged"
else
	fail "stop: $(grep -E 'counters:|dpdk: (net|lcore)' "$SLMD_LOG")"
fi

# Two lcores, two queues (af_packet spreads flows by hash).
if start_dpdk mq --set numa.dataplane_cores=2 \
	--set "dpdk.port=net_af_packet0,iface=$IF_S,qpairs=2"; then
	pids=()
	for i in $(seq 1 8); do
		in_cli "$BIN/slm" ping -s "$SLMD_URL" -n 50 --spin-us 0 -q >/dev/null 2>&1 &
		pids+=($!)
	done
	bad=0
	for pid in "${pids[@]}"; do wait "$pid" || bad=$((bad + 1)); done
	stop_slmd || bad=$((bad + 1))
	l0=$(sed -n 's/.*dpdk: lcore 0 (CPU [0-9-]*): rx \([0-9]*\) frames.*/\1/p' "$SLMD_LOG")
	l1=$(sed -n 's/.*dpdk: lcore 1 (CPU [0-9-]*): rx \([0-9]*\) frames.*/\1/p' "$SLMD_LOG")
	if [ $bad -eq 0 ] && grep -q '2 rx threads' "$SLMD_LOG" &&
		[ "${l0:-0}" -gt 0 ] && [ "${l1:-0}" -gt 0 ]; then
		ok "two lcores, two queues: both received (${l0} and ${l1} frames)"
	else
		fail "two lcores: $bad failures, lcore frames '${l0:-}' '${l1:-}'"
	fi
else
	fail "slmd with two lcores"
fi
expect_fail "two lcores on a one-queue port" "has 1 RX / 1 TX queues" "qpairs=N" -- \
	in_srv "$BIN/slmd" --set dataplane.kind=dpdk --set numa.dataplane_cores=2 \
	--set "dpdk.port=net_af_packet0,iface=$IF_S" --set "dataplane.listen=udp://$SRV_IP:7070"

# A link that is down at start: a clear warning, then slmd serves once
# it comes up.  af_packet in this DPDK always says "up", so the port here
# is a memif interface in server role, down until a client connects (the
# client library's memif transport, at the address a memif client uses).
nic_sock=$TMP/nic.sock
if start_dpdk down --set dpdk.link_wait_ms=300 \
	--set "dpdk.port=net_memif_nic0,role=server,socket=$nic_sock,socket-abstract=no" \
	--set dataplane.listen=udp://169.254.77.1:7070; then
	grep -q 'link is still down after 300 ms' "$SLMD_LOG" &&
		ok "a link down at start: a clear warning, serving anyway" ||
		fail "no link-down warning: $(grep dpdk "$SLMD_LOG" | tail -3)"
	# Long enough for lcore 0, which looks once a second, to see it up.
	in_srv "$BIN/slm" ping -s "memif://$nic_sock" -n 30 -i 80000 -q \
		>"$TMP/down.out" 2>&1 &
	pid=$!
	for ((i = 0; i < 40; i++)); do
		grep -q 'net_memif_nic0 (net_memif): link up' "$SLMD_LOG" && break
		sleep 0.1
	done
	wait $pid || fail "ping once the link is up: $(cat "$TMP/down.out")"
	grep -q 'net_memif_nic0 (net_memif): link up' "$SLMD_LOG" &&
		ok "the link came up: logged, pings answered" ||
		fail "link up not logged: $(grep dpdk "$SLMD_LOG" | tail -3)"
	stop_slmd || fail "slmd (link down) did not stop"
	[ "$(counter arp_requests)" -ge 1 ] && ok "the address announced when the link came up" ||
		fail "no gratuitous ARP after link up"
else
	fail "slmd with its link down"
fi

# RX interrupts: net_tap has them; its kernel side lives in NS_S.
if start_dpdk tap --set dataplane.spin_us=0 --set "dpdk.port=net_tap0,iface=${TAG}t" \
	--set dataplane.listen=udp://10.78.0.2:7070; then
	in_srv ip addr add 10.78.0.1/24 dev "${TAG}t"
	in_srv ip link set "${TAG}t" up
	in_srv ethtool -K "${TAG}t" tx off >/dev/null
	in_srv "$BIN/slm" ping -s udp://10.78.0.2:7070 -n 50 -i 2000 --spin-us 0 -W 2000 \
		--json >"$TMP/tap.json" 2>&1
	if grep -q 'idle: RX interrupts' "$SLMD_LOG" &&
		[ "$(json_get "$TMP/tap.json" 'd["lost"]' 2>/dev/null)" = 0 ]; then
		ok "an lcore asleep on RX interrupts (net_tap) answers every ping"
	else
		fail "tap/RX interrupts: $(cat "$TMP/tap.json"); $(grep 'dataplane: listening' "$SLMD_LOG")"
	fi
	stop_slmd || fail "slmd (tap) did not stop"
else
	fail "slmd on net_tap"
fi

expect_fail "an unknown vdev" "dpdk.port 'net_nosuch0'" -- \
	in_srv "$BIN/slmd" --set dataplane.kind=dpdk --set dpdk.port=net_nosuch0 \
	--set "dataplane.listen=udp://$SRV_IP:7070"
expect_fail "an IPv6 listen address" "needs the port's own IPv4 address" -- \
	in_srv "$BIN/slmd" --set dataplane.kind=dpdk --set "dpdk.port=net_af_packet0,iface=$IF_S" \
	--set 'dataplane.listen=udp://[::1]:7070'
expect_fail "port 0" "needs a port number" -- \
	in_srv "$BIN/slmd" --set dataplane.kind=dpdk --set "dpdk.port=net_af_packet0,iface=$IF_S" \
	--set "dataplane.listen=udp://$SRV_IP:0"
expect_fail "rx_threads that disagree with the plan" "numa.dataplane_cores = 3" -- \
	in_srv "$BIN/slmd" --set dataplane.kind=dpdk --set "dpdk.port=net_af_packet0,iface=$IF_S" \
	--set "dataplane.listen=udp://$SRV_IP:7070" --set dataplane.rx_threads=3
finish
