/* SPDX-License-Identifier: MIT */
/*
 * vmcore: a guest's memory as an ELF core for crash and drgn, written by
 * QEMU over QMP into a file kstep creates.
 */
#ifndef KSTEP_VMCORE_H
#define KSTEP_VMCORE_H

#include <stddef.h>

/*
 * Dump the guest behind QMP socket @qmp_socket into @name in @dirfd (a new
 * file, mode 0600, never through a link). A running guest is stopped for
 * the dump and runs on after it; a stopped one stays stopped. 0, or
 * -errno with the reason in @err and no file left behind.
 */
int vmcore_write(const char *qmp_socket, int dirfd, const char *name, char *err, size_t errlen);
/* The same with another way to have QEMU write into a file descriptor
 * (through libvirt): @dump writes the core into its fd, 0 or -errno. */
typedef int vmcore_dump_fn(void *ctx, int fd, char *err, size_t errlen);
int vmcore_write_by(vmcore_dump_fn *dump, void *ctx, int dirfd, const char *name, char *err, size_t errlen);
/* The QMP socket make run-guest puts beside its gdbstub's (qmp.sock in the
 * same private directory, ours): -ENOENT when there is none. */
int vmcore_qmp_beside(const char *gdb_socket, char *out, size_t len);

#endif
