/* Planted bugs, for proving that the tests catch each class of bug the
 * project has had (issue 8: "a switch in test builds").
 *
 * The shipped library is built without PX_TEST_PLANTS: PX_PLANTED(x) is the
 * constant 0 and every planted branch is dead code the compiler removes.
 * tests/sim builds a second copy of consensus/ with PX_TEST_PLANTS defined
 * (bypax-sim-plant); its --plant NAME sets px_plant before any replica
 * starts, and one run of seeds must then report a violation. */
#ifndef BYPAX_CONSENSUS_PLANT_H
#define BYPAX_CONSENSUS_PLANT_H

/* X(name, text): every planted bug, named for the rule it breaks. */
#define PX_PLANT_LIST(X)                                                       \
	X(NONE, "none", "no bug planted")                                      \
	X(ACCEPT_LOWER_BALLOT, "accept-lower-ballot",                          \
	  "an acceptor accepts a ballot below its promise")                    \
	X(RECOVERY_NO_FENCE, "recovery-no-fence",                              \
	  "a recovering replica votes without its fencing round")              \
	X(RECOVERY_NO_INCARNATION, "recovery-no-incarnation",                  \
	  "no incarnations: votes of a crashed life count, lives share ballots") \
	X(LEASE_NOT_REFUSED, "lease-not-refused",                              \
	  "followers promise other candidates while a lease runs")             \
	X(LEASE_OWN_PROMISE, "lease-own-promise",                              \
	  "a replica that granted a lease is elected while it runs")           \
	X(LEASE_NEW_CONFIG, "lease-new-config",                                \
	  "a lease counts without phase 1 of the configuration in force")      \
	X(QUORUM_ALL_REPLICAS, "quorum-all-replicas",                          \
	  "quorums over all replicas instead of the slot's configuration")     \
	X(SESSION_FIRST_SEQ, "session-first-seq",                              \
	  "the first request of an unknown session is applied")              \
	X(DURABLE_REPLAY_NO_PROMISE, "durable-replay-no-promise",              \
	  "a durable replica's restart skips its PROMISE records")             \
	X(DURABLE_REPLAY_NO_ACCEPTED, "durable-replay-no-accepted",            \
	  "a durable replica's restart skips its ACCEPTED records")

enum px_plant {
#define PX_PLANT_ENUM(name, flag, text) PX_PLANT_##name,
	PX_PLANT_LIST(PX_PLANT_ENUM)
#undef PX_PLANT_ENUM
	PX_PLANT_COUNT
};

#ifdef PX_TEST_PLANTS
extern enum px_plant px_plant; /* set once, before any replica starts */
#define PX_PLANTED(name) (px_plant == PX_PLANT_##name)
#else
#define PX_PLANTED(name) 0
#endif

#endif
