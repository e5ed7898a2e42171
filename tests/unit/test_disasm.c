// SPDX-License-Identifier: MIT
/* Unit tests of what the stepper learns from an instruction's code. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "disasm.h"

#define PC 0xffffffff81000000ull
#define SP 0xffffc90000013e40ull
#define BP 0xffffc90000013e90ull

enum expect { FROM_SP, FROM_BP, MASKED, UNKNOWN };

struct case_ {
	uint8_t code[8];
	size_t len;
	enum expect expect;
	int64_t delta;   /* next rsp - SP (FROM_SP) or - BP (FROM_BP) */
};

static void test_next_sp(void **state)
{
	static const struct case_ cases[] = {
		{ { 0x55 }, 1, FROM_SP, -8 },                                  /* push %rbp */
		{ { 0x41, 0x54 }, 2, FROM_SP, -8 },                            /* push %r12 */
		{ { 0x6a, 0x10 }, 2, FROM_SP, -8 },                            /* push $0x10 */
		{ { 0x9c }, 1, FROM_SP, -8 },                                  /* pushfq */
		{ { 0x5b }, 1, FROM_SP, 8 },                                   /* pop %rbx */
		{ { 0x9d }, 1, FROM_SP, 8 },                                   /* popfq */
		{ { 0xe8, 0, 0, 0, 0 }, 5, FROM_SP, -8 },                      /* call rel32 */
		{ { 0xff, 0xd0 }, 2, FROM_SP, -8 },                            /* call *%rax */
		{ { 0xc3 }, 1, FROM_SP, 8 },                                   /* ret */
		{ { 0xc2, 0x10, 0x00 }, 3, FROM_SP, 0x18 },                    /* ret $0x10 */
		{ { 0xc9 }, 1, FROM_BP, 8 },                                   /* leave */
		{ { 0x48, 0x83, 0xec, 0x28 }, 4, FROM_SP, -0x28 },             /* sub $0x28,%rsp */
		{ { 0x48, 0x81, 0xc4, 0x00, 0x01, 0, 0 }, 7, FROM_SP, 0x100 }, /* add $0x100,%rsp */
		{ { 0x48, 0x8d, 0x64, 0x24, 0x08 }, 5, FROM_SP, 8 },           /* lea 0x8(%rsp),%rsp */
		{ { 0x48, 0x89, 0xec }, 3, FROM_BP, 0 },                       /* mov %rbp,%rsp */
		{ { 0x48, 0x8d, 0x65, 0xf0 }, 4, FROM_BP, -0x10 },             /* lea -0x10(%rbp),%rsp */
		{ { 0x48, 0x83, 0xe4, 0xf0 }, 4, MASKED, 0 },                  /* and $-16,%rsp */
		{ { 0x48, 0x89, 0xf8 }, 3, FROM_SP, 0 },                       /* mov %rdi,%rax */
		{ { 0x48, 0x89, 0x44, 0x24, 0x08 }, 5, FROM_SP, 0 },           /* mov %rax,0x8(%rsp) */
		{ { 0xeb, 0x00 }, 2, FROM_SP, 0 },                             /* jmp */
		{ { 0x66, 0x85, 0xc0 }, 3, FROM_SP, 0 },                       /* test %ax,%ax */
		{ { 0x66, 0x89, 0x03 }, 3, FROM_SP, 0 },                       /* mov %ax,(%rbx) */
		{ { 0x5c }, 1, UNKNOWN, 0 },                                   /* pop %rsp */
		{ { 0x48, 0x89, 0xc4 }, 3, UNKNOWN, 0 },                       /* mov %rax,%rsp */
		{ { 0x48, 0x94 }, 2, UNKNOWN, 0 },                             /* xchg %rax,%rsp */
		{ { 0x66, 0x50 }, 2, UNKNOWN, 0 },                             /* push %ax */
		{ { 0x66, 0xc9 }, 2, UNKNOWN, 0 },                             /* leave (16-bit: pops 2 bytes) */
		{ { 0xcc }, 1, UNKNOWN, 0 },                                   /* int3 */
		{ { 0x48, 0xcf }, 2, UNKNOWN, 0 },                             /* iretq */
		{ { 0xff, 0xff }, 2, UNKNOWN, 0 },                             /* (bad) */
	};
	struct disasm *d;

	(void)state;
	assert_int_equal(disasm_open(&d), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct case_ *c = &cases[i];
		uint64_t next = 0;
		bool known = disasm_next_sp(d, c->code, c->len, PC, SP, BP, &next);

		print_message("case %zu\n", i);
		assert_int_equal(known, c->expect != UNKNOWN);
		if (c->expect == MASKED)
			assert_true(next == (SP & ~0xfull));
		else if (c->expect != UNKNOWN)
			assert_true(next == (c->expect == FROM_BP ? BP : SP) + (uint64_t)c->delta);
	}
	disasm_close(d);
}

/* An instruction is decoded once for the questions asked of it, and
 * afresh when other bytes come at the same address (code patched) or the
 * prologue was read in between. */
static void test_same_address_other_code(void **state)
{
	static const uint8_t call[5] = { 0xe8, 0, 0, 0, 0 }, nop[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
	static const uint8_t func[8] = { 0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3 }; /* push, mov, pop, ret */
	struct disasm *d;
	char text[64];

	(void)state;
	assert_int_equal(disasm_open(&d), 0);
	assert_int_equal(disasm_flow(d, call, sizeof(call), PC), DISASM_FLOW_CALL);
	assert_int_equal(disasm_one(d, call, sizeof(call), PC, text, sizeof(text)), 5);
	assert_int_equal(disasm_flow(d, nop, sizeof(nop), PC), DISASM_FLOW_OTHER);
	assert_int_equal(disasm_one(d, nop, sizeof(nop), PC, text, sizeof(text)), 5);
	assert_string_equal(text, "nopl (%rax, %rax)");
	assert_int_equal(disasm_flow(d, call, 4, PC), DISASM_FLOW_OTHER); /* cut short: not an instruction */
	assert_int_equal(disasm_flow(d, call, sizeof(call), PC), DISASM_FLOW_CALL);
	assert_int_equal(disasm_frame_state(d, func, sizeof(func), PC, PC + 4), UNWIND_FRAME_SET);
	assert_int_equal(disasm_flow(d, call, sizeof(call), PC), DISASM_FLOW_CALL);
	assert_int_equal(disasm_flow(d, func + 5, 1, PC + 5), DISASM_FLOW_RET);
	assert_int_equal(disasm_one(d, call, sizeof(call), PC, text, sizeof(text)), 5);
	assert_string_equal(text, "callq 0xffffffff81000005");
	disasm_close(d);
}

/* A warmed instruction takes an empty slot only; a step then asking with
 * other bytes there (code patched at boot) has them decoded afresh. */
static void test_warm_fills_empty_slots_only(void **state)
{
	static const uint8_t call[5] = { 0xe8, 0, 0, 0, 0 }, nop[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
	struct disasm *d;
	char text[64];

	(void)state;
	assert_int_equal(disasm_open(&d), 0);
	assert_true(disasm_warm(d, nop, sizeof(nop), PC));
	assert_false(disasm_warm(d, call, sizeof(call), PC)); /* taken: left as it is */
	assert_int_equal(disasm_one(d, nop, sizeof(nop), PC, text, sizeof(text)), 5);
	assert_string_equal(text, "nopl (%rax, %rax)");
	assert_int_equal(disasm_flow(d, call, sizeof(call), PC), DISASM_FLOW_CALL);
	assert_false(disasm_warm(d, call, 4, PC + 8)); /* cut short: not an instruction */
	disasm_close(d);
}

/* Decoded instructions are remembered by address, far more than fit:
 * each address still answers for its own code, in any order. */
static void test_many_addresses(void **state)
{
	static const uint8_t call[5] = { 0xe8, 0, 0, 0, 0 }, nop[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
	struct disasm *d;
	char text[64], want[64];

	(void)state;
	assert_int_equal(disasm_open(&d), 0);
	for (int round = 0; round < 2; round++)
		for (uint64_t i = 0; i < 40000; i += round ? 7 : 1) {
			const uint8_t *code = i % 3 ? nop : call;

			assert_int_equal(disasm_flow(d, code, 5, PC + i * 5),
					 i % 3 ? DISASM_FLOW_OTHER : DISASM_FLOW_CALL);
			assert_int_equal(disasm_one(d, code, 5, PC + i * 5, text, sizeof(text)), 5);
			snprintf(want, sizeof(want), "callq 0x%llx", (unsigned long long)(PC + i * 5 + 5));
			assert_string_equal(text, i % 3 ? "nopl (%rax, %rax)" : want);
		}
	disasm_close(d);
}

/* The registers an instruction writes, for the plugin's steps that read
 * only those: implicit ones included, parts of a register counted as the
 * whole, and no answer where Capstone's list is known to fall short. */
static void test_gprs_written(void **state)
{
	enum { RAX = 1 << 0, RBX = 1 << 1, RCX = 1 << 2, RDX = 1 << 3, RSI = 1 << 4, RDI = 1 << 5, RBP = 1 << 6,
	       RSP = 1 << 7, R8 = 1 << 8 };
	static const struct {
		uint8_t code[8];
		size_t len;
		bool listed, flags;
		uint16_t gprs;
	} cases[] = {
		{ { 0x89, 0xd8 }, 2, true, false, RAX },                        /* mov %ebx,%eax */
		{ { 0x88, 0xdc }, 2, true, false, RAX },                        /* mov %bl,%ah */
		{ { 0x41, 0x89, 0xd8 }, 3, true, false, R8 },                   /* mov %ebx,%r8d */
		{ { 0x48, 0x01, 0xd8 }, 3, true, true, RAX },                   /* add %rbx,%rax */
		{ { 0x48, 0x85, 0xc0 }, 3, true, true, 0 },                     /* test %rax,%rax */
		{ { 0x53 }, 1, true, false, RSP },                              /* push %rbx */
		{ { 0x5b }, 1, true, false, RSP | RBX },                        /* pop %rbx */
		{ { 0xc9 }, 1, true, false, RSP | RBP },                        /* leave */
		{ { 0xe8, 0, 0, 0, 0 }, 5, true, false, RSP },                  /* call rel32 */
		{ { 0xc3 }, 1, true, false, RSP },                              /* ret */
		{ { 0x74, 0x05 }, 2, true, false, 0 },                          /* je */
		{ { 0x48, 0xf7, 0xe1 }, 3, true, true, RAX | RDX },             /* mul %rcx */
		{ { 0x48, 0x0f, 0x45, 0xc3 }, 4, true, false, RAX },            /* cmovne %rbx,%rax */
		{ { 0x48, 0x0f, 0xc1, 0x07 }, 4, true, true, RAX },             /* xadd %rax,(%rdi) */
		{ { 0xf0, 0x48, 0x0f, 0xb1, 0x37 }, 5, false, false, 0 },       /* lock cmpxchg: rax left out */
		{ { 0xd7 }, 1, false, false, 0 },                               /* xlat: al left out */
		{ { 0xc8, 8, 0, 0 }, 4, false, false, 0 },                      /* enter: rsp, rbp left out */
		{ { 0xfa }, 1, false, false, 0 },                               /* cli: flags left out */
		{ { 0x0f, 0xa2 }, 2, false, false, 0 },                         /* cpuid: not taken */
		{ { 0xf3, 0xa4 }, 2, false, false, 0 },                         /* rep movsb: not taken */
	};
	struct disasm *d;

	(void)state;
	assert_int_equal(disasm_open(&d), 0);
	assert_string_equal(disasm_gpr_name(7), "rsp");
	assert_null(disasm_gpr_name(DISASM_NGPRS));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint16_t gprs = 0xffff;
		bool flags = !cases[i].flags;

		assert_int_equal(disasm_gprs_written(d, cases[i].code, cases[i].len, PC, &gprs, &flags), cases[i].listed);
		if (!cases[i].listed)
			continue;
		if (gprs != cases[i].gprs || flags != cases[i].flags)
			fail_msg("case %zu: gprs %#x flags %d, want %#x %d", i, gprs, flags, cases[i].gprs, cases[i].flags);
	}
	disasm_close(d);
}

/* Stores through an operand count, loads and a push's or a call's own
 * stack slot do not, and what does not decode is taken as a store. */
static void test_writes_memory(void **state)
{
	static const struct {
		uint8_t code[8];
		size_t len;
		bool stores;
	} cases[] = {
		{ { 0x89, 0x03 }, 2, true },                                   /* mov %eax,(%rbx) */
		{ { 0x48, 0x89, 0x44, 0x24, 0x08 }, 5, true },                 /* mov %rax,0x8(%rsp) */
		{ { 0x01, 0x03 }, 2, true },                                   /* add %eax,(%rbx) */
		{ { 0xf0, 0x0f, 0xab, 0x03 }, 4, true },                       /* lock bts %eax,(%rbx) */
		{ { 0x8b, 0x03 }, 2, false },                                  /* mov (%rbx),%eax */
		{ { 0x3b, 0x03 }, 2, false },                                  /* cmp (%rbx),%eax */
		{ { 0x55 }, 1, false },                                        /* push %rbp */
		{ { 0xe8, 0, 0, 0, 0 }, 5, false },                            /* call */
		{ { 0x48, 0x89 }, 2, true },                                   /* a mov cut short */
	};
	struct disasm *d;

	(void)state;
	assert_int_equal(disasm_open(&d), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (disasm_writes_memory(d, cases[i].code, cases[i].len, PC) != cases[i].stores)
			fail_msg("case %zu: stores %d, want %d", i, !cases[i].stores, cases[i].stores);
	disasm_close(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_next_sp),
		cmocka_unit_test(test_same_address_other_code),
		cmocka_unit_test(test_warm_fills_empty_slots_only),
		cmocka_unit_test(test_many_addresses),
		cmocka_unit_test(test_gprs_written),
		cmocka_unit_test(test_writes_memory),
	};

	return cmocka_run_group_tests_name("disasm", tests, NULL, NULL);
}
