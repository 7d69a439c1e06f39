/* The chaos history format (history.h): names, values, and one line's
 * formatting and parsing. */
#include "history.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "bypax/errors.h"
#include "bypax/kv.h"

_Static_assert((int)CH_GET == (int)BPX_KV_GET &&
		       (int)CH_PUT == (int)BPX_KV_PUT &&
		       (int)CH_DEL == (int)BPX_KV_DEL &&
		       (int)CH_CAS == (int)BPX_KV_CAS,
	       "a history's kind is the KV op");

#define FIELDS_MAX 16u
#define VALUE_MAX (UINT64_C(1) << 63) /* values are below it */

const char *ch_kind_name(uint8_t kind)
{
	static const char *const names[] = { "?", "get", "put", "del", "cas" };
	return kind <= CH_CAS ? names[kind] : "?";
}

const char *ch_result_name(uint8_t result)
{
	static const char *const names[] = { "?",	 "ok",	   "notfound",
					     "mismatch", "failed", "unknown" };
	return result <= CH_UNKNOWN ? names[result] : "?";
}

const char *ch_error_name(int err)
{
#define CH_ERROR_NAME(name, value, text) [value] = #name,
	static const char *const names[] = { BPX_ERROR_LIST(CH_ERROR_NAME) };
#undef CH_ERROR_NAME
	unsigned e = err < 0 ? (unsigned)-err : (unsigned)err;
	if (e == 0)
		return "-";
	if (e >= sizeof(names) / sizeof(names[0]) || names[e] == NULL)
		return "E?";
	return names[e] + strlen("BPX_");
}

static bool key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool ch_key_valid(const char *key)
{
	size_t n = strlen(key);
	if (n < 1 || n > CH_KEY_BYTES_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!key_char(key[i]))
			return false;
	return true;
}

bool ch_key_write_once(const char *key)
{
	return key[0] == 'w';
}

/* Canonical decimal of a u64: digits only, no leading zero. */
static int parse_u64(const char *s, size_t len, uint64_t *v)
{
	uint64_t x = 0;
	if (len == 0 || len > CH_VALUE_DIGITS_MAX || (s[0] == '0' && len > 1))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

int ch_value_parse(const void *bytes, size_t len, uint64_t *v)
{
	uint64_t x;
	if (parse_u64(bytes, len, &x) != 0 || x == 0 || x >= VALUE_MAX)
		return -1;
	*v = x;
	return 0;
}

size_t ch_value_format(uint64_t v, char *buf)
{
	CH_ASSERT(v != 0 && v < VALUE_MAX);
	int n = snprintf(buf, CH_VALUE_DIGITS_MAX + 1, "%" PRIu64, v);
	CH_ASSERT(n > 0 && (unsigned)n <= CH_VALUE_DIGITS_MAX);
	return (size_t)n;
}

/* ---- Formatting ---- */

/* "-" for 0, else the decimal; buf holds CH_VALUE_DIGITS_MAX + 1. */
static const char *value_text(uint64_t v, char *buf)
{
	if (v == 0)
		return "-";
	if (v == CH_BAD_VALUE)
		return "bad";
	snprintf(buf, CH_VALUE_DIGITS_MAX + 1, "%" PRIu64, v);
	return buf;
}

/* What every line checks of an op it writes: the shape kinds allow. */
static void assert_op_shape(const struct ch_op *op)
{
	CH_ASSERT(op->kind >= CH_GET && op->kind <= CH_CAS);
	CH_ASSERT(ch_key_valid(op->key));
	CH_ASSERT((op->kind == CH_PUT || op->kind == CH_CAS) == (op->arg != 0));
	CH_ASSERT((op->kind == CH_CAS) == (op->arg2 != 0));
	CH_ASSERT(op->arg < VALUE_MAX && op->arg2 < VALUE_MAX);
}

int ch_format_call(char *buf, size_t cap, const struct ch_op *op)
{
	char a[CH_VALUE_DIGITS_MAX + 1], b[CH_VALUE_DIGITS_MAX + 1];
	assert_op_shape(op);
	int n = snprintf(buf, cap,
			 "C %" PRIu64 " %" PRIu32 " %" PRIu64 " %s %s %s %s\n",
			 op->id, op->client, op->call_ns,
			 ch_kind_name(op->kind), op->key,
			 value_text(op->arg, a), value_text(op->arg2, b));
	CH_ASSERT(n > 0 && (size_t)n < cap);
	return n;
}

int ch_format_op(char *buf, size_t cap, const struct ch_op *op)
{
	char a[CH_VALUE_DIGITS_MAX + 1], b[CH_VALUE_DIGITS_MAX + 1];
	char o[CH_VALUE_DIGITS_MAX + 1], r[CH_VALUE_DIGITS_MAX + 1];
	assert_op_shape(op);
	CH_ASSERT(op->result >= CH_OK && op->result <= CH_UNKNOWN);
	CH_ASSERT((op->result == CH_UNKNOWN) == (op->return_ns == CH_NEVER));
	CH_ASSERT(op->end_ns >= op->call_ns);
	if (op->return_ns != CH_NEVER)
		snprintf(r, sizeof(r), "%" PRIu64, op->return_ns);
	int n = snprintf(buf, cap,
			 "O %" PRIu64 " %" PRIu32 " %" PRIu64 " %s %" PRIu64
			 " %s %s %s %s %s %s %s\n",
			 op->id, op->client, op->call_ns,
			 op->return_ns == CH_NEVER ? "never" : r, op->end_ns,
			 ch_kind_name(op->kind), op->key,
			 value_text(op->arg, a), value_text(op->arg2, b),
			 ch_result_name(op->result), value_text(op->out, o),
			 op->error[0] != '\0' ? op->error : "-");
	CH_ASSERT(n > 0 && (size_t)n < cap);
	return n;
}

/* ---- Parsing ---- */

struct fields {
	size_t count;
	const char *at[FIELDS_MAX];
	size_t len[FIELDS_MAX];
	char copy[CH_LINE_BYTES_MAX];
};

__attribute__((format(printf, 3, 4))) static int
parse_error(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
	return -1;
}

/* Splits at spaces and tabs into NUL-terminated fields. */
static int split(const char *line, struct fields *f, char *err, size_t err_len)
{
	size_t n = strlen(line);
	if (n >= sizeof(f->copy))
		return parse_error(err, err_len,
				   "line of %zu bytes: at most %u", n,
				   CH_LINE_BYTES_MAX - 1);
	memcpy(f->copy, line, n + 1);
	f->count = 0;
	char *save = NULL;
	for (char *t = strtok_r(f->copy, " \t\r", &save); t != NULL;
	     t = strtok_r(NULL, " \t\r", &save)) {
		if (f->count == FIELDS_MAX)
			return parse_error(err, err_len, "more than %u fields",
					   FIELDS_MAX);
		f->at[f->count] = t;
		f->len[f->count++] = strlen(t);
	}
	return 0;
}

static int field_u64(const struct fields *f, size_t i, const char *name,
		     uint64_t *v, char *err, size_t err_len)
{
	if (parse_u64(f->at[i], f->len[i], v) != 0)
		return parse_error(err, err_len,
				   "%s '%.40s': expected a decimal u64", name,
				   f->at[i]);
	return 0;
}

static int field_kind(const char *s, uint8_t *kind, char *err, size_t err_len)
{
	for (uint8_t k = CH_GET; k <= CH_CAS; k++) {
		if (strcmp(s, ch_kind_name(k)) == 0) {
			*kind = k;
			return 0;
		}
	}
	return parse_error(err, err_len,
			   "kind '%.40s': expected get, put, del or cas", s);
}

static int field_result(const char *s, uint8_t *result, char *err,
			size_t err_len)
{
	for (uint8_t r = CH_OK; r <= CH_UNKNOWN; r++) {
		if (strcmp(s, ch_result_name(r)) == 0) {
			*result = r;
			return 0;
		}
	}
	return parse_error(err, err_len,
			   "result '%.40s': expected ok, notfound, mismatch, "
			   "failed or unknown",
			   s);
}

/* '-' (0), or a value; with bad_ok, 'bad' too (CH_BAD_VALUE). */
static int field_value(const struct fields *f, size_t i, const char *name,
		       bool bad_ok, uint64_t *v, char *err, size_t err_len)
{
	if (strcmp(f->at[i], "-") == 0) {
		*v = 0;
		return 0;
	}
	if (bad_ok && strcmp(f->at[i], "bad") == 0) {
		*v = CH_BAD_VALUE;
		return 0;
	}
	if (ch_value_parse(f->at[i], f->len[i], v) != 0)
		return parse_error(err, err_len,
				   "%s '%.40s': expected '-' or a value "
				   "1..2^63-1 in canonical decimal",
				   name, f->at[i]);
	return 0;
}

/* id client call_ns (fields 1..3), and kind key arg arg2 from field k. */
static int parse_op_common(const struct fields *f, size_t k, struct ch_op *op,
			   char *err, size_t err_len)
{
	uint64_t client = 0; /* set by field_u64; -O3 cannot see it (release build) */
	if (field_u64(f, 1, "id", &op->id, err, err_len) != 0 ||
	    field_u64(f, 2, "client", &client, err, err_len) != 0 ||
	    field_u64(f, 3, "call_ns", &op->call_ns, err, err_len) != 0 ||
	    field_kind(f->at[k], &op->kind, err, err_len) != 0)
		return -1;
	if (client > UINT32_MAX)
		return parse_error(err, err_len,
				   "client %" PRIu64 ": above "
				   "2^32-1",
				   client);
	op->client = (uint32_t)client;
	if (!ch_key_valid(f->at[k + 1]))
		return parse_error(err, err_len,
				   "key '%.70s': expected 1..%u bytes of "
				   "[A-Za-z0-9._-]",
				   f->at[k + 1], CH_KEY_BYTES_MAX);
	memcpy(op->key, f->at[k + 1], f->len[k + 1] + 1);
	if (field_value(f, k + 2, "arg", false, &op->arg, err, err_len) != 0 ||
	    field_value(f, k + 3, "arg2", false, &op->arg2, err, err_len) != 0)
		return -1;
	bool wants_arg = op->kind == CH_PUT || op->kind == CH_CAS;
	if (wants_arg != (op->arg != 0) ||
	    (op->kind == CH_CAS) != (op->arg2 != 0))
		return parse_error(err, err_len,
				   "%s takes %s: arg '%s' arg2 '%s'",
				   ch_kind_name(op->kind),
				   op->kind == CH_CAS ? "arg and arg2" :
				   op->kind == CH_PUT ? "arg only" :
							"neither arg nor arg2",
				   f->at[k + 2], f->at[k + 3]);
	return 0;
}

/* The results and outs each kind can have (history.h). */
static int check_result(const struct ch_op *op, char *err, size_t err_len)
{
	bool definite = op->result != CH_UNKNOWN;
	if (definite == (op->return_ns == CH_NEVER))
		return parse_error(err, err_len,
				   "result %s with return_ns %s: unknown goes "
				   "with 'never' and only with it",
				   ch_result_name(op->result),
				   op->return_ns == CH_NEVER ? "never" : "set");
	if (op->return_ns != CH_NEVER && op->return_ns < op->call_ns)
		return parse_error(err, err_len,
				   "return_ns %" PRIu64
				   " before call_ns %" PRIu64,
				   op->return_ns, op->call_ns);
	if (op->return_ns != CH_NEVER && op->end_ns < op->return_ns)
		return parse_error(err, err_len,
				   "end_ns %" PRIu64
				   " before return_ns %" PRIu64,
				   op->end_ns, op->return_ns);
	if (op->end_ns < op->call_ns)
		return parse_error(err, err_len,
				   "end_ns %" PRIu64 " before call_ns %" PRIu64,
				   op->end_ns, op->call_ns);
	if ((op->result == CH_MISMATCH && op->kind != CH_CAS) ||
	    (op->result == CH_NOTFOUND && op->kind == CH_PUT))
		return parse_error(err, err_len, "%s cannot end %s",
				   ch_kind_name(op->kind),
				   ch_result_name(op->result));
	bool has_out = op->kind != CH_PUT &&
		       (op->result == CH_OK || op->result == CH_MISMATCH);
	if (!has_out && op->out != 0)
		return parse_error(err, err_len, "%s %s has no out value",
				   ch_kind_name(op->kind),
				   ch_result_name(op->result));
	if (has_out && op->out == 0)
		return parse_error(err, err_len, "%s %s needs an out value",
				   ch_kind_name(op->kind),
				   ch_result_name(op->result));
	return 0;
}

static int parse_error_field(const struct fields *f, size_t i, char *out,
			     char *err, size_t err_len)
{
	const char *s = f->at[i];
	if (strcmp(s, "-") == 0) {
		out[0] = '\0';
		return 0;
	}
	bool ok = f->len[i] >= 1 && f->len[i] <= CH_ERROR_BYTES_MAX;
	for (size_t k = 0; ok && k < f->len[i]; k++)
		ok = (s[k] >= 'A' && s[k] <= 'Z') || s[k] == '?';
	if (!ok)
		return parse_error(err, err_len,
				   "error '%.40s': expected '-' or a name like "
				   "ETIMEDOUT",
				   s);
	memcpy(out, s, f->len[i] + 1);
	return 0;
}

/* O id client call_ns return_ns end_ns kind key arg arg2 result out error */
static int parse_op(const struct fields *f, struct ch_op *op, char *err,
		    size_t err_len)
{
	if (parse_op_common(f, 6, op, err, err_len) != 0)
		return -1;
	if (strcmp(f->at[4], "never") == 0)
		op->return_ns = CH_NEVER;
	else if (field_u64(f, 4, "return_ns", &op->return_ns, err, err_len) !=
		 0)
		return -1;
	if (field_u64(f, 5, "end_ns", &op->end_ns, err, err_len) != 0 ||
	    field_result(f->at[10], &op->result, err, err_len) != 0 ||
	    field_value(f, 11, "out", true, &op->out, err, err_len) != 0 ||
	    parse_error_field(f, 12, op->error, err, err_len) != 0)
		return -1;
	return check_result(op, err, err_len);
}

static int parse_marker(const struct fields *f, struct ch_line *out, char *err,
			size_t err_len)
{
	if (f->count != 2)
		return parse_error(err, err_len,
				   "%s line: %zu fields, "
				   "expected 2 (%s <ns>)",
				   f->at[0], f->count, f->at[0]);
	out->type = f->at[0][0] == 'S' ? CH_LINE_START :
		    f->at[0][0] == 'E' ? CH_LINE_END :
					 CH_LINE_READBACK;
	return field_u64(f, 1, "ns", &out->ns, err, err_len);
}

int ch_parse_line(const char *line, struct ch_line *out, char *err,
		  size_t err_len)
{
	static struct fields f; /* big; the tools are single-threaded */
	memset(out, 0, sizeof(*out));
	const char *first = line + strspn(line, " \t\r");
	if (*first == '#') { /* free text, however many words */
		out->type = CH_LINE_COMMENT;
		return 0;
	}
	if (split(line, &f, err, err_len) != 0)
		return -1;
	if (f.count == 0) {
		out->type = CH_LINE_COMMENT;
		return 0;
	}
	const char *t = f.at[0];
	if (strcmp(t, "S") == 0 || strcmp(t, "E") == 0 || strcmp(t, "B") == 0)
		return parse_marker(&f, out, err, err_len);
	if (strcmp(t, "C") == 0) {
		if (f.count != 8)
			return parse_error(err, err_len,
					   "C line: %zu fields, expected 8",
					   f.count);
		out->type = CH_LINE_CALL;
		out->op.return_ns = CH_NEVER;
		out->op.end_ns = CH_NEVER;
		return parse_op_common(&f, 4, &out->op, err, err_len);
	}
	if (strcmp(t, "O") == 0) {
		if (f.count != 13)
			return parse_error(err, err_len,
					   "O line: %zu fields, expected 13",
					   f.count);
		out->type = CH_LINE_OP;
		return parse_op(&f, &out->op, err, err_len);
	}
	return parse_error(err, err_len,
			   "line type '%.20s': expected #, S, C, O, E or B", t);
}

/* ---- Reading a file ---- */

/* One line of f into buf (without its newline). Returns 1 for a line, 0
 * at the end, -1 for a line too long; *complete says whether it ended in
 * a newline. */
static int read_line(FILE *f, char *buf, size_t cap, bool *complete)
{
	if (fgets(buf, (int)cap, f) == NULL)
		return 0;
	size_t n = strlen(buf);
	*complete = n > 0 && buf[n - 1] == '\n';
	if (*complete) {
		buf[n - 1] = '\0';
		return 1;
	}
	if (n + 1 == cap)
		return -1; /* the line did not fit */
	return 1;	   /* the file's last bytes */
}

static int read_lines(FILE *f, const char *path,
		      int (*fn)(void *ctx, const struct ch_line *l,
				size_t lineno, char *err, size_t err_len),
		      void *ctx, char *err, size_t err_len)
{
	char buf[CH_LINE_BYTES_MAX + 1], why[256];
	struct ch_line line;
	bool complete;
	int got;
	for (size_t lineno = 2;
	     (got = read_line(f, buf, sizeof(buf), &complete)) != 0; lineno++) {
		if (got < 0)
			return parse_error(err, err_len,
					   "%s:%zu: line over %u bytes", path,
					   lineno, CH_LINE_BYTES_MAX - 1);
		if (!complete) {
			/* A run killed mid-write: the op's C line (if this
			 * was one) never reached the file before its send. */
			fprintf(stderr,
				"%s:%zu: last line has no newline (a killed "
				"run?): skipped\n",
				path, lineno);
			return 0;
		}
		if (ch_parse_line(buf, &line, why, sizeof(why)) != 0)
			return parse_error(err, err_len, "%s:%zu: %s", path,
					   lineno, why);
		if (fn(ctx, &line, lineno, why, sizeof(why)) != 0)
			return parse_error(err, err_len, "%s:%zu: %s", path,
					   lineno, why);
	}
	if (ferror(f))
		return parse_error(err, err_len, "%s: read error", path);
	return 0;
}

int ch_read_file(const char *path,
		 int (*fn)(void *ctx, const struct ch_line *l, size_t lineno,
			   char *err, size_t err_len),
		 void *ctx, char *err, size_t err_len)
{
	char first[sizeof(CH_MAGIC) + 1];
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return parse_error(err, err_len, "%s: cannot open: %s", path,
				   strerror(errno));
	bool complete = false;
	int rc;
	if (read_line(f, first, sizeof(first), &complete) != 1 || !complete ||
	    strcmp(first, CH_MAGIC) != 0)
		rc = parse_error(err, err_len,
				 "%s:1: not a chaos history: the first line "
				 "must be '%s'",
				 path, CH_MAGIC);
	else
		rc = read_lines(f, path, fn, ctx, err, err_len);
	fclose(f);
	return rc;
}

int chaos_usage_error(const char *prog, int status, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help'.\n", prog);
	return status;
}
