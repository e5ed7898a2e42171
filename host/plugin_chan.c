// SPDX-License-Identifier: MIT
/*
 * plugin_chan: the socket to kstep's QEMU plugin, and its messages taken
 * apart defensively (see plugin_chan.h).
 */
#include "plugin_chan.h"
#include "bigmem.h"
#include "kerr.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Read in large gulps: a HIT is a few KiB, and they come by the thousand;
 * room for one whole message besides. */
#define CHAN_READ (4u << 20)
#define CHAN_BUF (CHAN_READ + sizeof(struct chan_header) + CHAN_MAX_BODY)

struct chan {
	int listen_fd, fd;
	uint8_t *in;              /* CHAN_BUF bytes */
	size_t start, end;        /* unread bytes: in[start, end) */
	uint32_t asked;           /* messages sent that SYNCED answers (chan_answered) */
};

/* A channel on @fd (-1: none yet), not listening; NULL without memory. */
static struct chan *chan_alloc(int fd)
{
	struct chan *c = calloc(1, sizeof(*c));

	if (!c || !(c->in = bigmem_alloc(CHAN_BUF))) {
		free(c);
		return NULL;
	}
	/* Written at once: recv's copy did not fault it in a page at a time
	 * while the guest waited for kstep. */
	bigmem_populate(c->in, CHAN_BUF);
	c->listen_fd = -1;
	c->fd = fd;
	return c;
}

int chan_listen(struct chan **out, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct chan *c;
	mode_t old;

	if (strlen(path) >= sizeof(sa.sun_path))
		return kerr_set(err, errlen, -ENAMETOOLONG, "plugin socket path too long: %s", path);
	if (!(c = chan_alloc(-1)))
		return kerr_set(err, errlen, -ENOMEM, "out of memory");
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	old = umask(0177);
	if (c->listen_fd < 0 || bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(c->listen_fd, 1)) {
		int e = errno;

		umask(old);
		snprintf(err, errlen, "cannot listen on %s for the plugin: %s", path, strerror(e));
		chan_free(c);
		return -e;
	}
	umask(old);
	*out = c;
	return 0;
}

int chan_from_fd(struct chan **out, int fd)
{
	return (*out = chan_alloc(fd)) ? 0 : -ENOMEM;
}

void chan_free(struct chan *c)
{
	if (!c)
		return;
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	if (c->fd >= 0)
		close(c->fd);
	bigmem_free(c->in, CHAN_BUF);
	free(c);
}

int chan_accept(struct chan *c, int timeout_ms, struct chan_hello *hello, char *err, size_t errlen)
{
	struct pollfd pfd = { .fd = c->listen_fd, .events = POLLIN };
	struct chan_msg m;
	int n = poll(&pfd, 1, timeout_ms);

	if (n <= 0) {
		snprintf(err, errlen, "kstep's QEMU plugin did not connect within %d s", timeout_ms / 1000);
		return -ETIMEDOUT;
	}
	c->fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (c->fd < 0) {
		snprintf(err, errlen, "accepting the plugin's connection: %s", strerror(errno));
		return -errno;
	}
	close(c->listen_fd);
	c->listen_fd = -1;
	n = chan_next(c, &m, timeout_ms);
	if (n <= 0 || m.type != CHAN_HELLO || m.len != sizeof(*hello)) {
		snprintf(err, errlen, "kstep's QEMU plugin did not say hello");
		return n < 0 ? n : -EPROTO;
	}
	memcpy(hello, m.body, sizeof(*hello));
	if (hello->protocol != CHAN_PROTOCOL) {
		snprintf(err, errlen, "the plugin speaks protocol %u, this kstep %u: a plugin of another build",
			 hello->protocol, CHAN_PROTOCOL);
		return -EPROTO;
	}
	return 0;
}

/* One whole message at in[start], if there is one. */
static int take(struct chan *c, struct chan_msg *m)
{
	struct chan_header h;

	if (c->end - c->start < sizeof(h))
		return 0;
	memcpy(&h, c->in + c->start, sizeof(h));
	if (h.len > CHAN_MAX_BODY)
		return -EPROTO;
	if (c->end - c->start < sizeof(h) + h.len)
		return 0;
	*m = (struct chan_msg){ h.type, c->in + c->start + sizeof(h), h.len };
	c->start += sizeof(h) + h.len;
	return 1;
}

bool chan_peek_pc(const struct chan *c, uint64_t *pc)
{
	struct chan_header h;

	if (c->end - c->start < sizeof(h))
		return false;
	memcpy(&h, c->in + c->start, sizeof(h));
	if ((h.type != CHAN_HIT && h.type != CHAN_STEP) || h.len < sizeof(struct chan_hit) ||
	    c->end - c->start < sizeof(h) + sizeof(struct chan_hit))
		return false;
	memcpy(pc, c->in + c->start + sizeof(h) + offsetof(struct chan_hit, pc), sizeof(*pc));
	return true;
}

int chan_poll_fd(const struct chan *c)
{
	return c->fd;
}

int chan_next(struct chan *c, struct chan_msg *m, int timeout_ms)
{
	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int n = take(c, m);
		ssize_t got;

		if (n)
			return n;
		if (c->start) { /* keep the partial message at the front */
			memmove(c->in, c->in + c->start, c->end - c->start);
			c->end -= c->start;
			c->start = 0;
		}
		got = recv(c->fd, c->in + c->end, CHAN_BUF - c->end, 0);
		if (got > 0) {
			c->end += (size_t)got;
			continue;
		}
		if (got == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			return -EINTR;
		if (errno != EAGAIN)
			return -errno;
		if (!timeout_ms)
			return 0;
		n = poll(&pfd, 1, timeout_ms);
		if (n < 0)
			return -errno;
		if (!n)
			return 0;
		timeout_ms = 0; /* what came now, then back */
	}
}

int chan_send(struct chan *c, uint32_t type, const void *body, size_t len)
{
	struct chan_header h = { type, (uint32_t)len };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)body, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	size_t total = sizeof(h) + len;

	c->asked += chan_answered(type);
	while (total) {
		ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };

			poll(&pfd, 1, 1000);
			continue;
		}
		if (n < 0)
			return errno == EPIPE ? -ECONNRESET : -errno;
		total -= (size_t)n;
		while (mh.msg_iovlen && (size_t)n >= mh.msg_iov->iov_len) {
			n -= (ssize_t)mh.msg_iov->iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen) {
			mh.msg_iov->iov_base = (uint8_t *)mh.msg_iov->iov_base + n;
			mh.msg_iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int chan_send_regs(struct chan *c, const struct target_desc *d)
{
	uint32_t n = 0;
	uint8_t *body = calloc(1, 4 + CHAN_MAX_REGS * sizeof(struct chan_reg));
	int err;

	if (!body)
		return -ENOMEM;
	for (size_t i = 0; i < d->nregs && n < CHAN_MAX_REGS; i++) {
		struct chan_reg r = { .size = d->regs[i].bitsize / 8 };

		if (!d->regs[i].in_g)
			continue;
		snprintf(r.name, sizeof(r.name), "%s", d->regs[i].name);
		memcpy(body + 4 + n++ * sizeof(r), &r, sizeof(r));
	}
	memcpy(body, &n, 4);
	err = chan_send(c, CHAN_REGS, body, 4 + n * sizeof(struct chan_reg));
	free(body);
	return err;
}

int chan_send_probes(struct chan *c, const struct chan_probe_prog *probes, size_t n, uint32_t window,
		     uint64_t irq_stack_ptr)
{
	struct chan_probes cp = { (uint32_t)n, window, irq_stack_ptr };
	size_t len = sizeof(cp) + n * 8, off, nops = 0;
	uint8_t *body;
	int err;

	for (size_t i = 0; i < n; i++)
		nops += probes[i].nops;
	if (nops > CHAN_MAX_OPS)
		return -E2BIG;
	len += n * 4 + nops * sizeof(struct chan_op);
	if (len > CHAN_MAX_BODY || !(body = malloc(len)))
		return len > CHAN_MAX_BODY ? -E2BIG : -ENOMEM;
	memcpy(body, &cp, sizeof(cp));
	for (size_t i = 0; i < n; i++)
		memcpy(body + sizeof(cp) + i * 8, &probes[i].addr, 8);
	off = sizeof(cp) + n * 8;
	for (size_t i = 0; i < n; i++) {
		memcpy(body + off, &probes[i].nops, 4);
		memcpy(body + off + 4, probes[i].ops, probes[i].nops * sizeof(struct chan_op));
		off += 4 + probes[i].nops * sizeof(struct chan_op);
	}
	err = chan_send(c, CHAN_PROBES, body, len);
	free(body);
	return err;
}

int chan_parse_hit(const struct chan_msg *m, size_t regs_len, struct chan_hit_view *v)
{
	if ((m->type != CHAN_HIT && m->type != CHAN_STEP) || m->len < sizeof(v->h))
		return -EPROTO;
	memcpy(&v->h, m->body, sizeof(v->h));
	/* A STEP may carry the head of its registers only (channel.h). */
	if ((v->h.flags & CHAN_HIT_REGS_HEAD && m->type == CHAN_STEP ? v->h.regs_len > regs_len
								     : v->h.regs_len != regs_len) ||
	    v->h.win_len > CHAN_MAX_WINDOW || v->h.link_len > CHAN_MAX_WINDOW ||
	    m->len != sizeof(v->h) + (size_t)v->h.regs_len + v->h.win_len + v->h.link_len + v->h.caps_len)
		return -EPROTO;
	v->regs = m->body + sizeof(v->h);
	v->window = v->regs + v->h.regs_len;
	v->linked = v->window + v->h.win_len;
	v->caps = v->linked + v->h.link_len;
	/* Every capture whole and within the list. */
	for (size_t off = 0; off < v->h.caps_len;) {
		struct chan_capture cap;

		if (v->h.caps_len - off < sizeof(cap))
			return -EPROTO;
		memcpy(&cap, v->caps + off, sizeof(cap));
		if (cap.len > CHAN_MAX_CAPTURE || v->h.caps_len - off - sizeof(cap) < cap.len)
			return -EPROTO;
		off += sizeof(cap) + cap.len;
	}
	return 0;
}

int chan_parse_synced(const struct chan_msg *m, struct chan_synced *s)
{
	if (m->type != CHAN_SYNCED || m->len != sizeof(*s))
		return -EPROTO;
	memcpy(s, m->body, sizeof(*s));
	return 0;
}

bool chan_synced_is_last(const struct chan *c, const struct chan_synced *s)
{
	return s->answered == c->asked;
}

int chan_parse_gone(const struct chan_msg *m, struct chan_gone *g)
{
	if (m->type != CHAN_GONE || m->len != sizeof(*g))
		return -EPROTO;
	memcpy(g, m->body, sizeof(*g));
	return 0;
}
