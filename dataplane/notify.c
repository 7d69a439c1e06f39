/* sd_notify(3)'s protocol, as notify.h describes. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "notify.h"

static int refuse(char *why, size_t len, const char *what, const char *value)
{
	snprintf(why, len, "%s='%s': %s", what, value,
		 "expected an absolute path or @abstract name, "
		 "and a positive WATCHDOG_USEC");
	return -1;
}

/* "@name": abstract (a leading NUL, not counted as a terminator);
 * "/path": a file. The address length counts only what is used. */
static int parse_address(struct dp_notify *n, const char *s)
{
	size_t len = strlen(s);
	if ((s[0] != '@' && s[0] != '/') || len < 2 ||
	    len >= sizeof(n->addr.sun_path))
		return -1;
	memset(&n->addr, 0, sizeof(n->addr));
	n->addr.sun_family = AF_UNIX;
	memcpy(n->addr.sun_path, s, len);
	if (s[0] == '@')
		n->addr.sun_path[0] = '\0';
	n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
				  (s[0] == '/'));
	return 0;
}

/* The watchdog is ours only when WATCHDOG_PID is unset or our pid. */
static int parse_watchdog(struct dp_notify *n, char *why, size_t why_len)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	if (usec == NULL || *usec == '\0')
		return 0;
	if (pid != NULL && *pid != '\0' && atol(pid) != (long)getpid())
		return 0;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(usec, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || *usec == '-')
		return refuse(why, why_len, "WATCHDOG_USEC", usec);
	n->watchdog_ns = (uint64_t)v * 1000u;
	return 0;
}

int dp_notify_open(struct dp_notify *n, char *why, size_t why_len)
{
	memset(n, 0, sizeof(*n));
	n->fd = -1;
	const char *sock = getenv("NOTIFY_SOCKET");
	if (sock == NULL || *sock == '\0')
		return 0;
	if (parse_address(n, sock) != 0)
		return refuse(why, why_len, "NOTIFY_SOCKET", sock);
	if (parse_watchdog(n, why, why_len) != 0)
		return -1;
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (n->fd < 0) {
		snprintf(why, why_len, "NOTIFY_SOCKET: socket: %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

bool dp_notify_enabled(const struct dp_notify *n)
{
	return n->fd >= 0;
}

void dp_notify_send(struct dp_notify *n, const char *text)
{
	if (n->fd < 0)
		return;
	ssize_t sent;
	do
		sent = sendto(n->fd, text, strlen(text),
			      MSG_NOSIGNAL | MSG_DONTWAIT,
			      (const struct sockaddr *)&n->addr, n->addr_len);
	while (sent < 0 && errno == EINTR);
	if (sent < 0)
		n->dropped++;
}

void dp_notify_watchdog(struct dp_notify *n, uint64_t now_ns, bool worker_polls)
{
	if (n->fd < 0 || n->watchdog_ns == 0 || !worker_polls)
		return;
	if (n->last_ping_ns != 0 &&
	    now_ns - n->last_ping_ns < n->watchdog_ns / 2)
		return;
	dp_notify_send(n, "WATCHDOG=1");
	n->last_ping_ns = now_ns;
}

void dp_notify_close(struct dp_notify *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}
