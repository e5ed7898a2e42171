// SPDX-License-Identifier: MIT
/*
 * qmp: the QMP client (see qmp.h), with json-c.
 */
#include "qmp.h"
#include "kerr.h"

#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define QMP_TIMEOUT_MS 5000

struct qmp {
	int fd;
	json_tokener *tok;
	char in[4096];
	size_t in_off, in_len;
	char err[256];
};

/* Next complete JSON object from the socket, waiting up to @timeout_ms
 * (0: -EAGAIN unless one is there already); the caller puts it. */
static int qmp_read(struct qmp *q, json_object **obj, int timeout_ms)
{
	for (;;) {
		while (q->in_off < q->in_len) {
			size_t n = q->in_len - q->in_off;
			json_object *o = json_tokener_parse_ex(q->tok, q->in + q->in_off, (int)n);
			enum json_tokener_error e = json_tokener_get_error(q->tok);

			if (o) {
				q->in_off += json_tokener_get_parse_end(q->tok);
				*obj = o;
				return 0;
			}
			if (e != json_tokener_continue) {
				json_tokener_reset(q->tok);
				return kerr_set(q->err, sizeof(q->err), -EPROTO, "QMP: bad JSON: %s", json_tokener_error_desc(e));
			}
			q->in_off = q->in_len;
		}
		struct pollfd pfd = { .fd = q->fd, .events = POLLIN };
		int r = poll(&pfd, 1, timeout_ms);

		if (r == 0 && !timeout_ms)
			return -EAGAIN;
		if (r == 0)
			return kerr_set(q->err, sizeof(q->err), -ETIMEDOUT, "QMP: no answer within %d ms", timeout_ms);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return kerr_set(q->err, sizeof(q->err), -errno, "QMP: %s", strerror(errno));
		}
		ssize_t n = read(q->fd, q->in, sizeof(q->in));

		if (n <= 0)
			return kerr_set(q->err, sizeof(q->err), -ECONNRESET, "QMP: QEMU closed the connection");
		q->in_off = 0;
		q->in_len = (size_t)n;
	}
}

/* Write @text, with @fd (>= 0) passed along as SCM_RIGHTS ("getfd"). */
static int send_text(struct qmp *q, const char *text, int fd)
{
	char control[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)text, .iov_len = strlen(text) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *c;

		msg.msg_control = control;
		msg.msg_controllen = sizeof(control);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(q->fd, &msg, MSG_NOSIGNAL) == (ssize_t)iov.iov_len ? 0 : -ECONNRESET;
}

/* Send @cmd (with @args, which it takes, and @fd passed along when >= 0)
 * and wait up to @timeout_ms for its return, skipping asynchronous events. */
static int qmp_call_with(struct qmp *q, const char *cmd, json_object *args, int fd, int timeout_ms,
			 json_object **ret)
{
	json_object *req = json_object_new_object(), *reply;
	int err = 0;

	if (!req) {
		json_object_put(args);
		return kerr_set(q->err, sizeof(q->err), -ENOMEM, "out of memory");
	}
	json_object_object_add(req, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(req, "arguments", args);
	if (send_text(q, json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN), fd))
		err = kerr_set(q->err, sizeof(q->err), -ECONNRESET, "QMP: cannot send %s (QEMU gone?)", cmd);
	json_object_put(req);
	while (!err) {
		json_object *val;

		err = qmp_read(q, &reply, timeout_ms);
		if (err)
			break;
		if (json_object_object_get_ex(reply, "return", &val)) {
			if (ret)
				*ret = json_object_get(val);
			json_object_put(reply);
			return 0;
		}
		if (json_object_object_get_ex(reply, "error", &val)) {
			json_object *desc;
			const char *d = json_object_object_get_ex(val, "desc", &desc) ? json_object_get_string(desc) : "?";

			err = kerr_set(q->err, sizeof(q->err), -EIO, "QMP %s: %s", cmd, d);
		}
		json_object_put(reply); /* events ("event": ...) are skipped */
	}
	return err;
}

static int qmp_call(struct qmp *q, const char *cmd, json_object **ret)
{
	return qmp_call_with(q, cmd, NULL, -1, QMP_TIMEOUT_MS, ret);
}

int qmp_open(struct qmp **out, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct qmp *q = calloc(1, sizeof(*q));
	json_object *greeting = NULL;
	int ret;

	if (!q)
		return -ENOMEM;
	q->tok = json_tokener_new();
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!q->tok || q->fd < 0 || strlen(path) >= sizeof(sa.sun_path)) {
		ret = -EINVAL;
		snprintf(err, errlen, "QMP: cannot use socket %s", path);
		goto fail;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		snprintf(err, errlen, "QMP: cannot connect to %s: %s", path, strerror(errno));
		goto fail;
	}
	ret = qmp_read(q, &greeting, QMP_TIMEOUT_MS); /* {"QMP": {...}} */
	if (!ret && !json_object_object_get_ex(greeting, "QMP", NULL))
		ret = kerr_set(q->err, sizeof(q->err), -EPROTO, "QMP: %s did not greet like QEMU", path);
	json_object_put(greeting);
	if (!ret)
		ret = qmp_call(q, "qmp_capabilities", NULL);
	if (ret) {
		snprintf(err, errlen, "%s", q->err);
		goto fail;
	}
	*out = q;
	return 0;
fail:
	qmp_close(q);
	return ret;
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	if (q->tok)
		json_tokener_free(q->tok);
	free(q);
}

int qmp_execute(struct qmp *q, const char *command)
{
	return qmp_call(q, command, NULL);
}

int qmp_fd(const struct qmp *q)
{
	return q->fd;
}

/* The reason of a SHUTDOWN event ("guest-reset", "host-qmp-quit", ...). */
static void shutdown_reason(json_object *ev, char *reason, size_t len)
{
	json_object *name, *data, *why;

	if (json_object_object_get_ex(ev, "event", &name) && !strcmp(json_object_get_string(name), "SHUTDOWN") &&
	    json_object_object_get_ex(ev, "data", &data) && json_object_object_get_ex(data, "reason", &why))
		snprintf(reason, len, "%s", json_object_get_string(why));
}

int qmp_drain_events(struct qmp *q, char *reason, size_t len)
{
	json_object *ev;
	int err;

	while (!(err = qmp_read(q, &ev, 0))) {
		shutdown_reason(ev, reason, len);
		json_object_put(ev);
	}
	return err == -EAGAIN ? 0 : err;
}

int qmp_icount(struct qmp *q, uint64_t *icount)
{
	json_object *ret = NULL, *n;
	int err = qmp_call(q, "query-replay", &ret);

	if (!err && !json_object_object_get_ex(ret, "icount", &n))
		err = -ENOTSUP;
	if (!err)
		*icount = (uint64_t)json_object_get_int64(n);
	json_object_put(ret);
	return err;
}

int qmp_replay_break(struct qmp *q, uint64_t icount)
{
	json_object *args = json_object_new_object();

	json_object_object_add(args, "icount", json_object_new_int64((int64_t)icount));
	return qmp_call_with(q, "replay-break", args, -1, QMP_TIMEOUT_MS, NULL);
}

const char *qmp_errmsg(const struct qmp *q)
{
	return q->err;
}

int qmp_running(struct qmp *q, bool *running)
{
	json_object *ret = NULL, *r;
	int err = qmp_call(q, "query-status", &ret);

	if (!err && !json_object_object_get_ex(ret, "running", &r))
		err = kerr_set(q->err, sizeof(q->err), -EPROTO, "QMP query-status: no 'running'");
	if (!err)
		*running = json_object_get_boolean(r);
	json_object_put(ret);
	return err;
}

int qmp_dump_memory(struct qmp *q, int fd, int timeout_ms)
{
	json_object *args = json_object_new_object();
	int err;

	json_object_object_add(args, "fdname", json_object_new_string(QMP_DUMP_FD));
	if ((err = qmp_call_with(q, "getfd", args, fd, QMP_TIMEOUT_MS, NULL)))
		return err;
	args = json_object_new_object();
	json_object_object_add(args, "paging", json_object_new_boolean(true));
	json_object_object_add(args, "protocol", json_object_new_string("fd:" QMP_DUMP_FD));
	json_object_object_add(args, "format", json_object_new_string("elf"));
	return qmp_call_with(q, "dump-guest-memory", args, -1, timeout_ms, NULL);
}
