// SPDX-License-Identifier: MIT
#include "engine.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "disasm.h"
#include "unwind.h"

/* Frames recorded per backtrace. */
#define BT_MAX 32
/* Stack fetched per stop: enough to hold most of the frame chain, never past
 * the 16 KiB-aligned end of the kernel stack it is on. 2040 bytes is what one
 * 'm' reply carries within QEMU's PacketSize of 4096. */
#define STOP_WINDOW 2040
#define KSTACK_ALIGN 16384
/* Lines of guest memory cached for frame records outside the window. */
#define LINE_SIZE 64
#define LINE_SLOTS 512
#define LINE_BURST 31 /* 1984 bytes: one m packet under QEMU's PacketSize */
/* Code is fetched in aligned chunks and kept for the session. */
#define CODE_CHUNK 256
#define CODE_SLOTS 256
/* file:line of return addresses, kept for the session. */
#define SRC_SLOTS 8192
/* How often the live counter and limits are checked while the guest runs. */
#define POLL_MS 200
/* QEMU (TCG) now and then reports a single step that executed nothing; a
 * long run of them means the vCPU cannot make progress at all. */
#define MAX_NULL_STEPS 1000
/* Printing an oops report over the emulated serial console takes well
 * under a second under TCG. */
#define REPORT_TIMEOUT_MS 10000
/* A stop after ^C should come at once; anything slower means a wedged stub. */
#define HALT_TIMEOUT_MS 5000

struct line {
	uint64_t addr;   /* LINE_SIZE-aligned, 0: empty */
	uint8_t data[LINE_SIZE];
};

struct code {
	uint64_t addr;   /* CODE_CHUNK-aligned, 0: empty */
	uint8_t data[CODE_CHUNK];
};

struct src {
	uint64_t addr;
	char *text;
};

struct engine {
	struct target *t;
	struct symtab *syms;
	struct trace *trace;
	struct disasm *dis;
	struct report *report;
	struct engine_opts o;
	int pc_idx, sp_idx, fp_idx, arg_idx[6];
	uint64_t seq;
	/* the current snapshot */
	const uint8_t *regs;
	uint8_t window[STOP_WINDOW];
	uint64_t win_addr;
	size_t win_len;
	struct line lines[LINE_SLOTS];
	struct code code[CODE_SLOTS];
	struct src src[SRC_SLOTS];
	uint64_t *bp;     /* software breakpoints placed */
	size_t nbp;
	struct engine_fn_steps *prof; /* steps per function */
	size_t nprof, last_prof;
	uint64_t t0_ns, last_progress_ns;
	/* While a step runs the guest's memory cannot be read: caches only.
	 * A miss sets @missed and the work is redone once the guest stopped. */
	bool offline, missed;
	/* The instruction being stepped writes no memory and keeps rsp: the
	 * next snapshot can reuse this stack window as it is. */
	bool stack_kept;
	/* Otherwise, where it leaves rsp, when that follows from its code. */
	bool sp_known;
	uint64_t next_sp;
	char err[512];
};

static int eerr(struct engine *e, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int eerr(struct engine *e, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->err, sizeof(e->err), fmt, ap);
	va_end(ap);
	return err;
}

static int terr(struct engine *e, int err)
{
	return eerr(e, err, "%s", target_errmsg(e->t));
}

const char *engine_errmsg(const struct engine *e)
{
	return e->err;
}

struct report *engine_report(struct engine *e)
{
	return e->report;
}

int engine_new(struct engine **out, struct target *t, struct symtab *syms, struct trace *trace,
	       const struct engine_opts *o)
{
	static const char *const args[6] = { "rdi", "rsi", "rdx", "rcx", "r8", "r9" };
	const struct target_desc *d = target_desc(t);
	struct engine *e = calloc(1, sizeof(*e));

	if (!e)
		return -ENOMEM;
	e->t = t;
	e->syms = syms;
	e->trace = trace;
	e->o = *o;
	e->pc_idx = target_desc_find(d, "rip");
	e->sp_idx = target_desc_find(d, "rsp");
	e->fp_idx = target_desc_find(d, "rbp");
	for (int i = 0; i < 6; i++)
		e->arg_idx[i] = target_desc_find(d, args[i]);
	if (e->pc_idx < 0 || e->sp_idx < 0 || e->fp_idx < 0) {
		free(e);
		return -ENOTSUP; /* not x86-64 */
	}
	if (disasm_open(&e->dis) || report_new(&e->report)) {
		disasm_close(e->dis);
		free(e);
		return -ENOMEM;
	}
	*out = e;
	return 0;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < SRC_SLOTS; i++)
		free(e->src[i].text);
	disasm_close(e->dis);
	report_free(e->report);
	free(e->bp);
	free(e->prof);
	free(e);
}

static uint64_t reg(struct engine *e, int idx)
{
	return target_reg_u64(e->t, e->regs, idx);
}

/* ---- memory: the stack window, cached lines and code ------------------- */

static size_t slot(uint64_t addr, size_t n)
{
	return (size_t)((addr >> 6) * 0x9E3779B97F4A7C15ull >> 40) % n;
}

static void lines_clear(struct engine *e)
{
	memset(e->lines, 0, sizeof(e->lines));
}

/* Lines the fresh window overlaps get its bytes: a frame record pushed
 * while inside the window stays right once rsp moves below it again. */
static void lines_update_from_window(struct engine *e)
{
	uint64_t end = e->win_addr + e->win_len;

	for (uint64_t a = e->win_addr & ~(uint64_t)(LINE_SIZE - 1); a < end; a += LINE_SIZE) {
		struct line *l = &e->lines[slot(a, LINE_SLOTS)];
		uint64_t from = a > e->win_addr ? a : e->win_addr;
		uint64_t to = a + LINE_SIZE < end ? a + LINE_SIZE : end;

		if (l->addr == a)
			memcpy(l->data + (from - a), e->window + (from - e->win_addr), (size_t)(to - from));
	}
}

/* Guest memory, unless a step is running (then: a miss, redone later). */
static int guest_read(struct engine *e, uint64_t addr, void *out, size_t len)
{
	if (e->offline) {
		e->missed = true;
		return -EAGAIN;
	}
	return target_read_mem(e->t, addr, out, len);
}

/* Make a cache slot hold the @size bytes at @base. */
static int cache_fill(struct engine *e, uint64_t *slot_addr, uint8_t *data, size_t size, uint64_t base)
{
	int err;

	if (*slot_addr == base)
		return 0;
	err = guest_read(e, base, data, size);
	*slot_addr = err ? 0 : base;
	return err;
}

/*
 * Frame records lie one above the other on the same stack, so a miss reads
 * on towards the stack's end, LINE_BURST lines in one round trip: a chain
 * that leaves the window (an interrupt on the task stack, say) costs one
 * read instead of one per frame.
 */
static void read_burst(struct engine *e, uint64_t base)
{
	uint8_t burst[LINE_SIZE * LINE_BURST];
	size_t n = KSTACK_ALIGN - (size_t)(base & (KSTACK_ALIGN - 1));

	if (n > sizeof(burst))
		n = sizeof(burst);
	if (e->offline || n <= LINE_SIZE || target_read_mem(e->t, base, burst, n))
		return; /* the line alone, then */
	for (size_t off = 0; off < n; off += LINE_SIZE) {
		struct line *l = &e->lines[slot(base + off, LINE_SLOTS)];

		l->addr = base + off;
		memcpy(l->data, burst + off, LINE_SIZE);
	}
}

static int read_line(struct engine *e, uint64_t addr, const uint8_t **data)
{
	uint64_t base = addr & ~(uint64_t)(LINE_SIZE - 1);
	struct line *l = &e->lines[slot(base, LINE_SLOTS)];
	int err;

	if (l->addr != base)
		read_burst(e, base);
	err = cache_fill(e, &l->addr, l->data, LINE_SIZE, base);

	if (!err)
		*data = l->data + (addr - base);
	return err;
}

/* The unwinder's memory: window first, then cached lines. */
static int mem_read(void *ctx, uint64_t addr, void *out, size_t len)
{
	struct engine *e = ctx;
	uint64_t base = addr & ~(uint64_t)(LINE_SIZE - 1);
	const uint8_t *p;
	int err;

	if (addr >= e->win_addr && addr + len <= e->win_addr + e->win_len) {
		memcpy(out, e->window + (addr - e->win_addr), len);
		return 0;
	}
	if (addr + len > base + LINE_SIZE) /* straddles lines: go direct */
		return guest_read(e, addr, out, len);
	if ((err = read_line(e, addr, &p)))
		return err;
	memcpy(out, p, len);
	return 0;
}

static int is_text(void *ctx, uint64_t addr)
{
	struct engine *e = ctx;

	return sym_in_text(e->syms, addr);
}

/* Code bytes at @addr, up to the end of its chunk. */
static int code_at(struct engine *e, uint64_t addr, const uint8_t **data, size_t *avail)
{
	uint64_t base = addr & ~(uint64_t)(CODE_CHUNK - 1);
	struct code *c = &e->code[slot(base, CODE_SLOTS)];
	int err = cache_fill(e, &c->addr, c->data, CODE_CHUNK, base);

	if (!err) {
		*data = c->data + (addr - base);
		*avail = CODE_CHUNK - (size_t)(addr - base);
	}
	return err;
}

/* @len code bytes at @addr, across chunk boundaries. */
static int code_read(struct engine *e, uint64_t addr, uint8_t *out, size_t len)
{
	while (len) {
		const uint8_t *p;
		size_t avail;
		int err = code_at(e, addr, &p, &avail);

		if (err)
			return err;
		if (avail > len)
			avail = len;
		memcpy(out, p, avail);
		out += avail;
		addr += avail;
		len -= avail;
	}
	return 0;
}

/* ---- snapshot ------------------------------------------------------------ */

/*
 * Registers and the stack window in one round trip. rsp is only known after
 * 'g', so while stepping the window is fetched where the instruction just
 * stepped leaves rsp (from its code), or else around the last rsp with a
 * margin either way; a stop fetches a whole window below and above the
 * last rsp. A second read is needed only when rsp is not in what came.
 */
#define WINDOW_MARGIN 256
/* Below a foreseen rsp: room for the frame of an exception the instruction
 * raised instead (a page fault in copy_to_user, say). */
#define TRAP_MARGIN 64

static int fetch_and_maybe_step(struct engine *e, size_t want, int step_thread, bool *complete)
{
	static uint8_t raw[STOP_WINDOW];
	uint64_t sp, start, lo;
	size_t len, got = 0, fetch_len, below;
	int err;

	if (e->stack_kept && step_thread >= 0) {
		/* The last instruction left the stack alone: registers only. */
		uint64_t old_sp = e->win_addr;

		err = target_read_regs_mem_step(e->t, &e->regs, 0, raw, 0, &got, step_thread);
		if (err)
			return terr(e, err);
		if (reg(e, e->sp_idx) == old_sp) {
			*complete = e->win_len >= want;
			return 0;
		}
		/* rsp moved after all (it should not have): nothing to go on. */
		e->win_addr = reg(e, e->sp_idx);
		e->win_len = 0;
		*complete = false;
		return 0;
	}

	if (step_thread >= 0 && e->sp_known) {
		sp = e->next_sp;
		below = TRAP_MARGIN;
	} else {
		sp = e->win_addr;
		below = WINDOW_MARGIN;
	}
	if (step_thread >= 0 && below > STOP_WINDOW - want)
		below = STOP_WINDOW - want; /* all of @want first */
	start = sp - below;
	lo = sp & ~(uint64_t)(KSTACK_ALIGN - 1);
	if (start > sp || start < lo)
		start = lo; /* stay on the same stack */
	/* A step to follow: no more than needed, it is paid at every step. */
	if (step_thread < 0)
		fetch_len = STOP_WINDOW;
	else
		fetch_len = (size_t)(sp - start) + want + (e->sp_known ? 0 : WINDOW_MARGIN);
	if (fetch_len > STOP_WINDOW)
		fetch_len = STOP_WINDOW;
	if ((start & (KSTACK_ALIGN - 1)) + fetch_len > KSTACK_ALIGN)
		fetch_len = KSTACK_ALIGN - (start & (KSTACK_ALIGN - 1));
	err = step_thread >= 0
		      ? target_read_regs_mem_step(e->t, &e->regs, start, raw, fetch_len, &got, step_thread)
		      : target_read_regs_mem(e->t, &e->regs, start, raw, fetch_len, &got);
	if (err)
		return terr(e, err);
	sp = reg(e, e->sp_idx);
	len = want;
	if ((sp & (KSTACK_ALIGN - 1)) + len > KSTACK_ALIGN)
		len = KSTACK_ALIGN - (sp & (KSTACK_ALIGN - 1));
	if (sp >= start && sp < start + got) {
		/* All of it, past @want too: the unwinder reads on from it. */
		got = (size_t)(start + got - sp);
		memmove(e->window, raw + (sp - start), got);
	} else {
		got = 0;
	}
	*complete = got >= len;
	/* Top up what the guess missed; only while the guest is stopped (after
	 * a step has started, this memory belongs to the next instruction). */
	if (step_thread < 0 && got < len && !target_read_mem(e->t, sp + got, e->window + got, len - got))
		got = len;
	e->win_addr = sp;
	e->win_len = got;
	return 0;
}

static int fetch(struct engine *e, size_t want)
{
	bool complete;

	return fetch_and_maybe_step(e, want, -1, &complete);
}

static const char *src_of(struct engine *e, uint64_t addr)
{
	struct src *s = &e->src[slot(addr << 6, SRC_SLOTS)];
	struct sym_srcloc loc[1];

	if (s->addr == addr && s->text)
		return s->text;
	free(s->text);
	s->text = NULL;
	s->addr = addr;
	if (sym_srclocs(e->syms, addr, loc, 1) > 0 &&
	    asprintf(&s->text, "%s:%d", loc[0].file, loc[0].line) < 0)
		s->text = NULL;
	return s->text ? s->text : "";
}

struct snapshot {
	uint64_t pcs[BT_MAX];
	char names[BT_MAX][96];
	char srcs[BT_MAX][256];  /* copies: a cache slot may be reused within one backtrace */
	struct trace_frame bt[BT_MAX];
	uint64_t stack[STOP_WINDOW / 8];
	size_t nbt;
	enum unwind_end end;
};

static enum unwind_entry frame_state(struct engine *e, uint64_t pc)
{
	const struct sym *s = sym_lookup_addr(e->syms, pc);
	uint8_t code[32], insn[16];

	if (!s || pc == s->addr)
		return UNWIND_AT_ENTRY;
	/* In the epilogue, after "pop %rbp" or "leave": the ret is next. */
	if (!code_read(e, pc, insn, sizeof(insn)) && disasm_is_return(e->dis, insn, sizeof(insn), pc))
		return UNWIND_AT_ENTRY;
	if (code_read(e, s->addr, code, sizeof(code)))
		return UNWIND_FRAME_SET;
	return disasm_frame_state(e->dis, code, sizeof(code), s->addr, pc);
}

/* The frame chain: may read guest memory, so the guest must be stopped. */
static void snapshot_unwind(struct engine *e, struct snapshot *sn, enum unwind_entry entry)
{
	struct unwind_regs ur = {
		.pc = reg(e, e->pc_idx), .sp = reg(e, e->sp_idx), .fp = reg(e, e->fp_idx),
	};

	sn->nbt = unwind_fp(&ur, entry, sn->pcs, BT_MAX, mem_read, is_text, e, &sn->end);
}

/* Names and lines: vmlinux only, so this can run while the guest does. */
static void snapshot_symbolize(struct engine *e, struct snapshot *sn)
{
	for (size_t i = 0; i < sn->nbt; i++) {
		/* A return address points after the call: its line is the call's
		 * at address - 1 (decode_stacktrace.sh and gdb do the same). */
		uint64_t a = i ? sn->pcs[i] - 1 : sn->pcs[i];

		if (i)
			sym_format_return(e->syms, sn->pcs[i], sn->names[i], sizeof(sn->names[i]));
		else
			sym_format(e->syms, sn->pcs[i], sn->names[i], sizeof(sn->names[i]));
		snprintf(sn->srcs[i], sizeof(sn->srcs[i]), "%s", src_of(e, a));
		sn->bt[i] = (struct trace_frame){ sn->pcs[i], sn->names[i], sn->srcs[i] };
	}
}

static void snapshot_take(struct engine *e, struct snapshot *sn, enum unwind_entry entry)
{
	snapshot_unwind(e, sn, entry);
	snapshot_symbolize(e, sn);
}

static uint64_t skb_of(struct engine *e, const struct probe *p)
{
	uint64_t v, next;

	if (!p || p->skb_arg < 0 || p->skb_arg > 5 || e->arg_idx[p->skb_arg] < 0)
		return 0;
	v = reg(e, e->arg_idx[p->skb_arg]);
	switch (p->skb_levels) {
	case 1:
		return v;
	case 2: /* struct sk_buff **pskb */
		return mem_read(e, v, &next, 8) ? 0 : next;
	case 0:
		/* A list_head of skbs: sk_buff starts with its list node
		 * (6.1 include/linux/skbuff.h, the union with next/prev/list), so
		 * head->next is the first skb unless the list is empty. */
		return mem_read(e, v, &next, 8) || next == v ? 0 : next;
	}
	return 0;
}

static int write_event(struct engine *e, struct snapshot *sn, enum trace_kind kind, const char *probe,
		       uint64_t skb, const char *insn, const uint8_t *ibytes, uint8_t ilen)
{
	size_t words = (e->win_len < e->o.stack_bytes ? e->win_len : e->o.stack_bytes) / 8;
	struct trace_event ev = {
		.kind = kind,
		.ts_ns = trace_now_ns(),
		.seq = ++e->seq,
		.vcpu = (uint32_t)(target_current_thread(e->t) > 0 ? target_current_thread(e->t) - 1 : 0),
		.pc = sn->pcs[0],
		.probe = probe,
		.symbol = sn->names[0],
		.skb = skb,
		.regs = e->regs,
		.stack = sn->stack,
		.stack_len = (uint32_t)words,
		.bt = sn->bt,
		.bt_len = (uint32_t)sn->nbt,
		.insn = insn,
		.insn_bytes = ibytes,
		.insn_len = ilen,
	};
	int err;

	for (size_t i = 0; i < words; i++)
		memcpy(&sn->stack[i], e->window + 8 * i, 8);
	err = trace_write(e->trace, &ev);
	return err ? eerr(e, err, "writing the trace: %s", strerror(-err)) : 0;
}

/* ---- boot and checks ----------------------------------------------------- */

/* Kernel text lives in the top 2 GiB (x86-64 KERNEL_IMAGE_START with no KASLR). */
#define KERNEL_TEXT_MIN 0xffffffff80000000ull

int engine_before_kernel(struct engine *e, bool *before)
{
	int cs = target_desc_find(target_desc(e->t), "cs");
	int err = target_read_regs(e->t, &e->regs);

	if (err)
		return terr(e, err);
	/* Firmware, boot loader and decompressor run in ring 0 below the
	 * kernel's text; user space is below it too, but in ring 3. */
	*before = reg(e, e->pc_idx) < KERNEL_TEXT_MIN && (cs < 0 || (reg(e, cs) & 3) == 0);
	return 0;
}

static int wait_stop(struct engine *e, struct target_stop *st, int timeout_ms)
{
	int err;

	do {
		err = target_wait(e->t, st, timeout_ms);
	} while (!err && st->kind == TARGET_STOP_OUTPUT);
	return err;
}

int engine_run_to_start_kernel(struct engine *e, int timeout_ms)
{
	const struct sym *sk = sym_lookup_name(e->syms, "start_kernel");
	struct target_stop st;
	int err;

	if (!sk)
		return eerr(e, -ENOENT, "%s has no start_kernel: is it a vmlinux?", sym_path(e->syms));
	if ((err = target_breakpoint(e->t, true, TARGET_BP_HW, sk->addr)))
		return terr(e, err);
	if ((err = target_continue(e->t)))
		return terr(e, err);
	err = wait_stop(e, &st, timeout_ms);
	if (err == -ETIMEDOUT) {
		/* Take the guest back so that the caller can decide what to do. */
		target_interrupt(e->t);
		wait_stop(e, &st, HALT_TIMEOUT_MS);
		target_breakpoint(e->t, false, TARGET_BP_HW, sk->addr);
		return eerr(e, -ETIMEDOUT, "the guest did not reach start_kernel within %d ms", timeout_ms);
	}
	if (err)
		return err == -EINTR ? eerr(e, err, "interrupted") : terr(e, err);
	if (st.kind != TARGET_STOP_SIGNAL)
		return eerr(e, -ECHILD, "the guest ended before start_kernel");
	if ((err = target_breakpoint(e->t, false, TARGET_BP_HW, sk->addr)))
		return terr(e, err);
	if ((err = target_read_regs(e->t, &e->regs)))
		return terr(e, err);
	if (reg(e, e->pc_idx) != sk->addr)
		return eerr(e, -EPROTO, "stopped at 0x%" PRIx64 ", not at start_kernel", reg(e, e->pc_idx));
	return 0;
}

static void printable(char *s, size_t len)
{
	for (size_t i = 0; i < len && s[i]; i++)
		if ((unsigned char)s[i] < 0x20)
			s[i] = s[i] == '\n' ? '\0' : ' ';
}

int engine_check_banner(struct engine *e)
{
	const struct sym *b = sym_lookup_name(e->syms, "linux_banner");
	char mine[512] = "", theirs[512] = "";
	size_t len;
	int err;

	if (!b || !b->size)
		return eerr(e, -ENOENT, "%s has no linux_banner: is it a vmlinux?", sym_path(e->syms));
	len = b->size < sizeof(mine) - 1 ? b->size : sizeof(mine) - 1;
	if (sym_read_bytes(e->syms, b->addr, mine, len))
		return eerr(e, -EIO, "cannot read linux_banner from %s", sym_path(e->syms));
	err = target_read_mem(e->t, b->addr, theirs, len);
	printable(mine, len);
	printable(theirs, len);
	if (err || memcmp(mine, theirs, len)) {
		return eerr(e, -ESTALE,
			    "%s does not match the running guest: the guest's banner at 0x%" PRIx64
			    " is '%.120s', vmlinux has '%.120s'; pass the vmlinux built with this kernel (--vmlinux PATH)",
			    sym_path(e->syms), b->addr, err ? "(unreadable)" : theirs, mine);
	}
	return 0;
}

int engine_halt(struct engine *e)
{
	struct target_stop st;
	int err = target_interrupt(e->t);

	if (!err)
		err = wait_stop(e, &st, HALT_TIMEOUT_MS);
	return err ? terr(e, err) : 0;
}

static bool placed(const struct engine *e, uint64_t addr)
{
	for (size_t i = 0; i < e->nbp; i++)
		if (e->bp[i] == addr)
			return true;
	return false;
}

/*
 * Carry out the instruction under a breakpoint ourselves when it is a push
 * of a register (a function's first instruction, "push %rbp", nearly
 * always): [rsp-8] = reg, rsp -= 8, rip += length, then continue. This
 * spares the stub a single step (a stop of its own) and kstep a round trip
 * at every hit. Under TCG the gain is within the noise of what QEMU spends
 * re-translating after every debug stop (bench/ceiling measures both ways).
 * -ENOTSUP for any other instruction.
 */
static int continue_by_emulation(struct engine *e, uint64_t pc)
{
	static const char *const regs[16] = { "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
					      "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15" };
	const struct target_desc *d = target_desc(e->t);
	uint8_t insn[2];
	size_t len;
	int r, idx;

	if (!e->regs || reg(e, e->pc_idx) != pc || code_read(e, pc, insn, sizeof(insn)))
		return -ENOTSUP;
	if (insn[0] >= 0x50 && insn[0] <= 0x57) {
		r = insn[0] - 0x50;
		len = 1;
	} else if (insn[0] == 0x41 && insn[1] >= 0x50 && insn[1] <= 0x57) {
		r = 8 + insn[1] - 0x50;
		len = 2;
	} else {
		return -ENOTSUP;
	}
	idx = target_desc_find(d, regs[r]);
	if (idx < 0)
		return -ENOTSUP;
	uint64_t sp = reg(e, e->sp_idx), value = reg(e, idx); /* push %rsp pushes the old rsp */
	struct target_write w[3] = {
		{ .addr = sp - 8, .value = value, .len = 8 },
		{ .is_reg = true, .reg = e->sp_idx, .value = sp - 8 },
		{ .is_reg = true, .reg = e->pc_idx, .value = pc + len },
	};

	return target_continue_with(e->t, w, 3);
}

/* Resume from where the guest stopped: past our breakpoint if it sits there. */
static int resume(struct engine *e, uint64_t pc)
{
	int err;

	if (!placed(e, pc))
		err = target_continue(e->t);
	else if ((err = continue_by_emulation(e, pc)) == -ENOTSUP)
		err = target_continue_over(e->t, pc, target_current_thread(e->t));
	return err == -ECONNRESET ? err : err ? terr(e, err) : 0;
}

static int place(struct engine *e, uint64_t addr)
{
	uint64_t *tmp = realloc(e->bp, (e->nbp + 1) * sizeof(*tmp));
	int err;

	if (!tmp)
		return eerr(e, -ENOMEM, "out of memory");
	e->bp = tmp;
	if ((err = target_breakpoint(e->t, true, TARGET_BP_SW, addr)))
		return terr(e, err);
	e->bp[e->nbp++] = addr;
	return 0;
}

int engine_clear_breakpoints(struct engine *e)
{
	int first = 0;

	for (size_t i = 0; i < e->nbp; i++) {
		int err = target_breakpoint(e->t, false, TARGET_BP_SW, e->bp[i]);

		if (err && !first)
			first = terr(e, err);
	}
	e->nbp = 0;
	return first;
}

/* ---- the loops ----------------------------------------------------------- */

static double since(struct engine *e)
{
	return (double)(trace_now_ns() - e->t0_ns) / 1e9;
}

static void progress(struct engine *e, uint64_t n, const char *what, const char *last, bool final)
{
	uint64_t now = trace_now_ns();
	double s;

	if (!e->o.progress || (!final && now - e->last_progress_ns < POLL_MS * 1000000ull))
		return;
	e->last_progress_ns = now;
	s = since(e);
	fprintf(stderr, "\r\033[Kkstep: %" PRIu64 " %s, %.0f/s, %.1f s%s%s%s", n, what, s > 0 ? (double)n / s : 0.0,
		s, last ? " (" : "", last ? last : "", last ? ")" : "");
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

/* Wait for the next stop while the guest runs, watching limits and ^C. */
static int run_until_stop(struct engine *e, struct target_stop *st, enum engine_end *end)
{
	for (;;) {
		int err;

		if (e->o.interrupted && *e->o.interrupted) {
			*end = ENGINE_END_INTERRUPTED;
			return engine_halt(e);
		}
		if (e->o.duration > 0 && since(e) >= e->o.duration) {
			*end = ENGINE_END_DURATION;
			return engine_halt(e);
		}
		err = target_wait(e->t, st, POLL_MS);
		if (!err && st->kind == TARGET_STOP_OUTPUT)
			continue;
		if (err == -ETIMEDOUT || err == -EINTR) {
			progress(e, e->seq, "stops", NULL, false);
			continue;
		}
		if (err == -ECONNRESET) {
			*end = ENGINE_END_GUEST_EXITED;
			return 0;
		}
		if (err)
			return terr(e, err);
		if (st->kind != TARGET_STOP_SIGNAL)
			*end = ENGINE_END_GUEST_EXITED;
		return 0;
	}
}

/* Where the kernel has printed its whole report: panic() calls the panic
 * notifiers (pvpanic among them) right after it; an oops ends in oops_exit's
 * kmsg_dump; a WARN is done when __warn returns. */
static uint64_t report_end(struct engine *e, const struct probe *p, uint64_t ret_addr)
{
	const char *fn = NULL;
	const struct sym *s;

	if (!strcmp(p->spec, "panic"))
		fn = "atomic_notifier_call_chain";
	else if (!strcmp(p->spec, "oops_begin"))
		fn = "kmsg_dump";
	s = fn ? sym_lookup_name(e->syms, fn) : NULL;
	return s ? s->addr : ret_addr;
}

/* Let the dying kernel print its report, then stop it there for good. */
static int finish_report(struct engine *e, struct probe *p, struct snapshot *sn, struct engine_result *res)
{
	uint64_t end = report_end(e, p, sn->nbt > 1 ? sn->pcs[1] : 0);
	struct target_stop st;
	int err;

	if ((err = engine_clear_breakpoints(e)))
		return err;
	if (!end || !sym_in_text(e->syms, end) || (err = place(e, end)))
		return err;
	if ((err = target_continue(e->t)))
		return terr(e, err);
	err = wait_stop(e, &st, REPORT_TIMEOUT_MS);
	if (err == -ETIMEDOUT)
		err = engine_halt(e); /* froze before the end: still a dying guest */
	else if (!err && st.kind != TARGET_STOP_SIGNAL)
		return eerr(e, -ECHILD, "the guest ended while printing its report");
	if (err)
		return err == -ECONNRESET ? eerr(e, err, "QEMU went away during the report") : terr(e, err);
	if ((err = engine_clear_breakpoints(e)))
		return err;
	lines_clear(e);
	if ((err = fetch(e, STOP_WINDOW)))
		return err;
	snapshot_take(e, sn, frame_state(e, reg(e, e->pc_idx)));
	if ((err = write_event(e, sn, TRACE_STOP, "oops-end", 0, NULL, NULL, 0)))
		return err;
	res->stops++;
	return 0;
}

int engine_trace(struct engine *e, struct probe_set *ps, struct engine_result *res)
{
	struct snapshot *sn = calloc(1, sizeof(*sn));
	/* What --stack-bytes records; the fetch brings a whole window around
	 * it when rsp is near where it was, and the frame chain beyond comes
	 * in bursts (read_burst). */
	const size_t want = e->o.stack_bytes < 256 ? 256 : e->o.stack_bytes;
	int err = 0;

	memset(res, 0, sizeof(*res));
	if (!sn)
		return eerr(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < ps->n && !err; i++)
		err = place(e, ps->v[i].addr);
	e->t0_ns = trace_now_ns();
	uint64_t pc = 0, own_ns = 0, stopped_at = 0;

	while (!err) {
		struct target_stop st;
		enum engine_end end = ENGINE_END_NONE;
		struct probe *p;
		uint64_t skb;

		err = resume(e, pc);
		if (stopped_at)
			own_ns += trace_now_ns() - stopped_at;
		if (err) {
			if (err == -ECONNRESET) {
				res->end = ENGINE_END_GUEST_EXITED;
				err = 0;
			}
			break;
		}
		err = run_until_stop(e, &st, &end);
		if (err || end != ENGINE_END_NONE) {
			res->end = end;
			break;
		}
		stopped_at = trace_now_ns();
		lines_clear(e);
		if ((err = fetch(e, want)))
			break;
		pc = reg(e, e->pc_idx);
		p = probes_find(ps, pc);
		if (!p)
			continue; /* not ours (e.g. a stop we did not ask for) */
		p->hits++;
		snapshot_take(e, sn, p->at_entry ? UNWIND_AT_ENTRY : frame_state(e, pc));
		skb = skb_of(e, p);
		if ((err = write_event(e, sn, TRACE_STOP, p->stage, skb, NULL, NULL, 0)))
			break;
		if (skb && (err = report_add(e->report, skb, p->spec, p->order)))
			break;
		res->stops++;
		progress(e, res->stops, "stops", p->spec, false);
		if (p->oops) {
			size_t off = 0;

			res->end = ENGINE_END_OOPS;
			res->oops_probe = p;
			res->oops_seq = e->seq;
			for (size_t i = 0; i < sn->nbt && off < sizeof(res->oops_bt); i++)
				off += (size_t)snprintf(res->oops_bt + off, sizeof(res->oops_bt) - off, "  %s %s\n",
							sn->names[i], sn->bt[i].src);
			err = finish_report(e, p, sn, res);
			break;
		}
		if (e->o.max_stops && res->stops >= e->o.max_stops) {
			res->end = ENGINE_END_MAX_STOPS;
			break;
		}
	}
	if (err == -ECONNRESET) {
		/* QEMU went away in the middle of a snapshot: the trace so far
		 * stands, the caller reports how QEMU ended. */
		res->end = ENGINE_END_GUEST_EXITED;
		err = 0;
	}
	res->own_seconds = (double)own_ns / 1e9;
	res->seconds = since(e);
	progress(e, res->stops, "stops", NULL, true);
	free(sn);
	return err;
}

/* Count a recorded step in its function's entry. */
static int profile_add(struct engine *e, uint64_t pc)
{
	const struct sym *s = sym_lookup_addr(e->syms, pc);
	const char *name = s ? s->name : "?";
	struct engine_fn_steps *tmp;

	/* Steps run in one function for a while: look at the last one first. */
	if (e->nprof && e->prof[e->last_prof].name == name) {
		e->prof[e->last_prof].steps++;
		return 0;
	}
	for (size_t i = 0; i < e->nprof; i++)
		if (e->prof[i].name == name) {
			e->prof[i].steps++;
			e->last_prof = i;
			return 0;
		}
	tmp = realloc(e->prof, (e->nprof + 1) * sizeof(*tmp));
	if (!tmp)
		return eerr(e, -ENOMEM, "out of memory");
	e->prof = tmp;
	e->prof[e->nprof] = (struct engine_fn_steps){ name, 1 };
	e->last_prof = e->nprof++;
	return 0;
}

static int by_steps(const void *a, const void *b)
{
	const struct engine_fn_steps *x = a, *y = b;

	return (x->steps < y->steps) - (x->steps > y->steps);
}

size_t engine_step_profile(struct engine *e, const struct engine_fn_steps **out)
{
	qsort(e->prof, e->nprof, sizeof(*e->prof), by_steps);
	e->last_prof = 0;
	*out = e->prof;
	return e->nprof;
}

int engine_step(struct engine *e, const char *at_spec, uint64_t at, uint64_t hits, uint64_t count,
		bool until_return, struct engine_result *res)
{
	struct snapshot *sn = calloc(1, sizeof(*sn));
	size_t want = e->o.stack_bytes < 256 ? 256 : e->o.stack_bytes;
	uint64_t ret_addr = 0, entry_sp = 0, seen = 0;
	const struct sym *fn = sym_lookup_addr(e->syms, at);
	uint8_t *prev = NULL;
	bool returning = false;
	int thread, err = 0;

	memset(res, 0, sizeof(*res));
	e->nprof = 0;
	if (!sn)
		return eerr(e, -ENOMEM, "out of memory");
	if (want > STOP_WINDOW)
		want = STOP_WINDOW;
	if (hits && (err = place(e, at)))
		goto out;
	e->t0_ns = trace_now_ns();
	/* Run to the hits-th hit of the breakpoint (0: step from where it is). */
	while (seen < hits) {
		struct target_stop st;
		enum engine_end end = ENGINE_END_NONE;

		if ((err = resume(e, seen ? at : 0)) || (err = run_until_stop(e, &st, &end))) {
			if (err == -ECONNRESET)
				err = eerr(e, -ECHILD, "the guest ended after %" PRIu64 " of %" PRIu64 " hits of %s",
					   seen, hits, at_spec);
			goto out;
		}
		if (end != ENGINE_END_NONE) {
			res->end = end;
			err = end == ENGINE_END_GUEST_EXITED
				      ? eerr(e, -ECHILD, "the guest ended after %" PRIu64 " of %" PRIu64 " hits of %s",
					     seen, hits, at_spec)
				      : 0;
			goto out;
		}
		if ((err = target_read_regs(e->t, &e->regs))) {
			err = terr(e, err);
			goto out;
		}
		if (reg(e, e->pc_idx) == at)
			seen++;
	}
	/* Step alone: no breakpoint in the way, the other vCPUs held. */
	if ((err = engine_clear_breakpoints(e)))
		goto out;
	if ((err = target_set_sstep(e->t, e->o.step_irqs ? TARGET_SSTEP_ENABLE
							   : TARGET_SSTEP_ENABLE | TARGET_SSTEP_NOIRQ |
								     TARGET_SSTEP_NOTIMER))) {
		err = terr(e, err);
		goto out;
	}
	thread = target_current_thread(e->t);
	lines_clear(e);
	e->stack_kept = e->sp_known = false;
	/* Where the stack is now, so that the first batched fetch finds it. */
	if ((err = fetch(e, want)))
		goto out;
	e->t0_ns = trace_now_ns();
	prev = malloc(target_desc(e->t)->g_size);
	if (!prev) {
		err = eerr(e, -ENOMEM, "out of memory");
		goto out;
	}
	/*
	 * One round trip per instruction: registers and stack of this
	 * instruction, and the step to the next, go out in one write. So the
	 * end must be known one instruction ahead: by count, or because the
	 * instruction just stepped was the ret that pops the return address.
	 */
	for (uint64_t nulls = 0;;) {
		struct target_stop st;
		uint8_t insn[16] = { 0 };
		char text[128];
		size_t ilen;
		uint64_t pc, sp;
		bool last, complete, stopped;

		last = (count && res->steps + 1 >= count) || returning ||
		       (e->o.interrupted && *e->o.interrupted);
		if ((err = fetch_and_maybe_step(e, want, last ? -1 : thread, &complete)))
			break;
		stopped = last;
		if (res->steps && !memcmp(prev, e->regs, target_desc(e->t)->g_size)) {
			/* Not one register moved, not even rip: nothing ran (the
			 * stub reported a step that executed nothing). */
			res->null_steps++;
			if (++nulls > MAX_NULL_STEPS) {
				err = eerr(e, -EIO, "%d single steps in a row executed nothing at 0x%" PRIx64,
					   MAX_NULL_STEPS, reg(e, e->pc_idx));
				break;
			}
			if (last)
				break;
			goto next;
		}
		if (res->steps == 0 && !stopped) {
			/* The first instruction reads the return address: stop first. */
			if ((err = wait_stop(e, &st, HALT_TIMEOUT_MS)))
				break;
			stopped = true;
		}
		nulls = 0;
		memcpy(prev, e->regs, target_desc(e->t)->g_size);
		if (complete)
			lines_update_from_window(e);
		pc = reg(e, e->pc_idx);
		sp = reg(e, e->sp_idx);
		if (res->steps == 0 && until_return && hits) {
			if (!fn || pc != fn->addr) {
				err = eerr(e, -EINVAL, "--until-return needs --at at a function's first instruction");
				break;
			}
			/* At entry the return address is on top of the stack. */
			if ((err = mem_read(e, sp, &ret_addr, 8))) {
				err = eerr(e, err, "cannot read the return address at 0x%" PRIx64, sp);
				break;
			}
			entry_sp = sp;
		}
		/*
		 * The guest may be running the next step now. Work from the caches
		 * meanwhile; on a miss, wait for it to stop and read then (code
		 * does not change under us, and the frame records above the window
		 * are not written by the instruction that ran).
		 */
		for (e->offline = !stopped;; e->offline = false) {
			e->missed = false;
			if (code_read(e, pc, insn, sizeof(insn)) && !e->missed) {
				err = eerr(e, -EFAULT, "cannot read code at 0x%" PRIx64, pc);
				break;
			}
			snapshot_unwind(e, sn, frame_state(e, pc));
			if (until_return && !e->missed && disasm_is_return(e->dis, insn, sizeof(insn), pc)) {
				uint64_t to;

				/* The ret back to the caller? Then the next is the last. */
				returning = !mem_read(e, sp, &to, 8) && to == ret_addr && sp >= entry_sp;
			}
			if (!e->missed || !e->offline)
				break;
			if ((err = wait_stop(e, &st, HALT_TIMEOUT_MS)))
				break;
			stopped = true;
		}
		e->offline = false;
		if (err)
			break;
		ilen = disasm_one(e->dis, insn, sizeof(insn), pc, text, sizeof(text));
		snapshot_symbolize(e, sn);
		if ((err = write_event(e, sn, TRACE_STEP, "", 0, text, insn, (uint8_t)(ilen ? ilen : 1))))
			break;
		e->stack_kept = complete && disasm_keeps_stack(e->dis, insn, sizeof(insn), pc);
		e->sp_known = disasm_next_sp(e->dis, insn, sizeof(insn), pc, sp, reg(e, e->fp_idx), &e->next_sp);
		if ((err = profile_add(e, pc)))
			break;
		res->steps++;
		progress(e, res->steps, "steps", NULL, false);
		if (until_return && res->steps > 1 && pc == ret_addr && sp > entry_sp) {
			res->end = ENGINE_END_RETURNED;
			break;
		}
		if (last) {
			res->end = count && res->steps >= count ? ENGINE_END_COUNT : ENGINE_END_INTERRUPTED;
			break;
		}
next:
		if (!stopped && (err = wait_stop(e, &st, HALT_TIMEOUT_MS)))
			break;
		if (!stopped && st.kind != TARGET_STOP_SIGNAL) {
			res->end = ENGINE_END_GUEST_EXITED;
			break;
		}
	}
	if (err && err != -ECONNRESET && !e->err[0])
		err = terr(e, err);
out:
	if (err == -ECONNRESET) {
		res->end = ENGINE_END_GUEST_EXITED;
		err = 0;
	}
	res->seconds = since(e);
	progress(e, res->steps, "steps", NULL, true);
	free(prev);
	free(sn);
	return err;
}
