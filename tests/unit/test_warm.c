// SPDX-License-Identifier: MIT
/* warm: from ip_local_deliver, the functions it calls directly are
 * queued, and theirs once those are warmed; the queue ends. Then every
 * unit's line table is read: a line in code the queue never reached is
 * then named without reading one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "trace.h"
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

/* How long naming the line of @name + 8 takes in @s. */
static uint64_t line_lookup_ns(struct symtab *s, const char *name)
{
	struct sym_srcloc loc;
	uint64_t t0 = trace_now_ns();

	assert_int_equal(sym_srclocs(s, addr_of(name) + 8, &loc, 1), 1);
	return trace_now_ns() - t0;
}

static void test_every_unit_lines_read_after_the_queue(void **state)
{
	char err[1024];
	struct symtab *cold;
	struct disasm *dis;
	struct warm *w;
	uint64_t cold_ns, warm_ns;

	(void)state;
	/* Cold: libdw open and its unit index built (an ip_input.c line),
	 * then start_kernel's unit read at the lookup. */
	assert_int_equal(sym_open(&cold, vmlinux, err, sizeof(err)), 0);
	line_lookup_ns(cold, "ip_local_deliver");
	cold_ns = line_lookup_ns(cold, "start_kernel");
	sym_close(cold);
	assert_int_equal(disasm_open(&dis), 0);
	assert_non_null(w = warm_new(syms, dis, NULL, NULL, addr_of("ip_local_deliver")));
	while (warm_some(w, 1000))
		;
	assert_false(warm_queued(w, addr_of("start_kernel")));
	warm_ns = line_lookup_ns(syms, "start_kernel");
	assert_true(warm_ns * 4 < cold_ns);
	warm_free(w);
	disasm_close(dis);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_direct_calls_breadth_first),
		cmocka_unit_test(test_every_unit_lines_read_after_the_queue),
	};

	return cmocka_run_group_tests_name("warm", tests, open_vmlinux, close_vmlinux);
}
