/*
 * placement.h: the placement plan: which CPU runs each thread slmd starts,
 * and on which NUMA node each group's memory lives.
 *
 * From a topology (numa/topology.h) and the numa.* config keys, the plan
 * says:
 *   - the dataplane threads (numa.dataplane_cores), each on a core of its
 *     own, or sharing a worker core when the box has too few (a warning);
 *   - the ctl thread (numa.ctl_core): mostly idle, so it takes no core of
 *     its own: by default the spare hardware thread of the first dataplane
 *     core, or that core itself;
 *   - the worker groups (numa.groups): one per NUMA node by default, or
 *     per last-level cache, per package, or explicit CPU sets; each with
 *     one worker thread per core (cpus[0] runs the group's leader, which
 *     runs the scheduler), and a home node where its KV pool, its request
 *     objects and the copy of the weights it reads live;
 *   - the weights (numa.weights): a copy per node (replicate), one copy
 *     spread over the nodes (interleave) or one copy on one node (single),
 *     checked against each node's memory: a plan that does not fit is
 *     refused with the numbers, never discovered later by the OOM killer.
 * Two busy threads (dataplane, workers) never run on the hardware threads
 * of one core unless numa.allow_smt_siblings is true; the spare hardware
 * threads stay idle and the plan lists them.
 *
 * A plan is plain data, computed from the description alone, so plans for
 * synthetic machines are exact.  Starting the threads it names is the
 * daemon's job, with slm_thread_start (numa/pin.h), which pins and checks
 * each one.  CPU, core and node numbers are Linux's (see topology.h).
 *
 * Threads: a plan is immutable once made; any thread may read it.
 */
#ifndef SLM_NUMA_PLACEMENT_H
#define SLM_NUMA_PLACEMENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/config.h"
#include "common/err.h"
#include "numa/topology.h"

/* Where the model's weights go; the order is numa.weights' choices. */
enum slm_weights_policy {
	SLM_WEIGHTS_AUTO = 0,	/* replicate if it fits, else interleave */
	SLM_WEIGHTS_REPLICATE,	/* one copy on every node with a group */
	SLM_WEIGHTS_INTERLEAVE, /* one copy, pages spread over those nodes */
	SLM_WEIGHTS_SINGLE,	/* one copy on the first group's node */
};

/* "auto", "replicate", "interleave", "single". */
const char *slm_weights_name(enum slm_weights_policy w);

/* A dataplane core set of its own is only the default from this many
 * cores up; below, the dataplane shares a worker core. */
#define SLM_PLAN_MIN_CORES_DEDICATED 4
#define SLM_PLAN_MAX_DATAPLANE 64
#define SLM_PLAN_MAX_WARNINGS 16

struct slm_plan_params {
	/* "auto" or "node" (one group per NUMA node), "llc", "package", or
	 * CPU sets separated by '/': "0-7/8-15". */
	const char *groups;
	/* "auto" (one thread; a core of its own from
	 * SLM_PLAN_MIN_CORES_DEDICATED cores up), N (N threads on N cores
	 * of their own; 0: one thread sharing a worker core), or
	 * "cpus:LIST" (one thread on each CPU named). */
	const char *dataplane_cores;
	int dataplane_node;   /* node for the dataplane cores; -1: group 0's */
	const char *ctl_core; /* "auto", "none" (not pinned), or a CPU */
	bool allow_smt_siblings;
	enum slm_weights_policy weights;
	uint64_t weight_bytes;	     /* one copy of the weights; 0: unknown */
	uint64_t kv_bytes_per_group; /* each group's KV pool; 0: unknown */
	uint64_t mem_reserve;	     /* bytes kept free on each used node */
};

/* The defaults of the numa.* keys, with no model (weight_bytes 0). */
void slm_plan_params_default(struct slm_plan_params *p);

/* The numa.* keys of cfg; the strings point into cfg.  weight_bytes and
 * kv_bytes_per_group are left 0 for the caller to fill in. */
void slm_plan_params_from_config(struct slm_plan_params *p,
				 const struct slm_config *cfg);

enum slm_thread_role {
	SLM_ROLE_DATAPLANE,
	SLM_ROLE_CTL,
	SLM_ROLE_WORKER,
};

/* "dataplane", "ctl", "worker". */
const char *slm_thread_role_name(enum slm_thread_role role);

struct slm_plan_thread {
	enum slm_thread_role role;
	int group;     /* SLM_ROLE_WORKER: its group; else -1 */
	int index;     /* within its role (dataplane) or group (0 = leader) */
	int cpu;       /* the CPU it runs on; -1: not pinned (any CPU) */
	int node;      /* the node whose memory it uses */
	bool shared;   /* shares its CPU with another busy thread */
	char name[16]; /* thread name: "slm-dp0", "slm-ctl", "slm-g1w3" */
};

struct slm_plan_group {
	int node;	  /* home node: KV pool, request objects, weights */
	int n_cpus;	  /* its worker threads, one per CPU */
	const int *cpus;  /* ascending; cpus[0] runs the leader */
	int first_thread; /* its threads: threads[first_thread + i] */
	int weights_copy; /* the copy of the weights it reads */
	bool spans_nodes; /* some of its CPUs are on another node */
};

/* A copy of the weights: bound to one node, or interleaved over several. */
struct slm_plan_copy {
	int n_nodes;
	const int *nodes; /* ascending; one for a bound copy */
};

/* Memory per node of the topology (same order as its nodes). */
struct slm_plan_node {
	int os_index;
	uint64_t mem_bytes;	/* the node's memory */
	uint64_t weight_bytes;	/* weights placed on it */
	uint64_t kv_bytes;	/* KV pools of its groups */
	uint64_t reserve_bytes; /* kept free (nodes with a group only) */
	int n_groups;		/* groups whose home it is */
};

struct slm_plan {
	const char *source;		 /* the topology's source */
	bool this_system;		 /* the plan can be carried out here */
	enum slm_weights_policy weights; /* resolved: never SLM_WEIGHTS_AUTO */
	uint64_t weight_bytes;		 /* one copy; 0 when unknown */
	int n_copies;
	const struct slm_plan_copy *copies;
	int n_nodes;
	const struct slm_plan_node *nodes;
	int n_groups;
	const struct slm_plan_group *groups;
	int n_threads; /* dataplane threads, then ctl, then workers */
	const struct slm_plan_thread *threads;
	int n_dataplane;
	const int *dataplane_cpus; /* CPU of each dataplane thread */
	bool dataplane_shared;	   /* they share worker CPUs */
	int ctl_cpu;		   /* -1: the ctl thread is not pinned */
	int n_idle;
	const int *idle_cpus; /* CPUs no thread is pinned to, ascending */
	int n_warnings;
	const char *const *warnings; /* for the operator, one sentence each */
};

/*
 * Make the plan for `topo` under `params`.  A configuration that cannot
 * be carried out (a CPU that is not there, a CPU in two places, siblings
 * named while not allowed, no CPU left for workers, weights that do not
 * fit) is refused with SLM_ECONFIG and a message that names the key and
 * the numbers.  Free with slm_plan_destroy.
 */
int slm_plan_create(const struct slm_topo_info *topo,
		    const struct slm_plan_params *params, struct slm_plan **out,
		    struct slm_error *err) SLM_MUST_CHECK;
void slm_plan_destroy(struct slm_plan *plan);

/* The readable table (topology, threads, memory, warnings) into out, as
 * printed at start-up, by `slm topology` and `slmctl topology`. */
int slm_plan_print(const struct slm_plan *plan,
		   const struct slm_topo_info *topo, FILE *out);

/* The table through the log, one line per message (warnings as
 * warnings), for the daemon's start-up. */
void slm_plan_log(const struct slm_plan *plan,
		  const struct slm_topo_info *topo);

/*
 * The plan as JSON text (one line, NUL-terminated; the caller frees it
 * with free()), the interface scripts rely on:
 *   {"nodes":[{"id":..,"cores":[..],"mem_bytes":..}],
 *    "groups":[{"node":..,"cores":[..]}],
 *    "dataplane_cores":[..],"ctl_core":..|null,
 *    "weights":"replicate|interleave|single", ...}
 * with more fields beside these.  NULL when out of memory.
 */
char *slm_plan_json(const struct slm_plan *plan,
		    const struct slm_topo_info *topo);

#endif
