/* The chaos history format: what bypax-chaos-client writes and
 * bypax-chaos-check reads (test code, no DPDK).
 *
 * A text file, one event per line, fields separated by one space; times are
 * CLOCK_MONOTONIC nanoseconds (the same clock on every process of the
 * machine, so the files of several clients and the harness's fault windows
 * compare directly):
 *
 *   # bypax-chaos-history 1        the first line, exactly
 *   # ...                          a comment (the client notes its options)
 *   S <ns>                         the run starts
 *   C <id> <client> <call_ns> <kind> <key> <arg> <arg2>
 *                                  an op is called: written (and flushed)
 *                                  BEFORE its request is sent, so a run
 *                                  killed at any moment has every op that
 *                                  may have taken effect
 *   O <id> <client> <call_ns> <return_ns> <end_ns> <kind> <key> <arg> <arg2>
 *     <result> <out> <error>       the op ended: one self-contained line
 *                                  (an O line needs no C line before it)
 *   E <ns>                         the run ends (absent when killed)
 *   B <ns>                         a read-back segment begins: the GETs
 *                                  after it, up to its E, read every key at
 *                                  the end (bypax-chaos-client --read-back)
 *
 *   id        u64, unique in the file; joins an O line to its C line
 *   client    u32, the session that called it (one op at a time each)
 *   kind      get put del cas
 *   key       1..64 bytes of [A-Za-z0-9._-]; keys starting with 'w' are
 *             write-once (one PUT, never overwritten nor deleted), others
 *             are hot keys
 *   arg       put: the value; cas: the expected value; '-' otherwise
 *   arg2      cas: the new value; '-' otherwise
 *   return_ns when the answer came (an acknowledgement), or 'never' when
 *             the outcome is unknown: the op may take effect at any time
 *             after its call, or never
 *   end_ns    when the client stopped waiting: return_ns, or the time it
 *             gave up on an unknown outcome
 *   result    ok        applied (get: read; cas: swapped)
 *             notfound  get/del/cas found the key absent (definite)
 *             mismatch  cas found another value (definite; out says which)
 *             failed    refused with no effect (store full, too big, bad
 *                       request, not sent): definite, the checker skips it
 *             unknown   timed out, STALE, EXPIRED, socket error, ...: an
 *                       outcome unknown, never a failure
 *   out       get: the value read; del, cas: the value held before; '-'
 *             for none or absent; 'bad' for a value that is not one of
 *             ours (not canonical decimal)
 *   error     the libbypax error (ETIMEDOUT, EFULL, ...), '-' for none
 *
 * A C line without an O line is an op whose outcome is unknown (killed
 * runs, ops abandoned at the end). Values are unique nonzero u64, stored in
 * the KV value as canonical decimal text (no sign, no leading zero), so a
 * CAS's byte comparison in sm/kv.c is the model's integer comparison.
 * A last line without its newline (a run killed mid-write) is ignored.
 */
#ifndef BYPAX_TESTS_CHAOS_HISTORY_H
#define BYPAX_TESTS_CHAOS_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Always on (STYLE.md): a broken invariant here is a bug in the tools. */
#define CH_ASSERT(x)                                                           \
	do {                                                                   \
		if (!(x)) {                                                    \
			fprintf(stderr, "%s:%d: assertion failed: %s\n",       \
				__FILE__, __LINE__, #x);                       \
			abort();                                               \
		}                                                              \
	} while (0)

#define CH_MAGIC "# bypax-chaos-history 1"
#define CH_NEVER UINT64_MAX
/* The out of a read that returned bytes no chaos client writes: a value
 * no write made, which the checker then reports. Our values stay below
 * 2^63, so this one is never written. */
#define CH_BAD_VALUE UINT64_MAX
#define CH_KEY_BYTES_MAX 64u
#define CH_ERROR_BYTES_MAX 23u
#define CH_LINE_BYTES_MAX 512u
#define CH_VALUE_DIGITS_MAX 20u

/* The numbering of enum bpx_kv_op and enum lc_kind (static asserts in
 * history.c and chaos_check.c). */
enum ch_kind {
	CH_GET = 1,
	CH_PUT,
	CH_DEL,
	CH_CAS
};

enum ch_result {
	CH_OK = 1,
	CH_NOTFOUND,
	CH_MISMATCH,
	CH_FAILED,
	CH_UNKNOWN,
};

enum ch_line_type {
	CH_LINE_COMMENT = 1, /* '#' or blank */
	CH_LINE_START,	     /* S */
	CH_LINE_END,	     /* E */
	CH_LINE_READBACK,    /* B */
	CH_LINE_CALL,	     /* C: result is 0, return/end CH_NEVER */
	CH_LINE_OP,	     /* O */
};

struct ch_op {
	uint64_t id;
	uint32_t client;
	uint8_t kind;	/* enum ch_kind */
	uint8_t result; /* enum ch_result; 0 in a C line */
	uint64_t call_ns;
	uint64_t return_ns; /* CH_NEVER: unknown outcome */
	uint64_t end_ns;
	uint64_t arg, arg2; /* 0: none ('-') */
	uint64_t out;	    /* 0: none or absent; CH_BAD_VALUE: 'bad' */
	char key[CH_KEY_BYTES_MAX + 1];
	char error[CH_ERROR_BYTES_MAX + 1]; /* "" for '-' */
};

struct ch_line {
	uint8_t type;	 /* enum ch_line_type */
	uint64_t ns;	 /* S, E, B */
	struct ch_op op; /* C, O */
};

const char *ch_kind_name(uint8_t kind);
const char *ch_result_name(uint8_t result);

/* The error's name without "BPX_" ("ETIMEDOUT"), for either sign; "-" for
 * 0; "E?" for a code errors.h does not list. */
const char *ch_error_name(int err);

/* Whether key is 1..64 bytes of [A-Za-z0-9._-]. */
bool ch_key_valid(const char *key);
/* Whether key names a write-once key (starts with 'w'). */
bool ch_key_write_once(const char *key);

/* A KV value as we write it: canonical decimal of a u64 in 1..2^63-1.
 * Returns 0 with *v set, or -1 for anything else (empty, a sign, a leading
 * zero, a non-digit, out of range). */
int ch_value_parse(const void *bytes, size_t len, uint64_t *v);

/* Formats v (nonzero, < 2^63) into buf (CH_VALUE_DIGITS_MAX + 1 bytes);
 * returns its length. */
size_t ch_value_format(uint64_t v, char *buf);

/* Formats a C or an O line (with its newline) into buf[0..cap). Returns
 * the length; asserts op is well formed and the line fits. */
int ch_format_call(char *buf, size_t cap, const struct ch_op *op);
int ch_format_op(char *buf, size_t cap, const struct ch_op *op);

/* Parses one line (without its newline). Returns 0, or -1 with the reason
 * in err, naming the field and its bad value. */
int ch_parse_line(const char *line, struct ch_line *out, char *err,
		  size_t err_len);

/* Reads the history at path line by line, calling fn for each line after
 * the magic first line (lineno counts from 1, the magic line included).
 * A last line without its newline is skipped with a note on stderr. fn
 * returns 0 to go on, else -1 with a message in err. Returns 0, or -1
 * with err naming the file and line: it cannot be read, its first line is
 * not CH_MAGIC, a line does not parse, or fn failed. */
int ch_read_file(const char *path,
		 int (*fn)(void *ctx, const struct ch_line *l, size_t lineno,
			   char *err, size_t err_len),
		 void *ctx, char *err, size_t err_len);

/* Prints "PROG: <message>" and the --help hint on stderr; returns status
 * (both tools' usage errors). */
int chaos_usage_error(const char *prog, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* BYPAX_TESTS_CHAOS_HISTORY_H */
