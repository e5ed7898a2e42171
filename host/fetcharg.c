// SPDX-License-Identifier: MIT
/*
 * fetcharg: fetch-argument expressions and filters compiled against the
 * DWARF into small programs, and run at each hit (see fetcharg.h).
 */
#include "fetcharg.h"

#include <ctype.h>
#include <dwarf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dwloc.h"
#include "kerr.h"

#define MAX_OPS 24
#define NAME_MAX_LEN 64

enum op_kind {
	OP_REG,     /* v = register imm */
	OP_PERCPU,  /* v = per-CPU base + imm */
	OP_CONST,   /* v = imm */
	OP_ADD,     /* v += imm */
	OP_LOAD,    /* v = the 8 bytes at v */
};

struct op {
	enum op_kind kind;
	int64_t imm;
};

/* How the final value is read and shown. */
enum val_kind {
	VAL_INT,        /* size bytes, signed or not */
	VAL_HEX,        /* pointers and x8..x64 */
	VAL_BOOL,
	VAL_ENUM,       /* by name from the enum's DWARF */
	VAL_STRING_PTR, /* a char * */
	VAL_STRING_ARR, /* a char array in place */
	VAL_IP4,        /* 4 bytes in network order, dotted */
	VAL_BE,         /* 2 or 4 bytes in network order */
	VAL_SYMBOL,     /* a code or data address, by symbol */
};

struct enumerator {
	char *name;
	int64_t value;
};

struct farg {
	char name[NAME_MAX_LEN];
	struct op ops[MAX_OPS];
	int nops;
	bool lvalue;            /* at the end v is where the value is, not the value */
	enum val_kind kind;
	unsigned int size;      /* bytes */
	bool is_signed;
	struct enumerator *enums;
	size_t nenums;
	struct symtab *syms;    /* for VAL_SYMBOL */
};

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

/* ---- evaluation ---------------------------------------------------------------------- */

static uint64_t extend(uint64_t v, unsigned int size, bool is_signed)
{
	unsigned int shift = 64 - size * 8;

	if (size >= 8)
		return v;
	return is_signed ? (uint64_t)((int64_t)(v << shift) >> shift) : v & ((1ull << (size * 8)) - 1);
}

static void read_string(const struct farg *a, const struct farg_env *env, uint64_t addr, struct farg_value *out)
{
	size_t max = FARG_STRING_READ;

	if (a->kind == VAL_STRING_ARR && a->size && a->size < max)
		max = a->size;
	/* Not past the page the string starts on in one read: the next may
	 * not be mapped. Strings the kernel keeps in objects are short. */
	if ((addr & 4095) + max > 4096)
		max = 4096 - (addr & 4095);
	if (!addr || env->read(env->ctx, addr, out->str, max)) {
		snprintf(out->str, sizeof(out->str), "(fault)");
		out->fault = true;
		return;
	}
	out->str[max] = '\0';
	for (char *p = out->str; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
}

static void format_value(const struct farg *a, uint64_t v, struct farg_value *out)
{
	switch (a->kind) {
	case VAL_ENUM:
		out->u = extend(v, a->size, true);
		for (size_t i = 0; i < a->nenums; i++)
			if (a->enums[i].value == (int64_t)out->u) {
				snprintf(out->str, sizeof(out->str), "%s", a->enums[i].name);
				return;
			}
		snprintf(out->str, sizeof(out->str), "%" PRId64, (int64_t)out->u);
		return;
	case VAL_IP4:
		out->u = v & 0xffffffffu;
		snprintf(out->str, sizeof(out->str), "%u.%u.%u.%u", (unsigned)(v & 0xff), (unsigned)(v >> 8 & 0xff),
			 (unsigned)(v >> 16 & 0xff), (unsigned)(v >> 24 & 0xff));
		return;
	case VAL_BE:
		out->u = a->size == 2 ? __builtin_bswap16((uint16_t)v) : __builtin_bswap32((uint32_t)v);
		return;
	case VAL_SYMBOL:
		out->u = v;
		sym_format(a->syms, v, out->str, sizeof(out->str));
		return;
	case VAL_BOOL:
		out->u = extend(v, a->size, false) != 0;
		return;
	default:
		out->u = extend(v, a->size, a->is_signed);
	}
}

/* Run the expression's program: its value, or (lvalue) where it is. */
static int run_ops(const struct farg *a, const struct farg_env *env, uint64_t *out)
{
	uint64_t v = 0;

	for (int i = 0; i < a->nops; i++) {
		const struct op *op = &a->ops[i];

		switch (op->kind) {
		case OP_REG:
			v = env->regs[op->imm];
			break;
		case OP_PERCPU:
			v = env->percpu_base + (uint64_t)op->imm;
			break;
		case OP_CONST:
			v = (uint64_t)op->imm;
			break;
		case OP_ADD:
			v += (uint64_t)op->imm;
			break;
		case OP_LOAD:
			if (env->read(env->ctx, v, &v, 8))
				return -EFAULT;
			break;
		}
	}
	*out = v;
	return 0;
}

int farg_location(const struct farg *a, const struct farg_env *env, uint64_t *addr, size_t *size)
{
	if (!a->lvalue)
		return -EINVAL;
	*size = a->size > 8 ? 8 : a->size;
	return run_ops(a, env, addr);
}

bool farg_in_memory(const struct farg *a)
{
	return a->lvalue;
}

size_t farg_steps(const struct farg *a, struct farg_step *out, size_t max, size_t *final, bool *string)
{
	static const enum farg_step_kind kinds[] = { [OP_REG] = FARG_STEP_REG, [OP_PERCPU] = FARG_STEP_PERCPU,
						     [OP_CONST] = FARG_STEP_CONST, [OP_ADD] = FARG_STEP_ADD,
						     [OP_LOAD] = FARG_STEP_LOAD };

	if ((size_t)a->nops > max)
		return 0;
	for (int i = 0; i < a->nops; i++)
		out[i] = (struct farg_step){ kinds[a->ops[i].kind], a->ops[i].imm };
	*string = a->kind == VAL_STRING_ARR || a->kind == VAL_STRING_PTR;
	if (*string)
		*final = a->kind == VAL_STRING_ARR && a->size && a->size < FARG_STRING_READ ? a->size : FARG_STRING_READ;
	else
		*final = a->lvalue ? (a->size > 8 ? 8 : a->size) : 0;
	return (size_t)a->nops;
}

void farg_eval(const struct farg *a, const struct farg_env *env, struct farg_value *out)
{
	uint64_t v = 0;

	out->u = 0;
	out->str[0] = '\0';
	out->fault = false;
	if (run_ops(a, env, &v))
		goto fault;
	if (a->kind == VAL_STRING_ARR || a->kind == VAL_STRING_PTR) {
		read_string(a, env, v, out);
		return;
	}
	if (a->lvalue) {
		uint64_t raw = 0;

		if (env->read(env->ctx, v, &raw, a->size > 8 ? 8 : a->size))
			goto fault;
		v = raw;
	}
	format_value(a, v, out);
	return;
fault:
	out->fault = true;
	snprintf(out->str, sizeof(out->str), "(fault)");
}

/* ---- filters ------------------------------------------------------------------------------ */

enum cmp_op { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_AND };

struct comparison {
	int field;              /* index into the probe's values, -1: @own */
	struct farg *own;       /* an expression of its own */
	const struct farg *operand; /* the field or @own, NULL: an extra field */
	bool text_operand;      /* (an extra field) is text */
	enum cmp_op op;
	uint64_t value;
	char *text;             /* a string constant, NULL: numeric */
	bool or_before;         /* "||" joins it to the comparison before */
};

struct filter {
	struct comparison *v;
	size_t n;
};

void filter_free(struct filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		farg_free(f->v[i].own);
		free(f->v[i].text);
	}
	free(f->v);
	free(f);
}

static const struct {
	const char *text;
	enum cmp_op op;
} cmp_ops[] = {
	{ "==", CMP_EQ }, { "!=", CMP_NE }, { "<=", CMP_LE }, { ">=", CMP_GE },
	{ "<", CMP_LT },  { ">", CMP_GT },  { "&", CMP_AND },
};

/* Split "LHS OP RHS" at its operator; false if it has none. */
static bool split_comparison(char *s, char **lhs, enum cmp_op *op, char **rhs)
{
	for (char *p = s; *p; p++) {
		if (p[0] == '-' && p[1] == '>') {
			p++;
			continue;
		}
		for (size_t i = 0; i < sizeof(cmp_ops) / sizeof(cmp_ops[0]); i++) {
			size_t n = strlen(cmp_ops[i].text);

			if (!strncmp(p, cmp_ops[i].text, n)) {
				*p = '\0';
				*lhs = s;
				*op = cmp_ops[i].op;
				*rhs = p + n;
				return true;
			}
		}
	}
	return false;
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* The constant: a number, a "string", or a name of the operand's enum. */
static int parse_constant(struct comparison *cmp, const struct farg *operand, const char *rhs, char *err,
			  size_t errlen)
{
	bool text = operand ? farg_out_type(operand) == FARG_OUT_STRING : cmp->text_operand;
	size_t nenums = operand ? operand->nenums : 0;
	char *end;
	size_t len = strlen(rhs);

	if (len >= 2 && rhs[0] == '"' && rhs[len - 1] == '"') {
		if (!text || (cmp->op != CMP_EQ && cmp->op != CMP_NE)) {
			snprintf(err, errlen, "a string compares only with == or != against a string field");
			return -EINVAL;
		}
		cmp->text = strndup(rhs + 1, len - 2);
		return cmp->text ? 0 : -ENOMEM;
	}
	errno = 0;
	cmp->value = rhs[0] == '-' ? (uint64_t)strtoll(rhs, &end, 0) : strtoull(rhs, &end, 0);
	if (*rhs && !*end && !errno)
		return 0;
	for (size_t i = 0; i < nenums; i++)
		if (!strcmp(operand->enums[i].name, rhs)) {
			cmp->value = (uint64_t)operand->enums[i].value;
			return 0;
		}
	snprintf(err, errlen, "'%s' is not a number%s", rhs,
		 nenums ? ", a \"string\" or a name of the field's enum" : " or a \"string\"");
	return -EINVAL;
}

/* What a filter may name: the probe's fields, extra ones, or expressions. */
struct filter_names {
	struct farg *const *fields;
	size_t nfields;
	const struct filter_extra *extra;
};

static bool find_field(struct comparison *cmp, const struct filter_names *fn, const char *lhs)
{
	for (size_t i = 0; i < fn->nfields; i++)
		if (!strcmp(farg_name(fn->fields[i]), lhs)) {
			cmp->field = (int)i;
			cmp->operand = fn->fields[i];
			return true;
		}
	for (size_t i = 0; fn->extra && i < fn->extra->n; i++)
		if (!strcmp(fn->extra->names[i], lhs)) {
			cmp->field = (int)(fn->nfields + i);
			cmp->text_operand = fn->extra->is_text[i];
			return true;
		}
	return false;
}

static int add_comparison(struct filter *f, char *text, bool or_before, const struct filter_names *fn,
			  struct symtab *syms, const struct farg_scope *scope, char *err, size_t errlen)
{
	struct comparison *tmp, *cmp;
	char *lhs, *rhs;
	enum cmp_op op;
	int ret;

	if (!split_comparison(text, &lhs, &op, &rhs)) {
		snprintf(err, errlen, "'%s' is not a comparison (== != < <= > >= &)", trim(text));
		return -EINVAL;
	}
	lhs = trim(lhs);
	rhs = trim(rhs);
	tmp = realloc(f->v, (f->n + 1) * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	f->v = tmp;
	cmp = &f->v[f->n++];
	memset(cmp, 0, sizeof(*cmp));
	cmp->field = -1;
	cmp->op = op;
	cmp->or_before = or_before;
	if (!find_field(cmp, fn, lhs)) {
		if ((ret = farg_compile(&cmp->own, lhs, syms, scope, err, errlen)))
			return ret;
		cmp->operand = cmp->own;
	}
	return parse_constant(cmp, cmp->operand, rhs, err, errlen);
}

int filter_compile(struct filter **out, const char *text, struct farg *const *fields, size_t nfields,
		   const struct filter_extra *extra, struct symtab *syms, const struct farg_scope *scope,
		   char *err, size_t errlen)
{
	const struct filter_names fn = { fields, nfields, extra };
	struct filter *f = calloc(1, sizeof(*f));
	char *copy = strdup(text), *p;
	bool or_before = false;
	int ret = f && copy ? 0 : -ENOMEM;

	for (p = copy; !ret && p;) {
		char *and = strstr(p, "&&"), *or = strstr(p, "||"), *next = NULL;
		bool next_or = false;

		if (and && (!or || and < or)) {
			*and = '\0';
			next = and + 2;
		} else if (or) {
			*or = '\0';
			next = or + 2;
			next_or = true;
		}
		ret = add_comparison(f, p, or_before, &fn, syms, scope, err, errlen);
		or_before = next_or;
		p = next;
	}
	free(copy);
	if (ret) {
		if (ret == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		filter_free(f);
		return ret;
	}
	*out = f;
	return 0;
}

static bool compare(const struct comparison *cmp, const struct farg_value *v)
{
	bool is_signed = cmp->operand &&
			 (farg_out_type(cmp->operand) == FARG_OUT_S64 || cmp->operand->kind == VAL_ENUM);

	if (v->fault)
		return false;
	if (cmp->text)
		return !strcmp(v->str, cmp->text) == (cmp->op == CMP_EQ);
	switch (cmp->op) {
	case CMP_EQ:
		return v->u == cmp->value;
	case CMP_NE:
		return v->u != cmp->value;
	case CMP_AND:
		return (v->u & cmp->value) != 0;
	default:
		break;
	}
	if (is_signed) {
		int64_t a = (int64_t)v->u, b = (int64_t)cmp->value;

		return cmp->op == CMP_LT ? a < b : cmp->op == CMP_LE ? a <= b : cmp->op == CMP_GT ? a > b : a >= b;
	}
	return cmp->op == CMP_LT ? v->u < cmp->value : cmp->op == CMP_LE ? v->u <= cmp->value
		: cmp->op == CMP_GT ? v->u > cmp->value : v->u >= cmp->value;
}

/* Groups of && joined by ||: true when any group has every comparison true. */
size_t filter_exprs(const struct filter *f, const struct farg **out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < f->n && n < max; i++)
		if (f->v[i].own)
			out[n++] = f->v[i].own;
	return n;
}

bool filter_match(const struct filter *f, const struct farg_value *values, const struct farg_env *env)
{
	bool group = true;

	for (size_t i = 0; i < f->n; i++) {
		const struct comparison *cmp = &f->v[i];
		struct farg_value own;
		const struct farg_value *v = &own;

		if (cmp->or_before) {
			if (group)
				return true;
			group = true;
		}
		if (!group)
			continue;
		if (cmp->own)
			farg_eval(cmp->own, env, &own);
		else
			v = &values[cmp->field];
		group = compare(cmp, v);
	}
	return group;
}

bool farg_needs_percpu(const struct farg *a)
{
	for (int i = 0; i < a->nops; i++)
		if (a->ops[i].kind == OP_PERCPU)
			return true;
	return false;
}
