/* SPDX-License-Identifier: MIT */
/*
 * perfetto: a trace as a Perfetto timeline (TrackEvent protobufs, for
 * ui.perfetto.dev and trace_processor). Tracks:
 *   - one per CPU: a slice per call that a return probe timed (softirq,
 *     NAPI poll: -p rx-full's %return probes), and an instant per packet
 *     stop, linked stop to stop by a flow per packet (across CPUs);
 *   - one per packet: a slice per stage, from its stop to the next stage's,
 *     with the stop's fetched fields as debug annotations, and the verdict;
 *   - for a step trace, one per CPU with a slice per function call, nested
 *     as the steps' backtraces nest (the call tree over time).
 * Times are guest time when every event has one, else host time.
 */
#ifndef KSTEP_PERFETTO_H
#define KSTEP_PERFETTO_H

#include <stddef.h>
#include <stdint.h>

#include "ctfread.h"
#include "report.h"

struct perfetto;

int perfetto_new(struct perfetto **out);
void perfetto_free(struct perfetto *p);
/* Every event of the trace, in order (steps and returns). */
void perfetto_event(struct perfetto *p, const struct ctf_event *ev);
/* A stop of packet number @packet (report_opts.on_packet_stop). */
void perfetto_packet_stop(struct perfetto *p, const struct ctf_event *ev, size_t packet);
/* Write it all into the new file @path (never through a link, never over
 * a file that is there), the verdicts from the finished report @r. Says in
 * *@left_out how many slices were left out because they crossed another
 * on their track (a well-formed timeline nests). 0, or -errno with the
 * reason in @err. */
int perfetto_write(struct perfetto *p, const struct report *r, const char *path, uint64_t *left_out, char *err,
		   size_t errlen);

#endif
