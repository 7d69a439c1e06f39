/* The handshake by which bypaxd's main thread takes a port from the worker
 * (to stop, restart or hold it) and gives it back: one byte per port,
 * written by both threads (struct dp_replica's port_paused).
 *
 *   DP_PORT_OURS     0  the worker polls and sends on the port;
 *   DP_PORT_ASKED    1  the main thread wants it;
 *   DP_PORT_LET_GO   2  the worker has let go: it neither polls nor sends
 *                       on it until the main thread writes 0 again.
 *
 * Only the main thread writes 0 and 1: a release after a restart, or a
 * request withdrawn after its timeout. The worker only ever moves 1 to 2,
 * by compare-and-swap. A plain store of 2 after reading a nonzero byte
 * could land just after the main thread's 0 and undo it: the port would
 * then stay paused for good, its link up at both ends and nothing sent or
 * received on it, and nothing repairs that (bypaxd's link checks leave a
 * paused port alone). Pure C, no DPDK: tests/unit/test_port_pause.c. */
#ifndef BPX_PORT_PAUSE_H
#define BPX_PORT_PAUSE_H

#include <stdbool.h>
#include <stdint.h>

enum {
	DP_PORT_OURS = 0,
	DP_PORT_ASKED = 1,
	DP_PORT_LET_GO = 2
};

/* The worker, for a port it is about to poll, with seen the byte as it
 * read it: true when the port is the worker's to use this pass. A request
 * is acknowledged only while it still stands, so a release or withdrawal
 * that came after the read is kept. */
static inline bool dp_port_worker_may_use(volatile uint8_t *state, uint8_t seen)
{
	if (seen == DP_PORT_OURS)
		return true;
	uint8_t asked = DP_PORT_ASKED;
	if (seen == DP_PORT_ASKED)
		__atomic_compare_exchange_n(state, &asked, DP_PORT_LET_GO,
					    false, __ATOMIC_ACQ_REL,
					    __ATOMIC_ACQUIRE);
	return false;
}

#endif
