/* SPDX-License-Identifier: MIT */
/*
 * pcapfilter: tcpdump's filter language (pcap-filter(7)) on the packets
 * kstep reads, through libpcap: an expression compiled once for raw IP
 * (the bytes from the network header on, as packet.h reads them), then run
 * at each stop on the stop's packet.
 */
#ifndef KSTEP_PCAPFILTER_H
#define KSTEP_PCAPFILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pcap_filter;

/* Compile @expr: 0, or -EINVAL with libpcap's message in @err. */
int pcap_filter_compile(struct pcap_filter **out, const char *expr, char *err, size_t errlen);
/* Does the packet of @caplen bytes at @bytes (@wire_len long whole) match? */
bool pcap_filter_match(const struct pcap_filter *f, const uint8_t *bytes, size_t caplen, uint32_t wire_len);
void pcap_filter_free(struct pcap_filter *f);

#endif
