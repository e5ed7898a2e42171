// SPDX-License-Identifier: MIT
/*
 * kstep diff A B: two step traces of the same entry point aligned by
 * control flow (diff.c), printed.
 */
#include <errno.h>

#include "diff.h"

#include "cmd.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: kstep diff A B\n"
		   "Align two step traces of the same entry point (kstep step --at the same SPEC)\n"
		   "by control flow: the first divergence (the branch, where each went, the\n"
		   "registers that differed there), where the paths meet again, and the\n"
		   "instructions per function where they differ.\n"
		   "\nExit status: 0 done (whether or not they diverge), 1 a trace cannot be read,\n"
		   "2 bad usage.\n");
}

int cmd_diff(int argc, char **argv)
{
	static const struct option longopts[] = { { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	struct diff *d;
	char err[512];
	int c, ret;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		say_error("unknown option (see 'kstep diff --help')");
		return EXIT_USAGE;
	}
	if (argc - optind != 2) {
		say_error("diff wants two step trace directories (see 'kstep diff --help')");
		return EXIT_USAGE;
	}
	ret = diff_load(&d, argv[optind], argv[optind + 1], &interrupted, err, sizeof(err));
	if (ret)
		say_error("%s", err);
	else
		diff_print(d, stdout);
	diff_free(d);
	return ret == -EINTR ? EXIT_INTERRUPTED : ret ? EXIT_FAILED : EXIT_DONE;
}
