/* Invariant checks, after every step:
 *  - a leader proposes one value per (slot, ballot);
 *  - at most one value is chosen per slot (a majority accepted it at one
 *    ballot; tracked from the ACCEPT and ACCEPTED messages themselves);
 *  - every slot a replica commits holds the chosen value, and a replica's
 *    commit index never goes back (the committed prefix never changes);
 *  - replicas that applied the same index hold identical state (digest);
 *  - every acknowledged request is in a chosen slot.
 * No request is applied twice: the state machine wrapper checks that. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"
/* Read-only: checker_after_restart reads a restarted replica's log. */
#include "../../consensus/internal.h"

struct proposal {
	uint64_t slot;
	uint64_t ballot;
	uint64_t hash;
	uint8_t mask;
	bool used;
	bool chosen;
	uint8_t *value;
	uint32_t value_len;
};

struct chosen_slot {
	uint64_t hash;
	bool known;
};

struct sim_checker {
	uint8_t replicas;
	uint8_t alpha;              /* a change at slot i governs i + alpha on */
	uint8_t all;
	bool durable; /* votes are records on disk (--durable) */
	/* Chosen membership changes, one per slot (a slot chosen again at a
	 * later ballot is the same change). Unbounded: a --long run makes
	 * hundreds, and a change the checker forgot would make it judge
	 * later slots against the wrong configuration. */
	uint32_t config_count, config_cap;
	struct config_change {
		uint64_t slot;
		uint8_t mask;
	} *configs;
	struct proposal *props;
	size_t props_cap, props_count;
	struct chosen_slot *chosen;
	size_t chosen_cap;
	uint64_t chosen_count;
	uint64_t *digest_at; /* by applied index; 0 = none yet */
	size_t digest_cap;
	uint8_t *req_chosen[SIM_CLIENTS_MAX]; /* by seq */
	size_t req_cap[SIM_CLIENTS_MAX];
	uint64_t opens_chosen;        /* OPENs in chosen slots */
	uint64_t checked_commit[PX_REPLICAS_MAX];
	uint64_t last_applied[PX_REPLICAS_MAX];
};

static uint64_t hash_bytes(const uint8_t *p, uint32_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ n;
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h | 1; /* never 0 */
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need < *cap)
		return p;
	size_t n = *cap ? *cap : 1024;
	while (n <= need)
		n *= 2;
	p = realloc(p, n * elem);
	if (p == NULL) {
		fprintf(stderr, "sim: out of memory\n");
		exit(2);
	}
	memset((uint8_t *)p + *cap * elem, 0, (n - *cap) * elem);
	*cap = n;
	return p;
}

struct sim_checker *checker_new(uint8_t replicas, uint8_t clients,
				uint8_t alpha, bool durable)
{
	(void)clients;
	struct sim_checker *c = calloc(1, sizeof(*c));
	if (c == NULL)
		exit(2);
	c->replicas = replicas;
	c->durable = durable;
	c->alpha = alpha;
	c->all = (uint8_t)((1u << replicas) - 1);
	c->props = grow(NULL, &c->props_cap, 4096, sizeof(*c->props));
	return c;
}

void checker_free(struct sim_checker *c)
{
	for (size_t i = 0; i < c->props_cap; i++)
		free(c->props[i].value);
	free(c->props);
	free(c->chosen);
	free(c->configs);
	free(c->digest_at);
	for (unsigned i = 0; i < SIM_CLIENTS_MAX; i++)
		free(c->req_chosen[i]);
	free(c);
}

static uint64_t prop_hash(uint64_t slot, uint64_t ballot)
{
	uint64_t h = slot * 0x9e3779b97f4a7c15ull ^ ballot * 0xc2b2ae3d27d4eb4full;
	return h ^ (h >> 29);
}

static void props_rehash(struct sim_checker *c);

static struct proposal *prop_slot(struct sim_checker *c, uint64_t slot,
				  uint64_t ballot, bool create)
{
	if (create && (c->props_count + 1) * 2 > c->props_cap)
		props_rehash(c);
	size_t mask = c->props_cap - 1;
	for (size_t i = prop_hash(slot, ballot) & mask;; i = (i + 1) & mask) {
		struct proposal *p = &c->props[i];
		if (p->used && p->slot == slot && p->ballot == ballot)
			return p;
		if (!p->used) {
			if (!create)
				return NULL;
			p->used = true;
			p->slot = slot;
			p->ballot = ballot;
			c->props_count++;
			return p;
		}
	}
}

static void props_rehash(struct sim_checker *c)
{
	struct proposal *old = c->props;
	size_t old_cap = c->props_cap;
	c->props_cap = 0;
	c->props = grow(NULL, &c->props_cap, old_cap * 2, sizeof(*c->props));
	c->props_count = 0;
	for (size_t i = 0; i < old_cap; i++) {
		if (!old[i].used)
			continue;
		struct proposal *p = prop_slot(c, old[i].slot, old[i].ballot, true);
		*p = old[i];
	}
	free(old);
}

static void note_config(struct sim_checker *c, uint64_t slot, uint8_t mask);

/* first: the slot was not known chosen before (a later ballot may choose
 * the same value again: counted once). */
static void mark_requests_chosen(struct sim_checker *c, uint64_t slot,
				 const uint8_t *v, uint32_t len, bool first)
{
	uint32_t off = 0;
	while (len - off >= PX_BATCH_ENTRY_HEADER_BYTES) {
		uint64_t client, seq;
		uint16_t n;
		memcpy(&client, v + off, 8);
		memcpy(&seq, v + off + 8, 8);
		memcpy(&n, v + off + 16, 2);
		if (client == 0 && n == 1 && len - off > 18) /* a config */
			note_config(c, slot, v[off + 18]);
		/* An OPEN: the log's seq bit 62 without the read bit 63. */
		if (first && client != 0 && (seq >> 62) == 1)
			c->opens_chosen++;
		/* A write: its client slot and write count are in the
		 * command's prefix (sim_sm.c), whatever its session id. */
		bool write = client != 0 && seq < PX_SEQ_READ_BASE &&
			     n >= 16 && len - off - 18 >= 16;
		if (write) {
			memcpy(&client, v + off + 18, 8);
			memcpy(&seq, v + off + 26, 8);
		}
		if (write && client < SIM_CLIENTS_MAX && seq < PX_SEQ_READ_BASE) {
			c->req_chosen[client] =
				grow(c->req_chosen[client], &c->req_cap[client],
				     seq, 1);
			c->req_chosen[client][seq] = 1;
		}
		off += PX_BATCH_ENTRY_HEADER_BYTES + n;
		if (off > len)
			break;
	}
}

/* The configuration of a slot, from the chosen changes alone: the latest
 * change at a slot at most slot - alpha. */
static uint8_t config_at(const struct sim_checker *c, uint64_t slot)
{
	uint8_t mask = c->all;
	uint64_t best = 0;
	bool found = false;
	for (uint32_t i = 0; i < c->config_count; i++) {
		uint64_t at = c->configs[i].slot;
		if (at + c->alpha <= slot && (!found || at >= best)) {
			best = at;
			mask = c->configs[i].mask;
			found = true;
		}
	}
	return mask;
}

static void note_config(struct sim_checker *c, uint64_t slot, uint8_t mask)
{
	if (mask == 0 || (mask & ~c->all))
		return;
	/* Several changes in one slot's batch: the replicas apply each in
	 * turn, so the last one governs (membership.c). A slot chosen again
	 * holds the same batch, so its last change is the same too. */
	for (uint32_t i = 0; i < c->config_count; i++)
		if (c->configs[i].slot == slot) {
			c->configs[i].mask = mask;
			return;
		}
	if (c->config_count == c->config_cap) {
		c->config_cap = c->config_cap ? 2 * c->config_cap : 64;
		c->configs = realloc(c->configs, c->config_cap *
						      sizeof(*c->configs));
		if (c->configs == NULL)
			exit(2);
	}
	c->configs[c->config_count].slot = slot;
	c->configs[c->config_count].mask = mask;
	c->config_count++;
}

static void check_chosen(struct sim_checker *c, struct proposal *p)
{
	uint8_t config = config_at(c, p->slot);
	if (p->chosen || __builtin_popcount(p->mask & config) <
				 __builtin_popcount(config) / 2 + 1)
		return;
	p->chosen = true;
	c->chosen = grow(c->chosen, &c->chosen_cap, p->slot, sizeof(*c->chosen));
	struct chosen_slot *cs = &c->chosen[p->slot];
	if (cs->known && cs->hash != p->hash) {
		sim_violation("two values chosen for slot %llu (second at "
			      "ballot %llu.%u)",
			      (unsigned long long)p->slot,
			      (unsigned long long)px_ballot_round(p->ballot),
			      px_ballot_owner(p->ballot));
		return;
	}
	bool first = !cs->known;
	if (first)
		c->chosen_count++;
	cs->known = true;
	cs->hash = p->hash;
	mark_requests_chosen(c, p->slot, p->value, p->value_len, first);
}

/* The proposal (slot, ballot) of leader `from` with this value: the first
 * sight of it records the value, a later one must match it. */
static struct proposal *observe_proposal(struct sim_checker *c, uint8_t from,
					 uint64_t slot, uint64_t ballot,
					 const uint8_t *value, uint32_t len)
{
	uint64_t h = hash_bytes(value, len);
	struct proposal *p = prop_slot(c, slot, ballot, true);
	if (p->value == NULL) {
		p->hash = h;
		p->value = malloc(len + 1u);
		memcpy(p->value, value, len);
		p->value_len = len;
	} else if (p->hash != h) {
		sim_violation("leader %u proposed two values for slot %llu at "
			      "one ballot", from, (unsigned long long)slot);
	}
	return p;
}

/* The leader's ACCEPT is its own vote too, in memory mode. In durable mode
 * its vote is the record of it, counted once it is synced
 * (checker_leader_vote_synced): a vote lost in a crash never counted, even
 * if a core ever sent its ACCEPTs first. */
static void observe_accept(struct sim_checker *c, const struct px_msg *m)
{
	struct proposal *p = observe_proposal(c, m->from, m->slot, m->ballot,
					      m->value, m->value_len);
	if (c->durable)
		return;
	p->mask |= (uint8_t)(1u << m->from);
	check_chosen(c, p);
}

void checker_leader_vote_synced(struct sim_checker *c, uint8_t node,
				uint64_t slot, uint64_t ballot,
				const uint8_t *value, uint32_t len)
{
	PX_ASSERT(c->durable && px_ballot_owner(ballot) == node);
	struct proposal *p =
		observe_proposal(c, node, slot, ballot, value, len);
	p->mask |= (uint8_t)(1u << node);
	check_chosen(c, p);
}

static void observe_accepted(struct sim_checker *c, const struct px_msg *m)
{
	struct proposal *p = prop_slot(c, m->slot, m->ballot, false);
	if (p == NULL) {
		sim_violation("replica %u accepted slot %llu at a ballot nobody "
			      "proposed", m->from, (unsigned long long)m->slot);
		return;
	}
	p->mask |= (uint8_t)(1u << m->from);
	check_chosen(c, p);
}

void checker_observe(struct sim_checker *c, const struct px_msg *m)
{
	if (m->type == PX_MSG_ACCEPT)
		observe_accept(c, m);
	else if (m->type == PX_MSG_ACCEPTED)
		observe_accepted(c, m);
}

static void check_commits(struct sim_checker *c, uint8_t node,
			  const struct px_replica *r)
{
	uint64_t commit = px_commit_index(r);
	if (commit < c->checked_commit[node]) {
		sim_violation("replica %u commit index went back from %llu to "
			      "%llu", node,
			      (unsigned long long)c->checked_commit[node],
			      (unsigned long long)commit);
		return;
	}
	for (uint64_t s = c->checked_commit[node]; s < commit; s++) {
		const uint8_t *v;
		uint32_t len;
		if (px_chosen_value(r, s, &v, &len) != 0)
			continue; /* covered by a snapshot */
		struct chosen_slot *cs =
			s < c->chosen_cap ? &c->chosen[s] : NULL;
		if (cs == NULL || !cs->known) {
			sim_violation("replica %u committed slot %llu before a "
				      "majority accepted any value", node,
				      (unsigned long long)s);
			return;
		}
		if (cs->hash != hash_bytes(v, len)) {
			sim_violation("replica %u committed a value for slot "
				      "%llu that was not chosen", node,
				      (unsigned long long)s);
			return;
		}
	}
	c->checked_commit[node] = commit;
}

void checker_after_step(struct sim_checker *c, uint8_t node,
			struct px_replica *r)
{
	const char *why = px_check_invariants(r);
	if (why != NULL) {
		sim_violation("replica %u: invariant: %s", node, why);
		return;
	}
	check_commits(c, node, r);
	uint64_t applied = px_applied_index(r);
	if (applied == c->last_applied[node])
		return;
	c->last_applied[node] = applied;
	c->digest_at = grow(c->digest_at, &c->digest_cap, applied,
			    sizeof(uint64_t));
	uint64_t d = px_state_digest(r) | 1;
	if (c->digest_at[applied] == 0)
		c->digest_at[applied] = d;
	else if (c->digest_at[applied] != d)
		sim_violation("replica %u state differs from another replica's "
			      "at applied index %llu", node,
			      (unsigned long long)applied);
}

/* --durable: a replica restarted from its disk still holds every vote it
 * sent (an ACCEPTED, or the leader's ACCEPT of its own proposal) for a
 * slot it has not applied: at that ballot or a later one. */
void checker_after_restart(struct sim_checker *c, uint8_t node,
			   struct px_replica *r)
{
	uint8_t bit = (uint8_t)(1u << node);
	for (size_t k = 0; k < c->props_cap; k++) {
		const struct proposal *p = &c->props[k];
		if (!p->used || !(p->mask & bit) ||
		    p->slot < px_applied_index(r))
			continue;
		const struct px_slot *s = px_log_get(r, p->slot);
		if (s == NULL || s->accepted_ballot < p->ballot) {
			sim_violation(
				"replica %u restarted without its vote "
				"for slot %llu at ballot %llu.%u",
				node, (unsigned long long)p->slot,
				(unsigned long long)px_ballot_round(p->ballot),
				px_ballot_owner(p->ballot));
			return;
		}
	}
}

void checker_node_reset(struct sim_checker *c, uint8_t node)
{
	c->checked_commit[node] = 0;
	c->last_applied[node] = 0;
}

void checker_acked(struct sim_checker *c, uint32_t client, uint64_t seq)
{
	if (client >= SIM_CLIENTS_MAX || seq >= c->req_cap[client] ||
	    !c->req_chosen[client][seq])
		sim_violation("client %u got OK for seq %llu, which is in no "
			      "chosen slot", client, (unsigned long long)seq);
}

uint64_t checker_chosen_slots(const struct sim_checker *c)
{
	return c->chosen_count;
}

uint64_t checker_opens_chosen(const struct sim_checker *c)
{
	return c->opens_chosen;
}
