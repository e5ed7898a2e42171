// SPDX-License-Identifier: MIT
/*
 * target_stop: a stop reply (GDB manual E.3, "Stop Reply Packets") taken
 * apart: the signal, thread, watchpoint hit, exit or console output;
 * socket-free, fuzzed (fuzz_stop).
 */
#include <errno.h>
#include <string.h>

#include "target.h"

static unsigned long long hexnum(const char *s, size_t len, bool *ok)
{
	unsigned long long v = 0;

	*ok = len > 0 && len <= 16;
	for (size_t i = 0; i < len && *ok; i++) {
		int d = rsp_hexval(s[i]);

		if (d < 0)
			*ok = false;
		v = v << 4 | (unsigned)(d < 0 ? 0 : d);
	}
	return v;
}

/* "pP.T", "P.T" is not valid; "T" alone, "-1" all. */
static bool parse_thread_id(const char *s, size_t len, int *pid, int *tid)
{
	const char *dot;
	bool ok;

	*pid = 0;
	if (len && s[0] == 'p') {
		dot = memchr(s, '.', len);
		if (!dot)
			return false;
		*pid = (int)hexnum(s + 1, (size_t)(dot - s - 1), &ok);
		if (!ok)
			return false;
		len -= (size_t)(dot + 1 - s);
		s = dot + 1;
	}
	if (len == 2 && !memcmp(s, "-1", 2)) {
		*tid = -1;
		return true;
	}
	*tid = (int)hexnum(s, len, &ok);
	return ok;
}

int target_parse_stop(const char *pkt, size_t len, struct target_stop *st)
{
	bool ok;

	memset(st, 0, sizeof(*st));
	if (len < 1)
		return -EINVAL;
	switch (pkt[0]) {
	case 'O':
		/* Console output, hex-encoded; 'OK' is not a stop reply. */
		if (len == 2 && pkt[1] == 'K')
			return -EINVAL;
		st->kind = TARGET_STOP_OUTPUT;
		return (len - 1) % 2 ? -EINVAL : 0;
	case 'W':
	case 'X':
		if (len < 3)
			return -EINVAL;
		st->kind = pkt[0] == 'W' ? TARGET_STOP_EXITED : TARGET_STOP_KILLED;
		st->signal = (int)hexnum(pkt + 1, 2, &ok);
		if (!ok)
			return -EINVAL;
		if (len > 3) {
			static const char proc[] = ";process:";

			if (len < 3 + sizeof(proc) || memcmp(pkt + 3, proc, sizeof(proc) - 1))
				return -EINVAL;
			st->pid = (int)hexnum(pkt + 3 + sizeof(proc) - 1, len - 3 - (sizeof(proc) - 1), &ok);
			if (!ok)
				return -EINVAL;
		}
		return 0;
	case 'S':
	case 'T':
		if (len < 3)
			return -EINVAL;
		st->kind = TARGET_STOP_SIGNAL;
		st->signal = (int)hexnum(pkt + 1, 2, &ok);
		if (!ok || (pkt[0] == 'S' && len != 3))
			return -EINVAL;
		/* T: "n:r;" pairs; unknown keys are skipped as E.3 requires. */
		for (size_t i = 3; i < len;) {
			const char *key = pkt + i, *colon = memchr(key, ':', len - i), *semi;
			size_t klen, vlen;

			if (!colon)
				return -EINVAL;
			semi = memchr(colon, ';', len - (size_t)(colon - pkt));
			if (!semi)
				semi = pkt + len; /* be lenient about a missing final ';' */
			klen = (size_t)(colon - key);
			vlen = (size_t)(semi - colon - 1);
			if (klen == 6 && !memcmp(key, "thread", 6)) {
				if (!parse_thread_id(colon + 1, vlen, &st->pid, &st->thread))
					return -EINVAL;
			} else if (klen == 7 && !memcmp(key, "swbreak", 7)) {
				st->swbreak = true;
			} else if (klen == 7 && !memcmp(key, "hwbreak", 7)) {
				st->hwbreak = true;
			} else if ((klen == 5 && !memcmp(key, "watch", 5)) ||
				   (klen == 6 && !memcmp(key, "rwatch", 6)) ||
				   (klen == 6 && !memcmp(key, "awatch", 6))) {
				st->watch = true;
				st->watch_addr = hexnum(colon + 1, vlen, &ok);
			}
			i = (size_t)(semi - pkt) + 1;
		}
		return 0;
	default:
		return -EINVAL;
	}
}
