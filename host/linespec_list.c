// SPDX-License-Identifier: MIT
/*
 * linespec_list: the lines of a function or a file that can take a probe,
 * for kstep probe --lines (perf probe -L): a range parsed, the function's
 * instances or the file's units walked (see linespec.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linespec_priv.h"
#include "kerr.h"

/* "A", "A-B" or "A+N" after NAME: */
static int parse_range(const char *text, int *a, int *b)
{
	char *end;
	long x = strtol(text, &end, 10), y = x;

	if (end == text || x < 0)
		return -EINVAL;
	if (*end == '-' || *end == '+') {
		char sign = *end;
		const char *rest = end + 1;

		y = strtol(rest, &end, 10);
		if (end == rest || y < 0)
			return -EINVAL;
		if (sign == '+')
			y += x;
	} else {
		y = INT_MAX / 2;
	}
	if (*end || y < x)
		return -EINVAL;
	*a = (int)x;
	*b = (int)y;
	return 0;
}

static int lines_of_function(struct symtab *s, const char *func, int a, int b, struct line_range *r, char *err,
			     size_t errlen)
{
	struct instances *in = calloc(1, sizeof(*in));
	struct collect c = { .s = s };
	int ret;

	if (!in)
		return -ENOMEM;
	if ((ret = linespec_find_instances(s, func, in, err, errlen)))
		goto done;
	c.file = dwarf_decl_file(&in->v[0]);
	dwarf_decl_line(&in->v[0], &c.decl);
	if (!c.file) {
		snprintf(err, errlen, "%s has no source file in the debug info", func);
		ret = -ENOENT;
		goto done;
	}
	/* First pass: how far the function's lines go; second: which have code. */
	c.hi = c.decl;
	for (size_t i = 0; i < in->n; i++)
		linespec_walk_function(&in->v[i], &c);
	r->base = c.decl;
	r->first = c.decl + a;
	r->last = c.decl + b < c.hi ? c.decl + b : c.hi;
	snprintf(r->file, sizeof(r->file), "%s", c.file);
	snprintf(r->func, sizeof(r->func), "%.*s", (int)sizeof(r->func) - 1, func);
	if (r->last < r->first) {
		snprintf(err, errlen, "%s:%d is past the function's last line (%d)", func, a, c.hi - c.decl);
		ret = -ERANGE;
		goto done;
	}
	c.lo = r->first;
	c.hi = r->last;
	if (!(c.has_code = calloc((size_t)(r->last - r->first + 1), sizeof(bool)))) {
		ret = -ENOMEM;
		goto done;
	}
	for (size_t i = 0; i < in->n; i++)
		linespec_walk_function(&in->v[i], &c);
	r->has_code = c.has_code;
done:
	linespec_free_instances(in);
	return ret;
}

static int lines_of_file(struct symtab *s, const char *file, int a, int b, struct line_range *r, char *err,
			 size_t errlen)
{
	struct collect c = { .s = s, .file = file, .lo = a ? a : 1, .hi = b };
	Dwarf *dw = sym_dwarf(s, &c.to_running);
	const char *found;

	if (b == INT_MAX / 2) { /* to the file's end: as far as code goes */
		c.hi = 0;
		linespec_collect_units(&c, dw, file, false);
	}
	if (c.hi < c.lo) {
		snprintf(err, errlen, "no source file ending in '%s' has code at lines %d-%d in %s", file, c.lo, b,
			 sym_path(s));
		return -ENOENT;
	}
	if (!(c.has_code = calloc((size_t)(c.hi - c.lo + 1), sizeof(bool))))
		return -ENOMEM;
	if (!(found = linespec_collect_units(&c, dw, file, false))) {
		free(c.has_code);
		snprintf(err, errlen, "no unit of %s is built from a file ending in '%s'", sym_path(s), file);
		return -ENOENT;
	}
	snprintf(r->file, sizeof(r->file), "%s", found);
	r->first = c.lo;
	r->last = c.hi;
	r->has_code = c.has_code;
	return 0;
}

int linespec_lines(struct symtab *s, const char *what, struct line_range *r, char *err, size_t errlen)
{
	char name[256];
	const char *colon = strchr(what, ':');
	int a = 0, b = INT_MAX / 2;

	memset(r, 0, sizeof(*r));
	snprintf(name, sizeof(name), "%.*s", colon ? (int)(colon - what) : (int)strlen(what), what);
	if (!name[0] || (colon && parse_range(colon + 1, &a, &b)))
		return kerr_set(err, errlen, -EINVAL, "'%s': use FUNC[:A[-B]] or FILE[:A[-B]]", what);
	if (linespec_looks_like_file(name))
		return lines_of_file(s, name, a, b, r, err, errlen);
	return lines_of_function(s, name, a, b, r, err, errlen);
}

void linespec_range_free(struct line_range *r)
{
	free(r->has_code);
	r->has_code = NULL;
}
