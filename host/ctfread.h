/* SPDX-License-Identifier: MIT */
/*
 * ctfread: read back a kstep trace, fast. It reads what trace.c writes (the
 * event layouts in the metadata, one stream of events) and nothing more:
 * babeltrace2 is the general CTF reader. A stream cut inside an event (a
 * kill at the wrong moment) ends at the last complete one. A step's
 * backtrace comes whole: the frames it wrote, then the bt_kept outermost
 * frames of the event before; and its registers too: those from fs_base
 * on are the step before's where it wrote none (regs_more_len 0).
 */
#ifndef KSTEP_CTFREAD_H
#define KSTEP_CTFREAD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTF_MAX_FIELDS 64
#define CTF_MAX_FRAMES 64

struct ctf_field {
	const char *name;
	bool is_text;
	uint64_t u;
	const char *s;      /* text fields; points into the mapped stream */
};

struct ctf_frame {
	uint64_t addr;
	const char *func, *src;
};

/* One event; the pointers are valid until the next ctf_next. */
struct ctf_event {
	uint32_t id;
	const char *name;          /* "kstep:stop", "kstep:step", "kstep:stop:EVENT", ... */
	uint64_t ts_ns, seq, guest_ns, pc, skb;
	uint32_t vcpu;
	const char *probe, *symbol;
	const char *insn;          /* steps */
	struct ctf_field fields[CTF_MAX_FIELDS]; /* the class's own fields */
	size_t nfields;
	struct ctf_frame bt[CTF_MAX_FRAMES];
	size_t nbt;
	const char *bt_end;
	const uint8_t *regs;       /* the register block, as the stub sent it */
	size_t regs_len;
};

struct ctf_reader;

/* Open the trace in @dir. -ENOENT/-EINVAL with the reason in @err. */
int ctf_open(struct ctf_reader **out, const char *dir, char *err, size_t errlen);
/* The next event: 1, 0 at the end (or where the stream was cut), < 0 on a
 * stream that does not decode (the reason in ctf_error). */
int ctf_next(struct ctf_reader *r, struct ctf_event *ev);
const char *ctf_error(const struct ctf_reader *r);
/* From now on ctf_next returns -EINTR once *@flag is set (a signal handler
 * sets it): a reader of a large trace stops when the user asks it to. */
void ctf_set_interrupt(struct ctf_reader *r, const volatile sig_atomic_t *flag);
/* The env's guest_clock (how guest_ns was measured), "" when none. */
const char *ctf_guest_clock(const struct ctf_reader *r);
/* The env's vmlinux (the kernel the trace was taken with). */
const char *ctf_vmlinux(const struct ctf_reader *r);
/* Register @name of @ev (of its class's register block): 0, or -ENOENT. */
int ctf_reg(const struct ctf_reader *r, const struct ctf_event *ev, const char *name, uint64_t *value);
/* The name of register @i of class @class_id, "" for one wider than 64
 * bits (st0, xmm0), NULL past the last. */
const char *ctf_reg_name(const struct ctf_reader *r, uint32_t class_id, size_t i);
/* Where the last event read starts and ends in the stream file. */
void ctf_last_range(const struct ctf_reader *r, size_t *start, size_t *end);
/* Bytes of the stream after the last complete event (a cut), 0: none. */
size_t ctf_trailing(const struct ctf_reader *r);
void ctf_close(struct ctf_reader *r);

/* A class field by name, NULL when the event has none. */
const struct ctf_field *ctf_field(const struct ctf_event *ev, const char *name);

#endif
