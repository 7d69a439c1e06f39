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
#include "bypax/snapfile.h"
#include "ctl_http.h"
#include "ctl_link.h"
#include "ctl_metrics.h"
#include "ctl_policy.h"
#include "ctl_wire.h"
#include "ctl_log.h"
#include "ratelimit.h"

/* Event lines of the control thread (logfmt, ctl_log.h) go through a ring
 * to bypaxd's main thread, which writes them: a stderr that does not
 * drain must not stall the heartbeats. Lines about unwanted traffic are
 * rate-limited: at most one per source per CTL_LOG_INTERVAL_NS, each with
 * its count. */
#define CTL_LOG_RING_SIZE 512u
#define CTL_LOG_INTERVAL_NS (10ull * 1000 * 1000 * 1000)

struct ctl_log_line {
	uint16_t type;  /* enum ctl_log_type */
	uint16_t level; /* RTE_LOG_ERR .. RTE_LOG_DEBUG (a ring element is
			 * a multiple of 4 bytes) */
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
/* An admin client whose credentials SO_PEERCRED could not tell. */
#define CTL_UID_UNKNOWN UINT32_MAX
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
	uint32_t peer_uid;    /* SO_PEERCRED at accept; CTL_UID_UNKNOWN */
	uint64_t deadline_ns; /* READING, WRITING: dropped at this time */
	size_t line_len;
	char line[CTL_ADMIN_LINE_MAX];
	size_t sent;
	struct ctl_admin_reply reply;
};

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
	const struct ctl_claim *claim; /* held for as long as we run */
	int hb_fd;                   /* the claim's */
	int admin_fd;
	bool started;                /* the thread runs */
	struct rte_ring *to_worker;
	struct rte_ring *from_worker;
	struct rte_ring *log;        /* struct ctl_log_line, to the main thread */
	uint64_t log_lost;           /* lines the full ring had no room for */
	uint64_t start_ns;
	uint64_t hb_dropped;
	uint64_t hb_wrong_cluster;   /* of hb_dropped: another cluster's */
	struct ctl_ratelimit foreign_log; /* per source ip:port */
	struct ctl_ratelimit admin_log;
	uint64_t hb_bad_mac;         /* of hb_dropped: no valid key tag */
	struct ctl_ratelimit bad_mac_log; /* per source ip:port */
	/* Commands that change state refused to a uid that is neither root
	 * nor ours (docs/deploy.md, "The admin socket"): per uid. */
	struct ctl_ratelimit refused_log;
	uint64_t admin_refused;
	struct ctl_admin_conn admin[CTL_ADMIN_CONNS];
	uint64_t admin_dropped;      /* clients out of their budget */
	/* The worker's send buffer: read only between a CTL_CMD_SNAPSHOT
	 * answer that hands it over and the command that gives it back. */
	const uint8_t *snapshot_buf;
	struct ctl_snapshot_stream snap;
	volatile bool *quit;
	/* "fault link M MS": until then the main thread keeps this
	 * replica's port toward member M stopped (0: no fault). */
	volatile uint64_t link_fault_until_ns[PX_REPLICAS_MAX];
	/* "fault silent M MS": until then, or until the port restarts, the
	 * port toward M stays up but the worker neither polls nor sends on
	 * it (0: no fault). */
	volatile uint64_t link_silent_until_ns[PX_REPLICAS_MAX];
	/* When each member's latest valid heartbeat arrived (ctl_clock_ns;
	 * 0: never): the main thread restarts a silent data link only
	 * toward a member that is alive, never toward one that is stopped
	 * (a memif server stopped mid-handshake must not be hung up on). */
	volatile uint64_t peer_heard_ns[PX_REPLICAS_MAX];
	/* /metrics and /health (ctl_daemon_metrics.c), at the member's
	 * metrics address; no server without one. */
	struct ctl_http http;
	struct ctl_health_track health;
	/* Set before ctl_daemon_start (NULL: the page shows zeros): fills
	 * in the worker's counters, read as telemetry reads them. */
	void (*worker_metrics)(void *arg, struct ctl_metrics_worker *w);
	void *worker_metrics_arg;
};

/* Opens the admin socket (replacing a stale one: the claim is held) and
 * the rings. Returns 0 or a negative error with err naming the path. */
int ctl_daemon_init(struct ctl_daemon *d, const struct bpx_config *cfg,
		    uint8_t self, int static_leader,
		    const struct ctl_claim *claim, volatile bool *quit,
		    char *err, size_t err_len);
/* Starts the control thread (rte_ctrl_thread_create). */
int ctl_daemon_start(struct ctl_daemon *d, char *err, size_t err_len);
/* Writes the control thread's event lines (ctl_log_write); for one other
 * thread (bypaxd's main thread) while the control thread runs. */
void ctl_daemon_print_log(struct ctl_daemon *d);
/* Waits for the thread (after *quit is set) and closes everything but
 * the claim; removes the admin socket. */
void ctl_daemon_stop(struct ctl_daemon *d);

uint64_t ctl_clock_ns(void);

/* The HTTP endpoint (ctl_daemon_metrics.c). open: listens on the member's
 * metrics address, if it has one; returns 0 or ctl_http_open's error.
 * serve: once per loop of the control thread, with its poll set. */
int ctl_daemon_metrics_open(struct ctl_daemon *d, char *err, size_t err_len);
void ctl_daemon_metrics_serve(struct ctl_daemon *d, const struct pollfd *fds,
			      uint64_t now);

#endif
