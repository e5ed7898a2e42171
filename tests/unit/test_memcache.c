// SPDX-License-Identifier: MIT
/* Unit tests of the engine's memory cache: where the stack window is
 * fetched (stops, steps with and without a foreseen rsp, both ends of a
 * 16 KiB stack) and what an offline cache answers while a step runs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "memcache.h"

#define STACK 0xffffc90000014000ull /* a 16 KiB-aligned kernel stack */
#define WMAX 2040                   /* QEMU's PacketSize 4096 */

static void test_stop_window_around_last_rsp(void **state)
{
	struct window_plan w = memcache_plan_window(STACK + 0x3000, 0, false, false, 256, WMAX);

	(void)state;
	assert_int_equal(w.start, STACK + 0x3000 - 256);
	assert_int_equal(w.len, WMAX);
	/* Near the top of the stack: never past its end. */
	w = memcache_plan_window(STACK + 0x3f00, 0, false, false, 256, WMAX);
	assert_int_equal(w.start, STACK + 0x3e00);
	assert_int_equal(w.len, 0x200);
	/* Near its bottom: not below its start. */
	w = memcache_plan_window(STACK + 0x20, 0, false, false, 256, WMAX);
	assert_int_equal(w.start, STACK);
}

static void test_step_window_where_rsp_will_be(void **state)
{
	/* Foreseen rsp: 64 bytes below it for an exception frame, then @want. */
	struct window_plan w = memcache_plan_window(STACK + 0x3000, STACK + 0x2ff8, true, true, 256, WMAX);

	(void)state;
	assert_int_equal(w.start, STACK + 0x2ff8 - 64);
	assert_int_equal(w.len, 64 + 256);
	/* Not foreseen: a margin either way around the last rsp. */
	w = memcache_plan_window(STACK + 0x3000, 0, true, false, 256, WMAX);
	assert_int_equal(w.start, STACK + 0x3000 - 256);
	assert_int_equal(w.len, 256 + 256 + 256);
	/* A large --stack-bytes: all of it first, the margin gives way. */
	w = memcache_plan_window(STACK + 0x3000, STACK + 0x3000, true, true, 2000, WMAX);
	assert_int_equal(w.start, STACK + 0x3000 - 40);
	assert_int_equal(w.len, WMAX);
}

static void test_offline_reads_only_the_cache(void **state)
{
	struct memcache *mc;
	uint8_t *win, out[8], code[4];
	uint64_t v = 0x1122334455667788ull;

	(void)state;
	/* No target: every read below must be answered without one. */
	assert_int_equal(memcache_new(&mc, NULL, WMAX), 0);
	win = memcache_window(mc, NULL, NULL);
	memcpy(win + 16, &v, 8);
	memcache_set_window(mc, STACK + 0x3000, 64);
	memcache_set_offline(mc, true);
	assert_int_equal(memcache_read(mc, STACK + 0x3010, out, 8), 0);
	assert_memory_equal(out, &v, 8);
	assert_false(memcache_missed(mc));
	/* Outside the window, or code never fetched: a miss, noted. */
	assert_int_equal(memcache_read(mc, STACK + 0x3100, out, 8), -EAGAIN);
	assert_true(memcache_missed(mc));
	memcache_set_offline(mc, true);
	assert_false(memcache_missed(mc));
	assert_int_equal(memcache_code(mc, 0xffffffff81000000ull, code, sizeof(code)), -EAGAIN);
	assert_true(memcache_missed(mc));
	memcache_free(mc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stop_window_around_last_rsp),
		cmocka_unit_test(test_step_window_where_rsp_will_be),
		cmocka_unit_test(test_offline_reads_only_the_cache),
	};

	return cmocka_run_group_tests_name("memcache", tests, NULL, NULL);
}
