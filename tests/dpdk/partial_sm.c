/* A state machine .so of ABI version 3 with only some of the incremental
 * snapshot ops (the built-in KV store's, snapshot_step left out): sm.h
 * says all four or none, and bypaxd must refuse it by name rather than
 * use it as none. */
#include "bypax/kv.h"
#include "bypax/sm.h"

static struct bpx_sm_ops partial;

__attribute__((visibility("default"))) const struct bpx_sm_ops *
bpx_sm_entry(void)
{
	partial = *bpx_kv_ops();
	partial.name = "kv-partial";
	partial.snapshot_step = NULL;
	return &partial;
}
