/* SPDX-License-Identifier: MIT */
/*
 * linespec: places in the code named as perf probe names them, resolved
 * from the DWARF with nothing running:
 *
 *   FUNC:RELLINE    a line counted from FUNC's first line (its declaration)
 *   FILE:LINE       a line of a source file, FILE matched by its tail
 *                   ("tcp_input.c:5890", "net/ipv4/tcp_input.c:5890")
 *   FUNC;PATTERN    FUNC's lines whose source text matches the glob PATTERN,
 *                   blanks ignored (perf's lazy lines); needs the source
 *   FUNC            a function GCC inlined: each inline instance
 *
 * A line gives every statement start compiled from it, as perf does (the
 * same rules: a line inside FUNC counts where no inline instance holds the
 * code, or at an inline's call site). It also lists the lines of a function
 * that can take a probe, for `kstep probe --lines`.
 */
#ifndef KSTEP_LINESPEC_H
#define KSTEP_LINESPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "symbols.h"

struct line_site {
	uint64_t addr;          /* running address of a statement start */
	char func[128];         /* the function whose code it is (outermost) */
	char inlined[128];      /* the inline instance it is the entry of, "" */
	char file[256];         /* the source file, as the DWARF names it */
	int line;               /* 0 for an inline instance's entry */
	int rel;                /* the line counted from func's first, -1: no FUNC */
};

struct line_sites {
	struct line_site *v;
	size_t n;
};

/* Does @where name a line, a pattern or a file (not a symbol)? */
bool linespec_is_line(const char *where);
/*
 * The statement starts @where names, sorted by address. @srcdir: the tree
 * the kernel was built from (for FUNC;PATTERN), NULL if unknown. Errors,
 * with the reason in @err: -ENOENT (no such function or file), -ERANGE (a
 * line with no code: the nearest lines that have some are named), -EINVAL
 * (malformed), -ENOMEM.
 */
int linespec_resolve(struct symtab *s, const char *where, const char *srcdir, struct line_sites *out, char *err,
		     size_t errlen);
/* The inline instances of FUNC (besides its out-of-line copy, if any). */
int linespec_inlines(struct symtab *s, const char *func, struct line_sites *out, char *err, size_t errlen);
void linespec_free(struct line_sites *ls);

/* The lines of a function or file that can take a probe. */
struct line_range {
	char file[256];         /* as the DWARF names it */
	char func[128];         /* "" for a file */
	int first, last;        /* the lines shown: FUNC's from its declaration */
	int base;               /* line numbers are printed relative to it (FUNC) or 0 */
	bool *has_code;         /* [line - first], last - first + 1 entries */
};
/* @what: FUNC[:A[-B]] or FILE[:A[-B]] (perf -L's ranges; FUNC's relative). */
int linespec_lines(struct symtab *s, const char *what, struct line_range *out, char *err, size_t errlen);
void linespec_range_free(struct line_range *r);

/* The path of a source file the DWARF names, under @srcdir (its tail,
 * shortened until it exists there). False if not found. */
bool linespec_source_path(const char *srcdir, const char *file, char *out, size_t len);

#endif
