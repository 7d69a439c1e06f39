/* bypaxd: one bypax replica as a DPDK process.
 *
 *   bypaxd [EAL options] -- --config FILE --id N [options]
 *
 * Our own options (after "--") are read first, and the member claimed on
 * this host (ctl_claim_take: a lock and the control address), before
 * rte_eal_init: a second bypaxd with the same --id must stop before its
 * EAL probes a port, as a memif or tap port is a link the first one uses.
 * Every ethdev the EAL probed is a port of this replica
 * (a PCI NIC with -a BDF, net_memif links to peers, a net_tap or
 * net_af_packet port for kernel clients). The worker lcore owns the
 * replica; the main thread only waits for a signal and reports. */
#include <getopt.h>
#include <inttypes.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_telemetry.h>

#include "bypax/kv.h"
#include "bypaxd.h"
#include "ctl_daemon.h"
#include "ctl_log.h"
#include "dp.h"
#include "notify.h"
#include "ports.h"

#define POOL_MBUFS 8191u
#define IDLE_POLLS_BEFORE_SLEEP 64u

static volatile bool force_quit;

static void on_signal(int sig)
{
	(void)sig;
	force_quit = true; /* only this: the loops notice and leave */
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sleeps until the monotonic clock reaches t (or a quit). Signals cut a
 * plain usleep short, and net_tap raises SIGIO for every frame a kernel
 * client sends: counting usleeps would run our timers hundreds of times
 * too fast under load. */
static void sleep_until_ns(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000ull),
			       .tv_nsec = (long)(t % 1000000000ull) };
	while (!force_quit &&
	       clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
		       EINTR)
		;
}

/* One event line of the main thread (ctl_log.h); it may block on stderr,
 * which only delays this thread's 100 ms tick. */
#define EVENT(type, level, event, ...)                                         \
	ctl_log_event((type), (level), d.o.id, (event),                        \
		      BPX_LOG_FIELDS(__VA_ARGS__))

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bypaxd [EAL options] -- --config FILE --id N [options]\n"
		"Runs one bypax replica. Every port the EAL probes is used:\n"
		"  -a BDF for a NIC; --vdev=net_memif0,... for links to peers on\n"
		"  this machine; --vdev=net_tap0,iface=NAME for kernel clients.\n"
		"Options:\n"
		"  --config FILE        cluster configuration (docs/config.md)\n"
		"  --id N               this replica's member id in the config\n"
		"  --bootstrap          first start of a new cluster: start with\n"
		"                       empty state and vote at once. Without it the\n"
		"                       replica assumes it lost its state (a restart)\n"
		"                       and recovers from the others before it votes.\n"
		"                       Durable mode ([cluster] durability = wal):\n"
		"                       the first start only, with an empty wal_dir;\n"
		"                       a restart replays wal_dir and votes at once\n"
		"                       (docs/deploy.md, Durable mode)\n"
		"  --sm NAME            state machine: kv, or ./path/to.so (default:\n"
		"                       the config's [cluster] sm, else kv)\n"
		"  --route M=P          send to member M through port P (default 0)\n"
		"  --client-port P      port for replies to clients (default 0)\n"
		"  --leader N           the replica to lead when no control plane\n"
		"                       runs (default: the control plane decides)\n"
		"  --no-control         no control thread: --leader decides\n"
		"  --idle-sleep-us N    sleep N us after idle polls (default 0:\n"
		"                       busy poll, for dedicated cores)\n"
		"  --stats-interval S   log the counters (event=stats) every S seconds\n"
		"                       (default 0: never)\n"
		"  --admin-socket PATH  UNIX admin socket for bypaxctl (default\n"
		"                       RUN_DIR/bypaxd-<cluster>-<id>.sock, RUN_DIR\n"
		"                       $BYPAX_RUN_DIR or else /run/bypax)\n"
		"  --snapshot-mb N      snapshot buffer size for catch-up, and for\n"
		"                       snapshots on disk in durable mode (default 64)\n"
		"  --restore FILE       with --bootstrap: start a NEW cluster from a\n"
		"                       snapshot file (bypaxctl snapshot PATH), every\n"
		"                       member from the same FILE, every replica of\n"
		"                       the old cluster stopped first. A new history:\n"
		"                       docs/deploy.md, Disaster recovery. A bad FILE\n"
		"                       (damaged, truncated, another cluster) exits 2\n"
		"  --restore-other-cluster  accept a FILE whose cluster id is not the\n"
		"                       config's (to restore into a new cluster id)\n"
		"  --help               this text (before or after '--')\n"
		"  --version            print the version and exit\n"
		"  --help-eal           the EAL's options (before '--'), e.g.\n"
		"                       -l 0-1 --no-huge -m 512\n"
		"Logging: events are logfmt lines on stderr, one per line\n"
		"  (docs/deploy.md, Event log), through DPDK's log types\n"
		"  bypax.paxos, bypax.ctl and bypax.dp: set their levels with the\n"
		"  EAL's --log-level=bypax.*:debug. --log-level=*:error\n"
		"  --log-level=bypax.*:info quiets all but bypax's events (a bare\n"
		"  --log-level=error caps every type, bypax's too).\n"
		"One bypaxd per member on a host: a second one with the same\n"
		"--id is refused before its EAL starts (docs/deploy.md).\n"
		"Exit status: 0 after SIGINT/SIGTERM, 2 on bad arguments or\n"
		"configuration or when this member already runs here, 1 on a\n"
		"runtime failure.\n");
}


static int parse_route(struct bypaxd_opts *o, const char *s)
{
	unsigned m, p;
	char tail;
	if (sscanf(s, "%u=%u%c", &m, &p, &tail) != 2 || m >= PX_REPLICAS_MAX ||
	    p >= RTE_MAX_ETHPORTS) {
		fprintf(stderr, "bypaxd: --route wants MEMBER=PORT, got '%s'\n",
			s);
		return -1;
	}
	o->route_port[m] = (int)p;
	return 0;
}

/* A restore is the first start of a new cluster: said twice on purpose,
 * so that neither word alone in a restart script starts a new history. */
static int check_restore_args(const struct bypaxd_opts *o)
{
	if (o->restore != NULL && !o->bootstrap) {
		fprintf(stderr, "bypaxd: --restore %s starts a new cluster from "
			"the file: it needs --bootstrap too (docs/deploy.md, "
			"Disaster recovery)\n", o->restore);
		return -1;
	}
	if (o->restore_other_cluster && o->restore == NULL) {
		fprintf(stderr, "bypaxd: --restore-other-cluster without "
			"--restore FILE\n");
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct bypaxd_opts *o)
{
	static const struct option opts[] = {
		{ "config", 1, 0, 'c' }, { "id", 1, 0, 'i' },
		{ "sm", 1, 0, 's' }, { "route", 1, 0, 'r' },
		{ "client-port", 1, 0, 'p' }, { "leader", 1, 0, 'L' },
		{ "no-control", 0, 0, 'N' }, { "idle-sleep-us", 1, 0, 'I' },
		{ "stats-interval", 1, 0, 'S' }, { "admin-socket", 1, 0, 'A' },
		{ "snapshot-mb", 1, 0, 'M' }, { "bootstrap", 0, 0, 'B' },
		{ "restore", 1, 0, 'R' }, { "restore-other-cluster", 0, 0, 'O' },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	memset(o, 0, sizeof(*o));
	o->snapshot_mb = 64;
	o->id = -1;
	o->leader = -1;
	for (unsigned i = 0; i < PX_REPLICAS_MAX; i++)
		o->route_port[i] = -1;
	int c;
	uint64_t v;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int e = 0;
		switch (c) {
		case 'c': o->config = optarg; break;
		case 'i': e = dp_parse_u64("bypaxd", "--id", optarg, 0, PX_REPLICAS_MAX - 1, &v); o->id = (int)v; break;
		case 's': o->sm = optarg; break;
		case 'r': e = parse_route(o, optarg); break;
		case 'p': e = dp_parse_u64("bypaxd", "--client-port", optarg, 0, RTE_MAX_ETHPORTS - 1, &v); o->client_port = (uint16_t)v; break;
		case 'L': e = dp_parse_u64("bypaxd", "--leader", optarg, 0, PX_REPLICAS_MAX - 1, &v); o->leader = (int)v; break;
		case 'N': o->no_control = true; break;
		case 'B': o->bootstrap = true; break;
		case 'I': e = dp_parse_u64("bypaxd", "--idle-sleep-us", optarg, 0, 1000000, &v); o->idle_sleep_us = (uint32_t)v; break;
		case 'S': e = dp_parse_u64("bypaxd", "--stats-interval", optarg, 0, 86400, &v); o->stats_interval_s = (uint32_t)v; break;
		case 'A': o->admin_socket = optarg; break;
		case 'M': e = dp_parse_u64("bypaxd", "--snapshot-mb", optarg, 0, 65536, &v); o->snapshot_mb = (uint32_t)v; break;
		case 'R': o->restore = optarg; break;
		case 'O': o->restore_other_cluster = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
		if (e)
			return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "bypaxd: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (o->config == NULL || o->id < 0) {
		fprintf(stderr, "bypaxd: --config FILE and --id N are required "
			"(see --help)\n");
		return -1;
	}
	if (o->no_control && o->leader < 0)
		o->leader = 0;
	return check_restore_args(o);
}

struct daemon {
	struct bypaxd_opts o;
	struct bpx_config cfg;
	struct rte_mempool *pool;
	const struct bpx_sm_ops *sm_ops;
	void *sm_dl;
	void *sm;
	struct dp_replica *replica;
	struct ctl_claim claim;
	struct ctl_daemon ctl;
	bool ctl_running;
	struct ctl_ratelimit wrong_cluster_log;
	uint64_t wrong_cluster_seen; /* drops the log has accounted for */
	struct ctl_ratelimit bad_mac_log;
	uint64_t bad_mac_seen;
	struct bypaxd_restore restore;
	struct bypaxd_durable durable;
	int exit_status;             /* after the loop: 1 if the WAL failed */
	uint16_t ports;
	volatile bool worker_done;
	volatile uint64_t worker_loops; /* the worker's polls, for stall reports */
};

static struct daemon d;

/* ---- Links that drop: a net_memif client whose server restarted stays
 * disconnected until its port restarts. The main thread does that, after
 * the worker has let go of the port. ---- */

#define LINK_DOWN_RESTART_TICKS 10 /* x 100 ms */
/* After a restart whose connect() went through, the memif handshake gets
 * this long before the port is restarted again. Closing a connection the
 * server has accepted but not yet greeted makes DPDK 22.11's memif server
 * fail sendmsg (EPIPE), free the channel without unregistering its fd,
 * and panic its interrupt thread ("Error adding fd N epoll_ctl, Bad file
 * descriptor"): a client that restarts its port every second while its
 * server is slow to start (a restart, a loaded machine) killed the
 * server. */
#define LINK_HANDSHAKE_GRACE_TICKS 50 /* x 100 ms */

static volatile uint8_t port_paused[RTE_MAX_ETHPORTS];
/* The silent-link check's (below): frames seen, and ticks without any. */
static uint64_t link_rx_seen[RTE_MAX_ETHPORTS];
static uint32_t link_silent_ticks[RTE_MAX_ETHPORTS];
static uint32_t link_down_ticks[RTE_MAX_ETHPORTS];
static uint32_t link_grace_ticks[RTE_MAX_ETHPORTS];
static bool port_restart_failed[RTE_MAX_ETHPORTS];

static bool is_memif_client(uint16_t port)
{
	struct rte_eth_dev_info info;
	if (rte_eth_dev_info_get(port, &info) != 0 || info.device == NULL)
		return false;
	const struct rte_devargs *da = rte_dev_devargs(info.device);
	return strstr(info.driver_name, "memif") != NULL && da != NULL &&
	       da->args != NULL && strstr(da->args, "role=client") != NULL;
}

static bool pause_port(uint16_t port);

/* "bypaxctl fault silent M MS": the port toward M is held paused, not
 * stopped, so its link stays up at both ends while nothing crosses it;
 * a restart of the port ends it, as it would end the real fault. */
static bool link_silenced[RTE_MAX_ETHPORTS];
static uint64_t link_silenced_until[RTE_MAX_ETHPORTS];

static void restart_port(uint16_t port, const char *reason)
{
	if (!pause_port(port))
		return;
	rte_eth_dev_stop(port);
	int rc = rte_eth_dev_start(port);
	/* Said once per outage: a peer that stays away is retried every
	 * LINK_DOWN_RESTART_TICKS without filling the log. */
	if (rc == 0)
		EVENT(CTL_LOG_DP, RTE_LOG_NOTICE, "port_restarted",
		      BPX_LF_U64("port", port), BPX_LF_STR("reason", reason));
	else if (!port_restart_failed[port]) /* net_memif: no server yet */
		EVENT(CTL_LOG_DP, RTE_LOG_WARNING, "port_down",
		      BPX_LF_U64("port", port), BPX_LF_I64("rc", rc),
		      BPX_LF_U64("retry_ms", LINK_DOWN_RESTART_TICKS * 100),
		      BPX_LF_STR("reason", "link is down and does not restart"));
	port_restart_failed[port] = rc != 0;
	if (rc == 0)
		link_grace_ticks[port] = LINK_HANDSHAKE_GRACE_TICKS;
	rte_smp_mb();
	/* A port that did not start stays paused: polling a stopped port is
	 * an error in DPDK. The next check_links tries again. */
	if (rc == 0) {
		link_silenced[port] = false;
		link_silent_ticks[port] = 0;
		port_paused[port] = 0;
	}
}

/* "bypaxctl fault link M MS": the port toward M stops (its peer sees the
 * memif link vanish) and starts again when the fault ends. */
static bool link_faulted[RTE_MAX_ETHPORTS];

static bool pause_port(uint16_t port)
{
	port_paused[port] = 1;
	uint64_t give_up = mono_ns() + 1000000000ull;
	while (port_paused[port] != 2 && !force_quit && mono_ns() < give_up)
		sleep_until_ns(mono_ns() + 1000000);
	if (port_paused[port] == 2)
		return true;
	port_paused[port] = 0;
	return false; /* worker gone or stuck: leave it */
}

static void check_silence_fault(uint8_t m, uint16_t port, uint64_t now)
{
	uint64_t until = d.ctl.link_silent_until_ns[m];
	bool due = now < until;
	if (due && until != link_silenced_until[port] && !link_faulted[port] &&
	    !link_silenced[port] && pause_port(port)) {
		link_silenced[port] = true;
		link_silenced_until[port] = until;
	} else if (!due && link_silenced[port]) {
		link_silenced[port] = false;
		EVENT(CTL_LOG_DP, RTE_LOG_NOTICE, "link_fault_over",
		      BPX_LF_U64("port", port),
		      BPX_LF_STR("result", "silence over, never repaired"));
		rte_smp_mb();
		port_paused[port] = 0;
	}
}

static void check_link_faults(void)
{
	uint64_t now = ctl_clock_ns();
	for (uint8_t m = 0; m < d.cfg.member_count && d.ctl_running; m++) {
		if (m == d.o.id)
			continue;
		uint16_t port = (uint16_t)(d.o.route_port[m] >= 0 ?
					   d.o.route_port[m] : 0);
		check_silence_fault(m, port, now);
		bool due = now < d.ctl.link_fault_until_ns[m];
		if (due && !link_faulted[port] && pause_port(port)) {
			rte_eth_dev_stop(port);
			link_faulted[port] = true;
		} else if (!due && link_faulted[port]) {
			int rc = rte_eth_dev_start(port);
			link_faulted[port] = false;
			EVENT(CTL_LOG_DP, RTE_LOG_NOTICE, "link_fault_over",
			      BPX_LF_U64("port", port),
			      BPX_LF_STR("result", rc == 0 ? "started"
						  : "not started yet, retried "
						    "while down"));
			rte_smp_mb();
			if (rc == 0)
				port_paused[port] = 0;
		}
	}
}

/* ---- Links that go silent: a memif link that both ends call up but
 * that carries nothing. Seen about once in 80 chaos runs: a restarted
 * replica, memif server of both its links, took a snapshot over them and
 * then neither sent nor received again, while its clients showed the link
 * up, their TX rings full, and no link-down event to act on; it stayed
 * recovering for good. The worker probes every peer every LINK_PROBE_NS
 * (an ARP request the peer answers), so a working link carries frames
 * both ways even when consensus has nothing to say on it. A memif link
 * over which nothing arrives for LINK_SILENT_*_TICKS, while this worker
 * polls and the peer's heartbeats say it is alive, is broken: its port is
 * restarted, which makes both ends connect afresh. The client side acts
 * first (its restart is a reconnect); the server's restart, later, drops
 * a connection its client no longer serves. ---- */

#define LINK_PROBE_NS 250000000ull
#define LINK_SILENT_CLIENT_TICKS 40 /* x 100 ms */
#define LINK_SILENT_SERVER_TICKS 80
#define PEER_ALIVE_NS 1000000000ull /* heard within: alive */


static bool is_memif(uint16_t port)
{
	struct rte_eth_dev_info info;
	return rte_eth_dev_info_get(port, &info) == 0 &&
	       strstr(info.driver_name, "memif") != NULL;
}

/* The one member whose data goes through port, or -1 (none, or several:
 * a shared NIC port, which a silent peer must not restart). */
static int port_member(uint16_t port)
{
	int found = -1;
	for (uint8_t m = 0; m < d.cfg.member_count; m++) {
		if (m == d.o.id)
			continue;
		int p = d.o.route_port[m] >= 0 ? d.o.route_port[m] : 0;
		if (p != port)
			continue;
		if (found >= 0)
			return -1;
		found = m;
	}
	return found;
}

/* Heard within PEER_ALIVE_NS, or three heartbeats when they are slower
 * ([control] heartbeat_us may be set above 1 s). */
static bool peer_alive(int member)
{
	uint64_t heard = d.ctl.peer_heard_ns[member];
	uint64_t within = 3 * d.cfg.fd_heartbeat_ns > PEER_ALIVE_NS ?
				  3 * d.cfg.fd_heartbeat_ns :
				  PEER_ALIVE_NS;
	return d.ctl_running && heard != 0 && ctl_clock_ns() - heard <= within;
}

static void check_silent_link(uint16_t port, bool worker_polled)
{
	struct rte_eth_stats st;
	int member = port_member(port);
	if ((port_paused[port] && !link_silenced[port]) || !is_memif(port) ||
	    member < 0 ||
	    rte_eth_stats_get(port, &st) != 0)
		return;
	/* Silence counts only while this worker polls (its own stall is not
	 * the link's) and the peer is alive (a stopped peer is not a link
	 * fault, and must not be reconnected to). */
	if (st.ipackets != link_rx_seen[port] || !worker_polled ||
	    !peer_alive(member)) {
		link_rx_seen[port] = st.ipackets;
		link_silent_ticks[port] = 0;
		return;
	}
	bool client = is_memif_client(port);
	uint32_t limit = client ? LINK_SILENT_CLIENT_TICKS
				: LINK_SILENT_SERVER_TICKS;
	if (++link_silent_ticks[port] < limit)
		return;
	link_silent_ticks[port] = 0;
	EVENT(CTL_LOG_DP, RTE_LOG_WARNING, "link_silent",
	      BPX_LF_U64("port", port), BPX_LF_U64("member", (uint64_t)member),
	      BPX_LF_U64("silent_ms", (uint64_t)limit * 100),
	      BPX_LF_STR("role", client ? "client" : "server"),
	      BPX_LF_STR("action", "restart port"));
	restart_port(port, "link up but nothing arrives while the peer is "
			   "alive");
}

static void check_links(void)
{
	static uint64_t loops_seen;
	uint64_t loops = d.worker_loops;
	bool worker_polled = loops != loops_seen;
	loops_seen = loops;
	uint16_t port;
	RTE_ETH_FOREACH_DEV(port) {
		if (link_faulted[port])
			continue;
		struct rte_eth_link link;
		if (rte_eth_link_get_nowait(port, &link) != 0 ||
		    link.link_status == RTE_ETH_LINK_UP) {
			link_down_ticks[port] = 0;
			link_grace_ticks[port] = 0;
			check_silent_link(port, worker_polled);
			continue;
		}
		/* The silence count survives a down link: a memif server whose
		 * own side is broken sees its link drop at each reconnect of
		 * its client (every 4 s) and must still reach its limit. */
		if (link_grace_ticks[port] > 0) {
			link_grace_ticks[port]--;
			continue;
		}
		if (++link_down_ticks[port] >= LINK_DOWN_RESTART_TICKS &&
		    is_memif_client(port)) {
			link_down_ticks[port] = 0;
			restart_port(port, "link was down");
		}
	}
}

static int setup_ports(char *err, size_t len)
{
	d.ports = rte_eth_dev_count_avail();
	if (d.ports == 0) {
		snprintf(err, len, "no ports: give the EAL a NIC (-a BDF) or a "
			 "vdev (--vdev=net_memif0,... / net_tap0)");
		return -BPX_ECONFIG;
	}
	if (d.o.client_port >= d.ports) {
		snprintf(err, len, "--client-port %u: only %u ports", d.o.client_port,
			 d.ports);
		return -BPX_ECONFIG;
	}
	for (unsigned m = 0; m < PX_REPLICAS_MAX; m++)
		if (d.o.route_port[m] >= (int)d.ports) {
			snprintf(err, len, "--route %u=%d: only %u ports", m,
				 d.o.route_port[m], d.ports);
			return -BPX_ECONFIG;
		}
	uint16_t port;
	RTE_ETH_FOREACH_DEV(port) {
		int rc = dp_port_start(port, 1, 1, d.pool, err, len);
		if (rc == -BPX_EBUSY && is_memif_client(port)) {
			/* Its server (a peer) is not up: that peer may be the
			 * one to come back later, so this replica starts
			 * anyway, the port paused; check_links starts it. */
			EVENT(CTL_LOG_DP, RTE_LOG_WARNING, "port_waiting",
			      BPX_LF_U64("port", port),
			      BPX_LF_STR("reason", "memif server not reachable yet"),
			      BPX_LF_STR("error", err),
			      BPX_LF_U64("retry_ms", LINK_DOWN_RESTART_TICKS * 100));
			port_paused[port] = 2;
			port_restart_failed[port] = true;
			err[0] = '\0';
			rc = 0;
		}
		if (rc)
			return rc;
		char name[RTE_ETH_NAME_MAX_LEN] = "";
		rte_eth_dev_get_name_by_port(port, name);
		EVENT(CTL_LOG_DP, RTE_LOG_INFO, "port_ready",
		      BPX_LF_U64("port", port), BPX_LF_STR("name", name));
	}
	return 0;
}

/* Members through their --route port, everyone else (clients, ARP) through
 * the client port; the replica listens on every port. */
static int setup_routes(struct dp_replica *r)
{
	int client_q = dp_routes_add_txq(&r->routes, d.o.client_port, 0);
	if (client_q < 0)
		return client_q;
	r->routes.default_txq = (uint8_t)client_q;
	for (uint8_t m = 0; m < d.cfg.member_count; m++) {
		int p = d.o.route_port[m] >= 0 ? d.o.route_port[m] : 0;
		int q = dp_routes_add_txq(&r->routes, (uint16_t)p, 0);
		if (q < 0 || dp_routes_add_mac(&r->routes,
					       d.cfg.members[m].data.mac,
					       (uint8_t)q) != 0)
			return -BPX_ENOMEM;
	}
	uint16_t port;
	RTE_ETH_FOREACH_DEV(port) {
		if (dp_replica_add_rx(r, port, 0) != 0)
			return -BPX_ENOMEM;
	}
	return 0;
}

/* A recovering replica catches up from a snapshot, which must fit the
 * --snapshot-mb buffers of the member that sends it: a built-in store
 * sized to hold more would, once that full, leave every restarted replica
 * recovering for ever. Said at start, while it is still only a risk. */
static void warn_snapshot_buffer(const char *sm_name)
{
	struct bpx_kv_sizing kv;
	if (strcmp(sm_name, "kv") != 0 ||
	    bpx_kv_sizing(d.cfg.sm_args, &kv) != 0)
		return;
	uint64_t buffer = (uint64_t)d.o.snapshot_mb << 20;
	if (kv.snapshot_bytes_max <= buffer)
		return;
	uint64_t need_mb = (kv.snapshot_bytes_max + (1u << 20) - 1) >> 20;
	EVENT(CTL_LOG_DP, RTE_LOG_WARNING, "snapshot_buffer_small",
	      BPX_LF_U64("buffer_mb", d.o.snapshot_mb),
	      BPX_LF_U64("store_snapshot_max_mb", need_mb),
	      BPX_LF_STR("hint", "once the store holds more than the buffer, "
			 "a restarted replica cannot recover from this one: "
			 "raise --snapshot-mb (and EAL -m) on every member, or "
			 "size sm_args capacity= and bytes= down"));
}

static bool durable(void)
{
	return d.cfg.durability == BPX_DURABILITY_WAL;
}

static int setup_replica(char *err, size_t len)
{
	const char *sm_name = d.o.sm ? d.o.sm : d.cfg.sm;
	d.sm_ops = dp_sm_load(sm_name, &d.sm_dl, err, len);
	if (d.sm_ops == NULL)
		return -BPX_ECONFIG;
	d.sm = d.sm_ops->create(d.cfg.sm_args[0] ? d.cfg.sm_args : NULL);
	if (d.sm == NULL) {
		snprintf(err, len, "state machine %.64s refused sm_args '%.64s'",
			 sm_name, d.cfg.sm_args);
		return -BPX_ECONFIG;
	}
	d.replica = rte_zmalloc("bypax_replica", sizeof(*d.replica), 64);
	if (d.replica == NULL)
		return -BPX_ENOMEM;
	int rc = dp_replica_init(d.replica, &d.cfg, (uint8_t)d.o.id,
				 !d.o.bootstrap && !durable(), d.sm_ops,
				 d.sm, d.pool, err, len);
	rc = rc ? rc : setup_routes(d.replica);
	d.replica->port_paused = port_paused;
	d.replica->link_probe_ns = LINK_PROBE_NS;
	d.replica->share_payload = true;
	d.replica->tx_ip_cksum = true;
	uint16_t port;
	RTE_ETH_FOREACH_DEV(port) {
		d.replica->share_payload &= dp_port_multi_seg(port);
		d.replica->tx_ip_cksum &= dp_port_tx_ip_cksum(port);
	}
	if (rc == 0 && d.o.snapshot_mb > 0 &&
	    dp_replica_enable_snapshots(d.replica,
					(size_t)d.o.snapshot_mb << 20) != 0) {
		snprintf(err, len, "cannot allocate 2 x %u MiB of snapshot "
			 "buffers (raise EAL -m, or lower --snapshot-mb)",
			 d.o.snapshot_mb);
		return -BPX_ENOMEM;
	}
	if (rc == 0 && durable())
		rc = bypaxd_durable_open(&d.durable, d.replica, &d.cfg, &d.o,
					 err, len);
	if (rc == 0)
		warn_snapshot_buffer(sm_name);
	if (rc == 0 && d.o.leader >= 0)
		dp_replica_set_leader_hint(d.replica, (uint8_t)d.o.leader);
	return rc;
}

static int worker_main(void *arg)
{
	(void)arg;
	uint32_t idle = 0;
	while (!force_quit) {
		d.worker_loops++;
		/* The poll's clock is this reading; a second one, on busy polls
		 * only, gives the worker's busy cycles (/metrics
		 * bypax_worker_busy_cycles_total: the leader's cycles per op in
		 * bypax-dpdk-load's report). */
		uint64_t tsc = rte_rdtsc();
		if (dp_replica_poll_at(d.replica, dp_ns_at_tsc(tsc)) > 0) {
			d.replica->ctr.busy_cycles += rte_rdtsc() - tsc;
			idle = 0;
			continue;
		}
		if (d.o.idle_sleep_us > 0 && ++idle >= IDLE_POLLS_BEFORE_SLEEP)
			rte_delay_us_sleep(d.o.idle_sleep_us);
	}
	d.worker_done = true;
	return 0;
}

/* DPDK telemetry: counters read without locking the worker (plain loads
 * of aligned 64-bit words; a reading may be a poll stale). */
static int telemetry_stats(const char *cmd, const char *params,
			   struct rte_tel_data *t)
{
	(void)cmd;
	(void)params;
	const struct dp_replica *r = d.replica;
	const struct px_stats *s = px_stats(r->px);
	rte_tel_data_start_dict(t);
	rte_tel_data_add_dict_int(t, "id", r->id);
	rte_tel_data_add_dict_int(t, "role", px_role(r->px));
	rte_tel_data_add_dict_u64(t, "promised_ballot", px_promised_ballot(r->px));
	rte_tel_data_add_dict_u64(t, "commit_index", px_commit_index(r->px));
	rte_tel_data_add_dict_u64(t, "applied_index", px_applied_index(r->px));
	rte_tel_data_add_dict_u64(t, "rx_frames", r->ctr.rx_frames);
	rte_tel_data_add_dict_u64(t, "tx_frames", r->ctr.tx_frames);
	rte_tel_data_add_dict_u64(t, "tx_full", r->ctr.tx_full);
	rte_tel_data_add_dict_u64(t, "mbuf_exhausted", r->ctr.mbuf_exhausted);
	rte_tel_data_add_dict_u64(t, "requests_in", s->requests_in);
	rte_tel_data_add_dict_u64(t, "requests_applied", s->requests_applied);
	rte_tel_data_add_dict_u64(t, "slots_committed", s->slots_committed);
	for (unsigned i = 1; i < BPX_WIRE_DROP_COUNT; i++) {
		char key[RTE_TEL_MAX_STRING_LEN];
		snprintf(key, sizeof(key), "drop_%u", i);
		rte_tel_data_add_dict_u64(t, key, r->ctr.drops[i]);
	}
	return 0;
}

/* Appends one counter per drop reason, its key from the X-macro's enum
 * name (px_drop_stale_ballot=N): names, never positions. */
#define PUT_DROP_KEY(name, text) #name,
static const char *const px_drop_enum_names[] = { PX_DROP_LIST(PUT_DROP_KEY) };
static const char *const wire_drop_enum_names[] = {
	BPX_WIRE_DROP_LIST(PUT_DROP_KEY)
};
#undef PUT_DROP_KEY

#define STATS_FIELDS_MAX 64u
#define STATS_KEY_BYTES 48u

static size_t drop_fields(struct bpx_log_field *f, size_t n,
			  char keys[][STATS_KEY_BYTES], const char *prefix,
			  const char *enum_prefix, const char *const *names,
			  const uint64_t *counts, unsigned from, unsigned count)
{
	for (unsigned i = from; i < count && n < STATS_FIELDS_MAX; i++) {
		char k[STATS_KEY_BYTES - 16];
		bpx_logfmt_key_from_enum(enum_prefix, names[i], k, sizeof(k));
		snprintf(keys[n], STATS_KEY_BYTES, "%s%s", prefix, k);
		f[n] = BPX_LF_U64(keys[n], counts[i]);
		n++;
	}
	return n;
}

/* event=stats: every counter its own key (docs/deploy.md, Event log). */
static void print_stats(void)
{
	if (!ctl_log_enabled(CTL_LOG_DP, RTE_LOG_INFO))
		return;
	const struct dp_replica *r = d.replica;
	const struct px_stats *s = px_stats(r->px);
	static const char *const roles[] = { "follower", "candidate", "leader",
					     "recovering" };
	static char keys[STATS_FIELDS_MAX][STATS_KEY_BYTES];
	struct bpx_log_field f[STATS_FIELDS_MAX];
	size_t n = 0;
	f[n++] = BPX_LF_STR("role", roles[px_role(r->px)]);
	f[n++] = BPX_LF_U64("commit", px_commit_index(r->px));
	f[n++] = BPX_LF_U64("applied", px_applied_index(r->px));
	f[n++] = BPX_LF_U64("rx", r->ctr.rx_frames);
	f[n++] = BPX_LF_U64("tx", r->ctr.tx_frames);
	f[n++] = BPX_LF_U64("requests", s->requests_applied);
	f[n++] = BPX_LF_U64("snapshots_sent", r->ctr.snapshots_sent);
	f[n++] = BPX_LF_U64("snapshots_installed", r->ctr.snapshots_installed);
	f[n++] = BPX_LF_U64("snapshot_chunks_sent", r->ctr.snapshot_chunks_sent);
	f[n++] = BPX_LF_U64("snapshot_chunks_dropped",
			    r->ctr.snapshot_chunks_dropped);
	f[n++] = BPX_LF_U64("snapshot_unsupported", r->ctr.snapshot_unsupported);
	n = drop_fields(f, n, keys, "drop_", "BPX_WIRE_", wire_drop_enum_names,
			r->ctr.drops, 1, BPX_WIRE_DROP_COUNT);
	n = drop_fields(f, n, keys, "px_drop_", "PX_DROP_", px_drop_enum_names,
			s->drops, 0, PX_DROP_COUNT);
	char line[2048]; /* longer than CTL_LOG_LINE_BYTES: every counter */
	ctl_log_format(line, sizeof(line), CTL_LOG_DP, RTE_LOG_INFO, r->id,
		       "stats", f, n);
	ctl_log_write(CTL_LOG_DP, RTE_LOG_INFO, line);
}

/* Snapshots the worker sent to, or installed from, a replica that caught
 * up (the worker does not print; plain reads of its counters). */
static void report_snapshots(void)
{
	static uint64_t sent_seen, installed_seen;
	const struct dp_counters *c = &d.replica->ctr;
	uint64_t sent = c->snapshots_sent, installed = c->snapshots_installed;
	if (sent != sent_seen)
		EVENT(CTL_LOG_DP, RTE_LOG_INFO, "snapshot_sent",
		      BPX_LF_U64("index", d.replica->snap.send_index),
		      BPX_LF_U64("bytes", d.replica->snap.send_len),
		      BPX_LF_U64("total", sent));
	if (installed != installed_seen)
		EVENT(CTL_LOG_DP, RTE_LOG_INFO, "snapshot_installed",
		      BPX_LF_U64("index", px_applied_index(d.replica->px)),
		      BPX_LF_U64("total", installed));
	sent_seen = sent;
	installed_seen = installed;
}

/* Durable mode: snapshots on disk, and a disk failure, which stops this
 * bypaxd (the worker already sends nothing: what follows a record that
 * may not be on the disk must not reach anyone; exiting lets the others
 * elect a leader without waiting on a member that cannot vote). */
static void report_durable(void)
{
	static uint64_t written_seen, failed_seen;
	const struct dp_durable *du = &d.replica->dur;
	if (du->disk_snapshots != written_seen)
		EVENT(CTL_LOG_DP, RTE_LOG_INFO, "disk_snapshot",
		      BPX_LF_U64("index", du->snapshot_index),
		      BPX_LF_U64("bytes", du->last_snapshot_bytes),
		      BPX_LF_U64("total", du->disk_snapshots),
		      BPX_LF_U64("segments_recycled", du->segments_recycled));
	if (du->disk_snapshot_failures != failed_seen)
		EVENT(CTL_LOG_DP, RTE_LOG_WARNING, "disk_snapshot_failed",
		      BPX_LF_U64("total", du->disk_snapshot_failures),
		      BPX_LF_STR("hint", "the WAL keeps every record meanwhile: "
				 "check the disk and --snapshot-mb"));
	written_seen = du->disk_snapshots;
	failed_seen = du->disk_snapshot_failures;
	if (__atomic_load_n(&du->failed, __ATOMIC_ACQUIRE) && !force_quit) {
		EVENT(CTL_LOG_DP, RTE_LOG_ERR, "wal_failed",
		      BPX_LF_STR("error", du->failed_text),
		      BPX_LF_STR("hint", "this member stops: fix the disk, "
				 "then start it again (it replays what was "
				 "synced)"));
		d.exit_status = 1;
		force_quit = true;
	}
}

/* Frames of another cluster: the worker counts them (it does not print),
 * the main thread says so at most once every CTL_LOG_INTERVAL_NS, with the
 * count and the latest one's source. Plain reads of the worker's counters:
 * the source and cluster may be of two different frames, at worst. */
static void report_wrong_cluster(uint64_t now)
{
	const struct dp_counters *c = &d.replica->ctr;
	uint64_t n = c->drops[BPX_WIRE_WRONG_CLUSTER];
	struct ctl_ratelimit_line l;
	bool due = n > d.wrong_cluster_seen
			   ? ctl_ratelimit_event(&d.wrong_cluster_log, 0, 0,
						 n - d.wrong_cluster_seen, now,
						 &l)
			   : ctl_ratelimit_due(&d.wrong_cluster_log, now, &l);
	d.wrong_cluster_seen = n;
	if (!due)
		return;
	uint64_t src = c->wrong_cluster_src;
	char from[32];
	ctl_log_addr((uint32_t)(src >> 16), (uint16_t)(src & 0xffff), from,
		     sizeof(from));
	EVENT(CTL_LOG_DP, RTE_LOG_WARNING, "wrong_cluster",
	      BPX_LF_STR("plane", "data"), BPX_LF_U64("count", l.count),
	      BPX_LF_STR("from", from), BPX_LF_U64("cluster", c->wrong_cluster_id),
	      BPX_LF_U64("this_cluster", d.cfg.cluster_id),
	      BPX_LF_U64("interval_s", CTL_LOG_INTERVAL_NS / 1000000000ull),
	      BPX_LF_STR("hint", "a client or replica with another config?"));
}

/* Frames without a valid cluster-key tag, as report_wrong_cluster: at
 * most one line every CTL_LOG_INTERVAL_NS, with the count and the latest
 * one's source. */
static void report_bad_mac(uint64_t now)
{
	const struct dp_counters *c = &d.replica->ctr;
	uint64_t n = c->drops[BPX_WIRE_BAD_MAC];
	struct ctl_ratelimit_line l;
	bool due = n > d.bad_mac_seen
			   ? ctl_ratelimit_event(&d.bad_mac_log, 0, 0,
						 n - d.bad_mac_seen, now, &l)
			   : ctl_ratelimit_due(&d.bad_mac_log, now, &l);
	d.bad_mac_seen = n;
	if (!due)
		return;
	char from[32];
	ctl_log_addr((uint32_t)(c->bad_mac_src >> 16),
		     (uint16_t)(c->bad_mac_src & 0xffff), from, sizeof(from));
	EVENT(CTL_LOG_DP, RTE_LOG_WARNING, "bad_mac",
	      BPX_LF_STR("plane", "data"), BPX_LF_U64("count", l.count),
	      BPX_LF_STR("from", from),
	      BPX_LF_U64("interval_s", CTL_LOG_INTERVAL_NS / 1000000000ull),
	      BPX_LF_STR("hint", "a member with another key_file, or none?"));
}

static unsigned first_worker(void)
{
	unsigned id;
	RTE_LCORE_FOREACH_WORKER(id)
		return id;
	return RTE_MAX_LCORE;
}

/* The worker never logs; a worker that stops polling (descheduled, or stuck
 * in a call) shows here, once when it stops and once when it goes on. */
#define WORKER_STALL_TICKS 3 /* x 100 ms */

/* Returns whether the worker polls (what systemd's watchdog is fed on). */
static bool watch_worker(void)
{
	static uint64_t last_loops, still_ticks;
	uint64_t loops = d.worker_loops;
	if (loops != last_loops) {
		if (still_ticks >= WORKER_STALL_TICKS)
			EVENT(CTL_LOG_DP, RTE_LOG_NOTICE, "worker_resumed",
			      BPX_LF_U64("stalled_ms", still_ticks * 100));
		last_loops = loops;
		still_ticks = 0;
		return true;
	}
	if (++still_ticks == WORKER_STALL_TICKS)
		EVENT(CTL_LOG_DP, RTE_LOG_WARNING, "worker_stalled",
		      BPX_LF_U64("stalled_ms", WORKER_STALL_TICKS * 100));
	return still_ticks < WORKER_STALL_TICKS;
}

/* ---- systemd (notify.h): READY=1 once joined, STATUS= per role ---- */

static struct dp_notify sd;

/* Joined: leading, or following a leader it knows. */
static bool joined(enum px_role role)
{
	return role == PX_ROLE_LEADER ||
	       (role == PX_ROLE_FOLLOWER &&
		px_known_leader(d.replica->px) != PX_REPLICA_NONE);
}

static void notify_role(enum px_role role)
{
	static const char *const roles[] = { "follower", "candidate", "leader",
					     "recovering" };
	static bool ready;
	static int last_role = -1;
	bool now_ready = !ready && joined(role);
	if (!now_ready && (int)role == last_role)
		return;
	char text[160];
	snprintf(text, sizeof(text), "%sSTATUS=member %d of cluster %u: %s%s",
		 now_ready ? "READY=1\n" : "", d.o.id, d.cfg.cluster_id,
		 roles[role], ready || now_ready ? "" : " (joining)");
	dp_notify_send(&sd, text);
	ready |= now_ready;
	last_role = (int)role;
}

static void wait_for_signal(void)
{
	uint64_t ticks = 0, next = mono_ns();
	/* How the worker started: durable replicas never recover. */
	bool recovering = !d.o.bootstrap && !durable();
	while (!force_quit) {
		next += 100000000ull; /* a tick: 100 ms */
		uint64_t now = mono_ns();
		if (next < now)
			next = now; /* late (stopped, or a slow restart) */
		sleep_until_ns(next);
		ticks++;
		dp_notify_watchdog(&sd, mono_ns(), watch_worker());
		check_link_faults();
		check_links();
		report_wrong_cluster(mono_ns());
		report_snapshots();
		report_bad_mac(mono_ns());
		if (durable())
			report_durable();
		if (d.ctl_running)
			ctl_daemon_print_log(&d.ctl);
		/* A plain read of the worker's role: at worst a tick late. */
		enum px_role role = px_role(d.replica->px);
		notify_role(role);
		if (recovering && role != PX_ROLE_RECOVERING) {
			EVENT(CTL_LOG_PAXOS, RTE_LOG_NOTICE, "recovery_end",
			      BPX_LF_STR("role", role == PX_ROLE_LEADER ? "leader"
								  : "voting"),
			      BPX_LF_U64("applied", px_applied_index(d.replica->px)));
			recovering = false;
		}
		if (d.o.stats_interval_s > 0 &&
		    ticks % (10ull * d.o.stats_interval_s) == 0)
			print_stats();
	}
	dp_notify_send(&sd, "STOPPING=1");
}

static void shutdown_all(void)
{
	uint16_t port;
	force_quit = true;
	rte_eal_mp_wait_lcore();
	bypaxd_durable_close(&d.durable);
	if (d.ctl_running)
		ctl_daemon_stop(&d.ctl);
	/* After the admin socket is gone (ctl_daemon_stop), not before. */
	ctl_claim_release(&d.claim);
	RTE_ETH_FOREACH_DEV(port) {
		rte_eth_dev_stop(port);
		rte_eth_dev_close(port);
	}
	if (d.replica != NULL) {
		dp_replica_free(d.replica);
		rte_free(d.replica);
	}
	if (d.sm != NULL)
		d.sm_ops->destroy(d.sm);
	dp_sm_unload(d.sm_dl);
	rte_mempool_free(d.pool);
	bypaxd_restore_free(&d.restore);
}

static void admin_path(char *path, size_t cap)
{
	if (d.o.admin_socket != NULL)
		snprintf(path, cap, "%s", d.o.admin_socket);
	else
		(void)bpx_admin_socket_path(d.cfg.cluster_id, (unsigned)d.o.id,
					    path, cap);
}

/* /metrics: the worker's counters, read as telemetry_stats reads them. */
static void worker_metrics(void *arg, struct ctl_metrics_worker *w)
{
	(void)arg;
	dp_metrics_read(d.replica, d.pool, w);
}

static int start_control(char *err, size_t len)
{
	int static_leader = d.o.no_control ? d.o.leader : -1;
	int rc = ctl_daemon_init(&d.ctl, &d.cfg, (uint8_t)d.o.id, static_leader,
				 &d.claim, &force_quit, err, len);
	d.ctl_running = rc == 0; /* ctl_daemon_stop undoes a partial init */
	if (rc != 0)
		return rc;
	dp_replica_attach_control(d.replica, d.ctl.to_worker,
				  d.ctl.from_worker);
	d.ctl.snapshot_buf = d.replica->snap.send_buf;
	d.ctl.worker_metrics = worker_metrics;
	return ctl_daemon_start(&d.ctl, err, len);
}

/* [cluster] key_file: read here, by bypaxd alone (clients need no key).
 * A bad file stops the start with its name and the problem. */
static int load_cluster_key(char *err, size_t len)
{
	int rc = bpx_config_load_key(&d.cfg, err, len);
	if (rc == 0 && d.cfg.key.enabled && bpx_auth_init() != 0) {
		snprintf(err, len, "%s: [cluster] key_file: cannot initialise "
			 "libsodium", d.o.config);
		rc = -BPX_EIO;
	}
	return rc;
}

/* The default admin socket's directory: systemd makes it
 * (RuntimeDirectory=bypax); by hand, bypaxd does, readable by all so that
 * the socket's own mode (0660) decides who may connect. */
static int make_run_dir(char *err, size_t len)
{
	const char *dir = bpx_run_dir();
	if (d.o.admin_socket != NULL || mkdir(dir, 0755) == 0 ||
	    errno == EEXIST)
		return 0;
	snprintf(err, len, "admin socket directory %s: %s (run as root, set "
		 "BYPAX_RUN_DIR, or pass --admin-socket PATH)", dir,
		 strerror(errno));
	return -BPX_EIO;
}

/* Before the EAL: the configuration, then the claim on this member. */
static int claim_member(char *err, size_t len)
{
	int rc = bpx_config_load(d.o.config, &d.cfg, err, len);
	rc = rc ? rc : load_cluster_key(err, len);
	if (rc != 0)
		return rc;
	if (d.o.id >= d.cfg.member_count) {
		snprintf(err, len, "--id %d: %s has members 0..%u", d.o.id,
			 d.o.config, d.cfg.member_count - 1);
		return -BPX_ECONFIG;
	}
	/* A bad file is refused before the claim, and before the EAL: its
	 * messages (an old replica still answering included) are the ones
	 * docs/deploy.md, Disaster recovery, quotes. */
	if (d.o.restore != NULL) {
		char rpath[108];
		admin_path(rpath, sizeof(rpath));
		rc = bypaxd_restore_load(&d.restore, &d.o, &d.cfg, rpath, err,
					 len);
		if (rc != 0)
			return rc;
	}
	if (durable()) {
		rc = bypaxd_durable_check(&d.cfg, &d.o, err, len);
		if (rc != 0)
			return rc;
	}
	rc = make_run_dir(err, len);
	if (rc != 0)
		return rc;
	char path[256];
	admin_path(path, sizeof(path));
	return ctl_claim_take(&d.claim, &d.cfg, (uint8_t)d.o.id, path, err,
			      len);
}

static int start(char *err, size_t len)
{
	dp_clock_init();
	ctl_ratelimit_init(&d.wrong_cluster_log, CTL_LOG_INTERVAL_NS);
	ctl_ratelimit_init(&d.bad_mac_log, CTL_LOG_INTERVAL_NS);
	d.pool = rte_pktmbuf_pool_create("bypax_mbufs", POOL_MBUFS, 256, 0,
					 RTE_MBUF_DEFAULT_BUF_SIZE,
					 (int)rte_socket_id());
	if (d.pool == NULL) {
		snprintf(err, len, "mbuf pool: %s (raise EAL -m)",
			 rte_strerror(rte_errno));
		return -BPX_ENOMEM;
	}
	int rc = setup_ports(err, len);
	rc = rc ? rc : setup_replica(err, len);
	if (rc == 0 && d.o.restore != NULL)
		rc = bypaxd_restore_install(&d.restore, d.replica, &d.o, err,
					    len);
	if (rc == 0 && d.o.restore != NULL && durable()) {
		/* The restored state is on disk before the replica votes. */
		dp_durable_installed(d.replica);
		if (d.replica->dur.failed) {
			snprintf(err, len, "%.400s", d.replica->dur.failed_text);
			rc = -BPX_EIO;
		}
	}
	rc = rc ? rc : start_control(err, len);
	if (rc == 0)
		rte_telemetry_register_cmd("/bypax/stats", telemetry_stats,
					   "bypax replica counters");
	return rc;
}

/* Every page this process maps is faulted in when it is mapped, not when
 * the worker first touches it: first-touch faults of the state machine's
 * table and the snapshot buffers stalled a worker for seconds on a loaded
 * machine (a 1M-key store's first snapshot), long enough for the others
 * to elect a new leader. Memory then costs what is allocated, at once. */
static void lock_memory(void)
{
	if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
		EVENT(CTL_LOG_DP, RTE_LOG_WARNING, "mlock_failed",
		      BPX_LF_STR("error", strerror(errno)),
		      BPX_LF_STR("hint", "pages fault in on first use, which "
				 "can stall the worker (raise RLIMIT_MEMLOCK "
				 "or grant CAP_IPC_LOCK)"));
}

/* Where the EAL's options end: the index of the first "--", or argc. */
static int eal_args_end(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0)
			return i;
	return argc;
}

/* Our options, argv[sep + 1..], are parsed from a copy, as "bypaxd ...":
 * getopt_long permutes what it parses, and the EAL parses argv after. */
static int parse_app_args(int argc, char **argv, int sep)
{
	static char *app[256];
	int n = sep < argc ? argc - sep : 1;
	if (n > (int)(sizeof(app) / sizeof(app[0]))) {
		fprintf(stderr, "bypaxd: %d arguments after '--': at most %zu\n",
			n - 1, sizeof(app) / sizeof(app[0]) - 1);
		return -1;
	}
	app[0] = (char *)"bypaxd";
	for (int i = 1; i < n; i++)
		app[i] = argv[sep + i];
	return parse_args(n, app, &d.o);
}

static bool has_arg(int argc, char **argv, const char *a, const char *b)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], a) == 0 || (b && strcmp(argv[i], b) == 0))
			return true;
	return false;
}

/* --help-eal: the EAL's own options, which it prints and exits on. */
static int eal_help(char *prog)
{
	char *args[] = { prog, (char *)"--help", NULL };
	return rte_eal_init(2, args) < 0 ? 2 : 0;
}

/* The EAL, given only its own options (before "--"). */
static int start_eal(int sep, char **argv)
{
	int ret = rte_eal_init(sep, argv);
	if (ret < 0) {
		fprintf(stderr, "bypaxd: EAL init failed: %s (see --help)\n",
			rte_strerror(rte_errno));
		return -1;
	}
	/* The EAL stops at the first word that is not one of its options. */
	if (ret + 1 < sep) {
		fprintf(stderr, "bypaxd: unexpected argument '%s' before '--'\n",
			argv[ret + 1]);
		rte_eal_cleanup();
		return -1;
	}
	return 0;
}

/* What the durable start found (bypaxd_durable.c). */
static void log_durable_start(void)
{
	const struct bypaxd_durable *du = &d.durable;
	const struct dp_wal_replay *in = &du->info;
	if (in->torn_bytes > 0)
		EVENT(CTL_LOG_PAXOS, RTE_LOG_WARNING, "wal_torn_tail",
		      BPX_LF_STR("file", in->torn_file),
		      BPX_LF_U64("offset", in->torn_offset),
		      BPX_LF_U64("bytes", in->torn_bytes),
		      BPX_LF_STR("note", "the last group commit, cut short by "
				 "a crash before its sync: never acted on"));
	EVENT(CTL_LOG_PAXOS, RTE_LOG_NOTICE, "durable_start",
	      BPX_LF_STR("dir", d.cfg.members[d.o.id].wal_dir),
	      BPX_LF_U64("snapshot_index", du->snapshot_index),
	      BPX_LF_U64("records", in->records),
	      BPX_LF_U64("segments", in->segments),
	      BPX_LF_U64("commit", px_commit_index(d.replica->px)),
	      BPX_LF_U64("promised",
			 px_ballot_round(px_promised_ballot(d.replica->px))),
	      BPX_LF_STR("kind", in->records > 0 || du->had_snapshot
					 ? "replayed: votes at once"
					 : "new member of a new cluster"));
}

static void log_started(void)
{
	const struct bpx_member *me = &d.cfg.members[d.o.id];
	char addr[32], version[48];
	ctl_log_addr(me->data.ip, me->data.port, addr, sizeof(addr));
	snprintf(version, sizeof(version), "%s", BPX_VERSION);
	EVENT(CTL_LOG_DP, RTE_LOG_NOTICE, "started",
	      BPX_LF_STR("version", version),
	      BPX_LF_U64("cluster", d.cfg.cluster_id),
	      BPX_LF_U64("members", d.cfg.member_count),
	      BPX_LF_U64("ports", d.ports), BPX_LF_STR("address", addr));
	if (durable())
		log_durable_start();
	else if (!d.o.bootstrap)
		EVENT(CTL_LOG_PAXOS, RTE_LOG_NOTICE, "recovery_start",
		      BPX_LF_STR("reason", "started without --bootstrap: "
				 "recovers from the others before it votes"));
}

int main(int argc, char **argv)
{
	d.claim.lock_fd = d.claim.hb_fd = -1; /* nothing held yet */
	int sep = eal_args_end(argc, argv);
	/* Neither needs the EAL, a config, hugepages or root. */
	if (has_arg(argc, argv, "--version", NULL)) {
		printf("bypaxd %s\n", BPX_VERSION);
		return 0;
	}
	if (has_arg(argc, argv, "--help-eal", NULL))
		return eal_help(argv[0]);
	if (sep == argc && has_arg(argc, argv, "--help", "-h")) {
		usage(stdout);
		return 0;
	}
	if (parse_app_args(argc, argv, sep) != 0)
		return 2;
	char err[512] = "";
	if (dp_notify_open(&sd, err, sizeof(err)) != 0) {
		fprintf(stderr, "bypaxd: %s\n", err);
		return 2;
	}
	int rc = claim_member(err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "bypaxd: %s\n", err[0] ? err : bpx_strerror(rc));
		bypaxd_restore_free(&d.restore);
		return rc == -BPX_EIO ? 1 : 2;
	}
	if (start_eal(sep, argv) != 0) {
		ctl_claim_release(&d.claim);
		bypaxd_restore_free(&d.restore);
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	lock_memory();
	rc = start(err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "bypaxd: %s\n", err[0] ? err : bpx_strerror(rc));
		shutdown_all();
		rte_eal_cleanup();
		return rc == -BPX_ECONFIG || rc == -BPX_ENOENT ? 2 : 1;
	}
	log_started();
	unsigned worker = first_worker();
	if (worker == RTE_MAX_LCORE) {
		worker_main(NULL); /* one lcore: poll here until a signal */
	} else {
		rte_eal_remote_launch(worker_main, NULL, worker);
		wait_for_signal();
	}
	shutdown_all();
	rte_eal_cleanup();
	dp_notify_close(&sd);
	EVENT(CTL_LOG_DP, RTE_LOG_NOTICE, "stopped",
	      BPX_LF_STR("reason", d.exit_status != 0 ? "wal_failed"
						      : "signal"));
	return d.exit_status;
}
