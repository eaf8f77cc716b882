# Through a relay the test runs, which drops 20 %, duplicates 5 % and
# reorders 10 % of the datagrams both ways (this kernel has no netem):
# info and generate requests are retransmitted until answered, each
# request is handled exactly once, pings report their loss.  With a model
# the same path carries token streams: tests/integration/rpc_generate.sh.
. tests/lib.sh
. tests/rpc_lib.sh

start_slmd lossy || exit 1
start_relay "$(port_of "$SLMD_URL")" 0.20 0.05 0.10 || exit 1
ok "relay on $RELAY_URL"

"$BIN/slm" server-info -s "$RELAY_URL" --json >"$TMP/info.json" 2>"$TMP/info.err" &&
	[ "$(json_get "$TMP/info.json" 'd["max_request"]')" = 65536 ] &&
	ok "slm info through the relay" || fail "slm info: $(cat "$TMP/info.err")"

n=20
for i in $(seq 1 $n); do
	"$BIN/slm" generate -s "$RELAY_URL" --retries 20 --json \
		"request $i with a prompt long enough to need two fragments: $(head -c 1500 /dev/zero | tr '\0' x)" \
		>"$TMP/gen.$i.json" 2>/dev/null
done
refused=$(python3 -c 'import json,sys; print(sum(json.load(open(f))["error"]["code"] == "ESTATE" for f in sys.argv[1:]))' \
	"$TMP"/gen.*.json 2>&1)
[ "$refused" = $n ] && ok "$n two-fragment requests answered despite the loss" ||
	fail "answered: $refused of $n"

"$BIN/slm" ping -s "$RELAY_URL" -n 300 -W 50 --json >"$TMP/ping.json" 2>/dev/null
lost=$(json_get "$TMP/ping.json" 'd["lost"]')
# 1 - 0.8^2 = 36 % expected; anything strictly between 10 % and 60 %.
if [ "$lost" -gt 30 ] && [ "$lost" -lt 180 ]; then
	ok "ping reports $lost of 300 lost"
else
	fail "ping lost $lost of 300"
fi

kill -TERM "$RELAY_PID"
wait "$RELAY_PID" 2>/dev/null
stop_slmd || fail "slmd did not stop"
echo "relay: $(tail -n1 "$RELAY_LOG")"
# Each request was decoded and refused exactly once, however many of its
# fragments arrived twice or were resent.
[ "$(counter refused_no_model)" = $n ] && ok "refused_no_model = $n: each request handled once" ||
	fail "refused_no_model = $(counter refused_no_model), expected $n"
dups=$(($(counter dup_request) + $(counter dup_fragment)))
[ "$dups" -gt 0 ] && ok "duplicates seen and absorbed: $dups" ||
	fail "no duplicate reached slmd: the relay did not do its job"
finish
