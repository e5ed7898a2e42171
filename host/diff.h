/* SPDX-License-Identifier: MIT */
/* diff: the kstep diff command (see diff.c). */
#ifndef KSTEP_DIFF_H
#define KSTEP_DIFF_H

/* argv[0] is "diff"; returns the exit status. */
int diff_main(int argc, char **argv);

#endif
