// SPDX-License-Identifier: MIT
/*
 * unwind: the frame-pointer walk of a kernel stack (see unwind.h), and the
 * names of the ways a walk ends.
 */
#include "unwind.h"

/* x86-64 kernel addresses live in the upper half (canonical, bit 63 set). */
#define KERNEL_MIN 0xffff800000000000ull
/* Kernel stacks are at most this large (THREAD_SIZE 16 KiB with KASAN off;
 * IRQ stacks likewise): a frame further away than this is not a frame. */
#define STACK_SPAN 0x8000ull
/* A walk may hop from the IRQ stack to the task stack, not more often. */
#define MAX_STACK_SWITCHES 3
/* The entry code of an interrupt or exception (ENCODE_FRAME_POINTER) leaves
 * rbp pointing at its pt_regs (unwind.h) with bit 0 set. */

/* @fp is an encoded pt_regs: record the interrupted ip and go on from its
 * rbp; 1 when the interrupt came from user space (the stack's end), -1
 * when pt_regs cannot be read or does not hold kernel code. */
static int cross_pt_regs(uint64_t *fp, uint64_t *pcs, size_t *n, unwind_read_fn read, unwind_text_fn is_text,
			 void *ctx)
{
	uint64_t regs = *fp & ~1ull, cs, ip, bp;

	if (read(ctx, regs + PT_REGS_CS * 8, &cs, 8) || read(ctx, regs + PT_REGS_IP * 8, &ip, 8) ||
	    read(ctx, regs + PT_REGS_BP * 8, &bp, 8))
		return -1;
	if (cs & 3)
		return 1;
	if (!is_text(ctx, ip))
		return -1;
	pcs[(*n)++] = ip;
	*fp = bp;
	return 0;
}

static int read_u64(unwind_read_fn read, void *ctx, uint64_t addr, uint64_t *v)
{
	return read(ctx, addr, v, sizeof(*v));
}

size_t unwind_fp(const struct unwind_regs *regs, enum unwind_entry entry, uint64_t *pcs, size_t max,
		 unwind_read_fn read, unwind_text_fn is_text, void *ctx, enum unwind_end *end)
{
	uint64_t fp = regs->fp, ret;
	size_t n = 0;
	int switches = 0;

	*end = UNWIND_END_MAX;
	if (!max)
		return 0;
	pcs[n++] = regs->pc;

	/* At entry the caller's frame is still in rbp; its return address is on
	 * the stack top instead of at [rbp+8]. */
	if (entry != UNWIND_FRAME_SET) {
		uint64_t at = regs->sp + (entry == UNWIND_AFTER_PUSH ? 8 : 0);

		if (n >= max)
			return n;
		if (read_u64(read, ctx, at, &ret)) {
			*end = UNWIND_END_BADPTR;
			return n;
		}
		if (!is_text(ctx, ret)) {
			*end = UNWIND_END_NOTTEXT;
			return n;
		}
		pcs[n++] = ret;
	}

	while (n < max) {
		uint64_t next;

		if (!fp) {
			*end = UNWIND_END_BOTTOM;
			return n;
		}
		if ((fp & 7) == 1 && fp >= KERNEL_MIN && switches < MAX_STACK_SWITCHES) {
			int r = cross_pt_regs(&fp, pcs, &n, read, is_text, ctx);

			if (r) {
				*end = r > 0 ? UNWIND_END_BOTTOM : UNWIND_END_BADPTR;
				return n;
			}
			switches++;
			continue;
		}
		if (fp & 7 || fp < KERNEL_MIN) {
			*end = UNWIND_END_BADPTR;
			return n;
		}
		if (read_u64(read, ctx, fp, &next) || read_u64(read, ctx, fp + 8, &ret)) {
			*end = UNWIND_END_BADPTR;
			return n;
		}
		if (!ret) {
			*end = UNWIND_END_BOTTOM;
			return n;
		}
		if (!is_text(ctx, ret)) {
			*end = UNWIND_END_NOTTEXT;
			return n;
		}
		pcs[n++] = ret;
		if (!next) {
			*end = UNWIND_END_BOTTOM;
			return n;
		}
		/* Callers' frames are higher on the same stack; anything else is
		 * either a switch to another stack (bounded) or a corrupt chain. */
		if (next <= fp || next - fp > STACK_SPAN) {
			if (next == fp || (next < fp && fp - next < STACK_SPAN) ||
			    ++switches > MAX_STACK_SWITCHES) {
				*end = UNWIND_END_LOOP;
				return n;
			}
		}
		fp = next;
	}
	return n;
}


const char *unwind_end_name(enum unwind_end end)
{
	switch (end) {
	case UNWIND_END_BOTTOM:
		return "stack-end";
	case UNWIND_END_MAX:
		return "depth-limit";
	case UNWIND_END_BADPTR:
		return "bad-pointer";
	case UNWIND_END_LOOP:
		return "loop";
	case UNWIND_END_NOTTEXT:
		return "not-text";
	case UNWIND_END_NOCFI:
		return "unknown-code";
	}
	return "?";
}

bool unwind_end_reliable(enum unwind_end end)
{
	return end == UNWIND_END_BOTTOM || end == UNWIND_END_NOCFI;
}
