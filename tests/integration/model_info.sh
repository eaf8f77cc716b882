# slm info --json reports exactly the golden README's models table and
# tensor_types.json for every golden model file; errors exit 1.
. tests/lib.sh
MODELS=${SLM_TESTDATA:-$BUILD/testdata}/models
command -v python3 >/dev/null || { echo "python3 is missing (make deps)"; exit 1; }

n=0
for f in $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))))' \
	"$DATA/golden/tensor_types.json"); do
	file=$MODELS/${f#models/}
	if [ ! -f "$file" ]; then
		fail "$file is missing (make testdata, or copy the golden models there)"
		continue
	fi
	if ! "$BIN/slm" info -m "$file" --json >"$TMP/info.json" 2>"$TMP/err"; then
		fail "slm info $file: $(cat "$TMP/err")"
		continue
	fi
	if python3 - "$TMP/info.json" "$DATA/golden/tensor_types.json" "$f" <<'PY' >"$TMP/check" 2>&1; then
import json, sys
info = json.load(open(sys.argv[1]))
golden = json.load(open(sys.argv[2]))[sys.argv[3]]
name = sys.argv[3].split("/")[-1]
# The golden README's models table.
table = {
    "llama-s-": dict(arch="llama", n_vocab=1024, n_embd=256, n_layer=4, n_head=8,
                     n_head_kv=4, head_dim=32, n_ff=768, n_ctx_train=2048,
                     rope_freq_base=10000, rope_scaling={"type": "none", "factor": 1},
                     rms_eps=1e-5, tied_output=False, qkv_bias=False, n_params=3672320,
                     tokenizer={"model": "llama", "pre": "default", "n_tokens": 1024,
                                "bos": 1, "eos": 2},
                     chat_template_present=False, chat_template=None),
    "llama3-s-": dict(arch="llama", n_vocab=2053, n_embd=256, n_layer=4, n_head=4,
                      n_head_kv=1, head_dim=64, n_ff=768, n_ctx_train=131072,
                      rope_freq_base=500000, rope_scaling={"type": "llama3", "factor": 32},
                      rms_eps=1e-5, tied_output=True, qkv_bias=False, n_params=3542560,
                      tokenizer={"model": "gpt2", "pre": "llama-bpe", "n_tokens": 2053,
                                 "bos": 2048, "eos": 2049},
                      chat_template_present=True, chat_template="llama3"),
    "qwen2-s-": dict(arch="qwen2", n_vocab=2051, n_embd=320, n_layer=4, n_head=5,
                     n_head_kv=1, head_dim=64, n_ff=1024, n_ctx_train=32768,
                     rope_freq_base=1000000, rope_scaling={"type": "none", "factor": 1},
                     rms_eps=1e-6, tied_output=True, qkv_bias=True, n_params=5576192,
                     tokenizer={"model": "gpt2", "pre": "qwen2", "n_tokens": 2051,
                                "bos": 2048, "eos": 2050},
                     chat_template_present=True, chat_template="chatml"),
}
want = next(v for k, v in table.items() if name.startswith(k))
want = dict(want)
want["file_type"] = golden["file_type_name"]
want["file_type_id"] = golden["general.file_type"]
want["tensor_types"] = golden["type_counts"]
want["n_tensors"] = golden["n_tensors"]
want["file_size"] = golden["bytes"]
bad = []
for key, value in want.items():
    got = info.get(key, "<absent>")
    if isinstance(value, dict) and isinstance(got, dict):
        for k2, v2 in value.items():
            if got.get(k2, "<absent>") != v2:
                bad.append(f"{key}.{k2}: {got.get(k2, '<absent>')!r} != {v2!r}")
    elif got != value:
        bad.append(f"{key}: {got!r} != {value!r}")
# The contract's field names, all present.
for key in ["arch", "n_vocab", "n_embd", "n_layer", "n_head", "n_head_kv", "head_dim",
            "n_ff", "n_ctx_train", "rope_freq_base", "rope_scaling", "rms_eps",
            "tied_output", "qkv_bias", "file_type", "n_params", "tensor_types",
            "tokenizer", "chat_template"]:
    if key not in info:
        bad.append(f"missing field {key}")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
		n=$((n + 1))
	else
		fail "$f: $(tr '\n' ';' <"$TMP/check")"
	fi
done
[ "$n" -eq 25 ] && ok "slm info --json matches the golden table for all 25 files" ||
	fail "only $n of 25 golden files matched"

# The text form names the essentials.
"$BIN/slm" info -m "$MODELS/llama3-s-Q4_K_M.gguf" >"$TMP/text" 2>&1 || fail "slm info (text)"
for frag in "arch            llama" "MOSTLY_Q4_K_M (15)" "scaling llama3 (factor 32)" \
	"tied to token_embd" "gpt2 (pre-tokenizer llama-bpe), 2053 tokens" "Q6_K"; do
	grep -qF -- "$frag" "$TMP/text" || fail "slm info text lacks '$frag'"
done
ok "slm info text"

expect_fail "missing file" "slm info: " "No such file" -- "$BIN/slm" info -m "$TMP/none.gguf"
printf 'not a model at all' >"$TMP/junk.gguf"
expect_fail "not a GGUF file" "not a GGUF file" -- "$BIN/slm" info -m "$TMP/junk.gguf" --json
expect_fail "vocabulary-only file" "has no tensors" -- \
	"$BIN/slm" info -m "${SLM_TESTDATA:-$BUILD/testdata}/vocab/vocab-spm.gguf"
expect_fail "no -m" "no model given" -- "$BIN/slm" info
expect_fail "bad option" "unknown option" -- "$BIN/slm" info --frobnicate
finish
