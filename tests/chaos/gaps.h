/* Gaps in acknowledgements: for each fault window, the longest time the
 * clients went without any acknowledgement while the fault lasted (test
 * code; pure, no I/O). */
#ifndef BYPAX_TESTS_CHAOS_GAPS_H
#define BYPAX_TESTS_CHAOS_GAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ch_gap {
	bool valid;	  /* false: the window misses the run */
	uint64_t gap_ns;  /* to_ns - from_ns */
	uint64_t from_ns; /* the acknowledgement (or run start) before it */
	uint64_t to_ns;	  /* the next one (or run end) */
};

/* The longest interval between consecutive marks -- run_start_ns, acks[0..n)
 * (ascending, each within the run), run_end_ns -- that overlaps the window
 * [start_ns, end_ns]: an interval (a, b) overlaps it when a <= end_ns and
 * b >= start_ns. The run's ends count as marks so that a fault that
 * stopped every acknowledgement until the end still shows its gap.
 * Asserts run_start_ns <= run_end_ns and start_ns <= end_ns. */
struct ch_gap ch_fault_gap(const uint64_t *acks, size_t n,
			   uint64_t run_start_ns, uint64_t run_end_ns,
			   uint64_t start_ns, uint64_t end_ns);

/* The longest interval between consecutive marks of the whole run. */
struct ch_gap ch_max_gap(const uint64_t *acks, size_t n, uint64_t run_start_ns,
			 uint64_t run_end_ns);

/* The nearest-rank percentile pct (1..100) of sorted[0..n), n > 0: the
 * smallest value with at least pct% of the values at or below it. */
uint64_t ch_percentile(const uint64_t *sorted, size_t n, unsigned pct);

#endif /* BYPAX_TESTS_CHAOS_GAPS_H */
