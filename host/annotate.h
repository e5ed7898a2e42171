/* SPDX-License-Identifier: MIT */
/*
 * annotate: how many times each instruction and each source line of one
 * function ran in a step trace (perf annotate's view, counted, not sampled),
 * with the disassembly kstep recorded and the source text when the kernel
 * tree is at hand.
 */
#ifndef KSTEP_ANNOTATE_H
#define KSTEP_ANNOTATE_H

#include <stdint.h>
#include <stdio.h>

struct annotate;

int annotate_new(struct annotate **out, const char *function);
void annotate_free(struct annotate *a);
/* One step at @pc in @symbol ("name+0xoff"), its instruction and file:line. */
int annotate_add(struct annotate *a, const char *symbol, uint64_t pc, const char *insn, const char *src);
uint64_t annotate_count(const struct annotate *a);
/* Per source line (hottest first, @top of them: 0 all), then per
 * instruction in address order; source text from @srcdir (NULL: none). */
void annotate_print(const struct annotate *a, FILE *out, unsigned int top, const char *srcdir);

#endif
