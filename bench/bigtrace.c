// SPDX-License-Identifier: MIT
/*
 * bigtrace: make a trace of N real events for make bench from a small one:
 * its events repeated in order, each given a later timestamp (CTF readers
 * want them rising). Usage: bigtrace SRC DST N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctfread.h"

#define HEADER 24 /* the packet header trace.c writes */
#define TS_AT 4   /* an event's timestamp: after its 32-bit class id */

static int copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	char buf[65536];
	size_t n;

	while (in && out && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, out);
	if (in)
		fclose(in);
	return out && !fclose(out) && in ? 0 : -1;
}

int main(int argc, char **argv)
{
	char path[4096], err[512];
	struct ctf_event *ev = malloc(sizeof(*ev));
	unsigned long n = argc == 4 ? strtoul(argv[3], NULL, 10) : 0, written = 0;
	unsigned long long ts = 1000000000ull;
	FILE *src, *dst;

	if (!n || !ev) {
		fprintf(stderr, "usage: bigtrace SRC DST N\n");
		return 2;
	}
	mkdir(argv[2], 0700);
	snprintf(path, sizeof(path), "%s/metadata", argv[1]);
	snprintf(err, sizeof(err), "%s/metadata", argv[2]);
	if (copy_file(path, err))
		return 1;
	snprintf(path, sizeof(path), "%s/stream_0", argv[1]);
	src = fopen(path, "rb");
	snprintf(path, sizeof(path), "%s/stream_0", argv[2]);
	dst = fopen(path, "wb");
	if (!src || !dst)
		return 1;
	char head[HEADER];
	if (fread(head, 1, HEADER, src) != HEADER || fwrite(head, 1, HEADER, dst) != HEADER)
		return 1;
	while (written < n) {
		struct ctf_reader *r;
		size_t start, end;

		if (ctf_open(&r, argv[1], err, sizeof(err))) {
			fprintf(stderr, "bigtrace: %s\n", err);
			return 1;
		}
		while (written < n && ctf_next(r, ev) > 0) {
			char buf[1 << 16];

			ctf_last_range(r, &start, &end);
			if (end - start > sizeof(buf) || fseek(src, (long)start, SEEK_SET) ||
			    fread(buf, 1, end - start, src) != end - start)
				return 1;
			ts += 1000;
			memcpy(buf + TS_AT, &ts, 8);
			fwrite(buf, 1, end - start, dst);
			written++;
		}
		ctf_close(r);
	}
	fclose(src);
	printf("%lu\n", written);
	return fclose(dst) ? 1 : 0;
}
