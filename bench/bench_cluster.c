/* An in-memory bypax cluster for benchmarks (see bench_cluster.h). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bypax/consensus.h"
#include "bypax/errors.h"
#include "bypax/kv.h"

#include "bench_cluster.h"

/* Keys are "000".."999": three bytes, so that a 32-request batch of PUTs
 * (18 + 6 + 3 + 16 = 43 bytes each, 1376 in all) fits one slot's
 * PX_VALUE_BYTES_MAX. Longer keys would cap a slot below 32 requests. */
#define BC_KEY_BYTES 3u
#define BC_CMD_BYTES (BPX_KV_CMD_HEADER_BYTES + BC_KEY_BYTES + BC_VALUE_BYTES)
#define BC_LOG_SLOTS 1024u
#define BC_SESSIONS_MIN 4096u
/* The fake clock: each call into the core costs this much time, about what
 * a dataplane spends per packet; every replica ticks every BC_TICK_NS. */
#define BC_STEP_NS 50u
#define BC_TICK_NS 10000u
#define BC_START_NS 1000000u
/* Rounds with nothing to deliver before the cluster counts as stuck. */
#define BC_IDLE_ROUNDS_MAX 64u
#define BC_ELECTION_ROUNDS_MAX 64u

static void bc_fail(const char *expr, const char *what, const char *file,
		    int line) __attribute__((noreturn));

static void bc_fail(const char *expr, const char *what, const char *file,
		    int line)
{
	fprintf(stderr, "bench_cluster: %s:%d: check failed: %s (%s)\n", file,
		line, expr, what);
	abort();
}

/* Always on, whatever NDEBUG says: a benchmark of a broken run is worse
 * than no benchmark. */
#define BC_CHECK(x, what)                                                      \
	do {                                                                   \
		if (!(x))                                                      \
			bc_fail(#x, (what), __FILE__, __LINE__);               \
	} while (0)

/* Message copies, with their value bytes in a bump arena. One queue is
 * delivered while the other fills; a delivered queue is reset whole. */
struct bc_queue {
	struct px_msg *msgs;
	uint32_t count;
	uint32_t cap;
	uint8_t *arena;
	size_t arena_used;
	size_t arena_cap;
};

struct bc_node {
	void *mem;
	struct px_replica *px;
	void *sm;
};

struct bc_cluster {
	uint8_t replicas;
	uint32_t batch;
	uint32_t clients; /* batch * window: the most requests in flight */
	uint64_t *session_ids; /* clients: opened through the log at start */
	uint32_t opened;       /* sessions opened so far (bc_new) */
	uint64_t now_ns;
	uint64_t next_tick_ns;
	uint64_t submitted; /* requests numbered from 0, in submission order */
	uint64_t replied;
	struct bc_node nodes[PX_REPLICAS_MAX];
	struct px_outbox out;
	struct bc_queue queues[2];
	uint32_t filling; /* the queue new messages go to */
	struct bc_stats stats;
	const struct bpx_sm_ops *kv;
	/* kv, or a copy of it without prefetch (bc_new_keys) */
	struct bpx_sm_ops kv_no_prefetch;
	uint32_t keys; /* BC_KEYS: cmds; more: 3-byte binary keys, prefilled */
	uint8_t cmds[BC_KEYS][BC_CMD_BYTES]; /* a PUT per key, value zeroed */
	uint8_t cmd[BC_CMD_BYTES];
};

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A big cluster's key k: its low 3 bytes (bc_new_keys allows 2^24). */
static void put_key(uint8_t *cmd, uint32_t k)
{
	for (uint32_t i = 0; i < BC_KEY_BYTES; i++)
		cmd[BPX_KV_CMD_HEADER_BYTES + i] = (uint8_t)(k >> (8 * i));
}

/* ---- The FIFO ---- */

static bool queue_init(struct bc_queue *q, uint32_t cap)
{
	q->cap = cap;
	q->arena_cap = (size_t)cap * PX_VALUE_BYTES_MAX;
	q->msgs = calloc(cap, sizeof(*q->msgs));
	q->arena = malloc(q->arena_cap);
	return q->msgs != NULL && q->arena != NULL;
}

static void queue_push(struct bc_queue *q, const struct px_msg *m)
{
	BC_CHECK(q->count < q->cap, "message queue full");
	BC_CHECK(q->arena_cap - q->arena_used >= m->value_len,
		 "value arena full");
	struct px_msg *copy = &q->msgs[q->count++];
	*copy = *m;
	if (m->value_len > 0) {
		/* The outbox value is borrowed until the next call on the
		 * sender: copy it now. */
		uint8_t *dst = q->arena + q->arena_used;
		memcpy(dst, m->value, m->value_len);
		q->arena_used += m->value_len;
		copy->value = dst;
	} else {
		copy->value = NULL;
	}
}

/* ---- Clients ---- */

/* The answer to client i's OPEN (sent with nonce i + 1): its session. */
static void on_opened(struct bc_cluster *c, const struct px_msg *m)
{
	BC_CHECK(m->status == PX_REPLY_OK &&
			 m->value_len == PX_SESSION_ID_BYTES &&
			 m->client_id >= 1 && m->client_id <= c->clients,
		 "an OPEN failed");
	uint64_t id = 0;
	for (unsigned i = 0; i < PX_SESSION_ID_BYTES; i++)
		id |= (uint64_t)m->value[i] << (8 * i);
	BC_CHECK(id & PX_SESSION_ID_BIT, "a session id without bit 63");
	BC_CHECK(c->session_ids[m->client_id - 1] == 0, "OPEN answered twice");
	c->session_ids[m->client_id - 1] = id;
	c->opened++;
}

/* Request k comes from client k % clients with that client's seq
 * k / clients + 1: a client has one request in flight at most, since at
 * most `clients` are, and one leader replies in submission order. */
static void on_reply(struct bc_cluster *c, const struct px_msg *m)
{
	uint64_t k = c->replied;
	BC_CHECK(m->type == PX_MSG_REPLY, "only replies go to clients");
	if (c->opened < c->clients) {
		on_opened(c, m);
		return;
	}
	BC_CHECK(m->status == PX_REPLY_OK, "reply is not PX_REPLY_OK");
	BC_CHECK(k < c->submitted, "reply to a request never sent");
	BC_CHECK(m->client_id == c->session_ids[k % c->clients],
		 "reply out of order");
	BC_CHECK(m->seq == k / c->clients + 1, "reply out of order");
	uint8_t kv_status;
	const uint8_t *value;
	uint16_t value_len;
	int rc = bpx_kv_decode_reply(m->value, m->value_len, &kv_status, &value,
				     &value_len);
	BC_CHECK(rc == 0 && kv_status == BPX_KV_OK, "KV PUT failed");
	c->replied++;
	c->stats.requests_committed++;
}

/* Hands the shared outbox's messages on: replies to the clients, the rest
 * to the filling queue. */
static void drain(struct bc_cluster *c)
{
	struct bc_queue *q = &c->queues[c->filling];
	for (uint32_t i = 0; i < c->out.count; i++) {
		const struct px_msg *m = &c->out.msgs[i];
		if (m->to == PX_TO_CLIENT) {
			on_reply(c, m);
			continue;
		}
		/* A snapshot transfer means a replica fell behind the log,
		 * which a fault-free run never does. */
		BC_CHECK(m->type != PX_MSG_SNAPSHOT, "unexpected snapshot");
		BC_CHECK(m->to < c->replicas, "message to a non-member");
		queue_push(q, m);
	}
	c->out.count = 0;
}

static struct px_replica *leader(const struct bc_cluster *c)
{
	return c->nodes[0].px;
}

static void flush_leader(struct bc_cluster *c)
{
	c->now_ns += BC_STEP_NS;
	px_flush(leader(c), c->now_ns, &c->out);
	drain(c);
}

static void submit_one(struct bc_cluster *c)
{
	uint64_t k = c->submitted++;
	if (c->keys == BC_KEYS) {
		memcpy(c->cmd, c->cmds[k % BC_KEYS], BC_CMD_BYTES);
	} else {
		memcpy(c->cmd, c->cmds[0], BC_CMD_BYTES);
		put_key(c->cmd, (uint32_t)(k % c->keys));
	}
	put_le64(c->cmd + BPX_KV_CMD_HEADER_BYTES + BC_KEY_BYTES, k);
	struct px_msg m = {
		.type = PX_MSG_REQUEST,
		.from = PX_TO_CLIENT,
		.to = 0,
		.client_id = c->session_ids[k % c->clients],
		.seq = k / c->clients + 1,
		.value_len = BC_CMD_BYTES,
		.value = c->cmd,
	};
	c->now_ns += BC_STEP_NS;
	int rc = px_step(leader(c), c->now_ns, &m, &c->out);
	BC_CHECK(rc == 0, "leader refused a request");
	drain(c);
}

/* Submits groups of `batch` requests, a px_flush after each, while the
 * clients have room for a whole group. */
static void submit_groups(struct bc_cluster *c, uint64_t end)
{
	while (c->submitted < end) {
		uint64_t n = end - c->submitted;
		if (n > c->batch)
			n = c->batch;
		if (c->submitted + n - c->replied > c->clients)
			return;
		for (uint64_t i = 0; i < n; i++)
			submit_one(c);
		flush_leader(c);
	}
}

/* ---- Delivery and time ---- */

static bool queue_empty(const struct bc_cluster *c)
{
	return c->queues[c->filling].count == 0;
}

static void deliver_round(struct bc_cluster *c)
{
	struct bc_queue *q = &c->queues[c->filling];
	c->filling ^= 1u;
	struct bc_queue *next = &c->queues[c->filling];
	next->count = 0;
	next->arena_used = 0;
	for (uint32_t i = 0; i < q->count; i++) {
		const struct px_msg *m = &q->msgs[i];
		c->now_ns += BC_STEP_NS;
		int rc = px_step(c->nodes[m->to].px, c->now_ns, m, &c->out);
		BC_CHECK(rc == 0, "a replica dropped a well-formed message");
		c->stats.msgs_delivered++;
		c->stats.msgs_by_type[m->type]++;
		drain(c);
	}
}

static void tick_all(struct bc_cluster *c)
{
	for (uint8_t i = 0; i < c->replicas; i++) {
		c->now_ns += BC_STEP_NS;
		px_tick(c->nodes[i].px, c->now_ns, &c->out);
		drain(c);
	}
	c->next_tick_ns = c->now_ns + BC_TICK_NS;
	c->stats.ticks++;
}

static bool all_applied(const struct bc_cluster *c)
{
	uint64_t commit = px_commit_index(leader(c));
	if (px_queue_depth(leader(c)) != 0)
		return false;
	for (uint8_t i = 0; i < c->replicas; i++) {
		if (px_applied_index(c->nodes[i].px) != commit)
			return false;
	}
	return true;
}

uint64_t bc_run_requests(struct bc_cluster *c, uint64_t count)
{
	uint64_t replied_before = c->replied;
	uint64_t end = c->submitted + count;
	uint32_t idle_rounds = 0;
	for (;;) {
		submit_groups(c, end);
		if (queue_empty(c)) {
			if (c->replied == end && all_applied(c))
				break;
			/* Nothing in flight: the timers (a heartbeat with
			 * the commit index) move things on. */
			tick_all(c);
			if (queue_empty(c)) {
				BC_CHECK(++idle_rounds < BC_IDLE_ROUNDS_MAX,
					 "cluster stopped making progress");
				c->now_ns += BC_TICK_NS;
				continue;
			}
		}
		idle_rounds = 0;
		deliver_round(c);
		flush_leader(c);
		if (c->now_ns >= c->next_tick_ns)
			tick_all(c);
	}
	return c->replied - replied_before;
}

/* ---- Set-up ---- */

static void make_commands(struct bc_cluster *c)
{
	static const uint8_t zero[BC_VALUE_BYTES];
	for (uint32_t k = 0; k < BC_KEYS; k++) {
		char key[BC_KEY_BYTES + 1];
		snprintf(key, sizeof(key), "%03u", k);
		int len = bpx_kv_encode(c->cmds[k], BC_CMD_BYTES, BPX_KV_PUT,
					key, BC_KEY_BYTES, zero, BC_VALUE_BYTES,
					NULL, 0);
		BC_CHECK(len == (int)BC_CMD_BYTES, "PUT encoding");
	}
}

static int node_init(struct bc_cluster *c, uint8_t id, uint32_t window)
{
	struct bc_node *n = &c->nodes[id];
	struct px_config cfg;
	px_config_default(&cfg, c->replicas, id);
	cfg.window_slots = window;
	cfg.log_slots = BC_LOG_SLOTS;
	cfg.batch_requests_max = c->batch;
	cfg.request_queue_max = c->clients;
	cfg.session_max = c->clients > BC_SESSIONS_MIN ? c->clients :
							 BC_SESSIONS_MIN;
	cfg.seed = (uint64_t)id + 1;
	cfg.sm_ops = c->kv;
	char args[64];
	uint32_t capacity = c->keys < 4096 ? 4096 : c->keys;
	snprintf(args, sizeof(args), "capacity=%u,bytes=%llu", capacity,
		 (unsigned long long)capacity * 48);
	n->sm = c->kv->create(c->keys == BC_KEYS ? "capacity=4096" : args);
	if (n->sm == NULL)
		return -BPX_ENOMEM;
	cfg.sm = n->sm;
	const char *why = px_config_check_reason(&cfg);
	if (why != NULL) {
		fprintf(stderr, "bench_cluster: bad config: %s\n", why);
		return -BPX_EINVAL;
	}
	uint32_t cap = px_outbox_cap_min(&cfg);
	if (c->out.cap < cap)
		c->out.cap = cap;
	size_t bytes = px_replica_size(&cfg);
	n->mem = malloc(bytes);
	if (n->mem == NULL)
		return -BPX_ENOMEM;
	return px_init(n->mem, bytes, &cfg, &n->px);
}

/* Every client opens its session through the log (an OPEN with nonce
 * i + 1), a batch of OPENs per flush, before any request is timed. */
static void open_sessions(struct bc_cluster *c)
{
	for (uint32_t i = 0; i < c->clients; i++) {
		struct px_msg m = {
			.type = PX_MSG_REQUEST,
			.from = PX_TO_CLIENT,
			.to = 0,
			.flags = PX_FLAG_OPEN,
			.client_id = (uint64_t)i + 1,
			.seq = 1,
		};
		c->now_ns += BC_STEP_NS;
		BC_CHECK(px_step(leader(c), c->now_ns, &m, &c->out) == 0,
			 "leader refused an OPEN");
		drain(c);
		if ((i + 1) % c->batch == 0)
			flush_leader(c);
	}
	flush_leader(c);
	uint32_t rounds = 0;
	while (c->opened < c->clients || !all_applied(c)) {
		BC_CHECK(++rounds < BC_IDLE_ROUNDS_MAX, "sessions did not open");
		if (queue_empty(c))
			tick_all(c);
		deliver_round(c);
		flush_leader(c);
	}
}

/* Replica 0 gets the leader hint everywhere and runs phase 1. */
static void elect(struct bc_cluster *c)
{
	for (uint8_t i = 0; i < c->replicas; i++) {
		c->now_ns += BC_STEP_NS;
		px_set_leader_hint(c->nodes[i].px, c->now_ns, 0, &c->out);
		drain(c);
	}
	uint32_t rounds = 0;
	while (px_role(leader(c)) != PX_ROLE_LEADER) {
		BC_CHECK(++rounds < BC_ELECTION_ROUNDS_MAX,
			 "no leader elected");
		if (queue_empty(c))
			tick_all(c);
		deliver_round(c);
	}
	while (!queue_empty(c))
		deliver_round(c); /* late promises: dropped as stale */
}

/* Every replica's store gets every key, applied to it directly (the same
 * on all, as the log would), so that requests overwrite from the start. */
static void prefill(struct bc_cluster *c)
{
	uint8_t cmd[BC_CMD_BYTES], reply[BPX_SM_REPLY_BYTES_MAX];
	memcpy(cmd, c->cmds[0], BC_CMD_BYTES);
	for (uint32_t k = 0; k < c->keys; k++) {
		put_key(cmd, k);
		for (uint8_t i = 0; i < c->replicas; i++)
			BC_CHECK(c->kv->apply(c->nodes[i].sm, cmd, BC_CMD_BYTES,
					      reply, sizeof(reply)) > 0,
				 "prefill");
	}
}

struct bc_cluster *bc_new(uint8_t replicas, uint32_t batch, uint32_t window)
{
	return bc_new_keys(replicas, batch, window, BC_KEYS, true);
}

struct bc_cluster *bc_new_keys(uint8_t replicas, uint32_t batch,
			       uint32_t window, uint32_t keys, bool prefetch)
{
	if (keys < BC_KEYS || keys > (1u << 24))
		return NULL;
	if (window == 0)
		window = BC_WINDOW_SLOTS_DEFAULT;
	if (replicas < 1 || replicas > PX_REPLICAS_MAX || batch < 1 ||
	    batch > 1024 || window > BC_LOG_SLOTS / 2)
		return NULL;
	struct bc_cluster *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->replicas = replicas;
	c->batch = batch;
	c->clients = batch * window;
	c->now_ns = BC_START_NS;
	c->keys = keys;
	c->kv = bpx_kv_ops();
	if (!prefetch) {
		c->kv_no_prefetch = *c->kv;
		c->kv_no_prefetch.prefetch = NULL;
		c->kv = &c->kv_no_prefetch;
	}
	make_commands(c);
	for (uint8_t i = 0; i < replicas; i++) {
		if (node_init(c, i, window) != 0)
			goto err_after_alloc;
	}
	c->out.msgs = calloc(c->out.cap, sizeof(*c->out.msgs));
	c->session_ids = calloc(c->clients, sizeof(*c->session_ids));
	if (c->out.msgs == NULL || c->session_ids == NULL)
		goto err_after_alloc;
	/* Far more than a round ever holds (window * (replicas - 1) accepts
	 * or acks and a heartbeat each; in phase 1 a promise per log slot
	 * from each follower); queue_push checks. */
	uint32_t queue_cap = 2u * replicas * c->out.cap;
	if (!queue_init(&c->queues[0], queue_cap) ||
	    !queue_init(&c->queues[1], queue_cap))
		goto err_after_alloc;
	if (keys != BC_KEYS)
		prefill(c);
	elect(c);
	open_sessions(c);
	c->next_tick_ns = c->now_ns + BC_TICK_NS;
	return c;

err_after_alloc:
	bc_free(c);
	return NULL;
}

void bc_get_stats(const struct bc_cluster *c, struct bc_stats *out)
{
	*out = c->stats;
	const struct px_stats *ls = px_stats(leader(c));
	out->slots_committed = ls->slots_committed;
	out->slots_proposed = ls->slots_proposed;
	out->batch_requests_total = ls->batch_requests_total;
	out->retransmits = ls->retransmits;
	out->drops = 0;
	for (uint8_t i = 0; i < c->replicas; i++) {
		const struct px_stats *s = px_stats(c->nodes[i].px);
		for (int d = 0; d < PX_DROP_COUNT; d++)
			out->drops += s->drops[d];
	}
	out->now_ns = c->now_ns;
}

void bc_free(struct bc_cluster *c)
{
	if (c == NULL)
		return;
	for (uint8_t i = 0; i < c->replicas; i++) {
		struct bc_node *n = &c->nodes[i];
		if (n->sm != NULL)
			c->kv->destroy(n->sm);
		free(n->mem);
	}
	for (int i = 0; i < 2; i++) {
		free(c->queues[i].msgs);
		free(c->queues[i].arena);
	}
	free(c->out.msgs);
	free(c->session_ids);
	free(c);
}
