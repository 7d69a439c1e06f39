/* bypax-fwd: the packet-handling limit of the ports bypax runs on. The same
 * net_ring mesh as bypax-cluster (or real ports), but no consensus: a
 * generator keeps N frames of a bypax request's size in flight and a
 * forwarder sends every frame it receives straight back, rx burst to tx
 * burst, without reading it (testpmd's io mode). Reports packets/s and the
 * forwarder's cycles per packet from TSC accounting of busy versus idle
 * polls, the figure bypax-cluster's cycles per op is divided by.
 *
 *   bypax-fwd [EAL options] -- [--value-bytes N] [--inflight N] [--duration S]
 *                              [--ports G,F | --ports F] [--json FILE]
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "bypax/kv.h"
#include "bypax/wire.h"
#include "dp.h"
#include "ports.h"

#define FWD_POOL_MBUFS 16383u
#define FWD_BURST 32u
#define FWD_INFLIGHT_MAX 8192u
/* A generator that hears nothing for this long assumes its frames were
 * lost (a real NIC may drop) and sends fresh ones. */
#define FWD_LOST_NS 10000000ull

struct fwd_opts {
	uint32_t value_bytes;
	uint32_t frame_bytes; /* 0: a bypax REQUEST carrying value_bytes */
	uint32_t inflight;
	double duration_s;
	int gen_port;         /* -1: no generator (traffic comes from outside) */
	int fwd_port;         /* -1: the in-process net_ring mesh */
	const char *json_path;
};

/* One side's port, queues and counters. */
struct side {
	uint16_t port;
	uint16_t rxq;
	uint16_t txq;
	uint64_t packets;     /* received (and sent back, for the forwarder) */
	uint64_t dropped;     /* tx refused: freed */
	uint64_t busy_cycles;
	uint64_t idle_cycles;
	uint64_t polls;
	uint64_t idle_polls;
};

struct fwd {
	struct fwd_opts o;
	struct rte_mempool *pool;
	struct dp_ring_mesh mesh;
	bool ring;
	struct side gen, fw;
	uint8_t frame[BPX_FRAME_MAX];
	uint16_t frame_len;
	uint64_t gen_sent;
	uint64_t gen_last_rx_ns;
	uint64_t tsc_hz;
	volatile bool stop;
};

static volatile bool force_quit;

static void on_signal(int sig)
{
	(void)sig;
	force_quit = true;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bypax-fwd [EAL options] -- [options]\n"
		"Forwards frames rx burst -> tx burst with no consensus and no\n"
		"parsing (testpmd io mode), to measure what the ports themselves\n"
		"cost: packets/s and the forwarder's cycles per packet.\n"
		"  --value-bytes N   frames the size of a bypax REQUEST with a KV PUT\n"
		"                    of N value bytes, 0..1024 (default 16)\n"
		"  --frame-bytes N   or frames of exactly N bytes, 60..1514\n"
		"  --inflight N      frames the generator keeps in flight (default 256)\n"
		"  --duration S      seconds (default 3)\n"
		"  --ports G,F       real ports (EAL port ids, e.g. two PCI ports cabled\n"
		"                    together): the generator on G, the forwarder on F\n"
		"  --ports F         forward only, on port F (traffic from outside)\n"
		"                    (default: the in-process net_ring mesh)\n"
		"  --json FILE       write the report as JSON\n"
		"  --help            this text; --help-eal: the EAL's options\n"
		"  --version         print the version and exit\n"
		"Lcores: the forwarder takes the first worker lcore, the generator the\n"
		"main lcore; with one lcore they share it (accounted apart).\n");
}


static int parse_ports(const char *s, struct fwd_opts *o)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%s", s);
	char *comma = strchr(buf, ',');
	uint64_t a, b;
	if (comma == NULL) {
		if (dp_parse_u64("bypax-fwd", "--ports", buf, 0, RTE_MAX_ETHPORTS - 1, &a) != 0)
			return -1;
		o->gen_port = -1;
		o->fwd_port = (int)a;
		return 0;
	}
	*comma = '\0';
	if (dp_parse_u64("bypax-fwd", "--ports", buf, 0, RTE_MAX_ETHPORTS - 1, &a) != 0 ||
	    dp_parse_u64("bypax-fwd", "--ports", comma + 1, 0, RTE_MAX_ETHPORTS - 1, &b) != 0)
		return -1;
	if (a == b) {
		fprintf(stderr, "bypax-fwd: --ports G,F needs two ports\n");
		return -1;
	}
	o->gen_port = (int)a;
	o->fwd_port = (int)b;
	return 0;
}

static int parse(int argc, char **argv, struct fwd_opts *o)
{
	static const struct option opts[] = {
		{ "value-bytes", 1, 0, 'v' }, { "frame-bytes", 1, 0, 'f' },
		{ "inflight", 1, 0, 'n' }, { "duration", 1, 0, 'd' },
		{ "ports", 1, 0, 'p' }, { "json", 1, 0, 'j' },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	*o = (struct fwd_opts){ .value_bytes = 16, .inflight = 256,
				.duration_s = 3, .gen_port = -1,
				.fwd_port = -1 };
	int c;
	uint64_t v = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int e = 0;
		switch (c) {
		case 'v': e = dp_parse_u64("bypax-fwd", "--value-bytes", optarg, 0, BPX_KV_VALUE_BYTES_MAX, &v); o->value_bytes = (uint32_t)v; break;
		case 'f': e = dp_parse_u64("bypax-fwd", "--frame-bytes", optarg, 60, 1514, &v); o->frame_bytes = (uint32_t)v; break;
		case 'n': e = dp_parse_u64("bypax-fwd", "--inflight", optarg, 1, FWD_INFLIGHT_MAX, &v); o->inflight = (uint32_t)v; break;
		case 'd': e = dp_parse_u64("bypax-fwd", "--duration", optarg, 1, 86400, &v); o->duration_s = (double)v; break;
		case 'p': e = parse_ports(optarg, o); break;
		case 'j': o->json_path = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
		if (e)
			return -1;
	}
	return 0;
}

/* The frame every generated packet carries: a well-formed bypax REQUEST
 * with a KV PUT of value_bytes, as a client of the cluster would send, or
 * a padded one of exactly frame_bytes. */
static int build_frame(struct fwd *f)
{
	uint8_t cmd[BPX_KV_CMD_BYTES_MAX];
	uint8_t value[BPX_KV_VALUE_BYTES_MAX];
	memset(value, 'a', sizeof(value));
	int n = bpx_kv_encode(cmd, sizeof(cmd), BPX_KV_PUT, "k000001", 7, value,
			      f->o.value_bytes, NULL, 0);
	if (n < 0)
		return -1;
	struct px_msg m = { .type = PX_MSG_REQUEST, .from = PX_TO_CLIENT,
			    .to = 0, .client_id = 1, .seq = 1, .value = cmd,
			    .value_len = (uint32_t)n };
	int len = bpx_wire_encode(f->frame + BPX_FRAME_HEADER_BYTES,
				  BPX_WIRE_PAYLOAD_MAX, 1, &m);
	if (len < 0)
		return -1;
	struct bpx_endpoint src = { .mac = { 2, 0, 0, 0, 1, 0 },
				    .ip = (10u << 24) | (1u << 8) | 1,
				    .port = 9100 };
	struct bpx_endpoint dst = { .mac = { 2, 0, 0, 0, 0, 0 },
				    .ip = (10u << 24) | 1, .port = 9000 };
	uint16_t payload = (uint16_t)len;
	if (f->o.frame_bytes > 0) {
		if (f->o.frame_bytes < BPX_FRAME_HEADER_BYTES + 1u)
			return -1;
		payload = (uint16_t)(f->o.frame_bytes - BPX_FRAME_HEADER_BYTES);
	}
	bpx_frame_write_headers(f->frame, &src, &dst, payload, 0);
	f->frame_len = (uint16_t)(BPX_FRAME_HEADER_BYTES + payload);
	return 0;
}

static uint16_t make_packets(struct fwd *f, struct rte_mbuf **pkts,
			     uint16_t want)
{
	if (rte_pktmbuf_alloc_bulk(f->pool, pkts, want) != 0)
		return 0;
	for (uint16_t i = 0; i < want; i++)
		memcpy(rte_pktmbuf_append(pkts[i], f->frame_len), f->frame,
		       f->frame_len);
	return want;
}

/* Sends what it can; frees the rest, counted. */
static void send_all(struct side *s, struct rte_mbuf **pkts, uint16_t n)
{
	uint16_t sent = 0;
	for (int tries = 0; sent < n && tries < 8; tries++)
		sent += rte_eth_tx_burst(s->port, s->txq, pkts + sent,
					 (uint16_t)(n - sent));
	if (sent < n) {
		rte_pktmbuf_free_bulk(pkts + sent, n - sent);
		s->dropped += n - sent;
	}
}

/* The forwarder: io mode, no parsing. */
static void fwd_poll(struct side *s)
{
	struct rte_mbuf *pkts[FWD_BURST];
	uint64_t t0 = rte_rdtsc();
	uint16_t n = rte_eth_rx_burst(s->port, s->rxq, pkts, FWD_BURST);
	if (n > 0)
		send_all(s, pkts, n);
	uint64_t spent = rte_rdtsc() - t0;
	s->polls++;
	if (n > 0) {
		s->packets += n;
		s->busy_cycles += spent;
	} else {
		s->idle_cycles += spent;
		s->idle_polls++;
	}
}

/* The generator: whatever comes back goes out again, and frames are added
 * until inflight are out (again after a loss). */
static void gen_poll(struct fwd *f)
{
	struct side *s = &f->gen;
	struct rte_mbuf *pkts[FWD_BURST];
	uint64_t t0 = rte_rdtsc();
	uint16_t n = rte_eth_rx_burst(s->port, s->rxq, pkts, FWD_BURST);
	uint64_t now = dp_now_ns();
	if (n > 0) {
		s->packets += n;
		f->gen_last_rx_ns = now;
		send_all(s, pkts, n);
	} else if (now - f->gen_last_rx_ns > FWD_LOST_NS) {
		f->gen_sent = s->packets; /* whatever was out is lost */
		f->gen_last_rx_ns = now;
	}
	f->gen_sent += n;
	uint64_t out = f->gen_sent - s->packets;
	if (!f->stop && out < f->o.inflight) {
		uint64_t want = f->o.inflight - out;
		uint16_t k = make_packets(f, pkts, (uint16_t)(want < FWD_BURST
								      ? want
								      : FWD_BURST));
		if (k > 0) {
			send_all(s, pkts, k);
			f->gen_sent += k;
		}
	}
	uint64_t spent = rte_rdtsc() - t0;
	s->polls++;
	if (n > 0)
		s->busy_cycles += spent;
	else
		s->idle_cycles += spent;
}

static int fwd_worker(void *arg)
{
	struct fwd *f = arg;
	while (!f->stop)
		fwd_poll(&f->fw);
	return 0;
}

static int setup_ports(struct fwd *f, char *err, size_t len)
{
	if (f->o.fwd_port < 0) {
		f->ring = true;
		int rc = dp_ring_mesh_create(&f->mesh, 2, f->pool, err, len);
		if (rc)
			return rc;
		/* Endpoint 0 generates, 1 forwards; TX queue j feeds ring j. */
		f->gen = (struct side){ .port = f->mesh.ports[0], .txq = 1 };
		f->fw = (struct side){ .port = f->mesh.ports[1], .txq = 0 };
		return 0;
	}
	int ports[2] = { f->o.gen_port, f->o.fwd_port };
	for (int i = 0; i < 2; i++) {
		if (ports[i] < 0)
			continue;
		if (!rte_eth_dev_is_valid_port((uint16_t)ports[i])) {
			snprintf(err, len, "port %d does not exist (%u ports "
				 "probed: give -a BDF)", ports[i],
				 rte_eth_dev_count_avail());
			return -BPX_ECONFIG;
		}
		int rc = dp_port_start((uint16_t)ports[i], 1, 1, f->pool, err,
				       len);
		if (rc)
			return rc;
	}
	f->gen = (struct side){ .port = (uint16_t)(f->o.gen_port < 0
							  ? 0
							  : f->o.gen_port) };
	f->fw = (struct side){ .port = (uint16_t)f->o.fwd_port };
	return 0;
}

static const char *mode_name(const struct fwd *f)
{
	if (f->ring)
		return "net_ring";
	return f->o.gen_port < 0 ? "port (forward only)" : "ports";
}

static void report(struct fwd *f, double secs)
{
	const struct side *w = &f->fw;
	double pps = secs > 0 ? (double)w->packets / secs : 0;
	double cpp = w->packets ? (double)w->busy_cycles / (double)w->packets
				: 0;
	double total = (double)(w->busy_cycles + w->idle_cycles);
	double busy = total > 0 ? (double)w->busy_cycles / total : 0;
	double gcpp = f->gen.packets ? (double)f->gen.busy_cycles /
					       (double)f->gen.packets
				     : 0;
	printf("\nbypax-fwd: %s, %u-byte frames, %u in flight, lcores %u\n",
	       mode_name(f), f->frame_len, f->o.inflight, rte_lcore_count());
	printf("  forwarded       %" PRIu64 " packets in %.2f s = %.0f "
	       "packets/s\n", w->packets, secs, pps);
	double burst = w->polls ? (double)w->packets /
					  (double)(w->polls - w->idle_polls)
				: 0;
	printf("  cycles/packet   %.1f forwarder (busy polls; busy %.0f%% of its "
	       "time), %.1f generator\n", cpp, 100.0 * busy, gcpp);
	printf("  burst           %.1f packets per busy rx burst (of %u)\n",
	       burst, FWD_BURST);
	if (w->dropped + f->gen.dropped > 0)
		printf("  dropped         %" PRIu64 " (tx full)\n",
		       w->dropped + f->gen.dropped);
	if (f->o.json_path == NULL)
		return;
	FILE *j = fopen(f->o.json_path, "w");
	if (j == NULL) {
		perror(f->o.json_path);
		return;
	}
	fprintf(j, "{\"mode\":\"%s\",\"frame_bytes\":%u,\"value_bytes\":%u,"
		"\"inflight\":%u,\"lcores\":%u,\"seconds\":%.4f,"
		"\"packets\":%" PRIu64 ",\"packets_per_s\":%.1f,"
		"\"fwd_cycles_per_packet\":%.2f,\"fwd_busy_frac\":%.4f,"
		"\"gen_cycles_per_packet\":%.2f,\"dropped\":%" PRIu64 ","
		"\"burst_avg\":%.2f,"
		"\"tsc_hz\":%" PRIu64 "}\n",
		mode_name(f), f->frame_len, f->o.value_bytes, f->o.inflight,
		rte_lcore_count(), secs, w->packets, pps, cpp, busy, gcpp,
		w->dropped + f->gen.dropped, burst, f->tsc_hz);
	fclose(j);
}

static int run(struct fwd *f)
{
	char err[256] = "";
	dp_clock_init();
	f->tsc_hz = rte_get_tsc_hz();
	if (build_frame(f) != 0) {
		fprintf(stderr, "bypax-fwd: cannot build a %u-byte frame\n",
			f->o.frame_bytes);
		return -1;
	}
	f->pool = rte_pktmbuf_pool_create("fwd_mbufs", FWD_POOL_MBUFS, 256, 0,
					  RTE_MBUF_DEFAULT_BUF_SIZE,
					  (int)rte_socket_id());
	int rc = f->pool ? 0 : -BPX_ENOMEM;
	if (rc)
		snprintf(err, sizeof(err), "mbuf pool: %s (raise EAL -m)",
			 rte_strerror(rte_errno));
	rc = rc ? rc : setup_ports(f, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "bypax-fwd: %s\n", err);
		return -1;
	}
	unsigned worker = rte_get_next_lcore(-1, 1, 0);
	bool shared = worker >= RTE_MAX_LCORE;
	if (!shared)
		rte_eal_remote_launch(fwd_worker, f, worker);
	bool generate = f->ring || f->o.gen_port >= 0;
	uint64_t start = dp_now_ns(), end = start + (uint64_t)(f->o.duration_s *
							       1e9);
	f->gen_last_rx_ns = start;
	while (!force_quit && dp_now_ns() < end) {
		if (generate)
			gen_poll(f);
		if (shared)
			fwd_poll(&f->fw);
	}
	double secs = (double)(dp_now_ns() - start) / 1e9;
	f->stop = true;
	if (!shared)
		rte_eal_wait_lcore(worker);
	report(f, secs);
	if (f->ring) {
		dp_ring_mesh_close(&f->mesh);
	} else {
		for (int p = 0; p < 2; p++) {
			int id = p ? f->o.fwd_port : f->o.gen_port;
			if (id >= 0) {
				rte_eth_dev_stop((uint16_t)id);
				rte_eth_dev_close((uint16_t)id);
			}
		}
	}
	unsigned in_use = rte_mempool_in_use_count(f->pool);
	rte_mempool_free(f->pool);
	if (f->ring && in_use != 0) {
		fprintf(stderr, "bypax-fwd: %u mbufs not returned\n", in_use);
		return -1;
	}
	return f->fw.packets > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	int early_rc;
	if (dp_early_option(argc, argv, "bypax-fwd", usage, &early_rc))
		return early_rc;
	int ret = rte_eal_init(argc, argv);
	if (ret < 0) {
		fprintf(stderr, "bypax-fwd: EAL init failed: %s\n",
			rte_strerror(rte_errno));
		return 2;
	}
	argc -= ret;
	argv += ret;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	static struct fwd f;
	if (parse(argc, argv, &f.o) != 0) {
		rte_eal_cleanup();
		return 2;
	}
	int rc = run(&f);
	printf("bypax-fwd: %s\n", rc == 0 ? "OK" : "FAILED");
	rte_eal_cleanup();
	return rc == 0 ? 0 : 1;
}
