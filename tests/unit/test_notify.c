/* Unit tests for bypaxd's sd_notify protocol (dataplane/notify.c): the
 * test plays systemd, listening on the datagram socket that
 * $NOTIFY_SOCKET names (abstract '@' and a path), and checks what
 * arrives, and when WATCHDOG=1 is (not) sent. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

#define MS 1000000ull

/* A listener at name ('@' first: abstract). */
static int listen_at(const char *name)
{
	struct sockaddr_un a;
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	size_t len = strlen(name);
	memcpy(a.sun_path, name, len);
	socklen_t alen =
		(socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	if (name[0] == '@')
		a.sun_path[0] = '\0';
	else
		alen++;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, alen), 0);
	return fd;
}

/* The next datagram, or "" when none waits. */
static const char *next_message(int fd)
{
	static char buf[512];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void unset_all(void)
{
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

static void test_outside_systemd(void **state)
{
	(void)state;
	unset_all();
	struct dp_notify n;
	char why[256] = "";
	assert_int_equal(dp_notify_open(&n, why, sizeof(why)), 0);
	assert_false(dp_notify_enabled(&n));
	dp_notify_send(&n, "READY=1"); /* nothing, and no crash */
	dp_notify_watchdog(&n, 1000 * MS, true);
	dp_notify_close(&n);
}

static void test_abstract_socket(void **state)
{
	(void)state;
	unset_all();
	char name[64];
	snprintf(name, sizeof(name), "@bypax-test-notify-%d", (int)getpid());
	int fd = listen_at(name);
	setenv("NOTIFY_SOCKET", name, 1);
	struct dp_notify n;
	char why[256] = "";
	assert_int_equal(dp_notify_open(&n, why, sizeof(why)), 0);
	assert_true(dp_notify_enabled(&n));
	dp_notify_send(&n, "READY=1\nSTATUS=member 1 of cluster 7: leader");
	assert_string_equal(next_message(fd),
			    "READY=1\nSTATUS=member 1 of cluster 7: leader");
	/* No WATCHDOG_USEC: no watchdog pings. */
	dp_notify_watchdog(&n, 1000 * MS, true);
	assert_string_equal(next_message(fd), "");
	dp_notify_close(&n);
	close(fd);
}

static void test_path_socket_and_watchdog(void **state)
{
	(void)state;
	unset_all();
	char path[64];
	snprintf(path, sizeof(path), "/tmp/bypax-test-notify-%d.sock",
		 (int)getpid());
	unlink(path);
	int fd = listen_at(path);
	setenv("NOTIFY_SOCKET", path, 1);
	setenv("WATCHDOG_USEC", "400000", 1); /* 400 ms: a ping per 200 */
	char pid[24];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	struct dp_notify n;
	char why[256] = "";
	assert_int_equal(dp_notify_open(&n, why, sizeof(why)), 0);
	assert_int_equal(n.watchdog_ns, 400 * MS);
	dp_notify_watchdog(&n, 1000 * MS, true); /* the first at once */
	assert_string_equal(next_message(fd), "WATCHDOG=1");
	dp_notify_watchdog(&n, 1199 * MS, true); /* under half: not yet */
	assert_string_equal(next_message(fd), "");
	dp_notify_watchdog(&n, 1200 * MS, true);
	assert_string_equal(next_message(fd), "WATCHDOG=1");
	/* A worker that does not poll gets no ping, however long. */
	dp_notify_watchdog(&n, 1500 * MS, false);
	dp_notify_watchdog(&n, 9000 * MS, false);
	assert_string_equal(next_message(fd), "");
	dp_notify_watchdog(&n, 9100 * MS, true); /* polls again */
	assert_string_equal(next_message(fd), "WATCHDOG=1");
	dp_notify_close(&n);
	close(fd);
	unlink(path);
}

/* The watchdog of another pid (a parent's) is not ours. */
static void test_watchdog_of_another_pid(void **state)
{
	(void)state;
	unset_all();
	setenv("NOTIFY_SOCKET", "@bypax-test-notify-nobody", 1);
	setenv("WATCHDOG_USEC", "400000", 1);
	setenv("WATCHDOG_PID", "1", 1);
	struct dp_notify n;
	char why[256] = "";
	assert_int_equal(dp_notify_open(&n, why, sizeof(why)), 0);
	assert_int_equal(n.watchdog_ns, 0);
	/* Nobody listens: counted, never blocking or failing. */
	dp_notify_send(&n, "READY=1");
	assert_int_equal(n.dropped, 1);
	dp_notify_close(&n);
}

static void test_bad_values(void **state)
{
	(void)state;
	const char *bad_sockets[] = { "relative/path", "@", "x" };
	for (size_t i = 0; i < sizeof(bad_sockets) / sizeof(bad_sockets[0]);
	     i++) {
		unset_all();
		setenv("NOTIFY_SOCKET", bad_sockets[i], 1);
		struct dp_notify n;
		char why[256] = "";
		assert_int_equal(dp_notify_open(&n, why, sizeof(why)), -1);
		if (strstr(why, bad_sockets[i]) == NULL)
			fail_msg("'%s' not named in: %s", bad_sockets[i], why);
	}
	const char *bad_usec[] = { "0", "-5", "5s" };
	for (size_t i = 0; i < sizeof(bad_usec) / sizeof(bad_usec[0]); i++) {
		unset_all();
		setenv("NOTIFY_SOCKET", "@bypax-test-notify-x", 1);
		setenv("WATCHDOG_USEC", bad_usec[i], 1);
		struct dp_notify n;
		char why[256] = "";
		assert_int_equal(dp_notify_open(&n, why, sizeof(why)), -1);
		assert_non_null(strstr(why, "WATCHDOG_USEC"));
	}
	unset_all();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outside_systemd),
		cmocka_unit_test(test_abstract_socket),
		cmocka_unit_test(test_path_socket_and_watchdog),
		cmocka_unit_test(test_watchdog_of_another_pid),
		cmocka_unit_test(test_bad_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
