// SPDX-License-Identifier: MIT
/*
 * engine_plugin: probe hits that come from kstep's QEMU plugin instead of
 * breakpoint stops. The gdbstub still brings the guest to start_kernel,
 * stops it at the module loader and ends the run; the probes themselves
 * are addresses the plugin watches while the guest runs on. Each HIT's
 * registers and stack window become the engine's current state for one
 * snapshot: the unwinder reads the window (memory beyond it is not
 * there: the guest has moved on) and code from vmlinux, and the event is
 * written as a breakpoint stop's would be.
 */
#include "engine_priv.h"
#include "filter.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_chan.h"

/* How long a wait for the plugin or the gdbstub lasts before kstep looks
 * at its limits (and, before a step run's start, warms ahead). */
#define PLUGIN_POLL_MS 2
/* Messages read before the gdbstub is looked at again. */
#define PLUGIN_BATCH 4096
/* Per-CPU variables are offsets below this (the per-CPU section's size). */
#define PERCPU_MAX (1u << 24)
/* QEMU closes the plugin's socket as it exits; a socket closed this long
 * with the gdbstub still open is a plugin that gave up. */
#define PLUGIN_GONE_S 5.0
/* A SYNC is answered at once, unless the guest is dying. */
#define PLUGIN_SYNC_MS 10000

static int read_code(void *ctx, uint64_t addr, void *out, size_t len)
{
	return sym_read_bytes(ctx, addr, out, len);
}

void engine_use_plugin(struct engine *e, struct chan *chan)
{
	e->chan = chan;
	memcache_set_code_source(e->mc, chan ? read_code : NULL, e->syms);
}

const uint8_t *engine_plugin_show(struct engine *e, const struct chan_hit_view *v, const uint8_t *stack,
				  size_t stack_len, uint64_t link, const uint8_t *linked, size_t link_len)
{
	const uint8_t *regs = e->regs;

	e->regs = v->regs;
	e->hit_vcpu = v->h.vcpu + 1;
	e->guest_ns = v->h.icount << e->o.icount_shift; /* the plugin's count, under -icount (else 0) */
	memcache_clear_lines(e->mc);
	memcache_show_window(e->mc, v->h.sp, stack, stack_len);
	if (link_len)
		memcache_show_more(e->mc, link, linked, link_len);
	memcache_show_captures(e->mc, v->caps, v->h.caps_len);
	memcache_set_offline(e->mc, true);
	return regs;
}

void engine_plugin_unshow(struct engine *e, uint64_t sp, const uint8_t *regs)
{
	memcache_set_offline(e->mc, false);
	memcache_set_window(e->mc, sp, 0);
	e->regs = regs;
	e->hit_vcpu = 0;
}

/* A HIT at --at that asks (CHAN_HIT_ASKS): its vCPU waits for the answer,
 * whether the steps start there (its filter keeps it, and it is the
 * --hits-th hit kept). */
static int answer_hit(struct engine *e, const struct probe *p, const struct chan_hit_view *v,
		      const struct engine_result *res)
{
	const uint8_t *regs = engine_plugin_show(e, v, v->window, v->h.win_len, v->h.link, v->linked, v->h.link_len);
	struct chan_step_verdict sv = { .seq = v->h.seq };
	int err;

	sv.step = p && res->end == ENGINE_END_NONE && engine_step_starts_at(e, p);
	engine_plugin_unshow(e, v->h.sp, regs);
	if ((err = chan_send(e->chan, CHAN_STEP_VERDICT, &sv, sizeof(sv))))
		return kerr_set(e->err, sizeof(e->err), err, "writing to the plugin: %s", strerror(-err));
	return 0;
}

/* One HIT: the registers and window it carries are the state a stop's
 * snapshot is taken from. */
static int take_hit(struct engine *e, struct probe_set *ps, const struct chan_msg *m, struct snapshot *sn,
		    struct engine_result *res)
{
	const uint8_t *regs;
	struct chan_hit_view v;
	struct probe *p;
	int err;

	if (chan_parse_hit(m, target_desc(e->t)->g_size, &v))
		return kerr_set(e->err, sizeof(e->err), -EPROTO, "the plugin sent a HIT that is not one (%u bytes)", m->len);
	res->plugin_hits++;
	p = probes_find(ps, v.h.pc);
	if (v.h.flags & CHAN_HIT_ASKS)
		return answer_hit(e, p, &v, res);
	if ((!p && !(v.h.flags & CHAN_HIT_RETURN)) || res->end != ENGINE_END_NONE)
		return 0; /* taken out since, or past --max-stops */
	regs = engine_plugin_show(e, &v, v.window, v.h.win_len, v.h.link, v.linked, v.h.link_len);
	if (v.h.flags & CHAN_HIT_RETURN) { /* a %return probe's call came back */
		err = engine_returns_at(e, v.h.pc, sn, res);
		if (!err && engine_at_max_stops(e, res))
			res->end = ENGINE_END_MAX_STOPS;
	} else
		err = engine_record_stop(e, p, sn, res);
	engine_plugin_unshow(e, v.h.sp, regs);
	return err;
}

/* One STEP: an instruction of kstep step, for engine_step to record. */
static int take_step(struct engine *e, const struct chan_msg *m, struct engine_result *res)
{
	struct chan_hit_view v;
	uint64_t next;

	if (chan_parse_hit(m, target_desc(e->t)->g_size, &v))
		return kerr_set(e->err, sizeof(e->err), -EPROTO, "the plugin sent a STEP that is not one (%u bytes)", m->len);
	res->plugin_hits++;
	if (chan_peek_pc(e->chan, &next)) { /* what the next STEP asks for: fetched while this one is recorded */
		disasm_prefetch(e->dis, next);
		snapshot_prefetch(e->snap, next);
	}
	return engine_step_take(e, &v, res);
}

static int take_message(struct engine *e, struct probe_set *ps, const struct chan_msg *m, struct snapshot *sn,
			struct engine_result *res, bool *synced)
{
	struct chan_synced s;
	struct chan_gone g;

	if (m->type == CHAN_HIT)
		return take_hit(e, ps, m, sn, res);
	if (m->type == CHAN_STEP)
		return take_step(e, m, res);
	if (!chan_parse_gone(m, &g))
		return kerr_set(e->err, sizeof(e->err), -EPIPE, "kstep's QEMU plugin gave up after %u hits (%s) while the "
			        "guest ran on: the trace ends there", g.hits,
			        g.reason == CHAN_GONE_NOMEM ? "out of memory" : "a reason this kstep does not know");
	if (chan_parse_synced(m, &s))
		return kerr_set(e->err, sizeof(e->err), -EPROTO, "the plugin sent message type %u", m->type);
	res->plugin_reported = s.hits;
	res->plugin_waits = s.waits;
	res->plugin_wait_seconds = (double)s.wait_ns / 1e9;
	res->plugin_regs_missing = s.regs_missing;
	*synced = chan_synced_is_last(e->chan, &s);
	return 0;
}

/* Everything the plugin sent up to its SYNCED, the reply to what kstep
 * just sent (or its last words, when QEMU ends). */
static int until_synced(struct engine *e, struct probe_set *ps, struct snapshot *sn, struct engine_result *res)
{
	bool synced = false;
	double t0 = engine_since(e);

	while (!synced) {
		struct chan_msg m;
		int n = chan_next(e->chan, &m, PLUGIN_POLL_MS * 50);

		if (n == -ECONNRESET)
			return 0; /* QEMU ended: all it sent is read */
		if (n < 0 && n != -EINTR)
			return kerr_set(e->err, sizeof(e->err), n, "reading the plugin: %s", strerror(-n));
		if (n > 0 && (n = take_message(e, ps, &m, sn, res, &synced)))
			return n;
		if (!synced && engine_since(e) - t0 > PLUGIN_SYNC_MS / 1000.0)
			return kerr_set(e->err, sizeof(e->err), -ETIMEDOUT, "the plugin did not answer within %d s", PLUGIN_SYNC_MS / 1000);
	}
	return 0;
}

/* A message kstep sent while the guest is stopped (@err: how its write
 * went), and the plugin's SYNCED for it (the one that counts it,
 * chan_synced_is_last): the guest goes on only once the plugin has read
 * the message. */
static int until_answered(struct engine *e, int err, struct probe_set *ps, struct snapshot *sn,
			  struct engine_result *res)
{
	if (err)
		return kerr_set(e->err, sizeof(e->err), err, "writing to the plugin: %s", strerror(-err));
	return until_synced(e, ps, sn, res);
}

int engine_plugin_sync(struct engine *e, struct probe_set *ps, struct snapshot *sn, struct engine_result *res)
{
	int err = chan_send(e->chan, CHAN_SYNC, NULL, 0);

	/* Gone already (QEMU ending): what it sent before is still to read. */
	return until_answered(e, err == -ECONNRESET ? 0 : err, ps, sn, res);
}

/* x86-64 Linux keeps each CPU's IRQ stack pointer in the per-CPU
 * variable hardirq_stack_ptr (up to 6.1), or in the per-CPU struct
 * pcpu_hot's member of that name (6.2 on), whose symbol is its offset from
 * the per-CPU base (gs_base in the kernel); 0 when this vmlinux has
 * neither. */
static uint64_t irq_stack_ptr(const struct engine *e)
{
	const struct sym *s = sym_lookup_name(e->syms, "hardirq_stack_ptr");
	const struct sym *hot = s ? NULL : sym_lookup_name(e->syms, "pcpu_hot");
	uint64_t member = 0, off = 0;

	if (s)
		off = s->addr - sym_offset(e->syms);
	else if (hot && !sym_member(e->syms, "pcpu_hot", "hardirq_stack_ptr", &member, NULL))
		off = hot->addr - sym_offset(e->syms) + member;
	return off < PERCPU_MAX ? off : 0;
}

/* A register slot of the plugin's REGS (the 'g' layout, in order). */
static int slot_of(const struct engine *e, int64_t dwarf)
{
	return dwarf >= 0 && dwarf < CFI_NREGS ? e->dwarf_idx[dwarf] : -1;
}

/* @a's program in the plugin's steps, after @ops[*n]; -E2BIG past @max. */
static int add_expr(const struct engine *e, const struct farg *a, struct chan_op *ops, size_t *n, size_t max)
{
	struct farg_step steps[64];
	size_t final, k;
	bool string;

	k = farg_steps(a, steps, 64, &final, &string);
	if (!k || *n + k + 1 > max)
		return -E2BIG;
	for (size_t i = 0; i < k; i++) {
		static const uint32_t kinds[] = { [FARG_STEP_REG] = CHAN_OP_REG, [FARG_STEP_PERCPU] = CHAN_OP_PERCPU,
						  [FARG_STEP_CONST] = CHAN_OP_CONST, [FARG_STEP_ADD] = CHAN_OP_ADD,
						  [FARG_STEP_LOAD] = CHAN_OP_LOAD };
		int64_t imm = steps[i].imm;

		if (steps[i].kind == FARG_STEP_REG && (imm = slot_of(e, imm)) < 0)
			return -EINVAL;
		ops[(*n)++] = (struct chan_op){ .kind = kinds[steps[i].kind], .imm = imm };
	}
	ops[(*n)++] = (struct chan_op){ .kind = string ? CHAN_OP_STRING : final ? CHAN_OP_READ : CHAN_OP_END,
					.imm = (int64_t)final };
	return 0;
}

/* Steps into @ops[*n], at most @max in all. */
static int emit(struct chan_op *ops, size_t *n, size_t max, const struct chan_op *steps, size_t nsteps)
{
	if (*n + nsteps > max)
		return -E2BIG;
	memcpy(ops + *n, steps, nsteps * sizeof(*steps));
	*n += nsteps;
	return 0;
}

/* v = the skb probe @p's argument carries (engine_skb_at's reads). */
static size_t skb_steps(const struct engine *e, const struct probe *p, struct chan_op *out)
{
	out[0] = (struct chan_op){ .kind = CHAN_OP_REG, .imm = e->arg_idx[p->skb_arg] };
	out[1] = (struct chan_op){ .kind = CHAN_OP_LOAD };
	return p->skb_levels == 1 ? 1 : 2;
}

/* The skb's steps, then @tail's. */
static int emit_on_skb(const struct engine *e, const struct probe *p, struct chan_op *ops, size_t *n, size_t max,
		       const struct chan_op *tail, size_t ntail)
{
	struct chan_op skb[2];
	size_t k = skb_steps(e, p, skb);

	return emit(ops, n, max, skb, k) || emit(ops, n, max, tail, ntail) ? -E2BIG : 0;
}

#define OP(kind_, imm_) ((struct chan_op){ .kind = (kind_), .imm = (int64_t)(imm_) })

/* What packet_decode reads of the skb: its fields, the device's name, the
 * headers at its data and at head + network_header (which of the two
 * packet_decode takes is decided from what is read: both are captured).
 * The network header's offset is kept across into the head's expression. */
static int packet_program(const struct engine *e, const struct probe *p, struct chan_op *ops, size_t *n, size_t max)
{
	const struct packet_layout *l = &e->pkt;
	const uint64_t offs[] = { l->len, l->data_len, l->head, l->data, l->network_header, l->protocol, l->dev };
	const unsigned int sizes[] = { 4, 4, 8, 8, 2, 2, 8 };
	const struct chan_op dev_name[] = { OP(CHAN_OP_ADD, l->dev), OP(CHAN_OP_LOAD, 0), OP(CHAN_OP_ADD, l->dev_name),
					    OP(CHAN_OP_READ, 16) };
	const struct chan_op at_data[] = { OP(CHAN_OP_ADD, l->data), OP(CHAN_OP_LOAD, 0),
					   OP(CHAN_OP_READ, l->snaplen) };
	const struct chan_op keep_nh[] = { OP(CHAN_OP_ADD, l->network_header), OP(CHAN_OP_LOAD, 0),
					   OP(CHAN_OP_MASK, 0xffff), OP(CHAN_OP_KEEP, 0) };
	const struct chan_op at_head_nh[] = { OP(CHAN_OP_ADD, l->head), OP(CHAN_OP_LOAD, 0), OP(CHAN_OP_ADD_KEPT, 0),
					      OP(CHAN_OP_READ, l->snaplen) };
	int err = 0;

	for (size_t i = 0; !err && i < sizeof(offs) / sizeof(offs[0]); i++) {
		const struct chan_op field[] = { OP(CHAN_OP_ADD, offs[i]), OP(CHAN_OP_READ, sizes[i]) };

		err = emit_on_skb(e, p, ops, n, max, field, 2);
	}
	if (!err)
		err = emit_on_skb(e, p, ops, n, max, dev_name, 4);
	if (!err)
		err = emit_on_skb(e, p, ops, n, max, at_data, 3);
	if (!err)
		err = emit_on_skb(e, p, ops, n, max, keep_nh, 4);
	return err ? err : emit_on_skb(e, p, ops, n, max, at_head_nh, 4);
}

/* What probe @p reads from memory at a hit, as the plugin's program:
 * an skb behind a pointer, its packet, its fields, its filter's own
 * expressions. */
static int probe_program(const struct engine *e, const struct probe *p, struct chan_op *ops, size_t *n, size_t max)
{
	const struct farg *own[32];
	size_t nown = p->filter ? filter_exprs(p->filter, own, 32) : 0;
	bool has_skb = p->skb_arg >= 0 && p->skb_arg <= 5 && e->arg_idx[p->skb_arg] >= 0;
	int err = 0;

	if (has_skb && p->skb_levels != 1)
		err = emit_on_skb(e, p, ops, n, max, &OP(CHAN_OP_END, 0), 1);
	if (!err && has_skb && p->packet && e->pkt.ok)
		err = packet_program(e, p, ops, n, max);
	for (size_t i = 0; !err && i < p->nargs; i++)
		err = add_expr(e, p->args[i], ops, n, max);
	for (size_t i = 0; !err && i < nown; i++)
		err = add_expr(e, own[i], ops, n, max);
	/* %return: the plugin watches for the call's return, and reads its
	 * fields there. */
	if (!err && p->on_return)
		err = emit(ops, n, max, &OP(CHAN_OP_AT_RETURN, 0), 1);
	for (size_t i = 0; !err && p->on_return && i < p->nret_args; i++)
		err = add_expr(e, p->ret_args[i], ops, n, max);
	return err;
}

int engine_plugin_place(struct engine *e, struct probe_set *ps, struct snapshot *sn, struct engine_result *res)
{
	struct chan_probe_prog *probes = calloc(ps->n + 1, sizeof(*probes));
	struct chan_op *ops = calloc(CHAN_MAX_OPS, sizeof(*ops));
	size_t n = 0, nops = 0;
	int err = 0;

	if (!probes || !ops) {
		free(probes);
		free(ops);
		return kerr_set(e->err, sizeof(e->err), -ENOMEM, "out of memory");
	}
	for (size_t i = 0; !err && i < ps->n; i++) {
		size_t first = nops;

		if (!ps->v[i].addr || ps->v[i].oops)
			continue;
		err = probe_program(e, &ps->v[i], ops, &nops, CHAN_MAX_OPS);
		probes[n++] = (struct chan_probe_prog){ ps->v[i].addr, ops + first, (uint32_t)(nops - first) };
	}
	if (err)
		err = kerr_set(e->err, sizeof(e->err), err, "the probes' fields are more than the plugin takes (%d steps at most)",
				  CHAN_MAX_OPS);
	else if ((err = chan_send_probes(e->chan, probes, n, CHAN_MAX_WINDOW, irq_stack_ptr(e))))
		err = kerr_set(e->err, sizeof(e->err), err, "writing to the plugin: %s", strerror(-err));
	free(probes);
	free(ops);
	/* The oops catch stops the guest where it is dying: a breakpoint. */
	if (!err)
		err = engine_place_probes(e, ps, true);
	return err ? err : until_synced(e, ps, sn, res);
}

int engine_plugin_start(struct engine *e, struct engine_result *res)
{
	struct probe_set none = { 0 };

	return until_answered(e, chan_send_regs(e->chan, target_desc(e->t)), &none, NULL, res);
}

/* Wait up to @timeout_ms for the gdbstub or the plugin to send, in one
 * poll: a wait on either alone let the other's bytes sit (a stop reply
 * behind a wait on the plugin, a batch behind a wait on the gdbstub).
 * Whether the gdbstub has sent; @plugin_open false leaves the plugin's
 * closed socket out. */
static bool wait_either(struct engine *e, bool plugin_open, int timeout_ms)
{
	struct pollfd pfd[2] = {
		{ .fd = target_poll_fd(e->t), .events = POLLIN },
		{ .fd = plugin_open ? chan_poll_fd(e->chan) : -1, .events = POLLIN },
	};

	if (pfd[0].fd < 0)
		return true; /* read already, not yet parsed */
	return poll(pfd, 2, timeout_ms) > 0 && pfd[0].revents;
}

/* ^C, --duration or --max-stops while the guest runs: stop it at the
 * gdbstub, reading the plugin meanwhile (a vCPU waiting for kstep to read
 * cannot stop), then everything it still holds. */
static int halt(struct engine *e, struct probe_set *ps, struct snapshot *sn, struct engine_result *res)
{
	double t0 = engine_since(e);
	int err = target_interrupt(e->t);

	while (!err) {
		struct target_stop st;
		struct chan_msg m;
		bool synced = false;
		int n = chan_next(e->chan, &m, 0);

		if (n > 0 && (err = take_message(e, ps, &m, sn, res, &synced)))
			return err;
		if (n > 0)
			continue;
		err = wait_either(e, n != -ECONNRESET, PLUGIN_POLL_MS) ? target_wait(e->t, &st, 1) : -ETIMEDOUT;
		if (!err && st.kind == TARGET_STOP_OUTPUT)
			continue;
		if (!err)
			return engine_plugin_sync(e, ps, sn, res);
		if (err == -ETIMEDOUT || err == -EINTR)
			err = engine_since(e) - t0 > HALT_TIMEOUT_MS / 1000.0 ? -ETIMEDOUT : 0;
	}
	return engine_target_fail(e, err);
}

static enum engine_end limit_reached(struct engine *e, const struct engine_result *res)
{
	if (e->o.interrupted && *e->o.interrupted)
		return ENGINE_END_INTERRUPTED;
	if (e->o.duration > 0 && engine_since(e) >= e->o.duration)
		return ENGINE_END_DURATION;
	return res->end;
}

int engine_plugin_run_until_stop(struct engine *e, struct probe_set *ps, struct snapshot *sn,
				 struct target_stop *st, struct engine_result *res)
{
	double gone_at = 0;

	for (;;) {
		struct chan_msg m;
		bool synced = false;
		int n = 0, err;

		if ((res->end = limit_reached(e, res)) != ENGINE_END_NONE)
			return halt(e, ps, sn, res);
		for (int i = 0; i < PLUGIN_BATCH && res->end == ENGINE_END_NONE; i++) {
			n = chan_next(e->chan, &m, 0);
			if (n <= 0)
				break;
			if ((err = take_message(e, ps, &m, sn, res, &synced)))
				return err;
		}
		if (n < 0 && n != -EINTR && n != -ECONNRESET)
			return kerr_set(e->err, sizeof(e->err), n, "reading the plugin: %s", strerror(-n));
		if (res->end != ENGINE_END_NONE)
			continue; /* --max-stops: halt */
		/* The plugin gone: QEMU is ending, or the plugin gave up (its
		 * reason in the console); not a run to go on with unseen. */
		if (n == -ECONNRESET && !gone_at)
			gone_at = engine_since(e);
		if (gone_at && engine_since(e) - gone_at > PLUGIN_GONE_S)
			return kerr_set(e->err, sizeof(e->err), -EPIPE, "kstep's QEMU plugin stopped reporting while the guest ran on "
						      "(its reason is in guest/serial.log)");
		/* Past a whole batch, only a look at the gdbstub. A gdbstub's
		 * wait of 0 ms does not look at the socket: 1 ms does. */
		if (wait_either(e, !gone_at, n > 0 ? 0 : gone_at ? 200 : PLUGIN_POLL_MS))
			err = target_wait(e->t, st, 1);
		else
			err = -ETIMEDOUT;
		if (!err && st->kind == TARGET_STOP_OUTPUT)
			continue;
		if (err == -ETIMEDOUT || err == -EINTR) {
			if (n <= 0)
				engine_warm_some(e, res->steps);
			engine_progress(e, e->step ? res->steps : res->stops, e->step ? "steps" : "hits", NULL, false);
			continue;
		}
		if (err == -ECONNRESET || (!err && st->kind != TARGET_STOP_SIGNAL)) {
			err = until_synced(e, ps, sn, res); /* its last words, up to its atexit SYNCED */
			if (res->end == ENGINE_END_NONE)
				res->end = ENGINE_END_GUEST_EXITED;
			return err;
		}
		if (err)
			return engine_target_fail(e, err);
		/* A breakpoint's stop (the module loader, an oops probe): what
		 * the plugin reported before it comes first. */
		return engine_plugin_sync(e, ps, sn, res);
	}
}

int engine_plugin_step(struct engine *e, const struct probe *at, uint64_t hits, uint32_t window, bool until_return,
		       struct engine_result *res)
{
	/* With a filter, --at is a probe whose hits ask kstep; else none, but
	 * where the IRQ stack's pointer is kept. */
	bool ask = hits && (at->filter || e->o.pcap);
	int thread = target_current_thread(e->t);
	/* From here: the stopped vCPU's index (gdbstub threads count from 1). */
	const struct chan_step_at sa = {
		.at = hits ? at->addr : 0, .hits = hits ? hits : (uint64_t)(thread > 0 ? thread - 1 : 0), .window = window,
		.flags = (ask ? CHAN_STEP_ASK : 0) | (until_return ? CHAN_STEP_UNTIL_RETURN : 0) | (hits ? 0 : CHAN_STEP_NOW),
	};
	struct probe_set none = { 0 }, asking = { .v = (struct probe *)at, .n = 1 }; /* only looked up */
	struct probe_set *ps = ask ? &asking : &none;
	int err = engine_plugin_start(e, res);

	engine_warm_start(e, at->addr);
	if (!err)
		err = engine_plugin_place(e, ps, NULL, res);
	if (!err)
		err = until_answered(e, chan_send(e->chan, CHAN_STEP_AT, &sa, sizeof(sa)), ps, NULL, res);
	/* A stop that is none of kstep's (there are no breakpoints): on. */
	while (!err && res->end == ENGINE_END_NONE) {
		struct target_stop st;

		if (!(err = engine_resume(e, 0)))
			err = engine_plugin_run_until_stop(e, ps, NULL, &st, res);
	}
	return err;
}
