// SPDX-License-Identifier: MIT
/*
 * ceiling: what the connection to a guest's gdbstub allows at best, measured
 * on the same connection as kstep, so that bench/run can print ratios.
 *
 *   ceiling steps ENDPOINT VMLINUX SPEC STEPS ROUNDS TRACEDIR
 *	kstep's fully recorded steps (registers, stack window, backtrace,
 *	disassembly, CTF event) from the first hit of SPEC, alternating with
 *	a bare 's' loop. Prints "kstep N SECONDS" and "bare N SECONDS" lines,
 *	one each per round.
 *   ceiling stops ENDPOINT VMLINUX SPEC STOPS
 *	bare breakpoint loops at SPEC that record nothing: "emulated N
 *	SECONDS" passes the breakpoint as kstep does (the push under it
 *	carried out with one g and three writes riding on the continue);
 *	"stepover N SECONDS" single-steps over it first, as a client that
 *	cannot emulate the instruction (or gdb) must.
 *
 * Leaves the guest stopped (no detach) for the next contender.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

struct conn {
	struct rsp_conn *rsp;
	struct target *t;
	struct symtab *syms;
	const char *vmlinux;
	uint64_t at;
};

static double seconds_since(uint64_t t0)
{
	return (double)(trace_now_ns() - t0) / 1e9;
}

static int fail(const char *what)
{
	fprintf(stderr, "ceiling: %s\n", what);
	return 1;
}

static int conn_open(struct conn *c, const char *endpoint, const char *vmlinux, const char *spec)
{
	char err[512];

	c->vmlinux = vmlinux;
	if (rsp_connect(&c->rsp, endpoint, err, sizeof(err)) || target_open(&c->t, c->rsp, err, sizeof(err)) ||
	    sym_open(&c->syms, vmlinux, err, sizeof(err)))
		return fail(err);
	if (sym_resolve(c->syms, spec, &c->at))
		return fail("unknown symbol");
	return 0;
}

static void conn_close(struct conn *c)
{
	target_close(c->t);
	rsp_close(c->rsp); /* no 'D': the guest stays stopped */
	sym_close(c->syms);
}

static int steps(struct conn *c, const char *spec, const char *tracedir, uint64_t n, int rounds)
{
	struct engine_opts o = { .stack_bytes = 256 };
	struct trace_env env = { .vmlinux = c->vmlinux, .banner = "", .command = "ceiling" };
	struct engine_result res;
	struct engine *e;
	struct trace *tr;
	char err[512];
	bool before;

	int dfd;

	if (trace_prepare_dir(tracedir, true, &dfd, err, sizeof(err)) ||
	    trace_open(&tr, dfd, tracedir, target_desc(c->t), &env, err, sizeof(err)))
		return fail(err);
	if (engine_new(&e, c->t, c->syms, tr, &o, err, sizeof(err)))
		return fail(err);
	if (engine_before_kernel(e, &before) ||
	    (before && engine_run_to_start_kernel(e, 60000)))
		return fail(engine_errmsg(e));
	target_set_sstep(c->t, TARGET_SSTEP_ENABLE | TARGET_SSTEP_NOIRQ | TARGET_SSTEP_NOTIMER);
	for (int r = 0; r < rounds; r++) {
		uint64_t t0;

		/* kstep first: the first round also runs to the breakpoint. */
		struct probe at = { .spec = (char *)spec, .addr = c->at, .at_entry = true };

		if (engine_step(e, &at, r ? 0 : 1, n, false, &res))
			return fail(engine_errmsg(e));
		printf("kstep %" PRIu64 " %.6f\n", res.steps, res.seconds);
		t0 = trace_now_ns();
		for (uint64_t i = 0; i < n; i++) {
			struct target_stop st;

			if (target_step(c->t, 0) || target_wait(c->t, &st, 5000))
				return fail(target_errmsg(c->t));
		}
		printf("bare %" PRIu64 " %.6f\n", n, seconds_since(t0));
		fflush(stdout);
	}
	trace_close(tr);
	engine_free(e);
	return 0;
}

/* Run to the breakpoint and read the registers there. */
static int wait_hit(struct conn *c, const uint8_t **raw, int pc)
{
	struct target_stop st;
	int err;

	do
		err = target_wait(c->t, &st, 60000);
	while (!err && st.kind == TARGET_STOP_OUTPUT);
	if (err || st.kind != TARGET_STOP_SIGNAL || target_read_regs(c->t, raw))
		return fail(err ? target_errmsg(c->t) : "the guest ended");
	if (target_reg_u64(c->t, *raw, pc) != c->at)
		return fail("stopped away from the breakpoint");
	return 0;
}

static int stops_loop(struct conn *c, const char *mode, uint64_t n)
{
	const struct target_desc *d = target_desc(c->t);
	int pc = target_desc_find(d, "rip"), sp = target_desc_find(d, "rsp"), bp = target_desc_find(d, "rbp");
	bool emulate = !strcmp(mode, "emulated");
	const uint8_t *raw;
	uint8_t insn;
	uint64_t t0;

	if (target_breakpoint(c->t, true, TARGET_BP_SW, c->at) || target_continue(c->t) || wait_hit(c, &raw, pc))
		return 1;
	/* Read in the kernel: user space may not map kernel text. */
	if (target_read_mem(c->t, c->at, &insn, 1) || insn != 0x55)
		return fail("the function does not start with push %rbp");
	t0 = trace_now_ns(); /* from the first hit on, as kstep counts */
	for (uint64_t i = 0; i < n; i++) {
		uint64_t rsp = target_reg_u64(c->t, raw, sp);
		struct target_write w[3] = {
			{ .addr = rsp - 8, .value = target_reg_u64(c->t, raw, bp), .len = 8 },
			{ .is_reg = true, .reg = sp, .value = rsp - 8 },
			{ .is_reg = true, .reg = pc, .value = c->at + 1 },
		};

		if (emulate ? target_continue_with(c->t, w, 3) : target_continue_over(c->t, c->at, 0))
			return fail(target_errmsg(c->t));
		if (wait_hit(c, &raw, pc))
			return 1;
	}
	printf("%s %" PRIu64 " %.6f\n", mode, n, seconds_since(t0));
	fflush(stdout);
	return target_breakpoint(c->t, false, TARGET_BP_SW, c->at) ? fail(target_errmsg(c->t)) : 0;
}

int main(int argc, char **argv)
{
	struct conn c;
	int err;

	if (argc == 8 && !strcmp(argv[1], "steps")) {
		if (conn_open(&c, argv[2], argv[3], argv[4]))
			return 1;
		err = steps(&c, argv[4], argv[7], strtoull(argv[5], NULL, 0), atoi(argv[6]));
	} else if (argc == 6 && !strcmp(argv[1], "stops")) {
		uint64_t n = strtoull(argv[5], NULL, 0);

		if (conn_open(&c, argv[2], argv[3], argv[4]))
			return 1;
		err = stops_loop(&c, "emulated", n) || stops_loop(&c, "stepover", n);
	} else {
		fprintf(stderr, "usage: ceiling steps ENDPOINT VMLINUX SPEC STEPS ROUNDS TRACEDIR\n"
				"       ceiling stops ENDPOINT VMLINUX SPEC STOPS\n");
		return 2;
	}
	conn_close(&c);
	return err;
}
