/* The control thread of bypaxd: the glue around the pure control policy
 * (ctl_policy.h): heartbeats over UDP between members' control addresses,
 * the admin socket for bypaxctl, and the rings to the worker. Every decision
 * (leader, readiness, transfer, membership changes) is the policy's; this
 * thread moves its inputs and outputs. It sleeps in poll(); it never
 * touches the worker's state. */
#ifndef BYPAX_CTL_DAEMON_H
#define BYPAX_CTL_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ring.h>

#include "bypax/config.h"
#include "bypax/snapfile.h"
#include "ctl_link.h"
#include "ctl_policy.h"
#include "ctl_wire.h"

/* "snapshot": the worker's state streamed to bypaxctl over its admin
 * connection as a snapshot file (bypax/snapfile.h), which bypaxctl writes;
 * this thread writes no file. One at a time, kept across loop iterations:
 * a text line and the file header (head), the worker's buffer (body), the
 * CRC-32C trailer (tail). */
struct ctl_snapshot_stream {
	int client;           /* the admin connection, or -1 */
	bool worker_busy;     /* a save asked for and not answered yet */
	bool sending;
	bool release_pending; /* the ring was full when it was given back */
	uint64_t answers_seen; /* the worker's snapshot_seq we acted on */
	uint64_t deadline_ns; /* the worker's answer, or the reader's progress */
	uint8_t head[128 + PX_SNAPFILE_HEADER_BYTES];
	size_t head_bytes;
	const uint8_t *body;
	size_t body_bytes;
	uint64_t index;       /* the snapshot's applied index */
	uint8_t tail[PX_SNAPFILE_TRAILER_BYTES];
	size_t sent;          /* of head, body and tail, in that order */
	uint32_t crc;         /* of the file bytes sent so far */
	uint64_t streamed;    /* counters: whole files sent */
	uint64_t abandoned;   /* readers that went away or stalled */
};

struct ctl_daemon {
	const struct bpx_config *cfg;
	uint8_t self;
	struct ctl_policy policy;    /* every decision (ctl_policy.h) */
	int hb_fd;
	int admin_fd;
	char admin_path[108];
	struct rte_ring *to_worker;
	struct rte_ring *from_worker;
	uint64_t start_ns;
	uint64_t hb_dropped;
	/* The worker's send buffer: read only between a CTL_CMD_SNAPSHOT
	 * answer that hands it over and the command that gives it back. */
	const uint8_t *snapshot_buf;
	struct ctl_snapshot_stream snap;
	volatile bool *quit;
	/* "fault link M MS": until then the main thread keeps this
	 * replica's port toward member M stopped (0: no fault). */
	volatile uint64_t link_fault_until_ns[PX_REPLICAS_MAX];
};

/* Opens the sockets and rings. Returns 0 or a negative error with err
 * naming the address or path. */
int ctl_daemon_init(struct ctl_daemon *d, const struct bpx_config *cfg,
		    uint8_t self, int static_leader, const char *admin_path,
		    volatile bool *quit, char *err, size_t err_len);
/* Starts the control thread (rte_ctrl_thread_create). */
int ctl_daemon_start(struct ctl_daemon *d, char *err, size_t err_len);
/* Waits for the thread (after *quit is set) and closes everything. */
void ctl_daemon_stop(struct ctl_daemon *d);

uint64_t ctl_clock_ns(void);

#endif
