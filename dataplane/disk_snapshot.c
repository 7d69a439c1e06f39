/* Snapshots on disk (disk_snapshot.h): completed (the state machine's
 * frozen bytes), framed, written and synced by a thread of their own, so
 * the worker's share is the snapshot's small head and its copy steps. */
#define _GNU_SOURCE
#include "disk_snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bypax/consensus.h"
#include "bypax/errors.h"
#include "wal.h"

void px_assert_fail(const char *expr, const char *file, int line);
#define SNAPW_ASSERT(x)                                                        \
	do {                                                                   \
		if (!(x))                                                      \
			px_assert_fail(#x, __FILE__, __LINE__);                \
	} while (0)

struct dp_snapwriter {
	char dir[DP_WAL_PATH_MAX];
	uint8_t *buf; /* header, body, trailer */
	size_t body_cap;
	/* Set by the worker before it posts `go`: */
	size_t body_len;
	uint32_t cluster_id, member_count;
	uint64_t index;
	/* Non-NULL: the body ends with fill_len bytes that fill writes. */
	dp_snapwriter_fill_fn fill;
	void *fill_ctx;
	size_t fill_len;
	/* The hand-off: the worker moves IDLE -> BUSY and posts; the thread
	 * moves BUSY -> DONE/FAILED (release: the fields above and error
	 * are written before); the worker acks back to IDLE. */
	_Atomic int state;
	atomic_bool stopping;
	sem_t go;
	pthread_t thread;
	char error[DP_WAL_ERROR_TEXT_MAX];
};

static int write_file(struct dp_snapwriter *w)
{
	struct px_snapfile_header h = { .version = PX_SNAPFILE_FORMAT_VERSION,
					.cluster_id = w->cluster_id,
					.member_count = w->member_count,
					.applied_index = w->index,
					.body_bytes = w->body_len };
	px_snapfile_header_encode(w->buf, &h);
	size_t before_trailer = PX_SNAPFILE_HEADER_BYTES + w->body_len;
	uint32_t crc = px_crc32c(0, w->buf, before_trailer);
	px_snapfile_trailer_encode(w->buf + before_trailer, crc);
	return dp_wal_write_file_atomic(w->dir, DP_DISK_SNAPSHOT_FILE, w->buf,
					before_trailer +
						PX_SNAPFILE_TRAILER_BYTES,
					w->error, sizeof(w->error));
}

/* The body's last fill_len bytes, from the state machine's frozen copy. */
static int fill_body(struct dp_snapwriter *w)
{
	size_t head_len = w->body_len - w->fill_len;
	uint8_t *at = w->buf + PX_SNAPFILE_HEADER_BYTES + head_len;
	int64_t n = w->fill(w->fill_ctx, at, w->fill_len);
	if (n == (int64_t)w->fill_len)
		return 0;
	snprintf(w->error, sizeof(w->error),
		 "the state machine wrote %" PRId64 " bytes of its frozen "
		 "snapshot, not the %zu it announced",
		 n, w->fill_len);
	return -BPX_EIO;
}

static void write_one(struct dp_snapwriter *w)
{
	int rc = w->fill != NULL ? fill_body(w) : 0;
	rc = rc ? rc : write_file(w);
	atomic_store_explicit(&w->state,
			      rc == 0 ? DP_SNAPW_DONE : DP_SNAPW_FAILED,
			      memory_order_release);
}

static void *writer_main(void *arg)
{
	struct dp_snapwriter *w = arg;
	for (;;) {
		while (sem_wait(&w->go) != 0 && errno == EINTR)
			;
		if (atomic_load(&w->stopping))
			return NULL;
		if (atomic_load_explicit(&w->state, memory_order_acquire) ==
		    DP_SNAPW_BUSY)
			write_one(w);
	}
}

int dp_snapwriter_start(const char *dir, size_t body_cap,
			struct dp_snapwriter **out, char *err, size_t err_len)
{
	*out = NULL;
	struct dp_snapwriter *w = calloc(1, sizeof(*w));
	uint8_t *buf = malloc(PX_SNAPFILE_HEADER_BYTES + body_cap +
			      PX_SNAPFILE_TRAILER_BYTES);
	if (w == NULL || buf == NULL) {
		free(w);
		free(buf);
		snprintf(err, err_len,
			 "cannot allocate %zu bytes for snapshots "
			 "on disk",
			 body_cap);
		return -BPX_ENOMEM;
	}
	snprintf(w->dir, sizeof(w->dir), "%s", dir);
	w->buf = buf;
	w->body_cap = body_cap;
	atomic_init(&w->state, DP_SNAPW_IDLE);
	atomic_init(&w->stopping, false);
	int e = sem_init(&w->go, 0, 0);
	e = e ? errno : pthread_create(&w->thread, NULL, writer_main, w);
	if (e != 0) {
		snprintf(err, err_len,
			 "cannot start the snapshot writer "
			 "thread: %s",
			 strerror(e));
		free(buf);
		free(w);
		return -BPX_EIO;
	}
	*out = w;
	return 0;
}

void dp_snapwriter_stop(struct dp_snapwriter *w)
{
	if (w == NULL)
		return;
	atomic_store(&w->stopping, true);
	sem_post(&w->go);
	pthread_join(w->thread, NULL); /* a write in flight finishes first */
	sem_destroy(&w->go);
	free(w->buf);
	free(w);
}

uint8_t *dp_snapwriter_body(struct dp_snapwriter *w, size_t *cap)
{
	SNAPW_ASSERT(atomic_load(&w->state) == DP_SNAPW_IDLE);
	*cap = w->body_cap;
	return w->buf + PX_SNAPFILE_HEADER_BYTES;
}

/* The body's fields for the file; -BPX_EMALFORMED if it is none. */
static int take_body(struct dp_snapwriter *w, size_t body_len,
		     uint32_t cluster_id, uint32_t member_count)
{
	SNAPW_ASSERT(atomic_load(&w->state) == DP_SNAPW_IDLE);
	SNAPW_ASSERT(body_len <= w->body_cap);
	uint32_t version;
	uint64_t index;
	if (px_snapshot_peek(w->buf + PX_SNAPFILE_HEADER_BYTES, body_len,
			     &version, &index) != 0)
		return -BPX_EMALFORMED;
	w->body_len = body_len;
	w->cluster_id = cluster_id;
	w->member_count = member_count;
	w->index = index;
	w->fill = NULL;
	w->fill_ctx = NULL;
	w->fill_len = 0;
	return 0;
}

int dp_snapwriter_submit(struct dp_snapwriter *w, size_t body_len,
			 uint32_t cluster_id, uint32_t member_count)
{
	int rc = take_body(w, body_len, cluster_id, member_count);
	if (rc != 0)
		return rc;
	atomic_store_explicit(&w->state, DP_SNAPW_BUSY, memory_order_release);
	sem_post(&w->go);
	return 0;
}

int dp_snapwriter_submit_fill(struct dp_snapwriter *w, size_t head_len,
			      dp_snapwriter_fill_fn fill, void *ctx,
			      size_t fill_len, uint32_t cluster_id,
			      uint32_t member_count)
{
	SNAPW_ASSERT(fill != NULL && head_len <= w->body_cap &&
		     fill_len <= w->body_cap - head_len);
	int rc = take_body(w, head_len, cluster_id, member_count);
	if (rc != 0)
		return rc;
	w->body_len = head_len + fill_len;
	w->fill = fill;
	w->fill_ctx = ctx;
	w->fill_len = fill_len;
	atomic_store_explicit(&w->state, DP_SNAPW_BUSY, memory_order_release);
	sem_post(&w->go);
	return 0;
}

int dp_snapwriter_write_now(struct dp_snapwriter *w, size_t body_len,
			    uint32_t cluster_id, uint32_t member_count)
{
	int rc = take_body(w, body_len, cluster_id, member_count);
	return rc ? rc : write_file(w);
}

enum dp_snapw_state dp_snapwriter_state(struct dp_snapwriter *w,
					uint64_t *index)
{
	int s = atomic_load_explicit(&w->state, memory_order_acquire);
	if (s == DP_SNAPW_DONE || s == DP_SNAPW_FAILED)
		*index = w->index;
	return (enum dp_snapw_state)s;
}

const char *dp_snapwriter_error(const struct dp_snapwriter *w)
{
	return w->error;
}

void dp_snapwriter_ack(struct dp_snapwriter *w)
{
	int s = atomic_load_explicit(&w->state, memory_order_acquire);
	SNAPW_ASSERT(s == DP_SNAPW_DONE || s == DP_SNAPW_FAILED);
	atomic_store_explicit(&w->state, DP_SNAPW_IDLE, memory_order_release);
}

/* ---- Reading it back at start-up ---- */

static int read_file(const char *path, uint8_t **buf, size_t *len, char *err,
		     size_t err_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return -BPX_ENOENT;
		snprintf(err, err_len, "open %s: %s", path, strerror(errno));
		return -BPX_EIO;
	}
	struct stat st;
	int rc = fstat(fd, &st) == 0 ? 0 : -BPX_EIO;
	size_t n = rc == 0 ? (size_t)st.st_size : 0;
	uint8_t *p = rc == 0 ? malloc(n > 0 ? n : 1) : NULL;
	if (rc == 0 && p == NULL)
		rc = -BPX_ENOMEM;
	for (size_t got = 0; rc == 0 && got < n;) {
		ssize_t k = read(fd, p + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			rc = -BPX_EIO;
		else
			got += (size_t)k;
	}
	if (rc != 0) {
		snprintf(err, err_len, "read %s: %s", path,
			 rc == -BPX_ENOMEM ? "out of memory" : strerror(errno));
		free(p);
		p = NULL;
	}
	close(fd);
	*buf = p;
	*len = n;
	return rc;
}

int dp_disk_snapshot_load(const char *dir, uint32_t cluster_id,
			  uint32_t member_count, uint8_t **buf, size_t *len,
			  struct px_snapfile_info *info, char *err,
			  size_t err_len)
{
	char path[DP_WAL_PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/%s", dir, DP_DISK_SNAPSHOT_FILE);
	int rc = read_file(path, buf, len, err, err_len);
	if (rc != 0)
		return rc;
	enum px_snapfile_check c = px_snapfile_check(*buf, *len, info);
	if (c == PX_SNAPFILE_OK && (info->h.cluster_id != cluster_id ||
				    info->h.member_count != member_count)) {
		snprintf(err, err_len,
			 "%s: the snapshot of cluster %" PRIu32 " with %" PRIu32
			 " members, not of this one (cluster "
			 "%" PRIu32 ", %" PRIu32 " members): a wal_dir of "
			 "another cluster?",
			 path, info->h.cluster_id, info->h.member_count,
			 cluster_id, member_count);
		rc = -BPX_EMALFORMED;
	} else if (c != PX_SNAPFILE_OK) {
		snprintf(err, err_len, "%s: %s", path,
			 px_snapfile_check_text(c));
		rc = -BPX_EMALFORMED;
	}
	if (rc != 0) {
		free(*buf);
		*buf = NULL;
	}
	return rc;
}
