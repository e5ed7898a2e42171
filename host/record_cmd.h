/* SPDX-License-Identifier: MIT */
/* record_cmd: the `kstep record` command's run (a recording to replay). */
#ifndef KSTEP_RECORD_CMD_H
#define KSTEP_RECORD_CMD_H

#include <signal.h>
#include <stdbool.h>

#include "qemu.h"

/* Record the guest @qo describes (rr "record", TCG, one vCPU) into @dir,
 * made private (or emptied of an old recording when @force). Ends early
 * when *@interrupted is set. Returns kstep record's exit status (see its
 * --help). */
int record_run(struct qemu_opts *qo, const char *dir, bool force, bool progress, volatile sig_atomic_t *interrupted);

#endif
