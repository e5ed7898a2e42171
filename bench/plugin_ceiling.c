// SPDX-License-Identifier: MIT
/*
 * plugin_ceiling: what QEMU itself allows a plugin's step trace at best, on
 * the window kstep step times, so that bench/run can print kstep's plugin
 * against it. A QEMU plugin (API 4) that records nothing:
 *
 *   -plugin file=plugin-ceiling.so,entry=ADDR,insn=none|read -d plugin
 *
 * For a guest of one vCPU. From the first time it runs the instruction at
 * ADDR (a function's entry) to the first block that starts at the return
 * address then on the stack, it counts the instructions (an inline add on
 * each) and times the window. insn=read adds what any step trace has to do at each instruction:
 * a callback that reads rsp and rax and 256 bytes of the stack. Prints one
 * line, "window INSTRUCTIONS NANOSECONDS", through QEMU's plugin log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qemu_api.h"

KSTEP_PLUGIN_EXPORT int qemu_plugin_version = KSTEP_PLUGIN_API;

#define STACK_BYTES 256

static struct {
	uint64_t entry;
	bool read;
	qemu_plugin_u64 stepping; /* a vCPU's slot: 1 inside the window */
	qemu_plugin_u64 counted;  /* a vCPU's slot: instructions run */
	struct qemu_plugin_register *rsp, *rax;
	GByteArray *bytes;
	bool started, ended;
	uint64_t return_to, count0, ns0;
	volatile uint64_t sink;
} C;

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000ull + t.tv_nsec;
}

static uint64_t read_u64(struct qemu_plugin_register *reg)
{
	uint64_t v = 0;

	g_byte_array_set_size(C.bytes, 0);
	if (qemu_plugin_read_register(reg, C.bytes) >= 8)
		memcpy(&v, C.bytes->data, 8);
	return v;
}

/* @len (8 or more) bytes of guest memory at @addr into C.bytes. */
static bool read_memory(uint64_t addr, size_t len)
{
	g_byte_array_set_size(C.bytes, 0);
	return qemu_plugin_read_memory_vaddr(addr, C.bytes, len) && C.bytes->len >= 8;
}

static void on_entry(unsigned int vcpu, void *unused)
{
	uint64_t sp;

	(void)unused;
	if (C.started)
		return;
	C.started = true;
	sp = read_u64(C.rsp);
	if (!read_memory(sp, 8)) {
		qemu_plugin_outs("window unreadable return address\n");
		return;
	}
	memcpy(&C.return_to, C.bytes->data, 8);
	C.count0 = qemu_plugin_u64_get(C.counted, vcpu);
	C.ns0 = now_ns();
	qemu_plugin_u64_set(C.stepping, vcpu, 1);
}

static void on_block(unsigned int vcpu, void *block_start)
{
	char line[80];

	if ((uint64_t)(uintptr_t)block_start != C.return_to || C.ended)
		return;
	C.ended = true;
	qemu_plugin_u64_set(C.stepping, vcpu, 0);
	snprintf(line, sizeof(line), "window %llu %llu\n",
		 (unsigned long long)(qemu_plugin_u64_get(C.counted, vcpu) - C.count0),
		 (unsigned long long)(now_ns() - C.ns0));
	qemu_plugin_outs(line);
}

static void on_insn(unsigned int vcpu, void *unused)
{
	uint64_t sp = read_u64(C.rsp);

	(void)vcpu;
	(void)unused;
	C.sink += read_u64(C.rax);
	if (read_memory(sp, STACK_BYTES))
		C.sink += C.bytes->data[C.bytes->len - 1];
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb);

	(void)id;
	for (size_t i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		uint64_t pc = qemu_plugin_insn_vaddr(insn);

		if (i == 0)
			qemu_plugin_register_vcpu_insn_exec_cond_cb(insn, on_block, QEMU_PLUGIN_CB_NO_REGS,
								    QEMU_PLUGIN_COND_NE, C.stepping, 0,
								    (void *)(uintptr_t)pc);
		if (pc == C.entry && !C.started)
			qemu_plugin_register_vcpu_insn_exec_cb(insn, on_entry, QEMU_PLUGIN_CB_R_REGS, NULL);
		if (C.read)
			qemu_plugin_register_vcpu_insn_exec_cond_cb(insn, on_insn, QEMU_PLUGIN_CB_R_REGS,
								    QEMU_PLUGIN_COND_NE, C.stepping, 0, NULL);
		qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(insn, QEMU_PLUGIN_INLINE_ADD_U64, C.counted, 1);
	}
}

static void on_vcpu_init(qemu_plugin_id_t id, unsigned int vcpu)
{
	GArray *regs = qemu_plugin_get_registers();

	(void)id;
	(void)vcpu;
	for (guint i = 0; i < regs->len; i++) {
		qemu_plugin_reg_descriptor *d = &g_array_index(regs, qemu_plugin_reg_descriptor, i);

		if (!strcmp(d->name, "rsp"))
			C.rsp = d->handle;
		else if (!strcmp(d->name, "rax"))
			C.rax = d->handle;
	}
	g_array_free(regs, true);
}

static bool parse_args(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "entry=", 6))
			C.entry = strtoull(argv[i] + 6, NULL, 0);
		else if (!strcmp(argv[i], "insn=read") || !strcmp(argv[i], "insn=none"))
			C.read = !strcmp(argv[i], "insn=read");
		else
			return false;
	}
	return C.entry != 0;
}

KSTEP_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
	struct qemu_plugin_scoreboard *slots;

	(void)info;
	if (!parse_args(argc, argv)) {
		fprintf(stderr, "plugin-ceiling: takes entry=ADDR and insn=none|read\n");
		return -1;
	}
	slots = qemu_plugin_scoreboard_new(2 * sizeof(uint64_t));
	C.stepping = (qemu_plugin_u64){ slots, 0 };
	C.counted = (qemu_plugin_u64){ slots, sizeof(uint64_t) };
	C.bytes = g_byte_array_new();
	qemu_plugin_register_vcpu_init_cb(id, on_vcpu_init);
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
	return 0;
}
