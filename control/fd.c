/* Pure adaptive failure detector: see fd.h. */
#include "fd.h"

#include <stddef.h>
#include <string.h>

#define CTL_MS_NS (1000ull * 1000)

void ctl_fd_config_default(struct ctl_fd_config *cfg, uint8_t member_count,
			   uint8_t self_id)
{
	CTL_ASSERT(cfg != NULL);
	memset(cfg, 0, sizeof(*cfg));
	cfg->member_count = member_count;
	cfg->self_id = self_id;
	cfg->heartbeat_interval_ns = 5 * CTL_MS_NS;
	cfg->timeout_min_ns = 30 * CTL_MS_NS;
	cfg->timeout_max_ns = 1000 * CTL_MS_NS;
	cfg->backoff_half_life_ns = 60000 * CTL_MS_NS;
}

const char *ctl_fd_config_check(const struct ctl_fd_config *cfg)
{
	if (cfg == NULL)
		return "config: missing";
	if (cfg->member_count == 0 || cfg->member_count > CTL_MEMBERS_MAX)
		return "member_count: must be 1..CTL_MEMBERS_MAX";
	if (cfg->self_id >= cfg->member_count)
		return "self_id: must be below member_count";
	if (cfg->heartbeat_interval_ns == 0)
		return "heartbeat_interval_ns: must be positive";
	if (cfg->timeout_min_ns == 0)
		return "timeout_min_ns: must be positive";
	if (cfg->timeout_min_ns > cfg->timeout_max_ns)
		return "timeout_min_ns: above timeout_max_ns";
	if (cfg->timeout_max_ns > CTL_FD_TIMEOUT_LIMIT_NS)
		return "timeout_max_ns: above CTL_FD_TIMEOUT_LIMIT_NS";
	/* With heartbeats rarer than the longest timeout, a healthy member
	 * would be suspected between two of its heartbeats. */
	if (cfg->heartbeat_interval_ns >= cfg->timeout_max_ns)
		return "heartbeat_interval_ns: not below timeout_max_ns";
	if (cfg->backoff_half_life_ns == 0)
		return "backoff_half_life_ns: must be positive";
	return NULL;
}

void ctl_fd_init(struct ctl_fd *fd, const struct ctl_fd_config *cfg,
		 uint64_t now_ns)
{
	CTL_ASSERT(fd != NULL);
	CTL_ASSERT(ctl_fd_config_check(cfg) == NULL);
	memset(fd, 0, sizeof(*fd));
	fd->cfg = *cfg;
	fd->init_ns = now_ns;
	fd->last_run_ns = now_ns;
	/* Before the first real sample, assume heartbeats arrive on time with
	 * a deviation of half an interval (as RFC 6298 seeds RTTVAR = R/2). */
	for (uint8_t i = 0; i < CTL_MEMBERS_MAX; i++) {
		fd->members[i].interarrival_mean_ns =
			cfg->heartbeat_interval_ns;
		fd->members[i].interarrival_dev_ns =
			cfg->heartbeat_interval_ns / 2;
	}
}

/* Time from then_ns to now_ns; a clock that went backwards counts as zero
 * elapsed time rather than wrapping to an enormous silence. */
static uint64_t ctl_elapsed_ns(uint64_t then_ns, uint64_t now_ns)
{
	return now_ns > then_ns ? now_ns - then_ns : 0;
}

static bool ctl_fd_member_valid(const struct ctl_fd *fd, uint8_t member)
{
	return member < fd->cfg.member_count;
}

/* value += (target - value) / 2^shift, in signed arithmetic. Both operands
 * are at most CTL_FD_TIMEOUT_LIMIT_NS, so the casts cannot overflow. */
static uint64_t ctl_ewma(uint64_t value, uint64_t target, unsigned shift)
{
	int64_t delta = (int64_t)target - (int64_t)value;
	int64_t next = (int64_t)value + delta / ((int64_t)1 << shift);
	CTL_ASSERT(next >= 0);
	return (uint64_t)next;
}

/* One inter-arrival sample, RFC 6298 section 2.3 order: the deviation is
 * updated against the old mean, then the mean moves. */
static void ctl_fd_sample(struct ctl_fd_member *m, uint64_t sample_ns)
{
	uint64_t mean_ns = m->interarrival_mean_ns;
	uint64_t error_ns = sample_ns > mean_ns ? sample_ns - mean_ns :
						  mean_ns - sample_ns;

	m->interarrival_dev_ns = ctl_ewma(m->interarrival_dev_ns, error_ns, 2);
	m->interarrival_mean_ns = ctl_ewma(mean_ns, sample_ns, 3);
}

void ctl_fd_ran(struct ctl_fd *fd, uint64_t now_ns)
{
	CTL_ASSERT(fd != NULL);
	/* Rule 2: one interval between runs is expected (a tick comes every
	 * millisecond or so); what is beyond it, we were not running. */
	uint64_t gap_ns = ctl_elapsed_ns(fd->last_run_ns, now_ns);
	if (gap_ns > fd->cfg.heartbeat_interval_ns) {
		fd->stalled_ns += gap_ns - fd->cfg.heartbeat_interval_ns;
		fd->stalls++;
	}
	if (now_ns > fd->last_run_ns)
		fd->last_run_ns = now_ns;
}

/* Rule 2: the member's silence at now_ns, less the stalls of ours that
 * ended since its last heartbeat. */
static uint64_t ctl_fd_silence_ns(const struct ctl_fd *fd,
				  const struct ctl_fd_member *m,
				  uint64_t now_ns)
{
	uint64_t silence_ns = ctl_elapsed_ns(m->last_heard_ns, now_ns);
	uint64_t stalled_ns = fd->stalled_ns - m->stalled_at_heard_ns;
	return silence_ns > stalled_ns ? silence_ns - stalled_ns : 0;
}

/* Rule 3's decay: the backoff halves every half-life since it last
 * changed; below timeout_min it would change nothing, so it goes. */
static void ctl_fd_backoff_decay(const struct ctl_fd_config *cfg,
				 struct ctl_fd_member *m, uint64_t now_ns)
{
	if (m->backoff_ns == 0)
		return;
	uint64_t halves = ctl_elapsed_ns(m->backoff_since_ns, now_ns) /
			  cfg->backoff_half_life_ns;
	if (halves == 0)
		return;
	m->backoff_ns = halves >= 64 ? 0 : m->backoff_ns >> halves;
	m->backoff_since_ns += halves * cfg->backoff_half_life_ns;
	if (m->backoff_ns < cfg->timeout_min_ns)
		m->backoff_ns = 0;
}

void ctl_fd_heard(struct ctl_fd *fd, uint8_t member, uint64_t now_ns)
{
	CTL_ASSERT(fd != NULL);
	if (!ctl_fd_member_valid(fd, member) || member == fd->cfg.self_id)
		return;
	const struct ctl_fd_config *cfg = &fd->cfg;
	struct ctl_fd_member *m = &fd->members[member];
	if (!m->heard_any) {
		/* The gap since init is not an inter-arrival time: no sample. */
		m->heard_any = true;
		m->last_heard_ns = now_ns;
		m->stalled_at_heard_ns = fd->stalled_ns;
		m->missed = false;
		return;
	}
	const uint64_t silence_ns = ctl_fd_silence_ns(fd, m, now_ns);
	const uint64_t timeout_ns = ctl_fd_timeout_ns(fd, member);
	/* Rule 3: suspected, yet nothing was lost and it is back before the
	 * bound: it was late, so wait longer for it next time. */
	if (silence_ns > timeout_ns && !m->missed &&
	    ctl_elapsed_ns(m->last_heard_ns, now_ns) <= cfg->timeout_max_ns) {
		m->backoff_ns = silence_ns < cfg->timeout_max_ns / 2 ?
					2 * silence_ns :
					cfg->timeout_max_ns;
		m->backoff_since_ns = now_ns;
		m->false_suspicions++;
	} else {
		ctl_fd_backoff_decay(cfg, m, now_ns);
	}
	m->missed = false;
	/* A gap beyond timeout_max is a failure, not jitter: cap it so that one
	 * outage cannot inflate the estimate for long after the member is back.
	 * Our own stalls are not the member's jitter either (rule 2). */
	uint64_t sample_ns = silence_ns;
	if (sample_ns > cfg->timeout_max_ns)
		sample_ns = cfg->timeout_max_ns;
	ctl_fd_sample(m, sample_ns);
	m->stalled_at_heard_ns = fd->stalled_ns;
	/* last_heard never moves back, so a clock step backwards cannot make a
	 * member look silent for longer than it was. */
	if (now_ns > m->last_heard_ns)
		m->last_heard_ns = now_ns;
}

void ctl_fd_missed(struct ctl_fd *fd, uint8_t member)
{
	CTL_ASSERT(fd != NULL);
	if (!ctl_fd_member_valid(fd, member) || member == fd->cfg.self_id)
		return;
	fd->members[member].missed = true;
}

uint64_t ctl_fd_timeout_ns(const struct ctl_fd *fd, uint8_t member)
{
	CTL_ASSERT(fd != NULL);
	const struct ctl_fd_config *cfg = &fd->cfg;
	if (!ctl_fd_member_valid(fd, member) || !fd->members[member].heard_any)
		return cfg->timeout_max_ns;
	const struct ctl_fd_member *m = &fd->members[member];
	uint64_t timeout_ns = m->interarrival_mean_ns +
			      8 * m->interarrival_dev_ns +
			      2 * cfg->heartbeat_interval_ns;
	if (timeout_ns < m->backoff_ns)
		timeout_ns = m->backoff_ns;
	if (timeout_ns < cfg->timeout_min_ns)
		timeout_ns = cfg->timeout_min_ns;
	if (timeout_ns > cfg->timeout_max_ns)
		timeout_ns = cfg->timeout_max_ns;
	return timeout_ns;
}

bool ctl_fd_alive(const struct ctl_fd *fd, uint8_t member, uint64_t now_ns)
{
	CTL_ASSERT(fd != NULL);
	if (!ctl_fd_member_valid(fd, member))
		return false;
	if (member == fd->cfg.self_id)
		return true;
	const struct ctl_fd_member *m = &fd->members[member];
	if (!m->heard_any) {
		/* Grace at start: peers boot at different times. */
		return ctl_elapsed_ns(fd->init_ns, now_ns) <=
		       fd->cfg.timeout_max_ns;
	}
	/* Rule 4 bounds rules 2 and 3. */
	if (ctl_elapsed_ns(m->last_heard_ns, now_ns) > fd->cfg.timeout_max_ns)
		return false;
	return ctl_fd_silence_ns(fd, m, now_ns) <=
	       ctl_fd_timeout_ns(fd, member);
}

uint32_t ctl_fd_alive_mask(const struct ctl_fd *fd, uint64_t now_ns)
{
	CTL_ASSERT(fd != NULL);
	uint32_t mask = 0;
	for (uint8_t i = 0; i < fd->cfg.member_count; i++) {
		if (ctl_fd_alive(fd, i, now_ns))
			mask |= 1u << i;
	}
	CTL_ASSERT((mask >> fd->cfg.member_count) == 0);
	CTL_ASSERT(mask & (1u << fd->cfg.self_id));
	return mask;
}

uint8_t ctl_mask_count(uint32_t mask)
{
	uint8_t count = 0;
	for (; mask != 0; mask &= mask - 1)
		count++;
	return count;
}

uint8_t ctl_majority(uint8_t member_count)
{
	return (uint8_t)(member_count / 2 + 1);
}
