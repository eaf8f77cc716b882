/*
 * bench_tokenizer: vocabulary load time and tokenization throughput.
 *
 *   bench_tokenizer [-s SIZE] VOCAB.gguf...
 *
 * The text is SIZE bytes (default 1 MiB) of mixed input, the same every
 * run: English prose, code, and the golden test strings (accented Latin,
 * CJK, Korean, Cyrillic, Arabic, Hindi, emoji, numbers, punctuation)
 * drawn with a fixed seed.  For each vocabulary: the time to build it from
 * an open GGUF file (best of 7, CPU time of this thread and wall time),
 * then tokenizing the whole text as one prompt (best of 3), tokenizing it
 * as 4 KiB prompts, one call each (so the per-call word cache starts cold
 * each time, as for separate requests), and detokenizing the ids.  Data files come from $SLM_TEST_DATA (default
 * tests/data).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/gguf.h"
#include "engine/tokenizer.h"

static double ms(clockid_t clock)
{
	struct timespec t;
	clock_gettime(clock, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static char *read_all(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct slm_text t = {0};
	char buf[65536];
	size_t r;
	while ((r = fread(buf, 1, sizeof(buf), f)) > 0)
		if (slm_text_append(&t, buf, r))
			break;
	fclose(f);
	*n = t.len;
	return t.data;
}

static const char *const code_snippets[] = {
	"static int parse(const char *s, size_t n, struct out *o)\n{\n\tfor "
	"(size_t i = 0; i < n; i++) {\n\t\tif (s[i] == "
	"'\\n')\n\t\t\to->lines++;"
	"\n\t}\n\treturn 0;\n}\n",
	"def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        "
	"a, "
	"b = b, a + b\n    return a\n\nprint([fibonacci(i) for i in "
	"range(20)])\n",
	"SELECT u.id, u.name, COUNT(o.id) AS orders FROM users u LEFT JOIN "
	"orders o ON o.user_id = u.id WHERE u.created_at >= '2024-01-01' GROUP "
	"BY u.id, u.name ORDER BY orders DESC LIMIT 50;\n",
	"{\"model\": \"qwen2\", \"messages\": [{\"role\": \"user\", "
	"\"content\": "
	"\"Hello!\"}], \"temperature\": 0.7, \"max_tokens\": 256, \"stream\": "
	"true}\n",
};

/* SIZE bytes of mixed text (caller frees). */
static char *make_text(size_t size)
{
	const char *dir = getenv("SLM_TEST_DATA");
	char path[4096];
	snprintf(path, sizeof(path), "%s/golden/inputs/teacher.txt",
		 dir ? dir : "tests/data");
	size_t prose_n = 0, json_n = 0;
	char *prose = read_all(path, &prose_n);
	snprintf(path, sizeof(path), "%s/golden/inputs/tokenize_strings.json",
		 dir ? dir : "tests/data");
	char *json = read_all(path, &json_n);
	cJSON *strings = json ? cJSON_Parse(json) : NULL;
	if (!prose || !strings || !cJSON_IsArray(strings)) {
		fprintf(stderr,
			"bench_tokenizer: cannot read %s (set "
			"SLM_TEST_DATA to the tests/data folder)\n",
			path);
		exit(1);
	}
	int n_strings = cJSON_GetArraySize(strings);
	char *text = malloc(size + 1);
	size_t n = 0;
	uint64_t rng = 0x9E3779B97F4A7C15ull;
	while (n < size) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		const char *piece;
		size_t pl;
		unsigned pick = (unsigned)(rng % 10);
		if (pick < 4) {
			piece = prose;
			pl = prose_n;
		} else if (pick < 6) {
			piece = code_snippets[(rng >> 8) % 4];
			pl = strlen(piece);
		} else {
			cJSON *s = cJSON_GetArrayItem(
				strings,
				(int)((rng >> 8) % (uint64_t)n_strings));
			piece = cJSON_IsString(s) ? s->valuestring : "";
			pl = strlen(piece);
		}
		if (pl > size - n)
			pl = size - n;
		/* do not cut a UTF-8 sequence at the very end */
		while (pl > 0 && n + pl == size &&
		       ((unsigned char)piece[pl] & 0xC0) == 0x80)
			pl--;
		memcpy(text + n, piece, pl);
		n += pl;
		if (n < size)
			text[n++] = (rng >> 20) & 1 ? '\n' : ' ';
		if (pl == 0 && n + 4 >= size)
			break;
	}
	text[n] = '\0';
	cJSON_Delete(strings);
	free(json);
	free(prose);
	return text;
}

int main(int argc, char **argv)
{
	size_t size = 1u << 20;
	int first = 1;
	if (argc > 2 && !strcmp(argv[1], "-s")) {
		size = (size_t)strtoull(argv[2], NULL, 10);
		first = 3;
	}
	if (first >= argc) {
		fprintf(stderr,
			"usage: bench_tokenizer [-s SIZE] VOCAB.gguf...\n");
		return 1;
	}
	char *text = make_text(size);
	size_t len = strlen(text);
	printf("text: %zu bytes of mixed prose, code and multilingual "
	       "strings\n",
	       len);
	printf("| vocabulary | tokens | load (cpu) ms | load (wall) ms | "
	       "tokenize MB/s | 4 KiB prompts MB/s | detokenize MB/s | "
	       "bytes/token |\n");
	printf("|---|---|---|---|---|---|---|---|\n");
	for (int a = first; a < argc; a++) {
		struct gguf_file *f = NULL;
		struct slm_error err = {0};
		if (gguf_open(argv[a], &f, &err)) {
			fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
			return 1;
		}
		double load_cpu = 1e30, load_wall = 1e30;
		struct slm_vocab *v = NULL;
		for (int r = 0; r < 7; r++) {
			slm_vocab_destroy(v);
			v = NULL;
			double c0 = ms(CLOCK_THREAD_CPUTIME_ID),
			       w0 = ms(CLOCK_MONOTONIC);
			if (slm_vocab_create(f, &v, &err)) {
				fprintf(stderr, "bench_tokenizer: %s\n",
					err.msg);
				return 1;
			}
			double c1 = ms(CLOCK_THREAD_CPUTIME_ID),
			       w1 = ms(CLOCK_MONOTONIC);
			if (c1 - c0 < load_cpu)
				load_cpu = c1 - c0;
			if (w1 - w0 < load_wall)
				load_wall = w1 - w0;
		}
		gguf_close(f);
		double tok_best = 1e30, detok_best = 1e30;
		struct slm_tokens t = {0};
		struct slm_text out = {0};
		for (int r = 0; r < 3; r++) {
			t.n = 0;
			double w0 = ms(CLOCK_MONOTONIC);
			if (slm_tokenize(v, text, len, SLM_TOK_ADD_SPECIAL, &t,
					 &err)) {
				fprintf(stderr, "bench_tokenizer: %s\n",
					err.msg);
				return 1;
			}
			double w1 = ms(CLOCK_MONOTONIC);
			out.len = 0;
			if (slm_detokenize(v, t.ids, t.n, 0, &out, &err)) {
				fprintf(stderr, "bench_tokenizer: %s\n",
					err.msg);
				return 1;
			}
			double w2 = ms(CLOCK_MONOTONIC);
			if (w1 - w0 < tok_best)
				tok_best = w1 - w0;
			if (w2 - w1 < detok_best)
				detok_best = w2 - w1;
		}
		double chunk_best = 1e30;
		struct slm_tokens ct = {0};
		for (int r = 0; r < 3; r++) {
			double w0 = ms(CLOCK_MONOTONIC);
			for (size_t off = 0; off < len;) {
				size_t n = len - off < 4096 ? len - off : 4096;
				/* whole characters: back off continuation bytes */
				while (off + n < len && n > 1 &&
				       ((unsigned char)text[off + n] & 0xC0) ==
					       0x80)
					n--;
				ct.n = 0;
				if (slm_tokenize(v, text + off, n, 0, &ct,
						 &err)) {
					fprintf(stderr, "bench_tokenizer: %s\n",
						err.msg);
					return 1;
				}
				off += n;
			}
			double w1 = ms(CLOCK_MONOTONIC);
			if (w1 - w0 < chunk_best)
				chunk_best = w1 - w0;
		}
		slm_tokens_free(&ct);
		const char *name = strrchr(argv[a], '/');
		printf("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.0f | %.2f "
		       "|\n",
		       name ? name + 1 : argv[a], slm_vocab_n_tokens(v),
		       load_cpu, load_wall,
		       (double)len / 1e6 / (tok_best / 1e3),
		       (double)len / 1e6 / (chunk_best / 1e3),
		       (double)len / 1e6 / (detok_best / 1e3),
		       (double)len / (double)(t.n ? t.n : 1));
		slm_tokens_free(&t);
		slm_text_free(&out);
		slm_vocab_destroy(v);
	}
	free(text);
	return 0;
}
