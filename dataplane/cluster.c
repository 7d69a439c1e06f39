/* The in-process cluster: N replica instances and load generators, each
 * with a net_ring port in a full mesh, spread over the EAL lcores. Workers
 * back off (sleep) after idle polls when asked, so a 2-core CI machine is
 * not starved. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "bypax/kv.h"

#include "cluster.h"

#define MESH_POOL_MBUFS 16383u
#define IDLE_POLLS_BEFORE_SLEEP 64u
#define DRAIN_LIMIT_NS 5000000000ull
/* A gap this long between two polls of one lcore means the OS ran
 * something else on its core: counted, since it shows in the latency
 * tail (the bench reports it beside the percentiles). */
#define STALL_NS 1000000ull

enum ep_kind { EP_REPLICA, EP_LOADGEN, EP_GARBAGE };

struct endpoint {
	enum ep_kind kind;
	void *obj;
	uint64_t *busy_cycles; /* this endpoint's own busy polls */
};

struct lcore_work {
	uint32_t count;
	struct endpoint eps[DP_MESH_MAX];
	uint64_t busy_cycles;
	uint64_t idle_cycles;
	uint64_t last_poll_tsc;
	uint64_t stalls;        /* gaps > STALL_NS between polls: preempted */
	uint64_t stall_cycles;
	uint64_t stall_max_cycles;
};

struct cluster {
	const struct cluster_opts *o;
	struct bpx_config cfg;
	struct rte_mempool *pool;
	struct dp_ring_mesh mesh;
	const struct bpx_sm_ops *sm_ops;
	void *sm_dl;
	void *sms[PX_REPLICAS_MAX];
	struct dp_replica *replicas;   /* rte_zmalloc'd */
	struct dp_loadgen *loadgens;
	struct bpx_endpoint garbage_ep;
	uint16_t garbage_port;
	uint64_t garbage_sent;
	unsigned lcore_ids[RTE_MAX_LCORE];
	unsigned lcores;
	struct lcore_work work[RTE_MAX_LCORE];
	uint64_t ep_busy_cycles[DP_MESH_MAX];
	uint64_t stall_cycles_min;
	volatile bool stop;
};

volatile bool cluster_force_quit;

static void endpoint_address(uint32_t index, bool replica,
			     struct bpx_endpoint *ep)
{
	static const uint8_t base[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x00 };
	memcpy(ep->mac, base, 6);
	ep->mac[4] = replica ? 0 : 1;
	ep->mac[5] = (uint8_t)index;
	ep->ip = (10u << 24) | ((replica ? 0u : 1u) << 8) | (index + 1);
	ep->port = replica ? 9000 : 9100;
}

static void build_config(struct cluster *c)
{
	const struct cluster_opts *o = c->o;
	struct bpx_config *cfg = &c->cfg;
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->path, sizeof(cfg->path), "(in-process cluster)");
	cfg->cluster_id = 1;
	cfg->member_count = (uint8_t)o->replicas;
	px_config_default(&cfg->px, (uint8_t)o->replicas, 0);
	cfg->px.window_slots = o->window;
	cfg->px.batch_requests_max = o->batch;
	cfg->px.request_queue_max = 4096;
	cfg->px.session_max = 8192;
	/* A follower's lcore may be preempted for 10-100 ms on a loaded
	 * 2-core VM while the leader and the other follower (a majority, on
	 * the other lcore) commit 200 slots per ms with packed requests. It
	 * catches up from the log while it can (8192 slots, about 40 ms of
	 * that; the default 1024 was 5 ms, and cluster-ring-3 then failed 3
	 * runs of 10), and past that from a snapshot, as in bypaxd
	 * (--snapshot-mb; before it, such a run ended DIFFERENT: the
	 * bench's 4096-lane run after a 97 ms stall). */
	cfg->px.log_slots = 8192;
	for (uint32_t i = 0; i < o->replicas; i++)
		endpoint_address(i, true, &cfg->members[i].data);
	snprintf(cfg->sm, sizeof(cfg->sm), "%s", o->sm);
	snprintf(cfg->sm_args, sizeof(cfg->sm_args), "%s", o->sm_args);
}

/* --key-file: the cluster key, and the batch budget that leaves room for
 * its tag (as [cluster] key_file does in a config file). */
static int load_key(struct cluster *c, char *err, size_t err_len)
{
	if (c->o->key_file == NULL)
		return 0;
	int rc = bpx_auth_key_read(c->o->key_file, &c->cfg.key, err, err_len);
	if (rc == 0 && bpx_auth_init() != 0) {
		snprintf(err, err_len, "cannot initialise libsodium");
		rc = -BPX_EIO;
	}
	c->cfg.px.batch_bytes_max = BPX_AUTH_BATCH_BYTES_MAX;
	return rc;
}

/* Every endpoint can reach every other through its own TX queue. */
static int mesh_routes(struct cluster *c, struct dp_routes *rt, uint16_t self)
{
	uint32_t r = c->o->replicas, g = c->o->loadgens;
	for (uint16_t e = 0; e < c->mesh.endpoints; e++) {
		struct bpx_endpoint ep;
		if (e < r)
			ep = c->cfg.members[e].data;
		else if (e < r + g)
			endpoint_address(e - r, false, &ep);
		else
			ep = c->garbage_ep;
		int q = dp_routes_add_txq(rt, c->mesh.ports[self], e);
		if (q < 0 || dp_routes_add_mac(rt, ep.mac, (uint8_t)q) != 0)
			return -BPX_ENOMEM;
	}
	return 0;
}

static int setup_replicas(struct cluster *c, char *err, size_t len)
{
	c->sm_ops = dp_sm_load(c->o->sm, &c->sm_dl, err, len);
	if (c->sm_ops == NULL)
		return -BPX_ECONFIG;
	c->replicas = rte_zmalloc("bypax_replicas",
				  c->o->replicas * sizeof(*c->replicas), 64);
	if (c->replicas == NULL)
		return -BPX_ENOMEM;
	for (uint32_t i = 0; i < c->o->replicas; i++) {
		const char *args = c->cfg.sm_args[0] ? c->cfg.sm_args : NULL;
		c->sms[i] = c->sm_ops->create(args);
		if (c->sms[i] == NULL) {
			snprintf(err, len, "state machine %.64s refused "
				 "sm_args %.64s", c->o->sm, c->cfg.sm_args);
			return -BPX_ECONFIG;
		}
		struct dp_replica *r = &c->replicas[i];
		int rc = dp_replica_init(r, &c->cfg, (uint8_t)i, false, c->sm_ops,
					 c->sms[i], c->pool, err, len);
		rc = rc ? rc : dp_replica_add_rx(r, c->mesh.ports[i], 0);
		rc = rc ? rc : mesh_routes(c, &r->routes, (uint16_t)i);
		if (rc)
			return rc;
		if (rc == 0 && c->o->snapshot_mb > 0 &&
		    dp_replica_enable_snapshots(
			    r, (size_t)c->o->snapshot_mb << 20) != 0) {
			snprintf(err, len,
				 "no memory for --snapshot-mb %" PRIu32
				 " (two buffers of that size per replica)",
				 c->o->snapshot_mb);
			return -BPX_ENOMEM;
		}
		dp_replica_set_leader_hint(r, (uint8_t)c->o->leader);
		r->share_payload = dp_port_multi_seg(c->mesh.ports[i]);
		r->tx_ip_cksum = dp_port_tx_ip_cksum(c->mesh.ports[i]);
	}
	return 0;
}

static int setup_loadgens(struct cluster *c)
{
	c->loadgens = rte_zmalloc("bypax_loadgens",
				  c->o->loadgens * sizeof(*c->loadgens), 64);
	if (c->loadgens == NULL)
		return -BPX_ENOMEM;
	for (uint32_t k = 0; k < c->o->loadgens; k++) {
		struct dp_loadgen_config lc = {
			.lanes = c->o->lanes,
			.value_bytes = c->o->value_bytes,
			.get_pct = c->o->get_pct,
			.keys = c->o->keys,
			.timeout_ns = 50000000ull,
			.seed = 0x5eed + k,
			.pack = c->o->pack,
			/* The offered rate, split over the generators. */
			.rate_per_s = c->o->rate_per_s / c->o->loadgens +
				      (k < c->o->rate_per_s % c->o->loadgens),
		};
		struct bpx_endpoint self;
		endpoint_address(k, false, &self);
		uint16_t e = (uint16_t)(c->o->replicas + k);
		struct dp_loadgen *g = &c->loadgens[k];
		int rc = dp_loadgen_init(g, &c->cfg, &self,
					 (uint64_t)(k + 1) << 32, &lc, c->pool);
		rc = rc ? rc : mesh_routes(c, &g->routes, e);
		rc = rc ? rc : dp_loadgen_add_rx(g, c->mesh.ports[e], 0);
		if (rc)
			return rc;
		bpx_engine_set_leader(&g->eng, (uint8_t)c->o->leader);
		g->issuing = true;
	}
	return 0;
}

/* Endpoint e runs on lcore e % lcores; the main lcore takes its share. */
static void plan_lcores(struct cluster *c)
{
	unsigned id;
	c->lcores = 0;
	c->lcore_ids[c->lcores++] = rte_get_main_lcore();
	RTE_LCORE_FOREACH_WORKER(id)
		c->lcore_ids[c->lcores++] = id;
	uint32_t total = c->o->replicas + c->o->loadgens;
	for (uint32_t e = 0; e < total; e++) {
		struct lcore_work *w = &c->work[e % c->lcores];
		struct endpoint *ep = &w->eps[w->count++];
		ep->kind = e < c->o->replicas ? EP_REPLICA : EP_LOADGEN;
		ep->obj = e < c->o->replicas
				  ? (void *)&c->replicas[e]
				  : (void *)&c->loadgens[e - c->o->replicas];
		ep->busy_cycles = &c->ep_busy_cycles[e];
	}
}

/* tsc: read by the caller for its accounting; the endpoint's time too. */
static uint32_t poll_endpoint(struct endpoint *ep, uint64_t tsc)
{
	uint64_t now_ns = dp_ns_at_tsc(tsc);
	if (ep->kind == EP_REPLICA)
		return dp_replica_poll_at(ep->obj, now_ns);
	return dp_loadgen_poll_at(ep->obj, now_ns);
}

/* One pass over an lcore's endpoints, with TSC accounting of busy versus
 * idle polls (per lcore, and per endpoint for the leader's share) and a
 * sleep after a run of idle ones. One TSC read per endpoint: the one that
 * ends the last endpoint's poll starts the next one's, as its time.
 * Returns the last reading, for the main lcore's deadlines (taken before
 * any sleep: a deadline then waits one pass more, no longer). */
static uint64_t poll_once(struct cluster *c, struct lcore_work *w,
			  uint32_t *idle_run)
{
	uint64_t t0 = rte_rdtsc(), t = t0;
	uint32_t work = 0;
	if (w->last_poll_tsc != 0 &&
	    t0 - w->last_poll_tsc > c->stall_cycles_min) {
		uint64_t gap = t0 - w->last_poll_tsc;
		w->stalls++;
		w->stall_cycles += gap;
		if (gap > w->stall_max_cycles)
			w->stall_max_cycles = gap;
	}
	w->last_poll_tsc = t0;
	for (uint32_t i = 0; i < w->count; i++) {
		uint32_t n = poll_endpoint(&w->eps[i], t);
		uint64_t t1 = rte_rdtsc();
		if (n > 0 && w->eps[i].busy_cycles != NULL)
			*w->eps[i].busy_cycles += t1 - t;
		work += n;
		t = t1;
	}
	uint64_t spent = t - t0;
	if (work > 0) {
		w->busy_cycles += spent;
		*idle_run = 0;
		return t;
	}
	w->idle_cycles += spent;
	if (c->o->idle_sleep_us > 0 && ++*idle_run >= IDLE_POLLS_BEFORE_SLEEP) {
		rte_delay_us_sleep(c->o->idle_sleep_us);
		w->last_poll_tsc = 0; /* a sleep asked for is no stall */
	}
	return t;
}

static int worker_main(void *arg)
{
	struct cluster *c = arg;
	unsigned slot = 0;
	while (c->lcore_ids[slot] != rte_lcore_id())
		slot++;
	uint32_t idle_run = 0;
	while (!c->stop)
		poll_once(c, &c->work[slot], &idle_run);
	return 0;
}

/* ---- Malformed input, to prove every kind is a counted drop ---- */

#define GARBAGE_KINDS 20u
#define GARBAGE_WRONG_KEY 16u
#define GARBAGE_PACKED_COUNT 18u /* a MULTI_REQUEST claiming one more */
#define GARBAGE_PACKED_FLAG 19u  /* one of its entries with RECOVERY */

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void fix_ip_checksum(uint8_t *frame)
{
	put_be16(frame + 24, 0);
	put_be16(frame + 24, bpx_inet_checksum(frame + 14, 20, 0));
}

/* A COMMIT that is right in every way but its tag: from a member's own
 * address, signed with a key one bit off the cluster's (or, in a cluster
 * without a key, carrying a tag it must not). Counted as bad MAC with a
 * key, as a bad length without. */
static uint16_t wrong_key_frame(struct cluster *c, uint8_t to, uint8_t *f)
{
	uint8_t from = (uint8_t)((to + 1) % c->o->replicas);
	struct px_msg m = { .type = PX_MSG_COMMIT, .from = from, .to = to,
			    .ballot = px_ballot_make(1, from) };
	uint8_t *b = f + BPX_FRAME_HEADER_BYTES;
	int n = bpx_wire_encode(b, BPX_WIRE_PAYLOAD_MAX, c->cfg.cluster_id, &m);
	struct bpx_auth_key wrong = c->cfg.key;
	wrong.bytes[0] ^= 1;
	bpx_auth_sign(&wrong, b, (size_t)n, b + n);
	n += BPX_AUTH_TAG_BYTES;
	bpx_frame_write_headers(f, &c->cfg.members[from].data,
				&c->cfg.members[to].data, (uint16_t)n, 0);
	return (uint16_t)(BPX_FRAME_HEADER_BYTES + n);
}

/* A MULTI_REQUEST of two well-formed writes from a client address, wrong
 * in one way: the count, or an entry's flags. Dropped whole (a bad length,
 * a field out of range); neither write is applied. */
static uint16_t packed_garbage(struct cluster *c, uint32_t kind, uint8_t to,
			       uint8_t *f)
{
	static const uint8_t cmd[] = { BPX_KV_PUT, 0 };
	struct bpx_wire_packer w;
	uint8_t *b = f + BPX_FRAME_HEADER_BYTES;
	RTE_VERIFY(bpx_wire_multi_begin(&w, b, BPX_WIRE_MULTI_PAYLOAD_MAX,
					c->cfg.cluster_id,
					BPX_WIRE_MULTI_REQUEST, PX_TO_CLIENT,
					to, PX_REPLICA_NONE) == 0);
	for (uint64_t seq = 1; seq <= 2; seq++) {
		struct px_msg m = { .client_id = PX_SESSION_ID_BIT | 0x9a1,
				    .seq = seq, .value = cmd,
				    .value_len = sizeof(cmd) };
		RTE_VERIFY(bpx_wire_multi_add(&w, &m) == 0);
	}
	uint16_t n = (uint16_t)bpx_wire_multi_finish(&w);
	if (kind == GARBAGE_PACKED_COUNT)
		b[16]++;
	else
		b[BPX_WIRE_MULTI_HEAD_BYTES + 16] = PX_FLAG_RECOVERY;
	bpx_frame_write_headers(f, &c->garbage_ep, &c->cfg.members[to].data,
				n, 0);
	return (uint16_t)(BPX_FRAME_HEADER_BYTES + n);
}

/* A frame that is wrong in one way (kind), aimed at replica `to`. The base
 * is a well-formed COMMIT claiming to come from member 1 but sent from a
 * non-member address, itself one of the kinds. */
static uint16_t build_garbage(struct cluster *c, uint32_t kind, uint8_t to,
			      uint64_t *prng, uint8_t *f)
{
	struct px_msg m = { .type = PX_MSG_COMMIT, .from = 1, .to = to,
			    .ballot = px_ballot_make(1, 1) };
	int n = bpx_wire_encode(f + BPX_FRAME_HEADER_BYTES, BPX_WIRE_PAYLOAD_MAX,
				c->cfg.cluster_id, &m);
	bpx_frame_write_headers(f, &c->garbage_ep, &c->cfg.members[to].data,
				(uint16_t)n, 0);
	uint16_t len = (uint16_t)(BPX_FRAME_HEADER_BYTES + (uint16_t)n);
	uint8_t *b = f + BPX_FRAME_HEADER_BYTES;
	switch (kind) {
	case 0: return 10;                                    /* truncated */
	case 1: put_be16(f + 12, 0x86dd); break;              /* IPv6 */
	case 2: f[24] ^= 0xff; break;                         /* IP checksum */
	case 3: put_be16(f + 20, 0x2001); fix_ip_checksum(f); break;
	case 4: f[23] = 6; fix_ip_checksum(f); break;         /* TCP */
	case 5: put_be16(f + 38, 9); break;                   /* UDP length */
	case 6: put_be16(f + 40, 0x1234); break;              /* UDP checksum */
	case 7: f[33] ^= 0x55; fix_ip_checksum(f); break;     /* other IP */
	case 8: b[0] = 0; break;                              /* magic */
	case 9: b[2] = 9; break;                              /* version */
	case 10: b[3] = 99; break;                            /* type */
	case 11: b[7] ^= 1; break;                            /* cluster */
	case 12: len--; break;                                /* length */
	case 13: break;                                       /* non-member */
	case 14: put_be16(b + 14, 0xffff); break;             /* value_len */
	case 15:                                              /* random */
		len = (uint16_t)(1 + *prng % 300);
		for (uint16_t i = 0; i < len; i++) {
			*prng = *prng * 6364136223846793005ull + 1;
			f[i] = (uint8_t)(*prng >> 56);
		}
		break;
	case GARBAGE_WRONG_KEY: return wrong_key_frame(c, to, f);
	case GARBAGE_PACKED_COUNT:
	case GARBAGE_PACKED_FLAG: return packed_garbage(c, kind, to, f);
	default: put_be16(f + 12, BPX_ETHERTYPE_ARP); len = 20; break;
	}
	return len;
}

static void inject_garbage(struct cluster *c, uint64_t *prng)
{
	uint64_t total = (uint64_t)c->o->garbage * GARBAGE_KINDS *
			 c->o->replicas;
	if (c->garbage_sent >= total)
		return;
	uint64_t i = c->garbage_sent++;
	uint8_t to = (uint8_t)(i % c->o->replicas);
	uint32_t kind = (uint32_t)(i / c->o->replicas % GARBAGE_KINDS);
	struct rte_mbuf *mb = rte_pktmbuf_alloc(c->pool);
	if (mb == NULL)
		return;
	uint8_t frame[BPX_FRAME_MAX + BPX_AUTH_TAG_BYTES];
	uint16_t len = build_garbage(c, kind, to, prng, frame);
	memcpy(rte_pktmbuf_append(mb, len), frame, len);
	if (rte_eth_tx_burst(c->garbage_port, to, &mb, 1) != 1)
		rte_pktmbuf_free(mb);
}

/* ---- Running and checking ---- */

static uint64_t total_completed(const struct cluster *c)
{
	uint64_t n = 0;
	for (uint32_t k = 0; k < c->o->loadgens; k++)
		n += c->loadgens[k].completed;
	return n;
}

static bool run_finished(const struct cluster *c, uint64_t elapsed_ns)
{
	if (cluster_force_quit)
		return true;
	if (c->o->requests > 0)
		return total_completed(c) >= c->o->requests;
	return (double)elapsed_ns >= c->o->duration_s * 1e9;
}

static void print_progress(const struct cluster *c, uint64_t elapsed_ns,
			   uint64_t *last_done, uint64_t *last_ns)
{
	uint64_t done = total_completed(c);
	double dt = (double)(elapsed_ns - *last_ns) / 1e9;
	printf("[%5.1f s] committed %10" PRIu64 " ops  %10.0f ops/s\n",
	       (double)elapsed_ns / 1e9, done,
	       dt > 0 ? (double)(done - *last_done) / dt : 0.0);
	fflush(stdout);
	*last_done = done;
	*last_ns = elapsed_ns;
}

/* The load phase: every lcore polls its endpoints; the main lcore also
 * injects garbage and prints progress. */
static uint64_t run_load(struct cluster *c)
{
	unsigned slot;
	uint64_t warm_end = dp_now_ns() + (uint64_t)c->o->warmup_ms * 1000000ull;
	for (uint32_t k = 0; k < c->o->loadgens; k++)
		c->loadgens[k].record_from_ns = warm_end;
	for (slot = 1; slot < c->lcores; slot++)
		rte_eal_remote_launch(worker_main, c, c->lcore_ids[slot]);
	uint64_t tsc = rte_rdtsc(), last_ns = 0, last_done = 0;
	uint64_t start = dp_ns_at_tsc(tsc);
	uint64_t prng = 0x9e3779b97f4a7c15ull;
	uint32_t idle_run = 0;
	for (;;) {
		/* The last pass's final TSC reading: no read of its own. */
		uint64_t elapsed = dp_ns_at_tsc(tsc) - start;
		if (run_finished(c, elapsed))
			break;
		tsc = poll_once(c, &c->work[0], &idle_run);
		for (int i = 0; i < 4; i++)
			inject_garbage(c, &prng);
		if (c->o->progress && elapsed - last_ns >= 1000000000ull)
			print_progress(c, elapsed, &last_done, &last_ns);
	}
	uint64_t elapsed = dp_now_ns() - start;
	for (uint32_t k = 0; k < c->o->loadgens; k++)
		c->loadgens[k].issuing = false;
	c->stop = true;
	rte_eal_mp_wait_lcore();
	return elapsed;
}

static bool converged(const struct cluster *c)
{
	uint64_t top = 0;
	for (uint32_t i = 0; i < c->o->replicas; i++)
		if (px_commit_index(c->replicas[i].px) > top)
			top = px_commit_index(c->replicas[i].px);
	for (uint32_t i = 0; i < c->o->replicas; i++)
		if (px_applied_index(c->replicas[i].px) != top)
			return false;
	for (uint32_t k = 0; k < c->o->loadgens; k++)
		if (dp_loadgen_outstanding(&c->loadgens[k]) > 0)
			return false;
	return true;
}

/* With the workers stopped, the main lcore owns every endpoint: it polls
 * them all until requests in flight finish and every replica has applied
 * the whole log (bounded). */
static bool drain(struct cluster *c)
{
	uint64_t deadline = dp_now_ns() + DRAIN_LIMIT_NS;
	struct lcore_work all = { 0 };
	for (unsigned s = 0; s < c->lcores; s++)
		for (uint32_t i = 0; i < c->work[s].count; i++)
			all.eps[all.count++] = c->work[s].eps[i];
	uint32_t idle_run = 0;
	for (uint32_t i = 0; i < all.count; i++)
		all.eps[i].busy_cycles = NULL; /* the load phase's figures only */
	uint64_t tsc = rte_rdtsc();
	while (!converged(c) && dp_ns_at_tsc(tsc) < deadline)
		tsc = poll_once(c, &all, &idle_run);
	return converged(c);
}

static void fill_report(struct cluster *c, uint64_t elapsed_ns,
			struct cluster_report *rep)
{
	struct bpx_hist h;
	bpx_hist_reset(&h);
	uint64_t tx = 0, busy = 0;
	memset(rep, 0, sizeof(*rep));
	for (uint32_t k = 0; k < c->o->loadgens; k++) {
		struct dp_loadgen *g = &c->loadgens[k];
		bpx_hist_merge(&h, g->hist);
		rep->completed += g->completed;
		rep->issued += g->issued;
		/* Outcome unknown, or refused. */
		rep->errors += g->errors + g->expired + g->deadlines;
		tx += g->ctr.tx_frames;
	}
	const struct px_stats *lead = px_stats(c->replicas[0].px);
	uint32_t lead_id = 0;
	rep->states_identical = true;
	rep->applied = px_applied_index(c->replicas[0].px);
	uint64_t digest = px_state_digest(c->replicas[0].px);
	for (uint32_t i = 0; i < c->o->replicas; i++) {
		struct dp_replica *r = &c->replicas[i];
		const struct px_stats *s = px_stats(r->px);
		if (s->slots_proposed > lead->slots_proposed) {
			lead = s;
			lead_id = i;
		}
		tx += r->ctr.tx_frames;
		rep->shared_sends += r->ctr.shared_sends;
		rep->packed_frames += r->ctr.packed_frames_rx;
		rep->packed_requests += r->ctr.packed_requests_rx;
		rep->packed_reply_frames += r->ctr.packed_frames_tx;
		rep->packed_replies += r->ctr.packed_replies_tx;
		for (unsigned d = 1; d < BPX_WIRE_DROP_COUNT; d++)
			rep->drops_total += r->ctr.drops[d];
		rep->bad_mac += r->ctr.drops[BPX_WIRE_BAD_MAC];
		rep->drops_total += r->ctr.multi_segment + r->ctr.px_rejected;
		rep->replica_applied[i] = px_applied_index(r->px);
		rep->replica_commit[i] = px_commit_index(r->px);
		rep->replica_digest[i] = px_state_digest(r->px);
		if (px_applied_index(r->px) != rep->applied ||
		    px_state_digest(r->px) != digest)
			rep->states_identical = false;
	}
	uint64_t stall_cycles = 0, stall_max = 0;
	for (unsigned s = 0; s < c->lcores; s++) {
		busy += c->work[s].busy_cycles;
		rep->stalls += c->work[s].stalls;
		stall_cycles += c->work[s].stall_cycles;
		if (c->work[s].stall_max_cycles > stall_max)
			stall_max = c->work[s].stall_max_cycles;
	}
	rep->stall_ms = (double)stall_cycles * 1e3 / (double)rte_get_tsc_hz();
	rep->stall_max_ms = (double)stall_max * 1e3 / (double)rte_get_tsc_hz();
	rep->seconds = (double)elapsed_ns / 1e9;
	rep->p50_ns = bpx_hist_quantile(&h, 0.50);
	rep->p99_ns = bpx_hist_quantile(&h, 0.99);
	rep->p999_ns = bpx_hist_quantile(&h, 0.999);
	rep->max_ns = h.count ? h.max : 0;
	rep->latency_samples = h.count;
	rep->mean_ns = h.count ? (double)h.sum / (double)h.count : 0;
	rep->batch_avg = lead->slots_proposed
				 ? (double)lead->batch_requests_total /
					   (double)lead->slots_proposed
				 : 0;
	rep->packets_per_op = rep->completed ? (double)tx / (double)rep->completed
					     : 0;
	rep->cycles_per_op = rep->completed ? (double)busy / (double)rep->completed
					    : 0;
	uint64_t lead_busy = c->ep_busy_cycles[lead_id];
	rep->leader_id = lead_id;
	rep->leader_cycles_per_op = rep->completed ? (double)lead_busy /
							     (double)rep->completed
						   : 0;
	rep->tsc_hz = rte_get_tsc_hz();
	rep->leader_busy_frac = elapsed_ns > 0 ? (double)lead_busy /
						 ((double)elapsed_ns * 1e-9 *
						  (double)rep->tsc_hz)
					       : 0;
	for (uint32_t k = 0; k < c->o->loadgens; k++)
		rep->resends += c->loadgens[k].resends;
	rep->garbage_sent = c->garbage_sent;
	for (uint32_t i = 0; i < c->o->replicas; i++)
		rep->snapshots_installed +=
			c->replicas[i].ctr.snapshots_installed;
}

static void teardown(struct cluster *c, struct cluster_report *rep)
{
	for (uint32_t i = 0; c->replicas && i < c->o->replicas; i++)
		dp_replica_free(&c->replicas[i]);
	for (uint32_t i = 0; i < c->o->replicas; i++)
		if (c->sms[i] != NULL)
			c->sm_ops->destroy(c->sms[i]);
	for (uint32_t k = 0; c->loadgens && k < c->o->loadgens; k++)
		dp_loadgen_free(&c->loadgens[k]);
	rte_free(c->replicas);
	rte_free(c->loadgens);
	if (c->mesh.endpoints > 0)
		dp_ring_mesh_close(&c->mesh);
	if (c->pool != NULL) {
		/* Every mbuf is back in the pool, or something leaked one. */
		rep->mbufs_in_use = rte_mempool_in_use_count(c->pool);
		rep->mbufs_returned = rep->mbufs_in_use == 0;
		rte_mempool_free(c->pool);
	}
	dp_sm_unload(c->sm_dl);
}

/* One key's PUT into every replica's store. false when one refused it. */
static bool prefill_key(struct cluster *c, uint32_t k, const uint8_t *value)
{
	uint8_t cmd[PX_COMMAND_BYTES_MAX], reply[BPX_SM_REPLY_BYTES_MAX];
	char key[16];
	int klen = snprintf(key, sizeof(key), "k%06u", k); /* loadgen.c's */
	int n = bpx_kv_encode(cmd, sizeof(cmd), BPX_KV_PUT, key, (size_t)klen,
			      value, c->o->value_bytes, NULL, 0);
	DP_ASSERT(n > 0);
	for (uint32_t i = 0; i < c->o->replicas; i++) {
		uint8_t status = BPX_KV_BAD_COMMAND;
		const uint8_t *v;
		uint16_t vlen;
		int r = c->sm_ops->apply(c->sms[i], cmd, (uint32_t)n, reply,
					 sizeof(reply));
		if (r <= 0 || bpx_kv_decode_reply(reply, (size_t)r, &status,
						  &v, &vlen) != 0 ||
		    status != BPX_KV_OK)
			return false;
	}
	return true;
}

/* --prefill: every key of --keys PUT into every replica's store directly,
 * alike on all (as the log would apply them), before the load. The timed
 * requests then overwrite keys whose index slots and entries are in
 * memory already: the store at that size, pre-faulted (bypaxd's mlockall
 * faults its store in at start), not its first inserts. */
static int prefill_stores(struct cluster *c, struct cluster_report *rep,
			  char *err, size_t len)
{
	if (!c->o->prefill)
		return 0;
	if (c->sm_ops != bpx_kv_ops()) {
		snprintf(err, len, "--prefill needs the built-in kv store, not "
			 "%.64s", c->o->sm);
		return -BPX_EINVAL;
	}
	uint8_t value[BPX_KV_VALUE_BYTES_MAX];
	memset(value, 'p', c->o->value_bytes);
	uint64_t t0 = dp_now_ns();
	for (uint32_t k = 0; k < c->o->keys; k++) {
		if (!prefill_key(c, k, value)) {
			snprintf(err, len, "--prefill: the store refused key "
				 "k%06u of %u: size it with --sm-args "
				 "capacity=N,bytes=B (docs/config.md)", k,
				 c->o->keys);
			return -BPX_EINVAL;
		}
	}
	rep->prefill_s = (double)(dp_now_ns() - t0) / 1e9;
	if (c->o->progress)
		printf("prefilled %u keys into %u stores in %.1f s\n",
		       c->o->keys, c->o->replicas, rep->prefill_s);
	return 0;
}

int cluster_run(const struct cluster_opts *o, struct cluster_report *rep)
{
	static struct cluster c;
	char err[256] = "";
	memset(&c, 0, sizeof(c));
	memset(rep, 0, sizeof(*rep));
	c.o = o;
	dp_clock_init();
	c.stall_cycles_min = rte_get_tsc_hz() / (1000000000ull / STALL_NS);
	build_config(&c);
	int rc = load_key(&c, err, sizeof(err));
	endpoint_address(200, false, &c.garbage_ep);
	c.pool = rte_pktmbuf_pool_create("bypax_mbufs", MESH_POOL_MBUFS, 256,
					 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					 (int)rte_socket_id());
	rc = rc ? rc : c.pool ? 0 : -BPX_ENOMEM;
	if (rc == -BPX_ENOMEM)
		snprintf(err, sizeof(err), "mbuf pool: %s (raise EAL -m)",
			 rte_strerror(rte_errno));
	uint16_t endpoints = (uint16_t)(o->replicas + o->loadgens + 1);
	rc = rc ? rc : dp_ring_mesh_create(&c.mesh, endpoints, c.pool, err,
					   sizeof(err));
	c.garbage_port = c.mesh.ports[endpoints - 1];
	rc = rc ? rc : setup_replicas(&c, err, sizeof(err));
	rc = rc ? rc : setup_loadgens(&c);
	rc = rc ? rc : prefill_stores(&c, rep, err, sizeof(err));
	if (rc == 0) {
		plan_lcores(&c);
		uint64_t elapsed = run_load(&c);
		bool drained = drain(&c);
		double prefill_s = rep->prefill_s;
		fill_report(&c, elapsed, rep);
		rep->prefill_s = prefill_s;
		rep->drained = drained;
	} else {
		fprintf(stderr, "bypax-cluster: %s\n",
			err[0] ? err : bpx_strerror(rc));
	}
	teardown(&c, rep);
	return rc;
}
