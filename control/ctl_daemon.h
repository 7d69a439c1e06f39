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
#include "ctl_link.h"
#include "ctl_policy.h"
#include "ctl_wire.h"

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
	const uint8_t *snapshot_buf; /* the worker's buffer, for "snapshot" */
	int snapshot_client;         /* admin connection waiting, or -1 */
	char snapshot_path[256];
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
