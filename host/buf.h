/* SPDX-License-Identifier: MIT */
/* buf: a growable byte buffer. Lengths are size_t; every append is checked. */
#ifndef KSTEP_BUF_H
#define KSTEP_BUF_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* Make room for @extra more bytes. Returns 0 or -ENOMEM (the buffer is unchanged). */
int buf_reserve(struct buf *b, size_t extra);
/* buf_append when there is no room yet. */
int buf_append_grown(struct buf *b, const void *data, size_t len);
/* Inline where there is room: a step's event is some 40 appends, 800,000
 * events a second. */
static inline int buf_append(struct buf *b, const void *data, size_t len)
{
	if (len >= b->cap - b->len) /* no room for it and the NUL (nor any, cap 0) */
		return buf_append_grown(b, data, len);
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}
int buf_putc(struct buf *b, uint8_t c);
int buf_puts(struct buf *b, const char *s);
/* printf-style append; the result is NUL-terminated but the NUL is not counted. */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append @len bytes of little-endian @value (len <= 8). */
static inline int buf_put_le(struct buf *b, uint64_t value, size_t len)
{
	uint64_t le = htole64(value); /* its low @len bytes come first */

	return buf_append(b, &le, len < 8 ? len : 8);
}
void buf_reset(struct buf *b);
void buf_free(struct buf *b);
/* NUL-terminated view of the contents (adds a NUL past len). NULL on -ENOMEM. */
const char *buf_cstr(struct buf *b);

#endif
