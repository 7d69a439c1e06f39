/* The control policy: see ctl_policy.h for its inputs and outputs, and
 * omega.h for the leader rule. */
#include "ctl_policy.h"

#include <string.h>

#include "bypax/consensus.h"
#include "bypax/errors.h"

#define MS_NS 1000000ull

void ctl_policy_config_default(struct ctl_policy_config *cfg,
			       uint8_t member_count, uint8_t self_id)
{
	CTL_ASSERT(cfg != NULL);
	memset(cfg, 0, sizeof(*cfg));
	ctl_fd_config_default(&cfg->omega.fd, member_count, self_id);
	cfg->log_slots = 1024;
	cfg->window_slots = 64;
	cfg->hint_refresh_ns = 20 * MS_NS;
	cfg->transfer_timeout_ns = 2000 * MS_NS;
	cfg->reconfig_timeout_ns = 2000 * MS_NS;
	/* Above any pause of a healthy leader seen on a loaded 2-core
	 * machine (a worker off its core, a catch-up serialization): a step
	 * down is a leader change. */
	cfg->step_down_after_ns = 500 * MS_NS;
	cfg->step_down_for_ns = 2000 * MS_NS;
	cfg->static_leader = CTL_NONE;
}

const char *ctl_policy_config_check(const struct ctl_policy_config *cfg)
{
	CTL_ASSERT(cfg != NULL);
	const char *why = ctl_fd_config_check(&cfg->omega.fd);
	if (why != NULL)
		return why;
	if (cfg->log_slots < 2)
		return "log_slots";
	if (cfg->hint_refresh_ns == 0)
		return "hint_refresh_ns";
	if (cfg->transfer_timeout_ns == 0)
		return "transfer_timeout_ns";
	if (cfg->reconfig_timeout_ns == 0)
		return "reconfig_timeout_ns";
	if (cfg->step_down_after_ns == 0 || cfg->step_down_for_ns == 0)
		return "step_down_after_ns or step_down_for_ns";
	if (cfg->static_leader != CTL_NONE &&
	    cfg->static_leader >= cfg->omega.fd.member_count)
		return "static_leader";
	return NULL;
}

void ctl_policy_init(struct ctl_policy *p, const struct ctl_policy_config *cfg,
		     uint64_t now_ns)
{
	CTL_ASSERT(p != NULL);
	CTL_ASSERT(ctl_policy_config_check(cfg) == NULL);
	memset(p, 0, sizeof(*p));
	p->cfg = *cfg;
	ctl_omega_init(&p->omega, &cfg->omega, now_ns);
	p->leader = CTL_NONE;
	p->hint_sent = CTL_NONE;
}

void ctl_policy_out_clear(struct ctl_policy_out *out)
{
	CTL_ASSERT(out != NULL);
	out->cmd_count = 0;
	out->reply_count = 0;
	out->heartbeat = false;
}

/* ---- Outputs ---- */

static void emit_cmd(struct ctl_policy_out *out, uint32_t type, uint32_t arg,
		     uint64_t value)
{
	CTL_ASSERT(out->cmd_count < CTL_POLICY_CMDS_MAX);
	struct ctl_cmd *c = &out->cmds[out->cmd_count++];
	memset(c, 0, sizeof(*c));
	c->type = type;
	c->arg = arg;
	c->value = value;
}

static struct ctl_reply *emit_reply(const struct ctl_policy *p,
				    struct ctl_policy_out *out, uint64_t client,
				    uint8_t code)
{
	CTL_ASSERT(out->reply_count < CTL_POLICY_REPLIES_MAX);
	CTL_ASSERT(code < CTL_REPLY_COUNT);
	struct ctl_reply *r = &out->replies[out->reply_count++];
	memset(r, 0, sizeof(*r));
	r->client = client;
	r->code = code;
	r->self = p->omega.fd.cfg.self_id;
	r->member = CTL_NONE;
	r->leader = p->leader;
	r->window_slots = p->cfg.window_slots;
	return r;
}

/* ---- Readiness ---- */

/* A replica that fell behind the others' log window (a partition healed, a
 * process stopped and continued) can only catch up by a snapshot; as a
 * candidate it would ask for one, every acceptor would answer its PREPARE
 * with a window of PROMISEs, and it would try again and again, the cluster
 * without a leader meanwhile. It waits as a follower instead, the leader
 * catches it up, and then it may lead again. */
bool ctl_policy_caught_up(const struct ctl_policy *p, uint64_t now_ns)
{
	CTL_ASSERT(p != NULL);
	const struct ctl_fd_config *fc = &p->omega.fd.cfg;
	uint64_t top = p->status.commit_index;
	for (uint8_t i = 0; i < fc->member_count; i++) {
		const struct ctl_policy_peer *peer = &p->peers[i];
		if (i != fc->self_id && peer->heard_any &&
		    ctl_fd_alive(&p->omega.fd, i, now_ns) &&
		    peer->last.commit_index > top)
			top = peer->last.commit_index;
	}
	return p->status.applied_index + p->cfg.log_slots / 2 >= top;
}

static bool self_votes(const struct ctl_policy *p)
{
	return (p->status.members >> p->omega.fd.cfg.self_id) & 1u;
}

/* A leader whose proposals stopped committing while its control plane
 * still runs (its data plane cut off, its ports gone) stays everyone's
 * choice: the others hear its heartbeats. It steps down instead: not
 * ready for a while, so Omega picks a member that may get a quorum. */
static void watch_commit(struct ctl_policy *p, uint64_t now_ns)
{
	const struct ctl_worker_status *st = &p->status;
	bool waiting = st->role == PX_ROLE_LEADER &&
		       (st->queue_depth > 0 || st->next_slot > st->commit_index + 1);
	if (!waiting || st->commit_index != p->stall.commit_index) {
		p->stall.commit_index = st->commit_index;
		p->stall.since_ns = now_ns;
		return;
	}
	if (now_ns - p->stall.since_ns < p->cfg.step_down_after_ns)
		return;
	p->stall.until_ns = now_ns + p->cfg.step_down_for_ns;
	p->stall.since_ns = now_ns;
	p->step_downs++;
}

/* Ready to lead: recovered, not far behind, and not stepped down. Voting
 * members are preferred (omega.h). */
static void update_readiness(struct ctl_policy *p, uint64_t now_ns)
{
	if (p->have_status)
		watch_commit(p, now_ns);
	ctl_omega_set_ready(&p->omega,
			    p->have_status &&
				    p->status.role != PX_ROLE_RECOVERING &&
				    ctl_policy_caught_up(p, now_ns) &&
				    now_ns >= p->stall.until_ns);
	ctl_omega_set_member(&p->omega, self_votes(p));
}

/* ---- Heartbeats ---- */

static void send_heartbeat(struct ctl_policy *p, uint64_t now_ns,
			   struct ctl_policy_out *out)
{
	struct ctl_hb_msg *m = &out->hb;
	memset(m, 0, sizeof(*m));
	if (!ctl_omega_tick(&p->omega, now_ns, &m->hb))
		return;
	out->heartbeat = true;
	m->role = p->have_status ? p->status.role : PX_ROLE_RECOVERING;
	m->promised = p->status.promised;
	m->commit_index = p->status.commit_index;
	m->applied_index = p->status.applied_index;
	m->failover_age_ms = p->failed_over ?
				     (now_ns - p->last_failover_ns) / MS_NS :
				     UINT64_MAX;
}

static bool receive_heartbeat(struct ctl_policy *p, uint64_t now_ns,
			      const struct ctl_hb_msg *m)
{
	if (!ctl_omega_receive(&p->omega, now_ns, &m->hb))
		return false;
	/* Omega checked from: a member other than self. */
	struct ctl_policy_peer *peer = &p->peers[m->hb.from];
	peer->last = *m;
	peer->heard_ns = now_ns;
	peer->heard_any = true;
	return true;
}

/* ---- Leader choice and the hint ---- */

static void update_leader(struct ctl_policy *p, uint64_t now_ns)
{
	uint8_t leader = p->cfg.static_leader != CTL_NONE ?
				 p->cfg.static_leader :
				 ctl_omega_leader(&p->omega, now_ns);
	if (leader == p->leader)
		return;
	if (p->leader != CTL_NONE && leader != CTL_NONE) {
		p->last_failover_ns = now_ns;
		p->failed_over = true;
		p->failover_from = p->leader;
		p->failover_to = leader;
		p->failovers++;
	}
	p->leader = leader;
}

/* The choice goes to the worker as a hint, again now and then in case a
 * ring slot was lost. */
static void send_hint(struct ctl_policy *p, uint64_t now_ns,
		      struct ctl_policy_out *out)
{
	if (p->hint_ever_sent && p->leader == p->hint_sent &&
	    now_ns - p->hint_sent_ns < p->cfg.hint_refresh_ns)
		return;
	emit_cmd(out, CTL_CMD_LEADER_HINT, p->leader, 0);
	p->hint_ever_sent = true;
	p->hint_sent = p->leader;
	p->hint_sent_ns = now_ns;
}

/* ---- Leadership transfer ---- */

static void transfer_end(struct ctl_policy *p, struct ctl_policy_out *out,
			 uint8_t code)
{
	struct ctl_reply *r = emit_reply(p, out, p->transfer.client, code);
	r->member = p->transfer.target;
	r->ms = p->cfg.transfer_timeout_ns / MS_NS;
	p->transfer.pending = false;
	ctl_omega_set_preferred(&p->omega, CTL_NONE);
}

/* A transfer is done once the target leads in our view and claims in its
 * heartbeat: from then on it is the natural leader (omega.h, rule 5), so
 * our preference no longer counts and is cleared; left set, it would count
 * again if we became the natural leader later. */
static void transfer_progress(struct ctl_policy *p, uint64_t now_ns,
			      struct ctl_policy_out *out)
{
	if (!p->transfer.pending)
		return;
	const uint8_t to = p->transfer.target;
	if (p->leader == to && ctl_omega_claims(&p->omega, to))
		transfer_end(p, out, CTL_REPLY_TRANSFER_DONE);
	else if (now_ns >= p->transfer.deadline_ns)
		transfer_end(p, out, CTL_REPLY_TRANSFER_TIMEOUT);
}

/* Why member `to` cannot take over now, or CTL_REPLY_COUNT if it can. */
static uint8_t transfer_refusal(const struct ctl_policy *p, uint8_t to,
				uint64_t now_ns)
{
	if (to >= p->omega.fd.cfg.member_count)
		return CTL_REPLY_TRANSFER_NOT_A_MEMBER;
	if (!ctl_fd_alive(&p->omega.fd, to, now_ns))
		return CTL_REPLY_TRANSFER_NOT_ALIVE;
	if (!((p->status.members >> to) & 1u))
		return CTL_REPLY_TRANSFER_NOT_VOTING;
	if (!ctl_omega_can_lead(&p->omega, to, now_ns))
		return CTL_REPLY_TRANSFER_CANNOT_LEAD;
	return CTL_REPLY_COUNT;
}

/* leader transfer ID|none. The leader's to make: only the member that
 * leads now is the natural leader whose preference everyone reads
 * (omega.h, rule 6); at any other member it would answer ok and nothing
 * would move. The answer waits until the target leads (or the timeout). */
static void admin_transfer(struct ctl_policy *p, uint64_t now_ns,
			   const struct ctl_admin *a,
			   struct ctl_policy_out *out)
{
	const uint8_t self = p->omega.fd.cfg.self_id;
	const uint8_t to = a->member;
	if (p->cfg.static_leader != CTL_NONE) {
		emit_reply(p, out, a->client, CTL_REPLY_TRANSFER_STATIC);
		return;
	}
	if (to == CTL_NONE) {
		if (!p->transfer.pending && p->leader != self) {
			emit_reply(p, out, a->client, CTL_REPLY_NOT_LEADER);
			return;
		}
		if (p->transfer.pending)
			transfer_end(p, out, CTL_REPLY_TRANSFER_ABORTED);
		emit_reply(p, out, a->client, CTL_REPLY_TRANSFER_CANCELLED);
		return;
	}
	if (p->transfer.pending) {
		struct ctl_reply *r =
			emit_reply(p, out, a->client, CTL_REPLY_TRANSFER_BUSY);
		r->member = p->transfer.target;
		return;
	}
	if (p->leader != self) {
		emit_reply(p, out, a->client, CTL_REPLY_NOT_LEADER);
		return;
	}
	if (to == self) {
		emit_reply(p, out, a->client, CTL_REPLY_TRANSFER_ALREADY)
			->member = self;
		return;
	}
	uint8_t refusal = transfer_refusal(p, to, now_ns);
	if (refusal != CTL_REPLY_COUNT) {
		emit_reply(p, out, a->client, refusal)->member = to;
		return;
	}
	ctl_omega_set_preferred(&p->omega, to);
	p->transfer.pending = true;
	p->transfer.target = to;
	p->transfer.client = a->client;
	p->transfer.deadline_ns = now_ns + p->cfg.transfer_timeout_ns;
}

/* ---- Membership changes ---- */

/* members add ID... | members remove ID: the new member set goes to the
 * worker, whose consensus puts it through the log (and refuses it unless
 * it leads); the answer waits for the worker's. */
static void admin_members(struct ctl_policy *p, uint64_t now_ns,
			  const struct ctl_admin *a, struct ctl_policy_out *out)
{
	const bool add = a->type == CTL_ADMIN_MEMBERS_ADD;
	const uint8_t all = (uint8_t)((1u << p->omega.fd.cfg.member_count) - 1);
	uint8_t code = CTL_REPLY_COUNT;
	uint8_t mask = p->status.members;
	if (!p->have_status || p->reconfig.pending)
		code = CTL_REPLY_RECONFIG_NOT_READY;
	else if (a->ids == 0 || (a->ids & ~all) != 0 ||
		 (!add && ctl_mask_count(a->ids) != 1))
		code = CTL_REPLY_RECONFIG_NOT_A_MEMBER;
	else {
		mask = add ? (uint8_t)(mask | a->ids) :
			     (uint8_t)(mask & ~a->ids);
		if (mask == 0)
			code = CTL_REPLY_RECONFIG_NONE_LEFT;
		else if (mask == p->status.members)
			code = CTL_REPLY_RECONFIG_NO_CHANGE;
	}
	if (code != CTL_REPLY_COUNT) {
		struct ctl_reply *r = emit_reply(p, out, a->client, code);
		r->op = a->type;
		r->mask = mask;
		return;
	}
	p->reconfig.pending = true;
	p->reconfig.mask = mask;
	p->reconfig.client = a->client;
	p->reconfig.seq = p->status.reconfig_seq;
	p->reconfig.deadline_ns = now_ns + p->cfg.reconfig_timeout_ns;
	emit_cmd(out, CTL_CMD_RECONFIG, mask, 0);
}

static void reconfig_end(struct ctl_policy *p, struct ctl_policy_out *out,
			 uint8_t code, int32_t rc)
{
	struct ctl_reply *r = emit_reply(p, out, p->reconfig.client, code);
	r->mask = p->reconfig.mask;
	r->rc = rc;
	r->ms = p->cfg.reconfig_timeout_ns / MS_NS;
	p->reconfig.pending = false;
}

/* The worker counts its answers: one past the count we saw when sending
 * the change is the answer to it. */
static void reconfig_answered(struct ctl_policy *p, struct ctl_policy_out *out)
{
	if (!p->reconfig.pending || p->status.reconfig_seq <= p->reconfig.seq)
		return;
	const int32_t rc = p->status.reconfig_rc;
	if (rc == 0)
		reconfig_end(p, out, CTL_REPLY_RECONFIG_PROPOSED, 0);
	else if (rc == -BPX_ENOTLEADER)
		reconfig_end(p, out, CTL_REPLY_NOT_LEADER, rc);
	else if (rc == -BPX_EBUSY)
		reconfig_end(p, out, CTL_REPLY_RECONFIG_BUSY, rc);
	else
		reconfig_end(p, out, CTL_REPLY_RECONFIG_FAILED, rc);
}

/* ---- The step ---- */

static void tick(struct ctl_policy *p, uint64_t now_ns,
		 struct ctl_policy_out *out)
{
	update_readiness(p, now_ns);
	send_heartbeat(p, now_ns, out);
	update_leader(p, now_ns);
	transfer_progress(p, now_ns, out);
	if (p->reconfig.pending && now_ns >= p->reconfig.deadline_ns)
		reconfig_end(p, out, CTL_REPLY_RECONFIG_TIMEOUT, 0);
	send_hint(p, now_ns, out);
}

bool ctl_policy_step(struct ctl_policy *p, uint64_t now_ns,
		     const struct ctl_input *in, struct ctl_policy_out *out)
{
	CTL_ASSERT(p != NULL);
	CTL_ASSERT(in != NULL);
	CTL_ASSERT(out != NULL);
	CTL_ASSERT(out->cmd_count == 0 && out->reply_count == 0);
	/* We run: a long gap since the last input was a stall of ours, not
	 * silence of the others (fd.h, rule 2). First, so that the heartbeats
	 * read right after a stall are judged with it. */
	ctl_fd_ran(&p->omega.fd, now_ns);
	switch (in->kind) {
	case CTL_IN_TICK:
		tick(p, now_ns, out);
		return true;
	case CTL_IN_HEARTBEAT:
		return receive_heartbeat(p, now_ns, &in->heartbeat);
	case CTL_IN_STATUS:
		p->status = in->status;
		p->have_status = true;
		reconfig_answered(p, out);
		return true;
	case CTL_IN_ADMIN:
		/* Decide on the latest views, as a tick would. */
		update_readiness(p, now_ns);
		update_leader(p, now_ns);
		if (in->admin.type == CTL_ADMIN_TRANSFER)
			admin_transfer(p, now_ns, &in->admin, out);
		else if (in->admin.type == CTL_ADMIN_MEMBERS_ADD ||
			 in->admin.type == CTL_ADMIN_MEMBERS_REMOVE)
			admin_members(p, now_ns, &in->admin, out);
		else
			CTL_ASSERT(!"unknown admin command");
		return true;
	default:
		CTL_ASSERT(!"unknown input kind");
		return false;
	}
}

/* ---- Reply text (no stdio in pure code: a small formatter) ---- */

struct text {
	char *buf;
	size_t cap, len;
};

static void put_char(struct text *t, char c)
{
	if (t->len + 1 < t->cap)
		t->buf[t->len++] = c;
}

static void put_str(struct text *t, const char *s)
{
	while (*s != '\0')
		put_char(t, *s++);
}

static void put_uint(struct text *t, uint64_t v)
{
	char digits[20];
	unsigned n = 0;
	do
		digits[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (n > 0)
		put_char(t, digits[--n]);
}

static void put_mask(struct text *t, uint8_t mask)
{
	bool first = true;
	for (uint8_t i = 0; i < 8; i++) {
		if (!(mask & (1u << i)))
			continue;
		if (!first)
			put_char(t, ',');
		put_uint(t, i);
		first = false;
	}
}

static void put_member(struct text *t, uint8_t m)
{
	if (m == CTL_NONE)
		put_str(t, "none");
	else
		put_uint(t, m);
}

static const struct {
	bool ok;
	const char *text;
} reply_table[CTL_REPLY_COUNT] = {
#define CTL_REPLY_ROW(name, is_ok, template) { is_ok, template },
	CTL_REPLY_LIST(CTL_REPLY_ROW)
#undef CTL_REPLY_ROW
};

bool ctl_reply_ok(const struct ctl_reply *r)
{
	CTL_ASSERT(r != NULL && r->code < CTL_REPLY_COUNT);
	return reply_table[r->code].ok;
}

static void put_field(struct text *t, const struct ctl_reply *r, char f)
{
	switch (f) {
	case 's':
		put_member(t, r->self);
		break;
	case 'm':
		put_member(t, r->member);
		break;
	case 'l':
		put_member(t, r->leader);
		break;
	case 'k':
		put_mask(t, r->mask);
		break;
	case 'o':
		put_str(t, r->op == CTL_ADMIN_MEMBERS_ADD ? "add" : "remove");
		break;
	case 'w':
		put_uint(t, r->window_slots);
		break;
	case 't':
		put_uint(t, r->ms);
		break;
	case 'e':
		put_str(t, bpx_strerror(r->rc));
		break;
	default:
		put_char(t, '%');
		put_char(t, f);
		break;
	}
}

size_t ctl_reply_text(const struct ctl_reply *r, char *buf, size_t cap)
{
	CTL_ASSERT(r != NULL && r->code < CTL_REPLY_COUNT);
	CTL_ASSERT(buf != NULL || cap == 0);
	struct text t = { .buf = buf, .cap = cap, .len = 0 };
	for (const char *s = reply_table[r->code].text; *s != '\0'; s++) {
		if (*s == '%' && s[1] != '\0')
			put_field(&t, r, *++s);
		else
			put_char(&t, *s);
	}
	put_char(&t, '\n');
	if (cap > 0)
		t.buf[t.len] = '\0';
	return t.len;
}
