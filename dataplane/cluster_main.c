/* bypax-cluster: a whole cluster in one DPDK process on net_ring ports,
 * under load, with a report. The demo, the dpdk tests and the bench run it.
 *
 *   bypax-cluster [EAL options] -- [--replicas 3] [--requests N | --duration S] ...
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>

#include "cluster.h"

extern volatile bool cluster_force_quit;

static void on_signal(int sig)
{
	(void)sig;
	cluster_force_quit = true;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bypax-cluster [EAL options] -- [options]\n"
		"Runs a bypax cluster in one process: replicas and load generators\n"
		"on net_ring ports, then checks every replica holds the same state.\n"
		"EAL for CI: --no-huge --no-pci --no-shconf -m 512 --file-prefix X -l 0-1\n"
		"  --replicas N        replicas, 1..7 (default 3)\n"
		"  --loadgens N        load generators, 1..4 (default 1)\n"
		"  --lanes N           outstanding requests per generator (default 16)\n"
		"  --warmup-ms N       leave requests started in the first N ms out\n"
		"                      of the latency percentiles (default 0)\n"
		"  --rate OPS          open loop: start OPS requests/s in all on a\n"
		"                      fixed schedule (lanes cap what is in flight);\n"
		"                      latency counts from the scheduled time\n"
		"                      (default 0: closed loop)\n"
		"  --requests N        stop after N committed requests (default 100000)\n"
		"  --duration S        or run for S seconds instead\n"
		"  --value-bytes N     PUT value size, 0..1024 (default 16)\n"
		"  --get-pct N         percent of GETs, 0..100 (default 50)\n"
		"  --keys N            key space, 1..10000000 (default 1000)\n"
		"  --prefill           PUT every key into every store before the\n"
		"                      load (kv only; size the store with --sm-args\n"
		"                      capacity=N,bytes=B): the timed requests\n"
		"                      overwrite pre-faulted memory\n"
		"  --window N          slots in flight (default 64)\n"
		"  --batch N           requests per slot at most (default 64)\n"
		"  --leader N          replica to lead (default 0)\n"
		"  --idle-sleep-us N   sleep N us after idle polls (default 0: busy poll)\n"
		"  --garbage N         inject N malformed frames of each kind per replica\n"
		"  --pack N            requests per client frame at most, 1..64\n"
		"                      (default 64: what a lane has ready goes in\n"
		"                      MULTI_REQUEST frames; 1: a REQUEST per frame)\n"
		"  --snapshot-mb N     each replica's catch-up snapshot buffers, as\n"
		"                      bypaxd's (default 16; 0: none, and a follower\n"
		"                      that falls out of the leader's log stays behind)\n"
		"  --sm NAME           state machine: kv or ./path.so (default kv)\n"
		"  --sm-args ARGS      its create() arguments\n"
		"  --key-file PATH     sign and verify with this cluster key\n"
		"                      (docs/config.md, key_file)\n"
		"  --json FILE         write the report as JSON\n"
		"  --quiet             no progress lines\n"
		"  --help              this text; --help-eal: the EAL's options\n"
		"  --version           print the version and exit\n");
}


static int parse(int argc, char **argv, struct cluster_opts *o)
{
	static const struct option opts[] = {
		{ "replicas", 1, 0, 'r' }, { "loadgens", 1, 0, 'g' },
		{ "lanes", 1, 0, 'l' }, { "requests", 1, 0, 'n' },
		{ "duration", 1, 0, 'd' }, { "value-bytes", 1, 0, 'v' },
		{ "get-pct", 1, 0, 'G' }, { "keys", 1, 0, 'k' },
		{ "window", 1, 0, 'w' }, { "batch", 1, 0, 'b' },
		{ "leader", 1, 0, 'L' }, { "idle-sleep-us", 1, 0, 'i' },
		{ "garbage", 1, 0, 'x' }, { "sm", 1, 0, 's' },
		{ "sm-args", 1, 0, 'a' }, { "json", 1, 0, 'j' },
		{ "rate", 1, 0, 'R' }, { "warmup-ms", 1, 0, 'W' }, { "quiet", 0, 0, 'q' }, { "prefill", 0, 0, 'F' }, { "key-file", 1, 0, 'K' }, { "pack", 1, 0, 'P' }, { "snapshot-mb", 1, 0, 'M' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	*o = (struct cluster_opts){ .replicas = 3, .loadgens = 1, .lanes = 16,
				    .requests = 100000, .value_bytes = 16,
				    .get_pct = 50, .keys = 1000, .window = 64,
				    .batch = 64, .pack = BPX_WIRE_MULTI_MAX, .snapshot_mb = 16, .progress = true, .sm = "kv",
				    .sm_args = "capacity=65536" };
	int c;
	uint64_t v = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int e = 0;
		switch (c) {
		case 'r': e = dp_parse_u64("bypax-cluster", "--replicas", optarg, 1, 7, &v); o->replicas = (uint32_t)v; break;
		case 'g': e = dp_parse_u64("bypax-cluster", "--loadgens", optarg, 1, CL_LOADGENS_MAX, &v); o->loadgens = (uint32_t)v; break;
		case 'l': e = dp_parse_u64("bypax-cluster", "--lanes", optarg, 1, 4096, &v); o->lanes = (uint32_t)v; break;
		case 'n': e = dp_parse_u64("bypax-cluster", "--requests", optarg, 1, UINT32_MAX, &v); o->requests = v; break;
		case 'd': e = dp_parse_u64("bypax-cluster", "--duration", optarg, 1, 86400, &v); o->duration_s = (double)v; o->requests = 0; break;
		case 'v': e = dp_parse_u64("bypax-cluster", "--value-bytes", optarg, 0, 1024, &v); o->value_bytes = (uint32_t)v; break;
		case 'G': e = dp_parse_u64("bypax-cluster", "--get-pct", optarg, 0, 100, &v); o->get_pct = (uint32_t)v; break;
		case 'k': e = dp_parse_u64("bypax-cluster", "--keys", optarg, 1, 10000000, &v); o->keys = (uint32_t)v; break;
		case 'w': e = dp_parse_u64("bypax-cluster", "--window", optarg, 1, 4096, &v); o->window = (uint32_t)v; break;
		case 'b': e = dp_parse_u64("bypax-cluster", "--batch", optarg, 1, 1024, &v); o->batch = (uint32_t)v; break;
		case 'L': e = dp_parse_u64("bypax-cluster", "--leader", optarg, 0, 6, &v); o->leader = (uint32_t)v; break;
		case 'i': e = dp_parse_u64("bypax-cluster", "--idle-sleep-us", optarg, 0, 1000000, &v); o->idle_sleep_us = (uint32_t)v; break;
		case 'x': e = dp_parse_u64("bypax-cluster", "--garbage", optarg, 0, 100000, &v); o->garbage = (uint32_t)v; break;
		case 'R': e = dp_parse_u64("bypax-cluster", "--rate", optarg, 0, 1000000000, &v); o->rate_per_s = v; break;
		case 'W': e = dp_parse_u64("bypax-cluster", "--warmup-ms", optarg, 0, 60000, &v); o->warmup_ms = (uint32_t)v; break;
		case 'P': e = dp_parse_u64("bypax-cluster", "--pack", optarg, 1, BPX_WIRE_MULTI_MAX, &v); o->pack = (uint32_t)v; break;
		case 'M': e = dp_parse_u64("bypax-cluster", "--snapshot-mb", optarg, 0, 65536, &v); o->snapshot_mb = (uint32_t)v; break;
		case 's': o->sm = optarg; break;
		case 'a': o->sm_args = optarg; break;
		case 'j': o->json_path = optarg; break;
		case 'K': o->key_file = optarg; break;
		case 'q': o->progress = false; break;
		case 'F': o->prefill = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
		if (e)
			return -1;
	}
	if (o->leader >= o->replicas) {
		fprintf(stderr, "bypax-cluster: --leader %u is not a replica "
			"(0..%u)\n", o->leader, o->replicas - 1);
		return -1;
	}
	return 0;
}

static void print_report(const struct cluster_opts *o,
			 const struct cluster_report *r)
{
	printf("\nbypax-cluster: %u replicas, %u x %u client lanes, %u-byte "
	       "values, %u%% GET, lcores %u\n",
	       o->replicas, o->loadgens, o->lanes, o->value_bytes, o->get_pct,
	       rte_lcore_count());
	if (o->rate_per_s > 0)
		printf("  offered         %" PRIu64 " ops/s (open loop)\n",
		       o->rate_per_s);
	printf("  committed       %" PRIu64 " ops in %.2f s = %.0f ops/s\n",
	       r->completed, r->seconds,
	       r->seconds > 0 ? (double)r->completed / r->seconds : 0.0);
	printf("  latency         p50 %.1f us  p99 %.1f us  p99.9 %.1f us  "
	       "max %.1f us\n",
	       (double)r->p50_ns / 1e3, (double)r->p99_ns / 1e3,
	       (double)r->p999_ns / 1e3, (double)r->max_ns / 1e3);
	if (o->warmup_ms > 0)
		printf("                  (%" PRIu64 " requests; those started in "
		       "the first %u ms left out)\n", r->latency_samples,
		       o->warmup_ms);
	printf("  batch size      %.1f requests per slot (leader average)\n",
	       r->batch_avg);
	printf("  packets per op  %.2f (all frames sent / committed ops)\n",
	       r->packets_per_op);
	printf("  cycles per op   %.0f (busy polls, all lcores); leader %u alone "
	       "%.0f (busy %.0f%% of its time)\n",
	       r->cycles_per_op, r->leader_id, r->leader_cycles_per_op,
	       100.0 * r->leader_busy_frac);
	printf("  shared values   %" PRIu64 " frames to followers sent without "
	       "copying the value\n", r->shared_sends);
	printf("  packing         up to %u requests per client frame: %" PRIu64
	       " requests in %" PRIu64 " frames, %" PRIu64 " replies in %"
	       PRIu64 " frames\n", o->pack, r->packed_requests,
	       r->packed_frames, r->packed_replies, r->packed_reply_frames);
	if (r->stalls > 0)
		printf("  stalls          %" PRIu64 " gaps over 1 ms between "
		       "polls (%.1f ms in all, longest %.1f ms): the OS ran "
		       "something else\n", r->stalls, r->stall_ms,
		       r->stall_max_ms);
	printf("  state           %s on all %u replicas (applied %" PRIu64
	       " slots)%s\n",
	       r->states_identical ? "identical" : "DIFFERENT", o->replicas,
	       r->applied,
	       r->states_identical || r->drained ? ""
	       : ": the drain ran out of time before every replica applied "
		 "the whole log");
	for (uint32_t i = 0; !r->states_identical && i < o->replicas; i++)
		printf("    replica %u      applied %" PRIu64 " commit %" PRIu64
		       " digest %016" PRIx64 "\n", i, r->replica_applied[i],
		       r->replica_commit[i], r->replica_digest[i]);
	printf("  mbufs           %u in use after shutdown (%s)\n",
	       r->mbufs_in_use, r->mbufs_returned ? "no leak" : "LEAK");
	if (r->snapshots_installed > 0)
		printf("  catch-up        %" PRIu64 " snapshots installed (a "
		       "follower fell out of the leader's log)\n",
		       r->snapshots_installed);
	if (o->garbage > 0)
		printf("  bad input       %" PRIu64 " malformed frames sent, "
		       "%" PRIu64 " counted as drops\n",
		       r->garbage_sent, r->drops_total);
	if (o->key_file != NULL)
		printf("  cluster key     %" PRIu64 " frames dropped as bad MAC\n",
		       r->bad_mac);
	if (r->errors > 0)
		printf("  errors          %" PRIu64 " requests failed\n",
		       r->errors);
}

/* sm_args in a JSON string: only what the KV store's arguments use
 * (letters, digits, '=' and ','); anything else becomes '?'. */
static const char *json_safe(const char *s)
{
	static char out[128];
	size_t i = 0;
	for (; s != NULL && s[i] != '\0' && i + 1 < sizeof(out); i++) {
		char ch = s[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '=' || ch == ',';
		out[i] = ok ? ch : '?';
	}
	out[i] = '\0';
	return out;
}

static void write_json(const char *path, const struct cluster_opts *o,
		       const struct cluster_report *r)
{
	FILE *f = fopen(path, "w");
	if (f == NULL) {
		perror(path);
		return;
	}
	fprintf(f, "{\"replicas\":%u,\"loadgens\":%u,\"lanes\":%u,"
		"\"value_bytes\":%u,\"get_pct\":%u,\"window\":%u,\"batch\":%u,"
		"\"lcores\":%u,\"seconds\":%.4f,\"committed\":%" PRIu64 ","
		"\"ops_per_s\":%.1f,\"p50_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64
		",\"p999_ns\":%" PRIu64 ",\"max_ns\":%" PRIu64 ","
		"\"mean_ns\":%.1f,\"batch_avg\":%.2f,\"packets_per_op\":%.3f,"
		"\"cycles_per_op\":%.1f,\"states_identical\":%s,"
		"\"mbufs_in_use\":%u,\"errors\":%" PRIu64 ","
		"\"rate_per_s\":%" PRIu64 ",\"issued\":%" PRIu64 ","
		"\"resends\":%" PRIu64 ",\"leader\":%u,"
		"\"leader_cycles_per_op\":%.1f,\"leader_busy_frac\":%.4f,"
		"\"tsc_hz\":%" PRIu64 ",\"idle_sleep_us\":%u,"
		"\"stalls\":%" PRIu64 ",\"stall_ms\":%.1f,"
		"\"stall_max_ms\":%.2f,\"warmup_ms\":%u,"
		"\"latency_samples\":%" PRIu64 ",\"keys\":%u,"
		"\"prefill\":%s,\"prefill_s\":%.2f,\"sm_args\":\"%s\","
		"\"pack\":%u,\"packed_requests\":%" PRIu64 ","
		"\"packed_frames\":%" PRIu64 "}\n",
		o->replicas, o->loadgens, o->lanes, o->value_bytes, o->get_pct,
		o->window, o->batch, rte_lcore_count(), r->seconds,
		r->completed,
		r->seconds > 0 ? (double)r->completed / r->seconds : 0.0,
		r->p50_ns, r->p99_ns, r->p999_ns, r->max_ns, r->mean_ns,
		r->batch_avg, r->packets_per_op, r->cycles_per_op,
		r->states_identical ? "true" : "false", r->mbufs_in_use,
		r->errors, o->rate_per_s, r->issued, r->resends, r->leader_id,
		r->leader_cycles_per_op, r->leader_busy_frac, r->tsc_hz,
		o->idle_sleep_us, r->stalls, r->stall_ms, r->stall_max_ms,
		o->warmup_ms, r->latency_samples, o->keys,
		o->prefill ? "true" : "false", r->prefill_s,
		json_safe(o->sm_args), o->pack, r->packed_requests,
		r->packed_frames);
	fclose(f);
}

static bool report_ok(const struct cluster_opts *o,
		      const struct cluster_report *r)
{
	bool ok = r->states_identical && r->mbufs_returned && r->errors == 0 &&
		  r->completed == r->issued;
	if (o->requests > 0 && r->completed < o->requests)
		ok = false;
	if (o->garbage > 0 && r->drops_total < r->garbage_sent)
		ok = false;
	/* With a key, at least the frames signed with a wrong key. */
	if (o->key_file != NULL && r->bad_mac < (uint64_t)o->garbage * o->replicas)
		ok = false;
	return ok && !cluster_force_quit;
}

int main(int argc, char **argv)
{
	int early_rc;
	if (dp_early_option(argc, argv, "bypax-cluster", usage, &early_rc))
		return early_rc;
	int ret = rte_eal_init(argc, argv);
	if (ret < 0) {
		fprintf(stderr, "bypax-cluster: EAL init failed: %s\n",
			rte_strerror(rte_errno));
		return 2;
	}
	argc -= ret;
	argv += ret;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	struct cluster_opts o;
	if (parse(argc, argv, &o) != 0) {
		rte_eal_cleanup();
		return 2;
	}
	struct cluster_report r;
	int rc = cluster_run(&o, &r);
	if (rc == 0) {
		print_report(&o, &r);
		if (o.json_path)
			write_json(o.json_path, &o, &r);
	}
	bool ok = rc == 0 && report_ok(&o, &r);
	printf("bypax-cluster: %s\n", ok ? "OK" : "FAILED");
	rte_eal_cleanup();
	return ok ? 0 : 1;
}
