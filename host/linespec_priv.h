/* SPDX-License-Identifier: MIT */
/*
 * linespec_priv: the walks linespec.c (places) and linespec_list.c
 * (listings) share. Not for use outside the two.
 */
#ifndef KSTEP_LINESPEC_PRIV_H
#define KSTEP_LINESPEC_PRIV_H

#include <elfutils/libdw.h>
#include <stdbool.h>
#include <stdint.h>

#include "linespec.h"

/* What a walk collects: rows of @file (a tail) at @line, and every line of
 * @file that has code (for the nearest when @line has none). */
struct collect {
	struct symtab *s;
	uint64_t to_running;
	const char *file;
	int line;               /* 0: none wanted (listing) */
	int decl;               /* the function's first line, 0 for a file */
	struct line_sites *out;
	int ret;
	bool *has_code;         /* [l - lo] for lo..hi, NULL: not wanted */
	int lo, hi;
	int nearest_below, nearest_above;
	Dwarf_Die cu;           /* the unit being walked */
};

/* A function's instances: its out-of-line copies, or its inline ones. */
struct instances {
	Dwarf_Die *v;
	size_t n, cap;
	bool nomem;
	bool inlined;           /* v are inline instances (no out-of-line copy) */
};

/* Whether a place's name is a file (has a dot and no parenthesis). */
bool linespec_looks_like_file(const char *name);
/* Every statement row of @fn's unit inside @fn, by perf's rules, into @c. */
int linespec_walk_function(Dwarf_Die *fn, struct collect *c);
/* @name's instances in @s: out-of-line copies, else inline ones. */
int linespec_find_instances(struct symtab *s, const char *name, struct instances *in, char *err, size_t errlen);
void linespec_free_instances(struct instances *in);
/* The units of @dw whose line table holds @file (a tail), walked into @c
 * (@sites: their probe sites too); the file's full name, NULL: none. */
const char *linespec_collect_units(struct collect *c, Dwarf *dw, const char *file, bool sites);

#endif
