/* neigh.c: the neighbour cache.  See neigh.h. */
#include "dataplane/neigh.h"

#include <stdlib.h>
#include <string.h>

#define PROBE 8 /* slots looked at per address */

enum { E_FREE = 0, E_PENDING, E_VALID };

struct entry {
	uint32_t ip;
	uint16_t link;
	uint8_t state;
	struct dp_mac mac;
	uint64_t stamp; /* last confirmed (VALID) or asked (PENDING) */
};

struct dp_neigh {
	unsigned mask;
	unsigned valid;
	struct entry *e;
};

int dp_neigh_create(unsigned capacity, struct dp_neigh **out)
{
	*out = NULL;
	unsigned n = 16;
	while (n < capacity && n < (1u << 24))
		n <<= 1;
	struct dp_neigh *t = calloc(1, sizeof(*t));
	if (!t)
		return SLM_ENOMEM;
	t->e = calloc(n, sizeof(*t->e));
	if (!t->e) {
		free(t);
		return SLM_ENOMEM;
	}
	t->mask = n - 1;
	*out = t;
	return 0;
}

void dp_neigh_destroy(struct dp_neigh *n)
{
	if (!n)
		return;
	free(n->e);
	free(n);
}

static unsigned slot_of(const struct dp_neigh *n, uint16_t link, uint32_t ip)
{
	uint64_t h = ((uint64_t)link << 32 | ip) * 0x9E3779B97F4A7C15ull;
	return (unsigned)(h >> 40) & n->mask;
}

static struct entry *find(const struct dp_neigh *n, uint16_t link, uint32_t ip)
{
	unsigned s = slot_of(n, link, ip);
	for (unsigned i = 0; i < PROBE; i++) {
		struct entry *e = &n->e[(s + i) & n->mask];
		if (e->state != E_FREE && e->ip == ip && e->link == link)
			return e;
	}
	return NULL;
}

/* A slot for a new address: a free one in the window, else the oldest. */
static struct entry *claim(struct dp_neigh *n, uint16_t link, uint32_t ip)
{
	unsigned s = slot_of(n, link, ip);
	struct entry *victim = NULL;
	for (unsigned i = 0; i < PROBE; i++) {
		struct entry *e = &n->e[(s + i) & n->mask];
		if (e->state == E_FREE)
			return e;
		if (!victim || e->stamp < victim->stamp)
			victim = e;
	}
	if (victim->state == E_VALID)
		n->valid--;
	victim->state = E_FREE;
	return victim;
}

bool dp_neigh_learn(struct dp_neigh *n, uint16_t link, uint32_t ip,
		    const struct dp_mac *mac, uint64_t now_ns)
{
	struct entry *e = find(n, link, ip);
	if (e && e->state == E_VALID) {
		e->stamp = now_ns;
		if (dp_mac_equal(&e->mac, mac))
			return false;
		e->mac = *mac;
		return true;
	}
	if (!e) {
		e = claim(n, link, ip);
		e->ip = ip;
		e->link = link;
	}
	e->state = E_VALID;
	e->mac = *mac;
	e->stamp = now_ns;
	n->valid++;
	return true;
}

bool dp_neigh_refresh(struct dp_neigh *n, uint16_t link, uint32_t ip,
		      const struct dp_mac *mac, uint64_t now_ns)
{
	struct entry *e = find(n, link, ip);
	if (!e || e->state != E_VALID)
		return false;
	return dp_neigh_learn(n, link, ip, mac, now_ns);
}

bool dp_neigh_lookup(const struct dp_neigh *n, uint16_t link, uint32_t ip,
		     struct dp_mac *mac)
{
	const struct entry *e = find(n, link, ip);
	if (!e || e->state != E_VALID)
		return false;
	*mac = e->mac;
	return true;
}

bool dp_neigh_should_ask(struct dp_neigh *n, uint16_t link, uint32_t ip,
			 uint64_t now_ns, uint64_t interval_ns)
{
	struct entry *e = find(n, link, ip);
	if (e && e->state == E_VALID)
		return false;
	if (e && now_ns - e->stamp < interval_ns)
		return false;
	if (!e) {
		e = claim(n, link, ip);
		e->ip = ip;
		e->link = link;
		e->state = E_PENDING;
	}
	e->stamp = now_ns;
	return true;
}

unsigned dp_neigh_count(const struct dp_neigh *n)
{
	return n->valid;
}
