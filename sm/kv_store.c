/* The KV store's index and chunk arena (kv_store.h says why they are shaped
 * so). Nothing here allocates after kv_store_init. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "kv_store.h"

/* Fixed hash seeds, never taken from the environment: every replica must
 * hash alike. Unkeyed, so crafted keys can lengthen probe chains; the fixed
 * capacity bounds how far. */
#define KV_SEED_KEY 0x243f6a8885a308d3ull
#define KV_SEED_ENTRY 0x13198a2e03707344ull
#define KV_HASH_STEP 0x9e3779b97f4a7c15ull

/* Slots kv_store_prefetch_entry looks along: at 80 % load most keys sit
 * within a few of home, and a miss costs only a prefetch not taken. */
#define KV_PREFETCH_PROBE_SLOTS 4u

/* The first chunk's header, in its bytes[] (kv_store.h). */
#define HEAD_VALUE_LEN_OFFSET 0u
#define HEAD_KEY_LEN_OFFSET 2u
#define HEAD_HASH_OFFSET 4u
#define HEAD_DATA_OFFSET 12u

_Static_assert(sizeof(struct kv_chunk) == KV_CHUNK_BYTES, "chunk size");
_Static_assert(sizeof(struct kv_slot) == 8, "slot size");
_Static_assert(HEAD_DATA_OFFSET + KV_CHUNK_FIRST_DATA_BYTES ==
		       sizeof(((struct kv_chunk *)0)->bytes),
	       "first chunk layout");
_Static_assert(KV_CHUNK_NEXT_DATA_BYTES ==
		       sizeof(((struct kv_chunk *)0)->bytes),
	       "further chunk layout");

uint64_t kv_load_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	KV_ASSERT(n <= 8);
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* murmur3's fmix64: a bijection in which every input bit flips about half
 * the output bits. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Folds len bytes into h a word at a time. The length goes in first, so
 * "a" and "a\0" differ, and a key/value boundary cannot move unnoticed. */
static uint64_t hash_bytes(uint64_t h, const uint8_t *p, size_t len)
{
	h = mix64(h ^ (uint64_t)len) + KV_HASH_STEP;
	for (; len >= 8; p += 8, len -= 8)
		h = mix64(h ^ kv_load_le(p, 8)) + KV_HASH_STEP;
	if (len > 0)
		h = mix64(h ^ kv_load_le(p, len)) + KV_HASH_STEP;
	return mix64(h);
}

uint64_t kv_key_hash(const uint8_t *key, uint8_t key_len)
{
	return hash_bytes(KV_SEED_KEY, key, key_len);
}

/* Hashes the value on from the key's hash, which already covers the key
 * and its length: distinct (key, value) pairs differ w.h.p., and neither
 * is read twice. */
uint64_t kv_entry_hash(uint64_t key_hash, const uint8_t *value,
		       uint16_t value_len)
{
	return hash_bytes(key_hash ^ KV_SEED_ENTRY, value, value_len);
}

uint64_t kv_entry_hash_v1(const uint8_t *key, uint8_t key_len,
			  const uint8_t *value, uint16_t value_len)
{
	uint64_t h = hash_bytes(KV_SEED_ENTRY, key, key_len);
	return hash_bytes(h, value, value_len);
}

/* ---- Sizes ---- */

/* Above 1.25 x capacity: the index stays under 80 % full, so linear
 * probes stay short, and a probe always meets an empty slot. */
uint32_t kv_slot_count_for(uint32_t capacity)
{
	uint64_t n = (uint64_t)capacity + capacity / 4 + 1;
	KV_ASSERT(n < UINT32_MAX);
	return (uint32_t)n;
}

uint32_t kv_chunks_for(uint32_t data_bytes)
{
	if (data_bytes <= KV_CHUNK_FIRST_DATA_BYTES)
		return 1;
	uint32_t more = data_bytes - KV_CHUNK_FIRST_DATA_BYTES;
	return 1 +
	       (more + KV_CHUNK_NEXT_DATA_BYTES - 1) / KV_CHUNK_NEXT_DATA_BYTES;
}

/* Anonymous, zeroed memory: untouched pages cost nothing until bypaxd's
 * mlockall faults them in, all at start. */
static void *map_zeroed(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_HUGEPAGE
	/* Transparent hugepages where the kernel offers them (its "madvise"
	 * mode): probes land anywhere in the index and the arena, and a 2 MiB
	 * TLB entry covers 512 times what a 4 KiB one does. Best effort; the
	 * EAL's reserved hugepages are left to DPDK. */
	(void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
	return p;
}

/* ---- The copy-on-write image's memory ---- */

/* Address space only: PROT_NONE, so mlockall neither faults it in nor
 * locks it in RAM (Linux populates no inaccessible mapping), and no swap
 * is reserved for it. kv_store_image_open makes it usable. */
void *kv_store_image_reserve(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_NOHUGEPAGE
	/* Small pages: a step faults in 4 KiB at a time, never a 2 MiB page
	 * zeroed in one go on the worker. */
	(void)madvise(p, bytes, MADV_NOHUGEPAGE);
#endif
	return p;
}

/* Unlocked first: under bypaxd's mlockall(MCL_FUTURE) the mapping is
 * marked locked, and making a locked mapping writable would fault in all
 * of it at once, the stall this image exists to avoid. Pages then fault
 * in as the copy reaches them. False when the kernel refuses (strict
 * overcommit, vm.overcommit_memory = 2, charges a writable mapping now). */
bool kv_store_image_open(void *p, size_t bytes)
{
	(void)munlock(p, bytes);
	return mprotect(p, bytes, PROT_READ | PROT_WRITE) == 0;
}

/* Gives the pages back (resident memory falls to what it was before the
 * snapshot) and the address space stays reserved. A fresh PROT_NONE
 * mapping over it, not mprotect: under strict overcommit Linux keeps a
 * mapping's commit charge when it is made unwritable again, so the host
 * would hold the copy's memory charged for good after one snapshot. */
void kv_store_image_close(void *p, size_t bytes)
{
	void *q = mmap(p, bytes, PROT_NONE,
		       MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	KV_ASSERT(q == p);
#ifdef MADV_NOHUGEPAGE
	(void)madvise(p, bytes, MADV_NOHUGEPAGE); /* a new mapping: again */
#endif
}

static void cow_destroy(struct kv_store *s)
{
	struct kv_cow *c = &s->cow;
	if (c->slot_image != NULL)
		munmap(c->slot_image, s->slots_map_bytes);
	if (c->chunk_image != NULL)
		munmap(c->chunk_image, s->chunks_map_bytes);
	free(c->slot_piece_copied);
	free(c->chunk_piece_copied);
	memset(c, 0, sizeof *c);
}

static uint32_t pieces_for(uint64_t items, uint32_t per_piece)
{
	return (uint32_t)((items + per_piece - 1) / per_piece);
}

static bool cow_init(struct kv_store *s)
{
	struct kv_cow *c = &s->cow;
	c->slot_image = kv_store_image_reserve(s->slots_map_bytes);
	c->chunk_image = kv_store_image_reserve(s->chunks_map_bytes);
	c->slot_piece_copied =
		calloc(pieces_for(s->slot_count, KV_COW_SLOTS_PER_PIECE), 1);
	c->chunk_piece_copied = calloc(pieces_for((uint64_t)s->chunk_count + 1,
						  KV_COW_CHUNKS_PER_PIECE),
				       1);
	return c->slot_image != NULL && c->chunk_image != NULL &&
	       c->slot_piece_copied != NULL && c->chunk_piece_copied != NULL;
}

void kv_store_destroy(struct kv_store *s)
{
	cow_destroy(s);
	if (s->slots != NULL)
		munmap(s->slots, s->slots_map_bytes);
	if (s->chunks != NULL)
		munmap(s->chunks, s->chunks_map_bytes);
	s->slots = NULL;
	s->chunks = NULL;
}

bool kv_store_init(struct kv_store *s, uint32_t capacity, uint32_t chunk_count)
{
	KV_ASSERT(capacity >= 1 && chunk_count >= 1);
	KV_ASSERT(chunk_count < UINT32_MAX); /* ids 1..chunk_count fit */
	memset(s, 0, sizeof *s);
	s->slot_count = kv_slot_count_for(capacity);
	s->slots_map_bytes = (size_t)s->slot_count * sizeof(struct kv_slot);
	/* Chunk 0 is KV_NO_CHUNK, mapped but never used. */
	s->chunks_map_bytes =
		((size_t)chunk_count + 1) * sizeof(struct kv_chunk);
	s->slots = map_zeroed(s->slots_map_bytes);
	s->chunks = map_zeroed(s->chunks_map_bytes);
	s->capacity = capacity;
	s->chunk_count = chunk_count;
	s->chunk_bump = 1;
	/* cow_init sizes its flags from chunk_count, set above. */
	if (s->slots == NULL || s->chunks == NULL || !cow_init(s)) {
		kv_store_destroy(s);
		return false;
	}
	return true;
}

void kv_store_clear(struct kv_store *s)
{
	/* A copy in progress would take the cleared store for the old one;
	 * a complete image is separate memory and stays as it is. */
	KV_ASSERT(!s->cow.copying);
	memset(s->slots, 0, s->slots_map_bytes);
	s->count = 0;
	s->chunks_used = 0;
	s->chunk_bump = 1;
	s->free_head = KV_NO_CHUNK;
	s->data_bytes = 0;
	s->digest = 0;
}

/* ---- Copy-on-write: the hooks every write site calls first ---- */

static void cow_piece_done(struct kv_cow *c, uint8_t *flag)
{
	*flag = 1;
	KV_ASSERT(c->pieces_left > 0);
	if (--c->pieces_left == 0)
		c->copying = false;
}

static void cow_copy_slot_piece(struct kv_store *s, uint32_t piece)
{
	struct kv_cow *c = &s->cow;
	KV_ASSERT(piece < c->slot_piece_count);
	if (c->slot_piece_copied[piece])
		return;
	uint32_t first = piece * KV_COW_SLOTS_PER_PIECE;
	uint32_t n = s->slot_count - first < KV_COW_SLOTS_PER_PIECE ?
			     s->slot_count - first :
			     KV_COW_SLOTS_PER_PIECE;
	memcpy(c->slot_image + first, s->slots + first,
	       (size_t)n * sizeof(struct kv_slot));
	cow_piece_done(c, &c->slot_piece_copied[piece]);
}

/* Pieces of the arena up to the bump of begin: no chunk at or above it
 * belonged to the frozen store. */
static void cow_copy_chunk_piece(struct kv_store *s, uint32_t piece,
				 uint32_t frozen_bump)
{
	struct kv_cow *c = &s->cow;
	KV_ASSERT(piece < c->chunk_piece_count);
	if (c->chunk_piece_copied[piece])
		return;
	uint32_t first = piece * KV_COW_CHUNKS_PER_PIECE;
	uint32_t n = frozen_bump - first < KV_COW_CHUNKS_PER_PIECE ?
			     frozen_bump - first :
			     KV_COW_CHUNKS_PER_PIECE;
	memcpy(c->chunk_image + first, s->chunks + first,
	       (size_t)n * sizeof(struct kv_chunk));
	cow_piece_done(c, &c->chunk_piece_copied[piece]);
}

static void cow_slot_slow(struct kv_store *s, uint32_t i)
{
	uint32_t piece = i / KV_COW_SLOTS_PER_PIECE;
	if (!s->cow.slot_piece_copied[piece]) {
		s->cow.pieces_copied_on_write++;
		cow_copy_slot_piece(s, piece);
	}
}

static void cow_chunk_slow(struct kv_store *s, uint32_t id)
{
	uint32_t piece = id / KV_COW_CHUNKS_PER_PIECE;
	if (piece < s->cow.chunk_piece_count &&
	    !s->cow.chunk_piece_copied[piece]) {
		s->cow.pieces_copied_on_write++;
		cow_copy_chunk_piece(s, piece, s->cow.frozen_chunk_bump);
	}
}

/* Before any write to index slot i or to chunk id: when no snapshot is
 * copying, one branch that is always predicted. */
static inline void cow_slot(struct kv_store *s, uint32_t i)
{
	if (__builtin_expect(s->cow.copying, 0))
		cow_slot_slow(s, i);
}

static inline void cow_chunk(struct kv_store *s, uint32_t id)
{
	if (__builtin_expect(s->cow.copying, 0))
		cow_chunk_slow(s, id);
}

bool kv_store_cow_begin(struct kv_store *s, struct kv_store *frozen)
{
	struct kv_cow *c = &s->cow;
	KV_ASSERT(!c->in_progress);
	if (!kv_store_image_open(c->slot_image, s->slots_map_bytes))
		return false;
	if (!kv_store_image_open(c->chunk_image, s->chunks_map_bytes)) {
		kv_store_image_close(c->slot_image, s->slots_map_bytes);
		return false;
	}
	c->slot_piece_count = pieces_for(s->slot_count, KV_COW_SLOTS_PER_PIECE);
	c->chunk_piece_count =
		pieces_for(s->chunk_bump, KV_COW_CHUNKS_PER_PIECE);
	c->frozen_chunk_bump = s->chunk_bump;
	memset(c->slot_piece_copied, 0, c->slot_piece_count);
	memset(c->chunk_piece_copied, 0, c->chunk_piece_count);
	c->next_piece = 0;
	c->pieces_left = c->slot_piece_count + c->chunk_piece_count;
	c->in_progress = true;
	c->copying = c->pieces_left > 0;
	*frozen = *s;
	frozen->slots = c->slot_image;
	frozen->chunks = c->chunk_image;
	memset(&frozen->cow, 0, sizeof frozen->cow);
	return true;
}

bool kv_store_cow_step(struct kv_store *s, size_t budget_bytes)
{
	struct kv_cow *c = &s->cow;
	KV_ASSERT(c->in_progress);
	size_t spent = 0;
	while (c->copying && spent < budget_bytes) {
		uint32_t p = c->next_piece++;
		if (p < c->slot_piece_count) {
			if (!c->slot_piece_copied[p]) {
				cow_copy_slot_piece(s, p);
				c->pieces_copied_by_step++;
				spent += KV_COW_PIECE_BYTES;
			}
			continue;
		}
		p -= c->slot_piece_count;
		KV_ASSERT(p < c->chunk_piece_count);
		if (!c->chunk_piece_copied[p]) {
			cow_copy_chunk_piece(s, p, c->frozen_chunk_bump);
			c->pieces_copied_by_step++;
			spent += KV_COW_PIECE_BYTES;
		}
	}
	return !c->copying;
}

void kv_store_cow_release_image(const struct kv_store *s)
{
	const struct kv_cow *c = &s->cow;
	KV_ASSERT(c->in_progress && !c->copying);
	kv_store_image_close(c->slot_image, s->slots_map_bytes);
	kv_store_image_close(c->chunk_image, s->chunks_map_bytes);
}

void kv_store_cow_end(struct kv_store *s, bool image_released)
{
	struct kv_cow *c = &s->cow;
	if (!c->in_progress)
		return;
	if (!image_released) {
		kv_store_image_close(c->slot_image, s->slots_map_bytes);
		kv_store_image_close(c->chunk_image, s->chunks_map_bytes);
	}
	c->in_progress = false;
	c->copying = false;
	c->pieces_left = 0;
}

/* ---- A first chunk's header ---- */

static uint8_t *head_bytes(const struct kv_store *s, uint32_t head)
{
	KV_ASSERT(head != KV_NO_CHUNK && head < s->chunk_bump);
	return s->chunks[head].bytes;
}

uint8_t kv_entry_key_len(const struct kv_store *s, uint32_t head)
{
	return head_bytes(s, head)[HEAD_KEY_LEN_OFFSET];
}

uint16_t kv_entry_value_len(const struct kv_store *s, uint32_t head)
{
	uint16_t v;
	memcpy(&v, head_bytes(s, head) + HEAD_VALUE_LEN_OFFSET, sizeof v);
	return v;
}

static uint64_t entry_hash_of(const struct kv_store *s, uint32_t head)
{
	uint64_t h;
	memcpy(&h, head_bytes(s, head) + HEAD_HASH_OFFSET, sizeof h);
	return h;
}

static void head_set(struct kv_store *s, uint32_t head, uint8_t key_len,
		     uint16_t value_len, uint64_t entry_hash)
{
#ifndef KV_TEST_PLANT_NO_COW_HEAD
	/* The planted bug of test kv_cow_store_plant leaves this write
	 * uncopied: a PUT of an empty value over a live key writes only the
	 * head, which test kv_cow's serialized comparison cannot see. */
	cow_chunk(s, head);
#endif
	uint8_t *b = head_bytes(s, head);
	memcpy(b + HEAD_VALUE_LEN_OFFSET, &value_len, sizeof value_len);
	b[HEAD_KEY_LEN_OFFSET] = key_len;
	b[HEAD_KEY_LEN_OFFSET + 1] = 0;
	memcpy(b + HEAD_HASH_OFFSET, &entry_hash, sizeof entry_hash);
}

static uint32_t entry_chunks(const struct kv_store *s, uint32_t head)
{
	return kv_chunks_for((uint32_t)kv_entry_key_len(s, head) +
			     kv_entry_value_len(s, head));
}

/* ---- Walking an entry's bytes (key then value) across its chunks ---- */

struct kv_cursor {
	const struct kv_store *s;
	uint32_t chunk;
	uint8_t *p;
	uint32_t room; /* bytes left in this chunk */
};

static struct kv_cursor cursor_at(const struct kv_store *s, uint32_t head)
{
	return (struct kv_cursor){ .s = s,
				   .chunk = head,
				   .p = head_bytes(s, head) + HEAD_DATA_OFFSET,
				   .room = KV_CHUNK_FIRST_DATA_BYTES };
}

/* How many of the next n bytes lie together, moving to the next chunk
 * first if this one is used up. */
static uint32_t cursor_span(struct kv_cursor *c, uint32_t n)
{
	if (c->room == 0) {
		c->chunk = c->s->chunks[c->chunk].next;
		KV_ASSERT(c->chunk != KV_NO_CHUNK);
		c->p = c->s->chunks[c->chunk].bytes;
		c->room = KV_CHUNK_NEXT_DATA_BYTES;
	}
	return n < c->room ? n : c->room;
}

static void cursor_step(struct kv_cursor *c, uint32_t m)
{
	c->p += m;
	c->room -= m;
}

static void cursor_write(struct kv_store *s, struct kv_cursor *c,
			 const uint8_t *src, uint32_t n)
{
	KV_ASSERT(c->s == s);
	while (n > 0) {
		uint32_t m = cursor_span(c, n);
		cow_chunk(s, c->chunk);
		memcpy(c->p, src, m);
		cursor_step(c, m);
		src += m;
		n -= m;
	}
}

static void cursor_read(struct kv_cursor *c, uint8_t *dst, uint32_t n)
{
	while (n > 0) {
		uint32_t m = cursor_span(c, n);
		memcpy(dst, c->p, m);
		cursor_step(c, m);
		dst += m;
		n -= m;
	}
}

static bool cursor_equals(struct kv_cursor *c, const uint8_t *src, uint32_t n)
{
	while (n > 0) {
		uint32_t m = cursor_span(c, n);
		if (memcmp(c->p, src, m) != 0)
			return false;
		cursor_step(c, m);
		src += m;
		n -= m;
	}
	return true;
}

static void cursor_skip(struct kv_cursor *c, uint32_t n)
{
	while (n > 0) {
		uint32_t m = cursor_span(c, n);
		cursor_step(c, m);
		n -= m;
	}
}

const uint8_t *kv_entry_key(const struct kv_store *s, uint32_t head,
			    uint8_t *tmp)
{
	uint8_t key_len = kv_entry_key_len(s, head);
	struct kv_cursor c = cursor_at(s, head);
	if (key_len <= KV_CHUNK_FIRST_DATA_BYTES)
		return c.p;
	cursor_read(&c, tmp, key_len);
	return tmp;
}

void kv_entry_copy_value(const struct kv_store *s, uint32_t head, uint8_t *dst)
{
	struct kv_cursor c = cursor_at(s, head);
	cursor_skip(&c, kv_entry_key_len(s, head));
	cursor_read(&c, dst, kv_entry_value_len(s, head));
}

bool kv_entry_value_equals(const struct kv_store *s, uint32_t head,
			   const uint8_t *value, uint16_t value_len)
{
	if (kv_entry_value_len(s, head) != value_len)
		return false;
	struct kv_cursor c = cursor_at(s, head);
	cursor_skip(&c, kv_entry_key_len(s, head));
	return cursor_equals(&c, value, value_len);
}

static bool entry_key_equals(const struct kv_store *s, uint32_t head,
			     const uint8_t *key, uint8_t key_len)
{
	if (kv_entry_key_len(s, head) != key_len)
		return false;
	struct kv_cursor c = cursor_at(s, head);
	return cursor_equals(&c, key, key_len);
}

/* ---- Chunks ---- */

/* A free chunk: one freed before, else one never used. The caller has
 * checked that the store has room (kv_store_fits). */
static uint32_t chunk_take(struct kv_store *s)
{
	KV_ASSERT(s->chunks_used < s->chunk_count);
	uint32_t id = s->free_head;
	if (id != KV_NO_CHUNK) {
		s->free_head = s->chunks[id].next;
	} else {
		KV_ASSERT(s->chunk_bump <= s->chunk_count);
		id = s->chunk_bump++;
	}
	s->chunks_used++;
	cow_chunk(s, id);
	s->chunks[id].next = KV_NO_CHUNK;
	return id;
}

/* Frees the chain from id on. */
static void chunks_release(struct kv_store *s, uint32_t id)
{
	while (id != KV_NO_CHUNK) {
		uint32_t next = s->chunks[id].next;
		KV_ASSERT(s->chunks_used > 0);
		cow_chunk(s, id);
		s->chunks[id].next = s->free_head;
		s->free_head = id;
		s->chunks_used--;
		id = next;
	}
}

/* Gives the chain at head new_n chunks instead of old_n, keeping the
 * first ones: a value rewritten at the same size moves no chunk. */
static void chain_resize(struct kv_store *s, uint32_t head, uint32_t old_n,
			 uint32_t new_n)
{
	KV_ASSERT(old_n >= 1 && new_n >= 1);
	uint32_t keep = old_n < new_n ? old_n : new_n;
	uint32_t last = head;
	for (uint32_t i = 1; i < keep; i++)
		last = s->chunks[last].next;
	if (new_n < old_n) {
		chunks_release(s, s->chunks[last].next);
		cow_chunk(s, last);
		s->chunks[last].next = KV_NO_CHUNK;
		return;
	}
	for (uint32_t i = old_n; i < new_n; i++) {
		uint32_t id = chunk_take(s);
		cow_chunk(s, last);
		s->chunks[last].next = id;
		last = id;
	}
}

/* ---- The index ---- */

static uint32_t home_slot(const struct kv_store *s, uint32_t tag)
{
	return (uint32_t)(((uint64_t)tag * s->slot_count) >> 32);
}

static uint32_t slot_next(const struct kv_store *s, uint32_t i)
{
	return i + 1 == s->slot_count ? 0 : i + 1;
}

/* Steps from slot `from` forward to slot `to`, wrapping. */
static uint32_t slot_distance(const struct kv_store *s, uint32_t from,
			      uint32_t to)
{
	return to >= from ? to - from : to + s->slot_count - from;
}

static uint32_t tag_of(uint64_t key_hash)
{
	return (uint32_t)(key_hash >> 32);
}

/* Ends because count <= capacity < slot_count leaves an empty slot. */
struct kv_find kv_store_find(const struct kv_store *s, const uint8_t *key,
			     uint8_t key_len)
{
	struct kv_find f = { .key_hash = kv_key_hash(key, key_len) };
	uint32_t tag = tag_of(f.key_hash);
	uint32_t i = home_slot(s, tag);
	for (uint32_t steps = 0;; steps++) {
		const struct kv_slot *slot = &s->slots[i];
		KV_ASSERT(steps < s->slot_count);
		if (slot->head == KV_NO_CHUNK)
			break;
		if (slot->tag == tag &&
		    entry_key_equals(s, slot->head, key, key_len)) {
			f.found = true;
			break;
		}
		i = slot_next(s, i);
	}
	f.slot = i;
	return f;
}

void kv_store_prefetch_slot(const struct kv_store *s, uint64_t key_hash)
{
	__builtin_prefetch(&s->slots[home_slot(s, tag_of(key_hash))], 1);
}

/* Looks a few slots along from home, in what kv_store_prefetch_slot
 * brought in, for the first whose tag matches, and starts loading that
 * entry's first chunk (both cache lines a 48-byte chunk may straddle). */
void kv_store_prefetch_entry(const struct kv_store *s, uint64_t key_hash)
{
	uint32_t tag = tag_of(key_hash);
	uint32_t i = home_slot(s, tag);
	for (uint32_t steps = 0; steps < KV_PREFETCH_PROBE_SLOTS; steps++) {
		const struct kv_slot *slot = &s->slots[i];
		if (slot->head == KV_NO_CHUNK)
			return;
		if (slot->tag == tag) {
			const char *c = (const char *)&s->chunks[slot->head];
			__builtin_prefetch(c, 1);
			__builtin_prefetch(c + KV_CHUNK_BYTES - 1, 1);
			return;
		}
		i = slot_next(s, i);
	}
}

bool kv_store_fits(const struct kv_store *s, const struct kv_find *f,
		   uint8_t key_len, uint16_t value_len)
{
	uint32_t need = kv_chunks_for((uint32_t)key_len + value_len);
	uint32_t have = 0;
	if (f->found)
		have = entry_chunks(s, s->slots[f->slot].head);
	else if (s->count == s->capacity)
		return false;
	return (uint64_t)s->chunks_used - have + need <= s->chunk_count;
}

void kv_store_put(struct kv_store *s, const struct kv_find *f,
		  const uint8_t *key, uint8_t key_len, const uint8_t *value,
		  uint16_t value_len)
{
	KV_ASSERT(kv_store_fits(s, f, key_len, value_len));
	uint32_t need = kv_chunks_for((uint32_t)key_len + value_len);
	struct kv_slot *slot = &s->slots[f->slot];
	uint32_t head = slot->head;
	if (f->found) {
		KV_ASSERT(kv_entry_key_len(s, head) == key_len);
		s->digest -= entry_hash_of(s, head);
		s->data_bytes -= kv_entry_value_len(s, head);
		chain_resize(s, head, entry_chunks(s, head), need);
	} else {
		KV_ASSERT(head == KV_NO_CHUNK);
		head = chunk_take(s);
		chain_resize(s, head, 1, need);
		cow_slot(s, f->slot);
		slot->tag = tag_of(f->key_hash);
		slot->head = head;
		s->count++;
		s->data_bytes += key_len;
	}
	struct kv_cursor c = cursor_at(s, head);
	if (f->found)
		cursor_skip(&c, key_len);
	else
		cursor_write(s, &c, key, key_len);
	cursor_write(s, &c, value, value_len);
	uint64_t h = kv_entry_hash(f->key_hash, value, value_len);
	head_set(s, head, key_len, value_len, h);
	s->digest += h;
	s->data_bytes += value_len;
	KV_ASSERT(s->count <= s->capacity && s->chunks_used <= s->chunk_count);
}

/* Backward-shift deletion (Knuth, TAOCP 6.4, Algorithm R): walk the cluster
 * after the hole and pull back every entry whose probe path crosses it, so
 * lookups that stop at the first empty slot still find every key. Slots
 * are 8 bytes, so a shift moves no key or value. */
void kv_store_remove(struct kv_store *s, uint32_t hole)
{
	uint32_t head = s->slots[hole].head;
	KV_ASSERT(head != KV_NO_CHUNK && s->count > 0);
	s->digest -= entry_hash_of(s, head);
	s->data_bytes -= (uint64_t)kv_entry_key_len(s, head) +
			 kv_entry_value_len(s, head);
	s->count--;
	chunks_release(s, head);

	uint32_t i = slot_next(s, hole);
	while (s->slots[i].head != KV_NO_CHUNK) {
		uint32_t home = home_slot(s, s->slots[i].tag);
		/* The hole lies on the path home..i iff it is no further
		 * back from i than home is. */
		if (slot_distance(s, home, i) >= slot_distance(s, hole, i)) {
#ifndef KV_TEST_PLANT_NO_COW_SHIFT
			/* The planted bug of test kv_cow_plant leaves this
			 * write uncopied. */
			cow_slot(s, hole);
#endif
			s->slots[hole] = s->slots[i];
			hole = i;
		}
		i = slot_next(s, i);
	}
	cow_slot(s, hole);
	s->slots[hole] = (struct kv_slot){ .tag = 0, .head = KV_NO_CHUNK };
}
