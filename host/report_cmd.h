/* SPDX-License-Identifier: MIT */
/* report_cmd: the kstep report command (see report_cmd.c). */
#ifndef KSTEP_REPORT_CMD_H
#define KSTEP_REPORT_CMD_H

#include <signal.h>

/* argv[0] is "report"; returns the exit status. */
/* kstep report; *@interrupted set by a signal ends it with status 130. */
int report_main(int argc, char **argv, const volatile sig_atomic_t *interrupted);

#endif
