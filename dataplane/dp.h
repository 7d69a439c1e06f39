/* The DPDK dataplane: endpoints (replica instances and load generators)
 * polled by worker lcores. Internal to dataplane/. */
#ifndef BYPAX_DP_H
#define BYPAX_DP_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "bypax/config.h"
#include "bypax/consensus.h"

/* The consensus core's assertion hook, defined in dp_common.c: prints the
 * expression, file and line, then aborts. */
void px_assert_fail(const char *expr, const char *file, int line);
#define DP_ASSERT(x)                                                           \
	do {                                                                   \
		if (!(x))                                                      \
			px_assert_fail(#x, __FILE__, __LINE__);                \
	} while (0)

#include "bypax/sm.h"
#include "bypax/wire.h"
#include "hist.h"
#include "engine.h"
#include "ctl_metrics.h"

#define DP_BURST 32u
#define DP_ROUTES_MAX 32u
#define DP_RX_MAX 8u
/* The client-address table: sets of DP_CLIENT_WAYS entries, the set's
 * least recently used entry replaced. It was direct-mapped with 4096
 * entries: at 4096 client lanes two lanes' requests often shared a slot,
 * the second overwrote the first, and the first's reply was lost until
 * its retry (197,137 resends in the bench's 4096-lane run). */
#define DP_CLIENT_ADDRS 16384u /* power of two */
#define DP_CLIENT_WAYS 4u
#define DP_TICK_NS 20000ull   /* px_tick every 20 us */

/* Where a frame for a given destination MAC leaves: a port and TX queue. */
struct dp_route {
	uint16_t port;
	uint16_t queue;
};

struct dp_txq {
	struct dp_route route;
	uint16_t count;
	struct rte_mbuf *pkts[DP_BURST];
};

/* Destination MAC -> TX queue, plus a default for everything else (the NIC
 * port, or the port kernel clients sit behind). */
struct dp_routes {
	uint8_t count;
	uint8_t macs[DP_ROUTES_MAX][6];
	uint8_t txq[DP_ROUTES_MAX];     /* index into the TX queue table */
	uint8_t default_txq;
	uint8_t txq_count;
	struct dp_txq txqs[DP_ROUTES_MAX];
};

/* Snapshot transfer between replicas: the sender serializes once into its
 * buffer and streams chunks a few per poll, so the fast path never stalls
 * for long; the receiver reassembles in order and installs. */
#define DP_SNAP_LOCKED 0xfeu /* send buffer held for the control thread */

struct dp_snap {
	uint8_t *send_buf;
	uint8_t *recv_buf;
	size_t cap;
	/* sending: one serialized snapshot, streamed to send_to */
	size_t send_len;
	size_t send_off;
	uint64_t send_index;
	uint8_t send_to;          /* PX_REPLICA_NONE: idle */
	uint8_t send_last_to;     /* who the buffer was last streamed to */
	bool send_valid;          /* send_buf holds send_len bytes at send_index */
	uint64_t send_saved_ns;   /* when it was serialized */
	uint64_t send_next_ns;    /* pacing: the next chunks not before */
	/* receiving */
	size_t recv_len;
	size_t recv_off;
	uint64_t recv_index;
	uint8_t recv_from;
	uint64_t recv_progress_ns; /* the stream's last chunk in order */
	uint64_t recv_resume_ns;   /* the last resume request sent */
	/* for CTL_CMD_SNAPSHOT: the answers so far, and the last one's */
	uint64_t saved_seq;
	int32_t saved_rc;
	uint64_t saved_len;
	uint64_t saved_index;
};

/* Drop and traffic counters of one endpoint (read by telemetry). */
struct dp_counters {
	uint64_t rx_frames;
	uint64_t tx_frames;
	uint64_t tx_full;          /* TX queue refused: freed */
	uint64_t mbuf_exhausted;
	uint64_t arp_replies;
	uint64_t link_probes;      /* ARP requests sent to peers */
	uint64_t multi_segment;
	uint64_t no_client_address;
	uint64_t snapshot_unsupported;
	uint64_t snapshot_chunks_sent;
	uint64_t snapshot_chunks_dropped;
	uint64_t snapshots_sent;
	uint64_t snapshot_resumes;  /* gaps repaired: resume requests sent */
	uint64_t snapshots_reused;  /* requests served without serializing */
	uint64_t snapshots_installed;
	uint64_t isolated_drops;
	uint64_t shared_sends;     /* frames whose value was not copied */
	uint64_t encode_failed;
	/* Packed traffic (docs/wire.md, "Packed requests and replies"):
	 * frames and the requests or replies in them. */
	uint64_t packed_frames_rx;
	uint64_t packed_requests_rx;
	uint64_t packed_frames_tx;
	uint64_t packed_replies_tx;
	uint64_t packed_replies_rx;
	uint64_t drops[BPX_WIRE_DROP_COUNT];
	uint64_t replies[PX_REPLY_STATUS_MAX + 1]; /* sent, by status */
	/* The latest frame dropped as another cluster's, for bypaxd's log
	 * line (the worker does not print): its source, ip << 16 | port,
	 * and the cluster id it claimed. */
	uint64_t wrong_cluster_src;
	uint64_t wrong_cluster_id;
	/* The latest frame dropped as bad MAC: ip << 16 | port. */
	uint64_t bad_mac_src;
	uint64_t px_rejected;      /* px_step refused (counted by reason in px) */
	uint64_t busy_cycles;
	uint64_t idle_cycles;
	uint64_t polls;
	uint64_t idle_polls;
};

/* A leader's commit latency (/metrics, bypax_commit_latency_seconds):
 * the slots proposed in one poll, from that poll to the poll that sees
 * them all committed, counted into the buckets of ctl_metrics.h (no
 * allocation; the control thread reads them as telemetry reads counters).
 * Groups beyond DP_LAT_PENDING in flight are not measured (skipped). */
#define DP_LAT_PENDING 64u
struct dp_commit_latency {
	struct {
		uint64_t slot_begin, slot_end; /* [begin, end) proposed */
		uint64_t proposed_ns;
	} pending[DP_LAT_PENDING];
	uint32_t head, count;
	uint64_t next_slot_seen;   /* 0: not leading */
	uint64_t buckets[CTL_LAT_BUCKETS + 1];
	uint64_t slots, sum_ns;    /* slots measured, their latencies' sum */
	uint64_t skipped;
};

/* Durable mode ([cluster] durability = wal; durable.c): the worker's side
 * of the write-ahead log. PERSIST records of an outbox go to the WAL;
 * from the first of them on, every frame the replica sends waits here
 * until the poll pass's one sync (the caller's rule, consensus.h), or an
 * earlier one when DP_HELD_MAX frames wait. After a disk error nothing is
 * sent again: what follows a record that may not be on the disk must not
 * reach anyone. */
#define DP_HELD_MAX 512u
struct dp_wal;
struct dp_snapwriter;
struct dp_held_frame {
	struct dp_txq *q;
	struct rte_mbuf *mb;
};
struct dp_durable {
	struct dp_wal *wal;              /* NULL: in memory */
	struct dp_snapwriter *snapw;     /* snapshots on disk */
	uint64_t snapshot_every_slots;   /* [cluster] disk_snapshot_slots */
	uint64_t snapshot_index;         /* the newest on disk */
	uint64_t snapshot_tried_index;   /* applied index of the last try */
	uint32_t cluster_id, member_count;
	bool sync_needed;                /* a promise or vote not synced */
	uint32_t held_count;
	struct dp_held_frame held[DP_HELD_MAX];
	/* Set once, after failed_text: bypaxd's main thread reports it and
	 * stops (docs/deploy.md, "Durable mode"). */
	volatile bool failed;
	char failed_text[768];
	/* Counters (telemetry, /metrics), the worker's alone. */
	uint64_t records;                /* PERSIST records appended */
	uint64_t group_commits;          /* syncs that made records durable */
	uint64_t wal_syncs;              /* fdatasync/fsync calls, all */
	uint64_t wal_bytes;              /* record bytes written */
	uint64_t held_frames;            /* frames that waited for a sync */
	uint64_t failed_drops;           /* frames not sent after a failure */
	uint64_t disk_snapshots;         /* written and durable */
	uint64_t disk_snapshot_failures;
	uint64_t segments_recycled;
	uint64_t last_snapshot_bytes;
	/* An incremental disk snapshot (sm.h's snapshot_begin): frozen at
	 * begin with the head written, copied DP_SNAPSHOT_STEP_BYTES per
	 * tick, then completed by the writer thread from the frozen copy. */
	bool frozen_copying;     /* begun; the copy is not complete */
	bool frozen_submitted;   /* the writer fills from it: end when done */
	size_t frozen_head_len;
	uint64_t frozen_sm_len;
	uint64_t copy_passes;    /* snapshot_step calls, all snapshots */
	uint64_t stall_max_ns;   /* longest worker call for a disk snapshot */
	uint64_t frozen_refused; /* begin had no memory: saved whole instead */
};
/* What one tick's snapshot_step copies: at 4 KiB a piece, 16 pieces and
 * their page faults, tens of microseconds; a 120k-key store (7 MB of index
 * and arena) is copied in about 110 ticks. */
#define DP_SNAPSHOT_STEP_BYTES 65536u

struct dp_client_addr {
	uint64_t client_id;
	struct bpx_endpoint ep;
	uint32_t last_use; /* dp_replica.client_clock at its last request */
	bool used;
	bool packs; /* its last request came packed: so do its replies */
};

/* Replies to clients that pack, gathered over one poll pass into one
 * MULTI_REPLY frame per client address (built in place in its mbuf) and
 * sent at the end of the pass, or earlier when full. Bounded: with
 * DP_REPLY_PACKS addresses open, the next new one sends them all. */
#define DP_REPLY_PACKS 8u
struct dp_reply_pack {
	struct rte_mbuf *mb;
	uint8_t *frame;          /* the mbuf's data: headers, then payload */
	struct bpx_endpoint dst;
	uint8_t leader_hint;     /* the header's, shared by its replies */
	struct bpx_wire_packer w;
};

struct dp_rx {
	uint16_t port;
	uint16_t queue;
};

/* One replica instance: its consensus state, state machine and ports. */
struct dp_replica {
	uint8_t id;
	const struct bpx_config *cfg;
	struct bpx_endpoint self;
	struct px_replica *px;
	void *px_mem;
	const struct bpx_sm_ops *sm_ops;
	void *sm;
	struct px_outbox out;
	struct px_msg *out_msgs;
	struct rte_mempool *pool;
	uint8_t rx_count;
	struct dp_rx rx[DP_RX_MAX];
	struct dp_routes routes;
	uint16_t ip_id;
	uint64_t next_tick_ns;
	uint8_t leader_hint;
	struct dp_client_addr *clients; /* DP_CLIENT_ADDRS */
	uint32_t client_clock;          /* requests seen: the sets' LRU */
	/* Ports another thread is restarting: 1 = asked to stop using it,
	 * 2 = the worker stopped (port_pause.h: the worker moves 1 to 2 by
	 * compare-and-swap only). NULL when nothing restarts ports. */
	volatile uint8_t *port_paused;
	struct rte_ring *ctl_in;        /* commands from the control thread */
	struct rte_ring *ctl_out;       /* status to the control thread */
	uint64_t next_status_ns;
	uint64_t status_seq;
	uint64_t isolate_until_ns;      /* fault injection: cut off from peers */
	uint64_t reconfig_seq;
	int32_t reconfig_rc;
	struct dp_snap snap;
	struct dp_durable dur;
	bool share_payload;             /* every port does multi-segment TX */
	bool tx_ip_cksum;               /* every port computes the IPv4
					   header checksum
					   (dp_port_tx_ip_cksum) */
	/* Headers to each member, made at init: a frame to a member copies
	 * them and adds its lengths and checksum (bpx_frame_write_template). */
	struct bpx_frame_template to_member[PX_REPLICAS_MAX];
	bool clock_behind;              /* a long step ran: read the clock */
	/* Every this often, an ARP request to each peer (0: never). bypaxd
	 * sets it: a link over which nothing arrives although its peer is
	 * alive is then a broken link, which bypaxd restarts. */
	uint64_t link_probe_ns;
	uint64_t next_probe_ns;
	uint8_t reply_pack_count;
	struct dp_reply_pack reply_packs[DP_REPLY_PACKS];
	struct dp_counters ctr;
	struct dp_commit_latency lat;
	uint8_t frame_buf[BPX_FRAME_MAX];
};

/* A load generator: closed-loop client lanes on a DPDK port, for the
 * in-process cluster and the bench (loadgen.c). Each lane is one client
 * session with at most one request outstanding, run by the client engine
 * (client/engine.h: the same sessions, redirects, backoff, timeouts and
 * deadline as libbypax and the simulator's clients). Its write seqs carry
 * the lane index in their low DP_LANE_SEQ_BITS bits (the engine's
 * seq_tag_bits), so a reply finds its lane at once. */
#define DP_LANE_SEQ_BITS 16u
#define DP_LANES_MAX (1u << DP_LANE_SEQ_BITS)
struct dp_lane {
	struct bpx_engine_lane eng; /* nonce client_base + lane */
	uint64_t first_sent_ns;	    /* latency counts from here */
	uint16_t cmd_len;
	bool is_read;
	uint8_t cmd[PX_COMMAND_BYTES_MAX];
};

struct dp_loadgen_config {
	uint32_t lanes;
	uint32_t value_bytes;
	uint32_t get_pct;
	uint32_t keys;
	uint64_t timeout_ns;  /* per attempt */
	uint64_t deadline_ns; /* per request; 0: 5 s (libbypax's default) */
	uint64_t seed;
	/* 0: closed loop (a lane sends again as soon as it is answered).
	 * Else an open loop: requests start on a fixed schedule of this many
	 * per second, on the first free lane, and latency counts from the
	 * scheduled time, so queueing behind a slow server is measured (no
	 * coordinated omission). */
	uint64_t rate_per_s;
	/* Requests per frame at most (docs/wire.md, "Packed requests and
	 * replies"): what the lanes have ready for one member in a poll pass
	 * goes in MULTI_REQUEST frames of up to this many. 0 or 1: one
	 * REQUEST per frame, as a client of an older replica sends. At most
	 * BPX_WIRE_MULTI_MAX. */
	uint32_t pack;
};

/* The loadgen's open MULTI_REQUEST frame to one member, built in place. */
struct dp_request_pack {
	struct rte_mbuf *mb;     /* NULL: none open */
	uint8_t *frame;
	struct bpx_wire_packer w;
};

struct dp_loadgen {
	struct dp_loadgen_config lc;
	const struct bpx_config *cfg;
	struct bpx_endpoint self;
	struct rte_mempool *pool;
	/* Where replies arrive: one port in the in-process cluster, one per
	 * member for bypax-dpdk-load (a memif link is point to point). */
	uint8_t rx_count;
	struct dp_rx rx[DP_RX_MAX];
	struct bpx_frame_template to_member[PX_REPLICAS_MAX]; /* at init */
	struct dp_routes routes;
	struct dp_lane *lanes;
	struct bpx_engine eng;   /* the leader, OPEN seqs, counters */
	volatile bool issuing;   /* set by the main lcore */
	volatile uint64_t issued;
	volatile uint64_t completed;
	/* Copied from eng.stats after every poll: */
	uint64_t resends;
	uint64_t redirects;
	uint64_t busy_replies;
	uint64_t opens;          /* sessions opened */
	/* Requests that failed: */
	uint64_t errors;         /* STALE, TOO_BIG, BAD_REQUEST, bad OPEN */
	uint64_t expired;        /* EXPIRED replies: outcome unknown */
	uint64_t deadlines;      /* no answer by the deadline: unknown */
	uint64_t prng;
	uint64_t pace_start_ns;  /* open loop: when the schedule began */
	uint64_t paced;          /* open loop: scheduled requests started */
	uint64_t record_from_ns; /* latency of requests started (scheduled)
				  * before this is not recorded: warm-up */
	struct bpx_hist *hist;
	struct dp_request_pack packs[PX_REPLICAS_MAX]; /* by member */
	struct dp_counters ctr;
	uint8_t frame_buf[BPX_FRAME_MAX];
};

int dp_loadgen_init(struct dp_loadgen *g, const struct bpx_config *cfg,
		    const struct bpx_endpoint *self, uint64_t client_base,
		    const struct dp_loadgen_config *lc,
		    struct rte_mempool *pool);
void dp_loadgen_free(struct dp_loadgen *g);
/* Polls this port's queue for replies too. 0, or -BPX_ENOMEM past
 * DP_RX_MAX. */
int dp_loadgen_add_rx(struct dp_loadgen *g, uint16_t port, uint16_t queue);
uint32_t dp_loadgen_poll(struct dp_loadgen *g);
/* The same at a time the caller read already (dp_ns_at_tsc): one clock
 * read per pass over several endpoints. */
uint32_t dp_loadgen_poll_at(struct dp_loadgen *g, uint64_t now_ns);
uint32_t dp_loadgen_outstanding(const struct dp_loadgen *g);

/* Command-line numbers: name must be a whole number in lo..hi; otherwise
 * prints "PROG: NAME must be LO..HI, got 'S'" and returns -1. */
int dp_parse_u64(const char *prog, const char *name, const char *s,
		 uint64_t lo, uint64_t hi, uint64_t *out);

/* Clock: nanoseconds from the TSC, by multiply-shift (tsc_scale.h: within
 * 1 ns of the division, monotonic). dp_now_ns: since dp_clock_init, read
 * now; dp_ns_at_tsc: the same for a TSC the caller read already (one read
 * per poll pass); dp_tsc_to_ns: a number of cycles, no epoch. */
void dp_clock_init(void);
uint64_t dp_now_ns(void);
uint64_t dp_ns_at_tsc(uint64_t tsc);
uint64_t dp_tsc_to_ns(uint64_t tsc);
/* A seed that differs between two starts of the process (getrandom). */
uint64_t dp_random_seed(void);

/* Routes. */
void dp_routes_init(struct dp_routes *rt);
int dp_routes_add_txq(struct dp_routes *rt, uint16_t port, uint16_t queue);
int dp_routes_add_mac(struct dp_routes *rt, const uint8_t mac[6], uint8_t txq);
struct dp_txq *dp_routes_lookup(struct dp_routes *rt, const uint8_t mac[6]);
void dp_txq_push(struct dp_txq *q, struct rte_mbuf *m,
		 struct dp_counters *ctr);
/* Sends what every TX queue holds; frames for a port another thread is
 * restarting (port_paused[port] != 0; NULL: none) are freed and counted. */
void dp_routes_flush(struct dp_routes *rt, struct dp_counters *ctr,
			  volatile const uint8_t *port_paused);

/* Replica instances (replica.c). */
/* recovering: started without its state, so it recovers before it votes
 * (DESIGN.md); false only for the first start of a new cluster. */
int dp_replica_init(struct dp_replica *r, const struct bpx_config *cfg,
		    uint8_t id, bool recovering, const struct bpx_sm_ops *sm_ops,
		    void *sm, struct rte_mempool *pool, char *err,
		    size_t err_len);
void dp_replica_free(struct dp_replica *r);
int dp_replica_add_rx(struct dp_replica *r, uint16_t port, uint16_t queue);
/* One poll: rx burst, steps, timers, tx. Returns frames received. The
 * clock is read once, at its start; every step, timer and send of the
 * pass gets that time. _at: at a time the caller read already. */
uint32_t dp_replica_poll(struct dp_replica *r);
uint32_t dp_replica_poll_at(struct dp_replica *r, uint64_t now_ns);
void dp_replica_set_leader_hint(struct dp_replica *r, uint8_t leader);
/* Connects the worker to the control thread (both rings SP/SC). */
void dp_replica_attach_control(struct dp_replica *r, struct rte_ring *in,
			       struct rte_ring *out);
/* Allocates snapshot buffers of cap bytes each (0: no transfer). */
int dp_replica_enable_snapshots(struct dp_replica *r, size_t cap);
/* bypaxd --restore: installs a snapshot into a bootstrap replica before
 * its worker runs (asserted: nothing applied, not recovering). Returns
 * px_snapshot_install's result. */
int dp_replica_restore(struct dp_replica *r, const uint8_t *snap, size_t len);

/* Durable mode (durable.c). Enables it on a replica set up with
 * cfg->durability = wal, after replay: wal (opened and replayed), snapw
 * (snapshots on disk), its newest snapshot's index. */
void dp_replica_enable_durable(struct dp_replica *r, struct dp_wal *wal,
			       struct dp_snapwriter *snapw,
			       uint64_t snapshot_index);
/* transmit_outbox: one PERSIST record to the WAL. */
void dp_durable_persist(struct dp_replica *r, const struct px_msg *m);
/* push_frame: takes mb (true) when it must wait for a sync, or must
 * not go at all (the WAL failed). */
bool dp_durable_hold(struct dp_replica *r, struct dp_txq *q,
		     struct rte_mbuf *mb);
/* End of a poll pass: one sync, then the frames that waited. */
void dp_durable_commit(struct dp_replica *r);
/* A timer: a snapshot on disk every disk_snapshot_slots, and the WAL
 * recycled behind one once it is durable. */
void dp_durable_snapshots(struct dp_replica *r);
/* After px_snapshot_install of a peer's snapshot: on disk before any
 * later record (consensus.h, "Durability"). */
void dp_durable_installed(struct dp_replica *r);
/* What push_frame does after the hold (replica.c). */
void dp_replica_push_now(struct dp_replica *r, struct dp_txq *q,
			 struct rte_mbuf *mb);

/* /metrics: the replica's per-core counters and its pool's mbufs in use,
 * read as /bypax/stats reads them (dp_metrics.c). */
void dp_metrics_read(const struct dp_replica *r,
		     const struct rte_mempool *pool,
		     struct ctl_metrics_worker *w);

/* State machine loading (sm_loader.c): "kv" or a path to a .so. */
const struct bpx_sm_ops *dp_sm_load(const char *name, void **dl_handle,
				    char *err, size_t err_len);
void dp_sm_unload(void *dl_handle);

/* --help (-h), --version and --help-eal anywhere on a tool's command line,
 * answered before the EAL starts (which needs memory, and would take
 * --help as its own; --help-eal shows the EAL's). Returns true, with *rc
 * the exit status, when one was given. */
bool dp_early_option(int argc, char **argv, const char *prog,
		     void (*usage)(FILE *), int *rc);

#endif
