/* SPDX-License-Identifier: MIT */
/*
 * filter: which hits of a probe are kept (--filter).
 */
#ifndef KSTEP_FILTER_H
#define KSTEP_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "fetcharg.h"

/*
 * A filter: comparisons "OPERAND OP CONST" (== != < <= > >= &) joined by
 * && and || (&& first). An OPERAND is a field of the probe (by its NAME)
 * or an expression; CONST a number, an enum name, or a "string". A hit
 * whose operand could not be read does not match.
 */
struct filter;
/* Fields a probe records besides its fetch arguments (the decoded packet):
 * their names, and which are text. Their values follow the arguments'. */
struct filter_extra {
	const char *const *names;
	const bool *is_text;
	size_t n;
};
int filter_compile(struct filter **out, const char *text, struct farg *const *fields, size_t nfields,
		   const struct filter_extra *extra, struct symtab *syms, const struct farg_scope *scope,
		   char *err, size_t errlen);
/* @values are those of @fields then @extra's (as given to filter_compile),
 * already fetched. */
bool filter_match(const struct filter *f, const struct farg_value *values, const struct farg_env *env);
void filter_free(struct filter *f);
/* The expressions of its own a filter evaluates (not the probe's fields). */
size_t filter_exprs(const struct filter *f, const struct farg **out, size_t max);

#endif
