// SPDX-License-Identifier: MIT
/* bigmem: a table is zeroed, aligned for 2 MiB pages, keeps what is written
 * to it when faulted in, and is not there in a child forked after it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bigmem.h"

#define SIZE ((size_t)5 << 20) /* not a whole number of 2 MiB pages */

static void test_zeroed_aligned_populated(void **state)
{
	uint8_t *p = bigmem_alloc(SIZE);

	(void)state;
	assert_non_null(p);
	assert_int_equal((uintptr_t)p % ((size_t)2 << 20), 0);
	for (size_t i = 0; i < SIZE; i += 4096)
		assert_int_equal(p[i], 0);
	p[0] = 1;
	p[SIZE - 1] = 2;
	bigmem_populate(p, SIZE);
	assert_int_equal(p[0], 1);
	assert_int_equal(p[SIZE - 1], 2);
	bigmem_free(p, SIZE);
	bigmem_free(NULL, SIZE);
}

static void test_not_in_a_child(void **state)
{
	volatile uint8_t *p = bigmem_alloc(SIZE);
	int status;
	pid_t pid;

	(void)state;
	assert_non_null(p);
	p[0] = 7;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL); /* not cmocka's handler */
		_exit(p[0]);              /* not mapped here: SIGSEGV */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSEGV);
	assert_int_equal(p[0], 7);
	bigmem_free((void *)p, SIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zeroed_aligned_populated),
		cmocka_unit_test(test_not_in_a_child),
	};

	return cmocka_run_group_tests_name("bigmem", tests, NULL, NULL);
}
