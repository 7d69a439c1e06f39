/* Invariants of one replica's state, checked from outside after every
 * step by the simulator and the unit-test fixture (TigerBeetle's habit:
 * the same property checked where it is made and where it is used). It
 * reads the state only, except for the last values it saw, which let it
 * check that promises, commits and applies never go back within a life. */
#include "internal.h"

static const char *check_log(const struct px_replica *r)
{
	if (r->log_start > r->applied_index)
		return "log_start is above the applied index";
	if (r->applied_index > r->commit_index)
		return "applied index is above the commit index";
	if (r->commit_index > r->log_start + r->cfg.log_slots)
		return "commit index is beyond the log's span";
	if (r->accepted_end < r->log_start)
		return "accepted_end is below log_start";
	return NULL;
}

static const char *check_bounds(const struct px_replica *r)
{
	if (r->queue_count > r->cfg.request_queue_max ||
	    r->queue_head >= r->cfg.request_queue_max)
		return "request queue beyond its bound";
	if (r->history_count < 1 || r->history_count > PX_CONFIG_HISTORY_MAX)
		return "membership history count out of range";
	uint8_t all = px_all_replicas(r);
	for (uint8_t i = 0; i < r->history_count; i++) {
		const struct px_config_change *h = &r->history[i];
		if (h->mask == 0 || (h->mask & ~all) != 0)
			return "membership history holds a bad member mask";
		if (i > 0 && h->effective_slot < r->history[i - 1].effective_slot)
			return "membership history out of slot order";
	}
	if (r->sessions.count > r->sessions.cap)
		return "session table beyond its bound";
	if ((r->sessions.count == 0) !=
	    (r->sessions.lru_head == PX_SESSION_NONE))
		return "session LRU list and session count disagree";
	if (r->reply_arena_used > r->reply_arena_cap)
		return "reply arena overflowed";
	if (r->lease_holder == r->cfg.self_id)
		return "a replica holds a lease promise to itself";
	return NULL;
}

/* Role vs ballot: only a candidate or leader has a ballot of its own, it
 * owns it, it carries its incarnation, and it promised it. */
static const char *check_role(const struct px_replica *r)
{
	if (r->role != PX_ROLE_CANDIDATE && r->role != PX_ROLE_LEADER)
		return r->ballot == 0 ? NULL : "a follower keeps a ballot";
	if (px_ballot_owner(r->ballot) != r->cfg.self_id)
		return "leading a ballot this replica does not own";
	if (px_ballot_incarnation(r->ballot) != px_own_incarnation(r))
		return "leading a ballot of another incarnation";
	if (r->promised < r->ballot)
		return "leading a ballot above its own promise";
	if (r->role == PX_ROLE_LEADER &&
	    r->next_slot > r->applied_index + r->cfg.window_slots)
		return "leader proposed beyond the window";
	if (!(r->p1.complete_mask & (1u << r->cfg.self_id)))
		return "a candidate without its own promise";
	return NULL;
}

static const char *check_monotone(struct px_replica *r)
{
	struct px_invariant_seen *s = &r->seen;
	if (r->promised < s->promised)
		return "promise went back";
	if (r->commit_index < s->commit_index)
		return "commit index went back";
	if (r->applied_index < s->applied_index)
		return "applied index went back";
	if (px_own_incarnation(r) < s->incarnation)
		return "incarnation went back";
	s->promised = r->promised;
	s->commit_index = r->commit_index;
	s->applied_index = r->applied_index;
	s->incarnation = px_own_incarnation(r);
	return NULL;
}

const char *px_check_invariants(struct px_replica *r)
{
	PX_ASSERT(r != NULL);
	const char *why = check_log(r);
	if (why == NULL)
		why = check_bounds(r);
	if (why == NULL)
		why = check_role(r);
	if (why == NULL)
		why = check_monotone(r);
	return why;
}
