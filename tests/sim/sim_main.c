/* bypax-sim: runs seeds of the deterministic simulator and reports any
 * invariant violation with the seed that replays it. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define MS 1000000ull

static uint64_t pick(uint64_t *state, const uint64_t *choices, size_t n)
{
	*state = *state * 6364136223846793005ull + 1442695040888963407ull;
	return choices[(*state >> 33) % n];
}

/* Swarm testing: every seed draws its own mix of faults, so some seeds are
 * gentle and some brutal, and rare combinations still come up. */
void sim_params_from_seed(struct sim_params *p, uint64_t seed, uint8_t replicas)
{
	static const uint64_t drop[] = { 0, 0, 1, 5, 15 };
	static const uint64_t dup[] = { 0, 0, 2, 10 };
	static const uint64_t delay_max[] = { 100000, 1 * MS, 3 * MS, 8 * MS };
	static const uint64_t every[] = { 0, 30 * MS, 80 * MS, 200 * MS };
	static const uint64_t ppm[] = { 0, 100, 20000 };
	static const uint64_t clients[] = { 1, 3, 6 };
	/* Leases shorter and longer than failure detection (12 ms): when
	 * longer, only the followers' lease promise keeps reads safe. */
	static const uint64_t lease[] = { 0, 5 * MS, 30 * MS };
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
	memset(p, 0, sizeof(*p));
	p->seed = seed;
	p->replicas = replicas;
	p->clients = (uint8_t)pick(&s, clients, 3);
	p->fault_phase_ns = 400 * MS;
	p->settle_limit_ns = 4000 * MS;
	p->faults.drop_pct = (uint32_t)pick(&s, drop, 5);
	p->faults.dup_pct = (uint32_t)pick(&s, dup, 4);
	p->faults.delay_min_ns = 10000;
	p->faults.delay_max_ns = pick(&s, delay_max, 4);
	p->faults.partition_every_ns = pick(&s, every, 4);
	p->faults.crash_every_ns = pick(&s, every, 4);
	p->faults.pause_every_ns = pick(&s, every, 4);
	p->faults.skew_ppm_max = pick(&s, ppm, 3);
	p->faults.skew_offset_max_ns = 50 * MS;
	p->faults.lease_ns = pick(&s, lease, 3);
	static const uint64_t client_timeout[] = { 4 * MS, 40 * MS };
	p->faults.client_timeout_ns = pick(&s, client_timeout, 2);
	static const uint64_t reconfig[] = { 0, 40 * MS, 120 * MS };
	p->faults.reconfig_every_ns = pick(&s, reconfig, 3);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bypax-sim [--seeds N] [--from S] [--seed S] [--replicas R]\n"
		"                 [--demo] [--verbose]\n"
		"  --seeds N      run N seeds (default 100), starting at --from\n"
		"  --from S       first seed of the run (default 1)\n"
		"  --seed S       run exactly seed S (replays a failure)\n"
		"  --replicas R   3, 5 or 7 replicas (default 3)\n"
		"  --verbose      narrate the run (leaders, faults, recovery)\n"
		"  --demo         narrate one seed with every fault, readably\n"
		"Prints one line per failing seed, then a summary:\n"
		"  sim: seeds=N replicas=R steps=.. committed=.. faults=.. "
		"violations=V\n"
		"Exit status: 0 if no seed violated an invariant, 1 if one did, "
		"2 on bad usage.\n");
}

static int parse_u64(const char *name, const char *s, uint64_t lo, uint64_t hi,
		     uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (*s == '\0' || *end != '\0' || *s == '-' || v < lo || v > hi) {
		fprintf(stderr, "bypax-sim: %s must be a number in %" PRIu64
				"..%" PRIu64 ", got '%s'\n",
			name, lo, hi, s);
		return -1;
	}
	*out = v;
	return 0;
}

struct options {
	uint64_t seeds, from, replicas;
	int single, verbose, demo;
};

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "seeds", required_argument, NULL, 'n' },
		{ "from", required_argument, NULL, 'f' },
		{ "seed", required_argument, NULL, 's' },
		{ "replicas", required_argument, NULL, 'r' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "demo", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct options){ .seeds = 100, .from = 1, .replicas = 3 };
	int c;
	while ((c = getopt_long(argc, argv, "n:f:s:r:vdh", longopts, NULL)) != -1) {
		int err = 0;
		switch (c) {
		case 'n': err = parse_u64("--seeds", optarg, 1, 100000000, &o->seeds); break;
		case 'f': err = parse_u64("--from", optarg, 0, UINT64_MAX / 2, &o->from); break;
		case 's':
			err = parse_u64("--seed", optarg, 0, UINT64_MAX / 2, &o->from);
			o->seeds = 1;
			o->single = 1;
			break;
		case 'r': err = parse_u64("--replicas", optarg, 3, 7, &o->replicas); break;
		case 'v': o->verbose = 1; break;
		case 'd': o->demo = 1; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
		if (err)
			return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "bypax-sim: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

static int run_demo(void)
{
	struct sim_params p;
	struct sim_result r;
	sim_params_from_seed(&p, 7, 3);
	p.clients = 3;
	p.verbose = 1;
	p.faults.drop_pct = 2;
	p.faults.dup_pct = 2;
	p.faults.partition_every_ns = 90 * MS;
	p.faults.crash_every_ns = 120 * MS;
	p.faults.pause_every_ns = 150 * MS;
	printf("bypax-sim demo: 3 replicas, 3 clients, a simulated network that "
	       "drops, duplicates and\ndelays messages, partitions, crashes "
	       "(losing memory) and pauses, for 400 ms of\nsimulated time; "
	       "then faults stop and everything pending must complete.\n\n");
	sim_run(&p, &r);
	printf("\ndemo: %" PRIu64 " steps, %" PRIu64 " slots chosen, %" PRIu64
	       " requests acknowledged, %" PRIu64 " faults, %" PRIu64
	       " leader changes, %.0f ms simulated\n",
	       r.steps, r.committed_slots, r.requests_acked, r.faults,
	       r.leader_changes, (double)r.sim_time_ns / MS);
	printf("demo: every step checked: one value per slot, committed prefix "
	       "fixed, identical\n      states, no request applied twice, "
	       "histories linearizable: violations=%" PRIu64 "\n",
	       r.violations);
	if (r.violations)
		printf("demo: %s\n", r.first_violation);
	return r.violations ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct options o;
	if (parse_args(argc, argv, &o) != 0)
		return 2;
	if (o.demo)
		return run_demo();
	uint64_t steps = 0, committed = 0, faults = 0, violations = 0;
	uint64_t lease_reads = 0, acked = 0, unknown = 0, reconfigs = 0;
	for (uint64_t i = 0; i < o.seeds; i++) {
		struct sim_params p;
		struct sim_result r;
		sim_params_from_seed(&p, o.from + i, (uint8_t)o.replicas);
		p.verbose = o.verbose;
		sim_run(&p, &r);
		steps += r.steps;
		lease_reads += r.lease_reads;
		unknown += r.lincheck_unknown;
		reconfigs += r.config_changes;
		if (r.lincheck_unknown)
			printf("sim: seed=%" PRIu64 ": linearizability search gave "
			       "up (budget); not a failure, look at it\n", p.seed);
		acked += r.requests_acked;
		committed += r.committed_slots;
		faults += r.faults;
		if (r.violations) {
			violations++;
			printf("sim: FAIL seed=%" PRIu64 " replicas=%" PRIu64
			       ": %s (replay: bypax-sim --seed %" PRIu64
			       " --replicas %" PRIu64 ")\n",
			       p.seed, o.replicas, r.first_violation, p.seed,
			       o.replicas);
			fflush(stdout);
		}
		if (!o.single && o.seeds >= 100 && (i + 1) % (o.seeds / 10) == 0)
			fprintf(stderr, "sim: %" PRIu64 "/%" PRIu64 " seeds\n",
				i + 1, o.seeds);
	}
	printf("sim: %" PRIu64 " requests acknowledged, %" PRIu64
	       " of them reads answered under a leader lease; %" PRIu64
	       " membership changes; %" PRIu64 " histories undecided\n",
	       acked, lease_reads, reconfigs, unknown);
	printf("sim: seeds=%" PRIu64 " replicas=%" PRIu64 " steps=%" PRIu64
	       " committed=%" PRIu64 " faults=%" PRIu64 " violations=%" PRIu64
	       "\n",
	       o.seeds, o.replicas, steps, committed, faults, violations);
	return violations ? 1 : 0;
}
