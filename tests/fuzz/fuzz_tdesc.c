// SPDX-License-Identifier: MIT
/* Fuzz the target-description parser; an xi:include is answered with the
 * same document (bounded), as a stub could. */
#include <stdlib.h>
#include <string.h>

#include "target.h"

struct doc {
	const uint8_t *data;
	size_t len;
	int fetches;
};

static char *fetch(void *ctx, const char *name, size_t *len)
{
	struct doc *d = ctx;
	char *copy;

	(void)name;
	if (d->fetches++ > 4 || !(copy = malloc(d->len + 1)))
		return NULL;
	memcpy(copy, d->data, d->len);
	copy[d->len] = '\0';
	*len = d->len;
	return copy;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct doc d = { data, len, 0 };
	struct target_desc desc = { 0 };
	char err[256];

	if (!target_desc_parse(&desc, (const char *)data, len, fetch, &d, err, sizeof(err)))
		target_desc_free(&desc);
	return 0;
}
