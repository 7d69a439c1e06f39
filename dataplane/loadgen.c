/* The load generator: client lanes that speak the wire protocol on a DPDK
 * port. Their rules (sessions opened through the log, redirects, BUSY
 * backoff, retries with the same (client_id, seq), timeouts, deadlines)
 * are the client engine's (client/engine.h), as in libbypax and the
 * simulator; this file makes the commands, sends and receives frames, and
 * records latency from the first send to the reply (an OPEN before a
 * lane's write counts in that write's latency). Nothing here allocates
 * after init. */
#include <stdio.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_malloc.h>

#include "bypax/kv.h"
#include "dp.h"

#define DEADLINE_NS_DEFAULT 5000000000ull /* BPX_CLIENT_DEADLINE_MS_DEFAULT */

int dp_loadgen_init(struct dp_loadgen *g, const struct bpx_config *cfg,
		    const struct bpx_endpoint *self, uint64_t client_base,
		    const struct dp_loadgen_config *lc,
		    struct rte_mempool *pool)
{
	memset(g, 0, sizeof(*g));
	/* Nonces are client ids a client picks: bit 63 clear. */
	if (lc->lanes == 0 || lc->lanes > DP_LANES_MAX ||
	    lc->pack > BPX_WIRE_MULTI_MAX ||
	    ((client_base + lc->lanes - 1) & PX_SESSION_ID_BIT) ||
	    client_base == 0)
		return -BPX_EINVAL;
	g->lc = *lc;
	g->cfg = cfg;
	g->self = *self;
	for (uint8_t k = 0; k < cfg->member_count && k < PX_REPLICAS_MAX; k++)
		bpx_frame_template_init(&g->to_member[k], self,
					&cfg->members[k].data);
	g->pool = pool;
	g->prng = lc->seed | 1;
	g->lanes = rte_zmalloc("bypax_lanes", lc->lanes * sizeof(*g->lanes), 64);
	g->hist = rte_zmalloc("bypax_hist", sizeof(*g->hist), 64);
	if (g->lanes == NULL || g->hist == NULL) {
		dp_loadgen_free(g);
		return -BPX_ENOMEM;
	}
	bpx_hist_reset(g->hist);
	struct bpx_engine_config ec = {
		.member_count = cfg->member_count,
		.seq_tag_bits = DP_LANE_SEQ_BITS,
		.timeout_ns = lc->timeout_ns,
		.deadline_ns = lc->deadline_ns ? lc->deadline_ns
					       : DEADLINE_NS_DEFAULT,
		.seed = lc->seed,
	};
	bpx_engine_init(&g->eng, &ec);
	/* A write's seq carries the lane index (lane_of). */
	for (uint32_t i = 0; i < lc->lanes; i++)
		bpx_engine_lane_init(&g->eng, &g->lanes[i].eng, i,
				     client_base + i, i);
	dp_routes_init(&g->routes);
	return 0;
}

void dp_loadgen_free(struct dp_loadgen *g)
{
	rte_free(g->lanes);
	rte_free(g->hist);
	g->lanes = NULL;
	g->hist = NULL;
}

int dp_loadgen_add_rx(struct dp_loadgen *g, uint16_t port, uint16_t queue)
{
	if (g->rx_count >= DP_RX_MAX)
		return -BPX_ENOMEM;
	g->rx[g->rx_count++] = (struct dp_rx){ .port = port, .queue = queue };
	return 0;
}

static uint64_t next_rand(struct dp_loadgen *g)
{
	g->prng ^= g->prng << 13;
	g->prng ^= g->prng >> 7;
	g->prng ^= g->prng << 17;
	return g->prng;
}

static void make_command(struct dp_loadgen *g, struct dp_lane *l)
{
	char key[16];
	uint8_t value[BPX_KV_VALUE_BYTES_MAX];
	int klen = snprintf(key, sizeof(key), "k%06u",
			    (unsigned)(next_rand(g) % g->lc.keys));
	bool get = next_rand(g) % 100 < g->lc.get_pct;
	/* GETs are session-less reads (the leader's lease serves them);
	 * writes go on the lane's session with the next seq. */
	l->is_read = get;
	memset(value, 'a' + (int)(l->eng.seq % 26), g->lc.value_bytes);
	int n = bpx_kv_encode(l->cmd, sizeof(l->cmd),
			      get ? BPX_KV_GET : BPX_KV_PUT, key, (size_t)klen,
			      get ? NULL : value, get ? 0 : g->lc.value_bytes,
			      NULL, 0);
	l->cmd_len = n > 0 ? (uint16_t)n : 0;
}

static void send_single(struct dp_loadgen *g, const struct px_msg *m)
{
	struct rte_mbuf *mb = rte_pktmbuf_alloc(g->pool);
	if (mb == NULL) {
		g->ctr.mbuf_exhausted++;
		return; /* the engine's attempt timeout resends */
	}
	size_t len = BPX_FRAME_HEADER_BYTES + bpx_wire_msg_size(m);
	uint8_t *p = (uint8_t *)rte_pktmbuf_append(mb, (uint16_t)len);
	int n = p ? bpx_wire_encode(p + BPX_FRAME_HEADER_BYTES,
				    len - BPX_FRAME_HEADER_BYTES,
				    g->cfg->cluster_id, m)
		  : -1;
	if (n < 0) {
		g->ctr.encode_failed++;
		rte_pktmbuf_free(mb);
		return;
	}
	bpx_frame_write_template(p, &g->to_member[m->to], (uint16_t)n, 0,
				 true);
	dp_txq_push(dp_routes_lookup(&g->routes,
				     g->cfg->members[m->to].data.mac),
		    mb, &g->ctr);
}

/* ---- Packed requests: one MULTI_REQUEST frame per member and pass ---- */

static void send_pack(struct dp_loadgen *g, uint8_t member)
{
	struct dp_request_pack *pk = &g->packs[member];
	size_t len = bpx_wire_multi_finish(&pk->w);
	RTE_VERIFY(pk->w.count > 0 && len <= BPX_WIRE_MULTI_PAYLOAD_MAX);
	RTE_VERIFY(rte_pktmbuf_trim(pk->mb, (uint16_t)(BPX_WIRE_MULTI_PAYLOAD_MAX -
							len)) == 0);
	bpx_frame_write_template(pk->frame, &g->to_member[member],
				 (uint16_t)len, 0, true);
	g->ctr.packed_frames_tx++;
	dp_txq_push(dp_routes_lookup(&g->routes,
				     g->cfg->members[member].data.mac),
		    pk->mb, &g->ctr);
	pk->mb = NULL;
}

static bool open_pack(struct dp_loadgen *g, uint8_t member)
{
	struct dp_request_pack *pk = &g->packs[member];
	pk->mb = rte_pktmbuf_alloc(g->pool);
	if (pk->mb == NULL) {
		g->ctr.mbuf_exhausted++;
		return false; /* the engine's attempt timeout resends */
	}
	pk->frame = (uint8_t *)rte_pktmbuf_append(
		pk->mb, BPX_FRAME_HEADER_BYTES + BPX_WIRE_MULTI_PAYLOAD_MAX);
	if (pk->frame == NULL ||
	    bpx_wire_multi_begin(&pk->w, pk->frame + BPX_FRAME_HEADER_BYTES,
				 BPX_WIRE_MULTI_PAYLOAD_MAX, g->cfg->cluster_id,
				 BPX_WIRE_MULTI_REQUEST, PX_TO_CLIENT, member,
				 PX_REPLICA_NONE) != 0) {
		g->ctr.encode_failed++;
		rte_pktmbuf_free(pk->mb);
		pk->mb = NULL;
		return false;
	}
	return true;
}

static void pack_request(struct dp_loadgen *g, const struct px_msg *m)
{
	struct dp_request_pack *pk = &g->packs[m->to];
	if (pk->mb != NULL && !bpx_wire_multi_fits(&pk->w, m->value_len))
		send_pack(g, m->to);
	if (pk->mb == NULL && !open_pack(g, m->to))
		return;
	if (bpx_wire_multi_add(&pk->w, m) != 0) {
		g->ctr.encode_failed++;
		if (pk->w.count == 0) {
			rte_pktmbuf_free(pk->mb);
			pk->mb = NULL;
		}
		return;
	}
	if (pk->w.count >= g->lc.pack)
		send_pack(g, m->to);
}

/* The end of a pass: what the lanes made ready goes now, so packing adds
 * no wait. */
static void send_packs(struct dp_loadgen *g)
{
	for (uint8_t k = 0; k < g->cfg->member_count && k < PX_REPLICAS_MAX;
	     k++)
		if (g->packs[k].mb != NULL)
			send_pack(g, k);
}

static void send_request(struct dp_loadgen *g,
			 const struct bpx_engine_send *s)
{
	struct px_msg m = bpx_engine_send_msg(s);
	if (g->lc.pack > 1)
		pack_request(g, &m);
	else
		send_single(g, &m);
}

/* Whether a new request may start now, and the time its latency counts
 * from: now in a closed loop; in an open loop, the next due time of the
 * schedule (rate_per_s), which may lie in the past when no lane was free. */
static bool next_start(struct dp_loadgen *g, uint64_t now_ns, uint64_t *at)
{
	if (!g->issuing)
		return false;
	if (g->lc.rate_per_s == 0) {
		*at = now_ns;
		return true;
	}
	if (g->pace_start_ns == 0)
		g->pace_start_ns = now_ns;
	uint64_t due = g->pace_start_ns +
		       g->paced * 1000000000ull / g->lc.rate_per_s;
	if (due > now_ns)
		return false;
	g->paced++;
	*at = due;
	return true;
}

static void apply(struct dp_loadgen *g, struct bpx_engine_out *out,
		  uint64_t now_ns);

static void start_op(struct dp_loadgen *g, struct dp_lane *l, uint64_t now_ns,
		     uint64_t at_ns)
{
	l->first_sent_ns = at_ns;
	make_command(g, l);
	g->issued++;
	struct bpx_engine_out out = { .count = 0 };
	bpx_engine_submit(&g->eng, &l->eng, l->is_read, l->cmd, l->cmd_len,
			  now_ns, &out);
	apply(g, &out, now_ns);
}

/* A lane's request is done: count it, and start the next one. */
static void on_done(struct dp_loadgen *g, struct dp_lane *l,
		    const struct bpx_engine_done *d, uint64_t now_ns)
{
	switch (d->status) {
	case 0:
		if (l->first_sent_ns >= g->record_from_ns)
			bpx_hist_add(g->hist, now_ns - l->first_sent_ns);
		g->completed++;
		break;
	case -BPX_EEXPIRED:
		/* The session was evicted: this op's outcome is unknown, and
		 * the lane's next write opens a new session. */
		g->expired++;
		break;
	case -BPX_ETIMEDOUT:
		g->deadlines++;
		break;
	default:
		g->errors++; /* STALE, TOO_BIG, BAD_REQUEST: given up */
		break;
	}
	uint64_t at;
	if (next_start(g, now_ns, &at))
		start_op(g, l, now_ns, at);
}

/* Carries out the engine's effects. Its timers need none: drive_lanes
 * asks every lane for its wake time. */
static void apply(struct dp_loadgen *g, struct bpx_engine_out *out,
		  uint64_t now_ns)
{
	for (uint32_t i = 0; i < out->count; i++) {
		const struct bpx_engine_effect *f = &out->effects[i];
		if (f->kind == BPX_ENGINE_SEND)
			send_request(g, &f->send);
		else if (f->kind == BPX_ENGINE_DONE)
			on_done(g, &g->lanes[f->lane], &f->done, now_ns);
	}
	out->count = 0;
}

/* The lane a reply is for: by the nonce (OPENs and reads), or by the lane
 * index in a write's seq. NULL when it is no lane's. */
static struct dp_lane *lane_of(struct dp_loadgen *g, const struct px_msg *m)
{
	uint64_t idx = m->client_id & PX_SESSION_ID_BIT ?
			       m->seq & (DP_LANES_MAX - 1) :
			       m->client_id - g->lanes[0].eng.nonce;
	if (idx >= g->lc.lanes)
		return NULL;
	struct dp_lane *l = &g->lanes[idx];
	return l->eng.client_id == m->client_id ? l : NULL;
}

static void on_reply(struct dp_loadgen *g, const struct px_msg *m,
		     uint64_t now_ns)
{
	struct dp_lane *l = lane_of(g, m);
	if (l == NULL)
		return; /* not ours */
	struct bpx_engine_out out = { .count = 0 };
	if (bpx_engine_on_reply(&g->eng, &l->eng, m, now_ns, &out))
		apply(g, &out, now_ns);
}

static void on_packed_replies(struct dp_loadgen *g, const struct bpx_frame *f,
			      uint64_t now_ns)
{
	struct bpx_wire_unpacker u;
	enum bpx_wire_drop d = bpx_wire_multi_decode(
		f->payload, f->payload_len, g->cfg->cluster_id, &u);
	if (d != BPX_WIRE_OK) {
		g->ctr.drops[d]++;
		return;
	}
	g->ctr.packed_frames_rx++;
	struct px_msg m;
	while (bpx_wire_multi_next(&u, &m)) {
		g->ctr.packed_replies_rx++;
		on_reply(g, &m, now_ns);
	}
}

static void handle_frame(struct dp_loadgen *g, struct rte_mbuf *mb,
			 uint64_t now_ns)
{
	struct bpx_frame f;
	struct px_msg m;
	const uint8_t *data = rte_pktmbuf_mtod(mb, const uint8_t *);
	enum bpx_wire_drop d = bpx_frame_parse(data, rte_pktmbuf_data_len(mb),
					       &f);
	if (d == BPX_WIRE_OK && bpx_wire_type_of(f.payload, f.payload_len) ==
					BPX_WIRE_MULTI_REPLY) {
		on_packed_replies(g, &f, now_ns);
		return;
	}
	if (d == BPX_WIRE_OK)
		d = bpx_wire_decode(f.payload, f.payload_len,
				    g->cfg->cluster_id, &m);
	if (d == BPX_WIRE_OK && m.type != PX_MSG_REPLY)
		d = BPX_WIRE_BAD_TYPE;
	if (d != BPX_WIRE_OK) {
		g->ctr.drops[d]++;
		return;
	}
	on_reply(g, &m, now_ns);
}

static void drive_lanes(struct dp_loadgen *g, uint64_t now_ns)
{
	for (uint32_t i = 0; i < g->lc.lanes; i++) {
		struct dp_lane *l = &g->lanes[i];
		uint64_t at;
		if (!bpx_engine_lane_busy(&l->eng)) {
			if (next_start(g, now_ns, &at))
				start_op(g, l, now_ns, at);
		} else if (now_ns >= bpx_engine_lane_wake_ns(&l->eng)) {
			struct bpx_engine_out out = { .count = 0 };
			bpx_engine_tick(&g->eng, &l->eng, now_ns, &out);
			apply(g, &out, now_ns);
		}
	}
}

uint32_t dp_loadgen_poll(struct dp_loadgen *g)
{
	return dp_loadgen_poll_at(g, dp_now_ns());
}

uint32_t dp_loadgen_poll_at(struct dp_loadgen *g, uint64_t now_ns)
{
	struct rte_mbuf *pkts[DP_BURST];
	uint32_t total = 0;
	for (uint8_t q = 0; q < g->rx_count; q++) {
		uint16_t n = rte_eth_rx_burst(g->rx[q].port, g->rx[q].queue,
					      pkts, DP_BURST);
		for (uint16_t i = 0; i < n; i++)
			handle_frame(g, pkts[i], now_ns);
		if (n > 0)
			rte_pktmbuf_free_bulk(pkts, n);
		total += n;
	}
	g->ctr.rx_frames += total;
	drive_lanes(g, now_ns);
	send_packs(g);
	dp_routes_flush(&g->routes, &g->ctr, NULL);
	g->resends = g->eng.stats.retries;
	g->redirects = g->eng.stats.redirects;
	g->busy_replies = g->eng.stats.busy;
	g->opens = g->eng.stats.opens;
	return total;
}

uint32_t dp_loadgen_outstanding(const struct dp_loadgen *g)
{
	uint32_t busy = 0;
	for (uint32_t i = 0; i < g->lc.lanes; i++)
		busy += bpx_engine_lane_busy(&g->lanes[i].eng);
	return busy;
}
