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

/* Version 2 added prefetch at the end of the ops. A .so built against
 * version 1 still loads (its ops end at digest; prefetch counts as NULL);
 * versions outside BPX_SM_ABI_VERSION_MIN..BPX_SM_ABI_VERSION are refused. */
#define BPX_SM_ABI_VERSION 2u
#define BPX_SM_ABI_VERSION_MIN 1u
/* The most commands one prefetch() call is handed. */
#define BPX_SM_PREFETCH_MAX 64u
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
	/* Optional (NULL: none); since ABI version 2, and only at the end so
	 * that version 1 ops stay a prefix of these.
	 * A hint, called before the commands cmds[0..n) (lens[i] bytes each,
	 * n <= BPX_SM_PREFETCH_MAX) are applied or read, in that order: the
	 * machine may load whatever memory they will touch so that its cache
	 * misses overlap. It must change no state, no later reply and no
	 * digest, allocate nothing, and accept any bytes (a malformed command
	 * is simply not prefetched). bypaxd calls it with the writes and reads
	 * of one or more committed slots (no session or configuration
	 * entries); some of them may then not be applied at all (a duplicate,
	 * an expired session), and a slot of more than BPX_SM_PREFETCH_MAX
	 * requests is prefetched only in part. */
	void (*prefetch)(void *sm, const uint8_t *const *cmds,
			 const uint32_t *lens, uint32_t n);
};

/* A loadable state machine exports this symbol (name BPX_SM_ENTRY_SYMBOL). */
typedef const struct bpx_sm_ops *(*bpx_sm_entry_fn)(void);
#define BPX_SM_ENTRY_SYMBOL "bpx_sm_entry"

#ifdef __cplusplus
}
#endif
#endif
