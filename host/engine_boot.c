// SPDX-License-Identifier: MIT
/*
 * engine_boot: from reset to start_kernel (a hardware breakpoint: software
 * ones set before the kernel is decompressed are lost under KVM), telling a
 * guest before its kernel from one already running, checking that vmlinux
 * is the running kernel, and halting a running guest.
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

int engine_run_to_start_kernel(struct engine *e, int timeout_ms)
{
	const struct sym *sk = sym_lookup_name(e->syms, "start_kernel");
	struct target_stop st;
	int err;

	engine_clear_err(e);
	if (!sk)
		return engine_fail(e, -ENOENT, "%s has no start_kernel: is it a vmlinux?", sym_path(e->syms));
	if ((err = target_breakpoint(e->t, true, TARGET_BP_HW, sk->addr)))
		return engine_target_fail(e, err);
	if ((err = target_continue(e->t)))
		return engine_target_fail(e, err);
	err = engine_wait_stop(e, &st, timeout_ms);
	if (err == -ETIMEDOUT) {
		/* Take the guest back so that the caller can decide what to do. */
		target_interrupt(e->t);
		engine_wait_stop(e, &st, HALT_TIMEOUT_MS);
		target_breakpoint(e->t, false, TARGET_BP_HW, sk->addr);
		return engine_fail(e, -ETIMEDOUT, "the guest did not reach start_kernel within %d ms", timeout_ms);
	}
	if (err)
		return err == -EINTR ? engine_fail(e, err, "interrupted") : engine_target_fail(e, err);
	if (st.kind != TARGET_STOP_SIGNAL)
		return engine_fail(e, -ECHILD, "the guest ended before start_kernel");
	if ((err = target_breakpoint(e->t, false, TARGET_BP_HW, sk->addr)))
		return engine_target_fail(e, err);
	if ((err = target_read_regs(e->t, &e->regs)))
		return engine_target_fail(e, err);
	if (engine_reg(e, e->pc_idx) != sk->addr)
		return engine_fail(e, -EPROTO, "stopped at 0x%" PRIx64 ", not at start_kernel", engine_reg(e, e->pc_idx));
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
		return engine_fail(e, -ENOENT, "%s has no linux_banner: is it a vmlinux?", sym_path(e->syms));
	len = b->size < sizeof(mine) - 1 ? b->size : sizeof(mine) - 1;
	if (sym_read_bytes(e->syms, b->addr, mine, len))
		return engine_fail(e, -EIO, "cannot read linux_banner from %s", sym_path(e->syms));
	err = target_read_mem(e->t, b->addr, theirs, len);
	printable(mine, len);
	printable(theirs, len);
	if (err || memcmp(mine, theirs, len)) {
		return engine_fail(e, -ESTALE,
			    "%s does not match the running guest: the guest's banner at 0x%" PRIx64
			    " is '%.120s', vmlinux has '%.120s'; pass the vmlinux built with this kernel (--vmlinux PATH)",
			    sym_path(e->syms), b->addr, err ? "(unreadable)" : theirs, mine);
	}
	return 0;
}

int engine_halt(struct engine *e)
{
	struct target_stop st;
	int err = target_interrupt(e->t);

	if (!err)
		err = engine_wait_stop(e, &st, HALT_TIMEOUT_MS);
	return err ? engine_target_fail(e, err) : 0;
}
