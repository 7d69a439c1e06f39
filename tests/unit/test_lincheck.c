/* Tests of the linearizability checker (tests/lib/lincheck.c). */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "lincheck.h"

#define NEVER LC_NEVER

static struct lc_op mk(uint8_t kind, uint32_t client, uint64_t call_ns,
                       uint64_t return_ns, uint64_t arg, uint64_t arg2,
                       uint8_t out_ok, uint64_t out)
{
	return (struct lc_op){
		.key = 1,
		.call_ns = call_ns,
		.return_ns = return_ns,
		.kind = kind,
		.out_ok = out_ok,
		.arg = arg,
		.arg2 = arg2,
		.out = out,
		.client = client,
	};
}

/* On key 1, by client c, over [t0, t1]. */
#define PUT(c, t0, t1, v) mk(LC_PUT, (c), (t0), (t1), (v), 0, 0, 0)
#define GET(c, t0, t1, out) mk(LC_GET, (c), (t0), (t1), 0, 0, 0, (out))
#define DEL(c, t0, t1, out) mk(LC_DEL, (c), (t0), (t1), 0, 0, 0, (out))
#define CAS(c, t0, t1, expect, new, ok, out)                                   \
	mk(LC_CAS, (c), (t0), (t1), (expect), (new), (ok), (out))

/* The reply did not say what the op saw. */
static struct lc_op blind(struct lc_op op)
{
	op.out_unknown = 1;
	op.out = 0;
	return op;
}

static struct lc_op on_key(uint64_t key, struct lc_op op)
{
	op.key = key;
	return op;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Checks with no budget; says why when the verdict is not the one expected. */
static enum lc_verdict check(const struct lc_op *ops, size_t n,
                             enum lc_verdict expected, struct lc_report *report)
{
	enum lc_verdict v = lc_check_key(ops, n, 0, report);

	if (v != expected)
		print_message("verdict %d: %s\n", (int)v, report->why);
	return v;
}

#define ASSERT_LINEARIZABLE(ops)                                               \
	do {                                                                   \
		struct lc_report r_;                                           \
		assert_int_equal(check((ops), COUNT(ops), LC_LINEARIZABLE,     \
		                       &r_),                                   \
		                 LC_LINEARIZABLE);                             \
	} while (0)

#define ASSERT_VIOLATION(ops)                                                  \
	do {                                                                   \
		struct lc_report r_;                                           \
		assert_int_equal(check((ops), COUNT(ops), LC_VIOLATION, &r_),  \
		                 LC_VIOLATION);                                \
		assert_true(strlen(r_.why) > 0);                               \
	} while (0)

/* ---- Accepted ----------------------------------------------------------- */

static void test_empty_history(void **state)
{
	struct lc_report r;

	(void)state;
	assert_int_equal(lc_check_key(NULL, 0, 0, &r), LC_LINEARIZABLE);
	assert_int_equal(lc_check_history(NULL, 0, 0, &r), LC_LINEARIZABLE);
	assert_int_equal(lc_check_key(NULL, 0, 0, NULL), LC_LINEARIZABLE);
}

static void test_sequential_accepted(void **state)
{
	struct lc_op ops[] = {
		GET(1, 0, 1, 0),           PUT(1, 2, 3, 10),
		GET(2, 4, 5, 10),          CAS(2, 6, 7, 10, 11, 1, 10),
		CAS(3, 8, 9, 10, 12, 0, 11), GET(1, 10, 11, 11),
		DEL(3, 12, 13, 11),        DEL(2, 14, 15, 0),
		CAS(1, 16, 17, 11, 13, 0, 0), PUT(1, 18, 19, 14),
		GET(3, 20, 21, 14),
	};

	(void)state;
	ASSERT_LINEARIZABLE(ops);
}

static void test_concurrent_put_get_either_order(void **state)
{
	struct lc_op before[] = {PUT(1, 0, 10, 1), GET(2, 5, 15, 0)};
	struct lc_op after[] = {PUT(1, 0, 10, 1), GET(2, 5, 15, 1)};
	struct lc_op puts_then_1[] = {PUT(1, 0, 10, 1), PUT(2, 0, 10, 2),
	                              GET(3, 20, 30, 1), GET(3, 40, 50, 1)};
	struct lc_op puts_then_2[] = {PUT(1, 0, 10, 1), PUT(2, 0, 10, 2),
	                              GET(3, 20, 30, 2), GET(3, 40, 50, 2)};

	(void)state;
	ASSERT_LINEARIZABLE(before);
	ASSERT_LINEARIZABLE(after);
	ASSERT_LINEARIZABLE(puts_then_1);
	ASSERT_LINEARIZABLE(puts_then_2);
}

/* Equal times overlap: only A.return_ns < B.call_ns orders A before B. */
static void test_touching_intervals_are_concurrent(void **state)
{
	struct lc_op touching[] = {PUT(1, 0, 10, 1), GET(2, 10, 20, 0)};
	struct lc_op apart[] = {PUT(1, 0, 10, 1), GET(2, 11, 20, 0)};

	(void)state;
	ASSERT_LINEARIZABLE(touching);
	ASSERT_VIOLATION(apart);
}

/* ---- Rejected ----------------------------------------------------------- */

static void test_stale_read_rejected(void **state)
{
	struct lc_op absent[] = {PUT(1, 0, 10, 1), GET(2, 20, 30, 0)};
	struct lc_op old[] = {PUT(1, 0, 10, 1), PUT(1, 20, 30, 2),
	                      GET(2, 40, 50, 1)};
	struct lc_report r;

	(void)state;
	ASSERT_VIOLATION(absent);
	ASSERT_VIOLATION(old);
	/* The message names the op that fits nowhere. */
	assert_int_equal(check(old, COUNT(old), LC_VIOLATION, &r), LC_VIOLATION);
	assert_non_null(strstr(r.why, "op #2 cannot"));
	assert_non_null(strstr(r.why, "GET -> 1 by client 2 [t=40..50]"));
	assert_int_equal(r.key, 1);
	assert_int_equal(r.ops, 3);
}

static void test_read_of_unwritten_value_rejected(void **state)
{
	struct lc_op ops[] = {PUT(1, 0, 10, 1), GET(2, 5, 15, 7)};

	(void)state;
	ASSERT_VIOLATION(ops);
}

static void test_reads_in_opposite_orders_rejected(void **state)
{
	struct lc_op ops[] = {PUT(1, 0, 10, 1), PUT(2, 0, 10, 2),
	                      GET(3, 20, 30, 1), GET(4, 40, 50, 2)};

	(void)state;
	ASSERT_VIOLATION(ops);
}

static void test_cas_twice_from_same_value_rejected(void **state)
{
	struct lc_op sequential[] = {PUT(1, 0, 1, 1), CAS(2, 2, 3, 1, 2, 1, 1),
	                             CAS(3, 4, 5, 1, 3, 1, 1)};
	struct lc_op concurrent[] = {PUT(1, 0, 1, 1), CAS(2, 2, 9, 1, 2, 1, 1),
	                             CAS(3, 2, 9, 1, 3, 1, 1)};
	struct lc_op one_wins[] = {PUT(1, 0, 1, 1), CAS(2, 2, 9, 1, 2, 1, 1),
	                           CAS(3, 2, 9, 1, 3, 0, 2)};

	(void)state;
	ASSERT_VIOLATION(sequential);
	ASSERT_VIOLATION(concurrent);
	ASSERT_LINEARIZABLE(one_wins);
}

static void test_cas_semantics(void **state)
{
	/* Expected 0 never matches: absent is not a value. */
	struct lc_op on_absent_fails[] = {CAS(1, 0, 1, 0, 5, 0, 0)};
	struct lc_op on_absent_swaps[] = {CAS(1, 0, 1, 0, 5, 1, 0)};
	/* A failed CAS reports the current value. */
	struct lc_op wrong_current[] = {PUT(1, 0, 1, 1),
	                                CAS(2, 2, 3, 9, 5, 0, 0)};

	(void)state;
	ASSERT_LINEARIZABLE(on_absent_fails);
	ASSERT_VIOLATION(on_absent_swaps);
	ASSERT_VIOLATION(wrong_current);
}

static void test_del_wrong_previous_rejected(void **state)
{
	struct lc_op wrong[] = {PUT(1, 0, 1, 1), PUT(1, 2, 3, 2),
	                        DEL(2, 4, 5, 1)};
	struct lc_op right[] = {PUT(1, 0, 1, 1), PUT(1, 2, 3, 2),
	                        DEL(2, 4, 5, 2), DEL(2, 6, 7, 0)};

	(void)state;
	ASSERT_VIOLATION(wrong);
	ASSERT_LINEARIZABLE(right);
}

/* ---- Pending ops -------------------------------------------------------- */

static void test_pending_put_observed_accepted(void **state)
{
	struct lc_op ops[] = {PUT(1, 0, 1, 1), PUT(2, 2, NEVER, 2),
	                      GET(3, 10, 11, 2), GET(3, 12, 13, 2)};

	(void)state;
	ASSERT_LINEARIZABLE(ops);
}

static void test_pending_put_unobserved_accepted(void **state)
{
	struct lc_op ops[] = {PUT(1, 0, 1, 1), PUT(2, 2, NEVER, 2),
	                      GET(3, 10, 11, 1), GET(3, 20, 21, 1),
	                      GET(4, 30, NEVER, 77)};

	(void)state;
	ASSERT_LINEARIZABLE(ops);
}

static void test_pending_put_read_then_older_rejected(void **state)
{
	struct lc_op ops[] = {PUT(1, 0, 1, 1), PUT(2, 2, NEVER, 2),
	                      GET(3, 10, 11, 2), GET(3, 20, 21, 1)};

	(void)state;
	ASSERT_VIOLATION(ops);
}

static void test_pending_cas(void **state)
{
	struct lc_op swapped[] = {PUT(1, 0, 1, 1), CAS(2, 2, NEVER, 1, 2, 0, 0),
	                          GET(3, 10, 11, 2)};
	struct lc_op then_old[] = {PUT(1, 0, 1, 1),
	                           CAS(2, 2, NEVER, 1, 2, 0, 0),
	                           GET(3, 10, 11, 2), GET(3, 20, 21, 1)};
	/* It could only swap from 1, which was gone before it was called. */
	struct lc_op too_late[] = {PUT(1, 0, 1, 1), PUT(1, 2, 3, 3),
	                           CAS(2, 4, NEVER, 1, 2, 0, 0),
	                           GET(3, 10, 11, 2)};

	(void)state;
	ASSERT_LINEARIZABLE(swapped);
	ASSERT_VIOLATION(then_old);
	ASSERT_VIOLATION(too_late);
}

/* A pending op cannot take effect before it is called. */
static void test_pending_put_not_before_call(void **state)
{
	struct lc_op ops[] = {GET(1, 0, 1, 2), PUT(2, 5, NEVER, 2)};

	(void)state;
	ASSERT_VIOLATION(ops);
}

/* Pending DELs are lifted in call order: two must still be usable. */
static void test_pending_dels(void **state)
{
	struct lc_op two[] = {PUT(1, 0, 1, 1),    DEL(2, 5, NEVER, 0),
	                      DEL(3, 6, NEVER, 0), GET(1, 10, 11, 0),
	                      PUT(1, 12, 13, 2),   GET(1, 14, 15, 0)};
	struct lc_op one[] = {PUT(1, 0, 1, 1),  DEL(2, 5, NEVER, 0),
	                      GET(1, 10, 11, 0), PUT(1, 12, 13, 2),
	                      GET(1, 14, 15, 0)};
	/* The second DEL is called at 20: it can clear 2 only after that. */
	struct lc_op late[] = {PUT(1, 0, 1, 1),     DEL(2, 20, NEVER, 0),
	                       DEL(3, 2, NEVER, 0),  GET(1, 3, 4, 0),
	                       PUT(1, 5, 6, 2),      GET(1, 10, 11, 2),
	                       GET(1, 30, 31, 0)};
	struct lc_op too_early[] = {PUT(1, 0, 1, 1),    DEL(2, 20, NEVER, 0),
	                            DEL(3, 2, NEVER, 0), GET(1, 3, 4, 0),
	                            PUT(1, 5, 6, 2),     GET(1, 10, 11, 2),
	                            GET(1, 15, 16, 0)};

	(void)state;
	ASSERT_LINEARIZABLE(two);
	ASSERT_VIOLATION(one);
	ASSERT_LINEARIZABLE(late);
	ASSERT_VIOLATION(too_early);
}

/* ---- Known answers: register histories with the verdict worked out ------
 * Written from the KV register model alone, in the shapes Porcupine's KV
 * tests use: a writer, readers overlapping it, and a read that comes back
 * to an old value. Each comment gives the witness or the reason none
 * exists. */

static void test_known_readers_overlapping_a_write(void **state)
{
	/* PUT 100 over [0,100]; one reader sees it, one that started later
	 * but ended sooner sees absent: GET->0, PUT, GET->100 fits. */
	struct lc_op ok[] = {PUT(0, 0, 100, 100), GET(1, 25, 75, 100),
	                     GET(2, 30, 60, 0)};
	/* Reader 1 saw 200 and returned before reader 2 started, yet reader 2
	 * saw absent: the value went back. */
	struct lc_op bad[] = {PUT(0, 0, 100, 200), GET(1, 10, 30, 200),
	                      GET(2, 40, 90, 0)};

	(void)state;
	ASSERT_LINEARIZABLE(ok);
	ASSERT_VIOLATION(bad);
}

static void test_known_two_writers_two_readers(void **state)
{
	/* Both PUTs overlap both GETs: GET->0 first, then either order. */
	struct lc_op ok[] = {PUT(0, 0, 50, 1),  PUT(1, 10, 60, 2),
	                     GET(2, 20, 30, 0), GET(3, 40, 70, 2),
	                     GET(4, 80, 90, 2)};
	/* The reads say 1 then 2 then 1: one write each, so impossible. */
	struct lc_op bad[] = {PUT(0, 0, 50, 1),  PUT(1, 0, 50, 2),
	                      GET(2, 60, 61, 1), GET(3, 62, 63, 2),
	                      GET(4, 64, 65, 1)};
	/* With PUT 2 still running and a second PUT of 1 after it, the
	 * reads fit: PUT 1, GET, PUT 2, GET, PUT 1, GET. */
	struct lc_op rewritten[] = {PUT(0, 0, 50, 1),  PUT(1, 0, 70, 2),
	                            GET(2, 60, 61, 1), GET(3, 62, 63, 2),
	                            GET(4, 64, 65, 1), PUT(5, 62, 64, 1)};

	(void)state;
	ASSERT_LINEARIZABLE(ok);
	ASSERT_VIOLATION(bad);
	ASSERT_LINEARIZABLE(rewritten);
}

static void test_known_cas_register(void **state)
{
	/* Jepsen's CAS register: PUT 1; CAS 1->2 swaps; a later read of 1. */
	struct lc_op stale[] = {PUT(0, 0, 10, 1), CAS(1, 20, 30, 1, 2, 1, 1),
	                        GET(2, 40, 50, 1)};
	/* The read overlaps the CAS: it may come first. */
	struct lc_op overlap[] = {PUT(0, 0, 10, 1), CAS(1, 20, 30, 1, 2, 1, 1),
	                          GET(2, 25, 50, 1), GET(2, 60, 70, 2)};
	/* Two CASes from 1 overlap: one swaps, the other fails seeing the
	 * winner's value; a reader in between sees the winner's. */
	struct lc_op race[] = {PUT(0, 0, 10, 1), CAS(1, 20, 40, 1, 2, 1, 1),
	                       CAS(2, 20, 40, 1, 3, 0, 2), GET(3, 50, 60, 2)};
	/* The loser saw 2, but 3 is what is left. */
	struct lc_op race_bad[] = {PUT(0, 0, 10, 1), CAS(1, 20, 40, 1, 2, 1, 1),
	                           CAS(2, 20, 40, 1, 3, 0, 2),
	                           GET(3, 50, 60, 3)};

	(void)state;
	ASSERT_VIOLATION(stale);
	ASSERT_LINEARIZABLE(overlap);
	ASSERT_LINEARIZABLE(race);
	ASSERT_VIOLATION(race_bad);
}

static void test_known_delete_and_recreate(void **state)
{
	/* PUT 1, DEL (saw 1), PUT 2; a reader overlapping all of them may
	 * see absent, and one overlapping only the DEL may see 1 or absent. */
	struct lc_op ok[] = {PUT(0, 0, 10, 1),  DEL(1, 20, 40, 1),
	                     PUT(2, 50, 60, 2), GET(3, 5, 55, 0),
	                     GET(4, 25, 35, 1), GET(4, 70, 80, 2)};
	/* Absent read between the DEL's return and the PUT's call is fine;
	 * 1 read there is not. */
	struct lc_op bad[] = {PUT(0, 0, 10, 1),  DEL(1, 20, 30, 1),
	                      GET(3, 35, 45, 1), PUT(2, 50, 60, 2)};
	/* Two DELs cannot both have seen 1. */
	struct lc_op twice[] = {PUT(0, 0, 10, 1), DEL(1, 20, 40, 1),
	                        DEL(2, 20, 40, 1)};

	(void)state;
	ASSERT_LINEARIZABLE(ok);
	ASSERT_VIOLATION(bad);
	ASSERT_VIOLATION(twice);
}

/* Keys are independent: each is decided on its own (P-compositionality),
 * so two per-key witnesses that interleave differently are fine. */
static void test_known_keys_independent(void **state)
{
	struct lc_op ops[] = {
		on_key(1, PUT(0, 0, 100, 1)), on_key(2, PUT(1, 0, 100, 2)),
		/* Key 1's write lands early, key 2's late. */
		on_key(1, GET(2, 10, 20, 1)), on_key(2, GET(2, 30, 40, 0)),
		on_key(2, GET(3, 10, 20, 0)), on_key(1, GET(3, 30, 40, 1)),
	};
	struct lc_report r;

	(void)state;
	assert_int_equal(lc_check_history(ops, COUNT(ops), 0, &r),
	                 LC_LINEARIZABLE);
	ops[4].out = 2; /* key 2: then 0 again after 2 was seen */
	assert_int_equal(lc_check_history(ops, COUNT(ops), 0, &r),
	                 LC_VIOLATION);
	assert_int_equal(r.key, 2);
}

/* ---- Results no state can give: decided before any search --------------- */

static void test_impossible_results_fail_at_once(void **state)
{
	struct lc_op never_written[] = {PUT(1, 0, 10, 1), GET(2, 5, 15, 7)};
	/* The only write of 7 got no reply and was called after the read. */
	struct lc_op written_later[] = {GET(1, 0, 1, 7), PUT(2, 5, NEVER, 7)};
	struct lc_op swap_from_absent[] = {CAS(1, 0, 1, 0, 5, 1, 0)};
	struct lc_op swap_saw_other[] = {PUT(1, 0, 1, 1),
	                                 CAS(2, 2, 3, 1, 5, 1, 4)};
	struct lc_op failed_saw_expected[] = {PUT(1, 0, 1, 1),
	                                      CAS(2, 2, 3, 1, 5, 0, 1)};
	const struct {
		const struct lc_op *ops;
		size_t n;
		const char *why;
	} cases[] = {
		{never_written, COUNT(never_written), "no write of the key"},
		{written_later, COUNT(written_later), "called after it returned"},
		{swap_from_absent, COUNT(swap_from_absent), "expecting absent"},
		{swap_saw_other, COUNT(swap_saw_other), "value it expects"},
		{failed_saw_expected, COUNT(failed_saw_expected),
		 "value it expects"},
	};

	(void)state;
	for (size_t i = 0; i < COUNT(cases); i++) {
		struct lc_report r;

		assert_int_equal(lc_check_key(cases[i].ops, cases[i].n, 1, &r),
		                 LC_VIOLATION);
		assert_int_equal(r.states_explored, 0);
		assert_non_null(strstr(r.why, "cannot have happened"));
		assert_non_null(strstr(r.why, cases[i].why));
	}
}

/* A read of a value nobody wrote, behind 24 concurrent PUTs: proving it by
 * search visits every subset of the PUTs (2^24). It failed to be decided
 * within budget before the check ran ahead of the search. */
static void test_read_of_never_written_value_is_quick(void **state)
{
	struct lc_op ops[24 + 1];
	struct lc_report r;

	(void)state;
	for (uint32_t i = 0; i < 24; i++)
		ops[i] = PUT(i, 0, 100, i + 1);
	ops[24] = GET(30, 200, 210, 99);
	assert_int_equal(lc_check_key(ops, COUNT(ops), 10, &r), LC_VIOLATION);
	assert_int_equal(r.states_explored, 0);
	assert_non_null(strstr(r.why, "op #24 cannot have happened"));
	assert_non_null(strstr(r.why, "it reads 99, which no write"));
	assert_non_null(strstr(r.why, "GET -> 99 by client 30"));
}

/* ---- Replies that did not report the value seen -------------------------- */

static void test_failed_cas_without_value(void **state)
{
	/* 1 is there, the CAS expected 2: failing is right. */
	struct lc_op other[] = {PUT(1, 0, 1, 1),
	                        blind(CAS(2, 2, 3, 2, 3, 0, 0))};
	/* 1 is there and the CAS expected 1: it would have swapped. */
	struct lc_op expected_there[] = {PUT(1, 0, 1, 1),
	                                 blind(CAS(2, 2, 3, 1, 3, 0, 0))};
	/* Overlapping the PUT, it may have come first and seen absent. */
	struct lc_op overlapping[] = {PUT(1, 0, 10, 1),
	                              blind(CAS(2, 0, 10, 1, 3, 0, 0)),
	                              GET(3, 20, 30, 1)};
	/* It only fails if the unanswered PUT 2 came first; nobody else reads
	 * 2, so this is a pending write that matters only to such a CAS. */
	struct lc_op needs_pending[] = {PUT(1, 0, 1, 1), PUT(2, 2, NEVER, 2),
	                                blind(CAS(3, 10, 11, 1, 3, 0, 0))};
	/* ... and then 1 cannot come back. */
	struct lc_op then_back[] = {PUT(1, 0, 1, 1), PUT(2, 2, NEVER, 2),
	                            blind(CAS(3, 10, 11, 1, 3, 0, 0)),
	                            GET(4, 20, 21, 1)};
	/* A swap without the value seen still says it saw the expected one. */
	struct lc_op swapped[] = {PUT(1, 0, 1, 1),
	                          blind(CAS(2, 2, 3, 1, 3, 1, 0)),
	                          GET(3, 4, 5, 3)};
	struct lc_op swapped_wrong[] = {PUT(1, 0, 1, 1),
	                                blind(CAS(2, 2, 3, 2, 3, 1, 0))};
	struct lc_report r;

	(void)state;
	ASSERT_LINEARIZABLE(other);
	ASSERT_VIOLATION(expected_there);
	ASSERT_LINEARIZABLE(overlapping);
	ASSERT_LINEARIZABLE(needs_pending);
	ASSERT_VIOLATION(then_back);
	ASSERT_LINEARIZABLE(swapped);
	ASSERT_VIOLATION(swapped_wrong);
	assert_int_equal(check(expected_there, COUNT(expected_there),
	                       LC_VIOLATION, &r),
	                 LC_VIOLATION);
	assert_non_null(strstr(r.why, "CAS 1->3 failed, saw ? by client 2"));
}

static void test_get_and_del_without_value(void **state)
{
	/* A GET that did not report constrains nothing. */
	struct lc_op get[] = {PUT(1, 0, 1, 1), blind(GET(2, 2, 3, 0)),
	                      GET(3, 4, 5, 1)};
	/* A DEL that did not report still removed the value. */
	struct lc_op del[] = {PUT(1, 0, 1, 1), blind(DEL(2, 2, 3, 0)),
	                      GET(3, 4, 5, 0)};
	struct lc_op del_bad[] = {PUT(1, 0, 1, 1), blind(DEL(2, 2, 3, 0)),
	                          GET(3, 4, 5, 1)};

	(void)state;
	ASSERT_LINEARIZABLE(get);
	ASSERT_LINEARIZABLE(del);
	ASSERT_VIOLATION(del_bad);
}

/* ---- Many ops without a reply --------------------------------------------
 * A leader pause: 32 ops are called and get no reply; 34 ops after it run
 * while some of the 32 take effect, in an order unrelated to their calls.
 * The unanswered ops may each take effect anywhere after their call, so
 * the configurations differ in which of them were used: a memo that kept
 * those in one probe run spent thousands of probes per lookup here. */

enum { PAUSED_OPS = 32, AFTER_OPS = 34 };

/* Builds the 66 ops from a sequential run: op i of the 34 takes effect at
 * 1000 + 100 i, over an interval of 350 around it; pending op j takes
 * effect (if j % 3 != 2) just before op (31 - j) % 34. Values: pending op
 * j writes j + 1, op i writes 100 + i. stale: the last GET reads the value
 * op 1 wrote, overwritten for good by op 10 (op 1 returns before op 10 is
 * called, op 10 before the last GET). */
static void leader_pause(struct lc_op *ops, bool stale)
{
	uint64_t v = 0;
	size_t last_get = 0;

	for (uint32_t j = 0; j < PAUSED_OPS; j++) {
		/* PUT, PUT, DEL, CAS, ...: the CAS expects what pending op j-1
		 * writes. */
		uint8_t kind = j % 4 == 2 ? LC_DEL : j % 4 == 3 ? LC_CAS : LC_PUT;

		ops[j] = mk(kind, j, 10 * j, NEVER, j + 1, 0, 0, 0);
		if (kind == LC_CAS)
			ops[j].arg2 = j + 1, ops[j].arg = j;
		if (kind == LC_DEL)
			ops[j].arg = 0;
	}
	for (uint32_t i = 0; i < AFTER_OPS; i++) {
		struct lc_op *op = &ops[PAUSED_OPS + i];
		uint64_t t = 1000 + 100 * i;
		bool put = i == 1 || i == 10 || i % 5 == 3;

		for (uint32_t j = 0; j < PAUSED_OPS; j++) {
			const struct lc_op *p = &ops[j];

			if (j % 3 == 2 || (31 - j) % AFTER_OPS != i)
				continue;
			if (p->kind == LC_PUT)
				v = p->arg;
			else if (p->kind == LC_DEL)
				v = 0;
			else if (v != 0 && v == p->arg)
				v = p->arg2;
		}
		*op = put ? PUT(100 + i, t - 175, t + 175, 100 + i)
		          : GET(100 + i, t - 175, t + 175, v);
		if (put)
			v = 100 + i;
		else
			last_get = PAUSED_OPS + i;
	}
	if (stale)
		ops[last_get].out = 101;
}

static void test_many_unanswered_decided_in_few_steps(void **state)
{
	struct lc_op ops[PAUSED_OPS + AFTER_OPS];
	struct lc_report r;

	(void)state;
	for (int stale = 0; stale < 2; stale++) {
		enum lc_verdict expect = stale ? LC_VIOLATION : LC_LINEARIZABLE;

		leader_pause(ops, stale);
		/* Within a small budget: never LC_UNKNOWN. */
		assert_int_equal(lc_check_key(ops, COUNT(ops), 5000, &r),
		                 expect);
		print_message("66 ops, 32 unanswered, %s: %" PRIu64 " states, "
		              "%.2f probes per lookup\n",
		              stale ? "stale read" : "linearizable",
		              r.states_explored,
		              (double)r.memo_probes / (double)r.memo_lookups);
		/* O(1) lookups: the memo is keyed by the whole configuration. */
		assert_true(r.memo_probes <= 3 * r.memo_lookups);
	}
}

/* ---- Whole histories ---------------------------------------------------- */

static void test_history_names_violated_key(void **state)
{
	struct lc_op ops[] = {
		on_key(1, PUT(1, 0, 10, 1)),  on_key(2, PUT(2, 0, 10, 2)),
		on_key(3, PUT(3, 0, 10, 3)),  on_key(1, GET(1, 20, 30, 1)),
		on_key(2, GET(2, 20, 30, 2)), on_key(3, GET(3, 20, 30, 3)),
		on_key(1, PUT(1, 40, 50, 4)), on_key(2, GET(2, 60, 70, 2)),
		on_key(1, GET(3, 60, 70, 4)),
	};
	struct lc_report r;

	(void)state;
	assert_int_equal(lc_check_history(ops, COUNT(ops), 0, &r),
	                 LC_LINEARIZABLE);
	assert_int_equal(r.ops, COUNT(ops));

	ops[5].out = 9; /* key 3 reads a value never written */
	assert_int_equal(lc_check_history(ops, COUNT(ops), 0, &r),
	                 LC_VIOLATION);
	assert_int_equal(r.key, 3);
	assert_int_equal(r.ops, 2);
	assert_non_null(strstr(r.why, "key 3"));
	assert_non_null(strstr(r.why, "op #5 cannot"));
	assert_non_null(strstr(r.why, "GET -> 9 by client 3"));
}

/* Puts all concurrent, then reads of two of them in sequence: no order
 * works, and proving it visits every subset of the puts. */
static void concurrent_puts_then_two_reads(struct lc_op *ops, uint32_t puts)
{
	for (uint32_t i = 0; i < puts; i++)
		ops[i] = PUT(i, 0, 100, i + 1);
	ops[puts] = GET(0, 200, 210, 1);
	ops[puts + 1] = GET(1, 300, 310, 2);
}

static void test_budget_exhausted_is_unknown(void **state)
{
	struct lc_op ops[24 + 2];
	struct lc_report r;

	(void)state;
	concurrent_puts_then_two_reads(ops, 24);
	assert_int_equal(lc_check_key(ops, COUNT(ops), 10, &r), LC_UNKNOWN);
	assert_int_equal(r.states_explored, 10);
	assert_non_null(strstr(r.why, "budget"));
	assert_int_equal(lc_check_history(ops, COUNT(ops), 10, &r), LC_UNKNOWN);
	assert_int_equal(r.key, 1);

	/* With 10 puts, no budget: 2^10 subsets, and the verdict. */
	concurrent_puts_then_two_reads(ops, 10);
	assert_int_equal(lc_check_key(ops, 12, 0, &r), LC_VIOLATION);
	assert_true(r.states_explored > 1000);
}

/* ---- Randomized: a real sequential execution, blurred -------------------- */

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* Runs the model one op at a time, op i taking effect at t = 1000 * i,
 * then widens each interval around its point by up to width_ns each side.
 * Pending ops (1 in 16) got no reply: half of them took effect, and their
 * recorded result is garbage. */
static void generate(uint64_t seed, struct lc_op *ops, size_t n,
                     uint64_t keys, uint64_t width_ns)
{
	uint64_t rng = seed, next_value = 1, model[8] = {0};

	assert_true(keys <= 8 && rng != 0);
	for (size_t i = 0; i < n; i++) {
		struct lc_op *op = &ops[i];
		uint64_t t = width_ns + 1000 * i;
		uint64_t *v = &model[xorshift64(&rng) % keys];
		bool pending = xorshift64(&rng) % 16 == 0;
		bool applies = !pending || xorshift64(&rng) % 2 == 0;
		uint64_t r = xorshift64(&rng) % 8;

		memset(op, 0, sizeof *op);
		op->key = (uint64_t)(v - model);
		op->client = (uint32_t)(xorshift64(&rng) % 10);
		op->call_ns = t - xorshift64(&rng) % width_ns;
		op->return_ns = pending ? NEVER : t + xorshift64(&rng) % width_ns;
		op->kind = r < 3 ? LC_GET : r < 5 ? LC_PUT : r < 6 ? LC_DEL : LC_CAS;
		if (op->kind == LC_PUT || op->kind == LC_CAS)
			op->arg = next_value++;
		if (op->kind == LC_CAS) {
			op->arg2 = op->arg;
			op->arg = xorshift64(&rng) % 2 ? *v : op->arg2 / 2;
		}
		op->out = *v;
		if (op->kind == LC_CAS && *v != 0 && *v == op->arg) {
			op->out_ok = 1;
			if (applies)
				*v = op->arg2;
		} else if (op->kind == LC_PUT && applies) {
			*v = op->arg;
		} else if (op->kind == LC_DEL && applies) {
			*v = 0;
		}
		if (pending)
			op->out = 0xdeadbeef;
	}
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void test_random_sequential_accepted(void **state)
{
	enum { N = 300 };
	static struct lc_op ops[N];
	struct lc_report r;
	double t0 = now_ms();

	(void)state;
	generate(UINT64_C(0x5eed0001), ops, N, 3, 3000);
	assert_int_equal(lc_check_history(ops, N, 0, &r), LC_LINEARIZABLE);
	print_message("300 ops on 3 keys: %.2f ms, %" PRIu64 " states\n",
	              now_ms() - t0, r.states_explored);

	for (uint64_t seed = 1; seed <= 50; seed++) {
		generate(seed, ops, N, 3, 3000);
		assert_int_equal(lc_check_history(ops, N, 0, &r),
		                 LC_LINEARIZABLE);
	}
}

/* The same histories with one completed read corrupted are rejected. */
static void test_random_corrupted_rejected(void **state)
{
	enum { N = 300 };
	static struct lc_op ops[N];
	struct lc_report r;

	(void)state;
	for (uint64_t seed = 1; seed <= 50; seed++) {
		size_t victim = N;

		generate(seed, ops, N, 3, 3000);
		for (size_t i = N / 2; i < N && victim == N; i++)
			if (ops[i].kind == LC_GET && ops[i].return_ns != NEVER)
				victim = i;
		assert_true(victim < N);
		ops[victim].out = UINT64_C(1) << 40; /* never written */
		assert_int_equal(lc_check_history(ops, N, 0, &r), LC_VIOLATION);
		assert_int_equal(r.key, ops[victim].key);
	}
}

/* A simulator-sized key: 2000 ops, about eight in flight at once. */
static void test_random_large_key_fast(void **state)
{
	enum { N = 2000 };
	static struct lc_op ops[N];
	struct lc_report r;
	double t0 = now_ms();

	(void)state;
	generate(UINT64_C(0xfeed), ops, N, 1, 4000);
	assert_int_equal(lc_check_key(ops, N, 0, &r), LC_LINEARIZABLE);
	print_message("2000 ops on 1 key: %.2f ms, %" PRIu64 " states\n",
	              now_ms() - t0, r.states_explored);
	/* The bound on time, as steps: about two per op (4177 when written),
	 * and O(1) probes per memo lookup. */
	assert_true(r.states_explored <= 3 * N);
	assert_true(r.memo_probes <= 3 * r.memo_lookups);
}

/* ---- Differential: small random histories against brute force ---------- */

/* The model again, written plainly: false if op's result contradicts. */
static bool brute_step(const struct lc_op *op, uint64_t *v)
{
	bool pending = op->return_ns == NEVER;
	bool swaps = *v != 0 && *v == op->arg;
	bool ok = pending || op->kind == LC_PUT || op->out_unknown ||
	          op->out == *v;

	if (op->kind == LC_CAS && !pending && (op->out_ok != 0) != swaps)
		ok = false;
	if (op->kind == LC_PUT)
		*v = op->arg;
	else if (op->kind == LC_DEL)
		*v = 0;
	else if (op->kind == LC_CAS && swaps)
		*v = op->arg2;
	return ok;
}

/* Every order of every subset that holds all completed ops; no pruning. */
static bool brute_linearizable(const struct lc_op *ops, size_t n,
                               uint32_t done, uint64_t v)
{
	bool all_completed = true;

	for (size_t i = 0; i < n; i++)
		if (!(done >> i & 1) && ops[i].return_ns != NEVER)
			all_completed = false;
	if (all_completed)
		return true;
	for (size_t i = 0; i < n; i++) {
		bool minimal = !(done >> i & 1);
		uint64_t next = v;

		/* i may go next only if no op left returned before i's call. */
		for (size_t j = 0; j < n && minimal; j++)
			if (!(done >> j & 1) && ops[j].return_ns < ops[i].call_ns)
				minimal = false;
		if (minimal && brute_step(&ops[i], &next) &&
		    brute_linearizable(ops, n, done | UINT32_C(1) << i, next))
			return true;
	}
	return false;
}

/* Unique written values 1.. (or, with repeats, values 1..3); reads of 0, of
 * a value written so far, or of one never written. 1 op in pending_one_in
 * got no reply; 1 completed op in 4 did not report its result, if blind. */
static void random_small(uint64_t *rng, struct lc_op *ops, size_t n,
                         uint64_t pending_one_in, bool repeats, bool blind_ops)
{
	uint64_t written = 0;

	for (size_t i = 0; i < n; i++) {
		struct lc_op *op = &ops[i];
		uint64_t r = xorshift64(rng);

		memset(op, 0, sizeof *op);
		op->key = 1;
		op->client = (uint32_t)i;
		op->kind = (uint8_t)(LC_GET + r % 4);
		op->call_ns = xorshift64(rng) % 12;
		op->return_ns = xorshift64(rng) % pending_one_in == 0
		                        ? NEVER
		                        : op->call_ns + xorshift64(rng) % 6;
		if (op->kind == LC_PUT || op->kind == LC_CAS)
			op->arg = repeats ? 1 + xorshift64(rng) % 3 : ++written;
		if (op->kind == LC_CAS) {
			op->arg2 = op->arg;
			op->arg = xorshift64(rng) % (n + 1);
			op->out_ok = xorshift64(rng) % 2;
		}
		op->out = xorshift64(rng) % ((repeats ? 3 : written) + 2);
		if (op->kind == LC_CAS && op->out_ok)
			op->out = op->arg;
		if (blind_ops && op->kind != LC_PUT &&
		    xorshift64(rng) % 4 == 0)
			op->out_unknown = 1;
	}
}

static void test_agrees_with_brute_force(void **state)
{
	uint64_t rng = UINT64_C(0x1234567);
	size_t verdicts[2] = {0, 0};

	(void)state;
	for (int round = 0; round < 40000; round++) {
		struct lc_op ops[8];
		size_t n = 1 + xorshift64(&rng) % COUNT(ops);
		struct lc_report r;
		bool expect;

		/* Rounds cycle through: unique values, repeated values, and
		 * each with replies that did not report what they saw. */
		random_small(&rng, ops, n, round % 2 == 0 ? 6 : 3,
		             round % 4 >= 2, round % 8 >= 4);
		expect = brute_linearizable(ops, n, 0, 0);
		assert_int_equal(lc_check_key(ops, n, 0, &r),
		                 expect ? LC_LINEARIZABLE : LC_VIOLATION);
		verdicts[expect]++;
	}
	/* Both verdicts are well represented, or the test proves little. */
	assert_true(verdicts[0] > 4000 && verdicts[1] > 4000);
	print_message("brute force agrees: %zu linearizable, %zu not\n",
	              verdicts[1], verdicts[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_history),
		cmocka_unit_test(test_sequential_accepted),
		cmocka_unit_test(test_concurrent_put_get_either_order),
		cmocka_unit_test(test_touching_intervals_are_concurrent),
		cmocka_unit_test(test_stale_read_rejected),
		cmocka_unit_test(test_read_of_unwritten_value_rejected),
		cmocka_unit_test(test_reads_in_opposite_orders_rejected),
		cmocka_unit_test(test_cas_twice_from_same_value_rejected),
		cmocka_unit_test(test_cas_semantics),
		cmocka_unit_test(test_del_wrong_previous_rejected),
		cmocka_unit_test(test_known_readers_overlapping_a_write),
		cmocka_unit_test(test_known_two_writers_two_readers),
		cmocka_unit_test(test_known_cas_register),
		cmocka_unit_test(test_known_delete_and_recreate),
		cmocka_unit_test(test_known_keys_independent),
		cmocka_unit_test(test_impossible_results_fail_at_once),
		cmocka_unit_test(test_read_of_never_written_value_is_quick),
		cmocka_unit_test(test_failed_cas_without_value),
		cmocka_unit_test(test_get_and_del_without_value),
		cmocka_unit_test(test_many_unanswered_decided_in_few_steps),
		cmocka_unit_test(test_pending_put_observed_accepted),
		cmocka_unit_test(test_pending_put_unobserved_accepted),
		cmocka_unit_test(test_pending_put_read_then_older_rejected),
		cmocka_unit_test(test_pending_cas),
		cmocka_unit_test(test_pending_put_not_before_call),
		cmocka_unit_test(test_pending_dels),
		cmocka_unit_test(test_history_names_violated_key),
		cmocka_unit_test(test_budget_exhausted_is_unknown),
		cmocka_unit_test(test_random_sequential_accepted),
		cmocka_unit_test(test_random_corrupted_rejected),
		cmocka_unit_test(test_random_large_key_fast),
		cmocka_unit_test(test_agrees_with_brute_force),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
