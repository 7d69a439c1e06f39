/* Durable mode on the worker (dp.h, struct dp_durable): PERSIST records
 * into the write-ahead log, frames held until the pass's one sync (the
 * caller's rule of consensus.h: every record is durable before any
 * message after it is sent), snapshots on disk and recycling behind
 * them. No printing here: bypaxd's main thread reports failures from
 * dur.failed and the counters. */
#include <stdio.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_mbuf.h>

#include "disk_snapshot.h"
#include "dp.h"
#include "wal.h"
#include "wal_px.h"

void dp_replica_enable_durable(struct dp_replica *r, struct dp_wal *wal,
			       struct dp_snapwriter *snapw,
			       uint64_t snapshot_index)
{
	DP_ASSERT(wal != NULL && r->dur.wal == NULL);
	r->dur.wal = wal;
	r->dur.snapw = snapw;
	r->dur.snapshot_every_slots = r->cfg->disk_snapshot_slots;
	r->dur.snapshot_index = snapshot_index;
	r->dur.snapshot_tried_index = snapshot_index;
	r->dur.cluster_id = r->cfg->cluster_id;
	r->dur.member_count = r->cfg->member_count;
}

/* The first failure stops every send for good (dp_durable_hold) and is
 * kept for bypaxd's log line. */
static void durable_failed(struct dp_replica *r, const char *what)
{
	struct dp_durable *d = &r->dur;
	if (d->failed)
		return;
	snprintf(d->failed_text, sizeof(d->failed_text), "%s", what);
	for (uint32_t i = 0; i < d->held_count; i++)
		rte_pktmbuf_free(d->held[i].mb);
	d->failed_drops += d->held_count;
	d->held_count = 0;
	__atomic_store_n(&d->failed, true, __ATOMIC_RELEASE);
}

static void copy_wal_stats(struct dp_durable *d)
{
	const struct dp_wal_stats *s = dp_wal_stats(d->wal);
	d->wal_syncs = s->syncs;
	d->wal_bytes = s->bytes_written;
	d->segments_recycled = s->segments_recycled;
}

void dp_durable_persist(struct dp_replica *r, const struct px_msg *m)
{
	struct dp_durable *d = &r->dur;
	DP_ASSERT(d->wal != NULL && m->type == PX_MSG_PERSIST);
	if (d->failed)
		return;
	uint8_t payload[DP_WAL_PX_BYTES_MAX];
	int n = dp_wal_px_encode(m, payload);
	DP_ASSERT(n > 0); /* the core's values fit a slot */
	if (dp_wal_append(d->wal, m->flags, dp_wal_px_tag(m), payload,
			  (uint32_t)n) != 0) {
		durable_failed(r, dp_wal_error_text(d->wal));
		return;
	}
	d->records++;
	/* A COMMIT record may be lost (consensus.h): it rides along with
	 * the next sync, and no frame waits for it. A promise or a vote
	 * must be on the disk before what follows it is sent. */
	if (m->flags != PX_PERSIST_COMMIT)
		d->sync_needed = true;
}

/* Syncs what was appended; the held frames go (or, after a failure, are
 * dropped). */
static void commit_now(struct dp_replica *r)
{
	struct dp_durable *d = &r->dur;
	if (!d->failed && d->sync_needed) {
		if (dp_wal_sync(d->wal) != 0)
			durable_failed(r, dp_wal_error_text(d->wal));
		else
			d->group_commits++;
		d->sync_needed = false;
		copy_wal_stats(d);
	}
	if (d->failed)
		return;
	for (uint32_t i = 0; i < d->held_count; i++)
		dp_replica_push_now(r, d->held[i].q, d->held[i].mb);
	d->held_count = 0;
}

bool dp_durable_hold(struct dp_replica *r, struct dp_txq *q,
		     struct rte_mbuf *mb)
{
	struct dp_durable *d = &r->dur;
	if (d->failed) {
		rte_pktmbuf_free(mb);
		d->failed_drops++;
		return true;
	}
	if (!d->sync_needed && d->held_count == 0)
		return false;
	if (d->held_count == DP_HELD_MAX) {
		commit_now(r); /* an early group commit: the queue is bounded */
		return dp_durable_hold(r, q, mb);
	}
	d->held[d->held_count].q = q;
	d->held[d->held_count].mb = mb;
	d->held_count++;
	d->held_frames++;
	return true;
}

void dp_durable_commit(struct dp_replica *r)
{
	if (r->dur.wal != NULL)
		commit_now(r);
}

/* ---- Snapshots on disk ---- */

/* The snapshot at index is durable: the promise goes on record again
 * (it may live only in the segments about to go; consensus.h), then the
 * segments
 * whose every slot is below index are deleted. */
static void recycle_behind(struct dp_replica *r, uint64_t index)
{
	struct dp_durable *d = &r->dur;
	struct px_msg promise = { .type = PX_MSG_PERSIST,
				  .flags = PX_PERSIST_PROMISE,
				  .from = r->id,
				  .to = r->id,
				  .ballot = px_promised_ballot(r->px) };
	d->snapshot_index = index;
	d->disk_snapshots++;
	/* No promise yet (a member just restored from a file): nothing to
	 * keep, and replay refuses a PROMISE of ballot 0. */
	if (promise.ballot != 0)
		dp_durable_persist(r, &promise);
	commit_now(r);
	if (!d->failed && dp_wal_recycle(d->wal, index) < 0)
		durable_failed(r, dp_wal_error_text(d->wal));
	copy_wal_stats(d);
}

static bool sm_incremental(const struct dp_replica *r)
{
	return r->sm_ops->snapshot_begin != NULL &&
	       r->sm_ops->snapshot_step != NULL &&
	       r->sm_ops->snapshot_write_frozen != NULL &&
	       r->sm_ops->snapshot_end != NULL;
}

/* The longest the worker spent on one disk snapshot call, for
 * bypax_disk_snapshot_stall_max_seconds. */
static void note_stall(struct dp_durable *d, uint64_t start_ns)
{
	uint64_t ns = dp_now_ns() - start_ns;
	if (ns > d->stall_max_ns)
		d->stall_max_ns = ns;
}

/* Serializes the whole snapshot into the writer's buffer, on the worker:
 * for a state machine without incremental snapshots (about 300 ms at
 * 120k keys before issue 12's), and for one installed from a peer.
 * Returns the body's length or 0. */
static size_t serialize(struct dp_replica *r)
{
	size_t cap;
	uint64_t start_ns = dp_now_ns();
	uint8_t *body = dp_snapwriter_body(r->dur.snapw, &cap);
	int64_t n = px_snapshot_save(r->px, body, cap);
	note_stall(&r->dur, start_ns);
	r->clock_behind = true;
	if (n <= 0) {
		r->dur.disk_snapshot_failures++; /* --snapshot-mb too small */
		return 0;
	}
	r->dur.last_snapshot_bytes = (uint64_t)n;
	return (size_t)n;
}

/* Gives the frozen copy back, once no one reads it: after the writer is
 * done with it, or before it was handed over. */
static void frozen_end(struct dp_replica *r)
{
	struct dp_durable *d = &r->dur;
	if (!d->frozen_copying && !d->frozen_submitted)
		return;
	uint64_t start_ns = dp_now_ns();
	r->sm_ops->snapshot_end(r->sm);
	note_stall(d, start_ns);
	d->frozen_copying = false;
	d->frozen_submitted = false;
}

/* Freezes the state machine and writes the consensus head now, both of
 * this applied index; the copy follows a step per tick. Returns false
 * when the state machine has no memory for its copy now (nothing begun). */
static bool frozen_begin(struct dp_replica *r)
{
	struct dp_durable *d = &r->dur;
	uint64_t start_ns = dp_now_ns();
	/* Negative: no memory for the copy (-BPX_ENOMEM), or a .so that says
	 * no for a reason of its own (-BPX_EBUSY would be a bug in it or
	 * here: frozen_end ran before any begin). Either way, the old way. */
	int64_t sm_len = r->sm_ops->snapshot_begin(r->sm);
	if (sm_len < 0) {
		d->frozen_refused++;
		return false;
	}
	size_t cap;
	uint8_t *body = dp_snapwriter_body(d->snapw, &cap);
	int64_t head =
		px_snapshot_save_head(r->px, body, cap, (uint64_t)sm_len);
	d->frozen_copying = true;
	if (head < 0) {
		frozen_end(r);
		d->disk_snapshot_failures++; /* --snapshot-mb too small */
	} else {
		d->frozen_head_len = (size_t)head;
		d->frozen_sm_len = (uint64_t)sm_len;
		d->last_snapshot_bytes = (uint64_t)head + (uint64_t)sm_len;
	}
	note_stall(d, start_ns);
	return true;
}

/* One tick's copy; once complete, the writer thread takes over. A
 * restore() (a peer's snapshot installed) ends a copy in progress: the
 * next step says so and this one is dropped (dp_durable_installed put the
 * newer state on disk). */
static void frozen_step(struct dp_replica *r)
{
	struct dp_durable *d = &r->dur;
	uint64_t start_ns = dp_now_ns();
	int done = r->sm_ops->snapshot_step(r->sm, DP_SNAPSHOT_STEP_BYTES);
	d->copy_passes++;
	note_stall(d, start_ns);
	if (done < 0) {
		frozen_end(r);
		return;
	}
	if (done == 0)
		return;
	d->frozen_copying = false;
	d->frozen_submitted = true;
	if (dp_snapwriter_submit_fill(d->snapw, d->frozen_head_len,
				      r->sm_ops->snapshot_write_frozen, r->sm,
				      d->frozen_sm_len, d->cluster_id,
				      d->member_count) != 0) {
		frozen_end(r);
		d->disk_snapshot_failures++;
	}
}

/* A snapshot is due: every disk_snapshot_slots applied slots. */
static void start_snapshot(struct dp_replica *r)
{
	struct dp_durable *d = &r->dur;
	d->snapshot_tried_index = px_applied_index(r->px);
	/* Refused its memory (strict overcommit): this one the old way. */
	if (sm_incremental(r) && frozen_begin(r))
		return;
	size_t n = serialize(r);
	if (n > 0 && dp_snapwriter_submit(d->snapw, n, d->cluster_id,
					  d->member_count) != 0)
		d->disk_snapshot_failures++;
}

void dp_durable_snapshots(struct dp_replica *r)
{
	struct dp_durable *d = &r->dur;
	if (d->snapw == NULL)
		return;
	if (d->failed) {
		/* No snapshot goes to disk any more: a copy still being made
		 * would only grow (every write copies a piece) until exit. */
		if (d->frozen_copying && !d->frozen_submitted)
			frozen_end(r);
		return;
	}
	uint64_t index;
	switch (dp_snapwriter_state(d->snapw, &index)) {
	case DP_SNAPW_BUSY:
		return;
	case DP_SNAPW_DONE:
		dp_snapwriter_ack(d->snapw);
		frozen_end(r);
		recycle_behind(r, index);
		return;
	case DP_SNAPW_FAILED:
		/* The WAL still holds everything: a failed snapshot costs
		 * disk space, not safety. Counted; tried again later. */
		dp_snapwriter_ack(d->snapw);
		frozen_end(r);
		d->disk_snapshot_failures++;
		return;
	case DP_SNAPW_IDLE:
		break;
	}
	if (d->frozen_copying) {
		frozen_step(r);
		return;
	}
	uint64_t applied = px_applied_index(r->px);
	if (px_role(r->px) == PX_ROLE_RECOVERING ||
	    applied - d->snapshot_tried_index < d->snapshot_every_slots)
		return;
	start_snapshot(r);
}

/* A peer's snapshot replaced the log below its index: on disk now, in
 * this thread, before any later record is synced (consensus.h). A write
 * in flight finishes first (it is older). */
void dp_durable_installed(struct dp_replica *r)
{
	struct dp_durable *d = &r->dur;
	if (d->wal == NULL || d->failed)
		return;
	if (d->snapw == NULL) {
		durable_failed(r, "a snapshot was installed from a peer, and "
				  "there is no buffer to put it on disk "
				  "(--snapshot-mb 0)");
		return;
	}
	uint64_t index;
	enum dp_snapw_state st;
	/* An incremental one being completed from its frozen copy is waited
	 * for too; its copy ended, or being copied, it is dropped. */
	while ((st = dp_snapwriter_state(d->snapw, &index)) == DP_SNAPW_BUSY)
		rte_delay_us_sleep(100);
	if (st != DP_SNAPW_IDLE)
		dp_snapwriter_ack(d->snapw); /* superseded by this one */
	frozen_end(r);
	size_t n = serialize(r);
	int rc = n > 0 ? dp_snapwriter_write_now(d->snapw, n, d->cluster_id,
						 d->member_count) :
			 -BPX_ETOOBIG;
	if (rc != 0) {
		char why[sizeof(d->failed_text)];
		snprintf(why, sizeof(why),
			 "the snapshot installed from a peer "
			 "could not be put on disk: %s",
			 rc == -BPX_EIO ? dp_snapwriter_error(d->snapw) :
					  bpx_strerror(rc));
		durable_failed(r, why);
		return;
	}
	d->snapshot_tried_index = px_applied_index(r->px);
	recycle_behind(r, px_applied_index(r->px));
}
