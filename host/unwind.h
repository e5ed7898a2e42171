/* SPDX-License-Identifier: MIT */
/*
 * unwind: frame-pointer walk of an x86-64 kernel stack (CONFIG_FRAME_POINTER):
 * each frame is [rbp] = caller's rbp, [rbp+8] = return address. Socket-free:
 * memory comes through a callback, so a synthetic stack can drive it.
 */
#ifndef KSTEP_UNWIND_H
#define KSTEP_UNWIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads @len bytes at @addr; 0 or a negative errno. */
typedef int (*unwind_read_fn)(void *ctx, uint64_t addr, void *out, size_t len);
/* True if @addr may be a return address (inside kernel text). */
typedef int (*unwind_text_fn)(void *ctx, uint64_t addr);

/* Where the current function is in building its frame. */
enum unwind_entry {
	UNWIND_FRAME_SET,    /* after "mov %rsp,%rbp": rbp is this function's frame */
	UNWIND_AT_ENTRY,     /* before "push %rbp": return address at [rsp] */
	UNWIND_AFTER_PUSH,   /* after "push %rbp": return address at [rsp+8] */
};

enum unwind_end {
	UNWIND_END_BOTTOM,   /* rbp reached 0 / the end of the chain */
	UNWIND_END_MAX,      /* hit max frames */
	UNWIND_END_BADPTR,   /* unaligned, non-kernel or unreadable frame pointer */
	UNWIND_END_LOOP,     /* the chain went backwards or repeated */
	UNWIND_END_NOTTEXT,  /* a return address outside kernel text */
	UNWIND_END_NOCFI,    /* code without call frame information (CFI unwinder) */
};
#define UNWIND_NENDS (UNWIND_END_NOCFI + 1)

/* How a backtrace ended, as the trace's bt_end field says it. */
const char *unwind_end_name(enum unwind_end end);
/* Did the walk reach the stack's natural end (or the end of what the
 * debug info describes) rather than stop on something it could not follow? */
bool unwind_end_reliable(enum unwind_end end);

struct unwind_regs {
	uint64_t pc, sp, fp;
};

/*
 * Fill @pcs with pc, then each caller's return address, up to @max entries.
 * Returns the number of entries; *end says why it stopped.
 */
size_t unwind_fp(const struct unwind_regs *regs, enum unwind_entry entry, uint64_t *pcs, size_t max,
		 unwind_read_fn read, unwind_text_fn is_text, void *ctx, enum unwind_end *end);


/* x86-64's struct pt_regs (arch/x86/include/asm/ptrace.h), in 8-byte
 * words: what an interrupt or exception entry pushes, and where the
 * interrupted context's rbp, ip, cs and rsp are in it. */
enum pt_regs_word { PT_REGS_BP = 4, PT_REGS_IP = 16, PT_REGS_CS = 17, PT_REGS_SP = 19, PT_REGS_WORDS = 21 };

#endif
