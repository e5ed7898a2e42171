// SPDX-License-Identifier: MIT
/*
 * kstep probe, where probes can go and what they can fetch,
 * from vmlinux's (or a module's) DWARF with no guest running, as perf
 * probe's -L and -V show it:
 *   kstep probe SPEC...          the addresses each probe spec resolves to
 *   kstep probe --lines WHAT     the source, lines that can take a probe numbered
 *   kstep probe --vars SPEC      the variables readable at each of SPEC's addresses
 */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dwloc.h"
#include "files.h"
#include "linespec.h"

#include "cmd.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: kstep probe [OPTIONS] SPEC...\n"
		   "       kstep probe [OPTIONS] --lines FUNC[:A[-B]] | FILE[:A[-B]]\n"
		   "       kstep probe [OPTIONS] --vars SPEC\n"
		   "Where probes can go and what they can fetch, read from the debug info with no\n"
		   "guest running (perf probe -L and -V). SPEC is a probe location as --break takes\n"
		   "it: NAME[+OFF], 0xADDR, FUNC:RELLINE, FILE:LINE, 'FUNC;PATTERN', an inlined\n"
		   "function's NAME, MODULE: before any of them.\n\n"
		   "  -L, --lines WHAT       the source of a function (lines counted from its first)\n"
		   "                         or a file, each line that can take a probe numbered\n"
		   "  -V, --vars SPEC        the variables in scope at each address of SPEC, with\n"
		   "                         their types; those that cannot be read there, and why\n"
		   "  -k, --vmlinux FILE     the kernel's vmlinux (default: the images' one)\n"
		   "  -m, --modules DIR      the modules' debug info (default: beside the vmlinux)\n"
		   "  -s, --source DIR       the kernel's source tree (default: the tree the vmlinux\n"
		   "                         was built from, when make images recorded it)\n"
		   "      --kaslr-offset N   print running addresses, N above the link addresses\n"
		   "  -h, --help             this help\n"
		   "Exit: 0 resolved, 1 not (the reason on stderr), 2 bad usage.\n");
}

struct probe_opts {
	char vmlinux[PATH_MAX + 16];
	char moddir[PATH_MAX];
	char srcdir[PATH_MAX];
	uint64_t kaslr;
	const char *lines, *vars;
};

/* Each site of @spec: its address, function, source line and event. */
static int show_sites(struct symtab *syms, struct probe_set *ps, const char *spec)
{
	char err[1024];
	size_t first = ps->n;

	if (probes_add_spec(ps, spec, NULL, syms, err, sizeof(err))) {
		say_error("%s", err);
		return EXIT_FAILED;
	}
	for (size_t i = first; i < ps->n; i++) {
		const struct probe *p = &ps->v[i];
		struct sym_srcloc loc[16];
		char at[192];
		int n;

		if (!p->addr) {
			printf("%-18s %s (placed when module %s is loaded)\n", "-", p->spec, p->module);
			continue;
		}
		sym_format(syms, p->addr, at, sizeof(at));
		n = sym_srclocs(syms, p->addr, loc, 16);
		printf("0x%016" PRIx64 " %-36s %s:%d", p->addr, at, n > 0 ? loc[0].file : "??", n > 0 ? loc[0].line : 0);
		if (n > 1)
			printf(" (in %s, inlined into %s)", loc[0].function, loc[n - 1].function);
		printf("  event %s\n", p->event);
	}
	return 0;
}

/* MODULE:WHAT names a module's function or file: @what's rest, with *syms
 * the module's debug info. NULL (the reason in @err) for an unknown module. */
static const char *module_part(struct probe_set *ps, const char *what, struct symtab **syms, char *err,
			       size_t errlen)
{
	const char *colon = strchr(what, ':');
	char module[64];

	if (!colon || isdigit((unsigned char)colon[1]))
		return what; /* FUNC, FUNC:RANGE, FILE, FILE:RANGE */
	snprintf(module, sizeof(module), "%.*s", (int)(colon - what), what);
	return (*syms = probes_module_symtab(ps, module, err, errlen)) ? colon + 1 : NULL;
}

static int show_lines(struct symtab *syms, struct probe_set *ps, const struct probe_opts *o)
{
	struct line_range r;
	char err[1024], path[PATH_MAX], **text = NULL;
	const char *what = module_part(ps, o->lines, &syms, err, sizeof(err));
	int ret = what ? linespec_lines(syms, what, &r, err, sizeof(err)) : -ENOENT;

	if (ret) {
		say_error("%s", err);
		return EXIT_FAILED;
	}
	if (!linespec_source_path(ps->srcdir, r.file, path, sizeof(path)) ||
	    files_read_lines(path, r.first, r.last, &text) < 0)
		say_error("no source for %s (give --source DIR): the lines with code only",
			r.file);
	printf("<%s%s%s:%d>\n", r.func, r.func[0] ? "@" : "", r.file, r.first - r.base);
	for (int l = r.first; l <= r.last && (!text || text[l - r.first]); l++) {
		if (r.has_code[l - r.first])
			printf("%7d%s%s\n", l - r.base, text ? "  " : "", text ? text[l - r.first] : "");
		else if (text)
			printf("         %s\n", text[l - r.first]);
	}
	files_free_lines(text, r.first, r.last);
	linespec_range_free(&r);
	return 0;
}

/* farg_compile's message without its "fetch argument 'NAME': " lead. */
static const char *reason(const char *err)
{
	const char *p = strstr(err, "': ");

	return !strncmp(err, "fetch argument '", 16) && p ? p + 3 : err;
}

/* "\t(a constant here)" for a variable whose value the DWARF gives as a
 * constant at @addr (perf probe cannot show those). */
static const char *constant(struct symtab *syms, struct dwloc_var *v, uint64_t addr)
{
	struct dwloc loc;
	char err[512];

	return !dwloc_at(syms, &v->die, addr, &loc, err, sizeof(err)) && loc.kind == DWLOC_CONST ? "\t(a constant here)"
												 : "";
}

/* "\t(of NAME)" for a variable of an inline instance at the address, not
 * of the out-of-line function @outer itself. */
static const char *whose(const struct dwloc_var *v, const char *outer, char *out, size_t len)
{
	if (!strncmp(v->function, outer, strcspn(outer, ".")) && strlen(v->function) == strcspn(outer, "."))
		return "";
	snprintf(out, len, "\t(of %s)", v->function);
	return out;
}

/* The variables at one probe address: readable ones with their types, then
 * those that are not, with the reason. */
static void show_vars_at(struct symtab *syms, uint64_t addr, bool at_entry)
{
	const struct sym *fn = sym_lookup_addr(syms, addr);
	struct farg_scope scope = { .addr = addr, .at_entry = at_entry, .func = fn ? fn->addr : addr };
	struct dwloc_var *v;
	char at[192], err[1024], owner[80];
	size_t n;
	bool any_bad = false;

	sym_format(syms, addr, at, sizeof(at));
	printf("\t@<%s>\n", at);
	if (dwloc_scope_vars(syms, addr, &v, &n)) {
		printf("\t\t(no debug info here)\n");
		return;
	}
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			struct farg *a;
			bool ok = !farg_compile(&a, v[i].name, syms, &scope, err, sizeof(err));

			if (ok)
				farg_free(a);
			if (ok != !pass)
				continue;
			if (pass && !any_bad)
				printf("\tnot readable here:\n");
			any_bad |= pass;
			printf("\t\t%s\t%s%s%s%s%s\n", v[i].type, v[i].name, pass ? "" : constant(syms, &v[i], addr),
			       whose(&v[i], fn ? fn->name : "", owner, sizeof(owner)), pass ? "\t" : "",
			       pass ? reason(err) : "");
		}
	free(v);
}

static int show_vars(struct symtab *syms, struct probe_set *ps, const char *spec)
{
	char err[1024];

	if (probes_add_spec(ps, spec, NULL, syms, err, sizeof(err))) {
		say_error("%s", err);
		return EXIT_FAILED;
	}
	printf("Available variables at %s\n", spec);
	for (size_t i = 0; i < ps->n; i++) {
		const struct probe *p = &ps->v[i];
		struct symtab *ko;
		uint64_t at;

		if (p->addr) {
			show_vars_at(syms, p->addr, p->at_entry);
			continue;
		}
		/* In a module: at the place its .ko gives MODULE:FUNC+OFF. */
		if (!(ko = probes_module_symtab(ps, p->module, err, sizeof(err))) ||
		    sym_resolve(ko, strchr(p->spec, ':') + 1, &at)) {
			say_error("%s: %s", p->spec, ko ? "not in the module's debug info" : err);
			return EXIT_FAILED;
		}
		show_vars_at(ko, at, !strchr(p->spec, '+'));
	}
	return 0;
}

static int parse(int argc, char **argv, struct probe_opts *o)
{
	static const struct option longopts[] = {
		{ "lines", required_argument, NULL, 'L' },
		{ "vars", required_argument, NULL, 'V' },
		{ "vmlinux", required_argument, NULL, 'k' },
		{ "modules", required_argument, NULL, 'm' },
		{ "source", required_argument, NULL, 's' },
		{ "kaslr-offset", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "L:V:k:m:s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'L':
			o->lines = optarg;
			break;
		case 'V':
			o->vars = optarg;
			break;
		case 'k':
			snprintf(o->vmlinux, sizeof(o->vmlinux), "%s", optarg);
			break;
		case 'm':
			snprintf(o->moddir, sizeof(o->moddir), "%s", optarg);
			break;
		case 's':
			snprintf(o->srcdir, sizeof(o->srcdir), "%s", optarg);
			break;
		case 'O':
			errno = 0;
			o->kaslr = strtoull(optarg, &end, 0);
			if (errno || *end || end == optarg) {
				say_error("--kaslr-offset %s: not a number", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			say_error("unknown option (see 'kstep probe --help')");
			return EXIT_USAGE;
		}
	}
	if (!!o->lines + !!o->vars + (optind < argc) != 1) {
		say_error("give SPEC..., --lines WHAT or --vars SPEC (one of them)");
		return EXIT_USAGE;
	}
	return 0;
}

int cmd_probe(int argc, char **argv)
{
	struct guest_opts g;
	struct probe_opts o = { 0 };
	struct probe_set ps = { 0 };
	struct symtab *syms;
	char err[512];
	int ret = parse(argc, argv, &o);

	if (ret)
		return ret < 0 ? 0 : ret;
	if (!o.vmlinux[0]) { /* the one a guest command would take */
		guest_defaults(&g);
		guest_finish_defaults(&g);
		snprintf(o.vmlinux, sizeof(o.vmlinux), "%s", g.vmlinux);
	}
	if (sym_open(&syms, o.vmlinux, err, sizeof(err))) {
		say_error("%s", err);
		return EXIT_FAILED;
	}
	sym_relocate(syms, o.kaslr);
	probes_set_paths(&ps, syms, o.vmlinux, o.moddir[0] ? o.moddir : NULL, o.srcdir[0] ? o.srcdir : NULL);
	if (o.lines)
		ret = show_lines(syms, &ps, &o);
	else if (o.vars)
		ret = show_vars(syms, &ps, o.vars);
	for (int i = optind; !o.lines && !o.vars && i < argc && !ret; i++)
		ret = show_sites(syms, &ps, argv[i]);
	probes_free(&ps);
	sym_close(syms);
	return ret;
}
