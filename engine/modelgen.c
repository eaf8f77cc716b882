/*
 * modelgen.c: generated models in the converter's layout (see modelgen.h).
 */
#include "engine/modelgen.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/dtype.h"
#include "engine/gguf.h"
#include "engine/quantize.h"

/* ---- shapes ----------------------------------------------------------- */

static const struct slm_model_shape presets[] = {
	{
		.name = "tinyllama",
		.arch = "llama",
		.n_vocab = 32000,
		.n_embd = 2048,
		.n_layer = 22,
		.n_head = 32,
		.n_head_kv = 4,
		.n_ff = 5632,
		.n_ctx = 2048,
		.rope_base = 10000.0f,
		.rms_eps = 1e-5f,
	},
	{
		.name = "qwen05",
		.arch = "qwen2",
		.n_vocab = 151936,
		.n_embd = 896,
		.n_layer = 24,
		.n_head = 14,
		.n_head_kv = 2,
		.n_ff = 4864,
		.n_ctx = 32768,
		.rope_base = 1000000.0f,
		.rms_eps = 1e-6f,
		.tied = true,
		.qkv_bias = true,
	},
	{
		.name = "tiny",
		.arch = "llama",
		.n_vocab = 512,
		.n_embd = 256,
		.n_layer = 2,
		.n_head = 4,
		.n_head_kv = 2,
		.n_ff = 512,
		.n_ctx = 512,
		.rope_base = 10000.0f,
		.rms_eps = 1e-5f,
	},
};

static const char *const preset_vocab[] = {"vocab-spm.gguf",
					   "vocab-qwen2-bpe.gguf", NULL};

int slm_model_preset(const char *name, struct slm_model_shape *out)
{
	for (size_t i = 0; i < SLM_ARRAY_LEN(presets); i++)
		if (!strcmp(name, presets[i].name)) {
			*out = presets[i];
			return 0;
		}
	return SLM_ENOTFOUND;
}

const char *slm_model_preset_list(void)
{
	return "tinyllama, qwen05, tiny";
}

const char *slm_model_preset_vocab(const char *name)
{
	for (size_t i = 0; i < SLM_ARRAY_LEN(presets); i++)
		if (!strcmp(name, presets[i].name))
			return preset_vocab[i];
	return NULL;
}

int slm_model_shape_check(const struct slm_model_shape *s,
			  struct slm_error *err)
{
	if (strcmp(s->arch, "llama") && strcmp(s->arch, "qwen2"))
		return slm_error_set(err, SLM_EUNSUPPORTED,
				     "architecture '%s': only llama and qwen2",
				     s->arch);
	if (!s->name[0])
		return slm_error_set(err, SLM_EINVAL, "the model has no name");
	if (!s->n_vocab || !s->n_embd || !s->n_layer || !s->n_head ||
	    !s->n_head_kv || !s->n_ff || !s->n_ctx)
		return slm_error_set(err, SLM_EINVAL,
				     "n_vocab, n_embd, n_layer, n_head, "
				     "n_head_kv, n_ff and n_ctx must all be "
				     "positive");
	if (s->n_embd % s->n_head)
		return slm_error_set(err, SLM_EINVAL,
				     "n_embd %u is not a multiple of n_head %u",
				     s->n_embd, s->n_head);
	if (s->n_head % s->n_head_kv)
		return slm_error_set(err, SLM_EINVAL,
				     "n_head %u is not a multiple of "
				     "n_head_kv %u",
				     s->n_head, s->n_head_kv);
	if ((s->n_embd / s->n_head) % 2)
		return slm_error_set(err, SLM_EINVAL,
				     "head_dim %u is odd (RoPE rotates pairs)",
				     s->n_embd / s->n_head);
	if (s->n_layer > 4096 || s->n_embd > (1u << 20) ||
	    s->n_ff > (1u << 22) || s->n_vocab > (1u << 24))
		return slm_error_set(err, SLM_ERANGE,
				     "shape too large (n_layer <= 4096, n_embd "
				     "<= 2^20, n_ff <= 2^22, n_vocab <= 2^24)");
	if (!(s->rope_base > 0) || !(s->rms_eps > 0))
		return slm_error_set(err, SLM_EINVAL,
				     "rope base and rms epsilon must be "
				     "positive");
	return 0;
}

/* ---- tensors ---------------------------------------------------------- */

struct tensor_list {
	struct slm_model_tensor *out;
	size_t max, n;
};

static void add(struct tensor_list *l, enum slm_model_role role, int layer,
		const char *suffix, uint64_t ne0, uint64_t ne1)
{
	if (l->n < l->max) {
		struct slm_model_tensor *t = &l->out[l->n];
		memset(t, 0, sizeof(*t));
		if (layer >= 0)
			snprintf(t->name, sizeof(t->name), "blk.%d.%s", layer,
				 suffix);
		else
			snprintf(t->name, sizeof(t->name), "%s", suffix);
		t->role = role;
		t->layer = layer;
		t->n_dims = ne1 ? 2 : 1;
		t->ne[0] = ne0;
		t->ne[1] = ne1 ? ne1 : 1;
		t->n_elements = ne0 * t->ne[1];
	}
	l->n++;
}

size_t slm_model_tensors(const struct slm_model_shape *s,
			 struct slm_model_tensor *out, size_t max)
{
	struct tensor_list l = {out, max, 0};
	uint64_t head_dim = s->n_embd / s->n_head;
	uint64_t n_q = head_dim * s->n_head, n_kv = head_dim * s->n_head_kv;
	if (s->rope_freqs)
		add(&l, SLM_ROLE_ROPE_FREQS, -1, "rope_freqs.weight",
		    head_dim / 2, 0);
	add(&l, SLM_ROLE_TOKEN_EMBD, -1, "token_embd.weight", s->n_embd,
	    s->n_vocab);
	for (int i = 0; i < (int)s->n_layer; i++) {
		add(&l, SLM_ROLE_ATTN_NORM, i, "attn_norm.weight", s->n_embd,
		    0);
		add(&l, SLM_ROLE_FFN_DOWN, i, "ffn_down.weight", s->n_ff,
		    s->n_embd);
		add(&l, SLM_ROLE_FFN_GATE, i, "ffn_gate.weight", s->n_embd,
		    s->n_ff);
		add(&l, SLM_ROLE_FFN_UP, i, "ffn_up.weight", s->n_embd,
		    s->n_ff);
		add(&l, SLM_ROLE_FFN_NORM, i, "ffn_norm.weight", s->n_embd, 0);
		if (s->qkv_bias)
			add(&l, SLM_ROLE_ATTN_K_BIAS, i, "attn_k.bias", n_kv,
			    0);
		add(&l, SLM_ROLE_ATTN_K, i, "attn_k.weight", s->n_embd, n_kv);
		add(&l, SLM_ROLE_ATTN_OUTPUT, i, "attn_output.weight", n_q,
		    s->n_embd);
		if (s->qkv_bias)
			add(&l, SLM_ROLE_ATTN_Q_BIAS, i, "attn_q.bias", n_q, 0);
		add(&l, SLM_ROLE_ATTN_Q, i, "attn_q.weight", s->n_embd, n_q);
		if (s->qkv_bias)
			add(&l, SLM_ROLE_ATTN_V_BIAS, i, "attn_v.bias", n_kv,
			    0);
		add(&l, SLM_ROLE_ATTN_V, i, "attn_v.weight", s->n_embd, n_kv);
	}
	add(&l, SLM_ROLE_OUTPUT_NORM, -1, "output_norm.weight", s->n_embd, 0);
	if (!s->tied)
		add(&l, SLM_ROLE_OUTPUT, -1, "output.weight", s->n_embd,
		    s->n_vocab);
	return l.n;
}

uint64_t slm_model_n_params(const struct slm_model_shape *s)
{
	size_t n = slm_model_tensors(s, NULL, 0);
	struct slm_model_tensor *t = calloc(n, sizeof(*t));
	if (!t)
		return 0;
	slm_model_tensors(s, t, n);
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += t[i].n_elements;
	free(t);
	return total;
}

void slm_model_size_label(uint64_t n_params, char *buf, size_t size)
{
	/* gguf-py's model_weight_count_rounded_notation(n, min_digits=2). */
	double n = (double)n_params, scaled;
	const char *suffix;
	if (n > 1e12) {
		scaled = n * 1e-12;
		suffix = "T";
	} else if (n > 1e9) {
		scaled = n * 1e-9;
		suffix = "B";
	} else if (n > 1e6) {
		scaled = n * 1e-6;
		suffix = "M";
	} else {
		scaled = n * 1e-3;
		suffix = "K";
	}
	/* Python's round() is half-to-even, as nearbyint by default. */
	double r = nearbyint(scaled);
	int digits = 0;
	for (double v = r; v >= 1.0; v = floor(v / 10.0))
		digits++;
	int fix = digits < 2 ? 2 - digits : 0;
	snprintf(buf, size, "%.*f%s", fix, scaled, suffix);
}

/* ---- metadata --------------------------------------------------------- */

static int arch_key(struct gguf_writer *w, const struct slm_model_shape *s,
		    const char *suffix, uint32_t v)
{
	char key[96];
	snprintf(key, sizeof(key), "%s.%s", s->arch, suffix);
	return gguf_set_u32(w, key, v);
}

static int arch_key_f32(struct gguf_writer *w, const struct slm_model_shape *s,
			const char *suffix, float v)
{
	char key[96];
	snprintf(key, sizeof(key), "%s.%s", s->arch, suffix);
	return gguf_set_f32(w, key, v);
}

static int copy_tokenizer(struct gguf_writer *w, const struct gguf_file *vocab,
			  uint32_t n_vocab, struct slm_error *err)
{
	struct gguf_array tokens;
	if (gguf_get_arr(vocab, "tokenizer.ggml.tokens", &tokens, NULL) ||
	    tokens.type != GGUF_TYPE_STRING)
		return slm_error_set(err, SLM_EFORMAT,
				     "%s: no tokenizer.ggml.tokens string "
				     "array",
				     gguf_path(vocab));
	if (tokens.n != n_vocab)
		return slm_error_set(err, SLM_EINVAL,
				     "%s has %llu tokens, the model has "
				     "n_vocab %u",
				     gguf_path(vocab),
				     (unsigned long long)tokens.n, n_vocab);
	for (uint64_t i = 0; i < gguf_n_kv(vocab); i++) {
		if (strncmp(gguf_kv_key(vocab, i), "tokenizer.", 10))
			continue;
		int rc = gguf_copy_kv(w, vocab, i);
		if (rc)
			return slm_error_set(err, rc, "cannot copy %s",
					     gguf_kv_key(vocab, i));
	}
	return 0;
}

int slm_model_metadata(struct gguf_writer *w, const struct slm_model_shape *s,
		       const struct gguf_file *vocab, struct slm_error *err)
{
	char label[32];
	slm_model_size_label(slm_model_n_params(s), label, sizeof(label));
	int rc = gguf_set_str(w, "general.architecture", s->arch);
	rc = rc ? rc : gguf_set_str(w, "general.type", "model");
	rc = rc ? rc : gguf_set_str(w, "general.name", s->name);
	rc = rc ? rc : gguf_set_str(w, "general.basename", s->name);
	rc = rc ? rc : gguf_set_str(w, "general.size_label", label);
	rc = rc ? rc : arch_key(w, s, "block_count", s->n_layer);
	rc = rc ? rc : arch_key(w, s, "context_length", s->n_ctx);
	rc = rc ? rc : arch_key(w, s, "embedding_length", s->n_embd);
	rc = rc ? rc : arch_key(w, s, "feed_forward_length", s->n_ff);
	rc = rc ? rc : arch_key(w, s, "attention.head_count", s->n_head);
	rc = rc ? rc : arch_key(w, s, "attention.head_count_kv", s->n_head_kv);
	rc = rc ? rc : arch_key_f32(w, s, "rope.freq_base", s->rope_base);
	rc = rc ? rc
		: arch_key_f32(w, s, "attention.layer_norm_rms_epsilon",
			       s->rms_eps);
	rc = rc ? rc : gguf_set_u32(w, "general.file_type", SLM_FTYPE_ALL_F32);
	if (!strcmp(s->arch, "llama")) {
		rc = rc ? rc : arch_key(w, s, "vocab_size", s->n_vocab);
		rc = rc ? rc
			: arch_key(w, s, "rope.dimension_count",
				   s->n_embd / s->n_head);
	}
	rc = rc ? rc : gguf_set_u32(w, "general.quantization_version", 2);
	if (rc)
		return slm_error_set(err, rc, "cannot set the metadata");
	if (vocab)
		return copy_tokenizer(w, vocab, s->n_vocab, err);
	return slm_model_builtin_vocab(w, s->n_vocab, err);
}

int slm_model_builtin_vocab(struct gguf_writer *w, uint32_t n_vocab,
			    struct slm_error *err)
{
	if (n_vocab < 259)
		return slm_error_set(err, SLM_EINVAL,
				     "the built-in vocabulary needs n_vocab >= "
				     "259 (3 specials and 256 bytes), not %u",
				     n_vocab);
	char **tokens = calloc(n_vocab, sizeof(*tokens));
	float *scores = calloc(n_vocab, sizeof(*scores));
	int32_t *types = calloc(n_vocab, sizeof(*types));
	int rc = tokens && scores && types ? 0 : SLM_ENOMEM;
	for (uint32_t i = 0; i < n_vocab && !rc; i++) {
		char buf[32];
		if (i == 0)
			snprintf(buf, sizeof(buf), "<unk>");
		else if (i == 1)
			snprintf(buf, sizeof(buf), "<s>");
		else if (i == 2)
			snprintf(buf, sizeof(buf), "</s>");
		else if (i < 259)
			snprintf(buf, sizeof(buf), "<0x%02X>", i - 3);
		else
			snprintf(buf, sizeof(buf), "<unused%u>", i - 259);
		/* llama.cpp's token types: 2 unknown, 3 control, 6 byte,
		 * 5 unused. */
		types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 5;
		tokens[i] = strdup(buf);
		if (!tokens[i])
			rc = SLM_ENOMEM;
	}
	rc = rc ? rc : gguf_set_str(w, "tokenizer.ggml.model", "llama");
	rc = rc ? rc : gguf_set_str(w, "tokenizer.ggml.pre", "default");
	rc = rc ? rc
		: gguf_set_arr_str(w, "tokenizer.ggml.tokens",
				   (const char *const *)tokens, n_vocab);
	rc = rc ? rc
		: gguf_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32,
			       scores, n_vocab);
	rc = rc ? rc
		: gguf_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32,
			       types, n_vocab);
	rc = rc ? rc : gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
	rc = rc ? rc : gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
	rc = rc ? rc : gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
	rc = rc ? rc : gguf_set_bool(w, "tokenizer.ggml.add_bos_token", true);
	rc = rc ? rc : gguf_set_bool(w, "tokenizer.ggml.add_sep_token", false);
	rc = rc ? rc : gguf_set_bool(w, "tokenizer.ggml.add_eos_token", false);
	for (uint32_t i = 0; tokens && i < n_vocab; i++)
		free(tokens[i]);
	free(tokens);
	free(scores);
	free(types);
	if (rc)
		return slm_error_set(err, rc,
				     "cannot build the built-in vocabulary");
	return 0;
}

/* ---- writing ---------------------------------------------------------- */

static int nthreads_default(int n)
{
	if (n > 0)
		return n;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	return cpus > 0 ? (int)cpus : 1;
}

/* Rows per chunk: about 4 Mi values. */
static uint64_t chunk_rows(uint64_t n_per_row)
{
	uint64_t rows = ((uint64_t)4 << 20) / n_per_row;
	return rows ? rows : 1;
}

int slm_model_write(const char *path, const struct slm_model_shape *s,
		    const struct slm_model_params *p, struct slm_error *err)
{
	int rc = slm_model_shape_check(s, err);
	if (rc)
		return rc;
	if (!p->fill)
		return slm_error_set(err, SLM_EINVAL, "no weight generator");
	int ftype = p->ftype;
	if (slm_ftype_base_type(ftype) < 0)
		return slm_error_set(err, SLM_EUNSUPPORTED,
				     "file type %d is not one of %s", ftype,
				     slm_ftype_list());
	int n_threads = nthreads_default(p->n_threads);

	size_t n = slm_model_tensors(s, NULL, 0);
	struct slm_model_tensor *ts = calloc(n, sizeof(*ts));
	struct slm_qtensor *qt = calloc(n, sizeof(*qt));
	uint32_t *types = calloc(n, sizeof(*types));
	size_t *order = calloc(n, sizeof(*order));
	struct gguf_writer *w = gguf_writer_create();
	float *f32 = NULL;
	void *conv = NULL;
	if (!ts || !qt || !types || !order || !w) {
		rc = slm_error_set(err, SLM_ENOMEM, "out of memory");
		goto out;
	}
	slm_model_tensors(s, ts, n);
	for (size_t i = 0; i < n; i++) {
		qt[i].name = ts[i].name;
		qt[i].n_dims = ts[i].n_dims;
		qt[i].ne[0] = ts[i].ne[0];
		qt[i].ne[1] = ts[i].ne[1];
		qt[i].ne[2] = qt[i].ne[3] = 1;
		qt[i].type = SLM_DTYPE_F32;
	}

	rc = slm_model_metadata(w, s, p->vocab, err);
	if (rc)
		goto out;
	if (ftype == SLM_FTYPE_ALL_F32) {
		/* The converter's own file. */
		for (size_t i = 0; i < n; i++) {
			types[i] = SLM_DTYPE_F32;
			order[i] = i;
		}
	} else {
		/* llama-quantize's file made from it. */
		struct slm_qmodel qm = {.arch = s->arch,
					.n_layer = s->n_layer,
					.n_head = s->n_head,
					.n_head_kv = s->n_head_kv};
		rc = slm_quant_plan(&qm, ftype, qt, n, types, order, NULL, err);
		if (rc)
			goto out;
		rc = gguf_set_u32(w, "general.quantization_version", 2);
		rc = rc ? rc
			: gguf_set_u32(w, "general.file_type", (uint32_t)ftype);
		if (rc) {
			rc = slm_error_set(err, rc, "cannot set the metadata");
			goto out;
		}
	}

	uint64_t total = 0, max_chunk = 0, max_conv = 0;
	for (size_t k = 0; k < n && !rc; k++) {
		const struct slm_model_tensor *t = &ts[order[k]];
		uint32_t type = types[order[k]];
		rc = gguf_add_tensor(w, t->name, t->n_dims, t->ne, type, NULL,
				     err);
		uint64_t row = 0;
		slm_dtype_row_bytes(type, t->ne[0], &row);
		total += row * t->ne[1];
		uint64_t rows = chunk_rows(t->ne[0]);
		if (rows > t->ne[1])
			rows = t->ne[1];
		if (rows * t->ne[0] > max_chunk)
			max_chunk = rows * t->ne[0];
		if (type != SLM_DTYPE_F32 && rows * row > max_conv)
			max_conv = rows * row;
	}
	if (rc)
		goto out;
	f32 = malloc(max_chunk * sizeof(float));
	conv = max_conv ? malloc(max_conv) : NULL;
	if (!f32 || (max_conv && !conv)) {
		rc = slm_error_set(err, SLM_ENOMEM, "out of memory");
		goto out;
	}
	rc = gguf_writer_begin(w, path, err);
	uint64_t done = 0;
	for (size_t k = 0; k < n && !rc; k++) {
		const struct slm_model_tensor *t = &ts[order[k]];
		uint32_t type = types[order[k]];
		uint64_t row = 0, step = chunk_rows(t->ne[0]);
		slm_dtype_row_bytes(type, t->ne[0], &row);
		for (uint64_t r = 0; r < t->ne[1] && !rc; r += step) {
			uint64_t cnt =
				t->ne[1] - r < step ? t->ne[1] - r : step;
			rc = p->fill(p->fill_ctx, t, r, cnt, f32);
			if (rc) {
				rc = slm_error_set(err, rc,
						   "cannot generate tensor "
						   "'%s'",
						   t->name);
				break;
			}
			const void *data = f32;
			if (type != SLM_DTYPE_F32) {
				rc = slm_convert_rows(SLM_DTYPE_F32, f32, type,
						      conv, (int64_t)cnt,
						      (int64_t)t->ne[0],
						      n_threads, err);
				data = conv;
			}
			rc = rc ? rc
				: gguf_writer_write_part(w, k, data, cnt * row,
							 err);
			done += cnt * row;
			if (!rc && p->progress)
				p->progress(p->progress_ctx, t->name, done,
					    total);
		}
		if (rc)
			slm_error_prefix(err, "tensor '%s': ", t->name);
	}
	rc = rc ? rc : gguf_writer_finish(w, err);
out:
	if (rc)
		slm_error_prefix(err, "%s: ", path);
	free(conv);
	free(f32);
	gguf_writer_destroy(w);
	free(order);
	free(types);
	free(qt);
	free(ts);
	return rc;
}

/* ---- the standard weights --------------------------------------------- */

void slm_model_random_init(struct slm_model_random *r,
			   const struct slm_model_shape *s, uint64_t seed,
			   int n_threads)
{
	memset(r, 0, sizeof(*r));
	r->seed = seed;
	r->n_threads = n_threads;
	r->n_embd = s->n_embd;
	r->n_ff = s->n_ff;
	r->tied = s->tied;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h;
}

/*
 * One row of N(0, 1) values: Box-Muller in float on a splitmix64 stream
 * (24-bit uniforms, so the tails stop at 5.8 sigma: fine for weights).
 */
static void normal_row(uint64_t state, float *out, uint64_t n)
{
	for (uint64_t i = 0; i < n; i += 2) {
		uint64_t a = splitmix64(&state);
		/* u1 in (0, 1], u2 in [0, 1). */
		float u1 = (float)((a >> 40) + 1) * 0x1.0p-24f;
		float u2 = (float)((a >> 16) & 0xffffff) * 0x1.0p-24f;
		float rad = sqrtf(-2.0f * logf(u1));
		float sn, cs;
		sincosf(6.2831853f * u2, &sn, &cs);
		out[i] = rad * cs;
		if (i + 1 < n)
			out[i + 1] = rad * sn;
	}
}

struct fill_job {
	const struct slm_model_random *r;
	const struct slm_model_tensor *t;
	uint64_t row0, nrows;
	float *out;
	float scale, offset, gain;
	bool norm;
};

static void *fill_worker(void *arg)
{
	const struct fill_job *j = arg;
	uint64_t h = fnv1a(j->t->name);
	uint64_t n = j->t->ne[0];
	for (uint64_t r = 0; r < j->nrows; r++) {
		uint64_t row = j->row0 + r;
		uint64_t st = j->r->seed ^ (h * 0x9E3779B97F4A7C15ull);
		st ^= splitmix64(&(uint64_t){row + 0x632BE59BD9B4E019ull});
		float *o = j->out + r * n;
		normal_row(st, o, n);
		for (uint64_t i = 0; i < n; i++)
			o[i] = j->norm ? (j->offset + j->scale * o[i]) * j->gain
				       : o[i] * j->scale;
	}
	return NULL;
}

int slm_model_fill_random(void *ctx, const struct slm_model_tensor *t,
			  uint64_t row0, uint64_t nrows, float *out)
{
	const struct slm_model_random *r = ctx;
	double e = sqrt((double)r->n_embd), ff = sqrt((double)r->n_ff);
	struct fill_job base = {.r = r, .t = t, .gain = 1.0f};
	switch (t->role) {
	case SLM_ROLE_ROPE_FREQS:
		for (uint64_t i = 0; i < nrows * t->ne[0]; i++)
			out[i] = 1.0f;
		return 0;
	case SLM_ROLE_TOKEN_EMBD:
		base.scale = 0.02f;
		break;
	case SLM_ROLE_ATTN_Q:
	case SLM_ROLE_ATTN_K:
		base.scale = (float)(1.0 / e);
		break;
	case SLM_ROLE_ATTN_V:
	case SLM_ROLE_ATTN_OUTPUT:
	case SLM_ROLE_FFN_GATE:
	case SLM_ROLE_FFN_UP:
		base.scale = (float)(0.7 / e);
		break;
	case SLM_ROLE_FFN_DOWN:
		base.scale = (float)(0.7 / ff);
		break;
	case SLM_ROLE_OUTPUT:
		base.scale = (float)(10.0 / e);
		break;
	case SLM_ROLE_ATTN_Q_BIAS:
	case SLM_ROLE_ATTN_K_BIAS:
	case SLM_ROLE_ATTN_V_BIAS:
		base.scale = 0.1f;
		break;
	case SLM_ROLE_OUTPUT_NORM:
		if (r->tied)
			base.gain = (float)(10.0 / (0.02 * e));
		/* fall through */
	case SLM_ROLE_ATTN_NORM:
	case SLM_ROLE_FFN_NORM:
		base.norm = true;
		base.offset = 1.0f;
		base.scale = 0.1f;
		break;
	default:
		return SLM_EINVAL;
	}
	int n_threads = nthreads_default(r->n_threads);
	if ((uint64_t)n_threads > nrows)
		n_threads = (int)nrows;
	if (n_threads > 64)
		n_threads = 64;
	struct fill_job jobs[64] = {0};
	pthread_t tids[64];
	bool started[64] = {false};
	uint64_t per = nrows / (uint64_t)n_threads;
	uint64_t extra = nrows % (uint64_t)n_threads, row = row0;
	for (int i = 0; i < n_threads; i++) {
		uint64_t cnt = per + ((uint64_t)i < extra ? 1 : 0);
		jobs[i] = base;
		jobs[i].row0 = row;
		jobs[i].nrows = cnt;
		jobs[i].out = out + (row - row0) * t->ne[0];
		row += cnt;
	}
	for (int i = 1; i < n_threads; i++)
		started[i] = pthread_create(&tids[i], NULL, fill_worker,
					    &jobs[i]) == 0;
	for (int i = 1; i < n_threads; i++)
		if (!started[i])
			fill_worker(&jobs[i]);
	fill_worker(&jobs[0]);
	for (int i = 1; i < n_threads; i++)
		if (started[i])
			pthread_join(tids[i], NULL);
	return 0;
}
