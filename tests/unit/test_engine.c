// SPDX-License-Identifier: MIT
/* Unit tests of the engine's breakpoint loop against a scripted stub
 * (fakestub.h) with an x86-64 register layout, over the project's vmlinux:
 * every hit becomes one event in a real trace, and each ending (the guest
 * gone, --max-stops, Ctrl-C) and error (a refused register read, a target
 * that is not x86-64) is reported as such. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctfread.h"
#include "engine.h"
#include "fakestub.h"
#include "probes.h"
#include "rsp.h"
#include "symbols.h"
#include "vmlinux.h"
#include "target.h"
#include "trace.h"
#include "../scratch.h"

/* rax..r15 and rip (64 bits), eflags and the segments (32), fs_base and
 * gs_base (64), in the order of the 'g' reply. */
static const char *const reg_names[] = { "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8",
					 "r9",  "r10", "r11", "r12", "r13", "r14", "r15", "rip", "eflags",
					 "cs",  "ss",  "ds",  "es",  "fs",  "gs",  "fs_base", "gs_base" };
#define NREGS (sizeof(reg_names) / sizeof(reg_names[0]))
#define RIP 16
#define RSP 7
#define STACK 0xffffc90000013f00ull

/* What the scripted guest does. */
struct guest {
	uint64_t probe;      /* where a continue stops */
	int stops;           /* continues that stop there; the next one: the guest exits */
	bool refuse_g;       /* 'g' answered with an error */
	bool no_rbp;         /* a register layout without rbp: not x86-64 as kstep knows it */
	uint64_t regs[NREGS];
	int conts;
};

static char err[1024];

static unsigned int reg_bits(size_t i)
{
	return i == RIP + 1 || (i > RIP + 1 && i < NREGS - 2) ? 32 : 64;
}

static void target_xml(const struct guest *g, char *out, size_t len)
{
	size_t off = (size_t)snprintf(out, len, "l<?xml version=\"1.0\"?><target><architecture>i386:x86-64"
					       "</architecture><feature name=\"org.gnu.gdb.i386.core\">");

	for (size_t i = 0; i < NREGS; i++)
		if (!(g->no_rbp && !strcmp(reg_names[i], "rbp")))
			off += (size_t)snprintf(out + off, len - off, "<reg name=\"%s\" bitsize=\"%u\"/>", reg_names[i],
						reg_bits(i));
	snprintf(out + off, len - off, "</feature></target>");
}

static void g_reply(const struct guest *g, char *out, size_t len)
{
	size_t off = 0;

	for (size_t i = 0; i < NREGS; i++)
		for (unsigned int b = 0; b < reg_bits(i) / 8 && off + 3 < len; b++)
			off += (size_t)snprintf(out + off, len - off, "%02x", (unsigned int)(g->regs[i] >> (8 * b)) & 0xff);
}

/* 'mADDR,LEN': zeros (an empty stack, code that is not there). */
static void m_reply(const char *pkt, char *out, size_t len)
{
	unsigned long n = strtoul(strchr(pkt, ',') + 1, NULL, 16);

	for (size_t i = 0; i < n && 2 * i + 2 < len; i++)
		memcpy(out + 2 * i, "00", 3);
}

static bool answer(void *ctx, const char *pkt, char *reply, size_t len)
{
	struct guest *g = ctx;

	if (!strncmp(pkt, "qSupported", 10))
		snprintf(reply, len, "PacketSize=4000;qXfer:features:read+;vContSupported+;multiprocess+");
	else if (!strncmp(pkt, "qXfer:features:read:target.xml", 30))
		target_xml(g, reply, len);
	else if (!strcmp(pkt, "vCont?"))
		snprintf(reply, len, "vCont;c;C;s;S");
	else if (!strncmp(pkt, "qqemu.sstepbits", 15))
		snprintf(reply, len, "ENABLE=1,NOIRQ=2,NOTIMER=4");
	else if (!strcmp(pkt, "?"))
		snprintf(reply, len, "T05thread:p01.01;");
	else if (!strcmp(pkt, "g"))
		g->refuse_g ? snprintf(reply, len, "E14") : (g_reply(g, reply, len), 0);
	else if (pkt[0] == 'm')
		m_reply(pkt, reply, len);
	else if (!strncmp(pkt, "vCont;s", 7)) {
		g->regs[RIP]++;
		snprintf(reply, len, "T05thread:p01.01;");
	} else if (!strncmp(pkt, "vCont;c", 7) || !strcmp(pkt, "c")) {
		g->regs[RIP] = g->probe;
		snprintf(reply, len, ++g->conts <= g->stops ? "T05thread:p01.01;" : "W00");
	} else if (strchr("ZzMXGPHDQ", pkt[0]))
		snprintf(reply, len, "OK");
	return true; /* anything else: "", not supported */
}

/* A connected target over the scripted guest @g. */
struct rig {
	pid_t pid;
	struct rsp_conn *rsp;
	struct target *t;
	struct probe_set ps;
	struct trace *trace;
	char dir[SCRATCH_MAX];
	volatile sig_atomic_t stop;
	struct engine_opts o;
};

static void rig_up(struct rig *r, struct guest *g)
{
	struct trace_class *classes = NULL;
	struct trace_env env = { .unwinder = "fp", .vmlinux = vmlinux, .banner = "", .command = "test" };
	size_t nclasses = 0;
	int fd = -1, dfd;

	memset(r, 0, sizeof(*r));
	g->probe = sym_lookup_name(syms, "ip_rcv")->addr;
	g->regs[RIP] = sym_lookup_name(syms, "start_kernel")->addr;
	g->regs[RSP] = STACK;
	r->pid = fakestub_start(&fd, answer, g);
	assert_true(r->pid > 0);
	assert_int_equal(rsp_conn_from_fd(&r->rsp, fd), 0);
	assert_int_equal(target_open(&r->t, r->rsp, err, sizeof(err)), 0);
	probes_set_paths(&r->ps, syms, vmlinux, NULL, NULL);
	assert_int_equal(probes_add_spec(&r->ps, "ip_rcv", NULL, syms, err, sizeof(err)), 0);
	assert_int_equal(probes_trace_classes(&r->ps, &classes, &nclasses, err, sizeof(err)), 0);
	env.classes = classes;
	env.nclasses = nclasses;
	scratch(r->dir, sizeof(r->dir), "kstep-test-engine");
	assert_non_null(mkdtemp(r->dir));
	assert_int_equal(trace_prepare_dir(r->dir, true, &dfd, err, sizeof(err)), 0);
	assert_int_equal(trace_open(&r->trace, dfd, r->dir, target_desc(r->t), &env, err, sizeof(err)), 0);
	probes_free_classes(classes, nclasses);
	r->o = (struct engine_opts){ .stack_bytes = 256, .unwind = SNAPSHOT_UNWIND_FP, .interrupted = &r->stop };
}

static void rig_down(struct rig *r)
{
	char cmd[128];
	int status;

	trace_close(r->trace);
	probes_free(&r->ps);
	target_close(r->t);
	rsp_close(r->rsp);
	waitpid(r->pid, &status, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", r->dir);
	assert_int_equal(system(cmd), 0);
}

/* The events the trace holds. */
static int events_in(const char *dir)
{
	struct ctf_reader *rd;
	struct ctf_event ev;
	int n = 0;

	assert_int_equal(ctf_open(&rd, dir, err, sizeof(err)), 0);
	while (ctf_next(rd, &ev) > 0)
		n++;
	ctf_close(rd);
	return n;
}

/* Run the loop over @g with @max_stops (0: none); its result. */
static int trace_guest(struct guest *g, uint64_t max_stops, bool stopped, struct engine_result *res, int *events)
{
	struct engine *e;
	struct rig r;
	int ret;

	rig_up(&r, g);
	r.o.max_stops = max_stops;
	r.stop = stopped;
	assert_int_equal(engine_new(&e, r.t, syms, r.trace, &r.o, err, sizeof(err)), 0);
	memset(res, 0, sizeof(*res));
	ret = engine_trace(e, &r.ps, res);
	if (ret)
		snprintf(err, sizeof(err), "%s", engine_errmsg(e));
	engine_free(e);
	trace_close(r.trace);
	r.trace = NULL;
	*events = events_in(r.dir);
	rig_down(&r);
	return ret;
}

static void test_each_hit_is_one_event_until_the_guest_exits(void **state)
{
	struct guest g = { .stops = 3 };
	struct engine_result res;
	int events;

	(void)state;
	assert_int_equal(trace_guest(&g, 0, false, &res, &events), 0);
	assert_int_equal(res.end, ENGINE_END_GUEST_EXITED);
	assert_int_equal(res.stops, 3);
	assert_int_equal(events, 3);
}

static void test_max_stops_ends_it_exactly(void **state)
{
	struct guest g = { .stops = 10 };
	struct engine_result res;
	int events;

	(void)state;
	assert_int_equal(trace_guest(&g, 2, false, &res, &events), 0);
	assert_int_equal(res.end, ENGINE_END_MAX_STOPS);
	assert_int_equal(res.stops, 2);
	assert_int_equal(events, 2);
}

static void test_ctrl_c_ends_it_as_interrupted(void **state)
{
	struct guest g = { .stops = 10 };
	struct engine_result res;
	int events;

	(void)state;
	assert_int_equal(trace_guest(&g, 0, true, &res, &events), 0);
	assert_int_equal(res.end, ENGINE_END_INTERRUPTED);
	assert_int_equal(res.stops, 0);
	assert_int_equal(events, 0);
}

/* A stub that refuses the registers at a hit: an error that says so. */
static void test_refused_registers_are_an_error_with_a_message(void **state)
{
	struct guest g = { .stops = 3, .refuse_g = true };
	struct engine_result res;
	int events;

	(void)state;
	assert_true(trace_guest(&g, 0, false, &res, &events) < 0);
	assert_non_null(strstr(err, "reading registers: stub answered E14"));
	assert_int_equal(events, 0);
}

/* A register layout without rbp is not the x86-64 kstep knows. */
static void test_a_target_that_is_not_x86_64_is_refused(void **state)
{
	struct guest g = { .no_rbp = true };
	struct engine_opts o = { .stack_bytes = 256 };
	struct engine *e = NULL;
	struct rsp_conn *rsp;
	struct target *t;
	int fd = -1, status;
	pid_t pid = fakestub_start(&fd, answer, &g);

	(void)state;
	assert_int_equal(rsp_conn_from_fd(&rsp, fd), 0);
	assert_int_equal(target_open(&t, rsp, err, sizeof(err)), 0);
	assert_int_equal(engine_new(&e, t, syms, NULL, &o, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "not x86-64"));
	target_close(t);
	rsp_close(rsp);
	waitpid(pid, &status, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_hit_is_one_event_until_the_guest_exits),
		cmocka_unit_test(test_max_stops_ends_it_exactly),
		cmocka_unit_test(test_ctrl_c_ends_it_as_interrupted),
		cmocka_unit_test(test_refused_registers_are_an_error_with_a_message),
		cmocka_unit_test(test_a_target_that_is_not_x86_64_is_refused),
	};

	return cmocka_run_group_tests_name("engine", tests, open_vmlinux, close_vmlinux);
}
