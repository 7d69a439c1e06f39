/* Unit tests for the acceptor (consensus/acceptor.c): the promise and
 * accept rules, what a PROMISE reports, and how COMMIT and CHOSEN teach a
 * follower what is chosen.
 *
 * Replica 0 of a 3-replica cluster is the acceptor under test. Messages
 * from "replicas 1 and 2" are crafted and injected; what replica 0 sends
 * back waits in the fixture's queue, where the tests look at it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

static const uint8_t VALUE_A[] = { 'A', 'A' };
static const uint8_t VALUE_B[] = { 'B', 'B', 'B' };

static struct px_msg msg(uint8_t type, uint8_t from, uint64_t ballot)
{
	return (struct px_msg){
		.type = type, .from = from, .to = 0, .ballot = ballot
	};
}

static int prepare(struct cluster *c, uint8_t from, uint64_t ballot,
		   uint64_t slot)
{
	struct px_msg m = msg(PX_MSG_PREPARE, from, ballot);
	m.slot = slot;
	return CLUSTER_INJECT(0, &m);
}

static int accept(struct cluster *c, uint8_t from, uint64_t ballot,
		  uint64_t slot, const uint8_t *value, uint32_t len,
		  uint64_t commit_index)
{
	struct px_msg m = msg(PX_MSG_ACCEPT, from, ballot);
	m.slot = slot;
	m.value = value;
	m.value_len = len;
	m.commit_index = commit_index;
	return CLUSTER_INJECT(0, &m);
}

static const struct px_slot *slot_of(struct cluster *c, uint64_t slot)
{
	return px_log_get(CLUSTER_PX(0), slot);
}

/* ---- Phase 1b ---- */

static void test_prepare_below_promise_gets_nack_with_promise(void **state)
{
	struct cluster *c = *state;
	uint64_t high = px_ballot_make(5, 2), low = px_ballot_make(3, 1);
	assert_int_equal(prepare(c, 2, high, 0), 0);
	ASSERT_QUEUED(PX_MSG_PROMISE, 0, 2, 1);
	assert_int_equal(px_promised_ballot(CLUSTER_PX(0)), high);

	/* Phase 1b: nothing below the promise is promised. */
	assert_int_equal(prepare(c, 1, low, 0), 0);
	ASSERT_QUEUED(PX_MSG_PROMISE, 0, 1, 0);
	const struct px_msg *nack = cluster_peek(c, PX_MSG_NACK, 0, 1);
	assert_non_null(nack);
	assert_int_equal(nack->ballot, high); /* carries the promise */
	assert_int_equal(px_promised_ballot(CLUSTER_PX(0)), high);
	ASSERT_DROPS(0, PX_DROP_STALE_BALLOT, 1);
}

/* A retransmitted PREPARE (the same ballot) is promised again. */
static void test_equal_ballot_is_promised_again(void **state)
{
	struct cluster *c = *state;
	uint64_t b = px_ballot_make(5, 2);
	assert_int_equal(prepare(c, 2, b, 0), 0);
	assert_int_equal(prepare(c, 2, b, 0), 0);
	ASSERT_QUEUED(PX_MSG_PROMISE, 0, 2, 2);
	ASSERT_QUEUED(PX_MSG_NACK, 0, CLUSTER_ANY, 0);
	assert_int_equal(px_promised_ballot(CLUSTER_PX(0)), b);
}

/* Only a ballot's owner may run phase 1 with it. */
static void test_prepare_ballot_owner_must_be_sender(void **state)
{
	struct cluster *c = *state;
	assert_int_equal(prepare(c, 1, px_ballot_make(9, 2), 0), 0);
	ASSERT_QUEUED(PX_MSG_PROMISE, 0, 1, 0);
	ASSERT_QUEUED(PX_MSG_NACK, 0, 1, 1);
	assert_int_equal(px_promised_ballot(CLUSTER_PX(0)), 0);
}

/* A higher PREPARE deposes a leader: it can no longer count on its own
 * acceptor. The clients it had queued are told to go elsewhere. */
static void test_higher_prepare_deposes_leader(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t s = CLUSTER_OPEN_SESSION(0);
	uint8_t cmd[64];
	uint32_t len = cluster_encode_put(cmd, sizeof(cmd), "k", "v");
	assert_int_equal(cluster_request(c, 0, s, 1, cmd, len), 0);
	assert_int_equal(px_queue_depth(CLUSTER_PX(0)), 1);

	uint64_t b = px_ballot_make(2, 1);
	assert_int_equal(prepare(c, 1, b, 0), 0);
	ASSERT_FOLLOWER(0);
	assert_int_equal(px_promised_ballot(CLUSTER_PX(0)), b);
	assert_int_equal(px_leader_ballot(CLUSTER_PX(0)), 0);
	ASSERT_QUEUED(PX_MSG_PROMISE, 0, 1, 1);
	assert_int_equal(px_queue_depth(CLUSTER_PX(0)), 0);
	ASSERT_REPLY(s, 1, PX_REPLY_REDIRECT);
	/* It no longer knows a leader; above all it does not name itself. */
	assert_int_not_equal(CLUSTER_REPLY(s, 1)->leader_hint, 0);
	assert_int_not_equal(px_known_leader(CLUSTER_PX(0)), 0);
}

/* What a PROMISE reports: every accepted (ballot, value) from the slot the
 * PREPARE names on, one message per slot, each saying how many there are
 * and where the acceptor's accepted slots end. */
static void test_promise_reports_accepted_values(void **state)
{
	struct cluster *c = *state;
	uint64_t b1 = px_ballot_make(1, 1), b2 = px_ballot_make(2, 2);
	assert_int_equal(accept(c, 1, b1, 0, VALUE_A, sizeof(VALUE_A), 0), 0);
	assert_int_equal(accept(c, 2, b2, 2, VALUE_B, sizeof(VALUE_B), 0), 0);
	CLUSTER_DISCARD_ALL();

	uint64_t b3 = px_ballot_make(3, 1);
	assert_int_equal(prepare(c, 1, b3, 0), 0);
	ASSERT_QUEUED(PX_MSG_PROMISE, 0, 1, 2);
	const struct px_msg *p = cluster_peek(c, PX_MSG_PROMISE, 0, 1);
	assert_int_equal(p->ballot, b3);
	assert_int_equal(p->slot, 0);
	assert_int_equal(p->slot_end, 3);
	assert_int_equal(p->seq, 2); /* entries in this promise */
	assert_int_equal(p->accepted_ballot, b1);
	assert_int_equal(p->value_len, sizeof(VALUE_A));
	assert_memory_equal(p->value, VALUE_A, sizeof(VALUE_A));
	assert_int_equal(p->log_start, 0);
	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_PROMISE, 0, 1));
	p = cluster_peek(c, PX_MSG_PROMISE, 0, 1);
	assert_int_equal(p->slot, 2);
	assert_int_equal(p->accepted_ballot, b2);
	assert_memory_equal(p->value, VALUE_B, sizeof(VALUE_B));
	CLUSTER_DISCARD_ALL();

	/* From slot 1 on, only slot 2 is left to report. */
	uint64_t b4 = px_ballot_make(4, 2);
	assert_int_equal(prepare(c, 2, b4, 1), 0);
	ASSERT_QUEUED(PX_MSG_PROMISE, 0, 2, 1);
	p = cluster_peek(c, PX_MSG_PROMISE, 0, 2);
	assert_int_equal(p->slot, 2);
	assert_int_equal(p->seq, 1);
	assert_int_equal(p->slot_end, 3);
}

/* Nothing accepted: one message with slot == slot_end and no entries. */
static void test_empty_promise(void **state)
{
	struct cluster *c = *state;
	assert_int_equal(prepare(c, 1, px_ballot_make(1, 1), 5), 0);
	ASSERT_QUEUED(PX_MSG_PROMISE, 0, 1, 1);
	const struct px_msg *p = cluster_peek(c, PX_MSG_PROMISE, 0, 1);
	assert_int_equal(p->slot, 5);
	assert_int_equal(p->slot_end, 5);
	assert_int_equal(p->seq, 0);
	assert_int_equal(p->accepted_ballot, 0);
	assert_int_equal(p->value_len, 0);
}

/* ---- Phase 2b ---- */

static void test_accept_below_promise_is_nacked(void **state)
{
	struct cluster *c = *state;
	uint64_t high = px_ballot_make(5, 2);
	assert_int_equal(prepare(c, 2, high, 0), 0);
	CLUSTER_DISCARD_ALL();
	assert_int_equal(accept(c, 1, px_ballot_make(4, 1), 0, VALUE_A,
				sizeof(VALUE_A), 0),
			 0);
	ASSERT_QUEUED(PX_MSG_ACCEPTED, 0, 1, 0);
	const struct px_msg *nack = cluster_peek(c, PX_MSG_NACK, 0, 1);
	assert_non_null(nack);
	assert_int_equal(nack->ballot, high);
	assert_null(slot_of(c, 0));
	ASSERT_DROPS(0, PX_DROP_STALE_BALLOT, 1);
}

/* Accepting a ballot is promising it: nothing lower is accepted after. */
static void test_accept_raises_promise(void **state)
{
	struct cluster *c = *state;
	assert_int_equal(prepare(c, 2, px_ballot_make(5, 2), 0), 0);
	uint64_t b = px_ballot_make(6, 1);
	assert_int_equal(accept(c, 1, b, 0, VALUE_A, sizeof(VALUE_A), 0), 0);
	assert_int_equal(px_promised_ballot(CLUSTER_PX(0)), b);
	assert_int_equal(px_known_leader(CLUSTER_PX(0)), 1);
	const struct px_msg *a = cluster_peek(c, PX_MSG_ACCEPTED, 0, 1);
	assert_non_null(a);
	assert_int_equal(a->ballot, b);
	assert_int_equal(a->slot, 0);
	assert_int_equal(a->commit_index, 0);
	const struct px_slot *s = slot_of(c, 0);
	assert_non_null(s);
	assert_int_equal(s->accepted_ballot, b);
	assert_int_equal(s->value_len, sizeof(VALUE_A));
	assert_false(s->chosen);

	/* Ballot (5, 2) was promised before; now it is below the promise. */
	assert_int_equal(accept(c, 2, px_ballot_make(5, 2), 1, VALUE_B,
				sizeof(VALUE_B), 0),
			 0);
	ASSERT_QUEUED(PX_MSG_NACK, 0, 2, 1);
	assert_null(slot_of(c, 1));
	/* A PREPARE of (6, 1)'s equal from another owner is refused too. */
	assert_int_equal(prepare(c, 2, px_ballot_make(6, 0), 0), 0);
	ASSERT_QUEUED(PX_MSG_NACK, 0, 2, 2);
}

static void test_accept_ballot_owner_must_be_sender(void **state)
{
	struct cluster *c = *state;
	assert_int_equal(accept(c, 1, px_ballot_make(6, 2), 0, VALUE_A,
				sizeof(VALUE_A), 0),
			 0);
	ASSERT_QUEUED(PX_MSG_NACK, 0, 1, 1);
	ASSERT_QUEUED(PX_MSG_ACCEPTED, 0, 1, 0);
	assert_null(slot_of(c, 0));
	assert_int_equal(px_promised_ballot(CLUSTER_PX(0)), 0);
}

/* A later ballot may overwrite an accepted, unchosen value. */
static void test_higher_accept_overwrites_unchosen_value(void **state)
{
	struct cluster *c = *state;
	assert_int_equal(accept(c, 1, px_ballot_make(1, 1), 0, VALUE_A,
				sizeof(VALUE_A), 0),
			 0);
	assert_int_equal(accept(c, 2, px_ballot_make(2, 2), 0, VALUE_B,
				sizeof(VALUE_B), 0),
			 0);
	const struct px_slot *s = slot_of(c, 0);
	assert_int_equal(s->accepted_ballot, px_ballot_make(2, 2));
	assert_int_equal(s->value_len, sizeof(VALUE_B));
	assert_memory_equal(s->value, VALUE_B, sizeof(VALUE_B));
}

/* The acceptor's ring holds log_slots slots past what it applied. */
static void test_accept_beyond_the_log_is_dropped(void **state)
{
	struct cluster *c = *state;
	uint32_t log_slots = c->tmpl.log_slots;
	uint64_t b = px_ballot_make(1, 1);
	assert_int_equal(
		accept(c, 1, b, log_slots - 1, VALUE_A, sizeof(VALUE_A), 0), 0);
	ASSERT_QUEUED(PX_MSG_ACCEPTED, 0, 1, 1);
	assert_int_equal(
		accept(c, 1, b, log_slots, VALUE_A, sizeof(VALUE_A), 0), 0);
	ASSERT_QUEUED(PX_MSG_ACCEPTED, 0, 1, 1);
	ASSERT_DROPS(0, PX_DROP_OUT_OF_WINDOW, 1);
}

/* ---- Learning what is chosen ---- */

/* COMMIT(b, n) chooses the slots below n accepted at ballot b (they hold
 * b's proposal); a slot accepted at another ballot waits for CHOSEN. */
static void test_commit_chooses_slots_of_its_ballot(void **state)
{
	struct cluster *c = *state;
	uint64_t b1 = px_ballot_make(1, 1), b2 = px_ballot_make(2, 2);
	assert_int_equal(accept(c, 1, b1, 0, VALUE_A, sizeof(VALUE_A), 0), 0);
	assert_int_equal(accept(c, 2, b2, 1, VALUE_B, sizeof(VALUE_B), 0), 0);
	CLUSTER_DISCARD_ALL();

	struct px_msg commit = msg(PX_MSG_COMMIT, 2, b2);
	commit.commit_index = 2;
	assert_int_equal(CLUSTER_INJECT(0, &commit), 0);
	assert_false(slot_of(c, 0)->chosen);
	assert_true(slot_of(c, 1)->chosen);
	ASSERT_COMMIT(0, 0); /* slot 0 is not known chosen yet */
	const struct px_msg *st = cluster_peek(c, PX_MSG_STATUS, 0, 2);
	assert_non_null(st);
	assert_int_equal(st->commit_index, 0);
	assert_int_equal(st->ballot, b2);

	/* The leader's catch-up fills slot 0 with the chosen value. */
	struct px_msg chosen = msg(PX_MSG_CHOSEN, 2, b2);
	chosen.slot = 0;
	chosen.value = VALUE_B;
	chosen.value_len = sizeof(VALUE_B);
	chosen.commit_index = 2;
	assert_int_equal(CLUSTER_INJECT(0, &chosen), 0);
	ASSERT_COMMIT(0, 2);
	ASSERT_APPLIED(0, 2);
	const uint8_t *v;
	uint32_t len;
	assert_int_equal(px_chosen_value(CLUSTER_PX(0), 0, &v, &len), 0);
	assert_int_equal(len, sizeof(VALUE_B));
	assert_memory_equal(v, VALUE_B, len);
}

/* A chosen slot keeps its value: the same value may be re-accepted at a
 * higher ballot, a different one is refused. */
static void test_chosen_slot_keeps_its_value(void **state)
{
	struct cluster *c = *state;
	struct px_msg chosen = msg(PX_MSG_CHOSEN, 1, px_ballot_make(1, 1));
	chosen.slot = 0;
	chosen.value = VALUE_A;
	chosen.value_len = sizeof(VALUE_A);
	chosen.commit_index = 1;
	assert_int_equal(CLUSTER_INJECT(0, &chosen), 0);
	ASSERT_COMMIT(0, 1);
	uint64_t b = px_ballot_make(3, 2);
	assert_int_equal(accept(c, 2, b, 0, VALUE_B, sizeof(VALUE_B), 0), 0);
	ASSERT_QUEUED(PX_MSG_ACCEPTED, 0, 2, 0);
	ASSERT_DROPS(0, PX_DROP_OUT_OF_WINDOW, 1);
	assert_memory_equal(slot_of(c, 0)->value, VALUE_A, sizeof(VALUE_A));
	assert_int_equal(accept(c, 2, b, 0, VALUE_A, sizeof(VALUE_A), 0), 0);
	ASSERT_QUEUED(PX_MSG_ACCEPTED, 0, 2, 1);
	assert_int_equal(slot_of(c, 0)->accepted_ballot, b);
}

/* COMMIT follows the promise rules too. */
static void test_commit_below_promise_is_nacked(void **state)
{
	struct cluster *c = *state;
	assert_int_equal(prepare(c, 2, px_ballot_make(5, 2), 0), 0);
	struct px_msg commit = msg(PX_MSG_COMMIT, 1, px_ballot_make(4, 1));
	commit.commit_index = 3;
	assert_int_equal(CLUSTER_INJECT(0, &commit), 0);
	ASSERT_QUEUED(PX_MSG_NACK, 0, 1, 1);
	ASSERT_QUEUED(PX_MSG_STATUS, 0, 1, 0);
	assert_int_equal(px_known_leader(CLUSTER_PX(0)), PX_REPLICA_NONE);
}

/* A replica that restarted without its state does not vote (DESIGN.md):
 * PREPARE, ACCEPT, COMMIT and CHOSEN are dropped, and nothing is sent. */
static void test_recovering_replica_does_not_vote(void **state)
{
	struct cluster *c = *state;
	cluster_start(c, 0, true);
	ASSERT_ROLE(0, PX_ROLE_RECOVERING);
	uint64_t b = px_ballot_make(4, 1);
	assert_int_equal(prepare(c, 1, b, 0), 0);
	assert_int_equal(accept(c, 1, b, 0, VALUE_A, sizeof(VALUE_A), 0), 0);
	struct px_msg commit = msg(PX_MSG_COMMIT, 1, b);
	commit.commit_index = 1;
	assert_int_equal(CLUSTER_INJECT(0, &commit), 0);
	struct px_msg chosen = msg(PX_MSG_CHOSEN, 1, b);
	chosen.value = VALUE_A;
	chosen.value_len = sizeof(VALUE_A);
	chosen.commit_index = 1;
	assert_int_equal(CLUSTER_INJECT(0, &chosen), 0);
	ASSERT_QUEUED(CLUSTER_ANY, 0, CLUSTER_ANY, 0);
	ASSERT_DROPS(0, PX_DROP_WRONG_ROLE, 4);
	assert_int_equal(px_promised_ballot(CLUSTER_PX(0)), 0);
	assert_null(slot_of(c, 0));
	ASSERT_COMMIT(0, 0);
	ASSERT_ROLE(0, PX_ROLE_RECOVERING);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup3, teardown)
	const struct CMUnitTest tests[] = {
		T(test_prepare_below_promise_gets_nack_with_promise),
		T(test_equal_ballot_is_promised_again),
		T(test_prepare_ballot_owner_must_be_sender),
		T(test_higher_prepare_deposes_leader),
		T(test_promise_reports_accepted_values),
		T(test_empty_promise),
		T(test_accept_below_promise_is_nacked),
		T(test_accept_raises_promise),
		T(test_accept_ballot_owner_must_be_sender),
		T(test_higher_accept_overwrites_unchosen_value),
		T(test_accept_beyond_the_log_is_dropped),
		T(test_commit_chooses_slots_of_its_ballot),
		T(test_chosen_slot_keeps_its_value),
		T(test_commit_below_promise_is_nacked),
		T(test_recovering_replica_does_not_vote),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
