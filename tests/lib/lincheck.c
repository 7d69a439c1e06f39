/* Linearizability checker: see lincheck.h for the model and the API.
 *
 * Completed ops are searched as Porcupine does. Ops that got no reply
 * (pending) are optional: any linearization of the completed ops plus some
 * pending ones is a witness, since the rest could take effect after it. So
 * success is "every completed op is linearized", and pending ops are kept
 * out of the event list, which they would never leave:
 *  - They are tried after the completed candidates at each step, whenever
 *    called before the first remaining return.
 *  - A pending op that would not change the state is never lifted: leaving
 *    it out is the same. Nor is one right after a pending op unless it
 *    reads the state that op left (see lc_observes).
 *  - The memo compares pending ops by subset: a configuration (completed
 *    set, state) reached with pending set P covers any reached with a
 *    superset of P, since every continuation of the latter is one of the
 *    former (the extra pending ops are simply never used).
 *  - Pending DELs are interchangeable: one called earlier can stand in for
 *    one called later at any point. So they are lifted in call order only.
 *  - Pending ops that can never matter are dropped before the search: a
 *    GET, and a PUT/CAS whose written value no completed op reads and no
 *    CAS expects. Such a value, once in the state, can only be overwritten
 *    before anything observes it, so leaving the write out changes nothing
 *    an op sees. (A value written twice is kept: uniqueness is what the
 *    argument needs.)
 */
#include "lincheck.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Always on, like PX_ASSERT: a malformed history is a harness bug. */
#define LC_ASSERT(cond)                                                        \
	do {                                                                   \
		if (!(cond))                                                   \
			lc_assert_fail(#cond, __FILE__, __LINE__);             \
	} while (0)

#define LC_NONE UINT32_MAX

static _Noreturn void lc_assert_fail(const char *cond, const char *file,
                                     int line)
{
	fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, cond);
	abort();
}

static void *lc_calloc(size_t count, size_t size)
{
	void *p = calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);

	LC_ASSERT(p != NULL);
	return p;
}

static uint64_t lc_mix64(uint64_t x)
{
	/* splitmix64's finalizer. */
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

/* ---- The model ---------------------------------------------------------- */

/* Applies op to state into *next. Returns false when the op's observed
 * result contradicts state (never for a pending op: its result is unknown). */
static bool lc_step(const struct lc_op *op, bool pending, uint64_t state,
                    uint64_t *next)
{
	bool swaps;

	switch (op->kind) {
	case LC_GET:
		*next = state;
		return pending || op->out == state;
	case LC_PUT:
		*next = op->arg;
		return true;
	case LC_DEL:
		*next = 0;
		return pending || op->out == state;
	case LC_CAS:
		swaps = state != 0 && state == op->arg;
		*next = swaps ? op->arg2 : state;
		return pending ||
		       ((op->out_ok != 0) == swaps && op->out == state);
	default:
		LC_ASSERT(false);
		return false;
	}
}

static const char *lc_kind_name(uint8_t kind)
{
	static const char *const names[] = {"?", "GET", "PUT", "DEL", "CAS"};

	return kind <= LC_CAS ? names[kind] : "?";
}

/* Appends to the string in buf[size], cutting what does not fit (a cut
 * message is fine; vsnprintf keeps gcc from warning that it may happen). */
__attribute__((format(printf, 3, 4))) static void
lc_appendf(char *buf, size_t size, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	LC_ASSERT(used < size);
	va_start(ap, fmt);
	vsnprintf(&buf[used], size - used, fmt, ap);
	va_end(ap);
}

/* Appends "GET -> 5 by client 3 [t=10..20]" or the like. */
static void lc_describe(const struct lc_op *op, char *buf, size_t size)
{
	bool pending = op->return_ns == LC_NEVER;

	if (op->kind == LC_PUT)
		lc_appendf(buf, size, "PUT %" PRIu64, op->arg);
	else if (op->kind == LC_CAS)
		lc_appendf(buf, size, "CAS %" PRIu64 "->%" PRIu64, op->arg,
		           op->arg2);
	else
		lc_appendf(buf, size, "%s", lc_kind_name(op->kind));
	if (op->kind == LC_CAS && !pending)
		lc_appendf(buf, size, " %s, saw %" PRIu64,
		           op->out_ok ? "ok" : "failed", op->out);
	else if (op->kind != LC_PUT && !pending)
		lc_appendf(buf, size, " -> %" PRIu64, op->out);
	lc_appendf(buf, size, " by client %" PRIu32 " [t=%" PRIu64 "..",
	           op->client, op->call_ns);
	if (pending)
		lc_appendf(buf, size, "never, no reply]");
	else
		lc_appendf(buf, size, "%" PRIu64 "]", op->return_ns);
}

/* ---- The memo ------------------------------------------------------------
 * Configurations visited: (completed set, state, pending set). A completed
 * set is stored from its first word that is not all ones to its last
 * nonzero word: the search keeps it a full prefix plus the ops in flight,
 * so a row is a few words however long the history. */

struct lc_memo_slot {
	uint64_t hash; /* of the completed set and the state only */
	uint64_t state;
	uint32_t row;  /* 1 + offset of the row in the arena; 0: empty slot */
	uint32_t lo;   /* first word of the completed set stored */
	uint32_t len;  /* words of it stored; the pending set follows */
	bool after_pending; /* reached by lifting a pending op */
};

struct lc_memo {
	struct lc_memo_slot *slots;
	size_t slot_count; /* a power of two */
	size_t slot_used;
	uint64_t *arena;
	size_t arena_used, arena_cap; /* words */
	size_t cwords, pwords;       /* of a completed and a pending set */
};

static void lc_memo_init(struct lc_memo *m, size_t cwords, size_t pwords)
{
	*m = (struct lc_memo){
		.slot_count = 1024,
		.arena_cap = 4096,
		.cwords = cwords,
		.pwords = pwords,
	};
	m->slots = lc_calloc(m->slot_count, sizeof *m->slots);
	m->arena = lc_calloc(m->arena_cap, sizeof *m->arena);
}

static void lc_memo_free(struct lc_memo *m)
{
	free(m->slots);
	free(m->arena);
}

static void lc_memo_grow(struct lc_memo *m)
{
	size_t count = m->slot_count * 2;
	struct lc_memo_slot *slots = lc_calloc(count, sizeof *slots);

	for (size_t i = 0; i < m->slot_count; i++) {
		size_t j = m->slots[i].hash & (count - 1);

		if (m->slots[i].row == 0)
			continue;
		while (slots[j].row != 0)
			j = (j + 1) & (count - 1);
		slots[j] = m->slots[i];
	}
	free(m->slots);
	m->slots = slots;
	m->slot_count = count;
}

static uint64_t *lc_memo_append(struct lc_memo *m, size_t words)
{
	while (m->arena_used + words > m->arena_cap) {
		m->arena_cap *= 2;
		m->arena = realloc(m->arena, m->arena_cap * sizeof *m->arena);
		LC_ASSERT(m->arena != NULL);
	}
	m->arena_used += words;
	return &m->arena[m->arena_used - words];
}

/* Whether every bit of a is in b. */
static bool lc_subset(const uint64_t *a, const uint64_t *b, size_t words)
{
	for (size_t i = 0; i < words; i++)
		if ((a[i] & ~b[i]) != 0)
			return false;
	return true;
}

/* Adds a configuration unless a visited one covers it: the same completed
 * set and state, a subset of its pending set, and no fewer moves (see
 * lc_observes). Returns whether added. */
static bool lc_memo_visit(struct lc_memo *m, uint64_t hash, uint64_t state,
                          bool after_pending, const uint64_t *cbits,
                          const uint64_t *pbits)
{
	size_t lo = 0, hi = m->cwords, j = hash & (m->slot_count - 1);
	uint64_t *row;

	while (lo < hi && cbits[lo] == UINT64_MAX)
		lo++;
	while (hi > lo && cbits[hi - 1] == 0)
		hi--;
	/* Same (completed set, state): same hash, so the same probe run. */
	for (; m->slots[j].row != 0; j = (j + 1) & (m->slot_count - 1)) {
		const struct lc_memo_slot *s = &m->slots[j];
		const uint64_t *r = &m->arena[s->row - 1];

		if (s->hash == hash && s->state == state && s->lo == lo &&
		    s->len == hi - lo && s->after_pending <= after_pending &&
		    memcmp(r, &cbits[lo], (hi - lo) * sizeof *r) == 0 &&
		    lc_subset(&r[hi - lo], pbits, m->pwords))
			return false;
	}
	row = lc_memo_append(m, hi - lo + m->pwords);
	memcpy(row, &cbits[lo], (hi - lo) * sizeof *row);
	memcpy(&row[hi - lo], pbits, m->pwords * sizeof *row);
	LC_ASSERT(m->arena_used < UINT32_MAX);
	m->slots[j] = (struct lc_memo_slot){
		.hash = hash,
		.state = state,
		.row = (uint32_t)(row - m->arena) + 1,
		.lo = (uint32_t)lo,
		.len = (uint32_t)(hi - lo),
		.after_pending = after_pending,
	};
	/* Linear probing stays short below half full. */
	if (++m->slot_used * 2 > m->slot_count)
		lc_memo_grow(m);
	return true;
}

/* ---- The search --------------------------------------------------------- */

/* An op kept for the search. */
struct lc_kop {
	const struct lc_op *op;
	size_t index;              /* in the caller's array, for messages */
	uint32_t prev_pending_del; /* pending DEL: the one called before */
};

/* A call or return event of a completed op, in the time-ordered list. */
struct lc_entry {
	struct lc_entry *prev, *next;
	struct lc_entry *match; /* call: its return */
	uint64_t time_ns;
	uint32_t kop;
	bool is_return;
};

/* A lifted op: a completed op's call entry, or pending op `pending`, lifted
 * while `entry` was the first return left. */
struct lc_frame {
	struct lc_entry *entry;
	uint32_t pending; /* LC_NONE for a completed op */
	uint64_t state_before;
};

/* Where the scan for an op to lift next stands: at a call entry, or at
 * pending op `pending` while `entry` is the first return left. */
struct lc_cursor {
	struct lc_entry *entry;
	uint32_t pending; /* LC_NONE while scanning completed ops */
};

struct lc_search {
	struct lc_kop *kops; /* completed ops, by call time */
	size_t kop_count;
	struct lc_kop *pops; /* pending ops, by call time */
	size_t pop_count;
	struct lc_entry *entries;
	struct lc_entry head; /* sentinel: head.next is the first event */
	uint64_t *cbits;      /* linearized kops */
	uint64_t *pbits;      /* linearized pops */
	uint64_t cbits_hash;  /* xor of lc_mix64(i) over cbits set */
	struct lc_frame *stack;
	size_t depth;
	size_t done; /* kops linearized */
	struct lc_memo memo;
	uint64_t explored;
	/* The deepest dead end, for the violation message. */
	size_t best_depth;
	uint32_t best_blocker;
	uint64_t best_state;
};

static bool lc_bit(const uint64_t *bits, uint32_t i)
{
	return (bits[i / 64] >> (i % 64)) & 1;
}

static void lc_flip(uint64_t *bits, uint32_t i)
{
	bits[i / 64] ^= UINT64_C(1) << (i % 64);
}

static void lc_flip_completed(struct lc_search *s, uint32_t i)
{
	lc_flip(s->cbits, i);
	s->cbits_hash ^= lc_mix64(i);
}

/* Dancing links: unlinking keeps the entry's own pointers, so relinking in
 * reverse order restores the list exactly. */
static void lc_unlink(struct lc_entry *e)
{
	e->prev->next = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
}

static void lc_relink(struct lc_entry *e)
{
	e->prev->next = e;
	if (e->next != NULL)
		e->next->prev = e;
}

/* Whether op may be lifted next. Right after a pending op took effect, only
 * an op that reads the state it left may: otherwise the next op overwrites
 * that state unseen, and the same linearization without the pending op
 * exists. So it must be a completed GET, DEL or CAS (a completed op's result
 * is checked), or a pending CAS that swaps (no-ops are never lifted). */
static bool lc_observes(const struct lc_search *s, const struct lc_op *op)
{
	bool after_pending =
		s->depth > 0 && s->stack[s->depth - 1].pending != LC_NONE;

	if (!after_pending)
		return true;
	if (op->return_ns != LC_NEVER)
		return op->kind != LC_PUT;
	return op->kind == LC_CAS;
}

/* With the new bit already set: records the configuration and pushes f,
 * unless a visited configuration covers it (then the caller unsets it). */
static bool lc_enter(struct lc_search *s, struct lc_frame f, uint64_t *state,
                     uint64_t next)
{
	if (!lc_memo_visit(&s->memo, s->cbits_hash ^ lc_mix64(~next), next,
	                   f.pending != LC_NONE, s->cbits, s->pbits))
		return false;
	LC_ASSERT(s->depth < s->kop_count + s->pop_count);
	s->stack[s->depth++] = f;
	*state = next;
	s->explored++;
	return true;
}

static bool lc_try_completed(struct lc_search *s, struct lc_entry *call,
                             uint64_t *state)
{
	const struct lc_op *op = s->kops[call->kop].op;
	uint64_t next;

	if (!lc_observes(s, op) || !lc_step(op, false, *state, &next))
		return false;
	lc_flip_completed(s, call->kop);
	if (!lc_enter(s, (struct lc_frame){call, LC_NONE, *state}, state,
	              next)) {
		lc_flip_completed(s, call->kop);
		return false;
	}
	lc_unlink(call);
	lc_unlink(call->match);
	s->done++;
	return true;
}

static bool lc_try_pending(struct lc_search *s, uint32_t i,
                           struct lc_entry *first_return, uint64_t *state)
{
	const struct lc_kop *k = &s->pops[i];
	uint64_t next;

	if (lc_bit(s->pbits, i) || !lc_observes(s, k->op))
		return false;
	/* Pending DELs in call order only (see the top of this file). */
	if (k->prev_pending_del != LC_NONE &&
	    !lc_bit(s->pbits, k->prev_pending_del))
		return false;
	/* A pending op that changes nothing can be left out. */
	if (!lc_step(k->op, true, *state, &next) || next == *state)
		return false;
	lc_flip(s->pbits, i);
	if (!lc_enter(s, (struct lc_frame){first_return, i, *state}, state,
	              next)) {
		lc_flip(s->pbits, i);
		return false;
	}
	return true;
}

/* Undoes the last lift; returns where the scan goes on. */
static struct lc_cursor lc_backtrack(struct lc_search *s, uint64_t *state)
{
	struct lc_frame f;

	LC_ASSERT(s->depth > 0);
	f = s->stack[--s->depth];
	*state = f.state_before;
	if (f.pending != LC_NONE) {
		lc_flip(s->pbits, f.pending);
		return (struct lc_cursor){f.entry, f.pending + 1};
	}
	lc_relink(f.entry->match);
	lc_relink(f.entry);
	lc_flip_completed(s, f.entry->kop);
	s->done--;
	return (struct lc_cursor){f.entry->next, LC_NONE};
}

/* ret's op had to take effect by now, and nothing left can go next. */
static void lc_note_dead_end(struct lc_search *s, const struct lc_entry *ret,
                             uint64_t state)
{
	if (s->best_blocker != LC_NONE && s->depth <= s->best_depth)
		return;
	s->best_depth = s->depth;
	s->best_blocker = ret->kop;
	s->best_state = state;
}

/* Wing & Gong: lift any op called before the first return left (completed
 * ones first, then pending ones), or backtrack when none fits. */
static enum lc_verdict lc_search_run(struct lc_search *s, uint64_t budget)
{
	struct lc_cursor c = {s->head.next, LC_NONE};
	uint64_t state = 0;

	while (s->done != s->kop_count) {
		bool lifted = false;

		/* Every completed op left has its return event in the list. */
		LC_ASSERT(c.entry != NULL);
		if (c.pending == LC_NONE && !c.entry->is_return) {
			lifted = lc_try_completed(s, c.entry, &state);
			c.entry = lifted ? c.entry : c.entry->next;
		} else if (c.pending == LC_NONE) {
			c.pending = 0;
		} else if (c.pending < s->pop_count &&
		           s->pops[c.pending].op->call_ns <= c.entry->time_ns) {
			lifted = lc_try_pending(s, c.pending, c.entry, &state);
			c.pending++;
		} else {
			lc_note_dead_end(s, c.entry, state);
			if (s->depth == 0)
				return LC_VIOLATION;
			c = lc_backtrack(s, &state);
		}
		if (!lifted)
			continue;
		if (budget != 0 && s->explored >= budget &&
		    s->done != s->kop_count)
			return LC_UNKNOWN;
		c = (struct lc_cursor){s->head.next, LC_NONE};
	}
	return LC_LINEARIZABLE;
}

/* ---- Building the search ------------------------------------------------ */

struct lc_input {
	const struct lc_op *ops;
	const size_t *index; /* NULL: identity */
	size_t n;
};

static size_t lc_in_index(const struct lc_input *in, size_t i)
{
	return in->index != NULL ? in->index[i] : i;
}

static const struct lc_op *lc_in_op(const struct lc_input *in, size_t i)
{
	return &in->ops[lc_in_index(in, i)];
}

static int lc_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Sorted values some op observes: completed results, and every CAS's
 * expected value. Values written more than once count as observed too. */
static uint64_t *lc_observed(const struct lc_input *in, size_t *count)
{
	uint64_t *seen = lc_calloc(2 * in->n, sizeof *seen);
	uint64_t *written = lc_calloc(in->n, sizeof *written);
	size_t n_seen = 0, n_written = 0;

	for (size_t i = 0; i < in->n; i++) {
		const struct lc_op *op = lc_in_op(in, i);

		if (op->return_ns != LC_NEVER && op->kind != LC_PUT)
			seen[n_seen++] = op->out;
		if (op->kind == LC_CAS)
			seen[n_seen++] = op->arg;
		if (op->kind == LC_PUT || op->kind == LC_CAS)
			written[n_written++] = op->kind == LC_PUT ? op->arg
			                                          : op->arg2;
	}
	qsort(written, n_written, sizeof *written, lc_cmp_u64);
	for (size_t i = 1; i < n_written; i++)
		if (written[i] == written[i - 1])
			seen[n_seen++] = written[i];
	free(written);
	LC_ASSERT(n_seen <= 2 * in->n);
	qsort(seen, n_seen, sizeof *seen, lc_cmp_u64);
	*count = n_seen;
	return seen;
}

/* Whether a pending op may matter (see the top of this file). */
static bool lc_pending_matters(const struct lc_op *op,
                               const uint64_t *observed, size_t count)
{
	uint64_t written;

	if (op->kind == LC_GET)
		return false;
	if (op->kind == LC_DEL)
		return true;
	written = op->kind == LC_PUT ? op->arg : op->arg2;
	return written == 0 || bsearch(&written, observed, count,
	                               sizeof *observed, lc_cmp_u64) != NULL;
}

static int lc_cmp_kop(const void *a, const void *b)
{
	const struct lc_kop *x = a, *y = b;

	if (x->op->call_ns != y->op->call_ns)
		return x->op->call_ns < y->op->call_ns ? -1 : 1;
	return (x->index > y->index) - (x->index < y->index);
}

/* Fills s->kops and s->pops, each by call time. */
static void lc_build_ops(struct lc_search *s, const struct lc_input *in)
{
	size_t observed_count;
	uint64_t *observed = lc_observed(in, &observed_count);
	uint32_t last_del = LC_NONE;

	s->kops = lc_calloc(in->n, sizeof *s->kops);
	s->pops = lc_calloc(in->n, sizeof *s->pops);
	for (size_t i = 0; i < in->n; i++) {
		const struct lc_op *op = lc_in_op(in, i);
		struct lc_kop k = {op, lc_in_index(in, i), LC_NONE};

		if (op->return_ns != LC_NEVER)
			s->kops[s->kop_count++] = k;
		else if (lc_pending_matters(op, observed, observed_count))
			s->pops[s->pop_count++] = k;
	}
	free(observed);
	LC_ASSERT(s->kop_count + s->pop_count < LC_NONE);
	qsort(s->kops, s->kop_count, sizeof *s->kops, lc_cmp_kop);
	qsort(s->pops, s->pop_count, sizeof *s->pops, lc_cmp_kop);
	for (uint32_t i = 0; i < s->pop_count; i++) {
		if (s->pops[i].op->kind != LC_DEL)
			continue;
		s->pops[i].prev_pending_del = last_del;
		last_del = i;
	}
}

/* Events by time; at equal times calls first, so that ties overlap. */
static int lc_cmp_entry(const void *a, const void *b)
{
	const struct lc_entry *x = a, *y = b;

	if (x->time_ns != y->time_ns)
		return x->time_ns < y->time_ns ? -1 : 1;
	if (x->is_return != y->is_return)
		return x->is_return ? 1 : -1;
	return (x->kop > y->kop) - (x->kop < y->kop);
}

/* Builds the time-ordered, doubly linked list of completed ops' events. */
static void lc_build_entries(struct lc_search *s)
{
	struct lc_entry **call_of = lc_calloc(s->kop_count, sizeof *call_of);
	struct lc_entry *prev = &s->head;
	size_t count = 2 * s->kop_count;

	s->entries = lc_calloc(count, sizeof *s->entries);
	for (uint32_t i = 0; i < s->kop_count; i++) {
		const struct lc_op *op = s->kops[i].op;

		s->entries[2 * i] = (struct lc_entry){
			.time_ns = op->call_ns, .kop = i};
		s->entries[2 * i + 1] = (struct lc_entry){
			.time_ns = op->return_ns, .kop = i, .is_return = true};
	}
	qsort(s->entries, count, sizeof *s->entries, lc_cmp_entry);
	for (size_t i = 0; i < count; i++) {
		struct lc_entry *e = &s->entries[i];

		e->prev = prev;
		prev->next = e;
		prev = e;
		if (!e->is_return)
			call_of[e->kop] = e;
		else
			call_of[e->kop]->match = e;
	}
	prev->next = NULL;
	free(call_of);
}

static void lc_validate(const struct lc_input *in)
{
	for (size_t i = 0; i < in->n; i++) {
		const struct lc_op *op = lc_in_op(in, i);

		LC_ASSERT(op->kind >= LC_GET && op->kind <= LC_CAS);
		LC_ASSERT(op->call_ns <= op->return_ns);
		LC_ASSERT(op->call_ns != LC_NEVER);
		LC_ASSERT(op->key == lc_in_op(in, 0)->key);
	}
}

static void lc_explain(const struct lc_search *s, const struct lc_input *in,
                       enum lc_verdict verdict, struct lc_report *report)
{
	const struct lc_kop *k;

	if (verdict == LC_UNKNOWN) {
		lc_appendf(report->why, sizeof report->why,
		           "key %" PRIu64 ": budget of %" PRIu64 " states spent "
		           "before a verdict; %zu ops, %zu of them pending kept",
		           report->key, s->explored, in->n, s->pop_count);
		return;
	}
	k = &s->kops[s->best_blocker];
	lc_appendf(report->why, sizeof report->why,
	           "key %" PRIu64 ": longest linearizable prefix has %zu ops, "
	           "ending in state %" PRIu64 "; then op #%zu cannot take "
	           "effect before it returns: ",
	           report->key, s->best_depth, s->best_state, k->index);
	/* The op's description goes last: it is the part to cut if long. */
	lc_describe(k->op, report->why, sizeof report->why);
}

static enum lc_verdict lc_check_input(const struct lc_input *in,
                                      uint64_t budget_states,
                                      struct lc_report *report)
{
	struct lc_search s = {.best_blocker = LC_NONE};
	enum lc_verdict verdict;

	memset(report, 0, sizeof *report);
	report->ops = in->n;
	if (in->n == 0)
		return LC_LINEARIZABLE;
	lc_validate(in);
	report->key = lc_in_op(in, 0)->key;
	lc_build_ops(&s, in);
	lc_build_entries(&s);
	s.cbits = lc_calloc((s.kop_count + 63) / 64, sizeof *s.cbits);
	s.pbits = lc_calloc((s.pop_count + 63) / 64, sizeof *s.pbits);
	s.stack = lc_calloc(s.kop_count + s.pop_count, sizeof *s.stack);
	lc_memo_init(&s.memo, (s.kop_count + 63) / 64, (s.pop_count + 63) / 64);

	verdict = lc_search_run(&s, budget_states);
	report->states_explored = s.explored;
	if (verdict != LC_LINEARIZABLE)
		lc_explain(&s, in, verdict, report);

	lc_memo_free(&s.memo);
	free(s.stack);
	free(s.pbits);
	free(s.cbits);
	free(s.entries);
	free(s.pops);
	free(s.kops);
	return verdict;
}

enum lc_verdict lc_check_key(const struct lc_op *ops, size_t n,
                             uint64_t budget_states, struct lc_report *report)
{
	struct lc_input in = {.ops = ops, .index = NULL, .n = n};
	struct lc_report scratch;

	return lc_check_input(&in, budget_states,
	                      report != NULL ? report : &scratch);
}

struct lc_keyed {
	uint64_t key;
	size_t index;
};

static int lc_cmp_keyed(const void *a, const void *b)
{
	const struct lc_keyed *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return (x->index > y->index) - (x->index < y->index);
}

/* Indices of ops sorted by (key, index). */
static size_t *lc_order_by_key(const struct lc_op *ops, size_t n)
{
	struct lc_keyed *keyed = lc_calloc(n, sizeof *keyed);
	size_t *order = lc_calloc(n, sizeof *order);

	for (size_t i = 0; i < n; i++)
		keyed[i] = (struct lc_keyed){ops[i].key, i};
	qsort(keyed, n, sizeof *keyed, lc_cmp_keyed);
	for (size_t i = 0; i < n; i++)
		order[i] = keyed[i].index;
	free(keyed);
	return order;
}

enum lc_verdict lc_check_history(const struct lc_op *ops, size_t n,
                                 uint64_t budget_states,
                                 struct lc_report *report)
{
	size_t *order = lc_order_by_key(ops, n);
	struct lc_report scratch, unknown = {0};
	enum lc_verdict verdict = LC_LINEARIZABLE;
	uint64_t explored = 0;

	if (report == NULL)
		report = &scratch;
	for (size_t start = 0, end = 0; start < n && verdict != LC_VIOLATION;
	     start = end) {
		struct lc_input in = {.ops = ops, .index = &order[start]};
		enum lc_verdict v;

		while (end < n && ops[order[end]].key == ops[order[start]].key)
			end++;
		in.n = end - start;
		v = lc_check_input(&in, budget_states, report);
		explored += report->states_explored;
		if (v == LC_UNKNOWN && verdict == LC_LINEARIZABLE)
			unknown = *report;
		if (v != LC_LINEARIZABLE)
			verdict = v;
	}
	free(order);
	if (verdict == LC_UNKNOWN)
		*report = unknown;
	if (verdict == LC_LINEARIZABLE) {
		memset(report, 0, sizeof *report);
		report->ops = n;
		report->states_explored = explored;
	}
	return verdict;
}
