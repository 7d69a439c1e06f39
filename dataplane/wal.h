/* bypaxd's write-ahead log: what a durable replica must not forget across
 * a crash (docs/deploy.md, "Durable mode"). Plain C and POSIX, no DPDK, so
 * tests/unit/test_wal.c drives it directly.
 *
 * A log is a directory of segment files wal-<seq, 16 hex digits>.seg,
 * each preallocated (fallocate) to segment_bytes and filled from the
 * front. A segment starts with a 32-byte header; records follow back to
 * back, little-endian:
 *
 *   segment header: u32 magic "BPXW", u32 format version (2), u64 seq,
 *                   u64 segment bytes, u32 salt (random at creation),
 *                   u32 CRC-32C of bytes 0..27
 *   record:         u32 magic "BPXR", u32 CRC-32C (over the segment's
 *                   seq and salt, then bytes 8.. of the record to its
 *                   end),
 *                   u32 payload length L, u8 type, 3 bytes zero,
 *                   u64 tag, L bytes payload
 *
 * Type 0 (DP_WAL_TYPE_BATCH) is the log's own: an empty record that
 * starts each group commit. It is written only once everything before it
 * is on the disk, so at replay a damaged record that one follows was
 * synced (corruption: a hard error), and one that none follows belongs to
 * the last group commit, which a crash may have torn (cut).
 *
 * The other types and the payload are the caller's; the tag is a position the caller
 * recycles by (bypaxd: the slot of an accepted value, 0 for records that
 * hold no slot). What is preallocated and not yet written reads as zeros.
 *
 * Group commit: dp_wal_append copies a record into a buffer (written out,
 * unsynced, when it fills); dp_wal_sync writes what is buffered and makes
 * it durable with one fdatasync. Nothing here syncs per record.
 *
 * Errors are sticky: after a failed write, allocation or sync (disk full,
 * EIO) every later call returns -BPX_EIO, and dp_wal_error_text says what
 * failed, on which file. Records appended since the last good sync may or
 * may not be on the disk: the caller must never act on them.
 *
 * Not thread-safe: one owner (the replica's worker).
 */
#ifndef BYPAX_DP_WAL_H
#define BYPAX_DP_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DP_WAL_SEGMENT_MAGIC 0x57585042u /* "BPXW" */
#define DP_WAL_RECORD_MAGIC 0x52585042u  /* "BPXR" */
#define DP_WAL_FORMAT_VERSION 2u /* 2: a salt in each segment header */
#define DP_WAL_SEGMENT_HEADER_BYTES 32u
#define DP_WAL_RECORD_HEADER_BYTES 24u
#define DP_WAL_TYPE_BATCH 0u /* reserved: the start of a group commit */
#define DP_WAL_PAYLOAD_BYTES_MAX 65536u
#define DP_WAL_SEGMENT_BYTES_MIN 4096u
#define DP_WAL_SEGMENT_BYTES_MAX (1ull << 32)
#define DP_WAL_SEGMENTS_MAX 4096u
#define DP_WAL_PATH_MAX 512u
#define DP_WAL_ERROR_TEXT_MAX 768u

/* The operations a fault hook may fail (tests: disk full, EIO). */
enum dp_wal_op {
	DP_WAL_OP_CREATE,   /* open a new segment file */
	DP_WAL_OP_ALLOCATE, /* fallocate a segment */
	DP_WAL_OP_WRITE,    /* pwrite records or a header */
	DP_WAL_OP_SYNC,     /* fdatasync / fsync */
};

struct dp_wal_config {
	const char *dir;           /* exists; holds nothing else named wal-* */
	uint64_t segment_bytes;    /* DP_WAL_SEGMENT_BYTES_MIN..MAX */
	uint32_t buffer_bytes;     /* the group commit buffer: 1024 ..
				      segment_bytes - 32; a record must fit
				      it (header and payload) */
	/* Fault injection: called before each operation; a nonzero return
	 * is taken as that errno from the operation. NULL in production. */
	int (*fault)(void *arg, enum dp_wal_op op);
	void *fault_arg;
};

/* What opening the log found and did. */
struct dp_wal_replay {
	uint64_t records;     /* handed to the callback */
	uint32_t segments;    /* segment files read */
	uint64_t torn_bytes;  /* nonzero bytes cut at the newest segment's
				 end (0: no torn tail) */
	uint64_t torn_offset; /* where the cut began */
	char torn_file[DP_WAL_PATH_MAX + 64]; /* dir/segment name */
};

struct dp_wal_stats {
	uint64_t syncs;            /* fdatasync/fsync calls */
	uint64_t bytes_written;    /* record bytes written */
	uint64_t records_appended;
	uint64_t segments_created;
	uint64_t segments_recycled;
};

struct dp_wal;

/* One record read back, in order. Return 0 to go on, or a negative
 * -BPX_E* error to stop the replay (dp_wal_open then fails with it, its
 * message naming the record's file and offset). */
typedef int (*dp_wal_record_fn)(void *arg, uint8_t type, uint64_t tag,
				const uint8_t *payload, uint32_t len);

/* Opens the log in cfg->dir: reads every segment in order, checks every
 * record, hands each to fn (NULL: none; not the log's own markers), cuts
 * a torn tail (a bad record in the newest segment that no later group
 * commit follows: *info says where), and positions for appending;
 * an empty directory gets a first segment. Allocates; call at start-up.
 * The directory is locked (DIR/wal.lock, flock) until dp_wal_close.
 * Returns 0, -BPX_EINVAL (bad config), -BPX_ENOMEM, -BPX_EBUSY (another
 * process holds the lock), -BPX_EIO (a system
 * call failed), -BPX_EMALFORMED (a bad record or segment that is not a
 * torn tail, a missing segment), or fn's error; err then says what and
 * where ("FILE at byte N: ..."). */
int dp_wal_open(const struct dp_wal_config *cfg, dp_wal_record_fn fn,
		void *arg, struct dp_wal_replay *info, struct dp_wal **out,
		char *err, size_t err_len);
void dp_wal_close(struct dp_wal *w);

/* Queues one record (type 1..255). Returns 0, -BPX_EINVAL (type 0),
 * -BPX_ETOOBIG (payload over DP_WAL_PAYLOAD_BYTES_MAX, or the record and
 * a marker over buffer_bytes) or the sticky error. It may write (the buffer
 * is full) or start a segment (this one is full), never sync the
 * record itself. */
int dp_wal_append(struct dp_wal *w, uint8_t type, uint64_t tag,
		  const void *payload, uint32_t len);
/* Makes every appended record durable: one write of the buffer, one
 * fdatasync. Returns 0 (also with nothing to do) or the sticky error. */
int dp_wal_sync(struct dp_wal *w);
/* Whether records were appended since the last successful sync. */
bool dp_wal_unsynced(const struct dp_wal *w);
/* Deletes the oldest segments whose every record has a tag below
 * tag_below, never the one being written. The caller has made durable
 * what replaces them (a snapshot, and re-appended and synced records that
 * carry no tag). Returns segments deleted, or the sticky error. */
int dp_wal_recycle(struct dp_wal *w, uint64_t tag_below);

/* 0, or the sticky error (-BPX_EIO), with a text naming the operation,
 * file and errno ("" when none). */
int dp_wal_error(const struct dp_wal *w);
const char *dp_wal_error_text(const struct dp_wal *w);
const struct dp_wal_stats *dp_wal_stats(const struct dp_wal *w);
/* Segment files held now. */
uint32_t dp_wal_segment_count(const struct dp_wal *w);

/* Writes n bytes to dir/name atomically: a temporary file, fsync, rename
 * over name, fsync of dir. A reader sees the old file or the new one,
 * whole. Returns 0 or -BPX_EIO with err naming the step and the file. */
int dp_wal_write_file_atomic(const char *dir, const char *name,
			     const uint8_t *p, size_t n, char *err,
			     size_t err_len);

#endif
