// SPDX-License-Identifier: MIT
/*
 * dwloc: variables in scope and their locations at an address (dwloc.h).
 * Scopes come from symbols' concrete scope chain (blocks and inline
 * instances inside the function); a location list is read with
 * dwarf_getlocation_addr at the address, and its ranges with
 * dwarf_getlocations for the nearest ones.
 */
#include "dwloc.h"
#include "kerr.h"

#include <dwarf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- where at one address ------------------------------------------------- */

/* The ranges of @attr's location list closest to DWARF address @pc, as
 * "fn+0xa-0xb" text, running addresses @delta above the DWARF's. */
static void nearest_ranges(struct symtab *s, Dwarf_Attribute *attr, Dwarf_Addr pc, uint64_t delta, char *out,
			   size_t len)
{
	Dwarf_Addr base, start, end, best[2][2] = { { 0 } };
	uint64_t dist[2] = { UINT64_MAX, UINT64_MAX };
	Dwarf_Op *expr;
	size_t n;
	ptrdiff_t off = 0;

	out[0] = '\0';
	while ((off = dwarf_getlocations(attr, off, &base, &start, &end, &expr, &n)) > 0) {
		uint64_t d = pc < start ? start - pc : pc >= end ? pc - end + 1 : 0;
		int slot = d < dist[0] ? 0 : d < dist[1] ? 1 : -1;

		if (!n || slot < 0 || start >= end)
			continue;
		if (!slot) {
			memcpy(best[1], best[0], sizeof(best[0]));
			dist[1] = dist[0];
		}
		best[slot][0] = start;
		best[slot][1] = end;
		dist[slot] = d;
	}
	for (int i = 0; i < 2 && dist[i] != UINT64_MAX; i++) {
		char from[160], to[160];
		size_t used = strlen(out);

		sym_format(s, best[i][0] + delta, from, sizeof(from));
		sym_format(s, best[i][1] + delta - 1, to, sizeof(to));
		snprintf(out + used, len - used, "%s%s..%s", i ? ", " : "", from, to);
	}
}

static int one_op(struct symtab *s, const Dwarf_Op *op, uint64_t addr, uint64_t delta, struct dwloc *out)
{
	uint8_t a = op->atom;

	if (a >= DW_OP_reg0 && a <= DW_OP_reg16) {
		*out = (struct dwloc){ .kind = DWLOC_REG, .reg = a - DW_OP_reg0 };
		return 0;
	}
	if (a == DW_OP_regx && op->number <= 16) {
		*out = (struct dwloc){ .kind = DWLOC_REG, .reg = (int)op->number };
		return 0;
	}
	if (a >= DW_OP_breg0 && a <= DW_OP_breg16) {
		*out = (struct dwloc){ .kind = DWLOC_MEM, .reg = a - DW_OP_breg0, .off = (int64_t)op->number };
		return 0;
	}
	if (a == DW_OP_bregx && op->number <= 16) {
		*out = (struct dwloc){ .kind = DWLOC_MEM, .reg = (int)op->number, .off = (int64_t)op->number2 };
		return 0;
	}
	if (a == DW_OP_fbreg) { /* GCC's frame base is the CFA (DW_OP_call_frame_cfa) */
		int ret = sym_cfa(s, addr, &out->reg, &out->off);

		out->kind = DWLOC_MEM;
		out->off += (int64_t)op->number;
		return ret ? -EOPNOTSUPP : 0;
	}
	if (a == DW_OP_addr) {
		*out = (struct dwloc){ .kind = DWLOC_ADDR, .off = (int64_t)(op->number + delta) };
		return 0;
	}
	if (a >= DW_OP_lit0 && a <= DW_OP_lit31) {
		*out = (struct dwloc){ .kind = DWLOC_CONST, .off = a - DW_OP_lit0 };
		return 0;
	}
	if (a == DW_OP_constu || a == DW_OP_consts || (a >= DW_OP_const1u && a <= DW_OP_const8s)) {
		*out = (struct dwloc){ .kind = DWLOC_CONST, .off = (int64_t)op->number };
		return 0;
	}
	return -EOPNOTSUPP;
}

/* An expression kstep reads: one operation, or one then stack_value (a
 * computed value), or breg then plus_uconst. */
static int read_expr(struct symtab *s, const Dwarf_Op *expr, size_t len, uint64_t addr, uint64_t delta,
		     struct dwloc *out)
{
	int ret;

	if (!len)
		return -EOPNOTSUPP;
	if (expr[0].atom == DW_OP_entry_value || expr[0].atom == DW_OP_GNU_entry_value)
		return -ENODATA;
	if ((ret = one_op(s, &expr[0], addr, delta, out)))
		return ret;
	if (len == 1)
		return 0;
	if (expr[1].atom == DW_OP_plus_uconst && out->kind == DWLOC_MEM) {
		out->off += (int64_t)expr[1].number;
		expr++;
		len--;
		if (len == 1)
			return 0;
	}
	if (len == 2 && expr[1].atom == DW_OP_stack_value) {
		if (out->kind == DWLOC_MEM)
			out->kind = DWLOC_VALUE;
		else if (out->kind == DWLOC_ADDR)
			out->kind = DWLOC_CONST;
		return out->kind == DWLOC_REG ? -EOPNOTSUPP : 0;
	}
	return -EOPNOTSUPP;
}

/* "at WHERE lives where kstep cannot read it (DWARF ops 0x.. 0x..)". */
static void describe_expr(const Dwarf_Op *expr, size_t len, const char *where, char *err, size_t errlen)
{
	size_t used = (size_t)snprintf(err, errlen, "at %s lives where kstep cannot read it (DWARF ops", where);

	for (size_t i = 0; i < len && i < 8 && used < errlen; i++)
		used += (size_t)snprintf(err + used, errlen - used, " 0x%x", expr[i].atom);
	if (used < errlen)
		snprintf(err + used, errlen - used, "%s)", len > 8 ? " ..." : "");
}

static int const_value(Dwarf_Die *var, struct dwloc *out)
{
	Dwarf_Attribute attr;
	Dwarf_Sword v;

	if (!dwarf_attr_integrate(var, DW_AT_const_value, &attr) || dwarf_formsdata(&attr, &v))
		return -ENOENT;
	*out = (struct dwloc){ .kind = DWLOC_CONST, .off = v };
	return 0;
}

int dwloc_at(struct symtab *s, Dwarf_Die *var, uint64_t addr, struct dwloc *out, char *err, size_t errlen)
{
	Dwarf_Attribute attr;
	Dwarf_Op *expr;
	uint64_t pc, delta;
	size_t len;
	int n, ret;
	char near[512], where[160];

	sym_dwarf(s, &delta);
	pc = addr - delta;
	sym_format(s, addr, where, sizeof(where));
	if (!dwarf_attr(var, DW_AT_location, &attr)) {
		if (!const_value(var, out))
			return 0;
		return kerr_set(err, errlen, -ENOENT, "is optimized out: the debug info gives it no location anywhere");
	}
	n = dwarf_getlocation_addr(&attr, pc, &expr, &len, 1);
	if (n <= 0 || !len) {
		nearest_ranges(s, &attr, pc, delta, near, sizeof(near));
		snprintf(err, errlen, "is optimized out at %s%s%s", where, near[0] ? "; it is available at " : "", near);
		return -ESRCH;
	}
	ret = read_expr(s, expr, len, addr, delta, out);
	if (ret == -ENODATA)
		snprintf(err, errlen, "at %s is only known as its value at the function's entry: probe the entry",
			 where);
	else if (ret)
		describe_expr(expr, len, where, err, errlen);
	return ret;
}

/* ---- what is in scope ----------------------------------------------------- */

/* The type of @var as C writes it, in @out. */
static void type_text(Dwarf_Die *var, char *out, size_t len)
{
	Dwarf_Attribute attr;
	Dwarf_Die type;
	char stars[16] = "";
	size_t nstars = 0;
	const char *kw = "";

	out[0] = '\0';
	if (!dwarf_attr_integrate(var, DW_AT_type, &attr) || !dwarf_formref_die(&attr, &type)) {
		snprintf(out, len, "void");
		return;
	}
	for (int i = 0; i < 16; i++) {
		int tag = dwarf_tag(&type);

		if (tag == DW_TAG_pointer_type && nstars + 1 < sizeof(stars))
			stars[nstars++] = '*';
		else if (tag != DW_TAG_const_type && tag != DW_TAG_volatile_type)
			break;
		if (!dwarf_attr_integrate(&type, DW_AT_type, &attr) || !dwarf_formref_die(&attr, &type)) {
			snprintf(out, len, "void %s", stars);
			return;
		}
	}
	switch (dwarf_tag(&type)) {
	case DW_TAG_structure_type: kw = "struct "; break;
	case DW_TAG_union_type: kw = "union "; break;
	case DW_TAG_enumeration_type: kw = "enum "; break;
	case DW_TAG_array_type: kw = "array of "; break;
	case DW_TAG_subroutine_type: snprintf(out, len, "(function_type)%s", stars); return;
	default: break;
	}
	snprintf(out, len, "%s%s%s%s", kw, dwarf_diename(&type) ? dwarf_diename(&type) : "(anonymous)",
		 nstars ? " " : "", stars);
}

static bool listed(const struct dwloc_var *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return true;
	return false;
}

static int add_var(struct dwloc_var **out, size_t *n, Dwarf_Die *die, const char *name, int scope_tag,
		   const char *function)
{
	struct dwloc_var *tmp = realloc(*out, (*n + 1) * sizeof(*tmp));

	if (!tmp)
		return -ENOMEM;
	*out = tmp;
	memset(&tmp[*n], 0, sizeof(tmp[*n]));
	snprintf(tmp[*n].name, sizeof(tmp[*n].name), "%s", name);
	type_text(die, tmp[*n].type, sizeof(tmp[*n].type));
	snprintf(tmp[*n].function, sizeof(tmp[*n].function), "%s", function ? function : "??");
	tmp[*n].die = *die;
	tmp[*n].param = dwarf_tag(die) == DW_TAG_formal_parameter;
	tmp[*n].outermost = scope_tag == DW_TAG_subprogram;
	(*n)++;
	return 0;
}

int dwloc_scope_vars(struct symtab *s, uint64_t addr, struct dwloc_var **out, size_t *n)
{
	Dwarf_Die *scopes = NULL, child;
	uint64_t pc;
	int nscopes = sym_dwarf_scopes(s, addr, &scopes, &pc), ret = 0;

	const char *function = NULL;

	*out = NULL;
	*n = 0;
	for (int i = 0; i < nscopes && !ret; i++) {
		int tag = dwarf_tag(&scopes[i]);

		if (tag == DW_TAG_compile_unit)
			break;
		/* A block's variables are its function's: the next function scope out. */
		for (int j = i; j < nscopes; j++)
			if (dwarf_tag(&scopes[j]) == DW_TAG_inlined_subroutine || dwarf_tag(&scopes[j]) == DW_TAG_subprogram) {
				function = sym_dwarf_name(&scopes[j]);
				break;
			}
		if (dwarf_child(&scopes[i], &child))
			continue;
		do {
			int t = dwarf_tag(&child);
			const char *name = sym_dwarf_name(&child);

			if ((t == DW_TAG_variable || t == DW_TAG_formal_parameter) && name && !listed(*out, *n, name))
				ret = add_var(out, n, &child, name, tag, function);
		} while (!ret && !dwarf_siblingof(&child, &child));
		if (tag == DW_TAG_subprogram)
			break;
	}
	free(scopes);
	if (!ret && nscopes <= 0)
		ret = -ENOENT;
	if (ret) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return ret;
}

bool dwloc_find(struct symtab *s, uint64_t addr, const char *name, struct dwloc_var *out)
{
	struct dwloc_var *v;
	size_t n;
	bool found = false;

	if (dwloc_scope_vars(s, addr, &v, &n))
		return false;
	for (size_t i = 0; i < n && !found; i++)
		if (!strcmp(v[i].name, name)) {
			*out = v[i];
			found = true;
		}
	free(v);
	return found;
}
