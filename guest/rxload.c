// SPDX-License-Identifier: MIT
/*
 * rxload: receive-side load for the kstep guest, where busybox has no UDP
 * netcat. Static, no options beyond the mode:
 *
 *   rxload tcp-recv HOST PORT   connect, read to EOF, print the byte count
 *   rxload tcp-loop BYTES       stream BYTES over 127.0.0.1 to ourselves
 *   rxload udp-loop COUNT       send COUNT datagrams over 127.0.0.1 to ourselves
 *   rxload udp-flood COUNT      the same with 64-byte datagrams, sent and read
 *                               FLOOD_BATCH at a time (sendmmsg, recvmmsg):
 *                               as many packets a second as the guest can make
 *   rxload tcp-send HOST PORT BYTES
 *                               send BYTES, close our side, print what the
 *                               peer says it got (a byte count)
 *   rxload udp-drop COUNT PORT  send COUNT datagrams of 100 bytes to 127.0.0.1
 *                               PORT, where nobody listens: the kernel drops them
 *   rxload udp-full COUNT PORT  listen on 127.0.0.1 PORT with the smallest receive
 *                               buffer, never read, send COUNT datagrams of 1000
 *                               bytes there: the kernel drops those that do not fit
 *   rxload udp-badsum COUNT PORT
 *                               listen on 127.0.0.1 PORT, send COUNT datagrams of
 *                               100 bytes there with a wrong UDP checksum (raw IP),
 *                               then read: the kernel drops each as it checks it
 */
#define _GNU_SOURCE /* sendmmsg, recvmmsg */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static int fail(const char *what)
{
	fprintf(stderr, "rxload: %s: %s\n", what, strerror(errno));
	return 1;
}

static int loopback_socket(int type, struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, type, 0);

	if (fd < 0)
		return -1;
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)addr, sizeof(*addr)) ||
	    getsockname(fd, (struct sockaddr *)addr, &len)) {
		close(fd);
		return -1;
	}
	return fd;
}

static long long drain(int fd)
{
	char buf[65536];
	long long total = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	return n < 0 ? -1 : total;
}

static int tcp_recv(const char *host, const char *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(atoi(port)) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	long long got;

	if (fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return fail("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return fail("connect");
	got = drain(fd);
	if (got < 0)
		return fail("read");
	printf("%lld\n", got);
	return 0;
}

static int tcp_loop(long long bytes)
{
	struct sockaddr_in sa;
	char buf[65536] = { 0 };
	int lfd = loopback_socket(SOCK_STREAM, &sa), cfd;
	long long got;
	pid_t pid;

	if (lfd < 0 || listen(lfd, 1))
		return fail("listen");
	pid = fork();
	if (pid == 0) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			_exit(1);
		for (long long left = bytes; left > 0;) {
			ssize_t n = write(fd, buf, left < (long long)sizeof(buf) ? (size_t)left : sizeof(buf));

			if (n <= 0)
				_exit(1);
			left -= n;
		}
		_exit(0);
	}
	cfd = accept(lfd, NULL, NULL);
	if (cfd < 0)
		return fail("accept");
	got = drain(cfd);
	waitpid(pid, NULL, 0);
	printf("rxload: tcp-loop received %lld of %lld bytes\n", got, bytes);
	return got == bytes ? 0 : 1;
}

/* A receiving socket on 127.0.0.1 (@sa: its address; a 4 MiB buffer,
 * reads that give up after 2 s) and one to send from; false if not. */
static bool udp_pair(struct sockaddr_in *sa, int *rfd, int *sfd)
{
	struct timeval tv = { .tv_sec = 2 };
	int rcvbuf = 4 << 20;

	*rfd = loopback_socket(SOCK_DGRAM, sa);
	*sfd = socket(AF_INET, SOCK_DGRAM, 0);
	if (*rfd < 0 || *sfd < 0)
		return false;
	setsockopt(*rfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(*rfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return true;
}

static int udp_loop(int count)
{
	struct sockaddr_in sa;
	char buf[1400] = { 0 };
	int rfd, sfd, got = 0;

	if (!udp_pair(&sa, &rfd, &sfd))
		return fail("socket");
	for (int i = 0; i < count; i++) {
		if (sendto(sfd, buf, sizeof(buf), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return fail("sendto");
		/* Receive as we go so that a small socket buffer drops nothing. */
		if (recv(rfd, buf, sizeof(buf), 0) > 0)
			got++;
	}
	printf("rxload: udp-loop received %d of %d datagrams\n", got, count);
	return got == count ? 0 : 1;
}

#define FLOOD_BATCH 32

static int udp_flood(int count)
{
	struct sockaddr_in sa;
	char bufs[FLOOD_BATCH][64] = { { 0 } };
	struct iovec iov[FLOOD_BATCH];
	struct mmsghdr msgs[FLOOD_BATCH];
	int rfd, sfd, got = 0;

	if (!udp_pair(&sa, &rfd, &sfd))
		return fail("socket");
	for (int sent = 0; sent < count;) {
		int batch = count - sent < FLOOD_BATCH ? count - sent : FLOOD_BATCH, n;

		memset(msgs, 0, sizeof(msgs));
		for (int i = 0; i < batch; i++) {
			iov[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = sizeof(bufs[i]) };
			msgs[i].msg_hdr = (struct msghdr){ .msg_name = &sa, .msg_namelen = sizeof(sa),
							   .msg_iov = &iov[i], .msg_iovlen = 1 };
		}
		n = sendmmsg(sfd, msgs, batch, 0);
		if (n <= 0)
			return fail("sendmmsg");
		sent += n;
		for (int i = 0; i < n; i++)
			msgs[i].msg_hdr.msg_name = NULL;
		while (got < sent && (n = recvmmsg(rfd, msgs, sent - got < FLOOD_BATCH ? sent - got : FLOOD_BATCH,
						  MSG_WAITFORONE, NULL)) > 0)
			got += n;
		if (got < sent)
			break;
	}
	printf("rxload: udp-flood received %d of %d datagrams\n", got, count);
	return got == count ? 0 : 1;
}

static int tcp_send(const char *host, const char *port, long long bytes)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(atoi(port)) };
	char buf[65536] = { 0 }, reply[64];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ssize_t n;

	if (fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return fail("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return fail("connect");
	for (long long left = bytes; left > 0; left -= n) {
		n = write(fd, buf, left < (long long)sizeof(buf) ? (size_t)left : sizeof(buf));
		if (n <= 0)
			return fail("write");
	}
	if (shutdown(fd, SHUT_WR))
		return fail("shutdown");
	n = read(fd, reply, sizeof(reply) - 1);
	if (n < 0)
		return fail("read");
	reply[n] = '\0';
	printf("%lld\n", atoll(reply));
	return 0;
}

static int udp_drop(int count, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char buf[100] = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0)
		return fail("socket");
	for (int i = 0; i < count; i++)
		if (sendto(fd, buf, sizeof(buf), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return fail("sendto");
	printf("rxload: udp-drop sent %d datagrams to port %d\n", count, port);
	return 0;
}

/* A UDP socket on 127.0.0.1 @port. */
static int udp_listener(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	return fd;
}

static int udp_full(int count, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int rfd = udp_listener(port), sfd = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
	char buf[1000] = { 0 };

	if (rfd < 0 || sfd < 0)
		return fail("udp socket");
	/* The kernel raises this to its minimum: a datagram or two fit. */
	if (setsockopt(rfd, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one)))
		return fail("SO_RCVBUF");
	for (int i = 0; i < count; i++)
		if (sendto(sfd, buf, sizeof(buf), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return fail("sendto");
	printf("rxload: udp-full sent %d datagrams to port %d, read none\n", count, port);
	return 0;
}

/* One's-complement sum of @len bytes, folded (the Internet checksum). */
static uint16_t checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)(p[len - 1] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static int udp_badsum(int count, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct {
		struct iphdr ip;
		struct udphdr udp;
		char data[100];
	} __attribute__((packed)) pkt;
	int rfd = udp_listener(port), sfd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW), got = 0;

	if (rfd < 0 || sfd < 0)
		return fail("socket");
	memset(&pkt, 0, sizeof(pkt));
	pkt.ip = (struct iphdr){ .version = 4, .ihl = 5, .ttl = 64, .protocol = IPPROTO_UDP,
				 .tot_len = htons(sizeof(pkt)), .saddr = htonl(INADDR_LOOPBACK),
				 .daddr = htonl(INADDR_LOOPBACK) };
	pkt.udp = (struct udphdr){ .source = htons(port + 1), .dest = htons(port), .len = htons(8 + 100) };
	pkt.ip.check = htons(checksum(&pkt.ip, sizeof(pkt.ip)));
	/* Any checksum but the right one (nor 0, which means none). */
	pkt.udp.check = htons(0x1234);
	for (int i = 0; i < count; i++)
		if (sendto(sfd, &pkt, sizeof(pkt), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return fail("sendto");
	while (recv(rfd, pkt.data, sizeof(pkt.data), MSG_DONTWAIT) > 0)
		got++;
	printf("rxload: udp-badsum sent %d datagrams with a bad checksum to port %d, %d read\n", count, port, got);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "tcp-send"))
		return tcp_send(argv[2], argv[3], atoll(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "udp-drop"))
		return udp_drop(atoi(argv[2]), atoi(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "udp-full"))
		return udp_full(atoi(argv[2]), atoi(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "udp-badsum"))
		return udp_badsum(atoi(argv[2]), atoi(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "tcp-recv"))
		return tcp_recv(argv[2], argv[3]);
	if (argc == 3 && !strcmp(argv[1], "tcp-loop"))
		return tcp_loop(atoll(argv[2]));
	if (argc == 3 && !strcmp(argv[1], "udp-loop"))
		return udp_loop(atoi(argv[2]));
	if (argc == 3 && !strcmp(argv[1], "udp-flood"))
		return udp_flood(atoi(argv[2]));
	fprintf(stderr, "usage: rxload tcp-recv HOST PORT | tcp-loop BYTES | udp-loop COUNT | "
			"tcp-send HOST PORT BYTES | udp-drop COUNT PORT | udp-full COUNT PORT | "
			"udp-badsum COUNT PORT\n");
	return 2;
}
