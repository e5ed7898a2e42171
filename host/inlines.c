// SPDX-License-Identifier: MIT
/*
 * inlines: the functions GCC inlined at an address of a trace, from the
 * vmlinux's DWARF, so that the call tree counts a step in an inlined
 * function there and not in the function it was inlined into. Lookups walk
 * DWARF scopes, which is slow; a step trace visits the same few thousand
 * addresses over and over, so each answer is kept, and each name is made
 * once and kept for the session (a call tree holds on to them).
 */
#include "inlines.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "symbols.h"
#include "kerr.h"

#define CACHE_SLOTS 65536
#define NAME_SLOTS 16384
/* Deeper inline chains are cut at their outermost INLINES_MAX. */
#define CHAIN_MAX (INLINES_MAX + 1)

struct chain {
	uint64_t addr;           /* 0: empty */
	size_t n;
	const char *names[INLINES_MAX];
};

struct inlines {
	struct symtab *syms;
	bool placed;             /* the trace's KASLR offset found */
	struct chain *cache;
	struct chain spare;      /* the answer when the cache is full */
	char *names[NAME_SLOTS]; /* "NAME (inlined)", each once */
};

int inlines_open(struct inlines **out, const char *vmlinux, char *err, size_t errlen)
{
	struct inlines *in = calloc(1, sizeof(*in));
	int ret;

	if (!in || !(in->cache = calloc(CACHE_SLOTS, sizeof(*in->cache)))) {
		free(in);
		return kerr_set(err, errlen, -ENOMEM, "out of memory");
	}
	if ((ret = sym_open(&in->syms, vmlinux, err, errlen))) {
		inlines_close(in);
		return ret;
	}
	*out = in;
	return 0;
}

void inlines_close(struct inlines *in)
{
	if (!in)
		return;
	for (size_t i = 0; i < NAME_SLOTS; i++)
		free(in->names[i]);
	free(in->cache);
	sym_close(in->syms);
	free(in);
}

bool inlines_place(struct inlines *in, uint64_t pc, const char *symbol)
{
	uint64_t link;

	if (in->placed)
		return true;
	if (!symbol || !*symbol || sym_resolve(in->syms, symbol, &link))
		return false;
	sym_relocate(in->syms, pc - link);
	in->placed = true;
	return true;
}

/* "@function (inlined)", made once; NULL when the table is full. */
static const char *inlined_name(struct inlines *in, const char *function)
{
	char text[160];
	uint64_t h = 14695981039346656037ull;

	snprintf(text, sizeof(text), "%s (inlined)", function);
	for (const char *p = text; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	for (size_t i = h % NAME_SLOTS, k = 0; k < NAME_SLOTS; i = (i + 1) % NAME_SLOTS, k++) {
		if (!in->names[i])
			return in->names[i] = strdup(text);
		if (!strcmp(in->names[i], text))
			return in->names[i];
	}
	return NULL;
}

/* Look @addr up in the DWARF: its inline chain, outermost first. */
static void lookup(struct inlines *in, uint64_t addr, struct chain *c)
{
	struct sym_srcloc loc[CHAIN_MAX];
	int n = sym_srclocs(in->syms, addr, loc, CHAIN_MAX);

	c->addr = addr;
	c->n = 0;
	/* loc[] is innermost first and ends with the function that holds them. */
	for (int i = n - 2; i >= 0 && c->n < INLINES_MAX; i--)
		if ((c->names[c->n] = inlined_name(in, loc[i].function)))
			c->n++;
}

size_t inlines_at(struct inlines *in, uint64_t addr, const char *const **names)
{
	size_t slot = hash_slot(addr, CACHE_SLOTS);
	struct chain *c = NULL;

	if (!in->placed)
		return 0;
	/* Open addressing, nothing evicted: two addresses of one slot would
	 * otherwise look each other up again at every step of a loop. */
	for (size_t k = 0; k < CACHE_SLOTS && !c; k++, slot = (slot + 1) % CACHE_SLOTS)
		if (!in->cache[slot].addr || in->cache[slot].addr == addr)
			c = &in->cache[slot];
	if (!c) {
		c = &in->spare; /* full: looked up each time */
		c->addr = 0;
	}
	if (c->addr != addr)
		lookup(in, addr, c);
	*names = c->names;
	return c->n;
}
