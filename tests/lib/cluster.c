/* The in-memory cluster fixture (see cluster.h). Test code: it allocates,
 * prints and aborts freely; the replicas it drives do none of that. */
#include "cluster.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bypax/kv.h"

static void *xrealloc(void *p, size_t bytes)
{
	p = realloc(p, bytes);
	if (p == NULL) {
		fprintf(stderr, "cluster: out of memory\n");
		abort();
	}
	return p;
}

static void violation(struct cluster *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void violation(struct cluster *c, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(c->why, sizeof(c->why),
			 "step %llu, t=%llu ns: ", (unsigned long long)c->steps,
			 (unsigned long long)c->now_ns);
	va_start(ap, fmt);
	vsnprintf(c->why + n, sizeof(c->why) - (size_t)n, fmt, ap);
	va_end(ap);
	if (c->fail != NULL)
		c->fail(c->why); /* does not return */
	fprintf(stderr, "cluster invariant broken: %s\n", c->why);
	abort();
}

static uint64_t hash_bytes(const uint8_t *p, uint32_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ n;
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h | 1; /* never 0 */
}

/* ---- Config and lifetime ---- */

void cluster_config_default(struct px_config *cfg, uint8_t n)
{
	px_config_default(cfg, n, 0);
	cfg->window_slots = 8;
	cfg->log_slots = 64;
	cfg->batch_requests_max = 8;
	cfg->request_queue_max = 64;
	cfg->session_max = 64;
	cfg->catchup_burst = 16;
	cfg->heartbeat_interval_ns = 1 * CLUSTER_MS;
	cfg->retransmit_ns = 2 * CLUSTER_MS;
}

/* Durable mode: the restart of replica i from its disk. */
static void replay_disk(struct cluster *c, uint8_t i)
{
	struct cluster_node *nd = &c->nodes[i];
	for (size_t k = 0; k < nd->disk_len; k++) {
		int rc = px_durable_replay(nd->px, &nd->disk[k].msg);
		if (rc != 0)
			violation(c,
				  "replica %u: replay of record %zu (flags "
				  "%u) failed: %s",
				  i, k, nd->disk[k].msg.flags,
				  bpx_strerror(rc));
	}
	if (px_promised_ballot(nd->px) < nd->disk_promise)
		violation(c,
			  "replica %u restarted below the promise on its "
			  "disk",
			  i);
}

static void disk_free(struct cluster_node *nd)
{
	for (size_t k = 0; k < nd->disk_len; k++)
		free(nd->disk[k].value);
	free(nd->disk);
	nd->disk = NULL;
	nd->disk_len = nd->disk_cap = 0;
	nd->disk_promise = 0;
}

void cluster_start(struct cluster *c, uint8_t i, bool recovering)
{
	struct cluster_node *nd = &c->nodes[i];
	if (nd->up)
		cluster_crash(c, i);
	nd->cfg = c->tmpl;
	nd->cfg.self_id = i;
	/* Each start its own seed: recovery nonces must not repeat between
	 * lives (consensus.h); the first start keeps the historic seed. */
	nd->cfg.seed = (c->tmpl.seed * 31 + i) ^
		       (nd->starts++ * 0x9e3779b97f4a7c15ull);
	nd->cfg.recovering = recovering;
	nd->cfg.sm_ops = bpx_kv_ops();
	nd->sm = nd->cfg.sm_ops->create("capacity=4096");
	nd->cfg.sm = nd->sm;
	const char *why = px_config_check_reason(&nd->cfg);
	if (nd->sm == NULL || why != NULL) {
		fprintf(stderr, "cluster: bad config for replica %u: %s\n", i,
			why ? why : "no state machine");
		abort();
	}
	size_t bytes = px_replica_size(&nd->cfg);
	nd->mem = xrealloc(NULL, bytes);
	if (px_init(nd->mem, bytes, &nd->cfg, &nd->px) != 0) {
		fprintf(stderr, "cluster: px_init failed for replica %u\n", i);
		abort();
	}
	if (nd->cfg.durable)
		replay_disk(c, i);
	/* The smallest outbox the replica promises to work with. */
	nd->out.cap = px_outbox_cap_min(&nd->cfg);
	nd->out_msgs = xrealloc(NULL, nd->out.cap * sizeof(struct px_msg));
	nd->out.msgs = nd->out_msgs;
	nd->out.count = 0;
	nd->up = true;
	nd->seen_promised = 0;
	nd->seen_commit = 0;
	nd->seen_applied = 0;
}

void cluster_crash(struct cluster *c, uint8_t i)
{
	struct cluster_node *nd = &c->nodes[i];
	if (!nd->up)
		return;
	nd->up = false;
	free(nd->mem);
	free(nd->out_msgs);
	nd->cfg.sm_ops->destroy(nd->sm);
	nd->mem = NULL;
	nd->out_msgs = NULL;
	nd->sm = NULL;
	nd->px = NULL;
}

void cluster_init(struct cluster *c, uint8_t n, const struct px_config *tmpl)
{
	memset(c, 0, sizeof(*c));
	c->n = n;
	c->now_ns = CLUSTER_T0_NS;
	if (tmpl != NULL)
		c->tmpl = *tmpl;
	else
		cluster_config_default(&c->tmpl, n);
	c->tmpl.replica_count = n;
	c->props_cap = 1024;
	c->props = xrealloc(NULL, c->props_cap * sizeof(*c->props));
	memset(c->props, 0, c->props_cap * sizeof(*c->props));
	for (uint8_t i = 0; i < n; i++)
		cluster_start(c, i, false);
}

static void msg_free(struct cluster_msg *m)
{
	free(m->data);
	m->data = NULL;
}

void cluster_discard_all(struct cluster *c)
{
	for (size_t i = c->head; i < c->len; i++)
		msg_free(&c->queue[i]);
	c->head = c->len = 0;
}

void cluster_free(struct cluster *c)
{
	cluster_discard_all(c);
	for (uint8_t i = 0; i < c->n; i++) {
		cluster_crash(c, i);
		disk_free(&c->nodes[i]);
	}
	free(c->queue);
	free(c->replies);
	free(c->chosen);
	free(c->leader_ballots);
	free(c->leader_ids);
	free(c->props);
	free(c->digest_at);
	memset(c, 0, sizeof(*c));
}

void cluster_advance(struct cluster *c, uint64_t ns)
{
	c->now_ns += ns;
}

/* ---- Invariants ---- */

static size_t grow_to(void **p, size_t cap, size_t need, size_t elem)
{
	if (need < cap)
		return cap;
	size_t n = cap ? cap : 256;
	while (n <= need)
		n *= 2;
	*p = xrealloc(*p, n * elem);
	memset((uint8_t *)*p + cap * elem, 0, (n - cap) * elem);
	return n;
}

static void check_leader(struct cluster *c, uint8_t i)
{
	const struct px_replica *r = c->nodes[i].px;
	uint64_t b = px_leader_ballot(r);
	if (b == 0 || px_ballot_owner(b) != i)
		violation(c, "replica %u leads ballot %#llx it does not own", i,
			  (unsigned long long)b);
	if (px_promised_ballot(r) < b)
		violation(c, "leader %u promised less than its ballot", i);
	for (uint8_t j = 0; j < c->n; j++)
		if (j != i && c->nodes[j].up &&
		    px_role(c->nodes[j].px) == PX_ROLE_LEADER &&
		    px_leader_ballot(c->nodes[j].px) == b)
			violation(c,
				  "replicas %u and %u both lead ballot %#llx",
				  i, j, (unsigned long long)b);
	for (size_t k = 0; k < c->leaders_len; k++) {
		if (c->leader_ballots[k] != b)
			continue;
		if (c->leader_ids[k] != i)
			violation(c, "ballot %#llx led by %u and later by %u",
				  (unsigned long long)b, c->leader_ids[k], i);
		return;
	}
	size_t cap = c->leaders_cap;
	c->leaders_cap = grow_to((void **)&c->leader_ballots, cap,
				 c->leaders_len, sizeof(uint64_t));
	grow_to((void **)&c->leader_ids, cap, c->leaders_len, 1);
	c->leader_ballots[c->leaders_len] = b;
	c->leader_ids[c->leaders_len++] = i;
}

/* Every slot a replica commits holds the value committed for it anywhere. */
static void check_commits(struct cluster *c, uint8_t i)
{
	struct cluster_node *nd = &c->nodes[i];
	uint64_t commit = px_commit_index(nd->px);
	if (commit < nd->seen_commit)
		violation(c,
			  "replica %u commit index went back from %llu to "
			  "%llu",
			  i, (unsigned long long)nd->seen_commit,
			  (unsigned long long)commit);
	for (uint64_t s = nd->seen_commit; s < commit; s++) {
		const uint8_t *v;
		uint32_t len;
		if (px_chosen_value(nd->px, s, &v, &len) != 0)
			continue; /* covered by a snapshot */
		c->chosen_cap = grow_to((void **)&c->chosen, c->chosen_cap, s,
					sizeof(*c->chosen));
		struct cluster_chosen *cs = &c->chosen[s];
		uint64_t h = hash_bytes(v, len);
		if (cs->known && cs->hash != h)
			violation(c,
				  "replica %u committed a different value for "
				  "slot %llu",
				  i, (unsigned long long)s);
		cs->known = true;
		cs->hash = h;
	}
	nd->seen_commit = commit;
}

static void check_node(struct cluster *c, uint8_t i)
{
	struct cluster_node *nd = &c->nodes[i];
	const char *why = px_check_invariants(nd->px);
	if (why != NULL)
		violation(c, "replica %u: %s", i, why);
	const struct px_replica *r = nd->px;
	uint64_t promised = px_promised_ballot(r);
	if (promised < nd->seen_promised)
		violation(c,
			  "replica %u lowered its promise from %#llx to "
			  "%#llx",
			  i, (unsigned long long)nd->seen_promised,
			  (unsigned long long)promised);
	nd->seen_promised = promised;
	if (px_role(r) == PX_ROLE_LEADER)
		check_leader(c, i);
	check_commits(c, i);
	uint64_t applied = px_applied_index(r);
	if (applied < nd->seen_applied || applied > px_commit_index(r) ||
	    px_log_start(r) > applied)
		violation(c,
			  "replica %u: log_start %llu applied %llu (was "
			  "%llu) commit %llu out of order",
			  i, (unsigned long long)px_log_start(r),
			  (unsigned long long)applied,
			  (unsigned long long)nd->seen_applied,
			  (unsigned long long)px_commit_index(r));
	if (applied != nd->seen_applied || applied == 0) {
		c->digest_cap = grow_to((void **)&c->digest_at, c->digest_cap,
					applied, sizeof(uint64_t));
		uint64_t d = px_state_digest(r) | 1;
		if (c->digest_at[applied] == 0)
			c->digest_at[applied] = d;
		else if (c->digest_at[applied] != d)
			violation(c,
				  "replica %u state differs from another's at "
				  "applied index %llu",
				  i, (unsigned long long)applied);
	}
	nd->seen_applied = applied;
	if (!c->outbox_full_ok &&
	    px_stats(r)->drops[PX_DROP_OUTBOX_FULL] != 0) {
		/* The check runs after drain: say what the call sent. */
		violation(c,
			  "replica %u (role %d) overflowed an outbox of "
			  "px_outbox_cap_min = %u messages: %llu dropped; last "
			  "call sent %u requests' replies, %u others",
			  i, (int)px_role(r), nd->out.cap,
			  (unsigned long long)px_stats(r)
				  ->drops[PX_DROP_OUTBOX_FULL],
			  nd->last_replies, nd->last_sent);
	}
}

void cluster_check(struct cluster *c)
{
	for (uint8_t i = 0; i < c->n; i++)
		if (c->nodes[i].up)
			check_node(c, i);
}

static uint64_t prop_hash(uint64_t slot, uint64_t ballot)
{
	uint64_t h = slot * 0x9e3779b97f4a7c15ull ^
		     ballot * 0xc2b2ae3d27d4eb4full;
	return h ^ (h >> 29);
}

static void props_insert(struct cluster *c, uint64_t slot, uint64_t ballot,
			 uint64_t hash);

static void props_grow(struct cluster *c)
{
	struct cluster_proposal *old = c->props;
	size_t old_cap = c->props_cap;
	c->props_cap *= 2;
	c->props = xrealloc(NULL, c->props_cap * sizeof(*c->props));
	memset(c->props, 0, c->props_cap * sizeof(*c->props));
	c->props_len = 0;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].used)
			props_insert(c, old[i].slot, old[i].ballot,
				     old[i].hash);
	free(old);
}

/* A leader proposes one value per (slot, ballot). */
static void props_insert(struct cluster *c, uint64_t slot, uint64_t ballot,
			 uint64_t hash)
{
	if ((c->props_len + 1) * 2 > c->props_cap)
		props_grow(c);
	size_t mask = c->props_cap - 1;
	for (size_t i = prop_hash(slot, ballot) & mask;; i = (i + 1) & mask) {
		struct cluster_proposal *p = &c->props[i];
		if (!p->used) {
			*p = (struct cluster_proposal){ slot, ballot, hash,
							true };
			c->props_len++;
			return;
		}
		if (p->slot == slot && p->ballot == ballot) {
			if (p->hash != hash)
				violation(c,
					  "two values proposed for slot %llu "
					  "at ballot %#llx",
					  (unsigned long long)slot,
					  (unsigned long long)ballot);
			return;
		}
	}
}

/* ---- Outboxes into the network ---- */

static struct cluster_msg *queue_push(struct cluster *c)
{
	if (c->head == c->len)
		c->head = c->len = 0;
	if (c->len == c->cap) {
		if (c->head > 0) {
			memmove(c->queue, c->queue + c->head,
				(c->len - c->head) * sizeof(*c->queue));
			c->len -= c->head;
			c->head = 0;
		}
		if (c->len == c->cap) {
			c->cap = c->cap ? 2 * c->cap : 1024;
			c->queue =
				xrealloc(c->queue, c->cap * sizeof(*c->queue));
		}
	}
	struct cluster_msg *m = &c->queue[c->len++];
	memset(m, 0, sizeof(*m));
	return m;
}

static void collect_reply(struct cluster *c, uint8_t from,
			  const struct px_msg *m)
{
	if (m->status > PX_REPLY_STATUS_MAX ||
	    m->value_len > PX_REPLY_BYTES_MAX)
		violation(c,
			  "replica %u sent a bad reply (status %u, %u "
			  "bytes)",
			  from, m->status, m->value_len);
	c->replies_cap = grow_to((void **)&c->replies, c->replies_cap,
				 c->replies_len, sizeof(*c->replies));
	struct cluster_reply *r = &c->replies[c->replies_len++];
	r->from = from;
	r->status = m->status;
	r->leader_hint = m->leader_hint;
	r->client_id = m->client_id;
	r->seq = m->seq;
	r->value_len = m->value_len;
	if (m->value_len > 0)
		memcpy(r->value, m->value, m->value_len);
}

/* The caller's half of PX_MSG_SNAPSHOT: take the snapshot now, send it. */
static void take_snapshot(struct cluster *c, uint8_t from,
			  struct cluster_msg *q)
{
	const struct px_replica *r = c->nodes[from].px;
	size_t cap = px_snapshot_size(r);
	q->data = xrealloc(NULL, cap);
	int64_t n = px_snapshot_save(r, q->data, cap);
	if (n < 0 || (size_t)n != cap)
		violation(c,
			  "replica %u: px_snapshot_save gave %lld of %zu "
			  "bytes",
			  from, (long long)n, cap);
	q->data_len = (size_t)n;
	c->snapshots_sent++;
}

/* Durable mode: a record goes to the sender's disk, durable at once. */
static void disk_append(struct cluster *c, uint8_t from, const struct px_msg *m)
{
	struct cluster_node *nd = &c->nodes[from];
	if (!nd->cfg.durable || m->to != from)
		violation(c, "replica %u emitted a PERSIST record %s", from,
			  nd->cfg.durable ? "to another replica" :
					    "in memory mode");
	nd->disk_cap = grow_to((void **)&nd->disk, nd->disk_cap, nd->disk_len,
			       sizeof(*nd->disk));
	struct cluster_record *r = &nd->disk[nd->disk_len++];
	r->msg = *m;
	r->value = NULL;
	r->msg.value = NULL;
	if (m->value_len > 0) {
		r->value = xrealloc(NULL, m->value_len);
		memcpy(r->value, m->value, m->value_len);
		r->msg.value = r->value;
	}
	if (m->flags == PX_PERSIST_PROMISE && m->ballot > nd->disk_promise)
		nd->disk_promise = m->ballot;
}

static bool disk_holds_vote(const struct cluster_node *nd, uint64_t slot,
			    uint64_t ballot)
{
	for (size_t k = nd->disk_len; k-- > 0;) {
		const struct px_msg *r = &nd->disk[k].msg;
		if (r->flags == PX_PERSIST_ACCEPTED && r->slot == slot &&
		    r->ballot == ballot)
			return true;
	}
	return false;
}

/* Durable mode: what m tells its receiver is on the sender's disk. */
static void check_persisted(struct cluster *c, uint8_t from,
			    const struct px_msg *m)
{
	const struct cluster_node *nd = &c->nodes[from];
	bool promise =
		m->type == PX_MSG_PROMISE ||
		(m->type == PX_MSG_PREPARE && !(m->flags & PX_FLAG_RECOVERY)) ||
		(m->type == PX_MSG_STATUS && m->seq != 0) ||
		m->type == PX_MSG_ACCEPTED || m->type == PX_MSG_ACCEPT;
	if (promise && nd->disk_promise < m->ballot)
		violation(c,
			  "replica %u sent type %u at ballot %#llx before "
			  "its promise was on disk",
			  from, m->type, (unsigned long long)m->ballot);
	bool vote = m->type == PX_MSG_ACCEPTED || m->type == PX_MSG_ACCEPT;
	if (vote && !disk_holds_vote(nd, m->slot, m->ballot))
		violation(c,
			  "replica %u sent type %u for slot %llu before "
			  "its vote was on disk",
			  from, m->type, (unsigned long long)m->slot);
}

static void drain(struct cluster *c, uint8_t from)
{
	struct cluster_node *nd = &c->nodes[from];
	nd->last_replies = 0;
	nd->last_sent = nd->out.count;
	for (uint32_t k = 0; k < nd->out.count; k++)
		nd->last_replies += nd->out.msgs[k].type == PX_MSG_REPLY;
	nd->last_sent -= nd->last_replies;
	for (uint32_t k = 0; k < nd->out.count; k++) {
		const struct px_msg *m = &nd->out.msgs[k];
		if (m->from != from)
			violation(c, "replica %u sent a message from %u", from,
				  m->from);
		if (m->type == PX_MSG_REPLY) {
			collect_reply(c, from, m);
			continue;
		}
		if (m->type == PX_MSG_PERSIST) {
			disk_append(c, from, m);
			continue;
		}
		if (nd->cfg.durable)
			check_persisted(c, from, m);
		if (m->to >= c->n || m->to == from)
			violation(c, "replica %u sent type %u to %u", from,
				  m->type, m->to);
		if (m->type == PX_MSG_ACCEPT)
			props_insert(c, m->slot, m->ballot,
				     hash_bytes(m->value, m->value_len));
		struct cluster_msg *q = queue_push(c);
		q->msg = *m;
		if (m->type == PX_MSG_SNAPSHOT) {
			take_snapshot(c, from, q);
			continue;
		}
		/* A decoder hands over no pointer for an empty value. */
		q->msg.value = NULL;
		if (m->value_len > 0) {
			q->data = xrealloc(NULL, m->value_len);
			memcpy(q->data, m->value, m->value_len);
			q->data_len = m->value_len;
			q->msg.value = q->data;
		}
	}
	nd->out.count = 0;
}

/* After every call into replica i: its effects go out, then the check. */
static void after_call(struct cluster *c, uint8_t i)
{
	c->steps++;
	drain(c, i);
	cluster_check(c);
}

/* ---- Driving the replicas ---- */

void cluster_hint_one(struct cluster *c, uint8_t i, uint8_t leader)
{
	if (!c->nodes[i].up)
		return;
	px_set_leader_hint(c->nodes[i].px, c->now_ns, leader, &c->nodes[i].out);
	after_call(c, i);
}

void cluster_hint(struct cluster *c, uint8_t leader)
{
	for (uint8_t i = 0; i < c->n; i++)
		cluster_hint_one(c, i, leader);
}

void cluster_elect(struct cluster *c, uint8_t leader)
{
	cluster_hint(c, leader);
	cluster_deliver_all(c);
	/* A deposed replica backs off before it tries again: let the clock
	 * run until it does. */
	for (int k = 0; k < 1000; k++) {
		if (px_role(c->nodes[leader].px) == PX_ROLE_LEADER)
			return;
		cluster_advance(c, c->tmpl.retransmit_ns / 4);
		cluster_tick_all(c);
		cluster_deliver_all(c);
	}
	violation(c, "replica %u did not become leader", leader);
}

void cluster_flush(struct cluster *c, uint8_t i)
{
	px_flush(c->nodes[i].px, c->now_ns, &c->nodes[i].out);
	after_call(c, i);
}

static void deliver_one(struct cluster *c, struct cluster_msg *q)
{
	const struct px_msg *m = &q->msg;
	uint8_t to = m->to;
	if (!c->nodes[to].up || c->cut[m->from][to]) {
		c->msgs_lost++;
		return;
	}
	struct cluster_node *nd = &c->nodes[to];
	c->msgs_delivered++;
	if (m->type == PX_MSG_SNAPSHOT) {
		int rc = px_snapshot_install(nd->px, c->now_ns, q->data,
					     q->data_len, &nd->out);
		if (rc != 0)
			violation(c,
				  "replica %u rejected a snapshot from %u: "
				  "%s",
				  to, m->from, bpx_strerror(rc));
	} else {
		int rc = px_step(nd->px, c->now_ns, m, &nd->out);
		if (rc != 0)
			violation(c, "replica %u refused type %u from %u: %s",
				  to, m->type, m->from, bpx_strerror(rc));
	}
	after_call(c, to);
	cluster_flush(c, to);
}

static bool matches(const struct px_msg *m, uint8_t type, uint8_t from,
		    uint8_t to)
{
	return (type == CLUSTER_ANY || m->type == type) &&
	       (from == CLUSTER_ANY || m->from == from) &&
	       (to == CLUSTER_ANY || m->to == to);
}

/* Takes queue[k] out (keeping the order of the rest) and delivers it. */
static void take_and_deliver(struct cluster *c, size_t k)
{
	struct cluster_msg q = c->queue[k];
	memmove(&c->queue[k], &c->queue[k + 1],
		(c->len - k - 1) * sizeof(*c->queue));
	c->len--;
	deliver_one(c, &q);
	msg_free(&q);
}

bool cluster_deliver(struct cluster *c)
{
	if (c->head == c->len)
		return false;
	struct cluster_msg q = c->queue[c->head++];
	deliver_one(c, &q);
	msg_free(&q);
	return true;
}

bool cluster_deliver_match(struct cluster *c, uint8_t type, uint8_t from,
			   uint8_t to)
{
	for (size_t k = c->head; k < c->len; k++) {
		if (matches(&c->queue[k].msg, type, from, to)) {
			take_and_deliver(c, k);
			return true;
		}
	}
	return false;
}

uint64_t cluster_deliver_all(struct cluster *c)
{
	uint64_t steps = 0;
	while (cluster_deliver(c))
		if (++steps > CLUSTER_STEPS_MAX)
			violation(c, "the network never went quiet");
	return steps;
}

size_t cluster_count(const struct cluster *c, uint8_t type, uint8_t from,
		     uint8_t to)
{
	size_t n = 0;
	for (size_t k = c->head; k < c->len; k++)
		n += matches(&c->queue[k].msg, type, from, to);
	return n;
}

const struct px_msg *cluster_peek(const struct cluster *c, uint8_t type,
				  uint8_t from, uint8_t to)
{
	for (size_t k = c->head; k < c->len; k++)
		if (matches(&c->queue[k].msg, type, from, to))
			return &c->queue[k].msg;
	return NULL;
}

void cluster_tick(struct cluster *c, uint8_t i)
{
	if (!c->nodes[i].up)
		return;
	px_tick(c->nodes[i].px, c->now_ns, &c->nodes[i].out);
	after_call(c, i);
}

void cluster_tick_all(struct cluster *c)
{
	for (uint8_t i = 0; i < c->n; i++)
		cluster_tick(c, i);
}

void cluster_run(struct cluster *c, uint64_t duration_ns, uint64_t step_ns)
{
	for (uint64_t t = 0; t < duration_ns; t += step_ns) {
		cluster_advance(c, step_ns);
		cluster_tick_all(c);
		cluster_deliver_all(c);
	}
}

int cluster_inject(struct cluster *c, uint8_t i, const struct px_msg *m)
{
	int rc = px_step(c->nodes[i].px, c->now_ns, m, &c->nodes[i].out);
	after_call(c, i);
	return rc;
}

int cluster_install(struct cluster *c, uint8_t i, const uint8_t *buf,
		    size_t len)
{
	int rc = px_snapshot_install(c->nodes[i].px, c->now_ns, buf, len,
				     &c->nodes[i].out);
	after_call(c, i);
	return rc;
}

uint8_t *cluster_save(const struct cluster *c, uint8_t i, size_t *len)
{
	const struct px_replica *r = c->nodes[i].px;
	size_t cap = px_snapshot_size(r);
	uint8_t *buf = xrealloc(NULL, cap);
	int64_t n = px_snapshot_save(r, buf, cap);
	if (n < 0 || (size_t)n != cap) {
		fprintf(stderr, "cluster: snapshot of %u failed\n", i);
		abort();
	}
	*len = (size_t)n;
	return buf;
}

int cluster_request(struct cluster *c, uint8_t i, uint64_t client_id,
		    uint64_t seq, const void *cmd, uint32_t cmd_len)
{
	struct px_msg m = {
		.type = PX_MSG_REQUEST,
		.from = PX_TO_CLIENT,
		.to = i,
		.client_id = client_id,
		.seq = seq,
		.value_len = cmd_len,
		.value = cmd_len > 0 ? cmd : NULL,
	};
	return cluster_inject(c, i, &m);
}

uint64_t cluster_open_session(struct cluster *c, uint8_t leader)
{
	/* Nonces from a range no test uses as a client id. */
	uint64_t nonce = CLUSTER_OPEN_NONCE_BASE + ++c->opens;
	struct px_msg m = {
		.type = PX_MSG_REQUEST,
		.from = PX_TO_CLIENT,
		.to = leader,
		.flags = PX_FLAG_OPEN,
		.client_id = nonce,
		.seq = 1,
	};
	int rc = cluster_inject(c, leader, &m);
	cluster_flush(c, leader);
	cluster_deliver_all(c);
	const struct cluster_reply *r = cluster_reply(c, nonce, 1);
	if (rc != 0 || r == NULL || r->status != PX_REPLY_OK ||
	    r->value_len != PX_SESSION_ID_BYTES) {
		violation(c, "replica %u opened no session (rc %d, %s)", leader,
			  rc, r == NULL ? "no reply" : "a bad reply");
		return 0;
	}
	uint64_t id = 0;
	for (unsigned i = 0; i < PX_SESSION_ID_BYTES; i++)
		id |= (uint64_t)r->value[i] << (8 * i);
	if (!(id & PX_SESSION_ID_BIT))
		violation(c, "session id %#llx lacks bit 63",
			  (unsigned long long)id);
	return id;
}

uint32_t cluster_encode_put(uint8_t *buf, size_t cap, const char *key,
			    const char *value)
{
	int n = bpx_kv_encode(buf, cap, BPX_KV_PUT, key, strlen(key), value,
			      strlen(value), NULL, 0);
	if (n < 0) {
		fprintf(stderr, "cluster: cannot encode PUT %s=%s\n", key,
			value);
		abort();
	}
	return (uint32_t)n;
}

int cluster_put(struct cluster *c, uint8_t i, uint64_t client_id, uint64_t seq,
		const char *key, const char *value)
{
	uint8_t cmd[BPX_KV_CMD_BYTES_MAX];
	uint32_t len = cluster_encode_put(cmd, sizeof(cmd), key, value);
	int rc = cluster_request(c, i, client_id, seq, cmd, len);
	cluster_flush(c, i);
	return rc;
}

int cluster_propose_config(struct cluster *c, uint8_t i, uint8_t members)
{
	int rc = px_propose_config(c->nodes[i].px, c->now_ns, members,
				   &c->nodes[i].out);
	after_call(c, i);
	cluster_flush(c, i);
	return rc;
}

const struct cluster_reply *cluster_reply(const struct cluster *c,
					  uint64_t client_id, uint64_t seq)
{
	for (size_t k = c->replies_len; k-- > 0;)
		if (c->replies[k].client_id == client_id &&
		    c->replies[k].seq == seq)
			return &c->replies[k];
	return NULL;
}

size_t cluster_reply_count(const struct cluster *c, uint64_t client_id,
			   uint64_t seq)
{
	size_t n = 0;
	for (size_t k = 0; k < c->replies_len; k++)
		n += c->replies[k].client_id == client_id &&
		     c->replies[k].seq == seq;
	return n;
}

void cluster_replies_clear(struct cluster *c)
{
	c->replies_len = 0;
}

int cluster_read(struct cluster *c, uint8_t i, uint64_t client_id,
		 uint64_t seq, const char *key)
{
	uint8_t cmd[BPX_KV_CMD_BYTES_MAX];
	int n = bpx_kv_encode(cmd, sizeof(cmd), BPX_KV_GET, key, strlen(key),
			      NULL, 0, NULL, 0);
	if (n <= 0)
		violation(c, "cannot encode a GET of '%s'", key);
	struct px_msg m = {
		.type = PX_MSG_REQUEST,
		.from = PX_TO_CLIENT,
		.to = i,
		.flags = PX_FLAG_READ,
		.client_id = client_id,
		.seq = seq,
		.value = cmd,
		.value_len = (uint32_t)n,
	};
	int rc = cluster_inject(c, i, &m);
	cluster_flush(c, i);
	return rc;
}

void cluster_chosen_put_value(const struct cluster *c, uint8_t i,
			      uint64_t slot, char *buf, size_t cap)
{
	const uint8_t *v;
	uint32_t len;
	buf[0] = '\0';
	if (px_chosen_value(c->nodes[i].px, slot, &v, &len) != 0)
		return;
	/* A batch: per request u64 client, u64 seq, u16 length (all
	 * little-endian, consensus/batch.c), then the command. */
	for (uint32_t off = 0; len - off >= PX_BATCH_ENTRY_HEADER_BYTES;) {
		const uint8_t *p = v + off;
		uint32_t n = (uint32_t)p[16] | (uint32_t)p[17] << 8;
		if (n > len - off - PX_BATCH_ENTRY_HEADER_BYTES)
			return;
		struct bpx_kv_cmd cmd;
		if (bpx_kv_decode(p + PX_BATCH_ENTRY_HEADER_BYTES, n, &cmd) == 0 &&
		    cmd.op == BPX_KV_PUT && cmd.value_len < cap) {
			memcpy(buf, cmd.value, cmd.value_len);
			buf[cmd.value_len] = '\0';
			return;
		}
		off += PX_BATCH_ENTRY_HEADER_BYTES + n;
	}
}

void cluster_run_until_recovered(struct cluster *c, uint8_t i)
{
	for (int k = 0; k < 400; k++) {
		if (px_role(c->nodes[i].px) != PX_ROLE_RECOVERING)
			return;
		cluster_run(c, c->tmpl.retransmit_ns, CLUSTER_MS / 4);
	}
	violation(c, "replica %u still recovering after 400 retransmits", i);
}
