/* SPDX-License-Identifier: MIT */
/*
 * calltree: where the instructions (or stops) of a trace went, as a tree of
 * call paths built from each event's backtrace (outermost caller first):
 * inclusive and exclusive counts per node, printed as an indented tree or
 * as folded stacks ("a;b;c N", what FlameGraph, speedscope and inferno read).
 */
#ifndef KSTEP_CALLTREE_H
#define KSTEP_CALLTREE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct calltree;

int calltree_new(struct calltree **out);
void calltree_free(struct calltree *t);
/* Count @n at the path @frames[0] (outermost) .. @frames[nframes-1] (where
 * the event was). The names must outlive the tree. 0 or -ENOMEM. */
int calltree_add(struct calltree *t, const char *const *frames, size_t nframes, uint64_t n);
/* A call that ran whole (kstep step --max-depth): 1 at its path, marked. */
int calltree_add_over(struct calltree *t, const char *const *frames, size_t nframes);
/* The node the last add counted at; @ns of guest time spent there (it and
 * its callers get it inclusive). With any, the printed tree has a column
 * of inclusive guest time. */
size_t calltree_last(const struct calltree *t);
void calltree_add_ns(struct calltree *t, size_t node, uint64_t ns);
uint64_t calltree_total(const struct calltree *t);
/* The exclusive count of @function summed over every node of that name. */
uint64_t calltree_exclusive(const struct calltree *t, const char *function);
/* The tree as JSON: nested {function, inclusive, exclusive, guest_ns (with
 * guest time), ran_whole (calls run whole, if any), children}, from the
 * root "(all)". */
struct json_object;
struct json_object *calltree_json(const struct calltree *t);
/* Indented, children by inclusive count, down to @depth levels (0: all). */
void calltree_print(const struct calltree *t, FILE *out, unsigned int depth);
/* One line per path with an exclusive count. */
void calltree_folded(const struct calltree *t, FILE *out);

/* A node as a flame graph draws it: @x and @width in counts from the left
 * (children in name order, as flame graphs sort them), @depth from the root. */
struct calltree_frame {
	const char *name;
	unsigned int depth;
	uint64_t x, width, exclusive;
};
/* Every node but the root, parents before children; the deepest depth. */
unsigned int calltree_visit(const struct calltree *t, void (*fn)(void *ctx, const struct calltree_frame *f),
			    void *ctx);

#endif
