// SPDX-License-Identifier: MIT
/*
 * qemu: QEMU started and watched for kstep (see qemu.h): run-guest.sh gives
 * the command line, a keeper process runs it, QMP sockets of kstep's own.
 */
#include "qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "files.h"
#include "plugin_chan.h"
#include "qmp.h"
#include "kerr.h"

/* How long QEMU gets to leave after SIGTERM before SIGKILL. */
#define QEMU_TERM_GRACE_MS 3000
#define KEEPER_POLL_MS 20

struct qemu {
	pid_t keeper;
	int ctl;          /* write end: 'K' = keep QEMU; EOF = stop it */
	int status;       /* read end: QEMU's exit status (int) */
	bool exited, kept;
	int exit_status;
	char dir[PATH_MAX];
	char gdb[PATH_MAX + 16];
	char qmp[PATH_MAX + 16];
	char events[PATH_MAX + 16];  /* the keeper's QMP socket */
	char clock[PATH_MAX + 16];   /* kstep's, for the guest's clock at every stop */
	char kgdb[PATH_MAX + 16];    /* the kernel's kgdb line (ttyS1), with qemu_opts.kgdb */
	int console;                 /* the caller's serial_fd (QEMU's stderr too), not ours: -1 none */
	char reason[32];             /* of QEMU's SHUTDOWN event */
	char plugin_sock[PATH_MAX + 16]; /* with qemu_opts.plugin: where kstep's plugin connects */
	struct chan *chan;
};

struct chan *qemu_plugin_chan(const struct qemu *q)
{
	return q->chan;
}

const char *qemu_gdb_socket(const struct qemu *q)
{
	return q->gdb;
}

const char *qemu_clock_socket(const struct qemu *q)
{
	return q->clock;
}

const char *qemu_qmp_socket(const struct qemu *q)
{
	return q->qmp;
}

const char *qemu_kgdb_socket(const struct qemu *q)
{
	return q->kgdb;
}

static long ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* The guest's settings as run-guest.sh reads them (in the child). */
static void guest_env(const struct qemu_opts *o, const char *rundir)
{
	setenv("IMAGES", o->images, 1);
	setenv("WORKLOAD", o->workload, 1);
	setenv("ACCEL", o->accel, 1);
	setenv("KSTEP_RUNDIR", rundir, 1);
	o->count ? setenv("COUNT", o->count, 1) : unsetenv("COUNT");
	o->smp ? setenv("SMP", o->smp, 1) : unsetenv("SMP");
	o->mem ? setenv("MEM", o->mem, 1) : unsetenv("MEM");
	o->nic ? setenv("NIC", o->nic, 1) : unsetenv("NIC");
	o->pin ? setenv("PIN", o->pin, 1) : unsetenv("PIN");
	o->workload_cpu ? setenv("WORKLOAD_CPU", o->workload_cpu, 1) : unsetenv("WORKLOAD_CPU");
	setenv("KASLR", o->kaslr ? "1" : "0", 1);
	o->rr ? setenv("RR", o->rr, 1) : unsetenv("RR");
	o->apic_timer ? setenv("APIC_TIMER", "1", 1) : unsetenv("APIC_TIMER");
	if (o->rr) {
		char log[32];

		snprintf(log, sizeof(log), "/dev/fd/%d", o->rr_fd);
		setenv("RR_LOG", log, 1);
	} else {
		unsetenv("RR_LOG");
	}
	if (o->icount || o->rr) {
		char shift[8];

		snprintf(shift, sizeof(shift), "%d", QEMU_ICOUNT_SHIFT);
		setenv("ICOUNT", "1", 1);
		setenv("ICOUNT_SHIFT", shift, 1);
	} else {
		unsetenv("ICOUNT");
	}
}

/* run-guest.sh's one-line reason for failing, from its stderr in @errpath. */
static void script_error(const char *errpath, char *err, size_t errlen)
{
	FILE *f = fopen(errpath, "r");
	char line[512] = "guest/run-guest.sh failed";

	if (f) {
		if (fgets(line, sizeof(line), f))
			line[strcspn(line, "\n")] = '\0';
		fclose(f);
	}
	snprintf(err, errlen, "%s", !strncmp(line, "run-guest: ", 11) ? line + 11 : line);
}

/* Run run-guest.sh with the guest's settings, the NULL-ended NAME, VALUE
 * pairs of @vars on top, and collect what it prints. */
static int run_guest_script(const struct qemu_opts *o, const char *rundir, const char *const *vars, struct buf *out,
			    char *err, size_t errlen)
{
	char script[PATH_MAX + 32], errpath[PATH_MAX + 32];
	int pipefd[2], status, ret = 0, errfd;
	pid_t pid;

	snprintf(script, sizeof(script), "%s/guest/run-guest.sh", o->tree);
	snprintf(errpath, sizeof(errpath), "%s/args.err", rundir);
	if (pipe2(pipefd, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		errfd = open(errpath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
		dup2(pipefd[1], 1);
		if (errfd >= 0)
			dup2(errfd, 2);
		guest_env(o, rundir);
		for (; *vars; vars += 2)
			setenv(vars[0], vars[1], 1);
		execl("/bin/bash", "bash", script, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	for (;;) {
		char chunk[4096];
		ssize_t r = read(pipefd[0], chunk, sizeof(chunk));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (buf_append(out, chunk, (size_t)r)) {
			ret = -ENOMEM;
			break;
		}
	}
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	if (!ret && (!WIFEXITED(status) || WEXITSTATUS(status))) {
		script_error(errpath, err, errlen); /* run-guest.sh explains itself in one line */
		ret = -EINVAL;
	}
	unlink(errpath);
	if (ret)
		buf_free(out);
	return ret;
}

int qemu_domain_xml(const struct qemu_opts *o, const char *name, const char *console_log, const char *rundir,
		    char **xml, char *err, size_t errlen)
{
	const char *vars[] = { "VIA", "libvirt", "PRINT_XML", "1", "DOMAIN", name, "LIBVIRT_CONSOLE_LOG", console_log,
			       NULL };
	struct buf out = { 0 };
	int ret = run_guest_script(o, rundir, vars, &out, err, errlen);

	if (!ret && buf_putc(&out, '\0')) {
		buf_free(&out);
		ret = -ENOMEM;
	}
	if (!ret)
		*xml = (char *)out.data; /* the buffer is the string: the caller frees it */
	return ret;
}

/* Ask run-guest.sh for QEMU's command line (NUL-separated). */
static int qemu_args(const struct qemu_opts *o, const char *gdb, const char *rundir, char ***argv_out,
		     char *err, size_t errlen)
{
	/* HALT: kstep starts the guest; PANIC=exit: kstep catches oopses with
	 * its probes, and one it does not catch ends QEMU (exit 1) rather
	 * than pausing it for ever. */
	/* With kgdb the kernel runs to kgdbwait and waits there. */
	const char *vars[] = { "PRINT_ARGS", "1", "HALT", o->kgdb ? "0" : "1", "PANIC", "exit", "GDB_SOCK", gdb,
			       "KGDB", o->kgdb ? "1" : "0", NULL };
	struct buf out = { 0 };
	size_t n = 0;
	char **argv;
	int ret = run_guest_script(o, rundir, vars, &out, err, errlen);

	if (ret)
		return ret;
	for (size_t i = 0; i < out.len; i++)
		n += out.data[i] == '\0';
	argv = calloc(n + 1, sizeof(*argv));
	if (!argv) {
		buf_free(&out);
		return -ENOMEM;
	}
	for (size_t i = 0, k = 0; i < out.len && k < n; k++) {
		argv[k] = strdup((char *)out.data + i);
		if (!argv[k]) {
			ret = -ENOMEM;
			break;
		}
		i += strlen((char *)out.data + i) + 1;
	}
	buf_free(&out);
	if (ret) {
		for (size_t k = 0; k < n; k++)
			free(argv[k]);
		free(argv);
		return ret;
	}
	*argv_out = argv;
	return 0;
}

static void stop_child(pid_t pid)
{
	struct timespec t0;
	int st;

	kill(pid, SIGTERM);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (ms_since(&t0) < QEMU_TERM_GRACE_MS) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return;
		usleep(KEEPER_POLL_MS * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
}

/* QEMU's private directory @dir and the sockets in it. */
static void remove_dir(const char *dir)
{
	static const char *const names[] = { "gdb.sock",   "qmp.sock", "events.sock", "clock.sock",
					     "plugin.sock", "kgdb.sock", "args.err" };
	char path[PATH_MAX + 16];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* The keeper: runs QEMU, reports its exit, stops it when kstep goes away
 * unless told to keep it. QEMU dies with the keeper (PR_SET_PDEATHSIG), so
 * killing kstep and the keeper together cannot orphan it; a kept QEMU keeps
 * its keeper, which then only waits for it. */
/* What the keeper reports when QEMU has ended. */
struct qemu_end {
	int status;
	char reason[32];  /* of QEMU's SHUTDOWN event, "" if none came */
};

/* QEMU's events, on a QMP socket of the keeper's own: a SHUTDOWN event
 * says why QEMU ends (a guest reset and a QMP quit both exit 0). */
static void keeper_events(struct qmp **events, bool *gone, const char *path, char *reason, size_t len)
{
	char err[256];

	if (*gone)
		return;
	if (!*events && qmp_open(events, path, err, sizeof(err)))
		return; /* not there yet: next round */
	if (qmp_drain_events(*events, reason, len)) {
		qmp_close(*events);
		*events = NULL;
		*gone = true;
	}
}

static void __attribute__((noreturn)) keeper(int ctl, int status_fd, char **argv, int serial_fd,
					     const char *events_path)
{
	struct qemu_end end = { 0 };
	struct qmp *events = NULL;
	pid_t parent = getpid(), pid;
	bool kept = false, events_gone = false;
	int st;

	setpgid(0, 0);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN); /* kstep may be gone when QEMU's status comes */
	/* A kept QEMU's keeper outlives kstep: it must not hold kstep's
	 * standard streams (a pipe to whoever ran kstep would never end). */
	for (int fd = 0, devnull = open("/dev/null", O_RDWR | O_CLOEXEC); fd < 3 && devnull >= 0; fd++)
		dup2(devnull, fd); /* the copies on 0-2 are not close-on-exec; the original is */
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127); /* the keeper died before the line above */
		if (serial_fd >= 0) {
			dup2(serial_fd, 1);
			dup2(serial_fd, 2);
		}
		execvp(argv[0], argv);
		/* Into the console log, where the session reads why QEMU ended. */
		dprintf(STDERR_FILENO, "kstep: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = kept ? -1 : ctl, .events = POLLIN },
			{ .fd = events ? qmp_fd(events) : -1, .events = POLLIN },
		};

		if (waitpid(pid, &st, WNOHANG) == pid) {
			keeper_events(&events, &events_gone, events_path, end.reason, sizeof(end.reason));
			if (kept) /* kstep left it to QEMU: its sockets went with QEMU */
				remove_dir(dirname(strdupa(events_path)));
			end.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			_exit(write(status_fd, &end, sizeof(end)) == sizeof(end) ? 0 : 1);
		}
		if (!events)
			keeper_events(&events, &events_gone, events_path, end.reason, sizeof(end.reason));
		if (poll(pfd, 2, KEEPER_POLL_MS) <= 0)
			continue;
		if (pfd[1].revents)
			keeper_events(&events, &events_gone, events_path, end.reason, sizeof(end.reason));
		if (pfd[0].revents) {
			char c = 0;
			ssize_t r = read(ctl, &c, 1);

			if (r == 1 && c == 'K')
				kept = true; /* from now on only wait for QEMU */
			else if (r <= 0) {
				stop_child(pid);
				_exit(0);
			}
		}
	}
}

/* kstep __keeper's own arguments (it, CTL, STATUS, CONSOLE, EVENTS), after
 * the program name; QEMU's command line follows them. */
#define KEEPER_OWN_ARGS 6

static void free_keeper_argv(char **v)
{
	if (!v)
		return;
	for (int i = 0; i < KEEPER_OWN_ARGS; i++)
		free(v[i]);
	free(v);
}

/* A descriptor number (-1: none) in @arg, decimal. */
static bool fd_number(const char *arg, int *fd)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (*end || end == arg || v < -1 || v > INT_MAX)
		return false;
	*fd = (int)v;
	return true;
}

/* An open pipe end named by @arg. */
static bool pipe_fd(const char *arg, int *fd)
{
	struct stat st;

	return fd_number(arg, fd) && *fd >= 0 && !fstat(*fd, &st) && S_ISFIFO(st.st_mode);
}

int qemu_keeper_main(int argc, char **argv)
{
	int ctl, status, serial;

	if (argc < KEEPER_OWN_ARGS - 1 || !pipe_fd(argv[0], &ctl) || !pipe_fd(argv[1], &status) ||
	    !fd_number(argv[2], &serial)) {
		fprintf(stderr, "kstep: %s is kstep's own (it runs QEMU for a session); not a command\n", QEMU_KEEPER_ARG);
		return 2;
	}
	/* Not QEMU's: the keeper's alone, as in kstep they were (QEMU gets
	 * the console as its stdout and stderr). */
	fcntl(ctl, F_SETFD, FD_CLOEXEC);
	fcntl(status, F_SETFD, FD_CLOEXEC);
	if (serial >= 0)
		fcntl(serial, F_SETFD, FD_CLOEXEC);
	signal(SIGTERM, SIG_IGN); /* as kstep's handler left it: a flag no one reads */
	keeper(ctl, status, argv + 4, serial, argv[3]);
}

/* A decimal descriptor number as an argument; NULL when out of memory. */
static char *fd_arg(int fd)
{
	char *v = malloc(16);

	if (v)
		snprintf(v, 16, "%d", fd);
	return v;
}

/* kstep __keeper CTL STATUS SERIAL EVENTS QEMU-ARGV..., made before the
 * fork (no allocation in the child); NULL when out of memory. */
static char **keeper_argv(int ctl, int status, int serial, const char *events, char **qemu_argv)
{
	size_t n = 0;
	char **v;

	while (qemu_argv[n])
		n++;
	if (!(v = calloc(KEEPER_OWN_ARGS + n + 1, sizeof(*v))))
		return NULL;
	v[0] = strdup("kstep");
	v[1] = strdup(QEMU_KEEPER_ARG);
	v[2] = fd_arg(ctl);
	v[3] = fd_arg(status);
	v[4] = fd_arg(serial);
	v[5] = strdup(events);
	for (size_t i = 0; i < n; i++)
		v[KEEPER_OWN_ARGS + i] = qemu_argv[i]; /* borrowed: freed with qemu_argv */
	for (int i = 0; i < KEEPER_OWN_ARGS; i++)
		if (!v[i]) {
			free_keeper_argv(v);
			return NULL;
		}
	return v;
}

/* The keeper in a fresh image of kstep's binary: a forked kstep that ran
 * on would share every page with kstep for the whole session, and each
 * first write kstep made to one (a cache filled in a step window) would
 * copy it, 15-50 us a page here. Returns only when it cannot exec. */
static void exec_keeper(const int fds[3], char **kargv)
{
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			fcntl(fds[i], F_SETFD, 0);
	execv("/proc/self/exe", kargv);
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			fcntl(fds[i], F_SETFD, FD_CLOEXEC);
}

bool qemu_named(void)
{
	const char *named = getenv("QEMU");

	return named && *named;
}

const char *qemu_in_use(void)
{
	return qemu_named() ? getenv("QEMU") : "qemu-system-x86_64";
}

/* What the QEMU in use ($QEMU, else qemu-system-x86_64) prints on its
 * stdout for @arg1 @arg2 (NULL: none), NUL-terminated in @out. -errno
 * when it could not be run. */
static int qemu_query(const char *arg1, const char *arg2, struct buf *out)
{
	const char *qemu = qemu_in_use();
	char chunk[4096];
	int pipefd[2], st = 0;
	ssize_t r;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC))
		return -errno;
	if ((pid = fork()) == 0) {
		int devnull = open("/dev/null", O_RDWR);

		dup2(pipefd[1], 1);
		if (devnull >= 0)
			dup2(devnull, 2);
		execlp(qemu, qemu, arg1, arg2, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	while (pid > 0 && (r = read(pipefd[0], chunk, sizeof(chunk))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || buf_append(out, chunk, (size_t)r))
			break;
	}
	close(pipefd[0]);
	if (pid > 0)
		waitpid(pid, &st, 0);
	if (pid <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) == 127 || buf_putc(out, '\0')) {
		buf_free(out);
		return pid <= 0 ? -errno : -ENOENT;
	}
	return 0;
}

bool qemu_e1000_replays(void)
{
	struct buf out = { 0 };
	bool found;

	if (qemu_query("-device", "e1000,help", &out))
		return true; /* cannot tell: as QEMU 7.2 */
	found = strstr((char *)out.data, "mitigation=") != NULL;
	buf_free(&out);
	return found;
}

int qemu_version(int *major, int *minor)
{
	struct buf out = { 0 };
	const char *v;
	int ret = qemu_query("--version", NULL, &out);

	if (ret)
		return ret;
	v = strstr((char *)out.data, "version ");
	ret = v && sscanf(v + 8, "%d.%d", major, minor) == 2 ? 0 : -EPROTO;
	buf_free(&out);
	return ret;
}

bool qemu_plugin_capable(char *why, size_t len)
{
	int major, minor;

	if (qemu_version(&major, &minor)) {
		snprintf(why, len, "cannot tell the version of %s", qemu_in_use());
		return false;
	}
	if (major * 100 + minor < 902) {
		snprintf(why, len, "QEMU %d.%d has no plugin memory reads (API 4, QEMU 9.2 and later; "
			 "make qemu gets QEMU 10, then QEMU=images/qemu/bin/qemu-system-x86_64)", major, minor);
		return false;
	}
	return true;
}

int qemu_plugin_path(char *out, size_t len)
{
	static const char *const places[] = { "/kstep-plugin.so", "/../lib/kstep/kstep-plugin.so" };
	char exe[PATH_MAX / 2];
	const char *dir;
	ssize_t n;

	if (!out || !len)
		return -EINVAL;
	if (getenv("KSTEP_PLUGIN") && *getenv("KSTEP_PLUGIN")) {
		snprintf(out, len, "%s", getenv("KSTEP_PLUGIN"));
		return access(out, R_OK) ? -errno : 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -ENOENT;
	exe[n] = '\0';
	dir = dirname(exe);
	/* A clone's build/, then PREFIX/bin's PREFIX/lib/kstep. */
	for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
		snprintf(out, len, "%s%s", dir, places[i]);
		if (!access(out, R_OK))
			return 0;
	}
	return -ENOENT;
}

/* @prefix, then each VALUE with its commas doubled and followed by the
 * string after it (a NULL-ended list of value, suffix pairs). */
static char *qemu_option(const char *prefix, ...)
{
	struct buf b = { 0 };
	const char *value;
	va_list ap;
	int err = buf_append(&b, prefix, strlen(prefix));

	va_start(ap, prefix);
	while (!err && (value = va_arg(ap, const char *))) {
		const char *suffix = va_arg(ap, const char *);

		for (const char *p = value; *p && !err; p++)
			err = (*p == ',' && buf_putc(&b, ',')) || buf_putc(&b, *p);
		if (!err)
			err = buf_append(&b, suffix, strlen(suffix));
	}
	va_end(ap);
	if (!err && !buf_putc(&b, '\0'))
		return (char *)b.data;
	buf_free(&b);
	return NULL;
}

char *qemu_unix_server(const char *path)
{
	return qemu_option("unix:", path, ",server=on,wait=off", NULL);
}

/* After run-guest.sh's command (whose console is on QEMU's stdout, which
 * the keeper points at the log kstep created): two QMP sockets of kstep's
 * own besides the user's (QEMU serves one client a socket), the keeper's
 * for events and one for the guest's clock. */
static int add_own_args(char ***argv, const struct qemu *q, const struct qemu_opts *o)
{
	const char *plugin = o->plugin;
	char *own[10] = { strdup("-monitor"), strdup("none"), strdup("-qmp"), NULL, strdup("-qmp"), NULL };
	size_t n = 0, nown = plugin ? 10 : 6;
	char **full;
	int ret = 0;

	own[3] = qemu_unix_server(q->events);
	own[5] = qemu_unix_server(q->clock);
	if (plugin) {
		own[6] = strdup("-plugin");
		/* Under -icount the plugin counts instructions: the guest's clock. */
		own[7] = qemu_option("file=", plugin, ",sock=", q->plugin_sock, o->icount || o->rr ? ",icount=on" : "",
				     NULL);
		own[8] = strdup("-d"); /* what the plugin says (qemu_plugin_outs) goes to */
		own[9] = strdup("plugin"); /* QEMU's stderr: the console log */
	}
	while ((*argv)[n])
		n++;
	full = realloc(*argv, (n + nown + 1) * sizeof(*full));
	if (full)
		*argv = full;
	for (size_t i = 0; i < nown; i++)
		if (!own[i])
			ret = -ENOMEM;
	if (!full || ret) {
		for (size_t i = 0; i < nown; i++)
			free(own[i]);
		return -ENOMEM;
	}
	memcpy(full + n, own, nown * sizeof(*own));
	full[n + nown] = NULL;
	return 0;
}

int qemu_launch(struct qemu **out, const struct qemu_opts *o, char *err, size_t errlen)
{
	struct qemu *q = calloc(1, sizeof(*q));
	const char *base = getenv("XDG_RUNTIME_DIR");
	char tmpl[PATH_MAX], **argv = NULL, **kargv = NULL;
	int ctl[2] = { -1, -1 }, status[2] = { -1, -1 }, ret;

	if (!q)
		return -ENOMEM;
	q->ctl = q->status = q->console = -1;
	/* A private directory: only we can reach the sockets inside. */
	snprintf(tmpl, sizeof(tmpl), "%s/kstep-%u-XXXXXX", base && *base ? base : "/tmp", (unsigned)getuid());
	if (!mkdtemp(tmpl)) {
		ret = -errno;
		snprintf(err, errlen, "cannot create a private directory %s: %s", tmpl, strerror(errno));
		goto fail;
	}
	chmod(tmpl, 0700);
	snprintf(q->dir, sizeof(q->dir), "%s", tmpl);
	snprintf(q->gdb, sizeof(q->gdb), "%s/gdb.sock", q->dir);
	snprintf(q->qmp, sizeof(q->qmp), "%s/qmp.sock", q->dir);
	snprintf(q->events, sizeof(q->events), "%s/events.sock", q->dir);
	snprintf(q->clock, sizeof(q->clock), "%s/clock.sock", q->dir);
	snprintf(q->kgdb, sizeof(q->kgdb), "%s/kgdb.sock", q->dir); /* run-guest.sh's name in its run directory */
	q->console = o->serial_fd;

	ret = qemu_args(o, q->gdb, q->dir, &argv, err, errlen);
	if (ret)
		goto fail;
	if (o->plugin) {
		snprintf(q->plugin_sock, sizeof(q->plugin_sock), "%s/plugin.sock", q->dir);
		if ((ret = chan_listen(&q->chan, q->plugin_sock, err, errlen)))
			goto fail;
	}
	if ((ret = add_own_args(&argv, q, o)))
		goto fail;
	if (pipe2(ctl, O_CLOEXEC) || pipe2(status, O_CLOEXEC)) {
		ret = -errno;
		goto fail;
	}
	if (!(kargv = keeper_argv(ctl[0], status[1], o->serial_fd, q->events, argv))) {
		ret = -ENOMEM;
		goto fail;
	}
	q->keeper = fork();
	if (q->keeper < 0) {
		ret = -errno;
		goto fail;
	}
	if (q->keeper == 0) {
		close(ctl[1]);
		close(status[0]);
		exec_keeper((int[3]){ ctl[0], status[1], o->serial_fd }, kargv);
		keeper(ctl[0], status[1], argv, o->serial_fd, q->events); /* the exec failed: as a fork */
	}
	free_keeper_argv(kargv);
	close(ctl[0]);
	close(status[1]);
	q->ctl = ctl[1];
	q->status = status[0];
	for (size_t i = 0; argv[i]; i++)
		free(argv[i]);
	free(argv);
	*out = q;
	return 0;
fail:
	free_keeper_argv(kargv);
	if (argv) {
		for (size_t i = 0; argv[i]; i++)
			free(argv[i]);
		free(argv);
	}
	for (int i = 0; i < 2; i++) {
		if (ctl[i] >= 0)
			close(ctl[i]);
		if (status[i] >= 0)
			close(status[i]);
	}
	qemu_free(q);
	return ret;
}

static bool can_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		close(fd);
		return false;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ok = !connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return ok;
}

/* QEMU's own last error line ("qemu-system-x86_64: -device ...: Property
 * 'e1000.autonegotiation' not found") from the console it shares with the
 * guest, "" when there is none. */
static void qemu_error_line(const struct qemu *q, char *line, size_t len)
{
	char text[16384];
	ssize_t n = q->console >= 0 ? pread(q->console, text, sizeof(text) - 1, 0) : -1;
	char *at, *found = NULL;

	line[0] = '\0';
	if (n <= 0)
		return;
	text[n] = '\0';
	for (at = text; (at = strstr(at, "qemu-system-")); at++)
		if (at == text || at[-1] == '\n')
			found = at;
	if (found)
		snprintf(line, len, ": %.*s", (int)strcspn(found, "\r\n"), found);
}

int qemu_wait_ready(struct qemu *q, int timeout_ms, const volatile sig_atomic_t *interrupted, char *err,
		    size_t errlen)
{
	char why[512];
	struct timespec t0;
	struct stat st;
	int status;

	/* Poll for the sockets instead of sleeping a fixed time. The gdb socket
	 * is probed only by its existence: a connect would count as gdb's. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (qemu_exited(q, &status)) {
			qemu_error_line(q, why, sizeof(why));
			snprintf(err, errlen, "QEMU exited with status %d before it was ready%s", status, why);
			return -ECHILD;
		}
		if (!stat(q->gdb, &st) && S_ISSOCK(st.st_mode) && can_connect(q->qmp)) {
			/* can_connect used up QEMU's single QMP client slot briefly;
			 * QEMU accepts the next one once it has seen the close. */
			return 0;
		}
		if (interrupted && *interrupted)
			return kerr_set(err, errlen, -EINTR, "interrupted while QEMU was starting");
		if (ms_since(&t0) > timeout_ms) {
			snprintf(err, errlen, "QEMU did not open its sockets within %d ms", timeout_ms);
			return -ETIMEDOUT;
		}
		usleep(5000);
	}
}

bool qemu_exited(struct qemu *q, int *status)
{
	if (!q->exited && q->status >= 0) {
		struct pollfd pfd = { .fd = q->status, .events = POLLIN };

		if (poll(&pfd, 1, 0) > 0) {
			struct qemu_end end;

			if (read(q->status, &end, sizeof(end)) == sizeof(end)) {
				q->exit_status = end.status;
				memcpy(q->reason, end.reason, sizeof(q->reason));
				q->reason[sizeof(q->reason) - 1] = '\0';
				q->exited = true;
			} else if (!q->kept) {
				q->exit_status = -1; /* keeper died: treat QEMU as gone */
				q->exited = true;
			}
		}
	}
	if (q->exited && status)
		*status = q->exit_status;
	return q->exited;
}

const char *qemu_shutdown_reason(const struct qemu *q)
{
	return q->reason;
}

bool qemu_wait_exit(struct qemu *q, int timeout_ms, int *status)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!qemu_exited(q, status)) {
		if (ms_since(&t0) >= timeout_ms)
			return false;
		usleep(KEEPER_POLL_MS * 1000);
	}
	return true;
}

void qemu_keep(struct qemu *q)
{
	if (q->ctl >= 0 && write(q->ctl, "K", 1) == 1)
		q->kept = true;
}

void qemu_free(struct qemu *q)
{
	int st;

	if (!q)
		return;
	chan_free(q->chan); /* first: a plugin waiting for kstep to read must not hold QEMU up */
	if (q->ctl >= 0)
		close(q->ctl); /* EOF: the keeper stops QEMU unless told 'K' */
	if (q->keeper > 0 && !q->kept)
		waitpid(q->keeper, &st, 0); /* a kept QEMU's keeper outlives kstep */
	if (q->status >= 0)
		close(q->status);
	if (q->dir[0] && !q->kept)
		remove_dir(q->dir);
	free(q);
}

static void accel_key(const char *images, char *key, size_t len)
{
	char path[PATH_MAX], ver[256] = "";
	struct stat st;
	FILE *p;

	snprintf(path, sizeof(path), "%s/bzImage", images);
	if (stat(path, &st)) {
		key[0] = '\0';
		return;
	}
	p = popen("${QEMU:-qemu-system-x86_64} --version 2>/dev/null", "r");
	if (p) {
		if (fgets(ver, sizeof(ver), p))
			ver[strcspn(ver, "\n")] = '\0';
		pclose(p);
	}
	/* Same key as run-guest.sh: "size-mtime version-line". */
	snprintf(key, len, "%lld-%lld %s", (long long)st.st_size, (long long)st.st_mtime, ver);
}

const char *qemu_accel_cached(const char *images)
{
	char path[PATH_MAX], key[512], line[512], accel[16] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/accel.probe", images);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	accel_key(images, key, sizeof(key));
	if (fgets(line, sizeof(line), f) && (line[strcspn(line, "\n")] = '\0', !strcmp(line, key)) &&
	    fgets(accel, sizeof(accel), f))
		accel[strcspn(accel, "\n")] = '\0';
	fclose(f);
	return !strcmp(accel, "kvm") ? "kvm" : !strcmp(accel, "tcg") ? "tcg" : NULL;
}

void qemu_accel_remember(const char *images, const char *accel)
{
	char key[512], text[600];

	accel_key(images, key, sizeof(key));
	snprintf(text, sizeof(text), "%s\n%s\n", key, accel);
	files_replace(images, "accel.probe", text); /* a cache: losing it costs a probe */
}
