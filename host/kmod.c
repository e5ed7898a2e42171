// SPDX-License-Identifier: MIT
/*
 * kmod: the guest's module list and each module's sections and debug file
 * (see kmod.h).
 */
#include "kmod.h"

#include <dirent.h>
#include <fcntl.h>
#include <gelf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "files.h"

/* Bounds on what a corrupt list could make kstep read. */
#define MAX_MODULES 4096
#define MAX_SECTIONS 512

/* Where struct module and its section attributes keep what kstep reads
 * (6.1's layout; from the vmlinux's DWARF, so other versions work alike). */
struct layout {
	uint64_t list, name, name_len, base, size, text_size, sect_attrs;
	uint64_t nsections, attrs, attr_size, attr_name, attr_addr;
};

struct kmods {
	struct layout at;
	struct symtab *syms;          /* vmlinux's: `modules` moves with KASLR */
	char dir[PATH_MAX];
	struct kmod *v;
	size_t n;
};

static int find_layout(struct symtab *s, struct layout *at)
{
	static const struct {
		const char *type, *member;
		size_t field;
	} want[] = {
		{ "module", "list", offsetof(struct layout, list) },
		{ "module", "name", offsetof(struct layout, name) },
		{ "module", "core_layout.base", offsetof(struct layout, base) },
		{ "module", "core_layout.size", offsetof(struct layout, size) },
		{ "module", "core_layout.text_size", offsetof(struct layout, text_size) },
		{ "module", "sect_attrs", offsetof(struct layout, sect_attrs) },
		{ "module_sect_attrs", "nsections", offsetof(struct layout, nsections) },
		{ "module_sect_attrs", "attrs", offsetof(struct layout, attrs) },
		{ "module_sect_attr", "battr.attr.name", offsetof(struct layout, attr_name) },
		{ "module_sect_attr", "address", offsetof(struct layout, attr_addr) },
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (sym_member(s, want[i].type, want[i].member, (uint64_t *)((char *)at + want[i].field), NULL))
			return -ENOTSUP;
	/* char name[MODULE_NAME_LEN]: 56 on 64-bit, but the DWARF says. */
	if (sym_member(s, "module", "name", &at->name, &at->name_len) || !at->name_len)
		return -ENOTSUP;
	return sym_struct_size(s, "module_sect_attr", &at->attr_size) ? -ENOTSUP : 0;
}

int kmods_new(struct kmods **out, struct symtab *vmlinux, const char *moddir, char *err, size_t errlen)
{
	const struct sym *head = sym_lookup_name(vmlinux, "modules");
	struct kmods *k = calloc(1, sizeof(*k));

	if (!k)
		return -ENOMEM;
	if (!head || head->func || find_layout(vmlinux, &k->at)) {
		snprintf(err, errlen, "%s has no loadable modules (or no DWARF for struct module)", sym_path(vmlinux));
		free(k);
		return -ENOTSUP;
	}
	k->syms = vmlinux;
	if (moddir && *moddir)
		snprintf(k->dir, sizeof(k->dir), "%s", moddir);
	else
		kmods_default_dir(vmlinux, k->dir, sizeof(k->dir));
	*out = k;
	return 0;
}

static void free_list(struct kmod *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].sects);
	free(v);
}

void kmods_free(struct kmods *k)
{
	if (!k)
		return;
	free_list(k->v, k->n);
	free(k);
}

const struct kmod *kmods_list(const struct kmods *k, size_t *n)
{
	*n = k->n;
	return k->v;
}

const char *kmods_dir(const struct kmods *k)
{
	return k->dir;
}

static int read_u64(unwind_read_fn read, void *ctx, uint64_t addr, uint64_t *v)
{
	return read(ctx, addr, v, sizeof(*v));
}

/* A NUL-terminated string at @addr, read in small pieces (it may end
 * just before unreadable memory). */
static int read_str(unwind_read_fn read, void *ctx, uint64_t addr, char *out, size_t len)
{
	for (size_t i = 0; i + 8 <= len; i += 8) {
		if (read(ctx, addr + i, out + i, 8))
			return -EFAULT;
		if (memchr(out + i, '\0', 8))
			return 0;
	}
	out[len - 1] = '\0';
	return 0;
}

static int read_sections(struct kmods *k, unwind_read_fn read, void *ctx, uint64_t mod, struct kmod *km)
{
	uint64_t attrs, n = 0;

	if (read_u64(read, ctx, mod + k->at.sect_attrs, &attrs) || !attrs ||
	    read(ctx, attrs + k->at.nsections, &n, 4) || (n &= 0xffffffff) > MAX_SECTIONS)
		return -EFAULT;
	km->sects = calloc(n ? n : 1, sizeof(*km->sects));
	if (!km->sects)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t a = attrs + k->at.attrs + i * k->at.attr_size, name;
		struct kmod_section *sec = &km->sects[km->nsects];

		if (read_u64(read, ctx, a + k->at.attr_name, &name) || read_u64(read, ctx, a + k->at.attr_addr, &sec->addr) ||
		    read_str(read, ctx, name, sec->name, sizeof(sec->name)))
			continue;
		km->nsects++;
	}
	return 0;
}

static int read_module(struct kmods *k, unwind_read_fn read, void *ctx, uint64_t mod, struct kmod *km)
{
	/* Below sizeof(km->name), so the terminator fits after it. */
	size_t name_len = k->at.name_len < sizeof(km->name) ? k->at.name_len : sizeof(km->name) - 1;
	uint32_t size = 0, text = 0;

	memset(km, 0, sizeof(*km));
	if (read(ctx, mod + k->at.name, km->name, name_len) ||
	    read_u64(read, ctx, mod + k->at.base, &km->base) || read(ctx, mod + k->at.size, &size, 4) ||
	    read(ctx, mod + k->at.text_size, &text, 4))
		return -EFAULT;
	km->name[name_len] = '\0';
	km->size = size;
	km->text_size = text;
	if (!kmods_find_file(k->dir, km->name, km->path, sizeof(km->path)))
		km->path[0] = '\0';
	return read_sections(k, read, ctx, mod, km);
}

static bool known(const struct kmods *k, const struct kmod *km)
{
	for (size_t i = 0; i < k->n; i++)
		if (k->v[i].base == km->base && !strcmp(k->v[i].name, km->name))
			return true;
	return false;
}

int kmods_scan(struct kmods *k, unwind_read_fn read, void *ctx, size_t *added)
{
	uint64_t head = sym_lookup_name(k->syms, "modules")->addr, node;
	struct kmod *v = calloc(MAX_MODULES, sizeof(*v));
	size_t n = 0;
	int err = 0;

	*added = 0;
	if (!v)
		return -ENOMEM;
	if (read_u64(read, ctx, head, &node))
		err = -EFAULT;
	while (!err && node != head && n < MAX_MODULES) {
		if (read_module(k, read, ctx, node - k->at.list, &v[n]) == 0) {
			*added += !known(k, &v[n]);
			n++;
		}
		if (read_u64(read, ctx, node, &node))
			err = -EFAULT;
	}
	if (err) {
		free_list(v, n);
		return err;
	}
	free_list(k->v, k->n);
	k->v = v;
	k->n = n;
	return 0;
}

int kmods_forget(struct kmods *k, unwind_read_fn read, void *ctx, uint64_t mod, struct kmod *gone)
{
	struct kmod km;
	int err = read_module(k, read, ctx, mod, &km);

	if (err)
		return err;
	free(km.sects);
	for (size_t i = 0; i < k->n; i++)
		if (k->v[i].base == km.base && !strcmp(k->v[i].name, km.name)) {
			*gone = k->v[i];
			free(gone->sects);
			gone->sects = NULL;
			gone->nsects = 0;
			k->v[i] = k->v[--k->n];
			return 0;
		}
	return -ENOENT;
}

/* Is @file the module @name? The file may spell '_' as '-'. */
static bool module_file(const char *file, const char *name)
{
	size_t n = strlen(name);

	if (strlen(file) != n + 3 || strcmp(file + n, ".ko"))
		return false;
	for (size_t i = 0; i < n; i++)
		if (file[i] != name[i] && !(strchr("_-", file[i]) && strchr("_-", name[i])))
			return false;
	return true;
}

/* Depth-first over the .ko files below @dir until @match(path, file, ctx)
 * says true. */
static bool walk_ko(const char *dir, int depth, bool (*match)(const char *path, const char *file, void *ctx),
		    void *ctx)
{
	DIR *d = depth < 8 ? opendir(dir) : NULL;
	struct dirent *de;
	bool found = false;

	while (d && !found && (de = readdir(d))) {
		char path[PATH_MAX];
		size_t n = strlen(de->d_name);

		if (de->d_name[0] == '.' || (size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= sizeof(path))
			continue;
		if (de->d_type == DT_DIR)
			found = walk_ko(path, depth + 1, match, ctx);
		else if (n > 3 && !strcmp(de->d_name + n - 3, ".ko"))
			found = match(path, de->d_name, ctx);
	}
	if (d)
		closedir(d);
	return found;
}

/* What a walk looks for and where the answer goes. */
struct ko_query {
	const char *name;
	char *out;
	size_t len;
};

static bool file_is_module(const char *path, const char *file, void *ctx)
{
	struct ko_query *q = ctx;

	return module_file(file, q->name) && (size_t)snprintf(q->out, q->len, "%s", path) < q->len;
}

bool kmods_find_file(const char *dir, const char *name, char *out, size_t len)
{
	struct ko_query q = { name, out, len };

	return dir && *dir && walk_ko(dir, 0, file_is_module, &q);
}

void kmods_default_dir(struct symtab *vmlinux, char *out, size_t len)
{
	const struct sym *b = sym_lookup_name(vmlinux, "linux_banner");
	char banner[128] = "", release[64];

	char path[PATH_MAX];

	out[0] = '\0';
	if (!b || sym_read_bytes(vmlinux, b->addr, banner, sizeof(banner) - 1) ||
	    sscanf(banner, "Linux version %63s", release) != 1)
		return;
	snprintf(path, sizeof(path), "/usr/lib/debug/lib/modules/%s", release);
	if (access(path, R_OK))
		snprintf(path, sizeof(path), "/lib/modules/%s", release);
	if (!access(path, R_OK) && strlen(path) < len)
		memcpy(out, path, strlen(path) + 1);
}

/* Does the ELF file @path define function @name? */
static bool defines(const char *path, const char *name)
{
	int fd = files_open_regular(path);
	Elf *elf = fd < 0 ? NULL : elf_begin(fd, ELF_C_READ_MMAP, NULL);
	Elf_Scn *scn = NULL;
	bool found = false;
	GElf_Shdr sh;

	while (elf && !found && (scn = elf_nextscn(elf, scn))) {
		Elf_Data *data;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB || !(data = elf_getdata(scn, NULL)))
			continue;
		for (size_t i = 0; !found && sh.sh_entsize && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym sym;
			const char *n;

			found = gelf_getsym(data, (int)i, &sym) && GELF_ST_TYPE(sym.st_info) == STT_FUNC &&
				sym.st_shndx != SHN_UNDEF && (n = elf_strptr(elf, sh.sh_link, sym.st_name)) &&
				!strcmp(n, name);
		}
	}
	if (elf)
		elf_end(elf);
	if (fd >= 0)
		close(fd);
	return found;
}

static bool module_defines(const char *path, const char *file, void *ctx)
{
	struct ko_query *q = ctx;

	if (!defines(path, q->name))
		return false;
	/* The module's name: the file's, with '-' as '_'. */
	snprintf(q->out, q->len, "%.*s", (int)(strlen(file) - 3), file);
	for (char *p = q->out; *p; p++)
		*p = *p == '-' ? '_' : *p;
	return true;
}

bool kmods_find_symbol(const char *dir, const char *name, char *module, size_t len)
{
	struct ko_query q = { name, module, len };

	elf_version(EV_CURRENT);
	return dir && *dir && walk_ko(dir, 0, module_defines, &q);
}
