/* SPDX-License-Identifier: MIT */
/*
 * files: creating files and directories where another local user may have
 * been first. A predictable path (/tmp/kstep-UID, a trace directory in a
 * shared place) can hold a symlink or a directory someone else prepared;
 * kstep never writes through a link, never reuses a file it did not create
 * and uses a run directory only when it is its own with mode 0700.
 */
#ifndef KSTEP_FILES_H
#define KSTEP_FILES_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Make @dir (mode 0700) or accept an existing one only if it is a real
 * directory owned by us with mode 0700. 0, or -EPERM / -ENOTDIR / -errno
 * with the reason in @err.
 */
int files_private_dir(const char *dir, char *err, size_t errlen);
/* The per-user run directory: $KSTEP_RUNDIR, else
 * ${XDG_RUNTIME_DIR:-/tmp}/kstep-UID (what guest/rundir.sh computes). */
void files_rundir(char *out, size_t len);
/* Create @name in @dirfd (read-write): never through a link, never an
 * existing file. Returns the fd or -errno (-EEXIST: something is there). */
int files_create(int dirfd, const char *name, mode_t mode);
/* A new file @path (0644) as a stream for writing, created as
 * files_create does: NULL with -errno in *@ret and the reason in @err
 * ("cannot create PATH: File exists (remove it, ...)"). */
FILE *files_fcreate(const char *path, int *ret, char *err, size_t errlen);
/* Open @path for reading only if it is a regular file: a path that a trace
 * or a log names (someone else may have written it) must not block on a
 * FIFO or read a device for ever. Returns the fd (close-on-exec) or -errno
 * (-EINVAL: not a regular file). */
int files_open_regular(const char *path);
/* Lines @first..@last (1-based) of the file at @path, without newlines,
 * into *text (last - first + 1 entries, NULL past the file's end; free
 * with files_free_lines). The count read, or -errno (-EINVAL: a range no
 * source file has). */
int files_read_lines(const char *path, int first, int last, char ***text);
void files_free_lines(char **text, int first, int last);
/* Line @line of source file @file (under @dir unless it is absolute and
 * there), without its newline, into @out: "" if there is none. */
void files_source_line(const char *dir, const char *file, int line, char *out, size_t len);
/* The tree @vmlinux was built from: make images records it ("srcdir=" in
 * kernel.stamp beside the vmlinux). @out, or NULL if unknown. */
const char *files_kernel_source(const char *vmlinux, char *out, size_t len);
/* The same as a stdio stream; NULL with errno set. */
FILE *files_fopen_regular(const char *path);
/* What the directory @dirfd holds ("." and ".." aside): 0 nothing, 1 only
 * names @known accepts (a kstep output that --force may replace), -1
 * anything else or a directory that cannot be read. */
int files_dir_holds(int dirfd, bool (*known)(const char *name));
/* Replace @dir/@name with @text atomically (a new file renamed over it). */
int files_replace(const char *dir, const char *name, const char *text);

/* The size of @dir/@name, 0 when it is not there. */
uint64_t files_size(const char *dir, const char *name);

#endif
