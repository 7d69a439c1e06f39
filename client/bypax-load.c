/* bypax-load: a write load through libbypax that remembers every
 * acknowledged write, and a verifier that reads them all back. The failover
 * tests and the bench use it: no acknowledged write may be lost, and the
 * longest gap between acknowledgements is the unavailability a client saw.
 *
 *   bypax-load --config F --duration S [--lanes N] [--prefix P] [--acked FILE]
 *   bypax-load --config F --verify FILE
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bypax/client.h"
#include "bypax/kv.h"

#define ACKED_MAX (1u << 22)
#define SECONDS_MAX 600u /* acknowledgements counted per second of the run */
#define VERIFY_TRIES 3u  /* a read that fails (not a wrong value) is retried */

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
	uint32_t pack; /* requests per datagram at most (libbypax pack_max) */
	double rate; /* writes started per second; 0: as fast as lanes allow */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bypax-load --config F [--duration S] [--lanes N] [--prefix P]\n"
		"                  [--acked FILE] [--timeout-ms N] [--rate W] [--pack K]\n"
		"       bypax-load --config F --verify FILE\n"
		"Writes PREFIX-<n> = <n> for S seconds with up to N requests in flight\n"
		"(and W writes started per second at most, if given), and\n"
		"appends each acknowledged n to FILE; --verify reads every key in\n"
		"FILE back (N reads in flight) and fails if one is missing or wrong.\n"
		"Prints the longest gap between acknowledgements, the run's end\n"
		"counted as one (what a client saw of a failover), and how many\n"
		"writes were acknowledged in each second of the run.\n"
		"A write refused because the store is full is counted apart from the\n"
		"failed ones and stops the load (no more writes are started).\n"
		"Exit status: 0 ok, 1 nothing acknowledged or the store full (load) or\n"
		"a write missing (verify), 2 usage, configuration or file error.\n"
		"--pack K: up to K requests per datagram, 1..64 (default 1; above\n"
		"1 needs replicas that take packed requests, docs/wire.md).\n"
		"--help: this text; --version: the version.\n");
}

static int parse_pack(const char *s, uint32_t *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 ||
	    v > BPX_WIRE_MULTI_MAX) {
		fprintf(stderr, "bypax-load: --pack must be 1..%u, got '%s'\n",
			BPX_WIRE_MULTI_MAX, s);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "config", 1, 0, 'c' }, { "duration", 1, 0, 'd' },
		{ "lanes", 1, 0, 'l' }, { "prefix", 1, 0, 'p' },
		{ "acked", 1, 0, 'a' }, { "verify", 1, 0, 'v' },
		{ "timeout-ms", 1, 0, 't' }, { "rate", 1, 0, 'r' },
		{ "pack", 1, 0, 'k' },
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' },
		{ 0, 0, 0, 0 },
	};
	*o = (struct opts){ .config = "bypax.conf", .prefix = "load",
			    .duration_s = 5, .lanes = 8, .timeout_ms = 20,
			    .pack = 1 };
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
		case 'r': o->rate = atof(optarg); break;
		case 'k':
			if (parse_pack(optarg, &o->pack) != 0)
				return -1;
			break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("bypax-load %s\n", BPX_VERSION); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (o->duration_s <= 0 || o->lanes < 1 || o->lanes > BPX_CLIENT_LANES_MAX ||
	    o->timeout_ms < 1 || o->rate < 0) {
		fprintf(stderr, "bypax-load: --duration > 0, --lanes 1..%u, "
			"--timeout-ms >= 1 and --rate >= 0 please\n",
			BPX_CLIENT_LANES_MAX);
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
	uint64_t full; /* refused: the store is full (-BPX_EFULL) */
	uint64_t full_at_ns;
	uint64_t *acked;
	uint64_t last_ack_ns, max_gap_ns, max_gap_from_ns, start_ns;
	uint64_t per_second[SECONDS_MAX];
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
	if (d->status == -BPX_EFULL) {
		if (l->full++ == 0)
			l->full_at_ns = t;
		return;
	}
	if (d->status != 0) {
		l->failed++;
		return;
	}
	if (l->acked_count < ACKED_MAX)
		l->acked[l->acked_count++] = d->ticket - 1; /* tickets: 1, 2, .. */
	if (l->last_ack_ns && t - l->last_ack_ns > l->max_gap_ns) {
		l->max_gap_ns = t - l->last_ack_ns;
		l->max_gap_from_ns = l->last_ack_ns;
	}
	l->last_ack_ns = t;
	uint64_t sec = (t - l->start_ns) / 1000000000ull;
	if (sec < SECONDS_MAX)
		l->per_second[sec]++;
}

static int run_load(struct bpx_client *c, const struct opts *o)
{
	static struct load l;
	static struct bpx_completion done[64];
	l.acked = calloc(ACKED_MAX, sizeof(uint64_t));
	if (l.acked == NULL) {
		fprintf(stderr, "bypax-load: out of memory\n");
		return 2;
	}
	uint64_t start = now_ns(), end = start + (uint64_t)(o->duration_s * 1e9);
	l.start_ns = start;
	l.max_gap_from_ns = start;
	while ((now_ns() < end && l.full == 0) ||
	       bpx_client_outstanding(c) > 0) {
		uint64_t t0;
		if (l.full > 0 && end > l.full_at_ns)
			end = l.full_at_ns; /* no new writes: none would fit */
		/* Paced: write n starts n / rate seconds after the start (a
		 * backlog after a stall goes out as fast as lanes allow). */
		while ((t0 = now_ns()) < end &&
		       (o->rate == 0 ||
			(double)l.next < (double)(t0 - start) * o->rate / 1e9) &&
		       submit_one(c, o, &l) == 0)
			;
		if (bpx_client_outstanding(c) == 0 && now_ns() < end) {
			/* paced and nothing in flight: wait for the next */
			struct timespec ts = { .tv_nsec = 200000 };
			nanosleep(&ts, NULL);
			continue;
		}
		int n = bpx_poll(c, o->rate > 0 ? 1 : 5, done, 64);
		uint64_t t = now_ns();
		for (int i = 0; i < n; i++)
			on_done(&done[i], &l, t);
	}
	/* Acknowledgements that stopped for good are a gap too: from the last
	 * one (or the start) to the end of the run. */
	uint64_t tail_from = l.last_ack_ns ? l.last_ack_ns : start;
	if (end > tail_from && end - tail_from > l.max_gap_ns) {
		l.max_gap_ns = end - tail_from;
		l.max_gap_from_ns = tail_from;
	}
	double secs = (double)(now_ns() - start) / 1e9;
	printf("load: %" PRIu64 " writes acknowledged, %" PRIu64 " failed, "
	       "%.0f ops/s, max gap between acknowledgements %.1f ms "
	       "(from %.3f s)\n",
	       l.acked_count, l.failed, (double)l.acked_count / secs,
	       (double)l.max_gap_ns / 1e6,
	       (double)(l.max_gap_from_ns - start) / 1e9);
	if (l.full > 0) {
		char why[512];
		bpx_client_full_reason(o->config, why, sizeof(why));
		printf("load: %" PRIu64 " writes refused: %s; stopped at %.3f s\n",
		       l.full, why, (double)(l.full_at_ns - start) / 1e9);
	}
	if (o->pack > 1) {
		const struct bpx_client_stats *st = bpx_client_stats(c);
		printf("load: %" PRIu64 " requests sent in %" PRIu64
		       " packed datagrams; %" PRIu64 " packed replies taken\n",
		       st->sent, st->packed_sent, st->packed_received);
	}
	printf("load: acknowledged per second:");
	for (uint64_t s = 0; s < SECONDS_MAX && s < (uint64_t)secs + 1; s++)
		printf(" %" PRIu64, l.per_second[s]);
	printf("\n");
	fflush(stdout);
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
	return l.acked_count > 0 && l.full == 0 ? 0 : 1;
}

struct verify_entry {
	uint32_t prefix; /* index into prefixes */
	uint32_t tries;
	uint64_t n;
};

struct verify {
	char prefixes[64][64];
	uint32_t prefix_count;
	struct verify_entry *e;
	uint64_t count, cap;
	uint64_t *ticket_entry; /* ticket - 1 -> entry */
	uint64_t tickets_cap;
	uint64_t next_ticket;
	uint64_t bad;
};

static int verify_read(struct verify *v, FILE *f)
{
	char prefix[64];
	uint64_t n;
	while (fscanf(f, "%63s %" SCNu64, prefix, &n) == 2) {
		uint32_t p = 0;
		while (p < v->prefix_count && strcmp(v->prefixes[p], prefix))
			p++;
		if (p == v->prefix_count) {
			if (v->prefix_count == 64) {
				fprintf(stderr, "verify: more than 64 prefixes\n");
				return -1;
			}
			snprintf(v->prefixes[p], sizeof(v->prefixes[p]), "%s",
				 prefix);
			v->prefix_count++;
		}
		if (v->count == v->cap) {
			v->cap = v->cap ? v->cap * 2 : 65536;
			v->e = realloc(v->e, v->cap * sizeof(*v->e));
			if (v->e == NULL) {
				fprintf(stderr, "verify: out of memory\n");
				return -1;
			}
		}
		v->e[v->count++] = (struct verify_entry){ .prefix = p, .n = n };
	}
	v->tickets_cap = v->count * VERIFY_TRIES + 1;
	v->ticket_entry = calloc(v->tickets_cap, sizeof(uint64_t));
	if (v->ticket_entry == NULL) {
		fprintf(stderr, "verify: out of memory\n");
		return -1;
	}
	return 0;
}

/* Starts the read of entry i; 0, or -BPX_EBUSY when no lane is free. */
static int verify_submit(struct bpx_client *c, struct verify *v, uint64_t i)
{
	char key[96];
	int klen = make_key(key, sizeof(key), v->prefixes[v->e[i].prefix],
			    v->e[i].n);
	uint64_t ticket;
	int rc = bpx_submit(c, BPX_KV_GET, key, (size_t)klen, NULL, 0, NULL, 0,
			    &ticket);
	if (rc == 0 && ticket - 1 < v->tickets_cap)
		v->ticket_entry[ticket - 1] = i;
	return rc;
}

/* A finished read: right, wrong (counted), or failed (retried). Returns
 * the entry to read again, or UINT64_MAX. */
static uint64_t verify_done(struct verify *v, const struct bpx_completion *d)
{
	uint64_t i = v->ticket_entry[d->ticket - 1];
	struct verify_entry *e = &v->e[i];
	char key[96], want[32];
	make_key(key, sizeof(key), v->prefixes[e->prefix], e->n);
	int wlen = snprintf(want, sizeof(want), "%" PRIu64, e->n);
	if (d->status == 0 && d->value_len == (size_t)wlen &&
	    memcmp(d->value, want, (size_t)wlen) == 0)
		return UINT64_MAX;
	bool lost = d->status == 0 || d->status == -BPX_ENOTFOUND;
	if (!lost && ++e->tries < VERIFY_TRIES)
		return i; /* timed out, stale session, ...: ask again */
	if (v->bad++ < 10)
		fprintf(stderr, "verify: %s: %s\n", key,
			d->status ? bpx_strerror(d->status) : "wrong value");
	return UINT64_MAX;
}

static int run_verify(struct bpx_client *c, const struct opts *o)
{
	FILE *f = fopen(o->verify, "r");
	if (f == NULL) {
		perror(o->verify);
		return 2;
	}
	static struct verify v;
	int rc = verify_read(&v, f);
	fclose(f);
	if (rc != 0)
		return 2;
	static struct bpx_completion done[64];
	uint64_t *again = calloc(o->lanes, sizeof(uint64_t));
	uint64_t next = 0, again_count = 0, start = now_ns();
	while (next < v.count || again_count > 0 ||
	       bpx_client_outstanding(c) > 0) {
		while (again_count > 0 &&
		       verify_submit(c, &v, again[again_count - 1]) == 0)
			again_count--;
		while (again_count == 0 && next < v.count &&
		       verify_submit(c, &v, next) == 0)
			next++;
		int n = bpx_poll(c, 5, done, 64);
		for (int i = 0; i < n; i++) {
			uint64_t a = verify_done(&v, &done[i]);
			if (a != UINT64_MAX)
				again[again_count++] = a;
		}
		if (n < 0) {
			fprintf(stderr, "verify: %s\n", bpx_strerror(n));
			v.bad++;
			break;
		}
	}
	printf("verify: %" PRIu64 " acknowledged writes read back in %.1f s, %"
	       PRIu64 " missing or wrong\n", v.count,
	       (double)(now_ns() - start) / 1e9, v.bad);
	free(again);
	free(v.e);
	free(v.ticket_entry);
	return v.bad == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct opts o;
	if (parse(argc, argv, &o) != 0)
		return 2;
	struct bpx_client_options co = { .timeout_ms = o.timeout_ms,
					 .deadline_ms = 10000,
					 .lanes = o.lanes,
					 .pack_max = o.pack };
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
