// SPDX-License-Identifier: MIT
/*
 * The guest options every guest command takes (GUEST_LONGOPTS): parsed,
 * defaulted from the tree or an installed kstep's images, checked against
 * each other, and a recording's settings taken for a replay.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "qemu.h"

#include "cmd.h"

/* Where kstep build-images --system puts the images for every user. */
#define KSTEP_SYSTEM_IMAGES "/var/cache/kstep/images"

const char guest_help[] =
	"Guest options:\n"
	"  -w, --workload NAME    shell, rx-icmp, rx-udp, rx-udp-flood, rx-tcp, tx-tcp, rx-drop,\n"
	"                         rx-drops, oops\n"
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
	"      --max-stack N      frames a backtrace records, 1 to 64 (default 64); a\n"
	"                         deeper one ends in depth-limit\n"
	"      --unwind MODE      backtraces from: auto (the debug info's call frame\n"
	"                         information, carried on by frame pointers where it has\n"
	"                         none and they agree), cfi, fp (frame pointers only),\n"
	"                         check (record cfi's, say where frame pointers, frames\n"
	"                         plugin steps carry over, and libdwfl's own walk\n"
	"                         differ from it)\n"
	"      --step-irqs        let interrupts and timers in while single-stepping\n"
	"      --engine MODE      auto (kstep's QEMU plugin where it serves the run, else\n"
	"                         the gdbstub, saying why), rsp (the gdbstub), plugin\n"
	"                         (QEMU 9.2 or later, TCG; trace, step and record; the\n"
	"                         oops catch through a gdbstub breakpoint; kstep why\n"
	"                         runs on the gdbstub)\n"
	"      --wire             print every RSP packet (=> sent, <= received)\n"
	"  -q, --quiet            no live counter\n"
	"\nExit status: 0 done as asked, 1 failed, 2 bad usage, 3 the workload failed,\n"
	"4 the kernel died (oops/panic), 5 the guest reset, 6 QEMU ended early,\n"
	"130 interrupted.\n";

uint64_t guest_parse_u64(const char *cmd, const char *opt, const char *v, uint64_t min)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 0);
	if (errno || *end || end == v || v[0] == '-' || n < min)
		say_usage(cmd, "%s wants a whole number%s, not '%s'", opt, min ? " above 0" : "", v);
	return n;
}

/* Where guest/run-guest.sh and the gdb scripts are: the clone, when this
 * is its build/kstep, or PREFIX/share/kstep, when this is an installed
 * PREFIX/bin/kstep (make install; relocatable, DESTDIR included). */
void guest_find_tree(char *tree, size_t len, bool *installed)
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

/* The guest kstep boots: its kernel, images, workload and machine. True if it
 * handled @c. */
static bool machine_opt(const char *cmd, struct guest_opts *g, int c, const char *arg)
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
	case 'w':
		g->guest_set = "--workload";
		g->workload = arg;
		return true;
	case 'n':
		g->guest_set = "--size";
		guest_parse_u64(cmd, "--size", arg, 1);
		g->count = arg;
		return true;
	case 'a':
		if (strcmp(arg, "auto") && strcmp(arg, "kvm") && strcmp(arg, "tcg"))
			say_usage(cmd, "--accel must be auto, kvm or tcg, not '%s'", arg);
		g->accel = arg;
		return true;
	case 'S':
		g->guest_set = "--smp";
		guest_parse_u64(cmd, "--smp", arg, 1);
		g->smp = arg;
		return true;
	case 'U':
		g->guest_set = "--workload-cpu";
		guest_parse_u64(cmd, "--workload-cpu", arg, 0);
		g->workload_cpu = arg;
		return true;
	case 'M':
		g->guest_set = "--mem";
		guest_parse_u64(cmd, "--mem", arg, 1);
		g->mem = arg;
		return true;
	case 'N':
		g->guest_set = "--nic";
		if (strcmp(arg, "e1000") && strcmp(arg, "virtio"))
			say_usage(cmd, "--nic must be e1000 or virtio, not '%s'", arg);
		g->nic = arg;
		g->nic_given = true;
		return true;
	case 'P':
		if (strcmp(arg, "auto") && strcmp(arg, "off"))
			say_usage(cmd, "--pin must be auto or off, not '%s'", arg);
		g->pin = arg;
		return true;
	case 'L':
		g->guest_set = "--kaslr";
		g->kaslr = true;
		return true;
	}
	return false;
}

/* Where the guest is: a stub, a libvirt domain, kgdb, a recording. True if it
 * handled @c. */
static bool whereabouts_opt(struct guest_opts *g, int c, const char *arg)
{
	switch (c) {
	case 'A':
		g->attach = arg;
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
	}
	return false;
}

/* How the run goes: its output, snapshots, unwinding, engine and noise. True if it
 * handled @c. */
static bool run_opt(const char *cmd, struct guest_opts *g, int c, const char *arg)
{
	switch (c) {
	case 'o':
		g->out = arg;
		return true;
	case 'B':
		g->eng.stack_bytes = guest_parse_u64(cmd, "--stack-bytes", arg, 8);
		if (g->eng.stack_bytes > ENGINE_STACK_BYTES_MAX || g->eng.stack_bytes % 8)
			say_usage(cmd, "--stack-bytes must be a multiple of 8 up to %d, not '%s'", ENGINE_STACK_BYTES_MAX,
				  arg);
		return true;
	case OPT_MAX_STACK:
		g->eng.max_stack = guest_parse_u64(cmd, "--max-stack", arg, 1);
		if (g->eng.max_stack > SNAPSHOT_FRAMES)
			say_usage(cmd, "--max-stack must be 1 to %d, not '%s'", SNAPSHOT_FRAMES, arg);
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
	case 'Y':
		g->moddir = arg;
		return true;
	case OPT_SOURCE:
		g->srcdir = arg;
		return true;
	case 'X':
		if (strcmp(arg, "auto") && strcmp(arg, "cfi") && strcmp(arg, "fp") && strcmp(arg, "check"))
			say_usage(cmd, "--unwind must be auto, cfi, fp or check, not '%s'", arg);
		g->unwind = arg;
		g->eng.unwind = !strcmp(arg, "cfi")   ? SNAPSHOT_UNWIND_CFI
			      : !strcmp(arg, "fp")    ? SNAPSHOT_UNWIND_FP
			      : !strcmp(arg, "check") ? SNAPSHOT_UNWIND_CHECK
						      : SNAPSHOT_UNWIND_AUTO;
		return true;
	case 'O':
		g->kaslr_offset = guest_parse_u64(cmd, "--kaslr-offset", arg, 0);
		g->kaslr_offset_given = true;
		return true;
	case 'q':
		g->eng.progress = NULL;
		g->quiet = true;
		return true;
	case OPT_ENGINE:
		if (strcmp(arg, "auto") && strcmp(arg, "rsp") && strcmp(arg, "plugin"))
			say_usage(cmd, "--engine is auto, rsp or plugin, not '%s'", arg);
		g->engine = arg;
		return true;
	}
	return false;
}

bool guest_opt(const char *cmd, struct guest_opts *g, int c, const char *arg)
{
	return machine_opt(cmd, g, c, arg) || whereabouts_opt(g, c, arg) || run_opt(cmd, g, c, arg);
}

void guest_defaults(struct guest_opts *g)
{
	memset(g, 0, sizeof(*g));
	guest_find_tree(g->tree, sizeof(g->tree), &g->installed);
	g->workload = "rx-icmp";
	g->accel = "auto";
	g->engine = "auto";
	g->nic = "e1000";
	g->out = "trace.out";
	g->eng.stack_bytes = 256;
	g->unwind = "auto";
	g->eng.progress = isatty(2) ? say_progress : NULL;
	g->eng.interrupted = &interrupted;
	g->replay_log = -1;
}

/* The QEMU (10) make qemu puts beside the images. */
static void images_qemu(const struct guest_opts *g, char *path, size_t len)
{
	snprintf(path, len, "%s/qemu/bin/qemu-system-x86_64", g->images);
}

/* --replay DIR: the guest as the recording started it; a recording that
 * cannot be replayed (cut short, other images, no QEMU of its version)
 * ends kstep here. */
static void load_replay(struct guest_opts *g)
{
	char err[PATH_MAX + 256], alt[PATH_MAX + 32];
	int ret;

	images_qemu(g, alt, sizeof(alt));
	if (recording_read(g->replay, &g->rec, err, sizeof(err)) ||
	    recording_check(&g->rec, g->replay, g->images, err, sizeof(err)) ||
	    (ret = recording_check_qemu(&g->rec, g->replay, alt, err, sizeof(err))) < 0) {
		say_error("%s", err);
		exit(EXIT_FAILED);
	}
	if (ret && !g->quiet) /* the recording's version is make qemu's, not the system's */
		say_info("--replay: QEMU %s, the version (%s) that recorded it", alt, g->rec.qemu);
	g->workload = g->rec.workload;
	g->count = g->rec.size[0] ? g->rec.size : NULL;
	g->nic = g->rec.nic;
	g->mem = g->rec.mem[0] ? g->rec.mem : NULL;
	g->kaslr = g->rec.kaslr;
	g->apic_timer = !g->rec.apic_timer[0]; /* recorded before kstep switched it off */
	g->accel = "tcg";
	g->smp = NULL;
	g->eng.replay = true;
	g->replay_log = recording_open_log(g->replay, false, err, sizeof(err));
	if (g->replay_log < 0) {
		say_error("--replay %s", err);
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
			say_error("--kernel-tree %s: %s: %s%s", g->kernel_tree, path, strerror(errno),
			          i < 2 ? " (give the directory the kernel was built in, O= if it had one)" : "");
			exit(EXIT_FAILED);
		}
	}
	files_rundir(rundir, sizeof(rundir));
	if (files_private_dir(rundir, err, sizeof(err))) {
		say_error("%s", err);
		exit(EXIT_FAILED);
	}
	snprintf(kernel_tree_images, sizeof(kernel_tree_images), "%s/kernel-tree-XXXXXX", rundir);
	if (!mkdtemp(kernel_tree_images)) {
		say_error("cannot create a directory in %s: %s", rundir, strerror(errno));
		exit(EXIT_FAILED);
	}
	atexit(remove_kernel_tree_images);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", kernel_tree_images, to[i]);
		if (symlink(src[i], path)) {
			say_error("cannot link %s: %s", path, strerror(errno));
			exit(EXIT_FAILED);
		}
	}
	snprintf(g->images, sizeof(g->images), "%s", kernel_tree_images);
}

/* --engine plugin with no QEMU named and a system QEMU too old for it:
 * the QEMU 10 make qemu put beside the images, when it is there. */
static void plugin_qemu(const struct guest_opts *g)
{
	char path[PATH_MAX + 32], why[256];

	if (qemu_named())
		return;
	images_qemu(g, path, sizeof(path));
	if (access(path, X_OK) || qemu_plugin_capable(why, sizeof(why))) /* the file first: no QEMU run for nothing */
		return;
	setenv("QEMU", path, 1);
	if (!g->quiet)
		say_info("--engine plugin: QEMU %s (the system's is too old for the plugin)", path);
}

void guest_finish_defaults(struct guest_opts *g)
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
	if (!strcmp(g->engine, "plugin")) /* before a replay checks its QEMU */
		plugin_qemu(g);
	if (g->replay)
		load_replay(g);
}

/* The guest is one kstep does not start: the user's stub, domain or kgdb. */
bool guest_is_users(const struct guest_opts *g)
{
	return g->attach || g->domain || g->libvirt_uri || g->kgdb;
}

/* Options that exclude each other, checked once all are read. */
void guest_check_opts(const char *cmd, const struct guest_opts *g)
{
	if (g->domain && g->attach)
		say_usage(cmd, "--domain and --attach both name the guest: give one");
	if (g->libvirt_uri && g->attach)
		say_usage(cmd, "--libvirt and --attach both name the guest: give one");
	if (g->stub_path && !g->domain && !g->libvirt_uri)
		say_usage(cmd, "--stub-path is for a libvirt domain (--domain NAME)");
	if (g->kgdb && (g->attach || g->domain || g->libvirt_uri))
		say_usage(cmd, "--kgdb boots kstep's own QEMU guest: not with --attach, --domain or --libvirt "
			       "(--attach serial:PATH is kgdb on a guest of yours)");
	if (g->replay && guest_is_users(g))
		say_usage(cmd, "--replay runs a recording: not with --attach, --domain, --libvirt or --kgdb");
	if (g->replay && g->guest_set)
		say_usage(cmd, "--replay: %s is fixed by the recording (it was made with kstep record %s ...)", g->guest_set,
			  g->guest_set);
	if (g->replay && !strcmp(g->accel, "kvm"))
		say_usage(cmd, "--replay runs under TCG: a replay counts instructions, which KVM cannot");
	if (g->stub_path && g->stub_path[0] != '/')
		say_usage(cmd, "--stub-path must be an absolute path (the domain's QEMU opens it)");
	if (!strcmp(g->engine, "plugin") && strcmp(cmd, "trace ") && strcmp(cmd, "record ") && strcmp(cmd, "step "))
		say_usage(cmd, "--engine plugin serves kstep trace, step and record so far; this command runs on the gdbstub");
}

bool guest_getopt(int argc, char **argv, const struct guest_cmdline *cl, struct guest_opts *g, void *ctx)
{
	int c;

	while ((c = getopt_long(argc, argv, cl->shortopts, cl->longopts, NULL)) != -1) {
		if (c == 'h') {
			cl->usage(stdout);
			return false;
		}
		if (guest_opt(cl->cmd, g, c, optarg))
			continue;
		if (!cl->own)
			say_usage(cl->cmd, "unknown option");
		cl->own(c, optarg, ctx);
	}
	if (optind < argc)
		say_usage(cl->cmd, "unexpected argument '%s'", argv[optind]);
	guest_check_opts(cl->cmd, g);
	return true;
}
