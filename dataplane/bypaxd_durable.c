/* bypaxd in durable mode ([cluster] durability = wal; docs/deploy.md,
 * "Durable mode"): the start from [memberN] wal_dir. Runs in the main
 * thread before the worker and the control thread start, so blocking
 * file reads are fine here and nothing else touches the replica yet.
 *
 * A directory with data (a snapshot file or WAL segments): the snapshot
 * is installed, then every WAL record is checked and handed to
 * px_durable_replay in order, and the replica votes at once: it forgot
 * nothing it told anyone, so no recovery round and no --bootstrap. A
 * torn tail (the last group commit cut short by the crash, never synced,
 * so never acted on) is cut and reported; anything else that is wrong
 * stops the start with the file and byte offset.
 *
 * An empty directory is the first start of a member of a new cluster,
 * and needs --bootstrap, as in memory mode: an empty directory could
 * also be a member whose disk was lost, and a member that forgot its
 * promises must not vote as if it had made none. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bypaxd.h"
#include "disk_snapshot.h"
#include "dp.h"
#include "wal.h"
#include "wal_px.h"

#define WAL_BUFFER_BYTES (1u << 20)

#define FIRST_SEGMENT_FILE "wal-0000000000000001.seg" /* wal.h's names */

/* What a wal_dir holds, by file name. */
struct dir_contents {
	bool snapshot;	    /* DP_DISK_SNAPSHOT_FILE */
	bool segments;	    /* any wal-*.seg */
	bool first_segment; /* FIRST_SEGMENT_FILE */
};

static int scan_dir(const char *dir, struct dir_contents *c, char *err,
		    size_t len)
{
	DIR *dp = opendir(dir);
	if (dp == NULL) {
		snprintf(err, len, "wal_dir %s: %s", dir, strerror(errno));
		return -BPX_EIO;
	}
	memset(c, 0, sizeof(*c));
	struct dirent *e;
	while ((e = readdir(dp)) != NULL) {
		size_t n = strlen(e->d_name);
		if (strcmp(e->d_name, DP_DISK_SNAPSHOT_FILE) == 0)
			c->snapshot = true;
		else if (strncmp(e->d_name, "wal-", 4) == 0 && n > 4 &&
			 strcmp(e->d_name + n - 4, ".seg") == 0)
			c->segments = true;
		if (strcmp(e->d_name, FIRST_SEGMENT_FILE) == 0)
			c->first_segment = true;
	}
	closedir(dp);
	return 0;
}

/* The first segment is made before anything else is written (dp_wal_open),
 * the newest is never deleted, and the others only once a snapshot holds
 * every slot they do (durable.c, recycle_behind). So a snapshot without
 * segments lost the promise and the votes after it, and segments without
 * the first and without a snapshot lost what the member applied: either
 * would vote at once having forgotten. */
static int check_log_whole(const char *dir, const struct dir_contents *c,
			   char *err, size_t len)
{
	if (c->snapshot && !c->segments) {
		snprintf(err, len,
			 "wal_dir %s holds %s and no write-ahead log segment: "
			 "the log of what the member promised and accepted was "
			 "lost, and it cannot vote again by itself "
			 "(docs/deploy.md, \"A corrupt write-ahead log\")",
			 dir, DP_DISK_SNAPSHOT_FILE);
		return -BPX_ECONFIG;
	}
	if (c->segments && !c->first_segment && !c->snapshot) {
		snprintf(
			err, len,
			"wal_dir %s: the segments before its oldest were "
			"deleted behind a snapshot on disk, and %s is missing: "
			"the member cannot rebuild what it applied "
			"(docs/deploy.md, \"A corrupt write-ahead log\")",
			dir, DP_DISK_SNAPSHOT_FILE);
		return -BPX_ECONFIG;
	}
	return 0;
}

static int replay_record(void *arg, uint8_t type, uint64_t tag,
			 const uint8_t *payload, uint32_t len)
{
	struct dp_replica *r = arg;
	struct px_msg m;
	(void)tag;
	int rc = dp_wal_px_decode(type, payload, len, &m);
	if (rc == 0) {
		m.from = m.to = r->id;
		rc = px_durable_replay(r->px, &m);
	}
	return rc;
}

/* The disk snapshot, if there is one, into the replica first: the
 * records of the slots it covers are then ignored. */
static int install_snapshot(struct bypaxd_durable *du, struct dp_replica *r,
			    const struct bpx_config *cfg, const char *dir,
			    char *err, size_t len)
{
	uint8_t *buf;
	size_t n;
	struct px_snapfile_info info;
	int rc = dp_disk_snapshot_load(dir, cfg->cluster_id, cfg->member_count,
				       &buf, &n, &info, err, len);
	if (rc == -BPX_ENOENT)
		return 0;
	if (rc != 0)
		return rc;
	/* Its outbox stays queued: the worker's first pass sends it, its
	 * records going to the WAL then. */
	rc = px_snapshot_install(r->px, dp_now_ns(), info.body,
				 info.h.body_bytes, &r->out);
	if (rc != 0)
		snprintf(err, len,
			 "%s/%s: the replica refused the snapshot "
			 "inside: %s",
			 dir, DP_DISK_SNAPSHOT_FILE, bpx_strerror(rc));
	du->had_snapshot = rc == 0;
	du->snapshot_index = info.h.applied_index;
	free(buf);
	return rc;
}

static int check_start_kind(const struct bypaxd_opts *o, const char *dir,
			    bool data, char *err, size_t len)
{
	if (!data && !o->bootstrap) {
		snprintf(err, len,
			 "wal_dir %s holds no write-ahead log: the "
			 "first start of a durable member is with --bootstrap "
			 "(a new cluster); a member whose log was lost cannot "
			 "vote again by itself (docs/deploy.md, \"Durable "
			 "mode\")",
			 dir);
		return -BPX_ECONFIG;
	}
	if (data && o->bootstrap) {
		snprintf(err, len,
			 "wal_dir %s holds a write-ahead log: "
			 "--bootstrap (a new cluster) would throw it away; "
			 "restart without --bootstrap, and it replays the log "
			 "(docs/deploy.md, \"Durable mode\")",
			 dir);
		return -BPX_ECONFIG;
	}
	return 0;
}

int bypaxd_durable_check(const struct bpx_config *cfg,
			 const struct bypaxd_opts *o, char *err, size_t len)
{
	const char *dir = cfg->members[o->id].wal_dir;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, len, "wal_dir %s: %s", dir, strerror(errno));
		return -BPX_EIO;
	}
	struct dir_contents c;
	int rc = scan_dir(dir, &c, err, len);
	rc = rc ? rc :
		  check_start_kind(o, dir, c.snapshot || c.segments, err, len);
	return rc ? rc : check_log_whole(dir, &c, err, len);
}

int bypaxd_durable_open(struct bypaxd_durable *du, struct dp_replica *r,
			const struct bpx_config *cfg,
			const struct bypaxd_opts *o, char *err, size_t len)
{
	memset(du, 0, sizeof(*du));
	const char *dir = cfg->members[o->id].wal_dir;
	int rc = install_snapshot(du, r, cfg, dir, err, len);
	if (rc != 0)
		return rc;
	/* A quarter segment: a full buffer is written, unsynced, and the
	 * sync per pass has at most that much to flush. */
	uint64_t buffer = cfg->wal_segment_bytes / 4;
	struct dp_wal_config wc = {
		.dir = dir,
		.segment_bytes = cfg->wal_segment_bytes,
		.buffer_bytes = (uint32_t)(buffer < WAL_BUFFER_BYTES ?
						   buffer :
						   WAL_BUFFER_BYTES)
	};
	rc = dp_wal_open(&wc, replay_record, r, &du->info, &du->wal, err, len);
	if (rc != 0)
		return rc == -BPX_EMALFORMED || rc == -BPX_EINVAL ||
				       rc == -BPX_EBUSY ?
			       -BPX_ECONFIG /* exit 2: the operator acts */
			       :
			       rc;
	if (o->snapshot_mb > 0) {
		rc = dp_snapwriter_start(dir, (size_t)o->snapshot_mb << 20,
					 &du->snapw, err, len);
		if (rc != 0)
			return rc;
	}
	dp_replica_enable_durable(r, du->wal, du->snapw, du->snapshot_index);
	return 0;
}

/* After the worker stopped. */
void bypaxd_durable_close(struct bypaxd_durable *du)
{
	dp_snapwriter_stop(du->snapw);
	if (du->wal != NULL)
		dp_wal_sync(du->wal); /* a clean stop loses no record */
	dp_wal_close(du->wal);
	memset(du, 0, sizeof(*du));
}
