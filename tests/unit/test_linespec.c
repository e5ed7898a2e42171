// SPDX-License-Identifier: MIT
/* Unit tests of line specs, inline instances and locals (linespec, dwloc),
 * against the project's own vmlinux (images/vmlinux, or $IMAGES) and the
 * source it was built from. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dwloc.h"
#include "fetcharg.h"
#include "files.h"
#include "linespec.h"
#include "symbols.h"

static struct symtab *syms;
static char vmlinux[PATH_MAX], srcdir[PATH_MAX];
static char err[1024];

static int setup(void **state)
{
	const char *images = getenv("IMAGES");

	(void)state;
	snprintf(vmlinux, sizeof(vmlinux), "%s/vmlinux", images ? images : PROJECT_IMAGES);
	if (sym_open(&syms, vmlinux, err, sizeof(err))) {
		fprintf(stderr, "test_linespec: %s (run make images)\n", err);
		return -1;
	}
	if (!files_kernel_source(vmlinux, srcdir, sizeof(srcdir)))
		srcdir[0] = '\0';
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sym_close(syms);
	return 0;
}

static struct line_sites resolve(const char *spec)
{
	struct line_sites ls;
	int ret = linespec_resolve(syms, spec, srcdir[0] ? srcdir : NULL, &ls, err, sizeof(err));

	if (ret)
		fail_msg("%s: %s", spec, err);
	assert_true(ls.n > 0);
	return ls;
}

/* FUNC:RELLINE, FILE:LINE and DIR/FILE:LINE name the same statement starts. */
static void test_function_line_and_file_line_agree(void **state)
{
	struct line_sites a = resolve("ip_rcv_core:58"), b, c;
	char spec[600];
	const char *base = strrchr(a.v[0].file, '/');

	(void)state;
	assert_string_equal(a.v[0].func, "ip_rcv_core");
	assert_int_equal(a.v[0].rel, 58);
	snprintf(spec, sizeof(spec), "%s:%d", base ? base + 1 : a.v[0].file, a.v[0].line);
	b = resolve(spec);
	snprintf(spec, sizeof(spec), "%s:%d", a.v[0].file, a.v[0].line);
	c = resolve(spec);
	assert_int_equal(a.n, b.n);
	assert_int_equal(a.n, c.n);
	for (size_t i = 0; i < a.n; i++) {
		assert_int_equal(a.v[i].addr, b.v[i].addr);
		assert_int_equal(a.v[i].addr, c.v[i].addr);
		assert_int_equal(b.v[i].rel, -1);
	}
	linespec_free(&a);
	linespec_free(&b);
	linespec_free(&c);
}

/* Every line --lines marks resolves as a probe, and a line it does not
 * mark between two that it does is refused with its neighbours. */
static void test_listed_lines_resolve_and_gaps_are_refused(void **state)
{
	struct line_range r;
	int listed = 0, gap = -1;

	(void)state;
	assert_int_equal(linespec_lines(syms, "ip_rcv_core", &r, err, sizeof(err)), 0);
	assert_int_equal(r.first, r.base);          /* from the declaration on */
	assert_true(r.has_code[0]);                 /* which is the entry */
	for (int l = r.first; l <= r.last; l++) {
		struct line_sites ls;
		char spec[64];

		snprintf(spec, sizeof(spec), "ip_rcv_core:%d", l - r.base);
		if (!r.has_code[l - r.first]) {
			if (gap < 0 && l > r.first && r.has_code[l - r.first - 1])
				gap = l - r.base;
			continue;
		}
		if (linespec_resolve(syms, spec, NULL, &ls, err, sizeof(err)))
			fail_msg("%s is listed but does not resolve: %s", spec, err);
		linespec_free(&ls);
		listed++;
	}
	assert_true(listed > 10);
	linespec_range_free(&r);
	if (gap > 0) {
		struct line_sites ls;
		char spec[64];
		int ret;

		snprintf(spec, sizeof(spec), "ip_rcv_core:%d", gap);
		ret = linespec_resolve(syms, spec, NULL, &ls, err, sizeof(err));
		if (ret == -ERANGE)
			assert_non_null(strstr(err, "nearest line"));
		else
			linespec_free(&ls); /* code shared with a listed line: a probe may still go there */
	}
	assert_int_equal(linespec_resolve(syms, "ip_rcv_core:100000", NULL, &(struct line_sites){ 0 }, err,
					  sizeof(err)), -ERANGE);
	assert_non_null(strstr(err, "has no code"));
}

/* A function GCC inlined everywhere: each instance, named by its caller. */
static void test_inline_instances_name_their_caller(void **state)
{
	struct line_sites ls = resolve("ip_local_deliver_finish");

	(void)state;
	assert_null(sym_lookup_name(syms, "ip_local_deliver_finish"));
	for (size_t i = 0; i < ls.n; i++) {
		assert_string_equal(ls.v[i].inlined, "ip_local_deliver_finish");
		assert_string_equal(ls.v[i].func, "ip_local_deliver");
	}
	linespec_free(&ls);
	assert_int_equal(linespec_resolve(syms, "no_such_function_here", NULL, &ls, err, sizeof(err)), -ENOENT);
}

/* FUNC;PATTERN: the lines with code whose text matches, blanks ignored. */
static void test_lazy_pattern_matches_source_lines(void **state)
{
	struct line_sites ls;

	(void)state;
	if (!srcdir[0])
		skip();
	ls = resolve("ip_rcv_core;goto csum_error*");
	for (size_t i = 0; i < ls.n; i++) {
		char text[512];

		files_source_line(srcdir, ls.v[i].file, ls.v[i].line, text, sizeof(text));
		assert_non_null(strstr(text, "goto csum_error"));
	}
	linespec_free(&ls);
	assert_int_equal(linespec_resolve(syms, "ip_rcv_core;*no such text*", srcdir, &ls, err, sizeof(err)),
			 -ENOENT);
	assert_int_equal(linespec_resolve(syms, "ip_rcv_core;x", "/nonexistent", &ls, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "--source"));
}

static int compile_at(const char *spec, const char *expr)
{
	struct line_sites ls = resolve(spec);
	struct farg_scope at = { .addr = ls.v[0].addr, .func = sym_lookup_addr(syms, ls.v[0].addr)->addr };
	struct farg *a;
	int ret = farg_compile(&a, expr, syms, &at, err, sizeof(err));

	if (!ret)
		farg_free(a);
	linespec_free(&ls);
	return ret;
}

/* Locals through their location lists; the frame base through the CFI. */
static void test_locals_are_read_where_they_live(void **state)
{
	(void)state;
	assert_int_equal(compile_at("ip_rcv_core:58", "iph->protocol"), 0);
	assert_int_equal(compile_at("ip_rcv_core:58", "drop_reason"), 0);
	/* 'len' is set from line 58 on: before it, nowhere, with where it is. */
	assert_int_not_equal(compile_at("ip_rcv_core:53", "len"), 0);
	assert_non_null(strstr(err, "optimized out at ip_rcv_core"));
	assert_non_null(strstr(err, "it is available at ip_rcv_core"));
	/* On the stack frame (DW_OP_fbreg): found through the CFA. */
	assert_int_equal(compile_at("__udp4_lib_rcv:30", "udptable"), 0);
	assert_int_not_equal(compile_at("ip_rcv_core:58", "no_such_local"), 0);
}

/* The variables in scope: innermost first, an inline's own included. */
static void test_scope_lists_inline_parameters(void **state)
{
	struct line_sites ls = resolve("ip_local_deliver_finish");
	struct dwloc_var *v;
	size_t n;
	bool skb = false;

	(void)state;
	assert_int_equal(dwloc_scope_vars(syms, ls.v[0].addr, &v, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, "skb")) {
			skb = true;
			assert_true(v[i].param);
			assert_false(v[i].outermost); /* the inline's, not ip_local_deliver's */
			assert_string_equal(v[i].type, "struct sk_buff *");
		}
	assert_true(skb);
	free(v);
	linespec_free(&ls);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_function_line_and_file_line_agree),
		cmocka_unit_test(test_listed_lines_resolve_and_gaps_are_refused),
		cmocka_unit_test(test_inline_instances_name_their_caller),
		cmocka_unit_test(test_lazy_pattern_matches_source_lines),
		cmocka_unit_test(test_locals_are_read_where_they_live),
		cmocka_unit_test(test_scope_lists_inline_parameters),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
