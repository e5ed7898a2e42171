// SPDX-License-Identifier: MIT
/*
 * kstep step: single-step from a probe (--at) until a place, the
 * function's return or a count, recording every instruction; in a replay,
 * also the N instructions before the hit (--backwards).
 */
#include <errno.h>
#include <inttypes.h>

#include "qmp.h"

#include "session.h"

/* The step summary lists this many functions, the rest in one line. */
#define PROFILE_LINES 15

/* Deeper than any kernel stack of 16 KiB can nest calls. */
#define MAX_DEPTH_LIMIT 1000

static void step_usage(FILE *f)
{
	fprintf(f, "Usage: kstep step --at SPEC [--count N | --until SPEC | --until-return | --backwards N]\n"
		   "                  [--hits K] [OPTIONS]\n"
		   "At the K-th hit of SPEC, single-step and record a snapshot (with the\n"
		   "instruction, disassembled) at every instruction. Through kstep's QEMU\n"
		   "plugin (--engine plugin, or auto on QEMU 9.2 or later) the guest does not\n"
		   "stop: the plugin reports every instruction of the vCPU that hit.\n\n"
		   "  -t, --at SPEC          NAME, NAME+OFFSET or 0xADDRESS\n"
		   "  -c, --count N          stop after N instructions (also --instructions N)\n"
		   "  -u, --until SPEC       stop when SPEC's instruction is reached (recorded, the last)\n"
		   "  -r, --until-return     stop when the function returns to its caller\n"
		   "                         (SPEC must be a function's first instruction)\n"
		   "  -d, --max-depth N      step into calls only N deep below where stepping began\n"
		   "                         (0: none); a deeper call runs whole to its return and is\n"
		   "                         recorded as one step at its first instruction, marked\n"
		   "                         stepped-over (its instructions are not counted)\n"
		   "  -k, --hits K           start at the K-th hit (default 1)\n"
		   "  -f, --filter EXPR      count only the hits that match (see kstep trace --help),\n"
		   "                         e.g. --at 'udp_rcv' --filter 'skb->len > 100'\n"
		   "      --pcap-filter EXPR count only the hits whose packet matches EXPR\n"
		   "                         (tcpdump's language), e.g. --at ip_rcv --pcap-filter icmp\n"
		   "      --backwards N      (with --replay) the N instructions before the hit instead:\n"
		   "                         one replay finds it, a second stops N instructions short\n"
		   "                         and steps them; the trace reads forward and ends at the\n"
		   "                         instruction before the hit's (through the plugin: it\n"
		   "                         stops one instruction sooner and single-steps that one,\n"
		   "                         so that QEMU translates its code anew with the plugin's\n"
		   "                         step callbacks)\n"
		   "\n%s",
		   guest_help);
}

/* Where the instructions went: the functions that took the most. */
static void print_profile(struct engine *e)
{
	const struct engine_fn_steps *fs;
	size_t n = engine_step_profile(e, &fs), shown = n < PROFILE_LINES ? n : PROFILE_LINES;
	uint64_t rest = 0;

	if (!n)
		return;
	fprintf(stdout, "instructions per function:\n");
	for (size_t i = 0; i < shown; i++)
		fprintf(stdout, "  %8" PRIu64 "  %s\n", fs[i].steps, fs[i].name);
	for (size_t i = shown; i < n; i++)
		rest += fs[i].steps;
	if (rest)
		fprintf(stdout, "  %8" PRIu64 "  (%zu more functions)\n", rest, n - shown);
}

/* --backwards N: the N instructions before the hit, found in one replay
 * and stepped through in a second one that stops N instructions short.
 * The plugin steps only code QEMU translated after it was told to: that
 * replay stops one instruction earlier and single-steps it, a debug stop
 * after which QEMU translates all code anew. */
static int step_backwards(struct session *s, const struct probe *at, uint64_t hits, uint64_t n,
			  struct engine_result *res)
{
	uint64_t point, end, early = s->plugin[0] ? 1 : 0;
	int ret;

	if ((ret = replay_find_point(s, at, hits, &point, res)))
		return ret;
	say_info("hit %" PRIu64 " of %s after %" PRIu64 " instructions; replay 2: from instruction %" PRIu64
	         ", %" PRIu64 " steps", hits, at->spec, point, point > n ? point - n : 0, n);
	if (point < n + early) {
		say_error("--backwards %" PRIu64 ": only %" PRIu64 " instructions come before that hit", n, point);
		return -ERANGE;
	}
	if ((ret = replay_run_to(s, point - n - early, res)))
		return ret;
	if ((early && (ret = engine_single_step_to(s->engine, point - n))) ||
	    (ret = engine_step(s->engine, at, 0, n, false, res))) {
		say_error("%s", engine_errmsg(s->engine));
		return ret;
	}
	/* The last step recorded stands before the hit's instruction. (The
	 * plugin's steps are the instructions themselves, the guest running
	 * on past them: QEMU's count is not theirs.) */
	if (!early && res->end == ENGINE_END_COUNT && !qmp_icount(s->clock, &end) && end != point - 1)
		say_info("the steps ended at instruction %" PRIu64 ", not %" PRIu64 ": %" PRIu64 " of them entered an "
		         "interrupt, which runs no instruction", end, point - 1, point - 1 - end);
	return 0;
}

/* What kstep step's own options ask for (the guest's are in guest_opts). */
struct step_args {
	struct guest_opts *g;
	struct probe_set *atp;
	const char *at, *filter, *until;
	uint64_t count, hits, backwards;
	int max_depth;        /* -1: every call stepped into */
	bool until_return;
};

/* One of step's own options (@c, @arg) into @ctx, a struct step_args. */
static void step_opt(int c, const char *arg, void *ctx)
{
	struct step_args *a = ctx;
	struct guest_opts *g = a->g;

	switch (c) {
	case 't':
		a->at = arg;
		break;
	case 'c':
		a->count = guest_parse_u64("step ", "--count", arg, 1);
		break;
	case 'r':
		a->until_return = true;
		break;
	case 'k':
		a->hits = guest_parse_u64("step ", "--hits", arg, 1);
		break;
	case 'f':
		a->filter = arg;
		break;
	case OPT_PCAP_FILTER:
		pcap_filter_free(g->eng.pcap);
		g->eng.pcap = places_pcap_filter("step ", arg, a->atp);
		break;
	case 'u':
		a->until = arg;
		break;
	case 'd':
		if (guest_parse_u64("step ", "--max-depth", arg, 0) > MAX_DEPTH_LIMIT)
			say_usage("step ", "--max-depth %s: at most %d", arg, MAX_DEPTH_LIMIT);
		a->max_depth = (int)guest_parse_u64("step ", "--max-depth", arg, 0);
		break;
	case OPT_BACKWARDS:
		a->backwards = guest_parse_u64("step ", "--backwards", arg, 1);
		break;
	default:
		say_usage("step ", "unknown option");
	}
}

/* How far to step: exactly one way, and --backwards only in a replay. */
static void step_check(const struct step_args *a, const struct guest_opts *g)
{
	if (!a->at)
		say_usage("step ", "--at SPEC is required");
	if (a->backwards && !g->replay)
		say_usage("step ", "--backwards needs a replay (--replay DIR, from kstep record): a live guest cannot go back");
	if (a->backwards && (a->count || a->until_return || a->until || a->max_depth >= 0))
		say_usage("step ", "--backwards N steps the N instructions before --at: not with --count, --until, "
			       "--until-return or --max-depth");
	if (!a->count && !a->until_return && !a->until && !a->backwards)
		say_usage("step ", "say how far to step: --count N, --until SPEC, --until-return or --backwards N");
}

/* The command line read into @g, @a and @atp; false: --help was printed. */
static bool step_parse(int argc, char **argv, struct guest_opts *g, struct step_args *a, struct probe_set *atp)
{
	static const struct option longopts[] = {
		GUEST_LONGOPTS,
		{ "at", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'c' },
		{ "instructions", required_argument, NULL, 'c' },
		{ "until-return", no_argument, NULL, 'r' },
		{ "hits", required_argument, NULL, 'k' },
		{ "filter", required_argument, NULL, 'f' },
		{ "pcap-filter", required_argument, NULL, OPT_PCAP_FILTER },
		{ "until", required_argument, NULL, 'u' },
		{ "max-depth", required_argument, NULL, 'd' },
		{ "backwards", required_argument, NULL, OPT_BACKWARDS },
		{ NULL, 0, NULL, 0 },
	};
	const struct guest_cmdline cl = { "step ", "t:c:rk:f:u:d:w:n:a:A:o:qKh", longopts, step_usage, step_opt };

	guest_defaults(g);
	a->g = g;
	a->atp = atp;
	if (!guest_getopt(argc, argv, &cl, g, a))
		return false;
	step_check(a, g);
	guest_finish_defaults(g);
	return true;
}

/* --at in a module: run until it is loaded. 0, or kstep's exit status
 * when the run ended first (*@ended set). */
static int step_wait_module(struct session *s, struct probe_set *atp, struct engine_result *res, bool *ended)
{
	int ret, status;

	*ended = false;
	if (atp->v[0].addr)
		return 0;
	say_info("waiting for module %s to be loaded", atp->v[0].module);
	if (!(ret = engine_run_to_modules(s->engine, atp, res)) && res->end == ENGINE_END_NONE)
		return 0;
	if (ret)
		say_error("%s", engine_errmsg(s->engine));
	else
		say_error("the guest ended before module %s was loaded (or has no debug info for it)", atp->v[0].module);
	/* Nothing was stepped: a failure, unless the user ended it. */
	*ended = true;
	status = session_finish_guest(s, res);
	return !ret && res->end == ENGINE_END_INTERRUPTED ? session_conclude(s, res, status, false)
							  : EXIT_FAILED;
}

/* The step summary on stdout: how many, how fast, where they went. */
static void step_summary(struct session *s, const struct engine_result *res, int max_depth)
{
	fprintf(stdout, "kstep: %" PRIu64 " instructions in %.2f s (%.0f/s): %s\n", res->steps, res->seconds,
		res->seconds > 0 ? (double)res->steps / res->seconds : 0.0, session_end_str(res->end));
	if (s->plugin[0])
		fprintf(stdout, "kstep: the plugin sent %" PRIu64 " steps and hits, kstep read %" PRIu64 "; a vCPU waited for kstep "
				"%" PRIu64 " times (%.3f s)\n", res->plugin_reported, res->plugin_hits, res->plugin_waits,
			res->plugin_wait_seconds);
	if (res->null_steps)
		fprintf(stdout, "kstep: the stub reported %" PRIu64 " steps that executed nothing; "
				"they were stepped again and not recorded\n", res->null_steps);
	if (res->stepped_over)
		fprintf(stdout, "kstep: %" PRIu64 " calls deeper than --max-depth %d ran whole (one step each)\n",
			res->stepped_over, max_depth);
	print_profile(s->engine);
	session_print_bt_ends(s, res);
	fprintf(stdout, "trace: %s (read it with: babeltrace2 %s)\n", s->g->out, s->g->out);
	fflush(stdout);
}

/* Forwards from the hit, or the instructions before it (a replay). */
static int step_run(struct session *s, const struct step_args *a, struct probe_set *atp, uint64_t until_addr,
		    struct engine_result *res)
{
	int ret;

	if (a->backwards)
		return step_backwards(s, &atp->v[0], a->hits, a->backwards, res);
	say_info("waiting for hit %" PRIu64 " of %s, then stepping%s%s%s", a->hits, a->at,
		 a->until_return ? " until it returns" : "", a->until ? " until " : "", a->until ? a->until : "");
	engine_step_until(s->engine, until_addr ? until_addr + sym_offset(s->syms) : 0);
	engine_step_max_depth(s->engine, a->max_depth);
	if ((ret = engine_step(s->engine, &atp->v[0], a->hits, a->count, a->until_return, res)))
		say_error("%s", engine_errmsg(s->engine));
	return ret;
}

int cmd_step(int argc, char **argv)
{
	struct guest_opts g;
	struct step_args a = { .hits = 1, .max_depth = -1 };
	struct engine_result res = { 0 };
	struct probe_set atp = { 0 }; /* --at, as a probe: it may be in a module */
	uint64_t until_addr = 0;
	struct session s;
	bool ended;
	int ret, status;

	if (!step_parse(argc, argv, &g, &a, &atp))
		return EXIT_DONE;
	if (session_start(&s, &g))
		return EXIT_FAILED;
	if (places_at(&s, &atp, a.at, a.filter, "step") || places_check_pcap(&s, &atp) ||
	    (a.until && places_until(&s, &atp, a.until, &until_addr)))
		goto fail;
	s.ps = &atp;
	if (session_choose_engine(&s, NULL)) {
		probes_free(&atp);
		session_end(&s);
		return EXIT_USAGE;
	}
	if (session_prepare_out(&s) || session_boot(&s) || places_check_kgdb_fields(&s, &atp) ||
	    session_open_trace(&s, "step"))
		goto fail;
	if (s.plugin[0])
		engine_use_plugin(s.engine, qemu_plugin_chan(s.qemu));
	probes_relocate(&atp, sym_offset(s.syms));
	if ((ret = step_wait_module(&s, &atp, &res, &ended)) || ended)
		goto out;
	if ((ret = step_run(&s, &a, &atp, until_addr, &res)) && !s.engine)
		goto fail; /* the second replay never started */
	status = session_finish_guest(&s, &res);
	step_summary(&s, &res, a.max_depth);
	ret = session_conclude(&s, &res, status, ret != 0);
out:
	probes_free(&atp);
	if (session_end(&s) && ret == EXIT_DONE)
		ret = EXIT_FAILED; /* the domain was not handed back as found */
	return ret;
fail:
	if (s.target)
		session_finish_guest(&s, &res);
	probes_free(&atp);
	session_end(&s);
	return EXIT_FAILED;
}
