/* The simulated world: an event queue on one clock, a faulty network,
 * replicas running the real consensus and Omega code, and closed-loop
 * clients whose histories are checked for linearizability. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bypax/kv.h"
#include "ctl_policy.h"
#include "engine.h"
#include "sim_internal.h"
/* Read-only: the membership lease attack (fault_nemesis) reads a leader's
 * configuration history, the slot its change takes effect at, which the
 * public API does not tell; the recovery attack (fault_recovery) times its
 * stages on ballots, phase 1 and log slots. The simulator never writes
 * through it. */
#include "../../consensus/internal.h"

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
	EV_NEMESIS, /* the next stage of a lease or recovery attack */
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
	/* --durable: its disk, which outlives its memory, and whether a
	 * corrupt record found at a restart keeps it down for good. */
	struct sim_disk disk;
	bool dead;
	uint64_t told_promise; /* --durable: the highest ballot it has told
				  anyone it promised, over all its lives */
	/* --durable: records of its own votes as leader, written but not yet
	 * synced (the checker counts each once it is; a crash loses them). */
	struct unsynced_vote *unsynced;
	size_t unsynced_count, unsynced_cap;
};

struct unsynced_vote {
	uint64_t slot, ballot;
	uint32_t len;
	uint8_t value[PX_VALUE_BYTES_MAX];
};

/* A client slot: one client at a time, each with its own session, opened
 * through the log before its first write (by its engine); with churn, a
 * client quits after an op and a new one (a new session) takes the slot. */
struct client {
	struct bpx_engine eng;	    /* the client's rules (client/engine.h) */
	struct bpx_engine_lane lane; /* its one lane: session, seqs, timers */
	uint64_t op_count;  /* writes of the slot, in the command's prefix */
	uint64_t prng;      /* the client draws added since the stock
			       simulator; 0: not seeded yet */
	bool busy;	    /* an op outstanding (the engine's, or its
			       history entry not yet closed) */
	uint64_t gen;	    /* of the EV_CLIENT event that counts */
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
	uint64_t prng_disk; /* --durable draws (in-memory runs make none) */
	uint8_t doomed;	    /* --durable: replicas whose disk is corrupt */
	uint64_t acked_max[SIM_CLIENTS_MAX]; /* highest write acked, by slot */
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
	/* The membership lease attack in progress (nemesis_on): the leader
	 * L that proposed the change, the rogue N, the removed replicas R,
	 * the new configuration's members other than L and N (H, who hear
	 * N's heartbeats but not its PREPAREs), and the new configuration. */
	struct {
		bool on;
		uint8_t l, rogue, removed, hearers, members;
		uint64_t since; /* when L proposed the change */
		uint64_t after; /* L's next slot then */
	} ncfg;
	/* The recovery attack in progress (nemesis_on; fault_recovery): the
	 * leader L, the replica R that crashes, the rogue X, the replicas Y
	 * that complete X's phase 1 with it and the rest Z (L's quorum with
	 * R), X's ballot b once R promised it, the slot E that L chooses
	 * with R and Z, and the stage (enum rec_stage). */
	struct {
		bool on;
		uint8_t stage;
		uint8_t l, r, x, y, z;
		bool toggled;    /* X told to step down for one poll */
		uint64_t b;      /* X's ballot R promised */
		uint64_t lb;     /* L's ballot after R's recovery */
		uint64_t e;      /* L's next slot when Y was cut off */
		uint64_t until;  /* the stage is called off at */
	} rec;
	bool faults_on;
	bool settled;
	/* A crash took the only leader at failover_since, and no replica
	 * leads yet (sim_result.failover_ns). */
	bool failover_pending;
	uint64_t failover_since;
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
static bool nemesis_config_drops(const struct world *w, const struct event *e,
				 uint8_t src, uint8_t dst);
static bool nemesis_recovery_drops(const struct world *w,
				   const struct event *e, uint8_t src,
				   uint8_t dst);

static bool link_cut(const struct world *w, const struct event *e, uint8_t src,
		     uint8_t dst)
{
	if (src >= PX_REPLICAS_MAX || dst >= PX_REPLICAS_MAX)
		return false;
	enum plane plane = e->kind == EV_HEARTBEAT ? PLANE_CTL : PLANE_DATA;
	return w->link_down[PLANE_BOTH][src][dst] ||
	       w->link_down[plane][src][dst] ||
	       (plane == PLANE_DATA && (w->nemesis_down[src][dst] ||
					nemesis_config_drops(w, e, src, dst) ||
					nemesis_recovery_drops(w, e, src, dst)));
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

static uint64_t rnd_disk(struct world *w)
{
	uint64_t z = (w->prng_disk += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A PERSIST record goes to the sender's disk, unsynced; a COMMIT record
 * the caller may skip (consensus.h: never needed for safety). */
static void note_unsynced_vote(struct node *n, const struct px_msg *rec)
{
	PX_ASSERT(rec->value_len <= PX_VALUE_BYTES_MAX);
	if (n->unsynced_count == n->unsynced_cap) {
		n->unsynced_cap = n->unsynced_cap ? 2 * n->unsynced_cap : 16;
		n->unsynced = realloc(n->unsynced, n->unsynced_cap *
							   sizeof(*n->unsynced));
		if (n->unsynced == NULL)
			exit(2);
	}
	struct unsynced_vote *v = &n->unsynced[n->unsynced_count++];
	v->slot = rec->slot;
	v->ballot = rec->ballot;
	v->len = rec->value_len;
	memcpy(v->value, rec->value, rec->value_len);
}

/* The disk of node i syncs: its leader votes count from now on. */
static void disk_sync(struct world *w, uint8_t i)
{
	struct node *n = &w->nodes[i];
	sim_disk_sync(&n->disk);
	for (size_t k = 0; k < n->unsynced_count; k++) {
		const struct unsynced_vote *v = &n->unsynced[k];
		checker_leader_vote_synced(w->checker, i, v->slot, v->ballot,
					   v->value, v->len);
	}
	n->unsynced_count = 0;
}

static void persist_record(struct world *w, uint8_t from,
			   const struct px_msg *m)
{
	struct node *n = &w->nodes[from];
	if (!w->p->durable || m->to != from || m->from != from) {
		sim_violation("replica %u emitted a PERSIST record %s", from,
			      w->p->durable ? "addressed elsewhere" :
					      "in memory mode");
		return;
	}
	if (m->flags == PX_PERSIST_COMMIT &&
	    rnd_disk(w) % 100 < w->p->faults.commit_skip_pct)
		return;
	sim_disk_append(&n->disk, m);
	/* Its vote for its own proposal: a leader's record at its ballot (a
	 * value learned from CHOSEN may keep an older ballot of its own). */
	if (m->flags == PX_PERSIST_ACCEPTED &&
	    px_role(n->px) == PX_ROLE_LEADER &&
	    m->ballot == px_leader_ballot(n->px))
		note_unsynced_vote(n, m);
}

/* --durable: what a message tells its receiver the sender promised (its
 * own ballot, for a leader's PREPARE and ACCEPT). */
static void note_told_promise(struct world *w, uint8_t from,
			      const struct px_msg *m)
{
	bool promise =
		m->type == PX_MSG_PROMISE || m->type == PX_MSG_ACCEPTED ||
		m->type == PX_MSG_ACCEPT ||
		(m->type == PX_MSG_PREPARE && !(m->flags & PX_FLAG_RECOVERY)) ||
		(m->type == PX_MSG_STATUS && m->seq != 0);
	struct node *n = &w->nodes[from];
	if (w->p->durable && promise && m->ballot > n->told_promise)
		n->told_promise = m->ballot;
}

/* The caller of the core, as bypaxd's is: records to the disk, and
 * before a message that comes after records, a sync (the caller's rule,
 * consensus.h). The records at the outbox's end are synced only when the
 * replica next runs (sync_tail): a crash before that loses them. */
static void drain(struct world *w, uint8_t from)
{
	struct sim_disk *d = &w->nodes[from].disk;
	for (uint32_t i = 0; i < w->out.count; i++) {
		const struct px_msg *m = &w->out.msgs[i];
		if (m->type == PX_MSG_PERSIST) {
			persist_record(w, from, m);
			continue;
		}
		if (sim_disk_pending(d))
			disk_sync(w, from);
		note_told_promise(w, from, m);
		checker_observe(w->checker, m);
		send_px(w, from, m);
	}
	w->out.count = 0;
}

static void sync_tail(struct world *w, uint8_t i)
{
	if (w->p->durable)
		disk_sync(w, i);
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
	cfg->recovering = recovering && !w->p->durable;
	cfg->durable = w->p->durable;
	cfg->sm_ops = sim_sm_ops();
	cfg->sm = w->nodes[i].sm;
}

static void node_free(struct node *n)
{
	free(n->mem);
	n->mem = NULL;
	n->px = NULL;
	sim_sm_ops()->destroy(n->sm);
	n->sm = NULL;
}

/* --durable: the leader's votes whose records were unsynced at its crash
 * and that the crash kept (it keeps any prefix of them): its log holds
 * them again at their ballot, so they count as votes from now on, and the
 * checker judges what is chosen with them. The rest were lost. */
static void count_surviving_votes(struct world *w, uint8_t i)
{
	struct node *n = &w->nodes[i];
	for (size_t k = 0; k < n->unsynced_count; k++) {
		const struct unsynced_vote *v = &n->unsynced[k];
		const struct px_slot *s = px_log_get(n->px, v->slot);
		if (s != NULL && s->accepted_ballot == v->ballot &&
		    s->value_len == v->len &&
		    memcmp(s->value, v->value, v->len) == 0)
			checker_leader_vote_synced(w->checker, i, v->slot,
						   v->ballot, v->value, v->len);
	}
	n->unsynced_count = 0;
}

/* --durable: the restart from the disk (sim_disk_replay). A corrupt record
 * keeps the replica down for good, as bypaxd stops on one; the core
 * refusing a sound record is a bug. Returns whether it runs. */
static bool restart_from_disk(struct world *w, uint8_t i)
{
	struct node *n = &w->nodes[i];
	char why[160];
	uint64_t cuts = n->disk.cuts;
	bool restart = n->disk.len > 0 || n->disk.snap_len > 0;
	int rc = sim_disk_replay(&n->disk, n->px, i, why, sizeof(why));
	w->res->torn_cut += n->disk.cuts - cuts;
	if (rc == 0) {
		w->res->disk_restarts += restart;
		if (px_promised_ballot(n->px) < n->told_promise)
			sim_violation(
				"replica %u restarted from its disk below "
				"a promise it had sent",
				i);
		count_surviving_votes(w, i);
		checker_after_restart(w->checker, i, n->px);
		return true;
	}
	n->unsynced_count = 0;
	if (rc == -2 || !(w->doomed & (1u << i)))
		sim_violation("replica %u cannot restart: %s", i, why);
	narrate(w, "replica %u stays down: %s", i, why);
	n->dead = true;
	w->res->corrupt_down++;
	node_free(n);
	return false;
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
	if (w->p->durable && !restart_from_disk(w, i))
		return;
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
	node_free(n);
	/* n->unsynced: the crash keeps some maybe (restart_from_disk). */
	if (w->p->durable)
		sim_disk_crash(&n->disk,
			       rnd_disk(w) % 100 < w->p->faults.torn_pct,
			       rnd_disk(w));
}

static bool someone_leads(const struct world *w)
{
	for (uint8_t i = 0; i < w->p->replicas; i++)
		if (w->nodes[i].up && px_role(w->nodes[i].px) == PX_ROLE_LEADER)
			return true;
	return false;
}

/* A replica leads again after a crash of the leader: the failover took
 * this long (detection by the control plane, then phase 1). Only watched,
 * never drawn from the PRNGs: a seed runs the same with or without it. */
static void note_failover_end(struct world *w)
{
	if (!w->failover_pending)
		return;
	w->failover_pending = false;
	if (w->res->failovers < SIM_FAILOVERS_MAX)
		w->res->failover_ns[w->res->failovers] =
			w->now - w->failover_since;
	w->res->failovers++;
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
		note_failover_end(w);
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
	st->queue_depth = px_queue_depth(n->px);
	st->next_slot = px_next_slot(n->px);
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

/* --durable: now and then the caller saves a snapshot to the disk and
 * recycles the records it covers (consensus.h). */
static void maybe_save_snapshot(struct world *w, uint8_t i)
{
	struct node *n = &w->nodes[i];
	if (!w->p->durable || w->p->faults.snapshot_pct == 0 ||
	    rnd_disk(w) % 100 >= w->p->faults.snapshot_pct)
		return;
	bool recycle = rnd_disk(w) % 4 != 0;
	if (sim_disk_save_snapshot(&n->disk, n->px, i, recycle) != 0)
		sim_violation("replica %u: disk snapshot failed", i);
}

static void node_tick(struct world *w, uint8_t i)
{
	struct node *n = &w->nodes[i];
	uint64_t t = local_time(w, i);
	sync_tail(w, i);
	maybe_save_snapshot(w, i);
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
	sync_tail(w, i);
	if (e->kind == EV_SNAPSHOT) {
		if (px_snapshot_install(n->px, t, e->data, e->data_len,
					&w->out) != 0)
			sim_violation("replica %u rejected a snapshot", i);
		else
			narrate(w, "replica %u installed a snapshot at slot "
				"%llu", i,
				(unsigned long long)px_applied_index(n->px));
		/* The caller's rule: an installed snapshot is on the disk
		 * before any later record. */
		if (w->p->durable &&
		    sim_disk_save_snapshot(&n->disk, n->px, i,
					   rnd_disk(w) % 4 != 0) != 0)
			sim_violation("replica %u: disk snapshot failed", i);
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

/* ---- Clients: closed loop, one request outstanding each ----
 *
 * Each slot's client runs the client engine (client/engine.h), the code
 * libbypax and the load generator run: its sessions, redirects, backoff,
 * attempt timeouts and deadline. The simulator makes the commands, carries
 * the engine's requests over the faulty network, turns its timers into
 * EV_CLIENT events, and records the history. */

static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static uint64_t value_id(const uint8_t *v, uint16_t len)
{
	uint64_t id = 0;
	if (len == 8)
		memcpy(&id, v, 8);
	return id;
}

/* The stream of the client draws the stock simulator did not make (churn,
 * the pause after an EXPIRED, the engine's seed), one per client slot,
 * seeded from the seed: rnd(w) sees the same sequence as before. */
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

/* A request outlives no liveness check: the deadline is past the end of
 * the settle phase (faults stop at fault_phase_ns, and everything pending
 * must complete within settle_limit_ns of that), so a request stuck after
 * the faults stop is still reported as a liveness failure rather than
 * given up. Deadlines themselves are covered by test_engine.c. */
static uint64_t client_deadline_ns(const struct world *w)
{
	return w->p->fault_phase_ns + w->p->settle_limit_ns;
}

/* The slot's client starts with its engine pointed at first_target (the
 * member it sends to first). */
static void client_init(struct world *w, uint32_t ci, uint8_t first_target)
{
	struct client *c = &w->clients[ci];
	struct bpx_engine_config ec = {
		.member_count = w->p->replicas,
		.timeout_ns = w->p->faults.client_timeout_ns,
		.deadline_ns = client_deadline_ns(w),
		.seed = client_rnd(w, ci),
	};
	bpx_engine_init(&c->eng, &ec);
	bpx_engine_set_leader(&c->eng, first_target);
	bpx_engine_lane_init(&c->eng, &c->lane, ci, client_nonce(ci), 0);
}

static uint32_t client_of(const struct world *w, uint64_t client_id)
{
	if (!(client_id & PX_SESSION_ID_BIT))
		return (uint32_t)(client_id - SIM_CLIENT_ID_BASE);
	for (uint32_t ci = 0; ci < w->p->clients; ci++)
		if (w->clients[ci].lane.session_id == client_id)
			return ci;
	return UINT32_MAX;
}

static void client_send(struct world *w, const struct bpx_engine_send *s)
{
	uint32_t len = s->cmd_len;
	struct event *e = ev_new(w, 0, EV_MSG, s->member);
	e->msg = bpx_engine_send_msg(s); /* its value: the event's copy, below */
	e->data = len > 0 ? malloc(len) : NULL;
	if (len > 0)
		memcpy(e->data, s->cmd, len);
	e->data_len = len;
	e->msg.value = e->data;
	net_send(w, e, PX_TO_CLIENT, s->member);
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

static void client_apply(struct world *w, uint32_t ci,
			 struct bpx_engine_out *out);

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
	 * whatever session carries the write (sim_sm.c); a read's prefix is
	 * the seq the engine gives it. */
	bool read = kind == BPX_KV_GET;
	uint64_t read_seq = PX_SEQ_READ_BASE + c->lane.read_seq + 1;
	put_u64(c->cmd, ci);
	put_u64(c->cmd + 8, read ? read_seq : ++c->op_count);
	int n = bpx_kv_encode(c->cmd + 16, sizeof(c->cmd) - 16, kind, &key, 1,
			      kind == BPX_KV_PUT ? val : old,
			      kind == BPX_KV_PUT || kind == BPX_KV_CAS ? 8 : 0,
			      val, kind == BPX_KV_CAS ? 8 : 0);
	if (n < 0)
		exit(2);
	c->cmd_len = 16 + (uint32_t)n;
	struct bpx_engine_out out = { .count = 0 };
	bpx_engine_submit(&c->eng, &c->lane, read, c->cmd,
			  (uint16_t)c->cmd_len, w->now, &out);
	if (read && c->lane.wire_seq != read_seq)
		sim_violation("client %u: the engine read with seq %llu, not "
			      "%llu", ci, (unsigned long long)c->lane.wire_seq,
			      (unsigned long long)read_seq);
	client_apply(w, ci, &out);
}

/* OK for the op: its reply goes into the history. */
static void client_complete(struct world *w, uint32_t ci,
			    const struct bpx_engine_done *d)
{
	struct client *c = &w->clients[ci];
	struct lc_op *op = &w->hist[c->hist];
	uint8_t status;
	const uint8_t *v;
	uint16_t vlen;
	if (bpx_kv_decode_reply(d->reply, d->reply_len, &status, &v, &vlen)) {
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
	if (op->kind != LC_GET) { /* a read may be a lease read, in no slot */
		checker_acked(w->checker, ci, c->op_count);
		if (c->op_count > w->acked_max[ci])
			w->acked_max[ci] = c->op_count;
	}
	w->res->requests_acked++;
	c->busy = false;
	/* Churn: the client quits, and a new one, with a session of its own
	 * and nothing seen yet, takes its place. */
	if (w->p->client_churn_pct > 0 &&
	    client_rnd(w, ci) % 100 < w->p->client_churn_pct) {
		bpx_engine_lane_drop_session(&c->lane);
		memset(c->last_seen, 0, sizeof(c->last_seen));
		w->res->client_churns++;
	}
	schedule(w, rnd_range(w, 0, 1 * MS), EV_CLIENT, (uint8_t)ci, ++c->gen);
}

/* The op's outcome is unknown (EXPIRED: the session was evicted; or the
 * deadline passed): it stays LC_NEVER in the history, and after a pause the
 * slot goes on (after EXPIRED, the engine opens a new session for the
 * next write). */
static void client_unknown(struct world *w, uint32_t ci, int status)
{
	struct client *c = &w->clients[ci];
	if (status == -BPX_EEXPIRED)
		w->res->requests_expired++;
	c->busy = false;
	schedule(w, client_rnd(w, ci) % (1 * MS), EV_CLIENT, (uint8_t)ci,
		 ++c->gen);
}

static void client_done(struct world *w, uint32_t ci,
			const struct bpx_engine_done *d)
{
	if (d->status == 0)
		client_complete(w, ci, d);
	else if (d->status == -BPX_EEXPIRED || d->status == -BPX_ETIMEDOUT)
		client_unknown(w, ci, d->status);
	else /* client_on_reply let no other status through */
		sim_violation("client %u: request failed with %d", ci,
			      d->status);
}

/* Carries out the engine's effects: requests onto the network, timers as
 * EV_CLIENT events (a new one supersedes the pending one), completions
 * into the history. */
static void client_apply(struct world *w, uint32_t ci,
			 struct bpx_engine_out *out)
{
	struct client *c = &w->clients[ci];
	for (uint32_t i = 0; i < out->count; i++) {
		const struct bpx_engine_effect *f = &out->effects[i];
		if (f->kind == BPX_ENGINE_SEND) {
			client_send(w, &f->send);
		} else if (f->kind == BPX_ENGINE_TIMER) {
			uint64_t at = f->at_ns > w->now ? f->at_ns : w->now;
			schedule(w, at - w->now, EV_CLIENT, (uint8_t)ci,
				 ++c->gen);
		} else {
			client_done(w, ci, &f->done);
		}
	}
	out->count = 0;
}

/* The OPEN was applied: its session id must be a log-assigned one that no
 * other client holds. */
static bool client_open_ok(struct world *w, uint32_t ci, const struct px_msg *m)
{
	uint64_t id = 0;
	if (m->value_len == PX_SESSION_ID_BYTES)
		for (unsigned i = 0; i < PX_SESSION_ID_BYTES; i++)
			id |= (uint64_t)m->value[i] << (8 * i);
	if (!(id & PX_SESSION_ID_BIT) || client_of(w, id) != UINT32_MAX) {
		sim_violation("client %u: OPEN answered with session %#llx", ci,
			      (unsigned long long)id);
		return false;
	}
	return true;
}

/* EXPIRED: the session was evicted, so the write's outcome is unknown.
 * Legal only once sessions could have been evicted: more OPENs chosen
 * than the table holds (or the planted bug made sessions of its own). */
static bool client_expired_ok(struct world *w, uint32_t ci)
{
	struct client *c = &w->clients[ci];
	uint32_t cap = w->p->session_max ? w->p->session_max : 64;
	if (c->lane.read || c->lane.opening ||
	    checker_opens_chosen(w->checker) <= cap) {
		sim_violation("client %u seq %llu: EXPIRED with %llu sessions "
			      "opened of %u",
			      ci, (unsigned long long)c->lane.wire_seq,
			      (unsigned long long)checker_opens_chosen(
				      w->checker),
			      cap);
		return false;
	}
	return true;
}

/* Whether the reply's status is one the replicas may give this request
 * here: none of STALE, TOO_BIG or BAD_REQUEST ever should. */
static bool client_status_ok(struct world *w, uint32_t ci,
			     const struct px_msg *m)
{
	const struct client *c = &w->clients[ci];
	switch (m->status) {
	case PX_REPLY_OK:
		return !c->lane.opening || client_open_ok(w, ci, m);
	case PX_REPLY_EXPIRED:
		return client_expired_ok(w, ci);
	case PX_REPLY_REDIRECT:
	case PX_REPLY_BUSY:
		return true;
	default:
		sim_violation("client %u seq %llu got unexpected status %u", ci,
			      (unsigned long long)c->lane.wire_seq, m->status);
		return false;
	}
}

static void client_on_reply(struct world *w, const struct event *e)
{
	uint32_t ci = client_of(w, e->msg.client_id);
	if (ci >= w->p->clients)
		return;
	struct client *c = &w->clients[ci];
	if (!bpx_engine_lane_expects(&c->lane, e->msg.client_id, e->msg.seq))
		return; /* a late or duplicated reply */
	if (!client_status_ok(w, ci, &e->msg))
		return;
	struct px_msg m = e->msg;
	m.from = e->node; /* the replica that answered */
	struct bpx_engine_out out = { .count = 0 };
	if (bpx_engine_on_reply(&c->eng, &c->lane, &m, w->now, &out))
		client_apply(w, ci, &out);
}

static void client_timer(struct world *w, const struct event *e)
{
	struct client *c = &w->clients[e->node];
	if (e->gen != c->gen)
		return;
	if (c->busy) {
		/* The engine's timer: an attempt timeout (the next member,
		 * the same (client, seq): exactly-once makes it safe), the
		 * end of a backoff, or the deadline. */
		struct bpx_engine_out out = { .count = 0 };
		bpx_engine_tick(&c->eng, &c->lane, w->now, &out);
		client_apply(w, e->node, &out);
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

static bool minority_of(uint8_t lost, uint8_t config)
{
	int n = __builtin_popcount(config);
	return config == 0 || __builtin_popcount(lost & config) <= n - (n / 2 + 1);
}

/* Every configuration a live replica still holds: its history, and the
 * changes in its log that are accepted but not chosen, or queued (a later
 * leader may still choose them, long after they were asked for). Read
 * from the replicas' internals (internal.h, read-only). */
static bool minority_of_every_held(const struct world *w, uint8_t lost)
{
	for (uint8_t i = 0; i < w->p->replicas; i++) {
		struct px_replica *r = w->nodes[i].px;
		if (!w->nodes[i].up)
			continue;
		for (uint8_t k = 0; k < r->history_count; k++)
			if (!minority_of(lost, r->history[k].mask))
				return false;
		for (uint64_t sl = r->commit_index; sl < r->accepted_end; sl++) {
			const struct px_slot *slot = px_log_get(r, sl);
			struct px_batch_iter it;
			struct px_batch_entry e;
			if (slot == NULL || slot->accepted_ballot == 0)
				continue;
			px_batch_iter_init(&it, slot->value, slot->value_len);
			while (px_batch_next(&it, &e) == 1)
				if (e.client_id == PX_CONFIG_CLIENT_ID &&
				    e.len == 1 && !minority_of(lost, e.cmd[0]))
					return false;
		}
		for (uint32_t q = 0; q < r->queue_count; q++) {
			const struct px_pending *pe =
				&r->queue[(r->queue_head + q) %
					  r->cfg.request_queue_max];
			if (pe->client_id == PX_CONFIG_CLIENT_ID && pe->len == 1 &&
			    !minority_of(lost, pe->cmd[0]))
				return false;
		}
	}
	return true;
}

/* The failure model bypax promises to survive: at most a minority of any
 * configuration that may be in force (the recent ones, and, beyond the
 * stock simulator, every one a replica still holds) without state. */
static bool may_lose_state(const struct world *w, uint8_t i)
{
	uint8_t lost = (uint8_t)(stateless_mask(w) | (1u << i));
	for (uint8_t k = 0; k < w->recent_count; k++)
		if (!minority_of(lost, w->recent_configs[k]))
			return false;
	return w->p->stock || minority_of_every_held(w, lost);
}

static void fault_crash(struct world *w)
{
	uint8_t i = (uint8_t)(rnd(w) % w->p->replicas);
	/* A durable replica loses no state in a crash, so any number may be
	 * down at once; mostly a minority still is, or the seed would spend
	 * its fault phase with nobody to serve (whole-cluster crashes are
	 * fault_whole_crash's). */
	if (!w->nodes[i].up)
		return;
	if (!may_lose_state(w, i) &&
	    (!w->p->durable || rnd_disk(w) % 100 >= 20))
		return;
	bool was_leader = px_role(w->nodes[i].px) == PX_ROLE_LEADER;
	node_stop(w, i);
	if (was_leader && !someone_leads(w) && !w->failover_pending) {
		w->failover_pending = true;
		w->failover_since = w->now;
	}
	w->res->faults++;
	uint64_t lost = (uint64_t)__builtin_popcount(stateless_mask(w));
	if (lost > w->res->stateless_max)
		w->res->stateless_max = lost;
	narrate(w, "crash replica %u (its memory is lost)", i);
	schedule(w, rnd_range(w, 5 * MS, w->p->faults.restart_max_ns),
		 EV_RESTART, i, w->nodes[i].gen);
}

/* --durable: every replica crashes at once (a power cut of the rack), and
 * each restarts from its disk within restart_max_ns. */
static void fault_whole_crash(struct world *w)
{
	bool any = false;
	for (uint8_t i = 0; i < w->p->replicas; i++) {
		if (!w->nodes[i].up)
			continue;
		if (px_role(w->nodes[i].px) == PX_ROLE_LEADER &&
		    !w->failover_pending) {
			w->failover_pending = true;
			w->failover_since = w->now;
		}
		node_stop(w, i);
		uint64_t after =
			1 * MS + rnd_disk(w) % w->p->faults.restart_max_ns;
		schedule(w, after, EV_RESTART, i, w->nodes[i].gen);
		any = true;
	}
	if (!any)
		return;
	w->res->faults++;
	w->res->whole_crashes++;
	narrate(w, "every replica crashes at once; each restarts from its "
		   "disk");
}

/* Replicas that are down for good, or will be at their restart. */
static uint8_t dead_mask(const struct world *w)
{
	uint8_t mask = w->doomed;
	for (uint8_t i = 0; i < w->p->replicas; i++)
		if (w->nodes[i].dead)
			mask |= (uint8_t)(1u << i);
	return mask;
}

/* --durable: a bad sector in the middle of a replica's log, found when it
 * restarts (it is crashed now): it stays down for good. Only while those
 * down for good stay a minority of every configuration in force. */
static void fault_corrupt(struct world *w)
{
	uint8_t i = (uint8_t)(rnd_disk(w) % w->p->replicas);
	uint8_t doomed = (uint8_t)(dead_mask(w) | (1u << i));
	for (uint8_t k = 0; k < w->recent_count; k++)
		if (!minority_of(doomed, w->recent_configs[k]))
			return;
	if (!w->nodes[i].up || !minority_of_every_held(w, doomed) ||
	    !sim_disk_corrupt(&w->nodes[i].disk, rnd_disk(w)))
		return;
	w->doomed = doomed;
	node_stop(w, i);
	w->res->faults++;
	narrate(w, "a sector of replica %u's log goes bad; it crashes", i);
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
 *  - Membership (hole 3, with 5 members or more; nemesis_config_pct of
 *    the attacks): L proposes a configuration without R, majority - 1
 *    members other than L and N (the future rogue), so that N and R are
 *    a majority of the old configuration but N alone is a minority of
 *    the new one. N is cut off from L at once, so it lags by the last
 *    old-configuration slots; from the first new-configuration slot E on
 *    the network loses what L sends R (ACCEPTs and CHOSENs of slots from
 *    E, heartbeats, snapshots), and N's PREPAREs to the new members H
 *    (the rest) are lost too, per message type. Once L has chosen slot E
 *    (with H), a lease later, when the promises of N and R to L have
 *    lapsed, L goes deaf and mute and every replica is told that N
 *    leads (so that L steps down and redirects send clients to N), for
 *    longer than the lease L may still serve reads under: N's phase 1
 *    from before E completes with R, a majority of the old
 *    configuration, and its re-proposals take it to slot E, where H
 *    acknowledges its heartbeats. Counted against the new configuration,
 *    those would be a lease, and N would answer reads from the state
 *    before E; it must get none until a majority of the new
 *    configuration completed its phase 1. Afterwards (a fourth stage,
 *    or else the next such attack) the leader gives every replica its
 *    vote back.
 * The third stage ends the attack.
 *
 * The recovery attack (issue 8, hole 1: two values chosen for one slot
 * after a diskless recovery; 5 replicas or more, recovery_every_ns, in
 * seeds without lease attacks; it holds nemesis_on too, so attacks never
 * overlap) is the recipe of test_promise_from_before_a_crash_does_not_count
 * (tests/unit/test_recovery.c) out of real schedules, each stage polled
 * from the replicas' internals (read-only). Around the leader L, with R
 * (the replica that crashes), X (the rogue), Y (majority - 2 others) and
 * Z (the rest, majority with L and R):
 *  - Climb: R is cut off from everyone but X; X is told to lead, its
 *    PREPAREs and NACKs reach R only; Y is told that X leads, so that its
 *    lease promise to L lapses. Once R (its own promise to L lapsed) has
 *    promised X's ballot, X is told that nobody leads for a poll, steps
 *    down and runs again a round higher (its own promise is the highest
 *    ballot it saw), until X's ballot b is three rounds above every other
 *    replica's promise: R's fence ends at most a round above those, and L,
 *    which the fence deposes, leads again at most one above that.
 *  - Recover: R crashes and restarts at once without its state (within
 *    the failure model: may_lose_state), cut off from X; X, a candidate
 *    at b still counting R's promise, is cut off from everyone. R is
 *    fenced by L, Y and Z, none of which knows b.
 *  - Choose: once R votes again and L leads below b, Y is cut off from L
 *    and L's next slot E goes to L, R and Z; the network loses what would
 *    tell R that E is chosen (COMMITs, CHOSENs, snapshots, ACCEPTs with a
 *    commit index past E).
 *  - Final: once L has chosen E with R's vote, X hears Y, R and Z again
 *    (its PREPAREs to Z lost, nothing between it and L) and every replica
 *    is told that X leads, for a lease and more. Y's promise carries R's
 *    new incarnation: X must drop R's promise from before the crash and
 *    ask R again, which reports E's value. Counting the old promise, X
 *    completes phase 1 with Y, sees nothing at E, and gets another value
 *    chosen there with Y and R (their promises are below b).
 * Each stage is called off if the world does not get there in time. */
enum { NEMESIS_OWN_PROMISE, NEMESIS_FOLLOWERS, NEMESIS_MEMBERSHIP,
       NEMESIS_RECOVERY };

/* How long a membership attack waits for L to choose slot E. */
#define NEMESIS_CONFIG_WAIT_NS (200 * MS)

static void note_config(struct world *w, uint8_t mask);

static void nemesis_next(struct world *w, uint64_t delay, uint8_t stage,
			 uint8_t kind, uint8_t l, uint8_t a)
{
	struct event *e = ev_new(w, w->now + delay, EV_NEMESIS, a);
	e->gen = (uint64_t)stage << 16 | (uint64_t)kind << 8 | l;
	ev_push(w, e);
}

/* The k-th (modulo their number) replica of a non-empty mask. */
static uint8_t nth_member(uint8_t mask, uint64_t k)
{
	PX_ASSERT(mask != 0);
	k %= (uint64_t)__builtin_popcount(mask);
	for (uint8_t i = 0;; i++)
		if ((mask & (1u << i)) && k-- == 0)
			return i;
}

/* The slot the attack's change takes effect at, as its leader knows it
 * (read-only, internal.h): past the slots it had proposed when it
 * proposed the change (an older change to the same members is not it).
 * UINT64_MAX while the change is not applied there, since no slot from
 * it on can be proposed before. */
static uint64_t nemesis_config_slot(const struct world *w)
{
	const struct node *nd = &w->nodes[w->ncfg.l];
	if (!nd->up)
		return 0; /* gone: whatever its next life sends R is lost */
	const struct px_replica *r = nd->px;
	for (uint8_t i = r->history_count; i-- > 0;)
		if (r->history[i].mask == w->ncfg.members &&
		    r->history[i].effective_slot > w->ncfg.after)
			return r->history[i].effective_slot;
	return UINT64_MAX;
}

/* What the membership attack's lossy links lose besides its cuts: of L's
 * messages to R, what would tell R of slot E or later, and heartbeats
 * (so that R's promises to L lapse); of N's to H, its PREPAREs. */
static bool nemesis_config_drops(const struct world *w, const struct event *e,
				 uint8_t src, uint8_t dst)
{
	if (!w->ncfg.on)
		return false;
	const struct px_msg *m = &e->msg;
	if (src == w->ncfg.rogue && (w->ncfg.hearers & (1u << dst)))
		return e->kind == EV_MSG && m->type == PX_MSG_PREPARE;
	if (src != w->ncfg.l || !(w->ncfg.removed & (1u << dst)))
		return false;
	if (e->kind == EV_SNAPSHOT || m->type == PX_MSG_COMMIT)
		return true;
	return (m->type == PX_MSG_ACCEPT || m->type == PX_MSG_CHOSEN) &&
	       m->slot >= nemesis_config_slot(w);
}

/* Members back: the configuration of every replica, through the leader.
 * Returns true when every replica is a member or will be. */
static bool nemesis_config_restore(struct world *w, uint8_t l)
{
	struct px_replica *px = w->nodes[l].px;
	uint8_t cur = px_members(px), all = (uint8_t)((1u << w->p->replicas) - 1);
	if (cur == all)
		return true;
	/* Within the failure model: replicas without state stay a minority
	 * of the configuration asked for, as for every other change. */
	if (!minority_of(stateless_mask(w), all))
		return false;
	if (px_propose_config(px, local_time(w, l), all, &w->out) != 0)
		return false;
	after_step(w, l);
	note_config(w, cur);
	note_config(w, all);
	w->res->faults++;
	narrate(w, "membership lease attack: leader %u gives every replica "
		"its vote back", l);
	return true;
}

static void fault_nemesis_config(struct world *w, uint8_t l)
{
	struct px_replica *px = w->nodes[l].px;
	uint8_t cur = px_members(px);
	int size = __builtin_popcount(cur);
	if (!(cur & (1u << l)))
		return;
	if (size < 5) {
		(void)nemesis_config_restore(w, l);
		return;
	}
	uint8_t others = (uint8_t)(cur & ~(1u << l));
	uint8_t rogue = nth_member(others, rnd2(w));
	uint8_t pool = (uint8_t)(others & ~(1u << rogue)), removed = 0;
	while (__builtin_popcount(removed) < size / 2)
		removed |= (uint8_t)(1u << nth_member(
					     (uint8_t)(pool & ~removed), rnd2(w)));
	uint8_t next = (uint8_t)(cur & ~removed);
	/* Losing state must stay within a minority of the new one too. */
	int k = __builtin_popcount(next);
	if (__builtin_popcount(stateless_mask(w) & next) > k - (k / 2 + 1) ||
	    px_propose_config(px, local_time(w, l), next, &w->out) != 0)
		return;
	after_step(w, l);
	note_config(w, cur);
	note_config(w, next);
	w->ncfg.on = true;
	w->ncfg.l = l;
	w->ncfg.rogue = rogue;
	w->ncfg.removed = removed;
	w->ncfg.members = next;
	w->ncfg.hearers = (uint8_t)(next & ~(1u << l) & ~(1u << rogue));
	w->ncfg.since = w->now;
	w->ncfg.after = px->next_slot;
	w->nemesis_on = true;
	w->res->faults++;
	w->nemesis_down[l][rogue] = w->nemesis_down[rogue][l] = true;
	nemesis_next(w, 1 * MS, 1, NEMESIS_MEMBERSHIP, l, rogue);
	narrate(w, "membership lease attack on leader %u through %u: members "
		"%#x (was %#x), stage 1", l, rogue, next, cur);
}

static void fault_nemesis(struct world *w)
{
	uint8_t n = w->p->replicas, l = current_leader(w);
	if (w->nemesis_on || l == PX_REPLICA_NONE ||
	    w->now < w->nodes[l].paused_until)
		return;
	uint32_t config_pct = w->p->faults.nemesis_config_pct;
	if (config_pct != 0 && rnd2(w) % 100 < config_pct) {
		fault_nemesis_config(w, l);
		return;
	}
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

static void nemesis_end(struct world *w)
{
	memset(w->nemesis_down, 0, sizeof(w->nemesis_down));
	for (uint8_t b = 0; b < w->p->replicas; b++)
		w->nodes[b].rogue_until = 0;
	w->nemesis_on = false;
	w->ncfg.on = false;
	w->rec.on = false;
}

/* The membership attack's first stage: polls until L has chosen slot E,
 * then waits a lease for the promises of N and R to L to lapse. */
static void nemesis_config_wait(struct world *w, uint8_t l, uint8_t a)
{
	const struct node *nd = &w->nodes[l];
	if (!nd->up || px_role(nd->px) != PX_ROLE_LEADER ||
	    w->now >= w->ncfg.since + NEMESIS_CONFIG_WAIT_NS) {
		narrate(w, "membership lease attack on leader %u: called off",
			l);
		nemesis_end(w);
		return;
	}
	uint64_t e = nemesis_config_slot(w);
	if (e == UINT64_MAX || px_commit_index(nd->px) <= e) {
		nemesis_next(w, 1 * MS, 1, NEMESIS_MEMBERSHIP, l, a);
		return;
	}
	uint64_t lease = w->p->faults.lease_ns;
	nemesis_next(w, lease + 1 * MS + rnd2(w) % (lease / 4 + MS), 2,
		     NEMESIS_MEMBERSHIP, l, a);
	narrate(w, "membership lease attack on leader %u: slot %llu chosen "
		"without %#x", l, (unsigned long long)e, w->ncfg.removed);
}

/* After a membership attack: gives the replicas their votes back through
 * whoever leads, trying every 10 ms a few times (then the next attack
 * does it). */
static void nemesis_config_retry_restore(struct world *w, uint8_t tries,
					 uint8_t a)
{
	uint8_t l = current_leader(w);
	if (w->nemesis_on || !w->faults_on)
		return;
	if (l != PX_REPLICA_NONE && w->now >= w->nodes[l].paused_until &&
	    nemesis_config_restore(w, l))
		return;
	if (tries < 8)
		nemesis_next(w, 10 * MS, 4, NEMESIS_MEMBERSHIP,
			     (uint8_t)(tries + 1), a);
}

/* ---- The recovery attack (issue 8, hole 1) ---- */

enum rec_stage { REC_CLIMB = 1, REC_RECOVER, REC_CHOOSE, REC_FINAL };

static bool rec_has(uint8_t mask, uint8_t i)
{
	return i < PX_REPLICAS_MAX && (mask & (1u << i)) != 0;
}

/* What the recovery attack's lossy links lose besides its cuts: while X
 * climbs, its PREPAREs and NACKs to anyone but R (it still hears L, and
 * acknowledges it while it follows); once Y is cut off from L, what would
 * tell R that slot E is chosen (COMMITs, CHOSENs, snapshots, ACCEPTs whose
 * commit index is past E); at the end, X's PREPAREs to Z. */
static bool nemesis_recovery_drops(const struct world *w,
				   const struct event *e, uint8_t src,
				   uint8_t dst)
{
	if (!w->rec.on)
		return false;
	const struct px_msg *m = &e->msg;
	bool msg = e->kind == EV_MSG;
	if (w->rec.stage == REC_CLIMB)
		return src == w->rec.x && dst != w->rec.r && msg &&
		       (m->type == PX_MSG_PREPARE || m->type == PX_MSG_NACK);
	if (w->rec.stage == REC_FINAL && src == w->rec.x && msg &&
	    m->type == PX_MSG_PREPARE && rec_has(w->rec.z, dst))
		return true;
	if (w->rec.stage < REC_CHOOSE || src != w->rec.l || dst != w->rec.r)
		return false;
	if (e->kind == EV_SNAPSHOT)
		return true;
	return msg && (m->type == PX_MSG_COMMIT || m->type == PX_MSG_CHOSEN ||
		       (m->type == PX_MSG_ACCEPT && m->commit_index > w->rec.e));
}

static void rec_cut(struct world *w, uint8_t a, uint8_t b, bool down)
{
	w->nemesis_down[a][b] = w->nemesis_down[b][a] = down;
}

static void rec_call_off(struct world *w, const char *why)
{
	narrate(w, "recovery attack on leader %u: called off (%s)", w->rec.l,
		why);
	nemesis_end(w);
}

static void rec_poll(struct world *w)
{
	nemesis_next(w, 1 * MS, w->rec.stage, NEMESIS_RECOVERY, w->rec.l,
		     w->rec.x);
}

/* The highest round any replica but X and R promised or saw: R's fence
 * ends at most a round above it, and L, which promised the fence, leads
 * at most two above it. */
static uint64_t rec_top_round(const struct world *w)
{
	uint64_t top = 0;
	for (uint8_t i = 0; i < w->p->replicas; i++) {
		const struct node *nd = &w->nodes[i];
		if (i == w->rec.x || i == w->rec.r || !nd->up)
			continue;
		uint64_t a = px_ballot_round(nd->px->promised);
		uint64_t b = px_ballot_round(nd->px->highest_seen);
		if (a > top)
			top = a;
		if (b > top)
			top = b;
	}
	return top;
}

static bool rec_x_waits(const struct world *w)
{
	const struct node *xn = &w->nodes[w->rec.x];
	return xn->up && px_role(xn->px) == PX_ROLE_CANDIDATE &&
	       xn->px->ballot == w->rec.b;
}

/* The first stage: once R promised X's ballot b, X steps down (its hint
 * names nobody for a poll) and runs again a round higher, until b is
 * three rounds above every other promise; then R crashes and restarts
 * without its state, and X is cut off from everyone. */
static void rec_climb(struct world *w)
{
	struct node *xn = &w->nodes[w->rec.x], *rn = &w->nodes[w->rec.r];
	if (!xn->up || !rn->up || px_role(rn->px) == PX_ROLE_RECOVERING ||
	    w->now >= w->rec.until) {
		rec_call_off(w, "no promise of R high enough");
		return;
	}
	if (w->rec.toggled) {
		xn->rogue_hint = w->rec.x;
		w->rec.toggled = false;
		rec_poll(w);
		return;
	}
	const struct px_replica *xp = xn->px;
	if (px_role(xp) != PX_ROLE_CANDIDATE ||
	    px_promised_ballot(rn->px) != xp->ballot ||
	    !(xp->p1.complete_mask & (1u << w->rec.r))) {
		rec_poll(w);
		return;
	}
	if (px_ballot_round(xp->ballot) < rec_top_round(w) + 3) {
		xn->rogue_hint = PX_REPLICA_NONE; /* steps down, runs higher */
		w->rec.toggled = true;
		rec_poll(w);
		return;
	}
	if (!may_lose_state(w, w->rec.r)) {
		rec_call_off(w, "R may not lose its state now");
		return;
	}
	w->rec.b = xp->ballot;
	uint8_t r = w->rec.r, x = w->rec.x;
	node_stop(w, r);
	node_start(w, r, true);
	w->res->faults++;
	uint64_t lost = (uint64_t)__builtin_popcount(stateless_mask(w));
	if (lost > w->res->stateless_max)
		w->res->stateless_max = lost;
	for (uint8_t j = 0; j < w->p->replicas; j++) {
		if (j == r)
			continue;
		rec_cut(w, r, j, j == x);
		rec_cut(w, x, j, true);
	}
	w->rec.stage = REC_RECOVER;
	w->rec.until = w->now + 150 * MS;
	narrate(w, "recovery attack on leader %u: replica %u promised ballot "
		"%llu.%u of %u, crashes and restarts without its state", w->rec.l,
		r, (unsigned long long)px_ballot_round(w->rec.b),
		px_ballot_owner(w->rec.b), x);
	rec_poll(w);
}

/* The second stage: R recovers, fenced by the others but X; L, deposed by
 * the fence, leads again below b. Then Y is cut off from L, and slot E,
 * L's next, goes to L, R and Z only. */
static void rec_recover(struct world *w)
{
	const struct node *rn = &w->nodes[w->rec.r], *ln = &w->nodes[w->rec.l];
	if (w->now >= w->rec.until || !rec_x_waits(w) || !rn->up || !ln->up) {
		rec_call_off(w, "R did not recover under L");
		return;
	}
	if (px_role(rn->px) != PX_ROLE_FOLLOWER ||
	    px_role(ln->px) != PX_ROLE_LEADER) {
		rec_poll(w);
		return;
	}
	if (ln->px->ballot >= w->rec.b ||
	    px_promised_ballot(rn->px) >= w->rec.b) {
		rec_call_off(w, "b was outbid");
		return;
	}
	w->rec.lb = ln->px->ballot;
	w->rec.e = ln->px->next_slot;
	for (uint8_t j = 0; j < w->p->replicas; j++)
		if (rec_has(w->rec.y, j))
			rec_cut(w, w->rec.l, j, true);
	w->rec.stage = REC_CHOOSE;
	w->rec.until = w->now + 100 * MS;
	narrate(w, "recovery attack on leader %u: %u recovered; slot %llu "
		"goes to %#x only", w->rec.l, w->rec.r,
		(unsigned long long)w->rec.e,
		(unsigned)((1u << w->rec.l) | (1u << w->rec.r) | w->rec.z));
	rec_poll(w);
}

/* The third stage: once L has chosen E with R's vote, R not knowing it,
 * X's PREPARE reaches Y, its ACCEPTs everyone but L, and every replica is
 * told that X leads (so that L steps down, and clients go to X), for a
 * lease and more. X must see E's value before it proposes there. */
static void rec_choose(struct world *w)
{
	const struct node *rn = &w->nodes[w->rec.r], *ln = &w->nodes[w->rec.l];
	if (w->now >= w->rec.until || !rec_x_waits(w) || !rn->up || !ln->up ||
	    px_role(ln->px) != PX_ROLE_LEADER || ln->px->ballot != w->rec.lb) {
		rec_call_off(w, "L did not choose slot E");
		return;
	}
	uint64_t e = w->rec.e;
	if (px_commit_index(ln->px) <= e) {
		rec_poll(w);
		return;
	}
	const struct px_slot *s = px_log_get(rn->px, e);
	bool ok = s != NULL && s->accepted_ballot == w->rec.lb && !s->chosen &&
		  px_commit_index(rn->px) <= e;
	for (uint8_t j = 0; ok && j < w->p->replicas; j++) {
		if (!rec_has(w->rec.y, j))
			continue;
		const struct node *yn = &w->nodes[j];
		const struct px_slot *ys = yn->up ? px_log_get(yn->px, e) : NULL;
		ok = yn->up && (ys == NULL || ys->accepted_ballot == 0);
	}
	if (!ok) {
		rec_call_off(w, "slot E reached Y, or not R");
		return;
	}
	uint8_t x = w->rec.x;
	for (uint8_t j = 0; j < w->p->replicas; j++)
		if (j != x && j != w->rec.l)
			rec_cut(w, x, j, false);
	uint64_t len = w->p->faults.lease_ns + 40 * MS + rnd2(w) % (60 * MS);
	for (uint8_t j = 0; j < w->p->replicas; j++) {
		w->nodes[j].rogue_hint = x;
		w->nodes[j].rogue_until = w->now + len;
	}
	w->rec.stage = REC_FINAL;
	narrate(w, "recovery attack on leader %u: slot %llu chosen; %u told "
		"to lead, its PREPARE reaches %#x", w->rec.l,
		(unsigned long long)e, x, w->rec.y);
	nemesis_next(w, len, REC_FINAL, NEMESIS_RECOVERY, w->rec.l, x);
}

static void rec_stage(struct world *w)
{
	switch (w->rec.stage) {
	case REC_CLIMB:
		rec_climb(w);
		break;
	case REC_RECOVER:
		rec_recover(w);
		break;
	case REC_CHOOSE:
		rec_choose(w);
		break;
	default: /* the final stage ran its time */
		narrate(w, "recovery attack on leader %u: over", w->rec.l);
		nemesis_end(w);
		break;
	}
}

/* Starts a recovery attack around the leader (5 replicas or more, every
 * one a member with its state): R cut off from everyone but X, X told to
 * lead, its PREPAREs and NACKs reaching R only, and Y told that X leads
 * (so that Y's lease promise to L lapses before X asks Y). */
static void fault_recovery(struct world *w)
{
	uint8_t n = w->p->replicas, l = current_leader(w);
	uint8_t all = (uint8_t)((1u << n) - 1);
	if (w->nemesis_on || n < 5 || l == PX_REPLICA_NONE ||
	    w->now < w->nodes[l].paused_until || stateless_mask(w) != 0 ||
	    px_members(w->nodes[l].px) != all)
		return;
	uint8_t r = (uint8_t)((l + 1 + rnd2(w) % (n - 1)) % n);
	uint8_t pool = (uint8_t)(all & ~(1u << l) & ~(1u << r));
	uint8_t x = nth_member(pool, rnd2(w));
	uint8_t rest = (uint8_t)(pool & ~(1u << x)), y = 0;
	while (__builtin_popcount(y) < n / 2 - 1) /* majority - 2 */
		y |= (uint8_t)(1u << nth_member((uint8_t)(rest & ~y), rnd2(w)));
	memset(&w->rec, 0, sizeof(w->rec));
	w->rec.on = true;
	w->rec.stage = REC_CLIMB;
	w->rec.l = l;
	w->rec.r = r;
	w->rec.x = x;
	w->rec.y = y;
	w->rec.z = (uint8_t)(rest & ~y);
	w->rec.until = w->now + w->p->faults.lease_ns + 150 * MS;
	w->nemesis_on = true;
	w->res->faults++;
	for (uint8_t j = 0; j < n; j++)
		if (j != r && j != x)
			rec_cut(w, r, j, true);
	for (uint8_t j = 0; j < n; j++)
		if (j == x || rec_has(y, j)) {
			w->nodes[j].rogue_hint = x;
			w->nodes[j].rogue_until = w->now + 2000 * MS;
		}
	narrate(w, "recovery attack on leader %u: %u cut off but from %u, "
		"which is told to lead; Y %#x, Z %#x", l, r, x, y, w->rec.z);
	rec_poll(w);
}

static void nemesis_stage(struct world *w, const struct event *e)
{
	uint8_t a = e->node, l = (uint8_t)e->gen;
	uint8_t kind = (uint8_t)(e->gen >> 8), stage = (uint8_t)(e->gen >> 16);
	if (kind == NEMESIS_RECOVERY) {
		if (!w->faults_on || !w->rec.on)
			nemesis_end(w);
		else
			rec_stage(w);
		return;
	}
	if (stage == 4) {
		nemesis_config_retry_restore(w, l, a);
		return;
	}
	if (stage == 3 || !w->faults_on) {
		nemesis_end(w);
		/* Members back soon, so that the next attack can remove
		 * some again. */
		if (kind == NEMESIS_MEMBERSHIP && w->faults_on)
			nemesis_next(w, 10 * MS, 4, kind, 0, a);
		return;
	}
	if (stage == 1) {
		nemesis_config_wait(w, l, a);
		return;
	}
	/* L goes deaf; in the membership attack mute as well, so that
	 * clients give up on it and follow redirects to N. */
	for (uint8_t b = 0; b < w->p->replicas; b++)
		if (b != l) {
			w->nemesis_down[b][l] = true;
			if (kind == NEMESIS_MEMBERSHIP)
				w->nemesis_down[l][b] = true;
		}
	/* N leads past the lease L still serves reads under, which H's
	 * acknowledgements granted until L went mute: only then do the
	 * clients reading at L give up on it. */
	uint64_t len = kind == NEMESIS_MEMBERSHIP
			       ? w->p->faults.lease_ns + 30 * MS +
					 rnd2(w) % (60 * MS)
			       : 20 * MS + rnd2(w) % (60 * MS);
	/* In the membership attack every replica is told that N leads: L
	 * stops leading, and redirects send the clients to N. */
	for (uint8_t b = 0; b < w->p->replicas; b++)
		if (b == a || kind == NEMESIS_MEMBERSHIP) {
			w->nodes[b].rogue_hint = a;
			w->nodes[b].rogue_until = w->now + len;
		}
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
	if (w->ncfg.on || w->rec.on)
		return; /* the membership lease attack's change is on, or a
			   recovery attack counts on all members */
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
	uint64_t every = e->node == 0 ? f->partition_every_ns :
			 e->node == 1 ? f->crash_every_ns :
			 e->node == 2 ? f->pause_every_ns :
			 e->node == 4 ? f->nemesis_every_ns :
			 e->node == 5 ? f->recovery_every_ns :
			 e->node == 6 ? f->whole_crash_every_ns :
			 e->node == 7 ? f->corrupt_every_ns :
					f->reconfig_every_ns;
	if (!w->faults_on || every == 0)
		return;
	if (e->node == 6)
		fault_whole_crash(w);
	else if (e->node == 7)
		fault_corrupt(w);
	else if (e->node == 0)
		fault_partition(w);
	else if (e->node == 4)
		fault_nemesis(w);
	else if (e->node == 5)
		fault_recovery(w);
	else if (e->node == 1)
		fault_crash(w);
	else if (e->node == 2)
		fault_pause(w);
	else
		fault_reconfig(w);
	uint64_t next = e->node >= 6 ? every / 2 + rnd_disk(w) % (every + 1) :
			e->node >= 4 ? every / 2 + rnd2(w) % (every + 1) :
				       rnd_range(w, every / 2, every * 3 / 2);
	schedule(w, next, EV_FAULT, e->node, 0);
}

/* The end of the fault phase: every fault stops; from here on everything
 * pending must complete. */
static void settle(struct world *w)
{
	w->faults_on = false;
	heal_links(w);
	for (uint8_t i = 0; i < w->p->replicas; i++) {
		if (!w->nodes[i].up && !w->nodes[i].dead)
			node_start(w, i, true);
		w->nodes[i].paused_until = 0;
		w->nodes[i].ctl_paused_until = 0;
		w->nodes[i].rogue_until = 0;
	}
	memset(w->nemesis_down, 0, sizeof(w->nemesis_down));
	w->ncfg.on = false;
	w->rec.on = false;
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

/* --durable: every acknowledged write is applied at every replica that
 * runs (sim_sm.c keeps, per client slot, the last write applied), whole-
 * cluster crashes or not. A restart may come back with a chosen slot not
 * yet known committed (its COMMIT record skipped or lost): not converged
 * until a leader commits it again, and a liveness failure, naming the
 * write, if none does before the settle limit. */
static bool acked_writes_applied(const struct world *w, char *why, size_t n)
{
	if (!w->p->durable)
		return true;
	for (uint8_t i = 0; i < w->p->replicas; i++) {
		if (w->nodes[i].dead)
			continue;
		for (uint32_t ci = 0; ci < w->p->clients; ci++) {
			uint64_t have = sim_sm_last_seq(w->nodes[i].sm, ci);
			if (have >= w->acked_max[ci])
				continue;
			snprintf(why, n,
				 "replica %u has not applied client %u's "
				 "acknowledged write %llu (%llu applied)",
				 i, ci, (unsigned long long)w->acked_max[ci],
				 (unsigned long long)have);
			return false;
		}
	}
	return true;
}

/* Converged: all replicas up and voting, all applied the same prefix, and
 * their states are identical. */
static bool replicas_converged(const struct world *w, char *why, size_t n)
{
	uint64_t top = 0;
	uint8_t first = PX_REPLICA_NONE;
	for (uint8_t i = 0; i < w->p->replicas; i++) {
		const struct node *nd = &w->nodes[i];
		if (nd->dead)
			continue; /* down for good: a corrupt disk */
		if (first == PX_REPLICA_NONE)
			first = i;
		if (!nd->up || px_role(nd->px) == PX_ROLE_RECOVERING) {
			snprintf(why, n, "replica %u is still recovering", i);
			return false;
		}
		if (px_commit_index(nd->px) > top)
			top = px_commit_index(nd->px);
	}
	for (uint8_t i = 0; i < w->p->replicas; i++) {
		if (w->nodes[i].dead)
			continue;
		const struct px_replica *r = w->nodes[i].px;
		if (px_applied_index(r) != top) {
			snprintf(why, n, "replica %u applied %llu of %llu", i,
				 (unsigned long long)px_applied_index(r),
				 (unsigned long long)top);
			return false;
		}
		if (px_state_digest(r) != px_state_digest(w->nodes[first].px)) {
			snprintf(why, n, "replica %u state differs at %llu", i,
				 (unsigned long long)top);
			return false;
		}
	}
	return acked_writes_applied(w, why, n);
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
		if (e->gen == w->nodes[e->node].gen && !w->nodes[e->node].up &&
		    !w->nodes[e->node].dead) {
			node_start(w, e->node, true);
			if (w->p->durable && w->nodes[e->node].up)
				narrate(w, "restart replica %u from its disk",
					e->node);
			else if (!w->p->durable)
				narrate(w,
					"restart replica %u without its "
					"state",
					e->node);
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
	w->prng_disk = p->seed * 0x8bb84b93962eacc9ull ^ 0x5eed3ull;
	w->out.msgs = w->outbox_msgs;
	w->out.cap = OUTBOX_CAP;
	w->faults_on = true;
	w->checker = checker_new(p->replicas, p->clients, SIM_WINDOW_SLOTS,
				 p->durable);
	current = w;
	for (uint8_t i = 0; i < p->replicas; i++) {
		struct node *n = &w->nodes[i];
		n->offset_ns = rnd_range(w, 0, p->faults.skew_offset_max_ns);
		int64_t ppm = (int64_t)rnd_range(w, 0, 2 * p->faults.skew_ppm_max);
		n->ppm = ppm - (int64_t)p->faults.skew_ppm_max;
		node_start(w, i, false);
	}
	for (uint32_t i = 0; i < p->clients; i++) {
		client_init(w, i, (uint8_t)(rnd(w) % p->replicas));
		schedule(w, rnd_range(w, 1 * MS, 5 * MS), EV_CLIENT, (uint8_t)i,
			 ++w->clients[i].gen);
	}
	for (uint8_t k = 0; k < 4; k++)
		schedule(w, rnd_range(w, 20 * MS, 60 * MS), EV_FAULT, k, 0);
	if (p->faults.nemesis_every_ns != 0)
		schedule(w, 20 * MS + rnd2(w) % (40 * MS), EV_FAULT, 4, 0);
	if (p->faults.recovery_every_ns != 0)
		schedule(w, 20 * MS + rnd2(w) % (40 * MS), EV_FAULT, 5, 0);
	if (p->durable) {
		schedule(w, 20 * MS + rnd_disk(w) % (60 * MS), EV_FAULT, 6, 0);
		schedule(w, 20 * MS + rnd_disk(w) % (60 * MS), EV_FAULT, 7, 0);
	}
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
	for (uint8_t i = 0; i < w->p->replicas; i++) {
		node_stop(w, i);
		w->res->disk_syncs += w->nodes[i].disk.syncs;
		w->res->kept_unsynced += w->nodes[i].disk.kept_unsynced;
		sim_disk_free(&w->nodes[i].disk);
		free(w->nodes[i].unsynced);
	}
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
