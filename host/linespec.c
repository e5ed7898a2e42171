// SPDX-License-Identifier: MIT
/*
 * linespec: perf probe's places resolved from the DWARF (see linespec.h).
 * A function's lines come from its unit's line table: statement starts
 * inside the function that no inline instance holds (or that sit on an
 * inline's call line), its declaration line at its entry, and each inline
 * instance's call line at the instance's entry; the rules perf's
 * die_walk_lines applies, so both mark the same lines.
 */

#include <ctype.h>
#include <dwarf.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "files.h"
#include "inlindex.h"
#include "linespec_priv.h"
#include "kerr.h"

/* ---- names and files ------------------------------------------------------ */

static const char *skip_dot(const char *path)
{
	while (!strncmp(path, "./", 2))
		path += 2;
	return path;
}

/* Does @path end with the path components of @tail? */
static bool tail_match(const char *path, const char *tail)
{
	size_t lp, lt;

	path = skip_dot(path);
	tail = skip_dot(tail);
	lp = strlen(path);
	lt = strlen(tail);
	return lt && lp >= lt && !strcmp(path + lp - lt, tail) && (lp == lt || path[lp - lt - 1] == '/');
}

bool linespec_looks_like_file(const char *name)
{
	const char *dot = strrchr(name, '.');

	return strchr(name, '/') || (dot && (!strcmp(dot, ".c") || !strcmp(dot, ".h") || !strcmp(dot, ".S")));
}

/* "name:123" -> name and 123; false if what follows the last ':' is not a line. */
static bool split_line(const char *where, char *name, size_t len, int *line)
{
	const char *colon = strrchr(where, ':');
	char *end;
	long v;

	if (!colon || colon == where || !isdigit((unsigned char)colon[1]))
		return false;
	v = strtol(colon + 1, &end, 10);
	if (*end || v < 0 || v > INT_MAX || (size_t)(colon - where) >= len)
		return false;
	snprintf(name, len, "%.*s", (int)(colon - where), where);
	*line = (int)v;
	return true;
}

bool linespec_is_line(const char *where)
{
	char name[256];
	int line;

	return strchr(where, ';') || split_line(where, name, sizeof(name), &line) || linespec_looks_like_file(where);
}

bool linespec_source_path(const char *srcdir, const char *file, char *out, size_t len)
{
	struct stat st;

	if (file[0] == '/' && !stat(file, &st) && S_ISREG(st.st_mode)) {
		snprintf(out, len, "%s", file);
		return true;
	}
	if (!srcdir)
		return false;
	/* A distribution's DWARF names its build directory: drop leading
	 * components until the rest is under @srcdir. */
	for (const char *tail = skip_dot(file); tail && *tail; tail = strchr(tail, '/')) {
		tail += *tail == '/';
		snprintf(out, len, "%s/%s", srcdir, tail);
		if (!stat(out, &st) && S_ISREG(st.st_mode))
			return true;
	}
	return false;
}

/* ---- DIE helpers ---------------------------------------------------------- */

static bool entry_pc(Dwarf_Die *die, Dwarf_Addr *pc)
{
	Dwarf_Addr base, end;
	ptrdiff_t off;

	if (!dwarf_entrypc(die, pc))
		return true;
	off = dwarf_ranges(die, 0, &base, pc, &end);
	return off > 0;
}

static const char *call_file(Dwarf_Die *in)
{
	Dwarf_Attribute attr;
	Dwarf_Word idx;
	Dwarf_Die cu;
	Dwarf_Files *files;
	size_t n;

	if (!dwarf_attr(in, DW_AT_call_file, &attr) || dwarf_formudata(&attr, &idx) ||
	    !dwarf_diecu(in, &cu, NULL, NULL) || dwarf_getsrcfiles(&cu, &files, &n) || idx >= n)
		return NULL;
	return dwarf_filesrc(files, idx, NULL, NULL);
}

static int call_line(Dwarf_Die *in)
{
	Dwarf_Attribute attr;
	Dwarf_Word v;

	return dwarf_attr(in, DW_AT_call_line, &attr) && !dwarf_formudata(&attr, &v) ? (int)v : 0;
}

/* The innermost inline instance inside @fn that holds @pc. */
static bool innermost_inline(Dwarf_Die *fn, Dwarf_Addr pc, Dwarf_Die *out)
{
	Dwarf_Die child, scope = *fn;
	bool found = false, deeper = true;

	while (deeper) {
		deeper = false;
		if (dwarf_child(&scope, &child))
			break;
		do {
			int tag = dwarf_tag(&child);

			if ((tag == DW_TAG_inlined_subroutine || tag == DW_TAG_lexical_block) &&
			    dwarf_haspc(&child, pc) > 0) {
				if (tag == DW_TAG_inlined_subroutine) {
					*out = child;
					found = true;
				}
				scope = child;
				deeper = true;
				break;
			}
		} while (!dwarf_siblingof(&child, &child));
	}
	return found;
}

/* ---- walking a function's lines ------------------------------------------- */

static void collect_row(struct collect *c, const char *file, int line, Dwarf_Addr pc);

/* Inline instances directly in @scope (through blocks): their call lines. */
static void walk_call_sites(Dwarf_Die *scope, struct collect *c)
{
	Dwarf_Die child;
	Dwarf_Addr pc;

	if (dwarf_child(scope, &child))
		return;
	do {
		int tag = dwarf_tag(&child);

		if (tag == DW_TAG_inlined_subroutine) {
			const char *f = call_file(&child);

			if (f && call_line(&child) > 0 && entry_pc(&child, &pc))
				collect_row(c, f, call_line(&child), pc);
		} else if (tag == DW_TAG_lexical_block) {
			walk_call_sites(&child, c);
		}
	} while (!dwarf_siblingof(&child, &child));
}

/* Row @i of a line table if it starts a statement (not an end of
 * sequence): its file, line and address; NULL otherwise. */
static const char *statement_row(Dwarf_Lines *lines, size_t i, int *line, Dwarf_Addr *pc)
{
	Dwarf_Line *l = dwarf_onesrcline(lines, i);
	bool flag;

	if (!l || dwarf_lineno(l, line) || dwarf_lineaddr(l, pc) || dwarf_lineendsequence(l, &flag) || flag ||
	    dwarf_linebeginstatement(l, &flag) || !flag)
		return NULL;
	return dwarf_linesrc(l, NULL, NULL);
}

/* Is a line-table row at @pc, line @line, one of @fn's own lines? */
static bool own_line(Dwarf_Die *fn, const char *decf, int decl, Dwarf_Addr pc, int line)
{
	Dwarf_Die in;
	const char *f;
	int in_decl = 0;

	if (!innermost_inline(fn, pc, &in))
		return true;
	f = call_file(&in);
	if (f && decf && !strcmp(f, decf) && call_line(&in) == line)
		return true;
	dwarf_decl_line(&in, &in_decl);
	return in_decl == decl && dwarf_decl_file(&in) == decf;
}

int linespec_walk_function(Dwarf_Die *fn, struct collect *c)
{
	Dwarf_Lines *lines;
	size_t n;
	int decl = 0, line;
	const char *decf = dwarf_decl_file(fn);
	Dwarf_Addr pc;

	dwarf_decl_line(fn, &decl);
	if (!dwarf_diecu(fn, &c->cu, NULL, NULL) || dwarf_getsrclines(&c->cu, &lines, &n))
		return -ENOENT;
	for (size_t i = 0; i < n; i++) {
		const char *file = statement_row(lines, i, &line, &pc);

		if (file && dwarf_haspc(fn, pc) > 0 && own_line(fn, decf, decl, pc, line))
			collect_row(c, file, line, pc);
	}
	if (decf && decl > 0 && entry_pc(fn, &pc))
		collect_row(c, decf, decl, pc);
	walk_call_sites(fn, c);
	return 0;
}

/* ---- finding a function's instances --------------------------------------- */

static void add_instance(struct instances *in, Dwarf_Die *die)
{
	if (in->n == in->cap) {
		size_t cap = in->cap ? 2 * in->cap : 16;
		Dwarf_Die *v = realloc(in->v, cap * sizeof(*v));

		if (!v) {
			in->nomem = true;
			return;
		}
		in->v = v;
		in->cap = cap;
	}
	in->v[in->n++] = *die;
}

void linespec_free_instances(struct instances *in)
{
	free(in->v);
	free(in);
}

static void collect_inlines(Dwarf_Die *scope, Dwarf_Off origin, struct instances *in)
{
	Dwarf_Die child, o;
	Dwarf_Attribute attr;

	if (dwarf_child(scope, &child))
		return;
	do {
		int tag = dwarf_tag(&child);

		if (tag == DW_TAG_inlined_subroutine && dwarf_attr(&child, DW_AT_abstract_origin, &attr) &&
		    dwarf_formref_die(&attr, &o) && dwarf_dieoffset(&o) == origin)
			add_instance(in, &child);
		if (tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine || tag == DW_TAG_lexical_block)
			collect_inlines(&child, origin, in);
	} while (!dwarf_siblingof(&child, &child));
}

/* Every inline instance of @name: the units that define it abstractly
 * (inlindex), then their trees. */
static void find_inlines(struct symtab *s, const char *name, struct instances *in)
{
	uint64_t to_running;
	Dwarf *dw = sym_dwarf(s, &to_running);
	Dwarf_Off *offs;
	size_t n;
	int ret = dw ? inlindex_lookup(s, name, &offs, &n) : -ENOENT;

	in->inlined = true;
	if (ret) {
		in->nomem = ret == -ENOMEM;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		Dwarf_Die die, cu;

		if (dwarf_offdie(dw, offs[i], &die) && dwarf_diecu(&die, &cu, NULL, NULL))
			collect_inlines(&cu, offs[i], in);
	}
	free(offs);
}

/* @name's out-of-line function, else its inline instances. */
int linespec_find_instances(struct symtab *s, const char *name, struct instances *in, char *err, size_t errlen)
{
	const struct sym *sym = sym_lookup_name(s, name);
	Dwarf_Die die;
	uint64_t pc;

	in->n = 0;
	in->inlined = false;
	if (sym && sym->func && sym_dwarf_function(s, sym->addr, &die, &pc)) {
		add_instance(in, &die);
		return in->nomem ? -ENOMEM : 0;
	}
	find_inlines(s, name, in);
	if (in->nomem)
		return -ENOMEM;
	if (in->n)
		return 0;
	snprintf(err, errlen, "no function '%s' in %s's debug info (neither a symbol nor an inline instance)", name,
		 sym_path(s));
	return -ENOENT;
}

/* ---- sites ---------------------------------------------------------------- */

static int add_site(struct line_sites *out, const struct line_site *site)
{
	struct line_site *tmp;

	for (size_t i = 0; i < out->n; i++)
		if (out->v[i].addr == site->addr)
			return 0;
	tmp = realloc(out->v, (out->n + 1) * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	out->v = tmp;
	out->v[out->n++] = *site;
	return 0;
}

static void base_name(char *name)
{
	name[strcspn(name, ".")] = '\0'; /* ip_rcv_core.constprop.0: ip_rcv_core */
}

/* The outermost function at running address @addr. */
static void function_at(struct symtab *s, uint64_t addr, char *out, size_t len)
{
	const struct sym *fn = sym_lookup_addr(s, addr);

	snprintf(out, len, "%s", fn ? fn->name : "??");
	base_name(out);
}

/* Where @pc maps back to: the first statement row at @pc, or for a
 * function's entry its declaration. */
enum reverse { BACK_SAME, BACK_OTHER_FILE, BACK_OTHER_LINE };

static enum reverse maps_back(struct collect *c, const char *file, int line, Dwarf_Addr pc)
{
	const struct sym *fn = sym_lookup_addr(c->s, pc + c->to_running);
	const char *f = NULL;
	Dwarf_Lines *lines;
	size_t n, lo = 0, hi;
	Dwarf_Addr a;
	Dwarf_Die die;
	uint64_t dpc;
	int l = 0;

	if (fn && fn->func && fn->addr == pc + c->to_running && sym_dwarf_function(c->s, fn->addr, &die, &dpc)) {
		f = dwarf_decl_file(&die);
		dwarf_decl_line(&die, &l);
	} else if (!dwarf_getsrclines(&c->cu, &lines, &n)) {
		for (hi = n; lo < hi;) { /* the first row at or after pc */
			size_t mid = lo + (hi - lo) / 2;

			if (dwarf_lineaddr(dwarf_onesrcline(lines, mid), &a))
				return BACK_OTHER_FILE;
			if (a < pc)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (bool stmt = false; lo < n && !stmt; lo++) {
			Dwarf_Line *row = dwarf_onesrcline(lines, lo);

			if (!row || dwarf_lineaddr(row, &a) || a != pc || dwarf_linebeginstatement(row, &stmt))
				break;
			if (stmt && !dwarf_lineno(row, &l))
				f = dwarf_linesrc(row, NULL, NULL);
		}
	}
	if (!f || strcmp(f, file))
		return BACK_OTHER_FILE;
	return l == line ? BACK_SAME : BACK_OTHER_LINE;
}

/*
 * Is a row of @file:@line at @pc that line's place? Listing it needs @pc
 * to map back to exactly that line; a probe only that it maps back to no
 * other line of the same file (a header's inline code is fine). perf's
 * -L and its line probes apply the same two rules.
 */
static bool line_place(struct collect *c, const char *file, int line, Dwarf_Addr pc)
{
	enum reverse r = maps_back(c, file, line, pc);

	return c->line ? r != BACK_OTHER_LINE : r == BACK_SAME;
}

static void collect_row(struct collect *c, const char *file, int line, Dwarf_Addr pc)
{
	struct line_site site = { .addr = pc + c->to_running, .line = line, .rel = c->decl ? line - c->decl : -1 };

	if (!file || !tail_match(file, c->file) || !line_place(c, file, line, pc))
		return;
	if (c->has_code && line >= c->lo && line <= c->hi)
		c->has_code[line - c->lo] = true;
	if (c->hi < line && !c->has_code)
		c->hi = line;
	if (!c->line)
		return;
	if (line < c->line && line > c->nearest_below)
		c->nearest_below = line;
	if (line > c->line && (!c->nearest_above || line < c->nearest_above))
		c->nearest_above = line;
	if (line != c->line || c->ret)
		return;
	snprintf(site.file, sizeof(site.file), "%s", skip_dot(file));
	function_at(c->s, site.addr, site.func, sizeof(site.func));
	c->ret = add_site(c->out, &site);
}

static int cmp_site(const void *a, const void *b)
{
	const struct line_site *x = a, *y = b;

	return (x->addr > y->addr) - (x->addr < y->addr);
}

/* No code at @want: name the nearest lines that have some. */
static int no_code(const struct collect *c, const char *what, int want, char *err, size_t errlen)
{
	int below = c->nearest_below, above = c->nearest_above, off = c->decl ? c->decl : 0;
	char near[128] = "";

	if (below && above)
		snprintf(near, sizeof(near), "; the nearest lines with code: %s:%d and %s:%d", what, below - off, what,
			 above - off);
	else if (below || above)
		snprintf(near, sizeof(near), "; the nearest line with code: %s:%d", what, (below ? below : above) - off);
	snprintf(err, errlen, "%s:%d (%s:%d) has no code to probe%s", what, want, skip_dot(c->file), c->line, near);
	return -ERANGE;
}

/* Functions' first lines and inline call sites anywhere in @scope (the
 * places the line table does not hold), as perf's unit walk adds them. */
static void collect_unit_sites(struct collect *c, Dwarf_Die *scope)
{
	Dwarf_Die child;
	Dwarf_Addr pc;
	int line = 0;

	if (dwarf_child(scope, &child))
		return;
	do {
		int tag = dwarf_tag(&child);
		const char *f = NULL;

		if (tag == DW_TAG_subprogram && !dwarf_decl_line(&child, &line))
			f = dwarf_decl_file(&child);
		else if (tag == DW_TAG_inlined_subroutine && (line = call_line(&child)) > 0)
			f = call_file(&child);
		else if (tag != DW_TAG_lexical_block)
			continue;
		if (f && entry_pc(&child, &pc))
			collect_row(c, f, line, pc);
		collect_unit_sites(c, &child);
	} while (!dwarf_siblingof(&child, &child));
}

static void collect_file_rows(struct collect *c, Dwarf_Die *cudie);

/*
 * FUNC:RELLINE as perf places it: every statement start of that line in
 * the units that hold FUNC, wherever the line's code went (an inline
 * instance of FUNC elsewhere included), less those that map back to
 * another line of the file.
 */
static int func_line(struct symtab *s, const char *func, int rel, struct line_sites *out, char *err,
		     size_t errlen)
{
	struct instances *in = calloc(1, sizeof(*in));
	struct collect c = { .s = s, .out = out };
	Dwarf_Off *done_units = NULL;
	size_t ndone = 0;
	int ret;

	if (!in)
		return -ENOMEM;
	sym_dwarf(s, &c.to_running);
	if ((ret = linespec_find_instances(s, func, in, err, errlen)))
		goto done;
	if (!(done_units = calloc(in->n, sizeof(*done_units)))) {
		ret = -ENOMEM;
		goto done;
	}
	for (size_t i = 0; i < in->n && !c.ret; i++) {
		Dwarf_Die cu;
		bool seen = false;

		c.file = dwarf_decl_file(&in->v[i]);
		dwarf_decl_line(&in->v[i], &c.decl);
		c.line = c.decl + rel;
		if (!c.file || !dwarf_diecu(&in->v[i], &cu, NULL, NULL))
			continue;
		for (size_t j = 0; j < ndone; j++)
			seen |= done_units[j] == dwarf_dieoffset(&cu);
		if (seen)
			continue;
		done_units[ndone++] = dwarf_dieoffset(&cu);
		collect_file_rows(&c, &cu);
		collect_unit_sites(&c, &cu);
	}
	ret = c.ret;
	if (!ret && !out->n)
		ret = c.file ? no_code(&c, func, rel, err, errlen)
			     : (snprintf(err, errlen, "%s has no source file in the debug info", func), -ENOENT);
	for (size_t i = 0; !ret && in->inlined && i < out->n; i++)
		snprintf(out->v[i].inlined, sizeof(out->v[i].inlined), "%s", func);
done:
	free(done_units);
	linespec_free_instances(in);
	return ret;
}

static void collect_file_rows(struct collect *c, Dwarf_Die *cudie)
{
	Dwarf_Lines *lines;
	size_t n;

	c->cu = *cudie;
	if (dwarf_getsrclines(cudie, &lines, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		Dwarf_Addr pc;
		int line;
		const char *file = statement_row(lines, i, &line, &pc);

		if (file)
			collect_row(c, file, line, pc);
	}
}

/* Rows (and, with @sites, function entries and call sites) of every unit
 * built from a file ending in @file, or of every unit when @file is NULL.
 * The last such unit's name; NULL if there was none. */
const char *linespec_collect_units(struct collect *c, Dwarf *dw, const char *file, bool sites)
{
	Dwarf_CU *cu = NULL;
	Dwarf_Die cudie;
	const char *found = NULL;

	while (dw && !c->ret && !dwarf_get_units(dw, cu, &cu, NULL, NULL, &cudie, NULL)) {
		const char *name = dwarf_diename(&cudie);

		if (file && !(name && tail_match(name, file)))
			continue;
		found = name ? name : "";
		collect_file_rows(c, &cudie);
		if (sites)
			collect_unit_sites(c, &cudie);
	}
	return found;
}

/* FILE:LINE in the units built from FILE, or in all of them if none is:
 * a header's lines are in the units that include it. */
static int file_line(struct symtab *s, const char *file, int line, struct line_sites *out, char *err,
		     size_t errlen)
{
	struct collect c = { .s = s, .file = file, .line = line, .out = out };
	Dwarf *dw = sym_dwarf(s, &c.to_running);

	if (!linespec_collect_units(&c, dw, file, true))
		linespec_collect_units(&c, dw, NULL, true);
	if (c.ret)
		return c.ret;
	if (!out->n && !c.nearest_below && !c.nearest_above) {
		snprintf(err, errlen, "no source file ending in '%s' has code in %s", file, sym_path(s));
		return -ENOENT;
	}
	return out->n ? 0 : no_code(&c, file, line, err, errlen);
}

/* perf's lazy match: a glob, blanks ignored on both sides. */
static bool lazy_match(const char *text, const char *pattern)
{
	char t[1024], p[512];
	size_t n = 0;

	for (; *text && n + 1 < sizeof(t); text++)
		if (!isspace((unsigned char)*text))
			t[n++] = *text;
	t[n] = '\0';
	n = 0;
	for (; *pattern && n + 1 < sizeof(p); pattern++)
		if (!isspace((unsigned char)*pattern))
			p[n++] = *pattern;
	p[n] = '\0';
	return !fnmatch(p, t, 0);
}

static int func_pattern(struct symtab *s, const char *func, const char *pattern, const char *srcdir,
			struct line_sites *out, char *err, size_t errlen)
{
	struct line_range r;
	char path[PATH_MAX], **text;
	int ret = linespec_lines(s, func, &r, err, errlen), n;

	if (ret)
		return ret;
	if (!linespec_source_path(srcdir, r.file, path, sizeof(path))) {
		snprintf(err, errlen, "%s;%s needs the kernel's source: %s is not under %s (give --source DIR)", func,
			 pattern, skip_dot(r.file), srcdir ? srcdir : "any known tree");
		linespec_range_free(&r);
		return -ENOENT;
	}
	if ((n = files_read_lines(path, r.first, r.last, &text)) < 0) {
		snprintf(err, errlen, "%s;%s: cannot read %s: %s", func, pattern, path, strerror(-n));
		linespec_range_free(&r);
		return n;
	}
	for (int l = r.first; l <= r.last && !ret; l++) {
		struct line_sites one = { 0 };

		if (!r.has_code[l - r.first] || !text[l - r.first] || !lazy_match(text[l - r.first], pattern))
			continue;
		ret = func_line(s, func, l - r.base, &one, err, errlen);
		for (size_t i = 0; !ret && i < one.n; i++)
			ret = add_site(out, &one.v[i]);
		linespec_free(&one);
	}
	files_free_lines(text, r.first, r.last);
	linespec_range_free(&r);
	if (!ret && !out->n) {
		snprintf(err, errlen, "no line of %s with code matches '%s' (see kstep probe --lines %s)", func, pattern,
			 func);
		ret = -ENOENT;
	}
	return ret;
}

int linespec_inlines(struct symtab *s, const char *func, struct line_sites *out, char *err, size_t errlen)
{
	struct instances *in = calloc(1, sizeof(*in));
	uint64_t to_running;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	if (!in)
		return -ENOMEM;
	sym_dwarf(s, &to_running);
	find_inlines(s, func, in);
	if (in->nomem)
		ret = -ENOMEM;
	for (size_t i = 0; i < in->n && !ret; i++) {
		struct line_site site = { .rel = -1 };
		Dwarf_Addr pc;

		if (!entry_pc(&in->v[i], &pc))
			continue;
		site.addr = pc + to_running;
		snprintf(site.inlined, sizeof(site.inlined), "%s", func);
		function_at(s, site.addr, site.func, sizeof(site.func));
		ret = add_site(out, &site);
	}
	linespec_free_instances(in);
	if (!ret && !out->n) {
		snprintf(err, errlen, "no inline instance of '%s' in %s", func, sym_path(s));
		ret = -ENOENT;
	}
	if (ret)
		linespec_free(out);
	else
		qsort(out->v, out->n, sizeof(*out->v), cmp_site);
	return ret;
}

int linespec_resolve(struct symtab *s, const char *where, const char *srcdir, struct line_sites *out, char *err,
		     size_t errlen)
{
	const char *semi = strchr(where, ';');
	char name[256];
	int line = 0, ret;

	memset(out, 0, sizeof(*out));
	if (semi) {
		snprintf(name, sizeof(name), "%.*s", (int)(semi - where), where);
		if (!name[0] || !semi[1]) {
			snprintf(err, errlen, "'%s': use FUNC;PATTERN, PATTERN a glob of the line's text", where);
			return -EINVAL;
		}
		ret = func_pattern(s, name, semi + 1, srcdir, out, err, errlen);
	} else if (split_line(where, name, sizeof(name), &line)) {
		ret = linespec_looks_like_file(name) ? file_line(s, name, line, out, err, errlen)
					    : func_line(s, name, line, out, err, errlen);
	} else if (linespec_looks_like_file(where)) {
		return kerr_set(err, errlen, -EINVAL, "'%s': a file needs a line, FILE:LINE", where);
	} else {
		ret = linespec_inlines(s, where, out, err, errlen);
	}
	if (ret) {
		linespec_free(out);
		return ret;
	}
	qsort(out->v, out->n, sizeof(*out->v), cmp_site);
	return 0;
}

void linespec_free(struct line_sites *ls)
{
	free(ls->v);
	ls->v = NULL;
	ls->n = 0;
}
