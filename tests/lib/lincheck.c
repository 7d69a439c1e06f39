/* Linearizability checker: see lincheck.h for the model and the API.
 *
 * Two reductions of the search, both for ops that got no reply (pending):
 *  - Pending ops are optional: any linearization of the completed ops plus
 *    some pending ones is a witness, since the rest can go after it. So a
 *    pending op gets no return event, success is "every completed op is
 *    linearized", and a pending op that would not change the state is never
 *    lifted (it can always be left out).
 *  - Pending ops that can never matter are dropped before the search: a
 *    pending GET, and a pending PUT/CAS whose written value no completed op
 *    reads and no CAS expects. Such a value, once in the state, can only be
 *    overwritten before anything observes it, so leaving the write out
 *    changes nothing an op sees. (A value written twice is kept: uniqueness
 *    is what the argument needs.)
 *  - Pending DELs are interchangeable: one called earlier can stand in for
 *    one called later at any point. So they are lifted in call order only;
 *    k pending DELs then cost k + 1 cached sets instead of 2^k.
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

/* ---- The memo: a set of (linearized bitset, state) ---------------------- */

struct lc_memo_slot {
	uint64_t hash;
	uint64_t state;
	size_t bits_index; /* 1 + index into arena rows; 0 = empty slot */
};

struct lc_memo {
	struct lc_memo_slot *slots;
	size_t slot_count; /* a power of two */
	size_t used;
	uint64_t *arena; /* used rows of words_per_set words each */
	size_t arena_rows;
	size_t words_per_set;
};

static void lc_memo_init(struct lc_memo *m, size_t words_per_set)
{
	m->slot_count = 1024;
	m->slots = lc_calloc(m->slot_count, sizeof *m->slots);
	m->used = 0;
	m->arena_rows = 512;
	m->arena = lc_calloc(m->arena_rows * words_per_set, sizeof(uint64_t));
	m->words_per_set = words_per_set;
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

		if (m->slots[i].bits_index == 0)
			continue;
		while (slots[j].bits_index != 0)
			j = (j + 1) & (count - 1);
		slots[j] = m->slots[i];
	}
	free(m->slots);
	m->slots = slots;
	m->slot_count = count;
}

/* Adds (bits, state). Returns false if it was already there. */
static bool lc_memo_insert(struct lc_memo *m, uint64_t hash, uint64_t state,
                           const uint64_t *bits)
{
	size_t words = m->words_per_set;
	size_t j = hash & (m->slot_count - 1);

	for (; m->slots[j].bits_index != 0; j = (j + 1) & (m->slot_count - 1)) {
		const struct lc_memo_slot *s = &m->slots[j];
		const uint64_t *row = &m->arena[(s->bits_index - 1) * words];

		if (s->hash == hash && s->state == state &&
		    memcmp(row, bits, words * sizeof *bits) == 0)
			return false;
	}
	if (m->used == m->arena_rows) {
		m->arena_rows *= 2;
		m->arena = realloc(m->arena,
		                   m->arena_rows * words * sizeof(uint64_t));
		LC_ASSERT(m->arena != NULL);
	}
	memcpy(&m->arena[m->used * words], bits, words * sizeof *bits);
	m->used++;
	m->slots[j] = (struct lc_memo_slot){hash, state, m->used};
	/* Linear probing stays short below half full. */
	if (m->used * 2 > m->slot_count)
		lc_memo_grow(m);
	return true;
}

/* ---- The search --------------------------------------------------------- */

/* An op kept for the search. */
struct lc_kop {
	const struct lc_op *op;
	size_t index;           /* in the caller's array, for messages */
	uint32_t prev_pending_del; /* the pending DEL called just before */
	bool pending;
};

/* A call or return event in the time-ordered list. */
struct lc_entry {
	struct lc_entry *prev, *next;
	struct lc_entry *match; /* call: its return; NULL for a pending op */
	uint64_t time_ns;
	uint32_t kop;
	bool is_return;
};

struct lc_frame {
	struct lc_entry *call;
	uint64_t state_before;
};

struct lc_search {
	struct lc_kop *kops;
	size_t kop_count;
	struct lc_entry *entries;
	size_t entry_count;
	struct lc_entry head; /* sentinel: head.next is the first event */
	uint64_t *bits;       /* linearized kops */
	uint64_t bits_hash;   /* xor of lc_mix64(i) over set bits */
	struct lc_frame *stack;
	size_t depth;
	size_t completed_total, completed_done;
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

static void lc_flip(struct lc_search *s, uint32_t i)
{
	s->bits[i / 64] ^= UINT64_C(1) << (i % 64);
	s->bits_hash ^= lc_mix64(i);
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

static void lc_lift(struct lc_entry *call)
{
	lc_unlink(call);
	if (call->match != NULL)
		lc_unlink(call->match);
}

static void lc_unlift(struct lc_entry *call)
{
	if (call->match != NULL)
		lc_relink(call->match);
	lc_relink(call);
}

/* Tries to linearize the op of call entry e next, from *state. */
static bool lc_try_lift(struct lc_search *s, struct lc_entry *e,
                        uint64_t *state)
{
	const struct lc_kop *k = &s->kops[e->kop];
	uint64_t next;

	/* Pending DELs in call order only (see the top of this file). */
	if (k->prev_pending_del != LC_NONE &&
	    !lc_bit(s->bits, k->prev_pending_del))
		return false;
	if (!lc_step(k->op, k->pending, *state, &next))
		return false;
	/* A pending op that changes nothing can be left out. */
	if (k->pending && next == *state)
		return false;
	lc_flip(s, e->kop);
	if (!lc_memo_insert(&s->memo, s->bits_hash ^ lc_mix64(~next), next,
	                    s->bits)) {
		lc_flip(s, e->kop);
		return false;
	}
	LC_ASSERT(s->depth < s->kop_count);
	s->stack[s->depth++] = (struct lc_frame){e, *state};
	*state = next;
	lc_lift(e);
	s->completed_done += !k->pending;
	s->explored++;
	return true;
}

/* Undoes the last lift; returns the entry to try after it. */
static struct lc_entry *lc_backtrack(struct lc_search *s, uint64_t *state)
{
	struct lc_frame f;

	LC_ASSERT(s->depth > 0);
	f = s->stack[--s->depth];
	lc_unlift(f.call);
	lc_flip(s, f.call->kop);
	s->completed_done -= !s->kops[f.call->kop].pending;
	*state = f.state_before;
	return f.call->next;
}

static enum lc_verdict lc_search_run(struct lc_search *s, uint64_t budget)
{
	struct lc_entry *e = s->head.next;
	uint64_t state = 0;

	for (;;) {
		if (s->completed_done == s->completed_total)
			return LC_LINEARIZABLE;
		/* Every completed op has a return event still in the list. */
		LC_ASSERT(e != NULL);
		if (!e->is_return && lc_try_lift(s, e, &state)) {
			if (budget != 0 && s->explored >= budget &&
			    s->completed_done != s->completed_total)
				return LC_UNKNOWN;
			e = s->head.next;
			continue;
		}
		if (!e->is_return) {
			e = e->next;
			continue;
		}
		/* e's op must take effect before e, and nothing left fits. */
		if (s->best_blocker == LC_NONE || s->depth > s->best_depth) {
			s->best_depth = s->depth;
			s->best_blocker = e->kop;
			s->best_state = state;
		}
		if (s->depth == 0)
			return LC_VIOLATION;
		e = lc_backtrack(s, &state);
	}
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

/* Whether the op may matter to the search (see the top of this file). */
static bool lc_keep(const struct lc_op *op, const uint64_t *observed,
                    size_t observed_count)
{
	uint64_t written;

	if (op->return_ns != LC_NEVER || op->kind == LC_DEL)
		return true;
	if (op->kind == LC_GET)
		return false;
	written = op->kind == LC_PUT ? op->arg : op->arg2;
	return written == 0 || bsearch(&written, observed, observed_count,
	                               sizeof *observed, lc_cmp_u64) != NULL;
}

static int lc_cmp_kop(const void *a, const void *b)
{
	const struct lc_kop *x = a, *y = b;

	if (x->op->call_ns != y->op->call_ns)
		return x->op->call_ns < y->op->call_ns ? -1 : 1;
	return (x->index > y->index) - (x->index < y->index);
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

/* Fills s->kops, in call order, with the ops that may matter. */
static void lc_build_kops(struct lc_search *s, const struct lc_input *in)
{
	size_t observed_count;
	uint64_t *observed = lc_observed(in, &observed_count);
	uint32_t last_pending_del = LC_NONE;

	s->kops = lc_calloc(in->n, sizeof *s->kops);
	s->kop_count = 0;
	for (size_t i = 0; i < in->n; i++) {
		const struct lc_op *op = lc_in_op(in, i);

		if (!lc_keep(op, observed, observed_count))
			continue;
		s->kops[s->kop_count++] = (struct lc_kop){
			.op = op,
			.index = lc_in_index(in, i),
			.pending = op->return_ns == LC_NEVER,
		};
	}
	free(observed);
	LC_ASSERT(s->kop_count < LC_NONE);
	qsort(s->kops, s->kop_count, sizeof *s->kops, lc_cmp_kop);
	for (uint32_t i = 0; i < s->kop_count; i++) {
		struct lc_kop *k = &s->kops[i];

		k->prev_pending_del = LC_NONE;
		if (k->pending && k->op->kind == LC_DEL) {
			k->prev_pending_del = last_pending_del;
			last_pending_del = i;
		}
		s->completed_total += !k->pending;
	}
}

/* Builds the time-ordered, doubly linked event list. */
static void lc_build_entries(struct lc_search *s)
{
	struct lc_entry **call_of = lc_calloc(s->kop_count, sizeof *call_of);
	struct lc_entry *prev = &s->head;

	s->entries = lc_calloc(2 * s->kop_count, sizeof *s->entries);
	s->entry_count = 0;
	for (uint32_t i = 0; i < s->kop_count; i++) {
		const struct lc_op *op = s->kops[i].op;

		s->entries[s->entry_count++] = (struct lc_entry){
			.time_ns = op->call_ns, .kop = i};
		if (!s->kops[i].pending)
			s->entries[s->entry_count++] = (struct lc_entry){
				.time_ns = op->return_ns,
				.kop = i,
				.is_return = true};
	}
	qsort(s->entries, s->entry_count, sizeof *s->entries, lc_cmp_entry);
	for (size_t i = 0; i < s->entry_count; i++) {
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
		           report->key, s->explored, in->n,
		           s->kop_count - s->completed_total);
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
	lc_build_kops(&s, in);
	lc_build_entries(&s);
	s.bits = lc_calloc(s.kop_count / 64 + 1, sizeof *s.bits);
	s.stack = lc_calloc(s.kop_count, sizeof *s.stack);
	lc_memo_init(&s.memo, s.kop_count / 64 + 1);

	verdict = lc_search_run(&s, budget_states);
	report->states_explored = s.explored;
	if (verdict != LC_LINEARIZABLE)
		lc_explain(&s, in, verdict, report);

	lc_memo_free(&s.memo);
	free(s.stack);
	free(s.bits);
	free(s.entries);
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
