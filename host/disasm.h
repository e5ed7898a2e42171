/* SPDX-License-Identifier: MIT */
/* disasm: x86-64 disassembly through Capstone (AT&T syntax, as objdump and
 * the kernel's decode scripts print it). */
#ifndef KSTEP_DISASM_H
#define KSTEP_DISASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "unwind.h"

struct disasm;

int disasm_open(struct disasm **out);
void disasm_close(struct disasm *d);
/* Fault the table of decoded instructions in now (bigmem.h): before a
 * step run, not at its first instructions. */
void disasm_populate(struct disasm *d);
/* Decode the instruction at @addr ahead of a step run, into its table
 * slot if that is empty (warm.h: what is nearer the start came first);
 * false when the slot was taken or it does not decode. */
bool disasm_warm(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr);

/* Decode one instruction at @addr from @code. Returns its length (0: invalid)
 * and writes "mnemonic operands" into @text. */
size_t disasm_one(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr, char *text, size_t textlen);

/* The instruction's memory operand: the registers its address is made of
 * ("" for none; "rip" for a rip-relative one) and the displacement. */
struct disasm_mem {
	char base[8], index[8];
	int scale;
	int64_t disp;
};
/* False if it has none (or does not decode). */
bool disasm_mem_operand(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr, struct disasm_mem *m);

/* The instruction at @addr is asked about next: its slot into the CPU's
 * cache meanwhile. */
void disasm_prefetch(const struct disasm *d, uint64_t addr);
/* True if the instruction at @code is a return (ret/iret/sysret). */
bool disasm_is_return(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr);

/* How the instruction moves between functions: a call (direct or
 * indirect), a return to a caller, a return from an interrupt or exception. */
enum disasm_flow { DISASM_FLOW_OTHER, DISASM_FLOW_CALL, DISASM_FLOW_RET, DISASM_FLOW_IRET };
enum disasm_flow disasm_flow(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr);

/* How an instruction hands control on, for a function's control flow:
 * on to the next, a conditional branch, a jump, a call, a return, or an
 * end that goes nowhere (ud2, int3, hlt). @target: a direct branch's or
 * call's destination, 0 for an indirect one. Returns the length, 0 when
 * it does not decode. */
enum disasm_branch { DISASM_NEXT, DISASM_COND, DISASM_JUMP, DISASM_CALL, DISASM_RETURN, DISASM_STOP };
size_t disasm_branch(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr, enum disasm_branch *kind,
		     uint64_t *target);

/* Does the instruction set the flags a conditional branch tests (cmp,
 * test, sub, and, ...)? Then the registers it reads (64-bit names: "rax"
 * for %eax and %al too), up to @max, in @regs. */
bool disasm_sets_flags(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr, char regs[][8], size_t max,
		       size_t *nregs);
/* Does the instruction write register @reg (a 64-bit name; any part of it)? */
bool disasm_writes_reg(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr, const char *reg);

/* The general registers an instruction writes, for reading only those
 * after it: bit i of @gprs for disasm_gpr_name(i) ("rax", "rbx", "rcx",
 * "rdx", "rsi", "rdi", "rbp", "rsp", "r8" to "r15"; a write to %eax or
 * %al is one to rax), and whether it changes eflags. False when Capstone
 * cannot be trusted to list them all for this instruction (only the
 * common integer ones are taken), or it does not decode. */
#define DISASM_NGPRS 16
bool disasm_gprs_written(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr, uint16_t *gprs,
			 bool *flags);
const char *disasm_gpr_name(unsigned int i);
/* Whether the instruction writes memory that one of its operands names
 * (a push's or a call's stack slot is none); true when it does not
 * decode. */
bool disasm_writes_memory(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr);
/* True if the instruction writes no memory and leaves rsp alone: after it
 * the stack (with interrupts masked and other vCPUs held) is unchanged. */
bool disasm_keeps_stack(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr);

/*
 * Where rsp will be after the instruction at @code runs with rsp = @sp and
 * rbp = @rbp: unchanged, push/pop, call/ret, leave, or add/sub/and/lea/mov
 * into rsp. False when the instruction is none of these or rsp depends on
 * more than that (an exception it raises is not foreseen).
 */
bool disasm_next_sp(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr, uint64_t sp, uint64_t rbp,
		    uint64_t *next);

/*
 * How far the function starting at @func_code (@func_addr) is in setting up
 * its frame when at @pc: before "push %rbp", between it and "mov %rsp,%rbp",
 * or after. Scans at most the first instructions of @func_code.
 */
enum unwind_entry disasm_frame_state(struct disasm *d, const uint8_t *func_code, size_t len,
				     uint64_t func_addr, uint64_t pc);

#endif
