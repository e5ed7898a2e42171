// SPDX-License-Identifier: MIT
/*
 * disasm: Capstone in AT&T syntax (see disasm.h), and what kstep asks of an
 * instruction: calls, returns, branches, frame setup, memory operands.
 */
#include "disasm.h"
#include "bigmem.h"
#include "hash.h"

#include <capstone/capstone.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A frame is set up within the first few instructions (endbr64, push, mov). */
#define PROLOGUE_INSNS 6

/* Instructions decoded, remembered by address, with Capstone's detail
 * (about 1.7 KB each): the questions asked of one instruction (its memory
 * operands, branch, flags) decode it once while it stays. */
#define DECODED_SLOTS 8192

/* What a step asks of every instruction it records (text, flow, stack),
 * remembered for far more of them, in 128 bytes each: a million steps
 * of the receive path run through some 50,000 instructions, over and
 * over, and each one missed cost a decode. */
#define KNOWN_SLOTS (1u << 17)
#define KNOWN_TEXT 86

/* Where rsp goes after an instruction (disasm_next_sp's answer): nowhere
 * foreseeable, unchanged, plus an offset, masked, or rbp plus an offset. */
enum sp_rule { SP_UNKNOWN, SP_SAME, SP_ADD, SP_AND, SP_RBP_PLUS };

struct decoded {
	cs_insn *insn;            /* NULL until the slot is first used */
	uint64_t addr;
	uint8_t bytes[16];        /* what it was decoded from */
	bool valid;
};

struct known {
	uint64_t addr;
	uint64_t sp_imm;
	uint8_t bytes[15];        /* what it was decoded from */
	uint8_t size;             /* 0: the slot is empty */
	uint8_t flow;             /* enum disasm_flow */
	uint8_t sp_rule;          /* enum sp_rule */
	bool keeps_stack;
	bool long_text;           /* more than KNOWN_TEXT (AVX-512 forms with masks come to
				   * about 75): decoded again when asked */
	char text[KNOWN_TEXT];
};
#define KNOWN_BYTES (KNOWN_SLOTS * sizeof(struct known))

struct disasm {
	csh handle;
	struct decoded *last;     /* the one decode() answered for */
	cs_insn *insn;            /* last's instruction */
	cs_insn *prologue;        /* disasm_frame_state's own */
	struct known *known;      /* KNOWN_SLOTS of them */
	struct decoded slots[DECODED_SLOTS];
};

int disasm_open(struct disasm **out)
{
	struct disasm *d = calloc(1, sizeof(*d));

	if (!d || !(d->known = bigmem_alloc(KNOWN_BYTES))) {
		free(d);
		return -ENOMEM;
	}
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &d->handle) != CS_ERR_OK) {
		bigmem_free(d->known, KNOWN_BYTES);
		free(d);
		return -ENOTSUP;
	}
	cs_option(d->handle, CS_OPT_SYNTAX, CS_OPT_SYNTAX_ATT);
	cs_option(d->handle, CS_OPT_DETAIL, CS_OPT_ON);
	d->prologue = cs_malloc(d->handle);
	if (!d->prologue) {
		cs_close(&d->handle);
		bigmem_free(d->known, KNOWN_BYTES);
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
	for (size_t i = 0; i < DECODED_SLOTS; i++)
		if (d->slots[i].insn)
			cs_free(d->slots[i].insn, 1);
	cs_free(d->prologue, 1);
	cs_close(&d->handle);
	bigmem_free(d->known, KNOWN_BYTES);
	free(d);
}

void disasm_populate(struct disasm *d)
{
	bigmem_populate(d->known, KNOWN_BYTES);
}

/* The instruction in @code (@len bytes) at @addr into d->insn: from its
 * slot when that holds these bytes, else decoded there. */
static bool decode(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr)
{
	struct decoded *s = &d->slots[hash_slot(addr, DECODED_SLOTS)];
	const uint8_t *p = code;
	size_t n = len;
	uint64_t a = addr;

	d->last = s;
	d->insn = s->insn;
	if (s->valid && addr == s->addr && len >= s->insn->size && !memcmp(code, s->bytes, s->insn->size))
		return true;
	if (!s->insn && !(d->insn = s->insn = cs_malloc(d->handle)))
		return false;
	s->valid = cs_disasm_iter(d->handle, &p, &n, &a, s->insn) && s->insn->size <= sizeof(s->bytes);
	if (s->valid) {
		s->addr = addr;
		memcpy(s->bytes, code, s->insn->size);
	}
	return s->valid;
}

/* "mnemonic operands" of the decoded instruction into @text; false when
 * it was cut to fit. */
static bool format_text(struct disasm *d, char *text, size_t len)
{
	int n = d->insn->op_str[0] ? snprintf(text, len, "%s %s", d->insn->mnemonic, d->insn->op_str)
				   : snprintf(text, len, "%s", d->insn->mnemonic);

	return n >= 0 && (size_t)n < len;
}

bool disasm_mem_operand(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr, struct disasm_mem *m)
{
	const cs_x86 *x;

	if (!decode(d, code, len, addr))
		return false;
	x = &d->insn->detail->x86;
	for (int i = 0; i < x->op_count; i++) {
		const cs_x86_op *op = &x->operands[i];

		if (op->type != X86_OP_MEM || d->insn->id == X86_INS_LEA || d->insn->id == X86_INS_NOP)
			continue;
		snprintf(m->base, sizeof(m->base), "%s",
			 op->mem.base != X86_REG_INVALID ? cs_reg_name(d->handle, op->mem.base) : "");
		snprintf(m->index, sizeof(m->index), "%s",
			 op->mem.index != X86_REG_INVALID ? cs_reg_name(d->handle, op->mem.index) : "");
		m->scale = op->mem.scale;
		m->disp = op->mem.disp;
		return true;
	}
	return false;
}

static bool in_group(struct disasm *d, uint8_t group)
{
	return cs_insn_group(d->handle, d->insn, group);
}

bool disasm_is_return(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr)
{
	enum disasm_flow flow = disasm_flow(d, code, len, addr);

	return flow == DISASM_FLOW_RET || flow == DISASM_FLOW_IRET;
}

static enum disasm_flow flow_of(struct disasm *d)
{
	return in_group(d, CS_GRP_CALL) ? DISASM_FLOW_CALL
	       : in_group(d, CS_GRP_RET) ? DISASM_FLOW_RET
	       : in_group(d, CS_GRP_IRET) ? DISASM_FLOW_IRET : DISASM_FLOW_OTHER;
}

static bool writes_rsp(const cs_regs written, uint8_t nwritten)
{
	for (int i = 0; i < nwritten; i++)
		if (written[i] == X86_REG_RSP || written[i] == X86_REG_ESP || written[i] == X86_REG_SP)
			return true;
	return false;
}

/* Does the decoded instruction write memory one of its operands names? */
static bool stores_to_operand(const cs_x86 *x)
{
	for (int i = 0; i < x->op_count; i++)
		if (x->operands[i].type == X86_OP_MEM && (x->operands[i].access & CS_AC_WRITE))
			return true;
	return false;
}

static bool keeps_stack(struct disasm *d)
{
	cs_regs read, written;
	uint8_t nread, nwritten;
	cs_x86 *x = &d->insn->detail->x86;

	/* Calls, interrupts and string instructions write memory implicitly. */
	if (in_group(d, CS_GRP_CALL) || in_group(d, CS_GRP_INT) || in_group(d, CS_GRP_IRET) || x->prefix[0])
		return false;
	if (stores_to_operand(x))
		return false;
	if (cs_regs_access(d->handle, d->insn, read, &nread, written, &nwritten) || writes_rsp(written, nwritten))
		return false;
	/* Implicit stack writers not caught above (push, enter, ...). */
	switch (d->insn->id) {
	case X86_INS_PUSH: case X86_INS_PUSHFQ: case X86_INS_PUSHAL: case X86_INS_ENTER:
	case X86_INS_MOVSB: case X86_INS_MOVSD: case X86_INS_MOVSQ: case X86_INS_MOVSW:
	case X86_INS_STOSB: case X86_INS_STOSD: case X86_INS_STOSQ: case X86_INS_STOSW:
	case X86_INS_CMPXCHG16B: case X86_INS_XSAVE: case X86_INS_FXSAVE:
		return false;
	default:
		return true;
	}
}

static bool is_reg(const cs_x86_op *op, x86_reg reg)
{
	return op->type == X86_OP_REG && op->reg == reg;
}

/* An instruction whose destination is rsp: how it sets it. */
static enum sp_rule sp_set_rule(struct disasm *d, const cs_x86_op *src, uint64_t *imm)
{
	switch (d->insn->id) {
	case X86_INS_ADD: case X86_INS_SUB: case X86_INS_AND:
		if (src->type != X86_OP_IMM)
			return SP_UNKNOWN;
		*imm = d->insn->id == X86_INS_SUB ? -(uint64_t)src->imm : (uint64_t)src->imm;
		return d->insn->id == X86_INS_AND ? SP_AND : SP_ADD;
	case X86_INS_MOV:
		*imm = 0;
		return is_reg(src, X86_REG_RBP) ? SP_RBP_PLUS : SP_UNKNOWN;
	case X86_INS_LEA:
		if (src->type != X86_OP_MEM || src->mem.index != X86_REG_INVALID ||
		    (src->mem.base != X86_REG_RSP && src->mem.base != X86_REG_RBP))
			return SP_UNKNOWN;
		*imm = (uint64_t)src->mem.disp;
		return src->mem.base == X86_REG_RSP ? SP_ADD : SP_RBP_PLUS;
	default:
		return SP_UNKNOWN;
	}
}

/* How the instruction moves rsp, for disasm_next_sp. */
static enum sp_rule sp_rule_of(struct disasm *d, uint64_t *imm)
{
	cs_regs read, written;
	uint8_t nread, nwritten;
	const cs_x86 *x = &d->insn->detail->x86;
	const cs_x86_op *src = x->op_count > 0 ? &x->operands[0] : NULL;
	const cs_x86_op *dst = x->op_count > 1 ? &x->operands[1] : NULL; /* AT&T: source first */
	bool words = x->prefix[2] == X86_PREFIX_OPSIZE; /* 16-bit pushes and pops move rsp by 2 */

	switch (d->insn->id) {
	case X86_INS_PUSH: case X86_INS_PUSHFQ: case X86_INS_CALL:
		*imm = -8ull;
		return words ? SP_UNKNOWN : SP_ADD;
	case X86_INS_POP:
		if (src && is_reg(src, X86_REG_RSP))
			return SP_UNKNOWN;
		/* fall through */
	case X86_INS_POPFQ:
		*imm = 8;
		return words ? SP_UNKNOWN : SP_ADD;
	case X86_INS_RET:
		*imm = 8 + (src && src->type == X86_OP_IMM ? (uint64_t)src->imm : 0);
		return words ? SP_UNKNOWN : SP_ADD;
	case X86_INS_LEAVE:
		*imm = 8;
		return words ? SP_UNKNOWN : SP_RBP_PLUS;
	default:
		break;
	}
	if (dst && is_reg(dst, X86_REG_RSP))
		return sp_set_rule(d, src, imm);
	/* Anything else that touches rsp, or may leave the function's flow. */
	if (in_group(d, CS_GRP_INT) || in_group(d, CS_GRP_IRET) || d->insn->id == X86_INS_ENTER ||
	    cs_regs_access(d->handle, d->insn, read, &nread, written, &nwritten) || writes_rsp(written, nwritten))
		return SP_UNKNOWN;
	return SP_SAME;
}

/* The instruction's facts and text: from its slot when that holds these
 * bytes, else worked out there. NULL when it does not decode. */
static const struct known *known(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr)
{
	struct known *k = &d->known[hash_slot(addr, KNOWN_SLOTS)];

	if (k->size && k->addr == addr && len >= k->size && !memcmp(code, k->bytes, k->size))
		return k;
	k->size = 0;
	if (!decode(d, code, len, addr) || d->insn->size > sizeof(k->bytes))
		return NULL;
	k->addr = addr;
	memcpy(k->bytes, code, d->insn->size);
	k->flow = (uint8_t)flow_of(d);
	k->keeps_stack = keeps_stack(d);
	k->sp_rule = (uint8_t)sp_rule_of(d, &k->sp_imm);
	k->long_text = !format_text(d, k->text, sizeof(k->text));
	k->size = (uint8_t)d->insn->size;
	return k;
}

bool disasm_warm(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr)
{
	return !d->known[hash_slot(addr, KNOWN_SLOTS)].size && known(d, code, len, addr);
}

void disasm_prefetch(const struct disasm *d, uint64_t addr)
{
	const struct known *k = &d->known[hash_slot(addr, KNOWN_SLOTS)];

	__builtin_prefetch(k);
	__builtin_prefetch((const char *)k + sizeof(*k) - 1);
}

size_t disasm_one(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr, char *text, size_t textlen)
{
	const struct known *k = known(d, code, len, addr);
	size_t n;

	if (!k) {
		snprintf(text, textlen, "(bad)");
		return 0;
	}
	if (k->long_text && decode(d, code, len, addr)) {
		format_text(d, text, textlen);
	} else if (textlen) { /* at every step: a copy, not a format */
		n = strnlen(k->text, textlen - 1);
		memcpy(text, k->text, n);
		text[n] = '\0';
	}
	return k->size;
}

enum disasm_flow disasm_flow(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr)
{
	const struct known *k = known(d, code, len, addr);

	return k ? (enum disasm_flow)k->flow : DISASM_FLOW_OTHER;
}

bool disasm_keeps_stack(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr)
{
	const struct known *k = known(d, code, len, addr);

	return k && k->keeps_stack;
}

size_t disasm_branch(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr, enum disasm_branch *kind,
		     uint64_t *target)
{
	const cs_x86 *x;

	*kind = DISASM_NEXT;
	*target = 0;
	if (!decode(d, code, len, addr))
		return 0;
	x = &d->insn->detail->x86;
	if (x->op_count == 1 && x->operands[0].type == X86_OP_IMM)
		*target = (uint64_t)x->operands[0].imm;
	if (in_group(d, CS_GRP_CALL))
		*kind = DISASM_CALL;
	else if (in_group(d, CS_GRP_RET) || in_group(d, CS_GRP_IRET))
		*kind = DISASM_RETURN;
	else if (in_group(d, CS_GRP_JUMP))
		*kind = d->insn->id == X86_INS_JMP || d->insn->id == X86_INS_LJMP ? DISASM_JUMP : DISASM_COND;
	else if (d->insn->id == X86_INS_UD2 || d->insn->id == X86_INS_INT3 || d->insn->id == X86_INS_HLT)
		*kind = DISASM_STOP;
	if (*kind != DISASM_JUMP && *kind != DISASM_COND && *kind != DISASM_CALL)
		*target = 0;
	return d->insn->size;
}

/* A register's 64-bit name: %eax, %ax, %al are %rax's; %r8d is %r8's. */
static const char *reg64(struct disasm *d, uint16_t reg)
{
	static const struct { x86_reg part, whole; } parts[] = {
		{ X86_REG_EAX, X86_REG_RAX }, { X86_REG_AX, X86_REG_RAX }, { X86_REG_AL, X86_REG_RAX },
		{ X86_REG_AH, X86_REG_RAX },  { X86_REG_EBX, X86_REG_RBX }, { X86_REG_BX, X86_REG_RBX },
		{ X86_REG_BL, X86_REG_RBX },  { X86_REG_BH, X86_REG_RBX }, { X86_REG_ECX, X86_REG_RCX },
		{ X86_REG_CX, X86_REG_RCX },  { X86_REG_CL, X86_REG_RCX }, { X86_REG_CH, X86_REG_RCX },
		{ X86_REG_EDX, X86_REG_RDX }, { X86_REG_DX, X86_REG_RDX }, { X86_REG_DL, X86_REG_RDX },
		{ X86_REG_DH, X86_REG_RDX },  { X86_REG_ESI, X86_REG_RSI }, { X86_REG_SI, X86_REG_RSI },
		{ X86_REG_SIL, X86_REG_RSI }, { X86_REG_EDI, X86_REG_RDI }, { X86_REG_DI, X86_REG_RDI },
		{ X86_REG_DIL, X86_REG_RDI }, { X86_REG_EBP, X86_REG_RBP }, { X86_REG_BP, X86_REG_RBP },
		{ X86_REG_BPL, X86_REG_RBP }, { X86_REG_ESP, X86_REG_RSP }, { X86_REG_SP, X86_REG_RSP },
		{ X86_REG_SPL, X86_REG_RSP },
	};
	const char *name = cs_reg_name(d->handle, reg);

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (parts[i].part == reg)
			return cs_reg_name(d->handle, parts[i].whole);
	/* r8d, r8w, r8b: r8 */
	if (name && name[0] == 'r' && name[1] >= '0' && name[1] <= '9') {
		static char r[8];

		snprintf(r, sizeof(r), "%.*s", (int)strspn(name + 1, "0123456789") + 1, name);
		return r;
	}
	return name ? name : "";
}

bool disasm_sets_flags(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr, char regs[][8], size_t max,
		       size_t *nregs)
{
	const uint64_t arith = X86_EFLAGS_MODIFY_ZF | X86_EFLAGS_MODIFY_CF | X86_EFLAGS_MODIFY_SF |
			       X86_EFLAGS_MODIFY_OF | X86_EFLAGS_RESET_CF | X86_EFLAGS_RESET_OF;
	cs_regs read, written;
	uint8_t nread, nwritten;

	*nregs = 0;
	if (!decode(d, code, len, addr) || !(d->insn->detail->x86.eflags & arith) ||
	    cs_regs_access(d->handle, d->insn, read, &nread, written, &nwritten))
		return false;
	for (int i = 0; i < nread && *nregs < max; i++) {
		const char *r = reg64(d, read[i]);

		if (strcmp(r, "rflags") && strcmp(r, "rip") && *r)
			snprintf(regs[(*nregs)++], 8, "%s", r);
	}
	return true;
}

/* The 64-bit general registers, in disasm_gprs_written's bit order. */
static const char *const gpr_names[DISASM_NGPRS] = {
	"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
};

const char *disasm_gpr_name(unsigned int i)
{
	return i < DISASM_NGPRS ? gpr_names[i] : NULL;
}

/* Instructions whose register writes Capstone 4 lists in full. Not all
 * are: it leaves out cmpxchg's rax, xlat's al, enter's rsp and rbp, and
 * cli's and sti's flags. */
static bool writes_listed(struct disasm *d)
{
	switch (d->insn->id) {
	case X86_INS_MOV: case X86_INS_MOVABS: case X86_INS_MOVZX: case X86_INS_MOVSX: case X86_INS_MOVSXD:
	case X86_INS_LEA: case X86_INS_ADD: case X86_INS_SUB: case X86_INS_AND: case X86_INS_OR: case X86_INS_XOR:
	case X86_INS_ADC: case X86_INS_SBB: case X86_INS_INC: case X86_INS_DEC: case X86_INS_NEG: case X86_INS_NOT:
	case X86_INS_SHL: case X86_INS_SAL: case X86_INS_SHR: case X86_INS_SAR: case X86_INS_ROL: case X86_INS_ROR:
	case X86_INS_TEST: case X86_INS_CMP: case X86_INS_PUSH: case X86_INS_POP: case X86_INS_LEAVE:
	case X86_INS_XCHG: case X86_INS_XADD: case X86_INS_BSWAP: case X86_INS_IMUL: case X86_INS_MUL:
	case X86_INS_BT: case X86_INS_BTS: case X86_INS_BTR: case X86_INS_BTC: case X86_INS_NOP: case X86_INS_PAUSE:
	case X86_INS_ENDBR64: case X86_INS_CDQE: case X86_INS_CQO: case X86_INS_CDQ: case X86_INS_CWDE:
		return true;
	default:
		/* Jumps, calls, returns, cmovcc and setcc. */
		return ((in_group(d, CS_GRP_JUMP) || in_group(d, CS_GRP_CALL) || in_group(d, CS_GRP_RET)) &&
			!in_group(d, CS_GRP_IRET) && d->insn->id != X86_INS_LJMP && d->insn->id != X86_INS_LCALL) ||
		       !strncmp(d->insn->mnemonic, "cmov", 4) || !strncmp(d->insn->mnemonic, "set", 3);
	}
}

bool disasm_gprs_written(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr, uint16_t *gprs,
			 bool *flags)
{
	const uint64_t tests = X86_EFLAGS_TEST_OF | X86_EFLAGS_TEST_SF | X86_EFLAGS_TEST_ZF | X86_EFLAGS_TEST_PF |
			       X86_EFLAGS_TEST_CF | X86_EFLAGS_TEST_NT | X86_EFLAGS_TEST_DF | X86_EFLAGS_TEST_RF |
			       X86_EFLAGS_TEST_IF | X86_EFLAGS_TEST_TF | X86_EFLAGS_TEST_AF;
	cs_regs read, written;
	uint8_t nread, nwritten;

	if (!decode(d, code, len, addr) || !writes_listed(d) ||
	    cs_regs_access(d->handle, d->insn, read, &nread, written, &nwritten))
		return false;
	*gprs = 0;
	*flags = (d->insn->detail->x86.eflags & ~tests) != 0;
	for (int i = 0; i < nwritten; i++) {
		const char *name = reg64(d, written[i]);

		*flags |= written[i] == X86_REG_EFLAGS;
		for (unsigned int k = 0; k < DISASM_NGPRS; k++)
			if (!strcmp(name, gpr_names[k]))
				*gprs |= (uint16_t)(1u << k);
	}
	return true;
}

bool disasm_writes_memory(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr)
{
	return !decode(d, code, len, addr) || stores_to_operand(&d->insn->detail->x86);
}

bool disasm_writes_reg(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr, const char *reg)
{
	cs_regs read, written;
	uint8_t nread, nwritten;

	if (!decode(d, code, len, addr) || cs_regs_access(d->handle, d->insn, read, &nread, written, &nwritten))
		return false;
	for (int i = 0; i < nwritten; i++)
		if (!strcmp(reg64(d, written[i]), reg))
			return true;
	return false;
}

bool disasm_next_sp(struct disasm *d, const uint8_t *code, size_t len, uint64_t addr, uint64_t sp, uint64_t rbp,
		    uint64_t *next)
{
	const struct known *k = known(d, code, len, addr);

	switch (k ? k->sp_rule : SP_UNKNOWN) {
	case SP_SAME:
		*next = sp;
		return true;
	case SP_ADD:
		*next = sp + k->sp_imm;
		return true;
	case SP_AND:
		*next = sp & k->sp_imm;
		return true;
	case SP_RBP_PLUS:
		*next = rbp + k->sp_imm;
		return true;
	default:
		return false;
	}
}

enum unwind_entry disasm_frame_state(struct disasm *d, const uint8_t *func_code, size_t len,
				     uint64_t func_addr, uint64_t pc)
{
	const uint8_t *p = func_code;
	size_t n = len;
	uint64_t a = func_addr;
	bool pushed = false;

	for (int i = 0; i < PROLOGUE_INSNS && a <= pc; i++) {
		const cs_insn *insn = d->prologue;
		const cs_x86 *x;

		if (!cs_disasm_iter(d->handle, &p, &n, &a, d->prologue))
			break;
		x = &insn->detail->x86;
		if (insn->id == X86_INS_PUSH && x->op_count == 1 && x->operands[0].type == X86_OP_REG &&
		    x->operands[0].reg == X86_REG_RBP) {
			if (pc == insn->address)
				return UNWIND_AT_ENTRY;
			pushed = true;
		} else if (pushed && insn->id == X86_INS_MOV && x->op_count == 2 &&
			   x->operands[0].type == X86_OP_REG && x->operands[1].type == X86_OP_REG &&
			   x->operands[0].reg == X86_REG_RSP && x->operands[1].reg == X86_REG_RBP) {
			/* AT&T "mov %rsp,%rbp": source first */
			return pc == insn->address ? UNWIND_AFTER_PUSH : UNWIND_FRAME_SET;
		}
	}
	/* No frame set up before pc (a leaf without a frame, or pc at entry). */
	if (!pushed)
		return UNWIND_AT_ENTRY;
	return UNWIND_AFTER_PUSH;
}
