// SPDX-License-Identifier: MIT
/*
 * oops: the oops decoder (see oops.h): reports found line by line in a log,
 * frames decoded with libdw, Code: bytes with Capstone.
 */
#include "oops.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "disasm.h"
#include "kmod.h"
#include "kerr.h"

#define MAX_INLINE 16
/* The Code: line holds 64 bytes at most (show_opcodes in arch/x86/kernel/dumpstack.c). */
#define MAX_CODE 128

static bool is_ident(int c)
{
	return isalnum(c) || c == '_' || c == '.' || c == '$';
}

bool oops_parse_frame(const char *line, struct oops_frame *f)
{
	const char *p = line;

	memset(f, 0, sizeof(*f));
	while ((p = strstr(p, "+0x"))) {
		const char *name = p, *seg = NULL, *q;
		char *end;
		uint64_t off, size;

		while (name > line && is_ident((unsigned char)name[-1]))
			name--;
		if (name == p) {
			p += 3;
			continue;
		}
		off = strtoull(p + 3, &end, 16);
		if (end == p + 3 || end[0] != '/' || strncmp(end + 1, "0x", 2)) {
			p += 3;
			continue;
		}
		q = end + 3;
		size = strtoull(q, &end, 16);
		if (end == q || (end[0] && !isspace((unsigned char)end[0]) && end[0] != ']' && end[0] != ')')) {
			p += 3;
			continue;
		}
		/* "RIP: 0010:func+0x1/0x2": the code segment is part of the token. */
		if (name - line >= 5 && name[-1] == ':' && isxdigit((unsigned char)name[-2]))
			for (seg = name - 1; seg > line && isxdigit((unsigned char)seg[-1]);)
				seg--;
		f->start = (size_t)((seg ? seg : name) - line);
		f->end = (size_t)(end - line);
		if (seg)
			snprintf(f->segment, sizeof(f->segment), "%.*s", (int)(name - seg), seg);
		snprintf(f->name, sizeof(f->name), "%.*s", (int)(p - name), name);
		f->offset = off;
		f->size = size;
		/* " [module]" or " [module buildid]" right after */
		if (end[0] == ' ' && end[1] == '[') {
			const char *close = strchr(end + 2, ']');

			if (close) {
				const char *sp = memchr(end + 2, ' ', (size_t)(close - end - 2));

				snprintf(f->module, sizeof(f->module), "%.*s",
					 (int)((sp ? sp : close) - (end + 2)), end + 2);
			}
		}
		for (q = line + f->start; q > line && q[-1] == ' ';)
			q--;
		f->unreliable = q > line && q[-1] == '?';
		return true;
	}
	return false;
}

/* Modules of one log whose debug info is kept open. */
#define MAX_MODULES 64

struct oops_decoder {
	struct symtab *syms;
	struct disasm *dis;
	char basepath[PATH_MAX];
	bool raw;         /* look return addresses up as printed (decode_stacktrace.sh 6.1) */
	bool json;
	json_object *cur;         /* JSON: the report being filled */
	int printed;              /* JSON: reports written out so far */
	int nreports, nframes;
	int nmodule, nmismatch, nunknown, nnoline; /* frames not decoded, by why */
	int report_frames;        /* frames in the current report */
	bool in_report, ended;
	uint64_t rip;             /* of the current report, for Code: */
	char moddir[PATH_MAX];    /* where modules' debug info is looked for */
	struct {
		char name[64];
		struct symtab *syms;  /* NULL: looked for, not found */
	} mods[MAX_MODULES];
	size_t nmods;
};

/* Strip the tree's prefix as decode_stacktrace.sh does (base path "auto":
 * the directory of kernel_init's init/main.c). */
static void find_basepath(struct oops_decoder *d)
{
	const struct sym *ki = sym_lookup_name(d->syms, "kernel_init");
	struct sym_srcloc loc[MAX_INLINE];
	char *p;

	if (!ki || sym_srclocs(d->syms, ki->addr, loc, MAX_INLINE) < 1)
		return;
	p = strstr(loc[0].file, "/init/main.c");
	if (p)
		snprintf(d->basepath, sizeof(d->basepath), "%.*s", (int)(p - loc[0].file), loc[0].file);
}

static const char *strip_base(const struct oops_decoder *d, const char *file)
{
	size_t n = strlen(d->basepath);

	if (n && !strncmp(file, d->basepath, n) && file[n] == '/')
		return file + n + 1;
	return file;
}

static bool report_header(const char *s)
{
	static const char *const heads[] = {
		"BUG: ", "Oops: ", "WARNING: CPU:", "Kernel panic - not syncing", "kernel BUG at",
		"general protection fault", "Internal error:", "Unable to handle kernel",
	};

	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++)
		if (strstr(s, heads[i]))
			return true;
	return false;
}

/* JSON goes out a report at a time, so a large log never sits in memory
 * as one document: "{ vmlinux, reports: [" first, "] }" at the end. */
static void flush_report(struct oops_decoder *d)
{
	if (!d->cur)
		return;
	printf("%s%s", d->printed++ ? ",\n" : "\n",
	       json_object_to_json_string_ext(d->cur, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(d->cur);
	d->cur = NULL;
}

static void begin_report(struct oops_decoder *d, const char *title)
{
	char t[256];

	d->nreports++;
	d->in_report = true;
	d->ended = false;
	d->report_frames = 0;
	d->rip = 0;
	if (!d->json)
		return;
	flush_report(d);
	snprintf(t, sizeof(t), "%s", title);
	t[strcspn(t, "\r\n")] = '\0';
	d->cur = json_object_new_object();
	json_object_object_add(d->cur, "title", json_object_new_string(t));
	json_object_object_add(d->cur, "frames", json_object_new_array());
}

/* Decode one frame: "func (loc loc ...)" into @out, JSON into the report. */
/* The symbols of module @name from its debug info, opened once; NULL if
 * it is not in moddir. */
static struct symtab *module_syms(struct oops_decoder *d, const char *name)
{
	char path[PATH_MAX], err[256];
	size_t i;

	for (i = 0; i < d->nmods; i++)
		if (!strcmp(d->mods[i].name, name))
			return d->mods[i].syms;
	if (i == MAX_MODULES)
		return NULL;
	snprintf(d->mods[i].name, sizeof(d->mods[i].name), "%s", name);
	d->mods[i].syms = NULL;
	if (kmods_find_file(d->moddir, name, path, sizeof(path)))
		sym_open(&d->mods[i].syms, path, err, sizeof(err));
	d->nmods++;
	return d->mods[i].syms;
}

static void decode_frame(struct oops_decoder *d, const struct oops_frame *f, bool is_rip, char *out, size_t outlen)
{
	struct symtab *syms = d->syms;
	const struct sym *s;
	struct sym_srcloc loc[MAX_INLINE];
	uint64_t addr, lookup;
	size_t off = 0;
	int n = 0;

	off += (size_t)snprintf(out, outlen, "%s%s", f->segment, f->name);
	if (f->module[0] && !(syms = module_syms(d, f->module))) {
		snprintf(out + off, outlen - off, " (in module %s: no debug info for it%s%s, not decoded)", f->module,
			 d->moddir[0] ? " in " : "; give --modules DIR", d->moddir);
		d->nmodule++;
		goto json;
	}
	s = sym_lookup_name(syms, f->name);
	if (!s) {
		snprintf(out + off, outlen - off, " (not in vmlinux, not decoded)");
		d->nunknown++;
		goto json;
	}
	if (!oops_size_fits(f->size, s->size, sym_span(syms, s))) {
		snprintf(out + off, outlen - off, " (size 0x%" PRIx64 " does not fit this vmlinux's %s: another build?)",
			 f->size, s->name);
		d->nmismatch++;
		goto json;
	}
	addr = s->addr + f->offset;
	/* A Call Trace entry is a return address: the call is the instruction
	 * before it, and at offset 0 there is no call to go back to. */
	lookup = !is_rip && !d->raw && f->offset ? addr - 1 : addr;
	if (is_rip && syms == d->syms)
		d->rip = addr; /* a module's addresses here are not where it ran */
	n = sym_srclocs(syms, lookup, loc, MAX_INLINE);
	if (n <= 0) {
		snprintf(out + off, outlen - off, " (no line information)");
		d->nnoline++;
		goto json;
	}
	off += (size_t)snprintf(out + off, outlen - off, " (");
	for (int i = 0; i < n && off < outlen; i++) {
		off += (size_t)snprintf(out + off, outlen - off, "%s%s:%d", i ? " " : "", strip_base(d, loc[i].file),
					loc[i].line);
		if (loc[i].discriminator && off < outlen)
			off += (size_t)snprintf(out + off, outlen - off, " (discriminator %u)", loc[i].discriminator);
	}
	if (off < outlen)
		snprintf(out + off, outlen - off, ")%s", f->unreliable ? " [unreliable]" : "");
	d->nframes++;
json:
	if (d->json && d->cur) {
		json_object *fr = json_object_new_object(), *locs = json_object_new_array(), *frames;

		json_object_object_add(fr, "function", json_object_new_string(f->name));
		json_object_object_add(fr, "offset", json_object_new_uint64(f->offset));
		json_object_object_add(fr, "size", json_object_new_uint64(f->size));
		json_object_object_add(fr, "rip", json_object_new_boolean(is_rip));
		json_object_object_add(fr, "reliable", json_object_new_boolean(!f->unreliable));
		if (f->module[0])
			json_object_object_add(fr, "module", json_object_new_string(f->module));
		for (int i = 0; i < n; i++) {
			json_object *l = json_object_new_object();

			json_object_object_add(l, "function", json_object_new_string(loc[i].function));
			json_object_object_add(l, "file", json_object_new_string(strip_base(d, loc[i].file)));
			json_object_object_add(l, "line", json_object_new_int(loc[i].line));
			if (loc[i].discriminator)
				json_object_object_add(l, "discriminator", json_object_new_int((int)loc[i].discriminator));
			json_object_array_add(locs, l);
		}
		json_object_object_add(fr, "locations", locs);
		if (json_object_object_get_ex(d->cur, "frames", &frames))
			json_object_array_add(frames, fr);
	}
}

/* "Code: 48 89 e5 <0f> 0b ..." with the trapping byte in <>; "(bad)" ones skipped. */
static int parse_code(const char *s, uint8_t *bytes, int *marker)
{
	int n = 0;

	*marker = -1;
	s = strstr(s, "Code:") + 5;
	while (*s && n < MAX_CODE) {
		char *end;
		unsigned long v;
		bool mark = false;

		while (*s == ' ')
			s++;
		if (*s == '<' || *s == '(') {
			mark = true;
			s++;
		}
		if (!isxdigit((unsigned char)*s))
			break;
		v = strtoul(s, &end, 16);
		if (end - s != 2)
			break;
		if (mark)
			*marker = n;
		bytes[n++] = (uint8_t)v;
		s = end;
		if (*s == '>' || *s == ')')
			s++;
	}
	return n;
}

/* Decode from the first start offset whose instructions land on the marker
 * (the Code: bytes start mid-instruction more often than not). */
static void decode_code(struct oops_decoder *d, const char *line, FILE *out)
{
	uint8_t bytes[MAX_CODE];
	int marker, n = parse_code(line, bytes, &marker), start = 0;
	uint64_t base;
	json_object *code = d->json ? json_object_new_array() : NULL;

	if (n == 0) {
		if (!d->json)
			fprintf(out, "%s\n", line);
		if (code)
			json_object_put(code);
		return;
	}
	if (marker >= 0) {
		for (start = 0; start < marker && start < 16; start++) {
			int pos = start;
			char text[128];

			while (pos < marker) {
				size_t l = disasm_one(d->dis, bytes + pos, (size_t)(n - pos), 0, text, sizeof(text));

				if (!l)
					break;
				pos += (int)l;
			}
			if (pos == marker)
				break;
		}
		if (start >= marker || start >= 16)
			start = marker; /* nothing lines up: decode from the trap on */
	}
	base = d->rip && marker >= 0 ? d->rip - (uint64_t)marker : 0;
	if (!d->json) {
		fprintf(out, "%s\n", line);
		fprintf(out, "Code starting with the faulting instruction%s\n", base ? " (addresses from RIP)" : "");
		fprintf(out, "===========================================\n");
	}
	for (int pos = start; pos < n;) {
		char text[128], hex[64] = "";
		size_t l = disasm_one(d->dis, bytes + pos, (size_t)(n - pos), base + (uint64_t)pos, text, sizeof(text));
		bool trap = pos == marker;

		if (!l)
			break;
		for (size_t i = 0, o = 0; i < l && o + 4 < sizeof(hex); i++)
			o += (size_t)snprintf(hex + o, sizeof(hex) - o, "%02x ", bytes[pos + (int)i]);
		if (!d->json) {
			if (base)
				fprintf(out, "  %016" PRIx64 ":%s %-24s %s%s\n", base + (uint64_t)pos, trap ? "*" : " ", hex,
					text, trap ? "\t\t<-- trapping instruction" : "");
			else
				fprintf(out, "  %4x:%s %-24s %s%s\n", pos, trap ? "*" : " ", hex, text,
					trap ? "\t\t<-- trapping instruction" : "");
		} else {
			json_object *i = json_object_new_object();

			json_object_object_add(i, "offset", json_object_new_int(pos - (marker >= 0 ? marker : 0)));
			if (base)
				json_object_object_add(i, "address", json_object_new_uint64(base + (uint64_t)pos));
			json_object_object_add(i, "text", json_object_new_string(text));
			json_object_object_add(i, "trapping", json_object_new_boolean(trap));
			json_object_array_add(code, i);
		}
		pos += (int)l;
	}
	if (code) {
		if (d->cur)
			json_object_object_add(d->cur, "code", code);
		else
			json_object_put(code);
	}
}

static void handle_line(struct oops_decoder *d, char *line, FILE *out)
{
	struct oops_frame f;
	char decoded[4096];
	const char *body = line;

	line[strcspn(line, "\r\n")] = '\0';
	/* printk timestamps "[    1.234567] " are not part of the message */
	if (body[0] == '[' && strchr(body, ']'))
		body = strchr(body, ']') + 1;
	while (*body == ' ')
		body++;
	/* "BUG: ..." then "Oops: ..." head one report; a header after frames or
	 * after an end marker starts the next one. */
	if (report_header(body) && (!d->in_report || d->ended || d->report_frames))
		begin_report(d, body);
	if (strstr(body, "---[ end "))
		d->ended = true;
	if (oops_parse_frame(line, &f)) {
		bool is_rip = !strncmp(body, "RIP:", 4);

		if (!d->in_report)
			begin_report(d, "(stack trace without a report header)");
		d->report_frames++;
		decode_frame(d, &f, is_rip, decoded, sizeof(decoded));
		if (!d->json)
			fprintf(out, "%.*s%s%s\n", (int)f.start, line, decoded, line + f.end);
	} else if (strstr(line, "Code:") && strchr(line, '<')) {
		decode_code(d, line, out);
	} else if (!d->json) {
		fprintf(out, "%s\n", line);
	}
}

bool oops_size_fits(uint64_t printed, uint64_t elf_size, uint64_t span)
{
	if (!printed)
		return true;
	if (elf_size && printed < elf_size)
		return false;
	return !span || printed <= span;
}

int oops_decoder_new(struct oops_decoder **out, const struct oops_options *o, char *err, size_t errlen)
{
	struct oops_decoder *d = calloc(1, sizeof(*d));
	int ret;

	*out = d;
	if (!d)
		return kerr_set(err, errlen, -ENOMEM, "out of memory");
	d->json = o->json;
	d->raw = o->raw;
	snprintf(d->moddir, sizeof(d->moddir), "%s", o->moddir ? o->moddir : "");
	if ((ret = sym_open(&d->syms, o->vmlinux, err, errlen)))
		return ret;
	if (disasm_open(&d->dis))
		return kerr_set(err, errlen, -ENOMEM, "cannot start the disassembler");
	find_basepath(d);
	if (!d->moddir[0])
		kmods_default_dir(d->syms, d->moddir, sizeof(d->moddir)); /* as decode_stacktrace.sh looks */
	if (d->json) {
		json_object *name = json_object_new_string(o->vmlinux);

		printf("{\n  \"vmlinux\": %s,\n  \"reports\": [", json_object_to_json_string(name));
		json_object_put(name);
	}
	return 0;
}

void oops_decode_line(struct oops_decoder *d, char *line)
{
	handle_line(d, line, stdout);
}

void oops_decoder_end(struct oops_decoder *d, struct oops_summary *sum)
{
	*sum = (struct oops_summary){ .nreports = d->nreports, .unterminated = d->in_report && !d->ended,
				      .nmodule = d->nmodule, .nunknown = d->nunknown, .nmismatch = d->nmismatch,
				      .nnoline = d->nnoline, .moddir = d->moddir };
	if (d->json) {
		flush_report(d);
		printf("%s]\n}\n", d->printed ? "\n  " : "");
	}
}

void oops_decoder_free(struct oops_decoder *d)
{
	if (!d)
		return;
	disasm_close(d->dis);
	for (size_t i = 0; i < d->nmods; i++)
		sym_close(d->mods[i].syms);
	sym_close(d->syms);
	free(d);
}
