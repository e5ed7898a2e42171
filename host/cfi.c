// SPDX-License-Identifier: MIT
/*
 * cfi: libdwfl's DWARF unwinder over kstep's view of guest memory (see
 * cfi.h). The Dwfl holds vmlinux as one module at its running address and
 * one thread whose registers are those of the snapshot being taken.
 */
#include "cfi.h"

#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "files.h"
#include "kerr.h"

/* What libdwfl's callbacks get for each module they ask about. */
struct cfi_mod {
	struct cfi *c;
	const struct kmod *km;   /* NULL: vmlinux */
	Dwfl_Module *mod;
	/* Its .eh_frame and .debug_frame, each looked up once: libdwfl looks
	 * again at every call while there is none, through every section. */
	struct mod_frames {
		bool looked;
		Dwarf_CFI *cfi;   /* NULL: none */
		Dwarf_Addr bias;
	} eh, debug;
};

#define FUNCTION_CACHE 4096
#define RULE_CACHE 4096

/* How a frame's caller gets a register back, as the frame's CFI row says. */
enum rule_kind {
	RULE_SAME,     /* unchanged */
	RULE_UNDEF,    /* lost (call-clobbered) */
	RULE_AT,       /* saved in memory at base + off */
	RULE_VAL,      /* base + off itself (rsp) */
};

#define BASE_CFA 0xff    /* a rule's base: the CFA, or a register of the frame */

/* One CFI row, kept when it is of the simple kind compilers write: the
 * CFA a register plus an offset (or the word there, where a function
 * realigns its stack), each register one of enum rule_kind.
 * libdwfl looks the row up again at every frame of every walk, and on a
 * vmlinux without .eh_frame first scans every section for one each time
 * (dwfl_module_eh_cfi does not remember that there is none); this cache
 * is what makes a walk cheap. Other rows go to libdwfl's own walk. */
struct cfi_rule {
	uint64_t at;             /* the address looked up; 0: empty slot */
	enum { ROW_SIMPLE, ROW_NONE, ROW_OTHER } row; /* ROW_NONE: no CFI there */
	uint8_t cfa_reg;
	bool cfa_deref;
	int32_t cfa_off;
	uint8_t kind[CFI_NREGS];
	uint8_t base[CFI_NREGS];  /* BASE_CFA or a register */
	int32_t off[CFI_NREGS];
};

/* A symbol of vmlinux's entry text: where it starts and ends (end == addr:
 * no size), and whether it is an asm_* entry. */
struct entry_sym {
	uint64_t addr, end;
	bool asm_entry;
};

struct cfi {
	char *path;
	Dwfl *dwfl;
	bool attached;           /* dwfl whole: reported, the thread attached */
	struct cfi_mod vmlinux;
	struct cfi_mod *mods;    /* the guest's modules with debug info */
	size_t nmods;
	uint64_t lo, hi;          /* vmlinux's loaded range at its link address */
	uint64_t offset;
	/* the unwind under way */
	const uint64_t *regs;
	unwind_read_fn read, read_code;
	unwind_text_fn is_text;
	void *ctx;
	uint64_t *pcs;
	size_t n, max;
	bool read_failed;        /* the unwinder asked for memory it could not have */
	bool reached_end;        /* a return address of 0 ended the chain */
	bool left_text;          /* a return address outside the kernel's text */
	uint64_t last_sp;        /* rsp of the last frame recorded */
	bool switched;           /* the frame just recorded returns onto another stack ... */
	uint64_t resume[CFI_NREGS]; /* ... from where the walk goes on */
	bool record_first;       /* ... whose first frame is a new one (an interrupted pc) */
	int switches;
	uint64_t entry_lo, entry_hi; /* vmlinux's .entry.text: the asm_* entries */
	struct entry_sym *entry_syms; /* its symbols by address (libdwfl's lookup */
	size_t nentry_syms;           /* scans the whole table: ~0.5 ms each) */
	/* Functions by address, vmlinux's and the modules': libdwfl finds each
	 * by a scan of the symbol table, and backtraces ask about the same
	 * addresses again and again (a step trace at every instruction). */
	struct {
		uint64_t addr;   /* 0: empty */
		const char *fn;  /* NULL: in no function */
		GElf_Off off;
	} functions[FUNCTION_CACHE];
	struct cfi_rule rules[RULE_CACHE];
	bool rules_off;          /* libdwfl's walk alone (cfi_unwind_libdwfl) */
};

/* DWARF register numbers (x86-64 psABI) and the instruction that ends the
 * kernel's call_on_stack(): "movq %rsp, (tos); movq tos, %rsp; call func;
 * popq %rsp" (arch/x86/include/asm/irq_stack.h). A call made that way
 * returns to a "popq %rsp" with rsp at the top of the IRQ stack, where the
 * task stack's rsp is saved: the compiler's CFI for the caller knows
 * nothing of the switch, so the walk restarts there with that rsp. */
#define DWARF_RBP 6
#define DWARF_RSP 7
#define DWARF_RIP 16
#define POP_RSP 0x5c
#define MAX_STACK_SWITCHES 3
/* The bottom of a task's kernel stack: its pt_regs (21 words) at the top of
 * the THREAD_SIZE-aligned 16 KiB stack. A walk that reaches a frame whose
 * rsp is there (entry_SYSCALL_64 after do_syscall_64, ret_from_fork after a
 * kernel thread's function) has reached the stack's end: past it is user
 * space or nothing, which the kernel's own unwinder also stops at. */
#define KERNEL_STACK_SIZE 16384ull
#define PT_REGS_SIZE (PT_REGS_WORDS * 8)

static int find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base, char **file_name,
		    Elf **elfp)
{
	struct cfi_mod *m = *userdata;
	const char *path = m->km ? m->km->path : m->c->path;

	(void)mod;
	(void)name;
	(void)base;
	*elfp = NULL;
	*file_name = strdup(path);
	return files_open_regular(path); /* Dwfl owns it */
}

/* A module's sections are where the guest's section attributes say. */
static int section_address(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
			   const char *secname, GElf_Word shndx, const GElf_Shdr *shdr, Dwarf_Addr *addr)
{
	struct cfi_mod *m = *userdata;

	(void)mod;
	(void)modname;
	(void)base;
	(void)shndx;
	(void)shdr;
	*addr = (Dwarf_Addr)-1; /* not loaded (.init freed, or not listed) */
	for (size_t i = 0; m->km && i < m->km->nsects; i++)
		if (!strcmp(m->km->sects[i].name, secname))
			*addr = m->km->sects[i].addr;
	return 0;
}

static const Dwfl_Callbacks callbacks = {
	.find_elf = find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.section_address = section_address,
};

/* One thread, tid 1: the snapshot's registers. */
static pid_t next_thread(Dwfl *dwfl, void *arg, void **thread_argp)
{
	(void)dwfl;
	if (*thread_argp)
		return 0;
	*thread_argp = arg;
	return 1;
}

static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	struct cfi *c = arg;
	uint64_t v;

	(void)dwfl;
	if (c->read(c->ctx, addr, &v, sizeof(v))) {
		c->read_failed = true;
		return false;
	}
	*result = v;
	return true;
}

static bool set_initial_registers(Dwfl_Thread *thread, void *arg)
{
	struct cfi *c = arg;

	/* Register 16 is the return-address column, which is the pc here. */
	return dwfl_thread_state_registers(thread, 0, CFI_NREGS, c->regs);
}

static const Dwfl_Thread_Callbacks thread_callbacks = {
	.next_thread = next_thread,
	.memory_read = memory_read,
	.set_initial_registers = set_initial_registers,
};

/* vmlinux's range at its link address, from its loadable segments. */
static int load_range(struct cfi *c, bool *has_cfi, char *err, size_t errlen)
{
	int fd = files_open_regular(c->path), ret = 0;
	Elf *elf = fd < 0 ? NULL : elf_begin(fd, ELF_C_READ, NULL);
	Elf_Scn *scn = NULL;
	size_t nph = 0, shstrndx;

	*has_cfi = false;
	c->lo = UINT64_MAX;
	c->hi = 0;
	if (!elf || elf_getphdrnum(elf, &nph) || elf_getshdrstrndx(elf, &shstrndx)) {
		snprintf(err, errlen, "cannot read %s as ELF", c->path);
		ret = -ENOEXEC;
		goto out;
	}
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;

		/* x86-64 links the per-CPU segment at virtual address 0: it is
		 * not where the kernel's code is. */
		if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD && ph.p_vaddr) {
			c->lo = ph.p_vaddr < c->lo ? ph.p_vaddr : c->lo;
			c->hi = ph.p_vaddr + ph.p_memsz > c->hi ? ph.p_vaddr + ph.p_memsz : c->hi;
		}
	}
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		const char *name = gelf_getshdr(scn, &sh) ? elf_strptr(elf, shstrndx, sh.sh_name) : NULL;

		if (name && (!strcmp(name, ".debug_frame") || !strcmp(name, ".eh_frame")))
			*has_cfi = true;
	}
	if (!*has_cfi || c->lo >= c->hi) {
		snprintf(err, errlen, "%s has no call frame information (.debug_frame or .eh_frame)", c->path);
		ret = -ENOENT;
	}
out:
	if (elf)
		elf_end(elf);
	if (fd >= 0)
		close(fd);
	return ret;
}

static Dwfl_Module *report(struct cfi *c, struct cfi_mod *m, const char *name, uint64_t lo, uint64_t hi)
{
	Dwfl_Module *mod = dwfl_report_module(c->dwfl, name, lo, hi);
	void **userdata;

	if (mod) {
		dwfl_module_info(mod, &userdata, NULL, NULL, NULL, NULL, NULL, NULL);
		*userdata = m;
	}
	return mod;
}

static int by_entry_addr(const void *a, const void *b)
{
	const struct entry_sym *x = a, *y = b;

	return (x->addr > y->addr) - (x->addr < y->addr);
}

/* The symbols between entry_lo and entry_hi, sorted. Left empty when
 * memory runs out: cfi_in_asm_entry then asks libdwfl. */
static void index_entry_text(struct cfi *c)
{
	int n = dwfl_module_getsymtab(c->vmlinux.mod);
	size_t cap = 0;
	GElf_Addr value;
	GElf_Sym sym;

	free(c->entry_syms);
	c->entry_syms = NULL;
	c->nentry_syms = 0;
	for (int i = 0; i < n; i++) {
		const char *name = dwfl_module_getsym_info(c->vmlinux.mod, i, &sym, &value, NULL, NULL, NULL);

		if (!name || !*name || value < c->entry_lo || value >= c->entry_hi)
			continue;
		if (c->nentry_syms == cap) {
			struct entry_sym *v = realloc(c->entry_syms, (cap = cap ? 2 * cap : 64) * sizeof(*v));

			if (!v) {
				free(c->entry_syms);
				c->entry_syms = NULL;
				c->nentry_syms = 0;
				return;
			}
			c->entry_syms = v;
		}
		c->entry_syms[c->nentry_syms++] =
			(struct entry_sym){ value, value + sym.st_size, !strncmp(name, "asm_", 4) };
	}
	qsort(c->entry_syms, c->nentry_syms, sizeof(*c->entry_syms), by_entry_addr);
}

/* Where vmlinux's entry code runs (0, 0: not found), and its symbols. */
static void find_entry_text(struct cfi *c)
{
	int n = dwfl_module_getsymtab(c->vmlinux.mod);
	GElf_Addr value;
	GElf_Sym sym;

	c->entry_lo = c->entry_hi = 0;
	/* The linker script puts .entry.text inside .text, between these. */
	for (int i = 0; i < n && !(c->entry_lo && c->entry_hi); i++) {
		const char *name = dwfl_module_getsym_info(c->vmlinux.mod, i, &sym, &value, NULL, NULL, NULL);

		if (name && !strcmp(name, "__entry_text_start"))
			c->entry_lo = value;
		else if (name && !strcmp(name, "__entry_text_end"))
			c->entry_hi = value;
	}
	if (c->entry_hi <= c->entry_lo)
		c->entry_lo = c->entry_hi = 0; /* not found: every address is asked about */
	index_entry_text(c);
}

/* vmlinux at lo + offset and the modules where they run, reported to
 * c->dwfl. libdwfl keeps a module reported again where it was with what
 * it has read of it (the frames' index, the sorted symbols): a module
 * loaded in the guest does not make vmlinux's be read again. */
static int report_all(struct cfi *c)
{
	dwfl_report_begin(c->dwfl);
	memset(c->functions, 0, sizeof(c->functions)); /* names in modules that may be gone */
	memset(c->rules, 0, sizeof(c->rules));         /* rows at the old addresses */
	c->vmlinux = (struct cfi_mod){ .c = c };
	c->vmlinux.mod = report(c, &c->vmlinux, "kernel", c->lo + c->offset, c->hi + c->offset);
	for (size_t i = 0; i < c->nmods; i++)
		c->mods[i].mod = report(c, &c->mods[i], c->mods[i].km->name, c->mods[i].km->base,
					c->mods[i].km->base + c->mods[i].km->size);
	dwfl_report_end(c->dwfl, NULL, NULL);
	return c->vmlinux.mod ? 0 : -EINVAL;
}

/* A new Dwfl, everything reported and the one thread attached. */
static int open_dwfl(struct cfi *c)
{
	int err;

	if (c->dwfl)
		dwfl_end(c->dwfl);
	c->attached = false;
	c->dwfl = dwfl_begin(&callbacks);
	if (!c->dwfl)
		return -ENOMEM;
	if ((err = report_all(c)))
		return err;
	if (!dwfl_attach_state(c->dwfl, NULL, 1, &thread_callbacks, c))
		return -EINVAL;
	c->attached = true;
	find_entry_text(c);
	return 0;
}

int cfi_set_modules(struct cfi *c, const struct kmod *mods, size_t n)
{
	struct cfi_mod *v = calloc(n ? n : 1, sizeof(*v));
	size_t k = 0;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (mods[i].path[0] && mods[i].size)
			v[k++] = (struct cfi_mod){ .c = c, .km = &mods[i] };
	free(c->mods);
	c->mods = v;
	c->nmods = k;
	return c->attached ? report_all(c) : open_dwfl(c);
}

static const struct cfi_mod *module_at(const struct cfi *c, uint64_t addr)
{
	for (size_t i = 0; i < c->nmods; i++)
		if (addr >= c->mods[i].km->base && addr < c->mods[i].km->base + c->mods[i].km->text_size)
			return &c->mods[i];
	return NULL;
}

bool cfi_module_text(const struct cfi *c, uint64_t addr)
{
	return module_at(c, addr) != NULL;
}

/* The function at @addr in @m (vmlinux or the module it is in), and
 * @addr's offset in it. */
static const char *function_at(struct cfi *c, const struct cfi_mod *m, uint64_t addr, GElf_Off *off)
{
	typeof(c->functions[0]) *slot = &c->functions[(addr ^ addr >> 12) % FUNCTION_CACHE];
	GElf_Sym sym;

	if (slot->addr != addr) {
		slot->addr = addr;
		slot->off = 0;
		slot->fn = dwfl_module_addrinfo(m->mod, addr, &slot->off, &sym, NULL, NULL, NULL);
	}
	*off = slot->off;
	return slot->fn;
}

bool cfi_describe(struct cfi *c, uint64_t addr, bool is_return, char *name, size_t nlen, char *src, size_t slen)
{
	uint64_t at = is_return ? addr - 1 : addr; /* a return address: the call's line */
	const struct cfi_mod *m = module_at(c, at);
	GElf_Off off;
	const char *fn = m && m->mod ? function_at(c, m, at, &off) : NULL;
	Dwfl_Line *line = fn ? dwfl_module_getsrc(m->mod, at) : NULL;
	const char *file;
	int lineno = 0;

	if (!fn)
		return false;
	off += at != addr;
	if (off)
		snprintf(name, nlen, "%s+0x%" PRIx64 " [%s]", fn, (uint64_t)off, m->km->name);
	else
		snprintf(name, nlen, "%s [%s]", fn, m->km->name);
	file = line ? dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL) : NULL;
	if (file)
		snprintf(src, slen, "%s:%d", file, lineno);
	else if (slen)
		src[0] = '\0';
	return true;
}

const char *cfi_function(struct cfi *c, uint64_t addr)
{
	const struct cfi_mod *m = module_at(c, addr);
	GElf_Off off;

	return m && m->mod ? function_at(c, m, addr, &off) : NULL;
}

int cfi_lookup(struct cfi *c, const char *module, const char *symbol, uint64_t *addr)
{
	for (size_t i = 0; i < c->nmods; i++) {
		Dwfl_Module *mod = c->mods[i].mod;
		int n = mod && !strcmp(c->mods[i].km->name, module) ? dwfl_module_getsymtab(mod) : 0;

		for (int k = 1; k < n; k++) {
			GElf_Sym sym;
			GElf_Addr value;
			const char *name = dwfl_module_getsym_info(mod, k, &sym, &value, NULL, NULL, NULL);

			if (name && GELF_ST_TYPE(sym.st_info) == STT_FUNC && !strcmp(name, symbol)) {
				*addr = value;
				return 0;
			}
		}
	}
	return -ENOENT;
}

int cfi_new(struct cfi **out, const char *vmlinux, char *err, size_t errlen)
{
	struct cfi *c = calloc(1, sizeof(*c));
	bool has_cfi;
	int ret;

	if (!c || !(c->path = strdup(vmlinux))) {
		free(c);
		return kerr_set(err, errlen, -ENOMEM, "out of memory");
	}
	elf_version(EV_CURRENT);
	ret = load_range(c, &has_cfi, err, errlen);
	if (!ret && (ret = open_dwfl(c)))
		snprintf(err, errlen, "libdwfl cannot unwind %s: %s", vmlinux, dwfl_errmsg(-1));
	if (ret) {
		cfi_free(c);
		return ret;
	}
	*out = c;
	return 0;
}

void cfi_free(struct cfi *c)
{
	if (!c)
		return;
	if (c->dwfl)
		dwfl_end(c->dwfl);
	free(c->entry_syms);
	free(c->mods);
	free(c->path);
	free(c);
}

int cfi_relocate(struct cfi *c, uint64_t offset)
{
	if (offset == c->offset)
		return 0;
	c->offset = offset;
	return open_dwfl(c);
}

/* A frame's registers: libdwfl's (@state), or the rule walk's (@v, those
 * in @known). */
struct frame_regs {
	Dwfl_Frame *state;
	const uint64_t *v;
	uint32_t known;
};

#define ALL_REGS ((1u << CFI_NREGS) - 1)

static bool frame_reg(const struct frame_regs *f, unsigned int r, uint64_t *out)
{
	Dwarf_Word w;

	if (f->state) {
		if (dwfl_frame_reg(f->state, r, &w))
			return false;
		*out = w;
		return true;
	}
	if (!(f->known >> r & 1))
		return false;
	*out = f->v[r];
	return true;
}

/* Does the caller frame @f (at return address @pc) return to a "popq
 * %rsp" of call_on_stack()? Then c->resume is its state with the saved
 * rsp, and the walk goes on from there. */
static bool returns_onto_saved_stack(struct cfi *c, const struct frame_regs *f, uint64_t pc)
{
	uint64_t v, tos, saved;
	uint8_t op;

	if (c->switches >= MAX_STACK_SWITCHES || c->read_code(c->ctx, pc, &op, 1) || op != POP_RSP ||
	    !frame_reg(f, DWARF_RSP, &tos) || c->read(c->ctx, tos, &saved, sizeof(saved)) || saved & 7 ||
	    saved < 0xffff800000000000ull) /* a kernel stack address */
		return false;
	for (unsigned int r = 0; r < CFI_NREGS; r++)
		c->resume[r] = frame_reg(f, r, &v) ? v : 0;
	c->resume[DWARF_RSP] = saved;
	c->resume[DWARF_RIP] = pc;
	c->switches++;
	c->switched = true;
	return true;
}

/* Where each register, in DWARF numbering, is in pt_regs (unwind.h). */
static const int pt_regs_slot[CFI_NREGS] = { 10, 12, 11, 5, 13, 14, PT_REGS_BP, PT_REGS_SP, 9,
					     8,  7,  6,  3, 2,  1,  0,  PT_REGS_IP };
#define KERNEL_CS 0x10

/* Whether the symbol that names @pc of the entry text is an asm_* entry:
 * as libdwfl picks it, the nearest sized symbol that covers @pc, else the
 * nearest one without a size before it (a label: nested_nmi inside
 * asm_exc_nmi is asm_exc_nmi's). */
static bool entry_sym_is_asm(const struct cfi *c, uint64_t pc)
{
	const struct entry_sym *label = NULL;
	size_t lo = 0, hi = c->nentry_syms;

	while (lo < hi) { /* the first symbol past pc */
		size_t mid = lo + (hi - lo) / 2;

		if (c->entry_syms[mid].addr <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo--) {
		const struct entry_sym *e = &c->entry_syms[lo];

		if (e->end != e->addr && pc < e->end)
			return e->asm_entry;
		if (e->end == e->addr && !label)
			label = e;
	}
	return label && label->asm_entry;
}

/* An interrupt or exception entry (asm_common_interrupt, asm_sysvec_*,
 * asm_exc_*) calls its C handler with rsp at the pt_regs it pushed, and
 * has no CFI of its own: past it, the walk goes on from the interrupted
 * context those registers hold when that was kernel code; from user
 * space, the stack ends there. */
bool cfi_in_asm_entry(struct cfi *c, uint64_t pc)
{
	const struct cfi_mod *m = module_at(c, pc);
	const char *fn;
	GElf_Off off;

	if (c->entry_hi && (pc < c->entry_lo || pc >= c->entry_hi))
		return false;
	if (c->nentry_syms)
		return entry_sym_is_asm(c, pc);
	if (!m)
		m = &c->vmlinux;
	fn = m->mod ? function_at(c, m, pc, &off) : NULL;
	return fn && !strncmp(fn, "asm_", 4);
}

static bool returns_to_interrupted(struct cfi *c, const struct frame_regs *f, uint64_t pc)
{
	uint64_t regs[PT_REGS_WORDS], sp;

	if (!cfi_in_asm_entry(c, pc) || c->switches >= MAX_STACK_SWITCHES || !frame_reg(f, DWARF_RSP, &sp) ||
	    c->read(c->ctx, sp, regs, sizeof(regs)))
		return false;
	if (regs[PT_REGS_CS] & 3) {
		c->reached_end = true; /* from user space */
		return true;
	}
	if (regs[PT_REGS_CS] != KERNEL_CS || !c->is_text(c->ctx, regs[pt_regs_slot[DWARF_RIP]]) ||
	    regs[pt_regs_slot[DWARF_RSP]] & 7 || regs[pt_regs_slot[DWARF_RSP]] < 0xffff800000000000ull)
		return false;
	for (unsigned int r = 0; r < CFI_NREGS; r++)
		c->resume[r] = regs[pt_regs_slot[r]];
	c->switches++;
	c->switched = true;
	c->record_first = true;
	return true;
}

/* The frame at @pc, with registers @f: recorded (or not), and whether the
 * walk goes on (DWARF_CB_OK) or stops here (DWARF_CB_ABORT; c->switched:
 * to go on from c->resume). */
static int take_frame(struct cfi *c, uint64_t pc, const struct frame_regs *f)
{
	if (!pc) {
		/* Past the last frame (libdwfl's own frame-pointer fallback
		 * reads the 0 that ends a chain): the stack's end. */
		c->reached_end = true;
		return DWARF_CB_ABORT;
	}
	if (c->switched && !c->record_first) { /* a restarted walk: its first frame is recorded */
		c->switched = false;
		return DWARF_CB_OK;
	}
	if (c->n && !c->is_text(c->ctx, pc)) {
		/* Where CFI ends (assembly), libdwfl follows rbp on its own:
		 * past an interrupt from user space that lands outside. */
		c->left_text = true;
		return DWARF_CB_ABORT;
	}
	c->switched = c->record_first = false;
	c->pcs[c->n++] = pc;
	if (!frame_reg(f, DWARF_RSP, &c->last_sp))
		c->last_sp = 0;
	if (c->n >= c->max)
		return DWARF_CB_ABORT;
	if (c->n > 1 && (returns_onto_saved_stack(c, f, pc) || returns_to_interrupted(c, f, pc)))
		return DWARF_CB_ABORT;
	return DWARF_CB_OK;
}

static int frame_cb(Dwfl_Frame *state, void *arg)
{
	struct frame_regs f = { .state = state };
	Dwarf_Addr pc;

	if (!dwfl_frame_pc(state, &pc, NULL))
		return DWARF_CB_ABORT;
	return take_frame(arg, pc, &f);
}

/* A register plus an offset (DW_OP_bregN, DW_OP_bregx), as a base. */
static bool register_plus(const Dwarf_Op *op, uint8_t *reg, int32_t *off)
{
	uint64_t r = op->atom == DW_OP_bregx ? op->number : (uint64_t)(op->atom - DW_OP_breg0);
	Dwarf_Word o = op->atom == DW_OP_bregx ? op->number2 : op->number;

	if ((op->atom != DW_OP_bregx && (op->atom < DW_OP_breg0 || op->atom > DW_OP_breg31)) || r >= CFI_NREGS ||
	    (int64_t)(int32_t)o != (int64_t)o)
		return false;
	*reg = (uint8_t)r;
	*off = (int32_t)o;
	return true;
}

/* One register's rule in @r from libdw's description of it (the CFA
 * first, then DW_OP_plus_uconst, or an expression's DW_OP_bregN); false if
 * it is not one of the simple kinds. */
static bool simple_register(Dwarf_Frame *frame, int regno, struct cfi_rule *r)
{
	Dwarf_Op mem[3], *ops;
	size_t nops, i = 1;

	if (dwarf_frame_register(frame, regno, mem, &ops, &nops))
		return false;
	r->off[regno] = 0;
	r->base[regno] = BASE_CFA;
	if (!nops) {
		r->kind[regno] = ops ? RULE_UNDEF : RULE_SAME;
		return !ops || ops == mem;
	}
	if (ops[0].atom != DW_OP_call_frame_cfa)
		return false;
	if (i < nops && ops[i].atom == DW_OP_plus_uconst) {
		r->off[regno] = (int32_t)ops[i].number;
		if ((uint64_t)(int64_t)r->off[regno] != ops[i].number)
			return false;
		i++;
	} else if (i < nops && register_plus(&ops[i], &r->base[regno], &r->off[regno])) {
		i++;
	}
	r->kind[regno] = RULE_AT;
	if (i < nops && ops[i].atom == DW_OP_stack_value) {
		r->kind[regno] = RULE_VAL;
		i++;
	}
	return i == nops;
}

/* @m's .eh_frame (@eh) or .debug_frame, looked up the first time. */
static Dwarf_CFI *frames_of(struct cfi_mod *m, bool eh, Dwarf_Addr *bias)
{
	struct mod_frames *f = eh ? &m->eh : &m->debug;

	if (!f->looked) {
		f->cfi = eh ? dwfl_module_eh_cfi(m->mod, &f->bias) : dwfl_module_dwarf_cfi(m->mod, &f->bias);
		f->looked = true;
	}
	*bias = f->bias;
	return f->cfi;
}

/* The row for code at @at, as libdwfl would find it: .eh_frame first,
 * then .debug_frame, of the module there. */
static void read_rule(struct cfi *c, uint64_t at, struct cfi_rule *r)
{
	Dwfl_Module *mod = dwfl_addrmodule(c->dwfl, at);
	struct cfi_mod *m = NULL;
	Dwarf_Frame *frame = NULL;
	Dwarf_Addr bias = 0, start, end;
	Dwarf_Op *cfa;
	size_t ncfa;
	bool signal;
	Dwarf_CFI *cfi;
	void **userdata;

	r->at = at;
	r->row = ROW_NONE;
	if (!mod || !dwfl_module_info(mod, &userdata, NULL, NULL, NULL, NULL, NULL, NULL) || !(m = *userdata))
		return;
	cfi = frames_of(m, true, &bias);
	if (!cfi || dwarf_cfi_addrframe(cfi, at - bias, &frame)) {
		cfi = frames_of(m, false, &bias);
		if (!cfi || dwarf_cfi_addrframe(cfi, at - bias, &frame))
			return;
	}
	r->row = ROW_OTHER;
	if (dwarf_frame_info(frame, &start, &end, &signal) == DWARF_RIP && !signal &&
	    !dwarf_frame_cfa(frame, &cfa, &ncfa) && (ncfa == 1 || (ncfa == 2 && cfa[1].atom == DW_OP_deref)) &&
	    register_plus(&cfa[0], &r->cfa_reg, &r->cfa_off)) {
		r->cfa_deref = ncfa == 2;
		r->row = ROW_SIMPLE;
		for (int i = 0; i < CFI_NREGS && r->row == ROW_SIMPLE; i++)
			if (!simple_register(frame, i, r))
				r->row = ROW_OTHER;
	}
	free(frame);
}

static const struct cfi_rule *rule_at(struct cfi *c, uint64_t at)
{
	struct cfi_rule *r = &c->rules[(at ^ at >> 12) % RULE_CACHE];

	if (r->at != at)
		read_rule(c, at, r);
	return r;
}

void cfi_warm(struct cfi *c)
{
	struct cfi_rule scratch;

	/* The entry code has none: the lookup reads to the end. */
	if (c->entry_lo && c->vmlinux.mod)
		read_rule(c, c->entry_lo, &scratch);
}

/* Whether the walk finds a CFI row at @addr: the cached row's lookup. */
bool cfi_covers(struct cfi *c, uint64_t addr)
{
	return rule_at(c, addr)->row != ROW_NONE;
}

/* The caller's registers, from the callee's @v and @known by rule @r
 * whose CFA is @cfa, as libdwfl's handle_cfi gives them (a register it
 * cannot read, or whose base is lost, is lost). */
static void apply_rule(struct cfi *c, const struct cfi_rule *r, uint64_t cfa, uint64_t v[CFI_NREGS],
		       uint32_t *known)
{
	uint64_t out[CFI_NREGS];
	uint32_t now = 0;

	for (int i = 0; i < CFI_NREGS; i++) {
		uint8_t b = r->base[i];
		uint64_t at = (b == BASE_CFA ? cfa : v[b]) + (uint64_t)(int64_t)r->off[i];

		if (r->kind[i] >= RULE_AT && b != BASE_CFA && !(*known >> b & 1))
			continue;
		switch (r->kind[i]) {
		case RULE_SAME:
			out[i] = v[i];
			now |= *known & 1u << i;
			break;
		case RULE_UNDEF:
			break;
		case RULE_AT:
			if (c->read(c->ctx, at, &out[i], sizeof(out[i])))
				c->read_failed = true;
			else
				now |= 1u << i;
			break;
		case RULE_VAL:
			out[i] = at;
			now |= 1u << i;
			break;
		}
	}
	memcpy(v, out, sizeof(out));
	*known = now;
}

/* How walk_rules ended, beyond dwfl_getthread_frames's own 0 (the stack's
 * end) and DWARF_CB_ABORT (take_frame stopped it). */
#define WALK_HANDED_OVER 2  /* code without CFI: libdwfl goes on from c->resume */
#define WALK_REDO 3         /* a row it does not take: libdwfl walks it all */

/* The walk through cached rows, from @regs. */
static int walk_rules(struct cfi *c, const uint64_t regs[CFI_NREGS])
{
	uint64_t v[CFI_NREGS];
	struct frame_regs f = { .v = v, .known = ALL_REGS };
	bool activation = true; /* the pc is where it stands, not a return address */

	memcpy(v, regs, sizeof(v));
	for (;;) {
		const struct cfi_rule *r;
		uint64_t at, cfa;

		if (take_frame(c, v[DWARF_RIP], &f) != DWARF_CB_OK) {
			if (!c->switched || c->n >= c->max)
				return DWARF_CB_ABORT;
			memcpy(v, c->resume, sizeof(v)); /* onto the other stack */
			f.known = ALL_REGS;
			activation = true;
			continue;
		}
		at = activation ? v[DWARF_RIP] : v[DWARF_RIP] - 1;
		r = rule_at(c, at);
		if (r->row == ROW_NONE && f.known >> DWARF_RBP & 1) {
			/* libdwfl's frame-pointer step, from this frame,
			 * which its restarted walk skips (c->switched). */
			memcpy(c->resume, v, sizeof(v));
			c->resume[DWARF_RIP] = at;
			c->switched = true;
			return WALK_HANDED_OVER;
		}
		if (r->row != ROW_SIMPLE || !(f.known >> r->cfa_reg & 1))
			return WALK_REDO;
		cfa = v[r->cfa_reg] + (uint64_t)(int64_t)r->cfa_off;
		if (r->cfa_deref && c->read(c->ctx, cfa, &cfa, sizeof(cfa)))
			return WALK_REDO; /* as libdwfl finds it, from the start */
		apply_rule(c, r, cfa, v, &f.known);
		if (!(f.known >> DWARF_RIP & 1) || !v[DWARF_RIP])
			return 0; /* no return address: libdwfl's end of the stack */
		activation = false;
	}
}

static void start_walk(struct cfi *c, const uint64_t regs[CFI_NREGS])
{
	c->regs = regs;
	c->n = 0;
	c->read_failed = false;
	c->reached_end = false;
	c->left_text = false;
	c->switched = c->record_first = false;
	c->switches = 0;
}

size_t cfi_unwind(struct cfi *c, const uint64_t regs[CFI_NREGS], uint64_t *pcs, size_t max,
		  unwind_read_fn read, unwind_read_fn read_code, unwind_text_fn is_text, void *ctx,
		  enum unwind_end *end)
{
	int ret = DWARF_CB_ABORT;

	c->read = read;
	c->read_code = read_code;
	c->is_text = is_text;
	c->ctx = ctx;
	c->pcs = pcs;
	c->max = max;
	start_walk(c, regs);
	if (max && !c->rules_off)
		ret = walk_rules(c, regs);
	if (max && (c->rules_off || ret == WALK_REDO)) {
		start_walk(c, regs);
		ret = dwfl_getthread_frames(c->dwfl, 1, frame_cb, c);
	}
	while (c->switched && c->n < max) { /* from the IRQ stack onto the task's, or handed over */
		c->regs = c->resume;
		ret = dwfl_getthread_frames(c->dwfl, 1, frame_cb, c);
	}
	/* libdwfl ends "normally" also when a return address could not be
	 * read: what kstep saw comes first. */
	if (c->reached_end)
		*end = UNWIND_END_BOTTOM;
	else if (c->n >= max)
		*end = UNWIND_END_MAX;
	else if (c->left_text)
		*end = UNWIND_END_NOTTEXT;
	else if (c->read_failed)
		*end = UNWIND_END_BADPTR;
	else if (ret == 0 || (c->last_sp && (c->last_sp | (KERNEL_STACK_SIZE - 1)) + 1 - c->last_sp == PT_REGS_SIZE))
		*end = UNWIND_END_BOTTOM;
	else
		*end = UNWIND_END_NOCFI;
	return c->n;
}

size_t cfi_unwind_libdwfl(struct cfi *c, const uint64_t regs[CFI_NREGS], uint64_t *pcs, size_t max,
			  unwind_read_fn read, unwind_read_fn read_code, unwind_text_fn is_text, void *ctx,
			  enum unwind_end *end)
{
	size_t n;

	c->rules_off = true;
	n = cfi_unwind(c, regs, pcs, max, read, read_code, is_text, ctx, end);
	c->rules_off = false;
	return n;
}
