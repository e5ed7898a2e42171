/* SPDX-License-Identifier: MIT */
/*
 * fakestub: a gdbstub for unit tests, on one end of a socketpair in a
 * child process: it reads RSP packets and answers each through the test's
 * callback, sending no acks (kstep's client does not wait for them).
 * Only for faults and orders QEMU cannot produce on demand.
 */
#ifndef KSTEP_TEST_FAKESTUB_H
#define KSTEP_TEST_FAKESTUB_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Writes the reply's payload to @reply (@len bytes) for request @pkt;
 * false: close the connection (the stub went away). */
typedef bool (*fakestub_answer_fn)(void *ctx, const char *pkt, char *reply, size_t len);

static inline void fakestub_send(int fd, const char *payload)
{
	static char pkt[1 << 17];
	unsigned int sum = 0;

	for (const char *p = payload; *p; p++)
		sum += (unsigned char)*p;
	snprintf(pkt, sizeof(pkt), "$%s#%02x", payload, sum & 0xff);
	if (write(fd, pkt, strlen(pkt)) < 0)
		_exit(1);
}

static inline void __attribute__((noreturn)) fakestub_serve(int fd, fakestub_answer_fn answer, void *ctx)
{
	static char in[1 << 16], pkt[1 << 15], reply[1 << 17];
	size_t have = 0;
	ssize_t r;

	while ((r = read(fd, in + have, sizeof(in) - have - 1)) > 0) {
		char *start, *end;

		have += (size_t)r;
		in[have] = '\0';
		while ((start = strchr(in, '$')) && (end = strchr(start, '#')) && end[1] && end[2]) {
			snprintf(pkt, sizeof(pkt), "%.*s", (int)(end - start - 1), start + 1);
			reply[0] = '\0';
			if (!answer(ctx, pkt, reply, sizeof(reply)))
				_exit(0);
			fakestub_send(fd, reply);
			have -= (size_t)(end + 3 - in);
			memmove(in, end + 3, have + 1);
		}
	}
	_exit(0);
}

/* The stub started in a child; the test's end of the socket in *@fd. */
static inline pid_t fakestub_start(int *fd, fakestub_answer_fn answer, void *ctx)
{
	int fds[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds))
		return -1;
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		fakestub_serve(fds[1], answer, ctx);
	}
	close(fds[1]);
	*fd = fds[0];
	return pid;
}

#endif
