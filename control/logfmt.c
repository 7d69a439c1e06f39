/* The logfmt line of one event (logfmt.h). */
#include "logfmt.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Room kept for " truncated=true mono=<20 digits>.<6 digits>". */
#define TAIL_BYTES 48u

bool bpx_logfmt_key_ok(const char *key)
{
	if (key == NULL || *key == '\0')
		return false;
	for (const char *p = key; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '_' || *p == '.'))
			return false;
	return true;
}

void bpx_logfmt_key_from_enum(const char *prefix, const char *name, char *out,
			      size_t cap)
{
	assert(cap > 0);
	size_t plen = strlen(prefix);
	if (strncmp(name, prefix, plen) == 0)
		name += plen;
	size_t i = 0;
	for (; name[i] != '\0' && i + 1 < cap; i++)
		out[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ?
					name[i] - 'A' + 'a' :
					name[i]);
	out[i] = '\0';
}

static bool needs_quotes(const char *v)
{
	if (*v == '\0')
		return true;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p <= ' ' || *p == '=' || *p == '"' || *p == '\\' ||
		    *p == 0x7f)
			return true;
	return false;
}

/* One byte of a quoted value, escaped as JSON would. */
static size_t put_escaped(char *buf, size_t len, size_t cap, unsigned char c)
{
	char esc[8];
	int n;
	if (c == '"' || c == '\\')
		n = snprintf(esc, sizeof(esc), "\\%c", c);
	else if (c == '\n')
		n = snprintf(esc, sizeof(esc), "\\n");
	else if (c == '\r')
		n = snprintf(esc, sizeof(esc), "\\r");
	else if (c == '\t')
		n = snprintf(esc, sizeof(esc), "\\t");
	else if (c < ' ' || c == 0x7f)
		n = snprintf(esc, sizeof(esc), "\\u%04x", c);
	else
		n = snprintf(esc, sizeof(esc), "%c", c);
	if (len + (size_t)n >= cap)
		return cap;
	memcpy(buf + len, esc, (size_t)n);
	buf[len + (size_t)n] = '\0';
	return len + (size_t)n;
}

size_t bpx_logfmt_value(char *buf, size_t len, size_t cap, const char *v)
{
	assert(len < cap);
	if (v == NULL)
		v = "";
	if (!needs_quotes(v)) {
		size_t n = strlen(v);
		if (len + n >= cap)
			return cap;
		memcpy(buf + len, v, n + 1);
		return len + n;
	}
	if (len + 1 >= cap)
		return cap;
	buf[len++] = '"';
	buf[len] = '\0';
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		len = put_escaped(buf, len, cap, *p);
		if (len == cap)
			return cap;
	}
	if (len + 1 >= cap)
		return cap;
	buf[len++] = '"';
	buf[len] = '\0';
	return len;
}

/* " key=value" at buf[len..cap); cap when it does not fit. */
static size_t put_field(char *buf, size_t len, size_t cap,
			const struct bpx_log_field *f)
{
	assert(bpx_logfmt_key_ok(f->key));
	int n = snprintf(buf + len, cap - len, " %s=", f->key);
	if (n < 0 || len + (size_t)n >= cap)
		return cap;
	len += (size_t)n;
	if (f->kind == BPX_LOG_STR)
		return bpx_logfmt_value(buf, len, cap, f->s);
	n = f->kind == BPX_LOG_U64 ?
		    snprintf(buf + len, cap - len, "%" PRIu64, f->u) :
		    snprintf(buf + len, cap - len, "%" PRId64, f->i);
	return n < 0 || len + (size_t)n >= cap ? cap : len + (size_t)n;
}

static size_t put_head(char *buf, size_t cap, const struct bpx_log_head *h)
{
	assert(bpx_logfmt_key_ok(h->level) && bpx_logfmt_key_ok(h->type) &&
	       bpx_logfmt_key_ok(h->event));
	time_t secs = (time_t)(h->wall_ns / 1000000000u);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char when[32];
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	char replica[24] = "";
	if (h->replica >= 0)
		snprintf(replica, sizeof(replica), " replica=%d", h->replica);
	int n = snprintf(buf, cap,
			 "ts=%s.%06" PRIu64 "Z level=%s type=%s%s "
			 "event=%s",
			 when, (h->wall_ns / 1000u) % 1000000u, h->level,
			 h->type, replica, h->event);
	/* The head is the program's own short words: it always fits. */
	assert(n > 0 && (size_t)n + TAIL_BYTES < cap);
	return (size_t)n;
}

size_t bpx_logfmt(char *buf, size_t cap, const struct bpx_log_head *h,
		  const struct bpx_log_field *f, size_t n)
{
	assert(buf != NULL && h != NULL && cap >= BPX_LOGFMT_MIN_BYTES);
	size_t len = put_head(buf, cap, h);
	size_t room = cap - TAIL_BYTES;
	bool truncated = false;
	for (size_t i = 0; i < n; i++) {
		size_t next = put_field(buf, len, room, &f[i]);
		if (next >= room) {
			truncated = true;
			buf[len] = '\0';
			break;
		}
		len = next;
	}
	int t = snprintf(buf + len, cap - len, "%s mono=%" PRIu64 ".%06" PRIu64,
			 truncated ? " truncated=true" : "",
			 h->mono_ns / 1000000000u,
			 (h->mono_ns / 1000u) % 1000000u);
	assert(t > 0 && len + (size_t)t < cap);
	return len + (size_t)t;
}
