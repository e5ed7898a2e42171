/* SPDX-License-Identifier: MIT */
/*
 * probes_priv: what probes.c (specs, fields, modules) and probe_sets.c (the
 * builtin sets) share. Not for use outside the two.
 */
#ifndef KSTEP_PROBES_PRIV_H
#define KSTEP_PROBES_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "probes.h"

#define MAX_ARGS 32

/* What a spec asks for beyond its address. */
struct probe_req {
	const char *event;    /* p:EVENT / r:EVENT, NULL: the function's name */
	bool is_return;       /* %return or r:EVENT: only the return is recorded */
	bool packet;
	char *const *args;    /* fetch arguments at the hit (or, %return, at the return) */
	size_t nargs;
	const char *ret_args; /* a set's return fields, space-separated; NULL: none */
};

/* Split @buf at blanks into at most @max words. */
size_t probes_split_words(char *buf, char **words, size_t max);
/* A probe @spec of @stage at @addr (0: in a module, placed when it loads). */
int probes_add_one(struct probe_set *ps, const char *spec, const char *stage, uint64_t addr, bool entry,
		   struct symtab *syms, const struct probe_req *rq, char *err, size_t errlen);
/* A probe MODULE:NAME[+OFF], placed when the module loads. */
int probes_add_in_module(struct probe_set *ps, const char *spec, const char *stage, const struct probe_req *rq,
			 char *err, size_t errlen);

#endif
