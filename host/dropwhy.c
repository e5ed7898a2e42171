// SPDX-License-Identifier: MIT
/*
 * dropwhy: the branch that decided a drop (see dropwhy.h). The function's
 * code is decoded from vmlinux into a small control-flow graph; "can
 * still return without a drop" is propagated backwards over it from the
 * returns and the jumps out, never through a call to kfree_skb*.
 */
#include "dropwhy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctfread.h"
#include "files.h"

/* The longest function decoded: receive functions are a few KiB. */
#define MAX_FUNCTION_BYTES 65536

/* Functions whose call frees a packet as dropped. */
static const char *const drop_functions[] = {
	"kfree_skb_reason", "kfree_skb", "kfree_skb_list_reason", "kfree_skb_list", "sk_skb_reason_drop",
};

struct insn {
	uint64_t addr, target;
	unsigned int len;
	enum disasm_branch kind;
	bool drops;       /* a call (or tail jump) to a drop function */
	bool leaves;      /* returns, or jumps out of the function, without a drop */
	bool clean;       /* from here the function can return without a drop */
};

struct flow {
	struct insn *v;
	size_t n;
	uint64_t start, end;
};

/* One step of the dropping function, as the trace has it. */
struct step {
	uint64_t pc, guest_ns;
	uint64_t regs[16];
	bool have_regs;
};

static const char *const gprs[16] = { "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
				       "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15" };

static int gpr_index(const char *name)
{
	for (int i = 0; i < 16; i++)
		if (!strcmp(gprs[i], name))
			return i;
	return -1;
}

static bool is_drop_function(struct symtab *syms, uint64_t addr)
{
	const struct sym *s = addr ? sym_lookup_addr(syms, addr) : NULL;

	for (size_t i = 0; s && s->addr == addr && i < sizeof(drop_functions) / sizeof(drop_functions[0]); i++)
		if (!strcmp(s->name, drop_functions[i]))
			return true;
	return false;
}

static ssize_t find_insn(const struct flow *f, uint64_t addr)
{
	size_t lo = 0, hi = f->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (f->v[mid].addr == addr)
			return (ssize_t)mid;
		if (f->v[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Decode the function [start, end) linearly. */
static int decode_function(struct flow *f, struct symtab *syms, struct disasm *dis)
{
	size_t size = (size_t)(f->end - f->start);
	uint8_t *code = malloc(size + 16);

	if (!code || !(f->v = calloc(size, sizeof(*f->v)))) {
		free(code);
		return -ENOMEM;
	}
	memset(code, 0, size + 16);
	if (sym_read_bytes(syms, f->start, code, size)) {
		free(code);
		return -EIO;
	}
	for (uint64_t at = 0; at < size;) {
		struct insn *i = &f->v[f->n];
		size_t len = disasm_branch(dis, code + at, size + 16 - at, f->start + at, &i->kind, &i->target);

		if (!len)
			break; /* padding or data after the code */
		i->addr = f->start + at;
		i->len = (unsigned int)len;
		i->drops = (i->kind == DISASM_CALL || i->kind == DISASM_JUMP) && is_drop_function(syms, i->target);
		i->leaves = !i->drops && (i->kind == DISASM_RETURN ||
					  (i->kind == DISASM_JUMP && (i->target < f->start || i->target >= f->end)));
		f->n++;
		at += len;
	}
	free(code);
	return f->n ? 0 : -EINVAL;
}

/* Can @i's successor at @addr return without a drop? */
static bool clean_at(const struct flow *f, uint64_t addr)
{
	ssize_t k = find_insn(f, addr);

	/* A branch out of the function: a tail call, which returns for us. */
	return k < 0 ? addr < f->start || addr >= f->end : f->v[k].clean;
}

/* Propagate "can return without a drop" backwards to a fixed point. */
static void mark_clean(struct flow *f)
{
	for (bool changed = true; changed;) {
		changed = false;
		for (size_t k = f->n; k-- > 0;) {
			struct insn *i = &f->v[k];
			bool next = k + 1 < f->n && clean_at(f, i->addr + i->len), clean;

			if (i->drops || i->kind == DISASM_STOP)
				clean = false;
			else if (i->leaves)
				clean = true;
			else if (i->kind == DISASM_JUMP)
				clean = i->target ? clean_at(f, i->target) : true; /* indirect: may go anywhere */
			else if (i->kind == DISASM_COND)
				clean = next || clean_at(f, i->target);
			else
				clean = next;
			if (clean && !i->clean)
				changed = i->clean = true;
		}
	}
}

/* The drop stop and the steps in the function around the drop's return
 * address @ret (read from the stop's stack). */
struct read_state {
	struct step *steps;
	size_t n, cap;
	uint64_t bt[16];        /* the drop stop's backtrace: the drop function, its callers */
	size_t nbt;
	char reason[96];
	bool have_drop;
};

static int keep_step(struct read_state *st, const struct ctf_reader *r, const struct ctf_event *ev)
{
	struct step *s;

	if (st->n == st->cap) {
		size_t cap = st->cap ? 2 * st->cap : 4096;
		struct step *v = realloc(st->steps, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		st->steps = v;
		st->cap = cap;
	}
	s = &st->steps[st->n++];
	*s = (struct step){ .pc = ev->pc, .guest_ns = ev->guest_ns, .have_regs = true };
	for (int i = 0; i < 16; i++)
		if (ctf_reg(r, ev, gprs[i], &s->regs[i]))
			s->have_regs = false;
	return 0;
}

static int read_trace(const char *dir, struct read_state *st, char *err, size_t errlen)
{
	struct ctf_reader *r;
	struct ctf_event ev;
	int ret;

	if ((ret = ctf_open(&r, dir, err, errlen)))
		return ret;
	while ((ret = ctf_next(r, &ev)) > 0) {
		if (!strcmp(ev.probe, "drop")) { /* the last drop, and the steps after it */
			const struct ctf_field *reason = ctf_field(&ev, "reason");

			st->have_drop = true;
			st->n = 0;
			for (st->nbt = 0; st->nbt < ev.nbt && st->nbt < 16; st->nbt++)
				st->bt[st->nbt] = ev.bt[st->nbt].addr;
			snprintf(st->reason, sizeof(st->reason), "%s", reason && reason->is_text ? reason->s : "");
		} else if (!strcmp(ev.name, "kstep:step") && (ret = keep_step(st, r, &ev))) {
			break;
		}
	}
	if (ret < 0 && ret != -ENOMEM)
		snprintf(err, errlen, "%s: %s", dir, ctf_error(r));
	else if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory reading %s", dir);
	ctf_close(r);
	return ret < 0 ? ret : 0;
}

/* The instruction at @pc, disassembled into @text and named into @where. */
static void describe(struct symtab *syms, struct disasm *dis, uint64_t pc, char *text, size_t tl, char *where,
		     size_t wl)
{
	uint8_t code[16] = { 0 };

	text[0] = '\0';
	if (!sym_read_bytes(syms, pc, code, sizeof(code)))
		disasm_one(dis, code, sizeof(code), pc, text, tl);
	if (where)
		sym_format(syms, pc, where, wl);
}

/* The steps at instructions of the function (the calls it made were each
 * one step at the callee's entry; interrupts are elsewhere too). */
static bool in_function(const struct flow *f, const struct step *s)
{
	return s->pc >= f->start && s->pc < f->end;
}

/* The deciding branch: the last step in the function after which it could
 * no longer return without a drop, its other way could. Its index, -1. */
static ssize_t deciding_branch(const struct flow *f, const struct step *s, size_t n, bool *taken)
{
	ssize_t found = -1;

	for (size_t k = 0; k < n; k++) {
		ssize_t i = in_function(f, &s[k]) ? find_insn(f, s[k].pc) : -1;
		size_t next = k + 1;

		if (i < 0 || f->v[i].kind != DISASM_COND)
			continue;
		while (next < n && !in_function(f, &s[next]))
			next++;
		if (next == n || find_insn(f, s[next].pc) < 0)
			continue;
		bool went = s[next].pc == f->v[i].target;
		uint64_t other = went ? f->v[i].addr + f->v[i].len : f->v[i].target;

		if (f->v[i].clean && !clean_at(f, s[next].pc) && clean_at(f, other)) {
			found = (ssize_t)k;
			*taken = went;
		}
	}
	return found;
}

/* Where register @o->reg, compared at step @at, came from: the last
 * function step before it that set it (a call: its return value). */
static void trace_origin(const struct flow *f, const struct step *s, size_t at, struct symtab *syms,
			 struct disasm *dis, unsigned int shift, struct drop_origin *o)
{
	int idx = gpr_index(o->reg);

	o->kind = ORIGIN_ARGUMENT;
	if (idx >= 0 && s[at].have_regs)
		o->value = s[at].regs[idx];
	for (size_t k = at; k-- > 0;) {
		uint8_t code[16] = { 0 };
		ssize_t i = in_function(f, &s[k]) ? find_insn(f, s[k].pc) : -1;
		struct disasm_mem m;

		if (i < 0 || sym_read_bytes(syms, s[k].pc, code, sizeof(code)))
			continue;
		bool call_sets = f->v[i].kind == DISASM_CALL && !strcmp(o->reg, "rax");

		if (!call_sets && !disasm_writes_reg(dis, code, sizeof(code), s[k].pc, o->reg))
			continue;
		o->pc = s[k].pc;
		o->icount = s[k].guest_ns >> shift;
		describe(syms, dis, s[k].pc, o->insn, sizeof(o->insn), o->where, sizeof(o->where));
		o->kind = call_sets ? ORIGIN_CALL : ORIGIN_OTHER;
		if (call_sets && f->v[i].target && sym_lookup_addr(syms, f->v[i].target))
			snprintf(o->callee, sizeof(o->callee), "%s", sym_lookup_addr(syms, f->v[i].target)->name);
		if (!call_sets && disasm_mem_operand(dis, code, sizeof(code), s[k].pc, &m) && s[k].have_regs &&
		    !strstr(o->insn, "lea")) {
			int b = gpr_index(m.base), x = gpr_index(m.index);

			o->kind = ORIGIN_LOAD;
			o->load_addr = (b >= 0 ? s[k].regs[b] : strcmp(m.base, "rip") ? 0 : s[k].pc + f->v[i].len) +
				       (x >= 0 ? s[k].regs[x] * (uint64_t)m.scale : 0) + (uint64_t)m.disp;
			o->load_len = 8;
		}
		return;
	}
}

/* The flags the branch at step @k tested: the nearest function step
 * before it that set them, its registers and where they came from. */
static void explain_compare(const struct flow *f, const struct step *s, size_t k, struct symtab *syms,
			    struct disasm *dis, unsigned int shift, struct drop_answer *a)
{
	for (size_t j = k; j-- > 0;) {
		char regs[DROPWHY_OPERANDS][8];
		uint8_t code[16] = { 0 };
		size_t n;

		if (!in_function(f, &s[j]) || sym_read_bytes(syms, s[j].pc, code, sizeof(code)) ||
		    !disasm_sets_flags(dis, code, sizeof(code), s[j].pc, regs, DROPWHY_OPERANDS, &n))
			continue;
		a->cmp_pc = s[j].pc;
		describe(syms, dis, s[j].pc, a->cmp_insn, sizeof(a->cmp_insn), NULL, 0);
		for (size_t r = 0; r < n; r++) {
			struct drop_origin *o = &a->operands[a->noperands];

			if (r && !strcmp(regs[r], regs[r - 1]))
				continue; /* test %rax, %rax */
			snprintf(o->reg, sizeof(o->reg), "%.7s", regs[r]);
			trace_origin(f, s, j, syms, dis, shift, o);
			a->noperands++;
		}
		return;
	}
}

static void branch_source(struct symtab *syms, struct drop_answer *a)
{
	struct sym_srcloc loc[8];
	int n = sym_srclocs(syms, a->branch_pc, loc, 8);
	size_t off = 0;

	for (int i = 0; i < n && off < sizeof(a->branch_src); i++)
		off += (size_t)snprintf(a->branch_src + off, sizeof(a->branch_src) - off, "%s%s:%d (%s)", i ? ", in " : "",
					loc[i].file, loc[i].line, loc[i].function);
	if (n > 0) {
		snprintf(a->branch_file, sizeof(a->branch_file), "%s", loc[0].file);
		a->branch_line = loc[0].line;
	}
}

static int analyse(struct flow *f, const struct read_state *st, struct symtab *syms, struct disasm *dis,
		   unsigned int shift, struct drop_answer *a, char *err, size_t errlen)
{
	ssize_t k;

	mark_clean(f);
	if (!f->v[0].clean) {
		snprintf(err, errlen, "%s drops on every path: the decision was made in its caller", a->dropper);
		return -ENOENT;
	}
	if ((k = deciding_branch(f, st->steps, st->n, &a->taken)) < 0) {
		snprintf(err, errlen, "no conditional branch among the %zu steps of %s sent it to the drop (the steps "
				      "may have started after it)", st->n, a->dropper);
		return -ENOENT;
	}
	a->branch_pc = st->steps[k].pc;
	describe(syms, dis, a->branch_pc, a->branch_insn, sizeof(a->branch_insn), a->branch_where,
		 sizeof(a->branch_where));
	branch_source(syms, a);
	explain_compare(f, st->steps, (size_t)k, syms, dis, shift, a);
	return 0;
}

/* The frame that dropped: the first caller in the backtrace that is not
 * itself a drop function (kfree_skb calls kfree_skb_reason). Its return
 * address, 0 if none. */
static uint64_t dropping_frame(const struct read_state *st, struct symtab *syms)
{
	for (size_t i = 1; i < st->nbt; i++) {
		const struct sym *s = sym_lookup_addr(syms, st->bt[i]);

		if (s && !is_drop_function(syms, s->addr))
			return st->bt[i];
	}
	return 0;
}

int dropwhy_frame(const char *dir, struct symtab *syms, uint64_t *ret_addr, char *err, size_t errlen)
{
	struct read_state st = { 0 };
	int ret = read_trace(dir, &st, err, errlen);

	free(st.steps);
	if (ret)
		return ret;
	*ret_addr = dropping_frame(&st, syms);
	if (!st.have_drop || !*ret_addr) {
		snprintf(err, errlen, "%s has no drop stop with a backtrace into the function that dropped", dir);
		return -ENOENT;
	}
	return 0;
}

int dropwhy_explain(const char *dir, struct symtab *syms, struct disasm *dis, unsigned int icount_shift,
		    struct drop_answer *a, char *err, size_t errlen)
{
	struct read_state st = { 0 };
	struct flow f = { 0 };
	const struct sym *fn;
	uint64_t at;
	int ret;

	memset(a, 0, sizeof(*a));
	if ((ret = read_trace(dir, &st, err, errlen)))
		goto out;
	ret = -ENOENT;
	if (!st.have_drop || !(at = dropping_frame(&st, syms)) || !(fn = sym_lookup_addr(syms, at))) {
		snprintf(err, errlen, "%s has no drop stop with a backtrace into the function that dropped", dir);
		goto out;
	}
	snprintf(a->reason, sizeof(a->reason), "%s", st.reason);
	sym_format(syms, at, a->dropper, sizeof(a->dropper));
	f.start = fn->addr;
	f.end = fn->addr + (sym_span(syms, fn) && sym_span(syms, fn) < MAX_FUNCTION_BYTES ? sym_span(syms, fn)
											       : fn->size);
	/* Every invocation was stepped: the last one dropped. */
	for (size_t k = st.n; k-- > 0;)
		if (st.steps[k].pc == f.start) {
			memmove(st.steps, st.steps + k, (st.n - k) * sizeof(*st.steps));
			st.n -= k;
			break;
		}
	for (size_t k = 0; k < st.n; k++)
		a->steps += in_function(&f, &st.steps[k]);
	if (!a->steps) {
		snprintf(err, errlen, "%s has no steps of %s", dir, fn->name);
		goto out;
	}
	if (f.end <= f.start || f.end - f.start > MAX_FUNCTION_BYTES || (ret = decode_function(&f, syms, dis))) {
		snprintf(err, errlen, "cannot decode %s from the vmlinux", fn->name);
		ret = ret ? ret : -EINVAL;
		goto out;
	}
	ret = analyse(&f, &st, syms, dis, icount_shift, a, err, errlen);
out:
	free(f.v);
	free(st.steps);
	return ret;
}

static void print_origin(const struct drop_origin *o, FILE *out)
{
	fprintf(out, "    %%%s = 0x%" PRIx64, o->reg, o->value);
	/* A negative errno in an int or a long reads better as one. */
	if (o->value >> 31 == 1)
		fprintf(out, " (%d as an int)", (int)(uint32_t)o->value);
	else if (o->value >> 63)
		fprintf(out, " (%" PRId64 ")", (int64_t)o->value);
	fprintf(out, ": ");
	switch (o->kind) {
	case ORIGIN_CALL:
		fprintf(out, "returned by %s, called at %s (%s)\n", o->callee[0] ? o->callee : "an indirect call",
			o->where, o->insn);
		break;
	case ORIGIN_LOAD:
		fprintf(out, "loaded from 0x%" PRIx64 " at %s (%s)\n", o->load_addr, o->where, o->insn);
		break;
	case ORIGIN_OTHER:
		fprintf(out, "set at %s (%s)\n", o->where, o->insn);
		break;
	default:
		fprintf(out, "set before the function was entered (an argument, or a register kept)\n");
	}
}

void dropwhy_print(const struct drop_answer *a, const char *srcdir, FILE *out)
{
	char text[512];

	fprintf(out, "drop: %s, by the call at %s\n", a->reason[0] ? a->reason : "(no reason recorded)", a->dropper);
	fprintf(out, "deciding branch: %s  %s  (%s: the way to the drop)\n", a->branch_where, a->branch_insn,
		a->taken ? "taken" : "not taken");
	fprintf(out, "  at %s\n", a->branch_src[0] ? a->branch_src : "(no line information)");
	files_source_line(srcdir, a->branch_file, a->branch_line, text, sizeof(text));
	if (text[0])
		fprintf(out, "  %6d | %s\n", a->branch_line, text);
	if (!a->cmp_pc) {
		fprintf(out, "  the flags it tested were set before the steps began\n");
		return;
	}
	fprintf(out, "  it tested the flags of: %s\n", a->cmp_insn);
	for (size_t i = 0; i < a->noperands; i++)
		print_origin(&a->operands[i], out);
}
