#include "common/config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BOOL SLM_CFG_TYPE_BOOL
#define INT SLM_CFG_TYPE_INT
#define SIZE SLM_CFG_TYPE_SIZE
#define DOUBLE SLM_CFG_TYPE_DOUBLE
#define STRING SLM_CFG_TYPE_STRING
#define ENUM SLM_CFG_TYPE_ENUM
#define RUNTIME true
#define STATIC false

static const struct slm_cfg_key key_table[SLM_CFG__COUNT] = {
#define SLM_CFG_KEY(id, sec, nm, ty, df, mn, mx, ch, md, hl) \
	[SLM_CFG_##id] = {.section = sec,                    \
			  .name = nm,                        \
			  .type = ty,                        \
			  .def = df,                         \
			  .min = mn,                         \
			  .max = mx,                         \
			  .choices = ch,                     \
			  .runtime = md,                     \
			  .help = hl},
#include "common/config_keys.h"
#undef SLM_CFG_KEY
};

#undef BOOL
#undef INT
#undef SIZE
#undef DOUBLE
#undef STRING
#undef ENUM
#undef RUNTIME
#undef STATIC

#define ORIGIN_MAX 160

/*
 * The value of one key.  i holds BOOL, INT, SIZE and ENUM (choice index).
 * Every field is read with atomic loads: i and d relaxed, s and origin
 * acquire (they point to text written before the pointer was published).
 */
struct cfg_slot {
	int64_t i;
	double d;
	char *s;
	const char *origin; /* static text, or text on cfg->owned */
};

/*
 * Text a reader may still hold: strings replaced while running and origin
 * texts.  Freed only by slm_config_destroy, so a pointer a reader loaded
 * never dangles.
 */
struct owned_str {
	struct owned_str *next;
	char *s;
};

struct slm_config {
	struct cfg_slot slot[SLM_CFG__COUNT];
	/*
	 * Writers take write_lock (it guards owned and orders writers) and
	 * bump seq around every change: odd while values are being stored,
	 * so a reader of several keys can tell it saw one consistent state
	 * (slm_config_read_begin/retry).
	 */
	pthread_mutex_t write_lock;
	unsigned seq;
	struct owned_str *owned;
};

const struct slm_cfg_key *slm_config_key(enum slm_cfg_id id)
{
	SLM_ASSERT((unsigned)id < SLM_CFG__COUNT);
	return &key_table[id];
}

static int find_key(const char *section, size_t section_len, const char *name)
{
	for (int id = 0; id < SLM_CFG__COUNT; id++) {
		const struct slm_cfg_key *k = &key_table[id];
		if (strlen(k->section) == section_len &&
		    strncmp(k->section, section, section_len) == 0 &&
		    strcmp(k->name, name) == 0)
			return id;
	}
	return -1;
}

int slm_config_find(const char *dotted_key)
{
	const char *dot = strchr(dotted_key, '.');
	if (!dot)
		return -1;
	return find_key(dotted_key, (size_t)(dot - dotted_key), dot + 1);
}

/* Index of `text` among "a|b|c", or -1. */
static int choice_index(const char *choices, const char *text)
{
	size_t len = strlen(text);
	int index = 0;
	for (const char *p = choices; *p; index++) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);
		if (n == len && strncmp(p, text, n) == 0)
			return index;
		if (!bar)
			break;
		p = bar + 1;
	}
	return -1;
}

/* Copy choice number `index` of "a|b|c" into buf. */
static void choice_name(const char *choices, int index, char *buf, size_t size)
{
	const char *p = choices;
	for (int i = 0; i < index && p; i++) {
		p = strchr(p, '|');
		if (p)
			p++;
	}
	if (!p) {
		snprintf(buf, size, "?");
		return;
	}
	const char *bar = strchr(p, '|');
	size_t n = bar ? (size_t)(bar - p) : strlen(p);
	snprintf(buf, size, "%.*s", (int)n, p);
}

int slm_parse_size(const char *text, uint64_t *bytes)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {
		{"", 0},     {"B", 0},	  {"K", 10},   {"KB", 10},
		{"KiB", 10}, {"M", 20},	  {"MB", 20},  {"MiB", 20},
		{"G", 30},   {"GB", 30},  {"GiB", 30}, {"T", 40},
		{"TB", 40},  {"TiB", 40}, {"k", 10},   {"kB", 10},
	};
	if (!text || *text < '0' || *text > '9')
		return SLM_EINVAL;
	errno = 0;
	char *end;
	unsigned long long value = strtoull(text, &end, 10);
	if (errno == ERANGE)
		return SLM_EOVERFLOW;
	while (*end == ' ')
		end++;
	for (size_t u = 0; u < SLM_ARRAY_LEN(units); u++) {
		if (strcmp(end, units[u].suffix) != 0)
			continue;
		unsigned shift = units[u].shift;
		if (shift && value > (UINT64_MAX >> shift))
			return SLM_EOVERFLOW;
		*bytes = (uint64_t)value << shift;
		return 0;
	}
	return SLM_EINVAL;
}

static int parse_bool(const char *text, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < SLM_ARRAY_LEN(yes); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return SLM_EINVAL;
}

/* "(allowed: ...)" for a key, for error messages. */
static void describe_allowed(const struct slm_cfg_key *k, char *buf,
			     size_t size)
{
	switch (k->type) {
	case SLM_CFG_TYPE_BOOL:
		snprintf(buf, size, "true or false");
		break;
	case SLM_CFG_TYPE_INT:
		snprintf(buf, size, "an integer from %.0f to %.0f", k->min,
			 k->max);
		break;
	case SLM_CFG_TYPE_SIZE:
		snprintf(buf, size,
			 "a size from %.0f to %.0f bytes, suffix K, M, G or T "
			 "allowed",
			 k->min, k->max);
		break;
	case SLM_CFG_TYPE_DOUBLE:
		snprintf(buf, size, "a number from %g to %g", k->min, k->max);
		break;
	case SLM_CFG_TYPE_STRING:
		snprintf(buf, size, "any text");
		break;
	case SLM_CFG_TYPE_ENUM:
		snprintf(buf, size, "one of %s", k->choices);
		break;
	}
}

/* Parse `text` for key `id` into a fresh slot value (not yet stored). */
static int parse_value(int id, const char *text, struct cfg_slot *out,
		       const char *where, struct slm_error *err)
{
	const struct slm_cfg_key *k = &key_table[id];
	char allowed[192];
	describe_allowed(k, allowed, sizeof(allowed));
	int rc = 0;

	switch (k->type) {
	case SLM_CFG_TYPE_BOOL: {
		bool b = false;
		rc = parse_bool(text, &b);
		out->i = b;
		break;
	}
	case SLM_CFG_TYPE_INT: {
		errno = 0;
		char *end;
		long long v = strtoll(text, &end, 10);
		if (*text == '\0' || *end != '\0' || errno == ERANGE)
			rc = SLM_EINVAL;
		else if ((double)v < k->min || (double)v > k->max)
			rc = SLM_ERANGE;
		out->i = v;
		break;
	}
	case SLM_CFG_TYPE_SIZE: {
		uint64_t v = 0;
		rc = slm_parse_size(text, &v);
		if (rc == SLM_EOVERFLOW ||
		    (rc == 0 && ((double)v < k->min || (double)v > k->max)))
			rc = SLM_ERANGE;
		out->i = (int64_t)v;
		break;
	}
	case SLM_CFG_TYPE_DOUBLE: {
		errno = 0;
		char *end;
		double v = strtod(text, &end);
		if (*text == '\0' || *end != '\0' || errno == ERANGE ||
		    !isfinite(v))
			rc = SLM_EINVAL;
		else if (v < k->min || v > k->max)
			rc = SLM_ERANGE;
		out->d = v;
		break;
	}
	case SLM_CFG_TYPE_STRING:
		out->s = strdup(text);
		if (!out->s)
			return slm_error_set(err, SLM_ENOMEM, "%sout of memory",
					     where);
		break;
	case SLM_CFG_TYPE_ENUM:
		out->i = choice_index(k->choices, text);
		if (out->i < 0)
			rc = SLM_EINVAL;
		break;
	}
	if (rc == SLM_ERANGE)
		return slm_error_set(err, SLM_ECONFIG,
				     "%skey '%s.%s': value '%s' is out of "
				     "bounds (allowed: %s)",
				     where, k->section, k->name, text, allowed);
	if (rc)
		return slm_error_set(err, SLM_ECONFIG,
				     "%skey '%s.%s': bad value '%s' (allowed: "
				     "%s)",
				     where, k->section, k->name, text, allowed);
	return 0;
}

/* A value parsed and ready to store, with what storing it needs. */
struct pending {
	int id;
	struct cfg_slot v;
	struct owned_str *retire; /* node for the replaced string */
};

static void pending_free(struct pending *p)
{
	free(p->v.s);
	free(p->retire);
	p->v.s = NULL;
	p->retire = NULL;
}

/* Parse and allocate everything storing will need: storing cannot fail. */
static int pending_prepare(struct pending *p, int id, const char *text,
			   const char *where, struct slm_error *err)
{
	memset(p, 0, sizeof(*p));
	p->id = id;
	int rc = parse_value(id, text, &p->v, where, err);
	if (rc)
		return rc;
	if (key_table[id].type == SLM_CFG_TYPE_STRING) {
		p->retire = malloc(sizeof(*p->retire));
		if (!p->retire) {
			pending_free(p);
			return slm_error_set(err, SLM_ENOMEM, "%sout of memory",
					     where);
		}
	}
	return 0;
}

/* Keep text alive until destroy; returns it, or NULL when out of memory. */
static const char *own_text(struct slm_config *cfg, const char *text)
{
	struct owned_str *o = malloc(sizeof(*o));
	char *copy = strdup(text);
	if (!o || !copy) {
		free(o);
		free(copy);
		return NULL;
	}
	o->s = copy;
	pthread_mutex_lock(&cfg->write_lock);
	o->next = cfg->owned;
	cfg->owned = o;
	pthread_mutex_unlock(&cfg->write_lock);
	return copy;
}

static void write_begin(struct slm_config *cfg)
{
	pthread_mutex_lock(&cfg->write_lock);
	__atomic_store_n(&cfg->seq, cfg->seq + 1, __ATOMIC_RELAXED);
	/* Orders the odd seq before the values stored after it. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void write_end(struct slm_config *cfg)
{
	/* Orders the stored values before the even seq. */
	__atomic_store_n(&cfg->seq, cfg->seq + 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&cfg->write_lock);
}

/* Store one prepared value; the caller holds write_lock (write_begin).
 * Numbers are stored atomically; a replaced string is retired, not
 * freed, since a reader may still hold it. */
static void pending_store(struct slm_config *cfg, struct pending *p,
			  const char *origin)
{
	struct cfg_slot *slot = &cfg->slot[p->id];
	if (key_table[p->id].type == SLM_CFG_TYPE_STRING) {
		if (slot->s) {
			p->retire->s = slot->s;
			p->retire->next = cfg->owned;
			cfg->owned = p->retire;
		} else {
			free(p->retire);
		}
		__atomic_store_n(&slot->s, p->v.s, __ATOMIC_RELEASE);
	} else {
		__atomic_store_n(&slot->i, p->v.i, __ATOMIC_RELAXED);
		__atomic_store(&slot->d, &p->v.d, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&slot->origin, origin, __ATOMIC_RELEASE);
	p->v.s = NULL;
	p->retire = NULL;
}

/* origin: static text or text owned by cfg (own_text). */
static int set_by_id(struct slm_config *cfg, int id, const char *text,
		     const char *where, const char *origin,
		     struct slm_error *err)
{
	struct pending p;
	int rc = pending_prepare(&p, id, text, where, err);
	if (rc)
		return rc;
	write_begin(cfg);
	pending_store(cfg, &p, origin);
	write_end(cfg);
	return 0;
}

struct slm_config *slm_config_create(void)
{
	struct slm_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return NULL;
	pthread_mutex_init(&cfg->write_lock, NULL);
	for (int id = 0; id < SLM_CFG__COUNT; id++) {
		struct slm_error err = {0};
		if (set_by_id(cfg, id, key_table[id].def, "", "default",
			      &err)) {
			/* A bad default is a bug in config_keys.h. */
			SLM_ASSERT(err.code == SLM_ENOMEM);
			slm_config_destroy(cfg);
			return NULL;
		}
	}
	return cfg;
}

void slm_config_destroy(struct slm_config *cfg)
{
	if (!cfg)
		return;
	for (int id = 0; id < SLM_CFG__COUNT; id++)
		free(cfg->slot[id].s);
	while (cfg->owned) {
		struct owned_str *o = cfg->owned;
		cfg->owned = o->next;
		free(o->s);
		free(o);
	}
	pthread_mutex_destroy(&cfg->write_lock);
	free(cfg);
}

/* List the known keys of a section, for "unknown key" messages. */
static void known_keys(const char *section, char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int id = 0; id < SLM_CFG__COUNT; id++) {
		if (strcmp(key_table[id].section, section) != 0)
			continue;
		int n = snprintf(buf + used, size - used, "%s%s",
				 used ? ", " : "", key_table[id].name);
		if (n < 0 || (size_t)n >= size - used)
			break;
		used += (size_t)n;
	}
}

/*
 * inih's handler does not receive the line number, so the reader counts
 * the lines it hands out; the handler runs for the last line read.
 */
struct ini_state {
	struct slm_config *cfg;
	const char *name;
	struct slm_error *err;
	int line;	  /* of the current handler call */
	const char *text; /* the source: text ... */
	FILE *file;	  /* ... or a file */
};

static int ini_handler_fn(void *user, const char *section, const char *name,
			  const char *value)
{
	struct ini_state *st = user;
	char where[ORIGIN_MAX + 8];
	snprintf(where, sizeof(where), "%s:%d: ", st->name, st->line);
	if (!section || !*section)
		return slm_error_set(st->err, SLM_ECONFIG,
				     "%skey '%s' outside of a [section]", where,
				     name) == 0;
	int id = find_key(section, strlen(section), name);
	if (id < 0) {
		char known[512];
		known_keys(section, known, sizeof(known));
		if (!*known)
			slm_error_set(st->err, SLM_ECONFIG,
				      "%sunknown section [%s] (key '%s')",
				      where, section, name);
		else
			slm_error_set(
				st->err, SLM_ECONFIG,
				"%sunknown key '%s.%s' (keys of [%s]: %s)",
				where, section, name, section, known);
		return 0;
	}
	char text[ORIGIN_MAX];
	snprintf(text, sizeof(text), "%s:%d", st->name, st->line);
	const char *origin = own_text(st->cfg, text);
	if (!origin)
		return slm_error_set(st->err, SLM_ENOMEM, "%sout of memory",
				     where) == 0;
	return set_by_id(st->cfg, id, value, where, origin, st->err) == 0;
}

static char *reader_fn(char *str, int num, void *stream)
{
	struct ini_state *st = stream;
	char *out;
	if (st->file) {
		out = fgets(str, num, st->file);
	} else {
		if (!*st->text)
			return NULL;
		const char *nl = strchr(st->text, '\n');
		size_t len =
			nl ? (size_t)(nl - st->text) + 1 : strlen(st->text);
		if (len > (size_t)num - 1)
			len = (size_t)num - 1;
		memcpy(str, st->text, len);
		str[len] = '\0';
		st->text += len;
		out = str;
	}
	if (out)
		st->line++;
	return out;
}

static int load_stream(struct ini_state *st)
{
	int rc = ini_parse_stream(reader_fn, st, ini_handler_fn, st);
	if (rc == 0)
		return 0;
	if (rc > 0 && (!st->err || st->err->code == 0))
		/* A syntax error: inih never called the handler. */
		return slm_error_set(st->err, SLM_ECONFIG,
				     "%s:%d: syntax error (expected "
				     "[section] or key = value)",
				     st->name, rc);
	if (rc < 0)
		return slm_error_set(st->err, SLM_ENOMEM, "%s: out of memory",
				     st->name);
	return st->err ? st->err->code : SLM_ECONFIG;
}

int slm_config_load_file(struct slm_config *cfg, const char *path,
			 struct slm_error *err)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return slm_error_errno(err, SLM_ECONFIG, errno,
				       "cannot open config file %s", path);
	struct ini_state st = {.cfg = cfg, .name = path, .err = err, .file = f};
	int rc = load_stream(&st);
	fclose(f);
	return rc;
}

int slm_config_load_string(struct slm_config *cfg, const char *text,
			   const char *name, struct slm_error *err)
{
	struct ini_state st = {
		.cfg = cfg, .name = name, .err = err, .text = text};
	return load_stream(&st);
}

static int lookup_dotted(const char *dotted_key, const char *where,
			 struct slm_error *err)
{
	int id = slm_config_find(dotted_key);
	if (id >= 0)
		return id;
	const char *dot = strchr(dotted_key, '.');
	if (!dot)
		return slm_error_set(err, SLM_ECONFIG,
				     "%skey '%s' must be written section.key",
				     where, dotted_key);
	char section[64];
	snprintf(section, sizeof(section), "%.*s", (int)(dot - dotted_key),
		 dotted_key);
	char known[512];
	known_keys(section, known, sizeof(known));
	if (!*known)
		return slm_error_set(err, SLM_ECONFIG,
				     "%sunknown key '%s' (no section [%s])",
				     where, dotted_key, section);
	return slm_error_set(err, SLM_ECONFIG,
			     "%sunknown key '%s' (keys of [%s]: %s)", where,
			     dotted_key, section, known);
}

int slm_config_set(struct slm_config *cfg, const char *dotted_key,
		   const char *value, struct slm_error *err)
{
	int id = lookup_dotted(dotted_key, "--set: ", err);
	if (id < 0)
		return id;
	return set_by_id(cfg, id, value, "--set: ", "--set", err);
}

int slm_config_set_arg(struct slm_config *cfg, const char *assignment,
		       struct slm_error *err)
{
	const char *eq = strchr(assignment, '=');
	if (!eq)
		return slm_error_set(err, SLM_ECONFIG,
				     "--set: '%s' is not section.key=value",
				     assignment);
	char key[128];
	if ((size_t)(eq - assignment) >= sizeof(key))
		return slm_error_set(err, SLM_ECONFIG,
				     "--set: key in '%s' is too long",
				     assignment);
	snprintf(key, sizeof(key), "%.*s", (int)(eq - assignment), assignment);
	return slm_config_set(cfg, key, eq + 1, err);
}

int slm_config_set_runtime(struct slm_config *cfg, const char *dotted_key,
			   const char *value, struct slm_error *err)
{
	return slm_config_set_runtime_many(cfg, 1, &dotted_key, &value, NULL,
					   err);
}

int slm_config_check(const char *dotted_key, const char *value,
		     bool runtime_only, struct slm_error *err)
{
	int id = lookup_dotted(dotted_key, "", err);
	if (id < 0)
		return id;
	if (runtime_only && !key_table[id].runtime)
		return slm_error_set(err, SLM_ESTATE,
				     "key '%s' cannot change while running "
				     "(restart slmd to change it)",
				     dotted_key);
	struct pending p;
	int rc = pending_prepare(&p, id, value, "", err);
	if (rc == 0)
		pending_free(&p);
	return rc;
}

int slm_config_set_runtime_many(struct slm_config *cfg, int n,
				const char *const *keys,
				const char *const *values, const char *origin,
				struct slm_error *err)
{
	if (n <= 0)
		return 0;
	struct pending *p = calloc((size_t)n, sizeof(*p));
	if (!p)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	int rc = 0, ready = 0;
	for (; ready < n; ready++) {
		int id = lookup_dotted(keys[ready], "", err);
		if (id < 0) {
			rc = id;
			break;
		}
		if (!key_table[id].runtime) {
			rc = slm_error_set(err, SLM_ESTATE,
					   "key '%s' cannot change while "
					   "running (restart slmd to change "
					   "it)",
					   keys[ready]);
			break;
		}
		for (int j = 0; j < ready && rc == 0; j++)
			if (p[j].id == id)
				rc = slm_error_set(err, SLM_EINVAL,
						   "key '%s' is given twice",
						   keys[ready]);
		if (rc)
			break;
		rc = pending_prepare(&p[ready], id, values[ready], "", err);
		if (rc)
			break;
	}
	const char *own = "runtime";
	if (rc == 0 && origin) {
		own = own_text(cfg, origin);
		if (!own)
			rc = slm_error_set(err, SLM_ENOMEM, "out of memory");
	}
	if (rc == 0) {
		/* Every value is valid and allocated: store them all as one
		 * change, so a reader sees all or none of them. */
		write_begin(cfg);
		for (int j = 0; j < n; j++)
			pending_store(cfg, &p[j], own);
		write_end(cfg);
	}
	for (int j = 0; j < ready; j++)
		pending_free(&p[j]);
	free(p);
	return rc;
}

unsigned slm_config_read_begin(const struct slm_config *cfg)
{
	unsigned seq;
	while ((seq = __atomic_load_n(&cfg->seq, __ATOMIC_ACQUIRE)) & 1)
		__builtin_ia32_pause();
	return seq;
}

bool slm_config_read_retry(const struct slm_config *cfg, unsigned seq)
{
	/* Orders the value loads before the second look at seq. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return __atomic_load_n(&cfg->seq, __ATOMIC_RELAXED) != seq;
}

static const struct cfg_slot *slot_of(const struct slm_config *cfg,
				      enum slm_cfg_id id,
				      enum slm_cfg_type type)
{
	SLM_ASSERT((unsigned)id < SLM_CFG__COUNT);
	SLM_ASSERT(key_table[id].type == type);
	return &cfg->slot[id];
}

bool slm_cfg_bool(const struct slm_config *cfg, enum slm_cfg_id id)
{
	return __atomic_load_n(&slot_of(cfg, id, SLM_CFG_TYPE_BOOL)->i,
			       __ATOMIC_RELAXED) != 0;
}

int64_t slm_cfg_int(const struct slm_config *cfg, enum slm_cfg_id id)
{
	return __atomic_load_n(&slot_of(cfg, id, SLM_CFG_TYPE_INT)->i,
			       __ATOMIC_RELAXED);
}

uint64_t slm_cfg_size(const struct slm_config *cfg, enum slm_cfg_id id)
{
	return (uint64_t)__atomic_load_n(
		&slot_of(cfg, id, SLM_CFG_TYPE_SIZE)->i, __ATOMIC_RELAXED);
}

double slm_cfg_double(const struct slm_config *cfg, enum slm_cfg_id id)
{
	double d;
	__atomic_load(&slot_of(cfg, id, SLM_CFG_TYPE_DOUBLE)->d, &d,
		      __ATOMIC_RELAXED);
	return d;
}

const char *slm_cfg_str(const struct slm_config *cfg, enum slm_cfg_id id)
{
	return __atomic_load_n(&slot_of(cfg, id, SLM_CFG_TYPE_STRING)->s,
			       __ATOMIC_ACQUIRE);
}

int slm_cfg_enum(const struct slm_config *cfg, enum slm_cfg_id id)
{
	return (int)__atomic_load_n(&slot_of(cfg, id, SLM_CFG_TYPE_ENUM)->i,
				    __ATOMIC_RELAXED);
}

const char *slm_cfg_enum_name(const struct slm_config *cfg, enum slm_cfg_id id)
{
	/* Names are static: find the n-th choice without copying. */
	static __thread char name[64];
	choice_name(key_table[id].choices, slm_cfg_enum(cfg, id), name,
		    sizeof(name));
	return name;
}

int slm_config_format(const struct slm_config *cfg, enum slm_cfg_id id,
		      char *buf, size_t size)
{
	const struct slm_cfg_key *k = slm_config_key(id);
	switch (k->type) {
	case SLM_CFG_TYPE_BOOL:
		return snprintf(buf, size, "%s",
				slm_cfg_bool(cfg, id) ? "true" : "false");
	case SLM_CFG_TYPE_INT:
		return snprintf(buf, size, "%lld",
				(long long)slm_cfg_int(cfg, id));
	case SLM_CFG_TYPE_SIZE:
		return snprintf(buf, size, "%llu",
				(unsigned long long)slm_cfg_size(cfg, id));
	case SLM_CFG_TYPE_DOUBLE:
		return snprintf(buf, size, "%.17g", slm_cfg_double(cfg, id));
	case SLM_CFG_TYPE_STRING:
		return snprintf(buf, size, "%s", slm_cfg_str(cfg, id));
	case SLM_CFG_TYPE_ENUM: {
		char name[64];
		choice_name(k->choices, slm_cfg_enum(cfg, id), name,
			    sizeof(name));
		return snprintf(buf, size, "%s", name);
	}
	}
	return snprintf(buf, size, "?");
}

const char *slm_config_origin(const struct slm_config *cfg, enum slm_cfg_id id)
{
	SLM_ASSERT((unsigned)id < SLM_CFG__COUNT);
	return __atomic_load_n(&cfg->slot[id].origin, __ATOMIC_ACQUIRE);
}

/* Write text as "; " comment lines of at most 78 columns: inih reads
 * lines of at most 200 characters, and the dump must load back. */
static void dump_comment(FILE *out, const char *text)
{
	const size_t width = 76;
	while (*text) {
		size_t len = strlen(text);
		size_t cut = len;
		if (len > width) {
			cut = width;
			while (cut > 0 && text[cut] != ' ')
				cut--;
			if (cut == 0)
				cut = width;
		}
		fprintf(out, "; %.*s\n", (int)cut, text);
		text += cut;
		while (*text == ' ')
			text++;
	}
}

int slm_config_dump(const struct slm_config *cfg, FILE *out)
{
	const char *section = NULL;
	for (int id = 0; id < SLM_CFG__COUNT; id++) {
		const struct slm_cfg_key *k = &key_table[id];
		if (!section || strcmp(section, k->section) != 0) {
			fprintf(out, "%s[%s]\n", section ? "\n" : "",
				k->section);
			section = k->section;
		}
		char allowed[192], value[1024];
		describe_allowed(k, allowed, sizeof(allowed));
		slm_config_format(cfg, (enum slm_cfg_id)id, value,
				  sizeof(value));
		dump_comment(out, k->help);
		char facts[512];
		snprintf(facts, sizeof(facts),
			 "allowed: %s; default: %s; %s; from %s", allowed,
			 k->def,
			 k->runtime ? "runtime-tunable" : "needs restart",
			 slm_config_origin(cfg, (enum slm_cfg_id)id));
		dump_comment(out, facts);
		fprintf(out, "%s = %s\n", k->name, value);
	}
	return ferror(out) ? SLM_EIO : 0;
}

int slm_config_args_add_set(struct slm_config_args *args, const char *set,
			    struct slm_error *err)
{
	if (args->n_sets >= SLM_CONFIG_MAX_SETS)
		return slm_error_set(err, SLM_ECONFIG,
				     "too many --set options (at most %d)",
				     SLM_CONFIG_MAX_SETS);
	args->sets[args->n_sets++] = set;
	return 0;
}

int slm_config_apply_args(struct slm_config *cfg,
			  const struct slm_config_args *args,
			  struct slm_error *err)
{
	if (args->file) {
		int rc = slm_config_load_file(cfg, args->file, err);
		if (rc)
			return rc;
	}
	for (int i = 0; i < args->n_sets; i++) {
		int rc = slm_config_set_arg(cfg, args->sets[i], err);
		if (rc)
			return rc;
	}
	return 0;
}

static const char *type_name(enum slm_cfg_type type)
{
	static const char *const names[] = {"bool",   "int",	"size",
					    "number", "string", "enum"};
	return names[type];
}

const char *slm_config_type_name(enum slm_cfg_type type)
{
	return (unsigned)type <= SLM_CFG_TYPE_ENUM ? type_name(type) : "?";
}

int slm_config_describe_allowed(enum slm_cfg_id id, char *buf, size_t size)
{
	describe_allowed(slm_config_key(id), buf, size);
	return (int)strlen(buf);
}

int slm_config_doc_markdown(FILE *out)
{
	const char *section = NULL;
	for (int id = 0; id < SLM_CFG__COUNT; id++) {
		const struct slm_cfg_key *k = &key_table[id];
		if (!section || strcmp(section, k->section) != 0) {
			fprintf(out,
				"%s### [%s]\n\n| key | type | default | "
				"allowed | "
				"changes | meaning "
				"|\n|---|---|---|---|---|---|\n",
				section ? "\n" : "", k->section);
			section = k->section;
		}
		char allowed[192];
		describe_allowed(k, allowed, sizeof(allowed));
		/* '|' would end a Markdown cell: list choices with ", ". */
		fprintf(out, "| `%s.%s` | %s | %s%s%s | ", k->section, k->name,
			type_name(k->type), *k->def ? "`" : "",
			*k->def ? k->def : "(empty)", *k->def ? "`" : "");
		for (const char *c = allowed; *c; c++)
			fputs(*c == '|' ? ", " : (char[]){*c, 0}, out);
		fprintf(out, " | %s | %s |\n",
			k->runtime ? "runtime" : "restart", k->help);
	}
	return ferror(out) ? SLM_EIO : 0;
}
