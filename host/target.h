/* SPDX-License-Identifier: MIT */
/*
 * target: a debug target behind an RSP connection. Register layout from
 * qXfer:features:read:target.xml (following xi:include), registers and memory,
 * breakpoints, resume (vCont per vCPU) and stop replies.
 * GDB manual E.2 "Packets", E.3 "Stop Reply Packets", G "Target Descriptions".
 */
#ifndef KSTEP_TARGET_H
#define KSTEP_TARGET_H

#include "reglayout.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rsp.h"

/* Fetches an included document by name; returns malloc'd text or NULL. */
typedef char *(*target_fetch_fn)(void *ctx, const char *name, size_t *len);

/* Parse a target description (socket-free). Returns 0 or -EINVAL/-ENOMEM. */
int target_desc_parse(struct target_desc *d, const char *xml, size_t len,
		      target_fetch_fn fetch, void *ctx, char *err, size_t errlen);
void target_desc_free(struct target_desc *d);
int target_desc_find(const struct target_desc *d, const char *name);

enum target_stop_kind {
	TARGET_STOP_SIGNAL,   /* 'S' or 'T': the target stopped */
	TARGET_STOP_EXITED,   /* 'W': exit status */
	TARGET_STOP_KILLED,   /* 'X': terminated by a signal */
	TARGET_STOP_OUTPUT,   /* 'O': console output, the target still runs */
};

struct target_stop {
	enum target_stop_kind kind;
	int signal;           /* or exit status for EXITED */
	int thread;           /* thread id (QEMU: vCPU index + 1), 0 if not given */
	int pid;
	bool swbreak, hwbreak;
	uint64_t watch_addr;
	bool watch;
};

/* Parse a stop reply (socket-free). -EINVAL if it is not one. */
int target_parse_stop(const char *pkt, size_t len, struct target_stop *st);

struct target;

enum target_bp { TARGET_BP_SW = 0, TARGET_BP_HW = 1 };

/* QEMU's qqemu.sstepbits: what a single step lets in. */
#define TARGET_SSTEP_ENABLE  0x1
#define TARGET_SSTEP_NOIRQ   0x2
#define TARGET_SSTEP_NOTIMER 0x4

/* Negotiate (qSupported), read the target description and halt reason.
 * The target borrows @rsp; close it after target_close. */
int target_open(struct target **out, struct rsp_conn *rsp, char *err, size_t errlen);
void target_close(struct target *t);
const char *target_errmsg(const struct target *t);
const struct target_desc *target_desc(const struct target *t);
int target_current_thread(const struct target *t);
/* The stub is the kernel's own kgdb (a serial line): registers in its
 * fixed layout, no fs/gs bases, no vCont, no Ctrl-C. */
bool target_is_kgdb(const struct target *t);

/* All registers of the selected thread; *raw holds desc->g_size bytes and is
 * owned by the target until the next read. */
int target_read_regs(struct target *t, const uint8_t **raw);
uint64_t target_reg_u64(const struct target *t, const uint8_t *raw, int idx);
/* Registers and a memory window in one pipelined exchange (one round trip).
 * *mem_got < mem_len when the window runs into unreadable memory. */
int target_read_regs_mem(struct target *t, const uint8_t **raw, uint64_t addr,
			 uint8_t *mem, size_t mem_len, size_t *mem_got);
/*
 * The same, and then single-step @thread (others held), all in one write:
 * the snapshot of this instruction and the step to the next one cost one
 * round trip. The stop comes through target_wait. QEMU only (it answers the
 * reads before it starts the step); other stubs get them one after another.
 * @mem_len 0 reads registers only.
 */
int target_read_regs_mem_step(struct target *t, const uint8_t **raw, uint64_t addr, uint8_t *mem,
			      size_t mem_len, size_t *mem_got, int thread);
int target_read_mem(struct target *t, uint64_t addr, void *out, size_t len);
/* Spans of guest memory read in one round trip (QEMU); a span that is not
 * readable (all of it) is left with ok false. Each len within target_max_read. */
struct target_span {
	uint64_t addr;
	size_t len;
	uint8_t *out;
	bool ok;
};
int target_read_spans(struct target *t, struct target_span *spans, size_t n);
/* The most bytes one 'm' reply carries within the stub's PacketSize. */
size_t target_max_read(const struct target *t);
int target_breakpoint(struct target *t, bool insert, enum target_bp type, uint64_t addr);
/* A write watchpoint on [@addr, @addr + @len) (Z2): the guest stops after
 * an instruction that wrote there, reporting "watch" with the address. */
int target_watch_writes(struct target *t, bool insert, uint64_t addr, size_t len);
int target_set_sstep(struct target *t, unsigned int flags);

/* Continue every vCPU. */
int target_continue(struct target *t);
/*
 * Continue from a software breakpoint at @addr where @thread stopped: the
 * stub does not step over it by itself (gdb does, E.2 'z'), so remove it,
 * step @thread alone, put it back and continue, in two round trips.
 */
int target_continue_over(struct target *t, uint64_t addr, int thread);
/* A write to do before resuming: @len bytes of memory at @addr, or a
 * register (index into the description) set to @value. */
struct target_write {
	bool is_reg;
	int reg;
	uint64_t addr;
	uint64_t value;
	size_t len;
};

/*
 * Make the writes, then continue every vCPU: with QEMU in one write and one
 * round trip (the replies before the resume go unacked, as rsp_skip_next_ack
 * explains). Used to carry out an instruction instead of single-stepping it.
 */
int target_continue_with(struct target *t, const struct target_write *w, size_t n);
/* Single-step @thread, the other vCPUs held (0: the current thread). */
int target_step(struct target *t, int thread);
/* Wait for a stop reply; 'O' output is handed to the caller too. */
int target_wait(struct target *t, struct target_stop *st, int timeout_ms);
/* rsp_poll_fd of the target's connection. */
int target_poll_fd(const struct target *t);
/* Send ^C; the stop arrives through target_wait. */
int target_interrupt(struct target *t);
/* Detach (QEMU resumes the guest) and hand the connection back. */
int target_detach(struct target *t);

#endif
