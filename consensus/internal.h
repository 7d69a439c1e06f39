/* Internal state of a px_replica. Only consensus/ includes this file. */
#ifndef BYPAX_CONSENSUS_INTERNAL_H
#define BYPAX_CONSENSUS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bypax/consensus.h"
#include "plant.h"

/* Assertions stay on in production (STYLE.md). The default handler traps;
 * the simulator overrides it (weak symbol) to print the seed first. */
void px_assert_fail(const char *expr, const char *file, int line);
#define PX_ASSERT(x)                                                           \
	do {                                                                   \
		if (!(x))                                                      \
			px_assert_fail(#x, __FILE__, __LINE__);                \
	} while (0)

/* A ballot round above this is a corrupt field: no cluster gets there (one
 * election a millisecond would take seventeen years). Rejecting it keeps
 * round + 1 within its 40 bits in px_ballot_make_inc, where a wrap would
 * lower a promise. */
#define PX_BALLOT_ROUND_MAX (1ull << 39)

/* Configuration changes in the log: client id 0, a one-byte member mask. */
#define PX_CONFIG_CLIENT_ID 0u
#define PX_CONFIG_HISTORY_MAX 8u

struct px_config_change {
	uint64_t effective_slot;
	uint8_t mask;
};

/* lease_holder of a replica that forgot whom it promised: refuses all. */
#define PX_LEASE_ANYONE_ELSE 0xfeu

#define PX_ALIGN 64u
#define PX_WORD_BITS 64u

/* One log slot, indexed by slot % log_slots. */
struct px_slot {
	uint64_t slot;            /* absolute index; valid iff in_use */
	uint64_t accepted_ballot; /* acceptor: 0 = nothing accepted */
	uint64_t proposed_ballot; /* leader: ballot ack_mask counts for */
	uint64_t sent_ns;         /* leader: last ACCEPT sent */
	uint32_t value_len;
	uint8_t ack_mask;         /* leader: acceptors that accepted */
	bool in_use;
	bool chosen;
	uint8_t value[PX_VALUE_BYTES_MAX];
};

/* In a batch, a read's seq carries this bit: applied without a session. */
#define PX_SEQ_READ_BIT (1ull << 63)
/* In a batch, an OPEN's seq carries this bit (and not the read bit): write
 * seqs stay at or below PX_SEQ_WRITE_MAX, under it (px_on_request). */
#define PX_SEQ_OPEN_BIT (1ull << 62)
/* A session id assigned by an OPEN applied at (slot, index in its batch):
 * unique, and the same on every replica. */
#define PX_SESSION_INDEX_BITS 10u
#define PX_SESSION_SLOT_MAX                                                   \
	((1ull << (63 - PX_SESSION_INDEX_BITS)) - 1)

/* A request waiting at the leader for a slot. */
struct px_pending {
	uint64_t client_id;
	uint64_t seq;               /* PX_SEQ_READ_BIT set for a read,
				       PX_SEQ_OPEN_BIT for an OPEN */
	uint32_t len;
	uint8_t cmd[PX_COMMAND_BYTES_MAX];
};

/* What the leader knows of each follower, for catch-up. */
struct px_peer {
	uint64_t commit_index;
	uint64_t applied_index;
	uint64_t log_start;
	uint64_t catchup_sent_ns;
	uint64_t snapshot_sent_ns;
	uint64_t lease_ack_ns;  /* our heartbeat send time it echoed, this term */
};

/* Phase 1 of a candidate (or of a recovering replica's fencing round). */
struct px_phase1 {
	uint64_t ballot;
	uint64_t from;              /* first slot covered */
	uint64_t end;               /* max slot_end reported, for re-proposal */
	uint64_t sent_ns;
	uint64_t entries_expected[PX_REPLICAS_MAX];
	uint64_t entries_seen[PX_REPLICAS_MAX];
	uint8_t complete_mask;      /* acceptors whose whole report arrived */
	uint64_t *seen_bits;        /* [replica][log_slots / 64] */
};

/* A client session: the last applied request and its reply (exactly-once). */
struct px_session {
	uint64_t client_id;
	uint64_t last_seq;
	uint64_t last_slot;         /* deterministic LRU eviction */
	uint16_t reply_len;
	uint8_t status;
	bool in_use;
	uint8_t reply[PX_REPLY_BYTES_MAX];
};

struct px_session_table {
	struct px_session *entries; /* session_max */
	uint32_t *index;            /* open addressing, index_slots */
	uint64_t *scratch;          /* index_slots: validating a snapshot */
	uint32_t index_slots;       /* power of two, >= 2 * session_max */
	uint32_t count;
	uint32_t cap;
};

struct px_replica {
	struct px_config cfg;
	enum px_role role;
	uint8_t leader_hint;
	uint8_t known_leader;

	/* Acceptor. */
	uint64_t promised;          /* highest ballot promised */
	uint8_t lease_holder;       /* the leader our lease promise is to */
	uint64_t lease_until_ns;    /* no other candidate before this */
	uint64_t accepted_end;      /* 1 + highest slot ever accepted */

	/* Proposer. */
	uint64_t ballot;            /* own ballot while candidate/leader */
	uint64_t highest_seen;      /* highest ballot seen anywhere */
	uint64_t next_slot;         /* next slot to propose */
	uint64_t repropose_end;     /* slots below it are phase-1 recovered */
	uint64_t next_election_ns;  /* backoff after a lost ballot */
	uint64_t heartbeat_ns;      /* next COMMIT heartbeat */
	uint64_t commit_sent;       /* commit index last told followers */
	uint64_t term_start_ns;     /* when this replica became leader */
	uint64_t snapshot_asked_ns; /* leader: last SNAPSHOT_REQ to catch up */
	struct px_phase1 p1;
	struct px_peer peers[PX_REPLICAS_MAX];

	/* Membership (membership.c): replicated, part of snapshots. */
	struct px_config_change history[PX_CONFIG_HISTORY_MAX];
	uint8_t history_count;
	bool config_proposed;       /* leader: a change is queued or in flight */

	/* Crash vector (recovery.c): the highest incarnation known of each
	 * replica; our own entry is our own incarnation. */
	uint16_t incarnation[PX_REPLICAS_MAX];

	/* Recovery (restarted without state). */
	uint16_t recovery_inc;       /* the incarnation this round announces */
	uint16_t recovery_inc_seen;  /* highest any acceptor knew of us */
	uint64_t recovery_nonce;     /* of this life; PROMISEs echo it */
	uint16_t incarnation_to_adopt; /* someone knows us at this
					  incarnation: take it at the end of
					  the call (recovery.c) */
	/* As an acceptor: what we knew of each replica's incarnation before
	 * its recovery round with this nonce first asked us, so a retransmit
	 * or a restarted round of the same life gets the same answer. */
	uint64_t asked_nonce[PX_REPLICAS_MAX];
	uint16_t asked_knew[PX_REPLICAS_MAX];
	bool recovery_snapshot_asked;
	bool recovery_have_snapshot; /* any snapshot arrived, even an old one */
	uint64_t recovery_snapshot_ns;

	/* Durability (persist.c): what the records emitted so far hold. */
	uint64_t persisted_promise; /* the last PROMISE record's ballot */
	uint64_t persisted_commit;  /* the last COMMIT record's index */
	bool restart_fence_due;     /* replayed from disk: fence leases at
				       the first call that has a clock */

	/* Learner. */
	uint64_t log_start;         /* oldest slot held */
	uint64_t commit_index;      /* every slot below is chosen */
	uint64_t applied_index;     /* every slot below is applied */

	/* Request queue at the leader (FIFO ring). */
	struct px_pending *queue;
	uint32_t queue_head;
	uint32_t queue_count;

	struct px_slot *log;
	struct px_session_table sessions;
	uint64_t prng;
	struct px_stats stats;
	/* What px_check_invariants saw last (invariants.c). */
	struct px_invariant_seen {
		uint64_t promised;
		uint64_t commit_index;
		uint64_t applied_index;
		uint16_t incarnation;
	} seen;
	/* Replies handed out in one call live here until the next call. */
	uint8_t *reply_arena;
	uint32_t reply_arena_used;
	uint32_t reply_arena_cap;
	uint8_t reply_buf[PX_REPLY_BYTES_MAX];
};

/* Slots applied per call are bounded by this many slots' worth of replies. */
#define PX_REPLY_ARENA_SLOTS 4u

/* replica.c: outbox and small helpers. */
struct px_msg *px_out_push(struct px_replica *r, struct px_outbox *out);
uint32_t px_out_room(const struct px_outbox *out);
struct px_msg *px_out_to(struct px_replica *r, struct px_outbox *out,
			 uint8_t type, uint8_t to);
void px_broadcast_prepare(struct px_replica *r, uint64_t now_ns,
			  struct px_outbox *out);
uint64_t px_prng_next(struct px_replica *r);
void px_drop(struct px_replica *r, enum px_drop_reason reason);
void px_become_follower(struct px_replica *r, uint64_t now_ns,
			struct px_outbox *out);
void px_note_ballot(struct px_replica *r, uint64_t ballot);

/* log (replica.c): the fixed ring of slots. */
struct px_slot *px_log_get(struct px_replica *r, uint64_t slot);
struct px_slot *px_log_claim(struct px_replica *r, uint64_t slot);
bool px_log_make_room(struct px_replica *r, uint64_t slot);
void px_log_reset_from(struct px_replica *r, uint64_t new_start);

/* acceptor.c */
int px_on_prepare(struct px_replica *r, uint64_t now_ns,
		  const struct px_msg *m, struct px_outbox *out);
int px_on_accept(struct px_replica *r, uint64_t now_ns,
		 const struct px_msg *m, struct px_outbox *out);
int px_on_commit(struct px_replica *r, uint64_t now_ns,
		 const struct px_msg *m, struct px_outbox *out);
int px_on_chosen(struct px_replica *r, uint64_t now_ns,
		 const struct px_msg *m, struct px_outbox *out);
void px_learn_commit(struct px_replica *r, uint64_t ballot,
		     uint64_t commit_index);

/* proposer.c */
/* A follower may run phase 1 now: its election backoff is over and it
 * promised no other leader a lease that still runs. */
bool px_may_start_election(const struct px_replica *r, uint64_t now_ns);
void px_start_phase1(struct px_replica *r, uint64_t now_ns,
		     struct px_outbox *out);
int px_on_promise(struct px_replica *r, uint64_t now_ns,
		  const struct px_msg *m, struct px_outbox *out);
int px_on_nack(struct px_replica *r, uint64_t now_ns, const struct px_msg *m,
	       struct px_outbox *out);
int px_on_accepted(struct px_replica *r, uint64_t now_ns,
		   const struct px_msg *m, struct px_outbox *out);
int px_on_status(struct px_replica *r, uint64_t now_ns,
		 const struct px_msg *m, struct px_outbox *out);
int px_on_request(struct px_replica *r, uint64_t now_ns,
		  const struct px_msg *m, struct px_outbox *out);
/* Appends to the leader's request queue, which must have room. */
void px_queue_push(struct px_replica *r, uint64_t client_id, uint64_t seq,
		   const uint8_t *cmd, uint32_t len);
void px_propose_queued(struct px_replica *r, uint64_t now_ns,
		       struct px_outbox *out);
void px_proposer_tick(struct px_replica *r, uint64_t now_ns,
		      struct px_outbox *out);
void px_queue_redirect_all(struct px_replica *r, struct px_outbox *out);
void px_phase1_merge(struct px_replica *r, const struct px_msg *m);
/* A replica was found to have crashed since it voted: its promise and
 * acceptances from that life stop counting. */
void px_forget_votes(struct px_replica *r, uint8_t id);
bool px_phase1_record(struct px_replica *r, const struct px_msg *m,
		      struct px_outbox *out);

/* recovery.c: incarnations (crash vectors). */
uint16_t px_own_incarnation(const struct px_replica *r);
void px_cv_fill(const struct px_replica *r, uint64_t cv[2]);
/* Learns that replica id is in incarnation inc (or later): its votes from
 * earlier lives no longer count. */
void px_cv_learn(struct px_replica *r, uint8_t id, uint16_t inc);
/* Merges the crash vector of a PROMISE or ACCEPTED and says whether the
 * message comes from a life of its sender that has since crashed. */
bool px_cv_merge_is_stale(struct px_replica *r, const struct px_msg *m);
/* Learns every entry of a crash vector (ACCEPT, CHOSEN, COMMIT, snapshots). */
void px_cv_merge(struct px_replica *r, const uint64_t cv[2]);
/* Takes the later incarnation of ours someone knew of during this call
 * (px_cv_learn defers it here, where the outbox is). */
void px_adopt_incarnation_if_due(struct px_replica *r, uint64_t now_ns,
				 struct px_outbox *out);
/* Entries of a PROMISE (seq carries the recovery echo above them). */
static inline uint64_t px_promise_entries(const struct px_msg *m)
{
	return m->seq & 0xffffffffu;
}

/* recovery.c */
void px_recovery_start(struct px_replica *r, uint64_t now_ns,
		       struct px_outbox *out);
int px_recovery_on_promise(struct px_replica *r, uint64_t now_ns,
			   const struct px_msg *m, struct px_outbox *out);
void px_recovery_tick(struct px_replica *r, uint64_t now_ns,
		      struct px_outbox *out);
void px_recovery_on_nack(struct px_replica *r, uint64_t now_ns,
			 const struct px_msg *m, struct px_outbox *out);

/* persist.c: the records of durable mode (consensus.h, "Durability").
 * Each is a no-op (true) when the replica is not durable. */
/* A PROMISE record if the promise rose above the last one recorded.
 * Returns false when the outbox had no room (it is retried at the next
 * call: px_persist_begin). */
bool px_persist_promise(struct px_replica *r, struct px_outbox *out);
/* An ACCEPTED record of slot s's accepted ballot and value. Callers make
 * room first (px_persist_room), so that no accepted state changes that
 * no record holds. */
void px_persist_accepted(struct px_replica *r, const struct px_slot *s,
			 struct px_outbox *out);
/* A COMMIT record if the commit index rose since the last one. */
void px_persist_commit(struct px_replica *r, struct px_outbox *out);
/* Whether the outbox has room for n records (always, when not durable);
 * counts an outbox-full drop when not. */
bool px_persist_room(struct px_replica *r, const struct px_outbox *out,
		     uint32_t n);
/* At the start of every call with a clock: the lease fence of a replica
 * just restarted from disk, and a PROMISE record an earlier call had no
 * room for. */
void px_persist_begin(struct px_replica *r, uint64_t now_ns,
		      struct px_outbox *out);

/* learner.c */
void px_begin_call(struct px_replica *r);
void px_reply(struct px_replica *r, struct px_outbox *out, uint64_t client_id,
	      uint64_t seq, uint8_t status, const uint8_t *value,
	      uint32_t value_len);
void px_advance_commit(struct px_replica *r);
void px_apply_committed(struct px_replica *r, struct px_outbox *out);

/* membership.c */
bool px_quorum(uint8_t votes, uint8_t config);
uint8_t px_all_replicas(const struct px_replica *r);
void px_members_init(struct px_replica *r);
uint8_t px_config_at(const struct px_replica *r, uint64_t slot);
bool px_config_pending(const struct px_replica *r);
struct px_batch_entry;
void px_config_applied(struct px_replica *r, uint64_t slot,
		       const struct px_batch_entry *e);
uint64_t px_history_digest(const struct px_replica *r);

/* session.c */
size_t px_session_mem_size(uint32_t session_max);
void px_session_init(struct px_session_table *t, void *mem, uint32_t cap);
struct px_session *px_session_find(struct px_session_table *t,
				   uint64_t client_id);
struct px_session *px_session_insert(struct px_session_table *t,
				     uint64_t client_id, uint64_t slot);
/* The id of the session an OPEN applied at (slot, index) creates. */
uint64_t px_session_id_make(uint64_t slot, uint32_t index);
void px_session_clear(struct px_session_table *t);
uint64_t px_session_digest(const struct px_session_table *t);
size_t px_session_snapshot_size(const struct px_session_table *t);
size_t px_session_save(const struct px_session_table *t, uint8_t *buf);
/* Checks a saved table (px_session_save) without changing t: 0 and the
 * bytes used, or -BPX_EMALFORMED (also for a client saved twice). */
int px_session_validate(struct px_session_table *t, const uint8_t *buf,
			size_t len, size_t *used);
int px_session_load(struct px_session_table *t, const uint8_t *buf,
		    size_t len, size_t *used);

/* batch.c: a slot's value is a sequence of (client_id, seq, len, command). */
struct px_batch_entry {
	uint64_t client_id;
	uint64_t seq;
	uint32_t len;
	const uint8_t *cmd;
};
struct px_batch_iter {
	const uint8_t *pos;
	const uint8_t *end;
};
void px_batch_iter_init(struct px_batch_iter *it, const uint8_t *value,
			uint32_t len);
/* Returns 1 with *e filled, 0 at the end, -BPX_EMALFORMED on a bad batch. */
int px_batch_next(struct px_batch_iter *it, struct px_batch_entry *e);
uint32_t px_batch_append(uint8_t *value, uint32_t len, uint32_t cap,
			 const struct px_pending *p);
/* Little-endian helpers (the batch and snapshot formats). */
void px_put_u64(uint8_t *p, uint64_t v);
uint64_t px_get_u64(const uint8_t *p);
void px_put_u16(uint8_t *p, uint16_t v);
uint16_t px_get_u16(const uint8_t *p);
void px_put_u32(uint8_t *p, uint32_t v);
uint32_t px_get_u32(const uint8_t *p);

/* A message's value is NULL when empty (a decoder has no bytes to point
 * at), and memcpy/memcmp must not be handed NULL even for 0 bytes (C11
 * 7.24.1): copy and compare message values through these. */
static inline void px_value_copy(uint8_t *dst, const uint8_t *src,
				 uint32_t len)
{
	if (len > 0)
		memcpy(dst, src, len);
}

static inline bool px_value_equal(const uint8_t *a, uint32_t a_len,
				  const uint8_t *b, uint32_t b_len)
{
	return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

static inline uint8_t px_popcount8(uint8_t x)
{
	return (uint8_t)__builtin_popcount(x);
}

static inline bool px_is_member(const struct px_replica *r, uint8_t id)
{
	return id < r->cfg.replica_count;
}

#endif
