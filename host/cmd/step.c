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
		   "instruction, disassembled) at every instruction.\n\n"
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
		   "                         instruction before the hit's\n"
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
 * and stepped through in a second one that stops N instructions short. */
int step_backwards(struct session *s, const struct probe *at, uint64_t hits, uint64_t n,
			  struct engine_result *res)
{
	uint64_t point, end;
	int ret;

	if ((ret = find_point(s, at, hits, &point, res)))
		return ret;
	say_info("hit %" PRIu64 " of %s after %" PRIu64 " instructions; replay 2: from instruction %" PRIu64
	         ", %" PRIu64 " steps", hits, at->spec, point, point > n ? point - n : 0, n);
	if (point < n) {
		say_error("--backwards %" PRIu64 ": only %" PRIu64 " instructions come before that hit", n, point);
		return -ERANGE;
	}
	if ((ret = replay_to(s, point - n, res)))
		return ret;
	if ((ret = engine_step(s->engine, at, 0, n, false, res))) {
		say_error("%s", engine_errmsg(s->engine));
		return ret;
	}
	/* The last step recorded stands before the hit's instruction. */
	if (res->end == ENGINE_END_COUNT && !qmp_icount(s->clock, &end) && end != point - 1)
		say_info("the steps ended at instruction %" PRIu64 ", not %" PRIu64 ": %" PRIu64 " of them entered an "
		         "interrupt, which runs no instruction", end, point - 1, point - 1 - end);
	return 0;
}

int cmd_step(int argc, char **argv)
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
	struct guest_opts g;
	struct engine_result res = { 0 };
	uint64_t backwards = 0;
	int max_depth = -1;
	struct session s;
	const char *at = NULL, *filter = NULL, *until = NULL;
	uint64_t until_addr = 0;
	uint64_t count = 0, hits = 1;
	struct probe_set atp = { 0 };  /* --at, as a probe: it may be in a module */
	bool until_return = false;
	char err[512];
	int c, ret, status;

	guest_defaults(&g);
	while ((c = getopt_long(argc, argv, "t:c:rk:f:u:d:w:n:a:A:o:qKh", longopts, NULL)) != -1) {
		if (guest_opt("step ", &g, c, optarg))
			continue;
		switch (c) {
		case 't':
			at = optarg;
			break;
		case 'c':
			count = parse_u64("step ", "--count", optarg, 1);
			break;
		case 'r':
			until_return = true;
			break;
		case 'k':
			hits = parse_u64("step ", "--hits", optarg, 1);
			break;
		case 'f':
			filter = optarg;
			break;
		case OPT_PCAP_FILTER:
			pcap_filter_free(g.eng.pcap);
			g.eng.pcap = pcap_filter_option("step ", optarg, &atp);
			break;
		case 'u':
			until = optarg;
			break;
		case 'd':
			if (parse_u64("step ", "--max-depth", optarg, 0) > MAX_DEPTH_LIMIT)
				say_usage("step ", "--max-depth %s: at most %d", optarg, MAX_DEPTH_LIMIT);
			max_depth = (int)parse_u64("step ", "--max-depth", optarg, 0);
			break;
		case OPT_BACKWARDS:
			backwards = parse_u64("step ", "--backwards", optarg, 1);
			break;
		case 'h':
			step_usage(stdout);
			return 0;
		default:
			say_usage("step ", "unknown option");
		}
	}
	if (optind < argc)
		say_usage("step ", "unexpected argument '%s'", argv[optind]);
	guest_check_opts("step ", &g);
	if (!at)
		say_usage("step ", "--at SPEC is required");
	if (backwards && !g.replay)
		say_usage("step ", "--backwards needs a replay (--replay DIR, from kstep record): a live guest cannot go back");
	if (backwards && (count || until_return || until || max_depth >= 0))
		say_usage("step ", "--backwards N steps the N instructions before --at: not with --count, --until, "
			       "--until-return or --max-depth");
	if (!count && !until_return && !until && !backwards)
		say_usage("step ", "say how far to step: --count N, --until SPEC, --until-return or --backwards N");
	guest_finish_defaults(&g);
	if ((ret = session_start(&s, &g)))
		return 1;
	probes_set_paths(&atp, s.syms, g.vmlinux, g.moddir, g.srcdir);
	if (probes_add_spec(&atp, at, "step", s.syms, err, sizeof(err)) ||
	    (filter && probes_set_filter(&atp, 0, filter, s.syms, err, sizeof(err)))) {
		say_error("%s", err);
		goto fail;
	}
	if (check_pcap_probes(&s, &atp))
		goto fail;
	several_places(&s, at, &atp);
	if (until && resolve_until(&s, &atp, until, &until_addr))
		goto fail;
	s.ps = &atp;
	if (prepare_out(&s) || boot(&s) || check_fields_for_stub(&s, &atp) || open_trace(&s, "step"))
		goto fail;
	probes_relocate(&atp, sym_offset(s.syms));
	if (!atp.v[0].addr) {
		say_info("waiting for module %s to be loaded", atp.v[0].module);
		if ((ret = engine_run_to_modules(s.engine, &atp, &res)) || res.end != ENGINE_END_NONE) {
			if (ret)
				say_error("%s", engine_errmsg(s.engine));
			else
				say_error("the guest ended before module %s was loaded (or has no debug info for it)",
				          atp.v[0].module);
			/* Nothing was stepped: a failure, unless the user ended it. */
			status = finish_guest(&s, &res);
			ret = !ret && res.end == ENGINE_END_INTERRUPTED ? conclude(&s, &res, status, false) : EXIT_FAILED;
			goto out;
		}
	}
	if (backwards) {
		if ((ret = step_backwards(&s, &atp.v[0], hits, backwards, &res)) && !s.engine)
			goto fail; /* the second replay never started */
	} else {
		say_info("waiting for hit %" PRIu64 " of %s, then stepping%s%s%s", hits, at,
		         until_return ? " until it returns" : "", until ? " until " : "", until ? until : "");
		engine_step_until(s.engine, until_addr ? until_addr + sym_offset(s.syms) : 0);
		engine_step_max_depth(s.engine, max_depth);
		if ((ret = engine_step(s.engine, &atp.v[0], hits, count, until_return, &res)))
			say_error("%s", engine_errmsg(s.engine));
	}
	status = finish_guest(&s, &res);
	fprintf(stdout, "kstep: %" PRIu64 " instructions in %.2f s (%.0f/s): %s\n", res.steps, res.seconds,
		res.seconds > 0 ? (double)res.steps / res.seconds : 0.0, end_str(res.end));
	if (res.null_steps)
		fprintf(stdout, "kstep: the stub reported %" PRIu64 " steps that executed nothing; "
				"they were stepped again and not recorded\n", res.null_steps);
	if (res.stepped_over)
		fprintf(stdout, "kstep: %" PRIu64 " calls deeper than --max-depth %d ran whole (one step each)\n",
			res.stepped_over, max_depth);
	print_profile(s.engine);
	print_bt_ends(&s, &res);
	fprintf(stdout, "trace: %s (read it with: babeltrace2 %s)\n", g.out, g.out);
	fflush(stdout);
	ret = conclude(&s, &res, status, ret != 0);
out:
	probes_free(&atp);
	if (session_end(&s) && ret == EXIT_DONE)
		ret = EXIT_FAILED; /* the domain was not handed back as found */
	return ret;
fail:
	if (s.target)
		finish_guest(&s, &res);
	probes_free(&atp);
	session_end(&s);
	return EXIT_FAILED;
}
