// SPDX-License-Identifier: MIT
/*
 * symbols_dwarf: what vmlinux's (or a .ko's) DWARF says, through libdw and
 * an offline Dwfl opened on first use: source lines with their inline
 * chains, a function's skb parameter, types and members, scopes at an
 * address, the CFA rule, the build ID (see symbols.h).
 */
#include <dwarf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "symbols_priv.h"

static const Dwfl_Callbacks offline_callbacks = {
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.section_address = dwfl_offline_section_address,
};

/* Lazily report the vmlinux to an offline Dwfl. Dwfl opens its own fd. */
Dwfl_Module *sym_dwfl_module(struct symtab *s)
{
	if (s->mod || s->dwfl_failed)
		return s->mod;
	s->dwfl = dwfl_begin(&offline_callbacks);
	if (s->dwfl) {
		dwfl_report_begin(s->dwfl);
		s->mod = dwfl_report_offline(s->dwfl, "vmlinux", s->path, -1);
		dwfl_report_end(s->dwfl, NULL, NULL);
	}
	s->dwfl_failed = !s->mod;
	return s->mod;
}

static const char *die_name(Dwarf_Die *die)
{
	Dwarf_Attribute attr;
	Dwarf_Die origin;
	const char *name = dwarf_diename(die);

	/* Inlined instances and out-of-line copies name their origin. */
	if (!name && dwarf_attr_integrate(die, DW_AT_abstract_origin, &attr) &&
	    dwarf_formref_die(&attr, &origin))
		name = dwarf_diename(&origin);
	return name ? name : "??";
}

const char *sym_dwarf_name(Dwarf_Die *die)
{
	const char *name = die_name(die);

	return strcmp(name, "??") ? name : NULL;
}

/* Relative file names are relative to the CU's compilation directory;
 * addr2line joins them the same way, without normalising "./". */
static void set_file(struct sym_srcloc *loc, const char *file, Dwarf_Die *cudie)
{
	Dwarf_Attribute attr;
	const char *dir = NULL;

	if (file && file[0] != '/' && cudie && dwarf_attr(cudie, DW_AT_comp_dir, &attr))
		dir = dwarf_formstring(&attr);
	/* A kernel built with its paths mapped to '.' (guest/build-kernel.sh)
	 * names ./net/ipv4/icmp.c in comp_dir '.': say net/ipv4/icmp.c. */
	while (file && !strncmp(file, "./", 2))
		file += 2;
	if (dir && strcmp(dir, "."))
		snprintf(loc->file, sizeof(loc->file), "%s/%s", dir, file);
	else
		snprintf(loc->file, sizeof(loc->file), "%s", file ? file : "??");
}

static unsigned int discriminator(Dwfl_Line *line)
{
	Dwarf_Addr bias;
	Dwarf_Line *dl = dwfl_dwarf_line(line, &bias);
	unsigned int d = 0;

	if (dl)
		dwarf_linediscriminator(dl, &d);
	return d;
}

/*
 * The scopes holding DWARF address @pc, innermost first. dwarf_getscopes
 * continues past the innermost inline into its abstract origin; the
 * concrete callers come from dwarf_getscopes_die on the innermost function
 * scope (elfutils addr2line -i does the same).
 */
static int concrete_scopes(Dwarf_Die *cudie, Dwarf_Addr pc, Dwarf_Die **scopes)
{
	int n = dwarf_getscopes(cudie, pc, scopes);

	for (int i = 0; i < n; i++) {
		int tag = dwarf_tag(&(*scopes)[i]);
		Dwarf_Die inner, *outer = NULL, *all;
		int nouter;

		if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram)
			continue;
		inner = (*scopes)[i];
		nouter = dwarf_getscopes_die(&inner, &outer);
		/* Keep the blocks inside the function: they hold its locals. */
		all = nouter > 0 ? realloc(*scopes, (size_t)(i + nouter) * sizeof(**scopes)) : NULL;
		if (!all) {
			free(outer);
			return i;
		}
		memcpy(all + i, outer, (size_t)nouter * sizeof(*outer));
		free(outer);
		*scopes = all;
		return i + nouter;
	}
	return n;
}

void *sym_read_unit_lines(struct symtab *s, void *unit)
{
	Dwfl_Module *mod = sym_dwfl_module(s);
	Dwarf_Addr bias;
	Dwarf_Die *cu = mod ? dwfl_module_nextcu(mod, unit, &bias) : NULL;
	size_t lines;

	if (cu) /* the table dwfl_module_getsrc reads: the unit's own */
		dwfl_getsrclines(cu, &lines);
	return cu;
}

int sym_srclocs(struct symtab *s, uint64_t addr, struct sym_srcloc *out, int max)
{
	Dwfl_Module *mod = sym_dwfl_module(s);
	uint64_t link = addr - s->offset; /* the DWARF has link-time addresses */
	Dwarf_Addr bias = 0;
	Dwarf_Die *cudie, *scopes = NULL;
	Dwfl_Line *line;
	const char *file;
	int lineno = 0, col = 0, nscopes, n = 0;

	if (!mod || max <= 0)
		return mod ? 0 : -ENOENT;
	line = dwfl_module_getsrc(mod, link);
	if (!line)
		return 0;
	file = dwfl_lineinfo(line, NULL, &lineno, &col, NULL, NULL);
	cudie = dwfl_module_addrdie(mod, link, &bias);
	memset(out, 0, sizeof(*out));
	out[0].discriminator = discriminator(line);
	if (max == 1) {
		/* Only the innermost position: the line table is enough, and the
		 * scope walk below costs far more than the lookup itself. */
		const struct sym *fn = sym_lookup_addr(s, addr);

		snprintf(out[0].function, sizeof(out[0].function), "%s", fn ? fn->name : "??");
		set_file(&out[0], file, cudie);
		out[0].line = lineno;
		out[0].column = col;
		return 1;
	}
	nscopes = cudie ? concrete_scopes(cudie, link - bias, &scopes) : 0;

	/* Each inlined subroutine is a frame positioned at the line info
	 * (innermost) or at the call site recorded on the inline below it. */
	for (int i = 0; i < nscopes && n < max; i++) {
		Dwarf_Die *d = &scopes[i];
		int tag = dwarf_tag(d);
		Dwarf_Attribute attr;
		Dwarf_Word v;
		Dwarf_Files *files;
		size_t nfiles;

		if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram)
			continue;
		snprintf(out[n].function, sizeof(out[n].function), "%s", die_name(d));
		set_file(&out[n], file, cudie);
		out[n].line = lineno;
		out[n].column = col;
		if (n)
			out[n].discriminator = 0;
		n++;
		if (tag == DW_TAG_subprogram)
			break;
		lineno = 0;
		col = 0;
		if (dwarf_attr(d, DW_AT_call_line, &attr) && !dwarf_formudata(&attr, &v))
			lineno = (int)v;
		if (dwarf_attr(d, DW_AT_call_column, &attr) && !dwarf_formudata(&attr, &v))
			col = (int)v;
		if (dwarf_attr(d, DW_AT_call_file, &attr) && !dwarf_formudata(&attr, &v) &&
		    !dwarf_getsrcfiles(cudie, &files, &nfiles) && v < nfiles)
			file = dwarf_filesrc(files, v, NULL, NULL);
		else
			file = NULL;
	}
	if (!n) {
		const struct sym *fn = sym_lookup_addr(s, addr);

		snprintf(out[0].function, sizeof(out[0].function), "%s", fn ? fn->name : "??");
		set_file(&out[0], file, cudie);
		out[0].line = lineno;
		out[0].column = col;
		n = 1;
	}
	free(scopes);
	return n;
}

/* Follow typedefs and qualifiers. */
bool sym_dwarf_strip(Dwarf_Die *type)
{
	for (int i = 0; i < 16; i++) {
		int tag = dwarf_tag(type);
		Dwarf_Attribute attr;

		if (tag != DW_TAG_typedef && tag != DW_TAG_const_type && tag != DW_TAG_volatile_type &&
		    tag != DW_TAG_restrict_type)
			return true;
		if (!dwarf_attr_integrate(type, DW_AT_type, &attr) || !dwarf_formref_die(&attr, type))
			return false;
	}
	return false;
}

static bool pointee(Dwarf_Die *type)
{
	Dwarf_Attribute attr;

	return sym_dwarf_strip(type) && dwarf_tag(type) == DW_TAG_pointer_type &&
	       dwarf_attr_integrate(type, DW_AT_type, &attr) && dwarf_formref_die(&attr, type) &&
	       sym_dwarf_strip(type);
}

int sym_skb_param(struct symtab *s, uint64_t func_addr, int *index, int *levels)
{
	Dwfl_Module *mod = sym_dwfl_module(s);
	Dwarf_Addr bias = 0;
	Dwarf_Die *cudie, *scopes = NULL, child;
	int nscopes, i, idx = 0, ret = -ENOENT;

	if (!mod)
		return -ENOENT;
	func_addr -= s->offset;
	cudie = dwfl_module_addrdie(mod, func_addr, &bias);
	nscopes = cudie ? dwarf_getscopes(cudie, func_addr - bias, &scopes) : 0;
	for (i = 0; i < nscopes; i++)
		if (dwarf_tag(&scopes[i]) == DW_TAG_subprogram)
			break;
	if (i == nscopes || dwarf_child(&scopes[i], &child))
		goto out;
	/* Parameters of an out-of-line copy may live on its abstract origin. */
	do {
		Dwarf_Attribute attr;
		Dwarf_Die type;
		const char *name, *pname;
		int depth = 0;

		if (dwarf_tag(&child) != DW_TAG_formal_parameter)
			continue;
		if (!dwarf_attr_integrate(&child, DW_AT_type, &attr) || !dwarf_formref_die(&attr, &type)) {
			idx++;
			continue;
		}
		pname = die_name(&child);
		while (depth < 3 && pointee(&type))
			depth++;
		name = dwarf_diename(&type);
		if (depth >= 1 && dwarf_tag(&type) == DW_TAG_structure_type && name) {
			if (!strcmp(name, "sk_buff")) {
				*index = idx;
				*levels = depth;
				ret = 0;
				break;
			}
			/* ip_list_rcv(struct list_head *head, ...): a list of skbs */
			if (!strcmp(name, "list_head") && depth == 1 && strstr(pname, "head")) {
				*index = idx;
				*levels = 0;
				ret = 0;
				break;
			}
		}
		idx++;
	} while (!dwarf_siblingof(&child, &child));
out:
	free(scopes);
	return ret;
}

/* The first top-level DIE with @tag named @name that is a definition (not
 * a declaration), in any CU. */
static bool find_top_level(struct symtab *s, int tag, const char *name, Dwarf_Die *out)
{
	Dwfl_Module *mod = sym_dwfl_module(s);
	Dwarf_Addr bias;
	Dwarf *dw = mod ? dwfl_module_getdwarf(mod, &bias) : NULL;
	Dwarf_Off off = 0, next;
	size_t hsize;

	while (dw && !dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL)) {
		Dwarf_Die cu, child;

		if (dwarf_offdie(dw, off + hsize, &cu) && !dwarf_child(&cu, &child)) {
			do {
				const char *n = dwarf_diename(&child);

				if (dwarf_tag(&child) == tag && n && !strcmp(n, name) &&
				    !dwarf_hasattr(&child, DW_AT_declaration)) {
					*out = child;
					return true;
				}
			} while (!dwarf_siblingof(&child, &child));
		}
		off = next;
	}
	return false;
}

static bool find_struct(struct symtab *s, const char *name, Dwarf_Die *out)
{
	return find_top_level(s, DW_TAG_structure_type, name, out);
}

bool sym_dwarf_variable(struct symtab *s, const char *name, Dwarf_Die *out)
{
	return find_top_level(s, DW_TAG_variable, name, out);
}

bool sym_dwarf_member(Dwarf_Die *type, const char *member, Dwarf_Die *out, uint64_t *at)
{
	Dwarf_Die child;

	if (dwarf_child(type, &child))
		return false;
	do {
		Dwarf_Attribute attr;
		Dwarf_Word loc = 0;
		const char *n = dwarf_diename(&child);

		if (dwarf_tag(&child) != DW_TAG_member)
			continue;
		if (dwarf_attr(&child, DW_AT_data_member_location, &attr))
			dwarf_formudata(&attr, &loc);
		if (n && !strcmp(n, member)) {
			*out = child;
			*at += loc;
			return true;
		}
		if (!n) { /* an anonymous struct or union: look inside */
			Dwarf_Die inner;
			uint64_t sub = *at + loc;

			if (dwarf_attr_integrate(&child, DW_AT_type, &attr) && dwarf_formref_die(&attr, &inner) &&
			    sym_dwarf_strip(&inner) && sym_dwarf_member(&inner, member, out, &sub)) {
				*at = sub;
				return true;
			}
		}
	} while (!dwarf_siblingof(&child, &child));
	return false;
}

int sym_member(struct symtab *s, const char *type, const char *path, uint64_t *offset, uint64_t *size)
{
	char copy[256], *save = NULL;
	Dwarf_Die die, member;
	Dwarf_Attribute attr;

	*offset = 0;
	if (!find_struct(s, type, &die) || (size_t)snprintf(copy, sizeof(copy), "%s", path) >= sizeof(copy))
		return -ENOENT;
	for (char *m = strtok_r(copy, ".", &save); m; m = strtok_r(NULL, ".", &save)) {
		if (!sym_dwarf_member(&die, m, &member, offset))
			return -ENOENT;
		if (!dwarf_attr_integrate(&member, DW_AT_type, &attr) || !dwarf_formref_die(&attr, &die) ||
		    !sym_dwarf_strip(&die))
			return -ENOENT;
	}
	if (size) {
		int sz = dwarf_aggregate_size(&die, (Dwarf_Word *)size);

		if (sz)
			*size = 0;
	}
	return 0;
}

int sym_struct_size(struct symtab *s, const char *type, uint64_t *size)
{
	Dwarf_Die die;
	Dwarf_Word sz;

	if (!find_struct(s, type, &die) || dwarf_aggregate_size(&die, &sz))
		return -ENOENT;
	*size = sz;
	return 0;
}

int sym_dwarf_scopes(struct symtab *s, uint64_t addr, Dwarf_Die **scopes, uint64_t *dwarf_pc)
{
	Dwfl_Module *mod = sym_dwfl_module(s);
	Dwarf_Addr bias = 0, link = addr - s->offset;
	Dwarf_Die *cudie = mod ? dwfl_module_addrdie(mod, link, &bias) : NULL;

	*scopes = NULL;
	*dwarf_pc = link - bias;
	return cudie ? concrete_scopes(cudie, link - bias, scopes) : 0;
}

int sym_build_id(struct symtab *s, char *hex, size_t len)
{
	Dwfl_Module *mod = sym_dwfl_module(s);
	const unsigned char *bits;
	GElf_Addr vaddr;
	int n = mod ? dwfl_module_build_id(mod, &bits, &vaddr) : -1;

	if (n <= 0 || len < 2 * (size_t)n + 1)
		return -ENOENT;
	for (int i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", bits[i]);
	return 0;
}

Dwarf *sym_dwarf(struct symtab *s, uint64_t *to_running)
{
	Dwfl_Module *mod = sym_dwfl_module(s);
	Dwarf_Addr bias = 0;
	Dwarf *dw = mod ? dwfl_module_getdwarf(mod, &bias) : NULL;

	*to_running = bias + s->offset;
	return dw;
}

int sym_cfa(struct symtab *s, uint64_t addr, int *reg, int64_t *off)
{
	Dwfl_Module *mod = sym_dwfl_module(s);
	Dwarf_Addr bias = 0;
	Dwarf_CFI *cfi = mod ? dwfl_module_dwarf_cfi(mod, &bias) : NULL;
	Dwarf_Frame *frame = NULL;
	Dwarf_Op *ops;
	size_t nops;
	int ret = -ENOENT;

	if (!cfi)
		cfi = mod ? dwfl_module_eh_cfi(mod, &bias) : NULL;
	if (!cfi || dwarf_cfi_addrframe(cfi, addr - s->offset - bias, &frame))
		return -ENOENT;
	/* libdw gives a register-plus-offset rule as DW_OP_bregx reg, off. */
	if (!dwarf_frame_cfa(frame, &ops, &nops) && nops == 1 && ops[0].atom == DW_OP_bregx && ops[0].number <= 16) {
		*reg = (int)ops[0].number;
		*off = (int64_t)ops[0].number2;
		ret = 0;
	}
	free(frame);
	return ret;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct sym_entry *x = a, *y = b;

	return x->pc < y->pc ? -1 : x->pc > y->pc;
}

/* @die's range starting at @pc, onto @e; false without memory. */
static bool entries_add(struct sym_entries *e, Dwarf_Addr pc, const Dwarf_Die *die)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? 2 * e->cap : 256;
		struct sym_entry *v = realloc(e->v, cap * sizeof(*v));

		if (!v)
			return false;
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n++] = (struct sym_entry){ pc, *die };
	return true;
}

/* @cudie's functions (its top-level subprograms with code) by where each
 * of their address ranges starts (a function's entry, and where its
 * .cold part begins), into s->entries unless they are there already;
 * false without memory (the table is then empty, and read again next
 * time). */
static bool read_entries(struct symtab *s, Dwarf_Die *cudie)
{
	struct sym_entries *e = s->entries;
	Dwarf_Die child;

	if (e && e->unit == dwarf_dieoffset(cudie))
		return true;
	if (!e && !(e = s->entries = calloc(1, sizeof(*e))))
		return false;
	e->n = 0;
	e->unit = 0;
	for (int r = dwarf_child(cudie, &child); !r; r = dwarf_siblingof(&child, &child)) {
		Dwarf_Addr base, start, end;
		ptrdiff_t off = 0;

		if (dwarf_tag(&child) != DW_TAG_subprogram)
			continue;
		while ((off = dwarf_ranges(&child, off, &base, &start, &end)) > 0)
			if (!entries_add(e, start, &child)) {
				e->n = 0;
				return false;
			}
	}
	qsort(e->v, e->n, sizeof(*e->v), entry_cmp);
	e->unit = dwarf_dieoffset(cudie);
	return true;
}

/* The function of @cudie one of whose ranges starts at @pc (a DWARF
 * address); false when none starts there, or without memory. */
static bool function_at_entry(struct symtab *s, Dwarf_Die *cudie, Dwarf_Addr pc, Dwarf_Die *out)
{
	struct sym_entry key = { .pc = pc }, *hit;

	if (!read_entries(s, cudie))
		return false;
	hit = bsearch(&key, s->entries->v, s->entries->n, sizeof(key), entry_cmp);
	if (hit)
		*out = hit->die;
	return hit;
}

bool sym_dwarf_function(struct symtab *s, uint64_t addr, Dwarf_Die *out, uint64_t *dwarf_pc)
{
	Dwfl_Module *mod = sym_dwfl_module(s);
	Dwarf_Addr bias = 0, link = addr - s->offset;
	Dwarf_Die *cudie = mod ? dwfl_module_addrdie(mod, link, &bias) : NULL, *scopes = NULL;
	bool found = false;
	int n;

	*dwarf_pc = link - bias;
	if (cudie && function_at_entry(s, cudie, link - bias, out))
		return true;
	n = cudie ? concrete_scopes(cudie, link - bias, &scopes) : 0;
	for (int i = 0; i < n && !found; i++)
		if (dwarf_tag(&scopes[i]) == DW_TAG_subprogram) {
			*out = scopes[i];
			found = true;
		}
	free(scopes);
	return found;
}
