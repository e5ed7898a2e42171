// SPDX-License-Identifier: MIT
/*
 * ctfread: a kstep trace read back (see ctfread.h). The metadata is the
 * TSDL trace.c generates, one field a line; each event class becomes a list
 * of field decoders, and the stream is walked through a read-only mapping.
 */
#include "ctfread.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "trace.h"

#define PACKET_HEADER 24 /* magic, uuid, stream_id */
#define MAX_CLASSES 1024
/* Bounds on what a metadata file may declare: a trace is a file others
 * hand you, and sizes past these come from no trace kstep writes. */
#define MAX_CLASS_FIELDS 256     /* decode_fields keeps one value a field */
#define MAX_BLOB_BYTES (1u << 20) /* a register block or fixed array */

enum decode {
	DEC_INT,         /* size bytes */
	DEC_STRING,
	DEC_BLOB,        /* size bytes, skipped (the register block) */
	DEC_SEQ,         /* count from field @len_field, elements of size bytes */
	DEC_BACKTRACE,   /* count from @len_field: { addr, func, src } */
	DEC_MORE,        /* a step's registers from fs_base on: count 0 (the step
			  * before's) or 1 from @len_field, size bytes */
};

struct field_dec {
	char name[64];
	enum decode kind;
	unsigned int size;
	bool is_signed;
	int len_field;   /* index of the field holding the count */
};

struct reg_dec {
	char name[32];
	unsigned int offset, size;
};

struct class_dec {
	uint32_t id;
	char name[128];
	struct field_dec *f;
	size_t n;
	struct reg_dec *regs;   /* the register block's members */
	size_t nregs;
	unsigned int regs_size, hot_size; /* the whole block's, regs's (before regs_more) */
	bool has_more;
};

struct ctf_reader {
	const uint8_t *map;
	size_t size, pos, good_end, last_start;
	struct class_dec *classes[MAX_CLASSES];
	char guest_clock[160];
	char vmlinux[4096];
	char err[256];
	const volatile sig_atomic_t *interrupted; /* NULL: never */
	/* The last event's backtrace, whole: a step's bt_kept names how many
	 * of its outermost frames come after the step's own. */
	struct ctf_frame last_bt[CTF_MAX_FRAMES];
	size_t last_nbt;
	/* The register block of a class with regs_more, put together: its
	 * second part is the step before's where a step did not write it. */
	uint8_t *block;
	size_t block_cap;
	bool more_valid;
	bool bad;                /* decode_fields found an event that is not one (err) */
};

/* ---- the metadata -------------------------------------------------------- */

static int type_size(const char *type, bool *is_signed)
{
	unsigned int bits = 0;

	*is_signed = !strncmp(type, "int", 3);
	if (sscanf(type, "%*[a-z]%u_t", &bits) == 1 && bits % 8 == 0 && bits > 0 && bits <= 64)
		return (int)bits / 8;
	return -1;
}

static int find_field(const struct class_dec *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->f[i].name, name))
			return (int)i;
	return -1;
}

static int add_field(struct class_dec *c, const struct field_dec *fd)
{
	struct field_dec *tmp;

	if (c->n >= MAX_CLASS_FIELDS)
		return -EINVAL;
	tmp = realloc(c->f, (c->n + 1) * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	c->f = tmp;
	c->f[c->n++] = *fd;
	return 0;
}

/* "TYPE NAME;", "TYPE NAME[LEN];" or "TYPE NAME[N];" */
static int parse_field(struct class_dec *c, const char *line)
{
	struct field_dec fd = { .len_field = -1 };
	char type[32], name[64], len[64];
	int size;

	if (strstr(line, "} backtrace[")) {
		snprintf(fd.name, sizeof(fd.name), "backtrace");
		fd.kind = DEC_BACKTRACE;
		fd.len_field = find_field(c, "bt_len");
		return fd.len_field < 0 ? -EINVAL : add_field(c, &fd);
	}
	if (sscanf(line, " %31s %63[^[;][%63[^]]]", type, name, len) == 3) {
		fd.kind = DEC_SEQ;
		snprintf(fd.name, sizeof(fd.name), "%s", name);
		size = type_size(type, &fd.is_signed);
		fd.size = (unsigned int)size;
		fd.len_field = find_field(c, len);
		if (fd.len_field < 0 && atoi(len) > 0) { /* a fixed array: a blob */
			if (size < 0 || (unsigned long)atoi(len) > MAX_BLOB_BYTES / (unsigned int)size)
				return -EINVAL;
			fd.kind = DEC_BLOB;
			fd.size = (unsigned int)size * (unsigned int)atoi(len);
		}
		return size < 0 || (fd.kind == DEC_SEQ && fd.len_field < 0) ? -EINVAL : add_field(c, &fd);
	}
	if (sscanf(line, " %31s %63[^;];", type, name) != 2)
		return -EINVAL;
	snprintf(fd.name, sizeof(fd.name), "%s", name);
	if (!strcmp(type, "string")) {
		fd.kind = DEC_STRING;
		return add_field(c, &fd);
	}
	size = type_size(type, &fd.is_signed);
	fd.size = (unsigned int)size;
	return size < 0 ? -EINVAL : add_field(c, &fd);
}

/* A register struct: one blob of all its members' sizes, and where each
 * member is in the whole block. "regs" is the whole block or a step's
 * first part; "regs_more" a step's second part, after regs_more_len. */
static int parse_regs(struct class_dec *c, char **save)
{
	struct field_dec fd = { .kind = DEC_BLOB, .len_field = -1 };
	unsigned int base = c->regs_size;
	char *line;

	while ((line = strtok_r(NULL, "\n", save)) && !strstr(line, "} regs")) {
		char type[32], name[32] = "";
		bool sig;
		unsigned int n = 1;
		int size;
		struct reg_dec *tmp;

		if (sscanf(line, " %31s %31[^[;][%u]", type, name, &n) < 2)
			return -EINVAL;
		size = type_size(type, &sig);
		/* The block's size stays below MAX_BLOB_BYTES, so no offset wraps. */
		if (size <= 0 || n > MAX_BLOB_BYTES / (unsigned int)size ||
		    (unsigned int)size * n > MAX_BLOB_BYTES - base - fd.size ||
		    !(tmp = realloc(c->regs, (c->nregs + 1) * sizeof(*tmp))))
			return -EINVAL;
		c->regs = tmp;
		snprintf(tmp[c->nregs].name, sizeof(tmp[c->nregs].name), "%s", name);
		tmp[c->nregs].offset = base + fd.size;
		tmp[c->nregs++].size = (unsigned int)size * n;
		fd.size += (unsigned int)size * n;
	}
	if (line && strstr(line, "} regs;") && !base) {
		snprintf(fd.name, sizeof(fd.name), "regs");
		c->hot_size = fd.size;
	} else if (line && strstr(line, "} regs_more[regs_more_len];") && base && !c->has_more &&
		   (fd.len_field = find_field(c, "regs_more_len")) >= 0) {
		snprintf(fd.name, sizeof(fd.name), "regs_more");
		fd.kind = DEC_MORE;
		c->has_more = true;
	} else {
		return -EINVAL;
	}
	c->regs_size = base + fd.size;
	return add_field(c, &fd);
}

static int parse_event(struct ctf_reader *r, char **save)
{
	struct class_dec *c = calloc(1, sizeof(*c));
	char *line;
	int err = c ? 0 : -ENOMEM;
	bool in_fields = false, have_id = false;

	while (!err && (line = strtok_r(NULL, "\n", save)) && strcmp(line, "};")) {
		if (sscanf(line, " name = \"%127[^\"]\";", c->name) == 1)
			continue;
		if (sscanf(line, " id = %u;", &c->id) == 1) {
			have_id = true;
			continue;
		}
		if (strstr(line, "fields := struct {")) {
			in_fields = true;
			continue;
		}
		if (!in_fields || strstr(line, "\t};") == line)
			continue;
		err = strstr(line, "struct {") && !strstr(line, "backtrace[") ? parse_regs(c, save) : parse_field(c, line);
	}
	if (!err && (!have_id || c->id >= MAX_CLASSES || r->classes[c->id]))
		err = -EINVAL; /* a second class with the same id: which one would the stream mean? */
	if (err) {
		if (c) {
			free(c->f);
			free(c->regs);
		}
		free(c);
		return err;
	}
	r->classes[c->id] = c;
	return 0;
}

static int parse_metadata(struct ctf_reader *r, char *text)
{
	char *save = NULL, *line;
	int err = 0;

	if (strncmp(text, "/* CTF 1.8 */", 13) || !strstr(text, "tracer_name = \"kstep\";"))
		return -EINVAL;
	for (line = strtok_r(text, "\n", &save); line && !err; line = strtok_r(NULL, "\n", &save)) {
		sscanf(line, " guest_clock = \"%159[^\"]\";", r->guest_clock);
		sscanf(line, " vmlinux = \"%4095[^\"]\";", r->vmlinux);
		if (!strcmp(line, "event {"))
			err = parse_event(r, &save);
	}
	return err;
}

/* The metadata: a regular file (never a FIFO that would block) of at most
 * MAX_METADATA_BYTES; kstep's own are tens of KiB. */
#define MAX_METADATA_BYTES (16u << 20)

static char *read_text(const char *path)
{
	int fd = files_open_regular(path);
	char *text = NULL;
	struct stat st;
	ssize_t len = -1;

	if (fd < 0)
		return NULL;
	if (!fstat(fd, &st) && (uint64_t)st.st_size <= MAX_METADATA_BYTES && (text = malloc((size_t)st.st_size + 1)))
		len = read(fd, text, (size_t)st.st_size);
	close(fd);
	if (text && len < 0) {
		free(text);
		return NULL;
	}
	if (text)
		text[len] = '\0';
	return text;
}

int ctf_open(struct ctf_reader **out, const char *dir, char *err, size_t errlen)
{
	struct ctf_reader *r = calloc(1, sizeof(*r));
	char path[4096];
	char *text;
	struct stat st;
	int fd, ret;

	if (!r)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/metadata", dir);
	text = read_text(path);
	if (!text) {
		snprintf(err, errlen, "%s is not a kstep trace (no readable %s)", dir, path);
		free(r);
		return -ENOENT;
	}
	ret = parse_metadata(r, text);
	free(text);
	if (ret) {
		snprintf(err, errlen, "%s: the metadata is not a kstep trace's (or from another version of kstep)", dir);
		ctf_close(r);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "%s/stream_0", dir);
	fd = files_open_regular(path);
	if (fd < 0 || fstat(fd, &st) || st.st_size < PACKET_HEADER) {
		snprintf(err, errlen, "%s: no stream (%s)", dir, fd < 0 ? strerror(-fd) : "empty");
		if (fd >= 0)
			close(fd);
		ctf_close(r);
		return -ENOENT;
	}
	r->size = (size_t)st.st_size;
	r->map = mmap(NULL, r->size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (r->map == MAP_FAILED) {
		r->map = NULL;
		snprintf(err, errlen, "%s: cannot map the stream: %s", dir, strerror(errno));
		ctf_close(r);
		return -EIO;
	}
	r->pos = r->good_end = PACKET_HEADER;
	*out = r;
	return 0;
}

void ctf_close(struct ctf_reader *r)
{
	if (!r)
		return;
	if (r->map)
		munmap((void *)r->map, r->size);
	for (int i = 0; i < MAX_CLASSES; i++)
		if (r->classes[i]) {
			free(r->classes[i]->f);
			free(r->classes[i]->regs);
			free(r->classes[i]);
		}
	free(r->block);
	free(r);
}

const char *ctf_error(const struct ctf_reader *r)
{
	return r->err;
}

const char *ctf_guest_clock(const struct ctf_reader *r)
{
	return r->guest_clock;
}

const char *ctf_vmlinux(const struct ctf_reader *r)
{
	return r->vmlinux;
}

int ctf_reg(const struct ctf_reader *r, const struct ctf_event *ev, const char *name, uint64_t *value)
{
	const struct class_dec *c = ev->id < MAX_CLASSES ? r->classes[ev->id] : NULL;

	for (size_t i = 0; c && ev->regs && i < c->nregs; i++) {
		const struct reg_dec *rd = &c->regs[i];
		uint64_t v = 0;

		if (strcmp(rd->name, name))
			continue;
		if ((size_t)rd->offset + rd->size > ev->regs_len)
			return -ENOENT;
		for (unsigned int k = 0; k < rd->size && k < 8; k++)
			v |= (uint64_t)ev->regs[rd->offset + k] << (8 * k);
		*value = v;
		return 0;
	}
	return -ENOENT;
}

const char *ctf_reg_name(const struct ctf_reader *r, uint32_t class_id, size_t i)
{
	const struct class_dec *c = class_id < MAX_CLASSES ? r->classes[class_id] : NULL;

	if (!c || i >= c->nregs)
		return NULL;
	return c->regs[i].size <= 8 ? c->regs[i].name : "";
}

void ctf_last_range(const struct ctf_reader *r, size_t *start, size_t *end)
{
	*start = r->last_start;
	*end = r->good_end;
}

size_t ctf_trailing(const struct ctf_reader *r)
{
	return r->size - r->good_end;
}

/* ---- the stream ------------------------------------------------------------ */

static bool get_int(struct ctf_reader *r, unsigned int size, bool is_signed, uint64_t *v)
{
	uint64_t x = 0;

	if (r->pos + size > r->size)
		return false;
	for (unsigned int i = 0; i < size; i++)
		x |= (uint64_t)r->map[r->pos + i] << (8 * i);
	if (is_signed && size < 8 && (x >> (size * 8 - 1)) & 1)
		x |= ~0ull << (size * 8);
	r->pos += size;
	*v = x;
	return true;
}

static bool get_str(struct ctf_reader *r, const char **s)
{
	const uint8_t *end = r->pos < r->size ? memchr(r->map + r->pos, 0, r->size - r->pos) : NULL;

	if (!end)
		return false;
	*s = (const char *)r->map + r->pos;
	r->pos = (size_t)(end - r->map) + 1;
	return true;
}

static bool skip(struct ctf_reader *r, uint64_t n)
{
	if (n > r->size - r->pos)
		return false;
	r->pos += n;
	return true;
}

static bool get_backtrace(struct ctf_reader *r, uint64_t n, struct ctf_event *ev)
{
	for (uint64_t i = 0; i < n; i++) {
		struct ctf_frame f;

		if (!get_int(r, 8, false, &f.addr) || !get_str(r, &f.func) || !get_str(r, &f.src))
			return false;
		if (!strcmp(f.src, TRACE_NO_SOURCE))
			f.src = "";
		if (ev->nbt < CTF_MAX_FRAMES)
			ev->bt[ev->nbt++] = f;
	}
	return true;
}

/* A common field into its place in @ev, or a class field into @ev->fields. */
static void store(struct ctf_event *ev, const struct field_dec *fd, uint64_t u, const char *s)
{
	static const struct {
		const char *name;
		size_t off;
	} common[] = {
		{ "seq", offsetof(struct ctf_event, seq) }, { "guest_ns", offsetof(struct ctf_event, guest_ns) },
		{ "pc", offsetof(struct ctf_event, pc) },   { "skb", offsetof(struct ctf_event, skb) },
	};

	const char **text = NULL;

	/* A field of a common name but of another type than kstep writes
	 * (metadata from elsewhere) is kept as a class field, never read as
	 * the common one. */
	for (size_t i = 0; fd->kind == DEC_INT && i < sizeof(common) / sizeof(common[0]); i++)
		if (!strcmp(fd->name, common[i].name)) {
			*(uint64_t *)((char *)ev + common[i].off) = u;
			return;
		}
	if (fd->kind == DEC_STRING)
		text = !strcmp(fd->name, "probe")  ? &ev->probe
		       : !strcmp(fd->name, "symbol") ? &ev->symbol
		       : !strcmp(fd->name, "insn")   ? &ev->insn
		       : !strcmp(fd->name, "bt_end") ? &ev->bt_end
						     : NULL;
	if (text)
		*text = s;
	else if (fd->kind == DEC_INT && !strcmp(fd->name, "vcpu"))
		ev->vcpu = (uint32_t)u;
	else if (strcmp(fd->name, "insn_len") && strcmp(fd->name, "stack_len") && strcmp(fd->name, "bt_len") &&
		 strcmp(fd->name, "bt_reliable") && strcmp(fd->name, "bt_kept") && strcmp(fd->name, "stack_kept") &&
		 ev->nfields < CTF_MAX_FIELDS)
		ev->fields[ev->nfields++] = (struct ctf_field){ fd->name, fd->kind == DEC_STRING, u, s };
}

/* A class with regs_more: its registers go into r->block, this event's
 * first part now (@size bytes at the read position). */
static bool whole_block(struct ctf_reader *r, const struct class_dec *c, struct ctf_event *ev, unsigned int size)
{
	if (r->block_cap < c->regs_size) {
		uint8_t *block = realloc(r->block, c->regs_size);

		if (!block)
			return false;
		r->block = block;
		r->block_cap = c->regs_size;
		r->more_valid = false;
	}
	if (size > r->size - r->pos)
		return false;
	memcpy(r->block, r->map + r->pos, size);
	ev->regs = r->block;
	ev->regs_len = c->regs_size;
	return true;
}

/* The second part: @n (0 or 1) times @size bytes; none, the last ones. */
static bool more_regs(struct ctf_reader *r, const struct class_dec *c, uint64_t n, unsigned int size)
{
	if (n > 1 || (!n && !r->more_valid)) {
		snprintf(r->err, sizeof(r->err), "event at byte %zu has %llu parts of registers after its first%s",
			 r->last_start, (unsigned long long)n, n ? "" : ", and no event before it had one");
		r->bad = true;
		return false;
	}
	if (!n)
		return true;
	if (size > r->size - r->pos)
		return false;
	memcpy(r->block + c->hot_size, r->map + r->pos, size);
	r->pos += size;
	r->more_valid = true;
	return true;
}

static bool decode_fields(struct ctf_reader *r, const struct class_dec *c, struct ctf_event *ev, uint64_t *kept)
{
	uint64_t vals[256] = { 0 };

	for (size_t i = 0; i < c->n && i < 256; i++) {
		const struct field_dec *fd = &c->f[i];
		const char *s = NULL;
		bool ok;

		switch (fd->kind) {
		case DEC_INT:
			ok = get_int(r, fd->size, fd->is_signed, &vals[i]);
			break;
		case DEC_STRING:
			ok = get_str(r, &s);
			break;
		case DEC_BLOB:
			ok = true;
			if (!strcmp(fd->name, "regs") && c->has_more)
				ok = whole_block(r, c, ev, fd->size);
			else if (!strcmp(fd->name, "regs")) {
				ev->regs = r->map + r->pos;
				ev->regs_len = fd->size;
			}
			ok = ok && skip(r, fd->size);
			break;
		case DEC_MORE:
			ok = more_regs(r, c, vals[fd->len_field], fd->size);
			break;
		case DEC_SEQ:
			ok = vals[fd->len_field] <= (r->size - r->pos) / (fd->size ? fd->size : 1) &&
			     skip(r, vals[fd->len_field] * fd->size);
			break;
		default:
			ok = get_backtrace(r, vals[fd->len_field], ev);
			break;
		}
		if (!ok)
			return false;
		if (fd->kind == DEC_INT && !strcmp(fd->name, "bt_kept"))
			*kept = vals[i];
		if (fd->kind == DEC_INT || fd->kind == DEC_STRING)
			store(ev, fd, vals[i], s);
	}
	return true;
}

int ctf_next(struct ctf_reader *r, struct ctf_event *ev)
{
	uint64_t id, ts, kept = 0;
	const struct class_dec *c;

	if (r->interrupted && *r->interrupted) {
		snprintf(r->err, sizeof(r->err), "interrupted");
		return -EINTR;
	}
	memset(ev, 0, offsetof(struct ctf_event, fields));
	ev->nfields = ev->nbt = 0;
	ev->regs = NULL;
	ev->regs_len = 0;
	ev->probe = ev->symbol = ev->insn = ev->bt_end = "";
	if (r->pos >= r->size)
		return 0;
	r->last_start = r->pos;
	if (!get_int(r, 4, false, &id) || !get_int(r, 8, false, &ts))
		return 0; /* cut inside a header */
	c = id < MAX_CLASSES ? r->classes[id] : NULL;
	if (!c) {
		snprintf(r->err, sizeof(r->err), "event of unknown class %llu at byte %zu", (unsigned long long)id,
			 r->good_end);
		return -EINVAL;
	}
	ev->id = (uint32_t)id;
	ev->name = c->name;
	ev->ts_ns = ts;
	r->bad = false;
	if (!decode_fields(r, c, ev, &kept))
		return r->bad ? -EINVAL : 0; /* not an event, or cut inside one */
	if (!c->has_more)
		r->more_valid = false;
	if (kept > r->last_nbt) {
		snprintf(r->err, sizeof(r->err), "event at byte %zu keeps %llu frames of the one before, which has %zu",
			 r->last_start, (unsigned long long)kept, r->last_nbt);
		return -EINVAL;
	}
	for (size_t i = r->last_nbt - kept; i < r->last_nbt && ev->nbt < CTF_MAX_FRAMES; i++)
		ev->bt[ev->nbt++] = r->last_bt[i];
	memcpy(r->last_bt, ev->bt, ev->nbt * sizeof(ev->bt[0]));
	r->last_nbt = ev->nbt;
	r->good_end = r->pos;
	return 1;
}

void ctf_set_interrupt(struct ctf_reader *r, const volatile sig_atomic_t *flag)
{
	r->interrupted = flag;
}

const struct ctf_field *ctf_field(const struct ctf_event *ev, const char *name)
{
	for (size_t i = 0; i < ev->nfields; i++)
		if (!strcmp(ev->fields[i].name, name))
			return &ev->fields[i];
	return NULL;
}
