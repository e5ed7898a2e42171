// SPDX-License-Identifier: MIT
/* Unit tests of fetch arguments and filters, compiled against the project's
 * own vmlinux (images/vmlinux, or $IMAGES) and run over a made-up guest
 * memory: the offsets come from the DWARF, the values from the test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetcharg.h"
#include "filter.h"
#include "symbols.h"
#include "vmlinux.h"

#define SKB 0xffff888001000000ull
#define DEV 0xffff888002000000ull
#define TASK 0xffff888003000000ull
#define PERCPU 0xffff88800f000000ull
#define RAX 0
#define RDI 5

static uint8_t skb_mem[512], dev_mem[512], task_mem[4096], percpu_mem[0x40000];
static uint64_t regs[CFI_NREGS];

static int rd(void *ctx, uint64_t addr, void *out, size_t len)
{
	static const struct {
		uint64_t base;
		uint8_t *mem;
		size_t size;
	} areas[] = {
		{ SKB, skb_mem, sizeof(skb_mem) },
		{ DEV, dev_mem, sizeof(dev_mem) },
		{ TASK, task_mem, sizeof(task_mem) },
		{ PERCPU, percpu_mem, sizeof(percpu_mem) },
	};

	(void)ctx;
	for (size_t i = 0; i < sizeof(areas) / sizeof(areas[0]); i++)
		if (addr >= areas[i].base && addr + len <= areas[i].base + areas[i].size) {
			memcpy(out, areas[i].mem + (addr - areas[i].base), len);
			return 0;
		}
	return -1;
}

static const struct farg_env env = { .regs = regs, .percpu_base = PERCPU, .read = rd };

static struct farg_scope entry_of(const char *fn)
{
	const struct sym *s = sym_lookup_name(syms, fn);

	assert_non_null(s);
	return (struct farg_scope){ .addr = s->addr, .at_entry = true, .func = s->addr };
}

static void put(uint8_t *mem, const char *type, const char *member, uint64_t value, size_t size)
{
	uint64_t off, msize;

	assert_int_equal(sym_member(syms, type, member, &off, &msize), 0);
	memcpy(mem + off, &value, size);
}

static struct farg *compile_ok(const char *text, const struct farg_scope *scope)
{
	struct farg *a = NULL;
	char err[512];
	int ret = farg_compile(&a, text, syms, scope, err, sizeof(err));

	if (ret)
		fail_msg("%s", err);
	return a;
}

static void compile_fails(const char *text, const struct farg_scope *scope, const char *reason)
{
	struct farg *a = NULL;
	char err[512] = "";

	assert_int_equal(farg_compile(&a, text, syms, scope, err, sizeof(err)), -EINVAL);
	if (!strstr(err, reason))
		fail_msg("'%s': expected '%s' in: %s", text, reason, err);
}

static void test_member_chain(void **state)
{
	struct farg_scope sc = entry_of("tcp_v4_rcv");
	struct farg *len, *dev;
	struct farg_value v;
	uint64_t name_off, size;

	(void)state;
	regs[RDI] = SKB;
	put(skb_mem, "sk_buff", "len", 1448, 4);
	put(skb_mem, "sk_buff", "dev", DEV, 8);
	assert_int_equal(sym_member(syms, "net_device", "name", &name_off, &size), 0);
	strcpy((char *)dev_mem + name_off, "eth0");
	len = compile_ok("len=skb->len", &sc);
	dev = compile_ok("dev=skb->dev->name:string", &sc);
	assert_string_equal(farg_name(len), "len");
	assert_int_equal(farg_out_type(len), FARG_OUT_U64);
	assert_int_equal(farg_out_type(dev), FARG_OUT_STRING);
	farg_eval(len, &env, &v);
	assert_false(v.fault);
	assert_int_equal(v.u, 1448);
	farg_eval(dev, &env, &v);
	assert_string_equal(v.str, "eth0");
	/* A char array is a string without being told. */
	farg_free(dev);
	dev = compile_ok("skb->dev->name", &sc);
	assert_string_equal(farg_name(dev), "skb_dev_name");
	farg_eval(dev, &env, &v);
	assert_string_equal(v.str, "eth0");
	/* A pointer nobody can read is a fault, not a value. */
	regs[RDI] = 0x1000;
	farg_eval(len, &env, &v);
	assert_true(v.fault);
	farg_free(len);
	farg_free(dev);
}

static void test_registers_and_args(void **state)
{
	struct farg_scope sc = entry_of("tcp_v4_rcv");
	struct farg *a1 = compile_ok("$arg1", &sc), *kp = compile_ok("x=+4(%di):u16", &sc);
	struct farg *cb = compile_ok("skb->cb[2]", &sc);
	struct farg_value v;

	(void)state;
	regs[RDI] = SKB;
	memset(skb_mem, 0, sizeof(skb_mem));
	skb_mem[4] = 0x34;
	skb_mem[5] = 0x12;
	skb_mem[6] = 0xff;
	farg_eval(a1, &env, &v);
	assert_int_equal(v.u, SKB);
	assert_int_equal(farg_out_type(a1), FARG_OUT_X64);
	farg_eval(kp, &env, &v);
	assert_int_equal(v.u, 0x1234);
	put(skb_mem, "sk_buff", "cb", 0x00770000, 4);
	farg_eval(cb, &env, &v);
	assert_int_equal(v.u, 0x77);
	farg_free(a1);
	farg_free(kp);
	farg_free(cb);
}

static void test_retval_enum(void **state)
{
	const struct sym *s = sym_lookup_name(syms, "napi_gro_receive");
	struct farg_scope ret = { .addr = s->addr + 1, .at_return = true, .func = s->addr };
	struct farg *rv = compile_ok("$retval", &ret);
	struct farg_value v;

	(void)state;
	assert_int_equal(farg_out_type(rv), FARG_OUT_STRING);
	regs[RAX] = 3;
	farg_eval(rv, &env, &v);
	assert_string_equal(v.str, "GRO_NORMAL");
	regs[RAX] = 1;
	farg_eval(rv, &env, &v);
	assert_string_equal(v.str, "GRO_MERGED_FREE");
	compile_fails("skb->len", &ret, "out of scope at a return probe");
	farg_free(rv);
}

static void test_current(void **state)
{
	struct farg_scope sc = entry_of("tcp_v4_rcv");
	const struct sym *ct = sym_lookup_name(syms, "current_task");
	struct farg *comm = compile_ok("$comm", &sc), *pid = compile_ok("pid=$current->pid", &sc);
	struct farg_value v;
	uint64_t off, size;

	(void)state;
	assert_non_null(ct);
	memcpy(percpu_mem + (ct->addr - sym_offset(syms)), &(uint64_t){ TASK }, 8);
	assert_int_equal(sym_member(syms, "task_struct", "comm", &off, &size), 0);
	strcpy((char *)task_mem + off, "rxload");
	put(task_mem, "task_struct", "pid", 42, 4);
	farg_eval(comm, &env, &v);
	assert_string_equal(v.str, "rxload");
	farg_eval(pid, &env, &v);
	assert_int_equal(v.u, 42);
	assert_int_equal(farg_out_type(pid), FARG_OUT_S64);
	farg_free(comm);
	farg_free(pid);
}

static void test_bad_expressions(void **state)
{
	struct farg_scope sc = entry_of("tcp_v4_rcv");

	(void)state;
	compile_fails("skb->nosuch", &sc, "no member 'nosuch' in struct sk_buff");
	compile_fails("skb->len->x", &sc, "not a pointer");
	compile_fails("skb.len", &sc, "is a pointer: use '->len'");
	compile_fails("sbk->len", &sc, "no parameter 'sbk'");
	compile_fails("skb->cb[48]", &sc, "past the end of an array of 48");
	compile_fails("skb->len:u7", &sc, "unknown type ':u7'");
	compile_fails("$retval", &sc, "only known at a return probe");
	compile_fails("%xyz", &sc, "not an x86-64 general register");
}

/* Somewhere in these functions a parameter is kept nowhere (after its last
 * use): a probe there is refused as optimized out there, with where it is
 * available, not read wrong. */
static void test_out_of_scope_somewhere(void **state)
{
	static const char *const fns[] = { "tcp_v4_rcv", "ip_rcv", "udp_rcv", "icmp_rcv", "ip_local_deliver" };
	char err[512];
	bool seen = false;

	(void)state;
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]) && !seen; i++) {
		const struct sym *s = sym_lookup_name(syms, fns[i]);

		for (uint64_t off = 1; s && off < s->size && !seen; off++) {
			struct farg_scope sc = { .addr = s->addr + off, .func = s->addr };
			struct farg *a = NULL;

			if (farg_compile(&a, "skb->len", syms, &sc, err, sizeof(err)))
				seen = strstr(err, "is optimized out at") && strstr(err, "it is available at");
			farg_free(a);
		}
	}
	assert_true(seen);
}

static void test_filters(void **state)
{
	struct farg_scope sc = entry_of("tcp_v4_rcv");
	struct farg *fields[2] = { compile_ok("len=skb->len", &sc), compile_ok("dev=skb->dev->name", &sc) };
	struct farg_value vals[2];
	struct filter *f;
	char err[256];

	(void)state;
	regs[RDI] = SKB;
	put(skb_mem, "sk_buff", "dev", DEV, 8);
	for (int len = 100; len <= 2000; len += 1900) {
		put(skb_mem, "sk_buff", "len", (uint64_t)len, 4);
		for (int i = 0; i < 2; i++)
			farg_eval(fields[i], &env, &vals[i]);
		assert_int_equal(filter_compile(&f, "skb->len > 1000", fields, 2, NULL, syms, &sc, err, sizeof(err)), 0);
		assert_int_equal(filter_match(f, vals, &env), len > 1000);
		filter_free(f);
		assert_int_equal(filter_compile(&f, "len == 100 && dev == \"eth0\"", fields, 2, NULL, syms, &sc, err,
						 sizeof(err)), 0);
		assert_int_equal(filter_match(f, vals, &env), len == 100);
		filter_free(f);
		assert_int_equal(filter_compile(&f, "len == 7 || len >= 2000", fields, 2, NULL, syms, &sc, err, sizeof(err)), 0);
		assert_int_equal(filter_match(f, vals, &env), len == 2000);
		filter_free(f);
	}
	assert_int_equal(filter_compile(&f, "len 5", fields, 2, NULL, syms, &sc, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a comparison"));
	assert_int_equal(filter_compile(&f, "len == five", fields, 2, NULL, syms, &sc, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'five' is not a number"));
	farg_free(fields[0]);
	farg_free(fields[1]);
}

static void test_filter_enum(void **state)
{
	const struct sym *s = sym_lookup_name(syms, "napi_gro_receive");
	struct farg_scope ret = { .addr = s->addr + 1, .at_return = true, .func = s->addr };
	struct farg *rv = compile_ok("$retval", &ret);
	struct farg_value v;
	struct filter *f;
	char err[256];

	(void)state;
	assert_int_equal(filter_compile(&f, "retval == GRO_MERGED_FREE", &rv, 1, NULL, syms, &ret, err, sizeof(err)), 0);
	regs[RAX] = 1;
	farg_eval(rv, &env, &v);
	assert_true(filter_match(f, &v, &env));
	regs[RAX] = 3;
	farg_eval(rv, &env, &v);
	assert_false(filter_match(f, &v, &env));
	filter_free(f);
	farg_free(rv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_member_chain), cmocka_unit_test(test_registers_and_args),
		cmocka_unit_test(test_retval_enum),  cmocka_unit_test(test_current),
		cmocka_unit_test(test_bad_expressions), cmocka_unit_test(test_filters),
		cmocka_unit_test(test_filter_enum),   cmocka_unit_test(test_out_of_scope_somewhere),
	};

	return cmocka_run_group_tests_name("fetcharg", tests, open_vmlinux, close_vmlinux);
}
