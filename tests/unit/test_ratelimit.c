/* Unit tests for the pure log-line rate limiter (control/ratelimit.c):
 * at most one line per source per interval, each counting the events it
 * stands for, held-back events reported once their source goes quiet,
 * and a bounded table under a flood of sources. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ratelimit.h"

#define S(n) ((uint64_t)(n)*1000 * 1000 * 1000)
#define MS(n) ((uint64_t)(n)*1000 * 1000)

struct fixture {
	struct ctl_ratelimit rl;
	uint64_t now_ns;
	struct ctl_ratelimit_line line;
};

static int setup(void **state)
{
	static struct fixture f;
	memset(&f, 0, sizeof(f));
	ctl_ratelimit_init(&f.rl, S(10));
	f.now_ns = S(100);
	*state = &f;
	return 0;
}

#define F ((struct fixture *)*state)
#define AT_S(n) (F->now_ns = S(100) + S(n))
#define EVENT(key, note) \
	ctl_ratelimit_event(&F->rl, (key), (note), 1, F->now_ns, &F->line)
#define DUE() ctl_ratelimit_due(&F->rl, F->now_ns, &F->line)
#define ASSERT_LINE(k, nt, c)                                                  \
	do {                                                                   \
		assert_int_equal(F->line.key, (k));                            \
		assert_int_equal(F->line.note, (nt));                          \
		assert_int_equal(F->line.count, (c));                          \
	} while (0)

/* The first event of a source is logged at once; the next ones within the
 * interval are held, and the first one after it reports them all. */
static void test_first_then_one_per_interval(void **state)
{
	assert_true(EVENT(7, 1));
	ASSERT_LINE(7, 1, 1);
	for (int i = 0; i < 5; i++)
		assert_false(EVENT(7, 2));
	AT_S(9);
	assert_false(EVENT(7, 3));
	assert_false(DUE()); /* the interval is not over */
	AT_S(10);
	assert_true(EVENT(7, 4));
	ASSERT_LINE(7, 4, 7); /* 5 + 1 held, and this one */
	assert_false(DUE());
}

/* Held events of a source that went quiet come out on a tick once its
 * interval is over, once. */
static void test_due_reports_a_quiet_source(void **state)
{
	assert_true(EVENT(7, 1));
	assert_false(EVENT(7, 1));
	assert_false(EVENT(7, 9));
	AT_S(3);
	assert_false(DUE());
	AT_S(10);
	assert_true(DUE());
	ASSERT_LINE(7, 9, 2);
	assert_false(DUE());
	/* Its next event is within the interval of that line: held. */
	AT_S(15);
	assert_false(EVENT(7, 1));
	AT_S(20);
	assert_true(DUE());
	ASSERT_LINE(7, 1, 1);
}

/* Sources are limited one by one, not together. */
static void test_sources_are_independent(void **state)
{
	assert_true(EVENT(1, 0));
	assert_true(EVENT(2, 0));
	assert_false(EVENT(1, 0));
	assert_false(EVENT(2, 0));
	AT_S(10);
	assert_true(EVENT(2, 0));
	ASSERT_LINE(2, 0, 2);
	assert_true(DUE());
	ASSERT_LINE(1, 0, 1);
}

/* A flood from many sources: the table's sources each get their lines,
 * the rest share one "others" entry, limited like a source. */
static void test_flood_of_sources_is_bounded(void **state)
{
	unsigned lines = 0;
	for (uint64_t k = 0; k < 1000; k++)
		lines += EVENT(k, k);
	assert_int_equal(lines, CTL_RATELIMIT_SOURCES + 1);
	AT_S(10);
	unsigned due = 0;
	uint64_t reported = 0;
	while (DUE()) {
		due++;
		reported += F->line.count;
		if (F->line.key == CTL_RATELIMIT_OTHERS)
			assert_int_equal(F->line.note, 999);
	}
	/* Only "others" held anything: 1000 - 8 sources - its first. */
	assert_int_equal(due, 1);
	assert_int_equal(reported, 1000 - CTL_RATELIMIT_SOURCES - 1);
}

/* An entry whose line would be due anyway, with nothing held, is given
 * to a new source; one with events held is not. */
static void test_entries_are_reused_only_when_nothing_is_lost(void **state)
{
	for (uint64_t k = 0; k < CTL_RATELIMIT_SOURCES; k++)
		assert_true(EVENT(k, 0));
	assert_false(EVENT(0, 0)); /* source 0 now holds one */
	AT_S(10);
	assert_true(EVENT(100, 0)); /* takes a quiet entry (1..7) */
	ASSERT_LINE(100, 0, 1);
	assert_true(DUE()); /* source 0 kept its entry and its event */
	ASSERT_LINE(0, 0, 1);
	assert_false(DUE());
}

/* Counts larger than one (the dataplane's counter, read once a tick). */
static void test_counts_add_up(void **state)
{
	assert_true(ctl_ratelimit_event(&F->rl, 3, 0, 40, F->now_ns,
					&F->line));
	ASSERT_LINE(3, 0, 40);
	AT_S(1);
	assert_false(ctl_ratelimit_event(&F->rl, 3, 0, 5, F->now_ns,
					 &F->line));
	AT_S(2);
	assert_false(ctl_ratelimit_event(&F->rl, 3, 0, 6, F->now_ns,
					 &F->line));
	AT_S(12);
	assert_true(DUE());
	ASSERT_LINE(3, 0, 11);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup(f, setup)
		T(test_first_then_one_per_interval),
		T(test_due_reports_a_quiet_source),
		T(test_sources_are_independent),
		T(test_flood_of_sources_is_bounded),
		T(test_entries_are_reused_only_when_nothing_is_lost),
		T(test_counts_add_up),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
