/* Recovery of a replica that restarted without its state (DESIGN.md: it
 * must not vote until it has recovered).
 *
 * It may have promised or accepted things it no longer remembers. Before it
 * votes again it (1) installs a snapshot from a peer, so it holds a chosen
 * prefix, then (2) runs a fencing phase 1 of its own, with a ballot above
 * every promise it hears of, over at least n - majority + 1 *other*
 * replicas of every configuration since the snapshot (membership.c), with
 * it or without it, and adopts the highest-ballot value they report for
 * each slot.
 *
 * Why that is enough: any majority it took part in before the crash has at
 * least majority - 1 other members, so it meets the responders. A responder
 * that promised a ballot b before answering made the fencing ballot exceed
 * b (or refused it); one that had not yet promised b will no longer accept
 * anything below the fencing ballot. So every value it could have helped
 * choose is reported by a responder, and every ballot it could have
 * promised is below the promise it now holds. */
#include "internal.h"

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
	for (uint8_t i = 0; i < r->history_count; i++)
		if (!fenced_for(others, r->history[i].mask))
			return false;
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
	uint64_t top = r->highest_seen > r->promised ? r->highest_seen
						     : r->promised;
	uint64_t ballot = px_ballot_make(px_ballot_round(top) + 1,
					 r->cfg.self_id);
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
		px_recovery_start(r, now_ns, out);
		return;
	}
	if (now_ns >= r->p1.sent_ns + r->cfg.retransmit_ns)
		px_broadcast_prepare(r, now_ns, out);
}

int px_recovery_on_promise(struct px_replica *r, uint64_t now_ns,
			   const struct px_msg *m, struct px_outbox *out)
{
	if (r->p1.ballot == 0 || m->ballot != r->p1.ballot ||
	    !(m->flags & PX_FLAG_RECOVERY)) {
		px_drop(r, PX_DROP_STALE_BALLOT);
		return 0;
	}
	if (m->log_start > r->p1.from) {
		/* It dropped slots our snapshot does not cover: get a newer
		 * snapshot (from it), then fence again from there. */
		ask_snapshot(r, now_ns, m->from, out);
		return 0;
	}
	px_phase1_record(r, m);
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
	(void)now_ns;
	/* Someone promised higher: fence again above it on the next tick. */
	if (r->p1.ballot != 0 && m->ballot >= r->p1.ballot)
		r->p1.ballot = 0;
}
