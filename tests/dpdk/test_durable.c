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
#include <unistd.h>

#include <cmocka.h>

#include <rte_eal.h>
#include <rte_mbuf.h>

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
	pool = rte_pktmbuf_pool_create("bpx_test_durable", 2047, 0, 0,
				       RTE_MBUF_DEFAULT_BUF_SIZE,
				       (int)rte_socket_id());
	if (pool == NULL) {
		fprintf(stderr, "test_durable: no mbuf pool\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		T(test_frames_wait_for_the_sync),
		T(test_nothing_waits_for_a_commit_record),
		T(test_a_full_queue_syncs_early),
		T(test_a_failed_sync_stops_every_send),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return rc;
}
