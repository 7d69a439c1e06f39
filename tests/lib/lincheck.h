/* Linearizability checker for key-value histories (test code).
 *
 * Wing & Gong's search with Lowe's memoization, as Porcupine does it: the
 * call and return events of one key's operations sit in a time-ordered
 * linked list; the search repeatedly linearizes ("lifts") an operation whose
 * call precedes every pending return, and backtracks when the first
 * remaining event is a return. A hash table of the configurations already
 * visited (linearized ops, model state) keeps it from redoing work; keys are
 * compared in full, so a lookup costs O(1) probes whatever the history.
 * Keys are checked one at a time (P-compositionality: a history is
 * linearizable iff each key's sub-history is).
 *
 * Model, per key: the state is a uint64_t value, 0 meaning absent. Values
 * written should be nonzero; they need not be unique (uniqueness only makes
 * violations cheaper to prove).
 *   LC_GET            out = state.
 *   LC_PUT(arg)       state = arg; result ignored.
 *   LC_DEL            out = state; state = 0.
 *   LC_CAS(arg, arg2) if state != 0 && state == arg: state = arg2,
 *                     out_ok = 1, out = previous; else out_ok = 0,
 *                     out = state (unchanged).
 * With out_unknown set, the reply did not say what the op saw and out is
 * not checked: a GET then constrains nothing, a DEL only sets state = 0, a
 * failed CAS only says state != arg (or state was absent), a successful one
 * still says state == arg.
 *
 * Real time: op A must precede op B only if A.return_ns < B.call_ns; equal
 * times count as concurrent. An op with return_ns == LC_NEVER got no reply:
 * it may take effect at any time after its call or never (Porcupine's
 * "returns at +infinity"), and its result is not checked.
 *
 * Verdicts are exact: every pruning the search does (lincheck.c gives each
 * one's argument) keeps some witness whenever one exists, and the unit tests
 * compare verdicts with a brute force over every order of every subset.
 * Before searching, an op whose result no state of the model could give (a
 * read of a value no write of the key made, or only made by writes called
 * after the read returned) is reported as a violation at once.
 *
 * Limits: the search is exponential in the ops in flight at once (a proof
 * of violation visits every reachable configuration). Ops that got no reply
 * cost little when what they write is read by few ops: an unanswered write
 * is only tried while some op left to linearize could read its value, and
 * configurations that differ only in unanswered writes nobody can still
 * read are the same entry. Each configuration visited keeps 100 to 150
 * bytes (a table slot kept under half full, and a row of a few words plus
 * one bit per unanswered op) until the check returns, so a budget of 10^7
 * states is 1 to 1.5 GiB.
 */
#ifndef BYPAX_TESTS_LINCHECK_H
#define BYPAX_TESTS_LINCHECK_H

#include <stddef.h>
#include <stdint.h>

#define LC_NEVER UINT64_MAX

enum lc_kind { LC_GET = 1, LC_PUT, LC_DEL, LC_CAS };

struct lc_op {
	uint64_t key;
	uint64_t call_ns;
	uint64_t return_ns;  /* LC_NEVER when no reply came */
	uint8_t kind;        /* enum lc_kind */
	uint8_t out_ok;      /* CAS: 1 if it swapped */
	uint8_t out_unknown; /* 1: the reply did not report out (0, the
	                        zeroed default, means out is known) */
	uint64_t arg, arg2;  /* PUT value; CAS expected and new */
	uint64_t out;        /* GET value read; DEL/CAS previous value */
	uint32_t client;     /* for messages only */
};

enum lc_verdict {
	LC_LINEARIZABLE = 0,
	LC_VIOLATION = 1,
	LC_UNKNOWN = 2 /* search budget exhausted */
};

struct lc_report {
	uint64_t key;             /* the key the verdict is about */
	size_t ops;               /* ops of that key (whole history if all pass) */
	uint64_t states_explored; /* configurations visited */
	uint64_t memo_lookups;    /* configurations looked up in the memo */
	uint64_t memo_probes;     /* table slots examined by those lookups */
	char why[256];            /* violation or budget: readable reason */
};

/* Checks one key's history: ops[0..n) must all have the same key, a valid
 * kind and call_ns <= return_ns (aborts otherwise: a harness bug).
 * budget_states bounds the states explored; 0 means unlimited.
 * Returns LC_LINEARIZABLE, LC_VIOLATION (report->why names the op whose
 * result is impossible, or the longest linearizable prefix and the op that
 * could not be placed after it; "op #i" is the index into ops), or
 * LC_UNKNOWN when the budget ran out first. report may be NULL. */
enum lc_verdict lc_check_key(const struct lc_op *ops, size_t n,
                             uint64_t budget_states, struct lc_report *report);

/* Partitions a whole history by key and checks each key in ascending key
 * order, budget_states applying to each key separately. Stops at the first
 * violation: returns LC_VIOLATION with report->key naming that key ("op #i"
 * indexes the whole ops array). Otherwise returns LC_UNKNOWN if some key ran
 * out of budget (report names the first such key), else LC_LINEARIZABLE
 * (report->ops = n, states_explored and the memo counts summed over keys).
 * report may be NULL. */
enum lc_verdict lc_check_history(const struct lc_op *ops, size_t n,
                                 uint64_t budget_states,
                                 struct lc_report *report);

#endif /* BYPAX_TESTS_LINCHECK_H */
