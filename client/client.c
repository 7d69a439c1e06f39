/* libbypax: the KV client over a kernel UDP socket (client.h).
 *
 * One non-blocking socket; every outstanding request lives in a lane with
 * its own session (opened through the log: PX_FLAG_OPEN) and preallocated
 * command and reply buffers.
 * A single loop (drive) receives, matches replies by (client_id, seq), and
 * runs each lane's timers: attempt timeout, BUSY backoff, deadline. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bypax/client.h"
#include "bypax/config.h"

/* Always on, for the client's own invariants; bad input from the network or
 * the caller is an error code or a counted drop, never an assertion. */
#define CL_ASSERT(x)                                                           \
	do {                                                                   \
		if (!(x)) {                                                    \
			fprintf(stderr, "%s:%d: assertion failed: %s\n",       \
				__FILE__, __LINE__, #x);                       \
			abort();                                               \
		}                                                              \
	} while (0)

#define NS_PER_MS 1000000ull
#define ID_LANE_MASK 0xffffull
#define POLL_WAIT_MS_MAX 1000
#define RCVBUF_BYTES (1 << 20)

enum lane_state {
	LANE_FREE = 0,
	LANE_WAIT,    /* sent; the attempt times out at next_ns */
	LANE_BACKOFF, /* BUSY or a round of redirects; resend at next_ns */
	LANE_DONE,    /* finished; waits for bpx_poll or its synchronous call */
};

struct lane {
	uint64_t nonce;	     /* id_base + lane: OPENs and reads carry it */
	uint64_t session_id; /* assigned by the log; 0: none (open first) */
	uint64_t client_id;  /* the current attempt's: nonce or session_id */
	uint64_t seq;	     /* the session's last write seq */
	uint64_t ticket;
	uint64_t start_ns;
	uint64_t deadline_ns;
	uint64_t next_ns;    /* attempt timeout (WAIT) or resend (BACKOFF) */
	uint64_t backoff_ns; /* 0 until the first BUSY */
	uint64_t done_ns;
	enum lane_state state;
	bool sync;	 /* a synchronous call waits: not queued for poll */
	bool opening;	 /* the attempt is the OPEN before the write */
	bool read;	 /* the request is a session-less read (GET) */
	uint64_t read_seq; /* reads: PX_SEQ_READ_BASE + read_seq */
	uint64_t wire_seq; /* the seq the request carries */
	uint8_t target;	 /* member the last attempt went to */
	uint8_t op;
	uint8_t redirect_streak;
	uint8_t kv_status;
	int status;
	uint16_t cmd_len;
	uint16_t value_len;
	uint8_t cmd[PX_COMMAND_BYTES_MAX];
	uint8_t value[BPX_KV_VALUE_BYTES_MAX];
};

struct bpx_client {
	int fd;
	uint32_t cluster_id;
	uint8_t member_count;
	uint8_t leader;
	uint16_t local_port;
	uint32_t lane_count;
	uint32_t cmd_bytes_max;
	uint64_t timeout_ns;
	uint64_t deadline_ns;
	uint64_t id_base;
	uint64_t prng;
	uint64_t next_ticket;
	uint32_t outstanding; /* lanes not FREE */
	uint32_t free_count;
	uint32_t done_head;
	uint32_t done_count;
	struct sockaddr_in members[PX_REPLICAS_MAX];
	struct bpx_client_stats stats;
	struct lane *lanes;
	uint16_t free_lanes[BPX_CLIENT_LANES_MAX]; /* a stack */
	uint16_t done_ring[BPX_CLIENT_LANES_MAX];  /* FIFO for bpx_poll */
	uint8_t tx[BPX_WIRE_PAYLOAD_MAX];
	uint8_t rx[2048];
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* splitmix64: the nonce base and the seqs of OPENs. */
static uint64_t prng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int random_u64(uint64_t *out)
{
	uint8_t *p = (uint8_t *)out;
	size_t got = 0;
	while (got < sizeof(*out)) {
		ssize_t n = getrandom(p + got, sizeof(*out) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -BPX_EIO;
		got += (size_t)n;
	}
	return 0;
}

/* ---- Open and close ---- */

static int check_options(const struct bpx_client_options *o, char *err,
			 size_t err_len)
{
	if (o->lanes < 1 || o->lanes > BPX_CLIENT_LANES_MAX) {
		snprintf(err, err_len, "lanes = %" PRIu32 ": must be 1..%u",
			 o->lanes, BPX_CLIENT_LANES_MAX);
		return -BPX_EINVAL;
	}
	if ((o->client_id_base & ID_LANE_MASK) != 0 ||
	    (o->client_id_base & PX_SESSION_ID_BIT) != 0) {
		snprintf(err, err_len,
			 "client_id_base = 0x%" PRIx64
			 ": its low 16 bits must be 0 (lanes are base + lane) "
			 "and bit 63 clear (the log's session ids have it)",
			 o->client_id_base);
		return -BPX_EINVAL;
	}
	return 0;
}

static void fill_defaults(const struct bpx_client_options *in,
			  struct bpx_client_options *o)
{
	static const struct bpx_client_options none;
	*o = in != NULL ? *in : none;
	if (o->timeout_ms == 0)
		o->timeout_ms = BPX_CLIENT_TIMEOUT_MS_DEFAULT;
	if (o->deadline_ms == 0)
		o->deadline_ms = BPX_CLIENT_DEADLINE_MS_DEFAULT;
	if (o->lanes == 0)
		o->lanes = BPX_CLIENT_LANES_DEFAULT;
}

static int open_socket(struct bpx_client *c, const struct bpx_client_options *o,
		       char *err, size_t err_len)
{
	c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		snprintf(err, err_len, "socket: %s", strerror(errno));
		return -BPX_EIO;
	}
	int rcvbuf = RCVBUF_BYTES; /* best effort: replies for every lane */
	(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(o->bind_ip);
	a.sin_port = htons(o->bind_port);
	if (bind(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		char ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &a.sin_addr, ip, sizeof(ip));
		snprintf(err, err_len, "cannot bind %s:%u: %s", ip,
			 (unsigned)o->bind_port, strerror(errno));
		return -BPX_EIO;
	}
	socklen_t len = sizeof(a);
	if (getsockname(c->fd, (struct sockaddr *)&a, &len) == 0)
		c->local_port = ntohs(a.sin_port);
	return 0;
}

static int init_ids(struct bpx_client *c, const struct bpx_client_options *o,
		    char *err, size_t err_len)
{
	uint64_t seed;
	if (random_u64(&seed) != 0) {
		snprintf(err, err_len, "getrandom: %s", strerror(errno));
		return -BPX_EIO;
	}
	c->prng = seed;
	c->id_base = o->client_id_base;
	while (c->id_base == 0)
		c->id_base = prng_next(&c->prng) &
			     ~(ID_LANE_MASK | PX_SESSION_ID_BIT);
	for (uint32_t i = 0; i < c->lane_count; i++) {
		struct lane *l = &c->lanes[i];
		l->nonce = c->id_base + i;
		l->client_id = l->nonce;
		l->session_id = 0; /* the first write opens one */
		c->free_lanes[i] = (uint16_t)(c->lane_count - 1 - i);
	}
	c->free_count = c->lane_count;
	return 0;
}

static int check_members(const struct bpx_endpoint *members, size_t n,
			 char *err, size_t err_len)
{
	if (members == NULL || n < 1 || n > PX_REPLICAS_MAX) {
		snprintf(err, err_len, "member count %zu: must be 1..%u", n,
			 PX_REPLICAS_MAX);
		return -BPX_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (members[i].ip == 0 || members[i].port == 0) {
			snprintf(err, err_len,
				 "member %zu: ip and port must be nonzero", i);
			return -BPX_EINVAL;
		}
	}
	return 0;
}

static struct bpx_client *client_create(uint32_t cluster_id,
					const struct bpx_endpoint *members,
					size_t n, uint32_t cmd_bytes_max,
					const struct bpx_client_options *in,
					char *err, size_t err_len)
{
	struct bpx_client_options o;
	fill_defaults(in, &o);
	if (check_options(&o, err, err_len) != 0 ||
	    check_members(members, n, err, err_len) != 0)
		return NULL;
	struct bpx_client *c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto err_nomem;
	c->lanes = calloc(o.lanes, sizeof(*c->lanes));
	if (c->lanes == NULL)
		goto err_after_client;
	c->fd = -1;
	c->cluster_id = cluster_id;
	c->member_count = (uint8_t)n;
	c->lane_count = o.lanes;
	c->cmd_bytes_max = cmd_bytes_max;
	c->timeout_ns = o.timeout_ms * NS_PER_MS;
	c->deadline_ns = o.deadline_ms * NS_PER_MS;
	c->next_ticket = 1;
	for (size_t i = 0; i < n; i++) {
		c->members[i].sin_family = AF_INET;
		c->members[i].sin_addr.s_addr = htonl(members[i].ip);
		c->members[i].sin_port = htons(members[i].port);
	}
	if (init_ids(c, &o, err, err_len) != 0 ||
	    open_socket(c, &o, err, err_len) != 0)
		goto err_after_lanes;
	return c;

err_after_lanes:
	if (c->fd >= 0)
		close(c->fd);
	free(c->lanes);
	free(c);
	return NULL;
err_after_client:
	free(c);
err_nomem:
	snprintf(err, err_len, "not enough memory for %" PRIu32 " lanes",
		 o.lanes);
	return NULL;
}

struct bpx_client *bpx_client_open_members(uint32_t cluster_id,
					   const struct bpx_endpoint *members,
					   size_t member_count,
					   const struct bpx_client_options *opt,
					   char *err, size_t err_len)
{
	char scratch[1];
	if (err == NULL || err_len == 0) {
		err = scratch;
		err_len = sizeof(scratch);
	}
	err[0] = '\0';
	return client_create(cluster_id, members, member_count,
			     PX_COMMAND_BYTES_MAX, opt, err, err_len);
}

struct bpx_client *bpx_client_open(const char *config_path,
				   const struct bpx_client_options *opt,
				   char *err, size_t err_len)
{
	char scratch[1];
	if (err == NULL || err_len == 0) {
		err = scratch;
		err_len = sizeof(scratch);
	}
	err[0] = '\0';
	if (config_path == NULL) {
		snprintf(err, err_len, "no configuration file given");
		return NULL;
	}
	struct bpx_config *cfg = malloc(sizeof(*cfg));
	if (cfg == NULL) {
		snprintf(err, err_len, "%s: not enough memory", config_path);
		return NULL;
	}
	struct bpx_client *c = NULL;
	if (bpx_config_load(config_path, cfg, err, err_len) == 0) {
		struct bpx_endpoint eps[PX_REPLICAS_MAX];
		for (uint8_t i = 0; i < cfg->member_count; i++)
			eps[i] = cfg->members[i].data;
		/* A command fits a batch of batch_bytes with its entry
		 * header (proposer.c answers TOO_BIG otherwise). */
		uint32_t cmd_max =
			cfg->px.batch_bytes_max - PX_BATCH_ENTRY_HEADER_BYTES;
		if (cmd_max > PX_COMMAND_BYTES_MAX)
			cmd_max = PX_COMMAND_BYTES_MAX;
		c = client_create(cfg->cluster_id, eps, cfg->member_count,
				  cmd_max, opt, err, err_len);
	}
	free(cfg);
	return c;
}

void bpx_client_close(struct bpx_client *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	free(c->lanes);
	free(c);
}

/* ---- Lanes ---- */

static void lane_send(struct bpx_client *c, struct lane *l, uint64_t now)
{
	struct px_msg m = {
		.type = PX_MSG_REQUEST,
		.from = PX_TO_CLIENT,
		.to = l->target,
		.client_id = l->client_id,
		.seq = l->wire_seq,
		.flags = l->read ? PX_FLAG_READ : l->opening ? PX_FLAG_OPEN : 0,
		.value_len = l->cmd_len,
		.value = l->cmd,
	};
	int len = bpx_wire_encode(c->tx, sizeof(c->tx), c->cluster_id, &m);
	CL_ASSERT(len > 0); /* the command was checked in bpx_submit */
	const struct sockaddr_in *to = &c->members[l->target];
	ssize_t n = sendto(c->fd, c->tx, (size_t)len, 0,
			   (const struct sockaddr *)to, sizeof(*to));
	/* A failed send is a lost datagram: the attempt timeout retries. */
	if (n != len)
		c->stats.send_errors++;
	c->stats.sent++;
	l->state = LANE_WAIT;
	l->next_ns = now + c->timeout_ns;
}

static void lane_complete(struct bpx_client *c, struct lane *l, int status)
{
	CL_ASSERT(l->state == LANE_WAIT || l->state == LANE_BACKOFF);
	l->state = LANE_DONE;
	l->status = status;
	l->done_ns = now_ns();
	c->stats.completed++;
	if (l->sync)
		return;
	CL_ASSERT(c->done_count < c->lane_count);
	uint32_t tail = (c->done_head + c->done_count) % c->lane_count;
	c->done_ring[tail] = (uint16_t)(l - c->lanes);
	c->done_count++;
}

static void lane_backoff(struct lane *l, uint64_t now)
{
	const uint64_t lo = BPX_CLIENT_BACKOFF_MIN_MS * NS_PER_MS;
	const uint64_t hi = BPX_CLIENT_BACKOFF_MAX_MS * NS_PER_MS;
	l->backoff_ns = l->backoff_ns == 0 ? lo : l->backoff_ns * 2;
	if (l->backoff_ns > hi)
		l->backoff_ns = hi;
	l->state = LANE_BACKOFF;
	l->next_ns = now + l->backoff_ns;
}

/* The replicas do not hold the lane's session (EXPIRED), or hold it in a
 * state the lane does not expect (STALE): its next write opens a new one.
 * A write whose outcome is merely unknown (a timeout) keeps the session:
 * the next write's higher seq makes a late copy of it STALE. */
static void lane_session_lost(struct bpx_client *c, struct lane *l)
{
	if (l->read || l->session_id == 0)
		return;
	l->session_id = 0;
	c->stats.rekeys++;
}

/* The attempt to send next: the lane's write on its session. */
static void lane_write_on_session(struct lane *l)
{
	CL_ASSERT(l->session_id & PX_SESSION_ID_BIT);
	l->opening = false;
	l->client_id = l->session_id;
	l->wire_seq = ++l->seq;
	CL_ASSERT(l->wire_seq <= PX_SEQ_WRITE_MAX);
}

/* ... or first the OPEN of a session: to the lane's nonce, with a random
 * seq, so that a reply meant for another client that (against the rules)
 * picked the same nonce is not taken for ours. */
static void lane_open_session(struct bpx_client *c, struct lane *l)
{
	l->opening = true;
	l->client_id = l->nonce;
	l->wire_seq = 1 + prng_next(&c->prng) % PX_SEQ_WRITE_MAX;
}

static void lane_free(struct bpx_client *c, struct lane *l)
{
	CL_ASSERT(l->state != LANE_FREE);
	CL_ASSERT(c->free_count < c->lane_count && c->outstanding > 0);
	l->state = LANE_FREE;
	c->free_lanes[c->free_count++] = (uint16_t)(l - c->lanes);
	c->outstanding--;
}

/* ---- Replies ---- */

static int kv_status_error(uint8_t kv_status)
{
	switch (kv_status) {
	case BPX_KV_OK:
		return 0;
	case BPX_KV_NOT_FOUND:
		return -BPX_ENOTFOUND;
	case BPX_KV_CAS_MISMATCH:
		return -BPX_ECASMISMATCH;
	case BPX_KV_FULL:
		return -BPX_EFULL;
	default:
		return -BPX_EINVAL; /* BAD_COMMAND: we encoded it wrong */
	}
}

/* The OPEN was applied: the write goes out at once on the new session, to
 * the member that answered (it leads), within the same deadline. */
static void on_opened(struct bpx_client *c, struct lane *l,
		      const struct px_msg *m, uint64_t now)
{
	uint64_t id = 0;
	if (m->value_len == PX_SESSION_ID_BYTES)
		for (unsigned i = 0; i < PX_SESSION_ID_BYTES; i++)
			id |= (uint64_t)m->value[i] << (8 * i);
	if (!(id & PX_SESSION_ID_BIT)) {
		lane_complete(c, l, -BPX_EMALFORMED);
		return;
	}
	c->stats.opens++;
	l->session_id = id;
	l->seq = 0;
	lane_write_on_session(l);
	if (m->from < c->member_count)
		l->target = c->leader = m->from;
	l->backoff_ns = 0;
	l->redirect_streak = 0;
	lane_send(c, l, now);
}

static void on_applied(struct bpx_client *c, struct lane *l,
		       const struct px_msg *m)
{
	/* PX_REPLY_OK: the request was applied, the session goes on. */
	if (m->from < c->member_count)
		c->leader = m->from;
	uint8_t kv_status;
	const uint8_t *value;
	uint16_t value_len;
	if (bpx_kv_decode_reply(m->value, m->value_len, &kv_status, &value,
				&value_len) != 0) {
		lane_complete(c, l, -BPX_EMALFORMED);
		return;
	}
	CL_ASSERT(value_len <= sizeof(l->value));
	l->kv_status = kv_status;
	l->value_len = value_len;
	if (value_len > 0)
		memcpy(l->value, value, value_len);
	lane_complete(c, l, kv_status_error(kv_status));
}

static void on_redirect(struct bpx_client *c, struct lane *l,
			const struct px_msg *m, uint64_t now)
{
	c->stats.redirects++;
	uint8_t hint = m->leader_hint;
	if (hint < c->member_count && hint != l->target) {
		l->target = hint;
		c->leader = hint;
	} else {
		l->target = (uint8_t)((l->target + 1) % c->member_count);
	}
	c->stats.retries++;
	/* A full round of redirects means no member knows a leader (an
	 * election), or their views disagree: back off instead of spinning. */
	if (++l->redirect_streak < c->member_count)
		lane_send(c, l, now);
	else
		lane_backoff(l, now);
}

static void on_reply(struct bpx_client *c, struct lane *l,
		     const struct px_msg *m, uint64_t now)
{
	bool from_target = m->from == l->target;
	switch (m->status) {
	case PX_REPLY_OK:
		if (l->opening)
			on_opened(c, l, m, now);
		else
			on_applied(c, l, m);
		return;
	case PX_REPLY_REDIRECT:
	case PX_REPLY_BUSY:
		/* A late answer to an earlier attempt says nothing about the
		 * member tried now. */
		if (!from_target) {
			c->stats.ignored++;
			return;
		}
		if (m->status == PX_REPLY_REDIRECT) {
			on_redirect(c, l, m, now);
		} else {
			c->stats.busy++;
			lane_backoff(l, now);
		}
		return;
	case PX_REPLY_TOO_BIG: /* refused before the log: not applied */
		lane_complete(c, l, -BPX_ETOOBIG);
		return;
	case PX_REPLY_STALE:
		lane_session_lost(c, l);
		lane_complete(c, l, -BPX_ESTALE);
		return;
	case PX_REPLY_BAD_REQUEST:
		lane_complete(c, l, -BPX_EINVAL);
		return;
	default: /* PX_REPLY_EXPIRED; bpx_wire_decode checked the range */
		lane_session_lost(c, l);
		lane_complete(c, l, -BPX_EEXPIRED);
		return;
	}
}

static struct lane *lane_of(struct bpx_client *c, uint64_t client_id)
{
	uint64_t i = client_id - c->id_base; /* a nonce: OPENs and reads */
	if (i < c->lane_count && c->lanes[i].client_id == client_id)
		return &c->lanes[i];
	for (uint32_t k = 0; k < c->lane_count; k++) /* session ids */
		if (c->lanes[k].client_id == client_id)
			return &c->lanes[k];
	return NULL;
}

static void on_datagram(struct bpx_client *c, size_t len, uint64_t now)
{
	struct px_msg m;
	if (bpx_wire_decode(c->rx, len, c->cluster_id, &m) != BPX_WIRE_OK ||
	    m.type != PX_MSG_REPLY || m.to != PX_TO_CLIENT) {
		c->stats.ignored++;
		return;
	}
	struct lane *l = lane_of(c, m.client_id);
	if (l == NULL || m.seq != l->wire_seq ||
	    (l->state != LANE_WAIT && l->state != LANE_BACKOFF)) {
		c->stats.ignored++; /* late, duplicate, or not ours */
		return;
	}
	on_reply(c, l, &m, now);
}

static void receive_all(struct bpx_client *c, uint64_t now)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->rx, sizeof(c->rx), MSG_TRUNC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return; /* EAGAIN, or an error a resend will meet */
		}
		if ((size_t)n > sizeof(c->rx)) {
			c->stats.ignored++;
			continue;
		}
		on_datagram(c, (size_t)n, now);
	}
}

/* ---- Timers and the loop ---- */

/* Runs due timers; returns the earliest pending one (UINT64_MAX: none). */
static uint64_t run_timers(struct bpx_client *c, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	for (uint32_t i = 0; i < c->lane_count; i++) {
		struct lane *l = &c->lanes[i];
		if (l->state != LANE_WAIT && l->state != LANE_BACKOFF)
			continue;
		if (now >= l->deadline_ns) {
			/* Outcome unknown; the session goes on (see
			 * lane_session_lost). */
			c->stats.deadlines++;
			lane_complete(c, l, -BPX_ETIMEDOUT);
			continue;
		}
		if (now >= l->next_ns) {
			if (l->state == LANE_WAIT) {
				/* No answer: try the next member with the
				 * same (client_id, seq), so a write that did
				 * land is not applied twice. */
				c->stats.timeouts++;
				l->target = (uint8_t)((l->target + 1) %
						      c->member_count);
			}
			c->stats.retries++;
			lane_send(c, l, now);
		}
		uint64_t t = l->next_ns < l->deadline_ns ? l->next_ns :
							   l->deadline_ns;
		if (t < next)
			next = t;
	}
	return next;
}

static bool drive_done(const struct bpx_client *c, const struct lane *watch)
{
	if (watch != NULL)
		return watch->state == LANE_DONE;
	return c->done_count > 0;
}

/* Drives every lane until watch is done (or, without watch, any lane
 * completes for bpx_poll), or until_ns passes, or nothing is pending.
 * Returns 0 or -BPX_EIO. */
static int drive(struct bpx_client *c, uint64_t until_ns,
		 const struct lane *watch)
{
	for (;;) {
		uint64_t now = now_ns();
		receive_all(c, now);
		uint64_t next = run_timers(c, now);
		if (drive_done(c, watch) || now >= until_ns ||
		    next == UINT64_MAX)
			return 0;
		uint64_t wake = next < until_ns ? next : until_ns;
		uint64_t wait_ms = (wake - now + NS_PER_MS - 1) / NS_PER_MS;
		if (wait_ms > POLL_WAIT_MS_MAX)
			wait_ms = POLL_WAIT_MS_MAX;
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		if (poll(&p, 1, (int)wait_ms) < 0 && errno != EINTR)
			return -BPX_EIO;
	}
}

/* ---- Submitting ---- */

static int start(struct bpx_client *c, enum bpx_kv_op op, const void *key,
		 size_t key_len, const void *value, size_t value_len,
		 const void *new_value, size_t new_len, bool sync,
		 struct lane **out)
{
	if (c == NULL || out == NULL)
		return -BPX_EINVAL;
	if (c->free_count == 0)
		return -BPX_EBUSY;
	struct lane *l = &c->lanes[c->free_lanes[c->free_count - 1]];
	CL_ASSERT(l->state == LANE_FREE);
	int len = bpx_kv_encode(l->cmd, c->cmd_bytes_max, op, key, key_len,
				value, value_len, new_value, new_len);
	if (len < 0)
		return len;
	c->free_count--;
	c->outstanding++;
	uint64_t now = now_ns();
	/* GETs are session-less reads (served under the leader's lease when
	 * it can), sent with the lane's nonce; writes go on the session with
	 * the next seq, after opening one if the lane has none. */
	l->read = op == BPX_KV_GET;
	if (l->read) {
		l->opening = false;
		l->client_id = l->nonce;
		l->wire_seq = PX_SEQ_READ_BASE + ++l->read_seq;
	} else if (l->session_id == 0) {
		lane_open_session(c, l);
	} else {
		lane_write_on_session(l);
	}
	l->cmd_len = (uint16_t)len;
	l->op = (uint8_t)op;
	l->sync = sync;
	l->ticket = c->next_ticket++;
	l->start_ns = now;
	l->deadline_ns = now + c->deadline_ns;
	l->backoff_ns = 0;
	l->redirect_streak = 0;
	l->target = c->leader;
	l->status = 0;
	l->kv_status = 0;
	l->value_len = 0;
	lane_send(c, l, now);
	*out = l;
	return 0;
}

int bpx_submit(struct bpx_client *c, enum bpx_kv_op op, const void *key,
	       size_t key_len, const void *value, size_t value_len,
	       const void *new_value, size_t new_len, uint64_t *ticket)
{
	struct lane *l;
	if (ticket == NULL)
		return -BPX_EINVAL;
	int rc = start(c, op, key, key_len, value, value_len, new_value,
		       new_len, false, &l);
	if (rc == 0)
		*ticket = l->ticket;
	return rc;
}

int bpx_poll(struct bpx_client *c, int timeout_ms, struct bpx_completion *done,
	     size_t max)
{
	if (c == NULL || done == NULL || max == 0)
		return -BPX_EINVAL;
	uint64_t until = timeout_ms < 0 ?
				 UINT64_MAX :
				 now_ns() + (uint64_t)timeout_ms * NS_PER_MS;
	int rc = drive(c, until, NULL);
	if (rc != 0)
		return rc;
	size_t n = 0;
	while (n < max && c->done_count > 0) {
		struct lane *l = &c->lanes[c->done_ring[c->done_head]];
		c->done_head = (c->done_head + 1) % c->lane_count;
		c->done_count--;
		struct bpx_completion *d = &done[n++];
		d->ticket = l->ticket;
		d->status = l->status;
		d->op = l->op;
		d->kv_status = l->kv_status;
		d->value_len = l->value_len;
		memcpy(d->value, l->value, l->value_len);
		d->latency_ns = l->done_ns - l->start_ns;
		lane_free(c, l);
	}
	return (int)n;
}

uint32_t bpx_client_outstanding(const struct bpx_client *c)
{
	return c->outstanding;
}

/* ---- Synchronous calls ---- */

/* Runs one request to its end. On return 0 *out is a DONE lane that the
 * caller reads and frees; otherwise no lane is held. */
static int call(struct bpx_client *c, enum bpx_kv_op op, const void *key,
		size_t key_len, const void *value, size_t value_len,
		const void *new_value, size_t new_len, struct lane **out)
{
	struct lane *l;
	int rc = start(c, op, key, key_len, value, value_len, new_value,
		       new_len, true, &l);
	if (rc != 0)
		return rc;
	rc = drive(c, UINT64_MAX, l);
	if (rc != 0) {
		lane_free(c, l); /* abandoned: outcome unknown */
		return rc;
	}
	CL_ASSERT(l->state == LANE_DONE);
	*out = l;
	return 0;
}

static int call_status(struct bpx_client *c, enum bpx_kv_op op, const void *key,
		       size_t key_len, const void *value, size_t value_len,
		       const void *new_value, size_t new_len)
{
	struct lane *l;
	int rc = call(c, op, key, key_len, value, value_len, new_value, new_len,
		      &l);
	if (rc != 0)
		return rc;
	rc = l->status;
	lane_free(c, l);
	return rc;
}

int bpx_put(struct bpx_client *c, const void *key, size_t key_len,
	    const void *value, size_t value_len)
{
	return call_status(c, BPX_KV_PUT, key, key_len, value, value_len, NULL,
			   0);
}

int bpx_get(struct bpx_client *c, const void *key, size_t key_len, void *out,
	    size_t cap, size_t *out_len)
{
	struct lane *l;
	if (out == NULL && cap > 0)
		return -BPX_EINVAL;
	int rc = call(c, BPX_KV_GET, key, key_len, NULL, 0, NULL, 0, &l);
	if (rc != 0)
		return rc;
	rc = l->status;
	if (rc == 0) {
		size_t n = l->value_len < cap ? l->value_len : cap;
		if (n > 0)
			memcpy(out, l->value, n);
		if (out_len != NULL)
			*out_len = l->value_len;
		if (l->value_len > cap)
			rc = -BPX_ETOOBIG;
	}
	lane_free(c, l);
	return rc;
}

int bpx_del(struct bpx_client *c, const void *key, size_t key_len)
{
	return call_status(c, BPX_KV_DEL, key, key_len, NULL, 0, NULL, 0);
}

int bpx_cas(struct bpx_client *c, const void *key, size_t key_len,
	    const void *expected, size_t expected_len, const void *new_value,
	    size_t new_len)
{
	return call_status(c, BPX_KV_CAS, key, key_len, expected, expected_len,
			   new_value, new_len);
}

/* ---- Introspection ---- */

const struct bpx_client_stats *bpx_client_stats(const struct bpx_client *c)
{
	return &c->stats;
}

uint8_t bpx_client_leader(const struct bpx_client *c)
{
	return c->leader;
}

uint64_t bpx_client_lane_id(const struct bpx_client *c, uint32_t lane)
{
	CL_ASSERT(lane < c->lane_count);
	return c->lanes[lane].session_id;
}

uint64_t bpx_client_lane_nonce(const struct bpx_client *c, uint32_t lane)
{
	CL_ASSERT(lane < c->lane_count);
	return c->lanes[lane].nonce;
}

uint16_t bpx_client_local_port(const struct bpx_client *c)
{
	return c->local_port;
}
