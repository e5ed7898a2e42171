/* SPDX-License-Identifier: MIT */
/*
 * report: what happened to each packet. Stops are grouped by skb address into
 * paths (the stages one packet went through, in order); an skb seen again at a
 * probe it already passed, or at an earlier place on the receive path than its
 * last one, is a new packet in a recycled buffer.
 */
#ifndef KSTEP_REPORT_H
#define KSTEP_REPORT_H

#include <stdint.h>
#include <stdio.h>

struct report;

int report_new(struct report **out);
void report_free(struct report *r);
/* Record that @skb reached @stage (a probe name) at @order on the receive path
 * (0: unknown). Returns 0 or -ENOMEM. */
int report_add(struct report *r, uint64_t skb, const char *stage, unsigned int order);
/* Print "N packets: stage -> stage -> ..." lines, most common path first. */
void report_print(struct report *r, FILE *out);
/* Number of packets (finished paths) seen so far, for tests and summaries. */
uint64_t report_packets(struct report *r);

#endif
