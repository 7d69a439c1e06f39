/* Gaps in acknowledgements (gaps.h). */
#include "gaps.h"

#include "history.h"

/* Mark j of the run: its start, then the acknowledgements, then its end. */
static uint64_t mark(const uint64_t *acks, size_t n, uint64_t run_start_ns,
		     uint64_t run_end_ns, size_t j)
{
	CH_ASSERT(j <= n + 1);
	if (j == 0)
		return run_start_ns;
	if (j == n + 1)
		return run_end_ns;
	return acks[j - 1];
}

/* The first interval j (marks j, j + 1) that ends at or after t. */
static size_t first_ending_after(const uint64_t *acks, size_t n, uint64_t t)
{
	size_t lo = 0, hi = n; /* acks[lo..hi) may be the first >= t */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (acks[mid] < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo; /* interval lo ends at acks[lo] (or the run's end) */
}

struct ch_gap ch_fault_gap(const uint64_t *acks, size_t n,
			   uint64_t run_start_ns, uint64_t run_end_ns,
			   uint64_t start_ns, uint64_t end_ns)
{
	struct ch_gap g = { .valid = false };
	CH_ASSERT(run_start_ns <= run_end_ns && start_ns <= end_ns);
	CH_ASSERT(n == 0 ||
		  (acks[0] >= run_start_ns && acks[n - 1] <= run_end_ns));
	if (end_ns < run_start_ns || start_ns > run_end_ns)
		return g;
	for (size_t j = first_ending_after(acks, n, start_ns); j <= n; j++) {
		uint64_t a = mark(acks, n, run_start_ns, run_end_ns, j);
		uint64_t b = mark(acks, n, run_start_ns, run_end_ns, j + 1);
		CH_ASSERT(a <= b); /* acks ascending, within the run */
		if (a > end_ns)
			break;
		if (!g.valid || b - a > g.gap_ns)
			g = (struct ch_gap){ true, b - a, a, b };
	}
	CH_ASSERT(g.valid); /* the window meets the run: some interval */
	return g;
}

struct ch_gap ch_max_gap(const uint64_t *acks, size_t n, uint64_t run_start_ns,
			 uint64_t run_end_ns)
{
	return ch_fault_gap(acks, n, run_start_ns, run_end_ns, run_start_ns,
			    run_end_ns);
}

uint64_t ch_percentile(const uint64_t *sorted, size_t n, unsigned pct)
{
	CH_ASSERT(n > 0 && pct >= 1 && pct <= 100);
	size_t rank = ((size_t)pct * n + 99) / 100; /* ceil(pct/100 * n) */
	CH_ASSERT(rank >= 1 && rank <= n);
	return sorted[rank - 1];
}
