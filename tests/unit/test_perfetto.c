// SPDX-License-Identifier: MIT
/* Unit tests of the Perfetto timeline: calls that return probes timed
 * nest on their CPU's track, one that crosses another is left out (and
 * counted) so that the timeline stays well formed, a packet's stops
 * become slices on its track and a flow, and the file reads back as one
 * Trace message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "perfetto.h"
#include "perfetto.pb-c.h"
#include "../scratch.h"

static struct ctf_event return_at(const char *fn, uint64_t end, uint64_t duration)
{
	struct ctf_event ev = { .name = fn, .guest_ns = end, .ts_ns = end, .symbol = "" };

	ev.fields[0] = (struct ctf_field){ .name = "duration_ns", .u = duration };
	ev.fields[1] = (struct ctf_field){ .name = "wall_ns", .u = duration };
	ev.nfields = 2;
	return ev;
}

static struct ctf_event stop_at(const char *fn, uint64_t ns, uint64_t seq, uint32_t vcpu)
{
	struct ctf_event ev = { .name = "kstep:stop", .guest_ns = ns, .ts_ns = ns, .seq = seq, .vcpu = vcpu,
				.symbol = fn, .probe = "ip" };

	ev.fields[0] = (struct ctf_field){ .name = "proto", .is_text = true, .s = "udp" };
	ev.fields[1] = (struct ctf_field){ .name = "len", .u = 128 };
	ev.nfields = 2;
	return ev;
}

/* The file written, unpacked. */
static Perfetto__Protos__Trace *read_back(const char *path)
{
	static uint8_t buf[1 << 16];
	FILE *f = fopen(path, "rb");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return perfetto__protos__trace__unpack(NULL, n, buf);
}

static void crossing_calls_are_left_out_and_packets_flow(void **state)
{
	struct ctf_event evs[] = {
		return_at("kstep:return:inner", 250, 100),   /* [150, 250] in outer */
		return_at("kstep:return:outer", 300, 200),   /* [100, 300] */
		return_at("kstep:return:crossing", 400, 200), /* [200, 400]: crosses outer */
		stop_at("ip_rcv+0x0", 120, 1, 0),
		stop_at("udp_rcv.constprop.0", 180, 2, 1),
	};
	char path[SCRATCH_MAX], err[256];
	struct perfetto *p;
	struct report *r;
	uint64_t left_out;
	Perfetto__Protos__Trace *t;
	int begins = 0, ends = 0, instants = 0, flows = 0, ending = 0, fd;

	(void)state;
	fd = mkstemp(scratch(path, sizeof(path), "kstep-perfetto"));
	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	assert_int_equal(perfetto_new(&p), 0);
	assert_int_equal(report_new(&r), 0);
	report_finish(r);
	for (size_t i = 0; i < 3; i++)
		perfetto_event(p, &evs[i]);
	perfetto_packet_stop(p, &evs[3], 0);
	perfetto_packet_stop(p, &evs[4], 0);
	assert_int_equal(perfetto_write(p, r, path, &left_out, err, sizeof(err)), 0);
	assert_int_equal(left_out, 1);
	assert_int_equal(perfetto_write(p, r, path, &left_out, err, sizeof(err)) < 0, 1); /* never over a file */
	t = read_back(path);
	assert_non_null(t);
	for (size_t i = 0; i < t->n_packet; i++) {
		Perfetto__Protos__TrackEvent *te = t->packet[i]->track_event;

		if (!te)
			continue;
		begins += te->type == PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_SLICE_BEGIN;
		ends += te->type == PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_SLICE_END;
		instants += te->type == PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_INSTANT;
		flows += (int)te->n_flow_ids;
		ending += (int)te->n_terminating_flow_ids;
		if (te->type == PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_SLICE_BEGIN && te->name)
			assert_true(strcmp(te->name, "crossing"));
	}
	/* inner, outer, and the packet's two stages: slices; its two stops
	 * on their CPUs: instants, one flow from the first to the last. */
	assert_int_equal(begins, 4);
	assert_int_equal(ends, 4);
	assert_int_equal(instants, 2);
	assert_int_equal(flows, 1);
	assert_int_equal(ending, 1);
	perfetto__protos__trace__free_unpacked(t, NULL);
	unlink(path);
	perfetto_free(p);
	report_free(r);
}

static void a_trace_with_nothing_to_draw_is_refused(void **state)
{
	struct perfetto *p;
	struct report *r;
	uint64_t left_out;
	char err[256];

	(void)state;
	assert_int_equal(perfetto_new(&p), 0);
	assert_int_equal(report_new(&r), 0);
	report_finish(r);
	assert_int_equal(perfetto_write(p, r, "/nonexistent/never", &left_out, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "nothing in the trace to draw"));
	perfetto_free(p);
	report_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(crossing_calls_are_left_out_and_packets_flow),
		cmocka_unit_test(a_trace_with_nothing_to_draw_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
