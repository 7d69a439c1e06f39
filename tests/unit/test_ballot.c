/* Unit tests for ballots (consensus.h: px_ballot_make/round/owner) and for
 * how a replica picks its next ballot (proposer.c, recovery.c).
 *
 * A ballot is (round, replica id), packed so that integer order is ballot
 * order: round first, then id. 0 is "no ballot". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"

static int setup3(void **state)
{
	return cluster_cmocka_setup(state, 3, NULL);
}
static int teardown(void **state)
{
	return cluster_cmocka_teardown(state);
}

static void test_packing_round_trips(void **state)
{
	(void)state;
	assert_int_equal(px_ballot_make(0, 0), 0);
	assert_int_equal(px_ballot_make(1, 0), 0x1000000);
	assert_int_equal(px_ballot_make(5, 3), 0x5000003);
	assert_int_equal(px_ballot_make_inc(5, 2, 3), 0x5000203);
	const uint64_t rounds[] = {
		0, 1, 2, 255, 256, 1ull << 39, (1ull << 40) - 1
	};
	const uint16_t incs[] = { 0, 1, 255, 256, PX_INCARNATION_MAX };
	for (size_t i = 0; i < sizeof(rounds) / sizeof(rounds[0]); i++) {
		for (size_t k = 0; k < sizeof(incs) / sizeof(incs[0]); k++) {
			for (unsigned id = 0; id < PX_REPLICAS_MAX; id++) {
				uint64_t b = px_ballot_make_inc(
					rounds[i], incs[k], (uint8_t)id);
				assert_int_equal(px_ballot_round(b), rounds[i]);
				assert_int_equal(px_ballot_incarnation(b),
						 incs[k]);
				assert_int_equal(px_ballot_owner(b), id);
			}
		}
	}
	/* The owner is the low byte, the incarnation the next two. */
	assert_int_equal(px_ballot_owner(0xabcdef12ull), 0x12);
	assert_int_equal(px_ballot_incarnation(0xabcdef12ull), 0xcdef);
	assert_int_equal(px_ballot_round(0xabcdef12ull), 0xabull);
	/* A round outranks any incarnation; an incarnation any id. */
	assert_true(px_ballot_make_inc(1, PX_INCARNATION_MAX, 6) <
		    px_ballot_make_inc(2, 0, 0));
	assert_true(px_ballot_make_inc(1, 0, 6) < px_ballot_make_inc(1, 1, 0));
}

/* The crash vector's packing: seven 16-bit entries in two words. */
static void test_crash_vector_packing(void **state)
{
	(void)state;
	uint64_t cv[2] = { 0, 0 };
	for (uint8_t i = 0; i < PX_REPLICAS_MAX; i++)
		px_cv_set(cv, i, (uint16_t)(0x1111u * (i + 1)));
	for (uint8_t i = 0; i < PX_REPLICAS_MAX; i++)
		assert_int_equal(px_cv_get(cv, i), (uint16_t)(0x1111u * (i + 1)));
	px_cv_set(cv, 3, PX_INCARNATION_MAX);
	px_cv_set(cv, 4, 0);
	assert_int_equal(px_cv_get(cv, 2), 0x3333);
	assert_int_equal(px_cv_get(cv, 3), PX_INCARNATION_MAX);
	assert_int_equal(px_cv_get(cv, 4), 0);
	assert_int_equal(px_cv_get(cv, 5), 0x6666);
	assert_int_equal(cv[1] >> 48, 0); /* entry 7 does not exist */
}

static void test_order_is_round_then_id(void **state)
{
	(void)state;
	/* A higher round wins whatever the ids. */
	assert_true(px_ballot_make(1, 6) < px_ballot_make(2, 0));
	/* In one round, the higher id wins. */
	assert_true(px_ballot_make(2, 0) < px_ballot_make(2, 1));
	assert_true(px_ballot_make(2, 1) < px_ballot_make(2, 6));
	/* Every real ballot is above "no ballot". */
	assert_true(px_ballot_make(0, 1) > 0);
	assert_true(px_ballot_make(1, 0) > 0);
	/* Integer order equals (round, id) order, exhaustively on a grid. */
	for (uint64_t ra = 0; ra < 6; ra++)
		for (uint8_t ia = 0; ia < PX_REPLICAS_MAX; ia++)
			for (uint64_t rb = 0; rb < 6; rb++)
				for (uint8_t ib = 0; ib < PX_REPLICAS_MAX;
				     ib++) {
					bool lt = ra < rb ||
						  (ra == rb && ia < ib);
					assert_int_equal(
						px_ballot_make(ra, ia) <
							px_ballot_make(rb, ib),
						lt);
				}
}

/* The first election uses round 1; the next leader's ballot is above every
 * promise it has seen. */
static void test_election_ballots_increase(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t b0 = px_leader_ballot(CLUSTER_PX(0));
	assert_int_equal(b0, px_ballot_make(1, 0));
	for (uint8_t i = 0; i < 3; i++)
		assert_int_equal(px_promised_ballot(CLUSTER_PX(i)), b0);

	CLUSTER_ELECT(1);
	ASSERT_FOLLOWER(0);
	uint64_t b1 = px_leader_ballot(CLUSTER_PX(1));
	assert_int_equal(b1, px_ballot_make(2, 1));
	assert_true(b1 > b0);

	CLUSTER_ELECT(2);
	assert_int_equal(px_leader_ballot(CLUSTER_PX(2)), px_ballot_make(3, 2));
	assert_int_equal(px_stats(CLUSTER_PX(2))->elections_started, 1);
}

/* A replica that heard of round 7 (a PREPARE it promised) starts its own
 * election at round 8. */
static void test_next_ballot_is_above_highest_seen(void **state)
{
	struct cluster *c = *state;
	struct px_msg prepare = {
		.type = PX_MSG_PREPARE,
		.from = 2,
		.to = 1,
		.ballot = px_ballot_make(7, 2),
	};
	assert_int_equal(CLUSTER_INJECT(1, &prepare), 0);
	assert_int_equal(px_promised_ballot(CLUSTER_PX(1)),
			 px_ballot_make(7, 2));
	CLUSTER_DISCARD_ALL(); /* the promise to a phantom candidate */
	CLUSTER_ELECT(1);
	assert_int_equal(px_leader_ballot(CLUSTER_PX(1)), px_ballot_make(8, 1));
}

/* A NACK tells a candidate of a higher ballot: it steps down, and its next
 * attempt goes above the ballot the NACK carried. */
static void test_nack_raises_next_ballot(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	struct px_msg nack = {
		.type = PX_MSG_NACK,
		.from = 2,
		.to = 0,
		.ballot = px_ballot_make(41, 2),
	};
	assert_int_equal(CLUSTER_INJECT(0, &nack), 0);
	ASSERT_FOLLOWER(0);
	CLUSTER_ELECT(0);
	assert_int_equal(px_leader_ballot(CLUSTER_PX(0)),
			 px_ballot_make(42, 0));
}

/* A ballot whose round no real cluster reaches is a corrupt field: taking
 * it in would make round + 1 wrap around px_ballot_make, and the replica
 * would then lower its own promise (a safety bug: it could accept what it
 * promised to refuse). It is dropped as malformed instead. */
static void test_absurd_ballot_is_dropped(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t promised = px_promised_ballot(CLUSTER_PX(1));
	const uint64_t absurd[] = {
		UINT64_MAX,
		px_ballot_make((1ull << 40) - 1, 2),
		px_ballot_make((1ull << 39) + 1, 2),
	};
	for (size_t k = 0; k < sizeof(absurd) / sizeof(absurd[0]); k++) {
		struct px_msg nack = {
			.type = PX_MSG_NACK,
			.from = 2,
			.to = 1,
			.ballot = absurd[k],
		};
		struct px_msg prepare = {
			.type = PX_MSG_PREPARE,
			.from = 2,
			.to = 1,
			.ballot = absurd[k],
		};
		assert_int_equal(CLUSTER_INJECT(1, &nack), -BPX_EMALFORMED);
		assert_int_equal(CLUSTER_INJECT(1, &prepare), -BPX_EMALFORMED);
	}
	assert_int_equal(px_promised_ballot(CLUSTER_PX(1)), promised);
	ASSERT_DROPS(1, PX_DROP_MALFORMED, 6);
	/* Replica 1 still elects itself, one round up, with a promise that
	 * only ever went up (the fixture checks that at every step). */
	CLUSTER_ELECT(1);
	assert_int_equal(px_leader_ballot(CLUSTER_PX(1)), px_ballot_make(2, 1));
}

/* The same, seen from the protocol: whatever px_step answers, a NACK with
 * the largest ballot must not make replica 1 lower its promise when it
 * next runs for leader (the fixture checks promises after every step). */
static void test_absurd_nack_cannot_lower_promise(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	struct px_msg nack = {
		.type = PX_MSG_NACK,
		.from = 2,
		.to = 1,
		.ballot = px_ballot_make((1ull << 56) - 1, 2),
	};
	(void)CLUSTER_INJECT(1, &nack);
	CLUSTER_HINT(1);
	CLUSTER_RUN(20 * CLUSTER_MS);
	ASSERT_LEADER(1);
	assert_true(px_leader_ballot(CLUSTER_PX(1)) > px_ballot_make(1, 0));
}

/* An accepted_ballot in a PROMISE is checked the same way. */
static void test_absurd_accepted_ballot_is_dropped(void **state)
{
	struct cluster *c = *state;
	CLUSTER_HINT(0);
	const struct px_msg *p = cluster_peek(c, PX_MSG_PREPARE, 0, 1);
	assert_non_null(p);
	uint8_t value[4] = { 1, 2, 3, 4 };
	struct px_msg promise = {
		.type = PX_MSG_PROMISE,
		.from = 1,
		.to = 0,
		.ballot = p->ballot,
		.slot = 0,
		.slot_end = 1,
		.seq = 1,
		.accepted_ballot = UINT64_MAX,
		.value = value,
		.value_len = sizeof(value),
	};
	assert_int_equal(CLUSTER_INJECT(0, &promise), -BPX_EMALFORMED);
	ASSERT_ROLE(0, PX_ROLE_CANDIDATE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_packing_round_trips),
		cmocka_unit_test(test_crash_vector_packing),
		cmocka_unit_test(test_order_is_round_then_id),
		cmocka_unit_test_setup_teardown(test_election_ballots_increase,
						setup3, teardown),
		cmocka_unit_test_setup_teardown(
			test_next_ballot_is_above_highest_seen, setup3,
			teardown),
		cmocka_unit_test_setup_teardown(test_nack_raises_next_ballot,
						setup3, teardown),
		cmocka_unit_test_setup_teardown(test_absurd_ballot_is_dropped,
						setup3, teardown),
		cmocka_unit_test_setup_teardown(
			test_absurd_nack_cannot_lower_promise, setup3,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_absurd_accepted_ballot_is_dropped, setup3,
			teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
