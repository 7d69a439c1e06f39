/* Unit tests for incarnations across lives, membership changes and lost
 * answers (consensus/recovery.c, acceptor.c, proposer.c): each scenario is
 * one an independent review of the crash-vector change found (issue 8),
 * failing before the fix its comment names. */
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

static int teardown(void **state) { return cluster_cmocka_teardown(state); }
static uint64_t sess, seqn;

static void commit_one(struct cluster *c, uint8_t leader)
{
	if (sess == 0)
		sess = cluster_open_session(c, leader);
	uint64_t s = seqn++;
	CLUSTER_SUBMIT_PUT(leader, sess, s, "k", "x");
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(sess, s, PX_REPLY_OK);
}

static void put_until_in_force(struct cluster *c, uint8_t leader)
{
	for (uint32_t k = 0; px_config_pending(CLUSTER_PX(leader)); k++) {
		assert_true(k <= 2 * c->tmpl.window_slots);
		commit_one(c, leader);
	}
	CLUSTER_RUN(4 * c->tmpl.heartbeat_interval_ns);
}

static int setup7_three_voting_no_lease(void **state)
{
	struct px_config cfg;
	cluster_config_default(&cfg, 7);
	cfg.initial_members = 0x07;
	cfg.lease_ns = 0;
	sess = 0;
	seqn = 1;
	return cluster_cmocka_setup(state, 7, &cfg);
}

static int setup5_no_lease(void **state)
{
	struct px_config cfg;
	cluster_config_default(&cfg, 5);
	cfg.lease_ns = 0;
	sess = 0;
	seqn = 1;
	return cluster_cmocka_setup(state, 5, &cfg);
}

static int setup5_three_voting(void **state)
{
	struct px_config cfg;
	cluster_config_default(&cfg, 5);
	cfg.initial_members = 0x07;
	sess = 0;
	seqn = 1;
	return cluster_cmocka_setup(state, 5, &cfg);
}

static int setup3(void **state)
{
	sess = 0;
	seqn = 1;
	return cluster_cmocka_setup(state, 3, NULL);
}

/* An incarnation reused after a membership change brought hole 1 back:
 * R's first recovery was fenced by 1 and 2, which then left the
 * configuration; fenced by members that never heard of that life, R took
 * incarnation 1 again, and X counted R's promise from before the crash.
 * Fixed by crash vectors travelling with the values (ACCEPT, CHOSEN,
 * COMMIT, snapshots): the new members learned of R's life 1 with the
 * changes themselves. */
enum { R = 0, P = 1, Q = 2, X = 3, L = 4, Y = 5, Z = 6 };
#define NEWCFG 0x79 /* {0,3,4,5,6} */

static void test_incarnation_survives_membership_changes(void **state)
{
	struct cluster *c = *state;
	char buf[64];
	/* Config {0,1,2}; P leads. R's first recovery is fenced by P and Q,
	 * while 3..6 hear nothing from R. */
	CLUSTER_ELECT(P);
	commit_one(c, P);
	for (uint8_t j = X; j <= Z; j++) CLUSTER_CUT_BOTH(R, j);
	CLUSTER_CRASH(R);
	CLUSTER_RECOVER(R);
	cluster_run_until_recovered(c, R);
	assert_int_equal(px_own_incarnation(CLUSTER_PX(R)), 1);
	for (uint8_t j = X; j <= Z; j++) assert_int_equal(CLUSTER_PX(j)->incarnation[R], 0);
	CLUSTER_HEAL_ALL();
	CLUSTER_RUN(4 * c->tmpl.heartbeat_interval_ns);
	/* P moves the membership to {0,3,4,5,6}, twice (the second compacts
	 * the history, so {0,1,2} is no longer asked for). */
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(P, NEWCFG), 0);
	CLUSTER_DELIVER_ALL();
	put_until_in_force(c, P);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(P, NEWCFG), 0);
	CLUSTER_DELIVER_ALL();
	put_until_in_force(c, P);
	commit_one(c, P);
	uint64_t cx = cluster_open_session(c, P);
	CLUSTER_RUN(4 * c->tmpl.heartbeat_interval_ns);
	/* The new members learned of R's life 1 with the changes. */
	for (uint8_t j = X; j <= Z; j++)
		assert_int_equal(CLUSTER_PX(j)->incarnation[R], 1);
	cluster_hint(c, PX_REPLICA_NONE);
	uint64_t s0 = px_commit_index(CLUSTER_PX(P));
	for (uint8_t i = 0; i < c->n; i++) ASSERT_APPLIED(i, s0);

	/* The hole-1 schedule of test_recovery.c in config {R,X,L,Y,Z}. */
	struct px_msg nack = { .type = PX_MSG_NACK, .from = Z, .to = X, .ballot = px_ballot_make(60, Z) };
	CLUSTER_INJECT(X, &nack);
	for (uint8_t j = 0; j < 7; j++) if (j != X && j != R) CLUSTER_CUT(X, j);
	CLUSTER_HINT_ONE(X, X);
	CLUSTER_DELIVER_ALL();
	uint64_t b = px_promised_ballot(CLUSTER_PX(X));
	assert_int_equal(px_promised_ballot(CLUSTER_PX(R)), b);
	assert_int_equal(CLUSTER_PX(X)->p1.complete_mask, (1u << X) | (1u << R));
	assert_int_equal(CLUSTER_PX(X)->incarnation[R], 1);

	/* R crashes and recovers, fenced by L, Y, Z; P and Q (which knew
	 * life 1) happen not to answer in time. */
	CLUSTER_CUT_BOTH(X, R);
	CLUSTER_CUT_BOTH(P, R);
	CLUSTER_CUT_BOTH(Q, R);
	CLUSTER_CRASH(R);
	CLUSTER_RECOVER(R);
	cluster_run_until_recovered(c, R);
	assert_true(px_promised_ballot(CLUSTER_PX(R)) < b);

	/* L leads with {L, R, Z} and chooses v at s0. */
	CLUSTER_CUT_BOTH(L, Y);
	CLUSTER_HINT_ONE(L, L);
	CLUSTER_HINT_ONE(R, L);
	CLUSTER_HINT_ONE(Z, L);
	CLUSTER_RUN(10 * c->tmpl.retransmit_ns);
	ASSERT_LEADER(L);
	assert_true(px_leader_ballot(CLUSTER_PX(L)) < b);
	CLUSTER_SUBMIT_PUT(L, sess, seqn, "k", "v");
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(sess, seqn, PX_REPLY_OK);
	cluster_chosen_put_value(c, L, s0, buf, sizeof(buf));
	assert_string_equal(buf, "v");
	CLUSTER_CUT(L, R);

	/* X's PREPARE b reaches Y; X is asked to write w. */
	CLUSTER_HEAL_BOTH(X, Y);
	CLUSTER_RUN(4 * c->tmpl.retransmit_ns);
	CLUSTER_SUBMIT_PUT(X, cx, 1, "k", "w");
	CLUSTER_HEAL_BOTH(X, R);
	CLUSTER_RUN(10 * c->tmpl.retransmit_ns); /* fixture fails here if w is chosen at s0 */
	cluster_chosen_put_value(c, X, s0, buf, sizeof(buf));
	assert_string_equal(buf, "v");
}

/* A life that announced incarnations in rounds it never finished left
 * them behind at an acceptor; the next life, fenced elsewhere, took a lower
 * one, and every proposer that heard of the higher dropped its votes as a
 * dead life's, for ever. Fixed: it takes the higher one as its own (no
 * vote was ever cast under it). */
enum { ZR = 1, ZA = 2 };

static void test_unfinished_life_leaves_no_zombie(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t s = CLUSTER_OPEN_SESSION(0);
	/* ZR's life 1 hears only from ZA; its rounds restart (NACKs from a
	 * busy cluster, here injected), so ZA learns ever higher announced
	 * incarnations. Then ZR crashes again before it finishes. */
	CLUSTER_CUT_BOTH(ZR, 0); CLUSTER_CUT_BOTH(ZR, 3); CLUSTER_CUT_BOTH(ZR, 4);
	CLUSTER_CUT(ZA, 0); CLUSTER_CUT(ZA, 3); CLUSTER_CUT(ZA, 4);
	CLUSTER_CRASH(ZR);
	CLUSTER_RECOVER(ZR);
	struct px_replica *r = CLUSTER_PX(ZR);
	for (int k = 0; k < 100 && !r->recovery_have_snapshot; k++) {
		CLUSTER_ADVANCE(c->tmpl.retransmit_ns);
		CLUSTER_TICK(ZR);
		CLUSTER_DELIVER_ALL();
	}
	for (int k = 0; k < 6; k++) {
		CLUSTER_ADVANCE(c->tmpl.retransmit_ns);
		CLUSTER_TICK(ZR);
		CLUSTER_DELIVER_ALL();
		struct px_msg nack = { .type = PX_MSG_NACK, .from = 3, .to = ZR,
				       .ballot = r->p1.ballot + 1000 };
		if (r->p1.ballot != 0) CLUSTER_INJECT(ZR, &nack);
	}
	ASSERT_ROLE(ZR, PX_ROLE_RECOVERING);
	CLUSTER_CRASH(ZR);
	/* Life 2: fenced by 0, 3, 4; ZA is slow. */
	CLUSTER_HEAL_ALL();
	CLUSTER_CUT_BOTH(ZR, ZA);
	CLUSTER_CUT(ZA, 0); CLUSTER_CUT(ZA, 3); CLUSTER_CUT(ZA, 4);
	CLUSTER_RECOVER(ZR);
	CLUSTER_RUN(60 * c->tmpl.retransmit_ns);
	r = CLUSTER_PX(ZR);
	ASSERT_FOLLOWER(ZR);
	CLUSTER_HEAL_ALL();
	CLUSTER_RUN(20 * c->tmpl.retransmit_ns);
	/* 3 and 4 go down: {0, ZR, ZA} is a majority of five. */
	CLUSTER_CRASH(3);
	CLUSTER_CRASH(4);
	cluster_hint(c, ZA);
	CLUSTER_RUN(100 * c->tmpl.retransmit_ns);
	CLUSTER_SUBMIT_PUT(px_known_leader(CLUSTER_PX(0)) == 0xff ? ZA : px_known_leader(CLUSTER_PX(0)), s, 1, "k", "v");
	CLUSTER_RUN(100 * c->tmpl.retransmit_ns);
	const struct cluster_reply *rep = CLUSTER_REPLY(s, 1);
	assert_non_null(rep);
	assert_int_equal(rep->status, PX_REPLY_OK);
}

/* Every lost or late answer restarted the fencing round one incarnation
 * higher (the acceptor reported what it had just learned): with one answer
 * lost per round it never finished. Fixed: an acceptor reports what it knew
 * before that life first asked (its nonce), however often it is asked. */
static void test_lost_answers_cost_no_incarnation(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	CLUSTER_CRASH(2);
	CLUSTER_RECOVER(2);
	struct px_replica *r2 = CLUSTER_PX(2);
	for (int k = 0; k < 200 && !r2->recovery_have_snapshot; k++) {
		CLUSTER_ADVANCE(c->tmpl.retransmit_ns);
		CLUSTER_TICK(2);
		CLUSTER_DELIVER_MATCH(PX_MSG_SNAPSHOT_REQ, CLUSTER_ANY, CLUSTER_ANY);
		CLUSTER_DELIVER_MATCH(PX_MSG_SNAPSHOT, CLUSTER_ANY, CLUSTER_ANY);
	}
	CLUSTER_DISCARD_ALL();
	CLUSTER_TICK(2);
	/* stop the leader from disturbing things: no more ticks of 0,1 */
	int rounds = 0;
	uint64_t last_ballot = 0;
	for (int k = 0; k < 400 && px_role(r2) == PX_ROLE_RECOVERING; k++) {
		if (r2->p1.ballot != last_ballot) {
			/* a new round: lose the first answer of replica 1 */
			last_ballot = r2->p1.ballot;
			rounds++;
			CLUSTER_CUT(1, 2);
			while (CLUSTER_DELIVER_MATCH(PX_MSG_PREPARE, 2, CLUSTER_ANY)) {}
			while (CLUSTER_DELIVER_MATCH(PX_MSG_PROMISE, 1, 2)) {}
			CLUSTER_HEAL(1, 2);
		}
		CLUSTER_DELIVER_ALL();
		CLUSTER_ADVANCE(c->tmpl.retransmit_ns);
		CLUSTER_TICK(2);
		CLUSTER_DELIVER_ALL();
		if (r2->p1.ballot == 0) {
			CLUSTER_TICK(2);
		}
	}
	assert_int_equal(px_role(r2), PX_ROLE_FOLLOWER);
	assert_int_equal(px_own_incarnation(r2), 1);
	(void)rounds;
}

/* A single NACK: how many incarnations does one recovery use? */
/* A configuration no longer in force kept every recovery waiting for its
 * members (decommissioned here). Fixed: the fence skips configurations
 * superseded before the slots it covers. */
static void test_superseded_configuration_does_not_block_recovery(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	commit_one(c, 0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x19), 0);
	CLUSTER_DELIVER_ALL();
	for (int k = 0; k < 40; k++) commit_one(c, 0); /* well past the change, and past log wrap */
	CLUSTER_RUN(4 * c->tmpl.heartbeat_interval_ns);
	CLUSTER_CRASH(1);
	CLUSTER_CRASH(2);
	commit_one(c, 0); /* {0,3,4} works without them */
	CLUSTER_CRASH(3);
	CLUSTER_RECOVER(3);
	CLUSTER_RUN(400 * c->tmpl.retransmit_ns);
	ASSERT_FOLLOWER(3);
}

int main(void)
{
#define T(f, s) cmocka_unit_test_setup_teardown(f, s, teardown)
	const struct CMUnitTest tests[] = {
		T(test_incarnation_survives_membership_changes,
		  setup7_three_voting_no_lease),
		T(test_unfinished_life_leaves_no_zombie, setup5_no_lease),
		T(test_lost_answers_cost_no_incarnation, setup3),
		T(test_superseded_configuration_does_not_block_recovery,
		  setup5_three_voting),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
