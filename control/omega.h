/* bypax control plane: a pure Omega leader oracle over heartbeats.
 *
 * Deterministic state machine (DESIGN.md, "The purity rule"): time comes in
 * as now_ns, heartbeats come in through ctl_omega_receive and go out through
 * ctl_omega_tick; nothing is allocated, read from a clock or sent here.
 *
 * Leader rule. A member c is a candidate, in the view of this member, when
 *   1. c is alive per this member's failure detector (self always is);
 *   2. c's latest heartbeat said ready (self: own ready flag), i.e. c is
 *      not recovering and may lead;
 *   3. c hears a majority: the alive_mask of c's latest heartbeat (self: own
 *      alive mask) has at least member_count/2+1 members;
 *   4. c is heard by a majority: among the members alive to this member
 *      (self included), at least member_count/2+1 report c in their latest
 *      alive_mask (self: own alive mask).
 * A candidate claims leadership when its latest heartbeat names itself as
 * leader (leader_hint == its id), or names the member it hands leadership
 * to while that member does not claim yet (leader_hint == preferred: a
 * transfer in progress); for self, the heartbeat it last sent, the same
 * thing the others read. Among the candidates (voting
 * members first; non-voting ones only when no voting one is a candidate):
 *   5. the natural leader is the lowest-id claimant; when no candidate
 *      claims, the lowest-id candidate;
 *   6. if the natural leader prefers another candidate (a transfer, the
 *      `preferred` of its heartbeat), that one leads; else the natural
 *      leader does.
 * A member that does not itself hear a majority has no leader (CTL_NONE):
 * a leader cut off from a majority steps down rather than serve stale reads
 * or duel for ballots it cannot win. A member's heartbeat is used only
 * while that member is alive.
 *
 * Rule 4 is beyond the classic "lowest alive id": a member whose outgoing
 * links are cut still hears a majority, so without rule 4 it and the few that
 * hear it would follow it, while the rest follow the next id. Its own and the
 * others' heartbeats reveal that few hear it, so every view drops it.
 *
 * Rule 5 makes leadership sticky: a leader that stays a candidate (alive,
 * ready, i.e. recovered and caught up, hearing and heard by a majority)
 * keeps leading when a lower id returns, instead of a second leader change
 * per fault ("failback"). It moves only when asked (rule 6) or when it
 * stops being a candidate: it crashes or pauses (suspected), loses its
 * majority (rules 3, 4; it then also names no leader, or another, and stops
 * claiming), stops being ready, or leaves the voting configuration while a
 * voting candidate exists. Rule 6 reads the preference of whoever leads, so
 * a transfer works from the current leader, not only from the lowest id.
 *
 * Why this converges (Omega's eventual leadership). Once failure detection
 * stabilises, every correct, well-connected member sees the same alive set
 * and, within one heartbeat interval, the same latest heartbeat from each of
 * those members. Rules 1-6 are then evaluated on identical inputs, so all
 * of them pick the same member L: the lowest claimant if any candidate
 * claims, else the lowest candidate (or, by rule 6, its choice). Within one
 * more heartbeat every member's hint is L, so L is the only claimant left
 * (any other claimant now names L, not itself), which again selects L: the
 * choice is a fixed point and stays while nothing changes. Claims cannot
 * keep two leaders apart: a claim counts only while its sender is a
 * candidate in the evaluating member's own view, and among identical views
 * the lowest claimant wins everywhere.
 *
 * Why safety never depends on it. Omega is only a hint (DESIGN.md, "Safety
 * is Paxos's"): before stabilisation two members may both believe they lead
 * (or none does), two may claim at once, a stale claim may linger for a
 * failure-detector timeout; Paxos ballots order them and at most one value
 * is chosen per slot whatever this oracle says. A wrong answer costs time,
 * not data.
 *
 * Recovery. A restarting replica keeps ready false until its recovery round
 * is done (and the control policy until it has caught up), so it is not
 * chosen while it cannot lead; once ready it follows the claimant that led
 * meanwhile, and leads again only when that one stops being a candidate or
 * transfers leadership to it.
 */
#ifndef BYPAX_CONTROL_OMEGA_H
#define BYPAX_CONTROL_OMEGA_H

#include <stdbool.h>
#include <stdint.h>

#include "fd.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ctl_heartbeat {
	uint8_t from;
	uint8_t leader_hint; /* the sender's current leader choice or CTL_NONE */
	uint8_t ready;	     /* sender can lead (not recovering): 1, or
				CTL_READY_NON_VOTING if it is not a voting
				member; 0: it cannot */
	uint8_t preferred;   /* the member the sender hands leadership to
				(a transfer), or CTL_NONE */
	uint32_t alive_mask; /* members the sender hears (incl. itself) */
	uint64_t seq;	     /* per-sender counter */
};

struct ctl_omega_config {
	struct ctl_fd_config fd;
};

/* The latest heartbeat accepted from one member. */
struct ctl_omega_peer {
	uint64_t seq;
	uint32_t alive_mask;
	uint8_t leader_hint;
	uint8_t preferred;
	bool ready;
	bool non_voting;
	bool heard_any; /* false: nothing below is meaningful yet */
};

/* Heartbeats dropped by ctl_omega_receive, by reason (for /metrics). */
struct ctl_omega_drops {
	uint64_t bad_from;  /* from outside the membership, or from self */
	uint64_t malformed; /* a field out of range */
	uint64_t stale; /* seq not above the latest accepted from a live sender */
};

struct ctl_omega {
	struct ctl_fd fd;
	struct ctl_omega_peer peers[CTL_MEMBERS_MAX];
	struct ctl_omega_drops drops;
	uint64_t seq; /* of the next heartbeat this member sends */
	uint64_t next_heartbeat_ns; /* when ctl_omega_tick sends one */
	bool ready;		    /* own: may lead; false after init */
	uint8_t preferred;	    /* own transfer target, or CTL_NONE */
	bool non_voting;	    /* own: outside the voting configuration */
	uint8_t claimed;	    /* leader_hint and preferred of the */
	uint8_t claimed_preferred;  /* latest heartbeat sent (rule 5) */
};

#define CTL_READY_NON_VOTING 2u

/* cfg->fd must pass ctl_fd_config_check (asserted). The member starts not
 * ready (call ctl_omega_set_ready once it may lead) with a heartbeat due at
 * the first tick. */
void ctl_omega_init(struct ctl_omega *o, const struct ctl_omega_config *cfg,
		    uint64_t now_ns);

/* Whether this member votes in the current configuration. Voting members
 * are preferred as leader; a non-voting one leads only when none can. */
void ctl_omega_set_member(struct ctl_omega *o, bool voting);

/* Whether this member may lead (it is not recovering); sent in heartbeats. */
void ctl_omega_set_ready(struct ctl_omega *o, bool ready);

/* Leadership transfer: while this member is the natural leader (rule 5:
 * the lowest claimant, normally the member that leads now), every member
 * follows `member` instead, as long as it is a candidate. Once `member`
 * leads and claims, it is the natural leader and this preference no longer
 * counts; the caller should then clear it (ctl_policy does), or it would
 * count again if this member became the natural leader later. CTL_NONE, or
 * an id outside the membership, cancels. Safety stays with the ballots. */
void ctl_omega_set_preferred(struct ctl_omega *o, uint8_t member);

/* Returns true when a heartbeat is due; fills *hb to broadcast to every other
 * member. Returns false, leaving *hb untouched, otherwise. */
bool ctl_omega_tick(struct ctl_omega *o, uint64_t now_ns,
		    struct ctl_heartbeat *hb);

/* A heartbeat arrived (from another member). Returns true if it was applied;
 * false if dropped and counted in o->drops: from outside the membership or
 * from self, a field out of range (leader_hint, ready above 1, alive_mask
 * bits outside the membership or without the sender), or stale (seq not above
 * the latest accepted from a sender still alive; a sender that was suspected
 * may have restarted, so any seq is accepted from it). */
bool ctl_omega_receive(struct ctl_omega *o, uint64_t now_ns,
		       const struct ctl_heartbeat *hb);

/* Returns the leader this member should follow now (see the leader rule
 * above; it may be self), or CTL_NONE if there is none. */
uint8_t ctl_omega_leader(const struct ctl_omega *o, uint64_t now_ns);

/* Returns true if member claims leadership as this member knows it: its
 * latest heartbeat named itself as leader, or named the member it hands
 * leadership to while that one's latest does not name itself (self: the
 * latest heartbeat this member sent). Whether it is alive or a candidate is
 * not considered. False for an id outside the membership. */
bool ctl_omega_claims(const struct ctl_omega *o, uint8_t member);

/* Returns true if member is a candidate at now_ns (rules 1-4: alive, ready,
 * hears and is heard by a majority), whether or not it votes. False for an
 * id outside the membership. */
bool ctl_omega_can_lead(const struct ctl_omega *o, uint8_t member,
			uint64_t now_ns);

#ifdef __cplusplus
}
#endif

#endif /* BYPAX_CONTROL_OMEGA_H */
