// SPDX-License-Identifier: MIT
/*
 * calltree: a tree of call paths with inclusive and exclusive counts (see
 * calltree.h). Nodes live in one array; each has its first child and next
 * sibling, and the last path added is remembered, since consecutive steps
 * nearly always share it.
 */
#include "calltree.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define NO_NODE ((size_t)-1)
#define MAX_DEPTH 256

struct node {
	const char *name;
	uint64_t incl, excl;
	uint64_t over;           /* calls that ran whole (kstep step --max-depth) */
	uint64_t incl_ns;        /* guest time, this node and below */
	size_t parent, child, next;
};

struct calltree {
	struct node *v;
	size_t n, cap;
	size_t last;             /* the node the last add counted at */
	bool timed;              /* guest time was added */
};

int calltree_new(struct calltree **out)
{
	struct calltree *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->cap = 256;
	t->v = malloc(t->cap * sizeof(*t->v));
	if (!t->v) {
		free(t);
		return -ENOMEM;
	}
	t->v[0] = (struct node){ .name = "(all)", .parent = NO_NODE, .child = NO_NODE, .next = NO_NODE };
	t->n = 1;
	*out = t;
	return 0;
}

void calltree_free(struct calltree *t)
{
	if (!t)
		return;
	free(t->v);
	free(t);
}

/* The child of @parent named @name, made if missing; NO_NODE without memory. */
static size_t child(struct calltree *t, size_t parent, const char *name)
{
	size_t c;

	for (c = t->v[parent].child; c != NO_NODE; c = t->v[c].next)
		if (t->v[c].name == name || !strcmp(t->v[c].name, name))
			return c;
	if (t->n == t->cap) {
		struct node *tmp = realloc(t->v, 2 * t->cap * sizeof(*tmp));

		if (!tmp)
			return NO_NODE;
		t->v = tmp;
		t->cap *= 2;
	}
	c = t->n++;
	t->v[c] = (struct node){ .name = name, .parent = parent, .child = NO_NODE, .next = t->v[parent].child };
	t->v[parent].child = c;
	return c;
}

/* Count @n at the path's node, which goes to *@node. */
static int add_at(struct calltree *t, const char *const *frames, size_t nframes, uint64_t n, size_t *node)
{
	size_t at = 0;

	t->v[0].incl += n;
	for (size_t i = 0; i < nframes && i < MAX_DEPTH; i++) {
		if ((at = child(t, at, frames[i])) == NO_NODE)
			return -ENOMEM;
		t->v[at].incl += n;
	}
	t->v[at].excl += n;
	t->last = at;
	if (node)
		*node = at;
	return 0;
}

int calltree_add(struct calltree *t, const char *const *frames, size_t nframes, uint64_t n)
{
	return add_at(t, frames, nframes, n, NULL);
}

int calltree_add_over(struct calltree *t, const char *const *frames, size_t nframes)
{
	size_t at;
	int err = add_at(t, frames, nframes, 1, &at);

	if (!err)
		t->v[at].over++;
	return err;
}

size_t calltree_last(const struct calltree *t)
{
	return t->last;
}

void calltree_add_ns(struct calltree *t, size_t node, uint64_t ns)
{
	t->timed = true;
	for (size_t at = node; at != NO_NODE; at = t->v[at].parent)
		t->v[at].incl_ns += ns;
}

uint64_t calltree_total(const struct calltree *t)
{
	return t->v[0].incl;
}

uint64_t calltree_exclusive(const struct calltree *t, const char *function)
{
	uint64_t sum = 0;

	for (size_t i = 1; i < t->n; i++)
		if (!strcmp(t->v[i].name, function))
			sum += t->v[i].excl;
	return sum;
}

/* The children of @parent, most inclusive first, into @out (at most @max). */
static size_t sorted_children(const struct calltree *t, size_t parent, size_t *out, size_t max)
{
	size_t n = 0;

	for (size_t c = t->v[parent].child; c != NO_NODE && n < max; c = t->v[c].next) {
		size_t i = n++;

		while (i > 0 && t->v[out[i - 1]].incl < t->v[c].incl) {
			out[i] = out[i - 1];
			i--;
		}
		out[i] = c;
	}
	return n;
}

static void print_node(const struct calltree *t, FILE *out, size_t node, unsigned int level, unsigned int depth)
{
	size_t kids[512], n;

	fprintf(out, "%10" PRIu64 " %10" PRIu64 "  ", t->v[node].incl, t->v[node].excl);
	if (t->timed)
		fprintf(out, "%10.3f  ", (double)t->v[node].incl_ns / 1000.0);
	fprintf(out, "%*s%s", (int)(2 * level), "", t->v[node].name);
	if (t->v[node].over)
		fprintf(out, "  [%" PRIu64 " %s whole, instructions not counted]", t->v[node].over,
			t->v[node].over == 1 ? "call ran" : "calls ran");
	fputc('\n', out);
	if (depth && level + 1 >= depth)
		return;
	n = sorted_children(t, node, kids, sizeof(kids) / sizeof(kids[0]));
	for (size_t i = 0; i < n; i++)
		print_node(t, out, kids[i], level + 1, depth);
}

void calltree_print(const struct calltree *t, FILE *out, unsigned int depth)
{
	size_t kids[512], n = sorted_children(t, 0, kids, sizeof(kids) / sizeof(kids[0]));

	fprintf(out, "%10s %10s  %s%s\n", "inclusive", "exclusive", t->timed ? "  guest µs  " : "",
		"function (callers above callees)");
	for (size_t i = 0; i < n; i++)
		print_node(t, out, kids[i], 0, depth);
}

void calltree_folded(const struct calltree *t, FILE *out)
{
	size_t path[MAX_DEPTH + 1];

	for (size_t i = 1; i < t->n; i++) {
		size_t depth = 0;

		if (!t->v[i].excl)
			continue;
		for (size_t at = i; at && depth <= MAX_DEPTH; at = t->v[at].parent)
			path[depth++] = at;
		while (depth--)
			fprintf(out, "%s%s", t->v[path[depth]].name, depth ? ";" : "");
		fprintf(out, " %" PRIu64 "\n", t->v[i].excl);
	}
}

static int by_name(const void *a, const void *b, void *tree)
{
	const struct calltree *t = tree;

	return strcmp(t->v[*(const size_t *)a].name, t->v[*(const size_t *)b].name);
}

static unsigned int visit(const struct calltree *t, size_t node, unsigned int depth, uint64_t x,
			  void (*fn)(void *ctx, const struct calltree_frame *f), void *ctx)
{
	size_t kids[512], n = 0;
	unsigned int deepest = depth;

	fn(ctx, &(struct calltree_frame){ t->v[node].name, depth, x, t->v[node].incl, t->v[node].excl });
	for (size_t c = t->v[node].child; c != NO_NODE && n < sizeof(kids) / sizeof(kids[0]); c = t->v[c].next)
		kids[n++] = c;
	qsort_r(kids, n, sizeof(kids[0]), by_name, (void *)t);
	for (size_t i = 0; i < n; i++) {
		unsigned int d = visit(t, kids[i], depth + 1, x, fn, ctx);

		if (d > deepest)
			deepest = d;
		x += t->v[kids[i]].incl;
	}
	return deepest;
}

unsigned int calltree_visit(const struct calltree *t, void (*fn)(void *ctx, const struct calltree_frame *f),
			    void *ctx)
{
	size_t kids[512], n = 0;
	unsigned int deepest = 0;
	uint64_t x = 0;

	for (size_t c = t->v[0].child; c != NO_NODE && n < sizeof(kids) / sizeof(kids[0]); c = t->v[c].next)
		kids[n++] = c;
	qsort_r(kids, n, sizeof(kids[0]), by_name, (void *)t);
	for (size_t i = 0; i < n; i++) {
		unsigned int d = visit(t, kids[i], 0, x, fn, ctx);

		if (d > deepest)
			deepest = d;
		x += t->v[kids[i]].incl;
	}
	return deepest;
}

/* @node and below, children most inclusive first. */
static struct json_object *node_json(const struct calltree *t, size_t node, unsigned int level)
{
	struct json_object *o = json_object_new_object(), *kids = json_object_new_array();
	size_t order[512], n = level < MAX_DEPTH ? sorted_children(t, node, order, 512) : 0;

	json_object_object_add(o, "function", json_object_new_string(t->v[node].name));
	json_object_object_add(o, "inclusive", json_object_new_uint64(t->v[node].incl));
	json_object_object_add(o, "exclusive", json_object_new_uint64(t->v[node].excl));
	if (t->timed)
		json_object_object_add(o, "guest_ns", json_object_new_uint64(t->v[node].incl_ns));
	if (t->v[node].over)
		json_object_object_add(o, "ran_whole", json_object_new_uint64(t->v[node].over));
	for (size_t i = 0; i < n; i++)
		json_object_array_add(kids, node_json(t, order[i], level + 1));
	json_object_object_add(o, "children", kids);
	return o;
}

struct json_object *calltree_json(const struct calltree *t)
{
	return node_json(t, 0, 0);
}
