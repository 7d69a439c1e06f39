/* systemd's readiness protocol (sd_notify(3)) for bypaxd, without
 * libsystemd: one datagram of "KEY=value" lines to the AF_UNIX socket
 * named by $NOTIFY_SOCKET ('@' first: an abstract socket). Outside
 * systemd (no $NOTIFY_SOCKET) every call does nothing.
 *
 * bypaxd's main thread sends READY=1 once this member has joined (leader,
 * or a follower that knows a leader), STATUS= on each role change,
 * WATCHDOG=1 at half of $WATCHDOG_USEC while the worker polls, and
 * STOPPING=1 on a signal (docs/deploy.md, "Run under systemd"). */
#ifndef BYPAX_DATAPLANE_NOTIFY_H
#define BYPAX_DATAPLANE_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

struct dp_notify {
	int fd; /* -1: not under systemd */
	struct sockaddr_un addr;
	socklen_t addr_len;
	uint64_t watchdog_ns; /* $WATCHDOG_USEC for this pid; 0: none */
	uint64_t last_ping_ns;
	uint64_t dropped; /* datagrams the manager did not take */
};

/* Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. Returns 0 (n is
 * then usable, enabled or not), or -1 with why naming the bad value. */
int dp_notify_open(struct dp_notify *n, char *why, size_t why_len);

bool dp_notify_enabled(const struct dp_notify *n);

/* Sends text ("READY=1\nSTATUS=..."). Never blocks: a datagram the
 * manager's queue has no room for is counted in dropped. */
void dp_notify_send(struct dp_notify *n, const char *text);

/* WATCHDOG=1 when half the watchdog interval has passed since the last
 * one; the caller passes whether the worker polls, and nothing is sent
 * while it does not (systemd then restarts a stuck replica). */
void dp_notify_watchdog(struct dp_notify *n, uint64_t now_ns,
			bool worker_polls);

void dp_notify_close(struct dp_notify *n);

#endif
