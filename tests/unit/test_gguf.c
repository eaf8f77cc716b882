#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/dtype.h"
#include "engine/gguf.h"
#include "tests/unit/harness.h"

/* Every byte of a vocabulary file survives reading and writing back. */
static void test_vocab_round_trip(void)
{
	static const char *const names[] = {"vocab/vocab-spm.gguf",
					    "vocab/vocab-llama3-bpe.gguf",
					    "vocab/vocab-qwen2-bpe.gguf"};
	for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
		const char *path = slm_test_generated(names[n]);
		struct gguf_file *f = NULL;
		struct slm_error err = {0};
		CU_ASSERT_EQUAL_FATAL(gguf_open(path, &f, &err), 0);
		CU_ASSERT_EQUAL(gguf_version(f), 3);
		CU_ASSERT_EQUAL(gguf_n_tensors(f), 0);
		struct gguf_writer *w = gguf_writer_create();
		for (uint64_t i = 0; i < gguf_n_kv(f); i++)
			CU_ASSERT_EQUAL(gguf_copy_kv(w, f, i), 0);
		char out[4096];
		snprintf(out, sizeof(out), "%s/rt.gguf", slm_test_tmpdir());
		CU_ASSERT_EQUAL(gguf_writer_write(w, out, &err), 0);
		gguf_writer_destroy(w);
		size_t a_len, b_len;
		char *a = slm_test_read_file(path, &a_len);
		char *b = slm_test_read_file(out, &b_len);
		CU_ASSERT_PTR_NOT_NULL_FATAL(a);
		CU_ASSERT_PTR_NOT_NULL_FATAL(b);
		CU_ASSERT_EQUAL(a_len, b_len);
		CU_ASSERT(a_len == b_len && memcmp(a, b, a_len) == 0);
		free(a);
		free(b);
		gguf_close(f);
	}
}

static void test_vocab_metadata(void)
{
	struct gguf_file *f = NULL;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(
		gguf_open(slm_test_generated("vocab/vocab-qwen2-bpe.gguf"), &f,
			  &err),
		0);
	const char *s = NULL;
	CU_ASSERT_EQUAL(gguf_get_str(f, "tokenizer.ggml.model", &s, &err), 0);
	CU_ASSERT_STRING_EQUAL(s, "gpt2");
	CU_ASSERT_EQUAL(gguf_get_str(f, "tokenizer.ggml.pre", &s, &err), 0);
	CU_ASSERT_STRING_EQUAL(s, "qwen2");
	struct gguf_array tokens;
	CU_ASSERT_EQUAL(gguf_get_arr(f, "tokenizer.ggml.tokens", &tokens, &err),
			0);
	CU_ASSERT_EQUAL(tokens.type, GGUF_TYPE_STRING);
	CU_ASSERT_EQUAL(tokens.n, 151936);
	CU_ASSERT_STRING_EQUAL(tokens.strings[151643], "<|endoftext|>");
	int64_t bos;
	CU_ASSERT_EQUAL(
		gguf_get_int(f, "tokenizer.ggml.bos_token_id", &bos, &err), 0);
	CU_ASSERT_EQUAL(bos, 151643);
	/* Wrong-type access names the key and both types. */
	CU_ASSERT_EQUAL(gguf_get_int(f, "tokenizer.ggml.model", &bos, &err),
			SLM_EFORMAT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'tokenizer.ggml.model'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "holds a string"));
	CU_ASSERT_EQUAL(gguf_get_int(f, "no.such.key", &bos, &err),
			SLM_ENOTFOUND);
	gguf_close(f);
}

/* Setting an existing key moves it to the end, as llama.cpp's writer. */
static void test_writer_key_order(void)
{
	struct gguf_writer *w = gguf_writer_create();
	CU_ASSERT_EQUAL(gguf_set_u32(w, "a", 1), 0);
	CU_ASSERT_EQUAL(gguf_set_str(w, "b", "x"), 0);
	CU_ASSERT_EQUAL(gguf_set_u32(w, "c", 3), 0);
	CU_ASSERT_EQUAL(gguf_set_u32(w, "a", 7), 0);
	CU_ASSERT_EQUAL(gguf_writer_n_kv(w), 3);
	CU_ASSERT_STRING_EQUAL(gguf_writer_kv_key(w, 0), "b");
	CU_ASSERT_STRING_EQUAL(gguf_writer_kv_key(w, 2), "a");

	float data[64];
	for (int i = 0; i < 64; i++)
		data[i] = (float)i;
	uint64_t ne[2] = {32, 2};
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(
		gguf_add_tensor(w, "t", 2, ne, SLM_DTYPE_F32, data, &err), 0);
	uint64_t bad[1] = {33};
	CU_ASSERT_EQUAL(
		gguf_add_tensor(w, "q", 1, bad, SLM_DTYPE_Q8_0, data, &err),
		SLM_EINVAL);
	char out[4096];
	snprintf(out, sizeof(out), "%s/order.gguf", slm_test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(gguf_writer_write(w, out, &err), 0);
	gguf_writer_destroy(w);

	struct gguf_file *f = NULL;
	CU_ASSERT_EQUAL_FATAL(gguf_open(out, &f, &err), 0);
	CU_ASSERT_STRING_EQUAL(gguf_kv_key(f, 2), "a");
	int64_t a;
	CU_ASSERT_EQUAL(gguf_get_int(f, "a", &a, &err), 0);
	CU_ASSERT_EQUAL(a, 7);
	const struct gguf_tensor *t = gguf_find_tensor(f, "t");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(t->size, sizeof(data));
	CU_ASSERT_EQUAL(t->file_offset % 32, 0);
	CU_ASSERT_EQUAL(
		memcmp(gguf_mapping(f) + t->file_offset, data, sizeof(data)),
		0);
	gguf_close(f);
}

/* Many keys and tensors: each is found by name (the hash index), and a
 * duplicate tensor name is refused naming both occurrences. */
static void test_many_names(void)
{
	enum { N_KV = 5000, N_T = 3000 };
	struct gguf_writer *w = gguf_writer_create();
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	char name[64];
	for (uint32_t i = 0; i < N_KV; i++) {
		snprintf(name, sizeof(name), "k.%u", i);
		CU_ASSERT_EQUAL_FATAL(gguf_set_u32(w, name, i * 7), 0);
	}
	static float data[32];
	struct slm_error err = {0};
	uint64_t ne[1] = {32};
	for (uint32_t i = 0; i < N_T; i++) {
		snprintf(name, sizeof(name), "t.%u", i);
		CU_ASSERT_EQUAL_FATAL(gguf_add_tensor(w, name, 1, ne,
						      SLM_DTYPE_F32, data,
						      &err),
				      0);
	}
	char out[4096];
	snprintf(out, sizeof(out), "%s/many.gguf", slm_test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(gguf_writer_write(w, out, &err), 0);
	gguf_writer_destroy(w);

	struct gguf_file *f = NULL;
	CU_ASSERT_EQUAL_FATAL(gguf_open(out, &f, &err), 0);
	int bad = 0;
	for (uint32_t i = 0; i < N_KV; i++) {
		snprintf(name, sizeof(name), "k.%u", i);
		int64_t v;
		bad += gguf_find(f, name) != (int64_t)i ||
		       gguf_get_int(f, name, &v, &err) != 0 || v != i * 7;
	}
	for (uint32_t i = 0; i < N_T; i++) {
		snprintf(name, sizeof(name), "t.%u", i);
		bad += gguf_find_tensor(f, name) != gguf_tensor_at(f, i);
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(gguf_find(f, "k.5000"), -1);
	CU_ASSERT_PTR_NULL(gguf_find_tensor(f, "t.3000"));
	CU_ASSERT_PTR_NULL(gguf_find_tensor(f, ""));

	/* Rename tensor 2999 to "t.1700" in place (same length): two
	 * tensors of one name. */
	size_t len;
	uint8_t *bytes = slm_test_read_file(out, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
	uint8_t *hit = NULL;
	for (size_t i = 0; i + 6 <= len; i++)
		if (!memcmp(bytes + i, "t.2999", 6)) {
			hit = bytes + i;
			break;
		}
	CU_ASSERT_PTR_NOT_NULL_FATAL(hit);
	memcpy(hit, "t.1700", 6);
	struct gguf_file *g = NULL;
	CU_ASSERT_EQUAL(gguf_open_buffer(bytes, len, "dup", &g, &err),
			SLM_EFORMAT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "tensor 't.1700' appears twice "
					       "(first as tensor 1700)"));
	free(bytes);
	gguf_close(f);
}

/* The loader's check that it reads the file the header came from. */
static void test_same_file(void)
{
	char path[4096], other[4096];
	snprintf(path, sizeof(path), "%s/same.gguf", slm_test_tmpdir());
	snprintf(other, sizeof(other), "%s/other.gguf", slm_test_tmpdir());
	struct slm_error err = {0};
	for (int k = 0; k < 2; k++) {
		struct gguf_writer *w = gguf_writer_create();
		CU_ASSERT_EQUAL(gguf_set_u32(w, "a", 1), 0);
		CU_ASSERT_EQUAL(gguf_writer_write(w, k ? other : path, &err),
				0);
		gguf_writer_destroy(w);
	}
	struct gguf_file *f = NULL;
	CU_ASSERT_EQUAL_FATAL(gguf_open(path, &f, &err), 0);
	CU_ASSERT_TRUE(gguf_from_file(f));
	int fd = open(path, O_RDONLY);
	CU_ASSERT_EQUAL(gguf_check_same_file(f, fd, &err), 0);
	close(fd);
	/* Replaced by another file under the same name. */
	CU_ASSERT_EQUAL_FATAL(rename(other, path), 0);
	fd = open(path, O_RDONLY);
	CU_ASSERT_EQUAL(gguf_check_same_file(f, fd, &err), SLM_EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "was replaced"));
	close(fd);
	gguf_close(f);
	/* Grown since it was opened. */
	CU_ASSERT_EQUAL_FATAL(gguf_open(path, &f, &err), 0);
	FILE *a = fopen(path, "ab");
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	fputs("more", a);
	fclose(a);
	fd = open(path, O_RDONLY);
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(gguf_check_same_file(f, fd, &err), SLM_EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "changed size"));
	close(fd);
	gguf_close(f);
}

/* Float elements read as integers saturate; NaN reads as 0. */
static void test_arr_int_saturates(void)
{
	const double v[4] = {1e300, -1e300, 0.0 / 0.0, -2.75};
	struct gguf_array a = {.type = GGUF_TYPE_FLOAT64, .n = 4, .data = v};
	CU_ASSERT_EQUAL(gguf_arr_int(&a, 0), INT64_MAX);
	CU_ASSERT_EQUAL(gguf_arr_int(&a, 1), INT64_MIN);
	CU_ASSERT_EQUAL(gguf_arr_int(&a, 2), 0);
	CU_ASSERT_EQUAL(gguf_arr_int(&a, 3), -2);
	CU_ASSERT_EQUAL(gguf_arr_int(&a, 4), 0);
}

SLM_SUITE("gguf", NULL, NULL, {"vocab round trip", test_vocab_round_trip},
	  {"vocab metadata", test_vocab_metadata},
	  {"writer key order", test_writer_key_order},
	  {"many names", test_many_names}, {"same file", test_same_file},
	  {"float elements as integers", test_arr_int_saturates})
