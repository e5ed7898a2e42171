/* SPDX-License-Identifier: MIT */
/*
 * snapshot: what kstep records of the guest at a stop or a step beyond its
 * registers: the backtrace (frame-pointer walk through the memory cache),
 * named and with file:line, and the stack words of the window.
 * Unwinding reads guest memory, so the guest must be stopped (or the cache
 * offline); naming uses only vmlinux and can run while the guest does.
 */
#ifndef KSTEP_SNAPSHOT_H
#define KSTEP_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "disasm.h"
#include "memcache.h"
#include "symbols.h"
#include "trace.h"
#include "unwind.h"

/* Frames recorded per backtrace. */
#define SNAPSHOT_FRAMES 32

struct snapshot {
	uint64_t pcs[SNAPSHOT_FRAMES];
	char names[SNAPSHOT_FRAMES][96];
	char srcs[SNAPSHOT_FRAMES][256]; /* copies: a cache slot may be reused within one backtrace */
	struct trace_frame bt[SNAPSHOT_FRAMES];
	uint64_t *stack;                 /* the window's words, memcache_window_max / 8 */
	size_t nbt;
	enum unwind_end end;
};

/* What snapshots are taken with, for a session: symbols, memory, the
 * disassembler (to see how far a function has built its frame) and a cache
 * of file:line by address. */
struct snapshot_ctx;

int snapshot_ctx_new(struct snapshot_ctx **out, struct symtab *syms, struct memcache *mc, struct disasm *dis);
void snapshot_ctx_free(struct snapshot_ctx *c);
int snapshot_new(struct snapshot **out, const struct memcache *mc);
void snapshot_free(struct snapshot *sn);

/* Where the function at @pc is in building its frame (reads its code). */
enum unwind_entry snapshot_frame_state(struct snapshot_ctx *c, uint64_t pc);
/* The frame chain from these registers. */
void snapshot_unwind(struct snapshot_ctx *c, struct snapshot *sn, const struct unwind_regs *regs,
		     enum unwind_entry entry);
/* Names and lines of the frames (vmlinux only). */
void snapshot_symbolize(struct snapshot_ctx *c, struct snapshot *sn);
/* Up to @words stack words from the window into sn->stack; how many. */
size_t snapshot_stack(struct snapshot_ctx *c, struct snapshot *sn, size_t words);

#endif
