/* bypax-kv-mem: what the KV store costs, measured rather than counted.
 *
 * Fills a store with N keys of 16 bytes holding 16-byte values, prints the
 * resident memory it grew by (bytes per key), then times overwriting PUTs
 * of keys spread over the whole store (ns and TSC cycles per apply). The
 * store is filled first, so the timed PUTs touch pre-faulted memory, as
 * bypaxd's mlockall makes it.
 *
 *   bypax-kv-mem N [SM_ARGS [PUTS [BATCH]]]
 *
 * SM_ARGS defaults to the exact fit, capacity=N,bytes=N*48; PUTS to
 * 2000000; BATCH to 1. A BATCH above 1 applies the PUTs in groups of that
 * many, each after bpx_kv_prefetch of the group, as a replica would apply
 * a committed slot's requests. Only the sm.h ops and the command codec are
 * used otherwise, so with -DKV_MEM_NO_PREFETCH the same file builds
 * against an older sm/kv.c for before-and-after numbers.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bypax/kv.h"

#if defined(__x86_64__)
#include <x86intrin.h>
static uint64_t cycles(void)
{
	return __rdtsc();
}
#else
static uint64_t cycles(void)
{
	return 0;
}
#endif

#define KEY_BYTES 16u
#define VALUE_BYTES 16u

static long rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f == NULL || fscanf(f, "%ld %ld", &pages, &rss) != 2) {
		fprintf(stderr, "bypax-kv-mem: cannot read /proc/self/statm\n");
		exit(2);
	}
	fclose(f);
	return rss * 4096;
}

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b != 0) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

#define BATCH_MAX 64u

/* Key i: "kvmem---" then i as 8 little-endian bytes; its value likewise. */
static void set_key(uint8_t *cmd, uint64_t i, uint64_t round)
{
	uint8_t *key = cmd + BPX_KV_CMD_HEADER_BYTES;
	memcpy(key + 8, &i, sizeof i);
	memcpy(key + KEY_BYTES + 8, &round, sizeof round);
}

static void apply_put(const struct bpx_sm_ops *ops, void *sm,
		      const uint8_t *cmd, int cmd_len, uint64_t i)
{
	uint8_t reply[BPX_SM_REPLY_BYTES_MAX];
	int len = ops->apply(sm, cmd, (uint32_t)cmd_len, reply, sizeof reply);
	if (len < 1 || reply[0] != BPX_KV_OK) {
		fprintf(stderr, "bypax-kv-mem: PUT %" PRIu64 " answered %d\n",
			i, len < 1 ? -1 : reply[0]);
		exit(1);
	}
}

static void put(const struct bpx_sm_ops *ops, void *sm, uint8_t *cmd,
		int cmd_len, uint64_t i, uint64_t round)
{
	set_key(cmd, i, round);
	apply_put(ops, sm, cmd, cmd_len, i);
}

/* The timed part: puts overwrites, batch at a time. */
static void overwrite(const struct bpx_sm_ops *ops, void *sm,
		      uint8_t (*cmds)[BPX_KV_CMD_BYTES_MAX], int cmd_len,
		      uint64_t n, uint64_t puts, uint32_t batch)
{
	/* An order that jumps across the whole store (a stride coprime to
	 * n), so the index and arena miss the caches as a large store's
	 * would. */
	uint64_t stride = 2654435761u % n;
	while (n > 1 && gcd(stride, n) != 1)
		stride = (stride + 1) % n;
	const uint8_t *ptrs[BATCH_MAX];
	uint32_t lens[BATCH_MAX];
	uint64_t k = 0, keys[BATCH_MAX];
	for (uint64_t j = 0; j < puts; j += batch) {
		uint32_t m = puts - j < batch ? (uint32_t)(puts - j) : batch;
		for (uint32_t b = 0; b < m; b++) {
			set_key(cmds[b], k, j + b + 1);
			keys[b] = k;
			ptrs[b] = cmds[b];
			lens[b] = (uint32_t)cmd_len;
			k += stride;
			if (k >= n)
				k -= n;
		}
#ifndef KV_MEM_NO_PREFETCH
		if (batch > 1)
			bpx_kv_prefetch(sm, ptrs, lens, m);
#endif
		for (uint32_t b = 0; b < m; b++)
			apply_put(ops, sm, cmds[b], cmd_len, keys[b]);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 5) {
		fprintf(stderr,
			"usage: bypax-kv-mem N [SM_ARGS [PUTS [BATCH]]]\n");
		return 2;
	}
	uint64_t n = strtoull(argv[1], NULL, 10);
	char args[128];
	snprintf(args, sizeof args, "capacity=%" PRIu64 ",bytes=%" PRIu64, n,
		 n * 48);
	const char *sm_args = argc > 2 ? argv[2] : args;
	uint64_t puts = argc > 3 ? strtoull(argv[3], NULL, 10) : 2000000;
	uint64_t batch = argc > 4 ? strtoull(argv[4], NULL, 10) : 1;
	if (n < 1 || puts < 1 || batch < 1 || batch > BATCH_MAX) {
		fprintf(stderr,
			"bypax-kv-mem: N and PUTS must be >= 1, BATCH "
			"1..%u\n",
			BATCH_MAX);
		return 2;
	}

	const struct bpx_sm_ops *ops = bpx_kv_ops();
	static uint8_t cmds[BATCH_MAX][BPX_KV_CMD_BYTES_MAX];
	uint8_t *cmd = cmds[0];
	uint8_t key[KEY_BYTES] = "kvmem---", value[VALUE_BYTES] = "value---";
	int cmd_len = bpx_kv_encode(cmd, sizeof cmds[0], BPX_KV_PUT, key,
				    sizeof key, value, sizeof value, NULL, 0);
	for (uint32_t b = 1; b < BATCH_MAX && cmd_len > 0; b++)
		memcpy(cmds[b], cmd, (size_t)cmd_len);
	long rss_start = rss_bytes();
	void *sm = ops->create(sm_args);
	if (cmd_len < 0) {
		fprintf(stderr, "bypax-kv-mem: encode: %d\n", cmd_len);
		return 1;
	}
	if (sm == NULL) {
		fprintf(stderr, "bypax-kv-mem: the store refused '%s'\n",
			sm_args);
		return 1;
	}
	double t0 = now_ns();
	for (uint64_t i = 0; i < n; i++)
		put(ops, sm, cmd, cmd_len, i, 0);
	double fill_s = (now_ns() - t0) / 1e9;
	long grown = rss_bytes() - rss_start;
	printf("kv-mem: %s: %" PRIu64 " keys of %u+%u bytes filled in %.2f s; "
	       "resident +%.1f MiB, %.1f bytes per key\n",
	       sm_args, n, KEY_BYTES, VALUE_BYTES, fill_s,
	       (double)grown / 1048576.0, (double)grown / (double)n);

	double t1 = now_ns();
	uint64_t c1 = cycles();
	overwrite(ops, sm, cmds, cmd_len, n, puts, (uint32_t)batch);
	uint64_t c2 = cycles();
	double ns = (now_ns() - t1) / (double)puts;
	printf("kv-mem: %" PRIu64 " overwriting PUTs in batches of %" PRIu64
	       ": %.1f ns, %.0f cycles per apply; digest %016" PRIx64 "\n",
	       puts, batch, ns, (double)(c2 - c1) / (double)puts,
	       ops->digest(sm));
	ops->destroy(sm);
	return 0;
}
