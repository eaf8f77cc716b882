/*
 * placement_int.h: what placement.c (the plan) and placement_print.c (its
 * table and JSON) share.
 */
#ifndef SLM_NUMA_PLACEMENT_INT_H
#define SLM_NUMA_PLACEMENT_INT_H

#include <stddef.h>
#include <stdint.h>

/* bytes for people: "0 B", "512 MiB", "1.5 GiB"; returns buf. */
const char *placement_fmt_bytes(uint64_t bytes, char *buf, size_t size);

#endif
