/* The replica: configuration, memory layout, message dispatch, timers and
 * queries. Protocol rules live in acceptor.c, proposer.c, learner.c and
 * recovery.c. */
#include "internal.h"

__attribute__((weak)) void px_assert_fail(const char *expr, const char *file,
					  int line)
{
	(void)expr;
	(void)file;
	(void)line;
	__builtin_trap();
}

static size_t align_up(size_t n)
{
	return (n + PX_ALIGN - 1) & ~(size_t)(PX_ALIGN - 1);
}

void px_config_default(struct px_config *cfg, uint8_t replica_count,
		       uint8_t self_id)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cluster_id = 1;
	cfg->replica_count = replica_count;
	cfg->self_id = self_id;
	cfg->window_slots = 64;
	cfg->log_slots = 1024;
	cfg->batch_bytes_max = PX_VALUE_BYTES_MAX;
	cfg->batch_requests_max = 64;
	cfg->request_queue_max = 1024;
	cfg->session_max = 4096;
	cfg->catchup_burst = 16;
	cfg->heartbeat_interval_ns = 1000000;
	cfg->retransmit_ns = 2000000;
	cfg->lease_ns = 5000000;
	cfg->clock_drift_ppm = 1000;
	cfg->seed = 1;
}

const char *px_config_check_reason(const struct px_config *cfg)
{
	if (cfg == NULL)
		return "config is NULL";
	if (cfg->replica_count < 1 || cfg->replica_count > PX_REPLICAS_MAX)
		return "replica_count must be 1..7";
	if (cfg->self_id >= cfg->replica_count)
		return "self_id must be below replica_count";
	if (cfg->window_slots < 1)
		return "window_slots must be at least 1";
	if (cfg->log_slots < 64 || (cfg->log_slots & (cfg->log_slots - 1)) != 0)
		return "log_slots must be a power of two, at least 64";
	if (cfg->log_slots < 2 * (uint64_t)cfg->window_slots)
		return "log_slots must be at least 2 * window_slots";
	if (cfg->batch_bytes_max < PX_BATCH_ENTRY_HEADER_BYTES + 1 ||
	    cfg->batch_bytes_max > PX_VALUE_BYTES_MAX)
		return "batch_bytes_max must be 19..PX_VALUE_BYTES_MAX (1392)";
	if (cfg->batch_requests_max < 1 || cfg->batch_requests_max > 1024)
		return "batch_requests_max must be 1..1024";
	if (cfg->request_queue_max < 1 || cfg->request_queue_max > (1u << 20))
		return "request_queue_max must be 1..1048576";
	if (cfg->session_max < 1 || cfg->session_max > (1u << 24))
		return "session_max must be 1..16777216";
	if (cfg->catchup_burst < 1 || cfg->catchup_burst > 1024)
		return "catchup_burst must be 1..1024";
	if (cfg->heartbeat_interval_ns == 0 || cfg->retransmit_ns == 0)
		return "heartbeat_interval_ns and retransmit_ns must be > 0";
	if ((cfg->initial_members >> cfg->replica_count) != 0)
		return "initial_members names a replica beyond replica_count";
	if (cfg->durable != 0 && cfg->durable != 1)
		return "durable must be 0 (in memory) or 1 (durable)";
	if (cfg->durable && cfg->recovering)
		return "a durable replica restarts from its disk, not by a "
		       "recovery round";
	if (cfg->clock_drift_ppm > 200000)
		return "clock_drift_ppm must be at most 200000 (20%)";
	if (cfg->sm_ops == NULL || cfg->sm == NULL)
		return "a state machine (sm_ops, sm) is required";
	if (cfg->sm_ops->abi_version != BPX_SM_ABI_VERSION)
		return "state machine ABI version mismatch";
	return NULL;
}

int px_config_check(const struct px_config *cfg)
{
	return px_config_check_reason(cfg) == NULL ? 0 : -BPX_EINVAL;
}

static size_t p1_bits_words(const struct px_config *cfg)
{
	return (size_t)cfg->replica_count * (cfg->log_slots / PX_WORD_BITS);
}

static size_t reply_arena_bytes(const struct px_config *cfg)
{
	return (size_t)PX_REPLY_ARENA_SLOTS * cfg->batch_requests_max *
	       PX_REPLY_BYTES_MAX;
}

size_t px_replica_size(const struct px_config *cfg)
{
	if (px_config_check(cfg) != 0)
		return 0;
	return align_up(sizeof(struct px_replica)) +
	       align_up((size_t)cfg->log_slots * sizeof(struct px_slot)) +
	       align_up((size_t)cfg->request_queue_max *
			sizeof(struct px_pending)) +
	       align_up(px_session_mem_size(cfg->session_max)) +
	       align_up(p1_bits_words(cfg) * sizeof(uint64_t)) +
	       align_up(reply_arena_bytes(cfg)) + PX_ALIGN;
}

uint32_t px_outbox_cap_min(const struct px_config *cfg)
{
	/* A whole promise (one message per log slot), or a slot's replies,
	 * plus one message to every peer, with slack; and a leader deposed
	 * in that same call answers every queued request (a redirect). */
	/* Durable mode adds a few records to a call (a promise, a commit,
	 * a value): within the slack. */
	return cfg->log_slots + cfg->batch_requests_max +
	       cfg->request_queue_max + 4u * PX_REPLICAS_MAX + 16u;
}

int px_init(void *mem, size_t mem_bytes, const struct px_config *cfg,
	    struct px_replica **out)
{
	if (px_config_check(cfg) != 0 || mem == NULL || out == NULL)
		return -BPX_EINVAL;
	size_t need = px_replica_size(cfg);
	if (mem_bytes < need)
		return -BPX_ENOMEM;
	memset(mem, 0, need);
	uint8_t *p = (uint8_t *)align_up((size_t)mem);
	struct px_replica *r = (struct px_replica *)p;
	p += align_up(sizeof(*r));
	r->log = (struct px_slot *)p;
	p += align_up((size_t)cfg->log_slots * sizeof(struct px_slot));
	r->queue = (struct px_pending *)p;
	p += align_up((size_t)cfg->request_queue_max * sizeof(struct px_pending));
	px_session_init(&r->sessions, p, cfg->session_max);
	p += align_up(px_session_mem_size(cfg->session_max));
	r->p1.seen_bits = (uint64_t *)p;
	p += align_up(p1_bits_words(cfg) * sizeof(uint64_t));
	r->reply_arena = p;
	r->reply_arena_cap = (uint32_t)reply_arena_bytes(cfg);
	p += align_up(reply_arena_bytes(cfg));
	PX_ASSERT(p <= (uint8_t *)mem + need);

	r->cfg = *cfg;
	r->leader_hint = PX_REPLICA_NONE;
	r->known_leader = PX_REPLICA_NONE;
	r->lease_holder = PX_REPLICA_NONE;
	r->prng = cfg->seed ^ 0x9e3779b97f4a7c15ull;
	r->role = cfg->recovering ? PX_ROLE_RECOVERING : PX_ROLE_FOLLOWER;
	px_members_init(r);
	*out = r;
	return 0;
}

uint64_t px_prng_next(struct px_replica *r)
{
	/* splitmix64: small, fast, and replays exactly from the seed. */
	uint64_t z = (r->prng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void px_drop(struct px_replica *r, enum px_drop_reason reason)
{
	PX_ASSERT(reason < PX_DROP_COUNT);
	r->stats.drops[reason]++;
}

uint32_t px_out_room(const struct px_outbox *out)
{
	PX_ASSERT(out->count <= out->cap);
	return out->cap - out->count;
}

struct px_msg *px_out_push(struct px_replica *r, struct px_outbox *out)
{
	if (out->count >= out->cap) {
		px_drop(r, PX_DROP_OUTBOX_FULL);
		return NULL;
	}
	struct px_msg *m = &out->msgs[out->count++];
	memset(m, 0, sizeof(*m));
	m->from = r->cfg.self_id;
	return m;
}

struct px_msg *px_out_to(struct px_replica *r, struct px_outbox *out,
			 uint8_t type, uint8_t to)
{
	struct px_msg *m = px_out_push(r, out);
	if (m != NULL) {
		m->type = type;
		m->to = to;
	}
	return m;
}

void px_note_ballot(struct px_replica *r, uint64_t ballot)
{
	if (ballot > r->highest_seen)
		r->highest_seen = ballot;
}

/* ---- The log ring ---- */

struct px_slot *px_log_get(struct px_replica *r, uint64_t slot)
{
	if (slot < r->log_start || slot - r->log_start >= r->cfg.log_slots)
		return NULL;
	struct px_slot *s = &r->log[slot & (r->cfg.log_slots - 1)];
	if (!s->in_use)
		return NULL;
	PX_ASSERT(s->slot == slot);
	return s;
}

/* Slots are reclaimed lazily, oldest first, and only once applied here:
 * an applied slot is chosen, and the state machine (a snapshot on demand)
 * covers it, so no one needs it from this log again. */
bool px_log_make_room(struct px_replica *r, uint64_t slot)
{
	if (slot < r->log_start)
		return false;
	while (slot - r->log_start >= r->cfg.log_slots) {
		if (r->log_start >= r->applied_index)
			return false;
		struct px_slot *s = &r->log[r->log_start & (r->cfg.log_slots - 1)];
		s->in_use = false;
		r->log_start++;
	}
	return true;
}

struct px_slot *px_log_claim(struct px_replica *r, uint64_t slot)
{
	if (!px_log_make_room(r, slot))
		return NULL;
	struct px_slot *s = &r->log[slot & (r->cfg.log_slots - 1)];
	if (s->in_use) {
		PX_ASSERT(s->slot == slot);
		return s;
	}
	memset(s, 0, offsetof(struct px_slot, value));
	s->slot = slot;
	s->in_use = true;
	return s;
}

/* Drops every slot below new_start (a snapshot covers them). */
void px_log_reset_from(struct px_replica *r, uint64_t new_start)
{
	PX_ASSERT(new_start >= r->log_start);
	for (uint32_t i = 0; i < r->cfg.log_slots; i++) {
		struct px_slot *s = &r->log[i];
		if (s->in_use && s->slot < new_start)
			s->in_use = false;
	}
	r->log_start = new_start;
	if (r->accepted_end < new_start)
		r->accepted_end = new_start;
}

/* ---- Roles ---- */

void px_become_follower(struct px_replica *r, uint64_t now_ns,
			struct px_outbox *out)
{
	if (r->role == PX_ROLE_RECOVERING || r->role == PX_ROLE_FOLLOWER)
		return;
	r->role = PX_ROLE_FOLLOWER;
	r->ballot = 0;
	/* No longer the leader: never send clients back here as if it were. */
	if (r->known_leader == r->cfg.self_id)
		r->known_leader = PX_REPLICA_NONE;
	/* Jittered backoff so two replicas that both think they lead do not
	 * duel forever (the hint decides in the end). */
	r->next_election_ns = now_ns + r->cfg.retransmit_ns +
			      px_prng_next(r) % (2 * r->cfg.retransmit_ns);
	px_queue_redirect_all(r, out);
	/* A change we queued is dropped with the queue; one in a slot is
	 * chosen by a later leader or not at all, and the history says when
	 * one is applied. Kept, the flag would refuse every change and every
	 * lease read should we lead again (membership.c). */
	r->config_proposed = false;
}

void px_set_leader_hint(struct px_replica *r, uint64_t now_ns,
			uint8_t leader_id, struct px_outbox *out)
{
	px_begin_call(r);
	px_persist_begin(r, now_ns, out);
	r->leader_hint = leader_id;
	if (r->role == PX_ROLE_RECOVERING)
		return;
	if (leader_id != r->cfg.self_id) {
		px_become_follower(r, now_ns, out);
		return;
	}
	if (px_may_start_election(r, now_ns))
		px_start_phase1(r, now_ns, out);
}

/* ---- Dispatch ---- */

static bool msg_well_formed(const struct px_replica *r, const struct px_msg *m)
{
	/* Outbox-only effects (SNAPSHOT, PERSIST) are never input, nor is
	 * the wire's own type between them. */
	if (m->type < PX_MSG_REQUEST || m->type > PX_MSG_SNAPSHOT_REQ)
		return false;
	if (m->value_len > PX_VALUE_BYTES_MAX ||
	    (m->value_len > 0 && m->value == NULL))
		return false;
	if (m->type == PX_MSG_REQUEST)
		return true;
	if (m->type == PX_MSG_REPLY)
		return false; /* replicas never receive replies */
	if (px_ballot_round(m->ballot) > PX_BALLOT_ROUND_MAX ||
	    px_ballot_round(m->accepted_ballot) > PX_BALLOT_ROUND_MAX)
		return false;
	return m->to == r->cfg.self_id;
}

static int dispatch(struct px_replica *r, uint64_t now_ns,
		    const struct px_msg *m, struct px_outbox *out);

int px_step(struct px_replica *r, uint64_t now_ns, const struct px_msg *m,
	    struct px_outbox *out)
{
	px_begin_call(r);
	px_persist_begin(r, now_ns, out);
	int rc = dispatch(r, now_ns, m, out);
	px_adopt_incarnation_if_due(r, now_ns, out);
	return rc;
}

static int dispatch(struct px_replica *r, uint64_t now_ns,
		    const struct px_msg *m, struct px_outbox *out)
{
	r->stats.msgs_in++;
	if (m == NULL || !msg_well_formed(r, m)) {
		px_drop(r, PX_DROP_MALFORMED);
		return -BPX_EMALFORMED;
	}
	if (m->type != PX_MSG_REQUEST &&
	    (!px_is_member(r, m->from) || m->from == r->cfg.self_id)) {
		px_drop(r, PX_DROP_NOT_MEMBER);
		return -BPX_EMEMBER;
	}
	switch (m->type) {
	case PX_MSG_REQUEST:
		return px_on_request(r, now_ns, m, out);
	case PX_MSG_PREPARE:
		return px_on_prepare(r, now_ns, m, out);
	case PX_MSG_PROMISE:
		if (r->role == PX_ROLE_RECOVERING)
			return px_recovery_on_promise(r, now_ns, m, out);
		return px_on_promise(r, now_ns, m, out);
	case PX_MSG_ACCEPT:
		return px_on_accept(r, now_ns, m, out);
	case PX_MSG_ACCEPTED:
		return px_on_accepted(r, now_ns, m, out);
	case PX_MSG_NACK:
		return px_on_nack(r, now_ns, m, out);
	case PX_MSG_COMMIT:
		return px_on_commit(r, now_ns, m, out);
	case PX_MSG_STATUS:
		return px_on_status(r, now_ns, m, out);
	case PX_MSG_CHOSEN:
		return px_on_chosen(r, now_ns, m, out);
	case PX_MSG_SNAPSHOT_REQ: {
		/* A recovering replica's state is no basis for another's: its
		 * history may be older than what the asker must fence, and two
		 * recovering replicas would fence each other forever (sim seed
		 * 1032759 at 5 replicas). */
		if (r->role == PX_ROLE_RECOVERING) {
			px_drop(r, PX_DROP_WRONG_ROLE);
			return 0;
		}
		struct px_msg *s = px_out_to(r, out, PX_MSG_SNAPSHOT, m->from);
		if (s != NULL)
			s->applied_index = r->applied_index;
		return 0;
	}
	default:
		px_drop(r, PX_DROP_MALFORMED);
		return -BPX_EMALFORMED;
	}
}

void px_tick(struct px_replica *r, uint64_t now_ns, struct px_outbox *out)
{
	px_begin_call(r);
	px_persist_begin(r, now_ns, out);
	px_apply_committed(r, out);
	if (r->role == PX_ROLE_RECOVERING) {
		px_recovery_tick(r, now_ns, out);
		return;
	}
	if (r->role == PX_ROLE_FOLLOWER) {
		if (r->leader_hint == r->cfg.self_id &&
		    px_may_start_election(r, now_ns))
			px_start_phase1(r, now_ns, out);
		return;
	}
	px_proposer_tick(r, now_ns, out);
}

/* ---- Queries ---- */

enum px_role px_role(const struct px_replica *r) { return r->role; }
uint64_t px_promised_ballot(const struct px_replica *r) { return r->promised; }
uint64_t px_leader_ballot(const struct px_replica *r)
{
	return r->role == PX_ROLE_LEADER ? r->ballot : 0;
}
uint8_t px_known_leader(const struct px_replica *r)
{
	if (r->role == PX_ROLE_LEADER)
		return r->cfg.self_id;
	return r->known_leader;
}
uint64_t px_commit_index(const struct px_replica *r) { return r->commit_index; }
uint64_t px_applied_index(const struct px_replica *r)
{
	return r->applied_index;
}
uint64_t px_log_start(const struct px_replica *r) { return r->log_start; }
uint32_t px_queue_depth(const struct px_replica *r) { return r->queue_count; }
uint64_t px_next_slot(const struct px_replica *r) { return r->next_slot; }
const struct px_stats *px_stats(const struct px_replica *r)
{
	return &r->stats;
}

uint64_t px_state_digest(const struct px_replica *r)
{
	uint64_t d = r->cfg.sm_ops->digest(r->cfg.sm);
	d ^= px_session_digest(&r->sessions) * 0x9e3779b97f4a7c15ull;
	return d ^ (px_history_digest(r) * 0xc2b2ae3d27d4eb4full);
}

int px_chosen_value(const struct px_replica *r, uint64_t slot,
		    const uint8_t **value, uint32_t *value_len)
{
	const struct px_slot *s = px_log_get((struct px_replica *)r, slot);
	if (s == NULL || !s->chosen)
		return -BPX_ENOTFOUND;
	*value = s->value;
	*value_len = s->value_len;
	return 0;
}

const char *px_drop_reason_name(enum px_drop_reason reason)
{
	static const char *const names[PX_DROP_COUNT] = {
#define PX_DROP_NAME(name, text) text,
		PX_DROP_LIST(PX_DROP_NAME)
#undef PX_DROP_NAME
	};
	return (unsigned)reason < PX_DROP_COUNT ? names[reason] : "unknown";
}
