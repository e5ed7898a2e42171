// SPDX-License-Identifier: MIT
/* Unit tests of oops log parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "oops.h"

static void test_frames(void **state)
{
	struct oops_frame f;
	const char *l1 = "[    2.345678]  sysrq_handle_crash+0x16/0x20";
	const char *l2 = "[    2.345678]  ? __die_body.cold+0x1a/0x1f";
	const char *l3 = "RIP: 0010:sysrq_handle_crash+0x16/0x20";
	const char *l4 = " e1000_clean+0x566/0x700 [e1000 a1b2c3]";

	(void)state;
	assert_true(oops_parse_frame(l1, &f));
	assert_string_equal(f.name, "sysrq_handle_crash");
	assert_true(f.offset == 0x16 && f.size == 0x20);
	assert_false(f.unreliable);
	assert_int_equal(f.start, 16);
	assert_int_equal(f.end, strlen(l1));
	assert_true(oops_parse_frame(l2, &f));
	assert_string_equal(f.name, "__die_body.cold");
	assert_true(f.unreliable);
	assert_true(oops_parse_frame(l3, &f));
	assert_string_equal(f.segment, "0010:");
	assert_string_equal(f.name, "sysrq_handle_crash");
	assert_int_equal(f.start, 5);
	assert_true(oops_parse_frame(l4, &f));
	assert_string_equal(f.module, "e1000");
	/* not frames */
	assert_false(oops_parse_frame("Call Trace:", &f));
	assert_false(oops_parse_frame("x+0x12 without size", &f));
	assert_false(oops_parse_frame("+0x12/0x34 no name", &f));
	assert_false(oops_parse_frame("f+0xzz/0x10", &f));
	assert_false(oops_parse_frame("", &f));
}

/* The size after '/' is kallsyms' distance to the next symbol: padding
 * included, so it may exceed the ELF size, up to the next function. */
static void test_size_rule(void **state)
{
	(void)state;
	assert_true(oops_size_fits(0x20, 0x20, 0x20));   /* no padding */
	assert_true(oops_size_fits(0x30, 0x1d, 0x30));   /* padded to 16 */
	assert_true(oops_size_fits(0x40, 0x1d, 0x50));   /* an unsized label before the next function */
	assert_false(oops_size_fits(0x10, 0x1d, 0x30));  /* smaller than the function: another build */
	assert_false(oops_size_fits(0x80, 0x1d, 0x30));  /* past the next function: another build */
	assert_true(oops_size_fits(0, 0x1d, 0x30));      /* no size printed */
	assert_true(oops_size_fits(0x30, 0, 0));         /* nothing known */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frames),
		cmocka_unit_test(test_size_rule),
	};

	return cmocka_run_group_tests_name("oops", tests, NULL, NULL);
}
