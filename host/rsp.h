/* SPDX-License-Identifier: MIT */
/*
 * rsp: the GDB Remote Serial Protocol, client side.
 *
 * Two layers: a socket-free parser that turns a byte stream into events
 * (packets, acks, naks, bad checksums), and a connection that frames packets,
 * handles acks and retransmission and logs the wire. GDB manual, appendix E
 * "GDB Remote Serial Protocol", sections "Overview" and "Packet Acknowledgment".
 */
#ifndef KSTEP_RSP_H
#define KSTEP_RSP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"

/* Largest packet we accept before giving up on the stream (QEMU's is 4 KiB,
 * qXfer replies are chunked; 16 MiB is far beyond any sane stub). */
#define RSP_MAX_PACKET_DEFAULT (16u << 20)

enum rsp_event {
	RSP_EV_NONE,      /* consumed everything, no event yet */
	RSP_EV_PACKET,    /* a complete packet with a good checksum: see rsp_parser.pkt */
	RSP_EV_BAD_CSUM,  /* a complete packet whose checksum did not match */
	RSP_EV_ACK,       /* '+' */
	RSP_EV_NAK,       /* '-' */
	RSP_EV_OVERSIZE,  /* a packet grew past max_packet; it was dropped */
};

enum rsp_parse_state {
	RS_IDLE,      /* between packets: '+', '-', '$', '%' or noise */
	RS_DATA,      /* inside a packet */
	RS_DATA_ESC,  /* after '}': the next byte is xor 0x20 */
	RS_DATA_RLE,  /* after '*': the next byte is a repeat count + 29 */
	RS_CSUM1,     /* after '#' */
	RS_CSUM2,
	RS_DISCARD,   /* an oversized packet: skip to its '#' and checksum */
};

struct rsp_parser {
	enum rsp_parse_state state;
	struct buf pkt;        /* decoded payload of the packet being read / just read */
	uint8_t sum;           /* running checksum over the raw bytes */
	uint8_t csum;          /* checksum as sent */
	bool notification;     /* '%' packet (non-stop notification) */
	size_t max_packet;
	int error;             /* -ENOMEM if the payload could not grow */
};

void rsp_parser_init(struct rsp_parser *p, size_t max_packet);
void rsp_parser_free(struct rsp_parser *p);
/*
 * Feed up to @len bytes. Stops after the first event and returns how many
 * bytes it consumed; *ev says which event (RSP_EV_NONE if it consumed all
 * without one). For RSP_EV_PACKET the payload is in p->pkt until the next call.
 * Escapes ('}') and run-length encoding ('*') are decoded; the checksum is
 * over the bytes as sent.
 */
size_t rsp_parser_feed(struct rsp_parser *p, const uint8_t *data, size_t len, enum rsp_event *ev);

/* Hex helpers. rsp_hex_decode returns bytes written or -EINVAL. */
int rsp_hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t outlen);
void rsp_hex_encode(const uint8_t *in, size_t len, char *out);
int rsp_hexval(int c);

struct rsp_conn;

/* Open "unix:PATH", "PATH" (a socket file), "HOST:PORT", or a serial line
 * to kgdb: "serial:PATH[,BAUD]" (a unix socket such as QEMU's chardev, or a
 * tty set raw at BAUD, default 115200). */
int rsp_connect(struct rsp_conn **out, const char *endpoint, char *err, size_t errlen);
/* rsp_connect, again while the stub refuses (bound, not yet listening) for
 * up to @timeout_ms or until @gone(@ctx) says it will never listen. */
int rsp_connect_retry(struct rsp_conn **out, const char *endpoint, int timeout_ms, bool (*gone)(void *ctx),
		      void *ctx, char *err, size_t errlen);
/* Take over an already connected fd (tests). */
int rsp_conn_from_fd(struct rsp_conn **out, int fd);
void rsp_close(struct rsp_conn *c);

/* Print every packet sent ("=> ") and received ("<= ") to @log (NULL: off). */
void rsp_set_wire_log(struct rsp_conn *c, FILE *log);
/* After the stub agreed to QStartNoAckMode. */
void rsp_set_noack(struct rsp_conn *c, bool noack);
void rsp_set_max_packet(struct rsp_conn *c, size_t max);
/* poll() returning EINTR while *flag is set makes rsp_wait return -EINTR
 * (a reply to a request is waited for regardless: it comes at once, and
 * leaving it unread would pair the next request with it). */
void rsp_set_interrupt_flag(struct rsp_conn *c, volatile sig_atomic_t *flag);

/*
 * Queue one framed packet for sending; nothing is written until rsp_flush or
 * a receive. Several queued packets go out in one write (QEMU answers them in
 * order). Returns 0 or a negative errno.
 */
int rsp_queue(struct rsp_conn *c, const char *payload, size_t len);
int rsp_flush(struct rsp_conn *c);
/* Queue raw bytes outside any packet (the 0x03 interrupt). */
int rsp_send_raw(struct rsp_conn *c, const void *data, size_t len);
/*
 * Wait up to @timeout_ms (-1: forever) for the next packet, acking it and
 * retransmitting on '-'. The payload stays valid until the next call on @c.
 * Errors: -ETIMEDOUT, -ECONNRESET (stub went away), -EPROTO (repeated bad
 * checksums), -EMSGSIZE (oversized packet), -ENOMEM.
 */
int rsp_recv(struct rsp_conn *c, const char **payload, size_t *len, int timeout_ms);
/* rsp_recv for a running target's stop: the interrupt flag ends the wait. */
int rsp_wait(struct rsp_conn *c, const char **payload, size_t *len, int timeout_ms);
/* The socket to poll for what the stub sends next; -1 when bytes read
 * already are still to be parsed (no poll needed). */
int rsp_poll_fd(const struct rsp_conn *c);
/*
 * Do not ack the next packet received. Only for QEMU (system mode), which
 * abandons a reply's pending ack when the next '$' arrives: a late '+' would
 * reach a guest already resumed by that next packet and stop it (QEMU
 * gdbstub: gdb_read_byte stops a running VM on any byte).
 */
void rsp_skip_next_ack(struct rsp_conn *c);
/* The next @n replies are the "OK"s of writes sent ahead of a resume in the
 * same write: rsp_recv reads them on its way to the next packet (the stop),
 * so nobody waits for them while the guest runs; one that is not "OK"
 * fails that rsp_recv with -EIO. */
void rsp_expect_oks(struct rsp_conn *c, unsigned int n);
/* Queue + flush + receive: a request and its reply. */
int rsp_request(struct rsp_conn *c, const char *req, const char **reply, size_t *len, int timeout_ms);
/* Human detail of the last error, for the edge to print. */
const char *rsp_errmsg(const struct rsp_conn *c);

#endif
