// SPDX-License-Identifier: MIT
/*
 * capture: a trace's packets into pcapng (see capture.h). The records are
 * kept as the report reads the trace, since their verdicts are known only
 * at its end; then sorted by time and written.
 */
#include "capture.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "packet.h"
#include "pcapng.h"
#include "kerr.h"

/* Stage functions get an interface each, up to this many; the rest share
 * the last. */
#define MAX_INTERFACES 256
#define FUNCTION_MAX 128

struct record {
	uint64_t guest_ns, host_ns, seq;
	size_t packet;
	uint32_t vcpu, iface, caplen, wire_len;
	uint8_t bytes[PACKET_SNAPLEN_MAX];
};

struct capture {
	struct record *v;
	size_t n, cap;
	char names[MAX_INTERFACES][FUNCTION_MAX];
	size_t nnames;
	bool all_guest_time; /* every record has a guest time */
	bool oom;
};

int capture_new(struct capture **out)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	(*out)->all_guest_time = true;
	return 0;
}

void capture_free(struct capture *c)
{
	if (c)
		free(c->v);
	free(c);
}

/* The interface of the function @symbol is in (NAME+0xOFF, NAME.constprop.0: NAME). */
static uint32_t interface_of(struct capture *c, const char *symbol)
{
	size_t len = strcspn(symbol, "+.");

	if (len >= FUNCTION_MAX)
		len = FUNCTION_MAX - 1;
	for (size_t i = 0; i < c->nnames; i++)
		if (!strncmp(c->names[i], symbol, len) && !c->names[i][len])
			return (uint32_t)i;
	if (c->nnames == MAX_INTERFACES)
		return MAX_INTERFACES - 1;
	memcpy(c->names[c->nnames], symbol, len);
	c->names[c->nnames][len] = '\0';
	return (uint32_t)c->nnames++;
}

static struct record *new_record(struct capture *c)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 1024;
		struct record *v = realloc(c->v, cap * sizeof(*v));

		if (!v) {
			c->oom = true;
			return NULL;
		}
		c->v = v;
		c->cap = cap;
	}
	return &c->v[c->n++];
}

void capture_stop(void *ctx, const struct ctf_event *ev, size_t packet)
{
	const struct ctf_field *pkt = ctf_field(ev, "pkt");
	struct capture *c = ctx;
	uint8_t bytes[PACKET_SNAPLEN_MAX];
	uint32_t wire_len;
	size_t n = pkt && pkt->is_text ? packet_bytes(pkt->s, bytes, sizeof(bytes), &wire_len) : 0;
	struct record *r;

	if (!n || !(r = new_record(c)))
		return;
	*r = (struct record){ .guest_ns = ev->guest_ns, .host_ns = ev->ts_ns, .seq = ev->seq, .packet = packet,
			      .vcpu = ev->vcpu, .iface = interface_of(c, ev->symbol), .caplen = (uint32_t)n,
			      .wire_len = wire_len };
	memcpy(r->bytes, bytes, n);
	if (!ev->guest_ns)
		c->all_guest_time = false;
}

uint64_t capture_records(const struct capture *c)
{
	return c->n;
}

static int by_guest_time(const void *a, const void *b)
{
	const struct record *x = a, *y = b;

	if (x->guest_ns != y->guest_ns)
		return x->guest_ns < y->guest_ns ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int by_host_time(const void *a, const void *b)
{
	const struct record *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void write_records(const struct capture *c, const struct report *r, FILE *f)
{
	char comment[512], verdict[256];

	pcapng_section(f, "kstep", c->all_guest_time ? "timestamps: guest time (ns since the guest's clock began)"
						      : "timestamps: host time (the trace has no guest time)");
	for (size_t i = 0; i < c->nnames; i++) {
		char description[FUNCTION_MAX + 32];

		snprintf(description, sizeof(description), "kstep stage %s", c->names[i]);
		pcapng_interface(f, c->names[i], description);
	}
	for (size_t i = 0; i < c->n; i++) {
		const struct record *rec = &c->v[i];

		report_verdict(r, rec->packet, verdict, sizeof(verdict));
		snprintf(comment, sizeof(comment), "%s cpu %" PRIu32 ": %s", c->names[rec->iface], rec->vcpu, verdict);
		pcapng_packet(f, rec->iface, c->all_guest_time ? rec->guest_ns : rec->host_ns, rec->bytes, rec->caplen,
			      rec->wire_len, comment);
	}
}

int capture_write(struct capture *c, const struct report *r, const char *path, char *err, size_t errlen)
{
	FILE *f;
	int ret;

	if (c->oom)
		return kerr_set(err, errlen, -ENOMEM, "out of memory keeping the packets for %s", path);
	if (!(f = files_fcreate(path, &ret, err, errlen)))
		return ret;
	if (c->n)
		qsort(c->v, c->n, sizeof(*c->v), c->all_guest_time ? by_guest_time : by_host_time);
	write_records(c, r, f);
	if (ferror(f) | fclose(f))
		return kerr_set(err, errlen, -EIO, "writing %s: %s", path, strerror(errno ? errno : EIO));
	return 0;
}
