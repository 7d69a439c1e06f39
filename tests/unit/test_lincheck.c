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
}

/* ---- Differential: small random histories against brute force ---------- */

/* The model again, written plainly: false if op's result contradicts. */
static bool brute_step(const struct lc_op *op, uint64_t *v)
{
	bool pending = op->return_ns == NEVER;
	bool swaps = *v != 0 && *v == op->arg;
	bool ok = pending || op->kind == LC_PUT || op->out == *v;

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

/* Unique written values 1..; reads of 0, of a value written so far, or of
 * one never written. 1 op in pending_one_in got no reply. */
static void random_small(uint64_t *rng, struct lc_op *ops, size_t n,
                         uint64_t pending_one_in)
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
			op->arg = ++written;
		if (op->kind == LC_CAS) {
			op->arg2 = op->arg;
			op->arg = xorshift64(rng) % (n + 1);
			op->out_ok = xorshift64(rng) % 2;
		}
		op->out = xorshift64(rng) % (written + 2);
		if (op->kind == LC_CAS && op->out_ok)
			op->out = op->arg;
	}
}

static void test_agrees_with_brute_force(void **state)
{
	uint64_t rng = UINT64_C(0x1234567);
	size_t verdicts[2] = {0, 0};

	(void)state;
	for (int round = 0; round < 20000; round++) {
		struct lc_op ops[8];
		size_t n = 1 + xorshift64(&rng) % COUNT(ops);
		struct lc_report r;
		bool expect;

		random_small(&rng, ops, n, round % 2 == 0 ? 6 : 3);
		expect = brute_linearizable(ops, n, 0, 0);
		assert_int_equal(lc_check_key(ops, n, 0, &r),
		                 expect ? LC_LINEARIZABLE : LC_VIOLATION);
		verdicts[expect]++;
	}
	/* Both verdicts are well represented, or the test proves little. */
	assert_true(verdicts[0] > 2000 && verdicts[1] > 2000);
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
