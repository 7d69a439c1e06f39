/* The replicated state machine interface.
 *
 * A state machine is a deterministic function of the commands applied to it,
 * in log order. The built-in key-value store implements it (see kv.h); any
 * shared object may too, by exporting `bpx_sm_entry` that returns its ops.
 *
 * Rules every implementation keeps:
 *  - apply() is deterministic: same state and command, same new state and
 *    reply, on every replica. No clocks, no randomness, no I/O.
 *  - apply() and read() never allocate; memory is taken in create().
 *  - snapshot()/restore() round-trip the whole state exactly, and digest()
 *    is equal on two instances iff (with high probability) their states are.
 */
#ifndef BYPAX_SM_H
#define BYPAX_SM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BPX_SM_ABI_VERSION 1u
/* The largest reply any state machine may produce (fits one frame). */
#define BPX_SM_REPLY_BYTES_MAX 1100u

struct bpx_sm_ops {
	uint32_t abi_version; /* BPX_SM_ABI_VERSION */
	const char *name;
	/* Creates an instance. args is an implementation-defined string
	 * ("capacity=1024"), or NULL for defaults. Returns NULL on a bad
	 * argument or when memory is short. */
	void *(*create)(const char *args);
	void (*destroy)(void *sm);
	/* Applies one command. Writes the reply to reply[0..reply_cap) and
	 * returns its length (>= 0). A command the machine rejects (malformed,
	 * full) still returns a reply that says so: apply never fails, so every
	 * replica stays identical. */
	int (*apply)(void *sm, const uint8_t *cmd, uint32_t cmd_len,
		     uint8_t *reply, uint32_t reply_cap);
	/* Answers a read-only command without changing state, as apply would.
	 * Returns the reply length, or -BPX_EINVAL if cmd is not read-only. */
	int (*read)(void *sm, const uint8_t *cmd, uint32_t cmd_len,
		    uint8_t *reply, uint32_t reply_cap);
	/* Bytes that snapshot() needs now. */
	size_t (*snapshot_size)(void *sm);
	/* Writes the whole state into buf. Returns bytes written, or
	 * -BPX_ETOOBIG if cap is short. */
	int64_t (*snapshot)(void *sm, uint8_t *buf, size_t cap);
	/* Replaces the state with a snapshot. Returns 0, or -BPX_EMALFORMED
	 * (state unchanged) when buf is not a valid snapshot. */
	int (*restore)(void *sm, const uint8_t *buf, size_t len);
	/* An order-independent digest of the whole state. */
	uint64_t (*digest)(void *sm);
};

/* A loadable state machine exports this symbol (name BPX_SM_ENTRY_SYMBOL). */
typedef const struct bpx_sm_ops *(*bpx_sm_entry_fn)(void);
#define BPX_SM_ENTRY_SYMBOL "bpx_sm_entry"

#ifdef __cplusplus
}
#endif
#endif
