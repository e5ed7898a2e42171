// SPDX-License-Identifier: MIT
/* Fuzz kstep's end of the plugin channel: the input is what the plugin's
 * socket delivers, read message by message and taken apart as HIT and
 * SYNCED are (a register block of 560 bytes, as QEMU's x86-64 gdbstub's). */
#include <sys/socket.h>
#include <unistd.h>

#include "plugin_chan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct chan *c;
	struct chan_msg m;
	int sv[2];

	if (len > 65536 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
		return 0;
	if (write(sv[1], data, len) != (ssize_t)len || chan_from_fd(&c, sv[0])) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[1], SHUT_WR);
	while (chan_next(c, &m, 0) > 0) {
		struct chan_hit_view v;
		struct chan_synced s;

		if (!chan_parse_hit(&m, 560, &v)) {
			volatile uint8_t sink = v.regs[0] ^ (v.h.win_len ? v.window[v.h.win_len - 1] : 0) ^
						(v.h.link_len ? v.linked[v.h.link_len - 1] : 0);
			(void)sink;
		}
		chan_parse_synced(&m, &s);
	}
	chan_free(c);
	close(sv[1]);
	return 0;
}
