// SPDX-License-Identifier: MIT
/*
 * vmcore: the guest's memory as an ELF core that crash and drgn open. QEMU
 * writes it (QMP dump-guest-memory) into a file kstep created itself and
 * hands over as a descriptor, with the guest stopped for the while; a dump
 * that fails (disk full, QEMU gone) leaves no file behind and says why.
 */
#include "vmcore.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "qmp.h"
#include "kerr.h"

/* QEMU writes about 100 MB/s here; a 4 GiB guest still fits. */
#define DUMP_TIMEOUT_MS (10 * 60 * 1000)

/* Did QEMU write a whole ELF file (it reports a full disk, but check)? */
static int check_elf(int fd, char *err, size_t errlen)
{
	unsigned char magic[4];
	struct stat st;

	if (fstat(fd, &st) || pread(fd, magic, 4, 0) != 4 || memcmp(magic, "\177ELF", 4))
		return kerr_set(err, errlen, -EIO, "QEMU wrote no ELF core");
	return 0;
}

int vmcore_write_by(vmcore_dump_fn *dump, void *ctx, int dirfd, const char *name, char *err, size_t errlen)
{
	int fd = files_create(dirfd, name, 0600), ret;

	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", name,
			 fd == -EEXIST ? "something is there already" : strerror(-fd));
		return fd;
	}
	ret = dump(ctx, fd, err, errlen);
	if (!ret)
		ret = check_elf(fd, err, errlen);
	if (close(fd) && !ret) {
		ret = -errno;
		snprintf(err, errlen, "writing %s: %s", name, strerror(errno));
	}
	if (ret)
		unlinkat(dirfd, name, 0); /* half a core is no core */
	return ret;
}

static int dump_over_qmp(void *ctx, int fd, char *err, size_t errlen)
{
	int ret = qmp_dump_memory(ctx, fd, DUMP_TIMEOUT_MS);

	if (ret)
		snprintf(err, errlen, "%s", qmp_errmsg(ctx));
	return ret;
}

int vmcore_write(const char *qmp_socket, int dirfd, const char *name, char *err, size_t errlen)
{
	struct qmp *q;
	bool running = false;
	int ret = qmp_open(&q, qmp_socket, err, errlen);

	if (ret)
		return ret;
	if ((ret = qmp_running(q, &running)) || (running && (ret = qmp_execute(q, "stop")))) {
		snprintf(err, errlen, "%s", qmp_errmsg(q));
		qmp_close(q);
		return ret;
	}
	ret = vmcore_write_by(dump_over_qmp, q, dirfd, name, err, errlen);
	if (running && qmp_execute(q, "cont") && !ret) {
		snprintf(err, errlen, "the guest did not run on after the dump: %s", qmp_errmsg(q));
		ret = -EIO;
	}
	qmp_close(q);
	return ret;
}

int vmcore_qmp_beside(const char *gdb_socket, char *out, size_t len)
{
	char dir[4096];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s", gdb_socket);
	snprintf(out, len, "%s/qmp.sock", dirname(dir));
	if (lstat(out, &st) || !S_ISSOCK(st.st_mode) || st.st_uid != geteuid())
		return -ENOENT;
	return 0;
}
