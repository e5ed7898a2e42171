// SPDX-License-Identifier: MIT
/*
 * memcache: the stack window, cached lines of frame records and code
 * chunks that stops and steps read guest memory through (see memcache.h).
 */
#include "memcache.h"

#include "../plugin/channel.h"
#include "hash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Lines of guest memory cached for frame records outside the window. */
#define LINE_SIZE 64
#define LINE_SLOTS 512
/* Around an rsp not foreseen, a window reaches this far below it and as far
 * again above what is wanted; below a foreseen rsp, room for the frame of an
 * exception the instruction raised instead (a page fault in copy_to_user). */
#define WINDOW_MARGIN 256
#define TRAP_MARGIN 64
/* Code is fetched in aligned chunks and kept for the session. */
#define CODE_CHUNK 256
#define CODE_SLOTS 256
/* Lines an offline pass notes as missed, lines found unreadable at this
 * stop, and lines a prefetch asks for at once because the last one needed
 * them only after a pointer was read (the same objects, stop after stop). */
#define MISSED_MAX 32
#define BAD_MAX 16
#define HINTS_MAX 16
/* Passes of a prefetch before the rest is read one line at a time, and
 * the lines it keeps apart from the hashed slots, where two it needs at
 * once could evict each other pass after pass. */
#define PREFETCH_PASSES 4
#define PREFETCHED_MAX 64

struct line {
	uint64_t addr;   /* LINE_SIZE-aligned, 0: empty */
	uint8_t data[LINE_SIZE];
};

struct code {
	uint64_t addr;   /* CODE_CHUNK-aligned, 0: empty */
	uint8_t data[CODE_CHUNK];
};

struct memcache {
	struct target *t;
	size_t window_max;
	uint8_t *window;         /* own_window, or a plugin HIT's (memcache_show_window) */
	uint8_t *own_window;
	const uint8_t *more;     /* a second shown range (memcache_show_more), NULL: none */
	const uint8_t *caps;     /* captured ranges (memcache_show_captures), NULL: none */
	size_t caps_len;
	uint64_t more_addr;
	size_t more_len;
	uint64_t win_addr;
	size_t win_len;
	uint8_t *burst;          /* window_max bytes rounded down to whole lines */
	size_t burst_len;
	struct line lines[LINE_SLOTS];
	bool lines_filled;       /* any since they were last cleared (a plugin's steps: none) */
	struct code code[CODE_SLOTS];
	bool offline, missed;
	uint64_t missed_lines[MISSED_MAX], bad_lines[BAD_MAX], hints[HINTS_MAX];
	size_t nmissed, nbad, nhints, next_hint;
	struct line prefetched[PREFETCHED_MAX];
	size_t nprefetched;
	int (*code_source)(void *ctx, uint64_t addr, void *out, size_t len);
	void *code_ctx;
};

int memcache_new(struct memcache **out, struct target *t, size_t window_max)
{
	struct memcache *mc = calloc(1, sizeof(*mc));

	if (!mc)
		return -ENOMEM;
	mc->t = t;
	mc->window_max = window_max;
	mc->burst_len = window_max / LINE_SIZE * LINE_SIZE;
	mc->window = mc->own_window = malloc(window_max);
	mc->burst = malloc(mc->burst_len ? mc->burst_len : 1);
	if (!mc->window || !mc->burst) {
		memcache_free(mc);
		return -ENOMEM;
	}
	*out = mc;
	return 0;
}

void memcache_free(struct memcache *mc)
{
	if (!mc)
		return;
	free(mc->own_window);
	free(mc->burst);
	free(mc);
}

static size_t slot(uint64_t addr, size_t n)
{
	return hash_slot(addr >> 6, n);
}

void memcache_clear_lines(struct memcache *mc)
{
	if (mc->lines_filled)
		memset(mc->lines, 0, sizeof(mc->lines));
	mc->lines_filled = false;
	mc->nbad = 0;
	mc->nprefetched = 0;
}

uint8_t *memcache_window(struct memcache *mc, uint64_t *addr, size_t *len)
{
	if (addr)
		*addr = mc->win_addr;
	if (len)
		*len = mc->win_len;
	return mc->window;
}

size_t memcache_window_max(const struct memcache *mc)
{
	return mc->window_max;
}

void memcache_set_window(struct memcache *mc, uint64_t addr, size_t len)
{
	mc->window = mc->own_window;
	mc->more = NULL;
	mc->caps = NULL;
	mc->win_addr = addr;
	mc->win_len = len;
}

void memcache_show_window(struct memcache *mc, uint64_t addr, const uint8_t *data, size_t len)
{
	mc->window = (uint8_t *)data; /* read only: nothing writes a shown window */
	mc->win_addr = addr;
	mc->win_len = len;
}

void memcache_show_more(struct memcache *mc, uint64_t addr, const uint8_t *data, size_t len)
{
	mc->more = data;
	mc->more_addr = addr;
	mc->more_len = len;
}

void memcache_show_captures(struct memcache *mc, const uint8_t *caps, size_t len)
{
	mc->caps = caps;
	mc->caps_len = len;
}

/* @len bytes at @addr from one of the captured ranges, if one holds them. */
static bool from_captures(const struct memcache *mc, uint64_t addr, void *out, size_t len)
{
	for (size_t off = 0; mc->caps && off + sizeof(struct chan_capture) <= mc->caps_len;) {
		struct chan_capture cap;

		memcpy(&cap, mc->caps + off, sizeof(cap));
		off += sizeof(cap);
		if (addr >= cap.addr && addr - cap.addr <= cap.len && len <= cap.len - (addr - cap.addr)) {
			memcpy(out, mc->caps + off + (addr - cap.addr), len);
			return true;
		}
		off += cap.len;
	}
	return false;
}

void memcache_set_code_source(struct memcache *mc, int (*read)(void *ctx, uint64_t addr, void *out, size_t len),
			      void *ctx)
{
	mc->code_source = read;
	mc->code_ctx = ctx;
}

void memcache_window_to_lines(struct memcache *mc)
{
	uint64_t end = mc->win_addr + mc->win_len;

	for (uint64_t a = mc->win_addr & ~(uint64_t)(LINE_SIZE - 1); a < end; a += LINE_SIZE) {
		struct line *l = &mc->lines[slot(a, LINE_SLOTS)];
		uint64_t from = a > mc->win_addr ? a : mc->win_addr;
		uint64_t to = a + LINE_SIZE < end ? a + LINE_SIZE : end;

		if (l->addr == a)
			memcpy(l->data + (from - a), mc->window + (from - mc->win_addr), (size_t)(to - from));
	}
}

void memcache_set_offline(struct memcache *mc, bool offline)
{
	mc->offline = offline;
	mc->missed = false; /* a miss counts for the pass that follows */
	mc->nmissed = 0;
}

bool memcache_missed(const struct memcache *mc)
{
	return mc->missed;
}

static bool in_list(const uint64_t *list, size_t n, uint64_t addr)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == addr)
			return true;
	return false;
}

/* Guest memory, unless a step is running (then: a miss, redone later). */
static int guest_read(struct memcache *mc, uint64_t addr, void *out, size_t len)
{
	if (mc->offline) {
		mc->missed = true;
		return -EAGAIN;
	}
	return target_read_mem(mc->t, addr, out, len);
}

/* Offline, a line to be read by the prefetch that follows the pass; one
 * found unreadable at this stop fails at once. */
static int line_missed(struct memcache *mc, uint64_t base)
{
	if (in_list(mc->bad_lines, mc->nbad, base))
		return -EFAULT;
	if (mc->nmissed < MISSED_MAX && !in_list(mc->missed_lines, mc->nmissed, base))
		mc->missed_lines[mc->nmissed++] = base;
	mc->missed = true;
	return -EAGAIN;
}

/* Make a cache slot hold the @size bytes at @base. */
static int cache_fill(struct memcache *mc, uint64_t *slot_addr, uint8_t *data, size_t size, uint64_t base)
{
	int err;

	if (*slot_addr == base)
		return 0;
	err = guest_read(mc, base, data, size);
	*slot_addr = err ? 0 : base;
	return err;
}

/*
 * Frame records lie one above the other on the same stack, so a miss reads
 * on towards the stack's end, as many lines as one 'm' reply carries: a
 * chain that leaves the window (an interrupt on the task stack, say) costs
 * one read instead of one per frame.
 */
static void read_burst(struct memcache *mc, uint64_t base)
{
	size_t n = KSTACK_ALIGN - (size_t)(base & (KSTACK_ALIGN - 1));

	if (n > mc->burst_len)
		n = mc->burst_len;
	if (mc->offline || n <= LINE_SIZE || target_read_mem(mc->t, base, mc->burst, n))
		return; /* the line alone, then */
	for (size_t off = 0; off < n; off += LINE_SIZE) {
		struct line *l = &mc->lines[slot(base + off, LINE_SLOTS)];

		l->addr = base + off;
		memcpy(l->data, mc->burst + off, LINE_SIZE);
	}
}

static struct line *prefetched(struct memcache *mc, uint64_t base)
{
	for (size_t i = 0; i < mc->nprefetched; i++)
		if (mc->prefetched[i].addr == base)
			return &mc->prefetched[i];
	return NULL;
}

/* Where a line read by a prefetch goes: apart while there is room. */
static struct line *prefetch_slot(struct memcache *mc, uint64_t base)
{
	struct line *l = prefetched(mc, base);

	if (!l && mc->nprefetched < PREFETCHED_MAX)
		l = &mc->prefetched[mc->nprefetched++];
	return l ? l : &mc->lines[slot(base, LINE_SLOTS)];
}

static int read_line(struct memcache *mc, uint64_t addr, const uint8_t **data)
{
	uint64_t base = addr & ~(uint64_t)(LINE_SIZE - 1);
	struct line *l = mc->nprefetched ? prefetched(mc, base) : NULL;
	int err;

	if (l) {
		*data = l->data + (addr - base);
		return 0;
	}
	l = &mc->lines[slot(base, LINE_SLOTS)];
	if (l->addr != base && mc->offline)
		return line_missed(mc, base);
	if (l->addr != base)
		read_burst(mc, base);
	mc->lines_filled = true; /* by the burst, or by this line */
	err = cache_fill(mc, &l->addr, l->data, LINE_SIZE, base);
	if (!err)
		*data = l->data + (addr - base);
	return err;
}

int memcache_read(struct memcache *mc, uint64_t addr, void *out, size_t len)
{
	uint8_t *dst = out;
	int err = 0;

	if (addr >= mc->win_addr && addr + len <= mc->win_addr + mc->win_len) {
		memcpy(out, mc->window + (addr - mc->win_addr), len);
		return 0;
	}
	if (mc->more && addr >= mc->more_addr && addr + len <= mc->more_addr + mc->more_len) {
		memcpy(out, mc->more + (addr - mc->more_addr), len);
		return 0;
	}
	if (mc->caps && from_captures(mc, addr, out, len))
		return 0;
	if (len > MISSED_MAX * LINE_SIZE / 4) /* a buffer, not a field: go direct */
		return guest_read(mc, addr, out, len);
	/* Line by line; offline, every line missed is noted before failing. */
	while (len) {
		const uint8_t *p;
		size_t in_line = LINE_SIZE - (size_t)(addr & (LINE_SIZE - 1)), n = len < in_line ? len : in_line;
		int e = read_line(mc, addr, &p);

		if (e && (!mc->offline || e != -EAGAIN))
			return e;
		if (e)
			err = e;
		else
			memcpy(dst, p, n);
		dst += n;
		addr += n;
		len -= n;
	}
	return err;
}

static void add_hint(struct memcache *mc, uint64_t base)
{
	if (in_list(mc->hints, mc->nhints, base))
		return;
	if (mc->nhints < HINTS_MAX)
		mc->nhints++;
	mc->hints[mc->next_hint] = base; /* the oldest goes first */
	mc->next_hint = (mc->next_hint + 1) % HINTS_MAX;
}

static int by_address(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Read @n sorted lines, neighbours on one page in one span (a page is
 * mapped or not as a whole), all in one round trip; lines not readable go
 * on the stop's bad list. */
static int read_lines(struct memcache *mc, const uint64_t *want, size_t n)
{
	struct target_span spans[MISSED_MAX + HINTS_MAX];
	uint8_t data[MISSED_MAX + HINTS_MAX][LINE_SIZE];
	size_t nspans = 0, max = target_max_read(mc->t) / LINE_SIZE * LINE_SIZE;
	int err;

	for (size_t i = 0; i < n; i++) {
		struct target_span *last = nspans ? &spans[nspans - 1] : NULL;

		if (last && last->addr + last->len == want[i] && (want[i] & 4095) && last->len + LINE_SIZE <= max)
			last->len += LINE_SIZE;
		else
			spans[nspans++] = (struct target_span){ .addr = want[i], .len = LINE_SIZE, .out = data[i] };
	}
	if ((err = target_read_spans(mc->t, spans, nspans)))
		return err;
	for (size_t i = 0; i < nspans; i++)
		for (size_t off = 0; off < spans[i].len; off += LINE_SIZE) {
			uint64_t base = spans[i].addr + off;
			struct line *l = prefetch_slot(mc, base);

			if (spans[i].ok) {
				mc->lines_filled = true;
				l->addr = base;
				memcpy(l->data, spans[i].out + off, LINE_SIZE);
			} else if (mc->nbad < BAD_MAX) {
				mc->bad_lines[mc->nbad++] = base;
			}
		}
	return 0;
}

/* Read the lines the last pass missed (and on the first, the hints not
 * cached yet) in one round trip. */
static int fetch_missed(struct memcache *mc, bool first)
{
	uint64_t want[MISSED_MAX + HINTS_MAX];
	size_t n = 0;

	for (size_t i = 0; i < mc->nmissed; i++) {
		want[n++] = mc->missed_lines[i];
		if (!first)
			add_hint(mc, mc->missed_lines[i]); /* found behind a pointer */
	}
	for (size_t i = 0; first && i < mc->nhints; i++)
		if (!in_list(want, n, mc->hints[i]) && !prefetched(mc, mc->hints[i]))
			want[n++] = mc->hints[i];
	qsort(want, n, sizeof(*want), by_address);
	return read_lines(mc, want, n);
}

int memcache_prefetched(struct memcache *mc, void (*eval)(void *ctx), void *ctx)
{
	bool was_offline = mc->offline;
	int err = 0;

	for (int pass = 0; pass < PREFETCH_PASSES && !err; pass++) {
		memcache_set_offline(mc, true);
		eval(ctx);
		if (!mc->missed)
			break;
		mc->offline = false;
		err = fetch_missed(mc, pass == 0);
	}
	if (mc->missed || err) {
		memcache_set_offline(mc, false); /* what is left, one read at a time */
		eval(ctx);
	}
	memcache_set_offline(mc, was_offline);
	return err;
}

/* Code bytes at @addr, up to the end of its chunk. */
static int code_at(struct memcache *mc, uint64_t addr, const uint8_t **data, size_t *avail)
{
	uint64_t base = addr & ~(uint64_t)(CODE_CHUNK - 1);
	struct code *c = &mc->code[slot(base, CODE_SLOTS)];
	int err = cache_fill(mc, &c->addr, c->data, CODE_CHUNK, base);

	if (err == -EAGAIN && mc->code_source && !mc->code_source(mc->code_ctx, base, c->data, CODE_CHUNK)) {
		mc->missed = false; /* answered after all */
		c->addr = base;
		err = 0;
	}

	if (!err) {
		*data = c->data + (addr - base);
		*avail = CODE_CHUNK - (size_t)(addr - base);
	}
	return err;
}

int memcache_code(struct memcache *mc, uint64_t addr, uint8_t *out, size_t len)
{
	while (len) {
		const uint8_t *p;
		size_t avail;
		int err = code_at(mc, addr, &p, &avail);

		if (err)
			return err;
		if (avail > len)
			avail = len;
		memcpy(out, p, avail);
		out += avail;
		addr += avail;
		len -= avail;
	}
	return 0;
}

struct window_plan memcache_plan_window(uint64_t last_sp, uint64_t next_sp, bool stepping, bool sp_known,
					size_t want, size_t window_max)
{
	bool foreseen = stepping && sp_known;
	uint64_t sp = foreseen ? next_sp : last_sp;
	size_t below = foreseen ? TRAP_MARGIN : WINDOW_MARGIN;
	uint64_t lo = sp & ~(uint64_t)(KSTACK_ALIGN - 1);
	struct window_plan w;

	if (stepping && below > window_max - want)
		below = window_max - want; /* all of @want first */
	w.start = sp - below;
	if (w.start > sp || w.start < lo)
		w.start = lo; /* stay on the same stack */
	/* A step to follow: no more than needed, it is paid at every step. */
	if (!stepping)
		w.len = window_max;
	else
		w.len = (size_t)(sp - w.start) + want + (sp_known ? 0 : WINDOW_MARGIN);
	if (w.len > window_max)
		w.len = window_max;
	if ((w.start & (KSTACK_ALIGN - 1)) + w.len > KSTACK_ALIGN)
		w.len = KSTACK_ALIGN - (size_t)(w.start & (KSTACK_ALIGN - 1));
	return w;
}
