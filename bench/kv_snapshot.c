/* bypax-kv-snapshot: how long a snapshot of the KV store stalls the thread
 * that applies, synchronous (snapshot(), what bypaxd's worker did for every
 * disk snapshot before issue 12's incremental one) and incremental
 * (snapshot_begin, then snapshot_step between batches of PUTs, with
 * snapshot_write_frozen on another thread, as bypaxd does now).
 *
 *   bypax-kv-snapshot N [STEP_BYTES [PUTS_PER_STEP]]
 *
 * Fills a store of capacity N with N keys of 16 bytes holding 16-byte
 * values, then prints one line per way, and one for the same PUTs with
 * no snapshot at all:
 *   synchronous: keys=N bytes=B stall_ms=T
 *   incremental: keys=N bytes=B begin_us=T step_max_us=T steps=S
 *     copy_ms=T write_ms=T end_us=T puts_during_copy=P equal=yes
 *   no snapshot: keys=N batch_max_us=T batches=S
 * stall is the whole snapshot() call; begin_us the incremental way's
 * begin, and step_max_us the longest time from one step's end to the
 * next's: one batch of PUTS_PER_STEP PUTs (with the copies-on-write they
 * cause) and one step, so an upper bound on what a step adds; copy_ms is
 * begin to the last step; write_ms the other thread's serialization,
 * which stalls no one; end_us the applying thread's snapshot_end, which
 * gives the copy's memory back. equal says the two snapshots, both of the
 * state at begin, are byte-identical. STEP_BYTES defaults to bypaxd's
 * DP_SNAPSHOT_STEP_BYTES (65536), PUTS_PER_STEP to 32. Timings on a
 * shared machine vary: run it a few times.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bypax/kv.h"
#include "bypax/sm.h"

#define KEY_BYTES 16u
#define VALUE_BYTES 16u

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void put(const struct bpx_sm_ops *ops, void *sm, uint64_t key_n,
		uint64_t value_n)
{
	char key[32], value[32]; /* room for any u64; 16 bytes are used */
	uint8_t cmd[64], reply[16];
	snprintf(key, sizeof key, "k%015" PRIu64, key_n);
	snprintf(value, sizeof value, "v%015" PRIu64, value_n);
	int n = bpx_kv_encode(cmd, sizeof cmd, BPX_KV_PUT, key, KEY_BYTES,
			      value, VALUE_BYTES, NULL, 0);
	if (n < 0 ||
	    ops->apply(sm, cmd, (uint32_t)n, reply, sizeof reply) != 3 ||
	    reply[0] != BPX_KV_OK) {
		fprintf(stderr, "bypax-kv-snapshot: PUT %" PRIu64 " failed\n",
			key_n);
		exit(1);
	}
}

struct writer {
	const struct bpx_sm_ops *ops;
	void *sm;
	uint8_t *buf;
	size_t cap;
	int64_t written;
	double ns;
};

static void *write_frozen(void *arg)
{
	struct writer *w = arg;
	double t0 = now_ns();
	w->written = w->ops->snapshot_write_frozen(w->sm, w->buf, w->cap);
	w->ns = now_ns() - t0;
	return NULL;
}

static uint8_t *take_sync(const struct bpx_sm_ops *ops, void *sm, uint64_t keys,
			  size_t *len)
{
	*len = ops->snapshot_size(sm);
	uint8_t *buf = malloc(*len);
	if (buf == NULL)
		exit(2);
	double t0 = now_ns();
	int64_t n = ops->snapshot(sm, buf, *len);
	double t = now_ns() - t0;
	if (n != (int64_t)*len)
		exit(1);
	printf("synchronous: keys=%" PRIu64 " bytes=%zu stall_ms=%.1f\n", keys,
	       *len, t / 1e6);
	return buf;
}

/* The same loop as take_incremental's, without a snapshot: the longest
 * time one batch of PUTs takes here anyway (preemption on a shared
 * machine included), to read step_max_us against. */
static void measure_baseline(const struct bpx_sm_ops *ops, void *sm,
			     uint64_t keys, unsigned puts_per_step,
			     uint64_t batches)
{
	double max_ns = 0, last = now_ns();
	uint64_t puts = 0;
	for (uint64_t b = 0; b < batches; b++) {
		for (unsigned i = 0; i < puts_per_step; i++, puts++)
			put(ops, sm, (puts * 7919) % keys, puts + keys);
		double t = now_ns();
		if (t - last > max_ns)
			max_ns = t - last;
		last = t;
	}
	printf("no snapshot: keys=%" PRIu64
	       " batch_max_us=%.1f batches=%" PRIu64 "\n",
	       keys, max_ns / 1e3, batches);
}

static uint64_t take_incremental(const struct bpx_sm_ops *ops, void *sm,
				 uint64_t keys, size_t step_bytes,
				 unsigned puts_per_step, const uint8_t *want,
				 size_t want_len)
{
	double t0 = now_ns();
	int64_t size = ops->snapshot_begin(sm);
	double begin_ns = now_ns() - t0, step_max_ns = 0, last = now_ns();
	uint64_t steps = 0, puts = 0;
	for (int done = 0; !done; steps++) {
		for (unsigned i = 0; i < puts_per_step; i++, puts++)
			put(ops, sm, (puts * 7919) % keys, puts + keys);
		done = ops->snapshot_step(sm, step_bytes);
		double t = now_ns();
		if (t - last > step_max_ns)
			step_max_ns = t - last;
		last = t;
	}
	double copy_ns = now_ns() - t0;
	struct writer w = { .ops = ops, .sm = sm, .cap = (size_t)size };
	w.buf = malloc(w.cap);
	pthread_t th;
	if (size != (int64_t)want_len || w.buf == NULL ||
	    pthread_create(&th, NULL, write_frozen, &w) != 0)
		exit(1);
	for (unsigned i = 0; i < 1000; i++, puts++)
		put(ops, sm, (puts * 7919) % keys, puts + keys);
	pthread_join(th, NULL);
	double end_t0 = now_ns();
	ops->snapshot_end(sm);
	double end_ns = now_ns() - end_t0;
	bool equal = w.written == (int64_t)want_len &&
		     memcmp(w.buf, want, want_len) == 0;
	printf("incremental: keys=%" PRIu64 " bytes=%zu begin_us=%.1f "
	       "step_max_us=%.1f steps=%" PRIu64 " copy_ms=%.1f "
	       "write_ms=%.1f end_us=%.1f puts_during_copy=%" PRIu64
	       " equal=%s\n",
	       keys, want_len, begin_ns / 1e3, step_max_ns / 1e3, steps,
	       copy_ns / 1e6, w.ns / 1e6, end_ns / 1e3, steps * puts_per_step,
	       equal ? "yes" : "no");
	free(w.buf);
	if (!equal)
		exit(1);
	return steps;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: bypax-kv-snapshot N [STEP_BYTES "
				"[PUTS_PER_STEP]]\n");
		return 2;
	}
	uint64_t keys = strtoull(argv[1], NULL, 10);
	size_t step_bytes = argc > 2 ? strtoull(argv[2], NULL, 10) : 65536;
	unsigned puts_per_step = argc > 3 ? (unsigned)atoi(argv[3]) : 32;
	if (keys < 1 || keys > BPX_KV_CAPACITY_MAX || step_bytes < 1) {
		fprintf(stderr, "bypax-kv-snapshot: bad N '%s' or STEP_BYTES\n",
			argv[1]);
		return 2;
	}
	char args[64];
	snprintf(args, sizeof args, "capacity=%" PRIu64, keys);
	const struct bpx_sm_ops *ops = bpx_kv_ops();
	void *sm = ops->create(args);
	if (sm == NULL) {
		fprintf(stderr, "bypax-kv-snapshot: cannot create '%s'\n",
			args);
		return 2;
	}
	for (uint64_t i = 0; i < keys; i++)
		put(ops, sm, i, i);
	size_t len;
	uint8_t *want = take_sync(ops, sm, keys, &len);
	uint64_t steps = take_incremental(ops, sm, keys, step_bytes,
					  puts_per_step, want, len);
	measure_baseline(ops, sm, keys, puts_per_step, steps);
	free(want);
	ops->destroy(sm);
	return 0;
}
