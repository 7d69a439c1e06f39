/* Unit tests for the TSC to nanoseconds conversion by multiply-shift
 * (dataplane/tsc_scale.h): within 1 ns of the exact floor(tsc * 1e9 / hz)
 * and of the division it replaced, and monotonic, for several TSC
 * frequencies and counts up to and past 10 years of uptime at 5 GHz. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>

#include "tsc_scale.h"

#define NS_PER_S 1000000000ull
/* 10 years (365.25 days each) of cycles at 5 GHz: 1.578e18, below 2^61. */
#define TEN_YEARS_AT_5GHZ (10ull * 36525ull * 864ull * 5000000000ull)

static const uint64_t freqs[] = {
	1000000000ull, 2100000000ull, 2999999000ull, 3700000000ull,
	/* and some odd ones: a prime near 3 GHz, 5 GHz, a 25 MHz timer,
	 * a 1 Hz one (the smallest dp_tsc_scale_make takes) */
	2999999929ull, 5000000000ull, 25000000ull, 1ull,
};
#define FREQ_COUNT (sizeof(freqs) / sizeof(freqs[0]))

/* The conversion before issue 11, as dp_common.c had it. */
static uint64_t division_ns(uint64_t hz, uint64_t tsc)
{
	return tsc / hz * NS_PER_S + (tsc % hz) * NS_PER_S / hz;
}

static uint64_t exact_ns(uint64_t hz, uint64_t tsc)
{
	return (uint64_t)((dp_u128)tsc * NS_PER_S / hz);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The largest tsc whose nanoseconds still fit in 64 bits. */
static uint64_t tsc_limit(uint64_t hz)
{
	dp_u128 t = ((dp_u128)UINT64_MAX * hz) / NS_PER_S;
	return t > UINT64_MAX ? UINT64_MAX : (uint64_t)t;
}

/* Within 1 ns of both references; the failure names the numbers. */
static void check_one(uint64_t hz, struct dp_tsc_scale s, uint64_t tsc)
{
	assert_true(tsc <= tsc_limit(hz));
	uint64_t got = dp_tsc_scale_ns(s, tsc);
	uint64_t want = exact_ns(hz, tsc);
	uint64_t off = got > want ? got - want : want - got;
	if (off > 1)
		fail_msg("hz %" PRIu64 " tsc %" PRIu64 ": %" PRIu64
			 " ns, exact %" PRIu64, hz, tsc, got, want);
	/* The old division overflows once (tsc % hz) * 1e9 does. */
	if (hz <= UINT64_MAX / NS_PER_S) {
		uint64_t old = division_ns(hz, tsc);
		assert_int_equal(old, want);
	}
}

static void test_mult_is_full_width(void **state)
{
	(void)state;
	for (size_t f = 0; f < FREQ_COUNT; f++) {
		struct dp_tsc_scale s = dp_tsc_scale_make(freqs[f]);
		/* At least 2^63 - 1: that is what bounds the error. */
		assert_true(s.mult >= (UINT64_MAX >> 1));
		assert_true(s.shift <= DP_TSC_SCALE_SHIFT_MAX);
	}
}

static void test_small_counts_and_second_edges(void **state)
{
	(void)state;
	for (size_t f = 0; f < FREQ_COUNT; f++) {
		uint64_t hz = freqs[f];
		struct dp_tsc_scale s = dp_tsc_scale_make(hz);
		for (uint64_t t = 0; t < 100000; t++)
			check_one(hz, s, t);
		for (uint64_t sec = 1; sec < 100000; sec += 997)
			for (uint64_t d = 0; d < 3 && d <= sec * hz; d++) {
				check_one(hz, s, sec * hz - d);
				check_one(hz, s, sec * hz + d);
			}
	}
}

static void test_powers_of_two_and_ten_years(void **state)
{
	(void)state;
	for (size_t f = 0; f < FREQ_COUNT; f++) {
		uint64_t hz = freqs[f];
		struct dp_tsc_scale s = dp_tsc_scale_make(hz);
		uint64_t limit = tsc_limit(hz);
		for (unsigned b = 0; b < 64; b++) {
			uint64_t p = 1ull << b;
			for (uint64_t t = p - 2; t != p + 3; t++)
				if (t <= limit)
					check_one(hz, s, t);
		}
		for (uint64_t d = 0; d < 1000; d++) {
			if (TEN_YEARS_AT_5GHZ + d <= limit)
				check_one(hz, s, TEN_YEARS_AT_5GHZ + d);
			check_one(hz, s, limit - d);
		}
	}
	/* The 10 years themselves, at 5 GHz: 315576000 s to the ns. */
	struct dp_tsc_scale s = dp_tsc_scale_make(5000000000ull);
	uint64_t ns = dp_tsc_scale_ns(s, TEN_YEARS_AT_5GHZ);
	assert_true(ns >= 315576000ull * NS_PER_S - 1 &&
		    ns <= 315576000ull * NS_PER_S + 1);
}

static void test_random_counts(void **state)
{
	(void)state;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	for (size_t f = 0; f < FREQ_COUNT; f++) {
		uint64_t hz = freqs[f];
		struct dp_tsc_scale s = dp_tsc_scale_make(hz);
		uint64_t limit = tsc_limit(hz);
		for (int i = 0; i < 1000000; i++) {
			uint64_t r = xorshift(&seed);
			/* Half within 10 years at 5 GHz (as far as the ns fit),
			 * half anywhere. */
			uint64_t near = TEN_YEARS_AT_5GHZ < limit ? TEN_YEARS_AT_5GHZ
								 : limit;
			uint64_t t = i % 2 ? r % (near + 1) : r % limit;
			check_one(hz, s, t);
		}
	}
}

/* A later count never gives an earlier time: neighbours, and pairs. */
static void test_monotonic(void **state)
{
	(void)state;
	uint64_t seed = 0x243f6a8885a308d3ull;
	for (size_t f = 0; f < FREQ_COUNT; f++) {
		uint64_t hz = freqs[f];
		struct dp_tsc_scale s = dp_tsc_scale_make(hz);
		uint64_t limit = tsc_limit(hz);
		for (int i = 0; i < 20000; i++) {
			uint64_t t = xorshift(&seed) % (limit - 100);
			uint64_t prev = dp_tsc_scale_ns(s, t);
			for (uint64_t d = 1; d < 50; d++) {
				uint64_t ns = dp_tsc_scale_ns(s, t + d);
				assert_true(ns >= prev);
				prev = ns;
			}
			uint64_t a = xorshift(&seed) % limit;
			uint64_t b = xorshift(&seed) % limit;
			if (a > b) {
				uint64_t x = a;
				a = b;
				b = x;
			}
			assert_true(dp_tsc_scale_ns(s, a) <= dp_tsc_scale_ns(s, b));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mult_is_full_width),
		cmocka_unit_test(test_small_counts_and_second_edges),
		cmocka_unit_test(test_powers_of_two_and_ten_years),
		cmocka_unit_test(test_random_counts),
		cmocka_unit_test(test_monotonic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
