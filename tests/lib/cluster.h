/* An in-memory cluster of px_replicas for unit tests (test code).
 *
 * N replicas run the real consensus code with the built-in KV state machine.
 * Everything they send goes into one FIFO queue; nothing moves until a test
 * says so, one message at a time (cluster_deliver) or until the network is
 * quiet (cluster_deliver_all). Links can be cut one way (cut[from][to]): a
 * message over a cut link, or to a crashed replica, is dropped when its
 * turn comes. An empty value travels as NULL, the way the dataplane's
 * decoder hands it over. PX_MSG_SNAPSHOT is the caller's job: the fixture
 * takes px_snapshot_save of the sender when it is sent, and delivering it
 * is px_snapshot_install. All replicas share one fake clock that only moves when a test
 * moves it. Replies to clients are collected in a list.
 *
 * Durable mode (tmpl.durable = 1): each replica's PX_MSG_PERSIST records
 * go to its disk, a list that survives cluster_crash and is durable at
 * once; cluster_start of a replica with a disk replays it
 * (px_durable_replay of every record, in order).
 *
 * After every step (every call into a replica) the fixture checks what must
 * hold whatever the test does, and fails the test otherwise:
 *  - at most one replica ever leads a given ballot, and it owns the ballot;
 *  - a leader proposes one value per (slot, ballot);
 *  - a slot committed anywhere holds the same value everywhere it commits;
 *  - promise, commit index and applied index never go back; log_start <=
 *    applied_index <= commit_index;
 *  - replicas that applied the same index hold identical state (digest);
 *  - no outbox of px_outbox_cap_min messages ever overflows (unless a test
 *    sets outbox_full_ok);
 *  - durable mode: no PROMISE, PREPARE, lease STATUS, ACCEPT or ACCEPTED
 *    goes out before the records it depends on are on the disk (a promise
 *    at least its ballot; the slot accepted at its ballot), and a replica
 *    restarted from its disk promised at least what its disk says.
 *
 * Tests read like the protocol, with the macros at the end of this file:
 *
 *     CLUSTER_ELECT(0);
 *     uint64_t s = CLUSTER_OPEN_SESSION(0);
 *     CLUSTER_SUBMIT_PUT(0, s, 1, "k", "v");
 *     CLUSTER_DELIVER_ALL();
 *     ASSERT_COMMIT(0, 1);
 *
 * The macros work on a `struct cluster *` named by CLUSTER (by default the
 * variable `c` in scope). */
#ifndef BYPAX_TESTS_CLUSTER_H
#define BYPAX_TESTS_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bypax/consensus.h"

#define CLUSTER_N_MAX PX_REPLICAS_MAX
/* The clock starts well above 0, so "last sent at 0" timers are due. */
#define CLUSTER_T0_NS 1000000000ull
#define CLUSTER_MS 1000000ull
/* cluster_deliver_all gives up (a test failure) after this many steps. */
#define CLUSTER_STEPS_MAX 1000000u
/* cluster_open_session's OPEN requests use client ids from here on. */
#define CLUSTER_OPEN_NONCE_BASE 0x4f50454e00000000ull
/* Wildcards for cluster_deliver_match and cluster_count. */
#define CLUSTER_ANY 0xffu

struct cluster_msg {
	struct px_msg msg; /* msg.value points into data */
	uint8_t *data;	   /* value, or snapshot bytes (owned) */
	size_t data_len;
};

struct cluster_reply {
	uint8_t from; /* the replica that answered */
	uint8_t status;
	uint8_t leader_hint;
	uint64_t client_id;
	uint64_t seq;
	uint32_t value_len;
	uint8_t value[PX_REPLY_BYTES_MAX];
};

/* A PERSIST record on a replica's disk (durable mode). */
struct cluster_record {
	struct px_msg msg; /* msg.value points into value */
	uint8_t *value;
};

struct cluster_node {
	struct px_config cfg;
	/* Durable mode: the disk, which outlives the replica's memory. */
	struct cluster_record *disk;
	size_t disk_len, disk_cap;
	uint64_t disk_promise; /* the highest PROMISE record on it */
	void *mem;
	void *sm;
	struct px_replica *px;
	struct px_msg *out_msgs;
	struct px_outbox out;
	bool up;
	/* What the invariant check saw last, to see nothing goes back. */
	uint64_t seen_promised;
	uint64_t seen_commit;
	uint64_t seen_applied;
	uint64_t starts; /* lives so far: each gets its own PRNG seed */
	/* What the last call put in the outbox (for failure messages). */
	uint32_t last_replies;
	uint32_t last_sent;
};

struct cluster_chosen {
	uint64_t hash;
	bool known;
};

struct cluster_proposal {
	uint64_t slot;
	uint64_t ballot;
	uint64_t hash;
	bool used;
};

struct cluster {
	uint8_t n;
	uint64_t now_ns;
	struct px_config tmpl; /* every replica's config but self_id */
	struct cluster_node nodes[CLUSTER_N_MAX];
	bool cut[CLUSTER_N_MAX][CLUSTER_N_MAX]; /* cut[from][to] */
	/* Messages between replicas, oldest first: queue[head..len). */
	struct cluster_msg *queue;
	size_t head, len, cap;
	struct cluster_reply *replies;
	size_t replies_len, replies_cap;
	uint64_t steps;
	uint64_t msgs_delivered;
	uint64_t msgs_lost; /* cut links, crashed receivers */
	uint64_t snapshots_sent;
	uint64_t opens; /* cluster_open_session calls, for fresh nonces */
	bool outbox_full_ok;
	/* Invariant bookkeeping. */
	struct cluster_chosen *chosen; /* by slot */
	size_t chosen_cap;
	uint64_t *leader_ballots; /* every ballot seen leading */
	uint8_t *leader_ids;	  /* ... and who led it */
	size_t leaders_len, leaders_cap;
	struct cluster_proposal *props; /* open addressing on (slot, ballot) */
	size_t props_cap, props_len;
	uint64_t *digest_at; /* by applied index; 0 = none seen yet */
	size_t digest_cap;
	/* Called with a readable reason when an invariant breaks; must not
	 * return (cmocka's _fail does not). NULL: print and abort. */
	void (*fail)(const char *why);
	char why[512];
};

/* The fixture's defaults: small, so wrap-around and snapshots come soon
 * (window 8, log 64, batches of 8, queue 64, 64 sessions). */
void cluster_config_default(struct px_config *cfg, uint8_t n);
/* Starts n replicas from tmpl (NULL: cluster_config_default). */
void cluster_init(struct cluster *c, uint8_t n, const struct px_config *tmpl);
void cluster_free(struct cluster *c);

/* Loses replica i's memory; its queued messages still travel. */
void cluster_crash(struct cluster *c, uint8_t i);
/* Starts replica i afresh (recovering: without its state, DESIGN.md); in
 * durable mode (never recovering) from its disk, if it has one. */
void cluster_start(struct cluster *c, uint8_t i, bool recovering);

/* The clock. */
void cluster_advance(struct cluster *c, uint64_t ns);

/* Tells every live replica that the control plane's hint is `leader`. */
void cluster_hint(struct cluster *c, uint8_t leader);
/* Tells replica i alone that the hint is `leader` (two may disagree). */
void cluster_hint_one(struct cluster *c, uint8_t i, uint8_t leader);
/* Hints `leader` to everyone and delivers until the network is quiet. */
void cluster_elect(struct cluster *c, uint8_t leader);

/* Delivers the oldest queued message (then px_flush, as a dataplane does
 * after a burst). Returns false if the queue was empty. A message over a
 * cut link or to a crashed replica is lost instead (still returns true). */
bool cluster_deliver(struct cluster *c);
/* Delivers the oldest message matching (type, from, to); CLUSTER_ANY
 * matches anything. Returns false if none matched. */
bool cluster_deliver_match(struct cluster *c, uint8_t type, uint8_t from,
			   uint8_t to);
/* Delivers until the queue is empty; returns the steps taken. */
uint64_t cluster_deliver_all(struct cluster *c);
/* Forgets every queued message. */
void cluster_discard_all(struct cluster *c);
/* Queued messages matching (type, from, to). */
size_t cluster_count(const struct cluster *c, uint8_t type, uint8_t from,
		     uint8_t to);
/* The oldest queued message matching, or NULL. */
const struct px_msg *cluster_peek(const struct cluster *c, uint8_t type,
				  uint8_t from, uint8_t to);

/* px_tick on replica i / on every live replica. */
void cluster_tick(struct cluster *c, uint8_t i);
void cluster_tick_all(struct cluster *c);
/* For duration_ns: every step_ns, advance the clock, tick everyone and
 * deliver everything. */
void cluster_run(struct cluster *c, uint64_t duration_ns, uint64_t step_ns);

/* Hands m to replica i through px_step (no flush), as if it had arrived,
 * and returns px_step's result. m->to is used as given. */
int cluster_inject(struct cluster *c, uint8_t i, const struct px_msg *m);
/* A client request to replica i (px_step, no flush). */
int cluster_request(struct cluster *c, uint8_t i, uint64_t client_id,
		    uint64_t seq, const void *cmd, uint32_t cmd_len);
/* Opens a session through the log (a PX_FLAG_OPEN request to `leader`,
 * then delivers until the network is quiet) and returns the id the log
 * assigned; an invariant failure when no session opened. Writes need one:
 * a made-up client id is EXPIRED. */
uint64_t cluster_open_session(struct cluster *c, uint8_t leader);
/* px_snapshot_install of buf on replica i; returns its result. */
int cluster_install(struct cluster *c, uint8_t i, const uint8_t *buf,
		    size_t len);
/* px_snapshot_save of replica i into a new buffer (free() it). */
uint8_t *cluster_save(const struct cluster *c, uint8_t i, size_t *len);
/* px_flush on replica i. */
void cluster_flush(struct cluster *c, uint8_t i);
/* A KV PUT of NUL-terminated key and value, as a request to replica i,
 * then a flush. Returns px_step's result. */
int cluster_put(struct cluster *c, uint8_t i, uint64_t client_id, uint64_t seq,
		const char *key, const char *value);
/* cluster_run in steps of one retransmit_ns until replica i is no longer
 * recovering; fails the test after 400 of them. */
void cluster_run_until_recovered(struct cluster *c, uint8_t i);
/* A session-less KV GET of NUL-terminated key (PX_FLAG_READ: a lease read
 * when the leader can), as a request to replica i, then a flush. Returns
 * px_step's result. */
int cluster_read(struct cluster *c, uint8_t i, uint64_t client_id,
		 uint64_t seq, const char *key);
/* The value of the first KV PUT in the batch replica i knows chosen at
 * slot, NUL-terminated into buf ("" if none, or not chosen there). */
void cluster_chosen_put_value(const struct cluster *c, uint8_t i,
			      uint64_t slot, char *buf, size_t cap);
/* px_propose_config of `members` on replica i, then a flush, as a control
 * plane does: the change goes into the next slot the window allows.
 * Returns px_propose_config's result. */
int cluster_propose_config(struct cluster *c, uint8_t i, uint8_t members);
/* Encodes a KV PUT into buf; returns its length. */
uint32_t cluster_encode_put(uint8_t *buf, size_t cap, const char *key,
			    const char *value);

/* The latest reply to (client_id, seq), or NULL. */
const struct cluster_reply *cluster_reply(const struct cluster *c,
					  uint64_t client_id, uint64_t seq);
/* Replies to (client_id, seq) so far. */
size_t cluster_reply_count(const struct cluster *c, uint64_t client_id,
			   uint64_t seq);
void cluster_replies_clear(struct cluster *c);

/* The invariants above, on demand (they also run after every step). */
void cluster_check(struct cluster *c);

static inline struct px_replica *cluster_px(const struct cluster *c, uint8_t i)
{
	return c->nodes[i].px;
}

/* ---- cmocka glue: a fail hook, and macros that read like the protocol.
 * Only defined where cmocka.h was included first. ---- */
#ifdef cmocka_unit_test
#include <stdlib.h>
#include <string.h>

static inline void cluster_cmocka_fail(const char *why)
{
	print_error("cluster invariant broken: %s\n", why);
	_fail(__FILE__, __LINE__);
}

/* cmocka setup/teardown bodies: *state becomes a started cluster. */
static inline int cluster_cmocka_setup(void **state, uint8_t n,
				       const struct px_config *tmpl)
{
	struct cluster *cl = calloc(1, sizeof(*cl));
	if (cl == NULL)
		return -1;
	cluster_init(cl, n, tmpl);
	cl->fail = cluster_cmocka_fail;
	*state = cl;
	return 0;
}

static inline int cluster_cmocka_teardown(void **state)
{
	cluster_free(*state);
	free(*state);
	return 0;
}

#ifndef CLUSTER
#define CLUSTER c
#endif

/* Starts an n-replica cluster whose invariant failures fail the test. */
#define CLUSTER_INIT(N, TMPL)                                                  \
	do {                                                                   \
		cluster_init(CLUSTER, (uint8_t)(N), (TMPL));                   \
		CLUSTER->fail = cluster_cmocka_fail;                           \
	} while (0)
#define CLUSTER_PX(I) cluster_px(CLUSTER, (uint8_t)(I))
#define CLUSTER_ELECT(I) cluster_elect(CLUSTER, (uint8_t)(I))
#define CLUSTER_HINT(I) cluster_hint(CLUSTER, (uint8_t)(I))
#define CLUSTER_HINT_ONE(I, L)                                                 \
	cluster_hint_one(CLUSTER, (uint8_t)(I), (uint8_t)(L))
#define CLUSTER_CRASH(I) cluster_crash(CLUSTER, (uint8_t)(I))
#define CLUSTER_RECOVER(I) cluster_start(CLUSTER, (uint8_t)(I), true)
#define CLUSTER_DELIVER() cluster_deliver(CLUSTER)
#define CLUSTER_DELIVER_ALL() cluster_deliver_all(CLUSTER)
#define CLUSTER_DELIVER_MATCH(T, F, TO)                                        \
	cluster_deliver_match(CLUSTER, (uint8_t)(T), (uint8_t)(F),             \
			      (uint8_t)(TO))
#define CLUSTER_DISCARD_ALL() cluster_discard_all(CLUSTER)
#define CLUSTER_COUNT(T, F, TO)                                                \
	cluster_count(CLUSTER, (uint8_t)(T), (uint8_t)(F), (uint8_t)(TO))
#define CLUSTER_TICK(I) cluster_tick(CLUSTER, (uint8_t)(I))
#define CLUSTER_TICK_ALL() cluster_tick_all(CLUSTER)
#define CLUSTER_ADVANCE(NS) cluster_advance(CLUSTER, (NS))
#define CLUSTER_RUN(NS) cluster_run(CLUSTER, (NS), CLUSTER_MS / 4)
#define CLUSTER_CUT(A, B) (CLUSTER->cut[(A)][(B)] = true)
#define CLUSTER_HEAL(A, B) (CLUSTER->cut[(A)][(B)] = false)
#define CLUSTER_ISOLATE(I)                                                     \
	do {                                                                   \
		for (uint8_t i_ = 0; i_ < CLUSTER->n; i_++) {                  \
			if (i_ == (I))                                         \
				continue;                                      \
			CLUSTER->cut[(I)][i_] = true;                          \
			CLUSTER->cut[i_][(I)] = true;                          \
		}                                                              \
	} while (0)
#define CLUSTER_HEAL_ALL() memset(CLUSTER->cut, 0, sizeof(CLUSTER->cut))
#define CLUSTER_CUT_BOTH(A, B) (CLUSTER_CUT(A, B), CLUSTER_CUT(B, A))
#define CLUSTER_HEAL_BOTH(A, B) (CLUSTER_HEAL(A, B), CLUSTER_HEAL(B, A))
#define CLUSTER_INJECT(I, M) cluster_inject(CLUSTER, (uint8_t)(I), (M))
#define CLUSTER_SUBMIT_PUT(I, CLIENT, SEQ, K, V)                               \
	assert_int_equal(cluster_put(CLUSTER, (uint8_t)(I), (CLIENT), (SEQ),   \
				     (K), (V)),                                \
			 0)
#define CLUSTER_REPLY(CLIENT, SEQ) cluster_reply(CLUSTER, (CLIENT), (SEQ))
#define CLUSTER_OPEN_SESSION(LEADER)                                           \
	cluster_open_session(CLUSTER, (uint8_t)(LEADER))
#define CLUSTER_PROPOSE_CONFIG(I, MEMBERS)                                     \
	cluster_propose_config(CLUSTER, (uint8_t)(I), (uint8_t)(MEMBERS))

#define ASSERT_ROLE(I, ROLE) assert_int_equal(px_role(CLUSTER_PX(I)), (ROLE))
#define ASSERT_LEADER(I) ASSERT_ROLE(I, PX_ROLE_LEADER)
#define ASSERT_FOLLOWER(I) ASSERT_ROLE(I, PX_ROLE_FOLLOWER)
#define ASSERT_COMMIT(I, N)                                                    \
	assert_int_equal(px_commit_index(CLUSTER_PX(I)), (N))
#define ASSERT_APPLIED(I, N)                                                   \
	assert_int_equal(px_applied_index(CLUSTER_PX(I)), (N))
#define ASSERT_QUEUED(T, F, TO, N)                                             \
	assert_int_equal(CLUSTER_COUNT(T, F, TO), (N))
#define ASSERT_REPLY(CLIENT, SEQ, STATUS)                                      \
	do {                                                                   \
		const struct cluster_reply *r_ = CLUSTER_REPLY(CLIENT, SEQ);   \
		assert_non_null(r_);                                           \
		assert_int_equal(r_->status, (STATUS));                        \
	} while (0)
#define ASSERT_NO_REPLY(CLIENT, SEQ) assert_null(CLUSTER_REPLY(CLIENT, SEQ))
#define ASSERT_SAME_STATE(A, B)                                                \
	assert_true(px_state_digest(CLUSTER_PX(A)) ==                          \
		    px_state_digest(CLUSTER_PX(B)))
#define ASSERT_DROPS(I, REASON, N)                                             \
	assert_int_equal(px_stats(CLUSTER_PX(I))->drops[(REASON)], (N))
#endif /* cmocka_unit_test */

#endif /* BYPAX_TESTS_CLUSTER_H */
