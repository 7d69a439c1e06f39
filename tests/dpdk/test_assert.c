/* bypaxd's assertion handler (dataplane/dp_common.c): a broken consensus
 * invariant prints its expression, file and line, then aborts. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "dp.h"

static void test_assertion_names_expression_file_and_line(void **state)
{
	(void)state;
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		px_assert_fail("r->applied_index <= r->commit_index",
			       "consensus/learner.c", 123);
		_exit(0); /* not reached */
	}
	close(fds[1]);
	char buf[256] = { 0 };
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(buf) - 1 &&
	       (n = read(fds[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fds[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
	assert_non_null(strstr(buf, "assertion failed: r->applied_index <= "
				    "r->commit_index (consensus/learner.c:123)"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_assertion_names_expression_file_and_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
