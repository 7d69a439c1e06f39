/* A state machine .so as one built against ABI version 1 would be: its ops
 * end at digest, with no prefetch field. The struct is followed by a poison
 * pointer where version 2 keeps prefetch, so a loader that read a version 1
 * struct as a version 2 one would hand bypaxd a wild prefetch; the test
 * checks it hands NULL. A one-byte counter keeps the machine trivial. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bypax/errors.h"
#include "bypax/sm.h"

/* struct bpx_sm_ops as ABI version 1 declared it. */
struct sm_ops_v1 {
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
};
_Static_assert(sizeof(struct sm_ops_v1) ==
		       offsetof(struct bpx_sm_ops, prefetch),
	       "version 1 ops are a prefix of this build's");

static void *v1_create(const char *args)
{
	(void)args;
	return calloc(1, 1);
}

static void v1_destroy(void *sm)
{
	free(sm);
}

static int v1_reply(const void *sm, uint8_t *reply, uint32_t cap)
{
	if (cap < 1)
		return 0;
	reply[0] = *(const uint8_t *)sm;
	return 1;
}

static int v1_apply(void *sm, const uint8_t *cmd, uint32_t len, uint8_t *reply,
		    uint32_t cap)
{
	(void)cmd;
	(void)len;
	(*(uint8_t *)sm)++;
	return v1_reply(sm, reply, cap);
}

static int v1_read(void *sm, const uint8_t *cmd, uint32_t len, uint8_t *reply,
		   uint32_t cap)
{
	(void)cmd;
	(void)len;
	return v1_reply(sm, reply, cap);
}

static size_t v1_snapshot_size(void *sm)
{
	(void)sm;
	return 1;
}

static int64_t v1_snapshot(void *sm, uint8_t *buf, size_t cap)
{
	if (cap < 1)
		return -BPX_ETOOBIG;
	buf[0] = *(const uint8_t *)sm;
	return 1;
}

static int v1_restore(void *sm, const uint8_t *buf, size_t len)
{
	if (len != 1)
		return -BPX_EMALFORMED;
	*(uint8_t *)sm = buf[0];
	return 0;
}

static uint64_t v1_digest(void *sm)
{
	return *(const uint8_t *)sm;
}

static const struct {
	struct sm_ops_v1 ops;
	uintptr_t poison; /* where version 2 has prefetch */
} v1 = {
	.ops = {
		.abi_version = 1,
		.name = "counter-v1",
		.create = v1_create,
		.destroy = v1_destroy,
		.apply = v1_apply,
		.read = v1_read,
		.snapshot_size = v1_snapshot_size,
		.snapshot = v1_snapshot,
		.restore = v1_restore,
		.digest = v1_digest,
	},
	.poison = 0xdeadbeefu,
};

__attribute__((visibility("default"))) const struct bpx_sm_ops *
bpx_sm_entry(void)
{
	return (const struct bpx_sm_ops *)(const void *)&v1.ops;
}
