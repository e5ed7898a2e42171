/* SPDX-License-Identifier: MIT */
/* qmp: QEMU Machine Protocol client (json-c) for VM lifecycle only:
 * stop, cont, quit, query-status. */
#ifndef KSTEP_QMP_H
#define KSTEP_QMP_H

#include <stdbool.h>
#include <stddef.h>

struct qmp;

/* Connect to a QMP unix socket and leave capabilities negotiation mode. */
int qmp_open(struct qmp **out, const char *path, char *err, size_t errlen);
void qmp_close(struct qmp *q);
/* Run a command without arguments; 0 on {"return": ...}, -EIO on {"error"}. */
int qmp_execute(struct qmp *q, const char *command);
/* "running", "paused", "debug", "guest-panicked", ...; *running as QEMU says. */
int qmp_status(struct qmp *q, char *status, size_t len, bool *running);
const char *qmp_errmsg(const struct qmp *q);

#endif
