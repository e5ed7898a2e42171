/* SPDX-License-Identifier: MIT */
/*
 * warm: while kstep waits for a step run's first instruction, it reads
 * ahead the line tables of the code the run is likely to step through:
 * the function it starts in, the functions that one calls or jumps to
 * directly, theirs, and so on, breadth first. libdw reads a compilation
 * unit's line table whole the first time an address of it is named (1 to
 * 3 ms); read during the run, that was a third of a short one's time.
 * Each of their instructions is decoded and named into the step caches'
 * empty slots: what is nearer the start is warmed first and keeps its
 * slot. The first slice also has libdw index all of the call frame
 * information (cfi_warm), which the first step's walk down the stack used
 * to pay for. Once the queue is done, every other unit's line table is
 * read too (0.4 s for this project's vmlinux, 1.2 s for Debian's): the
 * callers the first step's backtrace names (its file:line half of that
 * step's time before), and what the run reaches only through pointers.
 */
#ifndef KSTEP_WARM_H
#define KSTEP_WARM_H

#include <stdbool.h>
#include <stdint.h>

#include "cfi.h"
#include "disasm.h"
#include "snapshot.h"
#include "symbols.h"

struct warm;

/* From the function at @at; NULL when out of memory (nothing is warmed). */
struct warm *warm_new(struct symtab *syms, struct disasm *dis, struct snapshot_ctx *snap, struct cfi *cfi,
		      uint64_t at);
/* Warm functions for about @budget_ms; false once there are none left. */
bool warm_some(struct warm *w, int budget_ms);
/* Is the function at @addr (its first byte) in the queue, warmed or not? */
bool warm_queued(const struct warm *w, uint64_t addr);
void warm_free(struct warm *w);

#endif
