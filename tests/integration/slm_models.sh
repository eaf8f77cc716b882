# slm mkmodel and slm quantize from the command line: outputs, the
# equivalence of a streamed mix with quantizing the F32 file,
# determinism, vocabulary lookup, and clear errors.
. tests/lib.sh
SLM=$(realpath "$BIN/slm")

expect_fail "quantize: no arguments" "usage: slm quantize" -- "$SLM" quantize
expect_fail "quantize: unknown type" "unknown type 'Q9_K'" "Q4_K_M" -- \
	"$SLM" quantize "$TMP/a.gguf" "$TMP/b.gguf" Q9_K
expect_fail "quantize: missing input" "$TMP/none.gguf" -- \
	"$SLM" quantize "$TMP/none.gguf" "$TMP/b.gguf" Q4_0
expect_fail "mkmodel: unknown preset" "unknown preset 'nope'" "tinyllama" -- \
	"$SLM" mkmodel --preset nope
expect_fail "mkmodel: bad heads" "not a multiple of n_head 3" -- \
	"$SLM" mkmodel --preset tiny --n-head 3 -o "$TMP/x.gguf"
expect_fail "mkmodel: no shape" "give --preset NAME or --arch" -- "$SLM" mkmodel -o "$TMP/x.gguf"
expect_fail "mkmodel: bad type" "unknown type 'Q7'" -- "$SLM" mkmodel --preset tiny --type Q7

run() { "$@" >"$TMP/out" 2>"$TMP/err" || { fail "$*: $(tail -c 300 "$TMP/err")"; return 1; }; }

if run "$SLM" mkmodel --preset tiny --quiet -o "$TMP/tiny-F32.gguf" &&
	run "$SLM" mkmodel --preset tiny --type Q4_K_M --quiet -o "$TMP/tiny-direct.gguf" &&
	run "$SLM" quantize --quiet "$TMP/tiny-F32.gguf" "$TMP/tiny-quant.gguf" Q4_K_M; then
	if cmp -s "$TMP/tiny-direct.gguf" "$TMP/tiny-quant.gguf"; then
		ok "mkmodel --type Q4_K_M equals quantize of the F32 file"
	else
		fail "mkmodel --type Q4_K_M differs from quantize of the F32 file"
	fi
	size=$(stat -c %s "$TMP/tiny-direct.gguf")
	[ "$size" -gt 500000 ] && [ "$size" -lt 2000000 ] && ok "tiny Q4_K_M is $size bytes" ||
		fail "tiny Q4_K_M is $size bytes"
fi

# Requantizing a quantized file, and the same seed giving the same bytes.
run "$SLM" quantize --quiet --threads 1 "$TMP/tiny-quant.gguf" "$TMP/tiny-q8.gguf" Q8_0 &&
	ok "requantize Q4_K_M -> Q8_0"
if run "$SLM" mkmodel --preset tiny --type Q5_0 --seed 9 --threads 1 --quiet -o "$TMP/s1.gguf" &&
	run "$SLM" mkmodel --preset tiny --type Q5_0 --seed 9 --threads 2 --quiet -o "$TMP/s2.gguf" &&
	run "$SLM" mkmodel --preset tiny --type Q5_0 --seed 10 --quiet -o "$TMP/s3.gguf"; then
	cmp -s "$TMP/s1.gguf" "$TMP/s2.gguf" && ok "same seed, same bytes" || fail "same seed, different bytes"
	cmp -s "$TMP/s1.gguf" "$TMP/s3.gguf" && fail "another seed, same bytes" || ok "another seed, other bytes"
fi

# Explicit dimensions (qwen2: tied, biases) and the default output name.
if (cd "$TMP" && "$SLM" mkmodel --arch qwen2 --name q --n-embd 128 --n-layer 2 \
	--n-head 4 --n-head-kv 2 --n-ff 256 --n-vocab 300 --tied --type Q6_K \
	--quiet) 2>"$TMP/err"; then
	[ -s "$TMP/q-Q6_K.gguf" ] && ok "explicit qwen2 dimensions" || fail "no q-Q6_K.gguf"
else
	fail "explicit qwen2 dimensions: $(tail -c 300 "$TMP/err")"
fi

# A preset's vocabulary is found beside the build (build/testdata/vocab);
# with dimensions shrunk the file stays small.
VOCABS=${SLM_TESTDATA:-$BUILD/testdata}/vocab
if [ -f "$VOCABS/vocab-spm.gguf" ]; then
	if run "$SLM" mkmodel --preset tinyllama --n-layer 1 --n-embd 64 --n-head 4 \
		--n-head-kv 4 --n-ff 128 --type Q8_0 -o "$TMP/tl.gguf"; then
		grep -q "vocab-spm.gguf" "$TMP/err" && ok "tinyllama finds vocab-spm.gguf" ||
			fail "tinyllama vocabulary: $(cat "$TMP/err")"
	fi
	# A copy of slm away from the build has no vocabulary to find.
	mkdir -p "$TMP/bin"
	cp "$SLM" "$TMP/bin/slm"
	SLM_VOCAB_DIR= expect_fail "mkmodel: vocabulary not found" \
		"needs the vocabulary vocab-spm.gguf" "--vocab builtin" -- \
		"$TMP/bin/slm" mkmodel --preset tinyllama -o "$TMP/none.gguf"
	SLM_VOCAB_DIR=$VOCABS run "$TMP/bin/slm" mkmodel --preset tinyllama --n-layer 1 \
		--n-embd 64 --n-head 4 --n-head-kv 4 --n-ff 128 --type Q4_0 --quiet \
		-o "$TMP/tl2.gguf" && ok "SLM_VOCAB_DIR is searched"
	expect_fail "mkmodel: vocabulary size" "has 32000 tokens, the model has n_vocab 512" -- \
		"$SLM" mkmodel --preset tiny --n-vocab 512 --vocab "$VOCABS/vocab-spm.gguf" -o "$TMP/x.gguf"
else
	fail "$VOCABS/vocab-spm.gguf missing: run make testdata"
fi
finish
