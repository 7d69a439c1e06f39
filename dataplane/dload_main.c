/* bypax-dpdk-load: a DPDK load generator for a cluster of bypaxd processes,
 * the deployed shape (docs/performance.md, "The deployed shape"). Its
 * client lanes are loadgen.c's (the client engine's sessions, redirects,
 * retries and deadlines, as in bypax-cluster); here they send on DPDK ports
 * of this process's own, one per member (a net_memif link is point to
 * point), instead of a net_ring mesh. bypax-load stays the kernel-socket
 * client: it links no DPDK (test no-dpdk).
 *
 *   bypax-dpdk-load [EAL options] -- --config FILE [--lanes N] [--duration S]
 *
 * The leader's cycles per op come from its /metrics page (the config's
 * metrics keys): bypax_worker_busy_cycles_total over
 * bypax_requests_applied_total, both read at the start and at the end of
 * the measured window. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "dp.h"
#include "ports.h"

#define PROG "bypax-dpdk-load"
#define IDLE_POLLS_BEFORE_SLEEP 64u
#define LINK_WAIT_NS 10000000000ull /* memif peers connect in ms; 10 s */
#define DRAIN_NS 2000000000ull	    /* answers still in flight at the end */
#define LANES_MAX 16384u
#define METRICS_PAGE_BYTES (512u << 10)
#define METRICS_TIMEOUT_S 2

static volatile bool force_quit;

static void on_signal(int sig)
{
	(void)sig;
	force_quit = true;
}

struct dload_opts {
	const char *config;
	const char *json_path;
	int route_port[PX_REPLICAS_MAX]; /* -1: port M, or 0 with one port */
	uint32_t lanes, value_bytes, get_pct, keys;
	uint32_t duration_s, warmup_ms, idle_sleep_us, timeout_ms;
	uint32_t progress_s; /* 0: no progress lines */
	uint32_t pack;       /* requests per frame at most (1: unpacked) */
	uint64_t rate_per_s;
	struct bpx_endpoint self;
};

/* One member's /metrics figures at one moment. */
struct member_sample {
	bool ok;
	bool leader;
	double busy_cycles;
	double requests_applied;
};

struct dload {
	struct dload_opts o;
	struct bpx_config cfg;
	struct rte_mempool *pool;
	struct dp_loadgen g;
	uint16_t ports;
	uint64_t next_progress_ns, progress_completed;
	uint64_t start_ns;
	struct member_sample before[PX_REPLICAS_MAX], after[PX_REPLICAS_MAX];
};

/* What the run measured, for the result line and the JSON. */
struct dload_report {
	double seconds, ops_per_s;
	uint64_t window_acked, acked, failed, issued, resends, redirects;
	uint64_t p50_ns, p99_ns, p999_ns, max_ns, latency_samples;
	int leader;		     /* -1: no metrics from the leader */
	double leader_cycles_per_op; /* 0 when leader < 0 */
	double leader_ops;	     /* its requests applied in the window */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [EAL options] -- --config FILE [options]\n"
		"Loads a cluster of bypaxd processes from DPDK ports of its own:\n"
		"  one per member, e.g. --vdev=net_memif0,role=client,socket=S0\n"
		"  for member 0 where bypaxd 0 serves a memif socket S0 and sends\n"
		"  replies to clients there (--client-port). Client lanes (one\n"
		"  session each, one request outstanding) PUT (and GET) keys\n"
		"  k000000.. and report ops/s, p50/p99 latency, acknowledged and\n"
		"  failed requests and, from the leader's /metrics (the config's\n"
		"  metrics keys), the leader's busy cycles per committed op.\n"
		"Options:\n"
		"  --config FILE       the cluster's configuration (docs/config.md)\n"
		"  --route M=P         member M through port P (default: port M,\n"
		"                      or port 0 when there is one port)\n"
		"  --lanes N           client lanes, 1..%u (default 64)\n"
		"  --duration S        measured seconds, 1..86400 (default 5)\n"
		"  --warmup-ms N       load before the measured window, left out\n"
		"                      of every figure (default 500)\n"
		"  --value-bytes N     PUT value size, 0..1024 (default 16)\n"
		"  --get-pct N         percent of GETs, 0..100 (default 0)\n"
		"  --keys N            key space, 1..10000000 (default 1000)\n"
		"  --rate OPS          open loop: OPS requests/s on a fixed\n"
		"                      schedule (default 0: closed loop)\n"
		"  --timeout-ms N      per attempt before a retry (default 100)\n"
		"  --pack N            requests per frame to a member, 1..%u\n"
		"                      (default %u: MULTI_REQUEST frames,\n"
		"                      docs/wire.md; 1: a REQUEST per frame)\n"
		"  --mac M --ip A --udp-port P   this generator's address\n"
		"                      (default 02:00:00:00:fe:01 10.254.0.1 9900)\n"
		"  --idle-sleep-us N   sleep N us after idle polls (default 0)\n"
		"  --progress-s N      a progress line every N s on stderr\n"
		"                      (default 1; 0: none)\n"
		"  --json FILE         write the report as JSON\n"
		"  --help              this text; --help-eal: the EAL's options\n"
		"  --version           print the version and exit\n"
		"Exit status: 0 when requests were acknowledged and none failed,\n"
		"1 otherwise, 2 on bad arguments, configuration or ports.\n",
		LANES_MAX, BPX_WIRE_MULTI_MAX, BPX_WIRE_MULTI_MAX);
}

static int parse_route(struct dload_opts *o, const char *s)
{
	unsigned m, p;
	char tail;
	if (sscanf(s, "%u=%u%c", &m, &p, &tail) != 2 || m >= PX_REPLICAS_MAX ||
	    p >= RTE_MAX_ETHPORTS) {
		fprintf(stderr,
			PROG ": --route wants MEMBER=PORT (member "
			     "0..%u, port 0..%u), got '%s'\n",
			PX_REPLICAS_MAX - 1, RTE_MAX_ETHPORTS - 1, s);
		return -1;
	}
	o->route_port[m] = (int)p;
	return 0;
}

static int parse_mac(uint8_t mac[6], const char *s)
{
	unsigned b[6];
	char tail;
	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4],
		   &b[5], &tail) != 6) {
		fprintf(stderr,
			PROG ": --mac wants six hex bytes "
			     "(02:00:00:00:fe:01), got '%s'\n",
			s);
		return -1;
	}
	for (int i = 0; i < 6; i++) {
		if (b[i] > 0xff) {
			fprintf(stderr,
				PROG ": --mac byte %d of '%s' is over "
				     "ff\n",
				i + 1, s);
			return -1;
		}
		mac[i] = (uint8_t)b[i];
	}
	return 0;
}

static int parse_ip(uint32_t *ip, const char *s)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1) {
		fprintf(stderr, PROG ": --ip wants an IPv4 address, got '%s'\n",
			s);
		return -1;
	}
	*ip = ntohl(a.s_addr);
	return 0;
}

static void default_opts(struct dload_opts *o)
{
	*o = (struct dload_opts){ .lanes = 64,
				  .value_bytes = 16,
				  .keys = 1000,
				  .duration_s = 5,
				  .warmup_ms = 500,
				  .timeout_ms = 100,
				  .progress_s = 1,
				  .pack = BPX_WIRE_MULTI_MAX };
	for (unsigned m = 0; m < PX_REPLICAS_MAX; m++)
		o->route_port[m] = -1;
	static const uint8_t mac[6] = { 0x02, 0, 0, 0, 0xfe, 0x01 };
	memcpy(o->self.mac, mac, sizeof(mac));
	o->self.ip = 0x0afe0001u; /* 10.254.0.1 */
	o->self.port = 9900;
}

/* One numeric option: its name for the message and its bounds. */
static int parse_number(int c, const char *arg, struct dload_opts *o)
{
	uint64_t v = 0;
	int e = 0;
	switch (c) {
	case 'l':
		e = dp_parse_u64(PROG, "--lanes", arg, 1, LANES_MAX, &v);
		o->lanes = (uint32_t)v;
		break;
	case 'd':
		e = dp_parse_u64(PROG, "--duration", arg, 1, 86400, &v);
		o->duration_s = (uint32_t)v;
		break;
	case 'W':
		e = dp_parse_u64(PROG, "--warmup-ms", arg, 0, 600000, &v);
		o->warmup_ms = (uint32_t)v;
		break;
	case 'v':
		e = dp_parse_u64(PROG, "--value-bytes", arg, 0, 1024, &v);
		o->value_bytes = (uint32_t)v;
		break;
	case 'G':
		e = dp_parse_u64(PROG, "--get-pct", arg, 0, 100, &v);
		o->get_pct = (uint32_t)v;
		break;
	case 'k':
		e = dp_parse_u64(PROG, "--keys", arg, 1, 10000000, &v);
		o->keys = (uint32_t)v;
		break;
	case 'R':
		e = dp_parse_u64(PROG, "--rate", arg, 0, 1000000000, &v);
		o->rate_per_s = v;
		break;
	case 't':
		e = dp_parse_u64(PROG, "--timeout-ms", arg, 1, 60000, &v);
		o->timeout_ms = (uint32_t)v;
		break;
	case 'u':
		e = dp_parse_u64(PROG, "--udp-port", arg, 1, 65535, &v);
		o->self.port = (uint16_t)v;
		break;
	case 'i':
		e = dp_parse_u64(PROG, "--idle-sleep-us", arg, 0, 1000000, &v);
		o->idle_sleep_us = (uint32_t)v;
		break;
	case 'P':
		e = dp_parse_u64(PROG, "--progress-s", arg, 0, 3600, &v);
		o->progress_s = (uint32_t)v;
		break;
	case 'p':
		e = dp_parse_u64(PROG, "--pack", arg, 1, BPX_WIRE_MULTI_MAX, &v);
		o->pack = (uint32_t)v;
		break;
	default:
		return -1;
	}
	return e;
}

static int parse(int argc, char **argv, struct dload_opts *o)
{
	static const struct option opts[] = {
		{ "config", 1, 0, 'c' },     { "route", 1, 0, 'r' },
		{ "lanes", 1, 0, 'l' },	     { "duration", 1, 0, 'd' },
		{ "warmup-ms", 1, 0, 'W' },  { "value-bytes", 1, 0, 'v' },
		{ "get-pct", 1, 0, 'G' },    { "keys", 1, 0, 'k' },
		{ "rate", 1, 0, 'R' },	     { "timeout-ms", 1, 0, 't' },
		{ "mac", 1, 0, 'm' },	     { "ip", 1, 0, 'a' },
		{ "udp-port", 1, 0, 'u' },   { "idle-sleep-us", 1, 0, 'i' },
		{ "progress-s", 1, 0, 'P' }, { "json", 1, 0, 'j' },
		{ "pack", 1, 0, 'p' },	     { "help", 0, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	default_opts(o);
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int e = 0;
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'r':
			e = parse_route(o, optarg);
			break;
		case 'm':
			e = parse_mac(o->self.mac, optarg);
			break;
		case 'a':
			e = parse_ip(&o->self.ip, optarg);
			break;
		case 'j':
			o->json_path = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case '?':
			usage(stderr);
			return -1;
		default:
			e = parse_number(c, optarg, o);
			break;
		}
		if (e)
			return -1;
	}
	if (optind < argc) {
		fprintf(stderr,
			PROG ": unexpected argument '%s' (see --help)\n",
			argv[optind]);
		return -1;
	}
	if (o->config == NULL) {
		fprintf(stderr,
			PROG ": --config FILE is required (see --help)\n");
		return -1;
	}
	return 0;
}

/* ---- ports ---- */

static int route_of(const struct dload *L, unsigned m)
{
	if (L->o.route_port[m] >= 0)
		return L->o.route_port[m];
	return L->ports == 1 ? 0 : (int)m;
}

static int check_routes(const struct dload *L, char *err, size_t len)
{
	for (unsigned m = 0; m < PX_REPLICAS_MAX; m++) {
		if (m >= L->cfg.member_count && L->o.route_port[m] >= 0) {
			snprintf(err, len,
				 "--route %u=%d: the config has "
				 "members 0..%u only",
				 m, L->o.route_port[m],
				 L->cfg.member_count - 1u);
			return -BPX_ECONFIG;
		}
		if (m < L->cfg.member_count && route_of(L, m) >= L->ports) {
			snprintf(
				err, len,
				"member %u goes through port %d, but "
				"the EAL probed %u port(s): give one per member "
				"(--vdev=net_memifN,...) or --route %u=P",
				m, route_of(L, m), L->ports, m);
			return -BPX_ECONFIG;
		}
	}
	return 0;
}

/* Every port up (a memif client connects once its server, bypaxd, is
 * there), within LINK_WAIT_NS. */
static int wait_links(const struct dload *L, char *err, size_t len)
{
	uint64_t give_up = dp_now_ns() + LINK_WAIT_NS;
	for (uint16_t p = 0; p < L->ports; p++) {
		struct rte_eth_link link = { 0 };
		while (rte_eth_link_get_nowait(p, &link) == 0 &&
		       link.link_status != RTE_ETH_LINK_UP && !force_quit &&
		       dp_now_ns() < give_up)
			rte_delay_us_sleep(10000);
		if (link.link_status != RTE_ETH_LINK_UP) {
			char name[RTE_ETH_NAME_MAX_LEN] = "";
			rte_eth_dev_get_name_by_port(p, name);
			snprintf(err, len,
				 "port %u (%s): link not up after "
				 "%llu s: is its bypaxd running, with a memif "
				 "server on the same socket?",
				 p, name, LINK_WAIT_NS / 1000000000ull);
			return -BPX_EIO;
		}
	}
	return 0;
}

static int setup_ports(struct dload *L, char *err, size_t len)
{
	L->ports = rte_eth_dev_count_avail();
	if (L->ports == 0) {
		snprintf(err, len,
			 "no ports: give the EAL one per member, e.g. "
			 "--vdev=net_memif0,role=client,socket=PATH");
		return -BPX_ECONFIG;
	}
	int rc = check_routes(L, err, len);
	unsigned mbufs = L->ports * 4096u + L->o.lanes * 4u + 4096u;
	L->pool = rc ? NULL :
		       rte_pktmbuf_pool_create("dload_mbufs", mbufs, 256, 0,
					       RTE_MBUF_DEFAULT_BUF_SIZE,
					       (int)rte_socket_id());
	if (rc == 0 && L->pool == NULL) {
		snprintf(err, len, "cannot allocate %u mbufs (raise EAL -m)",
			 mbufs);
		return -BPX_ENOMEM;
	}
	for (uint16_t p = 0; rc == 0 && p < L->ports; p++)
		rc = dp_port_start(p, 1, 1, L->pool, err, len);
	return rc ? rc : wait_links(L, err, len);
}

static int setup_loadgen(struct dload *L, char *err, size_t len)
{
	struct dp_loadgen_config lc = {
		.lanes = L->o.lanes,
		.value_bytes = L->o.value_bytes,
		.get_pct = L->o.get_pct,
		.keys = L->o.keys,
		.timeout_ns = (uint64_t)L->o.timeout_ms * 1000000ull,
		.seed = dp_random_seed(),
		.rate_per_s = L->o.rate_per_s,
		.pack = L->o.pack,
	};
	/* Fresh client ids on every run: a session the cluster still holds
	 * from an earlier run is not this run's. */
	uint64_t base = ((lc.seed >> 20) % 0x3fffffffu + 1u) << 20;
	struct dp_loadgen *g = &L->g;
	int rc = dp_loadgen_init(g, &L->cfg, &L->o.self, base, &lc, L->pool);
	for (uint16_t p = 0; rc == 0 && p < L->ports; p++)
		rc = dp_loadgen_add_rx(g, p, 0);
	for (unsigned m = 0; rc == 0 && m < L->cfg.member_count; m++) {
		int q = dp_routes_add_txq(&g->routes, (uint16_t)route_of(L, m),
					  0);
		rc = q < 0 ? q :
			     dp_routes_add_mac(&g->routes,
					       L->cfg.members[m].data.mac,
					       (uint8_t)q);
		if (m == 0 && q >= 0)
			g->routes.default_txq = (uint8_t)q;
	}
	if (rc)
		snprintf(err, len, "load generator set-up failed: %s",
			 bpx_strerror(rc));
	return rc;
}

/* ---- the leader's /metrics ---- */

/* GET /metrics from ip:port into buf (NUL-terminated); bytes, or -1. */
static ssize_t http_get_metrics(uint32_t ip, uint16_t port, char *buf,
				size_t cap)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = { .tv_sec = METRICS_TIMEOUT_S };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(ip) };
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	ssize_t got = -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) ==
		    (ssize_t)(sizeof(req) - 1)) {
		got = 0;
		ssize_t n;
		while ((size_t)got + 1 < cap &&
		       (n = recv(fd, buf + got, cap - 1 - (size_t)got, 0)) > 0)
			got += n;
		buf[got] = '\0';
	}
	close(fd);
	return got;
}

/* The value of the sample line that starts with name (name ends in a
 * space, or in the labels and a space); false when the page lacks it. */
static bool metric_value(const char *page, const char *name, double *v)
{
	size_t n = strlen(name);
	for (const char *p = page; (p = strstr(p, name)) != NULL; p += n) {
		if (p != page && p[-1] != '\n')
			continue;
		char *end;
		*v = strtod(p + n, &end);
		return end != p + n;
	}
	return false;
}

static void sample_members(const struct dload *L, struct member_sample *s)
{
	static char page[METRICS_PAGE_BYTES];
	for (unsigned m = 0; m < L->cfg.member_count; m++) {
		const struct bpx_member *mb = &L->cfg.members[m];
		double role = 0;
		s[m] = (struct member_sample){ 0 };
		if (mb->metrics_port == 0 ||
		    http_get_metrics(mb->metrics_ip, mb->metrics_port, page,
				     sizeof(page)) <= 0)
			continue;
		s[m].ok = metric_value(page, "bypax_worker_busy_cycles_total ",
				       &s[m].busy_cycles) &&
			  metric_value(page, "bypax_requests_applied_total ",
				       &s[m].requests_applied);
		s[m].leader = metric_value(page, "bypax_role{role=\"leader\"} ",
					   &role) &&
			      role == 1;
	}
}

/* The member that led at the end and answered both times. */
static void leader_cost(const struct dload *L, struct dload_report *r)
{
	r->leader = -1;
	for (unsigned m = 0; m < L->cfg.member_count; m++) {
		const struct member_sample *a = &L->before[m],
					   *b = &L->after[m];
		double ops = b->requests_applied - a->requests_applied;
		if (!a->ok || !b->ok || !b->leader || ops <= 0)
			continue;
		r->leader = (int)m;
		r->leader_ops = ops;
		r->leader_cycles_per_op =
			(b->busy_cycles - a->busy_cycles) / ops;
	}
}

/* ---- the run ---- */

static void progress(struct dload *L, uint64_t now_ns)
{
	if (L->o.progress_s == 0 || now_ns < L->next_progress_ns)
		return;
	uint64_t done = L->g.completed;
	fprintf(stderr,
		PROG ": %.0f s: %" PRIu64 " acknowledged, %.0f ops/s "
		     "in the last %u s, %u outstanding, %" PRIu64 " failed\n",
		(double)(now_ns - L->start_ns) / 1e9, done,
		(double)(done - L->progress_completed) / L->o.progress_s,
		L->o.progress_s, dp_loadgen_outstanding(&L->g),
		L->g.errors + L->g.expired + L->g.deadlines);
	L->progress_completed = done;
	L->next_progress_ns =
		now_ns + (uint64_t)L->o.progress_s * 1000000000ull;
}

/* Polls until until_ns (or, with drain, until nothing is outstanding). */
static void poll_until(struct dload *L, uint64_t until_ns, bool drain)
{
	uint32_t idle = 0;
	for (;;) {
		uint64_t now = dp_ns_at_tsc(rte_rdtsc());
		if (force_quit || now >= until_ns ||
		    (drain && dp_loadgen_outstanding(&L->g) == 0))
			return;
		if (dp_loadgen_poll_at(&L->g, now) > 0) {
			idle = 0;
		} else if (L->o.idle_sleep_us > 0 &&
			   ++idle >= IDLE_POLLS_BEFORE_SLEEP) {
			rte_delay_us_sleep(L->o.idle_sleep_us);
			idle = 0;
		}
		progress(L, now);
	}
}

static void run(struct dload *L, struct dload_report *r)
{
	struct dp_loadgen *g = &L->g;
	L->start_ns = dp_now_ns();
	L->next_progress_ns =
		L->start_ns + (uint64_t)L->o.progress_s * 1000000000ull;
	g->record_from_ns = UINT64_MAX; /* the warm-up is not measured */
	g->issuing = true;
	poll_until(L, L->start_ns + (uint64_t)L->o.warmup_ms * 1000000ull,
		   false);
	sample_members(L, L->before);
	uint64_t t0 = dp_now_ns(), acked0 = g->completed;
	g->record_from_ns = t0;
	poll_until(L, t0 + (uint64_t)L->o.duration_s * 1000000000ull, false);
	uint64_t t1 = dp_now_ns(), acked1 = g->completed;
	g->issuing = false;
	sample_members(L, L->after);
	poll_until(L, dp_now_ns() + DRAIN_NS, true);
	*r = (struct dload_report){ 0 };
	r->seconds = (double)(t1 - t0) / 1e9;
	r->window_acked = acked1 - acked0;
	r->ops_per_s = r->seconds > 0 ? (double)r->window_acked / r->seconds :
					0;
	r->acked = g->completed;
	r->failed = g->errors + g->expired + g->deadlines +
		    dp_loadgen_outstanding(g);
	r->issued = g->issued;
	r->resends = g->resends;
	r->redirects = g->redirects;
	r->p50_ns = bpx_hist_quantile(g->hist, 0.50);
	r->p99_ns = bpx_hist_quantile(g->hist, 0.99);
	r->p999_ns = bpx_hist_quantile(g->hist, 0.999);
	r->max_ns = g->hist->max;
	r->latency_samples = g->hist->count;
	leader_cost(L, r);
}

/* ---- the report ---- */

static void print_result(const struct dload *L, const struct dload_report *r)
{
	char cost[64] = "leader=-1 leader_cycles_per_op=n/a";
	if (r->leader >= 0)
		snprintf(cost, sizeof(cost),
			 "leader=%d leader_cycles_per_op=%.0f", r->leader,
			 r->leader_cycles_per_op);
	printf("result: lanes=%u value_bytes=%u get_pct=%u seconds=%.2f "
	       "ops_per_s=%.0f p50_us=%.1f p99_us=%.1f acked=%" PRIu64
	       " failed=%" PRIu64 " %s\n",
	       L->o.lanes, L->o.value_bytes, L->o.get_pct, r->seconds,
	       r->ops_per_s, (double)r->p50_ns / 1e3, (double)r->p99_ns / 1e3,
	       r->acked, r->failed, cost);
	if (r->leader < 0)
		printf("note: no leader cycles per op: give the members "
		       "metrics keys (docs/metrics.md) so /metrics can be "
		       "read\n");
}

static void write_json(const char *path, const struct dload *L,
		       const struct dload_report *r)
{
	FILE *f = fopen(path, "w");
	if (f == NULL) {
		fprintf(stderr, PROG ": --json %s: %s\n", path,
			strerror(errno));
		return;
	}
	fprintf(f,
		"{\"lanes\":%u,\"value_bytes\":%u,\"get_pct\":%u,"
		"\"keys\":%u,\"rate_per_s\":%" PRIu64 ",\"members\":%u,"
		"\"ports\":%u,\"seconds\":%.4f,\"window_acked\":%" PRIu64 ","
		"\"ops_per_s\":%.1f,\"p50_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64
		",\"p999_ns\":%" PRIu64 ",\"max_ns\":%" PRIu64 ","
		"\"latency_samples\":%" PRIu64 ",\"acked\":%" PRIu64 ","
		"\"failed\":%" PRIu64 ",\"issued\":%" PRIu64 ","
		"\"resends\":%" PRIu64 ",\"redirects\":%" PRIu64 ","
		"\"leader\":%d,\"leader_cycles_per_op\":%.1f,"
		"\"leader_ops\":%.0f,\"tsc_hz\":%" PRIu64 ",\"warmup_ms\":%u,"
		"\"idle_sleep_us\":%u,\"pack\":%u}\n",
		L->o.lanes, L->o.value_bytes, L->o.get_pct, L->o.keys,
		L->o.rate_per_s, L->cfg.member_count, L->ports, r->seconds,
		r->window_acked, r->ops_per_s, r->p50_ns, r->p99_ns, r->p999_ns,
		r->max_ns, r->latency_samples, r->acked, r->failed, r->issued,
		r->resends, r->redirects, r->leader, r->leader_cycles_per_op,
		r->leader_ops, rte_get_tsc_hz(), L->o.warmup_ms,
		L->o.idle_sleep_us, L->o.pack);
	fclose(f);
}

static int setup(struct dload *L, char *err, size_t len)
{
	int rc = bpx_config_load(L->o.config, &L->cfg, err, len);
	rc = rc ? rc : setup_ports(L, err, len);
	return rc ? rc : setup_loadgen(L, err, len);
}

int main(int argc, char **argv)
{
	int early_rc;
	if (dp_early_option(argc, argv, PROG, usage, &early_rc))
		return early_rc;
	int ret = rte_eal_init(argc, argv);
	if (ret < 0) {
		fprintf(stderr, PROG ": EAL init failed: %s (see --help)\n",
			rte_strerror(rte_errno));
		return 2;
	}
	argc -= ret;
	argv += ret;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	static struct dload L;
	char err[512] = "";
	if (parse(argc, argv, &L.o) != 0) {
		rte_eal_cleanup();
		return 2;
	}
	dp_clock_init();
	if (setup(&L, err, sizeof(err)) != 0) {
		fprintf(stderr, PROG ": %s\n", err);
		rte_eal_cleanup();
		return 2;
	}
	struct dload_report r;
	run(&L, &r);
	print_result(&L, &r);
	if (L.o.json_path)
		write_json(L.o.json_path, &L, &r);
	dp_loadgen_free(&L.g);
	for (uint16_t p = 0; p < L.ports; p++)
		rte_eth_dev_stop(p); /* a started port is not closed */
	rte_eal_cleanup();
	return r.acked > 0 && r.failed == 0 && !force_quit ? 0 : 1;
}
