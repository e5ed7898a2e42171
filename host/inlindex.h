/* SPDX-License-Identifier: MIT */
/*
 * inlindex: where the inline functions of a kernel are defined, by name: the
 * DIE of each unit's abstract instance (DW_AT_inline) of a function. Finding
 * them means a pass over every unit (0.5 s on a distribution's vmlinux), so
 * the result for all names is kept in kstep's cache, one file per build ID
 * ($XDG_CACHE_HOME/kstep/inlines/BUILDID, in a private 0700 directory), and
 * later lookups read it. The file is checked as it is read: a DIE it names
 * must be that function's abstract instance, or the pass is made again.
 */
#ifndef KSTEP_INLINDEX_H
#define KSTEP_INLINDEX_H

#include <stddef.h>

#include <elfutils/libdw.h>

#include "symbols.h"

/* The DIE offsets of @name's abstract instances in @s's DWARF into *offs
 * (malloc'ed; *n 0 when none). -ENOMEM, or -ENOENT without DWARF. */
int inlindex_lookup(struct symtab *s, const char *name, Dwarf_Off **offs, size_t *n);
/* The cache directory the index goes in, or "" when there is none ($HOME
 * unset and no XDG_CACHE_HOME). */
void inlindex_dir(char *out, size_t len);

#endif
