/* SPDX-License-Identifier: MIT */
/*
 * probes: named sets of breakpoints. A probe is a code address with a stage
 * name and, where the DWARF says so, the argument that carries the skb; it
 * may fetch fields (fetcharg.h), keep only hits its filter matches, and
 * record its function's return ($retval, the call's duration).
 *   rx        the network receive path, stage by stage (the default)
 *   rx-full   rx from the NIC's interrupt to recvfrom() returning
 *   tx        sendto() to the driver's transmit and the skb's free
 *   drops     kfree_skb_reason: every drop with its reason
 *   syscalls  the socket system calls, entry and return
 *   oops      where the kernel dies: oops_begin, __warn, panic (live catch)
 * Spec syntax: [p:EVENT |r:EVENT ]WHERE[%return] [FETCHARG...], WHERE being
 * NAME[+OFF], 0xADDR, MODULE:NAME[+OFF], or a line as linespec.h names
 * one (FUNC:RELLINE, FILE:LINE, FUNC;PATTERN, an inlined FUNC; MODULE:
 * before any of them): a probe on each of its statement starts.
 */
#ifndef KSTEP_PROBES_H
#define KSTEP_PROBES_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fetcharg.h"
#include "symbols.h"

struct probe {
	char *spec;        /* as given: name, name+off, 0xaddr or module:name[+off] */
	char *module;      /* code in this module, NULL: vmlinux */
	char *stage;       /* receive-path stage, "oops", or "user" */
	unsigned int order; /* the stage's place on the receive path, 0: none */
	uint64_t addr;     /* 0: in a module not loaded yet */
	bool at_entry;     /* addr is a function's first instruction */
	int skb_arg;       /* argument register index, -1: none */
	int skb_levels;    /* 1: sk_buff *, 2: sk_buff **, 0: list_head of skbs */
	bool oops;         /* hitting it freezes the guest for gdb */
	uint64_t hits;
	char *event;       /* its events' name: the function, or p:EVENT's */
	bool entry_event;  /* record a stop at the hit (not for a bare %return) */
	bool on_return;    /* record the function's return too */
	bool packet;       /* decode the skb's headers into fields (the sets) */
	bool named;        /* a line or an inline instance: its events carry its name */
	struct farg **args, **ret_args; /* fetched at the hit, at the return */
	size_t nargs, nret_args;
	struct filter *filter;          /* of the hit's fields; NULL: every hit */
	uint32_t class_id, ret_class_id; /* the trace's event classes, 0: none */
	uint64_t returns;  /* returns recorded */
};

/* A module's debug info, kept while its probes' fields point into it. */
struct probe_module {
	char *name;
	struct symtab *syms;
};

struct probe_set {
	struct probe *v;
	size_t n;
	char **skipped;    /* functions of a builtin set this vmlinux lacks */
	size_t nskipped;
	const char *moddir; /* modules' debug info, for names vmlinux lacks; NULL: none */
	const char *srcdir; /* the kernel's source, for FUNC;PATTERN specs; NULL: none */
	char default_dirs[2][PATH_MAX]; /* probes_set_paths's defaults for the two above */
	struct probe_module *modules; /* opened for module probes' fields */
	size_t nmodules;
	bool packets;       /* every probe with an skb decodes its packet (--pcap-filter) */
};

/* What a real drop is at kfree_skb_reason: a free that frees (not NULL,
 * not only a reference dropped), the drops set's filter. */
extern const char probes_real_drop[];

/* Where the set's probes find modules' debug info and the kernel's source:
 * @moddir and @srcdir when given, else the release's module directory and
 * the tree @vmlinux was built from (when make images recorded it). */
void probes_set_paths(struct probe_set *ps, struct symtab *syms, const char *vmlinux, const char *moddir,
		      const char *srcdir);
/* Add builtin set @names (see above), or each set of a comma-separated
 * list of them ("rx,oops"). @nic picks the driver stage. -ENOENT, and
 * nothing added, for a name that is no set. */
int probes_add_set(struct probe_set *ps, const char *names, const char *nic, struct symtab *syms);
/* The names of the builtin sets, for messages: "rx, rx-full, ..., none". */
const char *probes_set_names(void);
/* --filter @text on the probes from index @first on: on each whose fields
 * or DWARF it compiles against. -EINVAL with the reason if on none. */
int probes_set_filter(struct probe_set *ps, size_t first, const char *text, struct symtab *syms, char *err,
		      size_t errlen);
/* Add one SPEC; -ENOENT with a message for an unknown symbol. MODULE:NAME
 * [+OFF] waits for MODULE to be loaded (probes_resolve_modules); so does a
 * NAME that vmlinux lacks and a module below ps->moddir defines. */
int probes_add_spec(struct probe_set *ps, const char *spec, const char *stage, struct symtab *syms,
		    char *err, size_t errlen);
/* A file of lines "SPEC [STAGE]" or "set NAME", '#' comments. */
int probes_load_file(struct probe_set *ps, const char *path, const char *nic, struct symtab *syms,
		     char *err, size_t errlen);
struct probe *probes_find(struct probe_set *ps, uint64_t addr);
/* Where module @module's function @symbol runs; 0 or -ENOENT. */
typedef int (*probes_lookup_fn)(void *ctx, const char *module, const char *symbol, uint64_t *addr);
/* Module @module's debug info (MODULE.ko below ps->moddir), opened once for
 * the set: its probes' fields keep pointers into it. NULL with the reason
 * in @err. */
struct symtab *probes_module_symtab(struct probe_set *ps, const char *module, char *err, size_t errlen);
/* Give the probes in modules their addresses where @lookup knows them.
 * Returns how many got one. */
size_t probes_resolve_modules(struct probe_set *ps, probes_lookup_fn lookup, void *ctx);
/* Probes in a module whose code in [@lo, @hi) is going lose their address
 * (probes_resolve_modules gives them one again when it comes back). */
size_t probes_unresolve(struct probe_set *ps, uint64_t lo, uint64_t hi);
/* KASLR: probes are resolved against vmlinux before anything boots; move
 * them where the kernel runs, @offset above its link address. Once. */
void probes_relocate(struct probe_set *ps, uint64_t offset);
void probes_free(struct probe_set *ps);

struct trace_class;
/* The trace's event classes for the probes that record fields (a stop's,
 * a return's: "kstep:stop:EVENT", "kstep:return:EVENT"); sets each probe's
 * class ids. -EINVAL with a message for a field name the trace reserves. */
int probes_trace_classes(struct probe_set *ps, struct trace_class **out, size_t *n, char *err, size_t errlen);
void probes_free_classes(struct trace_class *classes, size_t n);

#endif
