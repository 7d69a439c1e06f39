/* bypaxd's event log: logfmt lines (logfmt.h) through DPDK's log, with
 * registered types, so that the EAL's --log-level sets each one's level
 * (--log-level=bypax.ctl:debug; --log-level=bypax.*:warning).
 *
 *   bypax.paxos  the replica's consensus as the control plane sees it:
 *                leader and role changes, recovery, membership, steps down
 *   bypax.ctl    the control plane: suspicions, admin commands, transfers,
 *                snapshots streamed, another cluster's heartbeats, faults
 *   bypax.dp     the data plane: ports, counters (stats), snapshots sent
 *                and installed, another cluster's frames
 *
 * The control thread never writes: it formats a line (ctl_log_format,
 * clocks read when the event happens) and hands it to bypaxd's main
 * thread through a ring (ctl_daemon.c); the main thread writes it with
 * ctl_log_write. docs/deploy.md, Event log, lists events and fields. */
#ifndef BYPAX_CTL_LOG_H
#define BYPAX_CTL_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_log.h>

#include "logfmt.h"

enum ctl_log_type {
	CTL_LOG_PAXOS,
	CTL_LOG_CTL,
	CTL_LOG_DP,
	CTL_LOG_TYPES
};

/* The longest line: longer ones lose their last fields (logfmt.h). */
#define CTL_LOG_LINE_BYTES 512u

/* True when a line of type t at level (RTE_LOG_ERR .. RTE_LOG_DEBUG)
 * would be written: test it before formatting a line nobody reads. */
bool ctl_log_enabled(enum ctl_log_type t, uint32_t level);

/* The line of one event, the clocks read now (no newline). replica < 0:
 * none. */
void ctl_log_format(char *line, size_t cap, enum ctl_log_type t, uint32_t level,
		    int replica, const char *event,
		    const struct bpx_log_field *f, size_t n);

/* Writes a formatted line through rte_log (stderr, and syslog, as the EAL
 * set it up). May block: bypaxd's main thread only. */
void ctl_log_write(enum ctl_log_type t, uint32_t level, const char *line);

/* Formats and writes at once, if enabled (main thread only). */
void ctl_log_event(enum ctl_log_type t, uint32_t level, int replica,
		   const char *event, const struct bpx_log_field *f, size_t n);

/* "R.L" of a ballot (its round and the replica that owns it). */
void ctl_log_ballot(uint64_t ballot, char *buf, size_t cap);

/* "a.b.c.d:port". */
void ctl_log_addr(uint32_t ip, uint16_t port, char *buf, size_t cap);

/* "0,1,2" of a member bit set ("" for none). */
void ctl_log_mask(uint32_t mask, char *buf, size_t cap);

#endif
