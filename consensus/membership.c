/* Membership: which of the configured replicas vote, changed through the
 * log (Lamport's alpha scheme).
 *
 * A configuration is a bitmask over the replicas the config file names.
 * A change is a log entry (client id 0, a one-byte mask); chosen at slot i,
 * it governs slots i + alpha and later, alpha being the window. The leader
 * proposes slot s only once slot s - alpha is applied, so it always knows
 * config(s), and config(s) depends only on chosen entries: every replica
 * computes the same one. A value is chosen at s by a majority of config(s);
 * a leader proposes at s only with promises from a majority of config(s);
 * two majorities of one configuration meet, which is all Paxos needs.
 *
 * The change is pending until slot i + alpha - 1 is applied. Requests fill
 * the slots between under load; an idle leader fills them with no-ops on
 * its tick (fill_config_window in proposer.c), no further than i + alpha. */
#include "internal.h"

static uint8_t mask_count(uint8_t mask)
{
	return px_popcount8(mask);
}

bool px_quorum(uint8_t votes, uint8_t config)
{
	/* A quorum is a majority of the slot's configuration: votes of
	 * replicas outside it do not count. */
	if (PX_PLANTED(QUORUM_ALL_REPLICAS)) /* planted: every replica counts */
		return config != 0 && mask_count(votes) >= mask_count(config) / 2 + 1;
	return config != 0 &&
	       mask_count(votes & config) >= mask_count(config) / 2 + 1;
}

uint8_t px_all_replicas(const struct px_replica *r)
{
	return (uint8_t)((1u << r->cfg.replica_count) - 1);
}

void px_members_init(struct px_replica *r)
{
	uint8_t all = px_all_replicas(r);
	uint8_t initial = r->cfg.initial_members & all;
	r->history[0].effective_slot = 0;
	r->history[0].mask = initial ? initial : all;
	r->history_count = 1;
}

uint8_t px_config_at(const struct px_replica *r, uint64_t slot)
{
	uint8_t mask = r->history[0].mask;
	for (uint8_t i = 1; i < r->history_count; i++)
		if (r->history[i].effective_slot <= slot)
			mask = r->history[i].mask;
	return mask;
}

uint8_t px_members(const struct px_replica *r)
{
	return r->history[r->history_count - 1].mask;
}

/* A change not yet in force at the applied index (or still in flight). */
bool px_config_pending(const struct px_replica *r)
{
	return r->history[r->history_count - 1].effective_slot >
		       r->applied_index ||
	       r->config_proposed;
}

/* Entries older than the one in force at `slot` (at most the applied
 * index) are never asked for again: drop them to keep the history
 * bounded. */
static void compact_history(struct px_replica *r, uint64_t slot)
{
	while (r->history_count > 1 && r->history[1].effective_slot <= slot) {
		memmove(&r->history[0], &r->history[1],
			(size_t)(r->history_count - 1) * sizeof(r->history[0]));
		r->history_count--;
	}
}

/* Applies a configuration entry chosen at slot. Every replica does this at
 * the same point of the log, so histories are identical. */
void px_config_applied(struct px_replica *r, uint64_t slot,
		       const struct px_batch_entry *e)
{
	r->config_proposed = false;
	if (e->len != 1 || e->cmd[0] == 0 ||
	    (e->cmd[0] & ~px_all_replicas(r)) != 0)
		return; /* malformed: ignored identically everywhere */
	/* Compacted by the slot, not by this replica's log start: what is
	 * left, and so whether the history is full, is then the same on
	 * every replica (whatever snapshot each installed). */
	compact_history(r, slot);
	if (r->history_count == PX_CONFIG_HISTORY_MAX)
		return; /* the proposer refuses changes before this happens */
	r->history[r->history_count].effective_slot =
		slot + r->cfg.window_slots;
	r->history[r->history_count].mask = e->cmd[0];
	r->history_count++;
	r->stats.config_changes++;
}

int px_propose_config(struct px_replica *r, uint64_t now_ns, uint8_t members,
		      struct px_outbox *out)
{
	(void)now_ns;
	(void)out;
	if (r->role != PX_ROLE_LEADER)
		return -BPX_ENOTLEADER;
	if (members == 0 || (members & ~px_all_replicas(r)) != 0)
		return -BPX_EINVAL;
	compact_history(r, r->log_start);
	if (px_config_pending(r) ||
	    r->history_count == PX_CONFIG_HISTORY_MAX ||
	    r->queue_count == r->cfg.request_queue_max)
		return -BPX_EBUSY;
	px_queue_push(r, PX_CONFIG_CLIENT_ID, 0, &members, 1);
	r->config_proposed = true;
	return 0;
}

/* Replicas compact their histories at different times (by log start), so
 * only the latest change is part of the state they must agree on. */
uint64_t px_history_digest(const struct px_replica *r)
{
	const struct px_config_change *last = &r->history[r->history_count - 1];
	return last->effective_slot * 0x9e3779b97f4a7c15ull + last->mask;
}
