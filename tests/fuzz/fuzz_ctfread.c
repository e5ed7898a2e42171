// SPDX-License-Identifier: MIT
/* Fuzz the trace reader and the report over it: the input is a trace's
 * stream (after its packet header), read with the metadata of a trace with
 * a probe class, as kstep report reads a damaged or foreign file. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report.h"
#include "trace.h"
#include "../scratch.h"

static char dir[PATH_MAX];

/* The metadata once: three registers (a step's split at fs_base: its
 * regs_more), and a class with fields of each type. */
static int setup(void)
{
	static struct target_reg regs[3] = { { "rip", 64, 0, 0, true }, { "fs_base", 64, 1, 8, true },
					     { "st0", 80, 2, 16, true } };
	static const struct target_desc desc = { "i386:x86-64", regs, 3, 26 };
	static const struct trace_field fields[] = { { "len", TRACE_FIELD_U64 }, { "d", TRACE_FIELD_S64 },
						     { "dev", TRACE_FIELD_STRING } };
	static const struct trace_class cls = { "kstep:stop:x", fields, 3 };
	const struct trace_env env = { .classes = &cls, .nclasses = 1 };
	uint8_t uuid[16] = { 0 };
	struct buf b = { 0 };
	char path[PATH_MAX + 16];
	FILE *f;

	/* A directory of our own (mkdtemp: 0700, never one someone made
	 * first): files are written inside it by name. */
	if (!mkdtemp(scratch(dir, sizeof(dir), "kstep-fuzz-ctfread")))
		return -1;
	snprintf(path, sizeof(path), "%s/metadata", dir);
	if (trace_metadata(&b, &desc, &env, uuid, 0, 0) || !(f = fopen(path, "w")))
		return -1;
	fwrite(b.data, 1, b.len, f);
	fclose(f);
	buf_free(&b);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static int ready;
	static const uint8_t header[24] = { 0xc1, 0x1f, 0xfc, 0xc1 };
	struct report *r;
	char path[PATH_MAX + 16], err[256];
	FILE *f;

	if (!ready && setup())
		abort();
	ready = 1;
	snprintf(path, sizeof(path), "%s/stream_0", dir);
	f = fopen(path, "w");
	if (!f)
		abort();
	fwrite(header, 1, sizeof(header), f);
	fwrite(data, 1, len, f);
	fclose(f);
	if (!report_read_dir(&r, dir, NULL, err, sizeof(err))) {
		FILE *null = fopen("/dev/null", "w");

		report_print(r, null, 5);
		report_print_netdev_times(r, null);
		report_print_json(r, null);
		fclose(null);
		report_free(r);
	}
	return 0;
}
