# Generate through slmd end to end, on the golden llama-s-F32 model:
#  - greedy generate through slmd (token-id and text prompts) gives
#    llama.cpp's 48-token continuations from tests/data/golden/greedy.jsonl;
#  - generate through slmd equals `slm run` for the same model, prompt and
#    seed, greedy and sampled (assumed interface: slm run -m MODEL --json
#    --temp T --seed S --max-tokens N [--ignore-eos] PROMPT, printing the
#    same JSON object as slm generate --json);
#  - a 1-token generate of a 4-token prompt: usage and finish;
#  - 16 concurrent clients each get the right continuation;
#  - Ctrl-C on slm generate cancels mid-stream (slmd counts the cancel),
#    a client killed mid-stream is abandoned and its request freed;
#  - through the lossy relay (20 % loss, duplicates, reordering) every
#    request completes with the right tokens and slmd accepted each
#    request exactly once (requests_accepted = requests sent).
. tests/lib.sh
. tests/rpc_lib.sh

MODEL=${SLM_TESTDATA:-build/testdata}/models/llama-s-F32.gguf
[ -f "$MODEL" ] || { fail "the golden model $MODEL is missing (make testdata)"; finish; }
# A long context (the model is fine past its training length) keeps the
# "--max-tokens 100000" requests below running for many seconds, long
# enough to be cancelled or abandoned rather than finished.
start_slmd gen --set "model.path=$MODEL" --set dataplane.abandon_ms=2500 \
	--set engine.ctx=32768 || exit 1
"$BIN/slm" generate -s "$SLMD_URL" --max-tokens 1 hi >"$TMP/probe" 2>&1
if grep -q 'no model loaded' "$TMP/probe"; then
	fail "slmd does not serve generate: $(cat "$TMP/probe")"
	finish
fi
nreq=1

GOLDEN=$DATA/golden/greedy.jsonl
python3 - "$GOLDEN" "$TMP" <<'PY'
import json, sys
out = sys.argv[2]
k = 0
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d['model'] != 'models/llama-s-F32.gguf':
        continue
    json.dump(d, open('%s/golden.%d.json' % (out, k), 'w'))
    open('%s/golden.%d.ids' % (out, k), 'w').write(','.join(map(str, d['prompt_ids'])))
    open('%s/golden.%d.prompt' % (out, k), 'w').write(d['prompt_text'])
    k += 1
print(k)
PY
ngold=$(ls "$TMP"/golden.*.json | wc -l)
[ "$ngold" -ge 3 ] || fail "golden: $ngold llama-s-F32 lines"

# same_ids A B: the "ids" (or "gen_ids") of two JSON files agree.
same_ids() {
	python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
ga = a.get('ids', a.get('gen_ids'))
gb = b.get('ids', b.get('gen_ids'))
sys.exit(0 if ga == gb and ga is not None else 1)
PY
}

gen() { # gen URL OUT ARGS...: slm generate --json
	local url=$1 out=$2
	shift 2
	nreq=$((nreq + 1))
	"$BIN/slm" generate -s "$url" --json --temp 0 --ignore-eos --max-tokens 48 "$@" >"$out" 2>"$out.err"
}

for ((k = 0; k < ngold; k++)); do
	gen "$SLMD_URL" "$TMP/ids.$k.json" --ids "$(cat "$TMP/golden.$k.ids")" ||
		fail "generate --ids (prompt $k): $(cat "$TMP/ids.$k.json.err")"
	same_ids "$TMP/ids.$k.json" "$TMP/golden.$k.json" &&
		ok "prompt $k by ids: llama.cpp's greedy continuation" ||
		fail "prompt $k by ids differs from llama.cpp"
	gen "$SLMD_URL" "$TMP/text.$k.json" "$(cat "$TMP/golden.$k.prompt")" ||
		fail "generate text (prompt $k)"
	same_ids "$TMP/text.$k.json" "$TMP/golden.$k.json" &&
		ok "prompt $k as text: llama.cpp's greedy continuation" ||
		fail "prompt $k as text differs from llama.cpp"
	python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(a["text"]!=b["gen_text"])' \
		"$TMP/text.$k.json" "$TMP/golden.$k.json" &&
		ok "prompt $k: same text as llama.cpp" || fail "prompt $k: text differs from llama.cpp's gen_text"
done

# slm run (in process) and slm generate (through slmd) agree.
if "$BIN/slm" help | grep -q '^  run '; then
	for args in "--temp 0 --seed 1" "--temp 0.8 --seed 42" "--temp 1.2 --top-k 20 --seed 7"; do
		# shellcheck disable=SC2086
		"$BIN/slm" run -m "$MODEL" --json $args -n 32 -p "Once upon a time" \
			>"$TMP/run.json" 2>"$TMP/run.err" || fail "slm run $args: $(cat "$TMP/run.err")"
		nreq=$((nreq + 1))
		# shellcheck disable=SC2086
		"$BIN/slm" generate -s "$SLMD_URL" --json $args --max-tokens 32 "Once upon a time" \
			>"$TMP/gen.json" 2>"$TMP/gen.err" || fail "slm generate $args"
		same_ids "$TMP/run.json" "$TMP/gen.json" && ok "slm generate = slm run ($args)" ||
			fail "slm generate differs from slm run ($args)"
	done
else
	fail "slm run is not there to compare with"
fi

# A 1-token generate of a 4-token prompt.
nreq=$((nreq + 1))
"$BIN/slm" generate -s "$SLMD_URL" --json --ids 1,415,277,377 --max-tokens 1 >"$TMP/one.json" ||
	fail "1-token generate"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); u=d["usage"]; sys.exit(not (u["prompt_tokens"]==4 and u["generated_tokens"]==1 and len(d["ids"])==1 and d["finish"]=="length" and d["timings"]["total_us"]>=d["timings"]["ttft_us"]>0))' \
	"$TMP/one.json" && ok "1-token generate: usage, finish, timings" || fail "1-token generate: $(cat "$TMP/one.json")"

# 16 concurrent clients.
pids=()
for i in $(seq 0 15); do
	k=$((i % ngold))
	gen "$SLMD_URL" "$TMP/conc.$i.json" --ids "$(cat "$TMP/golden.$k.ids")" &
	pids+=($!)
done
bad=0
for i in $(seq 0 15); do
	wait "${pids[i]}" || bad=$((bad + 1))
	same_ids "$TMP/conc.$i.json" "$TMP/golden.$((i % ngold)).json" || bad=$((bad + 1))
done
nreq=$((nreq + 16))
[ $bad = 0 ] && ok "16 concurrent clients: all right" || fail "16 concurrent clients: $bad wrong"

# Ctrl-C mid-stream cancels; a killed client is abandoned.
"$BIN/slm" generate -s "$SLMD_URL" --ignore-eos --max-tokens 100000 "Once" >"$TMP/long.out" 2>"$TMP/long.err" &
p=$!
nreq=$((nreq + 1))
for _ in $(seq 1 100); do [ -s "$TMP/long.out" ] && break; sleep 0.05; done
kill -INT $p
wait $p
[ $? = 130 ] && ok "Ctrl-C: slm generate cancelled, exit 130" || fail "Ctrl-C: $(cat "$TMP/long.err")"
"$BIN/slm" generate -s "$SLMD_URL" --ignore-eos --max-tokens 100000 "Once" >"$TMP/long2.out" 2>&1 &
p=$!
nreq=$((nreq + 1))
for _ in $(seq 1 100); do [ -s "$TMP/long2.out" ] && break; sleep 0.05; done
kill -9 $p
wait $p 2>/dev/null
sleep 4

# Loss, duplicates, reordering.
start_relay "$(port_of "$SLMD_URL")" 0.20 0.05 0.10 || exit 1
for ((k = 0; k < ngold; k++)); do
	gen "$RELAY_URL" "$TMP/lossy.$k.json" --retries 30 --ids "$(cat "$TMP/golden.$k.ids")" ||
		fail "generate through the relay: $(cat "$TMP/lossy.$k.json.err")"
	same_ids "$TMP/lossy.$k.json" "$TMP/golden.$k.json" &&
		ok "prompt $k through 20 % loss: right tokens" || fail "prompt $k through the relay: wrong tokens"
done
kill -TERM "$RELAY_PID"

stop_slmd || fail "slmd did not stop cleanly"
grep -q 'never had their DONE' "$SLMD_LOG" && fail "requests left without DONE at shutdown"
[ "$(counter cancels)" -ge 1 ] && ok "the cancel reached slmd" || fail "cancels = $(counter cancels)"
[ "$(counter abandoned)" -ge 1 ] && ok "the killed client's request was abandoned" ||
	fail "abandoned = $(counter abandoned)"
[ "$(counter requests_accepted)" = $nreq ] && ok "slmd accepted $nreq requests: none ran twice" ||
	fail "requests_accepted = $(counter requests_accepted), sent $nreq"
finish
