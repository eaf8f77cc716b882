/* keys.c: the pre-shared key file.  See keys.h. */
#include "dataplane/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEYS_MAX 1024

struct dp_key {
	uint16_t id;
	uint8_t key[SLM_PROTO_KEY_SIZE];
};

/* Allocated with sodium_malloc: locked, guarded, wiped on free. */
struct dp_keys {
	unsigned n;
	struct dp_key k[];
};

static int cmp_key(const void *a, const void *b)
{
	const struct dp_key *x = a, *y = b;
	return (int)x->id - (int)y->id;
}

static struct dp_keys *keys_alloc(unsigned n)
{
	if (sodium_init() < 0)
		return NULL;
	/* sodium_malloc places the block against a guard page: its address
	 * is aligned only when its size is a multiple of the alignment. */
	size_t size = sizeof(struct dp_keys) + n * sizeof(struct dp_key);
	size = (size + 15) & ~(size_t)15;
	struct dp_keys *k = sodium_malloc(size);
	if (k)
		k->n = 0;
	return k;
}

static int parse_line(char *line, const char *path, unsigned lineno,
		      struct dp_key *out, struct slm_error *err)
{
	char *p = line;
	char *end;
	errno = 0;
	unsigned long id = strtoul(p, &end, 10);
	if (end == p || errno || id < 1 || id > 65535 ||
	    (*end != ' ' && *end != '\t'))
		return slm_error_set(err, SLM_EFORMAT,
				     "%s:%u: expected 'ID HEX' with ID in "
				     "1..65535",
				     path, lineno);
	p = end + strspn(end, " \t");
	size_t hl = strcspn(p, " \t\r\n");
	const char *rest = p + hl + strspn(p + hl, " \t\r\n");
	size_t bin_len = 0;
	if (hl != 2 * SLM_PROTO_KEY_SIZE || *rest ||
	    sodium_hex2bin(out->key, SLM_PROTO_KEY_SIZE, p, hl, NULL, &bin_len,
			   NULL) != 0 ||
	    bin_len != SLM_PROTO_KEY_SIZE)
		return slm_error_set(err, SLM_EFORMAT,
				     "%s:%u: key %lu is not %d hexadecimal "
				     "digits",
				     path, lineno, id, 2 * SLM_PROTO_KEY_SIZE);
	out->id = (uint16_t)id;
	return 0;
}

int dp_keys_load(const char *path, bool strict, struct dp_keys **out,
		 struct slm_error *err)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return slm_error_errno(err, SLM_EIO, errno, "key file %s",
				       path);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return slm_error_errno(err, SLM_EIO, e, "key file %s", path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return slm_error_set(err, SLM_EINVAL,
				     "key file %s is not a regular file", path);
	}
	if (strict && (st.st_mode & 077)) {
		close(fd);
		return slm_error_set(err, SLM_EAUTH,
				     "key file %s has mode %04o: others may "
				     "read or write it (chmod 600 it)",
				     path, (unsigned)(st.st_mode & 07777));
	}
	if (strict && st.st_uid != geteuid() && st.st_uid != 0) {
		close(fd);
		return slm_error_set(err, SLM_EAUTH,
				     "key file %s belongs to uid %u, not to "
				     "the service user (uid %u) or root",
				     path, (unsigned)st.st_uid,
				     (unsigned)geteuid());
	}
	FILE *f = fdopen(fd, "r");
	if (!f) {
		int e = errno;
		close(fd);
		return slm_error_errno(err, SLM_EIO, e, "key file %s", path);
	}
	struct dp_keys *k = keys_alloc(KEYS_MAX);
	if (!k) {
		fclose(f);
		return slm_error_set(err, SLM_ENOMEM, "key file %s", path);
	}
	/* The line buffer holds key material: wiped before return. */
	char line[512];
	unsigned lineno = 0;
	int rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *p = line + strspn(line, " \t");
		if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0')
			continue;
		if (k->n == KEYS_MAX) {
			rc = slm_error_set(err, SLM_EINVAL,
					   "%s:%u: more than %d keys", path,
					   lineno, KEYS_MAX);
			break;
		}
		rc = parse_line(p, path, lineno, &k->k[k->n], err);
		if (rc)
			break;
		for (unsigned i = 0; i < k->n; i++)
			if (k->k[i].id == k->k[k->n].id)
				rc = slm_error_set(err, SLM_EINVAL,
						   "%s:%u: key id %u repeated",
						   path, lineno, k->k[i].id);
		if (rc)
			break;
		k->n++;
	}
	sodium_memzero(line, sizeof(line));
	if (!rc && ferror(f))
		rc = slm_error_errno(err, SLM_EIO, errno, "key file %s", path);
	fclose(f);
	if (!rc && k->n == 0)
		rc = slm_error_set(err, SLM_EINVAL, "key file %s has no key",
				   path);
	if (rc) {
		sodium_free(k);
		return rc;
	}
	qsort(k->k, k->n, sizeof(k->k[0]), cmp_key);
	*out = k;
	return 0;
}

int dp_keys_single(uint16_t id, const uint8_t key[SLM_PROTO_KEY_SIZE],
		   struct dp_keys **out, struct slm_error *err)
{
	*out = NULL;
	if (id == 0)
		return slm_error_set(err, SLM_EINVAL, "key id 0 is reserved");
	struct dp_keys *k = keys_alloc(1);
	if (!k)
		return slm_error_set(err, SLM_ENOMEM, "key");
	k->k[0].id = id;
	memcpy(k->k[0].key, key, SLM_PROTO_KEY_SIZE);
	k->n = 1;
	*out = k;
	return 0;
}

void dp_keys_destroy(struct dp_keys *k)
{
	if (k)
		sodium_free(k);
}

const uint8_t *dp_keys_find(const struct dp_keys *k, uint16_t id)
{
	if (!k)
		return NULL;
	unsigned lo = 0, hi = k->n;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (k->k[mid].id == id)
			return k->k[mid].key;
		if (k->k[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

unsigned dp_keys_count(const struct dp_keys *k)
{
	return k ? k->n : 0;
}

uint16_t dp_keys_id_at(const struct dp_keys *k, unsigned i)
{
	return k && i < k->n ? k->k[i].id : 0;
}
