/* A replica instance on the dataplane: frames in, px_step, frames out.
 * Runs on one worker lcore; nothing else touches it. No allocation, no
 * locks, no blocking and no printing here: mbufs come from a pool, and
 * everything else was sized at init. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_malloc.h>

#include "dp.h"

static const uint8_t broadcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

int dp_replica_init(struct dp_replica *r, const struct bpx_config *cfg,
		    uint8_t id, const struct bpx_sm_ops *sm_ops, void *sm,
		    struct rte_mempool *pool, char *err, size_t err_len)
{
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->cfg = cfg;
	r->self = cfg->members[id].data;
	r->sm_ops = sm_ops;
	r->sm = sm;
	r->pool = pool;
	r->leader_hint = PX_REPLICA_NONE;
	struct px_config pc = cfg->px;
	pc.self_id = id;
	pc.sm_ops = sm_ops;
	pc.sm = sm;
	pc.seed = 0x6279706178ull + id; /* jitter only; any value is safe */
	const char *why = px_config_check_reason(&pc);
	if (why != NULL) {
		snprintf(err, err_len, "replica %u: %s", id, why);
		return -BPX_ECONFIG;
	}
	size_t bytes = px_replica_size(&pc);
	uint32_t out_cap = px_outbox_cap_min(&pc);
	r->px_mem = rte_zmalloc("bypax_px", bytes, 64);
	r->out_msgs = rte_zmalloc("bypax_outbox",
				  out_cap * sizeof(struct px_msg), 64);
	r->clients = rte_zmalloc("bypax_clients",
				 DP_CLIENT_ADDRS * sizeof(*r->clients), 64);
	if (r->px_mem == NULL || r->out_msgs == NULL || r->clients == NULL ||
	    px_init(r->px_mem, bytes, &pc, &r->px) != 0) {
		snprintf(err, err_len, "replica %u: cannot allocate %zu bytes "
			 "of consensus state (raise EAL -m)", id, bytes);
		dp_replica_free(r);
		return -BPX_ENOMEM;
	}
	r->out.msgs = r->out_msgs;
	r->out.cap = out_cap;
	dp_routes_init(&r->routes);
	return 0;
}

void dp_replica_free(struct dp_replica *r)
{
	rte_free(r->px_mem);
	rte_free(r->out_msgs);
	rte_free(r->clients);
	r->px_mem = NULL;
	r->out_msgs = NULL;
	r->clients = NULL;
}

int dp_replica_add_rx(struct dp_replica *r, uint16_t port, uint16_t queue)
{
	if (r->rx_count == DP_RX_MAX)
		return -BPX_ENOMEM;
	r->rx[r->rx_count].port = port;
	r->rx[r->rx_count].queue = queue;
	r->rx_count++;
	return 0;
}

void dp_replica_set_leader_hint(struct dp_replica *r, uint8_t leader)
{
	r->leader_hint = leader;
}

/* ---- Client addresses: replies go back where the request came from ---- */

static struct dp_client_addr *client_slot(struct dp_replica *r, uint64_t id)
{
	uint64_t h = id * 0x9e3779b97f4a7c15ull;
	return &r->clients[(h >> 40) & (DP_CLIENT_ADDRS - 1)];
}

static void remember_client(struct dp_replica *r, uint64_t id,
			    const struct bpx_endpoint *ep)
{
	/* A collision overwrites: that client's reply is lost, and its retry
	 * gets the cached reply. Bounded memory beats a perfect table. */
	struct dp_client_addr *c = client_slot(r, id);
	c->client_id = id;
	c->ep = *ep;
	c->used = true;
}

static const struct bpx_endpoint *client_addr(struct dp_replica *r,
					      uint64_t id)
{
	struct dp_client_addr *c = client_slot(r, id);
	return c->used && c->client_id == id ? &c->ep : NULL;
}

/* ---- Transmit ---- */

static void send_frame(struct dp_replica *r, const struct bpx_endpoint *dst,
		       const struct px_msg *m)
{
	struct rte_mbuf *mb = rte_pktmbuf_alloc(r->pool);
	if (unlikely(mb == NULL)) {
		r->ctr.mbuf_exhausted++;
		return;
	}
	size_t len = BPX_FRAME_HEADER_BYTES + bpx_wire_msg_size(m);
	uint8_t *p = (uint8_t *)rte_pktmbuf_append(mb, (uint16_t)len);
	int n = p ? bpx_wire_encode(p + BPX_FRAME_HEADER_BYTES,
				    len - BPX_FRAME_HEADER_BYTES,
				    r->cfg->cluster_id, m)
		  : -BPX_ETOOBIG;
	if (unlikely(n < 0)) {
		r->ctr.encode_failed++;
		rte_pktmbuf_free(mb);
		return;
	}
	bpx_frame_write_headers(p, &r->self, dst, (uint16_t)n, r->ip_id++);
	dp_txq_push(dp_routes_lookup(&r->routes, dst->mac), mb, &r->ctr);
}

static void transmit_outbox(struct dp_replica *r)
{
	for (uint32_t i = 0; i < r->out.count; i++) {
		const struct px_msg *m = &r->out.msgs[i];
		if (m->type == PX_MSG_REPLY) {
			const struct bpx_endpoint *c =
				client_addr(r, m->client_id);
			if (c == NULL)
				r->ctr.no_client_address++;
			else
				send_frame(r, c, m);
		} else if (m->type == PX_MSG_SNAPSHOT) {
			r->ctr.snapshot_unsupported++;
		} else if (m->to < r->cfg->member_count) {
			send_frame(r, &r->cfg->members[m->to].data, m);
		}
	}
	r->out.count = 0;
}

/* ---- Receive ---- */

static void answer_arp(struct dp_replica *r, const uint8_t *frame,
		       uint16_t len)
{
	uint8_t reply[BPX_ARP_FRAME_BYTES];
	int n = bpx_arp_answer(frame, len, &r->self, reply, sizeof(reply));
	if (n < 0)
		r->ctr.drops[BPX_WIRE_BAD_ARP]++;
	if (n <= 0)
		return;
	struct rte_mbuf *mb = rte_pktmbuf_alloc(r->pool);
	if (mb == NULL) {
		r->ctr.mbuf_exhausted++;
		return;
	}
	uint8_t *p = (uint8_t *)rte_pktmbuf_append(mb, (uint16_t)n);
	memcpy(p, reply, (size_t)n);
	r->ctr.arp_replies++;
	dp_txq_push(dp_routes_lookup(&r->routes, reply), mb, &r->ctr);
}

static bool addressed_to_us(const struct dp_replica *r,
			    const struct bpx_frame *f)
{
	return f->dst.ip == r->self.ip && f->dst.port == r->self.port &&
	       (memcmp(f->dst.mac, r->self.mac, 6) == 0 ||
		memcmp(f->dst.mac, broadcast_mac, 6) == 0);
}

/* Consensus messages count only from a configured member, from that
 * member's own address. */
static bool from_member(const struct dp_replica *r, const struct px_msg *m,
			const struct bpx_frame *f)
{
	if (m->from >= r->cfg->member_count || m->from == r->id)
		return false;
	const struct bpx_endpoint *ep = &r->cfg->members[m->from].data;
	return ep->ip == f->src.ip && ep->port == f->src.port;
}

static void handle_frame(struct dp_replica *r, const uint8_t *data,
			 uint16_t len, uint64_t now_ns)
{
	if (bpx_frame_ethertype(data, len) == BPX_ETHERTYPE_ARP) {
		answer_arp(r, data, len);
		return;
	}
	struct bpx_frame f;
	struct px_msg m;
	enum bpx_wire_drop d = bpx_frame_parse(data, len, &f);
	if (d == BPX_WIRE_OK && !addressed_to_us(r, &f))
		d = BPX_WIRE_NOT_FOR_US;
	if (d == BPX_WIRE_OK)
		d = bpx_wire_decode(f.payload, f.payload_len,
				    r->cfg->cluster_id, &m);
	if (d == BPX_WIRE_OK && m.type == PX_MSG_REQUEST) {
		m.from = PX_TO_CLIENT;
		remember_client(r, m.client_id, &f.src);
	} else if (d == BPX_WIRE_OK && !from_member(r, &m, &f)) {
		d = BPX_WIRE_NOT_MEMBER;
	}
	if (d != BPX_WIRE_OK) {
		r->ctr.drops[d]++;
		return;
	}
	if (px_step(r->px, now_ns, &m, &r->out) != 0)
		r->ctr.px_rejected++;
	transmit_outbox(r);
}

static void handle_mbuf(struct dp_replica *r, struct rte_mbuf *mb,
			uint64_t now_ns)
{
	if (unlikely(mb->nb_segs > 1) && rte_pktmbuf_linearize(mb) != 0) {
		r->ctr.multi_segment++;
		return;
	}
	handle_frame(r, rte_pktmbuf_mtod(mb, const uint8_t *),
		     rte_pktmbuf_data_len(mb), now_ns);
}

uint32_t dp_replica_poll(struct dp_replica *r)
{
	struct rte_mbuf *pkts[DP_BURST];
	uint32_t total = 0;
	uint64_t now_ns = dp_now_ns();
	for (uint8_t q = 0; q < r->rx_count; q++) {
		uint16_t n = rte_eth_rx_burst(r->rx[q].port, r->rx[q].queue,
					      pkts, DP_BURST);
		for (uint16_t i = 0; i < n; i++) {
			if (i + 1 < n)
				rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
			handle_mbuf(r, pkts[i], now_ns);
		}
		if (n > 0)
			rte_pktmbuf_free_bulk(pkts, n);
		total += n;
	}
	r->ctr.rx_frames += total;
	if (total > 0) {
		/* Whatever arrived in this burst goes into one batch. */
		px_flush(r->px, now_ns, &r->out);
		transmit_outbox(r);
	}
	if (now_ns >= r->next_tick_ns) {
		px_set_leader_hint(r->px, now_ns, r->leader_hint, &r->out);
		transmit_outbox(r);
		px_tick(r->px, now_ns, &r->out);
		transmit_outbox(r);
		r->next_tick_ns = now_ns + DP_TICK_NS;
	}
	dp_routes_flush(&r->routes, &r->ctr);
	return total;
}
