/* Recovery of a replica that restarted without its state (DESIGN.md: it
 * must not vote until it has recovered), and the incarnations that make
 * its earlier lives recognisable.
 *
 * It may have promised or accepted things it no longer remembers. Before
 * it votes again it (1) installs a snapshot from a peer that is not itself
 * recovering, so it holds a chosen prefix, then (2) runs a fencing phase 1
 * of its own over at least n - majority + 1 *other* replicas of every
 * configuration since the snapshot (membership.c), with it or without it,
 * adopting the highest-ballot value they report for each slot and a
 * promise above every promise they hold (a higher one NACKs the round,
 * which starts again above it).
 *
 * The fence alone is not enough (issue 8, hole 1). Five replicas R, L, X,
 * Y, Z: X's PREPARE b reaches only R, which promises and crashes; R is
 * fenced by L, Y, Z, none of which knows b, so R's promise stays below b;
 * L chooses v at slot 0 with {L, R, Z} at a ballot below b. Then X's
 * delayed PREPARE reaches Y, and X completes phase 1 with {X, Y, R},
 * counting R's promise from before the crash: it sees nothing at slot 0
 * and gets w chosen. (With three replicas the fence asks both others, so
 * it does not show there.) The fix is the crash vectors of Michael, Ports
 * et al., "Recovering Shared Objects Without Stable Storage" (DISC 2017):
 *
 *  - Each replica has an incarnation, 0 at the bootstrap, one higher at
 *    every recovery; ballots carry the proposer's (consensus.h), so two
 *    lives of one replica never share a ballot.
 *  - Each replica keeps the highest incarnation it has heard of for every
 *    replica (its crash vector); PROMISE and ACCEPTED carry the sender's.
 *    A proposer merges every vector it receives, refuses a PROMISE or
 *    ACCEPTED whose sender's own entry is below what it knows (a vote of
 *    a life that has since crashed), and when it learns that a replica
 *    has a newer life it forgets the promise and acceptances of the
 *    older one (px_forget_votes).
 *  - The recovering replica R announces an incarnation g in the ballot of
 *    its fencing round. An acceptor answers with what it knew of R
 *    before, then raises its own entry for R to g. R finishes only when
 *    its fencing set F answered this very round (a nonce echoed in every
 *    PROMISE, so no answer to an earlier life's round counts) and each
 *    had known less than g; one that knew g or more sends R round again
 *    above it.
 *
 * Why that closes the hole. Say a value v is chosen at slot s with R's
 * vote in its new life, and a proposer X completes phase 1 for s with a
 * quorum Q that counts a promise P of R's earlier life. Q minus R has
 * majority - 1 members of s's configuration and F has n - majority + 1 of
 * its other members, so some Y is in both. If Y promised X before it
 * answered R's fence, Y's promise was at least X's ballot b then, so R's
 * fence ended above b (a NACK raises it) and R refuses every ballot below
 * b: v was chosen above b, or R's vote was not needed and the quorum that
 * chose v meets Q elsewhere, where standard Paxos applies. If Y promised
 * after, Y's PROMISE carried R's new incarnation, and X dropped P on
 * receiving it (or refused P on arrival, had Y's come first). Either way
 * X cannot complete with P where P matters. The same holds for phase 2:
 * an ACCEPTED of R's earlier life is refused once any member of the
 * accepting quorum (or the proposer) has heard of R's new life, and a
 * member of F that accepted before it answered the fence reported the
 * value to it, so R holds it now.
 *
 * Why g is new (above every incarnation any earlier life of R voted
 * under). Knowledge of an incarnation travels with the log: PROMISE and
 * ACCEPTED carry the sender's crash vector, and so do ACCEPT, CHOSEN,
 * COMMIT and snapshots, and every receiver merges it before it uses the
 * values. Say R's life p finished its fence with F_p. Every value chosen
 * after that in a configuration F_p fenced is accepted by a majority that
 * meets F_p and R, whose ACCEPTED tells the leader of p; that leader's
 * ACCEPTs tell every acceptor of the slot; a change of configuration is
 * such a value, and a leader proposing under the new configuration has
 * applied it, so it knows p too, and the acceptors of the new
 * configuration's chosen values learn p from it. A replica that lost its
 * state relearns from its own fence and snapshot. So R's next fence F,
 * which meets every majority of the configurations in force from its
 * snapshot on, reaches someone who knows p whenever p matters: a vote of
 * life p could only be counted against the new life through a quorum of
 * those configurations. (Before crash vectors travelled with the values,
 * a membership change could move the cluster to members that never heard
 * of p, and the next life took p again: an independent review reproduced
 * hole 1 that way, tests/unit/test_incarnation.c.)
 *
 * An incarnation announced by a round that never finished was never voted
 * under; if some replica learned it and a later life took a lower one,
 * that life takes the higher one as soon as it hears of it
 * (px_adopt_incarnation_if_due), or every proposer would drop its votes. An
 * acceptor answers every round of one life (one nonce) with what it knew
 * before that life first asked, so a lost or late answer costs a round,
 * not an incarnation.
 *
 * Assumed: at most a minority of a configuration without state at once
 * (DESIGN.md), and recovery nonces that do not repeat between lives (the
 * caller seeds each start differently; 32 bits of the nonce are echoed).
 * Incarnations are 16 bits: a replica whose incarnation reached
 * PX_INCARNATION_MAX stays recovering. */
#include "internal.h"

uint16_t px_own_incarnation(const struct px_replica *r)
{
	return r->incarnation[r->cfg.self_id];
}

void px_cv_fill(const struct px_replica *r, uint64_t cv[2])
{
	cv[0] = cv[1] = 0;
	for (uint8_t i = 0; i < r->cfg.replica_count; i++)
		px_cv_set(cv, i, r->incarnation[i]);
}

/* Someone knows of an incarnation of ours above the one we live in. It
 * can only be one an earlier life of ours announced in a recovery round
 * that never finished (had a life finished with it, our own fence would
 * have known of it, and we would live above it): no vote was ever cast
 * under it. Every proposer that knows of it takes our votes for a dead
 * life's, so we take it as ours: votes under it are ours alone, and our
 * state, promises included, is intact. A ballot we lead under the old one
 * is dropped (invariants.c: a leader's ballot carries its incarnation);
 * the next election carries the new one. */
void px_adopt_incarnation_if_due(struct px_replica *r, uint64_t now_ns,
				 struct px_outbox *out)
{
	if (r->incarnation_to_adopt == 0)
		return;
	uint16_t inc = r->incarnation_to_adopt;
	r->incarnation_to_adopt = 0;
	if (r->role == PX_ROLE_RECOVERING || inc <= px_own_incarnation(r))
		return;
	if (r->role == PX_ROLE_CANDIDATE || r->role == PX_ROLE_LEADER)
		px_become_follower(r, now_ns, out);
	r->incarnation[r->cfg.self_id] = inc;
	r->stats.incarnations_adopted++;
}

void px_cv_learn(struct px_replica *r, uint8_t id, uint16_t inc)
{
	PX_ASSERT(id < r->cfg.replica_count);
	if (id == r->cfg.self_id) {
		if (r->role == PX_ROLE_RECOVERING) {
			if (inc > r->recovery_inc_seen)
				r->recovery_inc_seen = inc;
		} else if (inc > px_own_incarnation(r) &&
			   inc > r->incarnation_to_adopt &&
			   !PX_PLANTED(RECOVERY_NO_INCARNATION)) {
			r->incarnation_to_adopt = inc; /* at the end of the call */
		}
		return;
	}
	if (inc <= r->incarnation[id])
		return;
	r->incarnation[id] = inc;
	if (!PX_PLANTED(RECOVERY_NO_INCARNATION))
		px_forget_votes(r, id);
}

void px_cv_merge(struct px_replica *r, const uint64_t cv[2])
{
	for (uint8_t i = 0; i < r->cfg.replica_count; i++)
		px_cv_learn(r, i, px_cv_get(cv, i));
}

bool px_cv_merge_is_stale(struct px_replica *r, const struct px_msg *m)
{
	px_cv_merge(r, m->crash_vector);
	if (PX_PLANTED(RECOVERY_NO_INCARNATION) ||
	    px_cv_get(m->crash_vector, m->from) >= r->incarnation[m->from])
		return false;
	px_drop(r, PX_DROP_STALE_INCARNATION);
	return true;
}

/* Enough responders for configuration `config`: they meet every majority
 * of it. For one that includes us, every majority we could have been part
 * of (its other members); for one that does not, every majority that could
 * have chosen a change adding us back, which the snapshot may predate: we
 * learn of it, and may have voted under it, only through such a responder.
 * Either way n - majority + 1 other members. */
static bool fenced_for(uint8_t others, uint8_t config)
{
	uint8_t n = px_popcount8(config);
	return px_popcount8(others & config) >= n - (n / 2 + 1) + 1;
}

/* Every configuration since the snapshot: those in our history, and any
 * change the responders reported having accepted (a chosen one is among
 * their reports, as they meet every majority of the configuration that
 * chose it; unchosen ones only ask for more). */
static bool fenced(const struct px_replica *r, uint8_t others)
{
	for (uint8_t i = 0; i < r->history_count; i++) {
		/* One superseded at or before p1.from governs only slots the
		 * snapshot covers, all chosen: nothing of ours there counts
		 * any more (and its members may be long gone). */
		bool superseded = i + 1 < r->history_count &&
				  r->history[i + 1].effective_slot <= r->p1.from;
		if (!superseded && !fenced_for(others, r->history[i].mask))
			return false;
	}
	for (uint64_t s = r->p1.from; s < r->accepted_end; s++) {
		const struct px_slot *slot = px_log_get((struct px_replica *)r, s);
		if (slot == NULL || slot->accepted_ballot == 0)
			continue;
		struct px_batch_iter it;
		struct px_batch_entry e;
		px_batch_iter_init(&it, slot->value, slot->value_len);
		while (px_batch_next(&it, &e) == 1)
			if (e.client_id == PX_CONFIG_CLIENT_ID && e.len == 1 &&
			    !fenced_for(others, e.cmd[0]))
				return false;
	}
	return true;
}

static void recovery_done(struct px_replica *r, uint64_t now_ns)
{
	r->role = PX_ROLE_FOLLOWER;
	r->promised = r->p1.ballot;
	r->incarnation[r->cfg.self_id] =
		PX_PLANTED(RECOVERY_NO_INCARNATION) ? 0 : r->recovery_inc;
	r->stats.recoveries_done++;
	r->next_election_ns = now_ns + r->cfg.retransmit_ns;
}

static void ask_snapshot(struct px_replica *r, uint64_t now_ns, uint8_t to,
			 struct px_outbox *out)
{
	if (now_ns < r->recovery_snapshot_ns + 4 * r->cfg.retransmit_ns &&
	    r->recovery_snapshot_asked)
		return;
	r->recovery_snapshot_asked = true;
	r->recovery_snapshot_ns = now_ns;
	px_out_to(r, out, PX_MSG_SNAPSHOT_REQ, to);
}

static uint8_t any_peer(struct px_replica *r)
{
	uint8_t n = r->cfg.replica_count;
	uint8_t peer = (uint8_t)(px_prng_next(r) % (uint64_t)(n - 1));
	return peer >= r->cfg.self_id ? (uint8_t)(peer + 1) : peer;
}

/* (Re)starts the fencing round from what the installed snapshot covers. */
void px_recovery_start(struct px_replica *r, uint64_t now_ns,
		       struct px_outbox *out)
{
	/* The incarnation to announce: above any an acceptor knew of us. */
	if (r->recovery_inc <= r->recovery_inc_seen) {
		if (r->recovery_inc_seen == PX_INCARNATION_MAX)
			return; /* out of incarnations: stays recovering */
		r->recovery_inc = (uint16_t)(r->recovery_inc_seen + 1);
	}
	uint64_t top = r->highest_seen > r->promised ? r->highest_seen
						     : r->promised;
	uint16_t announced =
		PX_PLANTED(RECOVERY_NO_INCARNATION) ? 0 : r->recovery_inc;
	uint64_t ballot = px_ballot_make_inc(px_ballot_round(top) + 1,
					     announced, r->cfg.self_id);
	/* One nonce for the whole life, drawn at its first round: a round
	 * started again after a NACK or a higher incarnation is told apart
	 * by its ballot, an earlier life's by the nonce. */
	if (r->recovery_nonce == 0)
		r->recovery_nonce = px_prng_next(r) | 1;
	px_note_ballot(r, ballot);
	r->promised = ballot;
	uint64_t *bits = r->p1.seen_bits;
	memset(&r->p1, 0, sizeof(r->p1));
	r->p1.seen_bits = bits;
	memset(bits, 0, (size_t)r->cfg.replica_count *
				(r->cfg.log_slots / PX_WORD_BITS) *
				sizeof(uint64_t));
	r->p1.ballot = ballot;
	r->p1.from = r->applied_index;
	r->p1.end = r->p1.from;
	px_broadcast_prepare(r, now_ns, out);
}

void px_recovery_tick(struct px_replica *r, uint64_t now_ns,
		      struct px_outbox *out)
{
	/* A lease promise made before the crash is forgotten with the rest,
	 * but it lasts at most lease_ns past the crash: promise no one until
	 * that long after we came back. */
	if (r->lease_until_ns == 0 && r->cfg.lease_ns > 0) {
		r->lease_holder = PX_LEASE_ANYONE_ELSE;
		r->lease_until_ns = now_ns + r->cfg.lease_ns;
	}
	if (r->cfg.replica_count == 1) {
		/* Alone, there is nobody to recover from: the state is gone. */
		recovery_done(r, now_ns);
		return;
	}
	if (!r->recovery_have_snapshot) {
		ask_snapshot(r, now_ns, any_peer(r), out);
		return;
	}
	if (PX_PLANTED(RECOVERY_NO_FENCE)) { /* planted: votes unfenced */
		recovery_done(r, now_ns);
		return;
	}
	if (r->p1.ballot == 0) {
		if (now_ns >= r->next_election_ns)
			px_recovery_start(r, now_ns, out);
		return;
	}
	if (now_ns >= r->p1.sent_ns + r->cfg.retransmit_ns)
		px_broadcast_prepare(r, now_ns, out);
}

int px_recovery_on_promise(struct px_replica *r, uint64_t now_ns,
			   const struct px_msg *m, struct px_outbox *out)
{
	/* Only an answer to this very round counts: an earlier life of ours
	 * may have run a round with the same ballot. */
	if (r->p1.ballot == 0 || m->ballot != r->p1.ballot ||
	    !(m->flags & PX_FLAG_RECOVERY) ||
	    m->seq >> 32 != (r->recovery_nonce & 0xffffffffu)) {
		px_drop(r, PX_DROP_STALE_BALLOT);
		return 0;
	}
	if (px_cv_merge_is_stale(r, m))
		return 0; /* (it also raised recovery_inc_seen) */
	uint16_t knew = px_cv_get(m->crash_vector, r->cfg.self_id);
	if (knew >= r->recovery_inc && !PX_PLANTED(RECOVERY_NO_INCARNATION)) {
		/* That incarnation was taken by an earlier life: announce a
		 * higher one in a new round (next tick). */
		r->p1.ballot = 0;
		return 0;
	}
	if (m->log_start > r->p1.from) {
		/* It dropped slots our snapshot does not cover: get a newer
		 * snapshot (from it), then fence again from there. */
		ask_snapshot(r, now_ns, m->from, out);
		return 0;
	}
	px_phase1_record(r, m, out);
	uint8_t others = (uint8_t)(r->p1.complete_mask &
				   ~(1u << r->cfg.self_id));
	if (fenced(r, others))
		recovery_done(r, now_ns);
	return 0;
}

void px_recovery_on_nack(struct px_replica *r, uint64_t now_ns,
			 const struct px_msg *m, struct px_outbox *out)
{
	(void)out;
	/* Someone promised higher: fence again above it, after a jittered
	 * pause, as a candidate backs off (replica.c): a fence that always
	 * restarts at once and a candidate can outbid each other forever
	 * (sim --long seed 41002605 at 5 replicas). */
	if (r->p1.ballot != 0 && m->ballot >= r->p1.ballot) {
		r->p1.ballot = 0;
		r->next_election_ns = now_ns + r->cfg.retransmit_ns / 2 +
				      px_prng_next(r) % (2 * r->cfg.retransmit_ns);
	}
}
