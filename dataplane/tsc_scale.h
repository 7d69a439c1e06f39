/* TSC cycles to nanoseconds by multiply-shift (issue 11: the worker's
 * clock). Pure C, no DPDK, so the unit test (tests/unit/test_tsc_scale.c)
 * and bench/bench_dp.cc use it as dp_common.c does.
 *
 * The division it replaces, tsc / hz * 1e9 + tsc % hz * 1e9 / hz, costs
 * two 64-bit divisions (tens of cycles each) on every poll pass. Here
 *
 *     ns = (tsc * mult) >> shift,   mult = round(1e9 * 2^shift / hz),
 *
 * one 64x64->128-bit multiply and a shift, with shift the largest (at most
 * 96) that keeps mult below 2^64. For any hz from 1 Hz to 8e18 Hz that
 * makes mult at least 2^63, so mult is off the exact 1e9 * 2^shift / hz by
 * a factor of at most 1 +- 2^-64, and the result is off the exact
 * floor(tsc * 1e9 / hz) by at most 1 ns for every tsc whose nanoseconds
 * fit in 64 bits (584 years: 10 years at 5 GHz is 1.6e18 cycles, 3.2e17
 * ns). So the relative error is at most 1 ppm from 1 ms on, less beyond
 * (2^-64 plus 1 ns at any length). It is monotonic: mult >= 0, so a later tsc never
 * gives an earlier ns. */
#ifndef BPX_TSC_SCALE_H
#define BPX_TSC_SCALE_H

#include <stdint.h>

/* ISO C has no 128-bit integers; GCC and Clang do, and __extension__
 * keeps -Wpedantic quiet about it. */
__extension__ typedef unsigned __int128 dp_u128;

#define DP_TSC_SCALE_SHIFT_MAX 96u

struct dp_tsc_scale {
	uint64_t mult;
	uint32_t shift;
};

/* hz must be at least 1 (rte_get_tsc_hz() is, once the EAL is up). */
static inline struct dp_tsc_scale dp_tsc_scale_make(uint64_t hz)
{
	const dp_u128 limit = (dp_u128)1 << 64;
	uint32_t shift = 0;
	/* mult at shift + 1, rounded to nearest, must stay below 2^64. */
	while (shift < DP_TSC_SCALE_SHIFT_MAX &&
	       ((((dp_u128)1000000000u << (shift + 1)) + hz / 2) / hz) < limit)
		shift++;
	dp_u128 mult = (((dp_u128)1000000000u << shift) + hz / 2) / hz;
	return (struct dp_tsc_scale){ .mult = (uint64_t)mult, .shift = shift };
}

static inline uint64_t dp_tsc_scale_ns(struct dp_tsc_scale s, uint64_t tsc)
{
	return (uint64_t)(((dp_u128)tsc * s.mult) >> s.shift);
}

#endif
