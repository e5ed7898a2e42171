// SPDX-License-Identifier: MIT
/*
 * engine_probe: what a probe's stop records beyond the snapshot: its fetch
 * arguments and decoded packet, whether its filter keeps the hit, the
 * guest's clock, and return probes. A return is caught by a breakpoint on
 * the return address of that call, matched to it by the stack pointer the
 * return leaves (recursion and other tasks have other stacks); a call whose
 * frame is gone without returning (the stack pointer passed above it: a
 * longjmp-like exit) is dropped there, and the breakpoint is removed as
 * soon as no call waits on it.
 */
#include "engine_priv.h"
#include "filter.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

static int read_guest(void *ctx, uint64_t addr, void *out, size_t len)
{
	return memcache_read(ctx, addr, out, len);
}

static struct farg_env probe_env(const struct engine *e, uint64_t dwarf[CFI_NREGS])
{
	engine_dwarf_regs(e, dwarf);
	return (struct farg_env){ .regs = dwarf, .percpu_base = e->gs_idx >= 0 ? engine_reg(e, e->gs_idx) : 0,
				  .read = read_guest, .ctx = e->mc };
}

int engine_location(struct engine *e, const struct farg *expr, uint64_t *addr, size_t *len, uint64_t *value)
{
	uint64_t dwarf[CFI_NREGS];
	struct farg_env env = probe_env(e, dwarf);
	int err = farg_location(expr, &env, addr, len);

	*value = 0;
	return err ? err : memcache_read(e->mc, *addr, value, *len) ? -EFAULT : 0;
}

void engine_update_guest_clock(struct engine *e)
{
	uint64_t icount;

	if (e->o.guest_clock && !e->o.guest_clock(e->o.clock_ctx, &icount))
		e->guest_ns = icount << e->o.icount_shift;
}

struct field_fetch {
	struct engine *e;
	struct farg *const *args;
	size_t nargs;
	bool packet;
	uint64_t skb;
	struct farg_value *vals;
	size_t n;
};

static void eval_fields(void *ctx)
{
	struct field_fetch *f = ctx;
	uint64_t dwarf[CFI_NREGS];
	struct farg_env env = probe_env(f->e, dwarf);
	size_t n = 0;

	for (; n < f->nargs && n < ENGINE_MAX_VALUES - PACKET_NFIELDS; n++)
		farg_eval(f->args[n], &env, &f->vals[n]);
	if (f->packet) {
		packet_decode(&f->e->pkt, f->skb, read_guest, f->e->mc, f->vals + n);
		n += PACKET_NFIELDS;
	}
	f->n = n;
}

/* The fields of @args (and with @packet, those of @skb's packet: empty
 * without one), in the class's order, their reads batched by level. */
static size_t fetch_values(struct engine *e, struct farg *const *args, size_t nargs, bool packet, uint64_t skb,
			   struct farg_value *vals)
{
	struct field_fetch f = { .e = e, .args = args, .nargs = nargs, .packet = packet, .skb = skb, .vals = vals };

	if (e->chan && (nargs || packet))
		eval_fields(&f); /* a plugin's HIT: what it captured, the guest long gone on */
	else if (nargs || packet)
		memcache_prefetched(e->mc, eval_fields, &f);
	return f.n;
}

void engine_probe_fetch(struct engine *e, const struct probe *p, uint64_t skb, struct probe_hit *h)
{
	h->skb = skb;
	h->n = fetch_values(e, p->args, p->nargs, p->packet, skb, h->vals);
}

/* Does --pcap-filter keep the packet of @h (fetched with @p's fields)? */
static bool packet_kept(const struct engine *e, const struct probe *p, const struct probe_hit *h)
{
	uint8_t bytes[PACKET_SNAPLEN_MAX];
	uint32_t wire_len;
	size_t n;

	if (!e->o.pcap || !h->skb || !p->packet || h->n < PACKET_NFIELDS)
		return true;
	n = packet_bytes(h->vals[h->n - PACKET_NFIELDS + PACKET_BYTES].str, bytes, sizeof(bytes), &wire_len);
	return pcap_filter_match(e->o.pcap, bytes, n, wire_len);
}

bool engine_probe_matches(struct engine *e, const struct probe *p, const struct probe_hit *h)
{
	uint64_t dwarf[CFI_NREGS];
	struct farg_env env = probe_env(e, dwarf);

	return packet_kept(e, p, h) && (!p->filter || filter_match(p->filter, h->vals, &env));
}

static void to_trace_values(const struct farg_value *vals, size_t n, struct trace_value *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (struct trace_value){ .u = vals[i].u, .str = vals[i].str };
}

/* Remember a call of @p's function, to catch its return. */
static int expect_return(struct engine *e, struct probe *p)
{
	uint64_t sp = engine_reg(e, e->sp_idx), ret;
	struct pending_call *c;
	int err;

	if (memcache_read(e->mc, sp, &ret, 8))
		return 0; /* no return address to wait at */
	if (e->ncalls == ENGINE_PENDING_CALLS) {
		/* The oldest has waited longest: it ended some other way. */
		uint64_t old = e->calls[0].ret;

		memmove(&e->calls[0], &e->calls[1], (e->ncalls - 1) * sizeof(e->calls[0]));
		e->ncalls--;
		if (!e->chan && (err = engine_release(e, old)))
			return err;
	}
	c = &e->calls[e->ncalls++];
	*c = (struct pending_call){ .ret = ret, .sp = sp + 8, .guest_ns = e->guest_ns, .host_ns = trace_now_ns(),
				    .p = p };
	/* Through the plugin, it watches for the return (CHAN_OP_AT_RETURN). */
	return e->chan ? 0 : engine_hold(e, ret);
}

int engine_probe_hit(struct engine *e, struct probe *p, const struct probe_hit *h, struct snapshot *sn,
		     struct engine_result *res)
{
	struct trace_value tv[ENGINE_MAX_VALUES];
	int err;

	if (p->on_return && (err = expect_return(e, p)))
		return err;
	if (!p->entry_event)
		return 0;
	to_trace_values(h->vals, h->n, tv);
	if ((err = engine_write_event(e, sn, TRACE_STOP, p->class_id, p->stage, h->skb, tv, NULL, NULL, 0)))
		return err;
	res->stops++;
	return 1;
}

/* The return of call @c, stopped at its return address. */
static int record_return(struct engine *e, const struct pending_call *c, struct snapshot *sn,
			 struct engine_result *res)
{
	struct farg_value vals[ENGINE_MAX_VALUES];
	struct trace_value tv[ENGINE_MAX_VALUES];
	size_t n;

	if (engine_at_max_stops(e, res))
		return 0;
	n = fetch_values(e, c->p->ret_args, c->p->nret_args, false, 0, vals);
	to_trace_values(vals, n, tv);
	tv[n++].u = e->guest_ns - c->guest_ns;
	tv[n++].u = e->o.replay ? 0 : trace_now_ns() - c->host_ns; /* the host's pace differs between replays */
	c->p->returns++;
	res->stops++;
	return engine_write_event(e, sn, TRACE_STOP, c->p->ret_class_id, c->p->stage, 0, tv, NULL, NULL, 0);
}

/* Whether a call waits for its return at @pc. */
static bool call_returns_to(const struct engine *e, uint64_t pc)
{
	for (size_t i = 0; i < e->ncalls; i++)
		if (e->calls[i].ret == pc)
			return true;
	return false;
}

int engine_returns_at(struct engine *e, uint64_t pc, struct snapshot *sn, struct engine_result *res)
{
	uint64_t sp = engine_reg(e, e->sp_idx), stack = sp & ~(uint64_t)(KSTACK_ALIGN - 1);
	size_t i = 0;
	int err = 0;

	if (!call_returns_to(e, pc))
		return 0;
	engine_take(e, sn, snapshot_frame_state(e->snap, pc)); /* for the returns' events */
	while (i < e->ncalls && !err) {
		struct pending_call c = e->calls[i];

		/* Another stack (task, interrupt), or a frame below the call's:
		 * not this call's return. */
		if (c.ret != pc || ((c.sp - 1) & ~(uint64_t)(KSTACK_ALIGN - 1)) != stack || c.sp > sp) {
			i++;
			continue;
		}
		memmove(&e->calls[i], &e->calls[i + 1], (e->ncalls - i - 1) * sizeof(e->calls[0]));
		e->ncalls--;
		/* Above the call's frame: it is gone without returning here. */
		if (c.sp == sp)
			err = record_return(e, &c, sn, res);
		if (!err && !e->chan)
			err = engine_release(e, pc);
	}
	return err;
}
