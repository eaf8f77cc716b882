/*
 * dpdk_stats.c: the DPDK backend's statistics as JSON, for ctl.
 *
 *   "dpdk": {
 *     "eal": "no huge pages (512 MiB)",
 *     "lcores": [{"index": 0, "cpu": 1, "node": 0, "eal_lcore": 1,
 *                 "idle": "naps" | "rx_interrupts",
 *                 "queues": [{"link": 0, "queue": 0}]}],
 *     "links": [{"index": 0, "kind": "nic" | "memif", "name": "...",
 *                "driver": "net_af_packet", "mac": "...", "ip": "...",
 *                "port": 7070, "up": true, "speed_mbps": 10000,
 *                "rss": false, "offloads": {"rx_ip": .., "rx_l4": ..,
 *                "tx_ip": .., "tx_udp": ..}, "rx_interrupts": false,
 *                "stats": {"ipackets": .., "opackets": .., "ibytes": ..,
 *                          "obytes": .., "imissed": .., "ierrors": ..,
 *                          "oerrors": .., "rx_nombuf": ..},
 *                "xstats": {"rx_good_packets": .., ...}}]
 *   }
 *
 * rte_eth_stats_get and rte_eth_xstats_get only read counters, so ctl's
 * thread may call this while the lcores run (the numbers of one link are
 * not all from the same instant).  memif links without a client are
 * listed with "up": false.
 */
#include "dataplane/dpdk_int.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

static void add_u64(cJSON *o, const char *name, uint64_t v)
{
	cJSON_AddNumberToObject(o, name, (double)v);
}

static void link_xstats(const struct dpdk_link *k, cJSON *o)
{
	int n = rte_eth_xstats_get_names(k->port, NULL, 0);
	if (n <= 0)
		return;
	struct rte_eth_xstat_name *names = calloc((size_t)n, sizeof(*names));
	struct rte_eth_xstat *vals = calloc((size_t)n, sizeof(*vals));
	cJSON *x = cJSON_AddObjectToObject(o, "xstats");
	if (names && vals && x &&
	    rte_eth_xstats_get_names(k->port, names, (unsigned)n) == n) {
		int got = rte_eth_xstats_get(k->port, vals, (unsigned)n);
		for (int i = 0; i < got && i < n; i++)
			if (vals[i].id < (uint64_t)n)
				add_u64(x, names[vals[i].id].name,
					vals[i].value);
	}
	free(names);
	free(vals);
}

static void link_json(const struct dpdk_link *k, cJSON *arr)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddItemToArray(arr, o);
	cJSON_AddNumberToObject(o, "index", k->index);
	cJSON_AddStringToObject(o, "kind",
				k->kind == DPDK_LINK_NIC ? "nic" : "memif");
	cJSON_AddStringToObject(o, "name", k->name);
	cJSON_AddStringToObject(o, "driver", k->driver);
	cJSON_AddNumberToObject(o, "port_id", k->port);
	cJSON_AddNumberToObject(o, "numa_node", k->socket);
	char buf[24];
	dp_mac_format(&k->host.mac, buf, sizeof(buf));
	cJSON_AddStringToObject(o, "mac", buf);
	dp_ip4_format(k->host.ip, buf, sizeof(buf));
	cJSON_AddStringToObject(o, "ip", buf);
	cJSON_AddNumberToObject(o, "port", k->host.port);
	struct rte_eth_link l;
	memset(&l, 0, sizeof(l));
	if (k->port_ok && rte_eth_link_get_nowait(k->port, &l) == 0) {
		cJSON_AddBoolToObject(o, "up",
				      l.link_status == RTE_ETH_LINK_UP);
		cJSON_AddNumberToObject(o, "speed_mbps", l.link_speed);
	}
	cJSON_AddNumberToObject(o, "queues", k->n_queues);
	cJSON_AddBoolToObject(o, "rss", k->rss);
	cJSON *off = cJSON_AddObjectToObject(o, "offloads");
	if (off) {
		cJSON_AddBoolToObject(off, "rx_ip", k->rx_ip_csum);
		cJSON_AddBoolToObject(off, "rx_l4", k->rx_l4_csum);
		cJSON_AddBoolToObject(off, "tx_ip", k->tx_ip_csum);
		cJSON_AddBoolToObject(off, "tx_udp", k->tx_udp_csum);
	}
	cJSON_AddBoolToObject(o, "rx_interrupts", k->rx_intr);
	struct rte_eth_stats st;
	if (k->port_ok && rte_eth_stats_get(k->port, &st) == 0) {
		cJSON *s = cJSON_AddObjectToObject(o, "stats");
		if (s) {
			add_u64(s, "ipackets", st.ipackets);
			add_u64(s, "opackets", st.opackets);
			add_u64(s, "ibytes", st.ibytes);
			add_u64(s, "obytes", st.obytes);
			add_u64(s, "imissed", st.imissed);
			add_u64(s, "ierrors", st.ierrors);
			add_u64(s, "oerrors", st.oerrors);
			add_u64(s, "rx_nombuf", st.rx_nombuf);
		}
	}
	if (k->port_ok)
		link_xstats(k, o);
}

void dpdk_stats_json(const struct dp_backend *b, struct cJSON *obj)
{
	cJSON *d = cJSON_AddObjectToObject(obj, "dpdk");
	if (!d)
		return;
	cJSON_AddStringToObject(d, "eal", b->eal_mode);
	cJSON *lcs = cJSON_AddArrayToObject(d, "lcores");
	for (unsigned i = 0; lcs && i < b->n; i++) {
		const struct dpdk_lcore *l = &b->lc[i];
		cJSON *o = cJSON_CreateObject();
		if (!o)
			break;
		cJSON_AddItemToArray(lcs, o);
		cJSON_AddNumberToObject(o, "index", i);
		cJSON_AddNumberToObject(o, "cpu", l->cpu);
		cJSON_AddNumberToObject(o, "node", l->node);
		cJSON_AddNumberToObject(o, "eal_lcore", l->lcore_id);
		cJSON_AddStringToObject(o, "idle",
					l->intr_ok ? "rx_interrupts" : "naps");
		cJSON *qs = cJSON_AddArrayToObject(o, "queues");
		for (unsigned q = 0; qs && q < l->n_rx; q++) {
			cJSON *e = cJSON_CreateObject();
			if (!e)
				break;
			cJSON_AddItemToArray(qs, e);
			cJSON_AddNumberToObject(e, "link",
						l->rx[q].link->index);
			cJSON_AddNumberToObject(e, "queue", l->rx[q].queue);
		}
	}
	cJSON *links = cJSON_AddArrayToObject(d, "links");
	for (unsigned i = 0; links && i < b->n_links; i++)
		link_json(&b->links[i], links);
}
