/* Unit tests for the log ring (replica.c: px_log_get/claim/make_room/
 * reset_from): wrap-around far past log_slots, reclaiming only applied
 * slots, and the snapshot a replica gets when it is behind what the
 * others still hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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

/* One client's session and its last seq. */
struct writer {
	uint64_t id; /* 0 until its session is open */
	uint64_t seq;
};

/* Commits `count` slots through leader 0: the writer's OPEN first if its
 * session is not open yet, then one PUT each. */
static void commit_slots(struct cluster *c, uint64_t count, struct writer *w)
{
	char key[16], value[24];
	for (uint64_t k = 0; k < count; k++) {
		if (w->id == 0) {
			w->id = cluster_open_session(c, 0);
			continue;
		}
		w->seq++;
		snprintf(key, sizeof(key), "k%llu",
			 (unsigned long long)(w->seq % 7));
		snprintf(value, sizeof(value), "v%llu",
			 (unsigned long long)w->seq);
		CLUSTER_SUBMIT_PUT(0, w->id, w->seq, key, value);
		CLUSTER_DELIVER_ALL();
	}
}

/* 1000 slots through a ring of 64: every replica holds the newest ones,
 * has let the applied old ones go, and all agree. */
static void test_ring_wraps_far_past_log_slots(void **state)
{
	struct cluster *c = *state;
	const uint64_t log_slots = c->tmpl.log_slots;
	struct writer w = { 0 };
	CLUSTER_ELECT(0);
	commit_slots(c, 1000, &w);
	CLUSTER_RUN(2 * c->tmpl.heartbeat_interval_ns);
	for (uint8_t i = 0; i < 3; i++) {
		const struct px_replica *r = CLUSTER_PX(i);
		ASSERT_COMMIT(i, 1000);
		ASSERT_APPLIED(i, 1000);
		/* Old slots are reclaimed, lazily, only as room is needed. */
		assert_true(px_log_start(r) > 1000 - log_slots - 1);
		assert_true(px_log_start(r) <= 1000);
		const uint8_t *v;
		uint32_t len;
		assert_int_equal(px_chosen_value(r, 0, &v, &len),
				 -BPX_ENOTFOUND);
		assert_int_equal(px_chosen_value(r, 999, &v, &len), 0);
		assert_int_equal(px_stats(r)->slots_committed, 1000);
		assert_int_equal(px_stats(r)->sessions_opened, 1);
		assert_int_equal(px_stats(r)->requests_applied, 999);
		ASSERT_SAME_STATE(0, i);
	}
	assert_int_equal(px_stats(CLUSTER_PX(0))->slots_proposed, 1000);
	ASSERT_REPLY(w.id, 999, PX_REPLY_OK);
}

/* A slot is reclaimed only once applied: an acceptor whose ring is full of
 * accepted slots it does not yet know chosen refuses slots past the ring,
 * and takes them once a commit lets it apply (and so free) the oldest. */
static void test_only_applied_slots_are_reclaimed(void **state)
{
	struct cluster *c = *state;
	const uint32_t log_slots = c->tmpl.log_slots;
	const uint64_t b = px_ballot_make(1, 2);
	const uint8_t noop[1] = { 0 };
	struct px_msg accept = {
		.type = PX_MSG_ACCEPT,
		.from = 2,
		.to = 1,
		.ballot = b,
		.value = noop,
		.value_len = 0,
	};
	for (uint64_t s = 0; s < log_slots; s++) {
		accept.slot = s;
		assert_int_equal(CLUSTER_INJECT(1, &accept), 0);
	}
	ASSERT_QUEUED(PX_MSG_ACCEPTED, 1, 2, log_slots);
	accept.slot = log_slots;
	assert_int_equal(CLUSTER_INJECT(1, &accept), 0);
	ASSERT_QUEUED(PX_MSG_ACCEPTED, 1, 2, log_slots);
	ASSERT_DROPS(1, PX_DROP_OUT_OF_WINDOW, 1);
	assert_int_equal(px_log_start(CLUSTER_PX(1)), 0);

	/* Ten slots are chosen and applied: ten slots of room. */
	struct px_msg commit = {
		.type = PX_MSG_COMMIT,
		.from = 2,
		.to = 1,
		.ballot = b,
		.commit_index = 10,
	};
	assert_int_equal(CLUSTER_INJECT(1, &commit), 0);
	ASSERT_APPLIED(1, 10);
	assert_int_equal(px_log_start(CLUSTER_PX(1)), 0); /* lazily */
	for (uint64_t s = log_slots; s < log_slots + 10; s++) {
		accept.slot = s;
		assert_int_equal(CLUSTER_INJECT(1, &accept), 0);
	}
	ASSERT_QUEUED(PX_MSG_ACCEPTED, 1, 2, log_slots + 10);
	assert_int_equal(px_log_start(CLUSTER_PX(1)), 10);
	assert_null(px_log_get(CLUSTER_PX(1), 9));
	assert_non_null(px_log_get(CLUSTER_PX(1), 10));
	accept.slot = log_slots + 10;
	assert_int_equal(CLUSTER_INJECT(1, &accept), 0);
	ASSERT_DROPS(1, PX_DROP_OUT_OF_WINDOW, 2);
	/* Below the ring's start is gone for good. */
	accept.slot = 3;
	assert_int_equal(CLUSTER_INJECT(1, &accept), 0);
	ASSERT_DROPS(1, PX_DROP_OUT_OF_WINDOW, 3);
}

/* A follower cut off while the others went 200 slots on is behind the
 * leader's log start: its STATUS gets PX_MSG_SNAPSHOT out of the leader,
 * the fixture takes px_snapshot_save and the follower installs it, then
 * catches up the rest slot by slot. */
static void test_follower_behind_log_start_gets_snapshot(void **state)
{
	struct cluster *c = *state;
	struct writer w = { 0 };
	CLUSTER_ELECT(0);
	commit_slots(c, 3, &w);
	CLUSTER_ISOLATE(2);
	commit_slots(c, 200, &w);
	assert_true(px_log_start(CLUSTER_PX(0)) > 3);
	CLUSTER_HEAL_ALL();

	CLUSTER_TICK(0); /* heartbeat */
	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_COMMIT, 0, 2));
	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_STATUS, 2, 0));
	ASSERT_QUEUED(PX_MSG_SNAPSHOT, 0, 2, 1);
	ASSERT_QUEUED(PX_MSG_CHOSEN, 0, 2, 0);
	assert_int_equal(c->snapshots_sent, 1);
	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_SNAPSHOT, 0, 2));
	assert_int_equal(px_stats(CLUSTER_PX(2))->snapshots_installed, 1);
	ASSERT_APPLIED(2, px_applied_index(CLUSTER_PX(0)));
	assert_int_equal(px_log_start(CLUSTER_PX(2)),
			 px_applied_index(CLUSTER_PX(2)));
	ASSERT_SAME_STATE(0, 2);

	/* Caught up: later heartbeats bring no second snapshot. */
	CLUSTER_DELIVER_ALL();
	CLUSTER_ADVANCE(c->tmpl.heartbeat_interval_ns);
	CLUSTER_TICK(0);
	CLUSTER_DELIVER_ALL();
	assert_int_equal(c->snapshots_sent, 1);

	commit_slots(c, 5, &w);
	CLUSTER_RUN(5 * c->tmpl.retransmit_ns);
	ASSERT_APPLIED(2, 208);
	ASSERT_SAME_STATE(0, 2);
}

/* A candidate behind an acceptor's log start cannot learn those slots in
 * phase 1: it asks for a snapshot and steps back, then wins once caught
 * up, and everything chosen stays chosen (checked at every step). */
static void test_candidate_behind_log_start_asks_snapshot(void **state)
{
	struct cluster *c = *state;
	struct writer w = { 0 };
	CLUSTER_ELECT(0);
	CLUSTER_ISOLATE(2);
	commit_slots(c, 200, &w);
	CLUSTER_HEAL_ALL();
	CLUSTER_HINT(2);
	ASSERT_ROLE(2, PX_ROLE_CANDIDATE);
	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_PREPARE, 2, 1));
	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_PROMISE, 1, 2));
	ASSERT_FOLLOWER(2);
	ASSERT_QUEUED(PX_MSG_SNAPSHOT_REQ, 2, 1, 1);
	CLUSTER_ELECT(2);
	assert_int_equal(px_stats(CLUSTER_PX(2))->snapshots_installed, 1);
	/* The session came with the snapshot. */
	CLUSTER_SUBMIT_PUT(2, w.id, w.seq + 1, "k", "v");
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(w.id, w.seq + 1, PX_REPLY_OK);
	CLUSTER_RUN(5 * c->tmpl.retransmit_ns);
	ASSERT_APPLIED(0, 201);
	ASSERT_SAME_STATE(0, 2);
	ASSERT_SAME_STATE(1, 2);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup3, teardown)
	const struct CMUnitTest tests[] = {
		T(test_ring_wraps_far_past_log_slots),
		T(test_only_applied_slots_are_reclaimed),
		T(test_follower_behind_log_start_gets_snapshot),
		T(test_candidate_behind_log_start_asks_snapshot),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
