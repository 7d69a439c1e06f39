/* libbypax: the KV client over a kernel UDP socket (client.h).
 *
 * One non-blocking socket; every outstanding request lives in a lane with
 * its own session and preallocated command and reply buffers. The rules
 * of a lane (sessions, seqs, redirects, backoff, timeouts, the deadline)
 * are the client engine's (engine.h), the same code the load generator
 * and the simulator run; this file is its I/O: it encodes and sends what
 * the engine asks to send, decodes datagrams and hands the replies to the
 * engine, and reads the KV replies of completed requests.
 * A single loop (drive) receives, finds each reply's lane by client_id,
 * and runs the lanes' due timers. */
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
#include "engine.h"

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

_Static_assert(BPX_CLIENT_BACKOFF_MIN_MS * NS_PER_MS ==
		       BPX_ENGINE_BACKOFF_MIN_NS &&
	       BPX_CLIENT_BACKOFF_MAX_MS * NS_PER_MS == BPX_ENGINE_BACKOFF_MAX_NS,
	       "client.h documents the engine's backoff");

enum lane_state {
	LANE_FREE = 0,
	LANE_BUSY, /* the engine has its request outstanding */
	LANE_DONE, /* finished; waits for bpx_poll or its synchronous call */
};

struct lane {
	struct bpx_engine_lane eng; /* session, seqs, target, timers */
	uint64_t ticket;
	uint64_t start_ns;
	uint64_t done_ns;
	enum lane_state state;
	bool sync;	 /* a synchronous call waits: not queued for poll */
	uint8_t op;
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
	uint16_t local_port;
	uint32_t lane_count;
	uint32_t cmd_bytes_max;
	uint64_t id_base;
	uint64_t prng;
	uint64_t next_ticket;
	uint32_t outstanding; /* lanes not FREE */
	uint32_t free_count;
	uint32_t done_head;
	uint32_t done_count;
	struct sockaddr_in members[PX_REPLICAS_MAX];
	struct bpx_engine eng;	 /* the leader, the OPEN seqs, the counters */
	uint64_t ignored_local;	 /* datagrams no lane could take */
	struct bpx_client_stats stats; /* the engine's counters and ours */
	struct lane *lanes;
	uint16_t free_lanes[BPX_CLIENT_LANES_MAX]; /* a stack */
	uint16_t done_ring[BPX_CLIENT_LANES_MAX];  /* FIFO for bpx_poll */
	uint32_t pack_max;	 /* 1: a REQUEST per datagram */
	/* pack_max > 1: the datagram being filled for each member, sent by
	 * drive (flush_packs) or when full. count 0: none open. */
	struct bpx_wire_packer packs[PX_REPLICAS_MAX];
	uint8_t pack_buf[PX_REPLICAS_MAX][BPX_WIRE_MULTI_PAYLOAD_MAX];
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
	if (o->pack_max < 1 || o->pack_max > BPX_WIRE_MULTI_MAX) {
		snprintf(err, err_len, "pack_max = %" PRIu32 ": must be 1..%u",
			 o->pack_max, BPX_WIRE_MULTI_MAX);
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
	if (o->pack_max == 0)
		o->pack_max = 1;
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
	struct bpx_engine_config ec = {
		.member_count = c->member_count,
		.timeout_ns = o->timeout_ms * NS_PER_MS,
		.deadline_ns = o->deadline_ms * NS_PER_MS,
		.seed = prng_next(&c->prng),
	};
	bpx_engine_init(&c->eng, &ec);
	for (uint32_t i = 0; i < c->lane_count; i++) {
		/* No session yet: the lane's first write opens one. */
		bpx_engine_lane_init(&c->eng, &c->lanes[i].eng, i,
				     c->id_base + i, 0);
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
	c->pack_max = o.pack_max;
	c->cmd_bytes_max = cmd_bytes_max;
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

void bpx_client_full_reason(const char *config_path, char *buf, size_t len)
{
	static struct bpx_config cfg; /* large; the tools call this once */
	char err[256];
	uint32_t cap;
	if (bpx_config_load(config_path, &cfg, err, sizeof(err)) != 0)
		snprintf(buf, len, "the store is full (see sm_args capacity in "
			 "docs/config.md)");
	else if (strcmp(cfg.sm, "kv") != 0)
		snprintf(buf, len, "the state machine is full (sm %.64s, "
			 "sm_args '%.64s' in %.128s)", cfg.sm, cfg.sm_args,
			 config_path);
	else if (bpx_kv_capacity(cfg.sm_args, &cap) != 0)
		snprintf(buf, len, "the store is full (sm_args '%.64s' in "
			 "%.128s; see sm_args capacity in docs/config.md)",
			 cfg.sm_args, config_path);
	else
		snprintf(buf, len, "the store is full (capacity %" PRIu32
			 " keys, from sm_args in %.128s; see sm_args capacity "
			 "in docs/config.md)", cap, config_path);
}

void bpx_client_close(struct bpx_client *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	free(c->lanes);
	free(c);
}

/* ---- Lanes: the engine's effects ---- */

static void sync_stats(struct bpx_client *c)
{
	const struct bpx_engine_stats *e = &c->eng.stats;
	c->stats.sent = e->sent;
	c->stats.retries = e->retries;
	c->stats.redirects = e->redirects;
	c->stats.timeouts = e->timeouts;
	c->stats.busy = e->busy;
	c->stats.deadlines = e->deadlines;
	c->stats.completed = e->completed;
	c->stats.opens = e->opens;
	c->stats.rekeys = e->rekeys;
	c->stats.ignored = e->ignored + c->ignored_local;
}

static void send_datagram(struct bpx_client *c, uint8_t member,
			  const uint8_t *buf, size_t len)
{
	CL_ASSERT(member < c->member_count);
	const struct sockaddr_in *to = &c->members[member];
	ssize_t n = sendto(c->fd, buf, len, 0, (const struct sockaddr *)to,
			   sizeof(*to));
	/* A failed send is a lost datagram: the attempt timeout retries. */
	if (n < 0 || (size_t)n != len)
		c->stats.send_errors++;
}

static void send_pack(struct bpx_client *c, uint8_t member)
{
	struct bpx_wire_packer *w = &c->packs[member];
	CL_ASSERT(w->count > 0);
	size_t len = bpx_wire_multi_finish(w);
	send_datagram(c, member, c->pack_buf[member], len);
	c->stats.packed_sent++;
	w->count = 0;
}

/* What the lanes queued since the last flush goes now. */
static void flush_packs(struct bpx_client *c)
{
	for (uint8_t k = 0; k < c->member_count; k++)
		if (c->packs[k].count > 0)
			send_pack(c, k);
}

static void pack_request(struct bpx_client *c, const struct px_msg *m)
{
	struct bpx_wire_packer *w = &c->packs[m->to];
	if (w->count > 0 && !bpx_wire_multi_fits(w, m->value_len))
		send_pack(c, m->to);
	if (w->count == 0)
		CL_ASSERT(bpx_wire_multi_begin(w, c->pack_buf[m->to],
					       sizeof(c->pack_buf[m->to]),
					       c->cluster_id,
					       BPX_WIRE_MULTI_REQUEST,
					       PX_TO_CLIENT, m->to,
					       PX_REPLICA_NONE) == 0);
	/* The command was checked in bpx_submit; it fits an empty one. */
	CL_ASSERT(bpx_wire_multi_add(w, m) == 0);
	if (w->count >= c->pack_max)
		send_pack(c, m->to);
}

static void send_request(struct bpx_client *c, const struct bpx_engine_send *s)
{
	struct px_msg m = bpx_engine_send_msg(s);
	CL_ASSERT(s->member < c->member_count);
	if (c->pack_max > 1) {
		pack_request(c, &m);
		return;
	}
	int len = bpx_wire_encode(c->tx, sizeof(c->tx), c->cluster_id, &m);
	CL_ASSERT(len > 0); /* the command was checked in bpx_submit */
	send_datagram(c, s->member, c->tx, (size_t)len);
}

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

/* The request was applied (status 0): its KV reply. */
static int read_kv_reply(struct lane *l, const struct bpx_engine_done *d)
{
	uint8_t kv_status;
	const uint8_t *value;
	uint16_t value_len;
	if (bpx_kv_decode_reply(d->reply, d->reply_len, &kv_status, &value,
				&value_len) != 0)
		return -BPX_EMALFORMED;
	CL_ASSERT(value_len <= sizeof(l->value));
	l->kv_status = kv_status;
	l->value_len = value_len;
	if (value_len > 0)
		memcpy(l->value, value, value_len);
	return kv_status_error(kv_status);
}

static void lane_complete(struct bpx_client *c, struct lane *l,
			  const struct bpx_engine_done *d, uint64_t now)
{
	CL_ASSERT(l->state == LANE_BUSY);
	l->state = LANE_DONE;
	l->status = d->status == 0 ? read_kv_reply(l, d) : d->status;
	l->done_ns = now;
	if (l->sync)
		return;
	CL_ASSERT(c->done_count < c->lane_count);
	uint32_t tail = (c->done_head + c->done_count) % c->lane_count;
	c->done_ring[tail] = (uint16_t)(l - c->lanes);
	c->done_count++;
}

/* Carries out what the engine asked: sends, and completions. Its timers
 * need no effect here: run_timers asks every lane for its wake time. */
static void apply(struct bpx_client *c, struct bpx_engine_out *out,
		  uint64_t now)
{
	for (uint32_t i = 0; i < out->count; i++) {
		const struct bpx_engine_effect *f = &out->effects[i];
		CL_ASSERT(f->lane < c->lane_count);
		if (f->kind == BPX_ENGINE_SEND)
			send_request(c, &f->send);
		else if (f->kind == BPX_ENGINE_DONE)
			lane_complete(c, &c->lanes[f->lane], &f->done, now);
	}
	out->count = 0;
	sync_stats(c);
}

static void lane_free(struct bpx_client *c, struct lane *l)
{
	CL_ASSERT(l->state != LANE_FREE);
	CL_ASSERT(c->free_count < c->lane_count && c->outstanding > 0);
	if (bpx_engine_lane_busy(&l->eng))
		bpx_engine_abandon(&c->eng, &l->eng); /* outcome unknown */
	l->state = LANE_FREE;
	c->free_lanes[c->free_count++] = (uint16_t)(l - c->lanes);
	c->outstanding--;
}

/* ---- Replies ---- */

static struct lane *lane_of(struct bpx_client *c, uint64_t client_id)
{
	uint64_t i = client_id - c->id_base; /* a nonce: OPENs and reads */
	if (i < c->lane_count && c->lanes[i].eng.client_id == client_id)
		return &c->lanes[i];
	for (uint32_t k = 0; k < c->lane_count; k++) /* session ids */
		if (c->lanes[k].eng.client_id == client_id)
			return &c->lanes[k];
	return NULL;
}

static void on_reply(struct bpx_client *c, const struct px_msg *reply,
		     uint64_t now)
{
	struct px_msg m = *reply;
	struct lane *l = lane_of(c, m.client_id);
	if (l == NULL || l->state != LANE_BUSY) {
		c->ignored_local++; /* late, duplicate, or not ours */
		sync_stats(c);
		return;
	}
	struct bpx_engine_out out = { .count = 0 };
	bpx_engine_on_reply(&c->eng, &l->eng, &m, now, &out);
	apply(c, &out, now);
}

/* A MULTI_REPLY: each entry as a REPLY of its own. */
static bool on_packed_replies(struct bpx_client *c, size_t len, uint64_t now)
{
	struct bpx_wire_unpacker u;
	if (bpx_wire_multi_decode(c->rx, len, c->cluster_id, &u) !=
		    BPX_WIRE_OK ||
	    u.type != BPX_WIRE_MULTI_REPLY || u.to != PX_TO_CLIENT)
		return false;
	c->stats.packed_received++;
	struct px_msg m;
	while (bpx_wire_multi_next(&u, &m))
		on_reply(c, &m, now);
	return true;
}

static void on_datagram(struct bpx_client *c, size_t len, uint64_t now)
{
	struct px_msg m;
	if (bpx_wire_type_of(c->rx, len) == BPX_WIRE_MULTI_REPLY &&
	    on_packed_replies(c, len, now))
		return;
	if (bpx_wire_decode(c->rx, len, c->cluster_id, &m) != BPX_WIRE_OK ||
	    m.type != PX_MSG_REPLY || m.to != PX_TO_CLIENT) {
		c->ignored_local++;
		sync_stats(c);
		return;
	}
	on_reply(c, &m, now);
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
			c->ignored_local++;
			sync_stats(c);
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
		if (l->state != LANE_BUSY)
			continue;
		if (now >= bpx_engine_lane_wake_ns(&l->eng)) {
			struct bpx_engine_out out = { .count = 0 };
			bpx_engine_tick(&c->eng, &l->eng, now, &out);
			apply(c, &out, now);
		}
		uint64_t t = bpx_engine_lane_wake_ns(&l->eng);
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
		flush_packs(c); /* what bpx_submit queued */
		receive_all(c, now);
		uint64_t next = run_timers(c, now);
		flush_packs(c); /* what replies and timers made ready */
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
	l->cmd_len = (uint16_t)len;
	l->op = (uint8_t)op;
	l->sync = sync;
	l->ticket = c->next_ticket++;
	l->start_ns = now;
	l->state = LANE_BUSY;
	l->status = 0;
	l->kv_status = 0;
	l->value_len = 0;
	/* GETs are session-less reads (served under the leader's lease when
	 * it can); writes go on the lane's session (engine.h). */
	struct bpx_engine_out eo = { .count = 0 };
	bpx_engine_submit(&c->eng, &l->eng, op == BPX_KV_GET, l->cmd,
			  l->cmd_len, now, &eo);
	apply(c, &eo, now);
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
	return bpx_engine_leader(&c->eng);
}

uint64_t bpx_client_lane_id(const struct bpx_client *c, uint32_t lane)
{
	CL_ASSERT(lane < c->lane_count);
	return c->lanes[lane].eng.session_id;
}

uint64_t bpx_client_lane_nonce(const struct bpx_client *c, uint32_t lane)
{
	CL_ASSERT(lane < c->lane_count);
	return c->lanes[lane].eng.nonce;
}

uint16_t bpx_client_local_port(const struct bpx_client *c)
{
	return c->local_port;
}
