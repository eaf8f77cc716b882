/*
 * golden_regen: regenerates the golden model files of tests/data/golden
 * (see tests/tools/golden.h and the Makefile's testdata target).
 *
 *   golden_regen extract SRC.gguf OUT.gguf
 *       Write a template: the tokenizer.* metadata of SRC in its order,
 *       plus SRC's rope_freqs.weight tensor if it has one.  This is how
 *       tests/data/golden/template-*.gguf were made from the golden files
 *       (any file of a model family works: all share the tokenizer).
 *
 *   golden_regen f32 MODEL TEMPLATE OUT.gguf
 *       Write MODEL's F32 file (llama-s, llama3-s, qwen2-s) from its
 *       recipe and template.
 *
 *   golden_regen accept NEW FINAL MANIFEST...
 *       Compare NEW's sha256 with the entry "models/<basename of FINAL>"
 *       of the first manifest that has it.  Equal: NEW becomes FINAL.
 *       Different (or no entry): NEW becomes FINAL.mismatch, FINAL is
 *       removed, a MISMATCH line names the file, and the exit status is
 *       2, so a wrong file is never used under the golden name.
 *
 *   golden_regen sha256 FILE...
 *       Print sha256 and name, as sha256sum does.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/modelgen.h"
#include "engine/quantize.h"
#include "tests/tools/golden.h"

static int usage(void)
{
	fprintf(stderr, "usage: golden_regen extract SRC.gguf OUT.gguf\n"
			"       golden_regen f32 MODEL TEMPLATE OUT.gguf\n"
			"       golden_regen accept NEW FINAL MANIFEST...\n"
			"       golden_regen sha256 FILE...\n");
	return 1;
}

static int fail(struct slm_error *err)
{
	fprintf(stderr, "golden_regen: %s\n", err->msg);
	return 1;
}

static int cmd_extract(const char *src, const char *out)
{
	struct slm_error err = {0};
	struct gguf_file *f = NULL;
	if (gguf_open(src, &f, &err))
		return fail(&err);
	struct gguf_writer *w = gguf_writer_create();
	int rc = w ? 0 : SLM_ENOMEM;
	for (uint64_t i = 0; i < gguf_n_kv(f) && !rc; i++)
		if (!strncmp(gguf_kv_key(f, i), "tokenizer.", 10))
			rc = gguf_copy_kv(w, f, i);
	const struct gguf_tensor *rf = gguf_find_tensor(f, "rope_freqs.weight");
	if (!rc && rf)
		rc = gguf_add_tensor(w, rf->name, rf->n_dims, rf->ne, rf->type,
				     gguf_mapping(f) + rf->file_offset, &err);
	if (!rc)
		rc = gguf_writer_write(w, out, &err);
	if (rc && !err.code)
		slm_error_set(&err, rc, "cannot write %s", out);
	gguf_writer_destroy(w);
	gguf_close(f);
	return rc ? fail(&err) : 0;
}

static int cmd_f32(const char *model, const char *tmpl_path, const char *out)
{
	struct slm_error err = {0};
	const struct slm_model_shape *shape = golden_shape(model);
	if (!shape) {
		fprintf(stderr, "golden_regen: unknown model '%s'\n", model);
		return 1;
	}
	struct gguf_file *tmpl = NULL;
	if (gguf_open(tmpl_path, &tmpl, &err))
		return fail(&err);
	struct golden_fill g;
	golden_fill_init(&g, shape, tmpl);
	struct slm_model_params p = {
		.ftype = SLM_FTYPE_ALL_F32,
		.vocab = tmpl,
		.fill = golden_fill,
		.fill_ctx = &g,
		.n_threads = 1,
	};
	int rc = slm_model_write(out, shape, &p, &err);
	gguf_close(tmpl);
	return rc ? fail(&err) : 0;
}

static int cmd_accept(const char *new_path, const char *final,
		      const char *const *manifests, size_t n)
{
	char key[512], got[65], want[65];
	char *copy = strdup(final);
	if (!copy)
		return 1;
	snprintf(key, sizeof(key), "models/%s", basename(copy));
	free(copy);
	if (golden_sha256_file(new_path, got)) {
		fprintf(stderr, "golden_regen: cannot read %s\n", new_path);
		return 1;
	}
	char bad[4096];
	snprintf(bad, sizeof(bad), "%s.mismatch", final);
	if (golden_expected_sha256(manifests, n, key, want)) {
		fprintf(stderr,
			"golden: MISMATCH %s: no sha256 for it in the "
			"manifests; kept as %s\n",
			key, bad);
		unlink(final);
		rename(new_path, bad);
		return 2;
	}
	if (strcmp(got, want)) {
		fprintf(stderr,
			"golden: MISMATCH %s: sha256 %s, expected %s; the "
			"file is kept as %s and not used\n",
			key, got, want, bad);
		unlink(final);
		rename(new_path, bad);
		return 2;
	}
	unlink(bad);
	if (rename(new_path, final)) {
		perror(final);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "extract") && argc == 4)
		return cmd_extract(argv[2], argv[3]);
	if (argc == 5 && !strcmp(argv[1], "f32"))
		return cmd_f32(argv[2], argv[3], argv[4]);
	if (argc >= 5 && !strcmp(argv[1], "accept"))
		return cmd_accept(argv[2], argv[3],
				  (const char *const *)argv + 4,
				  (size_t)argc - 4);
	if (argc >= 3 && !strcmp(argv[1], "sha256")) {
		for (int i = 2; i < argc; i++) {
			char hex[65];
			if (golden_sha256_file(argv[i], hex)) {
				fprintf(stderr,
					"golden_regen: cannot read %s\n",
					argv[i]);
				return 1;
			}
			printf("%s  %s\n", hex, argv[i]);
		}
		return 0;
	}
	return usage();
}
