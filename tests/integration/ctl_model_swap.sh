# Model swap under load loses no request (issue 11), through slmd, slm
# generate and slmctl:
#  - slmd serves golden model A (llama-s F32) with its own control socket
#    and port; four `slm generate` clients loop in the background;
#  - `slmctl model swap B --wait` (qwen2-s F32: another vocabulary, so the
#    answers tell the models apart) returns once B serves and A is freed;
#  - every request completed (one answer per request sent, none failed),
#    each answer is A's or B's greedy output (`slm run --json` on the same
#    prompt and settings), requests begun after the swap returned are B's,
#    and some requests ran on each model;
#  - `model list` shows B serving alone;
#  - a missing file and a malformed file are refused with exit 1 and the
#    GGUF reader's message, unloading the serving model is refused, and
#    slmd keeps serving B; load + unload of a second model works.
# F32 models: batched and alone give the same greedy tokens there.
. tests/lib.sh
. tests/rpc_lib.sh

MODELS=${SLM_TESTDATA:-build/testdata}/models
A=$MODELS/llama-s-F32.gguf
B=$MODELS/qwen2-s-F32.gguf
[ -f "$A" ] && [ -f "$B" ] || skip "the golden models $A and $B are not generated"
CTL=$BIN/slmctl
PROMPT="Once upon a time"
N=24

# The references, in process.
for m in A B; do
	path=${!m}
	"$BIN/slm" run -m "$path" --json --temp 0 -n $N -p "$PROMPT" >"$TMP/ref.$m.json" 2>"$TMP/ref.$m.err" ||
		fail "slm run -m $path: $(cat "$TMP/ref.$m.err")"
done
ids_of() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(",".join(map(str, d.get("ids", d.get("gen_ids", [])))))' "$1"; }
REF_A=$(ids_of "$TMP/ref.A.json")
REF_B=$(ids_of "$TMP/ref.B.json")
[ -n "$REF_A" ] && [ -n "$REF_B" ] && [ "$REF_A" != "$REF_B" ] ||
	fail "the references do not tell the models apart: '$REF_A' / '$REF_B'"

start_slmd swap --set "model.path=$A" --set engine.ctx=512 --set engine.threads=1 || exit 1
SOCK=$TMP/ctl.swap.sock
ctl() { "$CTL" -s "$SOCK" "$@"; }

# Four clients, each generating until told to stop; one line per request:
# start time, exit status, output file.
client() {
	local c=$1 k=0
	while [ ! -e "$TMP/stop" ]; do
		local out=$TMP/gen.$c.$k.json
		local t0
		t0=$(date +%s.%N)
		"$BIN/slm" generate -s "$SLMD_URL" --json --temp 0 --max-tokens $N "$PROMPT" >"$out" 2>"$out.err"
		echo "$t0 $? $out" >>"$TMP/requests.$c"
		k=$((k + 1))
	done
}
pids=()
for c in 0 1 2 3; do
	client $c &
	pids+=($!)
done
at_exit "touch $TMP/stop; wait ${pids[*]} 2>/dev/null"
sleep 1.5

ctl --json model swap "$B" --wait --timeout 15 >"$TMP/swap.json" 2>"$TMP/swap.err" ||
	fail "model swap $B: $(cat "$TMP/swap.err")"
T_SWAP=$(date +%s.%N)
B_NAME=$(json_get "$TMP/swap.json" 'd["model"]["name"]' 2>/dev/null)
sleep 1.5
touch "$TMP/stop"
wait "${pids[@]}"

cat "$TMP"/requests.* >"$TMP/requests"
python3 - "$TMP/requests" "$T_SWAP" "$REF_A" "$REF_B" <<'PY' >"$TMP/verdict"
import json, sys
lines = [l.split() for l in open(sys.argv[1]) if l.strip()]
t_swap = float(sys.argv[2])
ref = {'A': sys.argv[3], 'B': sys.argv[4]}
n = len(lines)
failed = on_a = on_b = wrong = late_a = 0
for t0, status, out in lines:
    try:
        d = json.load(open(out))
        ids = ','.join(map(str, d.get('ids', [])))
    except Exception:
        d, ids = None, None
    if status != '0' or d is None or d.get('finish') not in ('stop', 'length'):
        failed += 1
        continue
    if ids == ref['A']:
        on_a += 1
        if float(t0) > t_swap:
            late_a += 1
    elif ids == ref['B']:
        on_b += 1
    else:
        wrong += 1
print(n, failed, on_a, on_b, wrong, late_a)
PY
read -r n failed on_a on_b wrong late_a <"$TMP/verdict"
echo "  $n requests: $on_a answered by A, $on_b by B, $failed failed, $wrong other"
[ "$n" -ge 8 ] && [ "$failed" = 0 ] && ok "every request answered ($n sent, $n answers)" ||
	fail "$failed of $n requests failed or were lost: $(grep -l . "$TMP"/gen.*.err | head -3 | xargs cat 2>/dev/null | head -5)"
[ "$wrong" = 0 ] && ok "each answer is A's or B's greedy output" || fail "$wrong answers are neither A's nor B's"
[ "$on_a" -ge 1 ] && [ "$on_b" -ge 1 ] && ok "requests ran on both models" ||
	fail "A answered $on_a, B answered $on_b: the swap did not happen under load"
[ "$late_a" = 0 ] && ok "requests begun after the swap are answered by B" ||
	fail "$late_a requests begun after the swap were answered by A"

# model list: B serves, A is gone.
ctl --json model list >"$TMP/list.json" || fail "model list"
python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))["models"]
sys.exit(not (len(m) == 1 and m[0]["name"] == sys.argv[2] and m[0]["state"] == "serving"
              and m[0]["arch"] == "qwen2" and m[0]["percent"] == 100 and m[0]["running"] == 0))' \
	"$TMP/list.json" "$B_NAME" && ok "model list: $B_NAME serves alone, A is freed" ||
	fail "model list: $(cat "$TMP/list.json")"
ctl model list >"$TMP/list.txt" || fail "model list (table)"
grep -q "^NAME .*STATE .*WEIGHTS" "$TMP/list.txt" && grep -q "^$B_NAME .*serving" "$TMP/list.txt" &&
	ok "model list: a table for people" || fail "model list table: $(cat "$TMP/list.txt")"
grep -q "freed" "$SLMD_LOG" && ok "slmd logged A freed" || fail "no 'freed' line in the log"

# Bad files: exit 1, the reader's message, nothing changes.
expect_fail "swap to a missing file" "no-such.gguf" -- ctl model swap "$TMP/no-such.gguf"
printf 'GGUF\003\000\000\000not a header' >"$TMP/junk.gguf"
expect_fail "load a malformed file" "junk.gguf" "model load:" -- ctl model load "$TMP/junk.gguf"
expect_fail "unload the serving model" "is serving" "swap" -- ctl model unload "$B_NAME"
expect_fail "an unknown model" "no model 'nobody'" -- ctl model unload nobody
"$BIN/slm" generate -s "$SLMD_URL" --json --temp 0 --max-tokens $N "$PROMPT" >"$TMP/after.json" 2>"$TMP/after.err" ||
	fail "generate after the bad files: $(cat "$TMP/after.err")"
[ "$(ids_of "$TMP/after.json")" = "$REF_B" ] && ok "slmd still serves B after the refusals" ||
	fail "after the refusals: $(cat "$TMP/after.json")"

# Load A beside B, then unload it.
ctl --json model load "$A" --wait --timeout 10 >"$TMP/load.json" 2>"$TMP/load.err" ||
	fail "model load $A: $(cat "$TMP/load.err")"
A_NAME=$(json_get "$TMP/load.json" 'd["model"]["name"]' 2>/dev/null)
ctl --json model list >"$TMP/list2.json"
python3 -c '
import json, sys
m = {x["name"]: x["state"] for x in json.load(open(sys.argv[1]))["models"]}
sys.exit(m != {sys.argv[2]: "serving", sys.argv[3]: "ready"})' "$TMP/list2.json" "$B_NAME" "$A_NAME" &&
	ok "model load: $A_NAME ready beside $B_NAME" || fail "after load: $(cat "$TMP/list2.json")"
ctl model unload "$A_NAME" >"$TMP/unload.out" 2>&1 && grep -q "unloaded $A_NAME" "$TMP/unload.out" &&
	ok "model unload $A_NAME" || fail "model unload: $(cat "$TMP/unload.out")"
[ "$(ctl --json model list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["models"]))')" = 1 ] ||
	fail "the unloaded model is still listed"

stop_slmd && ok "slmd stopped cleanly" || fail "slmd did not stop cleanly"
finish
