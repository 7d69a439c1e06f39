/* The simulator's disk (--durable): one per replica, holding what a caller
 * of the consensus core writes in durable mode (consensus.h,
 * "Durability"): a log of PERSIST records and a snapshot. Records are
 * bytes, length-prefixed and checksummed as a real log's are, so that
 * replay meets torn and corrupted records the way bypaxd's does:
 *
 *   u32 payload length, u32 its complement, u32 FNV-1a of the payload,
 *   payload: u8 flags, u64 slot, u64 ballot, u64 commit_index,
 *            u32 value length, value.
 *
 * A record is torn (a write cut short by a crash) when the file ends
 * inside it, or when it is the last in the file and fails its checksum
 * (its header landed, later sectors did not): replay cuts the file there.
 * A record that fails its checks and is not the last is corrupt (a bad
 * sector in the middle): replay stops there and names it, and the replica
 * stays down. A bad sector in the very last record looks like a torn
 * write and is cut, as in any such log: the simulator corrupts only
 * records with another after them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

#define REC_HEADER 12u
#define REC_FIXED 29u /* flags, slot, ballot, commit_index, value length */

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}
static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}
static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}
static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static uint32_t checksum(const uint8_t *p, size_t n)
{
	uint32_t h = 0x811c9dc5u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x01000193u;
	return h;
}

static uint8_t *reserve(struct sim_disk *d, size_t more)
{
	if (d->len + more > d->cap) {
		size_t cap = d->cap ? d->cap : 4096;
		while (cap < d->len + more)
			cap *= 2;
		d->bytes = realloc(d->bytes, cap);
		if (d->bytes == NULL)
			exit(2);
		d->cap = cap;
	}
	return d->bytes + d->len;
}

void sim_disk_append(struct sim_disk *d, const struct px_msg *rec)
{
	uint32_t plen = REC_FIXED + rec->value_len;
	uint8_t *p = reserve(d, REC_HEADER + plen);
	uint8_t *pay = p + REC_HEADER;
	pay[0] = rec->flags;
	put64(pay + 1, rec->slot);
	put64(pay + 9, rec->ballot);
	put64(pay + 17, rec->commit_index);
	put32(pay + 25, rec->value_len);
	if (rec->value_len > 0)
		memcpy(pay + REC_FIXED, rec->value, rec->value_len);
	put32(p, plen);
	put32(p + 4, ~plen);
	put32(p + 8, checksum(pay, plen));
	d->last_record = d->len;
	d->len += REC_HEADER + plen;
	d->records++;
}

/* Counts the whole records from the start, and where the last begins. */
static void rescan(struct sim_disk *d)
{
	size_t off = 0;
	d->records = 0;
	d->last_record = 0;
	while (d->len - off >= REC_HEADER) {
		size_t whole = REC_HEADER + get32(d->bytes + off);
		if (whole > d->len - off)
			break;
		d->last_record = off;
		d->records++;
		off += whole;
	}
}

void sim_disk_sync(struct sim_disk *d)
{
	if (d->synced < d->len)
		d->syncs++;
	d->synced = d->len;
}

bool sim_disk_pending(const struct sim_disk *d)
{
	return d->synced < d->len;
}

/* What a crash leaves: the synced bytes, and with `torn` a part of the
 * write that was in flight (the first unsynced record, or else a copy of
 * the last record being written again), cut anywhere inside it. */
/* The record of `whole` bytes at off, as a crash leaves it torn: cut short
 * anywhere, or whole but with its bytes from some point after the header
 * garbled (the sectors that never landed). */
static void tear(struct sim_disk *d, size_t off, size_t whole, uint64_t rnd)
{
	if ((rnd >> 40) & 1) {
		d->len = off + 1 + rnd % (whole - 1);
		return;
	}
	d->len = off + whole;
	for (size_t k = REC_HEADER + rnd % (whole - REC_HEADER); k < whole; k++)
		d->bytes[off + k] ^= (uint8_t)(0x5au | (k & 0x80u));
}

/* Where the whole records a crash keeps of the unsynced ones end: the disk
 * may have written any prefix of them before it stopped (none, some, or
 * all; in order: a cache that reorders writes is beyond this model). */
static size_t kept_unsynced(const struct sim_disk *d, uint64_t rnd)
{
	uint32_t n = 0;
	for (size_t off = d->synced; off < d->len;
	     off += REC_HEADER + get32(d->bytes + off))
		n++;
	uint32_t keep = (uint32_t)((rnd >> 48) % (n + 1u));
	size_t off = d->synced;
	for (uint32_t i = 0; i < keep; i++)
		off += REC_HEADER + get32(d->bytes + off);
	return off;
}

void sim_disk_crash(struct sim_disk *d, bool torn, uint64_t rnd)
{
	if (d->len > d->synced) {
		size_t from = kept_unsynced(d, rnd);
		d->kept_unsynced += from > d->synced;
		bool cut = from < d->len;
		size_t whole = cut ? REC_HEADER + get32(d->bytes + from) : 0;
		d->len = from;
		d->synced = from;
		if (torn && cut)
			tear(d, from, whole, rnd);
		d->torn += torn && cut;
		rescan(d);
		return;
	}
	size_t from = d->synced;
	if (!torn || d->records == 0)
		return;
	size_t whole = d->len - d->last_record;
	uint8_t *p = reserve(d, whole);
	memcpy(p, d->bytes + d->last_record, whole);
	tear(d, from, whole, rnd);
	d->synced = from; /* the torn bytes never reached a sync */
	d->torn++;
	rescan(d);
}

/* Parses the record at off. Returns its length, 0 for a torn tail, or -1
 * for a corrupt record (one that is not the last in the file). */
static long parse_at(const struct sim_disk *d, size_t off, struct px_msg *m)
{
	if (d->len - off < REC_HEADER)
		return 0;
	const uint8_t *p = d->bytes + off;
	uint32_t plen = get32(p);
	if (get32(p + 4) != ~plen || plen < REC_FIXED)
		return -1; /* a whole header is never torn */
	if (d->len - off - REC_HEADER < plen)
		return 0;
	const uint8_t *pay = p + REC_HEADER;
	if (checksum(pay, plen) != get32(p + 8) ||
	    get32(pay + 25) != plen - REC_FIXED)
		return off + REC_HEADER + plen == d->len ? 0 : -1;
	memset(m, 0, sizeof(*m));
	m->type = PX_MSG_PERSIST;
	m->flags = pay[0];
	m->slot = get64(pay + 1);
	m->ballot = get64(pay + 9);
	m->commit_index = get64(pay + 17);
	m->value_len = plen - REC_FIXED;
	m->value = m->value_len > 0 ? pay + REC_FIXED : NULL;
	return (long)(REC_HEADER + plen);
}

int sim_disk_replay(struct sim_disk *d, struct px_replica *r, uint8_t self,
		    char *why, size_t why_len)
{
	if (d->snap_len > 0) {
		struct px_outbox none = { .msgs = NULL, .count = 0, .cap = 0 };
		int rc = px_snapshot_install(r, 0, d->snap, d->snap_len, &none);
		if (rc != 0) {
			snprintf(why, why_len, "its disk snapshot: %s",
				 bpx_strerror(rc));
			return -1;
		}
	}
	size_t off = 0, k = 0;
	while (off < d->len) {
		struct px_msg m;
		long n = parse_at(d, off, &m);
		if (n == 0)
			break; /* torn: cut below */
		if (n < 0) {
			snprintf(why, why_len,
				 "record %zu at offset %zu is "
				 "corrupt",
				 k, off);
			return -1;
		}
		m.from = m.to = self;
		int rc = px_durable_replay(r, &m);
		if (rc != 0) {
			snprintf(why, why_len,
				 "replay refused record %zu at "
				 "offset %zu (flags %u): %s",
				 k, off, m.flags, bpx_strerror(rc));
			return -2;
		}
		off += (size_t)n;
		k++;
	}
	if (off < d->len)
		d->cuts++;
	d->len = d->synced = off;
	rescan(d);
	return 0;
}

/* Flips one byte of a synced record that has another after it. */
bool sim_disk_corrupt(struct sim_disk *d, uint64_t rnd)
{
	if (d->records < 2 || d->last_record == 0 ||
	    d->synced <= d->last_record)
		return false;
	size_t at = rnd % d->last_record;
	d->bytes[at] ^= (uint8_t)(1u + (rnd >> 32) % 255u);
	return true;
}

/* Keeps the records a snapshot at `index` does not cover, then a PROMISE
 * of the replica's promise: the caller's recycling (consensus.h). */
static void recycle(struct sim_disk *d, uint64_t index, uint64_t promised,
		    uint8_t self)
{
	struct sim_disk kept = { 0 };
	size_t off = 0;
	while (off < d->len) {
		struct px_msg m;
		long n = parse_at(d, off, &m);
		if (n <= 0)
			break; /* only synced, whole records get here */
		bool covered =
			m.flags == PX_PERSIST_PROMISE ||
			(m.flags == PX_PERSIST_ACCEPTED && m.slot < index) ||
			(m.flags == PX_PERSIST_COMMIT &&
			 m.commit_index <= index);
		if (!covered)
			sim_disk_append(&kept, &m);
		off += (size_t)n;
	}
	if (promised != 0) {
		struct px_msg p = { .type = PX_MSG_PERSIST,
				    .from = self,
				    .to = self,
				    .flags = PX_PERSIST_PROMISE,
				    .ballot = promised };
		sim_disk_append(&kept, &p);
	}
	free(d->bytes);
	d->bytes = kept.bytes;
	d->cap = kept.cap;
	d->len = d->synced = kept.len;
	d->last_record = kept.last_record;
	d->records = kept.records;
	d->recycles++;
}

int sim_disk_save_snapshot(struct sim_disk *d, const struct px_replica *r,
			   uint8_t self, bool recycle_after)
{
	size_t cap = px_snapshot_size(r);
	uint8_t *buf = malloc(cap);
	if (buf == NULL)
		exit(2);
	int64_t n = px_snapshot_save(r, buf, cap);
	if (n < 0) {
		free(buf);
		return (int)n;
	}
	free(d->snap);
	d->snap = buf;
	d->snap_len = (size_t)n;
	/* The snapshot is durable now: the records below it may go. Or not
	 * yet (a crash between the two, or a recycle that failed): replay
	 * then meets the snapshot and the records it covers. */
	sim_disk_sync(d);
	if (recycle_after)
		recycle(d, px_applied_index(r), px_promised_ballot(r), self);
	return 0;
}

void sim_disk_free(struct sim_disk *d)
{
	free(d->bytes);
	free(d->snap);
	memset(d, 0, sizeof(*d));
}
