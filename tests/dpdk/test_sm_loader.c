/* Loading state machines: the built-in kv, a good .so, and every way a
 * .so can be wrong. Paths come from meson as arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dp.h"

static const char *good_path, *bad_abi_path, *no_entry_path, *v1_path,
	*kv_v2_path, *partial_path;

static void load_builtin_kv(void **state)
{
	(void)state;
	char err[256] = "";
	void *h;
	const struct bpx_sm_ops *ops = dp_sm_load("kv", &h, err, sizeof(err));
	assert_non_null(ops);
	assert_null(h);
	assert_string_equal(ops->name, "kv");
	assert_non_null(ops->prefetch);
}

static void load_counter_so(void **state)
{
	(void)state;
	char err[256] = "";
	void *h;
	const struct bpx_sm_ops *ops = dp_sm_load(good_path, &h, err, sizeof(err));
	assert_non_null(ops);
	assert_string_equal(ops->name, "counter");
	assert_null(ops->prefetch);
	assert_null(ops->snapshot_begin); /* ABI version 3's, too */
	assert_null(ops->snapshot_step);
	assert_null(ops->snapshot_write_frozen);
	assert_null(ops->snapshot_end);
	void *sm = ops->create(NULL);
	uint8_t reply[8];
	assert_int_equal(ops->apply(sm, (const uint8_t *)"x", 1, reply, 8), 8);
	assert_int_equal(ops->apply(sm, (const uint8_t *)"y", 1, reply, 8), 8);
	assert_int_equal(reply[0], 2);
	assert_int_equal(ops->read(sm, (const uint8_t *)"?", 1, reply, 8), 8);
	assert_int_equal(reply[0], 2);
	uint8_t snap[8];
	assert_int_equal(ops->snapshot(sm, snap, sizeof(snap)), 8);
	void *copy = ops->create(NULL);
	assert_int_equal(ops->restore(copy, snap, 8), 0);
	assert_true(ops->digest(copy) == ops->digest(sm));
	ops->destroy(copy);
	ops->destroy(sm);
	dp_sm_unload(h);
}

/* A .so built to ABI version 1 ends its ops at digest; it loads, with
 * prefetch NULL (not the poison its struct is followed by), and runs. */
static void load_version_1_so(void **state)
{
	(void)state;
	char err[256] = "";
	void *h;
	const struct bpx_sm_ops *ops = dp_sm_load(v1_path, &h, err, sizeof(err));
	if (ops == NULL)
		fail_msg("version 1 .so refused: %s", err);
	assert_string_equal(ops->name, "counter-v1");
	assert_int_equal(ops->abi_version, BPX_SM_ABI_VERSION);
	assert_null(ops->prefetch);
	assert_null(ops->snapshot_begin); /* ABI version 3's, too */
	assert_null(ops->snapshot_step);
	assert_null(ops->snapshot_write_frozen);
	assert_null(ops->snapshot_end);
	void *sm = ops->create(NULL);
	uint8_t reply[1];
	assert_int_equal(ops->apply(sm, (const uint8_t *)"x", 1, reply, 1), 1);
	assert_int_equal(ops->read(sm, (const uint8_t *)"?", 1, reply, 1), 1);
	assert_int_equal(reply[0], 1);
	ops->destroy(sm);
	dp_sm_unload(h);
}

/* A .so built to ABI version 2 ends its ops at prefetch; it loads with
 * version 3's incremental snapshot ops NULL (not the poison after its
 * struct), so bypaxd saves its disk snapshots synchronously. */
static void load_version_2_so(void **state)
{
	(void)state;
	char err[256] = "";
	void *h;
	const struct bpx_sm_ops *ops =
		dp_sm_load(kv_v2_path, &h, err, sizeof(err));
	if (ops == NULL)
		fail_msg("version 2 .so refused: %s", err);
	assert_string_equal(ops->name, "kv-v2");
	assert_int_equal(ops->abi_version, BPX_SM_ABI_VERSION);
	assert_non_null(ops->prefetch);
	assert_null(ops->snapshot_begin);
	assert_null(ops->snapshot_step);
	assert_null(ops->snapshot_write_frozen);
	assert_null(ops->snapshot_end);
	void *sm = ops->create("capacity=16");
	assert_non_null(sm);
	assert_true(ops->snapshot_size(sm) > 0);
	ops->destroy(sm);
	dp_sm_unload(h);
}

static void expect_refusal(const char *path, const char *needle)
{
	char err[512] = "";
	void *h = (void *)1;
	assert_null(dp_sm_load(path, &h, err, sizeof(err)));
	assert_null(h);
	if (strstr(err, needle) == NULL)
		fail_msg("error '%s' does not mention '%s'", err, needle);
}

static void refuses_bad_abi(void **state)
{
	(void)state;
	expect_refusal(bad_abi_path, "ABI version");
}

static void refuses_missing_entry(void **state)
{
	(void)state;
	expect_refusal(no_entry_path, "bpx_sm_entry");
}

static void refuses_partial_snapshot_ops(void **state)
{
	(void)state;
	expect_refusal(partial_path, "not all four or none");
}

static void refuses_missing_file(void **state)
{
	(void)state;
	expect_refusal("/nonexistent/sm.so", "/nonexistent/sm.so");
}

static void refuses_unknown_name(void **state)
{
	(void)state;
	expect_refusal("redis", "not 'kv'");
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: test_sm_loader GOOD.so BAD_ABI.so "
				"NO_ENTRY.so V1.so KV_V2.so PARTIAL.so\n");
		return 2;
	}
	good_path = argv[1];
	bad_abi_path = argv[2];
	no_entry_path = argv[3];
	v1_path = argv[4];
	kv_v2_path = argv[5];
	partial_path = argv[6];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(load_builtin_kv),
		cmocka_unit_test(load_counter_so),
		cmocka_unit_test(load_version_1_so),
		cmocka_unit_test(load_version_2_so),
		cmocka_unit_test(refuses_bad_abi),
		cmocka_unit_test(refuses_missing_entry),
		cmocka_unit_test(refuses_partial_snapshot_ops),
		cmocka_unit_test(refuses_missing_file),
		cmocka_unit_test(refuses_unknown_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
