/* SPDX-License-Identifier: MIT */
/* diff: the kstep diff command (see diff.c). */
#ifndef KSTEP_DIFF_H
#define KSTEP_DIFF_H

#include <signal.h>

/* argv[0] is "diff"; returns the exit status. */
/* kstep diff; *@interrupted set by a signal ends it with status 130. */
int diff_main(int argc, char **argv, const volatile sig_atomic_t *interrupted);

#endif
