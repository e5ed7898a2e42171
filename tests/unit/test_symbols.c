// SPDX-License-Identifier: MIT
/* Unit tests of the symbol table (symbols, symbols_dwarf) against the
 * project's own vmlinux (images/vmlinux, or $IMAGES): names and addresses
 * both ways, specs, KASLR's offset, source lines, the function at an
 * address, struct layouts, the skb parameter, the bzImage check, and the
 * errors of each. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "symbols.h"
#include "vmlinux.h"
#include "../scratch.h"

static char err[1024];

/* A function by name, and back by any address inside it. */
static void test_names_and_addresses(void **state)
{
	const struct sym *s = sym_lookup_name(syms, "ip_rcv");
	uint64_t start, end;

	(void)state;
	assert_non_null(s);
	assert_true(s->func);
	assert_true(s->size > 0);
	sym_text_range(syms, &start, &end);
	assert_true(s->addr >= start && s->addr < end);
	assert_true(sym_in_text(syms, s->addr));
	assert_ptr_equal(sym_lookup_addr(syms, s->addr), s);
	assert_ptr_equal(sym_lookup_addr(syms, s->addr + s->size - 1), s);
	assert_true(sym_span(syms, s) >= s->size);
	assert_null(sym_lookup_name(syms, "kstep_no_such_function"));
}

/* The answer for an address does not depend on what was looked up just
 * before (sym_lookup_addr keeps its last range): over entry code with
 * labels inside it, and across a function's end into the padding after. */
static void test_lookups_in_any_order(void **state)
{
	const struct sym *entry = sym_lookup_name(syms, "entry_SYSCALL_64"), *rcv = sym_lookup_name(syms, "ip_rcv");
	const struct sym *far = sym_lookup_name(syms, "start_kernel");
	uint64_t from[2], n = 0x300;
	const struct sym *fresh[0x300];

	(void)state;
	assert_non_null(entry);
	assert_non_null(rcv);
	assert_non_null(far);
	from[0] = entry->addr;
	from[1] = rcv->addr + rcv->size - 0x100;
	for (int r = 0; r < 2; r++) {
		for (uint64_t i = 0; i < n; i++) {
			sym_lookup_addr(syms, far->addr); /* another range kept */
			fresh[i] = sym_lookup_addr(syms, from[r] + i);
		}
		for (uint64_t i = 0; i < n; i++)
			assert_ptr_equal(sym_lookup_addr(syms, from[r] + i), fresh[i]);
		for (uint64_t i = n; i-- > 0;)
			assert_ptr_equal(sym_lookup_addr(syms, from[r] + i), fresh[i]);
	}
	assert_ptr_not_equal(fresh[0x2ff], sym_lookup_addr(syms, rcv->addr)); /* past ip_rcv's end */
}

/* NAME, NAME+OFF and 0xADDR specs; unknown names and bad offsets refused. */
static void test_specs(void **state)
{
	const struct sym *s = sym_lookup_name(syms, "ip_rcv");
	char spec[64], text[128];
	uint64_t addr;

	(void)state;
	assert_int_equal(sym_resolve(syms, "ip_rcv", &addr), 0);
	assert_int_equal(addr, s->addr);
	assert_int_equal(sym_resolve(syms, "ip_rcv+0x4", &addr), 0);
	assert_int_equal(addr, s->addr + 4);
	snprintf(spec, sizeof(spec), "0x%lx", (unsigned long)s->addr);
	assert_int_equal(sym_resolve(syms, spec, &addr), 0);
	assert_int_equal(addr, s->addr);
	assert_true(sym_resolve(syms, "kstep_no_such_function", &addr) < 0);
	assert_true(sym_resolve(syms, "ip_rcv+zz", &addr) < 0);
	sym_format(syms, s->addr + 4, text, sizeof(text));
	assert_string_equal(text, "ip_rcv+0x4");
}

/* KASLR moves every symbol by one offset, both ways, and back. */
static void test_relocation(void **state)
{
	const uint64_t off = 0x1e000000;
	const struct sym *old;
	uint64_t before, after;

	(void)state;
	assert_int_equal(sym_resolve(syms, "ip_rcv", &before), 0);
	assert_string_equal(sym_lookup_addr(syms, before)->name, "ip_rcv");
	sym_relocate(syms, off);
	assert_int_equal(sym_offset(syms), off);
	assert_int_equal(sym_resolve(syms, "ip_rcv", &after), 0);
	assert_int_equal(after, before + off);
	assert_string_equal(sym_lookup_addr(syms, after)->name, "ip_rcv");
	old = sym_lookup_addr(syms, before); /* the link address is no longer ip_rcv's */
	assert_true(!old || strcmp(old->name, "ip_rcv"));
	sym_relocate(syms, 0);
	assert_int_equal(sym_offset(syms), 0);
}

/* Source lines of a function's first instruction: its own file. */
static void test_source_lines(void **state)
{
	const struct sym *s = sym_lookup_name(syms, "ip_rcv");
	struct sym_srcloc loc[8];
	int n;

	(void)state;
	n = sym_srclocs(syms, s->addr, loc, 8);
	assert_true(n >= 1);
	assert_non_null(strstr(loc[n - 1].file, "net/ipv4/ip_input.c"));
	assert_true(loc[n - 1].line > 0);
	assert_string_equal(loc[n - 1].function, "ip_rcv");
}

/* The function holding an address: at an entry (from the unit's table),
 * inside one (through the unit's scopes), and again after another unit
 * was asked about; nothing outside the DWARF's code. */
static void test_function_of_an_address(void **state)
{
	const char *names[] = { "ip_rcv", "tcp_v4_rcv", "ip_rcv" };
	Dwarf_Die die;
	uint64_t pc;

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const struct sym *s = sym_lookup_name(syms, names[i]);

		assert_non_null(s);
		assert_true(sym_dwarf_function(syms, s->addr, &die, &pc));
		assert_string_equal(dwarf_diename(&die), names[i]);
		assert_true(sym_dwarf_function(syms, s->addr + s->size / 2, &die, &pc));
		assert_string_equal(dwarf_diename(&die), names[i]);
	}
	assert_false(sym_dwarf_function(syms, 0xffffffff00000000ull, &die, &pc));
}

/* struct sk_buff's layout from the DWARF; what it lacks is refused. */
static void test_struct_layouts(void **state)
{
	uint64_t off, size, total;

	(void)state;
	assert_int_equal(sym_member(syms, "sk_buff", "len", &off, &size), 0);
	assert_int_equal(size, 4);
	assert_int_equal(sym_struct_size(syms, "sk_buff", &total), 0);
	assert_true(off + size <= total);
	assert_true(sym_member(syms, "sk_buff", "kstep_no_such_member", &off, &size) < 0);
	assert_true(sym_struct_size(syms, "kstep_no_such_struct", &total) < 0);
}

/* ip_rcv(skb, dev, pt, orig_dev): the skb is its first argument. */
static void test_skb_parameter(void **state)
{
	int index, levels;

	(void)state;
	assert_int_equal(sym_skb_param(syms, sym_lookup_name(syms, "ip_rcv")->addr, &index, &levels), 0);
	assert_int_equal(index, 0);
	assert_int_equal(levels, 1);
	assert_int_equal(sym_skb_param(syms, sym_lookup_name(syms, "start_kernel")->addr, &index, &levels), -ENOENT);
}

/* The images' bzImage is this vmlinux's build; a file that is not a
 * bzImage is named as such, and a missing one by its path. */
static void test_bzimage_check(void **state)
{
	char bz[PATH_MAX], fake[SCRATCH_MAX];
	int fd;

	(void)state;
	scratch(fake, sizeof(fake), "kstep-test-bzimage");
	snprintf(bz, sizeof(bz), "%.*s/bzImage", (int)(strrchr(vmlinux, '/') - vmlinux), vmlinux); /* beside it */
	assert_int_equal(sym_check_bzimage(syms, bz, err, sizeof(err)), 0);
	fd = mkstemp(fake);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not a kernel", 12), 12);
	close(fd);
	assert_true(sym_check_bzimage(syms, fake, err, sizeof(err)) < 0);
	assert_true(err[0] != '\0');
	unlink(fake);
	assert_true(sym_check_bzimage(syms, "/nonexistent/bzImage", err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent/bzImage"));
}

/* Opening what is not a vmlinux says so, and leaves nothing open. */
static void test_open_errors(void **state)
{
	struct symtab *s = NULL;

	(void)state;
	assert_int_equal(sym_open(&s, "/nonexistent/vmlinux", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/vmlinux"));
	assert_true(sym_open(&s, "/etc/hostname", err, sizeof(err)) < 0);
	assert_true(err[0] != '\0');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_and_addresses), cmocka_unit_test(test_lookups_in_any_order),
		cmocka_unit_test(test_specs),               cmocka_unit_test(test_relocation),
		cmocka_unit_test(test_source_lines),        cmocka_unit_test(test_function_of_an_address),
		cmocka_unit_test(test_struct_layouts),
		cmocka_unit_test(test_skb_parameter),       cmocka_unit_test(test_bzimage_check),
		cmocka_unit_test(test_open_errors),
	};

	return cmocka_run_group_tests_name("symbols", tests, open_vmlinux, close_vmlinux);
}
