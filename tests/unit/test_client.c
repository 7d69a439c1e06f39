/* libbypax against a fake cluster: three UDP sockets on 127.0.0.1 served by
 * one thread, each member with a scripted behaviour (lead, redirect, stay
 * silent, apply without answering, BUSY, noise, EXPIRED). The members share
 * one KV store and one session table, as a replicated cluster would, so a
 * retry that reaches another member after the first applied it gets the
 * cached reply; the test counts applies to check exactly-once. Sessions
 * open as in the log (PX_FLAG_OPEN assigns an id with bit 63); the fake
 * logs OPENs apart from the other requests. A packed request (MULTI_REQUEST)
 * is handled entry by entry and answered as a replica does, in
 * MULTI_REPLY datagrams. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bypax/client.h"
#include "bypax/kv.h"

#define FAKE_MEMBERS 3u
#define FAKE_CLUSTER_ID 7u
#define FAKE_LOG_MAX 4096u
#define FAKE_SESSIONS_MAX 1024u
#define LOOPBACK 0x7f000001u

enum fake_mode {
	FAKE_LEADER,	/* applies and answers */
	FAKE_REDIRECT,	/* REDIRECT with hint (PX_REPLICA_NONE: no hint) */
	FAKE_SILENT,	/* drops every request */
	FAKE_BLACKHOLE, /* applies, never answers: a leader that dies */
	FAKE_BUSY,	/* BUSY busy_left times, then leads */
	FAKE_NOISE,	/* garbage and near-misses, then the leader's answer
			   twice */
	FAKE_EXPIRED,	/* EXPIRED once, then leads */
};

struct fake_member {
	int fd;
	uint16_t port;
	enum fake_mode mode;
	uint8_t hint;
	int busy_left;
};

struct fake_request {
	uint8_t member;
	uint64_t client_id;
	uint64_t seq;
	uint8_t flags;
};

struct fake_session {
	uint64_t client_id;
	uint64_t last_seq;
	uint16_t reply_len;
	uint8_t reply[BPX_SM_REPLY_BYTES_MAX];
};

struct fake {
	pthread_t thread;
	atomic_int stop;
	pthread_mutex_t mu;
	struct fake_member m[FAKE_MEMBERS];
	const struct bpx_sm_ops *ops;
	void *kv;
	uint32_t applies;
	uint32_t session_count;
	struct fake_session sessions[FAKE_SESSIONS_MAX];
	uint32_t log_count;
	struct fake_request log[FAKE_LOG_MAX]; /* every request but OPENs */
	uint32_t open_count;
	struct fake_request opens[FAKE_LOG_MAX];
	uint8_t open_reply[PX_SESSION_ID_BYTES];
	char config_path[64];
	/* While a packed request is handled: its replies, gathered. */
	bool packing;
	struct bpx_wire_packer reply_pack;
	uint8_t reply_buf[BPX_WIRE_MULTI_PAYLOAD_MAX];
	uint32_t packed_datagrams;  /* MULTI_REQUESTs received */
	uint32_t packed_requests;   /* the requests in them */
	uint32_t single_datagrams;  /* REQUESTs received */
};

/* The fake runs in its own thread, where cmocka's asserts (longjmp) must
 * not be used. */
#define FAKE_ASSERT(x)                                                         \
	do {                                                                   \
		if (!(x)) {                                                    \
			fprintf(stderr, "fake replica: %s:%d: %s\n", __FILE__, \
				__LINE__, #x);                                 \
			abort();                                               \
		}                                                              \
	} while (0)

/* ---- The fake cluster ---- */

static void fake_send_pack(struct fake *f, uint8_t member,
			   const struct sockaddr_in *to)
{
	if (f->reply_pack.count == 0)
		return;
	size_t len = bpx_wire_multi_finish(&f->reply_pack);
	(void)sendto(f->m[member].fd, f->reply_buf, len, 0,
		     (const struct sockaddr *)to, sizeof(*to));
	f->reply_pack.count = 0;
}

/* A REPLY to a packed request joins the MULTI_REPLY being built. */
static bool fake_pack_reply(struct fake *f, uint8_t member,
			    const struct sockaddr_in *to, uint32_t cluster_id,
			    const struct px_msg *m)
{
	if (!f->packing || cluster_id != FAKE_CLUSTER_ID ||
	    m->type != PX_MSG_REPLY || m->to != PX_TO_CLIENT)
		return false;
	if (f->reply_pack.count > 0 &&
	    !bpx_wire_multi_fits(&f->reply_pack, m->value_len))
		fake_send_pack(f, member, to);
	if (f->reply_pack.count == 0)
		FAKE_ASSERT(bpx_wire_multi_begin(&f->reply_pack, f->reply_buf,
						 sizeof(f->reply_buf),
						 FAKE_CLUSTER_ID,
						 BPX_WIRE_MULTI_REPLY, member,
						 PX_TO_CLIENT,
						 m->leader_hint) == 0);
	FAKE_ASSERT(bpx_wire_multi_add(&f->reply_pack, m) == 0);
	return true;
}

static void fake_send(struct fake *f, uint8_t member,
		      const struct sockaddr_in *to, uint32_t cluster_id,
		      const struct px_msg *m)
{
	if (fake_pack_reply(f, member, to, cluster_id, m))
		return;
	uint8_t buf[BPX_WIRE_PAYLOAD_MAX];
	int len = bpx_wire_encode(buf, sizeof(buf), cluster_id, m);
	FAKE_ASSERT(len > 0);
	(void)sendto(f->m[member].fd, buf, (size_t)len, 0,
		     (const struct sockaddr *)to, sizeof(*to));
}

static struct px_msg reply_to(const struct px_msg *req, uint8_t member,
			      uint8_t status)
{
	struct px_msg r = {
		.type = PX_MSG_REPLY,
		.from = member,
		.to = PX_TO_CLIENT,
		.status = status,
		.leader_hint = member,
		.client_id = req->client_id,
		.seq = req->seq,
	};
	return r;
}

static struct fake_session *session_find(struct fake *f, uint64_t client_id)
{
	for (uint32_t i = 0; i < f->session_count; i++)
		if (f->sessions[i].client_id == client_id)
			return &f->sessions[i];
	return NULL;
}

/* The learner's rules (consensus/learner.c), for one shared store. */
static struct px_msg fake_apply(struct fake *f, const struct px_msg *req,
				uint8_t member)
{
	struct px_msg r = reply_to(req, member, PX_REPLY_OK);
	if (req->flags & PX_FLAG_READ) {
		/* A session-less read: answered, never deduplicated. */
		static uint8_t read_reply[BPX_SM_REPLY_BYTES_MAX];
		int len = f->ops->read(f->kv, req->value, req->value_len,
				       read_reply, sizeof(read_reply));
		if (len < 0) {
			r.status = PX_REPLY_BAD_REQUEST;
			return r;
		}
		r.value = read_reply;
		r.value_len = (uint32_t)len;
		return r;
	}
	if (req->flags & PX_FLAG_OPEN) {
		/* A new session, with an id only the cluster assigns. */
		FAKE_ASSERT(f->session_count < FAKE_SESSIONS_MAX);
		FAKE_ASSERT(!(req->client_id & PX_SESSION_ID_BIT));
		struct fake_session *s = &f->sessions[f->session_count++];
		s->client_id = PX_SESSION_ID_BIT | (f->session_count << 10);
		s->last_seq = 0;
		for (unsigned i = 0; i < PX_SESSION_ID_BYTES; i++)
			f->open_reply[i] = (uint8_t)(s->client_id >> (8 * i));
		r.value = f->open_reply;
		r.value_len = PX_SESSION_ID_BYTES;
		return r;
	}
	struct fake_session *s = session_find(f, req->client_id);
	if (s == NULL) { /* never opened, or evicted: any seq */
		r.status = PX_REPLY_EXPIRED;
		return r;
	}
	if (req->seq < s->last_seq) {
		r.status = PX_REPLY_STALE;
		return r;
	}
	if (req->seq > s->last_seq) {
		int len = f->ops->apply(f->kv, req->value, req->value_len,
					s->reply, sizeof(s->reply));
		FAKE_ASSERT(len >= 0);
		s->reply_len = (uint16_t)len;
		s->last_seq = req->seq;
		f->applies++;
	}
	r.value = s->reply;
	r.value_len = s->reply_len;
	return r;
}

static void fake_noise(struct fake *f, uint8_t member,
		       const struct sockaddr_in *to, const struct px_msg *req)
{
	static const uint8_t junk[] = { 0x42, 0x58, 0x01, 0x02, 0x00 };
	(void)sendto(f->m[member].fd, junk, sizeof(junk), 0,
		     (const struct sockaddr *)to, sizeof(*to));
	/* A well-formed OK reply from another cluster, with a bad value. */
	static const uint8_t wrong_value[] = { BPX_KV_OK, 3, 0, 'b', 'a', 'd' };
	struct px_msg r = reply_to(req, member, PX_REPLY_OK);
	r.value = wrong_value;
	r.value_len = sizeof(wrong_value);
	fake_send(f, member, to, FAKE_CLUSTER_ID + 1, &r);
	struct px_msg other_seq = r;
	other_seq.seq += 1000;
	fake_send(f, member, to, FAKE_CLUSTER_ID, &other_seq);
	struct px_msg not_reply = *req;
	not_reply.from = member;
	fake_send(f, member, to, FAKE_CLUSTER_ID, &not_reply);
	struct px_msg not_to_client = r;
	not_to_client.to = 1;
	fake_send(f, member, to, FAKE_CLUSTER_ID, &not_to_client);
}

static void fake_handle(struct fake *f, uint8_t member,
			const struct sockaddr_in *from,
			const struct px_msg *req)
{
	struct fake_member *fm = &f->m[member];
	struct px_msg r;
	struct fake_request logged = { member, req->client_id, req->seq,
				       req->flags };
	if (req->flags & PX_FLAG_OPEN) {
		FAKE_ASSERT(f->open_count < FAKE_LOG_MAX);
		f->opens[f->open_count++] = logged;
	} else {
		FAKE_ASSERT(f->log_count < FAKE_LOG_MAX);
		f->log[f->log_count++] = logged;
	}
	switch (fm->mode) {
	case FAKE_SILENT:
		return;
	case FAKE_BLACKHOLE:
		(void)fake_apply(f, req, member);
		return;
	case FAKE_REDIRECT:
		r = reply_to(req, member, PX_REPLY_REDIRECT);
		r.leader_hint = fm->hint;
		break;
	case FAKE_BUSY:
		if (fm->busy_left > 0) {
			fm->busy_left--;
			r = reply_to(req, member, PX_REPLY_BUSY);
			break;
		}
		r = fake_apply(f, req, member);
		break;
	case FAKE_EXPIRED:
		fm->mode = FAKE_LEADER;
		r = reply_to(req, member, PX_REPLY_EXPIRED);
		break;
	case FAKE_NOISE:
		fake_noise(f, member, from, req);
		r = fake_apply(f, req, member);
		fake_send(f, member, from, FAKE_CLUSTER_ID, &r); /* duplicate */
		break;
	default:
		r = fake_apply(f, req, member);
		break;
	}
	fake_send(f, member, from, FAKE_CLUSTER_ID, &r);
}

static void fake_receive_packed(struct fake *f, uint8_t member,
				const struct sockaddr_in *from,
				const uint8_t *buf, size_t len)
{
	struct bpx_wire_unpacker u;
	FAKE_ASSERT(bpx_wire_multi_decode(buf, len, FAKE_CLUSTER_ID, &u) ==
		    BPX_WIRE_OK);
	FAKE_ASSERT(u.from == PX_TO_CLIENT && u.to == member);
	pthread_mutex_lock(&f->mu);
	f->packed_datagrams++;
	f->packing = true;
	struct px_msg req;
	while (bpx_wire_multi_next(&u, &req)) {
		f->packed_requests++;
		fake_handle(f, member, from, &req);
	}
	fake_send_pack(f, member, from);
	f->packing = false;
	pthread_mutex_unlock(&f->mu);
}

static void fake_receive(struct fake *f, uint8_t member)
{
	uint8_t buf[2048];
	struct sockaddr_in from;
	socklen_t from_len = sizeof(from);
	ssize_t n = recvfrom(f->m[member].fd, buf, sizeof(buf), 0,
			     (struct sockaddr *)&from, &from_len);
	struct px_msg req;
	if (n > 0 && bpx_wire_type_of(buf, (size_t)n) ==
			     BPX_WIRE_MULTI_REQUEST) {
		fake_receive_packed(f, member, &from, buf, (size_t)n);
		return;
	}
	if (n <= 0 || bpx_wire_decode(buf, (size_t)n, FAKE_CLUSTER_ID, &req) !=
			      BPX_WIRE_OK)
		return;
	/* What every replica checks of a client's request. */
	FAKE_ASSERT(req.type == PX_MSG_REQUEST);
	FAKE_ASSERT(req.from == PX_TO_CLIENT);
	FAKE_ASSERT(req.to == member);
	pthread_mutex_lock(&f->mu);
	f->single_datagrams++;
	fake_handle(f, member, &from, &req);
	pthread_mutex_unlock(&f->mu);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	while (!atomic_load(&f->stop)) {
		struct pollfd p[FAKE_MEMBERS];
		for (uint8_t i = 0; i < FAKE_MEMBERS; i++)
			p[i] = (struct pollfd){ .fd = f->m[i].fd,
						.events = POLLIN };
		if (poll(p, FAKE_MEMBERS, 5) <= 0)
			continue;
		for (uint8_t i = 0; i < FAKE_MEMBERS; i++)
			if (p[i].revents & POLLIN)
				fake_receive(f, i);
	}
	return NULL;
}

static void fake_set(struct fake *f, uint8_t member, enum fake_mode mode,
		     uint8_t hint, int busy_left)
{
	pthread_mutex_lock(&f->mu);
	f->m[member].mode = mode;
	f->m[member].hint = hint;
	f->m[member].busy_left = busy_left;
	pthread_mutex_unlock(&f->mu);
}

/* A copy of the request log, taken under the lock. */
static uint32_t fake_log(struct fake *f, struct fake_request *out, uint32_t cap)
{
	pthread_mutex_lock(&f->mu);
	uint32_t n = f->log_count < cap ? f->log_count : cap;
	memcpy(out, f->log, n * sizeof(*out));
	pthread_mutex_unlock(&f->mu);
	return n;
}

/* A copy of the OPEN log. */
static uint32_t fake_opens(struct fake *f, struct fake_request *out,
			   uint32_t cap)
{
	pthread_mutex_lock(&f->mu);
	uint32_t n = f->open_count < cap ? f->open_count : cap;
	memcpy(out, f->opens, n * sizeof(*out));
	pthread_mutex_unlock(&f->mu);
	return n;
}

/* Forgets the logs and the count of applies (the sessions stay). */
static void fake_clear(struct fake *f)
{
	pthread_mutex_lock(&f->mu);
	f->log_count = 0;
	f->open_count = 0;
	f->applies = 0;
	pthread_mutex_unlock(&f->mu);
}

static uint32_t fake_applies(struct fake *f)
{
	pthread_mutex_lock(&f->mu);
	uint32_t n = f->applies;
	pthread_mutex_unlock(&f->mu);
	return n;
}

static int open_member_socket(struct fake_member *m)
{
	m->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (m->fd < 0)
		return -1;
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(LOOPBACK);
	socklen_t len = sizeof(a);
	if (bind(m->fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(m->fd, (struct sockaddr *)&a, &len) != 0)
		return -1;
	m->port = ntohs(a.sin_port);
	return 0;
}

static int fake_setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	pthread_mutex_init(&f->mu, NULL);
	f->ops = bpx_kv_ops();
	f->kv = f->ops->create("capacity=1024");
	assert_non_null(f->kv);
	for (uint8_t i = 0; i < FAKE_MEMBERS; i++)
		assert_int_equal(open_member_socket(&f->m[i]), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
	*state = f;
	return 0;
}

static int fake_teardown(void **state)
{
	struct fake *f = *state;
	atomic_store(&f->stop, 1);
	pthread_join(f->thread, NULL);
	for (uint8_t i = 0; i < FAKE_MEMBERS; i++)
		close(f->m[i].fd);
	f->ops->destroy(f->kv);
	if (f->config_path[0] != '\0')
		unlink(f->config_path);
	pthread_mutex_destroy(&f->mu);
	free(f);
	return 0;
}

static struct bpx_client *open_client(struct fake *f,
				      const struct bpx_client_options *opt)
{
	struct bpx_endpoint eps[FAKE_MEMBERS];
	memset(eps, 0, sizeof(eps));
	for (uint8_t i = 0; i < FAKE_MEMBERS; i++) {
		eps[i].ip = LOOPBACK;
		eps[i].port = f->m[i].port;
	}
	char err[256];
	struct bpx_client *c = bpx_client_open_members(
		FAKE_CLUSTER_ID, eps, FAKE_MEMBERS, opt, err, sizeof(err));
	if (c == NULL)
		fail_msg("bpx_client_open_members: %s", err);
	return c;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#define KEY(s) (s), strlen(s)

/* A first write opens the client's session (lane 0) while member 0 leads;
 * the logs then start over, so a test watches its own writes. */
static void warm_up(struct fake *f, struct bpx_client *c)
{
	assert_int_equal(bpx_put(c, KEY("warm"), "0", 1), 0);
	assert_true(bpx_client_lane_id(c, 0) & PX_SESSION_ID_BIT);
	fake_clear(f);
}

/* ---- Tests ---- */

static void write_config(struct fake *f)
{
	snprintf(f->config_path, sizeof(f->config_path),
		 "/tmp/bypax-test-client-XXXXXX");
	int fd = mkstemp(f->config_path);
	assert_true(fd >= 0);
	FILE *out = fdopen(fd, "w");
	assert_non_null(out);
	fprintf(out, "[cluster]\nid = %u\n", FAKE_CLUSTER_ID);
	for (uint8_t i = 0; i < FAKE_MEMBERS; i++)
		fprintf(out,
			"[member%u]\nmac = 02:00:00:00:00:0%u\nip = 127.0.0.1\n"
			"port = %u\ncontrol = 127.0.0.1:%u\n",
			i, i, f->m[i].port, 7000u + i);
	fclose(out);
}

static void test_round_trip_from_config(void **state)
{
	struct fake *f = *state;
	write_config(f);
	char err[256];
	struct bpx_client *c =
		bpx_client_open(f->config_path, NULL, err, sizeof(err));
	if (c == NULL)
		fail_msg("bpx_client_open: %s", err);
	char buf[64];
	size_t len = 0;
	assert_int_equal(bpx_put(c, KEY("k"), "v1", 2), 0);
	assert_int_equal(bpx_get(c, KEY("k"), buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(buf, "v1", 2);
	assert_int_equal(bpx_get(c, KEY("absent"), buf, sizeof(buf), &len),
			 -BPX_ENOTFOUND);
	assert_int_equal(bpx_cas(c, KEY("k"), "no", 2, "v2", 2),
			 -BPX_ECASMISMATCH);
	assert_int_equal(bpx_cas(c, KEY("absent"), "no", 2, "v2", 2),
			 -BPX_ENOTFOUND);
	assert_int_equal(bpx_cas(c, KEY("k"), "v1", 2, "value-2", 7), 0);
	/* A short buffer gets the first bytes and the full length. */
	assert_int_equal(bpx_get(c, KEY("k"), buf, 3, &len), -BPX_ETOOBIG);
	assert_int_equal(len, 7);
	assert_memory_equal(buf, "val", 3);
	assert_int_equal(bpx_del(c, KEY("k")), 0);
	assert_int_equal(bpx_del(c, KEY("k")), -BPX_ENOTFOUND);
	assert_int_equal(bpx_get(c, KEY("k"), buf, sizeof(buf), &len),
			 -BPX_ENOTFOUND);
	/* One lane, one session, opened once with the lane's nonce: writes
	 * take seq 1, 2, 3, ... on the session id the cluster assigned;
	 * reads (GETs) are outside it, with the nonce, numbered from
	 * PX_SEQ_READ_BASE. */
	struct fake_request opens[4];
	assert_int_equal(fake_opens(f, opens, 4), 1);
	uint64_t nonce = bpx_client_lane_nonce(c, 0);
	assert_int_equal(opens[0].client_id, nonce);
	assert_int_equal(nonce & 0xffffu, 0);
	assert_int_equal(nonce & PX_SESSION_ID_BIT, 0);
	uint64_t session = bpx_client_lane_id(c, 0);
	assert_true(session & PX_SESSION_ID_BIT);
	struct fake_request log[16];
	uint32_t n = fake_log(f, log, 16);
	assert_int_equal(n, 10);
	uint64_t writes = 0, reads = 0;
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(log[i].member, 0);
		if (log[i].seq >= PX_SEQ_READ_BASE) {
			assert_int_equal(log[i].client_id, nonce);
			assert_int_equal(log[i].seq, PX_SEQ_READ_BASE + ++reads);
		} else {
			assert_int_equal(log[i].client_id, session);
			assert_int_equal(log[i].seq, ++writes);
		}
	}
	assert_true(reads > 0 && writes > 0);
	assert_int_equal(bpx_client_stats(c)->retries, 0);
	assert_int_equal(bpx_client_stats(c)->opens, 1);
	bpx_client_close(c);
}

static void test_bad_arguments(void **state)
{
	struct fake *f = *state;
	struct bpx_client *c = open_client(f, NULL);
	uint8_t big[BPX_KV_VALUE_BYTES_MAX + 1] = { 0 };
	char key[BPX_KV_KEY_BYTES_MAX + 1];
	memset(key, 'k', sizeof(key));
	assert_int_equal(bpx_put(c, key, 0, "v", 1), -BPX_EINVAL);
	assert_int_equal(bpx_put(c, key, sizeof(key), "v", 1), -BPX_EINVAL);
	assert_int_equal(bpx_put(c, KEY("k"), big, sizeof(big)), -BPX_EINVAL);
	/* Each value fits, but the command is over one request. */
	assert_int_equal(bpx_cas(c, KEY("k"), big, BPX_KV_VALUE_BYTES_MAX, big,
				 BPX_KV_VALUE_BYTES_MAX),
			 -BPX_ETOOBIG);
	assert_int_equal(bpx_client_stats(c)->sent, 0);
	/* Refused commands open nothing and consume no seq: the next one
	 * opens the session and is its seq 1. */
	assert_int_equal(bpx_put(c, KEY("k"), big, BPX_KV_VALUE_BYTES_MAX), 0);
	struct fake_request log[4];
	assert_int_equal(fake_log(f, log, 4), 1);
	assert_int_equal(log[0].seq, 1);
	assert_int_equal(fake_opens(f, log, 4), 1);
	bpx_client_close(c);
}

static void test_redirect_with_hint(void **state)
{
	struct fake *f = *state;
	struct bpx_client *c = open_client(f, NULL);
	warm_up(f, c);
	fake_set(f, 0, FAKE_REDIRECT, 2, 0);
	fake_set(f, 1, FAKE_SILENT, 0, 0);
	assert_int_equal(bpx_put(c, KEY("a"), "1", 1), 0);
	assert_int_equal(bpx_client_leader(c), 2);
	assert_int_equal(bpx_put(c, KEY("b"), "2", 1), 0);
	struct fake_request log[8];
	uint32_t n = fake_log(f, log, 8);
	/* 0 redirects to 2 with the same (client_id, seq); the next request
	 * goes straight to the leader. */
	assert_int_equal(n, 3);
	assert_int_equal(log[0].member, 0);
	assert_int_equal(log[1].member, 2);
	assert_int_equal(log[1].client_id, log[0].client_id);
	assert_int_equal(log[1].seq, log[0].seq);
	assert_int_equal(log[2].member, 2);
	assert_int_equal(log[2].seq, log[0].seq + 1);
	assert_int_equal(bpx_client_stats(c)->redirects, 1);
	assert_int_equal(bpx_client_stats(c)->timeouts, 0);
	bpx_client_close(c);
}

static void test_redirect_without_hint(void **state)
{
	struct fake *f = *state;
	fake_set(f, 0, FAKE_REDIRECT, PX_REPLICA_NONE, 0);
	struct bpx_client *c = open_client(f, NULL);
	assert_int_equal(bpx_put(c, KEY("a"), "1", 1), 0);
	/* The OPEN is redirected like any request; the write then goes to
	 * the member that opened the session. */
	struct fake_request log[8];
	assert_int_equal(fake_opens(f, log, 8), 2);
	assert_int_equal(log[0].member, 0);
	assert_int_equal(log[1].member, 1);
	assert_int_equal(log[1].client_id, log[0].client_id);
	assert_int_equal(log[1].seq, log[0].seq);
	assert_int_equal(fake_log(f, log, 8), 1);
	assert_int_equal(log[0].member, 1);
	assert_int_equal(log[0].seq, 1);
	assert_int_equal(bpx_client_leader(c), 1);
	bpx_client_close(c);
}

static void test_redirects_everywhere_back_off(void **state)
{
	struct fake *f = *state;
	for (uint8_t i = 0; i < FAKE_MEMBERS; i++)
		fake_set(f, i, FAKE_REDIRECT, PX_REPLICA_NONE, 0);
	struct bpx_client_options opt = { .deadline_ms = 100 };
	struct bpx_client *c = open_client(f, &opt);
	assert_int_equal(bpx_put(c, KEY("a"), "1", 1), -BPX_ETIMEDOUT);
	/* An election in progress: after a round of redirects the client
	 * backs off (1, 2, 4 ... 50 ms), so 100 ms see few sends. */
	uint64_t sent = bpx_client_stats(c)->sent;
	assert_true(sent >= FAKE_MEMBERS && sent <= 20);
	bpx_client_close(c);
}

static void test_busy_then_ok(void **state)
{
	struct fake *f = *state;
	struct bpx_client *c = open_client(f, NULL);
	warm_up(f, c);
	fake_set(f, 0, FAKE_BUSY, 0, 3);
	uint64_t t0 = mono_ms();
	assert_int_equal(bpx_put(c, KEY("a"), "1", 1), 0);
	/* Backoff 1 + 2 + 4 ms before the fourth try. */
	assert_true(mono_ms() - t0 >= 7);
	struct fake_request log[8];
	assert_int_equal(fake_log(f, log, 8), 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(log[i].member, 0);
		assert_int_equal(log[i].seq, 2);
		assert_int_equal(log[i].client_id, log[0].client_id);
	}
	assert_int_equal(bpx_client_stats(c)->busy, 3);
	assert_int_equal(fake_applies(f), 1);
	bpx_client_close(c);
}

static void test_timeout_retries_same_request(void **state)
{
	struct fake *f = *state;
	/* Member 0 applies the write and dies before answering. */
	struct bpx_client_options opt = { .timeout_ms = 100 };
	struct bpx_client *c = open_client(f, &opt);
	warm_up(f, c);
	fake_set(f, 0, FAKE_BLACKHOLE, 0, 0);
	assert_int_equal(bpx_put(c, KEY("a"), "1", 1), 0);
	struct fake_request log[8];
	assert_int_equal(fake_log(f, log, 8), 2);
	assert_int_equal(log[0].member, 0);
	assert_int_equal(log[1].member, 1);
	assert_int_equal(log[1].client_id, log[0].client_id);
	assert_int_equal(log[1].seq, log[0].seq);
	/* The retry got the cached reply: applied once. */
	assert_int_equal(fake_applies(f), 1);
	assert_int_equal(bpx_client_stats(c)->timeouts, 1);
	assert_int_equal(bpx_client_stats(c)->retries, 1);
	assert_int_equal(bpx_client_leader(c), 1);
	bpx_client_close(c);
}

static void test_deadline(void **state)
{
	struct fake *f = *state;
	struct bpx_client_options opt = { .timeout_ms = 20,
					  .deadline_ms = 150 };
	struct bpx_client *c = open_client(f, &opt);
	warm_up(f, c);
	uint64_t before = bpx_client_stats(c)->sent;
	for (uint8_t i = 0; i < FAKE_MEMBERS; i++)
		fake_set(f, i, FAKE_SILENT, 0, 0);
	uint64_t t0 = mono_ms();
	assert_int_equal(bpx_put(c, KEY("a"), "1", 1), -BPX_ETIMEDOUT);
	uint64_t took = mono_ms() - t0;
	assert_true(took >= 150 && took < 1000);
	const struct bpx_client_stats *s = bpx_client_stats(c);
	assert_int_equal(s->deadlines, 1);
	assert_true(s->timeouts >= 2);
	/* Every attempt, to every member, was the same request. */
	struct fake_request log[64];
	uint32_t n = fake_log(f, log, 64);
	assert_true(n >= 3 && n == s->sent - before);
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(log[i].member, i % FAKE_MEMBERS);
		assert_int_equal(log[i].seq, 2);
		assert_int_equal(log[i].client_id, log[0].client_id);
	}
	/* The outcome was unknown, but the session goes on: the next write
	 * is seq 3 on it, which makes a late copy of seq 2 STALE. */
	fake_set(f, 0, FAKE_LEADER, 0, 0);
	assert_int_equal(bpx_put(c, KEY("a"), "2", 1), 0);
	n = fake_log(f, log, 64);
	assert_int_equal(log[n - 1].client_id, log[0].client_id);
	assert_int_equal(log[n - 1].seq, 3);
	assert_int_equal(fake_opens(f, log, 64), 0);
	bpx_client_close(c);
}

static void test_expired_starts_new_session(void **state)
{
	struct fake *f = *state;
	struct bpx_client *c = open_client(f, NULL);
	assert_int_equal(bpx_put(c, KEY("a"), "1", 1), 0);
	fake_set(f, 0, FAKE_EXPIRED, 0, 0);
	assert_int_equal(bpx_put(c, KEY("a"), "2", 1), -BPX_EEXPIRED);
	assert_int_equal(bpx_client_lane_id(c, 0), 0);
	assert_int_equal(bpx_put(c, KEY("a"), "3", 1), 0);
	struct fake_request log[8];
	assert_int_equal(fake_log(f, log, 8), 3);
	assert_int_equal(log[1].client_id, log[0].client_id);
	assert_int_equal(log[1].seq, 2);
	/* The next write opened a new session and is its seq 1. */
	assert_int_not_equal(log[2].client_id, log[0].client_id);
	assert_int_equal(log[2].seq, 1);
	assert_int_equal(bpx_client_lane_id(c, 0), log[2].client_id);
	assert_int_equal(bpx_client_stats(c)->rekeys, 1);
	assert_int_equal(bpx_client_stats(c)->opens, 2);
	assert_int_equal(fake_opens(f, log, 8), 2);
	bpx_client_close(c);
}

static void test_noise_ignored(void **state)
{
	struct fake *f = *state;
	struct bpx_client *c = open_client(f, NULL);
	assert_int_equal(bpx_put(c, KEY("k"), "good", 4), 0);
	fake_set(f, 0, FAKE_NOISE, 0, 0);
	char buf[16];
	size_t len = 0;
	assert_int_equal(bpx_get(c, KEY("k"), buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(buf, "good", 4);
	/* The duplicate answer arrives during the next call. */
	fake_set(f, 0, FAKE_LEADER, 0, 0);
	assert_int_equal(bpx_put(c, KEY("k"), "next", 4), 0);
	assert_int_equal(bpx_client_stats(c)->ignored, 6);
	assert_int_equal(bpx_client_stats(c)->retries, 0);
	bpx_client_close(c);
}

#define PIPELINE 64u

static void test_pipelined_lanes(void **state)
{
	struct fake *f = *state;
	struct bpx_client_options opt = { .lanes = PIPELINE };
	struct bpx_client *c = open_client(f, &opt);
	char key[PIPELINE][16];
	bool seen[PIPELINE + 1] = { false };
	for (uint32_t i = 0; i < PIPELINE; i++) {
		uint64_t ticket;
		snprintf(key[i], sizeof(key[i]), "key-%u", i);
		assert_int_equal(bpx_submit(c, BPX_KV_PUT, KEY(key[i]), key[i],
					    strlen(key[i]), NULL, 0, &ticket),
				 0);
		assert_int_equal(ticket, i + 1);
	}
	uint64_t ticket;
	assert_int_equal(bpx_submit(c, BPX_KV_GET, KEY("x"), NULL, 0, NULL, 0,
				    &ticket),
			 -BPX_EBUSY);
	/* A synchronous call needs a lane too. */
	assert_int_equal(bpx_put(c, KEY("x"), "1", 1), -BPX_EBUSY);
	assert_int_equal(bpx_client_outstanding(c), PIPELINE);
	static struct bpx_completion done[16];
	uint32_t got = 0;
	for (int round = 0; round < 200 && got < PIPELINE; round++) {
		int n = bpx_poll(c, 20, done, 16);
		assert_true(n >= 0);
		for (int i = 0; i < n; i++) {
			assert_int_equal(done[i].status, 0);
			assert_int_equal(done[i].op, BPX_KV_PUT);
			assert_true(done[i].ticket >= 1 &&
				    done[i].ticket <= PIPELINE);
			assert_false(seen[done[i].ticket]);
			seen[done[i].ticket] = true;
			assert_true(done[i].latency_ns > 0);
		}
		got += (uint32_t)n;
	}
	assert_int_equal(got, PIPELINE);
	assert_int_equal(bpx_client_outstanding(c), 0);
	assert_int_equal(bpx_poll(c, 0, done, 16), 0);
	assert_int_equal(fake_applies(f), PIPELINE);
	/* One session per lane, opened with the nonce base + lane: 64
	 * session ids, each written at seq 1 (a slow machine may add retries
	 * of the same). */
	static struct fake_request log[FAKE_LOG_MAX];
	uint32_t logged = fake_opens(f, log, FAKE_LOG_MAX);
	assert_true(logged >= PIPELINE);
	uint64_t base = bpx_client_lane_nonce(c, 0);
	bool lane_seen[PIPELINE] = { false };
	uint32_t lanes_seen = 0;
	for (uint32_t i = 0; i < logged; i++) {
		uint64_t lane = log[i].client_id - base;
		assert_true(lane < PIPELINE);
		lanes_seen += !lane_seen[lane];
		lane_seen[lane] = true;
	}
	assert_int_equal(lanes_seen, PIPELINE);
	logged = fake_log(f, log, FAKE_LOG_MAX);
	assert_true(logged >= PIPELINE);
	for (uint32_t i = 0; i < logged; i++) {
		assert_int_equal(log[i].seq, 1);
		bool mine = false;
		for (uint32_t l = 0; l < PIPELINE; l++)
			mine |= log[i].client_id == bpx_client_lane_id(c, l);
		assert_true(mine);
	}
	/* The values landed; gets through the pipeline return them. */
	for (uint32_t i = 0; i < PIPELINE; i++)
		assert_int_equal(bpx_submit(c, BPX_KV_GET, KEY(key[i]), NULL, 0,
					    NULL, 0, &ticket),
				 0);
	got = 0;
	for (int round = 0; round < 200 && got < PIPELINE; round++) {
		int n = bpx_poll(c, 20, done, 16);
		assert_true(n >= 0);
		for (int i = 0; i < n; i++) {
			uint64_t k = done[i].ticket - PIPELINE - 1;
			assert_true(k < PIPELINE);
			assert_int_equal(done[i].status, 0);
			assert_int_equal(done[i].value_len, strlen(key[k]));
			assert_memory_equal(done[i].value, key[k],
					    done[i].value_len);
		}
		got += (uint32_t)n;
	}
	assert_int_equal(got, PIPELINE);
	bpx_client_close(c);
}

/* pack_max: what bpx_submit queued goes out at the next bpx_poll in
 * MULTI_REQUEST datagrams of up to pack_max requests; the MULTI_REPLY
 * answers complete them; every write applied once. */
static void test_pipelined_lanes_packed(void **state)
{
	struct fake *f = *state;
	struct bpx_client_options opt = { .lanes = PIPELINE, .pack_max = 16 };
	struct bpx_client *c = open_client(f, &opt);
	char key[PIPELINE][16];
	for (uint32_t i = 0; i < PIPELINE; i++) {
		uint64_t ticket;
		snprintf(key[i], sizeof(key[i]), "pk-%u", i);
		assert_int_equal(bpx_submit(c, BPX_KV_PUT, KEY(key[i]), key[i],
					    strlen(key[i]), NULL, 0, &ticket),
				 0);
		/* Queued, not sent, until a datagram holds 16 OPENs. */
		if (i == 14)
			assert_int_equal(bpx_client_stats(c)->packed_sent, 0);
	}
	assert_int_equal(bpx_client_stats(c)->packed_sent, 4);
	static struct bpx_completion done[16];
	uint32_t got = 0;
	for (int round = 0; round < 200 && got < PIPELINE; round++) {
		int n = bpx_poll(c, 20, done, 16);
		assert_true(n >= 0);
		for (int i = 0; i < n; i++)
			assert_int_equal(done[i].status, 0);
		got += (uint32_t)n;
	}
	assert_int_equal(got, PIPELINE);
	assert_int_equal(fake_applies(f), PIPELINE);
	const struct bpx_client_stats *st = bpx_client_stats(c);
	pthread_mutex_lock(&f->mu);
	uint32_t packed = f->packed_datagrams, requests = f->packed_requests;
	uint32_t single = f->single_datagrams;
	pthread_mutex_unlock(&f->mu);
	assert_int_equal(single, 0);
	/* 64 OPENs and 64 writes (and any retries), 16 or fewer a datagram. */
	assert_true(requests >= 2 * PIPELINE);
	assert_true(packed >= requests / 16 && packed < requests);
	assert_int_equal(st->packed_sent, packed);
	assert_true(st->packed_received > 0);
	/* A synchronous call packs its one request and still completes. */
	char out[16];
	size_t out_len = 0;
	assert_int_equal(bpx_get(c, KEY(key[3]), out, sizeof(out), &out_len),
			 0);
	assert_int_equal(out_len, strlen(key[3]));
	assert_memory_equal(out, key[3], out_len);
	bpx_client_close(c);
}

static void test_pipelined_waits_for_a_completion(void **state)
{
	struct fake *f = *state;
	fake_set(f, 0, FAKE_BUSY, 0, 2);
	struct bpx_client_options opt = { .lanes = 2 };
	struct bpx_client *c = open_client(f, &opt);
	uint64_t ticket;
	assert_int_equal(bpx_submit(c, BPX_KV_PUT, KEY("a"), "1", 1, NULL, 0,
				    &ticket),
			 0);
	struct bpx_completion done;
	int n = bpx_poll(c, 2000, &done, 1);
	assert_int_equal(n, 1);
	assert_int_equal(done.ticket, ticket);
	assert_int_equal(done.status, 0);
	assert_true(done.latency_ns >= 3000000u); /* backoff 1 + 2 ms */
	/* Nothing outstanding: poll returns at once, even without a limit. */
	assert_int_equal(bpx_poll(c, -1, &done, 1), 0);
	assert_int_equal(bpx_poll(c, 0, NULL, 1), -BPX_EINVAL);
	bpx_client_close(c);
}

static void test_open_errors(void **state)
{
	(void)state;
	char err[256];
	const char *path = "/nonexistent/bypax-test.conf";
	assert_null(bpx_client_open(path, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	struct bpx_endpoint ep = { .ip = LOOPBACK, .port = 9 };
	struct bpx_client_options opt = { .lanes = BPX_CLIENT_LANES_MAX + 1 };
	assert_null(bpx_client_open_members(1, &ep, 1, &opt, err, sizeof(err)));
	assert_non_null(strstr(err, "lanes"));
	opt = (struct bpx_client_options){ .pack_max = BPX_WIRE_MULTI_MAX + 1 };
	assert_null(bpx_client_open_members(1, &ep, 1, &opt, err, sizeof(err)));
	assert_non_null(strstr(err, "pack_max = 65: must be 1..64"));
	opt = (struct bpx_client_options){ .client_id_base = 0x12345 };
	assert_null(bpx_client_open_members(1, &ep, 1, &opt, err, sizeof(err)));
	assert_non_null(strstr(err, "client_id_base"));
	opt = (struct bpx_client_options){ .client_id_base = PX_SESSION_ID_BIT };
	assert_null(bpx_client_open_members(1, &ep, 1, &opt, err, sizeof(err)));
	assert_non_null(strstr(err, "bit 63"));
	assert_null(bpx_client_open_members(1, &ep, 0, NULL, err, sizeof(err)));
	assert_null(bpx_client_open_members(1, &ep, PX_REPLICAS_MAX + 1, NULL,
					    err, sizeof(err)));
	/* A given base is used as is. */
	opt = (struct bpx_client_options){ .client_id_base = 0x70000,
					   .lanes = 3 };
	struct bpx_client *c =
		bpx_client_open_members(1, &ep, 1, &opt, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(bpx_client_lane_nonce(c, 2), 0x70002);
	assert_int_equal(bpx_client_lane_id(c, 2), 0); /* none opened yet */
	assert_int_not_equal(bpx_client_local_port(c), 0);
	bpx_client_close(c);
	bpx_client_close(NULL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, fake_setup, fake_teardown)

int main(void)
{
	/* Every wait is bounded by a client deadline or a poll limit; this
	 * is a last guard against a hung test. */
	alarm(60);
	const struct CMUnitTest tests[] = {
		T(test_round_trip_from_config),
		T(test_bad_arguments),
		T(test_redirect_with_hint),
		T(test_redirect_without_hint),
		T(test_redirects_everywhere_back_off),
		T(test_busy_then_ok),
		T(test_timeout_retries_same_request),
		T(test_deadline),
		T(test_expired_starts_new_session),
		T(test_noise_ignored),
		T(test_pipelined_lanes),
		T(test_pipelined_lanes_packed),
		T(test_pipelined_waits_for_a_completion),
		cmocka_unit_test(test_open_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
