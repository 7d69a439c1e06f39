/* Durable mode (consensus.h, "Durability"): the PERSIST records a replica
 * emits, and its restart from them.
 *
 * What must survive a crash is what the replica told others it would
 * stand by: its promise (PROMISE, STATUS under a lease, ACCEPTED all
 * imply one) and what it accepted (ACCEPTED, and the leader's own vote
 * for its proposal). Records go into the outbox before the messages that
 * depend on them, and the caller makes them durable before it sends those
 * (etcd/raft's Ready: HardState and Entries before Messages). Every change
 * of a slot's accepted (ballot, value) is recorded, so that replaying the
 * records in order rebuilds the log exactly as it was, chosen slots with
 * their chosen value.
 *
 * Not recorded, and why that is safe:
 *  - The commit index is recorded (COMMIT) only to save catch-up: losing
 *    COMMIT records leaves slots accepted but not known chosen, which the
 *    leader's CHOSEN or a snapshot tells again.
 *  - Membership: changes are values in the log, applied again on replay.
 *  - Sessions and the state machine: rebuilt by applying the committed
 *    slots again (the replay applies as COMMIT records come), on top of
 *    the disk snapshot if any.
 *  - Leases: a lease this replica granted lasts at most lease_ns past its
 *    crash; after a restart from disk it refuses every candidate, itself
 *    included, for lease_ns (px_persist_begin), as a recovering replica
 *    does (recovery.c).
 *  - Incarnations (crash vectors, recovery.c). A replica that restarts
 *    from disk keeps its incarnation and bumps nothing: it forgot no vote
 *    it cast, so its votes from before the crash are still good and
 *    proposers must keep counting them, which a new incarnation would
 *    stop (px_forget_votes); and an incarnation is only known to be new
 *    through the fencing round that a durable replica skips. Ballots stay
 *    unique without it: the recorded promise is at least every ballot it
 *    ran phase 1 with, and its next one is above it. Its own disk
 *    snapshot brings back the crash vector it held then; a later one it
 *    relearns from the vectors every ACCEPT, COMMIT and CHOSEN carries
 *    (and adopts a higher own one, px_adopt_incarnation_if_due).
 *  - phase 1 state, queues and timers: a restarted replica is a follower,
 *    and whatever it led is lost as a crashed leader's is. */
#include "internal.h"
#include "plant.h"

bool px_persist_room(struct px_replica *r, const struct px_outbox *out,
		     uint32_t n)
{
	if (!r->cfg.durable || px_out_room(out) >= n)
		return true;
	px_drop(r, PX_DROP_OUTBOX_FULL);
	return false;
}

static struct px_msg *push_record(struct px_replica *r, struct px_outbox *out,
				  uint8_t what)
{
	struct px_msg *m = px_out_to(r, out, PX_MSG_PERSIST, r->cfg.self_id);
	if (m != NULL)
		m->flags = what;
	return m;
}

bool px_persist_promise(struct px_replica *r, struct px_outbox *out)
{
	if (!r->cfg.durable || r->promised <= r->persisted_promise)
		return true;
	struct px_msg *m = push_record(r, out, PX_PERSIST_PROMISE);
	if (m == NULL)
		return false;
	m->ballot = r->promised;
	r->persisted_promise = r->promised;
	return true;
}

void px_persist_accepted(struct px_replica *r, const struct px_slot *s,
			 struct px_outbox *out)
{
	if (!r->cfg.durable)
		return;
	PX_ASSERT(s->in_use && s->accepted_ballot != 0);
	struct px_msg *m = push_record(r, out, PX_PERSIST_ACCEPTED);
	/* Callers made room (px_persist_room): an accepted value that no
	 * record holds could be reported, then forgotten. */
	PX_ASSERT(m != NULL);
	m->slot = s->slot;
	m->ballot = s->accepted_ballot;
	m->value = s->value;
	m->value_len = s->value_len;
}

void px_persist_commit(struct px_replica *r, struct px_outbox *out)
{
	if (!r->cfg.durable || r->commit_index <= r->persisted_commit)
		return;
	struct px_msg *m = push_record(r, out, PX_PERSIST_COMMIT);
	if (m == NULL)
		return; /* an optimisation only: the next call records it */
	m->commit_index = r->commit_index;
	r->persisted_commit = r->commit_index;
}

void px_persist_begin(struct px_replica *r, uint64_t now_ns,
		      struct px_outbox *out)
{
	if (!r->cfg.durable)
		return;
	if (r->restart_fence_due) {
		r->restart_fence_due = false;
		if (r->cfg.lease_ns > 0) {
			r->lease_holder = PX_LEASE_ANYONE_ELSE;
			r->lease_until_ns = now_ns + r->cfg.lease_ns;
		}
	}
	(void)px_persist_promise(r, out);
}

/* ---- Restart: replaying the records ---- */

static bool ballot_ok(uint64_t ballot)
{
	return ballot != 0 && px_ballot_round(ballot) <= PX_BALLOT_ROUND_MAX;
}

/* Applies what the replayed records made committed. A replaying replica is
 * a follower: applying answers no client, and its COMMIT is on disk. */
static void replay_apply(struct px_replica *r)
{
	struct px_outbox none = { .msgs = NULL, .count = 0, .cap = 0 };
	PX_ASSERT(r->role == PX_ROLE_FOLLOWER);
	px_advance_commit(r);
	r->persisted_commit = r->commit_index;
	px_apply_committed(r, &none);
	PX_ASSERT(r->applied_index == r->commit_index);
}

/* Marks the slots from the commit index up to `end` chosen, as far as the
 * records hold them. */
static void replay_chosen_up_to(struct px_replica *r, uint64_t end)
{
	for (uint64_t i = r->commit_index; i < end; i++) {
		struct px_slot *s = px_log_get(r, i);
		if (s == NULL || s->accepted_ballot == 0)
			break;
		s->chosen = true;
	}
	replay_apply(r);
}

static int replay_promise(struct px_replica *r, const struct px_msg *rec)
{
	if (!ballot_ok(rec->ballot))
		return -BPX_EINVAL;
	if (PX_PLANTED(DURABLE_REPLAY_NO_PROMISE))
		return 0; /* planted: the promise is forgotten */
	px_note_ballot(r, rec->ballot);
	if (rec->ballot > r->promised)
		r->promised = rec->ballot;
	r->persisted_promise = r->promised;
	return 0;
}

/* A slot the log cannot hold yet. When the replica accepted it, its log
 * had made room (px_log_make_room), so every slot log_slots below it had
 * been applied, chosen with the value these records hold: commit them
 * even if COMMIT records were lost. */
static struct px_slot *replay_claim(struct px_replica *r, uint64_t slot)
{
	if (slot - r->log_start >= r->cfg.log_slots)
		replay_chosen_up_to(r, slot - r->cfg.log_slots + 1);
	return px_log_claim(r, slot);
}

static int replay_accepted(struct px_replica *r, const struct px_msg *rec)
{
	if (!ballot_ok(rec->ballot) || rec->value_len > PX_VALUE_BYTES_MAX ||
	    (rec->value_len > 0 && rec->value == NULL))
		return -BPX_EINVAL;
	if (rec->slot < r->applied_index)
		return 0; /* the snapshot (or an earlier COMMIT) covers it */
	if (PX_PLANTED(DURABLE_REPLAY_NO_ACCEPTED))
		return 0; /* planted: the vote is forgotten */
	struct px_slot *s = replay_claim(r, rec->slot);
	if (s == NULL)
		return -BPX_EINVAL; /* beyond what the log holds */
	if (s->chosen &&
	    !px_value_equal(s->value, s->value_len, rec->value, rec->value_len))
		return -BPX_EINVAL;
	px_value_copy(s->value, rec->value, rec->value_len);
	s->value_len = rec->value_len;
	s->accepted_ballot = rec->ballot;
	if (r->accepted_end <= s->slot)
		r->accepted_end = s->slot + 1;
	return 0;
}

static int replay_commit(struct px_replica *r, const struct px_msg *rec)
{
	uint64_t end = rec->commit_index;
	if (end > r->log_start + r->cfg.log_slots)
		end = r->log_start + r->cfg.log_slots;
	if (end > r->commit_index)
		replay_chosen_up_to(r, end);
	return 0;
}

int px_durable_replay(struct px_replica *r, const struct px_msg *rec)
{
	if (r == NULL || rec == NULL || !r->cfg.durable ||
	    r->role != PX_ROLE_FOLLOWER || rec->type != PX_MSG_PERSIST)
		return -BPX_EINVAL;
	px_begin_call(r);
	int rc;
	switch (rec->flags) {
	case PX_PERSIST_PROMISE:
		rc = replay_promise(r, rec);
		break;
	case PX_PERSIST_ACCEPTED:
		rc = replay_accepted(r, rec);
		break;
	case PX_PERSIST_COMMIT:
		rc = replay_commit(r, rec);
		break;
	default: /* PX_PERSIST_MEMBERS is never emitted: membership is in
		    the log's values */
		rc = -BPX_EINVAL;
		break;
	}
	if (rc == 0)
		r->restart_fence_due = true;
	return rc;
}
