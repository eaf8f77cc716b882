/*
 * uring.h: the kernel dataplane backend: UDP sockets driven by io_uring.
 *
 * Each queue is one thread with its own socket (SO_REUSEPORT spreads
 * clients over the sockets by address hash when there are several), its
 * own ring, and a provided-buffer ring of receive buffers registered with
 * io_uring_register_buf_ring on memory this module maps (liburing 2.3
 * has no helper that sets one up).  One multishot recvmsg keeps
 * receiving into those buffers; sends are sendmsg SQEs submitted in one
 * batch per loop.  The ring is created with DEFER_TASKRUN (completions
 * are posted when the thread asks, which is what a busy-polling thread
 * wants) and falls back to COOP_TASKRUN or plain rings on older kernels.
 * IPv4 and IPv6: the listen address decides; "[::]" is dual-stack.
 *
 * Adaptive polling: while datagrams or events keep coming the thread
 * spins (one io_uring_enter per round that submits and collects); after
 * a budget of at most dataplane.spin_us without work it blocks in the
 * kernel until a datagram, an eventfd write from a worker (session wake
 * hook) or the session's next timer.  The budget halves after each spin
 * window that caught nothing and doubles when one does, so a thread
 * whose CPU is shared with the peer it waits for (which cannot run while
 * it spins) falls back to sleeping instead of delaying every reply by
 * the window.  Spinning buys latency with a core; a wake-up from sleep
 * costs several to tens of microseconds on a VM (docs/benchmarks.md has
 * the measured trade).
 *
 * The ops table is dp_uring_ops (backend.h).
 */
#ifndef SLM_DATAPLANE_URING_H
#define SLM_DATAPLANE_URING_H

#include "dataplane/backend.h"

/* The io_uring setup flags the queues ended up with (for the log):
 * "defer_taskrun", "coop_taskrun" or "plain".  Valid after start. */
const char *dp_uring_mode(const struct dp_backend *b);

#endif
