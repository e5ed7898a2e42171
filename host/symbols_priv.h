/* SPDX-License-Identifier: MIT */
/*
 * symbols_priv: the symbol table's state, shared by symbols.c (ELF
 * symbols, KASLR) and symbols_dwarf.c (libdw). Not for use outside them.
 */
#ifndef KSTEP_SYMBOLS_PRIV_H
#define KSTEP_SYMBOLS_PRIV_H

#include <elfutils/libdwfl.h>
#include <gelf.h>
#include <stdbool.h>
#include <stdint.h>

#include "symbols.h"

struct symtab {
	char *path;
	int fd;
	Elf *elf;
	struct sym *syms;        /* sorted by address */
	size_t nsyms;
	struct sym **by_name;    /* sorted by name */
	char *strings;           /* copy of .strtab */
	uint64_t stext, etext;
	uint64_t sinittext, einittext; /* __init code: text until the kernel frees it after boot */
	uint64_t offset;         /* KASLR: where the kernel runs minus its link address */
	Dwfl *dwfl;              /* opened on first use */
	Dwfl_Module *mod;
	bool dwfl_failed;
	struct sym_memo *memo;   /* sym_lookup_addr's last answer; NULL: none kept */
	struct sym_entries *entries; /* sym_dwarf_function's last unit; NULL: none read */
};

/* The functions of one unit by entry address: a line walk asks for the
 * function at each entry of a unit, and finding it through the unit's
 * scopes walks the whole unit each time. */
struct sym_entries {
	Dwarf_Off unit;          /* the unit's DIE offset, 0: none read whole */
	struct sym_entry { Dwarf_Addr pc; Dwarf_Die die; } *v; /* sorted by pc */
	size_t n, cap;           /* cap: v's room, kept from unit to unit */
};

/* Addresses [lo, hi) all look up to @sym: a step trace asks about the
 * same function many times in a row. */
struct sym_memo {
	uint64_t lo, hi;
	const struct sym *sym;
};

/* The vmlinux reported to an offline Dwfl on first use; NULL: no DWARF. */
Dwfl_Module *sym_dwfl_module(struct symtab *s);

#endif
