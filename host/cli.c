// SPDX-License-Identifier: MIT
/*
 * kstep: boot (or attach to) the debug guest, stop it along the network
 * receive path and record every stop and step into a CTF trace.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "diff.h"
#include "engine.h"
#include "files.h"
#include "kmod.h"
#include "linespec.h"
#include "oops.h"
#include "plugin_chan.h"
#include "dropwhy.h"
#include "packet.h"
#include "pcapfilter.h"
#include "probe_cmd.h"
#include "probes.h"
#include "qemu.h"
#include "libvirt.h"
#include "qmp.h"
#include "record_cmd.h"
#include "recording.h"
#include "vmcore.h"
#include "dump_cmd.h"
#include "report.h"
#include "report_cmd.h"
#include "rsp.h"
#include "symbols.h"
#include "target.h"
#include "trace.h"

#define KSTEP_VERSION "1.0"
/* Where kstep build-images --system puts the images for every user. */
#define KSTEP_SYSTEM_IMAGES "/var/cache/kstep/images"
/* Under TCG the kernel is decompressed and at start_kernel in about 1 s. */
#define BOOT_TIMEOUT_TCG_MS 60000
/* Under a KVM that works, start_kernel comes sooner than this; a guest that
 * has not got there by then is the hang DESIGN.md describes. */
#define BOOT_TIMEOUT_KVM_MS 10000
/* The step summary lists this many functions, the rest in one line. */
#define PROFILE_LINES 15
/* QEMU binds its stub's socket before it listens on it: a connect in
 * between is refused. Retry this long (a loaded host can be slow there). */
#define STUB_CONNECT_MS 10000
/* kstep's QEMU plugin connects as QEMU loads it, before QEMU is ready. */
#define PLUGIN_CONNECT_MS 10000
/* What the kernel prints when kgdbwait waits for its debugger; the
 * console is looked at this often until it has. */
#define KGDB_WAITING "KGDB: Waiting for connection from remote gdb"
#define KGDB_POLL_MS 50
/* kstep why on a register: instructions looked back through by default. */
#define WHY_WINDOW 2000

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

static volatile sig_atomic_t interrupted;
static bool color;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void die_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%skstep%s: ", color ? "\033[1;31m" : "", color ? "\033[0m" : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'kstep %s--help')\n", cmd ? cmd : "");
	exit(2);
}

static void error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%skstep%s: ", color ? "\033[1;31m" : "", color ? "\033[0m" : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void info(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%skstep%s: ", color ? "\033[1;36m" : "", color ? "\033[0m" : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t parse_u64(const char *cmd, const char *opt, const char *v, uint64_t min)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 0);
	if (errno || *end || end == v || v[0] == '-' || n < min)
		die_usage(cmd, "%s wants a whole number%s, not '%s'", opt, min ? " above 0" : "", v);
	return n;
}

/* Where guest/run-guest.sh and the gdb scripts are: the clone, when this
 * is its build/kstep, or PREFIX/share/kstep, when this is an installed
 * PREFIX/bin/kstep (make install; relocatable, DESTDIR included). */
static void find_tree(char *tree, size_t len, bool *installed)
{
	char exe[PATH_MAX - 64], probe[PATH_MAX + 64];
	ssize_t n;

	*installed = false;
	if (getenv("KSTEP_TREE")) {
		snprintf(tree, len, "%s", getenv("KSTEP_TREE"));
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		snprintf(tree, len, ".");
		return;
	}
	exe[n] = '\0';
	dirname(dirname(exe));
	snprintf(probe, sizeof(probe), "%s/share/kstep/guest/run-guest.sh", exe);
	*installed = !access(probe, R_OK);
	snprintf(tree, len, "%s%s", exe, *installed ? "/share/kstep" : "");
}

/* An installed kstep's images: $XDG_CACHE_HOME/kstep/images (kstep
 * build-images), else the system-wide /var/cache/kstep/images (kstep
 * build-images --system), else the per-user place, where the error that no
 * bzImage is there says how to build one. */
static void installed_images(char *out, size_t len)
{
	const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char user[PATH_MAX - 64], probe[PATH_MAX + 16];

	if (cache && *cache)
		snprintf(user, sizeof(user), "%s/kstep/images", cache);
	else
		snprintf(user, sizeof(user), "%s/.cache/kstep/images", home && *home ? home : "/");
	snprintf(probe, sizeof(probe), "%s/bzImage", user);
	if (access(probe, R_OK) && !access(KSTEP_SYSTEM_IMAGES "/bzImage", R_OK))
		snprintf(out, len, "%s", KSTEP_SYSTEM_IMAGES);
	else
		snprintf(out, len, "%s", user);
}

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
       OPT_KERNEL_TREE, OPT_ENGINE, OPT_PCAP_FILTER, OPT_DROP, OPT_SNAPLEN, OPT_ALL, OPT_SOURCE };

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
	{ "wire", no_argument, NULL, 'W' }, { "keep-guest", no_argument, NULL, 'K' },             \
	{ "engine", required_argument, NULL, OPT_ENGINE },                                        \
	{ "source", required_argument, NULL, OPT_SOURCE },                                        \
	{ "quiet", no_argument, NULL, 'q' }, { "help", no_argument, NULL, 'h' }

static const char guest_help[] =
	"Guest options:\n"
	"  -w, --workload NAME    shell, rx-icmp, rx-udp, rx-tcp, tx-tcp, rx-drop, rx-drops, oops\n"
	"                         (default rx-icmp)\n"
	"  -n, --size N           workload size (pings, datagrams, bytes)\n"
	"  -a, --accel MODE       auto (KVM if the guest boots under it, else TCG), kvm, tcg\n"
	"      --smp N, --mem MiB, --nic e1000|virtio\n"
	"      --workload-cpu N   run the workload on the guest's CPU N (with --smp)\n"
	"      --kaslr            boot the guest with KASLR on (it is built in, off by default)\n"
	"      --kaslr-offset OFF the kernel runs OFF above vmlinux's addresses (the 'Kernel\n"
	"                         Offset:' of a panic log); found from guest memory otherwise\n"
	"      --pin MODE         auto (QEMU on CPUs of its own when there are more than\n"
	"                         --smp; steps run faster), off\n"
	"  -A, --attach EP        use a running gdbstub (unix:PATH or 127.0.0.1:PORT,\n"
	"                         e.g. from 'make run-guest HALT=1') instead of starting QEMU,\n"
	"                         or the kernel's kgdb on a serial line: serial:PATH[,BAUD]\n"
	"                         (a unix socket, as make run-guest KGDB=1 makes, or a tty)\n"
	"      --domain NAME      a libvirt domain, running or paused (it is handed back\n"
	"                         as found); its own gdbstub, or one opened for the run\n"
	"      --libvirt URI      where it is (default qemu:///system as root, else\n"
	"                         qemu:///session; qemu+ssh://[USER@]HOST/system for a\n"
	"                         remote one: its stub comes over the same ssh); without\n"
	"                         --domain: boot kstep's guest as a transient domain there\n"
	"                         (local URIs), destroyed at the end unless --keep-guest\n"
	"      --stub-path PATH   where the domain's QEMU opens that gdbstub (default: its\n"
	"                         directory under libvirt's, e.g. /var/lib/libvirt/qemu/domain-N-NAME)\n"
	"      --kgdb             boot the guest with kgdb on its second serial port and\n"
	"                         debug it through that line, not QEMU's gdbstub (as\n"
	"                         --attach serial:PATH does; what kgdb cannot do: doc/details.md)\n"
	"      --replay DIR       replay the recording kstep record made in DIR instead of\n"
	"                         running a guest: the same run every time, not perturbed\n"
	"                         by the stops (its workload and guest settings are the\n"
	"                         recording's; steps let interrupts in where they came)\n"
	"  -K, --keep-guest       leave the guest running when kstep ends\n"
	"      --vmlinux PATH     kernel with symbols (default images/vmlinux)\n"
	"      --modules DIR      debug info of the guest's modules (NAME.ko below DIR;\n"
	"                         default /usr/lib/debug/lib/modules/RELEASE)\n"
	"      --source DIR       the kernel's source, for FUNC;PATTERN probes (default: the\n"
	"                         tree the vmlinux was built from, when make images made it)\n"
	"      --images DIR       bzImage, initramfs, vmlinux (default: the tree's images/)\n"
	"      --kernel-tree DIR  boot the kernel you built in DIR (its arch/x86/boot/bzImage\n"
	"                         and vmlinux; O= of the build) with the images' initramfs\n"
	"  -o, --output DIR       trace directory (default trace.out; private, 0700)\n"
	"      --force            replace the kstep trace already in DIR\n"
	"      --stack-bytes N    stack bytes recorded from rsp at each snapshot (default 256)\n"
	"      --unwind MODE      backtraces from: auto (the debug info's call frame\n"
	"                         information, carried on by frame pointers where it has\n"
	"                         none and they agree), cfi, fp (frame pointers only),\n"
	"                         check (record cfi's, say where frame pointers differ)\n"
	"      --step-irqs        let interrupts and timers in while single-stepping\n"
	"      --engine MODE      auto (kstep's QEMU plugin where it serves the run, else\n"
	"                         the gdbstub, saying why), rsp (the gdbstub), plugin\n"
	"                         (QEMU 9.2 or later, TCG; not yet: %return, the oops\n"
	"                         catch)\n"
	"      --wire             print every RSP packet (=> sent, <= received)\n"
	"  -q, --quiet            no live counter\n"
	"\nExit status: 0 done as asked, 1 failed, 2 bad usage, 3 the workload failed,\n"
	"4 the kernel died (oops/panic), 5 the guest reset, 6 QEMU ended early,\n"
	"130 interrupted.\n";

/* Returns true if it handled @c. */
static bool guest_opt(const char *cmd, struct guest_opts *g, int c, const char *arg)
{
	switch (c) {
	case 'V':
		snprintf(g->vmlinux, sizeof(g->vmlinux), "%s", arg);
		return true;
	case 'I':
		snprintf(g->images, sizeof(g->images), "%s", arg);
		return true;
	case OPT_KERNEL_TREE:
		g->kernel_tree = arg;
		return true;
	case 'A':
		g->attach = arg;
		return true;
	case 'w':
		g->guest_set = "--workload";
		g->workload = arg;
		return true;
	case 'n':
		g->guest_set = "--size";
		parse_u64(cmd, "--size", arg, 1);
		g->count = arg;
		return true;
	case 'a':
		if (strcmp(arg, "auto") && strcmp(arg, "kvm") && strcmp(arg, "tcg"))
			die_usage(cmd, "--accel must be auto, kvm or tcg, not '%s'", arg);
		g->accel = arg;
		return true;
	case 'S':
		g->guest_set = "--smp";
		parse_u64(cmd, "--smp", arg, 1);
		g->smp = arg;
		return true;
	case 'U':
		g->guest_set = "--workload-cpu";
		parse_u64(cmd, "--workload-cpu", arg, 0);
		g->workload_cpu = arg;
		return true;
	case 'M':
		g->guest_set = "--mem";
		parse_u64(cmd, "--mem", arg, 1);
		g->mem = arg;
		return true;
	case 'N':
		g->guest_set = "--nic";
		if (strcmp(arg, "e1000") && strcmp(arg, "virtio"))
			die_usage(cmd, "--nic must be e1000 or virtio, not '%s'", arg);
		g->nic = arg;
		g->nic_given = true;
		return true;
	case 'P':
		if (strcmp(arg, "auto") && strcmp(arg, "off"))
			die_usage(cmd, "--pin must be auto or off, not '%s'", arg);
		g->pin = arg;
		return true;
	case 'o':
		g->out = arg;
		return true;
	case 'B':
		g->eng.stack_bytes = parse_u64(cmd, "--stack-bytes", arg, 8);
		if (g->eng.stack_bytes > ENGINE_STACK_BYTES_MAX || g->eng.stack_bytes % 8)
			die_usage(cmd, "--stack-bytes must be a multiple of 8 up to %d, not '%s'", ENGINE_STACK_BYTES_MAX,
				  arg);
		return true;
	case 'i':
		g->eng.step_irqs = true;
		return true;
	case 'W':
		g->wire = true;
		return true;
	case 'K':
		g->keep = true;
		return true;
	case 'F':
		g->force = true;
		return true;
	case 'L':
		g->guest_set = "--kaslr";
		g->kaslr = true;
		return true;
	case 'Y':
		g->moddir = arg;
		return true;
	case OPT_SOURCE:
		g->srcdir = arg;
		return true;
	case OPT_LIBVIRT:
		g->libvirt_uri = arg;
		return true;
	case OPT_DOMAIN:
		g->domain = arg;
		return true;
	case OPT_STUB_PATH:
		g->stub_path = arg;
		return true;
	case OPT_KGDB:
		g->kgdb = true;
		return true;
	case OPT_REPLAY:
		g->replay = arg;
		return true;
	case 'X':
		if (strcmp(arg, "auto") && strcmp(arg, "cfi") && strcmp(arg, "fp") && strcmp(arg, "check"))
			die_usage(cmd, "--unwind must be auto, cfi, fp or check, not '%s'", arg);
		g->unwind = arg;
		g->eng.unwind = !strcmp(arg, "cfi")   ? SNAPSHOT_UNWIND_CFI
			      : !strcmp(arg, "fp")    ? SNAPSHOT_UNWIND_FP
			      : !strcmp(arg, "check") ? SNAPSHOT_UNWIND_CHECK
						      : SNAPSHOT_UNWIND_AUTO;
		return true;
	case 'O':
		g->kaslr_offset = parse_u64(cmd, "--kaslr-offset", arg, 0);
		g->kaslr_offset_given = true;
		return true;
	case 'q':
		g->eng.progress = false;
		g->quiet = true;
		return true;
	case OPT_ENGINE:
		if (strcmp(arg, "auto") && strcmp(arg, "rsp") && strcmp(arg, "plugin"))
			die_usage(cmd, "--engine is auto, rsp or plugin, not '%s'", arg);
		g->engine = arg;
		return true;
	}
	return false;
}

static void guest_defaults(struct guest_opts *g)
{
	memset(g, 0, sizeof(*g));
	find_tree(g->tree, sizeof(g->tree), &g->installed);
	g->workload = "rx-icmp";
	g->accel = "auto";
	g->engine = "auto";
	g->nic = "e1000";
	g->out = "trace.out";
	g->eng.stack_bytes = 256;
	g->unwind = "auto";
	g->eng.progress = isatty(2);
	g->eng.interrupted = &interrupted;
	g->replay_log = -1;
}

/* --replay DIR: the guest as the recording started it; a recording that
 * cannot be replayed (cut short, other images) ends kstep here. */
static void load_replay(struct guest_opts *g)
{
	char err[PATH_MAX + 256];

	if (recording_read(g->replay, &g->rec, err, sizeof(err)) ||
	    recording_check(&g->rec, g->replay, g->images, err, sizeof(err)) ||
	    recording_check_qemu(&g->rec, g->replay, err, sizeof(err))) {
		error("%s", err);
		exit(EXIT_FAILED);
	}
	g->workload = g->rec.workload;
	g->count = g->rec.size[0] ? g->rec.size : NULL;
	g->nic = g->rec.nic;
	g->mem = g->rec.mem[0] ? g->rec.mem : NULL;
	g->kaslr = g->rec.kaslr;
	g->accel = "tcg";
	g->smp = NULL;
	g->eng.replay = true;
	g->replay_log = recording_open_log(g->replay, false, err, sizeof(err));
	if (g->replay_log < 0) {
		error("--replay %s", err);
		exit(EXIT_FAILED);
	}
}

/* The images directory --kernel-tree makes: links to the tree's bzImage and
 * vmlinux and to the images' initramfs, in a private directory of the run
 * directory, removed when kstep ends. */
static char kernel_tree_images[PATH_MAX - 64];

static void remove_kernel_tree_images(void)
{
	static const char *const names[] = { "bzImage", "vmlinux", "initramfs.cpio.gz", "accel.probe" };
	int dfd = open(kernel_tree_images, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (dfd < 0)
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlinkat(dfd, names[i], 0);
	close(dfd);
	rmdir(kernel_tree_images);
}

static void link_kernel_tree(struct guest_opts *g)
{
	const char *from[] = { "arch/x86/boot/bzImage", "vmlinux", NULL };
	const char *to[] = { "bzImage", "vmlinux", "initramfs.cpio.gz" };
	char rundir[PATH_MAX - 128], err[PATH_MAX + 128], src[3][PATH_MAX], path[2 * PATH_MAX];

	for (int i = 0; i < 3; i++) {
		if (i < 2)
			snprintf(path, sizeof(path), "%s/%s", g->kernel_tree, from[i]);
		else
			snprintf(path, sizeof(path), "%s/initramfs.cpio.gz", g->images);
		if (!realpath(path, src[i])) {
			error("--kernel-tree %s: %s: %s%s", g->kernel_tree, path, strerror(errno),
			      i < 2 ? " (give the directory the kernel was built in, O= if it had one)" : "");
			exit(EXIT_FAILED);
		}
	}
	files_rundir(rundir, sizeof(rundir));
	if (files_private_dir(rundir, err, sizeof(err))) {
		error("%s", err);
		exit(EXIT_FAILED);
	}
	snprintf(kernel_tree_images, sizeof(kernel_tree_images), "%s/kernel-tree-XXXXXX", rundir);
	if (!mkdtemp(kernel_tree_images)) {
		error("cannot create a directory in %s: %s", rundir, strerror(errno));
		exit(EXIT_FAILED);
	}
	atexit(remove_kernel_tree_images);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", kernel_tree_images, to[i]);
		if (symlink(src[i], path)) {
			error("cannot link %s: %s", path, strerror(errno));
			exit(EXIT_FAILED);
		}
	}
	snprintf(g->images, sizeof(g->images), "%s", kernel_tree_images);
}

static void guest_finish_defaults(struct guest_opts *g)
{
	if (!g->images[0]) {
		if (getenv("KSTEP_IMAGES") && *getenv("KSTEP_IMAGES"))
			snprintf(g->images, sizeof(g->images), "%s", getenv("KSTEP_IMAGES"));
		else if (g->installed)
			installed_images(g->images, sizeof(g->images));
		else
			snprintf(g->images, sizeof(g->images), "%s/images", g->tree);
	}
	if (g->kernel_tree)
		link_kernel_tree(g);
	if (!g->vmlinux[0])
		snprintf(g->vmlinux, sizeof(g->vmlinux), "%s/vmlinux", g->images);
	if (g->replay)
		load_replay(g);
}

/* The guest is one kstep does not start: the user's stub, domain or kgdb. */
static bool users_guest(const struct guest_opts *g)
{
	return g->attach || g->domain || g->libvirt_uri || g->kgdb;
}

/* Options that exclude each other, checked once all are read. */
static void guest_check_opts(const char *cmd, const struct guest_opts *g)
{
	if (g->domain && g->attach)
		die_usage(cmd, "--domain and --attach both name the guest: give one");
	if (g->libvirt_uri && g->attach)
		die_usage(cmd, "--libvirt and --attach both name the guest: give one");
	if (g->stub_path && !g->domain && !g->libvirt_uri)
		die_usage(cmd, "--stub-path is for a libvirt domain (--domain NAME)");
	if (g->kgdb && (g->attach || g->domain || g->libvirt_uri))
		die_usage(cmd, "--kgdb boots kstep's own QEMU guest: not with --attach, --domain or --libvirt "
			       "(--attach serial:PATH is kgdb on a guest of yours)");
	if (g->replay && users_guest(g))
		die_usage(cmd, "--replay runs a recording: not with --attach, --domain, --libvirt or --kgdb");
	if (g->replay && g->guest_set)
		die_usage(cmd, "--replay: %s is fixed by the recording (it was made with kstep record %s ...)", g->guest_set,
			  g->guest_set);
	if (g->replay && !strcmp(g->accel, "kvm"))
		die_usage(cmd, "--replay runs under TCG: a replay counts instructions, which KVM cannot");
	if (g->stub_path && g->stub_path[0] != '/')
		die_usage(cmd, "--stub-path must be an absolute path (the domain's QEMU opens it)");
	if (!strcmp(g->engine, "plugin") && strcmp(cmd, "trace "))
		die_usage(cmd, "--engine plugin serves kstep trace so far; this command runs on the gdbstub");
}

/* A connected, halted guest at (or past) start_kernel with a checked vmlinux. */
struct session {
	struct guest_opts *g;
	struct symtab *syms;
	struct qemu *qemu;
	struct rsp_conn *rsp;
	struct target *target;
	struct engine *engine;
	struct trace *trace;
	const char *accel;
	struct kmods *kmods;     /* the guest's modules, NULL: a kernel without them */
	struct probe_set *ps;    /* kstep trace's probes: some wait for their module */
	struct qmp *clock;       /* QMP for the guest's instruction count, NULL: no guest time */
	struct lv_domain *lv;    /* the libvirt domain (--domain), NULL: none */
	char lv_stub[PATH_MAX + 16]; /* its stub's endpoint */
	bool frozen;             /* a dying guest is kept stopped */
	struct trace_class *classes; /* the probes' event classes in the trace */
	size_t nclasses;
	int out_dfd;      /* the trace directory */
	int serial_fd;    /* its guest/serial.log, -1 when attached */
	char plugin[PATH_MAX]; /* kstep's QEMU plugin, loaded into our QEMU ("": the gdbstub engine) */
};

static bool qemu_gone(void *ctx)
{
	return qemu_exited(ctx, NULL);
}

/* The launched QEMU's stub, retried while QEMU is between bind and listen. */
static int connect_stub(struct session *s, char *err, size_t errlen)
{
	return rsp_connect_retry(&s->rsp, qemu_gdb_socket(s->qemu), STUB_CONNECT_MS, qemu_gone, s->qemu, err, errlen);
}

/* The start of the guest's console log, NUL-terminated; bytes read. */
static ssize_t serial_log_read(struct session *s, char *out, size_t len)
{
	ssize_t n = s->serial_fd >= 0 ? pread(s->serial_fd, out, len - 1, 0) : -1;

	out[n > 0 ? n : 0] = '\0';
	return n;
}

/* The kernel's kgdb line, once the kernel waits on it (kgdbwait): bytes
 * sent before kgdb reads the UART would be lost in its FIFO. */
static int connect_kgdb(struct session *s, int timeout_ms, char *err, size_t errlen)
{
	char line[PATH_MAX + 32];
	uint64_t waited = 0;
	static char log[1 << 16];

	while (serial_log_read(s, log, sizeof(log)) >= 0 && !strstr(log, KGDB_WAITING)) {
		if (qemu_exited(s->qemu, NULL) || interrupted || waited > (uint64_t)timeout_ms) {
			snprintf(err, errlen, "the kernel %s before it waited for kgdb (console: %s/guest/serial.log)",
				 interrupted ? "was interrupted" : qemu_exited(s->qemu, NULL) ? "ended" : "timed out",
				 s->g->out);
			return interrupted ? -EINTR : -ETIMEDOUT;
		}
		usleep(KGDB_POLL_MS * 1000);
		waited += KGDB_POLL_MS;
	}
	snprintf(line, sizeof(line), "serial:%s", qemu_kgdb_socket(s->qemu));
	return rsp_connect(&s->rsp, line, err, errlen);
}

/* Guest time needs TCG's instruction counting, and one vCPU: a guest with
 * two hangs at bringing up the second under QEMU 7.2's -icount (DESIGN.md). */
static bool guest_clock_possible(struct session *s, const char *accel)
{
	if (strcmp(accel, "tcg"))
		return false;
	if (s->g->kgdb) {
		info("no guest time (guest_ns 0) under kgdb: the guest's CPU runs on in kgdb's loop while kstep holds it");
		return false;
	}
	if (s->g->smp && strcmp(s->g->smp, "1")) {
		info("no guest time (guest_ns 0) with --smp %s: QEMU's instruction counting runs one vCPU", s->g->smp);
		return false;
	}
	return true;
}

static int guest_icount(void *ctx, uint64_t *icount)
{
	return qmp_icount(ctx, icount);
}

/* Guest time: QEMU counts the guest's instructions (-icount); kstep asks at
 * every stop over a QMP connection of its own. */
static void open_guest_clock(struct session *s)
{
	char err[256];

	if (qmp_open(&s->clock, qemu_clock_socket(s->qemu), err, sizeof(err))) {
		info("no guest time in this trace: %s", err);
		return;
	}
	s->g->eng.guest_clock = guest_icount;
	s->g->eng.clock_ctx = s->clock;
	s->g->eng.icount_shift = QEMU_ICOUNT_SHIFT;
}

/* The guest the options describe, for QEMU or for libvirt. */
static struct qemu_opts guest_qemu_opts(const struct guest_opts *g, const char *accel, int serial_fd)
{
	return (struct qemu_opts){
		.tree = g->tree, .images = g->images, .workload = g->workload, .count = g->count, .accel = accel,
		.smp = g->smp, .mem = g->mem, .pin = g->pin, .nic = g->nic, .serial_fd = serial_fd,
		.workload_cpu = g->workload_cpu, .kaslr = g->kaslr, .kgdb = g->kgdb,
	};
}

/* The plugin connected as QEMU loaded it; QEMU refuses one of another API
 * version itself, and says why (qemu_wait_ready quotes it). */
static int accept_plugin(struct session *s, char *err, size_t errlen)
{
	struct chan_hello hello;

	return chan_accept(qemu_plugin_chan(s->qemu), PLUGIN_CONNECT_MS, &hello, err, errlen);
}

static int launch(struct session *s, const char *accel)
{
	struct qemu_opts qo = guest_qemu_opts(s->g, accel, s->serial_fd);
	char err[512];
	int ret;

	qo.icount = guest_clock_possible(s, accel);
	qo.plugin = s->plugin[0] ? s->plugin : NULL;
	if (s->g->replay) {
		qo.rr = "replay";
		qo.rr_fd = s->g->replay_log;
	}
	ret = qemu_launch(&s->qemu, &qo, err, sizeof(err));
	if (!ret)
		ret = qemu_wait_ready(s->qemu, QEMU_READY_MS, &interrupted, err, sizeof(err));
	if (!ret && qo.plugin)
		ret = accept_plugin(s, err, sizeof(err));
	if (!ret)
		ret = s->g->kgdb ? connect_kgdb(s, strcmp(accel, "kvm") ? BOOT_TIMEOUT_TCG_MS : BOOT_TIMEOUT_KVM_MS,
						err, sizeof(err))
				 : connect_stub(s, err, sizeof(err));
	if (ret) {
		error("%s", err);
		return ret;
	}
	s->accel = accel;
	if (qo.icount)
		open_guest_clock(s);
	return 0;
}

static int connect_target(struct session *s)
{
	char err[512];
	int ret;

	if (s->g->wire)
		rsp_set_wire_log(s->rsp, stderr);
	rsp_set_interrupt_flag(s->rsp, &interrupted);
	ret = target_open(&s->target, s->rsp, err, sizeof(err));
	if (ret && s->g->attach && !strncmp(s->g->attach, "serial:", 7) && (ret == -EBUSY || ret == -ETIMEDOUT)) {
		/* kgdb reads its line only while the kernel is in the debugger. */
		error("kgdb on %s did not answer: the kernel is not in the debugger (it waits for one at boot "
		      "with kgdbwait, as make run-guest KGDB=1 boots it, or after SysRq-G: "
		      "echo g > /proc/sysrq-trigger in the guest)", s->g->attach + 7);
		return ret;
	}
	if (ret) {
		error("%s", err);
		return ret;
	}
	ret = engine_new(&s->engine, s->target, s->syms, NULL, &s->g->eng, err, sizeof(err));
	if (ret)
		error("%s", err);
	return ret;
}

static void drop_guest(struct session *s)
{
	qmp_close(s->clock);
	s->clock = NULL;
	s->g->eng.guest_clock = NULL;
	engine_free(s->engine);
	target_close(s->target);
	rsp_close(s->rsp);
	qemu_free(s->qemu);
	s->engine = NULL;
	s->target = NULL;
	s->rsp = NULL;
	s->qemu = NULL;
}

/*
 * Before anything boots: is --vmlinux the kernel in bzImage? A vmlinux
 * from another build would let the guest run its whole workload past a
 * start_kernel breakpoint at the wrong address.
 */
static int check_images(struct session *s)
{
	char path[PATH_MAX + 16], err[1024];
	int ret;

	snprintf(path, sizeof(path), "%s/bzImage", s->g->images);
	if (access(path, R_OK)) {
		error("no guest kernel in %s (%s): build the images with '%s', or pass --images DIR", s->g->images,
		      strerror(errno), s->g->installed ? "kstep build-images" : "make images");
		return -ENOENT;
	}
	ret = sym_check_bzimage(s->syms, path, err, sizeof(err));
	if (ret)
		error("%s", err);
	return ret;
}

static int read_guest(void *ctx, uint64_t addr, void *out, size_t len)
{
	return target_read_mem(ctx, addr, out, len);
}

static int lookup_in_module(void *ctx, const char *module, const char *symbol, uint64_t *addr)
{
	return cfi_lookup(ctx, module, symbol, addr);
}

/* Read the guest's module list again; say which came, and give probes in
 * them their addresses. Best effort: a list that cannot be read is said,
 * and the trace goes on. */
static int scan_modules(void *ctx)
{
	struct session *s = ctx;
	const struct kmod *v;
	size_t added, n, before = 0;
	int ret;

	kmods_list(s->kmods, &before);
	if ((ret = kmods_scan(s->kmods, read_guest, s->target, &added)) || !added) {
		if (ret)
			info("cannot read the guest's module list (%s); modules stay as they were", strerror(-ret));
		return ret == -ENOMEM ? ret : 0;
	}
	v = kmods_list(s->kmods, &n);
	if ((ret = cfi_set_modules(s->g->eng.cfi, v, n)))
		return ret;
	for (size_t i = 0; i < n && added; i++)
		if (!v[i].path[0])
			info("module %s at 0x%" PRIx64 ": no debug info for it in %s (--modules DIR)", v[i].name, v[i].base,
			     *kmods_dir(s->kmods) ? kmods_dir(s->kmods) : "any known place");
	if (s->ps)
		probes_resolve_modules(s->ps, lookup_in_module, s->g->eng.cfi);
	return 0;
}

/* free_module(mod) is at hand: forget the module (its unwinding and names
 * too), and say which range its breakpoints leave. */
static int module_going(void *ctx, uint64_t mod, uint64_t *lo, uint64_t *hi)
{
	struct session *s = ctx;
	struct kmod gone;
	const struct kmod *v;
	size_t n;
	int ret = kmods_forget(s->kmods, read_guest, s->target, mod, &gone);

	if (ret)
		return ret == -EFAULT ? -ENOENT : ret; /* unreadable: nothing of ours to take out */
	v = kmods_list(s->kmods, &n);
	if ((ret = cfi_set_modules(s->g->eng.cfi, v, n)))
		return ret;
	info("module %s unloaded: its probes wait for it to come back", gone.name);
	*lo = gone.base;
	*hi = gone.base + gone.size;
	return 0;
}

/* A kernel with loadable modules: read the ones loaded so far and stop at
 * the module loader for those that come later, and at free_module for
 * those that go. Needs the CFI address space (the modules' names, lines
 * and unwinding live there). */
static int setup_modules(struct session *s)
{
	const struct sym *loader = sym_lookup_name(s->syms, "do_init_module");
	const struct sym *unloader = sym_lookup_name(s->syms, "free_module");
	char err[512];

	if (!s->g->eng.cfi || !loader || kmods_new(&s->kmods, s->syms, s->g->moddir, err, sizeof(err)))
		return 0;
	s->g->eng.module_loader = loader->addr;
	s->g->eng.module_unloader = unloader ? unloader->addr : 0;
	s->g->eng.module_going = module_going;
	s->g->eng.modules_changed = scan_modules;
	s->g->eng.modules_ctx = s;
	return scan_modules(s);
}

/* Where KASLR put the kernel: said once, when it moved it. */
static int locate_kernel(struct session *s)
{
	char where[128];
	uint64_t offset;
	int ret = engine_locate_kernel(s->engine, &offset);

	if (ret || !offset)
		return ret;
	sym_format(s->syms, engine_pc(s->engine), where, sizeof(where));
	info("KASLR: the kernel runs 0x%" PRIx64 " above vmlinux's addresses (%s)%s%s", offset,
	     s->g->kaslr_offset_given && offset == s->g->kaslr_offset ? "--kaslr-offset, checked in guest memory"
								      : "found from linux_banner in guest memory",
	     engine_caught_early(s->engine) ? "; the guest is stopped early in its boot, at " : "",
	     engine_caught_early(s->engine) ? where : "");
	return 0;
}

/* Attached to a stub: QEMU stopped the guest when kstep connected; one
 * still at reset or in its boot loader is run to start_kernel. */
static int boot_attached(struct session *s)
{
	char err[512];
	bool before = false;
	int ret = rsp_connect(&s->rsp, s->g->attach, err, sizeof(err));

	if (ret) {
		error("%s%s", err, s->lv ? "" : " (is the guest running? start it with: make run-guest HALT=1)");
		return ret;
	}
	if ((ret = connect_target(s)))
		return ret;
	if ((ret = engine_before_kernel(s->engine, &before)) ||
	    (before && (ret = engine_run_to_start_kernel(s->engine, BOOT_TIMEOUT_TCG_MS))))
		error("%s", engine_errmsg(s->engine));
	return ret;
}

/* A libvirt domain: its stub found or opened, then as attached. */
static int boot_libvirt(struct session *s)
{
	char err[1024];
	int ret = lv_open(&s->lv, s->g->libvirt_uri, s->g->domain, err, sizeof(err));

	if (!ret)
		ret = lv_open_stub(s->lv, s->g->stub_path, s->lv_stub, sizeof(s->lv_stub), err, sizeof(err));
	if (ret) {
		error("%s", err);
		return ret;
	}
	if (lv_tainted_by_us(s->lv))
		info("libvirt now marks domain '%s' tainted (custom monitor): kstep opened its gdbstub through "
		     "the domain's monitor", lv_name(s->lv));
	if (lv_stub_is_tcp(s->lv))
		info("WARNING: domain '%s' has its gdbstub on TCP (%s): every local user can reach it", lv_name(s->lv),
		     s->lv_stub);
	s->g->attach = s->lv_stub;
	return boot_attached(s);
}

/* The accelerator --accel auto means: the one remembered for this kernel,
 * else KVM if there is a /dev/kvm to try. */
static const char *pick_accel(struct session *s)
{
	const char *cached = qemu_accel_cached(s->g->images);

	if (strcmp(s->g->accel, "auto"))
		return s->g->accel;
	if (cached)
		return cached;
	if (access("/dev/kvm", R_OK | W_OK)) {
		info("no usable /dev/kvm: running under TCG (software emulation)");
		return "tcg";
	}
	return "kvm";
}

/* --accel auto with the plugin: TCG, which plugins need; under --engine
 * auto a KVM that runs this guest is taken instead, without the plugin. */
static const char *plugin_accel(struct session *s)
{
	const char *accel;

	if (!strcmp(s->g->engine, "plugin"))
		return "tcg";
	accel = pick_accel(s);
	if (!strcmp(accel, "kvm")) {
		if (!s->g->quiet)
			info("engine: the gdbstub's (KVM runs this guest; plugins run under TCG: --accel tcg)");
		s->plugin[0] = '\0';
	}
	return accel;
}

/* The domain XML of our guest, its console going to the trace's
 * guest/serial.log (written by libvirt's virtlogd). */
static int own_domain_xml(struct session *s, const char *accel, const char *name, char **xml, char *err,
			  size_t errlen)
{
	struct qemu_opts qo = guest_qemu_opts(s->g, accel, s->serial_fd);
	char rundir[PATH_MAX], tmp[PATH_MAX + 32], out[PATH_MAX], log[PATH_MAX + 32];
	int ret;

	files_rundir(rundir, sizeof(rundir));
	if ((ret = files_private_dir(rundir, err, errlen)))
		return ret;
	snprintf(tmp, sizeof(tmp), "%s/xml.XXXXXX", rundir);
	if (!realpath(s->g->out, out) || !mkdtemp(tmp)) {
		snprintf(err, errlen, "cannot prepare the domain's definition: %s", strerror(errno));
		return -errno;
	}
	snprintf(log, sizeof(log), "%s/" TRACE_GUEST_DIR "/serial.log", out);
	ret = qemu_domain_xml(&qo, name, log, tmp, xml, err, errlen);
	rmdir(tmp);
	return ret;
}

/* kstep's own guest as a transient libvirt domain (--libvirt URI without
 * --domain): started paused at reset, then as attached. */
static int boot_libvirt_own(struct session *s)
{
	char err[1024], name[64];
	char *xml = NULL;
	int ret;

	if ((ret = check_images(s)))
		return ret;
	s->serial_fd = trace_create_serial_log(s->out_dfd);
	if (s->serial_fd < 0) {
		error("cannot create %s/guest/serial.log: %s", s->g->out, strerror(-s->serial_fd));
		return s->serial_fd;
	}
	snprintf(name, sizeof(name), "kstep-%d", (int)getpid());
	ret = own_domain_xml(s, pick_accel(s), name, &xml, err, sizeof(err));
	if (!ret)
		ret = lv_create(&s->lv, s->g->libvirt_uri, xml, s->g->keep, err, sizeof(err));
	free(xml);
	if (!ret)
		ret = lv_open_stub(s->lv, s->g->stub_path, s->lv_stub, sizeof(s->lv_stub), err, sizeof(err));
	if (ret) {
		error("%s", err);
		return ret;
	}
	info("guest: libvirt domain '%s' at %s%s", name, lv_uri(s->lv),
	     s->g->keep ? " (kept when kstep ends: virsh destroy ends it)" : " (destroyed when kstep ends)");
	s->g->attach = s->lv_stub;
	return boot_attached(s);
}

static int launch_to_start_kernel(struct session *s, const char *accel)
{
	int ret = launch(s, accel);

	if (!ret && !(ret = connect_target(s)) && !s->g->kgdb) /* kgdb waits far past start_kernel */
		ret = engine_run_to_start_kernel(s->engine, strcmp(accel, "kvm") ? BOOT_TIMEOUT_TCG_MS
										 : BOOT_TIMEOUT_KVM_MS);
	return ret;
}

/* Our own QEMU, halted at reset, run to start_kernel; under --accel auto a
 * KVM that cannot run the guest (it kills QEMU at once or hangs it before
 * start_kernel: DESIGN.md) means TCG, remembered for this kernel. */
static int boot_launched(struct session *s)
{
	const char *accel;
	int ret;

	if ((ret = check_images(s)))
		return ret;
	s->serial_fd = trace_create_serial_log(s->out_dfd);
	if (s->serial_fd < 0) {
		error("cannot create %s/guest/serial.log: %s", s->g->out, strerror(-s->serial_fd));
		return s->serial_fd;
	}
	accel = s->plugin[0] && !strcmp(s->g->accel, "auto") ? plugin_accel(s) : pick_accel(s);
	ret = launch_to_start_kernel(s, accel);
	if (ret && ret != -EINTR && !strcmp(accel, "kvm") && !strcmp(s->g->accel, "auto")) {
		char why[256] = "the guest never reached start_kernel";

		if (ret != -ETIMEDOUT && serial_log_read(s, why, sizeof(why)) > 0)
			why[strcspn(why, "\n")] = '\0';
		info("KVM does not run this guest (%s); falling back to TCG "
		     "(remembered for this kernel; force with --accel kvm)", why);
		qemu_accel_remember(s->g->images, "tcg");
		drop_guest(s);
		if (ftruncate(s->serial_fd, 0) == 0) /* the log of this boot only */
			lseek(s->serial_fd, 0, SEEK_SET);
		ret = launch_to_start_kernel(s, "tcg");
	} else if (!ret && !strcmp(s->g->accel, "auto")) {
		qemu_accel_remember(s->g->images, accel);
	}
	if (ret && s->engine)
		error("%s", engine_errmsg(s->engine));
	return ret;
}

/* A connected guest, stopped in its kernel, KASLR found, vmlinux checked,
 * modules read. */
static int boot(struct session *s)
{
	int ret;

	/* Probes and --at were resolved at vmlinux's addresses; the offset is
	 * applied to them once the kernel is found (probes_relocate). */
	if (s->g->kaslr_offset_given)
		sym_relocate(s->syms, s->g->kaslr_offset);
	if ((ret = s->g->domain		 ? boot_libvirt(s)
		   : s->g->libvirt_uri ? boot_libvirt_own(s)
		   : s->g->attach	 ? boot_attached(s)
					 : boot_launched(s)))
		return ret;
	if ((ret = locate_kernel(s)) || (ret = engine_check_banner(s->engine))) {
		error("%s", engine_errmsg(s->engine));
		return ret;
	}
	return setup_modules(s);
}

static int open_trace(struct session *s, const char *command)
{
	char err[512], banner[256] = "", clock[96] = "";
	const struct sym *b = sym_lookup_name(s->syms, "linux_banner");
	struct trace_env env = { .unwinder = s->g->unwind, .vmlinux = s->g->vmlinux, .banner = banner,
				 .command = command, .guest_clock = clock,
				 .libvirt_uri = s->lv ? lv_uri(s->lv) : NULL, .libvirt_domain = s->lv ? lv_name(s->lv) : NULL,
				 .replay_id = s->g->replay ? s->g->rec.id : NULL };
	int ret;

	if (s->g->eng.guest_clock)
		snprintf(clock, sizeof(clock), "QEMU icount, %u ns an instruction, stopped while kstep holds the guest",
			 1u << s->g->eng.icount_shift);
	env.classes = s->classes;
	env.nclasses = s->nclasses;

	if (b && b->size)
		sym_read_bytes(s->syms, b->addr, banner, b->size < sizeof(banner) - 1 ? b->size : sizeof(banner) - 1);
	banner[strcspn(banner, "\n")] = '\0';
	ret = trace_open(&s->trace, s->out_dfd, s->g->out, target_desc(s->target), &env, err, sizeof(err));
	if (ret) {
		error("%s", err);
		return ret;
	}
	/* The engine was made before the trace existed: make it again with it. */
	engine_free(s->engine);
	s->engine = NULL;
	ret = engine_new(&s->engine, s->target, s->syms, s->trace, &s->g->eng, err, sizeof(err));
	if (ret)
		error("%s", err);
	return ret;
}

/* ---- the engine: the gdbstub's or kstep's QEMU plugin (--engine) ---- */

/* Why the plugin cannot serve this run of kstep trace (its probes @ps),
 * written into @why; false when it can. */
/* --engine plugin with no QEMU named and a system QEMU too old for it:
 * the QEMU 10 make qemu put beside the images, when it is there. */
static void take_images_qemu(const struct guest_opts *g)
{
	char path[PATH_MAX + 32], why[256];

	if (getenv("QEMU") && *getenv("QEMU"))
		return;
	snprintf(path, sizeof(path), "%s/qemu/bin/qemu-system-x86_64", g->images);
	if (access(path, X_OK) || qemu_plugin_capable(why, sizeof(why))) /* the file first: no QEMU run for nothing */
		return;
	setenv("QEMU", path, 1);
	if (!g->quiet)
		info("--engine plugin: QEMU %s (the system's is too old for the plugin)", path);
}

static bool plugin_refused(struct session *s, const struct probe_set *ps, char *why, size_t len)
{
	const struct guest_opts *g = s->g;

	if (users_guest(g))
		snprintf(why, len, "the plugin runs in kstep's own QEMU: not with --attach, --domain, --libvirt or --kgdb");
	else if (!strcmp(g->accel, "kvm"))
		snprintf(why, len, "plugins run under TCG, not --accel kvm");
	else if (!qemu_plugin_capable(why, len) || engine_plugin_refuses(ps, why, len))
		return true;
	else if (qemu_plugin_path(s->plugin, sizeof(s->plugin)))
		snprintf(why, len, "kstep's plugin (kstep-plugin.so) is not built: make host");
	else
		return false;
	return true;
}

/* --engine: the plugin where it serves the run, else the gdbstub, saying
 * why (not for a guest kstep did not start); a run the plugin cannot
 * serve is refused under --engine plugin (exit 2). */
static int choose_engine(struct session *s, const struct probe_set *ps)
{
	char why[512];

	s->plugin[0] = '\0';
	if (!strcmp(s->g->engine, "rsp"))
		return 0;
	if (!strcmp(s->g->engine, "plugin"))
		take_images_qemu(s->g);
	/* A guest of the user's: its gdbstub, without a word. */
	if (!strcmp(s->g->engine, "auto") && users_guest(s->g))
		return 0;
	if (!plugin_refused(s, ps, why, sizeof(why)))
		return 0;
	s->plugin[0] = '\0';
	if (!strcmp(s->g->engine, "plugin")) {
		error("--engine plugin: %s", why);
		return -EINVAL;
	}
	if (!s->g->quiet)
		info("engine: the gdbstub's (%s)", why);
	return 0;
}

static int prepare_out(struct session *s)
{
	char err[PATH_MAX + 128];
	int ret = trace_prepare_dir(s->g->out, s->g->force, &s->out_dfd, err, sizeof(err));

	if (ret)
		error("%s", err);
	return ret;
}

/* Write where gdb can find a frozen guest (make attach reads it), in the
 * per-user run directory, which must be private (files.h). */
static void publish_frozen(struct session *s)
{
	char dir[PATH_MAX], err[PATH_MAX + 128], text[2 * PATH_MAX + 64];
	int ret;

	files_rundir(dir, sizeof(dir));
	snprintf(text, sizeof(text), "GDB_TARGET=%s\nQMP_SOCK=%s\n", qemu_gdb_socket(s->qemu),
		 qemu_qmp_socket(s->qemu));
	ret = files_private_dir(dir, err, sizeof(err));
	if (!ret && (ret = files_replace(dir, "guest.env", text)))
		snprintf(err, sizeof(err), "cannot write %s/guest.env: %s", dir, strerror(-ret));
	if (ret)
		error("make attach will not find the guest: %s", err);
}

static const char *end_str(enum engine_end end)
{
	switch (end) {
	case ENGINE_END_NONE:
		return "stopped";
	case ENGINE_END_MAX_STOPS:
		return "reached --max-stops";
	case ENGINE_END_DURATION:
		return "reached --duration";
	case ENGINE_END_INTERRUPTED:
		return "interrupted";
	case ENGINE_END_GUEST_EXITED:
		return "the guest ended";
	case ENGINE_END_OOPS:
		return "the kernel is dying (oops caught)";
	case ENGINE_END_RETURNED:
		return "returned to the caller";
	case ENGINE_END_UNTIL:
		return "reached --until";
	case ENGINE_END_COUNT:
		return "reached --count instructions";
	}
	return "?";
}

/* One lifecycle command to the launched QEMU; best effort (QEMU may be gone). */
static void qemu_command(struct session *s, const char *command)
{
	struct qmp *q;
	char err[256];

	if (!qmp_open(&q, qemu_qmp_socket(s->qemu), err, sizeof(err))) {
		qmp_execute(q, command);
		qmp_close(q);
	}
}

/* Leave the guest as the result and the user ask; returns QEMU's exit status
 * or -1 when it is still running. */
static int finish_guest(struct session *s, const struct engine_result *res)
{
	int status = -1;

	if (res->end == ENGINE_END_OOPS) {
		/* Drop the gdb connection without 'D' (which would resume): the
		 * guest stays stopped until a debugger says otherwise. Ours is
		 * also paused through QMP and kept. */
		s->frozen = true;
		if (s->qemu)
			qemu_command(s, "stop");
		target_close(s->target);
		s->target = NULL;
		rsp_close(s->rsp);
		s->rsp = NULL;
		if (s->qemu) {
			qemu_keep(s->qemu);
			publish_frozen(s);
		}
		return -1;
	}
	if (s->target && s->engine && res->end != ENGINE_END_GUEST_EXITED)
		engine_clear_breakpoints(s->engine);
	if (!s->qemu) {
		/* Attached: hand the guest back running. */
		if (s->target && res->end != ENGINE_END_GUEST_EXITED)
			target_detach(s->target);
		return -1;
	}
	if (s->g->keep && res->end != ENGINE_END_GUEST_EXITED) {
		target_detach(s->target);
		qemu_keep(s->qemu);
		publish_frozen(s);
		return -1;
	}
	if (res->end != ENGINE_END_GUEST_EXITED)
		qemu_command(s, "quit");
	/* A guest that ended by itself leaves QEMU to finish on its own: on a
	 * loaded machine that has taken more than 5 s (a kgdb run, whose line
	 * closes as the guest powers off, before QEMU is done). */
	qemu_wait_exit(s->qemu, res->end == ENGINE_END_GUEST_EXITED ? 30000 : 5000, &status);
	return status;
}

/* Everything let go; a libvirt domain handed back as it was found (or
 * frozen). Returns -1 if the domain could not be given back so. */
static int session_end(struct session *s)
{
	char err[1024];
	bool traced = s->trace != NULL;
	int ret = 0;

	drop_guest(s);
	if (s->lv && (ret = lv_close(s->lv, s->frozen, err, sizeof(err))))
		error("%s", err);
	s->lv = NULL;
	cfi_free(s->g->eng.cfi);
	s->g->eng.cfi = NULL;
	pcap_filter_free(s->g->eng.pcap);
	s->g->eng.pcap = NULL;
	kmods_free(s->kmods);
	s->kmods = NULL;
	trace_close(s->trace);
	probes_free_classes(s->classes, s->nclasses);
	s->classes = NULL;
	sym_close(s->syms);
	if (s->serial_fd >= 0)
		close(s->serial_fd);
	else if (!traced && s->out_dfd >= 0)
		unlinkat(s->out_dfd, TRACE_GUEST_DIR, AT_REMOVEDIR); /* attached, nothing traced: as it was */
	if (s->out_dfd >= 0)
		close(s->out_dfd);
	return ret ? -1 : 0;
}

static int session_start(struct session *s, struct guest_opts *g)
{
	char err[512];
	int ret;

	memset(s, 0, sizeof(*s));
	s->g = g;
	s->out_dfd = s->serial_fd = -1;
	ret = sym_open(&s->syms, g->vmlinux, err, sizeof(err));
	if (ret == -ENOENT)
		error("%s: build the images with '%s', or pass --images DIR or --vmlinux PATH", err,
		      g->installed ? "kstep build-images" : "make images");
	else if (ret)
		error("%s", err);
	if (ret)
		return ret;
	if (g->eng.unwind != SNAPSHOT_UNWIND_FP && (ret = cfi_new(&g->eng.cfi, g->vmlinux, err, sizeof(err)))) {
		if (g->eng.unwind != SNAPSHOT_UNWIND_AUTO) {
			error("--unwind %s: %s", g->unwind, err);
			sym_close(s->syms);
			return ret;
		}
		info("%s: backtraces follow frame pointers only", err);
	}
	return 0;
}

/* The rc of the last "KSTEP-WORKLOAD-DONE NAME RC" the guest printed. */
static bool workload_done(struct session *s, int *rc)
{
	static char log[1 << 20];
	const char *p, *last = NULL;

	if (serial_log_read(s, log, sizeof(log)) <= 0)
		return false;
	for (p = log; (p = strstr(p, "KSTEP-WORKLOAD-DONE ")); p++)
		last = p;
	return last && sscanf(last, "KSTEP-WORKLOAD-DONE %*s %d", rc) == 1;
}

/* libvirt's virtlogd writes a domain's console log anew, as a file of
 * its own: read the one at the path. */
static void reopen_serial_log(struct session *s)
{
	char path[] = TRACE_GUEST_DIR "/serial.log";
	int fd;

	if (s->serial_fd < 0 || (fd = openat(s->out_dfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return;
	close(s->serial_fd);
	s->serial_fd = fd;
}

/* The guest printed its workload's result (@rc) and ended (@how; @failed:
 * not as a success). */
static int workload_ending(struct session *s, int rc, bool failed, const char *how)
{
	if (rc == 0 && !failed) {
		info("the guest finished its workload (%s)", how);
		return EXIT_DONE;
	}
	error("the guest's workload %s failed with rc %d (%s; console: %s/guest/serial.log)", s->g->workload, rc, how,
	      s->g->out);
	return EXIT_WORKLOAD_FAILED;
}

/* The guest went away under us: say why, from what the guest printed and
 * how QEMU ended, and pick the exit status. */
static int guest_ending(struct session *s, int status)
{
	const char *reason = s->qemu ? qemu_shutdown_reason(s->qemu) : "";
	int rc;

	if (s->lv) {
		char why[160];
		enum lv_ending end = lv_ending(s->lv, why, sizeof(why));

		reopen_serial_log(s);
		if (end != LV_END_ALIVE && workload_done(s, &rc)) {
			snprintf(why, sizeof(why), "domain '%s' %s", lv_name(s->lv),
				 end == LV_END_CRASHED ? "crashed" : "ended");
			return workload_ending(s, rc, end == LV_END_CRASHED, why);
		}
		error("the stub closed the connection: domain '%s' %s", lv_name(s->lv), why);
		if (end == LV_END_ALIVE && lv_release_guest(s->lv, why, sizeof(why)))
			error("%s", why);
		return end == LV_END_CRASHED ? EXIT_KERNEL_DIED : end == LV_END_ALIVE ? EXIT_FAILED : EXIT_QEMU_ENDED;
	}
	if (!s->qemu) {
		error("the stub closed the connection: the guest's QEMU ended (attached: kstep cannot see why)");
		return EXIT_QEMU_ENDED;
	}
	if (workload_done(s, &rc)) {
		char how[32];

		snprintf(how, sizeof(how), "QEMU exit %d", status);
		return workload_ending(s, rc, status != 0, how);
	}
	if (status == 1) {
		error("the guest kernel panicked (QEMU exit 1; its report is in %s/guest/serial.log)", s->g->out);
		return EXIT_KERNEL_DIED;
	}
	/* Under -no-reboot a reset ends QEMU: "guest-reset" when the guest did
	 * it, "host-qmp-system-reset" when asked through QMP. */
	if (strlen(reason) > 5 && !strcmp(reason + strlen(reason) - 5, "reset")) {
		error("the guest was reset (%s) before its workload finished (console: %s/guest/serial.log)", reason,
		      s->g->out);
		return EXIT_GUEST_RESET;
	}
	if (!strcmp(reason, "guest-shutdown")) {
		error("the guest powered off before its workload finished (console: %s/guest/serial.log)", s->g->out);
		return EXIT_GUEST_RESET;
	}
	if (!strcmp(reason, "host-qmp-quit"))
		error("QEMU was told to quit (QMP quit) before the workload finished");
	else if (status >= 128)
		error("QEMU was killed by signal %d before the workload finished (QEMU exited with status %d)",
		      status - 128, status);
	else
		error("QEMU ended before the workload finished (QEMU exited with status %d%s%s)", status,
		      *reason ? ", " : "", reason);
	return EXIT_QEMU_ENDED;
}

/* kstep's exit status for how the run ended (@failed: the engine failed,
 * which it already said). */
static int conclude(struct session *s, const struct engine_result *res, int status, bool failed)
{
	if (failed)
		return EXIT_FAILED;
	switch (res->end) {
	case ENGINE_END_OOPS:
		return EXIT_KERNEL_DIED;
	case ENGINE_END_INTERRUPTED:
		info("interrupted: the trace holds everything up to here");
		return EXIT_INTERRUPTED;
	case ENGINE_END_GUEST_EXITED:
		return guest_ending(s, status);
	default:
		return EXIT_DONE;
	}
}

/* How the recorded backtraces ended: whole, or cut short and why. */
static void print_bt_ends(struct session *s, const struct engine_result *res)
{
	const struct snapshot_agreement *a = engine_unwind_agreement(s->engine);
	uint64_t whole = 0, cut = 0;

	if (a->compared) {
		char where[128] = "";

		if (a->first_pc)
			sym_format(s->syms, a->first_pc, where, sizeof(where));
		fprintf(stdout, "unwinders: cfi and frame pointers agreed on %" PRIu64 " of %" PRIu64 " backtraces%s%s\n",
			a->agreed, a->compared, a->first_pc ? "; first difference at " : "", where);
	}
	for (int i = 0; i < UNWIND_NENDS; i++)
		*(unwind_end_reliable(i) ? &whole : &cut) += res->bt_ends[i];
	if (!whole && !cut)
		return;
	fprintf(stdout, "backtraces: %" PRIu64 " whole, %" PRIu64 " cut short (", whole, cut);
	for (int i = 0, first = 1; i < UNWIND_NENDS; i++)
		if (res->bt_ends[i]) {
			fprintf(stdout, "%s%s %" PRIu64, first ? "" : ", ", unwind_end_name(i), res->bt_ends[i]);
			first = 0;
		}
	fprintf(stdout, ")\n");
}

/* ---- kstep trace ------------------------------------------------------- */

static void trace_usage(FILE *f)
{
	fprintf(f, "Usage: kstep trace [OPTIONS]\n"
		   "Boot the guest (or attach), stop at each probe, write a snapshot of every stop.\n\n"
		   "Probe options:\n"
		   "  -p, --probes SET|FILE  replace the probe set: rx (receive path), rx-full\n"
		   "                         (NIC interrupt to recvfrom), tx, drops, syscalls,\n"
		   "                         oops, none, or a file of 'SPEC [STAGE]' / 'set NAME'\n"
		   "                         lines (default: rx + oops)\n"
		   "  -b, --break 'SPEC [FETCHARG...]'\n"
		   "                         add a probe. SPEC: [p:EVENT ]NAME[+OFF], 0xADDR,\n"
		   "                         MODULE:NAME, or NAME%%return (r:EVENT NAME) for the\n"
		   "                         return with $retval and the call's duration.\n"
		   "                         FETCHARG: [FIELD=]EXPR[:TYPE], EXPR a parameter with\n"
		   "                         ->member .member [N], $argN, $retval, $current, $comm,\n"
		   "                         %%REG, +OFF(EXPR); TYPE u8..u64 s8..s64 x8..x64 string\n"
		   "                         ip4 be16 be32 symbol. e.g.\n"
		   "                         --break 'tcp_v4_rcv len=skb->len dev=skb->dev->name'\n"
		   "  -f, --filter EXPR      keep only the hits of the --break before it (before any\n"
		   "                         --break: of the set's probes it fits) that match:\n"
		   "                         FIELD|EXPR OP VALUE (== != < <= > >= &), && and ||,\n"
		   "                         VALUE a number, an enum name or a \"string\"\n"
		   "      --pcap-filter EXPR keep only the stops whose packet matches EXPR, in\n"
		   "                         tcpdump's filter language (pcap-filter(7)), e.g.\n"
		   "                         'udp and dst port 9' (stops without an skb are kept)\n"
		   "      --snaplen N        keep N bytes of each packet from its IP header on (the\n"
		   "                         pkt field, for --pcap-filter and report --pcap; 80 to\n"
		   "                         256, default 80)\n"
		   "  -m, --max-stops N      stop after N stops\n"
		   "  -d, --duration S       stop after S seconds\n"
		   "\n%s\nThe trace is CTF: read it with 'babeltrace2 DIR'. The guest console is in\n"
		   "DIR/guest/serial.log. A hit on an oops probe freezes the guest for gdb.\n",
		   guest_help);
}

/* The packets, as kstep report shows them, from the trace just written. */
static void print_packets(struct session *s)
{
	struct report *r;
	char err[512];

	if (report_read_dir(&r, s->g->out, NULL, err, sizeof(err))) {
		error("cannot read the trace back for its packet report: %s", err);
		return;
	}
	report_print(r, stdout, 0);
	report_free(r);
}

/* " (N returns, filtered)" after a probe's hits. */
static const char *probe_notes(const struct probe *p, char *out, size_t len)
{
	char ret[48] = "";

	if (p->on_return)
		snprintf(ret, sizeof(ret), "%" PRIu64 " returns", p->returns);
	if (p->on_return || p->filter)
		snprintf(out, len, " (%s%s%s)", ret, p->on_return && p->filter ? ", " : "", p->filter ? "filtered" : "");
	else
		out[0] = '\0';
	return out;
}

static void print_summary(struct session *s, struct probe_set *ps, const struct engine_result *res)
{
	char notes[96];

	fprintf(stdout, "kstep: %" PRIu64 " stops in %.1f s (%.0f/s): %s\n", res->stops, res->seconds,
		res->seconds > 0 ? (double)res->stops / res->seconds : 0.0, end_str(res->end));
	if (s->plugin[0])
		fprintf(stdout, "kstep: the plugin reported %" PRIu64 " hits, kstep read %" PRIu64 "; a vCPU waited for kstep "
				"%" PRIu64 " times (%.3f s)%s\n", res->plugin_reported, res->plugin_hits, res->plugin_waits,
			res->plugin_wait_seconds, res->plugin_regs_missing ? "; some registers are not readable by plugins" : "");
	else if (res->stops)
		fprintf(stdout, "kstep: %.2f ms a stop in kstep (snapshot, backtrace, resume); "
				"the rest is the guest running\n", res->own_seconds * 1000 / (double)res->stops);
	if (res->module_loads)
		fprintf(stdout, "kstep: %" PRIu64 " modules loaded meanwhile; reading the module list took %.0f ms\n",
			res->module_loads, res->module_seconds * 1000);
	fprintf(stdout, "hits per probe:\n");
	for (size_t i = 0; i < ps->n; i++) {
		if (ps->v[i].module && !ps->v[i].addr)
			fprintf(stdout, "         -  %-10s %s (%s)\n", ps->v[i].stage, ps->v[i].spec,
				!s->kmods ? "modules are read with --unwind auto or cfi, on a kernel with modules"
					  : "its module was not loaded, or has no debug info");
		else
			fprintf(stdout, "  %8" PRIu64 "  %-10s %s%s\n", ps->v[i].hits, ps->v[i].stage, ps->v[i].spec,
				probe_notes(&ps->v[i], notes, sizeof(notes)));
	}
	if (res->filtered)
		fprintf(stdout, "kstep: %" PRIu64 " hits did not match their --filter%s and were not recorded\n",
			res->filtered, s->g->eng.pcap ? " or --pcap-filter" : "");
	for (size_t i = 0; i < ps->nskipped; i++)
		fprintf(stdout, "         -  %-10s %s (not in this vmlinux: skipped)\n", "", ps->skipped[i]);
	print_bt_ends(s, res);
	print_packets(s);
	fprintf(stdout, "trace: %s (read it with: kstep report %s, or babeltrace2 %s)\n", s->g->out, s->g->out,
		s->g->out);
	fflush(stdout); /* before the notes that follow on stderr */
}

/* A --filter, and the --break it follows (-1: before any, the set's). */
struct probe_filter {
	const char *text;
	int after_break;
};

/* The filters given after --break @after (-1: before any) on the probes
 * from @first on. */
static int apply_filters(struct session *s, struct probe_set *ps, size_t first, const struct probe_filter *filters,
			 size_t nfilters, int after)
{
	char err[768];
	int ret;

	for (size_t i = 0; i < nfilters; i++)
		if (filters[i].after_break == after &&
		    (ret = probes_set_filter(ps, first, filters[i].text, s->syms, err, sizeof(err)))) {
			error("%s", err);
			return ret;
		}
	return 0;
}

/* The NIC whose driver stages a set takes: the one kstep's own guest has;
 * for a guest kstep did not start, the one --nic names, else NULL: every
 * driver's stages, each placed where its function is (vmlinux, or a module
 * once it loads), so the driver actually bound is the one that is hit. */
static const char *set_nic(const struct guest_opts *g)
{
	return (g->attach || g->domain) && !g->nic_given ? NULL : g->nic;
}

static int add_set(struct session *s, struct probe_set *ps, const char *probes)
{
	const char *nic = set_nic(s->g);
	char err[512];
	int ret;

	if (!probes) {
		if ((ret = probes_add_set(ps, "rx", nic, s->syms)) || (ret = probes_add_set(ps, "oops", nic, s->syms)))
			error("cannot set up the probe sets: %s", strerror(-ret));
		return ret;
	}
	if ((ret = probes_add_set(ps, probes, nic, s->syms)) == -ENOENT) {
		if ((ret = probes_load_file(ps, probes, nic, s->syms, err, sizeof(err))))
			error("%s%s%s%s", err, ret == -ENOENT ? " (nor is it a probe set: have " : "",
			      ret == -ENOENT ? probes_set_names : "", ret == -ENOENT ? ")" : "");
	} else if (ret) {
		error("cannot set up the probe set %s: %s", probes, strerror(-ret));
	}
	return ret;
}

/* Every probe resolved before anything boots, so a typo fails at once:
 * the builtin sets (or a probe file), then each --break, each with the
 * filters that follow it; then the trace's event classes. Names vmlinux
 * lacks are looked for in its modules' debug info (ps->moddir). */
static int resolve_probes(struct session *s, struct probe_set *ps, const char *probes, const char *const *breaks,
			  size_t nbreaks, const struct probe_filter *filters, size_t nfilters)
{
	char err[768];
	int ret;

	if ((ret = add_set(s, ps, probes)) || (ret = apply_filters(s, ps, 0, filters, nfilters, -1)))
		return ret;
	for (size_t i = 0; i < nbreaks; i++) {
		size_t first = ps->n;

		if ((ret = probes_add_spec(ps, breaks[i], NULL, s->syms, err, sizeof(err)))) {
			error("%s", err);
			return ret;
		}
		if ((ret = apply_filters(s, ps, first, filters, nfilters, (int)i)))
			return ret;
	}
	if (!ps->n && !s->g->replay) { /* a replay with none just runs (its pace, make bench) */
		error("no probes to set (--probes none and no --break)");
		return -EINVAL;
	}
	if ((ret = probes_trace_classes(ps, &s->classes, &s->nclasses, err, sizeof(err))))
		error("%s", err);
	return ret;
}

/* kgdb sends no gs base: a field that reads per-CPU data would only ever
 * read as a fault. One the user wrote is refused before the guest runs on;
 * one of a builtin set (the copy stage's pid) is said once and left so. */
static int check_fields_for_stub(struct session *s, const struct probe_set *ps)
{
	bool said = false;

	for (size_t i = 0; target_is_kgdb(s->target) && i < ps->n; i++) {
		const struct probe *p = &ps->v[i];

		for (size_t k = 0; k < p->nargs + p->nret_args; k++) {
			const struct farg *a = k < p->nargs ? p->args[k] : p->ret_args[k - p->nargs];

			if (!farg_needs_percpu(a))
				continue;
			if (!strcmp(p->stage, "user")) {
				error("%s: field '%s' reads per-CPU data ($current, $comm), and kgdb sends no per-CPU "
				      "base (gs_base): it cannot be fetched over kgdb", p->spec, farg_name(a));
				return -EINVAL;
			}
			if (!said)
				info("over kgdb (no per-CPU base) %s's field '%s' and any like it read as (fault)", p->spec,
				     farg_name(a));
			said = true;
		}
	}
	return 0;
}

static int dump_domain(void *ctx, int fd, char *err, size_t errlen)
{
	return lv_dump(ctx, fd, err, errlen);
}

/* The frozen guest's memory beside the trace (DIR/guest/vmcore): crash and drgn
 * read the dying kernel after QEMU is gone. Attached, QMP is found beside
 * a unix gdbstub (make run-guest's); elsewhere there is none to ask. */
static void save_vmcore(struct session *s)
{
	char sock[PATH_MAX], err[1024];

	if (s->lv)
		sock[0] = '\0'; /* through libvirt */
	else if (s->qemu)
		snprintf(sock, sizeof(sock), "%s", qemu_qmp_socket(s->qemu));
	else if (strncmp(s->g->attach, "unix:", 5) || vmcore_qmp_beside(s->g->attach + 5, sock, sizeof(sock))) {
		info("no vmcore: no QMP socket of yours beside %s (kstep dump --qmp PATH -o FILE can write one)",
		     s->g->attach);
		return;
	}
	char core[PATH_MAX + 32];
	int gfd = trace_guest_dir(s->out_dfd);

	snprintf(core, sizeof(core), "%s/" TRACE_GUEST_DIR "/" TRACE_VMCORE, s->g->out);
	info("writing the dying guest's memory to %s", core);
	if (gfd < 0)
		error("no vmcore written (the trace is intact): %s: %s", core, strerror(-gfd));
	else if (s->lv ? vmcore_write_by(dump_domain, s->lv, gfd, TRACE_VMCORE, err, sizeof(err))
		       : vmcore_write(sock, gfd, TRACE_VMCORE, err, sizeof(err)))
		error("no vmcore written (the trace is intact): %s", err);
	else if (s->lv)
		info("vmcore: %s; open it with: crash --kaslr auto %s %s", core, s->g->vmlinux, core);
	else
		info("vmcore: %s; open it with: crash --kaslr auto %s %s   or: drgn -c %s -s %s", core, s->g->vmlinux,
		     core, core, s->g->vmlinux);
	if (gfd >= 0)
		close(gfd);
}

/* A caught oops: where, and how to look at the frozen guest. */
static void say_oops(struct session *s, const struct engine_result *res)
{
	info("%sOOPS caught at %s (event #%" PRIu64 ")%s; the kernel printed its report and is frozen; "
	     "backtrace at %s:\n%s",
	     color ? "\033[1;31m" : "", res->oops_probe->spec, res->oops_seq, color ? "\033[0m" : "",
	     res->oops_probe->spec, res->oops_bt);
	if (s->lv && lv_ends_with_kstep(s->lv)) {
		info("domain '%s' ends with kstep (--keep-guest keeps a dying guest paused for gdb)", lv_name(s->lv));
		return;
	}
	if (s->lv) {
		info("domain '%s' stays paused with its dying kernel: make attach DOMAIN=%s opens a gdbstub and gdb "
		     "on it; virsh destroy %s ends it", lv_name(s->lv), lv_name(s->lv), lv_name(s->lv));
		return;
	}
	if (s->qemu)
		info("attach gdb: make attach   (or: gdb %s -ex 'target remote %s')", s->g->vmlinux,
		     qemu_gdb_socket(s->qemu));
	else
		info("attach gdb to the same stub: gdb %s -ex 'target remote %s'", s->g->vmlinux,
		     s->g->attach + (!strncmp(s->g->attach, "serial:", 7) ? 7 : !strncmp(s->g->attach, "unix:", 5) ? 5 : 0));
	info("in gdb, 'monitor quit' ends the frozen QEMU");
}

/* --pcap-filter EXPR, compiled before anything boots: a bad expression
 * exits 2 with libpcap's reason. Every probe with an skb then decodes its
 * packet, for the filter to look at. */
static struct pcap_filter *pcap_filter_option(const char *cmd, const char *expr, struct probe_set *ps)
{
	struct pcap_filter *f;
	char err[512];

	if (pcap_filter_compile(&f, expr, err, sizeof(err)))
		die_usage(cmd, "%s", err);
	ps->packets = true;
	return f;
}

/* --at SPEC gave several places (a line compiled to two, an inline's
 * instances): the run takes the first, and says which. */
static void several_places(struct session *s, const char *at, const struct probe_set *ps)
{
	char where[192];

	if (ps->n < 2)
		return;
	if (ps->v[0].addr)
		sym_format(s->syms, ps->v[0].addr, where, sizeof(where));
	else
		snprintf(where, sizeof(where), "%s", ps->v[0].spec);
	info("--at %s: %zu places; from the first, %s (kstep probe '%s' lists them)", at, ps->n, where, at);
}

/* --until SPEC: a symbol, or a line (its first statement start). */
static int resolve_until(struct session *s, const struct probe_set *ps, const char *until, uint64_t *addr)
{
	struct line_sites sites;
	char err[512];
	int ret;

	if (!linespec_is_line(until)) {
		ret = sym_resolve(s->syms, until, addr);
		if (ret)
			error("--until %s: %s", until, ret == -ENOENT ? "no such symbol in this vmlinux"
								: "use NAME, NAME+OFF, 0xADDR or a line (FUNC:LINE)");
		return ret;
	}
	if ((ret = linespec_resolve(s->syms, until, ps->srcdir, &sites, err, sizeof(err)))) {
		error("--until %s", err);
		return ret;
	}
	*addr = sites.v[0].addr;
	if (sites.n > 1)
		info("--until %s: %zu places; stepping until the first, 0x%" PRIx64, until, sites.n, *addr);
	linespec_free(&sites);
	return 0;
}

/* A --pcap-filter needs a probe with an skb to filter on. */
static int check_pcap_probes(const struct session *s, const struct probe_set *ps)
{
	for (size_t i = 0; s->g->eng.pcap && i < ps->n; i++)
		if (ps->v[i].packet || ps->v[i].module)
			return 0;
	if (s->g->eng.pcap)
		error("--pcap-filter: none of the probes has an skb argument whose packet it could filter");
	return s->g->eng.pcap ? -EINVAL : 0;
}

static int cmd_trace(int argc, char **argv)
{
	static const struct option longopts[] = {
		GUEST_LONGOPTS,
		{ "probes", required_argument, NULL, 'p' },
		{ "break", required_argument, NULL, 'b' },
		{ "filter", required_argument, NULL, 'f' },
		{ "pcap-filter", required_argument, NULL, OPT_PCAP_FILTER },
		{ "snaplen", required_argument, NULL, OPT_SNAPLEN },
		{ "max-stops", required_argument, NULL, 'm' },
		{ "duration", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	struct guest_opts g;
	struct probe_set ps = { 0 };
	struct engine_result res = { 0 };
	struct session s;
	const char *probes = NULL, *breaks[64];
	struct probe_filter filters[64];
	size_t nbreaks = 0, nfilters = 0;
	int c, ret, status;

	guest_defaults(&g);
	while ((c = getopt_long(argc, argv, "p:b:f:m:d:w:n:a:A:o:qKh", longopts, NULL)) != -1) {
		if (guest_opt("trace ", &g, c, optarg))
			continue;
		switch (c) {
		case 'p':
			probes = optarg;
			break;
		case 'b':
			if (nbreaks == sizeof(breaks) / sizeof(breaks[0]))
				die_usage("trace ", "too many --break options (at most 64)");
			breaks[nbreaks++] = optarg;
			break;
		case 'f':
			if (nfilters == sizeof(filters) / sizeof(filters[0]))
				die_usage("trace ", "too many --filter options (at most 64)");
			filters[nfilters++] = (struct probe_filter){ optarg, (int)nbreaks - 1 };
			break;
		case OPT_PCAP_FILTER:
			pcap_filter_free(g.eng.pcap);
			g.eng.pcap = pcap_filter_option("trace ", optarg, &ps);
			break;
		case OPT_SNAPLEN:
			g.eng.snaplen = (unsigned int)parse_u64("trace ", "--snaplen", optarg, 1);
			if (g.eng.snaplen < PACKET_HEADERS_READ || g.eng.snaplen > PACKET_SNAPLEN_MAX)
				die_usage("trace ", "--snaplen %s: from %d to %d bytes", optarg, PACKET_HEADERS_READ,
					  PACKET_SNAPLEN_MAX);
			break;
		case 'm':
			g.eng.max_stops = parse_u64("trace ", "--max-stops", optarg, 1);
			break;
		case 'd': {
			char *end;

			g.eng.duration = strtod(optarg, &end);
			if (*end || g.eng.duration <= 0)
				die_usage("trace ", "--duration wants seconds above 0, not '%s'", optarg);
			break;
		}
		case 'h':
			trace_usage(stdout);
			return 0;
		default:
			die_usage("trace ", "unknown option");
		}
	}
	if (optind < argc)
		die_usage("trace ", "unexpected argument '%s'", argv[optind]);
	guest_check_opts("trace ", &g);
	guest_finish_defaults(&g);
	if ((ret = session_start(&s, &g)))
		return 1;

	probes_set_paths(&ps, s.syms, g.vmlinux, g.moddir, g.srcdir);
	if (resolve_probes(&s, &ps, probes, breaks, nbreaks, filters, nfilters) || check_pcap_probes(&s, &ps))
		goto fail;
	s.ps = &ps; /* probes in modules get their addresses as modules come */
	if (choose_engine(&s, &ps)) {
		probes_free(&ps);
		session_end(&s);
		return EXIT_USAGE;
	}
	if (prepare_out(&s) || boot(&s) || check_fields_for_stub(&s, &ps) || open_trace(&s, "trace"))
		goto fail;
	if (s.plugin[0])
		engine_use_plugin(s.engine, qemu_plugin_chan(s.qemu));
	probes_relocate(&ps, sym_offset(s.syms));
	if (s.lv)
		info("tracing %zu probes on libvirt domain '%s' (%s); Ctrl-C ends it", ps.n, lv_name(s.lv), lv_uri(s.lv));
	else if (g.attach)
		info("tracing %zu probes on the guest at %s; Ctrl-C ends it", ps.n, g.attach);
	else if (g.replay)
		info("tracing %zu probes on a replay of %s (workload %s); Ctrl-C ends it", ps.n, g.replay, g.workload);
	else
		info("tracing %zu probes on a %s guest (workload %s)%s; Ctrl-C ends it", ps.n, s.accel, g.workload,
		     s.plugin[0] ? " with kstep's QEMU plugin" : "");
	ret = engine_trace(s.engine, &ps, &res);
	if (ret)
		error("%s", engine_errmsg(s.engine));
	status = finish_guest(&s, &res);
	print_summary(&s, &ps, &res);
	if (res.end == ENGINE_END_OOPS) {
		say_oops(&s, &res);
		save_vmcore(&s);
	}
	/* Hits the plugin sent that kstep never read: the trace lacks them. */
	if (s.plugin[0] && res.plugin_reported > res.plugin_hits) {
		error("the plugin reported %" PRIu64 " hits and kstep read %" PRIu64 ": the trace lacks %" PRIu64,
		      res.plugin_reported, res.plugin_hits, res.plugin_reported - res.plugin_hits);
		ret = -EIO;
	}
	/* The trace is kept whichever way it ended. */
	ret = conclude(&s, &res, status, ret != 0);
	probes_free(&ps);
	if (session_end(&s) && ret == EXIT_DONE)
		ret = EXIT_FAILED; /* the domain was not handed back as found */
	return ret;
fail:
	if (s.target)
		finish_guest(&s, &res);
	probes_free(&ps);
	session_end(&s);
	return 1;
}

/* ---- kstep step -------------------------------------------------------- */

/* Deeper than any kernel stack of 16 KiB can nest calls. */
#define MAX_DEPTH_LIMIT 1000

static void step_usage(FILE *f)
{
	fprintf(f, "Usage: kstep step --at SPEC [--count N | --until SPEC | --until-return | --backwards N]\n"
		   "                  [--hits K] [OPTIONS]\n"
		   "At the K-th hit of SPEC, single-step and record a snapshot (with the\n"
		   "instruction, disassembled) at every instruction.\n\n"
		   "  -t, --at SPEC          NAME, NAME+OFFSET or 0xADDRESS\n"
		   "  -c, --count N          stop after N instructions (also --instructions N)\n"
		   "  -u, --until SPEC       stop when SPEC's instruction is reached (recorded, the last)\n"
		   "  -r, --until-return     stop when the function returns to its caller\n"
		   "                         (SPEC must be a function's first instruction)\n"
		   "  -d, --max-depth N      step into calls only N deep below where stepping began\n"
		   "                         (0: none); a deeper call runs whole to its return and is\n"
		   "                         recorded as one step at its first instruction, marked\n"
		   "                         stepped-over (its instructions are not counted)\n"
		   "  -k, --hits K           start at the K-th hit (default 1)\n"
		   "  -f, --filter EXPR      count only the hits that match (see kstep trace --help),\n"
		   "                         e.g. --at 'udp_rcv' --filter 'skb->len > 100'\n"
		   "      --pcap-filter EXPR count only the hits whose packet matches EXPR\n"
		   "                         (tcpdump's language), e.g. --at ip_rcv --pcap-filter icmp\n"
		   "      --backwards N      (with --replay) the N instructions before the hit instead:\n"
		   "                         one replay finds it, a second stops N instructions short\n"
		   "                         and steps them; the trace reads forward and ends at the\n"
		   "                         instruction before the hit's\n"
		   "\n%s",
		   guest_help);
}

/* Where the instructions went: the functions that took the most. */
static void print_profile(struct engine *e)
{
	const struct engine_fn_steps *fs;
	size_t n = engine_step_profile(e, &fs), shown = n < PROFILE_LINES ? n : PROFILE_LINES;
	uint64_t rest = 0;

	if (!n)
		return;
	fprintf(stdout, "instructions per function:\n");
	for (size_t i = 0; i < shown; i++)
		fprintf(stdout, "  %8" PRIu64 "  %s\n", fs[i].steps, fs[i].name);
	for (size_t i = shown; i < n; i++)
		rest += fs[i].steps;
	if (rest)
		fprintf(stdout, "  %8" PRIu64 "  (%zu more functions)\n", rest, n - shown);
}

/* ---- replays: a point found once is found again ------------------------- */

/* Start the replay over: a fresh QEMU at the recording's first instruction,
 * run to start_kernel, its engine writing into the same trace. The first
 * replay only found where to go. */
static int replay_again(struct session *s)
{
	char err[512];
	int ret;

	drop_guest(s);
	if (ftruncate(s->serial_fd, 0) == 0) /* the console of this replay, the same again */
		lseek(s->serial_fd, 0, SEEK_SET);
	if ((ret = launch_to_start_kernel(s, "tcg"))) {
		if (s->engine)
			error("%s", engine_errmsg(s->engine));
		return ret;
	}
	engine_free(s->engine);
	s->engine = NULL;
	if ((ret = trace_set_desc(s->trace, target_desc(s->target)))) {
		error("the second replay's QEMU describes its registers otherwise than the first's");
		return ret;
	}
	if ((ret = engine_new(&s->engine, s->target, s->syms, s->trace, &s->g->eng, err, sizeof(err))))
		error("%s", err);
	return ret;
}

/* The @hits-th hit of @at: where it comes in the replay (instructions run). */
static int find_point(struct session *s, const struct probe *at, uint64_t hits, uint64_t *icount,
		      struct engine_result *res)
{
	int ret;

	info("replay 1: looking for hit %" PRIu64 " of %s", hits, at->spec);
	if ((ret = engine_find_hit(s->engine, at, hits, res)))
		error("%s", engine_errmsg(s->engine));
	else if (res->end != ENGINE_END_NONE)
		ret = -EINTR;
	*icount = engine_icount(s->engine);
	return ret;
}

/* In a fresh replay, to the moment @icount instructions have run. */
static int replay_to(struct session *s, uint64_t icount, struct engine_result *res)
{
	int ret;

	if ((ret = replay_again(s)))
		return ret;
	if (engine_icount(s->engine) > icount) {
		error("that point comes %" PRIu64 " instructions after start_kernel, where kstep takes the replay "
		      "over: go back less far", icount);
		return -ERANGE;
	}
	if ((ret = qmp_replay_break(s->clock, icount))) {
		error("%s", qmp_errmsg(s->clock));
		return ret;
	}
	if ((ret = engine_run_on(s->engine, res)))
		error("%s", engine_errmsg(s->engine));
	else if (res->end != ENGINE_END_NONE)
		return -EINTR;
	else if (engine_icount(s->engine) != icount) {
		error("the replay stopped at instruction %" PRIu64 ", not %" PRIu64 ": it diverged from the recording",
		      engine_icount(s->engine), icount);
		ret = -EIO;
	}
	return ret;
}

/* --backwards N: the N instructions before the hit, found in one replay
 * and stepped through in a second one that stops N instructions short. */
static int step_backwards(struct session *s, const struct probe *at, uint64_t hits, uint64_t n,
			  struct engine_result *res)
{
	uint64_t point, end;
	int ret;

	if ((ret = find_point(s, at, hits, &point, res)))
		return ret;
	info("hit %" PRIu64 " of %s after %" PRIu64 " instructions; replay 2: from instruction %" PRIu64
	     ", %" PRIu64 " steps", hits, at->spec, point, point > n ? point - n : 0, n);
	if (point < n) {
		error("--backwards %" PRIu64 ": only %" PRIu64 " instructions come before that hit", n, point);
		return -ERANGE;
	}
	if ((ret = replay_to(s, point - n, res)))
		return ret;
	if ((ret = engine_step(s->engine, at, 0, n, false, res))) {
		error("%s", engine_errmsg(s->engine));
		return ret;
	}
	/* The last step recorded stands before the hit's instruction. */
	if (res->end == ENGINE_END_COUNT && !qmp_icount(s->clock, &end) && end != point - 1)
		info("the steps ended at instruction %" PRIu64 ", not %" PRIu64 ": %" PRIu64 " of them entered an "
		     "interrupt, which runs no instruction", end, point - 1, point - 1 - end);
	return 0;
}

static int cmd_step(int argc, char **argv)
{
	static const struct option longopts[] = {
		GUEST_LONGOPTS,
		{ "at", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'c' },
		{ "instructions", required_argument, NULL, 'c' },
		{ "until-return", no_argument, NULL, 'r' },
		{ "hits", required_argument, NULL, 'k' },
		{ "filter", required_argument, NULL, 'f' },
		{ "pcap-filter", required_argument, NULL, OPT_PCAP_FILTER },
		{ "until", required_argument, NULL, 'u' },
		{ "max-depth", required_argument, NULL, 'd' },
		{ "backwards", required_argument, NULL, OPT_BACKWARDS },
		{ NULL, 0, NULL, 0 },
	};
	struct guest_opts g;
	struct engine_result res = { 0 };
	uint64_t backwards = 0;
	int max_depth = -1;
	struct session s;
	const char *at = NULL, *filter = NULL, *until = NULL;
	uint64_t until_addr = 0;
	uint64_t count = 0, hits = 1;
	struct probe_set atp = { 0 };  /* --at, as a probe: it may be in a module */
	bool until_return = false;
	char err[512];
	int c, ret, status;

	guest_defaults(&g);
	while ((c = getopt_long(argc, argv, "t:c:rk:f:u:d:w:n:a:A:o:qKh", longopts, NULL)) != -1) {
		if (guest_opt("step ", &g, c, optarg))
			continue;
		switch (c) {
		case 't':
			at = optarg;
			break;
		case 'c':
			count = parse_u64("step ", "--count", optarg, 1);
			break;
		case 'r':
			until_return = true;
			break;
		case 'k':
			hits = parse_u64("step ", "--hits", optarg, 1);
			break;
		case 'f':
			filter = optarg;
			break;
		case OPT_PCAP_FILTER:
			pcap_filter_free(g.eng.pcap);
			g.eng.pcap = pcap_filter_option("step ", optarg, &atp);
			break;
		case 'u':
			until = optarg;
			break;
		case 'd':
			if (parse_u64("step ", "--max-depth", optarg, 0) > MAX_DEPTH_LIMIT)
				die_usage("step ", "--max-depth %s: at most %d", optarg, MAX_DEPTH_LIMIT);
			max_depth = (int)parse_u64("step ", "--max-depth", optarg, 0);
			break;
		case OPT_BACKWARDS:
			backwards = parse_u64("step ", "--backwards", optarg, 1);
			break;
		case 'h':
			step_usage(stdout);
			return 0;
		default:
			die_usage("step ", "unknown option");
		}
	}
	if (optind < argc)
		die_usage("step ", "unexpected argument '%s'", argv[optind]);
	guest_check_opts("step ", &g);
	if (!at)
		die_usage("step ", "--at SPEC is required");
	if (backwards && !g.replay)
		die_usage("step ", "--backwards needs a replay (--replay DIR, from kstep record): a live guest cannot go back");
	if (backwards && (count || until_return || until || max_depth >= 0))
		die_usage("step ", "--backwards N steps the N instructions before --at: not with --count, --until, "
			       "--until-return or --max-depth");
	if (!count && !until_return && !until && !backwards)
		die_usage("step ", "say how far to step: --count N, --until SPEC, --until-return or --backwards N");
	guest_finish_defaults(&g);
	if ((ret = session_start(&s, &g)))
		return 1;
	probes_set_paths(&atp, s.syms, g.vmlinux, g.moddir, g.srcdir);
	if (probes_add_spec(&atp, at, "step", s.syms, err, sizeof(err)) ||
	    (filter && probes_set_filter(&atp, 0, filter, s.syms, err, sizeof(err)))) {
		error("%s", err);
		goto fail;
	}
	if (check_pcap_probes(&s, &atp))
		goto fail;
	several_places(&s, at, &atp);
	if (until && resolve_until(&s, &atp, until, &until_addr))
		goto fail;
	s.ps = &atp;
	if (prepare_out(&s) || boot(&s) || check_fields_for_stub(&s, &atp) || open_trace(&s, "step"))
		goto fail;
	probes_relocate(&atp, sym_offset(s.syms));
	if (!atp.v[0].addr) {
		info("waiting for module %s to be loaded", atp.v[0].module);
		if ((ret = engine_run_to_modules(s.engine, &atp, &res)) || res.end != ENGINE_END_NONE) {
			if (ret)
				error("%s", engine_errmsg(s.engine));
			else
				error("the guest ended before module %s was loaded (or has no debug info for it)",
				      atp.v[0].module);
			/* Nothing was stepped: a failure, unless the user ended it. */
			status = finish_guest(&s, &res);
			ret = !ret && res.end == ENGINE_END_INTERRUPTED ? conclude(&s, &res, status, false) : EXIT_FAILED;
			goto out;
		}
	}
	if (backwards) {
		if ((ret = step_backwards(&s, &atp.v[0], hits, backwards, &res)) && !s.engine)
			goto fail; /* the second replay never started */
	} else {
		info("waiting for hit %" PRIu64 " of %s, then stepping%s%s%s", hits, at,
		     until_return ? " until it returns" : "", until ? " until " : "", until ? until : "");
		engine_step_until(s.engine, until_addr ? until_addr + sym_offset(s.syms) : 0);
		engine_step_max_depth(s.engine, max_depth);
		if ((ret = engine_step(s.engine, &atp.v[0], hits, count, until_return, &res)))
			error("%s", engine_errmsg(s.engine));
	}
	status = finish_guest(&s, &res);
	fprintf(stdout, "kstep: %" PRIu64 " instructions in %.2f s (%.0f/s): %s\n", res.steps, res.seconds,
		res.seconds > 0 ? (double)res.steps / res.seconds : 0.0, end_str(res.end));
	if (res.null_steps)
		fprintf(stdout, "kstep: the stub reported %" PRIu64 " steps that executed nothing; "
				"they were stepped again and not recorded\n", res.null_steps);
	if (res.stepped_over)
		fprintf(stdout, "kstep: %" PRIu64 " calls deeper than --max-depth %d ran whole (one step each)\n",
			res.stepped_over, max_depth);
	print_profile(s.engine);
	print_bt_ends(&s, &res);
	fprintf(stdout, "trace: %s (read it with: babeltrace2 %s)\n", g.out, g.out);
	fflush(stdout);
	ret = conclude(&s, &res, status, ret != 0);
out:
	probes_free(&atp);
	if (session_end(&s) && ret == EXIT_DONE)
		ret = EXIT_FAILED; /* the domain was not handed back as found */
	return ret;
fail:
	if (s.target)
		finish_guest(&s, &res);
	probes_free(&atp);
	session_end(&s);
	return EXIT_FAILED;
}

/* ---- kstep why ------------------------------------------------------------ */

static void why_usage(FILE *f)
{
	fprintf(f, "Usage: kstep why --replay DIR --at SPEC (--addr EXPR | --operand) [--hits K] [OPTIONS]\n"
		   "       kstep why --replay DIR --drop [--filter EXPR] [--hits K] [OPTIONS]\n"
		   "Which instruction last wrote a memory location (or set a register) before a\n"
		   "point of a replay: one replay runs to the K-th hit of SPEC and finds where\n"
		   "EXPR lies; a second runs to that point again with a write watchpoint on it\n"
		   "(a register: steps the --window instructions before it). Every write is an\n"
		   "event in the trace (probe \"write\", its snapshot taken right after the\n"
		   "writing instruction); the last one is printed with its backtrace.\n\n"
		   "  -t, --at SPEC          NAME, NAME+OFFSET or 0xADDRESS\n"
		   "  -x, --addr EXPR        the location, as a fetch argument names it at SPEC:\n"
		   "                         skb->len, +8(%%rdi), $arg1->next, a global (see kstep\n"
		   "                         trace --help); at most 8 bytes are watched; or %%REG:\n"
		   "                         the instruction that last set that register\n"
		   "      --operand          the memory operand of the instruction at SPEC (an oops's\n"
		   "                         RIP): a constant address is said to be one, else where\n"
		   "                         the register it is made of came from\n"
		   "      --window N         how far back a register is looked for (default 2000\n"
		   "                         instructions)\n"
		   "      --drop             the K-th dropped packet (kfree_skb_reason freeing a\n"
		   "                         network packet): the branch that sent it to the drop\n"
		   "                         (the one after which its function could no longer\n"
		   "                         return without a drop), its source line, what it\n"
		   "                         compared and where each value came from (a call's\n"
		   "                         return, a load: then the last write to that memory);\n"
		   "                         one replay finds the drop, a second steps the\n"
		   "                         function that dropped, its calls stepped over\n"
		   "      --all              with --drop: every drop in the recording in turn, from\n"
		   "                         the K-th on (two replays each)\n"
		   "  -k, --hits K           the K-th hit (default 1)\n"
		   "  -f, --filter EXPR      count only the hits that match (with --drop: on the drop's\n"
		   "                         fields reason, dport, saddr, len..., joined by && only)\n"
		   "\n%s",
		   guest_help);
}

/* The location @text names at the probe @at, compiled against vmlinux. */
static int compile_location(struct session *s, const struct probe *at, const char *text, struct farg **out)
{
	const struct sym *fn = sym_lookup_addr(s->syms, at->addr);
	struct farg_scope scope = { .addr = at->addr, .at_entry = at->at_entry, .func = fn ? fn->addr : at->addr };
	char err[512];
	int ret = farg_compile(out, text, s->syms, &scope, err, sizeof(err));

	if (ret) {
		error("--addr %s", err + strlen("fetch argument "));
	} else if (!farg_in_memory(*out)) {
		error("--addr %s is not in memory at %s (a register, or a value computed from one): name a location, "
		      "e.g. a field a pointer points to (skb->len)", text, at->spec);
		ret = -EINVAL;
	}
	return ret;
}

static void print_last_write(const char *what, const struct engine_write *w, uint64_t now, const char *out)
{
	fprintf(stdout, "kstep: the last write to %s, %" PRIu64 " writes seen:\n", what, w->writes);
	fprintf(stdout, "  at instruction %" PRIu64 ": %s  %s\n", w->icount, w->where,
		w->insn[0] ? w->insn : "(the instruction before this address)");
	fprintf(stdout, "  it left 0x%" PRIx64 "; at the point it holds 0x%" PRIx64 "%s\n", w->value, now,
		w->value == now ? "" : " (different: a device wrote it after, or a wider write)");
	fprintf(stdout, "  backtrace there:\n%s", w->bt);
	fprintf(stdout, "trace: %s (every write, the last one last; read it with: babeltrace2 %s)\n", out, out);
}

/* The memory behind @expr at the point: its last store, in a second replay
 * with a write watchpoint on it. */
static int why_memory(struct session *s, const struct probe *at, uint64_t point, const char *text,
		      const struct farg *expr, struct engine_result *res)
{
	struct engine_write w;
	char what[256];
	uint64_t addr, value;
	size_t len;
	int ret;

	if ((ret = engine_location(s->engine, expr, &addr, &len, &value))) {
		error("--addr %s at %s: its memory cannot be read (a pointer on the way is not mapped)", text, at->spec);
		return ret;
	}
	info("%s is 0x%" PRIx64 " (%zu bytes, holding 0x%" PRIx64 ") at %s, instruction %" PRIu64
	     "; replay 2: watching it up to there", text, addr, len, value, at->spec, point);
	if ((ret = replay_again(s)))
		return ret;
	if ((ret = qmp_replay_break(s->clock, point))) {
		error("%s", qmp_errmsg(s->clock));
		return ret;
	}
	if ((ret = engine_last_write(s->engine, addr, len, &w, res))) {
		error("%s", engine_errmsg(s->engine));
		return ret;
	}
	if (res->end != ENGINE_END_NONE || engine_icount(s->engine) != point) {
		error("the second replay did not come back to instruction %" PRIu64 " (it stopped at %" PRIu64 ")", point,
		      engine_icount(s->engine));
		return -EIO;
	}
	snprintf(what, sizeof(what), "%s (0x%" PRIx64 ", %zu bytes)", text, addr, len);
	if (!w.writes)
		fprintf(stdout, "kstep: no instruction wrote %s between start_kernel and the point: it holds what it "
				"held then, or a device wrote it (DMA is not watched)\n", what);
	else
		print_last_write(what, &w, value, s->g->out);
	return 0;
}

/* Register @reg at the point: the last instruction that set it within the
 * @window instructions before, stepped through in a second replay. */
static int why_register(struct session *s, uint64_t point, const char *reg, uint64_t window,
			struct engine_result *res)
{
	uint64_t start = point > window ? point - window : 0;
	struct engine_write w;
	char what[64];
	int ret;

	info("replay 2: stepping the %" PRIu64 " instructions before it, watching %%%s", point - start, reg);
	if ((ret = replay_to(s, start, res)))
		return ret;
	if ((ret = engine_last_reg_write(s->engine, reg, point, &w, res))) {
		error("%s", engine_errmsg(s->engine));
		return ret;
	}
	if (res->end != ENGINE_END_NONE) {
		error("the replay ended before coming back to the point");
		return -EIO;
	}
	snprintf(what, sizeof(what), "%%%s", reg);
	if (!w.writes)
		fprintf(stdout, "kstep: no instruction set %s in the %" PRIu64 " instructions before the point: "
				"look further back with --window\n", what, point - start);
	else
		print_last_write(what, &w, w.value, s->g->out); /* a register: its value at the point */
	return 0;
}

/* --operand: where the address of the memory operand of the instruction at
 * the point came from (an oops's RIP: the bad pointer). */
static int why_operand(struct session *s, const struct probe *at, uint64_t point, uint64_t window,
		       struct engine_result *res)
{
	struct disasm_mem m;
	char insn[128];

	if (!engine_mem_operand(s->engine, &m, insn, sizeof(insn))) {
		error("the instruction at %s (%s) has no memory operand", at->spec, insn);
		return -EINVAL;
	}
	if ((!m.base[0] || !strcmp(m.base, "rip")) && !m.index[0]) {
		fprintf(stdout, "kstep: the address of %s at %s is a constant of the instruction itself (%s0x%" PRIx64
				"): no store and no register made it; it was compiled in\n",
			insn, at->spec, m.base[0] ? "rip+" : "", (uint64_t)m.disp);
		return 0;
	}
	fprintf(stdout, "kstep: the address of %s at %s is made of %%%s%s%s: where %%%s came from follows\n", insn,
		at->spec, m.base[0] ? m.base : m.index, m.base[0] && m.index[0] ? " and %" : "", m.base[0] ? m.index : "",
		m.base[0] ? m.base : m.index);
	return why_register(s, point, m.base[0] ? m.base : m.index, window, res);
}

/* How far --drop steps the dropping function, at most (its own
 * instructions: the calls it makes are one step each). */
#define DROP_STEPS_MAX 200000

/* --drop: the drop's probe (the drops set's, on packets with a protocol:
 * network packets, not netlink or boot-time checks), with the user's
 * conditions added. */
static int drop_probe(struct session *s, struct probe_set *ps, const char *filter)
{
	char text[1024], err[512];
	int ret;

	if (filter && strstr(filter, "||")) {
		error("--filter with --drop: conditions joined by && only (they are added to the drop's own)");
		return -EINVAL;
	}
	snprintf(text, sizeof(text), "%s && skb->protocol != 0%s%s", probes_real_drop, filter ? " && " : "",
		 filter ? filter : "");
	if ((ret = probes_add_set(ps, "drops", set_nic(s->g), s->syms)) ||
	    (ret = probes_set_filter(ps, 0, text, s->syms, err, sizeof(err))))
		error("%s", ret == -EINVAL ? err : "this vmlinux has no kfree_skb_reason to catch drops at");
	return ret;
}

/* Where the register a loaded value came from was last written before
 * the load: a fourth replay, watching it. */
static int drop_load_origin(struct session *s, const struct drop_origin *o, struct engine_result *res)
{
	struct engine_write w;
	char what[128];
	int ret;

	info("replay 3: watching 0x%" PRIx64 " (loaded into %%%s) up to instruction %" PRIu64, o->load_addr, o->reg,
	     o->icount);
	if ((ret = replay_again(s)))
		return ret;
	if ((ret = qmp_replay_break(s->clock, o->icount))) {
		error("%s", qmp_errmsg(s->clock));
		return ret;
	}
	if ((ret = engine_last_write(s->engine, o->load_addr, o->load_len, &w, res))) {
		error("%s", engine_errmsg(s->engine));
		return ret;
	}
	snprintf(what, sizeof(what), "0x%" PRIx64 " (what %%%s was loaded from)", o->load_addr, o->reg);
	if (!w.writes)
		fprintf(stdout, "kstep: no instruction wrote %s between start_kernel and the load\n", what);
	else
		print_last_write(what, &w, w.value, s->g->out);
	return 0;
}

/* The most instructions from the call that dropped to kfree_skb_reason's
 * entry (kfree_skb's few, on the way). */
#define DROP_WRAPPER_INSNS 64

/* Invocations of the dropping function stepped at most before the one
 * that dropped (each is its own instructions, its calls one step each). */
#define DROP_INVOCATIONS_MAX 1000

/* The steps of the dropping function from its entry to the call that
 * dropped at instruction @point, in a fresh replay: each time it is
 * entered it is stepped, its calls stepped over, until it returns or
 * reaches that call (the steps end there). The trace keeps every
 * invocation's steps; the last is the one that dropped. -EALREADY when
 * the call was reached before @point: the drop came in the same run of
 * the function as an earlier one (a loop), which kstep does not follow. */
static int step_dropper(struct session *s, uint64_t ret_addr, uint64_t point, struct engine_result *res)
{
	const struct sym *fn = sym_lookup_addr(s->syms, ret_addr);
	struct probe_set fp = { 0 };
	uint64_t n = 0, now = 0;
	char err[512];
	int ret;

	info("replay 2: stepping %s each time it runs, its calls stepped over, until it drops", fn->name);
	if ((ret = probes_add_spec(&fp, fn->name, "why", s->syms, err, sizeof(err)))) {
		error("%s", err);
		return ret;
	}
	if (!(ret = replay_again(s)))
		do {
			engine_step_max_depth(s->engine, 0);
			engine_step_until(s->engine, ret_addr - 5); /* the call: five bytes before its return */
			if ((ret = engine_step(s->engine, &fp.v[0], 1, DROP_STEPS_MAX, true, res)))
				error("%s", engine_errmsg(s->engine));
		} while (!ret && res->end == ENGINE_END_RETURNED && ++n < DROP_INVOCATIONS_MAX);
	/* At the call a few instructions before the drop's entry (through a
	 * wrapper such as kfree_skb), or at an earlier drop's? */
	if (!ret && res->end == ENGINE_END_UNTIL && !qmp_icount(s->clock, &now) && now + DROP_WRAPPER_INSNS < point) {
		error("this drop came in the same run of %s as an earlier one, after it (a loop): kstep steps to the "
		      "first and does not follow the function further", fn->name);
		ret = -EALREADY;
	}
	if (!ret && res->end != ENGINE_END_UNTIL) {
		error("replay 2 did not come back to the drop in %s (%s)", fn->name,
		      n == DROP_INVOCATIONS_MAX ? "it ran too many times before it" : "the replay ended first");
		ret = -EIO;
	}
	probes_free(&fp);
	return ret;
}

/* The drop found at the point the guest stands at: which branch led to
 * it, what it compared, where the values came from. */
static int explain_drop(struct session *s, struct probe *drop, uint64_t k, uint64_t point, struct engine_result *res)
{
	struct drop_answer a;
	struct disasm *dis;
	uint64_t ret_addr;
	char err[512], tree[4096];
	int ret;

	if ((ret = engine_record_hit(s->engine, drop, res))) {
		error("%s", engine_errmsg(s->engine));
		return ret;
	}
	if ((ret = dropwhy_frame(s->g->out, s->syms, &ret_addr, err, sizeof(err)))) {
		error("%s", err);
		return ret;
	}
	info("drop %" PRIu64 " at instruction %" PRIu64 ", called from %s", k, point,
	     sym_lookup_addr(s->syms, ret_addr)->name);
	if ((ret = step_dropper(s, ret_addr, point, res)))
		return ret;
	if (disasm_open(&dis))
		return -ENOMEM;
	ret = dropwhy_explain(s->g->out, s->syms, dis, s->g->eng.icount_shift, &a, err, sizeof(err));
	disasm_close(dis);
	if (ret) {
		error("%s", err);
		return ret;
	}
	fprintf(stdout, "%sdrop %" PRIu64 " (instruction %" PRIu64 ")\n", k > 1 ? "\n" : "", k, point);
	dropwhy_print(&a, files_kernel_source(s->g->vmlinux, tree, sizeof(tree)), stdout);
	for (size_t i = 0; i < a.noperands && !ret; i++)
		if (a.operands[i].kind == ORIGIN_LOAD)
			ret = drop_load_origin(s, &a.operands[i], res);
	return ret;
}

/* --drop: the @hits-th drop, or with @all every drop from it on, each in
 * replays of its own. */
static int why_drop(struct session *s, struct probe *drop, uint64_t hits, bool all, struct engine_result *res)
{
	uint64_t point, k = hits, skipped = 0;
	int ret;

	if ((ret = find_point(s, drop, hits, &point, res)))
		return ret;
	while (((ret = explain_drop(s, drop, k, point, res)) == 0 || (ret == -EALREADY && all)) && all) {
		skipped += ret == -EALREADY;
		k++;
		info("replay 1: looking for drop %" PRIu64, k);
		if ((ret = replay_again(s)))
			break;
		ret = engine_find_hit(s->engine, drop, k, res);
		if (ret == -ECHILD || ret == -ECONNRESET || res->end == ENGINE_END_GUEST_EXITED) {
			fprintf(stdout, "\nkstep: the recording has %" PRIu64 " drops%s; %" PRIu64 " not explained\n",
				k - 1, hits > 1 ? " (counted from the first)" : "", skipped);
			return skipped ? -EALREADY : 0;
		}
		if (ret || res->end != ENGINE_END_NONE) {
			error("%s", ret ? engine_errmsg(s->engine) : "the replay ended early");
			return ret ? ret : -EINTR;
		}
		point = engine_icount(s->engine);
	}
	return ret;
}

static int cmd_why(int argc, char **argv)
{
	static const struct option longopts[] = {
		GUEST_LONGOPTS,
		{ "at", required_argument, NULL, 't' },
		{ "addr", required_argument, NULL, 'x' },
		{ "hits", required_argument, NULL, 'k' },
		{ "filter", required_argument, NULL, 'f' },
		{ "operand", no_argument, NULL, OPT_OPERAND },
		{ "window", required_argument, NULL, OPT_WINDOW },
		{ "drop", no_argument, NULL, OPT_DROP },
		{ "all", no_argument, NULL, OPT_ALL },
		{ NULL, 0, NULL, 0 },
	};
	struct guest_opts g;
	struct engine_result res = { 0 };
	struct probe_set atp = { 0 };
	struct farg *expr = NULL;
	const char *at = NULL, *addr = NULL, *filter = NULL, *reg = NULL;
	uint64_t hits = 1, window = WHY_WINDOW, point = 0;
	bool operand = false, drop = false, all = false;
	struct session s;
	char err[512];
	int c, ret;

	guest_defaults(&g);
	g.out = "why.out";
	while ((c = getopt_long(argc, argv, "t:x:k:f:w:n:a:A:o:qKh", longopts, NULL)) != -1) {
		if (guest_opt("why ", &g, c, optarg))
			continue;
		switch (c) {
		case 't':
			at = optarg;
			break;
		case 'x':
			addr = optarg;
			break;
		case 'k':
			hits = parse_u64("why ", "--hits", optarg, 1);
			break;
		case 'f':
			filter = optarg;
			break;
		case OPT_OPERAND:
			operand = true;
			break;
		case OPT_DROP:
			drop = true;
			break;
		case OPT_ALL:
			all = true;
			break;
		case OPT_WINDOW:
			window = parse_u64("why ", "--window", optarg, 1);
			break;
		case 'h':
			why_usage(stdout);
			return 0;
		default:
			die_usage("why ", "unknown option");
		}
	}
	if (optind < argc)
		die_usage("why ", "unexpected argument '%s'", argv[optind]);
	guest_check_opts("why ", &g);
	if (!g.replay)
		die_usage("why ", "--replay DIR is required: only a replay can be run up to the same point again "
			       "(make one with kstep record)");
	if (all && !drop)
		die_usage("why ", "--all goes with --drop: every drop in the recording");
	if (drop && (at || addr || operand))
		die_usage("why ", "--drop finds its own point (kfree_skb_reason): not with --at, --addr or --operand");
	if (!drop && (!at || !addr == !operand))
		die_usage("why ", "--at SPEC and one of --addr EXPR or --operand (or --drop) are required");
	if (addr && addr[0] == '%' && addr[1] && strspn(addr + 1, "abcdefghijklmnopqrstuvwxyz0123456789") == strlen(addr + 1))
		reg = addr + 1; /* a register: the instruction that set it */
	guest_finish_defaults(&g);
	if (session_start(&s, &g))
		return EXIT_FAILED;
	probes_set_paths(&atp, s.syms, g.vmlinux, g.moddir, g.srcdir);
	if (drop ? drop_probe(&s, &atp, filter) != 0
		 : probes_add_spec(&atp, at, "why", s.syms, err, sizeof(err)) ||
			   (filter && probes_set_filter(&atp, 0, filter, s.syms, err, sizeof(err)))) {
		if (!drop)
			error("%s", err);
		ret = EXIT_FAILED;
		goto out;
	}
	if (!drop)
		several_places(&s, at, &atp);
	if (drop && probes_trace_classes(&atp, &s.classes, &s.nclasses, err, sizeof(err))) {
		error("%s", err);
		ret = EXIT_FAILED;
		goto out;
	}
	s.ps = &atp;
	if ((addr && !reg && compile_location(&s, &atp.v[0], addr, &expr)) || prepare_out(&s) || boot(&s) ||
	    open_trace(&s, "why")) {
		ret = EXIT_FAILED;
		goto out;
	}
	probes_relocate(&atp, sym_offset(s.syms));
	if (drop)
		ret = why_drop(&s, &atp.v[0], hits, all, &res);
	else if (!(ret = find_point(&s, &atp.v[0], hits, &point, &res)))
		ret = operand ? why_operand(&s, &atp.v[0], point, window, &res)
		      : reg   ? why_register(&s, point, reg, window, &res)
			      : why_memory(&s, &atp.v[0], point, addr, expr, &res);
	ret = ret ? EXIT_FAILED : EXIT_DONE;
	if (res.end == ENGINE_END_INTERRUPTED)
		ret = EXIT_INTERRUPTED;
out:
	if (s.target)
		finish_guest(&s, &res);
	farg_free(expr);
	probes_free(&atp);
	session_end(&s);
	return ret;
}

/* ---- kstep record --------------------------------------------------------- */

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
static int cmd_record(int argc, char **argv)
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
			die_usage("record ", "unknown option");
	}
	if (optind < argc)
		die_usage("record ", "unexpected argument '%s'", argv[optind]);
	if (!strcmp(g.workload, "shell"))
		die_usage("record ", "--workload shell waits for a person at the console: record a workload that ends");
	if (g.smp && strcmp(g.smp, "1"))
		die_usage("record ", "--smp %s: QEMU records and replays one vCPU only", g.smp);
	if (!strcmp(g.accel, "kvm"))
		die_usage("record ", "--accel kvm: a recording runs under TCG (QEMU counts the instructions that place "
				     "every input), which KVM cannot");
	if (!strcmp(g.nic, "e1000") && !qemu_e1000_replays()) {
		if (g.nic_given)
			info("this QEMU's e1000 cannot switch off its interrupt mitigation timers: replays with "
			     "breakpoints may stall at e1000_clean_rx_irq (--nic virtio replays)");
		else {
			info("this QEMU's e1000 cannot switch off its interrupt mitigation timers, on which replays "
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

/* ---- main ---------------------------------------------------------------- */

static int cmd_probe(int argc, char **argv)
{
	struct guest_opts g;

	guest_defaults(&g);
	guest_finish_defaults(&g);
	return probe_main(argc, argv, g.vmlinux);
}

static int cmd_oops(int argc, char **argv)
{
	struct guest_opts g;

	guest_defaults(&g);
	guest_finish_defaults(&g);
	return oops_main(argc, argv, g.vmlinux, &interrupted);
}

/* A script of the tree's guest/ in place of kstep, with the same arguments. */
static int exec_guest_script(const char *name, char **argv)
{
	char tree[PATH_MAX - 64], script[PATH_MAX];
	bool installed;
	int n = 0;

	find_tree(tree, sizeof(tree), &installed);
	snprintf(script, sizeof(script), "%s/guest/%s", tree, name);
	while (argv[n])
		n++;
	char *args[n + 3];

	args[0] = "bash";
	args[1] = script;
	for (int i = 1; i <= n; i++)
		args[i + 1] = argv[i];
	execv("/bin/bash", args);
	error("cannot run %s: %s", script, strerror(errno));
	return EXIT_FAILED;
}

static int cmd_report(int argc, char **argv)
{
	return report_main(argc, argv, &interrupted);
}

static int cmd_diff(int argc, char **argv)
{
	return diff_main(argc, argv, &interrupted);
}

static int cmd_build_images(int argc, char **argv)
{
	(void)argc;
	return exec_guest_script("build-images.sh", argv);
}

static int cmd_help(int argc, char **argv);

/* Every command: its name, what it does (kstep --help) and its entry,
 * called with the command's own argv (argv[0] is its name). */
static const struct command {
	const char *name, *summary;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "trace", "stop at each receive-path stage and record snapshots", cmd_trace },
	{ "step", "single-step a function, recording every instruction", cmd_step },
	{ "probe", "where probes can go (lines, inlines) and what they can fetch, from the\n"
		   "               debug info with no guest (--lines, --vars)", cmd_probe },
	{ "oops", "decode kernel oops reports in a log (file or stdin)", cmd_oops },
	{ "report", "what happened to each packet in a trace (also --netdev-times, --json);\n"
		    "               a step trace's call tree, flame graph, annotated function", cmd_report },
	{ "diff", "where two step traces of the same entry point first diverge", cmd_diff },
	{ "dump", "write a guest's memory as a vmcore for crash and drgn", dump_main },
	{ "record", "run the guest once under QEMU's record mode, to replay it exactly\n"
		    "               (trace|step --replay DIR; step --backwards N)", cmd_record },
	{ "why", "in a replay: the last instruction that wrote a location before a point", cmd_why },
	{ "build-images", "build the guest images an installed kstep uses (--system: for all users)",
	  cmd_build_images },
	{ "help", "show a command's manual page: kstep help COMMAND", cmd_help },
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: kstep COMMAND [OPTIONS]\n"
		   "Trace a Linux guest's network receive path over QEMU's gdbstub.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'kstep COMMAND --help' shows a command's options, 'kstep help COMMAND' its manual\n"
		   "page, 'man kstep-probes' the probe language. kstep --version.\n");
}

/* kstep help [COMMAND]: the page from the clone's doc/man, or the one
 * installed beside an installed kstep, through man -l. */
static int cmd_help(int argc, char **argv)
{
	char tree[PATH_MAX - 64], page[PATH_MAX];
	const char *name = argc > 1 ? argv[1] : NULL;
	bool installed;

	if (name && strcmp(name, "probes") && !find_command(name)) {
		error("help: no command '%s' (try 'kstep --help')", name);
		return EXIT_USAGE;
	}
	find_tree(tree, sizeof(tree), &installed);
	snprintf(page, sizeof(page), "%s/%s/kstep%s%s.%c", tree, installed ? "../man/man1" : "doc/man",
		 name ? "-" : "", name ? name : "", name && !strcmp(name, "probes") ? '7' : '1');
	if (installed && name && !strcmp(name, "probes"))
		snprintf(page, sizeof(page), "%s/../man/man7/kstep-probes.7", tree);
	if (access(page, R_OK)) {
		error("help: no manual page at %s: %s", page, strerror(errno));
		return EXIT_FAILED;
	}
	execlp("man", "man", "-l", page, (char *)NULL);
	error("help: cannot run man (install man-db): %s", strerror(errno));
	return EXIT_FAILED;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	const struct command *cmd;

	color = isatty(2) && !getenv("NO_COLOR");
	/* No SA_RESTART: a blocked poll() must return so that kstep can stop
	 * the guest and close the trace cleanly. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("kstep %s\n", KSTEP_VERSION);
		return 0;
	}
	cmd = find_command(argv[1]);
	if (cmd)
		return cmd->run(argc - 1, argv + 1);
	fprintf(stderr, "kstep: unknown command '%s' (try 'kstep --help')\n", argv[1]);
	return 2;
}
