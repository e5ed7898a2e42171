/* SPDX-License-Identifier: MIT */
/*
 * qemu: launch the kstep guest with its gdbstub and QMP on unix sockets in a
 * private 0700 directory, halted at reset (-S). The command line comes from
 * guest/run-guest.sh (PRINT_ARGS=1), so it is defined once.
 *
 * QEMU runs under a small keeper process in its own process group: Ctrl-C
 * reaches only kstep, and if kstep dies for any reason the keeper sees its
 * control pipe close and stops QEMU; QEMU itself dies with its keeper. Only
 * qemu_keep() leaves QEMU running (its keeper stays, waiting for it).
 */
#ifndef KSTEP_QEMU_H
#define KSTEP_QEMU_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

struct qemu_opts {
	const char *tree;        /* kstep source tree (guest/run-guest.sh) */
	const char *images;      /* bzImage, initramfs.cpio.gz */
	const char *workload;
	const char *count;       /* workload size, NULL for the default */
	const char *accel;       /* "kvm" or "tcg" */
	const char *smp, *mem, *nic;
	const char *pin;         /* "auto" or "off": see PIN in run-guest.sh */
	const char *workload_cpu; /* the guest CPU the workload runs on, NULL: any */
	bool kaslr;              /* let the kernel randomize its base (no nokaslr) */
	bool icount;             /* TCG: count instructions as the guest's clock */
	bool apic_timer;         /* the local APIC timer under icount too (APIC_TIMER in run-guest.sh) */
	bool kgdb;               /* kgdb on ttyS1 (qemu_kgdb_socket), waiting at boot; not halted */
	const char *rr;          /* "record" or "replay" (QEMU's record/replay, implies icount), NULL: neither */
	int rr_fd;               /* the replay log it writes or reads, inherited as /dev/fd/N
				  * (recording_open_log); -1 without rr */
	int serial_fd;           /* where the guest console goes (-1: nowhere) */
	const char *plugin;      /* kstep's QEMU plugin (.so) to load, NULL: none */
};

/* Under icount, one guest instruction takes 2^QEMU_ICOUNT_SHIFT ns of the
 * guest's clock: 8 ns, about the pace of TCG here, so that busy-waits in
 * the guest cost no more host time than without icount. */
#define QEMU_ICOUNT_SHIFT 3

struct qemu;

/* kstep's hidden first argument that makes it QEMU's keeper: qemu_launch
 * runs kstep QEMU_KEEPER_ARG ... from its own binary, and main hands the
 * arguments after it to qemu_keeper_main (exit 2 for any it did not make). */
#define QEMU_KEEPER_ARG "__keeper"
int qemu_keeper_main(int argc, char **argv);
int qemu_launch(struct qemu **out, const struct qemu_opts *o, char *err, size_t errlen);
/* Whether the QEMU in use ($QEMU, else qemu-system-x86_64) can switch off
 * e1000's interrupt mitigation and autonegotiation timers (-device
 * e1000,help lists them; QEMU 10 has neither). Without that, a replay with
 * breakpoints stalls at e1000_clean_rx_irq: a recording wants virtio. */
bool qemu_e1000_replays(void);
/* Whether $QEMU names a QEMU to use (else the system's is in use). */
bool qemu_named(void);
/* The QEMU in use: $QEMU when it names one, else qemu-system-x86_64. */
const char *qemu_in_use(void);
/* The version of the QEMU in use ($QEMU, else qemu-system-x86_64):
 * -ENOENT when it cannot be run. */
int qemu_version(int *major, int *minor);
/* Whether that QEMU can load kstep's plugin (API 4: QEMU 9.2 or later);
 * if not, why in @why. */
bool qemu_plugin_capable(char *why, size_t len);
/* kstep's plugin: $KSTEP_PLUGIN, else kstep-plugin.so beside the kstep
 * binary (a clone's build/), else PREFIX/lib/kstep/. -ENOENT: not built. */
int qemu_plugin_path(char *out, size_t len);
/* With qemu_opts.plugin: the channel the plugin connects to as QEMU
 * starts (chan_accept it once QEMU is ready). */
struct chan *qemu_plugin_chan(const struct qemu *q);
/* "unix:PATH,server=on,wait=off" for a -qmp, -gdb or gdbserver argument,
 * PATH's commas doubled: QEMU splits option strings at a single comma, so
 * a path with one could add options of its own. NULL if out of memory;
 * free() it. */
char *qemu_unix_server(const char *path);
/* The same guest as a libvirt domain named @name, its console logged to
 * @console_log: the domain XML from run-guest.sh (VIA=libvirt), which
 * needs a private directory @rundir for a moment. *xml: free() it. */
int qemu_domain_xml(const struct qemu_opts *o, const char *name, const char *console_log, const char *rundir,
		    char **xml, char *err, size_t errlen);
/* How long QEMU may take to open its sockets. It is not a guess at how
 * long QEMU needs: qemu_wait_ready ends as soon as QEMU exits (saying
 * why), so this only bounds a QEMU that lives but never gets there. A
 * loaded machine (load 3-7) took over 10 s. */
#define QEMU_READY_MS 120000
/* Wait until both sockets accept connections. -ECHILD if QEMU exited,
 * -EINTR once *@interrupted is set (NULL: never). */
int qemu_wait_ready(struct qemu *q, int timeout_ms, const volatile sig_atomic_t *interrupted, char *err,
		    size_t errlen);
const char *qemu_gdb_socket(const struct qemu *q);
const char *qemu_qmp_socket(const struct qemu *q);
/* The unix socket of the kernel's kgdb line (qemu_opts.kgdb). */
const char *qemu_kgdb_socket(const struct qemu *q);
/* A QMP socket for kstep alone (the guest's clock at every stop). */
const char *qemu_clock_socket(const struct qemu *q);
/* Non-blocking: true once QEMU has exited; *status is its exit status
 * (128+N for a signal). */
bool qemu_exited(struct qemu *q, int *status);
/* Why QEMU ended, from its SHUTDOWN event: "guest-reset", "host-qmp-quit",
 * "host-signal", "guest-shutdown", ...; "" when none came (a panic's exit,
 * a kill). Valid once qemu_exited() said so. */
const char *qemu_shutdown_reason(const struct qemu *q);
/* Wait up to @timeout_ms for QEMU to exit by itself. */
bool qemu_wait_exit(struct qemu *q, int timeout_ms, int *status);
/* Leave QEMU running after kstep exits (a frozen guest for gdb). */
void qemu_keep(struct qemu *q);
/* Stop QEMU (unless kept) and free; removes the private directory. */
void qemu_free(struct qemu *q);

/* "kvm" if KVM really boots this kernel, from the cache run-guest.sh shares;
 * NULL when unknown. */
const char *qemu_accel_cached(const char *images);
void qemu_accel_remember(const char *images, const char *accel);

#endif
