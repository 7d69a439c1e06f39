/* bypaxctl: operate a running bypax cluster through bypaxd's admin socket
 * (a UNIX socket, mode 0660 group bypax, one per replica on its host;
 * docs/deploy.md, "The admin socket").
 *
 *   bypaxctl [--config FILE] [--id N | --socket PATH] [--json] COMMAND
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bypax/config.h"
#include "bypax/snapfile.h"

#define EXIT_FAILED 1 /* the replica refused, or the command failed here */
#define EXIT_USAGE 2  /* usage, configuration, or no replica answers */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bypaxctl [--config FILE] [--id N | --socket PATH] [--json] COMMAND\n"
		"Commands:\n"
		"  status                 every member: role, ballot, commit and apply\n"
		"                         index, lag, liveness; the last failover\n"
		"                         (--json: docs/deploy.md, bypaxctl status --json)\n"
		"  members                the configured members and their addresses\n"
		"  members add ID ...     let configured replicas vote (through the log)\n"
		"  members remove ID      stop a replica voting (through the log)\n"
		"  leader transfer ID     hand leadership to member ID ('none' cancels)\n"
		"  snapshot PATH          save the replica's state (state machine, client\n"
		"                         sessions, membership) to PATH on this host, for\n"
		"                         bypaxd --bootstrap --restore PATH; the replica\n"
		"                         streams it, bypaxctl writes PATH.tmp, fsyncs it\n"
		"                         and renames it to PATH (never a partial PATH).\n"
		"                         Without --id: the first member that can (not a\n"
		"                         recovering one); pick the one with the highest\n"
		"                         APPLIED in status. See docs/deploy.md, Disaster\n"
		"                         recovery.\n"
		"  fault isolate MS [both|control|data]\n"
		"                         cut the replica off from its peers (testing)\n"
		"  fault link M MS        take the link to member M down (testing)\n"
		"  fault silent M MS      the link to member M stays up but carries\n"
		"                         nothing until its port restarts (testing)\n"
		"Without --id, leader transfer and members add/remove go to each\n"
		"member in turn until one (the leader) accepts; every answer is\n"
		"printed, prefixed 'member N: ', refusals on stderr. Other commands\n"
		"ask the first member that answers.\n"
		"Options:\n"
		"  --config FILE   cluster configuration (default $BYPAX_CONFIG or\n"
		"                  ./bypax.conf); names the admin sockets\n"
		"  --id N          talk to member N's bypaxd (default: the first that\n"
		"                  answers on this host), at $BYPAX_RUN_DIR (default\n"
		"                  /run/bypax)/bypaxd-<cluster id>-N.sock\n"
		"  --socket PATH   talk to this admin socket\n"
		"  --json          machine-readable status and members\n"
		"  --version       print the version and exit\n"
		"Exit status: 0 ok; 1 the command failed (the replica said error; for\n"
		"snapshot also: the stream broke or was damaged, or PATH could not be\n"
		"written; PATH is then as it was); 2 usage, configuration or connection\n"
		"error (no replica answers), or an unknown command or missing argument.\n");
}

/* Connects to an admin socket and sends one command line. Returns the
 * connection, or -1 with errno set. */
static int send_command(const char *path, const char *line)
{
	struct sockaddr_un a;
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		errno = e;
		return -1;
	}
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	size_t len = strlen(line);
	if (write(fd, line, len) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends one command line and prints the reply. Returns 0, 1 (the replica
 * said error) or -1 (cannot connect). */
static int ask(const char *path, const char *line, char *reply, size_t cap)
{
	int fd = send_command(path, line);
	if (fd < 0)
		return -1;
	size_t got = 0;
	ssize_t n;
	while (got + 1 < cap && (n = read(fd, reply + got, cap - got - 1)) > 0)
		got += (size_t)n;
	reply[got] = '\0';
	close(fd);
	if (got == 0) { /* closed without an answer: not a success */
		errno = ECONNRESET;
		return -1;
	}
	return strncmp(reply, "error:", 6) == 0 ? 1 : 0;
}

/* ---- snapshot PATH ----
 * The replica answers one line, "ok: snapshot of member M at applied
 * index I, B bytes follow", then streams B bytes: a snapshot file
 * (bypax/snapfile.h), which is checked here as it is written to PATH.tmp;
 * only a whole, checked, fsynced file is renamed to PATH. Or it answers
 * one "error: ..." line. */

struct snap_recv {
	const char *path; /* PATH, as given */
	char tmp[4096];	  /* PATH.tmp */
	int fd;		  /* PATH.tmp, open */
	unsigned member;
	uint64_t index, total, got;
	uint8_t head[PX_SNAPFILE_HEADER_BYTES];
	uint8_t tail[PX_SNAPFILE_TRAILER_BYTES];
	uint32_t crc; /* of the bytes before the trailer, so far */
};

/* One line without its '\n', byte by byte so that no byte of the file
 * after it is taken. Returns its length, or -1. */
static ssize_t read_line(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	while (len + 1 < cap) {
		ssize_t n = read(fd, buf + len, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		if (buf[len] == '\n')
			break;
		len++;
	}
	buf[len] = '\0';
	return (ssize_t)len;
}

static bool write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static size_t min_size(uint64_t a, uint64_t b)
{
	return (size_t)(a < b ? a : b);
}

/* n bytes at file offset r->got: kept where they are the header or the
 * trailer, and counted in the checksum where they are not the trailer. */
static void snap_account(struct snap_recv *r, const uint8_t *p, size_t n)
{
	uint64_t covered = r->total - PX_SNAPFILE_TRAILER_BYTES;
	if (r->got < PX_SNAPFILE_HEADER_BYTES)
		memcpy(r->head + r->got, p,
		       min_size(n, PX_SNAPFILE_HEADER_BYTES - r->got));
	if (r->got < covered)
		r->crc = px_crc32c(r->crc, p, min_size(n, covered - r->got));
	if (r->got + n > covered) {
		size_t from = r->got < covered ? (size_t)(covered - r->got) : 0;
		memcpy(r->tail + (r->got + from - covered), p + from, n - from);
	}
	r->got += n;
}

/* What bypaxd --restore will check first, on the bytes as they came. */
static bool snap_stream_ok(const struct snap_recv *r)
{
	struct px_snapfile_header h;
	enum px_snapfile_check c =
		px_snapfile_header_decode(r->head, sizeof(r->head), &h);
	uint32_t stored = px_snapfile_trailer_decode(r->tail);
	if (c == PX_SNAPFILE_OK &&
	    h.body_bytes != r->total - PX_SNAPFILE_HEADER_BYTES -
				    PX_SNAPFILE_TRAILER_BYTES)
		c = PX_SNAPFILE_LENGTH;
	if (c == PX_SNAPFILE_OK && stored != r->crc)
		c = PX_SNAPFILE_CHECKSUM;
	if (c == PX_SNAPFILE_OK && h.applied_index != r->index)
		c = PX_SNAPFILE_INDEX;
	if (c == PX_SNAPFILE_OK)
		return true;
	fprintf(stderr, "bypaxctl: snapshot: the stream from member %u is "
		"damaged: %s (crc32c stored %08x, computed %08x); %s not "
		"written\n", r->member, px_snapfile_check_text(c), stored,
		r->crc, r->path);
	return false;
}

/* The stream into PATH.tmp. Returns false (said why) if it broke. */
static bool snap_receive(struct snap_recv *r, int sock)
{
	static uint8_t buf[1 << 16];
	while (r->got < r->total) {
		ssize_t n = read(sock, buf, min_size(sizeof(buf),
						     r->total - r->got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "bypaxctl: snapshot: member %u's stream "
				"ended after %" PRIu64 " of %" PRIu64 " bytes "
				"(%s); %s not written\n", r->member, r->got,
				r->total,
				n == 0 ? "connection closed"
				: errno == EAGAIN ? "nothing came for 10 s"
						  : strerror(errno),
				r->path);
			return false;
		}
		if (!write_all(r->fd, buf, (size_t)n)) {
			fprintf(stderr, "bypaxctl: snapshot: cannot write %s: "
				"%s\n", r->tmp, strerror(errno));
			return false;
		}
		snap_account(r, buf, (size_t)n);
	}
	return snap_stream_ok(r);
}

/* The directory entry of the rename, on the disk too. */
static int fsync_dir_of(const char *path)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = fd < 0 || fsync(fd) != 0 ? -1 : 0;
	if (rc != 0)
		fprintf(stderr, "bypaxctl: snapshot: cannot fsync directory %s "
			"(%s is in place, but may not survive a crash): %s\n",
			dir, path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

/* PATH.tmp, whole and checked: on the disk, then under its name. */
static bool snap_commit(struct snap_recv *r)
{
	const char *what = "fsync";
	bool ok = fsync(r->fd) == 0;
	int e = errno;
	if (close(r->fd) != 0 && ok) {
		ok = false;
		e = errno;
		what = "close";
	}
	r->fd = -1;
	if (!ok) {
		fprintf(stderr, "bypaxctl: snapshot: cannot %s %s: %s\n", what,
			r->tmp, strerror(e));
		return false;
	}
	if (rename(r->tmp, r->path) != 0) {
		fprintf(stderr, "bypaxctl: snapshot: cannot rename %s to %s: "
			"%s\n", r->tmp, r->path, strerror(errno));
		return false;
	}
	return fsync_dir_of(r->path) == 0;
}

/* Returns true once PATH holds the whole, checked file. */
static bool snap_to_file(struct snap_recv *r, int sock)
{
	if ((size_t)snprintf(r->tmp, sizeof(r->tmp), "%s.tmp", r->path) >=
	    sizeof(r->tmp)) {
		fprintf(stderr, "bypaxctl: snapshot: path too long: %s\n",
			r->path);
		return false;
	}
	/* 0600: the file holds every key and value of the cluster. */
	r->fd = open(r->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (r->fd < 0) {
		fprintf(stderr, "bypaxctl: snapshot: cannot create %s: %s\n",
			r->tmp, strerror(errno));
		return false;
	}
	if (snap_receive(r, sock) && snap_commit(r)) {
		printf("ok: snapshot of member %u at applied index %" PRIu64
		       " (%" PRIu64 " bytes, crc32c %08x) written to %s\n",
		       r->member, r->index, r->total, r->crc, r->path);
		return true;
	}
	if (r->fd >= 0)
		close(r->fd);
	unlink(r->tmp); /* PATH itself was never touched */
	return false;
}

enum snap_outcome {
	SNAP_WRITTEN,
	SNAP_UNREACHABLE, /* no bypaxd on that socket */
	SNAP_REFUSED,	  /* it answered error: another member may do */
	SNAP_FAILED,	  /* it had begun: said why, ask no one else */
};

/* Asks the replica behind sock_path; a refusal's text goes to refusal. */
static enum snap_outcome snapshot_from(const char *sock_path, const char *path,
				       char *refusal, size_t cap)
{
	int sock = send_command(sock_path, "snapshot\n");
	if (sock < 0)
		return SNAP_UNREACHABLE;
	char line[256];
	struct snap_recv r = { .path = path, .fd = -1 };
	enum snap_outcome out = SNAP_REFUSED;
	if (read_line(sock, line, sizeof(line)) < 0) {
		snprintf(refusal, cap, "bypaxctl: snapshot: %s closed the "
			 "connection without an answer\n", sock_path);
	} else if (sscanf(line, "ok: snapshot of member %u at applied index "
			  "%" SCNu64 ", %" SCNu64 " bytes follow",
			  &r.member, &r.index, &r.total) == 3 &&
		   r.total >= PX_SNAPFILE_HEADER_BYTES +
				      PX_SNAPFILE_TRAILER_BYTES) {
		out = snap_to_file(&r, sock) ? SNAP_WRITTEN : SNAP_FAILED;
	} else {
		snprintf(refusal, cap, "%s\n", line);
	}
	close(sock);
	return out;
}

struct opts {
	const char *config;
	const char *socket;
	int id;
	int json;
};

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "config", 1, 0, 'c' }, { "id", 1, 0, 'i' },
		{ "socket", 1, 0, 's' }, { "json", 0, 0, 'j' },
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' },
		{ 0, 0, 0, 0 },
	};
	*o = (struct opts){ .id = -1 };
	o->config = getenv("BYPAX_CONFIG") ? getenv("BYPAX_CONFIG") : "bypax.conf";
	int c;
	while ((c = getopt_long(argc, argv, "+c:i:s:jh", longopts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'c': o->config = optarg; break;
		case 's': o->socket = optarg; break;
		case 'j': o->json = 1; break;
		case 'i':
			o->id = (int)strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || o->id < 0 || o->id > 6) {
				fprintf(stderr, "bypaxctl: --id must be 0..6, got '%s'\n", optarg);
				return -1;
			}
			break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("bypaxctl %s\n", BPX_VERSION); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "bypaxctl: no command (see --help)\n");
		return -1;
	}
	return 0;
}

static void join_command(int argc, char **argv, int json, char *line,
			 size_t cap)
{
	line[0] = '\0';
	for (int i = 0; i < argc; i++) {
		strncat(line, argv[i], cap - strlen(line) - 2);
		strncat(line, " ", cap - strlen(line) - 1);
	}
	if (json && (strcmp(argv[0], "status") == 0 ||
		     (strcmp(argv[0], "members") == 0 && argc == 1)))
		strncat(line, "json", cap - strlen(line) - 1);
	strncat(line, "\n", cap - strlen(line) - 1);
}

/* The admin socket of member i of cfg, as bypaxd names it by default
 * (under $BYPAX_RUN_DIR, else /run/bypax). */
static void admin_path(const struct bpx_config *cfg, int i, char *buf,
		       size_t cap)
{
	(void)bpx_admin_socket_path(cfg->cluster_id, (unsigned)i, buf, cap);
}

/* snapshot PATH, from --socket, --id N, or the first member that can: a
 * recovering member refuses (it has no state yet), and the next is asked. */
static int cmd_snapshot(const struct opts *o, int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "bypaxctl: snapshot takes one argument, the "
			"file to write: snapshot PATH (see --help)\n");
		return EXIT_USAGE;
	}
	char refusal[512] = "", sock[108];
	struct bpx_config cfg;
	char err[512];
	int count = 1, reached = 0;
	if (o->socket == NULL) {
		if (bpx_config_load(o->config, &cfg, err, sizeof(err)) != 0) {
			fprintf(stderr, "bypaxctl: %s\n", err);
			return EXIT_USAGE;
		}
		count = cfg.member_count;
	}
	for (int i = 0; i < count; i++) {
		if (o->socket == NULL && o->id >= 0 && i != o->id)
			continue;
		if (o->socket != NULL)
			snprintf(sock, sizeof(sock), "%s", o->socket);
		else
			admin_path(&cfg, i, sock, sizeof(sock));
		enum snap_outcome out = snapshot_from(sock, argv[1], refusal,
						      sizeof(refusal));
		if (out == SNAP_WRITTEN)
			return 0;
		if (out == SNAP_FAILED)
			return EXIT_FAILED;
		reached += out == SNAP_REFUSED;
	}
	if (reached > 0) {
		fputs(refusal, stderr);
		return EXIT_FAILED;
	}
	if (o->socket != NULL)
		fprintf(stderr, "bypaxctl: cannot reach %s: %s\n", o->socket,
			strerror(errno));
	else
		fprintf(stderr, "bypaxctl: no bypaxd of cluster %u answers on "
			"this host (tried %s/bypaxd-%u-*.sock%s); is it "
			"running?\n", cfg.cluster_id, bpx_run_dir(),
			cfg.cluster_id,
			o->id >= 0 ? " for --id" : "");
	return EXIT_USAGE;
}

/* A usage error: what is wrong, named, and exit status 2. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bypaxctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(" (see --help)\n", stderr);
	va_end(ap);
	return EXIT_USAGE;
}

/* The command's shape, checked before any replica is asked: an unknown
 * command or a missing argument is a usage error here (exit 2), not the
 * replica's "unknown command" (the values, member ids and durations, are
 * the replica's to check: it knows the config it runs). */
static int check_command(int argc, char **argv)
{
	const char *c = argv[0], *sub = argc > 1 ? argv[1] : NULL;
	if (strcmp(c, "status") == 0 || strcmp(c, "help") == 0)
		return argc == 1 ? 0
				 : usage_error("%s: unexpected argument '%s'", c,
					       sub);
	if (strcmp(c, "members") == 0) {
		if (argc == 1)
			return 0;
		if (strcmp(sub, "add") != 0 && strcmp(sub, "remove") != 0)
			return usage_error("members: '%s' is not add or remove", sub);
		if (argc == 2)
			return usage_error("members %s: missing the member id "
					   "(members add ID... | members remove ID)",
					   sub);
		if (strcmp(sub, "remove") == 0 && argc > 3)
			return usage_error("members remove: one id at a time, "
					   "got '%s' too", argv[3]);
		return 0;
	}
	if (strcmp(c, "leader") == 0) {
		if (sub == NULL)
			return usage_error("leader: missing 'transfer ID|none'");
		if (strcmp(sub, "transfer") != 0)
			return usage_error("leader: '%s' is not transfer "
					   "(leader transfer ID|none)", sub);
		if (argc == 2)
			return usage_error("leader transfer: missing the member "
					   "id (leader transfer ID|none)");
		return argc == 3 ? 0 : usage_error("leader transfer: unexpected "
						   "argument '%s'", argv[3]);
	}
	if (strcmp(c, "fault") == 0) {
		if (sub != NULL && strcmp(sub, "isolate") == 0 &&
		    (argc == 3 || argc == 4))
			return 0;
		if (sub != NULL &&
		    (strcmp(sub, "link") == 0 || strcmp(sub, "silent") == 0) &&
		    argc == 4)
			return 0;
		return usage_error("fault: expected 'fault isolate MS "
				   "[both|control|data]', 'fault link M MS' or "
				   "'fault silent M MS'");
	}
	return usage_error("unknown command '%s'", c);
}

/* Each line of a reply, prefixed with the member that gave it. */
static void print_prefixed(FILE *f, int member, const char *reply)
{
	const char *p = reply;
	while (*p) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);
		fprintf(f, "member %d: %.*s\n", member, len, p);
		p += len + (nl != NULL);
	}
}

/* No member answered: a socket we may not use (EACCES) says who may, else
 * none runs here. Exit status 2. */
static int no_answer(const struct bpx_config *cfg, int denied, bool by_id)
{
	if (denied >= 0) {
		char path[108];
		admin_path(cfg, denied, path, sizeof(path));
		fprintf(stderr, "bypaxctl: %s: %s: root and members of group "
			"bypax may administer (docs/deploy.md)\n", path,
			strerror(EACCES));
		return EXIT_USAGE;
	}
	fprintf(stderr, "bypaxctl: no bypaxd of cluster %u answers on this "
		"host (tried %s/bypaxd-%u-*.sock%s); is it running?\n",
		cfg->cluster_id, bpx_run_dir(), cfg->cluster_id,
		by_id ? " for --id" : "");
	return EXIT_USAGE;
}

/* A transfer or a membership change is the leader's to make: without
 * --id it goes to each member in turn until one accepts, and every
 * answer is shown (a follower's refusal names the leader; the leader's
 * own refusal is the one that matters). 0 when one accepted, 1 when all
 * that answered refused, 2 when none answered. */
static int ask_until_accepted(const struct bpx_config *cfg, const char *line)
{
	char reply[16384], path[108];
	int reached = 0, denied = -1;
	for (int i = 0; i < cfg->member_count; i++) {
		admin_path(cfg, i, path, sizeof(path));
		int rc = ask(path, line, reply, sizeof(reply));
		if (rc < 0 && errno == EACCES)
			denied = i;
		if (rc < 0)
			continue;
		reached++;
		print_prefixed(rc ? stderr : stdout, i, reply);
		if (rc == 0)
			return 0;
	}
	return reached > 0 ? EXIT_FAILED : no_answer(cfg, denied, false);
}

int main(int argc, char **argv)
{
	struct opts o;
	if (parse(argc, argv, &o) != 0)
		return 2;
	/* A replica that closes the connection early is an error to report,
	 * not a reason to die silently. */
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(argv[optind], "snapshot") == 0)
		return cmd_snapshot(&o, argc - optind, argv + optind);
	if (check_command(argc - optind, argv + optind) != 0)
		return EXIT_USAGE;
	char line[512], reply[16384];
	join_command(argc - optind, argv + optind, o.json, line, sizeof(line));
	if (o.socket != NULL) {
		int rc = ask(o.socket, line, reply, sizeof(reply));
		if (rc < 0) {
			fprintf(stderr, "bypaxctl: cannot reach %s: %s\n", o.socket,
				strerror(errno));
			return 2;
		}
		fputs(reply, rc ? stderr : stdout);
		return rc;
	}
	struct bpx_config cfg;
	char err[512];
	if (bpx_config_load(o.config, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "bypaxctl: %s\n", err);
		return 2;
	}
	bool leaders = strncmp(line, "leader transfer", 15) == 0 ||
		       strncmp(line, "members add", 11) == 0 ||
		       strncmp(line, "members remove", 14) == 0;
	if (leaders && o.id < 0)
		return ask_until_accepted(&cfg, line);
	int denied = -1;
	for (int i = 0; i < cfg.member_count; i++) {
		if (o.id >= 0 && i != o.id)
			continue;
		char path[108];
		admin_path(&cfg, i, path, sizeof(path));
		int rc = ask(path, line, reply, sizeof(reply));
		if (rc < 0 && errno == EACCES)
			denied = i;
		if (rc < 0)
			continue;
		fputs(reply, rc ? stderr : stdout);
		return rc;
	}
	return no_answer(&cfg, denied, o.id >= 0);
}
