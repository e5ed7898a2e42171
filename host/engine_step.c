// SPDX-License-Identifier: MIT
/*
 * engine_step: kstep step. Run to the K-th hit of a breakpoint, then
 * single-step that vCPU alone (the others held), recording a snapshot and
 * the instruction at every step, for N instructions or until the function
 * returns to its caller.
 *
 * One round trip per instruction: the registers and stack of this
 * instruction and the step to the next go out in one write, so the end must
 * be known one instruction ahead (by count, or because the instruction just
 * stepped was the ret back to the caller). While the next step runs, the
 * snapshot is worked out from the caches; a miss waits for the stop and
 * reads then (code does not change under us, and frame records above the
 * window are not written by the instruction that ran).
 *
 * Through kstep's QEMU plugin the guest never stops: the plugin counts the
 * hits and sends every instruction of the vCPU from there on (STEP), and
 * each is recorded as a single step's would be (engine_step_take), from
 * the stack the STEPs have shown so far, its frames carried over from the
 * last step's where they follow from them (the same function, a call, a
 * return) rather than unwound again; calls beyond --max-depth and the
 * interrupts a single step holds off go by unrecorded.
 */
#include "engine_priv.h"
#include "plugin_chan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* QEMU (TCG) now and then reports a single step that executed nothing; a
 * long run of them means the vCPU cannot make progress at all. */
#define MAX_NULL_STEPS 1000

/* Bytes of plugin steps' events written at once. */
#define STEP_BATCH (256 * 1024)

/* Where in a function an external interrupt's entry is: the IDT's stubs
 * anywhere in them, asm_common_interrupt, asm_sysvec_* and
 * asm_spurious_interrupt at their first instruction. */
enum irq_entry { IRQ_ENTRY_NONE, IRQ_ENTRY_ANYWHERE, IRQ_ENTRY_FIRST };

/* How a plugin step's frames came about: unwound, or the last step's
 * with a new innermost one, one more (a call) or one fewer (a return). */
enum step_frames { STEP_FRAMES_UNWOUND, STEP_FRAMES_SAME, STEP_FRAMES_CALLED, STEP_FRAMES_RETURNED };

/* One engine_step run. */
struct step_run {
	const char *at_spec;
	uint64_t at, hits, count;
	uint64_t kept;             /* through the plugin: hits of --at its filters kept */
	bool until_return;
	bool at_entry;            /* @at is a function's first instruction */
	struct snapshot *sn;
	uint8_t *prev;            /* registers of the last recorded step */
	size_t want;              /* stack bytes a step records */
	int thread;               /* the vCPU stepped */
	uint64_t nulls;           /* steps in a row that executed nothing */
	uint64_t ret_addr, entry_sp;
	bool returning;           /* the instruction just stepped returns to the caller */
	uint64_t guest_ns0;       /* the guest's clock at the first step */
	const struct probe *probe; /* --at, with its filter */
	int depth;                /* calls below the function stepping began in */
	uint64_t over_ret, over_sp; /* a call to run whole: its return address, rsp before it */
	bool over_entry;          /* recording the first instruction of that call */
	/* Through the plugin: the stack as its STEPs showed it (@stack holds
	 * [stack_lo, stack_hi)), the stack it was entered from when that is an
	 * IRQ stack, and where an interrupt being passed by returns to. */
	uint8_t *stack, *linked;
	uint64_t stack_lo, stack_hi, link;
	uint8_t *regs;            /* the last STEP's whole register block ... */
	bool regs_whole;          /* ... once one came */
	uint32_t link_len;
	uint64_t irq_pc, irq_sp;
	bool in_call;             /* running a call beyond --max-depth whole */
	const uint8_t *code;      /* the STEP's instruction bytes (code_len of them) */
	size_t code_len;
	/* Through the plugin, how the next step's frames may follow from the
	 * last's (held_flow: it was at held_pc, went on to held_next or
	 * elsewhere in its function, or called or returned, with rsp to be
	 * held_sp), and how this step's did. */
	enum step_frames held_flow, frames;
	uint64_t held_pc, held_next, held_sp;
	const struct sym *entry_sym; /* the function interrupt_entry last asked about */
	enum irq_entry entry_kind;   /* and what it is */
};

/* Count a recorded step in its function's entry. */
static int profile_add(struct engine *e, uint64_t pc)
{
	const struct sym *s = sym_lookup_addr(e->syms, pc);
	const char *in_module = e->o.cfi && cfi_module_text(e->o.cfi, pc) ? cfi_function(e->o.cfi, pc) : NULL;
	const char *name = in_module ? in_module : s ? s->name : "?";
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
		return kerr_set(e->err, sizeof(e->err), -ENOMEM, "out of memory");
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

static int guest_ended(struct engine *e, struct step_run *r, uint64_t seen)
{
	return kerr_set(e->err, sizeof(e->err), -ECHILD, "the guest ended after %" PRIu64 " of %" PRIu64 " hits of %s", seen, r->hits,
			   r->at_spec);
}

/* Do --filter and --pcap-filter keep this hit of @p? Its fields are read
 * only if there is one. */
static bool hit_kept(struct engine *e, const struct probe *p)
{
	struct probe_hit h;

	if (!p->filter && !e->o.pcap)
		return true;
	engine_probe_fetch(e, p, engine_skb_at(e, p), &h);
	return engine_probe_matches(e, p, &h);
}

bool engine_step_starts_at(struct engine *e, const struct probe *p)
{
	struct step_run *r = e->step;

	return r && hit_kept(e, p) && ++r->kept == r->hits;
}

/* Run to the hits-th hit of the breakpoint at @at. */
static int run_to_hit(struct engine *e, struct step_run *r, struct engine_result *res)
{
	uint64_t seen = 0, pc = 0;
	int err;

	if ((err = engine_place(e, r->at)))
		return err;
	while (seen < r->hits) {
		struct target_stop st;
		enum engine_end end = ENGINE_END_NONE;

		/* From the last stop: past the breakpoint when it was ours,
		 * also after a hit that its filter did not keep. */
		if ((err = engine_resume(e, pc)) || (err = engine_run_until_stop(e, &st, &end)))
			return err == -ECONNRESET ? guest_ended(e, r, seen) : err;
		if (end != ENGINE_END_NONE) {
			res->end = end;
			return end == ENGINE_END_GUEST_EXITED ? guest_ended(e, r, seen) : 0;
		}
		if ((err = target_read_regs(e->t, &e->regs)))
			return engine_target_fail(e, err);
		memcache_clear_lines(e->mc);
		memcache_set_window(e->mc, 0, 0);
		pc = engine_reg(e, e->pc_idx);
		if (pc == r->at && hit_kept(e, r->probe))
			seen++;
	}
	return 0;
}

/* Step alone: no breakpoint in the way, the other vCPUs held, and the
 * stack where it is now, so that the first batched fetch finds it. */
static int start_stepping(struct engine *e, struct step_run *r)
{
	bool complete;
	int err;

	if ((err = engine_clear_breakpoints(e)))
		return err;
	err = target_set_sstep(e->t, e->o.step_irqs || e->o.replay ? TARGET_SSTEP_ENABLE
						    : TARGET_SSTEP_ENABLE | TARGET_SSTEP_NOIRQ | TARGET_SSTEP_NOTIMER);
	if (err)
		return engine_target_fail(e, err);
	r->thread = target_current_thread(e->t);
	memcache_clear_lines(e->mc);
	e->stack_kept = e->sp_known = false;
	/* Each step is one instruction: the guest's clock follows from here. */
	engine_update_guest_clock(e);
	r->guest_ns0 = e->guest_ns;
	return engine_fetch(e, r->want, -1, &complete);
}

/* At the first instruction of --until-return: where it will return to. */
static int note_entry(struct engine *e, struct step_run *r, uint64_t pc, uint64_t sp)
{
	if (!r->at_entry || pc != r->at)
		return kerr_set(e->err, sizeof(e->err), -EINVAL, "--until-return needs --at at a function's first instruction");
	/* At entry the return address is on top of the stack. */
	if (memcache_read(e->mc, sp, &r->ret_addr, 8))
		return kerr_set(e->err, sizeof(e->err), -EFAULT, "cannot read the return address at 0x%" PRIx64, sp);
	r->entry_sp = sp;
	return 0;
}

/* How the frames of the instruction at @pc follow from the last step's,
 * if they do: it went on in its function (no call, return or stack
 * switch), or called with the return address pushed, or returned to the
 * frame above. Unwinding afresh is most of a plugin step's time. */
static enum step_frames frames_held(struct engine *e, const struct step_run *r, uint64_t pc, uint64_t sp)
{
	const struct snapshot *sn = r->sn;
	const struct sym *s;
	uint64_t ret;

	if (r->held_flow == STEP_FRAMES_UNWOUND || sp != r->held_sp)
		return STEP_FRAMES_UNWOUND;
	switch (r->held_flow) {
	case STEP_FRAMES_CALLED:
		return !memcache_read(e->mc, sp, &ret, 8) && ret == r->held_next ? STEP_FRAMES_CALLED : STEP_FRAMES_UNWOUND;
	case STEP_FRAMES_RETURNED:
		return pc == sn->pcs[1] ? STEP_FRAMES_RETURNED : STEP_FRAMES_UNWOUND;
	default:
		if (pc == r->held_next)
			return STEP_FRAMES_SAME;
		s = sym_lookup_addr(e->syms, pc);
		return s && s == sym_lookup_addr(e->syms, r->held_pc) ? STEP_FRAMES_SAME : STEP_FRAMES_UNWOUND;
	}
}

/* After the step at @pc (@ilen bytes, @flow) is recorded: may the next
 * one's frames follow from its own? Only when the walk got past the top
 * frame: a walk that ended there (entry code from user space) ended on
 * what that frame's registers held, which the next instruction changes.
 * A return needs the frame above and, if the chain was cut at
 * --max-stack, the one the walk found beneath the cut. */
static void hold_frames(struct engine *e, struct step_run *r, uint64_t pc, size_t ilen, enum disasm_flow flow)
{
	const struct snapshot *sn = r->sn;

	r->held_flow = STEP_FRAMES_UNWOUND;
	if (!e->chan || !ilen || r->over_entry || !e->sp_known || sn->nbt < 2)
		return;
	if (flow == DISASM_FLOW_OTHER)
		r->held_flow = STEP_FRAMES_SAME;
	else if (flow == DISASM_FLOW_CALL)
		r->held_flow = STEP_FRAMES_CALLED;
	else if (flow == DISASM_FLOW_RET && snapshot_knows_beneath(sn))
		r->held_flow = STEP_FRAMES_RETURNED;
	r->held_pc = pc;
	r->held_next = pc + ilen;
	r->held_sp = e->next_sp;
}

/* A fresh walk of the stack at @pc (the registers read in the walk's own
 * orders only then: most plugin steps carry their frames over). */
static void unwind(struct engine *e, struct step_run *r, uint64_t pc)
{
	struct unwind_regs ur = engine_unwind_regs(e);
	uint64_t dwarf[CFI_NREGS];

	engine_dwarf_regs(e, dwarf);
	snapshot_unwind(e->snap, r->sn, &ur, dwarf, snapshot_frame_state(e->snap, pc), e->chan != NULL);
}

/* The instruction's code, its backtrace and whether it returns to the
 * caller, from the caches while the next step runs (*stopped false); on a
 * miss, once the guest has stopped. */
static int analyse(struct engine *e, struct step_run *r, uint64_t pc, uint64_t sp, uint8_t insn[16], bool *stopped)
{
	struct target_stop st;
	int err = 0;

	/* Through the plugin, what the caches lack is not there to read. */
	for (bool offline = !*stopped || e->chan;; offline = false) {
		memcache_set_offline(e->mc, offline);
		if (r->code_len)
			memcpy(insn, r->code, r->code_len); /* the plugin's: the code the guest ran */
		else if (memcache_code(e->mc, pc, insn, 16) && !memcache_missed(e->mc)) {
			err = kerr_set(e->err, sizeof(e->err), -EFAULT, "cannot read code at 0x%" PRIx64, pc);
			break;
		}
		/* Before the walk, whose reads beneath the recorded frames
		 * may miss what the plugin did not bring. */
		if (r->until_return && !memcache_missed(e->mc) && disasm_is_return(e->dis, insn, 16, pc)) {
			uint64_t to;

			/* The ret back to the caller? Then the next is the last. */
			r->returning = !memcache_read(e->mc, sp, &to, 8) && to == r->ret_addr && sp >= r->entry_sp;
		}
		r->frames = frames_held(e, r, pc, sp);
		if (r->frames == STEP_FRAMES_UNWOUND)
			unwind(e, r, pc);
		if (!memcache_missed(e->mc) || !offline || e->chan)
			break;
		if ((err = engine_wait_stop(e, &st, HALT_TIMEOUT_MS)))
			break;
		*stopped = true;
	}
	memcache_set_offline(e->mc, e->chan != NULL);
	return err;
}

/* --unwind check: the frames carried over against a fresh walk, on the
 * memory the step brought (offline, as its own walk would be). */
static void check_carried(struct engine *e, struct step_run *r)
{
	uint64_t dwarf[CFI_NREGS];

	engine_dwarf_regs(e, dwarf);
	memcache_set_offline(e->mc, true);
	snapshot_check_carried(e->snap, r->sn, dwarf);
	memcache_set_offline(e->mc, e->chan != NULL);
}

/* --max-depth: how deep the instruction at @pc leaves the stepping, and
 * whether the call it makes is to run whole (beyond the depth). */
static void follow_depth(struct engine *e, struct step_run *r, enum disasm_flow flow, uint64_t pc, uint64_t sp,
			 size_t ilen)
{
	switch (flow) {
	case DISASM_FLOW_CALL:
		if (e->step_max_depth >= 0 && r->depth >= e->step_max_depth) {
			r->over_ret = pc + ilen;
			r->over_sp = sp;
		} else {
			r->depth++;
		}
		break;
	case DISASM_FLOW_RET:
		r->depth--;
		break;
	default:
		break; /* an interrupt's return goes back where it came in, at the same depth */
	}
}

/* Record the instruction the registers just fetched stand at. */
static int record(struct engine *e, struct step_run *r, struct engine_result *res, bool complete, bool *stopped)
{
	uint8_t insn[16] = { 0 };
	enum disasm_flow flow;
	uint64_t pc, sp;
	char text[128];
	size_t ilen;
	int err;

	if (res->steps == 0 && !*stopped && !e->chan) {
		/* The first instruction reads the return address: stop first. */
		struct target_stop st;

		if ((err = engine_wait_stop(e, &st, HALT_TIMEOUT_MS)))
			return err;
		*stopped = true;
	}
	if (!complete && !e->chan) {
		/* The window missed rsp: the stack words are read once the
		 * step has stopped, not left out. */
		struct target_stop st;

		if (!*stopped && (err = engine_wait_stop(e, &st, HALT_TIMEOUT_MS)))
			return err;
		*stopped = true;
		engine_complete_window(e, r->want);
	}
	memcpy(r->prev, e->regs, target_desc(e->t)->g_size);
	if (complete)
		memcache_window_to_lines(e->mc);
	pc = engine_reg(e, e->pc_idx);
	sp = engine_reg(e, e->sp_idx);
	if (res->steps == 0 && r->until_return && r->hits && (err = note_entry(e, r, pc, sp)))
		return err;
	if ((err = analyse(e, r, pc, sp, insn, stopped)))
		return err;
	ilen = disasm_one(e->dis, insn, sizeof(insn), pc, text, sizeof(text));
	if (r->frames == STEP_FRAMES_SAME)
		snapshot_move_top(e->snap, r->sn, pc);
	else if (r->frames == STEP_FRAMES_CALLED)
		snapshot_called(e->snap, r->sn, pc, r->held_next);
	else if (r->frames == STEP_FRAMES_RETURNED)
		snapshot_returned(e->snap, r->sn);
	else
		snapshot_symbolize(e->snap, r->sn);
	if (r->frames != STEP_FRAMES_UNWOUND && e->o.unwind == SNAPSHOT_UNWIND_CHECK)
		check_carried(e, r);
	if (e->o.guest_clock && !e->chan) /* a plugin's STEP brought its own */
		e->guest_ns = r->guest_ns0 + (res->steps << e->o.icount_shift);
	if ((err = engine_write_event(e, r->sn, TRACE_STEP, 0, r->over_entry ? TRACE_STEPPED_OVER : TRACE_STEP_PROBE, 0, NULL, text,
				      insn, (uint8_t)(ilen ? ilen : 1))))
		return err;
	flow = disasm_flow(e->dis, insn, sizeof(insn), pc);
	if (!r->over_entry)
		follow_depth(e, r, flow, pc, sp, ilen);
	e->stack_kept = complete && disasm_keeps_stack(e->dis, insn, sizeof(insn), pc);
	e->sp_known = disasm_next_sp(e->dis, insn, sizeof(insn), pc, sp, engine_reg(e, e->fp_idx), &e->next_sp);
	hold_frames(e, r, pc, ilen, flow);
	if ((err = profile_add(e, pc)))
		return err;
	res->steps++;
	engine_progress(e, res->steps, "steps", NULL, false);
	if (r->until_return && res->steps > 1 && pc == r->ret_addr && sp > r->entry_sp)
		res->end = ENGINE_END_RETURNED;
	else if (e->step_until && pc == e->step_until && res->steps > 1)
		res->end = ENGINE_END_UNTIL;
	return 0;
}

void engine_step_until(struct engine *e, uint64_t addr)
{
	e->step_until = addr;
}

void engine_step_max_depth(struct engine *e, int depth)
{
	e->step_max_depth = depth;
}

/* Run to the breakpoint at @ret, until the stop there leaves rsp at @sp: the
 * return of the call that entered at rsp @sp - 8 (a recursive call returns
 * there too, deeper; another task elsewhere). */
static int run_to_return(struct engine *e, struct step_run *r, uint64_t ret, uint64_t sp, struct engine_result *res)
{
	uint64_t pc = engine_reg(e, e->pc_idx);

	for (;;) {
		struct target_stop st;
		enum engine_end end = ENGINE_END_NONE;
		int err;

		if ((err = engine_resume(e, pc)) || (err = engine_run_until_stop(e, &st, &end)))
			return err;
		if (end != ENGINE_END_NONE) {
			res->end = end;
			return 0;
		}
		if ((err = target_read_regs(e->t, &e->regs)))
			return engine_target_fail(e, err);
		pc = engine_reg(e, e->pc_idx);
		if (pc == ret && engine_reg(e, e->sp_idx) == sp) {
			r->thread = target_current_thread(e->t); /* the task may have moved to another vCPU */
			return 0;
		}
	}
}

/*
 * The step just taken entered a call beyond --max-depth: its first
 * instruction is recorded (marked stepped-over), then the call runs whole
 * to a breakpoint at its return. Stepping goes on from there, the guest's
 * clock having moved on by what the call took.
 */
static int run_call_whole(struct engine *e, struct step_run *r, struct engine_result *res)
{
	uint64_t ret = r->over_ret, sp = r->over_sp;
	bool complete, stopped = true;
	int err;

	r->over_ret = 0;
	if ((err = engine_fetch(e, r->want, -1, &complete)))
		return err;
	if (engine_reg(e, e->sp_idx) != sp - 8)
		return 0; /* not in the call yet (an exception came first): stepped as it comes */
	r->over_entry = true;
	err = record(e, r, res, complete, &stopped);
	r->over_entry = false;
	if (!err && res->end == ENGINE_END_NONE && r->count && res->steps >= r->count)
		res->end = ENGINE_END_COUNT;
	if (err || res->end != ENGINE_END_NONE)
		return err;
	res->stepped_over++;
	if ((err = engine_place(e, ret)) || (err = run_to_return(e, r, ret, sp, res)))
		return err;
	if ((err = engine_clear_breakpoints(e)))
		return err;
	memcache_clear_lines(e->mc);
	e->stack_kept = e->sp_known = false;
	engine_update_guest_clock(e);
	r->guest_ns0 = e->guest_ns - (res->steps << e->o.icount_shift);
	return 0;
}

/* Not one register moved, not even rip: the stub reported a step that
 * executed nothing. It is stepped again and not recorded. */
static int null_step(struct engine *e, struct step_run *r, struct engine_result *res)
{
	res->null_steps++;
	if (++r->nulls > MAX_NULL_STEPS)
		return kerr_set(e->err, sizeof(e->err), -EIO, "%d single steps in a row executed nothing at 0x%" PRIx64,
				   MAX_NULL_STEPS, engine_reg(e, e->pc_idx));
	return 0;
}

static int step_loop(struct engine *e, struct step_run *r, struct engine_result *res)
{
	size_t g_size = target_desc(e->t)->g_size;
	int err = 0;

	for (;;) {
		struct target_stop st;
		bool last, complete, stopped;

		last = (r->count && res->steps + 1 >= r->count) || r->returning ||
		       (e->o.interrupted && *e->o.interrupted);
		if ((err = engine_fetch(e, r->want, last ? -1 : r->thread, &complete)))
			return err;
		stopped = last;
		if (res->steps && !memcmp(r->prev, e->regs, g_size)) {
			if ((err = null_step(e, r, res)) || last)
				return err;
		} else {
			r->nulls = 0;
			if ((err = record(e, r, res, complete, &stopped)) || res->end != ENGINE_END_NONE) {
				/* --until is seen at its instruction: the step
				 * after it is on its way; let it land. */
				if (!err && !stopped && !last && res->end == ENGINE_END_UNTIL)
					err = engine_wait_stop(e, &st, HALT_TIMEOUT_MS);
				return err;
			}
			if (last) {
				res->end = r->count && res->steps >= r->count ? ENGINE_END_COUNT : ENGINE_END_INTERRUPTED;
				return 0;
			}
		}
		if (!stopped && (err = engine_wait_stop(e, &st, HALT_TIMEOUT_MS)))
			return err;
		if (!stopped && st.kind != TARGET_STOP_SIGNAL) {
			res->end = ENGINE_END_GUEST_EXITED;
			return 0;
		}
		if (r->over_ret && ((err = run_call_whole(e, r, res)) || res->end != ENGINE_END_NONE))
			return err;
	}
}

/* ---- through the plugin ---- */

/* What the STEP shows of the stack into the run's copy: a whole stack
 * replaces it, a window is laid over it (the plugin makes it reach what
 * the copy holds). A window that does not (a stack the plugin could not
 * read whole, user space) starts the copy anew: the backtrace sees less. */
static void keep_stack(struct step_run *r, const struct chan_hit_view *v)
{
	uint64_t sp = v->h.sp, lo = sp < r->stack_lo ? sp : r->stack_lo, end = sp + v->h.win_len;
	uint64_t hi = end > r->stack_hi ? end : r->stack_hi;

	if ((v->h.flags & CHAN_HIT_WHOLE_STACK) || !r->stack_hi || sp > r->stack_hi || end < r->stack_lo ||
	    hi - lo > CHAN_MAX_WINDOW) {
		bool whole = v->h.flags & CHAN_HIT_WHOLE_STACK;

		memcpy(r->stack, v->window, v->h.win_len);
		r->stack_lo = sp;
		r->stack_hi = end;
		r->link_len = whole ? v->h.link_len : 0;
		r->link = v->h.link;
		memcpy(r->linked, v->linked, r->link_len);
		return;
	}
	if (lo < r->stack_lo) /* deeper than before: the copy grows down */
		memmove(r->stack + (r->stack_lo - lo), r->stack, r->stack_hi - r->stack_lo);
	r->stack_lo = lo;
	r->stack_hi = hi;
	memcpy(r->stack + (sp - r->stack_lo), v->window, v->h.win_len);
}

/* What function @s is (enum irq_entry). */
static enum irq_entry irq_entry_of(const struct sym *s)
{
	if (!strcmp(s->name, "irq_entries_start") || !strcmp(s->name, "spurious_entries_start"))
		return IRQ_ENTRY_ANYWHERE;
	if (!strcmp(s->name, "asm_common_interrupt") || !strncmp(s->name, "asm_sysvec_", 11) ||
	    !strcmp(s->name, "asm_spurious_interrupt"))
		return IRQ_ENTRY_FIRST;
	return IRQ_ENTRY_NONE;
}

/* Is @pc an external interrupt's first instruction? Asked at every step:
 * the answer for the last function is kept. */
static bool interrupt_entry(struct engine *e, struct step_run *r, uint64_t pc)
{
	const struct sym *s = sym_lookup_addr(e->syms, pc);

	if (!s)
		return false;
	if (s != r->entry_sym) {
		r->entry_sym = s;
		r->entry_kind = irq_entry_of(s);
	}
	return r->entry_kind == IRQ_ENTRY_ANYWHERE || (r->entry_kind == IRQ_ENTRY_FIRST && pc == s->addr);
}

/*
 * Is this STEP one to pass by unrecorded? A single step holds interrupts
 * off (but for --step-irqs and replays): at an interrupt's entry the
 * hardware frame on the stack says where it returns (rip at rsp, rsp at
 * rsp + 24), and steps go by until that instruction comes with that rsp.
 * A call beyond --max-depth runs whole the same way, to its return.
 */
static bool passed_by(struct engine *e, struct step_run *r, uint64_t pc, uint64_t sp, struct engine_result *res)
{
	if (r->irq_sp || r->in_call) {
		uint64_t to_pc = r->irq_sp ? r->irq_pc : r->over_ret, to_sp = r->irq_sp ? r->irq_sp : r->over_sp;

		if (pc != to_pc || sp != to_sp)
			return true;
		r->irq_sp = 0;
		r->in_call = false;
		r->over_ret = 0;
		return false;
	}
	if (e->o.step_irqs || e->o.replay || !res->steps || !interrupt_entry(e, r, pc) || sp < r->stack_lo ||
	    sp > r->stack_hi || r->stack_hi - sp < 32)
		return false; /* not an interrupt, or its hardware frame is not in the copy */
	memcpy(&r->irq_pc, r->stack + (sp - r->stack_lo), 8);
	memcpy(&r->irq_sp, r->stack + (sp - r->stack_lo) + 24, 8);
	return true;
}

/* The STEP's one capture: its instruction's bytes. */
static int step_code(struct step_run *r, const struct chan_hit_view *v)
{
	struct chan_capture cap;

	if (v->h.caps_len < sizeof(cap))
		return -EPROTO;
	memcpy(&cap, v->caps, sizeof(cap));
	if (cap.addr != v->h.pc || !cap.len || cap.len > 16 || sizeof(cap) + cap.len != v->h.caps_len)
		return -EPROTO;
	r->code = v->caps + sizeof(cap);
	r->code_len = cap.len;
	return 0;
}

/* The registers and stack of one STEP as the engine's state, recorded. */
static int record_step(struct engine *e, struct step_run *r, const struct chan_hit_view *v, struct engine_result *res)
{
	const uint8_t *regs;
	bool stopped = false;
	int err;

	if ((err = step_code(r, v)))
		return kerr_set(e->err, sizeof(e->err), err, "the plugin sent a STEP at 0x%" PRIx64 " without its code", v->h.pc);
	regs = engine_plugin_show(e, v, r->stack + (v->h.sp - r->stack_lo), r->stack_hi - v->h.sp, r->link, r->linked,
				  r->link_len);
	/* The first instruction of a call beyond --max-depth is recorded,
	 * marked; the rest of the call goes by. */
	r->over_entry = r->over_ret && v->h.sp == r->over_sp - 8;
	if (r->over_ret && !r->over_entry)
		r->over_ret = 0; /* not in the call (an exception came first): stepped as it comes */
	err = record(e, r, res, false, &stopped);
	if (!err && r->over_entry) {
		r->in_call = true;
		res->stepped_over++;
	}
	r->over_entry = false;
	if (!err && res->end == ENGINE_END_NONE && r->count && res->steps >= r->count)
		res->end = ENGINE_END_COUNT;
	engine_plugin_unshow(e, v->h.sp, regs);
	return err;
}

/* The STEP's whole register block into r->regs, @v to show it: a STEP
 * that carries its head only (CHAN_HIT_REGS_HEAD) has the rest of the
 * block of the STEP before. */
static int whole_registers(struct engine *e, struct step_run *r, struct chan_hit_view *v)
{
	if (v->h.flags & CHAN_HIT_REGS_HEAD && !r->regs_whole)
		return kerr_set(e->err, sizeof(e->err), -EPROTO,
				"the plugin sent a STEP with part of its registers, and no STEP before it");
	memcpy(r->regs, v->regs, v->h.regs_len);
	r->regs_whole = true;
	v->regs = r->regs;
	v->h.regs_len = (uint32_t)target_desc(e->t)->g_size;
	return 0;
}

int engine_step_take(struct engine *e, const struct chan_hit_view *step, struct engine_result *res)
{
	struct step_run *r = e->step;
	struct chan_hit_view whole = *step, *v = &whole;
	int err;

	if (!r || res->end != ENGINE_END_NONE)
		return 0; /* past the end: the guest is being halted */
	if ((err = whole_registers(e, r, v)))
		return err;
	keep_stack(r, v);
	if (passed_by(e, r, v->h.pc, v->h.sp, res))
		return 0;
	if (!res->steps) /* the rate is the steps', as the gdbstub's is */
		e->t0_ns = trace_now_ns();
	return record_step(e, r, v, res);
}

/* engine_step through the plugin. */
static int plugin_steps(struct engine *e, struct step_run *r, struct engine_result *res)
{
	int err, flushed;

	r->stack = malloc(CHAN_MAX_WINDOW);
	r->linked = malloc(CHAN_MAX_WINDOW);
	r->regs = malloc(target_desc(e->t)->g_size);
	if (!r->stack || !r->linked || !r->regs)
		err = kerr_set(e->err, sizeof(e->err), -ENOMEM, "out of memory");
	else {
		e->step = r;
		/* A hundred thousand events a second: written in batches. */
		err = trace_batch(e->trace, STEP_BATCH);
		err = err ? err : engine_plugin_step(e, r->probe, r->hits, (uint32_t)r->want, r->until_return, res);
		e->step = NULL;
		if ((flushed = trace_batch(e->trace, 0)) && !err)
			err = kerr_set(e->err, sizeof(e->err), flushed, "writing the trace: %s", strerror(-flushed));
	}
	if (!err && !res->steps && res->end == ENGINE_END_GUEST_EXITED)
		err = kerr_set(e->err, sizeof(e->err), -ECHILD, "the guest ended before hit %" PRIu64 " of %s", r->hits,
			       r->at_spec);
	free(r->stack);
	free(r->linked);
	free(r->regs);
	return err;
}

int engine_step(struct engine *e, const struct probe *at, uint64_t hits, uint64_t count, bool until_return,
		struct engine_result *res)
{
	struct step_run r = {
		.at_spec = at->spec, .at = at->addr, .hits = hits, .count = count, .until_return = until_return,
		.at_entry = at->at_entry, .probe = at,
		.want = e->o.stack_bytes < 256 ? 256 : e->o.stack_bytes,
	};
	int err;

	engine_clear_err(e);
	memset(res, 0, sizeof(*res));
	e->bt_ends = res->bt_ends;
	e->nprof = 0;
	if (r.want > memcache_window_max(e->mc))
		r.want = memcache_window_max(e->mc);
	if (snapshot_new(&r.sn, e->mc) || !(r.prev = malloc(target_desc(e->t)->g_size))) {
		err = kerr_set(e->err, sizeof(e->err), -ENOMEM, "out of memory");
		goto out;
	}
	e->t0_ns = trace_now_ns();
	if (e->chan) {
		err = plugin_steps(e, &r, res);
		goto out;
	}
	if (hits) {
		engine_warm_start(e, r.at);
		err = run_to_hit(e, &r, res);
		engine_warm_some(e, true); /* what is not read ahead by now waits */
		if (err || res->end != ENGINE_END_NONE)
			goto out;
	}
	if ((err = start_stepping(e, &r)))
		goto out;
	e->t0_ns = trace_now_ns();
	err = step_loop(e, &r, res);
	if (err && err != -ECONNRESET && !e->err[0])
		err = engine_target_fail(e, err);
out:
	if (err == -ECONNRESET) {
		res->end = ENGINE_END_GUEST_EXITED;
		err = 0;
	}
	res->seconds = engine_since(e);
	engine_progress(e, res->steps, "steps", NULL, true);
	free(r.prev);
	snapshot_free(r.sn);
	return err;
}

int engine_find_hit(struct engine *e, const struct probe *at, uint64_t hits, struct engine_result *res)
{
	struct step_run r = { .at_spec = at->spec, .at = at->addr, .hits = hits, .probe = at };
	int err;

	engine_clear_err(e);
	memset(res, 0, sizeof(*res));
	if ((err = run_to_hit(e, &r, res)) || res->end != ENGINE_END_NONE)
		return err == -ECONNRESET ? kerr_set(e->err, sizeof(e->err), err, "the guest ended before hit %" PRIu64 " of %s", hits,
						       at->spec) : err;
	engine_update_guest_clock(e);
	return engine_clear_breakpoints(e);
}

static bool all_placed(const struct probe_set *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		if (!ps->v[i].addr)
			return false;
	return true;
}

int engine_run_to_modules(struct engine *e, struct probe_set *ps, struct engine_result *res)
{
	uint64_t pc = 0;
	int err;

	engine_clear_err(e);
	memset(res, 0, sizeof(*res));
	if (!e->o.module_loader)
		return kerr_set(e->err, sizeof(e->err), -ENOENT, "this kernel has no module loader to wait at (no modules?)");
	if ((err = engine_place(e, e->o.module_loader)))
		return err;
	while (!all_placed(ps)) {
		struct target_stop st;
		enum engine_end end = ENGINE_END_NONE;

		if ((err = engine_resume(e, pc)) || (err = engine_run_until_stop(e, &st, &end)))
			break;
		if (end != ENGINE_END_NONE) {
			res->end = end;
			break;
		}
		if ((err = target_read_regs(e->t, &e->regs))) {
			err = engine_target_fail(e, err);
			break;
		}
		pc = engine_reg(e, e->pc_idx);
		if (pc == e->o.module_loader && (err = e->o.modules_changed(e->o.modules_ctx)))
			break;
	}
	if (err == -ECONNRESET) {
		res->end = ENGINE_END_GUEST_EXITED;
		err = 0;
	}
	return err ? err : res->end == ENGINE_END_GUEST_EXITED ? 0 : engine_clear_breakpoints(e);
}
