/* The /metrics page and the /health verdict (ctl_metrics.h). Label values
 * are names, never numbers: drop reasons come from the X-macro tables of
 * wire.h and consensus.h (the enum's name, lower case, without its
 * prefix), so a reason added there reaches the page by itself. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ctl_metrics.h"
#include "fd.h"

const uint64_t ctl_lat_bounds_ns[CTL_LAT_BUCKETS] = {
	10000,     25000,     50000,     100000,    250000,    500000,
	1000000,   2500000,   5000000,   10000000,  25000000,  50000000,
	100000000, 250000000, 500000000, 1000000000,
};
/* The same bounds in seconds, as the le labels print them. */
static const char *const lat_le[CTL_LAT_BUCKETS] = {
	"1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005",
	"0.001", "0.0025",  "0.005", "0.01",   "0.025",   "0.05",
	"0.1",   "0.25",    "0.5",   "1",
};

unsigned ctl_lat_bucket(uint64_t ns)
{
	unsigned i = 0;
	while (i < CTL_LAT_BUCKETS && ns > ctl_lat_bounds_ns[i])
		i++;
	return i;
}

/* Enum names, e.g. BPX_WIRE_BAD_IP_CHECKSUM: the label is
 * "bad_ip_checksum" (label_of skips the prefix and lowers the case). */
static const char *const frame_reasons[BPX_WIRE_DROP_COUNT] = {
#define FRAME_REASON(name, text) #name,
	BPX_WIRE_DROP_LIST(FRAME_REASON)
#undef FRAME_REASON
};
static const char *const message_reasons[PX_DROP_COUNT] = {
#define MESSAGE_REASON(name, text) #name,
	PX_DROP_LIST(MESSAGE_REASON)
#undef MESSAGE_REASON
};
static const char *const reply_statuses[PX_REPLY_STATUS_MAX + 1] = {
	[PX_REPLY_OK] = "ok",
	[PX_REPLY_REDIRECT] = "redirect",
	[PX_REPLY_BUSY] = "busy",
	[PX_REPLY_TOO_BIG] = "too_big",
	[PX_REPLY_STALE] = "stale",
	[PX_REPLY_EXPIRED] = "expired",
	[PX_REPLY_BAD_REQUEST] = "bad_request",
};
static const char *const role_names[] = { "follower", "candidate", "leader",
					  "recovering" };

struct writer {
	char *buf;
	size_t cap, len;
	bool full;
};

static void put(struct writer *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void put(struct writer *w, const char *fmt, ...)
{
	if (w->full)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(w->buf + w->len, w->cap - w->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= w->cap - w->len) {
		w->full = true;
		return;
	}
	w->len += (size_t)n;
}

static void family(struct writer *w, const char *name, const char *type,
		   const char *help)
{
	put(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct writer *w, const char *name, const char *type,
		const char *help, uint64_t v)
{
	family(w, name, type, help);
	put(w, "%s %" PRIu64 "\n", name, v);
}

static void counter(struct writer *w, const char *name, const char *help,
		    uint64_t v)
{
	one(w, name, "counter", help, v);
}

static void gauge(struct writer *w, const char *name, const char *help,
		  uint64_t v)
{
	one(w, name, "gauge", help, v);
}

/* "BPX_WIRE_BAD_MAGIC" with prefix "BPX_WIRE_" -> "bad_magic". */
static void label_of(const char *enum_name, const char *prefix, char *out,
		     size_t cap)
{
	size_t skip = strlen(prefix);
	if (strncmp(enum_name, prefix, skip) != 0)
		skip = 0;
	size_t i = 0;
	for (const char *c = enum_name + skip; *c != '\0' && i + 1 < cap; c++)
		out[i++] = (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a')
						    : *c;
	out[i] = '\0';
}

static void render_identity(struct writer *w, const struct ctl_metrics_page *p)
{
	family(w, "bypax_info", "gauge",
	       "This replica: its cluster id and member id (always 1).");
	put(w, "bypax_info{cluster=\"%u\",member=\"%u\"} 1\n", p->cluster_id,
	    p->self);
	family(w, "bypax_role", "gauge",
	       "1 for the role the worker reports, 0 for the others (all 0 "
	       "before its first report).");
	for (unsigned r = 0; r < 4; r++)
		put(w, "bypax_role{role=\"%s\"} %d\n", role_names[r],
		    p->have_status && p->status.role == r);
	gauge(w, "bypax_healthy", "1 when /health answers 200.", p->healthy);
	family(w, "bypax_control_leader", "gauge",
	       "The member the control plane holds for the leader; -1: none.");
	put(w, "bypax_control_leader %d\n",
	    p->leader == CTL_NONE ? -1 : (int)p->leader);
	gauge(w, "bypax_uptime_seconds", "Seconds since the control thread "
	      "started.", p->uptime_ns / 1000000000u);
}

static void render_log_state(struct writer *w, const struct ctl_metrics_page *p)
{
	const struct ctl_worker_status *s = &p->status;
	gauge(w, "bypax_ballot_round", "Round of the highest ballot this "
	      "replica promised.", px_ballot_round(s->promised));
	gauge(w, "bypax_ballot_owner", "Member that owns the highest ballot "
	      "this replica promised.", px_ballot_owner(s->promised));
	gauge(w, "bypax_commit_index", "Every slot below it is chosen.",
	      s->commit_index);
	gauge(w, "bypax_applied_index", "Slots applied to the state machine.",
	      s->applied_index);
	gauge(w, "bypax_log_start_index", "The oldest slot the log still "
	      "holds.", s->log_start);
	gauge(w, "bypax_request_queue_depth", "Client requests waiting for "
	      "a slot at this replica.", s->queue_depth);
	unsigned voting = 0;
	for (unsigned i = 0; i < 8; i++)
		voting += (s->members >> i) & 1u;
	gauge(w, "bypax_voting_members", "Members that vote, as this "
	      "replica's log says.", voting);
}

/* One sample per other member, labelled peer="ID". */
static void render_peers(struct writer *w, const struct ctl_metrics_page *p)
{
	family(w, "bypax_peer_up", "gauge", "1 while the failure detector "
	       "holds the member alive (heartbeats arrive).");
	for (uint8_t i = 0; i < p->member_count; i++)
		if (i != p->self)
			put(w, "bypax_peer_up{peer=\"%u\"} %d\n", i,
			    p->peers[i].known && p->peers[i].alive);
	family(w, "bypax_peer_lag_slots", "gauge", "This replica's commit "
	       "index minus the member's applied index (its last heartbeat).");
	for (uint8_t i = 0; i < p->member_count; i++) {
		const struct ctl_metrics_peer *q = &p->peers[i];
		if (i == p->self || !q->known)
			continue;
		uint64_t own = p->status.commit_index;
		put(w, "bypax_peer_lag_slots{peer=\"%u\"} %" PRIu64 "\n", i,
		    own > q->applied_index ? own - q->applied_index : 0);
	}
	family(w, "bypax_peer_heard_age_seconds", "gauge", "Seconds since the "
	       "member's last heartbeat.");
	for (uint8_t i = 0; i < p->member_count; i++)
		if (i != p->self && p->peers[i].known)
			put(w, "bypax_peer_heard_age_seconds{peer=\"%u\"} "
			    "%.3f\n", i, (double)p->peers[i].heard_age_ns / 1e9);
	family(w, "bypax_peer_suspicions_total", "counter", "Times the member "
	       "went from alive to suspected.");
	for (uint8_t i = 0; i < p->member_count; i++)
		if (i != p->self)
			put(w, "bypax_peer_suspicions_total{peer=\"%u\"} %" PRIu64
			    "\n", i, p->peers[i].suspicions);
	family(w, "bypax_peer_false_suspicions_total", "counter", "Suspicions "
	       "of the member that its next heartbeat proved wrong (it was "
	       "late, not gone).");
	for (uint8_t i = 0; i < p->member_count; i++)
		if (i != p->self)
			put(w, "bypax_peer_false_suspicions_total{peer=\"%u\"} %"
			    PRIu64 "\n", i, p->peers[i].false_suspicions);
}

static void render_control(struct writer *w, const struct ctl_metrics_page *p)
{
	counter(w, "bypax_failovers_total", "Changes of the control plane's "
		"leader from one member to another.", p->failovers);
	counter(w, "bypax_leader_changes_total", "Leaders this replica's "
		"consensus has seen come and go.", p->w.leader_changes);
	counter(w, "bypax_elections_total", "Elections (phase 1) this replica "
		"started.", p->w.elections_started);
	counter(w, "bypax_step_downs_total", "Times this replica stopped "
		"leading because its proposals did not commit.", p->step_downs);
	counter(w, "bypax_control_stalls_total", "Stalls of this control "
		"thread longer than a heartbeat interval.", p->stalls);
	family(w, "bypax_heartbeat_drops_total", "counter", "Control "
	       "heartbeats dropped, by reason.");
	put(w, "bypax_heartbeat_drops_total{reason=\"wrong_cluster\"} %" PRIu64
	    "\n", p->hb_wrong_cluster);
	put(w, "bypax_heartbeat_drops_total{reason=\"bad_mac\"} %" PRIu64
	    "\n", p->hb_bad_mac);
	put(w, "bypax_heartbeat_drops_total{reason=\"other\"} %" PRIu64 "\n",
	    p->hb_dropped - p->hb_wrong_cluster - p->hb_bad_mac);
	counter(w, "bypax_admin_clients_dropped_total", "Admin socket clients "
		"dropped: idle past their budget, or no room.", p->admin_dropped);
	counter(w, "bypax_admin_refused_total", "Admin commands that change "
		"state refused: the client was neither root nor bypaxd's uid.",
		p->admin_refused);
	counter(w, "bypax_http_requests_total", "Requests to this HTTP "
		"endpoint answered.", p->http_requests);
	counter(w, "bypax_http_clients_dropped_total", "HTTP clients dropped: "
		"idle past their budget, or no room.", p->http_dropped);
	counter(w, "bypax_log_lines_lost_total", "Event lines lost to a full "
		"log ring.", p->log_lost);
}

static void render_drops(struct writer *w, const struct ctl_metrics_page *p)
{
	const struct ctl_metrics_worker *m = &p->w;
	char label[48];
	family(w, "bypax_frame_drops_total", "counter", "Frames dropped by "
	       "the dataplane, by reason.");
	for (unsigned i = 1; i < BPX_WIRE_DROP_COUNT; i++) {
		label_of(frame_reasons[i], "BPX_WIRE_", label, sizeof(label));
		put(w, "bypax_frame_drops_total{reason=\"%s\"} %" PRIu64 "\n",
		    label, m->frame_drops[i]);
	}
	static const struct {
		const char *reason;
		size_t offset;
	} others[] = {
		{ "tx_full", offsetof(struct ctl_metrics_worker, tx_full) },
		{ "mbuf_exhausted",
		  offsetof(struct ctl_metrics_worker, mbuf_exhausted) },
		{ "isolated", offsetof(struct ctl_metrics_worker, isolated_drops) },
		{ "no_client_address",
		  offsetof(struct ctl_metrics_worker, no_client_address) },
		{ "multi_segment",
		  offsetof(struct ctl_metrics_worker, multi_segment) },
		{ "encode_failed",
		  offsetof(struct ctl_metrics_worker, encode_failed) },
	};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		uint64_t v;
		memcpy(&v, (const char *)m + others[i].offset, sizeof(v));
		put(w, "bypax_frame_drops_total{reason=\"%s\"} %" PRIu64 "\n",
		    others[i].reason, v);
	}
	family(w, "bypax_message_drops_total", "counter", "Consensus messages "
	       "the protocol dropped, by reason.");
	for (unsigned i = 0; i < PX_DROP_COUNT; i++) {
		label_of(message_reasons[i], "PX_DROP_", label, sizeof(label));
		put(w, "bypax_message_drops_total{reason=\"%s\"} %" PRIu64 "\n",
		    label, m->message_drops[i]);
	}
}

static void render_traffic(struct writer *w, const struct ctl_metrics_page *p)
{
	const struct ctl_metrics_worker *m = &p->w;
	counter(w, "bypax_frames_received_total", "Frames the worker "
		"received.", m->rx_frames);
	counter(w, "bypax_frames_sent_total", "Frames the worker sent.",
		m->tx_frames);
	counter(w, "bypax_requests_total", "Client requests received.",
		m->requests_in);
	counter(w, "bypax_requests_applied_total", "Client requests applied "
		"to the state machine.", m->requests_applied);
	counter(w, "bypax_lease_reads_total", "Reads answered under the "
		"leader's lease.", m->lease_reads);
	counter(w, "bypax_packed_frames_received_total", "MULTI_REQUEST "
		"frames received (several client requests in one).",
		m->packed_frames_rx);
	counter(w, "bypax_packed_requests_total", "Client requests that came "
		"in MULTI_REQUEST frames (of bypax_requests_total).",
		m->packed_requests_rx);
	counter(w, "bypax_packed_frames_sent_total", "MULTI_REPLY frames "
		"sent (several replies in one).", m->packed_frames_tx);
	counter(w, "bypax_packed_replies_total", "Replies sent in "
		"MULTI_REPLY frames (of bypax_replies_total).",
		m->packed_replies_tx);
	family(w, "bypax_replies_total", "counter", "Replies to clients, by "
	       "status.");
	for (unsigned i = 0; i <= PX_REPLY_STATUS_MAX; i++)
		put(w, "bypax_replies_total{status=\"%s\"} %" PRIu64 "\n",
		    reply_statuses[i], m->replies[i]);
	counter(w, "bypax_slots_proposed_total", "Slots this replica proposed "
		"as leader.", m->slots_proposed);
	counter(w, "bypax_slots_committed_total", "Slots committed.",
		m->slots_committed);
	counter(w, "bypax_batched_requests_total", "Requests in the slots this "
		"replica proposed (over bypax_slots_proposed_total: the mean "
		"batch size).", m->batch_requests);
	counter(w, "bypax_retransmits_total", "Phase 1 and phase 2 "
		"retransmissions.", m->retransmits);
	gauge(w, "bypax_mbufs_in_use", "Packet buffers of this replica's pool "
	      "in use.", m->mbufs_in_use);
	gauge(w, "bypax_mbufs", "Packet buffers in this replica's pool.",
	      m->mbufs_total);
	counter(w, "bypax_worker_polls_total", "Polls of the worker's ports.",
		m->polls);
	counter(w, "bypax_worker_idle_polls_total", "Polls that received "
		"nothing.", m->idle_polls);
	counter(w, "bypax_worker_busy_cycles_total", "TSC cycles the worker "
		"spent in polls that received frames.", m->busy_cycles);
}

static void render_latency(struct writer *w, const struct ctl_metrics_page *p)
{
	const struct ctl_metrics_worker *m = &p->w;
	const char *name = "bypax_commit_latency_seconds";
	family(w, name, "histogram", "A leader's slots, from the poll that "
	       "proposed them to the poll that saw them committed.");
	uint64_t cumulative = 0;
	for (unsigned i = 0; i < CTL_LAT_BUCKETS; i++) {
		cumulative += m->lat_buckets[i];
		put(w, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, lat_le[i],
		    cumulative);
	}
	cumulative += m->lat_buckets[CTL_LAT_BUCKETS];
	/* +Inf is the count: read bucket by bucket, never below the rest. */
	uint64_t count = m->lat_count > cumulative ? m->lat_count : cumulative;
	put(w, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, count);
	put(w, "%s_sum %.9f\n", name, (double)m->lat_sum_ns / 1e9);
	put(w, "%s_count %" PRIu64 "\n", name, count);
}

static void render_snapshots(struct writer *w, const struct ctl_metrics_page *p)
{
	const struct ctl_metrics_worker *m = &p->w;
	counter(w, "bypax_snapshots_sent_total", "Snapshots streamed to a "
		"replica catching up.", m->snapshots_sent);
	counter(w, "bypax_snapshots_installed_total", "Snapshots received and "
		"installed.", m->snapshots_installed);
	counter(w, "bypax_snapshot_chunks_sent_total", "Snapshot chunks sent.",
		m->snapshot_chunks_sent);
	counter(w, "bypax_snapshot_chunks_dropped_total", "Snapshot chunks "
		"received out of order or of another stream.",
		m->snapshot_chunks_dropped);
	counter(w, "bypax_snapshot_resumes_total", "Gaps in a snapshot stream "
		"repaired (resume requests sent).", m->snapshot_resumes);
	counter(w, "bypax_snapshots_reused_total", "Catch-up requests served "
		"from an earlier snapshot.", m->snapshots_reused);
	counter(w, "bypax_recoveries_total", "Recoveries (after a restart "
		"without state) completed.", m->recoveries_done);
	counter(w, "bypax_snapshots_streamed_total", "Snapshots streamed to "
		"bypaxctl.", p->snapshots_streamed);
	counter(w, "bypax_snapshots_abandoned_total", "Snapshot streams to "
		"bypaxctl given up (reader gone or stalled).",
		p->snapshots_abandoned);
}

/* Durable mode: what the write-ahead log costs (syncs per committed slot:
 * bypax_wal_syncs_total over bypax_slots_committed_total) and whether it
 * still works. */
static void render_durability(struct writer *w, const struct ctl_metrics_page *p)
{
	const struct ctl_metrics_worker *m = &p->w;
	gauge(w, "bypax_durable", "1: [cluster] durability = wal.", m->durable);
	gauge(w, "bypax_wal_failed", "1: the write-ahead log failed (disk "
	      "full, EIO): this member sends nothing and stops.", m->wal_failed);
	counter(w, "bypax_wal_records_total", "Records appended to the "
		"write-ahead log (promises, accepted values, commits).",
		m->wal_records);
	counter(w, "bypax_wal_group_commits_total", "Syncs that made records "
		"durable (one per poll pass at most, or per full hold queue).",
		m->wal_group_commits);
	counter(w, "bypax_wal_syncs_total", "fdatasync and fsync calls on the "
		"write-ahead log, segment starts and recycling included.",
		m->wal_syncs);
	counter(w, "bypax_wal_bytes_total", "Record bytes written to the "
		"write-ahead log.", m->wal_bytes);
	counter(w, "bypax_wal_held_frames_total", "Frames that waited for a "
		"sync before they were sent.", m->wal_held_frames);
	counter(w, "bypax_wal_failed_drops_total", "Frames not sent because "
		"the write-ahead log had failed.", m->wal_failed_drops);
	counter(w, "bypax_wal_segments_recycled_total", "Segment files "
		"deleted behind a snapshot on disk.", m->wal_segments_recycled);
	counter(w, "bypax_disk_snapshots_total", "Snapshots written to disk "
		"and synced.", m->disk_snapshots);
	counter(w, "bypax_disk_snapshot_failures_total", "Snapshots to disk "
		"that failed (the log keeps everything meanwhile).",
		m->disk_snapshot_failures);
	counter(w, "bypax_disk_snapshot_copy_passes_total", "Worker passes "
		"that copied part of a frozen state machine for a snapshot "
		"to disk.", m->disk_snapshot_copy_passes);
	counter(w, "bypax_disk_snapshot_copy_refused_total", "Snapshots to "
		"disk saved whole on the worker because the state machine "
		"had no memory for its frozen copy.",
		m->disk_snapshot_copy_refused);
	family(w, "bypax_disk_snapshot_stall_max_seconds", "gauge",
	       "The longest one call of the worker for a snapshot to disk "
	       "took: freezing, one copy pass, or a whole synchronous save.");
	put(w, "bypax_disk_snapshot_stall_max_seconds %" PRIu64 ".%06" PRIu64
	       "\n",
	    m->disk_snapshot_stall_max_ns / 1000000000u,
	    m->disk_snapshot_stall_max_ns / 1000u % 1000000u);
}

size_t ctl_metrics_render(const struct ctl_metrics_page *p, char *buf,
			  size_t cap)
{
	CTL_ASSERT(p->member_count <= PX_REPLICAS_MAX && p->self < p->member_count);
	struct writer w = { .buf = buf, .cap = cap };
	if (cap == 0)
		return 0;
	render_identity(&w, p);
	render_log_state(&w, p);
	render_peers(&w, p);
	render_control(&w, p);
	render_drops(&w, p);
	render_traffic(&w, p);
	render_latency(&w, p);
	render_snapshots(&w, p);
	render_durability(&w, p);
	if (w.full) {
		buf[0] = '\0';
		return 0;
	}
	return w.len;
}

/* ---- /health ---- */

void ctl_health_note(struct ctl_health_track *t,
		     const struct ctl_worker_status *st, bool have_status,
		     uint64_t now_ns)
{
	if (!have_status || st->seq == t->status_seq)
		return;
	t->status_seq = st->seq;
	t->status_ns = now_ns;
	if (st->rx_frames != t->rx_frames || st->tx_frames != t->tx_frames ||
	    t->data_ns == 0) {
		t->rx_frames = st->rx_frames;
		t->tx_frames = st->tx_frames;
		t->data_ns = now_ns;
	}
}

void ctl_health_note_alive(struct ctl_health_track *t, uint32_t alive,
			   uint8_t self)
{
	for (uint8_t m = 0; m < PX_REPLICAS_MAX; m++) {
		uint32_t bit = 1u << m;
		if (m != self && (t->alive_mask & bit) && !(alive & bit))
			t->suspicions[m]++;
	}
	t->alive_mask = alive;
}

static bool unhealthy(char *why, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static bool unhealthy(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
	return false;
}

/* The worker reports and its frame counters move. */
static bool worker_moves(const struct ctl_health_track *t, uint64_t now_ns,
			 char *why, size_t cap)
{
	if (t->status_seq == 0)
		return unhealthy(why, cap, "the worker has not reported yet");
	if (now_ns - t->status_ns > CTL_HEALTH_STATUS_NS)
		return unhealthy(why, cap, "the worker has not reported for %"
				 PRIu64 " ms", (now_ns - t->status_ns) / 1000000);
	if (now_ns - t->data_ns > CTL_HEALTH_DATA_NS)
		return unhealthy(why, cap, "no frame received or sent for %"
				 PRIu64 " ms", (now_ns - t->data_ns) / 1000000);
	return true;
}

bool ctl_health_check(const struct ctl_health_track *t,
		      const struct ctl_health_input *in, uint64_t now_ns,
		      char *why, size_t cap)
{
	if (!in->have_status || !worker_moves(t, now_ns, why, cap))
		return in->have_status ? false
				       : unhealthy(why, cap, "the worker has "
						   "not reported yet");
	uint8_t role = in->status->role;
	if (role == PX_ROLE_RECOVERING)
		return unhealthy(why, cap, "recovering: not voting yet");
	if (in->leader == CTL_NONE)
		return unhealthy(why, cap, "no leader (no majority heard)");
	if (role == PX_ROLE_LEADER && in->leader == in->self) {
		snprintf(why, cap, "leader");
		return true;
	}
	if (in->leader == in->self)
		return unhealthy(why, cap, "chosen to lead, not leading yet "
				 "(%s)", role == PX_ROLE_CANDIDATE ? "electing"
								   : "following");
	if (role != PX_ROLE_FOLLOWER)
		return unhealthy(why, cap, "%s while member %u leads",
				 role == PX_ROLE_LEADER ? "leader" : "candidate",
				 in->leader);
	if (!in->leader_alive)
		return unhealthy(why, cap, "leader %u is suspected", in->leader);
	snprintf(why, cap, "follower of member %u", in->leader);
	return true;
}
