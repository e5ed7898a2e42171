/* SPDX-License-Identifier: MIT */
/*
 * plugin_chan: kstep's end of the channel to its QEMU plugin (the wire
 * format is plugin/channel.h). kstep listens on a socket in its private
 * run directory before QEMU starts; the plugin connects as QEMU loads it
 * and says which plugin API QEMU offers. Messages from the plugin are
 * checked against the lengths they claim before anyone reads them.
 */
#ifndef KSTEP_PLUGIN_CHAN_H
#define KSTEP_PLUGIN_CHAN_H

#include <stddef.h>
#include <stdint.h>

#include "../plugin/channel.h"
#include "target.h"

struct chan;

struct chan_msg {
	uint32_t type;
	const uint8_t *body;      /* valid until the next chan_next */
	uint32_t len;
};

/* A HIT, taken apart and checked. */
struct chan_hit_view {
	struct chan_hit h;
	const uint8_t *regs, *window, *linked; /* linked: h.link_len bytes at h.link */
	const uint8_t *caps;      /* h.caps_len bytes of struct chan_capture + bytes, each checked */
};

/* Listen on @path (a new socket, 0600, in a directory only we can reach). */
int chan_listen(struct chan **out, const char *path, char *err, size_t errlen);
/* Take over a connected, non-blocking fd (tests). */
int chan_from_fd(struct chan **out, int fd);
void chan_free(struct chan *c);
/* The plugin's connection and its HELLO, within @timeout_ms. */
int chan_accept(struct chan *c, int timeout_ms, struct chan_hello *hello, char *err, size_t errlen);
/* The next message within @timeout_ms (0: only what has come): 1, 0 when
 * none came, or -errno (-ECONNRESET: the plugin went away, -EPROTO: a
 * message that is not one). */
int chan_next(struct chan *c, struct chan_msg *m, int timeout_ms);
/* The socket to poll for the plugin's next bytes (chan_next(..., 0)
 * takes what has come). */
int chan_poll_fd(const struct chan *c);
/* The pc of the HIT or STEP after the one chan_next gave, if its head
 * has come already (for caches to fetch what it will ask for). */
bool chan_peek_pc(const struct chan *c, uint64_t *pc);
int chan_send(struct chan *c, uint32_t type, const void *body, size_t len);
/* REGS: the gdbstub's register block, for the plugin to fill the same way. */
int chan_send_regs(struct chan *c, const struct target_desc *d);
/* A probe's address and its program (channel.h). */
struct chan_probe_prog {
	uint64_t addr;
	const struct chan_op *ops;
	uint32_t nops;
};
int chan_send_probes(struct chan *c, const struct chan_probe_prog *probes, size_t n, uint32_t window,
		     uint64_t irq_stack_ptr);
/* A HIT's or a STEP's parts; -EPROTO when the lengths do not add up or the register
 * block is not @regs_len bytes. */
int chan_parse_hit(const struct chan_msg *m, size_t regs_len, struct chan_hit_view *v);
int chan_parse_synced(const struct chan_msg *m, struct chan_synced *s);
/* Whether @s answers the last message sent that the plugin answers (an
 * earlier one's answer is not the one waited for). */
bool chan_synced_is_last(const struct chan *c, const struct chan_synced *s);
/* The plugin's last message when it gives up: why, after how many HITs. */
int chan_parse_gone(const struct chan_msg *m, struct chan_gone *g);

#endif
