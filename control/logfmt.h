/* One event line in logfmt (https://brandur.org/logfmt), the format of
 * every line bypaxd logs, so that a log shipper (Vector, Fluent Bit,
 * Promtail's logfmt stage, Go's go-logfmt) splits it into fields without
 * custom rules:
 *
 *   ts=2026-12-01T15:00:00.123456Z level=info type=bypax.ctl replica=1
 *   event=leader_change from=0 to=1 ballot=3.1 mono=123.456789
 *
 * Keys are [a-z0-9_.]; a value is written bare unless it is empty or holds
 * a space, '=', '"', '\' or a control character: then it is quoted, with
 * \" \\ \n \r \t and \u00XX escapes (as in JSON). The head (ts, level,
 * type, replica, event) comes first and mono= (CLOCK_MONOTONIC seconds,
 * to line up the events of the replicas of one host) always last, even
 * when the fields did not fit: then "truncated=true" stands before it.
 *
 * Pure: the clocks are read by the caller and passed in (docs/deploy.md,
 * Event log, lists the events and their fields). */
#ifndef BYPAX_LOGFMT_H
#define BYPAX_LOGFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bpx_log_kind {
	BPX_LOG_STR,
	BPX_LOG_U64,
	BPX_LOG_I64
};

struct bpx_log_field {
	const char *key;
	enum bpx_log_kind kind;
	const char *s; /* BPX_LOG_STR; NULL is written as "" */
	uint64_t u;
	int64_t i;
};

#define BPX_LF_STR(k, v)                                                       \
	((struct bpx_log_field){ .key = (k), .kind = BPX_LOG_STR, .s = (v) })
#define BPX_LF_U64(k, v)                                                       \
	((struct bpx_log_field){ .key = (k), .kind = BPX_LOG_U64, .u = (v) })
#define BPX_LF_I64(k, v)                                                       \
	((struct bpx_log_field){ .key = (k), .kind = BPX_LOG_I64, .i = (v) })

/* The fields of one event as the two arguments bpx_logfmt takes:
 * ctl_log_event(..., BPX_LOG_FIELDS(BPX_LF_U64("member", m))). */
#define BPX_LOG_FIELDS(...)                                                    \
	(const struct bpx_log_field[]){ __VA_ARGS__ },                         \
		sizeof((const struct bpx_log_field[]){ __VA_ARGS__ }) /        \
			sizeof(struct bpx_log_field)

struct bpx_log_head {
	uint64_t wall_ns;  /* CLOCK_REALTIME, ns since the epoch */
	uint64_t mono_ns;  /* CLOCK_MONOTONIC */
	const char *level; /* error, warning, notice, info, debug */
	const char *type;  /* bypax.ctl, bypax.paxos, bypax.dp */
	int replica;	   /* the member id; < 0: none (not written) */
	const char *event; /* a key-like name: leader_change */
};

/* The smallest cap bpx_logfmt takes: the head, truncated=true and mono. */
#define BPX_LOGFMT_MIN_BYTES 192u

/* Writes the line for h and fields f[0..n) to buf (NUL-terminated, no
 * newline). Fields that do not fit are left out, from the first that
 * does not, and "truncated=true" is written instead. Every key must
 * satisfy bpx_logfmt_key_ok (asserted: keys are the program's, not
 * input). Returns the line's length (< cap). cap >= BPX_LOGFMT_MIN_BYTES,
 * and h's strings are keys-like and short (asserted). */
size_t bpx_logfmt(char *buf, size_t cap, const struct bpx_log_head *h,
		  const struct bpx_log_field *f, size_t n);

/* True for a non-empty key of [a-z0-9_.] only. */
bool bpx_logfmt_key_ok(const char *key);

/* A key from an X-macro enum name: "PX_DROP_STALE_BALLOT" less the prefix
 * "PX_DROP_", lowercased: "stale_ballot". Written to out (NUL-terminated,
 * cut at cap - 1). A name without the prefix is lowercased whole. */
void bpx_logfmt_key_from_enum(const char *prefix, const char *name, char *out,
			      size_t cap);

/* v as a value, quoted and escaped if it needs to be, appended at
 * buf[len..cap). Returns the new length, or cap when it does not fit (then
 * buf[len..] is unspecified but NUL-terminated within cap). */
size_t bpx_logfmt_value(char *buf, size_t len, size_t cap, const char *v);

#endif
