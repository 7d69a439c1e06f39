/* Pure log-line rate limiter: see ratelimit.h. */
#include "ratelimit.h"

#include <stddef.h>
#include <string.h>

void ctl_ratelimit_init(struct ctl_ratelimit *rl, uint64_t interval_ns)
{
	CTL_ASSERT(rl != NULL);
	CTL_ASSERT(interval_ns > 0);
	memset(rl, 0, sizeof(*rl));
	rl->interval_ns = interval_ns;
	rl->others.key = CTL_RATELIMIT_OTHERS;
}

static bool interval_over(const struct ctl_ratelimit *rl,
			  const struct ctl_ratelimit_entry *e, uint64_t now_ns)
{
	CTL_ASSERT(now_ns >= e->logged_ns);
	return now_ns - e->logged_ns >= rl->interval_ns;
}

/* The source's entry; else a free one; else one whose line would be due
 * at its next event anyway, with nothing held (forgetting it loses
 * nothing); else NULL: the source shares the "others" entry. */
static struct ctl_ratelimit_entry *entry_for(struct ctl_ratelimit *rl,
					     uint64_t key, uint64_t now_ns)
{
	struct ctl_ratelimit_entry *spare = NULL;
	for (unsigned i = 0; i < CTL_RATELIMIT_SOURCES; i++) {
		struct ctl_ratelimit_entry *e = &rl->entry[i];
		if (e->used && e->key == key)
			return e;
		if (spare == NULL &&
		    (!e->used || (e->held == 0 && interval_over(rl, e, now_ns))))
			spare = e;
	}
	if (spare != NULL)
		*spare = (struct ctl_ratelimit_entry){ .key = key };
	return spare;
}

static void take_line(struct ctl_ratelimit_entry *e, uint64_t now_ns,
		      struct ctl_ratelimit_line *line)
{
	*line = (struct ctl_ratelimit_line){ .key = e->key,
					     .note = e->note,
					     .count = e->held };
	e->held = 0;
	e->logged_ns = now_ns;
}

bool ctl_ratelimit_event(struct ctl_ratelimit *rl, uint64_t key,
			 uint64_t note, uint64_t n, uint64_t now_ns,
			 struct ctl_ratelimit_line *line)
{
	CTL_ASSERT(rl != NULL && line != NULL);
	CTL_ASSERT(key != CTL_RATELIMIT_OTHERS && n > 0);
	struct ctl_ratelimit_entry *e = entry_for(rl, key, now_ns);
	if (e == NULL)
		e = &rl->others;
	bool first = !e->used;
	e->used = true;
	e->note = note;
	CTL_ASSERT(e->held + n > e->held); /* no wrap */
	e->held += n;
	if (!first && !interval_over(rl, e, now_ns))
		return false;
	take_line(e, now_ns, line);
	return true;
}

bool ctl_ratelimit_due(struct ctl_ratelimit *rl, uint64_t now_ns,
		       struct ctl_ratelimit_line *line)
{
	CTL_ASSERT(rl != NULL && line != NULL);
	for (unsigned i = 0; i <= CTL_RATELIMIT_SOURCES; i++) {
		struct ctl_ratelimit_entry *e =
			i < CTL_RATELIMIT_SOURCES ? &rl->entry[i] : &rl->others;
		if (e->used && e->held > 0 && interval_over(rl, e, now_ns)) {
			take_line(e, now_ns, line);
			return true;
		}
	}
	return false;
}
