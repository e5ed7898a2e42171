// SPDX-License-Identifier: MIT
/*
 * bigmem: large tables in huge pages, faulted in ahead of use (see
 * bigmem.h).
 */
#include "bigmem.h"

#include <stdint.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

static size_t whole_pages(size_t size)
{
	return (size + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
}

void *bigmem_alloc(size_t size)
{
	size_t len = whole_pages(size);
	uint8_t *raw = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *p;

	if (raw == MAP_FAILED)
		return NULL;
	/* Aligned, so that every 2 MiB of it can be one page: the rest of
	 * the mapping, before and after, goes back. */
	p = (uint8_t *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	munmap(p + len, (size_t)(raw + HUGE_PAGE - p));
	madvise(p, len, MADV_HUGEPAGE); /* a hint: without it, 4 KiB pages */
	/* Not shared with a child forked later (kstep's keeper of QEMU,
	 * qemu.c): after that fork, every first write to a shared page
	 * copied it. */
	madvise(p, len, MADV_DONTFORK);
	return p;
}

void bigmem_free(void *p, size_t size)
{
	if (p)
		munmap(p, whole_pages(size));
}

void bigmem_populate(void *p, size_t size)
{
	if (p)
		madvise(p, whole_pages(size), MADV_POPULATE_WRITE);
}
