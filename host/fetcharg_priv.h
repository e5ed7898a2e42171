/* SPDX-License-Identifier: MIT */
/*
 * fetcharg_priv: a compiled fetch argument, as fetcharg.c (the compiler)
 * builds it and fetcharg_eval.c runs it. Not for use outside the two.
 */
#ifndef KSTEP_FETCHARG_PRIV_H
#define KSTEP_FETCHARG_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fetcharg.h"

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

#endif
