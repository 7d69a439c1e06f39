/* A state machine .so with the wrong ABI version: bypaxd must refuse it
 * with a clear error. */
#include "bypax/sm.h"

static const struct bpx_sm_ops bad_ops = {
	.abi_version = BPX_SM_ABI_VERSION + 99,
	.name = "bad-abi",
};

__attribute__((visibility("default"))) const struct bpx_sm_ops *
bpx_sm_entry(void)
{
	return &bad_ops;
}
