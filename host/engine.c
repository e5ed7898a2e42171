// SPDX-License-Identifier: MIT
/*
 * engine: the base the loops stand on: the handle, the registers, what
 * stops and steps share (the register and window fetch, writing an event,
 * the live counter). The loops are engine_loop.c (breakpoint stops),
 * engine_step.c (single steps), engine_boot.c (to start_kernel) and
 * engine_replay.c (a replay's point), engine_plugin.c (the plugin's hits).
 */
#include "engine_priv.h"
#include "kerr.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "warm.h"

/* The live counter is redrawn at most this often. */
#define POLL_MS 200

int engine_target_fail(struct engine *e, int err)
{
	const char *why = target_errmsg(e->t);

	/* Every target error should say what happened; one that does not
	 * still names its errno rather than printing nothing. */
	return why && *why ? kerr_set(e->err, sizeof(e->err), err, "%s", why)
			   : kerr_set(e->err, sizeof(e->err), err, "the stub connection failed: %s", strerror(err < 0 ? -err : err));
}

void engine_clear_err(struct engine *e)
{
	e->err[0] = '\0';
}

const char *engine_errmsg(const struct engine *e)
{
	return e->err;
}

/* An engine's state from nothing: what engine_new makes, and
 * engine_set_trace makes again for the run. */
static int engine_init(struct engine *e, struct target *t, struct symtab *syms, struct trace *trace,
		       const struct engine_opts *o, char *err, size_t errlen)
{
	static const char *const args[6] = { "rdi", "rsi", "rdx", "rcx", "r8", "r9" };
	static const char *const dwarf_names[CFI_NREGS] = { "rax", "rdx", "rcx", "rbx", "rsi", "rdi",
							    "rbp", "rsp", "r8",  "r9",  "r10", "r11",
							    "r12", "r13", "r14", "r15", "rip" };
	const struct target_desc *d = target_desc(t);
	size_t window_max = target_max_read(t);

	e->t = t;
	e->syms = syms;
	e->trace = trace;
	e->o = *o;
	e->step_max_depth = -1;
	e->pc_idx = target_desc_find(d, "rip");
	e->sp_idx = target_desc_find(d, "rsp");
	e->fp_idx = target_desc_find(d, "rbp");
	e->gs_idx = target_desc_find(d, "gs_base");
	packet_layout_init(&e->pkt, syms);
	if (o->snaplen)
		e->pkt.snaplen = o->snaplen;
	for (int i = 0; i < 6; i++)
		e->arg_idx[i] = target_desc_find(d, args[i]);
	for (int i = 0; i < CFI_NREGS; i++)
		e->dwarf_idx[i] = target_desc_find(d, dwarf_names[i]);
	if (e->pc_idx < 0 || e->sp_idx < 0 || e->fp_idx < 0)
		return kerr_set(err, errlen, -ENOTSUP, "the target is not x86-64 (no rip/rsp/rbp in its description, arch %s)",
				d->arch ? d->arch : "unknown");
	if (e->o.stack_bytes > window_max)
		e->o.stack_bytes = window_max / 8 * 8; /* what one read of this stub carries */
	if (disasm_open(&e->dis))
		return kerr_set(err, errlen, -ENOMEM, "cannot start the disassembler (Capstone)");
	if (memcache_new(&e->mc, t, window_max) ||
	    snapshot_ctx_new(&e->snap, syms, e->mc, e->dis, o->cfi, o->unwind, o->max_stack) ||
	    !(e->raw = malloc(window_max)))
		return kerr_set(err, errlen, -ENOMEM, "out of memory");
	return 0;
}

/* What engine_init made, let go of; the engine is all zeros after. */
static void engine_fini(struct engine *e)
{
	snapshot_ctx_free(e->snap);
	memcache_free(e->mc);
	disasm_close(e->dis);
	free(e->raw);
	free(e->bp);
	free(e->holds);
	free(e->prof);
	warm_free(e->warm);
	memset(e, 0, sizeof(*e));
}

int engine_new(struct engine **out, struct target *t, struct symtab *syms, struct trace *trace,
	       const struct engine_opts *o, char *err, size_t errlen)
{
	struct engine *e = calloc(1, sizeof(*e));
	int ret;

	if (!e)
		return kerr_set(err, errlen, -ENOMEM, "out of memory");
	if ((ret = engine_init(e, t, syms, trace, o, err, errlen))) {
		engine_free(e);
		return ret;
	}
	*out = e;
	return 0;
}

int engine_set_trace(struct engine *e, struct trace *trace, const struct engine_opts *o, char *err, size_t errlen)
{
	struct target *t = e->t;
	struct symtab *syms = e->syms;

	engine_fini(e);
	return engine_init(e, t, syms, trace, o, err, errlen);
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	engine_fini(e);
	free(e);
}

uint64_t engine_reg(const struct engine *e, int idx)
{
	return target_reg_u64(e->t, e->regs, idx);
}

const struct snapshot_agreement *engine_unwind_agreement(const struct engine *e)
{
	return snapshot_agreement(e->snap);
}

const struct snapshot_agreement *engine_carried_agreement(const struct engine *e)
{
	return snapshot_carried_agreement(e->snap);
}

const struct snapshot_agreement *engine_rows_agreement(const struct engine *e)
{
	return snapshot_rows_agreement(e->snap);
}

uint64_t engine_pc(const struct engine *e)
{
	return e->regs ? engine_reg(e, e->pc_idx) : 0;
}

void engine_dwarf_regs(const struct engine *e, uint64_t out[CFI_NREGS])
{
	for (int i = 0; i < CFI_NREGS; i++)
		out[i] = e->dwarf_idx[i] >= 0 ? engine_reg(e, e->dwarf_idx[i]) : 0;
}

struct unwind_regs engine_unwind_regs(const struct engine *e)
{
	return (struct unwind_regs){ .pc = engine_reg(e, e->pc_idx), .sp = engine_reg(e, e->sp_idx),
				     .fp = engine_reg(e, e->fp_idx) };
}

/* ---- the register and window fetch ---------------------------------------- */

/* The last instruction left the stack alone: registers only, the window
 * stays as it is. */
static int fetch_regs_keep_window(struct engine *e, size_t want, int step_thread, bool *complete)
{
	uint64_t old_sp, got;
	size_t len;
	int err;

	memcache_window(e->mc, &old_sp, &len);
	err = target_read_regs_mem_step(e->t, &e->regs, 0, e->raw, 0, &got, step_thread);
	if (err)
		return engine_target_fail(e, err);
	if (engine_reg(e, e->sp_idx) == old_sp) {
		*complete = len >= want;
		return 0;
	}
	/* rsp moved after all (it should not have): nothing to go on. */
	memcache_set_window(e->mc, engine_reg(e, e->sp_idx), 0);
	*complete = false;
	return 0;
}

/* The stack bytes a window of @want from @sp holds: not past its 16 KiB
 * stack's end. */
static size_t window_len(uint64_t sp, size_t want)
{
	size_t room = KSTACK_ALIGN - (size_t)(sp & (KSTACK_ALIGN - 1));

	return want < room ? want : room;
}

/*
 * Registers and the stack window in one round trip. rsp is only known after
 * 'g', so the window is fetched where memcache_plan_window expects rsp; a
 * second read is needed only when rsp is not in what came.
 */
int engine_fetch(struct engine *e, size_t want, int step_thread, bool *complete)
{
	bool stepping = step_thread >= 0;
	struct window_plan w;
	uint64_t last_sp, sp;
	size_t got = 0, len;
	uint8_t *window;
	int err;

	if (want > memcache_window_max(e->mc))
		want = memcache_window_max(e->mc); /* a stub with small packets (kgdb): what one 'm' carries */
	if (e->stack_kept && stepping)
		return fetch_regs_keep_window(e, want, step_thread, complete);
	window = memcache_window(e->mc, &last_sp, NULL);
	w = memcache_plan_window(last_sp, e->next_sp, stepping, e->sp_known, want, memcache_window_max(e->mc));
	err = stepping ? target_read_regs_mem_step(e->t, &e->regs, w.start, e->raw, w.len, &got, step_thread)
		       : target_read_regs_mem(e->t, &e->regs, w.start, e->raw, w.len, &got);
	if (err)
		return engine_target_fail(e, err);
	sp = engine_reg(e, e->sp_idx);
	len = window_len(sp, want);
	if (sp >= w.start && sp < w.start + got) {
		/* All of it, past @want too: the unwinder reads on from it. */
		got = (size_t)(w.start + got - sp);
		memmove(window, e->raw + (sp - w.start), got);
	} else {
		got = 0;
	}
	*complete = got >= len;
	memcache_set_window(e->mc, sp, got);
	/* Top up what the plan missed; only while the guest is stopped (after
	 * a step has started, this memory belongs to the next instruction). */
	if (!stepping)
		engine_complete_window(e, want);
	return 0;
}

void engine_complete_window(struct engine *e, size_t want)
{
	uint64_t sp;
	size_t got, len;
	uint8_t *window = memcache_window(e->mc, &sp, &got);

	len = window_len(sp, want);
	if (got < len && !target_read_mem(e->t, sp + got, window + got, len - got))
		memcache_set_window(e->mc, sp, len);
}

int engine_wait_stop(struct engine *e, struct target_stop *st, int timeout_ms)
{
	int err;

	do {
		err = target_wait(e->t, st, timeout_ms);
	} while (!err && st->kind == TARGET_STOP_OUTPUT);
	return err;
}

uint64_t engine_skb_at(struct engine *e, const struct probe *p)
{
	uint64_t v, next;

	if (!p || p->skb_arg < 0 || p->skb_arg > 5 || e->arg_idx[p->skb_arg] < 0)
		return 0;
	v = engine_reg(e, e->arg_idx[p->skb_arg]);
	switch (p->skb_levels) {
	case 1:
		return v;
	case 2: /* struct sk_buff **pskb */
		return memcache_read(e->mc, v, &next, 8) ? 0 : next;
	case 0:
		/* A list_head of skbs: sk_buff starts with its list node
		 * (6.1 include/linux/skbuff.h, the union with next/prev/list), so
		 * head->next is the first skb unless the list is empty. */
		return memcache_read(e->mc, v, &next, 8) || next == v ? 0 : next;
	}
	return 0;
}

int engine_write_event(struct engine *e, struct snapshot *sn, enum trace_kind kind, uint32_t class_id,
		       const char *probe, uint64_t skb, const struct trace_value *values, const char *insn,
		       const uint8_t *ibytes, uint8_t ilen)
{
	size_t words = snapshot_stack(e->snap, sn, e->o.stack_bytes / 8);
	struct trace_event ev = {
		.kind = kind,
		.class_id = class_id,
		.ts_ns = e->o.replay ? e->guest_ns : trace_now_ns(),
		.seq = ++e->seq,
		.guest_ns = e->guest_ns,
		.vcpu = e->hit_vcpu ? e->hit_vcpu - 1
				    : (uint32_t)(target_current_thread(e->t) > 0 ? target_current_thread(e->t) - 1 : 0),
		.pc = sn->pcs[0],
		.probe = probe,
		.symbol = sn->names[0],
		.skb = skb,
		.values = values,
		.regs = e->regs,
		.stack = sn->stack,
		.stack_len = (uint32_t)words,
		.bt = sn->bt,
		.bt_len = (uint32_t)sn->nbt,
		.bt_end = unwind_end_name(sn->end),
		.bt_reliable = unwind_end_reliable(sn->end),
		.insn = insn,
		.insn_bytes = ibytes,
		.insn_len = ilen,
	};
	int err;

	if (kind == TRACE_STOP && !e->first_stop_ns)
		e->first_stop_ns = trace_now_ns();
	err = trace_write(e->trace, &ev);

	if (!err && e->bt_ends)
		e->bt_ends[sn->end]++;

	return err ? kerr_set(e->err, sizeof(e->err), err, "writing the trace: %s", strerror(-err)) : 0;
}

/* A snapshot at a stop: the guest is stopped, so the chain can be read. */
void engine_take(struct engine *e, struct snapshot *sn, enum unwind_entry entry)
{
	struct unwind_regs ur = engine_unwind_regs(e);
	uint64_t dwarf[CFI_NREGS];

	engine_dwarf_regs(e, dwarf);
	snapshot_unwind(e->snap, sn, &ur, dwarf, entry, false);
	snapshot_symbolize(e->snap, sn);
}

/* Line tables read ahead at a time while nothing comes. */
#define WARM_SLICE_MS 10

void engine_warm_start(struct engine *e, uint64_t at)
{
	/* The step caches' pages faulted in now, not at the first steps. */
	disasm_populate(e->dis);
	snapshot_ctx_populate(e->snap);
	warm_free(e->warm);
	e->warm = warm_new(e->syms, e->dis, e->snap, e->o.cfi, at);
}

void engine_warm_some(struct engine *e, bool stepping)
{
	if (e->warm && (stepping || !warm_some(e->warm, WARM_SLICE_MS))) {
		warm_free(e->warm);
		e->warm = NULL;
	}
}

double engine_since(const struct engine *e)
{
	return (double)(trace_now_ns() - e->t0_ns) / 1e9;
}

void engine_progress(struct engine *e, uint64_t n, const char *what, const char *last, bool final)
{
	uint64_t now = trace_coarse_ns();
	char line[256];
	double s;

	if (!e->o.progress || (!final && now - e->last_progress_ns < POLL_MS * 1000000ull))
		return;
	e->last_progress_ns = now;
	s = engine_since(e);
	snprintf(line, sizeof(line), "%" PRIu64 " %s, %.0f/s, %.1f s%s%s%s", n, what, s > 0 ? (double)n / s : 0.0, s,
		 last ? " (" : "", last ? last : "", last ? ")" : "");
	e->o.progress(line, final);
}
