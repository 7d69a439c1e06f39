/* Unit tests for the write-ahead log (dataplane/wal.c): records come back
 * in order across segments, one fdatasync per group commit however many
 * records it holds, a torn tail is cut (a truncated or damaged last
 * record), a damaged record in the middle stops the replay with its file
 * and byte offset, disk full and EIO are sticky (through the fault hook:
 * no tiny file system without root), recycling deletes only the oldest
 * segments below the tag, a missing segment is found, and whole files are
 * replaced atomically; snapshots on disk are written by their thread and
 * read back checked. Each test works in its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bypax/consensus.h"
#include "bypax/errors.h"
#include "bypax/kv.h"
#include "disk_snapshot.h"
#include "wal.h"
#include "wal_px.h"

#define SEGMENT_BYTES 8192u
#define BUFFER_BYTES 4096u
#define RECORDS_MAX 4096u

struct seen {
	uint32_t count;
	uint8_t type[RECORDS_MAX];
	uint64_t tag[RECORDS_MAX];
	uint32_t len[RECORDS_MAX];
	uint8_t first_byte[RECORDS_MAX];
	int refuse_at; /* -1: take all */
};

struct fixture {
	char dir[64];
	struct dp_wal_config cfg;
	struct dp_wal *w;
	struct dp_wal_replay info;
	struct seen seen;
	char err[1024];
	/* The fault hook: fail op with errno after `after` calls of it. */
	enum dp_wal_op fault_op;
	int fault_errno;
	int fault_after;
};

static int on_record(void *arg, uint8_t type, uint64_t tag,
		     const uint8_t *payload, uint32_t len)
{
	struct seen *s = arg;
	if (s->refuse_at >= 0 && (uint32_t)s->refuse_at == s->count)
		return -BPX_EINVAL;
	assert_true(s->count < RECORDS_MAX);
	s->type[s->count] = type;
	s->tag[s->count] = tag;
	s->len[s->count] = len;
	s->first_byte[s->count] = len > 0 ? payload[0] : 0;
	s->count++;
	return 0;
}

static int fault_hook(void *arg, enum dp_wal_op op)
{
	struct fixture *f = arg;
	if (f->fault_errno == 0 || op != f->fault_op)
		return 0;
	return f->fault_after-- > 0 ? 0 : f->fault_errno;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	const char *tmp = getenv("TMPDIR");
	snprintf(f->dir, sizeof(f->dir), "%s/bpx-wal-XXXXXX",
		 tmp != NULL && strlen(tmp) < 40 ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	f->cfg = (struct dp_wal_config){ .dir = f->dir,
					 .segment_bytes = SEGMENT_BYTES,
					 .buffer_bytes = BUFFER_BYTES,
					 .fault = fault_hook,
					 .fault_arg = f };
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	dp_wal_close(f->w);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Closes the log (if open) and opens it again, replaying into f->seen. */
static int reopen(struct fixture *f)
{
	dp_wal_close(f->w);
	f->w = NULL;
	memset(&f->seen, 0, sizeof(f->seen));
	f->seen.refuse_at = -1;
	f->err[0] = '\0';
	return dp_wal_open(&f->cfg, on_record, &f->seen, &f->info, &f->w,
			   f->err, sizeof(f->err));
}

/* Record i: type 1 + i % 3, tag i, 20 + i % 50 bytes of value i. */
static void append_record(struct fixture *f, uint32_t i)
{
	uint8_t p[128];
	uint32_t len = 20 + i % 50;
	memset(p, (int)(i & 0xff), len);
	assert_int_equal(dp_wal_append(f->w, (uint8_t)(1 + i % 3), i, p, len),
			 0);
}

static uint32_t record_bytes(uint32_t i)
{
	return DP_WAL_RECORD_HEADER_BYTES + 20 + i % 50;
}

/* Each group commit starts with the log's own marker record, header only. */
#define MARKER_BYTES DP_WAL_RECORD_HEADER_BYTES
/* Where the first record of a segment's first group commit starts. */
#define FIRST_RECORD (DP_WAL_SEGMENT_HEADER_BYTES + MARKER_BYTES)

static void assert_records(const struct fixture *f, uint32_t n)
{
	assert_int_equal(f->seen.count, n);
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(f->seen.type[i], 1 + i % 3);
		assert_int_equal(f->seen.tag[i], i);
		assert_int_equal(f->seen.len[i], 20 + i % 50);
		assert_int_equal(f->seen.first_byte[i], i & 0xff);
	}
}

static void segment_path(const struct fixture *f, uint64_t seq, char *out,
			 size_t cap)
{
	snprintf(out, cap, "%s/wal-%016llx.seg", f->dir,
		 (unsigned long long)seq);
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static void flip_byte(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x5a;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

static void test_empty_dir_starts_a_segment(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	assert_int_equal(f->seen.count, 0);
	assert_int_equal(dp_wal_segment_count(f->w), 1);
	char path[128];
	segment_path(f, 1, path, sizeof(path));
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	/* Preallocated: the whole segment exists before any record. */
	assert_int_equal(st.st_size, SEGMENT_BYTES);
	assert_int_equal(reopen(f), 0);
	assert_int_equal(f->seen.count, 0);
	assert_int_equal(f->info.torn_bytes, 0);
}

/* Group commit: many records, one fdatasync. */
static void test_one_sync_per_group(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	uint64_t syncs = dp_wal_stats(f->w)->syncs;
	for (uint32_t i = 0; i < 40; i++)
		append_record(f, i);
	assert_true(dp_wal_unsynced(f->w));
	assert_int_equal(dp_wal_stats(f->w)->syncs, syncs); /* none yet */
	assert_int_equal(dp_wal_sync(f->w), 0);
	assert_false(dp_wal_unsynced(f->w));
	assert_int_equal(dp_wal_stats(f->w)->syncs, syncs + 1);
	assert_int_equal(dp_wal_sync(f->w), 0); /* nothing new: no sync */
	assert_int_equal(dp_wal_stats(f->w)->syncs, syncs + 1);
	assert_int_equal(dp_wal_stats(f->w)->records_appended, 40);
	assert_int_equal(reopen(f), 0);
	assert_records(f, 40);
	assert_int_equal(f->info.torn_bytes, 0);
}

/* Records run on across segments (8 KiB each here), in order. */
static void test_records_span_segments(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	for (uint32_t i = 0; i < 600; i++) {
		append_record(f, i);
		if (i % 25 == 24)
			assert_int_equal(dp_wal_sync(f->w), 0);
	}
	assert_int_equal(dp_wal_sync(f->w), 0);
	uint32_t segs = dp_wal_segment_count(f->w);
	assert_true(segs >= 4);
	assert_int_equal(reopen(f), 0);
	assert_records(f, 600);
	assert_int_equal(f->info.segments, segs);
	/* And appending goes on after them. */
	append_record(f, 600);
	assert_int_equal(dp_wal_sync(f->w), 0);
	assert_int_equal(reopen(f), 0);
	assert_records(f, 601);
}

/* A crash halfway through writing the last group: the record is cut
 * short (the file truncated in its middle). It is cut, the ones before
 * stay, and appending resumes where it began. */
static void test_truncated_tail_is_cut(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	uint64_t off = FIRST_RECORD;
	for (uint32_t i = 0; i < 10; i++) {
		append_record(f, i);
		off += i < 9 ? record_bytes(i) : 0;
	}
	assert_int_equal(dp_wal_sync(f->w), 0);
	dp_wal_close(f->w);
	f->w = NULL;
	char path[128];
	segment_path(f, 1, path, sizeof(path));
	assert_int_equal(truncate(path, (off_t)(off + 30)), 0);
	assert_int_equal(reopen(f), 0);
	assert_records(f, 9);
	assert_int_equal(f->info.torn_offset, off);
	assert_int_equal(f->info.torn_bytes, 30);
	assert_string_equal(f->info.torn_file, path);
	append_record(f, 9);
	append_record(f, 10);
	assert_int_equal(dp_wal_sync(f->w), 0);
	assert_int_equal(reopen(f), 0);
	assert_records(f, 11);
	assert_int_equal(f->info.torn_bytes, 0);
}

/* A last record whose bytes are wrong, nothing valid after it: what a
 * torn write leaves too. Cut. */
static void test_bad_last_record_is_a_torn_tail(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	uint64_t off = FIRST_RECORD;
	for (uint32_t i = 0; i < 5; i++) {
		append_record(f, i);
		off += i < 4 ? record_bytes(i) : 0;
	}
	assert_int_equal(dp_wal_sync(f->w), 0);
	char path[128];
	segment_path(f, 1, path, sizeof(path));
	flip_byte(path, off + DP_WAL_RECORD_HEADER_BYTES + 3);
	assert_int_equal(reopen(f), 0);
	assert_records(f, 4);
	assert_int_equal(f->info.torn_offset, off);
	assert_int_equal(f->info.torn_bytes, record_bytes(4));
}

/* One byte flipped in a record that a later group commit follows: it was
 * synced, so this is damage, not a torn write. A hard error naming the
 * file and the record's offset. */
static void test_flipped_byte_in_the_middle_stops(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	uint64_t off = FIRST_RECORD;
	for (uint32_t i = 0; i < 8; i++) {
		append_record(f, i);
		off += i < 2 ? record_bytes(i) : 0;
		if (i == 4)
			assert_int_equal(dp_wal_sync(f->w), 0);
	}
	assert_int_equal(dp_wal_sync(f->w), 0);
	char path[128], want[256];
	segment_path(f, 1, path, sizeof(path));
	flip_byte(path, off + DP_WAL_RECORD_HEADER_BYTES + 1);
	assert_int_equal(reopen(f), -BPX_EMALFORMED);
	assert_null(f->w);
	snprintf(want, sizeof(want),
		 "%s at byte %llu: record checksum "
		 "mismatch, with a later group commit after it: the log is "
		 "corrupted in the middle",
		 path, (unsigned long long)off);
	assert_non_null(strstr(f->err, want));
	/* Nothing was cut: the operator's copy of the evidence is intact. */
	assert_int_equal(reopen(f), -BPX_EMALFORMED);
}

/* A bad record inside the last group commit, valid records after it: the
 * write's pages reached the disk out of order before the crash. Nothing
 * of it was synced: the bad record and all after it are cut. */
static void test_torn_group_with_records_after_is_cut(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	uint64_t off = FIRST_RECORD, end;
	for (uint32_t i = 0; i < 4; i++) {
		append_record(f, i);
		off += record_bytes(i);
	}
	assert_int_equal(dp_wal_sync(f->w), 0);
	off += MARKER_BYTES; /* the second group's */
	end = off;
	for (uint32_t i = 4; i < 8; i++) {
		append_record(f, i);
		end += record_bytes(i);
	}
	assert_int_equal(dp_wal_sync(f->w), 0);
	off += record_bytes(4); /* record 5 */
	char path[128];
	segment_path(f, 1, path, sizeof(path));
	flip_byte(path, off + DP_WAL_RECORD_HEADER_BYTES + 2);
	assert_int_equal(reopen(f), 0);
	assert_records(f, 5);
	assert_int_equal(f->info.torn_offset, off);
	assert_int_equal(f->info.torn_bytes, end - off);
	/* The cut is for good: appended records follow the kept ones. */
	append_record(f, 5);
	assert_int_equal(dp_wal_sync(f->w), 0);
	assert_int_equal(reopen(f), 0);
	assert_records(f, 6);
	assert_int_equal(f->info.torn_bytes, 0);
}

/* A damaged record at the end of an older segment: later segments follow,
 * so it is not a torn tail. */
static void test_damage_in_an_older_segment_stops(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	for (uint32_t i = 0; i < 400; i++)
		append_record(f, i);
	assert_int_equal(dp_wal_sync(f->w), 0);
	assert_true(dp_wal_segment_count(f->w) >= 2);
	char path[128];
	segment_path(f, 1, path, sizeof(path));
	flip_byte(path, DP_WAL_SEGMENT_HEADER_BYTES + 8); /* first length */
	assert_int_equal(reopen(f), -BPX_EMALFORMED);
	assert_non_null(strstr(f->err, path));
	assert_non_null(strstr(f->err, "at byte 32"));
}

static void test_missing_segment_stops(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	for (uint32_t i = 0; i < 600; i++)
		append_record(f, i);
	assert_int_equal(dp_wal_sync(f->w), 0);
	assert_true(dp_wal_segment_count(f->w) >= 3);
	char path[128];
	segment_path(f, 2, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(reopen(f), -BPX_EMALFORMED);
	assert_non_null(strstr(f->err, "wal-0000000000000002.seg is missing"));
}

static void test_bad_segment_header_stops(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	char path[128];
	segment_path(f, 1, path, sizeof(path));
	flip_byte(path, 9);
	assert_int_equal(reopen(f), -BPX_EMALFORMED);
	assert_non_null(strstr(f->err, "at byte 0: segment header checksum"));
}

/* A record the caller refuses stops the replay, named by place. */
static void test_refused_record_names_its_place(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	for (uint32_t i = 0; i < 3; i++)
		append_record(f, i);
	assert_int_equal(dp_wal_sync(f->w), 0);
	dp_wal_close(f->w);
	f->w = NULL;
	memset(&f->seen, 0, sizeof(f->seen));
	f->seen.refuse_at = 1;
	assert_int_equal(dp_wal_open(&f->cfg, on_record, &f->seen, &f->info,
				     &f->w, f->err, sizeof(f->err)),
			 -BPX_EINVAL);
	char want[64];
	snprintf(want, sizeof(want), "at byte %u: record of type 2 refused",
		 FIRST_RECORD + record_bytes(0));
	assert_non_null(strstr(f->err, want));
}

/* Disk full at the sync: the error sticks, names the call and the file,
 * and nothing later succeeds. */
static void test_sync_failure_is_sticky(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	append_record(f, 0);
	f->fault_op = DP_WAL_OP_SYNC;
	f->fault_errno = ENOSPC;
	assert_int_equal(dp_wal_sync(f->w), -BPX_EIO);
	assert_int_equal(dp_wal_error(f->w), -BPX_EIO);
	assert_non_null(strstr(dp_wal_error_text(f->w), "fdatasync "));
	assert_non_null(strstr(dp_wal_error_text(f->w), "wal-0000000000000001"
							".seg"));
	assert_non_null(strstr(dp_wal_error_text(f->w), strerror(ENOSPC)));
	f->fault_errno = 0; /* the disk has room again: still failed */
	uint8_t p[4] = { 0 };
	assert_int_equal(dp_wal_append(f->w, 1, 0, p, 4), -BPX_EIO);
	assert_int_equal(dp_wal_sync(f->w), -BPX_EIO);
	assert_int_equal(dp_wal_recycle(f->w, 100), -BPX_EIO);
}

static void test_write_eio_is_sticky(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	f->fault_op = DP_WAL_OP_WRITE;
	f->fault_errno = EIO;
	append_record(f, 0);
	assert_int_equal(dp_wal_sync(f->w), -BPX_EIO);
	assert_non_null(strstr(dp_wal_error_text(f->w), "write "));
	assert_non_null(strstr(dp_wal_error_text(f->w), strerror(EIO)));
}

/* Disk full when a new segment is preallocated (the common place for it:
 * appending inside a segment never grows a file). */
static void test_full_disk_at_a_new_segment(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	f->fault_op = DP_WAL_OP_ALLOCATE;
	f->fault_errno = ENOSPC;
	int rc = 0;
	uint32_t i;
	for (i = 0; i < 1000 && rc == 0; i++) {
		uint8_t p[64];
		memset(p, 1, sizeof(p));
		rc = dp_wal_append(f->w, 1, i, p, sizeof(p));
	}
	assert_int_equal(rc, -BPX_EIO);
	assert_non_null(strstr(dp_wal_error_text(f->w), "preallocate 8192 "
							"bytes"));
	assert_non_null(strstr(dp_wal_error_text(f->w), strerror(ENOSPC)));
	assert_int_equal(dp_wal_sync(f->w), -BPX_EIO);
	/* The records of the full segment were synced before the roll, and
	 * the half-made segment left nothing behind. */
	f->fault_errno = 0;
	dp_wal_close(f->w);
	f->w = NULL;
	assert_int_equal(reopen(f), 0);
	assert_int_equal(f->seen.count, i - 1);
	assert_int_equal(dp_wal_segment_count(f->w), 1);
}

static void test_recycle_below_a_tag(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	for (uint32_t i = 0; i < 600; i++)
		append_record(f, i);
	assert_int_equal(dp_wal_sync(f->w), 0);
	uint32_t segs = dp_wal_segment_count(f->w);
	assert_true(segs >= 4);
	/* Tags below 150: only segments whose every tag is below go. */
	int n = dp_wal_recycle(f->w, 150);
	assert_true(n >= 1);
	assert_int_equal(dp_wal_segment_count(f->w), segs - (uint32_t)n);
	char path[128];
	segment_path(f, 1, path, sizeof(path));
	assert_false(exists(path));
	assert_int_equal(reopen(f), 0);
	assert_true(f->seen.count < 600);
	assert_true(f->seen.tag[0] <= 150);
	assert_int_equal(f->seen.tag[f->seen.count - 1], 599);
	/* Everything below a tag past the end: all but the newest go. */
	n = dp_wal_recycle(f->w, 10000);
	assert_int_equal(dp_wal_segment_count(f->w), 1);
	assert_int_equal(dp_wal_stats(f->w)->segments_recycled, (uint64_t)n);
	assert_int_equal(reopen(f), 0);
	assert_true(f->seen.count > 0);
	assert_int_equal(f->seen.tag[f->seen.count - 1], 599);
}

/* A segment that was never renamed into place is a leftover: removed. */
static void test_leftover_tmp_is_removed(void **state)
{
	struct fixture *f = *state;
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s/wal-0000000000000001.seg.tmp", f->dir);
	FILE *fp = fopen(tmp, "w");
	assert_non_null(fp);
	fputs("half made", fp);
	fclose(fp);
	assert_int_equal(reopen(f), 0);
	assert_false(exists(tmp));
	assert_int_equal(f->seen.count, 0);
}

/* A second opener of one directory (a second bypaxd) is refused. */
static void test_second_opener_is_refused(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	struct dp_wal *second = NULL;
	struct dp_wal_replay info;
	assert_int_equal(dp_wal_open(&f->cfg, NULL, NULL, &info, &second,
				     f->err, sizeof(f->err)),
			 -BPX_EBUSY);
	assert_null(second);
	assert_non_null(strstr(f->err, "another process has this "
				       "write-ahead log open"));
	dp_wal_close(f->w);
	f->w = NULL;
	assert_int_equal(dp_wal_open(&f->cfg, NULL, NULL, &info, &second,
				     f->err, sizeof(f->err)),
			 0);
	dp_wal_close(second);
}

static void test_bad_config_is_refused(void **state)
{
	struct fixture *f = *state;
	f->cfg.segment_bytes = 100;
	assert_int_equal(reopen(f), -BPX_EINVAL);
	assert_non_null(strstr(f->err, "segment_bytes"));
	f->cfg.segment_bytes = SEGMENT_BYTES;
	f->cfg.buffer_bytes = SEGMENT_BYTES;
	assert_int_equal(reopen(f), -BPX_EINVAL);
	assert_non_null(strstr(f->err, "buffer_bytes"));
	f->cfg.buffer_bytes = BUFFER_BYTES;
	f->cfg.dir = "/nonexistent/bypax-wal";
	assert_int_equal(reopen(f), -BPX_EIO);
	assert_non_null(strstr(f->err, "/nonexistent/bypax-wal"));
}

static void test_too_big_record_is_refused(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	static uint8_t p[BUFFER_BYTES];
	assert_int_equal(dp_wal_append(f->w, 1, 0, p, BUFFER_BYTES),
			 -BPX_ETOOBIG);
	assert_int_equal(dp_wal_error(f->w), 0); /* not a disk failure */
	/* Type 0 is the log's own group commit marker. */
	assert_int_equal(dp_wal_append(f->w, DP_WAL_TYPE_BATCH, 0, p, 1),
			 -BPX_EINVAL);
}

static void test_atomic_file_replaces_whole(void **state)
{
	struct fixture *f = *state;
	const uint8_t a[] = "first version", b[] = "second, longer version";
	assert_int_equal(dp_wal_write_file_atomic(f->dir, "snap", a, sizeof(a),
						  f->err, sizeof(f->err)),
			 0);
	assert_int_equal(dp_wal_write_file_atomic(f->dir, "snap", b, sizeof(b),
						  f->err, sizeof(f->err)),
			 0);
	char path[160], buf[64];
	snprintf(path, sizeof(path), "%s/snap", f->dir);
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	assert_int_equal(fread(buf, 1, sizeof(buf), fp), sizeof(b));
	fclose(fp);
	assert_memory_equal(buf, b, sizeof(b));
	snprintf(path, sizeof(path), "%s/snap.tmp", f->dir);
	assert_false(exists(path));
	assert_int_equal(dp_wal_write_file_atomic("/nonexistent", "snap", a,
						  sizeof(a), f->err,
						  sizeof(f->err)),
			 -BPX_EIO);
	assert_non_null(strstr(f->err, "create /nonexistent/snap.tmp"));
}

/* ---- PERSIST records as WAL records (wal_px.h) ---- */

/* What the worker writes is what the start-up reads back, through a real
 * log: every field, the value, and the tag that holds a segment. */
static void test_persist_records_round_trip(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(reopen(f), 0);
	static const uint8_t value[] = "a batch of requests";
	const struct px_msg sent[] = {
		{ .type = PX_MSG_PERSIST,
		  .flags = PX_PERSIST_PROMISE,
		  .ballot = px_ballot_make(7, 2) },
		{ .type = PX_MSG_PERSIST,
		  .flags = PX_PERSIST_ACCEPTED,
		  .ballot = px_ballot_make(7, 2),
		  .slot = 4242,
		  .value = value,
		  .value_len = sizeof(value) },
		{ .type = PX_MSG_PERSIST,
		  .flags = PX_PERSIST_COMMIT,
		  .commit_index = 4243 },
	};
	uint8_t payload[DP_WAL_PX_BYTES_MAX];
	for (size_t i = 0; i < 3; i++) {
		int n = dp_wal_px_encode(&sent[i], payload);
		assert_true(n >= (int)DP_WAL_PX_FIXED_BYTES);
		assert_int_equal(dp_wal_append(f->w, sent[i].flags,
					       dp_wal_px_tag(&sent[i]), payload,
					       (uint32_t)n),
				 0);
	}
	assert_int_equal(dp_wal_px_tag(&sent[0]), 0);
	assert_int_equal(dp_wal_px_tag(&sent[1]), 4242);
	assert_int_equal(dp_wal_sync(f->w), 0);
	assert_int_equal(reopen(f), 0);
	assert_int_equal(f->seen.count, 3);
	assert_int_equal(f->seen.tag[1], 4242);
	/* Decoded from bytes as the start-up decodes them. */
	struct px_msg m;
	int n = dp_wal_px_encode(&sent[1], payload);
	assert_int_equal(dp_wal_px_decode(PX_PERSIST_ACCEPTED, payload,
					  (uint32_t)n, &m),
			 0);
	assert_int_equal(m.type, PX_MSG_PERSIST);
	assert_int_equal(m.flags, PX_PERSIST_ACCEPTED);
	assert_int_equal(m.ballot, sent[1].ballot);
	assert_int_equal(m.slot, 4242);
	assert_int_equal(m.value_len, sizeof(value));
	assert_memory_equal(m.value, value, sizeof(value));
	n = dp_wal_px_encode(&sent[2], payload);
	assert_int_equal(dp_wal_px_decode(PX_PERSIST_COMMIT, payload,
					  (uint32_t)n, &m),
			 0);
	assert_int_equal(m.commit_index, 4243);
	assert_int_equal(m.value_len, 0);
	assert_null(m.value);
	/* Too short, or a value longer than a slot: refused. */
	assert_int_equal(dp_wal_px_decode(1, payload, 31, &m), -BPX_EMALFORMED);
	assert_int_equal(dp_wal_px_decode(2, payload, DP_WAL_PX_BYTES_MAX + 1,
					  &m),
			 -BPX_EMALFORMED);
	struct px_msg big = sent[1];
	big.value_len = PX_VALUE_BYTES_MAX + 1;
	assert_int_equal(dp_wal_px_encode(&big, payload), -BPX_ETOOBIG);
}

/* ---- Snapshots on disk (disk_snapshot.c) ---- */

/* A real snapshot body: a one-replica consensus core, nothing applied. */
static int64_t save_snapshot(uint8_t *body, size_t cap)
{
	struct px_config pc;
	px_config_default(&pc, 1, 0);
	pc.cluster_id = 77;
	pc.sm_ops = bpx_kv_ops();
	pc.sm = pc.sm_ops->create(NULL);
	assert_non_null(pc.sm);
	size_t bytes = px_replica_size(&pc);
	void *mem = aligned_alloc(64, (bytes + 63) / 64 * 64);
	struct px_replica *r;
	assert_int_equal(px_init(mem, bytes, &pc, &r), 0);
	int64_t n = px_snapshot_save(r, body, cap);
	pc.sm_ops->destroy(pc.sm);
	free(mem);
	return n;
}

static enum dp_snapw_state wait_written(struct dp_snapwriter *sw,
					uint64_t *index)
{
	enum dp_snapw_state st;
	for (int i = 0; i < 5000; i++) {
		st = dp_snapwriter_state(sw, index);
		if (st != DP_SNAPW_BUSY)
			return st;
		usleep(1000);
	}
	fail_msg("the snapshot writer did not finish in 5 s");
	return st;
}

/* Written by the thread, read back checked; a file of another cluster is
 * refused, naming it. */
static void test_disk_snapshot_round_trip(void **state)
{
	struct fixture *f = *state;
	struct dp_snapwriter *sw;
	assert_int_equal(dp_snapwriter_start(f->dir, 1 << 20, &sw, f->err,
					     sizeof(f->err)),
			 0);
	uint8_t *buf, *body;
	size_t len, cap;
	struct px_snapfile_info info;
	assert_int_equal(dp_disk_snapshot_load(f->dir, 77, 1, &buf, &len, &info,
					       f->err, sizeof(f->err)),
			 -BPX_ENOENT);
	body = dp_snapwriter_body(sw, &cap);
	int64_t n = save_snapshot(body, cap);
	assert_true(n > 0);
	assert_int_equal(dp_snapwriter_submit(sw, (size_t)n, 77, 1), 0);
	uint64_t index = 99;
	assert_int_equal(wait_written(sw, &index), DP_SNAPW_DONE);
	assert_int_equal(index, 0);
	dp_snapwriter_ack(sw);
	assert_int_equal(dp_snapwriter_state(sw, &index), DP_SNAPW_IDLE);
	assert_int_equal(dp_disk_snapshot_load(f->dir, 77, 1, &buf, &len, &info,
					       f->err, sizeof(f->err)),
			 0);
	assert_int_equal(len, px_snapfile_size((uint64_t)n));
	assert_int_equal(info.h.cluster_id, 77);
	free(buf);
	assert_int_equal(dp_disk_snapshot_load(f->dir, 78, 1, &buf, &len, &info,
					       f->err, sizeof(f->err)),
			 -BPX_EMALFORMED);
	assert_non_null(strstr(f->err, "snapshot.bpxf: the snapshot of "
				       "cluster 77"));
	/* Not a snapshot: refused, nothing submitted. */
	body = dp_snapwriter_body(sw, &cap);
	memset(body, 0, 64);
	assert_int_equal(dp_snapwriter_submit(sw, 64, 77, 1), -BPX_EMALFORMED);
	dp_snapwriter_stop(sw);
	/* A flipped byte: the checksum finds it. */
	char path[160];
	snprintf(path, sizeof(path), "%s/snapshot.bpxf", f->dir);
	flip_byte(path, 40);
	assert_int_equal(dp_disk_snapshot_load(f->dir, 77, 1, &buf, &len, &info,
					       f->err, sizeof(f->err)),
			 -BPX_EMALFORMED);
	assert_non_null(strstr(f->err, "checksum mismatch"));
}

/* A write that fails says so (its step, file and errno); the old file,
 * if any, is untouched. */
static void test_disk_snapshot_failure(void **state)
{
	struct fixture *f = *state;
	struct dp_snapwriter *sw;
	char missing[128];
	snprintf(missing, sizeof(missing), "%s/not-there", f->dir);
	assert_int_equal(dp_snapwriter_start(missing, 1 << 20, &sw, f->err,
					     sizeof(f->err)),
			 0);
	size_t cap;
	uint8_t *body = dp_snapwriter_body(sw, &cap);
	int64_t n = save_snapshot(body, cap);
	assert_int_equal(dp_snapwriter_submit(sw, (size_t)n, 77, 1), 0);
	uint64_t index;
	assert_int_equal(wait_written(sw, &index), DP_SNAPW_FAILED);
	assert_non_null(strstr(dp_snapwriter_error(sw), "create "));
	assert_non_null(strstr(dp_snapwriter_error(sw), missing));
	dp_snapwriter_ack(sw);
	dp_snapwriter_stop(sw);
}

/* ---- Incremental snapshots on disk (submit_fill, px_snapshot_save_head) ---- */

struct one_replica {
	struct px_config pc;
	void *mem;
	struct px_replica *r;
};

static void one_replica_init(struct one_replica *o)
{
	px_config_default(&o->pc, 1, 0);
	o->pc.cluster_id = 77;
	o->pc.sm_ops = bpx_kv_ops();
	o->pc.sm = o->pc.sm_ops->create("capacity=5000");
	assert_non_null(o->pc.sm);
	size_t bytes = px_replica_size(&o->pc);
	o->mem = aligned_alloc(64, (bytes + 63) / 64 * 64);
	assert_int_equal(px_init(o->mem, bytes, &o->pc, &o->r), 0);
}

static void one_replica_free(struct one_replica *o)
{
	o->pc.sm_ops->destroy(o->pc.sm);
	free(o->mem);
}

static void put_n(const struct bpx_sm_ops *ops, void *sm, unsigned from,
		  unsigned n)
{
	for (unsigned i = from; i < from + n; i++) {
		char key[16], value[40];
		uint8_t cmd[96], reply[8];
		int kl = snprintf(key, sizeof key, "k%u", i % 4000);
		int vl = snprintf(value, sizeof value, "value-%u-%u", i, i * 7);
		int c = bpx_kv_encode(cmd, sizeof cmd, BPX_KV_PUT, key,
				      (size_t)kl, value, (size_t)vl, NULL, 0);
		assert_true(c > 0);
		assert_int_equal(ops->apply(sm, cmd, (uint32_t)c, reply,
					    sizeof reply),
				 3);
	}
}

/* The head on the worker, the frozen state machine filled in by the
 * writer thread while PUTs go on: the file's body is, byte for byte,
 * px_snapshot_save's at begin. */
static void test_disk_snapshot_incremental(void **state)
{
	struct fixture *f = *state;
	struct one_replica o;
	one_replica_init(&o);
	const struct bpx_sm_ops *ops = o.pc.sm_ops;
	put_n(ops, o.pc.sm, 0, 3000);
	size_t want_cap = px_snapshot_size(o.r);
	uint8_t *want = malloc(want_cap);
	int64_t want_len = px_snapshot_save(o.r, want, want_cap);
	assert_true(want_len > 0);

	struct dp_snapwriter *sw;
	assert_int_equal(dp_snapwriter_start(f->dir, 1 << 20, &sw, f->err,
					     sizeof(f->err)),
			 0);
	size_t cap;
	uint8_t *body = dp_snapwriter_body(sw, &cap);
	int64_t sm_len = ops->snapshot_begin(o.pc.sm);
	assert_true(sm_len > 0);
	assert_int_equal(px_snapshot_save_head(o.r, body, 100,
					       (uint64_t)sm_len),
			 -BPX_ETOOBIG);
	int64_t head = px_snapshot_save_head(o.r, body, cap, (uint64_t)sm_len);
	assert_int_equal(head + sm_len, want_len);
	unsigned puts = 3000;
	while (ops->snapshot_step(o.pc.sm, 4096) == 0) {
		put_n(ops, o.pc.sm, puts, 3);
		puts += 3;
	}
	assert_int_equal(dp_snapwriter_submit_fill(
				 sw, (size_t)head, ops->snapshot_write_frozen,
				 o.pc.sm, (size_t)sm_len, 77, 1),
			 0);
	put_n(ops, o.pc.sm, puts, 2000); /* while the thread writes */
	uint64_t index;
	assert_int_equal(wait_written(sw, &index), DP_SNAPW_DONE);
	dp_snapwriter_ack(sw);
	ops->snapshot_end(o.pc.sm);
	dp_snapwriter_stop(sw);

	uint8_t *file;
	size_t len;
	struct px_snapfile_info info;
	assert_int_equal(dp_disk_snapshot_load(f->dir, 77, 1, &file, &len,
					       &info, f->err, sizeof(f->err)),
			 0);
	assert_int_equal(len, px_snapfile_size((uint64_t)want_len));
	assert_memory_equal(file + PX_SNAPFILE_HEADER_BYTES, want,
			    (size_t)want_len);
	free(file);
	free(want);
	one_replica_free(&o);
}

static int64_t fill_short(void *ctx, uint8_t *buf, size_t cap)
{
	(void)ctx;
	(void)buf;
	return (int64_t)cap - 1;
}

/* A fill that writes less than it announced fails the snapshot, saying
 * both lengths; no file is written. */
static void test_disk_snapshot_fill_short(void **state)
{
	struct fixture *f = *state;
	struct one_replica o;
	one_replica_init(&o);
	struct dp_snapwriter *sw;
	assert_int_equal(dp_snapwriter_start(f->dir, 1 << 20, &sw, f->err,
					     sizeof(f->err)),
			 0);
	size_t cap;
	uint8_t *body = dp_snapwriter_body(sw, &cap);
	int64_t head = px_snapshot_save_head(o.r, body, cap, 20);
	assert_true(head > 0);
	assert_int_equal(dp_snapwriter_submit_fill(sw, (size_t)head, fill_short,
						   NULL, 20, 77, 1),
			 0);
	uint64_t index;
	assert_int_equal(wait_written(sw, &index), DP_SNAPW_FAILED);
	assert_non_null(strstr(dp_snapwriter_error(sw),
			       "wrote 19 bytes of its frozen snapshot, not the "
			       "20 it announced"));
	dp_snapwriter_ack(sw);
	dp_snapwriter_stop(sw);
	uint8_t *file;
	size_t len;
	struct px_snapfile_info info;
	assert_int_equal(dp_disk_snapshot_load(f->dir, 77, 1, &file, &len,
					       &info, f->err, sizeof(f->err)),
			 -BPX_ENOENT);
	one_replica_free(&o);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_empty_dir_starts_a_segment),
		T(test_one_sync_per_group),
		T(test_records_span_segments),
		T(test_truncated_tail_is_cut),
		T(test_bad_last_record_is_a_torn_tail),
		T(test_flipped_byte_in_the_middle_stops),
		T(test_torn_group_with_records_after_is_cut),
		T(test_damage_in_an_older_segment_stops),
		T(test_missing_segment_stops),
		T(test_bad_segment_header_stops),
		T(test_refused_record_names_its_place),
		T(test_sync_failure_is_sticky),
		T(test_write_eio_is_sticky),
		T(test_full_disk_at_a_new_segment),
		T(test_recycle_below_a_tag),
		T(test_leftover_tmp_is_removed),
		T(test_second_opener_is_refused),
		T(test_bad_config_is_refused),
		T(test_too_big_record_is_refused),
		T(test_atomic_file_replaces_whole),
		T(test_persist_records_round_trip),
		T(test_disk_snapshot_round_trip),
		T(test_disk_snapshot_failure),
		T(test_disk_snapshot_incremental),
		T(test_disk_snapshot_fill_short),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
