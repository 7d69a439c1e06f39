/* The acceptor and the follower side of the learner: PREPARE, ACCEPT,
 * COMMIT and CHOSEN. */
#include "internal.h"

static void send_nack(struct px_replica *r, struct px_outbox *out, uint8_t to)
{
	struct px_msg *n = px_out_to(r, out, PX_MSG_NACK, to);
	if (n != NULL)
		n->ballot = r->promised;
	px_drop(r, PX_DROP_STALE_BALLOT);
}

/* A higher ballot from elsewhere ends our own leadership: our ballot can no
 * longer be accepted by this acceptor (ourselves). */
static void yield_to(struct px_replica *r, uint64_t now_ns, uint64_t ballot,
		     struct px_outbox *out)
{
	if ((r->role == PX_ROLE_CANDIDATE || r->role == PX_ROLE_LEADER) &&
	    ballot > r->ballot)
		px_become_follower(r, now_ns, out);
}

static uint64_t count_reportable(struct px_replica *r, uint64_t from)
{
	uint64_t count = 0;
	for (uint64_t s = from; s < r->accepted_end; s++) {
		const struct px_slot *slot = px_log_get(r, s);
		if (slot != NULL && slot->accepted_ballot != 0)
			count++;
	}
	return count;
}

static void fill_promise(const struct px_replica *r, struct px_msg *p,
			 const struct px_msg *prepare, uint64_t from,
			 uint64_t count)
{
	p->ballot = prepare->ballot;
	p->flags = prepare->flags;
	p->slot_end = r->accepted_end > from ? r->accepted_end : from;
	p->slot = p->slot_end;
	p->log_start = r->log_start;
	/* Entries in this promise, so the leader knows when it has all of
	 * them; above them the echo of a recovery round's nonce. */
	p->seq = count | (prepare->seq & 0xffffffffu) << 32;
	px_cv_fill(r, p->crash_vector);
	/* To a recovery round: what we knew of the recovering replica before
	 * its life (this nonce) first asked us, not what it told us since. */
	if (prepare->flags & PX_FLAG_RECOVERY)
		px_cv_set(p->crash_vector, prepare->from,
			  r->asked_knew[prepare->from]);
}

/* Phase 1b: send every accepted (ballot, value) from `from` on, one message
 * per slot; an empty promise is one message with slot == slot_end. */
static void send_promise(struct px_replica *r, const struct px_msg *prepare,
			 struct px_outbox *out)
{
	uint64_t from = prepare->slot > r->log_start ? prepare->slot
						      : r->log_start;
	uint64_t count = count_reportable(r, from);
	if (count == 0) {
		struct px_msg *p = px_out_to(r, out, PX_MSG_PROMISE,
					     prepare->from);
		if (p != NULL)
			fill_promise(r, p, prepare, from, 0);
		return;
	}
	for (uint64_t s = from; s < r->accepted_end; s++) {
		const struct px_slot *slot = px_log_get(r, s);
		if (slot == NULL || slot->accepted_ballot == 0)
			continue;
		struct px_msg *p = px_out_to(r, out, PX_MSG_PROMISE,
					     prepare->from);
		if (p == NULL)
			return; /* the leader asks again */
		fill_promise(r, p, prepare, from, count);
		p->slot = s;
		p->accepted_ballot = slot->accepted_ballot;
		p->value = slot->value;
		p->value_len = slot->value_len;
	}
}

int px_on_prepare(struct px_replica *r, uint64_t now_ns,
		  const struct px_msg *m, struct px_outbox *out)
{
	/* A replica that lost its memory does not vote (DESIGN.md). */
	if (r->role == PX_ROLE_RECOVERING) {
		px_drop(r, PX_DROP_WRONG_ROLE);
		return 0;
	}
	/* A PREPARE from a life of its sender that has since crashed:
	 * promising it would depose the living for a ghost. A recovery
	 * round is exempt: the incarnation it announces may be too low, and
	 * our answer is how it finds out. */
	if (!(m->flags & PX_FLAG_RECOVERY) &&
	    px_ballot_incarnation(m->ballot) < r->incarnation[m->from]) {
		px_drop(r, PX_DROP_STALE_INCARNATION);
		return 0;
	}
	px_note_ballot(r, m->ballot);
	/* Lease: while the leader we heard last may serve reads on our
	 * promise, no other candidate gets one (it retries, and succeeds
	 * once the lease has run out). */
	/* A recovery round is exempt: its ballot never proposes, and the
	 * leader, refused by the promise, takes a higher ballot of its own,
	 * which this lease admits. In every role: a candidate that granted
	 * a lease gives no promise against it either (issue 8, hole 2). */
	if (r->lease_holder != PX_REPLICA_NONE && now_ns < r->lease_until_ns &&
	    px_ballot_owner(m->ballot) != r->lease_holder &&
	    !(m->flags & PX_FLAG_RECOVERY) &&
	    !PX_PLANTED(LEASE_NOT_REFUSED)) {
		px_drop(r, PX_DROP_LEASE_HELD);
		return 0;
	}
	/* Phase 1b: an acceptor promises only a ballot at least as high as
	 * every promise it has made (equal: a retransmitted PREPARE). */
	if (m->ballot < r->promised || px_ballot_owner(m->ballot) != m->from) {
		send_nack(r, out, m->from);
		return 0;
	}
	r->promised = m->ballot;
	yield_to(r, now_ns, m->ballot, out);
	/* The promise tells what we knew of the sender's incarnation before
	 * its life's recovery first asked; then we learn the one its ballot
	 * announces. A recovering replica learns from the first whether its
	 * announced incarnation is new; the second is what makes promises of
	 * its earlier lives recognisable to every proposer we answer later. */
	if ((m->flags & PX_FLAG_RECOVERY) && m->seq != r->asked_nonce[m->from]) {
		r->asked_nonce[m->from] = m->seq;
		r->asked_knew[m->from] = r->incarnation[m->from];
	}
	/* Durable: the promise is on disk before anyone hears of it. No
	 * room for its record means no room for the PROMISE either. */
	if (px_persist_promise(r, out))
		send_promise(r, m, out);
	px_cv_learn(r, m->from, px_ballot_incarnation(m->ballot));
	return 0;
}

static void send_accepted(struct px_replica *r, const struct px_msg *m,
			  struct px_outbox *out)
{
	struct px_msg *a = px_out_to(r, out, PX_MSG_ACCEPTED, m->from);
	if (a == NULL)
		return;
	a->ballot = m->ballot;
	a->slot = m->slot;
	a->commit_index = r->commit_index;
	a->applied_index = r->applied_index;
	a->log_start = r->log_start;
	px_cv_fill(r, a->crash_vector);
}

/* Stores (ballot, value) in a slot. A chosen slot keeps its value: the same
 * value is re-accepted at the higher ballot; a different one is refused. */
static bool accept_value(struct px_replica *r, struct px_slot *s,
			 const struct px_msg *m)
{
	if (s->chosen) {
		if (!px_value_equal(s->value, s->value_len, m->value,
				    m->value_len))
			return false;
	} else {
		px_value_copy(s->value, m->value, m->value_len);
		s->value_len = m->value_len;
	}
	s->accepted_ballot = m->ballot;
	if (r->accepted_end <= s->slot)
		r->accepted_end = s->slot + 1;
	return true;
}

/* Messages only a leader sends (ACCEPT, COMMIT): a recovering replica
 * ignores them, a stale ballot gets a NACK. Returns true to go on. */
static bool from_current_leader(struct px_replica *r, const struct px_msg *m,
				struct px_outbox *out)
{
	if (r->role == PX_ROLE_RECOVERING) {
		px_drop(r, PX_DROP_WRONG_ROLE);
		return false;
	}
	px_note_ballot(r, m->ballot);
	if (PX_PLANTED(ACCEPT_LOWER_BALLOT) && px_ballot_owner(m->ballot) == m->from)
		return true; /* planted: no check against the promise */
	if (m->ballot < r->promised || px_ballot_owner(m->ballot) != m->from) {
		send_nack(r, out, m->from);
		return false;
	}
	return true;
}

int px_on_accept(struct px_replica *r, uint64_t now_ns, const struct px_msg *m,
		 struct px_outbox *out)
{
	/* What the leader knows of incarnations travels with the values it
	 * proposes, so that whoever holds a value chosen after a recovery
	 * knows of it too (recovery.c, "Why g is new"). */
	px_cv_merge(r, m->crash_vector);
	/* Phase 2b: accept unless a higher ballot was promised. */
	if (!from_current_leader(r, m, out))
		return 0;
	r->promised = m->ballot;
	(void)px_persist_promise(r, out);
	yield_to(r, now_ns, m->ballot, out);
	r->known_leader = m->from;
	/* Durable: room for the value's record and the ACCEPTED after it,
	 * or nothing changes (the leader retransmits). */
	if (!px_persist_room(r, out, 2))
		return 0;
	struct px_slot *s = px_log_claim(r, m->slot);
	uint64_t was = s != NULL ? s->accepted_ballot : 0;
	if (s == NULL || !accept_value(r, s, m)) {
		px_drop(r, PX_DROP_OUT_OF_WINDOW);
		return 0;
	}
	/* One ballot carries one value per slot: a retransmitted ACCEPT
	 * changes nothing the records do not hold already. */
	if (was != m->ballot)
		px_persist_accepted(r, s, out);
	px_learn_commit(r, m->ballot, m->commit_index);
	px_apply_committed(r, out);
	send_accepted(r, m, out);
	return 0;
}

/* The leader of `ballot` says every slot below commit_index is chosen. A
 * slot we accepted at that very ballot holds the leader's proposal, which
 * is the chosen value; other slots wait for CHOSEN. */
void px_learn_commit(struct px_replica *r, uint64_t ballot,
		     uint64_t commit_index)
{
	uint64_t end = r->log_start + r->cfg.log_slots;
	if (commit_index < end)
		end = commit_index;
	for (uint64_t i = r->commit_index; i < end; i++) {
		struct px_slot *s = px_log_get(r, i);
		if (s != NULL && !s->chosen && s->accepted_ballot == ballot)
			s->chosen = true;
	}
	px_advance_commit(r);
}

int px_on_commit(struct px_replica *r, uint64_t now_ns, const struct px_msg *m,
		 struct px_outbox *out)
{
	px_cv_merge(r, m->crash_vector);
	if (!from_current_leader(r, m, out))
		return 0;
	/* The acknowledgement below grants a lease, which is a promise: no
	 * lower ballot may be accepted after it, or the leader's older rival
	 * could still get a write chosen with our vote while the lease holder
	 * answers reads without it (issue 8, hole 3). */
	if (!PX_PLANTED(LEASE_NEW_CONFIG))
		r->promised = m->ballot;
	/* Durable: before the STATUS that grants the lease. */
	(void)px_persist_promise(r, out);
	yield_to(r, now_ns, m->ballot, out);
	r->known_leader = m->from;
	/* The lease promise: the STATUS below echoes the heartbeat's send
	 * time, which the leader's lease counts from. Only to the leader the
	 * control plane names (or when it names none): renewing it for
	 * another would keep this replica, told to lead, from ever running
	 * while that leader, which may no longer hear anyone, goes on
	 * sending heartbeats over a one-way link. Not renewing is always
	 * safe; the leader then reads through the log. */
	bool grant = r->cfg.lease_ns > 0 &&
		     (r->leader_hint == PX_REPLICA_NONE ||
		      r->leader_hint == m->from);
	if (grant) {
		r->lease_holder = m->from;
		r->lease_until_ns = now_ns + r->cfg.lease_ns;
	}
	px_learn_commit(r, m->ballot, m->commit_index);
	px_apply_committed(r, out);
	struct px_msg *st = px_out_to(r, out, PX_MSG_STATUS, m->from);
	if (st != NULL) {
		st->seq = grant ? m->seq : 0; /* 0: counts for no lease */
		st->ballot = m->ballot;
		st->commit_index = r->commit_index;
		st->applied_index = r->applied_index;
		st->log_start = r->log_start;
	}
	return 0;
}

/* Catch-up from the leader: a value known to be chosen. Keeping it under
 * the ballot this acceptor had (or ballot 1 if none) is safe: any report of
 * a chosen value is consistent with every later proposal. */
int px_on_chosen(struct px_replica *r, uint64_t now_ns, const struct px_msg *m,
		 struct px_outbox *out)
{
	(void)now_ns;
	px_cv_merge(r, m->crash_vector);
	if (r->role == PX_ROLE_RECOVERING) {
		px_drop(r, PX_DROP_WRONG_ROLE);
		return 0;
	}
	if (m->slot < r->commit_index)
		return 0;
	struct px_slot *s = px_log_claim(r, m->slot);
	if (s == NULL) {
		px_drop(r, PX_DROP_OUT_OF_WINDOW);
		return 0;
	}
	if (!s->chosen) {
		/* Durable: the value it now reports is recorded first. */
		if (!px_persist_room(r, out, 1))
			return 0;
		px_value_copy(s->value, m->value, m->value_len);
		s->value_len = m->value_len;
		s->chosen = true;
		if (s->accepted_ballot == 0)
			s->accepted_ballot = 1;
		if (r->accepted_end <= s->slot)
			r->accepted_end = s->slot + 1;
		px_persist_accepted(r, s, out);
	}
	px_advance_commit(r);
	px_apply_committed(r, out);
	return 0;
}
