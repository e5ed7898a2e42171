/* SPDX-License-Identifier: MIT */
/*
 * report: what happened to each packet. Stops are grouped by skb address into
 * paths (the stages one packet went through, in order); an skb seen again at a
 * stage it already passed is a new packet in a recycled buffer.
 */
#ifndef KSTEP_REPORT_H
#define KSTEP_REPORT_H

#include <stdint.h>
#include <stdio.h>

struct report;

int report_new(struct report **out);
void report_free(struct report *r);
/* Record that @skb reached @stage (a probe name). Returns 0 or -ENOMEM. */
int report_add(struct report *r, uint64_t skb, const char *stage);
/* Print "N packets: stage -> stage -> ..." lines, most common path first. */
void report_print(struct report *r, FILE *out);
/* Number of packets (finished paths) seen so far, for tests and summaries. */
uint64_t report_packets(struct report *r);

#endif
