/* Messages between the control thread and a replica's worker lcore. They
 * travel only through single-producer/single-consumer rte_rings (DESIGN.md):
 * the control thread never touches the worker's state. */
#ifndef BYPAX_CTL_LINK_H
#define BYPAX_CTL_LINK_H

#include <stdint.h>

enum ctl_cmd_type {
	CTL_CMD_LEADER_HINT = 1, /* arg: leader id or 0xff */
	CTL_CMD_ISOLATE = 2,     /* value: cut off from peers for ms */
	CTL_CMD_SNAPSHOT = 3,    /* arg 0: save a snapshot into the worker's
				  * send buffer, which then belongs to the
				  * control thread; arg 1: it gives it back */
	CTL_CMD_RECONFIG = 4,    /* arg: the new member mask (leader only) */
};

struct ctl_cmd {
	uint32_t type;
	uint32_t arg;
	uint64_t value;
};

/* What the worker publishes every few milliseconds. */
struct ctl_worker_status {
	uint64_t seq;
	uint64_t promised;
	uint64_t leader_ballot;
	uint64_t commit_index;
	uint64_t applied_index;
	uint64_t log_start;
	uint64_t requests_applied;
	uint64_t rx_frames;
	uint64_t tx_frames;
	uint64_t drops;
	uint64_t wrong_cluster;  /* of drops: frames of another cluster */
	uint64_t bad_mac;        /* of drops: no valid cluster-key tag */
	/* CTL_CMD_SNAPSHOT saves, answered by a count, so that a status
	 * the ring had no room for loses no answer: the last one's result
	 * (0: the buffer holds snapshot_bytes of the state at
	 * snapshot_index, and is the control thread's until it gives it
	 * back), else a -BPX_E* and no buffer. */
	uint64_t snapshot_seq;
	uint64_t snapshot_bytes;
	uint64_t snapshot_index;
	uint64_t reconfig_seq;   /* counts CTL_CMD_RECONFIG answers */
	int32_t reconfig_rc;     /* the last one's px_propose_config result */
	int32_t snapshot_rc;
	uint32_t queue_depth;
	uint64_t next_slot;       /* the next slot this replica would propose */
	uint8_t role;
	uint8_t known_leader;
	uint8_t members;         /* voting replicas (bitmask) */
	uint8_t pad[1];
};

#define CTL_RING_SIZE 64u

#endif
