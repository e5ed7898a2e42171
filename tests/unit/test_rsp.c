// SPDX-License-Identifier: MIT
/* Unit tests of the RSP parser and connection: canned transcripts, split
 * reads, escapes, RLE, checksums, oversized packets, and faults QEMU cannot
 * produce on demand (bad checksums, naks, a reset connection, a stub that
 * streams noise) from a fake
 * stub on the other end of a socketpair. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rsp.h"
#include "../scratch.h"

/* Feed @s in pieces of @step bytes; collect events and the last packet. */
struct fed {
	int packets, bad, acks, naks, oversize;
	char last[256];
};

static void feed(struct rsp_parser *p, const char *s, size_t step, struct fed *out)
{
	size_t len = strlen(s), off = 0;

	memset(out, 0, sizeof(*out));
	while (off < len) {
		size_t n = len - off < step ? len - off : step, used = 0;

		while (used < n) {
			enum rsp_event ev;

			used += rsp_parser_feed(p, (const uint8_t *)s + off + used, n - used, &ev);
			switch (ev) {
			case RSP_EV_PACKET:
				out->packets++;
				snprintf(out->last, sizeof(out->last), "%.*s", (int)p->pkt.len, (char *)p->pkt.data);
				break;
			case RSP_EV_BAD_CSUM:
				out->bad++;
				break;
			case RSP_EV_ACK:
				out->acks++;
				break;
			case RSP_EV_NAK:
				out->naks++;
				break;
			case RSP_EV_OVERSIZE:
				out->oversize++;
				break;
			case RSP_EV_NONE:
				break;
			}
		}
		off += n;
	}
}

static void test_simple_packet(void **state)
{
	struct rsp_parser p;
	struct fed f;

	(void)state;
	rsp_parser_init(&p, 0);
	feed(&p, "+$OK#9a", 100, &f);
	assert_int_equal(f.acks, 1);
	assert_int_equal(f.packets, 1);
	assert_string_equal(f.last, "OK");
	rsp_parser_free(&p);
}

static void test_split_reads_byte_by_byte(void **state)
{
	const char *s = "junk+$T05thread:p01.01;#06-$OK#9a";
	struct rsp_parser p;
	struct fed f;

	(void)state;
	rsp_parser_init(&p, 0);
	for (size_t step = 1; step <= strlen(s); step++) {
		feed(&p, s, step, &f);
		assert_int_equal(f.packets, 2);
		assert_int_equal(f.acks, 1);
		assert_int_equal(f.naks, 1);
		assert_int_equal(f.bad, 0);
		assert_string_equal(f.last, "OK");
	}
	rsp_parser_free(&p);
}

static void test_escapes(void **state)
{
	struct rsp_parser p;
	struct fed f;
	/* "a}]b" decodes to "a}b": '}' escaped as 0x7d ^ 0x20 = 0x5d ']' */
	char pkt[32];
	unsigned sum = 'a' + '}' + ']' + 'b';

	(void)state;
	snprintf(pkt, sizeof(pkt), "$a}]b#%02x", sum & 0xff);
	rsp_parser_init(&p, 0);
	feed(&p, pkt, 1, &f);
	assert_int_equal(f.packets, 1);
	assert_string_equal(f.last, "a}b");
	/* escaped '#', '$' and '*' too */
	sum = '}' + ('#' ^ 0x20) + '}' + ('$' ^ 0x20) + '}' + ('*' ^ 0x20);
	snprintf(pkt, sizeof(pkt), "$}%c}%c}%c#%02x", '#' ^ 0x20, '$' ^ 0x20, '*' ^ 0x20, sum & 0xff);
	feed(&p, pkt, 3, &f);
	assert_int_equal(f.packets, 1);
	assert_string_equal(f.last, "#$*");
	rsp_parser_free(&p);
}

static void test_run_length(void **state)
{
	struct rsp_parser p;
	struct fed f;
	char pkt[32];
	/* "0* " = '0' then 3 more: "0000"; "x*\"" = x + 5 more */
	unsigned sum = '0' + '*' + ' ' + 'x' + '*' + '"';

	(void)state;
	snprintf(pkt, sizeof(pkt), "$0* x*\"#%02x", sum & 0xff);
	rsp_parser_init(&p, 0);
	feed(&p, pkt, 1, &f);
	assert_int_equal(f.packets, 1);
	assert_string_equal(f.last, "0000xxxxxx");
	/* a count with nothing to repeat is a framing error */
	sum = '*' + ' ';
	snprintf(pkt, sizeof(pkt), "$* #%02x", sum & 0xff);
	feed(&p, pkt, 100, &f);
	assert_int_equal(f.packets, 0);
	assert_int_equal(f.bad, 1);
	rsp_parser_free(&p);
}

static void test_checksums(void **state)
{
	struct rsp_parser p;
	struct fed f;

	(void)state;
	rsp_parser_init(&p, 0);
	feed(&p, "$OK#9b", 100, &f); /* off by one */
	assert_int_equal(f.packets, 0);
	assert_int_equal(f.bad, 1);
	feed(&p, "$OK#zz", 100, &f); /* not hex */
	assert_int_equal(f.bad, 1);
	feed(&p, "$OK#9A", 100, &f); /* upper-case hex is fine */
	assert_int_equal(f.packets, 1);
	/* after a bad one the next good one still parses */
	feed(&p, "$OK#00$OK#9a", 2, &f);
	assert_int_equal(f.bad, 1);
	assert_int_equal(f.packets, 1);
	rsp_parser_free(&p);
}

static void test_oversized(void **state)
{
	struct rsp_parser p;
	struct fed f;
	char big[200];

	(void)state;
	memset(big, 'a', sizeof(big));
	big[0] = '$';
	memcpy(big + 150, "#00$OK#9a", 10);
	rsp_parser_init(&p, 64);
	feed(&p, big, 7, &f);
	assert_int_equal(f.oversize, 1);
	assert_int_equal(f.packets, 1); /* resynchronised on the next packet */
	assert_string_equal(f.last, "OK");
	rsp_parser_free(&p);
}

static void test_hex(void **state)
{
	uint8_t out[4];
	char hex[9];

	(void)state;
	assert_int_equal(rsp_hex_decode("deadBEEF", 8, out, 4), 4);
	assert_int_equal(out[0], 0xde);
	assert_int_equal(out[3], 0xef);
	assert_int_equal(rsp_hex_decode("abc", 3, out, 4), -EINVAL);
	assert_int_equal(rsp_hex_decode("zz", 2, out, 4), -EINVAL);
	assert_int_equal(rsp_hex_decode("0011223344", 10, out, 4), -EINVAL);
	rsp_hex_encode(out, 4, hex);
	assert_string_equal(hex, "deadbeef");
}

/* ---- the connection against a fake stub on a socketpair ---------------- */

struct stub_conn {
	int stub;                 /* our end of the fake stub, -1 once closed */
	struct rsp_conn *c;
};

static int conn_setup(void **state)
{
	struct stub_conn *s = calloc(1, sizeof(*s));
	int fds[2];

	assert_non_null(s);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	assert_int_equal(rsp_conn_from_fd(&s->c, fds[0]), 0);
	s->stub = fds[1];
	*state = s;
	return 0;
}

static int conn_teardown(void **state)
{
	struct stub_conn *s = *state;

	rsp_close(s->c);
	if (s->stub >= 0)
		close(s->stub);
	free(s);
	return 0;
}

/* What the connection has sent the stub so far (NUL-terminated). */
static size_t stub_read(int fd, char *buf, size_t len)
{
	ssize_t n = recv(fd, buf, len - 1, MSG_DONTWAIT);

	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

static void expect_sent(int fd, const char *want)
{
	char got[256];

	stub_read(fd, got, sizeof(got));
	assert_string_equal(got, want);
}

static void test_conn_frames_and_acks(void **state)
{
	struct stub_conn *s = *state;
	const char *reply;
	size_t len;

	/* The stub acks our request and answers. */
	assert_int_equal(write(s->stub, "+$OK#9a", 7), 7);
	assert_int_equal(rsp_request(s->c, "Z0,1000,1", &reply, &len, 1000), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(reply, "OK", 2);
	expect_sent(s->stub, "$Z0,1000,1#d4");
	/* Our ack of "OK" goes out with the next request, in one write. */
	assert_int_equal(rsp_queue(s->c, "g", 1), 0);
	assert_int_equal(rsp_flush(s->c), 0);
	expect_sent(s->stub, "+$g#67");
}

/* Two stop replies in one read: after the first is taken, the second is
 * in the connection's buffer, and a poll of the socket would miss it. */
static void test_poll_fd_only_when_nothing_is_buffered(void **state)
{
	struct stub_conn *s = *state;
	const char *reply;
	size_t len;

	assert_true(rsp_poll_fd(s->c) >= 0);
	assert_int_equal(write(s->stub, "$S05#b8$T05#b9", 14), 14);
	assert_int_equal(rsp_wait(s->c, &reply, &len, 1000), 0);
	assert_memory_equal(reply, "S05", 3);
	assert_int_equal(rsp_poll_fd(s->c), -1);
	assert_int_equal(rsp_wait(s->c, &reply, &len, 1000), 0);
	assert_memory_equal(reply, "T05", 3);
	assert_true(rsp_poll_fd(s->c) >= 0);
}

static void test_conn_nak_retransmits(void **state)
{
	struct stub_conn *s = *state;
	const char *reply;
	size_t len;

	assert_int_equal(rsp_queue(s->c, "m1000,4", 7), 0);
	assert_int_equal(rsp_flush(s->c), 0);
	expect_sent(s->stub, "$m1000,4#8e");
	/* The stub says it got garbage, then acks the resend and answers. */
	assert_int_equal(write(s->stub, "-", 1), 1);
	assert_int_equal(write(s->stub, "+$01020304#8a", 13), 13);
	assert_int_equal(rsp_recv(s->c, &reply, &len, 1000), 0);
	assert_memory_equal(reply, "01020304", 8);
	expect_sent(s->stub, "$m1000,4#8e");
}

static void test_conn_bad_checksum_naks(void **state)
{
	struct stub_conn *s = *state;
	const char *reply;
	size_t len;

	/* A corrupted reply, then the good one as a stub resends it. */
	assert_int_equal(write(s->stub, "$OK#00$OK#9a", 12), 12);
	assert_int_equal(rsp_recv(s->c, &reply, &len, 1000), 0);
	assert_memory_equal(reply, "OK", 2);
	expect_sent(s->stub, "-");
	/* Endless garbage ends with -EPROTO, not a hang. */
	for (int i = 0; i < 8; i++)
		assert_int_equal(write(s->stub, "$OK#00", 6), 6);
	assert_int_equal(rsp_recv(s->c, &reply, &len, 1000), -EPROTO);
}

static void test_conn_reset_and_timeout(void **state)
{
	struct stub_conn *s = *state;
	const char *reply;
	size_t len;

	assert_int_equal(rsp_recv(s->c, &reply, &len, 50), -ETIMEDOUT);
	/* Half a packet, then the stub goes away. */
	assert_int_equal(write(s->stub, "$T05thr", 7), 7);
	close(s->stub);
	s->stub = -1;
	assert_int_equal(rsp_recv(s->c, &reply, &len, 1000), -ECONNRESET);
	assert_non_null(strstr(rsp_errmsg(s->c), "closed"));
}

static void test_conn_oversized(void **state)
{
	struct stub_conn *s = *state;
	const char *reply;
	size_t len;
	char big[5000];

	rsp_set_max_packet(s->c, 1024);
	memset(big, '0', sizeof(big));
	big[0] = '$';
	memcpy(big + sizeof(big) - 3, "#00", 3);
	assert_int_equal(write(s->stub, big, sizeof(big)), (ssize_t)sizeof(big));
	assert_int_equal(rsp_recv(s->c, &reply, &len, 1000), -EMSGSIZE);
}

static void test_conn_escapes_outgoing(void **state)
{
	struct stub_conn *s = *state;
	char got[64];

	assert_int_equal(rsp_queue(s->c, "X0,1:#", 6), 0);
	assert_int_equal(rsp_flush(s->c), 0);
	stub_read(s->stub, got, sizeof(got));
	/* '#' goes out as "}\x03" */
	assert_int_equal(memcmp(got, "$X0,1:}\x03#", 9), 0);
}

static void test_skip_next_ack(void **state)
{
	struct stub_conn *s = *state;
	const char *reply;
	size_t len;

	rsp_skip_next_ack(s->c);
	assert_int_equal(write(s->stub, "$OK#9a$T05#b9", 13), 13);
	assert_int_equal(rsp_recv(s->c, &reply, &len, 1000), 0);
	assert_int_equal(rsp_recv(s->c, &reply, &len, 1000), 0);
	assert_int_equal(rsp_flush(s->c), 0);
	expect_sent(s->stub, "+"); /* only the second was acked */
}

/* Writes sent with a resume: their OKs are read on the way to the stop,
 * an error is a refusal, and a guest that ends first is an ending. */
static void test_pending_oks(void **state)
{
	struct stub_conn *s = *state;
	const char *reply;
	size_t len;

	rsp_expect_oks(s->c, 2);
	assert_int_equal(write(s->stub, "$OK#9a$OK#9a$T05#b9", 19), 19);
	assert_int_equal(rsp_recv(s->c, &reply, &len, 1000), 0);
	assert_memory_equal(reply, "T05", 3);

	rsp_expect_oks(s->c, 1);
	assert_int_equal(write(s->stub, "$E22#a9", 7), 7);
	assert_int_equal(rsp_recv(s->c, &reply, &len, 1000), -EIO);
	assert_non_null(strstr(rsp_errmsg(s->c), "refused a write"));

	rsp_expect_oks(s->c, 2);
	assert_int_equal(write(s->stub, "$W00#b7$OK#9a", 13), 13);
	assert_int_equal(rsp_wait(s->c, &reply, &len, 1000), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(reply, "W00", 3);
	/* No OK is owed any more: the next packet is the caller's. */
	assert_int_equal(rsp_recv(s->c, &reply, &len, 1000), 0);
	assert_memory_equal(reply, "OK", 2);
}

/* QEMU told to quit while a request waits for its answer: the guest is
 * gone, not a malformed reply. */
static void test_exit_instead_of_an_answer(void **state)
{
	struct stub_conn *s = *state;
	const char *reply;
	size_t len;

	assert_int_equal(write(s->stub, "+$W00#b7", 8), 8);
	assert_int_equal(rsp_request(s->c, "g", &reply, &len, 1000), -ECONNRESET);
	assert_non_null(strstr(rsp_errmsg(s->c), "the guest ended before answering (the stub sent 'W00')"));
}

/* A stub that streams bytes which never make a packet: the call ends at
 * its timeout, not when the noise stops. */
static void test_conn_noise_times_out_on_time(void **state)
{
	struct stub_conn *s = *state;
	struct timespec t0, t1;
	const char *reply;
	size_t len;
	pid_t pid;
	int st;

	pid = fork();
	if (pid == 0) {
		for (int i = 0; i < 400; i++) { /* 2 s of noise, 5 ms apart */
			if (write(s->stub, "xyz", 3) != 3)
				_exit(0);
			usleep(5000);
		}
		_exit(0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(rsp_recv(s->c, &reply, &len, 300), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 600);
	assert_non_null(strstr(rsp_errmsg(s->c), "but no packet"));
}

/* QEMU binds its stub's socket before it listens: a connect in between is
 * refused, and must be tried again rather than reported. */
static void test_connect_waits_for_listen(void **state)
{
	char dir[SCRATCH_MAX], err[256];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = sa.sun_path;
	struct rsp_conn *c = NULL;
	int fd, st;
	pid_t pid;

	(void)state;
	scratch(dir, sizeof(dir), "kstep-test-rsp");
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/gdb.sock", dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(rsp_connect(&c, path, err, sizeof(err)), -ECONNREFUSED);
	pid = fork();
	if (pid == 0) {
		usleep(300000);
		_exit(listen(fd, 1) ? 1 : (usleep(1000000), 0));
	}
	assert_int_equal(rsp_connect_retry(&c, path, 5000, NULL, NULL, err, sizeof(err)), 0);
	rsp_close(c);
	waitpid(pid, &st, 0);
	close(fd);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_packet),
		cmocka_unit_test(test_split_reads_byte_by_byte),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_run_length),
		cmocka_unit_test(test_checksums),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_hex),
		cmocka_unit_test_setup_teardown(test_conn_frames_and_acks, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_poll_fd_only_when_nothing_is_buffered, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_conn_nak_retransmits, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_conn_bad_checksum_naks, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_conn_reset_and_timeout, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_conn_oversized, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_conn_escapes_outgoing, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_skip_next_ack, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_pending_oks, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_exit_instead_of_an_answer, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_conn_noise_times_out_on_time, conn_setup, conn_teardown),
		cmocka_unit_test(test_connect_waits_for_listen),
	};

	return cmocka_run_group_tests_name("rsp", tests, NULL, NULL);
}
