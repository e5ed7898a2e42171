/* SPDX-License-Identifier: MIT */
/*
 * trace: a CTF 1.8 trace directory (metadata + one binary stream) that
 * babeltrace2 and Trace Compass read. The register fields are generated from
 * the target description. Each event goes out in one write(), so a trace cut
 * short by Ctrl-C, a dead QEMU or a crash of kstep itself is readable up to
 * its last complete event.
 */
#ifndef KSTEP_TRACE_H
#define KSTEP_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "target.h"

enum trace_kind { TRACE_STOP = 0, TRACE_STEP = 1 };

struct trace_frame {
	uint64_t addr;
	const char *func;    /* "name+0xoff" */
	const char *src;     /* "file:line" or "" */
};

struct trace_event {
	enum trace_kind kind;
	uint64_t ts_ns;      /* CLOCK_MONOTONIC */
	uint64_t seq;
	uint32_t vcpu;
	uint64_t pc;
	const char *probe;   /* probe name (stop) or "" */
	const char *symbol;
	uint64_t skb;
	const uint8_t *regs; /* raw register block, target_desc g_size bytes */
	const uint64_t *stack;
	uint32_t stack_len;  /* in 8-byte words */
	const struct trace_frame *bt;
	uint32_t bt_len;
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
};

struct trace;

/*
 * Make the trace directory @dir, private (0700: a trace holds guest memory),
 * or take an existing one of ours that is empty, or that holds an old kstep
 * trace and nothing else when @force says to replace it. Never through a
 * symlink. *dfd is the open directory; -EEXIST for a directory in use.
 */
int trace_prepare_dir(const char *dir, bool force, int *dfd, char *err, size_t errlen);
/* Create guest/serial.log in a prepared directory: the fd or -errno. */
int trace_create_serial_log(int dfd);
/* Write metadata and the stream header into the prepared directory @dfd
 * (@dir names it in messages). Files are new, 0600. */
int trace_open(struct trace **out, int dfd, const char *dir, const struct target_desc *desc,
	       const struct trace_env *env, char *err, size_t errlen);
/* Append one event in one write. An event that could not be written whole
 * (a full disk) is cut off again: the stream ends at its last complete event. */
int trace_write(struct trace *t, const struct trace_event *ev);
/* Close; the trace stays valid whatever happened before. */
int trace_close(struct trace *t);
uint64_t trace_now_ns(void);

/* Generate the TSDL metadata text into @out (socket- and file-free, for tests). */
int trace_metadata(struct buf *out, const struct target_desc *desc, const struct trace_env *env,
		   const uint8_t uuid[16], int64_t offset_s, int64_t offset_ns);
/* Encode one event (header + fields) into @out. */
int trace_encode(struct buf *out, const struct target_desc *desc, const struct trace_event *ev);

#endif
