// SPDX-License-Identifier: MIT
/*
 * engine_replay: what only a replay makes possible. A replay runs the same
 * instructions every time, so a point found once (a probe's hit, at the
 * guest's instruction count) can be reached again in a fresh replay, and
 * the past of that point can be watched: kstep why runs the replay up to
 * the point with a write watchpoint on a location and keeps every write,
 * the last one being the answer. (QEMU's own reverse execution does the
 * same from a snapshot; QEMU 7.2's snapshot replay hangs here, DESIGN.md.)
 */
#include "engine_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Longest instruction run linearly decoded from a function's start. */
#define FUNCTION_SCAN_MAX 65536

uint64_t engine_icount(const struct engine *e)
{
	return e->guest_ns >> e->o.icount_shift;
}

/* After a stop: registers and stack window, the guest's clock. */
static int at_stop(struct engine *e)
{
	int err;

	memcache_clear_lines(e->mc);
	if ((err = engine_fetch(e, memcache_window_max(e->mc), -1, &(bool){ false })))
		return err;
	engine_update_guest_clock(e);
	return 0;
}

int engine_run_on(struct engine *e, struct engine_result *res)
{
	struct target_stop st;
	enum engine_end end = ENGINE_END_NONE;
	int err;

	engine_clear_err(e);
	memset(res, 0, sizeof(*res));
	if ((err = engine_resume(e, engine_pc(e))) || (err = engine_run_until_stop(e, &st, &end)))
		return err == -ECONNRESET ? kerr_set(e->err, sizeof(e->err), err, "the guest ended before the point") : err;
	res->end = end;
	return end == ENGINE_END_NONE ? at_stop(e) : 0;
}

/* The instruction that ends where @after begins, decoded linearly from
 * its function's start (x86 has no way back from an address). The guest
 * reports a write watchpoint after the writing instruction. */
static void find_writer(struct engine *e, uint64_t after, struct engine_write *w)
{
	const struct sym *s = sym_lookup_addr(e->syms, after);
	uint64_t pc;

	w->pc = after;
	w->insn[0] = '\0';
	if (!s || after - s->addr > FUNCTION_SCAN_MAX)
		return;
	for (pc = s->addr; pc < after;) {
		uint8_t code[16];
		char text[128];
		size_t len;

		if (memcache_code(e->mc, pc, code, sizeof(code)) ||
		    !(len = disasm_one(e->dis, code, sizeof(code), pc, text, sizeof(text))))
			return;
		if (pc + len == after) {
			w->pc = pc;
			snprintf(w->insn, sizeof(w->insn), "%s", text);
			return;
		}
		pc += len;
	}
}

/* @pc's instruction, disassembled into @w. */
static void describe(struct engine *e, uint64_t pc, struct engine_write *w)
{
	uint8_t code[16];

	w->pc = pc;
	w->insn[0] = '\0';
	if (!memcache_code(e->mc, pc, code, sizeof(code)))
		disasm_one(e->dis, code, sizeof(code), pc, w->insn, sizeof(w->insn));
	sym_format(e->syms, pc, w->where, sizeof(w->where));
}

int engine_record_hit(struct engine *e, struct probe *p, struct engine_result *res)
{
	struct snapshot *sn;
	int err;

	if (snapshot_new(&sn, e->mc))
		return kerr_set(e->err, sizeof(e->err), -ENOMEM, "out of memory");
	if (!(err = at_stop(e)))
		err = engine_record_stop(e, p, sn, res);
	snapshot_free(sn);
	return err;
}

bool engine_mem_operand(struct engine *e, struct disasm_mem *m, char *insn, size_t len)
{
	uint64_t pc = engine_reg(e, e->pc_idx);
	uint8_t code[16];

	insn[0] = '\0';
	if (memcache_code(e->mc, pc, code, sizeof(code)))
		return false;
	disasm_one(e->dis, code, sizeof(code), pc, insn, len);
	return disasm_mem_operand(e->dis, code, sizeof(code), pc, m);
}

/* The snapshot after a write (to memory or a register): its event, the
 * backtrace kept for the report. */
static int record_snapshot(struct engine *e, struct snapshot *sn, struct engine_write *w, struct engine_result *res)
{
	size_t off = 0;
	int err;

	engine_take(e, sn, snapshot_frame_state(e->snap, engine_reg(e, e->pc_idx)));
	if ((err = engine_write_event(e, sn, TRACE_STOP, 0, "write", 0, NULL, NULL, NULL, 0)))
		return err;
	res->stops++;
	w->writes++;
	w->bt[0] = '\0';
	for (size_t i = 0; i < sn->nbt && off < sizeof(w->bt); i++)
		off += (size_t)snprintf(w->bt + off, sizeof(w->bt) - off, "  %s %s\n", sn->names[i], sn->bt[i].src);
	engine_progress(e, w->writes, "writes", w->where, false);
	return 0;
}

/* One single step of the replay, its state read after it; @ended: the
 * guest ended instead (no error). */
static int single_step(struct engine *e, bool *ended)
{
	struct target_stop st;
	int err;

	*ended = false;
	if ((err = target_step(e->t, target_current_thread(e->t))) || (err = engine_wait_stop(e, &st, HALT_TIMEOUT_MS)))
		return engine_target_fail(e, err);
	if (st.kind != TARGET_STOP_SIGNAL) {
		*ended = true;
		return 0;
	}
	return at_stop(e);
}

int engine_single_step_to(struct engine *e, uint64_t icount)
{
	/* An interrupt's entry is a step that runs no instruction: a few more
	 * steps than instructions, never many. */
	uint64_t left = icount - engine_icount(e) + 16;
	int err;

	engine_clear_err(e);
	if (engine_icount(e) < icount && (err = target_set_sstep(e->t, TARGET_SSTEP_ENABLE)))
		return engine_target_fail(e, err);
	while (engine_icount(e) < icount) {
		bool ended;

		if (!left--)
			return kerr_set(e->err, sizeof(e->err), -EIO, "single steps did not reach instruction %" PRIu64
					" of the replay", icount);
		if ((err = single_step(e, &ended)) == -ECONNRESET || (!err && ended))
			return kerr_set(e->err, sizeof(e->err), -ECONNRESET, "the guest ended before the point");
		if (err)
			return err;
	}
	if (engine_icount(e) != icount)
		return kerr_set(e->err, sizeof(e->err), -EIO, "the replay stepped to instruction %" PRIu64 ", not %" PRIu64
				": it diverged from the recording", engine_icount(e), icount);
	return 0;
}

int engine_last_reg_write(struct engine *e, const char *reg, uint64_t until_icount, struct engine_write *w,
			  struct engine_result *res)
{
	int idx = target_desc_find(target_desc(e->t), reg), err = 0;
	struct snapshot *sn = NULL;
	uint64_t prev, prev_pc;

	engine_clear_err(e);
	memset(res, 0, sizeof(*res));
	memset(w, 0, sizeof(*w));
	e->bt_ends = res->bt_ends;
	if (idx < 0)
		return kerr_set(e->err, sizeof(e->err), -EINVAL, "the stub has no register '%s'", reg);
	if (snapshot_new(&sn, e->mc))
		return kerr_set(e->err, sizeof(e->err), -ENOMEM, "out of memory");
	if ((err = target_set_sstep(e->t, TARGET_SSTEP_ENABLE)))
		err = engine_target_fail(e, err);
	e->t0_ns = trace_now_ns();
	prev = engine_reg(e, idx);
	prev_pc = engine_reg(e, e->pc_idx);
	while (!err && engine_icount(e) < until_icount) {
		bool ended;

		if ((err = single_step(e, &ended)))
			break;
		if (ended) {
			res->end = ENGINE_END_GUEST_EXITED;
			break;
		}
		res->steps++;
		if (engine_reg(e, idx) != prev) {
			describe(e, prev_pc, w);
			w->icount = engine_icount(e);
			w->value = engine_reg(e, idx);
			err = record_snapshot(e, sn, w, res);
		}
		prev = engine_reg(e, idx);
		prev_pc = engine_reg(e, e->pc_idx);
	}
	res->seconds = engine_since(e);
	engine_progress(e, w->writes, "writes", NULL, true);
	snapshot_free(sn);
	return err;
}

/* One write to the watched location: what it was, and its event. */
static int record_write(struct engine *e, struct snapshot *sn, uint64_t addr, size_t len, struct engine_write *w,
			struct engine_result *res)
{
	w->icount = engine_icount(e);
	w->value = 0;
	memcache_read(e->mc, addr, &w->value, len);
	find_writer(e, engine_reg(e, e->pc_idx), w);
	sym_format(e->syms, w->pc, w->where, sizeof(w->where));
	return record_snapshot(e, sn, w, res);
}

int engine_last_write(struct engine *e, uint64_t addr, size_t len, struct engine_write *w, struct engine_result *res)
{
	struct snapshot *sn = NULL;
	int err;

	engine_clear_err(e);
	memset(res, 0, sizeof(*res));
	memset(w, 0, sizeof(*w));
	e->bt_ends = res->bt_ends;
	if (snapshot_new(&sn, e->mc))
		return kerr_set(e->err, sizeof(e->err), -ENOMEM, "out of memory");
	if ((err = target_watch_writes(e->t, true, addr, len))) {
		snapshot_free(sn);
		return kerr_set(e->err, sizeof(e->err), err, "the stub refused a write watchpoint on 0x%" PRIx64 " (%zu bytes): %s", addr,
				   len, strerror(-err));
	}
	e->t0_ns = trace_now_ns();
	for (;;) {
		struct target_stop st;
		enum engine_end end = ENGINE_END_NONE;

		if ((err = target_continue(e->t)) || (err = engine_run_until_stop(e, &st, &end)))
			break;
		res->end = end;
		if (end != ENGINE_END_NONE || !st.watch)
			break; /* the replay-break at the point, or the end */
		if ((err = at_stop(e)) || (err = record_write(e, sn, addr, len, w, res)))
			break;
	}
	if (!err && res->end == ENGINE_END_NONE)
		err = at_stop(e);
	if (res->end != ENGINE_END_GUEST_EXITED)
		target_watch_writes(e->t, false, addr, len);
	res->seconds = engine_since(e);
	engine_progress(e, w->writes, "writes", NULL, true);
	snapshot_free(sn);
	return err == -ECONNRESET ? kerr_set(e->err, sizeof(e->err), err, "the guest ended before the point") : err;
}
