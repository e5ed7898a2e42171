// SPDX-License-Identifier: MIT
/*
 * perfetto: a trace as a Perfetto timeline (see perfetto.h). What the
 * trace says is first gathered as spans (a slice or an instant on a track,
 * in both guest and host time); at the end each track's spans become begin,
 * end and instant events in an order that nests (a span that crosses one
 * already open on its track is left out and counted), all tracks' events
 * are merged by time, and each is written as one TracePacket through
 * protobuf-c (perfetto.proto: kstep's part of Perfetto's format).
 */
#include "perfetto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "perfetto.pb-c.h"
#include "kerr.h"

#define MAX_VCPUS 64
#define MAX_DEPTH 128
#define SEQUENCE_ID 1
/* Track ids: a parent for the CPUs and one for the packets, then a CPU's
 * track, a CPU's steps, and a packet's. */
#define TRACK_CPUS 1
#define TRACK_PACKETS 2
#define TRACK_CPU(n) (UINT64_C(0x100) + (n))
#define TRACK_STEPS(n) (UINT64_C(0x200) + (n))
#define TRACK_PACKET(k) (UINT64_C(0x100000000) + (k))

typedef Perfetto__Protos__TrackEvent__Type event_type;
#define BEGIN PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_SLICE_BEGIN
#define END PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_SLICE_END
#define INSTANT PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_INSTANT

struct annotation {
	char *name, *text; /* text NULL: a number */
	uint64_t u;
};

struct span {
	uint64_t track, seq;
	uint64_t begin[2], end[2]; /* guest, host ns */
	char *name;
	bool instant;
	struct annotation *ann;
	size_t nann;
	uint64_t flow;             /* 0: none */
	bool flow_ends;
	size_t depth;              /* a step trace's call: how deep (outer first at a tie) */
};

/* A packet's stop, until its next stage is known. */
struct stop {
	size_t packet;
	uint64_t seq, ns[2];
	uint32_t vcpu;
	char *fn;
	struct annotation *ann;
	size_t nann;
};

struct frame {
	char *fn;
	uint64_t begin[2];
};

struct perfetto {
	struct span *spans;
	size_t nspans, capspans;
	struct stop *stops;
	size_t nstops, capstops;
	struct frame stack[MAX_VCPUS][MAX_DEPTH]; /* a step trace's open calls */
	size_t depth[MAX_VCPUS];
	uint64_t last_ns[MAX_VCPUS][2];
	bool cpu_seen[MAX_VCPUS], steps_seen[MAX_VCPUS];
	uint64_t seq;
	bool host_time; /* an event had no guest time */
	bool oom;
};

/* One event written: a span's begin, end or instant at @ts. */
struct out_event {
	uint64_t ts, order;
	const struct span *s;
	event_type type;
};

int perfetto_new(struct perfetto **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

static void free_annotations(struct annotation *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(a[i].name);
		free(a[i].text);
	}
	free(a);
}

void perfetto_free(struct perfetto *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nspans; i++) {
		free(p->spans[i].name);
		free_annotations(p->spans[i].ann, p->spans[i].nann);
	}
	for (size_t i = 0; i < p->nstops; i++) {
		free(p->stops[i].fn);
		free_annotations(p->stops[i].ann, p->stops[i].nann);
	}
	for (size_t v = 0; v < MAX_VCPUS; v++)
		for (size_t d = 0; d < p->depth[v]; d++)
			free(p->stack[v][d].fn);
	free(p->spans);
	free(p->stops);
	free(p);
}

/* Room for one more of @n in *@v (of @cap), or false (out of memory noted). */
static bool grow(struct perfetto *p, void **v, size_t *cap, size_t n, size_t size)
{
	void *tmp;

	if (n < *cap)
		return true;
	if (!(tmp = realloc(*v, (*cap ? 2 * *cap : 1024) * size))) {
		p->oom = true;
		return false;
	}
	*v = tmp;
	*cap = *cap ? 2 * *cap : 1024;
	return true;
}

/* A function's name: NAME+0xOFF and NAME.constprop.0 are NAME. */
static char *function_name(const char *symbol)
{
	return strndup(symbol ? symbol : "?", strcspn(symbol ? symbol : "?", "+."));
}

static struct span *add_span(struct perfetto *p, uint64_t track, char *name)
{
	struct span *s;

	if (!name || !grow(p, (void **)&p->spans, &p->capspans, p->nspans, sizeof(*s))) {
		p->oom = true;
		free(name);
		return NULL;
	}
	s = &p->spans[p->nspans++];
	*s = (struct span){ .track = track, .seq = p->seq++, .name = name };
	return s;
}

/* The call timed by a return probe: a slice on its CPU's track. */
static void add_return(struct perfetto *p, const struct ctf_event *ev)
{
	const struct ctf_field *guest = ctf_field(ev, "duration_ns"), *wall = ctf_field(ev, "wall_ns");
	struct span *s;

	if (!guest || !wall || guest->is_text || wall->is_text)
		return;
	if (!(s = add_span(p, TRACK_CPU(ev->vcpu % MAX_VCPUS), strdup(ev->name + strlen("kstep:return:")))))
		return;
	s->end[0] = ev->guest_ns;
	s->end[1] = ev->ts_ns;
	s->begin[0] = guest->u < ev->guest_ns ? ev->guest_ns - guest->u : 0;
	s->begin[1] = wall->u < ev->ts_ns ? ev->ts_ns - wall->u : 0;
	p->cpu_seen[ev->vcpu % MAX_VCPUS] = true;
}

/* Close the innermost open call of @vcpu's steps at @ns. */
static void close_call(struct perfetto *p, uint32_t vcpu, const uint64_t ns[2])
{
	struct frame *f = &p->stack[vcpu][--p->depth[vcpu]];
	struct span *s = add_span(p, TRACK_STEPS(vcpu), f->fn);

	if (s) {
		memcpy(s->begin, f->begin, sizeof(s->begin));
		memcpy(s->end, ns, sizeof(s->end));
		s->depth = p->depth[vcpu];
	}
}

/* A step: the calls its backtrace shows (outermost first) against those
 * open: the ones it left end, the ones it entered begin. */
static void add_step(struct perfetto *p, const struct ctf_event *ev)
{
	uint32_t v = ev->vcpu % MAX_VCPUS;
	uint64_t ns[2] = { ev->guest_ns, ev->ts_ns };
	size_t n = ev->nbt < MAX_DEPTH ? ev->nbt : MAX_DEPTH, same = 0;
	char *names[MAX_DEPTH];

	for (size_t i = 0; i < n; i++)
		names[i] = function_name(ev->bt[ev->nbt - 1 - i].func);
	while (same < n && same < p->depth[v] && names[same] && !strcmp(names[same], p->stack[v][same].fn))
		same++;
	while (p->depth[v] > same)
		close_call(p, v, ns);
	for (size_t i = 0; i < n; i++) {
		if (i < same || !names[i]) {
			free(names[i]);
			continue;
		}
		p->stack[v][p->depth[v]++] = (struct frame){ names[i], { ns[0], ns[1] } };
	}
	memcpy(p->last_ns[v], ns, sizeof(ns));
	p->steps_seen[v] = true;
}

void perfetto_event(struct perfetto *p, const struct ctf_event *ev)
{
	if (!ev->guest_ns)
		p->host_time = true;
	if (!strncmp(ev->name, "kstep:return:", strlen("kstep:return:")))
		add_return(p, ev);
	else if (!strcmp(ev->name, "kstep:step"))
		add_step(p, ev);
}

/* The event's own fields, as annotations. */
static struct annotation *annotations(struct perfetto *p, const struct ctf_event *ev, size_t *n)
{
	struct annotation *a = calloc(ev->nfields ? ev->nfields : 1, sizeof(*a));

	*n = 0;
	if (!a) {
		p->oom = true;
		return NULL;
	}
	for (size_t i = 0; i < ev->nfields; i++) {
		const struct ctf_field *f = &ev->fields[i];

		a[i] = (struct annotation){ strdup(f->name), f->is_text ? strdup(f->s ? f->s : "") : NULL, f->u };
		if (!a[i].name || (f->is_text && !a[i].text))
			p->oom = true;
	}
	*n = ev->nfields;
	return a;
}

void perfetto_packet_stop(struct perfetto *p, const struct ctf_event *ev, size_t packet)
{
	struct stop *s;

	if (!grow(p, (void **)&p->stops, &p->capstops, p->nstops, sizeof(*s)))
		return;
	s = &p->stops[p->nstops++];
	*s = (struct stop){ .packet = packet, .seq = ev->seq, .ns = { ev->guest_ns, ev->ts_ns }, .vcpu = ev->vcpu,
			    .fn = function_name(ev->symbol) };
	s->ann = annotations(p, ev, &s->nann);
	if (!s->fn)
		p->oom = true;
	p->cpu_seen[ev->vcpu % MAX_VCPUS] = true;
}

static int by_packet(const void *a, const void *b)
{
	const struct stop *x = a, *y = b;

	if (x->packet != y->packet)
		return x->packet < y->packet ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void add_verdict(struct perfetto *p, struct span *slice, const char *verdict)
{
	struct annotation *a = realloc(slice->ann, (slice->nann + 1) * sizeof(*a));

	if (!a) {
		p->oom = true;
		return;
	}
	slice->ann = a;
	a[slice->nann++] = (struct annotation){ strdup("verdict"), strdup(verdict), 0 };
}

/* A packet's stops @s[0..n): a slice per stage on its track (until the
 * next stage; the last until the verdict, when that came later) and an
 * instant on each stop's CPU, one flow through them. The stop's fields
 * move to its slice. */
static void packet_spans(struct perfetto *p, struct stop *s, size_t n, const char *verdict)
{
	for (size_t i = 0; i < n; i++) {
		struct span *slice = add_span(p, TRACK_PACKET(s[i].packet), strdup(s[i].fn));
		struct span *mark = add_span(p, TRACK_CPU(s[i].vcpu % MAX_VCPUS), strdup(s[i].fn));

		if (!slice || !mark)
			return;
		memcpy(slice->begin, s[i].ns, sizeof(slice->begin));
		memcpy(slice->end, i + 1 < n ? s[i + 1].ns : s[i].ns, sizeof(slice->end));
		slice->ann = s[i].ann;
		slice->nann = s[i].nann;
		s[i].ann = NULL;
		s[i].nann = 0;
		memcpy(mark->begin, s[i].ns, sizeof(mark->begin));
		memcpy(mark->end, s[i].ns, sizeof(mark->end));
		mark->instant = true;
		mark->flow = n > 1 ? s[i].packet + 1 : 0; /* a flow goes from one stop to another */
		mark->flow_ends = i + 1 == n;
		if (i + 1 == n)
			add_verdict(p, slice, verdict);
	}
}

/* Every packet's spans, and the step calls still open at the end. */
static void finish_spans(struct perfetto *p, const struct report *r)
{
	char verdict[256];

	if (p->nstops)
		qsort(p->stops, p->nstops, sizeof(*p->stops), by_packet);
	for (size_t i = 0, j; i < p->nstops; i = j) {
		for (j = i + 1; j < p->nstops && p->stops[j].packet == p->stops[i].packet; j++)
			;
		report_verdict(r, p->stops[i].packet, verdict, sizeof(verdict));
		packet_spans(p, &p->stops[i], j - i, verdict);
	}
	for (uint32_t v = 0; v < MAX_VCPUS; v++)
		while (p->depth[v])
			close_call(p, v, p->last_ns[v]);
}

/* @tb: the time base, 0 guest time, 1 host time (an event lacked guest time). */
static int by_track_then_nesting(const void *a, const void *b, void *tb)
{
	const struct span *x = a, *y = b;
	int time_base = *(const int *)tb;

	if (x->track != y->track)
		return x->track < y->track ? -1 : 1;
	if (x->begin[time_base] != y->begin[time_base])
		return x->begin[time_base] < y->begin[time_base] ? -1 : 1;
	if (x->end[time_base] != y->end[time_base]) /* the longer one holds the other */
		return x->end[time_base] > y->end[time_base] ? -1 : 1;
	if (x->depth != y->depth)
		return x->depth < y->depth ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int by_time(const void *a, const void *b)
{
	const struct out_event *x = a, *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* One track's spans @s[0..n) (sorted to nest) as events into @out: a span
 * that ends inside it after one still open began is left out. */
static void track_events(const struct span *s, size_t n, int tb, struct out_event *out, size_t *nout,
			 uint64_t *left_out)
{
	const struct span *open[MAX_DEPTH];
	size_t depth = 0;

	for (size_t i = 0; i < n; i++) {
		/* Slices that ended before this begins close; an instant at a
		 * slice's last nanosecond is still in it. */
		while (depth && (open[depth - 1]->end[tb] < s[i].begin[tb] ||
				 (!s[i].instant && open[depth - 1]->end[tb] == s[i].begin[tb]))) {
			depth--;
			out[*nout] = (struct out_event){ open[depth]->end[tb], *nout, open[depth], END };
			(*nout)++;
		}
		if (!s[i].instant && ((depth && s[i].end[tb] > open[depth - 1]->end[tb]) || depth == MAX_DEPTH)) {
			(*left_out)++;
			continue;
		}
		out[*nout] = (struct out_event){ s[i].begin[tb], *nout, &s[i], s[i].instant ? INSTANT : BEGIN };
		(*nout)++;
		if (!s[i].instant)
			open[depth++] = &s[i];
	}
	while (depth) {
		depth--;
		out[*nout] = (struct out_event){ open[depth]->end[tb], *nout, open[depth], END };
		(*nout)++;
	}
}

/* A TracePacket, packed as a Trace of one (the file is their sequence). */
static int write_packet(FILE *f, Perfetto__Protos__TracePacket *tp)
{
	Perfetto__Protos__Trace t = PERFETTO__PROTOS__TRACE__INIT;
	uint8_t small[4096], *buf = small;
	size_t len;

	t.n_packet = 1;
	t.packet = &tp;
	len = perfetto__protos__trace__get_packed_size(&t);
	if (len > sizeof(small) && !(buf = malloc(len)))
		return -ENOMEM;
	perfetto__protos__trace__pack(&t, buf);
	fwrite(buf, 1, len, f);
	if (buf != small)
		free(buf);
	return 0;
}

static int write_track(FILE *f, uint64_t uuid, uint64_t parent, const char *name)
{
	Perfetto__Protos__TracePacket tp = PERFETTO__PROTOS__TRACE_PACKET__INIT;
	Perfetto__Protos__TrackDescriptor td = PERFETTO__PROTOS__TRACK_DESCRIPTOR__INIT;

	td.has_uuid = true;
	td.uuid = uuid;
	td.name = (char *)name;
	td.has_parent_uuid = parent != 0;
	td.parent_uuid = parent;
	tp.track_descriptor = &td;
	return write_packet(f, &tp);
}

static int write_event(FILE *f, const struct out_event *e)
{
	Perfetto__Protos__TracePacket tp = PERFETTO__PROTOS__TRACE_PACKET__INIT;
	Perfetto__Protos__TrackEvent te = PERFETTO__PROTOS__TRACK_EVENT__INIT;
	Perfetto__Protos__DebugAnnotation da[64], *dp[64];
	uint64_t flow = e->s->flow;
	size_t n = e->type == END ? 0 : e->s->nann < 64 ? e->s->nann : 64;

	tp.has_timestamp = tp.has_trusted_packet_sequence_id = true;
	tp.timestamp = e->ts;
	tp.trusted_packet_sequence_id = SEQUENCE_ID;
	te.has_type = te.has_track_uuid = true;
	te.type = e->type;
	te.track_uuid = e->s->track;
	te.name = e->type == END ? NULL : e->s->name;
	for (size_t i = 0; i < n; i++) {
		const struct annotation *a = &e->s->ann[i];

		perfetto__protos__debug_annotation__init(&da[i]);
		da[i].name = a->name;
		da[i].string_value = a->text;
		da[i].has_uint_value = !a->text;
		da[i].uint_value = a->u;
		dp[i] = &da[i];
	}
	te.n_debug_annotations = n;
	te.debug_annotations = dp;
	if (flow && e->s->flow_ends) {
		te.n_terminating_flow_ids = 1;
		te.terminating_flow_ids = &flow;
	} else if (flow) {
		te.n_flow_ids = 1;
		te.flow_ids = &flow;
	}
	tp.track_event = &te;
	return write_packet(f, &tp);
}

/* A packet's name from the fields of its stages @s[0..n) (the first that
 * has them): proto saddr:sport > daddr:dport. */
static void packet_name(const struct span *s, size_t n, char *out, size_t len)
{
	uint64_t k = s->track - TRACK_PACKET(0);

	snprintf(out, len, "packet %" PRIu64, k);
	for (size_t i = 0; i < n; i++) {
		const char *proto = NULL, *sa = "", *da = "";
		uint64_t sport = 0, dport = 0;

		for (size_t j = 0; j < s[i].nann; j++) {
			const struct annotation *a = &s[i].ann[j];

			proto = !strcmp(a->name, "proto") && a->text && *a->text ? a->text : proto;
			sa = !strcmp(a->name, "saddr") && a->text ? a->text : sa;
			da = !strcmp(a->name, "daddr") && a->text ? a->text : da;
			sport = !strcmp(a->name, "sport") ? a->u : sport;
			dport = !strcmp(a->name, "dport") ? a->u : dport;
		}
		if (proto) {
			snprintf(out, len, "packet %" PRIu64 ": %s %s:%" PRIu64 " > %s:%" PRIu64, k, proto, sa, sport, da,
				 dport);
			return;
		}
	}
}

/* The tracks, named: CPUs, their steps, packets. The spans are sorted by
 * track. */
static int write_tracks(FILE *f, const struct perfetto *p)
{
	char name[256];
	int err = write_track(f, TRACK_CPUS, 0, "CPUs") || write_track(f, TRACK_PACKETS, 0, "packets") ? -ENOMEM : 0;

	for (uint32_t v = 0; !err && v < MAX_VCPUS; v++) {
		snprintf(name, sizeof(name), "cpu %" PRIu32, v);
		if (p->cpu_seen[v])
			err = write_track(f, TRACK_CPU(v), TRACK_CPUS, name);
		snprintf(name, sizeof(name), "cpu %" PRIu32 " steps", v);
		if (!err && p->steps_seen[v])
			err = write_track(f, TRACK_STEPS(v), TRACK_CPUS, name);
	}
	for (size_t i = 0, j; !err && i < p->nspans; i = j) {
		for (j = i + 1; j < p->nspans && p->spans[j].track == p->spans[i].track; j++)
			;
		if (p->spans[i].track < TRACK_PACKET(0))
			continue;
		packet_name(&p->spans[i], j - i, name, sizeof(name));
		err = write_track(f, p->spans[i].track, TRACK_PACKETS, name);
	}
	return err;
}

static int write_all(FILE *f, struct perfetto *p, uint64_t *left_out)
{
	struct out_event *ev = calloc(2 * p->nspans + 1, sizeof(*ev));
	size_t nev = 0;
	int err;

	if (!ev)
		return -ENOMEM;
	int tb = p->host_time ? 1 : 0;

	if (p->nspans)
		qsort_r(p->spans, p->nspans, sizeof(*p->spans), by_track_then_nesting, &tb);
	err = write_tracks(f, p);
	for (size_t i = 0, j; i < p->nspans; i = j) {
		for (j = i + 1; j < p->nspans && p->spans[j].track == p->spans[i].track; j++)
			;
		track_events(&p->spans[i], j - i, tb, ev, &nev, left_out);
	}
	if (nev)
		qsort(ev, nev, sizeof(*ev), by_time);
	for (size_t i = 0; !err && i < nev; i++)
		err = write_event(f, &ev[i]);
	free(ev);
	return err;
}

int perfetto_write(struct perfetto *p, const struct report *r, const char *path, uint64_t *left_out, char *err,
		   size_t errlen)
{
	FILE *f;
	int ret;

	*left_out = 0;
	finish_spans(p, r);
	if (p->oom)
		return kerr_set(err, errlen, -ENOMEM, "out of memory gathering the timeline for %s", path);
	if (!p->nspans) {
		snprintf(err, errlen, "nothing in the trace to draw (no packet stops, return probes or steps): %s not "
				      "written", path);
		return -ENOENT;
	}
	if (!(f = files_fcreate(path, &ret, err, errlen)))
		return ret;
	ret = write_all(f, p, left_out);
	if ((ferror(f) | fclose(f)) || ret) {
		snprintf(err, errlen, "writing %s: %s", path, strerror(ret ? -ret : errno ? errno : EIO));
		return ret ? ret : -EIO;
	}
	return 0;
}
