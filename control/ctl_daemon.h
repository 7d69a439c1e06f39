/* The control thread of bypaxd: heartbeats over UDP between members'
 * control addresses (feeding the pure failure detector and Omega), the
 * admin socket for bypaxctl, and the rings to the worker. It sleeps in
 * poll(); it never touches the worker's state. */
#ifndef BYPAX_CTL_DAEMON_H
#define BYPAX_CTL_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ring.h>

#include "bypax/config.h"
#include "ctl_link.h"
#include "ctl_wire.h"
#include "omega.h"

struct ctl_peer_view {
	struct ctl_hb_msg last;
	uint64_t heard_ns; /* 0: never */
};

struct ctl_daemon {
	const struct bpx_config *cfg;
	uint8_t self;
	int static_leader;          /* >= 0: no Omega, always this leader */
	struct ctl_omega omega;
	int hb_fd;
	int admin_fd;
	char admin_path[108];
	struct rte_ring *to_worker;
	struct rte_ring *from_worker;
	struct ctl_worker_status status;
	bool have_status;
	struct ctl_peer_view peers[PX_REPLICAS_MAX];
	uint8_t leader;             /* Omega's current choice */
	uint8_t hint_sent;
	uint64_t hint_sent_ns;
	uint64_t start_ns;
	uint64_t last_failover_ns;  /* 0: none */
	uint8_t failover_from, failover_to;
	uint64_t failovers;
	uint64_t hb_dropped;
	const uint8_t *snapshot_buf; /* the worker's buffer, for "snapshot" */
	int snapshot_client;         /* admin connection waiting, or -1 */
	int reconfig_client;         /* admin connection waiting, or -1 */
	uint64_t reconfig_seq;       /* the worker's answer count we wait past */
	uint8_t reconfig_mask;
	char snapshot_path[256];
	volatile bool *quit;
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
