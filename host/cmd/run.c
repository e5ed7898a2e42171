// SPDX-License-Identifier: MIT
/*
 * The session layer's run and end: which engine serves it (the gdbstub's
 * or kstep's QEMU plugin, --engine), the trace directory and the trace
 * handed to the engine, and how the run ended: the guest finished or kept,
 * the workload's status read, and kstep's exit status chosen.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "libvirt.h"
#include "qmp.h"

#include "session.h"

/* How long a guest that ended by itself is given for its QEMU to exit. */
#define GUEST_EXIT_WAIT_S 30

int session_open_trace(struct session *s, const char *command)
{
	char err[512], banner[256] = "", clock[160] = "";
	const struct sym *b = sym_lookup_name(s->syms, "linux_banner");
	struct trace_env env = { .unwinder = s->g->unwind, .vmlinux = s->g->vmlinux, .banner = banner,
				 .command = command, .guest_clock = clock,
				 .libvirt_uri = s->lv ? lv_uri(s->lv) : NULL, .libvirt_domain = s->lv ? lv_name(s->lv) : NULL,
				 .replay_id = s->g->replay ? s->g->rec.id : NULL };
	int ret;

	if (s->g->eng.guest_clock && s->plugin[0])
		snprintf(clock, sizeof(clock), "kstep's plugin's instruction count, %u ns an instruction (one that faults "
			 "counts each time it runs)", 1u << s->g->eng.icount_shift);
	else if (s->g->eng.guest_clock)
		snprintf(clock, sizeof(clock), "QEMU icount, %u ns an instruction, stopped while kstep holds the guest",
			 1u << s->g->eng.icount_shift);
	env.classes = s->classes;
	env.nclasses = s->nclasses;

	if (b && b->size)
		sym_read_bytes(s->syms, b->addr, banner, b->size < sizeof(banner) - 1 ? b->size : sizeof(banner) - 1);
	banner[strcspn(banner, "\n")] = '\0';
	ret = trace_open(&s->trace, s->out_dfd, s->g->out, target_desc(s->target), &env, err, sizeof(err));
	if (ret) {
		say_error("%s", err);
		return ret;
	}
	if ((ret = engine_set_trace(s->engine, s->trace, &s->g->eng, err, sizeof(err))))
		say_error("%s", err);
	return ret;
}

static bool plugin_refused(struct session *s, const char *refusal, char *why, size_t len)
{
	const struct guest_opts *g = s->g;

	if (refusal)
		snprintf(why, len, "%s", refusal);
	else if (guest_is_users(g))
		snprintf(why, len, "the plugin runs in kstep's own QEMU: not with --attach, --domain, --libvirt or --kgdb");
	else if (!strcmp(g->accel, "kvm"))
		snprintf(why, len, "plugins run under TCG, not --accel kvm");
	else if (!qemu_plugin_capable(why, len))
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
int session_choose_engine(struct session *s, const char *refusal)
{
	char why[512];

	s->plugin[0] = '\0';
	if (!strcmp(s->g->engine, "rsp"))
		return 0;
	/* A guest of the user's: its gdbstub, without a word. */
	if (!strcmp(s->g->engine, "auto") && guest_is_users(s->g))
		return 0;
	if (!plugin_refused(s, refusal, why, sizeof(why)))
		return 0;
	s->plugin[0] = '\0';
	if (!strcmp(s->g->engine, "plugin")) {
		say_error("--engine plugin: %s", why);
		return -EINVAL;
	}
	if (!s->g->quiet)
		say_info("engine: the gdbstub's (%s)", why);
	return 0;
}

int session_prepare_out(struct session *s)
{
	char err[PATH_MAX + 128];
	int ret = trace_prepare_dir(s->g->out, s->g->force, &s->out_dfd, err, sizeof(err));

	if (ret)
		say_error("%s", err);
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
		say_error("make attach will not find the guest: %s", err);
}

const char *session_end_str(enum engine_end end)
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
int session_finish_guest(struct session *s, const struct engine_result *res)
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
	qemu_wait_exit(s->qemu, res->end == ENGINE_END_GUEST_EXITED ? GUEST_EXIT_WAIT_S * 1000 : 5000, &status);
	return status;
}

/* Everything let go; a libvirt domain handed back as it was found (or
 * frozen). Returns -1 if the domain could not be given back so. */
int session_end(struct session *s)
{
	char err[1024];
	bool traced = s->trace != NULL;
	int ret = 0;

	session_drop_guest(s);
	if (s->lv && (ret = lv_close(s->lv, s->frozen, err, sizeof(err))))
		say_error("%s", err);
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

int session_start(struct session *s, struct guest_opts *g)
{
	char err[512];
	int ret;

	memset(s, 0, sizeof(*s));
	s->g = g;
	s->out_dfd = s->serial_fd = -1;
	ret = sym_open(&s->syms, g->vmlinux, err, sizeof(err));
	if (ret == -ENOENT)
		say_error("%s: build the images with '%s', or pass --images DIR or --vmlinux PATH", err,
		          g->installed ? "kstep build-images" : "make images");
	else if (ret)
		say_error("%s", err);
	if (ret)
		return ret;
	if (g->eng.unwind != SNAPSHOT_UNWIND_FP && (ret = cfi_new(&g->eng.cfi, g->vmlinux, err, sizeof(err)))) {
		if (g->eng.unwind != SNAPSHOT_UNWIND_AUTO) {
			say_error("--unwind %s: %s", g->unwind, err);
			sym_close(s->syms);
			return ret;
		}
		say_info("%s: backtraces follow frame pointers only", err);
	}
	return 0;
}

bool session_workload_done(const char *text, int *rc)
{
	const char *p, *last = NULL;

	for (p = text; (p = strstr(p, "KSTEP-WORKLOAD-DONE ")); p++)
		last = p;
	return last && sscanf(last, "KSTEP-WORKLOAD-DONE %*s %d", rc) == 1;
}

/* The rc of the last "KSTEP-WORKLOAD-DONE NAME RC" the guest printed. */
static bool workload_done(struct session *s, int *rc)
{
	static char log[1 << 20];

	return session_serial_log(s, log, sizeof(log)) > 0 && session_workload_done(log, rc);
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
		say_info("the guest finished its workload (%s)", how);
		return EXIT_DONE;
	}
	if (rc == 0) /* the workload did its part; QEMU did not end as it should */
		say_error("the guest's workload %s finished, but %s (console: %s/guest/serial.log)", s->g->workload, how,
		          s->g->out);
	else
		say_error("the guest's workload %s failed with rc %d (%s; console: %s/guest/serial.log)", s->g->workload,
		          rc, how, s->g->out);
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
		say_error("the stub closed the connection: domain '%s' %s", lv_name(s->lv), why);
		if (end == LV_END_ALIVE && lv_release_guest(s->lv, why, sizeof(why)))
			say_error("%s", why);
		return end == LV_END_CRASHED ? EXIT_KERNEL_DIED : end == LV_END_ALIVE ? EXIT_FAILED : EXIT_QEMU_ENDED;
	}
	if (!s->qemu) {
		say_error("the stub closed the connection: the guest's QEMU ended (attached: kstep cannot see why)");
		return EXIT_QEMU_ENDED;
	}
	if (workload_done(s, &rc)) {
		char how[64];

		if (status < 0) /* still running after session_finish_guest's wait */
			snprintf(how, sizeof(how), "its QEMU had not exited %d s after it", GUEST_EXIT_WAIT_S);
		else
			snprintf(how, sizeof(how), "QEMU exit %d", status);
		return workload_ending(s, rc, status != 0, how);
	}
	if (status == 1) {
		say_error("the guest kernel panicked (QEMU exit 1; its report is in %s/guest/serial.log)", s->g->out);
		return EXIT_KERNEL_DIED;
	}
	/* Under -no-reboot a reset ends QEMU: "guest-reset" when the guest did
	 * it, "host-qmp-system-reset" when asked through QMP. */
	if (strlen(reason) > 5 && !strcmp(reason + strlen(reason) - 5, "reset")) {
		say_error("the guest was reset (%s) before its workload finished (console: %s/guest/serial.log)", reason,
		          s->g->out);
		return EXIT_GUEST_RESET;
	}
	if (!strcmp(reason, "guest-shutdown")) {
		say_error("the guest powered off before its workload finished (console: %s/guest/serial.log)", s->g->out);
		return EXIT_GUEST_RESET;
	}
	if (!strcmp(reason, "host-qmp-quit"))
		say_error("QEMU was told to quit (QMP quit) before the workload finished");
	else if (status >= 128)
		say_error("QEMU was killed by signal %d before the workload finished (QEMU exited with status %d)",
		          status - 128, status);
	else
		say_error("QEMU ended before the workload finished (QEMU exited with status %d%s%s)", status,
		          *reason ? ", " : "", reason);
	return EXIT_QEMU_ENDED;
}

/* kstep's exit status for how the run ended (@failed: the engine failed,
 * which it already said). */
int session_conclude(struct session *s, const struct engine_result *res, int status, bool failed)
{
	if (failed)
		return EXIT_FAILED;
	switch (res->end) {
	case ENGINE_END_OOPS:
		return EXIT_KERNEL_DIED;
	case ENGINE_END_INTERRUPTED:
		say_info("interrupted: the trace holds everything up to here");
		return EXIT_INTERRUPTED;
	case ENGINE_END_GUEST_EXITED:
		return guest_ending(s, status);
	default:
		return EXIT_DONE;
	}
}

/* --unwind check's count (@what agreed on @a's backtraces), if any. */
static void print_agreement(struct session *s, const struct snapshot_agreement *a, const char *what)
{
	char where[128] = "";

	if (!a->compared)
		return;
	if (a->first_pc)
		sym_format(s->syms, a->first_pc, where, sizeof(where));
	fprintf(stdout, "%s agreed on %" PRIu64 " of %" PRIu64 " backtraces%s%s\n", what, a->agreed, a->compared,
		a->first_pc ? "; first difference at " : "", where);
}

/* How the recorded backtraces ended: whole, or cut short and why. */
void session_print_bt_ends(struct session *s, const struct engine_result *res)
{
	uint64_t whole = 0, cut = 0;

	print_agreement(s, engine_unwind_agreement(s->engine), "unwinders: cfi and frame pointers");
	print_agreement(s, engine_carried_agreement(s->engine),
			"carried-over frames: the steps' frames and a fresh cfi walk");
	print_agreement(s, engine_rows_agreement(s->engine), "cfi walks: kstep's cached rows and libdwfl's own");
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
