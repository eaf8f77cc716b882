# slmd serves the RPC: ping, info (with the synthetic model it makes when
# none is configured), generate, many clients at once, IPv6, a clean stop
# with its counters.
. tests/lib.sh
. tests/rpc_lib.sh

start_slmd main --set dataplane.spin_us=200 || exit 1
ok "slmd ready on $SLMD_URL"

"$BIN/slm" ping -s "$SLMD_URL" -n 200 --json >"$TMP/ping.json" 2>"$TMP/ping.err" ||
	fail "slm ping: $(cat "$TMP/ping.err")"
if [ "$(json_get "$TMP/ping.json" 'd["n"]')" = 200 ] &&
	[ "$(json_get "$TMP/ping.json" 'd["lost"]')" = 0 ] &&
	json_get "$TMP/ping.json" 'd["min_us"] > 0 and d["min_us"] <= d["p50_us"] <= d["p99_us"] <= d["p999_us"]' | grep -q True; then
	ok "slm ping --json: 200 round trips, none lost, ordered percentiles"
else
	fail "slm ping --json: $(cat "$TMP/ping.json")"
fi

"$BIN/slm" server-info -s "$SLMD_URL" --json >"$TMP/info.json" || fail "slm server-info"
if json_get "$TMP/info.json" 'd["model"] == "synthetic-random" and d["n_ctx"] > 0 and d["max_request"] == 65536 and d["version"].startswith("slmd")' | grep -q True; then
	ok "slm info: the synthetic model, limits and version"
else
	fail "slm info: $(cat "$TMP/info.json")"
fi

"$BIN/slm" generate -s "$SLMD_URL" --max-tokens 8 "Hello" >"$TMP/hello.out" 2>&1 &&
	ok "slm generate Hello (synthetic model): $(head -c 60 "$TMP/hello.out")" ||
	fail "slm generate Hello: $(cat "$TMP/hello.out")"
"$BIN/slm" generate -s "$SLMD_URL" --json --ids 1,2,3 --max-tokens 4 \
	>"$TMP/gen.json" 2>/dev/null
status=$?
if [ $status -eq 0 ] && [ "$(json_get "$TMP/gen.json" 'len(d["ids"]) == 4 and d["finish"] == "length" and d["usage"]["prompt_tokens"] == 3')" = True ]; then
	ok "slm generate --json --ids: 4 tokens, finish length"
else
	fail "slm generate --json --ids: status $status, $(cat "$TMP/gen.json")"
fi

# Many clients at once, each a process with its own socket.
pids=()
for i in $(seq 1 24); do
	"$BIN/slm" ping -s "$SLMD_URL" -n 100 --spin-us 0 --json \
		>"$TMP/ping.$i.json" 2>&1 &
	pids+=($!)
done
bad=0
for pid in "${pids[@]}"; do
	wait "$pid" || bad=$((bad + 1))
done
lost=$(python3 -c 'import json,sys; print(sum(json.load(open(f))["lost"] for f in sys.argv[1:]))' \
	"$TMP"/ping.[0-9]*.json 2>&1)
[ "$lost" = 0 ] || bad=$((bad + 1))
if [ $bad -eq 0 ]; then
	ok "24 concurrent clients x 100 pings: none lost"
else
	fail "concurrent clients: $bad failures"
fi

# The URL forms: a name, and IPv6.
port=$(port_of "$SLMD_URL")
"$BIN/slm" ping -s "udp://localhost:$port" -n 3 -q >/dev/null 2>&1 ||
	"$BIN/slm" ping -s "udp://127.0.0.1:$port" -n 3 -q >/dev/null ||
	fail "ping by name"
expect_fail "a server that is not there" "udp://127.0.0.1:1" -- \
	"$BIN/slm" ping -s udp://127.0.0.1:1 -n 2 -W 100
expect_fail "a bad URL" "expected udp://HOST:PORT" -- \
	"$BIN/slm" ping -s 127.0.0.1:7070 -n 1

stop_slmd || fail "slmd did not stop cleanly on SIGTERM"
pings=$(counter pings)
if [ "$pings" -ge 2600 ] && [ "$(counter requests_done)" = 2 ]; then
	ok "shutdown counters: pings=$pings requests_done=2"
else
	fail "shutdown counters: $(grep 'counters:' "$SLMD_LOG")"
fi

# IPv6, dual stack.
if start_slmd v6 --set 'dataplane.listen=udp://[::]:0'; then
	port=$(port_of "$SLMD_URL")
	"$BIN/slm" ping -s "udp://[::1]:$port" -n 20 -q >/dev/null 2>&1 &&
		"$BIN/slm" ping -s "udp://127.0.0.1:$port" -n 20 -q >/dev/null 2>&1 &&
		ok "[::] serves IPv6 and IPv4 clients" ||
		fail "dual-stack ping on $SLMD_URL"
	stop_slmd || fail "slmd (v6) did not stop"
else
	fail "slmd on [::]"
fi

# Two receive threads.
if start_slmd mt --set dataplane.rx_threads=2 --set dataplane.spin_us=0; then
	"$BIN/slm" ping -s "$SLMD_URL" -n 50 -q >/dev/null || fail "ping, 2 threads"
	grep -q '2 rx threads' "$SLMD_LOG" && ok "two receive threads" || fail "rx_threads=2 not in the log"
	stop_slmd || fail "slmd (2 threads) did not stop"
fi

# Each slmd below has a control socket of its own (a second slmd on the
# same socket would be refused for that, not for the address).
expect_fail "dataplane.kind=dpdk with neither a port nor memif" "needs dpdk.port" -- \
	"$BIN/slmd" --set dataplane.kind=dpdk --set dataplane.listen=udp://127.0.0.1:0 \
	--set "ctl.socket=$TMP/ctl.dpdk.sock"
expect_fail "a listen address in use" "bind" "Address already in use" -- \
	bash -c "\"$BIN/slmd\" --set dataplane.listen=udp://127.0.0.1:0 --set ctl.socket=$TMP/ctl.first.sock & p=\$!; sleep 0.5; \
		u=\$(ss -lunp 2>/dev/null | sed -n \"s/.*127.0.0.1:\\([0-9]*\\).*pid=\$p,.*/\\1/p\" | head -n1); \
		\"$BIN/slmd\" --set dataplane.listen=udp://127.0.0.1:\$u --set ctl.socket=$TMP/ctl.second.sock; s=\$?; kill \$p; wait \$p; exit \$s"
expect_fail "client_idle_s below the replay window" "client_idle_s" -- \
	"$BIN/slmd" --set dataplane.client_idle_s=10 --set dataplane.replay_window_s=30 \
	--set "ctl.socket=$TMP/ctl.idle.sock"
finish
