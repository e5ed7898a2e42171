/* SPDX-License-Identifier: MIT */
/*
 * report_priv: the report's state, as report.c builds it from a trace's
 * events and report_print.c prints it. Not for use outside the two.
 */
#ifndef KSTEP_REPORT_PRIV_H
#define KSTEP_REPORT_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "report.h"

#define MAX_HOPS 24
#define INTERN_SLOTS_MIN 8192 /* the name table's first size; it doubles at half full */
#define LIVE_SLOTS 65536
#define MAX_VCPUS 64

enum verdict { V_IN_FLIGHT, V_DELIVERED, V_MERGED, V_DROPPED, V_SENT };
extern const char *const report_verdict_names[];

struct hop {
	const char *fn;          /* interned function name */
	uint64_t ns;             /* guest time */
};

struct packet {
	uint64_t skb;
	uint32_t vcpu;
	struct hop hops[MAX_HOPS];
	size_t nhops;
	unsigned int order;      /* furthest stage on the path */
	char proto[16], saddr[48], daddr[48];
	uint64_t sport, dport, len;
	enum verdict verdict;
	char detail[128];        /* task, drop reason and place, merged into */
	uint64_t verdict_ns;
	long nd_block, nd_line;  /* its netdev-times line, -1: none */
};

struct latency {
	const char *from, *to;
	uint64_t *v;
	size_t n, cap;
};

struct drop {
	const char *reason, *where;
	uint64_t n;
};

struct nd_line {
	uint64_t ns;
	char text[128];
	uint64_t follow_ns;      /* what became of the skb: copy or free, 0: nothing seen */
	char follow[128];
};

struct nd_block {
	uint32_t cpu;
	uint64_t irq_ns, entry_ns, exit_ns;
	char irq[64];
	struct nd_line *lines;
	size_t n;
};

struct vcpu_state {
	uint64_t irq_ns, gro_skb;
	char irq[64];
	long block;              /* the open NET_RX softirq, -1: none */
};

struct report {
	struct name {
		const char *s;
		const char *source;      /* a function's first file:line seen */
	} *names;                        /* open addressing, nslots a power of 2 */
	size_t nslots, nnames;
	struct { uint64_t skb; size_t idx; } live[LIVE_SLOTS];
	struct packet *pk;
	size_t npk, cappk;
	struct latency *lat;
	size_t nlat;
	struct drop *drops;
	size_t ndrops;
	struct nd_block *nd;
	size_t nnd;
	struct vcpu_state cpu[MAX_VCPUS];
	struct calltree *step_tree, *stop_tree; /* where the steps / stops were */
	const char *step_root;                  /* the function stepping began in */
	struct inlines *inl;                    /* the trace's vmlinux, for inlined functions */
	size_t step_node;                       /* where the last step counted ... */
	uint64_t step_ns;                       /* ... and its guest time, 0: none */
	bool inl_tried;
	char note[600];                         /* what the reader wants said, "": nothing */
	struct report_opts opts;
	char vmlinux[4096];
	uint64_t events, steps, returns;
	size_t cut;
	bool guest_time;
	bool oom;
};

#endif
