// SPDX-License-Identifier: MIT
/* Unit tests of the CFI unwinder over synthetic stacks, with the project's
 * own vmlinux for its call frame information (images/vmlinux, or $IMAGES):
 * each way a backtrace can end, at the link address and KASLR-moved, the
 * walk through kstep's cached rows against libdwfl's own, and the entry
 * code's asm_* entries as libdwfl names them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfi.h"
#include "symbols.h"
#include "trace.h"

#define STACK 0xffffc90000010000ull
#define USER_RA 0x401000ull
#define RSP 7
#define RBP 6
#define RIP 16

static uint64_t mem[64];            /* 512 bytes of stack at STACK */
static struct symtab *syms;
static struct cfi *cfi;
static char vmlinux[4096];

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
	snprintf(vmlinux, sizeof(vmlinux), "%s", path);
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

/* cfi_unwind's walk, which must be libdwfl's own frame for frame. */
static size_t unwind(const uint64_t regs[CFI_NREGS], uint64_t *pcs, size_t max, enum unwind_end *end)
{
	uint64_t theirs[8];
	enum unwind_end their_end;
	size_t n = cfi_unwind(cfi, regs, pcs, max, rd, rd, text, NULL, end);

	assert_true(max <= 8);
	assert_int_equal(cfi_unwind_libdwfl(cfi, regs, theirs, max, rd, rd, text, NULL, &their_end), n);
	assert_memory_equal(theirs, pcs, n * sizeof(*pcs));
	assert_int_equal(their_end, *end);
	return n;
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
	return unwind(regs, pcs, max, end);
}

/* cfi_warm indexes all of vmlinux's frames; a change in the modules
 * (none here) keeps that index, and the walks are the same. */
static void test_warm_kept_across_modules(void **state)
{
	uint64_t before[8], after[8], ret = at("ip_protocol_deliver_rcu") + 0x30;
	enum unwind_end end;
	uint64_t t0, first, again;
	size_t n;

	(void)state;
	n = unwind_from_entry("icmp_rcv", ret, before, 8, &end);
	t0 = trace_now_ns();
	cfi_warm(cfi);
	first = trace_now_ns() - t0;
	assert_int_equal(cfi_set_modules(cfi, NULL, 0), 0);
	t0 = trace_now_ns();
	cfi_warm(cfi);
	again = trace_now_ns() - t0;
	assert_true(again * 4 < first);
	assert_int_equal(unwind_from_entry("icmp_rcv", ret, after, 8, &end), n);
	assert_memory_equal(before, after, n * sizeof(*before));
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
	n = unwind(regs, pcs, 8, &end);
	assert_int_equal(n, 1);
	assert_int_equal(end, UNWIND_END_BADPTR);
}

/* The first address in @fn whose CFA is the word at rbp + *off (a function
 * that realigns its stack keeps its CFA there), 0 if none. */
static uint64_t cfa_in_memory(const char *fn, int64_t *off)
{
	int fd = open(vmlinux, O_RDONLY);
	Dwarf *dw = fd >= 0 ? dwarf_begin(fd, DWARF_C_READ) : NULL;
	Dwarf_CFI *dcfi = dw ? dwarf_getcfi(dw) : NULL;
	uint64_t found = 0;

	for (uint64_t a = at(fn); dcfi && !found && a < at(fn) + 0x400; a++) {
		Dwarf_Frame *frame;
		Dwarf_Op *ops;
		size_t nops;

		if (dwarf_cfi_addrframe(dcfi, a, &frame))
			continue;
		if (!dwarf_frame_cfa(frame, &ops, &nops) && nops == 2 && ops[0].atom == DW_OP_breg6 &&
		    ops[1].atom == DW_OP_deref) {
			found = a;
			*off = (int64_t)ops[0].number;
		}
		free(frame);
	}
	if (dw)
		dwarf_end(dw);
	if (fd >= 0)
		close(fd);
	return found;
}

/* udp_sendmsg aligns its stack: its CFA is a word its frame saved, its
 * registers are saved relative to rbp. The cached rows walk it as
 * libdwfl does, to the caller the saved CFA leads to. */
static void test_realigned_frame(void **state)
{
	uint64_t regs[CFI_NREGS] = { 0 }, pcs[8], ret = at("inet_sendmsg") + 0x30;
	enum unwind_end end;
	int64_t off = 0;
	size_t n;

	(void)state;
	regs[RIP] = cfa_in_memory("udp_sendmsg", &off);
	assert_true(regs[RIP] != 0 && off < 0 && off > -256);
	memset(mem, 0, sizeof(mem));
	regs[RBP] = STACK + 8 * 32;
	regs[RSP] = STACK + 8 * 8;
	mem[32 + off / 8] = STACK + 8 * 48; /* the CFA, where the return address is beneath */
	mem[47] = ret;
	mem[32] = STACK + 8 * 56;           /* the caller's rbp: a frame record 0, 0 */
	n = unwind(regs, pcs, 8, &end);
	assert_true(n >= 2);
	assert_int_equal(pcs[1], ret);
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

/* Every address of the entry text is an asm_* entry exactly where
 * libdwfl's name for it says so (a label inside one, nested_nmi in
 * asm_exc_nmi, is the entry's), at the link address and KASLR-moved. */
static void test_asm_entries_named_as_libdwfl_names_them(void **state)
{
	static const Dwfl_Callbacks offline = {
		.find_debuginfo = dwfl_standard_find_debuginfo,
		.section_address = dwfl_offline_section_address,
	};
	const uint64_t moved = 0x1800000;
	Dwfl *dwfl = dwfl_begin(&offline);
	Dwfl_Module *mod = dwfl ? dwfl_report_offline(dwfl, "vmlinux", vmlinux, -1) : NULL;
	uint64_t lo = at("__entry_text_start"), hi = at("__entry_text_end");
	size_t entries = 0;

	(void)state;
	assert_non_null(mod);
	assert_int_equal(dwfl_report_end(dwfl, NULL, NULL), 0);
	assert_true(hi > lo);
	for (uint64_t pc = lo; pc < hi; pc++) {
		GElf_Off off;
		GElf_Sym sym;
		const char *fn = dwfl_module_addrinfo(mod, pc, &off, &sym, NULL, NULL, NULL);
		bool theirs = fn && !strncmp(fn, "asm_", 4);

		if (cfi_in_asm_entry(cfi, pc) != theirs)
			fail_msg("0x%" PRIx64 ", %s+0x%" PRIx64 ": cfi_in_asm_entry says %d", pc, fn ? fn : "?",
				 (uint64_t)off, !theirs);
		entries += theirs;
	}
	assert_true(entries > 1000);
	assert_false(cfi_in_asm_entry(cfi, lo - 1));
	assert_false(cfi_in_asm_entry(cfi, hi));
	sym_relocate(syms, moved);
	assert_int_equal(cfi_relocate(cfi, moved), 0);
	assert_true(cfi_in_asm_entry(cfi, at("asm_common_interrupt") + 0x10));
	assert_true(cfi_in_asm_entry(cfi, at("nested_nmi")));
	assert_false(cfi_in_asm_entry(cfi, at("asm_common_interrupt") + 0x10 - moved));
	sym_relocate(syms, 0);
	assert_int_equal(cfi_relocate(cfi, 0), 0);
	dwfl_end(dwfl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_warm_kept_across_modules),
		cmocka_unit_test(test_end_reasons),
		cmocka_unit_test(test_unreadable_stack),
		cmocka_unit_test(test_relocated),
		cmocka_unit_test(test_realigned_frame),
		cmocka_unit_test(test_asm_entries_named_as_libdwfl_names_them),
	};

	return cmocka_run_group_tests_name("cfi", tests, setup, teardown);
}
