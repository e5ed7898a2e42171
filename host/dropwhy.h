/* SPDX-License-Identifier: MIT */
/*
 * dropwhy: which branch decided a drop, from a why --drop trace: the drop's
 * stop (kfree_skb_reason, with its reason and backtrace) and the steps of
 * the dropping function from its entry to the call that dropped (calls it
 * made stepped over, each one step). A trace of several drops is read for
 * its last one.
 *
 * The dropping function's control flow is decoded from vmlinux. From each
 * instruction, it can still return without a drop (by some path that
 * calls no kfree_skb*), or it cannot. Along the steps that ran, the
 * deciding branch is the conditional branch after which the function
 * could no longer return without a drop: its other way could. Then the
 * instruction that set the flags it tested, the values it compared (the
 * registers as the steps recorded them), and where each came from: the
 * last instruction before it that set the register (a load from memory,
 * a call's return value, or the function's argument).
 */
#ifndef KSTEP_DROPWHY_H
#define KSTEP_DROPWHY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "disasm.h"
#include "symbols.h"

#define DROPWHY_OPERANDS 4

/* Where a compared register's value came from. */
struct drop_origin {
	char reg[8];
	uint64_t value;            /* at the comparison */
	enum { ORIGIN_UNKNOWN, ORIGIN_ARGUMENT, ORIGIN_CALL, ORIGIN_LOAD, ORIGIN_OTHER } kind;
	uint64_t pc;               /* the instruction that set it */
	char insn[128], where[160];
	char callee[128];          /* a call's: the function called ("" if indirect) */
	uint64_t icount;           /* instructions run before it (a load: where to watch up to) */
	uint64_t load_addr;        /* a load: the address it read */
	unsigned int load_len;
};

struct drop_answer {
	char reason[96];           /* the reason the kernel gave ("" if the trace lacks it) */
	char dropper[160];         /* FUNCTION+OFF of the call that dropped */
	uint64_t branch_pc;        /* the deciding branch; 0: none found */
	char branch_insn[128], branch_where[160];
	char branch_src[600];      /* file:line, innermost inline first */
	int branch_line;
	char branch_file[512];
	bool taken;                /* the drop way was the branch taken */
	uint64_t cmp_pc;           /* the instruction that set its flags; 0: not among the steps */
	char cmp_insn[128];
	struct drop_origin operands[DROPWHY_OPERANDS];
	size_t noperands;
	uint64_t steps;            /* the dropping function's steps read */
};

/* From the drop stop in the trace in @dir: the return address into the
 * function that dropped (past kfree_skb and such wrappers). -ENOENT with
 * the reason in @err when the trace has none. */
int dropwhy_frame(const char *dir, struct symtab *syms, uint64_t *ret_addr, char *err, size_t errlen);
/* The answer from the trace in @dir, with @syms placed where the trace's
 * kernel ran, and its clock's @icount_shift. -errno with the reason in
 * @err (no drop stop, no steps, a function that drops on every path). */
int dropwhy_explain(const char *dir, struct symtab *syms, struct disasm *dis, unsigned int icount_shift,
		    struct drop_answer *a, char *err, size_t errlen);
/* The answer in words, with the branch's source line from @srcdir. */
void dropwhy_print(const struct drop_answer *a, const char *srcdir, FILE *out);

#endif
