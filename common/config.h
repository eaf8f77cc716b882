/*
 * config.h: typed configuration driven by the key table in config_keys.h.
 *
 * A struct slm_config holds one value per key, starting from the defaults,
 * then overlaid by an INI file (parsed with inih) and by `--set` overrides.
 * Every bad line is an error that names the file, the line, the key and
 * what is allowed.
 *
 * Threads: values of RUNTIME keys may be changed while other threads read
 * them.  Every getter is an atomic load, so a reader never sees half a
 * value; a replaced string (and an origin text) stays allocated until the
 * config is destroyed, so a reader's pointer never dangles; writers are
 * serialised by a lock.  A change of several keys at once
 * (slm_config_set_runtime_many) is stored as one: a reader that needs two
 * keys to agree brackets its reads with slm_config_read_begin/retry.
 */
#ifndef SLM_COMMON_CONFIG_H
#define SLM_COMMON_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"

enum slm_cfg_id {
#define SLM_CFG_KEY(id, ...) SLM_CFG_##id,
#include "common/config_keys.h"
#undef SLM_CFG_KEY
	SLM_CFG__COUNT
};

enum slm_cfg_type {
	SLM_CFG_TYPE_BOOL,
	SLM_CFG_TYPE_INT,
	SLM_CFG_TYPE_SIZE,
	SLM_CFG_TYPE_DOUBLE,
	SLM_CFG_TYPE_STRING,
	SLM_CFG_TYPE_ENUM,
};

/* One row of the key table. */
struct slm_cfg_key {
	const char *section;
	const char *name;
	enum slm_cfg_type type;
	const char *def;     /* default, as it would be written in the file */
	double min, max;     /* inclusive bounds of INT, SIZE, DOUBLE */
	const char *choices; /* ENUM: "a|b|c" */
	bool runtime;	     /* may change while running */
	const char *help;
};

struct slm_config;

/* A config holding every default.  NULL when out of memory. */
struct slm_config *slm_config_create(void);
void slm_config_destroy(struct slm_config *cfg);

/* Overlay an INI file; the first bad line's error names file and line. */
int slm_config_load_file(struct slm_config *cfg, const char *path,
			 struct slm_error *err) SLM_MUST_CHECK;

/* Overlay INI text; `name` stands for the file name in messages. */
int slm_config_load_string(struct slm_config *cfg, const char *text,
			   const char *name,
			   struct slm_error *err) SLM_MUST_CHECK;

/* Set "section.key" from its text form, as `--set section.key=value`. */
int slm_config_set(struct slm_config *cfg, const char *dotted_key,
		   const char *value, struct slm_error *err) SLM_MUST_CHECK;

/* Parse one "section.key=value" argument of --set. */
int slm_config_set_arg(struct slm_config *cfg, const char *assignment,
		       struct slm_error *err) SLM_MUST_CHECK;

/* Like slm_config_set, but refuses a key that is not RUNTIME (SLM_ESTATE);
 * the origin becomes "runtime". */
int slm_config_set_runtime(struct slm_config *cfg, const char *dotted_key,
			   const char *value,
			   struct slm_error *err) SLM_MUST_CHECK;

/*
 * Set n RUNTIME keys as one change: every key and value is checked (and
 * every allocation made) first; if one is unknown, not RUNTIME
 * (SLM_ESTATE), given twice or has a bad value (SLM_ECONFIG), nothing
 * changes and err names it.  Otherwise all are stored between one pair
 * of seq bumps.  origin (copied; NULL: "runtime") is what
 * slm_config_origin reports for them afterwards, e.g. "slmctl uid 0".
 */
int slm_config_set_runtime_many(struct slm_config *cfg, int n,
				const char *const *keys,
				const char *const *values, const char *origin,
				struct slm_error *err) SLM_MUST_CHECK;

/* Check that value is valid for "section.key" without storing it; with
 * runtime_only, a key that is not RUNTIME is refused (SLM_ESTATE). */
int slm_config_check(const char *dotted_key, const char *value,
		     bool runtime_only, struct slm_error *err) SLM_MUST_CHECK;

/*
 * A consistent read of several keys (a seqcount):
 *     unsigned seq;
 *     do {
 *             seq = slm_config_read_begin(cfg);
 *             a = slm_cfg_int(cfg, A); b = slm_cfg_int(cfg, B);
 *     } while (slm_config_read_retry(cfg, seq));
 * begin waits while a change is being stored; retry is true when one was
 * stored meanwhile.  Never needed for a single key.
 */
unsigned slm_config_read_begin(const struct slm_config *cfg);
bool slm_config_read_retry(const struct slm_config *cfg, unsigned seq);

/* The table: key ids run 0 .. SLM_CFG__COUNT-1. */
const struct slm_cfg_key *slm_config_key(enum slm_cfg_id id);

/* Id of "section.key", or -1. */
int slm_config_find(const char *dotted_key);

/* Typed getters; the id must be of the matching type (asserted). */
bool slm_cfg_bool(const struct slm_config *cfg, enum slm_cfg_id id);
int64_t slm_cfg_int(const struct slm_config *cfg, enum slm_cfg_id id);
uint64_t slm_cfg_size(const struct slm_config *cfg, enum slm_cfg_id id);
double slm_cfg_double(const struct slm_config *cfg, enum slm_cfg_id id);
const char *slm_cfg_str(const struct slm_config *cfg, enum slm_cfg_id id);
/* ENUM: index of the choice (0 for the first) and its name. */
int slm_cfg_enum(const struct slm_config *cfg, enum slm_cfg_id id);
const char *slm_cfg_enum_name(const struct slm_config *cfg, enum slm_cfg_id id);

/* The value in the form the file takes; returns the length (snprintf). */
int slm_config_format(const struct slm_config *cfg, enum slm_cfg_id id,
		      char *buf, size_t size);

/* "bool", "int", "size", "number", "string", "enum". */
const char *slm_config_type_name(enum slm_cfg_type type);

/* What a key accepts, in words ("an integer from 1 to 64"). */
int slm_config_describe_allowed(enum slm_cfg_id id, char *buf, size_t size);

/* Where the current value came from: "default", "FILE:LINE", "--set",
 * "reload", "runtime" or the origin given to slm_config_set_runtime_many. */
const char *slm_config_origin(const struct slm_config *cfg, enum slm_cfg_id id);

/*
 * Write every key as a loadable INI file, grouped by section, each with
 * its help and bounds in comments.  Loading the dump gives the same config.
 */
int slm_config_dump(const struct slm_config *cfg, FILE *out);

/*
 * Write the reference of every key as Markdown tables, one per section
 * (docs/config.md embeds this output; a test keeps the two equal).
 */
int slm_config_doc_markdown(FILE *out);

/* Parse a size such as "64K", "2GiB", "512MB", "4096" into bytes. */
int slm_parse_size(const char *text, uint64_t *bytes);

/*
 * The config options every program takes: `-c FILE` and any number of
 * `--set section.key=value`.  Programs collect them while parsing their
 * command line, then apply file before overrides whatever their order.
 */
#define SLM_CONFIG_MAX_SETS 64
struct slm_config_args {
	const char *file;
	const char *sets[SLM_CONFIG_MAX_SETS];
	int n_sets;
};

/* Record a --set; an error when there are too many. */
int slm_config_args_add_set(struct slm_config_args *args, const char *set,
			    struct slm_error *err) SLM_MUST_CHECK;

/* defaults <- file (if any) <- sets, into cfg. */
int slm_config_apply_args(struct slm_config *cfg,
			  const struct slm_config_args *args,
			  struct slm_error *err) SLM_MUST_CHECK;

#endif
