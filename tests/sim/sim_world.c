/* The simulated world: an event queue on one clock, a faulty network,
 * replicas running the real consensus and Omega code, and closed-loop
 * clients whose histories are checked for linearizability. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bypax/kv.h"
#include "ctl_policy.h"
#include "sim_internal.h"

#define MS 1000000ull
#define US 1000ull
#define TICK_NS (250 * US)
#define OUTBOX_CAP 4096u
/* The stock simulator remembers the last 3 requested configurations; that
 * misses the one in force when several requests in a row are not chosen
 * (frequent under --long), and losing a majority of it wedges recovery. */
#define SIM_RECENT_CONFIGS 8u
#define SIM_RECENT_CONFIGS_STOCK 3u

enum ev_kind {
	EV_MSG,
	EV_HEARTBEAT,
	EV_SNAPSHOT,
	EV_REPLY,
	EV_TICK,
	EV_CLIENT,
	EV_FAULT,
	EV_HEAL,
	EV_RESTART,
	EV_UNPAUSE,
	EV_CHECK,
	EV_NEMESIS, /* the second stage of a lease attack (fault_nemesis) */
};

struct event {
	uint64_t at;
	uint64_t order;
	uint8_t kind;
	uint8_t node;
	uint64_t gen;
	struct px_msg msg;
	uint8_t *data;
	size_t data_len;
	struct ctl_hb_msg hb; /* EV_HEARTBEAT: what ctl_daemon sends */
};

/* What a partition cuts: the stock simulator cuts both planes at once. */
enum plane {
	PLANE_BOTH,
	PLANE_CTL,  /* heartbeats between control threads */
	PLANE_DATA, /* consensus messages and snapshots between workers */
	PLANE_COUNT
};

struct node {
	void *mem;
	size_t mem_bytes;
	struct px_replica *px;
	void *sm;
	struct ctl_policy ctl; /* the control thread's policy, as in bypaxd */
	bool up;
	uint64_t paused_until;
	uint64_t ctl_paused_until; /* the control thread alone is stalled */
	uint64_t rogue_until;      /* the worker is told rogue_hint instead */
	uint8_t rogue_hint;
	uint8_t hint;              /* the last hint the control plane gave */
	uint64_t offset_ns;
	int64_t ppm;
	uint64_t gen;
	enum px_role last_role;
};

/* A client slot: one client at a time, each with its own session, opened
 * through the log before its first write; with churn, a client quits after
 * an op and a new one (a new session) takes the slot. */
struct client {
	uint64_t session_id; /* assigned by the log; 0: open one first */
	uint64_t seq;       /* writes: the session's last */
	uint64_t read_seq;  /* reads: outside the session */
	uint64_t open_seq;  /* OPENs: grows across the slot's clients */
	uint64_t wire_seq;  /* the outstanding request's */
	uint64_t op_count;  /* writes of the slot, in the command's prefix */
	uint64_t prng;      /* the client draws added since the stock
			       simulator; 0: not seeded yet */
	bool is_read;
	bool opening;       /* the outstanding request is the OPEN */
	bool busy;
	bool timed_out; /* the pending timer is a timeout, not a retry */
	uint8_t target;
	uint64_t gen;
	size_t hist;
	uint8_t cmd[64];
	uint32_t cmd_len;
	uint64_t last_seen[SIM_KEYS];
};

struct world {
	const struct sim_params *p;
	struct sim_result *res;
	uint64_t now;
	uint64_t order;
	uint64_t prng;
	uint64_t prng2; /* draws added since the stock simulator */
	struct event **heap;
	size_t heap_len, heap_cap;
	struct node nodes[PX_REPLICAS_MAX];
	struct client clients[SIM_CLIENTS_MAX];
	/* link_down[plane][from][to]: cut for that plane's traffic. */
	bool link_down[PLANE_COUNT][PX_REPLICAS_MAX][PX_REPLICAS_MAX];
	/* A lease attack's data-plane cuts (fault_nemesis): its own, so
	 * that other partitions healing do not end it early. */
	bool nemesis_down[PX_REPLICAS_MAX][PX_REPLICAS_MAX];
	bool nemesis_on;
	uint8_t nemesis_b; /* the attack's majority - 1 other replicas */
	bool faults_on;
	bool settled;
	/* Membership: configurations that may be in force, or reported by an
	 * acceptor to a recovering replica, the latest requested first. */
	uint8_t recent_configs[SIM_RECENT_CONFIGS];
	uint8_t recent_count;
	uint64_t next_value;
	struct lc_op *hist;
	size_t hist_len, hist_cap;
	struct sim_checker *checker;
	struct px_msg outbox_msgs[OUTBOX_CAP];
	struct px_outbox out;
	uint64_t settle_deadline;
};

static struct world *current;

void sim_violation(const char *fmt, ...)
{
	struct sim_result *res = current->res;
	if (res->violations++ > 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = snprintf(res->first_violation, sizeof(res->first_violation),
			 "t=%.3fms: ", (double)current->now / MS);
	vsnprintf(res->first_violation + n,
		  sizeof(res->first_violation) - (size_t)n, fmt, ap);
	va_end(ap);
}

/* The simulator prints the seed before dying on a consensus assertion. */
void px_assert_fail(const char *expr, const char *file, int line)
{
	fprintf(stderr, "sim: seed %llu: assertion failed: %s (%s:%d)\n",
		(unsigned long long)current->p->seed, expr, file, line);
	abort();
}

static void narrate(struct world *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void narrate(struct world *w, const char *fmt, ...)
{
	if (!w->p->verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	printf("  %8.2f ms  ", (double)w->now / MS);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

static uint64_t rnd(struct world *w)
{
	uint64_t z = (w->prng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd_range(struct world *w, uint64_t lo, uint64_t hi)
{
	return hi <= lo ? lo : lo + rnd(w) % (hi - lo + 1);
}

static bool chance(struct world *w, uint32_t pct)
{
	return rnd(w) % 100 < pct;
}

/* The stream for every draw the stock simulator did not make: using it
 * leaves the stock draws, and so --stock trajectories, as they were. */
static uint64_t rnd2(struct world *w)
{
	uint64_t z = (w->prng2 += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- The event queue: a binary heap on (time, insertion order) ---- */

static bool ev_before(const struct event *a, const struct event *b)
{
	return a->at != b->at ? a->at < b->at : a->order < b->order;
}

static struct event *ev_new(struct world *w, uint64_t at, uint8_t kind,
			    uint8_t node)
{
	struct event *e = calloc(1, sizeof(*e));
	if (e == NULL)
		exit(2);
	e->at = at;
	e->order = w->order++;
	e->kind = kind;
	e->node = node;
	return e;
}

static void ev_push(struct world *w, struct event *e)
{
	if (w->heap_len == w->heap_cap) {
		w->heap_cap = w->heap_cap ? w->heap_cap * 2 : 1024;
		w->heap = realloc(w->heap, w->heap_cap * sizeof(*w->heap));
		if (w->heap == NULL)
			exit(2);
	}
	size_t i = w->heap_len++;
	while (i > 0 && ev_before(e, w->heap[(i - 1) / 2])) {
		w->heap[i] = w->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	w->heap[i] = e;
}

static struct event *ev_pop(struct world *w)
{
	if (w->heap_len == 0)
		return NULL;
	struct event *top = w->heap[0];
	struct event *last = w->heap[--w->heap_len];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= w->heap_len)
			break;
		if (c + 1 < w->heap_len && ev_before(w->heap[c + 1], w->heap[c]))
			c++;
		if (!ev_before(w->heap[c], last))
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	if (w->heap_len > 0)
		w->heap[i] = last;
	return top;
}

static void ev_free(struct event *e)
{
	free(e->data);
	free(e);
}

static void schedule(struct world *w, uint64_t delay, uint8_t kind,
		     uint8_t node, uint64_t gen)
{
	struct event *e = ev_new(w, w->now + delay, kind, node);
	e->gen = gen;
	ev_push(w, e);
}

/* ---- The network ---- */

static uint64_t net_delay(struct world *w)
{
	const struct sim_faults *f = &w->p->faults;
	if (!w->faults_on)
		return rnd_range(w, 20 * US, 100 * US);
	return rnd_range(w, f->delay_min_ns, f->delay_max_ns);
}

/* Whether a partition cuts e's way from src to dst: heartbeats travel on
 * the control plane, everything else between replicas on the data plane.
 * src/dst PX_TO_CLIENT skip the partitions. */
static bool link_cut(const struct world *w, const struct event *e, uint8_t src,
		     uint8_t dst)
{
	if (src >= PX_REPLICAS_MAX || dst >= PX_REPLICAS_MAX)
		return false;
	enum plane plane = e->kind == EV_HEARTBEAT ? PLANE_CTL : PLANE_DATA;
	return w->link_down[PLANE_BOTH][src][dst] ||
	       w->link_down[plane][src][dst] ||
	       (plane == PLANE_DATA && w->nemesis_down[src][dst]);
}

/* Sends e (already filled) after a network delay, unless the network drops
 * it; may deliver a duplicate. */
static void net_send(struct world *w, struct event *e, uint8_t src, uint8_t dst)
{
	if (w->faults_on && (link_cut(w, e, src, dst) ||
			     chance(w, w->p->faults.drop_pct))) {
		ev_free(e);
		return;
	}
	if (w->faults_on && chance(w, w->p->faults.dup_pct)) {
		struct event *d = ev_new(w, w->now + net_delay(w), e->kind,
					 e->node);
		*d = *e;
		d->at = w->now + net_delay(w);
		d->order = w->order++;
		if (e->data != NULL) {
			d->data = malloc(e->data_len + 1);
			memcpy(d->data, e->data, e->data_len);
			d->msg.value = d->data;
		}
		ev_push(w, d);
	}
	e->at = w->now + net_delay(w);
	ev_push(w, e);
}

static uint64_t local_time(const struct world *w, uint8_t i)
{
	const struct node *n = &w->nodes[i];
	int64_t drift = (int64_t)(w->now / 1000) * n->ppm / 1000;
	return w->now + n->offset_ns + (uint64_t)drift;
}

static void send_px(struct world *w, uint8_t from, const struct px_msg *m)
{
	uint8_t dst = m->to == PX_TO_CLIENT ? PX_TO_CLIENT : m->to;
	struct event *e = ev_new(w, 0, EV_MSG, dst);
	e->msg = *m;
	if (m->type == PX_MSG_REPLY) {
		e->kind = EV_REPLY;
		e->node = from;
	}
	if (m->value_len > 0) {
		e->data = malloc(m->value_len);
		memcpy(e->data, m->value, m->value_len);
		e->data_len = m->value_len;
		e->msg.value = e->data;
	}
	if (m->type == PX_MSG_SNAPSHOT) {
		/* The transfer itself is the caller's job: take it now. */
		const struct px_replica *r = w->nodes[from].px;
		size_t cap = px_snapshot_size(r);
		e->kind = EV_SNAPSHOT;
		e->data = malloc(cap);
		int64_t n = px_snapshot_save(r, e->data, cap);
		if (n < 0) {
			sim_violation("snapshot of replica %u failed", from);
			ev_free(e);
			return;
		}
		e->data_len = (size_t)n;
	}
	net_send(w, e, from, dst);
}

static void drain(struct world *w, uint8_t from)
{
	for (uint32_t i = 0; i < w->out.count; i++) {
		const struct px_msg *m = &w->out.msgs[i];
		checker_observe(w->checker, m);
		send_px(w, from, m);
	}
	w->out.count = 0;
}

/* ---- Replicas ---- */

static void node_config(const struct world *w, uint8_t i, bool recovering,
			struct px_config *cfg)
{
	px_config_default(cfg, w->p->replicas, i);
	cfg->window_slots = SIM_WINDOW_SLOTS; /* also alpha for membership */
	cfg->log_slots = 64; /* small: wrap-around and snapshots happen */
	cfg->batch_requests_max = 8;
	cfg->request_queue_max = 64;
	cfg->session_max = w->p->session_max ? w->p->session_max : 64;
	cfg->catchup_burst = 16;
	cfg->heartbeat_interval_ns = 2 * MS;
	cfg->retransmit_ns = 4 * MS;
	/* Lease reads under clock skew: the drift bound covers the swarm's
	 * worst rate error (sim_main.c: 20000 ppm). */
	cfg->lease_ns = w->p->faults.lease_ns;
	cfg->clock_drift_ppm = 25000;
	/* A new seed for every life (recovery nonces must not repeat); the
	 * first keeps the stock one. */
	cfg->seed = (w->p->seed * 31 + i) ^
		    (w->nodes[i].gen * 0x9e3779b97f4a7c15ull);
	cfg->recovering = recovering;
	cfg->sm_ops = sim_sm_ops();
	cfg->sm = w->nodes[i].sm;
}

static void node_start(struct world *w, uint8_t i, bool recovering)
{
	struct node *n = &w->nodes[i];
	n->sm = sim_sm_ops()->create(NULL);
	struct px_config cfg;
	node_config(w, i, recovering, &cfg);
	n->mem_bytes = px_replica_size(&cfg);
	n->mem = malloc(n->mem_bytes);
	if (n->sm == NULL || n->mem == NULL ||
	    px_init(n->mem, n->mem_bytes, &cfg, &n->px) != 0) {
		fprintf(stderr, "sim: cannot start replica %u\n", i);
		exit(2);
	}
	/* The shipped control policy, as ctl_daemon configures it. Not ready
	 * to lead until the first tick's worker status says so. */
	struct ctl_policy_config pcfg;
	ctl_policy_config_default(&pcfg, w->p->replicas, i);
	pcfg.omega.fd.heartbeat_interval_ns = 2 * MS;
	pcfg.omega.fd.timeout_min_ns = 12 * MS;
	pcfg.omega.fd.timeout_max_ns = 200 * MS;
	pcfg.log_slots = cfg.log_slots;
	pcfg.window_slots = cfg.window_slots;
	ctl_policy_init(&n->ctl, &pcfg, local_time(w, i));
	n->up = true;
	n->paused_until = 0;
	n->ctl_paused_until = 0;
	n->hint = PX_REPLICA_NONE;
	n->gen++;
	n->last_role = px_role(n->px);
	checker_node_reset(w->checker, i);
	schedule(w, rnd_range(w, 0, TICK_NS), EV_TICK, i, n->gen);
}

static void node_stop(struct world *w, uint8_t i)
{
	struct node *n = &w->nodes[i];
	if (!n->up)
		return;
	n->up = false;
	n->gen++;
	free(n->mem);
	n->mem = NULL;
	n->px = NULL;
	sim_sm_ops()->destroy(n->sm);
	n->sm = NULL;
}

static void note_role(struct world *w, uint8_t i)
{
	struct node *n = &w->nodes[i];
	enum px_role role = px_role(n->px);
	if (role == n->last_role)
		return;
	static const char *const names[] = { "follower", "candidate",
					     "leader", "recovering" };
	if (n->last_role == PX_ROLE_RECOVERING)
		w->res->recoveries++;
	if (role == PX_ROLE_LEADER) {
		w->res->leader_changes++;
		uint64_t b = px_leader_ballot(n->px);
		narrate(w, "replica %u leads (ballot %llu.%u)", i,
			(unsigned long long)px_ballot_round(b),
			px_ballot_owner(b));
	} else if (n->last_role == PX_ROLE_RECOVERING) {
		narrate(w, "replica %u recovered; it votes again", i);
	} else if (n->last_role == PX_ROLE_LEADER) {
		narrate(w, "replica %u stops leading (%s)", i, names[role]);
	}
	n->last_role = role;
}

static void after_step(struct world *w, uint8_t i)
{
	drain(w, i);
	checker_after_step(w->checker, i, w->nodes[i].px);
	note_role(w, i);
}

/* What bypaxd's worker publishes to its control thread (publish_status in
 * dataplane/replica.c), as far as the policy reads it. */
static void worker_status(const struct node *n, struct ctl_worker_status *st)
{
	memset(st, 0, sizeof(*st));
	st->promised = px_promised_ballot(n->px);
	st->leader_ballot = px_leader_ballot(n->px);
	st->commit_index = px_commit_index(n->px);
	st->applied_index = px_applied_index(n->px);
	st->log_start = px_log_start(n->px);
	st->members = px_members(n->px);
	st->role = (uint8_t)px_role(n->px);
	st->known_leader = px_known_leader(n->px);
}

/* Carries out a policy step's effects: heartbeats to every other replica,
 * the leader hint to the worker. The simulator sends no admin commands, so
 * there are no replies and no membership commands (fault_reconfig goes to
 * the leader's consensus directly). */
static void ctl_effects(struct world *w, uint8_t i,
			const struct ctl_policy_out *out)
{
	for (uint32_t k = 0; k < out->cmd_count; k++) {
		const struct ctl_cmd *c = &out->cmds[k];
		if (c->type != CTL_CMD_LEADER_HINT) {
			sim_violation("replica %u: unexpected control command "
				      "%u", i, c->type);
			continue;
		}
		w->nodes[i].hint = c->arg == CTL_NONE ? PX_REPLICA_NONE
						      : (uint8_t)c->arg;
	}
	if (out->reply_count > 0)
		sim_violation("replica %u: admin reply without a command", i);
	if (!out->heartbeat)
		return;
	for (uint8_t j = 0; j < w->p->replicas; j++) {
		if (j == i)
			continue;
		struct event *e = ev_new(w, 0, EV_HEARTBEAT, j);
		e->hb = out->hb;
		net_send(w, e, i, j);
	}
}

static void ctl_step(struct world *w, uint8_t i, uint64_t t,
		     const struct ctl_input *in)
{
	static struct ctl_policy_out out;
	ctl_policy_out_clear(&out);
	(void)ctl_policy_step(&w->nodes[i].ctl, t, in, &out);
	ctl_effects(w, i, &out);
}

static void node_tick(struct world *w, uint8_t i)
{
	struct node *n = &w->nodes[i];
	uint64_t t = local_time(w, i);
	if (w->now >= n->ctl_paused_until) {
		/* The control thread: the worker's status, then a tick
		 * (readiness, heartbeat, leader choice, the hint). */
		struct ctl_input in = { .kind = CTL_IN_STATUS };
		worker_status(n, &in.status);
		ctl_step(w, i, t, &in);
		in.kind = CTL_IN_TICK;
		ctl_step(w, i, t, &in);
	}
	/* A stalled control thread: the worker goes on with a hint that may
	 * be stale; only ballots and leases keep it safe. A rogue hint (a
	 * lease attack) is any hint at all: the hint is only a hint. */
	uint8_t hint = w->now < n->rogue_until ? n->rogue_hint : n->hint;
	px_set_leader_hint(n->px, t, hint, &w->out);
	after_step(w, i);
	px_tick(n->px, t, &w->out);
	after_step(w, i);
}

/* A paused replica handles nothing until it wakes; what arrives meanwhile
 * waits, as in a socket buffer. Returns true if e was put back. */
static bool defer_if_paused(struct world *w, struct event *e)
{
	const struct node *n = &w->nodes[e->node];
	if (w->now >= n->paused_until)
		return false;
	e->at = n->paused_until + (e->order % 64) * US / 8;
	e->order = w->order++;
	ev_push(w, e);
	return true;
}

static void deliver_px(struct world *w, struct event *e)
{
	uint8_t i = e->node;
	struct node *n = &w->nodes[i];
	uint64_t t = local_time(w, i);
	if (e->kind == EV_SNAPSHOT) {
		if (px_snapshot_install(n->px, t, e->data, e->data_len,
					&w->out) != 0)
			sim_violation("replica %u rejected a snapshot", i);
		else
			narrate(w, "replica %u installed a snapshot at slot "
				"%llu", i,
				(unsigned long long)px_applied_index(n->px));
	} else if (e->kind == EV_HEARTBEAT) {
		if (w->now >= n->ctl_paused_until) {
			struct ctl_input in = { .kind = CTL_IN_HEARTBEAT };
			in.heartbeat = e->hb;
			ctl_step(w, i, t, &in);
		}
		return;
	} else {
		px_step(n->px, t, &e->msg, &w->out);
	}
	after_step(w, i);
	px_flush(n->px, t, &w->out);
	after_step(w, i);
}

/* ---- Clients: closed loop, one request outstanding each ---- */

static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static uint64_t value_id(const uint8_t *v, uint16_t len)
{
	uint64_t id = 0;
	if (len == 8)
		memcpy(&id, v, 8);
	return id;
}

/* The stream of the client draws the stock simulator did not make (churn,
 * the pause after an EXPIRED), one per client slot, seeded from the seed:
 * rnd(w) sees the same sequence as before. */
static uint64_t client_rnd(struct world *w, uint32_t ci)
{
	struct client *c = &w->clients[ci];
	if (c->prng == 0)
		c->prng = (w->p->seed + 1) * 0xa0761d6478bd642full ^
			  ((uint64_t)ci + 1) * 0xe7037ed1a0b428dbull;
	uint64_t z = (c->prng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The nonce a slot's OPENs and reads carry; only its session id is not a
 * nonce (bit 63). */
static uint64_t client_nonce(uint32_t ci)
{
	return SIM_CLIENT_ID_BASE + ci;
}

static uint32_t client_of(const struct world *w, uint64_t client_id)
{
	if (!(client_id & PX_SESSION_ID_BIT))
		return (uint32_t)(client_id - SIM_CLIENT_ID_BASE);
	for (uint32_t ci = 0; ci < w->p->clients; ci++)
		if (w->clients[ci].session_id == client_id)
			return ci;
	return UINT32_MAX;
}

static void client_send(struct world *w, uint32_t ci)
{
	struct client *c = &w->clients[ci];
	struct px_msg m = { 0 };
	m.type = PX_MSG_REQUEST;
	m.from = PX_TO_CLIENT;
	m.to = c->target;
	bool nonce = c->is_read || c->opening;
	m.client_id = nonce ? client_nonce(ci) : c->session_id;
	m.seq = c->wire_seq;
	m.flags = c->is_read ? PX_FLAG_READ : c->opening ? PX_FLAG_OPEN : 0;
	uint32_t len = c->opening ? 0 : c->cmd_len;
	m.value = c->cmd;
	m.value_len = len;
	struct event *e = ev_new(w, 0, EV_MSG, c->target);
	e->msg = m;
	e->data = len > 0 ? malloc(len) : NULL;
	if (len > 0)
		memcpy(e->data, c->cmd, len);
	e->data_len = len;
	e->msg.value = e->data;
	net_send(w, e, PX_TO_CLIENT, c->target);
	schedule(w, w->p->faults.client_timeout_ns, EV_CLIENT, (uint8_t)ci, ++c->gen);
	c->timed_out = true; /* unless a reply reschedules first */
}

/* The next attempt of a write: on the session, or first the OPEN of one. */
static void client_address_write(struct client *c)
{
	c->opening = c->session_id == 0;
	c->wire_seq = c->opening ? ++c->open_seq : ++c->seq;
}

static struct lc_op *hist_new(struct world *w)
{
	if (w->hist_len == w->hist_cap) {
		w->hist_cap = w->hist_cap ? 2 * w->hist_cap : 1024;
		w->hist = realloc(w->hist, w->hist_cap * sizeof(*w->hist));
		if (w->hist == NULL)
			exit(2);
	}
	struct lc_op *op = &w->hist[w->hist_len++];
	memset(op, 0, sizeof(*op));
	op->call_ns = w->now;
	op->return_ns = LC_NEVER;
	return op;
}

/* Picks an operation on a small key space, so clients contend. */
static void client_new_op(struct world *w, uint32_t ci)
{
	struct client *c = &w->clients[ci];
	c->busy = true;
	c->hist = w->hist_len;
	struct lc_op *op = hist_new(w);
	op->client = ci;
	op->key = rnd(w) % SIM_KEYS;
	uint8_t key = (uint8_t)('a' + op->key), val[8], old[8];
	uint64_t r = rnd(w) % 100;
	enum bpx_kv_op kind = r < 40 ? BPX_KV_GET : r < 75 ? BPX_KV_PUT
					   : r < 85 ? BPX_KV_DEL : BPX_KV_CAS;
	op->kind = kind == BPX_KV_GET ? LC_GET : kind == BPX_KV_PUT ? LC_PUT
				       : kind == BPX_KV_DEL ? LC_DEL : LC_CAS;
	uint64_t fresh = ++w->next_value;
	put_u64(val, fresh);
	put_u64(old, c->last_seen[op->key]);
	if (kind == BPX_KV_PUT)
		op->arg = fresh;
	if (kind == BPX_KV_CAS) {
		op->arg = c->last_seen[op->key];
		op->arg2 = fresh;
	}
	/* GETs are session-less reads (lease or log); writes use the session.
	 * The state machine sees the slot and its write count in the prefix,
	 * whatever session carries the write (sim_sm.c). */
	c->is_read = kind == BPX_KV_GET;
	c->opening = false;
	if (c->is_read)
		c->wire_seq = PX_SEQ_READ_BASE + ++c->read_seq;
	else
		client_address_write(c);
	put_u64(c->cmd, ci);
	put_u64(c->cmd + 8, c->is_read ? c->wire_seq : ++c->op_count);
	int n = bpx_kv_encode(c->cmd + 16, sizeof(c->cmd) - 16, kind, &key, 1,
			      kind == BPX_KV_PUT ? val : old,
			      kind == BPX_KV_PUT || kind == BPX_KV_CAS ? 8 : 0,
			      val, kind == BPX_KV_CAS ? 8 : 0);
	if (n < 0)
		exit(2);
	c->cmd_len = 16 + (uint32_t)n;
	client_send(w, ci);
}

static void client_complete(struct world *w, uint32_t ci,
			    const struct px_msg *m)
{
	struct client *c = &w->clients[ci];
	struct lc_op *op = &w->hist[c->hist];
	uint8_t status;
	const uint8_t *v;
	uint16_t vlen;
	if (bpx_kv_decode_reply(m->value, m->value_len, &status, &v, &vlen)) {
		sim_violation("client %u got a malformed reply", ci);
		return;
	}
	op->return_ns = w->now;
	op->out = value_id(v, vlen);
	op->out_ok = status == BPX_KV_OK;
	if (op->kind == LC_GET || op->kind == LC_CAS)
		c->last_seen[op->key] = op->out;
	if (op->kind == LC_CAS && op->out_ok)
		c->last_seen[op->key] = op->arg2;
	if (!c->is_read) /* a read may be a lease read, in no slot */
		checker_acked(w->checker, ci, c->op_count);
	w->res->requests_acked++;
	c->busy = false;
	/* Churn: the client quits, and a new one, with a session of its own
	 * and nothing seen yet, takes its place. */
	if (w->p->client_churn_pct > 0 &&
	    client_rnd(w, ci) % 100 < w->p->client_churn_pct) {
		c->session_id = 0;
		memset(c->last_seen, 0, sizeof(c->last_seen));
		w->res->client_churns++;
	}
	schedule(w, rnd_range(w, 0, 1 * MS), EV_CLIENT, (uint8_t)ci, ++c->gen);
}

/* The OPEN was applied: the write goes out at once on the new session. */
static void client_opened(struct world *w, uint32_t ci, const struct px_msg *m)
{
	struct client *c = &w->clients[ci];
	uint64_t id = 0;
	if (m->value_len == PX_SESSION_ID_BYTES)
		for (unsigned i = 0; i < PX_SESSION_ID_BYTES; i++)
			id |= (uint64_t)m->value[i] << (8 * i);
	if (!(id & PX_SESSION_ID_BIT) || client_of(w, id) != UINT32_MAX) {
		sim_violation("client %u: OPEN answered with session %#llx", ci,
			      (unsigned long long)id);
		return;
	}
	c->session_id = id;
	c->seq = 0;
	client_address_write(c);
	if (m->from < w->p->replicas)
		c->target = m->from; /* it leads */
	client_send(w, ci);
}

/* EXPIRED: the session was evicted, so the write's outcome is unknown (as
 * a timed-out op's: it stays LC_NEVER in the history), and the slot's next
 * write opens a new session. Legal only once sessions could have been
 * evicted: more OPENs chosen than the table holds (or the planted bug
 * made sessions of its own). */
static void client_expired(struct world *w, uint32_t ci)
{
	struct client *c = &w->clients[ci];
	uint32_t cap = w->p->session_max ? w->p->session_max : 64;
	if (c->is_read || c->opening ||
	    checker_opens_chosen(w->checker) <= cap) {
		sim_violation("client %u seq %llu: EXPIRED with %llu sessions "
			      "opened of %u",
			      ci, (unsigned long long)c->wire_seq,
			      (unsigned long long)checker_opens_chosen(
				      w->checker),
			      cap);
		return;
	}
	w->res->requests_expired++;
	c->session_id = 0;
	c->busy = false;
	schedule(w, client_rnd(w, ci) % (1 * MS), EV_CLIENT, (uint8_t)ci,
		 ++c->gen);
}

static void client_on_reply(struct world *w, const struct event *e)
{
	uint32_t ci = client_of(w, e->msg.client_id);
	if (ci >= w->p->clients)
		return;
	struct client *c = &w->clients[ci];
	bool nonce = !(e->msg.client_id & PX_SESSION_ID_BIT);
	if (!c->busy || e->msg.seq != c->wire_seq ||
	    nonce != (c->is_read || c->opening))
		return; /* a late or duplicated reply */
	switch (e->msg.status) {
	case PX_REPLY_OK:
		if (c->opening)
			client_opened(w, ci, &e->msg);
		else
			client_complete(w, ci, &e->msg);
		return;
	case PX_REPLY_EXPIRED:
		client_expired(w, ci);
		return;
	case PX_REPLY_REDIRECT:
		c->timed_out = false;
		c->target = e->msg.leader_hint < w->p->replicas &&
				    e->msg.leader_hint != e->node
			    ? e->msg.leader_hint
			    : (uint8_t)((e->node + 1) % w->p->replicas);
		schedule(w, rnd_range(w, 100 * US, 1 * MS), EV_CLIENT,
			 (uint8_t)ci, ++c->gen);
		return;
	case PX_REPLY_BUSY:
		c->timed_out = false;
		schedule(w, rnd_range(w, 1 * MS, 3 * MS), EV_CLIENT,
			 (uint8_t)ci, ++c->gen);
		return;
	default:
		sim_violation("client %u seq %llu got unexpected status %u", ci,
			      (unsigned long long)c->wire_seq, e->msg.status);
	}
}

static void client_timer(struct world *w, const struct event *e)
{
	struct client *c = &w->clients[e->node];
	if (e->gen != c->gen)
		return;
	if (c->busy) {
		/* Retry the same (client, seq): exactly-once makes it safe. */
		if (c->timed_out)
			c->target = (uint8_t)(rnd(w) % w->p->replicas);
		client_send(w, e->node);
		return;
	}
	if (w->faults_on)
		client_new_op(w, e->node);
}

/* ---- Faults ---- */

/* Replicas without their state: crashed, or restarted and recovering. */
static uint8_t stateless_mask(const struct world *w)
{
	uint8_t mask = 0;
	for (uint8_t i = 0; i < w->p->replicas; i++)
		if (!w->nodes[i].up ||
		    px_role(w->nodes[i].px) == PX_ROLE_RECOVERING)
			mask |= (uint8_t)(1u << i);
	return mask;
}

/* The failure model bypax promises to survive: at most a minority of any
 * configuration that may be in force (the recent ones) without state. */
static bool may_lose_state(const struct world *w, uint8_t i)
{
	uint8_t lost = (uint8_t)(stateless_mask(w) | (1u << i));
	for (uint8_t k = 0; k < w->recent_count; k++) {
		uint8_t c = w->recent_configs[k];
		int n = __builtin_popcount(c);
		if (__builtin_popcount(lost & c) > n - (n / 2 + 1))
			return false;
	}
	return true;
}

static void fault_crash(struct world *w)
{
	uint8_t i = (uint8_t)(rnd(w) % w->p->replicas);
	if (!w->nodes[i].up || !may_lose_state(w, i))
		return;
	node_stop(w, i);
	w->res->faults++;
	uint64_t lost = (uint64_t)__builtin_popcount(stateless_mask(w));
	if (lost > w->res->stateless_max)
		w->res->stateless_max = lost;
	narrate(w, "crash replica %u (its memory is lost)", i);
	schedule(w, rnd_range(w, 5 * MS, w->p->faults.restart_max_ns),
		 EV_RESTART, i, w->nodes[i].gen);
}

static void cut_plane(struct world *w, enum plane plane, uint8_t a, uint8_t b,
		      bool both_ways)
{
	w->link_down[plane][a][b] = true;
	if (both_ways)
		w->link_down[plane][b][a] = true;
}

static void cut(struct world *w, uint8_t a, uint8_t b, bool both_ways)
{
	cut_plane(w, PLANE_BOTH, a, b, both_ways);
}

/* The replica a partition or a pause is about: x (random) in the stock
 * simulator; under leader_target_pct, the leader if there is one, since
 * cutting off or stalling a leader that still holds a lease or a pending
 * change is where elections, leases and membership meet. */
static uint8_t fault_target(struct world *w, uint8_t x)
{
	if (w->p->faults.leader_target_pct == 0 ||
	    rnd2(w) % 100 >= w->p->faults.leader_target_pct)
		return x;
	for (uint8_t i = 0; i < w->p->replicas; i++)
		if (w->nodes[i].up && px_role(w->nodes[i].px) == PX_ROLE_LEADER)
			return i;
	return x;
}

static void fault_pause(struct world *w)
{
	uint8_t i = fault_target(w, (uint8_t)(rnd(w) % w->p->replicas));
	if (!w->nodes[i].up || w->now < w->nodes[i].paused_until)
		return;
	uint64_t len = rnd_range(w, 5 * MS, 60 * MS);
	w->res->faults++;
	if (chance(w, 50)) {
		/* Often together with a cut: a leader that keeps its stale
		 * hint and keeps serving its clients, the case leases are for. */
		w->nodes[i].ctl_paused_until = w->now + len;
		bool cut_off = chance(w, 50);
		for (uint8_t j = 0; cut_off && j < w->p->replicas; j++)
			if (j != i)
				cut(w, i, j, true);
		if (cut_off)
			schedule(w, len, EV_HEAL, 0, 0);
		narrate(w, "stall the control thread of replica %u for %.1f ms%s",
			i, (double)len / MS, cut_off ? ", cut off" : "");
		return;
	}
	w->nodes[i].paused_until = w->now + len;
	narrate(w, "pause replica %u for %.1f ms", i, (double)len / MS);
}


/* Which plane a partition cuts: both (the stock simulator's only kind),
 * or, for plane_split_pct of them, the control plane alone (heartbeats
 * stop, consensus messages flow: the failure detector suspects a leader
 * that still leads) or the data plane alone (heartbeats flow: the control
 * plane keeps hinting a leader that cannot reach a majority). */
static enum plane partition_plane(struct world *w)
{
	uint32_t pct = w->p->faults.plane_split_pct;
	if (pct == 0 || rnd2(w) % 100 >= pct)
		return PLANE_BOTH;
	return rnd2(w) % 2 ? PLANE_CTL : PLANE_DATA;
}

/* Symmetric isolation, a split in two, a one-way cut, or two halves that
 * only one replica bridges; of the control plane, the data plane or both. */
static void fault_partition(struct world *w)
{
	static const char *const what[PLANE_COUNT] = {
		"", " (control plane only)", " (data plane only)"
	};
	uint8_t n = w->p->replicas, x = (uint8_t)(rnd(w) % n);
	uint64_t kind = rnd(w) % 4;
	enum plane pl = partition_plane(w);
	x = fault_target(w, x);
	if (kind == 0) {
		for (uint8_t j = 0; j < n; j++)
			if (j != x)
				cut_plane(w, pl, x, j, true);
		narrate(w, "partition%s: replica %u isolated", what[pl], x);
	} else if (kind == 1) {
		uint32_t side = (uint32_t)rnd(w);
		for (uint8_t a = 0; a < n; a++)
			for (uint8_t b = 0; b < n; b++)
				if (((side >> a) & 1) != ((side >> b) & 1))
					cut_plane(w, pl, a, b, true);
		narrate(w, "partition%s: split in two (mask %#x)", what[pl],
			side & ((1u << n) - 1));
	} else if (kind == 2) {
		uint8_t y = (uint8_t)((x + 1 + rnd(w) % (n - 1)) % n);
		cut_plane(w, pl, x, y, false);
		narrate(w, "partition%s: one way, %u cannot reach %u", what[pl],
			x, y);
	} else {
		for (uint8_t a = 0; a < n; a++)
			for (uint8_t b = 0; b < n; b++)
				if (a != x && b != x && (a % 2) != (b % 2))
					cut_plane(w, pl, a, b, true);
		narrate(w, "partition%s: two halves bridged only by %u",
			what[pl], x);
	}
	w->res->faults++;
	schedule(w, rnd_range(w, 10 * MS, 120 * MS), EV_HEAL, 0, 0);
}

static void heal_links(struct world *w)
{
	memset(w->link_down, 0, sizeof(w->link_down));
}

static uint8_t current_leader(const struct world *w)
{
	for (uint8_t i = 0; i < w->p->replicas; i++)
		if (w->nodes[i].up && px_role(w->nodes[i].px) == PX_ROLE_LEADER)
			return i;
	return PX_REPLICA_NONE;
}

/* Lease attacks: the shapes of the stale reads of issue 8, around the
 * leader L and a follower A that a rogue hint makes a candidate (a wrong
 * hint is within the fault model: safety never rests on the control
 * plane). In two stages, a lease apart:
 *  - Own promise (hole 2): first L's data links to B (majority - 1
 *    replicas other than A) are cut, until their lease promises to L
 *    lapse; then L goes deaf (nothing reaches it) and A is told to lead.
 *    A still hears L's heartbeats: it must not run for leader while its
 *    own promise to L runs, as L's lease, which A's acknowledgements
 *    granted, may still run, and L hears of no higher ballot.
 *  - Followers' promises: first A is cut off from L, until A's own
 *    promise lapses; then L goes deaf and A is told to lead. The others
 *    still hear L and must refuse A while their promises to L run.
 * The third stage ends the attack. */
enum { NEMESIS_OWN_PROMISE, NEMESIS_FOLLOWERS };

static void nemesis_next(struct world *w, uint64_t delay, uint8_t stage,
			 uint8_t kind, uint8_t l, uint8_t a)
{
	struct event *e = ev_new(w, w->now + delay, EV_NEMESIS, a);
	e->gen = (uint64_t)stage << 16 | (uint64_t)kind << 8 | l;
	ev_push(w, e);
}

static void fault_nemesis(struct world *w)
{
	uint8_t n = w->p->replicas, l = current_leader(w);
	if (w->nemesis_on || l == PX_REPLICA_NONE ||
	    w->now < w->nodes[l].paused_until)
		return;
	uint8_t a = (uint8_t)((l + 1 + rnd2(w) % (n - 1)) % n);
	uint8_t kind = (uint8_t)(rnd2(w) % 2);
	/* B: majority - 1 others, so that A and B make a majority while L
	 * keeps the acknowledgements of the rest (its lease). */
	uint8_t bmask = 0;
	while (__builtin_popcount(bmask) < n / 2) {
		uint8_t b = (uint8_t)(rnd2(w) % n);
		if (b != l && b != a)
			bmask |= (uint8_t)(1u << b);
	}
	w->nemesis_b = bmask;
	w->res->faults++;
	w->nemesis_on = true;
	if (kind == NEMESIS_OWN_PROMISE) {
		for (uint8_t b = 0; b < n; b++)
			if (bmask & (1u << b))
				w->nemesis_down[l][b] = w->nemesis_down[b][l] =
					true;
	} else {
		w->nemesis_down[l][a] = w->nemesis_down[a][l] = true;
	}
	uint64_t lease = w->p->faults.lease_ns;
	nemesis_next(w, lease + 1 * MS + rnd2(w) % (lease / 4 + MS), 2, kind,
		     l, a);
	narrate(w, "lease attack on leader %u through %u (%s), stage 1", l, a,
		kind == NEMESIS_OWN_PROMISE ? "own promise" : "followers");
}

static void nemesis_stage(struct world *w, const struct event *e)
{
	uint8_t a = e->node, l = (uint8_t)e->gen;
	uint8_t kind = (uint8_t)(e->gen >> 8), stage = (uint8_t)(e->gen >> 16);
	if (stage == 3 || !w->faults_on) {
		memset(w->nemesis_down, 0, sizeof(w->nemesis_down));
		w->nodes[a].rogue_until = 0;
		w->nemesis_on = false;
		return;
	}
	(void)kind;
	for (uint8_t b = 0; b < w->p->replicas; b++)
		if (b != l)
			w->nemesis_down[b][l] = true;
	uint64_t len = 20 * MS + rnd2(w) % (60 * MS);
	w->nodes[a].rogue_hint = a;
	w->nodes[a].rogue_until = w->now + len;
	nemesis_next(w, len, 3, kind, l, a);
	narrate(w, "lease attack on leader %u: %u told to lead", l, a);
}

static void note_config(struct world *w, uint8_t mask)
{
	uint8_t max = w->p->stock ? SIM_RECENT_CONFIGS_STOCK
				  : SIM_RECENT_CONFIGS;
	if (!w->p->stock && w->recent_count > 0 && w->recent_configs[0] == mask)
		return;
	memmove(&w->recent_configs[1], &w->recent_configs[0], max - 1u);
	w->recent_configs[0] = mask;
	if (w->recent_count < max)
		w->recent_count++;
}

/* A membership change through the current leader: drop one voting replica
 * (keeping two) or add one back. */
static void fault_reconfig(struct world *w)
{
	uint8_t leader = PX_REPLICA_NONE;
	for (uint8_t i = 0; i < w->p->replicas; i++)
		if (w->nodes[i].up && w->now >= w->nodes[i].paused_until &&
		    px_role(w->nodes[i].px) == PX_ROLE_LEADER)
			leader = i;
	if (leader == PX_REPLICA_NONE)
		return;
	struct px_replica *px = w->nodes[leader].px;
	uint8_t cur = px_members(px), pick = (uint8_t)(rnd(w) % w->p->replicas);
	uint8_t next = (uint8_t)(cur ^ (1u << pick));
	if (__builtin_popcount(next) < 2)
		return;
	/* Losing state must stay within a minority of the new one too. */
	uint8_t lost = stateless_mask(w);
	int n = __builtin_popcount(next);
	if (__builtin_popcount(lost & next) > n - (n / 2 + 1))
		return;
	uint64_t t = local_time(w, leader);
	if (px_propose_config(px, t, next, &w->out) != 0)
		return;
	after_step(w, leader);
	if (!w->p->stock)
		note_config(w, cur); /* in force until next is chosen */
	note_config(w, next);
	w->res->faults++;
	narrate(w, "membership: leader %u proposes members %#x (was %#x)",
		leader, next, cur);
}

static void fault_event(struct world *w, const struct event *e)
{
	const struct sim_faults *f = &w->p->faults;
	uint64_t every = e->node == 0 ? f->partition_every_ns
			 : e->node == 1 ? f->crash_every_ns
			 : e->node == 2 ? f->pause_every_ns
			 : e->node == 4 ? f->nemesis_every_ns
					: f->reconfig_every_ns;
	if (!w->faults_on || every == 0)
		return;
	if (e->node == 0)
		fault_partition(w);
	else if (e->node == 4)
		fault_nemesis(w);
	else if (e->node == 1)
		fault_crash(w);
	else if (e->node == 2)
		fault_pause(w);
	else
		fault_reconfig(w);
	uint64_t next = e->node == 4 ? every / 2 + rnd2(w) % (every + 1)
				     : rnd_range(w, every / 2, every * 3 / 2);
	schedule(w, next, EV_FAULT, e->node, 0);
}

/* The end of the fault phase: every fault stops; from here on everything
 * pending must complete. */
static void settle(struct world *w)
{
	w->faults_on = false;
	heal_links(w);
	for (uint8_t i = 0; i < w->p->replicas; i++) {
		if (!w->nodes[i].up)
			node_start(w, i, true);
		w->nodes[i].paused_until = 0;
		w->nodes[i].ctl_paused_until = 0;
		w->nodes[i].rogue_until = 0;
		memset(w->nemesis_down, 0, sizeof(w->nemesis_down));
	}
	narrate(w, "faults stop; every pending request must now complete");
	w->settle_deadline = w->now + w->p->settle_limit_ns;
}

/* ---- Convergence (liveness) ---- */

static bool clients_idle(const struct world *w)
{
	for (uint32_t i = 0; i < w->p->clients; i++)
		if (w->clients[i].busy)
			return false;
	return true;
}

/* Converged: all replicas up and voting, all applied the same prefix, and
 * their states are identical. */
static bool replicas_converged(const struct world *w, char *why, size_t n)
{
	uint64_t top = 0;
	for (uint8_t i = 0; i < w->p->replicas; i++) {
		const struct node *nd = &w->nodes[i];
		if (!nd->up || px_role(nd->px) == PX_ROLE_RECOVERING) {
			snprintf(why, n, "replica %u is still recovering", i);
			return false;
		}
		if (px_commit_index(nd->px) > top)
			top = px_commit_index(nd->px);
	}
	for (uint8_t i = 0; i < w->p->replicas; i++) {
		const struct px_replica *r = w->nodes[i].px;
		if (px_applied_index(r) != top) {
			snprintf(why, n, "replica %u applied %llu of %llu", i,
				 (unsigned long long)px_applied_index(r),
				 (unsigned long long)top);
			return false;
		}
		if (px_state_digest(r) != px_state_digest(w->nodes[0].px)) {
			snprintf(why, n, "replica %u state differs at %llu", i,
				 (unsigned long long)top);
			return false;
		}
	}
	return true;
}

static void check_event(struct world *w)
{
	char why[160] = "clients still waiting for replies";
	if (clients_idle(w) && replicas_converged(w, why, sizeof(why))) {
		w->settled = true;
		return;
	}
	if (w->now >= w->settle_deadline) {
		sim_violation("liveness: no convergence %.0f ms after faults "
			      "stopped: %s",
			      (double)w->p->settle_limit_ns / MS, why);
		w->settled = true;
		return;
	}
	schedule(w, 5 * MS, EV_CHECK, 0, 0);
}

/* ---- The run ---- */

static void dispatch(struct world *w, struct event *e)
{
	switch (e->kind) {
	case EV_MSG:
	case EV_HEARTBEAT:
	case EV_SNAPSHOT:
		if (!w->nodes[e->node].up)
			break;
		if (defer_if_paused(w, e))
			return; /* e was put back */
		deliver_px(w, e);
		break;
	case EV_REPLY:
		client_on_reply(w, e);
		break;
	case EV_TICK:
		if (e->gen != w->nodes[e->node].gen)
			break;
		if (!defer_if_paused(w, e)) {
			node_tick(w, e->node);
			schedule(w, TICK_NS, EV_TICK, e->node, e->gen);
			break;
		}
		return;
	case EV_CLIENT:
		client_timer(w, e);
		break;
	case EV_FAULT:
		fault_event(w, e);
		break;
	case EV_HEAL:
		if (w->faults_on)
			heal_links(w);
		break;
	case EV_NEMESIS:
		nemesis_stage(w, e);
		break;
	case EV_RESTART:
		if (e->gen == w->nodes[e->node].gen && !w->nodes[e->node].up) {
			node_start(w, e->node, true);
			narrate(w, "restart replica %u without its state", e->node);
		}
		break;
	case EV_CHECK:
		if (w->faults_on)
			settle(w);
		check_event(w);
		break;
	}
	ev_free(e);
}

static void world_init(struct world *w, const struct sim_params *p,
		       struct sim_result *res)
{
	memset(w, 0, sizeof(*w));
	w->p = p;
	w->res = res;
	w->prng = p->seed ^ 0x5eedull;
	w->prng2 = p->seed * 0xd6e8feb86659fd93ull ^ 0x5eed2ull;
	w->out.msgs = w->outbox_msgs;
	w->out.cap = OUTBOX_CAP;
	w->faults_on = true;
	w->checker = checker_new(p->replicas, p->clients, SIM_WINDOW_SLOTS);
	current = w;
	for (uint8_t i = 0; i < p->replicas; i++) {
		struct node *n = &w->nodes[i];
		n->offset_ns = rnd_range(w, 0, p->faults.skew_offset_max_ns);
		int64_t ppm = (int64_t)rnd_range(w, 0, 2 * p->faults.skew_ppm_max);
		n->ppm = ppm - (int64_t)p->faults.skew_ppm_max;
		node_start(w, i, false);
	}
	for (uint32_t i = 0; i < p->clients; i++) {
		w->clients[i].target = (uint8_t)(rnd(w) % p->replicas);
		schedule(w, rnd_range(w, 1 * MS, 5 * MS), EV_CLIENT, (uint8_t)i,
			 ++w->clients[i].gen);
	}
	for (uint8_t k = 0; k < 4; k++)
		schedule(w, rnd_range(w, 20 * MS, 60 * MS), EV_FAULT, k, 0);
	if (p->faults.nemesis_every_ns != 0)
		schedule(w, 20 * MS + rnd2(w) % (40 * MS), EV_FAULT, 4, 0);
	w->recent_configs[0] = (uint8_t)((1u << p->replicas) - 1);
	w->recent_count = 1;
	schedule(w, p->fault_phase_ns, EV_CHECK, 0, 0);
}

static void world_free(struct world *w)
{
	struct event *e;
	while ((e = ev_pop(w)) != NULL)
		ev_free(e);
	free(w->heap);
	for (uint8_t i = 0; i < w->p->replicas; i++)
		node_stop(w, i);
	free(w->hist);
	checker_free(w->checker);
}

/* Linearizability search budgets, in states (lincheck.h: 100 to 150 bytes
 * each, so the recheck may take 3 GiB): the first decides every history the simulator has produced so
 * far; a history it cannot decide gets one more try with ten times as
 * much, and if that runs out too the seed fails: an undecided history is
 * not a pass. */
#define SIM_LINCHECK_BUDGET_STATES 2000000
#define SIM_LINCHECK_RECHECK_STATES 20000000

static void check_histories(struct world *w)
{
	struct lc_report rep;
	enum lc_verdict v = lc_check_history(w->hist, w->hist_len,
					     SIM_LINCHECK_BUDGET_STATES, &rep);
	if (v == LC_UNKNOWN)
		v = lc_check_history(w->hist, w->hist_len,
				     SIM_LINCHECK_RECHECK_STATES, &rep);
	if (v == LC_VIOLATION)
		sim_violation("not linearizable: %s", rep.why);
	if (v == LC_UNKNOWN) {
		w->res->lincheck_unknown++;
		sim_violation("linearizability undecided after %llu states "
			      "(recheck budget): %s",
			      (unsigned long long)rep.states_explored, rep.why);
	}
}

void sim_run(const struct sim_params *p, struct sim_result *res)
{
	static struct world w;
	memset(res, 0, sizeof(*res));
	world_init(&w, p, res);
	struct event *e;
	while (!w.settled && res->violations == 0 && (e = ev_pop(&w)) != NULL) {
		w.now = e->at;
		res->steps++;
		dispatch(&w, e);
	}
	if (res->violations == 0)
		check_histories(&w);
	res->committed_slots = checker_chosen_slots(w.checker);
	for (uint8_t i = 0; i < p->replicas; i++)
		if (w.nodes[i].up) {
			const struct px_stats *st = px_stats(w.nodes[i].px);
			res->lease_reads += st->lease_reads;
			if (st->config_changes > res->config_changes)
				res->config_changes = st->config_changes;
		}
	res->sim_time_ns = w.now;
	world_free(&w);
}
