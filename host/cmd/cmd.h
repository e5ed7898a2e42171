/* SPDX-License-Identifier: MIT */
/*
 * cmd/: the kstep program. One file a command (trace.c, step.c, why.c,
 * record.c, ...), dispatched from main.c's table; what several commands
 * share: their messages (say.c), the guest options (options.c), probe
 * places (places.c), replays run twice (replay.c), and the session they
 * run a guest through (session.h).
 */
#ifndef KSTEP_CMD_H
#define KSTEP_CMD_H

#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine.h"
#include "recording.h"

/* kstep's exit status: what happened, documented in kstep(1) and each command's page. */
enum kstep_exit {
	EXIT_DONE = 0,            /* as asked: workload done with rc 0, or a limit reached */
	EXIT_FAILED = 1,          /* kstep could not do it (the reason is on stderr) */
	EXIT_USAGE = 2,           /* bad command line */
	EXIT_WORKLOAD_FAILED = 3, /* the guest's workload ended with a non-zero rc */
	EXIT_KERNEL_DIED = 4,     /* an oops or panic: caught live, or the guest panicked */
	EXIT_GUEST_RESET = 5,     /* the guest reset or powered off before its workload finished */
	EXIT_QEMU_ENDED = 6,      /* QEMU quit, was killed or closed the stub before the end */
	EXIT_INTERRUPTED = 130,   /* Ctrl-C or SIGTERM: the trace holds everything up to then */
};

/* Set by SIGINT, SIGTERM and SIGHUP (main.c): stop, close the trace. */
extern volatile sig_atomic_t interrupted;

/* ---- say.c: every message kstep prints for its user, on stderr ---- */

/* Messages are coloured when stderr is a terminal and NO_COLOR is unset. */
void say_init(void);
/* "kstep: " and the message: what failed and why. */
void say_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "kstep: " and the message: a note on how the run goes. */
void say_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A bad command line: the message, where @cmd's --help is, exit 2. */
void say_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* A live counter's @line over the last one (only on a terminal); @final ends it. */
void say_progress(const char *line, bool final);
/* The escape sequence that starts an alarm (red) or ends one, "" off a terminal. */
const char *say_alarm_on(void);
const char *say_alarm_off(void);

/* ---- options.c: the options every guest command takes ---- */

struct guest_opts {
	char tree[PATH_MAX - 16];
	bool installed;              /* tree is PREFIX/share/kstep, not a clone */
	char images[PATH_MAX - 8];
	char vmlinux[PATH_MAX + 16];
	const char *attach;
	const char *workload, *count, *accel, *smp, *mem, *nic, *pin, *workload_cpu;
	const char *out;
	bool wire, keep, force;
	bool nic_given;              /* --nic was on the command line */
	bool kaslr;                  /* boot our guest with KASLR on */
	bool apic_timer;             /* with the APIC timer under icount: a recording made with it */
	const char *unwind;          /* auto, cfi, fp */
	const char *moddir;          /* --modules: modules' debug info, NULL: the release's */
	const char *srcdir;          /* --source: the kernel's source, NULL: the tree vmlinux came from */
	const char *kernel_tree;     /* --kernel-tree DIR: its bzImage and vmlinux, NULL: the images' */
	const char *libvirt_uri;     /* --libvirt URI (NULL: the default) */
	const char *domain;          /* --domain NAME: a libvirt domain, NULL: none */
	const char *stub_path;       /* --stub-path: where the domain's QEMU opens the stub */
	bool kgdb;                   /* --kgdb: our guest debugged through its kernel's kgdb */
	const char *replay;          /* --replay DIR: a recording, NULL: a live guest */
	struct recording rec;        /* what it says */
	int replay_log;              /* its replay.bin (recording_open_log), -1: none */
	const char *guest_set;       /* an option the recording fixes, if one was given */
	bool kaslr_offset_given;     /* --kaslr-offset: skip the search */
	uint64_t kaslr_offset;
	const char *engine;          /* --engine: auto, rsp, plugin */
	bool quiet;
	struct engine_opts eng;
};

/* Long options without a letter. */
enum { OPT_LIBVIRT = 0x100, OPT_DOMAIN, OPT_STUB_PATH, OPT_KGDB, OPT_REPLAY, OPT_BACKWARDS, OPT_OPERAND, OPT_WINDOW,
       OPT_KERNEL_TREE, OPT_ENGINE, OPT_PCAP_FILTER, OPT_DROP, OPT_SNAPLEN, OPT_ALL, OPT_SOURCE,
       OPT_MAX_STACK };

/* Options every guest command takes. */
#define GUEST_LONGOPTS                                                                          \
	{ "vmlinux", required_argument, NULL, 'V' }, { "images", required_argument, NULL, 'I' },   \
	{ "kernel-tree", required_argument, NULL, OPT_KERNEL_TREE },                              \
	{ "attach", required_argument, NULL, 'A' }, { "workload", required_argument, NULL, 'w' }, \
	{ "size", required_argument, NULL, 'n' }, { "accel", required_argument, NULL, 'a' },      \
	{ "smp", required_argument, NULL, 'S' }, { "mem", required_argument, NULL, 'M' },         \
	{ "nic", required_argument, NULL, 'N' }, { "pin", required_argument, NULL, 'P' },         \
	{ "workload-cpu", required_argument, NULL, 'U' }, { "kaslr", no_argument, NULL, 'L' },     \
	{ "kaslr-offset", required_argument, NULL, 'O' }, { "unwind", required_argument, NULL, 'X' }, \
	{ "modules", required_argument, NULL, 'Y' }, { "libvirt", required_argument, NULL, OPT_LIBVIRT }, \
	{ "domain", required_argument, NULL, OPT_DOMAIN }, { "stub-path", required_argument, NULL, OPT_STUB_PATH }, \
	{ "kgdb", no_argument, NULL, OPT_KGDB }, { "replay", required_argument, NULL, OPT_REPLAY },  \
	{ "output", required_argument, NULL, 'o' }, { "force", no_argument, NULL, 'F' },          \
	{ "stack-bytes", required_argument, NULL, 'B' }, { "step-irqs", no_argument, NULL, 'i' }, \
	{ "max-stack", required_argument, NULL, OPT_MAX_STACK },                                  \
	{ "wire", no_argument, NULL, 'W' }, { "keep-guest", no_argument, NULL, 'K' },             \
	{ "engine", required_argument, NULL, OPT_ENGINE },                                        \
	{ "source", required_argument, NULL, OPT_SOURCE },                                        \
	{ "quiet", no_argument, NULL, 'q' }, { "help", no_argument, NULL, 'h' }

/* kstep trace --help's and the others' text for GUEST_LONGOPTS. */
extern const char guest_help[];

/* @opt's value @v as a whole number of at least @min, or a usage error. */
uint64_t guest_parse_u64(const char *cmd, const char *opt, const char *v, uint64_t min);
/* Where guest/ is: this clone, or PREFIX/share/kstep (*@installed). */
void guest_find_tree(char *tree, size_t len, bool *installed);
/* Option @c of GUEST_LONGOPTS into @g; false if it is not one of them. */
bool guest_opt(const char *cmd, struct guest_opts *g, int c, const char *arg);
/* @g before the command line: every default. */
void guest_defaults(struct guest_opts *g);
/* @g after it: images, vmlinux, --engine plugin's QEMU, a recording's settings. */
void guest_finish_defaults(struct guest_opts *g);
/* The guest is the user's (attached, a libvirt domain, kgdb), not kstep's. */
bool guest_is_users(const struct guest_opts *g);
/* Options that contradict each other: a usage error naming both. */
void guest_check_opts(const char *cmd, const struct guest_opts *g);

/* A guest command's command line: its name ("trace "), getopt's options
 * (GUEST_LONGOPTS among them), its --help, and its own options' reader
 * (NULL: it has none), called with the context given to guest_getopt. */
struct guest_cmdline {
	const char *cmd;
	const char *shortopts;
	const struct option *longopts;
	void (*usage)(FILE *f);
	void (*own)(int c, const char *arg, void *ctx);
};
/* The command line read: the guest's options into @g (checked against
 * each other), the command's own through @cl->own; false once --help was
 * printed. The command's own checks and guest_finish_defaults follow. */
bool guest_getopt(int argc, char **argv, const struct guest_cmdline *cl, struct guest_opts *g, void *ctx);

/* ---- places.c: probes and places the commands resolve ---- */

struct session;
/* step's and why's --at SPEC (with its --filter), resolved into @atp as a
 * probe of stage @stage; which of several places it takes is said. */
int places_at(struct session *s, struct probe_set *atp, const char *at, const char *filter,
	      const char *stage);
/* The NIC whose driver stages a set takes (NULL: every driver's). */
const char *places_set_nic(const struct guest_opts *g);
/* Over kgdb, fields that read per-CPU data: refused (the user's) or said. */
int places_check_kgdb_fields(struct session *s, const struct probe_set *ps);
/* --pcap-filter EXPR compiled (a bad one is a usage error). */
struct pcap_filter *places_pcap_filter(const char *cmd, const char *expr, struct probe_set *ps);
/* When --at @at resolved to several places: which one is taken. */
void places_say_several(struct session *s, const char *at, const struct probe_set *ps);
/* step --until SPEC: its one address. */
int places_until(struct session *s, const struct probe_set *ps, const char *until, uint64_t *addr);
/* --pcap-filter needs probes that have an skb to decode. */
int places_check_pcap(const struct session *s, const struct probe_set *ps);

/* ---- replay.c: a replay run again, to a point found in the first ---- */

/* The replay started again from its beginning, with a new engine. */
int replay_run_again(struct session *s);
/* The instruction count at hit @hits of @at in this replay. */
int replay_find_point(struct session *s, const struct probe *at, uint64_t hits, uint64_t *icount,
		      struct engine_result *res);
/* The replay run again up to instruction count @icount (QMP replay-break). */
int replay_run_to(struct session *s, uint64_t icount, struct engine_result *res);

/* ---- the commands: each takes its own argv (argv[0] its name) ---- */

int cmd_trace(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_oops(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_step(int argc, char **argv);
int cmd_why(int argc, char **argv);
int cmd_record(int argc, char **argv);

#endif
