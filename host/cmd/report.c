// SPDX-License-Identifier: MIT
/*
 * kstep report DIR, the packet report of any kstep trace (the
 * one kstep trace prints at its end, and more): per-packet verdicts, stage
 * latencies and drops in guest time, perf's netdev-times view, or JSON.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "flamegraph.h"
#include "capture.h"
#include "perfetto.h"

#include "cmd.h"

#define DEFAULT_ROWS 20
/* Long options without a letter. */
enum { OPT_PERFETTO = 0x100 };

static void usage(FILE *f)
{
	fprintf(f, "Usage: kstep report [OPTIONS] DIR\n"
		   "What happened to each packet in the kstep trace DIR: its path through the\n"
		   "stages with guest-time offsets and its verdict (delivered to which task,\n"
		   "merged by GRO, dropped with the reason and where, sent, in flight), the\n"
		   "stage-to-stage latencies in guest time (min, median, p99, max) and the drops\n"
		   "by reason. A trace cut short (Ctrl-C, a dead QEMU) reports up to its cut.\n"
		   "For a step trace (kstep step): the call tree of the instructions, from\n"
		   "each step's backtrace, with inclusive and exclusive counts.\n\n"
		   "  -n, --netdev-times     perf's netdev-times layout: per NET_RX softirq, its\n"
		   "                         interrupt, each netif_receive_skb and what became of\n"
		   "                         the skb (trace with -p rx-full)\n"
		   "  -j, --json             everything as JSON, for tools\n"
		   "  -f, --folded           folded stacks ('a;b;c N'), for FlameGraph, speedscope\n"
		   "                         or inferno: the steps, or the stops' backtraces\n"
		   "  -D, --depth N          the call tree down to N levels (default: all)\n"
		   "  -a, --annotate FUNC    per source line and per instruction of FUNC, how many\n"
		   "                         times it ran in the step trace (hottest lines first)\n"
		   "  -t, --top N            with --annotate: the N hottest lines only\n"
		   "  -s, --source DIR       the kernel tree for --annotate's source text (default:\n"
		   "                         the tree the trace's vmlinux was built from)\n"
		   "  -F, --flamegraph FILE  the call tree as an interactive flame graph drawn by\n"
		   "                         kstep (FILE.svg or FILE.html; self-contained: tooltips\n"
		   "                         with counts and file:line, click to zoom, search)\n"
		   "  -P, --pcap FILE        every packet at every stage where its header bytes were\n"
		   "                         read, as pcapng for Wireshark and tshark: an interface\n"
		   "                         per stage function, guest time, and a comment naming\n"
		   "                         the function, the CPU and the verdict (FILE is new)\n"
		   "      --perfetto FILE    the trace as a Perfetto timeline (open FILE in\n"
		   "                         ui.perfetto.dev): a track per CPU with the calls that\n"
		   "                         return probes timed and a flow per packet, a track per\n"
		   "                         packet with a slice per stage and its fields; for a\n"
		   "                         step trace, the calls nested over time (FILE is new)\n"
		   "  -r, --rows N           list N packets one a line (default %d, 0: none)\n"
		   "  -h, --help\n"
		   "\nExit status: 0 done, 1 the trace cannot be read (or --pcap FILE written), 2 bad usage.\n",
		   DEFAULT_ROWS);
}

/* A whole number for option @opt; -EINVAL with the message said. */
static int parse_count(const char *opt, const char *arg, unsigned long *out)
{
	char *end;

	*out = strtoul(arg, &end, 10);
	if (*end || !*arg) {
		say_error("%s wants a number, not '%s' (see 'kstep report --help')", opt, arg);
		return -EINVAL;
	}
	return 0;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), m = strlen(tail);

	return n > m && !strcmp(s + n - m, tail);
}

/* The flame graph into a new file @path (never through a link, never over
 * someone else's file: files_create). */
static int write_flamegraph(struct report *r, const char *path, const char *dir)
{
	char title[512], err[4200];
	int ret;
	FILE *f = files_fcreate(path, &ret, err, sizeof(err));

	if (!f) {
		say_error("%s", err);
		return ret;
	}
	snprintf(title, sizeof(title), "kstep %s: %s", report_steps(r) ? "instructions" : "stops", dir);
	ret = flamegraph_write(report_calltree(r), f, ends_with(path, ".html"), title, report_source, r);
	if (fclose(f) && !ret)
		ret = -EIO;
	if (ret)
		say_error("writing %s: %s", path, strerror(-ret));
	else
		say_info("flame graph of %" PRIu64 " %s in %s", calltree_total(report_calltree(r)),
			report_steps(r) ? "instructions" : "stops", path);
	return ret;
}

/* What --pcap and --perfetto gather as the report reads the trace. */
struct outputs {
	struct capture *cap;
	struct perfetto *timeline;
};

static void packet_stop(void *ctx, const struct ctf_event *ev, size_t packet)
{
	struct outputs *o = ctx;

	if (o->cap)
		capture_stop(o->cap, ev, packet);
	if (o->timeline)
		perfetto_packet_stop(o->timeline, ev, packet);
}

static void every_event(void *ctx, const struct ctf_event *ev)
{
	struct outputs *o = ctx;

	perfetto_event(o->timeline, ev);
}

static void outputs_free(struct outputs *o)
{
	capture_free(o->cap);
	perfetto_free(o->timeline);
}

/* The timeline into the new file @path; says what it holds. */
static int write_timeline(struct perfetto *timeline, const struct report *r, const char *path)
{
	uint64_t left_out;
	char err[512];
	int ret = perfetto_write(timeline, r, path, &left_out, err, sizeof(err));

	if (ret) {
		say_error("%s", err);
		return ret;
	}
	say_info("Perfetto timeline of %" PRIu64 " events and %" PRIu64 " packets in %s (open it in "
			"ui.perfetto.dev)", report_events(r), report_packets(r), path);
	if (left_out)
		say_info("%" PRIu64 " slices crossed another on their track (not nested) and were left "
				"out", left_out);
	return 0;
}

/* The packets into the new pcapng file @path; says how many, or why none. */
static int write_capture(struct capture *cap, const struct report *r, const char *path)
{
	char err[512];
	int ret;

	if (!capture_records(cap)) {
		say_error("no stop in the trace carries a packet's bytes (trace the packet's path, "
				"e.g. -p rx, with a kstep that records the pkt field): %s not written", path);
		return -ENOENT;
	}
	if ((ret = capture_write(cap, r, path, err, sizeof(err))))
		say_error("%s", err);
	else
		say_info("%" PRIu64 " packet records of %" PRIu64 " packets in %s",
			capture_records(cap), report_packets(r), path);
	return ret;
}

/* The tree the trace's vmlinux was built from, or NULL. */
static const char *kernel_tree(const struct report *r, char *out, size_t len)
{
	return files_kernel_source(report_vmlinux(r), out, len);
}

/* What kstep report is asked for. */
struct report_args {
	bool netdev, json, folded;
	unsigned long rows, depth, top;
	const char *flame, *srcdir, *pcap, *perfetto;
	struct annotate *annotate; /* --annotate FUNC, NULL: none */
};

/* One option (@c, @arg) into @a: 0, or kstep's exit status. */
static int report_opt(int c, const char *arg, struct report_args *a)
{
	switch (c) {
	case 'n':
		a->netdev = true;
		return 0;
	case 'j':
		a->json = true;
		return 0;
	case 'f':
		a->folded = true;
		return 0;
	case 'a':
		return !a->annotate && annotate_new(&a->annotate, arg) ? EXIT_FAILED : 0;
	case 't':
		return parse_count("--top", arg, &a->top) ? EXIT_USAGE : 0;
	case 's':
		a->srcdir = arg;
		return 0;
	case 'P':
		a->pcap = arg;
		return 0;
	case OPT_PERFETTO:
		a->perfetto = arg;
		return 0;
	case 'F':
		a->flame = arg;
		if (ends_with(arg, ".svg") || ends_with(arg, ".html"))
			return 0;
		say_error("--flamegraph FILE must end in .svg or .html, not '%s'", arg);
		return EXIT_USAGE;
	case 'D':
		return parse_count("--depth", arg, &a->depth) ? EXIT_USAGE : 0;
	case 'r':
		return parse_count("--rows", arg, &a->rows) ? EXIT_USAGE : 0;
	default:
		say_error("unknown option (see 'kstep report --help')");
		return EXIT_USAGE;
	}
}

/* The command line read into @a: 0, -1 after --help, or kstep's exit status. */
static int report_parse(int argc, char **argv, struct report_args *a)
{
	static const struct option longopts[] = {
		{ "netdev-times", no_argument, NULL, 'n' }, { "json", no_argument, NULL, 'j' },
		{ "rows", required_argument, NULL, 'r' },   { "help", no_argument, NULL, 'h' },
		{ "folded", no_argument, NULL, 'f' },       { "depth", required_argument, NULL, 'D' },
		{ "flamegraph", required_argument, NULL, 'F' }, { "annotate", required_argument, NULL, 'a' },
		{ "top", required_argument, NULL, 't' },        { "source", required_argument, NULL, 's' },
		{ "pcap", required_argument, NULL, 'P' },       { "perfetto", required_argument, NULL, OPT_PERFETTO },
		{ NULL, 0, NULL, 0 },
	};
	int c, ret;

	while ((c = getopt_long(argc, argv, "njr:fD:F:a:t:s:P:h", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return -1;
		}
		if ((ret = report_opt(c, optarg, a)))
			return ret;
	}
	if (optind != argc - 1) {
		say_error("report wants one trace directory (see 'kstep report --help')");
		return EXIT_USAGE;
	}
	return 0;
}

/* What was asked for, out of the trace read: 0 or a negative errno. */
static int report_write(struct report *r, const struct report_args *a, struct outputs *outs, const char *dir)
{
	char tree[4096];

	if (a->pcap || a->perfetto) {
		int ret = a->pcap ? write_capture(outs->cap, r, a->pcap) : 0;

		return a->perfetto && !ret ? write_timeline(outs->timeline, r, a->perfetto) : ret;
	}
	if (a->annotate)
		annotate_print(a->annotate, stdout, (unsigned int)a->top,
			       a->srcdir ? a->srcdir : kernel_tree(r, tree, sizeof(tree)));
	else if (a->flame)
		return write_flamegraph(r, a->flame, dir);
	else if (a->json)
		report_print_json(r, stdout);
	else if (a->folded)
		calltree_folded(report_calltree(r), stdout);
	else if (report_steps(r)) {
		fprintf(stdout, "%" PRIu64 " instructions stepped\n", report_steps(r));
		calltree_print(report_calltree(r), stdout, (unsigned int)a->depth);
	} else if (a->netdev)
		report_print_netdev_times(r, stdout);
	else
		report_print(r, stdout, a->rows);
	return 0;
}

int cmd_report(int argc, char **argv)
{
	struct report_args a = { .rows = DEFAULT_ROWS };
	struct outputs outs = { 0 };
	struct report_opts ro = { 0 };
	struct report *r;
	char err[512];
	int ret = report_parse(argc, argv, &a);

	if (ret)
		return ret < 0 ? EXIT_DONE : ret;
	ro.interrupted = &interrupted;
	ro.annotate = a.annotate;
	if ((a.pcap && capture_new(&outs.cap)) || (a.perfetto && perfetto_new(&outs.timeline))) {
		say_error("out of memory");
		outputs_free(&outs);
		return EXIT_FAILED;
	}
	ro.on_packet_stop = a.pcap || a.perfetto ? packet_stop : NULL;
	ro.on_event = a.perfetto ? every_event : NULL;
	ro.stop_ctx = &outs;
	if ((ret = report_read_dir(&r, argv[optind], &ro, err, sizeof(err)))) {
		say_error("%s", err);
		annotate_free(a.annotate);
		outputs_free(&outs);
		return ret == -EINTR ? EXIT_INTERRUPTED : EXIT_FAILED;
	}
	ret = report_write(r, &a, &outs, argv[optind]);
	if (*report_note(r))
		say_info("%s", report_note(r));
	if (!a.json && report_cut_bytes(r))
		say_error("the trace was cut short: %zu bytes after its last complete event "
			  "(%" PRIu64 " events) were left out", report_cut_bytes(r), report_events(r));
	report_free(r);
	annotate_free(a.annotate);
	outputs_free(&outs);
	return ret ? EXIT_FAILED : EXIT_DONE;
}
