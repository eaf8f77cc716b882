# slm logits, slm run, slm bench: the interface scripts rely on, against
# llama.cpp's golden outputs.
#   slm logits writes exactly n_tokens x n_vocab float32 values, no header,
#   within the parity tolerances of llama.cpp's logits (batch and
#   --incremental, KV F32), --text tokenizes as llama.cpp;
#   slm run --json: prompt ids and greedy ids as llama.cpp's (plain and
#   --chat prompts), the streamed text is the pieces' bytes;
#   slm bench --json has its fields; bad input: one line, exit status 1.
. tests/lib.sh

GEN=${SLM_TESTDATA:-$BUILD/testdata}
M=$GEN/models
for f in llama-s-Q4_0 llama-s-F32 llama3-s-F16 qwen2-s-F16; do
	[ -e "$M/$f.gguf" ] || { fail "missing $M/$f.gguf (run make testdata)"; finish; }
done

python3 - "$BIN/slm" "$M" "$DATA/golden" "$TMP" >"$TMP/py.out" 2>&1 <<'EOF_PY'
import json, math, os, struct, subprocess, sys
slm, models, golden, tmp = sys.argv[1:5]
bad = 0
def fail(msg):
    global bad
    bad += 1
    print("FAIL: " + msg)
def ok(msg):
    print("ok: " + msg)
def floats(path):
    b = open(path, "rb").read()
    return struct.unpack("<%df" % (len(b) // 4), b), len(b)
def compare(a, b, n_vocab, rows):
    ss = mx = 0.0
    agree = 0
    for r in range(rows):
        x = a[r * n_vocab:(r + 1) * n_vocab]
        y = b[r * n_vocab:(r + 1) * n_vocab]
        for p, q in zip(x, y):
            ss += (p - q) ** 2
            mx = max(mx, abs(p - q))
        agree += x.index(max(x)) == y.index(max(y))
    return math.sqrt(ss / (rows * n_vocab)), mx, agree

# logits: batch and incremental, KV F32 as llama.cpp's main files
for stem, tol in (("llama-s-Q4_0", 0.3), ("llama-s-F32", 0.001)):
    meta = json.load(open("%s/logits/%s.json" % (golden, stem)))
    ids = ",".join(map(str, meta["input_ids"]))
    want, _ = floats("%s/logits/%s.f32" % (golden, stem))
    for mode in ([], ["--incremental"]):
        out = "%s/%s.f32" % (tmp, stem)
        r = subprocess.run([slm, "logits", "-m", "%s/%s.gguf" % (models, stem),
                            "--ids", ids, "-o", out, "-t", "2",
                            "--set", "cache.kv_type=f32", *mode],
                           capture_output=True, text=True)
        what = "logits %s %s" % (stem, mode[0] if mode else "batch")
        if r.returncode != 0:
            fail("%s: status %d: %s" % (what, r.returncode, r.stderr))
            continue
        got, size = floats(out)
        if size != 64 * 1024 * 4:
            fail("%s: %d bytes, expected %d" % (what, size, 64 * 1024 * 4))
            continue
        rms, mx, agree = compare(got, want, 1024, 64)
        if rms <= tol and agree >= 60:
            ok("%s: rms %.4f max %.3f argmax %d/64" % (what, rms, mx, agree))
        else:
            fail("%s: rms %.4f (<= %g) argmax %d/64" % (what, rms, tol, agree))

# --text: BOS + the passage's tokens; the first 64 rows are the golden input
text = open("%s/inputs/teacher.txt" % golden, encoding="utf-8").read()
out = tmp + "/text.f32"
r = subprocess.run([slm, "logits", "-m", models + "/llama-s-F32.gguf", "--text",
                    text, "-o", out, "--set", "cache.kv_type=f32"],
                   capture_output=True, text=True)
if r.returncode != 0:
    fail("logits --text: " + r.stderr)
else:
    got, size = floats(out)
    want, _ = floats(golden + "/logits/llama-s-F32.f32")
    rms, mx, agree = compare(got, want, 1024, 64)
    if size % 4096 == 0 and size // 4096 > 64 and rms <= 0.001:
        ok("logits --text: %d tokens, first 64 rows rms %.5f" % (size // 4096, rms))
    else:
        fail("logits --text: %d bytes, rms %.4f" % (size, rms))

# run --json: greedy ids as llama.cpp's up to the first small margin
lines = [json.loads(l) for l in open(golden + "/greedy.jsonl")]
picks = [("llama-s-F32", "def fibonacci"), ("qwen2-s-F16", "The capital"),
         ("llama3-s-F16", "Once upon")]
for stem, prefix in picks:
    g = next(l for l in lines if l["model"].endswith(stem + ".gguf")
             and l["prompt"].startswith(prefix))
    upto = next((i for i, m in enumerate(g["top1_minus_top2"]) if m < 0.05), 48)
    args = [slm, "run", "-m", "%s/%s.gguf" % (models, stem), "-p", g["prompt"],
            "-n", "48", "--temp", "0", "--ignore-eos", "--json",
            "--set", "cache.kv_type=f32"]
    if g["chat"]:
        args.append("--chat")
    r = subprocess.run(args, capture_output=True, text=True)
    what = "run --json %s%s '%s'" % (stem, " --chat" if g["chat"] else "", prefix)
    try:
        o = json.loads(r.stdout)
    except ValueError:
        fail("%s: status %d, not JSON: %r %s" % (what, r.returncode, r.stdout[:200], r.stderr))
        continue
    t = o.get("timings", {})
    if (o.get("prompt_ids") != g["prompt_ids"] or len(o.get("ids", [])) != 48 or
            o["ids"][:upto] != g["gen_ids"][:upto] or not isinstance(o.get("text"), str) or
            not all(k in t for k in ("load_ms", "prompt_tok_s", "gen_tok_s"))):
        fail("%s: %s" % (what, r.stdout[:300]))
    else:
        ok("%s: prompt ids and %d greedy ids as llama.cpp's" % (what, upto))

# run streams the pieces: llama-s-F32's second prompt has no small margin
g = next(l for l in lines if l["model"].endswith("llama-s-F32.gguf")
         and l["prompt"].startswith("def"))
r = subprocess.run([slm, "run", "-m", models + "/llama-s-F32.gguf", "-p", g["prompt"],
                    "-n", "48", "--temp", "0", "--ignore-eos",
                    "--set", "cache.kv_type=f32"], capture_output=True)
# gen_text: the pieces' bytes with invalid UTF-8 shown as U+FFFD, as the
# stream shows it
want = g["gen_text"].encode("utf-8") + b"\n"
if r.returncode == 0 and r.stdout == want and b"tokens per second" in r.stderr:
    ok("run streams llama.cpp's text and a timing summary")
else:
    fail("run text: %r, expected %r; %s" % (r.stdout[:120], want[:120], r.stderr[-300:]))

# bench --json
r = subprocess.run([slm, "bench", "-m", models + "/llama-s-Q4_0.gguf", "-p", "32",
                    "-n", "8", "-r", "2", "--bw-mb", "64", "--json"],
                   capture_output=True, text=True)
try:
    o = json.loads(r.stdout)
    keys = ("model", "threads", "simd", "bandwidth_gbs", "bytes_per_token",
            "decode_limit_tok_s", "results")
    res = {x["test"]: x for x in o["results"]}
    if (all(k in o for k in keys) and set(res) == {"pp32", "tg8"} and
            all(res[k]["tok_s"] > 0 and "stddev" in res[k] for k in res) and
            o["bytes_per_token"] > 1000000):
        ok("bench --json: pp32 %.0f, tg8 %.0f tok/s" % (res["pp32"]["tok_s"],
                                                      res["tg8"]["tok_s"]))
    else:
        fail("bench --json fields: " + r.stdout)
except (ValueError, KeyError) as e:
    fail("bench --json: %s: %r %s" % (e, r.stdout[:200], r.stderr))
sys.exit(1 if bad else 0)
EOF_PY
status=$?
cat "$TMP/py.out"
[ $status -eq 0 ] || fail "checks against the golden outputs"

expect_fail "logits: missing file" "slm logits" "/no/such.gguf" -- \
	"$BIN/slm" logits -m /no/such.gguf --ids 1 -o "$TMP/x.f32"
expect_fail "run: not a GGUF file" "slm run" "not a GGUF file" -- \
	"$BIN/slm" run -m "$DATA/golden/tensor_types.json" -p hi
expect_fail "bench: missing file" "slm bench" "/no/such.gguf" -- \
	"$BIN/slm" bench -m /no/such.gguf
expect_fail "run: no prompt" "give the prompt" -- "$BIN/slm" run -m "$M/llama-s-F32.gguf"
expect_fail "run: id beyond the vocabulary" "beyond the vocabulary" -- \
	"$BIN/slm" run -m "$M/llama-s-F32.gguf" --ids 1,5000
expect_fail "logits: no output" "-o FILE" -- \
	"$BIN/slm" logits -m "$M/llama-s-F32.gguf" --ids 1,2
expect_fail "run: bad --simd" "auto|scalar|avx2|avx512" -- \
	"$BIN/slm" run -m "$M/llama-s-F32.gguf" -p hi --simd sse9
for cmd in run logits bench; do
	n=$("$BIN/slm" $cmd -m /no/such.gguf --ids 1 -p 1 -o "$TMP/x" 2>&1 >/dev/null | wc -l)
	[ "$n" -eq 1 ] && ok "$cmd: one line for a missing file" || fail "$cmd: $n lines for a missing file"
done
finish
