// SPDX-License-Identifier: MIT
/*
 * engine_loop: the breakpoint-stop loop (engine_trace): run until a stop,
 * then take it as a probe's hit (its event, its fields and filter, its
 * return to come), an oops probe's report, a probed return, or a module
 * loaded or going; until a limit, Ctrl-C, the guest's end or an oops.
 */
#include "engine_priv.h"

#include <errno.h>
#include <string.h>

/* How often the limits are checked while the guest runs. */
#define POLL_MS 200
/* Printing an oops report over the emulated serial console takes well
 * under a second under TCG. */
#define REPORT_TIMEOUT_MS 10000
/* A replay whose instruction count stands this long while the guest runs
 * no longer follows its recording: QEMU waits for an event that the log
 * has at another point (an edited recording, other settings, another QEMU). */
#define REPLAY_STALL_S 30.0

/* The registers and @want bytes of stack at a stop, all threads stopped. */
static int fetch(struct engine *e, size_t want)
{
	bool complete;

	return engine_fetch(e, want, -1, &complete);
}

/* True once a replay has run REPLAY_STALL_S without its instruction count
 * moving; asked at most once a POLL_MS wait. */
static bool replay_stalled(struct engine *e)
{
	uint64_t icount;

	if (!e->o.replay || !e->o.guest_clock || e->o.guest_clock(e->o.clock_ctx, &icount))
		return false;
	if (icount != e->replay_icount || !e->replay_moved) {
		e->replay_icount = icount;
		e->replay_moved = engine_since(e);
		return false;
	}
	return engine_since(e) - e->replay_moved > REPLAY_STALL_S;
}

int engine_run_until_stop(struct engine *e, struct target_stop *st, enum engine_end *end)
{
	for (;;) {
		int err;

		if (e->o.interrupted && *e->o.interrupted) {
			*end = ENGINE_END_INTERRUPTED;
			return engine_halt(e);
		}
		if (e->o.duration > 0 && engine_since(e) >= e->o.duration) {
			*end = ENGINE_END_DURATION;
			return engine_halt(e);
		}
		/* Before a step run, a look every slice of reading ahead. */
		err = target_wait(e->t, st, e->warm ? 1 : POLL_MS);
		if (!err && st->kind == TARGET_STOP_OUTPUT)
			continue;
		if (err == -ETIMEDOUT || err == -EINTR) {
			engine_warm_some(e, false);
			engine_progress(e, e->seq, "stops", NULL, false);
			if (!e->warm && replay_stalled(e))
				return kerr_set(e->err, sizeof(e->err), -ETIMEDOUT, "the replay made no progress for %.0f s: it no longer "
							     "follows its recording (edited settings, other images, "
							     "another QEMU than the one that recorded it, or an e1000 NIC "
							     "whose timers this QEMU cannot switch off)", REPLAY_STALL_S);
			continue;
		}
		if (err == -ECONNRESET) {
			*end = ENGINE_END_GUEST_EXITED;
			return 0;
		}
		if (err)
			return engine_target_fail(e, err);
		if (st->kind != TARGET_STOP_SIGNAL)
			*end = ENGINE_END_GUEST_EXITED;
		return 0;
	}
}

/* Where the kernel has printed its whole report: panic() calls the panic
 * notifiers (pvpanic among them) right after it; an oops ends in oops_exit's
 * kmsg_dump; a WARN is done when __warn returns. */
static uint64_t report_end(struct engine *e, const struct probe *p, uint64_t ret_addr)
{
	const char *fn = NULL;
	const struct sym *s;

	if (!strcmp(p->spec, "panic"))
		fn = "atomic_notifier_call_chain";
	else if (!strcmp(p->spec, "oops_begin"))
		fn = "kmsg_dump";
	s = fn ? sym_lookup_name(e->syms, fn) : NULL;
	return s ? s->addr : ret_addr;
}

/* Let the dying kernel print its report, then stop it there for good. */
static int finish_report(struct engine *e, struct probe *p, struct snapshot *sn, struct engine_result *res)
{
	uint64_t end = report_end(e, p, sn->nbt > 1 ? sn->pcs[1] : 0);
	struct target_stop st;
	int err;

	if ((err = engine_clear_breakpoints(e)))
		return err;
	if (e->chan) { /* the plugin's probes taken off: the kernel dies alone */
		struct probe_set none = { 0 };

		if ((err = engine_plugin_place(e, &none, sn, res)))
			return err;
	}
	if (!end || !sym_in_text(e->syms, end) || (err = engine_place(e, end)))
		return err;
	if ((err = target_continue(e->t)))
		return engine_target_fail(e, err);
	err = engine_wait_stop(e, &st, REPORT_TIMEOUT_MS);
	if (err == -ETIMEDOUT)
		err = engine_halt(e); /* froze before the end: still a dying guest */
	else if (!err && st.kind != TARGET_STOP_SIGNAL)
		return kerr_set(e->err, sizeof(e->err), -ECHILD, "the guest ended while printing its report");
	if (err)
		return err == -ECONNRESET ? kerr_set(e->err, sizeof(e->err), err, "QEMU went away during the report") : engine_target_fail(e, err);
	if ((err = engine_clear_breakpoints(e)))
		return err;
	memcache_clear_lines(e->mc);
	if ((err = fetch(e, memcache_window_max(e->mc))))
		return err;
	engine_take(e, sn, snapshot_frame_state(e->snap, engine_reg(e, e->pc_idx)));
	if ((err = engine_write_event(e, sn, TRACE_STOP, 0, "oops-end", 0, NULL, NULL, NULL, 0)))
		return err;
	res->stops++;
	return 0;
}

int engine_record_stop(struct engine *e, struct probe *p, struct snapshot *sn, struct engine_result *res)
{
	struct probe_hit h;
	int err;

	p->hits++;
	engine_probe_fetch(e, p, engine_skb_at(e, p), &h);
	if (!engine_probe_matches(e, p, &h)) {
		res->filtered++;
		return 0; /* before the snapshot: a filtered hit costs only its fields */
	}
	engine_take(e, sn, p->at_entry ? UNWIND_AT_ENTRY : snapshot_frame_state(e->snap, p->addr));
	if ((err = engine_probe_hit(e, p, &h, sn, res)) <= 0)
		return err;
	engine_progress(e, res->stops, "stops", p->spec, false);
	if (p->oops) {
		size_t off = 0;

		res->end = ENGINE_END_OOPS;
		res->oops_probe = p;
		res->oops_seq = e->seq;
		for (size_t i = 0; i < sn->nbt && off < sizeof(res->oops_bt); i++)
			off += (size_t)snprintf(res->oops_bt + off, sizeof(res->oops_bt) - off, "  %s %s\n",
						sn->names[i], sn->bt[i].src);
		return finish_report(e, p, sn, res);
	}
	if (engine_at_max_stops(e, res))
		res->end = ENGINE_END_MAX_STOPS;
	return 0;
}

/* A stop at the module loader: read the modules, place the probes that now
 * have an address. */
static int module_loaded(struct engine *e, struct probe_set *ps, struct snapshot *sn, struct engine_result *res)
{
	int err = e->o.modules_changed(e->o.modules_ctx);

	res->module_loads++;
	if (err)
		return err;
	return e->chan ? engine_plugin_place(e, ps, sn, res) : engine_place_probes(e, ps, false);
}

/* A stop at free_module(mod): the module is still in memory. */
static int module_going(struct engine *e, struct probe_set *ps, struct snapshot *sn, struct engine_result *res)
{
	uint64_t lo, hi;
	int err = e->o.module_going(e->o.modules_ctx, engine_reg(e, e->arg_idx[0]), &lo, &hi);

	if (err)
		return err == -ENOENT ? 0 : err; /* one kstep never knew */
	res->module_unloads++;
	if ((err = engine_forget_range(e, ps, lo, hi)))
		return err;
	return e->chan ? engine_plugin_place(e, ps, sn, res) : 0;
}

int engine_trace(struct engine *e, struct probe_set *ps, struct engine_result *res)
{
	/* What --stack-bytes records; the fetch brings a whole window around
	 * it when rsp is near where it was, and the frame chain beyond comes
	 * in bursts (memcache). */
	const size_t want = e->o.stack_bytes < 256 ? 256 : e->o.stack_bytes;
	uint64_t pc = 0, own_ns = 0, module_ns = 0, stopped_at = 0, *spent = &own_ns;
	struct snapshot *sn = NULL;
	int err = 0;

	engine_clear_err(e);
	memset(res, 0, sizeof(*res));
	e->bt_ends = res->bt_ends;
	if (snapshot_new(&sn, e->mc))
		return kerr_set(e->err, sizeof(e->err), -ENOMEM, "out of memory");
	e->t0_ns = trace_now_ns();
	e->first_stop_ns = 0;
	err = e->chan ? engine_plugin_start(e, res) : 0;
	if (!err)
		err = e->chan ? engine_plugin_place(e, ps, sn, res) : engine_place_probes(e, ps, false);
	if (!err && e->o.module_loader)
		err = engine_place(e, e->o.module_loader);
	if (!err && e->o.module_unloader)
		err = engine_place(e, e->o.module_unloader);
	while (!err && res->end == ENGINE_END_NONE) {
		struct target_stop st;
		struct probe *p;

		err = engine_resume(e, pc);
		if (stopped_at)
			*spent += trace_now_ns() - stopped_at;
		spent = &own_ns;
		if (!err)
			err = e->chan ? engine_plugin_run_until_stop(e, ps, sn, &st, res)
				      : engine_run_until_stop(e, &st, &res->end);
		if (err || res->end != ENGINE_END_NONE)
			break;
		stopped_at = trace_now_ns();
		memcache_clear_lines(e->mc);
		if ((err = fetch(e, want)))
			break;
		pc = engine_reg(e, e->pc_idx);
		engine_update_guest_clock(e);
		if ((err = engine_returns_at(e, pc, sn, res)))
			break;
		if (engine_at_max_stops(e, res)) {
			res->end = ENGINE_END_MAX_STOPS;
			break;
		}
		if ((p = probes_find(ps, pc)))
			err = engine_record_stop(e, p, sn, res);
		else if (pc && pc == e->o.module_loader) {
			spent = &module_ns; /* not a probe's stop: counted apart */
			err = module_loaded(e, ps, sn, res);
		} else if (pc && pc == e->o.module_unloader) {
			spent = &module_ns;
			err = module_going(e, ps, sn, res);
		} /* else not ours (a stop we did not ask for) */
	}
	if (err == -ECONNRESET) {
		/* QEMU went away (at a resume or in the middle of a snapshot):
		 * the trace so far stands, the caller reports how QEMU ended. */
		res->end = ENGINE_END_GUEST_EXITED;
		err = 0;
	}
	res->own_seconds = (double)own_ns / 1e9;
	res->module_seconds = (double)module_ns / 1e9;
	res->seconds = engine_since(e);
	res->since_first_stop = e->first_stop_ns ? (double)(trace_now_ns() - e->first_stop_ns) / 1e9 : 0;
	engine_progress(e, res->stops, "stops", NULL, true);
	snapshot_free(sn);
	return err;
}
