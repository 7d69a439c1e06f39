/* The client engine (engine.h): a lane's requests, sessions and timers.
 * Pure: no I/O, no clocks, no allocation; effects go to the caller's out. */
#include "engine.h"

#include <string.h>

/* splitmix64: the seqs of OPENs. */
static uint64_t prng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static bool in_flight(const struct bpx_engine_lane *l)
{
	return l->state == BPX_ENGINE_WAIT || l->state == BPX_ENGINE_BACKOFF;
}

static struct bpx_engine_effect *
emit(struct bpx_engine_out *out, const struct bpx_engine_lane *l, uint8_t kind)
{
	BPX_ENGINE_ASSERT(out != NULL && out->count < BPX_ENGINE_OUT_MAX);
	struct bpx_engine_effect *f = &out->effects[out->count++];
	memset(f, 0, sizeof(*f));
	f->kind = kind;
	f->lane = l->index;
	return f;
}

void bpx_engine_init(struct bpx_engine *e, const struct bpx_engine_config *cfg)
{
	BPX_ENGINE_ASSERT(e != NULL && cfg != NULL);
	BPX_ENGINE_ASSERT(cfg->member_count >= 1 &&
			  cfg->member_count <= PX_REPLICAS_MAX);
	BPX_ENGINE_ASSERT(cfg->seq_tag_bits <= 16);
	BPX_ENGINE_ASSERT(cfg->timeout_ns > 0 && cfg->deadline_ns > 0);
	memset(e, 0, sizeof(*e));
	e->cfg = *cfg;
	e->prng = cfg->seed;
	e->leader = 0;
}

void bpx_engine_lane_init(const struct bpx_engine *e, struct bpx_engine_lane *l,
			  uint32_t index, uint64_t nonce, uint64_t tag)
{
	BPX_ENGINE_ASSERT(e != NULL && l != NULL);
	BPX_ENGINE_ASSERT(nonce != 0 && !(nonce & PX_SESSION_ID_BIT));
	BPX_ENGINE_ASSERT(tag < (1ull << e->cfg.seq_tag_bits));
	memset(l, 0, sizeof(*l));
	l->index = index;
	l->nonce = nonce;
	l->tag = tag;
	l->client_id = nonce;
	l->state = BPX_ENGINE_IDLE;
}

uint8_t bpx_engine_leader(const struct bpx_engine *e)
{
	return e->leader;
}

void bpx_engine_set_leader(struct bpx_engine *e, uint8_t member)
{
	BPX_ENGINE_ASSERT(member < e->cfg.member_count);
	e->leader = member;
}

/* ---- Addressing an attempt ---- */

/* The write on the lane's session: the session's next seq. */
static void address_write(const struct bpx_engine *e, struct bpx_engine_lane *l)
{
	BPX_ENGINE_ASSERT(l->session_id & PX_SESSION_ID_BIT);
	l->opening = false;
	l->client_id = l->session_id;
	l->wire_seq = ++l->seq << e->cfg.seq_tag_bits | l->tag;
	BPX_ENGINE_ASSERT(l->wire_seq >= 1 && l->wire_seq <= PX_SEQ_WRITE_MAX);
}

/* ... or first the OPEN of a session: to the lane's nonce, with a random
 * seq, so that a reply meant for another client that (against the rules)
 * picked the same nonce is not taken for ours. */
static void address_open(struct bpx_engine *e, struct bpx_engine_lane *l)
{
	l->opening = true;
	l->client_id = l->nonce;
	l->wire_seq = 1 + prng_next(&e->prng) % PX_SEQ_WRITE_MAX;
}

/* Reads are outside any session: the nonce and a seq from a range writes
 * never reach, so a late reply is never taken for a write's. */
static void address_read(struct bpx_engine_lane *l)
{
	l->opening = false;
	l->client_id = l->nonce;
	l->wire_seq = PX_SEQ_READ_BASE + ++l->read_seq;
	BPX_ENGINE_ASSERT(l->wire_seq & PX_SEQ_READ_BASE);
}

/* ---- Sending and timers ---- */

static void emit_timer(struct bpx_engine_out *out,
		       const struct bpx_engine_lane *l)
{
	struct bpx_engine_effect *f = emit(out, l, BPX_ENGINE_TIMER);
	f->at_ns = bpx_engine_lane_wake_ns(l);
}

static void lane_send(struct bpx_engine *e, struct bpx_engine_lane *l,
		      uint64_t now_ns, struct bpx_engine_out *out)
{
	BPX_ENGINE_ASSERT(l->target < e->cfg.member_count);
	struct bpx_engine_effect *f = emit(out, l, BPX_ENGINE_SEND);
	f->send.member = l->target;
	f->send.type = PX_MSG_REQUEST;
	f->send.flags = l->read ? PX_FLAG_READ : l->opening ? PX_FLAG_OPEN : 0;
	f->send.client_id = l->client_id;
	f->send.seq = l->wire_seq;
	/* An OPEN carries an empty value (docs/wire.md). */
	f->send.cmd = l->opening ? NULL : l->cmd;
	f->send.cmd_len = l->opening ? 0 : l->cmd_len;
	e->stats.sent++;
	l->state = BPX_ENGINE_WAIT;
	l->next_ns = add_sat(now_ns, e->cfg.timeout_ns);
	emit_timer(out, l);
}

/* BUSY, or a full round of redirects: wait 1 ms, doubling up to 50 ms
 * over the request's backoffs, then resend. */
static void lane_backoff(struct bpx_engine_lane *l, uint64_t now_ns,
			 struct bpx_engine_out *out)
{
	l->backoff_ns = l->backoff_ns == 0 ? BPX_ENGINE_BACKOFF_MIN_NS :
					     l->backoff_ns * 2;
	if (l->backoff_ns > BPX_ENGINE_BACKOFF_MAX_NS)
		l->backoff_ns = BPX_ENGINE_BACKOFF_MAX_NS;
	l->state = BPX_ENGINE_BACKOFF;
	l->next_ns = add_sat(now_ns, l->backoff_ns);
	emit_timer(out, l);
}

static void lane_done(struct bpx_engine *e, struct bpx_engine_lane *l,
		      int status, const struct px_msg *m,
		      struct bpx_engine_out *out)
{
	BPX_ENGINE_ASSERT(in_flight(l));
	struct bpx_engine_effect *f = emit(out, l, BPX_ENGINE_DONE);
	f->done.status = status;
	f->done.member = m != NULL ? m->from : PX_TO_CLIENT;
	if (m != NULL && status == 0) {
		f->done.reply = m->value;
		f->done.reply_len = (uint16_t)m->value_len;
	}
	e->stats.completed++;
	l->state = BPX_ENGINE_IDLE;
	l->cmd = NULL;
}

/* ---- Requests ---- */

void bpx_engine_submit(struct bpx_engine *e, struct bpx_engine_lane *l,
		       bool read, const uint8_t *cmd, uint16_t cmd_len,
		       uint64_t now_ns, struct bpx_engine_out *out)
{
	BPX_ENGINE_ASSERT(e != NULL && l != NULL && out != NULL);
	BPX_ENGINE_ASSERT(l->state == BPX_ENGINE_IDLE);
	BPX_ENGINE_ASSERT(cmd != NULL || cmd_len == 0);
	BPX_ENGINE_ASSERT(out->count + BPX_ENGINE_EFFECTS_PER_CALL <=
			  BPX_ENGINE_OUT_MAX);
	l->read = read;
	if (read)
		address_read(l);
	else if (l->session_id == 0)
		address_open(e, l);
	else
		address_write(e, l);
	l->cmd = cmd;
	l->cmd_len = cmd_len;
	l->start_ns = now_ns;
	l->deadline_ns = add_sat(now_ns, e->cfg.deadline_ns);
	l->backoff_ns = 0;
	l->redirect_streak = 0;
	l->target = e->leader;
	lane_send(e, l, now_ns, out);
}

bool bpx_engine_lane_expects(const struct bpx_engine_lane *l,
			     uint64_t client_id, uint64_t seq)
{
	return in_flight(l) && client_id == l->client_id && seq == l->wire_seq;
}

/* The replicas do not hold the lane's session (EXPIRED), or hold it in a
 * state the lane does not expect (STALE): its next write opens a new one.
 * A write whose outcome is merely unknown (a deadline) keeps the session:
 * the next write's higher seq makes a late copy of it STALE. */
static void lane_session_lost(struct bpx_engine *e, struct bpx_engine_lane *l)
{
	if (l->read || l->session_id == 0)
		return;
	l->session_id = 0;
	e->stats.rekeys++;
}

/* The OPEN was applied: the write goes out at once on the new session,
 * seq 1, to the member that answered (it leads), within the same
 * deadline. */
static void on_opened(struct bpx_engine *e, struct bpx_engine_lane *l,
		      const struct px_msg *m, uint64_t now_ns,
		      struct bpx_engine_out *out)
{
	uint64_t id = 0;
	if (m->value_len == PX_SESSION_ID_BYTES && m->value != NULL)
		for (unsigned i = 0; i < PX_SESSION_ID_BYTES; i++)
			id |= (uint64_t)m->value[i] << (8 * i);
	if (!(id & PX_SESSION_ID_BIT)) {
		lane_done(e, l, -BPX_EMALFORMED, m, out);
		return;
	}
	e->stats.opens++;
	l->session_id = id;
	l->seq = 0;
	address_write(e, l);
	if (m->from < e->cfg.member_count)
		l->target = e->leader = m->from;
	l->backoff_ns = 0;
	l->redirect_streak = 0;
	lane_send(e, l, now_ns, out);
}

static void on_applied(struct bpx_engine *e, struct bpx_engine_lane *l,
		       const struct px_msg *m, struct bpx_engine_out *out)
{
	/* OK: the request was applied (or read); whoever answered leads. */
	if (m->from < e->cfg.member_count)
		e->leader = m->from;
	lane_done(e, l, 0, m, out);
}

static void on_redirect(struct bpx_engine *e, struct bpx_engine_lane *l,
			const struct px_msg *m, uint64_t now_ns,
			struct bpx_engine_out *out)
{
	e->stats.redirects++;
	uint8_t hint = m->leader_hint;
	if (hint < e->cfg.member_count && hint != l->target) {
		l->target = hint;
		e->leader = hint;
	} else {
		l->target = (uint8_t)((l->target + 1) % e->cfg.member_count);
	}
	e->stats.retries++;
	/* A full round of redirects means no member knows a leader (an
	 * election), or their views disagree: back off instead of spinning. */
	if (++l->redirect_streak < e->cfg.member_count)
		lane_send(e, l, now_ns, out);
	else
		lane_backoff(l, now_ns, out);
}

bool bpx_engine_on_reply(struct bpx_engine *e, struct bpx_engine_lane *l,
			 const struct px_msg *m, uint64_t now_ns,
			 struct bpx_engine_out *out)
{
	BPX_ENGINE_ASSERT(e != NULL && l != NULL && m != NULL && out != NULL);
	BPX_ENGINE_ASSERT(out->count + BPX_ENGINE_EFFECTS_PER_CALL <=
			  BPX_ENGINE_OUT_MAX);
	if (m->type != PX_MSG_REPLY ||
	    !bpx_engine_lane_expects(l, m->client_id, m->seq)) {
		e->stats.ignored++; /* late, duplicate, or not ours */
		return false;
	}
	switch (m->status) {
	case PX_REPLY_OK:
		if (l->opening)
			on_opened(e, l, m, now_ns, out);
		else
			on_applied(e, l, m, out);
		return true;
	case PX_REPLY_REDIRECT:
	case PX_REPLY_BUSY:
		/* A late answer to an earlier attempt says nothing about the
		 * member tried now. */
		if (m->from != l->target) {
			e->stats.ignored++;
			return false;
		}
		if (m->status == PX_REPLY_REDIRECT) {
			on_redirect(e, l, m, now_ns, out);
		} else {
			e->stats.busy++;
			lane_backoff(l, now_ns, out);
		}
		return true;
	case PX_REPLY_TOO_BIG: /* refused before the log: not applied */
		lane_done(e, l, -BPX_ETOOBIG, m, out);
		return true;
	case PX_REPLY_STALE:
		lane_session_lost(e, l);
		lane_done(e, l, -BPX_ESTALE, m, out);
		return true;
	case PX_REPLY_EXPIRED:
		lane_session_lost(e, l);
		lane_done(e, l, -BPX_EEXPIRED, m, out);
		return true;
	case PX_REPLY_BAD_REQUEST:
		lane_done(e, l, -BPX_EINVAL, m, out);
		return true;
	default: /* a status the wire does not define */
		e->stats.ignored++;
		return false;
	}
}

void bpx_engine_tick(struct bpx_engine *e, struct bpx_engine_lane *l,
		     uint64_t now_ns, struct bpx_engine_out *out)
{
	BPX_ENGINE_ASSERT(e != NULL && l != NULL && out != NULL);
	BPX_ENGINE_ASSERT(out->count + BPX_ENGINE_EFFECTS_PER_CALL <=
			  BPX_ENGINE_OUT_MAX);
	if (!in_flight(l))
		return;
	if (now_ns >= l->deadline_ns) {
		/* Outcome unknown; the session goes on (lane_session_lost). */
		e->stats.deadlines++;
		lane_done(e, l, -BPX_ETIMEDOUT, NULL, out);
		return;
	}
	if (now_ns < l->next_ns)
		return;
	if (l->state == BPX_ENGINE_WAIT) {
		/* No answer: try the next member with the same (client_id,
		 * seq), so a write that did land is not applied twice. */
		e->stats.timeouts++;
		l->target = (uint8_t)((l->target + 1) % e->cfg.member_count);
	}
	e->stats.retries++;
	lane_send(e, l, now_ns, out);
}

uint64_t bpx_engine_lane_wake_ns(const struct bpx_engine_lane *l)
{
	if (!in_flight(l))
		return BPX_ENGINE_NO_WAKE;
	return l->next_ns < l->deadline_ns ? l->next_ns : l->deadline_ns;
}

void bpx_engine_abandon(struct bpx_engine *e, struct bpx_engine_lane *l)
{
	(void)e;
	BPX_ENGINE_ASSERT(in_flight(l));
	l->state = BPX_ENGINE_IDLE;
	l->cmd = NULL;
}

void bpx_engine_lane_drop_session(struct bpx_engine_lane *l)
{
	BPX_ENGINE_ASSERT(l->state == BPX_ENGINE_IDLE);
	l->session_id = 0;
	l->seq = 0;
}
