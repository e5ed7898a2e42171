// SPDX-License-Identifier: MIT
/* Unit tests of the frame-pointer unwinder over synthetic stacks, and of the
 * prologue analysis that tells it where a function is in building its frame. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "disasm.h"
#include "unwind.h"

#define BASE 0xffffc90000010000ull /* a kernel stack */
#define TEXT 0xffffffff81000000ull

static uint64_t mem[512]; /* 4 KiB of stack at BASE */

static int rd(void *ctx, uint64_t addr, void *out, size_t len)
{
	(void)ctx;
	if (addr < BASE || addr + len > BASE + sizeof(mem))
		return -EFAULT;
	memcpy(out, (uint8_t *)mem + (addr - BASE), len);
	return 0;
}

static int text(void *ctx, uint64_t addr)
{
	(void)ctx;
	return addr >= TEXT && addr < TEXT + 0x1000000;
}

/* A frame at @at: saved rbp, return address. */
static void frame(uint64_t at, uint64_t next, uint64_t ret)
{
	mem[(at - BASE) / 8] = next;
	mem[(at - BASE) / 8 + 1] = ret;
}

static void test_chain_to_bottom(void **state)
{
	struct unwind_regs r = { .pc = TEXT + 0x10, .sp = BASE + 0x80, .fp = BASE + 0x100 };
	enum unwind_end end;
	uint64_t pcs[16];
	size_t n;

	(void)state;
	memset(mem, 0, sizeof(mem));
	frame(BASE + 0x100, BASE + 0x200, TEXT + 0x111);
	frame(BASE + 0x200, BASE + 0x300, TEXT + 0x222);
	frame(BASE + 0x300, 0, TEXT + 0x333);
	n = unwind_fp(&r, UNWIND_FRAME_SET, pcs, 16, rd, text, NULL, &end);
	assert_int_equal(n, 4);
	assert_true(pcs[0] == TEXT + 0x10 && pcs[1] == TEXT + 0x111 && pcs[3] == TEXT + 0x333);
	assert_int_equal(end, UNWIND_END_BOTTOM);
	/* bounded by max */
	n = unwind_fp(&r, UNWIND_FRAME_SET, pcs, 2, rd, text, NULL, &end);
	assert_int_equal(n, 2);
	assert_int_equal(end, UNWIND_END_MAX);
}

static void test_entry_states(void **state)
{
	struct unwind_regs r = { .pc = TEXT + 0x10, .sp = BASE + 0x80, .fp = BASE + 0x100 };
	enum unwind_end end;
	uint64_t pcs[16];
	size_t n;

	(void)state;
	memset(mem, 0, sizeof(mem));
	frame(BASE + 0x100, 0, TEXT + 0x111);
	mem[0x80 / 8] = TEXT + 0x999;     /* return address at [rsp] */
	mem[0x80 / 8 + 1] = TEXT + 0x888; /* or at [rsp+8] after push %rbp */
	n = unwind_fp(&r, UNWIND_AT_ENTRY, pcs, 16, rd, text, NULL, &end);
	assert_int_equal(n, 3);
	assert_true(pcs[1] == TEXT + 0x999 && pcs[2] == TEXT + 0x111);
	n = unwind_fp(&r, UNWIND_AFTER_PUSH, pcs, 16, rd, text, NULL, &end);
	assert_true(n == 3 && pcs[1] == TEXT + 0x888);
}

static void test_loop_is_caught(void **state)
{
	struct unwind_regs r = { .pc = TEXT, .sp = BASE, .fp = BASE + 0x100 };
	enum unwind_end end;
	uint64_t pcs[64];
	size_t n;

	(void)state;
	memset(mem, 0, sizeof(mem));
	frame(BASE + 0x100, BASE + 0x200, TEXT + 1);
	frame(BASE + 0x200, BASE + 0x100, TEXT + 2); /* back down: a loop */
	n = unwind_fp(&r, UNWIND_FRAME_SET, pcs, 64, rd, text, NULL, &end);
	assert_int_equal(end, UNWIND_END_LOOP);
	assert_true(n < 64);
	/* a frame pointing at itself */
	frame(BASE + 0x100, BASE + 0x100, TEXT + 1);
	n = unwind_fp(&r, UNWIND_FRAME_SET, pcs, 64, rd, text, NULL, &end);
	assert_int_equal(end, UNWIND_END_LOOP);
	assert_int_equal(n, 2);
}

static void test_bad_pointers(void **state)
{
	struct unwind_regs r = { .pc = TEXT, .sp = BASE, .fp = BASE + 0x100 };
	enum unwind_end end;
	uint64_t pcs[16];
	size_t n;

	(void)state;
	memset(mem, 0, sizeof(mem));
	frame(BASE + 0x100, BASE + 0x203, TEXT + 1); /* unaligned */
	n = unwind_fp(&r, UNWIND_FRAME_SET, pcs, 16, rd, text, NULL, &end);
	assert_int_equal(n, 2);
	assert_int_equal(end, UNWIND_END_BADPTR);
	frame(BASE + 0x100, 0x1000, TEXT + 1); /* user address */
	unwind_fp(&r, UNWIND_FRAME_SET, pcs, 16, rd, text, NULL, &end);
	assert_int_equal(end, UNWIND_END_BADPTR);
	frame(BASE + 0x100, BASE + 0x100000, TEXT + 1); /* unreadable */
	n = unwind_fp(&r, UNWIND_FRAME_SET, pcs, 16, rd, text, NULL, &end);
	assert_int_equal(end, UNWIND_END_BADPTR);
	assert_int_equal(n, 2);
	frame(BASE + 0x100, BASE + 0x200, 0x4141414141414141ull); /* not text */
	n = unwind_fp(&r, UNWIND_FRAME_SET, pcs, 16, rd, text, NULL, &end);
	assert_int_equal(end, UNWIND_END_NOTTEXT);
	assert_int_equal(n, 1);
}

static void test_frame_state(void **state)
{
	/* endbr64; push %rbp; mov %rsp,%rbp; push %rbx; ret */
	static const uint8_t code[] = { 0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5, 0x53, 0xc3,
					0x90, 0x90, 0x90, 0x90, 0x90, 0x90 };
	struct disasm *d;

	(void)state;
	assert_int_equal(disasm_open(&d), 0);
	assert_int_equal(disasm_frame_state(d, code, sizeof(code), TEXT, TEXT), UNWIND_AT_ENTRY);
	assert_int_equal(disasm_frame_state(d, code, sizeof(code), TEXT, TEXT + 4), UNWIND_AT_ENTRY);
	assert_int_equal(disasm_frame_state(d, code, sizeof(code), TEXT, TEXT + 5), UNWIND_AFTER_PUSH);
	assert_int_equal(disasm_frame_state(d, code, sizeof(code), TEXT, TEXT + 8), UNWIND_FRAME_SET);
	assert_true(disasm_is_return(d, code + 9, 7, TEXT + 9));
	assert_false(disasm_is_return(d, code + 8, 8, TEXT + 8));
	char text[64];

	assert_int_equal(disasm_one(d, code + 5, 11, TEXT + 5, text, sizeof(text)), 3);
	assert_string_equal(text, "movq %rsp, %rbp");
	disasm_close(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain_to_bottom),
		cmocka_unit_test(test_entry_states),
		cmocka_unit_test(test_loop_is_caught),
		cmocka_unit_test(test_bad_pointers),
		cmocka_unit_test(test_frame_state),
	};

	return cmocka_run_group_tests_name("unwind", tests, NULL, NULL);
}
