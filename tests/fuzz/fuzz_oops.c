// SPDX-License-Identifier: MIT
/* Fuzz the oops frame parser, a line at a time. */
#include <stdlib.h>
#include <string.h>

#include "oops.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char *line = malloc(len + 1);
	struct oops_frame f;

	if (!line)
		return 0;
	memcpy(line, data, len);
	line[len] = '\0';
	oops_parse_frame(line, &f);
	free(line);
	return 0;
}
