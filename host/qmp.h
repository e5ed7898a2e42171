/* SPDX-License-Identifier: MIT */
/* qmp: QEMU Machine Protocol client (json-c) for VM lifecycle (stop, cont,
 * quit, and the SHUTDOWN event that says why QEMU ended), the guest's
 * instruction count (guest time under -icount) and memory dumps. */
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
/* Why the last call failed. */
const char *qmp_errmsg(const struct qmp *q);
/* Is the guest running (query-status)? */
int qmp_running(struct qmp *q, bool *running);
/*
 * The guest's memory as an ELF core (dump-guest-memory), written by QEMU
 * into @fd, which it gets over the socket (getfd): the file is one kstep
 * created, not a path QEMU opens. With QEMU's vmcoreinfo device on the
 * guest the core carries the kernel's VMCOREINFO note (KASLR offset,
 * phys_base, page table layout), which crash and drgn need. The guest
 * must be stopped; waits up to @timeout_ms for QEMU to finish.
 */
#define QMP_DUMP_FD "kstep-vmcore"
int qmp_dump_memory(struct qmp *q, int fd, int timeout_ms);
int qmp_fd(const struct qmp *q);
/* Instructions the guest has run (query-replay; QEMU counts them under
 * -icount, and the count stands still while the VM is stopped). */
int qmp_icount(struct qmp *q, uint64_t *icount);
/* Replay only: stop the guest when it has run @icount instructions
 * (QMP replay-break; the gdbstub reports that stop as an interrupt). */
int qmp_replay_break(struct qmp *q, uint64_t icount);
/* Read the events that have arrived, without waiting for more; @reason gets
 * the reason of a SHUTDOWN event among them ("guest-reset", "host-qmp-quit",
 * "host-signal", ...). 0, or -ECONNRESET once QEMU closed the connection. */
int qmp_drain_events(struct qmp *q, char *reason, size_t len);

#endif
