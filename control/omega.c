/* Pure Omega leader oracle: see omega.h for the leader rule and why it
 * converges. */
#include "omega.h"

#include <stddef.h>
#include <string.h>

void ctl_omega_init(struct ctl_omega *o, const struct ctl_omega_config *cfg,
		    uint64_t now_ns)
{
	CTL_ASSERT(o != NULL);
	CTL_ASSERT(cfg != NULL);
	memset(o, 0, sizeof(*o));
	ctl_fd_init(&o->fd, &cfg->fd, now_ns);
	for (uint8_t i = 0; i < CTL_MEMBERS_MAX; i++) {
		o->peers[i].leader_hint = CTL_NONE;
		o->peers[i].preferred = CTL_NONE;
	}
	o->preferred = CTL_NONE;
	o->claimed = CTL_NONE;
	o->claimed_preferred = CTL_NONE;
	/* A restarted replica must not lead until it has recovered
	 * (DESIGN.md): ready is off until the caller says so. */
	o->ready = false;
	o->next_heartbeat_ns = now_ns;
}

void ctl_omega_set_preferred(struct ctl_omega *o, uint8_t member)
{
	CTL_ASSERT(o != NULL);
	o->preferred = member < o->fd.cfg.member_count ? member : CTL_NONE;
}

void ctl_omega_set_member(struct ctl_omega *o, bool voting)
{
	CTL_ASSERT(o != NULL);
	o->non_voting = !voting;
}

void ctl_omega_set_ready(struct ctl_omega *o, bool ready)
{
	CTL_ASSERT(o != NULL);
	o->ready = ready;
}

bool ctl_omega_tick(struct ctl_omega *o, uint64_t now_ns,
		    struct ctl_heartbeat *hb)
{
	CTL_ASSERT(o != NULL);
	CTL_ASSERT(hb != NULL);
	const uint64_t interval_ns = o->fd.cfg.heartbeat_interval_ns;
	/* A clock stepped backwards must not silence us until it catches up:
	 * no heartbeat is ever due more than one interval ahead. */
	if (o->next_heartbeat_ns > now_ns + interval_ns)
		o->next_heartbeat_ns = now_ns;
	if (now_ns < o->next_heartbeat_ns)
		return false;
	/* Next one an interval from now, not from the missed deadline: a late
	 * tick sends one heartbeat, not a burst. */
	o->next_heartbeat_ns = now_ns + interval_ns;
	memset(hb, 0, sizeof(*hb));
	hb->from = o->fd.cfg.self_id;
	hb->leader_hint = ctl_omega_leader(o, now_ns);
	hb->ready = !o->ready ? 0 : o->non_voting ? CTL_READY_NON_VOTING : 1;
	hb->preferred = o->preferred;
	hb->alive_mask = ctl_fd_alive_mask(&o->fd, now_ns);
	hb->seq = o->seq++;
	/* What the others now read as our claim (omega.h, rule 5): self is
	 * judged by what it last said, as they judge it. */
	o->claimed = hb->leader_hint;
	o->claimed_preferred = hb->preferred;
	return true;
}

/* Every field of a heartbeat from a valid other member is checked; a bad one
 * is a counted drop, never an assertion (it comes from the network). */
static bool ctl_heartbeat_well_formed(const struct ctl_omega *o,
				      const struct ctl_heartbeat *hb)
{
	const uint8_t count = o->fd.cfg.member_count;
	if (hb->leader_hint != CTL_NONE && hb->leader_hint >= count)
		return false;
	if (hb->ready > CTL_READY_NON_VOTING)
		return false;
	if (hb->preferred != CTL_NONE && hb->preferred >= count)
		return false;
	if ((hb->alive_mask >> count) != 0)
		return false;
	/* A member always hears itself. */
	return (hb->alive_mask & (1u << hb->from)) != 0;
}

bool ctl_omega_receive(struct ctl_omega *o, uint64_t now_ns,
		       const struct ctl_heartbeat *hb)
{
	CTL_ASSERT(o != NULL);
	CTL_ASSERT(hb != NULL);
	if (hb->from >= o->fd.cfg.member_count ||
	    hb->from == o->fd.cfg.self_id) {
		o->drops.bad_from++;
		return false;
	}
	if (!ctl_heartbeat_well_formed(o, hb)) {
		o->drops.malformed++;
		return false;
	}
	struct ctl_omega_peer *peer = &o->peers[hb->from];
	/* A reordered older heartbeat carries an older view: ignore it. Only
	 * while the sender is alive, though: one that was suspected may have
	 * restarted with its counter back at zero. */
	if (peer->heard_any && hb->seq <= peer->seq &&
	    ctl_fd_alive(&o->fd, hb->from, now_ns)) {
		o->drops.stale++;
		return false;
	}
	/* Heartbeats carry consecutive seqs (ctl_omega_tick sends one per
	 * tick however late it is): a skip, or a restart's counter going
	 * back, means some were lost, and a long silence before this one was
	 * not only lateness (fd.h, rule 3). */
	if (peer->heard_any && hb->seq != peer->seq + 1)
		ctl_fd_missed(&o->fd, hb->from);
	/* The sender of a heartbeat we hear counts as alive. */
	ctl_fd_heard(&o->fd, hb->from, now_ns);
	peer->seq = hb->seq;
	peer->alive_mask = hb->alive_mask;
	peer->leader_hint = hb->leader_hint;
	peer->ready = hb->ready != 0;
	peer->non_voting = hb->ready == CTL_READY_NON_VOTING;
	peer->preferred = hb->preferred;
	peer->heard_any = true;
	return true;
}

/* The latest view of member m as this member knows it: own for self, m's
 * latest heartbeat otherwise (0 if none yet). Used only for alive members. */
static uint32_t ctl_omega_view(const struct ctl_omega *o, uint8_t m,
			       uint32_t own_mask)
{
	if (m == o->fd.cfg.self_id)
		return own_mask;
	return o->peers[m].heard_any ? o->peers[m].alive_mask : 0;
}

/* Rule 4: how many members alive to us (self included) report hearing c. */
static uint8_t ctl_omega_heard_by(const struct ctl_omega *o, uint8_t c,
				  uint32_t own_mask)
{
	uint8_t count = 0;
	for (uint8_t j = 0; j < o->fd.cfg.member_count; j++) {
		if ((own_mask & (1u << j)) &&
		    (ctl_omega_view(o, j, own_mask) & (1u << c)))
			count++;
	}
	return count;
}

/* Rules 2-4 for a member c already known alive (rule 1). */
static bool ctl_omega_candidate(const struct ctl_omega *o, uint8_t c,
				uint32_t own_mask)
{
	const uint8_t majority = ctl_majority(o->fd.cfg.member_count);
	bool ready = c == o->fd.cfg.self_id ? o->ready : o->peers[c].ready;
	if (!ready)
		return false;
	if (ctl_mask_count(ctl_omega_view(o, c, own_mask)) < majority)
		return false;
	return ctl_omega_heard_by(o, c, own_mask) >= majority;
}

/* Whether member's latest heartbeat (self: the latest sent) names itself. */
static bool claims_itself(const struct ctl_omega *o, uint8_t member)
{
	if (member == o->fd.cfg.self_id)
		return o->claimed == member;
	return o->peers[member].heard_any &&
	       o->peers[member].leader_hint == member;
}

/* Rule 5's claim: naming itself, or handing over. A member handing
 * leadership over names its target, not itself; until the target claims,
 * it still claims, so that it stays the natural leader whose preference
 * everyone follows. Otherwise, for a heartbeat nobody would claim, the
 * lowest candidate would be the natural leader, and leadership would go
 * there instead of to the target. Once the target claims, the handover
 * claim lapses by itself, so a preference left behind moves nothing. */
bool ctl_omega_claims(const struct ctl_omega *o, uint8_t member)
{
	CTL_ASSERT(o != NULL);
	if (member >= o->fd.cfg.member_count)
		return false;
	if (claims_itself(o, member))
		return true;
	const bool self = member == o->fd.cfg.self_id;
	const uint8_t hint = self ? o->claimed : o->peers[member].leader_hint;
	const uint8_t to = self ? o->claimed_preferred
				: o->peers[member].preferred;
	if (!self && !o->peers[member].heard_any)
		return false;
	return to != CTL_NONE && to != member && hint == to &&
	       to < o->fd.cfg.member_count && !claims_itself(o, to);
}

static bool ctl_omega_non_voting(const struct ctl_omega *o, uint8_t c)
{
	return c == o->fd.cfg.self_id ? o->non_voting : o->peers[c].non_voting;
}

/* The natural leader among alive candidates (of the voting ones only, if
 * voting_only): the lowest claimant, else the lowest candidate. */
static uint8_t natural_leader(const struct ctl_omega *o, uint32_t own_mask,
			      bool voting_only)
{
	uint8_t lowest = CTL_NONE;
	for (uint8_t c = 0; c < o->fd.cfg.member_count; c++) {
		if (!(own_mask & (1u << c)) ||
		    (voting_only && ctl_omega_non_voting(o, c)) ||
		    !ctl_omega_candidate(o, c, own_mask))
			continue;
		/* Stickiness: a candidate that leads keeps leading. */
		if (ctl_omega_claims(o, c))
			return c;
		if (lowest == CTL_NONE)
			lowest = c;
	}
	return lowest;
}

bool ctl_omega_can_lead(const struct ctl_omega *o, uint8_t member,
			uint64_t now_ns)
{
	CTL_ASSERT(o != NULL);
	if (member >= o->fd.cfg.member_count)
		return false;
	const uint32_t own_mask = ctl_fd_alive_mask(&o->fd, now_ns);
	return (own_mask & (1u << member)) &&
	       ctl_omega_candidate(o, member, own_mask);
}

uint8_t ctl_omega_leader(const struct ctl_omega *o, uint64_t now_ns)
{
	CTL_ASSERT(o != NULL);
	const uint8_t count = o->fd.cfg.member_count;
	const uint32_t own_mask = ctl_fd_alive_mask(&o->fd, now_ns);
	/* A member that cannot hear a majority follows no one; as a leader,
	 * it steps down. Rule 4 implies this too (fewer than a majority alive
	 * cannot report anyone heard by a majority); the check states it. */
	if (ctl_mask_count(own_mask) < ctl_majority(count))
		return CTL_NONE;
	/* Rule 1 (alive) here. Voting members go first; a non-voting one
	 * leads only when no voting one can (membership views differ while
	 * changes apply, and someone must lead for the laggards to learn
	 * them). */
	uint8_t c = natural_leader(o, own_mask, true);
	if (c == CTL_NONE)
		c = natural_leader(o, own_mask, false);
	if (c == CTL_NONE)
		return CTL_NONE;
	/* A transfer: the natural leader, whoever it is, may hand leadership
	 * to another candidate. Only its preference counts, so a stale one
	 * left at a former leader moves nothing. */
	uint8_t p = c == o->fd.cfg.self_id ? o->preferred
					    : o->peers[c].preferred;
	if (p != CTL_NONE && p != c && (own_mask & (1u << p)) &&
	    ctl_omega_candidate(o, p, own_mask))
		return p;
	return c;
}
