/* Linearizability checker: see lincheck.h for the model and the API.
 *
 * Completed ops are searched as Porcupine does. Ops that got no reply
 * (pending) are optional: any linearization of the completed ops plus some
 * pending ones is a witness, since the rest could take effect after it. So
 * success is "every completed op is linearized", and pending ops are kept
 * out of the event list, which they would never leave. Each pruning below
 * keeps a witness whenever there is one:
 *  - Pending ops are tried after the completed candidates at each step,
 *    whenever called before the first remaining return.
 *  - A pending op that would not change the state is never lifted: leaving
 *    it out is the same. Nor is one right after a pending op unless it
 *    reads the state that op left (see lc_observes).
 *  - Liveness. Say a pending op p writes w, and in a witness the ops after
 *    p up to the next change of state include no reader of w: a completed
 *    op reporting w (out == w, or a CAS that swapped from w), a completed
 *    failed CAS that did not report what it saw (it reads "not its
 *    expected value"), or a pending CAS expecting w. Then dropping p from
 *    the witness leaves one: the ops in between check nothing about the
 *    state, and the next change of state (a PUT, a DEL or a swap) leaves the
 *    same state whatever it found, unless it reads w. So p is only worth
 *    lifting while such a reader is left to linearize. Readers only go as
 *    the search goes deeper, so once p is dead it stays dead on that path.
 *    Pending ops that are dead from the start (never read, and GETs) are
 *    dropped before the search.
 *  - The memo key holds the pending set masked to live ops: two
 *    configurations whose pending sets differ only in dead ops (used or
 *    not) have the same continuations, as dead ops are never lifted.
 *  - A configuration reached right after a pending op (only a reader may
 *    follow, see lc_observes) is covered by the same one reached otherwise;
 *    one memo entry keeps the freer of the two.
 *  - Pending DELs are interchangeable: one called earlier can stand in for
 *    one called later at any point. So they are lifted in call order only.
 *    (They all write 0, so they are live or dead together.)
 *  - An op whose result no state can give (lc_impossible) is a violation
 *    before any search.
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
	bool swaps, out_matches = op->out_unknown || op->out == state;

	switch (op->kind) {
	case LC_GET:
		*next = state;
		return pending || out_matches;
	case LC_PUT:
		*next = op->arg;
		return true;
	case LC_DEL:
		*next = 0;
		return pending || out_matches;
	case LC_CAS:
		swaps = state != 0 && state == op->arg;
		*next = swaps ? op->arg2 : state;
		return pending || ((op->out_ok != 0) == swaps && out_matches);
	default:
		LC_ASSERT(false);
		return false;
	}
}

/* The value a completed op says the state held: its out when reported, the
 * expected value of a CAS that swapped; false when it says nothing about
 * one value (a PUT, an unreported GET/DEL or failed CAS). */
static bool lc_seen(const struct lc_op *op, uint64_t *value)
{
	LC_ASSERT(op->return_ns != LC_NEVER);
	if (op->kind == LC_PUT)
		return false;
	if (!op->out_unknown) {
		*value = op->out;
		return true;
	}
	if (op->kind == LC_CAS && op->out_ok) {
		*value = op->arg;
		return true;
	}
	return false;
}

/* A completed failed CAS that did not say what it saw reads every value
 * but its expected one. */
static bool lc_blind_cas(const struct lc_op *op)
{
	return op->kind == LC_CAS && op->return_ns != LC_NEVER &&
	       op->out_unknown && !op->out_ok;
}

/* The value a pending op would write, if it can change the state at all. */
static bool lc_writes(const struct lc_op *op, uint64_t *value)
{
	switch (op->kind) {
	case LC_PUT:
		*value = op->arg;
		return true;
	case LC_DEL:
		*value = 0;
		return true;
	case LC_CAS:
		*value = op->arg2;
		return op->arg != 0; /* expecting absent never swaps */
	default:
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
	if (op->kind == LC_CAS && !pending && op->out_unknown)
		lc_appendf(buf, size, " %s, saw ?",
		           op->out_ok ? "ok" : "failed");
	else if (op->kind == LC_CAS && !pending)
		lc_appendf(buf, size, " %s, saw %" PRIu64,
		           op->out_ok ? "ok" : "failed", op->out);
	else if (op->kind != LC_PUT && !pending && op->out_unknown)
		lc_appendf(buf, size, " -> ?");
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
 * Configurations visited, keyed by (completed set, live pending set, state)
 * and compared in full: open addressing with linear probing on a hash of
 * the whole key, kept under half full, so a lookup examines about two slots
 * however many configurations share a completed set. A completed set is
 * stored from its first word that is not all ones to its last nonzero word:
 * the search keeps it a full prefix plus the ops in flight, so a row is a
 * few words however long the history. */

struct lc_memo_slot {
	uint64_t hash; /* of the whole key */
	uint64_t state;
	uint32_t row;  /* 1 + offset of the row in the arena; 0: empty slot */
	uint32_t lo;   /* first word of the completed set stored */
	uint32_t len;  /* words of it stored; the pending set follows */
	bool after_pending; /* only reached right after a pending op */
};

struct lc_memo {
	struct lc_memo_slot *slots;
	size_t slot_count; /* a power of two */
	size_t slot_used;
	uint64_t *arena;
	size_t arena_used, arena_cap; /* words */
	size_t pwords;                /* of a pending set */
	uint64_t lookups, probes;
};

static void lc_memo_init(struct lc_memo *m, size_t pwords)
{
	*m = (struct lc_memo){
		.slot_count = 1024,
		.arena_cap = 4096,
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

/* The hash of a key: chash is the completed set's (kept incrementally). */
static uint64_t lc_memo_hash(const struct lc_memo *m, uint64_t chash,
                             uint64_t state, const uint64_t *pbits)
{
	uint64_t h = chash ^ lc_mix64(~state);

	for (size_t i = 0; i < m->pwords; i++)
		h = lc_mix64(h ^ pbits[i]);
	return h;
}

/* Adds a configuration unless a visited one covers it: the same key, and
 * not restricted to readers where this one is not. Returns whether added
 * (or widened from a restricted entry). */
static bool lc_memo_visit(struct lc_memo *m, uint64_t hash, uint64_t state,
                          bool after_pending, const uint64_t *cbits,
                          size_t cwords, const uint64_t *pbits)
{
	size_t lo = 0, hi = cwords, j = hash & (m->slot_count - 1);
	size_t bytes;
	uint64_t *row;

	while (lo < hi && cbits[lo] == UINT64_MAX)
		lo++;
	while (hi > lo && cbits[hi - 1] == 0)
		hi--;
	bytes = (hi - lo) * sizeof *row;
	m->lookups++;
	for (; m->slots[j].row != 0; j = (j + 1) & (m->slot_count - 1)) {
		struct lc_memo_slot *s = &m->slots[j];
		const uint64_t *r = &m->arena[s->row - 1];

		m->probes++;
		if (s->hash != hash || s->state != state || s->lo != lo ||
		    s->len != hi - lo || memcmp(r, &cbits[lo], bytes) != 0 ||
		    memcmp(&r[hi - lo], pbits, m->pwords * sizeof *r) != 0)
			continue;
		if (s->after_pending <= after_pending)
			return false;
		s->after_pending = false;
		return true;
	}
	m->probes++; /* the empty slot */
	row = lc_memo_append(m, hi - lo + m->pwords);
	memcpy(row, &cbits[lo], bytes);
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
	/* Completed: the value slot of what it reads; pending: of what it
	 * writes. LC_NONE: no slot (reads nothing definite, or writes a value
	 * no completed op reads). */
	uint32_t value;
	bool blind;       /* completed: lc_blind_cas */
	bool always_live; /* pending: some pending CAS expects its value */
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
	size_t cwords, pwords;
	uint64_t *cbits;     /* linearized kops */
	uint64_t *pbits;     /* linearized pops */
	uint64_t *lbits;     /* live pops (see the top of this file) */
	uint64_t *kbits;     /* scratch: pbits & lbits, the memo's key */
	uint64_t cbits_hash; /* xor of lc_mix64(i) over cbits set */
	/* Liveness: per value slot, the completed ops reading it not yet
	 * linearized; writer_at[v..v+1) indexes writers, the pops writing v. */
	uint32_t *readers_left;
	uint32_t *writer_at, *writers;
	size_t blind_left; /* lc_blind_cas ops not yet linearized */
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

/* Recomputes whether pending op i can still be read (top of this file). */
static void lc_refresh_live(struct lc_search *s, uint32_t i)
{
	const struct lc_kop *k = &s->pops[i];
	bool live = k->always_live || s->blind_left > 0 ||
	            (k->value != LC_NONE && s->readers_left[k->value] > 0);

	if (live != lc_bit(s->lbits, i))
		lc_flip(s->lbits, i);
}

/* Completed op k was linearized (delta -1) or that was undone (+1). */
static void lc_account(struct lc_search *s, const struct lc_kop *k,
                       int delta)
{
	if (k->value != LC_NONE) {
		uint32_t *left = &s->readers_left[k->value];

		LC_ASSERT(delta > 0 || *left > 0);
		*left = delta > 0 ? *left + 1 : *left - 1;
		if (*left == (delta > 0 ? 1u : 0u))
			for (uint32_t w = s->writer_at[k->value];
			     w < s->writer_at[k->value + 1]; w++)
				lc_refresh_live(s, s->writers[w]);
	}
	if (k->blind) {
		LC_ASSERT(delta > 0 || s->blind_left > 0);
		s->blind_left = delta > 0 ? s->blind_left + 1
		                          : s->blind_left - 1;
		if (s->blind_left == (delta > 0 ? 1u : 0u))
			for (uint32_t i = 0; i < s->pop_count; i++)
				lc_refresh_live(s, i);
	}
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
 * exists. So it must be a completed GET, DEL or CAS (reading the state,
 * or, for a GET that did not report, leaving it for a later reader), or a
 * pending CAS that swaps (no-ops are never lifted). */
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

/* With the new bit already set and liveness updated: records the
 * configuration and pushes f, unless a visited configuration covers it
 * (then the caller undoes both). */
static bool lc_enter(struct lc_search *s, struct lc_frame f, uint64_t *state,
                     uint64_t next)
{
	uint64_t hash;

	for (size_t i = 0; i < s->pwords; i++)
		s->kbits[i] = s->pbits[i] & s->lbits[i];
	hash = lc_memo_hash(&s->memo, s->cbits_hash, next, s->kbits);
	if (!lc_memo_visit(&s->memo, hash, next, f.pending != LC_NONE,
	                   s->cbits, s->cwords, s->kbits))
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
	const struct lc_kop *k = &s->kops[call->kop];
	uint64_t next;

	if (!lc_observes(s, k->op) || !lc_step(k->op, false, *state, &next))
		return false;
	lc_flip_completed(s, call->kop);
	lc_account(s, k, -1);
	if (!lc_enter(s, (struct lc_frame){call, LC_NONE, *state}, state,
	              next)) {
		lc_account(s, k, +1);
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

	if (lc_bit(s->pbits, i) || !lc_bit(s->lbits, i) ||
	    !lc_observes(s, k->op))
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
	lc_account(s, &s->kops[f.entry->kop], +1);
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

/* Sorts values[0..*count) and drops repeats. */
static void lc_sort_unique(uint64_t *values, size_t *count)
{
	size_t kept = 0;

	qsort(values, *count, sizeof *values, lc_cmp_u64);
	for (size_t i = 0; i < *count; i++)
		if (kept == 0 || values[kept - 1] != values[i])
			values[kept++] = values[i];
	*count = kept;
}

static uint32_t lc_find(const uint64_t *values, size_t count, uint64_t value)
{
	const uint64_t *p =
		bsearch(&value, values, count, sizeof *values, lc_cmp_u64);

	return p != NULL ? (uint32_t)(p - values) : LC_NONE;
}

/* A value some op may have written, and the earliest call of such an op. */
struct lc_write {
	uint64_t value;
	uint64_t call_ns;
};

static int lc_cmp_write(const void *a, const void *b)
{
	const struct lc_write *x = a, *y = b;

	if (x->value != y->value)
		return x->value < y->value ? -1 : 1;
	return (x->call_ns > y->call_ns) - (x->call_ns < y->call_ns);
}

/* Whether op's own result is one no state could give, whatever the order:
 * then it says why in buf. writes: by value, earliest call first. */
static bool lc_impossible(const struct lc_op *op, const struct lc_write *writes,
                          size_t write_count, char *buf, size_t size)
{
	struct lc_write key;
	const struct lc_write *w;
	uint64_t seen;
	size_t lo = 0, hi = write_count;

	if (op->return_ns == LC_NEVER)
		return false;
	if (op->kind == LC_CAS && op->out_ok && op->arg == 0) {
		lc_appendf(buf, size, "a CAS expecting absent cannot swap");
		return true;
	}
	/* A CAS that reported what it saw swapped iff that was its expected
	 * value (never absent). */
	if (op->kind == LC_CAS && !op->out_unknown &&
	    (op->out_ok ? op->out != op->arg
	                : op->out != 0 && op->out == op->arg)) {
		lc_appendf(buf, size, "a CAS swaps exactly when it sees the "
		                      "value it expects");
		return true;
	}
	if (!lc_seen(op, &seen) || seen == 0)
		return false;
	key = (struct lc_write){seen, 0};
	while (lo < hi) { /* the first write of seen */
		size_t mid = lo + (hi - lo) / 2;

		if (lc_cmp_write(&writes[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	w = lo < write_count && writes[lo].value == seen ? &writes[lo] : NULL;
	if (w == NULL)
		lc_appendf(buf, size, "it reads %" PRIu64 ", which no write of "
		           "the key (answered or not) wrote", seen);
	else if (w->call_ns > op->return_ns)
		lc_appendf(buf, size, "it reads %" PRIu64 ", but every write "
		           "of it was called after it returned", seen);
	return w == NULL || w->call_ns > op->return_ns;
}

/* Finds an op whose result is impossible by itself (lc_impossible); names it
 * in report->why. A quick proof: the search would have to visit every
 * configuration to find out. */
static bool lc_find_impossible(const struct lc_input *in,
                               struct lc_report *report)
{
	struct lc_write *writes = lc_calloc(in->n, sizeof *writes);
	size_t count = 0;
	bool found = false;

	for (size_t i = 0; i < in->n; i++) {
		const struct lc_op *op = lc_in_op(in, i);
		bool wrote = op->kind == LC_PUT ||
		             (op->kind == LC_CAS &&
		              (op->return_ns == LC_NEVER || op->out_ok));

		if (wrote)
			writes[count++] = (struct lc_write){
				op->kind == LC_PUT ? op->arg : op->arg2,
				op->call_ns};
	}
	qsort(writes, count, sizeof *writes, lc_cmp_write);
	for (size_t i = 0; i < in->n && !found; i++) {
		const struct lc_op *op = lc_in_op(in, i);
		char reason[128] = "";

		if (!lc_impossible(op, writes, count, reason, sizeof reason))
			continue;
		lc_appendf(report->why, sizeof report->why,
		           "key %" PRIu64 ": op #%zu cannot have happened "
		           "(%s): ",
		           report->key, lc_in_index(in, i), reason);
		lc_describe(op, report->why, sizeof report->why);
		found = true;
	}
	free(writes);
	return found;
}

/* The value slots: every value a completed op reads (lc_seen), sorted, with
 * how many read it; and the values pending CASes expect. */
struct lc_values {
	uint64_t *read;
	size_t read_count;
	uint64_t *expected;
	size_t expected_count;
	size_t blind_count;
};

static void lc_collect_values(const struct lc_input *in, struct lc_values *v)
{
	*v = (struct lc_values){
		.read = lc_calloc(in->n, sizeof *v->read),
		.expected = lc_calloc(in->n, sizeof *v->expected),
	};
	for (size_t i = 0; i < in->n; i++) {
		const struct lc_op *op = lc_in_op(in, i);
		uint64_t seen;

		if (op->return_ns == LC_NEVER && op->kind == LC_CAS)
			v->expected[v->expected_count++] = op->arg;
		else if (op->return_ns != LC_NEVER && lc_seen(op, &seen))
			v->read[v->read_count++] = seen;
		v->blind_count += lc_blind_cas(op);
	}
	lc_sort_unique(v->read, &v->read_count);
	lc_sort_unique(v->expected, &v->expected_count);
}

static int lc_cmp_kop(const void *a, const void *b)
{
	const struct lc_kop *x = a, *y = b;

	if (x->op->call_ns != y->op->call_ns)
		return x->op->call_ns < y->op->call_ns ? -1 : 1;
	return (x->index > y->index) - (x->index < y->index);
}

/* The kept op for in's op i, or false for a pending op that can never be
 * read (see the top of this file). */
static bool lc_keep(const struct lc_input *in, size_t i,
                    const struct lc_values *v, struct lc_kop *k)
{
	const struct lc_op *op = lc_in_op(in, i);
	uint64_t value;

	*k = (struct lc_kop){op, lc_in_index(in, i), LC_NONE, LC_NONE,
	                     false, false};
	if (op->return_ns != LC_NEVER) {
		if (lc_seen(op, &value))
			k->value = lc_find(v->read, v->read_count, value);
		k->blind = lc_blind_cas(op);
		return true;
	}
	if (!lc_writes(op, &value))
		return false;
	k->value = lc_find(v->read, v->read_count, value);
	k->always_live = lc_find(v->expected, v->expected_count, value) !=
	                 LC_NONE;
	return k->value != LC_NONE || k->always_live || v->blind_count > 0;
}

/* Indexes, per value slot, the pending ops writing it. */
static void lc_index_writers(struct lc_search *s, size_t slot_count)
{
	uint32_t *fill;

	s->writer_at = lc_calloc(slot_count + 1, sizeof *s->writer_at);
	s->writers = lc_calloc(s->pop_count, sizeof *s->writers);
	for (uint32_t i = 0; i < s->pop_count; i++)
		if (s->pops[i].value != LC_NONE)
			s->writer_at[s->pops[i].value + 1]++;
	for (size_t v = 0; v < slot_count; v++)
		s->writer_at[v + 1] += s->writer_at[v];
	fill = lc_calloc(slot_count, sizeof *fill);
	for (uint32_t i = 0; i < s->pop_count; i++) {
		uint32_t v = s->pops[i].value;

		if (v != LC_NONE)
			s->writers[s->writer_at[v] + fill[v]++] = i;
	}
	free(fill);
}

/* Fills s->kops and s->pops, each by call time, and the liveness counts. */
static void lc_build_ops(struct lc_search *s, const struct lc_input *in)
{
	struct lc_values v;
	uint32_t last_del = LC_NONE;

	lc_collect_values(in, &v);
	s->kops = lc_calloc(in->n, sizeof *s->kops);
	s->pops = lc_calloc(in->n, sizeof *s->pops);
	s->readers_left = lc_calloc(v.read_count, sizeof *s->readers_left);
	s->blind_left = v.blind_count;
	for (size_t i = 0; i < in->n; i++) {
		struct lc_kop k;

		if (!lc_keep(in, i, &v, &k))
			continue;
		if (k.op->return_ns == LC_NEVER) {
			s->pops[s->pop_count++] = k;
			continue;
		}
		if (k.value != LC_NONE)
			s->readers_left[k.value]++;
		s->kops[s->kop_count++] = k;
	}
	LC_ASSERT(s->kop_count + s->pop_count < LC_NONE);
	qsort(s->kops, s->kop_count, sizeof *s->kops, lc_cmp_kop);
	qsort(s->pops, s->pop_count, sizeof *s->pops, lc_cmp_kop);
	for (uint32_t i = 0; i < s->pop_count; i++) {
		if (s->pops[i].op->kind != LC_DEL)
			continue;
		s->pops[i].prev_pending_del = last_del;
		last_del = i;
	}
	lc_index_writers(s, v.read_count);
	free(v.read);
	free(v.expected);
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

/* Allocates the bit sets and the memo; marks the live pending ops. */
static void lc_build_state(struct lc_search *s)
{
	s->cwords = (s->kop_count + 63) / 64;
	s->pwords = (s->pop_count + 63) / 64;
	s->cbits = lc_calloc(s->cwords, sizeof *s->cbits);
	s->pbits = lc_calloc(s->pwords, sizeof *s->pbits);
	s->lbits = lc_calloc(s->pwords, sizeof *s->lbits);
	s->kbits = lc_calloc(s->pwords, sizeof *s->kbits);
	s->stack = lc_calloc(s->kop_count + s->pop_count, sizeof *s->stack);
	lc_memo_init(&s->memo, s->pwords);
	for (uint32_t i = 0; i < s->pop_count; i++)
		lc_refresh_live(s, i);
}

static void lc_search_free(struct lc_search *s)
{
	lc_memo_free(&s->memo);
	free(s->stack);
	free(s->kbits);
	free(s->lbits);
	free(s->pbits);
	free(s->cbits);
	free(s->writers);
	free(s->writer_at);
	free(s->readers_left);
	free(s->entries);
	free(s->pops);
	free(s->kops);
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
	LC_ASSERT(s->best_blocker != LC_NONE);
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
	if (lc_find_impossible(in, report))
		return LC_VIOLATION;
	lc_build_ops(&s, in);
	lc_build_entries(&s);
	lc_build_state(&s);

	verdict = lc_search_run(&s, budget_states);
	report->states_explored = s.explored;
	report->memo_lookups = s.memo.lookups;
	report->memo_probes = s.memo.probes;
	if (verdict != LC_LINEARIZABLE)
		lc_explain(&s, in, verdict, report);
	lc_search_free(&s);
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
	uint64_t explored = 0, lookups = 0, probes = 0;

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
		lookups += report->memo_lookups;
		probes += report->memo_probes;
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
		report->memo_lookups = lookups;
		report->memo_probes = probes;
	}
	return verdict;
}
