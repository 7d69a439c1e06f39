/* bypax-chaos-check: checks the histories of bypax-chaos-client runs.
 *
 *  (a) Linearizability, key by key, with tests/lib/lincheck.h. Each op of
 *      the history (history.h) becomes an lc_op:
 *        get ok v / notfound      LC_GET, out v / 0 (absent)
 *        put ok                   LC_PUT arg
 *        del ok v / notfound      LC_DEL, out v (the value it removed) / 0
 *        cas ok                   LC_CAS arg arg2, out_ok 1, out = previous
 *        cas mismatch v           LC_CAS, out_ok 0, out v (sm/kv.c replies
 *                                 with the value it holds)
 *        cas notfound             LC_CAS, out_ok 0, out 0: the model's
 *                                 "state == 0 never swaps" is sm/kv.c's
 *                                 NOT_FOUND
 *        unknown put/del/cas      the same, return_ns = LC_NEVER and
 *                                 out_unknown: it may take effect at any
 *                                 time after its call, or never
 *        unknown get, failed      left out: they change nothing, and an
 *                                 unanswered get says nothing
 *      A read of a value none of ours ('bad') reads CH_BAD_VALUE, which no
 *      write made: a violation.
 *  (b) Lost writes: every acknowledged put of a write-once key must be
 *      what the final read of that key found: the read-back segments of
 *      the histories (B ... E), or --final.
 *  (c) Gaps: for each fault window of --faults, the longest interval
 *      without an acknowledgement (any answered op outside read-back) that
 *      overlaps it (gaps.h); then p50, p99 and max over the faults.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gaps.h"
#include "history.h"
#include "lincheck.h"

#ifndef BPX_VERSION
#define BPX_VERSION "unknown"
#endif

_Static_assert((int)CH_GET == (int)LC_GET && (int)CH_PUT == (int)LC_PUT &&
		       (int)CH_DEL == (int)LC_DEL && (int)CH_CAS == (int)LC_CAS,
	       "a history's kind is the checker's");

#define EXIT_BAD 1	    /* not linearizable, or a lost write */
#define EXIT_USAGE 2	    /* bad arguments or an unreadable file */
#define EXIT_INCONCLUSIVE 3 /* budget spent, or a write never read back */

#define BUDGET_DEFAULT 1000000ull
#define REPORT_MAX 10u /* violations and lost writes named in full */
#define NS_PER_MS 1e6

static const char usage_text[] =
	"usage: bypax-chaos-check [OPTIONS] HISTORY...\n"
	"\n"
	"Checks bypax-chaos-client histories (format: tests/chaos/history.h):\n"
	"linearizability of every key, acknowledged write-once puts against\n"
	"the final values (lost writes), and the acknowledgement gaps during\n"
	"each fault.\n"
	"\n"
	"Options:\n"
	"  -f, --final FILE    final values, one 'KEY VALUE' a line ('-' for\n"
	"                      absent); adds to (and overrides) the histories'\n"
	"                      read-back segments\n"
	"  -F, --faults FILE   fault windows, one '<start_ns> <end_ns> <name>'\n"
	"                      a line (CLOCK_MONOTONIC ns; the name is the\n"
	"                      rest of the line; '#' starts a comment line)\n"
	"  -b, --budget N      states the search may visit per key (default\n"
	"                      1000000, about 150 MB; 0: no bound)\n"
	"  -v, --verbose       a line per key\n"
	"  -h, --help          this help\n"
	"  -V, --version       the version\n"
	"\n"
	"Prints a line per fault (the longest interval with no acknowledgement\n"
	"that overlaps its window; the run's start and end count as\n"
	"acknowledgements):\n"
	"  chaos-check: fault gap_ms=G start_ns=S end_ns=E window_ms=W\n"
	"    from_ns=A to_ns=B name=NAME\n"
	"then one summary line (faults: those that overlap the run, and\n"
	"p50/p99/max over their gaps; faults_outside: the others):\n"
	"  chaos-check: files=N ops=N keys=N verdict=V violations=N\n"
	"    lost_writes=N unread=N unknown=N failed=N states=N faults=N\n"
	"    faults_outside=N\n"
	"    gap_ms p50=G p99=G max=G max_gap_ms=G\n"
	"verdict: linearizable, violation, or inconclusive (a key's budget\n"
	"ran out). lost_writes is 'unchecked' when no final values were given\n"
	"(no read-back segment, no --final); unread counts acknowledged\n"
	"write-once puts whose key has no final value.\n"
	"\n"
	"Exit status: 0 linearizable and no write lost; 1 a violation or a\n"
	"lost write (each named, with its key and ops); 2 usage error or a bad\n"
	"file; 3 inconclusive: a budget ran out or an acknowledged write-once\n"
	"put was never read back, and nothing was found wrong.\n";

#define usage_error(...) \
	chaos_usage_error("bypax-chaos-check", EXIT_USAGE, __VA_ARGS__)

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n == 0 ? 1 : n, size);
	if (p == NULL) {
		fprintf(stderr,
			"bypax-chaos-check: out of memory (%zu x %zu "
			"bytes)\n",
			n, size);
		exit(EXIT_USAGE);
	}
	return p;
}

/* Grows *p (of *cap elements of size) to hold at least need. */
static void grow(void **p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return;
	size_t cap2 = *cap == 0 ? 1024 : *cap;
	while (cap2 < need)
		cap2 *= 2;
	void *q = realloc(*p, cap2 * size);
	if (q == NULL) {
		fprintf(stderr,
			"bypax-chaos-check: out of memory (%zu "
			"records)\n",
			cap2);
		exit(EXIT_USAGE);
	}
	*p = q;
	*cap = cap2;
}

/* ---- A hash map u64 -> u32, open addressing (ids and keys) ---- */

struct map {
	uint64_t *keys; /* stored + 1: 0 marks a free slot */
	uint32_t *vals;
	size_t cap, count; /* cap a power of two, kept under half full */
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static void map_put(struct map *m, uint64_t k, uint32_t v);

static void map_grow(struct map *m)
{
	struct map old = *m;
	m->cap = old.cap == 0 ? 1024 : old.cap * 2;
	m->keys = xcalloc(m->cap, sizeof(*m->keys));
	m->vals = xcalloc(m->cap, sizeof(*m->vals));
	m->count = 0;
	for (size_t i = 0; i < old.cap; i++)
		if (old.keys[i] != 0)
			map_put(m, old.keys[i] - 1, old.vals[i]);
	free(old.keys);
	free(old.vals);
}

/* The slot of k, or the free slot where it would go. */
static size_t map_slot(const struct map *m, uint64_t k)
{
	size_t i = mix64(k) & (m->cap - 1);
	while (m->keys[i] != 0 && m->keys[i] != k + 1)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static void map_put(struct map *m, uint64_t k, uint32_t v)
{
	CH_ASSERT(k != UINT64_MAX);
	if (2 * (m->count + 1) > m->cap)
		map_grow(m);
	size_t i = map_slot(m, k);
	if (m->keys[i] == 0)
		m->count++;
	m->keys[i] = k + 1;
	m->vals[i] = v;
}

static bool map_get(const struct map *m, uint64_t k, uint32_t *v)
{
	if (m->cap == 0)
		return false;
	size_t i = map_slot(m, k);
	if (m->keys[i] == 0)
		return false;
	*v = m->vals[i];
	return true;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h == UINT64_MAX ? 0 : h;
}

/* ---- What the files hold ---- */

struct rec {
	struct ch_op op; /* result 0: a C line and no O line yet */
	uint32_t key;	 /* index into keys */
	uint32_t file;
	uint32_t line; /* of its O line, else its C line */
	bool read_back;
};

struct key_info {
	char name[CH_KEY_BYTES_MAX + 1];
	uint32_t writes; /* puts, dels and cases in the main segments */
	bool has_final;
	uint64_t final;	     /* the value the final read found; 0: absent */
	uint64_t final_call; /* that read's call; UINT64_MAX: --final */
	uint32_t final_rec;
	uint32_t final_line; /* --final's line */
};

struct check {
	const char *final_path, *faults_path;
	uint64_t budget;
	bool verbose;
	char **files;
	uint32_t file_count;
	struct rec *recs;
	size_t rec_count, rec_cap;
	struct key_info *keys;
	size_t key_count, key_cap;
	struct map ids;	    /* file << 40 ^ id -> rec */
	struct map key_ids; /* hash of the name -> first key of that hash */
	uint32_t *key_next; /* keys with the same hash, chained */
	size_t key_next_cap;
	uint32_t cur_file;
	bool in_read_back;
	uint64_t run_start, run_end;
	bool have_final; /* a read-back segment, or --final */
};

static uint32_t intern_key(struct check *c, const char *name)
{
	uint64_t h = hash_str(name);
	uint32_t k;
	if (map_get(&c->key_ids, h, &k)) {
		for (uint32_t i = k; i != UINT32_MAX; i = c->key_next[i])
			if (strcmp(c->keys[i].name, name) == 0)
				return i;
	} else {
		k = UINT32_MAX;
	}
	grow((void **)&c->keys, &c->key_cap, c->key_count + 1,
	     sizeof(*c->keys));
	grow((void **)&c->key_next, &c->key_next_cap, c->key_count + 1,
	     sizeof(*c->key_next));
	uint32_t n = (uint32_t)c->key_count++;
	memset(&c->keys[n], 0, sizeof(c->keys[n]));
	snprintf(c->keys[n].name, sizeof(c->keys[n].name), "%s", name);
	c->key_next[n] = k; /* the chain's old head */
	map_put(&c->key_ids, h, n);
	return n;
}

static const char *file_name(const struct check *c, uint32_t file)
{
	return c->files[file];
}

/* ---- Loading the histories ---- */

__attribute__((format(printf, 3, 4))) static int
line_error(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
	return -1;
}

/* The run's bounds: the main segments' S and E and every time in them. */
static void widen_run(struct check *c, uint64_t t)
{
	if (t == CH_NEVER)
		return;
	if (t < c->run_start)
		c->run_start = t;
	if (t > c->run_end)
		c->run_end = t;
}

static void on_marker(struct check *c, const struct ch_line *l)
{
	if (l->type == CH_LINE_READBACK) {
		c->in_read_back = true;
		c->have_final = true;
		return;
	}
	if (!c->in_read_back)
		widen_run(c, l->ns);
	if (l->type == CH_LINE_END)
		c->in_read_back = false; /* the segment ends */
}

/* An O line must repeat what its C line said. */
static int same_call(const struct ch_op *a, const struct ch_op *b, char *err,
		     size_t err_len)
{
	if (a->client == b->client && a->call_ns == b->call_ns &&
	    a->kind == b->kind && strcmp(a->key, b->key) == 0 &&
	    a->arg == b->arg && a->arg2 == b->arg2)
		return 0;
	return line_error(err, err_len,
			  "op %" PRIu64 ": its O line differs from its C line "
			  "(client, call_ns, kind, key or args)",
			  a->id);
}

static struct rec *new_rec(struct check *c, const struct ch_line *l,
			   size_t lineno)
{
	grow((void **)&c->recs, &c->rec_cap, c->rec_count + 1,
	     sizeof(*c->recs));
	CH_ASSERT(c->rec_count < UINT32_MAX);
	struct rec *r = &c->recs[c->rec_count];
	map_put(&c->ids, (uint64_t)c->cur_file << 40 ^ l->op.id,
		(uint32_t)c->rec_count++);
	*r = (struct rec){ .op = l->op,
			   .key = intern_key(c, l->op.key),
			   .file = c->cur_file,
			   .line = (uint32_t)lineno,
			   .read_back = c->in_read_back };
	return r;
}

static int on_op_line(struct check *c, const struct ch_line *l, size_t lineno,
		      char *err, size_t err_len)
{
	uint32_t i;
	if (l->op.id >= (1ull << 40))
		return line_error(err, err_len,
				  "id %" PRIu64 ": at most 2^40-1", l->op.id);
	if (!map_get(&c->ids, (uint64_t)c->cur_file << 40 ^ l->op.id, &i)) {
		new_rec(c, l, lineno);
		return 0;
	}
	struct rec *r = &c->recs[i];
	if (l->type == CH_LINE_CALL || r->op.result != 0)
		return line_error(err, err_len,
				  "op %" PRIu64 " has a second %s line (the "
				  "first at line %" PRIu32 ")",
				  l->op.id, l->type == CH_LINE_CALL ? "C" : "O",
				  r->line);
	if (same_call(&r->op, &l->op, err, err_len) != 0)
		return -1;
	r->op = l->op;
	r->line = (uint32_t)lineno;
	return 0;
}

static int on_line(void *ctx, const struct ch_line *l, size_t lineno, char *err,
		   size_t err_len)
{
	struct check *c = ctx;
	switch (l->type) {
	case CH_LINE_COMMENT:
		return 0;
	case CH_LINE_START:
	case CH_LINE_END:
	case CH_LINE_READBACK:
		on_marker(c, l);
		return 0;
	default:
		break;
	}
	if (on_op_line(c, l, lineno, err, err_len) != 0)
		return -1;
	if (!c->in_read_back) {
		widen_run(c, l->op.call_ns);
		widen_run(c, l->op.return_ns);
		widen_run(c, l->op.end_ns);
	}
	return 0;
}

static int load_histories(struct check *c)
{
	char err[600];
	c->run_start = UINT64_MAX;
	c->run_end = 0;
	for (uint32_t f = 0; f < c->file_count; f++) {
		c->cur_file = f;
		c->in_read_back = false;
		if (ch_read_file(c->files[f], on_line, c, err, sizeof(err)) !=
		    0) {
			fprintf(stderr, "bypax-chaos-check: %s\n", err);
			return EXIT_USAGE;
		}
	}
	if (c->run_start > c->run_end) /* nothing timed: an empty run */
		c->run_start = c->run_end = 0;
	return 0;
}

/* The result of r: a C line with no O line is an unknown outcome. */
static uint8_t result_of(const struct rec *r)
{
	return r->op.result != 0 ? r->op.result : CH_UNKNOWN;
}

/* ---- Final values ---- */

/* The read-back segments' definite gets: the latest read of each key. */
static void finals_from_read_back(struct check *c)
{
	for (size_t i = 0; i < c->rec_count; i++) {
		const struct rec *r = &c->recs[i];
		uint8_t res = result_of(r);
		if (!r->read_back || r->op.kind != CH_GET ||
		    (res != CH_OK && res != CH_NOTFOUND))
			continue;
		struct key_info *k = &c->keys[r->key];
		if (k->has_final && k->final_call >= r->op.call_ns)
			continue;
		k->has_final = true;
		k->final = r->op.out;
		k->final_call = r->op.call_ns;
		k->final_rec = (uint32_t)i;
	}
}

/* One 'KEY VALUE' line of --final. Keys no history names are ignored. */
static int final_line(struct check *c, char *line, uint32_t lineno)
{
	char *save = NULL;
	char *key = strtok_r(line, " \t\r\n", &save);
	if (key == NULL || key[0] == '#')
		return 0;
	char *val = strtok_r(NULL, " \t\r\n", &save);
	uint64_t v = 0;
	if (val == NULL || strtok_r(NULL, " \t\r\n", &save) != NULL ||
	    !ch_key_valid(key) ||
	    (strcmp(val, "-") != 0 &&
	     ch_value_parse(val, strlen(val), &v) != 0))
		return -1;
	uint64_t h = hash_str(key);
	uint32_t k;
	if (!map_get(&c->key_ids, h, &k))
		return 0;
	for (; k != UINT32_MAX; k = c->key_next[k]) {
		if (strcmp(c->keys[k].name, key) != 0)
			continue;
		c->keys[k].has_final = true;
		c->keys[k].final = v;
		c->keys[k].final_call = UINT64_MAX;
		c->keys[k].final_line = lineno;
	}
	return 0;
}

static int load_final(struct check *c)
{
	char line[256];
	FILE *f = fopen(c->final_path, "r");
	if (f == NULL) {
		fprintf(stderr,
			"bypax-chaos-check: --final %s: cannot open: "
			"%s\n",
			c->final_path, strerror(errno));
		return EXIT_USAGE;
	}
	c->have_final = true;
	int rc = 0;
	for (uint32_t n = 1; rc == 0 && fgets(line, sizeof(line), f) != NULL;
	     n++) {
		char copy[sizeof(line)];
		snprintf(copy, sizeof(copy), "%s", line);
		copy[strcspn(copy, "\r\n")] = '\0';
		if (final_line(c, line, n) != 0) {
			fprintf(stderr,
				"bypax-chaos-check: %s:%" PRIu32 ": '%.80s': "
				"expected 'KEY VALUE' with VALUE '-' or a "
				"value 1..2^63-1 in decimal\n",
				c->final_path, n, copy);
			rc = EXIT_USAGE;
		}
	}
	fclose(f);
	return rc;
}

/* ---- (a) Linearizability ---- */

struct lin {
	struct lc_op *ops;
	uint32_t *rec_of; /* ops[i] came from recs[rec_of[i]] */
	size_t n;
	uint64_t states;
	uint32_t violations, inconclusive;
};

/* Fills *op from r; false when r is left out (history.h, the table at the
 * top of this file). */
static bool to_lc_op(const struct check *c, const struct rec *r,
		     struct lc_op *op)
{
	uint8_t res = result_of(r);
	bool unknown = res == CH_UNKNOWN;
	if (res == CH_FAILED || (unknown && r->op.kind == CH_GET))
		return false;
	*op = (struct lc_op){
		.key = r->key,
		.call_ns = r->op.call_ns,
		.return_ns = unknown ? LC_NEVER : r->op.return_ns,
		.kind = r->op.kind,
		.out_ok = res == CH_OK && r->op.kind == CH_CAS,
		.out_unknown = unknown,
		.arg = r->op.arg,
		.arg2 = r->op.arg2,
		.out = unknown ? 0 : r->op.out,
		.client = r->file << 16 | (r->op.client & 0xffffu),
	};
	(void)c;
	return true;
}

struct lc_order {
	uint64_t key, call_ns;
	uint32_t index;
};

static int cmp_order(const void *a, const void *b)
{
	const struct lc_order *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	if (x->call_ns != y->call_ns)
		return x->call_ns < y->call_ns ? -1 : 1;
	return (x->index > y->index) - (x->index < y->index);
}

/* The lc_ops of every record, grouped by key (each key's ops contiguous,
 * by call time), with the record each came from. */
static void build_lin(const struct check *c, struct lin *l)
{
	struct lc_op *all = xcalloc(c->rec_count, sizeof(*all));
	uint32_t *from = xcalloc(c->rec_count, sizeof(*from));
	size_t n = 0;
	for (size_t i = 0; i < c->rec_count; i++)
		if (to_lc_op(c, &c->recs[i], &all[n]))
			from[n++] = (uint32_t)i;
	struct lc_order *order = xcalloc(n, sizeof(*order));
	for (size_t i = 0; i < n; i++)
		order[i] = (struct lc_order){ all[i].key, all[i].call_ns,
					      (uint32_t)i };
	qsort(order, n, sizeof(*order), cmp_order);
	l->ops = xcalloc(n, sizeof(*l->ops));
	l->rec_of = xcalloc(n, sizeof(*l->rec_of));
	for (size_t i = 0; i < n; i++) {
		l->ops[i] = all[order[i].index];
		l->rec_of[i] = from[order[i].index];
	}
	l->n = n;
	free(order);
	free(from);
	free(all);
}

/* The line of r as the file has it (an O line, or its C line). */
static void print_rec(const struct check *c, const struct rec *r)
{
	char line[CH_LINE_BYTES_MAX];
	if (r->op.result != 0)
		ch_format_op(line, sizeof(line), &r->op);
	else
		ch_format_call(line, sizeof(line), &r->op);
	printf("    %s:%" PRIu32 ": %s", file_name(c, r->file), r->line, line);
}

/* Names the file and line of every "op #i" lincheck's reason mentions. */
static void explain_ops(const struct check *c, const struct lin *l,
			size_t first, size_t count, const char *why)
{
	for (const char *p = strstr(why, "op #"); p != NULL;
	     p = strstr(p + 1, "op #")) {
		char *end;
		unsigned long long i = strtoull(p + 4, &end, 10);
		if (end == p + 4 || i >= count)
			continue;
		printf("  op #%llu:\n", i);
		print_rec(c, &c->recs[l->rec_of[first + i]]);
	}
}

static void check_key(const struct check *c, struct lin *l, size_t first,
		      size_t count)
{
	struct lc_report rep;
	const char *name = c->keys[l->ops[first].key].name;
	enum lc_verdict v =
		lc_check_key(&l->ops[first], count, c->budget, &rep);
	l->states += rep.states_explored;
	if (c->verbose)
		printf("chaos-check: key %s: %zu ops, %" PRIu64 " states, %s\n",
		       name, count, rep.states_explored,
		       v == LC_LINEARIZABLE ? "linearizable" :
		       v == LC_VIOLATION    ? "violation" :
					      "inconclusive");
	if (v == LC_LINEARIZABLE)
		return;
	uint32_t *counter = v == LC_VIOLATION ? &l->violations :
						&l->inconclusive;
	if ((*counter)++ >= REPORT_MAX)
		return;
	printf("chaos-check: %s: key %s (lincheck key %u): %s\n",
	       v == LC_VIOLATION ? "VIOLATION" : "inconclusive", name,
	       (unsigned)l->ops[first].key, rep.why);
	explain_ops(c, l, first, count, rep.why);
}

static void check_linearizable(const struct check *c, struct lin *l)
{
	build_lin(c, l);
	for (size_t start = 0, end = 0; start < l->n; start = end) {
		while (end < l->n && l->ops[end].key == l->ops[start].key)
			end++;
		check_key(c, l, start, end - start);
	}
}

/* ---- (b) Lost writes ---- */

struct lost {
	uint32_t lost, unread, not_write_once;
};

static void count_writes(struct check *c)
{
	for (size_t i = 0; i < c->rec_count; i++)
		if (!c->recs[i].read_back && c->recs[i].op.kind != CH_GET)
			c->keys[c->recs[i].key].writes++;
}

static void print_final_source(const struct check *c, const struct key_info *k)
{
	if (k->final_call == UINT64_MAX) {
		printf("  final value from %s:%" PRIu32 "\n", c->final_path,
		       k->final_line);
		return;
	}
	printf("  final read:\n");
	print_rec(c, &c->recs[k->final_rec]);
}

static void check_write(const struct check *c, const struct rec *r,
			struct lost *lw)
{
	const struct key_info *k = &c->keys[r->key];
	if (!k->has_final) {
		lw->unread++;
		return;
	}
	if (k->final == r->op.arg)
		return;
	if (lw->lost++ >= REPORT_MAX)
		return;
	char found[CH_VALUE_DIGITS_MAX + 1] = "absent";
	if (k->final == CH_BAD_VALUE)
		snprintf(found, sizeof(found), "bad");
	else if (k->final != 0)
		ch_value_format(k->final, found);
	printf("chaos-check: LOST WRITE: key %s: put %" PRIu64
	       " was acknowledged but the final read found %s\n",
	       k->name, r->op.arg, found);
	printf("  acknowledged put:\n");
	print_rec(c, r);
	print_final_source(c, k);
}

/* Every acknowledged put of a write-once key against its final value. */
static void check_lost(struct check *c, struct lost *lw)
{
	count_writes(c);
	for (size_t i = 0; i < c->rec_count; i++) {
		const struct rec *r = &c->recs[i];
		const struct key_info *k = &c->keys[r->key];
		if (r->read_back || r->op.kind != CH_PUT ||
		    result_of(r) != CH_OK || !ch_key_write_once(k->name))
			continue;
		if (k->writes != 1) {
			/* Not write-once after all: linearizability still
			 * covers it, the final value says nothing. */
			if (lw->not_write_once++ < REPORT_MAX)
				fprintf(stderr,
					"bypax-chaos-check: key %s: %" PRIu32
					" writes, not write-once: not "
					"checked for lost writes\n",
					k->name, k->writes);
			continue;
		}
		if (c->have_final)
			check_write(c, r, lw);
	}
}

/* ---- (c) Gaps ---- */

struct gaps {
	uint32_t faults, outside;
	uint64_t *per_fault; /* the gaps of faults inside the run */
	size_t count, cap;
	struct ch_gap max;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Acknowledgements: the answered ops of the main segments, ascending. */
static uint64_t *ack_times(const struct check *c, size_t *n)
{
	uint64_t *acks = xcalloc(c->rec_count, sizeof(*acks));
	*n = 0;
	for (size_t i = 0; i < c->rec_count; i++) {
		const struct rec *r = &c->recs[i];
		if (!r->read_back && result_of(r) != CH_UNKNOWN)
			acks[(*n)++] = r->op.return_ns;
	}
	qsort(acks, *n, sizeof(*acks), cmp_u64);
	return acks;
}

/* One line per fault, its name last (it may hold spaces). */
static void one_fault(const struct check *c, const uint64_t *acks, size_t n,
		      uint64_t s, uint64_t e, const char *name, struct gaps *g)
{
	struct ch_gap gap =
		ch_fault_gap(acks, n, c->run_start, c->run_end, s, e);
	g->faults++;
	if (!gap.valid) {
		g->outside++;
		printf("chaos-check: fault gap_ms=- start_ns=%" PRIu64
		       " end_ns=%" PRIu64 " outside the run [%" PRIu64
		       ", %" PRIu64 "] name=%s\n",
		       s, e, c->run_start, c->run_end, name);
		return;
	}
	grow((void **)&g->per_fault, &g->cap, g->count + 1,
	     sizeof(*g->per_fault));
	g->per_fault[g->count++] = gap.gap_ns;
	printf("chaos-check: fault gap_ms=%.1f start_ns=%" PRIu64
	       " end_ns=%" PRIu64 " window_ms=%.1f from_ns=%" PRIu64
	       " to_ns=%" PRIu64 " name=%s\n",
	       (double)gap.gap_ns / NS_PER_MS, s, e,
	       (double)(e - s) / NS_PER_MS, gap.from_ns, gap.to_ns, name);
}

static int fault_line(const struct check *c, char *line, const uint64_t *acks,
		      size_t n, struct gaps *g)
{
	char *p = line + strspn(line, " \t");
	p[strcspn(p, "\r\n")] = '\0';
	if (*p == '\0' || *p == '#')
		return 0;
	char *end;
	errno = 0;
	unsigned long long s = strtoull(p, &end, 10);
	if (end == p || (*end != ' ' && *end != '\t') || errno != 0)
		return -1;
	p = end;
	unsigned long long e = strtoull(p, &end, 10);
	if (end == p || (*end != ' ' && *end != '\t') || errno != 0 || e < s)
		return -1;
	char *name = end + strspn(end, " \t");
	size_t len = strlen(name);
	while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t'))
		name[--len] = '\0';
	if (len == 0)
		return -1;
	one_fault(c, acks, n, s, e, name, g);
	return 0;
}

static int check_faults(const struct check *c, const uint64_t *acks, size_t n,
			struct gaps *g)
{
	char line[512];
	FILE *f = fopen(c->faults_path, "r");
	if (f == NULL) {
		fprintf(stderr,
			"bypax-chaos-check: --faults %s: cannot open: "
			"%s\n",
			c->faults_path, strerror(errno));
		return EXIT_USAGE;
	}
	int rc = 0;
	for (uint32_t k = 1; rc == 0 && fgets(line, sizeof(line), f) != NULL;
	     k++) {
		char copy[sizeof(line)];
		snprintf(copy, sizeof(copy), "%s", line);
		copy[strcspn(copy, "\r\n")] = '\0';
		if (fault_line(c, line, acks, n, g) != 0) {
			fprintf(stderr,
				"bypax-chaos-check: %s:%" PRIu32 ": '%.80s': "
				"expected '<start_ns> <end_ns> <name>' with "
				"start_ns <= end_ns\n",
				c->faults_path, k, copy);
			rc = EXIT_USAGE;
		}
	}
	fclose(f);
	return rc;
}

static int check_gaps(const struct check *c, struct gaps *g)
{
	size_t n;
	uint64_t *acks = ack_times(c, &n);
	g->max = ch_max_gap(acks, n, c->run_start, c->run_end);
	int rc = c->faults_path != NULL ? check_faults(c, acks, n, g) : 0;
	free(acks);
	if (g->count > 0)
		qsort(g->per_fault, g->count, sizeof(*g->per_fault), cmp_u64);
	return rc;
}

/* ---- The summary and main ---- */

static void print_gap_stats(const struct gaps *g)
{
	if (g->count == 0) {
		printf(" gap_ms p50=- p99=- max=-");
		return;
	}
	printf(" gap_ms p50=%.1f p99=%.1f max=%.1f",
	       (double)ch_percentile(g->per_fault, g->count, 50) / NS_PER_MS,
	       (double)ch_percentile(g->per_fault, g->count, 99) / NS_PER_MS,
	       (double)g->per_fault[g->count - 1] / NS_PER_MS);
}

static void print_summary(const struct check *c, const struct lin *l,
			  const struct lost *lw, const struct gaps *g)
{
	uint64_t unknown = 0, failed = 0;
	for (size_t i = 0; i < c->rec_count; i++) {
		uint8_t res = result_of(&c->recs[i]);
		unknown += res == CH_UNKNOWN;
		failed += res == CH_FAILED;
	}
	const char *verdict = l->violations > 0	  ? "violation" :
			      l->inconclusive > 0 ? "inconclusive" :
						    "linearizable";
	printf("chaos-check: files=%" PRIu32 " ops=%zu keys=%zu verdict=%s "
	       "violations=%" PRIu32,
	       c->file_count, c->rec_count, c->key_count, verdict,
	       l->violations);
	if (c->have_final)
		printf(" lost_writes=%" PRIu32 " unread=%" PRIu32, lw->lost,
		       lw->unread);
	else
		printf(" lost_writes=unchecked unread=-");
	printf(" unknown=%" PRIu64 " failed=%" PRIu64 " states=%" PRIu64
	       " faults=%zu faults_outside=%" PRIu32,
	       unknown, failed, l->states, g->count, g->outside);
	print_gap_stats(g);
	printf(" max_gap_ms=%.1f\n", (double)g->max.gap_ns / NS_PER_MS);
}

static int exit_status(const struct lin *l, const struct lost *lw)
{
	if (l->violations > 0 || lw->lost > 0)
		return EXIT_BAD;
	if (l->inconclusive > 0 || lw->unread > 0)
		return EXIT_INCONCLUSIVE;
	return 0;
}

/* Returns 0 to check, EXIT_USAGE, or -1 after --help/--version. */
static int parse_args(int argc, char **argv, struct check *c)
{
	static const struct option lo[] = {
		{ "final", 1, 0, 'f' },	 { "faults", 1, 0, 'F' },
		{ "budget", 1, 0, 'b' }, { "verbose", 0, 0, 'v' },
		{ "help", 0, 0, 'h' },	 { "version", 0, 0, 'V' },
		{ 0, 0, 0, 0 },
	};
	c->budget = BUDGET_DEFAULT;
	opterr = 0;
	int ch;
	while ((ch = getopt_long(argc, argv, ":f:F:b:vhV", lo, NULL)) != -1) {
		char *end;
		switch (ch) {
		case 'f':
			c->final_path = optarg;
			break;
		case 'F':
			c->faults_path = optarg;
			break;
		case 'v':
			c->verbose = true;
			break;
		case 'b':
			errno = 0;
			c->budget = strtoull(optarg, &end, 10);
			if (*optarg == '\0' || *optarg == '-' || *end != '\0' ||
			    errno != 0)
				return usage_error("--budget '%s': expected a "
						   "number of states (0: no "
						   "bound)",
						   optarg);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return -1;
		case 'V':
			puts("bypax-chaos-check " BPX_VERSION);
			return -1;
		case ':':
			return usage_error("option '%s' needs an argument",
					   argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'",
					   argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("no HISTORY file given");
	if ((size_t)(argc - optind) >= (1u << 16))
		return usage_error("%d histories: at most 65535",
				   argc - optind);
	c->files = argv + optind;
	c->file_count = (uint32_t)(argc - optind);
	return 0;
}

int main(int argc, char **argv)
{
	static struct check c;
	struct lin l = { 0 };
	struct lost lw = { 0 };
	struct gaps g = { 0 };
	int rc = parse_args(argc, argv, &c);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	if ((rc = load_histories(&c)) != 0)
		return rc;
	finals_from_read_back(&c);
	if (c.final_path != NULL && (rc = load_final(&c)) != 0)
		return rc;
	check_linearizable(&c, &l);
	check_lost(&c, &lw);
	if ((rc = check_gaps(&c, &g)) != 0)
		return rc;
	print_summary(&c, &l, &lw, &g);
	return exit_status(&l, &lw);
}
