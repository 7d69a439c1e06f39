/* Loading the replicated state machine: the built-in "kv", or any shared
 * object that exports bpx_sm_entry (sm.h) with an ABI version this build
 * accepts (BPX_SM_ABI_VERSION_MIN..BPX_SM_ABI_VERSION). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Version 3's incremental snapshot ops come all four or none (sm.h); a
 * part of them would be used as none, silently: refused instead. */
static bool snapshot_ops_partial(const struct bpx_sm_ops *ops)
{
	if (ops->abi_version < 3)
		return false;
	int n = (ops->snapshot_begin != NULL) + (ops->snapshot_step != NULL) +
		(ops->snapshot_write_frozen != NULL) +
		(ops->snapshot_end != NULL);
	return n != 0 && n != 4;
}

/* What dp_sm_load hands back for a .so: the library, and its ops brought
 * up to this build's struct. An older version's ops are shorter (version 1
 * ends at digest, version 2 at prefetch), so reading the .so's struct past
 * its end would read whatever follows it; the copy takes only the fields
 * that version has and leaves the later ones NULL. */
struct sm_so {
	void *dl;
	struct bpx_sm_ops ops;
};

static size_t ops_bytes_of_version(uint32_t version)
{
	if (version == 1)
		return offsetof(struct bpx_sm_ops, prefetch);
	if (version == 2)
		return offsetof(struct bpx_sm_ops, snapshot_begin);
	return sizeof(struct bpx_sm_ops);
}

static struct sm_so *sm_so_wrap(void *dl, const struct bpx_sm_ops *ops)
{
	struct sm_so *so = calloc(1, sizeof(*so));
	if (so == NULL)
		return NULL;
	so->dl = dl;
	memcpy(&so->ops, ops, ops_bytes_of_version(ops->abi_version));
	so->ops.abi_version = BPX_SM_ABI_VERSION;
	return so;
}

static bool abi_accepted(uint32_t version)
{
	return version >= BPX_SM_ABI_VERSION_MIN &&
	       version <= BPX_SM_ABI_VERSION;
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
	struct sm_so *so = NULL;
	if (entry == NULL || ops == NULL) {
		snprintf(err, err_len, "state machine '%s': no %s() returning "
			 "its ops", name, BPX_SM_ENTRY_SYMBOL);
	} else if (!abi_accepted(ops->abi_version)) {
		snprintf(err, err_len,
			 "state machine '%s': ABI version %u, "
			 "bypaxd needs %u..%u",
			 name, ops->abi_version, BPX_SM_ABI_VERSION_MIN,
			 BPX_SM_ABI_VERSION);
	} else if (missing != NULL) {
		snprintf(err, err_len, "state machine '%s': no %s operation",
			 name, missing);
	} else if (snapshot_ops_partial(ops)) {
		snprintf(err, err_len,
			 "state machine '%s': some of snapshot_begin, "
			 "snapshot_step, snapshot_write_frozen and "
			 "snapshot_end, not all four or none",
			 name);
	} else if ((so = sm_so_wrap(h, ops)) == NULL) {
		snprintf(err, err_len, "state machine '%s': out of memory",
			 name);
	} else {
		*dl_handle = so;
		return &so->ops;
	}
	dlclose(h);
	return NULL;
}

void dp_sm_unload(void *dl_handle)
{
	struct sm_so *so = dl_handle;
	if (so == NULL)
		return;
	dlclose(so->dl);
	free(so);
}
