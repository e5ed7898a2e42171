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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfi.h"
#include "disasm.h"
#include "memcache.h"
#include "symbols.h"
#include "trace.h"
#include "unwind.h"

/* Frames a backtrace records at most (--max-stack; a syscall's TCP receive
 * through softirq and GRO is about 40 deep), and frames a step's walk may
 * go on beneath them, not recorded: a return out of a backtrace cut at
 * --max-stack takes the next one from there, not from a new walk. */
#define SNAPSHOT_FRAMES 64
#define SNAPSHOT_WALK 128

struct snapshot {
	uint64_t pcs[SNAPSHOT_WALK];
	char names[SNAPSHOT_FRAMES][96];
	char srcs[SNAPSHOT_FRAMES][256]; /* copies: a cache slot may be reused within one backtrace */
	struct trace_frame bt[SNAPSHOT_FRAMES];
	uint64_t *stack;                 /* the window's words, memcache_window_max / 8 */
	size_t nbt;
	enum unwind_end end;             /* how the backtrace ended */
	size_t nwalked;                  /* pcs unwound: nbt, and beneath them */
	enum unwind_end walk_end;        /* how the walk of nwalked ended */
	const char *unwinder;            /* "cfi", "fp" or "cfi+fp" */
};

/* Which unwinder a snapshot uses: the debug info's call frame information,
 * the frame-pointer chain, or CFI continued by the frame-pointer chain
 * where CFI stops (assembly) and the chain agrees with every CFI frame.
 * CHECK records CFI's and compares the frame-pointer chain with it. */
enum snapshot_unwind_mode { SNAPSHOT_UNWIND_AUTO, SNAPSHOT_UNWIND_CFI, SNAPSHOT_UNWIND_FP, SNAPSHOT_UNWIND_CHECK };

/* --unwind check: how many backtraces both unwinders gave frame for frame. */
struct snapshot_agreement {
	uint64_t compared, agreed;
	uint64_t first_pc;               /* where they first differed, 0: never */
};

/* What snapshots are taken with, for a session: symbols, memory, the
 * disassembler (to see how far a function has built its frame) and a cache
 * of file:line by address. */
struct snapshot_ctx;

/* @cfi may be NULL (frame pointers only); the context does not own it.
 * Backtraces record @frames at most (1 to SNAPSHOT_FRAMES). */
int snapshot_ctx_new(struct snapshot_ctx **out, struct symtab *syms, struct memcache *mc, struct disasm *dis,
		     struct cfi *cfi, enum snapshot_unwind_mode mode, size_t frames);
void snapshot_ctx_free(struct snapshot_ctx *c);
/* Fault the table of frame names in now (bigmem.h), before a step run. */
void snapshot_ctx_populate(struct snapshot_ctx *c);
/* Name the instruction at @pc ahead of a step run, into its table slot if
 * that is empty (warm.h). */
void snapshot_warm(struct snapshot_ctx *c, uint64_t pc);
int snapshot_new(struct snapshot **out, const struct memcache *mc);
void snapshot_free(struct snapshot *sn);

/* A frame at @pc is named next: its slot into the CPU's cache meanwhile. */
void snapshot_prefetch(const struct snapshot_ctx *c, uint64_t pc);
/* Where the function at @pc is in building its frame (reads its code). */
enum unwind_entry snapshot_frame_state(struct snapshot_ctx *c, uint64_t pc);
/* The frame chain from these registers (@dwarf: all of them in DWARF
 * order, for CFI; @entry: the frame state, for the frame-pointer walk);
 * @beneath: a CFI walk goes on past the recorded frames to SNAPSHOT_WALK. */
void snapshot_unwind(struct snapshot_ctx *c, struct snapshot *sn, const struct unwind_regs *regs,
		     const uint64_t dwarf[CFI_NREGS], enum unwind_entry entry, bool beneath);
/* Names and lines of the frames (vmlinux only). */
void snapshot_symbolize(struct snapshot_ctx *c, struct snapshot *sn);
/* The same frames (unwound and named), under a new innermost one at @pc:
 * the function went on from pcs[0] without a call, a return or a stack
 * switch, so its callers are those it had (needs nbt >= 1). */
void snapshot_move_top(struct snapshot_ctx *c, struct snapshot *sn, uint64_t pc);
/* The frames after a call from pcs[0] to @pc, which pushed @ret, and
 * after a return to pcs[1] (nbt >= 2, and snapshot_knows_beneath): the
 * frames above stay as they were unwound and named; a backtrace cut at
 * its most frames moves on the walk beneath it. */
void snapshot_called(struct snapshot_ctx *c, struct snapshot *sn, uint64_t pc, uint64_t ret);
void snapshot_returned(struct snapshot_ctx *c, struct snapshot *sn);
/* Whether the backtrace's end is known one frame further down: it was
 * not cut, or the walk went on beneath it. */
bool snapshot_knows_beneath(const struct snapshot *sn);
const struct snapshot_agreement *snapshot_agreement(const struct snapshot_ctx *c);
/* --unwind check, at a step whose frames were carried over from the step
 * before (snapshot_move_top, _called, _returned): does a CFI walk from its
 * registers (@dwarf) give the same backtrace? Counted apart. */
void snapshot_check_carried(struct snapshot_ctx *c, const struct snapshot *sn, const uint64_t dwarf[CFI_NREGS]);
const struct snapshot_agreement *snapshot_carried_agreement(const struct snapshot_ctx *c);
/* --unwind check: every CFI walk (cfi_unwind, through the rows it keeps)
 * against libdwfl's own walk from the same registers (cfi_unwind_libdwfl). */
const struct snapshot_agreement *snapshot_rows_agreement(const struct snapshot_ctx *c);
/* Up to @words stack words from the window into sn->stack; how many. */
size_t snapshot_stack(struct snapshot_ctx *c, struct snapshot *sn, size_t words);

#endif
