// SPDX-License-Identifier: MIT
/*
 * rsp: the GDB Remote Serial Protocol, client side (see rsp.h): the socket-free
 * parser's states, then the connection that frames, acks and pipelines.
 */
#include "rsp.h"
#include "kerr.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* A stub that keeps sending garbage gets this many naks before we give up. */
#define RSP_MAX_RETRIES 5

struct rsp_conn {
	int fd;
	struct rsp_parser parser;
	uint8_t in[65536];     /* bytes read but not yet parsed */
	size_t in_off, in_len;
	struct buf out;        /* bytes queued for the next write */
	struct buf unacked;    /* framed packets sent and not yet acked, back to back */
	size_t unacked_count;
	bool noack;
	unsigned int skip_acks;
	unsigned int pending_oks; /* replies to writes sent with a resume, read on the way */
	FILE *wire;
	volatile sig_atomic_t *interrupt;
	bool interruptible;      /* in rsp_wait: the interrupt flag ends the wait, and
	                          * an exit packet is the stop waited for */
	char err[256];
};

int rsp_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int rsp_hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t outlen)
{
	size_t n = hexlen / 2;

	if (hexlen % 2 || n > outlen)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = rsp_hexval(hex[2 * i]), lo = rsp_hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (int)n;
}

void rsp_hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

void rsp_parser_init(struct rsp_parser *p, size_t max_packet)
{
	memset(p, 0, sizeof(*p));
	p->max_packet = max_packet ? max_packet : RSP_MAX_PACKET_DEFAULT;
}

void rsp_parser_free(struct rsp_parser *p)
{
	buf_free(&p->pkt);
}

static void parser_add(struct rsp_parser *p, uint8_t c)
{
	if (p->pkt.len >= p->max_packet) {
		p->error = -EMSGSIZE;
		p->state = RS_DISCARD;
	} else if (buf_putc(&p->pkt, c)) {
		p->error = -ENOMEM;
		p->state = RS_DISCARD;
	}
}

size_t rsp_parser_feed(struct rsp_parser *p, const uint8_t *data, size_t len, enum rsp_event *ev)
{
	size_t i;

	*ev = RSP_EV_NONE;
	for (i = 0; i < len && *ev == RSP_EV_NONE; i++) {
		uint8_t c = data[i];
		int v;

		switch (p->state) {
		case RS_IDLE:
			/* Anything but a packet start or an ack is line noise. */
			if (c == '+') {
				*ev = RSP_EV_ACK;
			} else if (c == '-') {
				*ev = RSP_EV_NAK;
			} else if (c == '$' || c == '%') {
				buf_reset(&p->pkt);
				p->sum = 0;
				p->error = 0;
				p->notification = c == '%';
				p->state = RS_DATA;
			}
			break;
		case RS_DISCARD:
			/* An oversized packet: skip to its checksum, then report it. */
			if (c == '#')
				p->state = RS_CSUM1;
			else
				p->sum += c;
			break;
		case RS_DATA:
			if (c == '#') {
				p->state = RS_CSUM1;
				break;
			}
			if (c != '}' && c != '*') {
				/* Fast path: take the run of plain bytes up to the next
				 * special one in one append (hex replies are all plain). */
				size_t run = 1;

				while (i + run < len && data[i + run] != '#' && data[i + run] != '}' &&
				       data[i + run] != '*')
					run++;
				if (p->pkt.len + run > p->max_packet) {
					parser_add(p, c); /* lets parser_add report the overflow */
					break;
				}
				for (size_t k = 0; k < run; k++)
					p->sum += data[i + k];
				if (buf_append(&p->pkt, data + i, run)) {
					p->error = -ENOMEM;
					p->state = RS_DISCARD;
				}
				i += run - 1;
				break;
			}
			p->sum += c;
			p->state = c == '}' ? RS_DATA_ESC : RS_DATA_RLE;
			break;
		case RS_DATA_ESC:
			p->sum += c;
			p->state = RS_DATA;
			parser_add(p, c ^ 0x20);
			break;
		case RS_DATA_RLE:
			/* '*' N repeats the previous byte N - 29 more times (E.1 Overview);
			 * a count with no byte before it cannot be decoded. */
			p->sum += c;
			p->state = RS_DATA;
			if (!p->pkt.len || c < 29) {
				p->error = p->error ? p->error : -EPROTO;
				break;
			}
			for (int n = c - 29; n > 0 && p->state == RS_DATA; n--)
				parser_add(p, p->pkt.data[p->pkt.len - 1]);
			break;
		case RS_CSUM1:
			v = rsp_hexval(c);
			p->csum = (uint8_t)((v < 0 ? 0xf0 : v) << 4);
			if (v < 0)
				p->error = p->error ? p->error : -EPROTO;
			p->state = RS_CSUM2;
			break;
		case RS_CSUM2:
			v = rsp_hexval(c);
			p->state = RS_IDLE;
			if (p->error == -EMSGSIZE || p->error == -ENOMEM) {
				*ev = RSP_EV_OVERSIZE;
				break;
			}
			if (v < 0 || p->error || (uint8_t)(p->csum | v) != p->sum) {
				*ev = RSP_EV_BAD_CSUM;
				break;
			}
			*ev = RSP_EV_PACKET;
			buf_cstr(&p->pkt); /* NUL-terminate for convenience; may fail harmlessly */
			break;
		}
	}
	return i;
}

const char *rsp_errmsg(const struct rsp_conn *c)
{
	return c->err;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int rsp_connect_retry(struct rsp_conn **out, const char *endpoint, int timeout_ms, bool (*gone)(void *ctx),
		      void *ctx, char *err, size_t errlen)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	int ret;

	/* Refused: the socket is bound and not listening yet (QEMU between
	 * bind() and listen()), or listening with a full backlog. */
	while ((ret = rsp_connect(out, endpoint, err, errlen)) == -ECONNREFUSED && now_ms() < deadline &&
	       !(gone && gone(ctx)))
		usleep(10000);
	return ret;
}

int rsp_conn_from_fd(struct rsp_conn **out, int fd)
{
	struct rsp_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->fd = fd;
	rsp_parser_init(&c->parser, 0);
	*out = c;
	return 0;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int connect_tcp(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -ECONNREFUSED;

	if (getaddrinfo(host, port, &hints, &res))
		return -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			fd = -errno;
			continue;
		}
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		close(fd);
		fd = -errno;
	}
	freeaddrinfo(res);
	if (fd >= 0) {
		int one = 1;

		/* Packets are tiny and strictly request/reply: Nagle only adds latency. */
		setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
	}
	return fd;
}

static speed_t baud_of(unsigned long rate)
{
	static const struct { unsigned long rate; speed_t speed; } rates[] = {
		{ 9600, B9600 }, { 19200, B19200 }, { 38400, B38400 }, { 57600, B57600 }, { 115200, B115200 },
		{ 230400, B230400 }, { 460800, B460800 }, { 921600, B921600 },
	};

	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
		if (rates[i].rate == rate)
			return rates[i].speed;
	return B0;
}

/* A serial line at @path, raw at @rate baud. */
static int open_tty(const char *path, unsigned long rate)
{
	struct termios tio;
	speed_t speed = baud_of(rate);
	int fd;

	if (speed == B0)
		return -EINVAL;
	fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (tcgetattr(fd, &tio)) {
		close(fd);
		return -ENOTTY;
	}
	cfmakeraw(&tio);
	tio.c_cflag |= CLOCAL | CREAD;
	cfsetispeed(&tio, speed);
	cfsetospeed(&tio, speed);
	if (tcsetattr(fd, TCSANOW, &tio)) {
		int e = -errno;

		close(fd);
		return e;
	}
	tcflush(fd, TCIOFLUSH);
	return fd;
}

/* "serial:PATH[,BAUD]": a kgdb line, a unix socket (QEMU's chardev) or a tty. */
static int connect_serial(const char *spec)
{
	char path[4096];
	const char *comma = strrchr(spec, ',');
	unsigned long rate = comma ? strtoul(comma + 1, NULL, 10) : 115200;
	size_t n = comma ? (size_t)(comma - spec) : strlen(spec);
	struct stat st;

	if (n >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, spec, n);
	path[n] = '\0';
	if (stat(path, &st))
		return -errno;
	return S_ISSOCK(st.st_mode) ? connect_unix(path) : open_tty(path, rate);
}

int rsp_connect(struct rsp_conn **out, const char *endpoint, char *err, size_t errlen)
{
	const char *colon;
	struct stat st;
	int fd, ret;

	if (!strncmp(endpoint, "serial:", 7)) {
		fd = connect_serial(endpoint + 7);
	} else if (!strncmp(endpoint, "unix:", 5)) {
		fd = connect_unix(endpoint + 5);
	} else if (!stat(endpoint, &st) && S_ISSOCK(st.st_mode)) {
		fd = connect_unix(endpoint);
	} else if ((colon = strrchr(endpoint, ':')) && colon[1]) {
		char host[256];
		size_t hl = (size_t)(colon - endpoint);

		if (hl >= sizeof(host))
			hl = sizeof(host) - 1;
		memcpy(host, endpoint, hl);
		host[hl] = '\0';
		fd = connect_tcp(hl ? host : "127.0.0.1", colon + 1);
	} else {
		snprintf(err, errlen, "'%s' is not an endpoint: use unix:PATH, HOST:PORT or serial:PATH[,BAUD]",
			 endpoint);
		return -EINVAL;
	}
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to gdbstub at %s: %s", endpoint, strerror(-fd));
		return fd;
	}
	ret = rsp_conn_from_fd(out, fd);
	if (ret)
		close(fd);
	return ret;
}

void rsp_close(struct rsp_conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0) {
		rsp_flush(c);
		close(c->fd);
	}
	rsp_parser_free(&c->parser);
	buf_free(&c->out);
	buf_free(&c->unacked);
	free(c);
}

void rsp_set_wire_log(struct rsp_conn *c, FILE *log)
{
	c->wire = log;
}

void rsp_set_noack(struct rsp_conn *c, bool noack)
{
	c->noack = noack;
}

void rsp_skip_next_ack(struct rsp_conn *c)
{
	c->skip_acks++;
}

void rsp_set_max_packet(struct rsp_conn *c, size_t max)
{
	c->parser.max_packet = max;
}

void rsp_set_interrupt_flag(struct rsp_conn *c, volatile sig_atomic_t *flag)
{
	c->interrupt = flag;
}

static void wire_log(struct rsp_conn *c, const char *dir, const uint8_t *data, size_t len)
{
	if (!c->wire)
		return;
	fputs(dir, c->wire);
	for (size_t i = 0; i < len; i++) {
		if (data[i] >= 0x20 && data[i] < 0x7f)
			fputc(data[i], c->wire);
		else
			fprintf(c->wire, "\\x%02x", data[i]);
	}
	fputc('\n', c->wire);
}

/* Frame @payload as $payload#cs, escaping the bytes the protocol reserves. */
static int frame(struct buf *b, const char *payload, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	uint8_t sum = 0;
	int err = buf_reserve(b, len + 4);

	if (err)
		return err;
	b->data[b->len++] = '$';
	for (size_t i = 0; i < len; i++) {
		uint8_t ch = (uint8_t)payload[i];

		if (ch == '$' || ch == '#' || ch == '}' || ch == '*') {
			if ((err = buf_putc(b, '}')))
				return err;
			sum += '}';
			ch ^= 0x20;
		}
		if ((err = buf_putc(b, ch)))
			return err;
		sum += ch;
	}
	if ((err = buf_reserve(b, 3)))
		return err;
	b->data[b->len++] = '#';
	b->data[b->len++] = (uint8_t)digits[sum >> 4];
	b->data[b->len++] = (uint8_t)digits[sum & 15];
	return 0;
}

int rsp_queue(struct rsp_conn *c, const char *payload, size_t len)
{
	size_t start = c->out.len;
	int err = frame(&c->out, payload, len);

	if (err)
		return kerr_set(c->err, sizeof(c->err), err, "out of memory framing a packet");
	if (!c->noack) {
		err = buf_append(&c->unacked, c->out.data + start, c->out.len - start);
		if (err)
			return kerr_set(c->err, sizeof(c->err), err, "out of memory");
		c->unacked_count++;
	}
	wire_log(c, "=> ", (const uint8_t *)payload, len);
	return 0;
}

int rsp_send_raw(struct rsp_conn *c, const void *data, size_t len)
{
	int err = buf_append(&c->out, data, len);

	if (err)
		return kerr_set(c->err, sizeof(c->err), err, "out of memory");
	wire_log(c, "=> ", data, len);
	return 0;
}

int rsp_flush(struct rsp_conn *c)
{
	size_t off = 0;

	while (off < c->out.len) {
		ssize_t n = write(c->fd, c->out.data + off, c->out.len - off); /* a socket or a tty */

		if (n < 0) {
			if (errno == EINTR)
				continue;
			c->out.len = 0;
			return kerr_set(c->err, sizeof(c->err), errno == EPIPE ? -ECONNRESET : -errno,
				       "gdbstub connection lost while sending: %s", strerror(errno));
		}
		off += (size_t)n;
	}
	c->out.len = 0;
	return 0;
}

/* Length of the first framed packet in c->unacked ('$' ... '#xx'). */
static size_t first_unacked_len(const struct rsp_conn *c)
{
	for (size_t i = 0; i + 2 < c->unacked.len; i++)
		if (c->unacked.data[i] == '#' && (i == 0 || c->unacked.data[i - 1] != '}'))
			return i + 3;
	return c->unacked.len;
}

static void drop_first_unacked(struct rsp_conn *c)
{
	size_t n = first_unacked_len(c);

	memmove(c->unacked.data, c->unacked.data + n, c->unacked.len - n);
	c->unacked.len -= n;
	c->unacked_count--;
}

static int fill(struct rsp_conn *c, int timeout_ms)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	ssize_t n;
	int err, r;

	if ((err = rsp_flush(c)))
		return err;
	for (;;) {
		r = poll(&pfd, 1, timeout_ms);
		if (r > 0)
			break;
		if (r == 0)
			return kerr_set(c->err, sizeof(c->err), -ETIMEDOUT, "gdbstub did not answer within %d ms", timeout_ms);
		if (errno != EINTR)
			return kerr_set(c->err, sizeof(c->err), -errno, "poll: %s", strerror(errno));
		if (c->interruptible && c->interrupt && *c->interrupt)
			return kerr_set(c->err, sizeof(c->err), -EINTR, "interrupted");
	}
	n = read(c->fd, c->in, sizeof(c->in));
	if (n == 0)
		return kerr_set(c->err, sizeof(c->err), -ECONNRESET, "gdbstub closed the connection (QEMU exited?)");
	if (n < 0)
		return kerr_set(c->err, sizeof(c->err), errno == ECONNRESET ? -ECONNRESET : -errno,
			       "gdbstub connection lost: %s", strerror(errno));
	c->in_off = 0;
	c->in_len = (size_t)n;
	return 0;
}

/* 'W' and 'X' (E.3): the process, here the whole guest, is gone. */
static bool is_exit_packet(const struct buf *pkt)
{
	return pkt->len >= 3 && (pkt->data[0] == 'W' || pkt->data[0] == 'X');
}

int rsp_recv(struct rsp_conn *c, const char **payload, size_t *len, int timeout_ms)
{
	/* One deadline for the whole call: a stub that streams bytes which
	 * never make a packet must not keep us here for ever. */
	uint64_t deadline = timeout_ms < 0 ? 0 : now_ms() + (uint64_t)timeout_ms;
	size_t noise = 0;
	int bad = 0, err;

	for (;;) {
		enum rsp_event ev;
		size_t used;

		if (c->in_off == c->in_len) {
			int left = timeout_ms < 0 ? -1 : deadline > now_ms() ? (int)(deadline - now_ms()) : 0;

			err = left ? fill(c, left) : -ETIMEDOUT;
			if (err == -ETIMEDOUT && noise)
				return kerr_set(c->err, sizeof(c->err), err, "gdbstub sent %zu bytes but no packet within %d ms "
					       "(is it a gdbstub?)", noise, timeout_ms);
			if (err == -ETIMEDOUT)
				return kerr_set(c->err, sizeof(c->err), err, "gdbstub did not answer within %d ms", timeout_ms);
			if (err)
				return err;
			noise += c->in_len;
		}
		used = rsp_parser_feed(&c->parser, c->in + c->in_off, c->in_len - c->in_off, &ev);
		c->in_off += used;
		switch (ev) {
		case RSP_EV_NONE:
			break;
		case RSP_EV_ACK:
			if (c->unacked_count)
				drop_first_unacked(c);
			break;
		case RSP_EV_NAK:
			/* Resend the oldest packet the stub has not acknowledged (E.3). */
			if (c->unacked_count) {
				if (++bad > RSP_MAX_RETRIES)
					return kerr_set(c->err, sizeof(c->err), -EPROTO, "gdbstub rejected a packet %d times", bad);
				err = buf_append(&c->out, c->unacked.data, first_unacked_len(c));
				if (err || (err = rsp_flush(c)))
					return err;
			}
			break;
		case RSP_EV_BAD_CSUM:
			wire_log(c, "<= (bad checksum) ", c->parser.pkt.data, c->parser.pkt.len);
			if (++bad > RSP_MAX_RETRIES)
				return kerr_set(c->err, sizeof(c->err), -EPROTO, "%d packets with bad checksums in a row", bad);
			if (!c->noack && ((err = rsp_send_raw(c, "-", 1)) || (err = rsp_flush(c))))
				return err;
			break;
		case RSP_EV_OVERSIZE:
			return kerr_set(c->err, sizeof(c->err), -EMSGSIZE, "gdbstub sent a packet over %zu bytes",
				       c->parser.max_packet);
		case RSP_EV_PACKET:
			if (c->parser.notification)
				break; /* non-stop notifications: we run all-stop */
			wire_log(c, "<= ", c->parser.pkt.data, c->parser.pkt.len);
			/* The ack goes out with the next request: one write instead of two. */
			if (c->skip_acks)
				c->skip_acks--;
			else if (!c->noack && buf_putc(&c->out, '+'))
				return kerr_set(c->err, sizeof(c->err), -ENOMEM, "out of memory");
			if (is_exit_packet(&c->parser.pkt)) {
				/* The guest ended (QEMU quits with a 'W' to its client)
				 * before answering: waiting for a stop, that is the stop;
				 * anywhere else the answer will never come. */
				c->pending_oks = 0;
				if (!c->interruptible)
					return kerr_set(c->err, sizeof(c->err), -ECONNRESET, "the guest ended before answering "
						       "(the stub sent '%.*s')", (int)c->parser.pkt.len,
						       (const char *)c->parser.pkt.data);
			} else if (c->pending_oks) {
				c->pending_oks--;
				if (c->parser.pkt.len == 2 && !memcmp(c->parser.pkt.data, "OK", 2))
					break;
				return kerr_set(c->err, sizeof(c->err), -EIO, "the stub refused a write made before resuming: '%.*s'",
					       (int)(c->parser.pkt.len > 40 ? 40 : c->parser.pkt.len),
					       (const char *)c->parser.pkt.data);
			}
			*payload = (const char *)c->parser.pkt.data;
			*len = c->parser.pkt.len;
			return 0;
		}
	}
}

void rsp_expect_oks(struct rsp_conn *c, unsigned int n)
{
	c->pending_oks += n;
}

int rsp_wait(struct rsp_conn *c, const char **payload, size_t *len, int timeout_ms)
{
	int err;

	c->interruptible = true;
	err = rsp_recv(c, payload, len, timeout_ms);
	c->interruptible = false;
	return err;
}

int rsp_poll_fd(const struct rsp_conn *c)
{
	return c->in_off < c->in_len ? -1 : c->fd;
}

int rsp_request(struct rsp_conn *c, const char *req, const char **reply, size_t *len, int timeout_ms)
{
	int err = rsp_queue(c, req, strlen(req));

	return err ? err : rsp_recv(c, reply, len, timeout_ms);
}
