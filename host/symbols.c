// SPDX-License-Identifier: MIT
/*
 * symbols: vmlinux's symbols from libelf, lines and inlines from libdw (see
 * symbols.h); KASLR moves every symbol by one offset.
 */
#include "symbols.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "files.h"

struct symtab {
	char *path;
	int fd;
	Elf *elf;
	struct sym *syms;        /* sorted by address */
	size_t nsyms;
	struct sym **by_name;    /* sorted by name */
	char *strings;           /* copy of .strtab */
	uint64_t stext, etext;
	uint64_t sinittext, einittext; /* __init code: text until the kernel frees it after boot */
	uint64_t offset;         /* KASLR: where the kernel runs minus its link address */
	Dwfl *dwfl;              /* opened on first use */
	Dwfl_Module *mod;
	bool dwfl_failed;
};

static const Dwfl_Callbacks offline_callbacks = {
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.section_address = dwfl_offline_section_address,
};

static int cmp_addr(const void *a, const void *b)
{
	const struct sym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	/* Among aliases, sized functions first: they give the best name. */
	if (x->func != y->func)
		return x->func ? -1 : 1;
	return (x->size < y->size) - (x->size > y->size);
}

static int cmp_name(const void *a, const void *b)
{
	const struct sym *const *x = a, *const *y = b;
	int c = strcmp((*x)->name, (*y)->name);

	if (c)
		return c;
	return (*x)->func == (*y)->func ? 0 : (*x)->func ? -1 : 1;
}

const char *sym_path(const struct symtab *s)
{
	return s->path;
}

static Dwfl_Module *dwarf_module(struct symtab *s);

/*
 * A kernel module (ET_REL): its symbols' values are offsets in their
 * sections. libdwfl lays the sections out when it reports the file, and
 * its line table uses that layout: take the symbols from it, so names and
 * lines agree.
 */
static int load_relocatable_symtab(struct symtab *s)
{
	Dwfl_Module *mod = dwarf_module(s);
	int n = mod ? dwfl_module_getsymtab(mod) : -1;

	if (n <= 0)
		return -ENOEXEC;
	s->syms = calloc((size_t)n, sizeof(*s->syms));
	if (!s->syms)
		return -ENOMEM;
	for (int i = 1; i < n; i++) {
		GElf_Sym es;
		GElf_Addr addr;
		GElf_Word shndx;
		const char *name = dwfl_module_getsym_info(mod, i, &es, &addr, &shndx, NULL, NULL);
		int type = GELF_ST_TYPE(es.st_info);

		if (!name || !*name || shndx == SHN_UNDEF || shndx == SHN_ABS ||
		    (type != STT_FUNC && type != STT_OBJECT && type != STT_NOTYPE))
			continue;
		s->syms[s->nsyms++] = (struct sym){ .name = name, .addr = addr, .size = es.st_size,
						    .func = type == STT_FUNC };
	}
	return 0;
}

static int load_symtab(struct symtab *s, char *err, size_t errlen)
{
	Elf_Scn *scn = NULL;
	GElf_Ehdr eh;
	GElf_Shdr sh;

	if (gelf_getehdr(s->elf, &eh) && eh.e_type == ET_REL) {
		int ret = load_relocatable_symtab(s);

		if (ret == -ENOMEM)
			return ret;
		goto sort;
	}

	while ((scn = elf_nextscn(s->elf, scn))) {
		Elf_Data *data, *strdata;
		size_t n;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB)
			continue;
		data = elf_getdata(scn, NULL);
		strdata = elf_getdata(elf_getscn(s->elf, sh.sh_link), NULL);
		if (!data || !strdata)
			break;
		s->strings = malloc(strdata->d_size + 1);
		n = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
		s->syms = calloc(n ? n : 1, sizeof(*s->syms));
		if (!s->strings || !s->syms)
			return -ENOMEM;
		memcpy(s->strings, strdata->d_buf, strdata->d_size);
		s->strings[strdata->d_size] = '\0';
		for (size_t i = 0; i < n; i++) {
			GElf_Sym es;
			int type;

			if (!gelf_getsym(data, (int)i, &es) || !es.st_value || es.st_name >= strdata->d_size)
				continue;
			type = GELF_ST_TYPE(es.st_info);
			if (type != STT_FUNC && type != STT_OBJECT && type != STT_NOTYPE)
				continue;
			if (es.st_shndx == SHN_UNDEF || es.st_shndx == SHN_ABS)
				continue;
			s->syms[s->nsyms++] = (struct sym){
				.name = s->strings + es.st_name,
				.addr = es.st_value,
				.size = es.st_size,
				.func = type == STT_FUNC,
			};
			if (!strcmp(s->strings + es.st_name, "_stext"))
				s->stext = es.st_value;
			else if (!strcmp(s->strings + es.st_name, "_etext"))
				s->etext = es.st_value;
			else if (!strcmp(s->strings + es.st_name, "_sinittext"))
				s->sinittext = es.st_value;
			else if (!strcmp(s->strings + es.st_name, "_einittext"))
				s->einittext = es.st_value;
		}
		break;
	}
sort:
	if (!s->nsyms) {
		snprintf(err, errlen, "%s has no symbol table (build the kernel with symbols: make images)", s->path);
		return -ENOEXEC;
	}
	qsort(s->syms, s->nsyms, sizeof(*s->syms), cmp_addr);
	s->by_name = malloc(s->nsyms * sizeof(*s->by_name));
	if (!s->by_name)
		return -ENOMEM;
	for (size_t i = 0; i < s->nsyms; i++)
		s->by_name[i] = &s->syms[i];
	qsort(s->by_name, s->nsyms, sizeof(*s->by_name), cmp_name);
	return 0;
}

int sym_open(struct symtab **out, const char *path, char *err, size_t errlen)
{
	struct symtab *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return -ENOMEM;
	s->fd = -1;
	s->path = strdup(path);
	if (!s->path) {
		ret = -ENOMEM;
		goto fail;
	}
	elf_version(EV_CURRENT);
	s->fd = files_open_regular(path);
	if (s->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open %s: %s",
			 path, strerror(errno));
		goto fail;
	}
	s->elf = elf_begin(s->fd, ELF_C_READ_MMAP, NULL);
	if (!s->elf || elf_kind(s->elf) != ELF_K_ELF) {
		snprintf(err, errlen, "%s is not an ELF file (want the kernel's vmlinux, not bzImage)", path);
		ret = -ENOEXEC;
		goto fail;
	}
	ret = load_symtab(s, err, errlen);
	if (ret)
		goto fail;
	*out = s;
	return 0;
fail:
	if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory reading %s", path);
	sym_close(s);
	return ret;
}

void sym_close(struct symtab *s)
{
	if (!s)
		return;
	if (s->dwfl)
		dwfl_end(s->dwfl);
	if (s->elf)
		elf_end(s->elf);
	if (s->fd >= 0)
		close(s->fd);
	free(s->syms);
	free(s->by_name);
	free(s->strings);
	free(s->path);
	free(s);
}

const struct sym *sym_lookup_addr(const struct symtab *s, uint64_t addr)
{
	size_t lo = 0, hi = s->nsyms;
	const struct sym *best;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->syms[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return NULL;
	best = &s->syms[lo - 1];
	/* Step back over aliases at the same address to the preferred one. */
	while (best > s->syms && best[-1].addr == best->addr)
		best--;
	if (best->size && addr >= best->addr + best->size) {
		/* Past the end of a sized symbol: only unsized labels may cover it. */
		const struct sym *next = best + 1 < s->syms + s->nsyms ? best + 1 : NULL;

		if (!next || next->addr > addr)
			return addr - best->addr < 0x1000 && !best->func ? best : NULL;
	}
	return best;
}

void sym_relocate(struct symtab *s, uint64_t offset)
{
	uint64_t delta = offset - s->offset; /* modulo 2^64: may move down again */

	for (size_t i = 0; i < s->nsyms; i++)
		s->syms[i].addr += delta;
	if (s->stext && s->etext) {
		s->stext += delta;
		s->etext += delta;
	}
	if (s->sinittext && s->einittext) {
		s->sinittext += delta;
		s->einittext += delta;
	}
	s->offset = offset;
}

uint64_t sym_offset(const struct symtab *s)
{
	return s->offset;
}

void sym_text_range(const struct symtab *s, uint64_t *start, uint64_t *end)
{
	*start = s->stext;
	*end = s->etext;
}

uint64_t sym_span(const struct symtab *s, const struct sym *sym)
{
	/* syms is sorted by address and @sym points into it. */
	for (const struct sym *n = sym + 1; n < s->syms + s->nsyms; n++)
		if (n->func && n->addr > sym->addr)
			return n->addr - sym->addr;
	return 0;
}

const struct sym *sym_lookup_name(const struct symtab *s, const char *name)
{
	size_t lo = 0, hi = s->nsyms;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(s->by_name[mid]->name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < s->nsyms && !strcmp(s->by_name[lo]->name, name))
		return s->by_name[lo];
	/* GCC clones keep the name with a suffix: foo.constprop.0, foo.isra.0,
	 * foo.part.0. The first one (sorted) stands for the function. */
	if (lo < s->nsyms && !strncmp(s->by_name[lo]->name, name, strlen(name)) &&
	    s->by_name[lo]->name[strlen(name)] == '.' && s->by_name[lo]->func)
		return s->by_name[lo];
	return NULL;
}

int sym_resolve(const struct symtab *s, const char *spec, uint64_t *addr)
{
	char name[256], *end;
	const char *plus = strchr(spec, '+');
	const struct sym *sym;
	uint64_t off = 0;
	size_t nl;

	if (!*spec)
		return -EINVAL;
	if (!strncmp(spec, "0x", 2) || !strncmp(spec, "0X", 2)) {
		*addr = strtoull(spec, &end, 16);
		return *end || end == spec + 2 ? -EINVAL : 0;
	}
	nl = plus ? (size_t)(plus - spec) : strlen(spec);
	if (!nl || nl >= sizeof(name))
		return -EINVAL;
	memcpy(name, spec, nl);
	name[nl] = '\0';
	if (plus) {
		errno = 0;
		off = strtoull(plus + 1, &end, 0);
		if (*end || end == plus + 1 || errno)
			return -EINVAL;
	}
	sym = sym_lookup_name(s, name);
	if (!sym)
		return -ENOENT;
	*addr = sym->addr + off;
	return sym->size && off >= sym->size ? -ERANGE : 0;
}

void sym_format(const struct symtab *s, uint64_t addr, char *out, size_t len)
{
	const struct sym *sym = sym_lookup_addr(s, addr);

	if (!sym)
		snprintf(out, len, "0x%" PRIx64, addr);
	else if (addr == sym->addr)
		snprintf(out, len, "%s", sym->name);
	else
		snprintf(out, len, "%s+0x%" PRIx64, sym->name, addr - sym->addr);
}

void sym_format_return(const struct symtab *s, uint64_t addr, char *out, size_t len)
{
	const struct sym *sym = addr ? sym_lookup_addr(s, addr - 1) : NULL;

	if (!sym)
		snprintf(out, len, "0x%" PRIx64, addr);
	else
		snprintf(out, len, "%s+0x%" PRIx64, sym->name, addr - sym->addr);
}

bool sym_in_text(const struct symtab *s, uint64_t addr)
{
	/* Init code is text while the kernel boots (what its own
	 * __kernel_text_address says before it frees init memory): boot-time
	 * calls (initcalls, bus_register ...) return into it. */
	if (s->sinittext && addr >= s->sinittext && addr < s->einittext)
		return true;
	if (s->stext && s->etext)
		return addr >= s->stext && addr < s->etext;
	return sym_lookup_addr(s, addr) != NULL;
}

int sym_read_bytes(const struct symtab *s, uint64_t addr, void *out, size_t len)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	addr -= s->offset;
	while ((scn = elf_nextscn(s->elf, scn))) {
		Elf_Data *data;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS)
			continue;
		if (addr < sh.sh_addr || addr + len > sh.sh_addr + sh.sh_size)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data || !data->d_buf || addr - sh.sh_addr + len > data->d_size)
			return -EIO;
		memcpy(out, (char *)data->d_buf + (addr - sh.sh_addr), len);
		return 0;
	}
	return -ENOENT;
}

/* Lazily report the vmlinux to an offline Dwfl. Dwfl opens its own fd. */
static Dwfl_Module *dwarf_module(struct symtab *s)
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

int sym_srclocs(struct symtab *s, uint64_t addr, struct sym_srcloc *out, int max)
{
	Dwfl_Module *mod = dwarf_module(s);
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
	Dwfl_Module *mod = dwarf_module(s);
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

/* From the bzImage's setup header (Documentation/x86/boot.rst): "HdrS" at
 * 0x202, and at 0x20e the offset (from 0x200) of a string that repeats the
 * banner without its compiler part: "6.1.0 (user@host) #1 SMP ...". */
#define BZ_MAGIC_OFF 0x202
#define BZ_VERSION_PTR_OFF 0x20e
#define BZ_SETUP_BASE 0x200

static int bzimage_version(const char *path, char *out, size_t len)
{
	uint8_t hdr[BZ_VERSION_PTR_OFF + 2];
	int fd = files_open_regular(path);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = pread(fd, hdr, sizeof(hdr), 0);
	if (n != (ssize_t)sizeof(hdr) || memcmp(hdr + BZ_MAGIC_OFF, "HdrS", 4)) {
		close(fd);
		return -ENOEXEC;
	}
	n = pread(fd, out, len - 1, BZ_SETUP_BASE + (hdr[BZ_VERSION_PTR_OFF] | hdr[BZ_VERSION_PTR_OFF + 1] << 8));
	close(fd);
	if (n <= 0)
		return -ENOEXEC;
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
	return 0;
}

/* Does the banner "Linux version REL (BY@HOST) (COMPILER) UTSVERSION" match
 * the bzImage's "REL (BY@HOST) UTSVERSION"? */
static bool banner_matches(const char *banner, const char *version)
{
	const char *by_end = strstr(version, ") ");
	size_t head = by_end ? (size_t)(by_end - version) + 1 : strlen(version);
	size_t blen = strlen(banner), vlen;

	if (strncmp(banner, "Linux version ", 14) || strncmp(banner + 14, version, head))
		return false;
	version = by_end ? by_end + 2 : "";
	vlen = strlen(version);
	while (blen && (banner[blen - 1] == '\n' || banner[blen - 1] == '\0'))
		blen--;
	return blen >= vlen && !memcmp(banner + blen - vlen, version, vlen);
}

int sym_check_bzimage(const struct symtab *s, const char *bzimage, char *err, size_t errlen)
{
	const struct sym *b = sym_lookup_name(s, "linux_banner");
	char banner[512] = "", version[512];
	int ret = bzimage_version(bzimage, version, sizeof(version));

	if (ret) {
		snprintf(err, errlen, "%s is not a kernel image (%s)", bzimage,
			 ret == -ENOEXEC ? "no bzImage setup header" : strerror(-ret));
		return ret;
	}
	if (!b || !b->size || sym_read_bytes(s, b->addr, banner, b->size < sizeof(banner) ? b->size : sizeof(banner) - 1)) {
		snprintf(err, errlen, "%s has no linux_banner: is it a vmlinux?", s->path);
		return -ENOENT;
	}
	banner[sizeof(banner) - 1] = '\0';
	if (!banner_matches(banner, version)) {
		banner[strcspn(banner, "\n")] = '\0';
		snprintf(err, errlen, "%s is from another build than %s: the image is '%.150s', the vmlinux '%.200s'; "
			 "pass the vmlinux built with it (--vmlinux PATH) or rebuild both (make images)",
			 s->path, bzimage, version, banner);
		return -ESTALE;
	}
	return 0;
}

/* The first top-level DIE with @tag named @name that is a definition (not
 * a declaration), in any CU. */
static bool find_top_level(struct symtab *s, int tag, const char *name, Dwarf_Die *out)
{
	Dwfl_Module *mod = dwarf_module(s);
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
	Dwfl_Module *mod = dwarf_module(s);
	Dwarf_Addr bias = 0, link = addr - s->offset;
	Dwarf_Die *cudie = mod ? dwfl_module_addrdie(mod, link, &bias) : NULL;

	*scopes = NULL;
	*dwarf_pc = link - bias;
	return cudie ? concrete_scopes(cudie, link - bias, scopes) : 0;
}

int sym_build_id(struct symtab *s, char *hex, size_t len)
{
	Dwfl_Module *mod = dwarf_module(s);
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
	Dwfl_Module *mod = dwarf_module(s);
	Dwarf_Addr bias = 0;
	Dwarf *dw = mod ? dwfl_module_getdwarf(mod, &bias) : NULL;

	*to_running = bias + s->offset;
	return dw;
}

int sym_cfa(struct symtab *s, uint64_t addr, int *reg, int64_t *off)
{
	Dwfl_Module *mod = dwarf_module(s);
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

bool sym_dwarf_function(struct symtab *s, uint64_t addr, Dwarf_Die *out, uint64_t *dwarf_pc)
{
	Dwfl_Module *mod = dwarf_module(s);
	Dwarf_Addr bias = 0, link = addr - s->offset;
	Dwarf_Die *cudie = mod ? dwfl_module_addrdie(mod, link, &bias) : NULL, *scopes = NULL;
	int n = cudie ? concrete_scopes(cudie, link - bias, &scopes) : 0;
	bool found = false;

	for (int i = 0; i < n && !found; i++)
		if (dwarf_tag(&scopes[i]) == DW_TAG_subprogram) {
			*out = scopes[i];
			found = true;
		}
	free(scopes);
	*dwarf_pc = link - bias;
	return found;
}
