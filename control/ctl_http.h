/* A minimal HTTP/1.0 and 1.1 server for the control thread (/metrics,
 * /health): GET only, one request per connection (the answer says
 * "Connection: close"), never a blocking call. The control thread sends
 * the heartbeats, so a scraper that connects and sends nothing, or does
 * not read its answer, must cost it nothing: every socket is
 * non-blocking, there are at most CTL_HTTP_CONNS connections, a request
 * is at most CTL_HTTP_REQUEST_MAX bytes, and a client has
 * CTL_HTTP_BUDGET_NS to send its request and again to take the answer.
 * Why not libmicrohttpd: it runs its own threads or its own select loop,
 * and the control thread's loop (poll every millisecond) already is one;
 * the part of HTTP a scraper needs is a request line and a length. */
#ifndef BYPAX_CTL_HTTP_H
#define BYPAX_CTL_HTTP_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_HTTP_CONNS 8u
#define CTL_HTTP_REQUEST_MAX 4096u
#define CTL_HTTP_BODY_MAX (60u << 10)
#define CTL_HTTP_HEAD_MAX 256u
#define CTL_HTTP_BUDGET_NS 2000000000ull
/* A client is not dropped to make room before this long (as the admin
 * socket's CTL_ADMIN_GRACE_NS): idle ones must not push out a scraper. */
#define CTL_HTTP_GRACE_NS 100000000ull

/* What a handler fills in: a status (200, 404, 503...), a content type
 * and a body of up to CTL_HTTP_BODY_MAX bytes. */
struct ctl_http_answer {
	int status;
	const char *content_type;
	char *body;
	size_t body_len;
};

/* Answers GET path (the query string cut off). now_ns: the loop's time. */
typedef void ctl_http_handler(void *arg, const char *path, uint64_t now_ns,
			      struct ctl_http_answer *a);

enum ctl_http_state {
	CTL_HTTP_FREE,
	CTL_HTTP_READING,
	CTL_HTTP_WRITING,
	CTL_HTTP_DRAINING, /* answered a request too long to read: the rest
			    * is read and dropped before closing, else the
			    * kernel resets the connection and the client
			    * may lose the answer */
};

struct ctl_http_conn {
	int fd;
	uint8_t state;        /* enum ctl_http_state */
	uint64_t deadline_ns; /* dropped at this time */
	uint64_t accepted_ns;
	size_t request_len;
	char request[CTL_HTTP_REQUEST_MAX + 1];
	size_t sent, len;     /* of out */
	bool drain;           /* DRAINING once the answer is out */
	char out[CTL_HTTP_HEAD_MAX + CTL_HTTP_BODY_MAX];
};

struct ctl_http {
	int listen_fd;        /* -1: no server */
	ctl_http_handler *handler;
	void *arg;
	uint64_t requests;    /* answered */
	uint64_t dropped;     /* out of budget, or pushed out for room */
	struct ctl_http_conn conns[CTL_HTTP_CONNS];
};

/* The pollfds ctl_http_poll_set fills: the listener, then each conn. */
#define CTL_HTTP_POLL_FDS (1u + CTL_HTTP_CONNS)

/* No server (listen_fd -1); ctl_http_open starts one. */
/* One connection from a listening socket, non-blocking and close-on-exec
 * (for the HTTP server and the admin socket alike): its fd, or
 * CTL_ACCEPT_NONE when none waits, or CTL_ACCEPT_DROPPED when one came
 * but could not be set up (closed; try the next). */
#define CTL_ACCEPT_NONE (-1)
#define CTL_ACCEPT_DROPPED (-2)
int ctl_accept_nonblocking(int listen_fd);

void ctl_http_init(struct ctl_http *h, ctl_http_handler *handler, void *arg);
/* Listens on ip:port (host byte order), non-blocking. Returns 0, or
 * -BPX_EBUSY (the address is in use) / -BPX_EIO with err naming the
 * address and the error. */
int ctl_http_open(struct ctl_http *h, uint32_t ip, uint16_t port, char *err,
		  size_t err_len);
/* Fills CTL_HTTP_POLL_FDS entries (fd -1 where nothing is to wait for). */
void ctl_http_poll_set(const struct ctl_http *h, struct pollfd *fds,
		       uint64_t now_ns);
/* Moves every connection on as far as it goes without blocking: accepts,
 * reads, answers (calling the handler), writes, drops the late ones. fds:
 * what ctl_http_poll_set filled, after poll(). */
void ctl_http_serve(struct ctl_http *h, const struct pollfd *fds,
		    uint64_t now_ns);
/* Closes every connection and the listener. */
void ctl_http_close(struct ctl_http *h);

/* The request line of a complete request head: "GET /path HTTP/1.1".
 * Returns the status to answer (0: a GET, path copied without its query
 * string; 400 malformed, 405 another method, 414 a path over cap - 1,
 * 505 another HTTP version). Pure, for the unit tests. */
int ctl_http_parse_request(const char *head, size_t len, char *path,
			   size_t cap);

#endif
