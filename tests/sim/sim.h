/* bypax-sim: a deterministic simulator. Replicas (the real consensus and
 * control code), clients, a network and a clock, all in one process, driven
 * by one seed, one event per step. */
#ifndef BYPAX_SIM_H
#define BYPAX_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bypax/consensus.h"
#include "lincheck.h"
#include "omega.h"

#define SIM_CLIENTS_MAX 16u
#define SIM_KEYS 5u
#define SIM_CLIENT_ID_BASE 1000u
#define SIM_WINDOW_SLOTS 8u
#define SIM_FAILOVERS_MAX 64u

/* Fault rates, drawn per seed (swarm testing): each seed stresses a
 * different mix. Percentages are per message or per fault decision. */
struct sim_faults {
	uint32_t drop_pct;
	uint32_t dup_pct;
	uint64_t delay_min_ns;
	uint64_t delay_max_ns;       /* reordering comes from spread delays */
	uint64_t partition_every_ns; /* 0: no partitions */
	uint64_t crash_every_ns;     /* 0: no crashes */
	uint64_t pause_every_ns;     /* 0: no pauses */
	uint64_t skew_ppm_max;       /* clock rate error per replica */
	uint64_t skew_offset_max_ns; /* clock offset per replica */
	uint64_t lease_ns;           /* 0: reads go through the log */
	uint64_t reconfig_every_ns;  /* membership changes; 0: none */
	uint64_t client_timeout_ns;  /* short: clients move on while a
					leader is paused or cut off */
	/* Not in the stock simulator (0 under --stock): */
	uint32_t plane_split_pct;    /* partitions that cut only the control
					plane (heartbeats) or only the data
					plane (consensus messages) */
	uint32_t leader_target_pct;  /* partitions centred on the leader */
	uint64_t restart_max_ns;     /* a crashed replica restarts within */
	uint64_t nemesis_every_ns;   /* leader-centred lease attacks: cuts
					around the leader and a rogue
					leader hint (sim_world.c); 0: none */
	uint32_t nemesis_config_pct; /* of those, membership lease attacks
					(5 members or more) */
	uint64_t recovery_every_ns;  /* recovery attacks (sim_world.c; 5
					members or more, seeds without lease
					attacks); 0: none */
	/* Durable mode only (--durable; sim_disk.c): */
	uint64_t whole_crash_every_ns; /* every replica crashes at once */
	uint32_t torn_pct;           /* crashes that leave a torn write */
	uint32_t commit_skip_pct;    /* COMMIT records the caller skips */
	uint32_t snapshot_pct;       /* ticks that save a disk snapshot */
	uint64_t corrupt_every_ns;   /* a bad sector in a replica's log,
					found at its restart: it stays down
					(at most a minority of them) */
};

struct sim_params {
	uint64_t seed;
	uint8_t replicas;
	uint8_t clients;
	uint64_t fault_phase_ns;   /* faults happen in [0, fault_phase) */
	uint64_t settle_limit_ns;  /* then everything must complete by this */
	struct sim_faults faults;
	int verbose;               /* 1: narrate notable events (demo) */
	/* --stock: every feature added since the stock simulator is off, so
	 * a seed replays the stock fault schedule exactly. New features draw
	 * from their own PRNG streams, never from the stock ones. */
	bool stock;
	bool long_run;             /* --long: a long fault phase, more churn */
	bool durable;              /* --durable: replicas persist to a
				      simulated disk (sim_disk.c) */
	/* The session-eviction workload (off under --stock): */
	uint32_t session_max;      /* the replicas' session table; 0: 64 */
	uint32_t client_churn_pct; /* after an op, a client quits and a new
				      one (a new session) takes its place */
};

/* What one seed did. */
struct sim_result {
	uint64_t steps;
	uint64_t committed_slots;
	uint64_t requests_acked;
	uint64_t faults;
	uint64_t violations;
	uint64_t leader_changes;
	uint64_t lease_reads;
	uint64_t lincheck_unknown; /* histories too tangled to decide */
	uint64_t config_changes;   /* membership changes applied */
	uint64_t sim_time_ns;
	uint64_t recoveries;       /* restarted replicas that voted again */
	uint64_t stateless_max;    /* most replicas without state at once */
	uint64_t requests_expired; /* writes answered EXPIRED (legal ones) */
	uint64_t client_churns;    /* clients replaced by new ones */
	/* Failover: for each crash of the only leader, the time until a
	 * replica leads again (the first SIM_FAILOVERS_MAX of them). */
	uint64_t failovers;
	uint64_t failover_ns[SIM_FAILOVERS_MAX];
	/* --durable: */
	uint64_t whole_crashes;    /* every replica crashed at once */
	uint64_t disk_restarts;    /* restarts from a disk */
	uint64_t torn_cut;         /* torn tails cut at a restart */
	uint64_t corrupt_down;     /* replicas down for a corrupt record */
	uint64_t disk_syncs;
	uint64_t kept_unsynced;    /* crashes that kept unsynced records */
	char first_violation[512];
};

/* The parameters of one seed. stock: only the stock simulator's draws;
 * long_run: --long (ignored under stock). */
void sim_params_from_seed(struct sim_params *p, uint64_t seed,
			  uint8_t replicas, bool stock, bool long_run);
/* --durable: the disk's faults, from a stream of their own. */
void sim_params_durable(struct sim_params *p, uint64_t seed);
void sim_run(const struct sim_params *p, struct sim_result *res);

#endif
