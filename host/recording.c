// SPDX-License-Identifier: MIT
/*
 * recording: kstep record's directory (see recording.h).
 */
#include "recording.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "hash.h"
#include "qemu.h"
#include "kerr.h"

#define RECORDING_MAGIC "kstep-recording 1"

static const char *const recording_files[] = { RECORDING_FILE, RECORDING_LOG, RECORDING_CONSOLE };

static bool is_recording_file(const char *name)
{
	for (size_t i = 0; i < sizeof(recording_files) / sizeof(recording_files[0]); i++)
		if (!strcmp(name, recording_files[i]))
			return true;
	return false;
}

int recording_prepare_dir(const char *dir, bool force, char *err, size_t errlen)
{
	/* QEMU opens the replay log by name: only a private directory keeps
	 * another user from putting a link where it will write. */
	int ret = files_private_dir(dir, err, errlen), dfd, kind;

	if (ret)
		return ret;
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		ret = -errno;
		return kerr_set(err, errlen, ret, "cannot open %s: %s", dir, strerror(errno));
	}
	kind = files_dir_holds(dfd, is_recording_file);
	if (kind == 1 && force) {
		for (size_t i = 0; i < sizeof(recording_files) / sizeof(recording_files[0]); i++)
			unlinkat(dfd, recording_files[i], 0);
		kind = files_dir_holds(dfd, is_recording_file);
	}
	close(dfd);
	if (kind) {
		snprintf(err, errlen, kind == 1 ? "-o %s already holds a recording: pass --force to replace it"
						: "-o %s is not empty and is not a kstep recording: pick another directory",
			 dir);
		return -EEXIST;
	}
	return 0;
}

/* SIZE-HASH of a file (FNV-1a 64): enough to tell images apart. */
static int identify(const char *path, char *out, size_t len)
{
	uint64_t h = HASH_FNV1A_START, size = 0;
	unsigned char chunk[1 << 16];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		h = hash_fnv1a(h, chunk, (size_t)n);
		size += (uint64_t)n;
	}
	close(fd);
	if (n < 0)
		return -EIO;
	snprintf(out, len, "%" PRIu64 "-%016" PRIx64, size, h);
	return 0;
}

static int identify_images(const char *images, char *bz, size_t bzlen, char *initrd, size_t initrdlen, char *err,
			   size_t errlen)
{
	char path[PATH_MAX];
	int ret;

	snprintf(path, sizeof(path), "%s/bzImage", images);
	if (!(ret = identify(path, bz, bzlen))) {
		snprintf(path, sizeof(path), "%s/initramfs.cpio.gz", images);
		ret = identify(path, initrd, initrdlen);
	}
	if (ret)
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(-ret));
	return ret;
}

int recording_init(struct recording *r, const char *images, char *err, size_t errlen)
{
	uint8_t id[16];

	memset(r, 0, sizeof(*r));
	if (getrandom(id, sizeof(id), 0) != sizeof(id))
		return kerr_set(err, errlen, -EIO, "getrandom failed");
	for (size_t i = 0; i < sizeof(id); i++)
		snprintf(r->id + 2 * i, 3, "%02x", id[i]);
	snprintf(r->state, sizeof(r->state), "started");
	return identify_images(images, r->bzimage, sizeof(r->bzimage), r->initramfs, sizeof(r->initramfs), err,
			       errlen);
}

/* A check over what starts the guest: a recording whose settings were
 * edited would start another run than the one in its log, and the replay
 * would hang or fail far from the cause. (Not a signature: whoever edits
 * the file can compute it; a replay that stalls is caught by the engine.) */
static uint64_t settings_hash(const struct recording *r)
{
	char text[512];
	int n = snprintf(text, sizeof(text), "%s\n%s\n%s\n%s\n%s\n%d\n%s\n%s%s%s%s%s", r->id, r->workload, r->size,
			 r->nic, r->mem, r->kaslr, r->bzimage, r->initramfs, r->qemu[0] ? "\n" : "", r->qemu,
			 r->apic_timer[0] ? "\napic_timer=" : "", r->apic_timer);

	return hash_fnv1a(HASH_FNV1A_START, text, n > 0 ? (size_t)n : 0);
}

int recording_write(const char *dir, const struct recording *r, char *err, size_t errlen)
{
	char text[1024];
	int ret;

	snprintf(text, sizeof(text),
		 RECORDING_MAGIC "\nid=%s\nstate=%s\nworkload=%s\nsize=%s\nnic=%s\nmem=%s\nkaslr=%d\n"
		 "bzImage=%s\ninitramfs=%s\nqemu=%s\napic_timer=%s\nseconds=%.3f\nlog_bytes=%" PRIu64
		 "\nqemu_status=%d\nsettings=%016" PRIx64 "\n",
		 r->id, r->state, r->workload, r->size, r->nic, r->mem, r->kaslr, r->bzimage, r->initramfs, r->qemu,
		 r->apic_timer, r->seconds, r->log_bytes, r->qemu_status, settings_hash(r));
	ret = files_replace(dir, RECORDING_FILE, text);
	if (ret)
		snprintf(err, errlen, "cannot write %s/%s: %s", dir, RECORDING_FILE, strerror(-ret));
	return ret;
}

static void set_field(struct recording *r, const char *key, const char *v)
{
	const struct {
		const char *key;
		char *out;
		size_t len;
	} text[] = {
		{ "id", r->id, sizeof(r->id) },           { "state", r->state, sizeof(r->state) },
		{ "workload", r->workload, sizeof(r->workload) }, { "size", r->size, sizeof(r->size) },
		{ "nic", r->nic, sizeof(r->nic) },         { "mem", r->mem, sizeof(r->mem) },
		{ "bzImage", r->bzimage, sizeof(r->bzimage) }, { "initramfs", r->initramfs, sizeof(r->initramfs) },
		{ "qemu", r->qemu, sizeof(r->qemu) },     { "apic_timer", r->apic_timer, sizeof(r->apic_timer) },
	};

	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		if (!strcmp(key, text[i].key))
			snprintf(text[i].out, text[i].len, "%s", v);
	if (!strcmp(key, "kaslr"))
		r->kaslr = !strcmp(v, "1");
	else if (!strcmp(key, "seconds"))
		r->seconds = strtod(v, NULL);
	else if (!strcmp(key, "log_bytes"))
		r->log_bytes = strtoull(v, NULL, 10);
	else if (!strcmp(key, "qemu_status"))
		r->qemu_status = atoi(v);
	else if (!strcmp(key, "settings"))
		r->settings = strtoull(v, NULL, 16);
}

int recording_read(const char *dir, struct recording *r, char *err, size_t errlen)
{
	char path[PATH_MAX], line[256];
	FILE *f;

	memset(r, 0, sizeof(*r));
	snprintf(path, sizeof(path), "%s/%s", dir, RECORDING_FILE);
	f = files_fopen_regular(path);
	if (!f) {
		int ret = -errno;

		snprintf(err, errlen, "--replay %s: %s (make one with kstep record -o %s)", dir,
			 errno == ENOENT ? "not a kstep recording (no 'recording' file)" : strerror(errno), dir);
		return ret;
	}
	if (!fgets(line, sizeof(line), f) || strncmp(line, RECORDING_MAGIC, strlen(RECORDING_MAGIC))) {
		fclose(f);
		snprintf(err, errlen, "--replay %s: %s is not a kstep recording of this version", dir, path);
		return -EINVAL;
	}
	while (fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '=');

		line[strcspn(line, "\n")] = '\0';
		if (eq) {
			*eq = '\0';
			set_field(r, line, eq + 1);
		}
	}
	fclose(f);
	if (!r->id[0] || !r->workload[0])
		return kerr_set(err, errlen, -EINVAL, "--replay %s: %s lacks its id or workload", dir, path);
	if (r->apic_timer[0] && strcmp(r->apic_timer, "0"))
		return kerr_set(err, errlen, -EINVAL, "--replay %s: %s has apic_timer=%s: a newer kstep made it, or it "
				"was edited (only 0 is known)", dir, path, r->apic_timer);
	if (r->settings != settings_hash(r)) {
		snprintf(err, errlen, "--replay %s: %s was edited (its settings do not match its check), or an "
			 "older kstep made it: a replay would not follow the recorded run; record it again", dir, path);
		return -EINVAL;
	}
	return 0;
}

int recording_open_log(const char *dir, bool create, char *err, size_t errlen)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd;
	struct stat st;

	if (dfd < 0) {
		fd = -errno;
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return fd;
	}
	fd = create ? files_create(dfd, RECORDING_LOG, 0600) : openat(dfd, RECORDING_LOG, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && !create)
		fd = -errno;
	close(dfd);
	if (fd >= 0 && !create && (fstat(fd, &st) || !S_ISREG(st.st_mode))) {
		close(fd);
		snprintf(err, errlen, "%s/%s is not a regular file: not a replay log", dir, RECORDING_LOG);
		return -EINVAL;
	}
	if (fd >= 0 && fcntl(fd, F_SETFD, 0)) {
		int e = -errno;

		close(fd);
		fd = e;
	}
	if (fd < 0)
		snprintf(err, errlen, "%s/%s: %s", dir, RECORDING_LOG, strerror(-fd));
	return fd;
}

int recording_check(const struct recording *r, const char *dir, const char *images, char *err, size_t errlen)
{
	char bz[64], initrd[64];
	int ret;

	if (strcmp(r->state, "complete")) {
		snprintf(err, errlen, "--replay %s: the recording was %s, not completed: its log ends early; record it again",
			 dir, r->state);
		return -EINVAL;
	}
	if ((ret = identify_images(images, bz, sizeof(bz), initrd, sizeof(initrd), err, errlen)))
		return ret;
	if (strcmp(bz, r->bzimage) || strcmp(initrd, r->initramfs)) {
		snprintf(err, errlen, "--replay %s: %s/%s is not the one recorded (rebuilt since?): a replay of other "
			 "images would diverge; record again, or pass --images with the recorded ones",
			 dir, images, strcmp(bz, r->bzimage) ? "bzImage" : "initramfs.cpio.gz");
		return -ESTALE;
	}
	return 0;
}

int recording_qemu_version(char *out, size_t len)
{
	int major, minor, ret = qemu_version(&major, &minor);

	if (!ret)
		snprintf(out, len, "%d.%d", major, minor);
	return ret;
}

/* With QEMU unset: @alt, if it is @r's version (QEMU set to it). */
static bool take_alt_qemu(const struct recording *r, const char *alt)
{
	char theirs[32];

	if (!alt || qemu_named() || access(alt, X_OK))
		return false;
	setenv("QEMU", alt, 1);
	if (!recording_qemu_version(theirs, sizeof(theirs)) && !strcmp(theirs, r->qemu))
		return true;
	unsetenv("QEMU");
	return false;
}

int recording_check_qemu(const struct recording *r, const char *dir, const char *alt, char *err, size_t errlen)
{
	const char *qemu = qemu_in_use();
	char now[32];

	if (!r->qemu[0])
		return 0; /* made before recordings named their QEMU */
	if (recording_qemu_version(now, sizeof(now))) {
		snprintf(err, errlen, "--replay %s: cannot run %s to see its version (recorded with QEMU %s)", dir, qemu,
			 r->qemu);
		return -ENOENT;
	}
	if (!strcmp(now, r->qemu))
		return 0;
	if (take_alt_qemu(r, alt))
		return 1;
	snprintf(err, errlen, "--replay %s: recorded with QEMU %s, and %s is QEMU %s: a replay follows only the "
		 "QEMU that recorded it; give that one as QEMU=PATH", dir, r->qemu, qemu, now);
	return -ESTALE;
}
