// SPDX-License-Identifier: MIT
/*
 * probes: the builtin probe sets, probe specs and probe files, resolved
 * against vmlinux before anything boots; probes in modules get their
 * addresses once their module is loaded (see probes.h).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dwloc.h"
#include "files.h"
#include "filter.h"
#include "linespec.h"
#include "packet.h"
#include "trace.h"
#include "stages.h"
#include "probes_priv.h"
#include "kerr.h"

/* A set's probes decode their skb: filters may name those fields. */
static const struct filter_extra packet_extra = { packet_field_names, packet_field_is_text, PACKET_NFIELDS };

static int compile_one(struct farg ***out, size_t *n, const char *text, struct symtab *syms,
		       const struct farg_scope *scope, char *err, size_t errlen)
{
	struct farg **tmp = realloc(*out, (*n + 1) * sizeof(*tmp));
	int ret;

	if (!tmp)
		return -ENOMEM;
	*out = tmp;
	ret = farg_compile(&tmp[*n], text, syms, scope, err, errlen);
	if (!ret)
		(*n)++;
	return ret;
}

/* $vars, as perf's: every variable in scope that can be read there. */
static int compile_vars(struct farg ***out, size_t *n, struct symtab *syms, const struct farg_scope *scope,
			char *err, size_t errlen)
{
	struct dwloc_var *v;
	size_t nv, before = *n;
	int ret = scope->at_return ? -EINVAL : dwloc_scope_vars(syms, scope->addr, &v, &nv);

	if (ret) {
		snprintf(err, errlen, "$vars: no variables in scope at 0x%" PRIx64 "%s", scope->addr,
			 scope->at_return ? " (a return probe has only $retval)" : " (no debug info there)");
		return ret == -ENOMEM ? ret : -EINVAL;
	}
	for (size_t i = 0; i < nv && ret != -ENOMEM; i++) {
		char text[160];

		/* A name every event has already (skb, pc) gets a var_ prefix. */
		snprintf(text, sizeof(text), "%s%s=%s", trace_field_reserved(v[i].name) ? "var_" : "", v[i].name,
			 v[i].name);
		ret = compile_one(out, n, text, syms, scope, err, errlen);
	}
	free(v);
	if (ret == -ENOMEM)
		return ret;
	if (*n == before) {
		snprintf(err, errlen, "$vars: no variable in scope can be read at 0x%" PRIx64 " (see kstep probe --vars)",
			 scope->addr);
		return -EINVAL;
	}
	return 0;
}

static int compile_args(struct farg ***out, size_t *n, char *const *texts, size_t ntexts,
			struct symtab *syms, const struct farg_scope *scope, char *err, size_t errlen)
{
	int ret = 0;

	for (size_t i = 0; i < ntexts && !ret; i++)
		ret = strcmp(texts[i], "$vars") ? compile_one(out, n, texts[i], syms, scope, err, errlen)
						: compile_vars(out, n, syms, scope, err, errlen);
	return ret;
}

/* Split @text at blanks into at most @max words of @buf. */
size_t probes_split_words(char *buf, char **words, size_t max)
{
	char *save = NULL;
	size_t n = 0;

	for (char *w = strtok_r(buf, " \t", &save); w && n < max; w = strtok_r(NULL, " \t", &save))
		words[n++] = w;
	return n;
}

/* The fetch arguments of probe @p at @addr: at the hit, and at its return. */
static int add_args(struct probe *p, const struct probe_req *rq, struct symtab *syms, uint64_t addr, bool at_entry,
		    char *err, size_t errlen)
{
	const struct sym *fn = sym_lookup_addr(syms, addr);
	struct farg_scope at = { .addr = addr, .at_entry = at_entry, .func = fn ? fn->addr : addr };
	struct farg_scope ret = { .addr = addr, .at_return = true, .func = at.func };
	char buf[512], *words[MAX_ARGS];
	size_t n;
	int e;

	if (rq->is_return && !rq->nargs) { /* a bare %return records $retval */
		char retval[] = "$retval", *def = retval;

		return compile_args(&p->ret_args, &p->nret_args, &def, 1, syms, &ret, err, errlen);
	}
	if (rq->is_return)
		return compile_args(&p->ret_args, &p->nret_args, rq->args, rq->nargs, syms, &ret, err, errlen);
	if ((e = compile_args(&p->args, &p->nargs, rq->args, rq->nargs, syms, &at, err, errlen)) || !rq->ret_args)
		return e;
	snprintf(buf, sizeof(buf), "%s", rq->ret_args);
	n = probes_split_words(buf, words, MAX_ARGS);
	return compile_args(&p->ret_args, &p->nret_args, words, n, syms, &ret, err, errlen);
}

int probes_add_one(struct probe_set *ps, const char *spec, const char *stage, uint64_t addr, bool entry,
		   struct symtab *syms, const struct probe_req *rq, char *err, size_t errlen)
{
	struct probe *tmp, *p = addr ? probes_find(ps, addr) : NULL;
	const struct sym *fn;
	int ret;

	if (p) {
		/* One breakpoint per address: a %return joins the probe there,
		 * an entry probe one that a %return made first, and fetch
		 * arguments given again add to the fields (a set's probe too). */
		bool had = rq->is_return ? p->on_return : p->entry_event;

		if (had && !rq->nargs)
			return 0;
		*(rq->is_return ? &p->on_return : &p->entry_event) = true;
		return add_args(p, rq, syms, p->addr, p->at_entry, err, errlen);
	}
	tmp = realloc(ps->v, (ps->n + 1) * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	ps->v = tmp;
	p = &ps->v[ps->n];
	memset(p, 0, sizeof(*p));
	fn = addr ? sym_lookup_addr(syms, addr) : NULL;
	p->spec = strdup(spec);
	p->stage = strdup(stage);
	p->event = strdup(rq->event ? rq->event : fn && fn->addr == addr ? fn->name : spec);
	if (!p->spec || !p->stage || !p->event) {
		free(p->spec);
		free(p->stage);
		free(p->event);
		return -ENOMEM;
	}
	p->event[strcspn(p->event, "+.")] = '\0'; /* a TSDL-friendly event name */
	p->addr = addr;
	p->at_entry = entry;
	p->skb_arg = -1;
	p->oops = !strcmp(stage, "oops");
	p->order = stage_order(stage);
	p->entry_event = !rq->is_return;
	p->on_return = rq->is_return || rq->ret_args;
	ps->n++;
	if (!addr)
		return 0; /* in a module: resolved when it is loaded */
	/* Arguments are only where the ABI puts them at the first instruction. */
	if (entry && sym_skb_param(syms, addr, &p->skb_arg, &p->skb_levels))
		p->skb_arg = -1;
	p->packet = (rq->packet || ps->packets) && p->skb_arg >= 0;
	ret = add_args(p, rq, syms, p->addr, p->at_entry, err, errlen);
	return ret;
}

struct symtab *probes_module_symtab(struct probe_set *ps, const char *module, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct probe_module *tmp;
	struct symtab *ko;

	for (size_t i = 0; i < ps->nmodules; i++)
		if (!strcmp(ps->modules[i].name, module))
			return ps->modules[i].syms;
	if (!ps->moddir || !kmods_find_file(ps->moddir, module, path, sizeof(path))) {
		snprintf(err, errlen, "no %s.ko with debug info below %s (give --modules DIR)", module,
			 ps->moddir ? ps->moddir : "any module directory");
		return NULL;
	}
	if (sym_open(&ko, path, err, errlen))
		return NULL;
	tmp = realloc(ps->modules, (ps->nmodules + 1) * sizeof(*tmp));
	if (!tmp || !(tmp[ps->nmodules].name = strdup(module))) {
		ps->modules = tmp ? tmp : ps->modules;
		sym_close(ko);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ps->modules = tmp;
	ps->modules[ps->nmodules++].syms = ko;
	return ko;
}

/* A module probe's fetch arguments, compiled against the module's DWARF at
 * the place its .ko gives the function (the programs hold registers and
 * offsets, so they run unchanged wherever the module is loaded). */
static int add_module_args(struct probe_set *ps, struct probe *p, const char *module, const char *where,
			   const struct probe_req *rq, char *err, size_t errlen)
{
	struct symtab *ko = probes_module_symtab(ps, module, err, errlen);
	uint64_t at;
	int ret;

	if (!ko)
		return -ENOENT;
	if ((ret = sym_resolve(ko, where, &at)))
		return kerr_set(err, errlen, ret, "no function '%s' in %s's debug info", where, sym_path(ko));
	return add_args(p, rq, ko, at, !strchr(where, '+'), err, errlen);
}

/* MODULE:NAME[+OFF]: a probe in a module, placed once it is loaded. */
int probes_add_in_module(struct probe_set *ps, const char *spec, const char *stage, const struct probe_req *rq,
			 char *err, size_t errlen)
{
	const char *colon = strchr(spec, ':');
	char module[64];
	int ret;

	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(module) || !colon[1])
		return kerr_set(err, errlen, -EINVAL, "cannot parse breakpoint '%s': use MODULE:NAME[+OFFSET]", spec);
	if (rq->is_return)
		return kerr_set(err, errlen, -EOPNOTSUPP, "'%s': %%return is not supported in modules yet", spec);
	snprintf(module, sizeof(module), "%.*s", (int)(colon - spec), spec);
	ret = probes_add_one(ps, spec, stage, 0, false, NULL, rq, err, errlen);
	if (!ret && !(ps->v[ps->n - 1].module = strdup(module)))
		ret = -ENOMEM;
	if (!ret && rq->nargs)
		ret = add_module_args(ps, &ps->v[ps->n - 1], module, colon + 1, rq, err, errlen);
	if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	return ret;
}

void probes_set_paths(struct probe_set *ps, struct symtab *syms, const char *vmlinux, const char *moddir,
		      const char *srcdir)
{
	if (!moddir) {
		kmods_default_dir(syms, ps->default_dirs[0], sizeof(ps->default_dirs[0]));
		moddir = ps->default_dirs[0][0] ? ps->default_dirs[0] : NULL;
	}
	ps->moddir = moddir;
	ps->srcdir = srcdir ? srcdir : files_kernel_source(vmlinux, ps->default_dirs[1], sizeof(ps->default_dirs[1]));
}

/* NAME[+OFF] that vmlinux lacks: a probe in the module that defines it.
 * True when one does (*ret: add_in_module's result). */
static bool in_a_module(struct probe_set *ps, const char *spec, const char *stage, const struct probe_req *rq,
			int *ret, char *err, size_t errlen)
{
	char name[128], module[64], full[256];

	snprintf(name, sizeof(name), "%.*s", (int)strcspn(spec, "+"), spec);
	if (!ps->moddir || !kmods_find_symbol(ps->moddir, name, module, sizeof(module)))
		return false;
	snprintf(full, sizeof(full), "%s:%s", module, spec);
	*ret = probes_add_in_module(ps, full, stage ? stage : "user", rq, err, errlen);
	return true;
}

/* "p:EVENT" / "r:EVENT" before the location, "%return" after it. */
static int parse_head(char **words, size_t *n, char **where, struct probe_req *rq, char *err, size_t errlen)
{
	char *pct;

	if (*n && (!strncmp(words[0], "p:", 2) || !strncmp(words[0], "r:", 2))) {
		rq->is_return = words[0][0] == 'r';
		rq->event = words[0] + 2;
		words++;
		(*n)--;
		if (!*rq->event || rq->event[strspn(rq->event, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
						       "0123456789_")]) {
			snprintf(err, errlen, "'%s' is not an event name (letters, digits, _)", rq->event);
			return -EINVAL;
		}
	}
	if (!*n) {
		snprintf(err, errlen, "a probe needs a location: NAME, NAME+OFFSET, 0xADDRESS or MODULE:NAME");
		return -EINVAL;
	}
	*where = words[0];
	if ((pct = strchr(*where, '%'))) {
		if (strcmp(pct, "%return"))
			return kerr_set(err, errlen, -EINVAL, "'%s': the only suffix is %%return", *where);
		*pct = '\0';
		rq->is_return = true;
	}
	rq->args = words + 1;
	rq->nargs = *n - 1;
	return 0;
}

static int resolve_where(struct probe_set *ps, const char *where, struct symtab *syms, uint64_t *addr, char *err,
			 size_t errlen)
{
	const struct sym *s;
	int ret = sym_resolve(syms, where, addr);

	if (ret == -ENOENT)
		snprintf(err, errlen, "unknown symbol '%s' in %s%s%s (check the name with: nm %s | grep -w NAME)", where,
			 sym_path(syms), ps->moddir ? " and its modules in " : "", ps->moddir ? ps->moddir : "",
			 sym_path(syms));
	else if (ret == -ERANGE) {
		s = sym_lookup_addr(syms, *addr);
		snprintf(err, errlen, "'%s' is past the end of its function (%s)", where,
			 s ? "it lands in another symbol" : "outside any symbol");
		ret = -EINVAL;
	} else if (ret)
		snprintf(err, errlen, "cannot parse breakpoint '%s': use NAME, NAME+OFFSET, 0xADDRESS or MODULE:NAME",
			 where);
	else if (!sym_in_text(syms, *addr)) {
		snprintf(err, errlen, "'%s' (0x%llx) is not in the kernel's text", where, (unsigned long long)*addr);
		ret = -EINVAL;
	}
	return ret;
}

/* A probe at each of @sites (freed), named as perf names them:
 * FUNC_L<line> (FUNC's relative line when the spec is FUNC:LINE or
 * FUNC;PATTERN), or the inlined function's name. */
static int add_sites(struct probe_set *ps, const char *where, struct line_sites *sites, const char *stage,
		     struct symtab *syms, const struct probe_req *rq, char *err, size_t errlen)
{
	int ret = 0;

	if (rq->is_return) {
		snprintf(err, errlen, "'%s%%return': a return probe goes on a function's first instruction", where);
		ret = -EINVAL;
	}
	for (size_t i = 0; i < sites->n && !ret; i++) {
		const struct line_site *l = &sites->v[i];
		char event[300];
		struct probe_req one = *rq;

		if (!l->line)
			snprintf(event, sizeof(event), "%s", l->inlined);
		else
			snprintf(event, sizeof(event), "%s_L%d", l->inlined[0] ? l->inlined : l->func,
				 l->rel >= 0 ? l->rel : l->line);
		if (!one.event)
			one.event = event;
		ret = probes_add_one(ps, where, stage, l->addr, false, syms, &one, err, errlen);
		if (!ret)
			probes_find(ps, l->addr)->named = true;
		if (ret == -ENOMEM)
			snprintf(err, errlen, "out of memory");
	}
	linespec_free(sites);
	return ret;
}

/* A plain function name (not NAME+OFF, not an address)? */
static bool is_name(const char *where)
{
	return where[0] && strspn(where, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") ==
				   strlen(where) && strncmp(where, "0x", 2);
}

/* MODULE:FUNC:LINE, MODULE:FILE:LINE, MODULE:FUNC;PATTERN. */
static bool module_line(const char *where)
{
	const char *colon = strchr(where, ':'), *semi = strchr(where, ';');

	return colon && (!semi || colon < semi) && linespec_is_line(colon + 1);
}

/* A line spec in a module: resolved against its .ko below ps->moddir, each
 * site becoming MODULE:FUNC+OFF, placed when the module is loaded. */
static int add_module_lines(struct probe_set *ps, const char *where, const char *stage,
			    const struct probe_req *rq, char *err, size_t errlen)
{
	const char *colon = strchr(where, ':');
	char module[64];
	struct symtab *ko;
	struct line_sites sites;
	int ret;

	snprintf(module, sizeof(module), "%.*s", (int)(colon - where), where);
	if (!(ko = probes_module_symtab(ps, module, err, errlen)))
		return -ENOENT;
	ret = linespec_resolve(ko, colon + 1, ps->srcdir, &sites, err, errlen);
	for (size_t i = 0; !ret && i < sites.n; i++) {
		const struct sym *fn = sym_lookup_addr(ko, sites.v[i].addr);
		char spec[256];

		if (!fn) {
			snprintf(err, errlen, "'%s': 0x%" PRIx64 " is in no function of %s", where, sites.v[i].addr,
				 sym_path(ko));
			ret = -ENOENT;
			break;
		}
		snprintf(spec, sizeof(spec), "%s:%s+0x%" PRIx64, module, fn->name, sites.v[i].addr - fn->addr);
		ret = probes_add_in_module(ps, spec, stage, rq, err, errlen);
	}
	linespec_free(&sites);
	return ret;
}

int probes_add_spec(struct probe_set *ps, const char *spec, const char *stage, struct symtab *syms,
		    char *err, size_t errlen)
{
	char buf[1024], *words[MAX_ARGS + 2], *where, why[256];
	struct probe_req rq = { 0 };
	struct line_sites sites;
	const struct sym *s;
	uint64_t addr;
	size_t n;
	int ret;

	if (snprintf(buf, sizeof(buf), "%s", spec) >= (int)sizeof(buf))
		return kerr_set(err, errlen, -EINVAL, "probe '%.40s...' is too long", spec);
	n = probes_split_words(buf, words, MAX_ARGS + 2);
	if ((ret = parse_head(words, &n, &where, &rq, err, errlen)))
		return ret;
	if (module_line(where))
		return add_module_lines(ps, where, stage ? stage : "user", &rq, err, errlen);
	if (linespec_is_line(where))
		return linespec_resolve(syms, where, ps->srcdir, &sites, err, errlen) ?:
		       add_sites(ps, where, &sites, stage ? stage : "user", syms, &rq, err, errlen);
	if (strchr(where, ':'))
		return probes_add_in_module(ps, where, stage ? stage : "user", &rq, err, errlen);
	ret = resolve_where(ps, where, syms, &addr, err, errlen);
	if (ret == -ENOENT && in_a_module(ps, where, stage, &rq, &ret, err, errlen))
		return ret;
	/* A name with no symbol of its own: a function GCC inlined everywhere? */
	if (ret == -ENOENT && is_name(where) && !linespec_inlines(syms, where, &sites, why, sizeof(why)))
		return add_sites(ps, where, &sites, stage ? stage : "user", syms, &rq, err, errlen);
	if (ret)
		return ret;
	s = sym_lookup_addr(syms, addr);
	if (rq.is_return && !(s && s->addr == addr && s->func)) {
		snprintf(err, errlen, "'%s%%return': a return probe goes on a function's first instruction", where);
		return -EINVAL;
	}
	ret = probes_add_one(ps, where, stage ? stage : "user", addr, s && s->addr == addr && s->func, syms, &rq, err, errlen);
	if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	/* A function GCC also inlined somewhere: a probe on each instance too,
	 * as perf places them (the out-of-line copy stays the first probe). */
	if (!ret && !rq.is_return && is_name(where) && !linespec_inlines(syms, where, &sites, why, sizeof(why)))
		ret = add_sites(ps, where, &sites, stage ? stage : "user", syms, &rq, err, errlen);
	return ret;
}

int probes_set_filter(struct probe_set *ps, size_t first, const char *text, struct symtab *syms, char *err,
		      size_t errlen)
{
	size_t applied = 0;
	char why[512] = "";

	for (size_t i = first; i < ps->n; i++) {
		struct probe *p = &ps->v[i];
		const struct sym *fn = p->addr ? sym_lookup_addr(syms, p->addr) : NULL;
		struct farg_scope at = { .addr = p->addr, .at_entry = p->at_entry, .func = fn ? fn->addr : p->addr };
		struct filter *f;
		int ret;

		if (!p->addr || !p->entry_event)
			continue;
		ret = filter_compile(&f, text, p->args, p->nargs, p->packet ? &packet_extra : NULL, syms, &at, why,
				     sizeof(why));
		if (ret == -ENOMEM)
			return ret;
		if (ret)
			continue;
		filter_free(p->filter);
		p->filter = f;
		applied++;
	}
	if (!applied) {
		snprintf(err, errlen, "--filter '%s' fits none of its probes: %s", text, why[0] ? why : "no probe");
		return -EINVAL;
	}
	return 0;
}

int probes_load_file(struct probe_set *ps, const char *path, const char *nic, struct symtab *syms,
		     char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[512];
	int lineno = 0, ret = 0;

	if (!f) {
		snprintf(err, errlen, "cannot read probe file %s: %s", path, strerror(errno));
		return -errno;
	}
	while (!ret && fgets(line, sizeof(line), f)) {
		char *save = NULL, *a, *b, whole[512];

		lineno++;
		line[strcspn(line, "#\n")] = '\0';
		snprintf(whole, sizeof(whole), "%s", line);
		a = strtok_r(line, " \t", &save);
		if (!a)
			continue;
		b = strtok_r(NULL, " \t", &save);
		if (!strcmp(a, "set")) {
			ret = b ? probes_add_set(ps, b, nic, syms) : -EINVAL;
			if (ret)
				snprintf(err, errlen, "%s:%d: unknown probe set '%s' (have %s)", path, lineno,
					 b ? b : "", probes_set_names());
		} else {
			char msg[384];
			/* "SPEC STAGE", or a probe with fetch arguments */
			bool fetches = b && strpbrk(b, "=$%(");

			ret = probes_add_spec(ps, fetches ? whole : a, fetches ? NULL : b, syms, msg, sizeof(msg));
			if (ret)
				snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
		}
	}
	fclose(f);
	return ret;
}

void probes_relocate(struct probe_set *ps, uint64_t offset)
{
	for (size_t i = 0; i < ps->n; i++)
		if (!ps->v[i].module)
			ps->v[i].addr += offset;
}

size_t probes_resolve_modules(struct probe_set *ps, probes_lookup_fn lookup, void *ctx)
{
	size_t resolved = 0;

	for (size_t i = 0; i < ps->n; i++) {
		struct probe *p = &ps->v[i];
		char symbol[128], *plus;
		unsigned long long off = 0;
		uint64_t addr;

		if (!p->module || p->addr)
			continue;
		snprintf(symbol, sizeof(symbol), "%s", strchr(p->spec, ':') + 1);
		if ((plus = strchr(symbol, '+'))) {
			*plus = '\0';
			off = strtoull(plus + 1, NULL, 0);
		}
		if (lookup(ctx, p->module, symbol, &addr))
			continue;
		p->addr = addr + off;
		p->at_entry = !off;
		resolved++;
	}
	return resolved;
}

size_t probes_unresolve(struct probe_set *ps, uint64_t lo, uint64_t hi)
{
	size_t n = 0;

	for (size_t i = 0; i < ps->n; i++)
		if (ps->v[i].module && ps->v[i].addr >= lo && ps->v[i].addr < hi) {
			ps->v[i].addr = 0;
			n++;
		}
	return n;
}

struct probe *probes_find(struct probe_set *ps, uint64_t addr)
{
	for (size_t i = 0; addr && i < ps->n; i++)
		if (ps->v[i].addr == addr)
			return &ps->v[i];
	return NULL;
}

void probes_free(struct probe_set *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		struct probe *p = &ps->v[i];

		free(p->spec);
		free(p->stage);
		free(p->module);
		free(p->event);
		for (size_t j = 0; j < p->nargs; j++)
			farg_free(p->args[j]);
		for (size_t j = 0; j < p->nret_args; j++)
			farg_free(p->ret_args[j]);
		free(p->args);
		free(p->ret_args);
		filter_free(p->filter);
	}
	for (size_t i = 0; i < ps->nskipped; i++)
		free(ps->skipped[i]);
	for (size_t i = 0; i < ps->nmodules; i++) {
		free(ps->modules[i].name);
		sym_close(ps->modules[i].syms);
	}
	free(ps->modules);
	free(ps->v);
	free(ps->skipped);
	memset(ps, 0, sizeof(*ps));
}

/* ---- the trace's event classes ------------------------------------------ */

static enum trace_field_type field_type(const struct farg *a)
{
	switch (farg_out_type(a)) {
	case FARG_OUT_S64:
		return TRACE_FIELD_S64;
	case FARG_OUT_X64:
		return TRACE_FIELD_X64;
	case FARG_OUT_STRING:
		return TRACE_FIELD_STRING;
	default:
		return TRACE_FIELD_U64;
	}
}

/* A class of @args (+ the packet's fields, + the call's durations). */
static int make_class(struct trace_class *c, const char *kind, const char *event, struct farg *const *args,
		      size_t nargs, bool packet, bool durations, char *err, size_t errlen)
{
	size_t n = nargs + (packet ? PACKET_NFIELDS : 0) + (durations ? 2 : 0), k = 0;
	struct trace_field *f = calloc(n ? n : 1, sizeof(*f));
	char *name = malloc(strlen(kind) + strlen(event) + 8);

	if (!f || !name) {
		free(f);
		free(name);
		return -ENOMEM;
	}
	sprintf(name, "kstep:%s:%s", kind, event);
	for (size_t i = 0; i < nargs; i++)
		f[k++] = (struct trace_field){ farg_name(args[i]), field_type(args[i]) };
	for (size_t i = 0; packet && i < PACKET_NFIELDS; i++)
		f[k++] = (struct trace_field){ packet_field_names[i],
					       packet_field_is_text[i] ? TRACE_FIELD_STRING : TRACE_FIELD_U64 };
	if (durations) {
		f[k++] = (struct trace_field){ "duration_ns", TRACE_FIELD_U64 };
		f[k++] = (struct trace_field){ "wall_ns", TRACE_FIELD_U64 };
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j <= i; j++) {
			bool reserved = j == i && trace_field_reserved(f[i].name);

			if (!reserved && (j == i || strcmp(f[i].name, f[j].name)))
				continue;
			snprintf(err, errlen, "probe %s: a field named '%s' %s", event, f[i].name,
				 reserved ? "is one every event has already: name it otherwise (NAME=EXPR)"
					  : "comes twice: name one otherwise (NAME=EXPR)");
			free(f);
			free(name);
			return -EINVAL;
		}
	*c = (struct trace_class){ name, f, n };
	return 0;
}

int probes_trace_classes(struct probe_set *ps, struct trace_class **out, size_t *n, char *err, size_t errlen)
{
	struct trace_class *c = calloc(2 * ps->n + 1, sizeof(*c));
	size_t k = 0;
	int ret = c ? 0 : -ENOMEM;

	for (size_t i = 0; i < ps->n && !ret; i++) {
		struct probe *p = &ps->v[i];

		if (p->entry_event && (p->nargs || p->packet || p->named)) {
			ret = make_class(&c[k], "stop", p->event, p->args, p->nargs, p->packet, false, err, errlen);
			p->class_id = TRACE_CLASS_BASE + (uint32_t)k++;
		}
		if (!ret && p->on_return) {
			ret = make_class(&c[k], "return", p->event, p->ret_args, p->nret_args, false, true, err, errlen);
			p->ret_class_id = TRACE_CLASS_BASE + (uint32_t)k++;
		}
	}
	if (ret) {
		if (ret == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		probes_free_classes(c, k);
		return ret;
	}
	*out = c;
	*n = k;
	return 0;
}

void probes_free_classes(struct trace_class *classes, size_t n)
{
	for (size_t i = 0; classes && i < n; i++) {
		free((char *)classes[i].name);
		free((struct trace_field *)classes[i].fields);
	}
	free(classes);
}
