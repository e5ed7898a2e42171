/* SPDX-License-Identifier: MIT */
/* dump_cmd: the `kstep dump` command (a guest's vmcore). */
#ifndef KSTEP_DUMP_CMD_H
#define KSTEP_DUMP_CMD_H

/* argv[0] is "dump"; returns the exit status (0, 1 not written, 2 usage). */
int dump_main(int argc, char **argv);

#endif
