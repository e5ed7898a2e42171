// SPDX-License-Identifier: MIT
/*
 * files: private directories and files created without following links
 * (see files.h for why).
 */
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int files_private_dir(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -errno;
	}
	if (lstat(dir, &st)) {
		snprintf(err, errlen, "cannot look at %s: %s", dir, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory of yours (a symlink or a file): refusing it", dir);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s belongs to uid %u, not to you: refusing it (someone else may have prepared it)",
			 dir, (unsigned)st.st_uid);
		return -EPERM;
	}
	if ((st.st_mode & 07777) != 0700) {
		snprintf(err, errlen, "%s has mode %03o, not 700: refusing it (chmod 700 %s if it is yours)", dir,
			 (unsigned)(st.st_mode & 07777), dir);
		return -EPERM;
	}
	return 0;
}

void files_rundir(char *out, size_t len)
{
	const char *own = getenv("KSTEP_RUNDIR"), *base = getenv("XDG_RUNTIME_DIR");

	if (own && *own)
		snprintf(out, len, "%s", own);
	else
		snprintf(out, len, "%s/kstep-%u", base && *base ? base : "/tmp", (unsigned)getuid());
}

int files_create(int dirfd, const char *name, mode_t mode)
{
	int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);

	return fd < 0 ? -errno : fd;
}

int files_open_regular(const char *path)
{
	/* O_NONBLOCK: opening a FIFO with no writer would block here. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -EINVAL;
	}
	if (fcntl(fd, F_SETFL, 0)) {
		int e = errno;

		close(fd);
		errno = e;
		return -e;
	}
	return fd;
}

FILE *files_fopen_regular(const char *path)
{
	int fd = files_open_regular(path);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;

	if (fd >= 0 && !f)
		close(fd);
	return f;
}

int files_dir_holds(int dirfd, bool (*known)(const char *name))
{
	/* A description of its own: a dup() would share the directory offset,
	 * and a second scan would start where the first ended (seeing nothing). */
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), kind = 0;
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) && kind >= 0)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			kind = known(de->d_name) ? 1 : -1;
	closedir(d);
	return kind;
}

int files_replace(const char *dir, const char *name, const char *text)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	size_t len = strlen(text);
	int fd, err = 0;

	snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = mkostemp(tmp, O_CLOEXEC); /* O_EXCL, mode 0600 */
	if (fd < 0)
		return -errno;
	errno = 0;
	if (write(fd, text, len) != (ssize_t)len)
		err = errno ? -errno : -EIO;
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

/* A line number may come from a trace someone handed over: no kernel
 * source file is a million lines long. */
#define MAX_SOURCE_LINE 1000000

int files_read_lines(const char *path, int first, int last, char ***text)
{
	FILE *f;
	char *buf = NULL;
	size_t cap = 0;
	int n = 0, lineno = 0;

	*text = NULL;
	if (first < 1 || last < first || last > MAX_SOURCE_LINE)
		return -EINVAL;
	if (!(f = files_fopen_regular(path)))
		return -errno;
	if (!(*text = calloc((size_t)(last - first + 1), sizeof(char *)))) {
		fclose(f);
		return -ENOMEM;
	}
	/* getline: a line longer than any buffer is still one line. */
	while (getline(&buf, &cap, f) >= 0 && ++lineno <= last) {
		if (lineno < first)
			continue;
		buf[strcspn(buf, "\n")] = '\0';
		if (!((*text)[lineno - first] = strdup(buf)))
			break;
		n++;
	}
	free(buf);
	fclose(f);
	return n;
}

void files_free_lines(char **text, int first, int last)
{
	for (int i = 0; text && i <= last - first; i++)
		free(text[i]);
	free(text);
}

void files_source_line(const char *dir, const char *file, int line, char *out, size_t len)
{
	char path[4096], **text;

	out[0] = '\0';
	if (file[0] == '/' && !access(file, R_OK))
		snprintf(path, sizeof(path), "%s", file);
	else if (dir)
		snprintf(path, sizeof(path), "%s/%s", dir, file);
	else
		return;
	if (files_read_lines(path, line, line, &text) == 1)
		snprintf(out, len, "%s", text[0]);
	files_free_lines(text, line, line);
}

const char *files_kernel_source(const char *vmlinux, char *out, size_t len)
{
	char path[4096 + 32], line[4096];
	const char *slash = strrchr(vmlinux, '/');
	FILE *f;

	if (!slash)
		return NULL;
	snprintf(path, sizeof(path), "%.*s/kernel.stamp", (int)(slash - vmlinux), vmlinux);
	if (!(f = files_fopen_regular(path)))
		return NULL;
	out[0] = '\0';
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "srcdir=", 7)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(out, len, "%s", line + 7);
		}
	fclose(f);
	return out[0] ? out : NULL;
}

FILE *files_fcreate(const char *path, int *ret, char *err, size_t errlen)
{
	int fd = files_create(AT_FDCWD, path, 0644);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	int e = fd < 0 ? -fd : errno;

	if (f)
		return f;
	snprintf(err, errlen, "cannot create %s: %s%s", path, strerror(e),
		 e == EEXIST ? " (remove it, or name another file)" : "");
	if (fd >= 0)
		close(fd);
	*ret = -e;
	return NULL;
}

uint64_t files_size(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) ? 0 : (uint64_t)st.st_size;
}
