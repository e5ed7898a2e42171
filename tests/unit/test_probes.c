// SPDX-License-Identifier: MIT
/* Unit tests of probe sets and specs (probes, probe_sets) against the
 * project's own vmlinux (images/vmlinux, or $IMAGES): the builtin sets,
 * specs with fields and %return, filters, KASLR, the trace's event
 * classes, and the errors of each, all before any guest runs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probes.h"
#include "symbols.h"
#include "vmlinux.h"
#include "trace.h"

static char err[1024];

static void new_set(struct probe_set *ps)
{
	memset(ps, 0, sizeof(*ps));
	probes_set_paths(ps, syms, vmlinux, NULL, NULL);
}

/* The rx set: every probe placed at a function of this vmlinux, on the
 * receive path's stages in order; the e1000 set has its driver's, the
 * virtio set not. */
static void test_rx_set(void **state)
{
	struct probe_set ps;
	bool e1000 = false;

	(void)state;
	new_set(&ps);
	assert_int_equal(probes_add_set(&ps, "rx", "e1000", syms), 0);
	assert_true(ps.n >= 5);
	for (size_t i = 0; i < ps.n; i++) {
		const struct sym *s = sym_lookup_addr(syms, ps.v[i].addr);

		assert_non_null(s);
		assert_true(ps.v[i].order > 0);
		assert_ptr_equal(probes_find(&ps, ps.v[i].addr), &ps.v[i]);
		e1000 |= !strncmp(s->name, "e1000", 5);
	}
	assert_true(e1000);
	probes_free(&ps);
	new_set(&ps);
	assert_int_equal(probes_add_set(&ps, "rx", "virtio", syms), 0);
	for (size_t i = 0; i < ps.n; i++)
		assert_true(!ps.v[i].addr || strncmp(sym_lookup_addr(syms, ps.v[i].addr)->name, "e1000", 5));
	probes_free(&ps);
}

/* "none" adds nothing; an unknown name is -ENOENT for the caller to
 * try as a file; a list adds each of its sets, or, if one is no set,
 * nothing. */
static void test_set_names(void **state)
{
	struct probe_set ps;
	size_t rx, oops;

	(void)state;
	new_set(&ps);
	assert_int_equal(probes_add_set(&ps, "none", NULL, syms), 0);
	assert_int_equal(ps.n, 0);
	assert_int_equal(probes_add_set(&ps, "kstep-no-such-set", NULL, syms), -ENOENT);
	assert_int_equal(probes_add_set(&ps, "rx", "e1000", syms), 0);
	rx = ps.n;
	assert_int_equal(probes_add_set(&ps, "oops", "e1000", syms), 0);
	oops = ps.n - rx;
	assert_true(rx > 0 && oops > 0);
	probes_free(&ps);
	new_set(&ps);
	assert_int_equal(probes_add_set(&ps, "rx,oops", "e1000", syms), 0);
	assert_int_equal(ps.n, rx + oops);
	probes_free(&ps);
	new_set(&ps);
	assert_int_equal(probes_add_set(&ps, "rx,none,oops", "e1000", syms), 0);
	assert_int_equal(ps.n, rx + oops);
	probes_free(&ps);
	new_set(&ps);
	for (size_t i = 0; i < 4; i++) {
		static const char *const bad[] = { "rx,kstep-no-such-set", "rx,", ",oops", "rx,,oops" };

		assert_int_equal(probes_add_set(&ps, bad[i], "e1000", syms), -ENOENT);
		assert_int_equal(ps.n, 0);
	}
	probes_free(&ps);
}

/* A spec with fields and a filter; its return; KASLR moves it. */
static void test_spec_fields_filter_return(void **state)
{
	const struct sym *s = sym_lookup_name(syms, "ip_rcv");
	struct probe_set ps;
	struct probe *p;

	(void)state;
	new_set(&ps);
	assert_int_equal(probes_add_spec(&ps, "ip_rcv len=skb->len dev=skb->dev->name", NULL, syms, err, sizeof(err)),
			 0);
	p = &ps.v[0];
	assert_int_equal(p->addr, s->addr);
	assert_true(p->at_entry);
	assert_int_equal(p->skb_arg, 0);
	assert_int_equal(p->nargs, 2);
	assert_string_equal(farg_name(p->args[0]), "len");
	assert_string_equal(farg_name(p->args[1]), "dev");
	assert_int_equal(probes_set_filter(&ps, 0, "len > 100 && dev == \"eth0\"", syms, err, sizeof(err)), 0);
	assert_non_null(p->filter);
	/* The return of a function already probed joins its probe. */
	assert_int_equal(probes_add_spec(&ps, "ip_rcv%return $retval", NULL, syms, err, sizeof(err)), 0);
	assert_int_equal(ps.n, 1);
	assert_true(ps.v[0].on_return && ps.v[0].entry_event);
	assert_int_equal(ps.v[0].nret_args, 1);
	/* A bare return records no stop at the entry. */
	assert_int_equal(probes_add_spec(&ps, "icmp_rcv%return", NULL, syms, err, sizeof(err)), 0);
	assert_true(ps.v[1].on_return && !ps.v[1].entry_event);
	probes_relocate(&ps, 0x200000);
	assert_int_equal(ps.v[0].addr, s->addr + 0x200000);
	probes_free(&ps);
}

/* Each kind of mistake is refused with a message that names it. */
static void test_spec_errors(void **state)
{
	struct probe_set ps;

	(void)state;
	new_set(&ps);
	assert_true(probes_add_spec(&ps, "kstep_no_such_function", NULL, syms, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "kstep_no_such_function"));
	assert_true(probes_add_spec(&ps, "ip_rcv x=skb->kstep_no_such_member", NULL, syms, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "kstep_no_such_member"));
	assert_int_equal(probes_add_spec(&ps, "ip_rcv len=skb->len", NULL, syms, err, sizeof(err)), 0);
	assert_true(probes_set_filter(&ps, 0, "kstep_nothing == 1", syms, err, sizeof(err)) < 0);
	assert_true(probes_set_filter(&ps, 0, "len >", syms, err, sizeof(err)) < 0);
	assert_true(err[0] != '\0');
	probes_free(&ps);
}

/* The trace's classes: one for a probe with fields (they are the class's),
 * one for a return; a probe with neither writes the common stop event. */
static void test_trace_classes(void **state)
{
	struct trace_class *classes = NULL;
	struct probe_set ps;
	size_t n = 0;
	bool found = false;

	(void)state;
	new_set(&ps);
	assert_int_equal(probes_add_spec(&ps, "ip_rcv len=skb->len", NULL, syms, err, sizeof(err)), 0);
	assert_int_equal(probes_add_spec(&ps, "icmp_rcv", NULL, syms, err, sizeof(err)), 0);
	assert_int_equal(probes_add_spec(&ps, "icmp_rcv%return", NULL, syms, err, sizeof(err)), 0);
	assert_int_equal(probes_trace_classes(&ps, &classes, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_int_not_equal(ps.v[0].class_id, 0);
	assert_int_equal(ps.v[1].class_id, 0);
	assert_int_equal(ps.n, 2); /* the return joined the probe at its address */
	assert_int_not_equal(ps.v[1].ret_class_id, 0);
	assert_int_not_equal(ps.v[1].ret_class_id, ps.v[0].class_id);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < classes[i].nfields; k++)
			found |= !strcmp(classes[i].fields[k].name, "len");
	assert_true(found);
	probes_free_classes(classes, n);
	probes_free(&ps);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rx_set),
		cmocka_unit_test(test_set_names),
		cmocka_unit_test(test_spec_fields_filter_return),
		cmocka_unit_test(test_spec_errors),
		cmocka_unit_test(test_trace_classes),
	};

	return cmocka_run_group_tests_name("probes", tests, open_vmlinux, close_vmlinux);
}
