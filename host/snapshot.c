// SPDX-License-Identifier: MIT
/*
 * snapshot: the backtrace and stack words recorded at each stop and step
 * (see snapshot.h).
 */
#include "snapshot.h"
#include "bigmem.h"
#include "hash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frames' names and file:line by address (a return address's or a
 * pc's), kept for the session: a step trace names the same ones over and
 * over (a million steps of the receive path, some 50,000 pcs). */
#define TEXT_SLOTS (1u << 17)

struct frame_text {
	uint64_t addr, offset;    /* offset: the kernel's KASLR offset when named */
	bool ret;                 /* named as a return address */
	char *name, *src;         /* NULL: the slot is empty */
};
#define TEXT_BYTES (TEXT_SLOTS * sizeof(struct frame_text))

struct snapshot_ctx {
	struct symtab *syms;
	struct memcache *mc;
	struct disasm *dis;
	struct cfi *cfi;
	enum snapshot_unwind_mode mode;
	size_t frames;            /* a backtrace records at most */
	struct snapshot_agreement agreement, carried, rows;
	struct frame_text *texts; /* TEXT_SLOTS of them (bigmem.h) */
};

int snapshot_ctx_new(struct snapshot_ctx **out, struct symtab *syms, struct memcache *mc, struct disasm *dis,
		     struct cfi *cfi, enum snapshot_unwind_mode mode, size_t frames)
{
	struct snapshot_ctx *c = calloc(1, sizeof(*c));

	if (!c || !(c->texts = bigmem_alloc(TEXT_BYTES))) {
		free(c);
		return -ENOMEM;
	}
	c->syms = syms;
	c->mc = mc;
	c->dis = dis;
	c->cfi = cfi;
	c->mode = cfi ? mode : SNAPSHOT_UNWIND_FP;
	c->frames = frames && frames < SNAPSHOT_FRAMES ? frames : SNAPSHOT_FRAMES;
	*out = c;
	return 0;
}

void snapshot_ctx_free(struct snapshot_ctx *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < TEXT_SLOTS; i++) {
		free(c->texts[i].name);
		free(c->texts[i].src);
	}
	bigmem_free(c->texts, TEXT_BYTES);
	free(c);
}

void snapshot_ctx_populate(struct snapshot_ctx *c)
{
	bigmem_populate(c->texts, TEXT_BYTES);
}

int snapshot_new(struct snapshot **out, const struct memcache *mc)
{
	struct snapshot *sn = calloc(1, sizeof(*sn));

	if (!sn)
		return -ENOMEM;
	sn->stack = calloc(memcache_window_max(mc) / 8 + 1, sizeof(*sn->stack));
	if (!sn->stack) {
		free(sn);
		return -ENOMEM;
	}
	*out = sn;
	return 0;
}

void snapshot_free(struct snapshot *sn)
{
	if (sn)
		free(sn->stack);
	free(sn);
}

/* The name and file:line of the kernel's frame at @pc (@ret: a return
 * address, named after the call before it); NULL without memory. */
static const struct frame_text *text_of(struct snapshot_ctx *c, uint64_t pc, bool ret)
{
	struct frame_text *t = &c->texts[hash_slot(pc, TEXT_SLOTS)];
	struct sym_srcloc loc[1];
	char name[sizeof(((struct snapshot *)0)->names[0])];

	if (t->name && t->addr == pc && t->ret == ret && t->offset == sym_offset(c->syms))
		return t;
	free(t->name);
	free(t->src);
	*t = (struct frame_text){ .addr = pc, .offset = sym_offset(c->syms), .ret = ret };
	if (ret)
		sym_format_return(c->syms, pc, name, sizeof(name));
	else
		sym_format(c->syms, pc, name, sizeof(name));
	/* A return address points after the call: its line is the call's at
	 * address - 1 (decode_stacktrace.sh and gdb do the same). */
	if (sym_srclocs(c->syms, ret ? pc - 1 : pc, loc, 1) > 0) {
		if (asprintf(&t->src, "%s:%d", loc[0].file, loc[0].line) < 0)
			t->src = NULL;
	} else {
		t->src = strdup("");
	}
	if (t->src && !(t->name = strdup(name))) {
		free(t->src);
		t->src = NULL;
	}
	return t->name ? t : NULL;
}

void snapshot_warm(struct snapshot_ctx *c, uint64_t pc)
{
	if (!c->texts[hash_slot(pc, TEXT_SLOTS)].name)
		text_of(c, pc, false);
}

void snapshot_prefetch(const struct snapshot_ctx *c, uint64_t pc)
{
	__builtin_prefetch(&c->texts[hash_slot(pc, TEXT_SLOTS)]);
}

/* @text into @out (@len bytes), cut to fit. */
static void copy_text(char *out, size_t len, const char *text)
{
	size_t n = strnlen(text, len - 1);

	memcpy(out, text, n);
	out[n] = '\0';
}

enum unwind_entry snapshot_frame_state(struct snapshot_ctx *c, uint64_t pc)
{
	const struct sym *s = sym_lookup_addr(c->syms, pc);
	uint8_t code[32], insn[16];

	if (!s || pc == s->addr)
		return UNWIND_AT_ENTRY;
	/* In the epilogue, after "pop %rbp" or "leave": the ret is next. */
	if (!memcache_code(c->mc, pc, insn, sizeof(insn)) && disasm_is_return(c->dis, insn, sizeof(insn), pc))
		return UNWIND_AT_ENTRY;
	if (memcache_code(c->mc, s->addr, code, sizeof(code)))
		return UNWIND_FRAME_SET;
	return disasm_frame_state(c->dis, code, sizeof(code), s->addr, pc);
}

static int read_mem(void *ctx, uint64_t addr, void *out, size_t len)
{
	struct snapshot_ctx *c = ctx;

	return memcache_read(c->mc, addr, out, len);
}

static int read_code(void *ctx, uint64_t addr, void *out, size_t len)
{
	struct snapshot_ctx *c = ctx;

	return memcache_code(c->mc, addr, out, len);
}

static int is_text(void *ctx, uint64_t addr)
{
	struct snapshot_ctx *c = ctx;

	return sym_in_text(c->syms, addr) || (c->cfi && cfi_module_text(c->cfi, addr));
}

/* What the backtrace records of the walk: its first c->frames. */
static void record_walk(const struct snapshot_ctx *c, struct snapshot *sn)
{
	sn->nbt = sn->nwalked < c->frames ? sn->nwalked : c->frames;
	sn->end = sn->nwalked < c->frames ? sn->walk_end : UNWIND_END_MAX;
}

/* --unwind check: the walk by cached CFI rows against libdwfl's own. */
static void check_rows(struct snapshot_ctx *c, const struct snapshot *sn, const uint64_t dwarf[CFI_NREGS], size_t walk)
{
	uint64_t pcs[SNAPSHOT_WALK];
	enum unwind_end end;
	size_t n = cfi_unwind_libdwfl(c->cfi, dwarf, pcs, walk, read_mem, read_code, is_text, c, &end);

	if (memcache_missed(c->mc))
		return;
	c->rows.compared++;
	if (n == sn->nwalked && end == sn->walk_end && !memcmp(pcs, sn->pcs, n * sizeof(*pcs)))
		c->rows.agreed++;
	else if (!c->rows.first_pc)
		c->rows.first_pc = sn->pcs[0];
}

void snapshot_unwind(struct snapshot_ctx *c, struct snapshot *sn, const struct unwind_regs *regs,
		     const uint64_t dwarf[CFI_NREGS], enum unwind_entry entry, bool beneath)
{
	size_t walk = beneath ? SNAPSHOT_WALK : c->frames;
	uint64_t fp_pcs[SNAPSHOT_FRAMES];
	enum unwind_end fp_end;
	size_t fp_n;

	if (c->mode == SNAPSHOT_UNWIND_FP) {
		sn->nwalked = unwind_fp(regs, entry, sn->pcs, c->frames, read_mem, is_text, c, &sn->walk_end);
		record_walk(c, sn);
		sn->unwinder = "fp";
		return;
	}
	sn->nwalked = cfi_unwind(c->cfi, dwarf, sn->pcs, walk, read_mem, read_code, is_text, c, &sn->walk_end);
	record_walk(c, sn);
	sn->unwinder = "cfi";
	if (c->mode == SNAPSHOT_UNWIND_CHECK) {
		check_rows(c, sn, dwarf, walk);
		fp_n = unwind_fp(regs, entry, fp_pcs, c->frames, read_mem, is_text, c, &fp_end);
		if (memcache_missed(c->mc))
			return; /* a step's cache missed: it is redone once the guest stopped */
		c->agreement.compared++;
		if (fp_n == sn->nbt && !memcmp(fp_pcs, sn->pcs, fp_n * sizeof(*fp_pcs)))
			c->agreement.agreed++;
		else if (!c->agreement.first_pc)
			c->agreement.first_pc = sn->pcs[0];
		return;
	}
	if (c->mode != SNAPSHOT_UNWIND_AUTO || sn->end == UNWIND_END_BOTTOM || sn->end == UNWIND_END_MAX)
		return;
	/* CFI stopped (assembly has none): a frame-pointer chain that agrees
	 * with every frame CFI found and goes further carries it on. */
	fp_n = unwind_fp(regs, entry, fp_pcs, c->frames, read_mem, is_text, c, &fp_end);
	if (fp_n > sn->nbt && !memcmp(fp_pcs, sn->pcs, sn->nbt * sizeof(*fp_pcs))) {
		memcpy(sn->pcs, fp_pcs, fp_n * sizeof(*fp_pcs));
		sn->nwalked = fp_n;
		sn->walk_end = fp_end;
		record_walk(c, sn);
		sn->unwinder = "cfi+fp";
	}
}

/* Name frame @i, with its file:line. */
static void symbolize_frame(struct snapshot_ctx *c, struct snapshot *sn, size_t i)
{
	/* In a module: named from its own debug info, name and line. */
	bool named = c->cfi && cfi_module_text(c->cfi, i ? sn->pcs[i] - 1 : sn->pcs[i]) &&
		     cfi_describe(c->cfi, sn->pcs[i], i > 0, sn->names[i], sizeof(sn->names[i]), sn->srcs[i],
				  sizeof(sn->srcs[i]));
	const struct frame_text *t = named ? NULL : text_of(c, sn->pcs[i], i > 0);

	if (t) {
		copy_text(sn->names[i], sizeof(sn->names[i]), t->name);
		copy_text(sn->srcs[i], sizeof(sn->srcs[i]), t->src);
	} else if (!named) { /* no memory to keep it: named, without its line */
		(i ? sym_format_return : sym_format)(c->syms, sn->pcs[i], sn->names[i], sizeof(sn->names[i]));
		sn->srcs[i][0] = '\0';
	}
	sn->bt[i] = (struct trace_frame){ sn->pcs[i], sn->names[i], sn->srcs[i] };
}

void snapshot_symbolize(struct snapshot_ctx *c, struct snapshot *sn)
{
	for (size_t i = 0; i < sn->nbt; i++)
		symbolize_frame(c, sn, i);
}

void snapshot_move_top(struct snapshot_ctx *c, struct snapshot *sn, uint64_t pc)
{
	sn->pcs[0] = pc;
	symbolize_frame(c, sn, 0);
}

/* The walk's frames @from.. moved to @to.. (the recorded ones' names and
 * lines with them), as many as it holds; a frame beneath the recorded
 * ones that moves up into them is named. */
static void move_frames(struct snapshot_ctx *c, struct snapshot *sn, size_t to, size_t from)
{
	size_t n = sn->nwalked - from, named = sn->nbt - from;

	if (to + n > SNAPSHOT_WALK) {
		n = SNAPSHOT_WALK - to;
		sn->walk_end = UNWIND_END_MAX; /* its deepest frame fell off */
	}
	if (to + named > c->frames)
		named = c->frames - to;
	memmove(&sn->pcs[to], &sn->pcs[from], n * sizeof(sn->pcs[0]));
	memmove(sn->names[to], sn->names[from], named * sizeof(sn->names[0]));
	memmove(sn->srcs[to], sn->srcs[from], named * sizeof(sn->srcs[0]));
	sn->nwalked = to + n;
	record_walk(c, sn);
	for (size_t i = 0; i < sn->nbt; i++)
		if (i < to + named)
			sn->bt[i] = (struct trace_frame){ sn->pcs[i], sn->names[i], sn->srcs[i] };
		else
			symbolize_frame(c, sn, i);
}

bool snapshot_knows_beneath(const struct snapshot *sn)
{
	return sn->nwalked > sn->nbt || sn->end != UNWIND_END_MAX;
}

void snapshot_called(struct snapshot_ctx *c, struct snapshot *sn, uint64_t pc, uint64_t ret)
{
	move_frames(c, sn, 1, 0);
	sn->pcs[0] = pc;
	sn->pcs[1] = ret;
	symbolize_frame(c, sn, 0);
	symbolize_frame(c, sn, 1);
}

void snapshot_returned(struct snapshot_ctx *c, struct snapshot *sn)
{
	move_frames(c, sn, 0, 1);
	symbolize_frame(c, sn, 0);
}

const struct snapshot_agreement *snapshot_agreement(const struct snapshot_ctx *c)
{
	return &c->agreement;
}

void snapshot_check_carried(struct snapshot_ctx *c, const struct snapshot *sn, const uint64_t dwarf[CFI_NREGS])
{
	uint64_t pcs[SNAPSHOT_FRAMES];
	enum unwind_end end;
	size_t n;

	/* Where a frame has no CFI, a walk guesses from rbp (and misses a
	 * leaf function's caller): the steps' frames are not checked there. */
	for (size_t i = 0; i < sn->nbt; i++)
		if (!cfi_covers(c->cfi, i ? sn->pcs[i] - 1 : sn->pcs[i]))
			return;
	n = cfi_unwind(c->cfi, dwarf, pcs, c->frames, read_mem, read_code, is_text, c, &end);
	if (memcache_missed(c->mc))
		return; /* the walk needed memory the step did not bring */
	c->carried.compared++;
	if (n == sn->nbt && end == sn->end && !memcmp(pcs, sn->pcs, n * sizeof(*pcs)))
		c->carried.agreed++;
	else if (!c->carried.first_pc)
		c->carried.first_pc = sn->pcs[0];
}

const struct snapshot_agreement *snapshot_carried_agreement(const struct snapshot_ctx *c)
{
	return &c->carried;
}

const struct snapshot_agreement *snapshot_rows_agreement(const struct snapshot_ctx *c)
{
	return &c->rows;
}

size_t snapshot_stack(struct snapshot_ctx *c, struct snapshot *sn, size_t words)
{
	size_t len;
	const uint8_t *w = memcache_window(c->mc, NULL, &len);

	if (words > len / 8)
		words = len / 8;
	for (size_t i = 0; i < words; i++)
		memcpy(&sn->stack[i], w + 8 * i, 8);
	return words;
}
