/* Unit tests for the KV store's incremental snapshots (sm.h's
 * snapshot_begin..snapshot_end, sm/kv_store.c's copy-on-write image).
 *
 * The property: while random PUT, CAS and DELETE commands are applied
 * between copy steps, the snapshot written from the frozen image equals,
 * byte for byte, the synchronous snapshot() taken at begin. Built a second
 * time as test kv_cow_plant, with one write site's copy-on-write left out
 * (KV_TEST_PLANT_NO_COW_SHIFT: the backward shift of a delete), which this
 * test must catch: meson expects that build to fail.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sys/resource.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bypax/errors.h"
#include "bypax/kv.h"
#include "bypax/sm.h"

#define KEYS_MAX 40000u
#define CAPACITY_ARGS "capacity=50000"

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A random command on one of KEYS_MAX keys: PUT (often), DEL, or a CAS
 * that may match; values of 0..200 bytes, so entries span one to five
 * chunks and chains grow and shrink. */
static void apply_random(const struct bpx_sm_ops *ops, void *sm, uint64_t *rng)
{
	uint8_t key[24], value[200], cmd[512],
		reply[BPX_KV_VALUE_BYTES_MAX + 8];
	uint64_t r = splitmix64(rng);
	int key_len = snprintf((char *)key, sizeof key, "key-%llu",
			       (unsigned long long)(r % KEYS_MAX));
	size_t value_len = (r >> 20) % 5 == 0 ? (r >> 24) % 200 : 16;
	memset(value, (int)(r >> 40), value_len);
	unsigned pick = (unsigned)((r >> 56) % 10);
	enum bpx_kv_op op = pick < 6 ? BPX_KV_PUT :
			    pick < 9 ? BPX_KV_DEL :
				       BPX_KV_CAS;
	int n = bpx_kv_encode(cmd, sizeof cmd, op, key, (size_t)key_len,
			      op == BPX_KV_DEL ? NULL : value,
			      op == BPX_KV_DEL ? 0 : value_len,
			      op == BPX_KV_CAS ? value : NULL,
			      op == BPX_KV_CAS ? value_len / 2 : 0);
	assert_true(n > 0);
	assert_true(ops->apply(sm, cmd, (uint32_t)n, reply, sizeof reply) > 0);
}

static uint8_t *snapshot_now(const struct bpx_sm_ops *ops, void *sm,
			     size_t *len)
{
	*len = ops->snapshot_size(sm);
	uint8_t *buf = malloc(*len);
	assert_non_null(buf);
	assert_int_equal(ops->snapshot(sm, buf, *len), (int64_t)*len);
	return buf;
}

static void *filled_store(uint64_t *rng, unsigned commands)
{
	const struct bpx_sm_ops *ops = bpx_kv_ops();
	void *sm = ops->create(CAPACITY_ARGS);
	assert_non_null(sm);
	for (unsigned i = 0; i < commands; i++)
		apply_random(ops, sm, rng);
	return sm;
}

/* Steps one piece at a time, ops_per_step commands between steps, until
 * the image is complete; returns the steps taken. */
static unsigned copy_while_applying(const struct bpx_sm_ops *ops, void *sm,
				    uint64_t *rng, unsigned ops_per_step)
{
	unsigned steps = 0;
	int done;
	while ((done = ops->snapshot_step(sm, 1)) == 0) {
		for (unsigned i = 0; i < ops_per_step; i++)
			apply_random(ops, sm, rng);
		steps++;
	}
	assert_int_equal(done, 1);
	return steps;
}

static void expect_frozen_equals(const struct bpx_sm_ops *ops, void *sm,
				 const uint8_t *want, size_t want_len)
{
	uint8_t *got = malloc(want_len);
	assert_non_null(got);
	assert_int_equal(ops->snapshot_write_frozen(sm, got, want_len - 1),
			 -BPX_ETOOBIG);
	assert_int_equal(ops->snapshot_write_frozen(sm, got, want_len),
			 (int64_t)want_len);
	size_t i = 0;
	while (i < want_len && got[i] == want[i])
		i++;
	if (i < want_len)
		fail_msg("the frozen snapshot differs from the one taken at "
			 "begin at byte %zu of %zu",
			 i, want_len);
	free(got);
}

/* The property, over several seeds and rates of writes per step. */
static void frozen_equals_snapshot_at_begin(void **state)
{
	(void)state;
	const struct bpx_sm_ops *ops = bpx_kv_ops();
	assert_non_null(ops->snapshot_begin);
	for (uint64_t seed = 1; seed <= 6; seed++) {
		uint64_t rng = seed;
		void *sm = filled_store(&rng, 60000);
		size_t want_len;
		uint8_t *want = snapshot_now(ops, sm, &want_len);
		assert_int_equal(ops->snapshot_begin(sm), (int64_t)want_len);
		assert_int_equal(ops->snapshot_begin(sm), -BPX_EBUSY);
		unsigned steps =
			copy_while_applying(ops, sm, &rng, (unsigned)seed);
		assert_true(steps > 3); /* writes ran among several steps */
		/* More writes after the copy: the image is no longer the
		 * live store's, and must not follow it. */
		for (unsigned i = 0; i < 5000; i++)
			apply_random(ops, sm, &rng);
		expect_frozen_equals(ops, sm, want, want_len);
		ops->snapshot_end(sm);
		assert_int_equal(ops->snapshot_step(sm, 1), -BPX_EINVAL);
		ops->snapshot_end(sm); /* a no-op */
		/* The next one starts from the state now. */
		free(want);
		want = snapshot_now(ops, sm, &want_len);
		assert_int_equal(ops->snapshot_begin(sm), (int64_t)want_len);
		copy_while_applying(ops, sm, &rng, 7);
		expect_frozen_equals(ops, sm, want, want_len);
		ops->snapshot_end(sm);
		free(want);
		ops->destroy(sm);
	}
}

/* A write to every piece before any step: each copy comes from the write. */
static void every_piece_copied_on_write(void **state)
{
	(void)state;
	const struct bpx_sm_ops *ops = bpx_kv_ops();
	uint64_t rng = 99;
	void *sm = filled_store(&rng, 60000);
	size_t want_len;
	uint8_t *want = snapshot_now(ops, sm, &want_len);
	assert_true(ops->snapshot_begin(sm) > 0);
	for (unsigned i = 0; i < 100000; i++)
		apply_random(ops, sm, &rng);
	assert_int_equal(ops->snapshot_step(sm, (size_t)1 << 30), 1);
	expect_frozen_equals(ops, sm, want, want_len);
	ops->snapshot_end(sm);
	free(want);
	ops->destroy(sm);
}

/* restore() (a peer's snapshot installed) ends a copy in progress, and
 * leaves a complete image to its reader. */
static void restore_ends_a_copy_in_progress(void **state)
{
	(void)state;
	const struct bpx_sm_ops *ops = bpx_kv_ops();
	uint64_t rng = 7;
	void *sm = filled_store(&rng, 30000);
	void *peer = filled_store(&rng, 30000);
	size_t peer_len, want_len;
	uint8_t *peer_snap = snapshot_now(ops, peer, &peer_len);

	assert_true(ops->snapshot_begin(sm) > 0);
	assert_int_equal(ops->snapshot_step(sm, 1), 0);
	assert_int_equal(ops->restore(sm, peer_snap, peer_len), 0);
	assert_int_equal(ops->snapshot_step(sm, 1), -BPX_EINVAL);
	ops->snapshot_end(sm);
	assert_true(ops->digest(sm) == ops->digest(peer));

	uint8_t *want = snapshot_now(ops, sm, &want_len);
	assert_int_equal(ops->snapshot_begin(sm), (int64_t)want_len);
	assert_int_equal(ops->snapshot_step(sm, (size_t)1 << 30), 1);
	ops->destroy(peer);
	peer = filled_store(&rng, 1000);
	free(peer_snap);
	peer_snap = snapshot_now(ops, peer, &peer_len);
	assert_int_equal(ops->restore(sm, peer_snap, peer_len), 0);
	expect_frozen_equals(ops, sm, want, want_len);
	ops->snapshot_end(sm);
	free(want);
	free(peer_snap);
	ops->destroy(peer);
	ops->destroy(sm);
}

/* ---- Another thread writes the frozen image while this one applies ---- */

struct writer_job {
	const struct bpx_sm_ops *ops;
	void *sm;
	uint8_t *buf;
	size_t cap;
	int64_t written;
};

static void *write_frozen_thread(void *arg)
{
	struct writer_job *j = arg;
	j->written = j->ops->snapshot_write_frozen(j->sm, j->buf, j->cap);
	return NULL;
}

static void frozen_written_by_another_thread(void **state)
{
	(void)state;
	const struct bpx_sm_ops *ops = bpx_kv_ops();
	uint64_t rng = 31;
	void *sm = filled_store(&rng, 60000);
	size_t want_len;
	uint8_t *want = snapshot_now(ops, sm, &want_len);
	assert_true(ops->snapshot_begin(sm) > 0);
	copy_while_applying(ops, sm, &rng, 20);
	struct writer_job j = {
		.ops = ops, .sm = sm, .buf = malloc(want_len), .cap = want_len
	};
	assert_non_null(j.buf);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, write_frozen_thread, &j), 0);
	for (unsigned i = 0; i < 20000; i++)
		apply_random(ops, sm, &rng);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(j.written, (int64_t)want_len);
	assert_memory_equal(j.buf, want, want_len);
	ops->snapshot_end(sm);
	free(j.buf);
	free(want);
	ops->destroy(sm);
}

/* Resident memory, in pages, from /proc/self/statm. */
static long resident_pages(void)
{
	long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%ld %ld", &size, &resident), 2);
	fclose(f);
	return resident;
}

/* The image is resident only while a snapshot is in progress: issue 11's
 * bytes per key stay what they were. snapshot_write_frozen gives it back
 * (on the writing thread), or snapshot_end does when nothing wrote it. */
static void image_memory_given_back(void **state)
{
	(void)state;
	const struct bpx_sm_ops *ops = bpx_kv_ops();
	uint64_t rng = 5;
	void *sm = filled_store(&rng, 60000);
	size_t len = ops->snapshot_size(sm);
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	memset(buf, 1, len); /* resident before the first reading */
	long page = sysconf(_SC_PAGESIZE);
	for (int written = 0; written <= 1; written++) {
		long before = resident_pages();
		assert_true(ops->snapshot_begin(sm) > 0);
		assert_int_equal(ops->snapshot_step(sm, (size_t)1 << 30), 1);
		long copying = resident_pages();
		if (written)
			assert_int_equal(ops->snapshot_write_frozen(sm, buf,
								    len),
					 (int64_t)len);
		long after_write = resident_pages();
		ops->snapshot_end(sm);
		long after = resident_pages();
		/* The store holds about 1.6 MB of chunks and 0.4 MB of
		 * index. */
		long grew = (copying - before) * page;
		long kept = ((written ? after_write : after) - before) * page;
		if (grew < 1500000 || kept > 200000 ||
		    (after - before) * page > 200000)
			fail_msg("resident bytes: +%ld while copying, %+ld "
				 "after %s",
				 grew, kept, written ? "the write" : "end");
	}
	free(buf);
	ops->destroy(sm);
}

/* This process's data size (VmData, the mappings RLIMIT_DATA counts). */
static rlim_t data_bytes(void)
{
	char line[128];
	unsigned long kb = 0;
	FILE *f = fopen("/proc/self/status", "r");
	assert_non_null(f);
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "VmData: %lu kB", &kb) == 1)
			break;
	fclose(f);
	assert_true(kb > 0);
	return (rlim_t)kb << 10;
}

/* The kernel refusing the copy its memory (as strict overcommit would,
 * played here by RLIMIT_DATA): begin says -BPX_ENOMEM, begins nothing,
 * and the next try, with the memory, works. */
static void begin_without_memory_refuses(void **state)
{
	(void)state;
	const struct bpx_sm_ops *ops = bpx_kv_ops();
	uint64_t rng = 3;
	void *sm = filled_store(&rng, 30000);
	struct rlimit saved, tight;
	assert_int_equal(getrlimit(RLIMIT_DATA, &saved), 0);
	tight = saved;
	tight.rlim_cur = data_bytes() + (64u << 10);
	assert_int_equal(setrlimit(RLIMIT_DATA, &tight), 0);
	int64_t refused = ops->snapshot_begin(sm);
	assert_int_equal(setrlimit(RLIMIT_DATA, &saved), 0);
	assert_int_equal(refused, -BPX_ENOMEM);
	assert_int_equal(ops->snapshot_step(sm, 1), -BPX_EINVAL);
	apply_random(ops, sm, &rng); /* no copy is due */
	size_t want_len;
	uint8_t *want = snapshot_now(ops, sm, &want_len);
	assert_int_equal(ops->snapshot_begin(sm), (int64_t)want_len);
	assert_int_equal(ops->snapshot_step(sm, (size_t)1 << 30), 1);
	expect_frozen_equals(ops, sm, want, want_len);
	ops->snapshot_end(sm);
	free(want);
	ops->destroy(sm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(frozen_equals_snapshot_at_begin),
		cmocka_unit_test(every_piece_copied_on_write),
		cmocka_unit_test(restore_ends_a_copy_in_progress),
		cmocka_unit_test(frozen_written_by_another_thread),
		cmocka_unit_test(image_memory_given_back),
		cmocka_unit_test(begin_without_memory_refuses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
