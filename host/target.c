// SPDX-License-Identifier: MIT
/*
 * target: a debug target behind an RSP connection (see target.h): the target
 * description's registers, memory, breakpoints, resume and stop replies.
 */
#include "target.h"
#include "kerr.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Plain requests and replies that involve no guest execution. */
#define TARGET_TIMEOUT_MS 10000

struct target {
	struct rsp_conn *rsp;
	struct target_desc desc;
	size_t packet_size;     /* stub's PacketSize */
	bool multiprocess;
	bool qemu;              /* the stub has qemu.* queries */
	bool kgdb;              /* no target description: the kernel's kgdb */
	bool continued;         /* the last resume was a continue, not a step */
	uint64_t *sw_bps;       /* kgdb: the software breakpoints in place */
	size_t nsw_bps;
	bool vcont;
	/* Can a single step leave a software breakpoint in place? QEMU's TCG
	 * steps through its own breakpoints ("singlestep overrides
	 * breakpoints"); KVM's int3 does not. Found out on the first try. */
	enum { STEP_OVER_UNKNOWN, STEP_OVER_IN_PLACE, STEP_OVER_REMOVE } step_over;
	int pc_regnum;          /* for the one-register read that finds that out */
	int cur_thread;         /* what 'g'/'m' act on, 0 unknown */
	int stop_thread;        /* thread of the last stop */
	uint8_t *regs;          /* last 'g' */
	char *req;              /* request scratch */
	size_t req_cap;
	char err[256];
};

/* Errors from the connection carry their own text. */
static int rerr(struct target *t, int err, const char *what)
{
	return kerr_set(t->err, sizeof(t->err), err, "%s: %s", what, rsp_errmsg(t->rsp));
}

const char *target_errmsg(const struct target *t)
{
	return t->err;
}

const struct target_desc *target_desc(const struct target *t)
{
	return &t->desc;
}

int target_current_thread(const struct target *t)
{
	return t->stop_thread;
}

/* ---- requests ------------------------------------------------------------ */

static char *reqf(struct target *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *reqf(struct target *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->req, t->req_cap, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < t->req_cap)
			return t->req;
		char *tmp = realloc(t->req, (size_t)n + 64);

		if (!tmp)
			return NULL;
		t->req = tmp;
		t->req_cap = (size_t)n + 64;
	}
}

static char *thread_str(const struct target *t, int thread, char *out, size_t len)
{
	if (t->multiprocess)
		snprintf(out, len, "p1.%x", (unsigned int)thread);
	else
		snprintf(out, len, "%x", (unsigned int)thread);
	return out;
}

/*
 * QEMU stops a running guest when a client connects and reports it with a
 * stop reply nobody asked for: it arrives before the answer to our first
 * request. Only '?' is answered with a stop reply among the requests that
 * come through here, so for the others a stop packet is that notice.
 */
static bool unsolicited_stop(struct target *t, const char *req, const char *r, size_t len)
{
	struct target_stop st;

	if (req[0] == '?' || len < 3 || (r[0] != 'T' && r[0] != 'S') || target_parse_stop(r, len, &st))
		return false;
	if (st.thread > 0)
		t->stop_thread = t->cur_thread = st.thread;
	return true;
}

static int request(struct target *t, const char *req, const char **reply, size_t *len)
{
	int err;

	if (!req)
		return kerr_set(t->err, sizeof(t->err), -ENOMEM, "out of memory");
	err = rsp_request(t->rsp, req, reply, len, TARGET_TIMEOUT_MS);
	while (!err && unsolicited_stop(t, req, *reply, *len))
		err = rsp_recv(t->rsp, reply, len, TARGET_TIMEOUT_MS);
	return err ? rerr(t, err, req) : 0;
}

/* "Exx" is an error only where the request cannot be answered with data of odd
 * length 3 (hex data is always even); a caller decides which requests. */
static bool is_error_reply(const char *r, size_t len)
{
	return len == 3 && r[0] == 'E' && rsp_hexval(r[1]) >= 0 && rsp_hexval(r[2]) >= 0;
}

/* A reply that must be "OK"; empty means the stub does not know the request. */
static int check_ok(struct target *t, const char *what, const char *r, size_t len)
{
	if (len == 2 && !memcmp(r, "OK", 2))
		return 0;
	if (len == 0)
		return kerr_set(t->err, sizeof(t->err), -EOPNOTSUPP, "%s: not supported by the stub", what);
	return kerr_set(t->err, sizeof(t->err), -EIO, "%s: stub answered '%.*s'", what, (int)(len > 40 ? 40 : len), r);
}

static int request_ok(struct target *t, const char *req)
{
	const char *r;
	size_t len;
	int err = request(t, req, &r, &len);

	return err ? err : check_ok(t, req, r, len);
}

static char *fetch_xfer(void *ctx, const char *name, size_t *out_len)
{
	struct target *t = ctx;
	struct buf doc = { 0 };
	size_t chunk = t->packet_size > 64 ? t->packet_size - 32 : 1000;

	for (;;) {
		const char *r;
		size_t len;

		if (request(t, reqf(t, "qXfer:features:read:%s:%zx,%zx", name, doc.len, chunk), &r, &len))
			goto fail;
		if (len < 1 || (r[0] != 'm' && r[0] != 'l'))
			goto fail;
		if (buf_append(&doc, r + 1, len - 1))
			goto fail;
		if (r[0] == 'l' || len == 1)
			break;
	}
	*out_len = doc.len;
	if (!buf_cstr(&doc))
		goto fail;
	return (char *)doc.data;
fail:
	buf_free(&doc);
	return NULL;
}

static void parse_supported(struct target *t, const char *r, size_t len)
{
	char *copy = strndup(r, len), *save = NULL;

	if (!copy)
		return;
	for (char *f = strtok_r(copy, ";", &save); f; f = strtok_r(NULL, ";", &save)) {
		if (!strncmp(f, "PacketSize=", 11))
			t->packet_size = strtoul(f + 11, NULL, 16);
		else if (!strcmp(f, "multiprocess+"))
			t->multiprocess = true;
	}
	free(copy);
}

/* Feature negotiation and the halt reason: everything but the description. */
static int negotiate(struct target *t)
{
	const char *r;
	size_t len;
	int ret;

	ret = request(t, "qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386;vContSupported+", &r, &len);
	if (ret == -ETIMEDOUT && !strstr(t->err, "no packet"))
		/* QEMU's stub serves one debugger; a second connection is
		 * accepted by the kernel and then never read. */
		return kerr_set(t->err, sizeof(t->err), -EBUSY, "the gdbstub took the connection but never answered: it is probably "
			    "in use by another debugger (QEMU serves one at a time); detach that one first");
	if (ret)
		return ret;
	parse_supported(t, r, len);
	rsp_set_max_packet(t->rsp, RSP_MAX_PACKET_DEFAULT);
	/* No-ack mode where offered; QEMU 7.2 answers empty and keeps acks. */
	if (!request(t, "QStartNoAckMode", &r, &len) && len == 2 && !memcmp(r, "OK", 2))
		rsp_set_noack(t->rsp, true);
	ret = request(t, "vCont?", &r, &len);
	if (ret)
		return ret;
	t->vcont = len >= 5 && !memcmp(r, "vCont", 5) && strstr(r, ";s") && strstr(r, ";c");
	if (!request(t, "qqemu.sstepbits", &r, &len) && len > 0)
		t->qemu = true;
	return 0;
}

static void halt_reason(struct target *t)
{
	struct target_stop st;
	const char *r;
	size_t len;

	if (!request(t, "?", &r, &len) && !target_parse_stop(r, len, &st) && st.thread > 0)
		t->stop_thread = t->cur_thread = st.thread;
}

/*
 * kgdb sends no target description: its 'g' is gdb's x86-64 layout cut
 * after es (arch/x86/include/asm/kgdb.h: 17 registers of 8 bytes, 5 of 4;
 * no fs/gs bases, no FPU). Recognised by the size of that reply.
 */
#define KGDB_X86_64_G_BYTES (17 * 8 + 5 * 4)
static const char kgdb_x86_64_xml[] =
	"<target><architecture>i386:x86-64</architecture><feature name=\"org.gnu.gdb.i386.core\">"
	"<reg name=\"rax\" bitsize=\"64\"/><reg name=\"rbx\" bitsize=\"64\"/><reg name=\"rcx\" bitsize=\"64\"/>"
	"<reg name=\"rdx\" bitsize=\"64\"/><reg name=\"rsi\" bitsize=\"64\"/><reg name=\"rdi\" bitsize=\"64\"/>"
	"<reg name=\"rbp\" bitsize=\"64\"/><reg name=\"rsp\" bitsize=\"64\"/><reg name=\"r8\" bitsize=\"64\"/>"
	"<reg name=\"r9\" bitsize=\"64\"/><reg name=\"r10\" bitsize=\"64\"/><reg name=\"r11\" bitsize=\"64\"/>"
	"<reg name=\"r12\" bitsize=\"64\"/><reg name=\"r13\" bitsize=\"64\"/><reg name=\"r14\" bitsize=\"64\"/>"
	"<reg name=\"r15\" bitsize=\"64\"/><reg name=\"rip\" bitsize=\"64\"/><reg name=\"eflags\" bitsize=\"32\"/>"
	"<reg name=\"cs\" bitsize=\"32\"/><reg name=\"ss\" bitsize=\"32\"/><reg name=\"ds\" bitsize=\"32\"/>"
	"<reg name=\"es\" bitsize=\"32\"/></feature></target>";

/* A stub without a target description: kgdb's layout if its 'g' fits. */
static char *builtin_desc(struct target *t, size_t *len)
{
	const char *r;
	size_t glen;

	if (request(t, "g", &r, &glen))
		return NULL;
	if (glen != 2 * KGDB_X86_64_G_BYTES) {
		kerr_set(t->err, sizeof(t->err), -EOPNOTSUPP, "the stub gave no target description (qXfer:features:read), and its %zu-byte "
				     "registers are not kgdb's x86-64 layout", glen / 2);
		return NULL;
	}
	t->kgdb = true;
	t->step_over = STEP_OVER_REMOVE; /* kgdb puts its int3 back for a step too */
	*len = sizeof(kgdb_x86_64_xml) - 1;
	return strdup(kgdb_x86_64_xml);
}

int target_open(struct target **out, struct rsp_conn *rsp, char *err, size_t errlen)
{
	struct target *t = calloc(1, sizeof(*t));
	size_t len;
	char *xml = NULL;
	int ret;

	if (!t)
		return -ENOMEM;
	t->rsp = rsp;
	t->packet_size = 400;
	if ((ret = negotiate(t)))
		goto fail;
	xml = fetch_xfer(t, "target.xml", &len);
	if (!xml)
		xml = builtin_desc(t, &len);
	if (!xml) {
		ret = -EOPNOTSUPP;
		goto fail;
	}
	ret = target_desc_parse(&t->desc, xml, len, fetch_xfer, t, t->err, sizeof(t->err));
	if (ret)
		goto fail;
	t->pc_regnum = target_desc_find(&t->desc, "rip");
	if (t->pc_regnum < 0)
		t->pc_regnum = target_desc_find(&t->desc, "pc");
	t->regs = calloc(1, t->desc.g_size);
	if (!t->regs) {
		ret = -ENOMEM;
		goto fail;
	}
	halt_reason(t);
	free(xml);
	*out = t;
	return 0;
fail:
	snprintf(err, errlen, "%s", t->err);
	free(xml);
	target_close(t);
	return ret;
}

void target_close(struct target *t)
{
	if (!t)
		return;
	target_desc_free(&t->desc);
	free(t->sw_bps);
	free(t->regs);
	free(t->req);
	free(t);
}

static int parse_g(struct target *t, const char *r, size_t len)
{
	size_t n = len / 2;

	if (is_error_reply(r, len))
		return kerr_set(t->err, sizeof(t->err), -EIO, "reading registers: stub answered %.3s", r);
	if (len % 2)
		return kerr_set(t->err, sizeof(t->err), -EPROTO, "reading registers: odd-length reply");
	if (n > t->desc.g_size)
		n = t->desc.g_size;
	/* 'x' marks registers the stub cannot read: leave them zero. */
	for (size_t i = 0; i < n; i++) {
		int hi = rsp_hexval(r[2 * i]), lo = rsp_hexval(r[2 * i + 1]);

		t->regs[i] = hi < 0 || lo < 0 ? 0 : (uint8_t)(hi << 4 | lo);
	}
	for (size_t i = 0; i < t->desc.nregs; i++)
		t->desc.regs[i].in_g = t->desc.regs[i].offset + t->desc.regs[i].bitsize / 8 <= n;
	return 0;
}

int target_read_regs(struct target *t, const uint8_t **raw)
{
	const char *r;
	size_t len;
	int err = request(t, "g", &r, &len);

	if (err || (err = parse_g(t, r, len)))
		return err;
	*raw = t->regs;
	return 0;
}

uint64_t target_reg_u64(const struct target *t, const uint8_t *raw, int idx)
{
	const struct target_reg *reg;
	uint64_t v = 0;

	if (idx < 0 || (size_t)idx >= t->desc.nregs)
		return 0;
	reg = &t->desc.regs[idx];
	for (unsigned int i = 0; i < reg->bitsize / 8 && i < 8; i++)
		v |= (uint64_t)raw[reg->offset + i] << (8 * i);
	return v;
}

size_t target_max_read(const struct target *t)
{
	/* A reply of 2 hex digits per byte plus framing must fit PacketSize. */
	return t->packet_size > 32 ? (t->packet_size - 16) / 2 : 256;
}

/* Decode an 'm' reply; returns bytes or a negative errno. */
static int parse_m(struct target *t, const char *r, size_t len, uint8_t *out, size_t want, uint64_t addr)
{
	int n;

	if (is_error_reply(r, len) || len == 0)
		return kerr_set(t->err, sizeof(t->err), -EFAULT, "cannot read guest memory at 0x%" PRIx64, addr);
	n = rsp_hex_decode(r, len, out, want);
	if (n < 0)
		return kerr_set(t->err, sizeof(t->err), -EPROTO, "malformed memory reply at 0x%" PRIx64, addr);
	return n;
}

int target_read_mem(struct target *t, uint64_t addr, void *out, size_t len)
{
	uint8_t *dst = out;

	while (len) {
		size_t n = len < target_max_read(t) ? len : target_max_read(t);
		const char *r;
		size_t rl;
		int got, err = request(t, reqf(t, "m%" PRIx64 ",%zx", addr, n), &r, &rl);

		if (err)
			return err;
		got = parse_m(t, r, rl, dst, n, addr);
		if (got <= 0)
			return got < 0 ? got : kerr_set(t->err, sizeof(t->err), -EFAULT, "short read at 0x%" PRIx64, addr);
		dst += got;
		addr += (uint64_t)got;
		len -= (size_t)got;
	}
	return 0;
}

/* Many 'm' reads: in one write to QEMU, which answers each as it parses it;
 * one by one to other stubs. */
int target_read_spans(struct target *t, struct target_span *spans, size_t n)
{
	const char *r;
	size_t len;
	int err;

	for (size_t i = 0; i < n; i++) {
		spans[i].ok = false;
		if (!t->qemu) {
			spans[i].ok = !target_read_mem(t, spans[i].addr, spans[i].out, spans[i].len);
			continue;
		}
		if (!reqf(t, "m%" PRIx64 ",%zx", spans[i].addr, spans[i].len))
			return kerr_set(t->err, sizeof(t->err), -ENOMEM, "out of memory");
		if ((err = rsp_queue(t->rsp, t->req, strlen(t->req))))
			return rerr(t, err, "m");
	}
	for (size_t i = 0; t->qemu && i < n; i++) {
		if ((err = rsp_recv(t->rsp, &r, &len, TARGET_TIMEOUT_MS)))
			return rerr(t, err, "m");
		spans[i].ok = parse_m(t, r, len, spans[i].out, spans[i].len, spans[i].addr) == (int)spans[i].len;
	}
	return 0;
}

static void step_request(struct target *t, int thread, char *buf, size_t len);

/* g, m and (if @step) a single step in one write; replies read in order. */
static int regs_mem(struct target *t, const uint8_t **raw, uint64_t addr, uint8_t *mem, size_t mem_len,
		    size_t *mem_got, int step_thread)
{
	char step[64];
	const char *r;
	size_t len;
	int err, got;

	if (mem_len > target_max_read(t))
		mem_len = target_max_read(t);
	if (!t->qemu) {
		err = target_read_regs(t, raw);
		got = err ? err : target_read_mem(t, addr, mem, mem_len);
		*mem_got = got ? 0 : mem_len;
		return err ? err : step_thread >= 0 ? target_step(t, step_thread) : 0;
	}
	/*
	 * The stub is stopped, answers each packet as it parses it and (QEMU,
	 * system mode) does not wait for our ack before the next. A step last
	 * in the batch starts after both replies went out; their acks would then
	 * reach a running guest and stop it, so they are not sent.
	 */
	if ((err = rsp_queue(t->rsp, "g", 1)))
		return rerr(t, err, "g");
	if (mem_len) {
		if (!reqf(t, "m%" PRIx64 ",%zx", addr, mem_len))
			return kerr_set(t->err, sizeof(t->err), -ENOMEM, "out of memory");
		if ((err = rsp_queue(t->rsp, t->req, strlen(t->req))))
			return rerr(t, err, "m");
	}
	if (step_thread >= 0) {
		step_request(t, step_thread, step, sizeof(step));
		if ((err = rsp_queue(t->rsp, step, strlen(step))))
			return rerr(t, err, "step");
		rsp_skip_next_ack(t->rsp);
		if (mem_len)
			rsp_skip_next_ack(t->rsp);
	}
	if ((err = rsp_recv(t->rsp, &r, &len, TARGET_TIMEOUT_MS)))
		return rerr(t, err, "g");
	if ((err = parse_g(t, r, len))) {
		/* Still consume the 'm' reply, if one was asked for, to keep
		 * replies paired with requests (without one, the next reply is
		 * the step's stop, which is the caller's). */
		if (mem_len)
			rsp_recv(t->rsp, &r, &len, TARGET_TIMEOUT_MS);
		return err;
	}
	*raw = t->regs;
	*mem_got = 0;
	if (!mem_len)
		return 0;
	if ((err = rsp_recv(t->rsp, &r, &len, TARGET_TIMEOUT_MS)))
		return rerr(t, err, "m");
	got = parse_m(t, r, len, mem, mem_len, addr);
	*mem_got = got < 0 ? 0 : (size_t)got;
	return 0;
}

int target_read_regs_mem(struct target *t, const uint8_t **raw, uint64_t addr,
			 uint8_t *mem, size_t mem_len, size_t *mem_got)
{
	return regs_mem(t, raw, addr, mem, mem_len, mem_got, -1);
}

int target_read_regs_mem_step(struct target *t, const uint8_t **raw, uint64_t addr, uint8_t *mem,
			      size_t mem_len, size_t *mem_got, int thread)
{
	return regs_mem(t, raw, addr, mem, mem_len, mem_got, thread > 0 ? thread : 0);
}

/* kgdb: remember where its software breakpoints are (see kgdb_fix_pc). */
static int note_sw_bp(struct target *t, bool insert, uint64_t addr)
{
	for (size_t i = 0; i < t->nsw_bps; i++)
		if (t->sw_bps[i] == addr) {
			if (!insert)
				t->sw_bps[i] = t->sw_bps[--t->nsw_bps];
			return 0;
		}
	if (insert) {
		uint64_t *tmp = realloc(t->sw_bps, (t->nsw_bps + 1) * sizeof(*tmp));

		if (!tmp)
			return kerr_set(t->err, sizeof(t->err), -ENOMEM, "out of memory");
		t->sw_bps = tmp;
		t->sw_bps[t->nsw_bps++] = addr;
	}
	return 0;
}

int target_breakpoint(struct target *t, bool insert, enum target_bp type, uint64_t addr)
{
	/* kind 1 for x86 breakpoints (E.2, 'z type,addr,kind'). */
	int err = request_ok(t, reqf(t, "%c%d,%" PRIx64 ",1", insert ? 'Z' : 'z', (int)type, addr));

	return !err && t->kgdb && type == TARGET_BP_SW ? note_sw_bp(t, insert, addr) : err;
}

int target_watch_writes(struct target *t, bool insert, uint64_t addr, size_t len)
{
	return request_ok(t, reqf(t, "%c2,%" PRIx64 ",%zx", insert ? 'Z' : 'z', addr, len));
}

/*
 * kgdb reports a breakpoint's trap with rip after the int3 (gdb takes one
 * off itself: x86's decr_pc_after_break); QEMU reports the breakpoint's
 * address. After a continue that stopped one byte past one of our
 * breakpoints, rip is set back to it, in the guest too, so that resuming
 * runs the instruction that was there.
 */
static int kgdb_fix_pc(struct target *t)
{
	const uint8_t *raw;
	uint64_t pc;
	char val[2 * 8 + 1];
	uint8_t le[8];
	int err;

	if ((err = target_read_regs(t, &raw)))
		return err;
	pc = target_reg_u64(t, raw, t->pc_regnum) - 1;
	for (size_t i = 0; i < t->nsw_bps; i++) {
		if (t->sw_bps[i] != pc)
			continue;
		for (int b = 0; b < 8; b++)
			le[b] = (uint8_t)(pc >> (8 * b));
		rsp_hex_encode(le, 8, val);
		return request_ok(t, reqf(t, "P%x=%s", t->pc_regnum, val));
	}
	return 0;
}

int target_set_sstep(struct target *t, unsigned int flags)
{
	if (!t->qemu)
		return 0; /* other stubs have no such knob */
	return request_ok(t, reqf(t, "Qqemu.sstep=%x", flags));
}

int target_continue(struct target *t)
{
	t->continued = true;
	int err = rsp_queue(t->rsp, t->vcont ? "vCont;c" : "c", t->vcont ? 7 : 1);

	if (!err)
		err = rsp_flush(t->rsp);
	return err ? rerr(t, err, "continue") : 0;
}

/* Read a reply that must be "OK". */
static int expect_ok(struct target *t, const char *what)
{
	const char *r;
	size_t len;
	int err = rsp_recv(t->rsp, &r, &len, TARGET_TIMEOUT_MS);

	return err ? rerr(t, err, what) : check_ok(t, what, r, len);
}

static int queue(struct target *t, const char *req)
{
	int err;

	if (!req)
		return kerr_set(t->err, sizeof(t->err), -ENOMEM, "out of memory");
	err = rsp_queue(t->rsp, req, strlen(req));
	return err ? rerr(t, err, req) : 0;
}

/* rip through 'p' (one register, no full 'g'): -1 if the stub cannot. */
static int read_pc(struct target *t, uint64_t *pc)
{
	const struct target_reg *r;
	uint8_t b[8] = { 0 };
	const char *rep;
	size_t len;

	if (t->pc_regnum < 0)
		return -1;
	r = &t->desc.regs[t->pc_regnum];
	if (request(t, reqf(t, "p%x", r->regnum), &rep, &len) || len != r->bitsize / 4 ||
	    rsp_hex_decode(rep, len, b, sizeof(b)) < 0)
		return -1;
	*pc = 0;
	for (int i = 7; i >= 0; i--)
		*pc = *pc << 8 | b[i];
	return 0;
}

static int step_and_wait(struct target *t, const char *step)
{
	struct target_stop st;
	int err;

	do {
		err = target_wait(t, &st, TARGET_TIMEOUT_MS);
	} while (!err && st.kind == TARGET_STOP_OUTPUT);
	if (err)
		return err;
	if (st.kind != TARGET_STOP_SIGNAL)
		return kerr_set(t->err, sizeof(t->err), -ECONNRESET, "the guest ended while stepping over a breakpoint (%s)", step);
	return 0;
}

int target_continue_over(struct target *t, uint64_t addr, int thread)
{
	const char *step, *cont = t->vcont ? "vCont;c" : "c";
	char id[32];
	int err;

	if (thread <= 0)
		thread = t->stop_thread;
	t->continued = false; /* the step first: its stop is no breakpoint's */
	step = t->vcont && thread > 0 ? reqf(t, "vCont;s:%s", thread_str(t, thread, id, sizeof(id))) : "s";
	if (!step || !(step = strdup(step)))
		return kerr_set(t->err, sizeof(t->err), -ENOMEM, "out of memory");
	if (t->step_over != STEP_OVER_REMOVE) {
		uint64_t pc;

		/* Step with the breakpoint where it is: no breakpoint churn, which
		 * costs QEMU a retranslation of the guest's code. */
		err = queue(t, step);
		if (!err && (err = rsp_flush(t->rsp)))
			err = rerr(t, err, step);
		if (!err)
			err = step_and_wait(t, step);
		if (!err && t->step_over == STEP_OVER_UNKNOWN)
			t->step_over = !read_pc(t, &pc) && pc != addr ? STEP_OVER_IN_PLACE : STEP_OVER_REMOVE;
		if (!err && t->step_over == STEP_OVER_IN_PLACE) {
			free((char *)step);
			return target_continue(t);
		}
		if (err) {
			free((char *)step);
			return err;
		}
		/* It hit the breakpoint again: remove it for the step from now on. */
	}
	if (t->qemu) {
		/* One write per resume: the breakpoint change rides along, and
		 * its OK goes unacked (see rsp_skip_next_ack). */
		err = queue(t, reqf(t, "z0,%" PRIx64 ",1", addr));
		if (!err)
			err = queue(t, step);
		if (!err) {
			rsp_skip_next_ack(t->rsp);
			err = expect_ok(t, "removing a breakpoint to step over it");
		}
	} else {
		err = request_ok(t, reqf(t, "z0,%" PRIx64 ",1", addr));
		if (!err)
			err = queue(t, step);
		if (!err && (err = rsp_flush(t->rsp)))
			err = rerr(t, err, step);
	}
	if (!err)
		err = step_and_wait(t, step);
	free((char *)step);
	if (err)
		return err;
	if (!t->qemu) {
		err = request_ok(t, reqf(t, "Z0,%" PRIx64 ",1", addr));
		return err ? err : target_continue(t);
	}
	if ((err = queue(t, reqf(t, "Z0,%" PRIx64 ",1", addr))) || (err = queue(t, cont)))
		return err;
	rsp_skip_next_ack(t->rsp);
	return expect_ok(t, "putting a breakpoint back");
}

static char *write_req(struct target *t, const struct target_write *w)
{
	char hex[2 * 8 + 1];
	uint8_t b[8];
	size_t len = w->is_reg ? t->desc.regs[w->reg].bitsize / 8 : w->len;

	if (len > 8)
		return NULL;
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(w->value >> (8 * i)); /* little-endian target */
	rsp_hex_encode(b, len, hex);
	if (w->is_reg)
		return reqf(t, "P%x=%s", t->desc.regs[w->reg].regnum, hex);
	return reqf(t, "M%" PRIx64 ",%zx:%s", w->addr, len, hex);
}

int target_continue_with(struct target *t, const struct target_write *w, size_t n)
{
	int err;

	if (!t->qemu) {
		for (size_t i = 0; i < n; i++)
			if ((err = request_ok(t, write_req(t, &w[i]))))
				return err;
		return target_continue(t);
	}
	for (size_t i = 0; i < n; i++)
		if ((err = queue(t, write_req(t, &w[i]))))
			return err;
	if ((err = queue(t, t->vcont ? "vCont;c" : "c")))
		return err;
	t->continued = true;
	for (size_t i = 0; i < n; i++)
		rsp_skip_next_ack(t->rsp);
	rsp_expect_oks(t->rsp, (unsigned int)n);
	return (err = rsp_flush(t->rsp)) ? rerr(t, err, "continue") : 0;
}

/* "vCont;s:THREAD" (others held) or plain "s" into @buf. */
static void step_request(struct target *t, int thread, char *buf, size_t len)
{
	char id[32];

	t->continued = false;
	if (thread <= 0)
		thread = t->stop_thread;
	if (t->vcont && thread > 0)
		snprintf(buf, len, "vCont;s:%s", thread_str(t, thread, id, sizeof(id)));
	else
		snprintf(buf, len, "s");
}

int target_step(struct target *t, int thread)
{
	char req[64];
	int err;

	step_request(t, thread, req, sizeof(req));
	err = rsp_queue(t->rsp, req, strlen(req));
	if (!err)
		err = rsp_flush(t->rsp);
	return err ? rerr(t, err, "step") : 0;
}

int target_wait(struct target *t, struct target_stop *st, int timeout_ms)
{
	const char *r;
	size_t len;
	int err = rsp_wait(t->rsp, &r, &len, timeout_ms);

	if (err)
		return err == -ETIMEDOUT || err == -EINTR ? err : rerr(t, err, "waiting for a stop");
	if (target_parse_stop(r, len, st))
		return kerr_set(t->err, sizeof(t->err), -EPROTO, "unexpected reply while running: '%.*s'", (int)(len > 40 ? 40 : len), r);
	if (st->kind == TARGET_STOP_SIGNAL && st->thread > 0) {
		t->stop_thread = st->thread;
		/* QEMU makes the stopped vCPU the one 'g' and 'm' act on
		 * (gdbstub: gdb_vm_state_change sets c_cpu and g_cpu). Others: unknown. */
		t->cur_thread = t->qemu ? st->thread : 0;
	}
	if (t->kgdb && t->continued && st->kind == TARGET_STOP_SIGNAL && st->signal == 5)
		return kgdb_fix_pc(t);
	return 0;
}

int target_poll_fd(const struct target *t)
{
	return rsp_poll_fd(t->rsp);
}

int target_interrupt(struct target *t)
{
	int err = rsp_send_raw(t->rsp, "\x03", 1);

	if (!err)
		err = rsp_flush(t->rsp);
	return err ? rerr(t, err, "interrupt") : 0;
}

int target_detach(struct target *t)
{
	/* With multiprocess the stub wants the process too (E.2 'D;pid');
	 * QEMU answers a bare "D" with E22 and keeps the guest stopped. */
	return request_ok(t, t->multiprocess ? "D;1" : "D");
}

bool target_is_kgdb(const struct target *t)
{
	return t->kgdb;
}
