// SPDX-License-Identifier: MIT
/*
 * annotate: per-instruction and per-line counts of one function in a step
 * trace (see annotate.h).
 */
#include "annotate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"

struct insn_count {
	uint64_t pc, n;
	char *insn, *src;
};

struct line_count {
	const char *src;         /* "file:line", one of the insns' */
	uint64_t n;
};

struct annotate {
	char *function;
	struct insn_count *v;
	size_t n, cap;
	uint64_t total;
};

int annotate_new(struct annotate **out, const char *function)
{
	struct annotate *a = calloc(1, sizeof(*a));

	if (!a || !(a->function = strdup(function))) {
		free(a);
		return -ENOMEM;
	}
	*out = a;
	return 0;
}

void annotate_free(struct annotate *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++) {
		free(a->v[i].insn);
		free(a->v[i].src);
	}
	free(a->v);
	free(a->function);
	free(a);
}

/* Is @symbol ("name+0x10", "name.isra.0+0x4") in the function? */
static bool in_function(const struct annotate *a, const char *symbol)
{
	size_t n = strlen(a->function);

	return !strncmp(symbol, a->function, n) && (!symbol[n] || symbol[n] == '+' || symbol[n] == '.');
}

int annotate_add(struct annotate *a, const char *symbol, uint64_t pc, const char *insn, const char *src)
{
	struct insn_count *c = NULL;

	if (!in_function(a, symbol))
		return 0;
	for (size_t i = a->n; i-- > 0 && !c;)
		if (a->v[i].pc == pc)
			c = &a->v[i];
	if (!c) {
		if (a->n == a->cap) {
			size_t cap = a->cap ? 2 * a->cap : 64;
			struct insn_count *tmp = realloc(a->v, cap * sizeof(*tmp));

			if (!tmp)
				return -ENOMEM;
			a->v = tmp;
			a->cap = cap;
		}
		c = &a->v[a->n];
		*c = (struct insn_count){ pc, 0, strdup(insn ? insn : ""), strdup(src ? src : "") };
		if (!c->insn || !c->src) {
			free(c->insn);
			free(c->src);
			return -ENOMEM;
		}
		a->n++;
	}
	c->n++;
	a->total++;
	return 0;
}

uint64_t annotate_count(const struct annotate *a)
{
	return a->total;
}

static int by_pc(const void *x, const void *y)
{
	const struct insn_count *a = x, *b = y;

	return (a->pc > b->pc) - (a->pc < b->pc);
}

static int by_hits(const void *x, const void *y)
{
	const struct line_count *a = x, *b = y;

	return (a->n < b->n) - (a->n > b->n);
}

static void print_line(FILE *out, uint64_t n, const char *src, const char *srcdir)
{
	char file[512], text[512] = "";
	const char *colon = strrchr(src, ':');

	if (colon && (size_t)(colon - src) < sizeof(file)) {
		snprintf(file, sizeof(file), "%.*s", (int)(colon - src), src);
		files_source_line(srcdir, file, atoi(colon + 1), text, sizeof(text));
	}
	fprintf(out, "  %8" PRIu64 "  %-36s %s\n", n, src[0] ? src : "(no line)", text);
}

void annotate_print(const struct annotate *a, FILE *out, unsigned int top, const char *srcdir)
{
	struct line_count *lines = calloc(a->n ? a->n : 1, sizeof(*lines));
	size_t nlines = 0;

	if (!a->total) {
		fprintf(out, "annotate %s: no step in it in this trace\n", a->function);
		free(lines);
		return;
	}
	qsort(a->v, a->n, sizeof(*a->v), by_pc);
	for (size_t i = 0; lines && i < a->n; i++) {
		size_t k;

		for (k = 0; k < nlines && strcmp(lines[k].src, a->v[i].src); k++)
			;
		if (k == nlines)
			lines[nlines++].src = a->v[i].src;
		lines[k].n += a->v[i].n;
	}
	fprintf(out, "annotate %s: %" PRIu64 " instructions stepped in it, %zu addresses, %zu source lines\n",
		a->function, a->total, a->n, nlines);
	fprintf(out, "\nper source line, most first%s:\n", srcdir ? "" : " (no kernel tree found: --source DIR)");
	qsort(lines, nlines, sizeof(*lines), by_hits);
	for (size_t i = 0; i < nlines && (!top || i < top); i++)
		print_line(out, lines[i].n, lines[i].src, srcdir);
	fprintf(out, "\nper instruction:\n");
	for (size_t i = 0; i < a->n; i++)
		fprintf(out, "  %8" PRIu64 "  %016" PRIx64 "  %-40s %s\n", a->v[i].n, a->v[i].pc, a->v[i].insn,
			a->v[i].src);
	free(lines);
}
