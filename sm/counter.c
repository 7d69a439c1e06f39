/* An example state machine built as a shared object: a counter service.
 * Load it with `bypaxd --sm ./libbypax_sm_counter.so`.
 *
 * Every command increments the counter by one (any bytes are a command, so
 * any load generator can drive it), except the one-byte command "?" which
 * only reads. The reply is the counter after the command, as 8 bytes
 * little-endian. The whole state is one u64, which makes the snapshot and
 * digest rules of sm.h easy to see. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bypax/errors.h"
#include "bypax/sm.h"

struct counter {
	uint64_t value;
};

static void *counter_create(const char *args)
{
	if (args != NULL && args[0] != '\0')
		return NULL; /* takes no arguments */
	return calloc(1, sizeof(struct counter));
}

static void counter_destroy(void *sm)
{
	free(sm);
}

static int reply_value(const struct counter *c, uint8_t *reply, uint32_t cap)
{
	if (cap < 8)
		return -BPX_ETOOBIG;
	for (int i = 0; i < 8; i++)
		reply[i] = (uint8_t)(c->value >> (8 * i));
	return 8;
}

static bool is_read(const uint8_t *cmd, uint32_t len)
{
	return len == 1 && cmd[0] == '?';
}

static int counter_apply(void *sm, const uint8_t *cmd, uint32_t len,
			 uint8_t *reply, uint32_t cap)
{
	struct counter *c = sm;
	if (!is_read(cmd, len))
		c->value++;
	return reply_value(c, reply, cap);
}

static int counter_read(void *sm, const uint8_t *cmd, uint32_t len,
			uint8_t *reply, uint32_t cap)
{
	if (!is_read(cmd, len))
		return -BPX_EINVAL;
	return reply_value(sm, reply, cap);
}

static size_t counter_snapshot_size(void *sm)
{
	(void)sm;
	return 8;
}

static int64_t counter_snapshot(void *sm, uint8_t *buf, size_t cap)
{
	if (cap < 8)
		return -BPX_ETOOBIG;
	memcpy(buf, &((struct counter *)sm)->value, 8);
	return 8;
}

static int counter_restore(void *sm, const uint8_t *buf, size_t len)
{
	if (len != 8)
		return -BPX_EMALFORMED;
	memcpy(&((struct counter *)sm)->value, buf, 8);
	return 0;
}

static uint64_t counter_digest(void *sm)
{
	return ((struct counter *)sm)->value * 0x9e3779b97f4a7c15ull;
}

static const struct bpx_sm_ops counter_ops = {
	.abi_version = BPX_SM_ABI_VERSION,
	.name = "counter",
	.create = counter_create,
	.destroy = counter_destroy,
	.apply = counter_apply,
	.read = counter_read,
	.snapshot_size = counter_snapshot_size,
	.snapshot = counter_snapshot,
	.restore = counter_restore,
	.digest = counter_digest,
};

__attribute__((visibility("default"))) const struct bpx_sm_ops *
bpx_sm_entry(void)
{
	return &counter_ops;
}
