// SPDX-License-Identifier: MIT
/*
 * kstep's entry: the table of commands (name, one-line summary, entry
 * point) that dispatches them and prints kstep --help; build-images, which
 * hands over to a script of the tree; and kstep help's manual pages.
 */
#include <errno.h>
#include <string.h>

#include "cmd.h"
#include "qemu.h"

#define KSTEP_VERSION "1.0"

volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* A script of the tree's guest/ in place of kstep, with the same arguments. */
static int exec_guest_script(const char *name, char **argv)
{
	char tree[PATH_MAX - 64], script[PATH_MAX];
	bool installed;
	int n = 0;

	guest_find_tree(tree, sizeof(tree), &installed);
	snprintf(script, sizeof(script), "%s/guest/%s", tree, name);
	while (argv[n])
		n++;
	char *args[n + 3];

	args[0] = "bash";
	args[1] = script;
	for (int i = 1; i <= n; i++)
		args[i + 1] = argv[i];
	execv("/bin/bash", args);
	say_error("cannot run %s: %s", script, strerror(errno));
	return EXIT_FAILED;
}

static int cmd_build_images(int argc, char **argv)
{
	(void)argc;
	return exec_guest_script("build-images.sh", argv);
}

static int cmd_help(int argc, char **argv);

/* Every command: its name, what it does (kstep --help) and its entry,
 * called with the command's own argv (argv[0] is its name). */
static const struct command {
	const char *name, *summary;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "trace", "stop at each receive-path stage and record snapshots", cmd_trace },
	{ "step", "single-step a function, recording every instruction", cmd_step },
	{ "probe", "where probes can go (lines, inlines) and what they can fetch, from the\n"
		   "               debug info with no guest (--lines, --vars)", cmd_probe },
	{ "oops", "decode kernel oops reports in a log (file or stdin)", cmd_oops },
	{ "report", "what happened to each packet in a trace (also --netdev-times, --json);\n"
		    "               a step trace's call tree, flame graph, annotated function", cmd_report },
	{ "diff", "where two step traces of the same entry point first diverge", cmd_diff },
	{ "dump", "write a guest's memory as a vmcore for crash and drgn", cmd_dump },
	{ "record", "run the guest once under QEMU's record mode, to replay it exactly\n"
		    "               (trace|step --replay DIR; step --backwards N)", cmd_record },
	{ "why", "in a replay: the last instruction that wrote a location before a point", cmd_why },
	{ "build-images", "build the guest images an installed kstep uses (--system: for all users)",
	  cmd_build_images },
	{ "help", "show a command's manual page: kstep help COMMAND", cmd_help },
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: kstep COMMAND [OPTIONS]\n"
		   "Trace a Linux guest's network receive path over QEMU's gdbstub.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'kstep COMMAND --help' shows a command's options, 'kstep help COMMAND' its manual\n"
		   "page, 'man kstep-probes' the probe language. kstep --version.\n");
}

/* kstep help [COMMAND]: the page from the clone's doc/man, or the one
 * installed beside an installed kstep, through man -l. */
static int cmd_help(int argc, char **argv)
{
	char tree[PATH_MAX - 64], page[PATH_MAX];
	const char *name = argc > 1 ? argv[1] : NULL;
	bool installed;

	if (name && strcmp(name, "probes") && !find_command(name)) {
		say_error("help: no command '%s' (try 'kstep --help')", name);
		return EXIT_USAGE;
	}
	guest_find_tree(tree, sizeof(tree), &installed);
	snprintf(page, sizeof(page), "%s/%s/kstep%s%s.%c", tree, installed ? "../man/man1" : "doc/man",
		 name ? "-" : "", name ? name : "", name && !strcmp(name, "probes") ? '7' : '1');
	if (installed && name && !strcmp(name, "probes"))
		snprintf(page, sizeof(page), "%s/../man/man7/kstep-probes.7", tree);
	if (access(page, R_OK)) {
		say_error("help: no manual page at %s: %s", page, strerror(errno));
		return EXIT_FAILED;
	}
	execlp("man", "man", "-l", page, (char *)NULL);
	say_error("help: cannot run man (install man-db): %s", strerror(errno));
	return EXIT_FAILED;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	const struct command *cmd;

	if (argc > 1 && !strcmp(argv[1], QEMU_KEEPER_ARG))
		return qemu_keeper_main(argc - 2, argv + 2);
	say_init();
	/* No SA_RESTART: a blocked poll() must return so that kstep can stop
	 * the guest and close the trace cleanly. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("kstep %s\n", KSTEP_VERSION);
		return 0;
	}
	cmd = find_command(argv[1]);
	if (cmd)
		return cmd->run(argc - 1, argv + 1);
	say_error("unknown command '%s' (try 'kstep --help')", argv[1]);
	return EXIT_USAGE;
}
