/* Unit tests for the control plane's heartbeat codec (control/ctl_wire.c):
 * a round trip, and what a datagram of another cluster, or noise, gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_wire.h"

static const struct ctl_hb_msg sample = {
	.hb = { .from = 2, .leader_hint = 1, .ready = 1, .preferred = CTL_NONE,
		.alive_mask = 0x7, .seq = 123456789 },
	.role = 2,
	.promised = 0x1122334455667788ull,
	.commit_index = 99,
	.applied_index = 98,
	.failover_age_ms = UINT64_MAX,
};

static void test_round_trip(void **state)
{
	(void)state;
	uint8_t buf[CTL_HB_BYTES];
	struct ctl_hb_msg m;
	ctl_hb_encode(buf, 7, &sample);
	assert_int_equal(ctl_hb_decode(buf, sizeof(buf), 7, &m), 0);
	assert_int_equal(m.hb.from, 2);
	assert_int_equal(m.hb.leader_hint, 1);
	assert_int_equal(m.hb.alive_mask, 0x7);
	assert_int_equal(m.hb.seq, 123456789);
	assert_int_equal(m.role, 2);
	assert_int_equal(m.promised, sample.promised);
	assert_int_equal(m.commit_index, 99);
	assert_int_equal(m.applied_index, 98);
	assert_int_equal(m.failover_age_ms, UINT64_MAX);
}

/* Another cluster's heartbeat is refused by decode, and recognised, with
 * its cluster id, by ctl_hb_cluster: what the control thread logs. */
static void test_other_cluster(void **state)
{
	(void)state;
	uint8_t buf[CTL_HB_BYTES];
	struct ctl_hb_msg m;
	uint32_t cluster = 0;
	ctl_hb_encode(buf, 8, &sample);
	assert_int_equal(ctl_hb_decode(buf, sizeof(buf), 7, &m), -1);
	assert_int_equal(ctl_hb_cluster(buf, sizeof(buf), &cluster), 0);
	assert_int_equal(cluster, 8);
	ctl_hb_encode(buf, 0xfffffffeu, &sample);
	assert_int_equal(ctl_hb_cluster(buf, sizeof(buf), &cluster), 0);
	assert_int_equal(cluster, 0xfffffffeu);
}

/* Noise is not a heartbeat of any cluster: wrong length, magic, version. */
static void test_noise(void **state)
{
	(void)state;
	uint8_t buf[CTL_HB_BYTES + 1];
	uint32_t cluster = 42;
	struct ctl_hb_msg m;
	ctl_hb_encode(buf, 7, &sample);
	assert_int_equal(ctl_hb_cluster(buf, CTL_HB_BYTES - 1, &cluster), -1);
	assert_int_equal(ctl_hb_cluster(buf, CTL_HB_BYTES + 1, &cluster), -1);
	buf[2] = CTL_HB_VERSION + 1;
	assert_int_equal(ctl_hb_cluster(buf, CTL_HB_BYTES, &cluster), -1);
	assert_int_equal(ctl_hb_decode(buf, CTL_HB_BYTES, 7, &m), -1);
	buf[2] = CTL_HB_VERSION;
	buf[0] ^= 0xff;
	assert_int_equal(ctl_hb_cluster(buf, CTL_HB_BYTES, &cluster), -1);
	assert_int_equal(cluster, 42); /* untouched on -1 */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_other_cluster),
		cmocka_unit_test(test_noise),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
