// SPDX-License-Identifier: MIT
/*
 * kstep why: in a replay, the last instruction that wrote a location (a
 * fetch expression, a register, an instruction's operand) before a point,
 * or why a packet was dropped (--drop): the dropping call stepped through.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "files.h"
#include "dropwhy.h"
#include "qmp.h"

#include "session.h"

/* kstep why on a register: instructions looked back through by default. */
#define WHY_WINDOW 2000

static void why_usage(FILE *f)
{
	fprintf(f, "Usage: kstep why --replay DIR --at SPEC (--addr EXPR | --operand) [--hits K] [OPTIONS]\n"
		   "       kstep why --replay DIR --drop [--filter EXPR] [--hits K] [OPTIONS]\n"
		   "Which instruction last wrote a memory location (or set a register) before a\n"
		   "point of a replay: one replay runs to the K-th hit of SPEC and finds where\n"
		   "EXPR lies; a second runs to that point again with a write watchpoint on it\n"
		   "(a register: steps the --window instructions before it). Every write is an\n"
		   "event in the trace (probe \"write\", its snapshot taken right after the\n"
		   "writing instruction); the last one is printed with its backtrace.\n\n"
		   "  -t, --at SPEC          NAME, NAME+OFFSET or 0xADDRESS\n"
		   "  -x, --addr EXPR        the location, as a fetch argument names it at SPEC:\n"
		   "                         skb->len, +8(%%rdi), $arg1->next, a global (see kstep\n"
		   "                         trace --help); at most 8 bytes are watched; or %%REG:\n"
		   "                         the instruction that last set that register\n"
		   "      --operand          the memory operand of the instruction at SPEC (an oops's\n"
		   "                         RIP): a constant address is said to be one, else where\n"
		   "                         the register it is made of came from\n"
		   "      --window N         how far back a register is looked for (default 2000\n"
		   "                         instructions)\n"
		   "      --drop             the K-th dropped packet (kfree_skb_reason freeing a\n"
		   "                         network packet): the branch that sent it to the drop\n"
		   "                         (the one after which its function could no longer\n"
		   "                         return without a drop), its source line, what it\n"
		   "                         compared and where each value came from (a call's\n"
		   "                         return, a load: then the last write to that memory);\n"
		   "                         one replay finds the drop, a second steps the\n"
		   "                         function that dropped, its calls stepped over\n"
		   "      --all              with --drop: every drop in the recording in turn, from\n"
		   "                         the K-th on (two replays each)\n"
		   "  -k, --hits K           the K-th hit (default 1)\n"
		   "  -f, --filter EXPR      count only the hits that match (with --drop: on the drop's\n"
		   "                         fields reason, dport, saddr, len..., joined by && only)\n"
		   "\n%s",
		   guest_help);
}

/* The location @text names at the probe @at, compiled against vmlinux. */
static int compile_location(struct session *s, const struct probe *at, const char *text, struct farg **out)
{
	const struct sym *fn = sym_lookup_addr(s->syms, at->addr);
	struct farg_scope scope = { .addr = at->addr, .at_entry = at->at_entry, .func = fn ? fn->addr : at->addr };
	char err[512];
	int ret = farg_compile(out, text, s->syms, &scope, err, sizeof(err));

	if (ret) {
		say_error("--addr %s", err + strlen("fetch argument "));
	} else if (!farg_in_memory(*out)) {
		say_error("--addr %s is not in memory at %s (a register, or a value computed from one): name a location, "
		          "e.g. a field a pointer points to (skb->len)", text, at->spec);
		ret = -EINVAL;
	}
	return ret;
}

static void print_last_write(const char *what, const struct engine_write *w, uint64_t now, const char *out)
{
	fprintf(stdout, "kstep: the last write to %s, %" PRIu64 " writes seen:\n", what, w->writes);
	fprintf(stdout, "  at instruction %" PRIu64 ": %s  %s\n", w->icount, w->where,
		w->insn[0] ? w->insn : "(the instruction before this address)");
	fprintf(stdout, "  it left 0x%" PRIx64 "; at the point it holds 0x%" PRIx64 "%s\n", w->value, now,
		w->value == now ? "" : " (different: a device wrote it after, or a wider write)");
	fprintf(stdout, "  backtrace there:\n%s", w->bt);
	fprintf(stdout, "trace: %s (every write, the last one last; read it with: babeltrace2 %s)\n", out, out);
}

/* The memory behind @expr at the point: its last store, in a second replay
 * with a write watchpoint on it. */
static int why_memory(struct session *s, const struct probe *at, uint64_t point, const char *text,
		      const struct farg *expr, struct engine_result *res)
{
	struct engine_write w;
	char what[256];
	uint64_t addr, value;
	size_t len;
	int ret;

	if ((ret = engine_location(s->engine, expr, &addr, &len, &value))) {
		say_error("--addr %s at %s: its memory cannot be read (a pointer on the way is not mapped)", text, at->spec);
		return ret;
	}
	say_info("%s is 0x%" PRIx64 " (%zu bytes, holding 0x%" PRIx64 ") at %s, instruction %" PRIu64
	         "; replay 2: watching it up to there", text, addr, len, value, at->spec, point);
	if ((ret = replay_run_again(s)))
		return ret;
	if ((ret = qmp_replay_break(s->clock, point))) {
		say_error("%s", qmp_errmsg(s->clock));
		return ret;
	}
	if ((ret = engine_last_write(s->engine, addr, len, &w, res))) {
		say_error("%s", engine_errmsg(s->engine));
		return ret;
	}
	if (res->end != ENGINE_END_NONE || engine_icount(s->engine) != point) {
		say_error("the second replay did not come back to instruction %" PRIu64 " (it stopped at %" PRIu64 ")", point,
		          engine_icount(s->engine));
		return -EIO;
	}
	snprintf(what, sizeof(what), "%s (0x%" PRIx64 ", %zu bytes)", text, addr, len);
	if (!w.writes)
		fprintf(stdout, "kstep: no instruction wrote %s between start_kernel and the point: it holds what it "
				"held then, or a device wrote it (DMA is not watched)\n", what);
	else
		print_last_write(what, &w, value, s->g->out);
	return 0;
}

/* Register @reg at the point: the last instruction that set it within the
 * @window instructions before, stepped through in a second replay. */
static int why_register(struct session *s, uint64_t point, const char *reg, uint64_t window,
			struct engine_result *res)
{
	uint64_t start = point > window ? point - window : 0;
	struct engine_write w;
	char what[64];
	int ret;

	say_info("replay 2: stepping the %" PRIu64 " instructions before it, watching %%%s", point - start, reg);
	if ((ret = replay_run_to(s, start, res)))
		return ret;
	if ((ret = engine_last_reg_write(s->engine, reg, point, &w, res))) {
		say_error("%s", engine_errmsg(s->engine));
		return ret;
	}
	if (res->end != ENGINE_END_NONE) {
		say_error("the replay ended before coming back to the point");
		return -EIO;
	}
	snprintf(what, sizeof(what), "%%%s", reg);
	if (!w.writes)
		fprintf(stdout, "kstep: no instruction set %s in the %" PRIu64 " instructions before the point: "
				"look further back with --window\n", what, point - start);
	else
		print_last_write(what, &w, w.value, s->g->out); /* a register: its value at the point */
	return 0;
}

/* --operand: where the address of the memory operand of the instruction at
 * the point came from (an oops's RIP: the bad pointer). */
static int why_operand(struct session *s, const struct probe *at, uint64_t point, uint64_t window,
		       struct engine_result *res)
{
	struct disasm_mem m;
	char insn[128];

	if (!engine_mem_operand(s->engine, &m, insn, sizeof(insn))) {
		say_error("the instruction at %s (%s) has no memory operand", at->spec, insn);
		return -EINVAL;
	}
	if ((!m.base[0] || !strcmp(m.base, "rip")) && !m.index[0]) {
		fprintf(stdout, "kstep: the address of %s at %s is a constant of the instruction itself (%s0x%" PRIx64
				"): no store and no register made it; it was compiled in\n",
			insn, at->spec, m.base[0] ? "rip+" : "", (uint64_t)m.disp);
		return 0;
	}
	fprintf(stdout, "kstep: the address of %s at %s is made of %%%s%s%s: where %%%s came from follows\n", insn,
		at->spec, m.base[0] ? m.base : m.index, m.base[0] && m.index[0] ? " and %" : "", m.base[0] ? m.index : "",
		m.base[0] ? m.base : m.index);
	return why_register(s, point, m.base[0] ? m.base : m.index, window, res);
}

/* How far --drop steps the dropping function, at most (its own
 * instructions: the calls it makes are one step each). */
#define DROP_STEPS_MAX 200000

/* --drop: the drop's probe (the drops set's, on packets with a protocol:
 * network packets, not netlink or boot-time checks), with the user's
 * conditions added. */
static int drop_probe(struct session *s, struct probe_set *ps, const char *filter)
{
	char text[1024], err[512];
	int ret;

	if (filter && strstr(filter, "||")) {
		say_error("--filter with --drop: conditions joined by && only (they are added to the drop's own)");
		return -EINVAL;
	}
	snprintf(text, sizeof(text), "%s && skb->protocol != 0%s%s", probes_real_drop, filter ? " && " : "",
		 filter ? filter : "");
	if ((ret = probes_add_set(ps, "drops", places_set_nic(s->g), s->syms)) ||
	    (ret = probes_set_filter(ps, 0, text, s->syms, err, sizeof(err))))
		say_error("%s", ret == -EINVAL ? err : "this vmlinux has no kfree_skb_reason to catch drops at");
	return ret;
}

/* Where the register a loaded value came from was last written before
 * the load: a fourth replay, watching it. */
static int drop_load_origin(struct session *s, const struct drop_origin *o, struct engine_result *res)
{
	struct engine_write w;
	char what[128];
	int ret;

	say_info("replay 3: watching 0x%" PRIx64 " (loaded into %%%s) up to instruction %" PRIu64, o->load_addr, o->reg,
	         o->icount);
	if ((ret = replay_run_again(s)))
		return ret;
	if ((ret = qmp_replay_break(s->clock, o->icount))) {
		say_error("%s", qmp_errmsg(s->clock));
		return ret;
	}
	if ((ret = engine_last_write(s->engine, o->load_addr, o->load_len, &w, res))) {
		say_error("%s", engine_errmsg(s->engine));
		return ret;
	}
	snprintf(what, sizeof(what), "0x%" PRIx64 " (what %%%s was loaded from)", o->load_addr, o->reg);
	if (!w.writes)
		fprintf(stdout, "kstep: no instruction wrote %s between start_kernel and the load\n", what);
	else
		print_last_write(what, &w, w.value, s->g->out);
	return 0;
}

/* The most instructions from the call that dropped to kfree_skb_reason's
 * entry (kfree_skb's few, on the way). */
#define DROP_WRAPPER_INSNS 64

/* Invocations of the dropping function stepped at most before the one
 * that dropped (each is its own instructions, its calls one step each). */
#define DROP_INVOCATIONS_MAX 1000

/* The steps of the dropping function from its entry to the call that
 * dropped at instruction @point, in a fresh replay: each time it is
 * entered it is stepped, its calls stepped over, until it returns or
 * reaches that call (the steps end there). The trace keeps every
 * invocation's steps; the last is the one that dropped. -EALREADY when
 * the call was reached before @point: the drop came in the same run of
 * the function as an earlier one (a loop), which kstep does not follow. */
static int step_dropper(struct session *s, uint64_t ret_addr, uint64_t point, struct engine_result *res)
{
	const struct sym *fn = sym_lookup_addr(s->syms, ret_addr);
	struct probe_set fp = { 0 };
	uint64_t n = 0, now = 0;
	char err[512];
	int ret;

	say_info("replay 2: stepping %s each time it runs, its calls stepped over, until it drops", fn->name);
	if ((ret = probes_add_spec(&fp, fn->name, "why", s->syms, err, sizeof(err)))) {
		say_error("%s", err);
		return ret;
	}
	if (!(ret = replay_run_again(s)))
		do {
			engine_step_max_depth(s->engine, 0);
			engine_step_until(s->engine, ret_addr - 5); /* the call: five bytes before its return */
			if ((ret = engine_step(s->engine, &fp.v[0], 1, DROP_STEPS_MAX, true, res)))
				say_error("%s", engine_errmsg(s->engine));
		} while (!ret && res->end == ENGINE_END_RETURNED && ++n < DROP_INVOCATIONS_MAX);
	/* At the call a few instructions before the drop's entry (through a
	 * wrapper such as kfree_skb), or at an earlier drop's? */
	if (!ret && res->end == ENGINE_END_UNTIL && !qmp_icount(s->clock, &now) && now + DROP_WRAPPER_INSNS < point) {
		say_error("this drop came in the same run of %s as an earlier one, after it (a loop): kstep steps to the "
		          "first and does not follow the function further", fn->name);
		ret = -EALREADY;
	}
	if (!ret && res->end != ENGINE_END_UNTIL) {
		say_error("replay 2 did not come back to the drop in %s (%s)", fn->name,
		          n == DROP_INVOCATIONS_MAX ? "it ran too many times before it" : "the replay ended first");
		ret = -EIO;
	}
	probes_free(&fp);
	return ret;
}

/* The drop found at the point the guest stands at: which branch led to
 * it, what it compared, where the values came from. */
static int explain_drop(struct session *s, struct probe *drop, uint64_t k, uint64_t point, struct engine_result *res)
{
	struct drop_answer a;
	struct disasm *dis;
	uint64_t ret_addr;
	char err[512], tree[4096];
	int ret;

	if ((ret = engine_record_hit(s->engine, drop, res))) {
		say_error("%s", engine_errmsg(s->engine));
		return ret;
	}
	if ((ret = dropwhy_frame(s->g->out, s->syms, &ret_addr, err, sizeof(err)))) {
		say_error("%s", err);
		return ret;
	}
	say_info("drop %" PRIu64 " at instruction %" PRIu64 ", called from %s", k, point,
	         sym_lookup_addr(s->syms, ret_addr)->name);
	if ((ret = step_dropper(s, ret_addr, point, res)))
		return ret;
	if (disasm_open(&dis))
		return -ENOMEM;
	ret = dropwhy_explain(s->g->out, s->syms, dis, s->g->eng.icount_shift, &a, err, sizeof(err));
	disasm_close(dis);
	if (ret) {
		say_error("%s", err);
		return ret;
	}
	fprintf(stdout, "%sdrop %" PRIu64 " (instruction %" PRIu64 ")\n", k > 1 ? "\n" : "", k, point);
	dropwhy_print(&a, files_kernel_source(s->g->vmlinux, tree, sizeof(tree)), stdout);
	for (size_t i = 0; i < a.noperands && !ret; i++)
		if (a.operands[i].kind == ORIGIN_LOAD)
			ret = drop_load_origin(s, &a.operands[i], res);
	return ret;
}

/* --drop: the @hits-th drop, or with @all every drop from it on, each in
 * replays of its own. */
static int why_drop(struct session *s, struct probe *drop, uint64_t hits, bool all, struct engine_result *res)
{
	uint64_t point, k = hits, skipped = 0;
	int ret;

	if ((ret = replay_find_point(s, drop, hits, &point, res)))
		return ret;
	while (((ret = explain_drop(s, drop, k, point, res)) == 0 || (ret == -EALREADY && all)) && all) {
		skipped += ret == -EALREADY;
		k++;
		say_info("replay 1: looking for drop %" PRIu64, k);
		if ((ret = replay_run_again(s)))
			break;
		ret = engine_find_hit(s->engine, drop, k, res);
		if (ret == -ECHILD || ret == -ECONNRESET || res->end == ENGINE_END_GUEST_EXITED) {
			fprintf(stdout, "\nkstep: the recording has %" PRIu64 " drops%s; %" PRIu64 " not explained\n",
				k - 1, hits > 1 ? " (counted from the first)" : "", skipped);
			return skipped ? -EALREADY : 0;
		}
		if (ret || res->end != ENGINE_END_NONE) {
			say_error("%s", ret ? engine_errmsg(s->engine) : "the replay ended early");
			return ret ? ret : -EINTR;
		}
		point = engine_icount(s->engine);
	}
	return ret;
}

/* What kstep why's own options ask for (the guest's are in guest_opts). */
struct why_args {
	const char *at, *addr, *filter;
	const char *reg;      /* --addr %REG: the register's name */
	uint64_t hits, window;
	bool operand, drop, all;
};

/* One of why's own options (@c, @arg) into @ctx, a struct why_args. */
static void why_opt(int c, const char *arg, void *ctx)
{
	struct why_args *a = ctx;

	switch (c) {
	case 't':
		a->at = arg;
		break;
	case 'x':
		a->addr = arg;
		break;
	case 'k':
		a->hits = guest_parse_u64("why ", "--hits", arg, 1);
		break;
	case 'f':
		a->filter = arg;
		break;
	case OPT_OPERAND:
		a->operand = true;
		break;
	case OPT_DROP:
		a->drop = true;
		break;
	case OPT_ALL:
		a->all = true;
		break;
	case OPT_WINDOW:
		a->window = guest_parse_u64("why ", "--window", arg, 1);
		break;
	default:
		say_usage("why ", "unknown option");
	}
}

/* A replay, and one question: --drop, or --at with --addr or --operand. */
static void why_check(struct why_args *a, const struct guest_opts *g)
{
	const char *addr = a->addr;

	if (!g->replay)
		say_usage("why ", "--replay DIR is required: only a replay can be run up to the same point again "
			       "(make one with kstep record)");
	if (a->all && !a->drop)
		say_usage("why ", "--all goes with --drop: every drop in the recording");
	if (a->drop && (a->at || addr || a->operand))
		say_usage("why ", "--drop finds its own point (kfree_skb_reason): not with --at, --addr or --operand");
	if (!a->drop && (!a->at || !addr == !a->operand))
		say_usage("why ", "--at SPEC and one of --addr EXPR or --operand (or --drop) are required");
	if (addr && addr[0] == '%' && addr[1] &&
	    strspn(addr + 1, "abcdefghijklmnopqrstuvwxyz0123456789") == strlen(addr + 1))
		a->reg = addr + 1; /* a register: the instruction that set it */
}

/* The command line read into @g and @a; false: --help was printed. */
static bool why_parse(int argc, char **argv, struct guest_opts *g, struct why_args *a)
{
	static const struct option longopts[] = {
		GUEST_LONGOPTS,
		{ "at", required_argument, NULL, 't' },
		{ "addr", required_argument, NULL, 'x' },
		{ "hits", required_argument, NULL, 'k' },
		{ "filter", required_argument, NULL, 'f' },
		{ "operand", no_argument, NULL, OPT_OPERAND },
		{ "window", required_argument, NULL, OPT_WINDOW },
		{ "drop", no_argument, NULL, OPT_DROP },
		{ "all", no_argument, NULL, OPT_ALL },
		{ NULL, 0, NULL, 0 },
	};
	const struct guest_cmdline cl = { "why ", "t:x:k:f:w:n:a:A:o:qKh", longopts, why_usage, why_opt };

	guest_defaults(g);
	g->out = "why.out";
	if (!guest_getopt(argc, argv, &cl, g, a))
		return false;
	why_check(a, g);
	guest_finish_defaults(g);
	return true;
}

/* The point to ask about, as a probe in @atp: the drop's, or --at's. */
static int why_point(struct session *s, const struct why_args *a, struct probe_set *atp)
{
	char err[512];

	if (!a->drop)
		return places_at(s, atp, a->at, a->filter, "why");
	probes_set_paths(atp, s->syms, s->g->vmlinux, s->g->moddir, s->g->srcdir);
	if (drop_probe(s, atp, a->filter))
		return -EINVAL;
	if (probes_trace_classes(atp, &s->classes, &s->nclasses, err, sizeof(err))) {
		say_error("%s", err);
		return -EINVAL;
	}
	return 0;
}

/* The answer, once the replay is at start_kernel and the trace open. */
static int why_run(struct session *s, const struct why_args *a, struct probe *at, const struct farg *expr,
		   struct engine_result *res)
{
	uint64_t point = 0;
	int ret;

	if (a->drop)
		return why_drop(s, at, a->hits, a->all, res);
	if ((ret = replay_find_point(s, at, a->hits, &point, res)))
		return ret;
	return a->operand ? why_operand(s, at, point, a->window, res)
	       : a->reg   ? why_register(s, point, a->reg, a->window, res)
			  : why_memory(s, at, point, a->addr, expr, res);
}

int cmd_why(int argc, char **argv)
{
	struct guest_opts g;
	struct why_args a = { .hits = 1, .window = WHY_WINDOW };
	struct engine_result res = { 0 };
	struct probe_set atp = { 0 };
	struct farg *expr = NULL;
	struct session s;
	int ret = EXIT_FAILED;

	if (!why_parse(argc, argv, &g, &a))
		return EXIT_DONE;
	if (session_start(&s, &g))
		return EXIT_FAILED;
	if (why_point(&s, &a, &atp))
		goto out;
	s.ps = &atp;
	if ((a.addr && !a.reg && compile_location(&s, &atp.v[0], a.addr, &expr)) || session_prepare_out(&s) ||
	    session_boot(&s) || session_open_trace(&s, "why"))
		goto out;
	probes_relocate(&atp, sym_offset(s.syms));
	ret = why_run(&s, &a, &atp.v[0], expr, &res) ? EXIT_FAILED : EXIT_DONE;
	if (res.end == ENGINE_END_INTERRUPTED)
		ret = EXIT_INTERRUPTED;
out:
	if (s.target)
		session_finish_guest(&s, &res);
	farg_free(expr);
	probes_free(&atp);
	session_end(&s);
	return ret;
}
