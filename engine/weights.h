/*
 * weights.h: getting a model's tensor data from disk into memory.
 *
 * slm_weights_load() reads the whole data section of the model's file into
 * one region of node-local memory (numa/alloc.h) and hands out a copy of
 * the model's tensor table whose views point into it.  One slm_weights is
 * one replica: a model served from two NUMA nodes loads twice.
 *
 * Methods (config key model.load):
 *   uring  io_uring, many reads of block_size in flight (queue_depth), with
 *          O_DIRECT where the file system allows it: the disk's DMA goes
 *          straight into the region, no page-cache copy, no page cache
 *          filled with a second copy of the model.  The range read is the
 *          data section widened to the direct-I/O alignment.  A file
 *          system that refuses O_DIRECT gets buffered reads (logged).
 *   read   one pread at a time through the page cache: the simple way,
 *          for comparison and for systems without io_uring.
 *   mmap   no copy: the views point into the file's mapping (engine/gguf)
 *          and the pages are made resident before returning, so processes
 *          serving the same file share the page cache.  Not node-local.
 *
 * Loading reports progress (bytes done, total, rate) through a callback
 * called from the loading thread.  Errors say what failed where: the
 * file, the byte offset and length of the read, and the system's reason;
 * a file that shrank after it was opened is reported as such.
 */
#ifndef SLM_ENGINE_WEIGHTS_H
#define SLM_ENGINE_WEIGHTS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "engine/model.h"
#include "numa/alloc.h"

enum slm_load_method {
	SLM_LOAD_URING = 0,
	SLM_LOAD_READ = 1,
	SLM_LOAD_MMAP = 2,
};

/* "uring", "read", "mmap". */
const char *slm_load_method_name(enum slm_load_method m);

/* How the region gets onto transparent huge pages (model.load_thp).
 * Reserved huge pages (hugetlb) are used first whenever there are
 * enough, except with OFF. */
enum slm_load_thp {
	/* Ordinary pages while reading, then a background thread collapses
	 * the region onto huge pages (MADV_COLLAPSE) after the load has
	 * returned: the model is usable at disk speed even where each fresh
	 * huge page is expensive (VMs that hand free memory back to the
	 * host), and on huge pages a moment later. */
	SLM_LOAD_THP_COLLAPSE = 0,
	/* MADV_HUGEPAGE before reading: huge pages as the reads land; no
	 * copy, the right choice where fresh huge pages are cheap. */
	SLM_LOAD_THP_FAULT = 1,
	SLM_LOAD_THP_OFF = 2, /* ordinary pages only */
};

/* "collapse", "fault", "off". */
const char *slm_load_thp_name(enum slm_load_thp t);

/* Defaults, measured on the development machine (docs/benchmarks.md). */
#define SLM_LOAD_DEFAULT_QUEUE_DEPTH 32
#define SLM_LOAD_DEFAULT_BLOCK_SIZE (1u << 20)

struct slm_load_progress {
	uint64_t done;	     /* bytes read so far */
	uint64_t total;	     /* bytes to read */
	uint64_t elapsed_ns; /* since the load began */
	double rate;	     /* bytes per second so far */
};

typedef void (*slm_load_progress_fn)(const struct slm_load_progress *p,
				     void *arg);

/* Fault injection, for tests (every field 0 = off). */
struct slm_load_faults {
	bool refuse_direct;	 /* open(O_DIRECT) fails with EINVAL */
	bool direct_read_einval; /* the first O_DIRECT read fails EINVAL */
	uint32_t eagain_every;	 /* every Nth read first fails EAGAIN */
	uint32_t eintr_every;	 /* every Nth read first fails EINTR */
	uint32_t short_every;	 /* every Nth read returns half its bytes */
	uint64_t eio_at;	 /* a read covering offset eio_at - 1 fails */
	uint64_t shrink_at;	 /* the file seems to end at shrink_at - 1 */
	bool no_uring;		 /* io_uring_queue_init fails */
};

struct slm_load_params {
	enum slm_load_method method;
	int node;	       /* NUMA node, SLM_NUMA_LOCAL or _ANY */
	uint32_t queue_depth;  /* reads in flight (uring); 0: default */
	uint64_t block_size;   /* bytes per read; 0: default */
	bool direct;	       /* try O_DIRECT (uring) */
	enum slm_load_thp thp; /* huge pages: model.load_thp */
	bool prefault;	       /* a helper thread faults the region in
				   from its end while reads fill it */
	slm_load_progress_fn progress;
	void *progress_arg;
	uint64_t progress_interval_ns;	      /* between calls; 0: 100 ms */
	const struct slm_load_faults *faults; /* tests; NULL normally */
};

/* Defaults: uring, local node, default depth and block, O_DIRECT,
 * prefault. */
void slm_load_params_default(struct slm_load_params *p);

/* The params the config says (model.load, model.load_queue_depth,
 * model.load_block_size, model.load_direct, model.load_thp); other fields
 * default. */
void slm_load_params_from_config(struct slm_load_params *p,
				 const struct slm_config *cfg);

/* One loaded replica of a model's weights. */
struct slm_weights {
	struct slm_tensors t;	     /* the views, data pointers set */
	enum slm_load_method method; /* what was used (uring may fall back
					to read when io_uring is missing) */
	bool direct;		     /* O_DIRECT reads were used */
	uint32_t queue_depth;
	uint64_t block_size;
	uint32_t dio_align;	 /* direct-I/O alignment used (bytes) */
	uint64_t bytes;		 /* of the data section: file size - data
				   offset (uring reads up to one alignment
				   unit more, from the aligned offset) */
	uint64_t elapsed_ns;	 /* the whole load, allocation included */
	uint64_t alloc_ns;	 /* of which allocating the region (reserved
				    huge pages are zeroed there) */
	struct slm_numa_mem mem; /* the region (empty for mmap) */
	uint64_t prefaulted;	 /* bytes the helper thread faulted in */
	/* The background move onto huge pages (SLM_LOAD_THP_COLLAPSE);
	 * NULL when none runs.  Private to weights.c. */
	struct slm_weights_collapse *collapse;
	/* Why the method or O_DIRECT was not used as asked; "" when it
	 * was.  Also logged. */
	char fallback[160];
};

/*
 * Load every tensor of m.  On success *out holds the replica; free it
 * with slm_weights_free before closing the model (mmap views point into
 * the model's mapping).  Errors: SLM_EIO (a read failed or the file
 * shrank), SLM_ENOMEM, SLM_ESYS, SLM_EINVAL (bad params).
 */
int slm_weights_load(const struct slm_model *m,
		     const struct slm_load_params *params,
		     struct slm_weights **out,
		     struct slm_error *err) SLM_MUST_CHECK;

/* Stop the background collapse (if running) and release everything. */
void slm_weights_free(struct slm_weights *w);

/*
 * Wait until the background collapse onto huge pages has finished;
 * returns how long it took, in ns from the end of the load (0 when none
 * ran).  Optional: readers need not wait, the bytes never change.
 */
uint64_t slm_weights_wait_huge(struct slm_weights *w);

/*
 * The physical limit, for benchmarks: read [offset, offset + len) of a
 * file with O_DIRECT through io_uring at queue_depth reads of block_size
 * into a small ring of buffers (the data is discarded).  *bytes and
 * *elapsed_ns get what was read and how long it took.  A file system
 * without O_DIRECT is an error (SLM_EUNSUPPORTED).
 */
int slm_weights_read_raw(const char *path, uint64_t offset, uint64_t len,
			 uint32_t queue_depth, uint64_t block_size,
			 uint64_t *bytes, uint64_t *elapsed_ns,
			 struct slm_error *err) SLM_MUST_CHECK;

#endif
