/*
 * testhook.h: TEST-ONLY behaviour of slmd, switched on by environment
 * variables.  Never set them on a production service.
 *
 * The tests of the systemd integration (tests/integration/systemd_*.sh)
 * need slmd to do on cue what a healthy daemon never does: load slowly,
 * get stuck, keep a request in flight while it drains.  This component
 * does exactly that, and nothing unless asked:
 *
 *   SLMD_TEST_LOAD_MS=N        a pretend model load of N ms when no real
 *                              component loads one: state loading with
 *                              status lines "loading test model: P%" every
 *                              tenth, then state serving.  If a component
 *                              started earlier already set the state to
 *                              loading (the serving core), the real load
 *                              is left alone and this does nothing.
 *   SLMD_TEST_STALL_FILE=PATH  a worker thread counts its progress every
 *                              5 ms, and gets stuck while PATH exists; the
 *                              component is healthy only when the count
 *                              moved since the last health check, so
 *                              creating the file stops the watchdog pings
 *                              and removing it starts them again.  Needs
 *                              daemon.health_interval_ms >= 10.
 *   SLMD_TEST_INFLIGHT_MS=N    a request in flight when a drain begins,
 *                              finishing N ms later (idle until then).
 *
 * slmd adds the component last, only when one of them is set, and logs a
 * warning naming them.
 */
#ifndef SLM_DAEMON_TESTHOOK_H
#define SLM_DAEMON_TESTHOOK_H

#include <stdbool.h>

#include "common/err.h"
#include "daemon/daemon.h"

struct slmd_testhook;

/* True when any SLMD_TEST_* variable above is set. */
bool slmd_testhook_wanted(void);

/*
 * Read the variables and make the component (add it with
 * slmd_add_component(d, slmd_testhook_component(t))).  SLM_EINVAL with err
 * naming the variable when a value is not a number in 0..3600000.
 */
int slmd_testhook_create(struct slmd_testhook **out,
			 struct slm_error *err) SLM_MUST_CHECK;
void slmd_testhook_destroy(struct slmd_testhook *t);

/* The component; valid while t lives. */
struct slmd_component slmd_testhook_component(struct slmd_testhook *t);

/* What is active, e.g. "load 600 ms, stall file /tmp/x" (for the log). */
const char *slmd_testhook_describe(const struct slmd_testhook *t);

#endif
