// SPDX-License-Identifier: MIT
/*
 * fetcharg: fetch-argument expressions compiled against the DWARF into
 * small programs, and run at each hit (see fetcharg.h).
 */

#include <ctype.h>
#include <dwarf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dwloc.h"
#include "fetcharg_priv.h"
#include "kerr.h"

/* The compiler's state: the text being read and what is known so far. */
struct compiler {
	const char *p;          /* next character */
	struct symtab *syms;
	const struct farg_scope *scope;
	struct farg *a;
	Dwarf_Die type;         /* of the value so far, when typed */
	bool typed;
	char *err;
	size_t errlen;
};

static int fail(struct compiler *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct compiler *c, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = kerr_vset(c->err, c->errlen, -EINVAL, fmt, ap);
	va_end(ap);
	return ret;
}

static int emit(struct compiler *c, enum op_kind kind, int64_t imm)
{
	if (c->a->nops == MAX_OPS)
		return fail(c, "expression too long (at most %d steps)", MAX_OPS);
	c->a->ops[c->a->nops++] = (struct op){ kind, imm };
	return 0;
}

/* The value itself rather than where it is. */
static int to_rvalue(struct compiler *c)
{
	if (!c->a->lvalue)
		return 0;
	c->a->lvalue = false;
	return emit(c, OP_LOAD, 0);
}

static void skip_space(struct compiler *c)
{
	while (isspace((unsigned char)*c->p))
		c->p++;
}

static bool read_ident(struct compiler *c, char *out, size_t len)
{
	size_t n = 0;

	if (!isalpha((unsigned char)*c->p) && *c->p != '_')
		return false;
	while ((isalnum((unsigned char)*c->p) || *c->p == '_') && n + 1 < len)
		out[n++] = *c->p++;
	out[n] = '\0';
	return true;
}

static bool read_number(struct compiler *c, int64_t *v)
{
	char *end;

	if (!isdigit((unsigned char)*c->p))
		return false;
	*v = (int64_t)strtoull(c->p, &end, 0);
	c->p = end;
	return true;
}

/* ---- types -------------------------------------------------------------- */

static bool type_of(Dwarf_Die *die, Dwarf_Die *type)
{
	Dwarf_Attribute attr;

	return dwarf_attr_integrate(die, DW_AT_type, &attr) && dwarf_formref_die(&attr, type) &&
	       sym_dwarf_strip(type);
}

static void set_type(struct compiler *c, Dwarf_Die *die)
{
	c->typed = type_of(die, &c->type);
}

static uint64_t type_size(Dwarf_Die *type)
{
	Dwarf_Word size = 0;

	return dwarf_aggregate_size(type, &size) ? 8 : size;
}

static const char *type_name(Dwarf_Die *type)
{
	const char *n = dwarf_diename(type);

	switch (dwarf_tag(type)) {
	case DW_TAG_structure_type:
		return n ? n : "an anonymous struct";
	case DW_TAG_union_type:
		return n ? n : "an anonymous union";
	case DW_TAG_pointer_type:
		return "a pointer";
	case DW_TAG_array_type:
		return "an array";
	default:
		return n ? n : "a scalar";
	}
}

static bool is_aggregate(Dwarf_Die *type)
{
	int tag = dwarf_tag(type);

	return tag == DW_TAG_structure_type || tag == DW_TAG_union_type;
}

/* ---- primaries ------------------------------------------------------------ */

static const struct {
	const char *name, *alias;
} reg_names[CFI_NREGS] = {
	{ "rax", "ax" }, { "rdx", "dx" }, { "rcx", "cx" }, { "rbx", "bx" }, { "rsi", "si" }, { "rdi", "di" },
	{ "rbp", "bp" }, { "rsp", "sp" }, { "r8", NULL },  { "r9", NULL },  { "r10", NULL }, { "r11", NULL },
	{ "r12", NULL }, { "r13", NULL }, { "r14", NULL }, { "r15", NULL }, { "rip", "ip" },
};
/* The ABI's argument registers, in DWARF numbering. */
static const int abi_args[6] = { 5, 4, 1, 2, 8, 9 };

static int primary_register(struct compiler *c)
{
	char name[16];

	if (!read_ident(c, name, sizeof(name)))
		return fail(c, "a register name must follow %%");
	for (int i = 0; i < CFI_NREGS; i++)
		if (!strcmp(name, reg_names[i].name) || (reg_names[i].alias && !strcmp(name, reg_names[i].alias))) {
			c->typed = false;
			return emit(c, OP_REG, i);
		}
	return fail(c, "%%%s is not an x86-64 general register", name);
}

/* @var's DWARF location at the probe's address as ops: -ENOENT if the
 * DWARF gives it none at all (a parameter may still be where the ABI puts
 * it), else the reason it cannot be read there. */
static int place_location(struct compiler *c, Dwarf_Die *var, const char *what)
{
	struct dwloc loc;
	char why[640];
	int err = dwloc_at(c->syms, var, c->scope->addr, &loc, why, sizeof(why));

	if (err == -ENOENT && dwarf_tag(var) == DW_TAG_formal_parameter)
		return -ENOENT;
	if (err)
		return fail(c, "%s %s", what, why);
	c->a->lvalue = loc.kind == DWLOC_MEM || loc.kind == DWLOC_ADDR;
	switch (loc.kind) {
	case DWLOC_REG:
		return emit(c, OP_REG, loc.reg);
	case DWLOC_MEM:
	case DWLOC_VALUE:
		err = emit(c, OP_REG, loc.reg);
		return err ? err : emit(c, OP_ADD, loc.off);
	default:
		return emit(c, OP_CONST, loc.off);
	}
}

static int primary_param(struct compiler *c, const char *name, int index);

/* A local variable or parameter in scope at the probe (the innermost of
 * that name, an inline instance's own included). */
static int primary_variable(struct compiler *c, const char *name)
{
	struct dwloc_var v;
	char what[NAME_MAX_LEN + 8];
	int err;

	if (c->scope->at_return || !dwloc_find(c->syms, c->scope->addr, name, &v) || (v.param && v.outermost))
		return primary_param(c, name, -1);
	snprintf(what, sizeof(what), "'%s'", name);
	c->typed = type_of(&v.die, &c->type);
	err = place_location(c, &v.die, what);
	return err == -ENOENT ? fail(c, "%s is optimized out: the debug info gives it no location", what) : err;
}

/* The @index-th (0-based) parameter of the probed function, or the one
 * named @name: its DWARF location, else (at the entry) the ABI register. */
static int primary_param(struct compiler *c, const char *name, int index)
{
	Dwarf_Die func, child, found;
	uint64_t pc;
	int i = 0, err;
	bool have = false;
	char what[NAME_MAX_LEN + 32];

	if (c->scope->at_return)
		return fail(c, "%s is out of scope at a return probe (only $retval, registers and $current)",
			    name ? name : "an argument");
	if (sym_dwarf_function(c->syms, c->scope->addr, &func, &pc) && !dwarf_child(&func, &child)) {
		do {
			const char *n;

			if (dwarf_tag(&child) != DW_TAG_formal_parameter)
				continue;
			n = sym_dwarf_name(&child);
			if (name ? n && !strcmp(n, name) : i == index) {
				found = child;
				have = true;
				index = i;
				break;
			}
			i++;
		} while (!dwarf_siblingof(&child, &child));
	}
	if (name && !have)
		return fail(c, "no parameter '%s' in the function at 0x%" PRIx64 " (name a parameter, $argN or %%REG)",
			    name, c->scope->addr);
	if (name)
		snprintf(what, sizeof(what), "'%s'", name);
	else
		snprintf(what, sizeof(what), "$arg%d", index + 1);
	c->typed = have && type_of(&found, &c->type);
	if (have && (err = place_location(c, &found, what)) != -ENOENT)
		return err;
	if (!c->scope->at_entry)
		return fail(c, "%s at 0x%" PRIx64 ": no location in the debug info, and only a function's entry has "
			    "arguments where the ABI puts them", what, c->scope->addr);
	if (index >= 6)
		return fail(c, "%s is not in a register at the entry (the ABI passes six)", what);
	c->a->lvalue = false;
	return emit(c, OP_REG, abi_args[index]);
}

static int primary_retval(struct compiler *c)
{
	Dwarf_Die func;
	uint64_t pc;

	if (!c->scope->at_return)
		return fail(c, "$retval is only known at a return probe (SYMBOL%%return)");
	c->typed = sym_dwarf_function(c->syms, c->scope->func, &func, &pc) && type_of(&func, &c->type);
	c->a->lvalue = false;
	return emit(c, OP_REG, 0); /* rax */
}

/* $current: the task on this CPU, from the per-CPU current_task. */
static int primary_current(struct compiler *c)
{
	const struct sym *s = sym_lookup_name(c->syms, "current_task");
	const struct sym *end = sym_lookup_name(c->syms, "__per_cpu_end");
	uint64_t off = sym_offset(c->syms), link = s ? s->addr - off : 0;
	Dwarf_Die var;
	int err;

	if (!s || !sym_dwarf_variable(c->syms, "current_task", &var))
		return fail(c, "$current: this vmlinux has no current_task with debug info");
	/* Per-CPU variables are linked at offsets from 0 and not moved by KASLR. */
	if (end && link < end->addr - off)
		err = emit(c, OP_PERCPU, (int64_t)link);
	else
		err = emit(c, OP_CONST, (int64_t)s->addr);
	c->a->lvalue = true;
	set_type(c, &var);
	return err;
}

static int parse_postfix(struct compiler *c);

/* [+-]OFF(EXPR): the memory at EXPR + OFF, untyped (u64 unless :TYPE). */
static int primary_deref(struct compiler *c)
{
	bool neg = *c->p == '-';
	int64_t off;
	int err;

	c->p++;
	if (!read_number(c, &off) || *c->p != '(')
		return fail(c, "expected +OFFSET(EXPR) near '%s'", c->p);
	c->p++;
	if ((err = parse_postfix(c)) || (err = to_rvalue(c)))
		return err;
	skip_space(c);
	if (*c->p != ')')
		return fail(c, "missing ')' near '%s'", c->p);
	c->p++;
	c->a->lvalue = true;
	c->typed = false;
	return emit(c, OP_ADD, neg ? -off : off);
}

static int parse_primary(struct compiler *c)
{
	char name[NAME_MAX_LEN];

	skip_space(c);
	if (*c->p == '%') {
		c->p++;
		return primary_register(c);
	}
	if (*c->p == '+' || *c->p == '-')
		return primary_deref(c);
	if (*c->p == '$') {
		c->p++;
		if (!read_ident(c, name, sizeof(name)))
			return fail(c, "a variable name must follow $");
		if (!strncmp(name, "arg", 3) && isdigit((unsigned char)name[3]) && atoi(name + 3) >= 1)
			return primary_param(c, NULL, atoi(name + 3) - 1);
		if (!strcmp(name, "retval"))
			return primary_retval(c);
		if (!strcmp(name, "current"))
			return primary_current(c);
		return fail(c, "unknown variable $%s ($argN, $retval, $current, $comm)", name);
	}
	if (!read_ident(c, name, sizeof(name)))
		return fail(c, "expected a variable, $VAR, %%REG or +OFF(...) near '%s'", c->p);
	return primary_variable(c, name);
}

/* ---- member access and indexing -------------------------------------------- */

static int member(struct compiler *c, bool arrow)
{
	char name[NAME_MAX_LEN];
	Dwarf_Die m;
	uint64_t at = 0;
	int err = 0;

	skip_space(c);
	if (!read_ident(c, name, sizeof(name)))
		return fail(c, "a member name must follow '%s'", arrow ? "->" : ".");
	if (!c->typed)
		return fail(c, "'%s': the value before it has no type (a register or +OFF(...)): "
			    "use +OFF(...) with the member's offset", name);
	if (arrow) {
		if (dwarf_tag(&c->type) != DW_TAG_pointer_type)
			return fail(c, "'->%s': the value before it is %s, not a pointer", name, type_name(&c->type));
		if ((err = to_rvalue(c)))
			return err;
		if (!type_of(&c->type, &c->type))
			return fail(c, "'->%s': a void pointer", name);
		c->a->lvalue = true;
	} else if (dwarf_tag(&c->type) == DW_TAG_pointer_type) {
		return fail(c, "'.%s': the value before it is a pointer: use '->%s'", name, name);
	}
	if (!is_aggregate(&c->type))
		return fail(c, "'%s': %s is not a struct or union", name, type_name(&c->type));
	if (!c->a->lvalue)
		return fail(c, "'.%s': a struct held in registers is not supported", name);
	if (!sym_dwarf_member(&c->type, name, &m, &at))
		return fail(c, "no member '%s' in struct %s", name, type_name(&c->type));
	set_type(c, &m);
	return at ? emit(c, OP_ADD, (int64_t)at) : 0;
}

static int array_index(struct compiler *c)
{
	Dwarf_Die elem, sub;
	Dwarf_Attribute attr;
	Dwarf_Word bound;
	int64_t index;
	int err = 0, tag = c->typed ? dwarf_tag(&c->type) : 0;

	skip_space(c);
	if (!read_number(c, &index) || (skip_space(c), *c->p != ']'))
		return fail(c, "an array index must be a number: [N]");
	c->p++;
	if (tag != DW_TAG_array_type && tag != DW_TAG_pointer_type)
		return fail(c, "[%" PRId64 "]: the value before it is not an array or a pointer", index);
	if (!type_of(&c->type, &elem))
		return fail(c, "[%" PRId64 "]: an array of void", index);
	if (tag == DW_TAG_pointer_type) {
		err = to_rvalue(c);
		c->a->lvalue = true;
	} else if (!dwarf_child(&c->type, &sub) && dwarf_attr(&sub, DW_AT_upper_bound, &attr) &&
		   !dwarf_formudata(&attr, &bound) && (uint64_t)index > bound) {
		return fail(c, "[%" PRId64 "]: past the end of an array of %" PRIu64, index, (uint64_t)bound + 1);
	}
	c->type = elem;
	if (!err && index)
		err = emit(c, OP_ADD, index * (int64_t)type_size(&elem));
	return err;
}

static int parse_postfix(struct compiler *c)
{
	int err = parse_primary(c);

	while (!err) {
		skip_space(c);
		if (c->p[0] == '-' && c->p[1] == '>') {
			c->p += 2;
			err = member(c, true);
		} else if (c->p[0] == '.') {
			c->p++;
			err = member(c, false);
		} else if (c->p[0] == '[') {
			c->p++;
			err = array_index(c);
		} else {
			break;
		}
	}
	return err;
}

/* ---- the value's type -------------------------------------------------------- */

static int collect_enums(struct compiler *c, Dwarf_Die *type)
{
	Dwarf_Die e;
	Dwarf_Attribute attr;

	if (dwarf_child(type, &e))
		return 0;
	do {
		Dwarf_Sword v = 0;
		struct enumerator *tmp;

		if (dwarf_tag(&e) != DW_TAG_enumerator || !dwarf_diename(&e))
			continue;
		if (dwarf_attr(&e, DW_AT_const_value, &attr))
			dwarf_formsdata(&attr, &v);
		tmp = realloc(c->a->enums, (c->a->nenums + 1) * sizeof(*tmp));
		if (!tmp || !(tmp[c->a->nenums].name = strdup(dwarf_diename(&e)))) {
			if (tmp)
				c->a->enums = tmp;
			return fail(c, "out of memory");
		}
		tmp[c->a->nenums++].value = v;
		c->a->enums = tmp;
	} while (!dwarf_siblingof(&e, &e));
	return 0;
}

static bool is_char(Dwarf_Die *type)
{
	Dwarf_Attribute attr;
	Dwarf_Word enc = 0;

	return dwarf_tag(type) == DW_TAG_base_type && type_size(type) == 1 && dwarf_attr(type, DW_AT_encoding, &attr) &&
	       !dwarf_formudata(&attr, &enc) && (enc == DW_ATE_signed_char || enc == DW_ATE_unsigned_char);
}

/* The value as its DWARF type says, when no :TYPE is given. */
static int type_from_dwarf(struct compiler *c)
{
	struct farg *a = c->a;
	Dwarf_Die elem;
	Dwarf_Attribute attr;
	Dwarf_Word enc = 0;

	if (!c->typed) {
		a->kind = VAL_HEX;
		a->size = 8;
		return 0;
	}
	a->size = (unsigned int)type_size(&c->type);
	switch (dwarf_tag(&c->type)) {
	case DW_TAG_pointer_type:
		a->kind = VAL_HEX;
		return 0;
	case DW_TAG_enumeration_type:
		a->kind = VAL_ENUM;
		return collect_enums(c, &c->type);
	case DW_TAG_array_type:
		if (type_of(&c->type, &elem) && is_char(&elem)) {
			a->kind = VAL_STRING_ARR;
			return 0;
		}
		return fail(c, "'%s' is an array: index it ([N]) or give :TYPE", a->name);
	case DW_TAG_base_type:
		if (dwarf_attr(&c->type, DW_AT_encoding, &attr))
			dwarf_formudata(&attr, &enc);
		a->kind = enc == DW_ATE_boolean ? VAL_BOOL : VAL_INT;
		a->is_signed = enc == DW_ATE_signed || enc == DW_ATE_signed_char;
		if (enc == DW_ATE_float)
			return fail(c, "'%s' is a floating-point value: not supported", a->name);
		return 0;
	default:
		return fail(c, "'%s' is struct %s: name one of its members", a->name, type_name(&c->type));
	}
}

static int type_from_suffix(struct compiler *c, const char *t)
{
	struct farg *a = c->a;
	unsigned int bits = 0;

	if (!strcmp(t, "string")) {
		bool array = c->typed && dwarf_tag(&c->type) == DW_TAG_array_type;

		a->kind = array ? VAL_STRING_ARR : VAL_STRING_PTR;
		a->size = array ? (unsigned int)type_size(&c->type) : 8;
		return 0;
	}
	if (!strcmp(t, "ip4") || !strcmp(t, "be16") || !strcmp(t, "be32")) {
		a->kind = t[0] == 'i' ? VAL_IP4 : VAL_BE;
		a->size = !strcmp(t, "be16") ? 2 : 4;
		return 0;
	}
	if (!strcmp(t, "symbol")) {
		a->kind = VAL_SYMBOL;
		a->size = 8;
		a->syms = c->syms;
		return 0;
	}
	if ((t[0] == 'u' || t[0] == 's' || t[0] == 'x') && sscanf(t + 1, "%u", &bits) == 1 &&
	    (bits == 8 || bits == 16 || bits == 32 || bits == 64)) {
		a->kind = t[0] == 'x' ? VAL_HEX : VAL_INT;
		a->is_signed = t[0] == 's';
		a->size = bits / 8;
		return 0;
	}
	return fail(c, "unknown type ':%s' (u8..u64, s8..s64, x8..x64, string, ip4, be16, be32, symbol)", t);
}

/* ---- compiling ------------------------------------------------------------------ */

static int compile_expr(struct compiler *c, const char *expr, const char *type)
{
	int err;

	c->p = expr;
	if (!strcmp(expr, "$comm")) /* perf's shorthand */
		c->p = "$current->comm";
	err = parse_postfix(c);
	skip_space(c);
	if (!err && *c->p)
		err = fail(c, "unexpected '%s' in '%s'", c->p, expr);
	if (!err)
		err = type ? type_from_suffix(c, type) : type_from_dwarf(c);
	/* A string behind a pointer starts at the pointer's value. */
	if (!err && c->a->kind == VAL_STRING_PTR)
		err = to_rvalue(c);
	return err;
}

static bool valid_name(const char *s)
{
	if (!isalpha((unsigned char)*s) && *s != '_')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

/* A field named after its expression: "skb->len" gives "skb_len". */
static void name_from_expr(const char *expr, char *out, size_t len)
{
	size_t n = 0;

	for (const char *p = expr; *p && n + 1 < len; p++) {
		if (isalnum((unsigned char)*p))
			out[n++] = *p;
		else if (n && out[n - 1] != '_')
			out[n++] = '_';
	}
	while (n && out[n - 1] == '_')
		n--;
	out[n] = '\0';
	if (!n || isdigit((unsigned char)out[0]))
		snprintf(out, len, "arg");
}

static int compile(struct compiler *c, const char *text)
{
	char copy[512], *expr = copy, *type, *eq;

	if (snprintf(copy, sizeof(copy), "%s", text) >= (int)sizeof(copy))
		return fail(c, "fetch argument too long");
	eq = strchr(copy, '=');
	if (eq) {
		*eq = '\0';
		if (!valid_name(copy) || strlen(copy) >= NAME_MAX_LEN)
			return fail(c, "'%s' is not a field name (letters, digits, _)", copy);
		snprintf(c->a->name, sizeof(c->a->name), "%s", copy);
		expr = eq + 1;
	}
	type = strrchr(expr, ':');
	if (type)
		*type++ = '\0';
	if (!eq)
		name_from_expr(expr, c->a->name, sizeof(c->a->name));
	return compile_expr(c, expr, type);
}

int farg_compile(struct farg **out, const char *text, struct symtab *syms, const struct farg_scope *scope,
		 char *err, size_t errlen)
{
	struct farg *a = calloc(1, sizeof(*a));
	struct compiler c = { .syms = syms, .scope = scope, .a = a, .err = err, .errlen = errlen };
	char reason[384];
	int ret;

	if (!a)
		return -ENOMEM;
	c.err = reason;
	c.errlen = sizeof(reason);
	ret = compile(&c, text);
	if (ret) {
		snprintf(err, errlen, "fetch argument '%s': %s", text, reason);
		farg_free(a);
		return ret;
	}
	*out = a;
	return 0;
}

void farg_free(struct farg *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->nenums; i++)
		free(a->enums[i].name);
	free(a->enums);
	free(a);
}

const char *farg_name(const struct farg *a)
{
	return a->name;
}

enum farg_out farg_out_type(const struct farg *a)
{
	switch (a->kind) {
	case VAL_INT:
		return a->is_signed ? FARG_OUT_S64 : FARG_OUT_U64;
	case VAL_BOOL:
	case VAL_BE:
		return FARG_OUT_U64;
	case VAL_HEX:
		return FARG_OUT_X64;
	default:
		return FARG_OUT_STRING;
	}
}

bool farg_needs_percpu(const struct farg *a)
{
	for (int i = 0; i < a->nops; i++)
		if (a->ops[i].kind == OP_PERCPU)
			return true;
	return false;
}

bool farg_enum_value(const struct farg *a, const char *name, uint64_t *value)
{
	for (size_t i = 0; i < a->nenums; i++)
		if (!strcmp(a->enums[i].name, name)) {
			*value = (uint64_t)a->enums[i].value;
			return true;
		}
	return false;
}

bool farg_is_signed(const struct farg *a)
{
	return farg_out_type(a) == FARG_OUT_S64 || a->kind == VAL_ENUM;
}

bool farg_has_enum(const struct farg *a)
{
	return a->nenums > 0;
}
