/* bypaxd --bootstrap --restore FILE: the first start of a new cluster from
 * a snapshot file that `bypaxctl snapshot` wrote (docs/deploy.md,
 * "Disaster recovery").
 *
 * Why every member restores the same file, with --bootstrap. A restored
 * replica is a bootstrap whose initial state is the snapshot's instead of
 * empty: no promises, no log, applied and committed up to the snapshot's
 * index. Started that way from one file, the members agree on the state
 * at that index exactly as bootstrapped members agree on the empty state
 * at index 0, and Paxos goes on from the next slot: nothing new is
 * assumed. Restoring one member and starting the others without
 * --bootstrap does not work here: replicas without persistence recover
 * only from a majority that votes (recovery.c), and a lone restored
 * member is no majority, which is the very stall (one candidate, two
 * recovering) this command gets a cluster out of.
 *
 * It is a new history, as etcd's `snapshot restore`: what the old cluster
 * chose after the snapshot is gone, and no replica of the old history may
 * ever talk to one of the new, or values from the two would mix in one
 * log. So: every old replica stopped first (checked on this host through
 * the admin sockets), the file's cluster id is the config's unless the
 * operator says otherwise, and the member count must be the file's (the
 * membership history and crash vector inside are sized for it). The
 * client sessions come along as part of the state: a retry of a write
 * the snapshot holds is answered from its session, never applied twice.
 *
 * Runs in the main thread before the worker and the control thread start:
 * blocking reads of the file are fine here, and nothing else touches the
 * replica yet. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bypaxd.h"
#include "ctl_log.h"
#include "dp.h"

static int refuse(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int refuse(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -BPX_ECONFIG;
}

/* The largest file a replica could hold: a snapshot that fills its
 * --snapshot-mb buffer, which is also the most the replicas can send each
 * other when one catches up. */
static uint64_t file_bytes_max(const struct bypaxd_opts *o)
{
	return px_snapfile_size((uint64_t)o->snapshot_mb << 20);
}

static int read_whole(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue; /* net_tap's SIGIO */
		if (n <= 0)
			return n == 0 ? -EIO : -errno;
		got += (size_t)n;
	}
	return 0;
}

static int read_file(struct bypaxd_restore *rs, const struct bypaxd_opts *o,
		     char *err, size_t len)
{
	const char *f = o->restore;
	struct stat st;
	int fd = open(f, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return refuse(err, len, "--restore %s: cannot read it: %s", f,
			      strerror(e));
	}
	int rc = 0;
	if (!S_ISREG(st.st_mode))
		rc = refuse(err, len, "--restore %s: not a regular file", f);
	else if ((uint64_t)st.st_size > file_bytes_max(o))
		rc = refuse(err, len, "--restore %s: %jd bytes, more than a "
			    "snapshot buffer of --snapshot-mb %u holds (%" PRIu64
			    " bytes with the file's framing): the replicas "
			    "could not send this state to each other; raise "
			    "--snapshot-mb", f, (intmax_t)st.st_size,
			    o->snapshot_mb, file_bytes_max(o));
	rs->len = rc == 0 ? (size_t)st.st_size : 0;
	rs->buf = rc == 0 ? malloc(rs->len > 0 ? rs->len : 1) : NULL;
	if (rc == 0 && rs->buf == NULL)
		rc = refuse(err, len, "--restore %s: no memory for its %zu "
			    "bytes", f, rs->len);
	int e = rc == 0 ? read_whole(fd, rs->buf, rs->len) : 0;
	if (e != 0)
		rc = refuse(err, len, "--restore %s: cannot read it: %s", f,
			    strerror(-e));
	close(fd);
	return rc;
}

/* What is wrong, with the values that show it. */
static void check_detail(enum px_snapfile_check c,
			 const struct px_snapfile_info *in, char *buf,
			 size_t cap)
{
	buf[0] = '\0';
	if (c == PX_SNAPFILE_VERSION)
		snprintf(buf, cap, " (file format version %u; this bypaxd "
			 "reads version %u)", in->h.version,
			 PX_SNAPFILE_FORMAT_VERSION);
	else if (c == PX_SNAPFILE_LENGTH)
		snprintf(buf, cap, " (%" PRIu64 " bytes; its header says %"
			 PRIu64 " bytes of snapshot and %u of framing)",
			 in->file_bytes, in->h.body_bytes,
			 PX_SNAPFILE_HEADER_BYTES + PX_SNAPFILE_TRAILER_BYTES);
	else if (c == PX_SNAPFILE_CHECKSUM)
		snprintf(buf, cap, " (crc32c stored %08x, computed %08x)",
			 in->crc_stored, in->crc_computed);
	else if (c == PX_SNAPFILE_BODY_VERSION)
		snprintf(buf, cap, " (snapshot format version %u)",
			 in->body_version);
	else if (c == PX_SNAPFILE_INDEX)
		snprintf(buf, cap, " (header %" PRIu64 ", snapshot %" PRIu64
			 ")", in->h.applied_index, in->body_index);
}

static int check_file(struct bypaxd_restore *rs, const struct bypaxd_opts *o,
		      const struct bpx_config *cfg, char *err, size_t len)
{
	struct px_snapfile_info *in = &rs->info;
	enum px_snapfile_check c = px_snapfile_check(rs->buf, rs->len, in);
	if (c != PX_SNAPFILE_OK) {
		char detail[160];
		check_detail(c, in, detail, sizeof(detail));
		return refuse(err, len, "--restore %s: %s%s", o->restore,
			      px_snapfile_check_text(c), detail);
	}
	if (in->h.cluster_id != cfg->cluster_id && !o->restore_other_cluster)
		return refuse(err, len, "--restore %s: a snapshot of cluster "
			      "%u, but %s is cluster %u; to restore it into "
			      "cluster %u on purpose, add "
			      "--restore-other-cluster", o->restore,
			      in->h.cluster_id, cfg->path, cfg->cluster_id,
			      cfg->cluster_id);
	if (in->h.member_count != cfg->member_count)
		return refuse(err, len, "--restore %s: a snapshot of a %u-member "
			      "cluster, but %s has %u members; restore it with "
			      "that cluster's membership", o->restore,
			      in->h.member_count, cfg->path, cfg->member_count);
	return 0;
}

/* Whether a bypaxd accepts connections on path (a stopped one does too:
 * it would come back). A stale socket file refuses: that is no replica. */
static bool answers(const char *path)
{
	struct sockaddr_un a;
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool yes = fd >= 0 &&
		   connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return yes;
}

/* The old history must be gone: on this host, no bypaxd of the file's
 * cluster or of ours may still answer for this member id. */
static int check_no_old_replica(const struct bypaxd_restore *rs,
				const struct bypaxd_opts *o,
				const char *admin_path, char *err, size_t len)
{
	char old_path[108];
	(void)bpx_admin_socket_path(rs->info.h.cluster_id, (unsigned)o->id,
				    old_path, sizeof(old_path));
	const char *live = answers(admin_path) ? admin_path
			   : answers(old_path) ? old_path
					       : NULL;
	if (live == NULL)
		return 0;
	return refuse(err, len, "--restore %s: a bypaxd still answers on %s: "
		      "stop every replica of the old cluster before restoring "
		      "(a restored cluster must never meet the old one)",
		      o->restore, live);
}

int bypaxd_restore_load(struct bypaxd_restore *rs, const struct bypaxd_opts *o,
			const struct bpx_config *cfg, const char *admin_path,
			char *err, size_t err_len)
{
	DP_ASSERT(o->restore != NULL && o->bootstrap);
	memset(rs, 0, sizeof(*rs));
	int rc = read_file(rs, o, err, err_len);
	rc = rc ? rc : check_file(rs, o, cfg, err, err_len);
	rc = rc ? rc : check_no_old_replica(rs, o, admin_path, err, err_len);
	if (rc != 0)
		bypaxd_restore_free(rs);
	return rc;
}

/* An event line (docs/deploy.md, Event log): the file, whose state, and
 * that a new history starts here. */
static void log_restored(const struct bypaxd_restore *rs,
			 const struct bypaxd_opts *o)
{
	const struct px_snapfile_info *in = &rs->info;
	char crc[16];
	snprintf(crc, sizeof(crc), "%08x", in->crc_stored);
	ctl_log_event(CTL_LOG_PAXOS, RTE_LOG_NOTICE, o->id, "restored",
		      BPX_LOG_FIELDS(BPX_LF_STR("file", o->restore),
				     BPX_LF_U64("cluster", in->h.cluster_id),
				     BPX_LF_U64("index", in->h.applied_index),
				     BPX_LF_U64("bytes", rs->len),
				     BPX_LF_STR("crc32c", crc),
				     BPX_LF_STR("note", "a new history starts here")));
}

int bypaxd_restore_install(struct bypaxd_restore *rs, struct dp_replica *r,
			   const struct bypaxd_opts *o, char *err,
			   size_t err_len)
{
	const struct px_snapfile_info *in = &rs->info;
	DP_ASSERT(rs->buf != NULL && in->body != NULL);
	int rc = dp_replica_restore(r, in->body, (size_t)in->h.body_bytes);
	if (rc == 0 && px_applied_index(r->px) != in->h.applied_index)
		rc = -BPX_EMALFORMED; /* taken as older than our state */
	if (rc != 0)
		rc = refuse(err, err_len, "--restore %s: the replica refused "
			    "the snapshot inside: %s (taken with another state "
			    "machine, sm_args or [cluster] sessions?)",
			    o->restore, bpx_strerror(rc));
	else
		log_restored(rs, o);
	bypaxd_restore_free(rs);
	return rc;
}

void bypaxd_restore_free(struct bypaxd_restore *rs)
{
	free(rs->buf);
	memset(rs, 0, sizeof(*rs));
}
