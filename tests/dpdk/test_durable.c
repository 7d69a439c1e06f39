/* The worker's side of durable mode (dataplane/durable.c), on real mbufs
 * and a real write-ahead log in a temporary directory: frames after a
 * promise or a vote wait for the pass's one sync, nothing waits for a
 * COMMIT record, a full queue of waiting frames syncs early, and after a
 * disk failure nothing is sent again (the caller's rule of consensus.h).
 * The port is marked paused, so a frame released to it is freed and
 * counted (tx_full) instead of sent: the count says what was released. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include <rte_eal.h>
#include <rte_mbuf.h>

#include "bypax/kv.h"
#include "disk_snapshot.h"
#include "dp.h"
#include "wal.h"

static struct rte_mempool *pool;

struct fixture {
	char dir[64];
	struct bpx_config cfg;
	struct dp_replica r;
	struct dp_txq q;
	uint8_t paused[RTE_MAX_ETHPORTS];
	int fail_sync; /* errno for the next syncs, 0: none */
};

static int fault(void *arg, enum dp_wal_op op)
{
	struct fixture *f = arg;
	return op == DP_WAL_OP_SYNC ? f->fail_sync : 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/bpx-test-durable-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->cfg.durability = BPX_DURABILITY_WAL;
	f->cfg.disk_snapshot_slots = 1000;
	f->cfg.member_count = 3;
	f->r.cfg = &f->cfg;
	f->r.port_paused = f->paused;
	f->paused[0] = 1;
	struct dp_wal_config wc = { .dir = f->dir,
				    .segment_bytes = 1 << 20,
				    .buffer_bytes = 1 << 16,
				    .fault = fault,
				    .fault_arg = f };
	struct dp_wal_replay info;
	struct dp_wal *w;
	char err[256];
	assert_int_equal(
		dp_wal_open(&wc, NULL, NULL, &info, &w, err, sizeof(err)), 0);
	dp_replica_enable_durable(&f->r, w, NULL, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	dp_wal_close(f->r.dur.wal);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	/* Every frame was sent (freed, here) or dropped: none leaked. */
	assert_int_equal(rte_mempool_in_use_count(pool), 0);
	free(f);
	return 0;
}

static void persist(struct fixture *f, uint8_t flags)
{
	static const uint8_t value[] = "a value";
	struct px_msg m = { .type = PX_MSG_PERSIST,
			    .flags = flags,
			    .ballot = px_ballot_make(3, 1),
			    .slot = 7,
			    .commit_index = 7 };
	if (flags == PX_PERSIST_ACCEPTED) {
		m.value = value;
		m.value_len = sizeof(value);
	}
	dp_durable_persist(&f->r, &m);
}

/* What push_frame does: held, or released at once (the port is paused:
 * freed and counted in tx_full). */
static bool push(struct fixture *f)
{
	struct rte_mbuf *mb = rte_pktmbuf_alloc(pool);
	assert_non_null(mb);
	if (dp_durable_hold(&f->r, &f->q, mb))
		return true;
	dp_replica_push_now(&f->r, &f->q, mb);
	return false;
}

static void test_frames_wait_for_the_sync(void **state)
{
	struct fixture *f = *state;
	assert_false(push(f)); /* nothing to wait for */
	assert_int_equal(f->r.ctr.tx_full, 1);
	persist(f, PX_PERSIST_PROMISE);
	persist(f, PX_PERSIST_ACCEPTED);
	for (int i = 0; i < 5; i++)
		assert_true(push(f));
	assert_int_equal(f->r.ctr.tx_full, 1);
	assert_int_equal(f->r.dur.group_commits, 0);
	dp_durable_commit(&f->r);
	assert_int_equal(f->r.dur.group_commits, 1); /* one sync for both */
	assert_int_equal(f->r.ctr.tx_full, 6);	     /* the five released */
	assert_int_equal(f->r.dur.held_frames, 5);
	assert_int_equal(f->r.dur.records, 2);
	assert_true(f->r.dur.wal_syncs >= 1);
	assert_false(push(f)); /* synced: no wait */
	dp_durable_commit(&f->r);
	assert_int_equal(f->r.dur.group_commits, 1); /* nothing to sync */
}

/* A COMMIT record may be lost: nothing waits for it. */
static void test_nothing_waits_for_a_commit_record(void **state)
{
	struct fixture *f = *state;
	persist(f, PX_PERSIST_COMMIT);
	assert_false(push(f));
	dp_durable_commit(&f->r);
	assert_int_equal(f->r.dur.group_commits, 0);
	/* It rides along with the next vote's sync. */
	persist(f, PX_PERSIST_ACCEPTED);
	assert_true(push(f));
	dp_durable_commit(&f->r);
	assert_int_equal(f->r.dur.group_commits, 1);
	assert_false(dp_wal_unsynced(f->r.dur.wal));
}

/* The queue of waiting frames is bounded: the one past it syncs early. */
static void test_a_full_queue_syncs_early(void **state)
{
	struct fixture *f = *state;
	persist(f, PX_PERSIST_ACCEPTED);
	for (unsigned i = 0; i < DP_HELD_MAX; i++)
		assert_true(push(f));
	assert_int_equal(f->r.dur.held_count, DP_HELD_MAX);
	assert_false(push(f)); /* synced early, then sent at once */
	assert_int_equal(f->r.dur.group_commits, 1);
	assert_int_equal(f->r.dur.held_count, 0);
	assert_int_equal(f->r.ctr.tx_full, DP_HELD_MAX + 1);
}

/* A failed sync: the frames that waited never go, nor anything later. */
static void test_a_failed_sync_stops_every_send(void **state)
{
	struct fixture *f = *state;
	persist(f, PX_PERSIST_ACCEPTED);
	for (int i = 0; i < 3; i++)
		assert_true(push(f));
	f->fail_sync = ENOSPC;
	dp_durable_commit(&f->r);
	assert_true(f->r.dur.failed);
	assert_non_null(strstr(f->r.dur.failed_text, "fdatasync"));
	assert_non_null(strstr(f->r.dur.failed_text, strerror(ENOSPC)));
	assert_int_equal(f->r.ctr.tx_full, 0); /* none released */
	assert_int_equal(f->r.dur.failed_drops, 3);
	f->fail_sync = 0; /* the disk has room again: still failed */
	assert_true(push(f));
	assert_int_equal(f->r.dur.failed_drops, 4);
	persist(f, PX_PERSIST_PROMISE);
	assert_int_equal(f->r.dur.records, 1); /* not appended any more */
	dp_durable_commit(&f->r);
	assert_int_equal(f->r.ctr.tx_full, 0);
}

/* ---- Disk snapshots (dp_durable_snapshots) ---- */

/* A one-member consensus core over the KV store, and the writer thread:
 * what dp_durable_snapshots needs besides the log. ops is the store's, or
 * a copy of it without the incremental snapshot ops (as a version 2 .so
 * loads). */
struct snap_rig {
	struct px_config pc;
	struct bpx_sm_ops ops;
	void *mem;
};

static void put(struct snap_rig *g, unsigned key, unsigned value);

static void snap_rig_start(struct fixture *f, struct snap_rig *g,
			   bool incremental)
{
	g->ops = *bpx_kv_ops();
	if (!incremental) {
		g->ops.snapshot_begin = NULL;
		g->ops.snapshot_step = NULL;
		g->ops.snapshot_write_frozen = NULL;
		g->ops.snapshot_end = NULL;
	}
	px_config_default(&g->pc, 1, 0);
	g->pc.sm_ops = &g->ops;
	g->pc.sm = g->ops.create("capacity=20000");
	assert_non_null(g->pc.sm);
	size_t bytes = px_replica_size(&g->pc);
	g->mem = aligned_alloc(64, (bytes + 63) / 64 * 64);
	assert_int_equal(px_init(g->mem, bytes, &g->pc, &f->r.px), 0);
	f->r.sm_ops = &g->ops;
	f->r.sm = g->pc.sm;
	char err[256];
	assert_int_equal(dp_snapwriter_start(f->dir, 4 << 20, &f->r.dur.snapw,
					     err, sizeof(err)),
			 0);
	f->r.dur.snapshot_every_slots = 0; /* one is due at once */
	for (unsigned i = 0; i < 15000; i++)
		put(g, i, i);
}

static void snap_rig_stop(struct fixture *f, struct snap_rig *g)
{
	dp_snapwriter_stop(f->r.dur.snapw);
	f->r.dur.snapw = NULL;
	g->ops.destroy(g->pc.sm);
	free(g->mem);
}

static void put(struct snap_rig *g, unsigned key, unsigned value)
{
	char k[16], v[24];
	uint8_t cmd[64], reply[8];
	int kl = snprintf(k, sizeof(k), "key%u", key % 15000);
	int vl = snprintf(v, sizeof(v), "value%u", value);
	int n = bpx_kv_encode(cmd, sizeof(cmd), BPX_KV_PUT, k, (size_t)kl, v,
			      (size_t)vl, NULL, 0);
	assert_int_equal(g->ops.apply(g->pc.sm, cmd, (uint32_t)n, reply,
				      sizeof(reply)),
			 3);
}

/* Polls dp_durable_snapshots (a tick each), PUTs between, until one
 * snapshot is durable; returns the polls. */
static unsigned tick_until_written(struct fixture *f, struct snap_rig *g)
{
	for (unsigned polls = 1; polls < 100000; polls++) {
		dp_durable_snapshots(&f->r);
		if (f->r.dur.disk_snapshots == 1)
			return polls;
		put(g, polls * 7, polls);
		if (f->r.dur.frozen_submitted)
			usleep(100);
	}
	fail_msg("no snapshot on disk after 100000 polls");
	return 0;
}

/* The body on disk is px_snapshot_save's at the first poll. */
static void expect_file_is(struct fixture *f, const uint8_t *want,
			   size_t want_len)
{
	uint8_t *file;
	size_t len;
	struct px_snapfile_info info;
	char err[256];
	assert_int_equal(dp_disk_snapshot_load(f->dir, 0, 3, &file, &len, &info,
					       err, sizeof(err)),
			 0);
	assert_int_equal(len, px_snapfile_size(want_len));
	assert_memory_equal(file + PX_SNAPFILE_HEADER_BYTES, want, want_len);
	free(file);
}

/* A snapshot saved whole (no copy passes), polled until it is on disk:
 * the file holds want. */
static void expect_saved_whole(struct fixture *f, const uint8_t *want,
			       size_t want_len)
{
	for (unsigned i = 0; i < 5000 && f->r.dur.disk_snapshots == 0; i++) {
		usleep(1000);
		dp_durable_snapshots(&f->r);
	}
	assert_int_equal(f->r.dur.disk_snapshots, 1);
	assert_int_equal(f->r.dur.copy_passes, 0);
	expect_file_is(f, want, want_len);
}

static uint8_t *save_now(struct fixture *f, size_t *len)
{
	size_t cap = px_snapshot_size(f->r.px);
	uint8_t *buf = malloc(cap);
	assert_non_null(buf);
	int64_t n = px_snapshot_save(f->r.px, buf, cap);
	assert_true(n > 0);
	*len = (size_t)n;
	return buf;
}

/* Incremental: the worker copies over many polls, writes go on, and the
 * file holds the state of the first poll; the frozen copy is given back. */
static void test_disk_snapshot_is_incremental(void **state)
{
	struct fixture *f = *state;
	struct snap_rig g;
	snap_rig_start(f, &g, true);
	size_t want_len;
	uint8_t *want = save_now(f, &want_len);
	unsigned polls = tick_until_written(f, &g);
	assert_true(polls > 3);
	assert_true(f->r.dur.copy_passes >= 2);
	assert_int_equal(f->r.dur.disk_snapshot_failures, 0);
	assert_int_equal(f->r.dur.last_snapshot_bytes, want_len);
	assert_false(f->r.dur.frozen_copying || f->r.dur.frozen_submitted);
	assert_int_equal(g.ops.snapshot_step(g.pc.sm, 1), -BPX_EINVAL);
	expect_file_is(f, want, want_len);
	assert_true(f->r.dur.stall_max_ns > 0);
	free(want);
	snap_rig_stop(f, &g);
}

/* Without the incremental ops (a version 1 or 2 .so): the synchronous
 * save, no copy passes, the same file. */
static void test_disk_snapshot_without_incremental_ops(void **state)
{
	struct fixture *f = *state;
	struct snap_rig g;
	snap_rig_start(f, &g, false);
	size_t want_len;
	uint8_t *want = save_now(f, &want_len);
	dp_durable_snapshots(&f->r);
	expect_saved_whole(f, want, want_len);
	free(want);
	snap_rig_stop(f, &g);
}

/* A restore() in the middle of the copy (a peer's snapshot installed)
 * ends it: dropped without a failure, and the next one is of the state
 * after the restore. */
static void test_restore_during_the_copy_drops_it(void **state)
{
	struct fixture *f = *state;
	struct snap_rig g;
	snap_rig_start(f, &g, true);
	dp_durable_snapshots(&f->r);
	assert_true(f->r.dur.frozen_copying);
	void *other = g.ops.create("capacity=20000");
	size_t len = g.ops.snapshot_size(other);
	uint8_t *snap = malloc(len);
	assert_int_equal(g.ops.snapshot(other, snap, len), (int64_t)len);
	assert_int_equal(g.ops.restore(g.pc.sm, snap, len), 0);
	dp_durable_snapshots(&f->r);
	assert_false(f->r.dur.frozen_copying || f->r.dur.frozen_submitted);
	assert_int_equal(f->r.dur.disk_snapshot_failures, 0);
	size_t want_len;
	uint8_t *want = save_now(f, &want_len);
	tick_until_written(f, &g);
	expect_file_is(f, want, want_len);
	free(want);
	free(snap);
	g.ops.destroy(other);
	snap_rig_stop(f, &g);
}

/* This process's data size (VmData, the mappings RLIMIT_DATA counts). */
static rlim_t data_bytes(void)
{
	char line[128];
	unsigned long kb = 0;
	FILE *f = fopen("/proc/self/status", "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmData: %lu kB", &kb) == 1)
			break;
	fclose(f);
	assert_true(kb > 0);
	return (rlim_t)kb << 10;
}

/* The WAL fails while a copy is being made: no snapshot goes to disk any
 * more, so the copy ends at the next tick instead of growing with every
 * write until exit (review finding). */
static void test_a_failed_wal_ends_the_copy(void **state)
{
	struct fixture *f = *state;
	struct snap_rig g;
	snap_rig_start(f, &g, true);
	dp_durable_snapshots(&f->r);
	assert_true(f->r.dur.frozen_copying);
	persist(f, PX_PERSIST_ACCEPTED);
	f->fail_sync = EIO;
	dp_durable_commit(&f->r);
	assert_true(f->r.dur.failed);
	dp_durable_snapshots(&f->r);
	assert_false(f->r.dur.frozen_copying || f->r.dur.frozen_submitted);
	snap_rig_stop(f, &g);
}

/* The state machine refused the memory for its frozen copy (strict
 * overcommit, played by RLIMIT_DATA): this snapshot is saved whole, the
 * old way, counted; the file is the same. */
static void test_disk_snapshot_without_memory_for_the_copy(void **state)
{
	struct fixture *f = *state;
	struct snap_rig g;
	snap_rig_start(f, &g, true);
	size_t want_len;
	uint8_t *want = save_now(f, &want_len);
	struct rlimit saved, tight;
	assert_int_equal(getrlimit(RLIMIT_DATA, &saved), 0);
	tight = saved;
	tight.rlim_cur = data_bytes() + (64u << 10);
	assert_int_equal(setrlimit(RLIMIT_DATA, &tight), 0);
	dp_durable_snapshots(&f->r);
	assert_int_equal(setrlimit(RLIMIT_DATA, &saved), 0);
	assert_int_equal(f->r.dur.frozen_refused, 1);
	assert_false(f->r.dur.frozen_copying);
	expect_saved_whole(f, want, want_len);
	free(want);
	snap_rig_stop(f, &g);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "bpx-test-durable-%d", (int)getpid());
	char *eal[] = { (char *)"test_durable",
			(char *)"--no-huge",
			(char *)"--no-pci",
			(char *)"--no-shconf",
			(char *)"-m",
			(char *)"64",
			(char *)"-l",
			(char *)"0",
			(char *)"--file-prefix",
			prefix,
			(char *)"--log-level=error",
			NULL };
	if (rte_eal_init(11, eal) < 0) {
		fprintf(stderr, "test_durable: EAL init failed\n");
		return 1;
	}
	dp_clock_init();
	pool = rte_pktmbuf_pool_create("bpx_test_durable", 2047, 0, 0,
				       RTE_MBUF_DEFAULT_BUF_SIZE,
				       (int)rte_socket_id());
	if (pool == NULL) {
		fprintf(stderr, "test_durable: no mbuf pool\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		T(test_frames_wait_for_the_sync),
		T(test_disk_snapshot_is_incremental),
		T(test_disk_snapshot_without_incremental_ops),
		T(test_restore_during_the_copy_drops_it),
		T(test_a_failed_wal_ends_the_copy),
		T(test_disk_snapshot_without_memory_for_the_copy),
		T(test_nothing_waits_for_a_commit_record),
		T(test_a_full_queue_syncs_early),
		T(test_a_failed_sync_stops_every_send),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return rc;
}
