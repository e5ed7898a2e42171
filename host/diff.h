/* SPDX-License-Identifier: MIT */
/*
 * diff: two step traces of the same entry point (kstep step --at the same
 * SPEC) aligned by control flow, for kstep diff.
 */
#ifndef KSTEP_DIFF_H
#define KSTEP_DIFF_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

struct diff;

/* Read the step traces in directories @a and @b; *@interrupted set by a
 * signal ends it with -EINTR. *@out is always set: diff_free it. */
int diff_load(struct diff **out, const char *a, const char *b, const volatile sig_atomic_t *interrupted, char *err,
	      size_t errlen);
/* Where they first diverge, meet again, and what each ran per function. */
void diff_print(const struct diff *d, FILE *out);
void diff_free(struct diff *d);

#endif
