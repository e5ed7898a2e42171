// SPDX-License-Identifier: MIT
/*
 * kerr: the one error setter (see kerr.h for the convention).
 */
#include "kerr.h"

#include <stdio.h>

int kerr_vset(char *buf, size_t len, int code, const char *fmt, va_list ap)
{
	if (len)
		vsnprintf(buf, len, fmt, ap);
	return code;
}

int kerr_set(char *buf, size_t len, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kerr_vset(buf, len, code, fmt, ap);
	va_end(ap);
	return code;
}
