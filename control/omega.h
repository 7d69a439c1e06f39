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
 * The leader is the lowest-id candidate. A member that does not itself hear
 * a majority has no leader (CTL_NONE): a leader cut off from a majority
 * steps down rather than serve stale reads or duel for ballots it cannot win.
 * A member's heartbeat is used only while that member is alive.
 *
 * Rule 4 is beyond the classic "lowest alive id": a member whose outgoing
 * links are cut still hears a majority, so without rule 4 it and the few that
 * hear it would follow it, while the rest follow the next id. Its own and the
 * others' heartbeats reveal that few hear it, so every view drops it.
 *
 * Why this converges (Omega's eventual leadership). Once failure detection
 * stabilises, every correct, well-connected member sees the same alive set
 * and, within one heartbeat interval, the same latest heartbeat from each of
 * those members. Rules 1-4 are then evaluated on identical inputs, so all of
 * them pick the same lowest id, and keep it while nothing changes.
 *
 * Why safety never depends on it. Omega is only a hint (DESIGN.md, "Safety
 * is Paxos's"): before stabilisation two members may both believe they lead
 * (or none does); Paxos ballots order them and at most one value is chosen
 * per slot whatever this oracle says. A wrong answer costs time, not data.
 *
 * Recovery. Lowest id wins, so a recovered member 0 takes leadership back as
 * soon as the others hear it again and it reports ready. A restarting
 * replica keeps ready false until its recovery round is done, so it is not
 * chosen while it cannot lead.
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

/* Leadership transfer: while this member is the natural leader (the
 * lowest-id candidate), every member follows `member` instead, as long as
 * it is a candidate. CTL_NONE cancels. Safety stays with the ballots. */
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

#ifdef __cplusplus
}
#endif

#endif /* BYPAX_CONTROL_OMEGA_H */
