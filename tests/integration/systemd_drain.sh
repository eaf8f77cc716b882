# SIGTERM while a real request is in flight: slmd tells systemd STOPPING,
# refuses new work, lets the request finish (complete, not cancelled),
# then exits 0.
. tests/lib.sh
. tests/lib_notify.sh

notify_listen
slmd_private_sets
url=udp://127.0.0.1:$SLMD_PORT
start_slmd -- "${SLMD_SETS[@]}" --set daemon.drain_timeout_ms=60000
if ! wait_for_line "READY=1" 180; then
	fail "no READY=1 within 180 s: $(tail -n 5 "$SLMD_LOG")"
	finish
fi
# Can this slmd generate at all?
if ! "$BIN/slm" generate -s "$url" --max-tokens 1 --json "Hello" >"$TMP/probe.json" 2>"$TMP/probe.err"; then
	why=$(head -c 200 "$TMP/probe.err")
	stop_slmd
	fail "slm generate through slmd failed: $why"
	finish
fi
ok "slmd serves"

# A long request, and SIGTERM while it runs.
tokens=256
for attempt in 1 2 3; do
	"$BIN/slm" generate -s "$url" --ignore-eos --max-tokens $tokens --json \
		"Once upon a time" >"$TMP/gen.json" 2>"$TMP/gen.err" &
	gen=$!
	sleep 0.2
	if kill -0 "$gen" 2>/dev/null; then
		break
	fi
	wait "$gen"
	tokens=$((tokens * 4)) # finished before the signal: ask for more
	gen=
done
if [ -z "$gen" ]; then
	fail "could not keep a request in flight for 0.2 s (up to $tokens tokens)"
	stop_slmd
	finish
fi
kill -TERM "$SLMD_PID"
wait_for_line "STOPPING=1" 10 && ok "STOPPING=1 while the request runs" || fail "no STOPPING=1"
kill -0 "$gen" 2>/dev/null && ok "the request is still in flight after SIGTERM" ||
	echo "note: the request ended right at the signal"
# New work is refused during the drain.
if "$BIN/slm" generate -s "$url" --max-tokens 1 --json "late" >/dev/null 2>"$TMP/late.err"; then
	fail "a request sent during the drain was served"
else
	ok "a request during the drain is refused ($(head -c 100 "$TMP/late.err"))"
fi
wait "$gen"
gstatus=$?
wait_exit "$SLMD_PID" 90
[ "$gstatus" -eq 0 ] && ok "the in-flight request completed" ||
	fail "the in-flight request failed (status $gstatus): $(head -c 300 "$TMP/gen.err")"
python3 - "$TMP/gen.json" "$tokens" <<'EOF' && ok "it finished by length with every token" || fail "incomplete: $(head -c 300 "$TMP/gen.json")"
import json, sys
r = json.load(open(sys.argv[1]))
n = r["usage"]["generated_tokens"]
sys.exit(0 if r["finish"] == "length" and n > 0 and len(r["ids"]) == n else 1)
EOF
[ "$SLMD_STATUS" = 0 ] && ok "slmd exits 0 after the drain" || fail "slmd exit status $SLMD_STATUS"
grep -q "STATUS=stopping" "$NOTIFY_LOG" && ok "STATUS=stopping at the end" || fail "no STATUS=stopping"
finish
