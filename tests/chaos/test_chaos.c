/* Unit tests of the chaos tools' pure parts: the history format
 * (history.c) and the gaps between acknowledgements (gaps.c). The tools
 * themselves run on the hand-made histories of testdata/ in
 * check_tools.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "bypax/errors.h"
#include "gaps.h"
#include "history.h"

#define MS 1000000ull
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Values ---- */

static void test_value_parse_canonical(void **state)
{
	(void)state;
	uint64_t v = 0;
	assert_int_equal(ch_value_parse("42", 2, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(ch_value_parse("9223372036854775807", 19, &v), 0);
	assert_int_equal(v, UINT64_C(9223372036854775807));
	/* What a CAS compares as bytes must be one integer: no second
	 * spelling, no zero (absent), nothing at or above 2^63. */
	const char *bad[] = { "",
			      "0",
			      "042",
			      "+4",
			      "-4",
			      "4 ",
			      "4x",
			      "9223372036854775808",
			      "18446744073709551616" };
	for (size_t i = 0; i < COUNT(bad); i++)
		assert_int_equal(ch_value_parse(bad[i], strlen(bad[i]), &v),
				 -1);
}

static void test_value_format_round_trip(void **state)
{
	(void)state;
	char buf[CH_VALUE_DIGITS_MAX + 1];
	uint64_t vs[] = { 1, 10, UINT64_C(0x4fd12d0000000001),
			  UINT64_C(9223372036854775807) };
	for (size_t i = 0; i < COUNT(vs); i++) {
		uint64_t back;
		size_t n = ch_value_format(vs[i], buf);
		assert_int_equal(n, strlen(buf));
		assert_int_equal(ch_value_parse(buf, n, &back), 0);
		assert_int_equal(back, vs[i]);
	}
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(ch_error_name(-BPX_ETIMEDOUT), "ETIMEDOUT");
	assert_string_equal(ch_error_name(BPX_EEXPIRED), "EEXPIRED");
	assert_string_equal(ch_error_name(0), "-");
	assert_string_equal(ch_error_name(-999), "E?");
	assert_true(ch_key_valid("w4fd12d.17"));
	assert_true(ch_key_write_once("w4fd12d.17"));
	assert_false(ch_key_write_once("h0"));
	assert_false(ch_key_valid(""));
	assert_false(ch_key_valid("a b"));
	char long_key[CH_KEY_BYTES_MAX + 2];
	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	assert_false(ch_key_valid(long_key));
}

/* ---- Lines ---- */

/* Zeroed in full (padding too): the parser's output is compared bytewise. */
static struct ch_op cas_op(void)
{
	struct ch_op op;
	memset(&op, 0, sizeof(op));
	op.id = 7;
	op.client = 2;
	op.kind = CH_CAS;
	op.result = CH_MISMATCH;
	op.call_ns = 100;
	op.return_ns = op.end_ns = 150;
	op.arg = 11;
	op.arg2 = 12;
	op.out = 13;
	snprintf(op.key, sizeof(op.key), "h1");
	snprintf(op.error, sizeof(op.error), "ECASMISMATCH");
	return op;
}

static void test_op_line_round_trip(void **state)
{
	(void)state;
	char buf[CH_LINE_BYTES_MAX], err[256];
	struct ch_op op = cas_op();
	struct ch_line l;
	ch_format_op(buf, sizeof(buf), &op);
	assert_string_equal(buf, "O 7 2 100 150 150 cas h1 11 12 mismatch 13 "
				 "ECASMISMATCH\n");
	buf[strlen(buf) - 1] = '\0';
	assert_int_equal(ch_parse_line(buf, &l, err, sizeof(err)), 0);
	assert_int_equal(l.type, CH_LINE_OP);
	assert_memory_equal(&l.op, &op, sizeof(op));
}

static void test_call_line_and_unknown(void **state)
{
	(void)state;
	char buf[CH_LINE_BYTES_MAX], err[256];
	struct ch_op op = cas_op();
	struct ch_line l;
	ch_format_call(buf, sizeof(buf), &op);
	assert_string_equal(buf, "C 7 2 100 cas h1 11 12\n");
	buf[strlen(buf) - 1] = '\0';
	assert_int_equal(ch_parse_line(buf, &l, err, sizeof(err)), 0);
	assert_int_equal(l.type, CH_LINE_CALL);
	assert_int_equal(l.op.result, 0);
	assert_true(l.op.return_ns == CH_NEVER);
	/* An unknown outcome is written 'never', never as a time. */
	op.result = CH_UNKNOWN;
	op.return_ns = CH_NEVER;
	op.end_ns = 5100;
	op.out = 0;
	snprintf(op.error, sizeof(op.error), "ETIMEDOUT");
	ch_format_op(buf, sizeof(buf), &op);
	assert_string_equal(buf, "O 7 2 100 never 5100 cas h1 11 12 unknown "
				 "- ETIMEDOUT\n");
}

/* Each bad line is refused, and the reason names the field and value. */
static void test_parse_errors_name_the_field(void **state)
{
	(void)state;
	static const struct {
		const char *line, *why;
	} cases[] = {
		{ "O 1 0 100 150 150 get h0 - - ok 0 -", "out '0'" },
		{ "O 1 0 100 150 150 put h0 - - ok - -", "put takes arg only" },
		{ "O 1 0 100 150 150 put h0 5 - ok 5 -", "has no out value" },
		{ "O 1 0 100 150 150 get h0 - - ok - -", "needs an out value" },
		{ "O 1 0 100 90 150 get h0 - - ok 5 -", "before call_ns" },
		{ "O 1 0 100 150 150 get h0 - - mismatch 5 -",
		  "get cannot end mismatch" },
		{ "O 1 0 100 never 150 put h0 5 - ok - -", "with 'never'" },
		{ "O 1 0 100 150 150 put h0 5 - unknown - -", "with 'never'" },
		{ "O 1 0 100 150 150 get h 0 - - ok 5 -", "13" },
		{ "C 1 0 100 get h0 - - extra", "expected 8" },
		{ "C 1 0 1e3 get h0 - -", "call_ns '1e3'" },
		{ "C 1 0 100 get h0 -", "expected 8" },
		{ "C 1 0 100 get h?0 - -", "key 'h?0'" },
		{ "C 1 0 100 cas h0 5 -", "cas takes arg and arg2" },
		{ "S", "expected 2" },
		{ "X 1", "line type 'X'" },
		{ "O 1 0 100 150 150 get h0 - - ok 5 timeout",
		  "error 'timeout'" },
	};
	for (size_t i = 0; i < COUNT(cases); i++) {
		char err[256] = "";
		struct ch_line l;
		if (ch_parse_line(cases[i].line, &l, err, sizeof(err)) != -1 ||
		    strstr(err, cases[i].why) == NULL)
			fail_msg("'%s': got '%s', expected '%s'", cases[i].line,
				 err, cases[i].why);
	}
}

static void test_markers_and_comments(void **state)
{
	(void)state;
	char err[256];
	struct ch_line l;
	assert_int_equal(ch_parse_line("B 123", &l, err, sizeof(err)), 0);
	assert_int_equal(l.type, CH_LINE_READBACK);
	assert_int_equal(l.ns, 123);
	assert_int_equal(ch_parse_line("", &l, err, sizeof(err)), 0);
	assert_int_equal(l.type, CH_LINE_COMMENT);
	/* A comment may have any number of words. */
	assert_int_equal(ch_parse_line("# a b c d e f g h i j k l m n o p q r",
				       &l, err, sizeof(err)),
			 0);
	assert_int_equal(l.type, CH_LINE_COMMENT);
}

/* ---- Gaps ---- */

/* The run of testdata/gaps.hist: [1.0 s, 4.0 s], acks at these times. */
static const uint64_t acks[] = { 1100 * MS, 1200 * MS, 1300 * MS, 2000 * MS,
				 2100 * MS, 2200 * MS, 3500 * MS, 3600 * MS };
#define RUN_START (1000 * MS)
#define RUN_END (4000 * MS)

static struct ch_gap gap(uint64_t s, uint64_t e)
{
	return ch_fault_gap(acks, COUNT(acks), RUN_START, RUN_END, s, e);
}

static void assert_gap(struct ch_gap g, uint64_t from, uint64_t to)
{
	assert_true(g.valid);
	assert_int_equal(g.from_ns, from);
	assert_int_equal(g.to_ns, to);
	assert_int_equal(g.gap_ns, to - from);
}

static void test_fault_inside_one_gap(void **state)
{
	(void)state;
	assert_gap(gap(1500 * MS, 1600 * MS), 1300 * MS, 2000 * MS);
	/* A point window, and one exactly on an ack: the longer side. */
	assert_gap(gap(3550 * MS, 3550 * MS), 3500 * MS, 3600 * MS);
	assert_gap(gap(2000 * MS, 2000 * MS), 1300 * MS, 2000 * MS);
}

static void test_fault_over_several_gaps(void **state)
{
	(void)state;
	/* Overlaps (2.1, 2.2) and (2.2, 3.5): the longest is taken. */
	assert_gap(gap(2150 * MS, 3000 * MS), 2200 * MS, 3500 * MS);
	/* The whole run: the longest gap of all. */
	assert_gap(ch_max_gap(acks, COUNT(acks), RUN_START, RUN_END), 2200 * MS,
		   3500 * MS);
}

static void test_fault_at_the_run_ends(void **state)
{
	(void)state;
	/* The run's end counts as a mark: a fault that stopped everything
	 * until the end shows the time since the last ack. */
	assert_gap(gap(3900 * MS, 5000 * MS), 3600 * MS, RUN_END);
	assert_gap(gap(0, 1050 * MS), RUN_START, 1100 * MS);
	assert_false(gap(4001 * MS, 5000 * MS).valid);
	assert_false(gap(0, 999 * MS).valid);
	/* No ack at all: the whole run is one gap. */
	struct ch_gap g =
		ch_fault_gap(NULL, 0, RUN_START, RUN_END, 2000 * MS, 2001 * MS);
	assert_gap(g, RUN_START, RUN_END);
}

static void test_percentiles(void **state)
{
	(void)state;
	uint64_t v[] = { 100, 400, 700, 1300 };
	assert_int_equal(ch_percentile(v, 4, 50), 400);
	assert_int_equal(ch_percentile(v, 4, 99), 1300);
	assert_int_equal(ch_percentile(v, 4, 100), 1300);
	assert_int_equal(ch_percentile(v, 4, 1), 100);
	assert_int_equal(ch_percentile(v, 1, 99), 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_value_parse_canonical),
		cmocka_unit_test(test_value_format_round_trip),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_op_line_round_trip),
		cmocka_unit_test(test_call_line_and_unknown),
		cmocka_unit_test(test_parse_errors_name_the_field),
		cmocka_unit_test(test_markers_and_comments),
		cmocka_unit_test(test_fault_inside_one_gap),
		cmocka_unit_test(test_fault_over_several_gaps),
		cmocka_unit_test(test_fault_at_the_run_ends),
		cmocka_unit_test(test_percentiles),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
