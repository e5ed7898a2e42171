// SPDX-License-Identifier: MIT
/*
 * pcapng: blocks of the pcapng format (see pcapng.h). Every block is its
 * type, its total length, its body, its options and the total length
 * again; every field in the writer's byte order, which the section's
 * byte-order magic tells readers. Errors show in ferror(f).
 */
#include "pcapng.h"

#include <string.h>

#define BLOCK_SECTION 0x0A0D0D0Au
#define BLOCK_INTERFACE 1u
#define BLOCK_ENHANCED_PACKET 6u
#define BYTE_ORDER_MAGIC 0x1A2B3C4Du
#define LINKTYPE_RAW 101
#define OPT_END 0
#define OPT_COMMENT 1
#define OPT_SHB_USERAPPL 4
#define OPT_IF_NAME 2
#define OPT_IF_DESCRIPTION 3
#define OPT_IF_TSRESOL 9
#define TSRESOL_NANOSECONDS 9

static uint32_t padded(size_t n)
{
	return (uint32_t)((n + 3) & ~(size_t)3);
}

static void put32(FILE *f, uint32_t v)
{
	fwrite(&v, 4, 1, f);
}

static void put16(FILE *f, uint16_t v)
{
	fwrite(&v, 2, 1, f);
}

/* @n bytes and the zeros that pad them to 32 bits. */
static void put_padded(FILE *f, const void *p, size_t n)
{
	static const uint8_t zeros[3];

	fwrite(p, 1, n, f);
	fwrite(zeros, 1, padded(n) - n, f);
}

/* An option's length in the block (0 for an absent one). */
static uint32_t option_size(const void *value, size_t len)
{
	return value ? 4 + padded(len) : 0;
}

static void put_option(FILE *f, uint16_t code, const void *value, size_t len)
{
	if (!value)
		return;
	put16(f, code);
	put16(f, (uint16_t)len);
	put_padded(f, value, len);
}

/* Option values are at most 65535 bytes: a longer text is cut. */
static size_t text_len(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n > 65535 ? 65535 : n;
}

void pcapng_section(FILE *f, const char *app, const char *comment)
{
	size_t la = text_len(app), lc = text_len(comment);
	uint32_t total = 28 + option_size(app, la) + option_size(comment, lc) + 4;
	int64_t section_length = -1; /* not given */

	put32(f, BLOCK_SECTION);
	put32(f, total);
	put32(f, BYTE_ORDER_MAGIC);
	put16(f, 1); /* version 1.0 */
	put16(f, 0);
	fwrite(&section_length, 8, 1, f);
	put_option(f, OPT_COMMENT, comment, lc);
	put_option(f, OPT_SHB_USERAPPL, app, la);
	put32(f, OPT_END);
	put32(f, total);
}

void pcapng_interface(FILE *f, const char *name, const char *description)
{
	static const uint8_t tsresol = TSRESOL_NANOSECONDS;
	size_t ln = text_len(name), ld = text_len(description);
	uint32_t total = 16 + option_size(name, ln) + option_size(description, ld) + option_size(&tsresol, 1) + 4 + 4;

	put32(f, BLOCK_INTERFACE);
	put32(f, total);
	put16(f, LINKTYPE_RAW);
	put16(f, 0);
	put32(f, 0); /* snaplen: no limit */
	put_option(f, OPT_IF_NAME, name, ln);
	put_option(f, OPT_IF_DESCRIPTION, description, ld);
	put_option(f, OPT_IF_TSRESOL, &tsresol, 1);
	put32(f, OPT_END);
	put32(f, total);
}

void pcapng_packet(FILE *f, uint32_t iface, uint64_t ns, const uint8_t *bytes, uint32_t caplen, uint32_t wire_len,
		   const char *comment)
{
	size_t lc = text_len(comment);
	uint32_t total = 28 + padded(caplen) + option_size(comment, lc) + 4 + 4;

	put32(f, BLOCK_ENHANCED_PACKET);
	put32(f, total);
	put32(f, iface);
	put32(f, (uint32_t)(ns >> 32));
	put32(f, (uint32_t)ns);
	put32(f, caplen);
	put32(f, wire_len < caplen ? caplen : wire_len);
	put_padded(f, bytes, caplen);
	put_option(f, OPT_COMMENT, comment, lc);
	put32(f, OPT_END);
	put32(f, total);
}
