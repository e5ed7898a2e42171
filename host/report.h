/* SPDX-License-Identifier: MIT */
/*
 * report: what happened to each packet, from a kstep trace's events. Stops
 * are grouped by skb address into packets (the stages one packet went
 * through, in order, at guest times); an skb seen again at a stage it
 * already passed, or at an earlier place on the path than its last one, is
 * a new packet in a recycled buffer. Each packet gets a verdict: delivered
 * (to which task), merged by GRO (into which skb), dropped (why, where),
 * sent, or still in flight at the end. Also: stage-to-stage latencies in
 * guest time, drops by reason, and perf's netdev-times view.
 */
#ifndef KSTEP_REPORT_H
#define KSTEP_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "annotate.h"
#include "calltree.h"
#include "ctfread.h"

struct report;

int report_new(struct report **out);
void report_free(struct report *r);
/* Feed the trace's events in order. 0 or -ENOMEM. */
int report_add(struct report *r, const struct ctf_event *ev);
/* Finish (verdicts, merges): before any of the below. */
void report_finish(struct report *r);
uint64_t report_packets(const struct report *r);

/* The summary: packets by path and verdict, latencies, drops. @max_rows
 * packets are listed one a line (0: none). */
void report_print(const struct report *r, FILE *out, size_t max_rows);
/* perf script report netdev-times, in guest time. */
void report_print_netdev_times(const struct report *r, FILE *out);
int report_print_json(const struct report *r, FILE *out);

/* Packet @packet's verdict and its detail, as the summary says them. */
void report_verdict(const struct report *r, size_t packet, char *out, size_t len);

/* Steps in the trace (kstep step), 0 for a trace of stops. */
uint64_t report_steps(const struct report *r);
/* Where the steps went (a step trace) or the stops were (from their
 * backtraces): a call tree. */
const struct calltree *report_calltree(const struct report *r);

/* A function's file:line as the trace saw it first (@ctx: the report), or
 * NULL: for the flame graph's tooltips. */
const char *report_source(void *ctx, const char *function);

/* What a report collects beyond the packets and the call tree. */
struct report_opts {
	struct annotate *annotate; /* steps of one function, NULL: none */
	const volatile sig_atomic_t *interrupted; /* set by a signal: stop reading (-EINTR); NULL: never */
	/* Called at each stop that belongs to a packet, with the packet's
	 * number (for report_verdict once the report is finished); NULL: none. */
	void (*on_packet_stop)(void *ctx, const struct ctf_event *ev, size_t packet);
	/* Called with every event, before the report takes it; NULL: none. */
	void (*on_event)(void *ctx, const struct ctf_event *ev);
	void *stop_ctx;                 /* both callbacks' */
};

/* Read trace @dir into a new report (@o may be NULL). -errno with the
 * reason in @err. */
int report_read_dir(struct report **out, const char *dir, const struct report_opts *o, char *err, size_t errlen);
/* The vmlinux the trace was taken with (its env), "" if it does not say. */
const char *report_vmlinux(const struct report *r);
/* A note on how the trace was read (what could not be told apart), "": none. */
const char *report_note(const struct report *r);
/* Events read, and whether the stream was cut short (bytes after the last
 * complete event). */
uint64_t report_events(const struct report *r);
size_t report_cut_bytes(const struct report *r);

#endif
