/* Unit tests for the proposer (consensus/proposer.c): phase 1 and the
 * merge of promises, re-proposal of every open slot by a new leader, the
 * pipeline window and request queue, retransmission, catch-up, and
 * stepping down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"
#include "internal.h"

static int setup1(void **state)
{
	return cluster_cmocka_setup(state, 1, NULL);
}
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

/* One request per slot, so slots are easy to count. */
static int setup3_unbatched(void **state)
{
	struct px_config cfg;
	cluster_config_default(&cfg, 3);
	cfg.batch_requests_max = 1;
	return cluster_cmocka_setup(state, 3, &cfg);
}

/* A window of one slot and a queue of four requests. */
static int setup3_tiny_queue(void **state)
{
	struct px_config cfg;
	cluster_config_default(&cfg, 3);
	cfg.window_slots = 1;
	cfg.batch_requests_max = 1;
	cfg.request_queue_max = 4;
	return cluster_cmocka_setup(state, 3, &cfg);
}

/* The queued ACCEPT from `from` to `to` for `slot`, or NULL. */
static const struct px_msg *queued_accept(const struct cluster *c, uint8_t from,
					  uint8_t to, uint64_t slot)
{
	for (size_t k = c->head; k < c->len; k++) {
		const struct px_msg *m = &c->queue[k].msg;
		if (m->type == PX_MSG_ACCEPT && m->from == from &&
		    m->to == to && m->slot == slot)
			return m;
	}
	return NULL;
}

static uint64_t in_flight(const struct cluster *c, uint8_t i)
{
	const struct px_replica *r = cluster_px(c, i);
	return r->next_slot - r->commit_index;
}

/* ---- Phase 1 ---- */

/* Alone, a replica is its own majority: it leads at once and commits a
 * request as soon as it is flushed. */
static void test_single_replica_commits_alone(void **state)
{
	struct cluster *c = *state;
	CLUSTER_HINT(0);
	ASSERT_LEADER(0);
	uint64_t s7 = CLUSTER_OPEN_SESSION(0);
	ASSERT_COMMIT(0, 1);
	CLUSTER_SUBMIT_PUT(0, s7, 1, "k", "v");
	ASSERT_COMMIT(0, 2);
	ASSERT_APPLIED(0, 2);
	ASSERT_REPLY(s7, 1, PX_REPLY_OK);
	assert_int_equal(c->len - c->head, 0); /* nobody to talk to */
}

/* Self plus one promise is a majority of three. */
static void test_election_needs_a_majority(void **state)
{
	struct cluster *c = *state;
	CLUSTER_HINT(0);
	ASSERT_ROLE(0, PX_ROLE_CANDIDATE);
	ASSERT_QUEUED(PX_MSG_PREPARE, 0, 1, 1);
	ASSERT_QUEUED(PX_MSG_PREPARE, 0, 2, 1);
	const struct px_msg *p = cluster_peek(c, PX_MSG_PREPARE, 0, 1);
	assert_int_equal(p->ballot, px_ballot_make(1, 0));
	assert_int_equal(p->slot, 0);
	assert_int_equal(p->flags, 0);

	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_PREPARE, 0, 1));
	ASSERT_ROLE(0, PX_ROLE_CANDIDATE);
	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_PROMISE, 1, 0));
	ASSERT_LEADER(0);
	assert_int_equal(px_known_leader(CLUSTER_PX(0)), 0);
	assert_int_equal(px_stats(CLUSTER_PX(0))->leader_changes, 1);
	/* The late promise changes nothing. */
	CLUSTER_DELIVER_ALL();
	ASSERT_LEADER(0);
	ASSERT_FOLLOWER(1);
	ASSERT_FOLLOWER(2);
}

/* A candidate retransmits PREPARE to whoever has not answered. */
static void test_candidate_retransmits_prepare(void **state)
{
	struct cluster *c = *state;
	CLUSTER_HINT(0);
	CLUSTER_DISCARD_ALL(); /* both PREPAREs lost */
	CLUSTER_ADVANCE(c->tmpl.retransmit_ns);
	CLUSTER_TICK(0);
	ASSERT_QUEUED(PX_MSG_PREPARE, 0, 1, 1);
	ASSERT_QUEUED(PX_MSG_PREPARE, 0, 2, 1);
	CLUSTER_DELIVER_ALL();
	ASSERT_LEADER(0);
}

/* Phase 1 merge: for each slot the new leader re-proposes the value of the
 * highest ballot any promise reported (not the most frequent, not its own),
 * and fills a slot nobody reported with a no-op.
 *
 * Five replicas; leader-to-be 0 hears only from 1 and 2 (3 and 4 are cut
 * off). Accepted before the election:
 *   slot 0: 1 has A at (1,3); 2 has B at (2,4)         -> B
 *   slot 1: nobody                                     -> no-op
 *   slot 2: 1 has C1 at (1,3); 3 has C3 at (3,4), unheard -> C1
 *   slot 3: 0 itself has E at (1,3); 2 has D at (2,4)  -> D */
static void inject_accept(struct cluster *c, uint8_t to, uint8_t from,
			  uint64_t round, uint64_t slot, const char *value)
{
	struct px_msg m = {
		.type = PX_MSG_ACCEPT,
		.from = from,
		.to = to,
		.ballot = px_ballot_make(round, from),
		.slot = slot,
		.value = (const uint8_t *)value,
		.value_len = (uint32_t)strlen(value),
	};
	assert_int_equal(CLUSTER_INJECT(to, &m), 0);
}

static void assert_accept_value(const struct cluster *c, uint64_t slot,
				const char *value)
{
	const struct px_msg *m = queued_accept(c, 0, 1, slot);
	assert_non_null(m);
	assert_int_equal(m->ballot, px_leader_ballot(cluster_px(c, 0)));
	assert_int_equal(m->value_len, strlen(value));
	if (m->value_len > 0)
		assert_memory_equal(m->value, value, m->value_len);
}

static void test_phase1_merge_keeps_highest_ballot(void **state)
{
	struct cluster *c = *state;
	inject_accept(c, 1, 3, 1, 0, "A");
	inject_accept(c, 1, 3, 1, 2, "C1");
	inject_accept(c, 2, 4, 2, 0, "B");
	inject_accept(c, 2, 4, 2, 3, "D");
	inject_accept(c, 3, 4, 3, 2, "C3");
	inject_accept(c, 0, 3, 1, 3, "E");
	CLUSTER_DISCARD_ALL(); /* ACCEPTEDs to the phantom leaders */
	for (uint8_t j = 3; j < 5; j++) {
		CLUSTER_CUT(0, j);
		CLUSTER_CUT(j, 0);
	}

	/* Round 2 loses to replica 2's promise of (2,4); round 3 wins. */
	CLUSTER_HINT(0);
	for (int k = 0; px_role(CLUSTER_PX(0)) != PX_ROLE_LEADER; k++) {
		assert_true(k < 1000);
		if (!CLUSTER_DELIVER()) {
			CLUSTER_ADVANCE(c->tmpl.retransmit_ns);
			CLUSTER_TICK(0);
		}
	}
	assert_int_equal(px_leader_ballot(CLUSTER_PX(0)), px_ballot_make(3, 0));
	assert_accept_value(c, 0, "B");
	assert_accept_value(c, 1, "");
	assert_accept_value(c, 2, "C1");
	assert_accept_value(c, 3, "D");
	assert_null(queued_accept(c, 0, 1, 4));
	assert_int_equal(px_stats(CLUSTER_PX(0))->noops_proposed, 1);

	CLUSTER_DELIVER_ALL();
	ASSERT_COMMIT(0, 4);
	const uint8_t *v;
	uint32_t len;
	assert_int_equal(px_chosen_value(CLUSTER_PX(0), 1, &v, &len), 0);
	assert_int_equal(len, 0);
	/* New requests go after the recovered slots: an OPEN, a write. */
	uint64_t s9 = CLUSTER_OPEN_SESSION(0);
	ASSERT_COMMIT(0, 5);
	CLUSTER_SUBMIT_PUT(0, s9, 1, "k", "v");
	assert_non_null(queued_accept(c, 0, 1, 5));
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(s9, 1, PX_REPLY_OK);
	ASSERT_COMMIT(0, 6);
}

/* A new leader covers every slot from its first unchosen one: here slots
 * 2..4 were accepted by all but only the old leader learned they were
 * chosen; the new leader learned slot 3 by catch-up. It re-proposes 2 and
 * 4 with their values, skips 3, and puts new requests at 5. (Slot 0 is the
 * client's OPEN.) */
static void test_new_leader_covers_every_open_slot(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t s1 = CLUSTER_OPEN_SESSION(0);
	CLUSTER_SUBMIT_PUT(0, s1, 1, "a", "1");
	CLUSTER_DELIVER_ALL();
	uint8_t cmd[64];
	for (uint64_t k = 0; k < 3; k++) {
		uint32_t len = cluster_encode_put(cmd, sizeof(cmd), "c", "3");
		assert_int_equal(cluster_request(c, 0, s1, 2 + k, cmd, len), 0);
		cluster_flush(c, 0); /* one slot each: 2, 3, 4 */
	}
	CLUSTER_DELIVER_ALL();
	ASSERT_COMMIT(0, 5);
	ASSERT_COMMIT(1, 2); /* only what ACCEPTs carried */
	ASSERT_COMMIT(2, 2);

	const uint8_t *v3;
	uint32_t len3;
	assert_int_equal(px_chosen_value(CLUSTER_PX(0), 3, &v3, &len3), 0);
	struct px_msg chosen = {
		.type = PX_MSG_CHOSEN,
		.from = 0,
		.to = 1,
		.slot = 3,
		.value = v3,
		.value_len = len3,
		.commit_index = 5,
		.ballot = px_leader_ballot(CLUSTER_PX(0)),
	};
	assert_int_equal(CLUSTER_INJECT(1, &chosen), 0);
	ASSERT_COMMIT(1, 2);

	CLUSTER_HINT(1);
	ASSERT_FOLLOWER(0);
	assert_int_equal(cluster_peek(c, PX_MSG_PREPARE, 1, 2)->slot, 2);
	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_PREPARE, 1, 2));
	while (CLUSTER_DELIVER_MATCH(PX_MSG_PROMISE, 2, 1))
		;
	ASSERT_LEADER(1);
	for (uint64_t s = 2; s < 5; s++) {
		const struct px_msg *a = queued_accept(c, 1, 2, s);
		if (s == 3) {
			assert_null(a);
			continue;
		}
		const uint8_t *v;
		uint32_t len;
		assert_non_null(a);
		assert_int_equal(px_chosen_value(CLUSTER_PX(0), s, &v, &len),
				 0);
		assert_int_equal(a->value_len, len);
		assert_memory_equal(a->value, v, len);
	}
	assert_null(queued_accept(c, 1, 2, 1));
	assert_null(queued_accept(c, 1, 2, 5));
	CLUSTER_SUBMIT_PUT(1, s1, 5, "d", "4");
	assert_non_null(queued_accept(c, 1, 2, 5));
	CLUSTER_DELIVER_ALL();
	ASSERT_COMMIT(1, 6);
	ASSERT_REPLY(s1, 5, PX_REPLY_OK);
}

/* Replica 1 accepted "x" and "y" at slots 0 and 1 in round 1 of replica 2;
 * replica 0, which 2 cannot reach, hears of that round and runs for round
 * 2. Returns a copy of the first of the two PROMISEs replica 1 queues for
 * it, with its value copied into value. */
static struct px_msg first_of_two_promises(struct cluster *c, uint8_t *value)
{
	const char *vals[] = { "x", "y" };
	for (uint64_t s = 0; s < 2; s++)
		inject_accept(c, 1, 2, 1, s, vals[s]);
	struct px_msg prepare = {
		.type = PX_MSG_PREPARE,
		.from = 2,
		.to = 0,
		.ballot = px_ballot_make(1, 2),
	};
	assert_int_equal(CLUSTER_INJECT(0, &prepare), 0);
	CLUSTER_DISCARD_ALL();
	CLUSTER_CUT(2, 0);
	CLUSTER_HINT(0);
	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_PREPARE, 0, 1));
	ASSERT_QUEUED(PX_MSG_PROMISE, 1, 0, 2);
	struct px_msg first = *cluster_peek(c, PX_MSG_PROMISE, 1, 0);
	memcpy(value, first.value, first.value_len);
	first.value = value;
	assert_int_equal(first.slot, 0);
	assert_int_equal(px_promise_entries(&first), 2);
	return first;
}

/* A promise counts once however often it arrives: the candidate waits for
 * every distinct entry the acceptor said it would send. */
static void test_duplicate_promise_entries_count_once(void **state)
{
	struct cluster *c = *state;
	uint8_t value[PX_VALUE_BYTES_MAX];
	struct px_msg first = first_of_two_promises(c, value);
	assert_int_equal(first.seq, 2);
	assert_int_equal(CLUSTER_INJECT(0, &first), 0);
	assert_int_equal(CLUSTER_INJECT(0, &first), 0);
	ASSERT_ROLE(0, PX_ROLE_CANDIDATE);
	assert_int_equal(cluster_px(c, 0)->p1.entries_seen[1], 1);
	CLUSTER_DELIVER_ALL();
	ASSERT_LEADER(0);
}

/* An acceptor answers every retransmitted PREPARE with all it holds, and
 * what it holds only grows: answers of different times arrive mixed and
 * out of order. An older answer's smaller count must not become the goal,
 * or the report counts as complete with an entry of the newer answer still
 * missing (sim seed 19937 at 5 replicas re-proposed a chosen slot as a
 * no-op that way). */
static void test_older_answer_does_not_shrink_the_report(void **state)
{
	struct cluster *c = *state;
	uint8_t value[PX_VALUE_BYTES_MAX];
	struct px_msg newer = first_of_two_promises(c, value);
	/* The same entry as an answer from before slot 1 was accepted. */
	struct px_msg older = newer;
	older.seq = 1;
	assert_int_equal(CLUSTER_INJECT(0, &newer), 0);
	assert_int_equal(CLUSTER_INJECT(0, &older), 0);
	ASSERT_ROLE(0, PX_ROLE_CANDIDATE);
	assert_int_equal(cluster_px(c, 0)->p1.entries_expected[1], 2);
	CLUSTER_DELIVER_ALL();
	ASSERT_LEADER(0);
	const struct px_slot *s1 = px_log_get(cluster_px(c, 0), 1);
	assert_non_null(s1);
	assert_int_equal(s1->value_len, 1);
	assert_int_equal(s1->value[0], 'y');
}

/* ---- Phase 2: pipeline and queue ---- */

/* A lone request is proposed at once: no timer, no waiting for company. */
static void test_lone_request_is_proposed_at_once(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t s7 = CLUSTER_OPEN_SESSION(0);
	CLUSTER_TICK(0);
	CLUSTER_DELIVER_ALL(); /* the followers know slot 0 chosen */
	uint64_t t = c->now_ns;
	CLUSTER_SUBMIT_PUT(0, s7, 1, "k", "v");
	assert_int_equal(c->now_ns, t);
	ASSERT_QUEUED(PX_MSG_ACCEPT, 0, 1, 1);
	ASSERT_QUEUED(PX_MSG_ACCEPT, 0, 2, 1);
	assert_int_equal(px_queue_depth(CLUSTER_PX(0)), 0);
	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_ACCEPT, 0, 1));
	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_ACCEPTED, 1, 0));
	ASSERT_COMMIT(0, 2);
	ASSERT_REPLY(s7, 1, PX_REPLY_OK);
	assert_int_equal(CLUSTER_REPLY(s7, 1)->from, 0);
	/* The followers learn the commit from the next heartbeat. */
	CLUSTER_DELIVER_ALL();
	ASSERT_COMMIT(1, 1);
	CLUSTER_TICK(0);
	CLUSTER_DELIVER_ALL();
	ASSERT_COMMIT(1, 2);
	ASSERT_COMMIT(2, 2);
	ASSERT_SAME_STATE(0, 1);
	ASSERT_SAME_STATE(0, 2);
}

/* No more than window_slots slots are in flight; as slots are chosen the
 * window slides and the queue drains. */
static void test_window_limits_slots_in_flight(void **state)
{
	struct cluster *c = *state;
	const uint32_t window = c->tmpl.window_slots;
	CLUSTER_ELECT(0);
	uint64_t s = CLUSTER_OPEN_SESSION(0); /* slot 0 */
	uint8_t cmd[64];
	uint32_t len = cluster_encode_put(cmd, sizeof(cmd), "k", "v");
	for (uint64_t k = 0; k < 3 * window; k++)
		assert_int_equal(cluster_request(c, 0, s, 1 + k, cmd, len),
				 0);
	cluster_flush(c, 0);
	assert_int_equal(in_flight(c, 0), window);
	ASSERT_QUEUED(PX_MSG_ACCEPT, 0, 1, window);
	assert_int_equal(px_queue_depth(CLUSTER_PX(0)), 2 * window);
	while (CLUSTER_DELIVER())
		assert_true(in_flight(c, 0) <= window);
	ASSERT_COMMIT(0, 1 + 3 * window);
	assert_int_equal(px_queue_depth(CLUSTER_PX(0)), 0);
	for (uint64_t k = 0; k < 3 * window; k++)
		ASSERT_REPLY(s, 1 + k, PX_REPLY_OK);
}

/* The queue is bounded: a request that finds it full is told BUSY. */
static void test_busy_when_queue_is_full(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t s = CLUSTER_OPEN_SESSION(0); /* slot 0 */
	CLUSTER_CUT(0, 1);
	CLUSTER_CUT(0, 2);
	uint8_t cmd[64];
	uint32_t len = cluster_encode_put(cmd, sizeof(cmd), "k", "v");
	/* One in flight (window 1), four queued, the sixth is refused. */
	for (uint64_t k = 0; k < 5; k++) {
		assert_int_equal(cluster_request(c, 0, s, 1 + k, cmd, len), 0);
		cluster_flush(c, 0);
	}
	assert_int_equal(in_flight(c, 0), 1);
	assert_int_equal(px_queue_depth(CLUSTER_PX(0)), 4);
	ASSERT_NO_REPLY(s, 5);
	assert_int_equal(cluster_request(c, 0, s, 6, cmd, len), 0);
	ASSERT_REPLY(s, 6, PX_REPLY_BUSY);
	assert_int_equal(px_stats(CLUSTER_PX(0))->requests_busy, 1);
	assert_int_equal(px_queue_depth(CLUSTER_PX(0)), 4);

	/* Once the links heal, everything queued completes. */
	CLUSTER_HEAL_ALL();
	CLUSTER_RUN(10 * c->tmpl.retransmit_ns);
	for (uint64_t k = 0; k < 5; k++)
		ASSERT_REPLY(s, 1 + k, PX_REPLY_OK);
	ASSERT_COMMIT(0, 6);
}

/* An ACCEPT that got no answer is sent again after retransmit_ns, to the
 * acceptors that have not accepted it. */
static void test_lost_accepts_are_retransmitted(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t s7 = CLUSTER_OPEN_SESSION(0);
	CLUSTER_SUBMIT_PUT(0, s7, 1, "k", "v");
	CLUSTER_DISCARD_ALL();
	CLUSTER_TICK(0); /* too early */
	ASSERT_QUEUED(PX_MSG_ACCEPT, 0, CLUSTER_ANY, 0);
	CLUSTER_ADVANCE(c->tmpl.retransmit_ns);
	CLUSTER_TICK(0);
	ASSERT_QUEUED(PX_MSG_ACCEPT, 0, 1, 1);
	ASSERT_QUEUED(PX_MSG_ACCEPT, 0, 2, 1);
	assert_int_equal(px_stats(CLUSTER_PX(0))->retransmits, 1);
	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_ACCEPT, 0, 1));
	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_ACCEPTED, 1, 0));
	ASSERT_REPLY(s7, 1, PX_REPLY_OK);
	/* Chosen: nothing more is retransmitted. */
	CLUSTER_DISCARD_ALL();
	CLUSTER_ADVANCE(c->tmpl.retransmit_ns);
	CLUSTER_TICK(0);
	ASSERT_QUEUED(PX_MSG_ACCEPT, 0, CLUSTER_ANY, 0);
}

/* A follower that missed slots gets them as CHOSEN when its STATUS (the
 * answer to a heartbeat) shows it behind. */
static void test_follower_catches_up_with_chosen(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	CLUSTER_ISOLATE(2);
	uint64_t s7 = CLUSTER_OPEN_SESSION(0); /* slot 0 */
	for (uint64_t s = 1; s <= 4; s++) {
		CLUSTER_SUBMIT_PUT(0, s7, s, "k", "v");
		CLUSTER_DELIVER_ALL();
	}
	ASSERT_COMMIT(0, 5);
	ASSERT_COMMIT(2, 0);
	CLUSTER_HEAL_ALL();
	CLUSTER_ADVANCE(c->tmpl.retransmit_ns);
	CLUSTER_TICK(0); /* heartbeat */
	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_COMMIT, 0, 2));
	assert_int_equal(cluster_peek(c, PX_MSG_STATUS, 2, 0)->commit_index, 0);
	assert_true(CLUSTER_DELIVER_MATCH(PX_MSG_STATUS, 2, 0));
	ASSERT_QUEUED(PX_MSG_CHOSEN, 0, 2, 5);
	CLUSTER_DELIVER_ALL();
	ASSERT_COMMIT(2, 5);
	ASSERT_APPLIED(2, 5);
	ASSERT_SAME_STATE(0, 2);
}

/* ---- Stepping down ---- */

/* A NACK above the leader's ballot deposes it; its queued clients are
 * redirected. */
static void test_nack_deposes_leader(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t s7 = CLUSTER_OPEN_SESSION(0);
	uint8_t cmd[64];
	uint32_t len = cluster_encode_put(cmd, sizeof(cmd), "k", "v");
	assert_int_equal(cluster_request(c, 0, s7, 1, cmd, len), 0);
	/* A NACK at or below its ballot is no news. */
	struct px_msg nack = {
		.type = PX_MSG_NACK,
		.from = 1,
		.to = 0,
		.ballot = px_leader_ballot(CLUSTER_PX(0)),
	};
	assert_int_equal(CLUSTER_INJECT(0, &nack), 0);
	ASSERT_LEADER(0);
	nack.ballot = px_ballot_make(5, 2);
	assert_int_equal(CLUSTER_INJECT(0, &nack), 0);
	ASSERT_FOLLOWER(0);
	ASSERT_REPLY(s7, 1, PX_REPLY_REDIRECT);
	assert_int_equal(px_queue_depth(CLUSTER_PX(0)), 0);
}

/* The hint naming another replica makes a leader step down; requests to a
 * follower are redirected to the leader it knows. */
static void test_hint_for_another_steps_down(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	CLUSTER_ELECT(1);
	ASSERT_FOLLOWER(0);
	ASSERT_FOLLOWER(2);
	CLUSTER_TICK(1); /* a heartbeat tells the followers who leads */
	CLUSTER_DELIVER_ALL();
	assert_int_equal(px_known_leader(CLUSTER_PX(2)), 1);
	assert_int_equal(px_known_leader(CLUSTER_PX(0)), 1);
	uint64_t s7 = CLUSTER_OPEN_SESSION(1);
	CLUSTER_SUBMIT_PUT(2, s7, 1, "k", "v");
	ASSERT_REPLY(s7, 1, PX_REPLY_REDIRECT);
	assert_int_equal(CLUSTER_REPLY(s7, 1)->leader_hint, 1);
	assert_int_equal(px_stats(CLUSTER_PX(2))->requests_redirected, 1);
	CLUSTER_SUBMIT_PUT(1, s7, 1, "k", "v");
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(s7, 1, PX_REPLY_OK);
}

/* Two replicas that both believe they lead: ballots decide, and at most one
 * leads any ballot (checked at every step). When the hint agrees again,
 * one leader remains and requests complete. */
static void test_dueling_leaders_resolve(void **state)
{
	struct cluster *c = *state;
	/* The clients open their sessions while all agree. */
	CLUSTER_ELECT(0);
	uint64_t s7 = CLUSTER_OPEN_SESSION(0), s8 = CLUSTER_OPEN_SESSION(0);
	CLUSTER_HINT_ONE(0, 0);
	CLUSTER_HINT_ONE(1, 1);
	CLUSTER_HINT_ONE(2, 0);
	for (int k = 0; k < 20; k++) {
		CLUSTER_SUBMIT_PUT(0, s7, (uint64_t)k + 1, "k", "v0");
		CLUSTER_SUBMIT_PUT(1, s8, (uint64_t)k + 1, "k", "v1");
		CLUSTER_RUN(c->tmpl.retransmit_ns);
	}
	CLUSTER_HINT(1);
	CLUSTER_RUN(20 * c->tmpl.retransmit_ns);
	ASSERT_LEADER(1);
	ASSERT_FOLLOWER(0);
	uint64_t s9 = CLUSTER_OPEN_SESSION(1);
	CLUSTER_SUBMIT_PUT(1, s9, 1, "k", "v");
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(s9, 1, PX_REPLY_OK);
	CLUSTER_RUN(5 * c->tmpl.retransmit_ns);
	ASSERT_SAME_STATE(0, 1);
	ASSERT_SAME_STATE(1, 2);
}

int main(void)
{
#define T(f, s) cmocka_unit_test_setup_teardown(f, s, teardown)
	const struct CMUnitTest tests[] = {
		T(test_single_replica_commits_alone, setup1),
		T(test_election_needs_a_majority, setup3),
		T(test_candidate_retransmits_prepare, setup3),
		T(test_phase1_merge_keeps_highest_ballot, setup5),
		T(test_new_leader_covers_every_open_slot, setup3),
		T(test_duplicate_promise_entries_count_once, setup3),
		T(test_older_answer_does_not_shrink_the_report, setup3),
		T(test_lone_request_is_proposed_at_once, setup3),
		T(test_window_limits_slots_in_flight, setup3_unbatched),
		T(test_busy_when_queue_is_full, setup3_tiny_queue),
		T(test_lost_accepts_are_retransmitted, setup3),
		T(test_follower_catches_up_with_chosen, setup3),
		T(test_nack_deposes_leader, setup3),
		T(test_hint_for_another_steps_down, setup3),
		T(test_dueling_leaders_resolve, setup3),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
