/* SPDX-License-Identifier: MIT */
/*
 * dwloc: the variables in scope at a code address and where each one lives
 * there, from their DWARF locations and location lists: a register, memory
 * at a register plus an offset (the frame base through the call frame
 * information), a value computed from a register, a constant or a static
 * address. What kstep cannot read is refused with the reason, and a value
 * that lives nowhere at the address with the nearest addresses where it
 * does (perf probe -V's information, and why).
 */
#ifndef KSTEP_DWLOC_H
#define KSTEP_DWLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <elfutils/libdw.h>

#include "symbols.h"

enum dwloc_kind {
	DWLOC_REG,      /* the value is register reg */
	DWLOC_MEM,      /* the value is in memory at register reg + off */
	DWLOC_VALUE,    /* the value is register reg + off (DW_OP_stack_value) */
	DWLOC_CONST,    /* the value is off */
	DWLOC_ADDR,     /* the value is in memory at off (a static, running address) */
};

struct dwloc {
	enum dwloc_kind kind;
	int reg;         /* DWARF register number (cfi.h's order) */
	int64_t off;
};

/*
 * Where @var lives at running address @addr. On failure @err says why, to
 * follow the variable's name ("is optimized out at ..."). -ENOENT: the
 * DWARF gives it no location at all; -ESRCH: none at @addr (@err names the nearest addresses
 * where it has one); -EOPNOTSUPP: a form kstep does not read (@err says
 * which); -ENODATA: known only as its value at the function's entry.
 */
int dwloc_at(struct symtab *s, Dwarf_Die *var, uint64_t addr, struct dwloc *out, char *err, size_t errlen);

struct dwloc_var {
	char name[64];
	char type[128];         /* as C writes it: "struct sk_buff *", "u32" */
	Dwarf_Die die;
	char function[64];      /* whose it is: the function, or the inline instance */
	bool param;             /* a parameter (of the function or an inline) */
	bool outermost;         /* of the out-of-line function itself */
};
/* The variables and parameters in scope at @addr, innermost scope first;
 * an inner one hides an outer one of the same name. -ENOENT without
 * debug info there. */
int dwloc_scope_vars(struct symtab *s, uint64_t addr, struct dwloc_var **out, size_t *n);
/* The one named @name, as dwloc_scope_vars would list it. */
bool dwloc_find(struct symtab *s, uint64_t addr, const char *name, struct dwloc_var *out);

#endif
