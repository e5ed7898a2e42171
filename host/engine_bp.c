// SPDX-License-Identifier: MIT
/*
 * engine_bp: the software breakpoints the engine places, and resuming past
 * one: by carrying out its instruction (a push, nearly always) or else by
 * stepping over it.
 */
#include "engine_priv.h"

#include <errno.h>
#include <stdlib.h>

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
 * -ENOTSUP for any other instruction, and under kgdb: its exception frame
 * lies right below the stopped rsp, where the push would write; and in a
 * replay, where the push would not count as an instruction run and the
 * replay would lose its place.
 */
static int continue_by_emulation(struct engine *e, uint64_t pc)
{
	static const char *const regs[16] = { "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
					      "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15" };
	const struct target_desc *d = target_desc(e->t);
	uint8_t insn[2];
	size_t len;
	int r, idx;

	if (!e->regs || target_is_kgdb(e->t) || e->o.replay || engine_reg(e, e->pc_idx) != pc ||
	    memcache_code(e->mc, pc, insn, sizeof(insn)))
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
	uint64_t sp = engine_reg(e, e->sp_idx), value = engine_reg(e, idx); /* push %rsp pushes the old rsp */
	struct target_write w[3] = {
		{ .addr = sp - 8, .value = value, .len = 8 },
		{ .is_reg = true, .reg = e->sp_idx, .value = sp - 8 },
		{ .is_reg = true, .reg = e->pc_idx, .value = pc + len },
	};

	return target_continue_with(e->t, w, 3);
}

/* Resume from where the guest stopped: past our breakpoint if it sits there. */
int engine_resume(struct engine *e, uint64_t pc)
{
	int err;

	if (!placed(e, pc))
		err = target_continue(e->t);
	else if ((err = continue_by_emulation(e, pc)) == -ENOTSUP)
		err = target_continue_over(e->t, pc, target_current_thread(e->t));
	return err == -ECONNRESET ? err : err ? engine_target_fail(e, err) : 0;
}

int engine_place(struct engine *e, uint64_t addr)
{
	uint64_t *tmp = realloc(e->bp, (e->nbp + 1) * sizeof(*tmp));
	int err;

	if (!tmp)
		return kerr_set(e->err, sizeof(e->err), -ENOMEM, "out of memory");
	e->bp = tmp;
	if ((err = target_breakpoint(e->t, true, TARGET_BP_SW, addr)))
		return engine_target_fail(e, err);
	e->bp[e->nbp++] = addr;
	return 0;
}

/* Remove the breakpoint at @addr from the guest and from the list. */
static int unplace(struct engine *e, uint64_t addr)
{
	int err = target_breakpoint(e->t, false, TARGET_BP_SW, addr);

	for (size_t i = 0; i < e->nbp; i++)
		if (e->bp[i] == addr) {
			e->bp[i] = e->bp[--e->nbp];
			break;
		}
	return err == -ECONNRESET ? err : err ? engine_target_fail(e, err) : 0;
}

int engine_hold(struct engine *e, uint64_t addr)
{
	struct hold *h = NULL, *tmp;

	for (size_t i = 0; i < e->nholds && !h; i++)
		if (e->holds[i].addr == addr)
			h = &e->holds[i];
	if (h) {
		h->count++;
		return 0;
	}
	tmp = realloc(e->holds, (e->nholds + 1) * sizeof(*tmp));
	if (!tmp)
		return kerr_set(e->err, sizeof(e->err), -ENOMEM, "out of memory");
	e->holds = tmp;
	h = &e->holds[e->nholds++];
	*h = (struct hold){ .addr = addr, .count = 1, .temporary = !placed(e, addr) };
	return h->temporary ? engine_place(e, addr) : 0;
}

int engine_release(struct engine *e, uint64_t addr)
{
	for (size_t i = 0; i < e->nholds; i++) {
		struct hold h = e->holds[i];

		if (h.addr != addr || --e->holds[i].count)
			continue;
		e->holds[i] = e->holds[--e->nholds];
		return h.temporary ? unplace(e, addr) : 0;
	}
	return 0;
}

int engine_forget_range(struct engine *e, struct probe_set *ps, uint64_t lo, uint64_t hi)
{
	int err = 0;

	/* Taken out while the code is still there: put back later, the
	 * original bytes would land in whatever reuses the memory. */
	for (size_t i = e->nbp; i-- > 0 && !err;)
		if (e->bp[i] >= lo && e->bp[i] < hi)
			err = unplace(e, e->bp[i]);
	for (size_t i = e->nholds; i-- > 0;)
		if (e->holds[i].addr >= lo && e->holds[i].addr < hi)
			e->holds[i] = e->holds[--e->nholds];
	for (size_t i = e->ncalls; i-- > 0;)
		if (e->calls[i].ret >= lo && e->calls[i].ret < hi)
			e->calls[i] = e->calls[--e->ncalls];
	probes_unresolve(ps, lo, hi);
	return err;
}

int engine_place_probes(struct engine *e, struct probe_set *ps, bool oops_only)
{
	int err = 0;

	for (size_t i = 0; i < ps->n && !err; i++)
		if (ps->v[i].addr && (ps->v[i].oops || !oops_only) && !placed(e, ps->v[i].addr))
			err = engine_place(e, ps->v[i].addr);
	return err;
}

int engine_clear_breakpoints(struct engine *e)
{
	int first = 0;

	engine_clear_err(e);
	for (size_t i = 0; i < e->nbp; i++) {
		int err = target_breakpoint(e->t, false, TARGET_BP_SW, e->bp[i]);

		if (err && !first)
			first = engine_target_fail(e, err);
	}
	e->nbp = 0;
	e->nholds = 0;
	e->ncalls = 0;
	return first;
}
