/* Loading the replicated state machine: the built-in "kv", or any shared
 * object that exports bpx_sm_entry (sm.h) with a matching ABI version. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "bypax/kv.h"
#include "dp.h"

static const char *missing_op(const struct bpx_sm_ops *ops)
{
	if (ops->create == NULL)
		return "create";
	if (ops->destroy == NULL)
		return "destroy";
	if (ops->apply == NULL)
		return "apply";
	if (ops->read == NULL)
		return "read";
	if (ops->snapshot_size == NULL || ops->snapshot == NULL)
		return "snapshot";
	if (ops->restore == NULL)
		return "restore";
	if (ops->digest == NULL)
		return "digest";
	return NULL;
}

const struct bpx_sm_ops *dp_sm_load(const char *name, void **dl_handle,
				    char *err, size_t err_len)
{
	*dl_handle = NULL;
	if (strcmp(name, "kv") == 0)
		return bpx_kv_ops();
	if (strchr(name, '/') == NULL) {
		snprintf(err, err_len, "state machine '%s': not 'kv' and not a "
			 "path to a .so (use ./%s for a file here)", name, name);
		return NULL;
	}
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		snprintf(err, err_len, "state machine '%s': %s", name, dlerror());
		return NULL;
	}
	bpx_sm_entry_fn entry;
	void *sym = dlsym(h, BPX_SM_ENTRY_SYMBOL);
	memcpy(&entry, &sym, sizeof(entry));
	const struct bpx_sm_ops *ops = entry ? entry() : NULL;
	const char *missing = ops ? missing_op(ops) : NULL;
	if (entry == NULL || ops == NULL) {
		snprintf(err, err_len, "state machine '%s': no %s() returning "
			 "its ops", name, BPX_SM_ENTRY_SYMBOL);
	} else if (ops->abi_version != BPX_SM_ABI_VERSION) {
		snprintf(err, err_len, "state machine '%s': ABI version %u, "
			 "bypaxd needs %u", name, ops->abi_version,
			 BPX_SM_ABI_VERSION);
	} else if (missing != NULL) {
		snprintf(err, err_len, "state machine '%s': no %s operation",
			 name, missing);
	} else {
		*dl_handle = h;
		return ops;
	}
	dlclose(h);
	return NULL;
}

void dp_sm_unload(void *dl_handle)
{
	if (dl_handle != NULL)
		dlclose(dl_handle);
}
