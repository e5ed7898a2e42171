// SPDX-License-Identifier: MIT
/* Unit tests of the CFI unwinder over synthetic stacks, with the project's
 * own vmlinux for its call frame information (images/vmlinux, or $IMAGES):
 * each way a backtrace can end, at the link address and KASLR-moved. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfi.h"
#include "symbols.h"

#define STACK 0xffffc90000010000ull
#define USER_RA 0x401000ull
#define RSP 7
#define RBP 6
#define RIP 16

static uint64_t mem[64];            /* 512 bytes of stack at STACK */
static struct symtab *syms;
static struct cfi *cfi;

static int rd(void *ctx, uint64_t addr, void *out, size_t len)
{
	(void)ctx;
	if (addr < STACK || addr + len > STACK + sizeof(mem))
		return -1;
	memcpy(out, (uint8_t *)mem + (addr - STACK), len);
	return 0;
}

static int text(void *ctx, uint64_t addr)
{
	(void)ctx;
	return sym_in_text(syms, addr);
}

static int setup(void **state)
{
	const char *images = getenv("IMAGES");
	char path[4096], err[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/vmlinux", images ? images : PROJECT_IMAGES);
	if (sym_open(&syms, path, err, sizeof(err)) || cfi_new(&cfi, path, err, sizeof(err))) {
		fprintf(stderr, "test_cfi: %s (build it with make images)\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cfi_free(cfi);
	sym_close(syms);
	return 0;
}

static uint64_t at(const char *name)
{
	const struct sym *s = sym_lookup_name(syms, name);

	assert_non_null(s);
	return s->addr;
}

/* At a function's first instruction the return address is at [rsp]. */
static size_t unwind_from_entry(const char *fn, uint64_t ra, uint64_t *pcs, size_t max, enum unwind_end *end)
{
	uint64_t regs[CFI_NREGS] = { 0 };

	memset(mem, 0, sizeof(mem));
	regs[RIP] = at(fn);
	regs[RSP] = STACK + 8 * 8;
	regs[RBP] = STACK + 8 * 40; /* a caller's frame record: 0, 0 */
	mem[8] = ra;
	return cfi_unwind(cfi, regs, pcs, max, rd, rd, text, NULL, end);
}

static void test_end_reasons(void **state)
{
	uint64_t pcs[8], ret = at("ip_protocol_deliver_rcu") + 0x30;
	enum unwind_end end;
	size_t n;

	(void)state;
	/* icmp_rcv at entry, called from ip_protocol_deliver_rcu, whose frame
	 * then leads to a return address of 0: the end of the stack. */
	n = unwind_from_entry("icmp_rcv", ret, pcs, 8, &end);
	assert_true(n >= 2);
	assert_int_equal(pcs[0], at("icmp_rcv"));
	assert_int_equal(pcs[1], ret);
	assert_int_equal(end, UNWIND_END_BOTTOM);
	/* A return into user space: outside the kernel's text. */
	n = unwind_from_entry("icmp_rcv", USER_RA, pcs, 8, &end);
	assert_int_equal(n, 1);
	assert_int_equal(end, UNWIND_END_NOTTEXT);
	/* The depth limit. */
	n = unwind_from_entry("icmp_rcv", ret, pcs, 1, &end);
	assert_int_equal(n, 1);
	assert_int_equal(end, UNWIND_END_MAX);
	assert_string_equal(unwind_end_name(UNWIND_END_MAX), "depth-limit");
	assert_false(unwind_end_reliable(UNWIND_END_MAX));
	assert_true(unwind_end_reliable(UNWIND_END_BOTTOM));
}

static void test_unreadable_stack(void **state)
{
	uint64_t regs[CFI_NREGS] = { 0 }, pcs[8];
	enum unwind_end end;
	size_t n;

	(void)state;
	regs[RIP] = at("icmp_rcv");
	regs[RSP] = 0xffffc900000f0000ull; /* nothing readable there */
	n = cfi_unwind(cfi, regs, pcs, 8, rd, rd, text, NULL, &end);
	assert_int_equal(n, 1);
	assert_int_equal(end, UNWIND_END_BADPTR);
}

/* KASLR: the same walk 0x1800000 higher. */
static void test_relocated(void **state)
{
	const uint64_t off = 0x1800000;
	uint64_t pcs[8], ret;
	enum unwind_end end;
	size_t n;

	(void)state;
	sym_relocate(syms, off);
	assert_int_equal(cfi_relocate(cfi, off), 0);
	ret = at("ip_protocol_deliver_rcu") + 0x30;
	n = unwind_from_entry("icmp_rcv", ret, pcs, 8, &end);
	assert_true(n >= 2);
	assert_int_equal(pcs[1], ret);
	sym_relocate(syms, 0);
	assert_int_equal(cfi_relocate(cfi, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_end_reasons),
		cmocka_unit_test(test_unreadable_stack),
		cmocka_unit_test(test_relocated),
	};

	return cmocka_run_group_tests_name("cfi", tests, setup, teardown);
}
