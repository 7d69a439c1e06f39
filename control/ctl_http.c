/* The control thread's HTTP server (ctl_http.h): a state per connection,
 * moved on as far as it goes without blocking each time round the
 * control loop, as the admin socket's connections are. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bypax/errors.h"
#include "ctl_http.h"
#include "fd.h"

void ctl_http_init(struct ctl_http *h, ctl_http_handler *handler, void *arg)
{
	memset(h, 0, sizeof(*h));
	h->listen_fd = -1;
	h->handler = handler;
	h->arg = arg;
	for (unsigned i = 0; i < CTL_HTTP_CONNS; i++)
		h->conns[i].fd = -1;
}

int ctl_http_open(struct ctl_http *h, uint32_t ip, uint16_t port, char *err,
		  size_t err_len)
{
	CTL_ASSERT(h->listen_fd < 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(ip);
	a.sin_port = htons(port);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/* SO_REUSEADDR: a restart must not wait out TIME_WAIT; for TCP it
	 * never lets two listeners share the address. */
	if (fd >= 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    listen(fd, 16) == 0) {
		h->listen_fd = fd;
		return 0;
	}
	int e = errno;
	if (fd >= 0)
		close(fd);
	snprintf(err, err_len, "metrics address %s:%u: %s%s",
		 inet_ntoa(a.sin_addr), port, strerror(e),
		 e == EADDRINUSE ? " (another process listens there)" : "");
	return e == EADDRINUSE ? -BPX_EBUSY : -BPX_EIO;
}

static void conn_close(struct ctl_http_conn *c)
{
	CTL_ASSERT(c->state != CTL_HTTP_FREE && c->fd >= 0);
	close(c->fd);
	c->fd = -1;
	c->state = CTL_HTTP_FREE;
}

void ctl_http_close(struct ctl_http *h)
{
	for (unsigned i = 0; i < CTL_HTTP_CONNS; i++)
		if (h->conns[i].state != CTL_HTTP_FREE)
			conn_close(&h->conns[i]);
	if (h->listen_fd >= 0)
		close(h->listen_fd);
	h->listen_fd = -1;
}

int ctl_http_parse_request(const char *head, size_t len, char *path,
			   size_t cap)
{
	const char *end = memchr(head, '\n', len);
	if (end == NULL)
		return 400;
	size_t line = (size_t)(end - head);
	if (line > 0 && head[line - 1] == '\r')
		line--;
	const char *sp1 = memchr(head, ' ', line);
	if (sp1 == NULL || sp1 == head)
		return 400;
	const char *target = sp1 + 1;
	const char *sp2 = memchr(target, ' ', line - (size_t)(target - head));
	if (sp2 == NULL || sp2 == target || *target != '/')
		return 400;
	const char *version = sp2 + 1;
	size_t vlen = line - (size_t)(version - head);
	if (vlen != 8 || memcmp(version, "HTTP/1.", 7) != 0 ||
	    (version[7] != '0' && version[7] != '1'))
		return memcmp(version, "HTTP/", vlen < 5 ? vlen : 5) == 0 &&
				       vlen >= 5
			       ? 505
			       : 400;
	if ((size_t)(sp1 - head) != 3 || memcmp(head, "GET", 3) != 0)
		return 405;
	const char *query = memchr(target, '?', (size_t)(sp2 - target));
	size_t plen = (size_t)((query ? query : sp2) - target);
	if (plen + 1 > cap)
		return 414;
	memcpy(path, target, plen);
	path[plen] = '\0';
	return 0;
}

static const char *reason_of(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

/* Head and body into c->out. The handler wrote the body at
 * CTL_HTTP_HEAD_MAX (its size unknown until then); it moves down to
 * right after the head. */
static void compose(struct ctl_http_conn *c, const struct ctl_http_answer *a)
{
	char head[CTL_HTTP_HEAD_MAX];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
			 "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
			 a->status, reason_of(a->status), a->content_type,
			 a->body_len, a->status == 405 ? "Allow: GET\r\n" : "");
	CTL_ASSERT(n > 0 && (size_t)n < sizeof(head));
	CTL_ASSERT(a->body == c->out + CTL_HTTP_HEAD_MAX);
	CTL_ASSERT(a->body_len <= CTL_HTTP_BODY_MAX);
	memmove(c->out + n, a->body, a->body_len);
	memcpy(c->out, head, (size_t)n);
	c->len = (size_t)n + a->body_len;
	c->sent = 0;
}

static void answer_error(struct ctl_http_conn *c, int status)
{
	struct ctl_http_answer a = { .status = status,
				     .content_type = "text/plain",
				     .body = c->out + CTL_HTTP_HEAD_MAX };
	a.body_len = (size_t)snprintf(a.body, CTL_HTTP_BODY_MAX, "%d %s\n",
				      status, reason_of(status));
	compose(c, &a);
}

static void conn_write(struct ctl_http *h, struct ctl_http_conn *c)
{
	CTL_ASSERT(c->state == CTL_HTTP_WRITING);
	while (c->sent < c->len) {
		ssize_t n = send(c->fd, c->out + c->sent, c->len - c->sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return; /* the rest when poll() says POLLOUT */
		if (n <= 0)
			break;
		c->sent += (size_t)n;
	}
	if (c->sent == c->len)
		h->requests++;
	if (c->sent == c->len && c->drain) {
		shutdown(c->fd, SHUT_WR); /* the client sees the answer end */
		c->state = CTL_HTTP_DRAINING;
		return;
	}
	conn_close(c);
}

/* What the client still sends is dropped, until it closes or its budget
 * ends (ctl_http_serve's deadline). */
static void conn_drain(struct ctl_http_conn *c)
{
	CTL_ASSERT(c->state == CTL_HTTP_DRAINING);
	/* A few reads a poll at most: a client that keeps sending must not
	 * keep the control thread here (the heartbeats wait). */
	for (int reads = 0; reads < 4; reads++) {
		ssize_t n = recv(c->fd, c->request, CTL_HTTP_REQUEST_MAX,
				 MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_close(c);
			return;
		}
	}
}

/* The head is complete (or too long): answer it, then write. */
static void conn_answer(struct ctl_http *h, struct ctl_http_conn *c,
			bool too_long, uint64_t now_ns)
{
	char path[256];
	int status = too_long ? 431
			      : ctl_http_parse_request(c->request,
						       c->request_len, path,
						       sizeof(path));
	if (status != 0) {
		answer_error(c, status);
	} else {
		struct ctl_http_answer a = {
			.status = 404,
			.content_type = "text/plain",
			.body = c->out + CTL_HTTP_HEAD_MAX,
		};
		h->handler(h->arg, path, now_ns, &a);
		compose(c, &a);
	}
	c->state = CTL_HTTP_WRITING;
	c->drain = too_long;
	c->deadline_ns = now_ns + CTL_HTTP_BUDGET_NS;
	conn_write(h, c);
}

/* A head ends at an empty line; a request has no body (GET). */
static bool head_complete(const struct ctl_http_conn *c)
{
	const char *r = c->request;
	for (size_t i = 0; i + 1 < c->request_len; i++)
		if (r[i] == '\n' && (r[i + 1] == '\n' ||
				     (r[i + 1] == '\r' && i + 2 < c->request_len &&
				      r[i + 2] == '\n')))
			return true;
	return false;
}

static void conn_read(struct ctl_http *h, struct ctl_http_conn *c,
		      uint64_t now_ns)
{
	CTL_ASSERT(c->state == CTL_HTTP_READING);
	for (;;) {
		size_t room = CTL_HTTP_REQUEST_MAX - c->request_len;
		ssize_t n = recv(c->fd, c->request + c->request_len, room,
				 MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_close(c); /* gone before a whole request */
			return;
		}
		c->request_len += (size_t)n;
		c->request[c->request_len] = '\0';
		if (head_complete(c)) {
			conn_answer(h, c, false, now_ns);
			return;
		}
		if (c->request_len == CTL_HTTP_REQUEST_MAX) {
			conn_answer(h, c, true, now_ns);
			return;
		}
	}
}

static bool idle_reader(const struct ctl_http_conn *c, uint64_t now_ns)
{
	return c->state == CTL_HTTP_READING &&
	       c->accepted_ns + CTL_HTTP_GRACE_NS <= now_ns;
}

/* A free slot, or the longest-reading one past its grace (to drop). */
static struct ctl_http_conn *free_slot(struct ctl_http *h, uint64_t now_ns)
{
	struct ctl_http_conn *oldest = NULL;
	for (unsigned i = 0; i < CTL_HTTP_CONNS; i++) {
		struct ctl_http_conn *c = &h->conns[i];
		if (c->state == CTL_HTTP_FREE)
			return c;
		if (idle_reader(c, now_ns) &&
		    (oldest == NULL || c->accepted_ns < oldest->accepted_ns))
			oldest = c;
	}
	return oldest;
}

int ctl_accept_nonblocking(int listen_fd)
{
	int fd = accept(listen_fd, NULL, NULL);
	if (fd < 0)
		return CTL_ACCEPT_NONE;
	/* Linux does not pass the listener's O_NONBLOCK on. */
	if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
		close(fd);
		return CTL_ACCEPT_DROPPED;
	}
	return fd;
}

static void accept_new(struct ctl_http *h, uint64_t now_ns)
{
	for (unsigned i = 0; i < CTL_HTTP_CONNS; i++) {
		struct ctl_http_conn *c = free_slot(h, now_ns);
		if (c == NULL)
			return; /* the rest wait in the listen backlog */
		int fd = ctl_accept_nonblocking(h->listen_fd);
		if (fd == CTL_ACCEPT_NONE)
			return;
		if (fd < 0)
			continue;
		if (c->state != CTL_HTTP_FREE) {
			h->dropped++;
			conn_close(c);
		}
		c->fd = fd;
		c->state = CTL_HTTP_READING;
		c->drain = false;
		c->accepted_ns = now_ns;
		c->deadline_ns = now_ns + CTL_HTTP_BUDGET_NS;
		c->request_len = 0;
		c->request[0] = '\0';
	}
}

void ctl_http_poll_set(const struct ctl_http *h, struct pollfd *fds,
		       uint64_t now_ns)
{
	bool room = false;
	for (unsigned i = 0; i < CTL_HTTP_CONNS; i++) {
		const struct ctl_http_conn *c = &h->conns[i];
		struct pollfd *p = &fds[1 + i];
		p->fd = c->state == CTL_HTTP_FREE ? -1 : c->fd;
		p->events = c->state == CTL_HTTP_WRITING ? POLLOUT : POLLIN;
		p->revents = 0;
		room |= c->state == CTL_HTTP_FREE || idle_reader(c, now_ns);
	}
	fds[0].fd = room ? h->listen_fd : -1;
	fds[0].events = POLLIN;
	fds[0].revents = 0;
}

void ctl_http_serve(struct ctl_http *h, const struct pollfd *fds,
		    uint64_t now_ns)
{
	if (h->listen_fd < 0)
		return;
	for (unsigned i = 0; i < CTL_HTTP_CONNS; i++) {
		struct ctl_http_conn *c = &h->conns[i];
		const struct pollfd *p = &fds[1 + i];
		if (c->state == CTL_HTTP_FREE || p->fd != c->fd ||
		    p->revents == 0)
			continue;
		if (c->state == CTL_HTTP_READING)
			conn_read(h, c, now_ns);
		else if (c->state == CTL_HTTP_WRITING)
			conn_write(h, c);
		else
			conn_drain(c);
	}
	for (unsigned i = 0; i < CTL_HTTP_CONNS; i++) {
		struct ctl_http_conn *c = &h->conns[i];
		if (c->state != CTL_HTTP_FREE && now_ns >= c->deadline_ns) {
			h->dropped += c->state != CTL_HTTP_DRAINING;
			conn_close(c);
		}
	}
	if (fds[0].revents & POLLIN)
		accept_new(h, now_ns);
}
