/* Unit tests for the pure adaptive failure detector (control/fd.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fd.h"

#define MS(n) ((uint64_t)(n)*1000 * 1000)

/* One detector, as member 0 of a cluster of three, on a fake clock. */
struct fd_fixture {
	struct ctl_fd_config cfg;
	struct ctl_fd fd;
	uint64_t now_ns;
};

static int fd_setup(void **state)
{
	static struct fd_fixture f;
	memset(&f, 0, sizeof(f));
	ctl_fd_config_default(&f.cfg, 3, 0);
	f.now_ns = MS(1000); /* not zero, so that going backwards is possible */
	ctl_fd_init(&f.fd, &f.cfg, f.now_ns);
	*state = &f;
	return 0;
}

#define F ((struct fd_fixture *)*state)
#define ADVANCE_MS(n) (F->now_ns += MS(n))
#define HEAR(m) ctl_fd_heard(&F->fd, (m), F->now_ns)
#define ALIVE(m) ctl_fd_alive(&F->fd, (m), F->now_ns)
#define TIMEOUT(m) ctl_fd_timeout_ns(&F->fd, (m))
#define ASSERT_TIMEOUT_BOUNDED(m)                                              \
	do {                                                                   \
		assert_true(TIMEOUT(m) >= F->cfg.timeout_min_ns);              \
		assert_true(TIMEOUT(m) <= F->cfg.timeout_max_ns);              \
	} while (0)

/* Member m sends a heartbeat every interval_ms, count times. */
static void hear_every(void **state, uint8_t m, uint64_t interval_ms,
		       unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		ADVANCE_MS(interval_ms);
		HEAR(m);
		assert_true(ALIVE(m));
		ASSERT_TIMEOUT_BOUNDED(m);
	}
}

static void test_config_default_is_valid(void **state)
{
	(void)state;
	struct ctl_fd_config cfg;
	ctl_fd_config_default(&cfg, 5, 4);
	assert_null(ctl_fd_config_check(&cfg));
	assert_int_equal(cfg.member_count, 5);
	assert_int_equal(cfg.self_id, 4);
	assert_true(cfg.heartbeat_interval_ns == MS(5));
	assert_true(cfg.timeout_min_ns == MS(30));
	assert_true(cfg.timeout_max_ns == MS(1000));
	ctl_fd_config_default(&cfg, 1, 0);
	assert_null(ctl_fd_config_check(&cfg));
	ctl_fd_config_default(&cfg, CTL_MEMBERS_MAX, CTL_MEMBERS_MAX - 1);
	assert_null(ctl_fd_config_check(&cfg));
}

/* The check names the field it rejects. */
#define ASSERT_CONFIG_REJECTS(cfg, field)                                      \
	do {                                                                   \
		const char *why_ = ctl_fd_config_check(&(cfg));                \
		assert_non_null(why_);                                         \
		assert_non_null(strstr(why_, (field)));                        \
	} while (0)

static void test_config_check_rejects_bad_fields(void **state)
{
	(void)state;
	struct ctl_fd_config cfg;

	ctl_fd_config_default(&cfg, 0, 0);
	ASSERT_CONFIG_REJECTS(cfg, "member_count");
	ctl_fd_config_default(&cfg, CTL_MEMBERS_MAX + 1, 0);
	ASSERT_CONFIG_REJECTS(cfg, "member_count");

	ctl_fd_config_default(&cfg, 3, 3);
	ASSERT_CONFIG_REJECTS(cfg, "self_id");

	ctl_fd_config_default(&cfg, 3, 0);
	cfg.timeout_min_ns = cfg.timeout_max_ns + 1;
	ASSERT_CONFIG_REJECTS(cfg, "timeout_min_ns");

	ctl_fd_config_default(&cfg, 3, 0);
	cfg.heartbeat_interval_ns = 0;
	ASSERT_CONFIG_REJECTS(cfg, "heartbeat_interval_ns");

	ctl_fd_config_default(&cfg, 3, 0);
	cfg.heartbeat_interval_ns = cfg.timeout_max_ns;
	ASSERT_CONFIG_REJECTS(cfg, "heartbeat_interval_ns");

	ctl_fd_config_default(&cfg, 3, 0);
	cfg.timeout_min_ns = 0;
	ASSERT_CONFIG_REJECTS(cfg, "timeout_min_ns");

	ctl_fd_config_default(&cfg, 3, 0);
	cfg.timeout_max_ns = CTL_FD_TIMEOUT_LIMIT_NS + 1;
	ASSERT_CONFIG_REJECTS(cfg, "timeout_max_ns");

	assert_non_null(ctl_fd_config_check(NULL));
}

static void test_alive_after_heartbeats(void **state)
{
	for (unsigned i = 0; i < 40; i++) {
		ADVANCE_MS(5);
		HEAR(1);
		HEAR(2);
		assert_true(ALIVE(0));
		assert_true(ALIVE(1));
		assert_true(ALIVE(2));
	}
	assert_int_equal(ctl_fd_alive_mask(&F->fd, F->now_ns), 0x7);
	/* Only 2 keeps sending: 1 is suspected after its timeout. */
	hear_every(state, 2, 5, 40);
	assert_false(ALIVE(1));
	assert_int_equal(ctl_fd_alive_mask(&F->fd, F->now_ns), 0x5);
	HEAR(1);
	assert_int_equal(ctl_fd_alive_mask(&F->fd, F->now_ns), 0x7);
}

static void test_suspected_after_silence_beyond_timeout(void **state)
{
	hear_every(state, 1, 5, 100);
	/* Steady heartbeats: the timeout settles at its lower bound. */
	assert_true(TIMEOUT(1) == F->cfg.timeout_min_ns);
	F->now_ns += TIMEOUT(1);
	assert_true(ALIVE(1)); /* silence == timeout: not yet */
	F->now_ns += 1;
	assert_false(ALIVE(1));
	assert_int_equal(ctl_fd_alive_mask(&F->fd, F->now_ns) & 0x2, 0);
	/* A late heartbeat brings it back at once. */
	HEAR(1);
	assert_true(ALIVE(1));
}

static void test_timeout_adapts_to_jitter_and_back(void **state)
{
	hear_every(state, 1, 5, 100);
	const uint64_t steady_ns = TIMEOUT(1);
	assert_true(steady_ns == F->cfg.timeout_min_ns);

	/* Jitter: heartbeats alternate 1 ms and 28 ms apart, each within
	 * the timeout (a later one would be a false suspicion: rule 3). */
	for (unsigned i = 0; i < 20; i++) {
		hear_every(state, 1, 1, 1);
		hear_every(state, 1, 28, 1);
	}
	const uint64_t jittery_ns = TIMEOUT(1);
	assert_true(jittery_ns > MS(100));
	assert_true(jittery_ns < F->cfg.timeout_max_ns);

	/* Steady again for a second: the timeout shrinks back to the floor. */
	hear_every(state, 1, 5, 200);
	assert_true(TIMEOUT(1) == F->cfg.timeout_min_ns);

	/* Wild gaps of 900 ms, heartbeats lost in between (so no backoff,
	 * rule 3): capped at timeout_max, never above. */
	for (unsigned i = 0; i < 20; i++) {
		ctl_fd_missed(&F->fd, 1);
		hear_every(state, 1, 900, 1);
	}
	assert_true(TIMEOUT(1) == F->cfg.timeout_max_ns);
	hear_every(state, 1, 5, 400);
	assert_true(TIMEOUT(1) == F->cfg.timeout_min_ns);
}

/* One long outage is a failure, not jitter: it does not inflate the timeout
 * for long once heartbeats resume. */
static void test_outage_does_not_inflate_timeout_for_long(void **state)
{
	hear_every(state, 1, 5, 100);
	ADVANCE_MS(3600 * 1000); /* an hour of silence */
	assert_false(ALIVE(1));
	HEAR(1);
	assert_true(ALIVE(1));
	ASSERT_TIMEOUT_BOUNDED(1);
	/* The gap counts as timeout_max at most: back to the floor within
	 * 50 heartbeats (an uncapped hour would take about 100). */
	hear_every(state, 1, 5, 50);
	assert_true(TIMEOUT(1) == F->cfg.timeout_min_ns);
}

static void test_grace_period_at_start(void **state)
{
	/* Never heard from: alive for timeout_max after init, then not. */
	assert_true(TIMEOUT(1) == F->cfg.timeout_max_ns);
	assert_int_equal(ctl_fd_alive_mask(&F->fd, F->now_ns), 0x7);
	F->now_ns += F->cfg.timeout_max_ns;
	assert_true(ALIVE(1));
	assert_true(ALIVE(2));
	F->now_ns += 1;
	assert_false(ALIVE(1));
	assert_false(ALIVE(2));
	assert_true(ALIVE(0));
	assert_int_equal(ctl_fd_alive_mask(&F->fd, F->now_ns), 0x1);
}

/* Once heard, the adaptive timeout replaces the grace period. */
static void test_first_heartbeat_ends_grace(void **state)
{
	ADVANCE_MS(10);
	HEAR(1);
	assert_true(TIMEOUT(1) < F->cfg.timeout_max_ns);
	ASSERT_TIMEOUT_BOUNDED(1);
	ADVANCE_MS(100);
	assert_false(ALIVE(1));
	assert_true(ALIVE(2)); /* still in its grace */
}

static void test_clock_going_backwards(void **state)
{
	hear_every(state, 1, 5, 100);
	const uint64_t last_ns = F->now_ns;

	/* Queries before the last heartbeat, or even before init: zero
	 * elapsed time, alive, and no wrap-around to a huge silence. */
	F->now_ns = last_ns - MS(500);
	assert_true(ALIVE(1));
	assert_true(ALIVE(2));
	F->now_ns = 0;
	assert_true(ALIVE(1));
	assert_true(ALIVE(2));

	/* A heartbeat stamped in the past counts as zero elapsed. */
	F->now_ns = last_ns - MS(500);
	HEAR(1);
	ASSERT_TIMEOUT_BOUNDED(1);
	assert_true(F->fd.members[1].last_heard_ns == last_ns);

	/* Time resumes from the last heartbeat, not from the stale stamp. */
	F->now_ns = last_ns + TIMEOUT(1);
	assert_true(ALIVE(1));
	F->now_ns += 1;
	assert_false(ALIVE(1));
}

static void test_out_of_range_member_ignored(void **state)
{
	struct ctl_fd before;
	ADVANCE_MS(5);
	memcpy(&before, &F->fd, sizeof(before));
	HEAR(3);
	HEAR(CTL_MEMBERS_MAX);
	HEAR(CTL_NONE);
	HEAR(0); /* self: always alive, nothing to learn */
	assert_memory_equal(&before, &F->fd, sizeof(before));

	assert_false(ALIVE(3));
	assert_false(ALIVE(CTL_NONE));
	assert_true(TIMEOUT(3) == F->cfg.timeout_max_ns);
	F->now_ns += MS(3600 * 1000);
	assert_true(ALIVE(0));
	assert_int_equal(ctl_fd_alive_mask(&F->fd, F->now_ns), 0x1);
}

/* ---- Stalls and false suspicions (fd.h, rules 2 to 4) ---- */

#define RAN() ctl_fd_ran(&F->fd, F->now_ns)

/* A running detector: every millisecond it runs; every 5 ms a heartbeat
 * arrives from each member in `heard` (bit i for member i), for ms
 * milliseconds. */
static void run_ms(void **state, uint32_t heard, unsigned ms)
{
	for (unsigned i = 0; i < ms; i++) {
		ADVANCE_MS(1);
		RAN();
		for (uint8_t m = 1; m < 3; m++)
			if ((heard & (1u << m)) && F->now_ns % MS(5) == 0)
				HEAR(m);
		ASSERT_TIMEOUT_BOUNDED(1);
	}
}
#define ONE 0x2u
#define BOTH 0x6u
#define NOBODY 0u

/* Rule 2: while we did not run, heartbeats could not be read; that time
 * is not silence of theirs. After a 200 ms stall of ours (well past the
 * 30 ms timeout) nobody is suspected; a member that stays silent is, once
 * we have run for its timeout. */
static void test_own_stall_is_not_a_suspicion(void **state)
{
	RAN();
	run_ms(state, BOTH, 500);
	assert_true(TIMEOUT(1) == F->cfg.timeout_min_ns);
	assert_true(TIMEOUT(2) == F->cfg.timeout_min_ns);
	assert_int_equal(F->fd.stalls, 0);

	ADVANCE_MS(200); /* stalled: no run, nothing read */
	RAN();
	assert_int_equal(F->fd.stalls, 1);
	assert_true(F->fd.stalled_ns == MS(200) - F->cfg.heartbeat_interval_ns);
	assert_int_equal(ctl_fd_alive_mask(&F->fd, F->now_ns), 0x7);

	/* The heartbeats that were waiting are read: no false suspicion
	 * (rule 3), and the stall is no jitter of theirs either. */
	HEAR(1);
	HEAR(2);
	assert_int_equal(F->fd.members[1].false_suspicions, 0);
	assert_int_equal(F->fd.members[2].false_suspicions, 0);
	assert_true(TIMEOUT(1) == F->cfg.timeout_min_ns);

	/* 2 is gone for real: suspected after its timeout of our running
	 * time, the stall's credit notwithstanding. */
	run_ms(state, ONE, 30);
	assert_true(ALIVE(2));
	run_ms(state, ONE, 1);
	assert_false(ALIVE(2));
	assert_true(ALIVE(1));
}

/* Rule 4: a stall of ours longer than timeout_max is not credited in full:
 * whoever has been silent that long is suspected until heard. */
static void test_own_stall_past_timeout_max_suspects(void **state)
{
	RAN();
	run_ms(state, ONE, 100);
	F->now_ns += F->cfg.timeout_max_ns + 1;
	RAN();
	assert_false(ALIVE(1));
	HEAR(1);
	assert_true(ALIVE(1));
}

/* Rule 1: jitter raises the timeout (for rule 1 alone, heartbeats that
 * stay within it), steadiness brings it back down. */
static void test_jitter_raises_the_timeout(void **state)
{
	hear_every(state, 1, 5, 100);
	assert_true(TIMEOUT(1) == F->cfg.timeout_min_ns);
	for (unsigned i = 0; i < 10; i++) {
		hear_every(state, 1, 2, 1);
		hear_every(state, 1, 20, 1);
	}
	assert_true(TIMEOUT(1) > 2 * F->cfg.timeout_min_ns);
	assert_int_equal(F->fd.members[1].false_suspicions, 0);
	hear_every(state, 1, 5, 100);
	assert_true(TIMEOUT(1) == F->cfg.timeout_min_ns);
}

/* Rule 3: a member suspected, then heard again with no heartbeat lost,
 * was late: its timeout becomes twice that silence, so the same stall of
 * its own is no suspicion next time; the backoff halves every half-life
 * and goes once below timeout_min. */
static void test_false_suspicion_backs_off(void **state)
{
	RAN();
	run_ms(state, ONE, 100);
	assert_true(TIMEOUT(1) == F->cfg.timeout_min_ns);

	/* 1 stalls for 45 ms: suspected, then back. */
	run_ms(state, NOBODY, 45);
	assert_false(ALIVE(1));
	HEAR(1);
	assert_true(ALIVE(1));
	assert_int_equal(F->fd.members[1].false_suspicions, 1);
	assert_true(F->fd.members[1].backoff_ns == MS(90));
	assert_true(TIMEOUT(1) >= MS(90));

	/* The same stall again: not suspected. */
	run_ms(state, ONE, 100);
	run_ms(state, NOBODY, 45);
	assert_true(ALIVE(1));
	HEAR(1);
	assert_int_equal(F->fd.members[1].false_suspicions, 1);

	/* A longer one: suspected, and the backoff grows, up to max. */
	run_ms(state, NOBODY, 400);
	assert_false(ALIVE(1));
	HEAR(1);
	assert_int_equal(F->fd.members[1].false_suspicions, 2);
	assert_true(F->fd.members[1].backoff_ns == MS(800));
	run_ms(state, ONE, 500); /* rule 1 back at the floor */
	assert_true(TIMEOUT(1) == MS(800));
	run_ms(state, NOBODY, 900);
	HEAR(1);
	assert_int_equal(F->fd.members[1].false_suspicions, 3);
	assert_true(TIMEOUT(1) == F->cfg.timeout_max_ns);

	/* Slow decay: halved after each half-life of heartbeats, gone once
	 * below the floor (1000, 500, ..., 31.25 ms, then none). Steady
	 * heartbeats first, so that only the backoff is above the floor. */
	run_ms(state, ONE, 500);
	assert_true(TIMEOUT(1) == F->cfg.timeout_max_ns);
	for (unsigned k = 1; k <= 5; k++) {
		F->now_ns += F->cfg.backoff_half_life_ns - MS(5);
		RAN();
		HEAR(1);
		run_ms(state, ONE, 5);
		assert_true(TIMEOUT(1) == F->cfg.timeout_max_ns >> k);
	}
	F->now_ns += F->cfg.backoff_half_life_ns;
	RAN();
	HEAR(1);
	run_ms(state, ONE, 500);
	assert_true(TIMEOUT(1) == F->cfg.timeout_min_ns);
}

/* Rule 3 is about lateness only: a silence with heartbeats lost (a cut
 * link, a restart), one past timeout_max, or one that was our own stall
 * is no false suspicion. */
static void test_lost_heartbeats_are_no_false_suspicion(void **state)
{
	RAN();
	run_ms(state, ONE, 100);
	run_ms(state, NOBODY, 60);
	assert_false(ALIVE(1));
	ctl_fd_missed(&F->fd, 1); /* its seq skipped */
	HEAR(1);
	assert_int_equal(F->fd.members[1].false_suspicions, 0);
	run_ms(state, ONE, 200);
	assert_true(TIMEOUT(1) == F->cfg.timeout_min_ns);

	run_ms(state, NOBODY, 1001); /* past the bound */
	HEAR(1);
	assert_int_equal(F->fd.members[1].false_suspicions, 0);
	run_ms(state, ONE, 400);
	assert_true(TIMEOUT(1) == F->cfg.timeout_min_ns);

	ADVANCE_MS(60); /* our stall */
	RAN();
	HEAR(1);
	assert_int_equal(F->fd.members[1].false_suspicions, 0);
	ctl_fd_missed(&F->fd, 3); /* out of range, and self: ignored */
	ctl_fd_missed(&F->fd, 0);
	assert_false(F->fd.members[0].missed);
}

/* Rule 4: whatever the backoff and our stalls, a member that crashed is
 * suspected at most timeout_max after its last heartbeat while we run,
 * even if we stall for most of that time. */
static void test_crashed_member_suspected_within_timeout_max(void **state)
{
	RAN();
	run_ms(state, ONE, 100);
	run_ms(state, NOBODY, 900); /* late: backoff to timeout_max */
	HEAR(1);
	assert_true(TIMEOUT(1) == F->cfg.timeout_max_ns);
	const uint64_t last_ns = F->now_ns;
	/* It crashes. We run 1 ms in every 20. */
	while (F->now_ns + MS(20) <= last_ns + F->cfg.timeout_max_ns) {
		ADVANCE_MS(19);
		RAN();
		ADVANCE_MS(1);
		RAN();
		assert_true(ALIVE(1));
	}
	F->now_ns = last_ns + F->cfg.timeout_max_ns;
	RAN();
	assert_true(ALIVE(1));
	F->now_ns += 1;
	RAN();
	assert_false(ALIVE(1));
	assert_true(F->fd.stalls > 0);
}

static void test_config_check_rejects_zero_half_life(void **state)
{
	(void)state;
	struct ctl_fd_config cfg;
	ctl_fd_config_default(&cfg, 3, 0);
	assert_true(cfg.backoff_half_life_ns == MS(60000));
	cfg.backoff_half_life_ns = 0;
	ASSERT_CONFIG_REJECTS(cfg, "backoff_half_life_ns");
}

static void test_majority_helpers(void **state)
{
	(void)state;
	assert_int_equal(ctl_majority(1), 1);
	assert_int_equal(ctl_majority(2), 2);
	assert_int_equal(ctl_majority(3), 2);
	assert_int_equal(ctl_majority(4), 3);
	assert_int_equal(ctl_majority(5), 3);
	assert_int_equal(ctl_majority(7), 4);
	assert_int_equal(ctl_mask_count(0), 0);
	assert_int_equal(ctl_mask_count(0x7f), 7);
	assert_int_equal(ctl_mask_count(0x15), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_default_is_valid),
		cmocka_unit_test(test_config_check_rejects_bad_fields),
		cmocka_unit_test_setup(test_alive_after_heartbeats, fd_setup),
		cmocka_unit_test_setup(
			test_suspected_after_silence_beyond_timeout, fd_setup),
		cmocka_unit_test_setup(test_timeout_adapts_to_jitter_and_back,
				       fd_setup),
		cmocka_unit_test_setup(
			test_outage_does_not_inflate_timeout_for_long,
			fd_setup),
		cmocka_unit_test_setup(test_grace_period_at_start, fd_setup),
		cmocka_unit_test_setup(test_first_heartbeat_ends_grace,
				       fd_setup),
		cmocka_unit_test_setup(test_clock_going_backwards, fd_setup),
		cmocka_unit_test_setup(test_out_of_range_member_ignored,
				       fd_setup),
		cmocka_unit_test_setup(test_own_stall_is_not_a_suspicion,
				       fd_setup),
		cmocka_unit_test_setup(test_own_stall_past_timeout_max_suspects,
				       fd_setup),
		cmocka_unit_test_setup(test_jitter_raises_the_timeout,
				       fd_setup),
		cmocka_unit_test_setup(test_false_suspicion_backs_off,
				       fd_setup),
		cmocka_unit_test_setup(
			test_lost_heartbeats_are_no_false_suspicion, fd_setup),
		cmocka_unit_test_setup(
			test_crashed_member_suspected_within_timeout_max,
			fd_setup),
		cmocka_unit_test(test_config_check_rejects_zero_half_life),
		cmocka_unit_test(test_majority_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
