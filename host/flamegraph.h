/* SPDX-License-Identifier: MIT */
/*
 * flamegraph: a call tree as an interactive flame graph, drawn by kstep (a
 * self-contained SVG, or an HTML page with it): tooltips with counts and
 * file:line, click to zoom, search. See flamegraph.c.
 */
#ifndef KSTEP_FLAMEGRAPH_H
#define KSTEP_FLAMEGRAPH_H

#include <stdbool.h>
#include <stdio.h>

#include "calltree.h"

/* @source names a function's file:line for its tooltip (NULL: none). 0, or
 * -ENOMEM / -EIO. */
int flamegraph_write(const struct calltree *t, FILE *out, bool html, const char *title,
		     const char *(*source)(void *ctx, const char *name), void *ctx);

#endif
