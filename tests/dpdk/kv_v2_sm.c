/* The built-in KV store as a state machine .so built against ABI version 2
 * would load: its ops end at prefetch, without version 3's incremental
 * snapshot ops, so bypaxd saves its disk snapshots synchronously on the
 * worker. Test disk-snapshot-stall runs bypaxd over it and over the
 * built-in store, and compares the worker's longest stall. */
#include <stddef.h>
#include <stdint.h>

#include "bypax/kv.h"
#include "bypax/sm.h"

/* struct bpx_sm_ops as ABI version 2 declared it. */
struct sm_ops_v2 {
	uint32_t abi_version;
	const char *name;
	void *(*create)(const char *args);
	void (*destroy)(void *sm);
	int (*apply)(void *sm, const uint8_t *cmd, uint32_t cmd_len,
		     uint8_t *reply, uint32_t reply_cap);
	int (*read)(void *sm, const uint8_t *cmd, uint32_t cmd_len,
		    uint8_t *reply, uint32_t reply_cap);
	size_t (*snapshot_size)(void *sm);
	int64_t (*snapshot)(void *sm, uint8_t *buf, size_t cap);
	int (*restore)(void *sm, const uint8_t *buf, size_t len);
	uint64_t (*digest)(void *sm);
	void (*prefetch)(void *sm, const uint8_t *const *cmds,
			 const uint32_t *lens, uint32_t n);
};
_Static_assert(sizeof(struct sm_ops_v2) ==
		       offsetof(struct bpx_sm_ops, snapshot_begin),
	       "version 2 ops are a prefix of this build's");

/* Followed by a poison pointer where version 3 keeps snapshot_begin: a
 * loader that read past version 2's ops would call it. */
static struct {
	struct sm_ops_v2 ops;
	void *poison;
} kv_v2 = { .poison = (void *)0x1 };

__attribute__((visibility("default"))) const struct bpx_sm_ops *
bpx_sm_entry(void)
{
	const struct bpx_sm_ops *kv = bpx_kv_ops();
	kv_v2.ops = (struct sm_ops_v2){ .abi_version = 2,
					.name = "kv-v2",
					.create = kv->create,
					.destroy = kv->destroy,
					.apply = kv->apply,
					.read = kv->read,
					.snapshot_size = kv->snapshot_size,
					.snapshot = kv->snapshot,
					.restore = kv->restore,
					.digest = kv->digest,
					.prefetch = kv->prefetch };
	return (const struct bpx_sm_ops *)&kv_v2.ops;
}
