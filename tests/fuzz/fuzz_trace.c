// SPDX-License-Identifier: MIT
/* Fuzz the CTF writer: register names for the metadata (collisions,
 * keywords, odd bytes) and an event's strings and lengths, from the input. */
#include <stdlib.h>
#include <string.h>

#include "trace.h"

#define NREGS 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static const unsigned int sizes[NREGS] = { 64, 32, 80, 8 };
	struct target_reg regs[NREGS] = { 0 };
	struct target_desc desc = { "i386:x86-64", regs, NREGS, 0 };
	char *text = malloc(len + 1), *save = NULL, *tok;
	uint8_t raw[64] = { 0 }, uuid[16] = { 0 };
	uint64_t stack[4] = { 1, 2, 3, 4 };
	struct trace_frame bt[1] = { { 0, "", "" } };
	struct buf b = { 0 };
	size_t i = 0;

	if (!text)
		return 0;
	memcpy(text, data, len);
	text[len] = '\0';
	/* Up to four register names, then the event's strings. */
	for (tok = strtok_r(text, "\n", &save); tok && i < NREGS; tok = strtok_r(NULL, "\n", &save), i++) {
		regs[i] = (struct target_reg){ tok, sizes[i], (unsigned int)i, desc.g_size, true };
		desc.g_size += sizes[i] / 8;
	}
	desc.nregs = i;
	trace_metadata(&b, &desc, NULL, uuid, 0, 0);
	buf_reset(&b);
	bt[0].func = tok ? tok : "";
	struct trace_event ev = { .kind = len & 1 ? TRACE_STEP : TRACE_STOP, .probe = save ? save : "",
				  .symbol = bt[0].func, .regs = raw, .stack = stack, .stack_len = len % 5,
				  .bt = bt, .bt_len = len % 2, .insn = "", .insn_bytes = raw, .insn_len = len % 16 };
	trace_encode(&b, &desc, NULL, &ev);
	buf_free(&b);
	free(text);
	return 0;
}
