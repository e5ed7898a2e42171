/* SPDX-License-Identifier: MIT */
/*
 * scratch: where a unit test or a fuzz target makes its files and
 * directories. Under $TMPDIR, which tests/run-all points at a directory
 * of its own (removed after the run, kept and named when a test failed),
 * else under /tmp.
 */
#ifndef KSTEP_TEST_SCRATCH_H
#define KSTEP_TEST_SCRATCH_H

#include <stdio.h>
#include <stdlib.h>

/* Room for a scratch name; the paths tests build inside one have more. */
#define SCRATCH_MAX 96

/* "$TMPDIR/@name-XXXXXX" into @buf (@size bytes), a template for mkdtemp
 * or mkstemp. A TMPDIR too long for it ends the test, saying so. */
static inline char *scratch(char *buf, size_t size, const char *name)
{
	const char *tmp = getenv("TMPDIR");
	int n = snprintf(buf, size, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name);

	if (n < 0 || (size_t)n >= size || n >= SCRATCH_MAX) {
		fprintf(stderr, "tests: TMPDIR (%s) is too long for a scratch name of %d bytes at most\n", tmp,
			SCRATCH_MAX - 1);
		exit(1);
	}
	return buf;
}

#endif
