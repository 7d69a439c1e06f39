/* libbypax: the key-value client over ordinary kernel UDP sockets.
 *
 * A client speaks the bypax wire format (wire.h) to the replicas' data
 * addresses: each request is a px_msg REQUEST (client_id, seq, a KV command
 * from kv.h), each answer a REPLY matched by (client_id, seq).
 *
 * Exactly-once. The replicas keep one session per client and cache only
 * its LAST reply, so a client has at most one write outstanding per
 * session. A client therefore has `lanes` independent sessions, one
 * outstanding request each. Sessions are opened through the log
 * (PX_FLAG_OPEN, docs/wire.md): a lane's first write first sends an OPEN
 * (an empty value, a random seq) with the lane's nonce (client_id_base +
 * lane) as its client_id; the replicas assign the session an id of their
 * own (bit 63 set) and the lane then writes on it with seq 1, 2, ... A retry (after a timeout, BUSY or
 * REDIRECT) resends the SAME (session id, seq), so a write that reached
 * the old leader before it failed is applied once and the retry gets the
 * cached reply. Reads (GET) are outside any session: they carry the nonce
 * and a seq from PX_SEQ_READ_BASE up.
 *
 * Sessions. A lane's seq advances with every write it sends. After a
 * write whose outcome is unknown (-BPX_ETIMEDOUT) the lane keeps its
 * session: its next write has a higher seq, which makes any late copy of
 * the old one STALE, never applied. The replicas evict sessions (least
 * recently used first) when their table is full; a write on an evicted
 * session is answered EXPIRED, whatever its seq, and never applied then:
 * the call returns -BPX_EEXPIRED, meaning its outcome is unknown (an
 * earlier copy may have been applied before the eviction), and the lane's
 * next write opens a new session first. STALE (-BPX_ESTALE) does the same.
 *
 * Routing. Requests go to the member last known to lead (member 0 at
 * first). REDIRECT with a valid leader_hint switches to the hinted member
 * and resends at once; REDIRECT without one tries the next member (after a
 * full round of redirects, with the BUSY backoff, so an election in
 * progress is not flooded). BUSY backs off 1 ms, doubling up to 50 ms, and
 * resends to the same member. No reply within timeout_ms resends to the
 * next member. At the request's deadline it fails with -BPX_ETIMEDOUT:
 * the outcome is then unknown (a write may or may not have been applied).
 *
 * One engine. The rules above (sessions, seqs, routing, backoff, timeouts,
 * deadlines) are the client engine's, client/engine.h: a pure state
 * machine (time passed in, a seeded PRNG, effects out) that libbypax runs
 * for every lane, and that the load generator (dataplane/loadgen.c) and
 * the simulator's clients (tests/sim) run too, so what the simulator
 * tests is what ships. libbypax adds only the socket, the datagram codec
 * and this API.
 *
 * Memory: everything is allocated in open; no call after it allocates.
 * Threads: a client is not thread-safe; use one per thread.
 */
#ifndef BYPAX_CLIENT_H
#define BYPAX_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "bypax/errors.h"
#include "bypax/kv.h"
#include "bypax/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BPX_CLIENT_TIMEOUT_MS_DEFAULT 200u
#define BPX_CLIENT_DEADLINE_MS_DEFAULT 5000u
#define BPX_CLIENT_LANES_DEFAULT 1u
#define BPX_CLIENT_LANES_MAX 256u
#define BPX_CLIENT_BACKOFF_MIN_MS 1u
#define BPX_CLIENT_BACKOFF_MAX_MS 50u

/* Every field's zero means its default, so `{0}` (or a NULL pointer) is a
 * valid set of options. */
struct bpx_client_options {
	uint32_t timeout_ms;	 /* per attempt before trying the next member;
				 0: BPX_CLIENT_TIMEOUT_MS_DEFAULT */
	uint32_t deadline_ms;	 /* per request, all attempts together;
				 0: BPX_CLIENT_DEADLINE_MS_DEFAULT */
	uint32_t lanes;		 /* requests outstanding at once, 1..256;
				 0: BPX_CLIENT_LANES_DEFAULT */
	uint32_t bind_ip;	 /* local IPv4, host byte order; 0: any */
	uint16_t bind_port;	 /* local UDP port; 0: any */
	uint64_t client_id_base; /* the nonces lanes open sessions and read
				    with: base + lane; its low 16 bits must
				    be 0 and bit 63 clear. 0: random
				    (getrandom). Should be unique to this
				    client: replies go to the last address a
				    nonce came from. */
	uint32_t pack_max;	 /* requests per datagram at most, 1..64
				    (BPX_WIRE_MULTI_MAX); 0: 1. Above 1, the
				    requests made ready between two calls
				    that drive the client (bpx_poll, a
				    synchronous call) go to one member in
				    MULTI_REQUEST datagrams (docs/wire.md,
				    "Packed requests and replies"), sent when
				    it drives or when one is full: bpx_submit
				    then only queues. Needs replicas that take
				    them (this version on); 1 sends a REQUEST
				    per datagram, what every replica takes. */
};

struct bpx_client_stats {
	uint64_t sent;	      /* request datagrams sent, retries included */
	uint64_t retries;     /* resends of a request already sent */
	uint64_t redirects;   /* REDIRECT replies */
	uint64_t timeouts;    /* attempts that got no reply in timeout_ms */
	uint64_t busy;	      /* BUSY replies */
	uint64_t deadlines;   /* requests failed with -BPX_ETIMEDOUT */
	uint64_t completed;   /* requests completed, any status */
	uint64_t opens;       /* sessions opened (OPEN answered) */
	uint64_t rekeys;      /* sessions lost (EXPIRED, STALE): the lane's
				 next write opens a new one */
	uint64_t ignored;     /* datagrams dropped: malformed, wrong cluster,
				 not a reply, late or duplicate */
	uint64_t send_errors; /* sendto failures (treated as a lost packet) */
	uint64_t packed_sent; /* MULTI_REQUEST datagrams sent (pack_max > 1) */
	uint64_t packed_received; /* MULTI_REPLY datagrams taken */
};

/* A finished pipelined request (bpx_poll). */
struct bpx_completion {
	uint64_t ticket;    /* from bpx_submit */
	int status;	    /* what the synchronous call would return: 0,
				-BPX_ENOTFOUND, -BPX_ECASMISMATCH, -BPX_EFULL,
				-BPX_ETIMEDOUT, -BPX_ESTALE, -BPX_EEXPIRED,
				-BPX_ETOOBIG, -BPX_EMALFORMED, ... */
	uint8_t op;	    /* enum bpx_kv_op */
	uint8_t kv_status;  /* enum bpx_kv_status, when the request was
				applied; else 0 */
	uint16_t value_len; /* bytes in value */
	uint8_t value[BPX_KV_VALUE_BYTES_MAX]; /* GET: the value; DEL and
				CAS: the value held before (CAS mismatch: the
				current value); PUT: nothing */
	uint64_t latency_ns;		       /* submit to completion */
};

struct bpx_client;

/* Opens a client for the cluster in config_path (config.h; the members'
 * data ip and port and the cluster id are used). opt may be NULL. Returns
 * NULL with a message in err (naming the file or the bad option) when the
 * file cannot be read or is invalid, an option is out of range, memory is
 * short, or the socket cannot be made or bound. err may be NULL. */
struct bpx_client *bpx_client_open(const char *config_path,
				   const struct bpx_client_options *opt,
				   char *err, size_t err_len);

/* The same without a file: member i is replica id i (members[i].mac is not
 * used). member_count is 1..PX_REPLICAS_MAX. */
struct bpx_client *bpx_client_open_members(uint32_t cluster_id,
					   const struct bpx_endpoint *members,
					   size_t member_count,
					   const struct bpx_client_options *opt,
					   char *err, size_t err_len);

/* What to tell a user whose write got -BPX_EFULL, in buf: for the built-in
 * KV store, the capacity config_path's sm_args gives ("the store is full
 * (capacity 64 keys, from sm_args in bypax.conf; see sm_args capacity in
 * docs/config.md)"). bypax-cli and bypax-load print it. */
void bpx_client_full_reason(const char *config_path, char *buf, size_t len);

/* Closes the socket and frees the client. Outstanding requests are
 * abandoned (their outcome is unknown). NULL is allowed. */
void bpx_client_close(struct bpx_client *c);

/* ---- Synchronous calls ----
 * Each needs a free lane (else -BPX_EBUSY) and waits up to deadline_ms.
 * Pipelined requests that complete meanwhile wait for bpx_poll.
 * Every call returns 0 or:
 *   -BPX_EINVAL     a key of 0 or > 64 bytes, a value > 1024 bytes, NULL
 *   -BPX_ETOOBIG    the command does not fit one request (or a replica
 *                   said TOO_BIG)
 *   -BPX_EBUSY      every lane has a request outstanding
 *   -BPX_ETIMEDOUT  no answer by the deadline: outcome unknown
 *   -BPX_ESTALE, -BPX_EEXPIRED  the replicas' session for this lane did not
 *                   match, or was evicted (outcome unknown); the lane's
 *                   next write opens a new session
 *   -BPX_EFULL      the store is full (PUT of a new key)
 *   -BPX_EMALFORMED a reply the client could not decode
 *   -BPX_EIO        the socket failed
 * and, per call, what is noted there. */

int bpx_put(struct bpx_client *c, const void *key, size_t key_len,
	    const void *value, size_t value_len);

/* Copies the value into out[0..cap) and sets *out_len to its full length.
 * Returns -BPX_ENOTFOUND when the key is absent, -BPX_ETOOBIG when cap is
 * short (out holds the first cap bytes, *out_len the full length). out may
 * be NULL when cap is 0; out_len may be NULL. */
int bpx_get(struct bpx_client *c, const void *key, size_t key_len, void *out,
	    size_t cap, size_t *out_len);

/* Returns -BPX_ENOTFOUND when the key was absent (nothing changed). */
int bpx_del(struct bpx_client *c, const void *key, size_t key_len);

/* Sets the key to new_value if it holds expected. Returns
 * -BPX_ECASMISMATCH when it holds something else, -BPX_ENOTFOUND when it
 * is absent. */
int bpx_cas(struct bpx_client *c, const void *key, size_t key_len,
	    const void *expected, size_t expected_len, const void *new_value,
	    size_t new_len);

/* ---- Pipelined calls ---- */

/* Starts a request on a free lane and sends it (with pack_max > 1: queues
 * it for the next bpx_poll, which sends what was queued in as few
 * datagrams as fit, before it waits). value is PUT's value or
 * CAS's expected value; new_value is CAS's new value (NULL with length 0
 * when unused). Sets *ticket. Returns 0, -BPX_EBUSY when every lane has a
 * request outstanding or a completion not yet polled, -BPX_EINVAL for a
 * bad op or length, -BPX_ETOOBIG for a command over one request. */
int bpx_submit(struct bpx_client *c, enum bpx_kv_op op, const void *key,
	       size_t key_len, const void *value, size_t value_len,
	       const void *new_value, size_t new_len, uint64_t *ticket);

/* Drives the outstanding requests (receives, resends, backs off) and
 * returns completions into done[0..max), oldest first, each lane freed for
 * the next bpx_submit. Waits up to timeout_ms (0: do not wait; < 0: until
 * one completes; every request ends by its deadline) for at least one.
 * Returns how many (0 when none completed in time, or none is
 * outstanding), -BPX_EINVAL for max == 0 or done == NULL, or -BPX_EIO when
 * waiting on the socket fails. */
int bpx_poll(struct bpx_client *c, int timeout_ms, struct bpx_completion *done,
	     size_t max);

/* Requests submitted and not yet returned by bpx_poll. */
uint32_t bpx_client_outstanding(const struct bpx_client *c);

/* ---- Introspection ---- */

const struct bpx_client_stats *bpx_client_stats(const struct bpx_client *c);
/* The member requests go to first: the last one known to lead. */
uint8_t bpx_client_leader(const struct bpx_client *c);
/* The session id lane (0..lanes-1) writes on now; 0 while it has none
 * (before its first write, after EXPIRED or STALE). */
uint64_t bpx_client_lane_id(const struct bpx_client *c, uint32_t lane);
/* The nonce lane opens sessions and reads with: client_id_base + lane. */
uint64_t bpx_client_lane_nonce(const struct bpx_client *c, uint32_t lane);
/* The local UDP port the socket is bound to (host byte order). */
uint16_t bpx_client_local_port(const struct bpx_client *c);

#ifdef __cplusplus
}
#endif
#endif
