/* SPDX-License-Identifier: MIT */
/*
 * engine_priv: what the engine's files share (engine.c: the handle and the
 * fetch; engine_loop.c: the breakpoint-stop loop; engine_boot.c: reaching start_kernel and checking
 * the vmlinux; engine_bp.c: placing and passing breakpoints, and taking out
 * a going module's; engine_probe.c: a probe's fields, filter and return;
 * engine_step.c: the single-step loop; engine_replay.c: a replay's
 * instruction count, going back; engine_plugin.c: the plugin's hits taken
 * as stops). Not for use outside the engine.
 */
#ifndef KSTEP_ENGINE_PRIV_H
#define KSTEP_ENGINE_PRIV_H

#include "disasm.h"
#include "engine.h"
#include "kerr.h"
#include "memcache.h"
#include "packet.h"
#include "snapshot.h"

/* A stop after ^C should come at once; anything slower means a wedged stub. */
#define HALT_TIMEOUT_MS 5000
/* Fields one event carries at most: fetch arguments, the packet, durations. */
#define ENGINE_MAX_VALUES 48
/* Calls waiting for their return at once; the oldest goes when more come. */
#define ENGINE_PENDING_CALLS 256

/* A call whose return a probe records. */
struct pending_call {
	uint64_t ret, sp;            /* the return address, and rsp after the return */
	uint64_t guest_ns, host_ns;  /* at the call */
	struct probe *p;
};

/* A breakpoint kept while calls wait on it; @temporary: placed for them. */
struct hold {
	uint64_t addr;
	unsigned int count;
	bool temporary;
};

struct engine {
	struct target *t;
	struct symtab *syms;
	struct trace *trace;
	struct disasm *dis;
	struct memcache *mc;
	struct snapshot_ctx *snap;
	struct engine_opts o;
	int pc_idx, sp_idx, fp_idx, gs_idx, arg_idx[6];
	int dwarf_idx[CFI_NREGS];     /* description index of each DWARF register */
	uint64_t *bt_ends;            /* the running result's counts, NULL: none */
	uint64_t seq;
	uint64_t replay_icount;       /* a replay's instruction count when last seen to move ... */
	double replay_moved;          /* ... and when (engine_since) */
	const uint8_t *regs;          /* of the current snapshot */
	uint8_t *raw;                 /* what the window fetch brought */
	uint64_t *bp;                 /* software breakpoints placed */
	size_t nbp;
	struct hold *holds;           /* breakpoints calls wait on */
	size_t nholds;
	struct pending_call calls[ENGINE_PENDING_CALLS];
	size_t ncalls;
	struct packet_layout pkt;
	uint64_t guest_ns;            /* the guest's clock at the current stop */
	uint64_t step_until;          /* engine_step_until's address, 0: none */
	int step_max_depth;           /* engine_step_max_depth's, -1: none */
	struct engine_fn_steps *prof; /* steps per function */
	size_t nprof, last_prof;
	uint64_t t0_ns, last_progress_ns;
	uint64_t first_stop_ns;        /* when the first stop was written (trace_now_ns), 0: none yet */
	/* The instruction being stepped writes no memory and keeps rsp: the
	 * next snapshot can reuse this stack window as it is. */
	bool stack_kept;
	/* Otherwise, where it leaves rsp, when that follows from its code. */
	bool sp_known;
	uint64_t next_sp;
	/* engine_run_to_start_kernel stopped the guest where it found the
	 * kernel moved by KASLR, not at start_kernel. */
	bool caught_early;
	/* Probe hits come from kstep's QEMU plugin (engine_plugin.c); while
	 * one is taken, @hit_vcpu is its vCPU + 1. */
	struct chan *chan;
	uint32_t hit_vcpu;
	struct step_run *step;        /* the plugin's steps go to this run, NULL: none */
	struct warm *warm;            /* line tables read ahead until its first step */
	char err[512];
};

/* The error convention (DESIGN.md): return 0 or a negative errno; the
 * detail goes to e->err, which every public entry point clears first. */
/* --max-stops events are written: no more, even when one stop would write
 * several (returns to an address that is also a probe). */
static inline bool engine_at_max_stops(const struct engine *e, const struct engine_result *res)
{
	return e->o.max_stops && res->stops >= e->o.max_stops;
}
/* The target's message for @err. */
int engine_target_fail(struct engine *e, int err);
void engine_clear_err(struct engine *e);

uint64_t engine_reg(const struct engine *e, int idx);
/* Before a step run's first instruction, while the guest runs to it:
 * warm.h's reading ahead from @at, a slice at a time, until the steps
 * begin (@stepping) or nothing is left. */
void engine_warm_start(struct engine *e, uint64_t at);
void engine_warm_some(struct engine *e, bool stepping);
double engine_since(const struct engine *e);
void engine_progress(struct engine *e, uint64_t n, const char *what, const char *last, bool final);

/* Registers and the stack window in one round trip, and a single step of
 * @step_thread after them in the same write when it is >= 0. *complete:
 * the window holds @want bytes from rsp. */
int engine_fetch(struct engine *e, size_t want, int step_thread, bool *complete);
/* What the fetch's window lacks of @want bytes from rsp (rsp went where
 * its plan did not foresee: popq %rsp), read; the guest stopped. */
void engine_complete_window(struct engine *e, size_t want);
/* The skb probe @p's argument carries at this stop, 0: none. */
uint64_t engine_skb_at(struct engine *e, const struct probe *p);
/* The unwinders' view of the current registers. */
struct unwind_regs engine_unwind_regs(const struct engine *e);
void engine_dwarf_regs(const struct engine *e, uint64_t out[CFI_NREGS]);
/* @class_id: the event's class (0: the kind's own), @values its fields. */
int engine_write_event(struct engine *e, struct snapshot *sn, enum trace_kind kind, uint32_t class_id,
		       const char *probe, uint64_t skb, const struct trace_value *values, const char *insn,
		       const uint8_t *ibytes, uint8_t ilen);

/* The next stop reply, 'O' console output skipped. */
int engine_wait_stop(struct engine *e, struct target_stop *st, int timeout_ms);
/* A snapshot at a stop (registers and stack fetched): its backtrace, named. */
void engine_take(struct engine *e, struct snapshot *sn, enum unwind_entry entry);
/* Wait for the next stop while the guest runs, watching limits and ^C. */
int engine_run_until_stop(struct engine *e, struct target_stop *st, enum engine_end *end);

/* A hit of probe @p at the current registers: its event, the packet
 * report, the oops catch. Sets res->end when the trace ends here. */
int engine_record_stop(struct engine *e, struct probe *p, struct snapshot *sn, struct engine_result *res);

/* engine_plugin.c: the plugin's side of engine_trace. */
/* The register layout, once, and the plugin's word that it has it. */
int engine_plugin_start(struct engine *e, struct engine_result *res);
/* The probes with an address to the plugin; the hits it sent before. */
int engine_plugin_place(struct engine *e, struct probe_set *ps, struct snapshot *sn, struct engine_result *res);
/* Wait for a gdbstub stop, taking the plugin's hits meanwhile; halts the
 * guest at ^C, --duration and --max-stops (res->end says which). */
int engine_plugin_run_until_stop(struct engine *e, struct probe_set *ps, struct snapshot *sn,
				 struct target_stop *st, struct engine_result *res);
/* Everything the plugin holds, read (the guest stopped). */
int engine_plugin_sync(struct engine *e, struct probe_set *ps, struct snapshot *sn, struct engine_result *res);
/* engine_step through the plugin: from hit @hits of @at on (of those
 * its filters keep: each hit waits for engine_step_starts_at), or with
 * @hits 0 from the stopped vCPU's next instruction on (a replay stopped
 * short of the hit, after a debug stop: QEMU translates its code anew,
 * now with the plugin's step callbacks), every instruction of that vCPU,
 * with @window stack bytes, goes to engine_step_take until it sets
 * res->end (or the guest ends); @until_return: the plugin sends the step
 * where @at's call returns at once. */
int engine_plugin_step(struct engine *e, const struct probe *at, uint64_t hits, uint32_t window, bool until_return,
		       struct engine_result *res);
/* A hit of --at @p through the plugin, its state shown: do the steps
 * start here (its filters keep it, and it is the --hits-th kept)? */
bool engine_step_starts_at(struct engine *e, const struct probe *p);
struct chan_hit_view;
/* A HIT's or STEP's registers, its stack (@stack, from its rsp), the stack
 * linked to it and its captures as the engine's state, read offline (the
 * guest has moved on); returns the registers it stands in for, which
 * engine_plugin_unshow puts back. */
const uint8_t *engine_plugin_show(struct engine *e, const struct chan_hit_view *v, const uint8_t *stack,
				  size_t stack_len, uint64_t link, const uint8_t *linked, size_t link_len);
void engine_plugin_unshow(struct engine *e, uint64_t sp, const uint8_t *regs);
/* engine_step.c: one STEP of the plugin, into e->step's run. */
int engine_step_take(struct engine *e, const struct chan_hit_view *v, struct engine_result *res);

/* engine_bp.c */
int engine_place(struct engine *e, uint64_t addr);
/* Place every probe of @ps (@oops_only: every oops probe, which the plugin
 * engine leaves to the gdbstub) that has an address and no breakpoint yet. */
int engine_place_probes(struct engine *e, struct probe_set *ps, bool oops_only);
/* Resume from where the guest stopped: past our breakpoint if it sits there. */
int engine_resume(struct engine *e, uint64_t pc);
/* A breakpoint at @addr for as long as it is held (counted); one that was
 * not there before goes with the last release. */
int engine_hold(struct engine *e, uint64_t addr);
int engine_release(struct engine *e, uint64_t addr);
/* A module in [@lo, @hi) is going: its breakpoints out of the guest, its
 * holds and pending returns dropped, its probes without an address until
 * it comes back (probes_resolve_modules). */
int engine_forget_range(struct engine *e, struct probe_set *ps, uint64_t lo, uint64_t hi);

/* engine_probe.c */
/* Read the guest's clock (opts.guest_clock) into e->guest_ns. */
void engine_update_guest_clock(struct engine *e);
/* What a hit of a probe fetched: its fields, in its class's order. */
struct probe_hit {
	uint64_t skb;
	struct farg_value vals[ENGINE_MAX_VALUES];
	size_t n;
};
/* Fetch the fields of a hit of @p (with @skb). */
void engine_probe_fetch(struct engine *e, const struct probe *p, uint64_t skb, struct probe_hit *h);
/* Does the hit pass @p's filter (true without one)? */
bool engine_probe_matches(struct engine *e, const struct probe *p, const struct probe_hit *h);
/* A hit of @p that its filter kept: the call's return to wait for, the
 * event (snapshot @sn taken). 1: recorded, 0: not (a bare %return). */
int engine_probe_hit(struct engine *e, struct probe *p, const struct probe_hit *h, struct snapshot *sn,
		     struct engine_result *res);
/* A stop at @pc: the returns of the calls waiting there, with a snapshot
 * taken into @sn only when one is. */
int engine_returns_at(struct engine *e, uint64_t pc, struct snapshot *sn, struct engine_result *res);

#endif
