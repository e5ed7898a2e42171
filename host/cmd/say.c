// SPDX-License-Identifier: MIT
/*
 * Every message kstep prints for its user goes through say(): on stderr,
 * "kstep: " first, coloured only when stderr is a terminal and NO_COLOR is
 * unset (red for what failed, cyan for how the run goes). Library code
 * never prints; it hands its message up, and a command says it here.
 */
#include <stdarg.h>
#include <stdlib.h>

#include "cmd.h"

enum say_kind { SAY_ERROR, SAY_INFO };

static bool color;

void say_init(void)
{
	color = isatty(2) && !getenv("NO_COLOR");
}

const char *say_alarm_on(void)
{
	return color ? "\033[1;31m" : "";
}

const char *say_alarm_off(void)
{
	return color ? "\033[0m" : "";
}

/* The one writer: prefix, message, and @tail ("\n" or more). */
static void __attribute__((format(printf, 3, 0), nonnull(3))) say(enum say_kind kind, const char *tail,
								 const char *fmt, va_list ap)
{
	const char *on = kind == SAY_ERROR ? say_alarm_on() : color ? "\033[1;36m" : "";

	fprintf(stderr, "%skstep%s: ", on, say_alarm_off());
	vfprintf(stderr, fmt, ap);
	fputs(tail, stderr);
}

void say_progress(const char *line, bool final)
{
	fprintf(stderr, "\r\033[Kkstep: %s%s", line, final ? "\n" : "");
	fflush(stderr);
}

void say_usage(const char *cmd, const char *fmt, ...)
{
	char tail[64];
	va_list ap;

	snprintf(tail, sizeof(tail), " (see 'kstep %s--help')\n", cmd ? cmd : "");
	va_start(ap, fmt);
	say(SAY_ERROR, tail, fmt, ap);
	va_end(ap);
	exit(EXIT_USAGE);
}

void say_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(SAY_ERROR, "\n", fmt, ap);
	va_end(ap);
}

void say_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(SAY_INFO, "\n", fmt, ap);
	va_end(ap);
}
