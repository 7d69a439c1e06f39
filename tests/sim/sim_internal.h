/* Shared between the simulator's files. */
#ifndef BYPAX_SIM_INTERNAL_H
#define BYPAX_SIM_INTERNAL_H

#include "sim.h"

/* Reports an invariant violation of the run in progress (printf-style). */
void sim_violation(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

const struct bpx_sm_ops *sim_sm_ops(void);
/* The last write of client slot ci the state machine applied. */
uint64_t sim_sm_last_seq(void *sm, uint32_t ci);

/* The checker: observes every message replicas send and the state of each
 * replica after every step. */
struct sim_checker;
struct sim_checker *checker_new(uint8_t replicas, uint8_t clients,
				uint8_t alpha, bool durable);
void checker_free(struct sim_checker *c);
void checker_observe(struct sim_checker *c, const struct px_msg *m);
void checker_after_step(struct sim_checker *c, uint8_t node,
			struct px_replica *r);
void checker_node_reset(struct sim_checker *c, uint8_t node);
/* --durable: a leader's record of its own vote for its proposal (slot,
 * ballot, value) is on disk: the vote counts from now on. */
void checker_leader_vote_synced(struct sim_checker *c, uint8_t node,
				uint64_t slot, uint64_t ballot,
				const uint8_t *value, uint32_t len);
/* --durable: a replica just restarted from its disk holds every vote it
 * sent for the slots it has not applied. */
void checker_after_restart(struct sim_checker *c, uint8_t node,
			   struct px_replica *r);
/* A client got OK for its write number seq (the command's prefix): it must
 * be in a chosen slot. */
void checker_acked(struct sim_checker *c, uint32_t client, uint64_t seq);
uint64_t checker_chosen_slots(const struct sim_checker *c);
/* OPENs in chosen slots: a bound on the sessions ever created, so while it
 * is at most session_max no session can have been evicted. */
uint64_t checker_opens_chosen(const struct sim_checker *c);

/* The disk of one replica in durable mode (sim_disk.c). */
struct sim_disk {
	uint8_t *bytes;      /* the record log */
	size_t len, cap;
	size_t synced;       /* bytes a crash keeps */
	size_t last_record;  /* offset of the last whole record */
	uint64_t records;    /* whole records */
	uint8_t *snap;       /* the last snapshot saved (durable at once) */
	size_t snap_len;
	/* What happened to it (for the summary). */
	uint64_t syncs, torn, cuts, recycles;
	uint64_t kept_unsynced; /* crashes that kept unsynced records */
};
void sim_disk_append(struct sim_disk *d, const struct px_msg *rec);
void sim_disk_sync(struct sim_disk *d);
bool sim_disk_pending(const struct sim_disk *d);
/* A crash: of the unsynced records a prefix is kept (rnd says how many:
 * maybe none, maybe all), the rest lost; torn: part of the write in flight
 * is left at the end (rnd says how much). */
void sim_disk_crash(struct sim_disk *d, bool torn, uint64_t rnd);
/* Flips a byte in a synced record that has another after it; false when
 * there is no such record. */
bool sim_disk_corrupt(struct sim_disk *d, uint64_t rnd);
/* Restarts r from d (px_snapshot_install, px_durable_replay), cutting a
 * torn tail. Returns 0; -1 with why when the disk is corrupt (the replica
 * must stay down); -2 when the core refused a sound record (a bug). */
int sim_disk_replay(struct sim_disk *d, struct px_replica *r, uint8_t self,
		    char *why, size_t why_len);
/* Saves r's snapshot on d, then (recycle_after) recycles the records it
 * covers; without, they stay (as a crash before the recycle leaves them). */
int sim_disk_save_snapshot(struct sim_disk *d, const struct px_replica *r,
			   uint8_t self, bool recycle_after);
void sim_disk_free(struct sim_disk *d);

#endif
