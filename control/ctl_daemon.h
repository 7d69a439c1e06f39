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
#include <stdio.h>

#include <rte_ring.h>

#include "bypax/config.h"
#include "ctl_link.h"
#include "ctl_policy.h"
#include "ctl_wire.h"
#include "ratelimit.h"

/* Log lines of the control thread go through a ring to bypaxd's main
 * thread, which prints them: a stdout that does not drain must not stall
 * the heartbeats. Lines about unwanted traffic are rate-limited: at most
 * one per source per CTL_LOG_INTERVAL_NS, each with its count. */
#define CTL_LOG_LINE_BYTES 256u
#define CTL_LOG_INTERVAL_NS (10ull * 1000 * 1000 * 1000)

struct ctl_log_line {
	char text[CTL_LOG_LINE_BYTES];
};

/* What makes this process member `self` on its host: an exclusive lock
 * on "<admin socket>.lock" and the member's control address, bound
 * exclusively. bypaxd takes it before the EAL starts, so that a second
 * bypaxd with the same --id stops before it touches any port. */
struct ctl_claim {
	int lock_fd;
	int hb_fd;          /* the heartbeat socket, bound, non-blocking */
	char admin_path[108];
};

/* Takes the claim for member self of cfg, with its admin socket at
 * admin_path (not created here). Returns 0; -BPX_EBUSY when another
 * process holds the lock or the control address (err names the member and
 * what is taken); -BPX_ECONFIG for a path that does not fit a UNIX socket;
 * -BPX_EIO for other failures (err names the path or address). On an error
 * nothing is held. */
int ctl_claim_take(struct ctl_claim *c, const struct bpx_config *cfg,
		   uint8_t self, const char *admin_path, char *err,
		   size_t err_len);
/* Closes the control socket and drops the lock (the lock file stays). */
void ctl_claim_release(struct ctl_claim *c);

/* Admin connections (bypaxctl): at most CTL_ADMIN_CONNS at once, each a
 * command line in and a reply out, never a blocking call. */
#define CTL_ADMIN_CONNS 8u
#define CTL_ADMIN_LINE_MAX 512u
#define CTL_ADMIN_REPLY_MAX 8192u
/* How long a client has to send its command, and again to take its reply. */
#define CTL_ADMIN_BUDGET_NS 1000000000ull
/* A client is not dropped to make room before it has had this long to
 * send its command: a flood of idle ones must not push out bypaxctl. */
#define CTL_ADMIN_GRACE_NS 50000000ull

enum ctl_admin_state {
	CTL_ADMIN_FREE,
	CTL_ADMIN_READING, /* until the command's newline */
	CTL_ADMIN_WAITING, /* for the policy's or the worker's answer */
	CTL_ADMIN_WRITING, /* until the reply is sent */
};

struct ctl_admin_reply {
	char buf[CTL_ADMIN_REPLY_MAX];
	size_t len;
};

struct ctl_admin_conn {
	int fd;
	uint8_t state;        /* enum ctl_admin_state */
	uint64_t deadline_ns; /* READING, WRITING: dropped at this time */
	size_t line_len;
	char line[CTL_ADMIN_LINE_MAX];
	size_t sent;
	struct ctl_admin_reply reply;
};

struct ctl_daemon {
	const struct bpx_config *cfg;
	uint8_t self;
	struct ctl_policy policy;    /* every decision (ctl_policy.h) */
	const struct ctl_claim *claim; /* held for as long as we run */
	int hb_fd;                   /* the claim's */
	int admin_fd;
	bool started;                /* the thread runs */
	struct rte_ring *to_worker;
	struct rte_ring *from_worker;
	struct rte_ring *log;        /* struct ctl_log_line, to the main thread */
	uint64_t start_ns;
	uint64_t hb_dropped;
	uint64_t hb_wrong_cluster;   /* of hb_dropped: another cluster's */
	struct ctl_ratelimit foreign_log; /* per source ip:port */
	struct ctl_ratelimit admin_log;
	const uint8_t *snapshot_buf; /* the worker's buffer, for "snapshot" */
	int snapshot_client;         /* admin connection waiting, or -1 */
	struct ctl_admin_conn admin[CTL_ADMIN_CONNS];
	uint64_t admin_dropped;      /* clients out of their budget */
	char snapshot_path[256];
	volatile bool *quit;
};

/* Opens the admin socket (replacing a stale one: the claim is held) and
 * the rings. Returns 0 or a negative error with err naming the path. */
int ctl_daemon_init(struct ctl_daemon *d, const struct bpx_config *cfg,
		    uint8_t self, int static_leader,
		    const struct ctl_claim *claim, volatile bool *quit,
		    char *err, size_t err_len);
/* Starts the control thread (rte_ctrl_thread_create). */
int ctl_daemon_start(struct ctl_daemon *d, char *err, size_t err_len);
/* Prints the control thread's log lines to out; for one other thread
 * (bypaxd's main thread) while the control thread runs. */
void ctl_daemon_print_log(struct ctl_daemon *d, FILE *out);
/* Waits for the thread (after *quit is set) and closes everything but
 * the claim; removes the admin socket. */
void ctl_daemon_stop(struct ctl_daemon *d);

uint64_t ctl_clock_ns(void);

#endif
