/* A replica instance on the dataplane: frames in, px_step, frames out.
 * Runs on one worker lcore; nothing else touches it. No allocation, no
 * locks, no blocking and no printing here: mbufs come from a pool, and
 * everything else was sized at init. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_malloc.h>

#include "ctl_link.h"
#include "dp.h"
#include "port_pause.h"

#define SNAPSHOT_CHUNKS_PER_POLL 8u
#define SNAPSHOT_PACE_NS 100000ull          /* 8 chunks per 100 us: ~110 MB/s */
#define SNAPSHOT_RESUME_NS 2000000ull       /* a resume request per 2 ms */
#define SNAPSHOT_REUSE_NS 1000000000ull     /* a serialization serves 1 s */
#define SNAPSHOT_RECV_TIMEOUT_NS 2000000000ull /* without progress */
#define STATUS_INTERVAL_NS 2000000ull

/* A port the main thread is restarting is not ours to send on: a full
 * TX queue would call rte_eth_tx_burst on it mid-restart. */
void dp_replica_push_now(struct dp_replica *r, struct dp_txq *q,
			 struct rte_mbuf *mb)
{
	if (r->port_paused != NULL && r->port_paused[q->route.port] != 0) {
		r->ctr.tx_full++;
		rte_pktmbuf_free(mb);
		return;
	}
	dp_txq_push(q, mb, &r->ctr);
}

/* Durable mode: a frame after a PERSIST record waits for its sync. */
static void push_frame(struct dp_replica *r, struct dp_txq *q,
		       struct rte_mbuf *mb)
{
	if (r->dur.wal != NULL && dp_durable_hold(r, q, mb))
		return;
	dp_replica_push_now(r, q, mb);
}

static const uint8_t broadcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

int dp_replica_init(struct dp_replica *r, const struct bpx_config *cfg,
		    uint8_t id, bool recovering, const struct bpx_sm_ops *sm_ops,
		    void *sm, struct rte_mempool *pool, char *err,
		    size_t err_len)
{
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->cfg = cfg;
	r->self = cfg->members[id].data;
	DP_ASSERT(cfg->member_count <= PX_REPLICAS_MAX);
	for (uint8_t k = 0; k < cfg->member_count; k++)
		bpx_frame_template_init(&r->to_member[k], &r->self,
					&cfg->members[k].data);
	r->sm_ops = sm_ops;
	r->sm = sm;
	r->pool = pool;
	r->leader_hint = PX_REPLICA_NONE;
	r->snap.send_to = PX_REPLICA_NONE;
	struct px_config pc = cfg->px;
	pc.self_id = id;
	pc.sm_ops = sm_ops;
	pc.sm = sm;
	/* Backoff jitter and recovery nonces: a nonce must not repeat between
	 * two lives of this replica (recovery.c), so every start draws one. */
	pc.seed = dp_random_seed() ^ id;
	pc.recovering = recovering;
	pc.durable = cfg->durability == BPX_DURABILITY_WAL;
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
	rte_free(r->snap.send_buf);
	rte_free(r->snap.recv_buf);
	r->snap.send_buf = NULL;
	r->snap.recv_buf = NULL;
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

void dp_replica_attach_control(struct dp_replica *r, struct rte_ring *in,
			       struct rte_ring *out)
{
	r->ctl_in = in;
	r->ctl_out = out;
}

int dp_replica_enable_snapshots(struct dp_replica *r, size_t cap)
{
	r->snap.send_buf = rte_malloc("bypax_snap_send", cap, 64);
	r->snap.recv_buf = rte_malloc("bypax_snap_recv", cap, 64);
	if (r->snap.send_buf == NULL || r->snap.recv_buf == NULL)
		return -BPX_ENOMEM;
	/* Touched now, not on the first catch-up: first-touch page faults
	 * over 2 x 64 MiB took seconds on a loaded machine, with the worker
	 * polling nothing meanwhile. */
	memset(r->snap.send_buf, 0, cap);
	memset(r->snap.recv_buf, 0, cap);
	r->snap.cap = cap;
	return 0;
}

/* ---- Client addresses: replies go back where the request came from ---- */

/* The set of DP_CLIENT_WAYS entries a client id may live in. */
static struct dp_client_addr *client_set(struct dp_replica *r, uint64_t id)
{
	uint64_t h = id * 0x9e3779b97f4a7c15ull;
	uint32_t sets = DP_CLIENT_ADDRS / DP_CLIENT_WAYS;
	return &r->clients[((h >> 40) & (sets - 1)) * DP_CLIENT_WAYS];
}

static struct dp_client_addr *client_find(struct dp_client_addr *set,
					  uint64_t id)
{
	for (uint32_t w = 0; w < DP_CLIENT_WAYS; w++)
		if (set[w].used && set[w].client_id == id)
			return &set[w];
	return NULL;
}

/* A free entry of the set, else its least recently used (by the clock's
 * difference, so that its wrap does not matter). */
static struct dp_client_addr *client_victim(struct dp_client_addr *set)
{
	struct dp_client_addr *v = &set[0];
	for (uint32_t w = 0; w < DP_CLIENT_WAYS; w++) {
		if (!set[w].used)
			return &set[w];
		if ((int32_t)(set[w].last_use - v->last_use) < 0)
			v = &set[w];
	}
	return v;
}

static void remember_client(struct dp_replica *r, uint64_t id,
			    const struct bpx_endpoint *ep, bool packs)
{
	/* A full set replaces its least recently used client: that client's
	 * reply, if one is due, is lost, and its retry gets the cached
	 * reply. Bounded memory beats a perfect table. */
	struct dp_client_addr *set = client_set(r, id);
	struct dp_client_addr *c = client_find(set, id);
	if (c == NULL)
		c = client_victim(set);
	c->client_id = id;
	c->ep = *ep;
	c->last_use = ++r->client_clock;
	c->used = true;
	c->packs = packs;
}

static const struct dp_client_addr *client_addr(struct dp_replica *r,
						uint64_t id)
{
	return client_find(client_set(r, id), id);
}

/* ---- Transmit ---- */

/* Bytes of tag m carries: with a cluster key, every message to a member
 * (docs/wire.md, "Authentication"); never a REPLY, clients hold no key. */
static size_t tag_bytes(const struct dp_replica *r, const struct px_msg *m)
{
	return r->cfg->key.enabled && bpx_auth_type_signed(m->type)
		       ? BPX_AUTH_TAG_BYTES
		       : 0;
}

/* The headers of a frame to dst. To a member (most frames): from its
 * template, with the IPv4 checksum left to the port where every port
 * computes it. To a client: written whole, checksum in software. */
static void write_headers(struct dp_replica *r, struct rte_mbuf *mb,
			  uint8_t *p, const struct bpx_endpoint *dst,
			  uint16_t payload_len)
{
	for (uint8_t k = 0; k < r->cfg->member_count; k++) {
		if (dst != &r->cfg->members[k].data)
			continue;
		bpx_frame_write_template(p, &r->to_member[k], payload_len,
					 r->ip_id++, !r->tx_ip_cksum);
		if (r->tx_ip_cksum) {
			mb->l2_len = 14;
			mb->l3_len = 20;
			mb->ol_flags |= RTE_MBUF_F_TX_IPV4 |
					RTE_MBUF_F_TX_IP_CKSUM;
		}
		return;
	}
	bpx_frame_write_headers(p, &r->self, dst, payload_len, r->ip_id++);
}

static void send_frame(struct dp_replica *r, const struct bpx_endpoint *dst,
		       const struct px_msg *m)
{
	struct rte_mbuf *mb = rte_pktmbuf_alloc(r->pool);
	if (unlikely(mb == NULL)) {
		r->ctr.mbuf_exhausted++;
		return;
	}
	size_t body = bpx_wire_msg_size(m);
	size_t tag = tag_bytes(r, m);
	size_t len = BPX_FRAME_HEADER_BYTES + body + tag;
	uint8_t *p = (uint8_t *)rte_pktmbuf_append(mb, (uint16_t)len);
	int n = p ? bpx_wire_encode(p + BPX_FRAME_HEADER_BYTES, body,
				    r->cfg->cluster_id, m)
		  : -BPX_ETOOBIG;
	if (unlikely(n < 0)) {
		r->ctr.encode_failed++;
		rte_pktmbuf_free(mb);
		return;
	}
	DP_ASSERT((size_t)n == body);
	/* The tag goes in the mbuf's tail, right after the message. */
	if (tag > 0)
		bpx_auth_sign(&r->cfg->key, p + BPX_FRAME_HEADER_BYTES,
			      (size_t)n, p + BPX_FRAME_HEADER_BYTES + n);
	write_headers(r, mb, p, dst, (uint16_t)(n + (int)tag));
	push_frame(r, dp_routes_lookup(&r->routes, dst->mac), mb);
}

/* ---- Replies packed per client address (dp.h, struct dp_reply_pack) ---- */

static bool same_endpoint(const struct bpx_endpoint *a,
			  const struct bpx_endpoint *b)
{
	return a->ip == b->ip && a->port == b->port &&
	       memcmp(a->mac, b->mac, 6) == 0;
}

static void send_reply_pack(struct dp_replica *r, struct dp_reply_pack *pk)
{
	DP_ASSERT(pk->mb != NULL && pk->w.count > 0);
	size_t len = bpx_wire_multi_finish(&pk->w);
	DP_ASSERT(len <= BPX_WIRE_MULTI_PAYLOAD_MAX);
	/* The mbuf was appended to the largest frame: give back the rest. */
	size_t unused = BPX_WIRE_MULTI_PAYLOAD_MAX - len;
	RTE_VERIFY(rte_pktmbuf_trim(pk->mb, (uint16_t)unused) == 0);
	write_headers(r, pk->mb, pk->frame, &pk->dst, (uint16_t)len);
	r->ctr.packed_frames_tx++;
	r->ctr.packed_replies_tx += pk->w.count;
	push_frame(r, dp_routes_lookup(&r->routes, pk->dst.mac), pk->mb);
	pk->mb = NULL;
}

/* The end of a pass (or a full table): every open pack goes. */
static void send_reply_packs(struct dp_replica *r)
{
	for (uint8_t i = 0; i < r->reply_pack_count; i++)
		send_reply_pack(r, &r->reply_packs[i]);
	r->reply_pack_count = 0;
}

static bool open_reply_pack(struct dp_replica *r, struct dp_reply_pack *pk,
			    const struct bpx_endpoint *dst, uint8_t hint)
{
	pk->mb = rte_pktmbuf_alloc(r->pool);
	if (unlikely(pk->mb == NULL)) {
		r->ctr.mbuf_exhausted++;
		return false;
	}
	pk->frame = (uint8_t *)rte_pktmbuf_append(
		pk->mb, BPX_FRAME_HEADER_BYTES + BPX_WIRE_MULTI_PAYLOAD_MAX);
	if (unlikely(pk->frame == NULL ||
		     bpx_wire_multi_begin(&pk->w,
					  pk->frame + BPX_FRAME_HEADER_BYTES,
					  BPX_WIRE_MULTI_PAYLOAD_MAX,
					  r->cfg->cluster_id,
					  BPX_WIRE_MULTI_REPLY, r->id,
					  PX_TO_CLIENT, hint) != 0)) {
		r->ctr.encode_failed++;
		rte_pktmbuf_free(pk->mb);
		pk->mb = NULL;
		return false;
	}
	pk->dst = *dst;
	pk->leader_hint = hint;
	return true;
}

/* The open pack for dst that m fits in, opened if need be; NULL when no
 * mbuf could be had (counted). One whose header hint differs, or that is
 * full, is sent first. */
static struct dp_reply_pack *reply_pack_for(struct dp_replica *r,
					    const struct bpx_endpoint *dst,
					    const struct px_msg *m)
{
	for (uint8_t i = 0; i < r->reply_pack_count; i++) {
		struct dp_reply_pack *pk = &r->reply_packs[i];
		if (!same_endpoint(&pk->dst, dst))
			continue;
		if (pk->leader_hint == m->leader_hint &&
		    bpx_wire_multi_fits(&pk->w, m->value_len))
			return pk;
		send_reply_pack(r, pk);
		if (open_reply_pack(r, pk, dst, m->leader_hint))
			return pk;
		/* No mbuf: the slot closes, or the next reply would be written
		 * into the frame just sent and the pass's end would send a
		 * pack that is not there. */
		*pk = r->reply_packs[--r->reply_pack_count];
		return NULL;
	}
	if (r->reply_pack_count == DP_REPLY_PACKS)
		send_reply_packs(r);
	struct dp_reply_pack *pk = &r->reply_packs[r->reply_pack_count];
	if (!open_reply_pack(r, pk, dst, m->leader_hint))
		return NULL;
	r->reply_pack_count++;
	return pk;
}

static void pack_reply(struct dp_replica *r, const struct bpx_endpoint *dst,
		       const struct px_msg *m)
{
	struct dp_reply_pack *pk = reply_pack_for(r, dst, m);
	if (pk == NULL)
		return; /* the client's retry gets the cached reply */
	if (unlikely(bpx_wire_multi_add(&pk->w, m) != 0))
		r->ctr.encode_failed++;
	/* A pack left empty by that (never, for the core's replies) would
	 * be sent with no entry: close the slot instead. */
	if (unlikely(pk->w.count == 0)) {
		rte_pktmbuf_free(pk->mb);
		pk->mb = NULL;
		*pk = r->reply_packs[--r->reply_pack_count];
	}
}

/* ---- One value to several followers, without copying it each time ----
 * The value goes into one mbuf; each follower gets its own small header
 * mbuf (Ethernet, IP, UDP, bypax header: the `to` field differs) chained
 * to an indirect clone of it. The NIC gathers the segments; the refcount
 * frees the value after the last send. Ports without multi-segment TX use
 * the copy path (send_frame). */

#define DP_SHARE_MIN_BYTES 256u

static struct rte_mbuf *value_mbuf(struct dp_replica *r, const struct px_msg *m)
{
	struct rte_mbuf *v = rte_pktmbuf_alloc(r->pool);
	if (v == NULL)
		return NULL;
	uint8_t *p = (uint8_t *)rte_pktmbuf_append(v, (uint16_t)m->value_len);
	if (p == NULL) {
		rte_pktmbuf_free(v);
		return NULL;
	}
	memcpy(p, m->value, m->value_len);
	return v;
}

/* With a key, the tag of one follower's frame (its header differs: `to`)
 * goes in a third segment of its own, after the shared value. */
static bool append_tag(struct dp_replica *r, struct rte_mbuf *head,
		       const uint8_t *msg_head, size_t msg_head_len,
		       const struct px_msg *m)
{
	struct rte_mbuf *t = rte_pktmbuf_alloc(r->pool);
	uint8_t *p = t ? (uint8_t *)rte_pktmbuf_append(t, BPX_AUTH_TAG_BYTES)
		       : NULL;
	if (p == NULL || rte_pktmbuf_chain(head, t) != 0) {
		rte_pktmbuf_free(t);
		return false;
	}
	DP_ASSERT(msg_head_len + m->value_len == bpx_wire_msg_size(m));
	bpx_auth_sign2(&r->cfg->key, msg_head, msg_head_len, m->value,
		       m->value_len, p);
	return true;
}

/* Returns false (nothing sent, nothing leaked) when it could not: the
 * caller falls back to send_frame. */
static bool send_shared(struct dp_replica *r, const struct px_msg *m,
			struct rte_mbuf *value)
{
	const struct bpx_endpoint *dst = &r->cfg->members[m->to].data;
	struct rte_mbuf *head = rte_pktmbuf_alloc(r->pool);
	struct rte_mbuf *tail = head ? rte_pktmbuf_clone(value, r->pool) : NULL;
	size_t hlen = BPX_FRAME_HEADER_BYTES + bpx_wire_msg_size(m) - m->value_len;
	uint8_t *p = tail ? (uint8_t *)rte_pktmbuf_append(head, (uint16_t)hlen)
			  : NULL;
	int n = p ? bpx_wire_encode_header(p + BPX_FRAME_HEADER_BYTES,
					   hlen - BPX_FRAME_HEADER_BYTES,
					   r->cfg->cluster_id, m)
		  : -1;
	if (n < 0 || rte_pktmbuf_chain(head, tail) != 0) {
		rte_pktmbuf_free(head);
		rte_pktmbuf_free(tail);
		return false;
	}
	size_t tag = tag_bytes(r, m);
	if (tag > 0 && !append_tag(r, head, p + BPX_FRAME_HEADER_BYTES,
				   (size_t)n, m)) {
		rte_pktmbuf_free(head); /* and the clone chained to it */
		return false;
	}
	write_headers(r, head, p, dst,
		      (uint16_t)(n + (int)m->value_len + (int)tag));
	push_frame(r, dp_routes_lookup(&r->routes, dst->mac), head);
	r->ctr.shared_sends++;
	return true;
}

/* Sends msgs[i..] that carry the same value to different members; returns
 * how many it consumed (at least 1). */
static uint32_t send_to_members(struct dp_replica *r, uint32_t i)
{
	const struct px_msg *m = &r->out.msgs[i];
	uint32_t end = i + 1;
	while (end < r->out.count && r->out.msgs[end].type == m->type &&
	       r->out.msgs[end].value == m->value &&
	       r->out.msgs[end].value_len == m->value_len &&
	       r->out.msgs[end].to < r->cfg->member_count)
		end++;
	struct rte_mbuf *value = NULL;
	if (end - i > 1 && r->share_payload && m->value_len >= DP_SHARE_MIN_BYTES)
		value = value_mbuf(r, m);
	for (uint32_t k = i; k < end; k++) {
		const struct px_msg *mk = &r->out.msgs[k];
		if (value == NULL || !send_shared(r, mk, value))
			send_frame(r, &r->cfg->members[mk->to].data, mk);
	}
	rte_pktmbuf_free(value); /* the clones keep it until sent */
	return end - i;
}

/* now_ns: the poll pass's time. A pass is microseconds long and an
 * isolation milliseconds, so no fresh clock read per frame. */
static bool isolated(const struct dp_replica *r, uint64_t now_ns)
{
	return r->isolate_until_ns != 0 && now_ns < r->isolate_until_ns;
}

/* ---- Snapshot streaming ---- */

/* Serializing is the costly part (the state machine writes and sorts its
 * whole state, on this worker, while nothing else is polled): a replica
 * that asks again and again, as a recovering one does every few
 * retransmits, is served from the last serialization while that is
 * recent and still joins this replica's log (so the asker can go on from
 * it). One stream at a time; a request meanwhile is dropped and asked
 * again. */
static bool snapshot_reusable(const struct dp_replica *r, uint64_t now_ns)
{
	const struct dp_snap *sn = &r->snap;
	/* Added, not subtracted: send_saved_ns is a fresh read, so it may
	 * be later than the pass's now_ns that asks. */
	return sn->send_valid && now_ns < sn->send_saved_ns + SNAPSHOT_REUSE_NS &&
	       sn->send_index + 1 >= px_log_start(r->px);
}

static void start_snapshot_send(struct dp_replica *r, uint8_t to,
				uint64_t now_ns)
{
	struct dp_snap *sn = &r->snap;
	if (sn->cap == 0) {
		r->ctr.snapshot_unsupported++;
		return;
	}
	if (sn->send_to != PX_REPLICA_NONE || to >= r->cfg->member_count)
		return;
	if (snapshot_reusable(r, now_ns)) {
		r->ctr.snapshots_reused++;
	} else {
		int64_t n = px_snapshot_save(r->px, sn->send_buf, sn->cap);
		if (n <= 0) {
			sn->send_valid = false;
			r->ctr.snapshot_unsupported++;
			return;
		}
		sn->send_len = (size_t)n;
		sn->send_index = px_applied_index(r->px);
		/* A read of its own: serializing a large state takes long
		 * enough that the pass's time would age the copy early. */
		sn->send_saved_ns = dp_now_ns();
		sn->send_valid = true;
		r->clock_behind = true;
	}
	sn->send_off = 0;
	sn->send_to = to;
	sn->send_last_to = to;
	sn->send_next_ns = 0;
}

/* Paced: SNAPSHOT_CHUNKS_PER_POLL chunks every SNAPSHOT_PACE_NS at most, so
 * a receiver that is off its core for a while finds its ring still
 * holding what came (a ring overflow costs a resume request, not the
 * whole stream, but each costs a round trip). */
static void poll_snapshot_send(struct dp_replica *r, uint64_t now_ns)
{
	struct dp_snap *sn = &r->snap;
	if (now_ns < sn->send_next_ns)
		return;
	sn->send_next_ns = now_ns + SNAPSHOT_PACE_NS;
	for (unsigned i = 0; i < SNAPSHOT_CHUNKS_PER_POLL &&
			     sn->send_to < r->cfg->member_count; i++) {
		DP_ASSERT(sn->send_valid && sn->send_off < sn->send_len);
		size_t len = sn->send_len - sn->send_off;
		if (len > PX_VALUE_BYTES_MAX)
			len = PX_VALUE_BYTES_MAX;
		struct px_msg m = { .type = BPX_WIRE_SNAPSHOT_CHUNK,
				    .from = r->id, .to = sn->send_to,
				    .slot = sn->send_index,
				    .slot_end = sn->send_len,
				    .seq = sn->send_off,
				    .value = sn->send_buf + sn->send_off,
				    .value_len = (uint32_t)len };
		if (!isolated(r, now_ns))
			send_frame(r, &r->cfg->members[sn->send_to].data, &m);
		r->ctr.snapshot_chunks_sent++;
		sn->send_off += len;
		if (sn->send_off == sn->send_len) {
			sn->send_to = PX_REPLICA_NONE;
			r->ctr.snapshots_sent++;
		}
	}
}

/* An empty chunk from the receiver: "I have [0, seq) of that stream, go
 * on from seq". Served while the buffer still holds that snapshot. */
static void on_snapshot_resume(struct dp_replica *r, const struct px_msg *m)
{
	struct dp_snap *sn = &r->snap;
	if (!sn->send_valid || m->from != sn->send_last_to ||
	    m->slot != sn->send_index || m->slot_end != sn->send_len ||
	    m->seq >= sn->send_len ||
	    (sn->send_to != PX_REPLICA_NONE && sn->send_to != m->from)) {
		r->ctr.snapshot_chunks_dropped++;
		return;
	}
	sn->send_to = m->from;
	sn->send_off = m->seq;
}

static void ask_snapshot_resume(struct dp_replica *r, uint64_t now_ns)
{
	struct dp_snap *sn = &r->snap;
	if (now_ns - sn->recv_resume_ns < SNAPSHOT_RESUME_NS)
		return;
	sn->recv_resume_ns = now_ns;
	struct px_msg m = { .type = BPX_WIRE_SNAPSHOT_CHUNK, .from = r->id,
			    .to = sn->recv_from, .slot = sn->recv_index,
			    .slot_end = sn->recv_len, .seq = sn->recv_off };
	r->ctr.snapshot_resumes++;
	send_frame(r, &r->cfg->members[sn->recv_from].data, &m);
}

static void transmit_outbox(struct dp_replica *r, uint64_t now_ns);

/* A stream starts with its chunk 0: it replaces ours if ours is idle, made
 * no progress for SNAPSHOT_RECV_TIMEOUT_NS, or comes from the same sender
 * (which gave ours up: it serialized anew). */
static bool snapshot_stream_starts(const struct dp_snap *sn,
				   const struct px_msg *m, uint64_t now_ns)
{
	if (m->seq != 0 || m->slot_end == 0 || m->slot_end > sn->cap)
		return false;
	if (sn->recv_len == 0 ||
	    now_ns - sn->recv_progress_ns > SNAPSHOT_RECV_TIMEOUT_NS)
		return true;
	return m->from == sn->recv_from &&
	       (m->slot != sn->recv_index || m->slot_end != sn->recv_len);
}

/* Chunks are taken in order from one sender. A gap (a ring overflowed
 * somewhere) asks the sender to go on from what we have; a duplicate or a
 * chunk of another stream is dropped. */
static void on_snapshot_chunk(struct dp_replica *r, const struct px_msg *m,
			      uint64_t now_ns)
{
	struct dp_snap *sn = &r->snap;
	if (m->value_len == 0) {
		on_snapshot_resume(r, m);
		return;
	}
	if (snapshot_stream_starts(sn, m, now_ns)) {
		sn->recv_from = m->from;
		sn->recv_index = m->slot;
		sn->recv_len = m->slot_end;
		sn->recv_off = 0;
		sn->recv_progress_ns = now_ns;
		sn->recv_resume_ns = 0;
	}
	bool ours = sn->recv_len != 0 && m->from == sn->recv_from &&
		    m->slot == sn->recv_index && m->slot_end == sn->recv_len;
	if (!ours || m->seq != sn->recv_off ||
	    m->value_len > sn->recv_len - sn->recv_off) {
		r->ctr.snapshot_chunks_dropped++;
		if (ours && m->seq > sn->recv_off)
			ask_snapshot_resume(r, now_ns);
		return;
	}
	memcpy(sn->recv_buf + sn->recv_off, m->value, m->value_len);
	sn->recv_off += m->value_len;
	sn->recv_progress_ns = now_ns;
	if (sn->recv_off < sn->recv_len)
		return;
	if (px_snapshot_install(r->px, now_ns, sn->recv_buf, sn->recv_len,
				&r->out) == 0) {
		r->ctr.snapshots_installed++;
		dp_durable_installed(r); /* on disk before what follows */
	}
	r->clock_behind = true; /* the install took a while */
	sn->recv_len = 0;
	transmit_outbox(r, now_ns);
}

static void transmit_outbox(struct dp_replica *r, uint64_t now_ns)
{
	for (uint32_t i = 0; i < r->out.count; i++) {
		const struct px_msg *m = &r->out.msgs[i];
		if (m->type == PX_MSG_PERSIST) {
			/* Every frame after it waits for the sync. */
			dp_durable_persist(r, m);
			continue;
		}
		if (m->to < r->cfg->member_count && m->value_len > 0 &&
		    !isolated(r, now_ns)) {
			i += send_to_members(r, i) - 1;
			continue;
		}
		if (m->type == PX_MSG_REPLY) {
			const struct dp_client_addr *c =
				client_addr(r, m->client_id);
			if (m->status <= PX_REPLY_STATUS_MAX)
				r->ctr.replies[m->status]++;
			if (c == NULL)
				r->ctr.no_client_address++;
			else if (c->packs)
				pack_reply(r, &c->ep, m);
			else
				send_frame(r, &c->ep, m);
		} else if (m->type == PX_MSG_SNAPSHOT) {
			start_snapshot_send(r, m->to, now_ns);
		} else if (m->to < r->cfg->member_count) {
			if (isolated(r, now_ns))
				r->ctr.isolated_drops++;
			else
				send_frame(r, &r->cfg->members[m->to].data, m);
		}
	}
	r->out.count = 0;
}

int dp_replica_restore(struct dp_replica *r, const uint8_t *snap, size_t len)
{
	DP_ASSERT(px_applied_index(r->px) == 0 &&
		   px_role(r->px) != PX_ROLE_RECOVERING && r->out.count == 0);
	uint64_t now_ns = dp_now_ns();
	int rc = px_snapshot_install(r->px, now_ns, snap, len, &r->out);
	transmit_outbox(r, now_ns); /* queued; the worker's first poll sends it */
	send_reply_packs(r);
	return rc;
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
	push_frame(r, dp_routes_lookup(&r->routes, reply), mb);
}

/* One ARP request to each peer, through its route: the peer's answer
 * keeps frames arriving on a working link (bypaxd.c, silent links). */
static void probe_links(struct dp_replica *r)
{
	for (uint8_t m = 0; m < r->cfg->member_count; m++) {
		if (m == r->id)
			continue;
		struct rte_mbuf *mb = rte_pktmbuf_alloc(r->pool);
		if (mb == NULL) {
			r->ctr.mbuf_exhausted++;
			return;
		}
		uint8_t *p = (uint8_t *)rte_pktmbuf_append(mb,
							   BPX_ARP_FRAME_BYTES);
		RTE_VERIFY(p != NULL);
		int n = bpx_arp_request(&r->self, &r->cfg->members[m].data, p,
					BPX_ARP_FRAME_BYTES);
		RTE_VERIFY(n == BPX_ARP_FRAME_BYTES);
		r->ctr.link_probes++;
		push_frame(r, dp_routes_lookup(&r->routes, p), mb);
	}
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

/* The drop counter of reason d, and what bypaxd logs of the two drops
 * an operator acts on (another cluster's traffic, a wrong key). */
static void count_drop(struct dp_replica *r, enum bpx_wire_drop d,
		       const struct bpx_frame *f)
{
	if (d == BPX_WIRE_BAD_MAC)
		r->ctr.bad_mac_src = (uint64_t)f->src.ip << 16 | f->src.port;
	if (d == BPX_WIRE_WRONG_CLUSTER) {
		r->ctr.wrong_cluster_src = (uint64_t)f->src.ip << 16 | f->src.port;
		r->ctr.wrong_cluster_id =
			bpx_wire_cluster_of(f->payload, f->payload_len);
	}
	r->ctr.drops[d]++;
}

/* A MULTI_REQUEST: checked whole first (one bad entry drops the frame,
 * none of it applied), then each entry is stepped exactly as a single
 * REQUEST would be, so the core sees what it always saw. Its clients'
 * replies are packed (pack_reply). */
static void handle_packed_requests(struct dp_replica *r,
				   const struct bpx_frame *f, size_t body_len,
				   uint64_t now_ns)
{
	struct bpx_wire_unpacker u;
	enum bpx_wire_drop d = bpx_wire_multi_decode(f->payload, body_len,
						     r->cfg->cluster_id, &u);
	if (d == BPX_WIRE_OK && u.to != r->id)
		d = BPX_WIRE_NOT_FOR_US;
	if (d != BPX_WIRE_OK) {
		count_drop(r, d, f);
		return;
	}
	r->ctr.packed_frames_rx++;
	struct px_msg m;
	while (bpx_wire_multi_next(&u, &m)) {
		m.from = PX_TO_CLIENT;
		remember_client(r, m.client_id, &f->src, true);
		r->ctr.packed_requests_rx++;
		if (px_step(r->px, now_ns, &m, &r->out) != 0)
			r->ctr.px_rejected++;
		transmit_outbox(r, now_ns);
	}
}

static void handle_frame(struct dp_replica *r, const uint8_t *data,
			 uint16_t len, bool ip_cksum_good, uint64_t now_ns)
{
	if (bpx_frame_ethertype(data, len) == BPX_ETHERTYPE_ARP) {
		answer_arp(r, data, len);
		return;
	}
	struct bpx_frame f;
	struct px_msg m;
	enum bpx_wire_drop d = bpx_frame_parse_checked(data, len, ip_cksum_good,
						       &f);
	if (d == BPX_WIRE_OK && !addressed_to_us(r, &f))
		d = BPX_WIRE_NOT_FOR_US;
	size_t body_len = 0; /* set by bpx_auth_check_payload */
	if (d == BPX_WIRE_OK)
		d = bpx_auth_check_payload(&r->cfg->key, r->cfg->cluster_id,
					   f.payload, f.payload_len,
					   &body_len);
	if (d == BPX_WIRE_OK && bpx_wire_type_of(f.payload, body_len) ==
					BPX_WIRE_MULTI_REQUEST) {
		handle_packed_requests(r, &f, body_len, now_ns);
		return;
	}
	if (d == BPX_WIRE_OK)
		d = bpx_wire_decode(f.payload, body_len, r->cfg->cluster_id,
				    &m);
	/* The header's `to` names the receiver (docs/wire.md): a message for
	 * another member that reached this one (a wrong route, a client with
	 * another member order) is dropped, not acted on for that member. */
	if (d == BPX_WIRE_OK && m.to != r->id)
		d = BPX_WIRE_NOT_FOR_US;
	if (d == BPX_WIRE_OK && m.type == PX_MSG_REQUEST) {
		m.from = PX_TO_CLIENT;
		remember_client(r, m.client_id, &f.src, false);
	} else if (d == BPX_WIRE_OK && !from_member(r, &m, &f)) {
		d = BPX_WIRE_NOT_MEMBER;
	}
	if (d != BPX_WIRE_OK) {
		count_drop(r, d, &f);
		return;
	}
	if (m.type != PX_MSG_REQUEST && isolated(r, now_ns)) {
		r->ctr.isolated_drops++;
		return;
	}
	if (m.type == BPX_WIRE_SNAPSHOT_CHUNK) {
		if (r->snap.cap > 0)
			on_snapshot_chunk(r, &m, now_ns);
		return;
	}
	if (px_step(r->px, now_ns, &m, &r->out) != 0)
		r->ctr.px_rejected++;
	transmit_outbox(r, now_ns);
}

static void handle_mbuf(struct dp_replica *r, struct rte_mbuf *mb,
			uint64_t now_ns)
{
	if (unlikely(mb->nb_segs > 1) && rte_pktmbuf_linearize(mb) != 0) {
		r->ctr.multi_segment++;
		return;
	}
	/* A port that checked the IPv4 checksum says so; a bad or unknown
	 * one is checked (and dropped, counted) in software. */
	bool ip_good = (mb->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) ==
		       RTE_MBUF_F_RX_IP_CKSUM_GOOD;
	handle_frame(r, rte_pktmbuf_mtod(mb, const uint8_t *),
		     rte_pktmbuf_data_len(mb), ip_good, now_ns);
}

/* ---- The control thread's commands and our status, through rings ---- */

/* The send buffer goes to the control thread, which streams it to
 * bypaxctl, and stays locked (no catch-up stream may reuse it) until the
 * control thread gives it back. A recovering replica has nothing worth
 * saving (it holds no chosen prefix yet): an operator who restores such a
 * file would lose everything, so it says so instead. */
static int32_t save_for_control(struct dp_replica *r)
{
	struct dp_snap *sn = &r->snap;
	if (sn->cap == 0)
		return -BPX_EINVAL;
	if (px_role(r->px) == PX_ROLE_RECOVERING)
		return -BPX_ERECOVERING;
	if (sn->send_to != PX_REPLICA_NONE)
		return -BPX_EBUSY; /* a peer catching up, or still locked */
	/* Durable: the pass's records go to disk first (an early group
	 * commit). The control thread streams this file out at once, past
	 * the frames that wait for the sync, and it must hold no slot chosen
	 * with a vote that is not on disk yet (review D). */
	dp_durable_commit(r);
	int64_t n = px_snapshot_save(r->px, sn->send_buf, sn->cap);
	sn->send_valid = false; /* no catch-up stream resumes from it */
	if (n < 0)
		return (int32_t)n;
	DP_ASSERT(n > 0 && (size_t)n <= sn->cap);
	sn->send_to = DP_SNAP_LOCKED;
	sn->saved_len = (uint64_t)n;
	sn->saved_index = px_applied_index(r->px);
	return 0;
}

/* Every command is answered (a count and a result in the status), or the
 * control thread would wait for an answer that never comes. */
static void save_snapshot_for_control(struct dp_replica *r)
{
	struct dp_snap *sn = &r->snap;
	sn->saved_len = 0;
	sn->saved_index = 0;
	sn->saved_rc = save_for_control(r);
	sn->saved_seq++;
	r->next_status_ns = 0; /* tell the control thread at once */
}

static void run_command(struct dp_replica *r, const struct ctl_cmd *c,
			uint64_t now_ns)
{
	switch (c->type) {
	case CTL_CMD_LEADER_HINT:
		r->leader_hint = (uint8_t)c->arg;
		break;
	case CTL_CMD_ISOLATE:
		r->isolate_until_ns = now_ns + c->value * 1000000ull;
		break;
	case CTL_CMD_RECONFIG:
		r->reconfig_rc = px_propose_config(r->px, now_ns,
						   (uint8_t)c->arg, &r->out);
		transmit_outbox(r, now_ns);
		r->reconfig_seq++;
		r->next_status_ns = 0; /* answer at once */
		break;
	case CTL_CMD_SNAPSHOT:
		if (c->arg == 1) { /* the control thread is done with it */
			if (r->snap.send_to == DP_SNAP_LOCKED)
				r->snap.send_to = PX_REPLICA_NONE;
			break;
		}
		save_snapshot_for_control(r);
		break;
	default:
		break;
	}
}

static void publish_status(struct dp_replica *r, uint64_t now_ns)
{
	const struct px_stats *s = px_stats(r->px);
	struct ctl_worker_status st = {
		.seq = ++r->status_seq,
		.promised = px_promised_ballot(r->px),
		.leader_ballot = px_leader_ballot(r->px),
		.commit_index = px_commit_index(r->px),
		.applied_index = px_applied_index(r->px),
		.log_start = px_log_start(r->px),
		.requests_applied = s->requests_applied,
		.rx_frames = r->ctr.rx_frames,
		.tx_frames = r->ctr.tx_frames,
		.snapshot_seq = r->snap.saved_seq,
		.snapshot_rc = r->snap.saved_rc,
		.snapshot_bytes = r->snap.saved_len,
		.snapshot_index = r->snap.saved_index,
		.queue_depth = px_queue_depth(r->px),
		.next_slot = px_next_slot(r->px),
		.reconfig_seq = r->reconfig_seq,
		.reconfig_rc = r->reconfig_rc,
		.members = px_members(r->px),
		.role = (uint8_t)px_role(r->px),
		.known_leader = px_known_leader(r->px),
	};
	for (unsigned i = 1; i < BPX_WIRE_DROP_COUNT; i++)
		st.drops += r->ctr.drops[i];
	st.wrong_cluster = r->ctr.drops[BPX_WIRE_WRONG_CLUSTER];
	st.bad_mac = r->ctr.drops[BPX_WIRE_BAD_MAC];
	/* A full ring means the control thread is behind: skip this one. */
	rte_ring_sp_enqueue_elem(r->ctl_out, &st, sizeof(st));
	r->next_status_ns = now_ns + STATUS_INTERVAL_NS;
}

static void control_exchange(struct dp_replica *r, uint64_t now_ns)
{
	if (r->ctl_in == NULL)
		return;
	struct ctl_cmd c;
	for (int i = 0; i < 8 && rte_ring_sc_dequeue_elem(r->ctl_in, &c,
							   sizeof(c)) == 0; i++)
		run_command(r, &c, now_ns);
	if (now_ns >= r->next_status_ns)
		publish_status(r, now_ns);
}

static void latency_observe(struct dp_commit_latency *l, uint64_t ns,
			    uint64_t slots)
{
	l->buckets[ctl_lat_bucket(ns)] += slots;
	l->sum_ns += ns * slots;
	l->slots += slots;
}

/* After each poll: the slots a leader proposed in it start their clock,
 * groups whose last slot is committed stop theirs. */
static void note_commit_latency(struct dp_replica *r, uint64_t now_ns)
{
	struct dp_commit_latency *l = &r->lat;
	if (px_role(r->px) != PX_ROLE_LEADER) {
		l->count = 0;
		l->next_slot_seen = 0;
		return;
	}
	uint64_t next = px_next_slot(r->px);
	if (l->next_slot_seen == 0)
		l->next_slot_seen = next; /* slots before we led: not ours */
	if (next > l->next_slot_seen) {
		if (l->count < DP_LAT_PENDING) {
			uint32_t tail = (l->head + l->count) % DP_LAT_PENDING;
			l->pending[tail].slot_begin = l->next_slot_seen;
			l->pending[tail].slot_end = next;
			l->pending[tail].proposed_ns = now_ns;
			l->count++;
		} else {
			l->skipped += next - l->next_slot_seen;
		}
		l->next_slot_seen = next;
	}
	uint64_t commit = px_commit_index(r->px);
	while (l->count > 0 && l->pending[l->head].slot_end <= commit) {
		const uint32_t h = l->head;
		latency_observe(l, now_ns - l->pending[h].proposed_ns,
				l->pending[h].slot_end - l->pending[h].slot_begin);
		l->head = (h + 1) % DP_LAT_PENDING;
		l->count--;
	}
}

uint32_t dp_replica_poll(struct dp_replica *r)
{
	return dp_replica_poll_at(r, dp_now_ns());
}

/* The pass reads the clock once, but after a snapshot saved or installed
 * (seconds, for a large state) its time is that much early: a lease
 * promised from it would end before the leader's own, and a leader would
 * answer lease reads on one that has run out. Read again then. */
static inline uint64_t clock_caught_up(struct dp_replica *r, uint64_t now_ns)
{
	if (likely(!r->clock_behind))
		return now_ns;
	r->clock_behind = false;
	return dp_now_ns();
}

uint32_t dp_replica_poll_at(struct dp_replica *r, uint64_t now_ns)
{
	struct rte_mbuf *pkts[DP_BURST];
	uint32_t total = 0;
	bool snapshot_due = false;
	r->clock_behind = false; /* now_ns was just read */
	for (uint8_t q = 0; q < r->rx_count; q++) {
		if (r->port_paused != NULL) {
			/* Another thread restarts it: hands off until done. */
			volatile uint8_t *pp = &r->port_paused[r->rx[q].port];
			if (!dp_port_worker_may_use(pp, *pp))
				continue;
		}
		uint16_t n = rte_eth_rx_burst(r->rx[q].port, r->rx[q].queue,
					      pkts, DP_BURST);
		for (uint16_t i = 0; i < n; i++) {
			if (i + 1 < n)
				rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
			handle_mbuf(r, pkts[i], now_ns);
			now_ns = clock_caught_up(r, now_ns);
		}
		if (n > 0)
			rte_pktmbuf_free_bulk(pkts, n);
		total += n;
	}
	r->ctr.rx_frames += total;
	if (total > 0) {
		/* Whatever arrived in this burst goes into one batch. */
		px_flush(r->px, now_ns, &r->out);
		transmit_outbox(r, now_ns);
		now_ns = clock_caught_up(r, now_ns);
	}
	if (r->snap.send_to < r->cfg->member_count)
		poll_snapshot_send(r, now_ns);
	if (now_ns >= r->next_tick_ns) {
		control_exchange(r, now_ns);
		px_set_leader_hint(r->px, now_ns, r->leader_hint, &r->out);
		transmit_outbox(r, now_ns);
		now_ns = clock_caught_up(r, now_ns);
		px_tick(r->px, now_ns, &r->out);
		transmit_outbox(r, now_ns);
		snapshot_due = r->dur.wal != NULL;
		r->next_tick_ns = now_ns + DP_TICK_NS;
		if (r->link_probe_ns > 0 && now_ns >= r->next_probe_ns) {
			probe_links(r);
			r->next_probe_ns = now_ns + r->link_probe_ns;
		}
	}
	/* Replies gathered in the pass, then the pass's one group commit,
	 * then what waited for it. */
	send_reply_packs(r);
	dp_durable_commit(r);
	/* After the commit: a slot this pass chose with the leader's own vote
	 * is applied at once, but that vote is only durable now (consensus.h),
	 * and a disk snapshot holding the slot must not outlive it. */
	if (snapshot_due)
		dp_durable_snapshots(r);
	dp_routes_flush(&r->routes, &r->ctr, r->port_paused);
	note_commit_latency(r, now_ns);
	r->ctr.polls++;
	r->ctr.idle_polls += total == 0;
	return total;
}
