// SPDX-License-Identifier: MIT
/*
 * diff: two step traces of the same entry point aligned by
 * control flow: the first divergence (the branch both took, where each went,
 * the registers that differed there), where the paths meet again, and the
 * instructions per function in each.
 */
#include "diff.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ctfread.h"
#include "kerr.h"

/* One step, its strings pointing into its trace's mapping (kept open).
 * Not its registers: a class with regs_more has them in a block the reader
 * reuses for every event (regs_at reads one step's again). */
struct step {
	uint64_t pc;
	const char *symbol, *insn, *src;
};

struct side {
	char dir[PATH_MAX];
	struct ctf_reader *rd;
	struct step *v;
	size_t n;
};

static int load(struct side *s, const volatile sig_atomic_t *interrupted, char *err, size_t errlen)
{
	struct ctf_event *ev = malloc(sizeof(*ev));
	size_t cap = 0;
	int ret = ev ? ctf_open(&s->rd, s->dir, err, errlen) : -ENOMEM;

	if (!ret)
		ctf_set_interrupt(s->rd, interrupted);
	while (!ret && (ret = ctf_next(s->rd, ev)) > 0) {
		ret = 0;
		if (strcmp(ev->name, "kstep:step"))
			continue;
		if (s->n == cap) {
			struct step *tmp = realloc(s->v, (cap = cap ? 2 * cap : 1024) * sizeof(*tmp));

			if (!tmp) {
				ret = -ENOMEM;
				break;
			}
			s->v = tmp;
		}
		s->v[s->n++] = (struct step){ ev->pc, ev->symbol, ev->insn, ev->nbt ? ev->bt[0].src : "" };
	}
	if (ret < 0 && s->rd)
		snprintf(err, errlen, "%s: %s", s->dir, ret == -ENOMEM ? "out of memory" : ctf_error(s->rd));
	free(ev);
	if (!ret && !s->n) {
		snprintf(err, errlen, "%s has no steps: diff compares two step traces (kstep step)", s->dir);
		ret = -EINVAL;
	}
	return ret;
}

/* Step @i of @s read again, into @ev, its registers copied to *@regs (the
 * caller frees it): the reader's pointers last only to its next event. */
static int regs_at(const struct side *s, size_t i, struct ctf_event *ev, uint8_t **regs)
{
	struct ctf_reader *rd;
	char err[256];
	size_t n = 0;
	int ret = ctf_open(&rd, s->dir, err, sizeof(err));

	*regs = NULL;
	while (!ret && (ret = ctf_next(rd, ev)) > 0) {
		ret = 0;
		if (strcmp(ev->name, "kstep:step") || n++ < i)
			continue;
		if (!ev->regs || !(*regs = malloc(ev->regs_len)))
			ret = -ENOMEM;
		else
			memcpy(*regs, ev->regs, ev->regs_len);
		ev->regs = *regs;
		break;
	}
	ctf_close(rd);
	return ret ? ret : *regs ? 0 : -ENOENT;
}

/* Does the instruction text name register @reg ("%rax"; eflags for a
 * conditional jump, set..., cmov...)? */
static bool names_reg(const char *insn, const char *reg)
{
	char pat[40];

	if (!strcmp(reg, "eflags"))
		return insn[0] == 'j' ? strncmp(insn, "jmp", 3) != 0 : !strncmp(insn, "set", 3) || !strncmp(insn, "cmov", 4);
	snprintf(pat, sizeof(pat), "%%%s", reg);
	return strstr(insn, pat) != NULL;
}

/* Where @ea and @eb (step @i of each run) differ in a register that
 * instruction or @before reads: printed; the others counted. */
static void print_regs_read(const struct side *a, const struct side *b, const struct ctf_event *ea,
			    const struct ctf_event *eb, size_t i, const char *before, FILE *out)
{
	const char *name;
	int shown = 0, others = 0;

	for (size_t k = 0; (name = ctf_reg_name(a->rd, ea->id, k)); k++) {
		uint64_t x, y;

		if (!*name || !strcmp(name, "rip") || ctf_reg(a->rd, ea, name, &x) || ctf_reg(b->rd, eb, name, &y) ||
		    x == y)
			continue;
		if (!names_reg(a->v[i].insn, name) && !names_reg(before, name)) {
			others++;
			continue;
		}
		fprintf(out, "%s %s A=0x%" PRIx64 " B=0x%" PRIx64, shown++ ? "," : "", name, x, y);
	}
	fprintf(out, "%s (%d other registers differ)\n", shown ? "" : " no register it reads differs (memory did)",
		others);
}

/* What decided the branch at step @i: the registers it and the instruction
 * before it (the compare, as a rule) read, where the two runs differ. */
static void print_deciding(const struct side *a, const struct side *b, size_t i, FILE *out)
{
	struct ctf_event *ea = malloc(sizeof(*ea)), *eb = malloc(sizeof(*eb));
	const char *before = i ? a->v[i - 1].insn : "";
	uint8_t *ra = NULL, *rb = NULL;

	if (i)
		fprintf(out, "  after  %016" PRIx64 " %s  %s\n", a->v[i - 1].pc, a->v[i - 1].symbol, before);
	fprintf(out, "  values that decided it:");
	if (ea && eb && !regs_at(a, i, ea, &ra) && !regs_at(b, i, eb, &rb))
		print_regs_read(a, b, ea, eb, i, before, out);
	else
		fprintf(out, " unknown (the registers of step %zu could not be read again)\n", i + 1);
	free(ra);
	free(rb);
	free(ea);
	free(eb);
}

/* The first place both paths reach again after @d: the least steps taken
 * on both sides together. B's addresses from @d on are hashed to the first
 * step at each, so A is walked once. */
static bool rejoin(const struct side *a, const struct side *b, size_t d, size_t *ia, size_t *ib)
{
	size_t slots = 1, best = SIZE_MAX;
	struct { uint64_t pc; size_t at; } *h;

	while (slots < 2 * (b->n - d) + 2)
		slots <<= 1;
	if (!(h = calloc(slots, sizeof(*h))))
		return false;
	for (size_t j = d; j < b->n; j++) {
		size_t k = (size_t)(b->v[j].pc * 0x9E3779B97F4A7C15ull >> 20) & (slots - 1);

		while (h[k].pc && h[k].pc != b->v[j].pc)
			k = (k + 1) & (slots - 1);
		if (!h[k].pc)
			h[k] = (typeof(*h)){ b->v[j].pc, j };
	}
	for (size_t i = d; i < a->n && i - d < best; i++) {
		size_t k = (size_t)(a->v[i].pc * 0x9E3779B97F4A7C15ull >> 20) & (slots - 1);

		while (h[k].pc && h[k].pc != a->v[i].pc)
			k = (k + 1) & (slots - 1);
		if (h[k].pc && (i - d) + (h[k].at - d) < best) {
			best = (i - d) + (h[k].at - d);
			*ia = i;
			*ib = h[k].at;
		}
	}
	free(h);
	return best != SIZE_MAX;
}

struct fn_count {
	char name[128];
	int64_t a, b;
};

static void count_function(struct fn_count **v, size_t *n, const char *symbol, bool side_b)
{
	char name[128];
	size_t i;

	snprintf(name, sizeof(name), "%.*s", (int)strcspn(symbol, "+"), symbol);
	for (i = 0; i < *n && strcmp((*v)[i].name, name); i++)
		;
	if (i == *n) {
		struct fn_count *tmp = realloc(*v, (*n + 1) * sizeof(*tmp));

		if (!tmp)
			return;
		*v = tmp;
		memset(&tmp[i], 0, sizeof(tmp[i]));
		snprintf(tmp[i].name, sizeof(tmp[i].name), "%s", name);
		(*n)++;
	}
	*(side_b ? &(*v)[i].b : &(*v)[i].a) += 1;
}

static int by_delta(const void *x, const void *y)
{
	const struct fn_count *p = x, *q = y;
	int64_t dp = llabs(p->b - p->a), dq = llabs(q->b - q->a);

	return (dp < dq) - (dp > dq);
}

static void print_functions(const struct side *a, const struct side *b, FILE *out)
{
	struct fn_count *v = NULL;
	size_t n = 0, shown = 0;

	for (size_t i = 0; i < a->n; i++)
		count_function(&v, &n, a->v[i].symbol, false);
	for (size_t i = 0; i < b->n; i++)
		count_function(&v, &n, b->v[i].symbol, true);
	qsort(v, n, sizeof(*v), by_delta);
	fprintf(out, "\ninstructions per function (A, B, B-A), where they differ:\n");
	for (size_t i = 0; i < n; i++)
		if (v[i].a != v[i].b) {
			fprintf(out, "  %8" PRId64 " %8" PRId64 " %+8" PRId64 "  %s\n", v[i].a, v[i].b, v[i].b - v[i].a,
				v[i].name);
			shown++;
		}
	if (!shown)
		fprintf(out, "  none\n");
	free(v);
}

static void compare(const struct side *a, const struct side *b, FILE *out)
{
	size_t d = 0, n = a->n < b->n ? a->n : b->n, ia, ib;

	while (d < n && a->v[d].pc == b->v[d].pc)
		d++;
	fprintf(out, "A: %s, %zu instructions\nB: %s, %zu instructions\n", a->dir, a->n, b->dir, b->n);
	if (d == 0) {
		fprintf(out, "no common start: A begins at %s, B at %s (step the same --at)\n", a->v[0].symbol,
			b->v[0].symbol);
	} else if (d == n) {
		if (a->n == b->n)
			fprintf(out, "no divergence: the same %zu instructions\n", n);
		else
			fprintf(out, "the same %zu instructions, then %s goes on alone (%zu more)\n", n,
				a->n > b->n ? "A" : "B", (a->n > b->n ? a->n : b->n) - n);
	} else {
		const struct step *br = &a->v[d - 1];

		fprintf(out, "first divergence after %zu common instructions, at the instruction\n"
			     "  %016" PRIx64 " %s  %s  (%s)\n",
			d, br->pc, br->symbol, br->insn, br->src[0] ? br->src : "no line");
		print_deciding(a, b, d - 1, out);
		fprintf(out, "  A went on to %016" PRIx64 " %s  (%s)\n  B went on to %016" PRIx64 " %s  (%s)\n",
			a->v[d].pc, a->v[d].symbol, a->v[d].src, b->v[d].pc, b->v[d].symbol, b->v[d].src);
		if (rejoin(a, b, d, &ia, &ib))
			fprintf(out, "paths meet again at %016" PRIx64 " %s: step %zu of A, %zu of B\n", a->v[ia].pc,
				a->v[ia].symbol, ia + 1, ib + 1);
		else
			fprintf(out, "the paths do not meet again in these traces\n");
	}
	print_functions(a, b, out);
}

struct diff {
	struct side a, b;
};

int diff_load(struct diff **out, const char *a, const char *b, const volatile sig_atomic_t *interrupted, char *err,
	      size_t errlen)
{
	struct diff *d = calloc(1, sizeof(*d));
	int ret;

	*out = d;
	if (!d)
		return kerr_set(err, errlen, -ENOMEM, "out of memory");
	snprintf(d->a.dir, sizeof(d->a.dir), "%s", a);
	snprintf(d->b.dir, sizeof(d->b.dir), "%s", b);
	ret = load(&d->a, interrupted, err, errlen);
	if (!ret)
		ret = load(&d->b, interrupted, err, errlen);
	return ret;
}

void diff_print(const struct diff *d, FILE *out)
{
	compare(&d->a, &d->b, out);
}

void diff_free(struct diff *d)
{
	if (!d)
		return;
	ctf_close(d->a.rd);
	ctf_close(d->b.rd);
	free(d->a.v);
	free(d->b.v);
	free(d);
}
