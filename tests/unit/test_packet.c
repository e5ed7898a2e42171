// SPDX-License-Identifier: MIT
/* Unit tests of a packet's bytes: the "pkt" field packet_decode writes (cut
 * at the skb's linear data and at the IP packet's end), its decoding back,
 * pcap-filter expressions run on those bytes, and the pcapng blocks they
 * are written in. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "packet.h"
#include "pcapfilter.h"
#include "pcapng.h"

/* A guest with one skb at SKB whose head is at HEAD. */
#define SKB 0x1000
#define HEAD 0x2000
#define NH 16 /* the network header, from head */

static uint8_t guest[0x3000];

static int read_guest(void *ctx, uint64_t addr, void *out, size_t len)
{
	(void)ctx;
	if (addr + len > sizeof(guest))
		return -1;
	memcpy(out, guest + addr, len);
	return 0;
}

static struct packet_layout layout = {
	.ok = true, .snaplen = PACKET_HEADERS_READ, .len = 0, .data_len = 4, .data = 8, .head = 16, .network_header = 24, .protocol = 26,
	.dev = 32, .dev_name = 0,
};

/* A UDP datagram of @payload bytes from 127.0.0.1:1000 to port 9, its skb
 * holding @linear bytes of it in its head. */
static void udp_skb(uint16_t payload, uint32_t linear)
{
	uint8_t *ip = guest + HEAD + NH;
	uint16_t total = (uint16_t)(20 + 8 + payload);
	uint32_t len = total, data_len = total - linear;
	uint64_t head = HEAD, data = HEAD + NH;
	uint16_t nh = NH, proto = 0x0008; /* ETH_P_IP, big-endian */

	memset(guest, 0, sizeof(guest));
	memcpy(guest + SKB + layout.len, &len, 4);
	memcpy(guest + SKB + layout.data_len, &data_len, 4);
	memcpy(guest + SKB + layout.data, &data, 8);
	memcpy(guest + SKB + layout.head, &head, 8);
	memcpy(guest + SKB + layout.network_header, &nh, 2);
	memcpy(guest + SKB + layout.protocol, &proto, 2);
	ip[0] = 0x45;
	ip[2] = (uint8_t)(total >> 8);
	ip[3] = (uint8_t)total;
	ip[9] = 17;
	memcpy(ip + 12, (uint8_t[]){ 127, 0, 0, 1, 127, 0, 0, 1 }, 8);
	ip[20] = 1000 >> 8;
	ip[21] = 1000 & 255;
	ip[23] = 9;
	ip[25] = (uint8_t)(8 + payload);
	memset(ip + 28, 0xab, payload);
}

static void pkt_is_the_datagram_cut_at_the_headers_read(void **state)
{
	struct farg_value v[PACKET_NFIELDS];
	uint8_t bytes[PACKET_HEADERS_READ];
	uint32_t wire;

	(void)state;
	udp_skb(100, 128);
	packet_decode(&layout, SKB, read_guest, NULL, v);
	assert_string_equal(v[PACKET_PROTO].str, "udp");
	assert_int_equal(v[PACKET_DPORT].u, 9);
	assert_int_equal(v[PACKET_BYTES].u, PACKET_HEADERS_READ);
	assert_int_equal(strlen(v[PACKET_BYTES].str), 2 * PACKET_HEADERS_READ);
	assert_memory_equal(v[PACKET_BYTES].str, "45000080", 8);
	assert_int_equal(packet_bytes(v[PACKET_BYTES].str, bytes, sizeof(bytes), &wire), PACKET_HEADERS_READ);
	assert_int_equal(wire, 128);
	assert_memory_equal(bytes, guest + HEAD + NH, PACKET_HEADERS_READ);
}

static void pkt_stops_at_the_ip_packets_end(void **state)
{
	struct farg_value v[PACKET_NFIELDS];

	(void)state;
	udp_skb(4, 32);
	packet_decode(&layout, SKB, read_guest, NULL, v);
	assert_int_equal(v[PACKET_BYTES].u, 32);
}

static void pkt_stops_at_the_linear_data(void **state)
{
	struct farg_value v[PACKET_NFIELDS];

	(void)state;
	udp_skb(1000, 40); /* headers and 12 bytes in the head, the rest in pages */
	packet_decode(&layout, SKB, read_guest, NULL, v);
	assert_int_equal(v[PACKET_BYTES].u, 40);
	assert_int_equal(strlen(v[PACKET_BYTES].str), 80);
}

static void snaplen_keeps_more(void **state)
{
	struct farg_value v[PACKET_NFIELDS];
	uint8_t bytes[PACKET_SNAPLEN_MAX];
	uint32_t wire;

	(void)state;
	udp_skb(1000, 1028);
	layout.snaplen = PACKET_SNAPLEN_MAX;
	packet_decode(&layout, SKB, read_guest, NULL, v);
	layout.snaplen = PACKET_HEADERS_READ;
	assert_int_equal(v[PACKET_BYTES].u, PACKET_SNAPLEN_MAX);
	assert_int_equal(packet_bytes(v[PACKET_BYTES].str, bytes, sizeof(bytes), &wire), PACKET_SNAPLEN_MAX);
	assert_int_equal(wire, 1028);
	assert_memory_equal(bytes, guest + HEAD + NH, PACKET_SNAPLEN_MAX);
}

static void text_that_is_not_hex_gives_no_bytes(void **state)
{
	uint8_t b[8];
	uint32_t wire = 7;

	(void)state;
	assert_int_equal(packet_bytes("", b, sizeof(b), &wire), 0);
	assert_int_equal(wire, 0);
	assert_int_equal(packet_bytes("4", b, sizeof(b), &wire), 0);
	assert_int_equal(packet_bytes("4g00", b, sizeof(b), &wire), 0);
	assert_int_equal(packet_bytes("4500", b, sizeof(b), &wire), 2);
	assert_int_equal(packet_bytes("00112233445566778899", b, sizeof(b), &wire), 8); /* no more than room */
}

static void filter_runs_on_the_bytes(void **state)
{
	struct farg_value v[PACKET_NFIELDS];
	struct pcap_filter *udp9, *icmp, *big;
	uint8_t bytes[PACKET_HEADERS_READ];
	uint32_t wire;
	size_t n;
	char err[512];

	(void)state;
	udp_skb(100, 128);
	packet_decode(&layout, SKB, read_guest, NULL, v);
	n = packet_bytes(v[PACKET_BYTES].str, bytes, sizeof(bytes), &wire);
	assert_int_equal(pcap_filter_compile(&udp9, "udp and dst port 9 and host 127.0.0.1", err, sizeof(err)), 0);
	assert_int_equal(pcap_filter_compile(&icmp, "icmp", err, sizeof(err)), 0);
	assert_int_equal(pcap_filter_compile(&big, "greater 120", err, sizeof(err)), 0);
	assert_true(pcap_filter_match(udp9, bytes, n, wire));
	assert_false(pcap_filter_match(icmp, bytes, n, wire));
	assert_true(pcap_filter_match(big, bytes, n, wire)); /* the whole length, not the bytes read */
	assert_false(pcap_filter_match(udp9, bytes, 0, 0));
	pcap_filter_free(udp9);
	pcap_filter_free(icmp);
	pcap_filter_free(big);
}

static void bad_filter_says_libpcaps_reason(void **state)
{
	struct pcap_filter *f = (void *)1;
	char err[512];

	(void)state;
	assert_int_equal(pcap_filter_compile(&f, "udp and port", err, sizeof(err)), -EINVAL);
	assert_null(f);
	assert_non_null(strstr(err, "bad --pcap-filter 'udp and port': "));
	assert_non_null(strstr(err, "syntax error"));
}

static uint32_t u32_at(const char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* Every block's two lengths agree, are a multiple of 4 and tile the file. */
static void pcapng_blocks_tile_the_file(void **state)
{
	static const uint8_t ip[5] = { 0x45, 1, 2, 3, 4 };
	uint32_t types[4], n = 0;
	size_t size, at = 0;
	char *buf;
	FILE *f = open_memstream(&buf, &size);

	(void)state;
	pcapng_section(f, "kstep", "a comment");
	pcapng_interface(f, "ip_rcv", "kstep stage ip_rcv");
	pcapng_packet(f, 0, 0x123456789ull, ip, sizeof(ip), 128, "ip_rcv cpu 1: delivered");
	assert_int_equal(fclose(f), 0);
	while (at + 12 <= size && n < 4) {
		uint32_t len = u32_at(buf + at + 4);

		assert_int_equal(len % 4, 0);
		assert_true(at + len <= size);
		assert_int_equal(u32_at(buf + at + len - 4), len);
		types[n++] = u32_at(buf + at);
		at += len;
	}
	assert_int_equal(at, size);
	assert_int_equal(n, 3);
	assert_int_equal(types[0], 0x0A0D0D0A);
	assert_int_equal(types[1], 1);
	assert_int_equal(types[2], 6);
	/* The packet: interface 0, the time's two halves, 5 bytes of 128. */
	at = size - (28 + 8 + 4 + 24 + 4 + 4);
	assert_int_equal(u32_at(buf + at + 8), 0);
	assert_int_equal(u32_at(buf + at + 12), 1);
	assert_int_equal(u32_at(buf + at + 16), 0x23456789);
	assert_int_equal(u32_at(buf + at + 20), 5);
	assert_int_equal(u32_at(buf + at + 24), 128);
	assert_memory_equal(buf + at + 28, ip, 5);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pkt_is_the_datagram_cut_at_the_headers_read),
		cmocka_unit_test(pkt_stops_at_the_ip_packets_end),
		cmocka_unit_test(pkt_stops_at_the_linear_data),
		cmocka_unit_test(snaplen_keeps_more),
		cmocka_unit_test(text_that_is_not_hex_gives_no_bytes),
		cmocka_unit_test(filter_runs_on_the_bytes),
		cmocka_unit_test(bad_filter_says_libpcaps_reason),
		cmocka_unit_test(pcapng_blocks_tile_the_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
