// SPDX-License-Identifier: MIT
/*
 * warm: what a step run looks up, worked out ahead of it (see warm.h).
 * Each function in the queue is named with its file:line, which makes
 * libdw read its unit's line table; each of its instructions is decoded
 * and named into the step caches; and its direct calls and jumps to
 * other functions join the queue. After the queue, the remaining units'
 * line tables, one at a time. The code comes from vmlinux, not the
 * guest: a call the kernel patched at boot is followed where vmlinux has
 * it, which is good enough to guess with (and a step that finds other
 * bytes there decodes them afresh).
 */
#include "warm.h"

#include <stdlib.h>

#include "hash.h"
#include "trace.h"

/* Functions warmed at most, and the code of each looked at. */
#define WARM_FUNCTIONS 2048
#define WARM_SLOTS (2 * WARM_FUNCTIONS)
#define WARM_CODE_MAX 4096

struct warm {
	struct symtab *syms;
	struct disasm *dis;
	struct snapshot_ctx *snap;      /* names each instruction; NULL: none */
	struct cfi *cfi;                /* indexed in the first slice; NULL: none, or done */
	uint64_t queue[WARM_FUNCTIONS]; /* function addresses, breadth first */
	size_t n, next;
	uint64_t seen[WARM_SLOTS];      /* the queue's addresses, 0: empty slot */
	void *unit;                     /* the last unit whose lines were read */
	bool units_done;
	uint8_t code[WARM_CODE_MAX];
};

/* @addr's slot in w->seen: where it is, or the empty one it would take. */
static size_t seen_slot(const struct warm *w, uint64_t addr)
{
	size_t i = hash_slot(addr, WARM_SLOTS);

	while (w->seen[i] && w->seen[i] != addr)
		i = (i + 1) % WARM_SLOTS;
	return i;
}

/* Queue the function at @addr, once. */
static void enqueue(struct warm *w, uint64_t addr)
{
	size_t i = seen_slot(w, addr);

	if (!addr || w->n >= WARM_FUNCTIONS || w->seen[i])
		return;
	w->seen[i] = addr;
	w->queue[w->n++] = addr;
}

bool warm_queued(const struct warm *w, uint64_t addr)
{
	return addr && w->seen[seen_slot(w, addr)] == addr;
}

/* Name @s with its line, decode and name each of its instructions, and
 * queue the functions it calls or jumps to. */
static void warm_function(struct warm *w, const struct sym *s)
{
	uint8_t *code = w->code;
	size_t len = s->size < sizeof(w->code) ? s->size : sizeof(w->code), ilen;
	struct sym_srcloc loc;

	sym_srclocs(w->syms, s->addr, &loc, 1);
	if (!len || sym_read_bytes(w->syms, s->addr, code, len))
		return;
	for (size_t off = 0; off < len; off += ilen) {
		enum disasm_branch kind;
		uint64_t target;
		const struct sym *t;

		if (!(ilen = disasm_branch(w->dis, code + off, len - off, s->addr + off, &kind, &target)))
			break;
		disasm_warm(w->dis, code + off, len - off, s->addr + off);
		if (w->snap)
			snapshot_warm(w->snap, s->addr + off);
		if ((kind == DISASM_CALL || kind == DISASM_JUMP) && (t = sym_lookup_addr(w->syms, target)) &&
		    t->func && t->addr != s->addr)
			enqueue(w, t->addr);
	}
}

struct warm *warm_new(struct symtab *syms, struct disasm *dis, struct snapshot_ctx *snap, struct cfi *cfi,
		      uint64_t at)
{
	struct warm *w = calloc(1, sizeof(*w));
	const struct sym *s = sym_lookup_addr(syms, at);

	if (!w)
		return NULL;
	w->syms = syms;
	w->dis = dis;
	w->snap = snap;
	w->cfi = cfi;
	enqueue(w, s ? s->addr : at);
	return w;
}

bool warm_some(struct warm *w, int budget_ms)
{
	uint64_t end = trace_now_ns() + (uint64_t)budget_ms * 1000000;

	if (w->cfi) {
		cfi_warm(w->cfi);
		w->cfi = NULL;
	}
	while (w->next < w->n && trace_now_ns() < end) {
		const struct sym *s = sym_lookup_addr(w->syms, w->queue[w->next++]);

		if (s)
			warm_function(w, s);
	}
	/* Then every unit's lines: the callers a first step names, and
	 * what the run reaches through pointers. */
	while (w->next == w->n && !w->units_done && trace_now_ns() < end)
		w->units_done = !(w->unit = sym_read_unit_lines(w->syms, w->unit));
	return w->next < w->n || !w->units_done;
}

void warm_free(struct warm *w)
{
	free(w);
}
