// SPDX-License-Identifier: MIT
/*
 * kstep_plugin: kstep's QEMU TCG plugin. Loaded by QEMU as
 *   -plugin file=kstep-plugin.so,sock=PATH[,icount=on]
 * it connects to kstep's socket at PATH and, at every instruction kstep
 * named a probe, copies the registers (in the gdbstub's 'g' layout) and
 * the stack window from rsp into a HIT message, without stopping the
 * guest; for kstep step, every instruction of the vCPU that hit --at from
 * that hit on (or, for --backwards, of the vCPU a replay stopped short of
 * the hit, from there), through a conditional callback on every
 * instruction that only that vCPU's scoreboard slot turns on; a STEP
 * reads only the registers the instruction before it wrote
 * (host/disasm.c, Capstone, at translation), and sends only the head of
 * its block that changed.
 * Messages are buffered and written in batches by a thread of their own
 * (a step window's first STEP and the one where its call returns go at
 * once); when kstep falls behind, the vCPU waits for it (counted, never
 * dropped). With icount=on it
 * counts each vCPU's instructions (an inline add on every one) and gives
 * the count at each HIT and STEP: the guest's clock, where QEMU runs with
 * -icount. The wire format is plugin/channel.h; plugin API version 4
 * (QEMU 9.2) is needed for guest memory reads, and QEMU refuses the
 * plugin below it.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "disasm.h"
#include "qemu_api.h"

KSTEP_PLUGIN_EXPORT int qemu_plugin_version = KSTEP_PLUGIN_API;

/* A batch goes out once this full, or this old (ms), or the vCPU idles. */
#define FLUSH_BYTES (256u << 10)
#define FLUSH_AGE_NS (20 * 1000000ull)
#define SNDBUF_BYTES (4 << 20)
#define KSTACK_ALIGN 16384u
#define EFLAGS_RF (1u << 16)
/* Kernel addresses on x86-64, and the most of a linked stack taken. */
#define KERNEL_HALF 0xffff800000000000ull
#define LINK_MAX 8192u

struct reg_slot {
	struct qemu_plugin_register *handle; /* NULL: QEMU has no such register, left 0 */
	uint32_t offset, size;
	bool cold;                    /* one that integer code leaves alone (gprs_only) */
	int gpr;                      /* which general register (disasm_gpr_name), -1: none */
};

struct probe {
	uint64_t addr;
	const struct chan_op *ops; /* into P.ops */
	uint32_t nops;
	uint32_t at_return;        /* its CHAN_OP_AT_RETURN's index, nops: none */
};

/* A probed call whose return a vCPU watches for (CHAN_OP_AT_RETURN). */
struct pending_return {
	uint64_t ret, sp;          /* the return address, and rsp once there */
	uint32_t first, nops;      /* the program to run there: P.ops[first..] */
};
#define PENDING_RETURNS 32     /* a vCPU's calls in flight; the oldest goes */
#define MAX_VCPUS 64

struct qemu_reg {
	struct qemu_plugin_register *handle;
	char name[CHAN_REG_NAME];
};

static struct {
	int fd;
	bool dead;                    /* kstep went away: report nothing more */
	pthread_mutex_t out_lock;     /* the batch, the counters */
	uint8_t *out;
	size_t out_len, out_cap;
	uint64_t last_flush_ns;
	uint64_t hits, waits, wait_ns;
	uint32_t answered;            /* chan_synced's */

	pthread_mutex_t table_lock;   /* probes, window, registers */
	struct probe *probes;         /* sorted by address */
	size_t nprobes;
	struct chan_op *ops;          /* their programs */
	uint32_t window;
	struct qemu_reg *qregs;       /* what QEMU offers (from the first vCPU) */
	size_t nqregs;
	struct reg_slot slots[CHAN_MAX_REGS];
	size_t nslots;
	uint32_t hot[CHAN_MAX_REGS];  /* the slots a STEP may read after integer code ... */
	size_t nhot;                  /* ... (not cold, QEMU has them, not rip) */
	uint32_t regs_len, regs_missing;
	int sp_slot, gs_slot, pc_slot; /* rsp's, gs_base's and rip's slots, -1: not given */
	int bp_slot, flags_slot;      /* rbp's and eflags' */
	uint16_t sp_bit;              /* rsp's bit in struct writes' gprs, 0: not given */
	struct disasm *dis;           /* what a step's instruction writes; NULL: read them all */
	uint64_t irq_stack_ptr;       /* chan_probes' */
	bool count;                   /* icount=on: ... */
	qemu_plugin_u64 icount;       /* ... each vCPU's instructions so far */
	bool watch_returns;           /* a probe has CHAN_OP_AT_RETURN */
	struct pending_return pending[MAX_VCPUS][PENDING_RETURNS];
	uint32_t npending[MAX_VCPUS];
	qemu_plugin_u64 watching;     /* npending, where blocks' callbacks see it */
} P = { .fd = -1, .out_lock = PTHREAD_MUTEX_INITIALIZER, .table_lock = PTHREAD_MUTEX_INITIALIZER, .sp_slot = -1,
	.gs_slot = -1, .pc_slot = -1, .bp_slot = -1, .flags_slot = -1 };

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void say(const char *fmt, const char *what)
{
	char line[512];

	snprintf(line, sizeof(line), fmt, what);
	qemu_plugin_outs(line);
}

static int cmp_probe(const void *a, const void *b)
{
	uint64_t x = ((const struct probe *)a)->addr, y = ((const struct probe *)b)->addr;

	return x < y ? -1 : x > y;
}

static const struct probe *find_probe(uint64_t pc)
{
	struct probe key = { .addr = pc };

	return P.nprobes ? bsearch(&key, P.probes, P.nprobes, sizeof(*P.probes), cmp_probe) : NULL;
}

/* ---- output: batches, written whole by a thread of their own ---- */

/* The batch on its way to kstep: the vCPU hands a full one over and
 * fills the next meanwhile; when kstep falls behind, the sender waits on
 * the socket and the vCPU on the sender. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t moved;         /* a batch handed over, or one sent */
	uint8_t *buf;
	size_t len, cap;              /* len 0: nothing to send */
	bool failed;                  /* the socket failed: kstep is gone */
} W = { .lock = PTHREAD_MUTEX_INITIALIZER, .moved = PTHREAD_COND_INITIALIZER };

static bool send_all(const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = send(P.fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			say("kstep-plugin: kstep's socket failed (%s); reporting stops\n", n ? strerror(errno) : "closed");
			return false;
		}
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

static void *sender(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&W.lock);
	for (;;) {
		bool ok;

		while (!W.len)
			pthread_cond_wait(&W.moved, &W.lock);
		pthread_mutex_unlock(&W.lock);
		ok = !W.failed && send_all(W.buf, W.len); /* W.buf is the sender's until len is 0 */
		pthread_mutex_lock(&W.lock);
		W.failed |= !ok;
		W.len = 0;
		pthread_cond_broadcast(&W.moved);
	}
	return NULL;
}

/* Until the sender has sent what it was given, under W.lock. */
static void sent_locked(void)
{
	while (W.len)
		pthread_cond_wait(&W.moved, &W.lock);
}

/* The same, for a vCPU with its next batch: a wait for kstep, counted. */
static void counted_sent_locked(void)
{
	uint64_t t0;

	if (!W.len)
		return;
	t0 = now_ns();
	P.waits++;
	sent_locked();
	P.wait_ns += now_ns() - t0;
}

/* The batch to the sender, under out_lock; it holds the one before
 * until that is sent. */
static void flush_locked(void)
{
	pthread_mutex_lock(&W.lock);
	if (P.out_len && !P.dead) {
		uint8_t *out = P.out;
		size_t cap = P.out_cap;

		counted_sent_locked();
		P.out = W.buf;
		P.out_cap = W.cap;
		W.buf = out;
		W.cap = cap;
		W.len = P.out_len;
		pthread_cond_broadcast(&W.moved);
	}
	P.dead |= W.failed;
	pthread_mutex_unlock(&W.lock);
	P.out_len = 0;
	P.last_flush_ns = now_ns();
}

/* The batch sent, under out_lock: before QEMU exits, or a message
 * written past the sender. */
static void flush_sent_locked(void)
{
	flush_locked();
	pthread_mutex_lock(&W.lock);
	sent_locked();
	P.dead |= W.failed;
	pthread_mutex_unlock(&W.lock);
}

/* Room for @len more bytes in the batch, under out_lock. */
static uint8_t *reserve_locked(size_t len)
{
#ifdef KSTEP_PLUGIN_FAIL_AFTER /* tests build one whose memory runs out after N hits */
	if (P.hits >= KSTEP_PLUGIN_FAIL_AFTER)
		return NULL;
#endif
	if (P.out_len + len > P.out_cap) {
		size_t cap = P.out_cap ? P.out_cap : FLUSH_BYTES * 2;
		uint8_t *out;

		while (cap < P.out_len + len)
			cap *= 2;
		out = realloc(P.out, cap);
		if (!out)
			return NULL;
		P.out = out;
		P.out_cap = cap;
	}
	P.out_len += len;
	return P.out + P.out_len - len;
}

/* @buf (@cap bytes, @used of them taken) grown to two batches, and the
 * rest of it touched. */
static void fault_in(uint8_t **buf, size_t *cap, size_t used)
{
	if (*cap < used + FLUSH_BYTES * 2) {
		uint8_t *grown = realloc(*buf, used + FLUSH_BYTES * 2);

		if (!grown)
			return;
		*buf = grown;
		*cap = used + FLUSH_BYTES * 2;
	}
	memset(*buf + used, 0, *cap - used);
}

/* Both batches' memory faulted in while the guest is stopped, not a page
 * at a time by the vCPU as a window's first batches grow into them. */
static void touch_batch(void)
{
	pthread_mutex_lock(&P.out_lock);
	fault_in(&P.out, &P.out_cap, P.out_len);
	pthread_mutex_lock(&W.lock);
	sent_locked();
	fault_in(&W.buf, &W.cap, 0);
	pthread_mutex_unlock(&W.lock);
	pthread_mutex_unlock(&P.out_lock);
}

static void append_locked(uint32_t type, const void *body, size_t len)
{
	struct chan_header h = { type, (uint32_t)len };
	uint8_t *p = reserve_locked(sizeof(h) + len);

	if (!p)
		return;
	memcpy(p, &h, sizeof(h));
	memcpy(p + sizeof(h), body, len);
}

/* SYNCED: the answer to a message kstep sent (@answer), or the last word. */
static void send_synced(bool answer)
{
	struct chan_synced s;

	pthread_mutex_lock(&P.out_lock);
	P.answered += answer;
	s = (struct chan_synced){ .hits = P.hits, .waits = P.waits, .wait_ns = P.wait_ns,
				  .regs_missing = P.regs_missing, .answered = P.answered };
	append_locked(CHAN_SYNCED, &s, sizeof(s));
	if (answer)
		flush_locked();
	else /* QEMU exits once this returns */
		flush_sent_locked();
	pthread_mutex_unlock(&P.out_lock);
}

/* ---- at a probe: registers and stack into a HIT ---- */

/* What an instruction writes (disasm_gprs_written, disasm_writes_memory). */
struct writes {
	uint16_t gprs;                /* these general registers */
	bool flags;                   /* eflags */
	bool stores;                  /* memory, through an operand */
};

/* Which registers to read into a block; the caller has the others. */
enum reads {
	READ_ALL,
	READ_HOT,       /* those not cold */
	READ_WRITTEN,   /* of those, the general registers named; eflags if named; cr8 after a store */
};

/* Did the instruction that @w describes change hot slot @i? */
static bool written(size_t i, const struct writes *w)
{
	const struct reg_slot *s = &P.slots[i];

	if (s->gpr >= 0)
		return (w->gprs >> s->gpr) & 1;
	/* cr8 (the TPR) changes with a store to the local APIC's page */
	return (int)i == P.flags_slot ? w->flags : w->stores;
}

/* Is slot @i read at all? QEMU must have it, and rip never is: TCG
 * brings it up to date at a block's start only, and the caller writes the
 * instruction's own address there. */
static bool readable(size_t i)
{
	return P.slots[i].handle && (int)i != P.pc_slot;
}

/* Slot @i's register into @block. */
static void read_slot(uint8_t *block, GByteArray *buf, size_t i)
{
	const struct reg_slot *s = &P.slots[i];
	int n;

	g_byte_array_set_size(buf, 0);
	n = qemu_plugin_read_register(s->handle, buf);
	if (n > 0)
		memcpy(block + s->offset, buf->data, (size_t)n < s->size ? (size_t)n : s->size);
}

/* The registers @which into @block. P.hot lists the readable slots that
 * are hot. */
static void read_regs(uint8_t *block, GByteArray *buf, enum reads which, const struct writes *w)
{
	if (which == READ_ALL) {
		for (size_t i = 0; i < P.nslots; i++)
			if (readable(i))
				read_slot(block, buf, i);
		return;
	}
	for (size_t k = 0; k < P.nhot; k++)
		if (which == READ_HOT || written(P.hot[k], w))
			read_slot(block, buf, P.hot[k]);
}

/* @len bytes of the vCPU's memory at @addr into @buf, all or nothing. */
static bool read_guest(uint64_t addr, size_t len, GByteArray *buf)
{
	g_byte_array_set_size(buf, 0);
	return qemu_plugin_read_memory_vaddr(addr, buf, len) && buf->len >= len;
}

/* The top slot of this CPU's IRQ stack when @sp is on it (0: not), read
 * through the per-CPU pointer kstep named. */
static uint64_t irq_stack_top(uint64_t sp, uint64_t gs_base, GByteArray *scratch)
{
	uint64_t tos;

	if (!P.irq_stack_ptr || !gs_base)
		return 0;
	if (!read_guest(gs_base + P.irq_stack_ptr, 8, scratch))
		return 0;
	memcpy(&tos, scratch->data, 8);
	return sp <= tos && tos - sp < KSTACK_ALIGN ? tos : 0;
}

/* On the IRQ stack: the stack it was entered from, from the pointer its
 * top slot keeps on, into @link_buf (channel.h). */
static void read_link(struct chan_hit *hit, uint64_t tos, const GByteArray *window, GByteArray *link_buf)
{
	uint64_t link;

	if (!tos || hit->sp + hit->win_len < tos + 8)
		return;
	memcpy(&link, window->data + (tos - hit->sp), 8);
	if (link < KERNEL_HALF)
		return;
	hit->link_len = KSTACK_ALIGN - (uint32_t)(link & (KSTACK_ALIGN - 1));
	if (hit->link_len > LINK_MAX)
		hit->link_len = LINK_MAX;
	if (read_guest(link, hit->link_len, link_buf))
		hit->link = link;
	else
		hit->link_len = 0;
}

/* Captures of one hit: what its probe's program read. */
struct captures {
	uint8_t data[CHAN_MAX_OPS / 8 * (sizeof(struct chan_capture) + 16)];
	size_t len;
};

/* @len bytes at @addr into @c; false if they cannot be read. */
static bool capture(struct captures *c, uint64_t addr, uint32_t len, GByteArray *buf, uint64_t *value)
{
	struct chan_capture cap = { .addr = addr, .len = len };

	if (!len || len > CHAN_MAX_CAPTURE || c->len + sizeof(cap) + len > sizeof(c->data))
		return false;
	if (!read_guest(addr, len, buf))
		return false;
	memcpy(c->data + c->len, &cap, sizeof(cap));
	memcpy(c->data + c->len + sizeof(cap), buf->data, len);
	c->len += sizeof(cap) + len;
	if (value) {
		*value = 0;
		memcpy(value, buf->data, len < 8 ? len : 8);
	}
	return true;
}

/* The longest string read that stays on its page. */
static uint32_t on_page(uint64_t addr, int64_t want)
{
	uint64_t rest = 4096 - (addr & 4095);

	return want <= 0 ? 0 : (uint64_t)want < rest ? (uint32_t)want : (uint32_t)rest;
}

/* Run the @nops steps at @ops against the registers in @regs (the vCPU's
 * memory read as it stands); an expression whose load fails is skipped to
 * its end, as farg_eval's would fault there. Under table_lock. */
static void run_ops(const struct chan_op *ops, uint32_t nops, const uint8_t *regs, uint64_t gs_base,
		    struct captures *c, GByteArray *buf)
{
	uint64_t v = 0, kept = 0;
	bool failed = false;

	for (uint32_t i = 0; i < nops; i++) {
		const struct chan_op *op = &ops[i];
		bool ends = op->kind == CHAN_OP_READ || op->kind == CHAN_OP_STRING || op->kind == CHAN_OP_END;

		if (!failed) {
			switch (op->kind) {
			case CHAN_OP_REG:
				v = 0;
				if (op->imm >= 0 && (size_t)op->imm < P.nslots)
					memcpy(&v, regs + P.slots[op->imm].offset,
					       P.slots[op->imm].size < 8 ? P.slots[op->imm].size : 8);
				break;
			case CHAN_OP_PERCPU:
				v = gs_base + (uint64_t)op->imm;
				break;
			case CHAN_OP_CONST:
				v = (uint64_t)op->imm;
				break;
			case CHAN_OP_ADD:
				v += (uint64_t)op->imm;
				break;
			case CHAN_OP_LOAD:
				failed = !capture(c, v, 8, buf, &v);
				break;
			case CHAN_OP_MASK:
				v &= (uint64_t)op->imm;
				break;
			case CHAN_OP_KEEP:
				kept = v;
				break;
			case CHAN_OP_ADD_KEPT:
				v += kept;
				break;
			case CHAN_OP_READ:
				capture(c, v, op->imm > 0 && op->imm <= CHAN_MAX_CAPTURE ? (uint32_t)op->imm : 0, buf, NULL);
				break;
			case CHAN_OP_STRING:
				capture(c, v, on_page(v, op->imm), buf, NULL);
				break;
			}
		}
		if (ends) {
			failed = false;
			v = 0;
		}
	}
}

/* Under out_lock: send what the batch holds, tell kstep why reporting
 * stops (from the stack: nothing left to allocate), then close. */
static void give_up_locked(uint32_t reason)
{
	struct {
		struct chan_header h;
		struct chan_gone g;
	} msg = { { CHAN_GONE, sizeof(struct chan_gone) }, { reason, (uint32_t)P.hits } };

	flush_sent_locked();
	if (!P.dead && send(P.fd, &msg, sizeof(msg), MSG_NOSIGNAL) < 0)
		say("kstep-plugin: kstep's socket failed (%s)\n", strerror(errno));
	P.dead = true;
	shutdown(P.fd, SHUT_RDWR); /* kstep sees the plugin go while QEMU runs on */
}

/* The HIT or STEP into the batch (its parts: channel.h), under out_lock. */
static void append_hit_locked(uint32_t type, struct chan_hit *hit, const uint8_t *regs, const GByteArray *window,
			      const GByteArray *link, const struct captures *caps)
{
	size_t len = sizeof(*hit) + hit->regs_len + hit->win_len + hit->link_len + hit->caps_len;
	struct chan_header h = { type, (uint32_t)len };
	uint8_t *p = reserve_locked(sizeof(h) + len);

	if (!p) { /* no memory for a bigger batch: send this one, then room */
		flush_locked();
		p = reserve_locked(sizeof(h) + len);
	}
	if (!p) {
		give_up_locked(CHAN_GONE_NOMEM);
		qemu_plugin_outs("kstep-plugin: out of memory; reporting stops\n");
		return;
	}
	hit->seq = ++P.hits;
	memcpy(p, &h, sizeof(h));
	p += sizeof(h);
	memcpy(p, hit, sizeof(*hit));
	p += sizeof(*hit);
	memcpy(p, regs, hit->regs_len);
	p += hit->regs_len;
	memcpy(p, window->data, hit->win_len);
	p += hit->win_len;
	memcpy(p, link->data, hit->link_len);
	p += hit->link_len;
	memcpy(p, caps->data, caps->len);
	if (P.out_len >= FLUSH_BYTES || now_ns() - P.last_flush_ns >= FLUSH_AGE_NS)
		flush_locked();
}

/* ---- kstep step: every instruction of one vCPU from a hit on ---- */

/* An instruction as translated, for its STEPs: kstep decodes the code
 * the guest runs (patched as the kernel booted), not vmlinux's. */
struct step_insn {
	uint64_t pc;
	uint32_t len;
	uint8_t bytes[16];
	bool tb_first;                /* its block's first: where interrupts and exceptions land */
	bool gprs_only;
	bool listed;                  /* Capstone lists what it writes: */
	struct writes w;
};

static struct {
	uint64_t at, hits, seen;      /* chan_step_at's; seen: hits of @at so far */
	bool now;                     /* CHAN_STEP_NOW: no @at, a vCPU steps from here */
	uint32_t window;
	bool ask;                     /* CHAN_STEP_ASK: kstep says which hit (verdicts below) */
	int vcpu;                     /* the vCPU stepping, -1: none (yet) */
	uint64_t region;              /* its stack's 16 KiB region at the last STEP */
	uint64_t low;                 /* the lowest rsp sent on that stack */
	qemu_plugin_u64 stepping;     /* 1 in the stepping vCPU's slot */
	const struct step_insn *prev; /* the last STEP's instruction, NULL: none yet, ... */
	uint8_t last_regs[CHAN_MAX_REGS * 64]; /* ... and its register block */
	struct step_insn prev_kept;   /* prev's copy once a flush freed its chunk (on_flush) */
	bool until_return;            /* CHAN_STEP_UNTIL_RETURN: ... */
	uint64_t ret, entry_sp;       /* ... the return address and rsp at the first STEP */
} S = { .vcpu = -1 };

/* Hits of --at that ask kstep (CHAN_HIT_ASKS), one a vCPU at a time. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t came;          /* a verdict came, or kstep went */
	uint64_t asked[MAX_VCPUS];    /* the HIT's seq a vCPU waits on, 0: none */
	int answer[MAX_VCPUS];        /* its verdict: 1 step, 0 not, -1 none yet */
	bool gone;                    /* kstep's side of the channel closed */
} V = { .lock = PTHREAD_MUTEX_INITIALIZER, .came = PTHREAD_COND_INITIALIZER };

/* The head of STEP register block @regs (@len bytes) that differs from
 * the last STEP's: only it is sent (CHAN_HIT_REGS_HEAD). Under table_lock. */
static uint32_t regs_head(const uint8_t *regs, uint32_t len)
{
	while (len >= 8 && !memcmp(regs + len - 8, S.last_regs + len - 8, 8))
		len -= 8;
	while (len && regs[len - 1] == S.last_regs[len - 1])
		len--;
	return len;
}

#define STEP_INSNS_CHUNK 4096

/* The step_insns of the blocks translated since the last flush of
 * QEMU's translated code, newest chunk first. Under table_lock. */
static struct step_insn_chunk {
	struct step_insn_chunk *next;
	size_t used;
	struct step_insn insns[STEP_INSNS_CHUNK];
} *step_insns;

/* One-byte opcodes that change only general registers, rip, eflags and
 * memory (far, segment, x87, I/O, interrupt and halt forms are out). */
static bool one_byte_gprs_only(uint8_t op, uint8_t modrm)
{
	unsigned int reg = (modrm >> 3) & 7;

	if (op < 0x40)
		return (op & 7) < 6;  /* the ALU forms; not push/pop of segments */
	if ((op >= 0x50 && op <= 0x5f) || (op >= 0x68 && op <= 0x6b) || (op >= 0x70 && op <= 0x8d) ||
	    (op >= 0x90 && op <= 0xa9 && op != 0x9a && op != 0x9b) || (op >= 0xaa && op <= 0xc3) ||
	    (op >= 0xc6 && op <= 0xc9) || (op >= 0xd0 && op <= 0xd3) || (op >= 0xe0 && op <= 0xe3) ||
	    op == 0xe8 || op == 0xe9 || op == 0xeb || op == 0xf5 || op == 0xf6 || op == 0xf7 ||
	    (op >= 0xf8 && op <= 0xfd))
		return true;
	if (op == 0x63 || (op == 0x8f && reg == 0) || (op == 0xfe && reg < 2))
		return true;
	return op == 0xff && reg != 3 && reg != 5 && reg != 7;
}

/* The same for 0x0f @op (then @modrm): cmov, jcc, setcc, the bit,
 * shift, exchange and extension forms, hint nops, fences, cpuid, rdtsc. */
static bool two_byte_gprs_only(uint8_t op, uint8_t modrm)
{
	unsigned int reg = (modrm >> 3) & 7, mod = modrm >> 6;

	if ((op >= 0x18 && op <= 0x1f) || (op >= 0x40 && op <= 0x4f) || (op >= 0x80 && op <= 0x9f) ||
	    (op >= 0xb0 && op <= 0xb1) || (op >= 0xb6 && op <= 0xbf && op != 0xb9 && op != 0xba) ||
	    (op >= 0xc8 && op <= 0xcf))
		return true;
	switch (op) {
	case 0x0b: case 0x0d: case 0x31: case 0xa2: case 0xa3: case 0xa4: case 0xa5: case 0xab: case 0xac:
	case 0xad: case 0xaf: case 0xb3: case 0xbb: case 0xc0: case 0xc1:
		return true;
	case 0xba:
		return reg >= 4;
	case 0xc7:
		return reg == 1 && mod != 3;
	case 0xae:
		return mod == 3 && reg >= 5; /* lfence, mfence, sfence */
	default:
		return false;
	}
}

/* Whether the instruction in @b (@len bytes) changes no register but the
 * general ones, rip and eflags: the next STEP then reads only those and
 * keeps the rest (segments, bases, control, x87, SSE) from this one. What
 * the list does not know counts as changing them all. */
static bool gprs_only(const uint8_t *b, size_t len)
{
	size_t i = 0;

	while (i < len && (b[i] == 0x66 || b[i] == 0x67 || b[i] == 0xf0 || b[i] == 0xf2 || b[i] == 0xf3 ||
			   b[i] == 0x2e || b[i] == 0x36 || b[i] == 0x3e || b[i] == 0x26 || b[i] == 0x64 || b[i] == 0x65))
		i++;
	if (i < len && (b[i] & 0xf0) == 0x40)
		i++;
	if (i >= len)
		return false;
	if (b[i] != 0x0f)
		return one_byte_gprs_only(b[i], i + 1 < len ? b[i + 1] : 0xff);
	return i + 1 < len && two_byte_gprs_only(b[i + 1], i + 2 < len ? b[i + 2] : 0xff);
}

/* A new step_insn for @insn (it lives until QEMU flushes its translated
 * code, on_flush), under table_lock; NULL when out of memory. */
static struct step_insn *new_step_insn(const struct qemu_plugin_insn *insn)
{
	struct step_insn *si;

	if (!step_insns || step_insns->used == STEP_INSNS_CHUNK) {
		struct step_insn_chunk *chunk = malloc(sizeof(*chunk));

		if (!chunk)
			return NULL;
		chunk->next = step_insns;
		chunk->used = 0;
		step_insns = chunk;
	}
	si = &step_insns->insns[step_insns->used++];
	si->pc = qemu_plugin_insn_vaddr(insn);
	si->len = (uint32_t)qemu_plugin_insn_data(insn, si->bytes, sizeof(si->bytes));
	si->gprs_only = gprs_only(si->bytes, si->len);
	si->listed = si->gprs_only && P.dis &&
		     disasm_gprs_written(P.dis, si->bytes, si->len, si->pc, &si->w.gprs, &si->w.flags);
	si->w.stores = si->listed && disasm_writes_memory(P.dis, si->bytes, si->len, si->pc);
	si->tb_first = false;
	return si;
}

/* The stack bytes a STEP at @sp carries: 0 for the whole stack (a stack
 * kstep has not seen: the first step, or a switch to another); else
 * the window, and down from the lowest rsp before (channel.h). Under
 * table_lock. */
static uint32_t step_window(uint64_t sp)
{
	uint64_t want = S.window, end = (sp | (KSTACK_ALIGN - 1)) + 1;

	if (sp / KSTACK_ALIGN != S.region) {
		S.region = sp / KSTACK_ALIGN;
		S.low = sp;
		return 0;
	}
	if (sp < S.low) {
		if (S.low - sp > want)
			want = S.low - sp;
		S.low = sp;
	}
	return (uint32_t)(want < end - sp ? want : end - sp);
}

/* ---- at a probe or a step: registers and stack into a HIT or STEP ---- */

/* The instruction's own bytes, as a STEP's one capture. */
static void capture_code(struct captures *c, const struct step_insn *si)
{
	struct chan_capture cap = { .addr = si->pc, .len = si->len };

	memcpy(c->data, &cap, sizeof(cap));
	memcpy(c->data + sizeof(cap), si->bytes, si->len);
	c->len = sizeof(cap) + si->len;
}

/* At a hit of probe @p with CHAN_OP_AT_RETURN, on @vcpu with rsp @sp (its
 * window in @window, @win_len bytes): watch for the call's return. Under
 * table_lock. */
static void watch_return(unsigned int vcpu, const struct probe *p, uint64_t sp, const GByteArray *window,
			 uint32_t win_len)
{
	struct pending_return *v;
	uint64_t ret;

	if (vcpu >= MAX_VCPUS || win_len < 8)
		return; /* no return address to wait at */
	v = P.pending[vcpu];
	memcpy(&ret, window->data, 8);
	if (P.npending[vcpu] == PENDING_RETURNS) /* the oldest ended some other way */
		memmove(&v[0], &v[1], --P.npending[vcpu] * sizeof(*v));
	v[P.npending[vcpu]++] = (struct pending_return){ ret, sp + 8, (uint32_t)(p->ops - P.ops) + p->at_return + 1,
							 p->nops - p->at_return - 1 };
	qemu_plugin_u64_set(P.watching, vcpu, P.npending[vcpu]);
}

/* A HIT's captures: its probe's program up to CHAN_OP_AT_RETURN, or at a
 * return (@back) the program's rest. Under table_lock. */
static void run_program(unsigned int vcpu, struct chan_hit *hit, const struct pending_return *back,
			const uint8_t *regs, uint64_t gs_base, const GByteArray *window, struct captures *caps,
			GByteArray *scratch)
{
	const struct probe *probe;

	if (back) {
		run_ops(P.ops + back->first, back->nops, regs, gs_base, caps, scratch);
		hit->flags |= CHAN_HIT_RETURN;
	} else if ((probe = find_probe(hit->pc))) {
		run_ops(probe->ops, probe->at_return, regs, gs_base, caps, scratch);
		if (probe->at_return < probe->nops)
			watch_return(vcpu, probe, hit->sp, window, hit->win_len);
	}
}

/* Every register into @regs (@len bytes); what QEMU does not have is 0. */
static void read_whole(uint8_t *regs, uint32_t len, GByteArray *buf)
{
	memset(regs, 0, len);
	read_regs(regs, buf, READ_ALL, NULL);
}

/* The 8-byte register in slot @slot of @block. */
static uint64_t slot_u64(const uint8_t *block, int slot)
{
	uint64_t v;

	memcpy(&v, block + P.slots[slot].offset, 8);
	return v;
}

/* Did the last STEP's instruction run to its end, and nothing after it
 * before this one? An interrupt's or exception's entry moves rsp where
 * the instruction's own effect does not (it pushes a frame, or switches
 * stacks), so rsp in @regs where the last one leaves it says so. Under
 * table_lock. */
static bool ran_on(const uint8_t *regs)
{
	const struct step_insn *prev = S.prev;
	uint64_t sp, want;

	if (!P.sp_bit)
		return false;
	sp = slot_u64(S.last_regs, P.sp_slot);
	if (prev->listed && !(prev->w.gprs & P.sp_bit))
		want = sp; /* Capstone lists no write to rsp (a jump, most often) */
	else if (!P.dis || P.bp_slot < 0 ||
		 !disasm_next_sp(P.dis, prev->bytes, prev->len, prev->pc, sp, slot_u64(S.last_regs, P.bp_slot), &want))
		return false;
	return want == slot_u64(regs, P.sp_slot);
}

/* eflags' RF is cleared as an instruction completes; TCG clears it at a
 * block's end only (as a single step, the gdbstub's steps show it so). */
static void clear_resume_flag(uint8_t *eflags)
{
	eflags[2] &= (uint8_t)~(EFLAGS_RF >> 16);
}

/* A STEP's registers into @regs (@len bytes). After an instruction of
 * only integer code, the cold ones are the last STEP's, and of the rest
 * only those it writes are read when Capstone lists them (about 2
 * registers instead of 18). That holds if nothing came between the two
 * instructions: within a block nothing can; at a block's start, where
 * interrupts and exceptions land, rsp tells (ran_on). Under table_lock. */
static void step_regs(uint8_t *regs, uint32_t len, const struct step_insn *si, GByteArray *buf)
{
	const struct step_insn *prev = S.prev;
	struct writes w;

	if (!prev || !prev->gprs_only) {
		read_whole(regs, len, buf);
		return;
	}
	memcpy(regs, S.last_regs, len);
	w = prev->w;
	if (si->tb_first) /* for ran_on */
		w.gprs |= P.sp_bit;
	read_regs(regs, buf, prev->listed ? READ_WRITTEN : READ_HOT, &w);
	if (si->tb_first && !ran_on(regs))
		read_regs(regs, buf, READ_ALL, NULL);
	else if (P.flags_slot >= 0)
		clear_resume_flag(regs + P.slots[P.flags_slot].offset);
}

/* Has the STEP at @pc, @sp come back to --at's caller (kstep step
 * --until-return ends there)? Its own stack, above the entry's frame.
 * Under table_lock. */
static bool returned(uint64_t pc, uint64_t sp)
{
	return S.until_return && S.ret && pc == S.ret && sp > S.entry_sp &&
	       (sp - 1) / KSTACK_ALIGN == S.entry_sp / KSTACK_ALIGN;
}

/* The registers and stack of the instruction at @pc, about to execute on
 * @vcpu, into the batch: for a HIT with what the probe's program
 * captures (or, at a return, @back's), for a STEP (@si) with the
 * instruction's bytes. */
static void report(unsigned int vcpu, uint64_t pc, uint32_t type, const struct step_insn *si,
		   const struct pending_return *back)
{
	static __thread GByteArray *buf, *link_buf, *scratch;
	static __thread struct captures caps;
	struct chan_hit hit = { .vcpu = vcpu, .pc = pc, .icount = P.count ? qemu_plugin_u64_get(P.icount, vcpu) : 0 };
	uint64_t gs_base = 0, tos = 0;
	uint32_t regs_flag = 0, head = 0;
	bool asks, first = false, last = false, urgent = false;

	if (!buf) {
		buf = g_byte_array_new();
		link_buf = g_byte_array_new();
		scratch = g_byte_array_new();
	}
	pthread_mutex_lock(&P.table_lock);
	asks = type == CHAN_HIT && !back && S.ask && S.vcpu < 0 && pc == S.at && vcpu < MAX_VCPUS;
	hit.regs_len = P.regs_len;
	uint8_t regs[hit.regs_len ? hit.regs_len : 1];

	if (type == CHAN_STEP)
		step_regs(regs, hit.regs_len, si, buf);
	else
		read_whole(regs, hit.regs_len, buf);
	if (P.pc_slot >= 0)
		memcpy(regs + P.slots[P.pc_slot].offset, &pc, 8);
	if (P.sp_slot >= 0)
		memcpy(&hit.sp, regs + P.slots[P.sp_slot].offset, 8);
	if (P.gs_slot >= 0)
		memcpy(&gs_base, regs + P.slots[P.gs_slot].offset, 8);
	if (type == CHAN_STEP) {
		hit.win_len = step_window(hit.sp);
		if (S.prev) {
			regs_flag = CHAN_HIT_REGS_HEAD;
			head = regs_head(regs, hit.regs_len);
		}
		/* The window's first and last STEPs go out at once: kstep
		 * starts on the first while the next come, and ends on the
		 * last without waiting for a batch to fill. */
		first = !S.prev;
		last = returned(pc, hit.sp);
		urgent = first || last;
		if (first)
			S.entry_sp = hit.sp;
		if (last) /* kstep ends here: the vCPU runs on unwatched */
			qemu_plugin_u64_set(S.stepping, vcpu, 0);
		S.prev = si;
		memcpy(S.last_regs, regs, hit.regs_len);
	}
	if (!hit.win_len) {
		/* To the stack's end: the IRQ stack's top slot, or a task
		 * stack's 16 KiB boundary. */
		tos = irq_stack_top(hit.sp, gs_base, link_buf);
		hit.win_len = tos ? (uint32_t)(tos + 8 - hit.sp) : KSTACK_ALIGN - (uint32_t)(hit.sp & (KSTACK_ALIGN - 1));
		hit.flags = CHAN_HIT_WHOLE_STACK;
		if (type == CHAN_HIT && hit.win_len > P.window) {
			hit.win_len = P.window;
			hit.flags = 0;
		}
	}
	pthread_mutex_unlock(&P.table_lock);
	if (hit.win_len && !read_guest(hit.sp, hit.win_len, buf)) {
		/* Not all there (a user stack's end): up to the page's end. */
		hit.win_len = type == CHAN_STEP ? on_page(hit.sp, S.window) : 0;
		hit.flags = 0;
		if (hit.win_len && !read_guest(hit.sp, hit.win_len, buf))
			hit.win_len = 0;
	}
	if (first && hit.win_len >= 8) { /* at --at's entry: the return address on top */
		pthread_mutex_lock(&P.table_lock);
		memcpy(&S.ret, buf->data, 8);
		pthread_mutex_unlock(&P.table_lock);
	}
	read_link(&hit, tos, buf, link_buf);
	caps.len = 0;
	if (si)
		capture_code(&caps, si);
	if (type == CHAN_HIT) {
		pthread_mutex_lock(&P.table_lock);
		run_program(vcpu, &hit, back, regs, gs_base, buf, &caps, scratch);
		pthread_mutex_unlock(&P.table_lock);
	}
	hit.caps_len = (uint32_t)caps.len;
	if (regs_flag) { /* sent from here on: the head only */
		hit.regs_len = head;
		hit.flags |= regs_flag;
	}

	pthread_mutex_lock(&P.out_lock);
	if (asks) { /* before the HIT can go (append may send it): its seq */
		hit.flags |= CHAN_HIT_ASKS;
		pthread_mutex_lock(&V.lock);
		V.asked[vcpu] = P.dead ? 0 : P.hits + 1;
		V.answer[vcpu] = -1;
		pthread_mutex_unlock(&V.lock);
	}
	if (!P.dead)
		append_hit_locked(type, &hit, regs, buf, link_buf, &caps);
	if (asks || urgent) /* sent now: the vCPU waits for the answer (on_step_at), or kstep does */
		flush_locked();
	pthread_mutex_unlock(&P.out_lock);
}

static void on_probe(unsigned int vcpu, void *udata)
{
	report(vcpu, (uint64_t)(uintptr_t)udata, CHAN_HIT, NULL, NULL);
}

/* A block starts at @udata on @vcpu, which watches for returns: one of
 * them, if rsp is where that call's return leaves it. */
static void on_block(unsigned int vcpu, void *udata)
{
	static __thread GByteArray *buf;
	uint64_t pc = (uint64_t)(uintptr_t)udata, sp = 0;
	struct pending_return back = { 0 }, *v;
	bool found = false;

	if (!buf)
		buf = g_byte_array_new();
	pthread_mutex_lock(&P.table_lock);
	v = vcpu < MAX_VCPUS ? P.pending[vcpu] : NULL;
	if (v && P.sp_slot >= 0 && P.slots[P.sp_slot].handle) {
		g_byte_array_set_size(buf, 0);
		if (qemu_plugin_read_register(P.slots[P.sp_slot].handle, buf) >= 8)
			memcpy(&sp, buf->data, 8);
	}
	for (uint32_t i = v ? P.npending[vcpu] : 0; i-- > 0 && !found;) {
		/* The same stack, and the call's frame or one above it. */
		if (v[i].ret != pc || (v[i].sp - 1) / KSTACK_ALIGN != sp / KSTACK_ALIGN || v[i].sp > sp)
			continue;
		back = v[i];
		found = true;
		memmove(&v[i], &v[i + 1], (--P.npending[vcpu] - i) * sizeof(*v));
		qemu_plugin_u64_set(P.watching, vcpu, P.npending[vcpu]);
	}
	pthread_mutex_unlock(&P.table_lock);
	if (found && back.sp == sp)
		report(vcpu, pc, CHAN_HIT, NULL, &back);
}

/* kstep's verdict on the HIT @vcpu just sent at --at, if it asked
 * (CHAN_STEP_ASK): the vCPU waits for it. False: no stepping from here
 * (the answer, or no HIT that asks, or kstep gone). */
static bool verdict(unsigned int vcpu)
{
	bool step;

	if (vcpu >= MAX_VCPUS)
		return false;
	pthread_mutex_lock(&V.lock);
	while (V.asked[vcpu] && V.answer[vcpu] < 0 && !V.gone)
		pthread_cond_wait(&V.came, &V.lock);
	step = V.asked[vcpu] && V.answer[vcpu] == 1;
	V.asked[vcpu] = 0;
	pthread_mutex_unlock(&V.lock);
	return step;
}

/* STEP_VERDICT (channel.h): to the vCPU waiting on that HIT. */
static void set_verdict(const uint8_t *body, uint32_t len)
{
	struct chan_step_verdict sv;

	if (len != sizeof(sv))
		return;
	memcpy(&sv, body, sizeof(sv));
	pthread_mutex_lock(&V.lock);
	for (unsigned int v = 0; v < MAX_VCPUS; v++)
		if (V.asked[v] && V.asked[v] == sv.seq)
			V.answer[v] = sv.step == 1;
	pthread_cond_broadcast(&V.came);
	pthread_mutex_unlock(&V.lock);
}

/* @vcpu's STEPs from its next instruction on. Under table_lock. */
static void start_stepping_locked(unsigned int vcpu)
{
	S.vcpu = (int)vcpu;
	S.region = UINT64_MAX;
	S.prev = NULL;
	qemu_plugin_u64_set(S.stepping, vcpu, 1);
}

/* At --at's instruction: the hit that starts stepping turns its vCPU's
 * slot on, and every instruction's conditional callback reports it from
 * this one on (it is registered after this callback). */
static void on_step_at(unsigned int vcpu, void *udata)
{
	bool start, ask;

	(void)udata;
	pthread_mutex_lock(&P.table_lock);
	ask = S.vcpu < 0 && S.at && S.ask;
	start = S.vcpu < 0 && S.at && !S.ask && ++S.seen == S.hits;
	pthread_mutex_unlock(&P.table_lock);
	if (ask)
		start = verdict(vcpu);
	if (!start)
		return;
	pthread_mutex_lock(&P.table_lock);
	if (S.vcpu < 0 && S.at)
		start_stepping_locked(vcpu);
	pthread_mutex_unlock(&P.table_lock);
}

static void on_step(unsigned int vcpu, void *udata)
{
	const struct step_insn *si = udata;

	report(vcpu, si->pc, CHAN_STEP, si, NULL);
}

/* The callbacks for instruction @i of its block: a probe's, --at's and a
 * step's. Under table_lock. */
static void instrument(struct qemu_plugin_insn *insn, size_t i)
{
	uint64_t pc = qemu_plugin_insn_vaddr(insn);
	struct step_insn *si;

	/* A return lands where a block starts (a ret jumps there). */
	if (i == 0 && P.watch_returns)
		qemu_plugin_register_vcpu_insn_exec_cond_cb(insn, on_block, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_COND_NE,
							    P.watching, 0, (void *)(uintptr_t)pc);
	if (find_probe(pc))
		qemu_plugin_register_vcpu_insn_exec_cb(insn, on_probe, QEMU_PLUGIN_CB_R_REGS, (void *)(uintptr_t)pc);
	if (!(S.at || S.now) || !(si = new_step_insn(insn)))
		return;
	si->tb_first = i == 0;
	if (pc == S.at)
		qemu_plugin_register_vcpu_insn_exec_cb(insn, on_step_at, QEMU_PLUGIN_CB_NO_REGS, NULL);
	qemu_plugin_register_vcpu_insn_exec_cond_cb(insn, on_step, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_COND_NE,
						    S.stepping, 0, si);
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb);

	(void)id;
	pthread_mutex_lock(&P.table_lock);
	for (size_t i = 0; (P.nprobes || S.at || S.now || P.count) && i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);

		instrument(insn, i);
		/* After the callbacks (QEMU runs an instruction's in the order
		 * they were registered): a HIT's count leaves its own out. */
		if (P.count)
			qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(insn, QEMU_PLUGIN_INLINE_ADD_U64, P.icount, 1);
	}
	pthread_mutex_unlock(&P.table_lock);
}

/* QEMU threw away every translated block, and with them the callbacks
 * that point at step_insns: free them all. QEMU calls this with no vCPU
 * running (an exclusive section), so none is inside a callback. The last
 * STEP's instruction is kept as a copy: the next STEP compares with it. */
static void on_flush(qemu_plugin_id_t id)
{
	(void)id;
	pthread_mutex_lock(&P.table_lock);
	if (S.prev) {
		S.prev_kept = *S.prev;
		S.prev = &S.prev_kept;
	}
	while (step_insns) {
		struct step_insn_chunk *next = step_insns->next;

		free(step_insns);
		step_insns = next;
	}
	pthread_mutex_unlock(&P.table_lock);
}

static void on_idle(qemu_plugin_id_t id, unsigned int vcpu)
{
	(void)id;
	(void)vcpu;
	pthread_mutex_lock(&P.out_lock);
	if (P.out_len)
		flush_locked();
	pthread_mutex_unlock(&P.out_lock);
}

static void on_qemu_exit(qemu_plugin_id_t id, void *udata)
{
	(void)id;
	(void)udata;
	send_synced(false);
}

/* The registers QEMU offers, read once in the first vCPU's context. */
static void on_vcpu_init(qemu_plugin_id_t id, unsigned int vcpu)
{
	GArray *regs;

	(void)id;
	if (vcpu)
		return;
	regs = qemu_plugin_get_registers();
	pthread_mutex_lock(&P.table_lock);
	P.qregs = calloc(regs->len ? regs->len : 1, sizeof(*P.qregs));
	for (guint i = 0; P.qregs && i < regs->len; i++) {
		qemu_plugin_reg_descriptor *d = &g_array_index(regs, qemu_plugin_reg_descriptor, i);

		P.qregs[i].handle = d->handle;
		snprintf(P.qregs[i].name, sizeof(P.qregs[i].name), "%s", d->name);
	}
	P.nqregs = P.qregs ? regs->len : 0;
	pthread_mutex_unlock(&P.table_lock);
	g_array_free(regs, true);
}

/* ---- control: what kstep asks ---- */

static bool read_full(void *out, size_t len)
{
	uint8_t *p = out;

	while (len) {
		struct pollfd pfd = { .fd = P.fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			return false;
		n = recv(P.fd, p, len, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return false;
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		}
	}
	return true;
}

/* The registers that integer code changes (cr8 too: a store to the
 * local APIC's TPR changes it); the others are cold. */
static bool is_hot_register(const char *name)
{
	static const char *const hot[] = { "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9",
					   "r10", "r11", "r12", "r13", "r14", "r15", "rip", "eflags", "cr8" };

	for (size_t i = 0; i < sizeof(hot) / sizeof(hot[0]); i++)
		if (!strcmp(name, hot[i]))
			return true;
	return false;
}

static void set_regs(const uint8_t *body, uint32_t len)
{
	uint32_t n, off = 0;

	if (len < 4 || (memcpy(&n, body, 4), n > CHAN_MAX_REGS) || len != 4 + n * sizeof(struct chan_reg))
		return;
	pthread_mutex_lock(&P.table_lock);
	P.regs_missing = 0;
	S.prev = NULL;
	P.sp_slot = P.gs_slot = P.pc_slot = P.bp_slot = P.flags_slot = -1;
	for (uint32_t i = 0; i < n; i++) {
		struct chan_reg r;

		memcpy(&r, body + 4 + i * sizeof(r), sizeof(r));
		r.name[CHAN_REG_NAME - 1] = '\0';
		P.slots[i] = (struct reg_slot){ .offset = off, .size = r.size > 64 ? 64 : r.size };
		for (size_t k = 0; k < P.nqregs; k++)
			if (!strcmp(P.qregs[k].name, r.name))
				P.slots[i].handle = P.qregs[k].handle;
		P.regs_missing += !P.slots[i].handle;
		P.slots[i].cold = !is_hot_register(r.name);
		P.slots[i].gpr = -1;
		for (unsigned int k = 0; r.size == 8 && disasm_gpr_name(k); k++)
			if (!strcmp(r.name, disasm_gpr_name(k)))
				P.slots[i].gpr = (int)k;
		if (!strcmp(r.name, "rbp") && P.slots[i].size == 8)
			P.bp_slot = (int)i;
		if (!strcmp(r.name, "eflags"))
			P.flags_slot = (int)i;
		if (!strcmp(r.name, "rsp") && P.slots[i].size == 8)
			P.sp_slot = (int)i;
		if (!strcmp(r.name, "gs_base") && P.slots[i].size == 8)
			P.gs_slot = (int)i;
		if (!strcmp(r.name, "rip") && P.slots[i].size == 8)
			P.pc_slot = (int)i;
		off += P.slots[i].size;
	}
	P.nslots = n;
	P.regs_len = off;
	P.sp_bit =
		P.sp_slot >= 0 && P.slots[P.sp_slot].gpr >= 0 ? (uint16_t)(1u << P.slots[P.sp_slot].gpr) : 0;
	P.nhot = 0;
	for (uint32_t i = 0; i < n; i++)
		if (!P.slots[i].cold && readable(i))
			P.hot[P.nhot++] = i;
	pthread_mutex_unlock(&P.table_lock);
}

/* PROBES (channel.h): addresses, then each one's program; anything that
 * does not add up leaves the table as it was. */
static void set_probes(const uint8_t *body, uint32_t len)
{
	struct chan_probes cp;
	struct probe *probes;
	struct chan_op *ops;
	size_t off, nops = 0;
	bool watch = false;

	if (len < sizeof(cp))
		return;
	memcpy(&cp, body, sizeof(cp));
	if (cp.n > CHAN_MAX_PROBES || len < sizeof(cp) + (size_t)cp.n * 8 || cp.window > CHAN_MAX_WINDOW)
		return;
	probes = calloc(cp.n ? cp.n : 1, sizeof(*probes));
	ops = calloc(CHAN_MAX_OPS, sizeof(*ops));
	off = sizeof(cp) + (size_t)cp.n * 8;
	for (uint32_t i = 0; probes && ops && i < cp.n; i++) {
		uint32_t n;

		memcpy(&probes[i].addr, body + sizeof(cp) + i * 8u, 8);
		if (off + 4 > len || (memcpy(&n, body + off, 4), n > CHAN_MAX_OPS - nops) ||
		    off + 4 + (size_t)n * sizeof(*ops) > len)
			goto bad;
		memcpy(ops + nops, body + off + 4, (size_t)n * sizeof(*ops));
		probes[i].ops = ops + nops;
		probes[i].nops = n;
		probes[i].at_return = n;
		for (uint32_t k = 0; k < n; k++)
			if (ops[nops + k].kind == CHAN_OP_AT_RETURN && probes[i].at_return == n)
				probes[i].at_return = k;
		watch |= probes[i].at_return < n;
		nops += n;
		off += 4 + (size_t)n * sizeof(*ops);
	}
	if (!probes || !ops || off != len)
		goto bad;
	qsort(probes, cp.n, sizeof(*probes), cmp_probe);
	pthread_mutex_lock(&P.table_lock);
	free(P.probes);
	free(P.ops);
	P.probes = probes;
	P.ops = ops;
	P.nprobes = cp.n;
	P.window = cp.window;
	P.irq_stack_ptr = cp.irq_stack_ptr;
	/* Sent while the guest stands (its blocks are translated anew): the
	 * returns watched for are the old programs'. */
	P.watch_returns = watch;
	for (unsigned int v = 0; v < MAX_VCPUS; v++)
		if (P.npending[v]) {
			P.npending[v] = 0;
			qemu_plugin_u64_set(P.watching, v, 0);
		}
	pthread_mutex_unlock(&P.table_lock);
	return;
bad:
	free(probes);
	free(ops);
}

/* STEP_AT (channel.h): arm stepping, or (at 0) turn it off. */
static void set_step_at(const uint8_t *body, uint32_t len)
{
	struct chan_step_at sa;

	if (len != sizeof(sa))
		return;
	memcpy(&sa, body, sizeof(sa));
	if (sa.window > CHAN_MAX_WINDOW || ((sa.flags & CHAN_STEP_NOW) && (sa.at || sa.hits >= MAX_VCPUS)))
		return;
	if (sa.at || (sa.flags & CHAN_STEP_NOW)) {
		if (P.dis) /* the code the steps reach is translated anew */
			disasm_populate(P.dis);
		touch_batch();
	}
	pthread_mutex_lock(&P.table_lock);
	if (S.vcpu >= 0)
		qemu_plugin_u64_set(S.stepping, (unsigned int)S.vcpu, 0);
	S.at = sa.at;
	S.now = sa.flags & CHAN_STEP_NOW;
	S.hits = sa.hits ? sa.hits : 1;
	S.ask = sa.flags & CHAN_STEP_ASK;
	S.until_return = sa.flags & CHAN_STEP_UNTIL_RETURN;
	S.ret = 0;
	S.window = sa.window;
	S.seen = 0;
	S.vcpu = -1;
	if (S.now)
		start_stepping_locked((unsigned int)sa.hits);
	pthread_mutex_unlock(&P.table_lock);
}

static void *control(void *arg)
{
	uint8_t *body = malloc(CHAN_MAX_BODY);

	(void)arg;
	while (body) {
		struct chan_header h;

		if (!read_full(&h, sizeof(h)) || h.len > CHAN_MAX_BODY || !read_full(body, h.len))
			break;
		if (h.type == CHAN_REGS)
			set_regs(body, h.len);
		else if (h.type == CHAN_PROBES)
			set_probes(body, h.len);
		else if (h.type == CHAN_STEP_AT)
			set_step_at(body, h.len);
		else if (h.type == CHAN_STEP_VERDICT)
			set_verdict(body, h.len);
		if (chan_answered(h.type))
			send_synced(true);
	}
	free(body);
	pthread_mutex_lock(&V.lock); /* no verdict comes any more */
	V.gone = true;
	pthread_cond_broadcast(&V.came);
	pthread_mutex_unlock(&V.lock);
	return NULL;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* Room for batches in flight while kstep works through one: as much
	 * as the host allows (net.core.wmem_max), best effort. */
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ SNDBUF_BYTES }, sizeof(int));
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

KSTEP_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
	const char *sock = NULL;
	struct chan_hello hello;
	pthread_t thread;

	for (int i = 0; i < argc; i++)
		if (!strncmp(argv[i], "sock=", 5))
			sock = argv[i] + 5;
		else if (!strcmp(argv[i], "icount=on"))
			P.count = true;
	if (!sock || !info->system_emulation) {
		qemu_plugin_outs("kstep-plugin: wants sock=PATH (kstep's socket) and a system emulator\n");
		return -1;
	}
	P.fd = connect_to(sock);
	if (P.fd < 0) {
		say("kstep-plugin: cannot connect to kstep at %s\n", sock);
		return -1;
	}
	if (pthread_create(&thread, NULL, sender, NULL)) {
		qemu_plugin_outs("kstep-plugin: cannot start its sending thread\n");
		return -1;
	}
	pthread_detach(thread);
	hello = (struct chan_hello){ CHAN_PROTOCOL, (uint32_t)info->version.cur, (uint32_t)info->version.min,
				     (uint32_t)info->system.smp_vcpus };
	pthread_mutex_lock(&P.out_lock);
	append_locked(CHAN_HELLO, &hello, sizeof(hello));
	flush_locked();
	pthread_mutex_unlock(&P.out_lock);
	/* Scoreboards of one uint64_t a vCPU each (QEMU's header does this in a macro),
	 * before the control thread can touch them. */
	S.stepping = (qemu_plugin_u64){ .score = qemu_plugin_scoreboard_new(sizeof(uint64_t)), .offset = 0 };
	if (P.count)
		P.icount = (qemu_plugin_u64){ .score = qemu_plugin_scoreboard_new(sizeof(uint64_t)), .offset = 0 };
	P.watching = (qemu_plugin_u64){ .score = qemu_plugin_scoreboard_new(sizeof(uint64_t)), .offset = 0 };
	if (pthread_create(&thread, NULL, control, NULL)) {
		qemu_plugin_outs("kstep-plugin: cannot start its control thread\n");
		return -1;
	}
	pthread_detach(thread);
	if (disasm_open(&P.dis))
		P.dis = NULL; /* steps then read all their registers */
	qemu_plugin_register_vcpu_init_cb(id, on_vcpu_init);
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
	qemu_plugin_register_vcpu_idle_cb(id, on_idle);
	qemu_plugin_register_flush_cb(id, on_flush);
	qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
	return 0;
}
