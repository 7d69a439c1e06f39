/* The learner: advancing the commit index and applying chosen slots, in
 * order, through the state machine, with exactly-once client sessions. */
#include "internal.h"

void px_begin_call(struct px_replica *r)
{
	r->reply_arena_used = 0;
}

/* Queues a reply to a client. Its bytes are copied into the reply arena so
 * they stay valid until the caller's next call, whatever happens to the
 * session that cached them. */
void px_reply(struct px_replica *r, struct px_outbox *out, uint64_t client_id,
	      uint64_t seq, uint8_t status, const uint8_t *value,
	      uint32_t value_len)
{
	PX_ASSERT(value_len <= PX_REPLY_BYTES_MAX);
	if (r->reply_arena_cap - r->reply_arena_used < value_len) {
		px_drop(r, PX_DROP_OUTBOX_FULL);
		return;
	}
	struct px_msg *m = px_out_to(r, out, PX_MSG_REPLY, PX_TO_CLIENT);
	if (m == NULL)
		return;
	m->client_id = client_id;
	m->seq = seq;
	m->status = status;
	m->leader_hint = px_known_leader(r);
	if (value_len > 0) {
		uint8_t *dst = r->reply_arena + r->reply_arena_used;
		memcpy(dst, value, value_len);
		r->reply_arena_used += value_len;
		m->value = dst;
		m->value_len = value_len;
	}
}

void px_advance_commit(struct px_replica *r)
{
	for (;;) {
		const struct px_slot *s = px_log_get(r, r->commit_index);
		if (s == NULL || !s->chosen)
			break;
		r->commit_index++;
	}
}

static void reply_from_session(struct px_replica *r, struct px_outbox *out,
			       const struct px_session *s, uint64_t seq)
{
	px_reply(r, out, s->client_id, seq, s->status, s->reply, s->reply_len);
}

/* A read in the log: answered from the state at its place in the order,
 * with no session (it changes nothing, so it needs no deduplication). */
static void apply_read(struct px_replica *r, const struct px_batch_entry *e,
		       bool answer, struct px_outbox *out)
{
	int len = r->cfg.sm_ops->read(r->cfg.sm, e->cmd, e->len, r->reply_buf,
				      sizeof(r->reply_buf));
	if (!answer)
		return;
	uint64_t seq = e->seq & ~PX_SEQ_READ_BIT;
	if (len < 0)
		px_reply(r, out, e->client_id, seq, PX_REPLY_BAD_REQUEST, NULL, 0);
	else
		px_reply(r, out, e->client_id, seq, PX_REPLY_OK, r->reply_buf,
			 (uint32_t)len);
}

/* An OPEN: a new session, whose id is its place in the log, with no
 * request applied yet (last_seq 0). The reply goes to the nonce the client
 * sent it with, and carries the id. */
static void apply_open(struct px_replica *r, const struct px_batch_entry *e,
		       uint64_t slot, uint32_t index, bool answer,
		       struct px_outbox *out)
{
	uint64_t id = px_session_id_make(slot, index);
	struct px_session *s = px_session_insert(&r->sessions, id, slot);
	PX_ASSERT(s->last_seq == 0 && s->reply_len == 0);
	s->status = PX_REPLY_OK;
	r->stats.sessions_opened++;
	if (!answer)
		return;
	uint8_t reply[PX_SESSION_ID_BYTES];
	px_put_u64(reply, id);
	px_reply(r, out, e->client_id, e->seq & ~PX_SEQ_OPEN_BIT, PX_REPLY_OK,
		 reply, sizeof(reply));
}

/* The session of a write, or NULL when the replicas hold none: it was
 * evicted, or never opened (ids come only from OPENs in the log), and the
 * write must not be applied (session.c explains why). */
static struct px_session *write_session(struct px_replica *r,
					const struct px_batch_entry *e,
					uint64_t slot)
{
	struct px_session *s = px_session_find(&r->sessions, e->client_id);
	if (s != NULL)
		return s;
	/* Planted bug (tests only): the rule before sessions were opened
	 * through the log, under which a client's first request started its
	 * session; a retry of it after an eviction is applied again. */
	if (PX_PLANTED(SESSION_FIRST_SEQ) && e->seq == 1)
		return px_session_insert(&r->sessions, e->client_id, slot);
	return NULL;
}

static void apply_write(struct px_replica *r, const struct px_batch_entry *e,
			uint64_t slot, bool answer, struct px_outbox *out)
{
	struct px_session *s = write_session(r, e, slot);
	if (s == NULL) {
		r->stats.requests_expired++;
		if (answer)
			px_reply(r, out, e->client_id, e->seq, PX_REPLY_EXPIRED,
				 NULL, 0);
		return;
	}
	if (e->seq <= s->last_seq) {
		r->stats.requests_deduplicated++;
		if (!answer)
			return;
		if (e->seq == s->last_seq)
			reply_from_session(r, out, s, e->seq);
		else
			px_reply(r, out, e->client_id, e->seq, PX_REPLY_STALE,
				 NULL, 0);
		return;
	}
	int len = r->cfg.sm_ops->apply(r->cfg.sm, e->cmd, e->len, r->reply_buf,
				       sizeof(r->reply_buf));
	PX_ASSERT(len >= 0 && (uint32_t)len <= PX_REPLY_BYTES_MAX);
	s->last_seq = e->seq;
	s->last_slot = slot;
	s->status = PX_REPLY_OK;
	s->reply_len = (uint16_t)len;
	memcpy(s->reply, r->reply_buf, (size_t)len);
	r->stats.requests_applied++;
	if (answer)
		reply_from_session(r, out, s, e->seq);
}

/* Applies one request of a chosen batch, the index-th. Every replica takes
 * the same branches in the same order, so the state and sessions stay
 * identical; only the leader answers the client. */
static void apply_request(struct px_replica *r, const struct px_batch_entry *e,
			  uint64_t slot, uint32_t index, bool answer,
			  struct px_outbox *out)
{
	if (e->seq & PX_SEQ_READ_BIT)
		apply_read(r, e, answer, out);
	else if (e->client_id == PX_CONFIG_CLIENT_ID)
		px_config_applied(r, slot, e);
	else if (e->seq & PX_SEQ_OPEN_BIT)
		apply_open(r, e, slot, index, answer, out);
	else
		apply_write(r, e, slot, answer, out);
}

static void apply_slot(struct px_replica *r, const struct px_slot *s,
		       struct px_outbox *out)
{
	bool answer = r->role == PX_ROLE_LEADER;
	struct px_batch_iter it;
	struct px_batch_entry e;
	px_batch_iter_init(&it, s->value, s->value_len);
	/* A malformed batch is skipped from the bad entry on, identically on
	 * every replica (they hold the same bytes). */
	for (uint32_t index = 0; px_batch_next(&it, &e) == 1; index++)
		apply_request(r, &e, s->slot, index, answer, out);
	r->stats.slots_committed++;
}

static bool room_for_slot(const struct px_replica *r,
			  const struct px_outbox *out)
{
	if (r->role != PX_ROLE_LEADER)
		return true;
	uint32_t need = r->cfg.batch_requests_max;
	return px_out_room(out) >= need + 2 * PX_REPLICAS_MAX &&
	       r->reply_arena_cap - r->reply_arena_used >=
		       (uint64_t)need * PX_REPLY_BYTES_MAX;
}

/* Whether apply_request would hand this entry to the state machine: a
 * read or a write, not an OPEN or a configuration change. */
static bool reaches_sm(const struct px_batch_entry *e)
{
	if (e->seq & PX_SEQ_READ_BIT)
		return true;
	return e->client_id != PX_CONFIG_CLIENT_ID &&
	       !(e->seq & PX_SEQ_OPEN_BIT);
}

/* Collects the state machine commands of one committed slot into
 * cmds/lens from *n on. Returns false, with *n back where it was, when
 * they do not all fit, unless `partial` allows taking those that do. */
static bool collect_slot(const struct px_slot *s, const uint8_t **cmds,
			 uint32_t *lens, uint32_t *n, bool partial)
{
	uint32_t start = *n;
	struct px_batch_iter it;
	struct px_batch_entry e;
	px_batch_iter_init(&it, s->value, s->value_len);
	while (px_batch_next(&it, &e) == 1) {
		if (!reaches_sm(&e))
			continue;
		if (*n == BPX_SM_PREFETCH_MAX) {
			if (!partial)
				*n = start;
			return partial;
		}
		cmds[*n] = e.cmd;
		lens[*n] = e.len;
		(*n)++;
	}
	return true;
}

/* Hands the state machine's prefetch hint the commands of the committed
 * slots from `from` on, as many whole slots as BPX_SM_PREFETCH_MAX commands
 * allow (or the first slot's first BPX_SM_PREFETCH_MAX), so that the cache
 * misses of a run of applies overlap. Returns the first slot not handed.
 * It reads the log only: state, replies and order are apply's alone. */
static uint64_t prefetch_committed(struct px_replica *r, uint64_t from)
{
	const uint8_t *cmds[BPX_SM_PREFETCH_MAX];
	uint32_t lens[BPX_SM_PREFETCH_MAX];
	uint32_t n = 0;
	uint64_t slot = from;
	while (slot < r->commit_index) {
		const struct px_slot *s = px_log_get(r, slot);
		PX_ASSERT(s != NULL && s->chosen);
		if (!collect_slot(s, cmds, lens, &n, slot == from))
			break;
		slot++;
	}
	if (n > 0)
		r->cfg.sm_ops->prefetch(r->cfg.sm, cmds, lens, n);
	return slot;
}

void px_apply_committed(struct px_replica *r, struct px_outbox *out)
{
	bool hinted = r->cfg.sm_ops->prefetch != NULL;
	uint64_t prefetched_to = r->applied_index;
	px_persist_commit(r, out);
	while (r->applied_index < r->commit_index && room_for_slot(r, out)) {
		if (hinted && r->applied_index >= prefetched_to)
			prefetched_to = prefetch_committed(r, r->applied_index);
		const struct px_slot *s = px_log_get(r, r->applied_index);
		PX_ASSERT(s != NULL && s->chosen);
		apply_slot(r, s, out);
		r->applied_index++;
	}
}
