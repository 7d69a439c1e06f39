/* bypax control plane: a pure, adaptive failure detector.
 *
 * Deterministic state machine (DESIGN.md, "The purity rule"): no clocks, no
 * I/O, no allocation. The caller passes the current time in nanoseconds to
 * every call; the same sequence of calls gives the same answers, in bypaxd
 * and in the simulator.
 *
 * Each member's heartbeat inter-arrival time is tracked as an EWMA of the
 * mean and of the mean absolute deviation, in integer nanoseconds, with the
 * weights of TCP's retransmission timer (RFC 6298: 1/8 and 1/4). A member is
 * suspected once it has been silent for longer than
 *
 *   clamp(mean + 8 * deviation + 2 * heartbeat_interval,
 *         timeout_min, timeout_max)
 *
 * which is phi-accrual in spirit: a link that delivers heartbeats with
 * jitter earns a longer timeout, a steady link a shorter one, and the bounds
 * keep both a fast reaction and an upper bound on detection time.
 *
 * The detector is only a hint: a wrong suspicion costs liveness (a needless
 * leader change), never safety, which is decided by Paxos ballots.
 */
#ifndef BYPAX_CONTROL_FD_H
#define BYPAX_CONTROL_FD_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CTL_MEMBERS_MAX 7u
#define CTL_NONE 0xffu

/* Upper bound for timeout_max_ns (one hour): keeps the estimator's integer
 * arithmetic far from overflow (8 * deviation + ... < 2^63). */
#define CTL_FD_TIMEOUT_LIMIT_NS (3600ull * 1000 * 1000 * 1000)

/* Always-on assertion for programming errors (not for bad input from the
 * network, which is ignored and counted). The pure code may not include
 * <assert.h> or <stdlib.h>, hence the builtin. */
#define CTL_ASSERT(x) ((x) ? (void)0 : __builtin_trap())

struct ctl_fd_config {
	uint8_t member_count; /* 1..CTL_MEMBERS_MAX */
	uint8_t self_id;
	uint64_t heartbeat_interval_ns; /* how often members send heartbeats */
	uint64_t timeout_min_ns; /* never suspect sooner than this after the last heartbeat */
	uint64_t timeout_max_ns; /* always suspect after this much silence */
};

/* What the detector knows about one member. */
struct ctl_fd_member {
	uint64_t last_heard_ns;	       /* arrival of the latest heartbeat */
	uint64_t interarrival_mean_ns; /* EWMA, weight 1/8 */
	uint64_t interarrival_dev_ns;  /* EWMA of |sample - mean|, weight 1/4 */
	bool heard_any;		       /* false: still in the start-up grace */
};

struct ctl_fd {
	struct ctl_fd_config cfg;
	uint64_t init_ns; /* start of the grace period for silent members */
	struct ctl_fd_member members[CTL_MEMBERS_MAX];
};

/* Fills cfg with the defaults: heartbeats every 5 ms, suspect after at
 * least 30 ms and at most 1 s of silence. */
void ctl_fd_config_default(struct ctl_fd_config *cfg, uint8_t member_count,
			   uint8_t self_id);

/* Returns NULL if cfg is valid, else a static string naming the bad field. */
const char *ctl_fd_config_check(const struct ctl_fd_config *cfg);

/* cfg must pass ctl_fd_config_check (asserted). Every member starts in a
 * grace period: it counts as alive until timeout_max_ns after now_ns, unless
 * heard from (then the adaptive timeout applies). */
void ctl_fd_init(struct ctl_fd *fd, const struct ctl_fd_config *cfg,
		 uint64_t now_ns);

/* A heartbeat from member arrived at now_ns. A member outside
 * 0..member_count-1 is ignored; so is self (always alive). A clock that went
 * backwards counts as zero elapsed time. */
void ctl_fd_heard(struct ctl_fd *fd, uint8_t member, uint64_t now_ns);

/* Returns true if member is not suspected at now_ns: self always; a member
 * heard from, while its silence is at most ctl_fd_timeout_ns(); a member never
 * heard from, while now_ns - init is at most timeout_max_ns. Returns false
 * for a member outside the membership. */
bool ctl_fd_alive(const struct ctl_fd *fd, uint8_t member, uint64_t now_ns);

/* Returns the set of alive members at now_ns, bit i for member i (self
 * included); no bit at or above member_count is set. */
uint32_t ctl_fd_alive_mask(const struct ctl_fd *fd, uint64_t now_ns);

/* Returns member's current adaptive timeout in ns, within
 * [timeout_min_ns, timeout_max_ns]. For a member never heard from, or
 * outside the membership, returns timeout_max_ns. */
uint64_t ctl_fd_timeout_ns(const struct ctl_fd *fd, uint8_t member);

/* Returns the number of bits set in mask (a helper for majority checks). */
uint8_t ctl_mask_count(uint32_t mask);

/* Returns the smallest number of members that is a majority of
 * member_count. */
uint8_t ctl_majority(uint8_t member_count);

#ifdef __cplusplus
}
#endif

#endif /* BYPAX_CONTROL_FD_H */
