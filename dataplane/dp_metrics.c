/* The worker's numbers for /metrics, read on the control thread the way
 * DPDK telemetry's /bypax/stats reads them (DESIGN.md: telemetry reads
 * per-core counters and never locks a worker): plain loads of aligned
 * 64-bit counters the worker alone writes. A reading may be a poll old,
 * and two counters may be of two different polls; never torn, never a
 * wait. The consensus core's getters and px_stats are such loads too. */
#include <string.h>

#include <rte_mempool.h>

#include "dp.h"

static void read_consensus(const struct dp_replica *r,
			   struct ctl_metrics_worker *w)
{
	const struct px_stats *s = px_stats(r->px);
	memcpy(w->message_drops, s->drops, sizeof(w->message_drops));
	w->requests_in = s->requests_in;
	w->requests_applied = s->requests_applied;
	w->lease_reads = s->lease_reads;
	w->slots_proposed = s->slots_proposed;
	w->slots_committed = s->slots_committed;
	w->batch_requests = s->batch_requests_total;
	w->elections_started = s->elections_started;
	w->leader_changes = s->leader_changes;
	w->retransmits = s->retransmits;
	w->recoveries_done = s->recoveries_done;
}

static void read_counters(const struct dp_replica *r,
			  struct ctl_metrics_worker *w)
{
	const struct dp_counters *c = &r->ctr;
	w->rx_frames = c->rx_frames;
	w->tx_frames = c->tx_frames;
	w->tx_full = c->tx_full;
	w->mbuf_exhausted = c->mbuf_exhausted;
	w->isolated_drops = c->isolated_drops;
	w->no_client_address = c->no_client_address;
	w->multi_segment = c->multi_segment;
	w->encode_failed = c->encode_failed;
	w->packed_frames_rx = c->packed_frames_rx;
	w->packed_requests_rx = c->packed_requests_rx;
	w->packed_frames_tx = c->packed_frames_tx;
	w->packed_replies_tx = c->packed_replies_tx;
	memcpy(w->frame_drops, c->drops, sizeof(w->frame_drops));
	memcpy(w->replies, c->replies, sizeof(w->replies));
	w->snapshots_sent = c->snapshots_sent;
	w->snapshots_installed = c->snapshots_installed;
	w->snapshot_chunks_sent = c->snapshot_chunks_sent;
	w->snapshot_chunks_dropped = c->snapshot_chunks_dropped;
	w->snapshot_resumes = c->snapshot_resumes;
	w->snapshots_reused = c->snapshots_reused;
	w->polls = c->polls;
	w->idle_polls = c->idle_polls;
	w->busy_cycles = c->busy_cycles;
}

static void read_durable(const struct dp_replica *r,
			 struct ctl_metrics_worker *w)
{
	const struct dp_durable *d = &r->dur;
	w->durable = d->wal != NULL;
	w->wal_failed = d->failed;
	w->wal_records = d->records;
	w->wal_group_commits = d->group_commits;
	w->wal_syncs = d->wal_syncs;
	w->wal_bytes = d->wal_bytes;
	w->wal_held_frames = d->held_frames;
	w->wal_failed_drops = d->failed_drops;
	w->wal_segments_recycled = d->segments_recycled;
	w->disk_snapshots = d->disk_snapshots;
	w->disk_snapshot_failures = d->disk_snapshot_failures;
	w->disk_snapshot_copy_passes = d->copy_passes;
	w->disk_snapshot_copy_refused = d->frozen_refused;
	w->disk_snapshot_stall_max_ns = d->stall_max_ns;
}

void dp_metrics_read(const struct dp_replica *r,
		     const struct rte_mempool *pool,
		     struct ctl_metrics_worker *w)
{
	memset(w, 0, sizeof(*w));
	if (r == NULL || r->px == NULL)
		return; /* not set up yet */
	read_consensus(r, w);
	read_counters(r, w);
	read_durable(r, w);
	const struct dp_commit_latency *l = &r->lat;
	memcpy(w->lat_buckets, l->buckets, sizeof(w->lat_buckets));
	w->lat_count = l->slots;
	w->lat_sum_ns = l->sum_ns;
	if (pool != NULL) {
		/* The ring's count and the lcore caches' lengths, read
		 * without a lock (as /mempool/info reads them). */
		w->mbufs_in_use = rte_mempool_in_use_count(pool);
		w->mbufs_total = pool->size;
	}
}
