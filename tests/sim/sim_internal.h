/* Shared between the simulator's files. */
#ifndef BYPAX_SIM_INTERNAL_H
#define BYPAX_SIM_INTERNAL_H

#include "sim.h"

/* Reports an invariant violation of the run in progress (printf-style). */
void sim_violation(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

const struct bpx_sm_ops *sim_sm_ops(void);

/* The checker: observes every message replicas send and the state of each
 * replica after every step. */
struct sim_checker;
struct sim_checker *checker_new(uint8_t replicas, uint8_t clients,
				uint8_t alpha);
void checker_free(struct sim_checker *c);
void checker_observe(struct sim_checker *c, const struct px_msg *m);
void checker_after_step(struct sim_checker *c, uint8_t node,
			struct px_replica *r);
void checker_node_reset(struct sim_checker *c, uint8_t node);
/* A client got OK for its write number seq (the command's prefix): it must
 * be in a chosen slot. */
void checker_acked(struct sim_checker *c, uint32_t client, uint64_t seq);
uint64_t checker_chosen_slots(const struct sim_checker *c);
/* OPENs in chosen slots: a bound on the sessions ever created, so while it
 * is at most session_max no session can have been evicted. */
uint64_t checker_opens_chosen(const struct sim_checker *c);

#endif
