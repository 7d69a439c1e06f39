/* Unit tests for the event line formatter (control/logfmt.c): the head in
 * its order, bare and quoted values, escapes, mono= always last, and
 * truncation that keeps the line parseable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "logfmt.h"

/* 2026-12-01T15:00:00.123456Z, and 123.456789 s of CLOCK_MONOTONIC. */
#define WALL_NS (1796137200ull * 1000000000ull + 123456789ull)
#define MONO_NS (123ull * 1000000000ull + 456789123ull)

static const struct bpx_log_head head = {
	.wall_ns = WALL_NS,
	.mono_ns = MONO_NS,
	.level = "info",
	.type = "bypax.ctl",
	.replica = 1,
	.event = "leader_change",
};

static void head_fields_and_mono_in_order(void **state)
{
	(void)state;
	char line[256];
	struct bpx_log_field f[] = { BPX_LF_U64("from", 0), BPX_LF_U64("to", 1),
				     BPX_LF_STR("ballot", "3.1"),
				     BPX_LF_I64("was", -1) };
	size_t n = bpx_logfmt(line, sizeof(line), &head, f, 4);
	assert_string_equal(line,
			    "ts=2026-12-01T15:00:00.123456Z level=info "
			    "type=bypax.ctl replica=1 event=leader_change "
			    "from=0 to=1 ballot=3.1 was=-1 mono=123.456789");
	assert_int_equal(n, strlen(line));
}

static void no_replica_no_key(void **state)
{
	(void)state;
	char line[256];
	struct bpx_log_head h = head;
	h.replica = -1;
	bpx_logfmt(line, sizeof(line), &h, NULL, 0);
	assert_string_equal(line, "ts=2026-12-01T15:00:00.123456Z level=info "
				  "type=bypax.ctl event=leader_change "
				  "mono=123.456789");
}

static void values_quoted_only_when_needed(void **state)
{
	(void)state;
	char line[512];
	struct bpx_log_field f[] = {
		BPX_LF_STR("reason", "not committing for 500 ms"),
		BPX_LF_STR("empty", ""),
		BPX_LF_STR("null", NULL),
		BPX_LF_STR("eq", "a=b"),
		BPX_LF_STR("addr", "10.0.0.1:5000"),
		BPX_LF_STR("set", "0,1,2"),
	};
	bpx_logfmt(line, sizeof(line), &head, f, 6);
	assert_non_null(strstr(line, " reason=\"not committing for 500 ms\" "
				     "empty=\"\" null=\"\" eq=\"a=b\" "
				     "addr=10.0.0.1:5000 set=0,1,2 mono="));
}

static void quotes_backslashes_and_controls_escaped(void **state)
{
	(void)state;
	char line[256];
	struct bpx_log_field f[] = { BPX_LF_STR("text",
						"say \"hi\"\\\n\t\x01") };
	bpx_logfmt(line, sizeof(line), &head, f, 1);
	assert_non_null(strstr(line,
			       " text=\"say \\\"hi\\\"\\\\\\n\\t\\u0001\" "
			       "mono=123.456789"));
	assert_null(strchr(line, '\n'));
}

/* Fields that do not fit are left out whole: the line still parses and
 * still ends with mono=, which the chaos harness needs on every line. */
static void truncation_keeps_the_tail(void **state)
{
	(void)state;
	char line[BPX_LOGFMT_MIN_BYTES];
	char big[300];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	struct bpx_log_field f[] = { BPX_LF_U64("first", 7),
				     BPX_LF_STR("big", big),
				     BPX_LF_U64("after", 8) };
	size_t n = bpx_logfmt(line, sizeof(line), &head, f, 3);
	assert_true(n < sizeof(line));
	assert_non_null(
		strstr(line, " first=7 truncated=true mono=123.456789"));
	assert_null(strstr(line, "big="));
	assert_null(strstr(line, "after="));
}

static void quoted_value_cut_at_cap(void **state)
{
	(void)state;
	char buf[8];
	buf[0] = '\0';
	assert_int_equal(bpx_logfmt_value(buf, 0, sizeof(buf), "a b c d e"),
			 sizeof(buf));
	assert_int_equal(bpx_logfmt_value(buf, 0, sizeof(buf), "a b"), 5);
	assert_string_equal(buf, "\"a b\"");
}

static void keys(void **state)
{
	(void)state;
	assert_true(bpx_logfmt_key_ok("px_drop_stale_ballot"));
	assert_true(bpx_logfmt_key_ok("bypax.ctl"));
	assert_false(bpx_logfmt_key_ok(""));
	assert_false(bpx_logfmt_key_ok("has space"));
	assert_false(bpx_logfmt_key_ok("Upper"));
	assert_false(bpx_logfmt_key_ok("a=b"));
	char k[32];
	bpx_logfmt_key_from_enum("PX_DROP_", "PX_DROP_STALE_BALLOT", k,
				 sizeof(k));
	assert_string_equal(k, "stale_ballot");
	bpx_logfmt_key_from_enum("PX_DROP_", "OTHER_NAME", k, sizeof(k));
	assert_string_equal(k, "other_name");
	bpx_logfmt_key_from_enum("X_", "X_ABCDEFGH", k, 4);
	assert_string_equal(k, "abc");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(head_fields_and_mono_in_order),
		cmocka_unit_test(no_replica_no_key),
		cmocka_unit_test(values_quoted_only_when_needed),
		cmocka_unit_test(quotes_backslashes_and_controls_escaped),
		cmocka_unit_test(truncation_keeps_the_tail),
		cmocka_unit_test(quoted_value_cut_at_cap),
		cmocka_unit_test(keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
