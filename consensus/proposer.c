/* The proposer (leader): phase 1 over every open slot, pipelined and
 * batched phase 2, retransmission, heartbeats and follower catch-up. */
#include "internal.h"

static uint8_t self_bit(const struct px_replica *r)
{
	return (uint8_t)(1u << r->cfg.self_id);
}

static uint64_t *seen_bits_of(struct px_replica *r, uint8_t replica)
{
	return r->p1.seen_bits +
	       (size_t)replica * (r->cfg.log_slots / PX_WORD_BITS);
}

void px_forget_votes(struct px_replica *r, uint8_t id)
{
	PX_ASSERT(id < r->cfg.replica_count && id != r->cfg.self_id);
	uint8_t bit = (uint8_t)(1u << id);
	struct px_phase1 *p = &r->p1;
	p->complete_mask &= (uint8_t)~bit;
	p->entries_seen[id] = 0;
	p->entries_expected[id] = 0;
	memset(seen_bits_of(r, id), 0,
	       (r->cfg.log_slots / PX_WORD_BITS) * sizeof(uint64_t));
	r->peers[id].lease_ack_ns = 0;
	if (r->role != PX_ROLE_LEADER)
		return;
	for (uint64_t i = r->commit_index; i < r->next_slot; i++) {
		struct px_slot *s = px_log_get(r, i);
		if (s != NULL && !s->chosen && s->proposed_ballot == r->ballot)
			s->ack_mask &= (uint8_t)~bit;
	}
}

static void phase1_reset(struct px_replica *r, uint64_t ballot, uint64_t from)
{
	struct px_phase1 *p = &r->p1;
	uint64_t *bits = p->seen_bits;
	memset(p, 0, sizeof(*p));
	p->seen_bits = bits;
	memset(bits, 0, (size_t)r->cfg.replica_count *
				(r->cfg.log_slots / PX_WORD_BITS) *
				sizeof(uint64_t));
	p->ballot = ballot;
	p->from = from;
	p->end = r->accepted_end > from ? r->accepted_end : from;
}

void px_broadcast_prepare(struct px_replica *r, uint64_t now_ns,
			  struct px_outbox *out)
{
	for (uint8_t i = 0; i < r->cfg.replica_count; i++) {
		if (i == r->cfg.self_id || (r->p1.complete_mask & (1u << i)))
			continue;
		struct px_msg *m = px_out_to(r, out, PX_MSG_PREPARE, i);
		if (m == NULL)
			return;
		m->ballot = r->p1.ballot;
		m->slot = r->p1.from;
		/* Echoed by the PROMISEs: a recovery round's nonce, else the
		 * first slot asked about, which tells answers to this
		 * PREPARE from answers to one before a rebase. */
		m->seq = r->p1.from;
		if (r->role == PX_ROLE_RECOVERING) {
			m->flags = PX_FLAG_RECOVERY;
			m->seq = r->recovery_nonce;
		}
	}
	r->p1.sent_ns = now_ns;
}

static uint64_t next_ballot(const struct px_replica *r)
{
	uint64_t top = r->highest_seen > r->promised ? r->highest_seen
						     : r->promised;
	return px_ballot_make_inc(px_ballot_round(top) + 1,
				  px_own_incarnation(r), r->cfg.self_id);
}

static void finish_phase1(struct px_replica *r, uint64_t now_ns,
			  struct px_outbox *out);

/* Its own vote is a promise like any other: a replica that promised the
 * leader it heard last no other candidate until lease_until_ns (a lease
 * that leader may be serving reads under) must not become that other
 * candidate itself. Otherwise it could lead, commit a write with an
 * acceptor whose own promise had lapsed, and the old leader, still holding
 * a lease this replica's acknowledgements granted, would answer reads from
 * the state before that write (issue 8, hole 2). The same covers a replica
 * just back from a crash: recovery.c makes it promise "anyone else" for
 * one lease, which keeps it from leading for that long too. */
bool px_may_start_election(const struct px_replica *r, uint64_t now_ns)
{
	if (r->role != PX_ROLE_FOLLOWER || now_ns < r->next_election_ns)
		return false;
	if (PX_PLANTED(LEASE_OWN_PROMISE))
		return true;
	PX_ASSERT(r->lease_holder != r->cfg.self_id);
	return r->lease_holder == PX_REPLICA_NONE || now_ns >= r->lease_until_ns;
}

void px_start_phase1(struct px_replica *r, uint64_t now_ns,
		     struct px_outbox *out)
{
	PX_ASSERT(r->role == PX_ROLE_FOLLOWER);
	r->ballot = next_ballot(r);
	r->promised = r->ballot; /* our own promise, as an acceptor */
	/* Durable: recorded before the PREPAREs, so that a restart never
	 * runs this ballot again (with other values). */
	(void)px_persist_promise(r, out);
	px_note_ballot(r, r->ballot);
	r->role = PX_ROLE_CANDIDATE;
	r->stats.elections_started++;
	/* From the applied index: the configuration of every slot we may
	 * propose is then known (membership.c). */
	phase1_reset(r, r->ballot, r->applied_index);
	r->p1.complete_mask = self_bit(r);
	if (px_quorum(r->p1.complete_mask, px_config_at(r, r->p1.from))) {
		finish_phase1(r, now_ns, out);
		return;
	}
	px_broadcast_prepare(r, now_ns, out);
}

/* Phase 1 merge: keep, per slot, the value of the highest ballot reported.
 * Storing it as this replica's own accepted value only ever raises the
 * ballot it reports, for a value that really was proposed at that ballot:
 * later leaders still pick the chosen value. */
static bool phase1_merge(struct px_replica *r, const struct px_msg *m,
			 struct px_outbox *out)
{
	struct px_slot *s = px_log_claim(r, m->slot);
	if (s == NULL)
		return false; /* no room yet: the retransmitted prepare asks again */
	if (!s->chosen && m->accepted_ballot > s->accepted_ballot) {
		/* Durable: recorded like any change of the slot, so that the
		 * records rebuild the log as it was (persist.c). */
		if (!px_persist_room(r, out, 1))
			return false;
		px_value_copy(s->value, m->value, m->value_len);
		s->value_len = m->value_len;
		s->accepted_ballot = m->accepted_ballot;
		px_persist_accepted(r, s, out);
	}
	if (r->accepted_end <= m->slot)
		r->accepted_end = m->slot + 1;
	return true;
}

/* Records one promise message. Returns true if the sender's report is now
 * complete. */
bool px_phase1_record(struct px_replica *r, const struct px_msg *m,
		      struct px_outbox *out)
{
	struct px_phase1 *p = &r->p1;
	uint8_t bit = (uint8_t)(1u << m->from);
	uint64_t entries = px_promise_entries(m);
	if (m->slot_end < p->from || m->slot_end - p->from > r->cfg.log_slots ||
	    entries > r->cfg.log_slots) {
		px_drop(r, PX_DROP_MALFORMED);
		return false;
	}
	/* An answer to a PREPARE from before a rebase (rebase_phase1) counts
	 * its entries from another slot: not ours to count. */
	if (r->role != PX_ROLE_RECOVERING &&
	    m->seq >> 32 != (p->from & 0xffffffffu)) {
		px_drop(r, PX_DROP_STALE_BALLOT);
		return false;
	}
	/* An acceptor that answers the same PREPARE again reports at least
	 * what it reported before (what it accepted stays, catch-up only
	 * adds), so the largest count is the one to wait for: answers arrive
	 * out of order, and taking an older answer's smaller count as the
	 * goal would call the report complete with an entry of the newer one
	 * still missing (sim seed 19937 at 5 replicas: a chosen value was
	 * re-proposed as a no-op). */
	if (entries > p->entries_expected[m->from])
		p->entries_expected[m->from] = entries;
	if (m->slot < m->slot_end) {
		if (m->slot < p->from) { /* answers an older PREPARE */
			px_drop(r, PX_DROP_STALE_BALLOT);
			return false;
		}
		if (m->accepted_ballot == 0) {
			px_drop(r, PX_DROP_MALFORMED);
			return false;
		}
		uint64_t idx = m->slot - p->from;
		uint64_t *bits = seen_bits_of(r, m->from);
		uint64_t mask = 1ull << (idx % PX_WORD_BITS);
		if (!(bits[idx / PX_WORD_BITS] & mask) &&
		    phase1_merge(r, m, out)) {
			bits[idx / PX_WORD_BITS] |= mask;
			p->entries_seen[m->from]++;
		}
	}
	if (p->entries_seen[m->from] < p->entries_expected[m->from])
		return false;
	p->complete_mask |= bit;
	if (m->slot_end > p->end)
		p->end = m->slot_end;
	return true;
}

int px_on_promise(struct px_replica *r, uint64_t now_ns,
		  const struct px_msg *m, struct px_outbox *out)
{
	/* A promise made before its sender crashed binds nobody: the sender
	 * forgot it (recovery.c). */
	if (px_cv_merge_is_stale(r, m))
		return 0;
	if (r->role == PX_ROLE_LEADER && m->ballot == r->ballot) {
		/* A late promise: it lets us propose where a configuration
		 * needs this replica's vote; reported values merge into slots
		 * not proposed yet (ours outrank the rest). */
		/* Slots below the acceptor's log start are applied there,
		 * so chosen; below our applied index we know them too and
		 * never propose there: its report covers the rest. */
		if (m->log_start > r->applied_index) {
			/* It applied chosen slots we have not, and may be
			 * the vote a configuration needs to let us propose
			 * them at all: catch up from its snapshot (installing
			 * it ends our term, and we run again from there).
			 * Ignoring it left a leader behind its followers
			 * for ever (sim seed 60096325 at 5 replicas). */
			if (now_ns >= r->snapshot_asked_ns +
					      8 * r->cfg.retransmit_ns) {
				r->snapshot_asked_ns = now_ns;
				px_out_to(r, out, PX_MSG_SNAPSHOT_REQ, m->from);
			}
			return 0;
		}
		if (px_phase1_record(r, m, out) && r->p1.end > r->repropose_end)
			r->repropose_end = r->p1.end;
		return 0;
	}
	if (r->role != PX_ROLE_CANDIDATE || m->ballot != r->ballot) {
		px_drop(r, PX_DROP_STALE_BALLOT);
		return 0;
	}
	if (m->log_start > r->p1.from) {
		/* That acceptor already dropped chosen slots we lack: catch up
		 * from its snapshot first, then try again. */
		px_out_to(r, out, PX_MSG_SNAPSHOT_REQ, m->from);
		px_become_follower(r, now_ns, out);
		return 0;
	}
	px_phase1_record(r, m, out);
	if (px_quorum(r->p1.complete_mask, px_config_at(r, r->p1.from)))
		finish_phase1(r, now_ns, out);
	return 0;
}

static void finish_phase1(struct px_replica *r, uint64_t now_ns,
			  struct px_outbox *out)
{
	r->role = PX_ROLE_LEADER;
	r->known_leader = r->cfg.self_id;
	r->stats.leader_changes++;
	r->next_slot = r->p1.from; /* chosen slots on the way are skipped */
	r->repropose_end = r->p1.end > r->next_slot ? r->p1.end : r->next_slot;
	r->heartbeat_ns = now_ns;
	r->commit_sent = 0;
	r->term_start_ns = now_ns;
	memset(r->peers, 0, sizeof(r->peers));
	px_propose_queued(r, now_ns, out);
}

int px_on_nack(struct px_replica *r, uint64_t now_ns, const struct px_msg *m,
	       struct px_outbox *out)
{
	px_note_ballot(r, m->ballot);
	if (r->role == PX_ROLE_RECOVERING) {
		px_recovery_on_nack(r, now_ns, m, out);
		return 0;
	}
	if ((r->role == PX_ROLE_CANDIDATE || r->role == PX_ROLE_LEADER) &&
	    m->ballot > r->ballot)
		px_become_follower(r, now_ns, out);
	return 0;
}

/* ---- Phase 2 ---- */

static void send_accepts(struct px_replica *r, const struct px_slot *s,
			 struct px_outbox *out)
{
	uint64_t cv[2];
	px_cv_fill(r, cv); /* once: the same for every follower */
	for (uint8_t i = 0; i < r->cfg.replica_count; i++) {
		if (s->ack_mask & (1u << i))
			continue;
		struct px_msg *m = px_out_to(r, out, PX_MSG_ACCEPT, i);
		if (m == NULL)
			return;
		m->ballot = r->ballot;
		m->slot = s->slot;
		m->commit_index = r->commit_index;
		m->crash_vector[0] = cv[0];
		m->crash_vector[1] = cv[1];
		m->value = s->value;
		m->value_len = s->value_len;
	}
}

/* Phase 2a for one slot whose value is already in place. The leader accepts
 * its own proposal first (it promised its own ballot). */
static void propose_slot(struct px_replica *r, uint64_t now_ns,
			 struct px_slot *s, struct px_outbox *out)
{
	s->accepted_ballot = r->ballot;
	s->proposed_ballot = r->ballot;
	/* Durable: its own vote is on disk before it counts, or anyone
	 * hears of the value (window_open left room for the record). */
	px_persist_accepted(r, s, out);
	s->ack_mask = self_bit(r);
	s->sent_ns = now_ns;
	if (r->accepted_end <= s->slot)
		r->accepted_end = s->slot + 1;
	r->next_slot = s->slot + 1;
	r->stats.slots_proposed++;
	if (px_quorum(s->ack_mask, px_config_at(r, s->slot))) {
		s->chosen = true;
		px_advance_commit(r);
		px_apply_committed(r, out);
	}
	send_accepts(r, s, out);
}

static void fill_batch(struct px_replica *r, struct px_slot *s)
{
	uint32_t len = 0, count = 0;
	while (r->queue_count > 0 && count < r->cfg.batch_requests_max) {
		const struct px_pending *p = &r->queue[r->queue_head];
		uint32_t next = px_batch_append(s->value, len,
						r->cfg.batch_bytes_max, p);
		if (next == len)
			break;
		len = next;
		count++;
		r->queue_head = (r->queue_head + 1) % r->cfg.request_queue_max;
		r->queue_count--;
	}
	PX_ASSERT(count > 0);
	s->value_len = len;
	r->stats.batch_requests_total += count;
}

/* At most window_slots in flight past the applied index: that window is
 * also alpha, so the configuration of next_slot is known; and we need
 * promises from a majority of that configuration. */
static bool window_open(const struct px_replica *r, const struct px_outbox *out)
{
	return r->next_slot < r->applied_index + r->cfg.window_slots &&
	       px_quorum(r->p1.complete_mask, px_config_at(r, r->next_slot)) &&
	       px_out_room(out) >= 2u * r->cfg.replica_count;
}

/* Proposes as many slots as the window allows: first the slots phase 1
 * recovered (their merged value, or a no-op for a hole), then batches of
 * queued requests. Whatever is queued when a slot opens goes into it, so
 * batches grow with load and a lone request waits for nothing. */
void px_propose_queued(struct px_replica *r, uint64_t now_ns,
		       struct px_outbox *out)
{
	if (r->role != PX_ROLE_LEADER)
		return;
	uint64_t proposed_before = r->stats.slots_proposed;
	while (window_open(r, out)) {
		bool recovered = r->next_slot < r->repropose_end;
		if (!recovered && r->queue_count == 0)
			break;
		struct px_slot *s = px_log_claim(r, r->next_slot);
		if (s == NULL)
			break; /* ring full of unapplied slots */
		if (s->chosen) {
			r->next_slot++;
			continue;
		}
		if (!recovered)
			fill_batch(r, s);
		else if (s->accepted_ballot == 0) {
			s->value_len = 0; /* a hole: fill it with a no-op */
			r->stats.noops_proposed++;
		}
		propose_slot(r, now_ns, s, out);
	}
	/* Nothing proposed and nothing waiting: no ACCEPT will carry the new
	 * commit index soon, so a heartbeat must. */
	bool idle = r->stats.slots_proposed == proposed_before &&
		    r->queue_count == 0;
	if (idle && r->commit_sent < r->commit_index)
		r->heartbeat_ns = now_ns; /* tell followers soon */
}

/* A change chosen at slot i is in force from slot i + alpha on
 * (membership.c), and stays pending until every slot before that is
 * applied: no lease meanwhile, and no next change. Under load requests fill
 * those slots; on an idle cluster nothing would, and the change would never
 * finish (issue 9). So on a tick with nothing queued the leader proposes
 * no-ops, and only up to the slot the change takes effect at: at most
 * alpha - 1 of them per change, never one past it. It runs from the tick,
 * after px_propose_queued, so that requests that came meanwhile take those
 * slots first. Safe as any no-op is: these slots are past repropose_end,
 * where phase 1 found no value that may have been chosen. */
static void fill_config_window(struct px_replica *r, uint64_t now_ns,
			       struct px_outbox *out)
{
	const uint64_t effective_slot =
		r->history[r->history_count - 1].effective_slot;
	while (r->queue_count == 0 && r->next_slot >= r->repropose_end &&
	       r->next_slot < effective_slot && window_open(r, out)) {
		struct px_slot *s = px_log_claim(r, r->next_slot);
		if (s == NULL)
			return; /* ring full of unapplied slots */
		if (s->chosen) {
			r->next_slot++;
			continue;
		}
		s->value_len = 0;
		r->stats.noops_proposed++;
		propose_slot(r, now_ns, s, out);
	}
}

void px_flush(struct px_replica *r, uint64_t now_ns, struct px_outbox *out)
{
	px_begin_call(r);
	px_persist_begin(r, now_ns, out);
	px_apply_committed(r, out);
	px_propose_queued(r, now_ns, out);
}

int px_on_accepted(struct px_replica *r, uint64_t now_ns,
		   const struct px_msg *m, struct px_outbox *out)
{
	(void)now_ns;
	/* Likewise an acceptance: the sender's state that held it is gone,
	 * and its recovery fence may not have seen it (recovery.c). */
	if (px_cv_merge_is_stale(r, m))
		return 0;
	struct px_peer *peer = &r->peers[m->from];
	peer->commit_index = m->commit_index;
	peer->applied_index = m->applied_index;
	peer->log_start = m->log_start;
	if (r->role != PX_ROLE_LEADER || m->ballot != r->ballot) {
		px_drop(r, PX_DROP_STALE_BALLOT);
		return 0;
	}
	struct px_slot *s = px_log_get(r, m->slot);
	if (s == NULL || s->proposed_ballot != r->ballot || s->chosen)
		return 0;
	s->ack_mask |= (uint8_t)(1u << m->from);
	/* Chosen: a majority of the slot's configuration accepted this
	 * ballot's value. */
	if (px_quorum(s->ack_mask, px_config_at(r, s->slot))) {
		s->chosen = true;
		px_advance_commit(r);
		px_apply_committed(r, out);
	}
	return 0;
}

/* ---- Lease reads ---- */

/* The lease holds until the (majority-1)-th most recent heartbeat a
 * follower acknowledged, plus the lease, shortened by twice the drift
 * bound: a follower's lease starts when it received the heartbeat, after
 * we sent it, but its clock may run faster than ours. */
static uint64_t lease_expiry(const struct px_replica *r)
{
	/* The promises of a majority of the configuration in force; while a
	 * change is pending, reads go through the log instead. */
	uint8_t config = px_config_at(r, r->applied_index);
	if (px_config_pending(r) || !(config & (1u << r->cfg.self_id)))
		return 0;
	/* Phase 1 must be complete for the configuration in force: a value
	 * chosen at a slot from the applied index on was accepted by a
	 * majority of that configuration, which then meets the promises and
	 * so the re-proposals that lease_valid waits to apply. A phase 1
	 * completed against the configuration of an older slot says nothing
	 * of slots the newer one chose (issue 8, hole 3). */
	if (!px_quorum(r->p1.complete_mask, config) &&
	    !PX_PLANTED(LEASE_NEW_CONFIG))
		return 0;
	uint64_t acks[PX_REPLICAS_MAX];
	uint8_t n = 0;
	for (uint8_t i = 0; i < r->cfg.replica_count; i++)
		if (i != r->cfg.self_id && (config & (1u << i)))
			acks[n++] = r->peers[i].lease_ack_ns;
	uint8_t need = (uint8_t)(px_popcount8(config) / 2); /* + ourselves */
	if (need == 0)
		return UINT64_MAX;
	for (uint8_t i = 0; i < need; i++) /* partial selection sort, n <= 6 */
		for (uint8_t j = (uint8_t)(i + 1); j < n; j++)
			if (acks[j] > acks[i]) {
				uint64_t t = acks[i];
				acks[i] = acks[j];
				acks[j] = t;
			}
	uint64_t sent = acks[need - 1];
	if (sent == 0)
		return 0;
	uint64_t margin = r->cfg.lease_ns / 1000000u * 2u * r->cfg.clock_drift_ppm +
			  r->cfg.lease_ns % 1000000u * 2u * r->cfg.clock_drift_ppm /
				  1000000u;
	return sent + r->cfg.lease_ns - margin;
}

int px_lease_valid(const struct px_replica *r, uint64_t now_ns)
{
	/* Everything chosen before this term must be applied first: the
	 * phase 1 re-proposals end at repropose_end. */
	return r->role == PX_ROLE_LEADER && r->cfg.lease_ns > 0 &&
	       r->applied_index >= r->repropose_end &&
	       now_ns < lease_expiry(r);
}

/* ---- Requests ---- */

static void reply_status(struct px_replica *r, struct px_outbox *out,
			 const struct px_msg *m, uint8_t status);

/* Queues a request for the next batch, or says why not: too big for any
 * slot, or the queue is full (bounded memory: BUSY, never a silent drop). */
static void enqueue_or_refuse(struct px_replica *r, const struct px_msg *m,
			      uint64_t batch_seq, struct px_outbox *out)
{
	if (PX_BATCH_ENTRY_HEADER_BYTES + m->value_len > r->cfg.batch_bytes_max) {
		reply_status(r, out, m, PX_REPLY_TOO_BIG);
		return;
	}
	if (r->queue_count == r->cfg.request_queue_max) {
		r->stats.requests_busy++;
		reply_status(r, out, m, PX_REPLY_BUSY);
		return;
	}
	px_queue_push(r, m->client_id, batch_seq, m->value, m->value_len);
}

void px_queue_push(struct px_replica *r, uint64_t client_id, uint64_t seq,
		   const uint8_t *cmd, uint32_t len)
{
	PX_ASSERT(r->queue_count < r->cfg.request_queue_max &&
		  len <= PX_COMMAND_BYTES_MAX);
	uint32_t tail = (r->queue_head + r->queue_count) %
			r->cfg.request_queue_max;
	struct px_pending *p = &r->queue[tail];
	p->client_id = client_id;
	p->seq = seq;
	p->len = len;
	px_value_copy(p->cmd, cmd, len);
	r->queue_count++;
}


/* A session-less read: under the lease at once, else through the log.
 * Answering from the applied state is linearizable while the lease holds:
 * every write acknowledged so far was applied here first (replies go out
 * at apply), everything chosen in earlier terms is applied (the lease
 * requires it), and no other leader can commit a write meanwhile. */
static int on_read_request(struct px_replica *r, uint64_t now_ns,
			   const struct px_msg *m, struct px_outbox *out)
{
	int n = r->cfg.sm_ops->read(r->cfg.sm, m->value, m->value_len,
				    r->reply_buf, sizeof(r->reply_buf));
	if (n < 0) {
		reply_status(r, out, m, PX_REPLY_BAD_REQUEST);
		return 0;
	}
	if (px_lease_valid(r, now_ns)) {
		r->stats.lease_reads++;
		px_reply(r, out, m->client_id, m->seq, PX_REPLY_OK,
			 r->reply_buf, (uint32_t)n);
		return 0;
	}
	enqueue_or_refuse(r, m, m->seq | PX_SEQ_READ_BIT, out);
	return 0;
}

static uint8_t redirect_target(const struct px_replica *r)
{
	if (r->leader_hint != PX_REPLICA_NONE &&
	    r->leader_hint != r->cfg.self_id)
		return r->leader_hint;
	return r->known_leader;
}

static void reply_status(struct px_replica *r, struct px_outbox *out,
			 const struct px_msg *m, uint8_t status)
{
	px_reply(r, out, m->client_id, m->seq, status, NULL, 0);
	if (out->count > 0 && status == PX_REPLY_REDIRECT)
		out->msgs[out->count - 1].leader_hint = redirect_target(r);
}

/* What no client sends: seq 0, client id 0 (the log's configuration
 * changes), a read that also opens, an OPEN that names an assigned session
 * id, a write or OPEN seq above PX_SEQ_WRITE_MAX (the log marks OPENs and
 * reads in the bits above), a read seq with the log's read bit. */
static bool request_well_formed(const struct px_msg *m)
{
	if (m->seq == 0 || m->client_id == PX_CONFIG_CLIENT_ID)
		return false;
	if (m->flags & PX_FLAG_READ)
		return !(m->flags & PX_FLAG_OPEN) && !(m->seq & PX_SEQ_READ_BIT);
	if ((m->flags & PX_FLAG_OPEN) && (m->client_id & PX_SESSION_ID_BIT))
		return false;
	return m->seq <= PX_SEQ_WRITE_MAX;
}

/* A write: the cached reply at once for a retry of what was applied, else
 * the log. */
static void on_write_request(struct px_replica *r, const struct px_msg *m,
			     struct px_outbox *out)
{
	/* Only OPENs in the log assign ids, all with bit 63: any other id
	 * never has a session (session.c, rule 5). */
	if (!(m->client_id & PX_SESSION_ID_BIT) &&
	    !(PX_PLANTED(SESSION_FIRST_SEQ) && m->seq == 1)) {
		r->stats.requests_expired++;
		reply_status(r, out, m, PX_REPLY_EXPIRED);
		return;
	}
	struct px_session *s = px_session_find(&r->sessions, m->client_id);
	if (s != NULL && m->seq <= s->last_seq) {
		r->stats.requests_deduplicated++;
		if (m->seq == s->last_seq)
			px_reply(r, out, s->client_id, m->seq, s->status,
				 px_session_reply(&r->sessions, s),
				 s->reply_len);
		else
			reply_status(r, out, m, PX_REPLY_STALE);
		return;
	}
	/* An id not held here may be of an OPEN chosen but not yet applied
	 * here: only the log can say it is gone. */
	enqueue_or_refuse(r, m, m->seq, out);
}

int px_on_request(struct px_replica *r, uint64_t now_ns,
		  const struct px_msg *m, struct px_outbox *out)
{
	r->stats.requests_in++;
	if (!request_well_formed(m)) {
		px_drop(r, PX_DROP_MALFORMED);
		return -BPX_EMALFORMED;
	}
	if (r->role != PX_ROLE_LEADER) {
		r->stats.requests_redirected++;
		reply_status(r, out, m, PX_REPLY_REDIRECT);
		return 0;
	}
	if (m->flags & PX_FLAG_READ)
		return on_read_request(r, now_ns, m, out);
	if (m->flags & PX_FLAG_OPEN)
		enqueue_or_refuse(r, m, m->seq | PX_SEQ_OPEN_BIT, out);
	else
		on_write_request(r, m, out);
	return 0;
}

/* A replica that stops leading tells the clients it queued where to go
 * (a membership change has no client: it is dropped). */
void px_queue_redirect_all(struct px_replica *r, struct px_outbox *out)
{
	while (r->queue_count > 0) {
		const struct px_pending *p = &r->queue[r->queue_head];
		struct px_msg fake = { .client_id = p->client_id,
				       .seq = p->seq & ~(PX_SEQ_READ_BIT |
							 PX_SEQ_OPEN_BIT) };
		if (p->client_id != PX_CONFIG_CLIENT_ID)
			reply_status(r, out, &fake, PX_REPLY_REDIRECT);
		r->queue_head = (r->queue_head + 1) % r->cfg.request_queue_max;
		r->queue_count--;
	}
}

/* ---- Timers and catch-up ---- */

static void retransmit_accepts(struct px_replica *r, uint64_t now_ns,
			       struct px_outbox *out)
{
	for (uint64_t i = r->commit_index; i < r->next_slot; i++) {
		if (px_out_room(out) < 2u * r->cfg.replica_count)
			return;
		struct px_slot *s = px_log_get(r, i);
		if (s == NULL || s->chosen || s->proposed_ballot != r->ballot ||
		    now_ns < s->sent_ns + r->cfg.retransmit_ns)
			continue;
		s->sent_ns = now_ns;
		r->stats.retransmits++;
		send_accepts(r, s, out);
	}
}

static void send_heartbeat(struct px_replica *r, uint64_t now_ns,
			   struct px_outbox *out)
{
	uint64_t cv[2];
	px_cv_fill(r, cv);
	for (uint8_t i = 0; i < r->cfg.replica_count; i++) {
		if (i == r->cfg.self_id)
			continue;
		struct px_msg *m = px_out_to(r, out, PX_MSG_COMMIT, i);
		if (m == NULL)
			return;
		m->ballot = r->ballot;
		m->crash_vector[0] = cv[0];
		m->crash_vector[1] = cv[1];
		m->commit_index = r->commit_index;
		m->seq = now_ns;
	}
	r->commit_sent = r->commit_index;
	r->heartbeat_ns = now_ns + r->cfg.heartbeat_interval_ns;
}

/* A leader still asking for promises asks from its applied index: below
 * it every slot is chosen and known here, so no report is needed, and the
 * reports stay within one log's span. Complete promises stay complete. */
static void rebase_phase1(struct px_replica *r)
{
	struct px_phase1 *p = &r->p1;
	if (r->applied_index <= p->from)
		return;
	p->from = r->applied_index;
	if (p->end < p->from)
		p->end = p->from;
	size_t words = r->cfg.log_slots / PX_WORD_BITS;
	for (uint8_t i = 0; i < r->cfg.replica_count; i++) {
		if (p->complete_mask & (1u << i))
			continue;
		memset(seen_bits_of(r, i), 0, words * sizeof(uint64_t));
		p->entries_seen[i] = 0;
		p->entries_expected[i] = 0;
	}
}

void px_proposer_tick(struct px_replica *r, uint64_t now_ns,
		      struct px_outbox *out)
{
	if (r->role == PX_ROLE_CANDIDATE) {
		if (now_ns >= r->p1.sent_ns + r->cfg.retransmit_ns)
			px_broadcast_prepare(r, now_ns, out);
		return;
	}
	PX_ASSERT(r->role == PX_ROLE_LEADER);
	/* Replicas that have not promised yet may be needed by a later
	 * configuration: keep asking them. */
	if (r->p1.complete_mask != px_all_replicas(r) &&
	    now_ns >= r->p1.sent_ns + r->cfg.retransmit_ns) {
		rebase_phase1(r);
		px_broadcast_prepare(r, now_ns, out);
	}
	retransmit_accepts(r, now_ns, out);
	if (now_ns >= r->heartbeat_ns)
		send_heartbeat(r, now_ns, out);
	px_propose_queued(r, now_ns, out);
	fill_config_window(r, now_ns, out);
}

static void send_chosen(struct px_replica *r, struct px_peer *peer, uint8_t to,
			struct px_outbox *out)
{
	uint64_t end = peer->commit_index + r->cfg.catchup_burst;
	if (end > r->commit_index)
		end = r->commit_index;
	uint64_t cv[2];
	px_cv_fill(r, cv);
	for (uint64_t i = peer->commit_index; i < end; i++) {
		const struct px_slot *s = px_log_get(r, i);
		if (s == NULL || !s->chosen)
			return;
		struct px_msg *m = px_out_to(r, out, PX_MSG_CHOSEN, to);
		if (m == NULL)
			return;
		m->ballot = r->ballot;
		m->crash_vector[0] = cv[0];
		m->crash_vector[1] = cv[1];
		m->slot = i;
		m->commit_index = r->commit_index;
		m->value = s->value;
		m->value_len = s->value_len;
	}
}

/* A follower behind the commit index gets the chosen values it lacks; one
 * behind our log start gets a snapshot instead. */
int px_on_status(struct px_replica *r, uint64_t now_ns, const struct px_msg *m,
		 struct px_outbox *out)
{
	struct px_peer *peer = &r->peers[m->from];
	peer->commit_index = m->commit_index;
	peer->applied_index = m->applied_index;
	peer->log_start = m->log_start;
	if (r->role != PX_ROLE_LEADER || m->ballot != r->ballot)
		return 0;
	/* Only heartbeats of this term count toward the lease. */
	if (m->seq >= r->term_start_ns && m->seq <= now_ns &&
	    m->seq > peer->lease_ack_ns)
		peer->lease_ack_ns = m->seq;
	if (peer->commit_index >= r->commit_index)
		return 0;
	if (peer->commit_index < r->log_start) {
		if (now_ns >= peer->snapshot_sent_ns + 8 * r->cfg.retransmit_ns) {
			peer->snapshot_sent_ns = now_ns;
			px_out_to(r, out, PX_MSG_SNAPSHOT, m->from);
		}
		return 0;
	}
	if (now_ns >= peer->catchup_sent_ns + r->cfg.retransmit_ns) {
		peer->catchup_sent_ns = now_ns;
		send_chosen(r, peer, m->from, out);
	}
	return 0;
}
