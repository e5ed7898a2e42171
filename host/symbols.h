/* SPDX-License-Identifier: MIT */
/*
 * symbols: vmlinux's symbol table (libelf) and line/inline information
 * (libdw through an offline Dwfl, as perf's debuginfo.c does).
 */
#ifndef KSTEP_SYMBOLS_H
#define KSTEP_SYMBOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <elfutils/libdw.h>

struct sym {
	const char *name;
	uint64_t addr;
	uint64_t size;
	bool func;
};

struct symtab;

/* Open @path and read its symbols. Errors: -ENOENT, -ENOEXEC (not an ELF with
 * a symbol table), -ENOMEM; a message goes to @err. */
int sym_open(struct symtab **out, const char *path, char *err, size_t errlen);
void sym_close(struct symtab *s);
const char *sym_path(const struct symtab *s);

/*
 * KASLR: the kernel runs @offset bytes above its link address. Every address
 * in and out of this module is then a running one (symbols, lookups, text
 * range); DWARF and file reads are translated back inside. Cheap to call
 * again with another offset.
 */
void sym_relocate(struct symtab *s, uint64_t offset);
uint64_t sym_offset(const struct symtab *s);
/* _stext .. _etext, relocated (0, 0 if the vmlinux lacks them). */
void sym_text_range(const struct symtab *s, uint64_t *start, uint64_t *end);

/* Symbol containing @addr (functions and objects), or NULL. */
const struct sym *sym_lookup_addr(const struct symtab *s, uint64_t addr);
/* Distance from @sym (from sym_lookup_*) to the next function after it: the
 * most the kernel's kallsyms can call its size. 0 if it is the last. */
uint64_t sym_span(const struct symtab *s, const struct sym *sym);
/* First symbol named @name, preferring functions, else a GCC clone of it
 * (name.constprop.0, name.isra.0, ...), or NULL. */
const struct sym *sym_lookup_name(const struct symtab *s, const char *name);
/* Resolve "name", "name+0xoff", "name+off" or "0xaddr". -ENOENT for an unknown
 * name, -EINVAL for a malformed spec, -ERANGE for an offset past the symbol's
 * end (*addr is set all the same). */
int sym_resolve(const struct symtab *s, const char *spec, uint64_t *addr);
/* "name+0xoff" (or "0x..." when unknown) into @out. */
void sym_format(const struct symtab *s, uint64_t addr, char *out, size_t len);
/* The same for a return address: named after the call before it (address-1),
 * as the kernel's %pB does, since a call to a noreturn function can be the
 * last instruction of its function. */
void sym_format_return(const struct symtab *s, uint64_t addr, char *out, size_t len);
/* True if @addr is inside the kernel's text (_stext .. _etext) or its init
 * text (_sinittext .. _einittext). */
bool sym_in_text(const struct symtab *s, uint64_t addr);
/* The bytes of a section-backed symbol as they are in the file (e.g. linux_banner). */
int sym_read_bytes(const struct symtab *s, uint64_t addr, void *out, size_t len);

/* Is the kernel image @bzimage the build this vmlinux comes from? Compares
 * the version string of its setup header with linux_banner, before anything
 * boots. -ESTALE (with both in @err) when not. */
int sym_check_bzimage(const struct symtab *s, const char *bzimage, char *err, size_t errlen);

/* One frame of source position; an address gives its inline chain innermost first. */
struct sym_srcloc {
	char function[128];
	char file[512];      /* relative DWARF names joined to the CU's comp_dir */
	int line;
	int column;
	unsigned int discriminator; /* innermost entry only, as addr2line shows it */
};

/* Source position of @addr with its inline chain (innermost first). Returns the
 * number of entries written (<= max), 0 if there is no line info, or < 0.
 * With @max 1 only the line table is consulted (fast); the function is then
 * the outermost one containing @addr. */
int sym_srclocs(struct symtab *s, uint64_t addr, struct sym_srcloc *out, int max);
/* Have libdw read the line table of vmlinux's compilation unit after
 * @unit (NULL: the first), as a lookup of an address in it would, ahead
 * of such lookups. Returns that unit, NULL after the last. */
void *sym_read_unit_lines(struct symtab *s, void *unit);

/* Which argument of the function at @func_addr is a struct sk_buff (0-based),
 * and how many pointer levels (1: sk_buff *, 2: sk_buff **). For a struct
 * list_head * argument named like a list of skbs, *levels is 0. -ENOENT if none. */
int sym_skb_param(struct symtab *s, uint64_t func_addr, int *index, int *levels);

/* Offset (and size, if @size) of the member @path ("a.b.c", through nested
 * and anonymous structs) in struct @type, from the DWARF. -ENOENT if the
 * debug info has no such struct or member. */
int sym_member(struct symtab *s, const char *type, const char *path, uint64_t *offset, uint64_t *size);
int sym_struct_size(struct symtab *s, const char *type, uint64_t *size);

/* DWARF for the modules that walk types themselves (fetcharg). */
/* The subprogram that holds @addr (a running address), and @addr as the
 * DWARF's own address (*dwarf_pc). False if the debug info has none. */
bool sym_dwarf_function(struct symtab *s, uint64_t addr, Dwarf_Die *out, uint64_t *dwarf_pc);
/* The scopes that hold @addr, innermost first down to its subprogram
 * (blocks, inline instances), as concrete DIEs: a local's scope. The
 * count; *scopes is malloc'ed. */
int sym_dwarf_scopes(struct symtab *s, uint64_t addr, Dwarf_Die **scopes, uint64_t *dwarf_pc);
/* The DWARF of the file, for walks over every unit (linespec): DWARF
 * address + *to_running is the running one. NULL without debug info. */
Dwarf *sym_dwarf(struct symtab *s, uint64_t *to_running);
/* The file's GNU build ID in hex into @hex; -ENOENT if it has none. */
int sym_build_id(struct symtab *s, char *hex, size_t len);
/* The canonical frame address at @addr as a register plus an offset, from
 * the call frame information: where DW_OP_fbreg locals are. -ENOENT. */
int sym_cfa(struct symtab *s, uint64_t addr, int *reg, int64_t *off);
/* A global variable's definition (for its type), false if none. */
bool sym_dwarf_variable(struct symtab *s, const char *name, Dwarf_Die *out);
/* Follow typedefs and qualifiers to the type itself; false on broken DWARF. */
bool sym_dwarf_strip(Dwarf_Die *type);
/* @member of struct or union @type, anonymous members included; *at gets
 * its offset added. */
bool sym_dwarf_member(Dwarf_Die *type, const char *member, Dwarf_Die *out, uint64_t *at);
/* The name of a DIE, or of its abstract origin (inlined and cloned copies). */
const char *sym_dwarf_name(Dwarf_Die *die);

#endif
