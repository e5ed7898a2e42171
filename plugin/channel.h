/* SPDX-License-Identifier: MIT */
/*
 * channel: what kstep and its QEMU plugin (plugin/kstep_plugin.c) say to
 * each other over the plugin's unix socket, which kstep listens on in its
 * private 0700 run directory and the plugin connects to as QEMU starts.
 * Every message is a header and @len bytes of body, little-endian (both
 * ends run on the same x86-64 host). Neither end trusts the other's
 * lengths: a message over CHAN_MAX_BODY ends the channel.
 *
 *   plugin -> kstep  HELLO   once, at connect: the plugin API QEMU offers
 *   kstep -> plugin  REGS    the register block to capture, in the order
 *                            and sizes of the gdbstub's 'g' reply
 *   kstep -> plugin  PROBES  the addresses to report and the stack window
 *                            (sent while the guest is stopped at a
 *                            gdbstub stop, which flushes translated code,
 *                            so every probe is seen from the next
 *                            instruction on); answered by SYNCED
 *   kstep -> plugin  SYNC    flush what is buffered; answered by SYNCED
 *   kstep -> plugin  STEP_AT kstep step: from the K-th hit of an
 *                            instruction on, every instruction of the vCPU
 *                            that hit it (sent while the guest is stopped,
 *                            as PROBES is); answered by SYNCED
 *   plugin -> kstep  HIT     a probe's instruction is about to execute:
 *                            vCPU, pc, registers, stack window; or a
 *                            probed call returned (CHAN_OP_AT_RETURN)
 *   plugin -> kstep  STEP    one stepped instruction, laid out as a HIT
 *   plugin -> kstep  SYNCED  hits so far, and how often a vCPU waited
 *                            for kstep to read (nothing is ever dropped),
 *                            and how many of kstep's messages it has
 *                            answered: kstep waits for the one that
 *                            counts its last message; one more comes as
 *                            QEMU exits
 */
#ifndef KSTEP_CHANNEL_H
#define KSTEP_CHANNEL_H

#include <stdbool.h>
#include <stdint.h>

#define CHAN_PROTOCOL 7
#define CHAN_MAX_BODY (1u << 20)
#define CHAN_REG_NAME 24
#define CHAN_MAX_REGS 256
#define CHAN_MAX_PROBES 65536
/* Stack bytes a HIT carries at most (a whole 16 KiB kernel stack). */
#define CHAN_MAX_WINDOW 16384

enum chan_type {
	CHAN_HELLO = 1,
	CHAN_REGS = 2,
	CHAN_PROBES = 3,
	CHAN_SYNC = 4,
	CHAN_HIT = 5,
	CHAN_SYNCED = 6,
	CHAN_GONE = 7,            /* plugin -> kstep: it gives up, and why; nothing follows */
	CHAN_STEP_AT = 8,
	CHAN_STEP = 9,
	CHAN_STEP_VERDICT = 10,   /* kstep -> plugin: on a HIT that asks (CHAN_HIT_ASKS) */
};

struct chan_header {
	uint32_t type;
	uint32_t len;
};

struct chan_hello {
	uint32_t protocol;
	uint32_t api_cur, api_min; /* qemu_info_t's version */
	uint32_t vcpus;
};

struct chan_reg {
	char name[CHAN_REG_NAME]; /* NUL-terminated */
	uint32_t size;            /* bytes in the block */
};
/* REGS: uint32_t n, then n struct chan_reg. */

/*
 * PROBES: this, then n uint64_t addresses, then for each probe in that
 * order a uint32_t count of program steps and that many struct chan_op:
 * what the probe reads from memory at each hit (its fetched fields, its
 * filter's expressions, an skb behind a pointer). Each expression's steps
 * end in READ, STRING or END; every load's and read's bytes go into the
 * HIT as a capture.
 */
enum chan_op_kind {
	CHAN_OP_REG = 1,          /* v = register slot @imm of REGS */
	CHAN_OP_PERCPU,           /* v = gs_base + @imm */
	CHAN_OP_CONST,            /* v = @imm */
	CHAN_OP_ADD,              /* v += @imm */
	CHAN_OP_LOAD,             /* v = the 8 bytes at v (captured) */
	CHAN_OP_MASK,             /* v &= @imm */
	CHAN_OP_KEEP,             /* k = v (one value kept across expressions) */
	CHAN_OP_ADD_KEPT,         /* v += k */
	CHAN_OP_READ,             /* capture @imm bytes (1..CHAN_MAX_CAPTURE) at v; the expression ends */
	CHAN_OP_STRING,           /* capture up to @imm bytes at v, not past its page; ends */
	CHAN_OP_END,              /* the expression ends (its value was a register or constant) */
	/* The steps after this one run at the function's return, not at the
	 * hit: the plugin keeps the return address at the hit's rsp and,
	 * when that vCPU next starts a block there with rsp 8 above the
	 * hit's, sends a HIT there (CHAN_HIT_RETURN); a frame left some
	 * other way (rsp above that) is forgotten. */
	CHAN_OP_AT_RETURN,
};
#define CHAN_MAX_OPS 4096     /* steps in one PROBES, all probes together */
#define CHAN_MAX_CAPTURE 256  /* bytes one step captures at most */

struct chan_op {
	uint32_t kind;
	uint32_t pad;
	int64_t imm;
};

struct chan_probes {
	uint32_t n;
	uint32_t window;          /* stack bytes from rsp, to the stack's end at most */
	/* Where the kernel keeps each CPU's IRQ stack pointer: a per-CPU
	 * variable at this offset from gs_base (x86-64 Linux's
	 * hardirq_stack_ptr, the top slot, which holds the interrupted
	 * stack pointer while the IRQ stack is in use); 0: not known. */
	uint64_t irq_stack_ptr;
};

/*
 * HIT: this, then regs_len bytes of registers, win_len of stack from sp,
 * link_len from link: on the IRQ stack (chan_probes.irq_stack_ptr), the
 * stack it was entered from, from the stack pointer its top slot keeps
 * on, so that backtraces cross from one to the other; and caps_len bytes
 * of captures, each a struct chan_capture and its bytes.
 */
struct chan_hit {
	uint32_t vcpu;
	uint32_t regs_len;
	uint32_t win_len;
	uint32_t link_len;
	uint64_t pc, sp, link;
	uint64_t seq;             /* the plugin's hit count, from 1 */
	/* With the plugin's icount=on: instructions the vCPUs ran before this
	 * one, counted as each starts (one that faults and runs again counts
	 * each time); 0 without. */
	uint64_t icount;
	uint32_t caps_len;
	uint32_t flags;           /* CHAN_HIT_* */
};

/* The window runs to the stack's end (16 KiB at most). A STEP without it
 * carries the window from rsp, and at least down to the lowest rsp of
 * the steps before it on this stack: the rest of the stack is as the last
 * STEP with this flag (and the ones after it) left it. */
#define CHAN_HIT_WHOLE_STACK 1u
/* A STEP's regs_len bytes are the head of the register block, up to its
 * last byte that differs from the STEP before's block; the rest is that
 * block's. The first STEP of a run carries the whole block. */
#define CHAN_HIT_REGS_HEAD 2u
/* A HIT at a return address, where a probe with CHAN_OP_AT_RETURN in its
 * program returned to: its captures are the steps after that op. */
#define CHAN_HIT_RETURN 4u
/* A HIT at STEP_AT's instruction with CHAN_STEP_ASK: its vCPU waits for
 * kstep's STEP_VERDICT on it. */
#define CHAN_HIT_ASKS 8u

/* STEP_AT: the instruction, which of its hits starts stepping (from 1),
 * and the stack bytes a STEP carries from rsp; at 0: stepping off. With
 * CHAN_STEP_ASK in @flags, hits are not counted: each is a probe's HIT
 * (it is one of PROBES) that asks, and kstep's verdict on it (its filter)
 * says whether stepping starts there. */
struct chan_step_at {
	uint64_t at;
	uint64_t hits;
	uint32_t window;
	uint32_t flags;
};
#define CHAN_STEP_ASK 1u
/* With CHAN_STEP_UNTIL_RETURN, kstep ends the steps where @at's call
 * returns (--until-return; @at is a function's entry): the STEP there is
 * sent at once, not with its batch, and is the window's last. */
#define CHAN_STEP_UNTIL_RETURN 2u
/* With CHAN_STEP_NOW, @at is 0 and @hits is not a count but the index of
 * the vCPU that steps, from its next instruction on: a replay kstep
 * stopped just before the window (kstep step --backwards). */
#define CHAN_STEP_NOW 4u

/* STEP_VERDICT: on the HIT of sequence number @seq, step from it (1) or
 * let its vCPU go on (0). */
struct chan_step_verdict {
	uint64_t seq;
	uint32_t step;
	uint32_t pad;
};

struct chan_capture {
	uint64_t addr;
	uint32_t len;             /* bytes that follow, CHAN_MAX_CAPTURE at most */
	uint32_t pad;
};

struct chan_synced {
	uint64_t hits;            /* HITs sent so far */
	uint64_t waits;           /* times a vCPU waited for kstep to read */
	uint64_t wait_ns;         /* for how long, all together */
	uint32_t regs_missing;    /* registers of REGS the plugin cannot read */
	uint32_t answered;        /* REGS, PROBES, SYNC and STEP_AT read so far */
};

/* Whether the plugin answers a message of @type with SYNCED. */
static inline bool chan_answered(uint32_t type)
{
	return type == CHAN_REGS || type == CHAN_PROBES || type == CHAN_SYNC || type == CHAN_STEP_AT;
}

enum chan_gone_reason {
	CHAN_GONE_NOMEM = 1,      /* no memory for the next HIT */
};

struct chan_gone {
	uint32_t reason;          /* enum chan_gone_reason */
	uint32_t hits;            /* HITs sent before it (the low 32 bits) */
};

#endif
