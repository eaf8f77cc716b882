/*
 * fuzz_gguf: the GGUF reader and the model description on arbitrary
 * bytes.  Whatever the input, opening either succeeds or fails with an
 * error code and a message; on success every accessor is exercised, the
 * metadata is copied through the writer and the header it writes must
 * parse again with the same pairs, and the model description (when the
 * file is a model) must give views inside the file.
 *
 * Seeds (tests/fuzz/seeds/fuzz_gguf): small llama and qwen2 models and a
 * vocabulary-only file, written by tests/fuzz/make_seeds.c.
 */
// fuzz-sources: engine/gguf.c engine/dtype.c engine/model.c common/err.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dtype.h"
#include "engine/gguf.h"
#include "engine/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void check(int cond)
{
	if (!cond)
		abort();
}

static void exercise_kvs(const struct gguf_file *f)
{
	for (uint64_t i = 0; i < gguf_n_kv(f); i++) {
		const char *key = gguf_kv_key(f, i);
		check(key != NULL);
		check(gguf_find(f, key) == (int64_t)i);
		uint32_t type = gguf_kv_type(f, i);
		uint64_t u, len;
		int64_t s;
		double d;
		const char *str;
		check(gguf_kv_scalar(f, i, &u, &s, &d, &str, &len) == 0);
		if (type == GGUF_TYPE_STRING)
			check(str != NULL && strlen(str) <= len);
		if (type != GGUF_TYPE_ARRAY)
			continue;
		struct gguf_array a;
		gguf_kv_arr(f, i, &a);
		for (uint64_t j = 0; j < a.n && j < 64; j++) {
			if (a.type == GGUF_TYPE_STRING)
				sink += a.string_lens[j] +
					(uint8_t)a.strings[j][0];
			else
				sink += (uint64_t)gguf_arr_int(&a, j) +
					(gguf_arr_float(&a, j) > 0);
		}
		/* Past the end reads as 0. */
		if (a.type != GGUF_TYPE_STRING)
			check(gguf_arr_int(&a, a.n) == 0);
		int64_t iv;
		uint64_t uv;
		double fv;
		bool bv;
		struct gguf_array av;
		struct slm_error err = {0};
		(void)gguf_get_int(f, key, &iv, &err);
		(void)gguf_get_uint(f, key, &uv, &err);
		(void)gguf_get_float(f, key, &fv, &err);
		(void)gguf_get_bool(f, key, &bv, &err);
		(void)gguf_get_str(f, key, &str, &err);
		(void)gguf_get_arr(f, key, &av, &err);
	}
}

static void exercise_tensors(const struct gguf_file *f, size_t size)
{
	for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(f, i);
		check(gguf_find_tensor(f, t->name) == t);
		check(t->file_offset + t->size <= size);
		check(t->file_offset % gguf_alignment(f) == 0);
		check(slm_dtype_known(t->type));
	}
}

/* The metadata through the writer: its header parses to the same keys. */
static void round_trip(const struct gguf_file *f)
{
	struct gguf_writer *w = gguf_writer_create();
	if (!w)
		return;
	for (uint64_t i = 0; i < gguf_n_kv(f); i++)
		check(gguf_copy_kv(w, f, i) == 0);
	uint8_t *bytes;
	size_t len;
	if (gguf_writer_header_bytes(w, &bytes, &len) == 0) {
		struct gguf_file *g = NULL;
		struct slm_error err = {0};
		check(gguf_open_buffer(bytes, len, "round trip", &g, &err) ==
		      0);
		check(gguf_n_kv(g) == gguf_n_kv(f));
		for (uint64_t i = 0; i < gguf_n_kv(f); i++)
			check(!strcmp(gguf_kv_key(g, i), gguf_kv_key(f, i)) &&
			      gguf_kv_type(g, i) == gguf_kv_type(f, i));
		gguf_close(g);
		free(bytes);
	}
	gguf_writer_destroy(w);
}

static void view_inside(struct slm_tensor *v, void *arg)
{
	const uint64_t *room = arg;
	if (slm_tensor_present(v))
		check(v->offset + v->bytes <= *room &&
		      v->row_bytes * v->ne[1] * v->ne[2] * v->ne[3] ==
			      v->bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gguf_file *f = NULL;
	struct slm_error err = {0};
	if (gguf_open_buffer(data, size, "fuzz", &f, &err) != 0) {
		check(err.code < 0 && err.msg[0] != '\0' && f == NULL);
		return 0;
	}
	exercise_kvs(f);
	exercise_tensors(f, size);
	round_trip(f);
	struct slm_model *m = NULL;
	if (slm_model_from_gguf(f, &m, &err) != 0) {
		check(err.code < 0 && err.msg[0] != '\0' && m == NULL);
		gguf_close(f);
		return 0;
	}
	uint64_t room = size - gguf_data_offset(f);
	slm_tensors_for_each(&m->tensors, view_inside, &room);
	check(m->hp.n_head % m->hp.n_head_kv == 0);
	check(m->tok.n_tokens <= m->hp.n_vocab);
	slm_model_close(m);
	return 0;
}
