#include "ctl/perf.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

double perf_ns_per_cycle;

/* ---- names ------------------------------------------------------------- */

static const char *const stage_names[] = {
#define PERF_STAGE_NAME(id, name, help) name,
	PERF_STAGES(PERF_STAGE_NAME)
#undef PERF_STAGE_NAME
};
static const char *const stage_helps[] = {
#define PERF_STAGE_HELP(id, name, help) help,
	PERF_STAGES(PERF_STAGE_HELP)
#undef PERF_STAGE_HELP
};
static const char *const counter_names[] = {
#define PERF_COUNTER_NAME(id, name, help) name,
	PERF_COUNTERS(PERF_COUNTER_NAME)
#undef PERF_COUNTER_NAME
};
static const char *const counter_helps[] = {
#define PERF_COUNTER_HELP(id, name, help) help,
	PERF_COUNTERS(PERF_COUNTER_HELP)
#undef PERF_COUNTER_HELP
};

const char *perf_stage_name(enum perf_stage s)
{
	return (unsigned)s < PERF_STAGE__COUNT ? stage_names[s] : "?";
}

const char *perf_stage_help(enum perf_stage s)
{
	return (unsigned)s < PERF_STAGE__COUNT ? stage_helps[s] : "?";
}

const char *perf_counter_name(enum perf_counter c)
{
	return (unsigned)c < PERF_C__COUNT ? counter_names[c] : "?";
}

const char *perf_counter_help(enum perf_counter c)
{
	return (unsigned)c < PERF_C__COUNT ? counter_helps[c] : "?";
}

const char *perf_activity_name(enum perf_activity a)
{
	static const char *const names[] = {"-",       "idle",	 "poll",
					    "prefill", "decode", "io"};
	return (unsigned)a < PERF_ACT__COUNT ? names[a] : "?";
}

static const struct {
	const char *name, *help;
} event_info[PERF_EV__COUNT] = {
	[PERF_EV_TASK_CLOCK] = {"thread_cpu_seconds_total",
				"CPU time of the thread (task clock)"},
	[PERF_EV_CONTEXT_SWITCHES] = {"thread_context_switches_total",
				      "context switches of the thread"},
	[PERF_EV_PAGE_FAULTS] = {"thread_page_faults_total",
				 "page faults of the thread"},
	[PERF_EV_CPU_MIGRATIONS] = {"thread_cpu_migrations_total",
				    "moves of the thread to another CPU"},
	[PERF_EV_CYCLES] = {"thread_cycles_total", "CPU cycles (PMU)"},
	[PERF_EV_INSTRUCTIONS] = {"thread_instructions_total",
				  "instructions retired (PMU)"},
	[PERF_EV_CACHE_MISSES] = {"thread_cache_misses_total",
				  "last-level cache misses (PMU)"},
	[PERF_EV_BRANCH_MISSES] = {"thread_branch_misses_total",
				   "mispredicted branches (PMU)"},
};

const char *perf_event_name(enum perf_event_id e)
{
	return (unsigned)e < PERF_EV__COUNT ? event_info[e].name : "?";
}

/* ---- reasons ----------------------------------------------------------- */

#define REASON_NAME_MAX 48

static char reason_names[PERF_REASONS_MAX][REASON_NAME_MAX];
static int n_reasons; /* atomic: names below it are written */
static pthread_mutex_t reason_lock = PTHREAD_MUTEX_INITIALIZER;

static bool valid_name(const char *name, size_t max)
{
	size_t len = strlen(name);
	if (len == 0 || len >= max)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || c == '_' ||
		      (i > 0 && c >= '0' && c <= '9')))
			return false;
	}
	return true;
}

int perf_reason_id(const char *name)
{
	if (!name || !valid_name(name, REASON_NAME_MAX))
		return SLM_EINVAL;
	pthread_mutex_lock(&reason_lock);
	int id;
	for (id = 0; id < n_reasons; id++)
		if (!strcmp(reason_names[id], name))
			break;
	if (id == n_reasons) {
		if (id == PERF_REASONS_MAX) {
			id = SLM_ENOMEM;
		} else {
			snprintf(reason_names[id], REASON_NAME_MAX, "%s", name);
			/* Publishes the name before the count covers it. */
			__atomic_store_n(&n_reasons, id + 1, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&reason_lock);
	return id;
}

const char *perf_reason_name(int id)
{
	if (id < 0 || id >= __atomic_load_n(&n_reasons, __ATOMIC_ACQUIRE))
		return "?";
	return reason_names[id];
}

/* ---- the registry ------------------------------------------------------ */

/* A group of kernel counters read with one read(): the leader's fd, the
 * members' fds, and which event each value in a read is. */
struct ev_group {
	int leader;
	int member[4];
	int ev[4];
	int n; /* events taken, leader first */
};

struct perf_thread_priv {
	struct perf_thread *next;
	char name[48];
	char role[24];
	int group;
	pid_t tid;
	uint64_t counters;
	uint32_t stages;
	struct ev_group sw, hw;
};

struct source {
	struct source *next;
	char name[48];
	perf_collect_fn fn;
	void *ctx;
};

/* Guards threads, exited and sources; held while a snapshot is taken. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct perf_thread *threads;
static struct perf_thread *exited;
static struct source *sources;

static __thread struct perf_thread *self;
static bool kernel_events = true;  /* atomic */
static const char *hw_status_text; /* atomic; set by hw_probe */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_once_t hw_once = PTHREAD_ONCE_INIT;

static void perf_init(void)
{
	perf_ns_per_cycle = 1.0 / slm_cycles_per_ns();
}

void perf_configure(bool on)
{
	__atomic_store_n(&kernel_events, on, __ATOMIC_RELAXED);
}

static void hw_probe(void);

const char *perf_hw_status(void)
{
	if (!__atomic_load_n(&kernel_events, __ATOMIC_RELAXED))
		return "off (perf.events = false)";
	pthread_once(&hw_once, hw_probe);
	return __atomic_load_n(&hw_status_text, __ATOMIC_ACQUIRE);
}

struct perf_thread *perf_self(void)
{
	return self;
}

static int event_open(uint32_t type, uint64_t config, int group_fd,
		      bool user_only, uint64_t read_format)
{
	struct perf_event_attr a;
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.type = type;
	a.config = config;
	a.exclude_hv = 1;
	a.exclude_kernel = user_only;
	a.read_format = read_format;
	return (int)syscall(SYS_perf_event_open, &a, 0, -1, group_fd,
			    PERF_FLAG_FD_CLOEXEC);
}

#define GROUP_FORMAT                                          \
	(PERF_FORMAT_GROUP | PERF_FORMAT_TOTAL_TIME_ENABLED | \
	 PERF_FORMAT_TOTAL_TIME_RUNNING)

struct ev_spec {
	int id;
	uint32_t type;
	uint64_t config;
};

/*
 * Open a group of counters of the calling thread; the first is the
 * leader, the members the kernel refuses are left out.  Without the
 * privilege to count kernel mode, counts user mode only.  Returns 0 or
 * -errno of the leader.
 */
static int group_open(struct ev_group *g, const struct ev_spec *spec, int n)
{
	bool user_only = false;
	g->n = 0;
	g->leader = event_open(spec[0].type, spec[0].config, -1, false,
			       GROUP_FORMAT);
	if (g->leader < 0 && (errno == EACCES || errno == EPERM)) {
		user_only = true;
		g->leader = event_open(spec[0].type, spec[0].config, -1, true,
				       GROUP_FORMAT);
	}
	if (g->leader < 0) {
		int e = errno;
		g->leader = -1;
		return -e;
	}
	g->ev[g->n++] = spec[0].id;
	for (int i = 1; i < n; i++) {
		int fd = event_open(spec[i].type, spec[i].config, g->leader,
				    user_only, GROUP_FORMAT);
		if (fd >= 0) {
			g->member[g->n] = fd;
			g->ev[g->n++] = spec[i].id;
		}
	}
	return 0;
}

static void group_close(struct ev_group *g)
{
	for (int i = 1; i < g->n; i++)
		close(g->member[i]);
	if (g->leader >= 0)
		close(g->leader);
	g->leader = -1;
	g->n = 0;
}

/* Can this machine count cycles?  Asked once, by opening one counter. */
static void hw_probe(void)
{
	int fd = event_open(PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES, -1,
			    false, 0);
	if (fd < 0 && (errno == EACCES || errno == EPERM))
		fd = event_open(PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES,
				-1, true, 0);
	int e = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	const char *text = NULL;
	switch (e) {
	case 0:
		break;
	case ENOENT:
	case ENODEV:
	case EOPNOTSUPP:
		text = "not supported on this machine";
		break;
	case EACCES:
	case EPERM:
		text = "not permitted (kernel.perf_event_paranoid, or a "
		       "seccomp filter)";
		break;
	case ENOSYS:
		text = "not available (no perf_event_open in this kernel)";
		break;
	default:
		text = "cannot be opened";
		break;
	}
	__atomic_store_n(&hw_status_text, text, __ATOMIC_RELEASE);
}

static void open_kernel_counters(struct perf_thread_priv *p)
{
	if (!__atomic_load_n(&kernel_events, __ATOMIC_RELAXED))
		return;
	static const struct ev_spec sw[] = {
		{PERF_EV_TASK_CLOCK, PERF_TYPE_SOFTWARE,
		 PERF_COUNT_SW_TASK_CLOCK},
		{PERF_EV_CONTEXT_SWITCHES, PERF_TYPE_SOFTWARE,
		 PERF_COUNT_SW_CONTEXT_SWITCHES},
		{PERF_EV_PAGE_FAULTS, PERF_TYPE_SOFTWARE,
		 PERF_COUNT_SW_PAGE_FAULTS},
		{PERF_EV_CPU_MIGRATIONS, PERF_TYPE_SOFTWARE,
		 PERF_COUNT_SW_CPU_MIGRATIONS},
	};
	static const struct ev_spec hw[] = {
		{PERF_EV_CYCLES, PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES},
		{PERF_EV_INSTRUCTIONS, PERF_TYPE_HARDWARE,
		 PERF_COUNT_HW_INSTRUCTIONS},
		{PERF_EV_CACHE_MISSES, PERF_TYPE_HARDWARE,
		 PERF_COUNT_HW_CACHE_MISSES},
		{PERF_EV_BRANCH_MISSES, PERF_TYPE_HARDWARE,
		 PERF_COUNT_HW_BRANCH_MISSES},
	};
	(void)group_open(&p->sw, sw, 4);
	pthread_once(&hw_once, hw_probe);
	if (!__atomic_load_n(&hw_status_text, __ATOMIC_ACQUIRE))
		(void)group_open(&p->hw, hw, 4);
}

static void thread_free(struct perf_thread *pt)
{
	if (!pt)
		return;
	struct perf_thread_priv *p = pt->priv;
	if (p) {
		group_close(&p->sw);
		group_close(&p->hw);
	}
	for (int s = 0; s < PERF_STAGE__COUNT; s++)
		free(pt->stage[s]);
	free(p);
	free(pt);
}

static struct perf_thread *thread_alloc(const char *role, int group,
					const char *name, uint64_t counters,
					uint32_t stages)
{
	struct perf_thread *pt = aligned_alloc(SLM_CACHELINE, sizeof(*pt));
	struct perf_thread_priv *p = calloc(1, sizeof(*p));
	if (!pt || !p) {
		free(pt);
		free(p);
		return NULL;
	}
	memset(pt, 0, sizeof(*pt));
	pt->priv = p;
	p->sw.leader = p->hw.leader = -1;
	p->group = group;
	p->counters = counters & (PERF_MASK(PERF_C__COUNT) - 1);
	p->stages = stages & (uint32_t)(PERF_MASK(PERF_STAGE__COUNT) - 1);
	snprintf(p->role, sizeof(p->role), "%s", role);
	snprintf(p->name, sizeof(p->name), "%s", name);
	for (int s = 0; s < PERF_STAGE__COUNT; s++) {
		if (!(p->stages & PERF_MASK(s)))
			continue;
		pt->stage[s] = malloc(sizeof(struct slm_hist));
		if (!pt->stage[s]) {
			thread_free(pt);
			return NULL;
		}
		slm_hist_init(pt->stage[s]);
	}
	return pt;
}

int perf_thread_register(const struct perf_thread_params *params,
			 struct perf_thread **out, struct slm_error *err)
{
	*out = NULL;
	pthread_once(&init_once, perf_init);
	const char *role = params->role ? params->role : "thread";
	if (!valid_name(role, 24))
		return slm_error_set(err, SLM_EINVAL,
				     "perf: bad thread role '%s' (a-z, 0-9, _)",
				     role);
	char name[48];
	if (params->name)
		snprintf(name, sizeof(name), "%s", params->name);
	else if (params->group >= 0)
		snprintf(name, sizeof(name), "g%d.%s%d", params->group, role,
			 params->index);
	else
		snprintf(name, sizeof(name), "%s%d", role, params->index);
	struct perf_thread *pt = thread_alloc(role, params->group, name,
					      params->counters, params->stages);
	if (!pt)
		return slm_error_set(err, SLM_ENOMEM, "perf: out of memory");
	pt->priv->tid = (pid_t)syscall(SYS_gettid);
	open_kernel_counters(pt->priv);
	pthread_mutex_lock(&reg_lock);
	pt->priv->next = threads;
	threads = pt;
	pthread_mutex_unlock(&reg_lock);
	self = pt;
	*out = pt;
	return 0;
}

/* dst += src for everything an exited row keeps (under reg_lock). */
static void accumulate(struct perf_thread *dst, const struct perf_thread *src)
{
	for (int c = 0; c < PERF_C__COUNT; c++)
		dst->counter[c] +=
			__atomic_load_n(&src->counter[c], __ATOMIC_RELAXED);
	for (int r = 0; r < PERF_REASONS_MAX; r++) {
		dst->drop[r] +=
			__atomic_load_n(&src->drop[r], __ATOMIC_RELAXED);
		dst->error[r] +=
			__atomic_load_n(&src->error[r], __ATOMIC_RELAXED);
	}
	for (int s = 0; s < PERF_STAGE__COUNT; s++)
		if (src->stage[s] && dst->stage[s])
			slm_hist_merge(dst->stage[s], src->stage[s]);
}

void perf_thread_unregister(struct perf_thread *pt)
{
	if (!pt)
		return;
	if (self == pt)
		self = NULL;
	struct perf_thread_priv *p = pt->priv;
	pthread_mutex_lock(&reg_lock);
	for (struct perf_thread **link = &threads; *link;
	     link = &(*link)->priv->next) {
		if (*link == pt) {
			*link = p->next;
			break;
		}
	}
	/* Keep the counts in the exited row of its role and group. */
	struct perf_thread *row = exited;
	for (; row; row = row->priv->next)
		if (row->priv->group == p->group &&
		    !strcmp(row->priv->role, p->role))
			break;
	if (!row) {
		char name[48];
		if (p->group >= 0)
			snprintf(name, sizeof(name), "g%d.%s-exited", p->group,
				 p->role);
		else
			snprintf(name, sizeof(name), "%s-exited", p->role);
		row = thread_alloc(
			p->role, p->group, name, 0,
			(uint32_t)(PERF_MASK(PERF_STAGE__COUNT) - 1));
		if (row) {
			/* Reports only what its threads declared. */
			row->priv->stages = 0;
			row->priv->next = exited;
			exited = row;
		}
	}
	if (row) {
		row->priv->counters |= p->counters;
		row->priv->stages |= p->stages;
		accumulate(row, pt);
	}
	pthread_mutex_unlock(&reg_lock);
	thread_free(pt);
}

/* ---- sources ----------------------------------------------------------- */

int perf_source_register(const char *name, perf_collect_fn fn, void *ctx)
{
	struct source *s = calloc(1, sizeof(*s));
	if (!s)
		return SLM_ENOMEM;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->fn = fn;
	s->ctx = ctx;
	pthread_mutex_lock(&reg_lock);
	for (struct source *o = sources; o; o = o->next) {
		if (!strcmp(o->name, s->name)) {
			pthread_mutex_unlock(&reg_lock);
			free(s);
			return SLM_EBUSY;
		}
	}
	s->next = sources;
	sources = s;
	pthread_mutex_unlock(&reg_lock);
	return 0;
}

void perf_source_unregister(const char *name)
{
	struct source *gone = NULL;
	pthread_mutex_lock(&reg_lock);
	for (struct source **link = &sources; *link; link = &(*link)->next) {
		if (!strcmp((*link)->name, name)) {
			gone = *link;
			*link = gone->next;
			break;
		}
	}
	pthread_mutex_unlock(&reg_lock);
	free(gone);
}

/* ---- the snapshot: memory ---------------------------------------------- */

struct perf_arena {
	struct perf_arena *next;
	size_t used, size;
	char data[];
};

#define ARENA_BLOCK 16384

static void *snap_alloc(struct perf_snapshot *snap, size_t size)
{
	size = (size + 15) & ~(size_t)15;
	struct perf_arena *a = snap->arena;
	if (!a || a->size - a->used < size) {
		size_t block = size > ARENA_BLOCK ? size : ARENA_BLOCK;
		struct perf_arena *n = malloc(sizeof(*n) + block);
		if (!n) {
			snap->oom = true;
			return NULL;
		}
		n->used = 0;
		n->size = block;
		/* A big one-off block goes behind the current one, so the
		 * current block's free space is still used. */
		if (a && block == size) {
			n->next = a->next;
			a->next = n;
		} else {
			n->next = a;
			snap->arena = n;
		}
		a = n;
	}
	void *p = a->data + a->used;
	a->used += size;
	return p;
}

static const char *snap_strdup(struct perf_snapshot *snap, const char *s)
{
	size_t len = strlen(s) + 1;
	char *copy = snap_alloc(snap, len);
	if (copy)
		memcpy(copy, s, len);
	return copy;
}

struct perf_snapshot *perf_snapshot_create(void)
{
	struct perf_snapshot *snap = calloc(1, sizeof(*snap));
	if (snap)
		snap->taken_ns = slm_now_ns();
	return snap;
}

void perf_snapshot_free(struct perf_snapshot *snap)
{
	if (!snap)
		return;
	for (int f = 0; f < snap->n_families; f++)
		free(snap->family[f].sample);
	free(snap->family);
	free(snap->thread);
	while (snap->arena) {
		struct perf_arena *a = snap->arena;
		snap->arena = a->next;
		free(a);
	}
	free(snap);
}

const struct perf_family *perf_snapshot_find(const struct perf_snapshot *snap,
					     const char *name)
{
	for (int f = 0; f < snap->n_families; f++)
		if (!strcmp(snap->family[f].name, name))
			return &snap->family[f];
	return NULL;
}

const char *perf_sample_label(const struct perf_sample *s, const char *name)
{
	for (int i = 0; i < s->n_labels; i++)
		if (!strcmp(s->label[i].name, name))
			return s->label[i].value;
	return NULL;
}

uint64_t perf_family_sum(const struct perf_family *f)
{
	uint64_t sum = 0;
	if (f && f->type == PERF_COUNTER)
		for (int i = 0; i < f->n_samples; i++)
			sum += f->sample[i].count;
	return sum;
}

/* ---- the snapshot: emitting -------------------------------------------- */

static struct perf_family *family_get(struct perf_snapshot *snap,
				      const char *name, const char *help,
				      enum perf_type type)
{
	for (int f = 0; f < snap->n_families; f++) {
		struct perf_family *fam = &snap->family[f];
		if (!strcmp(fam->name, name)) {
			if (fam->type != type) {
				snap->conflicts++;
				return NULL;
			}
			return fam;
		}
	}
	if (!valid_name(name, 128)) {
		snap->conflicts++;
		return NULL;
	}
	if (snap->n_families == snap->cap) {
		int cap = snap->cap ? snap->cap * 2 : 32;
		struct perf_family *grown =
			realloc(snap->family, (size_t)cap * sizeof(*grown));
		if (!grown) {
			snap->oom = true;
			return NULL;
		}
		snap->family = grown;
		snap->cap = cap;
	}
	const char *n = snap_strdup(snap, name);
	const char *h = snap_strdup(snap, help ? help : "");
	if (!n || !h)
		return NULL;
	struct perf_family *fam = &snap->family[snap->n_families++];
	memset(fam, 0, sizeof(*fam));
	fam->name = n;
	fam->help = h;
	fam->type = type;
	return fam;
}

/* Labels from a va_list of name, value pairs ending with NULL. */
static int labels_from(struct perf_snapshot *snap, va_list ap,
		       struct perf_label *labels)
{
	int n = 0;
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (!k)
			return n;
		const char *v = va_arg(ap, const char *);
		if (n == PERF_MAX_LABELS || !v || !valid_name(k, 64)) {
			snap->conflicts++;
			return -1;
		}
		labels[n].name = k;
		labels[n].value = v;
		n++;
	}
}

/* The sample with these labels (existing or new), or NULL. */
static struct perf_sample *sample_get(struct perf_snapshot *snap,
				      struct perf_family *fam,
				      const struct perf_label *labels, int n,
				      bool *fresh)
{
	if (n < 0)
		return NULL;
	for (int i = 0; i < fam->n_samples; i++) {
		struct perf_sample *s = &fam->sample[i];
		if (s->n_labels != n)
			continue;
		int same = 0;
		while (same < n &&
		       !strcmp(s->label[same].name, labels[same].name) &&
		       !strcmp(s->label[same].value, labels[same].value))
			same++;
		if (same == n) {
			*fresh = false;
			return s;
		}
	}
	if (fam->n_samples == fam->cap) {
		int cap = fam->cap ? fam->cap * 2 : 8;
		struct perf_sample *grown =
			realloc(fam->sample, (size_t)cap * sizeof(*grown));
		if (!grown) {
			snap->oom = true;
			return NULL;
		}
		fam->sample = grown;
		fam->cap = cap;
	}
	struct perf_sample *s = &fam->sample[fam->n_samples];
	memset(s, 0, sizeof(*s));
	for (int i = 0; i < n; i++) {
		s->label[i].name = snap_strdup(snap, labels[i].name);
		s->label[i].value = snap_strdup(snap, labels[i].value);
		if (!s->label[i].name || !s->label[i].value)
			return NULL;
	}
	s->n_labels = n;
	fam->n_samples++;
	*fresh = true;
	return s;
}

static void counter_add(struct perf_snapshot *snap, const char *name,
			const char *help, uint64_t count, double value,
			bool fractional, const struct perf_label *labels, int n)
{
	if (n < 0)
		return;
	struct perf_family *fam = family_get(snap, name, help, PERF_COUNTER);
	if (!fam)
		return;
	bool fresh;
	struct perf_sample *s = sample_get(snap, fam, labels, n, &fresh);
	if (!s)
		return;
	fam->fractional |= fractional;
	s->count += count;
	s->value += value;
}

static void gauge_add(struct perf_snapshot *snap, const char *name,
		      const char *help, double value,
		      const struct perf_label *labels, int n)
{
	if (n < 0)
		return;
	struct perf_family *fam = family_get(snap, name, help, PERF_GAUGE);
	if (!fam)
		return;
	bool fresh;
	struct perf_sample *s = sample_get(snap, fam, labels, n, &fresh);
	if (s)
		s->value += value;
}

/* Copy a live histogram with relaxed loads; count = the bucket sum, so
 * the copy is consistent with its own buckets. */
static void hist_read(struct slm_hist *dst, const struct slm_hist *src)
{
	uint64_t count = 0;
	for (unsigned b = 0; b < SLM_HIST_BUCKETS; b++) {
		dst->bucket[b] =
			__atomic_load_n(&src->bucket[b], __ATOMIC_RELAXED);
		count += dst->bucket[b];
	}
	dst->count = count;
	dst->sum = __atomic_load_n(&src->sum, __ATOMIC_RELAXED);
	dst->min = __atomic_load_n(&src->min, __ATOMIC_RELAXED);
	dst->max = __atomic_load_n(&src->max, __ATOMIC_RELAXED);
}

static void hist_add(struct perf_snapshot *snap, const char *name,
		     const char *help, const struct slm_hist *h,
		     const struct perf_label *labels, int n)
{
	if (n < 0)
		return;
	struct perf_family *fam = family_get(snap, name, help, PERF_HISTOGRAM);
	if (!fam)
		return;
	bool fresh;
	struct perf_sample *s = sample_get(snap, fam, labels, n, &fresh);
	if (!s)
		return;
	if (fresh) {
		s->hist = snap_alloc(snap, sizeof(*s->hist));
		if (s->hist)
			slm_hist_init(s->hist);
	}
	if (!s->hist)
		return;
	struct slm_hist *copy = malloc(sizeof(*copy));
	if (!copy) {
		snap->oom = true;
		return;
	}
	hist_read(copy, h);
	slm_hist_merge(s->hist, copy);
	free(copy);
}

void perf_emit_counter(struct perf_snapshot *snap, const char *name,
		       const char *help, uint64_t value, ...)
{
	struct perf_label labels[PERF_MAX_LABELS];
	va_list ap;
	va_start(ap, value);
	int n = labels_from(snap, ap, labels);
	va_end(ap);
	counter_add(snap, name, help, value, (double)value, false, labels, n);
}

void perf_emit_counter_f(struct perf_snapshot *snap, const char *name,
			 const char *help, double value, ...)
{
	struct perf_label labels[PERF_MAX_LABELS];
	va_list ap;
	va_start(ap, value);
	int n = labels_from(snap, ap, labels);
	va_end(ap);
	counter_add(snap, name, help, value > 0 ? (uint64_t)value : 0, value,
		    true, labels, n);
}

void perf_emit_gauge(struct perf_snapshot *snap, const char *name,
		     const char *help, double value, ...)
{
	struct perf_label labels[PERF_MAX_LABELS];
	va_list ap;
	va_start(ap, value);
	int n = labels_from(snap, ap, labels);
	va_end(ap);
	gauge_add(snap, name, help, value, labels, n);
}

void perf_emit_hist(struct perf_snapshot *snap, const char *name,
		    const char *help, const struct slm_hist *h, ...)
{
	struct perf_label labels[PERF_MAX_LABELS];
	va_list ap;
	va_start(ap, h);
	int n = labels_from(snap, ap, labels);
	va_end(ap);
	hist_add(snap, name, help, h, labels, n);
}

/* ---- the snapshot: threads --------------------------------------------- */

/* Read a group: {nr, time_enabled, time_running, values[nr]}. */
static bool read_group(const struct ev_group *g, uint64_t *ev, uint32_t *ok)
{
	if (g->leader < 0)
		return false;
	uint64_t buf[3 + 4];
	ssize_t got = read(g->leader, buf, sizeof(buf));
	if (got < (ssize_t)(3 * sizeof(uint64_t)))
		return false;
	uint64_t nr = buf[0], enabled = buf[1], running = buf[2];
	if (nr > (uint64_t)g->n || got < (ssize_t)((3 + nr) * 8))
		return false;
	/* Multiplexed with other users of the PMU: scale up. */
	double scale = running && running < enabled
			       ? (double)enabled / (double)running
			       : 1.0;
	for (uint64_t i = 0; i < nr; i++) {
		ev[g->ev[i]] = (uint64_t)((double)buf[3 + i] * scale);
		*ok |= 1u << g->ev[i];
	}
	return true;
}

/* /proc/self/task/TID/{stat,schedstat}: state, and CPU ns if unknown. */
static void read_proc(pid_t tid, char *state, uint64_t *cpu_ns)
{
	char path[64], buf[512];
	*state = 0;
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			const char *paren = strrchr(buf, ')');
			if (paren && paren[1] == ' ' && paren[2])
				*state = paren[2];
		}
	}
	if (*cpu_ns)
		return;
	snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			*cpu_ns = strtoull(buf, NULL, 10);
		}
	}
}

static const char drops_help[] = "work dropped or refused, by reason";
static const char errors_help[] = "requests that failed, by reason";
static const char stage_help[] = "time spent in each stage of a request";

static void emit_thread(struct perf_snapshot *snap, struct perf_thread *pt,
			struct perf_thread_row *row)
{
	const struct perf_thread_priv *p = pt->priv;
	char group[16];
	snprintf(group, sizeof(group), "%d", p->group);
	/* Labels: role, group (grouped threads only), thread, then one
	 * more (reason) for drops and errors. */
	struct perf_label l[PERF_MAX_LABELS];
	int n = 0;
	l[n++] = (struct perf_label){"role", p->role};
	if (p->group >= 0)
		l[n++] = (struct perf_label){"group", group};
	l[n++] = (struct perf_label){"thread", p->name};
	for (int c = 0; c < PERF_C__COUNT; c++) {
		if (!(p->counters & PERF_MASK(c)))
			continue;
		uint64_t v = __atomic_load_n(&pt->counter[c], __ATOMIC_RELAXED);
		counter_add(snap, counter_names[c], counter_helps[c], v,
			    (double)v, false, l, n);
	}
	int nr = __atomic_load_n(&n_reasons, __ATOMIC_ACQUIRE);
	for (int r = 0; r < nr; r++) {
		uint64_t d = __atomic_load_n(&pt->drop[r], __ATOMIC_RELAXED);
		uint64_t e = __atomic_load_n(&pt->error[r], __ATOMIC_RELAXED);
		l[n] = (struct perf_label){"reason", reason_names[r]};
		if (d)
			counter_add(snap, "drops_total", drops_help, d,
				    (double)d, false, l, n + 1);
		if (e)
			counter_add(snap, "errors_total", errors_help, e,
				    (double)e, false, l, n + 1);
	}
	/* Stage histograms per group (per role outside groups): the
	 * threads of a group merge into one series. */
	struct perf_label hl[2] = {
		p->group >= 0 ? (struct perf_label){"group", group}
			      : (struct perf_label){"role", p->role},
		{"stage", NULL}};
	for (int s = 0; s < PERF_STAGE__COUNT; s++) {
		if (!pt->stage[s] || !(p->stages & PERF_MASK(s)))
			continue;
		hl[1].value = stage_names[s];
		hist_add(snap, "stage_seconds", stage_help, pt->stage[s], hl,
			 2);
	}
	if (!row)
		return;
	memset(row, 0, sizeof(*row));
	row->name = snap_strdup(snap, p->name);
	row->role = snap_strdup(snap, p->role);
	if (!row->name || !row->role)
		return;
	row->group = p->group;
	row->tid = p->tid;
	uint32_t act = __atomic_load_n(&pt->activity, __ATOMIC_RELAXED);
	row->activity = act != PERF_ACT_NONE
				? perf_activity_name((enum perf_activity)act)
				: NULL;
	row->have_sw = read_group(&p->sw, row->ev, &row->ev_ok);
	row->have_hw = read_group(&p->hw, row->ev, &row->ev_ok);
	if (row->ev_ok & (1u << PERF_EV_TASK_CLOCK))
		row->cpu_ns = row->ev[PERF_EV_TASK_CLOCK];
	read_proc(p->tid, &row->kstate, &row->cpu_ns);
	struct perf_label tl = {"thread", row->name};
	counter_add(snap, event_info[PERF_EV_TASK_CLOCK].name,
		    event_info[PERF_EV_TASK_CLOCK].help,
		    row->cpu_ns / 1000000000ull, (double)row->cpu_ns * 1e-9,
		    true, &tl, 1);
	for (int e = PERF_EV_TASK_CLOCK + 1; e < PERF_EV__COUNT; e++)
		if (row->ev_ok & (1u << e))
			counter_add(snap, event_info[e].name,
				    event_info[e].help, row->ev[e],
				    (double)row->ev[e], false, &tl, 1);
}

static void emit_process(struct perf_snapshot *snap)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		double cpu = (double)ru.ru_utime.tv_sec +
			     (double)ru.ru_utime.tv_usec * 1e-6 +
			     (double)ru.ru_stime.tv_sec +
			     (double)ru.ru_stime.tv_usec * 1e-6;
		perf_emit_counter_f(snap, "process_cpu_seconds_total",
				    "CPU time of the whole process", cpu,
				    PERF_END);
	}
	FILE *f = fopen("/proc/self/statm", "re");
	if (f) {
		unsigned long size = 0, resident = 0;
		if (fscanf(f, "%lu %lu", &size, &resident) == 2)
			perf_emit_gauge(snap, "process_resident_memory_bytes",
					"resident memory of the process",
					(double)resident *
						(double)sysconf(_SC_PAGESIZE),
					PERF_END);
		fclose(f);
	}
}

struct perf_snapshot *perf_snapshot_take(void)
{
	struct perf_snapshot *snap = perf_snapshot_create();
	if (!snap)
		return NULL;
	pthread_mutex_lock(&reg_lock);
	int n = 0;
	for (struct perf_thread *pt = threads; pt; pt = pt->priv->next)
		n++;
	snap->thread = calloc((size_t)n + 1, sizeof(*snap->thread));
	if (!snap->thread)
		snap->oom = true;
	int i = 0;
	for (struct perf_thread *pt = threads; pt; pt = pt->priv->next, i++)
		emit_thread(snap, pt, snap->thread ? &snap->thread[i] : NULL);
	snap->n_threads = snap->thread ? n : 0;
	for (struct perf_thread *pt = exited; pt; pt = pt->priv->next)
		emit_thread(snap, pt, NULL);
	for (struct source *s = sources; s; s = s->next)
		s->fn(s->ctx, snap);
	pthread_mutex_unlock(&reg_lock);
	emit_process(snap);
	return snap;
}
