// SPDX-License-Identifier: MIT
/*
 * kstep record: the guest once under QEMU's record mode, with the guest
 * options a recording can be made with.
 */
#include <string.h>

#include "record_cmd.h"

#include "session.h"

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
		{ NULL, 0, NULL, 0 },
	};
	struct guest_opts g;
	struct qemu_opts qo;
	int c;

	guest_defaults(&g);
	g.out = "record.out";
	while ((c = getopt_long(argc, argv, "w:n:o:qh", longopts, NULL)) != -1) {
		if (c == 'h') {
			record_usage(stdout);
			return 0;
		}
		if (!guest_opt("record ", &g, c, optarg))
			say_usage("record ", "unknown option");
	}
	if (optind < argc)
		say_usage("record ", "unexpected argument '%s'", argv[optind]);
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
	qo = guest_qemu_opts(&g, "tcg", -1);
	qo.smp = "1";
	qo.rr = "record";
	return record_run(&qo, g.out, g.force, g.eng.progress, &interrupted);
}
