/* bypaxd's /metrics page (Prometheus text format 0.0.4) and /health
 * verdict, as pure functions: a struct of counters in, text out. No
 * sockets, no DPDK, no clocks (the time is passed in), no allocation, so
 * that a unit test renders pages from made-up counters and promtool can
 * check them. The HTTP side is ctl_http.h; what fills these structs is
 * ctl_daemon_metrics.c (the control thread's own state) and
 * dataplane/dp_metrics.c (the worker's per-core counters). docs/metrics.md
 * lists every metric. */
#ifndef BYPAX_CTL_METRICS_H
#define BYPAX_CTL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bypax/consensus.h"
#include "bypax/wire.h"
#include "ctl_link.h"

/* The commit latency histogram's upper bounds (a leader's slot, from the
 * poll that proposed it to the poll that saw it committed), 10 us to 1 s;
 * the worker counts into CTL_LAT_BUCKETS + 1 buckets (the last: +Inf). */
#define CTL_LAT_BUCKETS 16u
extern const uint64_t ctl_lat_bounds_ns[CTL_LAT_BUCKETS];

/* The bucket (0..CTL_LAT_BUCKETS) of a latency: the first bound it does
 * not exceed, CTL_LAT_BUCKETS for one above every bound. */
unsigned ctl_lat_bucket(uint64_t ns);

/* What the worker counts, read the way DPDK telemetry reads it (plain
 * loads of per-core counters, never a lock): a reading may be a poll old. */
struct ctl_metrics_worker {
	uint64_t rx_frames, tx_frames;
	uint64_t tx_full, mbuf_exhausted, isolated_drops, no_client_address;
	uint64_t multi_segment, encode_failed;
	uint64_t frame_drops[BPX_WIRE_DROP_COUNT];  /* [0] (ok) unused */
	uint64_t message_drops[PX_DROP_COUNT];
	uint64_t requests_in, requests_applied, lease_reads;
	/* docs/wire.md, "Packed requests and replies" */
	uint64_t packed_frames_rx, packed_requests_rx;
	uint64_t packed_frames_tx, packed_replies_tx;
	uint64_t replies[PX_REPLY_STATUS_MAX + 1];   /* by px_reply_status */
	uint64_t slots_proposed, slots_committed, batch_requests;
	uint64_t elections_started, leader_changes, retransmits;
	uint64_t lat_buckets[CTL_LAT_BUCKETS + 1];   /* not cumulative */
	uint64_t lat_count, lat_sum_ns;
	uint64_t mbufs_in_use, mbufs_total;
	uint64_t snapshots_sent, snapshots_installed, snapshot_chunks_sent;
	uint64_t snapshot_chunks_dropped, snapshot_resumes, snapshots_reused;
	uint64_t recoveries_done;
	uint64_t polls, idle_polls;
	uint64_t busy_cycles;  /* TSC cycles in polls that received frames */
	/* Durable mode (dataplane/durable.c); all 0 in memory mode. */
	uint64_t durable, wal_failed;               /* gauges: 0 or 1 */
	uint64_t wal_records, wal_group_commits, wal_syncs, wal_bytes;
	uint64_t wal_held_frames, wal_failed_drops, wal_segments_recycled;
	uint64_t disk_snapshots, disk_snapshot_failures;
	uint64_t disk_snapshot_copy_passes, disk_snapshot_copy_refused;
	uint64_t disk_snapshot_stall_max_ns; /* gauge, printed in seconds */
};

/* Another member, as this one's control plane last heard of it. */
struct ctl_metrics_peer {
	bool known;    /* heard at least once */
	bool alive;    /* not suspected */
	uint64_t applied_index, commit_index;
	uint64_t heard_age_ns;
	uint64_t suspicions, false_suspicions;
};

struct ctl_metrics_page {
	uint32_t cluster_id;
	uint8_t self, member_count;
	bool have_status;                  /* the worker has reported */
	struct ctl_worker_status status;   /* its latest report */
	uint8_t leader;                    /* the control plane's; CTL_NONE */
	uint64_t failovers, step_downs, stalls;
	uint64_t hb_dropped, hb_wrong_cluster;
	uint64_t hb_bad_mac;               /* of hb_dropped: no valid key tag */
	uint64_t admin_dropped, log_lost, http_dropped, http_requests;
	uint64_t admin_refused; /* state changes refused (SO_PEERCRED) */
	uint64_t snapshots_streamed, snapshots_abandoned;
	uint64_t uptime_ns;
	struct ctl_metrics_peer peers[PX_REPLICAS_MAX];
	bool healthy;                      /* ctl_health_check's verdict */
	struct ctl_metrics_worker w;
};

/* Renders the page into buf. Returns its length, or 0 when cap is too
 * small for it (buf then holds no page). */
size_t ctl_metrics_render(const struct ctl_metrics_page *p, char *buf,
			  size_t cap);

/* ---- /health ----
 * Healthy: the worker reports (a status within CTL_HEALTH_STATUS_NS), its
 * frame counters moved within CTL_HEALTH_DATA_NS (a live cluster's leader
 * sends commit heartbeats every [cluster] heartbeat_us, so even an idle
 * one moves), and it is the leader the control plane chose, or a follower
 * of a leader the control plane holds alive. */
#define CTL_HEALTH_STATUS_NS (1000ull * 1000 * 1000)
#define CTL_HEALTH_DATA_NS (2000ull * 1000 * 1000)

/* What the control thread remembers between status reports to judge
 * "moved recently". */
struct ctl_health_track {
	uint64_t status_seq, status_ns;    /* the latest new report, when */
	uint64_t rx_frames, tx_frames, data_ns; /* last change, when */
	uint32_t alive_mask;               /* for counting suspicions */
	uint64_t suspicions[PX_REPLICAS_MAX];
};

/* Notes the worker's latest report (call on every loop of the control
 * thread; an unchanged seq is not a new report). */
void ctl_health_note(struct ctl_health_track *t,
		     const struct ctl_worker_status *st, bool have_status,
		     uint64_t now_ns);
/* Counts members that went from alive to suspected (alive: bit i). */
void ctl_health_note_alive(struct ctl_health_track *t, uint32_t alive,
			   uint8_t self);

struct ctl_health_input {
	bool have_status;
	const struct ctl_worker_status *status;
	uint8_t self;
	uint8_t leader;       /* the control plane's choice, or CTL_NONE */
	bool leader_alive;    /* the failure detector holds it alive */
};

/* Returns true when healthy. why gets a short line either way (no
 * newline): "leader", "follower of member 2", or the reason it is not. */
bool ctl_health_check(const struct ctl_health_track *t,
		      const struct ctl_health_input *in, uint64_t now_ns,
		      char *why, size_t cap);

#endif
