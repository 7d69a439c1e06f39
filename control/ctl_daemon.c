/* The control thread: the socket and ring glue around the pure control
 * policy (ctl_policy.h), which makes every decision. Here: heartbeats in
 * and out over UDP, the worker's status in and commands out over the rings,
 * the admin socket (parsing commands, rendering status), and what is not
 * policy: snapshots streamed to bypaxctl, fault isolation. */
#define _GNU_SOURCE /* struct ucred (SO_PEERCRED) */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <rte_debug.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_thread.h>

#include "ctl_daemon.h"

#define MS_NS 1000000ull
/* A snapshot goes out at most this much per loop (about a millisecond of
 * CRC and copying), so heartbeats and the policy's tick never wait long. */
#define SNAPSHOT_BYTES_PER_LOOP (256u << 10)
/* A reader that takes nothing for this long is dropped: the worker's
 * buffer is locked meanwhile, and a peer that catches up needs it. */
#define SNAPSHOT_STALL_NS (5000 * MS_NS)
/* The worker answers a save within a poll; this long means it is stuck. */
#define SNAPSHOT_WORKER_NS (5000 * MS_NS)

/* The group whose members may connect to the admin socket. */
#define CTL_ADMIN_GROUP "bypax"
/* Names of the commands that change state, for refusals (state_verb). */
static const char *const ctl_admin_verbs[] = { "members add/remove",
					       "leader", "snapshot", "fault" };
#define CTL_ADMIN_VERBS (sizeof(ctl_admin_verbs) / sizeof(ctl_admin_verbs[0]))

static pthread_t ctl_tid;
/* "fault isolate": until then no heartbeat goes out or is taken in, as
 * the worker drops its peers' frames (0: not isolated). */
static uint64_t isolate_until_ns;

static bool isolated(uint64_t now)
{
	return now < isolate_until_ns;
}

uint64_t ctl_clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- The claim: one bypaxd per member on a host ----
 *
 * A second bypaxd started with the same --id by mistake must not take
 * over: it would unlink the first one's admin socket (bypaxctl then talks
 * to the newcomer) and share its control port. So before the EAL starts
 * (and with it the memif, tap and NIC ports a second process would
 * disturb), bypaxd takes an exclusive lock next to the admin socket and
 * binds the control address without SO_REUSEADDR: either fails while the
 * first one runs. The kernel drops both when a process dies, however it
 * dies, so a crashed replica never leaves a stale claim behind. */

/* Who holds a lock, as its holder wrote it: "PID ID CLUSTER". */
struct lock_owner {
	long pid;
	unsigned id, cluster;
	bool known; /* false: unreadable, or not written yet */
};

static struct lock_owner lock_owner(int fd)
{
	char text[64];
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
	text[n > 0 ? n : 0] = '\0';
	struct lock_owner o = { 0 };
	o.known = sscanf(text, "%ld %u %u", &o.pid, &o.id, &o.cluster) == 3;
	return o;
}

static int lock_taken(const struct ctl_claim *c, const char *path,
		      const struct bpx_config *cfg, uint8_t self, char *err,
		      size_t len)
{
	struct lock_owner o = lock_owner(c->lock_fd);
	char pid[24] = "?";
	if (o.known)
		snprintf(pid, sizeof(pid), "%ld", o.pid);
	if (o.known && (o.id != self || o.cluster != cfg->cluster_id))
		snprintf(err, len, "admin socket %s belongs to bypaxd --id %u "
			 "of cluster %u (pid %s holds %s): give each member "
			 "its own --admin-socket", c->admin_path, o.id,
			 o.cluster, pid, path);
	else
		snprintf(err, len, "another bypaxd with --id %u of cluster %u "
			 "is running on this host (pid %s holds %s): not "
			 "starting a second one", self, cfg->cluster_id, pid,
			 path);
	return -BPX_EBUSY;
}

static int take_lock(struct ctl_claim *c, const struct bpx_config *cfg,
		     uint8_t self, char *err, size_t len)
{
	char path[sizeof(c->admin_path) + 8];
	snprintf(path, sizeof(path), "%s.lock", c->admin_path);
	/* O_NOFOLLOW: the lock may live in a shared directory (/tmp). */
	c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
			  0600);
	if (c->lock_fd < 0) {
		snprintf(err, len, "lock file %s: %s", path, strerror(errno));
		return -BPX_EIO;
	}
	if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			return lock_taken(c, path, cfg, self, err, len);
		snprintf(err, len, "lock file %s: %s", path, strerror(errno));
		return -BPX_EIO;
	}
	/* Who holds it, for the next one's message. Never unlinked: one
	 * that opened the old file just before would lock a file that no
	 * later process sees, and two would run. */
	char owner[64];
	int n = snprintf(owner, sizeof(owner), "%ld %u %u\n", (long)getpid(),
			 self, cfg->cluster_id);
	if (ftruncate(c->lock_fd, 0) != 0 ||
	    pwrite(c->lock_fd, owner, (size_t)n, 0) != n) {
		snprintf(err, len, "lock file %s: %s", path, strerror(errno));
		return -BPX_EIO;
	}
	return 0;
}

static struct sockaddr_in inet_addr_of(uint32_t ip, uint16_t port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(ip);
	a.sin_port = htons(port);
	return a;
}

/* No SO_REUSEADDR (nor SO_REUSEPORT): with it Linux lets a second UDP
 * socket bind the same address, and the heartbeats go to one of them. */
static int bind_control(struct ctl_claim *c, const struct bpx_config *cfg,
			uint8_t self, char *err, size_t len)
{
	const struct bpx_member *me = &cfg->members[self];
	struct sockaddr_in a = inet_addr_of(me->control_ip, me->control_port);
	c->hb_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			  0);
	if (c->hb_fd >= 0 &&
	    bind(c->hb_fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return 0;
	if (errno == EADDRINUSE) {
		snprintf(err, len, "control address %s:%u is in use: is "
			 "another bypaxd with --id %u running?",
			 inet_ntoa(a.sin_addr), me->control_port, self);
		return -BPX_EBUSY;
	}
	snprintf(err, len, "control address %s:%u (member%u control): %s",
		 inet_ntoa(a.sin_addr), me->control_port, self,
		 strerror(errno));
	return -BPX_EIO;
}

int ctl_claim_take(struct ctl_claim *c, const struct bpx_config *cfg,
		   uint8_t self, const char *admin_path, char *err,
		   size_t err_len)
{
	CTL_ASSERT(self < cfg->member_count);
	c->lock_fd = c->hb_fd = -1;
	size_t n = strlen(admin_path);
	if (n == 0 || n >= sizeof(c->admin_path)) {
		snprintf(err, err_len, "admin socket '%s': the path must be "
			 "1..%zu bytes (it has %zu)", admin_path,
			 sizeof(c->admin_path) - 1, n);
		return -BPX_ECONFIG;
	}
	memcpy(c->admin_path, admin_path, n + 1);
	int rc = take_lock(c, cfg, self, err, err_len);
	rc = rc ? rc : bind_control(c, cfg, self, err, err_len);
	if (rc)
		ctl_claim_release(c);
	return rc;
}

void ctl_claim_release(struct ctl_claim *c)
{
	if (c->hb_fd >= 0)
		close(c->hb_fd);
	if (c->lock_fd >= 0)
		close(c->lock_fd); /* drops the lock */
	c->hb_fd = c->lock_fd = -1;
}

/* The socket's group: "bypax" when it exists and we may give the file to
 * it (root, or a member), so that its members can connect (mode 0660);
 * else our own. docs/deploy.md, "The admin socket". */
static void give_admin_group(const char *path)
{
	const struct group *g = getgrnam(CTL_ADMIN_GROUP);
	if (g != NULL)
		(void)chown(path, (uid_t)-1, g->gr_gid); /* EPERM: keep ours */
}

/* Only with the claim held: a socket file left at our path belongs to a
 * predecessor that died without removing it, as no live bypaxd can hold
 * this path's lock while we do. */
static int open_admin_socket(struct ctl_daemon *d, char *err, size_t len)
{
	struct sockaddr_un a;
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	CTL_ASSERT(d->claim->lock_fd >= 0);
	CTL_ASSERT(strlen(d->claim->admin_path) < sizeof(a.sun_path));
	memcpy(a.sun_path, d->claim->admin_path,
	       strlen(d->claim->admin_path) + 1);
	if (unlink(a.sun_path) != 0 && errno != ENOENT) {
		snprintf(err, len, "admin socket %s: cannot remove the stale "
			 "one: %s", a.sun_path, strerror(errno));
		return -BPX_EIO;
	}
	d->admin_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
				      SOCK_CLOEXEC, 0);
	if (d->admin_fd < 0 ||
	    bind(d->admin_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    chmod(a.sun_path, 0660) != 0 || listen(d->admin_fd, 8) != 0) {
		snprintf(err, len, "admin socket %s: %s", a.sun_path,
			 strerror(errno));
		return -BPX_EIO;
	}
	give_admin_group(a.sun_path);
	return 0;
}

static struct rte_ring *make_ring(const char *what, uint8_t self, size_t esize,
				  unsigned count)
{
	char name[RTE_RING_NAMESIZE];
	snprintf(name, sizeof(name), "bypax_%s%u", what, self);
	return rte_ring_create_elem(name, (unsigned)esize, count,
				    (int)rte_socket_id(),
				    RING_F_SP_ENQ | RING_F_SC_DEQ);
}

/* The policy's settings from the configuration. Returns NULL or the name
 * of the bad [control] field. */
static const char *policy_config(const struct bpx_config *cfg, uint8_t self,
				 int static_leader,
				 struct ctl_policy_config *pc)
{
	ctl_policy_config_default(pc, cfg->member_count, self);
	pc->omega.fd.heartbeat_interval_ns = cfg->fd_heartbeat_ns;
	pc->omega.fd.timeout_min_ns = cfg->fd_timeout_min_ns;
	pc->omega.fd.timeout_max_ns = cfg->fd_timeout_max_ns;
	pc->log_slots = cfg->px.log_slots;
	pc->window_slots = cfg->px.window_slots;
	pc->static_leader = static_leader >= 0 ? (uint8_t)static_leader
					       : CTL_NONE;
	/* A transfer takes a few heartbeats: the target must hear the
	 * preference, then claim in its own. Slow heartbeats get more time. */
	uint64_t transfer_ns =
		10 * cfg->fd_heartbeat_ns + cfg->fd_timeout_min_ns;
	if (transfer_ns > pc->transfer_timeout_ns)
		pc->transfer_timeout_ns = transfer_ns;
	return ctl_policy_config_check(pc);
}

int ctl_daemon_init(struct ctl_daemon *d, const struct bpx_config *cfg,
		    uint8_t self, int static_leader,
		    const struct ctl_claim *claim, volatile bool *quit,
		    char *err, size_t err_len)
{
	CTL_ASSERT(claim->lock_fd >= 0 && claim->hb_fd >= 0);
	memset(d, 0, sizeof(*d));
	d->cfg = cfg;
	d->self = self;
	d->quit = quit;
	d->claim = claim;
	d->hb_fd = claim->hb_fd;
	d->admin_fd = d->snap.client = -1;
	for (unsigned i = 0; i < CTL_ADMIN_CONNS; i++)
		d->admin[i].fd = -1;
	ctl_http_init(&d->http, NULL, NULL); /* no server yet */
	d->start_ns = ctl_clock_ns();
	struct ctl_policy_config pc;
	const char *why = policy_config(cfg, self, static_leader, &pc);
	if (why != NULL) {
		snprintf(err, err_len, "%s: [control]: %s", cfg->path, why);
		return -BPX_ECONFIG;
	}
	ctl_policy_init(&d->policy, &pc, d->start_ns);
	ctl_ratelimit_init(&d->foreign_log, CTL_LOG_INTERVAL_NS);
	ctl_ratelimit_init(&d->admin_log, CTL_LOG_INTERVAL_NS);
	ctl_ratelimit_init(&d->bad_mac_log, CTL_LOG_INTERVAL_NS);
	ctl_ratelimit_init(&d->refused_log, CTL_LOG_INTERVAL_NS);
	d->to_worker = make_ring("ctl_in", self, sizeof(struct ctl_cmd),
				  CTL_RING_SIZE);
	d->from_worker = make_ring("ctl_out", self,
				   sizeof(struct ctl_worker_status),
				   CTL_RING_SIZE);
	d->log = make_ring("ctl_log", self, sizeof(struct ctl_log_line),
			   CTL_LOG_RING_SIZE);
	if (d->to_worker == NULL || d->from_worker == NULL || d->log == NULL) {
		snprintf(err, err_len, "control rings: %s",
			 rte_strerror(rte_errno));
		return -BPX_ENOMEM;
	}
	/* Metrics first: a taken address then leaves no admin socket. */
	int rc = ctl_daemon_metrics_open(d, err, err_len);
	return rc ? rc : open_admin_socket(d, err, err_len);
}

/* ---- Events: one logfmt line each (ctl_log.h), for operators, log
 * shippers and the chaos harness ----
 * Both clocks are read when the event happens; the line goes through a
 * ring to bypaxd's main thread, which writes it (ctl_daemon_print_log),
 * so that a stderr that does not drain cannot stall the heartbeats. */

static void ctl_event(struct ctl_daemon *d, enum ctl_log_type type,
		      uint32_t level, const char *event,
		      const struct bpx_log_field *f, size_t n)
{
	if (!ctl_log_enabled(type, level))
		return;
	struct ctl_log_line line = { .type = (uint16_t)type,
				     .level = (uint16_t)level };
	ctl_log_format(line.text, sizeof(line.text), type, level, d->self,
		       event, f, n);
	/* Full (the main thread is stuck): the line is lost, the counters
	 * of bypaxctl status still count every event. */
	if (rte_ring_sp_enqueue_elem(d->log, &line, sizeof(line)) != 0)
		d->log_lost++;
}

void ctl_daemon_print_log(struct ctl_daemon *d)
{
	struct ctl_log_line line;
	while (d->log != NULL &&
	       rte_ring_sc_dequeue_elem(d->log, &line, sizeof(line)) == 0)
		ctl_log_write((enum ctl_log_type)line.type, line.level,
			      line.text);
}

static void log_foreign(struct ctl_daemon *d,
			const struct ctl_ratelimit_line *l)
{
	uint32_t ip = (uint32_t)(l->key >> 16);
	char from[32] = "others";
	if (l->key != CTL_RATELIMIT_OTHERS)
		ctl_log_addr(ip, (uint16_t)(l->key & 0xffff), from,
			     sizeof(from));
	ctl_event(d, CTL_LOG_CTL, RTE_LOG_WARNING, "wrong_cluster",
		  BPX_LOG_FIELDS(BPX_LF_STR("plane", "control"),
				 BPX_LF_U64("count", l->count),
				 BPX_LF_STR("from", from),
				 BPX_LF_U64("cluster", l->note),
				 BPX_LF_U64("this_cluster", d->cfg->cluster_id),
				 BPX_LF_U64("interval_s", CTL_LOG_INTERVAL_NS /
							 1000000000ull),
				 BPX_LF_STR("hint", "does another cluster's "
					    "config name this control address?")));
}

static void log_admin_dropped(struct ctl_daemon *d,
			      const struct ctl_ratelimit_line *l)
{
	ctl_event(d, CTL_LOG_CTL, RTE_LOG_WARNING, "admin_dropped",
		  BPX_LOG_FIELDS(BPX_LF_U64("count", l->count),
				 BPX_LF_U64("budget_ms", CTL_ADMIN_BUDGET_NS / MS_NS),
				 BPX_LF_U64("conns_max", CTL_ADMIN_CONNS),
				 BPX_LF_STR("reason", "no command sent or reply "
					    "taken in time, or no room")));
}

static void log_bad_mac(struct ctl_daemon *d,
			const struct ctl_ratelimit_line *l)
{
	uint32_t ip = (uint32_t)(l->key >> 16);
	char from[32] = "others";
	if (l->key != CTL_RATELIMIT_OTHERS)
		ctl_log_addr(ip, (uint16_t)(l->key & 0xffff), from,
			     sizeof(from));
	ctl_event(d, CTL_LOG_CTL, RTE_LOG_WARNING, "bad_mac",
		  BPX_LOG_FIELDS(BPX_LF_STR("plane", "control"),
				 BPX_LF_U64("count", l->count),
				 BPX_LF_STR("from", from),
				 BPX_LF_U64("interval_s", CTL_LOG_INTERVAL_NS /
							 1000000000ull),
				 BPX_LF_STR("hint", "a member with another "
					    "key_file, or none?")));
}

static void log_admin_refused(struct ctl_daemon *d,
			      const struct ctl_ratelimit_line *l)
{
	ctl_event(d, CTL_LOG_CTL, RTE_LOG_WARNING, "admin_refused",
		  BPX_LOG_FIELDS(BPX_LF_U64("count", l->count),
				 BPX_LF_STR("latest", ctl_admin_verbs[l->note]),
				 BPX_LF_U64("peer_uid", l->key),
				 BPX_LF_U64("allowed_uid", (unsigned)geteuid()),
				 BPX_LF_U64("refused", d->admin_refused),
				 BPX_LF_STR("reason", "only root and bypaxd's "
					    "uid change state (docs/deploy.md)")));
}

/* On a tick: lines for events held back by sources that went quiet. */
static void log_due(struct ctl_daemon *d, uint64_t now)
{
	struct ctl_ratelimit_line l;
	while (ctl_ratelimit_due(&d->foreign_log, now, &l))
		log_foreign(d, &l);
	while (ctl_ratelimit_due(&d->admin_log, now, &l))
		log_admin_dropped(d, &l);
	while (ctl_ratelimit_due(&d->bad_mac_log, now, &l))
		log_bad_mac(d, &l);
	while (ctl_ratelimit_due(&d->refused_log, now, &l))
		log_admin_refused(d, &l);
}

/* ---- The policy's effects ---- */

/* Returns false when the ring is full (the worker is behind). */
static bool send_command(struct ctl_daemon *d, uint32_t type, uint32_t arg,
			 uint64_t value)
{
	struct ctl_cmd c = { .type = type, .arg = arg, .value = value };
	return rte_ring_sp_enqueue_elem(d->to_worker, &c, sizeof(c)) == 0;
}

/* With a cluster key a heartbeat ends with its tag (docs/wire.md,
 * "Authentication"): CTL_HB_BYTES + BPX_AUTH_TAG_BYTES on the wire. */
static size_t hb_wire_bytes(const struct ctl_daemon *d)
{
	return CTL_HB_BYTES + (d->cfg->key.enabled ? BPX_AUTH_TAG_BYTES : 0);
}

static void send_heartbeat(struct ctl_daemon *d, const struct ctl_hb_msg *m)
{
	uint8_t buf[CTL_HB_BYTES + BPX_AUTH_TAG_BYTES];
	ctl_hb_encode(buf, d->cfg->cluster_id, m);
	if (d->cfg->key.enabled)
		bpx_auth_sign(&d->cfg->key, buf, CTL_HB_BYTES,
			      buf + CTL_HB_BYTES);
	for (uint8_t i = 0; i < d->cfg->member_count; i++) {
		if (i == d->self)
			continue;
		const struct bpx_member *p = &d->cfg->members[i];
		struct sockaddr_in a = inet_addr_of(p->control_ip,
						    p->control_port);
		sendto(d->hb_fd, buf, hb_wire_bytes(d), 0,
		       (struct sockaddr *)&a, sizeof(a));
	}
}

static void reply_later(struct ctl_daemon *d, int fd, const char *text,
			size_t len, uint64_t now);
static const char *member_text(uint8_t m, char *buf, size_t cap);
static void first_line(const char *text, size_t len, char *out, size_t cap);
static void admin_hand_over(struct ctl_daemon *d, int fd);

/* The policy's answers to leader transfer (CTL_REPLY_TRANSFER_*), by
 * their names in CTL_REPLY_LIST. */
static bool is_transfer_reply(uint8_t code)
{
#define REPLY_NAME(name, ok, text) #name,
	static const char *const names[] = { CTL_REPLY_LIST(REPLY_NAME) };
#undef REPLY_NAME
	return code < CTL_REPLY_COUNT && strncmp(names[code], "TRANSFER_", 9) == 0;
}

static struct ctl_admin_conn *conn_of(struct ctl_daemon *d, int fd);

/* An answer within the command's own step: its admin_command line says
 * it (the connection still reads), no admin_reply line needed. */
static bool answered_in_step(struct ctl_daemon *d, int fd)
{
	const struct ctl_admin_conn *c = conn_of(d, fd);
	return c != NULL && c->state == CTL_ADMIN_READING;
}

/* A reply's client tag is the admin connection: answer it and hang up. */
static void send_reply(struct ctl_daemon *d, const struct ctl_reply *r,
		       uint64_t now)
{
	char text[512], result[160];
	size_t len = ctl_reply_text(r, text, sizeof(text));
	first_line(text, len, result, sizeof(result));
	if (is_transfer_reply(r->code)) {
		char to[8];
		ctl_event(d, CTL_LOG_CTL, RTE_LOG_INFO, "leader_transfer",
			  BPX_LOG_FIELDS(BPX_LF_U64("from", r->self),
					 BPX_LF_STR("to", member_text(r->member, to,
								       sizeof(to))),
					 BPX_LF_STR("result", ctl_reply_ok(r) ? "ok"
									      : "error"),
					 BPX_LF_STR("reply", result)));
	} else if (!answered_in_step(d, (int)r->client)) {
		ctl_event(d, CTL_LOG_CTL, RTE_LOG_INFO, "admin_reply",
			  BPX_LOG_FIELDS(BPX_LF_STR("result", result)));
	}
	reply_later(d, (int)r->client, text, len, now);
}

/* Runs one input through the policy and carries out what it decided. */
static bool step(struct ctl_daemon *d, uint64_t now, const struct ctl_input *in)
{
	static struct ctl_policy_out out;
	ctl_policy_out_clear(&out);
	bool applied = ctl_policy_step(&d->policy, now, in, &out);
	for (uint32_t i = 0; i < out.cmd_count; i++)
		send_command(d, out.cmds[i].type, out.cmds[i].arg,
			     out.cmds[i].value);
	/* Isolated: the policy goes on (its counters too), nothing goes out. */
	if (out.heartbeat && !isolated(now))
		send_heartbeat(d, &out.hb);
	for (uint32_t i = 0; i < out.reply_count; i++)
		send_reply(d, &out.replies[i], now);
	return applied;
}

/* ---- Heartbeats ---- */

static bool from_member_control(const struct ctl_daemon *d, uint8_t from,
				const struct sockaddr_in *src)
{
	if (from >= d->cfg->member_count)
		return false;
	const struct bpx_member *m = &d->cfg->members[from];
	return ntohl(src->sin_addr.s_addr) == m->control_ip &&
	       ntohs(src->sin_port) == m->control_port;
}

/* A heartbeat of another cluster: its members' configs name one of our
 * control addresses (a copied config, a reused port). Counted and logged;
 * noise, or a malformed heartbeat of ours, is only counted. */
static void note_foreign(struct ctl_daemon *d, const uint8_t *buf, size_t len,
			 const struct sockaddr_in *src, uint64_t now)
{
	uint32_t theirs;
	if (ctl_hb_cluster(buf, len, &theirs) != 0 ||
	    theirs == d->cfg->cluster_id)
		return;
	d->hb_wrong_cluster++;
	uint64_t key = (uint64_t)ntohl(src->sin_addr.s_addr) << 16 |
		       ntohs(src->sin_port);
	struct ctl_ratelimit_line l;
	if (ctl_ratelimit_event(&d->foreign_log, key, theirs, 1, now, &l))
		log_foreign(d, &l);
}

static bool foreign_hb(const struct ctl_daemon *d, const uint8_t *buf,
		       size_t len)
{
	uint32_t theirs;
	return ctl_hb_cluster(buf, len, &theirs) == 0 &&
	       theirs != d->cfg->cluster_id;
}

/* With a key, a heartbeat counts only with its tag; returns the length
 * of the heartbeat before it, or 0 for a counted, logged drop. */
static size_t hb_verified(struct ctl_daemon *d, const uint8_t *buf, size_t n,
			  const struct sockaddr_in *src, uint64_t now)
{
	if (!d->cfg->key.enabled)
		return n;
	if (bpx_auth_verify(&d->cfg->key, buf, n))
		return n - BPX_AUTH_TAG_BYTES;
	/* Another cluster's heartbeat, with a tag or without, is dropped
	 * as that (note_foreign), which says more than "bad MAC". */
	if (n > BPX_AUTH_TAG_BYTES && foreign_hb(d, buf, n - BPX_AUTH_TAG_BYTES))
		return n - BPX_AUTH_TAG_BYTES;
	if (foreign_hb(d, buf, n))
		return n;
	d->hb_bad_mac++;
	uint64_t key = (uint64_t)ntohl(src->sin_addr.s_addr) << 16 |
		       ntohs(src->sin_port);
	struct ctl_ratelimit_line l;
	if (ctl_ratelimit_event(&d->bad_mac_log, key, 0, 1, now, &l))
		log_bad_mac(d, &l);
	return 0;
}

static void receive_heartbeats(struct ctl_daemon *d, uint64_t now)
{
	uint8_t buf[256];
	struct sockaddr_in src;
	struct ctl_input in = { .kind = CTL_IN_HEARTBEAT };
	for (;;) {
		socklen_t slen = sizeof(src);
		ssize_t n = recvfrom(d->hb_fd, buf, sizeof(buf), 0,
				     (struct sockaddr *)&src, &slen);
		if (n < 0)
			return;
		if (isolated(now)) {
			d->hb_dropped++;
			continue;
		}
		size_t len = hb_verified(d, buf, (size_t)n, &src, now);
		if (len == 0) {
			d->hb_dropped++;
		} else if (ctl_hb_decode(buf, len, d->cfg->cluster_id,
					 &in.heartbeat) != 0) {
			d->hb_dropped++;
			note_foreign(d, buf, (size_t)n, &src, now);
		} else if (!from_member_control(d, in.heartbeat.hb.from, &src) ||
			   !step(d, now, &in)) {
			d->hb_dropped++;
		} else {
			d->peer_heard_ns[in.heartbeat.hb.from] = now;
		}
	}
}

static void mask_text(uint8_t mask, char *buf, size_t cap)
{
	size_t len = 0;
	buf[0] = '\0';
	for (uint8_t i = 0; i < 8 && len + 4 < cap; i++)
		if (mask & (1u << i))
			len += (size_t)snprintf(buf + len, cap - len, "%s%u",
						len ? "," : "", i);
}

/* ---- Snapshots, streamed to bypaxctl (struct ctl_snapshot_stream) ----
 * The daemon never writes a file: a path from a client, written by a
 * daemon that runs as root, would be a way to overwrite any file; and a
 * write to a slow disk would stall heartbeats. */

/* The buffer goes back to the worker. A full ring must not keep it
 * locked for good: snapshot_loop tries again on the next iteration. */
static void release_snapshot_buffer(struct ctl_daemon *d)
{
	d->snap.release_pending = !send_command(d, CTL_CMD_SNAPSHOT, 1, 0);
}

static size_t stream_total(const struct ctl_snapshot_stream *s)
{
	return s->head_bytes + s->body_bytes + sizeof(s->tail);
}

/* why: NULL when the whole file went out, else why the reader was let go
 * (an event line either way: a snapshot is an operator's action). */
static void end_stream(struct ctl_daemon *d, const char *why)
{
	struct ctl_snapshot_stream *s = &d->snap;
	RTE_VERIFY(s->client >= 0 && s->sending);
	close(s->client);
	s->client = -1;
	s->sending = false;
	if (why == NULL) {
		s->streamed++;
		ctl_event(d, CTL_LOG_CTL, RTE_LOG_INFO, "snapshot_streamed",
			  BPX_LOG_FIELDS(BPX_LF_U64("index", s->index),
					 BPX_LF_U64("bytes", s->body_bytes),
					 BPX_LF_STR("to", "bypaxctl")));
	} else {
		s->abandoned++;
		ctl_event(d, CTL_LOG_CTL, RTE_LOG_WARNING, "snapshot_abandoned",
			  BPX_LOG_FIELDS(BPX_LF_U64("index", s->index),
					 BPX_LF_U64("sent", s->sent),
					 BPX_LF_U64("bytes", stream_total(s)),
					 BPX_LF_STR("reason", why)));
	}
	release_snapshot_buffer(d);
}

/* An answer that is not a buffer, in words naming the replica. */
static void snapshot_error_text(const struct ctl_daemon *d, int32_t rc,
				char *buf, size_t cap)
{
	if (rc == -BPX_ERECOVERING)
		snprintf(buf, cap, "error: snapshot: member %u is recovering: "
			 "it holds no state to save yet; snapshot a member "
			 "that is not (bypaxctl status)\n", d->self);
	else if (rc == -BPX_EBUSY)
		snprintf(buf, cap, "error: snapshot: member %u is sending its "
			 "state to a replica that catches up; try again in a "
			 "moment\n", d->self);
	else if (rc == -BPX_ETOOBIG)
		snprintf(buf, cap, "error: snapshot: member %u's state does "
			 "not fit its snapshot buffer (bypaxd --snapshot-mb)\n",
			 d->self);
	else
		snprintf(buf, cap, "error: snapshot: member %u: %s\n", d->self,
			 bpx_strerror(rc));
}

/* The first bytes: a line bypaxctl reads before the file, then the
 * file's header, which starts the checksum. */
static void start_stream(struct ctl_daemon *d,
			 const struct ctl_worker_status *st, uint64_t now)
{
	struct ctl_snapshot_stream *s = &d->snap;
	RTE_VERIFY(st->snapshot_bytes > 0 && d->snapshot_buf != NULL);
	struct px_snapfile_header h = {
		.cluster_id = d->cfg->cluster_id,
		.member_count = d->cfg->member_count,
		.applied_index = st->snapshot_index,
		.body_bytes = st->snapshot_bytes,
	};
	int n = snprintf((char *)s->head, sizeof(s->head) -
				  PX_SNAPFILE_HEADER_BYTES,
			 "ok: snapshot of member %u at applied index %" PRIu64
			 ", %" PRIu64 " bytes follow\n", d->self,
			 st->snapshot_index, px_snapfile_size(h.body_bytes));
	RTE_VERIFY(n > 0 && (size_t)n < sizeof(s->head) -
					     PX_SNAPFILE_HEADER_BYTES);
	px_snapfile_header_encode(s->head + n, &h);
	s->crc = px_crc32c(0, s->head + n, PX_SNAPFILE_HEADER_BYTES);
	s->head_bytes = (size_t)n + PX_SNAPFILE_HEADER_BYTES;
	s->body = d->snapshot_buf;
	s->body_bytes = (size_t)st->snapshot_bytes;
	s->index = st->snapshot_index;
	s->sent = 0;
	s->sending = true;
	s->deadline_ns = now + SNAPSHOT_STALL_NS;
	/* The socket is the pump's from now on (paced, its own 5 s stall
	 * budget): the admin table lets go of it without closing it. */
	admin_hand_over(d, s->client);
}

/* Where the stream goes on, and how much of that part is left. */
static const uint8_t *stream_at(const struct ctl_snapshot_stream *s,
				size_t *len)
{
	if (s->sent < s->head_bytes) {
		*len = s->head_bytes - s->sent;
		return s->head + s->sent;
	}
	size_t at = s->sent - s->head_bytes;
	if (at < s->body_bytes) {
		*len = s->body_bytes - at;
		return s->body + at;
	}
	at -= s->body_bytes;
	RTE_VERIFY(at < sizeof(s->tail));
	*len = sizeof(s->tail) - at;
	return s->tail + at;
}

/* n bytes at p went out: the body's go into the checksum, and the
 * trailer is known once the body is all out. */
static void stream_advance(struct ctl_snapshot_stream *s, const uint8_t *p,
			   size_t n)
{
	bool in_body = s->sent >= s->head_bytes &&
		       s->sent < s->head_bytes + s->body_bytes;
	if (in_body)
		s->crc = px_crc32c(s->crc, p, n);
	s->sent += n;
	if (in_body && s->sent == s->head_bytes + s->body_bytes)
		px_snapfile_trailer_encode(s->tail, s->crc);
}

/* Non-blocking sends, SNAPSHOT_BYTES_PER_LOOP at most; what the socket
 * does not take now goes on the next time round. */
static void pump_snapshot(struct ctl_daemon *d, uint64_t now)
{
	struct ctl_snapshot_stream *s = &d->snap;
	size_t budget = SNAPSHOT_BYTES_PER_LOOP;
	while (budget > 0 && s->sent < stream_total(s)) {
		size_t len;
		const uint8_t *p = stream_at(s, &len);
		if (len > budget)
			len = budget;
		ssize_t n = send(s->client, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
			      errno == EINTR))
			break;
		if (n <= 0) {
			end_stream(d, "it went away");
			return;
		}
		stream_advance(s, p, (size_t)n);
		budget -= (size_t)n;
		s->deadline_ns = now + SNAPSHOT_STALL_NS;
	}
	if (s->sent == stream_total(s)) {
		end_stream(d, NULL);
	} else if (now > s->deadline_ns) {
		char why[64];
		snprintf(why, sizeof(why), "it took nothing for %llu ms",
			 SNAPSHOT_STALL_NS / MS_NS);
		end_stream(d, why);
	}
}

/* The connection still waits in the admin table: it takes the refusal
 * as any other reply, without blocking. */
static void refuse_snapshot(struct ctl_daemon *d, const char *text,
			    uint64_t now)
{
	reply_later(d, d->snap.client, text, strlen(text), now);
	d->snap.client = -1;
}

/* The worker answered a save (a new snapshot_seq): stream the buffer to
 * whoever asked, or give it back at once when nobody waits any more. */
static void on_snapshot_answer(struct ctl_daemon *d,
			       const struct ctl_worker_status *st,
			       uint64_t now)
{
	struct ctl_snapshot_stream *s = &d->snap;
	if (st->snapshot_seq == s->answers_seen)
		return;
	s->answers_seen = st->snapshot_seq;
	s->worker_busy = false;
	bool have_buffer = st->snapshot_rc == 0;
	if (s->client < 0 || s->sending) {
		if (have_buffer)
			release_snapshot_buffer(d);
		return;
	}
	if (have_buffer) {
		start_stream(d, st, now);
		return;
	}
	char text[256];
	snapshot_error_text(d, st->snapshot_rc, text, sizeof(text));
	refuse_snapshot(d, text, now);
}

/* Once per loop: the stream goes on, or a stuck worker is given up. */
static void snapshot_loop(struct ctl_daemon *d, uint64_t now)
{
	struct ctl_snapshot_stream *s = &d->snap;
	if (s->release_pending)
		release_snapshot_buffer(d);
	if (s->sending) {
		pump_snapshot(d, now);
	} else if (s->client >= 0 && s->worker_busy && now > s->deadline_ns) {
		char text[160];
		snprintf(text, sizeof(text), "error: snapshot: member %u's "
			 "worker did not answer within %llu ms\n", d->self,
			 SNAPSHOT_WORKER_NS / MS_NS);
		refuse_snapshot(d, text, now); /* its late answer is given back */
	}
}

static void drain_status(struct ctl_daemon *d, uint64_t now)
{
	struct ctl_input in = { .kind = CTL_IN_STATUS };
	while (rte_ring_sc_dequeue_elem(d->from_worker, &in.status,
					sizeof(in.status)) == 0) {
		on_snapshot_answer(d, &in.status, now);
		step(d, now, &in);
	}
}

/* ---- The admin socket (bypaxctl) ---- */

static void say(struct ctl_admin_reply *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void say(struct ctl_admin_reply *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(r->buf + r->len, sizeof(r->buf) - r->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->len += (size_t)n < sizeof(r->buf) - r->len
				  ? (size_t)n
				  : sizeof(r->buf) - r->len - 1;
}

static const char *role_name(uint8_t role)
{
	static const char *const names[] = { "follower", "candidate", "leader",
					     "recovering" };
	return role < 4 ? names[role] : "?";
}

/* One member's row, from our own worker or from its last heartbeat. */
struct member_row {
	bool known;
	bool alive;
	uint8_t role;
	uint64_t promised, commit, applied;
	uint64_t heard_ago_ms;
};

static struct member_row member_row(const struct ctl_daemon *d, uint8_t i,
				    uint64_t now)
{
	struct member_row row = { 0 };
	const struct ctl_policy *pol = &d->policy;
	if (i == d->self) {
		row.known = pol->have_status;
		row.alive = true;
		row.role = pol->status.role;
		row.promised = pol->status.promised;
		row.commit = pol->status.commit_index;
		row.applied = pol->status.applied_index;
		return row;
	}
	const struct ctl_policy_peer *p = &pol->peers[i];
	row.known = p->heard_any;
	row.alive = ctl_fd_alive(&pol->omega.fd, i, now) && row.known;
	row.role = p->last.role;
	row.promised = p->last.promised;
	row.commit = p->last.commit_index;
	row.applied = p->last.applied_index;
	row.heard_ago_ms = row.known ? (now - p->heard_ns) / MS_NS : 0;
	return row;
}

static void status_text(struct ctl_daemon *d, uint64_t now, struct ctl_admin_reply *r)
{
	uint64_t top = 0;
	for (uint8_t i = 0; i < d->cfg->member_count; i++) {
		struct member_row row = member_row(d, i, now);
		if (row.known && row.commit > top)
			top = row.commit;
	}
	say(r, "cluster %u: %u members, seen from member %u\n",
	    d->cfg->cluster_id, d->cfg->member_count, d->self);
	char voting[32];
	const struct ctl_policy *pol = &d->policy;
	mask_text(pol->status.members, voting, sizeof(voting));
	say(r, "voting members: %s\n", voting);
	if (pol->leader == CTL_NONE)
		say(r, "leader: none (no majority heard)\n");
	else
		say(r, "leader: member %u\n", pol->leader);
	if (pol->failed_over)
		say(r, "last failover: %.1f s ago, %u -> %u (%" PRIu64
		       " since start)\n",
		    (double)(now - pol->last_failover_ns) / 1e9,
		    pol->failover_from, pol->failover_to, pol->failovers);
	else
		say(r, "last failover: none since this replica started\n");
	say(r, "dropped as another cluster's: %" PRIu64 " data frames, %"
	       PRIu64 " control heartbeats\n", pol->status.wrong_cluster,
	    d->hb_wrong_cluster);
	if (d->cfg->key.enabled)
		say(r, "dropped as bad MAC (cluster key): %" PRIu64 " data "
		       "frames, %" PRIu64 " control heartbeats\n",
		    pol->status.bad_mac, d->hb_bad_mac);
	say(r, "\n%-3s %-21s %-10s %-9s %-10s %-10s %-7s %s\n", "ID",
	    "ADDRESS", "ROLE", "BALLOT", "COMMIT", "APPLIED", "LAG",
	    "LIVENESS");
	for (uint8_t i = 0; i < d->cfg->member_count; i++) {
		struct member_row row = member_row(d, i, now);
		const struct bpx_endpoint *ep = &d->cfg->members[i].data;
		char addr[32], ballot[24], live[48];
		snprintf(addr, sizeof(addr), "%u.%u.%u.%u:%u", ep->ip >> 24,
			 (ep->ip >> 16) & 255, (ep->ip >> 8) & 255, ep->ip & 255,
			 ep->port);
		snprintf(ballot, sizeof(ballot), "%" PRIu64 ".%u",
			 px_ballot_round(row.promised),
			 px_ballot_owner(row.promised));
		if (i == d->self)
			snprintf(live, sizeof(live), "alive (this replica)");
		else if (!row.known)
			snprintf(live, sizeof(live), "never heard");
		else
			snprintf(live, sizeof(live), "%s, heard %" PRIu64
				 " ms ago", row.alive ? "alive" : "SUSPECTED",
				 row.heard_ago_ms);
		if (!row.known) {
			say(r, "%-3u %-21s %-10s %-9s %-10s %-10s %-7s %s\n", i,
			    addr, "?", "-", "-", "-", "-", live);
			continue;
		}
		say(r, "%-3u %-21s %-10s %-9s %-10" PRIu64 " %-10" PRIu64
		       " %-7" PRIu64 " %s\n",
		    i, addr, role_name(row.role), ballot, row.commit,
		    row.applied, top - row.applied, live);
	}
}

/* The highest commit index any member reports (lag is measured from it). */
static uint64_t top_commit(const struct ctl_daemon *d, uint64_t now)
{
	uint64_t top = 0;
	for (uint8_t i = 0; i < d->cfg->member_count; i++) {
		struct member_row row = member_row(d, i, now);
		if (row.known && row.commit > top)
			top = row.commit;
	}
	return top;
}

/* "voting":[0,1,2] */
static void say_voting(struct ctl_admin_reply *r, uint8_t mask)
{
	say(r, "\"voting\":[");
	bool first = true;
	for (uint8_t i = 0; i < 8; i++)
		if (mask & (1u << i)) {
			say(r, "%s%u", first ? "" : ",", i);
			first = false;
		}
	say(r, "]");
}

/* One member of status json (docs/deploy.md, bypaxctl status --json). */
static void say_member_json(struct ctl_daemon *d, uint8_t i, uint64_t top,
			    uint64_t now, struct ctl_admin_reply *r)
{
	const struct ctl_fd *fd = &d->policy.omega.fd;
	struct member_row row = member_row(d, i, now);
	const struct bpx_member *m = &d->cfg->members[i];
	uint64_t timeout_ms = i == d->self ? 0 : ctl_fd_timeout_ns(fd, i) / MS_NS;
	char addr[32], control[32], ballot[32], lag[24] = "null";
	ctl_log_addr(m->data.ip, m->data.port, addr, sizeof(addr));
	ctl_log_addr(m->control_ip, m->control_port, control, sizeof(control));
	ctl_log_ballot(row.promised, ballot, sizeof(ballot));
	if (row.known)
		snprintf(lag, sizeof(lag), "%" PRIu64, top - row.applied);
	/* Numbers and flat strings first, so that a line-oriented reader
	 * (sed in tests/dpdk) finds them before any nested object. */
	say(r, "%s{\"id\":%u,\"known\":%s,\"alive\":%s,\"role\":\"%s\","
	       "\"ballot\":\"%s\",\"ballot_raw\":%" PRIu64 ",\"commit\":%" PRIu64
	       ",\"applied\":%" PRIu64 ",\"lag\":%s,\"heard_ago_ms\":%" PRIu64
	       ",\"timeout_ms\":%" PRIu64 ",\"false_suspicions\":%" PRIu64
	       ",\"voting\":%s,\"address\":\"%s\",\"control\":\"%s\"}",
	    i ? "," : "", i, row.known ? "true" : "false",
	    row.alive ? "true" : "false",
	    row.known ? role_name(row.role) : "unknown", ballot, row.promised,
	    row.commit, row.applied, lag, row.heard_ago_ms, timeout_ms,
	    fd->members[i].false_suspicions,
	    (d->policy.status.members & (1u << i)) ? "true" : "false", addr,
	    control);
}

static void status_json(struct ctl_daemon *d, uint64_t now, struct ctl_admin_reply *r)
{
	const struct ctl_policy *pol = &d->policy;
	const struct ctl_fd *fd = &pol->omega.fd;
	say(r, "{\"cluster\":%u,\"self\":%u,\"leader\":%d,\"failovers\":%" PRIu64
	       ",\"last_failover_age_ms\":%" PRId64 ",\"stalls\":%" PRIu64
	       ",\"stalled_ms\":%" PRIu64 ",\"top_commit\":%" PRIu64 ",",
	    d->cfg->cluster_id, d->self,
	    pol->leader == CTL_NONE ? -1 : pol->leader, pol->failovers,
	    pol->failed_over
		    ? (int64_t)((now - pol->last_failover_ns) / MS_NS)
		    : -1,
	    fd->stalls, (uint64_t)(fd->stalled_ns / MS_NS),
	    top_commit(d, now));
	say_voting(r, pol->status.members);
	say(r, ",\"wrong_cluster\":{\"data\":%" PRIu64 ",\"control\":%" PRIu64
	       "},\"bad_mac\":{\"data\":%" PRIu64 ",\"control\":%" PRIu64
	       "},\"members\":[", pol->status.wrong_cluster, d->hb_wrong_cluster,
	    pol->status.bad_mac, d->hb_bad_mac);
	uint64_t top = top_commit(d, now);
	for (uint8_t i = 0; i < d->cfg->member_count; i++)
		say_member_json(d, i, top, now, r);
	say(r, "]}\n");
}

static void members_json(struct ctl_daemon *d, struct ctl_admin_reply *r)
{
	say(r, "{\"cluster\":%u,", d->cfg->cluster_id);
	say_voting(r, d->policy.status.members);
	say(r, ",\"members\":[");
	for (uint8_t i = 0; i < d->cfg->member_count; i++) {
		const struct bpx_member *m = &d->cfg->members[i];
		const uint8_t *mac = m->data.mac;
		char data[32], control[32];
		ctl_log_addr(m->data.ip, m->data.port, data, sizeof(data));
		ctl_log_addr(m->control_ip, m->control_port, control,
			     sizeof(control));
		say(r, "%s{\"id\":%u,\"voting\":%s,\"mac\":\"%02x:%02x:%02x:"
		       "%02x:%02x:%02x\",\"data\":\"%s\",\"control\":\"%s\"}",
		    i ? "," : "", i,
		    (d->policy.status.members & (1u << i)) ? "true" : "false",
		    mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], data,
		    control);
	}
	say(r, "]}\n");
}

static void members_text(struct ctl_daemon *d, struct ctl_admin_reply *r)
{
	say(r, "%-3s %-8s %-17s %-21s %s\n", "ID", "VOTES", "MAC", "DATA",
	    "CONTROL");
	for (uint8_t i = 0; i < d->cfg->member_count; i++) {
		const struct bpx_member *m = &d->cfg->members[i];
		const uint8_t *mac = m->data.mac;
		say(r, "%-3u %-8s %02x:%02x:%02x:%02x:%02x:%02x "
		       "%u.%u.%u.%u:%-9u %u.%u.%u.%u:%u\n",
		    i, (d->policy.status.members & (1u << i)) ? "yes" : "no", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
		    m->data.ip >> 24, (m->data.ip >> 16) & 255,
		    (m->data.ip >> 8) & 255, m->data.ip & 255, m->data.port,
		    m->control_ip >> 24, (m->control_ip >> 16) & 255,
		    (m->control_ip >> 8) & 255, m->control_ip & 255,
		    m->control_port);
	}
}

static bool parse_member(const struct ctl_daemon *d, const char *s, uint8_t *id)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v >= d->cfg->member_count)
		return false;
	*id = (uint8_t)v;
	return true;
}

/* leader transfer ID|none: parsed here, decided and answered by the
 * policy (now, or once the target leads). */
static void cmd_transfer(struct ctl_daemon *d, const char *arg, int fd,
			 uint64_t now, struct ctl_admin_reply *r)
{
	struct ctl_input in = { .kind = CTL_IN_ADMIN };
	in.admin.type = CTL_ADMIN_TRANSFER;
	in.admin.member = CTL_NONE;
	in.admin.client = (uint64_t)fd;
	if (strcmp(arg, "none") != 0 &&
	    !parse_member(d, arg, &in.admin.member)) {
		say(r, "error: leader transfer: '%s' is not a member id (0..%u) "
		       "or 'none'\n", arg, d->cfg->member_count - 1);
		return;
	}
	step(d, now, &in);
}

/* members add ID... | members remove ID: parsed here; the policy checks
 * the new member set and hands it to the worker, whose consensus puts it
 * through the log; the policy answers once the worker has. */
static bool cmd_members(struct ctl_daemon *d, int argc, char **argv, int fd,
			uint64_t now, struct ctl_admin_reply *r)
{
	bool add = strcmp(argv[1], "add") == 0;
	if ((!add && strcmp(argv[1], "remove") != 0) || argc < 3 ||
	    (!add && argc != 3)) {
		say(r, "error: usage: members add ID... | members remove ID\n");
		return true;
	}
	struct ctl_input in = { .kind = CTL_IN_ADMIN };
	in.admin.type = add ? CTL_ADMIN_MEMBERS_ADD : CTL_ADMIN_MEMBERS_REMOVE;
	in.admin.client = (uint64_t)fd;
	for (int i = 2; i < argc; i++) {
		uint8_t id;
		if (!parse_member(d, argv[i], &id)) {
			say(r, "error: members %s: '%s' is not a member id of "
			       "the config (0..%u)\n", argv[1], argv[i],
			    d->cfg->member_count - 1);
			return true;
		}
		in.admin.ids = (uint8_t)(in.admin.ids | (1u << id));
	}
	step(d, now, &in);
	return false;
}

/* snapshot: the state streams back on this connection (snapshot_loop);
 * the file is bypaxctl's to write. Returns false when it will. */
static bool cmd_snapshot(struct ctl_daemon *d, int argc, int fd, uint64_t now,
			 struct ctl_admin_reply *r)
{
	struct ctl_snapshot_stream *s = &d->snap;
	if (argc != 1) {
		say(r, "error: snapshot takes no path: bypaxctl writes the file "
		       "itself (bypaxctl snapshot PATH); is bypaxctl older "
		       "than this bypaxd?\n");
	} else if (d->snapshot_buf == NULL) {
		say(r, "error: snapshot: snapshots are disabled on member %u "
		       "(bypaxd --snapshot-mb 0)\n", d->self);
	} else if (s->client >= 0 || s->worker_busy || s->release_pending) {
		say(r, "error: snapshot: another snapshot of member %u is in "
		       "progress; try again when it is done\n", d->self);
	} else if (!send_command(d, CTL_CMD_SNAPSHOT, 0, 0)) {
		say(r, "error: snapshot: member %u's worker is behind on its "
		       "commands; try again\n", d->self);
	} else {
		s->client = fd;
		s->worker_busy = true;
		s->deadline_ns = now + SNAPSHOT_WORKER_NS;
		return false;
	}
	return true;
}

/* Runs one command; returns false when the reply comes later. */
/* A duration for the fault commands: 0..3600000 ms. */
static bool parse_fault_ms(const char *what, const char *s, uint64_t *ms,
			   struct ctl_admin_reply *r)
{
	char *end;
	*ms = strtoull(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || *ms > 3600000) {
		say(r, "error: %s: '%s' is not a number of ms (0..3600000)\n",
		    what, s);
		return false;
	}
	return true;
}

/* "fault isolate MS [both|control|data]": the data plane (the worker
 * drops its peers' frames and sends them none) and/or the control plane
 * (no heartbeat in or out). Cutting only one plane tests that neither
 * is trusted for what the other must tell. */
static void cmd_fault_isolate(struct ctl_daemon *d, const char *ms_arg,
			      const char *plane, uint64_t now, struct ctl_admin_reply *r)
{
	uint64_t ms;
	if (!parse_fault_ms("fault isolate", ms_arg, &ms, r))
		return;
	bool data = strcmp(plane, "both") == 0 || strcmp(plane, "data") == 0;
	bool control = strcmp(plane, "both") == 0 ||
		       strcmp(plane, "control") == 0;
	if (!data && !control) {
		say(r, "error: fault isolate: plane '%s' is not both, control "
		       "or data\n", plane);
		return;
	}
	if (data)
		send_command(d, CTL_CMD_ISOLATE, 0, ms);
	if (control)
		isolate_until_ns = now + ms * MS_NS;
	ctl_event(d, CTL_LOG_CTL, RTE_LOG_WARNING, "fault_isolate",
		  BPX_LOG_FIELDS(BPX_LF_STR("plane", plane),
				 BPX_LF_U64("ms", ms)));
	say(r, "ok: member %u cut off from its peers (%s) for %" PRIu64
	       " ms\n", d->self, plane, ms);
}

/* "fault link M MS": the port toward member M goes down for MS, as if the
 * peer's memif end vanished; bypaxd's main thread stops and restarts it.
 * "fault silent M MS": the port stays up but carries nothing, either way,
 * until it is restarted or MS pass: a link broken with both ends calling
 * it up, which only bypaxd's silent-link check repairs. */
static void cmd_fault_link(struct ctl_daemon *d, const char *kind,
			   const char *member, const char *ms_arg, uint64_t now,
			   struct ctl_admin_reply *r)
{
	bool silent = strcmp(kind, "silent") == 0;
	char what[32];
	snprintf(what, sizeof(what), "fault %s", kind);
	uint8_t m;
	uint64_t ms;
	if (!parse_member(d, member, &m)) {
		say(r, "error: %s: '%s' is not a member id\n", what, member);
		return;
	}
	if (m == d->self) {
		say(r, "error: %s: %u is this member\n", what, m);
		return;
	}
	if (!parse_fault_ms(what, ms_arg, &ms, r))
		return;
	if (silent)
		d->link_silent_until_ns[m] = now + ms * MS_NS;
	else
		d->link_fault_until_ns[m] = now + ms * MS_NS;
	ctl_event(d, CTL_LOG_CTL, RTE_LOG_WARNING,
		  silent ? "fault_silent" : "fault_link",
		  BPX_LOG_FIELDS(BPX_LF_U64("member", m), BPX_LF_U64("ms", ms)));
	if (silent)
		say(r, "ok: link from member %u to %u silent for %" PRIu64
		       " ms or until its port restarts\n", d->self, m, ms);
	else
		say(r, "ok: link from member %u to %u down for %" PRIu64
		       " ms\n", d->self, m, ms);
}

static const char *role_name(uint8_t role);

/* A member id, or "none". */
static const char *member_text(uint8_t m, char *buf, size_t cap)
{
	if (m == CTL_NONE)
		return "none";
	snprintf(buf, cap, "%u", m);
	return buf;
}

/* Suspicions and their end, with how long each lasted. */
static void log_liveness(struct ctl_daemon *d, uint64_t now)
{
	static uint32_t alive_seen;
	static uint64_t suspected_at_ns[32];
	const struct ctl_policy *p = &d->policy;
	uint32_t alive = ctl_fd_alive_mask(&p->omega.fd, now);
	for (uint8_t m = 0; m < d->cfg->member_count; m++) {
		uint32_t bit = 1u << m;
		if ((alive_seen & bit) && !(alive & bit)) {
			suspected_at_ns[m] = now;
			ctl_event(d, CTL_LOG_CTL, RTE_LOG_WARNING,
				  "member_suspected",
				  BPX_LOG_FIELDS(BPX_LF_U64("member", m),
						 BPX_LF_U64("silence_ms",
							    ctl_fd_timeout_ns(&p->omega.fd, m) /
								    MS_NS)));
		} else if (!(alive_seen & bit) && (alive & bit) &&
			   m != d->self) {
			uint64_t t = suspected_at_ns[m];
			ctl_event(d, CTL_LOG_CTL, RTE_LOG_INFO, "member_heard",
				  BPX_LOG_FIELDS(BPX_LF_U64("member", m),
						 BPX_LF_I64("suspected_ms",
							    t ? (int64_t)((now - t) / MS_NS)
							      : -1)));
		}
	}
	alive_seen = alive;
}

/* The control plane's leader, and this replica stepping down. */
static void log_leadership(struct ctl_daemon *d)
{
	static uint8_t leader_seen = CTL_NONE;
	static uint64_t step_downs_seen;
	const struct ctl_policy *p = &d->policy;
	if (p->step_downs != step_downs_seen) {
		ctl_event(d, CTL_LOG_PAXOS, RTE_LOG_WARNING, "step_down",
			  BPX_LOG_FIELDS(BPX_LF_STR("reason", "proposals not "
						    "committing while leading"),
					 BPX_LF_U64("stalled_ms",
						    p->cfg.step_down_after_ns / MS_NS),
					 BPX_LF_U64("holdoff_ms",
						    p->cfg.step_down_for_ns / MS_NS)));
		step_downs_seen = p->step_downs;
	}
	if (p->leader == leader_seen)
		return;
	char from[8], to[8], ballot[32];
	ctl_log_ballot(p->have_status ? p->status.promised : 0, ballot,
		       sizeof(ballot));
	ctl_event(d, CTL_LOG_PAXOS, RTE_LOG_INFO, "leader_change",
		  BPX_LOG_FIELDS(BPX_LF_STR("from", member_text(leader_seen, from,
								 sizeof(from))),
				 BPX_LF_STR("to", member_text(p->leader, to,
							       sizeof(to))),
				 BPX_LF_STR("ballot", ballot)));
	leader_seen = p->leader;
}

/* The worker's role, its first commit as a new leader (the end of a
 * failover as clients see it), and the voting set. */
static void log_worker(struct ctl_daemon *d)
{
	static uint8_t role_seen = 0xff, members_seen;
	static uint64_t term_commit; /* commit index when we became leader */
	static bool first_commit_due;
	const struct ctl_policy *p = &d->policy;
	if (p->status.role != role_seen) {
		char ballot[32];
		ctl_log_ballot(p->status.promised, ballot, sizeof(ballot));
		ctl_event(d, CTL_LOG_PAXOS, RTE_LOG_INFO, "role_change",
			  BPX_LOG_FIELDS(BPX_LF_STR("from", role_seen == 0xff
							      ? "none"
							      : role_name(role_seen)),
					 BPX_LF_STR("to", role_name(p->status.role)),
					 BPX_LF_U64("commit", p->status.commit_index),
					 BPX_LF_STR("ballot", ballot)));
		role_seen = p->status.role;
		term_commit = p->status.commit_index;
		first_commit_due = role_seen == PX_ROLE_LEADER;
	}
	if (first_commit_due && p->status.commit_index > term_commit) {
		ctl_event(d, CTL_LOG_PAXOS, RTE_LOG_INFO, "first_commit",
			  BPX_LOG_FIELDS(BPX_LF_U64("index", p->status.commit_index)));
		first_commit_due = false;
	}
	if (p->status.members != members_seen) {
		char old[32], now[32];
		ctl_log_mask(members_seen, old, sizeof(old));
		ctl_log_mask(p->status.members, now, sizeof(now));
		/* The first status: what the replica starts with. */
		ctl_event(d, CTL_LOG_PAXOS, RTE_LOG_NOTICE, "voting_change",
			  BPX_LOG_FIELDS(BPX_LF_STR("old", old),
					 BPX_LF_STR("new", now),
					 BPX_LF_U64("commit", p->status.commit_index)));
		members_seen = p->status.members;
	}
}

/* What changed since the last look, one event line each. */
static void log_events(struct ctl_daemon *d, uint64_t now)
{
	log_liveness(d, now);
	log_leadership(d);
	if (d->policy.have_status)
		log_worker(d);
}

/* The commands that change state, or hand out the whole state (a
 * snapshot): index into ctl_admin_verbs, or -1 for one anyone who can
 * connect may run (help, status, members). */
static int state_verb(int argc, char **argv)
{
	/* "members add/remove" changes the voting set; "members json"
	 * (bypaxctl members --json) only reads it. */
	if (argc > 1 && strcmp(argv[0], "members") == 0 &&
	    (strcmp(argv[1], "add") == 0 || strcmp(argv[1], "remove") == 0))
		return 0;
	for (int i = 1; i < (int)CTL_ADMIN_VERBS; i++)
		if (argc > 0 && strcmp(argv[0], ctl_admin_verbs[i]) == 0)
			return i;
	return -1;
}

static struct ctl_admin_conn *conn_of(struct ctl_daemon *d, int fd);

/* Root and the daemon's own uid may change state; others are refused,
 * counted and logged (at most a line per uid per interval). */
static bool may_change_state(struct ctl_daemon *d, int fd, int verb,
			     uint64_t now, struct ctl_admin_reply *r)
{
	const struct ctl_admin_conn *c = conn_of(d, fd);
	CTL_ASSERT(c != NULL);
	if (c->peer_uid == 0 || c->peer_uid == (uint32_t)geteuid())
		return true;
	d->admin_refused++;
	struct ctl_ratelimit_line l;
	if (ctl_ratelimit_event(&d->refused_log, c->peer_uid, (uint64_t)verb,
				1, now, &l))
		log_admin_refused(d, &l);
	say(r, "error: permission denied: '%s' changes state; only root and "
	       "uid %u may run it (you are uid %" PRIu32 "; docs/deploy.md)\n",
	    ctl_admin_verbs[verb], (unsigned)geteuid(), c->peer_uid);
	return false;
}

static bool run_admin(struct ctl_daemon *d, char *line, int fd, uint64_t now,
		      struct ctl_admin_reply *r)
{
	char *argv[8];
	int argc = 0;
	for (char *tok = strtok(line, " \t\r\n"); tok && argc < 8;
	     tok = strtok(NULL, " \t\r\n"))
		argv[argc++] = tok;
	int verb = state_verb(argc, argv);
	if (verb >= 0 && !may_change_state(d, fd, verb, now, r))
		return true;
	if (argc == 0 || strcmp(argv[0], "help") == 0) {
		say(r, "commands: status [json] | members [json] | members "
		       "add ID... | members remove ID | leader transfer ID|none "
		       "| snapshot | fault isolate MS [both|control|data] | "
		       "fault link M MS\n");
	} else if (strcmp(argv[0], "status") == 0) {
		if (argc > 1 && strcmp(argv[1], "json") == 0)
			status_json(d, now, r);
		else
			status_text(d, now, r);
	} else if (strcmp(argv[0], "members") == 0 && argc == 1) {
		members_text(d, r);
	} else if (strcmp(argv[0], "members") == 0 && argc == 2 &&
		   strcmp(argv[1], "json") == 0) {
		members_json(d, r);
	} else if (strcmp(argv[0], "members") == 0) {
		return cmd_members(d, argc, argv, fd, now, r);
	} else if (argc == 3 && strcmp(argv[0], "leader") == 0 &&
		   strcmp(argv[1], "transfer") == 0) {
		cmd_transfer(d, argv[2], fd, now, r);
		return r->len > 0; /* else the policy answers */
	} else if (strcmp(argv[0], "snapshot") == 0) {
		return cmd_snapshot(d, argc, fd, now, r);
	} else if (argc >= 3 && argc <= 4 && strcmp(argv[0], "fault") == 0 &&
		   strcmp(argv[1], "isolate") == 0) {
		cmd_fault_isolate(d, argv[2], argc == 4 ? argv[3] : "both",
				  now, r);
	} else if (argc == 4 && strcmp(argv[0], "fault") == 0 &&
		   (strcmp(argv[1], "link") == 0 ||
		    strcmp(argv[1], "silent") == 0)) {
		cmd_fault_link(d, argv[1], argv[2], argv[3], now, r);
	} else {
		say(r, "error: unknown command '%s' (try: help)\n", argv[0]);
	}
	return true;
}

/* ---- Admin connections: never a blocking call on one ----
 *
 * The control thread sends the heartbeats: if it waited on a client that
 * connects and sends nothing, or does not read its reply, the others would
 * suspect this member, and a leader would lose its leadership. Each
 * connection is non-blocking and has a state, moved on as poll() says it
 * can be; a client that has not sent its command, or not taken its reply,
 * within CTL_ADMIN_BUDGET_NS is dropped. One that waits for the policy or
 * the worker (a transfer, a membership change, a snapshot) has no budget:
 * those answer within their own timeouts. */

static void admin_close(struct ctl_admin_conn *c);

/* A client out of its budget, or the idlest one when room is needed. */
static void admin_drop(struct ctl_daemon *d, struct ctl_admin_conn *c,
		       uint64_t now)
{
	d->admin_dropped++;
	admin_close(c);
	struct ctl_ratelimit_line l;
	if (ctl_ratelimit_event(&d->admin_log, 0, 0, 1, now, &l))
		log_admin_dropped(d, &l);
}

static struct ctl_admin_conn *conn_of(struct ctl_daemon *d, int fd)
{
	for (unsigned i = 0; i < CTL_ADMIN_CONNS; i++)
		if (d->admin[i].fd == fd &&
		    d->admin[i].state != CTL_ADMIN_FREE)
			return &d->admin[i];
	return NULL;
}

static void admin_close(struct ctl_admin_conn *c)
{
	CTL_ASSERT(c->state != CTL_ADMIN_FREE && c->fd >= 0);
	close(c->fd);
	c->fd = -1;
	c->state = CTL_ADMIN_FREE;
}

/* A waiting connection that becomes a snapshot stream (start_stream): its
 * slot is freed, its socket kept open for snapshot_loop's pump. */
static void admin_hand_over(struct ctl_daemon *d, int fd)
{
	struct ctl_admin_conn *c = conn_of(d, fd);
	CTL_ASSERT(c != NULL && c->state == CTL_ADMIN_WAITING);
	c->fd = -1;
	c->state = CTL_ADMIN_FREE;
}

/* Sends what the socket takes now; hangs up when all is sent or the
 * client is gone. MSG_NOSIGNAL: a client that hung up must not SIGPIPE
 * the whole replica. */
static void admin_write(struct ctl_admin_conn *c)
{
	CTL_ASSERT(c->state == CTL_ADMIN_WRITING);
	while (c->sent < c->reply.len) {
		ssize_t n = send(c->fd, c->reply.buf + c->sent,
				 c->reply.len - c->sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR) /* net_tap's SIGIO */
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return; /* the rest when poll() says POLLOUT */
		if (n <= 0)
			break;
		c->sent += (size_t)n;
	}
	admin_close(c);
}

static void begin_write(struct ctl_admin_conn *c, uint64_t now)
{
	c->state = CTL_ADMIN_WRITING;
	c->sent = 0;
	c->deadline_ns = now + CTL_ADMIN_BUDGET_NS;
	admin_write(c);
}

/* An answer that came later (from the policy or the worker) for the
 * connection fd: it is still open, waiting or still reading (a policy
 * that answers in the same step as the command). */
static void reply_later(struct ctl_daemon *d, int fd, const char *text,
			size_t len, uint64_t now)
{
	struct ctl_admin_conn *c = conn_of(d, fd);
	CTL_ASSERT(c != NULL && c->state != CTL_ADMIN_WRITING);
	if (len >= sizeof(c->reply.buf))
		len = sizeof(c->reply.buf) - 1;
	memcpy(c->reply.buf, text, len);
	c->reply.len = len;
	begin_write(c, now);
}

/* Reading commands (polled by scripts and the chaos harness) at debug,
 * the ones that change something at info. */
static bool read_only_command(const char *line)
{
	return strncmp(line, "status", 6) == 0 || strcmp(line, "members") == 0 ||
	       strncmp(line, "members json", 12) == 0 ||
	       strncmp(line, "help", 4) == 0 || line[0] == '\0';
}

/* The first line of a reply, without its newline. */
static void first_line(const char *text, size_t len, char *out, size_t cap)
{
	size_t n = 0;
	while (n < len && n + 1 < cap && text[n] != '\n')
		n++;
	memcpy(out, text, n);
	out[n] = '\0';
}

/* One line per admin command: what, who, and the answer (or "pending":
 * the policy or the worker answers later, an admin_reply line). */
static void log_admin(struct ctl_daemon *d, const char *command, int64_t uid,
		      const struct ctl_admin_reply *r, bool answered)
{
	uint32_t level = read_only_command(command) ? RTE_LOG_DEBUG
						    : RTE_LOG_INFO;
	char result[160] = "pending";
	if (answered)
		first_line(r->buf, r->len, result, sizeof(result));
	ctl_event(d, CTL_LOG_CTL, level, "admin_command",
		  BPX_LOG_FIELDS(BPX_LF_STR("command", command),
				 BPX_LF_I64("peer_uid", uid),
				 BPX_LF_STR("result", result)));
}

static void admin_run(struct ctl_daemon *d, struct ctl_admin_conn *c,
		      uint64_t now)
{
	c->line[c->line_len] = '\0';
	c->reply.len = 0;
	c->reply.buf[0] = '\0';
	char *newline = memchr(c->line, '\n', c->line_len);
	if (newline != NULL)
		*newline = '\0'; /* one command a connection: the first line */
	bool answered = true;
	char command[96];
	snprintf(command, sizeof(command), "%s", c->line); /* strtok cuts it */
	for (size_t n = strlen(command); n > 0 && strchr(" \t\r", command[n - 1]);)
		command[--n] = '\0';
	int64_t uid = c->peer_uid == CTL_UID_UNKNOWN ? -1 : (int64_t)c->peer_uid;
	if (newline == NULL && c->line_len == sizeof(c->line) - 1)
		say(&c->reply, "error: command longer than %zu bytes\n",
		    sizeof(c->line) - 2);
	else
		answered = run_admin(d, c->line, c->fd, now, &c->reply);
	/* The policy may have answered in the same step (reply_later): the
	 * connection is writing its answer, or already closed. */
	bool replied = c->state != CTL_ADMIN_READING;
	log_admin(d, command, uid, &c->reply, answered || replied);
	if (replied)
		return;
	if (answered)
		begin_write(c, now);
	else
		c->state = CTL_ADMIN_WAITING;
}

/* A command is one line: complete at its newline, at the client's end of
 * writing, or when the buffer is full (refused). */
static void admin_read(struct ctl_daemon *d, struct ctl_admin_conn *c,
		       uint64_t now)
{
	CTL_ASSERT(c->state == CTL_ADMIN_READING);
	for (;;) {
		size_t room = sizeof(c->line) - 1 - c->line_len;
		ssize_t n = recv(c->fd, c->line + c->line_len, room,
				 MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0 || (n == 0 && c->line_len == 0)) {
			admin_close(c); /* gone before a command */
			return;
		}
		c->line_len += (size_t)n;
		if (n == 0 || c->line_len == sizeof(c->line) - 1 ||
		    memchr(c->line + c->line_len - (size_t)n, '\n',
			   (size_t)n) != NULL)
			break;
	}
	admin_run(d, c, now);
}

/* A reader that has had its grace to send a command, and not sent it. */
static bool idle_reader(const struct ctl_admin_conn *c, uint64_t now)
{
	return c->state == CTL_ADMIN_READING &&
	       c->deadline_ns - CTL_ADMIN_BUDGET_NS + CTL_ADMIN_GRACE_NS <= now;
}

/* A free slot, or else the one of the client that has been reading
 * longest, past its grace (to be dropped: idle clients must not lock
 * bypaxctl out for their whole budget); NULL when there is neither. */
static struct ctl_admin_conn *admin_slot(struct ctl_daemon *d, uint64_t now)
{
	struct ctl_admin_conn *oldest = NULL;
	for (unsigned i = 0; i < CTL_ADMIN_CONNS; i++) {
		struct ctl_admin_conn *c = &d->admin[i];
		if (c->state == CTL_ADMIN_FREE)
			return c;
		if (idle_reader(c, now) &&
		    (oldest == NULL || c->deadline_ns < oldest->deadline_ns))
			oldest = c;
	}
	return oldest;
}

/* Who is on the other end (the kernel's word, SO_PEERCRED): what
 * may_change_state decides on. */
static uint32_t peer_uid(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
	    len != sizeof(cred))
		return CTL_UID_UNKNOWN;
	return (uint32_t)cred.uid;
}

/* At most CTL_ADMIN_CONNS a turn, the oldest idle readers dropped first. */
static void admin_accept(struct ctl_daemon *d, uint64_t now)
{
	for (unsigned i = 0; i < CTL_ADMIN_CONNS; i++) {
		struct ctl_admin_conn *c = admin_slot(d, now);
		if (c == NULL)
			return; /* the rest wait in the listen backlog */
		int fd = ctl_accept_nonblocking(d->admin_fd);
		if (fd == CTL_ACCEPT_NONE)
			return;
		if (fd < 0)
			continue;
		if (c->state != CTL_ADMIN_FREE)
			admin_drop(d, c, now);
		*c = (struct ctl_admin_conn){ .fd = fd,
					      .state = CTL_ADMIN_READING,
					      .peer_uid = peer_uid(fd),
					      .deadline_ns =
						      now + CTL_ADMIN_BUDGET_NS };
	}
}

/* The control thread's poll set: heartbeats, the admin listener, then
 * the connections in the order of d->admin, then the HTTP listener and
 * its connections (ctl_http_poll_set). */
enum { POLL_HB, POLL_LISTEN, POLL_CONN0,
       POLL_HTTP0 = POLL_CONN0 + CTL_ADMIN_CONNS,
       POLL_FDS = POLL_HTTP0 + CTL_HTTP_POLL_FDS };

static void admin_poll_set(const struct ctl_daemon *d, struct pollfd *fds,
			   uint64_t now)
{
	bool room = false;
	for (unsigned i = 0; i < CTL_ADMIN_CONNS; i++) {
		const struct ctl_admin_conn *c = &d->admin[i];
		struct pollfd *p = &fds[POLL_CONN0 + i];
		bool busy = c->state == CTL_ADMIN_READING ||
			    c->state == CTL_ADMIN_WRITING;
		p->fd = busy ? c->fd : -1; /* poll() skips a negative fd */
		p->events = c->state == CTL_ADMIN_READING ? POLLIN : POLLOUT;
		p->revents = 0;
		room |= c->state == CTL_ADMIN_FREE || idle_reader(c, now);
	}
	/* No slot to give: leave new clients in the listen backlog, without
	 * waking poll() for them (the loop wakes every 1 ms anyway). */
	fds[POLL_LISTEN].fd = room ? d->admin_fd : -1;
	fds[POLL_LISTEN].revents = 0;
}

static void serve_admin(struct ctl_daemon *d, const struct pollfd *fds,
			uint64_t now)
{
	for (unsigned i = 0; i < CTL_ADMIN_CONNS; i++) {
		struct ctl_admin_conn *c = &d->admin[i];
		const struct pollfd *p = &fds[POLL_CONN0 + i];
		if (p->fd < 0 || p->fd != c->fd || p->revents == 0)
			continue;
		if (c->state == CTL_ADMIN_READING)
			admin_read(d, c, now);
		else if (c->state == CTL_ADMIN_WRITING)
			admin_write(c);
	}
	for (unsigned i = 0; i < CTL_ADMIN_CONNS; i++) {
		struct ctl_admin_conn *c = &d->admin[i];
		if ((c->state == CTL_ADMIN_READING ||
		     c->state == CTL_ADMIN_WRITING) && now >= c->deadline_ns)
			admin_drop(d, c, now);
	}
	if (fds[POLL_LISTEN].revents & POLLIN)
		admin_accept(d, now);
}

/* ---- The thread ---- */

/* Heartbeats that queued while the EAL started (the control address is
 * bound before it) are seconds old: as fresh ones they would keep a peer
 * alive that died meanwhile. */
static void drop_stale_heartbeats(struct ctl_daemon *d)
{
	uint8_t buf[256];
	while (recv(d->hb_fd, buf, sizeof(buf), 0) >= 0 || errno == EINTR)
		;
}

static void *ctl_main(void *arg)
{
	struct ctl_daemon *d = arg;
	drop_stale_heartbeats(d);
	struct pollfd fds[POLL_FDS] = {
		[POLL_HB] = { .fd = d->hb_fd, .events = POLLIN },
		[POLL_LISTEN] = { .fd = d->admin_fd, .events = POLLIN },
	};
	while (!*d->quit) {
		admin_poll_set(d, fds, ctl_clock_ns());
		ctl_http_poll_set(&d->http, &fds[POLL_HTTP0], ctl_clock_ns());
		poll(fds, POLL_FDS, 1);
		uint64_t now = ctl_clock_ns();
		drain_status(d, now);
		snapshot_loop(d, now);
		receive_heartbeats(d, now);
		static const struct ctl_input tick = { .kind = CTL_IN_TICK };
		step(d, now, &tick);
		serve_admin(d, fds, now);
		ctl_daemon_metrics_serve(d, &fds[POLL_HTTP0], now);
		log_events(d, now);
		log_due(d, now);
	}
	return NULL;
}

int ctl_daemon_start(struct ctl_daemon *d, char *err, size_t err_len)
{
	int rc = rte_ctrl_thread_create(&ctl_tid, "bypax-ctl", NULL, ctl_main,
					d);
	if (rc != 0) {
		snprintf(err, err_len, "control thread: %s", strerror(rc));
		return -BPX_EIO;
	}
	d->started = true;
	return 0;
}

void ctl_daemon_stop(struct ctl_daemon *d)
{
	if (d->started)
		pthread_join(ctl_tid, NULL);
	ctl_daemon_print_log(d); /* its last lines */
	/* Connections still open, some waiting for the policy's or the
	 * worker's answer (a transfer, a membership change, a snapshot). */
	for (unsigned i = 0; i < CTL_ADMIN_CONNS; i++)
		if (d->admin[i].state != CTL_ADMIN_FREE)
			admin_close(&d->admin[i]);
	/* The claim (lock, control address) is the caller's to release,
	 * after this: the socket file goes while the lock is still held,
	 * else we could remove a successor's. */
	if (d->snap.sending && d->snap.client >= 0)
		close(d->snap.client); /* the pump's, no longer a connection's */
	ctl_http_close(&d->http);
	if (d->admin_fd >= 0) {
		close(d->admin_fd);
		unlink(d->claim->admin_path);
	}
	rte_ring_free(d->to_worker);
	rte_ring_free(d->from_worker);
	rte_ring_free(d->log);
	d->log = NULL;
}
