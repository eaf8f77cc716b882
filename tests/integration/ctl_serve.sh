# The serving core on the control socket, against slmd serving the golden
# llama-s Q8_0 model, with requests sent by `slm generate --json`:
#  - stats: requests_total, tokens_generated_total, prompt_tokens_total
#    move by exactly the requests sent and the tokens they streamed;
#    prefix_hit_tokens_total by exactly the cached tokens the DONEs
#    report (> 0 for a repeated prompt); finish reasons and refusals by
#    reason;
#  - cache flush empties the cached blocks (stats, status.groups, cache
#    stats agree) and the next repeat of the prompt hits nothing;
#  - status.model agrees with `slm info --json` of the same file,
#    status.groups with the plan; topology --json is the plan
#    `slm topology --json` makes for the same file and KV size;
#  - perf --json: the leader's stage histograms count every request
#    (queue_wait, prefill, first_token) and every decode step;
#  - the Prometheus page carries the new families with slmd_ names.
. tests/lib.sh
. tests/rpc_lib.sh

MODEL=${SLM_TESTDATA:-build/testdata}/models/llama-s-Q8_0.gguf
[ -f "$MODEL" ] || skip "the golden model $MODEL is not generated (make testdata)"
CTL=$BIN/slmctl
start_slmd ctl_serve --set "model.path=$MODEL" --set engine.ctx=256 \
	--set metrics.listen=127.0.0.1:0 || exit 1
S=(-s "$TMP/ctl.ctl_serve.sock")

# snap NAME: stats, status and perf as JSON into $TMP/NAME.{stats,status,perf}.
snap() {
	"$CTL" "${S[@]}" stats --json >"$TMP/$1.stats" &&
		"$CTL" "${S[@]}" status --json >"$TMP/$1.status" &&
		"$CTL" "${S[@]}" perf --json >"$TMP/$1.perf" ||
		fail "slmctl against slmd: $(cat "$TMP/$1.stats")"
}

# gen NAME ARGS...: one request, its --json answer in $TMP/gen.NAME.
gen() {
	local name=$1
	shift
	"$BIN/slm" generate -s "$SLMD_URL" --json "$@" >"$TMP/gen.$name" 2>"$TMP/err" ||
		fail "generate $name: $(cat "$TMP/err")"
}

# py NAME CODE: Python checks over the files in $TMP (helpers: load).
py() {
	if python3 - "$TMP" >"$TMP/py.out" 2>&1 <<PY; then
import json, os, sys
T = sys.argv[1]
def load(name):
    return json.load(open(os.path.join(T, name)))
def gens(*names):
    return [load("gen." + n) for n in names]
def stage(perf, name):
    return sum(s["count"] for s in perf["stages"] if s["stage"] == name)
def delta(a, b, key, sub=None):
    if sub:
        return load(b + ".stats")[key].get(sub, 0) - load(a + ".stats")[key].get(sub, 0)
    return load(b + ".stats")[key] - load(a + ".stats")[key]
$2
PY
		ok "$1"
	else
		fail "$1: $(tail -n 4 "$TMP/py.out")"
	fi
}

PROMPT="The quick brown fox jumps over the lazy dog near the bank of the river, and then"
snap s0
py "sourced counters, nothing served yet" '
st = load("s0.stats")
assert st["unsourced"] == [], st["unsourced"]
for k in ("requests_total", "tokens_generated_total", "prefix_hit_tokens_total", "drops_total"):
    assert st[k] == 0, (k, st[k])'

# Three different prompts, then the first one again (a prefix hit).
gen a -n 12 --ignore-eos --temp 0 "$PROMPT"
gen b -n 7 --ignore-eos "Once upon a time"
gen c -n 5 --ignore-eos --temp 0.8 --seed 3 "Hello"
gen a2 -n 12 --ignore-eos --temp 0 "$PROMPT"
snap s1
py "stats moved by exactly the requests, tokens and cache hits" '
g = gens("a", "b", "c", "a2")
for x in g:
    assert x["finish"] == "length", x
    assert x["usage"]["generated_tokens"] == len(x["ids"]), x
assert delta("s0", "s1", "requests_total") == 4
assert delta("s0", "s1", "requests_done_total") == 4
toks = sum(len(x["ids"]) for x in g)
assert toks == 12 + 7 + 5 + 12
assert delta("s0", "s1", "tokens_generated_total") == toks
assert delta("s0", "s1", "prompt_tokens_total") == sum(x["usage"]["prompt_tokens"] for x in g)
hit = sum(x["usage"]["cached_tokens"] for x in g)
assert g[3]["usage"]["cached_tokens"] == g[3]["usage"]["prompt_tokens"] - 1, g[3]["usage"]
assert g[3]["ids"] == g[0]["ids"], "greedy output differs with the prefix hit"
assert delta("s0", "s1", "prefix_hit_tokens_total") == hit > 0
assert delta("s0", "s1", "prefix_miss_tokens_total") == sum(x["usage"]["prompt_tokens"] for x in g) - hit
assert delta("s0", "s1", "requests_finished_by_reason", "length") == 4
assert delta("s0", "s1", "prefix_lookups_total") == 4
assert load("s1.stats")["drops_total"] == 0'

py "perf: stage histograms count every request and decode step" '
p = load("s1.perf")
w = [t for t in p["threads"] if t["name"] == "g0.worker0"]
assert w and w[0]["role"] == "worker" and w[0]["group"] == 0, p["threads"]
assert w[0]["counters"]["requests_total"] == 4, w[0]["counters"]
# every thread of the group has its row (the pool workers too)
rows = [t for t in p["threads"] if t["role"] == "worker" and t["group"] == 0]
assert len(rows) == load("s1.status")["groups"][0]["threads"], rows
assert all(t["cpu_s"] is not None and t["tid"] > 0 for t in rows), rows
# and the dataplane thread has its row (CPU time, what it is doing)
dp = [t for t in p["threads"] if t["role"] == "dataplane" and t.get("tid")]
assert len(dp) == 1 and dp[0]["cpu_s"] is not None, p["threads"]
for s in ("queue_wait", "prefill", "first_token"):
    assert stage(p, s) == 4, (s, stage(p, s))
g = gens("a", "b", "c", "a2")
# one request at a time: every token after the first is one decode step
assert stage(p, "decode_step") == sum(len(x["ids"]) - 1 for x in g), stage(p, "decode_step")
assert stage(p, "detokenize") == sum(len(x["ids"]) for x in g)
ft = [s for s in p["stages"] if s["stage"] == "first_token"][0]
assert ft["group"] == "0" and 0 < ft["p50_us"] <= ft["max_us"], ft'

py "status: model as slm info sees it, groups with their KV blocks" '
m = load("s1.status")["model"]
gr = load("s1.status")["groups"]
assert isinstance(gr, list) and len(gr) == m["groups"] >= 1, gr
g0 = gr[0]
assert g0["kv_blocks_total"] == m["kv_blocks"], (g0, m)
assert g0["kv_blocks_used"] + g0["kv_blocks_free"] <= g0["kv_blocks_total"]
assert g0["kv_blocks_cached"] > 0 and g0["prefix_hit_tokens"] > 0, g0
assert g0["running"] == 0 and g0["queued"] == 0, g0
st = load("s1.stats")
assert st["kv_blocks_cached"] == sum(x["kv_blocks_cached"] for x in gr)'
"$BIN/slm" info -m "$MODEL" --json >"$TMP/info.json" || fail "slm info"
py "status.model matches slm info --json" '
m, i = load("s1.status")["model"], load("info.json")
for k in ("name", "arch", "n_vocab", "file_type", "n_params", "chat_template"):
    assert m[k] == i[k], (k, m[k], i[k])
assert os.path.realpath(m["path"]) == os.path.realpath(i["file"])
assert m["synthetic"] is False and m["n_ctx"] == 256 and m["load_s"] > 0, m'

# topology: the running plan is the plan slm topology makes for the
# same file and KV pool size.
"$CTL" "${S[@]}" topology --json >"$TMP/topo.json" || fail "topology"
KV=$(json_get "$TMP/topo.json" 'd["kv_bytes_per_group"]')
"$BIN/slm" topology --json --model "$MODEL" --kv-bytes "$KV" >"$TMP/slmtopo.json" ||
	fail "slm topology"
py "topology --json is the plan slm topology makes" '
t, s = load("topo.json"), load("slmtopo.json")
assert t["source"] == "running", t["source"]
assert t["plan"] == s, (t["plan"], s)
assert t["text"].startswith("topology"), t["text"][:40]'

# cache flush: nothing cached afterwards, and the repeat hits nothing.
"$CTL" "${S[@]}" cache flush --json >"$TMP/flush.json" || fail "cache flush"
"$CTL" "${S[@]}" cache stats --json >"$TMP/cstats.json" || fail "cache stats"
snap s2
py "cache flush drops every cached block" '
f, c = load("flush.json"), load("cstats.json")
assert f["flushed"] is True and f["dropped_blocks"] > 0, f
assert f["kv_blocks"]["cached"] == 0 and c["kv_blocks"]["cached"] == 0, (f, c)
assert c["kv_blocks"]["free"] == c["kv_blocks"]["total"], c
assert load("s2.stats")["kv_blocks_cached"] == 0
assert load("s2.status")["groups"][0]["kv_blocks_cached"] == 0'
gen a3 -n 12 --ignore-eos --temp 0 "$PROMPT"
# Finish reasons and a refusal: a stop string, a prompt too long.
gen stop -n 40 --stop "e" "Once upon a time"
"$BIN/slm" generate -s "$SLMD_URL" --json -n 4 "$(printf 'word %.0s' $(seq 400))" \
	>"$TMP/gen.big" 2>/dev/null && fail "a 400-word prompt in a 256 context was accepted"
snap s3
py "after the flush the repeat computes its whole prompt" '
a3 = load("gen.a3")
assert a3["usage"]["cached_tokens"] == 0, a3["usage"]
assert a3["ids"] == load("gen.a")["ids"], "greedy output changed after the flush"
assert delta("s2", "s3", "requests_total") == 2
st = load("gen.stop")
hit = st["usage"]["cached_tokens"]
assert delta("s2", "s3", "prefix_hit_tokens_total") == hit
assert delta("s2", "s3", "tokens_generated_total") == len(a3["ids"]) + len(st["ids"])
assert delta("s2", "s3", "requests_finished_by_reason", st["finish"]) == 1 + (st["finish"] == "length")
assert load("gen.big")["error"]["code"] == "ETOOBIG"
assert delta("s2", "s3", "requests_refused_by_reason", "too_big") == 1'

# Prometheus: the same families, with slmd_ names.
URL=$(json_get "$TMP/s3.status" 'd["ctl"]["metrics"]')
python3 - "$URL/metrics" >"$TMP/py.out" 2>&1 <<'PY' && ok "the Prometheus page carries the serving core's families" || fail "metrics: $(tail -n 4 "$TMP/py.out")"
import re, sys, urllib.request
page = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", page, re.M))
want = {
    "slmd_requests_total": "counter", "slmd_tokens_generated_total": "counter",
    "slmd_prefix_hit_tokens_total": "counter", "slmd_prefix_miss_tokens_total": "counter",
    "slmd_requests_finished_total": "counter", "slmd_requests_refused_total": "counter",
    "slmd_prefix_lookups_total": "counter", "slmd_prefix_evictions_total": "counter",
    "slmd_preemptions_total": "counter", "slmd_queue_depth": "gauge",
    "slmd_requests_running": "gauge", "slmd_kv_blocks_total": "gauge",
    "slmd_kv_blocks_used": "gauge", "slmd_kv_blocks_cached": "gauge",
    "slmd_kv_blocks_free": "gauge", "slmd_stage_seconds": "histogram",
}
for name, t in want.items():
    assert types.get(name) == t, (name, types.get(name))
def value(series):
    m = re.search("^" + re.escape(series) + r" (\S+)$", page, re.M)
    assert m, series
    return float(m.group(1))
assert value('slmd_requests_total{role="worker",group="0",thread="g0.worker0"}') == 6
assert value('slmd_requests_finished_total{reason="length"}') >= 5
assert value('slmd_requests_refused_total{reason="too_big"}') == 1
assert value('slmd_stage_seconds_count{group="0",stage="first_token"}') == 6
PY

stop_slmd || fail "slmd did not stop cleanly"
grep -q 'serve: counters: submitted=6 ' "$SLMD_LOG" || fail "the exit log: $(grep 'serve: counters' "$SLMD_LOG")"
finish
