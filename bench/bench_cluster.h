/* An in-memory bypax cluster for benchmarks: N replicas stepped on one core
 * with no network.
 *
 * Every message a replica puts in its outbox is copied (value bytes too)
 * into a FIFO and later handed to the destination's px_step; replies go to
 * built-in closed-loop clients. The FIFO is delivered in rounds: a round is
 * everything queued so far, and what it produces waits for the next round
 * (the same order as one FIFO, with a px_flush of the leader after each
 * round, as a dataplane flushes after each burst). A fake clock advances a
 * little per call into the core. All memory is taken in bc_new: the
 * measured loop allocates nothing.
 *
 * Checks are always on: a reply that is not PX_REPLY_OK and BPX_KV_OK, a
 * reply out of submission order, a full queue, or a cluster that stops
 * making progress aborts with a message.
 */
#ifndef BYPAX_BENCH_CLUSTER_H
#define BYPAX_BENCH_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Keys the requests cycle over, and the PUT value size. */
#define BC_KEYS 1000u
#define BC_VALUE_BYTES 16u
#define BC_WINDOW_SLOTS_DEFAULT 64u

struct bc_cluster;

/* What a cluster has done since bc_new, election included (counts
 * accumulate over runs: subtract two readings). */
struct bc_stats {
	uint64_t requests_committed;   /* replied to, PX_REPLY_OK */
	uint64_t slots_committed;      /* at the leader */
	uint64_t slots_proposed;       /* at the leader */
	uint64_t batch_requests_total; /* requests in proposed slots */
	uint64_t msgs_delivered;       /* replica-to-replica messages */
	uint64_t msgs_by_type[16];     /* indexed by enum px_msg_type */
	uint64_t retransmits;	       /* at the leader: should stay 0 */
	uint64_t drops;		       /* all replicas, all reasons */
	uint64_t ticks;		       /* px_tick rounds (all replicas) */
	uint64_t now_ns;	       /* the fake clock */
};

/* Makes a cluster of `replicas` (1..PX_REPLICAS_MAX) with replica 0 as the
 * elected leader. batch: requests per slot and per px_flush
 * (batch_requests_max); window: slots in flight (window_slots, 0 for
 * BC_WINDOW_SLOTS_DEFAULT). At most batch * window requests are in flight,
 * each from its own client. Returns NULL on a bad argument or when memory
 * is short. */
struct bc_cluster *bc_new(uint8_t replicas, uint32_t batch, uint32_t window);

/* bc_new with the requests cycling over `keys` (BC_KEYS..2^24; more than
 * BC_KEYS: 3-byte binary keys, each PUT into every store before the
 * election), and with prefetch false, the built-in store's ops without
 * their prefetch hint, as state machines built to ABI version 1 are. */
struct bc_cluster *bc_new_keys(uint8_t replicas, uint32_t batch,
			       uint32_t window, uint32_t keys, bool prefetch);

/* Submits `count` KV PUTs (BC_VALUE_BYTES values, keys cycling over
 * BC_KEYS) in groups of `batch` per px_flush, and delivers messages until
 * every request is replied to and every replica has applied every committed
 * slot. Returns the number of requests committed (== count; anything else
 * aborts). */
uint64_t bc_run_requests(struct bc_cluster *c, uint64_t count);

/* Copies the cluster's counters into *out. */
void bc_get_stats(const struct bc_cluster *c, struct bc_stats *out);

/* Frees a cluster (NULL is fine). */
void bc_free(struct bc_cluster *c);

#ifdef __cplusplus
}
#endif
#endif
