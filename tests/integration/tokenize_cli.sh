# slm tokenize / slm detokenize: the interface scripts rely on.
#   --json prints a JSON array of ids; --no-bos drops what the vocabulary
#   adds; --special parses special-token text; '-' reads standard input
#   byte for byte; ids equal llama.cpp's (golden data).
. tests/lib.sh

GEN=${SLM_TESTDATA:-$BUILD/testdata}
for v in spm llama3-bpe qwen2-bpe; do
	[ -e "$GEN/vocab/vocab-$v.gguf" ] ||
		{ fail "missing $GEN/vocab/vocab-$v.gguf (run make testdata)"; finish; }
done

# Golden strings through stdin, in the four modes, for the three
# vocabularies: python3 reads the golden file and checks the JSON arrays.
python3 - "$BIN/slm" "$GEN" "$DATA/golden/tokenize.jsonl" >"$TMP/golden.out" 2>&1 <<'EOF'
import json, subprocess, sys
slm, gen, golden = sys.argv[1:4]
picks = {0, 5, 22, 26, 54, 67, 79, 84, 86, 88}
modes = [("ids", ["--special"]), ("ids_noparse", []),
         ("ids_nobos", ["--no-bos", "--special"]),
         ("ids_nobos_noparse", ["--no-bos"])]
bad = checks = 0
for line in open(golden):
    g = json.loads(line)
    if g["string_index"] not in picks:
        continue
    text = bytes.fromhex(g["text_utf8_hex"])
    for key, flags in modes:
        r = subprocess.run([slm, "tokenize", "-m", gen + "/vocab/" + g["gguf"],
                            "--json", *flags, "-"], input=text,
                           capture_output=True)
        checks += 1
        out = r.stdout.decode()
        try:
            ids = json.loads(out)
        except ValueError:
            ids = None
        if r.returncode != 0 or ids != g[key] or not out.endswith("]\n"):
            bad += 1
            print("FAIL: %s string %d %s: %r" % (g["vocab"], g["string_index"],
                                               key, out[:200] + r.stderr.decode()))
print("%d of %d golden checks differ" % (bad, checks))
sys.exit(1 if bad or checks != len(picks) * 3 * 4 else 0)
EOF
if [ $? -eq 0 ]; then ok "golden ids through stdin, four modes, three vocabularies"
else fail "golden ids: $(tail -n 5 "$TMP/golden.out")"; fi

Q=$GEN/vocab/vocab-qwen2-bpe.gguf
S=$GEN/vocab/vocab-spm.gguf

# stdin byte for byte: NUL, ill-formed UTF-8, no trailing newline added
printf 'a\000b\377\303(\n' >"$TMP/bytes"
a=$("$BIN/slm" tokenize -m "$Q" --ids - <"$TMP/bytes")
b=$("$BIN/slm" tokenize -m "$Q" --ids -f "$TMP/bytes")
[ -n "$a" ] && [ "$a" = "$b" ] && ok "stdin and -f give the same ids" ||
	fail "stdin '$a' vs file '$b'"
c=$(printf 'a\000b\377\303(' | "$BIN/slm" tokenize -m "$Q" --ids -)
[ "$c" != "$a" ] && ok "stdin is read byte for byte (the newline counts)" ||
	fail "a trailing newline made no difference"

# --no-bos and --special on the SPM vocabulary
# (this SPM vocabulary is the npm "llama2" one: "▁Hello" is 22557)
[ "$("$BIN/slm" tokenize -m "$S" --json "Hello")" = "[1,22557]" ] &&
	ok "BOS added by default" || fail "spm Hello: $("$BIN/slm" tokenize -m "$S" --json Hello)"
[ "$("$BIN/slm" tokenize -m "$S" --json --no-bos "Hello")" = "[22557]" ] &&
	ok "--no-bos" || fail "--no-bos"
sp=$("$BIN/slm" tokenize -m "$Q" --json --special "<|im_start|>")
np=$("$BIN/slm" tokenize -m "$Q" --json "<|im_start|>")
[ "$sp" = "[151644]" ] && [ "$np" != "$sp" ] && ok "--special parses special tokens" ||
	fail "--special: '$sp' / '$np'"

# detokenize: ids as 1,2,3 or a JSON array; back to the text
ids=$("$BIN/slm" tokenize -m "$Q" --json --no-bos "Grüße, 世界! 🚀")
txt=$("$BIN/slm" detokenize -m "$Q" "$ids")
[ "$txt" = "Grüße, 世界! 🚀" ] && ok "detokenize a JSON array" || fail "detokenize: '$txt'"
csv=$(printf '%s' "$ids" | tr -d '[]')
txt=$("$BIN/slm" detokenize -m "$Q" "$csv")
[ "$txt" = "Grüße, 世界! 🚀" ] && ok "detokenize 1,2,3" || fail "detokenize csv: '$txt'"
txt=$(printf '%s' "$csv" | "$BIN/slm" detokenize -m "$Q" -)
[ "$txt" = "Grüße, 世界! 🚀" ] && ok "detokenize from stdin" || fail "detokenize stdin: '$txt'"
txt=$("$BIN/slm" detokenize -m "$Q" 151644,872,198)
[ "$txt" = "<|im_start|>user" ] && ok "special tokens shown" || fail "specials: '$txt'"
txt=$("$BIN/slm" detokenize -m "$Q" --no-special 151644,872,198)
[ "$txt" = "user" ] && ok "--no-special" || fail "--no-special: '$txt'"
txt=$("$BIN/slm" detokenize -m "$S" --clean "$("$BIN/slm" tokenize -m "$S" --json "Hello world")")
[ "$txt" = " Hello world" ] && ok "--clean (llama_detokenize keeps the space after a removed BOS)" ||
	fail "--clean: '$txt'"

# errors: exit 1 and a message that says what is wrong
expect_fail "tokenize: missing model" "$TMP/none.gguf" -- \
	"$BIN/slm" tokenize -m "$TMP/none.gguf" x
expect_fail "tokenize: not a GGUF file" "$TMP/bytes" -- \
	"$BIN/slm" tokenize -m "$TMP/bytes" x
expect_fail "tokenize: unknown option" "--bogus" -- \
	"$BIN/slm" tokenize -m "$Q" --bogus x
expect_fail "tokenize: no text" "TEXT" -- "$BIN/slm" tokenize -m "$Q"
expect_fail "detokenize: id out of range" "out of range" "151936" -- \
	"$BIN/slm" detokenize -m "$Q" 1,151936
expect_fail "detokenize: not an id" "bad token id" "'x'" -- \
	"$BIN/slm" detokenize -m "$Q" 1,x,2
finish
