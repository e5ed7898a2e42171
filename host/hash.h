/* SPDX-License-Identifier: MIT */
/*
 * hash: FNV-1a over bytes, for what needs a cheap, stable 64-bit digest
 * (interned names, a file's identity, a replay's uuid), and the slot of a
 * 64-bit key (an address) in a table. Not cryptographic: nothing here
 * defends against someone choosing the input.
 */
#ifndef KSTEP_HASH_H
#define KSTEP_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_FNV1A_START 0xcbf29ce484222325ull

/* Continue the hash @h (HASH_FNV1A_START to begin) over @len bytes. */
static inline uint64_t hash_fnv1a(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* The slot of @key in a table of @n: Fibonacci hashing, whose high bits
 * spread addresses that differ only in their low ones. */
static inline size_t hash_slot(uint64_t key, size_t n)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 40) % n;
}

#endif
