/* SPDX-License-Identifier: MIT */
/*
 * vmlinux: the project's vmlinux (images/vmlinux, or $IMAGES/vmlinux),
 * opened once for the unit tests that read symbols and DWARF from it.
 */
#ifndef KSTEP_TEST_VMLINUX_H
#define KSTEP_TEST_VMLINUX_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "symbols.h"

static struct symtab *syms;
static char vmlinux[PATH_MAX];

/* cmocka's group setup: 0, or -1 with why on stderr (no images built). */
static int open_vmlinux(void **state)
{
	char err[1024];

	(void)state;
	snprintf(vmlinux, sizeof(vmlinux), "%s/vmlinux", getenv("IMAGES") ? getenv("IMAGES") : PROJECT_IMAGES);
	if (sym_open(&syms, vmlinux, err, sizeof(err))) {
		fprintf(stderr, "%s (run make images)\n", err);
		return -1;
	}
	return 0;
}

static int close_vmlinux(void **state)
{
	(void)state;
	sym_close(syms);
	return 0;
}

#endif
