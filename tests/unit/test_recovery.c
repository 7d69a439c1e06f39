/* Unit tests for recovery without stable storage (consensus/recovery.c):
 * incarnations, crash vectors and the fencing round. The fixture checks
 * after every step that no slot is committed with two values, which is
 * what a promise counted across a crash breaks (issue 8, hole 1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bypax/kv.h"
#include "cluster.h"
#include "internal.h"

enum { L = 0, R = 1, X = 2, Y = 3, Z = 4 };

/* Five replicas, no leases: elections go as fast as the network allows,
 * and only ballots order them. */
static int setup5_no_lease(void **state)
{
	struct px_config cfg;
	cluster_config_default(&cfg, 5);
	cfg.lease_ns = 0;
	return cluster_cmocka_setup(state, 5, &cfg);
}

static int setup3(void **state)
{
	return cluster_cmocka_setup(state, 3, NULL);
}

static int teardown(void **state)
{
	return cluster_cmocka_teardown(state);
}

static void cut_off_from_all(struct cluster *c, uint8_t i)
{
	for (uint8_t j = 0; j < c->n; j++)
		if (j != i)
			CLUSTER_CUT_BOTH(i, j);
}

/* Hole 1: two values chosen for one slot after diskless recovery.
 * X runs phase 1 at a ballot b that only R hears; R promises and crashes.
 * R recovers, fenced by L, Y and Z, none of which has seen b, so its
 * promise stays below b. L leads with {L, R, Z} below b and chooses v for
 * slot 0. Then X's PREPARE b reaches Y, which promises: with R's promise
 * from before the crash X would have {X, Y, R}, see nothing at slot 0 and
 * get w chosen there. Y heard of R's new incarnation in the fence, and
 * its promise says so: X must forget R's old promise and find v. */
static void test_promise_from_before_a_crash_does_not_count(void **state)
{
	struct cluster *c = *state;
	char buf[64];
	/* Two sessions, then nobody leads. */
	CLUSTER_ELECT(L);
	uint64_t cl = CLUSTER_OPEN_SESSION(L), cx = CLUSTER_OPEN_SESSION(L);
	CLUSTER_RUN(4 * c->tmpl.heartbeat_interval_ns);
	cluster_hint(c, PX_REPLICA_NONE);
	uint64_t s0 = px_commit_index(CLUSTER_PX(L)); /* v's slot */
	for (uint8_t i = 0; i < c->n; i++)
		ASSERT_APPLIED(i, s0);
	/* X has seen round 9 somewhere: its ballot will outrank L's. */
	struct px_msg nack = { .type = PX_MSG_NACK, .from = Z, .to = X,
			       .ballot = px_ballot_make(9, Z) };
	CLUSTER_INJECT(X, &nack);

	/* Only R hears X's PREPARE b. */
	CLUSTER_CUT(X, L);
	CLUSTER_CUT(X, Y);
	CLUSTER_CUT(X, Z);
	CLUSTER_HINT_ONE(X, X);
	CLUSTER_DELIVER_ALL();
	uint64_t b = px_promised_ballot(CLUSTER_PX(X));
	assert_int_equal(px_ballot_round(b), 10);
	assert_int_equal(px_promised_ballot(CLUSTER_PX(R)), b);
	assert_int_equal(CLUSTER_PX(X)->p1.complete_mask, (1u << X) | (1u << R));

	/* R crashes and recovers, fenced by L, Y and Z. */
	CLUSTER_CUT_BOTH(X, R);
	CLUSTER_CRASH(R);
	CLUSTER_RECOVER(R);
	CLUSTER_RUN(60 * c->tmpl.retransmit_ns);
	ASSERT_FOLLOWER(R);
	assert_true(px_promised_ballot(CLUSTER_PX(R)) < b);
	assert_int_equal(CLUSTER_PX(Y)->incarnation[R], 1);

	/* L leads with {L, R, Z} (Y is cut off from it) and chooses v. */
	CLUSTER_CUT_BOTH(L, Y);
	CLUSTER_HINT_ONE(L, L);
	CLUSTER_HINT_ONE(R, L);
	CLUSTER_HINT_ONE(Z, L);
	CLUSTER_RUN(10 * c->tmpl.retransmit_ns);
	ASSERT_LEADER(L);
	assert_true(px_leader_ballot(CLUSTER_PX(L)) < b);
	CLUSTER_SUBMIT_PUT(L, cl, 1, "k", "v");
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(cl, 1, PX_REPLY_OK);
	cluster_chosen_put_value(c, L, s0, buf, sizeof(buf));
	assert_string_equal(buf, "v");
	/* R accepted v but does not learn that it is chosen (else it would
	 * refuse any other value for slot s0, whatever ballot asks). */
	CLUSTER_CUT(L, R);
	assert_int_equal(px_commit_index(CLUSTER_PX(R)), s0);

	/* X's PREPARE b reaches Y at last, and X is asked to write w. */
	CLUSTER_HEAL(X, Y);
	CLUSTER_HEAL(Y, X);
	CLUSTER_RUN(4 * c->tmpl.retransmit_ns);
	CLUSTER_SUBMIT_PUT(X, cx, 1, "k", "w");
	/* Counting R's old promise, X would lead now and, with R's new vote
	 * (R's promise is below b), get w chosen for slot s0: the fixture
	 * fails the test there, as L committed v for it. Y's promise says R
	 * has recovered, so X forgets R's old promise instead... */
	ASSERT_ROLE(X, PX_ROLE_CANDIDATE);
	assert_int_equal(CLUSTER_PX(X)->incarnation[R], 1);
	assert_int_equal(CLUSTER_PX(X)->p1.complete_mask & (1u << R), 0);
	CLUSTER_HEAL(X, R);
	CLUSTER_HEAL(R, X);
	CLUSTER_RUN(10 * c->tmpl.retransmit_ns);

	/* ...and asks R again, which reports v: slot s0 stays v. */
	CLUSTER_HEAL_ALL();
	cluster_hint(c, X);
	CLUSTER_RUN(20 * c->tmpl.retransmit_ns);
	ASSERT_LEADER(X);
	const struct cluster_reply *w = CLUSTER_REPLY(cx, 1);
	if (w == NULL || w->status != PX_REPLY_OK) {
		CLUSTER_SUBMIT_PUT(X, cx, 1, "k", "w");
		CLUSTER_RUN(10 * c->tmpl.retransmit_ns);
	}
	ASSERT_REPLY(cx, 1, PX_REPLY_OK);
	cluster_chosen_put_value(c, X, s0, buf, sizeof(buf));
	assert_string_equal(buf, "v");
	cluster_chosen_put_value(c, X, s0 + 1, buf, sizeof(buf));
	assert_string_equal(buf, "w");
}

/* An ACCEPTED from before its sender crashed does not count either: a
 * leader that hears of the sender's new incarnation drops it. */
static void test_acceptance_from_before_a_crash_does_not_count(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(L);
	struct px_replica *l = CLUSTER_PX(L);
	uint64_t cl = CLUSTER_OPEN_SESSION(L);
	/* An ACCEPTED for a slot in flight, from R's life 0, once L knows
	 * R is in life 1. */
	cut_off_from_all(c, L);
	CLUSTER_SUBMIT_PUT(L, cl, 1, "k", "v");
	CLUSTER_DELIVER_ALL();
	uint64_t slot = px_commit_index(l);
	struct px_msg acc = { .type = PX_MSG_ACCEPTED, .from = R, .to = L,
			      .ballot = px_leader_ballot(l), .slot = slot };
	px_cv_set(acc.crash_vector, R, 0);
	px_cv_learn(l, R, 1);
	uint64_t before = px_stats(l)->drops[PX_DROP_STALE_INCARNATION];
	CLUSTER_INJECT(L, &acc);
	assert_int_equal(px_stats(l)->drops[PX_DROP_STALE_INCARNATION],
			 before + 1);
	assert_int_equal(px_log_get(l, slot)->ack_mask, 1u << L);
	/* The same from life 1 counts. */
	px_cv_set(acc.crash_vector, R, 1);
	CLUSTER_INJECT(L, &acc);
	assert_int_equal(px_log_get(l, slot)->ack_mask, (1u << L) | (1u << R));
}

/* Learning that a replica recovered withdraws its promise and its
 * acceptances of slots still in flight. */
static void test_new_incarnation_withdraws_votes(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(L);
	struct px_replica *l = CLUSTER_PX(L);
	assert_true(l->p1.complete_mask & (1u << Y));
	uint64_t cl = CLUSTER_OPEN_SESSION(L);
	cut_off_from_all(c, L);
	CLUSTER_SUBMIT_PUT(L, cl, 1, "k", "v");
	CLUSTER_DELIVER_ALL();
	uint64_t slot = px_commit_index(l);
	struct px_slot *s = px_log_get(l, slot);
	s->ack_mask |= (uint8_t)(1u << Y); /* as if Y had accepted */
	px_cv_learn(l, Y, 3);
	assert_int_equal(l->incarnation[Y], 3);
	assert_int_equal(l->p1.complete_mask & (1u << Y), 0);
	assert_int_equal(s->ack_mask & (1u << Y), 0);
	/* Lower or equal news changes nothing. */
	l->p1.complete_mask |= (uint8_t)(1u << Y);
	px_cv_learn(l, Y, 2);
	px_cv_learn(l, Y, 3);
	assert_true(l->p1.complete_mask & (1u << Y));
}

/* A recovered replica's incarnation is above every earlier one, and its
 * ballots carry it: twice crashed, twice a new life. */
static void test_each_recovery_is_a_new_incarnation(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	for (uint16_t life = 1; life <= 3; life++) {
		CLUSTER_CRASH(2);
		CLUSTER_RECOVER(2);
		CLUSTER_RUN(60 * c->tmpl.retransmit_ns);
		ASSERT_FOLLOWER(2);
		assert_int_equal(px_own_incarnation(CLUSTER_PX(2)), life);
		assert_int_equal(CLUSTER_PX(0)->incarnation[2], life);
		assert_int_equal(CLUSTER_PX(1)->incarnation[2], life);
	}
	cluster_elect(c, 2);
	ASSERT_LEADER(2);
	assert_int_equal(px_ballot_incarnation(px_leader_ballot(CLUSTER_PX(2))),
			 3);
}

/* An answer to an earlier life's recovery round, with the same ballot,
 * does not count: the nonce differs. */
static void test_recovery_ignores_answers_without_its_nonce(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	CLUSTER_CRASH(2);
	CLUSTER_RECOVER(2);
	struct px_replica *r2 = CLUSTER_PX(2);
	for (int k = 0; k < 200 && r2->p1.ballot == 0; k++) {
		CLUSTER_ADVANCE(c->tmpl.retransmit_ns);
		CLUSTER_TICK_ALL();
		CLUSTER_DELIVER_MATCH(PX_MSG_SNAPSHOT_REQ, CLUSTER_ANY,
				      CLUSTER_ANY);
		CLUSTER_DELIVER_MATCH(PX_MSG_SNAPSHOT, CLUSTER_ANY, CLUSTER_ANY);
	}
	assert_int_not_equal(r2->p1.ballot, 0);
	struct px_msg p = { .type = PX_MSG_PROMISE, .from = 0, .to = 2,
			    .flags = PX_FLAG_RECOVERY, .ballot = r2->p1.ballot,
			    .slot = r2->p1.from, .slot_end = r2->p1.from,
			    .log_start = r2->p1.from };
	p.seq = ((r2->recovery_nonce + 1) & 0xffffffffu) << 32;
	px_cv_fill(CLUSTER_PX(0), p.crash_vector);
	px_cv_set(p.crash_vector, 2, 0);
	uint64_t before = px_stats(r2)->drops[PX_DROP_STALE_BALLOT];
	CLUSTER_INJECT(2, &p);
	assert_int_equal(px_stats(r2)->drops[PX_DROP_STALE_BALLOT], before + 1);
	assert_int_equal(r2->p1.complete_mask & 1u, 0);
	/* With the nonce it counts. */
	p.seq = (r2->recovery_nonce & 0xffffffffu) << 32;
	CLUSTER_INJECT(2, &p);
	assert_true(r2->p1.complete_mask & 1u);
}

/* A recovering replica serves no snapshot: its state may be older than
 * what the asker must fence, and two recovering replicas asking each
 * other would fence forever (sim seed 1032759 at 5 replicas). */
static void test_recovering_replica_serves_no_snapshot(void **state)
{
	struct cluster *c = *state;
	CLUSTER_CRASH(1);
	CLUSTER_RECOVER(1);
	struct px_msg req = { .type = PX_MSG_SNAPSHOT_REQ, .from = 2, .to = 1 };
	CLUSTER_INJECT(1, &req);
	assert_int_equal(CLUSTER_COUNT(PX_MSG_SNAPSHOT, 1, 2), 0);
	ASSERT_DROPS(1, PX_DROP_WRONG_ROLE, 1);
}

int main(void)
{
#define T(f, s) cmocka_unit_test_setup_teardown(f, s, teardown)
	const struct CMUnitTest tests[] = {
		T(test_promise_from_before_a_crash_does_not_count,
		  setup5_no_lease),
		T(test_acceptance_from_before_a_crash_does_not_count,
		  setup5_no_lease),
		T(test_new_incarnation_withdraws_votes, setup5_no_lease),
		T(test_each_recovery_is_a_new_incarnation, setup3),
		T(test_recovery_ignores_answers_without_its_nonce, setup3),
		T(test_recovering_replica_serves_no_snapshot, setup3),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
