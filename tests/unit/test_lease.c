/* Unit tests for leader leases (consensus/proposer.c lease_expiry and
 * px_may_start_election, consensus/acceptor.c): the two stale-read holes of
 * issue 8, each as the scenario that reproduced it. A lease read is stale
 * when a write was acknowledged elsewhere while the lease holder answers
 * from a state without it; every test checks exactly that. */
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

#define READER 8u

static int setup3(void **state)
{
	return cluster_cmocka_setup(state, 3, NULL);
}

static int setup5(void **state)
{
	return cluster_cmocka_setup(state, 5, NULL);
}

static int teardown(void **state)
{
	return cluster_cmocka_teardown(state);
}

/* The value a lease read at replica i answers for key, or NULL when it is
 * not answered at once (no lease: it went into the log). */
static const char *lease_read(struct cluster *c, uint8_t i, uint64_t seq,
			      const char *key, char *buf, size_t cap)
{
	assert_int_equal(cluster_read(c, i, READER, seq, key), 0);
	const struct cluster_reply *rep = CLUSTER_REPLY(READER, seq);
	if (rep == NULL || rep->status != PX_REPLY_OK)
		return NULL;
	uint8_t status;
	const uint8_t *v;
	uint16_t vlen;
	assert_int_equal(bpx_kv_decode_reply(rep->value, rep->value_len,
					     &status, &v, &vlen),
			 0);
	assert_true(vlen < cap);
	memcpy(buf, v, vlen);
	buf[vlen] = '\0';
	return buf;
}

/* Hole 2: a replica that granted a lease is elected while that lease runs.
 * 1 leads and commits k=v1; 1<->2 is cut long enough for 2's promise to
 * lapse while 0 keeps acknowledging 1's heartbeats (1's lease stands on
 * 0's promise alone); 0's messages to 1 are lost. 0 alone is hinted to
 * lead: were it to run phase 1 now, 2 would promise, 0 would commit k=v2
 * and acknowledge it, and 1 would still answer GET k with v1. */
static void test_granting_replica_waits_out_its_lease(void **state)
{
	struct cluster *c = *state;
	char buf[64];
	CLUSTER_ELECT(1);
	uint64_t a = CLUSTER_OPEN_SESSION(1), b = CLUSTER_OPEN_SESSION(1);
	CLUSTER_SUBMIT_PUT(1, a, 1, "k", "v1");
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(a, 1, PX_REPLY_OK);
	CLUSTER_CUT_BOTH(1, 2);
	CLUSTER_RUN(3 * c->tmpl.lease_ns);
	assert_true(px_lease_valid(CLUSTER_PX(1), c->now_ns));
	ASSERT_LEADER(1);

	CLUSTER_CUT(0, 1);
	CLUSTER_HINT_ONE(0, 0);
	CLUSTER_HINT_ONE(2, 0);
	CLUSTER_DELIVER_ALL();
	CLUSTER_SUBMIT_PUT(0, b, 1, "k", "v2");
	CLUSTER_DELIVER_ALL();
	const struct cluster_reply *w = CLUSTER_REPLY(b, 1);
	if (w != NULL && w->status == PX_REPLY_OK) {
		/* v2 is acknowledged: no read may answer v1 any more. */
		const char *v = lease_read(c, 1, PX_SEQ_READ_BASE + 1, "k", buf,
					   sizeof(buf));
		assert_null(v);
	}
	/* 0 does not lead before its promise to 1 has lapsed... */
	ASSERT_FOLLOWER(0);
	ASSERT_REPLY(b, 1, PX_REPLY_REDIRECT);

	/* ...and then 1's lease, which 0's acknowledgements granted, is over
	 * (the follower's promise outlasts the lease by the drift margin). */
	CLUSTER_ADVANCE(c->tmpl.lease_ns);
	CLUSTER_TICK(0);
	CLUSTER_DELIVER_ALL();
	ASSERT_LEADER(0);
	CLUSTER_SUBMIT_PUT(0, b, 1, "k", "v2"); /* the same request again */
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(b, 1, PX_REPLY_OK);
	assert_false(px_lease_valid(CLUSTER_PX(1), c->now_ns));
	assert_null(lease_read(c, 1, PX_SEQ_READ_BASE + 2, "k", buf,
			       sizeof(buf)));
}

/* The same promise binds a candidate's acceptor: a candidate that granted a
 * lease refuses another candidate's PREPARE while it runs. */
static void test_candidate_refuses_prepare_under_lease(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	CLUSTER_RUN(2 * c->tmpl.heartbeat_interval_ns);
	struct px_replica *r1 = CLUSTER_PX(1);
	assert_int_equal(r1->lease_holder, 0);
	/* 1 thinks it is a candidate (a stale hint), 2 asks it for a promise. */
	r1->role = PX_ROLE_CANDIDATE;
	r1->ballot = px_ballot_make(px_ballot_round(r1->promised) + 1, 1);
	r1->promised = r1->ballot;
	r1->p1.complete_mask = 1u << 1; /* its own promise */
	struct px_msg p = {
		.type = PX_MSG_PREPARE,
		.from = 2,
		.to = 1,
		.ballot = px_ballot_make(px_ballot_round(r1->promised) + 1, 2),
	};
	uint64_t before = r1->stats.drops[PX_DROP_LEASE_HELD];
	CLUSTER_INJECT(1, &p);
	assert_int_equal(r1->stats.drops[PX_DROP_LEASE_HELD], before + 1);
	assert_int_equal(CLUSTER_COUNT(PX_MSG_PROMISE, 1, 2), 0);
	r1->role = PX_ROLE_FOLLOWER; /* leave the fixture's checks sane */
	r1->ballot = 0;
}

/* Hole 3: a lease after a membership change. Five replicas; leader 1
 * changes the members to {0,1,2} from slot E. Slot E-1 (the last of the
 * old configuration) is accepted by {1,2,3,4}, slot E (k=new) by {1,2} and
 * acknowledged; 0 hears of neither, 3 and 4 not of slot E. 0's phase 1
 * from before E completes with {0,3,4}, a majority of the old
 * configuration, and re-proposes what 3 and 4 report: it reaches applied E
 * without slot E's value. 2 acknowledges its heartbeats, so counted
 * against {0,1,2} its lease would be valid and GET k would answer "old". */
static void test_lease_needs_phase1_of_configuration_in_force(void **state)
{
	struct cluster *c = *state;
	char buf[64];
	struct px_replica *r0 = CLUSTER_PX(0), *r1 = CLUSTER_PX(1);
	CLUSTER_ELECT(1);
	uint64_t a = CLUSTER_OPEN_SESSION(1);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(1, 0x07), 0);
	CLUSTER_DELIVER_ALL();
	uint64_t e = r1->history[r1->history_count - 1].effective_slot;
	uint64_t seq = 1;
	while (px_commit_index(r1) < e - 1) {
		CLUSTER_SUBMIT_PUT(1, a, seq, "k", "old");
		CLUSTER_DELIVER_ALL();
		ASSERT_REPLY(a, seq, PX_REPLY_OK);
		seq++;
	}
	CLUSTER_CUT(1, 0);
	CLUSTER_SUBMIT_PUT(1, a, seq, "k", "last-old");
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(a, seq, PX_REPLY_OK);
	CLUSTER_CUT(1, 3);
	CLUSTER_CUT(1, 4);
	seq++;
	CLUSTER_SUBMIT_PUT(1, a, seq, "k", "new");
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(a, seq, PX_REPLY_OK);
	assert_int_equal(px_commit_index(r1), e + 1);
	assert_true(px_applied_index(r0) < e);

	/* 0 leads with promises from 3 and 4; its PREPAREs to 2 are lost,
	 * everything else between 0 and 2 gets through. */
	CLUSTER_CUT(0, 1);
	CLUSTER_ADVANCE(2 * c->tmpl.lease_ns);
	CLUSTER_HINT_ONE(0, 0);
	CLUSTER_HINT_ONE(3, 0);
	CLUSTER_HINT_ONE(4, 0);
	for (int k = 0; k < 16; k++) {
		CLUSTER_ADVANCE(c->tmpl.heartbeat_interval_ns);
		CLUSTER_TICK(0);
		CLUSTER_CUT(0, 2);
		while (CLUSTER_DELIVER_MATCH(PX_MSG_PREPARE, 0, 2))
			;
		CLUSTER_HEAL(0, 2);
		CLUSTER_DELIVER_ALL();
	}
	ASSERT_LEADER(0);
	assert_true(px_applied_index(r0) >= e);
	assert_int_equal(r0->p1.complete_mask & 0x06, 0);
	const char *v = lease_read(c, 0, PX_SEQ_READ_BASE + 1, "k", buf,
				   sizeof(buf));
	if (v != NULL)
		assert_string_equal(v, "new"); /* "last-old" is a stale read */
	assert_false(px_lease_valid(r0, c->now_ns));
}

/* A heartbeat acknowledgement is a promise: after acknowledging ballot b,
 * an acceptor refuses ACCEPTs of lower ballots. */
static void test_heartbeat_ack_raises_the_promise(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	struct px_replica *r2 = CLUSTER_PX(2);
	uint64_t low = r2->promised;
	struct px_msg hb = {
		.type = PX_MSG_COMMIT,
		.from = 1,
		.to = 2,
		.ballot = px_ballot_make(px_ballot_round(low) + 1, 1),
		.commit_index = px_commit_index(r2),
		.seq = c->now_ns,
	};
	CLUSTER_INJECT(2, &hb);
	assert_int_equal(r2->promised, hb.ballot);
	assert_int_equal(CLUSTER_COUNT(PX_MSG_STATUS, 2, 1), 1);
}

/* A one-way link must not block elections for ever: 0 leads; then 1->0
 * and 0<->2 are cut (0->1 still works), and the control plane, which
 * cannot reach 0, hints 1 to 1 and 2. 0's heartbeats used to renew 1's
 * lease promise to 0 without end, so 1 never ran. A replica renews a
 * lease only for the leader its control plane names. */
static void test_one_way_link_does_not_block_elections(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t s = CLUSTER_OPEN_SESSION(0);
	CLUSTER_RUN(4 * c->tmpl.heartbeat_interval_ns);
	assert_int_equal(CLUSTER_PX(1)->lease_holder, 0);
	CLUSTER_CUT(1, 0);
	CLUSTER_CUT(0, 2);
	CLUSTER_CUT(2, 0);
	CLUSTER_HINT_ONE(1, 1);
	CLUSTER_HINT_ONE(2, 1);
	CLUSTER_RUN(8 * c->tmpl.lease_ns);
	CLUSTER_SUBMIT_PUT(1, s, 1, "k", "v");
	CLUSTER_RUN(20 * c->tmpl.lease_ns);
	ASSERT_LEADER(1);
	ASSERT_REPLY(s, 1, PX_REPLY_OK);
}

int main(void)
{
#define T(f, s) cmocka_unit_test_setup_teardown(f, s, teardown)
	const struct CMUnitTest tests[] = {
		T(test_granting_replica_waits_out_its_lease, setup3),
		T(test_candidate_refuses_prepare_under_lease, setup3),
		T(test_lease_needs_phase1_of_configuration_in_force, setup5),
		T(test_heartbeat_ack_raises_the_promise, setup3),
		T(test_one_way_link_does_not_block_elections, setup3),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
