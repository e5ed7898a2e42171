// SPDX-License-Identifier: MIT
/* Fuzz the stop-reply parser (GDB manual E.3). */
#include "target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct target_stop st;

	target_parse_stop((const char *)data, len, &st);
	return 0;
}
