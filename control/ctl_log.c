/* bypaxd's event log through DPDK's log (ctl_log.h). */
#include "ctl_log.h"

#include <stdio.h>
#include <time.h>

#include "bypax/consensus.h"

RTE_LOG_REGISTER(ctl_logtype_paxos, bypax.paxos, INFO);
RTE_LOG_REGISTER(ctl_logtype_ctl, bypax.ctl, INFO);
RTE_LOG_REGISTER(ctl_logtype_dp, bypax.dp, INFO);

static const char *const type_names[CTL_LOG_TYPES] = {
	[CTL_LOG_PAXOS] = "bypax.paxos",
	[CTL_LOG_CTL] = "bypax.ctl",
	[CTL_LOG_DP] = "bypax.dp",
};

static int logtype(enum ctl_log_type t)
{
	switch (t) {
	case CTL_LOG_PAXOS:
		return ctl_logtype_paxos;
	case CTL_LOG_CTL:
		return ctl_logtype_ctl;
	default:
		return ctl_logtype_dp;
	}
}

/* The names of --log-level (rte_log.h: RTE_LOG_ERR is 4). */
static const char *level_name(uint32_t level)
{
	static const char *const names[] = { "emerg",  "emerg", "alert",
					     "crit",   "error", "warning",
					     "notice", "info",	"debug" };
	return level < sizeof(names) / sizeof(names[0]) ? names[level] :
							  "debug";
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool ctl_log_enabled(enum ctl_log_type t, uint32_t level)
{
	return rte_log_can_log((uint32_t)logtype(t), level);
}

void ctl_log_format(char *line, size_t cap, enum ctl_log_type t, uint32_t level,
		    int replica, const char *event,
		    const struct bpx_log_field *f, size_t n)
{
	struct bpx_log_head h = {
		.wall_ns = clock_ns(CLOCK_REALTIME),
		.mono_ns = clock_ns(CLOCK_MONOTONIC),
		.level = level_name(level),
		.type = type_names[t],
		.replica = replica,
		.event = event,
	};
	bpx_logfmt(line, cap, &h, f, n);
}

void ctl_log_write(enum ctl_log_type t, uint32_t level, const char *line)
{
	rte_log(level, (uint32_t)logtype(t), "%s\n", line);
}

void ctl_log_event(enum ctl_log_type t, uint32_t level, int replica,
		   const char *event, const struct bpx_log_field *f, size_t n)
{
	if (!ctl_log_enabled(t, level))
		return;
	char line[CTL_LOG_LINE_BYTES];
	ctl_log_format(line, sizeof(line), t, level, replica, event, f, n);
	ctl_log_write(t, level, line);
}

void ctl_log_ballot(uint64_t ballot, char *buf, size_t cap)
{
	snprintf(buf, cap, "%llu.%u",
		 (unsigned long long)px_ballot_round(ballot),
		 (unsigned)px_ballot_owner(ballot));
}

void ctl_log_addr(uint32_t ip, uint16_t port, char *buf, size_t cap)
{
	snprintf(buf, cap, "%u.%u.%u.%u:%u", ip >> 24, (ip >> 16) & 255,
		 (ip >> 8) & 255, ip & 255, port);
}

void ctl_log_mask(uint32_t mask, char *buf, size_t cap)
{
	size_t len = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < 32 && len + 4 < cap; i++)
		if (mask & (1u << i))
			len += (size_t)snprintf(buf + len, cap - len, "%s%u",
						len ? "," : "", i);
}
