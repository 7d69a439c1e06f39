/* bypax-sim: runs seeds of the deterministic simulator and reports any
 * invariant violation with the seed that replays it. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"
#ifdef PX_TEST_PLANTS
#include "plant.h"
#endif

#define MS 1000000ull

static uint64_t pick(uint64_t *state, const uint64_t *choices, size_t n)
{
	*state = *state * 6364136223846793005ull + 1442695040888963407ull;
	return choices[(*state >> 33) % n];
}

/* Swarm testing: every seed draws its own mix of faults, so some seeds are
 * gentle and some brutal, and rare combinations still come up. The stock
 * simulator's draws come first, from their own stream, in their original
 * order: --stock seeds replay it exactly. */
static void params_stock(struct sim_params *p, uint64_t seed, uint8_t replicas)
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
	p->faults.restart_max_ns = 80 * MS;
}

/* --long: ten times the fault phase, with the churn turned up so that it
 * is not just more of the same: membership changes every few tens of ms,
 * crashes often enough, and restarts slow enough, that several replicas
 * recover at once (within the minority bound, see may_lose_state). */
static void params_long(struct sim_params *p, uint64_t *s)
{
	static const uint64_t crash[] = { 10 * MS, 25 * MS, 60 * MS };
	static const uint64_t reconfig[] = { 10 * MS, 25 * MS, 60 * MS };
	static const uint64_t every[] = { 30 * MS, 80 * MS, 200 * MS };
	static const uint64_t restart[] = { 80 * MS, 150 * MS, 300 * MS };
	p->long_run = true;
	p->fault_phase_ns = 4000 * MS;
	/* The backlog of a long phase (clients, catch-up, a recovery per
	 * stateless replica) needs no more than a short one: convergence
	 * starts from the same kind of state. */
	p->settle_limit_ns = 6000 * MS;
	p->faults.crash_every_ns = pick(s, crash, 3);
	p->faults.reconfig_every_ns = pick(s, reconfig, 3);
	p->faults.restart_max_ns = pick(s, restart, 3);
	if (p->faults.partition_every_ns == 0)
		p->faults.partition_every_ns = pick(s, every, 3);
	if (p->faults.pause_every_ns == 0)
		p->faults.pause_every_ns = pick(s, every, 3);
}

/* The session-eviction workload (issue 8): some seeds have a session
 * table smaller than the clients that use it, or clients that come and go,
 * each new one with a session of its own, so sessions are evicted while
 * their clients may still retry. Its own stream, so the other draws stay. */
static void params_sessions(struct sim_params *p, uint64_t seed)
{
	static const uint64_t session_max[] = { 0, 0, 3, 2 };
	static const uint64_t churn[] = { 0, 0, 5, 25 };
	static const uint64_t clients[] = { 0, 4, 8 };
	uint64_t s = seed * 0x8cb92ba72f3d8dd7ull + 0x6a09e667f3bcc909ull;
	p->session_max = (uint32_t)pick(&s, session_max, 4);
	p->client_churn_pct = (uint32_t)pick(&s, churn, 4);
	/* More clients than a small table holds. */
	uint64_t more = pick(&s, clients, 3);
	if (p->session_max != 0 && more > p->clients)
		p->clients = (uint8_t)more;
}

/* Recovery attacks (issue 8, hole 1: two values chosen for one slot after
 * a diskless recovery), with 5 members or more, in some of the seeds
 * without lease attacks (those replay as before), most of them with
 * nothing else going on. A stream of its own. */
static void params_recovery(struct sim_params *p, uint64_t seed,
			    uint8_t replicas)
{
	static const uint64_t every[] = { 0, 0, 40 * MS, 100 * MS };
	static const uint64_t focus[] = { 0, 1, 1 };
	uint64_t s = seed * 0xbf58476d1ce4e5b9ull + 0x510e527fade682d1ull;
	if (replicas < 5 || p->faults.nemesis_every_ns != 0)
		return;
	p->faults.recovery_every_ns = pick(&s, every, 4);
	if (p->faults.recovery_every_ns != 0 && pick(&s, focus, 3)) {
		p->faults.partition_every_ns = 0;
		p->faults.pause_every_ns = 0;
		p->faults.crash_every_ns = 0;
	}
}

void sim_params_from_seed(struct sim_params *p, uint64_t seed, uint8_t replicas,
			  bool stock, bool long_run)
{
	params_stock(p, seed, replicas);
	if (stock) {
		p->stock = true;
		return;
	}
	/* Draws added since the stock simulator: a stream of their own. */
	static const uint64_t split[] = { 0, 30, 60, 100 };
	uint64_t s = seed * 0xd1b54a32d192ed03ull + 0x2545f4914f6cdd1dull;
	p->faults.plane_split_pct = (uint32_t)pick(&s, split, 4);
	static const uint64_t target[] = { 0, 50, 90 };
	p->faults.leader_target_pct = (uint32_t)pick(&s, target, 3);
	/* Leases well past failure detection too: followers then refuse
	 * candidates for long, and a cut-off leader serves reads for long. */
	static const uint64_t lease_long[] = { 60 * MS, 100 * MS };
	if (p->faults.lease_ns != 0 && pick(&s, split, 4) >= 60)
		p->faults.lease_ns = pick(&s, lease_long, 2);
	params_sessions(p, seed);
	if (long_run)
		params_long(p, &s);
	static const uint64_t nemesis[] = { 0, 0, 40 * MS, 100 * MS };
	p->faults.nemesis_every_ns = pick(&s, nemesis, 4);
	/* Half of the seeds with lease attacks have nothing else going on
	 * (no other partition, pause or crash heals, moves or stalls the
	 * leader in the middle of an attack), and leases on. */
	static const uint64_t focus[] = { 0, 1 };
	static const uint64_t lease[] = { 5 * MS, 30 * MS, 60 * MS };
	if (p->faults.nemesis_every_ns != 0 && pick(&s, focus, 2)) {
		p->faults.partition_every_ns = 0;
		p->faults.pause_every_ns = 0;
		p->faults.crash_every_ns = 0;
		if (p->faults.lease_ns == 0)
			p->faults.lease_ns = pick(&s, lease, 3);
	}
	/* The share of lease attacks that go through a membership change
	 * (issue 8, hole 3); they need 5 members or more. A stream of its
	 * own: seeds without them replay as before. */
	static const uint64_t config_pct[] = { 0, 0, 50, 100 };
	uint64_t s2 = seed * 0x9fb21c651e98df25ull + 0x3c6ef372fe94f82bull;
	if (p->faults.nemesis_every_ns != 0 && replicas >= 5)
		p->faults.nemesis_config_pct =
			(uint32_t)pick(&s2, config_pct, 4);
	params_recovery(p, seed, replicas);
}

/* --durable (issue 12): replicas persist to a simulated disk (sim_disk.c)
 * and restart from it, and the disk has faults: whole-cluster crashes,
 * torn writes at a crash, COMMIT records the caller skips, snapshots saved
 * and records recycled, and a bad sector in the middle of a replica's log
 * (it stays down; at most a minority of them). Crashes then lose no
 * state, so any number of replicas may be down at once. Diskless recovery
 * attacks are off: a durable replica never recovers. A stream of its own:
 * every other draw stays as it was. */
void sim_params_durable(struct sim_params *p, uint64_t seed)
{
	static const uint64_t whole[] = { 0, 60 * MS, 150 * MS, 300 * MS };
	static const uint64_t torn[] = { 0, 50, 100 };
	static const uint64_t skip[] = { 0, 0, 50 };
	static const uint64_t snap[] = { 0, 1, 5 };
	static const uint64_t corrupt[] = { 0, 0, 60 * MS, 150 * MS };
	uint64_t s = seed * 0xa24baed4963ee407ull + 0x9fb21c651e98df25ull;
	p->durable = true;
	p->faults.whole_crash_every_ns = pick(&s, whole, 4);
	p->faults.torn_pct = (uint32_t)pick(&s, torn, 3);
	p->faults.commit_skip_pct = (uint32_t)pick(&s, skip, 3);
	p->faults.snapshot_pct = (uint32_t)pick(&s, snap, 3);
	p->faults.corrupt_every_ns = pick(&s, corrupt, 4);
	p->faults.recovery_every_ns = 0;
}

#ifdef PX_TEST_PLANTS
#define SIM_NAME "bypax-sim-plant"
#else
#define SIM_NAME "bypax-sim"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " SIM_NAME
		" [--seeds N] [--from S] [--seed S] [--replicas R]\n"
		"                 [--long | --stock] [--durable] [--stop] [--demo]\n"
		"                 [--verbose]\n"
#ifdef PX_TEST_PLANTS
		"                 [--plant NAME | --plant list]\n"
#endif
		"  --seeds N      run N seeds (default 100), starting at --from\n"
		"  --from S       first seed of the run (default 1)\n"
		"  --seed S       run exactly seed S (replays a failure)\n"
		"  --replicas R   3, 5 or 7 replicas (default 3)\n"
		"  --long         a 4000 ms fault phase (10x), with membership "
		"changes, crashes\n"
		"                 and slow restarts turned up so that several "
		"replicas recover\n"
		"                 at once\n"
		"  --stock        the stock simulator's faults: every fault and "
		"workload added\n"
		"                 since is off (split planes, attacks, session "
		"eviction, --long);\n"
		"                 clients and control are today's, so timings "
		"differ\n"
		"  --durable      replicas persist to a simulated disk and restart "
		"from it; disk\n"
		"                 faults: whole-cluster crashes, torn writes, "
		"skipped COMMIT\n"
		"                 records, snapshots with recycling, a corrupt "
		"record (that\n"
		"                 replica stays down; at most a minority)\n"
		"  --stop         stop at the first failing seed\n"
#ifdef PX_TEST_PLANTS
		"  --plant NAME   run with one planted bug (consensus/plant.h); "
		"'list' lists\n"
		"                 them. A run that catches it exits 1.\n"
#endif
		"  --verbose      narrate the run (leaders, faults, recovery)\n"
		"  --demo         narrate one seed with every fault, readably\n"
		"Prints one line per failing seed, then a summary:\n"
		"  sim: seeds=N replicas=R steps=.. committed=.. faults=.. "
		"violations=V\n"
		"  sim: per seed (min/median/max): committed=.. faults=.. "
		"leader_changes=..\n"
		"       recoveries=.. stateless_at_once=.. sim_ms=..; slowest "
		"seed=S\n"
		"       (.. ms wall, .. steps)\n"
		"  sim: failover after a leader crash (ms, N crashes): "
		"min/median/p90/max=..;\n"
		"       leader_changes=.. in all (a failover: from a crash of "
		"the only\n"
		"       leader until a replica leads again)\n"
		"Exit status: 0 if no seed violated an invariant, 1 if one did, "
		"2 on bad usage.\n");
}

static int parse_u64(const char *name, const char *s, uint64_t lo, uint64_t hi,
		     uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (*s == '\0' || *end != '\0' || *s == '-' || v < lo || v > hi) {
		fprintf(stderr, SIM_NAME ": %s must be a number in %" PRIu64
				"..%" PRIu64 ", got '%s'\n",
			name, lo, hi, s);
		return -1;
	}
	*out = v;
	return 0;
}

struct options {
	uint64_t seeds, from, replicas;
	int single, verbose, demo, stop;
	bool stock, long_run, durable;
	const char *plant; /* NULL: none */
};

#ifdef PX_TEST_PLANTS
static const char *const plant_flags[] = {
#define PLANT_FLAG(name, flag, text) flag,
	PX_PLANT_LIST(PLANT_FLAG)
#undef PLANT_FLAG
};
static const char *const plant_texts[] = {
#define PLANT_TEXT(name, flag, text) text,
	PX_PLANT_LIST(PLANT_TEXT)
#undef PLANT_TEXT
};

/* Sets px_plant from its name; 'list' prints the names. Returns 1 if the
 * run should stop here successfully, 0 to go on, -1 on a bad name. */
static int set_plant(const char *name)
{
	if (strcmp(name, "list") == 0) {
		for (int i = 0; i < PX_PLANT_COUNT; i++)
			printf("%-24s %s\n", plant_flags[i], plant_texts[i]);
		return 1;
	}
	for (int i = 0; i < PX_PLANT_COUNT; i++)
		if (strcmp(name, plant_flags[i]) == 0) {
			px_plant = (enum px_plant)i;
			return 0;
		}
	fprintf(stderr, SIM_NAME ": unknown plant '%s' (--plant list lists "
			"them)\n", name);
	return -1;
}
#else
static int set_plant(const char *name)
{
	fprintf(stderr, "bypax-sim: --plant %s: this build has no planted bugs; "
			"use bypax-sim-plant\n", name);
	return -1;
}
#endif

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "seeds", required_argument, NULL, 'n' },
		{ "from", required_argument, NULL, 'f' },
		{ "seed", required_argument, NULL, 's' },
		{ "replicas", required_argument, NULL, 'r' },
		{ "long", no_argument, NULL, 'L' },
		{ "stock", no_argument, NULL, 'S' },
		{ "durable", no_argument, NULL, 'D' },
		{ "stop", no_argument, NULL, 'x' },
		{ "plant", required_argument, NULL, 'p' },
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
		case 'L': o->long_run = true; break;
		case 'S': o->stock = true; break;
		case 'D':
			o->durable = true;
			break;
		case 'x': o->stop = 1; break;
		case 'p': o->plant = optarg; break;
		case 'v': o->verbose = 1; break;
		case 'd': o->demo = 1; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
		if (err)
			return -1;
	}
	if (optind < argc) {
		fprintf(stderr, SIM_NAME ": unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (o->stock && o->durable) {
		fprintf(stderr, SIM_NAME
			": --durable is not part of the stock "
			"simulator: use one of --durable and --stock\n");
		return -1;
	}
	if (o->stock && o->long_run) {
		fprintf(stderr, SIM_NAME ": --long is not part of the stock "
				"simulator: use one of --long and --stock\n");
		return -1;
	}
	return 0;
}

static int run_demo(void)
{
	struct sim_params p;
	struct sim_result r;
	sim_params_from_seed(&p, 7, 3, false, false);
	p.clients = 3;
	p.verbose = 1;
	p.faults.drop_pct = 2;
	p.faults.dup_pct = 2;
	p.faults.partition_every_ns = 90 * MS;
	p.faults.crash_every_ns = 120 * MS;
	p.faults.pause_every_ns = 150 * MS;
	printf("bypax-sim demo: 3 replicas, 3 clients, a simulated network that "
	       "drops, duplicates and\ndelays messages, partitions (of the "
	       "control plane, the data plane or both),\ncrashes (losing "
	       "memory) and pauses, for 400 ms of simulated time; then faults\n"
	       "stop and everything pending must complete.\n\n");
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

/* ---- The summary: totals, and per-seed spreads ---- */

enum { FIG_COMMITTED, FIG_FAULTS, FIG_LEADERS, FIG_RECOVERIES,
       FIG_STATELESS, FIG_SIM_MS, FIG_COUNT };

struct summary {
	uint64_t steps, committed, faults, violations;
	uint64_t lease_reads, acked, unknown, reconfigs;
	uint64_t expired, churns; /* the session-eviction workload */
	uint64_t whole_crashes, disk_restarts, torn_cut, corrupt_down;
	uint64_t disk_syncs, kept_unsynced; /* --durable */
	uint64_t leader_changes;
	uint64_t *fig[FIG_COUNT]; /* per seed, for min/median/max */
	uint64_t seeds_run;
	/* Every failover after a leader crash, in ns, of every seed. */
	uint64_t *failover_ns;
	size_t failovers, failovers_cap;
	uint64_t slowest_seed, slowest_steps;
	double slowest_wall_ms;
};

static double wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void summary_add(struct summary *s, uint64_t seed,
			const struct sim_result *r, double ms)
{
	s->steps += r->steps;
	s->lease_reads += r->lease_reads;
	s->unknown += r->lincheck_unknown;
	s->reconfigs += r->config_changes;
	s->acked += r->requests_acked;
	s->committed += r->committed_slots;
	s->faults += r->faults;
	s->expired += r->requests_expired;
	s->churns += r->client_churns;
	s->leader_changes += r->leader_changes;
	s->whole_crashes += r->whole_crashes;
	s->disk_restarts += r->disk_restarts;
	s->torn_cut += r->torn_cut;
	s->corrupt_down += r->corrupt_down;
	s->disk_syncs += r->disk_syncs;
	s->kept_unsynced += r->kept_unsynced;
	const uint64_t v[FIG_COUNT] = { r->committed_slots, r->faults,
					r->leader_changes, r->recoveries,
					r->stateless_max, r->sim_time_ns / MS };
	for (int k = 0; k < FIG_COUNT; k++)
		if (s->fig[k] != NULL)
			s->fig[k][s->seeds_run] = v[k];
	uint64_t n = r->failovers < SIM_FAILOVERS_MAX ? r->failovers :
							SIM_FAILOVERS_MAX;
	for (uint64_t k = 0; k < n; k++) {
		if (s->failovers == s->failovers_cap) {
			size_t cap = s->failovers_cap ? 2 * s->failovers_cap :
							1024;
			uint64_t *v2 =
				realloc(s->failover_ns, cap * sizeof(*v2));
			if (v2 == NULL)
				break; /* totals only */
			s->failover_ns = v2;
			s->failovers_cap = cap;
		}
		s->failover_ns[s->failovers++] = r->failover_ns[k];
	}
	if (s->seeds_run == 0 || ms > s->slowest_wall_ms) {
		s->slowest_seed = seed;
		s->slowest_wall_ms = ms;
		s->slowest_steps = r->steps;
	}
	s->seeds_run++;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void print_spread(const char *name, uint64_t *v, uint64_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	printf(" %s=%" PRIu64 "/%" PRIu64 "/%" PRIu64, name, v[0], v[n / 2],
	       v[n - 1]);
}

static void summary_print(struct summary *s, const struct options *o)
{
	static const char *const names[FIG_COUNT] = {
		"committed", "faults", "leader_changes", "recoveries",
		"stateless_at_once", "sim_ms"
	};
	printf("sim: %" PRIu64 " requests acknowledged, %" PRIu64
	       " of them reads answered under a leader lease; %" PRIu64
	       " membership changes; %" PRIu64 " histories undecided"
	       " (each failed its seed)\n",
	       s->acked, s->lease_reads, s->reconfigs, s->unknown);
	if (!o->stock)
		printf("sim: sessions: %" PRIu64 " writes EXPIRED after an "
		       "eviction (outcome unknown), %" PRIu64
		       " clients replaced by new ones\n",
		       s->expired, s->churns);
	if (o->durable)
		printf("sim: durable: %" PRIu64
		       " whole-cluster crashes, %" PRIu64
		       " restarts from disk, %" PRIu64
		       " torn tails cut, %" PRIu64
		       " replicas down for a corrupt record, %" PRIu64
		       " syncs, %" PRIu64
		       " crashes that kept unsynced records\n",
		       s->whole_crashes, s->disk_restarts, s->torn_cut,
		       s->corrupt_down, s->disk_syncs, s->kept_unsynced);
	if (s->seeds_run > 0 && s->fig[FIG_COUNT - 1] != NULL) {
		printf("sim: per seed (min/median/max):");
		for (int k = 0; k < FIG_COUNT; k++)
			print_spread(names[k], s->fig[k], s->seeds_run);
		printf("; slowest seed=%" PRIu64 " (%.0f ms wall, %" PRIu64
		       " steps)\n",
		       s->slowest_seed, s->slowest_wall_ms, s->slowest_steps);
	}
	if (s->failovers > 0) {
		uint64_t *v = s->failover_ns, n = s->failovers, sum = 0;
		qsort(v, n, sizeof(*v), cmp_u64);
		for (uint64_t k = 0; k < n; k++)
			sum += v[k];
		printf("sim: failover after a leader crash (ms, %" PRIu64
		       " crashes): min/median/p90/max=%.1f/%.1f/%.1f/%.1f"
		       " mean=%.1f; leader_changes=%" PRIu64 " in all\n",
		       n, (double)v[0] / MS, (double)v[n / 2] / MS,
		       (double)v[n * 9 / 10] / MS, (double)v[n - 1] / MS,
		       (double)sum / (double)n / MS, s->leader_changes);
	}
	printf("sim: seeds=%" PRIu64 " replicas=%" PRIu64 " steps=%" PRIu64
	       " committed=%" PRIu64 " faults=%" PRIu64 " violations=%" PRIu64
	       "\n",
	       s->seeds_run, o->replicas, s->steps, s->committed, s->faults,
	       s->violations);
}

static void print_failure(const struct options *o, uint64_t seed,
			  const struct sim_result *r)
{
	printf("sim: FAIL seed=%" PRIu64 " replicas=%" PRIu64
	       ": %s (replay: " SIM_NAME "%s%s%s%s%s --seed %" PRIu64
	       " --replicas %" PRIu64 ")\n",
	       seed, o->replicas, r->first_violation,
	       o->plant ? " --plant " : "", o->plant ? o->plant : "",
	       o->long_run ? " --long" : "", o->stock ? " --stock" : "",
	       o->durable ? " --durable" : "", seed, o->replicas);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct options o;
	if (parse_args(argc, argv, &o) != 0)
		return 2;
	if (o.plant != NULL) {
		int rc = set_plant(o.plant);
		if (rc != 0)
			return rc > 0 ? 0 : 2;
	}
	if (o.demo)
		return run_demo();
	struct summary sum = { 0 };
	for (int k = 0; k < FIG_COUNT; k++)
		sum.fig[k] = calloc(o.seeds, sizeof(uint64_t));
	for (int k = 0; k < FIG_COUNT; k++)
		if (sum.fig[k] == NULL) /* too many seeds to keep: totals only */
			for (int j = 0; j < FIG_COUNT; j++) {
				free(sum.fig[j]);
				sum.fig[j] = NULL;
			}
	for (uint64_t i = 0; i < o.seeds; i++) {
		struct sim_params p;
		struct sim_result r;
		sim_params_from_seed(&p, o.from + i, (uint8_t)o.replicas, o.stock,
				     o.long_run);
		if (o.durable)
			sim_params_durable(&p, o.from + i);
		p.verbose = o.verbose;
		double t0 = wall_ms();
		sim_run(&p, &r);
		summary_add(&sum, p.seed, &r, wall_ms() - t0);
		if (r.violations) {
			sum.violations++;
			print_failure(&o, p.seed, &r);
			if (o.stop)
				break;
		}
		if (!o.single && o.seeds >= 100 && (i + 1) % (o.seeds / 10) == 0)
			fprintf(stderr, "sim: %" PRIu64 "/%" PRIu64 " seeds\n",
				i + 1, o.seeds);
	}
	summary_print(&sum, &o);
	for (int k = 0; k < FIG_COUNT; k++)
		free(sum.fig[k]);
	free(sum.failover_ns);
	return sum.violations ? 1 : 0;
}
