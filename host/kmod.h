/* SPDX-License-Identifier: MIT */
/*
 * kmod: the kernel modules loaded in the guest, read from its memory
 * (the `modules` list, through the DWARF of struct module and of its
 * section attributes), with where each section is and where each module's
 * debug info is (NAME.ko below a directory, as decode_stacktrace.sh looks).
 */
#ifndef KSTEP_KMOD_H
#define KSTEP_KMOD_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "symbols.h"
#include "unwind.h"

struct kmod_section {
	char name[64];
	uint64_t addr;
};

struct kmod {
	char name[64];
	uint64_t base, size, text_size;  /* its core layout: code first */
	struct kmod_section *sects;
	size_t nsects;
	char path[PATH_MAX];             /* its debug info, "" when not found */
};

struct kmods;

/* -ENOTSUP (with @err) for a kernel without modules or without the DWARF
 * of struct module. @moddir "" : the debug path of the vmlinux's release. */
int kmods_new(struct kmods **out, struct symtab *vmlinux, const char *moddir, char *err, size_t errlen);
void kmods_free(struct kmods *k);
/* Read the module list again (the guest stopped). *added: modules not seen before. */
int kmods_scan(struct kmods *k, unwind_read_fn read, void *ctx, size_t *added);
/* The module whose struct module is at @mod is going (free_module): drop
 * it from the list; its name and range into @gone. -ENOENT if not known. */
int kmods_forget(struct kmods *k, unwind_read_fn read, void *ctx, uint64_t mod, struct kmod *gone);
const struct kmod *kmods_list(const struct kmods *k, size_t *n);
const char *kmods_dir(const struct kmods *k);
/* Find @name.ko below @dir ('_' and '-' alike) into @out. */
bool kmods_find_file(const char *dir, const char *name, char *out, size_t len);
/* Which module below @dir defines function @name (the first found), into
 * @module; false if none. Reads every module's symbol table: for a name
 * vmlinux lacks, once. */
bool kmods_find_symbol(const char *dir, const char *name, char *module, size_t len);
/* /usr/lib/debug/lib/modules/RELEASE of @vmlinux's banner, else /lib/modules/RELEASE. */
void kmods_default_dir(struct symtab *vmlinux, char *out, size_t len);

#endif
