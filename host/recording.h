/* SPDX-License-Identifier: MIT */
/*
 * recording: the directory kstep record writes and --replay reads. It holds
 * QEMU's replay log (replay.bin), the console (serial.log) and a small text
 * file, recording, that says how the guest was started (the replay must
 * start it the same way), which images it ran (a replay of other images
 * would diverge) and how the recording ended.
 */
#ifndef KSTEP_RECORDING_H
#define KSTEP_RECORDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECORDING_FILE "recording"
#define RECORDING_LOG "replay.bin"
#define RECORDING_CONSOLE "serial.log"

struct recording {
	char id[33];                  /* random, hex: names the recording in its traces */
	char state[16];               /* "complete", or how it was cut short */
	char workload[64], size[24];  /* size: "" for the workload's default */
	char nic[16], mem[16];
	bool kaslr;
	char bzimage[64], initramfs[64]; /* identities: SIZE-HASH of the file */
	char qemu[16];                /* the version of the QEMU that recorded it, "MAJOR.MINOR" */
	char apic_timer[4];           /* "0": recorded without the guest's APIC timer; "": with it (older kstep) */
	double seconds;               /* from QEMU's start to its end */
	uint64_t log_bytes;
	int qemu_status;              /* QEMU's exit status at the end */
	uint64_t settings;            /* the check over id, workload ... images, as read */
};

/* Create @dir (0700) for a new recording, or empty one of ours when @force;
 * never a directory that holds something else. */
int recording_prepare_dir(const char *dir, bool force, char *err, size_t errlen);
/* A fresh id and the identities of @images' bzImage and initramfs. */
int recording_init(struct recording *r, const char *images, char *err, size_t errlen);
int recording_write(const char *dir, const struct recording *r, char *err, size_t errlen);
/* Read @dir/recording; -ENOENT etc. with a one-line reason. */
int recording_read(const char *dir, struct recording *r, char *err, size_t errlen);
/* The recording is complete and @images are the ones it ran; else
 * -ESTALE / -EINVAL with the reason. */
int recording_check(const struct recording *r, const char *dir, const char *images, char *err, size_t errlen);
/* The version of the QEMU in use ($QEMU, else the system's) as a
 * recording names it (major.minor); -errno when it cannot be run. */
int recording_qemu_version(char *out, size_t len);
/* The QEMU in use is the version that recorded @r (a replay follows only
 * the QEMU that recorded it): 0. With QEMU unset and the system's another
 * version, @alt (the QEMU make qemu put beside the images; NULL: none),
 * when it is the recorded one: QEMU is set to it, and 1. Else -ESTALE
 * with the reason. The recording never says which binary to run: that
 * would run what its author chose. */
int recording_check_qemu(const struct recording *r, const char *dir, const char *alt, char *err, size_t errlen);
/* QEMU's replay log in @dir, opened for QEMU to inherit (not close-on-exec):
 * QEMU is given /dev/fd/N, never a name, so that no directory name can
 * redirect what it reads or writes. @create: a new 0600 file for a
 * recording (the directory is ours and private), else the existing regular
 * file, not followed through a link. Returns the fd or a negative errno
 * with the reason in @err. */
int recording_open_log(const char *dir, bool create, char *err, size_t errlen);

#endif
