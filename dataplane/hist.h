/* A log-linear latency histogram (HDR-style): values in [2^e, 2^(e+1)) fall
 * into BPX_HIST_SUB linear sub-buckets, so any percentile is within
 * 1/BPX_HIST_SUB (about 3%) of the truth, in fixed memory. */
#ifndef BYPAX_HIST_H
#define BYPAX_HIST_H

#include <stdint.h>

#define BPX_HIST_SUB_BITS 5u
#define BPX_HIST_SUB (1u << BPX_HIST_SUB_BITS)
#define BPX_HIST_BUCKETS (64u * BPX_HIST_SUB)

struct bpx_hist {
	uint64_t count;
	uint64_t sum;
	uint64_t min;
	uint64_t max;
	uint64_t buckets[BPX_HIST_BUCKETS];
};

void bpx_hist_reset(struct bpx_hist *h);
void bpx_hist_add(struct bpx_hist *h, uint64_t value);
void bpx_hist_merge(struct bpx_hist *into, const struct bpx_hist *from);
/* The value at quantile q (0..1): the upper edge of its bucket, or 0 when
 * the histogram is empty. */
uint64_t bpx_hist_quantile(const struct bpx_hist *h, double q);

#endif
