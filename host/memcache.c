// SPDX-License-Identifier: MIT
/*
 * memcache: the stack window, cached lines of frame records and code
 * chunks that stops and steps read guest memory through (see memcache.h).
 */
#include "memcache.h"

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
	uint8_t *window;
	uint64_t win_addr;
	size_t win_len;
	uint8_t *burst;          /* window_max bytes rounded down to whole lines */
	size_t burst_len;
	struct line lines[LINE_SLOTS];
	struct code code[CODE_SLOTS];
	bool offline, missed;
};

int memcache_new(struct memcache **out, struct target *t, size_t window_max)
{
	struct memcache *mc = calloc(1, sizeof(*mc));

	if (!mc)
		return -ENOMEM;
	mc->t = t;
	mc->window_max = window_max;
	mc->burst_len = window_max / LINE_SIZE * LINE_SIZE;
	mc->window = malloc(window_max);
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
	free(mc->window);
	free(mc->burst);
	free(mc);
}

static size_t slot(uint64_t addr, size_t n)
{
	return (size_t)((addr >> 6) * 0x9E3779B97F4A7C15ull >> 40) % n;
}

void memcache_clear_lines(struct memcache *mc)
{
	memset(mc->lines, 0, sizeof(mc->lines));
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
	mc->win_addr = addr;
	mc->win_len = len;
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
}

bool memcache_missed(const struct memcache *mc)
{
	return mc->missed;
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

static int read_line(struct memcache *mc, uint64_t addr, const uint8_t **data)
{
	uint64_t base = addr & ~(uint64_t)(LINE_SIZE - 1);
	struct line *l = &mc->lines[slot(base, LINE_SLOTS)];
	int err;

	if (l->addr != base)
		read_burst(mc, base);
	err = cache_fill(mc, &l->addr, l->data, LINE_SIZE, base);
	if (!err)
		*data = l->data + (addr - base);
	return err;
}

int memcache_read(struct memcache *mc, uint64_t addr, void *out, size_t len)
{
	uint64_t base = addr & ~(uint64_t)(LINE_SIZE - 1);
	const uint8_t *p;
	int err;

	if (addr >= mc->win_addr && addr + len <= mc->win_addr + mc->win_len) {
		memcpy(out, mc->window + (addr - mc->win_addr), len);
		return 0;
	}
	if (addr + len > base + LINE_SIZE) /* straddles lines: go direct */
		return guest_read(mc, addr, out, len);
	if ((err = read_line(mc, addr, &p)))
		return err;
	memcpy(out, p, len);
	return 0;
}

/* Code bytes at @addr, up to the end of its chunk. */
static int code_at(struct memcache *mc, uint64_t addr, const uint8_t **data, size_t *avail)
{
	uint64_t base = addr & ~(uint64_t)(CODE_CHUNK - 1);
	struct code *c = &mc->code[slot(base, CODE_SLOTS)];
	int err = cache_fill(mc, &c->addr, c->data, CODE_CHUNK, base);

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
