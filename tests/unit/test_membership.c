/* Unit tests for membership changes through the log (consensus/membership.c,
 * Lamport's alpha scheme with alpha = window_slots): quorums of a member
 * mask, the configuration of each slot, proposing a change, commits and
 * elections under the new configuration, recovery fencing against every
 * configuration, history in snapshots, and leases across a change. */
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

/* The writing client's session (opened by its first commit_one) and its
 * next seq; every setup starts them over. */
static uint64_t client_session;
static uint64_t put_seq;
#define CLIENT client_session

static int setup_with(void **state, uint8_t n, const struct px_config *cfg)
{
	client_session = 0;
	put_seq = 1;
	return cluster_cmocka_setup(state, n, cfg);
}
static int setup3(void **state)
{
	return setup_with(state, 3, NULL);
}
static int setup5(void **state)
{
	return setup_with(state, 5, NULL);
}
static int teardown(void **state)
{
	return cluster_cmocka_teardown(state);
}

/* Five replicas of which {0,1,2} vote from the start. */
static int setup5_three_voting(void **state)
{
	struct px_config cfg;
	cluster_config_default(&cfg, 5);
	cfg.initial_members = 0x07;
	return setup_with(state, 5, &cfg);
}

/* Five replicas of which {0,1,2,3} vote from the start; no leases, so
 * elections go as fast as the network allows. */
static int setup5_four_voting_no_lease(void **state)
{
	struct px_config cfg;
	cluster_config_default(&cfg, 5);
	cfg.initial_members = 0x0f;
	cfg.lease_ns = 0;
	return setup_with(state, 5, &cfg);
}

/* A log long enough that no replica's log start moves while eight changes
 * go through a window of eight slots. */
static int setup3_long_log(void **state)
{
	struct px_config cfg;
	cluster_config_default(&cfg, 3);
	cfg.log_slots = 256;
	return setup_with(state, 3, &cfg);
}

/* ---- Helpers ---- */

/* The writing client opens its session through `leader`, if not yet
 * (one slot). */
static void open_client(struct cluster *c, uint8_t leader)
{
	if (client_session == 0)
		client_session = cluster_open_session(c, leader);
}

/* One PUT through `leader`, delivered until the network is quiet: it takes
 * one slot (and the client's OPEN one more, the first time) and must
 * commit. Returns its seq. */
static uint64_t commit_one(struct cluster *c, uint8_t leader)
{
	open_client(c, leader);
	uint64_t seq = put_seq++;
	char value[24];
	snprintf(value, sizeof(value), "v%llu", (unsigned long long)seq);
	CLUSTER_SUBMIT_PUT(leader, CLIENT, seq, "k", value);
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(CLIENT, seq, PX_REPLY_OK);
	return seq;
}

/* Heartbeats carry the commit index to every follower. */
static void spread_commits(struct cluster *c)
{
	CLUSTER_RUN(4 * c->tmpl.heartbeat_interval_ns);
}

/* Commits PUTs until the leader's latest change is in force at its
 * applied index, then lets the followers learn as much. */
static void put_until_in_force(struct cluster *c, uint8_t leader)
{
	for (uint32_t k = 0; px_config_pending(CLUSTER_PX(leader)); k++) {
		assert_true(k <= 2 * c->tmpl.window_slots);
		commit_one(c, leader);
	}
	spread_commits(c);
}

/* The member mask of the change chosen at `slot`, or 0 for none. */
static uint8_t change_at(const struct px_replica *r, uint64_t slot)
{
	const uint8_t *value;
	uint32_t len;
	if (px_chosen_value(r, slot, &value, &len) != 0)
		return 0;
	struct px_batch_iter it;
	struct px_batch_entry e;
	px_batch_iter_init(&it, value, len);
	while (px_batch_next(&it, &e) == 1)
		if (e.client_id == PX_CONFIG_CLIENT_ID && e.len == 1)
			return e.cmd[0];
	return 0;
}

/* The slot of the latest change replica r knows chosen. */
static uint64_t last_change_slot(const struct px_replica *r)
{
	for (uint64_t s = px_commit_index(r); s-- > px_log_start(r);)
		if (change_at(r, s) != 0)
			return s;
	fail_msg("no change in the log");
	return 0;
}

/* ---- px_quorum ---- */

/* A quorum of a configuration is a majority of its members: 1 of 1, 2 of 2,
 * 2 of 3, 3 of 5, 4 of 7, whichever bits the members are. */
static void test_quorum_is_a_majority_of_the_members(void **state)
{
	(void)state;
	assert_true(px_quorum(0x01, 0x01));
	assert_false(px_quorum(0x00, 0x01));

	assert_true(px_quorum(0x03, 0x03));
	assert_false(px_quorum(0x01, 0x03));
	assert_false(px_quorum(0x02, 0x03));

	assert_true(px_quorum(0x03, 0x07));
	assert_true(px_quorum(0x05, 0x07));
	assert_true(px_quorum(0x06, 0x07));
	assert_false(px_quorum(0x04, 0x07));
	assert_true(px_quorum(0x14, 0x15)); /* {2,4} of {0,2,4} */
	assert_false(px_quorum(0x10, 0x15));

	assert_true(px_quorum(0x07, 0x1f));
	assert_true(px_quorum(0x19, 0x1f));
	assert_false(px_quorum(0x03, 0x1f));
	assert_false(px_quorum(0x18, 0x1f));

	assert_true(px_quorum(0x0f, 0x7f));
	assert_true(px_quorum(0x55, 0x7f));
	assert_false(px_quorum(0x07, 0x7f));
	assert_false(px_quorum(0x70, 0x7f));
}

/* Votes of replicas outside the configuration count for nothing. */
static void test_quorum_ignores_votes_outside_the_config(void **state)
{
	(void)state;
	assert_false(px_quorum(0x7d, 0x03)); /* everyone but 1; {0,1} */
	assert_false(px_quorum(0x79, 0x07)); /* 0 and four outsiders */
	assert_true(px_quorum(0x7b, 0x07));  /* 0 and 1 of {0,1,2} */
	assert_false(px_quorum(0x78, 0x07));
	assert_false(px_quorum(0x60, 0x1f));
}

/* An empty configuration has no majority: nothing is ever chosen in it. */
static void test_empty_config_is_never_a_quorum(void **state)
{
	(void)state;
	assert_false(px_quorum(0x00, 0x00));
	assert_false(px_quorum(0x01, 0x00));
	assert_false(px_quorum(0x7f, 0x00));
	assert_false(px_quorum(0xff, 0x00));
}

/* What Paxos needs of quorums: any two of one configuration meet, and the
 * rule is the majority rule, for every configuration of up to seven. */
static void test_two_quorums_of_one_config_meet(void **state)
{
	(void)state;
	for (unsigned config = 1; config < 0x80; config++) {
		unsigned n = (unsigned)__builtin_popcount(config);
		for (unsigned a = 0; a < 0x80; a++) {
			unsigned in = (unsigned)__builtin_popcount(a & config);
			assert_int_equal(px_quorum((uint8_t)a, (uint8_t)config),
					 in > n / 2);
			if (!px_quorum((uint8_t)a, (uint8_t)config))
				continue;
			for (unsigned b = a; b < 0x80; b++)
				if (px_quorum((uint8_t)b, (uint8_t)config))
					assert_true((a & b & config) != 0);
		}
	}
}

/* ---- The configuration of each slot ---- */

/* A change chosen at slot i governs slots i + alpha and later, never an
 * earlier one; px_members already names it. Every replica agrees. */
static void test_change_governs_from_alpha_slots_on(void **state)
{
	struct cluster *c = *state;
	uint64_t alpha = c->tmpl.window_slots;
	CLUSTER_ELECT(0);
	commit_one(c, 0); /* the OPEN and a PUT */
	commit_one(c, 0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x03), 0);
	CLUSTER_DELIVER_ALL();
	uint64_t i = last_change_slot(CLUSTER_PX(0));
	assert_int_equal(i, 3);
	/* Applied at the leader, not in force yet: nothing has ticked. */
	ASSERT_APPLIED(0, i + 1);
	assert_true(px_config_pending(CLUSTER_PX(0)));
	/* Idle, the leader fills the window up to i + alpha with no-ops
	 * (proposer.c), and no further. */
	spread_commits(c);
	for (uint8_t k = 0; k < 3; k++) {
		const struct px_replica *r = CLUSTER_PX(k);
		ASSERT_APPLIED(k, i + alpha);
		assert_int_equal(px_members(r), 0x03);
		assert_int_equal(px_config_at(r, 0), 0x07);
		assert_int_equal(px_config_at(r, i), 0x07);
		assert_int_equal(px_config_at(r, i + alpha - 1), 0x07);
		assert_int_equal(px_config_at(r, i + alpha), 0x03);
		assert_int_equal(px_config_at(r, i + 10 * alpha), 0x03);
		assert_false(px_config_pending(r));
		assert_int_equal(px_stats(r)->config_changes, 1);
	}
	ASSERT_SAME_STATE(0, 1);
	ASSERT_SAME_STATE(0, 2);
}

/* Two changes in a row: the second is proposed once the first is in force,
 * and each governs its own stretch of slots. */
static void test_two_changes_in_a_row(void **state)
{
	struct cluster *c = *state;
	uint64_t alpha = c->tmpl.window_slots;
	CLUSTER_ELECT(0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x03), 0);
	CLUSTER_DELIVER_ALL();
	uint64_t i1 = last_change_slot(CLUSTER_PX(0));
	put_until_in_force(c, 0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x05), 0);
	CLUSTER_DELIVER_ALL();
	spread_commits(c);
	uint64_t i2 = last_change_slot(CLUSTER_PX(0));
	assert_true(i2 >= i1 + alpha);
	for (uint8_t k = 0; k < 3; k++) {
		const struct px_replica *r = CLUSTER_PX(k);
		assert_int_equal(change_at(r, i1), 0x03);
		assert_int_equal(change_at(r, i2), 0x05);
		assert_int_equal(px_config_at(r, i1 + alpha), 0x03);
		assert_int_equal(px_config_at(r, i2), 0x03);
		assert_int_equal(px_config_at(r, i2 + alpha - 1), 0x03);
		assert_int_equal(px_config_at(r, i2 + alpha), 0x05);
		assert_int_equal(px_members(r), 0x05);
		assert_int_equal(px_stats(r)->config_changes, 2);
	}
	/* In force, {0,2} commits without 1. */
	put_until_in_force(c, 0);
	CLUSTER_ISOLATE(1);
	commit_one(c, 0);
	spread_commits(c);
	ASSERT_APPLIED(2, px_applied_index(CLUSTER_PX(0)));
	ASSERT_SAME_STATE(0, 2);
}

/* ---- On an idle cluster (issue 9) ---- */

/* Ticks every replica, a quarter of a millisecond apart, and delivers
 * everything after each, until no replica has a change pending; fails the
 * test after `rounds`. Returns the rounds it took. */
static uint32_t tick_until_in_force(struct cluster *c, uint32_t rounds)
{
	for (uint32_t k = 1; k <= rounds; k++) {
		CLUSTER_ADVANCE(CLUSTER_MS / 4);
		CLUSTER_TICK_ALL();
		CLUSTER_DELIVER_ALL();
		bool pending = false;
		for (uint8_t j = 0; j < c->n; j++)
			pending |= c->nodes[j].up &&
				   px_config_pending(CLUSTER_PX(j));
		if (!pending)
			return k;
	}
	fail_msg("change still pending after %u idle rounds", rounds);
	return 0;
}

/* With no requests at all, a change finishes: the leader fills the window
 * up to the slot the change takes effect at with no-ops, alpha - 1 of
 * them, within a few ticks, and proposes nothing more while idle. Without
 * them the slots never fill and the change stays pending for ever: no
 * lease, and no next change. */
static void test_change_finishes_on_an_idle_cluster(void **state)
{
	struct cluster *c = *state;
	const struct px_replica *r0 = CLUSTER_PX(0);
	uint64_t alpha = c->tmpl.window_slots;
	CLUSTER_ELECT(0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x03), 0);
	CLUSTER_DELIVER_ALL();
	uint64_t i = last_change_slot(r0);
	assert_int_equal(i, 0);
	assert_true(px_config_pending(r0));

	/* In force everywhere within a millisecond (4 rounds; it takes 2:
	 * the first tick's no-ops are chosen, the next heartbeat tells the
	 * followers), every replica at the first slot of the new
	 * configuration. */
	tick_until_in_force(c, 4);
	assert_int_equal(px_stats(r0)->noops_proposed, alpha - 1);
	for (uint8_t k = 0; k < 3; k++) {
		ASSERT_APPLIED(k, i + alpha);
		assert_int_equal(px_config_at(CLUSTER_PX(k), i + alpha), 0x03);
		ASSERT_SAME_STATE(0, k);
	}

	/* Bounded: idle for a hundred heartbeats, not one slot more. */
	CLUSTER_RUN(100 * c->tmpl.heartbeat_interval_ns);
	assert_int_equal(px_stats(r0)->noops_proposed, alpha - 1);
	ASSERT_COMMIT(0, i + alpha);

	/* In force: the lease is back, the next change is taken, and {0,1}
	 * commits without 2. */
	assert_true(px_lease_valid(r0, c->now_ns));
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x07), 0);
	CLUSTER_DELIVER_ALL();
	assert_int_equal(change_at(r0, i + alpha), 0x07);
	tick_until_in_force(c, 16);
	assert_int_equal(px_stats(r0)->noops_proposed, 2 * (alpha - 1));
	assert_int_equal(px_members(CLUSTER_PX(2)), 0x07);
}

/* Requests that come while a change is pending take the window's slots
 * before any no-op does: the no-ops only make up what is left. */
static void test_requests_fill_the_window_before_noops(void **state)
{
	struct cluster *c = *state;
	const struct px_replica *r0 = CLUSTER_PX(0);
	uint64_t alpha = c->tmpl.window_slots;
	CLUSTER_ELECT(0);
	open_client(c, 0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x03), 0);
	CLUSTER_DELIVER_ALL();
	uint64_t i = last_change_slot(r0);
	commit_one(c, 0);
	commit_one(c, 0);
	assert_int_equal(px_stats(r0)->noops_proposed, 0);
	tick_until_in_force(c, 16);
	assert_int_equal(px_stats(r0)->noops_proposed, alpha - 3);
	ASSERT_APPLIED(0, i + alpha);
}

/* A leader that took over with a change applied but not yet in force
 * finishes it too, idle: the no-ops go by the replicated history, not by
 * who proposed the change. */
static void test_new_leader_finishes_a_pending_change(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x06), 0); /* drop 0 */
	CLUSTER_DELIVER_ALL();
	/* The followers learn that the change is chosen; 0 then crashes
	 * before any no-op went out. */
	CLUSTER_TICK(0);
	while (CLUSTER_DELIVER_MATCH(PX_MSG_COMMIT, 0, CLUSTER_ANY))
		;
	CLUSTER_DISCARD_ALL();
	CLUSTER_CRASH(0);
	assert_true(px_config_pending(CLUSTER_PX(1)));
	assert_true(px_config_pending(CLUSTER_PX(2)));
	assert_int_equal(px_members(CLUSTER_PX(1)), 0x06);

	CLUSTER_HINT(1);
	CLUSTER_RUN(5 * c->tmpl.lease_ns);
	ASSERT_LEADER(1);
	assert_false(px_config_pending(CLUSTER_PX(1)));
	assert_false(px_config_pending(CLUSTER_PX(2)));
	assert_int_equal(px_config_at(CLUSTER_PX(2),
				      px_applied_index(CLUSTER_PX(2))),
			 0x06);
	/* {1,2} without 0: a write commits. */
	commit_one(c, 1);
}

/* ---- px_propose_config ---- */

/* Only the leader takes a change: not a candidate, not a follower. */
static void test_propose_needs_the_leader(void **state)
{
	struct cluster *c = *state;
	CLUSTER_HINT(0);
	ASSERT_ROLE(0, PX_ROLE_CANDIDATE);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x03), -BPX_ENOTLEADER);
	CLUSTER_DELIVER_ALL();
	ASSERT_LEADER(0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(1, 0x03), -BPX_ENOTLEADER);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(2, 0x03), -BPX_ENOTLEADER);
	CLUSTER_DELIVER_ALL();
	assert_int_equal(px_commit_index(CLUSTER_PX(0)), 0);
	assert_int_equal(px_members(CLUSTER_PX(0)), 0x07);
}

/* No members, or members the config file does not name, is no change. */
static void test_propose_refuses_bad_members(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x00), -BPX_EINVAL);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x08), -BPX_EINVAL);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x0b), -BPX_EINVAL);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x80), -BPX_EINVAL);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0xff), -BPX_EINVAL);
	assert_int_equal(px_queue_depth(CLUSTER_PX(0)), 0);
	assert_false(px_config_pending(CLUSTER_PX(0)));
	/* Still free to take a good one. */
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x07), 0);
}

/* One change at a time: refused while proposed and not chosen, and while
 * applied but not yet in force at the applied index. */
static void test_propose_one_change_at_a_time(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x03), 0);
	ASSERT_QUEUED(PX_MSG_ACCEPT, 0, 1, 1); /* in flight */
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x05), -BPX_EBUSY);
	CLUSTER_DELIVER_ALL();
	uint64_t i = last_change_slot(CLUSTER_PX(0));
	assert_true(px_applied_index(CLUSTER_PX(0)) > i);
	assert_int_equal(px_config_at(CLUSTER_PX(0),
				      px_applied_index(CLUSTER_PX(0))),
			 0x07);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x05), -BPX_EBUSY);
	/* One slot short of alpha: still pending. */
	while (px_applied_index(CLUSTER_PX(0)) + 1 < i + c->tmpl.window_slots)
		commit_one(c, 0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x05), -BPX_EBUSY);
	commit_one(c, 0);
	assert_int_equal(px_applied_index(CLUSTER_PX(0)),
			 i + c->tmpl.window_slots);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x05), 0);
	CLUSTER_DELIVER_ALL();
	assert_int_equal(px_members(CLUSTER_PX(0)), 0x05);
}

/* Applying a change is deterministic: every replica ends with the same
 * members and the same state at the same applied index. */
static void test_change_applies_identically_everywhere(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	commit_one(c, 0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x1b), 0); /* drop 2 */
	CLUSTER_DELIVER_ALL();
	put_until_in_force(c, 0);
	uint64_t applied = px_applied_index(CLUSTER_PX(0));
	for (uint8_t k = 0; k < 5; k++) {
		ASSERT_APPLIED(k, applied);
		assert_int_equal(px_members(CLUSTER_PX(k)), 0x1b);
		assert_int_equal(px_config_at(CLUSTER_PX(k), applied), 0x1b);
		assert_false(px_config_pending(CLUSTER_PX(k)));
		ASSERT_SAME_STATE(0, k);
	}
}

/* ---- Commits under a configuration ---- */

/* Three replicas; 2 is removed. Once that is in force, {0,1} commits alone,
 * and without 1 nothing commits: 2 still accepts, but its vote is not in
 * the configuration. Added back, 2 votes again. */
static void test_remove_and_add_back(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	commit_one(c, 0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x03), 0);
	CLUSTER_DELIVER_ALL();
	put_until_in_force(c, 0);

	/* A majority of {0,1} is {0,1}: 2 is not needed at all. */
	CLUSTER_ISOLATE(2);
	uint64_t commit = px_commit_index(CLUSTER_PX(0));
	commit_one(c, 0);
	commit_one(c, 0);
	ASSERT_COMMIT(0, commit + 2);

	/* Without 1 nothing commits, though 0 and 2 talk and 2 accepts. */
	CLUSTER_HEAL_ALL();
	CLUSTER_ISOLATE(1);
	commit = px_commit_index(CLUSTER_PX(0));
	uint64_t seq = put_seq++;
	CLUSTER_SUBMIT_PUT(0, CLIENT, seq, "k", "stuck");
	CLUSTER_RUN(10 * c->tmpl.retransmit_ns);
	ASSERT_COMMIT(0, commit);
	ASSERT_NO_REPLY(CLIENT, seq);
	const struct px_slot *mine = px_log_get(CLUSTER_PX(0), commit);
	const struct px_slot *at2 = px_log_get(CLUSTER_PX(2), commit);
	assert_non_null(mine);
	assert_non_null(at2);
	assert_int_equal(at2->accepted_ballot, px_leader_ballot(CLUSTER_PX(0)));
	assert_int_equal(mine->ack_mask, 0x05);
	assert_false(mine->chosen);

	/* Healed, 1's vote chooses it. */
	CLUSTER_HEAL_ALL();
	CLUSTER_RUN(2 * c->tmpl.retransmit_ns);
	ASSERT_REPLY(CLIENT, seq, PX_REPLY_OK);
	ASSERT_COMMIT(0, commit + 1);

	/* 2 comes back; once in force, {0,2} is a majority again. */
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x07), 0);
	CLUSTER_DELIVER_ALL();
	put_until_in_force(c, 0);
	CLUSTER_ISOLATE(1);
	commit = px_commit_index(CLUSTER_PX(0));
	commit_one(c, 0);
	ASSERT_COMMIT(0, commit + 1);
	spread_commits(c);
	ASSERT_APPLIED(2, commit + 1);
	ASSERT_SAME_STATE(0, 2);
}

/* ---- Elections under a configuration ---- */

/* After 2 is removed, a candidate's phase 1 needs a majority of {0,1}, the
 * configuration at its applied index: 1 with 2's promise is not leader;
 * 1 with 0's promise alone is. */
static void test_new_leader_uses_the_new_config(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x03), 0);
	CLUSTER_DELIVER_ALL();
	put_until_in_force(c, 0);
	const struct px_replica *r1 = CLUSTER_PX(1);
	assert_int_equal(px_config_at(r1, px_applied_index(r1)), 0x03);

	/* 0 is gone; 1 runs with only 2 to answer (once 2's lease on 0
	 * has run out). */
	CLUSTER_ISOLATE(0);
	CLUSTER_HINT_ONE(1, 1);
	CLUSTER_HINT_ONE(2, 1);
	CLUSTER_RUN(5 * c->tmpl.lease_ns);
	ASSERT_ROLE(1, PX_ROLE_CANDIDATE);
	assert_int_equal(px_promised_ballot(CLUSTER_PX(2)), r1->ballot);
	assert_true(r1->p1.complete_mask & 0x04);

	/* 0 is back and 2 is gone: 0's promise makes 1 leader. */
	CLUSTER_HEAL_ALL();
	CLUSTER_ISOLATE(2);
	CLUSTER_HINT(1);
	CLUSTER_RUN(5 * c->tmpl.lease_ns);
	ASSERT_LEADER(1);
	commit_one(c, 1);
	assert_int_equal(px_members(r1), 0x03);
}

/* ---- Recovery ---- */

/* A recovering member of {0,1,2} needs n - majority + 1 = 2 other members
 * of it (0 and 1): the non-members 3 and 4 do not count. A change to
 * {2,3,4} applied but not yet in force adds that configuration: now it
 * needs {3,4} as well. */
static void test_recovery_of_a_member_needs_every_config(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	commit_one(c, 0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x1c), 0);
	CLUSTER_DELIVER_ALL();
	/* 0 hears no acceptances from here on, so the no-ops it proposes to
	 * finish the change (proposer.c) are not chosen and the change stays
	 * pending; its heartbeats still tell the followers it is applied. */
	CLUSTER_CUT(1, 0);
	CLUSTER_CUT(2, 0);
	spread_commits(c);
	assert_true(px_config_pending(CLUSTER_PX(1)));

	CLUSTER_CRASH(2);
	CLUSTER_RECOVER(2);
	CLUSTER_HEAL(2, 0); /* recovering, 2 accepts nothing */
	CLUSTER_CUT_BOTH(2, 3);
	CLUSTER_CUT_BOTH(2, 4);
	CLUSTER_RUN(50 * c->tmpl.retransmit_ns);
	assert_int_equal(px_stats(CLUSTER_PX(2))->snapshots_installed, 1);
	assert_int_equal(px_members(CLUSTER_PX(2)), 0x1c);
	ASSERT_ROLE(2, PX_ROLE_RECOVERING);
	assert_int_equal(CLUSTER_PX(2)->p1.complete_mask & 0x1b, 0x03);

	CLUSTER_HEAL_BOTH(2, 3);
	CLUSTER_RUN(50 * c->tmpl.retransmit_ns);
	ASSERT_ROLE(2, PX_ROLE_RECOVERING);

	CLUSTER_HEAL_BOTH(2, 4);
	cluster_run_until_recovered(c, 2);
	ASSERT_FOLLOWER(2);
}

/* The same member, with only its own configuration {0,1,2} in its history:
 * 0 and 1 are enough, and 1 alone is not. */
static void test_recovery_of_a_member_needs_its_config(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	commit_one(c, 0);
	spread_commits(c);
	CLUSTER_CRASH(2);
	CLUSTER_RECOVER(2);
	CLUSTER_CUT_BOTH(2, 0);
	CLUSTER_RUN(50 * c->tmpl.retransmit_ns);
	assert_true(CLUSTER_PX(2)->recovery_have_snapshot);
	ASSERT_ROLE(2, PX_ROLE_RECOVERING);
	assert_true(CLUSTER_PX(2)->p1.complete_mask & 0x02);

	CLUSTER_HEAL_BOTH(2, 0);
	cluster_run_until_recovered(c, 2);
	ASSERT_FOLLOWER(2);
}

/* Not a member of {0,1,2}, replica 4 still fences against it: with every
 * other replica cut off, a snapshot alone does not end its recovery; 0 and
 * the non-member 3 are not enough either; 0 and 1 are (why: below). */
static void test_recovery_of_a_non_member_needs_its_config(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	commit_one(c, 0);
	spread_commits(c);
	CLUSTER_CRASH(4);
	CLUSTER_RECOVER(4);
	CLUSTER_ISOLATE(4);
	size_t len;
	uint8_t *snap = cluster_save(c, 0, &len);
	assert_int_equal(cluster_install(c, 4, snap, len), 0);
	free(snap);
	ASSERT_APPLIED(4, px_applied_index(CLUSTER_PX(0)));
	assert_int_equal(px_members(CLUSTER_PX(4)), 0x07);
	CLUSTER_RUN(50 * c->tmpl.retransmit_ns);
	ASSERT_ROLE(4, PX_ROLE_RECOVERING);

	CLUSTER_HEAL_BOTH(4, 0);
	CLUSTER_HEAL_BOTH(4, 3);
	CLUSTER_RUN(50 * c->tmpl.retransmit_ns);
	ASSERT_ROLE(4, PX_ROLE_RECOVERING);
	assert_int_equal(CLUSTER_PX(4)->p1.complete_mask, 0x09);

	CLUSTER_HEAL_BOTH(4, 1);
	cluster_run_until_recovered(c, 4);
	ASSERT_FOLLOWER(4);
}

/* A replica that is not a voting member in the configuration its snapshot
 * knows may still have voted since: a change it has not heard of may have
 * added it back. It learns of such a change only from responders that meet
 * every majority of the configuration that chose it, so it too needs
 * n - majority + 1 of them, not the snapshot alone.
 *
 * Five replicas, {0,1,2,3} voting. 0 falls behind; {1,2,3} add 4, and v is
 * chosen at slot s by {1,2,4}, a majority of five. 4 restarts without its
 * state and hears only from 0: 0's snapshot and promise say nothing of 4
 * coming back. Were 4 to vote again now, {0,3,4}, a majority of five that
 * never saw v, would choose another value for s. */
static void test_recovery_of_a_non_member_meets_its_majorities(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(1);
	commit_one(c, 1);
	spread_commits(c);
	CLUSTER_ISOLATE(0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(1, 0x1f), 0);
	CLUSTER_DELIVER_ALL();
	put_until_in_force(c, 1);
	assert_int_equal(px_config_at(CLUSTER_PX(3),
				      px_applied_index(CLUSTER_PX(3))),
			 0x1f);

	CLUSTER_CUT(1, 3);
	commit_one(c, 1);
	uint64_t s = px_commit_index(CLUSTER_PX(1)) - 1;
	const struct px_slot *v = px_log_get(CLUSTER_PX(4), s);
	assert_non_null(v);
	assert_int_equal(v->accepted_ballot, px_leader_ballot(CLUSTER_PX(1)));
	assert_null(px_log_get(CLUSTER_PX(3), s));

	/* 1 and 2 fall silent; 4 restarts and reaches only 0. */
	CLUSTER_HINT(PX_REPLICA_NONE);
	CLUSTER_ISOLATE(1);
	CLUSTER_ISOLATE(2);
	CLUSTER_CRASH(4);
	CLUSTER_RECOVER(4);
	CLUSTER_HEAL_BOTH(0, 4);
	CLUSTER_CUT_BOTH(3, 4);
	CLUSTER_RUN(50 * c->tmpl.retransmit_ns);
	assert_true(CLUSTER_PX(4)->recovery_have_snapshot);
	assert_int_equal(px_members(CLUSTER_PX(4)), 0x0f);
	ASSERT_ROLE(4, PX_ROLE_RECOVERING);

	/* 3 answers too and reports the change that added 4: now every
	 * majority of five must be met, and {0,3} does not. */
	CLUSTER_HEAL_BOTH(3, 4);
	CLUSTER_HEAL_BOTH(0, 3);
	CLUSTER_HINT(3);
	CLUSTER_RUN(50 * c->tmpl.retransmit_ns);
	ASSERT_ROLE(4, PX_ROLE_RECOVERING);
	assert_int_not_equal(px_role(CLUSTER_PX(3)), PX_ROLE_LEADER);

	/* Everyone back: 4 recovers, 3 leads, and s keeps v. */
	CLUSTER_HEAL_ALL();
	cluster_run_until_recovered(c, 4);
	CLUSTER_ELECT(3);
	commit_one(c, 3);
	spread_commits(c);
	const uint8_t *at1, *at3;
	uint32_t len1, len3;
	assert_int_equal(px_chosen_value(CLUSTER_PX(1), s, &at1, &len1), 0);
	assert_int_equal(px_chosen_value(CLUSTER_PX(3), s, &at3, &len3), 0);
	assert_int_equal(len1, len3);
	assert_memory_equal(at1, at3, len1);
}

/* ---- Snapshots ---- */

/* A snapshot carries the history: installed by a replica that missed the
 * change (taken while it is pending, and again once it is in force), it
 * gives the same members, the same configuration per slot and the same
 * state as the replica that took it. */
static void test_snapshot_carries_the_history(void **state)
{
	struct cluster *c = *state;
	uint64_t alpha = c->tmpl.window_slots;
	CLUSTER_ELECT(0);
	commit_one(c, 0);
	CLUSTER_ISOLATE(2);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x03), 0);
	CLUSTER_DELIVER_ALL();
	commit_one(c, 0);
	uint64_t i = last_change_slot(CLUSTER_PX(0));
	assert_true(px_config_pending(CLUSTER_PX(0)));
	assert_int_equal(px_members(CLUSTER_PX(2)), 0x07);

	size_t len;
	uint8_t *snap = cluster_save(c, 0, &len);
	assert_int_equal(cluster_install(c, 2, snap, len), 0);
	free(snap);
	const struct px_replica *r2 = CLUSTER_PX(2);
	ASSERT_APPLIED(2, px_applied_index(CLUSTER_PX(0)));
	assert_int_equal(px_members(r2), 0x03);
	assert_int_equal(px_config_at(r2, i + alpha - 1), 0x07);
	assert_int_equal(px_config_at(r2, i + alpha), 0x03);
	assert_true(px_config_pending(r2));
	ASSERT_SAME_STATE(0, 2);

	put_until_in_force(c, 0);
	commit_one(c, 0);
	snap = cluster_save(c, 0, &len);
	assert_int_equal(cluster_install(c, 2, snap, len), 0);
	free(snap);
	ASSERT_APPLIED(2, px_applied_index(CLUSTER_PX(0)));
	assert_int_equal(px_members(r2), 0x03);
	assert_false(px_config_pending(r2));
	ASSERT_SAME_STATE(0, 2);

	/* Back in touch, it follows the log from there. */
	CLUSTER_HEAL_ALL();
	commit_one(c, 0);
	spread_commits(c);
	ASSERT_APPLIED(2, px_applied_index(CLUSTER_PX(0)));
	ASSERT_SAME_STATE(0, 2);
}

/* Every replica keeps the configurations it may still need and drops older
 * ones, each at its own log start. Which change is too many for the history
 * must not depend on that: here 1 installed a snapshot (its log starts late,
 * so it drops more) and then leads eight changes in all; 0 and 2, whose
 * logs start at 0, must apply the eighth as 1 does. */
static void test_history_is_the_same_whatever_the_log_start(void **state)
{
	struct cluster *c = *state;
	static const uint8_t masks[] = { 0x03, 0x07, 0x05, 0x07,
					 0x06, 0x07, 0x03, 0x05 };
	CLUSTER_ELECT(0);
	for (unsigned k = 0; k < 6; k++) {
		assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, masks[k]), 0);
		CLUSTER_DELIVER_ALL();
		put_until_in_force(c, 0);
	}
	CLUSTER_ISOLATE(1);
	commit_one(c, 0);
	spread_commits(c);
	size_t len;
	uint8_t *snap = cluster_save(c, 0, &len);
	assert_int_equal(cluster_install(c, 1, snap, len), 0);
	free(snap);
	CLUSTER_HEAL_ALL();
	assert_int_equal(px_log_start(CLUSTER_PX(1)),
			 px_applied_index(CLUSTER_PX(0)));
	assert_int_equal(px_log_start(CLUSTER_PX(0)), 0);
	assert_int_equal(px_log_start(CLUSTER_PX(2)), 0);

	CLUSTER_ELECT(1);
	for (unsigned k = 6; k < 8; k++) {
		assert_int_equal(CLUSTER_PROPOSE_CONFIG(1, masks[k]), 0);
		CLUSTER_DELIVER_ALL();
		put_until_in_force(c, 1);
		for (uint8_t j = 0; j < 3; j++)
			assert_int_equal(px_members(CLUSTER_PX(j)), masks[k]);
	}
	assert_int_equal(px_log_start(CLUSTER_PX(0)), 0);
	assert_int_equal(px_log_start(CLUSTER_PX(2)), 0);
	ASSERT_SAME_STATE(1, 0);
	ASSERT_SAME_STATE(1, 2);
}

/* ---- Leases ---- */

/* While a change is pending, the leader serves no reads from its lease:
 * they go through the log. Once the change is in force and a majority of
 * the new configuration has acknowledged heartbeats, the lease is back,
 * and it needs only that configuration. */
static void test_no_lease_while_a_change_is_pending(void **state)
{
	struct cluster *c = *state;
	const struct px_replica *r0 = CLUSTER_PX(0);
	CLUSTER_ELECT(0);
	commit_one(c, 0);
	spread_commits(c);
	assert_true(px_lease_valid(r0, c->now_ns));

	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x03), 0);
	assert_false(px_lease_valid(r0, c->now_ns)); /* proposed */
	CLUSTER_DELIVER_ALL();
	/* No tick yet, so no no-ops either (proposer.c). */
	assert_true(px_config_pending(r0)); /* applied, not in force */
	assert_false(px_lease_valid(r0, c->now_ns));

	/* A read goes through the log. */
	uint64_t commit = px_commit_index(r0);
	assert_int_equal(cluster_read(c, 0, READER, PX_SEQ_READ_BASE + 1, "k"), 0);
	ASSERT_NO_REPLY(READER, PX_SEQ_READ_BASE + 1);
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(READER, PX_SEQ_READ_BASE + 1, PX_REPLY_OK);
	ASSERT_COMMIT(0, commit + 1);
	assert_int_equal(px_stats(r0)->lease_reads, 0);

	put_until_in_force(c, 0);
	assert_false(px_config_pending(r0));
	CLUSTER_RUN(2 * c->tmpl.heartbeat_interval_ns);
	assert_true(px_lease_valid(r0, c->now_ns));

	/* Under the lease: answered at once, no slot used. */
	commit = px_commit_index(r0);
	assert_int_equal(cluster_read(c, 0, READER, PX_SEQ_READ_BASE + 2, "k"), 0);
	ASSERT_REPLY(READER, PX_SEQ_READ_BASE + 2, PX_REPLY_OK);
	ASSERT_COMMIT(0, commit);
	assert_int_equal(px_stats(r0)->lease_reads, 1);

	/* {0,1}: 1's acknowledgements are all the lease needs. */
	CLUSTER_ISOLATE(2);
	CLUSTER_RUN(3 * c->tmpl.lease_ns);
	assert_true(px_lease_valid(r0, c->now_ns));
}

/* A leader deposed with its change still open forgets it: the change is
 * chosen by a later leader or not at all, and the history tells when one
 * is applied. Leading again, it takes a change and has its lease back.
 * Its clients are told where to go; no reply goes to client 0. */
static void test_deposed_leader_forgets_its_change(void **state)
{
	struct cluster *c = *state;
	const struct px_replica *r0 = CLUSTER_PX(0);
	CLUSTER_ELECT(0);
	commit_one(c, 0);
	spread_commits(c);

	/* Queued, and deposed before it took a slot. */
	assert_int_equal(px_propose_config(CLUSTER_PX(0), c->now_ns, 0x03,
					   &c->nodes[0].out),
			 0);
	CLUSTER_ELECT(1);
	assert_null(CLUSTER_REPLY(PX_CONFIG_CLIENT_ID, 0));
	CLUSTER_ELECT(0);
	spread_commits(c);
	assert_false(px_config_pending(r0));
	assert_true(px_lease_valid(r0, c->now_ns));

	/* In a slot only 0 accepted: 1 chooses something else there. */
	CLUSTER_ISOLATE(0);
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x03), 0);
	CLUSTER_HINT(1);
	CLUSTER_RUN(5 * c->tmpl.lease_ns);
	ASSERT_LEADER(1);
	commit_one(c, 1);
	CLUSTER_HEAL_ALL();
	spread_commits(c);
	assert_int_equal(px_members(r0), 0x07);

	CLUSTER_ELECT(0);
	spread_commits(c);
	assert_true(px_lease_valid(r0, c->now_ns));
	assert_int_equal(CLUSTER_PROPOSE_CONFIG(0, 0x03), 0);
	CLUSTER_DELIVER_ALL();
	put_until_in_force(c, 0);
	assert_int_equal(px_members(CLUSTER_PX(2)), 0x03);
}

int main(void)
{
#define T(f, s) cmocka_unit_test_setup_teardown(f, s, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quorum_is_a_majority_of_the_members),
		cmocka_unit_test(test_quorum_ignores_votes_outside_the_config),
		cmocka_unit_test(test_empty_config_is_never_a_quorum),
		cmocka_unit_test(test_two_quorums_of_one_config_meet),
		T(test_change_governs_from_alpha_slots_on, setup3),
		T(test_two_changes_in_a_row, setup3),
		T(test_change_finishes_on_an_idle_cluster, setup3),
		T(test_requests_fill_the_window_before_noops, setup3),
		T(test_new_leader_finishes_a_pending_change, setup3),
		T(test_propose_needs_the_leader, setup3),
		T(test_propose_refuses_bad_members, setup3),
		T(test_propose_one_change_at_a_time, setup3),
		T(test_change_applies_identically_everywhere, setup5),
		T(test_remove_and_add_back, setup3),
		T(test_new_leader_uses_the_new_config, setup3),
		T(test_recovery_of_a_member_needs_every_config,
		  setup5_three_voting),
		T(test_recovery_of_a_member_needs_its_config,
		  setup5_three_voting),
		T(test_recovery_of_a_non_member_needs_its_config,
		  setup5_three_voting),
		T(test_recovery_of_a_non_member_meets_its_majorities,
		  setup5_four_voting_no_lease),
		T(test_snapshot_carries_the_history, setup3),
		T(test_history_is_the_same_whatever_the_log_start,
		  setup3_long_log),
		T(test_no_lease_while_a_change_is_pending, setup3),
		T(test_deposed_leader_forgets_its_change, setup3),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
