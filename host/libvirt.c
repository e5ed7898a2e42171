// SPDX-License-Identifier: MIT
/*
 * libvirt: a libvirt domain as kstep's guest (libvirt.h). Everything that
 * touches the domain goes through libvirt's C API: its state, the HMP
 * gdbserver command that opens and closes the session's stub, the QMP
 * query that tells whether a stub is there already, and the dump. For a
 * domain on another host (qemu+ssh://) the stub's unix socket is forwarded
 * by ssh into kstep's private run directory; no TCP port is opened.
 */
#include "libvirt.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/uri.h>
#include <libxml/xpath.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "files.h"
#include "qemu.h"
#include "rsp.h"
#include "kerr.h"

/* How long ssh gets to set up the forwarded socket. */
#define SSH_FORWARD_MS 15000
#define SSH_POLL_MS 50
#define STUB_NAME "kstep-gdb.sock"
#define DETACH_TIMEOUT_MS 5000
#define ENDING_GRACE_MS 3000

struct lv_domain {
	virConnectPtr conn;
	virDomainPtr dom;
	char uri[512];
	char name[256];
	bool was_paused;
	bool created, keep;      /* a domain kstep defined (destroyed at the end unless kept) */
	bool tainted_before, tainted_by_us;
	bool own_stub;           /* we ran 'gdbserver' and must run 'gdbserver none' */
	bool stub_tcp;
	char stub[PATH_MAX];     /* the stub's socket on the domain's host */
	pid_t ssh;               /* the forwarding ssh, 0: none */
	char local_sock[PATH_MAX + 64];
};

const char *lv_default_uri(void)
{
	return geteuid() == 0 ? "qemu:///system" : "qemu:///session";
}

const char *lv_uri(const struct lv_domain *d)
{
	return d->uri;
}

const char *lv_name(const struct lv_domain *d)
{
	return d->name;
}

bool lv_tainted_by_us(const struct lv_domain *d)
{
	return d->tainted_by_us;
}

bool lv_ends_with_kstep(const struct lv_domain *d)
{
	return d->created && !d->keep;
}

bool lv_stub_is_tcp(const struct lv_domain *d)
{
	return d->stub_tcp;
}

/* libvirt prints every error to stderr unless told otherwise: kstep says
 * them itself, once, with what to do. */
static void quiet(void *ctx, virErrorPtr e)
{
	(void)ctx;
	(void)e;
}

static const char *last_error(void)
{
	const char *m = virGetLastErrorMessage();

	return m && *m ? m : "unknown libvirt error";
}

/* The domain's architecture from its XML (<os><type arch=...>). */
static int domain_arch(virDomainPtr dom, char *out, size_t len)
{
	char *xml = virDomainGetXMLDesc(dom, 0);
	xmlDocPtr doc = xml ? xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL, XML_PARSE_NONET) : NULL;
	xmlXPathContextPtr ctx = doc ? xmlXPathNewContext(doc) : NULL;
	xmlXPathObjectPtr r = ctx ? xmlXPathEvalExpression(BAD_CAST "string(/domain/os/type/@arch)", ctx) : NULL;
	int ret = r && r->stringval ? 0 : -EIO;

	if (!ret)
		snprintf(out, len, "%s", (const char *)r->stringval);
	xmlXPathFreeObject(r);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	free(xml);
	return ret;
}

static bool is_tainted(virDomainPtr dom)
{
	char **msgs = NULL;
	int n = virDomainGetMessages(dom, &msgs, VIR_DOMAIN_MESSAGE_TAINTING);
	bool tainted = n > 0;

	for (int i = 0; i < n; i++)
		free(msgs[i]);
	free(msgs);
	return tainted;
}

static int check_state(struct lv_domain *d, char *err, size_t errlen)
{
	int state, reason;

	if (virDomainGetState(d->dom, &state, &reason, 0) < 0)
		return kerr_set(err, errlen, -EIO, "cannot read the state of domain '%s': %s", d->name, last_error());
	if (state != VIR_DOMAIN_RUNNING && state != VIR_DOMAIN_PAUSED) {
		snprintf(err, errlen, "domain '%s' is not running (%s): start it first (virsh -c %s start %s)", d->name,
			 state == VIR_DOMAIN_SHUTOFF ? "shut off" : "neither running nor paused", d->uri, d->name);
		return -ESRCH;
	}
	d->was_paused = state == VIR_DOMAIN_PAUSED;
	return 0;
}

static int find_domain(struct lv_domain *d, char *err, size_t errlen)
{
	char arch[64];

	if (!(d->dom = virDomainLookupByName(d->conn, d->name))) {
		if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN) {
			snprintf(err, errlen, "no domain '%s' at %s (virsh -c %s list --all lists them)", d->name, d->uri,
				 d->uri);
			return -ENOENT;
		}
		snprintf(err, errlen, "cannot look up domain '%s' at %s: %s", d->name, d->uri, last_error());
		return -EIO;
	}
	if (domain_arch(d->dom, arch, sizeof(arch))) {
		snprintf(err, errlen, "cannot read the definition of domain '%s': %s", d->name, last_error());
		return -EIO;
	}
	if (strcmp(arch, "x86_64")) {
		snprintf(err, errlen, "domain '%s' is an %s guest: kstep debugs x86-64 kernels", d->name, arch);
		return -EPROTOTYPE;
	}
	return check_state(d, err, errlen);
}

int lv_open(struct lv_domain **out, const char *uri, const char *name, char *err, size_t errlen)
{
	struct lv_domain *d = calloc(1, sizeof(*d));
	int ret;

	if (!d)
		return -ENOMEM;
	snprintf(d->uri, sizeof(d->uri), "%s", uri ? uri : lv_default_uri());
	snprintf(d->name, sizeof(d->name), "%s", name);
	virSetErrorFunc(NULL, quiet);
	if (!(d->conn = virConnectOpen(d->uri))) {
		snprintf(err, errlen, "cannot connect to libvirt at %s: %s (is libvirtd running there? as root: "
			 "systemctl start libvirtd, or virtlogd -d; libvirtd -d)", d->uri, last_error());
		free(d);
		return -ECONNREFUSED;
	}
	if ((ret = find_domain(d, err, errlen))) {
		lv_close(d, false, NULL, 0);
		return ret;
	}
	d->tainted_before = is_tainted(d->dom);
	*out = d;
	return 0;
}

/* One monitor command (HMP when @hmp), its reply in *reply (free it). */
static int monitor(struct lv_domain *d, const char *cmd, bool hmp, char **reply, char *err, size_t errlen)
{
	*reply = NULL;
	if (virDomainQemuMonitorCommand(d->dom, cmd, reply, hmp ? VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP : 0) < 0) {
		snprintf(err, errlen, "the monitor of domain '%s' refused '%s': %s", d->name, cmd, last_error());
		return -EIO;
	}
	if (!d->tainted_before && !d->tainted_by_us)
		d->tainted_by_us = is_tainted(d->dom);
	return 0;
}

/* What QEMU says of a chardev: its filename, by label. */
struct chardevs {
	char gdb[1024];     /* "" when there is no gdbstub */
	char monitor[1024]; /* libvirt's own monitor socket */
};

static int query_chardevs(struct lv_domain *d, struct chardevs *c, char *err, size_t errlen)
{
	char *reply;
	json_object *root, *list;
	int ret = monitor(d, "{\"execute\":\"query-chardev\"}", false, &reply, err, errlen);

	if (ret)
		return ret;
	memset(c, 0, sizeof(*c));
	root = json_tokener_parse(reply);
	free(reply);
	if (!root || !json_object_object_get_ex(root, "return", &list) || !json_object_is_type(list, json_type_array)) {
		json_object_put(root);
		snprintf(err, errlen, "domain '%s': QEMU's query-chardev answered something unexpected", d->name);
		return -EPROTO;
	}
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *dev = json_object_array_get_idx(list, i), *label, *file;

		if (!json_object_object_get_ex(dev, "label", &label) || !json_object_object_get_ex(dev, "filename", &file))
			continue;
		if (!strcmp(json_object_get_string(label), "gdb"))
			snprintf(c->gdb, sizeof(c->gdb), "%s", json_object_get_string(file));
		else if (!strcmp(json_object_get_string(label), "charmonitor"))
			snprintf(c->monitor, sizeof(c->monitor), "%s", json_object_get_string(file));
	}
	json_object_put(root);
	return 0;
}

/* "unix:/var/lib/libvirt/qemu/domain-1-NAME/monitor.sock,server=on" ->
 * the directory, where the domain's QEMU may create files. */
static int domain_dir(const struct chardevs *c, char *out, size_t len)
{
	const char *p = c->monitor;
	char *slash;

	if (strncmp(p, "unix:", 5))
		return -ENOENT;
	snprintf(out, len, "%s", p + 5);
	out[strcspn(out, ",")] = '\0';
	if (!(slash = strrchr(out, '/')) || slash == out)
		return -ENOENT;
	*slash = '\0';
	return 0;
}

/* A stub the domain has already: "disconnected:unix:PATH,server=on" is idle
 * (ours to use), anything else has a debugger on it. */
static int use_existing_stub(struct lv_domain *d, const char *file, char *path, size_t len, char *err, size_t errlen)
{
	const char *p = file;

	if (strncmp(p, "disconnected:", 13)) {
		snprintf(err, errlen, "domain '%s': its gdbstub (%s) is held by another debugger: detach that "
			 "one first (QEMU serves one at a time)", d->name, file);
		return -EBUSY;
	}
	p += 13;
	if (!strncmp(p, "unix:", 5)) {
		snprintf(path, len, "%s", p + 5);
		path[strcspn(path, ",")] = '\0';
		return 0;
	}
	if (!strncmp(p, "tcp:", 4) && strrchr(p, ':') > p + 3) {
		int port = atoi(strrchr(p, ':') + 1);

		for (const char *c = p + 4; *c && *c != ','; c++)
			if (*c == ':')
				port = atoi(c + 1);
		snprintf(path, len, "127.0.0.1:%d", port);
		d->stub_tcp = true;
		return 0;
	}
	snprintf(err, errlen, "domain '%s' has a gdbstub kstep cannot reach (%s)", d->name, file);
	return -EPROTONOSUPPORT;
}

/* 'gdbserver unix:PATH' through the monitor; QEMU creates the socket as
 * the domain's user, under whatever confines it. */
static int start_gdbserver(struct lv_domain *d, const char *path, char *err, size_t errlen)
{
	char cmd[2 * PATH_MAX + 64], *reply, *dev = qemu_unix_server(path);
	int ret;

	if (!dev)
		return -ENOMEM;
	snprintf(cmd, sizeof(cmd), "gdbserver %s", dev);
	free(dev);
	if ((ret = monitor(d, cmd, true, &reply, err, errlen)))
		return ret;
	if (!strstr(reply, "Waiting for gdb connection")) {
		reply[strcspn(reply, "\r\n")] = '\0';
		snprintf(err, errlen, "domain '%s': its QEMU cannot open a gdbstub at %s (%s): QEMU creates the "
			 "socket as the domain's user, confined by libvirt (DAC, AppArmor); give --stub-path in a "
			 "directory it may write, or leave the default (the domain's own directory)", d->name, path, reply);
		free(reply);
		return -EACCES;
	}
	free(reply);
	d->own_stub = true;
	return 0;
}

static void stop_gdbserver(struct lv_domain *d, char *err, size_t errlen)
{
	char *reply = NULL;

	if (d->own_stub && !monitor(d, "gdbserver none", true, &reply, err, errlen))
		d->own_stub = false;
	free(reply);
}

/* qemu+ssh://[user@]host[:port]/... : ssh's arguments for reaching host. */
struct ssh_target {
	char host[256], user[128], port[16], keyfile[PATH_MAX];
	bool no_verify;
};

/* 0 local, 1 ssh (@t filled), -EPROTONOSUPPORT another remote transport. */
static int remote_target(const char *uri, struct ssh_target *t)
{
	xmlURIPtr u = xmlParseURI(uri);
	int ret = 0;

	memset(t, 0, sizeof(*t));
	if (!u)
		return -EINVAL;
	if (u->server && *u->server) {
		ret = u->scheme && strstr(u->scheme, "+ssh") ? 1 : -EPROTONOSUPPORT;
		snprintf(t->host, sizeof(t->host), "%s", u->server);
		snprintf(t->user, sizeof(t->user), "%s", u->user ? u->user : "");
		if (u->port > 0)
			snprintf(t->port, sizeof(t->port), "%d", u->port);
		for (char *q = u->query_raw ? strtok(u->query_raw, "&") : NULL; q; q = strtok(NULL, "&"))
			if (!strncmp(q, "keyfile=", 8))
				snprintf(t->keyfile, sizeof(t->keyfile), "%s", q + 8);
			else if (!strcmp(q, "no_verify=1"))
				t->no_verify = true;
	}
	xmlFreeURI(u);
	return ret;
}

static void exec_ssh(const struct ssh_target *t, const char *forward)
{
	const char *argv[24];
	int n = 0;

	argv[n++] = "ssh";
	argv[n++] = "-N";
	argv[n++] = "-oBatchMode=yes";
	argv[n++] = "-oExitOnForwardFailure=yes";
	argv[n++] = "-oStreamLocalBindMask=0177";
	if (t->no_verify)
		argv[n++] = "-oStrictHostKeyChecking=no";
	if (*t->port) {
		argv[n++] = "-p";
		argv[n++] = t->port;
	}
	if (*t->user) {
		argv[n++] = "-l";
		argv[n++] = t->user;
	}
	if (*t->keyfile) {
		argv[n++] = "-i";
		argv[n++] = t->keyfile;
	}
	argv[n++] = "-L";
	argv[n++] = forward;
	argv[n++] = t->host;
	argv[n] = NULL;
	execvp("ssh", (char *const *)argv);
	_exit(127);
}

static long ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* ssh -L LOCAL:REMOTE: the remote stub as a socket in our run directory. */
static int forward_stub(struct lv_domain *d, const struct ssh_target *t, const char *remote, char *err, size_t errlen)
{
	char dir[PATH_MAX], forward[2 * PATH_MAX + 2];
	struct timespec t0;
	struct stat st;
	int status;

	files_rundir(dir, sizeof(dir));
	if (files_private_dir(dir, err, errlen))
		return -EPERM;
	snprintf(d->local_sock, sizeof(d->local_sock), "%s/libvirt-%d-gdb.sock", dir, (int)getpid());
	unlink(d->local_sock);
	snprintf(forward, sizeof(forward), "%s:%s", d->local_sock, remote);
	if ((d->ssh = fork()) < 0) {
		d->ssh = 0;
		snprintf(err, errlen, "cannot start ssh: %s", strerror(errno));
		return -errno;
	}
	if (!d->ssh) {
		int devnull = open("/dev/null", O_RDWR);

		dup2(devnull, 0);
		dup2(devnull, 1);
		setpgid(0, 0); /* Ctrl-C reaches kstep, which ends ssh when it is done */
		exec_ssh(t, forward);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (lstat(d->local_sock, &st) || !S_ISSOCK(st.st_mode)) {
		if (waitpid(d->ssh, &status, WNOHANG) == d->ssh || ms_since(&t0) > SSH_FORWARD_MS) {
			snprintf(err, errlen, "ssh to %s did not forward the domain's gdbstub (%s) to %s%s", t->host, remote,
				 d->local_sock, ms_since(&t0) > SSH_FORWARD_MS ? ": timed out" : ": ssh failed (above)");
			return -ECONNREFUSED;
		}
		usleep(SSH_POLL_MS * 1000);
	}
	return 0;
}

static void stop_forward(struct lv_domain *d)
{
	if (d->ssh > 0) {
		kill(d->ssh, SIGTERM);
		waitpid(d->ssh, NULL, 0);
		d->ssh = 0;
	}
	if (*d->local_sock)
		unlink(d->local_sock);
}

int lv_create(struct lv_domain **out, const char *uri, const char *xml, bool keep, char *err, size_t errlen)
{
	struct lv_domain *d = calloc(1, sizeof(*d));
	struct ssh_target t;

	if (!d)
		return -ENOMEM;
	snprintf(d->uri, sizeof(d->uri), "%s", uri ? uri : lv_default_uri());
	if (remote_target(d->uri, &t)) {
		snprintf(err, errlen, "%s: kstep boots its guest under libvirt on this host only (the images are here); "
			 "start it there (make run-guest VIA=libvirt) and trace it with --domain", d->uri);
		free(d);
		return -EREMOTE;
	}
	virSetErrorFunc(NULL, quiet);
	if (!(d->conn = virConnectOpen(d->uri))) {
		snprintf(err, errlen, "cannot connect to libvirt at %s: %s (is libvirtd running? as root: "
			 "systemctl start libvirtd, or virtlogd -d; libvirtd -d)", d->uri, last_error());
		free(d);
		return -ECONNREFUSED;
	}
	/* Paused at reset, as kstep's own QEMU starts; gone with this
	 * connection (however kstep ends) unless it is to be kept. */
	d->dom = virDomainCreateXML(d->conn, xml, VIR_DOMAIN_START_PAUSED | (keep ? 0 : VIR_DOMAIN_START_AUTODESTROY));
	if (!d->dom) {
		snprintf(err, errlen, "libvirt at %s did not start the guest: %s", d->uri, last_error());
		lv_close(d, false, NULL, 0);
		return -EIO;
	}
	snprintf(d->name, sizeof(d->name), "%s", virDomainGetName(d->dom));
	d->created = true;
	d->keep = keep;
	d->tainted_before = true; /* its own XML taints it (custom-argv): nothing to say */
	*out = d;
	return 0;
}

int lv_open_stub(struct lv_domain *d, const char *stub_path, char *ep, size_t eplen, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct chardevs c;
	struct ssh_target t;
	int remote = remote_target(d->uri, &t), ret;

	if (remote < 0) {
		snprintf(err, errlen, "%s: kstep reaches a remote domain's gdbstub over ssh only (qemu+ssh://HOST/system)",
			 d->uri);
		return -EPROTONOSUPPORT;
	}
	if ((ret = query_chardevs(d, &c, err, errlen)))
		return ret;
	if (*c.gdb) {
		if ((ret = use_existing_stub(d, c.gdb, path, sizeof(path), err, errlen)))
			return ret;
		if (d->stub_tcp && remote) {
			snprintf(err, errlen, "domain '%s': its gdbstub is on TCP (%s), and kstep forwards unix sockets only",
				 d->name, c.gdb);
			return -EPROTONOSUPPORT;
		}
	} else if (stub_path) {
		snprintf(path, sizeof(path), "%s", stub_path);
	} else if (domain_dir(&c, path, sizeof(path)) || strlen(path) + sizeof(STUB_NAME) + 1 > sizeof(path)) {
		snprintf(err, errlen, "domain '%s': cannot tell its directory from its monitor (%s); give --stub-path",
			 d->name, c.monitor);
		return -ENOENT;
	} else {
		strcat(path, "/" STUB_NAME);
	}
	if (!*c.gdb && (ret = start_gdbserver(d, path, err, errlen)))
		return ret;
	snprintf(d->stub, sizeof(d->stub), "%s", path);
	if (remote && (ret = forward_stub(d, &t, path, err, errlen)))
		return ret;
	if (d->stub_tcp)
		snprintf(ep, eplen, "%s", path);
	else
		snprintf(ep, eplen, "unix:%s", remote ? d->local_sock : path);
	return 0;
}

/*
 * Through libvirt's own dump (ELF, memory only, with the kernel's
 * VMCOREINFO): QEMU's dump-guest-memory sent through the monitor instead
 * crashes libvirtd 9.0 when the dump's completion event arrives outside a
 * job of its own. libvirt takes a path, not a descriptor: it is given our
 * already created file as /proc/PID/fd/N, so nothing is created by name.
 */
int lv_dump(struct lv_domain *d, int fd, char *err, size_t errlen)
{
	struct ssh_target t;
	char path[64];

	if (remote_target(d->uri, &t)) {
		snprintf(err, errlen, "domain '%s' is on %s: libvirt would write its vmcore there (virsh -c %s dump "
			 "--memory-only %s FILE does)", d->name, t.host[0] ? t.host : d->uri, d->uri, d->name);
		return -EREMOTE;
	}
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)getpid(), fd);
	if (virDomainCoreDumpWithFormat(d->dom, path, VIR_DOMAIN_CORE_DUMP_FORMAT_RAW, VIR_DUMP_MEMORY_ONLY) < 0)
		return kerr_set(err, errlen, -EIO, "libvirt did not dump domain '%s': %s", d->name, last_error());
	return 0;
}

/*
 * The session's connection broke while the guest ran with kstep's
 * breakpoints in it: QEMU keeps them, and the next hit would stop the
 * guest for a debugger that is gone. A new connection's detach ('D')
 * takes them all out and lets the guest run (over ssh, forwarded again).
 */
int lv_release_guest(struct lv_domain *d, char *err, size_t errlen)
{
	struct ssh_target t;
	struct rsp_conn *c;
	char ep[PATH_MAX + 80];
	const char *reply;
	size_t len;
	int ret;

	if (d->stub_tcp)
		snprintf(ep, sizeof(ep), "%s", d->stub);
	else
		snprintf(ep, sizeof(ep), "unix:%s", d->ssh ? d->local_sock : d->stub);
	if (d->ssh) {
		stop_forward(d);
		remote_target(d->uri, &t);
		if ((ret = forward_stub(d, &t, d->stub, err, errlen)))
			return ret;
	}
	if ((ret = rsp_connect(&c, ep, err, errlen)))
		return ret;
	/* "D;1": QEMU keeps the last session's multiprocess mode, where a
	 * bare D is refused (E22); without it the pid is ignored. */
	ret = rsp_request(c, "D;1", &reply, &len, DETACH_TIMEOUT_MS);
	if (ret || len != 2 || memcmp(reply, "OK", 2)) {
		snprintf(err, errlen, "domain '%s': its gdbstub did not take kstep's breakpoints out (%s)", d->name,
			 ret ? strerror(-ret) : "no OK to a detach");
		ret = ret ? ret : -EPROTO;
	}
	rsp_close(c);
	return ret;
}

enum lv_ending lv_ending(struct lv_domain *d, char *out, size_t len)
{
	struct timespec t0;
	int state = 0, reason = 0;

	/* The stub closes as QEMU exits: libvirt hears of it a moment later. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (virDomainIsActive(d->dom) == 1 && ms_since(&t0) < ENDING_GRACE_MS)
		usleep(SSH_POLL_MS * 1000);

	if (virDomainGetState(d->dom, &state, &reason, 0) < 0) {
		snprintf(out, len, "is gone (%s)", last_error());
		return LV_END_SHUT_OFF;
	}
	if (state != VIR_DOMAIN_SHUTOFF) {
		snprintf(out, len, "is still there: the connection to its gdbstub broke%s", d->ssh ? " (ssh ended?)" : "");
		return LV_END_ALIVE;
	}
	snprintf(out, len, "shut off (%s)",
		 reason == VIR_DOMAIN_SHUTOFF_SHUTDOWN	 ? "the guest shut down"
		 : reason == VIR_DOMAIN_SHUTOFF_CRASHED	 ? "its kernel crashed"
		 : reason == VIR_DOMAIN_SHUTOFF_DESTROYED ? "destroyed"
							  : "another reason");
	return reason == VIR_DOMAIN_SHUTOFF_CRASHED ? LV_END_CRASHED : LV_END_SHUT_OFF;
}

/* Is QEMU running the guest? Asked of QEMU: libvirt learns of the stops
 * and starts the gdbstub makes from events, and may not have yet. */
static int qemu_running(struct lv_domain *d, bool *running, char *err, size_t errlen)
{
	json_object *root, *ret, *r;
	char *reply;
	int rc = monitor(d, "{\"execute\":\"query-status\"}", false, &reply, err, errlen);

	if (rc)
		return rc;
	root = json_tokener_parse(reply);
	free(reply);
	rc = root && json_object_object_get_ex(root, "return", &ret) && json_object_object_get_ex(ret, "running", &r)
		     ? 0
		     : -EPROTO;
	if (!rc)
		*running = json_object_get_boolean(r);
	else
		snprintf(err, errlen, "domain '%s': QEMU's query-status answered something unexpected", d->name);
	json_object_put(root);
	return rc;
}

/* Pause or resume through libvirt; when libvirt's view is behind QEMU's
 * (it thinks the state is already the one wanted), through the monitor. */
static int set_running(struct lv_domain *d, bool run, char *err, size_t errlen)
{
	char *reply = NULL;
	int ret;

	if ((run ? virDomainResume(d->dom) : virDomainSuspend(d->dom)) == 0)
		return 0;
	if (virGetLastErrorCode() != VIR_ERR_OPERATION_INVALID) {
		snprintf(err, errlen, "domain '%s' could not be %s: %s (virsh %s %s)", d->name,
			 run ? "resumed" : "paused again", last_error(), run ? "resume" : "suspend", d->name);
		return -EIO;
	}
	ret = monitor(d, run ? "{\"execute\":\"cont\"}" : "{\"execute\":\"stop\"}", false, &reply, err, errlen);
	free(reply);
	return ret;
}

/* Running or paused again, as it was; a domain that ended stays ended. */
static int restore_state(struct lv_domain *d, bool frozen, char *err, size_t errlen)
{
	bool running;
	int ret;

	if (frozen || virDomainIsActive(d->dom) != 1)
		return 0;
	if ((ret = qemu_running(d, &running, err, errlen)))
		return ret;
	return running == !d->was_paused ? 0 : set_running(d, !d->was_paused, err, errlen);
}

int lv_close(struct lv_domain *d, bool frozen, char *err, size_t errlen)
{
	char why[512] = "";
	int ret = 0;

	if (!d)
		return 0;
	stop_forward(d);
	if (d->dom) {
		if (virDomainIsActive(d->dom) != 1)
			d->own_stub = false; /* it ended, and its stub with it */
		stop_gdbserver(d, why, sizeof(why));
		if (d->own_stub) {
			ret = -EIO;
			if (err)
				snprintf(err, errlen, "%s; the gdbserver kstep opened stays (virsh qemu-monitor-command %s "
					 "--hmp 'gdbserver none' closes it)", why, d->name);
		}
		if (!ret && d->created && !d->keep && virDomainIsActive(d->dom) == 1)
			virDomainDestroy(d->dom); /* autodestroy would, when the connection closes */
		else if (!ret && !d->created)
			ret = restore_state(d, frozen, err ? err : why, err ? errlen : sizeof(why));
		virDomainFree(d->dom);
	}
	if (d->conn)
		virConnectClose(d->conn);
	free(d);
	return ret;
}
