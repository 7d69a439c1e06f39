/* Unit tests for the replica shell (consensus/replica.c): configuration
 * checks, memory layout, input validation in px_step, drop accounting, the
 * leader hint, and the outbox bound px_outbox_cap_min. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bypax/kv.h"
#include "bypax/wire.h"
#include "cluster.h"
#include "internal.h"

static int setup3(void **state)
{
	return cluster_cmocka_setup(state, 3, NULL);
}
static int teardown(void **state)
{
	return cluster_cmocka_teardown(state);
}

/* ---- Configuration ---- */

static void *kv;

static int kv_setup(void **state)
{
	(void)state;
	kv = bpx_kv_ops()->create(NULL);
	return kv == NULL ? -1 : 0;
}

static int kv_teardown(void **state)
{
	(void)state;
	bpx_kv_ops()->destroy(kv);
	return 0;
}

static void good_config(struct px_config *cfg)
{
	px_config_default(cfg, 3, 1);
	cfg->sm_ops = bpx_kv_ops();
	cfg->sm = kv;
}

/* Expects cfg to be refused with a reason that mentions `field`. */
static void assert_refused(const struct px_config *cfg, const char *field)
{
	const char *why = px_config_check_reason(cfg);
	assert_non_null(why);
	assert_non_null(strstr(why, field));
	assert_int_equal(px_config_check(cfg), -BPX_EINVAL);
	assert_int_equal(px_replica_size(cfg), 0);
	uint8_t mem[64];
	struct px_replica *r = NULL;
	assert_int_equal(px_init(mem, sizeof(mem), cfg, &r), -BPX_EINVAL);
	assert_null(r);
}

static void assert_accepted(const struct px_config *cfg)
{
	assert_null(px_config_check_reason(cfg));
	assert_int_equal(px_config_check(cfg), 0);
	assert_true(px_replica_size(cfg) > 0);
}

static const struct bpx_sm_ops *wrong_abi(void)
{
	static struct bpx_sm_ops ops;
	ops = *bpx_kv_ops();
	ops.abi_version = BPX_SM_ABI_VERSION + 1;
	return &ops;
}

static void test_config_each_bad_field(void **state)
{
	(void)state;
	struct px_config cfg;
	good_config(&cfg);
	assert_accepted(&cfg);
	assert_non_null(px_config_check_reason(NULL));
	assert_int_equal(px_config_check(NULL), -BPX_EINVAL);

#define BAD(field, value, says)                                                \
	do {                                                                   \
		good_config(&cfg);                                             \
		cfg.field = (value);                                           \
		assert_refused(&cfg, says);                                    \
	} while (0)
#define OK(field, value)                                                       \
	do {                                                                   \
		good_config(&cfg);                                             \
		cfg.field = (value);                                           \
		assert_accepted(&cfg);                                         \
	} while (0)
	BAD(replica_count, 0, "replica_count");
	BAD(replica_count, PX_REPLICAS_MAX + 1, "replica_count");
	OK(replica_count, PX_REPLICAS_MAX);
	OK(replica_count, 2); /* even is allowed, only not recommended */
	BAD(self_id, 3, "self_id");
	BAD(self_id, 0xff, "self_id");
	BAD(window_slots, 0, "window_slots");
	BAD(log_slots, 0, "log_slots");
	BAD(log_slots, 32, "log_slots");
	BAD(log_slots, 100, "log_slots");
	BAD(log_slots, 1025, "log_slots");
	good_config(&cfg);
	cfg.log_slots = 64;
	cfg.window_slots = 33;
	assert_refused(&cfg, "2 * window_slots");
	cfg.window_slots = 32;
	assert_accepted(&cfg);
	BAD(batch_bytes_max, PX_BATCH_ENTRY_HEADER_BYTES, "batch_bytes_max");
	BAD(batch_bytes_max, PX_VALUE_BYTES_MAX + 1, "batch_bytes_max");
	OK(batch_bytes_max, PX_BATCH_ENTRY_HEADER_BYTES + 1);
	OK(batch_bytes_max, PX_VALUE_BYTES_MAX);
	BAD(batch_requests_max, 0, "batch_requests_max");
	BAD(batch_requests_max, 1025, "batch_requests_max");
	OK(batch_requests_max, 1024);
	BAD(request_queue_max, 0, "request_queue_max");
	BAD(request_queue_max, (1u << 20) + 1, "request_queue_max");
	BAD(session_max, 0, "session_max");
	BAD(session_max, (1u << 24) + 1, "session_max");
	BAD(catchup_burst, 0, "catchup_burst");
	BAD(catchup_burst, 1025, "catchup_burst");
	BAD(heartbeat_interval_ns, 0, "heartbeat_interval_ns");
	BAD(retransmit_ns, 0, "retransmit_ns");
	BAD(sm_ops, NULL, "state machine");
	BAD(sm, NULL, "state machine");
	BAD(sm_ops, wrong_abi(), "ABI");
#undef BAD
#undef OK
}

/* px_init lays the replica out in whatever memory it is given, aligning
 * it itself; short memory and missing pointers are refused. */
static void test_init_memory(void **state)
{
	(void)state;
	struct px_config cfg;
	good_config(&cfg);
	cfg.log_slots = 64;
	cfg.window_slots = 8;
	cfg.session_max = 16;
	cfg.request_queue_max = 16;
	size_t need = px_replica_size(&cfg);
	uint8_t *mem = malloc(need + 3);
	assert_non_null(mem);
	struct px_replica *r = NULL;
	assert_int_equal(px_init(NULL, need, &cfg, &r), -BPX_EINVAL);
	assert_int_equal(px_init(mem, need, &cfg, NULL), -BPX_EINVAL);
	assert_int_equal(px_init(mem, need - 1, &cfg, &r), -BPX_ENOMEM);
	assert_null(r);
	/* Misaligned on purpose: the slack in px_replica_size covers it. */
	assert_int_equal(px_init(mem + 3, need, &cfg, &r), 0);
	assert_non_null(r);
	assert_int_equal((uintptr_t)r % PX_ALIGN, 0);
	assert_true((uint8_t *)r >= mem + 3);
	assert_int_equal(px_role(r), PX_ROLE_FOLLOWER);
	assert_int_equal(px_promised_ballot(r), 0);
	assert_int_equal(px_leader_ballot(r), 0);
	assert_int_equal(px_known_leader(r), PX_REPLICA_NONE);
	assert_int_equal(px_commit_index(r), 0);
	assert_int_equal(px_applied_index(r), 0);
	assert_int_equal(px_log_start(r), 0);
	assert_int_equal(px_queue_depth(r), 0);
	const uint8_t *v;
	uint32_t len;
	assert_int_equal(px_chosen_value(r, 0, &v, &len), -BPX_ENOTFOUND);
	cfg.recovering = 1;
	assert_int_equal(px_init(mem + 3, need, &cfg, &r), 0);
	assert_int_equal(px_role(r), PX_ROLE_RECOVERING);
	free(mem);
	/* The outbox bound covers a whole promise and a slot's replies. */
	good_config(&cfg);
	assert_true(px_outbox_cap_min(&cfg) >=
		    cfg.log_slots + cfg.batch_requests_max);
}

static void test_drop_reason_names(void **state)
{
	(void)state;
	for (int i = 0; i < PX_DROP_COUNT; i++) {
		const char *name = px_drop_reason_name((enum px_drop_reason)i);
		assert_non_null(name);
		assert_true(strlen(name) > 0);
		assert_string_not_equal(name, "unknown");
	}
	assert_string_equal(px_drop_reason_name(PX_DROP_MALFORMED),
			    "malformed");
	assert_string_equal(px_drop_reason_name(PX_DROP_COUNT), "unknown");
	assert_string_equal(
		px_drop_reason_name((enum px_drop_reason)(PX_DROP_COUNT + 7)),
		"unknown");
}

/* ---- Bad input to px_step ---- */

static uint64_t drops(struct cluster *c, uint8_t i, enum px_drop_reason why)
{
	return px_stats(CLUSTER_PX(i))->drops[why];
}

/* Injects m into replica 0 and expects rc and one more drop of `why`. */
static void expect_drop(struct cluster *c, const struct px_msg *m, int rc,
			enum px_drop_reason why)
{
	uint64_t before = drops(c, 0, why);
	uint64_t in = px_stats(CLUSTER_PX(0))->msgs_in;
	assert_int_equal(CLUSTER_INJECT(0, m), rc);
	assert_int_equal(drops(c, 0, why), before + 1);
	assert_int_equal(px_stats(CLUSTER_PX(0))->msgs_in, in + 1);
}

static void test_bad_messages_are_dropped(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t b = px_leader_ballot(CLUSTER_PX(0));
	static uint8_t big[PX_VALUE_BYTES_MAX + 1];
	const struct px_msg ok = {
		.type = PX_MSG_COMMIT,
		.from = 1,
		.to = 0,
		.ballot = b,
	};
	struct px_msg m;

	uint64_t before = drops(c, 0, PX_DROP_MALFORMED);
	assert_int_equal(px_step(CLUSTER_PX(0), c->now_ns, NULL,
				 &c->nodes[0].out),
			 -BPX_EMALFORMED);
	assert_int_equal(drops(c, 0, PX_DROP_MALFORMED), before + 1);
	cluster_check(c);

	/* Unknown types, the outbox-only SNAPSHOT and PERSIST, and the
	 * wire's own snapshot chunk. */
	const uint8_t types[] = { 0,
				  PX_MSG_TYPE_MAX + 1,
				  100,
				  255,
				  PX_MSG_SNAPSHOT,
				  PX_MSG_PERSIST,
				  BPX_WIRE_SNAPSHOT_CHUNK };
	for (size_t k = 0; k < sizeof(types); k++) {
		m = ok;
		m.type = types[k];
		expect_drop(c, &m, -BPX_EMALFORMED, PX_DROP_MALFORMED);
	}
	/* A value longer than a slot; a length with no bytes. */
	m = ok;
	m.type = PX_MSG_ACCEPT;
	m.value = big;
	m.value_len = PX_VALUE_BYTES_MAX + 1;
	expect_drop(c, &m, -BPX_EMALFORMED, PX_DROP_MALFORMED);
	m.value_len = UINT32_MAX;
	expect_drop(c, &m, -BPX_EMALFORMED, PX_DROP_MALFORMED);
	m.value = NULL;
	m.value_len = 1;
	expect_drop(c, &m, -BPX_EMALFORMED, PX_DROP_MALFORMED);
	/* Not for us. */
	m = ok;
	m.to = 2;
	expect_drop(c, &m, -BPX_EMALFORMED, PX_DROP_MALFORMED);
	m.to = PX_TO_CLIENT;
	expect_drop(c, &m, -BPX_EMALFORMED, PX_DROP_MALFORMED);
	/* Replicas never receive replies. */
	m = ok;
	m.type = PX_MSG_REPLY;
	expect_drop(c, &m, -BPX_EMALFORMED, PX_DROP_MALFORMED);
	m.from = PX_TO_CLIENT;
	expect_drop(c, &m, -BPX_EMALFORMED, PX_DROP_MALFORMED);
	/* From outside the membership, or from itself. */
	const uint8_t senders[] = { 3, PX_REPLICAS_MAX, 0xfe, PX_TO_CLIENT, 0 };
	for (size_t k = 0; k < sizeof(senders); k++) {
		m = ok;
		m.from = senders[k];
		expect_drop(c, &m, -BPX_EMEMBER, PX_DROP_NOT_MEMBER);
	}
	/* A request with seq 0 (seqs start at 1). */
	m = (struct px_msg){ .type = PX_MSG_REQUEST,
			     .from = PX_TO_CLIENT,
			     .to = 0,
			     .client_id = 7,
			     .seq = 0 };
	expect_drop(c, &m, -BPX_EMALFORMED, PX_DROP_MALFORMED);
	ASSERT_NO_REPLY(7, 0);
	/* Seqs the log keeps for OPENs and reads: a write above
	 * PX_SEQ_WRITE_MAX, an OPEN too, a read with the log's read bit. */
	uint64_t sid = CLUSTER_OPEN_SESSION(0);
	const struct {
		uint64_t client_id, seq;
		uint8_t flags;
	} bad[] = {
		{ sid, PX_SEQ_WRITE_MAX + 1, 0 },
		{ sid, UINT64_MAX, 0 },
		{ 7, PX_SEQ_WRITE_MAX + 1, PX_FLAG_OPEN },
		{ 7, 1ull << 63, PX_FLAG_READ },
		/* A read that opens; an OPEN that names an assigned id. */
		{ 7, PX_SEQ_READ_BASE, PX_FLAG_READ | PX_FLAG_OPEN },
		{ sid, 1, PX_FLAG_OPEN },
	};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		m = (struct px_msg){ .type = PX_MSG_REQUEST,
				     .from = PX_TO_CLIENT,
				     .client_id = bad[k].client_id,
				     .seq = bad[k].seq,
				     .flags = bad[k].flags };
		expect_drop(c, &m, -BPX_EMALFORMED, PX_DROP_MALFORMED);
		ASSERT_NO_REPLY(bad[k].client_id, bad[k].seq);
	}
	/* Through all of that, replica 0 still leads and works. */
	ASSERT_LEADER(0);
	CLUSTER_SUBMIT_PUT(0, sid, PX_SEQ_WRITE_MAX, "k", "v");
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(sid, PX_SEQ_WRITE_MAX, PX_REPLY_OK);
}

/* A request needs no `to` or `from` check (clients are not members), and
 * an empty command with no pointer is a command like any other. */
static void test_request_shapes(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t sid = CLUSTER_OPEN_SESSION(0);
	struct px_msg m = { .type = PX_MSG_REQUEST,
			    .from = 42,
			    .to = 9,
			    .client_id = sid,
			    .seq = 1 };
	assert_int_equal(CLUSTER_INJECT(0, &m), 0);
	cluster_flush(c, 0);
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(sid, 1, PX_REPLY_OK);
	assert_int_equal(px_stats(CLUSTER_PX(0))->requests_in, 2);
	/* Too big for a slot: answered, not dropped. */
	static uint8_t big[PX_VALUE_BYTES_MAX];
	m.seq = 2;
	m.value = big;
	m.value_len = PX_VALUE_BYTES_MAX;
	assert_int_equal(CLUSTER_INJECT(0, &m), 0);
	ASSERT_REPLY(sid, 2, PX_REPLY_TOO_BIG);
}

/* Malformed phase 1b reports are dropped and counted; the candidate keeps
 * waiting for a real one. */
static void test_absurd_promises_are_dropped(void **state)
{
	struct cluster *c = *state;
	CLUSTER_HINT(0);
	uint64_t b = cluster_peek(c, PX_MSG_PREPARE, 0, 1)->ballot;
	const uint32_t log_slots = c->tmpl.log_slots;
	static const uint8_t v[4] = { 1, 2, 3, 4 };
	const struct px_msg empty = {
		.type = PX_MSG_PROMISE,
		.from = 1,
		.to = 0,
		.ballot = b,
	};
	struct px_msg bad[6];
	for (int k = 0; k < 6; k++)
		bad[k] = empty;
	bad[0].slot_end = log_slots + 1; /* past any acceptor's ring */
	bad[0].slot = bad[0].slot_end;
	bad[1].slot_end = UINT64_MAX;
	bad[1].slot = UINT64_MAX;
	bad[2].seq = log_slots + 1; /* more entries than a ring holds */
	bad[3].seq = UINT64_MAX;
	bad[4].slot_end = 2; /* an entry with no accepted ballot */
	bad[4].seq = 1;
	bad[4].value = v;
	bad[4].value_len = sizeof(v);
	bad[5] = bad[4];
	bad[5].accepted_ballot = px_ballot_make(1, 1);
	for (int k = 0; k < 5; k++) {
		uint64_t before = drops(c, 0, PX_DROP_MALFORMED);
		assert_int_equal(CLUSTER_INJECT(0, &bad[k]), 0);
		assert_int_equal(drops(c, 0, PX_DROP_MALFORMED), before + 1);
		ASSERT_ROLE(0, PX_ROLE_CANDIDATE);
	}
	/* An entry below the first slot phase 1 covers: the answer to an
	 * older PREPARE (a leader asks again from its applied index). */
	cluster_px(c, 0)->p1.from = 1; /* as if slot 0 were committed */
	bad[5].slot = 0;
	uint64_t before = drops(c, 0, PX_DROP_STALE_BALLOT);
	assert_int_equal(CLUSTER_INJECT(0, &bad[5]), 0);
	assert_int_equal(drops(c, 0, PX_DROP_STALE_BALLOT), before + 1);
	cluster_px(c, 0)->p1.from = 0;
	/* A promise for another ballot is stale. */
	struct px_msg stale = empty;
	stale.ballot = b + 1;
	before = drops(c, 0, PX_DROP_STALE_BALLOT);
	assert_int_equal(CLUSTER_INJECT(0, &stale), 0);
	assert_int_equal(drops(c, 0, PX_DROP_STALE_BALLOT), before + 1);
	ASSERT_ROLE(0, PX_ROLE_CANDIDATE);
	CLUSTER_DELIVER_ALL();
	ASSERT_LEADER(0);
}

/* Phase 2b answers to a replica that does not lead (any more) are stale. */
static void test_stale_phase2_answers(void **state)
{
	struct cluster *c = *state;
	struct px_msg accepted = {
		.type = PX_MSG_ACCEPTED,
		.from = 1,
		.to = 0,
		.ballot = px_ballot_make(1, 0),
	};
	uint64_t before = drops(c, 0, PX_DROP_STALE_BALLOT);
	assert_int_equal(CLUSTER_INJECT(0, &accepted), 0);
	assert_int_equal(drops(c, 0, PX_DROP_STALE_BALLOT), before + 1);
	CLUSTER_ELECT(0);
	before = drops(c, 0, PX_DROP_STALE_BALLOT);
	accepted.ballot = px_leader_ballot(CLUSTER_PX(0)) + 1;
	assert_int_equal(CLUSTER_INJECT(0, &accepted), 0);
	assert_int_equal(drops(c, 0, PX_DROP_STALE_BALLOT), before + 1);
	/* For a slot never proposed: ignored. */
	accepted.ballot = px_leader_ballot(CLUSTER_PX(0));
	accepted.slot = 12345;
	assert_int_equal(CLUSTER_INJECT(0, &accepted), 0);
	ASSERT_COMMIT(0, 0);
}

/* A bounded deterministic fuzz: random messages, of every type and field,
 * from members and strangers, into one replica in each role. px_step never
 * crashes, answers 0 or a drop error, and the replica's own invariants
 * hold throughout. (Cross-replica invariants need honest members, so this
 * replica runs alone.) */
static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t fuzz_u64(uint64_t *s)
{
	uint64_t r = splitmix(s);
	switch (r % 6) {
	case 0:
		return 0;
	case 1:
		return r >> 60;
	case 2:
		return (r >> 32) % 200;
	case 3:
		return px_ballot_make((r >> 40) % 20, (uint8_t)(r >> 8) % 4);
	case 4:
		return UINT64_MAX - (r >> 62);
	default:
		return splitmix(s);
	}
}

static void fuzz_one_role(uint8_t n, int role, uint64_t seed)
{
	struct px_config cfg;
	cluster_config_default(&cfg, n);
	cfg.self_id = 0;
	cfg.sm_ops = bpx_kv_ops();
	cfg.sm = kv;
	cfg.recovering = role == PX_ROLE_RECOVERING;
	size_t bytes = px_replica_size(&cfg);
	void *mem = malloc(bytes);
	struct px_msg *msgs = calloc(4096, sizeof(*msgs));
	assert_non_null(mem);
	assert_non_null(msgs);
	struct px_replica *r;
	assert_int_equal(px_init(mem, bytes, &cfg, &r), 0);
	struct px_outbox out = { .msgs = msgs, .cap = 4096 };
	uint64_t now = CLUSTER_T0_NS;
	if (role == PX_ROLE_CANDIDATE || role == PX_ROLE_LEADER)
		px_set_leader_hint(r, now, 0, &out);
	for (uint8_t i = 1; role == PX_ROLE_LEADER && i <= n / 2; i++) {
		struct px_msg p = { .type = PX_MSG_PROMISE,
				    .from = i,
				    .to = 0,
				    .ballot = r->ballot };
		assert_int_equal(px_step(r, now, &p, &out), 0);
	}
	assert_int_equal(px_role(r), role);
	static uint8_t value[PX_VALUE_BYTES_MAX + 8];
	uint64_t s = seed, promised = 0, commit = 0, applied = 0;
	for (int k = 0; k < 20000; k++) {
		struct px_msg m;
		for (size_t i = 0; i < sizeof(value); i++)
			value[i] = (uint8_t)splitmix(&s);
		uint64_t pick = splitmix(&s);
		m.type = (uint8_t)(pick % 15);
		m.from = (uint8_t)((pick >> 8) % 3 == 0 ? pick >> 16 :
							  (pick >> 16) % n);
		m.to = (uint8_t)((pick >> 24) % 5 == 0 ? pick >> 32 : 0);
		m.flags = (uint8_t)(pick >> 40);
		m.status = (uint8_t)(pick >> 48);
		m.leader_hint = (uint8_t)(pick >> 56);
		m.ballot = fuzz_u64(&s);
		m.slot = fuzz_u64(&s);
		m.slot_end = fuzz_u64(&s);
		m.accepted_ballot = fuzz_u64(&s);
		m.commit_index = fuzz_u64(&s);
		m.applied_index = fuzz_u64(&s);
		m.log_start = fuzz_u64(&s);
		m.client_id = fuzz_u64(&s) % 8;
		m.seq = fuzz_u64(&s);
		uint64_t l = splitmix(&s);
		m.value_len =
			(uint32_t)(l % 3 == 0 ? 0 :
				   l % 2 == 0 ? (l >> 8) % 64 :
						(l >>
						 8) % (PX_VALUE_BYTES_MAX + 8));
		m.value = (l >> 40) % 7 == 0 ? NULL : value;
		out.count = 0;
		int rc = px_step(r, now, &m, &out);
		assert_true(rc == 0 || rc == -BPX_EMALFORMED ||
			    rc == -BPX_EMEMBER);
		assert_true(out.count <= out.cap);
		if (k % 16 == 0) {
			now += fuzz_u64(&s) % (4 * CLUSTER_MS);
			out.count = 0;
			px_tick(r, now, &out);
			out.count = 0;
			px_flush(r, now, &out);
		}
		if (k % 512 == 0) {
			out.count = 0;
			px_set_leader_hint(r, now, (uint8_t)splitmix(&s) % 9,
					   &out);
		}
		assert_true(px_promised_ballot(r) >= promised);
		assert_true(px_commit_index(r) >= commit);
		assert_true(px_applied_index(r) >= applied);
		assert_true(px_applied_index(r) <= px_commit_index(r));
		assert_true(px_log_start(r) <= px_applied_index(r));
		promised = px_promised_ballot(r);
		commit = px_commit_index(r);
		applied = px_applied_index(r);
	}
	assert_true(px_stats(r)->msgs_in >= 20000);
	free(msgs);
	free(mem);
}

static void test_fuzzed_input_never_breaks_a_replica(void **state)
{
	(void)state;
	const int roles[] = { PX_ROLE_FOLLOWER, PX_ROLE_CANDIDATE,
			      PX_ROLE_LEADER, PX_ROLE_RECOVERING };
	for (int k = 0; k < 4; k++) {
		fuzz_one_role(3, roles[k], 0x1234u + (uint64_t)k);
		fuzz_one_role(5, roles[k], 0x5678u + (uint64_t)k);
	}
	fuzz_one_role(1, PX_ROLE_LEADER, 99);
}

/* ---- Leader hint ---- */

static void test_leader_hint(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	/* A hint of nobody: the leader steps down; nobody runs. */
	CLUSTER_HINT(PX_REPLICA_NONE);
	for (uint8_t i = 0; i < 3; i++)
		ASSERT_FOLLOWER(i);
	CLUSTER_RUN(10 * c->tmpl.retransmit_ns);
	for (uint8_t i = 0; i < 3; i++)
		ASSERT_FOLLOWER(i);
	/* A hint that names no member: the same. */
	CLUSTER_HINT(200);
	CLUSTER_RUN(10 * c->tmpl.retransmit_ns);
	for (uint8_t i = 0; i < 3; i++)
		ASSERT_FOLLOWER(i);
	/* A recovering replica ignores the hint. */
	CLUSTER_RECOVER(2);
	CLUSTER_HINT_ONE(2, 2);
	ASSERT_ROLE(2, PX_ROLE_RECOVERING);
	CLUSTER_ELECT(1);
	assert_int_equal(px_known_leader(CLUSTER_PX(1)), 1);
}

/* ---- px_outbox_cap_min ---- */

/* Every replica in the fixture has an outbox of exactly px_outbox_cap_min
 * messages, and the fixture fails a test on any OUTBOX_FULL drop. Here a
 * busy cluster goes through the worst of it: a leader with a long queue of
 * requests and a window of slots in flight is deposed (every queued client
 * is redirected, and the whole ring is reported in one promise), followers
 * lag behind the ring and are caught up, retransmissions go out. */
static int setup5_busy(void **state)
{
	struct px_config cfg;
	cluster_config_default(&cfg, 5);
	cfg.request_queue_max = 512;
	cfg.batch_requests_max = 4;
	cfg.window_slots = 32;
	return cluster_cmocka_setup(state, 5, &cfg);
}

#define BUSY_CLIENTS 64u

/* Clients with open sessions and their next seqs. */
struct clients {
	uint64_t id[BUSY_CLIENTS];
	uint64_t seq[BUSY_CLIENTS];
};

static void fill_queue(struct cluster *c, uint8_t leader, struct clients *cl,
		       uint32_t count)
{
	uint8_t cmd[64];
	uint32_t len = cluster_encode_put(cmd, sizeof(cmd), "k", "v");
	for (uint32_t k = 0; k < count; k++) {
		uint32_t i = k % BUSY_CLIENTS;
		assert_int_equal(cluster_request(c, leader, cl->id[i],
						 cl->seq[i]++, cmd, len),
				 0);
	}
	cluster_flush(c, leader);
}

static void test_outbox_cap_min_is_enough(void **state)
{
	struct cluster *c = *state;
	static struct clients cl;
	CLUSTER_ELECT(0);
	for (uint32_t i = 0; i < BUSY_CLIENTS; i++) {
		cl.id[i] = CLUSTER_OPEN_SESSION(0);
		cl.seq[i] = 1;
	}
	/* Replica 4 falls behind; 3 gets none of the ACCEPTs. */
	CLUSTER_ISOLATE(4);
	CLUSTER_CUT(0, 3);
	for (int round = 0; round < 6; round++) {
		fill_queue(c, 0, &cl, 400);
		CLUSTER_RUN(c->tmpl.retransmit_ns);
	}
	/* A full queue and a full window, then a higher ballot. */
	CLUSTER_CUT(0, 1);
	CLUSTER_CUT(0, 2);
	fill_queue(c, 0, &cl, 512);
	assert_true(px_queue_depth(CLUSTER_PX(0)) >=
		    c->tmpl.request_queue_max -
			    c->tmpl.window_slots * c->tmpl.batch_requests_max);
	CLUSTER_HEAL_ALL();
	CLUSTER_ELECT(1);
	CLUSTER_RUN(10 * c->tmpl.retransmit_ns);
	for (int round = 0; round < 4; round++) {
		fill_queue(c, 1, &cl, 300);
		CLUSTER_RUN(2 * c->tmpl.retransmit_ns);
	}
	CLUSTER_RUN(20 * c->tmpl.retransmit_ns);
	for (uint8_t i = 0; i < 5; i++) {
		assert_int_equal(
			px_stats(CLUSTER_PX(i))->drops[PX_DROP_OUTBOX_FULL], 0);
		ASSERT_SAME_STATE(1, i);
	}
	assert_true(px_commit_index(CLUSTER_PX(1)) > 2 * c->tmpl.log_slots);
}

/* px_check_invariants names what is broken: each corruption below is one
 * the core must never make (the fixture calls it after every step). */
static void test_invariants_name_what_is_broken(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	struct px_replica *r = CLUSTER_PX(1);
	assert_null(px_check_invariants(r));
	uint64_t saved = r->applied_index;
	r->applied_index = r->commit_index + 1;
	assert_string_equal(px_check_invariants(r),
			    "applied index is above the commit index");
	r->applied_index = saved;
	r->queue_count = r->cfg.request_queue_max + 1;
	assert_string_equal(px_check_invariants(r),
			    "request queue beyond its bound");
	r->queue_count = 0;
	r->ballot = px_ballot_make(1, 1);
	assert_string_equal(px_check_invariants(r), "a follower keeps a ballot");
	r->ballot = 0;
	uint64_t promised = r->promised;
	r->promised = promised - 1;
	assert_string_equal(px_check_invariants(r), "promise went back");
	r->promised = promised;
	assert_null(px_check_invariants(r));
	struct px_replica *l = CLUSTER_PX(0);
	l->ballot = px_ballot_make_inc(px_ballot_round(l->ballot), 3, 0);
	assert_string_equal(px_check_invariants(l),
			    "leading a ballot of another incarnation");
	l->ballot = l->promised;
	assert_null(px_check_invariants(l));
}

int main(void)
{
#define T(f, s) cmocka_unit_test_setup_teardown(f, s, teardown)
	const struct CMUnitTest tests[] = {
		T(test_invariants_name_what_is_broken, setup3),
		cmocka_unit_test_setup_teardown(test_config_each_bad_field,
						kv_setup, kv_teardown),
		cmocka_unit_test_setup_teardown(test_init_memory, kv_setup,
						kv_teardown),
		cmocka_unit_test(test_drop_reason_names),
		T(test_bad_messages_are_dropped, setup3),
		T(test_request_shapes, setup3),
		T(test_absurd_promises_are_dropped, setup3),
		T(test_stale_phase2_answers, setup3),
		cmocka_unit_test_setup_teardown(
			test_fuzzed_input_never_breaks_a_replica, kv_setup,
			kv_teardown),
		T(test_leader_hint, setup3),
		T(test_outbox_cap_min_is_enough, setup5_busy),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
