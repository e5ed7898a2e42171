// SPDX-License-Identifier: MIT
/*
 * packet: an skb's length, device and IPv4/TCP/UDP headers (see packet.h).
 */
#include "packet.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86dd
#define IPV6_HEADER 40
/* An IPv4 header (at most 60 bytes) and a TCP header's first 20. */

const char *const packet_field_names[PACKET_NFIELDS] = {
	"len", "dev", "proto", "saddr", "daddr", "sport", "dport", "tcp_seq", "tcp_ack", "tcp_flags", "pkt",
};
const bool packet_field_is_text[PACKET_NFIELDS] = {
	false, true, true, true, true, false, false, false, false, true, true,
};

void packet_layout_init(struct packet_layout *l, struct symtab *syms)
{
	uint64_t size;

	memset(l, 0, sizeof(*l));
	l->snaplen = PACKET_HEADERS_READ;
	l->ok = !sym_member(syms, "sk_buff", "len", &l->len, &size) &&
		!sym_member(syms, "sk_buff", "data_len", &l->data_len, &size) &&
		!sym_member(syms, "sk_buff", "data", &l->data, &size) &&
		!sym_member(syms, "sk_buff", "head", &l->head, &size) &&
		!sym_member(syms, "sk_buff", "network_header", &l->network_header, &size) &&
		!sym_member(syms, "sk_buff", "protocol", &l->protocol, &size) &&
		!sym_member(syms, "sk_buff", "dev", &l->dev, &size) &&
		!sym_member(syms, "net_device", "name", &l->dev_name, &size);
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void dotted(const uint8_t *p, struct farg_value *v)
{
	v->u = be32(p);
	snprintf(v->str, sizeof(v->str), "%u.%u.%u.%u", p[0], p[1], p[2], p[3]);
}

static void tcp_flags(uint8_t f, char *out)
{
	static const char letters[] = "FSRPAUEC";

	for (int i = 0; i < 8; i++)
		if (f & (1 << i))
			*out++ = letters[i];
	*out = '\0';
}

/* The transport header at @t of protocol @proto. */
static void decode_transport(uint8_t proto, const uint8_t *t, bool v6, struct farg_value *out)
{
	static const char *const names[] = { [IPPROTO_ICMP] = "icmp", [IPPROTO_TCP] = "tcp", [IPPROTO_UDP] = "udp",
					     [IPPROTO_ICMPV6] = "icmp6" };

	out[PACKET_PROTO].u = proto;
	if (proto < sizeof(names) / sizeof(names[0]) && names[proto])
		snprintf(out[PACKET_PROTO].str, sizeof(out->str), "%s%s", names[proto],
			 v6 && proto != IPPROTO_ICMPV6 ? "6" : "");
	else
		snprintf(out[PACKET_PROTO].str, sizeof(out->str), "%s-%u", v6 ? "ip6" : "ip", proto);
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		out[PACKET_SPORT].u = be16(t);
		out[PACKET_DPORT].u = be16(t + 2);
	}
	if (proto == IPPROTO_TCP) {
		out[PACKET_SEQ].u = be32(t + 4);
		out[PACKET_ACK].u = be32(t + 8);
		out[PACKET_FLAGS].u = t[13];
		tcp_flags(t[13], out[PACKET_FLAGS].str);
	}
}

static void decode_ipv4(const uint8_t *h, struct farg_value *out)
{
	dotted(h + 12, &out[PACKET_SADDR]);
	dotted(h + 16, &out[PACKET_DADDR]);
	decode_transport(h[9], h + (h[0] & 15) * 4, false, out);
}

/* IPv6 without extension headers (what follows is the next header's). */
static void decode_ipv6(const uint8_t *h, struct farg_value *out)
{
	inet_ntop(AF_INET6, h + 8, out[PACKET_SADDR].str, sizeof(out->str));
	inet_ntop(AF_INET6, h + 24, out[PACKET_DADDR].str, sizeof(out->str));
	decode_transport(h[6], h + IPV6_HEADER, true, out);
}

/* The IP packet's whole length by its header at @h (IPv4's total length,
 * IPv6's payload length and fixed header), 0 if @h is neither. */
static uint32_t ip_length(const uint8_t *h)
{
	if ((h[0] >> 4) == 4)
		return be16(h + 2);
	return (h[0] >> 4) == 6 ? (uint32_t)be16(h + 4) + IPV6_HEADER : 0;
}

_Static_assert(2 * PACKET_SNAPLEN_MAX < FARG_STR_MAX, "a value's text holds a packet's bytes in hex");

/* The header bytes at @h as the "pkt" field: up to @snaplen, @avail of
 * them are the skb's linear data, and no more than the IP packet's length. */
static void keep_bytes(const uint8_t *h, uint64_t avail, unsigned int snaplen, struct farg_value *v)
{
	static const char digits[] = "0123456789abcdef";
	uint64_t n = avail < snaplen ? avail : snaplen;

	if (ip_length(h) < n)
		n = ip_length(h);
	for (uint64_t i = 0; i < n; i++) {
		v->str[2 * i] = digits[h[i] >> 4];
		v->str[2 * i + 1] = digits[h[i] & 15];
	}
	v->str[2 * n] = '\0';
	v->u = n;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

size_t packet_bytes(const char *hex, uint8_t *out, size_t max, uint32_t *wire_len)
{
	size_t n = 0;

	*wire_len = 0;
	for (; hex[0] && n < max; hex += 2, n++) {
		int hi = hex_digit(hex[0]), lo = hi < 0 ? -1 : hex_digit(hex[1]);

		if (lo < 0)
			return 0;
		out[n] = (uint8_t)(hi << 4 | lo);
	}
	if (n)
		*wire_len = ip_length(out) > n ? ip_length(out) : (uint32_t)n;
	return n;
}

void packet_decode(const struct packet_layout *l, uint64_t skb,
		   int (*read)(void *ctx, uint64_t addr, void *out, size_t len), void *ctx,
		   struct farg_value out[PACKET_NFIELDS])
{
	uint64_t head = 0, data = 0, dev = 0, at;

	uint32_t len = 0, data_len = 0;
	uint16_t nh = 0, proto = 0;
	uint8_t h[PACKET_SNAPLEN_MAX];

	memset(out, 0, sizeof(*out) * PACKET_NFIELDS);
	if (!skb)
		return;
	if (!l->ok || read(ctx, skb + l->len, &len, 4) || read(ctx, skb + l->data_len, &data_len, 4) ||
	    read(ctx, skb + l->head, &head, 8) ||
	    read(ctx, skb + l->data, &data, 8) || read(ctx, skb + l->network_header, &nh, 2) ||
	    read(ctx, skb + l->protocol, &proto, 2) || read(ctx, skb + l->dev, &dev, 8)) {
		for (int i = 0; i < PACKET_NFIELDS; i++)
			out[i].fault = true;
		return;
	}
	out[PACKET_LEN].u = len;
	if (dev && !read(ctx, dev + l->dev_name, out[PACKET_DEV].str, 16))
		out[PACKET_DEV].str[16] = '\0';
	/* A network header not set yet (0, or ~0) means the data is at it:
	 * after eth_type_trans on receive. */
	bool nh_set = nh && nh != 0xffff;

	at = nh_set ? head + nh : data;
	proto = (uint16_t)(proto >> 8 | proto << 8);
	/* Transmit sets skb->protocol late (ip_output): a network header
	 * that is set is enough there. */
	if ((proto == ETH_P_IP || (!proto && nh_set)) && !read(ctx, at, h, l->snaplen) && (h[0] >> 4) == 4 &&
	    (h[0] & 15) >= 5 && be16(h + 2) >= (h[0] & 15) * 4)
		decode_ipv4(h, out);
	else if (proto == ETH_P_IPV6 && !read(ctx, at, h, l->snaplen) && (h[0] >> 4) == 6)
		decode_ipv6(h, out);
	else
		return;
	/* The linear data ends at data + len - data_len (the rest is in pages). */
	if (data_len <= len && at <= data + len - data_len)
		keep_bytes(h, data + len - data_len - at, l->snaplen, &out[PACKET_BYTES]);
}
