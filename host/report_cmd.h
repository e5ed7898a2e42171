/* SPDX-License-Identifier: MIT */
/* report_cmd: the kstep report command (see report_cmd.c). */
#ifndef KSTEP_REPORT_CMD_H
#define KSTEP_REPORT_CMD_H

/* argv[0] is "report"; returns the exit status. */
int report_main(int argc, char **argv);

#endif
