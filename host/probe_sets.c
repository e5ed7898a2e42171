// SPDX-License-Identifier: MIT
/*
 * probe_sets: kstep's builtin probe sets (rx, rx-full, tx, drops, syscalls,
 * oops): the functions along each path with their stage, the NIC whose
 * driver they belong to, their fields, filter and return fields; a set
 * added to a probe set (see probes.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probes_priv.h"

struct builtin {
	const char *stage;
	const char *func;
	const char *nic;    /* only for this NIC, NULL: always */
	const char *module; /* where it is when vmlinux lacks it */
	const char *args;   /* fetch arguments, space-separated */
	const char *ret;    /* record the return with these ($retval...), NULL: not */
	const char *filter; /* keep only the hits that match */
};

/* Where an skb is really freed: kfree_skb_reason(NULL) returns at once, and
 * a free that only drops a reference (skb_unref() false: users above 1)
 * frees nothing; the kernel's skb:kfree_skb tracepoint fires past both
 * checks, and what dropwatch and perf count as drops is that. */
#define FREED "skb != 0 && skb->users.refs.counter == 1"
const char probes_real_drop[] = FREED;

/* Who is running: the receiver at a copy, the caller of a system call. */
#define TASK_ARGS "pid=$current->pid comm=$comm"

/* From the stack's entry to the protocol handlers: in rx and rx-full alike. */
#define RX_PROTOCOL_STAGES                                                          \
	{ "core", "__netif_receive_skb_core", NULL, NULL, NULL, NULL, NULL },      \
	{ "core", "__netif_receive_skb_list_core", NULL, NULL, NULL, NULL, NULL }, \
	{ "ip", "ip_rcv", NULL, NULL, NULL, NULL, NULL },                          \
	{ "ip", "ip_list_rcv", NULL, NULL, NULL, NULL, NULL },                     \
	{ "ip-local", "ip_local_deliver", NULL, NULL, NULL, NULL, NULL },          \
	{ "tcp", "tcp_v4_rcv", NULL, NULL, NULL, NULL, NULL },                     \
	{ "udp", "udp_rcv", NULL, NULL, NULL, NULL, NULL },                        \
	{ "icmp", "icmp_rcv", NULL, NULL, NULL, NULL, NULL }

/* The receive path of 6.1 from the driver to the socket (DESIGN.md, facts). */
static const struct builtin rx_set[] = {
	{ "driver", "e1000_clean_rx_irq", "e1000", NULL, NULL, NULL, NULL },
	{ "driver", "virtnet_poll", "virtio", "virtio_net", NULL, NULL, NULL },
	{ "softirq", "net_rx_action", NULL, NULL, NULL, NULL, NULL },
	{ "gro", "napi_gro_receive", NULL, NULL, NULL, NULL, NULL },
	RX_PROTOCOL_STAGES,
	{ "copy", "skb_copy_datagram_iter", NULL, NULL, TASK_ARGS, NULL, NULL },
};

/* The seeds' whole flow (perf's netdev-times): the NIC's interrupt, NET_RX
 * raised, the softirq and NAPI poll with their exits, the stages, queueing
 * to the socket, the receiver's wakeup, the copy and recvfrom() returning. */
static const struct builtin rx_full_set[] = {
	{ "irq", "e1000_intr", "e1000", NULL, "irq=$arg1", NULL, NULL },
	{ "irq", "vring_interrupt", "virtio", NULL, "irq=$arg1", NULL, NULL },
	{ "raise", "__napi_schedule", NULL, NULL, NULL, NULL, NULL },
	{ "softirq", "net_rx_action", NULL, NULL, NULL, "", NULL },
	{ "napi-poll", "e1000_clean", "e1000", NULL, "budget=$arg2", "work=$retval", NULL },
	{ "napi-poll", "virtnet_poll", "virtio", "virtio_net", "budget=$arg2", "work=$retval", NULL },
	{ "driver", "e1000_clean_rx_irq", "e1000", NULL, NULL, NULL, NULL },
	{ "gro", "napi_gro_receive", NULL, NULL, NULL, "gro=$retval", NULL },
	RX_PROTOCOL_STAGES,
	{ "queue", "tcp_queue_rcv", NULL, NULL, NULL, NULL, NULL },
	{ "queue", "__udp_enqueue_schedule_skb", NULL, NULL, NULL, NULL, NULL },
	{ "queue", "sock_queue_rcv_skb_reason", NULL, NULL, NULL, NULL, NULL },
	{ "wakeup", "sock_def_readable", NULL, NULL, "sk=$arg1", NULL, NULL },
	{ "copy", "skb_copy_datagram_iter", NULL, NULL, TASK_ARGS, NULL, NULL },
	{ "recv", "__sys_recvfrom", NULL, NULL, "fd=$arg1 " TASK_ARGS, "ret=$retval", NULL },
	{ "recv", "___sys_recvmsg", NULL, NULL, TASK_ARGS, NULL, NULL },
};

/* The transmit path: the system call down to the driver, and the free. */
static const struct builtin tx_set[] = {
	{ "send", "__sys_sendto", NULL, NULL, "fd=$arg1 size=$arg3 " TASK_ARGS, "ret=$retval", NULL },
	{ "send", "____sys_sendmsg", NULL, NULL, TASK_ARGS, NULL, NULL },
	{ "send", "sock_write_iter", NULL, NULL, TASK_ARGS, NULL, NULL },
	{ "tcp-send", "tcp_sendmsg", NULL, NULL, "size=$arg3", NULL, NULL },
	{ "udp-send", "udp_sendmsg", NULL, NULL, "size=$arg3", NULL, NULL },
	{ "ip-output", "ip_output", NULL, NULL, NULL, NULL, NULL },
	{ "dev-queue", "__dev_queue_xmit", NULL, NULL, NULL, NULL, NULL },
	{ "qdisc", "sch_direct_xmit", NULL, NULL, NULL, NULL, NULL },
	{ "driver-xmit", "e1000_xmit_frame", "e1000", NULL, NULL, NULL, NULL },
	{ "driver-xmit", "start_xmit", "virtio", "virtio_net", NULL, NULL, NULL },
	{ "free", "__dev_kfree_skb_any", NULL, NULL, NULL, NULL, FREED },
	/* budget 0 hands the skb to dev_consume_skb_any: __dev_kfree_skb_any
	 * above sees that free, which must not count twice. */
	{ "free", "napi_consume_skb", NULL, NULL, NULL, NULL, FREED " && budget != 0" },
};

/* Every drop with its reason; the stop's backtrace says where. */
static const struct builtin drops_set[] = {
	{ "drop", "kfree_skb_reason", NULL, NULL, "reason=$arg2", NULL, FREED },
};

/* The workload's socket calls, entry and return. */
#define SYSCALL(fn) { "syscall", fn, NULL, NULL, "fd=$arg1 " TASK_ARGS, "ret=$retval", NULL }
static const struct builtin syscalls_set[] = {
	{ "syscall", "__sys_socket", NULL, NULL, "family=$arg1 type=$arg2 " TASK_ARGS, "ret=$retval", NULL },
	SYSCALL("__sys_bind"), SYSCALL("__sys_connect"), SYSCALL("__sys_listen"), SYSCALL("__sys_accept4"),
	SYSCALL("__sys_sendto"), SYSCALL("__sys_recvfrom"), SYSCALL("__sys_sendmsg"), SYSCALL("__sys_recvmsg"),
	SYSCALL("__sys_shutdown"),
};

/* The earliest points of a dying kernel: before the report is printed. */
static const struct builtin oops_set[] = {
	{ "oops", "oops_begin", NULL, NULL, NULL, NULL, NULL },
	{ "oops", "__warn", NULL, NULL, NULL, NULL, NULL },
	{ "oops", "panic", NULL, NULL, NULL, NULL, NULL },
};

static int skip(struct probe_set *ps, const char *func)
{
	char **tmp = realloc(ps->skipped, (ps->nskipped + 1) * sizeof(*tmp));

	if (!tmp)
		return -ENOMEM;
	ps->skipped = tmp;
	ps->skipped[ps->nskipped] = strdup(func);
	if (!ps->skipped[ps->nskipped])
		return -ENOMEM;
	ps->nskipped++;
	return 0;
}

/* One probe of a builtin set, with its fields and filter. */
static int add_builtin_probe(struct probe_set *ps, const struct builtin *b, uint64_t addr, struct symtab *syms)
{
	char buf[512], *words[MAX_ARGS], err[512];
	struct probe_req rq = { .packet = true, .ret_args = b->ret, .args = words };
	int ret;

	snprintf(buf, sizeof(buf), "%s", b->args ? b->args : "");
	rq.nargs = probes_split_words(buf, words, MAX_ARGS);
	ret = probes_add_one(ps, b->func, b->stage, addr, true, syms, &rq, err, sizeof(err));
	if (ret == -EINVAL) /* this kernel's DWARF differs: the probe without fields */
		ret = 0;
	if (!ret && b->filter)
		ret = probes_set_filter(ps, ps->n - 1, b->filter, syms, err, sizeof(err)) == -ENOMEM ? -ENOMEM : 0;
	return ret;
}

static int add_builtin(struct probe_set *ps, const struct builtin *set, size_t n, const char *nic,
		       struct symtab *syms)
{
	for (size_t i = 0; i < n; i++) {
		const struct sym *s;
		char msg[256];
		int err;

		if (set[i].nic && nic && strcmp(set[i].nic, nic))
			continue;
		s = sym_lookup_name(syms, set[i].func);
		if ((!s || !s->func) && set[i].module) {
			char spec[128];
			struct probe_req rq = { .packet = true };

			snprintf(spec, sizeof(spec), "%s:%s", set[i].module, set[i].func);
			if ((err = probes_add_in_module(ps, spec, set[i].stage, &rq, msg, sizeof(msg))))
				return err;
			continue;
		}
		err = !s || !s->func ? skip(ps, set[i].func) : add_builtin_probe(ps, &set[i], s->addr, syms);
		if (err)
			return err;
	}
	return 0;
}

#define SET(name, table) { name, table, sizeof(table) / sizeof(table[0]) }
static const struct {
	const char *name;
	const struct builtin *set;
	size_t n;
} sets[] = {
	SET("rx", rx_set), SET("rx-full", rx_full_set), SET("tx", tx_set), SET("drops", drops_set),
	SET("syscalls", syscalls_set), SET("oops", oops_set),
};

#define NSETS (sizeof(sets) / sizeof(sets[0]))

const char *probes_set_names(void)
{
	static char names[128];

	if (!names[0]) {
		size_t off = 0;

		for (size_t i = 0; i < NSETS; i++)
			off += (size_t)snprintf(names + off, sizeof(names) - off, "%s, ", sets[i].name);
		snprintf(names + off, sizeof(names) - off, "none");
	}
	return names;
}

/* The set the @len bytes at @name name: its index in sets[], NSETS for
 * "none", -1 for no set. */
static int set_named(const char *name, size_t len)
{
	for (size_t i = 0; i < NSETS; i++)
		if (strlen(sets[i].name) == len && !strncmp(name, sets[i].name, len))
			return (int)i;
	return len == 4 && !strncmp(name, "none", 4) ? (int)NSETS : -1;
}

int probes_add_set(struct probe_set *ps, const char *names, const char *nic, struct symtab *syms)
{
	const char *p;
	size_t len;
	int i, ret;

	/* Every name first: a list with one that is no set adds nothing. */
	for (p = names;; p += len + 1) {
		len = strcspn(p, ",");
		if (set_named(p, len) < 0)
			return -ENOENT;
		if (!p[len])
			break;
	}
	for (p = names;; p += len + 1) {
		len = strcspn(p, ",");
		i = set_named(p, len);
		if (i < (int)NSETS && (ret = add_builtin(ps, sets[i].set, sets[i].n, nic, syms)))
			return ret;
		if (!p[len])
			return 0;
	}
}
