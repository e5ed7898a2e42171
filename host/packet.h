/* SPDX-License-Identifier: MIT */
/*
 * packet: what an skb carries, read from guest memory at a stop: its length
 * and device, and from its IPv4 header on, the protocol, addresses, ports
 * and (TCP) sequence numbers and flags. The sk_buff layout comes from the
 * DWARF; the headers are where the skb's network header says, or at its
 * data before one is set (the driver and GRO stages), and those header
 * bytes themselves (hex, for the pcap filter and pcapng).
 */
#ifndef KSTEP_PACKET_H
#define KSTEP_PACKET_H

#include <stdint.h>

#include "fetcharg.h"
#include "symbols.h"

enum packet_field {
	PACKET_LEN, PACKET_DEV, PACKET_PROTO, PACKET_SADDR, PACKET_DADDR, PACKET_SPORT, PACKET_DPORT,
	PACKET_SEQ, PACKET_ACK, PACKET_FLAGS, PACKET_BYTES, PACKET_NFIELDS
};

/* The fields' names (the trace's and filters'), and whether each is text. */
extern const char *const packet_field_names[PACKET_NFIELDS];
extern const bool packet_field_is_text[PACKET_NFIELDS];

/* Header bytes read from the network header on (IPv6 and a TCP header),
 * and what the "pkt" field holds by default (in hex, two characters a
 * byte), cut at the end of the IP packet and of the skb's linear data;
 * --snaplen keeps up to PACKET_SNAPLEN_MAX. */
#define PACKET_HEADERS_READ 80
#define PACKET_SNAPLEN_MAX 256

struct packet_layout {
	bool ok;
	unsigned int snaplen;      /* bytes read and kept in "pkt": PACKET_HEADERS_READ (the
				    * default, what decoding needs) to PACKET_SNAPLEN_MAX */
	uint64_t len, data_len, data, head, network_header, protocol, dev, dev_name;
};

/* From vmlinux's DWARF; ok is false when it lacks struct sk_buff. */
void packet_layout_init(struct packet_layout *l, struct symtab *syms);
/* Decode the skb at @skb; fields that are not there (no IPv4 header, not
 * TCP) are 0 or "". */
void packet_decode(const struct packet_layout *l, uint64_t skb, int (*read)(void *ctx, uint64_t addr, void *out,
									   size_t len),
		   void *ctx, struct farg_value out[PACKET_NFIELDS]);
/* The bytes of a "pkt" field's @hex into @out (up to @max), and in
 * *@wire_len the IP packet's whole length from its header (at least the
 * bytes there are). Returns how many; 0 for none or text that is not hex. */
size_t packet_bytes(const char *hex, uint8_t *out, size_t max, uint32_t *wire_len);

#endif
