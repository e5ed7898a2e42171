/* SPDX-License-Identifier: MIT */
/* record_cmd: the `kstep record` command (a recording to replay). */
#ifndef KSTEP_RECORD_CMD_H
#define KSTEP_RECORD_CMD_H

/* argv[0] is "record"; @tree: kstep's source tree (guest/run-guest.sh).
 * Returns the exit status (see its --help). */
int record_main(int argc, char **argv, const char *tree);

#endif
