// SPDX-License-Identifier: MIT
/*
 * stepbench: single steps on one connection to a guest's gdbstub, kstep's
 * fully recorded steps (registers, stack window, backtrace, disassembly, CTF
 * event) alternating with a bare 's' loop (the ceiling of the connection).
 * Leaves the guest stopped (no detach) for the next contender.
 *
 *   stepbench ENDPOINT VMLINUX SPEC STEPS ROUNDS TRACEDIR
 * prints: "bare N SECONDS" and "kstep N SECONDS" lines, one per round.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

static double seconds_since(uint64_t t0)
{
	return (double)(trace_now_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
	struct engine_opts o = { .stack_bytes = 256 };
	struct trace_env env = { .vmlinux = argv[2], .banner = "", .command = "stepbench" };
	struct rsp_conn *rsp;
	struct target *t;
	struct symtab *syms;
	struct engine *e;
	struct trace *tr;
	struct engine_result res;
	char err[512];
	uint64_t at, steps;
	bool before;
	int rounds;

	if (argc != 7) {
		fprintf(stderr, "usage: stepbench ENDPOINT VMLINUX SPEC STEPS ROUNDS TRACEDIR\n");
		return 2;
	}
	steps = strtoull(argv[4], NULL, 0);
	rounds = atoi(argv[5]);
	if (rsp_connect(&rsp, argv[1], err, sizeof(err)) || target_open(&t, rsp, err, sizeof(err)) ||
	    sym_open(&syms, argv[2], err, sizeof(err))) {
		fprintf(stderr, "stepbench: %s\n", err);
		return 1;
	}
	if (sym_resolve(syms, argv[3], &at)) {
		fprintf(stderr, "stepbench: unknown symbol %s\n", argv[3]);
		return 1;
	}
	if (trace_open(&tr, argv[6], target_desc(t), &env, err, sizeof(err))) {
		fprintf(stderr, "stepbench: %s\n", err);
		return 1;
	}
	if (engine_new(&e, t, syms, tr, &o) || engine_before_kernel(e, &before) ||
	    (before && engine_run_to_start_kernel(e, 60000))) {
		fprintf(stderr, "stepbench: %s\n", engine_errmsg(e));
		return 1;
	}
	target_set_sstep(t, TARGET_SSTEP_ENABLE | TARGET_SSTEP_NOIRQ | TARGET_SSTEP_NOTIMER);
	for (int r = 0; r < rounds; r++) {
		uint64_t t0;

		/* kstep first: the first round also runs to the breakpoint. */
		if (engine_step(e, argv[3], at, r ? 0 : 1, steps, false, &res)) {
			fprintf(stderr, "stepbench: %s\n", engine_errmsg(e));
			return 1;
		}
		printf("kstep %" PRIu64 " %.6f\n", res.steps, res.seconds);
		t0 = trace_now_ns();
		for (uint64_t i = 0; i < steps; i++) {
			struct target_stop st;

			if (target_step(t, 0) || target_wait(t, &st, 5000)) {
				fprintf(stderr, "stepbench: %s\n", target_errmsg(t));
				return 1;
			}
		}
		printf("bare %" PRIu64 " %.6f\n", steps, seconds_since(t0));
		fflush(stdout);
	}
	trace_close(tr);
	engine_free(e);
	target_close(t);
	rsp_close(rsp); /* no 'D': the guest stays stopped for gdb */
	sym_close(syms);
	return 0;
}
