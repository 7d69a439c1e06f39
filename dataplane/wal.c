/* The write-ahead log (wal.h): segments, group commit, replay that checks
 * every record, recycling. Plain POSIX: no DPDK, no threads. */
#define _GNU_SOURCE
#include "wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bypax/errors.h"
#include "bypax/snapfile.h" /* px_crc32c */

void px_assert_fail(const char *expr, const char *file, int line);
#define WAL_ASSERT(x)                                                          \
	do {                                                                   \
		if (!(x))                                                      \
			px_assert_fail(#x, __FILE__, __LINE__);                \
	} while (0)

struct wal_segment {
	uint64_t seq;
	uint32_t salt;    /* from its header: seeds its records' checksums */
	uint64_t tag_max; /* the highest tag of its records (0: none) */
};

struct dp_wal {
	struct dp_wal_config cfg;
	char dir[DP_WAL_PATH_MAX];
	int dir_fd;
	int lock_fd;	     /* wal.lock, flocked while open */
	int fd;		     /* the newest segment, written */
	uint64_t file_off;   /* where buf goes in it */
	uint64_t file_bytes; /* its size: records end before it */
	uint8_t *buf;
	uint32_t buf_len;
	bool unsynced;
	bool batch_open; /* this group commit's marker is written */
	int error;	 /* sticky: 0 or -BPX_EIO */
	char error_text[DP_WAL_ERROR_TEXT_MAX];
	struct dp_wal_stats stats;
	uint32_t seg_count; /* segs[0] oldest .. segs[seg_count-1] newest */
	struct wal_segment segs[DP_WAL_SEGMENTS_MAX];
};

/* ---- Little-endian fields ---- */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}
static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* A record's checksum starts from its segment's seq and salt: a record is
 * only valid in the segment it was written to, and nobody who has not read
 * the segment's header can make one. A client's value is written verbatim
 * into ACCEPTED records: with the seq alone (1, 2, 3, ...) a value could
 * carry a valid group-commit marker, and a torn write before it would then
 * read as corruption in the middle, refusing the start
 * (test_wal_forged_marker). */
static uint32_t record_crc(uint64_t seg_seq, uint32_t salt,
			   const uint8_t *rec, uint32_t payload_len)
{
	uint8_t seed[12];
	put64(seed, seg_seq);
	put32(seed + 8, salt);
	uint32_t crc = px_crc32c(0, seed, sizeof(seed));
	return px_crc32c(crc, rec + 8,
			 DP_WAL_RECORD_HEADER_BYTES - 8 + payload_len);
}

static void segment_name(char *out, size_t cap, uint64_t seq)
{
	snprintf(out, cap, "wal-%016" PRIx64 ".seg", seq);
}

/* "wal-" 16 lowercase hex digits ".seg", nothing else. */
static bool parse_segment_name(const char *name, uint64_t *seq)
{
	if (strlen(name) != 24 || strncmp(name, "wal-", 4) != 0 ||
	    strcmp(name + 20, ".seg") != 0)
		return false;
	uint64_t v = 0;
	for (int i = 4; i < 20; i++) {
		char c = name[i];
		int d = c >= '0' && c <= '9' ? c - '0' :
			c >= 'a' && c <= 'f' ? c - 'a' + 10 :
					       -1;
		if (d < 0)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*seq = v;
	return true;
}

/* ---- Errors: sticky, with the operation, file and errno ---- */

static int fail(struct dp_wal *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(struct dp_wal *w, const char *fmt, ...)
{
	int saved = errno;
	if (w->error != 0)
		return w->error; /* the first failure is the one to report */
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(w->error_text, sizeof(w->error_text), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(w->error_text))
		snprintf(w->error_text + n, sizeof(w->error_text) - (size_t)n,
			 ": %s", strerror(saved));
	w->error = -BPX_EIO;
	return w->error;
}

/* The fault hook, then the call: -1 with errno set on failure. */
static bool faulted(const struct dp_wal *w, enum dp_wal_op op)
{
	if (w->cfg.fault == NULL)
		return false;
	int e = w->cfg.fault(w->cfg.fault_arg, op);
	if (e == 0)
		return false;
	errno = e;
	return true;
}

static int wal_fdatasync(struct dp_wal *w, int fd)
{
	w->stats.syncs++;
	return faulted(w, DP_WAL_OP_SYNC) ? -1 : fdatasync(fd);
}

static int wal_fsync(struct dp_wal *w, int fd)
{
	w->stats.syncs++;
	return faulted(w, DP_WAL_OP_SYNC) ? -1 : fsync(fd);
}

static int pwrite_all(struct dp_wal *w, int fd, const uint8_t *p, size_t n,
		      uint64_t off)
{
	if (faulted(w, DP_WAL_OP_WRITE))
		return -1;
	while (n > 0) {
		ssize_t k = pwrite(fd, p, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k == 0)
				errno = EIO;
			return -1;
		}
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

/* Preallocates, so that appending never grows the file: a full disk is
 * found when a segment starts, not in the middle of one, and fdatasync
 * has no size change to write. tmpfs and ext4 take fallocate; a file
 * system that does not gets posix_fallocate's zero writes. */
static int preallocate(struct dp_wal *w, int fd, uint64_t bytes)
{
	if (faulted(w, DP_WAL_OP_ALLOCATE))
		return -1;
	if (fallocate(fd, 0, 0, (off_t)bytes) == 0)
		return 0;
	if (errno != EOPNOTSUPP)
		return -1;
	int e = posix_fallocate(fd, 0, (off_t)bytes);
	errno = e;
	return e == 0 ? 0 : -1;
}

/* ---- Segments ---- */

static void segment_header_encode(uint8_t *h, uint64_t seq, uint64_t bytes,
				  uint32_t salt)
{
	memset(h, 0, DP_WAL_SEGMENT_HEADER_BYTES);
	put32(h, DP_WAL_SEGMENT_MAGIC);
	put32(h + 4, DP_WAL_FORMAT_VERSION);
	put64(h + 8, seq);
	put64(h + 16, bytes);
	put32(h + 24, salt);
	put32(h + 28, px_crc32c(0, h, 28));
}

/* A segment's salt: random (getrandom), else the clock's nanoseconds. */
static uint32_t segment_salt(void)
{
	uint32_t salt = 0;
	if (getrandom(&salt, sizeof(salt), GRND_NONBLOCK) == sizeof(salt))
		return salt;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec * 2654435761u;
}

/* A new segment appears whole or not at all: made under a temporary
 * name, preallocated, its header synced, then renamed and the directory
 * synced. Returns the open fd or -1 (sticky error set). */
static int segment_create(struct dp_wal *w, uint64_t seq, uint32_t salt)
{
	char name[40], tmp[48];
	segment_name(name, sizeof(name), seq);
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	uint8_t h[DP_WAL_SEGMENT_HEADER_BYTES];
	segment_header_encode(h, seq, w->cfg.segment_bytes, salt);
	int fd = faulted(w, DP_WAL_OP_CREATE) ?
			 -1 :
			 openat(w->dir_fd, tmp,
				O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fail(w, "create %s/%s", w->dir, tmp);
		return -1;
	}
	if (preallocate(w, fd, w->cfg.segment_bytes) != 0) {
		fail(w, "preallocate %" PRIu64 " bytes for %s/%s",
		     w->cfg.segment_bytes, w->dir, tmp);
		goto err_after_open;
	}
	if (pwrite_all(w, fd, h, sizeof(h), 0) != 0 || wal_fsync(w, fd) != 0) {
		fail(w, "write the header of %s/%s", w->dir, tmp);
		goto err_after_open;
	}
	if (renameat(w->dir_fd, tmp, w->dir_fd, name) != 0 ||
	    wal_fsync(w, w->dir_fd) != 0) {
		fail(w, "rename %s/%s into place", w->dir, tmp);
		goto err_after_open;
	}
	w->stats.segments_created++;
	return fd;
err_after_open:
	close(fd);
	unlinkat(w->dir_fd, tmp, 0);
	return -1;
}

/* Writes what the buffer holds (no sync). */
static int flush_buffer(struct dp_wal *w)
{
	if (w->buf_len == 0)
		return 0;
	char name[40];
	segment_name(name, sizeof(name), w->segs[w->seg_count - 1].seq);
	if (pwrite_all(w, w->fd, w->buf, w->buf_len, w->file_off) != 0)
		return fail(w, "write %u bytes to %s/%s at byte %" PRIu64,
			    w->buf_len, w->dir, name, w->file_off);
	w->file_off += w->buf_len;
	w->stats.bytes_written += w->buf_len;
	w->buf_len = 0;
	return 0;
}

static int sync_segment(struct dp_wal *w)
{
	if (!w->unsynced)
		return 0;
	char name[40];
	segment_name(name, sizeof(name), w->segs[w->seg_count - 1].seq);
	if (wal_fdatasync(w, w->fd) != 0)
		return fail(w, "fdatasync %s/%s", w->dir, name);
	w->unsynced = false;
	return 0;
}

/* The newest segment is full: its records are made durable before any
 * goes to the next one, so a torn record can only ever be in the newest
 * segment (replay relies on it). */
static int roll(struct dp_wal *w)
{
	if (w->seg_count == DP_WAL_SEGMENTS_MAX) {
		errno = ENOSPC;
		return fail(w,
			    "start a segment in %s: %u segments held "
			    "(recycle after snapshots)",
			    w->dir, DP_WAL_SEGMENTS_MAX);
	}
	if (flush_buffer(w) != 0 || sync_segment(w) != 0)
		return w->error;
	uint64_t seq = w->segs[w->seg_count - 1].seq + 1;
	uint32_t salt = segment_salt();
	int fd = segment_create(w, seq, salt);
	if (fd < 0)
		return w->error;
	close(w->fd);
	w->fd = fd;
	w->file_off = DP_WAL_SEGMENT_HEADER_BYTES;
	w->file_bytes = w->cfg.segment_bytes;
	w->segs[w->seg_count++] =
		(struct wal_segment){ .seq = seq, .salt = salt };
	w->batch_open = false; /* what came before is synced */
	return 0;
}

/* ---- Appending ---- */

/* Encodes one record into the buffer, writing the buffer out first when
 * it is full. The caller has made sure the segment holds it. */
static int put_record(struct dp_wal *w, uint8_t type, uint64_t tag,
		      const void *payload, uint32_t len)
{
	uint32_t need = DP_WAL_RECORD_HEADER_BYTES + len;
	if (w->buf_len + need > w->cfg.buffer_bytes && flush_buffer(w) != 0)
		return w->error;
	WAL_ASSERT(w->file_off + w->buf_len + need <= w->file_bytes);
	struct wal_segment *s = &w->segs[w->seg_count - 1];
	uint8_t *rec = w->buf + w->buf_len;
	put32(rec, DP_WAL_RECORD_MAGIC);
	put32(rec + 8, len);
	rec[12] = type;
	rec[13] = rec[14] = rec[15] = 0;
	put64(rec + 16, tag);
	if (len > 0)
		memcpy(rec + DP_WAL_RECORD_HEADER_BYTES, payload, len);
	put32(rec + 4, record_crc(s->seq, s->salt, rec, len));
	w->buf_len += need;
	if (tag > s->tag_max)
		s->tag_max = tag;
	w->unsynced = true;
	return 0;
}

/* A group commit starts with a marker record (DP_WAL_TYPE_BATCH): it is
 * written only after everything before it is on the disk (the previous
 * sync returned, or the previous segment was synced before this one
 * started), so replay knows a damaged record followed by one was synced. */
int dp_wal_append(struct dp_wal *w, uint8_t type, uint64_t tag,
		  const void *payload, uint32_t len)
{
	WAL_ASSERT(w != NULL && (payload != NULL || len == 0));
	if (w->error != 0)
		return w->error;
	if (type == DP_WAL_TYPE_BATCH)
		return -BPX_EINVAL;
	uint32_t need = DP_WAL_RECORD_HEADER_BYTES + len;
	if (len > DP_WAL_PAYLOAD_BYTES_MAX ||
	    need + DP_WAL_RECORD_HEADER_BYTES > w->cfg.buffer_bytes)
		return -BPX_ETOOBIG;
	uint32_t marker = w->batch_open ? 0 : DP_WAL_RECORD_HEADER_BYTES;
	if (w->file_off + w->buf_len + marker + need > w->file_bytes &&
	    roll(w) != 0)
		return w->error;
	if (!w->batch_open && put_record(w, DP_WAL_TYPE_BATCH, 0, NULL, 0) != 0)
		return w->error;
	w->batch_open = true;
	if (put_record(w, type, tag, payload, len) != 0)
		return w->error;
	w->stats.records_appended++;
	return 0;
}

int dp_wal_sync(struct dp_wal *w)
{
	WAL_ASSERT(w != NULL);
	if (w->error != 0)
		return w->error;
	if (flush_buffer(w) != 0 || sync_segment(w) != 0)
		return w->error;
	WAL_ASSERT(w->buf_len == 0 && !w->unsynced);
	w->batch_open = false;
	return 0;
}

bool dp_wal_unsynced(const struct dp_wal *w)
{
	return w->unsynced;
}

int dp_wal_recycle(struct dp_wal *w, uint64_t tag_below)
{
	WAL_ASSERT(w != NULL && w->seg_count >= 1);
	if (w->error != 0)
		return w->error;
	uint32_t n = 0;
	/* Oldest first, so a crash halfway leaves a run without a gap. */
	while (n + 1 < w->seg_count && w->segs[n].tag_max < tag_below) {
		char name[40];
		segment_name(name, sizeof(name), w->segs[n].seq);
		if (unlinkat(w->dir_fd, name, 0) != 0 && errno != ENOENT) {
			fail(w, "delete %s/%s", w->dir, name);
			break;
		}
		n++;
	}
	if (n == 0)
		return w->error;
	memmove(w->segs, w->segs + n, (w->seg_count - n) * sizeof(w->segs[0]));
	w->seg_count -= n;
	w->stats.segments_recycled += n;
	if (w->error == 0 && wal_fsync(w, w->dir_fd) != 0)
		fail(w, "fsync the directory %s", w->dir);
	return w->error != 0 ? w->error : (int)n;
}

int dp_wal_error(const struct dp_wal *w)
{
	return w->error;
}
const char *dp_wal_error_text(const struct dp_wal *w)
{
	return w->error_text;
}
const struct dp_wal_stats *dp_wal_stats(const struct dp_wal *w)
{
	return &w->stats;
}
uint32_t dp_wal_segment_count(const struct dp_wal *w)
{
	return w->seg_count;
}

/* ---- Replay ---- */

struct replay_ctx {
	struct dp_wal *w;
	dp_wal_record_fn fn;
	void *arg;
	struct dp_wal_replay *info;
	char *err;
	size_t err_len;
	uint8_t *data; /* one segment file, read whole */
	uint64_t size;
	uint64_t seq;
	uint32_t salt; /* the segment's, from its header */
	char name[40];
	bool newest;
};

/* Whether a valid record starts at off (magic, length, checksum). */
static bool record_valid_at(const struct replay_ctx *c, uint64_t off,
			    uint32_t *len_out)
{
	if (c->size - off < DP_WAL_RECORD_HEADER_BYTES)
		return false;
	const uint8_t *rec = c->data + off;
	uint32_t len = get32(rec + 8);
	if (get32(rec) != DP_WAL_RECORD_MAGIC ||
	    len > DP_WAL_PAYLOAD_BYTES_MAX ||
	    c->size - off - DP_WAL_RECORD_HEADER_BYTES < len || rec[13] != 0 ||
	    rec[14] != 0 || rec[15] != 0 ||
	    get32(rec + 4) != record_crc(c->seq, c->salt, rec, len))
		return false;
	*len_out = len;
	return true;
}

/* Why the record at off is not valid, for the message. */
static const char *record_fault(const struct replay_ctx *c, uint64_t off)
{
	if (c->size - off < DP_WAL_RECORD_HEADER_BYTES)
		return "record header cut short by the end of the file";
	const uint8_t *rec = c->data + off;
	uint32_t len = get32(rec + 8);
	if (get32(rec) != DP_WAL_RECORD_MAGIC)
		return "bad record magic";
	if (len > DP_WAL_PAYLOAD_BYTES_MAX)
		return "record length over the limit";
	if (c->size - off - DP_WAL_RECORD_HEADER_BYTES < len)
		return "record runs past the end of the file";
	return "record checksum mismatch";
}

/* The last nonzero byte at or after off, +1 (off: all zero). */
static uint64_t nonzero_end(const struct replay_ctx *c, uint64_t off)
{
	uint64_t end = c->size;
	while (end > off && c->data[end - 1] == 0)
		end--;
	return end;
}

/* Whether a group commit's marker follows off: then what is at off was
 * synced before it was written. */
static bool batch_after(const struct replay_ctx *c, uint64_t off)
{
	uint32_t len;
	for (uint64_t p = off + 1; p + DP_WAL_RECORD_HEADER_BYTES <= c->size;
	     p++)
		if (c->data[p] == (DP_WAL_RECORD_MAGIC & 0xffu) &&
		    record_valid_at(c, p, &len) &&
		    c->data[p + 12] == DP_WAL_TYPE_BATCH)
			return true;
	return false;
}

/* The first invalid bytes of a segment, at off. Zeros to its end: the
 * preallocated rest, fine. Else a torn tail if this is the newest segment
 * and no later group commit follows: the last group commit, cut short by
 * a crash before its sync returned, so nothing that depends on it was
 * sent (its pages may have reached the disk in any order, so valid
 * records after the bad one are cut with it). Anything else is damage to
 * synced data, which no rule may skip. */
static int end_of_segment(struct replay_ctx *c, uint64_t off)
{
	uint64_t end = nonzero_end(c, off);
	if (end == off)
		return 0;
	const char *why = record_fault(c, off);
	bool later = batch_after(c, off);
	if (!c->newest || later) {
		snprintf(c->err, c->err_len,
			 "%s/%s at byte %" PRIu64 ": %s, with %s after it: the "
			 "log is corrupted in the middle (docs/deploy.md, "
			 "\"A corrupt write-ahead log\")",
			 c->w->dir, c->name, off, why,
			 later ? "a later group commit" : "later segments");
		return -BPX_EMALFORMED;
	}
	c->info->torn_bytes = end - off;
	c->info->torn_offset = off;
	snprintf(c->info->torn_file, sizeof(c->info->torn_file), "%s/%s",
		 c->w->dir, c->name);
	return 1;
}

static int read_whole(struct replay_ctx *c, int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0) {
		snprintf(c->err, c->err_len, "stat %s/%s: %s", c->w->dir,
			 c->name, strerror(errno));
		return -BPX_EIO;
	}
	c->size = (uint64_t)st.st_size;
	c->data = malloc(c->size > 0 ? c->size : 1);
	if (c->data == NULL) {
		snprintf(c->err, c->err_len,
			 "%s/%s: cannot allocate %" PRIu64 " bytes to read it",
			 c->w->dir, c->name, c->size);
		return -BPX_ENOMEM;
	}
	for (uint64_t got = 0; got < c->size;) {
		ssize_t k = pread(fd, c->data + got, c->size - got, (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			snprintf(c->err, c->err_len,
				 "read %s/%s at byte %" PRIu64 ": %s",
				 c->w->dir, c->name, got,
				 k == 0 ? "file shrank" : strerror(errno));
			return -BPX_EIO;
		}
		got += (uint64_t)k;
	}
	return 0;
}

static int check_segment_header(struct replay_ctx *c)
{
	const uint8_t *h = c->data;
	const char *why = NULL;
	if (c->size < DP_WAL_SEGMENT_HEADER_BYTES)
		why = "shorter than a segment header";
	else if (get32(h) != DP_WAL_SEGMENT_MAGIC)
		why = "not a bypax WAL segment (bad magic)";
	else if (get32(h + 28) != px_crc32c(0, h, 28))
		why = "segment header checksum mismatch";
	else if (get32(h + 4) != DP_WAL_FORMAT_VERSION)
		why = "unsupported WAL format version";
	else if (get64(h + 8) != c->seq)
		why = "its header names another segment";
	if (why == NULL) {
		c->salt = get32(h + 24);
		c->w->segs[c->w->seg_count - 1].salt = c->salt;
		return 0;
	}
	snprintf(c->err, c->err_len, "%s/%s at byte 0: %s", c->w->dir, c->name,
		 why);
	return -BPX_EMALFORMED;
}

/* Cuts a torn tail for good: zeros over it, synced, so that the records
 * appended after it are followed by zeros again. */
static int cut_tail(struct replay_ctx *c, int fd)
{
	struct dp_wal *w = c->w;
	uint64_t off = c->info->torn_offset;
	memset(c->data + off, 0, c->info->torn_bytes);
	if (pwrite_all(w, fd, c->data + off, c->info->torn_bytes, off) != 0 ||
	    wal_fdatasync(w, fd) != 0) {
		snprintf(c->err, c->err_len,
			 "cut the torn tail of %s/%s at "
			 "byte %" PRIu64 ": %s",
			 w->dir, c->name, off, strerror(errno));
		return -BPX_EIO;
	}
	return 0;
}

/* Every record of one segment, in order. Returns 0 or an error; leaves
 * the end of its valid records in *end_off. */
static int replay_records(struct replay_ctx *c, uint64_t *end_off)
{
	struct wal_segment *s = &c->w->segs[c->w->seg_count - 1];
	uint64_t off = DP_WAL_SEGMENT_HEADER_BYTES;
	uint32_t len;
	while (record_valid_at(c, off, &len)) {
		const uint8_t *rec = c->data + off;
		uint64_t tag = get64(rec + 16);
		if (rec[12] == DP_WAL_TYPE_BATCH) { /* ours, not the caller's */
			off += DP_WAL_RECORD_HEADER_BYTES + len;
			continue;
		}
		int rc = c->fn == NULL ?
				 0 :
				 c->fn(c->arg, rec[12], tag,
				       rec + DP_WAL_RECORD_HEADER_BYTES, len);
		if (rc != 0) {
			snprintf(c->err, c->err_len,
				 "%s/%s at byte %" PRIu64
				 ": record of type %u refused: %s",
				 c->w->dir, c->name, off, rec[12],
				 bpx_strerror(rc));
			return rc < 0 ? rc : -BPX_EINVAL;
		}
		if (tag > s->tag_max)
			s->tag_max = tag;
		c->info->records++;
		off += DP_WAL_RECORD_HEADER_BYTES + len;
	}
	*end_off = off;
	int rc = end_of_segment(c, off);
	return rc < 0 ? rc : 0;
}

/* Reads one segment; the newest stays open for appending. */
static int replay_segment(struct replay_ctx *c, uint64_t seq, bool newest)
{
	struct dp_wal *w = c->w;
	c->seq = seq;
	c->newest = newest;
	c->data = NULL;
	segment_name(c->name, sizeof(c->name), seq);
	int fd = openat(w->dir_fd, c->name, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(c->err, c->err_len, "open %s/%s: %s", w->dir, c->name,
			 strerror(errno));
		return -BPX_EIO;
	}
	w->segs[w->seg_count++] = (struct wal_segment){ .seq = seq };
	uint64_t end_off = 0;
	int rc = read_whole(c, fd);
	if (rc == 0)
		rc = check_segment_header(c);
	if (rc == 0)
		rc = replay_records(c, &end_off);
	if (rc == 0 && newest && c->info->torn_bytes > 0)
		rc = cut_tail(c, fd);
	free(c->data);
	c->info->segments++;
	if (rc != 0 || !newest) {
		close(fd);
		return rc;
	}
	w->fd = fd;
	w->file_off = end_off;
	w->file_bytes = c->size;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The segment seqs in the directory, sorted; leftovers of a segment that
 * was never renamed into place are removed. */
static int list_segments(struct dp_wal *w, uint64_t *seqs, uint32_t *n,
			 char *err, size_t err_len)
{
	DIR *d = fdopendir(dup(w->dir_fd));
	if (d == NULL) {
		snprintf(err, err_len, "list %s: %s", w->dir, strerror(errno));
		return -BPX_EIO;
	}
	*n = 0;
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		uint64_t seq;
		if (l > 4 && strcmp(e->d_name + l - 4, ".tmp") == 0 &&
		    strncmp(e->d_name, "wal-", 4) == 0) {
			unlinkat(w->dir_fd, e->d_name, 0);
			continue;
		}
		if (!parse_segment_name(e->d_name, &seq))
			continue;
		if (*n == DP_WAL_SEGMENTS_MAX) {
			snprintf(err, err_len, "%s: more than %u segments",
				 w->dir, DP_WAL_SEGMENTS_MAX);
			rc = -BPX_EMALFORMED;
			break;
		}
		seqs[(*n)++] = seq;
	}
	closedir(d);
	qsort(seqs, *n, sizeof(seqs[0]), cmp_u64);
	return rc;
}

static int replay_all(struct dp_wal *w, dp_wal_record_fn fn, void *arg,
		      struct dp_wal_replay *info, char *err, size_t err_len)
{
	uint64_t *seqs = malloc(DP_WAL_SEGMENTS_MAX * sizeof(*seqs));
	if (seqs == NULL)
		return -BPX_ENOMEM;
	uint32_t n;
	int rc = list_segments(w, seqs, &n, err, err_len);
	for (uint32_t i = 1; rc == 0 && i < n; i++) {
		if (seqs[i] != seqs[i - 1] + 1) {
			char name[40];
			segment_name(name, sizeof(name), seqs[i - 1] + 1);
			snprintf(err, err_len,
				 "%s/%s is missing: the segments "
				 "before and after it are there",
				 w->dir, name);
			rc = -BPX_EMALFORMED;
		}
	}
	struct replay_ctx c = { .w = w,
				.fn = fn,
				.arg = arg,
				.info = info,
				.err = err,
				.err_len = err_len };
	for (uint32_t i = 0; rc == 0 && i < n; i++)
		rc = replay_segment(&c, seqs[i], i + 1 == n);
	if (rc == 0 && n == 0) {
		uint32_t salt = segment_salt();
		w->fd = segment_create(w, 1, salt);
		w->file_off = DP_WAL_SEGMENT_HEADER_BYTES;
		w->file_bytes = w->cfg.segment_bytes;
		w->segs[w->seg_count++] =
			(struct wal_segment){ .seq = 1, .salt = salt };
		if (w->fd < 0) {
			snprintf(err, err_len, "%s", w->error_text);
			rc = w->error;
		}
	}
	free(seqs);
	return rc;
}

/* Two processes appending to one log would interleave records and each
 * replay the other's: the second is refused. */
static int lock_dir(struct dp_wal *w, char *err, size_t err_len)
{
	w->lock_fd = openat(w->dir_fd, "wal.lock", O_RDWR | O_CREAT | O_CLOEXEC,
			    0600);
	if (w->lock_fd < 0) {
		snprintf(err, err_len, "create %s/wal.lock: %s", w->dir,
			 strerror(errno));
		return -BPX_EIO;
	}
	if (flock(w->lock_fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	bool held = errno == EWOULDBLOCK;
	snprintf(err, err_len, "lock %s/wal.lock: %s", w->dir,
		 held ? "another process has this write-ahead log open "
			"(a second bypaxd with the same wal_dir?)" :
			strerror(errno));
	return held ? -BPX_EBUSY : -BPX_EIO;
}

static const char *config_fault(const struct dp_wal_config *cfg)
{
	if (cfg->dir == NULL || cfg->dir[0] == '\0')
		return "no directory";
	if (strlen(cfg->dir) >= DP_WAL_PATH_MAX - 48)
		return "directory path too long";
	if (cfg->segment_bytes < DP_WAL_SEGMENT_BYTES_MIN ||
	    cfg->segment_bytes > DP_WAL_SEGMENT_BYTES_MAX)
		return "segment_bytes outside 4096..4294967296";
	if (cfg->buffer_bytes < 1024 ||
	    cfg->buffer_bytes >
		    cfg->segment_bytes - DP_WAL_SEGMENT_HEADER_BYTES)
		return "buffer_bytes outside 1024..segment_bytes - 32";
	return NULL;
}

int dp_wal_open(const struct dp_wal_config *cfg, dp_wal_record_fn fn, void *arg,
		struct dp_wal_replay *info, struct dp_wal **out, char *err,
		size_t err_len)
{
	WAL_ASSERT(cfg != NULL && info != NULL && out != NULL && err != NULL);
	memset(info, 0, sizeof(*info));
	*out = NULL;
	const char *why = config_fault(cfg);
	if (why != NULL) {
		snprintf(err, err_len, "write-ahead log: %s", why);
		return -BPX_EINVAL;
	}
	struct dp_wal *w = calloc(1, sizeof(*w));
	uint8_t *buf = malloc(cfg->buffer_bytes);
	if (w == NULL || buf == NULL) {
		free(w);
		free(buf);
		snprintf(err, err_len, "write-ahead log: out of memory");
		return -BPX_ENOMEM;
	}
	w->cfg = *cfg;
	w->buf = buf;
	w->fd = -1;
	w->lock_fd = -1;
	snprintf(w->dir, sizeof(w->dir), "%s", cfg->dir);
	w->cfg.dir = w->dir;
	w->dir_fd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dir_fd < 0) {
		snprintf(err, err_len, "open the WAL directory %s: %s", w->dir,
			 strerror(errno));
		dp_wal_close(w);
		return -BPX_EIO;
	}
	int rc = lock_dir(w, err, err_len);
	rc = rc ? rc : replay_all(w, fn, arg, info, err, err_len);
	if (rc != 0) {
		dp_wal_close(w);
		return rc;
	}
	*out = w;
	return 0;
}

void dp_wal_close(struct dp_wal *w)
{
	if (w == NULL)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->dir_fd >= 0)
		close(w->dir_fd);
	if (w->lock_fd >= 0)
		close(w->lock_fd); /* and the lock with it */
	free(w->buf);
	free(w);
}

/* ---- Whole files, atomically ---- */

int dp_wal_write_file_atomic(const char *dir, const char *name,
			     const uint8_t *p, size_t n, char *err,
			     size_t err_len)
{
	char tmp[DP_WAL_PATH_MAX], path[DP_WAL_PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	const char *step = "create";
	int dfd = -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto err;
	step = "write";
	for (size_t done = 0; done < n;) {
		ssize_t k = write(fd, p + done, n - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			goto err_after_open;
		done += (size_t)k;
	}
	step = "fsync";
	if (fsync(fd) != 0)
		goto err_after_open;
	close(fd);
	fd = -1;
	step = "rename into place";
	if (rename(tmp, path) != 0)
		goto err_after_open;
	step = "fsync the directory of";
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0)
		goto err_after_rename;
	close(dfd);
	return 0;
	int saved;
err_after_rename:
	saved = errno;
	if (dfd >= 0)
		close(dfd);
	snprintf(err, err_len, "%s %s: %s", step, path, strerror(saved));
	return -BPX_EIO;
err_after_open:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = saved;
err:
	snprintf(err, err_len, "%s %s: %s", step, tmp, strerror(errno));
	return -BPX_EIO;
}
