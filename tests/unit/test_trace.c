// SPDX-License-Identifier: MIT
/* Unit tests of the CTF writer: metadata text, event layout, and a trace that
 * babeltrace2 (the real reader) decodes to the values written, also when the
 * stream is cut after its last complete event or the disk fills up; the
 * trace directory's rules (private, no links, no reuse without --force). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctfread.h"
#include "trace.h"
#include "../scratch.h"

static struct target_reg regs[] = {
	{ "rax", 64, 0, 0, true }, { "eflags", 32, 1, 8, true },
	{ "st0", 80, 2, 12, true }, { "xmm0", 128, 3, 22, true },
};
static struct target_desc desc = { "i386:x86-64", regs, 4, 38 };
static const struct trace_env env = {
	.unwinder = "auto", .vmlinux = "/k/vmlinux", .banner = "Linux version \"6.1\" test", .command = "trace"
};

static void test_metadata(void **state)
{
	struct buf b = { 0 };
	uint8_t uuid[16] = { 0x12, 0x34 };
	const char *m;

	(void)state;
	assert_int_equal(trace_metadata(&b, &desc, &env, uuid, 1700000000, 5), 0);
	m = buf_cstr(&b);
	assert_non_null(strstr(m, "/* CTF 1.8 */"));
	assert_non_null(strstr(m, "uuid = \"12340000-"));
	assert_non_null(strstr(m, "xint64_t rax;"));
	assert_non_null(strstr(m, "xint32_t eflags;"));
	assert_non_null(strstr(m, "xint8_t st0[10];"));
	assert_non_null(strstr(m, "xint8_t xmm0[16];"));
	assert_non_null(strstr(m, "name = \"kstep:stop\""));
	assert_non_null(strstr(m, "name = \"kstep:step\""));
	assert_non_null(strstr(m, "offset_s = 1700000000;"));
	/* quotes in env strings are escaped */
	assert_non_null(strstr(m, "kernel = \"Linux version \\\"6.1\\\" test\";"));
	buf_free(&b);
}

static void test_encoding_layout(void **state)
{
	uint8_t raw[38];
	uint64_t stack[1] = { 0x1122334455667788ull };
	struct trace_frame bt[1] = { { 0xffffffff81000000ull, "f", "a.c:1" } };
	struct trace_event ev = { .kind = TRACE_STOP, .ts_ns = 7, .seq = 9, .vcpu = 1, .pc = 0xabc,
				  .probe = "ip", .symbol = "ip_rcv", .skb = 0x55, .regs = raw,
				  .stack = stack, .stack_len = 1, .bt = bt, .bt_len = 1, .guest_ns = 0x33 };
	struct buf b = { 0 };
	/* ... + backtrace, then bt_end (NULL: "") and bt_reliable */
	size_t want = 4 + 8 + 8 + 8 + 4 + 8 + 3 + 7 + 8 + 38 + 4 + 8 + 4 + 8 + 2 + 6 + 1 + 1;

	(void)state;
	memset(raw, 0xaa, sizeof(raw));
	assert_int_equal(trace_encode(&b, &desc, NULL, &ev), 0);
	assert_int_equal(b.len, want);
	assert_int_equal(b.data[0], TRACE_STOP);
	assert_int_equal(b.data[4], 7);       /* timestamp */
	assert_int_equal(b.data[12], 9);      /* seq */
	assert_int_equal(b.data[20], 0x33);   /* guest_ns */
	assert_int_equal(b.data[28], 1);      /* vcpu */
	assert_memory_equal(b.data + 40, "ip\0ip_rcv\0", 10);
	buf_free(&b);
}

static int run(const char *cmd, char *out, size_t len)
{
	FILE *p = popen(cmd, "r");
	size_t n;

	if (!p)
		return -1;
	n = fread(out, 1, len - 1, p);
	out[n] = '\0';
	return pclose(p);
}

static void test_babeltrace_reads_it(void **state)
{
	char dir[SCRATCH_MAX], cmd[256], path[128];
	static char out[65536];
	uint8_t raw[38], ib[3] = { 0x48, 0x89, 0xe5 };
	uint64_t stack[2] = { 0x10, 0x20 };
	struct trace_frame bt[2] = { { 0xffffffff81000000ull, "icmp_rcv", "net/ipv4/icmp.c:1" },
				     { 0xffffffff81000010ull, "ip_local_deliver+0x10", "" } };
	struct trace *t;
	char err[256];
	struct stat st;

	int dfd;

	(void)state;
	scratch(dir, sizeof(dir), "kstep-test-trace");
	assert_non_null(mkdtemp(dir));
	memset(raw, 0, sizeof(raw));
	raw[0] = 0x42;
	assert_int_equal(trace_prepare_dir(dir, false, &dfd, err, sizeof(err)), 0);
	assert_int_equal(trace_open(&t, dfd, dir, &desc, &env, err, sizeof(err)), 0);
	close(dfd);
	struct trace_event ev = { .kind = TRACE_STOP, .ts_ns = trace_now_ns(), .seq = 1, .vcpu = 1,
				  .pc = 0xffffffff81000000ull, .probe = "icmp", .symbol = "icmp_rcv",
				  .skb = 0xffff888000001000ull, .regs = raw, .stack = stack, .stack_len = 2, .bt = bt,
				  .bt_len = 2, .bt_end = "stack-end", .bt_reliable = 1, .guest_ns = 123456 };
	assert_int_equal(trace_write(t, &ev), 0);
	struct trace_event ev2 = { .kind = TRACE_STEP, .ts_ns = trace_now_ns(), .seq = 2, .pc = 0xffffffff81000001ull,
				   .probe = "", .symbol = "icmp_rcv+0x1", .regs = raw, .stack = stack, .stack_len = 1,
				   .bt = bt, .bt_len = 1, .bt_end = "not-text", .insn = "movq %rsp, %rbp",
				   .insn_bytes = ib, .insn_len = 3 };
	assert_int_equal(trace_write(t, &ev2), 0);
	snprintf(path, sizeof(path), "%s/stream_0", dir);
	stat(path, &st);
	ev2.seq = 3;
	assert_int_equal(trace_write(t, &ev2), 0);
	assert_int_equal(trace_close(t), 0);

	snprintf(cmd, sizeof(cmd), "babeltrace2 %s 2>&1", dir);
	assert_int_equal(run(cmd, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "kstep:stop: { seq = 1, guest_ns = 123456, vcpu = 1, pc = 0xFFFFFFFF81000000, "
				    "probe = \"icmp\""));
	assert_non_null(strstr(out, "skb = 0xFFFF888000001000"));
	assert_non_null(strstr(out, "rax = 0x42"));
	assert_non_null(strstr(out, "func = \"ip_local_deliver+0x10\""));
	assert_non_null(strstr(out, "insn = \"movq %rsp, %rbp\""));
	assert_non_null(strstr(out, "bt_end = \"stack-end\", bt_reliable = 1"));
	assert_non_null(strstr(out, "bt_end = \"not-text\", bt_reliable = 0"));
	assert_non_null(strstr(out, "seq = 3"));

	/* Cut after the second event, as a crash after two writes leaves it. */
	assert_int_equal(truncate(path, st.st_size), 0);
	assert_int_equal(run(cmd, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "seq = 2"));
	assert_null(strstr(out, "seq = 3"));
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* A probe's own event class: babeltrace2 prints its fields by name and type,
 * and an event of a class the trace does not have is refused. */
static void test_probe_class_fields(void **state)
{
	char dir[SCRATCH_MAX], cmd[256], err[256];
	static char out[65536];
	static uint8_t raw[38];
	uint64_t stack[1] = { 1 };
	const struct trace_field fields[] = { { "len", TRACE_FIELD_U64 }, { "delta", TRACE_FIELD_S64 },
					      { "ptr", TRACE_FIELD_X64 }, { "dev", TRACE_FIELD_STRING },
					      { "event", TRACE_FIELD_U64 } };
	const struct trace_class cls = { "kstep:stop:tcp_v4_rcv", fields, 5 };
	struct trace_env cenv = env;
	const struct trace_value vals[] = { { .u = 1448 }, { .u = (uint64_t)-5 }, { .u = 0xabc }, { .str = "eth0" },
					    { .u = 7 } };
	struct trace_event ev = { .kind = TRACE_STOP, .class_id = TRACE_CLASS_BASE, .seq = 1, .probe = "tcp",
				  .symbol = "tcp_v4_rcv", .values = vals, .regs = raw, .stack = stack, .stack_len = 1,
				  .bt_end = "" };
	struct trace *t;
	int dfd;

	(void)state;
	scratch(dir, sizeof(dir), "kstep-test-class");
	cenv.classes = &cls;
	cenv.nclasses = 1;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(trace_prepare_dir(dir, false, &dfd, err, sizeof(err)), 0);
	assert_int_equal(trace_open(&t, dfd, dir, &desc, &cenv, err, sizeof(err)), 0);
	close(dfd);
	assert_int_equal(trace_write(t, &ev), 0);
	ev.class_id = TRACE_CLASS_BASE + 1;
	assert_int_equal(trace_write(t, &ev), -EINVAL);
	trace_close(t);
	snprintf(cmd, sizeof(cmd), "babeltrace2 %s 2>&1", dir);
	assert_int_equal(run(cmd, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "kstep:stop:tcp_v4_rcv: { seq = 1, guest_ns = 0"));
	assert_non_null(strstr(out, "len = 1448, delta = -5, ptr = 0xABC, dev = \"eth0\", event_ = 7, regs"));
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* A fresh trace directory of @n_ev events written with @d; returns its
 * path in @dir (a mkdtemp template). */
static void write_trace_env(char *dir, const struct target_desc *d, const struct trace_env *e, int n_ev);

static void write_trace(char *dir, const struct target_desc *d, int n_ev)
{
	write_trace_env(dir, d, &env, n_ev);
}

/* @n_ev events into a new trace in @dir; @batch: held until that many
 * bytes (then written by @flush, or else by closing). */
static void write_trace_batched(char *dir, const struct target_desc *d, const struct trace_env *e, int n_ev,
				size_t batch, bool flush)
{
	static uint8_t raw[64];
	uint64_t stack[1] = { 1 };
	struct trace_event ev = { .kind = TRACE_STOP, .ts_ns = 1, .pc = 0x1000, .probe = "p", .symbol = "f",
				  .regs = raw, .stack = stack, .stack_len = 1, .bt_end = "" };
	struct trace *t;
	struct stat st;
	char err[256];
	int dfd;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(trace_prepare_dir(dir, false, &dfd, err, sizeof(err)), 0);
	assert_int_equal(trace_open(&t, dfd, dir, d, e, err, sizeof(err)), 0);
	assert_int_equal(trace_batch(t, batch), 0);
	for (int i = 0; i < n_ev; i++) {
		ev.seq = (uint64_t)i + 1;
		assert_int_equal(trace_write(t, &ev), 0);
	}
	if (batch) { /* nothing past the stream's header yet */
		assert_int_equal(fstatat(dfd, "stream_0", &st, 0), 0);
		assert_int_equal(st.st_size, 24);
	}
	if (flush)
		assert_int_equal(trace_batch(t, 0), 0);
	assert_int_equal(trace_close(t), 0);
	close(dfd);
}

static void write_trace_env(char *dir, const struct target_desc *d, const struct trace_env *e, int n_ev)
{
	write_trace_batched(dir, d, e, n_ev, 0, false);
}

static void rm_rf(const char *dir)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* Register names that mangle alike, or are TSDL keywords, still give a
 * trace babeltrace2 reads, each register under a name of its own. */
static void test_register_names_unique_and_not_keywords(void **state)
{
	static struct target_reg odd[] = {
		{ "r.1", 64, 0, 0, true }, { "r_1", 64, 1, 8, true }, { "event", 32, 2, 16, true },
		{ "1st", 32, 3, 20, true }, { "struct", 16, 4, 24, true },
	};
	struct target_desc d = { "i386:x86-64", odd, 5, 26 };
	char dir[SCRATCH_MAX], cmd[256];
	static char out[65536];
	struct buf b = { 0 };
	uint8_t uuid[16] = { 0 };
	const char *m;

	(void)state;
	scratch(dir, sizeof(dir), "kstep-test-names");
	assert_int_equal(trace_metadata(&b, &d, &env, uuid, 0, 0), 0);
	m = buf_cstr(&b);
	assert_non_null(strstr(m, "xint64_t r_1;"));
	assert_non_null(strstr(m, "xint64_t r_1_2;"));
	assert_non_null(strstr(m, "xint32_t event_;"));
	assert_non_null(strstr(m, "xint32_t _1st;"));
	assert_non_null(strstr(m, "xint16_t struct_;"));
	buf_free(&b);
	write_trace(dir, &d, 2);
	snprintf(cmd, sizeof(cmd), "babeltrace2 %s 2>&1", dir);
	assert_int_equal(run(cmd, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "r_1_2 = "));
	assert_non_null(strstr(out, "seq = 2"));
	rm_rf(dir);
}

/* The disk fills up in the middle of an event (RLIMIT_FSIZE makes write()
 * stop at the limit as ENOSPC does): the event is cut off again and the
 * trace reads up to the last complete one. */
static void test_full_disk_keeps_complete_events(void **state)
{
	char dir[SCRATCH_MAX], cmd[256], err[256], path[128];
	static char out[1 << 20];
	static uint8_t raw[38];
	uint64_t stack[32] = { 0 };
	struct trace_event ev = { .kind = TRACE_STOP, .ts_ns = 1, .pc = 0x1000, .probe = "p", .symbol = "f",
				  .regs = raw, .stack = stack, .stack_len = 32, .bt_end = "" };
	struct trace *t;
	struct stat st;
	int dfd, status, written = 0, fds[2];
	pid_t pid;

	(void)state;
	scratch(dir, sizeof(dir), "kstep-test-full");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	if (pid == 0) {
		struct rlimit lim = { 20000, 20000 };
		int ret = 0;

		signal(SIGXFSZ, SIG_IGN);
		setrlimit(RLIMIT_FSIZE, &lim);
		if (trace_prepare_dir(dir, false, &dfd, err, sizeof(err)) ||
		    trace_open(&t, dfd, dir, &desc, &env, err, sizeof(err)))
			_exit(2);
		while (!ret) {
			ev.seq = (uint64_t)written + 1;
			if (!(ret = trace_write(t, &ev)))
				written++;
		}
		if (write(fds[1], &written, sizeof(written)) != sizeof(written))
			_exit(3);
		_exit(ret == -EFBIG || ret == -ENOSPC ? 0 : 4);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &written, sizeof(written)), sizeof(written));
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(written > 10);
	snprintf(path, sizeof(path), "%s/stream_0", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size < 20000); /* the partial event was cut off */
	snprintf(cmd, sizeof(cmd), "babeltrace2 %s 2>&1 | grep -c 'kstep:stop'", dir);
	run(cmd, out, sizeof(out));
	assert_int_equal(atoi(out), written);
	rm_rf(dir);
}

static bool same_file(const char *a_dir, const char *b_dir, const char *name)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "cmp -s '%s/%s' '%s/%s'", a_dir, name, b_dir, name);
	return system(cmd) == 0;
}

/* A replay's trace is a function of the recording and the options: the
 * same twice (uuid, clock, every byte); another recording, another uuid;
 * live traces never share one. */
static void test_replay_traces_repeat_byte_for_byte(void **state)
{
	struct trace_env replay = env, other = env;
	char a[SCRATCH_MAX], b[SCRATCH_MAX], c[SCRATCH_MAX], l1[SCRATCH_MAX], l2[SCRATCH_MAX];

	(void)state;
	scratch(a, sizeof(a), "kstep-test-rpa");
	scratch(b, sizeof(b), "kstep-test-rpb");
	scratch(c, sizeof(c), "kstep-test-rpc");
	scratch(l1, sizeof(l1), "kstep-test-rpl");
	scratch(l2, sizeof(l2), "kstep-test-rpm");
	replay.replay_id = "0123456789abcdef0123456789abcdef";
	other.replay_id = "fedcba9876543210fedcba9876543210";
	write_trace_env(a, &desc, &replay, 3);
	write_trace_env(b, &desc, &replay, 3);
	write_trace_env(c, &desc, &other, 3);
	write_trace_env(l1, &desc, &env, 3);
	write_trace_env(l2, &desc, &env, 3);
	assert_true(same_file(a, b, "metadata") && same_file(a, b, "stream_0"));
	assert_false(same_file(a, c, "metadata") || same_file(a, c, "stream_0"));
	assert_false(same_file(l1, l2, "stream_0")); /* random uuids */
	rm_rf(a), rm_rf(b), rm_rf(c), rm_rf(l1), rm_rf(l2);
}

/* Events held in a batch reach the file, as they would one by one, when
 * the batch ends or the trace closes. */
static void test_batched_events_are_the_events(void **state)
{
	struct trace_env replay = env;
	char a[SCRATCH_MAX], b[SCRATCH_MAX], c[SCRATCH_MAX];

	(void)state;
	scratch(a, sizeof(a), "kstep-test-bta");
	scratch(b, sizeof(b), "kstep-test-btb");
	scratch(c, sizeof(c), "kstep-test-btc");
	replay.replay_id = "0123456789abcdef0123456789abcdef"; /* the same uuid in each */
	write_trace_env(a, &desc, &replay, 5);
	write_trace_batched(b, &desc, &replay, 5, 1 << 20, true);
	write_trace_batched(c, &desc, &replay, 5, 1 << 20, false);
	assert_true(same_file(a, b, "stream_0"));
	assert_true(same_file(a, c, "stream_0"));
	rm_rf(a), rm_rf(b), rm_rf(c);
}

/* A batch's memory is there when the batch begins: a page faulted in
 * for the first time costs 15 us on some hosts, and a short step run
 * used to fault its first batch in a page at a time. */
static void test_a_batch_faults_no_page_as_it_fills(void **state)
{
	static uint8_t raw[64];
	uint64_t stack[1] = { 1 };
	struct trace_event ev = { .kind = TRACE_STOP, .ts_ns = 1, .pc = 0x1000, .probe = "p", .symbol = "f",
				  .regs = raw, .stack = stack, .stack_len = 1, .bt_end = "" };
	char dir[SCRATCH_MAX], err[256];
	struct rusage before, after;
	struct trace *t;
	struct stat st;
	int dfd;

	(void)state;
	scratch(dir, sizeof(dir), "kstep-test-bfa");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(trace_prepare_dir(dir, false, &dfd, err, sizeof(err)), 0);
	assert_int_equal(trace_open(&t, dfd, dir, &desc, &env, err, sizeof(err)), 0);
	assert_int_equal(trace_batch(t, 1 << 20), 0);
	getrusage(RUSAGE_SELF, &before);
	for (int i = 0; i < 3000; i++) {
		ev.seq = (uint64_t)i + 1;
		assert_int_equal(trace_write(t, &ev), 0);
	}
	getrusage(RUSAGE_SELF, &after);
	assert_int_equal(fstatat(dfd, "stream_0", &st, 0), 0);
	assert_int_equal(st.st_size, 24); /* all of them held */
	assert_true(after.ru_minflt - before.ru_minflt < 8);
	assert_int_equal(trace_close(t), 0);
	close(dfd);
	rm_rf(dir);
}

/* An event of @kind on @vcpu with registers @raw and @n frames @bt. */
static void write_event(struct trace *t, enum trace_kind kind, uint32_t vcpu, const uint8_t *raw,
			const struct trace_frame *bt, uint32_t n)
{
	static const uint8_t nop = 0x90;
	struct trace_event ev = { .kind = kind, .vcpu = vcpu, .pc = bt[0].addr, .probe = "step", .symbol = "f",
				  .regs = raw, .bt = bt, .bt_len = n, .bt_end = "stack-end", .insn = "nop",
				  .insn_bytes = &nop, .insn_len = 1 };

	assert_int_equal(trace_write(t, &ev), 0);
}

/* Close @t and print it with babeltrace2 into @out. */
static void read_back(struct trace *t, const char *dir, char *out, size_t len)
{
	char cmd[256];

	assert_int_equal(trace_close(t), 0);
	snprintf(cmd, sizeof(cmd), "babeltrace2 %s 2>&1", dir);
	assert_int_equal(run(cmd, out, len), 0);
}

/* A new trace in a new directory made from the template @dir. */
static struct trace *new_trace(char *dir, const struct target_desc *d)
{
	struct trace *t;
	char err[256];
	int dfd;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(trace_prepare_dir(dir, false, &dfd, err, sizeof(err)), 0);
	assert_int_equal(trace_open(&t, dfd, dir, d, &env, err, sizeof(err)), 0);
	close(dfd);
	return t;
}

/* @bytes (events from trace_encode) appended to @dir's stream: the first
 * @good events read, then one that is not an event, for @why. The
 * trace is removed. */
static void assert_refused_after(const char *dir, struct buf *bytes, size_t good, const char *why)
{
	struct ctf_reader *rd;
	struct ctf_event got;
	char path[128], err[256];
	int fd;

	snprintf(path, sizeof(path), "%s/stream_0", dir);
	assert_true((fd = open(path, O_WRONLY | O_APPEND)) >= 0);
	assert_int_equal(write(fd, bytes->data, bytes->len), (ssize_t)bytes->len);
	close(fd);
	buf_free(bytes);
	assert_int_equal(ctf_open(&rd, dir, err, sizeof(err)), 0);
	for (size_t i = 0; i < good; i++)
		assert_int_equal(ctf_next(rd, &got), 1);
	assert_int_equal(ctf_next(rd, &got), -EINVAL);
	assert_non_null(strstr(ctf_error(rd), why));
	ctf_close(rd);
	rm_rf(dir);
}

/* A step writes only the frames the event before it did not have on top
 * of its outermost ones (bt_kept), never the top one's and never after
 * another kind of event or another vCPU's; ctfread gives every backtrace
 * back whole, and refuses a step that keeps more than there was. */
static void test_steps_keep_the_outer_frames(void **state)
{
	static const struct {
		enum trace_kind kind;
		uint32_t vcpu, n, kept;
		uint64_t addr[4];
	} evs[] = {
		{ TRACE_STOP, 0, 3, 0, { 0xa0, 0xb0, 0xc0 } },
		{ TRACE_STEP, 0, 3, 0, { 0xa1, 0xb0, 0xc0 } },       /* after a stop: whole */
		{ TRACE_STEP, 0, 3, 2, { 0xa2, 0xb0, 0xc0 } },       /* went on in its function */
		{ TRACE_STEP, 0, 4, 2, { 0xd0, 0xa7, 0xb0, 0xc0 } }, /* called */
		{ TRACE_STEP, 0, 3, 2, { 0xa7, 0xb0, 0xc0 } },       /* returned: 0xa7 named anew */
		{ TRACE_STEP, 1, 3, 0, { 0xa7, 0xb0, 0xc0 } },       /* another vCPU */
		{ TRACE_STEP, 1, 1, 0, { 0xe0 } },
	};
	char dir[SCRATCH_MAX], err[256];
	static char out[65536];
	uint8_t raw[38] = { 0 }, ib[1] = { 0x90 };
	struct trace_frame bt[4];
	char names[4][16];
	struct ctf_reader *rd;
	struct ctf_event got;
	struct trace *t;
	struct buf b = { 0 };

	(void)state;
	scratch(dir, sizeof(dir), "kstep-test-kept");
	t = new_trace(dir, &desc);
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		for (uint32_t k = 0; k < evs[i].n; k++) {
			snprintf(names[k], sizeof(names[k]), "f%zu_%u", i, k);
			bt[k] = (struct trace_frame){ evs[i].addr[k], names[k], "a.c:1" };
		}
		write_event(t, evs[i].kind, evs[i].vcpu, raw, bt, evs[i].n);
	}
	read_back(t, dir, out, sizeof(out));
	assert_non_null(strstr(out, "bt_kept = 2, bt_len = 1, backtrace = [ [0] = { addr = 0xA2"));

	assert_int_equal(ctf_open(&rd, dir, err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		assert_int_equal(ctf_next(rd, &got), 1);
		assert_int_equal(got.nbt, evs[i].n);
		for (uint32_t k = 0; k < evs[i].n; k++) {
			/* A kept frame is named as the event that wrote it named it. */
			size_t from = i;
			uint32_t at = k;
			char want[16];

			while (at >= evs[from].n - evs[from].kept) {
				at = at - evs[from].n + evs[from - 1].n;
				from--;
			}
			snprintf(want, sizeof(want), "f%zu_%u", from, at);
			assert_int_equal(got.bt[k].addr, evs[i].addr[k]);
			assert_string_equal(got.bt[k].func, want);
		}
	}
	assert_int_equal(ctf_next(rd, &got), 0);
	ctf_close(rd);

	/* A step that keeps 3 frames after a stop that had 1: not a trace. */
	bt[0] = (struct trace_frame){ 0xa0, "f", "a.c:1" };
	struct trace_event bad = { .kind = TRACE_STEP, .pc = 0xa0, .probe = "step", .symbol = "f", .regs = raw,
				   .bt = bt, .bt_len = 3, .bt_kept = 3, .bt_end = "x", .insn = "nop",
				   .insn_bytes = ib, .insn_len = 1 };
	assert_int_equal(trace_encode(&b, &desc, NULL, &bad), 0);
	assert_refused_after(dir, &b, sizeof(evs) / sizeof(evs[0]), "keeps 3 frames of the one before, which has 1");
}

/* A step writes its stack words only when they are not the step before's
 * (same vCPU): stack_kept says they are. */
static void test_steps_keep_an_unchanged_stack(void **state)
{
	static const uint8_t nop = 0x90;
	static const struct {
		enum trace_kind kind;
		uint32_t vcpu, len;
		uint64_t top;
		bool written;
	} evs[] = {
		{ TRACE_STOP, 0, 2, 0x10, true },
		{ TRACE_STEP, 0, 2, 0x10, true },  /* after a stop */
		{ TRACE_STEP, 0, 2, 0x10, false }, /* unchanged */
		{ TRACE_STEP, 0, 2, 0x20, true },  /* a word changed */
		{ TRACE_STEP, 0, 1, 0x20, true },  /* fewer words */
		{ TRACE_STEP, 1, 1, 0x20, true },  /* another vCPU */
		{ TRACE_STEP, 1, 1, 0x20, false },
	};
	char dir[SCRATCH_MAX], err[256], want[96];
	static char out[65536];
	uint8_t raw[8 * 17] = { 0 };
	struct trace_frame bt[1] = { { 0xffffffff81000000ull, "f", "a.c:1" } };
	struct ctf_reader *rd;
	struct ctf_event got;
	struct trace *t;
	const char *at;

	(void)state;
	scratch(dir, sizeof(dir), "kstep-test-stack");
	t = new_trace(dir, &desc);
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		uint64_t stack[2] = { evs[i].top, 0x99 };
		struct trace_event ev = { .kind = evs[i].kind, .vcpu = evs[i].vcpu, .pc = bt[0].addr, .probe = "step",
					  .symbol = "f", .regs = raw, .stack = stack, .stack_len = evs[i].len, .bt = bt,
					  .bt_len = 1, .bt_end = "stack-end", .insn = "nop", .insn_bytes = &nop,
					  .insn_len = 1 };

		assert_int_equal(trace_write(t, &ev), 0);
	}
	read_back(t, dir, out, sizeof(out));
	at = strchr(out, '\n'); /* past the stop, which has no stack_kept */
	assert_non_null(at);
	for (size_t i = 1; i < sizeof(evs) / sizeof(evs[0]); i++) {
		if (evs[i].written)
			snprintf(want, sizeof(want), "stack_kept = 0, stack_len = %u, stack = [ [0] = 0x%" PRIX64,
				 evs[i].len, evs[i].top);
		else
			snprintf(want, sizeof(want), "stack_kept = 1, stack_len = 0, stack = [ ]");
		assert_non_null(at = strstr(at, want));
		at += strlen(want);
	}
	assert_int_equal(ctf_open(&rd, dir, err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		assert_int_equal(ctf_next(rd, &got), 1);
		assert_null(ctf_field(&got, "stack_kept"));
	}
	assert_int_equal(ctf_next(rd, &got), 0);
	ctf_close(rd);
	rm_rf(dir);
}

/* A step writes its registers from fs_base on only when they changed
 * since the step before of its vCPU (regs_more_len 1, else 0); ctfread
 * gives every block back whole, and refuses a step that keeps them with
 * no step before it. */
static void test_steps_keep_unchanged_registers(void **state)
{
	static struct target_reg split_regs[] = {
		{ "rax", 64, 0, 0, true }, { "rip", 64, 1, 8, true },
		{ "fs_base", 64, 2, 16, true }, { "xmm0", 128, 3, 24, true },
	};
	static const struct target_desc split_desc = { "i386:x86-64", split_regs, 4, 40 };
	static const struct {
		enum trace_kind kind;
		uint32_t vcpu;
		uint64_t rax, fs_base;
		bool written;            /* fs_base and xmm0 in the stream */
	} evs[] = {
		{ TRACE_STOP, 0, 1, 0x100, true },
		{ TRACE_STEP, 0, 2, 0x100, true },  /* after a stop */
		{ TRACE_STEP, 0, 3, 0x100, false }, /* unchanged */
		{ TRACE_STEP, 0, 4, 0x200, true },  /* changed */
		{ TRACE_STEP, 1, 5, 0x200, true },  /* another vCPU */
		{ TRACE_STEP, 1, 6, 0x200, false },
	};
	char dir[SCRATCH_MAX], err[256];
	static char out[65536];
	uint8_t raw[40] = { 0 }, ib[1] = { 0x90 };
	struct trace_frame bt[1] = { { 0xffffffff81000000ull, "f", "a.c:1" } };
	struct ctf_reader *rd;
	struct ctf_event got;
	struct trace *t;
	struct buf b = { 0 };
	uint64_t v;

	(void)state;
	scratch(dir, sizeof(dir), "kstep-test-regs");
	t = new_trace(dir, &split_desc);
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		memcpy(raw, &evs[i].rax, 8);
		memcpy(raw + 16, &evs[i].fs_base, 8);
		write_event(t, evs[i].kind, evs[i].vcpu, raw, bt, 1);
	}
	read_back(t, dir, out, sizeof(out));
	assert_non_null(strstr(out, "regs = { rax = 0x3, rip = 0x0 }, regs_more_len = 0, regs_more = [ ]"));
	assert_non_null(strstr(out, "regs = { rax = 0x4, rip = 0x0 }, regs_more_len = 1, regs_more = [ [0] = { "
				    "fs_base = 0x200"));
	for (size_t i = 1; i < sizeof(evs) / sizeof(evs[0]); i++) {
		char want[96];

		snprintf(want, sizeof(want), "rax = 0x%" PRIx64 ", rip = 0x0 }, regs_more_len = %d", evs[i].rax,
			 evs[i].written);
		assert_non_null(strstr(out, want));
	}

	assert_int_equal(ctf_open(&rd, dir, err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		assert_int_equal(ctf_next(rd, &got), 1);
		assert_int_equal(got.regs_len, 40);
		assert_int_equal(ctf_reg(rd, &got, "rax", &v), 0);
		assert_int_equal(v, evs[i].rax);
		assert_int_equal(ctf_reg(rd, &got, "fs_base", &v), 0);
		assert_int_equal(v, evs[i].fs_base);
	}
	assert_int_equal(ctf_next(rd, &got), 0);
	ctf_close(rd);

	/* A step that keeps the registers of a stop: not a trace. */
	struct trace_event stop = { .kind = TRACE_STOP, .pc = 1, .probe = "p", .symbol = "f", .regs = raw, .bt = bt,
				    .bt_len = 1, .bt_end = "x" };
	struct trace_event bad = { .kind = TRACE_STEP, .pc = 1, .probe = "step", .symbol = "f", .regs = raw,
				   .bt = bt, .bt_len = 1, .regs_kept = true, .bt_end = "x", .insn = "nop",
				   .insn_bytes = ib, .insn_len = 1 };
	assert_int_equal(trace_encode(&b, &split_desc, NULL, &stop), 0);
	assert_int_equal(trace_encode(&b, &split_desc, NULL, &bad), 0);
	assert_refused_after(dir, &b, sizeof(evs) / sizeof(evs[0]) + 1, "no event before it had one");
}

/* -o DIR: private, never through a symlink, never someone's files mixed
 * with ours, an old kstep trace replaced only with --force. */
static void test_trace_directory_rules(void **state)
{
	char base[SCRATCH_MAX], dir[SCRATCH_MAX + 16], link[SCRATCH_MAX + 32], err[512];
	struct stat st;
	int dfd, fd;

	(void)state;
	scratch(base, sizeof(base), "kstep-test-dir");
	assert_non_null(mkdtemp(base));
	snprintf(dir, sizeof(dir), "%s/new", base);
	assert_int_equal(trace_prepare_dir(dir, false, &dfd, err, sizeof(err)), 0);
	assert_int_equal(fstat(dfd, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	close(dfd);

	/* A symlink to a directory someone wants written: refused. */
	snprintf(link, sizeof(link), "%s/link", base);
	assert_int_equal(symlink(dir, link), 0);
	assert_true(trace_prepare_dir(link, true, &dfd, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "refusing to write through it"));

	/* An old kstep trace: replaced only with --force. Not empty and
	 * not a trace: refused even with --force. */
	write_trace(scratch(dir, sizeof(dir), "kstep-test-old"), &desc, 1);
	assert_int_equal(trace_prepare_dir(dir, false, &dfd, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "pass --force"));
	assert_int_equal(trace_prepare_dir(dir, true, &dfd, err, sizeof(err)), 0);
	close(dfd);
	snprintf(link, sizeof(link), "%s/notes.txt", dir);
	fd = open(link, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(trace_prepare_dir(dir, true, &dfd, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "not a kstep trace"));
	rm_rf(dir);
	rm_rf(base);
}

/* Issue 22's low findings: a 777 directory of ours is made private first;
 * --force over a trace with a stranger in guest/ removes nothing (the check
 * once shared the directory offset and saw it empty); what a run that failed
 * early left (guest/serial.log alone) does not block --force. */
static void test_trace_directory_findings(void **state)
{
	char dir[SCRATCH_MAX], path[128], err[512];
	struct stat st;
	int dfd, fd;

	(void)state;
	scratch(dir, sizeof(dir), "kstep-test-dir2");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(trace_prepare_dir(dir, false, &dfd, err, sizeof(err)), 0);
	assert_int_equal(fstat(dfd, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	close(dfd);
	rm_rf(dir);

	write_trace(scratch(dir, sizeof(dir), "kstep-test-dir2"), &desc, 1);
	snprintf(path, sizeof(path), "%s/guest/notes.txt", dir);
	assert_true((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
	close(fd);
	assert_int_equal(trace_prepare_dir(dir, true, &dfd, err, sizeof(err)), -EEXIST);
	snprintf(path, sizeof(path), "%s/metadata", dir);
	assert_int_equal(access(path, F_OK), 0);
	rm_rf(dir);

	assert_non_null(mkdtemp(scratch(dir, sizeof(dir), "kstep-test-dir2")));
	snprintf(path, sizeof(path), "%s/guest", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/guest/serial.log", dir);
	assert_true((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
	close(fd);
	assert_int_equal(trace_prepare_dir(dir, false, &dfd, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "pass --force"));
	assert_int_equal(trace_prepare_dir(dir, true, &dfd, err, sizeof(err)), 0);
	close(dfd);
	rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metadata),
		cmocka_unit_test(test_encoding_layout),
		cmocka_unit_test(test_babeltrace_reads_it),
		cmocka_unit_test(test_probe_class_fields),
		cmocka_unit_test(test_register_names_unique_and_not_keywords),
		cmocka_unit_test(test_full_disk_keeps_complete_events),
		cmocka_unit_test(test_trace_directory_rules),
		cmocka_unit_test(test_trace_directory_findings),
		cmocka_unit_test(test_replay_traces_repeat_byte_for_byte),
		cmocka_unit_test(test_batched_events_are_the_events),
		cmocka_unit_test(test_a_batch_faults_no_page_as_it_fills),
		cmocka_unit_test(test_steps_keep_the_outer_frames),
		cmocka_unit_test(test_steps_keep_unchanged_registers),
		cmocka_unit_test(test_steps_keep_an_unchanged_stack),
	};

	return cmocka_run_group_tests_name("trace", tests, NULL, NULL);
}
