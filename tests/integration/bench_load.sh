# slm bench-load runs every load method on a golden model and prints the
# ratio to the raw O_DIRECT rate; --json carries the same numbers.
. tests/lib.sh
MODEL=${SLM_TESTDATA:-$BUILD/testdata}/models/llama-s-Q8_0.gguf
[ -f "$MODEL" ] || { fail "$MODEL is missing (make testdata)"; finish; }

for mode in uring read mmap; do
	if "$BIN/slm" bench-load -m "$MODEL" --mode "$mode" -r 2 >"$TMP/out" 2>"$TMP/err"; then
		if grep -q "^method   $mode" "$TMP/out" &&
			grep -Eq "^(ratio    [0-9.]+ % of the raw O_DIRECT rate|raw      unavailable)" "$TMP/out"; then
			ok "bench-load --mode $mode"
		else
			fail "bench-load --mode $mode: unexpected output: $(cat "$TMP/out")"
		fi
	else
		fail "bench-load --mode $mode: $(cat "$TMP/err")"
	fi
done

"$BIN/slm" bench-load -m "$MODEL" --qd 4 --block 64K --json >"$TMP/json" 2>"$TMP/err" ||
	fail "bench-load --json: $(cat "$TMP/err")"
if python3 - "$TMP/json" <<'PY'; then
import json, sys
o = json.load(open(sys.argv[1]))
assert o["mode"] == "uring" and o["queue_depth"] == 4, o
assert o["block_size"] % 65536 == 0, o
assert o["data_bytes"] > 3_000_000 and o["load_s"] > 0 and o["load_gbs"] > 0, o
assert o["ratio"] is None or o["ratio"] > 0, o
assert len(o["runs"]) == 1, o
PY
	ok "bench-load --json"
else
	fail "bench-load --json: $(cat "$TMP/json")"
fi

expect_fail "bench-load: missing file" "No such file" -- "$BIN/slm" bench-load -m "$TMP/none.gguf"
expect_fail "bench-load: bad mode" "model.load" "uring|read|mmap" -- \
	"$BIN/slm" bench-load -m "$MODEL" --mode fast
expect_fail "bench-load: bad node" "node 4000 does not exist" -- \
	"$BIN/slm" bench-load -m "$MODEL" --node 4000
expect_fail "bench-load: bad block" "--block" -- "$BIN/slm" bench-load -m "$MODEL" --block 12
finish
