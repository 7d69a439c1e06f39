/* bypax consensus: a pure, deterministic Multi-Paxos replica.
 *
 * The replica never calls out. Input is one message (px_step) or a tick
 * (px_tick), with the current time in nanoseconds passed in; output is
 * effects appended to a caller-owned outbox: messages to other replicas and
 * replies to clients. Committed slots are applied, in order, through the
 * state machine given in the config (sm.h).
 *
 * Memory: px_replica_size(cfg) bytes, given once to px_init; nothing is
 * allocated afterwards. Messages in the outbox may point into the replica's
 * memory (msg.value): encode or copy them before the next call on the
 * replica.
 */
#ifndef BYPAX_CONSENSUS_H
#define BYPAX_CONSENSUS_H

#include <stddef.h>
#include <stdint.h>

#include "bypax/errors.h"
#include "bypax/sm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PX_REPLICAS_MAX 7u
/* One slot's value (a batch of requests) fits one Ethernet frame of 1514
 * bytes with the largest header that carries it (a PROMISE: 42 bytes of
 * Ethernet/IPv4/UDP, 16 of bypax header, 8 fields of 8 bytes). */
#define PX_VALUE_BYTES_MAX 1392u
/* Each request in a batch: u64 client_id, u64 seq, u16 command length. */
#define PX_BATCH_ENTRY_HEADER_BYTES 18u
#define PX_COMMAND_BYTES_MAX (PX_VALUE_BYTES_MAX - PX_BATCH_ENTRY_HEADER_BYTES)
#define PX_REPLY_BYTES_MAX BPX_SM_REPLY_BYTES_MAX
/* Destination of a reply to a client (msg.to). */
#define PX_TO_CLIENT 0xffu
#define PX_REPLICA_NONE 0xffu

/* A ballot is (round, incarnation, replica id), ordered in that order and
 * packed so that integer order is ballot order: round in bits 24..63,
 * the proposer's incarnation in bits 8..23, its id in bits 0..7. 0 is
 * "no ballot". The incarnation counts the proposer's recoveries from a
 * crash (consensus/recovery.c), so two lives of one replica never share
 * a ballot, and a ballot tells which life sent it. */
#define PX_INCARNATION_MAX 0xffffu
static inline uint64_t px_ballot_make_inc(uint64_t round, uint16_t incarnation,
					  uint8_t replica_id)
{
	return (round << 24) | ((uint64_t)incarnation << 8) | replica_id;
}
static inline uint64_t px_ballot_make(uint64_t round, uint8_t replica_id)
{
	return px_ballot_make_inc(round, 0, replica_id);
}
static inline uint64_t px_ballot_round(uint64_t ballot) { return ballot >> 24; }
static inline uint16_t px_ballot_incarnation(uint64_t ballot)
{
	return (uint16_t)(ballot >> 8);
}
static inline uint8_t px_ballot_owner(uint64_t ballot)
{
	return (uint8_t)(ballot & 0xffu);
}

/* A crash vector: the highest incarnation known of every replica, 16 bits
 * each, entries 0-3 in word 0 and 4-6 in word 1 (low bits first). PROMISE
 * and ACCEPTED carry the sender's, so a proposer learns that a replica
 * has recovered from anyone who heard of it (recovery.c). */
static inline uint16_t px_cv_get(const uint64_t cv[2], uint8_t i)
{
	return (uint16_t)(cv[i / 4] >> (16 * (i % 4)));
}
static inline void px_cv_set(uint64_t cv[2], uint8_t i, uint16_t inc)
{
	uint64_t shift = 16u * (i % 4u);
	cv[i / 4] = (cv[i / 4] & ~(0xffffull << shift)) |
		    ((uint64_t)inc << shift);
}

enum px_msg_type {
	PX_MSG_REQUEST = 1,   /* client -> replica: client_id, seq, value=command */
	PX_MSG_REPLY = 2,     /* replica -> client: client_id, seq, status,
				 leader_hint, value=state machine reply */
	PX_MSG_PREPARE = 3,   /* 1a: ballot; slot = first slot covered;
				 flags PX_FLAG_RECOVERY for a recovery round,
				 whose seq is a nonce the PROMISEs echo */
	PX_MSG_PROMISE = 4,   /* 1b: ballot; slot; accepted_ballot and value of
				 that slot (0: none); slot_end = end of the
				 acceptor's accepted slots; log_start; seq =
				 entries in the promise | echo << 32 (the low
				 32 bits of a recovery PREPARE's nonce);
				 crash_vector (the acceptor's; in answer to a
				 recovery, the recovering replica's entry is
				 what the acceptor knew before this PREPARE) */
	PX_MSG_ACCEPT = 5,    /* 2a: ballot, slot, value, commit_index */
	PX_MSG_ACCEPTED = 6,  /* 2b: ballot, slot, commit_index, applied_index,
				 crash_vector */
	PX_MSG_NACK = 7,      /* ballot = the higher promise that rejected */
	PX_MSG_COMMIT = 8,    /* leader heartbeat: ballot, commit_index; seq =
				 the leader's clock when sent (lease) */
	PX_MSG_STATUS = 9,    /* follower -> leader: commit_index, applied_index,
				 log_start; seq = the heartbeat's seq echoed */
	PX_MSG_CHOSEN = 10,   /* catch-up: slot's chosen value, commit_index */
	PX_MSG_SNAPSHOT_REQ = 11, /* ask the receiver for a snapshot */
	PX_MSG_SNAPSHOT = 12, /* outbox only: the caller takes this replica's
				 snapshot (px_snapshot_save) and delivers it to
				 msg.to, which calls px_snapshot_install */
	/* 13 is the wire's own BPX_WIRE_SNAPSHOT_CHUNK (wire.h): never a
	 * consensus message. */
	PX_MSG_PERSIST = 14,  /* outbox only, durable mode: a record for the
				 caller's disk (flags: PX_PERSIST_*, below) */
	PX_MSG_TYPE_MAX = 14,
};

/* Durability (cfg.durable = 1): the persist effect.
 *
 * The replica emits PX_MSG_PERSIST records into its outbox whenever what
 * it must not forget changes: the ballot it promised, and a slot's
 * accepted (ballot, value). msg.flags says which record it is:
 *  - PX_PERSIST_PROMISE: ballot = the ballot now promised (emitted
 *    whenever the promise rises, a candidate's own ballot included);
 *  - PX_PERSIST_ACCEPTED: slot, ballot = the ballot the slot was accepted
 *    in, value/value_len = its value (borrowed, valid until the next call,
 *    like every outbox value); emitted at every change of a slot's
 *    accepted state (an ACCEPT, the leader's own proposal, a value learnt
 *    chosen through CHOSEN, a value merged in phase 1);
 *  - PX_PERSIST_COMMIT: commit_index; an optimisation for replay, never
 *    needed for safety: the caller may lose or skip any COMMIT record;
 *  - PX_PERSIST_MEMBERS: never emitted. Membership changes are values in
 *    the log, rebuilt by replaying it (membership.c).
 * msg.from and msg.to are this replica's id; no record goes on the wire
 * (the codec has no form for PX_MSG_PERSIST).
 *
 * The caller's rule: every PERSIST record in an outbox is durable (written
 * and synced) before the caller sends any message that comes after it in
 * that outbox. Syncing once per outbox or poll pass, before anything of it
 * is sent, is enough ("group commit"). Records of the outbox's tail, with
 * no message after them, may be synced later: a crash that loses them
 * loses nothing anyone was told.
 *
 * And a snapshot installed from a peer (px_snapshot_install returned 0)
 * is durable on disk (px_snapshot_save right after the install) before
 * any record of a later outbox is: the install dropped the replica's log
 * below its index, the records still hold the older values of those
 * slots, and a later COMMIT record replayed over them without the
 * snapshot would commit them.
 *
 * Restart: px_init with cfg.durable = 1 (and cfg.recovering = 0), then,
 * if the disk has a snapshot, px_snapshot_install of it, then
 * px_durable_replay of every PERSIST record read back, in the order they
 * were emitted. The replica is then a follower that votes at once (no
 * recovery round): it forgot nothing it had told anyone. For lease_ns
 * after it restarts it promises no candidate and does not run itself (a
 * lease it granted before the crash may still run; DESIGN.md).
 *
 * Snapshots on disk: between calls the caller may save a snapshot
 * (px_snapshot_save, or px_snapshot_save_head and the state machine's
 * frozen bytes), write it, and once it is durable drop the records of
 * slots below its applied index (ACCEPTED records below it, COMMIT records
 * at or below it); before dropping any, it appends a PROMISE record with
 * px_promised_ballot(r), so that the promise outlives the records that
 * carried it. */
#define PX_PERSIST_PROMISE 1u
#define PX_PERSIST_ACCEPTED 2u
#define PX_PERSIST_COMMIT 3u
#define PX_PERSIST_MEMBERS 4u

#define PX_FLAG_RECOVERY 0x01u
/* REQUEST: a read-only command outside the client's session. It is not
 * deduplicated (reading twice is harmless), so its seq only matches the
 * reply; clients draw such seqs from PX_SEQ_READ_BASE up, a range their
 * writes never reach, so a late reply can never be mistaken for another.
 * The leader answers it under its lease when it can, else through the
 * log. A command the state machine does not accept as read-only gets
 * PX_REPLY_BAD_REQUEST. */
#define PX_FLAG_READ 0x02u
#define PX_SEQ_READ_BASE (1ull << 62)
/* REQUEST: open a session. Writes are applied exactly once per session,
 * and sessions exist only once the log has created them: the client sends
 * OPEN with a client_id of its choosing (a nonce, nonzero, bit 63 clear)
 * that only routes the reply, and any seq (echoed). The leader puts it in
 * the log like a write; applying it creates a session whose id is
 * assigned from its place in the log (PX_SESSION_ID_BIT set, never chosen
 * by a client), with no request applied yet, and the OK reply carries that
 * id as PX_SESSION_ID_BYTES bytes, little-endian. The client then writes
 * with client_id = that id and seq 1, 2, ... A retried OPEN may open a
 * second session; the spare one is evicted in time.
 *
 * A write whose session the replicas do not hold (evicted, or never
 * opened) gets PX_REPLY_EXPIRED, whatever its seq: its outcome is unknown,
 * and the client opens a new session for its next write. */
#define PX_FLAG_OPEN 0x04u
#define PX_SESSION_ID_BIT (1ull << 63)
#define PX_SESSION_ID_BYTES 8u
/* Seqs of writes and OPENs are 1..PX_SEQ_WRITE_MAX: a request above it is
 * malformed (dropped and counted), so the log can mark OPENs and reads in
 * the bits above. */
#define PX_SEQ_WRITE_MAX (PX_SEQ_READ_BASE - 1)

/* Status of a reply to a client. */
enum px_reply_status {
	PX_REPLY_OK = 0,         /* applied; value is the state machine's reply */
	PX_REPLY_REDIRECT = 1,   /* not the leader; leader_hint may name it */
	PX_REPLY_BUSY = 2,       /* queue or window full: retry later */
	PX_REPLY_TOO_BIG = 3,    /* command longer than PX_COMMAND_BYTES_MAX */
	PX_REPLY_STALE = 4,      /* a newer seq of this client was applied */
	PX_REPLY_EXPIRED = 5,    /* no such session (evicted, or not opened):
				    the write's outcome is unknown */
	PX_REPLY_BAD_REQUEST = 6, /* PX_FLAG_READ on a command that writes */
	PX_REPLY_STATUS_MAX = 6,
};

struct px_msg {
	uint8_t type;          /* enum px_msg_type */
	uint8_t from;          /* sender replica id (PX_TO_CLIENT for clients) */
	uint8_t to;            /* receiver replica id, or PX_TO_CLIENT */
	uint8_t flags;
	uint8_t status;        /* REPLY: enum px_reply_status */
	uint8_t leader_hint;   /* REPLY: the leader this replica knows */
	uint64_t ballot;
	uint64_t slot;
	uint64_t slot_end;
	uint64_t accepted_ballot;
	uint64_t commit_index; /* every slot below it is chosen */
	uint64_t applied_index;
	uint64_t log_start;
	uint64_t client_id;
	uint64_t seq;
	uint64_t crash_vector[2]; /* PROMISE, ACCEPTED: px_cv_get */
	uint32_t value_len;
	const uint8_t *value;  /* borrowed: valid until the next call */
};

struct px_outbox {
	struct px_msg *msgs;
	uint32_t count;
	uint32_t cap;
};

enum px_role {
	PX_ROLE_FOLLOWER = 0,
	PX_ROLE_CANDIDATE = 1,  /* leader in phase 1 */
	PX_ROLE_LEADER = 2,     /* phase 1 done, proposing */
	PX_ROLE_RECOVERING = 3, /* restarted without state; does not vote */
};

struct px_config {
	uint32_t cluster_id;
	uint8_t replica_count;        /* 1..PX_REPLICAS_MAX, odd recommended */
	uint8_t self_id;              /* 0..replica_count-1 */
	uint32_t window_slots;        /* slots in flight at once (W) */
	uint32_t log_slots;           /* power of two, >= 2 * window_slots */
	uint32_t batch_bytes_max;     /* <= PX_VALUE_BYTES_MAX */
	uint32_t batch_requests_max;  /* requests per slot */
	uint32_t request_queue_max;   /* pending requests at the leader */
	uint32_t session_max;         /* client sessions kept */
	uint32_t catchup_burst;       /* CHOSEN/ACCEPT messages per resend */
	uint64_t heartbeat_interval_ns;
	uint64_t retransmit_ns;
	/* Leader leases for reads without a log write: a follower that hears
	 * the leader's heartbeat promises no other candidate for lease_ns (its
	 * clock); the leader serves reads while a majority's promises last,
	 * shortened for clocks that drift apart by up to clock_drift_ppm.
	 * 0 turns lease reads off (reads then go through the log). */
	uint64_t lease_ns;
	uint32_t clock_drift_ppm;
	uint64_t seed;                /* PRNG seed (backoff jitter, recovery
					 nonces): must differ between two
					 starts of one replica, so take it
					 from a random source */
	int recovering;               /* started without its state */
	int durable;                  /* 0: state in memory only; 1: the
					 replica emits PX_MSG_PERSIST records
					 and restarts from them (above).
					 A durable replica never recovers:
					 recovering must be 0 */
	uint8_t initial_members;      /* voting replicas at the start, as a
					 bitmask; 0: all replica_count */
	const struct bpx_sm_ops *sm_ops;
	void *sm;
};

/* Fills cfg with defaults for an n-replica cluster and self id. */
void px_config_default(struct px_config *cfg, uint8_t replica_count,
		       uint8_t self_id);
/* Returns 0, or -BPX_EINVAL naming nothing: use px_config_check_reason. */
int px_config_check(const struct px_config *cfg);
/* A static text saying what is wrong with cfg, or NULL when it is valid. */
const char *px_config_check_reason(const struct px_config *cfg);
/* Bytes of memory px_init needs for cfg (0 if cfg is invalid). */
size_t px_replica_size(const struct px_config *cfg);
/* The smallest outbox that px_step/px_tick can always make progress with. */
uint32_t px_outbox_cap_min(const struct px_config *cfg);

struct px_replica;

/* Lays a replica out in mem (aligned to 64 bytes, px_replica_size bytes).
 * Returns 0, -BPX_EINVAL for a bad config, -BPX_ENOMEM if mem is short. */
int px_init(void *mem, size_t mem_bytes, const struct px_config *cfg,
	    struct px_replica **out);

/* Handles one message. Returns 0, or a negative error for a message it
 * dropped (counted in stats): -BPX_EMALFORMED, -BPX_EMEMBER. Dropping is
 * always safe; no input can break an invariant. */
int px_step(struct px_replica *r, uint64_t now_ns, const struct px_msg *msg,
	    struct px_outbox *out);

/* Drives timers: heartbeats, retransmission, applying. Call every few
 * microseconds to milliseconds; late ticks only delay, never break. */
void px_tick(struct px_replica *r, uint64_t now_ns, struct px_outbox *out);

/* Proposes queued requests (batching what arrived since the last flush).
 * Call after each burst of px_step; px_tick calls it too. */
void px_flush(struct px_replica *r, uint64_t now_ns, struct px_outbox *out);

/* The control plane's leader hint (an Omega oracle). When it names this
 * replica, the replica runs phase 1 and leads; when it names another, a
 * leader steps down. Only a hint: ballots keep safety. */
void px_set_leader_hint(struct px_replica *r, uint64_t now_ns,
			uint8_t leader_id, struct px_outbox *out);

/* Membership change through the log: the replicas in `members` (a bitmask
 * over 0..replica_count-1) vote for slots from alpha = window_slots after
 * the change is chosen. Only the leader accepts one, one at a time; it is
 * pending until the slots before alpha are applied, and a leader with
 * nothing queued fills them with no-ops at its next px_tick, so a change
 * finishes on an idle cluster too. Returns 0, -BPX_ENOTLEADER, -BPX_EINVAL (empty or unknown members) or
 * -BPX_EBUSY (a change is still pending). */
int px_propose_config(struct px_replica *r, uint64_t now_ns, uint8_t members,
		      struct px_outbox *out);
/* The voting replicas after every applied change (a bitmask). */
uint8_t px_members(const struct px_replica *r);

/* Snapshot of the replicated state (applied index, sessions, state
 * machine). Returns bytes written or -BPX_ETOOBIG. */
size_t px_snapshot_size(const struct px_replica *r);
int64_t px_snapshot_save(const struct px_replica *r, uint8_t *buf, size_t cap);
/* The same snapshot in two parts, for a state machine that snapshots
 * incrementally (sm.h, snapshot_begin): call it right after the state
 * machine's snapshot_begin returned sm_len, before anything else is
 * applied, so that both parts are of one state. It writes everything but
 * the state machine's bytes (the applied index, membership, crash vector,
 * sessions and sm_len: all small) and returns where those sm_len bytes
 * go (they end the snapshot), or -BPX_ETOOBIG when cap is short of the
 * whole. Whoever then writes snapshot_write_frozen's bytes there has the
 * bytes px_snapshot_save would have written at that moment. */
int64_t px_snapshot_save_head(const struct px_replica *r, uint8_t *buf,
			      size_t cap, uint64_t sm_len);
/* The head of a snapshot, without a replica: returns 0 with its format
 * version and applied index, -BPX_EMALFORMED (too short, or not a
 * snapshot) or -BPX_EVERSION (another format version: *version says which). */
int px_snapshot_peek(const uint8_t *buf, size_t len, uint32_t *version,
		     uint64_t *applied_index);
/* Installs a snapshot taken by another replica. Returns 0 (also when it is
 * older than what r has applied, and ignored), or -BPX_EMALFORMED. */
int px_snapshot_install(struct px_replica *r, uint64_t now_ns,
			const uint8_t *buf, size_t len, struct px_outbox *out);

/* Restart of a durable replica: takes one PX_MSG_PERSIST record read back
 * from disk (see "Durability" above), after px_init and any snapshot
 * install, before any other call. Records of slots the installed snapshot
 * covers are ignored. Returns 0, or -BPX_EINVAL for a record it cannot
 * take: not durable, not a PERSIST record, unknown flags, a value longer
 * than a slot, an ACCEPTED slot beyond what the log can hold, or a value
 * other than the one this replica already knew chosen for that slot. A
 * COMMIT record commits the slots the records hold, up to the first they
 * do not. After
 * -BPX_EINVAL the replica must not be used: its disk does not say what it
 * promised and accepted. */
int px_durable_replay(struct px_replica *r, const struct px_msg *record);

/* Whether the leader may answer reads from its state right now (lease
 * valid and everything of earlier terms applied). */
int px_lease_valid(const struct px_replica *r, uint64_t now_ns);
enum px_role px_role(const struct px_replica *r);
/* Checks the replica's invariants (log_start <= applied <= commit, queue,
 * history and session bounds, role vs ballot, promise, commit and applied
 * never going back). Returns NULL, or a static text naming the first that
 * is broken: a bug in the core. Tests and the simulator call it after
 * every step; it remembers what it saw, hence not const. */
const char *px_check_invariants(struct px_replica *r);
uint64_t px_promised_ballot(const struct px_replica *r);
uint64_t px_leader_ballot(const struct px_replica *r); /* own, if leading */
uint8_t px_known_leader(const struct px_replica *r);   /* or PX_REPLICA_NONE */
uint64_t px_commit_index(const struct px_replica *r);
uint64_t px_applied_index(const struct px_replica *r);
uint64_t px_log_start(const struct px_replica *r);
uint32_t px_queue_depth(const struct px_replica *r);
/* The next slot a leader proposes in (its proposals end there). */
uint64_t px_next_slot(const struct px_replica *r);
uint64_t px_state_digest(const struct px_replica *r); /* sm + sessions */
/* The value this replica knows chosen for slot, while its log still holds
 * it. Returns 0, or -BPX_ENOTFOUND (not chosen here, or reclaimed). */
int px_chosen_value(const struct px_replica *r, uint64_t slot,
		    const uint8_t **value, uint32_t *value_len);

/* Drop reasons, counted per replica. */
#define PX_DROP_LIST(X)                                                        \
	X(PX_DROP_MALFORMED, "malformed")                                      \
	X(PX_DROP_NOT_MEMBER, "not a member")                                  \
	X(PX_DROP_STALE_BALLOT, "stale ballot")                                \
	X(PX_DROP_OUT_OF_WINDOW, "slot outside the log window")                \
	X(PX_DROP_WRONG_ROLE, "not expected in this role")                     \
	X(PX_DROP_OUTBOX_FULL, "outbox full, deferred")                      \
	X(PX_DROP_LEASE_HELD, "another leader's lease is running")            \
	X(PX_DROP_STALE_INCARNATION, "from a life before the sender's crash")

enum px_drop_reason {
#define PX_DROP_ENUM(name, text) name,
	PX_DROP_LIST(PX_DROP_ENUM)
#undef PX_DROP_ENUM
	PX_DROP_COUNT
};
const char *px_drop_reason_name(enum px_drop_reason reason);

struct px_stats {
	uint64_t drops[PX_DROP_COUNT];
	uint64_t msgs_in;
	uint64_t requests_in;
	uint64_t requests_busy;
	uint64_t requests_redirected;
	uint64_t requests_applied;
	uint64_t requests_deduplicated;
	uint64_t requests_expired;     /* writes of sessions not held */
	uint64_t sessions_opened;      /* OPENs applied */
	uint64_t slots_proposed;
	uint64_t slots_committed;
	uint64_t batch_requests_total; /* requests in proposed slots */
	uint64_t noops_proposed;
	uint64_t elections_started;
	uint64_t leader_changes;
	uint64_t retransmits;
	uint64_t snapshots_installed;
	uint64_t recoveries_done;
	uint64_t incarnations_adopted; /* took a later incarnation someone
					  knew of (announced by an earlier
					  life that never recovered) */
	uint64_t lease_reads;          /* reads answered under the lease */
	uint64_t config_changes;       /* membership changes applied */
};
const struct px_stats *px_stats(const struct px_replica *r);

#ifdef __cplusplus
}
#endif
#endif
