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
 *  - snapshot() is deterministic too: equal states, equal bytes (replicas
 *    compare and exchange them).
 *  - Optionally (ABI version 3), a snapshot taken incrementally: the state
 *    frozen at snapshot_begin, copied a bounded step at a time while
 *    apply() carries on, then written by another thread from the frozen
 *    copy alone (snapshot_begin below). bypaxd's disk snapshots use it, so
 *    the worker never serializes the whole state; without it they fall
 *    back to snapshot() on the worker.
 */
#ifndef BYPAX_SM_H
#define BYPAX_SM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version 2 added prefetch at the end of the ops, version 3 the
 * incremental snapshot ops after it. A .so built against version 1 or 2
 * still loads (its ops end at digest or at prefetch; the later ones count
 * as NULL); versions outside BPX_SM_ABI_VERSION_MIN..BPX_SM_ABI_VERSION are
 * refused. */
#define BPX_SM_ABI_VERSION 3u
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
	/* Optional, all four or none (NULL: snapshot() alone); since ABI
	 * version 3, at the end. An incremental snapshot:
	 *  - snapshot_begin freezes the state as it is now and returns the
	 *    bytes snapshot_write_frozen will write (what snapshot_size
	 *    says now), -BPX_EBUSY while one is in progress, or
	 *    -BPX_ENOMEM when it cannot have the memory for the copy now
	 *    (nothing begun: the caller may take snapshot() instead). It
	 *    copies none of the state: it runs on the thread that applies.
	 *  - apply() goes on as before meanwhile: it copies what it is about
	 *    to overwrite first (copy-on-write), still deterministic and
	 *    allocating nothing. restore() ends a snapshot still copying (the
	 *    next snapshot_step then returns -BPX_EINVAL); a complete one is
	 *    left to its reader.
	 *  - snapshot_step copies about budget_bytes more of the frozen state
	 *    (at least one piece) and returns 1 once all of it is copied, 0
	 *    while more remains, -BPX_EINVAL when no snapshot is in
	 *    progress. Called on the thread that applies.
	 *  - Once a step has returned 1, snapshot_write_frozen may be called
	 *    from any one other thread, concurrently with apply(), read(),
	 *    snapshot() and restore() on the owner's: it reads only the
	 *    frozen copy and writes into buf exactly the bytes snapshot()
	 *    would have written at begin. Returns them, or -BPX_ETOOBIG.
	 *    Once it has succeeded it is not called again for this snapshot,
	 *    so it may give the frozen copy's memory back itself, off the
	 *    owner's thread (the built-in store does).
	 *  - snapshot_end, on the owner's thread after the writer is done
	 *    (or to give up), frees the copy; memory taken by the copy is
	 *    given back, so it costs memory only while a snapshot is in
	 *    progress. A no-op when none is. */
	int64_t (*snapshot_begin)(void *sm);
	int (*snapshot_step)(void *sm, size_t budget_bytes);
	int64_t (*snapshot_write_frozen)(void *sm, uint8_t *buf, size_t cap);
	void (*snapshot_end)(void *sm);
};

/* A loadable state machine exports this symbol (name BPX_SM_ENTRY_SYMBOL). */
typedef const struct bpx_sm_ops *(*bpx_sm_entry_fn)(void);
#define BPX_SM_ENTRY_SYMBOL "bpx_sm_entry"

#ifdef __cplusplus
}
#endif
#endif
