/* SPDX-License-Identifier: MIT */
/*
 * memcache: guest memory as the engine reads it at stops and steps. The
 * stack window comes with the registers (one round trip); frame records
 * beyond it are read in bursts into 64-byte lines; code is kept in 256-byte
 * chunks for the session. While a single step runs, the guest's memory
 * cannot be read: the cache is then "offline", answers from what it holds
 * and notes a miss, to be redone once the guest has stopped.
 */
#ifndef KSTEP_MEMCACHE_H
#define KSTEP_MEMCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "target.h"

/* Kernel stacks are 16 KiB and aligned to their size (x86-64 THREAD_SIZE
 * without KASAN): a window never crosses the end of the stack it is on. */
#define KSTACK_ALIGN 16384

struct memcache;

/* @window_max: the most one 'm' reply carries (target_max_read). */
int memcache_new(struct memcache **out, struct target *t, size_t window_max);
void memcache_free(struct memcache *mc);

/* Forget the lines (the guest ran: frame records may have changed). Code
 * chunks stay: kernel text does not change under us. */
void memcache_clear_lines(struct memcache *mc);
/* The stack window of this snapshot: @len bytes from @addr. */
uint8_t *memcache_window(struct memcache *mc, uint64_t *addr, size_t *len);
size_t memcache_window_max(const struct memcache *mc);
void memcache_set_window(struct memcache *mc, uint64_t addr, size_t len);
/* Make @len bytes at @data, which the caller keeps, the window at @addr
 * (a plugin's HIT, whose window may be larger than window_max); the next
 * memcache_set_window takes the cache's own back. */
void memcache_show_window(struct memcache *mc, uint64_t addr, const uint8_t *data, size_t len);
/* A second range shown beside it (the stack a HIT's window links to),
 * until the next memcache_set_window. */
void memcache_show_more(struct memcache *mc, uint64_t addr, const uint8_t *data, size_t len);
/* What a plugin's HIT captured (plugin/channel.h's capture list, checked
 * by chan_parse_hit), read before the lines, until memcache_set_window. */
void memcache_show_captures(struct memcache *mc, const uint8_t *caps, size_t len);
/* Where code comes from while offline when it is not cached (the vmlinux
 * file, for a guest that runs while kstep reads a plugin's HITs). */
void memcache_set_code_source(struct memcache *mc, int (*read)(void *ctx, uint64_t addr, void *out, size_t len),
			      void *ctx);
/* Copy the fresh window into the lines it overlaps, so a frame record
 * pushed while inside it stays right once rsp moves below it again. */
void memcache_window_to_lines(struct memcache *mc);

/* While offline, reads that miss return -EAGAIN and set the miss flag;
 * each call starts a pass with the flag clear. */
void memcache_set_offline(struct memcache *mc, bool offline);
bool memcache_missed(const struct memcache *mc);

/* Guest memory: the window first, then lines (read in bursts towards the
 * end of the stack), else straight from the target. */
int memcache_read(struct memcache *mc, uint64_t addr, void *out, size_t len);
/*
 * Run @eval (which reads through the cache) offline, read all the lines it
 * missed in one round trip, and run it again until it misses nothing: the
 * fields of a stop cost a round trip per level of pointers, and none for
 * objects the last stop also needed behind a pointer (a device, a socket),
 * which the first round trip reads as well. The guest must be stopped.
 * Nonzero when the connection failed (@eval then ran online).
 */
int memcache_prefetched(struct memcache *mc, void (*eval)(void *ctx), void *ctx);
/* @len code bytes at @addr, across chunk boundaries. */
int memcache_code(struct memcache *mc, uint64_t addr, uint8_t *out, size_t len);

/*
 * Where to fetch the stack window with the registers, before rsp is known.
 * A stop fetches a whole window around the last rsp (@last_sp). A step
 * fetches no more than needed, since it pays that at every step: from
 * where the instruction leaves rsp (@next_sp) when that follows from its
 * code (@sp_known), else around the last rsp with a margin either way.
 * Never past the end of the 16 KiB stack.
 */
struct window_plan {
	uint64_t start;
	size_t len;
};
struct window_plan memcache_plan_window(uint64_t last_sp, uint64_t next_sp, bool stepping, bool sp_known,
					size_t want, size_t window_max);

#endif
