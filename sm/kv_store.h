/* The KV store's memory: a compact index over a chunk arena (sm/kv.c's
 * table; internal to sm/).
 *
 * The index is an open-addressing table of 8-byte slots (the top 32 bits
 * of the key's hash, and the entry's first chunk), linear probing, and
 * backward-shift deletion so there are no tombstones. It has capacity +
 * capacity / 4 + 1 slots, so it is under 80 % full and a probe always meets
 * an empty slot; a hash's home slot is (tag x slots) >> 32, which needs no
 * power of two and so wastes no index memory on rounding.
 *
 * Keys and values live in an arena of 48-byte chunks, chained: the first
 * chunk holds the lengths, the entry's digest share and 32 bytes of key then
 * value; each further chunk 44 more. All chunks are alike, so any free chunk
 * serves any entry, and whether an entry fits is a function of the store's
 * contents alone (chunks in use = the sum over entries of
 * kv_chunks_for(key + value)), never of the history that laid them out:
 * replicas that reached the same state by different roads (one of them
 * through a snapshot) answer the next PUT alike, FULL or OK. Freed chunks go
 * on a free list that the next entry takes first; nothing is ever
 * compacted, so no operation pauses for more than one entry's chunks.
 *
 * The digest is the wrapping sum of each entry's hash, which hashes the
 * value on from the key's hash: each command hashes its key once, and its
 * value once, and never re-reads a stored key or value for the digest.
 *
 * Everything is mapped in kv_store_init; nothing is allocated later.
 */
#ifndef BYPAX_SM_KV_STORE_H
#define BYPAX_SM_KV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Always on, for our own invariants only: bad input is a reply or an error
 * code, never an assertion. No message: the state machine does no I/O. */
#define KV_ASSERT(x)                                                           \
	do {                                                                   \
		if (!(x))                                                      \
			abort();                                               \
	} while (0)

#define KV_CHUNK_BYTES 48u
#define KV_CHUNK_FIRST_DATA_BYTES 32u /* key and value bytes, first chunk */
#define KV_CHUNK_NEXT_DATA_BYTES 44u  /* and in every further chunk */
#define KV_NO_CHUNK 0u		      /* chunk 0 is never used */

struct kv_slot {
	uint32_t tag;  /* the key hash's top 32 bits */
	uint32_t head; /* first chunk; KV_NO_CHUNK: the slot is empty */
};

/* First chunk: next, then bytes[0..2) value_len, [2] key_len, [3] unused,
 * [4..12) the entry's hash, [12..44) data. Further chunks: next, data. */
struct kv_chunk {
	uint32_t next; /* this entry's next chunk, KV_NO_CHUNK at its end */
	uint8_t bytes[KV_CHUNK_BYTES - 4];
};

/* Copy-on-write for snapshots taken off the fast path (kv_store_cow_*).
 * The image is a second index and arena, reserved (PROT_NONE, no swap
 * reserved, never locked) in kv_store_init and given back after each
 * snapshot, so it is resident only while one is in progress. Both are cut
 * into pieces of about a page, counted in whole slots and chunks so that
 * no entry straddles two: a piece is copied into the image once, either
 * before the first write to it after begin, or by a step. A page, not
 * more: the first write to a piece pays its copy and its page faults, and
 * with 64 KiB pieces a batch of 32 PUTs at 120k keys cost up to 1 ms
 * (bench/kv_snapshot.c), with 4 KiB about 0.2 ms. */
#define KV_COW_PIECE_BYTES 4096u
#define KV_COW_SLOTS_PER_PIECE (KV_COW_PIECE_BYTES / 8u)
#define KV_COW_CHUNKS_PER_PIECE (KV_COW_PIECE_BYTES / KV_CHUNK_BYTES)

struct kv_cow {
	struct kv_slot *slot_image;
	struct kv_chunk *chunk_image;
	uint8_t *slot_piece_copied;  /* a flag per index piece */
	uint8_t *chunk_piece_copied; /* a flag per arena piece */
	uint32_t slot_piece_count;   /* pieces of the index, all copied */
	uint32_t chunk_piece_count;  /* arena pieces below the frozen bump */
	uint32_t next_piece;	     /* the step's cursor: index, then arena */
	uint32_t pieces_left;	     /* not yet copied */
	uint32_t frozen_chunk_bump;  /* chunk_bump at begin */
	bool in_progress;	     /* between begin and end */
	/* The one branch a write pays: a copy is due before it. */
	bool copying;
	/* Counters, for the operator (never reset). */
	uint64_t pieces_copied_on_write;
	uint64_t pieces_copied_by_step;
};

struct kv_store {
	struct kv_slot *slots;
	struct kv_chunk *chunks; /* ids 1..chunk_count */
	size_t slots_map_bytes;
	size_t chunks_map_bytes;
	uint32_t slot_count;
	uint32_t capacity;    /* the most live keys */
	uint32_t count;	      /* live keys */
	uint32_t chunk_count; /* usable chunks */
	uint32_t chunks_used;
	uint32_t chunk_bump; /* the lowest id never handed out */
	uint32_t free_head;  /* chunks freed since, a list through next */
	uint64_t data_bytes; /* sum of key_len + value_len */
	uint64_t digest;
	struct kv_cow cow;
};

/* What one lookup found: the slot holding the key (found) or the empty slot
 * where it would go, and the key's hash for whatever follows. */
struct kv_find {
	uint64_t key_hash;
	uint32_t slot;
	bool found;
};

/* The index slots and arena bytes kv_store_init maps for these sizes. */
uint32_t kv_slot_count_for(uint32_t capacity);
uint32_t kv_chunks_for(uint32_t data_bytes);

/* Maps an empty store. Returns false when memory is short. */
bool kv_store_init(struct kv_store *s, uint32_t capacity, uint32_t chunk_count);
void kv_store_destroy(struct kv_store *s);
/* Empties the store (restore). */
void kv_store_clear(struct kv_store *s);

uint64_t kv_load_le(const uint8_t *p, size_t n);
uint64_t kv_key_hash(const uint8_t *key, uint8_t key_len);
/* An entry's share of the digest, from its key's hash and its value. */
uint64_t kv_entry_hash(uint64_t key_hash, const uint8_t *value,
		       uint16_t value_len);
/* The share as version 1 snapshots (before the compact store) summed it,
 * hashing the key again: restore() still checks their digests. */
uint64_t kv_entry_hash_v1(const uint8_t *key, uint8_t key_len,
			  const uint8_t *value, uint16_t value_len);

struct kv_find kv_store_find(const struct kv_store *s, const uint8_t *key,
			     uint8_t key_len);
/* Prefetch hints (they change nothing): a key's home slot, and, once that
 * has arrived, the entry a matching tag near it points to. */
void kv_store_prefetch_slot(const struct kv_store *s, uint64_t key_hash);
void kv_store_prefetch_entry(const struct kv_store *s, uint64_t key_hash);

/* Whether the store has room for key_len + value_len at f: a new key needs
 * a free key and its chunks, a live one the chunks its value grows by. */
bool kv_store_fits(const struct kv_store *s, const struct kv_find *f,
		   uint8_t key_len, uint16_t value_len);
/* Inserts at f (not found) or replaces the value at f (found). The caller
 * has checked kv_store_fits. */
void kv_store_put(struct kv_store *s, const struct kv_find *f,
		  const uint8_t *key, uint8_t key_len, const uint8_t *value,
		  uint16_t value_len);
void kv_store_remove(struct kv_store *s, uint32_t slot);

/* ---- A frozen image, copied incrementally ----
 *
 * kv_store_cow_begin records the store as it is now and returns a view of
 * it (*frozen: the header fields of now over the image's memory). From
 * then on every write copies the piece it lands in first, if it has not
 * been copied, and kv_store_cow_step copies pieces up to budget_bytes
 * each call. Once a step has returned true the image is the store as it
 * was at begin: *frozen may be read (with the kv_entry_* readers, from any
 * one thread) while the live store carries on, until kv_store_cow_end
 * gives the image's memory back. Nothing allocates. */
/* False (nothing begun) when the kernel refuses the image its memory. */
bool kv_store_cow_begin(struct kv_store *s, struct kv_store *frozen);
/* Returns true once every piece is copied (and on every call after). */
bool kv_store_cow_step(struct kv_store *s, size_t budget_bytes);
/* Gives the image's pages back, from the thread that read *frozen, once
 * it is done with it: the owner then ends without that cost. Writes no
 * field of s. */
void kv_store_cow_release_image(const struct kv_store *s);
/* Ends a snapshot, complete or not (also before kv_store_clear); the
 * image's pages too, unless kv_store_cow_release_image gave them back. */
void kv_store_cow_end(struct kv_store *s, bool image_released);
/* The image's kind of memory, for other scratch that only a snapshot in
 * progress needs (kv.c's sort order): reserved, made usable, given back. */
void *kv_store_image_reserve(size_t bytes);
bool kv_store_image_open(void *p, size_t bytes);
void kv_store_image_close(void *p, size_t bytes);

/* An entry, named by its first chunk (a slot's head). */
uint8_t kv_entry_key_len(const struct kv_store *s, uint32_t head);
uint16_t kv_entry_value_len(const struct kv_store *s, uint32_t head);
/* The key, contiguous: in the chunk, or copied into tmp (64 bytes). */
const uint8_t *kv_entry_key(const struct kv_store *s, uint32_t head,
			    uint8_t *tmp);
void kv_entry_copy_value(const struct kv_store *s, uint32_t head, uint8_t *dst);
bool kv_entry_value_equals(const struct kv_store *s, uint32_t head,
			   const uint8_t *value, uint16_t value_len);

#endif
