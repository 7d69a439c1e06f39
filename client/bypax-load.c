/* bypax-load: a write load through libbypax that remembers every
 * acknowledged write, and a verifier that reads them all back. The failover
 * tests and the bench use it: no acknowledged write may be lost, and the
 * longest gap between acknowledgements is the unavailability a client saw.
 *
 *   bypax-load --config F --duration S [--lanes N] [--prefix P] [--acked FILE]
 *   bypax-load --config F --verify FILE
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bypax/client.h"
#include "bypax/kv.h"

#define ACKED_MAX (1u << 22)

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct opts {
	const char *config, *prefix, *acked, *verify;
	double duration_s;
	uint32_t lanes, timeout_ms;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bypax-load --config F [--duration S] [--lanes N] [--prefix P]\n"
		"                  [--acked FILE] [--timeout-ms N]\n"
		"       bypax-load --config F --verify FILE\n"
		"Writes PREFIX-<n> = <n> for S seconds with N requests in flight and\n"
		"appends each acknowledged n to FILE; --verify reads every key in\n"
		"FILE back and fails if one is missing or wrong. Prints the longest\n"
		"gap between acknowledgements (what a client saw of a failover).\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "config", 1, 0, 'c' }, { "duration", 1, 0, 'd' },
		{ "lanes", 1, 0, 'l' }, { "prefix", 1, 0, 'p' },
		{ "acked", 1, 0, 'a' }, { "verify", 1, 0, 'v' },
		{ "timeout-ms", 1, 0, 't' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	*o = (struct opts){ .config = "bypax.conf", .prefix = "load",
			    .duration_s = 5, .lanes = 8, .timeout_ms = 20 };
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'c': o->config = optarg; break;
		case 'd': o->duration_s = atof(optarg); break;
		case 'l': o->lanes = (uint32_t)atoi(optarg); break;
		case 'p': o->prefix = optarg; break;
		case 'a': o->acked = optarg; break;
		case 'v': o->verify = optarg; break;
		case 't': o->timeout_ms = (uint32_t)atoi(optarg); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (o->duration_s <= 0 || o->lanes < 1 || o->lanes > BPX_CLIENT_LANES_MAX ||
	    o->timeout_ms < 1) {
		fprintf(stderr, "bypax-load: --duration > 0, --lanes 1..%u and "
			"--timeout-ms >= 1 please\n", BPX_CLIENT_LANES_MAX);
		return -1;
	}
	return 0;
}

static int make_key(char *buf, size_t cap, const char *prefix, uint64_t n)
{
	return snprintf(buf, cap, "%s-%" PRIu64, prefix, n);
}

struct load {
	uint64_t next, acked_count, failed;
	uint64_t *acked;
	uint64_t last_ack_ns, max_gap_ns, first_ns;
};

static int submit_one(struct bpx_client *c, const struct opts *o,
		      struct load *l)
{
	char key[64], val[32];
	int klen = make_key(key, sizeof(key), o->prefix, l->next);
	int vlen = snprintf(val, sizeof(val), "%" PRIu64, l->next);
	uint64_t ticket;
	int rc = bpx_submit(c, BPX_KV_PUT, key, (size_t)klen, val, (size_t)vlen,
			    NULL, 0, &ticket);
	if (rc == 0)
		l->next++;
	return rc;
}

static void on_done(const struct bpx_completion *d, struct load *l,
		    uint64_t t)
{
	if (d->status != 0) {
		l->failed++;
		return;
	}
	if (l->acked_count < ACKED_MAX)
		l->acked[l->acked_count++] = d->ticket - 1; /* tickets: 1, 2, .. */
	if (l->last_ack_ns && t - l->last_ack_ns > l->max_gap_ns)
		l->max_gap_ns = t - l->last_ack_ns;
	l->last_ack_ns = t;
}

static int run_load(struct bpx_client *c, const struct opts *o)
{
	struct load l = { .acked = calloc(ACKED_MAX, sizeof(uint64_t)) };
	struct bpx_completion done[64];
	uint64_t start = now_ns(), end = start + (uint64_t)(o->duration_s * 1e9);
	while (now_ns() < end || bpx_client_outstanding(c) > 0) {
		while (now_ns() < end && submit_one(c, o, &l) == 0)
			;
		int n = bpx_poll(c, 5, done, 64);
		uint64_t t = now_ns();
		for (int i = 0; i < n; i++)
			on_done(&done[i], &l, t);
	}
	double secs = (double)(now_ns() - start) / 1e9;
	printf("load: %" PRIu64 " writes acknowledged, %" PRIu64 " failed, "
	       "%.0f ops/s, max gap between acknowledgements %.1f ms\n",
	       l.acked_count, l.failed, (double)l.acked_count / secs,
	       (double)l.max_gap_ns / 1e6);
	if (o->acked != NULL) {
		FILE *f = fopen(o->acked, "a");
		if (f == NULL) {
			perror(o->acked);
			return 2;
		}
		for (uint64_t i = 0; i < l.acked_count; i++)
			fprintf(f, "%s %" PRIu64 "\n", o->prefix, l.acked[i]);
		fclose(f);
	}
	free(l.acked);
	return l.acked_count > 0 ? 0 : 1;
}

static int run_verify(struct bpx_client *c, const struct opts *o)
{
	FILE *f = fopen(o->verify, "r");
	if (f == NULL) {
		perror(o->verify);
		return 2;
	}
	char prefix[64];
	uint64_t n, checked = 0, bad = 0;
	while (fscanf(f, "%63s %" SCNu64, prefix, &n) == 2) {
		char key[96], want[32], got[BPX_KV_VALUE_BYTES_MAX];
		size_t got_len = 0;
		int klen = make_key(key, sizeof(key), prefix, n);
		int wlen = snprintf(want, sizeof(want), "%" PRIu64, n);
		int rc = bpx_get(c, key, (size_t)klen, got, sizeof(got), &got_len);
		checked++;
		if (rc != 0 || got_len != (size_t)wlen ||
		    memcmp(got, want, got_len) != 0) {
			if (bad++ < 10)
				fprintf(stderr, "verify: %s: %s\n", key,
					rc ? bpx_strerror(rc) : "wrong value");
		}
	}
	fclose(f);
	printf("verify: %" PRIu64 " acknowledged writes read back, %" PRIu64
	       " missing or wrong\n", checked, bad);
	return bad == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct opts o;
	if (parse(argc, argv, &o) != 0)
		return 2;
	struct bpx_client_options co = { .timeout_ms = o.timeout_ms,
					 .deadline_ms = 10000,
					 .lanes = o.verify ? 1 : o.lanes };
	char err[512];
	struct bpx_client *c = bpx_client_open(o.config, &co, err, sizeof(err));
	if (c == NULL) {
		fprintf(stderr, "bypax-load: %s\n", err);
		return 2;
	}
	int rc = o.verify ? run_verify(c, &o) : run_load(c, &o);
	bpx_client_close(c);
	return rc;
}
