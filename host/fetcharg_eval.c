// SPDX-License-Identifier: MIT
/*
 * fetcharg_eval: a compiled fetch argument run at a hit: its program over
 * the hit's registers and memory, the value read and formatted (see
 * fetcharg.h); and the program handed out as steps for kstep's plugin.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "fetcharg_priv.h"

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
