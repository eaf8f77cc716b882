#include "engine/gguf.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/dtype.h"

/* ---- shared ------------------------------------------------------------ */

static const uint8_t scalar_size[GGUF_TYPE__COUNT] = {
	[GGUF_TYPE_UINT8] = 1,	 [GGUF_TYPE_INT8] = 1,
	[GGUF_TYPE_UINT16] = 2,	 [GGUF_TYPE_INT16] = 2,
	[GGUF_TYPE_UINT32] = 4,	 [GGUF_TYPE_INT32] = 4,
	[GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1,
	[GGUF_TYPE_UINT64] = 8,	 [GGUF_TYPE_INT64] = 8,
	[GGUF_TYPE_FLOAT64] = 8,
};

const char *gguf_type_name(uint32_t type)
{
	static const char *const names[GGUF_TYPE__COUNT] = {
		"u8",	"i8",	  "u16",   "i16", "u32", "i32", "f32",
		"bool", "string", "array", "u64", "i64", "f64"};
	return type < GGUF_TYPE__COUNT ? names[type] : "?";
}

static bool is_scalar_numeric(uint32_t type)
{
	return type < GGUF_TYPE__COUNT && scalar_size[type] != 0;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

/* Little-endian loads from unaligned memory. */
static uint16_t ld16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}
static uint32_t ld32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}
static uint64_t ld64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* ---- arena for names and strings ---------------------------------------- */

struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	char data[];
};

struct arena {
	struct arena_block *head;
};

static char *arena_strndup(struct arena *a, const uint8_t *src, uint64_t len)
{
	if (len > SIZE_MAX / 2)
		return NULL;
	size_t need = (size_t)len + 1;
	struct arena_block *b = a->head;
	if (!b || b->cap - b->used < need) {
		/* Blocks grow from 16 KiB to 1 MiB: a small file costs one
		 * small allocation, a big vocabulary few large ones. */
		size_t cap = b ? SLM_MIN(2 * b->cap, (size_t)1 << 20)
			       : (size_t)16 << 10;
		if (cap < need)
			cap = need;
		b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->next = a->head;
		b->used = 0;
		b->cap = cap;
		a->head = b;
	}
	char *s = b->data + b->used;
	memcpy(s, src, (size_t)len);
	s[len] = '\0';
	b->used += need;
	return s;
}

static void arena_free(struct arena *a)
{
	while (a->head) {
		struct arena_block *b = a->head;
		a->head = b->next;
		free(b);
	}
}

/* ---- name index --------------------------------------------------------- */

/*
 * Keys and tensor names are looked up by hashing (open addressing, linear
 * probing, at most half full), so checking for duplicates while parsing and
 * finding a tensor stay linear in the file's size even for files with
 * hundreds of thousands of entries (a quadratic scan was a way to make a
 * small hostile file take minutes).
 */
struct name_slot {
	const char *name; /* NULL: empty */
	uint64_t index;
};

struct name_index {
	struct name_slot *slot;
	uint64_t mask;
};

static uint64_t hash_name(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static int name_index_init(struct name_index *ix, uint64_t n)
{
	uint64_t cap = 16;
	while (cap < 2 * n) {
		if (cap > SIZE_MAX / 2 / sizeof(*ix->slot))
			return SLM_ENOMEM;
		cap *= 2;
	}
	ix->slot = calloc((size_t)cap, sizeof(*ix->slot));
	if (!ix->slot)
		return SLM_ENOMEM;
	ix->mask = cap - 1;
	return 0;
}

static void name_index_free(struct name_index *ix)
{
	free(ix->slot);
	ix->slot = NULL;
}

/* Insert name -> index; if the name is there already, return false and
 * its index in *existing. */
static bool name_index_add(struct name_index *ix, const char *name,
			   uint64_t index, uint64_t *existing)
{
	for (uint64_t i = hash_name(name) & ix->mask;; i = (i + 1) & ix->mask) {
		struct name_slot *s = &ix->slot[i];
		if (!s->name) {
			s->name = name;
			s->index = index;
			return true;
		}
		if (!strcmp(s->name, name)) {
			*existing = s->index;
			return false;
		}
	}
}

/* Index of name, or -1. */
static int64_t name_index_find(const struct name_index *ix, const char *name)
{
	if (!ix->slot)
		return -1;
	for (uint64_t i = hash_name(name) & ix->mask;; i = (i + 1) & ix->mask) {
		const struct name_slot *s = &ix->slot[i];
		if (!s->name)
			return -1;
		if (!strcmp(s->name, name))
			return (int64_t)s->index;
	}
}

/* ---- reader ------------------------------------------------------------- */

struct kv {
	const char *key;
	uint32_t type;
	uint64_t value_offset; /* file offset of the value (after the type) */
	uint64_t value_len;    /* bytes of the value in the file */
	union {
		uint64_t u;
		int64_t i;
		double d;
	} num;
	const char *str;
	uint64_t str_len;
	struct gguf_array arr;
	const char **arr_strings; /* owned pointer tables of string arrays */
	uint64_t *arr_lens;
};

struct gguf_file {
	char *path;
	const uint8_t *base;
	uint64_t size;
	bool mapped;
	bool from_file; /* opened by path: dev and ino say which file */
	dev_t dev;
	ino_t ino;
	uint32_t version;
	uint32_t alignment;
	uint64_t data_offset;
	uint64_t n_kv;
	struct kv *kv;
	uint64_t n_tensors;
	struct gguf_tensor *tensors;
	struct name_index key_index;	/* filled while parsing */
	struct name_index tensor_index; /* filled while parsing */
	struct arena arena;
};

/* A position in the file being parsed; errors carry its offset. */
struct cursor {
	struct gguf_file *f;
	uint64_t pos;
	struct slm_error *err;
};

#define CUR_ERR(c, at, ...) cursor_error((c), (at), __VA_ARGS__)

SLM_PRINTF(3, 4)
static int cursor_error(struct cursor *c, uint64_t at, const char *fmt, ...)
{
	char what[SLM_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return slm_error_set(c->err, SLM_EFORMAT, "%s: offset %llu: %s",
			     c->f->path, (unsigned long long)at, what);
}

static uint64_t remaining(const struct cursor *c)
{
	return c->f->size - c->pos;
}

static int need(struct cursor *c, uint64_t n, const char *field)
{
	if (n > remaining(c))
		return CUR_ERR(c, c->pos,
			       "%s: needs %llu bytes but the file ends %llu "
			       "bytes later (size %llu)",
			       field, (unsigned long long)n,
			       (unsigned long long)remaining(c),
			       (unsigned long long)c->f->size);
	return 0;
}

static int read_u32(struct cursor *c, uint32_t *v, const char *field)
{
	int rc = need(c, 4, field);
	if (rc)
		return rc;
	*v = ld32(c->f->base + c->pos);
	c->pos += 4;
	return 0;
}

static int read_u64(struct cursor *c, uint64_t *v, const char *field)
{
	int rc = need(c, 8, field);
	if (rc)
		return rc;
	*v = ld64(c->f->base + c->pos);
	c->pos += 8;
	return 0;
}

/* A string: u64 length, then bytes; copied NUL-terminated into the arena. */
static int read_string(struct cursor *c, const char **out, uint64_t *len_out,
		       const char *field)
{
	uint64_t at = c->pos, len;
	int rc = read_u64(c, &len, field);
	if (rc)
		return rc;
	if (len > remaining(c))
		return CUR_ERR(c, at,
			       "%s: string length %llu runs past the end of "
			       "the file (%llu bytes left)",
			       field, (unsigned long long)len,
			       (unsigned long long)remaining(c));
	char *s = arena_strndup(&c->f->arena, c->f->base + c->pos, len);
	if (!s)
		return slm_error_set(c->err, SLM_ENOMEM, "%s: out of memory",
				     c->f->path);
	c->pos += len;
	*out = s;
	if (len_out)
		*len_out = len;
	return 0;
}

static int read_array(struct cursor *c, struct kv *kv, const char *field)
{
	uint64_t at = c->pos;
	uint32_t type;
	uint64_t n;
	int rc = read_u32(c, &type, field);
	if (!rc)
		rc = read_u64(c, &n, field);
	if (rc)
		return rc;
	kv->arr.type = type;
	kv->arr.n = n;
	if (type == GGUF_TYPE_ARRAY)
		return CUR_ERR(c, at, "%s: arrays of arrays are not supported",
			       field);
	if (type == GGUF_TYPE_STRING) {
		/* Each string takes at least its 8-byte length. */
		if (n > remaining(c) / 8)
			return CUR_ERR(
				c, at,
				"%s: %llu strings cannot fit in the %llu "
				"bytes left",
				field, (unsigned long long)n,
				(unsigned long long)remaining(c));
		kv->arr_strings = malloc((n ? n : 1) * sizeof(char *));
		kv->arr_lens = malloc((n ? n : 1) * sizeof(uint64_t));
		if (!kv->arr_strings || !kv->arr_lens)
			return slm_error_set(c->err, SLM_ENOMEM,
					     "%s: out of memory", c->f->path);
		for (uint64_t i = 0; i < n; i++) {
			rc = read_string(c, &kv->arr_strings[i],
					 &kv->arr_lens[i], field);
			if (rc)
				return rc;
		}
		kv->arr.strings = kv->arr_strings;
		kv->arr.string_lens = kv->arr_lens;
		return 0;
	}
	if (!is_scalar_numeric(type))
		return CUR_ERR(c, at, "%s: unknown array element type %u",
			       field, type);
	uint64_t bytes;
	if (__builtin_mul_overflow(n, (uint64_t)scalar_size[type], &bytes) ||
	    bytes > remaining(c))
		return CUR_ERR(c, at,
			       "%s: array of %llu %s runs past the end of the "
			       "file (%llu bytes left)",
			       field, (unsigned long long)n,
			       gguf_type_name(type),
			       (unsigned long long)remaining(c));
	kv->arr.data = c->f->base + c->pos;
	c->pos += bytes;
	return 0;
}

static int read_value(struct cursor *c, struct kv *kv, const char *field)
{
	const uint8_t *p = c->f->base + c->pos;
	uint32_t type = kv->type;
	if (type == GGUF_TYPE_STRING)
		return read_string(c, &kv->str, &kv->str_len, field);
	if (type == GGUF_TYPE_ARRAY)
		return read_array(c, kv, field);
	if (!is_scalar_numeric(type))
		return CUR_ERR(c, c->pos - 4, "%s: unknown value type %u",
			       field, type);
	int rc = need(c, scalar_size[type], field);
	if (rc)
		return rc;
	switch (type) {
	case GGUF_TYPE_UINT8:
		kv->num.u = p[0];
		break;
	case GGUF_TYPE_INT8:
		kv->num.i = (int8_t)p[0];
		break;
	case GGUF_TYPE_UINT16:
		kv->num.u = ld16(p);
		break;
	case GGUF_TYPE_INT16:
		kv->num.i = (int16_t)ld16(p);
		break;
	case GGUF_TYPE_UINT32:
		kv->num.u = ld32(p);
		break;
	case GGUF_TYPE_INT32:
		kv->num.i = (int32_t)ld32(p);
		break;
	case GGUF_TYPE_UINT64:
		kv->num.u = ld64(p);
		break;
	case GGUF_TYPE_INT64:
		kv->num.i = (int64_t)ld64(p);
		break;
	case GGUF_TYPE_FLOAT32: {
		float v;
		memcpy(&v, p, 4);
		kv->num.d = v;
		break;
	}
	case GGUF_TYPE_FLOAT64:
		memcpy(&kv->num.d, p, 8);
		break;
	case GGUF_TYPE_BOOL:
		if (p[0] > 1)
			return CUR_ERR(c, c->pos,
				       "%s: bool value %u is not 0 "
				       "or 1",
				       field, p[0]);
		kv->num.u = p[0];
		break;
	}
	c->pos += scalar_size[type];
	return 0;
}

static int parse_header(struct cursor *c)
{
	struct gguf_file *f = c->f;
	uint32_t magic;
	if (f->size < 4 || (magic = ld32(f->base)) != GGUF_MAGIC) {
		if (f->size < 4)
			return CUR_ERR(c, 0,
				       "file of %llu bytes is too short "
				       "for a GGUF header",
				       (unsigned long long)f->size);
		return CUR_ERR(
			c, 0,
			"magic: expected \"GGUF\", found bytes %02x %02x "
			"%02x %02x: not a GGUF file",
			f->base[0], f->base[1], f->base[2], f->base[3]);
	}
	c->pos = 4;
	int rc = read_u32(c, &f->version, "version");
	if (rc)
		return rc;
	if ((f->version & 0xffff) == 0 && f->version != 0) {
		uint32_t swapped = __builtin_bswap32(f->version);
		return CUR_ERR(c, 4,
			       "version: this is a big-endian GGUF file "
			       "(version %u); only little-endian files are "
			       "supported",
			       swapped);
	}
	if (f->version != 2 && f->version != 3)
		return CUR_ERR(c, 4,
			       "version: GGUF version %u is not supported (2 "
			       "and 3 are)",
			       f->version);
	rc = read_u64(c, &f->n_tensors, "n_tensors");
	if (!rc)
		rc = read_u64(c, &f->n_kv, "n_kv");
	if (rc)
		return rc;
	/* A pair takes at least 12 bytes (key length + type), a tensor info
	 * at least 24: refuse absurd counts before allocating for them. */
	if (f->n_kv > remaining(c) / 12)
		return CUR_ERR(c, 16,
			       "n_kv: %llu metadata pairs cannot fit in the "
			       "%llu bytes left",
			       (unsigned long long)f->n_kv,
			       (unsigned long long)remaining(c));
	if (f->n_tensors > remaining(c) / 24)
		return CUR_ERR(c, 8,
			       "n_tensors: %llu tensors cannot fit in the "
			       "%llu bytes left",
			       (unsigned long long)f->n_tensors,
			       (unsigned long long)remaining(c));
	return 0;
}

static int parse_kvs(struct cursor *c)
{
	struct gguf_file *f = c->f;
	f->kv = calloc(f->n_kv ? f->n_kv : 1, sizeof(*f->kv));
	if (!f->kv || name_index_init(&f->key_index, f->n_kv))
		return slm_error_set(c->err, SLM_ENOMEM, "%s: out of memory",
				     f->path);
	for (uint64_t i = 0; i < f->n_kv; i++) {
		struct kv *kv = &f->kv[i];
		uint64_t at = c->pos;
		char field[96];
		snprintf(field, sizeof(field), "metadata pair %llu key",
			 (unsigned long long)i);
		int rc = read_string(c, &kv->key, NULL, field);
		if (rc)
			return rc;
		char vfield[320];
		snprintf(vfield, sizeof(vfield), "key '%.256s'", kv->key);
		rc = read_u32(c, &kv->type, vfield);
		if (rc)
			return rc;
		kv->value_offset = c->pos;
		rc = read_value(c, kv, vfield);
		if (rc)
			return rc;
		kv->value_len = c->pos - kv->value_offset;
		uint64_t first;
		if (!name_index_add(&f->key_index, kv->key, i, &first))
			return CUR_ERR(c, at,
				       "key '%.256s' appears twice (first as "
				       "metadata pair %llu)",
				       kv->key, (unsigned long long)first);
	}
	return 0;
}

static int parse_alignment(struct cursor *c)
{
	struct gguf_file *f = c->f;
	f->alignment = GGUF_DEFAULT_ALIGNMENT;
	int64_t idx = gguf_find(f, "general.alignment");
	if (idx < 0)
		return 0;
	const struct kv *kv = &f->kv[idx];
	if (kv->type != GGUF_TYPE_UINT32)
		return CUR_ERR(c, kv->value_offset,
			       "key 'general.alignment': type %s, expected u32",
			       gguf_type_name(kv->type));
	uint64_t a = kv->num.u;
	if (a == 0 || (a & (a - 1)) != 0)
		return CUR_ERR(c, kv->value_offset,
			       "key 'general.alignment': %llu is not a power "
			       "of two",
			       (unsigned long long)a);
	f->alignment = (uint32_t)a;
	return 0;
}

static int parse_tensor_info(struct cursor *c, uint64_t i)
{
	struct gguf_file *f = c->f;
	struct gguf_tensor *t = &f->tensors[i];
	uint64_t at = c->pos;
	char field[96];
	snprintf(field, sizeof(field), "tensor %llu name",
		 (unsigned long long)i);
	int rc = read_string(c, &t->name, NULL, field);
	if (rc)
		return rc;
	char tf[320];
	snprintf(tf, sizeof(tf), "tensor '%.256s'", t->name);
	rc = read_u32(c, &t->n_dims, tf);
	if (rc)
		return rc;
	if (t->n_dims > GGUF_MAX_DIMS)
		return CUR_ERR(c, c->pos - 4, "%s: %u dimensions (at most %d)",
			       tf, t->n_dims, GGUF_MAX_DIMS);
	for (int d = 0; d < GGUF_MAX_DIMS; d++)
		t->ne[d] = 1;
	for (uint32_t d = 0; d < t->n_dims; d++) {
		rc = read_u64(c, &t->ne[d], tf);
		if (rc)
			return rc;
		if (t->ne[d] > (uint64_t)INT64_MAX)
			return CUR_ERR(c, c->pos - 8,
				       "%s: dimension %u is %llu (negative as "
				       "int64)",
				       tf, d, (unsigned long long)t->ne[d]);
	}
	rc = read_u32(c, &t->type, tf);
	if (!rc)
		rc = read_u64(c, &t->offset, tf);
	if (rc)
		return rc;
	if (!slm_dtype_known(t->type))
		return CUR_ERR(c, c->pos - 12, "%s: unknown tensor type id %u",
			       tf, t->type);
	uint64_t n = 1;
	for (int d = 0; d < GGUF_MAX_DIMS; d++)
		if (__builtin_mul_overflow(n, t->ne[d], &n) || n > INT64_MAX)
			return CUR_ERR(
				c, at,
				"%s: dimensions [%llu, %llu, %llu, %llu] "
				"overflow the element count",
				tf, (unsigned long long)t->ne[0],
				(unsigned long long)t->ne[1],
				(unsigned long long)t->ne[2],
				(unsigned long long)t->ne[3]);
	t->n_elements = n;
	uint64_t row;
	if (!slm_dtype_row_bytes(t->type, t->ne[0], &row))
		return CUR_ERR(c, at,
			       "%s: row length %llu is not a multiple of the "
			       "%s block size %u",
			       tf, (unsigned long long)t->ne[0],
			       slm_dtype_name(t->type),
			       slm_dtype_block(t->type));
	if (__builtin_mul_overflow(row, t->ne[1], &t->size) ||
	    __builtin_mul_overflow(t->size, t->ne[2], &t->size) ||
	    __builtin_mul_overflow(t->size, t->ne[3], &t->size))
		return CUR_ERR(c, at, "%s: data size overflows", tf);
	uint64_t first;
	if (!name_index_add(&f->tensor_index, t->name, i, &first))
		return CUR_ERR(c, at, "%s appears twice (first as tensor %llu)",
			       tf, (unsigned long long)first);
	return 0;
}

static int cmp_offset(const void *a, const void *b)
{
	const struct gguf_tensor *const *x = a, *const *y = b;
	return (*x)->offset < (*y)->offset ? -1 : (*x)->offset > (*y)->offset;
}

/* Place the data section and check every tensor lies inside it, aligned,
 * without overlapping another. */
static int check_tensor_data(struct cursor *c)
{
	struct gguf_file *f = c->f;
	f->data_offset = align_up(c->pos, f->alignment);
	if (f->n_tensors == 0)
		return 0;
	if (f->data_offset > f->size)
		return CUR_ERR(c, c->pos,
			       "data section would start at %llu, past the end "
			       "of the file (%llu)",
			       (unsigned long long)f->data_offset,
			       (unsigned long long)f->size);
	uint64_t room = f->size - f->data_offset;
	const struct gguf_tensor **order =
		malloc(f->n_tensors * sizeof(*order));
	if (!order)
		return slm_error_set(c->err, SLM_ENOMEM, "%s: out of memory",
				     f->path);
	int rc = 0;
	for (uint64_t i = 0; i < f->n_tensors && !rc; i++) {
		struct gguf_tensor *t = &f->tensors[i];
		order[i] = t;
		t->file_offset = f->data_offset + t->offset;
		if (t->offset % f->alignment)
			rc = CUR_ERR(c, f->data_offset,
				     "tensor '%s': data offset %llu is not a "
				     "multiple of the alignment %u",
				     t->name, (unsigned long long)t->offset,
				     f->alignment);
		else if (t->offset > room || t->size > room - t->offset)
			rc = CUR_ERR(c, f->data_offset,
				     "tensor '%s': data [offset %llu, %llu "
				     "bytes] runs past end of file (%llu)",
				     t->name,
				     (unsigned long long)t->file_offset,
				     (unsigned long long)t->size,
				     (unsigned long long)f->size);
	}
	if (!rc) {
		qsort(order, f->n_tensors, sizeof(*order), cmp_offset);
		for (uint64_t i = 1; i < f->n_tensors && !rc; i++) {
			const struct gguf_tensor *a = order[i - 1],
						 *b = order[i];
			if (a->offset + a->size > b->offset)
				rc = CUR_ERR(
					c, f->data_offset,
					"tensor '%s': data [offset %llu, "
					"%llu bytes] overlaps tensor '%s' "
					"at offset %llu",
					a->name,
					(unsigned long long)a->file_offset,
					(unsigned long long)a->size, b->name,
					(unsigned long long)b->file_offset);
		}
	}
	free(order);
	return rc;
}

static int parse(struct gguf_file *f, struct slm_error *err)
{
	struct cursor c = {.f = f, .pos = 0, .err = err};
	int rc = parse_header(&c);
	if (!rc)
		rc = parse_kvs(&c);
	if (!rc)
		rc = parse_alignment(&c);
	if (rc)
		return rc;
	f->tensors =
		calloc(f->n_tensors ? f->n_tensors : 1, sizeof(*f->tensors));
	if (!f->tensors || name_index_init(&f->tensor_index, f->n_tensors))
		return slm_error_set(err, SLM_ENOMEM, "%s: out of memory",
				     f->path);
	for (uint64_t i = 0; i < f->n_tensors && !rc; i++)
		rc = parse_tensor_info(&c, i);
	if (!rc)
		rc = check_tensor_data(&c);
	return rc;
}

static struct gguf_file *file_new(const char *name)
{
	struct gguf_file *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->path = strdup(name);
	if (!f->path) {
		free(f);
		return NULL;
	}
	return f;
}

int gguf_open_buffer(const void *data, size_t size, const char *name,
		     struct gguf_file **out, struct slm_error *err)
{
	*out = NULL;
	struct gguf_file *f = file_new(name);
	if (!f)
		return slm_error_set(err, SLM_ENOMEM, "%s: out of memory",
				     name);
	f->base = data;
	f->size = size;
	int rc = parse(f, err);
	if (rc) {
		gguf_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

int gguf_open(const char *path, struct gguf_file **out, struct slm_error *err)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return slm_error_errno(
			err, errno == ENOENT ? SLM_ENOTFOUND : SLM_EIO, errno,
			"cannot open %s", path);
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return slm_error_errno(err, SLM_EIO, e, "cannot stat %s", path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return slm_error_set(err, SLM_EINVAL,
				     "%s is not a regular file", path);
	}
	struct gguf_file *f = file_new(path);
	if (!f) {
		close(fd);
		return slm_error_set(err, SLM_ENOMEM, "%s: out of memory",
				     path);
	}
	f->size = (uint64_t)st.st_size;
	f->from_file = true;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	if (f->size > 0) {
		void *m = mmap(NULL, f->size, PROT_READ, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED) {
			int e = errno;
			close(fd);
			gguf_close(f);
			return slm_error_errno(err, SLM_EIO, e, "cannot map %s",
					       path);
		}
		f->base = m;
		f->mapped = true;
	} else {
		f->base = (const uint8_t *)"";
	}
	close(fd);
	int rc = parse(f, err);
	if (rc) {
		gguf_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

void gguf_close(struct gguf_file *f)
{
	if (!f)
		return;
	if (f->kv) {
		for (uint64_t i = 0; i < f->n_kv; i++) {
			free(f->kv[i].arr_strings);
			free(f->kv[i].arr_lens);
		}
	}
	free(f->kv);
	free(f->tensors);
	name_index_free(&f->key_index);
	name_index_free(&f->tensor_index);
	arena_free(&f->arena);
	if (f->mapped)
		munmap((void *)f->base, f->size);
	free(f->path);
	free(f);
}

const char *gguf_path(const struct gguf_file *f)
{
	return f->path;
}
uint32_t gguf_version(const struct gguf_file *f)
{
	return f->version;
}
uint32_t gguf_alignment(const struct gguf_file *f)
{
	return f->alignment;
}
uint64_t gguf_file_size(const struct gguf_file *f)
{
	return f->size;
}
uint64_t gguf_data_offset(const struct gguf_file *f)
{
	return f->data_offset;
}
const uint8_t *gguf_mapping(const struct gguf_file *f)
{
	return f->base;
}

bool gguf_from_file(const struct gguf_file *f)
{
	return f->from_file;
}

int gguf_check_same_file(const struct gguf_file *f, int fd,
			 struct slm_error *err)
{
	if (!f->from_file)
		return slm_error_set(err, SLM_EINVAL,
				     "%s was opened from memory, not a file",
				     f->path);
	struct stat st;
	if (fstat(fd, &st) != 0)
		return slm_error_errno(err, SLM_EIO, errno, "cannot stat %s",
				       f->path);
	if (st.st_dev != f->dev || st.st_ino != f->ino)
		return slm_error_set(err, SLM_EIO,
				     "%s was replaced by another file since "
				     "it was opened",
				     f->path);
	if ((uint64_t)st.st_size != f->size)
		return slm_error_set(err, SLM_EIO,
				     "%s changed size since it was opened "
				     "(%llu bytes then, %llu now)",
				     f->path, (unsigned long long)f->size,
				     (unsigned long long)st.st_size);
	return 0;
}
uint64_t gguf_n_kv(const struct gguf_file *f)
{
	return f->n_kv;
}

const char *gguf_kv_key(const struct gguf_file *f, uint64_t index)
{
	return index < f->n_kv ? f->kv[index].key : NULL;
}

uint32_t gguf_kv_type(const struct gguf_file *f, uint64_t index)
{
	return index < f->n_kv ? f->kv[index].type : GGUF_TYPE__COUNT;
}

int64_t gguf_find(const struct gguf_file *f, const char *key)
{
	return name_index_find(&f->key_index, key);
}

static int wrong_type(const struct gguf_file *f, const struct kv *kv,
		      const char *expected, struct slm_error *err)
{
	return slm_error_set(err, SLM_EFORMAT,
			     "%s: key '%s' holds a %s, expected %s", f->path,
			     kv->key, gguf_type_name(kv->type), expected);
}

static const struct kv *lookup(const struct gguf_file *f, const char *key)
{
	int64_t i = gguf_find(f, key);
	return i < 0 ? NULL : &f->kv[i];
}

static bool is_signed(uint32_t type)
{
	return type == GGUF_TYPE_INT8 || type == GGUF_TYPE_INT16 ||
	       type == GGUF_TYPE_INT32 || type == GGUF_TYPE_INT64;
}

static bool is_unsigned(uint32_t type)
{
	return type == GGUF_TYPE_UINT8 || type == GGUF_TYPE_UINT16 ||
	       type == GGUF_TYPE_UINT32 || type == GGUF_TYPE_UINT64;
}

int gguf_get_int(const struct gguf_file *f, const char *key, int64_t *out,
		 struct slm_error *err)
{
	const struct kv *kv = lookup(f, key);
	if (!kv)
		return SLM_ENOTFOUND;
	if (is_signed(kv->type)) {
		*out = kv->num.i;
		return 0;
	}
	if (is_unsigned(kv->type)) {
		if (kv->num.u > INT64_MAX)
			return slm_error_set(err, SLM_EFORMAT,
					     "%s: key '%s' value %llu is too "
					     "large",
					     f->path, key,
					     (unsigned long long)kv->num.u);
		*out = (int64_t)kv->num.u;
		return 0;
	}
	return wrong_type(f, kv, "an integer", err);
}

int gguf_get_uint(const struct gguf_file *f, const char *key, uint64_t *out,
		  struct slm_error *err)
{
	const struct kv *kv = lookup(f, key);
	if (!kv)
		return SLM_ENOTFOUND;
	if (is_unsigned(kv->type)) {
		*out = kv->num.u;
		return 0;
	}
	if (is_signed(kv->type)) {
		if (kv->num.i < 0)
			return slm_error_set(err, SLM_EFORMAT,
					     "%s: key '%s' is negative (%lld)",
					     f->path, key,
					     (long long)kv->num.i);
		*out = (uint64_t)kv->num.i;
		return 0;
	}
	return wrong_type(f, kv, "an unsigned integer", err);
}

int gguf_get_float(const struct gguf_file *f, const char *key, double *out,
		   struct slm_error *err)
{
	const struct kv *kv = lookup(f, key);
	if (!kv)
		return SLM_ENOTFOUND;
	if (kv->type != GGUF_TYPE_FLOAT32 && kv->type != GGUF_TYPE_FLOAT64)
		return wrong_type(f, kv, "a float", err);
	*out = kv->num.d;
	return 0;
}

int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out,
		  struct slm_error *err)
{
	const struct kv *kv = lookup(f, key);
	if (!kv)
		return SLM_ENOTFOUND;
	if (kv->type != GGUF_TYPE_BOOL)
		return wrong_type(f, kv, "a bool", err);
	*out = kv->num.u != 0;
	return 0;
}

int gguf_get_str(const struct gguf_file *f, const char *key, const char **out,
		 struct slm_error *err)
{
	const struct kv *kv = lookup(f, key);
	if (!kv)
		return SLM_ENOTFOUND;
	if (kv->type != GGUF_TYPE_STRING)
		return wrong_type(f, kv, "a string", err);
	*out = kv->str;
	return 0;
}

int gguf_get_arr(const struct gguf_file *f, const char *key,
		 struct gguf_array *out, struct slm_error *err)
{
	const struct kv *kv = lookup(f, key);
	if (!kv)
		return SLM_ENOTFOUND;
	if (kv->type != GGUF_TYPE_ARRAY)
		return wrong_type(f, kv, "an array", err);
	*out = kv->arr;
	return 0;
}

int gguf_kv_scalar(const struct gguf_file *f, uint64_t index, uint64_t *u,
		   int64_t *i, double *d, const char **str, uint64_t *len)
{
	if (index >= f->n_kv)
		return SLM_ENOTFOUND;
	const struct kv *kv = &f->kv[index];
	if (u)
		*u = kv->num.u;
	if (i)
		*i = kv->num.i;
	if (d)
		*d = kv->num.d;
	if (str)
		*str = kv->str;
	if (len)
		*len = kv->str_len;
	return 0;
}

void gguf_kv_arr(const struct gguf_file *f, uint64_t index,
		 struct gguf_array *out)
{
	memset(out, 0, sizeof(*out));
	if (index < f->n_kv && f->kv[index].type == GGUF_TYPE_ARRAY)
		*out = f->kv[index].arr;
}

int64_t gguf_arr_int(const struct gguf_array *a, uint64_t i)
{
	const uint8_t *p = (const uint8_t *)a->data;
	if (!p || i >= a->n)
		return 0;
	switch (a->type) {
	case GGUF_TYPE_UINT8:
	case GGUF_TYPE_BOOL:
		return p[i];
	case GGUF_TYPE_INT8:
		return (int8_t)p[i];
	case GGUF_TYPE_UINT16:
		return ld16(p + 2 * i);
	case GGUF_TYPE_INT16:
		return (int16_t)ld16(p + 2 * i);
	case GGUF_TYPE_UINT32:
		return ld32(p + 4 * i);
	case GGUF_TYPE_INT32:
		return (int32_t)ld32(p + 4 * i);
	case GGUF_TYPE_UINT64:
	case GGUF_TYPE_INT64:
		return (int64_t)ld64(p + 8 * i);
	case GGUF_TYPE_FLOAT32:
	case GGUF_TYPE_FLOAT64: {
		/* Converting NaN or a value out of range is undefined in C:
		 * saturate instead (NaN reads as 0). */
		double v = gguf_arr_float(a, i);
		if (!(v == v))
			return 0;
		if (v >= 9223372036854775807.0)
			return INT64_MAX;
		if (v <= -9223372036854775808.0)
			return INT64_MIN;
		return (int64_t)v;
	}
	}
	return 0;
}

double gguf_arr_float(const struct gguf_array *a, uint64_t i)
{
	const uint8_t *p = (const uint8_t *)a->data;
	if (!p || i >= a->n)
		return 0;
	if (a->type == GGUF_TYPE_FLOAT32) {
		float v;
		memcpy(&v, p + 4 * i, 4);
		return v;
	}
	if (a->type == GGUF_TYPE_FLOAT64) {
		double v;
		memcpy(&v, p + 8 * i, 8);
		return v;
	}
	return (double)gguf_arr_int(a, i);
}

uint64_t gguf_n_tensors(const struct gguf_file *f)
{
	return f->n_tensors;
}

const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *f,
					 uint64_t index)
{
	return index < f->n_tensors ? &f->tensors[index] : NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f,
					   const char *name)
{
	int64_t i = name_index_find(&f->tensor_index, name);
	return i < 0 ? NULL : &f->tensors[i];
}

/* ---- writer ------------------------------------------------------------- */

/* A growable byte buffer. */
struct bytes {
	uint8_t *p;
	size_t len, cap;
};

static int bytes_put(struct bytes *b, const void *src, size_t n)
{
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap - b->len < n) {
			if (cap > SIZE_MAX / 2)
				return SLM_ENOMEM;
			cap *= 2;
		}
		uint8_t *p = realloc(b->p, cap);
		if (!p)
			return SLM_ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
	return 0;
}

static int bytes_u32(struct bytes *b, uint32_t v)
{
	return bytes_put(b, &v, 4);
}

static int bytes_u64(struct bytes *b, uint64_t v)
{
	return bytes_put(b, &v, 8);
}

static int bytes_str(struct bytes *b, const char *s, uint64_t len)
{
	int rc = bytes_u64(b, len);
	return rc ? rc : bytes_put(b, s, (size_t)len);
}

/* A metadata pair: the key and its serialized type + value. */
struct wkv {
	char *key;
	struct bytes value;
};

struct wtensor {
	char *name;
	uint32_t n_dims;
	uint64_t ne[GGUF_MAX_DIMS];
	uint32_t type;
	uint64_t size, offset;
	const void *data;
};

struct gguf_writer {
	struct wkv *kv;
	uint64_t n_kv, cap_kv;
	struct wtensor *t;
	uint64_t n_t, cap_t;
	/* streaming state */
	FILE *out;
	char *path, *tmp_path;
	uint64_t next_tensor, written;
	uint64_t part; /* bytes of tensor next_tensor written so far */
};

struct gguf_writer *gguf_writer_create(void)
{
	return calloc(1, sizeof(struct gguf_writer));
}

void gguf_writer_destroy(struct gguf_writer *w)
{
	if (!w)
		return;
	for (uint64_t i = 0; i < w->n_kv; i++) {
		free(w->kv[i].key);
		free(w->kv[i].value.p);
	}
	for (uint64_t i = 0; i < w->n_t; i++)
		free(w->t[i].name);
	if (w->out) {
		fclose(w->out);
		unlink(w->tmp_path);
	}
	free(w->kv);
	free(w->t);
	free(w->path);
	free(w->tmp_path);
	free(w);
}

void gguf_remove_key(struct gguf_writer *w, const char *key)
{
	for (uint64_t i = 0; i < w->n_kv; i++) {
		if (strcmp(w->kv[i].key, key))
			continue;
		free(w->kv[i].key);
		free(w->kv[i].value.p);
		memmove(&w->kv[i], &w->kv[i + 1],
			(w->n_kv - i - 1) * sizeof(w->kv[0]));
		w->n_kv--;
		return;
	}
}

/* Remove `key`, then append it with a value to be filled by the caller. */
static struct bytes *append_kv(struct gguf_writer *w, const char *key,
			       uint32_t type)
{
	gguf_remove_key(w, key);
	if (w->n_kv == w->cap_kv) {
		uint64_t cap = w->cap_kv ? 2 * w->cap_kv : 16;
		struct wkv *kv = realloc(w->kv, cap * sizeof(*kv));
		if (!kv)
			return NULL;
		w->kv = kv;
		w->cap_kv = cap;
	}
	struct wkv *kv = &w->kv[w->n_kv];
	memset(kv, 0, sizeof(*kv));
	kv->key = strdup(key);
	if (!kv->key || bytes_u32(&kv->value, type)) {
		free(kv->key);
		free(kv->value.p);
		return NULL;
	}
	w->n_kv++;
	return &kv->value;
}

static int set_scalar(struct gguf_writer *w, const char *key, uint32_t type,
		      const void *v)
{
	struct bytes *b = append_kv(w, key, type);
	if (!b || bytes_put(b, v, scalar_size[type]))
		return SLM_ENOMEM;
	return 0;
}

int gguf_set_u8(struct gguf_writer *w, const char *key, uint8_t v)
{
	return set_scalar(w, key, GGUF_TYPE_UINT8, &v);
}
int gguf_set_i8(struct gguf_writer *w, const char *key, int8_t v)
{
	return set_scalar(w, key, GGUF_TYPE_INT8, &v);
}
int gguf_set_u16(struct gguf_writer *w, const char *key, uint16_t v)
{
	return set_scalar(w, key, GGUF_TYPE_UINT16, &v);
}
int gguf_set_i16(struct gguf_writer *w, const char *key, int16_t v)
{
	return set_scalar(w, key, GGUF_TYPE_INT16, &v);
}
int gguf_set_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
	return set_scalar(w, key, GGUF_TYPE_UINT32, &v);
}
int gguf_set_i32(struct gguf_writer *w, const char *key, int32_t v)
{
	return set_scalar(w, key, GGUF_TYPE_INT32, &v);
}
int gguf_set_u64(struct gguf_writer *w, const char *key, uint64_t v)
{
	return set_scalar(w, key, GGUF_TYPE_UINT64, &v);
}
int gguf_set_i64(struct gguf_writer *w, const char *key, int64_t v)
{
	return set_scalar(w, key, GGUF_TYPE_INT64, &v);
}
int gguf_set_f32(struct gguf_writer *w, const char *key, float v)
{
	return set_scalar(w, key, GGUF_TYPE_FLOAT32, &v);
}
int gguf_set_f64(struct gguf_writer *w, const char *key, double v)
{
	return set_scalar(w, key, GGUF_TYPE_FLOAT64, &v);
}
int gguf_set_bool(struct gguf_writer *w, const char *key, bool v)
{
	uint8_t b = v;
	return set_scalar(w, key, GGUF_TYPE_BOOL, &b);
}

int gguf_set_str(struct gguf_writer *w, const char *key, const char *v)
{
	struct bytes *b = append_kv(w, key, GGUF_TYPE_STRING);
	if (!b || bytes_str(b, v, strlen(v)))
		return SLM_ENOMEM;
	return 0;
}

int gguf_set_arr(struct gguf_writer *w, const char *key, uint32_t type,
		 const void *data, uint64_t n)
{
	if (!is_scalar_numeric(type))
		return SLM_EINVAL;
	uint64_t bytes;
	if (__builtin_mul_overflow(n, (uint64_t)scalar_size[type], &bytes) ||
	    bytes > SIZE_MAX)
		return SLM_EOVERFLOW;
	struct bytes *b = append_kv(w, key, GGUF_TYPE_ARRAY);
	if (!b || bytes_u32(b, type) || bytes_u64(b, n) ||
	    bytes_put(b, data, (size_t)bytes))
		return SLM_ENOMEM;
	return 0;
}

int gguf_set_arr_str(struct gguf_writer *w, const char *key,
		     const char *const *strings, uint64_t n)
{
	struct bytes *b = append_kv(w, key, GGUF_TYPE_ARRAY);
	if (!b || bytes_u32(b, GGUF_TYPE_STRING) || bytes_u64(b, n))
		return SLM_ENOMEM;
	for (uint64_t i = 0; i < n; i++)
		if (bytes_str(b, strings[i], strlen(strings[i])))
			return SLM_ENOMEM;
	return 0;
}

int gguf_copy_kv(struct gguf_writer *w, const struct gguf_file *src,
		 uint64_t index)
{
	if (index >= src->n_kv)
		return SLM_ENOTFOUND;
	const struct kv *kv = &src->kv[index];
	struct bytes *b = append_kv(w, kv->key, kv->type);
	/* The value's bytes in the file are already in the written form. */
	if (!b ||
	    bytes_put(b, src->base + kv->value_offset, (size_t)kv->value_len))
		return SLM_ENOMEM;
	return 0;
}

uint64_t gguf_writer_n_kv(const struct gguf_writer *w)
{
	return w->n_kv;
}

const char *gguf_writer_kv_key(const struct gguf_writer *w, uint64_t index)
{
	return index < w->n_kv ? w->kv[index].key : NULL;
}

static uint32_t writer_alignment(const struct gguf_writer *w)
{
	for (uint64_t i = 0; i < w->n_kv; i++) {
		const struct wkv *kv = &w->kv[i];
		if (!strcmp(kv->key, "general.alignment") &&
		    kv->value.len == 8 &&
		    ld32(kv->value.p) == GGUF_TYPE_UINT32) {
			uint32_t a = ld32(kv->value.p + 4);
			if (a && !(a & (a - 1)))
				return a;
		}
	}
	return GGUF_DEFAULT_ALIGNMENT;
}

int gguf_add_tensor(struct gguf_writer *w, const char *name, uint32_t n_dims,
		    const uint64_t *ne, uint32_t type, const void *data,
		    struct slm_error *err)
{
	if (n_dims == 0 || n_dims > GGUF_MAX_DIMS)
		return slm_error_set(err, SLM_EINVAL,
				     "tensor '%s': %u dimensions", name,
				     n_dims);
	uint64_t row, size;
	if (!slm_dtype_row_bytes(type, ne[0], &row))
		return slm_error_set(err, SLM_EINVAL,
				     "tensor '%s': row of %llu is not a "
				     "multiple of the %s block",
				     name, (unsigned long long)ne[0],
				     slm_dtype_name(type));
	size = row;
	for (uint32_t d = 1; d < n_dims; d++)
		if (__builtin_mul_overflow(size, ne[d], &size))
			return slm_error_set(err, SLM_EOVERFLOW,
					     "tensor '%s': size overflows",
					     name);
	if (w->n_t == w->cap_t) {
		uint64_t cap = w->cap_t ? 2 * w->cap_t : 64;
		struct wtensor *t = realloc(w->t, cap * sizeof(*t));
		if (!t)
			return slm_error_set(err, SLM_ENOMEM, "out of memory");
		w->t = t;
		w->cap_t = cap;
	}
	struct wtensor *t = &w->t[w->n_t];
	memset(t, 0, sizeof(*t));
	t->name = strdup(name);
	if (!t->name)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	t->n_dims = n_dims;
	for (int d = 0; d < GGUF_MAX_DIMS; d++)
		t->ne[d] = d < (int)n_dims ? ne[d] : 1;
	t->type = type;
	t->size = size;
	t->data = data;
	w->n_t++;
	return 0;
}

/* Serialize the header: fixed fields, pairs, tensor infos, padding. */
static int build_header(struct gguf_writer *w, struct bytes *h)
{
	uint32_t align = writer_alignment(w);
	uint64_t offset = 0;
	for (uint64_t i = 0; i < w->n_t; i++) {
		w->t[i].offset = offset;
		offset = align_up(offset + w->t[i].size, align);
	}
	int rc = bytes_u32(h, GGUF_MAGIC);
	rc = rc ? rc : bytes_u32(h, 3);
	rc = rc ? rc : bytes_u64(h, w->n_t);
	rc = rc ? rc : bytes_u64(h, w->n_kv);
	for (uint64_t i = 0; i < w->n_kv && !rc; i++) {
		rc = bytes_str(h, w->kv[i].key, strlen(w->kv[i].key));
		rc = rc ? rc
			: bytes_put(h, w->kv[i].value.p, w->kv[i].value.len);
	}
	for (uint64_t i = 0; i < w->n_t && !rc; i++) {
		const struct wtensor *t = &w->t[i];
		rc = bytes_str(h, t->name, strlen(t->name));
		rc = rc ? rc : bytes_u32(h, t->n_dims);
		for (uint32_t d = 0; d < t->n_dims && !rc; d++)
			rc = bytes_u64(h, t->ne[d]);
		rc = rc ? rc : bytes_u32(h, t->type);
		rc = rc ? rc : bytes_u64(h, t->offset);
	}
	/* Files without tensors end with the metadata (as gguf-py writes
	 * them); otherwise the data section starts aligned. */
	static const uint8_t zeros[256];
	size_t pad = w->n_t ? (size_t)(align_up(h->len, align) - h->len) : 0;
	while (pad && !rc) {
		size_t n = pad < sizeof(zeros) ? pad : sizeof(zeros);
		rc = bytes_put(h, zeros, n);
		pad -= n;
	}
	return rc;
}

int gguf_writer_header_bytes(struct gguf_writer *w, uint8_t **out, size_t *size)
{
	struct bytes h = {0};
	int rc = build_header(w, &h);
	if (rc) {
		free(h.p);
		return rc;
	}
	*out = h.p;
	*size = h.len;
	return 0;
}

static int write_all(struct gguf_writer *w, const void *p, uint64_t n,
		     struct slm_error *err)
{
	if (n && fwrite(p, 1, (size_t)n, w->out) != n)
		return slm_error_errno(err, SLM_EIO, errno, "write %s",
				       w->tmp_path);
	w->written += n;
	return 0;
}

int gguf_writer_begin(struct gguf_writer *w, const char *path,
		      struct slm_error *err)
{
	if (w->out)
		return slm_error_set(err, SLM_ESTATE, "writer already begun");
	size_t len = strlen(path);
	w->path = strdup(path);
	w->tmp_path = malloc(len + 5);
	if (!w->path || !w->tmp_path)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	snprintf(w->tmp_path, len + 5, "%s.tmp", path);
	struct bytes h = {0};
	if (build_header(w, &h)) {
		free(h.p);
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	}
	w->out = fopen(w->tmp_path, "wb");
	if (!w->out) {
		free(h.p);
		return slm_error_errno(err, SLM_EIO, errno, "cannot create %s",
				       w->tmp_path);
	}
	w->next_tensor = 0;
	w->written = 0;
	w->part = 0;
	int rc = write_all(w, h.p, h.len, err);
	free(h.p);
	return rc;
}

int gguf_writer_write_data(struct gguf_writer *w, uint64_t index,
			   const void *data, uint64_t size,
			   struct slm_error *err)
{
	if (!w->out || index != w->next_tensor || index >= w->n_t || w->part)
		return slm_error_set(err, SLM_ESTATE,
				     "tensor data written out of order");
	const struct wtensor *t = &w->t[index];
	if (size != t->size)
		return slm_error_set(err, SLM_EINVAL,
				     "tensor '%s': %llu bytes given, %llu "
				     "expected",
				     t->name, (unsigned long long)size,
				     (unsigned long long)t->size);
	int rc = write_all(w, data, size, err);
	static const uint8_t zeros[256];
	uint64_t pad = align_up(t->size, writer_alignment(w)) - t->size;
	if (!rc)
		rc = write_all(w, zeros, pad, err);
	w->next_tensor++;
	return rc;
}

int gguf_writer_write_part(struct gguf_writer *w, uint64_t index,
			   const void *data, uint64_t size,
			   struct slm_error *err)
{
	if (!w->out || index != w->next_tensor || index >= w->n_t)
		return slm_error_set(err, SLM_ESTATE,
				     "tensor data written out of order");
	const struct wtensor *t = &w->t[index];
	if (size > t->size - w->part)
		return slm_error_set(err, SLM_EINVAL,
				     "tensor '%s': %llu more bytes given, "
				     "%llu left",
				     t->name, (unsigned long long)size,
				     (unsigned long long)(t->size - w->part));
	int rc = write_all(w, data, size, err);
	if (rc)
		return rc;
	w->part += size;
	if (w->part < t->size)
		return 0;
	static const uint8_t zeros[256];
	uint64_t pad = align_up(t->size, writer_alignment(w)) - t->size;
	rc = write_all(w, zeros, pad, err);
	w->part = 0;
	w->next_tensor++;
	return rc;
}

int gguf_writer_finish(struct gguf_writer *w, struct slm_error *err)
{
	if (!w->out)
		return slm_error_set(err, SLM_ESTATE, "writer not begun");
	if (w->next_tensor != w->n_t)
		return slm_error_set(err, SLM_ESTATE,
				     "%llu of %llu tensors written",
				     (unsigned long long)w->next_tensor,
				     (unsigned long long)w->n_t);
	int bad = fflush(w->out) != 0 || fsync(fileno(w->out)) != 0;
	int e = errno;
	bad |= fclose(w->out) != 0;
	w->out = NULL;
	if (bad) {
		unlink(w->tmp_path);
		return slm_error_errno(err, SLM_EIO, e, "write %s",
				       w->tmp_path);
	}
	if (rename(w->tmp_path, w->path) != 0) {
		e = errno;
		unlink(w->tmp_path);
		return slm_error_errno(err, SLM_EIO, e, "rename to %s",
				       w->path);
	}
	return 0;
}

int gguf_writer_write(struct gguf_writer *w, const char *path,
		      struct slm_error *err)
{
	for (uint64_t i = 0; i < w->n_t; i++)
		if (!w->t[i].data)
			return slm_error_set(err, SLM_EINVAL,
					     "tensor '%s' has no data",
					     w->t[i].name);
	int rc = gguf_writer_begin(w, path, err);
	for (uint64_t i = 0; i < w->n_t && !rc; i++)
		rc = gguf_writer_write_data(w, i, w->t[i].data, w->t[i].size,
					    err);
	return rc ? rc : gguf_writer_finish(w, err);
}
