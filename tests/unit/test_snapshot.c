/* Unit tests for snapshots (consensus/snapshot.c) and the recovery that
 * uses them (consensus/recovery.c): save and install round trip, refusal of
 * corrupted snapshots with nothing changed, and a replica restarted without
 * its state that installs a snapshot, fences, and votes again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"
#include "internal.h"

/* The snapshot layout of consensus/snapshot.c and session.c, which these
 * tests corrupt on purpose: u32 magic, u32 version, u64 applied_index,
 * u32 session count, sessions of 27 bytes + reply, u64 sm_len, sm. */
#define SNAP_HEADER 16u
/* The membership history: a count and one 9-byte change (the initial one). */
#define SNAP_HISTORY 10u
/* The sender's crash vector: a count (3) and a u16 per replica. */
#define SNAP_CV 7u
#define SNAP_COUNT_AT (SNAP_HEADER + SNAP_HISTORY + SNAP_CV)
#define SNAP_SESSIONS (SNAP_COUNT_AT + 4u)
#define SESSION_RECORD 27u

/* The sessions of clients 1..3 (0: not open yet); every setup starts
 * them over. */
static uint64_t ids[4];

static int setup1(void **state)
{
	memset(ids, 0, sizeof(ids));
	return cluster_cmocka_setup(state, 1, NULL);
}
static int setup3(void **state)
{
	memset(ids, 0, sizeof(ids));
	return cluster_cmocka_setup(state, 3, NULL);
}
static int teardown(void **state)
{
	return cluster_cmocka_teardown(state);
}

/* Commits `count` slots from a few clients through leader 0: a client's
 * OPEN the first time its turn comes, then one PUT each. */
static void commit_puts(struct cluster *c, uint64_t count, uint64_t *seq)
{
	char key[16], value[16];
	for (uint64_t k = 0; k < count; k++) {
		uint64_t client = 1 + k % 3;
		if (ids[client] == 0) {
			ids[client] = cluster_open_session(c, 0);
			continue;
		}
		snprintf(key, sizeof(key), "k%llu",
			 (unsigned long long)(k % 5));
		snprintf(value, sizeof(value), "v%llu",
			 (unsigned long long)seq[client]);
		CLUSTER_SUBMIT_PUT(0, ids[client], seq[client]++, key, value);
		CLUSTER_DELIVER_ALL();
	}
}

/* ---- Save and install ---- */

static void test_save_install_round_trip(void **state)
{
	struct cluster *c = *state;
	uint64_t seq[4] = { 0, 1, 1, 1 };
	CLUSTER_ELECT(0);
	CLUSTER_ISOLATE(2);
	commit_puts(c, 10, seq);
	ASSERT_APPLIED(0, 10);
	ASSERT_APPLIED(2, 0);

	size_t len;
	uint8_t *snap = cluster_save(c, 0, &len);
	assert_int_equal(len, px_snapshot_size(CLUSTER_PX(0)));
	assert_int_equal(px_get_u64(snap + 8), 10); /* the applied index */
	assert_int_equal(cluster_install(c, 2, snap, len), 0);
	ASSERT_APPLIED(2, 10);
	ASSERT_COMMIT(2, 10);
	assert_int_equal(px_log_start(CLUSTER_PX(2)), 10);
	ASSERT_SAME_STATE(0, 2);
	assert_int_equal(px_stats(CLUSTER_PX(2))->snapshots_installed, 1);
	/* The sessions came along: exactly-once holds across the install. */
	const struct px_session *s =
		px_session_find(&CLUSTER_PX(2)->sessions, ids[1]);
	assert_non_null(s);
	assert_int_equal(s->last_seq, seq[1] - 1);

	/* A second install of the same snapshot is older than what 2 has:
	 * accepted and ignored. */
	assert_int_equal(cluster_install(c, 2, snap, len), 0);
	assert_int_equal(px_stats(CLUSTER_PX(2))->snapshots_installed, 1);

	/* And replica 2 goes on from there with the others. */
	CLUSTER_HEAL_ALL();
	commit_puts(c, 3, seq);
	CLUSTER_RUN(5 * c->tmpl.retransmit_ns);
	ASSERT_APPLIED(2, 13);
	ASSERT_SAME_STATE(0, 2);
	free(snap);
}

static void test_save_needs_room(void **state)
{
	struct cluster *c = *state;
	uint64_t seq[4] = { 0, 1, 1, 1 };
	CLUSTER_ELECT(0);
	commit_puts(c, 4, seq);
	size_t need = px_snapshot_size(CLUSTER_PX(0));
	uint8_t *buf = malloc(need + 64);
	assert_non_null(buf);
	assert_int_equal(px_snapshot_save(CLUSTER_PX(0), buf, need - 1),
			 -BPX_ETOOBIG);
	assert_int_equal(px_snapshot_save(CLUSTER_PX(0), buf, 0), -BPX_ETOOBIG);
	assert_int_equal(px_snapshot_save(CLUSTER_PX(0), buf, need + 64),
			 (int64_t)need);
	free(buf);
}

/* A snapshot of nothing applied is valid, and older than anything. */
static void test_empty_snapshot(void **state)
{
	struct cluster *c = *state;
	size_t len;
	uint8_t *snap = cluster_save(c, 1, &len);
	assert_int_equal(px_get_u64(snap + 8), 0);
	assert_int_equal(cluster_install(c, 0, snap, len), 0);
	assert_int_equal(px_stats(CLUSTER_PX(0))->snapshots_installed, 0);
	free(snap);
}

/* ---- Corruption ---- */

struct observed {
	uint64_t digest, applied, commit, log_start, installed, promised;
	enum px_role role;
	uint32_t sessions;
};

static struct observed observe(struct cluster *c, uint8_t i)
{
	const struct px_replica *r = CLUSTER_PX(i);
	return (struct observed){
		.digest = px_state_digest(r),
		.applied = px_applied_index(r),
		.commit = px_commit_index(r),
		.log_start = px_log_start(r),
		.installed = px_stats(r)->snapshots_installed,
		.promised = px_promised_ballot(r),
		.role = px_role(r),
		.sessions = r->sessions.count,
	};
}

static void assert_unchanged(struct cluster *c, uint8_t i,
			     const struct observed *before)
{
	struct observed now = observe(c, i);
	assert_true(now.digest == before->digest);
	assert_int_equal(now.applied, before->applied);
	assert_int_equal(now.commit, before->commit);
	assert_int_equal(now.log_start, before->log_start);
	assert_int_equal(now.installed, before->installed);
	assert_int_equal(now.promised, before->promised);
	assert_int_equal(now.role, before->role);
	assert_int_equal(now.sessions, before->sessions);
}

/* Installs a corrupted copy on replica i: refused, nothing changed. */
static void assert_refused(struct cluster *c, uint8_t i, const uint8_t *buf,
			   size_t len)
{
	struct observed before = observe(c, i);
	assert_int_equal(cluster_install(c, i, buf, len), -BPX_EMALFORMED);
	assert_unchanged(c, i, &before);
}

/* Replica 2 applied a little; replica 0's snapshot is ahead of it. Every
 * corruption of that snapshot is refused and leaves replica 2 as it was;
 * then the good one installs. */
static void test_corrupted_snapshots_change_nothing(void **state)
{
	struct cluster *c = *state;
	uint64_t seq[4] = { 0, 1, 1, 1 };
	CLUSTER_ELECT(0);
	commit_puts(c, 2, seq);
	CLUSTER_RUN(2 * c->tmpl.heartbeat_interval_ns);
	ASSERT_APPLIED(2, 2);
	CLUSTER_ISOLATE(2);
	commit_puts(c, 9, seq);
	size_t len;
	uint8_t *good = cluster_save(c, 0, &len);
	uint8_t *bad = malloc(len + 1);
	assert_non_null(bad);
	uint32_t count = px_get_u32(good + SNAP_COUNT_AT);
	assert_int_equal(count, 3);
	size_t sessions_end = SNAP_SESSIONS;
	for (uint32_t k = 0; k < count; k++)
		sessions_end +=
			SESSION_RECORD + px_get_u16(good + sessions_end + 25);

	assert_refused(c, 2, NULL, len);
	for (size_t n = 0; n < len; n++) /* every truncation */
		assert_refused(c, 2, good, n);
	memcpy(bad, good, len);
	bad[len] = 0;
	assert_refused(c, 2, bad, len + 1); /* a trailing byte */

	const struct {
		size_t at;
		uint8_t xor ;
	} flips[] = {
		{ 0, 0x01 },		      /* magic */
		{ 4, 0x01 },		      /* version */
		{ SNAP_HEADER, 0x08 },	      /* history count: 9 */
		{ SNAP_HEADER + 9, 0xff },    /* members: unknown replicas */
		{ SNAP_HEADER + SNAP_HISTORY, 0x01 }, /* crash vector of 2 */
		{ SNAP_COUNT_AT, 0x10 },      /* session count: 19 */
		{ SNAP_COUNT_AT + 3, 0x80 },  /* session count: huge */
		{ SNAP_SESSIONS + 26, 0x10 }, /* a reply of 4 KiB */
		{ sessions_end, 0x01 },	      /* sm length */
		{ sessions_end + 7, 0x80 },   /* sm length: huge */
		{ len - 1, 0x01 },	      /* a KV value byte */
		{ sessions_end + 8, 0x01 },   /* KV magic */
	};
	for (size_t k = 0; k < sizeof(flips) / sizeof(flips[0]); k++) {
		memcpy(bad, good, len);
		bad[flips[k].at] ^= flips[k].xor ;
		assert_refused(c, 2, bad, len);
	}

	/* The same client twice (the second record takes the first's id):
	 * nothing else could tell, but the table would be corrupt. */
	memcpy(bad, good, len);
	size_t second = SNAP_SESSIONS + SESSION_RECORD +
			px_get_u16(good + SNAP_SESSIONS + 25);
	memcpy(bad + second, bad + SNAP_SESSIONS, 8);
	assert_refused(c, 2, bad, len);

	assert_int_equal(cluster_install(c, 2, good, len), 0);
	ASSERT_APPLIED(2, 11);
	ASSERT_SAME_STATE(0, 2);
	free(bad);
	free(good);
}

/* A refused snapshot does not depose a leader either, nor end a recovering
 * replica's wait for a real one. */
static void test_corrupted_snapshot_keeps_role(void **state)
{
	struct cluster *c = *state;
	uint64_t seq[4] = { 0, 1, 1, 1 };
	CLUSTER_ELECT(0);
	commit_puts(c, 3, seq);
	size_t len;
	uint8_t *bad = cluster_save(c, 1, &len);
	px_put_u64(bad + 8, 1000); /* newer than anything */
	bad[len - 1] ^= 1;
	assert_refused(c, 0, bad, len);
	ASSERT_LEADER(0);

	CLUSTER_RECOVER(2);
	assert_refused(c, 2, bad, len);
	CLUSTER_DISCARD_ALL();
	CLUSTER_ADVANCE(c->tmpl.retransmit_ns);
	CLUSTER_TICK(2);
	/* Still asking for a snapshot, not fencing without one. */
	ASSERT_QUEUED(PX_MSG_SNAPSHOT_REQ, 2, CLUSTER_ANY, 1);
	ASSERT_QUEUED(PX_MSG_PREPARE, 2, CLUSTER_ANY, 0);
	ASSERT_ROLE(2, PX_ROLE_RECOVERING);
	free(bad);
}

/* A snapshot request is answered with PX_MSG_SNAPSHOT for the caller to
 * take and send (the fixture does that). */
static void test_snapshot_request_is_answered(void **state)
{
	struct cluster *c = *state;
	uint64_t seq[4] = { 0, 1, 1, 1 };
	CLUSTER_ELECT(0);
	commit_puts(c, 3, seq);
	struct px_msg req = { .type = PX_MSG_SNAPSHOT_REQ, .from = 2, .to = 0 };
	assert_int_equal(CLUSTER_INJECT(0, &req), 0);
	const struct px_msg *m = cluster_peek(c, PX_MSG_SNAPSHOT, 0, 2);
	assert_non_null(m);
	assert_int_equal(m->applied_index, 3);
}

/* ---- Recovery ---- */

/* Ticks and delivers one message at a time until replica i stops
 * recovering; returns every other replica's highest promise just then. */
static uint64_t run_until_recovered(struct cluster *c, uint8_t i)
{
	for (int k = 0; k < 100000; k++) {
		if (!CLUSTER_DELIVER()) {
			CLUSTER_ADVANCE(CLUSTER_MS / 4);
			CLUSTER_TICK_ALL();
		}
		if (px_role(CLUSTER_PX(i)) == PX_ROLE_RECOVERING)
			continue;
		uint64_t top = 0;
		for (uint8_t j = 0; j < c->n; j++)
			if (j != i && px_promised_ballot(CLUSTER_PX(j)) > top)
				top = px_promised_ballot(CLUSTER_PX(j));
		return top;
	}
	fail_msg("replica %u never recovered", i);
	return 0;
}

/* Restarted without its state, replica 2 votes for nothing until it has a
 * snapshot and a fencing round through the others; then it is a follower
 * whose promise is above every promise made before, and it catches up. */
static void test_restarted_replica_recovers(void **state)
{
	struct cluster *c = *state;
	uint64_t seq[4] = { 0, 1, 1, 1 };
	CLUSTER_ELECT(0);
	commit_puts(c, 5, seq);
	uint64_t old_ballot = px_leader_ballot(CLUSTER_PX(0));
	CLUSTER_CRASH(2);
	CLUSTER_RECOVER(2);
	ASSERT_ROLE(2, PX_ROLE_RECOVERING);

	/* While recovering, the leader's ACCEPTs get no vote from 2. */
	CLUSTER_SUBMIT_PUT(0, ids[1], seq[1]++, "x", "1");
	CLUSTER_DELIVER_ALL();
	assert_true(px_stats(CLUSTER_PX(2))->drops[PX_DROP_WRONG_ROLE] > 0);
	ASSERT_QUEUED(PX_MSG_ACCEPTED, 2, CLUSTER_ANY, 0);

	uint64_t top = run_until_recovered(c, 2);
	ASSERT_FOLLOWER(2);
	uint64_t fence = px_promised_ballot(CLUSTER_PX(2));
	assert_int_equal(px_ballot_owner(fence), 2);
	assert_true(fence > old_ballot);
	assert_true(fence >= top);
	assert_true(px_applied_index(CLUSTER_PX(2)) >= 5);
	assert_int_equal(px_stats(CLUSTER_PX(2))->recoveries_done, 1);
	assert_int_equal(px_stats(CLUSTER_PX(2))->snapshots_installed, 1);
	assert_true(c->snapshots_sent >= 1);

	/* The fencing round deposed the old leader; the hint brings it back
	 * above the fence, and everyone converges. */
	CLUSTER_RUN(20 * c->tmpl.retransmit_ns);
	ASSERT_LEADER(0);
	assert_true(px_leader_ballot(CLUSTER_PX(0)) > fence);
	commit_puts(c, 2, seq);
	CLUSTER_RUN(5 * c->tmpl.retransmit_ns);
	ASSERT_APPLIED(2, px_applied_index(CLUSTER_PX(0)));
	ASSERT_SAME_STATE(0, 2);
	ASSERT_SAME_STATE(0, 1);
}

/* A fencing round that meets a higher promise (a NACK) starts over above
 * it: the promise replica 2 ends with is above every promise it heard. */
static void test_fencing_goes_above_a_nack(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	CLUSTER_CRASH(2);
	CLUSTER_RECOVER(2);
	/* Replica 1 promised a high round to a candidate 0 that went quiet:
	 * the hint names nobody, so nobody runs for leader meanwhile. */
	struct px_msg prepare = {
		.type = PX_MSG_PREPARE,
		.from = 0,
		.to = 1,
		.ballot = px_ballot_make(50, 0),
	};
	assert_int_equal(CLUSTER_INJECT(1, &prepare), 0);
	CLUSTER_DISCARD_ALL();
	CLUSTER_HINT(PX_REPLICA_NONE);
	run_until_recovered(c, 2);
	ASSERT_FOLLOWER(2);
	assert_true(px_promised_ballot(CLUSTER_PX(2)) > px_ballot_make(50, 0));
	assert_int_equal(px_ballot_owner(px_promised_ballot(CLUSTER_PX(2))), 2);
	assert_int_equal(px_stats(CLUSTER_PX(2))->recoveries_done, 1);
	/* Then a leader comes back above the fence. */
	CLUSTER_ELECT(1);
	assert_true(px_leader_ballot(CLUSTER_PX(1)) >
		    px_promised_ballot(CLUSTER_PX(0)) - 1);
	uint64_t sid = CLUSTER_OPEN_SESSION(1);
	CLUSTER_SUBMIT_PUT(1, sid, 1, "k", "v");
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(sid, 1, PX_REPLY_OK);
}

/* A recovering replica may get its first snapshot from a peer that lags
 * (here: one that applied nothing), and then meet, in its fencing round, a
 * replica whose log starts past that snapshot. It gets a newer snapshot
 * from that one, and must then fence again from what it now covers: with
 * nobody running for leader meanwhile, no NACK comes to restart it. */
static void test_recovery_fences_again_after_newer_snapshot(void **state)
{
	struct cluster *c = *state;
	uint64_t seq[4] = { 0, 1, 1, 1 };
	CLUSTER_ELECT(0);
	CLUSTER_ISOLATE(1);
	commit_puts(c, 200, seq);
	assert_true(px_log_start(CLUSTER_PX(0)) > 0);
	CLUSTER_HINT(PX_REPLICA_NONE); /* nobody leads from here on */
	CLUSTER_CRASH(2);
	CLUSTER_RECOVER(2);
	CLUSTER_HEAL_ALL();
	CLUSTER_ISOLATE(0);
	/* Replica 2 hears only from 1, which lags: its snapshot is empty. */
	for (int k = 0; k < 1000 && CLUSTER_PX(2)->p1.ballot == 0; k++)
		CLUSTER_RUN(CLUSTER_MS);
	assert_true(CLUSTER_PX(2)->recovery_have_snapshot);
	assert_int_not_equal(CLUSTER_PX(2)->p1.ballot, 0);
	ASSERT_APPLIED(2, 0);
	ASSERT_ROLE(2, PX_ROLE_RECOVERING);

	CLUSTER_HEAL_ALL();
	CLUSTER_CUT(0, 1);
	CLUSTER_CUT(1, 0);
	CLUSTER_RUN(100 * c->tmpl.retransmit_ns);
	assert_int_equal(px_stats(CLUSTER_PX(2))->snapshots_installed, 1);
	ASSERT_FOLLOWER(2);
	ASSERT_APPLIED(2, px_applied_index(CLUSTER_PX(0)));
	ASSERT_SAME_STATE(0, 2);
}

/* Alone there is nobody to recover from: the state is gone, and the replica
 * goes on from nothing. */
static void test_single_replica_recovers_alone(void **state)
{
	struct cluster *c = *state;
	CLUSTER_RECOVER(0);
	ASSERT_ROLE(0, PX_ROLE_RECOVERING);
	CLUSTER_TICK(0);
	ASSERT_FOLLOWER(0);
	CLUSTER_HINT(0);
	/* Back from a crash it promised "anyone else" for one lease, and
	 * its own candidacy waits that out too (issue 8, hole 2). */
	CLUSTER_ADVANCE(c->tmpl.retransmit_ns);
	CLUSTER_TICK(0);
	ASSERT_FOLLOWER(0);
	CLUSTER_ADVANCE(c->tmpl.lease_ns);
	CLUSTER_TICK(0);
	ASSERT_LEADER(0);
}

int main(void)
{
#define T(f, s) cmocka_unit_test_setup_teardown(f, s, teardown)
	const struct CMUnitTest tests[] = {
		T(test_save_install_round_trip, setup3),
		T(test_save_needs_room, setup3),
		T(test_empty_snapshot, setup3),
		T(test_corrupted_snapshots_change_nothing, setup3),
		T(test_corrupted_snapshot_keeps_role, setup3),
		T(test_snapshot_request_is_answered, setup3),
		T(test_restarted_replica_recovers, setup3),
		T(test_fencing_goes_above_a_nack, setup3),
		T(test_recovery_fences_again_after_newer_snapshot, setup3),
		T(test_single_replica_recovers_alone, setup1),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
