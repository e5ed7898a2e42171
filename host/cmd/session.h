/* SPDX-License-Identifier: MIT */
/*
 * The session layer: how every command that runs a guest gets one and
 * ends it. session_start boots kstep's guest under QEMU (gdbstub, or
 * kstep's plugin beside it), attaches to a running stub, a libvirt domain
 * or kgdb, or starts a replay; boot runs the boot checks (KASLR, vmlinux,
 * modules); open_trace hands the engine its trace; conclude and
 * session_end say how the run ended and give kstep's exit status.
 */
#ifndef KSTEP_SESSION_H
#define KSTEP_SESSION_H

#include "cmd.h"
#include "qemu.h"

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

/* ---- session.c: start, attach, boot ---- */

/* The start of the guest's console log, NUL-terminated; bytes read. */
ssize_t session_serial_log(struct session *s, char *out, size_t len);
/* How QEMU is started for @g under @accel, its console into @serial_fd. */
struct qemu_opts session_qemu_opts(const struct guest_opts *g, const char *accel, int serial_fd);
/* The guest, its QEMU, stub connection and engine let go of. */
void session_drop_guest(struct session *s);
/* kstep's QEMU launched halted under @accel, connected, run to start_kernel. */
int session_launch(struct session *s, const char *accel);
/* The guest at start_kernel (or attached where it is), KASLR found, the
 * vmlinux checked against it, its modules followed. */
int session_boot(struct session *s);

/* kstep record's guest: QEMU launched in record mode with no debugger
 * (@qo), started, and waited for until it ends (*@status) or @stop is set
 * (-EINTR); @progress shows the replay log in @dir growing. 0 or an error
 * with its reason in @err; *@seconds how long it ran. */
int session_record(struct qemu_opts *qo, const char *dir, void (*progress)(const char *line, bool final),
		   volatile sig_atomic_t *stop, int *status, double *seconds, char *err, size_t errlen);

/* ---- run.c: the engine, the trace, and how the run ended ---- */

/* The trace directory's metadata written and the trace handed to the engine. */
int session_open_trace(struct session *s, const char *command);
/* --engine: the plugin where it serves the run, else the gdbstub (saying
 * why under auto); -EINVAL when --engine plugin cannot serve it. @refusal:
 * the command's own reason the plugin cannot serve this run, NULL: none. */
int session_choose_engine(struct session *s, const char *refusal);
/* The output directory: private, never someone else's, --force to replace. */
int session_prepare_out(struct session *s);
/* The workload's rc from the last "KSTEP-WORKLOAD-DONE NAME RC" in @text
 * (the guest's console); false when there is none. */
bool session_workload_done(const char *text, int *rc);
/* How a run ended, in words. */
const char *session_end_str(enum engine_end end);
/* The guest after the run: ended, kept (--keep-guest) or frozen (an oops);
 * QEMU's exit status, or -1. */
int session_finish_guest(struct session *s, const struct engine_result *res);
/* Everything the session holds let go of; non-zero when a libvirt domain
 * could not be handed back as found. */
int session_end(struct session *s);
/* A session for the options @g: symbols opened, run directory ready. */
int session_start(struct session *s, struct guest_opts *g);
/* kstep's exit status for the run (kstep(1)): how it ended, the
 * workload's rc from the console, QEMU's @status, whether it @failed. */
int session_conclude(struct session *s, const struct engine_result *res, int status, bool failed);
/* The summary's line of how the backtraces ended. */
void session_print_bt_ends(struct session *s, const struct engine_result *res);

#endif
