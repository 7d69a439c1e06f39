/* bypax control plane: a pure rate limiter for log lines about traffic
 * that should not be there (another cluster's heartbeats or frames, admin
 * clients out of their budget).
 *
 * At most one line per source per interval; each line says how many events
 * it stands for (this one and those held back since the source's last
 * line), so nothing is lost but the detail. Deterministic like fd.h: the
 * caller passes the time in, and the table is sized at compile time, so a
 * flood from many sources costs no memory and at most
 * CTL_RATELIMIT_SOURCES + 1 lines per interval.
 */
#ifndef BYPAX_CONTROL_RATELIMIT_H
#define BYPAX_CONTROL_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "fd.h" /* CTL_ASSERT */

#ifdef __cplusplus
extern "C" {
#endif

#define CTL_RATELIMIT_SOURCES 8u
/* The key of a line about sources that found no entry of their own. */
#define CTL_RATELIMIT_OTHERS UINT64_MAX

struct ctl_ratelimit_entry {
	uint64_t key;       /* the caller's name for the source */
	uint64_t note;      /* the caller's, from the source's latest event */
	uint64_t logged_ns; /* when its last line was due */
	uint64_t held;      /* events since then that no line reported */
	bool used;
};

struct ctl_ratelimit {
	uint64_t interval_ns;
	struct ctl_ratelimit_entry entry[CTL_RATELIMIT_SOURCES];
	struct ctl_ratelimit_entry others; /* key CTL_RATELIMIT_OTHERS */
};

/* What a due line reports: whose events, the latest note, how many. */
struct ctl_ratelimit_line {
	uint64_t key;
	uint64_t note;
	uint64_t count;
};

/* interval_ns > 0. */
void ctl_ratelimit_init(struct ctl_ratelimit *rl, uint64_t interval_ns);

/* n >= 1 events from source key (not CTL_RATELIMIT_OTHERS) at now_ns,
 * with the caller's note. Returns true when a line is due now, and fills
 * *line: the first event of a source, or the first one an interval or
 * more after its last line. Else the events are held for a later line
 * and it returns false. Times must not go backwards. */
bool ctl_ratelimit_event(struct ctl_ratelimit *rl, uint64_t key,
			 uint64_t note, uint64_t n, uint64_t now_ns,
			 struct ctl_ratelimit_line *line);

/* For events held back by a source that then went quiet: returns true and
 * fills *line for one source whose interval is over and that has events
 * held; false when there is none. Call it on a tick, until false. */
bool ctl_ratelimit_due(struct ctl_ratelimit *rl, uint64_t now_ns,
		       struct ctl_ratelimit_line *line);

#ifdef __cplusplus
}
#endif
#endif
