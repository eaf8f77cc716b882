# Local clients over shared memory: slmd's DPDK backend with memif links
# on a socket, libslmclient's memif:// transport (its plugin, DPDK in the
# client process): ping, info, several clients at once each on its own
# link, a full house refused at once, bad URLs, a stale socket after a
# crash, and a clean stop that leaves nothing behind.
#
# Greedy generate over memif must give llama.cpp's continuation.
. tests/lib.sh
. tests/rpc_lib.sh
. tests/dpdk_lib.sh
dpdk_require
[ -e "$BUILD/lib/slmclient/libslmclient-memif.so" ] ||
	skip "the memif client plugin was not built ($BUILD/lib/slmclient)"

MODEL=${SLM_TESTDATA:-build/testdata}/models/llama-s-F32.gguf
model_args=()
[ -f "$MODEL" ] && model_args=(--set "model.path=$MODEL")
mkdir -p "$TMP/run"
SOCK=$TMP/run/memif.sock
URL="memif://$SOCK?port=7071"

start_memif() { # start_memif NAME [args]: slmd with memif links only
	local name=$1
	shift
	SLMD_LOG=$TMP/slmd.$name.log
	"$BIN/slmd" --set dataplane.kind=dpdk --set "dpdk.memif_socket=$SOCK" \
		--set dpdk.memif_links=3 --set dataplane.listen=udp://0.0.0.0:7071 \
		--set log.target=stderr "${model_args[@]}" "$@" >"$SLMD_LOG" 2>&1 &
	SLMD_PID=$!
	at_exit "kill -9 $SLMD_PID 2>/dev/null; wait $SLMD_PID 2>/dev/null"
	local i
	for ((i = 0; i < 150; i++)); do
		grep -q 'ready: serving on' "$SLMD_LOG" 2>/dev/null && return 0
		kill -0 "$SLMD_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "slmd ($name) did not become ready:"
	sed 's/^/  | /' "$SLMD_LOG"
	return 1
}

start_memif main || exit 1
if grep -q "ready: serving on memif://$SOCK" "$SLMD_LOG" &&
	[ "$(stat -c %a "$SOCK")" = 666 ] &&
	[ "$(stat -c %s "$SOCK.lock")" = 3 ]; then
	ok "slmd serves memif://$SOCK: 3 links, socket and lock file in place"
else
	fail "memif start: $(grep -E 'memif|ready' "$SLMD_LOG"); $(ls -l "$TMP/run")"
fi

"$BIN/slm" ping -s "$URL" -n 500 --json >"$TMP/ping.json" 2>"$TMP/ping.err" ||
	fail "slm ping over memif: $(cat "$TMP/ping.err")"
if [ "$(json_get "$TMP/ping.json" 'd["lost"]')" = 0 ] &&
	[ "$(json_get "$TMP/ping.json" 'd["n"]')" = 500 ]; then
	ok "slm ping over memif: 500 round trips, none lost (p50 $(json_get "$TMP/ping.json" 'd["p50_us"]') us)"
else
	fail "slm ping over memif: $(cat "$TMP/ping.json")"
fi
"$BIN/slm" server-info -s "$URL" --json >"$TMP/info.json" 2>&1 &&
	json_get "$TMP/info.json" 'd["max_request"] == 65536' | grep -q True &&
	ok "slm server-info over memif" || fail "server-info over memif: $(cat "$TMP/info.json")"

if serving_core_present "$URL"; then
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
	"$BIN/slm" generate -s "$URL" --json --ids "$(cat "$TMP/g.ids")" --max-tokens "$n" \
		--temp 0 --ignore-eos >"$TMP/gen.json" 2>"$TMP/gen.err" || fail "generate over memif"
	python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(a["ids"] != b["gen_ids"])' \
		"$TMP/gen.json" "$TMP/g.json" &&
		ok "greedy generate over memif gives llama.cpp's $n tokens" ||
		fail "generate over memif differs from the golden continuation"
else
	fail "slmd does not serve generate over memif: $(cat "$TMP/probe")"
fi

# Three clients at once take the three links; a fourth is refused at once.
pids=()
for i in 1 2 3; do
	"$BIN/slm" ping -s "$URL" -n 60 -i 20000 --json >"$TMP/c.$i.json" 2>"$TMP/c.$i.err" &
	pids+=($!)
done
sleep 0.7
t0=$(date +%s%N)
expect_fail "a fourth client while three links are taken" "all 3 memif links" "in use" -- \
	"$BIN/slm" ping -s "$URL" -n 1
ms=$((($(date +%s%N) - t0) / 1000000))
[ $ms -lt 3000 ] && ok "refused in $ms ms" || fail "the refusal took $ms ms"
bad=0
for pid in "${pids[@]}"; do wait "$pid" || bad=$((bad + 1)); done
lost=$(python3 -c 'import json,sys; print(sum(json.load(open(f))["lost"] for f in sys.argv[1:]))' \
	"$TMP"/c.[123].json 2>&1)
[ $bad -eq 0 ] && [ "$lost" = 0 ] && ok "three memif clients at once, none lost" ||
	fail "three clients: $bad failed, lost $lost; $(cat "$TMP"/c.*.err)"
"$BIN/slm" ping -s "$URL" -n 5 -q >/dev/null 2>&1 && ok "links free again once the clients exit" ||
	fail "no link free after the clients exited"

expect_fail "the wrong UDP port" "no answer" -- "$BIN/slm" ping -s "memif://$SOCK" -n 2 -W 200
expect_fail "a relative memif path" "memif:///PATH" -- "$BIN/slm" ping -s memif://run/x.sock -n 1
expect_fail "no socket there" "is slmd serving memif there" -- \
	"$BIN/slm" ping -s "memif://$TMP/nothing.sock" -n 1
expect_fail "an unknown option" "port=N and id=K" -- "$BIN/slm" ping -s "$URL&foo=1" -n 1

# A crash leaves the socket behind; the next slmd removes it.
kill -9 "$SLMD_PID"
wait "$SLMD_PID" 2>/dev/null
[ -S "$SOCK" ] || fail "the socket vanished with a crash (expected a stale one)"
if start_memif again; then
	grep -q 'removing the stale memif socket' "$SLMD_LOG" &&
		"$BIN/slm" ping -s "$URL" -n 20 -q >/dev/null 2>&1 &&
		ok "a stale socket is replaced, and served" ||
		fail "after a crash: $(grep -E 'memif|stale' "$SLMD_LOG")"
	"$BIN/slm" ping -s "memif://$SOCK?port=7071&id=2" -n 3 -q >/dev/null 2>&1 &&
		ok "a link chosen by id" || fail "memif id=2"
	stop_slmd || fail "slmd did not stop cleanly"
	[ ! -e "$SOCK" ] && [ ! -e "$SOCK.lock" ] && ok "socket and lock file removed at stop" ||
		fail "left behind: $(ls "$TMP/run")"
	[ "$(counter pings)" -ge 23 ] && ok "pings counted: $(counter pings)" ||
		fail "counters: $(grep counters: "$SLMD_LOG")"
else
	fail "slmd after a crash"
fi
dpdk_cleanup_runtime
left=$(ls -d /var/run/dpdk/slmc-* 2>/dev/null | wc -l)
[ "$left" = 0 ] && ok "no client runtime folders left" || fail "$left /var/run/dpdk/slmc-* left"
finish
