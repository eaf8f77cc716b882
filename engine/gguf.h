/*
 * gguf.h: reading and writing GGUF files (versions 2 and 3, little-endian).
 *
 * File layout (all integers little-endian):
 *
 *   offset  size  field
 *   0       4     magic "GGUF"
 *   4       4     version (2 or 3)
 *   8       8     n_tensors
 *   16      8     n_kv
 *   24      ...   n_kv metadata pairs:  key (string), value type (u32), value
 *   ...     ...   n_tensors infos:      name (string), n_dims (u32, <= 4),
 *                                       ne[n_dims] (u64), type (u32),
 *                                       offset (u64, relative to data start)
 *   ...     pad   to general.alignment (u32 key; 32 when absent)
 *   data    ...   tensor data; each tensor at data + offset, offsets aligned
 *
 *   string = u64 length + bytes (no terminator)
 *   array  = u32 element type + u64 count + elements (no arrays of arrays)
 *
 * The reader maps the file, validates every count, length and offset
 * against the file size with overflow-checked arithmetic before using it,
 * and copies keys, string values and tensor names into NUL-terminated
 * storage.  Array elements stay in the mapping and are read through the
 * accessors below.  A malformed file is refused with a message naming the
 * file, the byte offset, the field and what is wrong.
 *
 * The writer keeps metadata in insertion order; setting a key that exists
 * removes it and appends it at the end (llama.cpp's writer does the same,
 * which is where its tools' key order comes from).
 */
#ifndef SLM_ENGINE_GGUF_H
#define SLM_ENGINE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as little-endian u32 */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

enum gguf_type {
	GGUF_TYPE_UINT8 = 0,
	GGUF_TYPE_INT8 = 1,
	GGUF_TYPE_UINT16 = 2,
	GGUF_TYPE_INT16 = 3,
	GGUF_TYPE_UINT32 = 4,
	GGUF_TYPE_INT32 = 5,
	GGUF_TYPE_FLOAT32 = 6,
	GGUF_TYPE_BOOL = 7,
	GGUF_TYPE_STRING = 8,
	GGUF_TYPE_ARRAY = 9,
	GGUF_TYPE_UINT64 = 10,
	GGUF_TYPE_INT64 = 11,
	GGUF_TYPE_FLOAT64 = 12,
	GGUF_TYPE__COUNT
};

/* "u32", "string", "array", ...; "?" for an unknown type. */
const char *gguf_type_name(uint32_t type);

/* A tensor as described by the file. */
struct gguf_tensor {
	const char *name;
	uint32_t n_dims;
	uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the row length; unused = 1 */
	uint32_t type;		    /* enum slm_dtype */
	uint64_t offset;	    /* relative to the data section */
	uint64_t size;		    /* bytes */
	uint64_t file_offset;	    /* absolute: data section + offset */
	uint64_t n_elements;
};

/* An array value: elements of `type`, read through the accessors. */
struct gguf_array {
	uint32_t type; /* element type */
	uint64_t n;
	const void *data;	     /* raw elements (not for strings) */
	const char *const *strings;  /* NUL-terminated, for string arrays */
	const uint64_t *string_lens; /* byte lengths, for string arrays */
};

struct gguf_file;

/*
 * Open and validate a GGUF file.  On success *out owns a read-only mapping
 * of the file (tensor data is not read, only mapped).  err names the file.
 */
int gguf_open(const char *path, struct gguf_file **out,
	      struct slm_error *err) SLM_MUST_CHECK;

/* The same over a buffer the caller keeps alive until gguf_close. */
int gguf_open_buffer(const void *data, size_t size, const char *name,
		     struct gguf_file **out,
		     struct slm_error *err) SLM_MUST_CHECK;

void gguf_close(struct gguf_file *f);

const char *gguf_path(const struct gguf_file *f);
uint32_t gguf_version(const struct gguf_file *f);
uint32_t gguf_alignment(const struct gguf_file *f);
uint64_t gguf_file_size(const struct gguf_file *f);
/* File offset where tensor data begins. */
uint64_t gguf_data_offset(const struct gguf_file *f);
/* The whole file as mapped (tensor data at gguf_data_offset). */
const uint8_t *gguf_mapping(const struct gguf_file *f);

/*
 * Check that fd is the file f was opened from (same device and inode) and
 * still has the size it had then: a loader that reopens the path reads
 * what the header described.  SLM_EIO with the reason when not, SLM_EINVAL
 * for a file opened from a buffer.
 */
int gguf_check_same_file(const struct gguf_file *f, int fd,
			 struct slm_error *err) SLM_MUST_CHECK;

/* True when f was opened from a file (gguf_open), not a buffer. */
bool gguf_from_file(const struct gguf_file *f);

/* Metadata by index (file order) and by key. */
uint64_t gguf_n_kv(const struct gguf_file *f);
const char *gguf_kv_key(const struct gguf_file *f, uint64_t index);
uint32_t gguf_kv_type(const struct gguf_file *f, uint64_t index);
/* Index of a key, or -1 (a hash lookup). */
int64_t gguf_find(const struct gguf_file *f, const char *key);

/*
 * Typed getters.  Return 0, SLM_ENOTFOUND (no such key) or SLM_EFORMAT
 * (the key holds another type; err says which).  get_int accepts any
 * integer type and checks that the value fits int64; get_uint refuses
 * negative values; get_float accepts f32 and f64.
 */
int gguf_get_int(const struct gguf_file *f, const char *key, int64_t *out,
		 struct slm_error *err) SLM_MUST_CHECK;
int gguf_get_uint(const struct gguf_file *f, const char *key, uint64_t *out,
		  struct slm_error *err) SLM_MUST_CHECK;
int gguf_get_float(const struct gguf_file *f, const char *key, double *out,
		   struct slm_error *err) SLM_MUST_CHECK;
int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out,
		  struct slm_error *err) SLM_MUST_CHECK;
int gguf_get_str(const struct gguf_file *f, const char *key, const char **out,
		 struct slm_error *err) SLM_MUST_CHECK;
int gguf_get_arr(const struct gguf_file *f, const char *key,
		 struct gguf_array *out, struct slm_error *err) SLM_MUST_CHECK;

/* Scalar value of a metadata pair by index, for generic printing/copying.
 * Strings: *str (NUL-terminated) and *len.  Arrays: use gguf_kv_arr. */
int gguf_kv_scalar(const struct gguf_file *f, uint64_t index, uint64_t *u,
		   int64_t *i, double *d, const char **str, uint64_t *len);
void gguf_kv_arr(const struct gguf_file *f, uint64_t index,
		 struct gguf_array *out);

/* Element i of a numeric array, converted; the array's type decides.
 * gguf_arr_int saturates floats out of the int64 range and reads NaN as 0;
 * an index past the end reads as 0. */
int64_t gguf_arr_int(const struct gguf_array *a, uint64_t i);
double gguf_arr_float(const struct gguf_array *a, uint64_t i);

/* Tensors, in file order. */
uint64_t gguf_n_tensors(const struct gguf_file *f);
const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *f,
					 uint64_t index);
/* NULL when absent. */
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f,
					   const char *name);

/* ---- writing ---------------------------------------------------------- */

struct gguf_writer;

struct gguf_writer *gguf_writer_create(void);
void gguf_writer_destroy(struct gguf_writer *w);

/* Metadata setters; each removes an existing key of that name first. */
int gguf_set_u8(struct gguf_writer *w, const char *key, uint8_t v);
int gguf_set_i8(struct gguf_writer *w, const char *key, int8_t v);
int gguf_set_u16(struct gguf_writer *w, const char *key, uint16_t v);
int gguf_set_i16(struct gguf_writer *w, const char *key, int16_t v);
int gguf_set_u32(struct gguf_writer *w, const char *key, uint32_t v);
int gguf_set_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_set_u64(struct gguf_writer *w, const char *key, uint64_t v);
int gguf_set_i64(struct gguf_writer *w, const char *key, int64_t v);
int gguf_set_f32(struct gguf_writer *w, const char *key, float v);
int gguf_set_f64(struct gguf_writer *w, const char *key, double v);
int gguf_set_bool(struct gguf_writer *w, const char *key, bool v);
int gguf_set_str(struct gguf_writer *w, const char *key, const char *v);
/* Numeric array of n elements of `type` (raw little-endian elements). */
int gguf_set_arr(struct gguf_writer *w, const char *key, uint32_t type,
		 const void *data, uint64_t n);
int gguf_set_arr_str(struct gguf_writer *w, const char *key,
		     const char *const *strings, uint64_t n);
/* Copy pair `index` of a file (any type, arrays included). */
int gguf_copy_kv(struct gguf_writer *w, const struct gguf_file *src,
		 uint64_t index);
/* Remove a key if present. */
void gguf_remove_key(struct gguf_writer *w, const char *key);
/* Key order of the writer, for tests. */
uint64_t gguf_writer_n_kv(const struct gguf_writer *w);
const char *gguf_writer_kv_key(const struct gguf_writer *w, uint64_t index);

/*
 * Add a tensor.  `data` (size bytes, which must match the shape and type)
 * may be NULL when the data will be streamed with gguf_writer_write_data.
 * The writer does not copy data: it must stay valid until the file is
 * written.  Offsets are assigned in the order tensors are added.
 */
int gguf_add_tensor(struct gguf_writer *w, const char *name, uint32_t n_dims,
		    const uint64_t *ne, uint32_t type, const void *data,
		    struct slm_error *err) SLM_MUST_CHECK;

/* Write the whole file: header, then every tensor's data (none may be
 * NULL).  Writes to path.tmp and renames, so a failed write leaves no
 * half file. */
int gguf_writer_write(struct gguf_writer *w, const char *path,
		      struct slm_error *err) SLM_MUST_CHECK;

/* Streaming: write the header (and padding) now... */
int gguf_writer_begin(struct gguf_writer *w, const char *path,
		      struct slm_error *err) SLM_MUST_CHECK;
/* ...then each tensor's data in the order added... */
int gguf_writer_write_data(struct gguf_writer *w, uint64_t index,
			   const void *data, uint64_t size,
			   struct slm_error *err) SLM_MUST_CHECK;
/* ...or in consecutive parts: `size` more bytes of tensor `index` (the
 * tensor being written); padding follows its last part. */
int gguf_writer_write_part(struct gguf_writer *w, uint64_t index,
			   const void *data, uint64_t size,
			   struct slm_error *err) SLM_MUST_CHECK;
/* ...then finish (rename into place). */
int gguf_writer_finish(struct gguf_writer *w,
		       struct slm_error *err) SLM_MUST_CHECK;

/* Serialize the header only (for building test files in memory). */
int gguf_writer_header_bytes(struct gguf_writer *w, uint8_t **out,
			     size_t *size) SLM_MUST_CHECK;

#endif
