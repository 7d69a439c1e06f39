/* Unit tests for the pure Omega leader oracle (control/omega.c).
 *
 * A tiny fixture runs a whole cluster of oracles on one fake clock: every
 * millisecond each running member ticks, and the heartbeats it sends are
 * delivered to every other running member whose link is not cut. Invariants
 * are checked after every step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "omega.h"

#define MS(n) ((uint64_t)(n)*1000 * 1000)

struct cluster {
	uint8_t n;
	uint64_t now_ns;
	struct ctl_omega o[CTL_MEMBERS_MAX];
	bool down[CTL_MEMBERS_MAX];		    /* crashed: silent, deaf */
	bool cut[CTL_MEMBERS_MAX][CTL_MEMBERS_MAX]; /* cut[a][b]: a -> b lost */
	struct ctl_heartbeat outbox[CTL_MEMBERS_MAX]; /* sent this step */
	bool sent[CTL_MEMBERS_MAX];
	/* true: a heartbeat reaches the others before the next member ticks
	 * (so later ids decide on earlier ids' heartbeats of the same step);
	 * false: all tick, then all heartbeats are delivered. */
	bool immediate;
};

static struct cluster cluster;

static void member_start(struct cluster *c, uint8_t i)
{
	struct ctl_omega_config cfg;
	ctl_fd_config_default(&cfg.fd, c->n, i);
	assert_null(ctl_fd_config_check(&cfg.fd));
	ctl_omega_init(&c->o[i], &cfg, c->now_ns);
	c->down[i] = false;
}

static void cluster_init(struct cluster *c, uint8_t n)
{
	memset(c, 0, sizeof(*c));
	c->n = n;
	c->now_ns = MS(1);
	for (uint8_t i = 0; i < n; i++) {
		member_start(c, i);
		ctl_omega_set_ready(&c->o[i], true);
	}
}

/* Deliver every heartbeat sent this step over the links that work. */
static void deliver_all(struct cluster *c)
{
	for (uint8_t from = 0; from < c->n; from++) {
		if (!c->sent[from])
			continue;
		c->sent[from] = false;
		for (uint8_t to = 0; to < c->n; to++) {
			if (to == from || c->down[to] || c->cut[from][to])
				continue;
			/* A stale drop is possible (after a restart);
			 * check_invariants rules out the others. */
			(void)ctl_omega_receive(&c->o[to], c->now_ns,
						&c->outbox[from]);
		}
	}
}

/* What must hold after every step, whatever the faults. */
static void check_invariants(const struct cluster *c)
{
	const uint8_t majority = ctl_majority(c->n);
	for (uint8_t i = 0; i < c->n; i++) {
		if (c->down[i])
			continue;
		/* The fixture only ever sends well-formed heartbeats. */
		assert_true(c->o[i].drops.bad_from == 0);
		assert_true(c->o[i].drops.malformed == 0);
		uint8_t leader = ctl_omega_leader(&c->o[i], c->now_ns);
		assert_true(leader == CTL_NONE || leader < c->n);
		if (leader == CTL_NONE)
			continue;
		/* Whoever names a leader hears a majority, and the leader it
		 * names is one it hears. */
		uint32_t mask = ctl_fd_alive_mask(&c->o[i].fd, c->now_ns);
		assert_true(ctl_mask_count(mask) >= majority);
		assert_true(mask & (1u << leader));
	}
}

static void cluster_step(struct cluster *c)
{
	for (uint8_t i = 0; i < c->n; i++) {
		if (!c->down[i])
			c->sent[i] = ctl_omega_tick(&c->o[i], c->now_ns,
						    &c->outbox[i]);
		if (c->immediate)
			deliver_all(c);
	}
	deliver_all(c);
	check_invariants(c);
	c->now_ns += MS(1);
}

static void cluster_step_ms(struct cluster *c, unsigned ms)
{
	for (unsigned i = 0; i < ms; i++)
		cluster_step(c);
}

static bool all_leader(const struct cluster *c, uint8_t leader)
{
	for (uint8_t i = 0; i < c->n; i++) {
		if (!c->down[i] &&
		    ctl_omega_leader(&c->o[i], c->now_ns) != leader)
			return false;
	}
	return true;
}

/* Steps until every running member follows leader; returns the ms taken,
 * failing the test after max_ms. */
static unsigned step_until_all_leader(struct cluster *c, uint8_t leader,
				      unsigned max_ms)
{
	for (unsigned ms = 0; ms <= max_ms; ms++) {
		if (all_leader(c, leader))
			return ms;
		cluster_step(c);
	}
	fail_msg("no agreement on leader %u within %u ms", leader, max_ms);
	return max_ms;
}

static void cut_one_way(struct cluster *c, uint8_t from, uint8_t to)
{
	c->cut[from][to] = true;
}

static void cut(struct cluster *c, uint8_t a, uint8_t b)
{
	c->cut[a][b] = true;
	c->cut[b][a] = true;
}

static void isolate(struct cluster *c, uint8_t a)
{
	for (uint8_t b = 0; b < c->n; b++) {
		if (b != a)
			cut(c, a, b);
	}
}

static void heal(struct cluster *c)
{
	memset(c->cut, 0, sizeof(c->cut));
}

#define C (&cluster)
#define STEP_MS(n) cluster_step_ms(C, (n))
#define STEP_UNTIL_ALL_LEADER(x, max_ms) step_until_all_leader(C, (x), (max_ms))
#define LEADER(i) ctl_omega_leader(&C->o[(i)], C->now_ns)
#define ASSERT_LEADER(i, x) assert_int_equal(LEADER(i), (x))
#define ASSERT_ALL_LEADER(x) assert_true(all_leader(C, (x)))
#define KILL(i) (C->down[(i)] = true)
#define RESTART(i) member_start(C, (i))
#define SET_READY(i, r) ctl_omega_set_ready(&C->o[(i)], (r))
#define PREFER(i, m) ctl_omega_set_preferred(&C->o[(i)], (m))
/* Whether member i's latest heartbeat, as member at stores it, claims
 * leadership (its leader_hint names itself). */
#define CLAIMS_AT(at, i) (C->o[(at)].peers[(i)].leader_hint == (i))
#define HEARTBEAT_MS 5u
#define TIMEOUT_MIN_MS 30u
/* Suspicion plus one heartbeat interval for the news to spread, with slack
 * for the adaptive timeout while heartbeats are still settling. */
#define FAILOVER_MAX_MS 60u

static int setup3(void **state)
{
	cluster_init(&cluster, 3);
	*state = &cluster;
	return 0;
}

static int setup5(void **state)
{
	cluster_init(&cluster, 5);
	*state = &cluster;
	return 0;
}

static int setup3_immediate(void **state)
{
	cluster_init(&cluster, 3);
	cluster.immediate = true;
	*state = &cluster;
	return 0;
}

static int setup5_immediate(void **state)
{
	cluster_init(&cluster, 5);
	cluster.immediate = true;
	*state = &cluster;
	return 0;
}

/* Before anyone has heard anyone, no member can know it is heard by a
 * majority: no leader yet, not even self. Within a heartbeat or two, all
 * agree on the lowest id. */
static void test_all_agree_on_leader_0(void **state)
{
	(void)state;
	for (uint8_t i = 0; i < C->n; i++)
		ASSERT_LEADER(i, CTL_NONE);
	unsigned ms = STEP_UNTIL_ALL_LEADER(0, 20);
	assert_true(ms <= 10);
	STEP_MS(500);
	ASSERT_ALL_LEADER(0);
}

/* Heartbeats carry the sender's choice, its readiness and its view. */
static void test_heartbeat_contents(void **state)
{
	(void)state;
	STEP_MS(50);
	struct ctl_heartbeat hb;
	uint64_t seq = C->o[2].seq;
	C->now_ns = C->o[2].next_heartbeat_ns;
	assert_true(ctl_omega_tick(&C->o[2], C->now_ns, &hb));
	assert_int_equal(hb.from, 2);
	assert_int_equal(hb.leader_hint, 0);
	assert_int_equal(hb.ready, 1);
	assert_int_equal(hb.alive_mask, (1u << C->n) - 1);
	assert_true(hb.seq == seq);
	/* Not due again until one interval later. */
	assert_false(ctl_omega_tick(&C->o[2], C->now_ns, &hb));
	assert_false(ctl_omega_tick(&C->o[2], C->now_ns + MS(4), &hb));
	assert_true(ctl_omega_tick(&C->o[2], C->now_ns + MS(5), &hb));
	assert_true(hb.seq == seq + 1);
}

/* A clock stepped backwards does not silence a member until it catches up. */
static void test_tick_survives_clock_going_backwards(void **state)
{
	(void)state;
	struct ctl_heartbeat hb;
	struct ctl_omega *o = &C->o[0];
	assert_true(ctl_omega_tick(o, MS(10000), &hb));
	assert_false(ctl_omega_tick(o, MS(10001), &hb));
	assert_true(ctl_omega_tick(o, MS(10), &hb));
	assert_false(ctl_omega_tick(o, MS(11), &hb));
	assert_true(ctl_omega_tick(o, MS(15), &hb));
}

/* Leader 0 crashes: once the others' detectors time it out, all agree on 1,
 * and not sooner than the detector's floor. */
static void test_kill_leader_then_all_agree_on_1(void **state)
{
	(void)state;
	STEP_MS(500);
	ASSERT_ALL_LEADER(0);
	KILL(0);
	/* Its last heartbeat went out at most one interval before the crash:
	 * silence is at most the detector's floor here, so no one suspects. */
	STEP_MS(TIMEOUT_MIN_MS - HEARTBEAT_MS);
	ASSERT_ALL_LEADER(0);
	unsigned ms = STEP_UNTIL_ALL_LEADER(1, FAILOVER_MAX_MS);
	assert_true(ms <= 2 * HEARTBEAT_MS);
	/* 0's last heartbeat (ready, hearing everyone) is still stored, but a
	 * suspected member's information is not used. */
	assert_true(C->o[1].peers[0].ready);
	assert_int_equal(C->o[1].peers[0].alive_mask, (1u << C->n) - 1);
	STEP_MS(500);
	ASSERT_ALL_LEADER(1);
}

/* In five, two crashes still leave a majority: the lowest survivor leads. */
static void test_five_lose_two_then_all_agree_on_2(void **state)
{
	(void)state;
	STEP_MS(500);
	ASSERT_ALL_LEADER(0);
	KILL(0);
	KILL(1);
	STEP_UNTIL_ALL_LEADER(2, FAILOVER_MAX_MS);
	/* A third crash leaves no majority: no one leads. */
	KILL(2);
	STEP_UNTIL_ALL_LEADER(CTL_NONE, FAILOVER_MAX_MS);
}

/* A member partitioned alone cannot hear a majority: it follows no one,
 * while the rest carry on with the leader they had. */
static void test_partitioned_member_has_no_leader(void **state)
{
	(void)state;
	STEP_MS(500);
	isolate(C, 4);
	STEP_MS(FAILOVER_MAX_MS);
	ASSERT_LEADER(4, CTL_NONE);
	for (uint8_t i = 0; i < 4; i++)
		ASSERT_LEADER(i, 0);
	heal(C);
	STEP_UNTIL_ALL_LEADER(0, 20);
}

/* The leader itself partitioned away steps down; the majority side elects
 * the next id. Healing does not give leadership back to 0 (it was: issue 8,
 * failback): 0 stopped claiming while cut off, 1 claims, so all follow 1. */
static void test_partitioned_leader_steps_down(void **state)
{
	(void)state;
	STEP_MS(500);
	isolate(C, 0);
	STEP_MS(FAILOVER_MAX_MS);
	ASSERT_LEADER(0, CTL_NONE);
	for (uint8_t i = 1; i < C->n; i++)
		ASSERT_LEADER(i, 1);
	heal(C);
	STEP_UNTIL_ALL_LEADER(1, 20);
	STEP_MS(500);
	ASSERT_ALL_LEADER(1);
}

/* Minority {3, 4} against majority {0, 1, 2}. */
static void test_minority_side_has_no_leader(void **state)
{
	(void)state;
	STEP_MS(500);
	for (uint8_t a = 0; a < 3; a++) {
		cut(C, a, 3);
		cut(C, a, 4);
	}
	STEP_MS(FAILOVER_MAX_MS);
	ASSERT_LEADER(0, 0);
	ASSERT_LEADER(1, 0);
	ASSERT_LEADER(2, 0);
	ASSERT_LEADER(3, CTL_NONE);
	ASSERT_LEADER(4, CTL_NONE);
}

/* A member that is not ready (recovering) is never chosen, even as the
 * lowest id. Once ready it does not take over from the leader that claims
 * (this test expected it to, before issue 8 made leadership sticky); it
 * leads when that leader stops being ready. */
static void test_not_ready_member_never_chosen(void **state)
{
	(void)state;
	SET_READY(0, false);
	for (unsigned ms = 0; ms < 500; ms++) {
		STEP_MS(1);
		for (uint8_t i = 0; i < C->n; i++)
			assert_int_not_equal(LEADER(i), 0);
	}
	ASSERT_ALL_LEADER(1);
	SET_READY(0, true);
	STEP_MS(500);
	ASSERT_ALL_LEADER(1);
	/* A leader that stops being ready hands over, to the lowest candidate
	 * as no other claims. */
	SET_READY(1, false);
	STEP_UNTIL_ALL_LEADER(0, 10);
	SET_READY(1, true);
	STEP_MS(500);
	ASSERT_ALL_LEADER(0);
}

/* No member ready: no leader anywhere. */
static void test_no_ready_member_no_leader(void **state)
{
	(void)state;
	for (uint8_t i = 0; i < C->n; i++)
		SET_READY(i, false);
	STEP_MS(100);
	ASSERT_ALL_LEADER(CTL_NONE);
}

/* Member 0's links to 2, 3 and 4 lose everything it sends; it still hears
 * everyone, and 1 still hears it. 0 hears a majority but is heard by few
 * (itself and 1), which it and 1 learn from the others' heartbeats. Without
 * the heard-by-a-majority rule, 0 and 1 would follow 0 while 2, 3, 4 follow
 * 1; with it, all agree on 1, which can reach a majority. When the links
 * heal, 1 keeps leading (before issue 8 the test expected 0 back). */
static void test_heard_by_few_is_not_chosen(void **state)
{
	(void)state;
	STEP_MS(500);
	cut_one_way(C, 0, 2);
	cut_one_way(C, 0, 3);
	cut_one_way(C, 0, 4);
	STEP_UNTIL_ALL_LEADER(1, FAILOVER_MAX_MS);
	STEP_MS(500);
	ASSERT_ALL_LEADER(1);
	uint32_t mask = ctl_fd_alive_mask(&C->o[0].fd, C->now_ns);
	assert_int_equal(mask, 0x1f); /* 0 still hears everyone */
	heal(C);
	STEP_MS(500);
	ASSERT_ALL_LEADER(1);
}

/* A restart faster than the detector: the others still consider 0 alive and
 * drop its restarted heartbeats (its counter went back to 0) as stale, until
 * they suspect it; then they accept its new counter and 0 leads again. It
 * does because it is ready at once here (a real restart recovers first):
 * hearing no claimant (1 and 2 still name 0, not themselves), it claims,
 * and once accepted it is the lowest claimant. */
static void test_fast_restart_is_seen_after_timeout(void **state)
{
	(void)state;
	STEP_MS(500);
	KILL(0);
	STEP_MS(5);
	RESTART(0);
	SET_READY(0, true);
	STEP_MS(10);
	assert_true(C->o[1].drops.stale > 0);
	assert_true(C->o[2].drops.stale > 0);
	STEP_UNTIL_ALL_LEADER(0, FAILOVER_MAX_MS);
	STEP_MS(100);
	ASSERT_ALL_LEADER(0);
}

/* Heartbeat seqs tell a late member from a lost link (fd.h, rule 3). 1
 * stalls for 45 ms (past the 30 ms timeout), sending nothing, then its
 * next heartbeat carries the next seq: a false suspicion, and 0 waits
 * longer for it. Its heartbeats to 0 lost for 45 ms (it goes on sending):
 * the seq skips, no false suspicion. Restarted after 45 ms: the seq goes
 * back, none either. */
static void test_seq_tells_late_from_lost(void **state)
{
	(void)state;
	const struct ctl_fd_member *m = &C->o[0].fd.members[1];
	STEP_MS(200);
	KILL(1);
	STEP_MS(45);
	C->down[1] = false;
	STEP_MS(10);
	assert_int_equal(m->false_suspicions, 1);
	assert_true(ctl_fd_timeout_ns(&C->o[0].fd, 1) >= MS(90));

	STEP_MS(200);
	C->cut[1][0] = true;
	STEP_MS(200); /* past the backoff */
	assert_false(ctl_fd_alive(&C->o[0].fd, 1, C->now_ns));
	C->cut[1][0] = false;
	STEP_MS(10);
	assert_true(ctl_fd_alive(&C->o[0].fd, 1, C->now_ns));
	assert_int_equal(m->false_suspicions, 1);

	STEP_MS(200);
	KILL(1);
	STEP_MS(200);
	RESTART(1);
	SET_READY(1, true);
	STEP_MS(10);
	assert_true(ctl_fd_alive(&C->o[0].fd, 1, C->now_ns));
	assert_int_equal(m->false_suspicions, 1);
}

/* Issue 8, leadership transfer: a transfer is read from whoever leads, not
 * from the lowest id. 0 hands over to 1; then 1, which leads but is not
 * the lowest id, hands over to 2. With the lowest-id rule only 0's
 * preference counted: the second transfer answered ok and nothing moved. */
static void test_transfer_through_whoever_leads(void **state)
{
	(void)state;
	STEP_MS(500);
	ASSERT_ALL_LEADER(0);
	PREFER(0, 1);
	STEP_UNTIL_ALL_LEADER(1, 20);
	STEP_MS(100);
	ASSERT_ALL_LEADER(1);
	PREFER(1, 2);
	STEP_UNTIL_ALL_LEADER(2, 20);
	STEP_MS(500);
	ASSERT_ALL_LEADER(2);
	/* 0 still names 1 (ctl_policy clears a preference once the transfer is
	 * done; this fixture does not): a preference counts only from the
	 * member that leads, so 0's is ignored. */
	assert_int_equal(C->o[0].preferred, 1);
	/* And cancelling at the leader leaves it leading (sticky). */
	PREFER(1, CTL_NONE);
	STEP_MS(500);
	ASSERT_ALL_LEADER(2);
}

/* A leader handing over still claims until the target does. As ctl_policy
 * does, the old leader drops its preference once the target leads. With
 * immediate delivery, 2 hears 1 hand over (1's hint now names 2) before
 * it ticks itself: were a handing-over leader no longer a claimant, nobody
 * would claim for that heartbeat, the lowest candidate 0 (preferring no
 * one) would be the natural leader, and leadership would go to 0, not 2. */
static void test_transfer_handover_still_claims(void **state)
{
	(void)state;
	STEP_MS(500);
	PREFER(0, 1);
	STEP_UNTIL_ALL_LEADER(1, 20);
	STEP_MS(20); /* 1 claims */
	assert_true(CLAIMS_AT(0, 1));
	PREFER(0, CTL_NONE);
	STEP_MS(100);
	ASSERT_ALL_LEADER(1);
	PREFER(1, 2);
	for (unsigned ms = 0; ms < 100; ms++) {
		STEP_MS(1);
		for (uint8_t i = 0; i < C->n; i++)
			assert_int_not_equal(LEADER(i), 0);
	}
	ASSERT_ALL_LEADER(2);
	PREFER(1, CTL_NONE);
	STEP_MS(500);
	ASSERT_ALL_LEADER(2);
	/* A preference at a member that does not lead moves nothing. */
	PREFER(0, 1);
	STEP_MS(500);
	ASSERT_ALL_LEADER(2);
}

/* Issue 8, failback: member 0 returns after 1 took over; 1 keeps leading
 * once 0 is recovered and ready, instead of handing leadership back (two
 * leader changes per fault of member 0). */
static void test_returning_member_0_does_not_take_leadership_back(void **state)
{
	(void)state;
	STEP_MS(500);
	KILL(0);
	STEP_UNTIL_ALL_LEADER(1, FAILOVER_MAX_MS);
	STEP_MS(500);
	RESTART(0); /* starts not ready, seq back at 0 */
	STEP_MS(300);
	ASSERT_ALL_LEADER(1);
	SET_READY(0, true);
	for (unsigned ms = 0; ms < 1000; ms++) {
		STEP_MS(1);
		ASSERT_ALL_LEADER(1);
	}
	/* 0 is a candidate, just not a claimant: it follows 1. */
	assert_true(CLAIMS_AT(0, 1));
	assert_false(CLAIMS_AT(1, 0));
}

/* Issue 8: two claimants (each side of a bridged partition chose its own
 * leader) converge to one once they hear each other: the lowest claimant,
 * even though member 0, a non-claiming candidate, is lower still.
 * Five members; 2 hears everyone; {0, 1} and {3, 4} do not hear each other.
 * 0 and 2 start not ready, so {0, 1, 2} follows 1 and {2, 3, 4} follows 3. */
static void test_two_claimants_converge_to_one(void **state)
{
	(void)state;
	SET_READY(0, false);
	SET_READY(2, false);
	for (uint8_t a = 0; a < 2; a++) {
		cut(C, a, 3);
		cut(C, a, 4);
	}
	STEP_MS(500);
	ASSERT_LEADER(0, 1);
	ASSERT_LEADER(1, 1);
	ASSERT_LEADER(3, 3);
	ASSERT_LEADER(4, 3);
	assert_true(CLAIMS_AT(2, 1));
	assert_true(CLAIMS_AT(2, 3));
	ASSERT_LEADER(2, 1); /* the lowest claimant it hears */
	heal(C);
	SET_READY(0, true);
	SET_READY(2, true);
	STEP_UNTIL_ALL_LEADER(1, FAILOVER_MAX_MS);
	for (unsigned ms = 0; ms < 500; ms++) {
		STEP_MS(1);
		ASSERT_ALL_LEADER(1);
	}
	for (uint8_t i = 0; i < C->n; i++)
		if (i != 3)
			assert_false(CLAIMS_AT(i, 3));
}

/* Issue 8: a claimant that loses its majority is dropped, by everyone and
 * by itself. Leader 2 (0 and 1 were not ready at the start, then became
 * ready: 2 kept leading) loses its outgoing links to 0, 1 and 3: it still
 * hears everyone but only 4 hears it, so it is not heard by a majority and
 * stops claiming. All, 2 included, move to the lowest candidate, 0; when
 * the links heal, 0 keeps leading. */
static void test_claimant_that_loses_its_majority_is_dropped(void **state)
{
	(void)state;
	SET_READY(0, false);
	SET_READY(1, false);
	STEP_UNTIL_ALL_LEADER(2, 20);
	STEP_MS(50); /* 2's heartbeats now claim */
	SET_READY(0, true);
	SET_READY(1, true);
	STEP_MS(300);
	ASSERT_ALL_LEADER(2);
	cut_one_way(C, 2, 0);
	cut_one_way(C, 2, 1);
	cut_one_way(C, 2, 3);
	STEP_UNTIL_ALL_LEADER(0, FAILOVER_MAX_MS);
	STEP_MS(100);
	ASSERT_ALL_LEADER(0);
	assert_false(CLAIMS_AT(4, 2)); /* 4 still hears 2: no longer a claim */
	heal(C);
	for (unsigned ms = 0; ms < 500; ms++) {
		STEP_MS(1);
		ASSERT_ALL_LEADER(0);
	}
}

/* Voting members are preferred; a non-voting one leads only when no
 * voting member can (someone must lead for laggards to catch up). */
static void test_voting_members_preferred(void **state)
{
	(void)state;
	ctl_omega_set_member(&C->o[0], false);
	STEP_MS(50);
	ASSERT_ALL_LEADER(1);
	ctl_omega_set_member(&C->o[1], false);
	ctl_omega_set_member(&C->o[2], false);
	STEP_MS(50);
	ASSERT_ALL_LEADER(0);
}

/* Heartbeats with a bad sender or a field out of range are dropped and
 * counted, and change nothing. */
static void test_bad_heartbeats_ignored(void **state)
{
	(void)state;
	STEP_MS(50);
	struct ctl_omega *o = &C->o[1];
	struct ctl_omega before;
	memcpy(&before, o, sizeof(before));
	const struct ctl_heartbeat good = {
		.from = 2,
		.leader_hint = 0,
		.ready = 1,
		.alive_mask = 0x7,
		.seq = 1000,
	};
	struct ctl_heartbeat hb;

	hb = good, hb.from = 3;
	assert_false(ctl_omega_receive(o, C->now_ns, &hb));
	hb = good, hb.from = CTL_MEMBERS_MAX;
	assert_false(ctl_omega_receive(o, C->now_ns, &hb));
	hb = good, hb.from = CTL_NONE;
	assert_false(ctl_omega_receive(o, C->now_ns, &hb));
	hb = good, hb.from = 1; /* self */
	hb.alive_mask = 0x7;
	assert_false(ctl_omega_receive(o, C->now_ns, &hb));
	assert_true(o->drops.bad_from == 4);

	hb = good, hb.leader_hint = 3;
	assert_false(ctl_omega_receive(o, C->now_ns, &hb));
	hb = good, hb.ready = CTL_READY_NON_VOTING + 1;
	assert_false(ctl_omega_receive(o, C->now_ns, &hb));
	hb = good, hb.alive_mask = 0xf;
	assert_false(ctl_omega_receive(o, C->now_ns, &hb));
	hb = good, hb.alive_mask = 0x3; /* without the sender */
	assert_false(ctl_omega_receive(o, C->now_ns, &hb));
	assert_true(o->drops.malformed == 4);

	o->drops = before.drops;
	assert_memory_equal(&before, o, sizeof(before));

	/* The same heartbeat, well formed, is applied; a replay is stale. */
	assert_true(ctl_omega_receive(o, C->now_ns, &good));
	assert_false(ctl_omega_receive(o, C->now_ns, &good));
	hb = good, hb.seq = good.seq - 1;
	assert_false(ctl_omega_receive(o, C->now_ns, &hb));
	assert_true(o->drops.stale == 2);
}

/* One member alone is its own majority. */
static void test_single_member_leads_itself(void **state)
{
	(void)state;
	cluster_init(&cluster, 1);
	ASSERT_ALL_LEADER(0);
	STEP_MS(100);
	ASSERT_ALL_LEADER(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_all_agree_on_leader_0, setup3),
		cmocka_unit_test_setup(test_all_agree_on_leader_0, setup5),
		cmocka_unit_test_setup(test_heartbeat_contents, setup3),
		cmocka_unit_test_setup(test_tick_survives_clock_going_backwards,
				       setup3),
		cmocka_unit_test_setup(test_kill_leader_then_all_agree_on_1,
				       setup3),
		cmocka_unit_test_setup(test_kill_leader_then_all_agree_on_1,
				       setup5),
		cmocka_unit_test_setup(test_five_lose_two_then_all_agree_on_2,
				       setup5),
		cmocka_unit_test_setup(test_partitioned_member_has_no_leader,
				       setup5),
		cmocka_unit_test_setup(test_partitioned_leader_steps_down,
				       setup3),
		cmocka_unit_test_setup(test_partitioned_leader_steps_down,
				       setup5),
		cmocka_unit_test_setup(test_minority_side_has_no_leader,
				       setup5),
		cmocka_unit_test_setup(test_not_ready_member_never_chosen,
				       setup3),
		cmocka_unit_test_setup(test_not_ready_member_never_chosen,
				       setup5),
		cmocka_unit_test_setup(test_no_ready_member_no_leader, setup3),
		cmocka_unit_test_setup(test_heard_by_few_is_not_chosen, setup5),
		cmocka_unit_test_setup(test_fast_restart_is_seen_after_timeout,
				       setup3),
		cmocka_unit_test_setup(test_seq_tells_late_from_lost, setup3),
		cmocka_unit_test_setup(test_voting_members_preferred, setup3),
		cmocka_unit_test_setup(test_bad_heartbeats_ignored, setup3),
		cmocka_unit_test(test_single_member_leads_itself),
		cmocka_unit_test_setup(test_transfer_through_whoever_leads,
				       setup3),
		cmocka_unit_test_setup(test_transfer_through_whoever_leads,
				       setup5),
		cmocka_unit_test_setup(test_transfer_handover_still_claims,
				       setup3),
		cmocka_unit_test_setup(test_transfer_handover_still_claims,
				       setup3_immediate),
		cmocka_unit_test_setup(test_transfer_handover_still_claims,
				       setup5_immediate),
		cmocka_unit_test_setup(
			test_returning_member_0_does_not_take_leadership_back,
			setup3),
		cmocka_unit_test_setup(
			test_returning_member_0_does_not_take_leadership_back,
			setup5),
		cmocka_unit_test_setup(test_two_claimants_converge_to_one,
				       setup5),
		cmocka_unit_test_setup(
			test_claimant_that_loses_its_majority_is_dropped,
			setup5),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
