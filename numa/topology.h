/*
 * topology.h: the machine as slmd sees it, discovered with hwloc.
 *
 * This module owns the hwloc topology of the box slmd runs on (or of a
 * machine described for planning and tests) and a plain description of it:
 * packages, NUMA nodes with their memory, cores with their hardware
 * threads (PUs) and caches.  Placement (numa/placement.h) plans from the
 * description alone; binding threads and memory (numa/pin.h,
 * numa/arena.h, numa/alloc.h) uses the hwloc handle.
 *
 * Where the topology comes from (config key numa.topology):
 *   ""                     this machine, restricted to the CPUs the process
 *                          may run on (its cgroup cpuset and its affinity
 *                          mask at open time, e.g. systemd CPUAffinity= or
 *                          taskset);
 *   "synthetic:DESC"       an hwloc synthetic description, quotes around
 *                          DESC optional, e.g.
 *                          synthetic:"package:2 numa:1 core:8 pu:2";
 *                          memory per node defaults to 1 GiB, or
 *                          "package:2 numa:1(memory=64GB) core:8 pu:2";
 *   anything else          the path of an hwloc XML file (lstopo --of xml).
 * A synthetic or XML topology is for planning only: hwloc's bind calls
 * succeed on it without doing anything, so slm_topo_info()->this_system
 * is false and the binding helpers refuse it.  (An XML file exported from
 * this very machine counts as this machine when HWLOC_THISSYSTEM=1.)
 *
 * Numbers: a CPU is a Linux CPU number (what taskset, lscpu and
 * /proc/cpuinfo call "processor"; hwloc's PU os_index).  A core is named by
 * the CPU number of its first PU.  A node is a Linux NUMA node number
 * (numactl -H; hwloc's NUMA node os_index).
 *
 * Threads: a topology is immutable once open; any thread may read it.
 */
#ifndef SLM_NUMA_TOPOLOGY_H
#define SLM_NUMA_TOPOLOGY_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

/* PUs (hardware threads) per core that the description keeps. */
#define SLM_TOPO_MAX_SMT 8

struct slm_topo_core {
	int id;	     /* the CPU number of its first PU */
	int node;    /* index into slm_topo_info.nodes */
	int package; /* logical package index, 0 .. n_packages-1 */
	int llc;     /* logical index of its last-level cache; -1 if none */
	int n_pus;
	int pus[SLM_TOPO_MAX_SMT]; /* its CPUs, ascending; pus[0] == id */
};

struct slm_topo_node {
	int os_index;	    /* Linux NUMA node number */
	uint64_t mem_bytes; /* memory local to the node (MemTotal), bytes */
	int package;	    /* logical package index; -1 if not in one */
	int n_cores;	    /* cores whose memory is this node (may be 0) */
	int *cores;	    /* their indexes into slm_topo_info.cores */
};

struct slm_topo_info {
	const char *source; /* "this machine", "synthetic:..." or the path */
	bool this_system;   /* binding acts on the machine we run on */
	bool restricted;    /* this machine, narrowed to the affinity mask */
	int n_packages;
	int n_nodes;
	const struct slm_topo_node *nodes; /* ascending os_index */
	int n_cores;
	const struct slm_topo_core *cores; /* hwloc's logical (tree) order */
	int n_pus;
	int n_llc;	    /* last-level caches (0 when unknown) */
	int llc_level;	    /* 1, 2, 3, ...; 0 when unknown */
	uint64_t mem_bytes; /* sum over nodes */
	/* Size of one cache of each level (0 when unknown). */
	uint64_t l1d_bytes, l2_bytes, l3_bytes;
};

struct slm_topo;
struct hwloc_topology;

/*
 * Remember the calling thread's CPU affinity as the CPUs this process
 * may use.  Without it, slm_topo_open restricts this machine's topology
 * to the affinity of the thread that calls it; a program that pins its
 * own threads narrower afterwards (slmd pins its main thread to the
 * control CPU) calls this first so later opens still see every CPU it
 * was given.  Call once, before other threads start.
 */
void slm_topo_remember_affinity(void);

/*
 * Discover or load a topology from `spec` (see above; NULL = "").  Every
 * CPU of the description belongs to exactly one core and every core to
 * one node; a topology without PUs or NUMA nodes is refused.  On error
 * *out is NULL and err names the spec and what is wrong.  Free with
 * slm_topo_close.
 */
int slm_topo_open(const char *spec, struct slm_topo **out,
		  struct slm_error *err) SLM_MUST_CHECK;
void slm_topo_close(struct slm_topo *topo);

/* The description; valid until slm_topo_close. */
const struct slm_topo_info *slm_topo_info(const struct slm_topo *topo);

/* Index into info->cores of the core holding CPU `cpu`, or -1. */
int slm_topo_core_of_cpu(const struct slm_topo_info *info, int cpu);

/* Index into info->nodes of node `os_index`, or -1. */
int slm_topo_node_index(const struct slm_topo_info *info, int os_index);

/* hwloc's handle, for the binding modules of numa/ (never NULL). */
struct hwloc_topology *slm_topo_hwloc(const struct slm_topo *topo);

/*
 * Every CPU of the topology, ascending, into cpus[max]; returns the count
 * (which may exceed max: then only max were written).
 */
int slm_topo_cpus(const struct slm_topo_info *info, int *cpus, int max);

#endif
