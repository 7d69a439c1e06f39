/* The client engine: the retry, redirect, backoff, deadline and session
 * rules of a client lane (client.h's header comment), as a pure,
 * deterministic state machine. One implementation, run by libbypax
 * (client.c, over kernel UDP sockets), by the load generator
 * (dataplane/loadgen.c, over DPDK ports) and by the simulator's clients
 * (tests/sim/sim_world.c): what the simulator tests is what ships.
 *
 * The purity rule of DESIGN.md: time comes in as now_ns, randomness from
 * a PRNG in the state seeded by the caller; no I/O, no allocation, no
 * clocks, no stdio. Every call appends its effects to a caller-owned
 * bpx_engine_out: send this request to member m, this lane's request is
 * done (status, reply bytes), wake this lane at t. The caller encodes and
 * sends the requests, decodes the datagrams it receives into px_msg
 * replies, and reads the KV reply bytes of a completed request.
 *
 * One struct bpx_engine per client (the members, the timeouts, the leader
 * it last heard of, the PRNG, the counters), shared by its lanes; one
 * struct bpx_engine_lane per lane: a session of its own and at most one
 * request outstanding.
 *
 * The rules (each quoted where it is implemented in engine.c):
 *  - Sessions. A lane's first write first sends an OPEN (PX_FLAG_OPEN, an
 *    empty value) with the lane's nonce as client_id and a random seq; the
 *    OK reply carries the session id (bit 63 set), and the write goes out
 *    at once on it, seq 1, to the member that answered. Every write after
 *    it on the session has the next seq. EXPIRED or STALE ends the
 *    request (-BPX_EEXPIRED, -BPX_ESTALE: outcome unknown) and the lane's
 *    next write opens a new session; a timeout (-BPX_ETIMEDOUT) keeps the
 *    session, so the next write's higher seq makes a late copy STALE.
 *  - Reads are outside any session: the nonce, PX_FLAG_READ, and a seq
 *    from PX_SEQ_READ_BASE + 1 up.
 *  - Retries resend the SAME (client_id, seq) and command.
 *  - Routing: a request goes to the member last known to lead (member 0
 *    at first). REDIRECT with a valid hint other than the member tried
 *    goes to the hint at once; otherwise to the next member. After a
 *    request's member_count-th REDIRECT every further one waits the BUSY
 *    backoff before resending. BUSY waits 1 ms, doubling to 50 ms, and
 *    resends to the same member. A REDIRECT or BUSY from another member
 *    than the one tried is a late answer: ignored.
 *  - No reply within timeout_ns resends to the next member.
 *  - At the request's deadline (deadline_ns after submit) it is done with
 *    -BPX_ETIMEDOUT: the outcome is unknown.
 */
#ifndef BYPAX_CLIENT_ENGINE_H
#define BYPAX_CLIENT_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bypax/consensus.h"
#include "bypax/errors.h"

/* Always on; the engine's invariants and its callers' contract. Bad input
 * from the network is a counted drop (stats.ignored), never an assertion. */
#define BPX_ENGINE_ASSERT(x) ((x) ? (void)0 : __builtin_trap())

#define BPX_ENGINE_BACKOFF_MIN_NS 1000000ull  /* 1 ms */
#define BPX_ENGINE_BACKOFF_MAX_NS 50000000ull /* 50 ms */
/* Effects one call appends at most (a send and a timer, or a done). */
#define BPX_ENGINE_EFFECTS_PER_CALL 2u
#define BPX_ENGINE_OUT_MAX 4u
#define BPX_ENGINE_NO_WAKE UINT64_MAX

struct bpx_engine_config {
	uint8_t member_count; /* 1..PX_REPLICAS_MAX */
	/* A write's seq on the wire is seq << seq_tag_bits | the lane's tag
	 * (0 for plain 1, 2, ...): the load generator finds a reply's lane
	 * in its seq. 0..16. */
	uint8_t seq_tag_bits;
	uint64_t timeout_ns;  /* per attempt, > 0 */
	uint64_t deadline_ns; /* per request, all attempts, > 0 (saturating:
				 UINT64_MAX means never) */
	uint64_t seed;	      /* the PRNG: the seqs of OPENs */
};

struct bpx_engine_stats {
	uint64_t sent;	    /* requests sent, retries included */
	uint64_t retries;   /* resends of a request already sent */
	uint64_t redirects; /* REDIRECT replies taken */
	uint64_t timeouts;  /* attempts with no reply in timeout_ns */
	uint64_t busy;	    /* BUSY replies taken */
	uint64_t deadlines; /* requests done with -BPX_ETIMEDOUT */
	uint64_t completed; /* requests done, any status */
	uint64_t opens;	    /* sessions opened (OPEN answered) */
	uint64_t rekeys;    /* sessions lost (EXPIRED, STALE) */
	uint64_t ignored;   /* replies not for the outstanding attempt:
			       late, duplicate, from another member */
};

struct bpx_engine {
	struct bpx_engine_config cfg;
	uint8_t leader; /* the member requests go to first */
	uint64_t prng;
	struct bpx_engine_stats stats;
};

enum bpx_engine_lane_state {
	BPX_ENGINE_IDLE = 0, /* no request outstanding */
	BPX_ENGINE_WAIT,     /* sent; the attempt times out at next_ns */
	BPX_ENGINE_BACKOFF,  /* BUSY or redirected all round: resend at
				next_ns */
};

struct bpx_engine_lane {
	uint32_t index;	     /* reported in every effect */
	uint64_t nonce;	     /* OPENs and reads carry it */
	uint64_t tag;	     /* the low seq_tag_bits of its writes' seqs */
	uint64_t session_id; /* assigned by the log; 0: open one first */
	uint64_t seq;	     /* the session's last write (before tagging) */
	uint64_t read_seq;   /* reads: PX_SEQ_READ_BASE + read_seq */
	uint64_t client_id;  /* the attempt's: nonce or session_id */
	uint64_t wire_seq;   /* the attempt's seq */
	uint64_t start_ns;
	uint64_t deadline_ns;
	uint64_t next_ns;    /* attempt timeout (WAIT) or resend (BACKOFF) */
	uint64_t backoff_ns; /* 0 until the request's first backoff */
	const uint8_t *cmd;  /* the caller's, until the request is done */
	uint16_t cmd_len;
	uint8_t state;	/* enum bpx_engine_lane_state */
	uint8_t target; /* the member the last attempt went to */
	uint8_t redirect_streak;
	bool read;    /* a session-less read */
	bool opening; /* the attempt is the OPEN before the write */
};

enum bpx_engine_effect_kind {
	BPX_ENGINE_SEND = 1, /* send the request in .send */
	BPX_ENGINE_DONE,     /* the lane's request is done: .done */
	BPX_ENGINE_TIMER,    /* call bpx_engine_tick for the lane at .at_ns */
};

struct bpx_engine_send {
	uint8_t member; /* 0..member_count-1 */
	uint8_t type;	/* PX_MSG_REQUEST */
	uint8_t flags;	/* 0, PX_FLAG_OPEN or PX_FLAG_READ */
	uint64_t client_id;
	uint64_t seq;
	const uint8_t *cmd; /* the lane's command; NULL for an OPEN */
	uint16_t cmd_len;
};

/* The request a send asks for, as the replicas' wire codec takes it
 * (libbypax, the DPDK load generator and the simulator send it so). */
static inline struct px_msg bpx_engine_send_msg(const struct bpx_engine_send *s)
{
	return (struct px_msg){ .type = s->type,
				.from = PX_TO_CLIENT,
				.to = s->member,
				.client_id = s->client_id,
				.seq = s->seq,
				.flags = s->flags,
				.value = s->cmd,
				.value_len = s->cmd_len };
}

struct bpx_engine_done {
	/* 0: applied (OK); reply holds the state machine's reply bytes.
	 * -BPX_ETIMEDOUT (deadline), -BPX_EEXPIRED, -BPX_ESTALE: outcome
	 * unknown. -BPX_ETOOBIG, -BPX_EINVAL (BAD_REQUEST): refused, not
	 * applied. -BPX_EMALFORMED: an OPEN answered without a session id. */
	int status;
	uint8_t member;	      /* who answered; PX_TO_CLIENT at a deadline */
	const uint8_t *reply; /* borrowed from the reply: valid until the
				 caller's next use of that message */
	uint16_t reply_len;
};

struct bpx_engine_effect {
	uint8_t kind; /* enum bpx_engine_effect_kind */
	uint32_t lane;
	struct bpx_engine_send send;
	struct bpx_engine_done done;
	uint64_t at_ns;
};

/* Caller-owned; set count to 0 before a call (or between calls after
 * taking the effects). Each call asserts room for its effects. */
struct bpx_engine_out {
	struct bpx_engine_effect effects[BPX_ENGINE_OUT_MAX];
	uint32_t count;
};

/* Sets up e with leader 0. Asserts the configuration is in range. */
void bpx_engine_init(struct bpx_engine *e, const struct bpx_engine_config *cfg);

/* Sets up an idle lane with no session. nonce: nonzero, bit 63 clear;
 * tag < 1 << seq_tag_bits. */
void bpx_engine_lane_init(const struct bpx_engine *e, struct bpx_engine_lane *l,
			  uint32_t index, uint64_t nonce, uint64_t tag);

/* The member requests go to first; set_leader is a caller's hint (member
 * < member_count). */
uint8_t bpx_engine_leader(const struct bpx_engine *e);
void bpx_engine_set_leader(struct bpx_engine *e, uint8_t member);

/* Starts a request on an idle lane and sends it: a read (session-less)
 * or a write (on the session, or first the OPEN of one). cmd[0..cmd_len)
 * stays the caller's, unchanged, until the request is done. Appends SEND
 * and TIMER. */
void bpx_engine_submit(struct bpx_engine *e, struct bpx_engine_lane *l,
		       bool read, const uint8_t *cmd, uint16_t cmd_len,
		       uint64_t now_ns, struct bpx_engine_out *out);

/* Whether a reply with this (client_id, seq) answers the lane's
 * outstanding attempt. */
bool bpx_engine_lane_expects(const struct bpx_engine_lane *l,
			     uint64_t client_id, uint64_t seq);

/* A decoded REPLY for lane l (the caller found l by m->client_id). Returns
 * false, counted in stats.ignored, when it answers no outstanding attempt
 * of l (late, duplicate, another member's REDIRECT or BUSY); else true,
 * with its effects appended: DONE, or SEND and TIMER (the write after an
 * OPEN, a redirect), or TIMER (a backoff). */
bool bpx_engine_on_reply(struct bpx_engine *e, struct bpx_engine_lane *l,
			 const struct px_msg *m, uint64_t now_ns,
			 struct bpx_engine_out *out);

/* Runs the lane's due timer: the deadline (DONE), the attempt timeout or
 * the end of a backoff (SEND and TIMER). Before the lane's wake time, or
 * on an idle lane, it does nothing. */
void bpx_engine_tick(struct bpx_engine *e, struct bpx_engine_lane *l,
		     uint64_t now_ns, struct bpx_engine_out *out);

/* When the lane wants bpx_engine_tick next: BPX_ENGINE_NO_WAKE when idle. */
uint64_t bpx_engine_lane_wake_ns(const struct bpx_engine_lane *l);

/* The caller gives up the lane's outstanding request (its outcome is
 * unknown, as after a deadline; the session is kept). No effects. */
void bpx_engine_abandon(struct bpx_engine *e, struct bpx_engine_lane *l);

/* The lane's client is replaced by a new one (the simulator's churn): an
 * idle lane forgets its session, and its next write opens a new one. */
void bpx_engine_lane_drop_session(struct bpx_engine_lane *l);

static inline bool bpx_engine_lane_busy(const struct bpx_engine_lane *l)
{
	return l->state != BPX_ENGINE_IDLE;
}

#endif
