// SPDX-License-Identifier: MIT
/*
 * engine_boot: from reset to start_kernel (a hardware breakpoint: software
 * ones set before the kernel is decompressed are lost under KVM), finding
 * where KASLR put the kernel, telling a guest before its kernel from one
 * already running, checking that vmlinux is the running kernel, and
 * halting a running guest.
 */
#include "engine_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

/* Kernel text lives in the top 2 GiB (x86-64 KERNEL_IMAGE_START with no KASLR). */
#define KERNEL_TEXT_MIN 0xffffffff80000000ull

int engine_before_kernel(struct engine *e, bool *before)
{
	int cs = target_desc_find(target_desc(e->t), "cs");
	int err;

	engine_clear_err(e);
	err = target_read_regs(e->t, &e->regs);
	if (err)
		return engine_target_fail(e, err);
	/* Firmware, boot loader and decompressor run in ring 0 below the
	 * kernel's text; user space is below it too, but in ring 3. */
	*before = engine_reg(e, e->pc_idx) < KERNEL_TEXT_MIN && (cs < 0 || (engine_reg(e, cs) & 3) == 0);
	return 0;
}

/*
 * KASLR on x86-64 moves the kernel's virtual base up from its link address
 * in steps of CONFIG_PHYSICAL_ALIGN (2 MiB by default) within the 1 GiB
 * kernel image area (__START_KERNEL_map + KERNEL_IMAGE_SIZE).
 */
#define KASLR_ALIGN 0x200000ull
#define KERNEL_IMAGE_END 0xffffffffc0000000ull
/* Bytes of linux_banner compared at each candidate; the whole banner is
 * checked afterwards (engine_check_banner), so a foreign build is named. */
#define BANNER_PROBE 48
/* While the guest boots halted at reset: how often to look whether the
 * kernel has started, once it can have moved. */
#define BOOT_POLL_MS 50

/* Is vmlinux's banner at @offset above its link address in the guest? */
static bool banner_at(struct engine *e, uint64_t link, uint64_t offset, const char *mine, size_t len)
{
	char theirs[BANNER_PROBE];

	return !target_read_mem(e->t, link + offset, theirs, len) && !memcmp(theirs, mine, len);
}

/* The offsets that put @pc inside the kernel's text: [*lo, *hi]. */
static bool text_candidates(struct engine *e, uint64_t pc, uint64_t *lo, uint64_t *hi)
{
	uint64_t stext, etext, cur = sym_offset(e->syms), link_s, link_e;

	sym_text_range(e->syms, &stext, &etext);
	link_s = stext - cur;
	link_e = etext - cur;
	if (!stext || pc < KERNEL_TEXT_MIN || pc >= KERNEL_IMAGE_END || pc < link_s)
		return false;
	*hi = (pc - link_s) & ~(KASLR_ALIGN - 1);
	*lo = pc < link_e ? 0 : (pc - link_e + KASLR_ALIGN) & ~(KASLR_ALIGN - 1);
	return *lo <= *hi;
}

int engine_locate_kernel(struct engine *e, uint64_t *offset)
{
	const struct sym *b = sym_lookup_name(e->syms, "linux_banner");
	uint64_t link, cur = sym_offset(e->syms), lo, hi, pc;
	char mine[BANNER_PROBE];
	size_t len;
	int err;

	engine_clear_err(e);
	if (!b || !b->size)
		return kerr_set(e->err, sizeof(e->err), -ENOENT, "%s has no linux_banner: is it a vmlinux?", sym_path(e->syms));
	link = b->addr - cur;
	len = b->size < sizeof(mine) ? b->size : sizeof(mine);
	if (sym_read_bytes(e->syms, b->addr, mine, len))
		return kerr_set(e->err, sizeof(e->err), -EIO, "cannot read linux_banner from %s", sym_path(e->syms));
	if ((err = target_read_regs(e->t, &e->regs)))
		return engine_target_fail(e, err);
	pc = engine_reg(e, e->pc_idx);
	/* Where the symbols say first (0, or --kaslr-offset), then the offsets
	 * that put the pc in the kernel's text, then every one KASLR can pick. */
	*offset = cur;
	if (banner_at(e, link, cur, mine, len))
		goto found;
	if (text_candidates(e, pc, &lo, &hi))
		for (*offset = lo; *offset <= hi; *offset += KASLR_ALIGN)
			if (banner_at(e, link, *offset, mine, len))
				goto found;
	for (*offset = 0; link + *offset < KERNEL_IMAGE_END && link + *offset >= link; *offset += KASLR_ALIGN)
		if (banner_at(e, link, *offset, mine, len))
			goto found;
	return kerr_set(e->err, sizeof(e->err), -ENOENT,
			   "the kernel is not where %s puts it, and its linux_banner is at none of the places KASLR "
			   "can move it to: the guest runs another kernel (pass its vmlinux: --vmlinux PATH), or give "
			   "the offset (--kaslr-offset: the 'Kernel Offset:' of a panic log)", sym_path(e->syms));
found:
	sym_relocate(e->syms, *offset);
	if (e->o.cfi && (err = cfi_relocate(e->o.cfi, *offset)))
		return kerr_set(e->err, sizeof(e->err), err, "the CFI unwinder cannot follow the kernel to 0x%" PRIx64, *offset);
	return 0;
}

static int hw_breakpoint(struct engine *e, bool insert, uint64_t addr)
{
	int err = target_breakpoint(e->t, insert, TARGET_BP_HW, addr);

	return err ? engine_target_fail(e, err) : 0;
}

/*
 * The guest runs on from reset: is the kernel running yet? If so, where
 * KASLR put it (the symbols are relocated). *moved: away from where the
 * start_kernel breakpoint waits. The guest is left stopped only when
 * *moved; else it is running again.
 */
static int poll_kernel(struct engine *e, bool *moved)
{
	uint64_t before = sym_offset(e->syms), offset;
	struct target_stop st;
	bool early;
	int err;

	*moved = false;
	if ((err = target_interrupt(e->t)) || (err = engine_wait_stop(e, &st, HALT_TIMEOUT_MS)))
		return engine_target_fail(e, err);
	if ((err = engine_before_kernel(e, &early)))
		return err;
	if (!early) {
		if ((err = engine_locate_kernel(e, &offset)))
			return err;
		*moved = offset != before;
	}
	if (*moved)
		return 0;
	return (err = target_continue(e->t)) ? engine_target_fail(e, err) : 0;
}

int engine_run_to_start_kernel(struct engine *e, int timeout_ms)
{
	const struct sym *sk = sym_lookup_name(e->syms, "start_kernel");
	uint64_t t0 = trace_now_ns(), bp, sk_link;
	struct target_stop st;
	bool moved = false;
	int err;

	engine_clear_err(e);
	e->caught_early = false;
	if (!sk)
		return kerr_set(e->err, sizeof(e->err), -ENOENT, "%s has no start_kernel: is it a vmlinux?", sym_path(e->syms));
	bp = sk->addr;
	sk_link = bp - sym_offset(e->syms); /* start_kernel at its link address */
	if ((err = hw_breakpoint(e, true, bp)))
		return err;
	if ((err = target_continue(e->t)))
		return engine_target_fail(e, err);
	/*
	 * A hardware breakpoint at start_kernel, where vmlinux says it is. With
	 * KASLR the decompressor moves the kernel after that breakpoint is set:
	 * look now and then whether the kernel runs, and where; if it moved,
	 * this first look is the early point the guest is caught at (the
	 * kernel started less than BOOT_POLL_MS before, far from its init).
	 */
	for (;;) {
		err = engine_wait_stop(e, &st, BOOT_POLL_MS);
		if (err != -ETIMEDOUT)
			break;
		if ((trace_now_ns() - t0) / 1000000 >= (uint64_t)timeout_ms) {
			/* Take the guest back so that the caller can decide what to do. */
			target_interrupt(e->t);
			engine_wait_stop(e, &st, HALT_TIMEOUT_MS);
			target_breakpoint(e->t, false, TARGET_BP_HW, bp);
			return kerr_set(e->err, sizeof(e->err), -ETIMEDOUT, "the guest did not reach start_kernel within %d ms", timeout_ms);
		}
		if ((err = poll_kernel(e, &moved)))
			return err;
		if (moved)
			break;
	}
	if (err)
		return err == -EINTR ? kerr_set(e->err, sizeof(e->err), err, "interrupted") : engine_target_fail(e, err);
	if (!moved && st.kind != TARGET_STOP_SIGNAL)
		return kerr_set(e->err, sizeof(e->err), -ECHILD, "the guest ended before start_kernel");
	if ((err = hw_breakpoint(e, false, bp)))
		return err;
	if (!moved) {
		/* The breakpoint hit. With KASLR on, its address may lie in the
		 * moved kernel's text, in another function: where is the kernel? */
		uint64_t offset;

		if ((err = engine_locate_kernel(e, &offset)))
			return err;
		moved = offset != bp - sk_link;
	}
	e->caught_early = moved;
	if (!moved && engine_reg(e, e->pc_idx) != bp)
		return kerr_set(e->err, sizeof(e->err), -EPROTO, "stopped at 0x%" PRIx64 ", not at start_kernel", engine_reg(e, e->pc_idx));
	return 0;
}

static void printable(char *s, size_t len)
{
	for (size_t i = 0; i < len && s[i]; i++)
		if ((unsigned char)s[i] < 0x20)
			s[i] = s[i] == '\n' ? '\0' : ' ';
}

int engine_check_banner(struct engine *e)
{
	const struct sym *b = sym_lookup_name(e->syms, "linux_banner");
	char mine[512] = "", theirs[512] = "";
	size_t len;
	int err;

	engine_clear_err(e);
	if (!b || !b->size)
		return kerr_set(e->err, sizeof(e->err), -ENOENT, "%s has no linux_banner: is it a vmlinux?", sym_path(e->syms));
	len = b->size < sizeof(mine) - 1 ? b->size : sizeof(mine) - 1;
	if (sym_read_bytes(e->syms, b->addr, mine, len))
		return kerr_set(e->err, sizeof(e->err), -EIO, "cannot read linux_banner from %s", sym_path(e->syms));
	err = target_read_mem(e->t, b->addr, theirs, len);
	printable(mine, len);
	printable(theirs, len);
	if (err || memcmp(mine, theirs, len)) {
		return kerr_set(e->err, sizeof(e->err), -ESTALE,
			    "%s does not match the running guest: the guest's banner at 0x%" PRIx64
			    " is '%.120s', vmlinux has '%.120s'; pass the vmlinux built with this kernel (--vmlinux PATH)",
			    sym_path(e->syms), b->addr, err ? "(unreadable)" : theirs, mine);
	}
	return 0;
}

bool engine_caught_early(const struct engine *e)
{
	return e->caught_early;
}

int engine_halt(struct engine *e)
{
	struct target_stop st;
	int err = target_interrupt(e->t);

	if (!err)
		err = engine_wait_stop(e, &st, HALT_TIMEOUT_MS);
	return err ? engine_target_fail(e, err) : 0;
}
