// SPDX-License-Identifier: MIT
/*
 * symbols: vmlinux's symbols from libelf, lines and inlines from libdw (see
 * symbols.h); KASLR moves every symbol by one offset.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "files.h"
#include "symbols_priv.h"
#include "kerr.h"

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

/*
 * A kernel module (ET_REL): its symbols' values are offsets in their
 * sections. libdwfl lays the sections out when it reports the file, and
 * its line table uses that layout: take the symbols from it, so names and
 * lines agree.
 */
static int load_relocatable_symtab(struct symtab *s)
{
	Dwfl_Module *mod = sym_dwfl_module(s);
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
	s->memo = calloc(1, sizeof(*s->memo));
	if (!s->path || !s->memo) {
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
	if (s->entries)
		free(s->entries->v);
	free(s->entries);
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
	free(s->memo);
	free(s);
}

const struct sym *sym_lookup_addr(const struct symtab *s, uint64_t addr)
{
	size_t lo = 0, hi = s->nsyms;
	const struct sym *best;

	if (s->memo->sym && addr >= s->memo->lo && addr < s->memo->hi)
		return s->memo->sym;
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
	/* The same answer up to the next symbol, or the end of this one. */
	*s->memo = (struct sym_memo){ .lo = best->addr, .sym = best,
				      .hi = lo < s->nsyms ? s->syms[lo].addr : UINT64_MAX };
	if (best->size && best->addr + best->size < s->memo->hi)
		s->memo->hi = best->addr + best->size;
	return best;
}

void sym_relocate(struct symtab *s, uint64_t offset)
{
	uint64_t delta = offset - s->offset; /* modulo 2^64: may move down again */

	s->memo->sym = NULL;

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
	if (!b || !b->size || sym_read_bytes(s, b->addr, banner, b->size < sizeof(banner) ? b->size : sizeof(banner) - 1))
		return kerr_set(err, errlen, -ENOENT, "%s has no linux_banner: is it a vmlinux?", s->path);
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
