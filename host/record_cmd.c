// SPDX-License-Identifier: MIT
/*
 * record_cmd: what `kstep record` does once cli.c has read its options: the
 * debug guest run once under QEMU's record mode with no debugger attached
 * and no breakpoint set. It runs at TCG's pace, and every input that could
 * make a second run differ (interrupts, clocks, the network's packets, the
 * console) goes into the replay log. kstep trace|step|why --replay then run
 * it again, instruction for instruction, as often as wanted.
 */
#include "record_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "files.h"
#include "qemu.h"
#include "qmp.h"
#include "recording.h"

#define RECORD_POLL_MS 200

static double seconds_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static uint64_t file_size(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) ? 0 : (uint64_t)st.st_size;
}

/* The rc of the last "KSTEP-WORKLOAD-DONE NAME RC" on the console; -1: none. */
static int workload_rc(const char *dir)
{
	char path[PATH_MAX], line[512];
	int rc = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, RECORDING_CONSOLE);
	if (!(f = fopen(path, "re")))
		return -1;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "KSTEP-WORKLOAD-DONE ");

		if (p)
			sscanf(p, "KSTEP-WORKLOAD-DONE %*s %d", &rc);
	}
	fclose(f);
	return rc;
}

/* Launch the guest in record mode and start it (QEMU comes up halted). */
static int start_recording(struct qemu **q, struct qemu_opts *qo, const volatile sig_atomic_t *interrupted,
			   char *err, size_t errlen)
{
	struct qmp *qmp = NULL;
	int ret = qemu_launch(q, qo, err, errlen);

	if (!ret)
		ret = qemu_wait_ready(*q, QEMU_READY_MS, interrupted, err, errlen);
	if (!ret)
		ret = qmp_open(&qmp, qemu_qmp_socket(*q), err, errlen);
	if (!ret && (ret = qmp_execute(qmp, "cont")))
		snprintf(err, errlen, "%s", qmp_errmsg(qmp));
	qmp_close(qmp);
	return ret;
}

/* Wait for QEMU to end, showing how far the recording has come. */
static int wait_recording(struct qemu *q, const char *dir, bool progress, volatile sig_atomic_t *interrupted,
			  int *status)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!qemu_exited(q, status)) {
		if (*interrupted)
			return -EINTR;
		if (progress)
			fprintf(stderr, "\rkstep: recording %.1f s, log %.1f MB ", seconds_since(&t0),
				(double)file_size(dir, RECORDING_LOG) / 1e6);
		usleep(RECORD_POLL_MS * 1000);
	}
	if (progress)
		fputc('\n', stderr);
	return 0;
}

/* How the guest ended decides whether the recording is one and the exit. */
static int conclude(struct recording *r, const char *dir, int status)
{
	int rc = workload_rc(dir);

	if (rc == 0 && status != 1)
		return 0;
	if (rc > 0) {
		fprintf(stderr, "kstep: recorded, but the workload %s failed with rc %d (console: %s/%s)\n", r->workload,
			rc, dir, RECORDING_CONSOLE);
		return 3;
	}
	if (status == 1) {
		fprintf(stderr, "kstep: recorded a kernel panic (console: %s/%s): replay it to look at it\n", dir,
			RECORDING_CONSOLE);
		return 4;
	}
	snprintf(r->state, sizeof(r->state), "failed");
	fprintf(stderr, "kstep: QEMU ended (status %d) before the workload finished: no usable recording "
			"(console: %s/%s)\n", status, dir, RECORDING_CONSOLE);
	return 6;
}

static int record(struct qemu_opts *qo, struct recording *r, const char *dir, bool progress,
		  volatile sig_atomic_t *interrupted)
{
	char err[512];
	struct qemu *q = NULL;
	struct timespec t0;
	int status = 0, ret, dfd;

	if ((qo->rr_fd = recording_open_log(dir, true, err, sizeof(err))) < 0) {
		fprintf(stderr, "kstep: cannot create the replay log %s\n", err);
		return 1;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    (qo->serial_fd = files_create(dfd, RECORDING_CONSOLE, 0600)) < 0) {
		fprintf(stderr, "kstep: cannot create %s/%s: %s\n", dir, RECORDING_CONSOLE, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		close(qo->rr_fd);
		return 1;
	}
	close(dfd);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((ret = start_recording(&q, qo, interrupted, err, sizeof(err)))) {
		fprintf(stderr, "kstep: %s\n", err);
		qemu_free(q);
		close(qo->serial_fd);
		close(qo->rr_fd);
		return 1;
	}
	ret = wait_recording(q, dir, progress, interrupted, &status);
	r->seconds = seconds_since(&t0);
	qemu_free(q); /* stops QEMU if it still runs (^C) */
	close(qo->serial_fd);
	close(qo->rr_fd);
	r->log_bytes = file_size(dir, RECORDING_LOG);
	r->qemu_status = status;
	snprintf(r->state, sizeof(r->state), "%s", ret == -EINTR ? "interrupted" : "complete");
	if (ret == -EINTR)
		fprintf(stderr, "kstep: interrupted: the recording in %s is cut short (a replay refuses it)\n", dir);
	ret = ret == -EINTR ? 130 : conclude(r, dir, status);
	if (recording_write(dir, r, err, sizeof(err))) {
		/* A full disk, say: what QEMU wrote cannot be replayed without it. */
		fprintf(stderr, "kstep: %s: no usable recording\n", err);
		return 6;
	}
	if (!strcmp(r->state, "complete"))
		printf("kstep: recorded %s in %.1f s, replay log %.1f MB: %s (replay it with: kstep trace --replay %s)\n",
		       r->workload, r->seconds, (double)r->log_bytes / 1e6, dir, dir);
	return ret;
}

int record_run(struct qemu_opts *qo, const char *dir, bool force, bool progress, volatile sig_atomic_t *interrupted)
{
	char err[PATH_MAX + 128];
	struct recording r;
	int major, minor;

	if (recording_prepare_dir(dir, force, err, sizeof(err)) || recording_init(&r, qo->images, err, sizeof(err))) {
		fprintf(stderr, "kstep: %s\n", err);
		return 1;
	}
	snprintf(r.workload, sizeof(r.workload), "%s", qo->workload);
	snprintf(r.size, sizeof(r.size), "%s", qo->count ? qo->count : "");
	snprintf(r.nic, sizeof(r.nic), "%s", qo->nic);
	snprintf(r.mem, sizeof(r.mem), "%s", qo->mem ? qo->mem : "");
	r.kaslr = qo->kaslr;
	if (qemu_version(&major, &minor)) {
		fprintf(stderr, "kstep: cannot run %s to see its version\n",
			getenv("QEMU") && *getenv("QEMU") ? getenv("QEMU") : "qemu-system-x86_64");
		return 1;
	}
	snprintf(r.qemu, sizeof(r.qemu), "%d.%d", major, minor);
	fprintf(stderr, "kstep: recording workload %s (TCG, one vCPU, no breakpoints) into %s\n", qo->workload, dir);
	return record(qo, &r, dir, progress, interrupted);
}
