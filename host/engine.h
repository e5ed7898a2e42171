/* SPDX-License-Identifier: MIT */
/*
 * engine: drives a target through boot, breakpoint stops and single steps,
 * taking a snapshot (registers, stack window, frame-pointer backtrace, skb
 * tag, instruction) at each and writing it to the trace. Its parts:
 * engine.c (handle, fetch), engine_loop.c (the stop loop), engine_boot.c, engine_bp.c,
 * engine_probe.c, engine_step.c, engine_replay.c, and engine_plugin.c
 * (probe hits from kstep's QEMU plugin); memory goes through memcache,
 * backtraces through snapshot.
 */
#ifndef KSTEP_ENGINE_H
#define KSTEP_ENGINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cfi.h"
#include "disasm.h"
#include "fetcharg.h"
#include "probes.h"
#include "pcapfilter.h"
#include "snapshot.h"
#include "symbols.h"
#include "target.h"
#include "trace.h"

struct engine_opts {
	size_t stack_bytes;          /* recorded stack window (--stack-bytes) */
	size_t max_stack;            /* frames a backtrace records (--max-stack), 0: SNAPSHOT_FRAMES */
	uint64_t max_stops;          /* 0: no limit */
	double duration;             /* seconds, 0: no limit */
	bool step_irqs;              /* let interrupts and timers in while stepping */
	/* The live counter's line, now and then and once @final; NULL: none.
	 * The engine never prints: its caller says it. */
	void (*progress)(const char *line, bool final);
	struct cfi *cfi;             /* call frame information, NULL: frame pointers only */
	enum snapshot_unwind_mode unwind;
	/* Modules loaded while tracing: a stop at @module_loader (the kernel's
	 * do_init_module, where a new module's sections are known) calls
	 * @modules_changed, which gives probes in modules their addresses;
	 * the engine then places them. 0: no such stop. */
	uint64_t module_loader;
	int (*modules_changed)(void *ctx);
	/* ... and a stop at @module_unloader (free_module, the module still
	 * in memory): @module_going drops the module whose struct module is
	 * at @mod, and gives its range, where kstep's breakpoints come out
	 * before the memory is freed and taken by something else. */
	uint64_t module_unloader;
	int (*module_going)(void *ctx, uint64_t mod, uint64_t *lo, uint64_t *hi);
	void *modules_ctx;
	volatile sig_atomic_t *interrupted; /* set by SIGINT */
	/* The guest's clock: its instruction count, one instruction taking
	 * 2^@icount_shift ns (QEMU's -icount shift). NULL: not known. */
	int (*guest_clock)(void *ctx, uint64_t *icount);
	void *clock_ctx;
	unsigned int icount_shift;
	/* The guest replays a recording (kstep --replay): nothing is written
	 * into it (breakpoints are stepped over, never emulated), steps let
	 * interrupts in (the replay delivers them where they were recorded),
	 * and events carry the guest's clock as their timestamp, so that two
	 * replays write the same trace. */
	bool replay;
	/* --pcap-filter: a stop with a packet is kept only if its bytes match
	 * (stops without one are kept). NULL: all. */
	struct pcap_filter *pcap;
	unsigned int snaplen;        /* --snaplen: packet bytes kept, 0: PACKET_HEADERS_READ */
};

enum engine_end {
	ENGINE_END_NONE,
	ENGINE_END_MAX_STOPS,
	ENGINE_END_DURATION,
	ENGINE_END_INTERRUPTED,
	ENGINE_END_GUEST_EXITED,     /* the stub reported exit or closed: QEMU ended */
	ENGINE_END_OOPS,             /* an oops probe hit: the guest is frozen */
	ENGINE_END_RETURNED,         /* step: back in the caller */
	ENGINE_END_COUNT,            /* step: instruction count reached */
	ENGINE_END_UNTIL,            /* step: --until's address reached */
};

struct engine_result {
	enum engine_end end;
	uint64_t stops, steps;
	uint64_t filtered;           /* probe hits their filter did not keep */
	uint64_t module_loads;        /* stops at the module loader */
	uint64_t module_unloads;      /* modules kstep knew that went */
	uint64_t null_steps;         /* steps the stub reported without executing */
	uint64_t stepped_over;       /* calls run whole under --max-depth */
	double seconds;
	double since_first_stop;     /* of those, from the first stop on (the guest at its workload) */
	double own_seconds;          /* of those, kstep's own (snapshot and resume) */
	double module_seconds;       /* kstep's at the module loader (reading the module list) */
	uint64_t bt_ends[UNWIND_NENDS]; /* backtraces recorded, by how they ended */
	/* With the plugin (engine_use_plugin): HITs read, the hit count the
	 * plugin reported last, and how often (and how long) a vCPU waited
	 * for kstep to read; registers kstep asked for that it cannot read. */
	uint64_t plugin_hits, plugin_reported, plugin_waits;
	double plugin_wait_seconds;
	uint32_t plugin_regs_missing;
	struct probe *oops_probe;
	uint64_t oops_seq;
	char oops_bt[4096];          /* decoded backtrace at the oops, one frame a line */
};

struct engine;

/* --stack-bytes at most: what one 'm' reply carries within QEMU's PacketSize
 * of 4096 ((4096 - 16) / 2 bytes, see target_max_read); a stub that
 * negotiated less gets its own limit. */
#define ENGINE_STACK_BYTES_MAX 2040

/* The error convention: functions return 0 or a negative errno and leave
 * the detail in engine_errmsg(); each one clears it first. The constructor,
 * having no handle yet, writes its reason into @err. */
int engine_new(struct engine **out, struct target *t, struct symtab *syms, struct trace *trace,
	       const struct engine_opts *o, char *err, size_t errlen);
/* The run after the boot: events go to @trace, with @o (the module hooks
 * and the rest the boot checks have filled in since engine_new). The
 * engine starts the run afresh: what the boot left (breakpoints placed,
 * caches, counters) is let go of, as in a new engine on the same target. */
int engine_set_trace(struct engine *e, struct trace *trace, const struct engine_opts *o, char *err, size_t errlen);
void engine_free(struct engine *e);
const char *engine_errmsg(const struct engine *e);

/* True if the guest has not started the kernel yet (halted at reset or in
 * the boot loader / decompressor). */
int engine_before_kernel(struct engine *e, bool *before);
/* From reset: a hardware breakpoint at start_kernel (software ones placed
 * before decompression are lost under KVM), continue, wait; with KASLR, the
 * guest is stopped where kstep first sees the moved kernel instead, and the
 * symbols are relocated. -ETIMEDOUT if the guest never got there. */
int engine_run_to_start_kernel(struct engine *e, int timeout_ms);
/*
 * Where KASLR put the kernel (the guest stopped, the kernel in memory): the
 * offset above its link address at which vmlinux's linux_banner is in guest
 * memory. Tries the symbols' current offset first, then the ones that put
 * the pc in the kernel's text, then all KASLR can pick. Relocates the
 * symbols. -ENOENT with a message naming KASLR and a foreign vmlinux.
 */
int engine_locate_kernel(struct engine *e, uint64_t *offset);
/* True when engine_run_to_start_kernel stopped the guest where it first saw
 * the kernel moved by KASLR (within a few ms of its start), not at
 * start_kernel itself. */
bool engine_caught_early(const struct engine *e);
/* --unwind check: how far the two unwinders agreed. */
const struct snapshot_agreement *engine_unwind_agreement(const struct engine *e);
/* --unwind check, plugin steps: frames carried over from the step before
 * against a fresh walk (snapshot_check_carried). */
const struct snapshot_agreement *engine_carried_agreement(const struct engine *e);
/* --unwind check: CFI walks through kstep's cached rows against libdwfl's
 * own (snapshot_rows_agreement). */
const struct snapshot_agreement *engine_rows_agreement(const struct engine *e);
/* The pc of the last registers read. */
uint64_t engine_pc(const struct engine *e);
/* Compare the guest's linux_banner with vmlinux's; -ESTALE on mismatch. */
int engine_check_banner(struct engine *e);
/* Stop a running guest (^C) so that it can be inspected. */
int engine_halt(struct engine *e);

int engine_trace(struct engine *e, struct probe_set *ps, struct engine_result *res);
/* engine_trace takes probe hits from kstep's QEMU plugin over @chan (the
 * guest does not stop for them); the gdbstub serves the rest. Probes with
 * fetched fields, filters, returns, packets or the oops catch are not
 * served this way (engine_plugin_serves). NULL: breakpoints again. */
struct chan;
void engine_use_plugin(struct engine *e, struct chan *chan);
/* Single-step from the @hits-th hit of probe @at (0: from where the guest
 * stands): @count instructions (0: no limit) and/or until the function
 * returns to its caller (and/or engine_step_until's address). */
int engine_step(struct engine *e, const struct probe *at, uint64_t hits, uint64_t count, bool until_return,
		struct engine_result *res);
/* engine_step also ends where @addr is reached (its instruction recorded,
 * as the last); 0: no such end. For the next engine_step. */
void engine_step_until(struct engine *e, uint64_t addr);
/* engine_step steps over the calls made @depth calls below the function it
 * started in (0: all its calls), each recorded as one step at the callee's
 * first instruction (probe "stepped-over"); -1: into every call. */
void engine_step_max_depth(struct engine *e, int depth);
/* Run the guest, stopping only at the module loader, until every probe of
 * @ps has an address (its module is loaded), or the guest ends or ^C
 * (res->end says which). */
int engine_run_to_modules(struct engine *e, struct probe_set *ps, struct engine_result *res);
/* Instructions recorded per function by engine_step, most first. */
struct engine_fn_steps {
	const char *name;            /* the function's symbol, "?" outside any */
	uint64_t steps;
};
/* Valid until the next engine_step or engine_free. */
size_t engine_step_profile(struct engine *e, const struct engine_fn_steps **out);
/* ---- replays (engine_replay.c; engine_opts.replay, a guest clock) ---- */
/* Run to the @hits-th kept hit of @at and stay there, breakpoints removed. */
int engine_find_hit(struct engine *e, const struct probe *at, uint64_t hits, struct engine_result *res);
/* Instructions the guest has run, at the current stop. */
uint64_t engine_icount(const struct engine *e);
/* Continue until the guest stops by itself (a QMP replay-break), ends or
 * ^C (res->end). */
int engine_run_on(struct engine *e, struct engine_result *res);
/* Single steps through the gdbstub until the guest has run @icount
 * instructions (not past them). Each is a debug stop, after which QEMU
 * translates its code anew (7.2 to 10.1): the plugin's step callbacks go
 * into code that ran before it was told to step. */
int engine_single_step_to(struct engine *e, uint64_t icount);
/* Where @expr's value lies in memory at the current stop (farg_location),
 * and what it holds there. */
int engine_location(struct engine *e, const struct farg *expr, uint64_t *addr, size_t *len, uint64_t *value);
/* The last write before a point, as engine_last_write finds it. */
struct engine_write {
	uint64_t writes;           /* writes seen (each one a stop event, "write") */
	uint64_t icount;           /* the last one's: instructions run after it */
	uint64_t pc;               /* the instruction that wrote */
	char insn[128];            /* it, disassembled; "" when not found */
	char where[160];           /* FUNCTION+OFF of it */
	uint64_t value;            /* what the location held after it */
	char bt[2048];             /* the backtrace there, one frame a line */
};
/* Run on (a replay-break at the point stops it) with a write watchpoint on
 * [@addr, @addr + @len): every write is recorded as a stop event, and the
 * last one is described in @w. */
int engine_last_write(struct engine *e, uint64_t addr, size_t len, struct engine_write *w, struct engine_result *res);
/* Step on until the guest has run @until_icount instructions, watching
 * register @reg: every instruction that changes it is recorded as a "write"
 * stop event (its snapshot right after it), the last one in @w. */
int engine_last_reg_write(struct engine *e, const char *reg, uint64_t until_icount, struct engine_write *w,
			  struct engine_result *res);
/* The stop the guest is at, a hit of @p: its event (fields, snapshot). */
int engine_record_hit(struct engine *e, struct probe *p, struct engine_result *res);
/* The memory operand of the instruction at the current pc. */
bool engine_mem_operand(struct engine *e, struct disasm_mem *m, char *insn, size_t len);
/* Remove breakpoints this engine placed. */
int engine_clear_breakpoints(struct engine *e);

#endif
