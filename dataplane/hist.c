#include <string.h>

#include "hist.h"

void bpx_hist_reset(struct bpx_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static uint32_t bucket_of(uint64_t v)
{
	if (v < BPX_HIST_SUB)
		return (uint32_t)v; /* exact for small values */
	uint32_t e = 63u - (uint32_t)__builtin_clzll(v);
	uint32_t sub = (uint32_t)(v >> (e - BPX_HIST_SUB_BITS)) &
		       (BPX_HIST_SUB - 1);
	return (e - BPX_HIST_SUB_BITS + 1) * BPX_HIST_SUB + sub;
}

static uint64_t bucket_top(uint32_t b)
{
	if (b < BPX_HIST_SUB)
		return b;
	uint32_t e = b / BPX_HIST_SUB + BPX_HIST_SUB_BITS - 1;
	uint64_t sub = b % BPX_HIST_SUB;
	uint64_t base = (1ull << e) | (sub << (e - BPX_HIST_SUB_BITS));
	return base + (1ull << (e - BPX_HIST_SUB_BITS)) - 1;
}

void bpx_hist_add(struct bpx_hist *h, uint64_t v)
{
	h->buckets[bucket_of(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void bpx_hist_merge(struct bpx_hist *into, const struct bpx_hist *from)
{
	for (uint32_t i = 0; i < BPX_HIST_BUCKETS; i++)
		into->buckets[i] += from->buckets[i];
	into->count += from->count;
	into->sum += from->sum;
	if (from->min < into->min)
		into->min = from->min;
	if (from->max > into->max)
		into->max = from->max;
}

uint64_t bpx_hist_quantile(const struct bpx_hist *h, double q)
{
	if (h->count == 0)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)h->count);
	if (rank >= h->count)
		rank = h->count - 1;
	uint64_t seen = 0;
	for (uint32_t b = 0; b < BPX_HIST_BUCKETS; b++) {
		seen += h->buckets[b];
		if (seen > rank) {
			uint64_t top = bucket_top(b);
			return top > h->max ? h->max : top;
		}
	}
	return h->max;
}
