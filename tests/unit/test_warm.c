// SPDX-License-Identifier: MIT
/* warm: from ip_local_deliver, the functions it calls directly are
 * queued, and theirs once those are warmed; the queue ends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vmlinux.h"
#include "warm.h"

static uint64_t addr_of(const char *name)
{
	const struct sym *s = sym_lookup_name(syms, name);

	assert_non_null(s);
	return s->addr;
}

static void test_direct_calls_breadth_first(void **state)
{
	struct disasm *dis;
	struct warm *w;
	int slices = 0;

	(void)state;
	assert_int_equal(disasm_open(&dis), 0);
	assert_non_null(w = warm_new(syms, dis, NULL, NULL, addr_of("ip_local_deliver") + 4));
	assert_true(warm_queued(w, addr_of("ip_local_deliver"))); /* the function, from inside it */
	assert_false(warm_queued(w, addr_of("ip_protocol_deliver_rcu")));
	assert_true(warm_some(w, 0)); /* no time: nothing warmed, the function still to do */
	while (warm_some(w, 1000))
		assert_true(++slices < 120);
	assert_true(warm_queued(w, addr_of("ip_protocol_deliver_rcu"))); /* called by it */
	assert_true(warm_queued(w, addr_of("raw_local_deliver")));        /* called by that */
	assert_false(warm_queued(w, addr_of("start_kernel")));            /* reached by none of them */
	assert_false(warm_queued(w, 0));
	warm_free(w);
	disasm_close(dis);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_direct_calls_breadth_first),
	};

	return cmocka_run_group_tests_name("warm", tests, open_vmlinux, close_vmlinux);
}
