/*
 * test_tokenizer.c: the tokenizer against llama.cpp's ids (golden data),
 * detokenization (round trip, streaming, the golden generated text), the
 * special-token rules, bad vocabularies, and properties on random input.
 */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PCRE2_CODE_UNIT_WIDTH 32
#include <pcre2.h>

#include "common/utf8.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "engine/tokenizer_int.h"
#include "tests/unit/harness.h"

/* Print a formatted reason, then fail the assertion. */
#define FAILF(...)                                  \
	do {                                        \
		printf("\n    FAIL: " __VA_ARGS__); \
		printf("\n");                       \
		CU_FAIL("see the message above");   \
	} while (0)

/* ---- helpers ---------------------------------------------------------- */

/* Open a vocabulary; a missing input fails loudly with what to do. */
static struct slm_vocab *open_vocab(const char *path)
{
	if (access(path, R_OK) != 0) {
		FAILF("missing test input %s (run `make testdata`; golden "
		      "model "
		      "files go to build/testdata/models/)",
		      path);
		return NULL;
	}
	struct slm_vocab *v = NULL;
	struct slm_error err = {0};
	if (slm_vocab_load_file(path, &v, &err)) {
		FAILF("%s", err.msg);
		return NULL;
	}
	return v;
}

struct jsonl {
	char *buf;
	char *next;
};

/* Iterate the lines of a JSONL file; NULL (after a loud failure) when the
 * file is missing.  Each returned object is freed by the caller. */
static bool jsonl_open(struct jsonl *j, const char *path)
{
	size_t size;
	j->buf = slm_test_read_file(path, &size);
	j->next = j->buf;
	if (!j->buf)
		FAILF("missing golden file %s", path);
	return j->buf != NULL;
}

static cJSON *jsonl_next(struct jsonl *j)
{
	while (j->next && *j->next) {
		char *line = j->next, *nl = strchr(line, '\n');
		if (nl) {
			*nl = '\0';
			j->next = nl + 1;
		} else {
			j->next = NULL;
		}
		if (*line)
			return cJSON_Parse(line);
	}
	return NULL;
}

static void jsonl_close(struct jsonl *j)
{
	free(j->buf);
}

static int hexval(char c)
{
	return c <= '9' ? c - '0' : (c | 32) - 'a' + 10;
}

/* Bytes of a hex string (caller frees); *n their count. */
static char *unhex(const char *hex, size_t *n)
{
	size_t len = strlen(hex) / 2;
	char *out = malloc(len + 1);
	for (size_t i = 0; i < len; i++)
		out[i] = (char)(hexval(hex[2 * i]) * 16 +
				hexval(hex[2 * i + 1]));
	out[len] = '\0';
	*n = len;
	return out;
}

static bool ids_equal(const struct slm_tokens *t, const cJSON *arr)
{
	if ((size_t)cJSON_GetArraySize(arr) != t->n)
		return false;
	size_t i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, arr)
	{
		if ((int32_t)e->valuedouble != t->ids[i++])
			return false;
	}
	return true;
}

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
	printf("      %s:", what);
	for (size_t i = 0; i < n && i < 40; i++)
		printf(" %d", ids[i]);
	printf("%s\n", n > 40 ? " ..." : "");
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(x) ? x->valuestring : "";
}

/* Each byte of an ill-formed sequence as one U+FFFD (how the golden
 * gen_text was made).  Caller frees. */
static char *per_byte_repair(const char *p, size_t n)
{
	char *out = malloc(3 * n + 1), *o = out;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t bad;
		int r = slm_utf8_next((const uint8_t *)p + i, n - i, &cp, &bad);
		if (r > 0) {
			memcpy(o, p + i, (size_t)r);
			o += r;
			i += (size_t)r;
			continue;
		}
		size_t k = r < 0 ? (size_t)-r : bad;
		for (size_t j = 0; j < k; j++, o += 3)
			memcpy(o, SLM_UTF8_REPLACEMENT_STR, 3);
		i += k;
	}
	*o = '\0';
	return out;
}

/* ---- golden ids --------------------------------------------------------- */

static const struct {
	const char *mode;
	unsigned flags;
} modes[] = {
	{"ids", SLM_TOK_ADD_SPECIAL | SLM_TOK_PARSE_SPECIAL},
	{"ids_noparse", SLM_TOK_ADD_SPECIAL},
	{"ids_nobos", SLM_TOK_PARSE_SPECIAL},
	{"ids_nobos_noparse", 0},
};

/* Check every line of a tokenize*.jsonl file; vocab_of maps the line's
 * `gguf` field to a vocabulary path. */
static void check_golden_ids(const char *golden,
			     const char *(*vocab_of)(const char *gguf),
			     int expect_checks)
{
	struct jsonl j;
	if (!jsonl_open(&j, slm_test_data(golden)))
		return;
	struct {
		char gguf[64];
		struct slm_vocab *v;
	} cache[4] = {{{0}, NULL}};
	int checks = 0, bad = 0;
	cJSON *o;
	while ((o = jsonl_next(&j))) {
		const char *gguf = jstr(o, "gguf");
		struct slm_vocab *v = NULL;
		for (int c = 0; c < 4 && !v; c++) {
			if (!cache[c].gguf[0]) {
				snprintf(cache[c].gguf, sizeof(cache[c].gguf),
					 "%s", gguf);
				cache[c].v = open_vocab(vocab_of(gguf));
			}
			if (!strcmp(cache[c].gguf, gguf))
				v = cache[c].v;
		}
		if (!v) {
			cJSON_Delete(o);
			break;
		}
		size_t n;
		char *text = unhex(jstr(o, "text_utf8_hex"), &n);
		for (size_t m = 0; m < SLM_ARRAY_LEN(modes); m++) {
			struct slm_tokens t = {0};
			struct slm_error err = {0};
			int rc = slm_tokenize(v, text, n, modes[m].flags, &t,
					      &err);
			const cJSON *want = cJSON_GetObjectItemCaseSensitive(
				o, modes[m].mode);
			checks++;
			if (rc || !ids_equal(&t, want)) {
				if (bad++ < 10) {
					printf("\n    %s string %d (%s), %s: "
					       "%s\n",
					       gguf,
					       cJSON_GetObjectItem(
						       o, "string_index")
						       ->valueint,
					       jstr(o, "text"), modes[m].mode,
					       rc ? err.msg : "ids differ");
					print_ids("got", t.ids, t.n);
				}
			}
			slm_tokens_free(&t);
		}
		free(text);
		cJSON_Delete(o);
	}
	jsonl_close(&j);
	for (int c = 0; c < 4; c++)
		slm_vocab_destroy(cache[c].v);
	if (bad)
		FAILF("%d of %d tokenizations differ from llama.cpp", bad,
		      checks);
	CU_ASSERT_EQUAL(checks, expect_checks);
}

static const char *full_vocab(const char *gguf)
{
	static char path[256];
	snprintf(path, sizeof(path), "vocab/%s", gguf);
	return slm_test_generated(path);
}

static const char *small_vocab(const char *gguf)
{
	/* "llama-s-*.gguf": every file of a family has the same tokenizer */
	static char path[256];
	const char *file = !strncmp(gguf, "llama-s", 7)	   ? "llama-s-F32"
			   : !strncmp(gguf, "llama3-s", 8) ? "llama3-s-F16"
							   : "qwen2-s-F16";
	snprintf(path, sizeof(path), "models/%s.gguf", file);
	return slm_test_generated(path);
}

/* 89 strings x 3 vocabularies x 4 modes: exactly llama.cpp's ids. */
static void test_golden_full(void)
{
	check_golden_ids("golden/tokenize.jsonl", full_vocab, 89 * 3 * 4);
}

/* The same strings with the small models' vocabularies (byte fallback in
 * SPM-1024, BPE with a short merge table). */
static void test_golden_small(void)
{
	check_golden_ids("golden/tokenize-small.jsonl", small_vocab,
			 89 * 3 * 4);
}

/* ---- metadata ----------------------------------------------------------- */

static void test_vocab_metadata(void)
{
	struct slm_vocab *spm = open_vocab(full_vocab("vocab-spm.gguf"));
	struct slm_vocab *l3 = open_vocab(full_vocab("vocab-llama3-bpe.gguf"));
	struct slm_vocab *qw = open_vocab(full_vocab("vocab-qwen2-bpe.gguf"));
	if (!spm || !l3 || !qw)
		goto out;
	CU_ASSERT_EQUAL(slm_vocab_type(spm), SLM_VOCAB_SPM);
	CU_ASSERT_EQUAL(slm_vocab_n_tokens(spm), 32000);
	CU_ASSERT_EQUAL(slm_vocab_bos(spm), 1);
	CU_ASSERT_EQUAL(slm_vocab_eos(spm), 2);
	CU_ASSERT_EQUAL(slm_vocab_unk(spm), 0);
	CU_ASSERT_EQUAL(slm_vocab_nl(spm), 13); /* <0x0A> */
	CU_ASSERT(slm_vocab_add_bos(spm));
	CU_ASSERT(slm_vocab_add_space_prefix(spm));
	CU_ASSERT_PTR_NULL(slm_vocab_chat_template(spm));

	CU_ASSERT_EQUAL(slm_vocab_type(l3), SLM_VOCAB_BPE);
	CU_ASSERT_STRING_EQUAL(slm_vocab_pre_name(l3), "llama-bpe");
	CU_ASSERT_EQUAL(slm_vocab_n_tokens(l3), 128256);
	CU_ASSERT_EQUAL(slm_vocab_bos(l3), 128000);
	CU_ASSERT_EQUAL(slm_vocab_eos(l3), 128001);
	CU_ASSERT_EQUAL(slm_vocab_eot(l3), 128009); /* found by its text */
	/* a Llama 3.0 vocabulary: no <|eom_id|> */
	CU_ASSERT_EQUAL(slm_vocab_eom(l3), SLM_TOKEN_NULL);
	CU_ASSERT(slm_vocab_add_bos(l3));
	CU_ASSERT(!slm_vocab_add_space_prefix(l3));
	CU_ASSERT_PTR_NOT_NULL(slm_vocab_chat_template(l3));
	/* end of generation: <|end_of_text|>, <|eot_id|> */
	const int32_t *eog;
	size_t n = slm_vocab_eog_ids(l3, &eog);
	CU_ASSERT(n == 2 && eog[0] == 128001 && eog[1] == 128009);
	CU_ASSERT(!slm_vocab_is_eog(l3, 128000));

	CU_ASSERT_STRING_EQUAL(slm_vocab_pre_name(qw), "qwen2");
	CU_ASSERT_EQUAL(slm_vocab_n_tokens(qw), 151936);
	CU_ASSERT(!slm_vocab_add_bos(qw));
	CU_ASSERT_EQUAL(slm_vocab_eos(qw), 151645);
	/* <|endoftext|>, <|im_end|>, the fim pad/repo/file-sep tokens, and
	 * the ordinary "</s>" (128247) that llama.cpp forces to control */
	CU_ASSERT(slm_vocab_is_eog(qw, 151643));
	CU_ASSERT(slm_vocab_is_eog(qw, 151645));
	CU_ASSERT(slm_vocab_is_eog(qw, 151662));
	CU_ASSERT(slm_vocab_is_eog(qw, 151663));
	CU_ASSERT(slm_vocab_is_eog(qw, 151664));
	CU_ASSERT_EQUAL(slm_vocab_find(qw, "</s>", 4), 128247);
	CU_ASSERT(slm_vocab_is_eog(qw, 128247));
	CU_ASSERT(slm_vocab_is_control(qw, 128247));
	CU_ASSERT(!slm_vocab_is_eog(qw, 151644)); /* <|im_start|> */
	n = slm_vocab_eog_ids(qw, &eog);
	CU_ASSERT_EQUAL(n, 6);
	CU_ASSERT_EQUAL(slm_vocab_nl(qw), 198);
	/* piece of a byte-level token, and of a special with/without flag */
	size_t len;
	const char *p = slm_vocab_piece(qw, 9707, false, &len); /* "Hello" */
	CU_ASSERT(len == 5 && !memcmp(p, "Hello", 5));
	p = slm_vocab_piece(qw, 151644, true, &len);
	CU_ASSERT(len == 12 && !memcmp(p, "<|im_start|>", 12));
	slm_vocab_piece(qw, 151644, false, &len);
	CU_ASSERT_EQUAL(len, 0);
	CU_ASSERT_PTR_NULL(slm_vocab_piece(qw, 151936, true, &len));
	CU_ASSERT_PTR_NULL(slm_vocab_text(qw, -1, &len));
out:
	slm_vocab_destroy(spm);
	slm_vocab_destroy(l3);
	slm_vocab_destroy(qw);
}

/* The small models: their end-of-generation sets as llama.cpp has them
 * (golden README), and every model file's vocabulary loads. */
static void test_small_models_eog(void)
{
	struct slm_vocab *l3 =
		open_vocab(slm_test_generated("models/llama3-s-F16.gguf"));
	struct slm_vocab *qw =
		open_vocab(slm_test_generated("models/qwen2-s-F16.gguf"));
	if (l3) {
		const int32_t *eog;
		size_t n = slm_vocab_eog_ids(l3, &eog);
		CU_ASSERT(n == 2 && eog[0] == 2049 && eog[1] == 2052);
	}
	if (qw) {
		const int32_t *eog;
		size_t n = slm_vocab_eog_ids(qw, &eog);
		CU_ASSERT(n == 2 && eog[0] == 2048 && eog[1] == 2050);
	}
	slm_vocab_destroy(l3);
	slm_vocab_destroy(qw);
}

/* ---- special tokens ----------------------------------------------------- */

static void tok(const struct slm_vocab *v, const char *s, unsigned flags,
		struct slm_tokens *t)
{
	struct slm_error err = {0};
	t->n = 0;
	if (slm_tokenize(v, s, strlen(s), flags, t, &err))
		FAILF("%s", err.msg);
}

static bool has_id(const struct slm_tokens *t, int32_t id)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->ids[i] == id)
			return true;
	return false;
}

static void test_special_rules(void)
{
	struct slm_vocab *qw = open_vocab(full_vocab("vocab-qwen2-bpe.gguf"));
	struct slm_vocab *l3 = open_vocab(full_vocab("vocab-llama3-bpe.gguf"));
	struct slm_tokens t = {0};
	if (!qw || !l3)
		goto out;
	/* control tokens only with parse_special */
	tok(qw, "<|im_start|>user", SLM_TOK_PARSE_SPECIAL, &t);
	CU_ASSERT(t.n == 2 && t.ids[0] == 151644);
	tok(qw, "<|im_start|>user", 0, &t);
	CU_ASSERT(t.n > 2 && !has_id(&t, 151644));
	/* user-defined tokens (<think>) always */
	int32_t think = slm_vocab_find(qw, "<think>", 7);
	CU_ASSERT(think > 0);
	CU_ASSERT(slm_vocab_attr(qw, think) & SLM_TOKEN_ATTR_USER_DEFINED);
	tok(qw, "a<think>b", 0, &t);
	CU_ASSERT(t.n == 3 && t.ids[1] == think);
	/* the longer special token wins over one it contains */
	tok(l3, "<|begin_of_text|><|eot_id|>x", SLM_TOK_PARSE_SPECIAL, &t);
	CU_ASSERT(t.n == 3 && t.ids[0] == 128000 && t.ids[1] == 128009);
	/* add_special adds BOS once, before parsed text */
	tok(l3, "<|begin_of_text|>",
	    SLM_TOK_PARSE_SPECIAL | SLM_TOK_ADD_SPECIAL, &t);
	CU_ASSERT(t.n == 2 && t.ids[0] == 128000 && t.ids[1] == 128000);
	/* ill-formed UTF-8: each bad byte is U+FFFD before BPE (llama.cpp) */
	struct slm_tokens u = {0};
	tok(qw, "a\xff", 0, &t);
	tok(qw, "a\xEF\xBF\xBD", 0, &u);
	CU_ASSERT(t.n == u.n && t.n > 0 &&
		  !memcmp(t.ids, u.ids, t.n * sizeof(int32_t)));
	slm_tokens_free(&u);
out:
	slm_tokens_free(&t);
	slm_vocab_destroy(qw);
	slm_vocab_destroy(l3);
}

/* SPM keeps ill-formed bytes through byte fallback. */
static void test_spm_bytes(void)
{
	struct slm_vocab *v = open_vocab(full_vocab("vocab-spm.gguf"));
	if (!v)
		return;
	struct slm_tokens t = {0};
	tok(v, "\xff", 0, &t);
	CU_ASSERT(has_id(&t, 3 + 0xFF));
	struct slm_text s = {0};
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_detokenize(v, t.ids, t.n,
				       SLM_DETOK_STRIP_PREFIX | SLM_DETOK_RAW,
				       &s, &err),
			0);
	CU_ASSERT(s.len == 1 && (uint8_t)s.data[0] == 0xFF);
	s.len = 0;
	CU_ASSERT_EQUAL(
		slm_detokenize(v, t.ids, t.n, SLM_DETOK_STRIP_PREFIX, &s, &err),
		0);
	CU_ASSERT(s.len == 3 && !memcmp(s.data, SLM_UTF8_REPLACEMENT_STR, 3));
	slm_text_free(&s);
	slm_tokens_free(&t);
	slm_vocab_destroy(v);
}

/* ---- round trip and streaming ------------------------------------------- */

static int detok(const struct slm_vocab *v, const struct slm_tokens *t,
		 unsigned flags, struct slm_text *out)
{
	struct slm_error err = {0};
	out->len = 0;
	int rc = slm_detokenize(v, t->ids, t->n, flags, out, &err);
	if (rc)
		FAILF("%s", err.msg);
	return rc;
}

/* Streaming one id at a time gives what the one-shot call gives. */
static void check_stream(const struct slm_vocab *v, const int32_t *ids,
			 size_t n, unsigned flags)
{
	struct slm_text one = {0}, st = {0};
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(slm_detokenize(v, ids, n, flags, &one, &err), 0);
	struct slm_detok_stream s;
	slm_detok_stream_init(&s, v, flags);
	for (size_t i = 0; i < n; i++) {
		size_t before = st.len;
		CU_ASSERT_EQUAL_FATAL(
			slm_detok_stream_push(&s, ids[i], &st, &err), 0);
		/* what was released so far is well formed on its own */
		if (!(flags & SLM_DETOK_RAW))
			CU_ASSERT(slm_utf8_valid(st.data + before,
						 st.len - before));
	}
	CU_ASSERT_EQUAL(slm_detok_stream_finish(&s, &st), 0);
	CU_ASSERT(one.len == st.len && !memcmp(one.data, st.data, one.len));
	if (!(flags & SLM_DETOK_RAW))
		CU_ASSERT(slm_utf8_valid(one.data, one.len));
	slm_text_free(&one);
	slm_text_free(&st);
}

/*
 * detokenize(tokenize(s)) == s for the golden strings, where llama.cpp's
 * detokenize is exact.  It is not in two documented cases, checked here
 * as they are:
 *  - Llama-3's clean_up_tokenization_spaces (SLM_DETOK_CLEAN_SPACES, part
 *    of llama_detokenize) drops the space before ?!., and before 's 'm
 *    're 've: strings 23 and 88;
 *  - SPM puts a space in front of the text after each parsed special
 *    token: "</s> <unk>" (string 84) comes back with two spaces.
 */
static void test_round_trip(void)
{
	static const char *const names[] = {"vocab-spm.gguf",
					    "vocab-llama3-bpe.gguf",
					    "vocab-qwen2-bpe.gguf"};
	struct slm_vocab *v[3];
	for (int i = 0; i < 3; i++)
		v[i] = open_vocab(full_vocab(names[i]));
	struct jsonl j;
	if (!v[0] || !v[1] || !v[2] ||
	    !jsonl_open(&j, slm_test_data("golden/tokenize.jsonl")))
		goto out;
	struct slm_tokens t = {0};
	struct slm_text s = {0};
	int exact = 0;
	cJSON *o;
	while ((o = jsonl_next(&j))) {
		const char *voc = jstr(o, "vocab");
		int vi = !strcmp(voc, "spm")	      ? 0
			 : !strcmp(voc, "llama3-bpe") ? 1
						      : 2;
		int idx = cJSON_GetObjectItem(o, "string_index")->valueint;
		size_t n;
		char *text = unhex(jstr(o, "text_utf8_hex"), &n);
		struct slm_error err = {0};
		t.n = 0;
		CU_ASSERT_EQUAL(slm_tokenize(v[vi], text, n, 0, &t, &err), 0);
		/* pieces with the SPM prefix space stripped: always exact */
		if (!detok(v[vi], &t, SLM_DETOK_STRIP_PREFIX, &s)) {
			if (s.len == n && !memcmp(s.data, text, n))
				exact++;
			else
				FAILF("%s string %d does not round-trip: '%s'",
				      voc, idx, s.data);
		}
		/* llama_detokenize: exact but for Llama-3's clean-up */
		if (!detok(v[vi], &t, SLM_DETOK_LLAMA, &s)) {
			bool same = s.len == n && !memcmp(s.data, text, n);
			if (vi == 1 && idx == 23) {
				CU_ASSERT_STRING_EQUAL(s.data,
						       "'s 't're've'm 'll 'd");
			} else if (vi == 1 && idx == 88) {
				CU_ASSERT(s.len == n - 1 &&
					  strstr(text, "\xF0\x9F\x98\x81 ?") &&
					  strstr(s.data, "\xF0\x9F\x98\x81?"));
			} else if (!same) {
				FAILF("%s string %d: llama_detokenize gives "
				      "'%s'",
				      voc, idx, s.data);
			}
		}
		/* parsed special tokens rendered back */
		t.n = 0;
		CU_ASSERT_EQUAL(slm_tokenize(v[vi], text, n,
					     SLM_TOK_PARSE_SPECIAL, &t, &err),
				0);
		if (!detok(v[vi], &t,
			   SLM_DETOK_STRIP_PREFIX | SLM_DETOK_SPECIAL, &s)) {
			if (vi == 0 && idx == 84) {
				CU_ASSERT_STRING_EQUAL(s.data, "</s>  <unk>");
			} else if (s.len != n || memcmp(s.data, text, n)) {
				FAILF("%s string %d with specials: '%s'", voc,
				      idx, s.data);
			}
		}
		check_stream(v[vi], t.ids, t.n, SLM_DETOK_SPECIAL);
		check_stream(v[vi], t.ids, t.n, 0);
		check_stream(v[vi], t.ids, t.n, SLM_DETOK_RAW);
		free(text);
		cJSON_Delete(o);
	}
	CU_ASSERT_EQUAL(exact, 89 * 3);
	/* llama.cpp keeps the SPM prefix space when it removes the BOS */
	tok(v[0], "Hello world", SLM_TOK_ADD_SPECIAL, &t);
	if (!detok(v[0], &t, SLM_DETOK_LLAMA | SLM_DETOK_REMOVE_SPECIAL, &s))
		CU_ASSERT_STRING_EQUAL(s.data, " Hello world");
	slm_tokens_free(&t);
	slm_text_free(&s);
	jsonl_close(&j);
out:
	for (int i = 0; i < 3; i++)
		slm_vocab_destroy(v[i]);
}

/*
 * The golden greedy runs: every model file's vocabulary gives the prompt
 * ids llama.cpp used, the generated ids detokenize to llama.cpp's text
 * (its pieces with special = true; ill-formed UTF-8 as U+FFFD), and the
 * first end-of-generation token is where llama.cpp saw it.
 */
static void test_golden_greedy(void)
{
	struct jsonl j;
	if (!jsonl_open(&j, slm_test_data("golden/greedy.jsonl")))
		return;
	int lines = 0;
	cJSON *o;
	while ((o = jsonl_next(&j))) {
		char rel[256];
		snprintf(rel, sizeof(rel), "%s", jstr(o, "model"));
		struct slm_vocab *v = open_vocab(slm_test_generated(rel));
		if (!v) {
			cJSON_Delete(o);
			break;
		}
		lines++;
		const char *prompt = jstr(o, "prompt_text");
		bool parse =
			cJSON_IsTrue(cJSON_GetObjectItem(o, "parse_special"));
		struct slm_tokens t = {0};
		tok(v, prompt,
		    SLM_TOK_ADD_SPECIAL | (parse ? SLM_TOK_PARSE_SPECIAL : 0),
		    &t);
		if (!ids_equal(&t, cJSON_GetObjectItem(o, "prompt_ids")))
			FAILF("%s: prompt ids differ for '%s'", rel, prompt);
		const cJSON *gen = cJSON_GetObjectItem(o, "gen_ids");
		t.n = 0;
		const cJSON *e;
		int first_eog = -1, i = 0;
		cJSON_ArrayForEach(e, gen)
		{
			int32_t id = (int32_t)e->valuedouble;
			if (slm_tokens_push(&t, id))
				CU_FAIL("out of memory");
			if (first_eog < 0 && slm_vocab_is_eog(v, id))
				first_eog = i;
			i++;
		}
		CU_ASSERT_EQUAL(
			first_eog,
			cJSON_GetObjectItem(o, "first_eog_index")->valueint);
		struct slm_text s = {0};
		if (!detok(v, &t, SLM_DETOK_SPECIAL | SLM_DETOK_RAW, &s)) {
			size_t hn;
			char *want = unhex(jstr(o, "gen_text_hex"), &hn);
			if (s.len != hn || memcmp(s.data, want, hn))
				FAILF("%s: generated bytes differ", rel);
			free(want);
		}
		/* gen_text shows every byte of an ill-formed sequence as its
		 * own U+FFFD; this library (like llama-server's JSON output)
		 * follows Unicode's recommendation, one U+FFFD per maximal
		 * ill-formed subpart.  So: llama.cpp's bytes exactly (above),
		 * gen_text from those bytes, and our text well formed and
		 * equal to gen_text where the bytes are well formed. */
		if (!detok(v, &t, SLM_DETOK_SPECIAL | SLM_DETOK_RAW, &s)) {
			char *pb = per_byte_repair(s.data, s.len);
			if (strcmp(pb, jstr(o, "gen_text")))
				FAILF("%s: generated text '%s', llama.cpp '%s'",
				      rel, pb, jstr(o, "gen_text"));
			bool valid = slm_utf8_valid(s.data, s.len);
			free(pb);
			if (!detok(v, &t, SLM_DETOK_SPECIAL, &s)) {
				CU_ASSERT(slm_utf8_valid(s.data, s.len));
				if (valid)
					CU_ASSERT_STRING_EQUAL(
						s.data, jstr(o, "gen_text"));
			}
		}
		check_stream(v, t.ids, t.n, SLM_DETOK_SPECIAL);
		slm_text_free(&s);
		slm_tokens_free(&t);
		slm_vocab_destroy(v);
		cJSON_Delete(o);
	}
	jsonl_close(&j);
	CU_ASSERT_EQUAL(lines, 75);
}

/* ---- internals ---------------------------------------------------------- */

/* Each class stand-in is in exactly its PCRE2 class, so \s \p{L} \p{N}
 * \p{P} \p{M} \p{S} decide as llama.cpp's tables. */
static void test_class_standins(void)
{
	static const char *const cls[] = {"\\s",    "\\p{L}", "\\p{N}",
					  "\\p{P}", "\\p{M}", "\\p{S}"};
	/* sample code points of each class, llama.cpp's view:
	 * other, space (incl. U+0085), letter, number, punct, mark, symbol */
	static const struct {
		uint32_t cp;
		int cls; /* index in cls[], -1: none */
	} samples[] = {
		{0x0085, 0},  {0x00A0, 0},  {0x3000, 0},   {0x2028, 0},
		{0x00E9, 1},  {0x4E2D, 1},  {0x1F600, -1}, {0x0661, 2},
		{0x2168, 2},  {0x00BF, 3},  {0x3002, 3},   {0x0301, 4},
		{0x20AC, 5},  {0x00AD, -1}, {0x200B, -1},  {0xE000, -1},
		{0xD800, -1}, {0x0378, -1}, {0xFEFF, -1},
	};
	pcre2_code *re[6];
	for (int c = 0; c < 6; c++) {
		uint32_t pat[8];
		size_t n = strlen(cls[c]);
		for (size_t i = 0; i < n; i++)
			pat[i] = (uint8_t)cls[c][i];
		int ec;
		PCRE2_SIZE eo;
		re[c] = pcre2_compile((PCRE2_SPTR)pat, n, PCRE2_UTF | PCRE2_UCP,
				      &ec, &eo, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(re[c]);
	}
	pcre2_match_data *md = pcre2_match_data_create(2, NULL);
	for (size_t k = 0; k < SLM_ARRAY_LEN(samples); k++) {
		uint32_t s = tok_class_standin(samples[k].cp);
		/* the emoji (So) is a symbol */
		int want = samples[k].cp == 0x1F600 ? 5 : samples[k].cls;
		for (int c = 0; c < 6; c++) {
			int rc = pcre2_match(re[c], (PCRE2_SPTR)&s, 1, 0, 0, md,
					     NULL);
			bool hit = rc >= 0;
			if (hit != (c == want))
				FAILF("U+%04X (stand-in U+%04X): %s %s",
				      samples[k].cp, s, cls[c],
				      hit ? "matches" : "does not match");
		}
	}
	pcre2_match_data_free(md);
	for (int c = 0; c < 6; c++)
		pcre2_code_free(re[c]);
}

/* The rescanning merge loop of short words and the heap of long ones
 * agree (random byte words, both vocabularies). */
static void test_merge_paths_agree(void)
{
	struct slm_vocab *v[2] = {
		open_vocab(full_vocab("vocab-qwen2-bpe.gguf")),
		open_vocab(full_vocab("vocab-llama3-bpe.gguf"))};
	struct slm_test_rng rng = {0x5eed};
	struct slm_tokens a = {0}, b = {0};
	static const char alphabet[] = "aeiouthnrsl  ..,'0123456789\xC3\xA9";
	for (int vi = 0; vi < 2; vi++) {
		if (!v[vi])
			continue;
		/* scratch (and its word cache) serves one vocabulary */
		struct tok_work w = {0};
		for (int it = 0; it < 3000; it++) {
			uint8_t word[24];
			size_t n = 1 + slm_test_rand(&rng) % sizeof(word);
			for (size_t i = 0; i < n; i++)
				word[i] =
					it & 1 ? (uint8_t)alphabet
							 [slm_test_rand(&rng) %
							  (sizeof(alphabet) -
							   1)]
					       : (uint8_t)slm_test_rand(&rng);
			a.n = b.n = 0;
			CU_ASSERT_EQUAL(
				tok_bpe_word(v[vi], &w, word, n, false, &a), 0);
			CU_ASSERT_EQUAL(
				tok_bpe_word(v[vi], &w, word, n, true, &b), 0);
			if (a.n != b.n ||
			    memcmp(a.ids, b.ids, a.n * sizeof(int32_t))) {
				FAILF("merge paths differ on a word of %zu "
				      "bytes",
				      n);
				break;
			}
		}
		tok_work_free(&w);
	}
	slm_tokens_free(&a);
	slm_tokens_free(&b);
	slm_vocab_destroy(v[0]);
	slm_vocab_destroy(v[1]);
}

/* SPM cut into words (each merged alone, short ones by rescanning, from a
 * cache when repeated) equals llama.cpp's merge of the whole fragment. */
static void test_spm_split_agrees(void)
{
	static const char *const names[] = {"vocab/vocab-spm.gguf",
					    "models/llama-s-F32.gguf"};
	static const char *const pieces[] = {"\xE2\x96\x81",
					     "\xE2\x96\x81\xE2\x96\x81",
					     "the",
					     "ing",
					     "a",
					     "\xC3\xA9",
					     "\xE4\xB8\xAD",
					     "\xF0\x9F\x9A\x80",
					     "\xF0",
					     "\xE2",
					     "\x96",
					     "\xFF",
					     "1",
					     "\n",
					     ".",
					     "\xE2\x96\x81the",
					     "xyz"};
	struct slm_test_rng rng = {77};
	for (size_t vi = 0; vi < SLM_ARRAY_LEN(names); vi++) {
		struct slm_vocab *v = open_vocab(slm_test_generated(names[vi]));
		if (!v)
			continue;
		CU_ASSERT(v->spm_split); /* else this test proves nothing */
		for (int it = 0; it < 2000; it++) {
			char text[512];
			size_t n = 0;
			size_t want = 1 + slm_test_rand(&rng) % 400;
			while (n < want) {
				const char *p = pieces[slm_test_rand(&rng) %
						       SLM_ARRAY_LEN(pieces)];
				size_t l = strlen(p);
				memcpy(text + n, p, l);
				n += l;
			}
			struct tok_work w = {0};
			struct slm_tokens a = {0}, b = {0};
			struct slm_error err = {0};
			/* twice through one scratch: the second from the cache */
			CU_ASSERT_EQUAL(
				tok_spm_fragment(v, &w, text, n, &a, &err), 0);
			CU_ASSERT_EQUAL(
				tok_spm_fragment(v, &w, text, n, &a, &err), 0);
			CU_ASSERT_EQUAL(tok_spm_merge(v, text, n, &b), 0);
			CU_ASSERT_EQUAL(tok_spm_merge(v, text, n, &b), 0);
			if (a.n != b.n ||
			    memcmp(a.ids, b.ids, a.n * sizeof(int32_t))) {
				FAILF("%s: cut merge differs from whole merge "
				      "(%zu bytes)",
				      names[vi], n);
				it = 1 << 20;
			}
			tok_work_free(&w);
			slm_tokens_free(&a);
			slm_tokens_free(&b);
		}
		slm_vocab_destroy(v);
	}
}

/* ---- robustness ----------------------------------------------------------- */

/* Long runs (one pre-tokenizer piece of 256 KiB, a stress for the regex
 * engine and the merge heap) tokenize and come back intact. */
static void test_long_runs(void)
{
	static const char *const names[] = {"vocab-spm.gguf",
					    "vocab-llama3-bpe.gguf",
					    "vocab-qwen2-bpe.gguf"};
	static const char fill[] = {' ', 'a', '7', '!', '\n'};
	size_t n = 256 * 1024;
	char *text = malloc(n);
	for (int i = 0; i < 3; i++) {
		struct slm_vocab *v = open_vocab(full_vocab(names[i]));
		if (!v)
			continue;
		for (size_t f = 0; f < sizeof(fill); f++) {
			memset(text, fill[f], n);
			struct slm_tokens t = {0};
			struct slm_error err = {0};
			struct slm_text s = {0};
			int rc = slm_tokenize(v, text, n, 0, &t, &err);
			if (rc) {
				FAILF("%s, %zu x '%c': %s", names[i], n,
				      fill[f], err.msg);
				continue;
			}
			CU_ASSERT(t.n > 0 && t.n <= n + 1); /* + SPM prefix */
			if (!detok(v, &t, SLM_DETOK_STRIP_PREFIX, &s))
				CU_ASSERT(s.len == n &&
					  !memcmp(s.data, text, n));
			slm_text_free(&s);
			slm_tokens_free(&t);
		}
		slm_vocab_destroy(v);
	}
	free(text);
}

/* Random bytes and random ids: no failure, detokenized text is well
 * formed, streaming equals one-shot, and well-formed input comes back. */
static void test_random_input(void)
{
	static const char *const names[] = {"vocab-spm.gguf",
					    "vocab-llama3-bpe.gguf",
					    "vocab-qwen2-bpe.gguf"};
	struct slm_test_rng rng = {42};
	static const char *const pieces[] = {
		"a",	      " ",	     "\n",	     "<|im_start|>",
		"<s>",	      "</s>",	     "\xC3",	     "\xA9",
		"\xF0\x9F",   "\x98\x80",    "\xE2\x96\x81", "'s",
		"123",	      "\t",	     "\xFF",	     "<think>",
		"<|eot_id|>", "\xED\xA0\x80"};
	for (int i = 0; i < 3; i++) {
		struct slm_vocab *v = open_vocab(full_vocab(names[i]));
		if (!v)
			continue;
		int32_t n_vocab = slm_vocab_n_tokens(v);
		for (int it = 0; it < 300; it++) {
			char text[256];
			size_t n = 0;
			while (n < 200) {
				const char *p = pieces[slm_test_rand(&rng) %
						       SLM_ARRAY_LEN(pieces)];
				size_t l = strlen(p);
				if (slm_test_rand(&rng) % 3 == 0) {
					text[n++] = (char)slm_test_rand(&rng);
					continue;
				}
				memcpy(text + n, p, l);
				n += l;
			}
			struct slm_tokens t = {0};
			struct slm_error err = {0};
			unsigned fl = (unsigned)(slm_test_rand(&rng) % 4);
			CU_ASSERT_EQUAL_FATAL(
				slm_tokenize(v, text, n, fl, &t, &err), 0);
			for (size_t k = 0; k < t.n; k++)
				CU_ASSERT(t.ids[k] >= 0 && t.ids[k] < n_vocab);
			check_stream(v, t.ids, t.n, SLM_DETOK_SPECIAL);
			if (slm_utf8_valid(text, n) &&
			    !(fl & SLM_TOK_PARSE_SPECIAL)) {
				struct slm_text s = {0};
				if (!detok(v, &t, SLM_DETOK_STRIP_PREFIX, &s))
					CU_ASSERT(s.len == n &&
						  !memcmp(s.data, text, n));
				slm_text_free(&s);
			}
			/* random ids, including byte tokens and specials */
			t.n = 0;
			for (int k = 0; k < 64; k++)
				CU_ASSERT_EQUAL(
					slm_tokens_push(
						&t,
						(int32_t)(slm_test_rand(&rng) %
							  (uint64_t)n_vocab)),
					0);
			check_stream(v, t.ids, t.n, SLM_DETOK_SPECIAL);
			check_stream(v, t.ids, t.n, 0);
			slm_tokens_free(&t);
		}
		/* an id out of range is an error, not a crash */
		int32_t bad[] = {1, n_vocab};
		struct slm_text s = {0};
		struct slm_error err = {0};
		CU_ASSERT_EQUAL(slm_detokenize(v, bad, 2, 0, &s, &err),
				SLM_ERANGE);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "out of range"));
		slm_text_free(&s);
		slm_vocab_destroy(v);
	}
}

/* ---- bad vocabularies ----------------------------------------------------- */

/* Build a vocabulary-only GGUF in memory and try to load it. */
static int load_built(struct gguf_writer *w, struct slm_error *err)
{
	uint8_t *bytes = NULL;
	size_t size = 0;
	if (gguf_writer_header_bytes(w, &bytes, &size))
		return -1000;
	struct gguf_file *f = NULL;
	int rc = gguf_open_buffer(bytes, size, "built.gguf", &f, err);
	if (rc == 0) {
		struct slm_vocab *v = NULL;
		rc = slm_vocab_create(f, &v, err);
		slm_vocab_destroy(v);
		gguf_close(f);
	}
	free(bytes);
	gguf_writer_destroy(w);
	return rc;
}

static struct gguf_writer *mini_bpe(const char *pre)
{
	static const char *const toks[] = {"a", "b", "ab", "<s>"};
	static const char *const merges[] = {"a b"};
	struct gguf_writer *w = gguf_writer_create();
	CU_ASSERT_EQUAL(gguf_set_str(w, "tokenizer.ggml.model", "gpt2"), 0);
	if (pre)
		CU_ASSERT_EQUAL(gguf_set_str(w, "tokenizer.ggml.pre", pre), 0);
	CU_ASSERT_EQUAL(gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 4),
			0);
	CU_ASSERT_EQUAL(gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, 1),
			0);
	return w;
}

static void test_bad_vocab(void)
{
	struct slm_error err = {0};
	struct gguf_writer *w = gguf_writer_create();
	CU_ASSERT_EQUAL(gguf_set_str(w, "general.name", "x"), 0);
	CU_ASSERT_EQUAL(load_built(w, &err), SLM_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "tokenizer.ggml.model"));

	slm_error_clear(&err);
	w = gguf_writer_create();
	CU_ASSERT_EQUAL(gguf_set_str(w, "tokenizer.ggml.model", "t5"), 0);
	CU_ASSERT_EQUAL(load_built(w, &err), SLM_EUNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'t5'"));

	slm_error_clear(&err);
	CU_ASSERT_EQUAL(load_built(mini_bpe("tekken-x"), &err),
			SLM_EUNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'tekken-x'"));

	/* a small valid one loads; a missing pre is 'default' */
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(load_built(mini_bpe(NULL), &err), 0);
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(load_built(mini_bpe("qwen2"), &err), 0);

	/* no merges */
	slm_error_clear(&err);
	w = mini_bpe("gpt-2");
	gguf_remove_key(w, "tokenizer.ggml.merges");
	CU_ASSERT_EQUAL(load_built(w, &err), SLM_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "merges"));

	/* duplicate tokens */
	slm_error_clear(&err);
	w = mini_bpe("gpt-2");
	static const char *const dup[] = {"a", "b", "a"};
	CU_ASSERT_EQUAL(gguf_set_arr_str(w, "tokenizer.ggml.tokens", dup, 3),
			0);
	CU_ASSERT_EQUAL(load_built(w, &err), SLM_EFORMAT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "duplicate token"));

	/* tokens of the wrong type */
	slm_error_clear(&err);
	w = mini_bpe("gpt-2");
	int32_t nums[] = {1, 2};
	CU_ASSERT_EQUAL(gguf_set_arr(w, "tokenizer.ggml.tokens",
				     GGUF_TYPE_INT32, nums, 2),
			0);
	CU_ASSERT_EQUAL(load_built(w, &err), SLM_EFORMAT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "tokenizer.ggml.tokens"));

	/* a score array shorter than the token list */
	slm_error_clear(&err);
	w = mini_bpe("gpt-2");
	float sc[] = {0, 0};
	CU_ASSERT_EQUAL(gguf_set_arr(w, "tokenizer.ggml.scores",
				     GGUF_TYPE_FLOAT32, sc, 2),
			0);
	CU_ASSERT_EQUAL(load_built(w, &err), SLM_EFORMAT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "scores"));

	/* add_bos_token without a bos id (the default 11 is out of range) */
	slm_error_clear(&err);
	w = mini_bpe("gpt-2");
	CU_ASSERT_EQUAL(gguf_set_bool(w, "tokenizer.ggml.add_bos_token", true),
			0);
	CU_ASSERT_EQUAL(load_built(w, &err), SLM_EFORMAT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bos_token_id"));
}

/* A BPE vocabulary of the 256 byte symbols plus the results of `merges`
 * ("a b" rules over byte-encoded text), with pre-tokenizer `pre`. */
static struct slm_vocab *mini_vocab(const char *pre, const char *const *merges,
				    size_t n_merges)
{
	const char *toks[256 + 16];
	char store[256 + 16][16];
	size_t n = 0;
	for (int b = 0; b < 256; b++) {
		size_t l =
			slm_utf8_encode(tok_byte_to_cp((uint8_t)b), store[n]);
		store[n][l] = '\0';
		toks[n] = store[n];
		n++;
	}
	for (size_t m = 0; m < n_merges; m++) {
		const char *sp = strchr(merges[m], ' ');
		snprintf(store[n], sizeof(store[n]), "%.*s%s",
			 (int)(sp - merges[m]), merges[m], sp + 1);
		toks[n] = store[n];
		n++;
	}
	struct gguf_writer *w = gguf_writer_create();
	CU_ASSERT_EQUAL(gguf_set_str(w, "tokenizer.ggml.model", "gpt2"), 0);
	CU_ASSERT_EQUAL(gguf_set_str(w, "tokenizer.ggml.pre", pre), 0);
	CU_ASSERT_EQUAL(gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, n),
			0);
	CU_ASSERT_EQUAL(
		gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, n_merges),
		0);
	uint8_t *bytes = NULL;
	size_t size = 0;
	struct slm_vocab *v = NULL;
	struct gguf_file *f = NULL;
	struct slm_error err = {0};
	if (gguf_writer_header_bytes(w, &bytes, &size) == 0 &&
	    gguf_open_buffer(bytes, size, "mini.gguf", &f, &err) == 0 &&
	    slm_vocab_create(f, &v, &err) != 0)
		FAILF("%s: %s", pre, err.msg);
	gguf_close(f);
	free(bytes);
	gguf_writer_destroy(w);
	return v;
}

/* The pre-tokenizers without golden data split where their regexes say:
 * a merge across a split cannot happen, so the token count shows it. */
static void test_pre_tokenizers(void)
{
	static const char *const merges[] = {"' s", "1 2", "12 3", "a b"};
	static const struct {
		const char *pre;
		const char *text;
		size_t tokens;
	} cases[] = {
		/* gpt2 keeps "'s" together; default splits punctuation
		 * first; deepseek-llm takes "'" as punctuation */
		{"gpt-2", "it's", 3},
		{"default", "it's", 4},
		{"deepseek-llm", "it's", 4},
		{"smollm", "it's", 3},
		/* digits: one piece (gpt2), up to three (llama3), one each
		 * (qwen2, smollm) */
		{"gpt-2", "123", 1},
		{"llama-bpe", "123", 1},
		{"dbrx", "1234", 2},
		{"qwen2", "123", 3},
		{"smollm", "123", 3},
		{"deepseek-llm", "123", 1},
		/* letters merge everywhere */
		{"default", "ab", 1},
		{"qwen2", "ab", 1},
		{"deepseek-llm", "ab", 1},
	};
	for (size_t i = 0; i < SLM_ARRAY_LEN(cases); i++) {
		struct slm_vocab *v =
			mini_vocab(cases[i].pre, merges, SLM_ARRAY_LEN(merges));
		if (!v)
			continue;
		struct slm_tokens t = {0};
		tok(v, cases[i].text, 0, &t);
		if (t.n != cases[i].tokens)
			FAILF("pre %s, '%s': %zu tokens, want %zu",
			      cases[i].pre, cases[i].text, t.n,
			      cases[i].tokens);
		struct slm_text s = {0};
		if (!detok(v, &t, 0, &s))
			CU_ASSERT_STRING_EQUAL(s.data, cases[i].text);
		slm_text_free(&s);
		slm_tokens_free(&t);
		slm_vocab_destroy(v);
	}
}

SLM_SUITE("tokenizer", NULL, NULL,
	  {"golden ids, full vocabularies", test_golden_full},
	  {"golden ids, small models", test_golden_small},
	  {"vocabulary metadata", test_vocab_metadata},
	  {"small models' end of generation", test_small_models_eog},
	  {"special-token rules", test_special_rules},
	  {"SPM byte fallback", test_spm_bytes},
	  {"round trip and streaming", test_round_trip},
	  {"golden greedy runs", test_golden_greedy},
	  {"class stand-ins", test_class_standins},
	  {"merge loops agree", test_merge_paths_agree},
	  {"SPM cut into words agrees", test_spm_split_agrees},
	  {"pre-tokenizers without golden data", test_pre_tokenizers},
	  {"long runs", test_long_runs}, {"random input", test_random_input},
	  {"bad vocabularies", test_bad_vocab})
