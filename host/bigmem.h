/* SPDX-License-Identifier: MIT */
/*
 * bigmem: the large tables a step run looks things up in at every
 * instruction (decoded instructions, frame names, the plugin channel's
 * read buffer). They are mapped in 2 MiB pages where the kernel offers
 * them (transparent huge pages in "madvise" mode): a hash table of 16 MiB
 * in 4 KiB pages missed the TLB at almost every lookup, and took a page
 * fault at the first touch of each page. bigmem_populate faults a table
 * in ahead of use, while kstep waits for the guest. A child process does
 * not inherit them (they would be copied on write after the fork).
 */
#ifndef KSTEP_BIGMEM_H
#define KSTEP_BIGMEM_H

#include <stddef.h>

/* @size zeroed bytes, aligned to 2 MiB; NULL without memory. */
void *bigmem_alloc(size_t size);
/* Free what bigmem_alloc(@size) gave (NULL: nothing). */
void bigmem_free(void *p, size_t size);
/* Fault @p's @size bytes in, writable (Linux 5.14 and later; older
 * kernels fault them in at first use, as before). */
void bigmem_populate(void *p, size_t size);

#endif
