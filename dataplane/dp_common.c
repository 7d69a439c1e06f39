/* Clock, seeds and routing shared by every endpoint. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "dp.h"
#include "tsc_scale.h"

/* A broken consensus invariant (PX_ASSERT, always on): say which, where,
 * then abort for a core dump. The core's own default only traps, as it
 * may not print (the purity rule); this strong definition replaces it in
 * every dataplane program. Continuing would risk a wrong answer, which is
 * worse than a crash the others survive. */
void px_assert_fail(const char *expr, const char *file, int line)
{
	fprintf(stderr, "bypax: assertion failed: %s (%s:%d); aborting\n", expr,
		file, line);
	fflush(stderr);
	abort();
}

/* Set once, before any worker starts; read-only afterwards. */
static struct dp_tsc_scale tsc_scale;
static uint64_t tsc_base;

void dp_clock_init(void)
{
	tsc_scale = dp_tsc_scale_make(rte_get_tsc_hz());
	tsc_base = rte_rdtsc();
}

uint64_t dp_tsc_to_ns(uint64_t tsc)
{
	return dp_tsc_scale_ns(tsc_scale, tsc);
}

uint64_t dp_ns_at_tsc(uint64_t tsc)
{
	return dp_tsc_scale_ns(tsc_scale, tsc - tsc_base);
}

uint64_t dp_random_seed(void)
{
	uint64_t seed;
	if (getrandom(&seed, sizeof(seed), 0) == (ssize_t)sizeof(seed))
		return seed;
	/* No entropy source: the wall clock, the TSC and the pid still
	 * differ between two starts of one replica. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^
	       rte_rdtsc() ^ ((uint64_t)getpid() << 48);
}

uint64_t dp_now_ns(void)
{
	return dp_ns_at_tsc(rte_rdtsc());
}

void dp_routes_init(struct dp_routes *rt)
{
	memset(rt, 0, sizeof(*rt));
}

int dp_routes_add_txq(struct dp_routes *rt, uint16_t port, uint16_t queue)
{
	for (uint8_t i = 0; i < rt->txq_count; i++)
		if (rt->txqs[i].route.port == port &&
		    rt->txqs[i].route.queue == queue)
			return i;
	if (rt->txq_count == DP_ROUTES_MAX)
		return -BPX_ENOMEM;
	struct dp_txq *q = &rt->txqs[rt->txq_count];
	q->route.port = port;
	q->route.queue = queue;
	q->count = 0;
	return rt->txq_count++;
}

int dp_routes_add_mac(struct dp_routes *rt, const uint8_t mac[6], uint8_t txq)
{
	if (rt->count == DP_ROUTES_MAX || txq >= rt->txq_count)
		return -BPX_ENOMEM;
	memcpy(rt->macs[rt->count], mac, 6);
	rt->txq[rt->count] = txq;
	rt->count++;
	return 0;
}

struct dp_txq *dp_routes_lookup(struct dp_routes *rt, const uint8_t mac[6])
{
	for (uint8_t i = 0; i < rt->count; i++)
		if (memcmp(rt->macs[i], mac, 6) == 0)
			return &rt->txqs[rt->txq[i]];
	return &rt->txqs[rt->default_txq];
}

static void txq_flush(struct dp_txq *q, struct dp_counters *ctr)
{
	if (q->count == 0)
		return;
	uint16_t sent = rte_eth_tx_burst(q->route.port, q->route.queue, q->pkts,
					 q->count);
	ctr->tx_frames += sent;
	if (unlikely(sent < q->count)) {
		ctr->tx_full += q->count - sent;
		rte_pktmbuf_free_bulk(&q->pkts[sent], q->count - sent);
	}
	q->count = 0;
}

void dp_txq_push(struct dp_txq *q, struct rte_mbuf *m, struct dp_counters *ctr)
{
	q->pkts[q->count++] = m;
	if (q->count == DP_BURST)
		txq_flush(q, ctr);
}


void dp_routes_flush(struct dp_routes *rt, struct dp_counters *ctr,
			  volatile const uint8_t *port_paused)
{
	for (uint8_t i = 0; i < rt->txq_count; i++) {
		struct dp_txq *q = &rt->txqs[i];
		if (port_paused != NULL && port_paused[q->route.port] != 0 &&
		    q->count > 0) {
			ctr->tx_full += q->count;
			rte_pktmbuf_free_bulk(q->pkts, q->count);
			q->count = 0;
		}
		txq_flush(q, ctr);
	}
}

int dp_parse_u64(const char *prog, const char *name, const char *s,
		 uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (*s == '\0' || *s == '-' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "%s: %s must be %" PRIu64 "..%" PRIu64
				", got '%s'\n", prog, name, lo, hi, s);
		return -1;
	}
	*out = v;
	return 0;
}

bool dp_early_option(int argc, char **argv, const char *prog,
		     void (*usage)(FILE *), int *rc)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0) {
			printf("%s %s\n", prog, BPX_VERSION);
			*rc = 0;
			return true;
		}
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			*rc = 0;
			return true;
		}
		if (strcmp(argv[i], "--help-eal") == 0) {
			char *args[] = { argv[0], (char *)"--help", NULL };
			*rc = rte_eal_init(2, args) < 0 ? 2 : 0;
			return true;
		}
	}
	return false;
}
