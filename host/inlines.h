/* SPDX-License-Identifier: MIT */
/*
 * inlines: which functions were inlined at an address of a trace (from the
 * trace's vmlinux), for the call tree of a step trace.
 */
#ifndef KSTEP_INLINES_H
#define KSTEP_INLINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most inlined functions one address is counted in. */
#define INLINES_MAX 8

struct inlines;

/* Open @vmlinux; its errors (sym_open's) with the reason in @err. */
int inlines_open(struct inlines **out, const char *vmlinux, char *err, size_t errlen);
void inlines_close(struct inlines *in);
/* Where the kernel ran (KASLR): from an event's @pc and its "name+0xoff"
 * @symbol. Until this succeeds once, inlines_at finds nothing. */
bool inlines_place(struct inlines *in, uint64_t pc, const char *symbol);
/* The functions inlined at @addr, outermost first, not counting the one
 * they were inlined into, as "NAME (inlined)": *names until the next call,
 * the names themselves until inlines_close. */
size_t inlines_at(struct inlines *in, uint64_t addr, const char *const **names);

#endif
