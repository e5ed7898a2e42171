/* SPDX-License-Identifier: MIT */
/*
 * fetcharg: what a probe fetches at each hit and the filter that decides
 * whether the hit is kept, in the spirit of perf probe and kprobe events:
 *
 *   NAME=EXPR[:TYPE]      a named field (NAME defaults to the expression)
 *   EXPR  := PARAM | $argN | $retval | $current | $comm | %REG
 *            | [+-]OFF(EXPR)            (kprobe style: the memory at EXPR+OFF)
 *            | EXPR->MEMBER | EXPR.MEMBER | EXPR[INDEX]
 *   TYPE  := u8..u64 s8..s64 x8..x64 string ip4 be16 be32 symbol
 *
 * Expressions are compiled once against vmlinux's DWARF at the probe's
 * address (parameter locations, struct layouts, enum names); a bad one is
 * refused with the reason before the guest runs. A compiled expression is a
 * short program of register reads, offsets and loads, run at every hit
 * against the registers and guest memory.
 */
#ifndef KSTEP_FETCHARG_H
#define KSTEP_FETCHARG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfi.h"
#include "symbols.h"

/* How a value is recorded: the CTF field type it gets. */
enum farg_out { FARG_OUT_U64, FARG_OUT_S64, FARG_OUT_X64, FARG_OUT_STRING };

/* What a probe is, for what its expressions may use. */
struct farg_scope {
	uint64_t addr;        /* where the probe is (running address) */
	bool at_entry;        /* the function's first instruction: the ABI holds */
	bool at_return;       /* a return probe: only $retval, registers, globals */
	uint64_t func;        /* the function (running address) */
};

struct farg;              /* one compiled field */

/* Compile "NAME=EXPR[:TYPE]" for a probe at @scope. -EINVAL with the reason in @err. */
int farg_compile(struct farg **out, const char *text, struct symtab *syms, const struct farg_scope *scope,
		 char *err, size_t errlen);
void farg_free(struct farg *a);
const char *farg_name(const struct farg *a);
/* Does the field read per-CPU data ($current, $comm, a per-CPU variable)?
 * It needs the per-CPU base, which not every stub sends (kgdb does not). */
bool farg_needs_percpu(const struct farg *a);
enum farg_out farg_out_type(const struct farg *a);

/* What evaluation reads: registers in DWARF numbering (cfi.h), the per-CPU
 * base (gs_base) for $current, and guest memory. */
struct farg_env {
	const uint64_t *regs;      /* CFI_NREGS values */
	uint64_t percpu_base;
	int (*read)(void *ctx, uint64_t addr, void *out, size_t len);
	void *ctx;
};

/* A fetched value: an integer, or text (strings, enum names, addresses,
 * a packet's header bytes in hex: up to 256 of them). A string read from
 * the guest is cut at FARG_STRING_READ bytes. */
#define FARG_STR_MAX 528
#define FARG_STRING_READ 95
struct farg_value {
	uint64_t u;
	char str[FARG_STR_MAX];
	bool fault;               /* memory it needed could not be read */
};

void farg_eval(const struct farg *a, const struct farg_env *env, struct farg_value *out);
/* Where in memory the expression's value is (skb->len: &skb->len) and its
 * size, up to 8 bytes; -EINVAL if it is not in memory (a register, an
 * argument held in one, a constant), -EFAULT if reaching it faults. */
int farg_location(const struct farg *a, const struct farg_env *env, uint64_t *addr, size_t *size);
/* Does the expression name a place in memory (farg_location can say where)? */
bool farg_in_memory(const struct farg *a);

/*
 * A compiled expression's program, for an evaluator elsewhere (kstep's
 * QEMU plugin runs it at each hit and sends the memory it read, which
 * farg_eval then reads as it would the guest's): its steps, and what is
 * read where they end: @final bytes (0: nothing, the value is the
 * result), or with @string a string of up to @final bytes, not past its
 * page. farg_steps returns how many steps, 0 if more than @max.
 */
enum farg_step_kind { FARG_STEP_REG, FARG_STEP_PERCPU, FARG_STEP_CONST, FARG_STEP_ADD, FARG_STEP_LOAD };
struct farg_step {
	enum farg_step_kind kind;
	int64_t imm;              /* REG: DWARF register number; LOAD: none */
};
size_t farg_steps(const struct farg *a, struct farg_step *out, size_t max, size_t *final, bool *string);

/* @name among the enumerators of @a's enum type: its value in *@value. */
bool farg_enum_value(const struct farg *a, const char *name, uint64_t *value);
/* Whether @a's type is an enum (whose names a filter may compare with). */
bool farg_has_enum(const struct farg *a);
/* Whether @a's value compares as signed (a signed integer or an enum). */
bool farg_is_signed(const struct farg *a);

#endif
