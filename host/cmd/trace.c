// SPDX-License-Identifier: MIT
/*
 * kstep trace: stop (or, through the plugin, not stop) at every probe of
 * the sets, --break specs and probe files, and write each hit's snapshot
 * into a CTF trace; then the summary and the packets seen.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "packet.h"
#include "libvirt.h"
#include "vmcore.h"
#include "report.h"

#include "session.h"

static void trace_usage(FILE *f)
{
	fprintf(f, "Usage: kstep trace [OPTIONS]\n"
		   "Boot the guest (or attach), stop at each probe, write a snapshot of every stop.\n\n"
		   "Probe options:\n"
		   "  -p, --probes SET[,SET...]|FILE\n"
		   "                         replace the probe sets: rx (receive path), rx-full\n"
		   "                         (NIC interrupt to recvfrom), tx, drops, syscalls,\n"
		   "                         oops, none, or a file of 'SPEC [STAGE]' / 'set NAME'\n"
		   "                         lines (default: rx,oops)\n"
		   "  -b, --break 'SPEC [FETCHARG...]'\n"
		   "                         add a probe. SPEC: [p:EVENT ]NAME[+OFF], 0xADDR,\n"
		   "                         MODULE:NAME, or NAME%%return (r:EVENT NAME) for the\n"
		   "                         return with $retval and the call's duration.\n"
		   "                         FETCHARG: [FIELD=]EXPR[:TYPE], EXPR a parameter with\n"
		   "                         ->member .member [N], $argN, $retval, $current, $comm,\n"
		   "                         %%REG, +OFF(EXPR); TYPE u8..u64 s8..s64 x8..x64 string\n"
		   "                         ip4 be16 be32 symbol. e.g.\n"
		   "                         --break 'tcp_v4_rcv len=skb->len dev=skb->dev->name'\n"
		   "  -f, --filter EXPR      keep only the hits of the --break before it (before any\n"
		   "                         --break: of the set's probes it fits) that match:\n"
		   "                         FIELD|EXPR OP VALUE (== != < <= > >= &), && and ||,\n"
		   "                         VALUE a number, an enum name or a \"string\"\n"
		   "      --pcap-filter EXPR keep only the stops whose packet matches EXPR, in\n"
		   "                         tcpdump's filter language (pcap-filter(7)), e.g.\n"
		   "                         'udp and dst port 9' (stops without an skb are kept)\n"
		   "      --snaplen N        keep N bytes of each packet from its IP header on (the\n"
		   "                         pkt field, for --pcap-filter and report --pcap; 80 to\n"
		   "                         256, default 80)\n"
		   "  -m, --max-stops N      stop after N stops\n"
		   "  -d, --duration S       stop after S seconds\n"
		   "\n%s\nThe trace is CTF: read it with 'babeltrace2 DIR'. The guest console is in\n"
		   "DIR/guest/serial.log. A hit on an oops probe freezes the guest for gdb.\n",
		   guest_help);
}

/* The packets, as kstep report shows them, from the trace just written. */
static void print_packets(struct session *s)
{
	struct report *r;
	char err[512];

	if (report_read_dir(&r, s->g->out, NULL, err, sizeof(err))) {
		say_error("cannot read the trace back for its packet report: %s", err);
		return;
	}
	report_print(r, stdout, 0);
	report_free(r);
}

/* " (N returns, filtered)" after a probe's hits. */
static const char *probe_notes(const struct probe *p, char *out, size_t len)
{
	char ret[48] = "";

	if (p->on_return)
		snprintf(ret, sizeof(ret), "%" PRIu64 " returns", p->returns);
	if (p->on_return || p->filter)
		snprintf(out, len, " (%s%s%s)", ret, p->on_return && p->filter ? ", " : "", p->filter ? "filtered" : "");
	else
		out[0] = '\0';
	return out;
}

static void print_summary(struct session *s, struct probe_set *ps, const struct engine_result *res)
{
	char notes[96];

	fprintf(stdout, "kstep: %" PRIu64 " stops in %.1f s (%.0f/s", res->stops, res->seconds,
		res->seconds > 0 ? (double)res->stops / res->seconds : 0.0);
	if (res->stops > 1 && res->since_first_stop > 0)
		fprintf(stdout, "; %.0f/s from the first stop", (double)(res->stops - 1) / res->since_first_stop);
	fprintf(stdout, "): %s\n", session_end_str(res->end));
	if (s->plugin[0])
		fprintf(stdout, "kstep: the plugin reported %" PRIu64 " hits, kstep read %" PRIu64 "; a vCPU waited for kstep "
				"%" PRIu64 " times (%.3f s)%s\n", res->plugin_reported, res->plugin_hits, res->plugin_waits,
			res->plugin_wait_seconds, res->plugin_regs_missing ? "; some registers are not readable by plugins" : "");
	else if (res->stops)
		fprintf(stdout, "kstep: %.2f ms a stop in kstep (snapshot, backtrace, resume); "
				"the rest is the guest running\n", res->own_seconds * 1000 / (double)res->stops);
	if (res->module_loads)
		fprintf(stdout, "kstep: %" PRIu64 " modules loaded meanwhile; reading the module list took %.0f ms\n",
			res->module_loads, res->module_seconds * 1000);
	fprintf(stdout, "hits per probe:\n");
	for (size_t i = 0; i < ps->n; i++) {
		if (ps->v[i].module && !ps->v[i].addr)
			fprintf(stdout, "         -  %-10s %s (%s)\n", ps->v[i].stage, ps->v[i].spec,
				!s->kmods ? "modules are read with --unwind auto or cfi, on a kernel with modules"
					  : "its module was not loaded, or has no debug info");
		else
			fprintf(stdout, "  %8" PRIu64 "  %-10s %s%s\n", ps->v[i].hits, ps->v[i].stage, ps->v[i].spec,
				probe_notes(&ps->v[i], notes, sizeof(notes)));
	}
	if (res->filtered)
		fprintf(stdout, "kstep: %" PRIu64 " hits did not match their --filter%s and were not recorded\n",
			res->filtered, s->g->eng.pcap ? " or --pcap-filter" : "");
	for (size_t i = 0; i < ps->nskipped; i++)
		fprintf(stdout, "         -  %-10s %s (not in this vmlinux: skipped)\n", "", ps->skipped[i]);
	session_print_bt_ends(s, res);
	print_packets(s);
	fprintf(stdout, "trace: %s (read it with: kstep report %s, or babeltrace2 %s)\n", s->g->out, s->g->out,
		s->g->out);
	fflush(stdout); /* before the notes that follow on stderr */
}

/* A --filter, and the --break it follows (-1: before any, the set's). */
struct probe_filter {
	const char *text;
	int after_break;
};

/* The filters given after --break @after (-1: before any) on the probes
 * from @first on. */
static int apply_filters(struct session *s, struct probe_set *ps, size_t first, const struct probe_filter *filters,
			 size_t nfilters, int after)
{
	char err[768];
	int ret;

	for (size_t i = 0; i < nfilters; i++)
		if (filters[i].after_break == after &&
		    (ret = probes_set_filter(ps, first, filters[i].text, s->syms, err, sizeof(err)))) {
			say_error("%s", err);
			return ret;
		}
	return 0;
}

static int add_set(struct session *s, struct probe_set *ps, const char *probes)
{
	const char *nic = places_set_nic(s->g);
	char err[512];
	int ret;

	if ((ret = probes_add_set(ps, probes, nic, s->syms)) == -ENOENT) {
		if ((ret = probes_load_file(ps, probes, nic, s->syms, err, sizeof(err))))
			say_error("%s%s%s%s", err, ret == -ENOENT ? " (nor is it a probe set: have " : "",
			          ret == -ENOENT ? probes_set_names() : "", ret == -ENOENT ? ")" : "");
	} else if (ret) {
		say_error("cannot set up the probe set %s: %s", probes, strerror(-ret));
	}
	return ret;
}

/* What kstep trace's own options ask for (the guest's are in guest_opts). */
struct trace_args {
	struct guest_opts *g;
	struct probe_set *ps;
	const char *probes;   /* --probes SET[,SET...]|FILE */
	const char *breaks[64];
	struct probe_filter filters[64];
	size_t nbreaks, nfilters;
	size_t nset;          /* probes from --probes, before the --breaks' */
};

/* Every probe resolved before anything boots, so a typo fails at once:
 * the builtin sets (or a probe file), then each --break, each with the
 * filters that follow it; then the trace's event classes. Names vmlinux
 * lacks are looked for in its modules' debug info (ps->moddir). */
static int resolve_probes(struct session *s, struct probe_set *ps, struct trace_args *a)
{
	char err[768];
	int ret;

	if ((ret = add_set(s, ps, a->probes)) || (ret = apply_filters(s, ps, 0, a->filters, a->nfilters, -1)))
		return ret;
	a->nset = ps->n;
	for (size_t i = 0; i < a->nbreaks; i++) {
		size_t first = ps->n;

		if ((ret = probes_add_spec(ps, a->breaks[i], NULL, s->syms, err, sizeof(err)))) {
			say_error("%s", err);
			return ret;
		}
		if ((ret = apply_filters(s, ps, first, a->filters, a->nfilters, (int)i)))
			return ret;
	}
	if (!ps->n && !s->g->replay) { /* a replay with none just runs (its pace, make bench) */
		say_error("no probes to set (--probes none and no --break)");
		return -EINVAL;
	}
	if ((ret = probes_trace_classes(ps, &s->classes, &s->nclasses, err, sizeof(err))))
		say_error("%s", err);
	return ret;
}

static int dump_domain(void *ctx, int fd, char *err, size_t errlen)
{
	return lv_dump(ctx, fd, err, errlen);
}

/* The frozen guest's memory beside the trace (DIR/guest/vmcore): crash and drgn
 * read the dying kernel after QEMU is gone. Attached, QMP is found beside
 * a unix gdbstub (make run-guest's); elsewhere there is none to ask. */
static void save_vmcore(struct session *s)
{
	char sock[PATH_MAX], err[1024];

	if (s->lv)
		sock[0] = '\0'; /* through libvirt */
	else if (s->qemu)
		snprintf(sock, sizeof(sock), "%s", qemu_qmp_socket(s->qemu));
	else if (strncmp(s->g->attach, "unix:", 5) || vmcore_qmp_beside(s->g->attach + 5, sock, sizeof(sock))) {
		say_info("no vmcore: no QMP socket of yours beside %s (kstep dump --qmp PATH -o FILE can write one)",
		         s->g->attach);
		return;
	}
	char core[PATH_MAX + 32];
	int gfd = trace_guest_dir(s->out_dfd);

	snprintf(core, sizeof(core), "%s/" TRACE_GUEST_DIR "/" TRACE_VMCORE, s->g->out);
	say_info("writing the dying guest's memory to %s", core);
	if (gfd < 0)
		say_error("no vmcore written (the trace is intact): %s: %s", core, strerror(-gfd));
	else if (s->lv ? vmcore_write_by(dump_domain, s->lv, gfd, TRACE_VMCORE, err, sizeof(err))
		       : vmcore_write(sock, gfd, TRACE_VMCORE, err, sizeof(err)))
		say_error("no vmcore written (the trace is intact): %s", err);
	else if (s->lv)
		say_info("vmcore: %s; open it with: crash --kaslr auto %s %s", core, s->g->vmlinux, core);
	else
		say_info("vmcore: %s; open it with: crash --kaslr auto %s %s   or: drgn -c %s -s %s", core, s->g->vmlinux,
		         core, core, s->g->vmlinux);
	if (gfd >= 0)
		close(gfd);
}

/* A caught oops: where, and how to look at the frozen guest. */
static void say_oops(struct session *s, const struct engine_result *res)
{
	say_info("%sOOPS caught at %s (event #%" PRIu64 ")%s; the kernel printed its report and is frozen; "
	         "backtrace at %s:\n%s",
	         say_alarm_on(), res->oops_probe->spec, res->oops_seq, say_alarm_off(),
	         res->oops_probe->spec, res->oops_bt);
	if (s->lv && lv_ends_with_kstep(s->lv)) {
		say_info("domain '%s' ends with kstep (--keep-guest keeps a dying guest paused for gdb)", lv_name(s->lv));
		return;
	}
	if (s->lv) {
		say_info("domain '%s' stays paused with its dying kernel: make attach DOMAIN=%s opens a gdbstub and gdb "
		         "on it; virsh destroy %s ends it", lv_name(s->lv), lv_name(s->lv), lv_name(s->lv));
		return;
	}
	if (s->qemu)
		say_info("attach gdb: make attach   (or: gdb %s -ex 'target remote %s')", s->g->vmlinux,
		         qemu_gdb_socket(s->qemu));
	else
		say_info("attach gdb to the same stub: gdb %s -ex 'target remote %s'", s->g->vmlinux,
		         s->g->attach + (!strncmp(s->g->attach, "serial:", 7) ? 7 : !strncmp(s->g->attach, "unix:", 5) ? 5 : 0));
	say_info("in gdb, 'monitor quit' ends the frozen QEMU");
}

/* One of trace's own options (@c, @arg) into @ctx, a struct trace_args. */
static void trace_opt(int c, const char *arg, void *ctx)
{
	struct trace_args *a = ctx;
	struct guest_opts *g = a->g;
	char *end;

	switch (c) {
	case 'p':
		a->probes = arg;
		break;
	case 'b':
		if (a->nbreaks == sizeof(a->breaks) / sizeof(a->breaks[0]))
			say_usage("trace ", "too many --break options (at most 64)");
		a->breaks[a->nbreaks++] = arg;
		break;
	case 'f':
		if (a->nfilters == sizeof(a->filters) / sizeof(a->filters[0]))
			say_usage("trace ", "too many --filter options (at most 64)");
		a->filters[a->nfilters++] = (struct probe_filter){ arg, (int)a->nbreaks - 1 };
		break;
	case OPT_PCAP_FILTER:
		pcap_filter_free(g->eng.pcap);
		g->eng.pcap = places_pcap_filter("trace ", arg, a->ps);
		break;
	case OPT_SNAPLEN:
		g->eng.snaplen = (unsigned int)guest_parse_u64("trace ", "--snaplen", arg, 1);
		if (g->eng.snaplen < PACKET_HEADERS_READ || g->eng.snaplen > PACKET_SNAPLEN_MAX)
			say_usage("trace ", "--snaplen %s: from %d to %d bytes", arg, PACKET_HEADERS_READ,
				  PACKET_SNAPLEN_MAX);
		break;
	case 'm':
		g->eng.max_stops = guest_parse_u64("trace ", "--max-stops", arg, 1);
		break;
	case 'd':
		g->eng.duration = strtod(arg, &end);
		if (*end || g->eng.duration <= 0)
			say_usage("trace ", "--duration wants seconds above 0, not '%s'", arg);
		break;
	default:
		say_usage("trace ", "unknown option");
	}
}

/* The command line read into @g, @a and @ps; false: --help was printed. */
static bool trace_parse(int argc, char **argv, struct guest_opts *g, struct trace_args *a, struct probe_set *ps)
{
	static const struct option longopts[] = {
		GUEST_LONGOPTS,
		{ "probes", required_argument, NULL, 'p' },
		{ "break", required_argument, NULL, 'b' },
		{ "filter", required_argument, NULL, 'f' },
		{ "pcap-filter", required_argument, NULL, OPT_PCAP_FILTER },
		{ "snaplen", required_argument, NULL, OPT_SNAPLEN },
		{ "max-stops", required_argument, NULL, 'm' },
		{ "duration", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	const struct guest_cmdline cl = { "trace ", "p:b:f:m:d:w:n:a:A:o:qKh", longopts, trace_usage, trace_opt };

	guest_defaults(g);
	a->g = g;
	a->ps = ps;
	a->probes = "rx,oops";
	if (!guest_getopt(argc, argv, &cl, g, a))
		return false;
	guest_finish_defaults(g);
	return true;
}

/* The line that says what is being traced, and where: where a set and
 * --break probes are both traced, how many came from each. */
static void say_tracing(const struct session *s, const struct probe_set *ps, const struct trace_args *a)
{
	const struct guest_opts *g = s->g;
	char what[256];
	int n = snprintf(what, sizeof(what), "%zu probes", ps->n);

	if (a->nset && ps->n > a->nset)
		snprintf(what + n, sizeof(what) - (size_t)n, " (%zu of %s, %zu from --break)", a->nset,
			 a->probes, ps->n - a->nset);
	if (s->lv)
		say_info("tracing %s on libvirt domain '%s' (%s); Ctrl-C ends it", what, lv_name(s->lv), lv_uri(s->lv));
	else if (g->attach)
		say_info("tracing %s on the guest at %s; Ctrl-C ends it", what, g->attach);
	else if (g->replay)
		say_info("tracing %s on a replay of %s (workload %s); Ctrl-C ends it", what, g->replay, g->workload);
	else
		say_info("tracing %s on a %s guest (workload %s)%s; Ctrl-C ends it", what, s->accel, g->workload,
			 s->plugin[0] ? " with kstep's QEMU plugin" : "");
}

/* The run once the guest is at start_kernel and the trace open: kstep's
 * exit status (the trace is kept whichever way it ended). */
static int trace_run(struct session *s, struct probe_set *ps, const struct trace_args *a)
{
	struct engine_result res = { 0 };
	int ret, status;

	if (s->plugin[0])
		engine_use_plugin(s->engine, qemu_plugin_chan(s->qemu));
	probes_relocate(ps, sym_offset(s->syms));
	say_tracing(s, ps, a);
	ret = engine_trace(s->engine, ps, &res);
	if (ret)
		say_error("%s", engine_errmsg(s->engine));
	status = session_finish_guest(s, &res);
	print_summary(s, ps, &res);
	if (res.end == ENGINE_END_OOPS) {
		say_oops(s, &res);
		save_vmcore(s);
	}
	/* Hits the plugin sent that kstep never read: the trace lacks them. */
	if (s->plugin[0] && res.plugin_reported > res.plugin_hits) {
		say_error("the plugin reported %" PRIu64 " hits and kstep read %" PRIu64 ": the trace lacks %" PRIu64,
			  res.plugin_reported, res.plugin_hits, res.plugin_reported - res.plugin_hits);
		ret = -EIO;
	}
	return session_conclude(s, &res, status, ret != 0);
}

int cmd_trace(int argc, char **argv)
{
	struct guest_opts g;
	struct trace_args a = { 0 };
	struct probe_set ps = { 0 };
	struct engine_result res = { 0 };
	struct session s;
	int ret;

	if (!trace_parse(argc, argv, &g, &a, &ps))
		return EXIT_DONE;
	if (session_start(&s, &g))
		return EXIT_FAILED;
	probes_set_paths(&ps, s.syms, g.vmlinux, g.moddir, g.srcdir);
	if (resolve_probes(&s, &ps, &a) ||
	    places_check_pcap(&s, &ps))
		goto fail;
	s.ps = &ps; /* probes in modules get their addresses as modules come */
	if (session_choose_engine(&s, NULL)) {
		probes_free(&ps);
		session_end(&s);
		return EXIT_USAGE;
	}
	if (session_prepare_out(&s) || session_boot(&s) || places_check_kgdb_fields(&s, &ps) ||
	    session_open_trace(&s, "trace"))
		goto fail;
	ret = trace_run(&s, &ps, &a);
	probes_free(&ps);
	if (session_end(&s) && ret == EXIT_DONE)
		ret = EXIT_FAILED; /* the domain was not handed back as found */
	return ret;
fail:
	if (s.target)
		session_finish_guest(&s, &res);
	probes_free(&ps);
	session_end(&s);
	return EXIT_FAILED;
}
