/* Unit tests for durable mode (consensus/persist.c, consensus.h
 * "Durability"): the PERSIST records come before the messages that depend
 * on them (the fixture checks that after every step, tests/lib/cluster.h),
 * and a replica restarted from its records forgets nothing it told
 * anyone, even when every replica restarts at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bypax/kv.h"
#include "cluster.h"
#include "internal.h"

static int setup_durable3(void **state)
{
	struct px_config tmpl;
	cluster_config_default(&tmpl, 3);
	tmpl.durable = 1;
	return cluster_cmocka_setup(state, 3, &tmpl);
}

static int setup_memory3(void **state)
{
	return cluster_cmocka_setup(state, 3, NULL);
}

static int teardown(void **state)
{
	return cluster_cmocka_teardown(state);
}

static size_t records(const struct cluster *c, uint8_t i, uint8_t flags)
{
	size_t n = 0;
	for (size_t k = 0; k < c->nodes[i].disk_len; k++)
		n += c->nodes[i].disk[k].msg.flags == flags;
	return n;
}

/* Every replica restarts at once from its disk. */
static void restart_all(struct cluster *c)
{
	CLUSTER_DISCARD_ALL();
	for (uint8_t i = 0; i < c->n; i++)
		CLUSTER_CRASH(i);
	for (uint8_t i = 0; i < c->n; i++)
		cluster_start(c, i, false);
}

static void test_config_refuses_durable_recovery(void **state)
{
	(void)state;
	struct px_config cfg;
	cluster_config_default(&cfg, 3);
	cfg.sm_ops = bpx_kv_ops();
	cfg.sm = (void *)1;
	cfg.durable = 1;
	assert_null(px_config_check_reason(&cfg));
	cfg.recovering = 1;
	assert_string_equal(px_config_check_reason(&cfg),
			    "a durable replica restarts from its disk, not by "
			    "a recovery round");
	cfg.recovering = 0;
	cfg.durable = 2;
	assert_string_equal(px_config_check_reason(&cfg),
			    "durable must be 0 (in memory) or 1 (durable)");
}

/* In memory mode nothing is recorded (the fixture fails on any record). */
static void test_memory_mode_records_nothing(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t s = CLUSTER_OPEN_SESSION(0);
	CLUSTER_SUBMIT_PUT(0, s, 1, "k", "v");
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(s, 1, PX_REPLY_OK);
	for (uint8_t i = 0; i < 3; i++)
		assert_int_equal(c->nodes[i].disk_len, 0);
}

/* Each acceptor records its promise, each its votes, the leader its own
 * ballot and proposals; the fixture saw each before what depends on it. */
static void test_records_come_before_messages(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t s = CLUSTER_OPEN_SESSION(0);
	CLUSTER_SUBMIT_PUT(0, s, 1, "k", "v");
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(s, 1, PX_REPLY_OK);
	for (uint8_t i = 0; i < 3; i++) {
		assert_true(records(c, i, PX_PERSIST_PROMISE) >= 1);
		assert_true(records(c, i, PX_PERSIST_ACCEPTED) >= 2);
		assert_int_equal(c->nodes[i].disk_promise,
				 px_promised_ballot(CLUSTER_PX(i)));
	}
	assert_true(records(c, 0, PX_PERSIST_COMMIT) >= 1);
	assert_int_equal(records(c, 0, PX_PERSIST_MEMBERS), 0);
}

/* The whole cluster stops at once and comes back with every acknowledged
 * write and session: applied again from the records, no recovery round. */
static void test_whole_cluster_restart_keeps_writes(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t s = CLUSTER_OPEN_SESSION(0);
	CLUSTER_SUBMIT_PUT(0, s, 1, "k", "v1");
	CLUSTER_SUBMIT_PUT(0, s, 2, "j", "v2");
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(s, 2, PX_REPLY_OK);
	uint64_t applied = px_applied_index(CLUSTER_PX(0));
	uint64_t digest = px_state_digest(CLUSTER_PX(0));

	restart_all(c);
	ASSERT_FOLLOWER(0);
	ASSERT_APPLIED(0, applied);
	assert_true(px_state_digest(CLUSTER_PX(0)) == digest);

	/* It votes at once (after the lease fence): 1 leads, and the old
	 * session writes on, its seq 2 answered from the rebuilt session. */
	CLUSTER_ADVANCE(c->tmpl.lease_ns);
	CLUSTER_ELECT(1);
	cluster_replies_clear(c);
	CLUSTER_SUBMIT_PUT(1, s, 2, "j", "v2");
	CLUSTER_SUBMIT_PUT(1, s, 3, "k", "v3");
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(s, 2, PX_REPLY_OK);
	ASSERT_REPLY(s, 3, PX_REPLY_OK);
	char buf[16];
	cluster_chosen_put_value(c, 1, px_commit_index(CLUSTER_PX(1)) - 1, buf,
				 sizeof(buf));
	assert_string_equal(buf, "v3");
}

/* A promise survives: an acceptor that promised 1's ballot, then
 * restarted, still refuses 2's lower ballot (a NACK). */
static void test_restart_keeps_the_promise(void **state)
{
	struct cluster *c = *state;
	c->tmpl.lease_ns = 0;
	for (uint8_t i = 0; i < 3; i++)
		cluster_start(c, i, false);
	CLUSTER_HINT_ONE(1, 1);
	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_PREPARE, 1, 0));
	uint64_t b = px_promised_ballot(CLUSTER_PX(0));
	assert_int_equal(px_ballot_owner(b), 1);
	CLUSTER_DISCARD_ALL();
	CLUSTER_CRASH(0);
	cluster_start(c, 0, false);
	assert_int_equal(px_promised_ballot(CLUSTER_PX(0)), b);

	struct px_msg lower = { .type = PX_MSG_PREPARE,
				.from = 2,
				.to = 0,
				.ballot = px_ballot_make(px_ballot_round(b) - 1,
							 2) };
	assert_int_equal(CLUSTER_INJECT(0, &lower), 0);
	ASSERT_QUEUED(PX_MSG_NACK, 0, 2, 1);
	ASSERT_QUEUED(PX_MSG_PROMISE, 0, 2, 0);
}

/* A restarted replica may have granted a lease just before its crash: for
 * lease_ns it promises no candidate, then it does. */
static void test_restart_waits_out_leases(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	CLUSTER_RUN(2 * c->tmpl.heartbeat_interval_ns);
	CLUSTER_DISCARD_ALL();
	CLUSTER_CRASH(1);
	cluster_start(c, 1, false);
	uint64_t top = px_promised_ballot(CLUSTER_PX(1));
	struct px_msg p = { .type = PX_MSG_PREPARE,
			    .from = 2,
			    .to = 1,
			    .ballot = px_ballot_make(px_ballot_round(top) + 1,
						     2) };
	uint64_t held = px_stats(CLUSTER_PX(1))->drops[PX_DROP_LEASE_HELD];
	assert_int_equal(CLUSTER_INJECT(1, &p), 0);
	ASSERT_DROPS(1, PX_DROP_LEASE_HELD, held + 1);
	ASSERT_QUEUED(PX_MSG_PROMISE, 1, 2, 0);
	/* Nor does it run itself while the fence lasts. */
	CLUSTER_HINT_ONE(1, 1);
	CLUSTER_TICK(1);
	ASSERT_FOLLOWER(1);
	CLUSTER_ADVANCE(c->tmpl.lease_ns);
	assert_int_equal(CLUSTER_INJECT(1, &p), 0);
	ASSERT_QUEUED(PX_MSG_PROMISE, 1, 2, 1);
}

/* Records the replay cannot take are refused by name of the error. */
static void test_replay_refuses_bad_records(void **state)
{
	struct cluster *c = *state;
	struct px_replica *r = CLUSTER_PX(0);
	struct px_msg m = { .type = PX_MSG_PERSIST, .from = 0, .to = 0 };
	m.flags = PX_PERSIST_MEMBERS; /* never emitted */
	assert_int_equal(px_durable_replay(r, &m), -BPX_EINVAL);
	m.flags = 9;
	assert_int_equal(px_durable_replay(r, &m), -BPX_EINVAL);
	m.flags = PX_PERSIST_PROMISE; /* ballot 0 */
	assert_int_equal(px_durable_replay(r, &m), -BPX_EINVAL);
	m.flags = PX_PERSIST_ACCEPTED;
	m.ballot = px_ballot_make(1, 1);
	m.value_len = PX_VALUE_BYTES_MAX + 1;
	static uint8_t big[PX_VALUE_BYTES_MAX + 1];
	m.value = big;
	assert_int_equal(px_durable_replay(r, &m), -BPX_EINVAL);
	m.value_len = 0;
	m.slot = c->tmpl.log_slots; /* beyond the log, nothing to commit */
	assert_int_equal(px_durable_replay(r, &m), -BPX_EINVAL);
	m.slot = 0;
	assert_int_equal(px_durable_replay(r, &m), 0);
	m.type = PX_MSG_ACCEPTED; /* not a record */
	assert_int_equal(px_durable_replay(r, &m), -BPX_EINVAL);
}

/* Replay without COMMIT records (the caller may lose them): a slot a log
 * beyond an older one tells that the older one was applied. */
static void test_replay_without_commit_records(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t s = CLUSTER_OPEN_SESSION(0);
	for (uint64_t k = 1; k <= c->tmpl.log_slots + 8; k++) {
		CLUSTER_SUBMIT_PUT(0, s, k, "k", "v");
		CLUSTER_DELIVER_ALL();
	}
	struct cluster_node *nd = &c->nodes[1];
	size_t kept = 0;
	for (size_t k = 0; k < nd->disk_len; k++) {
		if (nd->disk[k].msg.flags == PX_PERSIST_COMMIT) {
			free(nd->disk[k].value);
			continue;
		}
		nd->disk[kept++] = nd->disk[k];
	}
	nd->disk_len = kept;
	uint64_t applied = px_applied_index(CLUSTER_PX(1));
	CLUSTER_DISCARD_ALL();
	CLUSTER_CRASH(1);
	cluster_start(c, 1, false);
	assert_true(px_applied_index(CLUSTER_PX(1)) >=
		    applied - c->tmpl.log_slots);
	assert_true(px_applied_index(CLUSTER_PX(1)) > 0);
	/* And it catches up on the rest. */
	CLUSTER_RUN(10 * c->tmpl.heartbeat_interval_ns);
	ASSERT_SAME_STATE(0, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_refuses_durable_recovery),
		cmocka_unit_test_setup_teardown(test_memory_mode_records_nothing,
						setup_memory3, teardown),
		cmocka_unit_test_setup_teardown(
			test_records_come_before_messages, setup_durable3,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_whole_cluster_restart_keeps_writes, setup_durable3,
			teardown),
		cmocka_unit_test_setup_teardown(test_restart_keeps_the_promise,
						setup_durable3, teardown),
		cmocka_unit_test_setup_teardown(test_restart_waits_out_leases,
						setup_durable3, teardown),
		cmocka_unit_test_setup_teardown(test_replay_refuses_bad_records,
						setup_durable3, teardown),
		cmocka_unit_test_setup_teardown(
			test_replay_without_commit_records, setup_durable3,
			teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
