// SPDX-License-Identifier: MIT
/*
 * The session layer's start: QEMU launched (with kstep's plugin when the
 * plugin engine runs) or a running stub, libvirt domain or kgdb line
 * attached, the target connected, and the boot checks: kernel located
 * (KASLR), vmlinux matched, the guest's modules followed. And kstep
 * record's guest, which runs with no debugger: launched in record mode,
 * started, and waited for until it ends.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "files.h"
#include "plugin_chan.h"
#include "libvirt.h"
#include "qmp.h"

#include "session.h"

/* Under TCG the kernel is decompressed and at start_kernel in about 1 s. */
#define BOOT_TIMEOUT_TCG_MS 60000
/* Under a KVM that works, start_kernel comes sooner than this; a guest that
 * has not got there by then is the hang DESIGN.md describes. */
#define BOOT_TIMEOUT_KVM_MS 10000
/* QEMU binds its stub's socket before it listens on it: a connect in
 * between is refused. Retry this long (a loaded host can be slow there). */
#define STUB_CONNECT_MS 10000
/* kstep's QEMU plugin connects as QEMU loads it, before QEMU is ready. */
#define PLUGIN_CONNECT_MS 10000
/* What the kernel prints when kgdbwait waits for its debugger; the
 * console is looked at this often until it has. */
#define KGDB_WAITING "KGDB: Waiting for connection from remote gdb"
#define KGDB_POLL_MS 50
/* kstep record shows how far it has come this often. */
#define RECORD_POLL_MS 200

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
ssize_t session_serial_log(struct session *s, char *out, size_t len)
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

	while (session_serial_log(s, log, sizeof(log)) >= 0 && !strstr(log, KGDB_WAITING)) {
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
		say_info("no guest time (guest_ns 0) under kgdb: the guest's CPU runs on in kgdb's loop while kstep holds it");
		return false;
	}
	if (s->g->smp && strcmp(s->g->smp, "1")) {
		say_info("no guest time (guest_ns 0) with --smp %s: QEMU's instruction counting runs one vCPU", s->g->smp);
		return false;
	}
	return true;
}

static int guest_icount(void *ctx, uint64_t *icount)
{
	return qmp_icount(ctx, icount);
}

/* Guest time: QEMU counts the guest's instructions (-icount); kstep asks at
 * every stop over a QMP connection of its own (kstep's plugin counts them
 * itself, and gives the count with each HIT). */
static void open_guest_clock(struct session *s)
{
	char err[256];

	s->g->eng.icount_shift = QEMU_ICOUNT_SHIFT;
	if (qmp_open(&s->clock, qemu_clock_socket(s->qemu), err, sizeof(err))) {
		say_info("no guest time in this trace: %s", err);
		return;
	}
	s->g->eng.guest_clock = guest_icount;
	s->g->eng.clock_ctx = s->clock;
}

/* The guest the options describe, for QEMU or for libvirt. */
struct qemu_opts session_qemu_opts(const struct guest_opts *g, const char *accel, int serial_fd)
{
	return (struct qemu_opts){
		.tree = g->tree, .images = g->images, .workload = g->workload, .count = g->count, .accel = accel,
		.smp = g->smp, .mem = g->mem, .pin = g->pin, .nic = g->nic, .serial_fd = serial_fd,
		.workload_cpu = g->workload_cpu, .kaslr = g->kaslr, .kgdb = g->kgdb, .apic_timer = g->apic_timer,
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
	struct qemu_opts qo = session_qemu_opts(s->g, accel, s->serial_fd);
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
		say_error("%s", err);
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
		say_error("kgdb on %s did not answer: the kernel is not in the debugger (it waits for one at boot "
		          "with kgdbwait, as make run-guest KGDB=1 boots it, or after SysRq-G: "
		          "echo g > /proc/sysrq-trigger in the guest)", s->g->attach + 7);
		return ret;
	}
	if (ret) {
		say_error("%s", err);
		return ret;
	}
	ret = engine_new(&s->engine, s->target, s->syms, NULL, &s->g->eng, err, sizeof(err));
	if (ret)
		say_error("%s", err);
	return ret;
}

void session_drop_guest(struct session *s)
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
		say_error("no guest kernel in %s (%s): build the images with '%s', or pass --images DIR", s->g->images,
		          strerror(errno), s->g->installed ? "kstep build-images" : "make images");
		return -ENOENT;
	}
	ret = sym_check_bzimage(s->syms, path, err, sizeof(err));
	if (ret)
		say_error("%s", err);
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
			say_info("cannot read the guest's module list (%s); modules stay as they were", strerror(-ret));
		return ret == -ENOMEM ? ret : 0;
	}
	v = kmods_list(s->kmods, &n);
	if ((ret = cfi_set_modules(s->g->eng.cfi, v, n)))
		return ret;
	for (size_t i = 0; i < n && added; i++)
		if (!v[i].path[0])
			say_info("module %s at 0x%" PRIx64 ": no debug info for it in %s (--modules DIR)", v[i].name, v[i].base,
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
	say_info("module %s unloaded: its probes wait for it to come back", gone.name);
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
	say_info("KASLR: the kernel runs 0x%" PRIx64 " above vmlinux's addresses (%s)%s%s", offset,
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
		say_error("%s%s", err, s->lv ? "" : " (is the guest running? start it with: make run-guest HALT=1)");
		return ret;
	}
	if ((ret = connect_target(s)))
		return ret;
	if ((ret = engine_before_kernel(s->engine, &before)) ||
	    (before && (ret = engine_run_to_start_kernel(s->engine, BOOT_TIMEOUT_TCG_MS))))
		say_error("%s", engine_errmsg(s->engine));
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
		say_error("%s", err);
		return ret;
	}
	if (lv_tainted_by_us(s->lv))
		say_info("libvirt now marks domain '%s' tainted (custom monitor): kstep opened its gdbstub through "
		         "the domain's monitor", lv_name(s->lv));
	if (lv_stub_is_tcp(s->lv))
		say_info("WARNING: domain '%s' has its gdbstub on TCP (%s): every local user can reach it", lv_name(s->lv),
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
		say_info("no usable /dev/kvm: running under TCG (software emulation)");
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
			say_info("engine: the gdbstub's (KVM runs this guest; plugins run under TCG: --accel tcg)");
		s->plugin[0] = '\0';
	}
	return accel;
}

/* The domain XML of our guest, its console going to the trace's
 * guest/serial.log (written by libvirt's virtlogd). */
static int own_domain_xml(struct session *s, const char *accel, const char *name, char **xml, char *err,
			  size_t errlen)
{
	struct qemu_opts qo = session_qemu_opts(s->g, accel, s->serial_fd);
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

/* Before kstep starts a guest: its images checked, and the console log
 * it will write created in the trace directory. */
static int images_and_console(struct session *s)
{
	int ret;

	if ((ret = check_images(s)))
		return ret;
	s->serial_fd = trace_create_serial_log(s->out_dfd);
	if (s->serial_fd < 0) {
		say_error("cannot create %s/guest/serial.log: %s", s->g->out, strerror(-s->serial_fd));
		return s->serial_fd;
	}
	return 0;
}

/* kstep's own guest as a transient libvirt domain (--libvirt URI without
 * --domain): started paused at reset, then as attached. */
static int boot_libvirt_own(struct session *s)
{
	char err[1024], name[64];
	char *xml = NULL;
	int ret;

	if ((ret = images_and_console(s)))
		return ret;
	snprintf(name, sizeof(name), "kstep-%d", (int)getpid());
	ret = own_domain_xml(s, pick_accel(s), name, &xml, err, sizeof(err));
	if (!ret)
		ret = lv_create(&s->lv, s->g->libvirt_uri, xml, s->g->keep, err, sizeof(err));
	free(xml);
	if (!ret)
		ret = lv_open_stub(s->lv, s->g->stub_path, s->lv_stub, sizeof(s->lv_stub), err, sizeof(err));
	if (ret) {
		say_error("%s", err);
		return ret;
	}
	say_info("guest: libvirt domain '%s' at %s%s", name, lv_uri(s->lv),
	         s->g->keep ? " (kept when kstep ends: virsh destroy ends it)" : " (destroyed when kstep ends)");
	s->g->attach = s->lv_stub;
	return boot_attached(s);
}

int session_launch(struct session *s, const char *accel)
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

	if ((ret = images_and_console(s)))
		return ret;
	accel = s->plugin[0] && !strcmp(s->g->accel, "auto") ? plugin_accel(s) : pick_accel(s);
	ret = session_launch(s, accel);
	if (ret && ret != -EINTR && !strcmp(accel, "kvm") && !strcmp(s->g->accel, "auto")) {
		char why[256] = "the guest never reached start_kernel";

		if (ret != -ETIMEDOUT && session_serial_log(s, why, sizeof(why)) > 0)
			why[strcspn(why, "\n")] = '\0';
		say_info("KVM does not run this guest (%s); falling back to TCG "
		         "(remembered for this kernel; force with --accel kvm)", why);
		qemu_accel_remember(s->g->images, "tcg");
		session_drop_guest(s);
		if (ftruncate(s->serial_fd, 0) == 0) /* the log of this boot only */
			lseek(s->serial_fd, 0, SEEK_SET);
		ret = session_launch(s, "tcg");
	} else if (!ret && !strcmp(s->g->accel, "auto")) {
		qemu_accel_remember(s->g->images, accel);
	}
	if (ret && s->engine)
		say_error("%s", engine_errmsg(s->engine));
	return ret;
}

/* A connected guest, stopped in its kernel, KASLR found, vmlinux checked,
 * modules read. */
int session_boot(struct session *s)
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
		say_error("%s", engine_errmsg(s->engine));
		return ret;
	}
	return setup_modules(s);
}

/* ---- kstep record's guest: no debugger ---- */

static double seconds_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Launch the guest in record mode and start it (QEMU comes up halted). */
static int start_recording(struct qemu **q, struct qemu_opts *qo, const volatile sig_atomic_t *stop,
			   char *err, size_t errlen)
{
	struct qmp *qmp = NULL;
	int ret = qemu_launch(q, qo, err, errlen);

	if (!ret)
		ret = qemu_wait_ready(*q, QEMU_READY_MS, stop, err, errlen);
	if (!ret)
		ret = qmp_open(&qmp, qemu_qmp_socket(*q), err, errlen);
	if (!ret && (ret = qmp_execute(qmp, "cont")))
		snprintf(err, errlen, "%s", qmp_errmsg(qmp));
	qmp_close(qmp);
	return ret;
}

/* Wait for QEMU to end, showing how far the recording has come. */
static int wait_recording(struct qemu *q, const char *dir, void (*progress)(const char *line, bool final),
			  volatile sig_atomic_t *stop, int *status, double *seconds)
{
	struct timespec t0;
	char line[128];

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!qemu_exited(q, status)) {
		*seconds = seconds_since(&t0);
		if (*stop)
			return -EINTR;
		if (progress) {
			snprintf(line, sizeof(line), "recording %.1f s, log %.1f MB", seconds_since(&t0),
				 (double)files_size(dir, RECORDING_LOG) / 1e6);
			progress(line, false);
		}
		usleep(RECORD_POLL_MS * 1000);
	}
	if (progress) {
		snprintf(line, sizeof(line), "recorded %.1f s, log %.1f MB", seconds_since(&t0),
			 (double)files_size(dir, RECORDING_LOG) / 1e6);
		progress(line, true);
	}
	*seconds = seconds_since(&t0);
	return 0;
}

int session_record(struct qemu_opts *qo, const char *dir, void (*progress)(const char *line, bool final),
		   volatile sig_atomic_t *stop, int *status, double *seconds, char *err, size_t errlen)
{
	struct qemu *q = NULL;
	int ret = start_recording(&q, qo, stop, err, errlen);

	*seconds = 0;
	if (!ret)
		ret = wait_recording(q, dir, progress, stop, status, seconds);
	qemu_free(q); /* stops QEMU if it still runs (^C) */
	return ret;
}
