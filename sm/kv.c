/* The built-in key-value state machine (kv.h, sm.h).
 *
 * A fixed-capacity open-addressing hash table: linear probing, and
 * backward-shift deletion so there are no tombstones and a probe chain is
 * never longer than the live keys make it. Each slot holds its key and value
 * inline. All memory is taken in create(); apply() and read() never allocate
 * (sm.h).
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

#include "bypax/errors.h"
#include "bypax/kv.h"

/* Always on, for our own invariants only: bad input is a reply or an error
 * code, never an assertion. No message: the state machine does no I/O. */
#define KV_ASSERT(x)                                                           \
	do {                                                                   \
		if (!(x))                                                      \
			abort();                                               \
	} while (0)


/* Snapshot: u32 magic, u32 version, u32 entry_count, u64 digest, then per
 * entry u8 key_len, u16 value_len, key, value; keys strictly ascending. */
#define KV_SNAPSHOT_MAGIC 0x564b5042u /* "BPKV" in little-endian bytes */
#define KV_SNAPSHOT_VERSION 1u
#define KV_SNAPSHOT_HEADER_BYTES 20u
#define KV_SNAPSHOT_ENTRY_HEADER_BYTES 3u

/* Fixed hash seeds, never taken from the environment: every replica must
 * hash alike. Unkeyed, so crafted keys can lengthen probe chains; the fixed
 * capacity bounds how far. */
#define KV_SEED_KEY 0x243f6a8885a308d3ull
#define KV_SEED_ENTRY 0x13198a2e03707344ull
#define KV_HASH_STEP 0x9e3779b97f4a7c15ull

struct kv_entry {
	uint64_t key_hash;   /* kept so probes and shifts never rehash */
	uint64_t entry_hash; /* this entry's share of the digest */
	uint16_t value_len;
	uint8_t key_len; /* 0: the slot is empty (keys are never empty) */
	uint8_t key[BPX_KV_KEY_BYTES_MAX];
	uint8_t value[BPX_KV_VALUE_BYTES_MAX];
};

struct kv_sm {
	struct kv_entry *slots;
	const struct kv_entry **order; /* snapshot scratch: capacity entries */
	uint32_t slot_mask;	       /* slot_count - 1, a power of two */
	uint32_t capacity;	       /* the most live keys */
	uint32_t count;		       /* live keys */
	uint64_t data_bytes;	       /* sum of key_len + value_len */
	uint64_t digest;
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

static uint64_t load_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	KV_ASSERT(n <= 8);
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
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
		h = mix64(h ^ load_le(p, 8)) + KV_HASH_STEP;
	if (len > 0)
		h = mix64(h ^ load_le(p, len)) + KV_HASH_STEP;
	return mix64(h);
}

static uint64_t key_hash(const uint8_t *key, uint8_t key_len)
{
	return hash_bytes(KV_SEED_KEY, key, key_len);
}

static uint64_t entry_hash(const uint8_t *key, uint8_t key_len,
			   const uint8_t *value, uint16_t value_len)
{
	uint64_t h = hash_bytes(KV_SEED_ENTRY, key, key_len);
	return hash_bytes(h, value, value_len);
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

/* Accepts NULL (the default) or exactly "capacity=N", N decimal in
 * 1..BPX_KV_CAPACITY_MAX. Anything else is a configuration mistake that an
 * operator should hear about, not a silent default. */
static bool parse_args(const char *args, uint32_t *capacity)
{
	static const char prefix[] = "capacity=";
	if (args == NULL) {
		*capacity = BPX_KV_CAPACITY_DEFAULT;
		return true;
	}
	if (strncmp(args, prefix, sizeof prefix - 1) != 0)
		return false;
	const char *p = args + sizeof prefix - 1;
	if (*p == '\0')
		return false;
	uint64_t n = 0;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		n = n * 10 + (uint64_t)(*p - '0');
		if (n > BPX_KV_CAPACITY_MAX) /* also stops overflow */
			return false;
	}
	if (n < 1)
		return false;
	*capacity = (uint32_t)n;
	return true;
}

int bpx_kv_capacity(const char *args, uint32_t *capacity)
{
	KV_ASSERT(capacity != NULL);
	if (args != NULL && args[0] == '\0')
		args = NULL;
	return parse_args(args, capacity) ? 0 : -BPX_EINVAL;
}

/* A power of two above 1.25 x capacity: the load factor stays below 0.8, so
 * linear probes stay short, and a probe always meets an empty slot. */
static uint32_t slot_count_for(uint32_t capacity)
{
	uint64_t want = (uint64_t)capacity + capacity / 4 + 1;
	uint64_t n = 1;
	while (n < want)
		n <<= 1;
	KV_ASSERT(n <= UINT32_MAX);
	return (uint32_t)n;
}

static void kv_destroy(void *sm)
{
	struct kv_sm *kv = sm;
	if (kv == NULL)
		return;
	free(kv->slots);
	free(kv->order);
	free(kv);
}

static void *kv_create(const char *args)
{
	uint32_t capacity;
	if (!parse_args(args, &capacity))
		return NULL;
	struct kv_sm *kv = calloc(1, sizeof *kv);
	if (kv == NULL)
		return NULL;
	uint32_t slot_count = slot_count_for(capacity);
	kv->slots = calloc(slot_count, sizeof *kv->slots);
	kv->order = calloc(capacity, sizeof *kv->order);
	if (kv->slots == NULL || kv->order == NULL) {
		kv_destroy(kv);
		return NULL;
	}
	kv->slot_mask = slot_count - 1;
	kv->capacity = capacity;
	return kv;
}

/* Returns the slot holding key, or the empty slot where it would go. Ends
 * because count <= capacity < slot_count leaves an empty slot. */
static uint32_t kv_probe(const struct kv_sm *kv, const uint8_t *key,
			 uint8_t key_len, uint64_t hash, bool *found)
{
	uint32_t i = (uint32_t)hash & kv->slot_mask;
	for (uint32_t steps = 0;; steps++) {
		const struct kv_entry *e = &kv->slots[i];
		KV_ASSERT(steps <= kv->slot_mask);
		if (e->key_len == 0) {
			*found = false;
			return i;
		}
		if (e->key_hash == hash && e->key_len == key_len &&
		    memcmp(e->key, key, key_len) == 0) {
			*found = true;
			return i;
		}
		i = (i + 1) & kv->slot_mask;
	}
}

/* Replaces a live entry's value, moving its share of the digest. */
static void kv_set_value(struct kv_sm *kv, struct kv_entry *e,
			 const uint8_t *value, uint16_t value_len)
{
	KV_ASSERT(e->key_len != 0 && value_len <= BPX_KV_VALUE_BYTES_MAX);
	kv->digest -= e->entry_hash;
	kv->data_bytes -= e->value_len;
	if (value_len > 0)
		memcpy(e->value, value, value_len);
	e->value_len = value_len;
	e->entry_hash = entry_hash(e->key, e->key_len, e->value, value_len);
	kv->digest += e->entry_hash;
	kv->data_bytes += value_len;
}

static void kv_insert_at(struct kv_sm *kv, uint32_t slot, const uint8_t *key,
			 uint8_t key_len, uint64_t hash, const uint8_t *value,
			 uint16_t value_len)
{
	struct kv_entry *e = &kv->slots[slot];
	KV_ASSERT(e->key_len == 0 && kv->count < kv->capacity);
	e->key_hash = hash;
	e->key_len = key_len;
	memcpy(e->key, key, key_len);
	/* An empty value with no share yet, so kv_set_value moves nothing. */
	e->value_len = 0;
	e->entry_hash = 0;
	kv->count++;
	kv->data_bytes += key_len;
	kv_set_value(kv, e, value, value_len);
}

/* Copies only the live bytes: a slot is ~1.1 KiB, most of it unused. */
static void kv_entry_move(struct kv_entry *dst, const struct kv_entry *src)
{
	dst->key_hash = src->key_hash;
	dst->entry_hash = src->entry_hash;
	dst->key_len = src->key_len;
	dst->value_len = src->value_len;
	memcpy(dst->key, src->key, src->key_len);
	memcpy(dst->value, src->value, src->value_len);
}

/* Backward-shift deletion (Knuth, TAOCP 6.4, Algorithm R): walk the cluster
 * after the hole and pull back every entry whose probe path crosses it, so
 * lookups that stop at the first empty slot still find every key. */
static void kv_remove_at(struct kv_sm *kv, uint32_t hole)
{
	struct kv_entry *e = &kv->slots[hole];
	KV_ASSERT(e->key_len != 0 && kv->count > 0);
	kv->digest -= e->entry_hash;
	kv->data_bytes -= (uint64_t)e->key_len + e->value_len;
	kv->count--;

	uint32_t i = (hole + 1) & kv->slot_mask;
	while (kv->slots[i].key_len != 0) {
		uint32_t home = (uint32_t)kv->slots[i].key_hash & kv->slot_mask;
		/* The hole lies on the path home..i iff it is no further
		 * back from i than home is. */
		if (((i - home) & kv->slot_mask) >=
		    ((i - hole) & kv->slot_mask)) {
			kv_entry_move(&kv->slots[hole], &kv->slots[i]);
			hole = i;
		}
		i = (i + 1) & kv->slot_mask;
	}
	kv->slots[hole].key_len = 0;
}

/* Writes a reply, or returns -BPX_ETOOBIG. Every handler writes its reply
 * before it changes state, so a short reply buffer changes nothing. */
static int kv_reply(uint8_t *reply, uint32_t reply_cap, uint8_t status,
		    const uint8_t *value, uint16_t value_len)
{
	uint32_t len = BPX_KV_REPLY_HEADER_BYTES + (uint32_t)value_len;
	if (reply_cap < len)
		return -BPX_ETOOBIG;
	reply[0] = status;
	store_le16(reply + 1, value_len);
	if (value_len > 0)
		memcpy(reply + BPX_KV_REPLY_HEADER_BYTES, value, value_len);
	return (int)len;
}

static int kv_get(const struct kv_sm *kv, const struct bpx_kv_cmd *c,
		  uint8_t *reply, uint32_t reply_cap)
{
	bool found;
	uint64_t h = key_hash(c->key, c->key_len);
	uint32_t i = kv_probe(kv, c->key, c->key_len, h, &found);
	if (!found)
		return kv_reply(reply, reply_cap, BPX_KV_NOT_FOUND, NULL, 0);
	const struct kv_entry *e = &kv->slots[i];
	return kv_reply(reply, reply_cap, BPX_KV_OK, e->value, e->value_len);
}

static int kv_put(struct kv_sm *kv, const struct bpx_kv_cmd *c, uint8_t *reply,
		  uint32_t reply_cap)
{
	bool found;
	uint64_t h = key_hash(c->key, c->key_len);
	uint32_t i = kv_probe(kv, c->key, c->key_len, h, &found);
	if (!found && kv->count == kv->capacity)
		return kv_reply(reply, reply_cap, BPX_KV_FULL, NULL, 0);
	int len = kv_reply(reply, reply_cap, BPX_KV_OK, NULL, 0);
	if (len < 0)
		return len;
	if (found)
		kv_set_value(kv, &kv->slots[i], c->value, c->value_len);
	else
		kv_insert_at(kv, i, c->key, c->key_len, h, c->value,
			     c->value_len);
	return len;
}

static int kv_del(struct kv_sm *kv, const struct bpx_kv_cmd *c, uint8_t *reply,
		  uint32_t reply_cap)
{
	bool found;
	uint64_t h = key_hash(c->key, c->key_len);
	uint32_t i = kv_probe(kv, c->key, c->key_len, h, &found);
	if (!found)
		return kv_reply(reply, reply_cap, BPX_KV_NOT_FOUND, NULL, 0);
	const struct kv_entry *e = &kv->slots[i];
	int len = kv_reply(reply, reply_cap, BPX_KV_OK, e->value, e->value_len);
	if (len < 0)
		return len;
	kv_remove_at(kv, i);
	return len;
}

static int kv_cas(struct kv_sm *kv, const struct bpx_kv_cmd *c, uint8_t *reply,
		  uint32_t reply_cap)
{
	bool found;
	uint64_t h = key_hash(c->key, c->key_len);
	uint32_t i = kv_probe(kv, c->key, c->key_len, h, &found);
	if (!found)
		return kv_reply(reply, reply_cap, BPX_KV_NOT_FOUND, NULL, 0);
	struct kv_entry *e = &kv->slots[i];
	bool match = e->value_len == c->value_len &&
		     memcmp(e->value, c->value, c->value_len) == 0;
	uint8_t status = match ? BPX_KV_OK : BPX_KV_CAS_MISMATCH;
	/* Both outcomes reply with the value held before the command. */
	int len = kv_reply(reply, reply_cap, status, e->value, e->value_len);
	if (len < 0 || !match)
		return len;
	kv_set_value(kv, e, c->new_value, c->new_len);
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
		return kv_reply(reply, reply_cap, BPX_KV_BAD_COMMAND, NULL, 0);
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
	KV_ASSERT(kv->count <= kv->capacity);
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

static uint64_t kv_digest(void *sm)
{
	const struct kv_sm *kv = sm;
	KV_ASSERT(kv != NULL);
	return kv->digest;
}

static size_t kv_snapshot_size(void *sm)
{
	const struct kv_sm *kv = sm;
	KV_ASSERT(kv != NULL);
	return KV_SNAPSHOT_HEADER_BYTES +
	       (size_t)kv->count * KV_SNAPSHOT_ENTRY_HEADER_BYTES +
	       (size_t)kv->data_bytes;
}

static bool entry_less(const struct kv_entry *a, const struct kv_entry *b)
{
	return key_cmp(a->key, a->key_len, b->key, b->key_len) < 0;
}

static void sift_down(const struct kv_entry **v, size_t root, size_t n)
{
	for (;;) {
		size_t child = 2 * root + 1;
		if (child >= n)
			return;
		if (child + 1 < n && entry_less(v[child], v[child + 1]))
			child++;
		if (!entry_less(v[root], v[child]))
			return;
		const struct kv_entry *t = v[root];
		v[root] = v[child];
		v[child] = t;
		root = child;
	}
}

/* Heapsort: O(n log n) worst case and no memory of its own, where qsort
 * may allocate. Keys are unique, so the order is total and deterministic. */
static void sort_entries(const struct kv_entry **v, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(v, i, n);
	for (size_t end = n; end-- > 1;) {
		const struct kv_entry *t = v[0];
		v[0] = v[end];
		v[end] = t;
		sift_down(v, 0, end);
	}
}

static int64_t kv_snapshot(void *sm, uint8_t *buf, size_t cap)
{
	struct kv_sm *kv = sm;
	size_t need = kv_snapshot_size(kv);
	if (cap < need)
		return -BPX_ETOOBIG;
	KV_ASSERT(buf != NULL);

	uint32_t n = 0;
	for (uint32_t i = 0; i <= kv->slot_mask; i++)
		if (kv->slots[i].key_len != 0)
			kv->order[n++] = &kv->slots[i];
	KV_ASSERT(n == kv->count);
	sort_entries(kv->order, n);

	store_le(buf, KV_SNAPSHOT_MAGIC, 4);
	store_le(buf + 4, KV_SNAPSHOT_VERSION, 4);
	store_le(buf + 8, n, 4);
	store_le(buf + 12, kv->digest, 8);
	size_t pos = KV_SNAPSHOT_HEADER_BYTES;
	for (uint32_t i = 0; i < n; i++) {
		const struct kv_entry *e = kv->order[i];
		buf[pos] = e->key_len;
		store_le16(buf + pos + 1, e->value_len);
		pos += KV_SNAPSHOT_ENTRY_HEADER_BYTES;
		memcpy(buf + pos, e->key, e->key_len);
		pos += e->key_len;
		memcpy(buf + pos, e->value, e->value_len);
		pos += e->value_len;
	}
	KV_ASSERT(pos == need);
	return (int64_t)pos;
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

/* Checks a whole snapshot against this instance without touching its
 * state, so restore() can fail with the state unchanged. On success gives
 * the entry count. */
static bool snap_valid(const struct kv_sm *kv, const uint8_t *buf, size_t len,
		       uint32_t *count)
{
	if (buf == NULL || len < KV_SNAPSHOT_HEADER_BYTES)
		return false;
	if (load_le(buf, 4) != KV_SNAPSHOT_MAGIC ||
	    load_le(buf + 4, 4) != KV_SNAPSHOT_VERSION)
		return false;
	uint64_t n = load_le(buf + 8, 4);
	uint64_t digest = load_le(buf + 12, 8);
	if (n > kv->capacity)
		return false;

	struct kv_snap_entry e, prev = { 0 };
	size_t pos = KV_SNAPSHOT_HEADER_BYTES;
	uint64_t sum = 0;
	for (uint64_t i = 0; i < n; i++) {
		if (!snap_next(buf, len, &pos, &e))
			return false;
		/* Strictly ascending keys: sorted, and no key twice. */
		if (i > 0 &&
		    key_cmp(prev.key, prev.key_len, e.key, e.key_len) >= 0)
			return false;
		sum += entry_hash(e.key, e.key_len, e.value, e.value_len);
		prev = e;
	}
	/* No trailing bytes, and the digest catches a flipped value byte
	 * that every length check above lets through. */
	if (pos != len || sum != digest)
		return false;
	*count = (uint32_t)n;
	return true;
}

static int kv_restore(void *sm, const uint8_t *buf, size_t len)
{
	struct kv_sm *kv = sm;
	uint32_t n;
	KV_ASSERT(kv != NULL);
	if (!snap_valid(kv, buf, len, &n))
		return -BPX_EMALFORMED;

	for (uint32_t i = 0; i <= kv->slot_mask; i++)
		kv->slots[i].key_len = 0;
	kv->count = 0;
	kv->data_bytes = 0;
	kv->digest = 0;

	struct kv_snap_entry e;
	size_t pos = KV_SNAPSHOT_HEADER_BYTES;
	for (uint32_t i = 0; i < n; i++) {
		bool ok = snap_next(buf, len, &pos, &e);
		KV_ASSERT(ok); /* snap_valid checked every entry */
		bool found;
		uint64_t h = key_hash(e.key, e.key_len);
		uint32_t slot = kv_probe(kv, e.key, e.key_len, h, &found);
		KV_ASSERT(!found);
		kv_insert_at(kv, slot, e.key, e.key_len, h, e.value,
			     e.value_len);
	}
	KV_ASSERT(pos == len && kv->digest == load_le(buf + 12, 8));
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
};

const struct bpx_sm_ops *bpx_kv_ops(void)
{
	return &kv_ops;
}
