/* Unit tests for the port handshake between bypaxd's main thread and the
 * worker (dataplane/port_pause.h): the worker acknowledges a request only
 * while it stands, so a release or a withdrawn request that lands between
 * the worker's read of the byte and its acknowledgement is never undone.
 * Before, the worker stored 2 whenever it had read a nonzero byte, and a
 * release in that window left the port paused for good (its link up at
 * both ends, nothing crossing it). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "port_pause.h"

/* The acknowledgement port_pause.h replaced (replica.c before): any
 * nonzero byte read, then 2 stored. */
static bool plain_store_may_use(volatile uint8_t *state, uint8_t seen)
{
	if (seen == DP_PORT_OURS)
		return true;
	*state = DP_PORT_LET_GO;
	return false;
}

static void test_worker_uses_its_own_port(void **st)
{
	(void)st;
	volatile uint8_t b = DP_PORT_OURS;
	assert_true(dp_port_worker_may_use(&b, b));
	assert_int_equal(b, DP_PORT_OURS);
}

static void test_request_is_acknowledged(void **st)
{
	(void)st;
	volatile uint8_t b = DP_PORT_ASKED;
	assert_false(dp_port_worker_may_use(&b, b));
	assert_int_equal(b, DP_PORT_LET_GO);
	/* Held: the worker keeps off it, and writes nothing. */
	assert_false(dp_port_worker_may_use(&b, b));
	assert_int_equal(b, DP_PORT_LET_GO);
}

/* The main thread releases a held port (restart_port, a fault's end)
 * after the worker read 2 and before its acknowledgement. */
static void test_release_after_the_read_is_kept(void **st)
{
	(void)st;
	volatile uint8_t b = DP_PORT_LET_GO;
	uint8_t seen = b;
	b = DP_PORT_OURS; /* main thread: released */
	assert_false(dp_port_worker_may_use(&b, seen));
	assert_int_equal(b, DP_PORT_OURS);
	assert_true(dp_port_worker_may_use(&b, b)); /* the next pass polls */

	/* The rule it replaced loses the release: paused for good. */
	volatile uint8_t old = DP_PORT_LET_GO;
	seen = old;
	old = DP_PORT_OURS;
	assert_false(plain_store_may_use(&old, seen));
	assert_int_equal(old, DP_PORT_LET_GO);
}

/* pause_port gives up after 1 s without an answer and writes 0; the
 * worker, back from a long step, had read the request just before. */
static void test_withdrawn_request_is_kept(void **st)
{
	(void)st;
	volatile uint8_t b = DP_PORT_ASKED;
	uint8_t seen = b;
	b = DP_PORT_OURS; /* main thread: request withdrawn */
	assert_false(dp_port_worker_may_use(&b, seen));
	assert_int_equal(b, DP_PORT_OURS);
}

/* Both threads for real: the main thread asks, waits for the worker to
 * let go, releases and waits for the worker to poll again, many times.
 * A lost release shows as a wait that never ends (bounded here). */
#define STRESS_ROUNDS 2000
#define STRESS_WAIT_NS 10000000000ll

struct stress {
	volatile uint8_t byte;
	volatile uint64_t polls; /* passes in which the worker used the port */
	volatile bool stop;
};

static void *stress_worker(void *arg)
{
	struct stress *s = arg;
	while (!s->stop) {
		/* While the port is held, the read and the acknowledgement
		 * back to back, as fast as it goes: the window a release
		 * must not fall into (the rule it replaced fails within a
		 * few rounds here). */
		if (dp_port_worker_may_use(&s->byte, s->byte)) {
			__atomic_add_fetch(&s->polls, 1, __ATOMIC_RELEASE);
			sched_yield();
		}
	}
	return NULL;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void test_threads_never_lose_a_release(void **st)
{
	(void)st;
	struct stress s = { .byte = DP_PORT_OURS };
	pthread_t worker;
	assert_int_equal(pthread_create(&worker, NULL, stress_worker, &s), 0);
	for (int round = 0; round < STRESS_ROUNDS; round++) {
		s.byte = DP_PORT_ASKED;
		int64_t give_up = now_ns() + STRESS_WAIT_NS;
		while (s.byte != DP_PORT_LET_GO && now_ns() < give_up)
			sched_yield();
		assert_int_equal(s.byte, DP_PORT_LET_GO);
		uint64_t polls = __atomic_load_n(&s.polls, __ATOMIC_ACQUIRE);
		__atomic_store_n(&s.byte, DP_PORT_OURS, __ATOMIC_RELEASE);
		give_up = now_ns() + STRESS_WAIT_NS;
		while (__atomic_load_n(&s.polls, __ATOMIC_ACQUIRE) == polls &&
		       now_ns() < give_up)
			sched_yield();
		if (__atomic_load_n(&s.polls, __ATOMIC_ACQUIRE) == polls)
			fail_msg("round %d: released, but the worker never "
				 "polled again (byte %u)",
				 round, s.byte);
	}
	s.stop = true;
	pthread_join(worker, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_worker_uses_its_own_port),
		cmocka_unit_test(test_request_is_acknowledged),
		cmocka_unit_test(test_release_after_the_read_is_kept),
		cmocka_unit_test(test_withdrawn_request_is_kept),
		cmocka_unit_test(test_threads_never_lose_a_release),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
