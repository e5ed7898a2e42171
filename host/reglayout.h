/* SPDX-License-Identifier: MIT */
/*
 * reglayout: a target's registers as a block: names, sizes and where each
 * sits in the raw block ('g' reply order). target.c reads it from the
 * stub's target.xml (or kgdb's fixed layout); the trace writer, the
 * plugin channel and the readers take it as plain data, below the
 * protocol.
 */
#ifndef KSTEP_REGLAYOUT_H
#define KSTEP_REGLAYOUT_H

#include <stdbool.h>
#include <stddef.h>

struct target_reg {
	char *name;
	unsigned int bitsize;
	unsigned int regnum;
	size_t offset;        /* byte offset in the 'g' reply */
	bool in_g;            /* false: beyond what 'g' returns */
};

struct target_desc {
	char *arch;
	struct target_reg *regs;
	size_t nregs;
	size_t g_size;        /* bytes of all registers, in regnum order */
};

#endif
