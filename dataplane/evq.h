/*
 * evq.h: the queue that carries serving-core events from worker threads
 * to one dataplane thread, and the wake-up protocol around it.
 *
 * Many producers (workers, inside the non-blocking event callback), one
 * consumer (the dataplane thread that owns the session).  It is Dmitry
 * Vyukov's intrusive MPSC queue: a push is one atomic exchange and one
 * store, never waits and never fails; the nodes are the events
 * themselves, so the queue needs no capacity (the bound on memory is the
 * bound on requests in flight).  A pop can see a push half done (the
 * producer exchanged the head but has not linked its node yet); it then
 * reports "busy" and the consumer simply looks again later.
 *
 * Sleeping: before the consumer blocks it sets `sleeping`, then checks the
 * queue once more; a producer, after its push, checks `sleeping` and, if
 * set, clears it and wakes the consumer (the backend's wake hook: an
 * eventfd write on the kernel path).  With a full fence on both sides
 * between the write and the read (a Dekker pair), at least one of them
 * sees the other: either the consumer sees the event and does not sleep,
 * or the producer sees the flag and wakes it.
 */
#ifndef SLM_DATAPLANE_EVQ_H
#define SLM_DATAPLANE_EVQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/compiler.h"

struct dp_evq_node {
	_Atomic(struct dp_evq_node *) next;
};

struct dp_evq {
	/* Producers: the most recently pushed node. */
	_Atomic(struct dp_evq_node *) head SLM_ALIGNED_CACHE;
	/* Consumer only: the oldest node not yet popped (or the stub). */
	struct dp_evq_node *tail SLM_ALIGNED_CACHE;
	struct dp_evq_node stub;
	/* 1 while the consumer is (about to be) blocked. */
	atomic_int sleeping SLM_ALIGNED_CACHE;
};

static inline void dp_evq_init(struct dp_evq *q)
{
	atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
	atomic_store_explicit(&q->head, &q->stub, memory_order_relaxed);
	q->tail = &q->stub;
	atomic_store_explicit(&q->sleeping, 0, memory_order_relaxed);
}

/* Any thread.  Never blocks. */
static inline void dp_evq_push(struct dp_evq *q, struct dp_evq_node *n)
{
	atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
	/* acq_rel: release publishes n's contents (and next = NULL) to the
	 * producer that links after us and to the consumer; acquire orders
	 * our store into prev->next after whoever pushed prev. */
	struct dp_evq_node *prev =
		atomic_exchange_explicit(&q->head, n, memory_order_acq_rel);
	/* release: the consumer that reads prev->next (acquire) sees n's
	 * contents. */
	atomic_store_explicit(&prev->next, n, memory_order_release);
}

/*
 * Consumer only.  The oldest node, or NULL when the queue is empty or a
 * push is half done (then dp_evq_maybe_nonempty stays true).
 */
static inline struct dp_evq_node *dp_evq_pop(struct dp_evq *q)
{
	struct dp_evq_node *tail = q->tail;
	/* acquire: pairs with the push's release store of next. */
	struct dp_evq_node *next =
		atomic_load_explicit(&tail->next, memory_order_acquire);
	if (tail == &q->stub) {
		if (!next)
			return NULL;
		q->tail = next;
		tail = next;
		next = atomic_load_explicit(&next->next, memory_order_acquire);
	}
	if (next) {
		q->tail = next;
		return tail;
	}
	/* tail is the last linked node.  If the head moved past it, a
	 * producer is between its exchange and its link: come back later. */
	if (tail != atomic_load_explicit(&q->head, memory_order_acquire))
		return NULL;
	/* Put the stub back behind tail so tail can be handed out. */
	dp_evq_push(q, &q->stub);
	next = atomic_load_explicit(&tail->next, memory_order_acquire);
	if (next) {
		q->tail = next;
		return tail;
	}
	return NULL;
}

/* Consumer only: false only when no push has started that was not
 * popped. */
static inline bool dp_evq_maybe_nonempty(struct dp_evq *q)
{
	return atomic_load_explicit(&q->head, memory_order_acquire) !=
		       q->tail ||
	       atomic_load_explicit(&q->tail->next, memory_order_acquire);
}

/*
 * Consumer, before blocking: announce it, then look again.  Returns true
 * when it may block (every later push will call the wake hook), false
 * when something arrived (the flag is cleared again).
 */
static inline bool dp_evq_prepare_sleep(struct dp_evq *q)
{
	atomic_store_explicit(&q->sleeping, 1, memory_order_relaxed);
	/* Full fence: the flag store is visible before we read the head
	 * (pairs with the fence in dp_evq_push_wake). */
	atomic_thread_fence(memory_order_seq_cst);
	if (dp_evq_maybe_nonempty(q)) {
		atomic_store_explicit(&q->sleeping, 0, memory_order_relaxed);
		return false;
	}
	return true;
}

/* Consumer, after blocking. */
static inline void dp_evq_awake(struct dp_evq *q)
{
	atomic_store_explicit(&q->sleeping, 0, memory_order_relaxed);
}

/*
 * Producer: push, and return true when the consumer sleeps and this
 * caller must wake it (only one of several racing producers gets true).
 */
static inline bool dp_evq_push_wake(struct dp_evq *q, struct dp_evq_node *n)
{
	dp_evq_push(q, n);
	/* Full fence: our push (the head exchange) is visible before we read
	 * the flag (pairs with the fence in dp_evq_prepare_sleep). */
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(&q->sleeping, memory_order_relaxed))
		return false;
	return atomic_exchange_explicit(&q->sleeping, 0,
					memory_order_relaxed) != 0;
}

#endif
