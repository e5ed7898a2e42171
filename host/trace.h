/* SPDX-License-Identifier: MIT */
/*
 * trace: a CTF 1.8 trace directory (metadata + one binary stream) that
 * babeltrace2 and Trace Compass read. The register fields are generated from
 * the target description. Each event goes out in one write() (plugin steps:
 * a batch of them, 100 ms' at most), so a trace cut short by Ctrl-C, a dead
 * QEMU or a crash of kstep itself is readable up to its last complete event.
 */
#ifndef KSTEP_TRACE_H
#define KSTEP_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "reglayout.h"

enum trace_kind { TRACE_STOP = 0, TRACE_STEP = 1 };
/*
 * No string field is written empty: babeltrace2 2.0 (Debian 12's 2.0.4)
 * shows an empty string as the value the same field had in an earlier
 * event. A step's probe field says "step", or "stepped-over" for a whole
 * call run under kstep step --max-depth (at the callee's first
 * instruction); a frame without a source line has "??:0" (addr2line's
 * way), which ctfread hands back as "".
 */
#define TRACE_STEP_PROBE "step"
#define TRACE_STEPPED_OVER "stepped-over"
#define TRACE_NO_SOURCE "??:0"
/* Event classes of their own (a probe's, with its fetched fields) are
 * numbered from here, in the order trace_env lists them. */
#define TRACE_CLASS_BASE 2

enum trace_field_type { TRACE_FIELD_U64, TRACE_FIELD_S64, TRACE_FIELD_X64, TRACE_FIELD_STRING };

struct trace_field {
	const char *name;        /* a TSDL identifier, not one of the common fields */
	enum trace_field_type type;
};

/* A stop event with fields of its own after the common ones. */
struct trace_class {
	const char *name;        /* "kstep:stop:tcp_v4_rcv" */
	const struct trace_field *fields;
	size_t nfields;
};

struct trace_value {
	uint64_t u;              /* integer fields */
	const char *str;         /* string fields */
};

struct trace_frame {
	uint64_t addr;
	const char *func;    /* "name+0xoff" */
	const char *src;     /* "file:line" or "" */
};

struct trace_event {
	enum trace_kind kind;
	uint32_t class_id;   /* TRACE_CLASS_BASE + i for class i, else the kind's */
	uint64_t ts_ns;      /* CLOCK_MONOTONIC */
	uint64_t seq;
	uint64_t guest_ns;   /* the guest's own clock, 0: not known */
	uint32_t vcpu;
	uint64_t pc;
	const char *probe;   /* probe name (stop) or "" */
	const char *symbol;
	uint64_t skb;
	const struct trace_value *values; /* the class's fields, in its order */
	const uint8_t *regs; /* raw register block, target_desc g_size bytes */
	const uint64_t *stack;
	uint32_t stack_len;  /* in 8-byte words */
	const struct trace_frame *bt;
	uint32_t bt_len;
	/* Steps: how many of bt's outermost frames the event before had
	 * (trace_write counts them); they are not written again. */
	uint32_t bt_kept;
	/* Steps: the registers from fs_base on are the step before's, and
	 * are not written again (trace_write sees to it). */
	bool regs_kept;
	/* Steps: the stack words are the step before's (stack_len of them),
	 * and are not written again (trace_write sees to it). */
	bool stack_kept;
	const char *bt_end;      /* how the backtrace ended: unwind_end_name() */
	uint8_t bt_reliable;     /* it reached a natural end (unwind_end_reliable) */
	const char *insn;        /* step: disassembly */
	const uint8_t *insn_bytes;
	uint8_t insn_len;
};

struct trace_env {
	const char *unwinder;    /* "auto" (cfi, then fp), "cfi" or "fp" */
	const char *vmlinux;
	const char *banner;
	const char *command;
	const char *guest_clock;  /* how guest_ns was measured, "" or NULL: not */
	const char *libvirt_uri;  /* the guest is this libvirt domain (NULL: not) */
	const char *libvirt_domain;
	/* The recording this trace replays (its id), NULL: a live guest. A
	 * replay's trace is a function of the recording and the options: its
	 * uuid comes from both, its clock is the guest's (guest_ns). */
	const char *replay_id;
	const struct trace_class *classes;
	size_t nclasses;
};

struct trace;

/* A name every event has already (seq, pc, regs, ...): not for a class's field. */
bool trace_field_reserved(const char *name);

/*
 * Make the trace directory @dir, private (0700: a trace holds guest memory),
 * or take an existing one of ours that is empty, or that holds an old kstep
 * trace and nothing else when @force says to replace it. Never through a
 * symlink. *dfd is the open directory; -EEXIST for a directory in use.
 */
int trace_prepare_dir(const char *dir, bool force, int *dfd, char *err, size_t errlen);
/* Create guest/serial.log in a prepared directory: the fd or -errno. */
int trace_create_serial_log(int dfd);
/* DIR/guest, where what came from the guest goes (its console, a vmcore):
 * babeltrace2 takes every file beside metadata for a stream. An open
 * directory fd, or -errno. */
#define TRACE_GUEST_DIR "guest"
#define TRACE_VMCORE "vmcore"
int trace_guest_dir(int dfd);
/* Write metadata and the stream header into the prepared directory @dfd
 * (@dir names it in messages). Files are new, 0600. */
int trace_open(struct trace **out, int dfd, const char *dir, const struct target_desc *desc,
	       const struct trace_env *env, char *err, size_t errlen);
/* Append one event in one write (or to the batch). An event that could not
 * be written whole (a full disk) is cut off again, with the batch it was
 * in: the stream ends at its last complete event. */
int trace_write(struct trace *t, const struct trace_event *ev);
/* From now on, hold events until @bytes of them (or 100 ms' worth) are
 * there and write them at once; 0 writes what is held, and each event
 * after it at once again. */
int trace_batch(struct trace *t, size_t bytes);
/* The target was opened again (a replay run a second time): its events
 * are encoded after @desc, which must have the layout the metadata says. */
int trace_set_desc(struct trace *t, const struct target_desc *desc);
/* Close; the trace stays valid whatever happened before. */
int trace_close(struct trace *t);
/* CLOCK_MONOTONIC in nanoseconds; the coarse one (to a few ms, and
 * cheaper to read) for deciding when to flush or show progress. */
uint64_t trace_now_ns(void);
uint64_t trace_coarse_ns(void);

/* Generate the TSDL metadata text into @out (socket- and file-free, for tests). */
int trace_metadata(struct buf *out, const struct target_desc *desc, const struct trace_env *env,
		   const uint8_t uuid[16], int64_t offset_s, int64_t offset_ns);
/* Encode one event (header + fields) into @out; @c: its class, NULL for
 * kstep:stop and kstep:step. */
int trace_encode(struct buf *out, const struct target_desc *desc, const struct trace_class *c,
		 const struct trace_event *ev);

#endif
