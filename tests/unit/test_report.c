// SPDX-License-Identifier: MIT
/* Unit tests of the packet report and of reading traces back: events
 * written by trace.c are read by ctfread.c field for field, and the report
 * groups them into packets with verdicts, latencies and drops. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctfread.h"
#include "files.h"
#include "report.h"
#include "trace.h"
#include "../scratch.h"

static struct ctf_event stop(uint64_t skb, const char *stage, const char *fn, uint64_t ns)
{
	struct ctf_event ev = { .name = "kstep:stop:x", .skb = skb, .probe = stage, .symbol = fn, .guest_ns = ns,
				.insn = "", .bt_end = "" };
	return ev;
}

static void field(struct ctf_event *ev, const char *name, uint64_t u, const char *s)
{
	ev->fields[ev->nfields++] = (struct ctf_field){ name, s != NULL, u, s };
}

static char *print(struct report *r, size_t rows)
{
	static char out[16384];
	FILE *f = fmemopen(out, sizeof(out), "w");

	report_print(r, f, rows);
	fclose(f);
	return out;
}

static void test_paths_and_recycling(void **state)
{
	struct report *r;
	struct ctf_event e;
	char *out;

	(void)state;
	assert_int_equal(report_new(&r), 0);
	/* two packets through the same buffer, one through another */
	e = stop(0x1000, "ip", "ip_rcv", 100), report_add(r, &e);
	e = stop(0x2000, "ip", "ip_rcv", 110), report_add(r, &e);
	e = stop(0x1000, "icmp", "icmp_rcv+0x0", 130), report_add(r, &e);
	e = stop(0x1000, "ip", "ip_rcv", 200), report_add(r, &e); /* recycled: a new packet */
	e = stop(0x1000, "icmp", "icmp_rcv", 260), report_add(r, &e);
	e = stop(0x2000, "udp", "udp_rcv.constprop.0", 150), report_add(r, &e);
	/* a probe off the path (order 0) never splits a packet */
	e = stop(0x2000, "user", "my_probe", 160), report_add(r, &e);
	e = stop(0, "user", "ignored", 170), report_add(r, &e);
	report_finish(r);
	assert_int_equal(report_packets(r), 3);
	out = print(r, 0);
	assert_non_null(strstr(out, "packets: 3"));
	assert_non_null(strstr(out, "2  ip_rcv -> icmp_rcv  [in flight]"));
	assert_non_null(strstr(out, "1  ip_rcv -> udp_rcv -> my_probe  [in flight]"));
	/* ip_rcv -> icmp_rcv took 30 and 60 ns of guest time */
	assert_non_null(strstr(out, "-> icmp_rcv                          0.030    0.030    0.060    0.060      2"));
	report_free(r);
}

static void test_verdicts(void **state)
{
	struct report *r;
	struct ctf_event e;
	char *out;

	(void)state;
	assert_int_equal(report_new(&r), 0);
	/* delivered to a task */
	e = stop(0x1000, "udp", "udp_rcv", 10), field(&e, "proto", 0, "udp"), field(&e, "saddr", 0, "10.0.2.2"),
	field(&e, "daddr", 0, "10.0.2.15"), field(&e, "sport", 69, NULL), field(&e, "dport", 4000, NULL),
	report_add(r, &e);
	e = stop(0x1000, "copy", "skb_copy_datagram_iter", 40), field(&e, "pid", 42, NULL),
	field(&e, "comm", 0, "tftp"), report_add(r, &e);
	/* dropped, with the reason and the caller */
	e = stop(0x3000, "drop", "kfree_skb_reason", 50), field(&e, "reason", 0, "SKB_DROP_REASON_NO_SOCKET");
	e.bt[0] = (struct ctf_frame){ 1, "kfree_skb_reason", "" };
	e.bt[1] = (struct ctf_frame){ 2, "__udp4_lib_rcv+0x3a1", "" };
	e.nbt = 2;
	report_add(r, &e);
	/* merged by GRO into the next skb of its flow */
	e = stop(0x4000, "gro", "napi_gro_receive", 60), field(&e, "proto", 0, "tcp"), field(&e, "sport", 5000, NULL),
	report_add(r, &e);
	e = (struct ctf_event){ .name = "kstep:return:napi_gro_receive", .probe = "gro", .symbol = "e1000_clean_rx_irq",
				.insn = "", .bt_end = "" };
	field(&e, "gro", 1, "GRO_MERGED_FREE"), report_add(r, &e);
	e = stop(0x5000, "gro", "napi_gro_receive", 70), field(&e, "proto", 0, "tcp"), field(&e, "sport", 5000, NULL),
	report_add(r, &e);
	e = stop(0x5000, "core", "__netif_receive_skb_core", 80), report_add(r, &e);
	report_finish(r);
	out = print(r, 10);
	assert_non_null(strstr(out, "udp 10.0.2.2:69 > 10.0.2.15:4000 len 0: delivered to 42:tftp"));
	assert_non_null(strstr(out, "udp_rcv(+0.000) skb_copy_datagram_iter(+0.030)"));
	assert_non_null(strstr(out, "dropped SKB_DROP_REASON_NO_SOCKET in __udp4_lib_rcv"));
	assert_non_null(strstr(out, "merged by GRO GRO_MERGED_FREE into skb 5000"));
	assert_non_null(strstr(out, "1  SKB_DROP_REASON_NO_SOCKET in __udp4_lib_rcv"));
	assert_non_null(strstr(out, "verdicts: in flight 1; delivered 1; merged by GRO 1; dropped 1;"));
	report_free(r);
}

/* What trace.c writes, ctfread.c reads: every common field and a class's
 * own; a stream cut inside an event ends at the one before. */
static void test_read_back(void **state)
{
	static const struct target_reg regs[2] = { { "rip", 64, 0, 0, true }, { "st0", 80, 1, 8, true } };
	static const struct target_desc desc = { .arch = "i386:x86-64", .regs = (struct target_reg *)regs, .nregs = 2,
						 .g_size = 18 };
	const struct trace_field fields[] = { { "len", TRACE_FIELD_U64 }, { "delta", TRACE_FIELD_S64 },
					      { "dev", TRACE_FIELD_STRING } };
	const struct trace_class cls = { "kstep:stop:udp_rcv", fields, 3 };
	const struct trace_env env = { .guest_clock = "icount", .classes = &cls, .nclasses = 1 };
	const struct trace_value vals[] = { { .u = 1448 }, { .u = (uint64_t)-7 }, { .str = "eth0" } };
	uint8_t raw[18] = { 0 }, ib[1] = { 0x90 };
	uint64_t stack[2] = { 1, 2 };
	struct trace_frame bt[2] = { { 0x10, "udp_rcv", "a.c:1" }, { 0x20, "ip_local_deliver+0x4", "" } };
	struct trace_event ev = { .kind = TRACE_STOP, .class_id = TRACE_CLASS_BASE, .seq = 1, .guest_ns = 777,
				  .vcpu = 1, .pc = 0x10, .probe = "udp", .symbol = "udp_rcv", .skb = 0xabc,
				  .values = vals, .regs = raw, .stack = stack, .stack_len = 2, .bt = bt, .bt_len = 2,
				  .bt_end = "stack-end" };
	char dir[SCRATCH_MAX], err[256], path[128];
	struct ctf_reader *rd;
	struct ctf_event got;
	struct trace *t;
	int dfd;

	(void)state;
	scratch(dir, sizeof(dir), "kstep-test-read");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(trace_prepare_dir(dir, false, &dfd, err, sizeof(err)), 0);
	assert_int_equal(trace_open(&t, dfd, dir, &desc, &env, err, sizeof(err)), 0);
	close(dfd);
	assert_int_equal(trace_write(t, &ev), 0);
	ev = (struct trace_event){ .kind = TRACE_STEP, .seq = 2, .pc = 0x11, .probe = "", .symbol = "udp_rcv+0x1",
				   .regs = raw, .stack = stack, .stack_len = 1, .bt_end = "", .insn = "nop",
				   .insn_bytes = ib, .insn_len = 1 };
	assert_int_equal(trace_write(t, &ev), 0);
	trace_close(t);

	assert_int_equal(ctf_open(&rd, dir, err, sizeof(err)), 0);
	assert_string_equal(ctf_guest_clock(rd), "icount");
	assert_int_equal(ctf_next(rd, &got), 1);
	assert_string_equal(got.name, "kstep:stop:udp_rcv");
	assert_int_equal(got.seq, 1);
	assert_int_equal(got.guest_ns, 777);
	assert_int_equal(got.vcpu, 1);
	assert_int_equal(got.skb, 0xabc);
	assert_string_equal(got.probe, "udp");
	assert_int_equal(ctf_field(&got, "len")->u, 1448);
	assert_int_equal((int64_t)ctf_field(&got, "delta")->u, -7);
	assert_string_equal(ctf_field(&got, "dev")->s, "eth0");
	assert_int_equal(got.nbt, 2);
	assert_string_equal(got.bt[1].func, "ip_local_deliver+0x4");
	assert_string_equal(got.bt_end, "stack-end");
	assert_int_equal(ctf_next(rd, &got), 1);
	assert_string_equal(got.name, "kstep:step");
	assert_string_equal(got.insn, "nop");
	assert_int_equal(ctf_next(rd, &got), 0);
	assert_int_equal(ctf_trailing(rd), 0);
	ctf_close(rd);

	/* Cut 3 bytes into the last event: the first still reads, then the end. */
	snprintf(path, sizeof(path), "%s/stream_0", dir);
	FILE *f = fopen(path, "r");
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fclose(f);
	assert_int_equal(truncate(path, size - 3), 0);
	assert_int_equal(ctf_open(&rd, dir, err, sizeof(err)), 0);
	assert_int_equal(ctf_next(rd, &got), 1);
	assert_int_equal(ctf_next(rd, &got), 0);
	assert_true(ctf_trailing(rd) > 0);
	ctf_close(rd);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

/* A fresh trace directory (@dir: a mkdtemp template) holding one event. */
static void one_event_trace(char *dir, const struct target_desc *desc, const struct trace_event *ev)
{
	const struct trace_env env = { 0 };
	struct trace *t;
	char err[256];
	int dfd;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(trace_prepare_dir(dir, false, &dfd, err, sizeof(err)), 0);
	assert_int_equal(trace_open(&t, dfd, dir, desc, &env, err, sizeof(err)), 0);
	close(dfd);
	assert_int_equal(trace_write(t, ev), 0);
	trace_close(t);
}

/* @dir's metadata with the first @from replaced by @to (and, with @twice,
 * its first event block repeated). */
static void edit_metadata(const char *dir, const char *from, const char *to, bool twice)
{
	static char text[1 << 17], out[1 << 17];
	char path[128];
	size_t n;
	FILE *f;
	char *at, *ev, *end;

	snprintf(path, sizeof(path), "%s/metadata", dir);
	assert_non_null(f = fopen(path, "r"));
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	at = strstr(text, from);
	assert_non_null(at);
	snprintf(out, sizeof(out), "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
	if (twice) {
		assert_non_null(ev = strstr(out, "event {"));
		assert_non_null(end = strstr(ev, "\n};\n"));
		n = strlen(out);
		assert_true(n + (size_t)(end + 4 - ev) < sizeof(out));
		memcpy(text, ev, (size_t)(end + 4 - ev));
		memcpy(out + n, text, (size_t)(end + 4 - ev));
		out[n + (size_t)(end + 4 - ev)] = '\0';
	}
	assert_non_null(f = fopen(path, "w"));
	fputs(out, f);
	fclose(f);
}

/* Metadata that others crafted (issue 22): a register block whose offsets
 * would wrap, a common text field declared as an integer, a class id given
 * twice. Refused or read safely; never a read outside the stream. */
static void test_crafted_metadata(void **state)
{
	static struct target_reg regs[2] = { { "rax", 64, 0, 0, true }, { "rip", 64, 1, 8, true } };
	const struct target_desc desc = { "i386:x86-64", regs, 2, 16 };
	uint8_t raw[16] = { 1 };
	uint64_t stack[1] = { 1 }, v;
	struct trace_event ev = { .kind = TRACE_STOP, .seq = 1, .pc = 0x10, .probe = "udp", .symbol = "udp_rcv",
				  .regs = raw, .stack = stack, .stack_len = 1, .bt_end = "" };
	char dir[SCRATCH_MAX], err[256], cmd[128];
	struct ctf_reader *rd;
	struct report *rep;
	struct ctf_event got;

	(void)state;
	for (int round = 0; round < 3; round++) {
		scratch(dir, sizeof(dir), "kstep-test-craft");
		one_event_trace(dir, &desc, &ev);
		if (round == 0) { /* ctf_reg once read 4 GiB past the map */
			edit_metadata(dir, "xint64_t rax;", "uint8_t pad[4294967292]; xint64_t rax;", false);
			assert_int_equal(ctf_open(&rd, dir, err, sizeof(err)), -EINVAL);
		} else if (round == 1) { /* report once took the integer for a string */
			edit_metadata(dir, "string probe;", "uint64_t probe;", false);
			assert_int_equal(ctf_open(&rd, dir, err, sizeof(err)), 0);
			assert_int_equal(ctf_next(rd, &got), 1);
			assert_non_null(got.probe);
			assert_int_equal(ctf_reg(rd, &got, "rax", &v), 0);
			ctf_close(rd);
			assert_int_equal(report_read_dir(&rep, dir, NULL, err, sizeof(err)), 0);
			report_free(rep);
		} else { /* a second class 0 once leaked the first */
			edit_metadata(dir, "event {", "event {", true);
			assert_int_equal(ctf_open(&rd, dir, err, sizeof(err)), -EINVAL);
		}
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		assert_int_equal(system(cmd), 0);
	}
}

/* More names than the first table holds (8192): each is still itself,
 * never "?" (a crafted trace once put 7,874 of 8,000 instructions there). */
static void test_many_names(void **state)
{
	static char names[20000][16];
	struct report *r;
	struct ctf_event e;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_int_equal(report_new(&r), 0);
	for (int i = 0; i < 20000; i++) {
		snprintf(names[i], sizeof(names[i]), "fn_%05d+0x0", i);
		e = (struct ctf_event){ .name = "kstep:step", .symbol = names[i], .probe = "", .insn = "nop",
					.bt_end = "", .pc = 0x1000 + (uint64_t)i };
		assert_int_equal(report_add(r, &e), 0);
	}
	report_finish(r);
	assert_non_null(f = open_memstream(&out, &len));
	calltree_folded(report_calltree(r), f);
	fclose(f);
	assert_null(strstr(out, "?"));
	assert_non_null(strstr(out, "fn_00000"));
	assert_non_null(strstr(out, "fn_19999"));
	free(out);
	report_free(r);

	/* Control bytes in a name reach no terminal or SVG raw. */
	assert_int_equal(report_new(&r), 0);
	for (int i = 0; i < 3; i++) {
		e = (struct ctf_event){ .name = "kstep:step", .symbol = "evil\x1b[2J\x07" "fn+0x0", .probe = "",
					.insn = "nop", .bt_end = "", .pc = 0x1000 };
		assert_int_equal(report_add(r, &e), 0);
	}
	report_finish(r);
	out = NULL;
	assert_non_null(f = open_memstream(&out, &len));
	calltree_folded(report_calltree(r), f);
	fclose(f);
	assert_null(strchr(out, 0x1b));
	assert_non_null(strstr(out, "evil\\x1b[2J\\x07fn 3"));
	free(out);
	report_free(r);
}

/* Files a trace names are opened only when regular (a FIFO once blocked
 * report in open() for ever), and a signal's flag ends the reading. */
static void test_fifos_and_interrupts(void **state)
{
	static struct target_reg regs[1] = { { "rip", 64, 0, 0, true } };
	const struct target_desc desc = { "i386:x86-64", regs, 1, 16 };
	uint8_t raw[16] = { 1 };
	uint64_t stack[1] = { 1 };
	struct trace_event ev = { .kind = TRACE_STOP, .seq = 1, .pc = 0x10, .probe = "udp", .symbol = "udp_rcv",
				  .regs = raw, .stack = stack, .stack_len = 1, .bt_end = "" };
	char dir[SCRATCH_MAX], err[256], path[128], cmd[128];
	volatile sig_atomic_t stop = 1;
	struct report_opts o = { .interrupted = &stop };
	struct ctf_reader *rd;
	struct ctf_event got;
	struct report *rep;

	(void)state;
	scratch(dir, sizeof(dir), "kstep-test-fifo");
	one_event_trace(dir, &desc, &ev);
	assert_int_equal(report_read_dir(&rep, dir, &o, err, sizeof(err)), -EINTR);
	assert_int_equal(ctf_open(&rd, dir, err, sizeof(err)), 0);
	ctf_set_interrupt(rd, &stop);
	assert_int_equal(ctf_next(rd, &got), -EINTR);
	ctf_close(rd);
	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(files_open_regular(path), -EINVAL);
	assert_null(files_fopen_regular("/dev/zero"));
	snprintf(path, sizeof(path), "%s/metadata", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_not_equal(ctf_open(&rd, dir, err, sizeof(err)), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths_and_recycling),
		cmocka_unit_test(test_verdicts),
		cmocka_unit_test(test_read_back),
		cmocka_unit_test(test_crafted_metadata),
		cmocka_unit_test(test_fifos_and_interrupts),
		cmocka_unit_test(test_many_names),
	};

	return cmocka_run_group_tests_name("report", tests, NULL, NULL);
}
