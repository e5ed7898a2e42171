/* SPDX-License-Identifier: MIT */
/*
 * capture: a trace's packets as a pcapng capture, for Wireshark and tshark.
 * Every stop whose packet's header bytes were read (the "pkt" field) is a
 * packet record on the interface named after the stop's function (one
 * interface per stage), at its guest time, with a comment naming the
 * function, the CPU and what became of the packet. Records are in guest
 * time order.
 */
#ifndef KSTEP_CAPTURE_H
#define KSTEP_CAPTURE_H

#include <stdint.h>

#include "ctfread.h"
#include "report.h"

struct capture;

int capture_new(struct capture **out);
void capture_free(struct capture *c);
/* report_opts.on_packet_stop: keep @ev's packet bytes, if it has them. */
void capture_stop(void *ctx, const struct ctf_event *ev, size_t packet);
/* Records kept so far (0 on a trace without "pkt" fields). */
uint64_t capture_records(const struct capture *c);
/* Write them all into a new file @path (files_create: never through a
 * link, never over a file that is there), with the verdicts of the
 * finished report @r. 0, or -errno with the reason in @err. */
int capture_write(struct capture *c, const struct report *r, const char *path, char *err, size_t errlen);

#endif
