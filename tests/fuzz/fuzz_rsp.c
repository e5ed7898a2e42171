// SPDX-License-Identifier: MIT
/* Fuzz the RSP byte parser: the input is fed in chunks whose sizes come
 * from its first byte, as a socket would split it. */
#include "rsp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct rsp_parser p;
	size_t step, off = 1;

	if (!len)
		return 0;
	step = (data[0] % 64) + 1;
	rsp_parser_init(&p, 4096);
	while (off < len) {
		size_t n = len - off < step ? len - off : step, used = 0;

		while (used < n) {
			enum rsp_event ev;

			used += rsp_parser_feed(&p, data + off + used, n - used, &ev);
		}
		off += n;
	}
	rsp_parser_free(&p);
	return 0;
}
