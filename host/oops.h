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

#include <signal.h>

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

/* The kstep oops command; @default_vmlinux is used without --vmlinux. */
int oops_main(int argc, char **argv, const char *default_vmlinux, const volatile sig_atomic_t *interrupted);

#endif
