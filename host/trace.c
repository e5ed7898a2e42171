// SPDX-License-Identifier: MIT
/*
 * trace: the CTF 1.8 writer (see trace.h): metadata from the target
 * description and the event classes, one write() an event, or one for a
 * batch of them where events come fast (plugin steps).
 */
#include "trace.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "files.h"
#include "hash.h"

#define CTF_MAGIC 0xC1FC1FC1u

/* A batch is written at the latest this long after its first event. */
#define BATCH_NS 100000000ull
/* Room past a batch's size for the event that fills it. */
#define BATCH_EVENT_MAX (64 * 1024)

/* A backtrace this deep is written whole: deeper ones are not kept. */
#define TRACE_KEPT_MAX 64

struct trace {
	int fd;
	const struct trace_class *classes;
	size_t nclasses;
	size_t size;      /* bytes of complete events (and the header) in stream_0 */
	const struct target_desc *desc;
	size_t nregs, g_size;     /* its layout, which the metadata describes */
	size_t more_off;          /* regs_more_offset(desc) */
	struct buf ev;            /* the events not written yet */
	size_t batch;             /* bytes of them to write at once, 0: each */
	uint64_t batch_ns;        /* when the first of them came */
	/* The last event's frame addresses, when it was a step: the next
	 * step of its vCPU writes only the frames it does not share. */
	uint64_t last_bt[TRACE_KEPT_MAX];
	uint32_t last_nbt, last_vcpu;
	bool last_step;
	uint8_t *last_regs;       /* that step's registers (g_size bytes) */
	uint64_t *last_stack;     /* and stack words (last_stack_len; room for stack_cap) */
	uint32_t last_stack_len, stack_cap;
	char err[256];
};

static uint64_t clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t trace_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t trace_coarse_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC_COARSE);
}

static void uuid_str(const uint8_t u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
		 u[14], u[15]);
}

/* TSDL string literal: escape quotes and backslashes, drop control bytes. */
static int put_tsdl_string(struct buf *b, const char *s)
{
	int err = buf_putc(b, '"');

	for (; s && *s && !err; s++) {
		if (*s == '"' || *s == '\\')
			err = buf_putc(b, '\\');
		if (!err)
			err = buf_putc(b, (uint8_t)*s >= 0x20 ? (uint8_t)*s : ' ');
	}
	return err ? err : buf_putc(b, '"');
}

/* Keywords of the TSDL grammar (CTF 1.8, 7.1 "Lexical conventions"): a
 * register of that name would make the metadata unreadable. */
static const char *const tsdl_keywords[] = {
	"align", "callsite", "const", "char", "clock", "double", "enum", "env", "event", "floating_point",
	"float", "integer", "int", "long", "short", "signed", "stream", "string", "struct", "trace",
	"typealias", "typedef", "unsigned", "variant", "void", "_Bool", "_Complex", "_Imaginary",
};

static bool is_keyword(const char *s)
{
	for (size_t i = 0; i < sizeof(tsdl_keywords) / sizeof(tsdl_keywords[0]); i++)
		if (!strcmp(s, tsdl_keywords[i]))
			return true;
	return false;
}

/* A register name as a TSDL identifier: letters, digits and '_', not a
 * keyword, and unlike any of the @n names before it ("r.1" and "r_1" would
 * both give "r_1": the second becomes "r_1_2"). */
static int reg_ident(const char *name, char **done, size_t n, char **out)
{
	struct buf b = { 0 };
	size_t base_len;
	int err = 0;

	if (!*name || isdigit((unsigned char)name[0]))
		err = buf_putc(&b, '_');
	for (; *name && !err; name++)
		err = buf_putc(&b, isalnum((unsigned char)*name) ? (uint8_t)*name : '_');
	if (!err && is_keyword(buf_cstr(&b)))
		err = buf_putc(&b, '_');
	base_len = b.len;
	for (unsigned int k = 2; !err; k++) {
		const char *s = buf_cstr(&b);
		bool taken = false;

		for (size_t i = 0; s && i < n && !taken; i++)
			taken = !strcmp(done[i], s);
		if (!s || !taken)
			break;
		b.len = base_len;
		err = buf_printf(&b, "_%u", k);
	}
	if (!err && !buf_cstr(&b))
		err = -ENOMEM;
	if (err) {
		buf_free(&b);
		return err;
	}
	*out = (char *)b.data;
	return 0;
}

/* Where a step's registers split: the general ones, rip, eflags and the
 * segment selectors come first in every step; from fs_base on (bases,
 * control registers, x87, SSE), they come only when they changed since
 * the step before. The index of fs_base, 0: no split (no such register). */
static size_t regs_split(const struct target_desc *desc)
{
	for (size_t i = 1; i < desc->nregs; i++)
		if (desc->regs[i].name[0] == 'f' && !strcmp(desc->regs[i].name, "fs_base"))
			return i;
	return 0;
}

/* The byte offset of that split in the register block, 0: none. */
static size_t regs_more_offset(const struct target_desc *desc)
{
	size_t split = regs_split(desc);

	return split ? desc->regs[split].offset : 0;
}

/* Registers @from..@to of @desc as a struct, closed with @tail. */
static int put_regs_struct(struct buf *b, const struct target_desc *desc, size_t from, size_t to, const char *tail)
{
	char **idents = calloc(desc->nregs ? desc->nregs : 1, sizeof(*idents));
	int err = idents ? buf_puts(b, "\t\tstruct {\n") : -ENOMEM;

	for (size_t i = 0; i < to && !err; i++) {
		const struct target_reg *r = &desc->regs[i];
		/* Up to 64 bits an integer; wider ones (st0, xmm0) as bytes. */
		bool integer = r->bitsize == 64 || r->bitsize == 32 || r->bitsize == 16 || r->bitsize == 8;

		err = reg_ident(r->name, idents, i, &idents[i]);
		if (!err && i >= from && integer)
			err = buf_printf(b, "\t\t\txint%u_t %s;\n", r->bitsize, idents[i]);
		else if (!err && i >= from)
			err = buf_printf(b, "\t\t\txint8_t %s[%u];\n", idents[i], r->bitsize / 8);
	}
	for (size_t i = 0; idents && i < desc->nregs; i++)
		free(idents[i]);
	free(idents);
	return err ? err : buf_printf(b, "\t\t} %s;\n", tail);
}

/* A class's registers: all in one struct, or for steps split in two. */
static int put_regs(struct buf *b, const struct target_desc *desc, bool step)
{
	size_t split = step ? regs_split(desc) : 0;
	int err;

	if (!split)
		return put_regs_struct(b, desc, 0, desc->nregs, "regs");
	err = put_regs_struct(b, desc, 0, split, "regs");
	err = err ? err : buf_puts(b, "\t\tuint8_t regs_more_len;\n");
	return err ? err : put_regs_struct(b, desc, split, desc->nregs, "regs_more[regs_more_len]");
}

bool trace_field_reserved(const char *name)
{
	static const char *const common[] = {
		"seq", "guest_ns", "vcpu", "pc", "probe", "symbol", "skb", "regs", "stack_len", "stack", "bt_len",
		"backtrace", "bt_end", "bt_reliable", "insn", "insn_len", "insn_bytes", "id", "timestamp",
	};

	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		if (!strcmp(name, common[i]))
			return true;
	return false;
}

static const char *const field_types[] = {
	[TRACE_FIELD_U64] = "uint64_t", [TRACE_FIELD_S64] = "int64_t",
	[TRACE_FIELD_X64] = "xint64_t", [TRACE_FIELD_STRING] = "string",
};

/* A class's own fields, one a line, after the common ones. */
static int put_class_fields(struct buf *b, const struct trace_class *c)
{
	int err = 0;

	for (size_t i = 0; c && i < c->nfields && !err; i++)
		err = buf_printf(b, "\t\t%s %s%s;\n", field_types[c->fields[i].type], c->fields[i].name,
				 is_keyword(c->fields[i].name) ? "_" : "");
	return err;
}

static int put_event(struct buf *b, const struct target_desc *desc, int id, const char *name,
		     const char *extra, const struct trace_class *c)
{
	int err = buf_printf(b,
			     "event {\n\tname = \"%s\";\n\tid = %d;\n\tstream_id = 0;\n\tfields := struct {\n"
			     "\t\tuint64_t seq;\n\t\tuint64_t guest_ns;\n\t\tuint32_t vcpu;\n\t\txint64_t pc;\n"
			     "\t\tstring probe;\n\t\tstring symbol;\n\t\txint64_t skb;\n%s",
			     name, id, extra);

	if (!err)
		err = put_class_fields(b, c);

	if (!err)
		err = put_regs(b, desc, id == TRACE_STEP);
	if (!err)
		err = buf_printf(b, "%s\t\tuint32_t stack_len;\n\t\txint64_t stack[stack_len];\n"
				    "%s\t\tuint32_t bt_len;\n"
				    "\t\tstruct { xint64_t addr; string func; string src; } backtrace[bt_len];\n"
				    "\t\tstring bt_end;\n\t\tuint8_t bt_reliable;\n"
				    "\t};\n};\n\n", id == TRACE_STEP ? "\t\tuint8_t stack_kept;\n" : "",
				 id == TRACE_STEP ? "\t\tuint32_t bt_kept;\n" : "");
	return err;
}

/* ";\n\tNAME = "VALUE"" in the env block (after the line before it). */
static int put_env_string(struct buf *out, const char *name, const char *value)
{
	int err = buf_printf(out, ";\n\t%s = ", name);

	return err ? err : put_tsdl_string(out, value ? value : "");
}

int trace_metadata(struct buf *out, const struct target_desc *desc, const struct trace_env *env,
		   const uint8_t uuid[16], int64_t offset_s, int64_t offset_ns)
{
	const struct {
		const char *name, *value;
		bool always;  /* written even when empty: readers expect it */
	} fields[] = {
		{ "vmlinux", env ? env->vmlinux : NULL, true },
		{ "kernel", env ? env->banner : NULL, true },
		{ "unwinder", env ? env->unwinder : NULL, true },
		{ "command", env ? env->command : NULL, true },
		{ "guest_clock", env ? env->guest_clock : NULL, true },
		{ "libvirt_uri", env ? env->libvirt_uri : NULL, false },
		{ "libvirt_domain", env ? env->libvirt_domain : NULL, false },
		{ "replay", env ? env->replay_id : NULL, false },
	};
	bool replay = env && env->replay_id;
	char u[37];
	int err;

	uuid_str(uuid, u);
	err = buf_printf(out,
		"/* CTF 1.8 */\n\n"
		"typealias integer { size = 8; align = 8; signed = false; } := uint8_t;\n"
		"typealias integer { size = 32; align = 8; signed = false; } := uint32_t;\n"
		"typealias integer { size = 64; align = 8; signed = false; } := uint64_t;\n"
		"typealias integer { size = 64; align = 8; signed = true; } := int64_t;\n"
		"typealias integer { size = 8; align = 8; signed = false; base = 16; } := xint8_t;\n"
		"typealias integer { size = 16; align = 8; signed = false; base = 16; } := xint16_t;\n"
		"typealias integer { size = 32; align = 8; signed = false; base = 16; } := xint32_t;\n"
		"typealias integer { size = 64; align = 8; signed = false; base = 16; } := xint64_t;\n\n"
		"trace {\n\tmajor = 1;\n\tminor = 8;\n\tuuid = \"%s\";\n\tbyte_order = le;\n"
		"\tpacket.header := struct {\n\t\tuint32_t magic;\n\t\tuint8_t uuid[16];\n"
		"\t\tuint32_t stream_id;\n\t};\n};\n\n"
		"env {\n\tdomain = \"kstep\";\n\ttracer_name = \"kstep\";\n"
		"\ttracer_major = 1;\n\ttracer_minor = 0;\n\tarchitecture = ", u);
	if (!err)
		err = put_tsdl_string(out, desc->arch ? desc->arch : "unknown");
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]) && !err; i++)
		if (fields[i].always || (fields[i].value && *fields[i].value))
			err = put_env_string(out, fields[i].name, fields[i].value);
	if (!err)
		err = buf_printf(out,
			";\n};\n\n"
			"clock {\n\tname = \"monotonic\";\n\tuuid = \"%s\";\n"
			"\tdescription = \"%s\";\n\tfreq = 1000000000;\n"
			"\tprecision = 1;\n\toffset_s = %" PRId64 ";\n\toffset = %" PRId64 ";\n"
			"\tabsolute = FALSE;\n};\n\n"
			"typealias integer { size = 64; align = 8; signed = false; "
			"map = clock.monotonic.value; } := uint64_clock_monotonic_t;\n\n"
			"stream {\n\tid = 0;\n\tevent.header := struct {\n\t\tuint32_t id;\n"
			"\t\tuint64_clock_monotonic_t timestamp;\n\t};\n};\n\n",
			u, replay ? "the replayed guest's clock (guest_ns)" : "host CLOCK_MONOTONIC", offset_s,
			offset_ns);
	if (!err)
		err = put_event(out, desc, TRACE_STOP, "kstep:stop", "", NULL);
	if (!err)
		err = put_event(out, desc, TRACE_STEP, "kstep:step",
				"\t\tstring insn;\n\t\tuint8_t insn_len;\n\t\txint8_t insn_bytes[insn_len];\n", NULL);
	for (size_t i = 0; env && i < env->nclasses && !err; i++)
		err = put_event(out, desc, TRACE_CLASS_BASE + (int)i, env->classes[i].name, "", &env->classes[i]);
	return err;
}

static int put_str(struct buf *b, const char *s)
{
	return buf_append(b, s ? s : "", strlen(s ? s : "") + 1);
}

/* The raw register block, already little-endian in regnum order: whole,
 * or a step's in two parts, the second only when not kept. */
static int put_regs_block(struct buf *b, const struct target_desc *desc, size_t more_off,
			  const struct trace_event *ev)
{
	size_t off = ev->kind == TRACE_STEP ? more_off : 0;
	int err;

	if (!off)
		return buf_append(b, ev->regs, desc->g_size);
	err = buf_append(b, ev->regs, off);
	err = err ? err : buf_put_le(b, !ev->regs_kept, 1);
	return err || ev->regs_kept ? err : buf_append(b, ev->regs + off, desc->g_size - off);
}

/* trace_encode, with @desc's regs_more_offset worked out before. */
static int encode(struct buf *b, const struct target_desc *desc, size_t more_off, const struct trace_class *c,
		  const struct trace_event *ev)
{
	uint32_t kept = ev->kind == TRACE_STEP && ev->bt_kept <= ev->bt_len ? ev->bt_kept : 0;
	uint32_t stack_len = ev->kind == TRACE_STEP && ev->stack_kept ? 0 : ev->stack_len;
	int err = 0;

	/* Field order must match put_event exactly. */
	err = err ? err : buf_put_le(b, ev->class_id ? ev->class_id : (uint64_t)ev->kind, 4);
	err = err ? err : buf_put_le(b, ev->ts_ns, 8);
	err = err ? err : buf_put_le(b, ev->seq, 8);
	err = err ? err : buf_put_le(b, ev->guest_ns, 8);
	err = err ? err : buf_put_le(b, ev->vcpu, 4);
	err = err ? err : buf_put_le(b, ev->pc, 8);
	err = err ? err : put_str(b, ev->probe);
	err = err ? err : put_str(b, ev->symbol);
	err = err ? err : buf_put_le(b, ev->skb, 8);
	if (ev->kind == TRACE_STEP) {
		err = err ? err : put_str(b, ev->insn);
		err = err ? err : buf_put_le(b, ev->insn_len, 1);
		err = err ? err : buf_append(b, ev->insn_bytes, ev->insn_len);
	}
	for (size_t i = 0; c && i < c->nfields && !err; i++)
		err = c->fields[i].type == TRACE_FIELD_STRING ? put_str(b, ev->values[i].str)
							       : buf_put_le(b, ev->values[i].u, 8);
	err = err ? err : put_regs_block(b, desc, more_off, ev);
	if (ev->kind == TRACE_STEP)
		err = err ? err : buf_put_le(b, ev->stack_kept, 1);
	err = err ? err : buf_put_le(b, stack_len, 4);
	for (uint32_t i = 0; i < stack_len && !err; i++)
		err = buf_put_le(b, ev->stack[i], 8);
	if (ev->kind == TRACE_STEP)
		err = err ? err : buf_put_le(b, kept, 4);
	err = err ? err : buf_put_le(b, ev->bt_len - kept, 4);
	for (uint32_t i = 0; i < ev->bt_len - kept && !err; i++) {
		err = buf_put_le(b, ev->bt[i].addr, 8);
		err = err ? err : put_str(b, ev->bt[i].func);
		err = err ? err : put_str(b, ev->bt[i].src && ev->bt[i].src[0] ? ev->bt[i].src : TRACE_NO_SOURCE);
	}
	err = err ? err : put_str(b, ev->bt_end);
	err = err ? err : buf_put_le(b, ev->bt_reliable, 1);
	return err;
}

int trace_encode(struct buf *b, const struct target_desc *desc, const struct trace_class *c,
		 const struct trace_event *ev)
{
	return encode(b, desc, regs_more_offset(desc), c, ev);
}

static int write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Files a kstep trace directory may hold: --force replaces only such a
 * directory, never one with anything else in it. */
static const char *const trace_files[] = { "metadata", "stream_0" };
#define TRACE_SERIAL_LOG "serial.log"

/* Is @name in @dfd a kstep trace's metadata? */
static bool kstep_metadata(int dfd)
{
	char head[4096];
	int fd = openat(dfd, "metadata", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, head, sizeof(head) - 1);

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return false;
	head[n] = '\0';
	return !strncmp(head, "/* CTF 1.8 */", 13) && strstr(head, "tracer_name = \"kstep\";");
}

static bool known_name(const char *name)
{
	for (size_t i = 0; i < sizeof(trace_files) / sizeof(trace_files[0]); i++)
		if (!strcmp(name, trace_files[i]))
			return true;
	return !strcmp(name, TRACE_GUEST_DIR);
}

static bool known_guest_name(const char *name)
{
	return !strcmp(name, TRACE_SERIAL_LOG) || !strcmp(name, TRACE_VMCORE);
}

/* 0: empty; 1: a kstep trace and nothing else, or what a run that failed
 * before its trace opened left (guest/ alone); -1: anything else, its guest/
 * included, so that --force removes nothing unless it can remove it all. */
static int dir_contents(int dfd)
{
	int kind = files_dir_holds(dfd, known_name), gfd;
	bool started = faccessat(dfd, "metadata", F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
		       faccessat(dfd, "stream_0", F_OK, AT_SYMLINK_NOFOLLOW) == 0;

	if (kind != 1)
		return kind;
	if (started && !kstep_metadata(dfd))
		return -1;
	gfd = openat(dfd, TRACE_GUEST_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (gfd < 0)
		return errno == ENOENT ? 1 : -1;
	kind = files_dir_holds(gfd, known_guest_name) < 0 ? -1 : 1;
	close(gfd);
	return kind;
}

static void remove_old_trace(int dfd)
{
	int gfd = openat(dfd, TRACE_GUEST_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (gfd >= 0) {
		unlinkat(gfd, TRACE_SERIAL_LOG, 0);
		unlinkat(gfd, TRACE_VMCORE, 0);
		close(gfd);
	}
	unlinkat(dfd, TRACE_GUEST_DIR, AT_REMOVEDIR);
	for (size_t i = 0; i < sizeof(trace_files) / sizeof(trace_files[0]); i++)
		unlinkat(dfd, trace_files[i], 0);
}

int trace_prepare_dir(const char *dir, bool force, int *dfd_out, char *err, size_t errlen)
{
	bool fresh = !mkdir(dir, 0700);
	struct stat st;
	int dfd, kind, ret;

	if (!fresh && errno != EEXIST) {
		snprintf(err, errlen, "cannot create trace directory %s: %s", dir, strerror(errno));
		return -errno;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		ret = -errno;
		snprintf(err, errlen, errno == ELOOP || errno == ENOTDIR
			 ? "-o %s is not a directory (a symlink or a file): refusing to write through it"
			 : "cannot open trace directory %s", dir);
		return ret;
	}
	if (fstat(dfd, &st) || st.st_uid != geteuid()) {
		snprintf(err, errlen, "-o %s belongs to another user: refusing to write into it", dir);
		close(dfd);
		return -EPERM;
	}
	/* A directory of ours that others may write (mode 777, say): private
	 * first, then looked into, so that nothing they put there is taken. */
	if ((st.st_mode & 077) && fchmod(dfd, 0700)) {
		ret = -errno;
		snprintf(err, errlen, "cannot make -o %s private (chmod 700): %s", dir, strerror(errno));
		close(dfd);
		return ret;
	}
	kind = fresh ? 0 : dir_contents(dfd);
	if (kind == 1 && force) {
		remove_old_trace(dfd);
		kind = dir_contents(dfd);
	}
	if (kind) {
		snprintf(err, errlen, kind == 1 ? "-o %s already holds a kstep trace: pass --force to replace it"
						: "-o %s is not empty and is not a kstep trace: pick another directory",
			 dir);
		close(dfd);
		return -EEXIST;
	}
	if (mkdirat(dfd, TRACE_GUEST_DIR, 0700)) {
		ret = -errno;
		snprintf(err, errlen, "cannot create %s/%s: %s", dir, TRACE_GUEST_DIR, strerror(errno));
		close(dfd);
		return ret;
	}
	*dfd_out = dfd;
	return 0;
}

int trace_guest_dir(int dfd)
{
	int gfd = openat(dfd, TRACE_GUEST_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	return gfd < 0 ? -errno : gfd;
}

int trace_create_serial_log(int dfd)
{
	int gfd = trace_guest_dir(dfd), fd;

	if (gfd < 0)
		return gfd;
	fd = files_create(gfd, TRACE_SERIAL_LOG, 0600);
	close(gfd);
	return fd;
}

static int write_new_file(int dfd, const char *name, const void *data, size_t len)
{
	int fd = files_create(dfd, name, 0600), err;

	if (fd < 0)
		return fd;
	err = write_all(fd, data, len);
	if (close(fd) && !err)
		err = -errno;
	return err;
}

/* A replay's uuid: a hash of its metadata written with a zero uuid, which
 * holds the recording's id, the kernel and every probe and field. The
 * same recording traced with the same options gets the same uuid. */
static int replay_uuid(const struct target_desc *desc, const struct trace_env *env, uint8_t uuid[16])
{
	static const uint8_t zero[16];
	struct buf meta = { 0 };
	int err = trace_metadata(&meta, desc, env, zero, 0, 0);
	uint64_t h[2] = { hash_fnv1a(HASH_FNV1A_START, meta.data, err ? 0 : meta.len),
			  hash_fnv1a(0x84222325cbf29ce4ull, meta.data, err ? 0 : meta.len) }; /* two seeds: 128 bits */

	buf_free(&meta);
	memcpy(uuid, h, 16);
	return err;
}

int trace_open(struct trace **out, int dfd, const char *dir, const struct target_desc *desc,
	       const struct trace_env *env, char *err, size_t errlen)
{
	struct trace *t = calloc(1, sizeof(*t));
	struct buf meta = { 0 }, hdr = { 0 };
	struct timespec rt, mono;
	uint8_t uuid[16];
	int ret;

	if (!t)
		return -ENOMEM;
	t->fd = -1;
	t->desc = desc;
	t->more_off = regs_more_offset(desc);
	t->nregs = desc->nregs;
	t->g_size = desc->g_size;
	t->classes = env ? env->classes : NULL;
	t->nclasses = env ? env->nclasses : 0;
	int64_t off = 0;

	if (env && env->replay_id) {
		ret = replay_uuid(desc, env, uuid);
	} else {
		ret = getrandom(uuid, sizeof(uuid), 0) == sizeof(uuid) ? 0 : -EIO;
		/* The clock's offset maps host monotonic time onto wall-clock time. */
		clock_gettime(CLOCK_REALTIME, &rt);
		clock_gettime(CLOCK_MONOTONIC, &mono);
		off = ((int64_t)rt.tv_sec - mono.tv_sec) * 1000000000 + (rt.tv_nsec - mono.tv_nsec);
	}
	if (ret) {
		snprintf(err, errlen, "cannot make the trace's uuid: %s", strerror(-ret));
		goto fail;
	}
	uuid[6] = (uuid[6] & 0x0f) | (env && env->replay_id ? 0x50 : 0x40); /* RFC 4122 version 5 or 4 */
	uuid[8] = (uuid[8] & 0x3f) | 0x80;
	ret = trace_metadata(&meta, desc, env, uuid, off / 1000000000, off % 1000000000);
	if (!ret)
		ret = write_new_file(dfd, "metadata", meta.data, meta.len);
	if (ret) {
		snprintf(err, errlen, "cannot write %s/metadata: %s", dir, strerror(-ret));
		goto fail;
	}
	t->fd = files_create(dfd, "stream_0", 0600);
	if (t->fd < 0) {
		ret = t->fd;
		snprintf(err, errlen, "cannot create %s/stream_0: %s", dir, strerror(-ret));
		goto fail;
	}
	/* One packet without a context: it extends to the end of the file
	 * (CTF 1.8, 5. "Event Packet Header"), so appending events is enough. */
	ret = buf_put_le(&hdr, CTF_MAGIC, 4);
	ret = ret ? ret : buf_append(&hdr, uuid, 16);
	ret = ret ? ret : buf_put_le(&hdr, 0, 4);
	ret = ret ? ret : write_all(t->fd, hdr.data, hdr.len);
	if (ret) {
		snprintf(err, errlen, "cannot write %s/stream_0: %s", dir, strerror(-ret));
		goto fail;
	}
	t->size = hdr.len;
	buf_free(&meta);
	buf_free(&hdr);
	*out = t;
	return 0;
fail:
	buf_free(&meta);
	buf_free(&hdr);
	trace_close(t);
	return ret;
}

/* Write the events held. A full disk takes part of them: they are cut
 * off, so that the trace still ends with its last complete event. */
static int trace_flush(struct trace *t)
{
	int err = write_all(t->fd, t->ev.data, t->ev.len);

	if (err) {
		if (ftruncate(t->fd, (off_t)t->size) == 0)
			lseek(t->fd, (off_t)t->size, SEEK_SET);
	} else {
		t->size += t->ev.len;
	}
	buf_reset(&t->ev);
	return err;
}

/* How many outermost frames of step @ev the last event had too: at most
 * all but the top one of either (a frame on top is named as a pc, below
 * as a return address), so that the kept ones are named alike in both. */
static uint32_t frames_kept(const struct trace *t, const struct trace_event *ev)
{
	uint32_t n = 0, most;

	if (!t->last_step || ev->vcpu != t->last_vcpu || ev->bt_len > TRACE_KEPT_MAX || !ev->bt_len ||
	    !t->last_nbt)
		return 0;
	most = (ev->bt_len < t->last_nbt ? ev->bt_len : t->last_nbt) - 1;
	while (n < most && ev->bt[ev->bt_len - 1 - n].addr == t->last_bt[t->last_nbt - 1 - n])
		n++;
	return n;
}

/* Are step @ev's registers from fs_base on those of the step before? */
static bool registers_kept(const struct trace *t, const struct trace_event *ev)
{
	size_t off = t->more_off;

	return off && t->last_step && ev->vcpu == t->last_vcpu && t->last_regs &&
	       !memcmp(ev->regs + off, t->last_regs + off, t->g_size - off);
}

/* Are step @ev's stack words those of the step before? */
static bool stack_kept(const struct trace *t, const struct trace_event *ev)
{
	return t->last_step && ev->vcpu == t->last_vcpu && ev->stack_len == t->last_stack_len &&
	       !memcmp(ev->stack, t->last_stack, ev->stack_len * sizeof(*ev->stack));
}

/* Room for @n stack words in t->last_stack. */
static bool stack_room(struct trace *t, uint32_t n)
{
	uint64_t *words;

	if (n <= t->stack_cap)
		return true;
	if (!(words = realloc(t->last_stack, n * sizeof(*words))))
		return false;
	t->last_stack = words;
	t->stack_cap = n;
	return true;
}

/* Remember step @ev's frames, registers and stack for the next step. */
static void keep_step(struct trace *t, const struct trace_event *ev)
{
	t->last_step = ev->kind == TRACE_STEP && ev->bt_len <= TRACE_KEPT_MAX;
	t->last_vcpu = ev->vcpu;
	t->last_nbt = t->last_step ? ev->bt_len : 0;
	for (uint32_t i = 0; i < t->last_nbt; i++)
		t->last_bt[i] = ev->bt[i].addr;
	if (t->last_step && (t->last_regs || (t->last_regs = malloc(t->g_size))) && stack_room(t, ev->stack_len)) {
		memcpy(t->last_regs, ev->regs, t->g_size);
		memcpy(t->last_stack, ev->stack, ev->stack_len * sizeof(*ev->stack));
		t->last_stack_len = ev->stack_len;
	} else {
		t->last_step = false;
	}
}

int trace_write(struct trace *t, const struct trace_event *ev)
{
	const struct trace_class *c = NULL;
	struct trace_event step;
	size_t held = t->ev.len;
	uint64_t now;
	int err;

	if (ev->class_id >= TRACE_CLASS_BASE) {
		if (ev->class_id - TRACE_CLASS_BASE >= t->nclasses)
			return -EINVAL;
		c = &t->classes[ev->class_id - TRACE_CLASS_BASE];
	}
	if (ev->kind == TRACE_STEP) {
		step = *ev;
		step.bt_kept = frames_kept(t, ev);
		step.regs_kept = registers_kept(t, ev);
		step.stack_kept = stack_kept(t, ev);
	}
	if ((err = encode(&t->ev, t->desc, t->more_off, c, ev->kind == TRACE_STEP ? &step : ev))) {
		t->ev.len = held;
		t->last_step = false;
		return err;
	}
	keep_step(t, ev);
	if (!t->batch)
		return trace_flush(t);
	now = trace_coarse_ns();
	if (!held)
		t->batch_ns = now;
	if (t->ev.len >= t->batch || now - t->batch_ns >= BATCH_NS)
		return trace_flush(t);
	return 0;
}

int trace_batch(struct trace *t, size_t bytes)
{
	int err;

	t->batch = bytes;
	if (!bytes)
		return t->ev.len ? trace_flush(t) : 0;
	/* The batch's memory faulted in now, not a page at a time while the
	 * first batch grows into it (the last event may go past @bytes). */
	if ((err = buf_reserve(&t->ev, bytes + BATCH_EVENT_MAX)))
		return err;
	memset(t->ev.data + t->ev.len, 0, t->ev.cap - t->ev.len);
	return 0;
}

int trace_set_desc(struct trace *t, const struct target_desc *desc)
{
	if (desc->nregs != t->nregs || desc->g_size != t->g_size)
		return -EPROTO;
	t->desc = desc;
	t->more_off = regs_more_offset(desc);
	return 0;
}

int trace_close(struct trace *t)
{
	int err = 0;

	if (!t)
		return 0;
	if (t->fd >= 0 && t->ev.len)
		err = trace_flush(t);
	if (t->fd >= 0 && close(t->fd) && !err)
		err = -errno;
	buf_free(&t->ev);
	free(t->last_regs);
	free(t->last_stack);
	free(t);
	return err;
}
