/* The built-in key-value state machine (kv.h, sm.h): the command codec,
 * the commands, and snapshots, over the compact store of kv_store.h (an
 * index of 8-byte slots and an arena of 48-byte chunks, all mapped in
 * create(); apply() and read() never allocate, sm.h).
 *
 * The digest is the wrapping sum of a 64-bit hash of every (key, value)
 * entry, updated on each change. Addition commutes, so equal states have
 * equal digests whatever the order of the commands or the table layout, and
 * digest() is O(1).
 *
 * Snapshots list the entries in ascending key order: replicas with equal
 * states write byte-identical snapshots, and restore() rejects a duplicate
 * key in one pass, with no memory of its own.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bypax/errors.h"
#include "bypax/kv.h"
#include "kv_store.h"

/* Snapshot: u32 magic, u32 version, u32 entry_count, u64 digest, then per
 * entry u8 key_len, u16 value_len, key, value; keys strictly ascending.
 * Version 2 sums kv_entry_hash for the digest; version 1 (written before
 * the compact store, same layout) summed kv_entry_hash_v1 and is still
 * read, so a snapshot file carries a state across the upgrade. */
#define KV_SNAPSHOT_MAGIC 0x564b5042u /* "BPKV" in little-endian bytes */
#define KV_SNAPSHOT_VERSION 2u
#define KV_SNAPSHOT_VERSION_V1 1u
#define KV_SNAPSHOT_HEADER_BYTES 20u
#define KV_SNAPSHOT_ENTRY_HEADER_BYTES 3u

_Static_assert(BPX_KV_CHUNK_BYTES == KV_CHUNK_BYTES, "kv.h's chunk size");
_Static_assert(BPX_KV_BYTES_MAX / KV_CHUNK_BYTES < UINT32_MAX,
	       "chunk ids are 32 bits");

struct kv_sm {
	struct kv_store store;
	uint32_t *order; /* snapshot scratch: capacity first chunks */
	/* An incremental snapshot (sm.h's snapshot_begin): the store as it
	 * was at begin, over the copy-on-write image, and the sort order
	 * the writing thread uses, in image memory (resident only while a
	 * snapshot is in progress). */
	struct kv_store frozen;
	uint32_t *frozen_order;
	size_t frozen_order_bytes;
	bool frozen_complete; /* every piece copied: frozen may be read */
	/* Set by the writing thread before its hand-off back (sm.h): the
	 * image's pages are given back already. */
	bool frozen_released;
};

/* One (key, value) entry read from a snapshot; points into its buffer. */
struct kv_snap_entry {
	const uint8_t *key;
	const uint8_t *value;
	uint8_t key_len;
	uint16_t value_len;
};

static uint16_t load_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static void store_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void store_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Orders keys bytewise, a proper prefix first. */
static int key_cmp(const uint8_t *a, uint8_t a_len, const uint8_t *b,
		   uint8_t b_len)
{
	int c = memcmp(a, b, a_len < b_len ? a_len : b_len);
	if (c != 0)
		return c;
	return (int)a_len - (int)b_len;
}

/* The shapes kv.h allows: a key of 1..64 bytes; PUT carries a value, CAS an
 * expected and a new value, GET and DEL nothing else. Shared by encode and
 * decode so a client never builds what a replica would reject. */
static bool cmd_shape_valid(unsigned op, size_t key_len, size_t value_len,
			    size_t new_len)
{
	if (key_len < 1 || key_len > BPX_KV_KEY_BYTES_MAX)
		return false;
	if (value_len > BPX_KV_VALUE_BYTES_MAX ||
	    new_len > BPX_KV_VALUE_BYTES_MAX)
		return false;
	switch (op) {
	case BPX_KV_GET:
	case BPX_KV_DEL:
		return value_len == 0 && new_len == 0;
	case BPX_KV_PUT:
		return new_len == 0;
	case BPX_KV_CAS:
		return true;
	default:
		return false;
	}
}

int bpx_kv_encode(uint8_t *buf, size_t cap, enum bpx_kv_op op, const void *key,
		  size_t key_len, const void *value, size_t value_len,
		  const void *new_value, size_t new_len)
{
	if (!cmd_shape_valid((unsigned)op, key_len, value_len, new_len))
		return -BPX_EINVAL;
	if (key == NULL || (value == NULL && value_len > 0) ||
	    (new_value == NULL && new_len > 0))
		return -BPX_EINVAL;
	size_t len = BPX_KV_CMD_HEADER_BYTES + key_len + value_len + new_len;
	if (cap < len)
		return -BPX_ETOOBIG;
	KV_ASSERT(buf != NULL);

	buf[0] = (uint8_t)op;
	buf[1] = (uint8_t)key_len;
	store_le16(buf + 2, (uint16_t)value_len);
	store_le16(buf + 4, (uint16_t)new_len);
	uint8_t *p = buf + BPX_KV_CMD_HEADER_BYTES;
	memcpy(p, key, key_len);
	p += key_len;
	if (value_len > 0)
		memcpy(p, value, value_len);
	p += value_len;
	if (new_len > 0)
		memcpy(p, new_value, new_len);
	KV_ASSERT((size_t)(p + new_len - buf) == len);
	return (int)len;
}

int bpx_kv_decode(const uint8_t *buf, size_t len, struct bpx_kv_cmd *cmd)
{
	KV_ASSERT(cmd != NULL);
	KV_ASSERT(buf != NULL || len == 0);
	if (len < BPX_KV_CMD_HEADER_BYTES)
		return -BPX_EMALFORMED;
	uint8_t op = buf[0];
	uint8_t key_len = buf[1];
	uint16_t value_len = load_le16(buf + 2);
	uint16_t new_len = load_le16(buf + 4);
	if (!cmd_shape_valid(op, key_len, value_len, new_len))
		return -BPX_EMALFORMED;
	/* Exact length: a short command is truncated, a long one carries
	 * bytes that no field accounts for. */
	if (len !=
	    (size_t)BPX_KV_CMD_HEADER_BYTES + key_len + value_len + new_len)
		return -BPX_EMALFORMED;

	cmd->op = op;
	cmd->key_len = key_len;
	cmd->value_len = value_len;
	cmd->new_len = new_len;
	cmd->key = buf + BPX_KV_CMD_HEADER_BYTES;
	cmd->value = cmd->key + key_len;
	cmd->new_value = cmd->value + value_len;
	return 0;
}

int bpx_kv_decode_reply(const uint8_t *buf, size_t len, uint8_t *status,
			const uint8_t **value, uint16_t *value_len)
{
	KV_ASSERT(status != NULL && value != NULL && value_len != NULL);
	KV_ASSERT(buf != NULL || len == 0);
	if (len < BPX_KV_REPLY_HEADER_BYTES)
		return -BPX_EMALFORMED;
	uint8_t s = buf[0];
	uint16_t n = load_le16(buf + 1);
	if (s > BPX_KV_BAD_COMMAND || n > BPX_KV_VALUE_BYTES_MAX)
		return -BPX_EMALFORMED;
	if (len != (size_t)BPX_KV_REPLY_HEADER_BYTES + n)
		return -BPX_EMALFORMED;
	/* Only OK and CAS_MISMATCH carry a value (kv.h). */
	if (n > 0 && s != BPX_KV_OK && s != BPX_KV_CAS_MISMATCH)
		return -BPX_EMALFORMED;

	*status = s;
	*value = buf + BPX_KV_REPLY_HEADER_BYTES;
	*value_len = n;
	return 0;
}

int bpx_kv_is_read_only(const uint8_t *cmd, size_t len)
{
	struct bpx_kv_cmd c;
	if (cmd == NULL || bpx_kv_decode(cmd, len, &c) != 0)
		return 0;
	return c.op == BPX_KV_GET;
}

/* ---- Sizing: "capacity=N,bytes=B" ---- */

struct kv_args {
	uint32_t capacity;
	uint64_t bytes;
};

/* Reads [p, end) as a decimal in min..max, with one trailing K, M or G
 * (x 1024^1, ^2, ^3) where suffix_ok. No sign, space or other suffix. */
static bool parse_count(const char *p, const char *end, bool suffix_ok,
			uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned shift = 0;
	if (suffix_ok && end > p) {
		const char *units = "KMG";
		const char *u = strchr(units, end[-1]);
		if (end[-1] != '\0' && u != NULL) {
			shift = 10u * (unsigned)(u - units + 1);
			end--;
		}
	}
	if (p == end)
		return false;
	uint64_t n = 0;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return false;
		n = n * 10 + (uint64_t)(*p - '0');
		if (n > max) /* also stops overflow */
			return false;
	}
	if (n > (max >> shift))
		return false;
	n <<= shift;
	if (n < min)
		return false;
	*out = n;
	return true;
}

/* The value of `name=` if the item [p, end) is that setting, else NULL. */
static const char *setting(const char *p, const char *end, const char *name)
{
	size_t n = strlen(name);
	if ((size_t)(end - p) <= n || strncmp(p, name, n) != 0 || p[n] != '=')
		return NULL;
	return p + n + 1;
}

/* Accepts NULL (the defaults) or kv.h's settings. Anything else (an
 * unknown or repeated setting, an empty item, a number out of range) is a
 * configuration mistake that an operator should hear about, not a silent
 * default. */
static bool parse_args(const char *args, struct kv_args *a)
{
	bool have_capacity = false, have_bytes = false;
	a->capacity = BPX_KV_CAPACITY_DEFAULT;
	for (const char *p = args; p != NULL;) {
		const char *comma = strchr(p, ',');
		const char *end = comma != NULL ? comma : p + strlen(p);
		const char *v;
		uint64_t n;
		if ((v = setting(p, end, "capacity")) != NULL &&
		    !have_capacity) {
			if (!parse_count(v, end, false, 1, BPX_KV_CAPACITY_MAX,
					 &n))
				return false;
			a->capacity = (uint32_t)n;
			have_capacity = true;
		} else if ((v = setting(p, end, "bytes")) != NULL &&
			   !have_bytes) {
			if (!parse_count(v, end, true, BPX_KV_CHUNK_BYTES,
					 BPX_KV_BYTES_MAX, &a->bytes))
				return false;
			have_bytes = true;
		} else {
			return false;
		}
		p = comma != NULL ? comma + 1 : NULL;
	}
	if (!have_bytes)
		a->bytes = (uint64_t)a->capacity * BPX_KV_BYTES_PER_KEY_DEFAULT;
	return true;
}

static uint64_t chunks_of(const struct kv_args *a)
{
	return a->bytes / KV_CHUNK_BYTES;
}

int bpx_kv_sizing(const char *args, struct bpx_kv_sizing *sizing)
{
	struct kv_args a;
	KV_ASSERT(sizing != NULL);
	if (args != NULL && args[0] == '\0')
		args = NULL;
	if (!parse_args(args, &a))
		return -BPX_EINVAL;
	sizing->capacity = a.capacity;
	sizing->bytes = a.bytes;
	sizing->chunks = chunks_of(&a);
	/* kv_store_init's two maps (chunk 0 unused) and the snapshot
	 * scratch of kv_create. */
	sizing->memory_bytes = (uint64_t)kv_slot_count_for(a.capacity) *
				       sizeof(struct kv_slot) +
			       (sizing->chunks + 1) * KV_CHUNK_BYTES +
			       (uint64_t)a.capacity * sizeof(uint32_t);
	/* Keys and values live in the arena, so they never sum to more than
	 * its bytes (kv_snapshot_size). */
	sizing->snapshot_bytes_max =
		KV_SNAPSHOT_HEADER_BYTES +
		(uint64_t)a.capacity * KV_SNAPSHOT_ENTRY_HEADER_BYTES + a.bytes;
	return 0;
}

int bpx_kv_capacity(const char *args, uint32_t *capacity)
{
	struct bpx_kv_sizing s;
	KV_ASSERT(capacity != NULL);
	int err = bpx_kv_sizing(args, &s);
	if (err == 0)
		*capacity = s.capacity;
	return err;
}

uint64_t bpx_kv_entry_bytes(size_t key_len, size_t value_len)
{
	KV_ASSERT(key_len <= BPX_KV_KEY_BYTES_MAX &&
		  value_len <= BPX_KV_VALUE_BYTES_MAX);
	return (uint64_t)kv_chunks_for((uint32_t)(key_len + value_len)) *
	       KV_CHUNK_BYTES;
}

static void kv_destroy(void *sm)
{
	struct kv_sm *kv = sm;
	if (kv == NULL)
		return;
	kv_store_destroy(&kv->store);
	if (kv->frozen_order != NULL)
		munmap(kv->frozen_order, kv->frozen_order_bytes);
	free(kv->order);
	free(kv);
}

static void *kv_create(const char *args)
{
	struct kv_args a;
	if (!parse_args(args, &a))
		return NULL;
	struct kv_sm *kv = calloc(1, sizeof *kv);
	if (kv == NULL)
		return NULL;
	kv->order = calloc(a.capacity, sizeof *kv->order);
	kv->frozen_order_bytes = (size_t)a.capacity * sizeof *kv->order;
	kv->frozen_order = kv_store_image_reserve(kv->frozen_order_bytes);
	if (kv->order == NULL || kv->frozen_order == NULL ||
	    !kv_store_init(&kv->store, a.capacity, (uint32_t)chunks_of(&a))) {
		kv_destroy(kv);
		return NULL;
	}
	return kv;
}

/* ---- Commands ---- */

/* Writes a reply's header, or returns -BPX_ETOOBIG. Every handler writes
 * its reply before it changes state, so a short reply buffer changes
 * nothing. */
static int kv_reply(uint8_t *reply, uint32_t reply_cap, uint8_t status,
		    uint16_t value_len)
{
	uint32_t len = BPX_KV_REPLY_HEADER_BYTES + (uint32_t)value_len;
	if (reply_cap < len)
		return -BPX_ETOOBIG;
	reply[0] = status;
	store_le16(reply + 1, value_len);
	return (int)len;
}

/* A reply carrying the value of the entry at head. */
static int kv_reply_entry(const struct kv_store *s, uint32_t head,
			  uint8_t *reply, uint32_t reply_cap, uint8_t status)
{
	int len =
		kv_reply(reply, reply_cap, status, kv_entry_value_len(s, head));
	if (len > 0)
		kv_entry_copy_value(s, head, reply + BPX_KV_REPLY_HEADER_BYTES);
	return len;
}

static uint32_t head_at(const struct kv_store *s, const struct kv_find *f)
{
	KV_ASSERT(f->found);
	return s->slots[f->slot].head;
}

static int kv_get(const struct kv_sm *kv, const struct bpx_kv_cmd *c,
		  uint8_t *reply, uint32_t reply_cap)
{
	const struct kv_store *s = &kv->store;
	struct kv_find f = kv_store_find(s, c->key, c->key_len);
	if (!f.found)
		return kv_reply(reply, reply_cap, BPX_KV_NOT_FOUND, 0);
	return kv_reply_entry(s, head_at(s, &f), reply, reply_cap, BPX_KV_OK);
}

static int kv_put(struct kv_sm *kv, const struct bpx_kv_cmd *c, uint8_t *reply,
		  uint32_t reply_cap)
{
	struct kv_store *s = &kv->store;
	struct kv_find f = kv_store_find(s, c->key, c->key_len);
	if (!kv_store_fits(s, &f, c->key_len, c->value_len))
		return kv_reply(reply, reply_cap, BPX_KV_FULL, 0);
	int len = kv_reply(reply, reply_cap, BPX_KV_OK, 0);
	if (len < 0)
		return len;
	kv_store_put(s, &f, c->key, c->key_len, c->value, c->value_len);
	return len;
}

static int kv_del(struct kv_sm *kv, const struct bpx_kv_cmd *c, uint8_t *reply,
		  uint32_t reply_cap)
{
	struct kv_store *s = &kv->store;
	struct kv_find f = kv_store_find(s, c->key, c->key_len);
	if (!f.found)
		return kv_reply(reply, reply_cap, BPX_KV_NOT_FOUND, 0);
	int len =
		kv_reply_entry(s, head_at(s, &f), reply, reply_cap, BPX_KV_OK);
	if (len < 0)
		return len;
	kv_store_remove(s, f.slot);
	return len;
}

static int kv_cas(struct kv_sm *kv, const struct bpx_kv_cmd *c, uint8_t *reply,
		  uint32_t reply_cap)
{
	struct kv_store *s = &kv->store;
	struct kv_find f = kv_store_find(s, c->key, c->key_len);
	if (!f.found)
		return kv_reply(reply, reply_cap, BPX_KV_NOT_FOUND, 0);
	uint32_t head = head_at(s, &f);
	if (!kv_entry_value_equals(s, head, c->value, c->value_len))
		return kv_reply_entry(s, head, reply, reply_cap,
				      BPX_KV_CAS_MISMATCH);
	/* A new value that outgrows the arena: refused like a PUT would be,
	 * before anything changes. */
	if (!kv_store_fits(s, &f, c->key_len, c->new_len))
		return kv_reply(reply, reply_cap, BPX_KV_FULL, 0);
	/* Success replies with the value held before the command. */
	int len = kv_reply_entry(s, head, reply, reply_cap, BPX_KV_OK);
	if (len < 0)
		return len;
	kv_store_put(s, &f, c->key, c->key_len, c->new_value, c->new_len);
	return len;
}

static int kv_apply(void *sm, const uint8_t *cmd, uint32_t cmd_len,
		    uint8_t *reply, uint32_t reply_cap)
{
	struct kv_sm *kv = sm;
	struct bpx_kv_cmd c;
	KV_ASSERT(kv != NULL && (reply != NULL || reply_cap == 0));
	/* A malformed command is answered, not failed: every replica must
	 * apply the same log to the same effect (sm.h). */
	if (cmd == NULL || bpx_kv_decode(cmd, cmd_len, &c) != 0)
		return kv_reply(reply, reply_cap, BPX_KV_BAD_COMMAND, 0);
	int len;
	switch (c.op) {
	case BPX_KV_GET:
		len = kv_get(kv, &c, reply, reply_cap);
		break;
	case BPX_KV_PUT:
		len = kv_put(kv, &c, reply, reply_cap);
		break;
	case BPX_KV_DEL:
		len = kv_del(kv, &c, reply, reply_cap);
		break;
	case BPX_KV_CAS:
		len = kv_cas(kv, &c, reply, reply_cap);
		break;
	default:
		/* bpx_kv_decode lets no other op through. */
		KV_ASSERT(false);
		return -BPX_EINVAL;
	}
	KV_ASSERT(kv->store.count <= kv->store.capacity);
	return len;
}

static int kv_read(void *sm, const uint8_t *cmd, uint32_t cmd_len,
		   uint8_t *reply, uint32_t reply_cap)
{
	const struct kv_sm *kv = sm;
	struct bpx_kv_cmd c;
	KV_ASSERT(kv != NULL && (reply != NULL || reply_cap == 0));
	/* The same test as bpx_kv_is_read_only: a well-formed GET. */
	if (cmd == NULL || bpx_kv_decode(cmd, cmd_len, &c) != 0 ||
	    c.op != BPX_KV_GET)
		return -BPX_EINVAL;
	return kv_get(kv, &c, reply, reply_cap);
}

/* Below this many bytes of index and entries in use the store stays in
 * cache between applies, and decoding and hashing each command a second
 * time costs more than prefetching saves: bypax-kv-mem at 1,000 keys,
 * 145 cycles per PUT without, 169 with (docs/config.md); through the
 * learner, BM_Commit/32 (1,000 keys, 3 replicas) lost about 40 ns per
 * request with it on a shared VM. 1 MiB is about one core's L2, a guess:
 * sizes between it and 1,000,000 keys are not measured. */
#define KV_PREFETCH_MIN_BYTES (1u << 20)

static bool kv_worth_prefetching(const struct kv_store *s)
{
	return s->slots_map_bytes + (size_t)s->chunks_used * KV_CHUNK_BYTES >=
	       KV_PREFETCH_MIN_BYTES;
}

void bpx_kv_prefetch(void *sm, const uint8_t *const *cmds, const uint32_t *lens,
		     uint32_t n)
{
	const struct kv_store *s = &((const struct kv_sm *)sm)->store;
	uint64_t hashes[BPX_KV_PREFETCH_MAX];
	bool valid[BPX_KV_PREFETCH_MAX];
	KV_ASSERT(n <= BPX_KV_PREFETCH_MAX && (n == 0 || cmds != NULL));
	if (!kv_worth_prefetching(s))
		return;
	for (uint32_t i = 0; i < n; i++) {
		struct bpx_kv_cmd c;
		valid[i] = cmds[i] != NULL &&
			   bpx_kv_decode(cmds[i], lens[i], &c) == 0;
		if (!valid[i])
			continue;
		hashes[i] = kv_key_hash(c.key, c.key_len);
		kv_store_prefetch_slot(s, hashes[i]);
	}
	for (uint32_t i = 0; i < n; i++)
		if (valid[i])
			kv_store_prefetch_entry(s, hashes[i]);
}

static uint64_t kv_digest(void *sm)
{
	const struct kv_sm *kv = sm;
	KV_ASSERT(kv != NULL);
	return kv->store.digest;
}

/* ---- Snapshots ---- */

static size_t snapshot_size_of(const struct kv_store *s)
{
	return KV_SNAPSHOT_HEADER_BYTES +
	       (size_t)s->count * KV_SNAPSHOT_ENTRY_HEADER_BYTES +
	       (size_t)s->data_bytes;
}

static size_t kv_snapshot_size(void *sm)
{
	const struct kv_sm *kv = sm;
	KV_ASSERT(kv != NULL);
	return snapshot_size_of(&kv->store);
}

static bool entry_less(const struct kv_store *s, uint32_t a, uint32_t b)
{
	uint8_t a_tmp[BPX_KV_KEY_BYTES_MAX], b_tmp[BPX_KV_KEY_BYTES_MAX];
	return key_cmp(kv_entry_key(s, a, a_tmp), kv_entry_key_len(s, a),
		       kv_entry_key(s, b, b_tmp), kv_entry_key_len(s, b)) < 0;
}

static void sift_down(const struct kv_store *s, uint32_t *v, size_t root,
		      size_t n)
{
	for (;;) {
		size_t child = 2 * root + 1;
		if (child >= n)
			return;
		if (child + 1 < n && entry_less(s, v[child], v[child + 1]))
			child++;
		if (!entry_less(s, v[root], v[child]))
			return;
		uint32_t t = v[root];
		v[root] = v[child];
		v[child] = t;
		root = child;
	}
}

/* Heapsort: O(n log n) worst case and no memory of its own, where qsort
 * may allocate. Keys are unique, so the order is total and deterministic. */
static void sort_entries(const struct kv_store *s, uint32_t *v, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(s, v, i, n);
	for (size_t end = n; end-- > 1;) {
		uint32_t t = v[0];
		v[0] = v[end];
		v[end] = t;
		sift_down(s, v, 0, end);
	}
}

/* The snapshot of s, sorted in order[] (capacity entries): the live store
 * for snapshot(), the frozen image for snapshot_write_frozen(), written
 * alike so that both give the same bytes for the same state. */
static int64_t snapshot_of(const struct kv_store *s, uint32_t *order,
			   uint8_t *buf, size_t cap)
{
	size_t need = snapshot_size_of(s);
	if (cap < need)
		return -BPX_ETOOBIG;
	KV_ASSERT(buf != NULL);

	uint32_t n = 0;
	for (uint32_t i = 0; i < s->slot_count; i++)
		if (s->slots[i].head != KV_NO_CHUNK)
			order[n++] = s->slots[i].head;
	KV_ASSERT(n == s->count);
	sort_entries(s, order, n);

	store_le(buf, KV_SNAPSHOT_MAGIC, 4);
	store_le(buf + 4, KV_SNAPSHOT_VERSION, 4);
	store_le(buf + 8, n, 4);
	store_le(buf + 12, s->digest, 8);
	size_t pos = KV_SNAPSHOT_HEADER_BYTES;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t head = order[i];
		uint8_t key_len = kv_entry_key_len(s, head);
		uint16_t value_len = kv_entry_value_len(s, head);
		uint8_t tmp[BPX_KV_KEY_BYTES_MAX];
		buf[pos] = key_len;
		store_le16(buf + pos + 1, value_len);
		pos += KV_SNAPSHOT_ENTRY_HEADER_BYTES;
		memcpy(buf + pos, kv_entry_key(s, head, tmp), key_len);
		pos += key_len;
		kv_entry_copy_value(s, head, buf + pos);
		pos += value_len;
	}
	KV_ASSERT(pos == need);
	return (int64_t)pos;
}

static int64_t kv_snapshot(void *sm, uint8_t *buf, size_t cap)
{
	struct kv_sm *kv = sm;
	KV_ASSERT(kv != NULL);
	return snapshot_of(&kv->store, kv->order, buf, cap);
}

/* ---- Incremental snapshots (sm.h, snapshot_begin..snapshot_end) ---- */

static int64_t kv_snapshot_begin(void *sm)
{
	struct kv_sm *kv = sm;
	KV_ASSERT(kv != NULL);
	if (kv->store.cow.in_progress)
		return -BPX_EBUSY;
	if (!kv_store_image_open(kv->frozen_order, kv->frozen_order_bytes))
		return -BPX_ENOMEM;
	if (!kv_store_cow_begin(&kv->store, &kv->frozen)) {
		kv_store_image_close(kv->frozen_order, kv->frozen_order_bytes);
		return -BPX_ENOMEM;
	}
	kv->frozen_complete = false;
	kv->frozen_released = false;
	return (int64_t)snapshot_size_of(&kv->frozen);
}

static int kv_snapshot_step(void *sm, size_t budget_bytes)
{
	struct kv_sm *kv = sm;
	KV_ASSERT(kv != NULL);
	if (!kv->store.cow.in_progress)
		return -BPX_EINVAL; /* none begun, or a restore() ended it */
	kv->frozen_complete = kv_store_cow_step(&kv->store, budget_bytes);
	return kv->frozen_complete ? 1 : 0;
}

/* Reads only the image and frozen_order: the live store may change on
 * another thread meanwhile. Written once, they are given back here, on
 * this thread: freeing tens of megabytes of pages takes milliseconds
 * (9 ms at 1M keys on a busy VM), which the owner's snapshot_end would
 * otherwise spend on bypaxd's worker. */
static int64_t kv_snapshot_write_frozen(void *sm, uint8_t *buf, size_t cap)
{
	struct kv_sm *kv = sm;
	KV_ASSERT(kv != NULL && kv->frozen_complete && !kv->frozen_released);
	int64_t n = snapshot_of(&kv->frozen, kv->frozen_order, buf, cap);
	if (n < 0)
		return n;
	kv_store_cow_release_image(&kv->store);
	kv_store_image_close(kv->frozen_order, kv->frozen_order_bytes);
	kv->frozen_released = true;
	return n;
}

static void kv_snapshot_end(void *sm)
{
	struct kv_sm *kv = sm;
	KV_ASSERT(kv != NULL);
	if (!kv->store.cow.in_progress)
		return;
	kv_store_cow_end(&kv->store, kv->frozen_released);
	if (!kv->frozen_released)
		kv_store_image_close(kv->frozen_order, kv->frozen_order_bytes);
	kv->frozen_complete = false;
	kv->frozen_released = false;
}

/* Reads the entry at *pos, keeping *pos <= len. Returns false if it is
 * truncated or its lengths break kv.h's limits. */
static bool snap_next(const uint8_t *buf, size_t len, size_t *pos,
		      struct kv_snap_entry *e)
{
	KV_ASSERT(*pos <= len);
	if (len - *pos < KV_SNAPSHOT_ENTRY_HEADER_BYTES)
		return false;
	e->key_len = buf[*pos];
	e->value_len = load_le16(buf + *pos + 1);
	if (e->key_len < 1 || e->key_len > BPX_KV_KEY_BYTES_MAX ||
	    e->value_len > BPX_KV_VALUE_BYTES_MAX)
		return false;
	size_t body = (size_t)e->key_len + e->value_len;
	if (len - *pos - KV_SNAPSHOT_ENTRY_HEADER_BYTES < body)
		return false;
	e->key = buf + *pos + KV_SNAPSHOT_ENTRY_HEADER_BYTES;
	e->value = e->key + e->key_len;
	*pos += KV_SNAPSHOT_ENTRY_HEADER_BYTES + body;
	return true;
}

/* This entry's share of the digest as the snapshot's version sums it. */
static uint64_t snap_entry_hash(uint64_t version, const struct kv_snap_entry *e)
{
	if (version == KV_SNAPSHOT_VERSION_V1)
		return kv_entry_hash_v1(e->key, e->key_len, e->value,
					e->value_len);
	return kv_entry_hash(kv_key_hash(e->key, e->key_len), e->value,
			     e->value_len);
}

/* Checks a whole snapshot against this instance without touching its
 * state, so restore() can fail with the state unchanged: its form, its
 * digest, and that it fits both the capacity and the arena (a store sized
 * smaller than the one that wrote it refuses it, on every replica alike).
 * On success gives the entry count. */
static bool snap_valid(const struct kv_sm *kv, const uint8_t *buf, size_t len,
		       uint32_t *count)
{
	if (buf == NULL || len < KV_SNAPSHOT_HEADER_BYTES)
		return false;
	uint64_t version = kv_load_le(buf + 4, 4);
	if (kv_load_le(buf, 4) != KV_SNAPSHOT_MAGIC ||
	    (version != KV_SNAPSHOT_VERSION &&
	     version != KV_SNAPSHOT_VERSION_V1))
		return false;
	uint64_t n = kv_load_le(buf + 8, 4);
	uint64_t digest = kv_load_le(buf + 12, 8);
	if (n > kv->store.capacity)
		return false;

	struct kv_snap_entry e, prev = { 0 };
	size_t pos = KV_SNAPSHOT_HEADER_BYTES;
	uint64_t sum = 0, chunks = 0;
	for (uint64_t i = 0; i < n; i++) {
		if (!snap_next(buf, len, &pos, &e))
			return false;
		/* Strictly ascending keys: sorted, and no key twice. */
		if (i > 0 &&
		    key_cmp(prev.key, prev.key_len, e.key, e.key_len) >= 0)
			return false;
		sum += snap_entry_hash(version, &e);
		chunks += kv_chunks_for((uint32_t)e.key_len + e.value_len);
		prev = e;
	}
	/* No trailing bytes, and the digest catches a flipped value byte
	 * that every length check above lets through. */
	if (pos != len || sum != digest || chunks > kv->store.chunk_count)
		return false;
	*count = (uint32_t)n;
	return true;
}

static int kv_restore(void *sm, const uint8_t *buf, size_t len)
{
	struct kv_sm *kv = sm;
	struct kv_store *s = &kv->store;
	uint32_t n;
	KV_ASSERT(kv != NULL);
	if (!snap_valid(kv, buf, len, &n))
		return -BPX_EMALFORMED;

	/* A copy in progress is abandoned (sm.h): its image would mix the
	 * old state with the new. A complete one is left to its reader. */
	if (s->cow.copying)
		kv_snapshot_end(kv);
	kv_store_clear(s);
	struct kv_snap_entry e;
	size_t pos = KV_SNAPSHOT_HEADER_BYTES;
	uint64_t version = kv_load_le(buf + 4, 4);
	for (uint32_t i = 0; i < n; i++) {
		bool ok = snap_next(buf, len, &pos, &e);
		KV_ASSERT(ok); /* snap_valid checked every entry */
		struct kv_find f = kv_store_find(s, e.key, e.key_len);
		KV_ASSERT(!f.found &&
			  kv_store_fits(s, &f, e.key_len, e.value_len));
		kv_store_put(s, &f, e.key, e.key_len, e.value, e.value_len);
	}
	/* A version 1 digest was summed another way; this build's own
	 * snapshots must come back to the digest they carry. */
	KV_ASSERT(pos == len && (version == KV_SNAPSHOT_VERSION_V1 ||
				 s->digest == kv_load_le(buf + 12, 8)));
	return 0;
}

static const struct bpx_sm_ops kv_ops = {
	.abi_version = BPX_SM_ABI_VERSION,
	.name = "kv",
	.create = kv_create,
	.destroy = kv_destroy,
	.apply = kv_apply,
	.read = kv_read,
	.snapshot_size = kv_snapshot_size,
	.snapshot = kv_snapshot,
	.restore = kv_restore,
	.digest = kv_digest,
	.prefetch = bpx_kv_prefetch,
	.snapshot_begin = kv_snapshot_begin,
	.snapshot_step = kv_snapshot_step,
	.snapshot_write_frozen = kv_snapshot_write_frozen,
	.snapshot_end = kv_snapshot_end,
};
_Static_assert(BPX_KV_PREFETCH_MAX == BPX_SM_PREFETCH_MAX,
	       "the sm prefetch hook hands kv at most what it takes");

const struct bpx_sm_ops *bpx_kv_ops(void)
{
	return &kv_ops;
}
