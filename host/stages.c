// SPDX-License-Identifier: MIT
/*
 * stages: each stage's place on the packet's path (see stages.h).
 */
#include "stages.h"

#include <stddef.h>
#include <string.h>

static const struct {
	const char *stage;
	unsigned int order;
} stage_orders[] = {
	{ "irq", 1 }, { "driver", 2 }, { "softirq", 2 }, { "napi-poll", 2 }, { "gro", 3 }, { "core", 4 },
	{ "ip", 5 }, { "ip-local", 6 }, { "tcp", 7 }, { "udp", 7 }, { "icmp", 7 }, { "queue", 8 }, { "copy", 9 },
	{ "drop", 10 }, { "send", 20 }, { "tcp-send", 21 }, { "udp-send", 21 }, { "ip-output", 22 },
	{ "dev-queue", 23 }, { "qdisc", 24 }, { "driver-xmit", 25 }, { "free", 26 },
};

unsigned int stage_order(const char *stage)
{
	for (size_t i = 0; i < sizeof(stage_orders) / sizeof(stage_orders[0]); i++)
		if (!strcmp(stage_orders[i].stage, stage))
			return stage_orders[i].order;
	return 0;
}
