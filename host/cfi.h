/* SPDX-License-Identifier: MIT */
/*
 * cfi: backtraces from the call frame information in vmlinux's debug info
 * (.debug_frame / .eh_frame), with libdwfl's unwinder, as eu-stack uses it:
 * kstep's memory is the "process" and the snapshot's registers its only
 * thread. Needs no frame pointers, so it works on kernels built with ORC.
 * A KASLR-moved kernel is reported at its running address (libdwfl then
 * treats the ET_EXEC vmlinux as relocatable).
 */
#ifndef KSTEP_CFI_H
#define KSTEP_CFI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kmod.h"
#include "unwind.h"

/* x86-64 DWARF register numbers: rax rdx rcx rbx rsi rdi rbp rsp r8-r15 rip. */
#define CFI_NREGS 17

struct cfi;

/* -ENOENT (with @err) when @vmlinux has no call frame information. */
int cfi_new(struct cfi **out, const char *vmlinux, char *err, size_t errlen);
void cfi_free(struct cfi *c);
/* The guest's modules (kmods_list): those with debug info join the
 * address space at their running addresses. @mods must stay valid until
 * the next call. */
int cfi_set_modules(struct cfi *c, const struct kmod *mods, size_t n);
/* In a known module's code? */
bool cfi_module_text(const struct cfi *c, uint64_t addr);
/* "fn+0xoff [module]" and "file:line" of a module address (a return
 * address: the line of the call); false outside modules. */
bool cfi_describe(struct cfi *c, uint64_t addr, bool is_return, char *name, size_t nlen, char *src, size_t slen);
/* The name of the module function at @addr (stable until the modules
 * change), NULL outside modules. */
const char *cfi_function(struct cfi *c, uint64_t addr);
/* Is @pc in one of vmlinux's asm_* entries (an interrupt's or exception's
 * code before its C handler)? Its symbol as libdwfl would name it. */
bool cfi_in_asm_entry(struct cfi *c, uint64_t pc);
/* Has the code at @addr call frame information (the assembly that has
 * none is walked past by frame pointers)? */
bool cfi_covers(struct cfi *c, uint64_t addr);
/* Index all of vmlinux's call frame information now, and read its
 * symbol table into libdwfl. libdw indexes the frames only as far as a
 * lookup needs, so the first walks paid for it: 10 to 15 ms at a step
 * run's first instruction, whose stack goes down to the idle task. */
void cfi_warm(struct cfi *c);
/* A function of @module where it runs; -ENOENT if not (yet) known. */
int cfi_lookup(struct cfi *c, const char *module, const char *symbol, uint64_t *addr);
/* KASLR: the kernel runs @offset above its link address. */
int cfi_relocate(struct cfi *c, uint64_t offset);
/*
 * Unwind from @regs (DWARF order) reading memory through @read. Fills @pcs
 * with the pc and each return address, up to @max. *end: UNWIND_END_BOTTOM
 * (the CFI says this is the outermost frame, or a return address of 0),
 * UNWIND_END_MAX, UNWIND_END_NOTTEXT (a return address @is_text refuses),
 * UNWIND_END_NOCFI (code without call frame information: assembly, a
 * module), or UNWIND_END_BADPTR (memory it needed could not be read).
 * @read_code reads the kernel's code (a cache that lives across stops: it
 * is asked at every frame whether the return lands on a stack switch).
 */
size_t cfi_unwind(struct cfi *c, const uint64_t regs[CFI_NREGS], uint64_t *pcs, size_t max,
		  unwind_read_fn read, unwind_read_fn read_code, unwind_text_fn is_text, void *ctx,
		  enum unwind_end *end);
/* The same walk by libdwfl's unwinder alone, every row looked up afresh
 * (cfi_unwind keeps the simple rows it met): what --unwind check compares
 * cfi_unwind's walks with. */
size_t cfi_unwind_libdwfl(struct cfi *c, const uint64_t regs[CFI_NREGS], uint64_t *pcs, size_t max,
			  unwind_read_fn read, unwind_read_fn read_code, unwind_text_fn is_text, void *ctx,
			  enum unwind_end *end);

#endif
