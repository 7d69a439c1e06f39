/* bypax control plane: the control policy as a pure step function.
 *
 * Everything the control thread decides, as one deterministic state machine
 * (DESIGN.md, "The purity rule"), so that bypaxd's control thread and the
 * simulator run the same code: leader choice (Omega, omega.h), whether this
 * replica may lead (recovered and caught up), its voting membership, the
 * leader hint for the worker and its periodic refresh, failover accounting,
 * leadership transfer and membership changes from the admin socket.
 *
 * Inputs, one per ctl_policy_step call, with the time in ns:
 *   CTL_IN_HEARTBEAT  a heartbeat from another member (its Omega state and
 *                     its replica's role, ballot, commit and applied index);
 *   CTL_IN_STATUS     this replica's worker status (ctl_link.h);
 *   CTL_IN_ADMIN      an admin command, parsed (bypaxctl: leader transfer,
 *                     members add/remove);
 *   CTL_IN_TICK       time passes: call it often (every millisecond or so);
 *                     heartbeats, the hint and timeouts are decided here.
 * Every step, whatever its input, tells the failure detector that this
 * process runs (ctl_fd_ran, fd.h rule 2): a gap of more than a heartbeat
 * interval between two steps is taken for a stall of ours.
 * Outputs, appended to a caller-owned struct ctl_policy_out: commands for the
 * worker (leader hint, membership change), a heartbeat to send to every other
 * member, replies to admin commands (a code, rendered by ctl_reply_text).
 *
 * The caller's part (ctl_daemon.c, tests/sim): sockets and rings, decoding,
 * checking that a heartbeat comes from the member's control address, and
 * the commands that are not policy (status, snapshot, fault isolate).
 */
#ifndef BYPAX_CONTROL_CTL_POLICY_H
#define BYPAX_CONTROL_CTL_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl_link.h"
#include "ctl_wire.h"
#include "omega.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CTL_POLICY_CMDS_MAX 4u
#define CTL_POLICY_REPLIES_MAX 4u

struct ctl_policy_config {
	struct ctl_omega_config omega;
	uint64_t log_slots;	  /* the replica's log ring (px log_slots) */
	uint32_t window_slots;	  /* alpha, for the membership reply */
	uint64_t hint_refresh_ns; /* resend the hint this often */
	uint64_t transfer_timeout_ns; /* a transfer not done by then fails */
	uint64_t reconfig_timeout_ns; /* the worker's answer to a change */
	uint64_t step_down_after_ns;  /* a leading worker's proposals not
					 committing this long: step down */
	uint64_t step_down_for_ns;    /* not ready to lead for this long */
	uint8_t static_leader;	      /* CTL_NONE: Omega chooses */
};

/* Fills cfg with the defaults (ctl_fd_config_default for the detector, hint
 * refresh 20 ms, transfer and reconfiguration timeouts 2 s, log_slots 1024,
 * window_slots 64, no static leader, step down after 500 ms without a
 * commit for 2 s). */
void ctl_policy_config_default(struct ctl_policy_config *cfg,
			       uint8_t member_count, uint8_t self_id);

/* Returns NULL if cfg is valid, else a static string naming the bad field. */
const char *ctl_policy_config_check(const struct ctl_policy_config *cfg);

enum ctl_admin_type {
	CTL_ADMIN_TRANSFER = 1,	      /* member: the target; CTL_NONE cancels */
	CTL_ADMIN_MEMBERS_ADD = 2,    /* ids: the members to let vote */
	CTL_ADMIN_MEMBERS_REMOVE = 3, /* ids: the member to stop voting */
};

struct ctl_admin {
	uint8_t type;	 /* enum ctl_admin_type */
	uint8_t member;	 /* CTL_ADMIN_TRANSFER */
	uint8_t ids;	 /* CTL_ADMIN_MEMBERS_*: bit i for member i */
	uint64_t client; /* the caller's tag, given back with the reply */
};

/* Replies to admin commands. X(name, ok, template): the template's %s is
 * the replying member, %m the member the reply is about, %l the leader (or
 * "none"), %k the member set, %o "add" or "remove", %w window_slots, %t a
 * time in ms, %e the worker's error text. */
#define CTL_REPLY_LIST(X)                                                      \
	X(TRANSFER_DONE, true, "ok: member %m leads now")                      \
	X(TRANSFER_ALREADY, true, "ok: member %m already leads")               \
	X(TRANSFER_CANCELLED, true, "ok: transfer cancelled")                  \
	X(RECONFIG_PROPOSED, true,                                             \
	  "ok: members %k proposed; they vote from %w slots after the "        \
	  "change commits")                                                    \
	X(NOT_LEADER, false,                                                   \
	  "error: member %s is not the leader (leader: %l); ask the leader")   \
	X(TRANSFER_STATIC, false,                                              \
	  "error: the leader is fixed (member %l, bypaxd --no-control); "      \
	  "no transfer")                                                       \
	X(TRANSFER_NOT_A_MEMBER, false,                                        \
	  "error: leader transfer: %m is not a member id")                     \
	X(TRANSFER_NOT_ALIVE, false,                                           \
	  "error: member %m is not alive; not transferring")                   \
	X(TRANSFER_NOT_VOTING, false,                                          \
	  "error: member %m does not vote; not transferring")                  \
	X(TRANSFER_CANNOT_LEAD, false,                                         \
	  "error: member %m cannot lead now (recovering, behind, or not "      \
	  "heard by a majority); not transferring")                            \
	X(TRANSFER_BUSY, false,                                                \
	  "error: a transfer to member %m is in progress; 'leader transfer "   \
	  "none' cancels it")                                                  \
	X(TRANSFER_ABORTED, false,                                             \
	  "error: the transfer to member %m was "                              \
	  "cancelled")                                                         \
	X(TRANSFER_TIMEOUT, false,                                             \
	  "error: member %m did not take over within %t ms; transfer "         \
	  "cancelled")                                                         \
	X(RECONFIG_NOT_READY, false,                                           \
	  "error: the replica is not ready for a membership change; try "      \
	  "again")                                                             \
	X(RECONFIG_NOT_A_MEMBER, false,                                        \
	  "error: members %o: not a member id of the config")                  \
	X(RECONFIG_NO_CHANGE, false,                                           \
	  "error: members %o: nothing would change")                           \
	X(RECONFIG_NONE_LEFT, false,                                           \
	  "error: members %o: no member would be left")                        \
	X(RECONFIG_BUSY, false,                                                \
	  "error: a membership change is still in progress; try again when "   \
	  "it has taken effect")                                               \
	X(RECONFIG_FAILED, false, "error: members %k: %e")                     \
	X(RECONFIG_TIMEOUT, false,                                             \
	  "error: members %k: the worker did not answer within %t ms")

enum ctl_reply_code {
#define CTL_REPLY_ENUM(name, ok, text) CTL_REPLY_##name,
	CTL_REPLY_LIST(CTL_REPLY_ENUM)
#undef CTL_REPLY_ENUM
	CTL_REPLY_COUNT
};

struct ctl_reply {
	uint64_t client; /* the command's tag */
	uint8_t code;	 /* enum ctl_reply_code */
	uint8_t self;	 /* the replying member */
	uint8_t member;	 /* the member the reply is about */
	uint8_t leader;	 /* the leader, or CTL_NONE */
	uint8_t mask;	 /* a member set */
	uint8_t op;	 /* the command's enum ctl_admin_type */
	int32_t rc;	 /* RECONFIG_FAILED: the worker's -BPX_E* */
	uint32_t window_slots;
	uint64_t ms;
};

/* Returns true for a reply that reports success ("ok: ..."). */
bool ctl_reply_ok(const struct ctl_reply *r);

/* Writes r as one line of text ending in '\n' (truncated to fit, always
 * NUL-terminated when cap > 0) and returns its length. */
size_t ctl_reply_text(const struct ctl_reply *r, char *buf, size_t cap);

/* Effects of one step, appended; the caller empties it (cmd_count,
 * reply_count, heartbeat) after acting on them. */
struct ctl_policy_out {
	struct ctl_cmd cmds[CTL_POLICY_CMDS_MAX]; /* for the worker, in order */
	uint32_t cmd_count;
	struct ctl_reply replies[CTL_POLICY_REPLIES_MAX];
	uint32_t reply_count;
	bool heartbeat; /* send hb to every other member */
	struct ctl_hb_msg hb;
};

/* Empties out. */
void ctl_policy_out_clear(struct ctl_policy_out *out);

enum ctl_input_kind {
	CTL_IN_TICK = 1,
	CTL_IN_HEARTBEAT = 2,
	CTL_IN_STATUS = 3,
	CTL_IN_ADMIN = 4,
};

struct ctl_input {
	uint8_t kind; /* enum ctl_input_kind */
	union {
		struct ctl_hb_msg heartbeat;
		struct ctl_worker_status status;
		struct ctl_admin admin;
	};
};

/* What this member last heard from another, for status displays and the
 * caught-up test. */
struct ctl_policy_peer {
	struct ctl_hb_msg last;
	uint64_t heard_ns;
	bool heard_any;
};

struct ctl_policy {
	struct ctl_policy_config cfg;
	struct ctl_omega omega;
	struct ctl_policy_peer peers[CTL_MEMBERS_MAX];
	struct ctl_worker_status status; /* the worker's latest */
	bool have_status;
	uint8_t leader; /* the current choice, or CTL_NONE */
	uint8_t hint_sent;
	bool hint_ever_sent;
	uint64_t hint_sent_ns;
	uint64_t last_failover_ns; /* a change between two leaders */
	bool failed_over;	   /* false: none since init */
	uint8_t failover_from, failover_to;
	uint64_t failovers;
	uint64_t step_downs;	   /* times this member stopped leading: stalled */
	struct {
		uint64_t commit_index; /* when the stall began */
		uint64_t since_ns;
		uint64_t until_ns;     /* stepped down (not ready) until then */
	} stall;
	struct {
		bool pending;
		uint8_t target;
		uint64_t client;
		uint64_t deadline_ns;
	} transfer;
	struct {
		bool pending;
		uint8_t mask; /* the proposed member set */
		uint64_t client;
		uint64_t seq; /* the worker's answer count to wait past */
		uint64_t deadline_ns;
	} reconfig;
};

/* cfg must pass ctl_policy_config_check (asserted). Not ready to lead until
 * the worker's status says it has recovered and caught up. */
void ctl_policy_init(struct ctl_policy *p, const struct ctl_policy_config *cfg,
		     uint64_t now_ns);

/* One input (see the top of this file). Returns false only for a heartbeat
 * that Omega dropped (counted in p->omega.drops), true otherwise. out must
 * have room for CTL_POLICY_CMDS_MAX commands and CTL_POLICY_REPLIES_MAX
 * replies more than it holds (asserted): empty it after every step. */
bool ctl_policy_step(struct ctl_policy *p, uint64_t now_ns,
		     const struct ctl_input *in, struct ctl_policy_out *out);

/* Whether this replica's log is close enough to the live members' to lead:
 * its applied index is within half the log ring of the highest commit index
 * it knows (its own, or a live peer's latest heartbeat). */
bool ctl_policy_caught_up(const struct ctl_policy *p, uint64_t now_ns);

#ifdef __cplusplus
}
#endif

#endif /* BYPAX_CONTROL_CTL_POLICY_H */
