// SPDX-License-Identifier: MIT
/* Fuzz the trace reader's metadata parser: the input is a trace's metadata
 * (the TSDL text), read with a fixed stream, as kstep report and diff read
 * a trace someone handed over. Every register the metadata declares is
 * looked up in every event, as diff does. fuzz_ctfread fuzzes the stream. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctfread.h"
#include "report.h"
#include "../scratch.h"

static char dir[PATH_MAX];

/* The stream once: a packet header, then bytes that decode as some events
 * of class 0 under many layouts (ids and small counts, text, zeros). */
static int setup(void)
{
	static const uint8_t header[24] = { 0xc1, 0x1f, 0xfc, 0xc1 };
	char path[PATH_MAX + 16];
	FILE *f;

	if (!mkdtemp(scratch(dir, sizeof(dir), "kstep-fuzz-ctfmeta")))
		return -1;
	snprintf(path, sizeof(path), "%s/stream_0", dir);
	if (!(f = fopen(path, "w")))
		return -1;
	fwrite(header, 1, sizeof(header), f);
	for (int i = 0; i < 64; i++) {
		static const uint8_t event[48] = { 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
						   'i', 'p', '_', 'r', 'c', 'v', 0, 'x', 0, 3, 0, 0, 0, 0, 0, 0,
						   0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0 };

		fwrite(event, 1, sizeof(event), f);
	}
	return fclose(f);
}

static void read_events(void)
{
	struct ctf_reader *r;
	struct ctf_event ev;
	char err[256];
	uint64_t v;

	if (ctf_open(&r, dir, err, sizeof(err)))
		return;
	for (int n = 0; n < 256 && ctf_next(r, &ev) > 0; n++)
		for (size_t i = 0; ctf_reg_name(r, ev.id, i); i++)
			ctf_reg(r, &ev, ctf_reg_name(r, ev.id, i), &v);
	ctf_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static int ready;
	struct report *rep;
	char path[PATH_MAX + 16], err[256];
	FILE *f;

	if (!ready && setup())
		abort();
	ready = 1;
	snprintf(path, sizeof(path), "%s/metadata", dir);
	if (!(f = fopen(path, "w")))
		abort();
	fwrite(data, 1, len, f);
	fclose(f);
	read_events();
	if (!report_read_dir(&rep, dir, NULL, err, sizeof(err))) {
		FILE *null = fopen("/dev/null", "w");

		report_print(rep, null, 5);
		report_print_json(rep, null);
		fclose(null);
		report_free(rep);
	}
	return 0;
}
