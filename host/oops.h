/* SPDX-License-Identifier: MIT */
/*
 * oops: find oops/BUG/WARNING/panic reports in a kernel log and decode them
 * against vmlinux with libdw in process: RIP and Call Trace entries to
 * file:line with the inline chain, Code: bytes disassembled with Capstone.
 * The output is the log with decoded lines, as scripts/decode_stacktrace.sh
 * prints it, or JSON.
 */
#ifndef KSTEP_OOPS_H
#define KSTEP_OOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One "sym+0xoff/0xlen" entry found in a line (socket- and file-free). */
struct oops_frame {
	size_t start, end;     /* where the entry is in the line (with a "0010:" prefix) */
	char segment[16];      /* "0010:" or "" */
	char name[128];
	uint64_t offset, size;
	char module[64];       /* "[mod]" after the entry, "" in vmlinux */
	bool unreliable;       /* "? " before it */
};

/* Parse the first frame entry of @line. Returns true if there is one. */
bool oops_parse_frame(const char *line, struct oops_frame *f);

/*
 * Does the size printed after '/' fit a symbol of this vmlinux? The kernel
 * prints kallsyms' size: the distance to the next symbol, alignment padding
 * included, so it is at least the ELF st_size (@elf_size) and at most the
 * distance to the next function (@span). 0 for either: unknown.
 */
bool oops_size_fits(uint64_t printed, uint64_t elf_size, uint64_t span);

/* A decoder: a log's lines in, the log with decoded lines (or JSON) out
 * on stdout. */
struct oops_decoder;

struct oops_options {
	const char *vmlinux;
	const char *moddir; /* modules' debug info (NAME.ko below it), NULL: the release's */
	bool json;          /* one JSON document with every report */
	bool raw;           /* look return addresses up as printed, not at address-1 */
};

/* What a log held, when it is all read. */
struct oops_summary {
	int nreports;
	bool unterminated;  /* the last report has no end marker */
	int nmodule, nunknown, nmismatch, nnoline; /* frames not decoded, by why */
	const char *moddir; /* where modules' debug info was looked for */
};

/* *@out is always set: oops_decoder_free it. */
int oops_decoder_new(struct oops_decoder **out, const struct oops_options *o, char *err, size_t errlen);
/* One line of the log (its newline may be there; @line is changed). */
void oops_decode_line(struct oops_decoder *d, char *line);
/* The log is all read: the JSON closed, and *@sum filled. */
void oops_decoder_end(struct oops_decoder *d, struct oops_summary *sum);
void oops_decoder_free(struct oops_decoder *d);

#endif
