/* Unit tests for the pure client engine (client/engine.c): each rule of a
 * lane (client.h, engine.h), step by step on an explicit clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"

#define MS(n) ((uint64_t)(n)*1000 * 1000)
#define NONCE 0x10000ull
#define SESSION (PX_SESSION_ID_BIT | 42u)
#define TIMEOUT MS(200)
#define DEADLINE MS(5000)
#define T0 MS(1000)

/* A client of three members with one lane, on a fake clock. */
struct eng_fixture {
	struct bpx_engine e;
	struct bpx_engine_lane l;
	struct bpx_engine_out out;
	uint64_t now;
	uint8_t cmd[8];
	uint8_t reply_value[PX_SESSION_ID_BYTES];
	uint32_t reply_len;
};

static void fixture_init(struct eng_fixture *f, uint8_t tag_bits, uint64_t tag)
{
	memset(f, 0, sizeof(*f));
	struct bpx_engine_config cfg = {
		.member_count = 3,
		.seq_tag_bits = tag_bits,
		.timeout_ns = TIMEOUT,
		.deadline_ns = DEADLINE,
		.seed = 7,
	};
	bpx_engine_init(&f->e, &cfg);
	bpx_engine_lane_init(&f->e, &f->l, 0, NONCE, tag);
	memcpy(f->cmd, "command", 8);
	f->now = T0;
}

static int eng_setup(void **state)
{
	static struct eng_fixture f;
	fixture_init(&f, 0, 0);
	*state = &f;
	return 0;
}

#define F ((struct eng_fixture *)*state)
#define AT(t) (F->now = T0 + (t))
#define WRITE()                                                                \
	bpx_engine_submit(&F->e, &F->l, false, F->cmd, 8, F->now, &F->out)
#define READ() bpx_engine_submit(&F->e, &F->l, true, F->cmd, 8, F->now, &F->out)
#define TICK() bpx_engine_tick(&F->e, &F->l, F->now, &F->out)
#define CLEAR() (F->out.count = 0)
#define EFFECTS(n) assert_int_equal(F->out.count, (n))
#define EFFECT(i) (&F->out.effects[(i)])

/* The reply from member `from` to the lane's outstanding attempt. */
static bool reply(void **state, uint8_t from, uint8_t status, uint8_t hint,
		  const void *value, uint32_t len)
{
	struct px_msg m = {
		.type = PX_MSG_REPLY,
		.from = from,
		.to = PX_TO_CLIENT,
		.status = status,
		.leader_hint = hint,
		.client_id = F->l.client_id,
		.seq = F->l.wire_seq,
		.value = value,
		.value_len = len,
	};
	return bpx_engine_on_reply(&F->e, &F->l, &m, F->now, &F->out);
}

static bool reply_opened(void **state, uint8_t from, uint64_t id)
{
	for (unsigned i = 0; i < PX_SESSION_ID_BYTES; i++)
		F->reply_value[i] = (uint8_t)(id >> (8 * i));
	return reply(state, from, PX_REPLY_OK, PX_TO_CLIENT, F->reply_value,
		     PX_SESSION_ID_BYTES);
}

/* Asserts effect i is a SEND of (member, flags, client_id, seq). */
static void assert_send(void **state, uint32_t i, uint8_t member, uint8_t flags,
			uint64_t client_id, uint64_t seq)
{
	const struct bpx_engine_effect *f = EFFECT(i);
	assert_int_equal(f->kind, BPX_ENGINE_SEND);
	assert_int_equal(f->send.type, PX_MSG_REQUEST);
	assert_int_equal(f->send.member, member);
	assert_int_equal(f->send.flags, flags);
	assert_int_equal(f->send.client_id, client_id);
	assert_int_equal(f->send.seq, seq);
	if (flags & PX_FLAG_OPEN) {
		assert_null(f->send.cmd); /* an OPEN's value is empty */
		assert_int_equal(f->send.cmd_len, 0);
	} else {
		assert_ptr_equal(f->send.cmd, F->cmd);
		assert_int_equal(f->send.cmd_len, 8);
	}
}

static void assert_timer(void **state, uint32_t i, uint64_t at)
{
	assert_int_equal(EFFECT(i)->kind, BPX_ENGINE_TIMER);
	assert_int_equal(EFFECT(i)->at_ns, at);
	assert_int_equal(bpx_engine_lane_wake_ns(&F->l), at);
}

static void assert_done(void **state, uint32_t i, int status)
{
	assert_int_equal(EFFECT(i)->kind, BPX_ENGINE_DONE);
	assert_int_equal(EFFECT(i)->done.status, status);
	assert_false(bpx_engine_lane_busy(&F->l));
	assert_int_equal(bpx_engine_lane_wake_ns(&F->l), BPX_ENGINE_NO_WAKE);
}

/* Opens the lane's session (SESSION, from member 0) and completes its
 * first write (seq 1), from now on. */
static void open_session(void **state)
{
	WRITE();
	CLEAR();
	assert_true(reply_opened(state, 0, SESSION));
	CLEAR();
	assert_true(reply(state, 0, PX_REPLY_OK, 0, NULL, 0));
	CLEAR();
	assert_int_equal(F->l.session_id, SESSION);
	assert_int_equal(F->l.seq, 1);
}

/* Sessions: a lane's first write first sends an OPEN with the lane's
 * nonce and a random seq; the OK carries the session id, and the write goes
 * out at once on it, seq 1, to the member that answered. */
static void test_first_write_opens_a_session(void **state)
{
	assert_int_equal(bpx_engine_leader(&F->e), 0);
	WRITE();
	EFFECTS(2);
	uint64_t open_seq = F->l.wire_seq;
	assert_true(open_seq >= 1 && open_seq <= PX_SEQ_WRITE_MAX);
	assert_send(state, 0, 0, PX_FLAG_OPEN, NONCE, open_seq);
	assert_timer(state, 1, F->now + TIMEOUT);
	CLEAR();

	AT(MS(1));
	assert_true(reply_opened(state, 0, SESSION));
	EFFECTS(2);
	assert_send(state, 0, 0, 0, SESSION, 1);
	assert_timer(state, 1, F->now + TIMEOUT);
	assert_int_equal(F->e.stats.opens, 1);
	CLEAR();

	AT(MS(2));
	static const uint8_t value[] = { 1, 2, 3 };
	assert_true(reply(state, 0, PX_REPLY_OK, 0, value, sizeof(value)));
	EFFECTS(1);
	assert_done(state, 0, 0);
	assert_ptr_equal(EFFECT(0)->done.reply, value);
	assert_int_equal(EFFECT(0)->done.reply_len, sizeof(value));
	assert_int_equal(EFFECT(0)->done.member, 0);
	assert_int_equal(F->e.stats.completed, 1);
	assert_int_equal(F->e.stats.sent, 2);
	CLEAR();

	/* The next write goes on the same session with the next seq. */
	WRITE();
	assert_send(state, 0, 0, 0, SESSION, 2);
}

/* The OPEN is answered by whoever leads: the write follows it there. */
static void test_write_follows_the_member_that_opened(void **state)
{
	WRITE();
	CLEAR();
	assert_true(reply_opened(state, 2, SESSION));
	assert_send(state, 0, 2, 0, SESSION, 1);
	assert_int_equal(bpx_engine_leader(&F->e), 2);
}

static void test_open_without_session_id_is_malformed(void **state)
{
	WRITE();
	CLEAR();
	assert_true(reply(state, 0, PX_REPLY_OK, 0, NULL, 0));
	EFFECTS(1);
	assert_done(state, 0, -BPX_EMALFORMED);
	assert_int_equal(F->l.session_id, 0);
	assert_true(reply_opened(state, 0, 42) == false); /* idle: ignored */
}

/* The OPEN seqs come from the seeded PRNG: the same seed, the same seqs. */
static void test_open_seq_is_deterministic(void **state)
{
	(void)state;
	static struct eng_fixture a, b;
	fixture_init(&a, 0, 0);
	fixture_init(&b, 0, 0);
	bpx_engine_submit(&a.e, &a.l, false, a.cmd, 8, a.now, &a.out);
	bpx_engine_submit(&b.e, &b.l, false, b.cmd, 8, b.now, &b.out);
	assert_int_equal(a.l.wire_seq, b.l.wire_seq);
	assert_true(a.out.effects[0].send.flags & PX_FLAG_OPEN);
}

/* Reads are outside any session: the nonce, PX_FLAG_READ, and seqs from
 * PX_SEQ_READ_BASE + 1 up; they neither open nor advance the session. */
static void test_reads_are_outside_the_session(void **state)
{
	READ();
	EFFECTS(2);
	assert_send(state, 0, 0, PX_FLAG_READ, NONCE, PX_SEQ_READ_BASE + 1);
	CLEAR();
	assert_true(reply(state, 0, PX_REPLY_OK, 0, NULL, 0));
	assert_done(state, 0, 0);
	CLEAR();
	assert_int_equal(F->l.session_id, 0);
	open_session(state);
	READ();
	assert_send(state, 0, 0, PX_FLAG_READ, NONCE, PX_SEQ_READ_BASE + 2);
	CLEAR();
	assert_true(reply(state, 0, PX_REPLY_OK, 0, NULL, 0));
	CLEAR();
	assert_int_equal(F->l.seq, 1);
	WRITE();
	assert_send(state, 0, 0, 0, SESSION, 2);
}

/* Writes carry the lane's tag in their low seq_tag_bits. */
static void test_seq_tag(void **state)
{
	fixture_init(F, 16, 5);
	open_session(state);
	assert_int_equal(F->l.seq, 1);
	WRITE();
	assert_send(state, 0, 0, 0, SESSION, (2ull << 16) | 5);
}

/* REDIRECT with a valid hint goes to the hint at once, same (client_id,
 * seq), and the hint becomes the leader for later requests. */
static void test_redirect_with_hint(void **state)
{
	open_session(state);
	WRITE();
	CLEAR();
	AT(MS(3));
	assert_true(reply(state, 0, PX_REPLY_REDIRECT, 2, NULL, 0));
	EFFECTS(2);
	assert_send(state, 0, 2, 0, SESSION, 2);
	assert_timer(state, 1, F->now + TIMEOUT);
	assert_int_equal(bpx_engine_leader(&F->e), 2);
	assert_int_equal(F->e.stats.redirects, 1);
	assert_int_equal(F->e.stats.retries, 1);
}

/* REDIRECT without a hint (or hinting the member tried) goes to the next
 * member; after a full round of them, every further one backs off. */
static void test_redirects_all_round_back_off(void **state)
{
	open_session(state);
	WRITE();
	CLEAR();
	assert_true(reply(state, 0, PX_REPLY_REDIRECT, PX_TO_CLIENT, NULL, 0));
	assert_send(state, 0, 1, 0, SESSION, 2);
	CLEAR();
	assert_true(reply(state, 1, PX_REPLY_REDIRECT, 1, NULL, 0));
	assert_send(state, 0, 2, 0, SESSION, 2);
	CLEAR();
	AT(MS(10));
	assert_true(reply(state, 2, PX_REPLY_REDIRECT, PX_TO_CLIENT, NULL, 0));
	EFFECTS(1); /* the third: no send, a 1 ms backoff */
	assert_timer(state, 0, F->now + MS(1));
	CLEAR();
	AT(MS(10) + MS(1) - 1);
	TICK();
	EFFECTS(0);
	AT(MS(11));
	TICK();
	EFFECTS(2);
	assert_send(state, 0, 0, 0, SESSION, 2);
	assert_timer(state, 1, F->now + TIMEOUT);
	CLEAR();
	/* The fourth doubles the backoff. */
	assert_true(reply(state, 0, PX_REPLY_REDIRECT, PX_TO_CLIENT, NULL, 0));
	assert_timer(state, 0, F->now + MS(2));
	assert_int_equal(F->e.stats.redirects, 4);
	assert_int_equal(bpx_engine_leader(&F->e), 0);
}

/* BUSY backs off 1 ms, doubling to 50 ms, and resends to the same member. */
static void test_busy_backoff_doubles_to_50ms(void **state)
{
	open_session(state);
	WRITE();
	CLEAR();
	static const uint64_t want_ms[] = { 1, 2, 4, 8, 16, 32, 50, 50 };
	for (unsigned i = 0; i < sizeof(want_ms) / sizeof(want_ms[0]); i++) {
		assert_true(reply(state, 0, PX_REPLY_BUSY, 0, NULL, 0));
		EFFECTS(1);
		assert_timer(state, 0, F->now + MS(want_ms[i]));
		CLEAR();
		F->now += MS(want_ms[i]);
		TICK();
		EFFECTS(2);
		assert_send(state, 0, 0, 0, SESSION, 2);
		CLEAR();
	}
	assert_int_equal(F->e.stats.busy, 8);
	assert_int_equal(F->e.stats.retries, 8);
}

/* A REDIRECT or BUSY from another member than the one tried is a late
 * answer to an earlier attempt: ignored. */
static void test_late_busy_from_another_member_ignored(void **state)
{
	open_session(state);
	WRITE();
	CLEAR();
	assert_true(reply(state, 0, PX_REPLY_REDIRECT, 1, NULL, 0));
	CLEAR();
	assert_false(reply(state, 0, PX_REPLY_BUSY, 0, NULL, 0));
	assert_false(reply(state, 2, PX_REPLY_REDIRECT, 0, NULL, 0));
	EFFECTS(0);
	assert_int_equal(F->e.stats.ignored, 2);
	assert_int_equal(F->l.target, 1);
}

/* Replies to another seq or client id, or to an idle lane, are ignored. */
static void test_stale_replies_ignored(void **state)
{
	open_session(state);
	WRITE();
	CLEAR();
	struct px_msg m = {
		.type = PX_MSG_REPLY,
		.from = 0,
		.status = PX_REPLY_OK,
		.client_id = SESSION,
		.seq = 1, /* the previous write's */
	};
	assert_false(bpx_engine_on_reply(&F->e, &F->l, &m, F->now, &F->out));
	m.seq = 2;
	m.client_id = NONCE;
	assert_false(bpx_engine_on_reply(&F->e, &F->l, &m, F->now, &F->out));
	EFFECTS(0);
	assert_true(bpx_engine_lane_expects(&F->l, SESSION, 2));
	assert_false(bpx_engine_lane_expects(&F->l, SESSION, 1));
	assert_true(reply(state, 0, PX_REPLY_OK, 0, NULL, 0));
	CLEAR();
	m.client_id = SESSION;
	assert_false(bpx_engine_on_reply(&F->e, &F->l, &m, F->now, &F->out));
	assert_int_equal(F->e.stats.ignored, 3);
}

/* No reply within timeout_ns resends the same request to the next member. */
static void test_timeout_tries_the_next_member(void **state)
{
	open_session(state);
	WRITE();
	CLEAR();
	AT(TIMEOUT - 1);
	TICK();
	EFFECTS(0);
	AT(TIMEOUT);
	TICK();
	EFFECTS(2);
	assert_send(state, 0, 1, 0, SESSION, 2);
	assert_timer(state, 1, F->now + TIMEOUT);
	CLEAR();
	AT(2 * TIMEOUT);
	TICK();
	assert_send(state, 0, 2, 0, SESSION, 2);
	CLEAR();
	AT(3 * TIMEOUT);
	TICK();
	assert_send(state, 0, 0, 0, SESSION, 2); /* round the members */
	assert_int_equal(F->e.stats.timeouts, 3);
	/* A timeout is no news of the leader. */
	assert_int_equal(bpx_engine_leader(&F->e), 0);
}

/* At the deadline the request is done with -BPX_ETIMEDOUT (outcome
 * unknown), and the session goes on: the next write has the next seq. */
static void test_deadline_keeps_the_session(void **state)
{
	open_session(state);
	uint64_t start = F->now;
	WRITE();
	CLEAR();
	for (uint64_t t = start + TIMEOUT; t < start + DEADLINE; t += TIMEOUT) {
		F->now = t;
		TICK();
		CLEAR();
	}
	assert_int_equal(bpx_engine_lane_wake_ns(&F->l), start + DEADLINE);
	F->now = start + DEADLINE;
	TICK();
	EFFECTS(1);
	assert_done(state, 0, -BPX_ETIMEDOUT);
	assert_int_equal(EFFECT(0)->done.member, PX_TO_CLIENT);
	assert_int_equal(F->e.stats.deadlines, 1);
	CLEAR();
	assert_int_equal(F->l.session_id, SESSION);
	WRITE();
	assert_send(state, 0, 0, 0, SESSION, 3);
}

/* The deadline also ends a backoff. */
static void test_deadline_during_backoff(void **state)
{
	open_session(state);
	uint64_t start = F->now;
	WRITE();
	CLEAR();
	F->now = start + DEADLINE - MS(1) / 2;
	assert_true(reply(state, 0, PX_REPLY_BUSY, 0, NULL, 0));
	assert_timer(state, 0, start + DEADLINE); /* not the 1 ms backoff */
	CLEAR();
	F->now = start + DEADLINE;
	TICK();
	assert_done(state, 0, -BPX_ETIMEDOUT);
}

/* EXPIRED ends the request (outcome unknown) and the lane's next write
 * opens a new session first. */
static void test_expired_opens_a_new_session(void **state)
{
	open_session(state);
	WRITE();
	CLEAR();
	assert_true(reply(state, 0, PX_REPLY_EXPIRED, 0, NULL, 0));
	EFFECTS(1);
	assert_done(state, 0, -BPX_EEXPIRED);
	assert_int_equal(F->l.session_id, 0);
	assert_int_equal(F->e.stats.rekeys, 1);
	CLEAR();
	WRITE();
	assert_true(EFFECT(0)->send.flags & PX_FLAG_OPEN);
	assert_send(state, 0, 0, PX_FLAG_OPEN, NONCE, F->l.wire_seq);
	CLEAR();
	assert_true(reply_opened(state, 0, SESSION + 1));
	assert_send(state, 0, 0, 0, SESSION + 1, 1); /* seq 1 again */
}

/* STALE does the same. */
static void test_stale_opens_a_new_session(void **state)
{
	open_session(state);
	WRITE();
	CLEAR();
	assert_true(reply(state, 0, PX_REPLY_STALE, 0, NULL, 0));
	assert_done(state, 0, -BPX_ESTALE);
	assert_int_equal(F->l.session_id, 0);
	CLEAR();
	/* A read's EXPIRED loses no session. */
	open_session(state);
	READ();
	CLEAR();
	assert_true(reply(state, 0, PX_REPLY_EXPIRED, 0, NULL, 0));
	assert_done(state, 0, -BPX_EEXPIRED);
	assert_int_equal(F->l.session_id, SESSION);
	assert_int_equal(F->e.stats.rekeys, 1);
}

/* Refusals before the log: not applied, the session goes on. */
static void test_refusals(void **state)
{
	open_session(state);
	WRITE();
	CLEAR();
	assert_true(reply(state, 0, PX_REPLY_TOO_BIG, 0, NULL, 0));
	assert_done(state, 0, -BPX_ETOOBIG);
	CLEAR();
	WRITE();
	CLEAR();
	assert_true(reply(state, 0, PX_REPLY_BAD_REQUEST, 0, NULL, 0));
	assert_done(state, 0, -BPX_EINVAL);
	assert_int_equal(F->l.session_id, SESSION);
}

/* The caller may give a request up (libbypax on a socket error), or drop
 * the session (a new client in the lane): no effects, the lane is idle. */
static void test_abandon_and_drop_session(void **state)
{
	open_session(state);
	WRITE();
	CLEAR();
	bpx_engine_abandon(&F->e, &F->l);
	assert_false(bpx_engine_lane_busy(&F->l));
	assert_false(reply(state, 0, PX_REPLY_OK, 0, NULL, 0));
	bpx_engine_lane_drop_session(&F->l);
	WRITE();
	assert_true(EFFECT(0)->send.flags & PX_FLAG_OPEN);
}

/* A request goes to the leader last heard of: OK from member 1 moves
 * later requests there. */
static void test_ok_moves_the_leader(void **state)
{
	bpx_engine_set_leader(&F->e, 1);
	READ();
	assert_send(state, 0, 1, PX_FLAG_READ, NONCE, PX_SEQ_READ_BASE + 1);
	CLEAR();
	assert_true(reply(state, 2, PX_REPLY_OK, 0, NULL, 0));
	CLEAR();
	assert_int_equal(bpx_engine_leader(&F->e), 2);
	READ();
	assert_send(state, 0, 2, PX_FLAG_READ, NONCE, PX_SEQ_READ_BASE + 2);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup(name, eng_setup)
	const struct CMUnitTest tests[] = {
		T(test_first_write_opens_a_session),
		T(test_write_follows_the_member_that_opened),
		T(test_open_without_session_id_is_malformed),
		T(test_open_seq_is_deterministic),
		T(test_reads_are_outside_the_session),
		T(test_seq_tag),
		T(test_redirect_with_hint),
		T(test_redirects_all_round_back_off),
		T(test_busy_backoff_doubles_to_50ms),
		T(test_late_busy_from_another_member_ignored),
		T(test_stale_replies_ignored),
		T(test_timeout_tries_the_next_member),
		T(test_deadline_keeps_the_session),
		T(test_deadline_during_backoff),
		T(test_expired_opens_a_new_session),
		T(test_stale_opens_a_new_session),
		T(test_refusals),
		T(test_abandon_and_drop_session),
		T(test_ok_moves_the_leader),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
