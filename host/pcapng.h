/* SPDX-License-Identifier: MIT */
/*
 * pcapng: a writer of the pcapng capture format (the IETF draft
 * draft-ietf-opsawg-pcapng, what Wireshark and tshark read): one section,
 * interfaces that carry raw IP (LINKTYPE_RAW) with nanosecond timestamps,
 * and enhanced packet blocks with a comment each. libpcap writes only the
 * older pcap format, which has neither interfaces by name nor comments.
 */
#ifndef KSTEP_PCAPNG_H
#define KSTEP_PCAPNG_H

#include <stdint.h>
#include <stdio.h>

/* The section header, naming @app as the application that wrote it. */
void pcapng_section(FILE *f, const char *app, const char *comment);
/* An interface description: the next interface's number (0, 1, ...). */
void pcapng_interface(FILE *f, const char *name, const char *description);
/* A packet of @caplen bytes (@wire_len long whole) at @ns ns on interface
 * @iface, with @comment (NULL: none). */
void pcapng_packet(FILE *f, uint32_t iface, uint64_t ns, const uint8_t *bytes, uint32_t caplen, uint32_t wire_len,
		   const char *comment);

#endif
