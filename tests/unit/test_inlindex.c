// SPDX-License-Identifier: MIT
/* Unit tests of the inline-function index in kstep's cache: its first run
 * (no cache directory at all), later runs reading it, and a file that is
 * damaged, stale or in a directory that is not private, which must not
 * change the answer. Against the project's own vmlinux. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inlindex.h"
#include "symbols.h"
#include "../scratch.h"

#define NAME "ip_local_deliver_finish"

static struct symtab *syms;
static char root[PATH_MAX], index_path[PATH_MAX * 2];

static int setup(void **state)
{
	const char *images = getenv("IMAGES");
	char path[PATH_MAX], err[256], id[130];

	(void)state;
	snprintf(path, sizeof(path), "%s/vmlinux", images ? images : PROJECT_IMAGES);
	if (sym_open(&syms, path, err, sizeof(err)) || sym_build_id(syms, id, sizeof(id))) {
		fprintf(stderr, "test_inlindex: %s has no symbols or build ID (run make images)\n", path);
		return -1;
	}
	scratch(root, sizeof(root), "kstep-inlindex");
	if (!mkdtemp(root))
		return -1;
	setenv("XDG_CACHE_HOME", root, 1);
	snprintf(index_path, sizeof(index_path), "%s/kstep/inlines/%s", root, id);
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	sym_close(syms);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	return system(cmd);
}

/* The offsets for NAME, asserted non-empty. */
static size_t lookup(Dwarf_Off **offs)
{
	size_t n;

	assert_int_equal(inlindex_lookup(syms, NAME, offs, &n), 0);
	assert_true(n > 0);
	return n;
}

static void assert_same(void)
{
	static Dwarf_Off *first;
	static size_t nfirst;
	Dwarf_Off *offs;
	size_t n = lookup(&offs);

	if (!first) {
		first = offs;
		nfirst = n;
		return;
	}
	assert_int_equal(n, nfirst);
	assert_memory_equal(offs, first, n * sizeof(*offs));
	free(offs);
}

static void write_file(const char *text)
{
	FILE *f = fopen(index_path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* No cache directory yet: the pass makes it private and keeps the index. */
static void test_first_run_makes_the_cache(void **state)
{
	struct stat st;

	(void)state;
	assert_int_not_equal(stat(index_path, &st), 0);
	assert_same();
	assert_int_equal(stat(index_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	*strrchr(index_path, '/') = '\0';
	assert_int_equal(stat(index_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	index_path[strlen(index_path)] = '/';
	assert_same(); /* and the second run reads it */
}

/* The cache's kstep directory as build-kernel.sh leaves it (0755): the
 * index keeps to its own private directory below it. */
static void test_shared_cache_directory_is_fine(void **state)
{
	char dir[PATH_MAX + 16], cmd[PATH_MAX * 3];
	struct stat st;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/kstep", root);
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -m 755 %s", dir, dir);
	assert_int_equal(system(cmd), 0);
	assert_same();
	assert_int_equal(stat(index_path, &st), 0);
}

/* A damaged file, one naming wrong DIEs, one of another build: rebuilt. */
static void test_bad_index_files_are_rebuilt(void **state)
{
	char text[512], line[256];
	FILE *f;

	(void)state;
	write_file("kstep-inlines 1 00\n" NAME " 1\n");      /* another build */
	assert_same();
	f = fopen(index_path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	snprintf(text, sizeof(text), "%s" NAME " 0\n", line);   /* a DIE that is not it */
	write_file(text);
	assert_same();
	snprintf(text, sizeof(text), "%s" NAME " zz\nrm -rf /\n", line); /* not the format */
	write_file(text);
	assert_same();
	f = fopen(index_path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	assert_non_null(fgets(line, sizeof(line), f));     /* rewritten whole */
	assert_null(strstr(line, "zz"));
	fclose(f);
}

/* A cache directory that is not private is not used; nor is one that
 * cannot be found. The answer stays the same. */
static void test_no_usable_cache_still_answers(void **state)
{
	char dir[PATH_MAX + 16];
	const char *home = getenv("HOME");

	(void)state;
	snprintf(dir, sizeof(dir), "%s/kstep/inlines", root);
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(unlink(index_path), 0);
	assert_same();
	assert_int_not_equal(access(index_path, F_OK), 0);
	unsetenv("XDG_CACHE_HOME");
	unsetenv("HOME");
	assert_same();
	setenv("XDG_CACHE_HOME", root, 1);
	if (home)
		setenv("HOME", home, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_run_makes_the_cache),
		cmocka_unit_test(test_shared_cache_directory_is_fine),
		cmocka_unit_test(test_bad_index_files_are_rebuilt),
		cmocka_unit_test(test_no_usable_cache_still_answers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
