// SPDX-License-Identifier: MIT
/*
 * kstep oops [FILE|-]: the oops, BUG, WARNING and panic reports of a
 * kernel log decoded (oops.c), the log printed with its decoded lines.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "oops.h"

#include "cmd.h"

/* Say why frames were not decoded, one line a reason. */
static void summarize_undecoded(const struct oops_summary *d)
{
	if (d->nmodule)
		say_info("%d frame(s) in modules were not decoded (no debug info for them%s%s)",
			d->nmodule, d->moddir[0] ? " in " : "; give --modules DIR", d->moddir);
	if (d->nunknown)
		say_info("%d frame(s) name functions this vmlinux lacks: another kernel's log?",
			d->nunknown);
	if (d->nmismatch)
		say_info("%d frame(s) have sizes that do not fit this vmlinux: another build?",
			d->nmismatch);
	if (d->nnoline)
		say_info("%d frame(s) have no line information in this vmlinux", d->nnoline);
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: kstep oops [OPTIONS] [FILE|-]\n"
		   "Decode the oops, BUG, WARNING and panic reports in a kernel log (serial console\n"
		   "or dmesg, with or without timestamps): RIP and Call Trace entries to file:line\n"
		   "with inlined frames, Code: bytes disassembled. Prints the log with decoded lines.\n\n"
		   "  --vmlinux PATH     kernel with debug info (default: the tree's images/vmlinux)\n"
		   "  --json             one JSON document with every report, for tools\n"
		   "  --raw-addresses    look return addresses up as printed, not at address-1\n"
		   "  --modules DIR      where modules' debug info is (NAME.ko below it); default:\n"
		   "                     /usr/lib/debug/lib/modules/RELEASE of the vmlinux\n"
		   "                     (what scripts/decode_stacktrace.sh of 6.1 does)\n"
		   "  -h, --help\n");
}

/* The log of @path ("-": standard input) decoded; the exit status. */
static int decode_log(FILE *in, const char *path, const struct oops_options *o)
{
	const char *name = strcmp(path, "-") ? path : "standard input";
	struct oops_decoder *d;
	struct oops_summary sum;
	char err[512], *line = NULL;
	size_t cap = 0;
	long nlines = 0;
	int ret = EXIT_DONE;

	if (oops_decoder_new(&d, o, err, sizeof(err))) {
		say_error("%s", err);
		oops_decoder_free(d);
		return EXIT_FAILED;
	}
	while (!interrupted && getline(&line, &cap, in) > 0) {
		nlines++;
		oops_decode_line(d, line);
	}
	oops_decoder_end(d, &sum);
	if (interrupted) {
		say_error("interrupted after %ld lines", nlines);
		ret = EXIT_INTERRUPTED;
	} else if (nlines == 0) {
		say_error("%s is empty: give it a kernel log (serial console or dmesg)", name);
		ret = EXIT_FAILED;
	} else if (sum.nreports == 0) {
		say_error("no oops, BUG, WARNING or panic report in %s (%ld lines)", name, nlines);
		ret = EXIT_FAILED;
	} else {
		if (sum.unterminated)
			say_info("the last report has no end marker (log cut short?); decoded what is there");
		summarize_undecoded(&sum);
	}
	free(line);
	oops_decoder_free(d);
	return ret;
}

int cmd_oops(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "vmlinux", required_argument, NULL, 'V' },
		{ "json", no_argument, NULL, 'j' },
		{ "raw-addresses", no_argument, NULL, 'r' },
		{ "modules", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct oops_options o = { 0 };
	struct guest_opts g;
	const char *path = "-";
	FILE *in;
	int c, ret;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'V':
			o.vmlinux = optarg;
			break;
		case 'j':
			o.json = true;
			break;
		case 'm':
			o.moddir = optarg;
			break;
		case 'r':
			o.raw = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_DONE;
		default:
			say_error("unknown option (see 'kstep oops --help')");
			return EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		say_error("one log at a time (see 'kstep oops --help')");
		return EXIT_USAGE;
	}
	if (optind < argc)
		path = argv[optind];
	if (!o.vmlinux) { /* the one a guest command would take */
		guest_defaults(&g);
		guest_finish_defaults(&g);
		o.vmlinux = g.vmlinux;
	}
	in = strcmp(path, "-") ? fopen(path, "r") : stdin;
	if (!in) {
		say_error("cannot read %s: %s", path, strerror(errno));
		return EXIT_FAILED;
	}
	ret = decode_log(in, path, &o);
	if (in != stdin)
		fclose(in);
	return ret;
}
