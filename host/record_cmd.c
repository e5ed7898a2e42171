// SPDX-License-Identifier: MIT
/*
 * record_cmd: `kstep record`, the debug guest run once under QEMU's record
 * mode with no debugger attached and no breakpoint set: it runs at TCG's
 * pace, and every input that could make a second run differ (interrupts,
 * clocks, the network's packets, the console) goes into the replay log.
 * kstep trace|step|why --replay then run it again, instruction for
 * instruction, as often as wanted.
 */
#include "record_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
#define QEMU_READY_MS 10000

static volatile sig_atomic_t record_interrupted;

static void on_signal(int sig)
{
	(void)sig;
	record_interrupted = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: kstep record [--workload W] [--size N] [-o DIR] [OPTIONS]\n"
		   "Run the debug guest once under QEMU's record mode (TCG, one vCPU, no\n"
		   "debugger, no breakpoints) and keep the recording in DIR: QEMU's replay log,\n"
		   "the console, and what the replay needs to start the guest the same way.\n"
		   "Replay it with kstep trace|step|why --replay DIR.\n\n"
		   "  -w, --workload NAME    shell excepted, as kstep trace (default rx-icmp)\n"
		   "  -n, --size N           workload size (pings, datagrams, bytes)\n"
		   "      --nic e1000|virtio, --mem MiB, --kaslr\n"
		   "      --smp 1, --accel tcg  (the only ones QEMU records: one vCPU, TCG)\n"
		   "      --images DIR       bzImage and initramfs (default: the tree's images/)\n"
		   "  -o, --output DIR       the recording (default record.out; private, 0700)\n"
		   "      --force            replace the recording already in DIR\n"
		   "  -q, --quiet            no live counter\n"
		   "  -h, --help             this help\n"
		   "Exit status: 0 recorded (the workload succeeded), 1 failed, 2 bad usage,\n"
		   "3 recorded, the workload failed, 4 recorded, the kernel panicked, 6 QEMU\n"
		   "ended early (no recording), 130 interrupted (the recording is marked cut short).\n");
}

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
static int start_recording(struct qemu **q, struct qemu_opts *qo, char *err, size_t errlen)
{
	struct qmp *qmp = NULL;
	int ret = qemu_launch(q, qo, err, errlen);

	if (!ret)
		ret = qemu_wait_ready(*q, QEMU_READY_MS, err, errlen);
	if (!ret)
		ret = qmp_open(&qmp, qemu_qmp_socket(*q), err, errlen);
	if (!ret && (ret = qmp_execute(qmp, "cont")))
		snprintf(err, errlen, "%s", qmp_errmsg(qmp));
	qmp_close(qmp);
	return ret;
}

/* Wait for QEMU to end, showing how far the recording has come. */
static int wait_recording(struct qemu *q, const char *dir, bool progress, int *status)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!qemu_exited(q, status)) {
		if (record_interrupted)
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

static int record(struct qemu_opts *qo, struct recording *r, const char *dir, bool progress)
{
	char err[512], log[PATH_MAX];
	struct qemu *q = NULL;
	struct timespec t0;
	int status = 0, ret, dfd;

	snprintf(log, sizeof(log), "%s/%s", dir, RECORDING_LOG);
	qo->rr_log = log;
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    (qo->serial_fd = files_create(dfd, RECORDING_CONSOLE, 0600)) < 0) {
		fprintf(stderr, "kstep: cannot create %s/%s: %s\n", dir, RECORDING_CONSOLE, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return 1;
	}
	close(dfd);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((ret = start_recording(&q, qo, err, sizeof(err)))) {
		fprintf(stderr, "kstep: %s\n", err);
		qemu_free(q);
		close(qo->serial_fd);
		return 1;
	}
	ret = wait_recording(q, dir, progress, &status);
	r->seconds = seconds_since(&t0);
	qemu_free(q); /* stops QEMU if it still runs (^C) */
	close(qo->serial_fd);
	r->log_bytes = file_size(dir, RECORDING_LOG);
	r->qemu_status = status;
	snprintf(r->state, sizeof(r->state), "%s", ret == -EINTR ? "interrupted" : "complete");
	if (ret == -EINTR)
		fprintf(stderr, "kstep: interrupted: the recording in %s is cut short (a replay refuses it)\n", dir);
	ret = ret == -EINTR ? 130 : conclude(r, dir, status);
	if (recording_write(dir, r, err, sizeof(err))) {
		fprintf(stderr, "kstep: %s\n", err);
		return 1;
	}
	if (!strcmp(r->state, "complete"))
		printf("kstep: recorded %s in %.1f s, replay log %.1f MB: %s (replay it with: kstep trace --replay %s)\n",
		       r->workload, r->seconds, (double)r->log_bytes / 1e6, dir, dir);
	return ret;
}

static void die_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "kstep record: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (try 'kstep record --help')\n");
	exit(2);
}

static bool positive(const char *v)
{
	char *end;

	return strtoull(v, &end, 10) > 0 && !*end;
}

int record_main(int argc, char **argv, const char *tree)
{
	static const struct option longopts[] = {
		{ "workload", required_argument, NULL, 'w' }, { "size", required_argument, NULL, 'n' },
		{ "nic", required_argument, NULL, 'N' },      { "mem", required_argument, NULL, 'M' },
		{ "kaslr", no_argument, NULL, 'L' },          { "images", required_argument, NULL, 'I' },
		{ "output", required_argument, NULL, 'o' },   { "force", no_argument, NULL, 'F' },
		{ "quiet", no_argument, NULL, 'q' },          { "help", no_argument, NULL, 'h' },
		{ "smp", required_argument, NULL, 'S' },      { "accel", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	char images[PATH_MAX], err[PATH_MAX + 128];
	const char *out = "record.out";
	struct qemu_opts qo = { .tree = tree, .workload = "rx-icmp", .accel = "tcg", .smp = "1", .nic = "e1000",
				.rr = "record", .serial_fd = -1 };
	struct recording r;
	bool force = false, progress = isatty(2);
	int c;

	snprintf(images, sizeof(images), "%s", getenv("KSTEP_IMAGES") ? getenv("KSTEP_IMAGES") : "");
	if (!images[0])
		snprintf(images, sizeof(images), "%s/images", tree);
	while ((c = getopt_long(argc, argv, "w:n:o:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			if (!strcmp(optarg, "shell"))
				die_usage("--workload shell waits for a person at the console: %s", "record a workload that ends");
			qo.workload = optarg;
			break;
		case 'n':
			if (!positive(optarg))
				die_usage("--size must be a positive number, not '%s'", optarg);
			qo.count = optarg;
			break;
		case 'N':
			if (strcmp(optarg, "e1000") && strcmp(optarg, "virtio"))
				die_usage("--nic must be e1000 or virtio, not '%s'", optarg);
			qo.nic = optarg;
			break;
		case 'M':
			if (!positive(optarg))
				die_usage("--mem must be a size in MiB, not '%s'", optarg);
			qo.mem = optarg;
			break;
		case 'L':
			qo.kaslr = true;
			break;
		case 'S':
			if (strcmp(optarg, "1"))
				die_usage("--smp %s: QEMU records and replays one vCPU only", optarg);
			break;
		case 'a':
			if (strcmp(optarg, "tcg") && strcmp(optarg, "auto"))
				die_usage("--accel %s: a recording runs under TCG (QEMU counts the instructions "
					  "that place every input), which KVM cannot", optarg);
			break;
		case 'I':
			snprintf(images, sizeof(images), "%s", optarg);
			break;
		case 'o':
			out = optarg;
			break;
		case 'F':
			force = true;
			break;
		case 'q':
			progress = false;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			die_usage("%s", "unknown option");
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
	qo.images = images;
	if (recording_prepare_dir(out, force, err, sizeof(err)) || recording_init(&r, images, err, sizeof(err))) {
		fprintf(stderr, "kstep: %s\n", err);
		return 1;
	}
	snprintf(r.workload, sizeof(r.workload), "%s", qo.workload);
	snprintf(r.size, sizeof(r.size), "%s", qo.count ? qo.count : "");
	snprintf(r.nic, sizeof(r.nic), "%s", qo.nic);
	snprintf(r.mem, sizeof(r.mem), "%s", qo.mem ? qo.mem : "");
	r.kaslr = qo.kaslr;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	fprintf(stderr, "kstep: recording workload %s (TCG, one vCPU, no breakpoints) into %s\n", qo.workload, out);
	return record(&qo, &r, out, progress);
}
