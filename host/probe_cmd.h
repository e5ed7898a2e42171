/* SPDX-License-Identifier: MIT */
/* probe_cmd: the `kstep probe` command (where probes go, what they fetch). */
#ifndef KSTEP_PROBE_CMD_H
#define KSTEP_PROBE_CMD_H

/* argv[0] is "probe"; returns the exit status (0, 1 not resolved, 2 usage). */
int probe_main(int argc, char **argv, const char *default_vmlinux);

#endif
