// SPDX-License-Identifier: MIT
/*
 * kstep record: the debug guest run once under QEMU's record mode with no
 * debugger attached and no breakpoint set. It runs at TCG's pace, and every
 * input that could make a second run differ (interrupts, clocks, the
 * network's packets, the console) goes into the replay log. kstep
 * trace|step|why --replay then run it again, instruction for instruction,
 * as often as wanted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"

#include "session.h"

/* The rc of the last "KSTEP-WORKLOAD-DONE NAME RC" on the console; -1: none. */
static int workload_rc(const char *dir)
{
	char path[PATH_MAX], line[512];
	int rc = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, RECORDING_CONSOLE);
	if (!(f = fopen(path, "re")))
		return -1;
	while (fgets(line, sizeof(line), f))
		session_workload_done(line, &rc);
	fclose(f);
	return rc;
}

/* How the guest ended decides whether the recording is one and the exit. */
static int recording_ending(struct recording *r, const char *dir, int status)
{
	int rc = workload_rc(dir);

	if (rc == 0 && status != 1)
		return 0;
	if (rc > 0) {
		say_error("recorded, but the workload %s failed with rc %d (console: %s/%s)", r->workload,
			rc, dir, RECORDING_CONSOLE);
		return EXIT_WORKLOAD_FAILED;
	}
	if (status == 1) {
		say_error("recorded a kernel panic (console: %s/%s): replay it to look at it", dir,
			RECORDING_CONSOLE);
		return EXIT_KERNEL_DIED;
	}
	snprintf(r->state, sizeof(r->state), "failed");
	say_error("QEMU ended (status %d) before the workload finished: no usable recording "
			"(console: %s/%s)", status, dir, RECORDING_CONSOLE);
	return EXIT_QEMU_ENDED;
}

static int record(struct qemu_opts *qo, struct recording *r, const char *dir, void (*progress)(const char *line, bool final),
		  volatile sig_atomic_t *stop)
{
	char err[512];
	int status = 0, ret, dfd;

	if ((qo->rr_fd = recording_open_log(dir, true, err, sizeof(err))) < 0) {
		say_error("cannot create the replay log %s", err);
		return EXIT_FAILED;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    (qo->serial_fd = files_create(dfd, RECORDING_CONSOLE, 0600)) < 0) {
		say_error("cannot create %s/%s: %s", dir, RECORDING_CONSOLE, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		close(qo->rr_fd);
		return EXIT_FAILED;
	}
	close(dfd);
	ret = session_record(qo, dir, progress, stop, &status, &r->seconds, err, sizeof(err));
	close(qo->serial_fd);
	close(qo->rr_fd);
	if (ret && ret != -EINTR) {
		say_error("%s", err);
		return EXIT_FAILED;
	}
	r->log_bytes = files_size(dir, RECORDING_LOG);
	r->qemu_status = status;
	snprintf(r->state, sizeof(r->state), "%s", ret == -EINTR ? "interrupted" : "complete");
	if (ret == -EINTR)
		say_error("interrupted: the recording in %s is cut short (a replay refuses it)", dir);
	ret = ret == -EINTR ? EXIT_INTERRUPTED : recording_ending(r, dir, status);
	if (recording_write(dir, r, err, sizeof(err))) {
		/* A full disk, say: what QEMU wrote cannot be replayed without it. */
		say_error("%s: no usable recording", err);
		return EXIT_QEMU_ENDED;
	}
	if (!strcmp(r->state, "complete"))
		printf("kstep: recorded %s in %.1f s, replay log %.1f MB: %s (replay it with: kstep trace --replay %s)\n",
		       r->workload, r->seconds, (double)r->log_bytes / 1e6, dir, dir);
	return ret;
}

static int record_run(struct qemu_opts *qo, const char *dir, bool force, void (*progress)(const char *line, bool final), volatile sig_atomic_t *stop)
{
	char err[PATH_MAX + 128];
	struct recording r;

	if (recording_prepare_dir(dir, force, err, sizeof(err)) || recording_init(&r, qo->images, err, sizeof(err))) {
		say_error("%s", err);
		return EXIT_FAILED;
	}
	snprintf(r.workload, sizeof(r.workload), "%s", qo->workload);
	snprintf(r.size, sizeof(r.size), "%s", qo->count ? qo->count : "");
	snprintf(r.nic, sizeof(r.nic), "%s", qo->nic);
	snprintf(r.mem, sizeof(r.mem), "%s", qo->mem ? qo->mem : "");
	r.kaslr = qo->kaslr;
	snprintf(r.apic_timer, sizeof(r.apic_timer), "0"); /* run-guest.sh's default under RR */
	if (recording_qemu_version(r.qemu, sizeof(r.qemu))) {
		say_error("cannot run %s to see its version", qemu_in_use());
		return EXIT_FAILED;
	}
	say_info("recording workload %s (TCG, one vCPU, no breakpoints) into %s", qo->workload, dir);
	return record(qo, &r, dir, progress, stop);
}

/* --engine plugin: the QEMU in use (guest_finish_defaults took
 * images/qemu's if the system's is too old) runs the plugin, or why not. */
static int record_plugin_qemu(void)
{
	char why[256];

	if (qemu_plugin_capable(why, sizeof(why)))
		return 0;
	say_error("--engine plugin: %s; make qemu puts a QEMU 10 in images/qemu", why);
	return -ENOTSUP;
}

static void record_usage(FILE *f)
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
		   "      --engine MODE      plugin: record with a QEMU kstep's plugin runs in\n"
		   "                         (9.2 or later; images/qemu from make qemu when the\n"
		   "                         system's is older), so that the replay can be traced\n"
		   "                         through the plugin; auto, rsp: the QEMU as found\n"
		   "  -o, --output DIR       the recording (default record.out; private, 0700)\n"
		   "      --force            replace the recording already in DIR\n"
		   "  -q, --quiet            no live counter\n"
		   "  -h, --help             this help\n"
		   "Exit status: 0 recorded (the workload succeeded), 1 failed, 2 bad usage,\n"
		   "3 recorded, the workload failed, 4 recorded, the kernel panicked, 6 QEMU\n"
		   "ended early (no recording), 130 interrupted (the recording is marked cut short).\n");
}

/* The guest options a recording can be made with, read as trace reads
 * them; the rest of trace's options mean nothing without a debugger. */
int cmd_record(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "workload", required_argument, NULL, 'w' }, { "size", required_argument, NULL, 'n' },
		{ "nic", required_argument, NULL, 'N' },      { "mem", required_argument, NULL, 'M' },
		{ "kaslr", no_argument, NULL, 'L' },          { "images", required_argument, NULL, 'I' },
		{ "output", required_argument, NULL, 'o' },   { "force", no_argument, NULL, 'F' },
		{ "quiet", no_argument, NULL, 'q' },          { "help", no_argument, NULL, 'h' },
		{ "smp", required_argument, NULL, 'S' },      { "accel", required_argument, NULL, 'a' },
		{ "engine", required_argument, NULL, OPT_ENGINE },
		{ NULL, 0, NULL, 0 },
	};
	const struct guest_cmdline cl = { "record ", "w:n:o:qh", longopts, record_usage, NULL };
	struct guest_opts g;
	struct qemu_opts qo;

	guest_defaults(&g);
	g.out = "record.out";
	if (!guest_getopt(argc, argv, &cl, &g, NULL))
		return EXIT_DONE;
	if (!strcmp(g.workload, "shell"))
		say_usage("record ", "--workload shell waits for a person at the console: record a workload that ends");
	if (g.smp && strcmp(g.smp, "1"))
		say_usage("record ", "--smp %s: QEMU records and replays one vCPU only", g.smp);
	if (!strcmp(g.accel, "kvm"))
		say_usage("record ", "--accel kvm: a recording runs under TCG (QEMU counts the instructions that place "
				     "every input), which KVM cannot");
	if (!strcmp(g.nic, "e1000") && !qemu_e1000_replays()) {
		if (g.nic_given)
			say_info("this QEMU's e1000 cannot switch off its interrupt mitigation timers: replays with "
			         "breakpoints may stall at e1000_clean_rx_irq (--nic virtio replays)");
		else {
			say_info("this QEMU's e1000 cannot switch off its interrupt mitigation timers, on which replays "
			         "stall: recording with --nic virtio");
			g.nic = "virtio";
		}
	}
	guest_finish_defaults(&g);
	if (!strcmp(g.engine, "plugin") && record_plugin_qemu())
		return EXIT_FAILED;
	qo = session_qemu_opts(&g, "tcg", -1);
	qo.smp = "1";
	qo.rr = "record";
	return record_run(&qo, g.out, g.force, g.eng.progress, &interrupted);
}
