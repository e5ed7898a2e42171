// SPDX-License-Identifier: MIT
/*
 * Replays run twice: the first finds the instruction count of the point a
 * command asks about, the second runs to just there (QMP replay-break).
 * kstep step --backwards and kstep why use it.
 */
#include <errno.h>
#include <inttypes.h>

#include "qmp.h"

#include "session.h"

/* Start the replay over: a fresh QEMU at the recording's first instruction,
 * run to start_kernel, its engine writing into the same trace. The first
 * replay only found where to go. */
int replay_run_again(struct session *s)
{
	char err[512];
	int ret;

	session_drop_guest(s);
	if (ftruncate(s->serial_fd, 0) == 0) /* the console of this replay, the same again */
		lseek(s->serial_fd, 0, SEEK_SET);
	if ((ret = session_launch(s, "tcg"))) {
		if (s->engine)
			say_error("%s", engine_errmsg(s->engine));
		return ret;
	}
	engine_free(s->engine);
	s->engine = NULL;
	if ((ret = trace_set_desc(s->trace, target_desc(s->target)))) {
		say_error("the second replay's QEMU describes its registers otherwise than the first's");
		return ret;
	}
	if ((ret = engine_new(&s->engine, s->target, s->syms, s->trace, &s->g->eng, err, sizeof(err))))
		say_error("%s", err);
	else if (s->plugin[0])
		engine_use_plugin(s->engine, qemu_plugin_chan(s->qemu));
	return ret;
}

/* The @hits-th hit of @at: where it comes in the replay (instructions run). */
int replay_find_point(struct session *s, const struct probe *at, uint64_t hits, uint64_t *icount,
		      struct engine_result *res)
{
	int ret;

	say_info("replay 1: looking for hit %" PRIu64 " of %s", hits, at->spec);
	if ((ret = engine_find_hit(s->engine, at, hits, res)))
		say_error("%s", engine_errmsg(s->engine));
	else if (res->end != ENGINE_END_NONE)
		ret = -EINTR;
	*icount = engine_icount(s->engine);
	return ret;
}

/* In a fresh replay, to the moment @icount instructions have run. */
int replay_run_to(struct session *s, uint64_t icount, struct engine_result *res)
{
	int ret;

	if ((ret = replay_run_again(s)))
		return ret;
	if (engine_icount(s->engine) > icount) {
		say_error("that point comes %" PRIu64 " instructions after start_kernel, where kstep takes the replay "
		          "over: go back less far", icount);
		return -ERANGE;
	}
	if ((ret = qmp_replay_break(s->clock, icount))) {
		say_error("%s", qmp_errmsg(s->clock));
		return ret;
	}
	if ((ret = engine_run_on(s->engine, res)))
		say_error("%s", engine_errmsg(s->engine));
	else if (res->end != ENGINE_END_NONE)
		return -EINTR;
	else if (engine_icount(s->engine) != icount) {
		say_error("the replay stopped at instruction %" PRIu64 ", not %" PRIu64 ": it diverged from the recording",
		          engine_icount(s->engine), icount);
		ret = -EIO;
	}
	return ret;
}
