#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "daemon/daemon.h"
#include "tests/unit/harness.h"

/* A component that records what happened to it, in one shared log. */
static char history[1024];
static pthread_mutex_t history_lock = PTHREAD_MUTEX_INITIALIZER;

static void note(const char *fmt, const char *name)
{
	pthread_mutex_lock(&history_lock);
	size_t len = strlen(history);
	snprintf(history + len, sizeof(history) - len, fmt, name);
	pthread_mutex_unlock(&history_lock);
}

struct fake {
	const char *name;
	int fail_start;
	int polls_until_idle; /* drain finishes after this many idle polls */
	int healthy;
	int reloads;
	int64_t seen_drain_timeout;
};

static int fake_start(void *ctx, struct slmd *d, struct slm_error *err)
{
	struct fake *f = ctx;
	note("start:%s ", f->name);
	if (f->fail_start)
		return slm_error_set(err, SLM_EIO, "cannot bind");
	return 0;
}

static void fake_drain(void *ctx)
{
	note("drain:%s ", ((struct fake *)ctx)->name);
}

static bool fake_idle(void *ctx)
{
	struct fake *f = ctx;
	return f->polls_until_idle-- <= 0;
}

static void fake_stop(void *ctx)
{
	note("stop:%s ", ((struct fake *)ctx)->name);
}

static int fake_reload(void *ctx, const struct slm_config *cfg,
		       struct slm_error *err)
{
	struct fake *f = ctx;
	f->reloads++;
	f->seen_drain_timeout =
		slm_cfg_int(cfg, SLM_CFG_DAEMON_DRAIN_TIMEOUT_MS);
	return 0;
}

static bool fake_healthy(void *ctx)
{
	return __atomic_load_n(&((struct fake *)ctx)->healthy,
			       __ATOMIC_RELAXED);
}

static struct slmd_component component(struct fake *f)
{
	return (struct slmd_component){.name = f->name,
				       .ctx = f,
				       .start = fake_start,
				       .drain = fake_drain,
				       .idle = fake_idle,
				       .stop = fake_stop,
				       .reload = fake_reload,
				       .healthy = fake_healthy};
}

/* An observer that records states and health verdicts. */
struct watch {
	char states[256];
	int healthy_ticks, unhealthy_ticks;
	int reload_begin, reload_end;
};

static void watch_state(void *ctx, enum slmd_state state, const char *detail)
{
	struct watch *w = ctx;
	size_t len = strlen(w->states);
	snprintf(w->states + len, sizeof(w->states) - len, "%s ",
		 slmd_state_name(state));
}

static void watch_health(void *ctx, bool ok)
{
	struct watch *w = ctx;
	__atomic_add_fetch(ok ? &w->healthy_ticks : &w->unhealthy_ticks, 1,
			   __ATOMIC_RELAXED);
}

static void watch_reloading(void *ctx, bool begin)
{
	struct watch *w = ctx;
	(*(begin ? &w->reload_begin : &w->reload_end))++;
}

static struct slmd_observer observer(struct watch *w)
{
	return (struct slmd_observer){.ctx = w,
				      .state = watch_state,
				      .health = watch_health,
				      .reloading = watch_reloading};
}

struct runner {
	struct slmd *d;
	int rc;
	struct slm_error err;
};

static void *run_thread(void *arg)
{
	struct runner *r = arg;
	r->rc = slmd_run(r->d, &r->err);
	return NULL;
}

static void wait_for_state(struct slmd *d, enum slmd_state s)
{
	for (int i = 0; i < 2000 && slmd_state(d) != s; i++)
		slm_sleep_ns(1000000);
}

static void test_order_and_drain(void)
{
	history[0] = '\0';
	struct slm_config *cfg = slm_config_create();
	struct slmd *d = slmd_create(cfg, NULL);
	struct fake a = {.name = "ctl", .healthy = 1};
	struct fake b = {
		.name = "dataplane", .polls_until_idle = 3, .healthy = 1};
	struct watch w = {0};
	struct slmd_component ca = component(&a), cb = component(&b);
	struct slmd_observer o = observer(&w);
	CU_ASSERT_EQUAL(slmd_add_component(d, &ca), 0);
	CU_ASSERT_EQUAL(slmd_add_component(d, &cb), 0);
	CU_ASSERT_EQUAL(slmd_add_observer(d, &o), 0);
	CU_ASSERT_EQUAL(slmd_n_components(d), 2);
	CU_ASSERT_STRING_EQUAL(slmd_component_name(d, 1), "dataplane");

	struct runner r = {.d = d};
	pthread_t t;
	pthread_create(&t, NULL, run_thread, &r);
	wait_for_state(d, SLMD_SERVING);
	CU_ASSERT_EQUAL(slmd_state(d), SLMD_SERVING);
	slmd_request_stop(d);
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(r.rc, 0);
	/* Started in order, drained and stopped in reverse; the dataplane
	 * was polled until idle before anything stopped. */
	CU_ASSERT_STRING_EQUAL(history, "start:ctl start:dataplane "
					"drain:dataplane drain:ctl "
					"stop:dataplane stop:ctl ");
	CU_ASSERT(b.polls_until_idle < 0);
	CU_ASSERT_STRING_EQUAL(w.states, "serving draining stopping ");
	slmd_destroy(d);
	slm_config_destroy(cfg);
}

static void test_start_failure_unwinds(void)
{
	history[0] = '\0';
	struct slm_config *cfg = slm_config_create();
	struct slmd *d = slmd_create(cfg, NULL);
	struct fake a = {.name = "ctl"},
		    b = {.name = "dataplane", .fail_start = 1},
		    c = {.name = "serve"};
	struct slmd_component ca = component(&a), cb = component(&b),
			      cc = component(&c);
	CU_ASSERT_EQUAL(slmd_add_component(d, &ca), 0);
	CU_ASSERT_EQUAL(slmd_add_component(d, &cb), 0);
	CU_ASSERT_EQUAL(slmd_add_component(d, &cc), 0);
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slmd_run(d, &err), SLM_EIO);
	CU_ASSERT_STRING_EQUAL(err.msg, "dataplane: cannot bind");
	/* Only what started is stopped; serve never started. */
	CU_ASSERT_STRING_EQUAL(history, "start:ctl start:dataplane stop:ctl ");
	CU_ASSERT_EQUAL(slmd_state(d), SLMD_STOPPING);
	slmd_destroy(d);
	slm_config_destroy(cfg);
}

static void test_drain_timeout(void)
{
	struct slm_config *cfg = slm_config_create();
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(
		slm_config_set(cfg, "daemon.drain_timeout_ms", "50", &err), 0);
	struct slmd *d = slmd_create(cfg, NULL);
	struct fake a = {.name = "stuck", .polls_until_idle = 1 << 30};
	struct slmd_component ca = component(&a);
	CU_ASSERT_EQUAL(slmd_add_component(d, &ca), 0);
	struct runner r = {.d = d};
	pthread_t t;
	pthread_create(&t, NULL, run_thread, &r);
	wait_for_state(d, SLMD_SERVING);
	uint64_t t0 = slm_now_ns();
	slmd_request_stop(d);
	pthread_join(t, NULL);
	uint64_t ms = (slm_now_ns() - t0) / 1000000;
	CU_ASSERT_EQUAL(r.rc, 0);
	/* It gave up after the timeout instead of waiting for ever. */
	CU_ASSERT(ms >= 50);
	CU_ASSERT(a.polls_until_idle > 0);
	slmd_destroy(d);
	slm_config_destroy(cfg);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

static void test_sighup_reload(void)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/reload.conf", slm_test_tmpdir());
	write_file(path, "[daemon]\ndrain_timeout_ms = 1000\n"
			 "[engine]\nthreads = 1\n");
	struct slm_config_args args = {.file = path};
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_config_args_add_set(&args, "log.level=warn", &err),
			0);
	struct slm_config *cfg = slm_config_create();
	CU_ASSERT_EQUAL_FATAL(slm_config_apply_args(cfg, &args, &err), 0);
	struct slmd *d = slmd_create(cfg, &args);
	struct fake a = {.name = "serve", .healthy = 1};
	struct watch w = {0};
	struct slmd_component ca = component(&a);
	struct slmd_observer o = observer(&w);
	CU_ASSERT_EQUAL(slmd_add_component(d, &ca), 0);
	CU_ASSERT_EQUAL(slmd_add_observer(d, &o), 0);

	/* Process-directed signals must reach the runner's sigtimedwait, so
	 * every thread of the test blocks them meanwhile. */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	struct runner r = {.d = d};
	pthread_t t;
	pthread_create(&t, NULL, run_thread, &r);
	wait_for_state(d, SLMD_SERVING);

	/* A runtime key and a restart-only key change in the file. */
	write_file(path, "[daemon]\ndrain_timeout_ms = 2500\n"
			 "[engine]\nthreads = 3\n[log]\nlevel = debug\n");
	kill(getpid(), SIGHUP);
	for (int i = 0; i < 2000 && w.reload_end == 0; i++)
		slm_sleep_ns(1000000);
	CU_ASSERT_EQUAL(w.reload_begin, 1);
	CU_ASSERT_EQUAL(w.reload_end, 1);
	CU_ASSERT_EQUAL(a.reloads, 1);
	CU_ASSERT_EQUAL(a.seen_drain_timeout, 2500);
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_DAEMON_DRAIN_TIMEOUT_MS),
			2500);
	/* engine.threads needs a restart: unchanged. */
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_ENGINE_THREADS), 1);
	/* The --set override still wins over the file's log.level. */
	CU_ASSERT_STRING_EQUAL(slm_cfg_enum_name(cfg, SLM_CFG_LOG_LEVEL),
			       "warn");

	/* A bad file changes nothing. */
	write_file(path, "[daemon]\ndrain_timeout_ms = lots\n");
	kill(getpid(), SIGHUP);
	for (int i = 0; i < 2000 && w.reload_end < 2; i++)
		slm_sleep_ns(1000000);
	CU_ASSERT_EQUAL(w.reload_end, 2);
	CU_ASSERT_EQUAL(a.reloads, 1);
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_DAEMON_DRAIN_TIMEOUT_MS),
			2500);

	slmd_request_stop(d);
	pthread_join(t, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	CU_ASSERT_EQUAL(r.rc, 0);
	slmd_destroy(d);
	slm_config_destroy(cfg);
}

static void test_health_ticks(void)
{
	struct slm_config *cfg = slm_config_create();
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(
		slm_config_set(cfg, "daemon.health_interval_ms", "10", &err),
		0);
	struct slmd *d = slmd_create(cfg, NULL);
	struct fake a = {.name = "worker", .healthy = 1};
	struct watch w = {0};
	struct slmd_component ca = component(&a);
	struct slmd_observer o = observer(&w);
	CU_ASSERT_EQUAL(slmd_add_component(d, &ca), 0);
	CU_ASSERT_EQUAL(slmd_add_observer(d, &o), 0);
	struct runner r = {.d = d};
	pthread_t t;
	pthread_create(&t, NULL, run_thread, &r);
	for (int i = 0; i < 2000 &&
			__atomic_load_n(&w.healthy_ticks, __ATOMIC_RELAXED) < 3;
	     i++)
		slm_sleep_ns(1000000);
	CU_ASSERT(w.healthy_ticks >= 3);
	CU_ASSERT_EQUAL(w.unhealthy_ticks, 0);
	CU_ASSERT_EQUAL(slmd_healthy(d), 1);
	/* A stuck worker turns the verdict. */
	__atomic_store_n(&a.healthy, 0, __ATOMIC_RELAXED);
	for (int i = 0; i < 2000 && __atomic_load_n(&w.unhealthy_ticks,
						    __ATOMIC_RELAXED) < 2;
	     i++)
		slm_sleep_ns(1000000);
	CU_ASSERT(w.unhealthy_ticks >= 2);
	CU_ASSERT_EQUAL(slmd_healthy(d), 0);
	slmd_request_stop(d);
	pthread_join(t, NULL);
	slmd_destroy(d);
	slm_config_destroy(cfg);
}

static void test_drain_stays_up(void)
{
	history[0] = '\0';
	struct slm_config *cfg = slm_config_create();
	struct slmd *d = slmd_create(cfg, NULL);
	struct fake a = {.name = "serve", .polls_until_idle = 3, .healthy = 1};
	struct watch w = {0};
	struct slmd_component ca = component(&a);
	struct slmd_observer o = observer(&w);
	CU_ASSERT_EQUAL(slmd_add_component(d, &ca), 0);
	CU_ASSERT_EQUAL(slmd_add_observer(d, &o), 0);
	struct runner r = {.d = d};
	pthread_t t;
	pthread_create(&t, NULL, run_thread, &r);
	wait_for_state(d, SLMD_SERVING);
	CU_ASSERT_FALSE(slmd_drained(d));
	slmd_request_drain(d);
	wait_for_state(d, SLMD_DRAINING);
	CU_ASSERT_EQUAL(slmd_state(d), SLMD_DRAINING);
	for (int i = 0; i < 2000 && !slmd_drained(d); i++)
		slm_sleep_ns(1000000);
	/* Idle after the drain, and still running: not exiting; for the
	 * observers (systemd) no state change yet. */
	CU_ASSERT_TRUE(slmd_drained(d));
	CU_ASSERT_FALSE(slmd_exiting(d));
	CU_ASSERT_STRING_EQUAL(w.states, "serving ");
	/* A load finishing now cannot undo the drain. */
	CU_ASSERT_FALSE(slmd_transition(d, SLMD_LOADING, SLMD_SERVING, NULL));
	slm_sleep_ns(120 * 1000000);
	CU_ASSERT_EQUAL(slmd_state(d), SLMD_DRAINING);
	/* A second request changes nothing. */
	slmd_request_drain(d);
	slmd_request_stop(d);
	CU_ASSERT_TRUE(slmd_exiting(d));
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(r.rc, 0);
	/* The drain hook ran once; observers heard of draining only when
	 * the stop began (to systemd the drained service still ran). */
	CU_ASSERT_STRING_EQUAL(history, "start:serve drain:serve stop:serve ");
	CU_ASSERT_STRING_EQUAL(w.states, "serving draining stopping ");
	slmd_destroy(d);
	slm_config_destroy(cfg);
}

struct notes {
	char text[512];
};

static void note_key(void *ctx, const char *key, const char *old_value,
		     const char *new_value, bool applied)
{
	struct notes *n = ctx;
	size_t len = strlen(n->text);
	snprintf(n->text + len, sizeof(n->text) - len, "%s:%s->%s:%s ", key,
		 old_value, new_value, applied ? "applied" : "restart");
}

static void test_runtime_from_another_thread(void)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/runtime.conf", slm_test_tmpdir());
	write_file(path, "[daemon]\ndrain_timeout_ms = 1000\n");
	struct slm_config_args args = {.file = path};
	struct slm_error err = {0};
	struct slm_config *cfg = slm_config_create();
	CU_ASSERT_EQUAL_FATAL(slm_config_apply_args(cfg, &args, &err), 0);
	struct slmd *d = slmd_create(cfg, &args);
	struct fake a = {.name = "serve", .healthy = 1};
	struct watch w = {0};
	struct slmd_component ca = component(&a);
	struct slmd_observer o = observer(&w);
	CU_ASSERT_EQUAL(slmd_add_component(d, &ca), 0);
	CU_ASSERT_EQUAL(slmd_add_observer(d, &o), 0);
	struct runner r = {.d = d};
	pthread_t t;
	pthread_create(&t, NULL, run_thread, &r);
	wait_for_state(d, SLMD_SERVING);

	/* A runtime change: stored, hooks told, observers told. */
	const char *keys[] = {"daemon.drain_timeout_ms", "log.level"};
	const char *vals[] = {"1500", "warn"};
	CU_ASSERT_EQUAL(slmd_set_runtime(d, 2, keys, vals, "test", &err), 0);
	CU_ASSERT_EQUAL(a.reloads, 1);
	CU_ASSERT_EQUAL(a.seen_drain_timeout, 1500);
	CU_ASSERT_EQUAL(w.reload_begin, 1);
	CU_ASSERT_EQUAL(w.reload_end, 1);
	CU_ASSERT_EQUAL(slm_log_get_level(), SLM_LOG_WARN);
	CU_ASSERT_STRING_EQUAL(
		slm_config_origin(cfg, SLM_CFG_DAEMON_DRAIN_TIMEOUT_MS),
		"test");
	/* A restart-only key: refused, nothing changed, no hook. */
	const char *bad_keys[] = {"daemon.drain_timeout_ms", "engine.threads"};
	const char *bad_vals[] = {"10", "3"};
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slmd_set_runtime(d, 2, bad_keys, bad_vals, NULL, &err),
			SLM_ESTATE);
	CU_ASSERT_EQUAL(a.reloads, 1);
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_DAEMON_DRAIN_TIMEOUT_MS),
			1500);

	/* A reload on request: the file wins over the runtime change, the
	 * restart-only change is reported and kept. */
	write_file(path, "[daemon]\ndrain_timeout_ms = 2000\n"
			 "[engine]\nthreads = 3\n[log]\nlevel = warn\n");
	struct notes n = {{0}};
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slmd_reload(d, note_key, &n, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(
		strstr(n.text, "daemon.drain_timeout_ms:1500->2000:applied"));
	CU_ASSERT_PTR_NOT_NULL(strstr(n.text, "engine.threads:0->3:restart"));
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_DAEMON_DRAIN_TIMEOUT_MS),
			2000);
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_ENGINE_THREADS), 0);
	CU_ASSERT_EQUAL(a.reloads, 2);
	/* A bad file: an error naming the line, nothing changed. */
	write_file(path, "[daemon]\ndrain_timeout_ms = soon\n");
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slmd_reload(d, NULL, NULL, &err), SLM_ECONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "runtime.conf:2"));
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_DAEMON_DRAIN_TIMEOUT_MS),
			2000);
	slm_log_set_level(SLM_LOG_INFO);

	slmd_request_stop(d);
	pthread_join(t, NULL);
	slmd_destroy(d);
	slm_config_destroy(cfg);
}

static void test_transition_only_from(void)
{
	struct slm_config *cfg = slm_config_create();
	struct slmd *d = slmd_create(cfg, NULL);
	struct watch w = {0};
	struct slmd_observer o = observer(&w);
	CU_ASSERT_EQUAL(slmd_add_observer(d, &o), 0);
	slmd_set_state(d, SLMD_LOADING, "model.gguf");
	/* A drain began while the model loaded... */
	slmd_set_state(d, SLMD_DRAINING, NULL);
	/* ...so the load finishing must not bring serving back. */
	CU_ASSERT_FALSE(slmd_transition(d, SLMD_LOADING, SLMD_SERVING, NULL));
	CU_ASSERT_EQUAL(slmd_state(d), SLMD_DRAINING);
	CU_ASSERT_TRUE(slmd_transition(d, SLMD_DRAINING, SLMD_STOPPING, NULL));
	CU_ASSERT_STRING_EQUAL(w.states, "loading draining stopping ");
	slmd_destroy(d);
	slm_config_destroy(cfg);
}

SLM_SUITE("daemon", NULL, NULL, {"order and drain", test_order_and_drain},
	  {"start failure unwinds", test_start_failure_unwinds},
	  {"drain timeout", test_drain_timeout},
	  {"sighup reload", test_sighup_reload},
	  {"health ticks", test_health_ticks},
	  {"transition only from", test_transition_only_from},
	  {"drain stays up", test_drain_stays_up},
	  {"runtime change and reload on request",
	   test_runtime_from_another_thread})
