/* The simulator's state machine: the built-in KV store behind a thin
 * wrapper that sees which client request each command is, so the simulator
 * can prove no request is applied twice.
 *
 * Command: u64 client index, u64 seq, then a KV command. The wrapper keeps
 * the last applied seq of each client as part of the replicated state
 * (digest and snapshot included); a seq that does not grow is a violation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bypax/kv.h"
#include "sim_internal.h"

struct sim_sm {
	void *kv;
	uint64_t last_seq[SIM_CLIENTS_MAX];
	uint64_t applied;
};

#define SIM_SM_PREFIX 16u

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static void *sim_sm_create(const char *args)
{
	(void)args;
	struct sim_sm *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->kv = bpx_kv_ops()->create("capacity=64");
	if (s->kv == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

static void sim_sm_destroy(void *sm)
{
	struct sim_sm *s = sm;
	bpx_kv_ops()->destroy(s->kv);
	free(s);
}

static int sim_sm_apply(void *sm, const uint8_t *cmd, uint32_t len,
			uint8_t *reply, uint32_t cap)
{
	struct sim_sm *s = sm;
	if (len < SIM_SM_PREFIX) {
		sim_violation("state machine got a command without a prefix");
		return bpx_kv_ops()->apply(s->kv, cmd, len, reply, cap);
	}
	uint64_t client = get_u64(cmd), seq = get_u64(cmd + 8);
	if (seq >= PX_SEQ_READ_BASE) {
		sim_violation("a read was applied as a write (seq %llu)",
			      (unsigned long long)seq);
	} else if (client >= SIM_CLIENTS_MAX) {
		sim_violation("state machine got a bad client index %llu",
			      (unsigned long long)client);
	} else if (seq <= s->last_seq[client]) {
		sim_violation("request applied twice: client %llu seq %llu "
			      "(last applied %llu)",
			      (unsigned long long)client,
			      (unsigned long long)seq,
			      (unsigned long long)s->last_seq[client]);
	} else {
		s->last_seq[client] = seq;
	}
	s->applied++;
	return bpx_kv_ops()->apply(s->kv, cmd + SIM_SM_PREFIX,
				   len - SIM_SM_PREFIX, reply, cap);
}

static int sim_sm_read(void *sm, const uint8_t *cmd, uint32_t len,
		       uint8_t *reply, uint32_t cap)
{
	struct sim_sm *s = sm;
	if (len < SIM_SM_PREFIX)
		return -BPX_EINVAL;
	return bpx_kv_ops()->read(s->kv, cmd + SIM_SM_PREFIX,
				  len - SIM_SM_PREFIX, reply, cap);
}

static size_t sim_sm_snapshot_size(void *sm)
{
	struct sim_sm *s = sm;
	return sizeof(s->last_seq) + 8 + bpx_kv_ops()->snapshot_size(s->kv);
}

static int64_t sim_sm_snapshot(void *sm, uint8_t *buf, size_t cap)
{
	struct sim_sm *s = sm;
	size_t head = sizeof(s->last_seq) + 8;
	if (cap < head)
		return -BPX_ETOOBIG;
	memcpy(buf, s->last_seq, sizeof(s->last_seq));
	memcpy(buf + sizeof(s->last_seq), &s->applied, 8);
	int64_t n = bpx_kv_ops()->snapshot(s->kv, buf + head, cap - head);
	return n < 0 ? n : n + (int64_t)head;
}

static int sim_sm_restore(void *sm, const uint8_t *buf, size_t len)
{
	struct sim_sm *s = sm;
	size_t head = sizeof(s->last_seq) + 8;
	if (len < head)
		return -BPX_EMALFORMED;
	int err = bpx_kv_ops()->restore(s->kv, buf + head, len - head);
	if (err != 0)
		return err;
	memcpy(s->last_seq, buf, sizeof(s->last_seq));
	memcpy(&s->applied, buf + sizeof(s->last_seq), 8);
	return 0;
}

static uint64_t sim_sm_digest(void *sm)
{
	struct sim_sm *s = sm;
	uint64_t d = bpx_kv_ops()->digest(s->kv);
	for (unsigned i = 0; i < SIM_CLIENTS_MAX; i++)
		d = (d ^ s->last_seq[i]) * 0x100000001b3ull;
	return d;
}

/* Passes the hint on to the KV store without the prefix, so the
 * simulator runs the learner's real prefetch path, and checks the hint's
 * promise: nothing in the state (so nothing in the digest) changes. */
static void sim_sm_prefetch(void *sm, const uint8_t *const *cmds,
			    const uint32_t *lens, uint32_t n)
{
	struct sim_sm *s = sm;
	const uint8_t *kv_cmds[BPX_SM_PREFETCH_MAX];
	uint32_t kv_lens[BPX_SM_PREFETCH_MAX];
	if (n > BPX_SM_PREFETCH_MAX) {
		sim_violation("prefetch of %u commands (at most %u)", n,
			      BPX_SM_PREFETCH_MAX);
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		bool prefixed = lens[i] >= SIM_SM_PREFIX;
		kv_cmds[i] = prefixed ? cmds[i] + SIM_SM_PREFIX : NULL;
		kv_lens[i] = prefixed ? lens[i] - SIM_SM_PREFIX : 0;
	}
	uint64_t before = sim_sm_digest(sm);
	bpx_kv_ops()->prefetch(s->kv, kv_cmds, kv_lens, n);
	if (sim_sm_digest(sm) != before)
		sim_violation("prefetch changed the state machine's digest");
}

static const struct bpx_sm_ops sim_sm_ops_table = {
	.abi_version = BPX_SM_ABI_VERSION,
	.name = "sim-kv",
	.create = sim_sm_create,
	.destroy = sim_sm_destroy,
	.apply = sim_sm_apply,
	.read = sim_sm_read,
	.snapshot_size = sim_sm_snapshot_size,
	.snapshot = sim_sm_snapshot,
	.restore = sim_sm_restore,
	.digest = sim_sm_digest,
	.prefetch = sim_sm_prefetch,
};

uint64_t sim_sm_last_seq(void *sm, uint32_t ci)
{
	const struct sim_sm *s = sm;
	return ci < SIM_CLIENTS_MAX ? s->last_seq[ci] : 0;
}

const struct bpx_sm_ops *sim_sm_ops(void)
{
	return &sim_sm_ops_table;
}
