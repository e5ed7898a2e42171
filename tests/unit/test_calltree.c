// SPDX-License-Identifier: MIT
/* Unit tests of the call tree: counts along paths, exclusive counts by
 * function, the text tree and folded stacks that sum to what went in. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "calltree.h"

static void test_counts_tree_and_folded(void **state)
{
	const char *a[] = { "ip_rcv", "ip_rcv_core" }, *b[] = { "ip_rcv" }, *c[] = { "ip_rcv", "nf_hook", "ip_rcv_core" };
	struct calltree *t;
	char out[4096];
	FILE *f;

	(void)state;
	assert_int_equal(calltree_new(&t), 0);
	for (int i = 0; i < 5; i++)
		calltree_add(t, a, 2, 1);
	calltree_add(t, b, 1, 3);
	calltree_add(t, c, 3, 2);
	assert_int_equal(calltree_total(t), 10);
	/* ip_rcv_core runs under two callers: 5 + 2 */
	assert_int_equal(calltree_exclusive(t, "ip_rcv_core"), 7);
	assert_int_equal(calltree_exclusive(t, "ip_rcv"), 3);
	f = fmemopen(out, sizeof(out), "w");
	calltree_folded(t, f);
	fclose(f);
	assert_non_null(strstr(out, "ip_rcv;ip_rcv_core 5\n"));
	assert_non_null(strstr(out, "ip_rcv 3\n"));
	assert_non_null(strstr(out, "ip_rcv;nf_hook;ip_rcv_core 2\n"));
	f = fmemopen(out, sizeof(out), "w");
	calltree_print(t, f, 2);
	fclose(f);
	assert_non_null(strstr(out, "        10          3  ip_rcv\n"));
	assert_non_null(strstr(out, "         5          5    ip_rcv_core\n"));
	assert_non_null(strstr(out, "         2          0    nf_hook\n"));
	assert_null(strstr(out, "      ip_rcv_core")); /* depth 2: not the third level */
	calltree_free(t);
}

/* Calls run whole under kstep step --max-depth: one each, marked as such. */
static void test_calls_run_whole_are_marked(void **state)
{
	const char *in[] = { "udp_rcv" }, *over[] = { "udp_rcv", "__udp4_lib_lookup" };
	struct calltree *t;
	char out[4096];
	FILE *f;

	(void)state;
	assert_int_equal(calltree_new(&t), 0);
	calltree_add(t, in, 1, 7);
	calltree_add_over(t, over, 2);
	calltree_add_over(t, over, 2);
	assert_int_equal(calltree_total(t), 9);
	f = fmemopen(out, sizeof(out), "w");
	calltree_print(t, f, 0);
	fclose(f);
	assert_non_null(strstr(out, "         9          7  udp_rcv\n"));
	assert_non_null(strstr(out, "         2          2    __udp4_lib_lookup  [2 calls ran whole, instructions not "
				    "counted]\n"));
	calltree_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_counts_tree_and_folded),
					    cmocka_unit_test(test_calls_run_whole_are_marked) };

	return cmocka_run_group_tests_name("calltree", tests, NULL, NULL);
}
