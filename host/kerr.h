/* SPDX-License-Identifier: MIT */
/*
 * kerr: the tree's one error convention. A function that can fail returns
 * 0 (or a count) on success and a negative errno on failure, and then
 * leaves one line saying why, naming the real cause, in a message buffer:
 * the caller's (`char *err, size_t errlen` parameters) or, for a
 * connection-like object, its own, read through its *_errmsg(). kerr_set
 * is the one setter; library code never prints: a command says the
 * message (host/cmd/say.c).
 */
#ifndef KSTEP_KERR_H
#define KSTEP_KERR_H

#include <stdarg.h>
#include <stddef.h>

/* Write the message into @buf (@len bytes, always terminated); returns @code. */
int kerr_set(char *buf, size_t len, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int kerr_vset(char *buf, size_t len, int code, const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

#endif
