/* Review of the KV store's copy-on-write image (sm/kv_store.c,
 * kv_store_cow_*), one level below test_kv_cow.c: not the serialized
 * snapshot but the image itself. After begin, the frozen view's index
 * and every chunk below the frozen bump must be, byte for byte, what the
 * live store held at begin, whatever writes ran among the steps: puts of
 * new keys, overwrites that grow and shrink chains, deletes that shift
 * the index back (also across its wrap-around), chunks taken from the
 * free list and from the bump, and a store run up to FULL. A write site
 * that skipped its copy shows here even where it would not change the
 * serialized bytes (the free list, a chunk's unused tail).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_store.h"

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* One shape of store and traffic. */
struct shape {
	const char *name;
	uint32_t capacity;
	uint32_t chunk_count;
	uint32_t key_space;  /* distinct keys the traffic uses */
	uint32_t value_max;  /* values of 0..value_max bytes */
	unsigned delete_pct; /* of commands */
	unsigned fill_cmds;  /* before the first begin */
	unsigned cmds_max;   /* between two steps, 0..cmds_max */
	uint32_t budget_max; /* step budgets of 1..budget_max bytes */
	unsigned snapshots;  /* begin..end rounds on one store */
};

/* Key id -> bytes: lengths 1..64, so keys longer than a first chunk's 32
 * data bytes span chunks. */
static uint8_t make_key(uint32_t id, uint8_t *key)
{
	uint8_t len = (uint8_t)(1 + (id * 2654435761u >> 7) % 64);
	for (uint8_t i = 0; i < len; i++)
		key[i] = (uint8_t)(id >> (8 * (i % 4))) ^ (uint8_t)(i * 29);
	key[0] = (uint8_t)id;
	return len;
}

/* A random PUT (new key, or an overwrite growing or shrinking the chain)
 * or DELETE, applied the way kv.c does: find, fits, put / remove. */
static void random_command(struct kv_store *s, const struct shape *sh,
			   uint64_t *rng)
{
	uint8_t key[64], value[1024];
	uint64_t r = splitmix64(rng);
	uint8_t key_len = make_key((uint32_t)(r % sh->key_space), key);
	struct kv_find f = kv_store_find(s, key, key_len);
	if ((r >> 32) % 100 < sh->delete_pct) {
		if (f.found)
			kv_store_remove(s, f.slot);
		return;
	}
	uint64_t r2 = splitmix64(rng);
	uint16_t value_len = (uint16_t)(r2 % (sh->value_max + 1));
	memset(value, (int)(r2 >> 40), value_len);
	for (uint16_t i = 0; i < value_len; i += 7)
		value[i] = (uint8_t)(r2 >> (i % 56));
	if (kv_store_fits(s, &f, key_len, value_len))
		kv_store_put(s, &f, key, key_len, value, value_len);
}

/* The live store at begin, kept aside to compare the image with. */
struct saved {
	struct kv_slot *slots;
	struct kv_chunk *chunks;
	struct kv_store header;
};

static void save(const struct kv_store *s, struct saved *v)
{
	v->header = *s;
	v->slots = malloc(s->slots_map_bytes);
	v->chunks = malloc((size_t)s->chunk_bump * sizeof(struct kv_chunk));
	assert_non_null(v->slots);
	assert_non_null(v->chunks);
	memcpy(v->slots, s->slots, s->slots_map_bytes);
	memcpy(v->chunks, s->chunks,
	       (size_t)s->chunk_bump * sizeof(struct kv_chunk));
}

static void expect_image_is_saved(const struct kv_store *frozen,
				  const struct saved *v, const char *name,
				  unsigned round)
{
	const struct kv_store *h = &v->header;
	assert_int_equal(frozen->count, h->count);
	assert_int_equal(frozen->chunk_bump, h->chunk_bump);
	assert_int_equal(frozen->free_head, h->free_head);
	assert_int_equal(frozen->chunks_used, h->chunks_used);
	assert_true(frozen->digest == h->digest);
	assert_true(frozen->data_bytes == h->data_bytes);
	for (uint32_t i = 0; i < h->slot_count; i++)
		if (memcmp(&frozen->slots[i], &v->slots[i],
			   sizeof(struct kv_slot)) != 0)
			fail_msg("%s, round %u: image slot %u of %u differs "
				 "from the store at begin",
				 name, round, i, h->slot_count);
	for (uint32_t id = 0; id < h->chunk_bump; id++)
		if (memcmp(&frozen->chunks[id], &v->chunks[id],
			   sizeof(struct kv_chunk)) != 0)
			fail_msg(
				"%s, round %u: image chunk %u of %u (piece %u) "
				"differs from the store at begin",
				name, round, id, h->chunk_bump,
				id / KV_COW_CHUNKS_PER_PIECE);
}

static void run_shape(const struct shape *sh, uint64_t seed)
{
	struct kv_store s, frozen;
	uint64_t rng = seed;
	assert_true(kv_store_init(&s, sh->capacity, sh->chunk_count));
	for (unsigned i = 0; i < sh->fill_cmds; i++)
		random_command(&s, sh, &rng);
	for (unsigned round = 0; round < sh->snapshots; round++) {
		struct saved v;
		save(&s, &v);
		assert_true(kv_store_cow_begin(&s, &frozen));
		for (;;) {
			uint64_t r = splitmix64(&rng);
			size_t budget = 1 + r % sh->budget_max;
			if (kv_store_cow_step(&s, budget))
				break;
			unsigned n = (unsigned)((r >> 32) % (sh->cmds_max + 1));
			for (unsigned i = 0; i < n; i++)
				random_command(&s, sh, &rng);
		}
		/* The live store goes on after the copy: the image stays. */
		for (unsigned i = 0; i < sh->cmds_max * 4; i++)
			random_command(&s, sh, &rng);
		expect_image_is_saved(&frozen, &v, sh->name, round);
		bool released = round % 2 == 0;
		if (released)
			kv_store_cow_release_image(&s);
		kv_store_cow_end(&s, released);
		free(v.slots);
		free(v.chunks);
		/* Traffic between snapshots, so the next begins elsewhere. */
		for (unsigned i = 0; i < sh->fill_cmds / 4; i++)
			random_command(&s, sh, &rng);
	}
	kv_store_destroy(&s);
}

static const struct shape shapes[] = {
	/* One index piece, one arena piece, the index wrapping. */
	{ "tiny", 60, 200, 90, 100, 30, 300, 3, 4096, 20 },
	/* Full: most puts refused, chains freed and retaken. */
	{ "full", 2000, 3000, 4000, 300, 25, 20000, 20, 8192, 12 },
	/* Many pieces, small budgets: most copies come from writes. */
	{ "large", 30000, 120000, 40000, 1024, 35, 60000, 40, 4096, 6 },
	/* Delete-heavy: long backward shifts across piece edges. */
	{ "shifts", 5000, 20000, 6000, 40, 50, 10000, 30, 1, 8 },
};

static void image_is_the_store_at_begin(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
		for (uint64_t seed = 1; seed <= 4; seed++)
			run_shape(&shapes[i], seed * 1000 + i);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(image_is_the_store_at_begin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
