// SPDX-License-Identifier: MIT
/*
 * inlindex: the abstract instances of inline functions by name (inlindex.h).
 * The cache file is text, written whole and renamed into place:
 *   kstep-inlines 1 BUILDID
 *   NAME OFFSET           one line per abstract instance, OFFSET in hex
 * It is read as untrusted: a line that is not NAME and a hex number makes
 * the whole file unusable, and every offset a lookup returns is checked
 * against the DWARF; either way the index is built again.
 */
#include "inlindex.h"

#include <dwarf.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "files.h"

#define MAGIC "kstep-inlines 1 "
#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.$"

struct entry {
	const char *name;      /* in the DWARF's string table */
	Dwarf_Off off;
};

struct found {
	Dwarf_Off *v;
	size_t n, cap;
};

static int add_found(struct found *f, Dwarf_Off off)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 8;
		Dwarf_Off *v = realloc(f->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n++] = off;
	return 0;
}

void inlindex_dir(char *out, size_t len)
{
	const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");

	if (cache && *cache)
		snprintf(out, len, "%s/kstep/inlines", cache);
	else if (home && *home)
		snprintf(out, len, "%s/.cache/kstep/inlines", home);
	else
		out[0] = '\0';
}

/* Is @die the abstract instance of an inline function named @name? */
static bool abstract_named(Dwarf_Die *die, const char *name)
{
	const char *n;

	if (dwarf_tag(die) != DW_TAG_subprogram || !dwarf_hasattr(die, DW_AT_inline))
		return false;
	n = dwarf_diename(die);
	return n && (!name || !strcmp(n, name));
}

/* ---- the pass over every unit ---------------------------------------------- */

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->off > y->off) - (x->off < y->off);
}

/* Every abstract instance of every unit, sorted by name. */
static int scan(Dwarf *dw, struct entry **out, size_t *n)
{
	struct entry *v = NULL;
	size_t cap = 0;
	Dwarf_CU *cu = NULL;
	Dwarf_Die cudie, child;

	*n = 0;
	while (!dwarf_get_units(dw, cu, &cu, NULL, NULL, &cudie, NULL)) {
		if (dwarf_child(&cudie, &child))
			continue;
		do {
			if (!abstract_named(&child, NULL))
				continue;
			if (*n == cap) {
				struct entry *tmp = realloc(v, (cap = cap ? 2 * cap : 4096) * sizeof(*v));

				if (!tmp) {
					free(v);
					return -ENOMEM;
				}
				v = tmp;
			}
			v[(*n)++] = (struct entry){ .name = dwarf_diename(&child), .off = dwarf_dieoffset(&child) };
		} while (!dwarf_siblingof(&child, &child));
	}
	qsort(v, *n, sizeof(*v), cmp_entry);
	*out = v;
	return 0;
}

/* The index as the cache file's text; NULL if out of memory. */
static char *index_text(const char *build_id, const struct entry *v, size_t n)
{
	size_t len = strlen(MAGIC) + strlen(build_id) + 2, used;
	char *text;

	for (size_t i = 0; i < n; i++)
		len += strlen(v[i].name) + 20;
	if (!(text = malloc(len)))
		return NULL;
	used = (size_t)snprintf(text, len, MAGIC "%s\n", build_id);
	for (size_t i = 0; i < n; i++)
		if (v[i].name[strspn(v[i].name, NAME_CHARS)] == '\0') /* else not kept: found by the pass */
			used += (size_t)snprintf(text + used, len - used, "%s %" PRIx64 "\n", v[i].name,
						 (uint64_t)v[i].off);
	return text;
}

/* Make the pass, keep it in the cache when there is one, and answer from it. */
static int build(Dwarf *dw, const char *dir, const char *file, const char *build_id, const char *name,
		 struct found *f)
{
	struct entry *v;
	size_t n;
	char *text;
	int ret = scan(dw, &v, &n);

	if (ret)
		return ret;
	for (size_t i = 0; i < n && !ret; i++)
		if (!strcmp(v[i].name, name))
			ret = add_found(f, v[i].off);
	if (!ret && dir && (text = index_text(build_id, v, n))) {
		files_replace(dir, file, text); /* a cache: not keeping it only costs time */
		free(text);
	}
	free(v);
	return ret;
}

/* ---- reading the cache ----------------------------------------------------- */

/* @name's offsets from the cache file; false if it is missing, of another
 * build, or not one the code above wrote. */
static bool read_index(const char *path, const char *build_id, const char *name, struct found *f)
{
	FILE *in = files_fopen_regular(path);
	char line[512], header[128];
	bool ok;

	if (!in)
		return false;
	snprintf(header, sizeof(header), MAGIC "%s\n", build_id);
	ok = fgets(line, sizeof(line), in) && !strcmp(line, header);
	while (ok && fgets(line, sizeof(line), in)) {
		size_t len = strspn(line, NAME_CHARS);
		char *end;
		unsigned long long off;

		if (!len || line[len] != ' ')
			ok = false;
		else if ((off = strtoull(line + len + 1, &end, 16)), *end != '\n' || end == line + len + 1)
			ok = false;
		else if (len == strlen(name) && !strncmp(line, name, len))
			ok = !add_found(f, (Dwarf_Off)off);
	}
	ok = ok && feof(in);
	fclose(in);
	return ok;
}

/* Does every offset name @name's abstract instance? */
static bool offsets_hold(Dwarf *dw, const char *name, const struct found *f)
{
	Dwarf_Die die;

	for (size_t i = 0; i < f->n; i++)
		if (!dwarf_offdie(dw, f->v[i], &die) || !abstract_named(&die, name))
			return false;
	return true;
}

/* The index's directory, made (with the cache directories above it, as
 * build-kernel.sh shares them) and private; NULL when it cannot be used:
 * then the pass is made each time. */
static const char *cache_dir(char *dir, size_t len)
{
	char up[2][PATH_MAX], err[256];

	inlindex_dir(dir, len);
	if (!dir[0])
		return NULL;
	snprintf(up[1], sizeof(up[1]), "%s", dir);
	*strrchr(up[1], '/') = '\0';                 /* .../kstep */
	snprintf(up[0], sizeof(up[0]), "%s", up[1]);
	*strrchr(up[0], '/') = '\0';                 /* .../.cache or $XDG_CACHE_HOME */
	for (int i = 0; i < 2; i++)
		if (up[i][0] && mkdir(up[i], 0700) && errno != EEXIST)
			return NULL;
	return files_private_dir(dir, err, sizeof(err)) ? NULL : dir;
}

int inlindex_lookup(struct symtab *s, const char *name, Dwarf_Off **offs, size_t *n)
{
	uint64_t to_running;
	Dwarf *dw = sym_dwarf(s, &to_running);
	char build_id[130] = "", dirbuf[PATH_MAX], file[160] = "", path[PATH_MAX + 160];
	const char *dir = NULL;
	struct found f = { 0 };
	int ret = 0;

	*offs = NULL;
	*n = 0;
	if (!dw)
		return -ENOENT;
	if (!sym_build_id(s, build_id, sizeof(build_id)) && (dir = cache_dir(dirbuf, sizeof(dirbuf)))) {
		snprintf(file, sizeof(file), "%s", build_id);
		snprintf(path, sizeof(path), "%s/%s", dir, file);
	}
	if (!dir || !read_index(path, build_id, name, &f) || !offsets_hold(dw, name, &f)) {
		f.n = 0;
		ret = build(dw, dir, file, build_id, name, &f);
	}
	if (ret) {
		free(f.v);
		return ret;
	}
	*offs = f.v;
	*n = f.n;
	return 0;
}
