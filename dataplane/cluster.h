/* The in-process cluster: replicas and load generators on one net_ring
 * mesh, spread over the EAL lcores. Used by bypax-cluster (the demo, the
 * dpdk tests and the bench). */
#ifndef BYPAX_CLUSTER_H
#define BYPAX_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "dp.h"
#include "ports.h"

#define CL_LOADGENS_MAX 4u

struct cluster_opts {
	uint32_t replicas;
	uint32_t loadgens;
	uint32_t lanes;
	uint64_t requests;      /* stop after this many (0: use duration) */
	double duration_s;
	uint32_t value_bytes;
	uint32_t get_pct;
	uint32_t keys;
	uint32_t idle_sleep_us;
	uint32_t window;
	uint32_t batch;
	uint32_t leader;
	uint32_t garbage;       /* malformed frames of each kind per replica */
	uint32_t pack;          /* requests per client frame at most (1: a
				 * REQUEST per frame; dp_loadgen_config) */
	uint32_t snapshot_mb;   /* each replica's catch-up snapshot buffers
				 * (0: none; a follower that falls out of
				 * the leader's log then never catches up) */
	uint64_t rate_per_s;    /* 0: closed loop; else open loop at this rate */
	uint32_t warmup_ms;     /* latency not recorded for requests started
				 * in the first warmup_ms of the run */
	bool progress;
	bool prefill;           /* every key PUT into every store first */
	const char *json_path;
	const char *sm;
	const char *sm_args;
	const char *key_file;   /* the cluster key; NULL: none */
};

struct cluster_report {
	double seconds;
	uint64_t completed;
	uint64_t issued;
	uint64_t errors;
	uint64_t p50_ns, p99_ns, p999_ns, max_ns;
	double mean_ns;
	double batch_avg;
	double packets_per_op;
	double cycles_per_op;     /* busy polls of all lcores / committed */
	double leader_cycles_per_op; /* the leader's own busy polls / committed */
	double leader_busy_frac;  /* the leader's busy polls / elapsed */
	uint32_t leader_id;
	uint64_t tsc_hz;
	uint64_t resends;
	uint64_t stalls;          /* an lcore did not poll for over 1 ms */
	double stall_ms;          /* their total length, all lcores */
	double stall_max_ms;      /* the longest */
	uint64_t latency_samples; /* requests in the latency percentiles */
	uint64_t drops_total;
	uint64_t garbage_sent;
	uint64_t bad_mac;         /* of drops_total: no valid cluster-key tag */
	uint64_t shared_sends;    /* frames whose value was not copied */
	uint64_t packed_frames;   /* MULTI_REQUEST frames the replicas took */
	uint64_t packed_requests; /* the requests in them */
	uint64_t packed_reply_frames; /* MULTI_REPLY frames sent */
	uint64_t packed_replies;  /* the replies in them */
	uint64_t applied;
	double prefill_s;         /* --prefill: how long filling took */
	bool states_identical;
	/* Each replica's at the end, to tell a drain that ran out of time
	 * (applied indexes differ) from replicas that diverged (the same
	 * index, different digests). */
	uint64_t replica_applied[PX_REPLICAS_MAX];
	uint64_t replica_commit[PX_REPLICAS_MAX];
	uint64_t replica_digest[PX_REPLICAS_MAX];
	bool drained;             /* converged before the drain's limit */
	bool mbufs_returned;
	unsigned mbufs_in_use;
	uint64_t snapshots_installed; /* followers caught up past the log */
};

int cluster_run(const struct cluster_opts *o, struct cluster_report *rep);

#endif
