/*
 * golden.c: the golden models' recipe (see golden.h).
 */
#include "tests/tools/golden.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "tests/tools/npy_random.h"

/* The recipe's float32 products and sums must not fuse (see golden.h). */
#pragma GCC optimize("fp-contract=off")

#define GOLDEN_SEED 20260817u

static const struct slm_model_shape shapes[] = {
	{
		.name = "llama-s",
		.arch = "llama",
		.n_vocab = 1024,
		.n_embd = 256,
		.n_layer = 4,
		.n_head = 8,
		.n_head_kv = 4,
		.n_ff = 768,
		.n_ctx = 2048,
		.rope_base = 10000.0f,
		.rms_eps = 1e-5f,
	},
	{
		.name = "llama3-s",
		.arch = "llama",
		.n_vocab = 2053,
		.n_embd = 256,
		.n_layer = 4,
		.n_head = 4,
		.n_head_kv = 1,
		.n_ff = 768,
		.n_ctx = 131072,
		.rope_base = 500000.0f,
		.rms_eps = 1e-5f,
		.tied = true,
		.rope_freqs = true,
	},
	{
		.name = "qwen2-s",
		.arch = "qwen2",
		.n_vocab = 2051,
		.n_embd = 320,
		.n_layer = 4,
		.n_head = 5,
		.n_head_kv = 1,
		.n_ff = 1024,
		.n_ctx = 32768,
		.rope_base = 1000000.0f,
		.rms_eps = 1e-6f,
		.tied = true,
		.qkv_bias = true,
	},
};

const char *const golden_models[] = {"llama-s", "llama3-s", "qwen2-s", NULL};

const struct slm_model_shape *golden_shape(const char *model)
{
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		if (!strcmp(model, shapes[i].name))
			return &shapes[i];
	return NULL;
}

void golden_fill_init(struct golden_fill *g,
		      const struct slm_model_shape *shape,
		      const struct gguf_file *tmpl)
{
	memset(g, 0, sizeof(*g));
	g->shape = shape;
	g->tmpl = tmpl;
}

static float std_of(const struct slm_model_shape *s, enum slm_model_role r)
{
	double e = sqrt((double)s->n_embd), ff = sqrt((double)s->n_ff);
	switch (r) {
	case SLM_ROLE_TOKEN_EMBD:
		return (float)0.02;
	case SLM_ROLE_ATTN_Q:
	case SLM_ROLE_ATTN_K:
		return (float)(1.0 / e);
	case SLM_ROLE_ATTN_V:
	case SLM_ROLE_ATTN_OUTPUT:
	case SLM_ROLE_FFN_GATE:
	case SLM_ROLE_FFN_UP:
		return (float)(0.7 / e);
	case SLM_ROLE_FFN_DOWN:
		return (float)(0.7 / ff);
	case SLM_ROLE_OUTPUT:
		return (float)(10.0 / e);
	default: /* biases */
		return (float)0.1;
	}
}

static int rope_freqs_of(const struct golden_fill *g,
			 const struct slm_model_tensor *t, float *out)
{
	const struct gguf_tensor *src =
		g->tmpl ? gguf_find_tensor(g->tmpl, "rope_freqs.weight") : NULL;
	if (!src || src->type != 0 || src->n_elements != t->n_elements)
		return SLM_ENOTFOUND;
	memcpy(out, gguf_mapping(g->tmpl) + src->file_offset,
	       t->n_elements * sizeof(float));
	return 0;
}

int golden_fill(void *ctx, const struct slm_model_tensor *t, uint64_t row0,
		uint64_t nrows, float *out)
{
	struct golden_fill *g = ctx;
	struct npy_pcg64 *rng = &g->rng;
	if (t->role == SLM_ROLE_ROPE_FREQS)
		return rope_freqs_of(g, t, out);
	if (row0 == 0) {
		/* A new tensor: its own generator. */
		const char *model = g->shape->name;
		uint32_t entropy[3] = {GOLDEN_SEED,
				       npy_crc32(model, strlen(model)),
				       npy_crc32(t->name, strlen(t->name))};
		npy_pcg64_seed(rng, entropy, 3);
		snprintf(g->tensor, sizeof(g->tensor), "%s", t->name);
		g->next_row = 0;
	}
	if (strcmp(g->tensor, t->name) || row0 != g->next_row)
		return SLM_ESTATE; /* rows must come in order */
	g->next_row = row0 + nrows;
	size_t n = (size_t)(nrows * t->ne[0]);
	npy_standard_normal_f32(rng, out, n);
	switch (t->role) {
	case SLM_ROLE_ATTN_NORM:
	case SLM_ROLE_FFN_NORM:
	case SLM_ROLE_OUTPUT_NORM: {
		float gain = 1.0f;
		bool tied_out =
			t->role == SLM_ROLE_OUTPUT_NORM && g->shape->tied;
		if (tied_out)
			gain = (float)(10.0 /
				       (0.02 * sqrt((double)g->shape->n_embd)));
		for (size_t i = 0; i < n; i++) {
			float v = 1.0f + 0.1f * out[i];
			out[i] = tied_out ? v * gain : v;
		}
		break;
	}
	default: {
		float sd = std_of(g->shape, t->role);
		for (size_t i = 0; i < n; i++)
			out[i] = out[i] * sd;
	}
	}
	return 0;
}

int golden_sha256_file(const char *path, char hex[65])
{
	if (sodium_init() < 0)
		return SLM_EIO;
	FILE *f = fopen(path, "rb");
	if (!f)
		return SLM_EIO;
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	static unsigned char buf[1 << 16];
	size_t got;
	while ((got = fread(buf, 1, sizeof(buf), f)) > 0)
		crypto_hash_sha256_update(&st, buf, got);
	int bad = ferror(f);
	fclose(f);
	if (bad)
		return SLM_EIO;
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&st, h);
	for (size_t i = 0; i < sizeof(h); i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	return 0;
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *text = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? 2 * cap : 65536;
			char *p = realloc(text, cap);
			if (!p) {
				free(text);
				fclose(f);
				return NULL;
			}
			text = p;
		}
		size_t got = fread(text + len, 1, 4096, f);
		len += got;
		if (got < 4096)
			break;
	}
	fclose(f);
	text[len] = '\0';
	return text;
}

int golden_expected_sha256(const char *const *manifests, size_t n,
			   const char *key, char hex[65])
{
	for (size_t m = 0; m < n; m++) {
		char *text = read_text(manifests[m]);
		cJSON *root = text ? cJSON_Parse(text) : NULL;
		free(text);
		const cJSON *files =
			cJSON_GetObjectItemCaseSensitive(root, "files");
		const cJSON *entry =
			cJSON_GetObjectItemCaseSensitive(files, key);
		const cJSON *sha =
			cJSON_GetObjectItemCaseSensitive(entry, "sha256");
		int found =
			cJSON_IsString(sha) && strlen(sha->valuestring) == 64;
		if (found)
			snprintf(hex, 65, "%s", sha->valuestring);
		cJSON_Delete(root);
		if (found)
			return 0;
	}
	return SLM_ENOTFOUND;
}
