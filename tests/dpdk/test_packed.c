/* Packed requests and replies on a real replica (dataplane/replica.c;
 * docs/wire.md, "Packed requests and replies"): one bypax replica on a
 * net_ring mesh, a test client writing frames into its ring and reading
 * what it sends back. Each request of a MULTI_REQUEST is applied exactly
 * once and answered, duplicates and retries inside one frame included;
 * the replies to a packing client come in MULTI_REPLY frames; a single
 * REQUEST (an older client) still gets a single REPLY; a malformed packed
 * frame is a counted drop with none of its requests applied. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <rte_eal.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "bypax/kv.h"
#include "dp.h"
#include "ports.h"

#define CLUSTER_ID 0x70ac4edu
#define POLL_LIMIT 200000u

struct harness {
	struct rte_mempool *pool;
	struct dp_ring_mesh mesh;
	struct bpx_config cfg;
	struct dp_replica r;
	struct bpx_endpoint client;
	void *sm;
	const struct bpx_sm_ops *ops;
};

static struct harness h;

static void endpoint(struct bpx_endpoint *ep, uint8_t last, uint16_t port)
{
	static const uint8_t mac[6] = { 0x02, 0x70, 0xac, 0x4e, 0xd0, 0x00 };
	memcpy(ep->mac, mac, 6);
	ep->mac[5] = last;
	ep->ip = (10u << 24) | (77u << 16) | last;
	ep->port = port;
}

static void add_route(struct dp_routes *rt, uint16_t port, uint16_t queue,
		      const uint8_t mac[6])
{
	int q = dp_routes_add_txq(rt, port, queue);
	assert_true(q >= 0);
	assert_int_equal(dp_routes_add_mac(rt, mac, (uint8_t)q), 0);
}

/* One replica that leads at once (a cluster of one). */
static int setup(void **state)
{
	(void)state;
	char err[256] = "";
	h.pool = rte_pktmbuf_pool_create("packed_mbufs", 1024, 0, 0,
					 RTE_MBUF_DEFAULT_BUF_SIZE,
					 (int)rte_socket_id());
	assert_non_null(h.pool);
	assert_int_equal(dp_ring_mesh_create(&h.mesh, 2, h.pool, err,
					     sizeof(err)), 0);
	h.cfg.cluster_id = CLUSTER_ID;
	h.cfg.member_count = 1;
	px_config_default(&h.cfg.px, 1, 0);
	endpoint(&h.cfg.members[0].data, 1, 9000);
	endpoint(&h.client, 2, 9100);
	void *dl = NULL;
	h.ops = dp_sm_load("kv", &dl, err, sizeof(err));
	assert_non_null(h.ops);
	h.sm = h.ops->create(NULL);
	assert_non_null(h.sm);
	dp_clock_init();
	assert_int_equal(dp_replica_init(&h.r, &h.cfg, 0, false, h.ops, h.sm,
					 h.pool, err, sizeof(err)), 0);
	assert_int_equal(dp_replica_add_rx(&h.r, h.mesh.ports[0], 0), 0);
	add_route(&h.r.routes, h.mesh.ports[0], 1, h.client.mac);
	dp_replica_set_leader_hint(&h.r, 0);
	for (unsigned i = 0; i < POLL_LIMIT &&
			     px_role(h.r.px) != PX_ROLE_LEADER; i++)
		dp_replica_poll(&h.r);
	assert_int_equal(px_role(h.r.px), PX_ROLE_LEADER);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	dp_ring_mesh_drain(&h.mesh);
	dp_replica_free(&h.r);
	h.ops->destroy(h.sm);
	return 0;
}

/* A frame from the client to the replica, into the replica's ring. */
static void send_payload(const uint8_t *payload, size_t len)
{
	struct rte_mbuf *mb = rte_pktmbuf_alloc(h.pool);
	assert_non_null(mb);
	uint8_t *p = (uint8_t *)rte_pktmbuf_append(
		mb, (uint16_t)(BPX_FRAME_HEADER_BYTES + len));
	assert_non_null(p);
	bpx_frame_write_headers(p, &h.client, &h.cfg.members[0].data,
				(uint16_t)len, 1);
	memcpy(p + BPX_FRAME_HEADER_BYTES, payload, len);
	assert_int_equal(rte_ring_enqueue(h.mesh.rings[0], mb), 0);
}

struct answers {
	unsigned single_frames, packed_frames, count;
	struct px_msg m[BPX_WIRE_MULTI_MAX * 2];
	uint8_t values[BPX_WIRE_MULTI_MAX * 2][16];
};

static void keep(struct answers *a, const struct px_msg *m)
{
	assert_true(a->count < BPX_WIRE_MULTI_MAX * 2);
	a->m[a->count] = *m;
	size_t n = m->value_len < 16 ? m->value_len : 16;
	memcpy(a->values[a->count], m->value, n);
	a->m[a->count].value = a->values[a->count];
	a->count++;
}

static void take_frame(struct answers *a, struct rte_mbuf *mb)
{
	struct bpx_frame f;
	assert_int_equal(bpx_frame_parse(rte_pktmbuf_mtod(mb, uint8_t *),
					 rte_pktmbuf_data_len(mb), &f),
			 BPX_WIRE_OK);
	assert_int_equal(f.dst.port, h.client.port);
	struct px_msg m;
	if (bpx_wire_type_of(f.payload, f.payload_len) ==
	    BPX_WIRE_MULTI_REPLY) {
		struct bpx_wire_unpacker u;
		assert_int_equal(bpx_wire_multi_decode(f.payload, f.payload_len,
						       CLUSTER_ID, &u),
				 BPX_WIRE_OK);
		a->packed_frames++;
		while (bpx_wire_multi_next(&u, &m))
			keep(a, &m);
	} else {
		assert_int_equal(bpx_wire_decode(f.payload, f.payload_len,
						 CLUSTER_ID, &m),
				 BPX_WIRE_OK);
		assert_int_equal(m.type, PX_MSG_REPLY);
		a->single_frames++;
		keep(a, &m);
	}
}

/* Polls until `want` replies came back (or the limit: then fails). */
static void collect(struct answers *a, unsigned want)
{
	memset(a, 0, sizeof(*a));
	for (unsigned i = 0; i < POLL_LIMIT && a->count < want; i++) {
		dp_replica_poll(&h.r);
		void *objs[32];
		unsigned n = rte_ring_dequeue_burst(h.mesh.rings[1], objs, 32,
						    NULL);
		for (unsigned k = 0; k < n; k++) {
			take_frame(a, objs[k]);
			rte_pktmbuf_free(objs[k]);
		}
	}
	assert_int_equal(a->count, want);
}

static const struct px_msg *answer_for(const struct answers *a,
				       uint64_t client_id, uint64_t seq,
				       unsigned nth)
{
	for (unsigned i = 0; i < a->count; i++)
		if (a->m[i].client_id == client_id && a->m[i].seq == seq &&
		    nth-- == 0)
			return &a->m[i];
	fail_msg("no reply %u for client %#llx seq %llu", nth,
		 (unsigned long long)client_id, (unsigned long long)seq);
	return NULL;
}

static size_t single(uint8_t *buf, const struct px_msg *m)
{
	int n = bpx_wire_encode(buf, BPX_WIRE_PAYLOAD_MAX, CLUSTER_ID, m);
	assert_true(n > 0);
	return (size_t)n;
}

static size_t packed(uint8_t *buf, const struct px_msg *m, unsigned count)
{
	struct bpx_wire_packer w;
	assert_int_equal(bpx_wire_multi_begin(&w, buf,
					      BPX_WIRE_MULTI_PAYLOAD_MAX,
					      CLUSTER_ID,
					      BPX_WIRE_MULTI_REQUEST,
					      PX_TO_CLIENT, 0, PX_REPLICA_NONE),
			 0);
	for (unsigned i = 0; i < count; i++)
		assert_int_equal(bpx_wire_multi_add(&w, &m[i]), 0);
	return bpx_wire_multi_finish(&w);
}

static uint64_t session_of(const struct px_msg *reply)
{
	assert_int_equal(reply->status, PX_REPLY_OK);
	assert_int_equal(reply->value_len, PX_SESSION_ID_BYTES);
	uint64_t id = 0;
	for (unsigned i = 0; i < PX_SESSION_ID_BYTES; i++)
		id |= (uint64_t)reply->value[i] << (8 * i);
	assert_true(id & PX_SESSION_ID_BIT);
	return id;
}

/* An older client's OPEN, then sessions opened in one packed frame. */
static uint64_t open_single(uint64_t nonce)
{
	uint8_t buf[BPX_WIRE_PAYLOAD_MAX];
	struct px_msg m = { .type = PX_MSG_REQUEST, .from = PX_TO_CLIENT,
			    .to = 0, .client_id = nonce, .seq = 1,
			    .flags = PX_FLAG_OPEN };
	send_payload(buf, single(buf, &m));
	struct answers a;
	collect(&a, 1);
	assert_int_equal(a.single_frames, 1); /* an old client's format */
	assert_int_equal(a.packed_frames, 0);
	return session_of(&a.m[0]);
}

static struct px_msg put(uint64_t session, uint64_t seq, uint8_t *cmd,
			 const char *key)
{
	int n = bpx_kv_encode(cmd, 64, BPX_KV_PUT, key, strlen(key),
			      (const uint8_t *)"v", 1, NULL, 0);
	assert_true(n > 0);
	return (struct px_msg){ .client_id = session, .seq = seq,
				.value = cmd, .value_len = (uint32_t)n };
}

static void test_each_request_applied_once_and_answered(void **state)
{
	(void)state;
	uint64_t s1 = open_single(0x1001);
	const struct px_stats *st = px_stats(h.r.px);
	uint64_t applied0 = st->requests_applied;
	uint64_t opened0 = st->sessions_opened;
	uint8_t cmd[4][64];
	struct px_msg reqs[5] = {
		put(s1, 1, cmd[0], "k1"),
		put(s1, 1, cmd[0], "k1"), /* the same write twice in a frame */
		{ .client_id = 0x1002, .seq = 7, .flags = PX_FLAG_OPEN },
		{ .client_id = 0x1003, .seq = 1, .flags = PX_FLAG_OPEN },
		put(s1, 2, cmd[1], "k2"),
	};
	uint8_t buf[BPX_WIRE_MULTI_PAYLOAD_MAX];
	send_payload(buf, packed(buf, reqs, 4));
	struct answers a;
	collect(&a, 4);
	assert_int_equal(a.single_frames, 0);
	assert_int_equal(a.packed_frames, 1); /* one frame for the batch */
	assert_int_equal(answer_for(&a, s1, 1, 0)->status, PX_REPLY_OK);
	assert_int_equal(answer_for(&a, s1, 1, 1)->status, PX_REPLY_OK);
	uint64_t s2 = session_of(answer_for(&a, 0x1002, 7, 0));
	uint64_t s3 = session_of(answer_for(&a, 0x1003, 1, 0));
	assert_true(s1 != s2 && s2 != s3);
	/* The write once (not twice), the two OPENs. */
	assert_int_equal(st->requests_applied - applied0, 1);
	assert_int_equal(st->sessions_opened - opened0, 2);
	assert_int_equal(h.r.ctr.packed_frames_rx, 1);
	assert_int_equal(h.r.ctr.packed_requests_rx, 4);

	/* A retry of the whole frame plus a new write: the cached replies,
	 * the write applied, nothing else. */
	send_payload(buf, packed(buf, reqs, 5));
	collect(&a, 5);
	assert_int_equal(a.single_frames, 0);
	assert_int_equal(answer_for(&a, s1, 1, 0)->status, PX_REPLY_OK);
	assert_int_equal(answer_for(&a, s1, 2, 0)->status, PX_REPLY_OK);
	/* A retried OPEN opens another session (docs/wire.md, Sessions). */
	assert_int_equal(answer_for(&a, 0x1002, 7, 0)->status, PX_REPLY_OK);
	assert_int_equal(st->requests_applied - applied0, 2);
	assert_int_equal(st->sessions_opened - opened0, 4);

	/* The same client, now as an older one: a single REQUEST, a
	 * single REPLY (the cached one of seq 2). */
	struct px_msg again = put(s1, 2, cmd[1], "k2");
	again.type = PX_MSG_REQUEST;
	again.from = PX_TO_CLIENT;
	send_payload(buf, single(buf, &again));
	collect(&a, 1);
	assert_int_equal(a.single_frames, 1);
	assert_int_equal(a.m[0].status, PX_REPLY_OK);
	assert_int_equal(st->requests_applied - applied0, 2);
}

/* One entry in a packed frame is bad: the frame is dropped whole and
 * counted, none of its requests applied, nothing answered. */
static void test_malformed_frame_dropped_whole(void **state)
{
	(void)state;
	uint64_t s = open_single(0x2001);
	uint64_t applied0 = px_stats(h.r.px)->requests_applied;
	uint8_t cmd[2][64];
	struct px_msg reqs[2] = { put(s, 1, cmd[0], "a"),
				  put(s, 2, cmd[1], "b") };
	uint8_t buf[BPX_WIRE_MULTI_PAYLOAD_MAX];
	size_t len = packed(buf, reqs, 2);
	buf[16] = 3; /* claims three entries */
	uint64_t bad_length0 = h.r.ctr.drops[BPX_WIRE_BAD_LENGTH];
	send_payload(buf, len);
	len = packed(buf, reqs, 2);
	buf[9] = 1; /* to another member */
	uint64_t not_for_us0 = h.r.ctr.drops[BPX_WIRE_NOT_FOR_US];
	send_payload(buf, len);
	for (unsigned i = 0; i < 1000; i++)
		dp_replica_poll(&h.r);
	assert_int_equal(h.r.ctr.drops[BPX_WIRE_BAD_LENGTH], bad_length0 + 1);
	assert_int_equal(h.r.ctr.drops[BPX_WIRE_NOT_FOR_US], not_for_us0 + 1);
	assert_int_equal(px_stats(h.r.px)->requests_applied, applied0);
	assert_int_equal(rte_ring_count(h.mesh.rings[1]), 0);
}

/* More replies than one frame holds: several MULTI_REPLY frames, each
 * within the 1472-byte payload, every request answered. */
static void test_replies_split_over_frames(void **state)
{
	(void)state;
	struct px_msg opens[BPX_WIRE_MULTI_MAX];
	for (unsigned i = 0; i < BPX_WIRE_MULTI_MAX; i++)
		opens[i] = (struct px_msg){ .client_id = 0x3000 + i, .seq = 1,
					    .flags = PX_FLAG_OPEN };
	uint8_t buf[BPX_WIRE_MULTI_PAYLOAD_MAX];
	send_payload(buf, packed(buf, opens, BPX_WIRE_MULTI_MAX));
	struct answers a;
	collect(&a, BPX_WIRE_MULTI_MAX);
	/* 64 replies of 20 + 8 bytes: 1810 bytes, two frames at least. */
	assert_true(a.packed_frames >= 2);
	for (unsigned i = 0; i < BPX_WIRE_MULTI_MAX; i++)
		session_of(answer_for(&a, 0x3000 + i, 1, 0));
}

/* The pool runs dry while the replies of one pass fill an address's pack
 * and it is reopened: the replies that find no mbuf are lost and counted
 * (the clients' retries get the cached ones), the replica goes on, and the
 * pack that went keeps its replies. Before the fix the pack's slot stayed
 * open with no mbuf: the next reply wrote into the frame just sent, or
 * the pass's end sent a pack that was not there (DP_ASSERT: abort). */
/* Client ids whose replies share one set of the replica's address table
 * (replica.c, client_set: the same hash, here on purpose). */
static unsigned colliding_nonces(uint64_t *ids, unsigned want)
{
	uint32_t sets = DP_CLIENT_ADDRS / DP_CLIENT_WAYS;
	uint64_t target = ((0x5000ull * 0x9e3779b97f4a7c15ull) >> 40) &
			  (sets - 1);
	unsigned n = 0;
	for (uint64_t id = 0x5000; n < want; id++)
		if ((((id * 0x9e3779b97f4a7c15ull) >> 40) & (sets - 1)) ==
		    target)
			ids[n++] = id;
	return n;
}

/* As many clients as a set holds, all waiting at once for replies that
 * map to one set: each gets its reply. The table was direct-mapped, and
 * every one but the last lost its reply to the next (it answered 1 of
 * these 4). */
static void test_clients_sharing_a_set_all_answered(void **state)
{
	(void)state;
	uint64_t ids[DP_CLIENT_WAYS];
	colliding_nonces(ids, DP_CLIENT_WAYS);
	struct px_msg reqs[DP_CLIENT_WAYS];
	for (unsigned i = 0; i < DP_CLIENT_WAYS; i++)
		reqs[i] = (struct px_msg){ .client_id = ids[i], .seq = 1,
					   .flags = PX_FLAG_OPEN };
	uint8_t buf[BPX_WIRE_PAYLOAD_MAX];
	send_payload(buf, packed(buf, reqs, DP_CLIENT_WAYS));
	struct answers a;
	collect(&a, DP_CLIENT_WAYS);
	for (unsigned i = 0; i < DP_CLIENT_WAYS; i++)
		(void)session_of(answer_for(&a, ids[i], 1, 0));
}

static void test_pack_reopen_without_mbuf(void **state)
{
	(void)state;
	struct px_msg opens[BPX_WIRE_MULTI_MAX];
	for (unsigned i = 0; i < BPX_WIRE_MULTI_MAX; i++)
		opens[i] = (struct px_msg){ .client_id = 0x4000 + i, .seq = 1,
					    .flags = PX_FLAG_OPEN };
	uint8_t buf[BPX_WIRE_MULTI_PAYLOAD_MAX];
	send_payload(buf, packed(buf, opens, BPX_WIRE_MULTI_MAX));
	/* Every free mbuf taken: the requests are proposed at the pass's
	 * flush, after the received frame went back to the pool, so the
	 * first pack opens with that one and its reopen (64 replies of 28
	 * bytes need two frames) finds none. */
	static struct rte_mbuf *held[1024];
	unsigned n = 0;
	while (n < 1024 && (held[n] = rte_pktmbuf_alloc(h.pool)) != NULL)
		n++;
	assert_true(n > 0 && n < 1024);
	uint64_t exhausted0 = h.r.ctr.mbuf_exhausted;
	uint64_t frames0 = h.r.ctr.packed_frames_tx;
	dp_replica_poll(&h.r);
	assert_true(h.r.ctr.mbuf_exhausted > exhausted0);
	assert_int_equal(h.r.ctr.packed_frames_tx, frames0 + 1);
	assert_int_equal(h.r.reply_pack_count, 0);
	for (unsigned i = 0; i < n; i++)
		rte_pktmbuf_free(held[i]);
	/* The pack that went: whole, to the client. */
	void *objs[4];
	assert_int_equal(rte_ring_dequeue_burst(h.mesh.rings[1], objs, 4,
						NULL),
			 1);
	struct answers a;
	memset(&a, 0, sizeof(a));
	take_frame(&a, objs[0]);
	rte_pktmbuf_free(objs[0]);
	assert_int_equal(a.packed_frames, 1);
	assert_true(a.count > 0 && a.count < BPX_WIRE_MULTI_MAX);
	for (unsigned i = 0; i < a.count; i++)
		session_of(&a.m[i]);
	/* And the replica goes on answering. */
	open_single(0x4fff);
}

int main(int argc, char **argv)
{
	(void)argc;
	char *eal[] = { argv[0], "--no-huge", "--no-pci", "--no-shconf",
			"-m", "256", "-l", "0", "--log-level=warning",
			"--file-prefix", "bpx-test-packed" };
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])), eal) < 0) {
		fprintf(stderr, "test_packed: EAL init failed\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_request_applied_once_and_answered),
		cmocka_unit_test(test_malformed_frame_dropped_whole),
		cmocka_unit_test(test_replies_split_over_frames),
		cmocka_unit_test(test_clients_sharing_a_set_all_answered),
		cmocka_unit_test(test_pack_reopen_without_mbuf),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
