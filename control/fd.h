/* bypax control plane: a pure, adaptive failure detector.
 *
 * Deterministic state machine (DESIGN.md, "The purity rule"): no clocks, no
 * I/O, no allocation. The caller passes the current time in nanoseconds to
 * every call; the same sequence of calls gives the same answers, in bypaxd
 * and in the simulator.
 *
 * Rule 1, jitter. Each member's heartbeat inter-arrival time is tracked as
 * an EWMA of the mean and of the mean absolute deviation, in integer
 * nanoseconds, with the weights of TCP's retransmission timer (RFC 6298:
 * 1/8 and 1/4). Its timeout is
 *
 *   clamp(max(mean + 8 * deviation + 2 * heartbeat_interval, backoff),
 *         timeout_min, timeout_max)
 *
 * which is phi-accrual in spirit: a link that delivers heartbeats with
 * jitter earns a longer timeout, a steady link a shorter one, and the bounds
 * keep both a fast reaction and an upper bound on detection time.
 *
 * Rule 2, our own stalls. The caller reports every time it runs
 * (ctl_fd_ran; ctl_policy_step does, for every input). A gap between two
 * runs longer than one heartbeat interval is a stall of this process (the
 * scheduler took the CPU away, a VM paused): heartbeats sent meanwhile
 * could not be read, and are read late or lost. The excess over one
 * interval is not held against anyone: a member's silence, and its
 * inter-arrival sample, count only the time since its last heartbeat that
 * we were running. Queries do not run the detector: a stall is known once
 * the next ctl_fd_ran closes it.
 *
 * Rule 3, false suspicions. A member heard again after its timeout had
 * passed (it was suspected), within timeout_max of its previous heartbeat
 * and with no heartbeat lost in between (ctl_fd_missed: omega.c compares
 * sequence numbers), was late, not dead or cut off: its own process
 * stalled and sent nothing meanwhile. Its backoff becomes twice the
 * silence it was suspected for (so at least twice its timeout, at most
 * timeout_max): it takes a longer stall to suspect it again. The backoff
 * halves every backoff_half_life while the member is heard, and is dropped
 * once below timeout_min.
 *
 * Rule 4, the bound. Whatever rules 2 and 3 allow, a member silent for
 * longer than timeout_max (wall time, stalls included) is suspected: a
 * crashed member is suspected at most timeout_max after its last heartbeat
 * while we run.
 *
 * A member is suspected once its silence (rule 2) is above its timeout
 * (rules 1 and 3), or by rule 4.
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
	uint64_t backoff_half_life_ns; /* a false suspicion's backoff halves */
};

/* What the detector knows about one member. */
struct ctl_fd_member {
	uint64_t last_heard_ns;	       /* arrival of the latest heartbeat */
	uint64_t interarrival_mean_ns; /* EWMA, weight 1/8 */
	uint64_t interarrival_dev_ns;  /* EWMA of |sample - mean|, weight 1/4 */
	uint64_t stalled_at_heard_ns;  /* ctl_fd.stalled_ns then (rule 2) */
	uint64_t backoff_ns;	       /* rule 3; 0: none */
	uint64_t backoff_since_ns;     /* when it last doubled or halved */
	uint64_t false_suspicions;     /* rule 3, since init */
	bool heard_any;		       /* false: still in the start-up grace */
	bool missed;		       /* ctl_fd_missed before the next one */
};

struct ctl_fd {
	struct ctl_fd_config cfg;
	uint64_t init_ns;     /* start of the grace period for silent members */
	uint64_t last_run_ns; /* the latest ctl_fd_ran (or init) */
	uint64_t stalled_ns;  /* rule 2: our stalls' excess, summed */
	uint64_t stalls;      /* rule 2: how many, since init */
	struct ctl_fd_member members[CTL_MEMBERS_MAX];
};

/* Fills cfg with the defaults: heartbeats every 5 ms, suspect after at
 * least 30 ms and at most 1 s of silence, a false suspicion's backoff
 * halving every 60 s. */
void ctl_fd_config_default(struct ctl_fd_config *cfg, uint8_t member_count,
			   uint8_t self_id);

/* Returns NULL if cfg is valid, else a static string naming the bad field. */
const char *ctl_fd_config_check(const struct ctl_fd_config *cfg);

/* cfg must pass ctl_fd_config_check (asserted). Every member starts in a
 * grace period: it counts as alive until timeout_max_ns after now_ns, unless
 * heard from (then the adaptive timeout applies). Init counts as a run. */
void ctl_fd_init(struct ctl_fd *fd, const struct ctl_fd_config *cfg,
		 uint64_t now_ns);

/* This process runs at now_ns (rule 2): call it every time the caller
 * runs, before anything else, at least once per heartbeat interval. A gap
 * since the previous call longer than heartbeat_interval_ns is a stall; its
 * excess is counted in fd->stalled_ns and fd->stalls. A clock that went
 * backwards counts as no gap. */
void ctl_fd_ran(struct ctl_fd *fd, uint64_t now_ns);

/* A heartbeat from member arrived at now_ns. A member outside
 * 0..member_count-1 is ignored; so is self (always alive). A clock that went
 * backwards counts as zero elapsed time. One that comes after the member's
 * timeout, within timeout_max and with ctl_fd_missed not called since the
 * previous one, is a false suspicion (rule 3). */
void ctl_fd_heard(struct ctl_fd *fd, uint8_t member, uint64_t now_ns);

/* Heartbeats of member's were lost before the one about to be heard (its
 * sequence skipped some, or it restarted): its silence, if long, was a
 * failure of the member or of the link, not lateness, so rule 3 does not
 * apply to that heartbeat. Ignored for a member outside the membership or
 * self. */
void ctl_fd_missed(struct ctl_fd *fd, uint8_t member);

/* Returns true if member is not suspected at now_ns: self always; a member
 * heard from, while its silence less our stalls since (rule 2) is at most
 * ctl_fd_timeout_ns() and its silence is at most timeout_max_ns (rule 4); a
 * member never heard from, while now_ns - init is at most timeout_max_ns.
 * Returns false for a member outside the membership. */
bool ctl_fd_alive(const struct ctl_fd *fd, uint8_t member, uint64_t now_ns);

/* Returns the set of alive members at now_ns, bit i for member i (self
 * included); no bit at or above member_count is set. */
uint32_t ctl_fd_alive_mask(const struct ctl_fd *fd, uint64_t now_ns);

/* Returns member's current adaptive timeout in ns (rules 1 and 3), within
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
