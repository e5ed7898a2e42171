// SPDX-License-Identifier: MIT
#include "disasm.h"

#include <capstone/capstone.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A frame is set up within the first few instructions (endbr64, push, mov). */
#define PROLOGUE_INSNS 6

struct disasm {
	csh handle;
	cs_insn *insn;
};

int disasm_open(struct disasm **out)
{
	struct disasm *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &d->handle) != CS_ERR_OK) {
		free(d);
		return -ENOTSUP;
	}
	cs_option(d->handle, CS_OPT_SYNTAX, CS_OPT_SYNTAX_ATT);
	cs_option(d->handle, CS_OPT_DETAIL, CS_OPT_ON);
	d->insn = cs_malloc(d->handle);
	if (!d->insn) {
		cs_close(&d->handle);
		free(d);
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

void disasm_close(struct disasm *d)
{
	if (!d)
		return;
	cs_free(d->insn, 1);
	cs_close(&d->handle);
	free(d);
}

static bool decode(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr)
{
	const uint8_t *p = code;
	size_t n = len;
	uint64_t a = addr;

	return cs_disasm_iter(d->handle, &p, &n, &a, d->insn);
}

size_t disasm_one(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr, char *text, size_t textlen)
{
	if (!decode(d, code, len, addr)) {
		snprintf(text, textlen, "(bad)");
		return 0;
	}
	if (d->insn->op_str[0])
		snprintf(text, textlen, "%s %s", d->insn->mnemonic, d->insn->op_str);
	else
		snprintf(text, textlen, "%s", d->insn->mnemonic);
	return d->insn->size;
}

static bool in_group(struct disasm *d, uint8_t group)
{
	return cs_insn_group(d->handle, d->insn, group);
}

bool disasm_is_return(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr)
{
	return decode(d, code, len, addr) && (in_group(d, CS_GRP_RET) || in_group(d, CS_GRP_IRET));
}

bool disasm_is_call(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr)
{
	return decode(d, code, len, addr) && in_group(d, CS_GRP_CALL);
}

enum unwind_entry disasm_frame_state(struct disasm *d, const uint8_t *func_code, size_t len,
				     uint64_t func_addr, uint64_t pc)
{
	const uint8_t *p = func_code;
	size_t n = len;
	uint64_t a = func_addr;
	bool pushed = false;

	for (int i = 0; i < PROLOGUE_INSNS && a <= pc; i++) {
		cs_x86 *x;

		if (!cs_disasm_iter(d->handle, &p, &n, &a, d->insn))
			break;
		x = &d->insn->detail->x86;
		if (d->insn->id == X86_INS_PUSH && x->op_count == 1 && x->operands[0].type == X86_OP_REG &&
		    x->operands[0].reg == X86_REG_RBP) {
			if (pc == d->insn->address)
				return UNWIND_AT_ENTRY;
			pushed = true;
		} else if (pushed && d->insn->id == X86_INS_MOV && x->op_count == 2 &&
			   x->operands[0].type == X86_OP_REG && x->operands[1].type == X86_OP_REG &&
			   x->operands[0].reg == X86_REG_RSP && x->operands[1].reg == X86_REG_RBP) {
			/* AT&T "mov %rsp,%rbp": source first */
			return pc == d->insn->address ? UNWIND_AFTER_PUSH : UNWIND_FRAME_SET;
		}
	}
	/* No frame set up before pc (a leaf without a frame, or pc at entry). */
	if (!pushed)
		return UNWIND_AT_ENTRY;
	return UNWIND_AFTER_PUSH;
}
