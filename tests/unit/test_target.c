// SPDX-License-Identifier: MIT
/* Unit tests of target description and stop reply parsing (socket-free),
 * and of the pipelined register read before a step against a scripted fake
 * stub for a fault QEMU does not produce on demand (a 'g' it refuses). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fakestub.h"
#include "target.h"

/* The shape QEMU 7.2 sends: target.xml includes the register file. */
static const char top[] =
	"<?xml version=\"1.0\"?><!DOCTYPE target SYSTEM \"gdb-target.dtd\">"
	"<target><architecture>i386:x86-64</architecture>"
	"<xi:include href=\"regs.xml\"/></target>";
static const char regs[] =
	"<?xml version=\"1.0\"?><!DOCTYPE feature SYSTEM \"gdb-target.dtd\">"
	"<feature name=\"org.gnu.gdb.i386.core\">"
	"<flags id=\"f\" size=\"4\"><field name=\"CF\" start=\"0\" end=\"0\"/></flags>"
	"<reg name=\"rax\" bitsize=\"64\" type=\"int64\"/>"
	"<reg name=\"rip\" bitsize=\"64\" type=\"code_ptr\"/>"
	"<reg name=\"eflags\" bitsize=\"32\" type=\"f\"/>"
	"<reg name=\"st0\" bitsize=\"80\" type=\"i387_ext\"/>"
	"<reg name=\"xmm0\" bitsize=\"128\" type=\"vec128\" regnum=\"10\"/>"
	"<reg name=\"mxcsr\" bitsize=\"32\"/>"
	"</feature>";

static int fetches;

static char *fetch(void *ctx, const char *name, size_t *len)
{
	(void)ctx;
	fetches++;
	if (strcmp(name, "regs.xml"))
		return NULL;
	*len = strlen(regs);
	return strdup(regs);
}

static char *fetch_self(void *ctx, const char *name, size_t *len)
{
	(void)ctx;
	(void)name;
	*len = strlen(top);
	return strdup(top); /* includes itself forever */
}

static void test_desc_with_include(void **state)
{
	struct target_desc d;
	char err[256];

	(void)state;
	fetches = 0;
	assert_int_equal(target_desc_parse(&d, top, strlen(top), fetch, NULL, err, sizeof(err)), 0);
	assert_int_equal(fetches, 1);
	assert_string_equal(d.arch, "i386:x86-64");
	assert_int_equal(d.nregs, 6);
	assert_string_equal(d.regs[0].name, "rax");
	assert_int_equal(d.regs[1].offset, 8);
	assert_int_equal(d.regs[3].bitsize, 80);
	assert_int_equal(d.regs[3].offset, 20);
	/* regnum= resets numbering; later registers follow it */
	assert_int_equal(d.regs[4].regnum, 10);
	assert_int_equal(d.regs[5].regnum, 11);
	assert_int_equal(d.regs[4].offset, 30);
	assert_int_equal(d.g_size, 8 + 8 + 4 + 10 + 16 + 4);
	assert_int_equal(target_desc_find(&d, "eflags"), 2);
	assert_int_equal(target_desc_find(&d, "nope"), -1);
	target_desc_free(&d);
}

static void test_desc_errors(void **state)
{
	struct target_desc d;
	char err[256];
	const char *bad_bits = "<target><feature><reg name=\"x\" bitsize=\"12\"/></feature></target>";
	const char *no_regs = "<target><architecture>x</architecture></target>";

	(void)state;
	assert_int_equal(target_desc_parse(&d, "<target><unclosed>", 18, fetch, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "well-formed"));
	assert_int_equal(target_desc_parse(&d, bad_bits, strlen(bad_bits), fetch, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bitsize"));
	assert_int_equal(target_desc_parse(&d, no_regs, strlen(no_regs), fetch, NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(target_desc_parse(&d, top, strlen(top), fetch_self, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too deep"));
	assert_int_equal(target_desc_parse(&d, top, strlen(top), NULL, NULL, err, sizeof(err)), -EINVAL);
}

static void test_stop_replies(void **state)
{
	struct target_stop st;
	const char *t1 = "T05thread:p01.02;swbreak:;";
	const char *t2 = "T02thread:01;06:0000000000000000;";
	const char *t3 = "T05watch:ffff888000001000;thread:p1.1;";

	(void)state;
	assert_int_equal(target_parse_stop(t1, strlen(t1), &st), 0);
	assert_int_equal(st.kind, TARGET_STOP_SIGNAL);
	assert_int_equal(st.signal, 5);
	assert_int_equal(st.pid, 1);
	assert_int_equal(st.thread, 2);
	assert_true(st.swbreak);
	assert_int_equal(target_parse_stop(t2, strlen(t2), &st), 0);
	assert_int_equal(st.signal, 2);
	assert_int_equal(st.thread, 1);
	assert_int_equal(target_parse_stop(t3, strlen(t3), &st), 0);
	assert_true(st.watch);
	assert_true(st.watch_addr == 0xffff888000001000ull);
	assert_int_equal(target_parse_stop("S05", 3, &st), 0);
	assert_int_equal(st.thread, 0);
	assert_int_equal(target_parse_stop("W00", 3, &st), 0);
	assert_int_equal(st.kind, TARGET_STOP_EXITED);
	assert_int_equal(target_parse_stop("W01;process:2a", 14, &st), 0);
	assert_int_equal(st.signal, 1);
	assert_int_equal(st.pid, 0x2a);
	assert_int_equal(target_parse_stop("X09", 3, &st), 0);
	assert_int_equal(st.kind, TARGET_STOP_KILLED);
	assert_int_equal(target_parse_stop("O48690a", 7, &st), 0);
	assert_int_equal(st.kind, TARGET_STOP_OUTPUT);
}

static void test_stop_reply_errors(void **state)
{
	struct target_stop st;

	(void)state;
	/* "OK" and "E01" answer other requests: never a stop */
	assert_int_equal(target_parse_stop("OK", 2, &st), -EINVAL);
	assert_int_equal(target_parse_stop("E01", 3, &st), -EINVAL);
	assert_int_equal(target_parse_stop("", 0, &st), -EINVAL);
	assert_int_equal(target_parse_stop("T", 1, &st), -EINVAL);
	assert_int_equal(target_parse_stop("Tzz", 3, &st), -EINVAL);
	assert_int_equal(target_parse_stop("S0511", 5, &st), -EINVAL);
	assert_int_equal(target_parse_stop("T05thread:pxx.1;", 16, &st), -EINVAL);
	assert_int_equal(target_parse_stop("T05nocolon", 10, &st), -EINVAL);
	assert_int_equal(target_parse_stop("W0", 2, &st), -EINVAL);
}

/* A scripted stub: each packet answered by the first entry whose request
 * starts it. */
struct scripted {
	const char *request, *reply;
};

struct script {
	const struct scripted *v;
	size_t n;
};

static bool scripted_answer(void *ctx, const char *pkt, char *reply, size_t len)
{
	const struct script *s = ctx;

	for (size_t i = 0; i < s->n; i++)
		if (!strncmp(pkt, s->v[i].request, strlen(s->v[i].request))) {
			snprintf(reply, len, "%s", s->v[i].reply);
			break;
		}
	return true;
}

/* After a 'g' the stub refuses, the step's stop reply that follows in the
 * same pipelined batch is left for target_wait, not eaten as an 'm' reply
 * that was never asked for. */
static void test_refused_g_keeps_the_stop_reply(void **state)
{
	static const char xml[] = "l<?xml version=\"1.0\"?><target><architecture>i386:x86-64</architecture>"
				  "<feature name=\"org.gnu.gdb.i386.core\"><reg name=\"rip\" bitsize=\"64\"/>"
				  "<reg name=\"rsp\" bitsize=\"64\"/></feature></target>";
	const struct scripted script[] = {
		{ "qSupported", "PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+" },
		{ "QStartNoAckMode", "" },
		{ "vCont?", "vCont;c;C;s;S" },
		{ "qqemu.sstepbits", "ENABLE=1,NOIRQ=2,NOTIMER=4" },
		{ "qXfer:features:read:target.xml", xml },
		{ "?", "T05thread:p01.01;" },
		{ "g", "E01" },
		{ "vCont;s", "T05thread:p01.01;" },
	};
	struct rsp_conn *rsp;
	struct target *t;
	struct target_stop st;
	const uint8_t *raw;
	uint8_t mem[8];
	size_t got;
	char err[256];
	int fd = -1, status;
	pid_t pid;

	(void)state;
	pid = fakestub_start(&fd, scripted_answer, &(struct script){ script, sizeof(script) / sizeof(script[0]) });
	assert_true(pid > 0);
	assert_int_equal(rsp_conn_from_fd(&rsp, fd), 0);
	assert_int_equal(target_open(&t, rsp, err, sizeof(err)), 0);
	assert_true(target_read_regs_mem_step(t, &raw, 0, mem, 0, &got, 1) < 0);
	assert_int_equal(target_wait(t, &st, 2000), 0);
	assert_int_equal(st.kind, TARGET_STOP_SIGNAL);
	assert_int_equal(st.signal, 5);
	target_close(t);
	rsp_close(rsp);
	waitpid(pid, &status, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_desc_with_include),
		cmocka_unit_test(test_desc_errors),
		cmocka_unit_test(test_stop_replies),
		cmocka_unit_test(test_stop_reply_errors),
		cmocka_unit_test(test_refused_g_keeps_the_stop_reply),
	};

	return cmocka_run_group_tests_name("target", tests, NULL, NULL);
}
