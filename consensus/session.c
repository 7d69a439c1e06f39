/* The client session table: the last applied request of each session and
 * its reply, so a retry gets the cached reply instead of a second apply. It
 * is replicated state: every replica inserts and evicts identically.
 *
 * Why no write is applied twice, for any seq (learner.c applies, proposer.c
 * answers early):
 *
 * 1. A write reaches the state machine only when a replica applies a
 *    chosen slot. Every replica applies the same slots in the same order,
 *    from the same bytes, through the same branches, so they agree on what
 *    was applied; "applied twice" means two log entries carrying one
 *    (session id, seq), both taking the apply branch. Two such entries are
 *    normal: a client resends after a timeout, the network duplicates or
 *    delays a packet, a new leader re-proposes what its predecessor had in
 *    flight, and each copy may land in its own slot.
 * 2. The apply branch needs the session in the table with last_seq < seq,
 *    and leaves last_seq = seq. While a session stays in the table its
 *    last_seq only grows, so a second entry for (id, seq) finds
 *    last_seq >= seq: it gets the cached reply or STALE, and nothing is
 *    applied.
 * 3. A session leaves the table only by eviction, and then never comes
 *    back: session ids are made only here, by px_session_id_make from the
 *    (slot, index in the batch) of the OPEN whose apply creates the
 *    session. A log position is applied once in a replica's history, so
 *    each id is created at most once, ever; a client cannot name a session
 *    into being (its own ids have bit 63 clear, and no write creates a
 *    session). After an eviction every entry for that id, whatever its seq,
 *    seq 1 included, finds no session and is EXPIRED, never applied.
 *    So for each id the applied seqs strictly increase over the one stretch
 *    of time its session exists: no (id, seq) is applied twice.
 * 4. Snapshots carry the table, ids and last_seqs included, as it stood at
 *    the snapshot's applied index, and an install replaces state and table
 *    together: the replica is then exactly where applying those slots would
 *    have left it, and every slot it applies afterwards is a new position,
 *    so the ids it creates are new too.
 * 5. The leader's shortcuts apply nothing: it answers from a session it
 *    holds (the cached reply, or STALE), or EXPIRED for a client id without
 *    bit 63, which no OPEN ever assigns. An id it does not hold yet (an OPEN
 *    chosen but not applied here, after a leader change) goes to the log,
 *    where rule 3 decides.
 * 6. An OPEN is not deduplicated: a retried or re-proposed OPEN creates a
 *    second session, with its own id. No write names both ids, so this
 *    costs one entry of the table until the spare session is evicted. */
#include "internal.h"

_Static_assert(PX_SEQ_WRITE_MAX < PX_SEQ_OPEN_BIT &&
		       PX_SEQ_OPEN_BIT < PX_SEQ_READ_BIT,
	       "write seqs, OPENs and reads are told apart in a batch");
_Static_assert(PX_VALUE_BYTES_MAX / PX_BATCH_ENTRY_HEADER_BYTES <
		       (1u << PX_SESSION_INDEX_BITS),
	       "every request of a batch has its own index");

uint64_t px_session_id_make(uint64_t slot, uint32_t index)
{
	PX_ASSERT(slot <= PX_SESSION_SLOT_MAX);
	PX_ASSERT(index < (1u << PX_SESSION_INDEX_BITS));
	return PX_SESSION_ID_BIT | (slot << PX_SESSION_INDEX_BITS) | index;
}

_Static_assert(sizeof(struct px_session) == PX_ALIGN,
	       "a session is one cache line");

static uint32_t index_slots_for(uint32_t cap)
{
	uint32_t n = 1;
	while (n < 2 * cap)
		n <<= 1;
	return n;
}

size_t px_session_mem_size(uint32_t session_max)
{
	return (size_t)session_max *
		       (sizeof(struct px_session) +
			sizeof(struct px_session_link) + PX_REPLY_BYTES_MAX) +
	       (size_t)index_slots_for(session_max) *
		       (sizeof(uint64_t) + sizeof(uint32_t));
}

/* The entries first, so they keep mem's alignment; the long replies last:
 * they are touched only by replies longer than PX_SESSION_REPLY_INLINE. */
void px_session_init(struct px_session_table *t, void *mem, uint32_t cap)
{
	PX_ASSERT(cap >= 1 && cap < PX_SESSION_NONE);
	uint32_t slots = index_slots_for(cap);
	t->entries = mem;
	t->lru = (struct px_session_link *)(t->entries + cap);
	t->scratch = (uint64_t *)(t->lru + cap);
	t->index = (uint32_t *)(t->scratch + slots);
	t->replies = (uint8_t *)(t->index + slots);
	t->index_slots = slots;
	t->cap = cap;
	t->count = 0;
	t->lru_head = PX_SESSION_NONE;
	t->lru_tail = PX_SESSION_NONE;
}

static uint32_t hash_client(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull;
	id ^= id >> 33;
	return (uint32_t)id;
}

/* Index cells hold entry number + 1; 0 is empty. */
static uint32_t *index_cell(struct px_session_table *t, uint64_t client_id)
{
	uint32_t mask = t->index_slots - 1;
	for (uint32_t i = hash_client(client_id) & mask;; i = (i + 1) & mask) {
		uint32_t e = t->index[i];
		if (e == 0 || t->entries[e - 1].client_id == client_id)
			return &t->index[i];
	}
}

struct px_session *px_session_find(struct px_session_table *t,
				   uint64_t client_id)
{
	uint32_t e = *index_cell(t, client_id);
	return e == 0 ? NULL : &t->entries[e - 1];
}

/* Linear-probing delete with backward shift, so lookups never need
 * tombstones. */
static void index_remove(struct px_session_table *t, uint64_t client_id)
{
	uint32_t mask = t->index_slots - 1;
	uint32_t hole = (uint32_t)(index_cell(t, client_id) - t->index);
	PX_ASSERT(t->index[hole] != 0);
	t->index[hole] = 0;
	for (uint32_t i = (hole + 1) & mask; t->index[i] != 0;
	     i = (i + 1) & mask) {
		uint32_t home =
			hash_client(t->entries[t->index[i] - 1].client_id) & mask;
		/* Move i into the hole if its home is not in (hole, i]. */
		bool stays = hole <= i ? (home > hole && home <= i)
				       : (home > hole || home <= i);
		if (!stays) {
			t->index[hole] = t->index[i];
			t->index[i] = 0;
			hole = i;
		}
	}
}

static uint32_t entry_number(const struct px_session_table *t,
			     const struct px_session *s)
{
	PX_ASSERT(s >= t->entries && s < t->entries + t->count);
	return (uint32_t)(s - t->entries);
}

static void lru_unlink(struct px_session_table *t, uint32_t e)
{
	struct px_session_link *l = &t->lru[e];
	if (l->prev == PX_SESSION_NONE)
		t->lru_head = l->next;
	else
		t->lru[l->prev].next = l->next;
	if (l->next == PX_SESSION_NONE)
		t->lru_tail = l->prev;
	else
		t->lru[l->next].prev = l->prev;
}

/* The order of the list: by last_slot, ties by client id. It must be a
 * function of replicated state alone: snapshots save the sessions in
 * list order, and replicas compare snapshots byte for byte (a replica that
 * applied a slot's batch and one that loaded it from a snapshot must not
 * differ in how they order that slot's sessions). */
static bool session_precedes(const struct px_session *a,
			     const struct px_session *b)
{
	return a->last_slot < b->last_slot ||
	       (a->last_slot == b->last_slot && a->client_id < b->client_id);
}

/* The list stays in that order. A replica applies slots in order, so e
 * belongs at the end, or a few places before it (the sessions of its own
 * slot with higher ids); only a caller that goes back in slots (a unit
 * test) walks further. */
static void lru_link_sorted(struct px_session_table *t, uint32_t e)
{
	const struct px_session *s = &t->entries[e];
	uint32_t after = t->lru_tail;
	while (after != PX_SESSION_NONE &&
	       session_precedes(s, &t->entries[after]))
		after = t->lru[after].prev;
	uint32_t before =
		after == PX_SESSION_NONE ? t->lru_head : t->lru[after].next;
	t->lru[e] = (struct px_session_link){ .prev = after, .next = before };
	if (after == PX_SESSION_NONE)
		t->lru_head = e;
	else
		t->lru[after].next = e;
	if (before == PX_SESSION_NONE)
		t->lru_tail = e;
	else
		t->lru[before].prev = e;
}

/* The least recently applied session (ties: lowest client id) goes first:
 * a rule of replicated state only, so every replica evicts the same one.
 * It is the list's head (session_precedes). */
static uint32_t pick_victim(const struct px_session_table *t)
{
	uint32_t victim = t->lru_head;
	PX_ASSERT(victim != PX_SESSION_NONE);
	uint32_t next = t->lru[victim].next;
	PX_ASSERT(next == PX_SESSION_NONE ||
		  session_precedes(&t->entries[victim], &t->entries[next]));
	return victim;
}

struct px_session *px_session_insert(struct px_session_table *t,
				     uint64_t client_id, uint64_t slot)
{
	PX_ASSERT(px_session_find(t, client_id) == NULL);
	uint32_t e;
	if (t->count < t->cap) {
		e = t->count++;
	} else {
		e = pick_victim(t);
		lru_unlink(t, e);
		index_remove(t, t->entries[e].client_id);
	}
	struct px_session *s = &t->entries[e];
	memset(s, 0, offsetof(struct px_session, reply_inline));
	s->client_id = client_id;
	s->last_slot = slot;
	s->in_use = true;
	lru_link_sorted(t, e);
	*index_cell(t, client_id) = e + 1;
	return s;
}

void px_session_touch(struct px_session_table *t, struct px_session *s,
		      uint64_t slot)
{
	uint32_t e = entry_number(t, s);
	/* Applied again in the same slot: its place in the order holds. */
	if (s->last_slot == slot)
		return;
	s->last_slot = slot;
	struct px_session_link *l = &t->lru[e];
	/* Already last, and still in order: the usual case for a client
	 * with several requests in one batch. */
	if (l->next == PX_SESSION_NONE &&
	    (l->prev == PX_SESSION_NONE ||
	     session_precedes(&t->entries[l->prev], s)))
		return;
	lru_unlink(t, e);
	lru_link_sorted(t, e);
}

static uint8_t *reply_bytes(const struct px_session_table *t,
			    const struct px_session *s, uint32_t reply_len)
{
	if (reply_len <= PX_SESSION_REPLY_INLINE)
		return (uint8_t *)s->reply_inline;
	return t->replies +
	       (size_t)entry_number(t, s) * PX_REPLY_BYTES_MAX;
}

void px_session_set_reply(struct px_session_table *t, struct px_session *s,
			  uint8_t status, const uint8_t *reply,
			  uint32_t reply_len)
{
	PX_ASSERT(reply_len <= PX_REPLY_BYTES_MAX);
	s->status = status;
	s->reply_len = (uint16_t)reply_len;
	if (reply_len > 0)
		memcpy(reply_bytes(t, s, reply_len), reply, reply_len);
}

const uint8_t *px_session_reply(const struct px_session_table *t,
				const struct px_session *s)
{
	return reply_bytes(t, s, s->reply_len);
}

void px_session_clear(struct px_session_table *t)
{
	memset(t->index, 0, (size_t)t->index_slots * sizeof(uint32_t));
	for (uint32_t i = 0; i < t->count; i++)
		t->entries[i].in_use = false;
	t->count = 0;
	t->lru_head = PX_SESSION_NONE;
	t->lru_tail = PX_SESSION_NONE;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t session_hash(const struct px_session_table *t,
			     const struct px_session *s)
{
	const uint8_t *reply = px_session_reply(t, s);
	uint64_t h = mix64(s->client_id) ^ mix64(s->last_seq + 0x51) ^
		     mix64(s->last_slot + 0xa3) ^ mix64(s->reply_len + 7u);
	for (uint32_t i = 0; i < s->reply_len; i++)
		h = (h ^ reply[i]) * 0x100000001b3ull;
	return mix64(h);
}

uint64_t px_session_digest(const struct px_session_table *t)
{
	uint64_t d = t->count;
	for (uint32_t i = 0; i < t->count; i++)
		d += session_hash(t, &t->entries[i]);
	return d;
}

#define SESSION_RECORD_HEADER 27u /* client, seq, slot, status, reply_len */

size_t px_session_snapshot_size(const struct px_session_table *t)
{
	size_t n = 4;
	for (uint32_t i = 0; i < t->count; i++)
		n += SESSION_RECORD_HEADER + t->entries[i].reply_len;
	return n;
}

/* Records in least-recently-applied order, so a load links each at the end
 * of the list (the order of records is not part of the format: a load
 * sorts them). */
size_t px_session_save(const struct px_session_table *t, uint8_t *buf)
{
	uint8_t *p = buf;
	px_put_u32(p, t->count);
	p += 4;
	uint32_t saved = 0;
	for (uint32_t e = t->lru_head; e != PX_SESSION_NONE;
	     e = t->lru[e].next) {
		const struct px_session *s = &t->entries[e];
		px_put_u64(p, s->client_id);
		px_put_u64(p + 8, s->last_seq);
		px_put_u64(p + 16, s->last_slot);
		p[24] = s->status;
		px_put_u16(p + 25, s->reply_len);
		memcpy(p + SESSION_RECORD_HEADER, px_session_reply(t, s),
		       s->reply_len);
		p += SESSION_RECORD_HEADER + s->reply_len;
		saved++;
	}
	PX_ASSERT(saved == t->count);
	return (size_t)(p - buf);
}

/* Whether the client of the record at buf + off appeared in an earlier
 * record. t->scratch (index_slots cells, zeroed first) holds offset + 1 of
 * the records so far, by client id hash; count <= cap leaves an empty cell,
 * as in the index. */
static bool seen_before(struct px_session_table *t, const uint8_t *buf,
			size_t off)
{
	uint32_t mask = t->index_slots - 1;
	uint64_t id = px_get_u64(buf + off);
	for (uint32_t i = hash_client(id) & mask;; i = (i + 1) & mask) {
		uint64_t cell = t->scratch[i];
		if (cell == 0) {
			t->scratch[i] = off + 1;
			return false;
		}
		if (px_get_u64(buf + cell - 1) == id)
			return true;
	}
}

/* Validates a saved table, and with dups != NULL also refuses a client
 * saved twice. Returns 0 and the bytes used, or -BPX_EMALFORMED. */
static int session_parse(uint32_t cap, struct px_session_table *dups,
			 const uint8_t *buf, size_t len, size_t *used)
{
	if (len < 4)
		return -BPX_EMALFORMED;
	uint32_t count = px_get_u32(buf);
	if (count > cap)
		return -BPX_EMALFORMED;
	size_t off = 4;
	for (uint32_t i = 0; i < count; i++) {
		if (len - off < SESSION_RECORD_HEADER)
			return -BPX_EMALFORMED;
		const uint8_t *p = buf + off;
		uint16_t reply_len = px_get_u16(p + 25);
		if (reply_len > PX_REPLY_BYTES_MAX ||
		    len - off - SESSION_RECORD_HEADER < reply_len)
			return -BPX_EMALFORMED;
		if (dups != NULL && seen_before(dups, buf, off))
			return -BPX_EMALFORMED;
		off += SESSION_RECORD_HEADER + reply_len;
	}
	*used = off;
	return 0;
}

/* A snapshot is validated whole before anything changes (snapshot.c), so
 * this finds every reason the load could fail, duplicates included. */
int px_session_validate(struct px_session_table *t, const uint8_t *buf,
			size_t len, size_t *used)
{
	memset(t->scratch, 0, (size_t)t->index_slots * sizeof(uint64_t));
	return session_parse(t->cap, t, buf, len, used);
}

static uint64_t record_slot(const uint8_t *buf, uint64_t off)
{
	return px_get_u64(buf + off + 16);
}

/* Records in the list's order (session_precedes): by slot, then id. */
static bool record_precedes(const uint8_t *buf, uint64_t a, uint64_t b)
{
	uint64_t sa = record_slot(buf, a), sb = record_slot(buf, b);
	return sa < sb || (sa == sb && px_get_u64(buf + a) < px_get_u64(buf + b));
}

static void sift_down(uint64_t *offs, size_t root, size_t n,
		      const uint8_t *buf)
{
	for (size_t child; (child = 2 * root + 1) < n; root = child) {
		if (child + 1 < n &&
		    record_precedes(buf, offs[child], offs[child + 1]))
			child++;
		if (!record_precedes(buf, offs[root], offs[child]))
			return;
		uint64_t tmp = offs[root];
		offs[root] = offs[child];
		offs[child] = tmp;
	}
}

/* Heapsort by (last_slot, client id): in place, O(n log n) whatever the
 * order saved (older versions saved records in entry order). */
static void sort_by_slot(uint64_t *offs, size_t n, const uint8_t *buf)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(offs, i, n, buf);
	for (size_t end = n; end-- > 1;) {
		uint64_t tmp = offs[0];
		offs[0] = offs[end];
		offs[end] = tmp;
		sift_down(offs, 0, end, buf);
	}
}

/* Loads a validated table: the records' offsets in t->scratch, sorted by
 * last_slot, then inserted in that order, each at the end of the list. */
static void session_load_sorted(struct px_session_table *t,
				const uint8_t *buf)
{
	uint32_t count = px_get_u32(buf);
	PX_ASSERT(count <= t->cap && count <= t->index_slots);
	uint64_t off = 4;
	for (uint32_t i = 0; i < count; i++) {
		t->scratch[i] = off;
		off += SESSION_RECORD_HEADER + px_get_u16(buf + off + 25);
	}
	sort_by_slot(t->scratch, count, buf);
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *p = buf + t->scratch[i];
		uint64_t id = px_get_u64(p);
		PX_ASSERT(px_session_find(t, id) == NULL); /* validated */
		struct px_session *s =
			px_session_insert(t, id, record_slot(p, 0));
		s->last_seq = px_get_u64(p + 8);
		px_session_set_reply(t, s, p[24], p + SESSION_RECORD_HEADER,
				     px_get_u16(p + 25));
	}
}

int px_session_load(struct px_session_table *t, const uint8_t *buf,
		    size_t len, size_t *used)
{
	if (t == NULL)
		return -BPX_EINVAL;
	int err = px_session_validate(t, buf, len, used);
	if (err != 0)
		return err;
	px_session_clear(t);
	session_load_sorted(t, buf);
	return 0;
}
