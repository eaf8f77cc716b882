#include "engine/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif

#define LOG "weights"
/* A read that keeps failing with EINTR/EAGAIN is given up after this. */
#define MAX_RETRIES 1000

const char *slm_load_method_name(enum slm_load_method m)
{
	switch (m) {
	case SLM_LOAD_URING:
		return "uring";
	case SLM_LOAD_READ:
		return "read";
	case SLM_LOAD_MMAP:
		return "mmap";
	}
	return "?";
}

const char *slm_load_thp_name(enum slm_load_thp t)
{
	switch (t) {
	case SLM_LOAD_THP_COLLAPSE:
		return "collapse";
	case SLM_LOAD_THP_FAULT:
		return "fault";
	case SLM_LOAD_THP_OFF:
		return "off";
	}
	return "?";
}

void slm_load_params_default(struct slm_load_params *p)
{
	memset(p, 0, sizeof(*p));
	p->method = SLM_LOAD_URING;
	p->node = SLM_NUMA_LOCAL;
	p->queue_depth = SLM_LOAD_DEFAULT_QUEUE_DEPTH;
	p->block_size = SLM_LOAD_DEFAULT_BLOCK_SIZE;
	p->direct = true;
	p->prefault = true;
}

void slm_load_params_from_config(struct slm_load_params *p,
				 const struct slm_config *cfg)
{
	slm_load_params_default(p);
	p->method = (enum slm_load_method)slm_cfg_enum(cfg, SLM_CFG_MODEL_LOAD);
	p->queue_depth =
		(uint32_t)slm_cfg_int(cfg, SLM_CFG_MODEL_LOAD_QUEUE_DEPTH);
	p->block_size = slm_cfg_size(cfg, SLM_CFG_MODEL_LOAD_BLOCK_SIZE);
	p->direct = slm_cfg_bool(cfg, SLM_CFG_MODEL_LOAD_DIRECT);
	p->thp = (enum slm_load_thp)slm_cfg_enum(cfg, SLM_CFG_MODEL_LOAD_THP);
}

static uint64_t round_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

static uint64_t round_down(uint64_t x, uint64_t a)
{
	return x / a * a;
}

/* ---- the reader: one file range into memory ------------------------------ */

/*
 * A chunk is one block of the range: [off, want_end) still to read.  A
 * short read moves `off` on and the rest is read again; in O_DIRECT mode
 * a short read that stops off the alignment restarts at the aligned
 * offset below (re-reading a few bytes is harmless).
 */
struct chunk {
	uint64_t begin;	   /* first file offset of the chunk */
	uint64_t off;	   /* next file offset to read */
	uint64_t want_end; /* the chunk is complete when off reaches this */
	uint32_t retries;
	uint32_t slot;	   /* ring mode: which buffer */
	bool injected;	   /* a fault was injected once already */
	uint64_t credited; /* bytes counted in progress so far */
};

struct reader {
	const char *path;
	int fd;
	bool direct;
	uint32_t align;	    /* O_DIRECT offset/length/memory alignment */
	uint64_t start;	    /* file offset of buf[0] (range mode) */
	uint64_t end;	    /* file offset where the range ends */
	uint64_t file_size; /* at open */
	uint8_t *buf;	    /* range mode: the region; ring mode: buffers */
	bool ring;	    /* ring mode: chunk data lands in slot buffers */
	uint64_t block;
	const struct slm_load_faults *faults;
	uint64_t *frontier; /* range mode: buf bytes handed to reads, or NULL
			       (read by the prefault thread) */
	uint64_t n_reads;   /* reads issued, for fault injection */
	bool any_done;	    /* a read has completed (EINVAL fallback) */
	/* progress */
	uint64_t done, total, t0, last;
	slm_load_progress_fn progress;
	void *progress_arg;
	uint64_t interval;
	struct slm_error *err;
};

/* The reader asks to be restarted with buffered reads. */
#define RESTART_BUFFERED 2

static uint8_t *chunk_dest(const struct reader *r, const struct chunk *c)
{
	if (r->ring)
		return r->buf + (uint64_t)c->slot * r->block +
		       (c->off - c->begin);
	return r->buf + (c->off - r->start);
}

/* Bytes to ask for: the rest of the chunk, aligned up for O_DIRECT (the
 * region has room: its length is rounded up to the alignment). */
static uint32_t chunk_len(const struct reader *r, const struct chunk *c)
{
	uint64_t len = c->want_end - c->off;
	if (r->direct)
		len = round_up(len, r->align);
	return (uint32_t)len;
}

static void report(struct reader *r, bool final)
{
	if (!r->progress)
		return;
	uint64_t now = slm_now_ns();
	if (!final && now - r->last < r->interval)
		return;
	r->last = now;
	struct slm_load_progress p = {
		.done = r->done,
		.total = r->total,
		.elapsed_ns = now - r->t0,
	};
	p.rate = p.elapsed_ns ? (double)p.done * 1e9 / (double)p.elapsed_ns : 0;
	r->progress(&p, r->progress_arg);
}

/* Injected faults turn a real result into the one a test asked for. */
static long inject(struct reader *r, struct chunk *c, uint64_t seq,
		   uint64_t len, long res)
{
	const struct slm_load_faults *f = r->faults;
	if (!f)
		return res;
	if (f->direct_read_einval && r->direct && !r->any_done)
		return -EINVAL;
	if (f->eio_at && f->eio_at - 1 >= c->off &&
	    f->eio_at - 1 < c->off + len)
		return -EIO;
	if (f->shrink_at && res > 0) {
		uint64_t eof = f->shrink_at - 1;
		res = c->off >= eof
			      ? 0
			      : (long)SLM_MIN((uint64_t)res, eof - c->off);
	}
	if (c->injected || res <= 0)
		return res;
	if (f->eagain_every && seq % f->eagain_every == 0) {
		c->injected = true;
		return -EAGAIN;
	}
	if (f->eintr_every && seq % f->eintr_every == 0) {
		c->injected = true;
		return -EINTR;
	}
	if (f->short_every && seq % f->short_every == 0 && res > 1) {
		c->injected = true;
		uint64_t half = (uint64_t)res / 2;
		/* An O_DIRECT short read still ends on the alignment, unless
		 * it is the end of the file. */
		if (r->direct)
			half = round_down(half, r->align);
		if (half)
			return (long)half;
	}
	return res;
}

/*
 * Account for one completed read of chunk c.  Returns 1 when the chunk is
 * complete, 0 when it must be read again, RESTART_BUFFERED, or a negative
 * error (err set).
 */
static int complete(struct reader *r, struct chunk *c, uint64_t len, long res)
{
	if (res == -EINTR || res == -EAGAIN) {
		if (++c->retries > MAX_RETRIES)
			return slm_error_set(r->err, SLM_EIO,
					     "%s: read of %llu bytes at offset "
					     "%llu keeps failing: %s",
					     r->path, (unsigned long long)len,
					     (unsigned long long)c->off,
					     strerror((int)-res));
		return 0;
	}
	if (res == -EINVAL && r->direct && !r->any_done)
		return RESTART_BUFFERED;
	if (res == -EFAULT || res == -ENOMEM)
		return slm_error_set(r->err, SLM_ENOMEM,
				     "%s: read of %llu bytes at offset %llu "
				     "failed: %s: no memory behind the "
				     "region (reserved huge pages taken by "
				     "another process?)",
				     r->path, (unsigned long long)len,
				     (unsigned long long)c->off,
				     strerror((int)-res));
	if (res < 0)
		return slm_error_set(r->err, SLM_EIO,
				     "%s: read of %llu bytes at offset %llu "
				     "failed: %s",
				     r->path, (unsigned long long)len,
				     (unsigned long long)c->off,
				     strerror((int)-res));
	if (res == 0)
		return slm_error_set(r->err, SLM_EIO,
				     "%s: the file ends at offset %llu, but "
				     "it had %llu bytes when it was opened: "
				     "it was truncated while loading",
				     r->path, (unsigned long long)c->off,
				     (unsigned long long)r->file_size);
	r->any_done = true;
	c->retries = 0;
	c->off += (uint64_t)res;
	uint64_t got = SLM_MIN(c->off, c->want_end) - c->begin;
	r->done += got - c->credited;
	c->credited = got;
	if (c->off >= c->want_end)
		return 1;
	if (r->direct)
		c->off = round_down(c->off, r->align);
	return 0;
}

/* Tell the prefault thread the reader has claimed buf up to chunk c. */
static void publish(const struct reader *r, const struct chunk *c)
{
	if (r->frontier)
		__atomic_store_n(r->frontier, c->want_end - r->start,
				 __ATOMIC_RELAXED);
}

static uint64_t n_chunks_of(const struct reader *r)
{
	return (r->end - r->start + r->block - 1) / r->block;
}

static void chunk_init(const struct reader *r, struct chunk *c, uint64_t i)
{
	memset(c, 0, sizeof(*c));
	c->begin = r->start + i * r->block;
	c->off = c->begin;
	c->want_end = SLM_MIN(c->begin + r->block, r->end);
}

/* The pread loop: one read at a time. */
static int read_range_pread(struct reader *r)
{
	uint64_t n = n_chunks_of(r);
	for (uint64_t i = 0; i < n; i++) {
		struct chunk c;
		chunk_init(r, &c, i);
		publish(r, &c);
		for (;;) {
			uint32_t len = chunk_len(r, &c);
			long res = pread(r->fd, chunk_dest(r, &c), len,
					 (off_t)c.off);
			if (res < 0)
				res = -errno;
			res = inject(r, &c, ++r->n_reads, len, res);
			int rc = complete(r, &c, len, res);
			if (rc < 0 || rc == RESTART_BUFFERED)
				return rc;
			if (rc == 1)
				break;
		}
		report(r, false);
	}
	return 0;
}

static int ring_init(struct io_uring *ring, uint32_t depth,
		     struct slm_error *err, const char *path)
{
	/* SINGLE_ISSUER and COOP_TASKRUN save work where the kernel has
	 * them (6.0+); older kernels refuse the flags: retry without. */
	int rc = io_uring_queue_init(depth, ring,
				     IORING_SETUP_SINGLE_ISSUER |
					     IORING_SETUP_COOP_TASKRUN);
	if (rc == -EINVAL)
		rc = io_uring_queue_init(depth, ring, 0);
	if (rc < 0)
		return slm_error_errno(err, SLM_EUNSUPPORTED, -rc,
				       "%s: io_uring is not available", path);
	return 0;
}

/*
 * The io_uring loop: up to `depth` reads in flight.  On an error the reads
 * still in flight are waited for before returning, since they write into
 * memory the caller is about to free.
 */
static int read_range_uring(struct reader *r, struct io_uring *ring,
			    uint32_t depth)
{
	uint64_t n = n_chunks_of(r);
	struct chunk *chunks = calloc(n ? n : 1, sizeof(*chunks));
	uint64_t *again = calloc(depth, sizeof(*again));
	uint32_t *free_slots = calloc(depth, sizeof(*free_slots));
	if (!chunks || !again || !free_slots) {
		free(chunks);
		free(again);
		free(free_slots);
		return slm_error_set(r->err, SLM_ENOMEM, "%s: out of memory",
				     r->path);
	}
	uint32_t n_free = depth;
	for (uint32_t i = 0; i < depth; i++)
		free_slots[i] = depth - 1 - i;
	uint64_t next = 0, completed = 0;
	uint32_t inflight = 0, n_again = 0;
	int rc = 0;
	while (completed < n && !rc) {
		/* Fill the queue: chunks to read again first, then new. */
		while (inflight < depth && (n_again || next < n)) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
			if (!sqe)
				break;
			uint64_t i;
			if (n_again) {
				i = again[--n_again];
			} else {
				i = next++;
				chunk_init(r, &chunks[i], i);
				publish(r, &chunks[i]);
				if (r->ring)
					chunks[i].slot = free_slots[--n_free];
			}
			struct chunk *c = &chunks[i];
			io_uring_prep_read(sqe, r->fd, chunk_dest(r, c),
					   chunk_len(r, c), c->off);
			io_uring_sqe_set_data64(sqe, i);
			inflight++;
		}
		int s = io_uring_submit_and_wait(ring, 1);
		if (s < 0 && s != -EINTR && s != -EAGAIN && s != -EBUSY) {
			rc = slm_error_errno(r->err, SLM_EIO, -s,
					     "%s: io_uring submit failed",
					     r->path);
			break;
		}
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(ring, head, cqe)
		{
			seen++;
			inflight--;
			uint64_t i = io_uring_cqe_get_data64(cqe);
			struct chunk *c = &chunks[i];
			uint32_t len = chunk_len(r, c);
			long res = inject(r, c, ++r->n_reads, len, cqe->res);
			int done = rc ? 0 : complete(r, c, len, res);
			if (done < 0 || done == RESTART_BUFFERED) {
				rc = done;
			} else if (done == 1) {
				completed++;
				if (r->ring)
					free_slots[n_free++] = c->slot;
			} else if (!rc) {
				again[n_again++] = i;
			}
		}
		io_uring_cq_advance(ring, seen);
		report(r, false);
	}
	/* Drain what is still in flight before the memory goes away. */
	while (inflight > 0) {
		struct io_uring_cqe *cqe;
		int w = io_uring_wait_cqe(ring, &cqe);
		if (w == -EINTR)
			continue;
		if (w < 0)
			break;
		io_uring_cqe_seen(ring, cqe);
		inflight--;
	}
	free(chunks);
	free(again);
	free(free_slots);
	return rc;
}

/* Direct-I/O alignment of fd: 0 when the file system has no O_DIRECT. */
static uint32_t dio_alignment(int fd)
{
	struct statx stx;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN)) {
		if (stx.stx_dio_offset_align == 0)
			return 0;
		uint32_t a = SLM_MAX(stx.stx_dio_offset_align,
				     stx.stx_dio_mem_align);
		return SLM_MAX(a, 512u);
	}
	return 4096; /* not reported: the safe choice for any device */
}

/*
 * Open path for reading, with O_DIRECT when asked and allowed.  Sets
 * r->fd, r->direct, r->align; writes why O_DIRECT was not used into
 * `why` (empty when it was, or was not asked for).
 */
static int open_reader(struct reader *r, bool want_direct, char *why,
		       size_t why_size)
{
	why[0] = '\0';
	r->direct = false;
	r->align = 4096;
	if (want_direct) {
		int fd = -1;
		int e = EINVAL;
		if (!(r->faults && r->faults->refuse_direct)) {
			fd = open(r->path, O_RDONLY | O_CLOEXEC | O_DIRECT);
			e = errno;
		}
		if (fd >= 0) {
			uint32_t a = dio_alignment(fd);
			if (a) {
				r->fd = fd;
				r->direct = true;
				r->align = a;
				return 0;
			}
			close(fd);
			snprintf(why, why_size,
				 "the file system has no direct I/O for "
				 "this file");
		} else if (e == EINVAL) {
			snprintf(why, why_size,
				 "the file system refuses O_DIRECT");
		} else {
			return slm_error_errno(r->err, SLM_EIO, e,
					       "cannot open %s", r->path);
		}
	}
	r->fd = open(r->path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0)
		return slm_error_errno(r->err, SLM_EIO, errno, "cannot open %s",
				       r->path);
	return 0;
}

/* ---- mmap: make the mapping resident ------------------------------------- */

static int populate_mapping(const struct slm_model *m, struct reader *r)
{
	const uint8_t *base = gguf_mapping(m->file);
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t lo = round_down(r->start, page);
	/* Ask for all of it now: the kernel reads ahead while we walk. */
	madvise((void *)(base + lo), r->end - lo, MADV_WILLNEED);
	for (uint64_t off = lo; off < r->end;) {
		uint64_t len = SLM_MIN(r->block, r->end - off);
		int e = 0;
		if (r->faults && r->faults->shrink_at &&
		    off + len > r->faults->shrink_at - 1)
			e = EFAULT;
		else if (madvise((void *)(base + off), len,
				 MADV_POPULATE_READ) != 0)
			e = errno;
		if (e == EINVAL) {
			/* A kernel before 5.14: touch every page. */
			volatile const uint8_t *q = base + off;
			for (uint64_t i = 0; i < len; i += page)
				(void)q[i];
			e = 0;
		}
		if (e == EFAULT)
			return slm_error_set(r->err, SLM_EIO,
					     "%s: bytes at offset %llu cannot "
					     "be read through the mapping: the "
					     "file is shorter than when it was "
					     "opened, or unreadable",
					     r->path, (unsigned long long)off);
		if (e)
			return slm_error_errno(r->err, SLM_EIO, e,
					       "%s: cannot make bytes at "
					       "offset %llu resident",
					       r->path,
					       (unsigned long long)off);
		off += len;
		r->done = SLM_MIN(off, r->end) - r->start;
		report(r, false);
	}
	return 0;
}

/* ---- prefaulting ---------------------------------------------------------- */

/*
 * Fresh memory costs a page fault and zeroing per page on first touch (in
 * a VM, often a host fault too), and O_DIRECT touches it in the reading
 * thread as each read is submitted: serially, the load took the disk's
 * time plus the memory's.  A helper thread populates the region just
 * ahead of the reads, so they land in memory that is ready and the two
 * costs overlap.  Neither thread waits for the other: when the reads
 * overtake the helper (memory slower than the disk), the reading thread
 * faults its own pages and the helper jumps ahead of it again, so the
 * faulting is shared between the two CPUs.
 */
#define PREFAULT_STEP (4u << 20)
/* How far ahead of the reads the helper may go. */
#define PREFAULT_LEAD (64u << 20)

struct prefault {
	pthread_t thread;
	bool running;
	uint8_t *base;
	uint64_t len;
	uint64_t frontier; /* atomic: the reader's claim, bytes from base */
	uint64_t stop;	   /* atomic: set to end the thread */
	uint64_t faulted;  /* bytes the helper populated */
	int error;	   /* errno of a failed populate, 0 */
};

static void *prefault_main(void *arg)
{
	struct prefault *pf = arg;
	uint64_t pos = 0;
	while (pos < pf->len && !__atomic_load_n(&pf->stop, __ATOMIC_RELAXED)) {
		uint64_t claimed =
			__atomic_load_n(&pf->frontier, __ATOMIC_RELAXED);
		if (pos < claimed)
			pos = round_up(claimed, PREFAULT_STEP); /* overtaken */
		if (pos >= pf->len)
			break;
		if (pos >= claimed + PREFAULT_LEAD) {
			/* Far enough ahead: let the reads catch up. */
			sched_yield();
			continue;
		}
		uint64_t len = SLM_MIN((uint64_t)PREFAULT_STEP, pf->len - pos);
		if (madvise(pf->base + pos, len, MADV_POPULATE_WRITE) != 0) {
			/* No memory, or a kernel before 5.14: the reads
			 * fault the rest themselves (and report a shortage
			 * as a read error). */
			pf->error = errno;
			break;
		}
		pf->faulted += len;
		pos += len;
	}
	return NULL;
}

static void prefault_start(struct prefault *pf, struct slm_numa_mem *mem)
{
	memset(pf, 0, sizeof(*pf));
	pf->base = mem->ptr;
	pf->len = mem->mapped;
	pf->running = pthread_create(&pf->thread, NULL, prefault_main, pf) == 0;
}

static void prefault_stop(struct prefault *pf)
{
	if (!pf->running)
		return;
	__atomic_store_n(&pf->stop, 1, __ATOMIC_RELAXED);
	pthread_join(pf->thread, NULL);
	pf->running = false;
}

/* ---- collapsing onto huge pages after the load ---------------------------- */

/*
 * Where every fresh huge page is expensive (a VM whose free memory was
 * handed back to the host costs a host fault per 2 MiB: a 668 MB region
 * took 1 to 2.5 s to fault in on huge pages, 0.2 s on ordinary ones), the
 * load reads into ordinary pages and this thread then moves the region
 * onto huge pages, 2 MiB at a time, while the model is already in use.
 */
struct slm_weights_collapse {
	pthread_t thread;
	uint8_t *base;
	uint64_t len;
	uint64_t stop;	  /* atomic */
	uint64_t t0;	  /* end of the load */
	uint64_t elapsed; /* set by the thread when it ends */
	uint64_t collapsed, failed;
};

static void *collapse_main(void *arg)
{
	struct slm_weights_collapse *c = arg;
	for (uint64_t off = 0; off < c->len; off += SLM_NUMA_HUGE_PAGE) {
		if (__atomic_load_n(&c->stop, __ATOMIC_RELAXED))
			break;
		if (madvise(c->base + off, SLM_NUMA_HUGE_PAGE, MADV_COLLAPSE) ==
		    0) {
			c->collapsed += SLM_NUMA_HUGE_PAGE;
		} else if (errno == EINVAL) {
			break; /* before Linux 6.1: khugepaged will do it,
				  slowly, thanks to MADV_HUGEPAGE */
		} else {
			c->failed += SLM_NUMA_HUGE_PAGE; /* no huge page free
							    right now */
		}
	}
	c->elapsed = slm_now_ns() - c->t0;
	return NULL;
}

static void collapse_start(struct slm_weights *w)
{
	if (!w->mem.ptr || w->mem.hugetlb)
		return;
	/* The advice alone lets khugepaged collapse the region in time;
	 * the thread does it now. */
	if (madvise(w->mem.ptr, w->mem.mapped, MADV_HUGEPAGE) != 0)
		return;
	w->mem.thp = true;
	struct slm_weights_collapse *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->base = w->mem.ptr;
	c->len = w->mem.mapped;
	c->t0 = slm_now_ns();
	if (pthread_create(&c->thread, NULL, collapse_main, c) != 0) {
		free(c);
		return;
	}
	w->collapse = c;
}

uint64_t slm_weights_wait_huge(struct slm_weights *w)
{
	struct slm_weights_collapse *c = w->collapse;
	if (!c)
		return 0;
	pthread_join(c->thread, NULL);
	uint64_t elapsed = c->elapsed;
	SLM_DEBUG(LOG,
		  "collapsed %llu MB onto huge pages in %.3f s (%llu MB "
		  "could not be)",
		  (unsigned long long)(c->collapsed >> 20),
		  (double)elapsed / 1e9, (unsigned long long)(c->failed >> 20));
	free(c);
	w->collapse = NULL;
	return elapsed;
}

/* ---- load ------------------------------------------------------------------ */

struct view_base {
	const uint8_t *base; /* address of file offset `start` */
	uint64_t start;
	uint64_t data_offset;
};

static void point_view(struct slm_tensor *v, void *arg)
{
	const struct view_base *b = arg;
	if (slm_tensor_present(v))
		v->data = b->base + (b->data_offset + v->offset - b->start);
}

static int copy_table(const struct slm_model *m, struct slm_weights *w,
		      struct slm_error *err)
{
	w->t = m->tensors;
	w->t.layers = calloc(m->tensors.n_layer ? m->tensors.n_layer : 1,
			     sizeof(*w->t.layers));
	if (!w->t.layers)
		return slm_error_set(err, SLM_ENOMEM, "%s: out of memory",
				     m->path);
	memcpy(w->t.layers, m->tensors.layers,
	       m->tensors.n_layer * sizeof(*w->t.layers));
	return 0;
}

static void fallback(struct slm_weights *w, const char *path, const char *why)
{
	if (!w->fallback[0])
		snprintf(w->fallback, sizeof(w->fallback), "%s", why);
	SLM_WARN(LOG, "%s: %s", path, why);
}

/* Read [start, end) with the method asked for, falling back as needed. */
static int load_region(const struct slm_model *m,
		       const struct slm_load_params *p, struct reader *r,
		       struct slm_weights *w)
{
	bool want_direct = p->method == SLM_LOAD_URING && p->direct;
	char why[128];
	int rc;
	if (!gguf_from_file(m->file))
		return slm_error_set(r->err, SLM_EINVAL,
				     "%s was opened from memory, not a file: "
				     "only model.load = mmap can use it",
				     m->path);
restart:
	if ((rc = open_reader(r, want_direct, why, sizeof(why))))
		return rc;
	if (why[0]) {
		char msg[160];
		snprintf(msg, sizeof(msg), "%s: reading through the page cache",
			 why);
		fallback(w, r->path, msg);
	}
	if ((rc = gguf_check_same_file(m->file, r->fd, r->err)))
		goto out;
	r->file_size = gguf_file_size(m->file);
	if (r->direct) {
		r->start = round_down(r->start, r->align);
		r->block = round_up(r->block, r->align);
	}
	/* Allocate once, for the widest range (the direct one). */
	if (!w->mem.ptr) {
		uint64_t len = round_up(r->end - r->start, r->align);
		static const unsigned flags[] = {
			[SLM_LOAD_THP_COLLAPSE] = SLM_NUMA_NO_THP,
			[SLM_LOAD_THP_FAULT] = 0,
			[SLM_LOAD_THP_OFF] = SLM_NUMA_NO_HUGE,
		};
		/* With the prefault thread, reserved huge pages are zeroed
		 * while the reads run, not before: the memory is touched
		 * only through the kernel (populate, O_DIRECT) until then,
		 * so a shortage is an error, never SIGBUS. */
		unsigned f = flags[p->thp] |
			     (p->prefault ? SLM_NUMA_NO_POPULATE : 0);
		uint64_t t = slm_now_ns();
		if ((rc = slm_numa_alloc((size_t)len, p->node, f, &w->mem,
					 r->err)))
			goto out;
		w->alloc_ns = slm_now_ns() - t;
		/* Buffered reads after a direct attempt keep the direct
		 * start, so the region's layout does not change. */
	}
	r->buf = w->mem.ptr;
	r->total = r->end - r->start;
	r->done = 0;
	struct prefault pf = {0};
	if (p->prefault) {
		prefault_start(&pf, &w->mem);
		if (pf.running)
			r->frontier = &pf.frontier;
	}
	if (p->method == SLM_LOAD_URING) {
		struct io_uring ring;
		struct slm_error uerr = {0};
		uint32_t depth = p->queue_depth ? p->queue_depth
						: SLM_LOAD_DEFAULT_QUEUE_DEPTH;
		bool no_uring = r->faults && r->faults->no_uring;
		if (!no_uring && ring_init(&ring, depth, &uerr, r->path) == 0) {
			rc = read_range_uring(r, &ring, depth);
			io_uring_queue_exit(&ring);
		} else {
			fallback(w, r->path,
				 "io_uring is not available: reading with "
				 "pread");
			w->method = SLM_LOAD_READ;
			w->queue_depth = 1;
			rc = read_range_pread(r);
		}
	} else {
		rc = read_range_pread(r);
	}
	prefault_stop(&pf);
	r->frontier = NULL;
	w->prefaulted += pf.faulted;
	if (rc == RESTART_BUFFERED) {
		close(r->fd);
		r->fd = -1;
		want_direct = false;
		fallback(w, r->path,
			 "O_DIRECT reads fail with EINVAL: reading through "
			 "the page cache");
		goto restart;
	}
out:
	close(r->fd);
	r->fd = -1;
	return rc;
}

int slm_weights_load(const struct slm_model *m,
		     const struct slm_load_params *params,
		     struct slm_weights **out, struct slm_error *err)
{
	*out = NULL;
	struct slm_load_params p;
	if (params)
		p = *params;
	else
		slm_load_params_default(&p);
	if (!p.queue_depth)
		p.queue_depth = SLM_LOAD_DEFAULT_QUEUE_DEPTH;
	if (!p.block_size)
		p.block_size = SLM_LOAD_DEFAULT_BLOCK_SIZE;
	if (p.queue_depth > 4096 || p.block_size > (1u << 30) ||
	    (unsigned)p.method > SLM_LOAD_MMAP ||
	    (unsigned)p.thp > SLM_LOAD_THP_OFF)
		return slm_error_set(err, SLM_EINVAL,
				     "weights: bad load parameters (queue "
				     "depth %u, block %llu bytes)",
				     p.queue_depth,
				     (unsigned long long)p.block_size);
	uint64_t t0 = slm_now_ns();
	struct slm_weights *w = calloc(1, sizeof(*w));
	if (!w)
		return slm_error_set(err, SLM_ENOMEM, "%s: out of memory",
				     m->path);
	w->method = p.method;
	w->mem.node = -1;
	w->queue_depth = p.method == SLM_LOAD_URING ? p.queue_depth : 1;
	int rc = copy_table(m, w, err);
	if (rc)
		goto fail;

	uint64_t data_offset = gguf_data_offset(m->file);
	struct reader r = {
		.path = m->path,
		.fd = -1,
		.start = data_offset,
		.end = gguf_file_size(m->file),
		.block = p.block_size,
		.faults = p.faults,
		.t0 = t0,
		.last = t0,
		.progress = p.progress,
		.progress_arg = p.progress_arg,
		.interval = p.progress_interval_ns ? p.progress_interval_ns
						   : 100000000ull,
		.err = err,
	};
	if (r.end < r.start) /* no tensors: gguf puts nothing there */
		r.end = r.start;
	r.block = round_up(r.block, 4096);
	struct view_base vb = {.data_offset = data_offset};
	if (p.method == SLM_LOAD_MMAP) {
		r.total = r.end - r.start;
		if ((rc = populate_mapping(m, &r)))
			goto fail;
		vb.base = gguf_mapping(m->file) + data_offset;
		vb.start = data_offset;
	} else {
		if ((rc = load_region(m, &p, &r, w)))
			goto fail;
		vb.base = w->mem.ptr;
		vb.start = r.start;
		w->direct = r.direct;
		w->dio_align = r.direct ? r.align : 0;
	}
	w->block_size = r.block;
	slm_tensors_for_each(&w->t, point_view, &vb);
	w->bytes = r.end - data_offset;
	w->elapsed_ns = slm_now_ns() - t0;
	if (p.method != SLM_LOAD_MMAP && p.thp == SLM_LOAD_THP_COLLAPSE)
		collapse_start(w);
	r.done = r.total;
	report(&r, true);
	SLM_DEBUG(LOG, "%s: %llu bytes in %.3f s (%s%s)", m->path,
		  (unsigned long long)w->bytes, (double)w->elapsed_ns / 1e9,
		  slm_load_method_name(w->method),
		  w->direct ? ", O_DIRECT" : "");
	*out = w;
	return 0;
fail:
	slm_weights_free(w);
	return rc;
}

void slm_weights_free(struct slm_weights *w)
{
	if (!w)
		return;
	if (w->collapse) {
		__atomic_store_n(&w->collapse->stop, 1, __ATOMIC_RELAXED);
		slm_weights_wait_huge(w);
	}
	slm_numa_free(&w->mem);
	free(w->t.layers);
	free(w);
}

/* ---- the raw rate, for benchmarks ---------------------------------------- */

int slm_weights_read_raw(const char *path, uint64_t offset, uint64_t len,
			 uint32_t queue_depth, uint64_t block_size,
			 uint64_t *bytes, uint64_t *elapsed_ns,
			 struct slm_error *err)
{
	*bytes = 0;
	*elapsed_ns = 0;
	if (!queue_depth || queue_depth > 4096 || !block_size ||
	    block_size > (1u << 30))
		return slm_error_set(err, SLM_EINVAL,
				     "raw read: bad queue depth %u or block "
				     "size %llu",
				     queue_depth,
				     (unsigned long long)block_size);
	struct reader r = {.path = path, .fd = -1, .err = err};
	char why[128];
	int rc = open_reader(&r, true, why, sizeof(why));
	if (rc)
		return rc;
	if (!r.direct) {
		close(r.fd);
		return slm_error_set(err, SLM_EUNSUPPORTED, "%s: %s", path,
				     why);
	}
	struct stat st;
	if (fstat(r.fd, &st) != 0) {
		rc = slm_error_errno(err, SLM_EIO, errno, "cannot stat %s",
				     path);
		close(r.fd);
		return rc;
	}
	r.file_size = (uint64_t)st.st_size;
	r.start = round_down(offset, r.align);
	r.end = SLM_MIN(offset + len, r.file_size);
	if (r.end < r.start)
		r.end = r.start;
	r.block = round_up(block_size, r.align);
	struct slm_numa_mem mem;
	/* The destination is in place before the clock starts: as big as
	 * the range (a ring of a few blocks would stay in the CPU's cache
	 * and flatter the device), pre-faulted on huge pages, so the time
	 * is the device's and the memory's, not the allocator's. */
	uint64_t dest = round_up(r.end - r.start, r.align);
	if ((rc = slm_numa_alloc((size_t)dest, SLM_NUMA_LOCAL, 0, &mem, err))) {
		close(r.fd);
		return rc;
	}
	memset(mem.ptr, 0, mem.size);
	r.buf = mem.ptr;
	struct io_uring ring;
	uint64_t t0 = slm_now_ns();
	if ((rc = ring_init(&ring, queue_depth, err, path)) == 0) {
		rc = read_range_uring(&r, &ring, queue_depth);
		io_uring_queue_exit(&ring);
	}
	*elapsed_ns = slm_now_ns() - t0;
	*bytes = r.done;
	slm_numa_free(&mem);
	close(r.fd);
	return rc == RESTART_BUFFERED
		       ? slm_error_set(err, SLM_EUNSUPPORTED,
				       "%s: O_DIRECT reads fail with EINVAL",
				       path)
		       : rc;
}
