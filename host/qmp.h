/* SPDX-License-Identifier: MIT */
/* qmp: QEMU Machine Protocol client (json-c) for VM lifecycle (stop, cont,
 * quit, and the SHUTDOWN event that says why QEMU ended) and the guest's
 * instruction count (guest time under -icount). */
#ifndef KSTEP_QMP_H
#define KSTEP_QMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qmp;

/* Connect to a QMP unix socket and leave capabilities negotiation mode. */
int qmp_open(struct qmp **out, const char *path, char *err, size_t errlen);
void qmp_close(struct qmp *q);
/* Run a command without arguments; 0 on {"return": ...}, -EIO on {"error"}. */
int qmp_execute(struct qmp *q, const char *command);
int qmp_fd(const struct qmp *q);
/* Instructions the guest has run (query-replay; QEMU counts them under
 * -icount, and the count stands still while the VM is stopped). */
int qmp_icount(struct qmp *q, uint64_t *icount);
/* Read the events that have arrived, without waiting for more; @reason gets
 * the reason of a SHUTDOWN event among them ("guest-reset", "host-qmp-quit",
 * "host-signal", ...). 0, or -ECONNRESET once QEMU closed the connection. */
int qmp_drain_events(struct qmp *q, char *reason, size_t len);

#endif
