/*
 * fuzz_tokenizer.c: random bytes through the tokenizer and back.
 *
 * Input: byte 0 picks the vocabulary (SPM 32k, Llama-3 BPE, Qwen2 BPE, the
 * small Qwen model's, and tiny byte-level vocabularies built here for the
 * default, smollm and deepseek-llm pre-tokenizers) and the flags; the
 * rest is the text.  Checked: no
 * crash, every id in range, detokenized text always well-formed UTF-8,
 * streaming equal to one-shot, and well-formed text coming back exactly
 * (for SPM, unless it holds U+2581, which SPM turns into a space).  The
 * input bytes are also read as ids and detokenized.
 *
 * The vocabularies come from $SLM_TESTDATA (default build/testdata): run
 * `make testdata` first.
 */
// fuzz-sources: engine/tokenizer.c engine/tokenizer_bpe.c engine/tokenizer_spm.c engine/gguf.c engine/dtype.c common/utf8.c common/text.c common/err.c common/log.c
// fuzz-libs: -lpcre2-32 -lutf8proc -lxxhash -lsystemd
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

uint32_t tok_byte_to_cp(uint8_t b);

#define N_VOCABS 7
#define N_FILES 4
static struct slm_vocab *vocabs[N_VOCABS];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The 256 byte symbols plus a few merges, with pre-tokenizer `pre`. */
static struct slm_vocab *mini_vocab(const char *pre)
{
	static const char *const merges[] = {"' s", "1 2", "a b", "\xC4\xA0 a"};
	const char *toks[260];
	static char store[260][8];
	for (int b = 0; b < 256; b++) {
		size_t l =
			slm_utf8_encode(tok_byte_to_cp((uint8_t)b), store[b]);
		store[b][l] = '\0';
		toks[b] = store[b];
	}
	toks[256] = "'s";
	toks[257] = "12";
	toks[258] = "ab";
	toks[259] = "\xC4\xA0"
		    "a";
	struct gguf_writer *w = gguf_writer_create();
	uint8_t *bytes = NULL;
	size_t size = 0;
	struct gguf_file *f = NULL;
	struct slm_vocab *v = NULL;
	struct slm_error err = {0};
	if (!w || gguf_set_str(w, "tokenizer.ggml.model", "gpt2") ||
	    gguf_set_str(w, "tokenizer.ggml.pre", pre) ||
	    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 260) ||
	    gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, 4) ||
	    gguf_writer_header_bytes(w, &bytes, &size) ||
	    gguf_open_buffer(bytes, size, pre, &f, &err) ||
	    slm_vocab_create(f, &v, &err)) {
		fprintf(stderr, "fuzz_tokenizer: mini vocabulary %s: %s\n", pre,
			err.msg);
		exit(1);
	}
	gguf_close(f);
	free(bytes);
	gguf_writer_destroy(w);
	return v;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	static const char *const files[N_VOCABS] = {
		"vocab/vocab-spm.gguf", "vocab/vocab-llama3-bpe.gguf",
		"vocab/vocab-qwen2-bpe.gguf", "models/qwen2-s-F16.gguf"};
	const char *dir = getenv("SLM_TESTDATA");
	for (int i = 0; i < N_FILES; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s",
			 dir ? dir : "build/testdata", files[i]);
		struct slm_error err = {0};
		if (slm_vocab_load_file(path, &vocabs[i], &err)) {
			/* the small model is optional; the vocabularies not */
			if (i == N_FILES - 1) {
				vocabs[i] = vocabs[2];
				continue;
			}
			fprintf(stderr,
				"fuzz_tokenizer: %s (run `make testdata`)\n",
				err.msg);
			exit(1);
		}
	}
	static const char *const pres[] = {"default", "smollm", "deepseek-llm"};
	for (int i = 0; i < 3; i++)
		vocabs[N_FILES + i] = mini_vocab(pres[i]);
	return 0;
}

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_tokenizer: %s\n", what);
		abort();
	}
}

static void detok_checks(const struct slm_vocab *v, const int32_t *ids,
			 size_t n, unsigned flags, struct slm_text *one)
{
	struct slm_error err = {0};
	one->len = 0;
	check(slm_detokenize(v, ids, n, flags, one, &err) == 0, err.msg);
	check(slm_utf8_valid(one->data, one->len), "detokenize: bad UTF-8");
	struct slm_detok_stream s;
	struct slm_text st = {0};
	slm_detok_stream_init(&s, v, flags & SLM_DETOK_SPECIAL);
	for (size_t i = 0; i < n; i++) {
		size_t before = st.len;
		check(slm_detok_stream_push(&s, ids[i], &st, &err) == 0,
		      err.msg);
		check(slm_utf8_valid(st.data + before, st.len - before),
		      "stream: bad UTF-8");
	}
	check(slm_detok_stream_finish(&s, &st) == 0, "stream finish");
	if (!(flags & ~SLM_DETOK_SPECIAL))
		check(st.len == one->len &&
			      memcmp(st.data, one->data, one->len) == 0,
		      "stream differs from one-shot");
	slm_text_free(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const struct slm_vocab *v = vocabs[data[0] % N_VOCABS];
	unsigned flags = (data[0] >> 2) & 3; /* ADD_SPECIAL, PARSE_SPECIAL */
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	int32_t n_vocab = slm_vocab_n_tokens(v);

	struct slm_tokens t = {0};
	struct slm_error err = {0};
	check(slm_tokenize(v, text, len, flags, &t, &err) == 0, err.msg);
	for (size_t i = 0; i < t.n; i++)
		check(t.ids[i] >= 0 && t.ids[i] < n_vocab, "id out of range");

	struct slm_text one = {0};
	detok_checks(v, t.ids, t.n, SLM_DETOK_SPECIAL, &one);
	detok_checks(v, t.ids, t.n, 0, &one);
	detok_checks(v, t.ids, t.n, SLM_DETOK_LLAMA | SLM_DETOK_REMOVE_SPECIAL,
		     &one);

	/* well-formed text comes back exactly */
	bool spm = slm_vocab_type(v) == SLM_VOCAB_SPM;
	if (!(flags & SLM_TOK_PARSE_SPECIAL) &&
	    !(flags & SLM_TOK_ADD_SPECIAL) && slm_utf8_valid(text, len) &&
	    !(spm && memmem(text, len, "\xE2\x96\x81", 3))) {
		one.len = 0;
		check(slm_detokenize(v, t.ids, t.n, SLM_DETOK_STRIP_PREFIX,
				     &one, &err) == 0,
		      err.msg);
		check(one.len == len && memcmp(one.data, text, len) == 0,
		      "round trip differs");
	}

	/* the input read as ids */
	t.n = 0;
	for (size_t i = 0; i + 3 <= len; i += 3) {
		uint32_t id = (uint32_t)(uint8_t)text[i] |
			      (uint32_t)(uint8_t)text[i + 1] << 8 |
			      (uint32_t)(uint8_t)text[i + 2] << 16;
		check(slm_tokens_push(&t, (int32_t)(id % (uint32_t)n_vocab)) ==
			      0,
		      "out of memory");
	}
	detok_checks(v, t.ids, t.n, SLM_DETOK_SPECIAL, &one);
	detok_checks(v, t.ids, t.n, 0, &one);

	slm_text_free(&one);
	slm_tokens_free(&t);
	return 0;
}
