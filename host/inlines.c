// SPDX-License-Identifier: MIT
/*
 * inlines: the functions GCC inlined at an address of a trace, from the
 * vmlinux's DWARF, so that the call tree counts a step in an inlined
 * function there and not in the function it was inlined into. Lookups walk
 * DWARF scopes, which is slow; a step trace visits the same few thousand
 * addresses over and over, so each answer is kept.
 */
#include "inlines.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symbols.h"

#define CACHE_SLOTS 65536
/* Deeper inline chains are cut at their outermost INLINES_MAX. */
#define CHAIN_MAX (INLINES_MAX + 1)

struct chain {
	uint64_t addr;           /* 0: empty */
	size_t n;
	char *names[INLINES_MAX];
};

struct inlines {
	struct symtab *syms;
	bool placed;             /* the trace's KASLR offset found */
	struct chain *cache;
};

int inlines_open(struct inlines **out, const char *vmlinux, char *err, size_t errlen)
{
	struct inlines *in = calloc(1, sizeof(*in));
	int ret;

	if (!in || !(in->cache = calloc(CACHE_SLOTS, sizeof(*in->cache)))) {
		free(in);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
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
	for (size_t i = 0; in->cache && i < CACHE_SLOTS; i++)
		for (size_t k = 0; k < in->cache[i].n; k++)
			free(in->cache[i].names[k]);
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

/* Look @addr up in the DWARF: its inline chain, outermost first. */
static void lookup(struct inlines *in, uint64_t addr, struct chain *c)
{
	struct sym_srcloc loc[CHAIN_MAX];
	int n = sym_srclocs(in->syms, addr, loc, CHAIN_MAX);

	c->addr = addr;
	c->n = 0;
	/* loc[] is innermost first and ends with the function that holds them. */
	for (int i = n - 2; i >= 0 && c->n < INLINES_MAX; i--)
		if ((c->names[c->n] = strdup(loc[i].function)))
			c->n++;
}

size_t inlines_at(struct inlines *in, uint64_t addr, const char *const **names)
{
	size_t slot = (size_t)((addr * 0x9E3779B97F4A7C15ull) >> 40) % CACHE_SLOTS;
	struct chain *c = &in->cache[slot];

	if (!in->placed)
		return 0;
	if (c->addr != addr) {
		for (size_t k = 0; k < c->n; k++)
			free(c->names[k]);
		lookup(in, addr, c);
	}
	*names = (const char *const *)c->names;
	return c->n;
}
