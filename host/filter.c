// SPDX-License-Identifier: MIT
/*
 * filter: a probe's --filter compiled against its fields (fetcharg) and
 * run on each hit's fetched values (see filter.h).
 */
#include "filter.h"
#include "kerr.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	bool enums = operand && farg_has_enum(operand);
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
	if (enums && farg_enum_value(operand, rhs, &cmp->value))
		return 0;
	snprintf(err, errlen, "'%s' is not a number%s", rhs,
		 enums ? ", a \"string\" or a name of the field's enum" : " or a \"string\"");
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

	if (!split_comparison(text, &lhs, &op, &rhs))
		return kerr_set(err, errlen, -EINVAL, "'%s' is not a comparison (== != < <= > >= &)", trim(text));
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
	bool is_signed = cmp->operand && farg_is_signed(cmp->operand);

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
