// SPDX-License-Identifier: MIT
/*
 * probes: the builtin probe sets, probe specs and probe files, resolved
 * against vmlinux before anything boots; probes in modules get their
 * addresses once their module is loaded (see probes.h).
 */
#include "probes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmod.h"

struct builtin {
	const char *stage;
	const char *func;
	const char *nic;    /* only for this NIC, NULL: always */
	const char *module; /* where it is when vmlinux lacks it */
};

/* The receive path of 6.1 from the driver to the socket (DESIGN.md, facts). */
static const struct builtin rx_set[] = {
	{ "driver", "e1000_clean_rx_irq", "e1000", NULL },
	{ "driver", "virtnet_poll", "virtio", "virtio_net" },
	{ "softirq", "net_rx_action", NULL, NULL },
	{ "gro", "napi_gro_receive", NULL, NULL },
	{ "core", "__netif_receive_skb_core", NULL, NULL },
	{ "core", "__netif_receive_skb_list_core", NULL, NULL },
	{ "ip", "ip_rcv", NULL, NULL },
	{ "ip", "ip_list_rcv", NULL, NULL },
	{ "ip-local", "ip_local_deliver", NULL, NULL },
	{ "tcp", "tcp_v4_rcv", NULL, NULL },
	{ "udp", "udp_rcv", NULL, NULL },
	{ "icmp", "icmp_rcv", NULL, NULL },
	{ "copy", "skb_copy_datagram_iter", NULL, NULL },
};

/* Where each stage sits on the receive path, for the packet report: a buffer
 * seen at an earlier stage than its last one carries a new packet. */
static const struct {
	const char *stage;
	unsigned int order;
} rx_order[] = {
	{ "driver", 1 }, { "softirq", 2 }, { "gro", 3 }, { "core", 4 }, { "ip", 5 },
	{ "ip-local", 6 }, { "tcp", 7 }, { "udp", 7 }, { "icmp", 7 }, { "copy", 8 },
};

static unsigned int stage_order(const char *stage)
{
	for (size_t i = 0; i < sizeof(rx_order) / sizeof(rx_order[0]); i++)
		if (!strcmp(rx_order[i].stage, stage))
			return rx_order[i].order;
	return 0;
}

/* The earliest points of a dying kernel: before the report is printed. */
static const struct builtin oops_set[] = {
	{ "oops", "oops_begin", NULL, NULL },
	{ "oops", "__warn", NULL, NULL },
	{ "oops", "panic", NULL, NULL },
};

static int add(struct probe_set *ps, const char *spec, const char *stage, uint64_t addr, bool entry,
	       struct symtab *syms)
{
	struct probe *tmp, *p;

	if (addr && probes_find(ps, addr))
		return 0; /* one breakpoint per address */
	tmp = realloc(ps->v, (ps->n + 1) * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	ps->v = tmp;
	p = &ps->v[ps->n];
	memset(p, 0, sizeof(*p));
	p->spec = strdup(spec);
	p->stage = strdup(stage);
	if (!p->spec || !p->stage) {
		free(p->spec);
		free(p->stage);
		return -ENOMEM;
	}
	p->addr = addr;
	p->at_entry = entry;
	p->skb_arg = -1;
	p->oops = !strcmp(stage, "oops");
	p->order = stage_order(stage);
	if (!addr)
		goto done; /* in a module: resolved when it is loaded */
	/* Arguments are only where the ABI puts them at the first instruction. */
	if (entry && sym_skb_param(syms, addr, &p->skb_arg, &p->skb_levels))
		p->skb_arg = -1;
done:
	ps->n++;
	return 0;
}

/* MODULE:NAME[+OFF]: a probe in a module, placed once it is loaded. */
static int add_in_module(struct probe_set *ps, const char *spec, const char *stage, struct symtab *syms)
{
	const char *colon = strchr(spec, ':');
	char module[64];
	int err;

	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(module) || !colon[1])
		return -EINVAL;
	snprintf(module, sizeof(module), "%.*s", (int)(colon - spec), spec);
	err = add(ps, spec, stage, 0, false, syms);
	if (!err && !(ps->v[ps->n - 1].module = strdup(module)))
		err = -ENOMEM;
	return err;
}

static int add_builtin(struct probe_set *ps, const struct builtin *set, size_t n, const char *nic,
		       struct symtab *syms)
{
	for (size_t i = 0; i < n; i++) {
		const struct sym *s;
		int err;

		if (set[i].nic && nic && strcmp(set[i].nic, nic))
			continue;
		s = sym_lookup_name(syms, set[i].func);
		if ((!s || !s->func) && set[i].module) {
			char spec[128];

			snprintf(spec, sizeof(spec), "%s:%s", set[i].module, set[i].func);
			if ((err = add_in_module(ps, spec, set[i].stage, syms)))
				return err;
			continue;
		}
		if (!s || !s->func) {
			char **tmp = realloc(ps->skipped, (ps->nskipped + 1) * sizeof(*tmp));

			if (!tmp)
				return -ENOMEM;
			ps->skipped = tmp;
			ps->skipped[ps->nskipped] = strdup(set[i].func);
			if (!ps->skipped[ps->nskipped])
				return -ENOMEM;
			ps->nskipped++;
			continue;
		}
		err = add(ps, set[i].func, set[i].stage, s->addr, true, syms);
		if (err)
			return err;
	}
	return 0;
}

int probes_add_set(struct probe_set *ps, const char *name, const char *nic, struct symtab *syms)
{
	if (!strcmp(name, "rx"))
		return add_builtin(ps, rx_set, sizeof(rx_set) / sizeof(rx_set[0]), nic, syms);
	if (!strcmp(name, "oops"))
		return add_builtin(ps, oops_set, sizeof(oops_set) / sizeof(oops_set[0]), nic, syms);
	if (!strcmp(name, "none"))
		return 0;
	return -ENOENT;
}

/* NAME[+OFF] that vmlinux lacks: a probe in the module that defines it.
 * True when one does (*ret: add_in_module's result). */
static bool in_a_module(struct probe_set *ps, const char *spec, const char *stage, struct symtab *syms, int *ret)
{
	char name[128], module[64], full[256];

	snprintf(name, sizeof(name), "%.*s", (int)strcspn(spec, "+"), spec);
	if (!ps->moddir || !kmods_find_symbol(ps->moddir, name, module, sizeof(module)))
		return false;
	snprintf(full, sizeof(full), "%s:%s", module, spec);
	*ret = add_in_module(ps, full, stage ? stage : "user", syms);
	return true;
}

int probes_add_spec(struct probe_set *ps, const char *spec, const char *stage, struct symtab *syms,
		    char *err, size_t errlen)
{
	const struct sym *s;
	uint64_t addr;
	int ret;

	if (strchr(spec, ':')) {
		ret = add_in_module(ps, spec, stage ? stage : "user", syms);
		if (ret)
			snprintf(err, errlen, ret == -EINVAL ? "cannot parse breakpoint '%s': use MODULE:NAME[+OFFSET]"
							     : "out of memory", spec);
		return ret;
	}
	ret = sym_resolve(syms, spec, &addr);
	if (ret == -ENOENT && in_a_module(ps, spec, stage, syms, &ret))
		return ret;
	if (ret == -ENOENT) {
		snprintf(err, errlen, "unknown symbol '%s' in %s%s%s (check the name with: nm %s | grep -w NAME)", spec,
			 sym_path(syms), ps->moddir ? " and its modules in " : "", ps->moddir ? ps->moddir : "",
			 sym_path(syms));
		return ret;
	}
	if (ret == -ERANGE) {
		s = sym_lookup_addr(syms, addr);
		snprintf(err, errlen, "'%s' is past the end of its function (%s)", spec,
			 s ? "it lands in another symbol" : "outside any symbol");
		return -EINVAL;
	}
	if (ret) {
		snprintf(err, errlen, "cannot parse breakpoint '%s': use NAME, NAME+OFFSET, 0xADDRESS or MODULE:NAME",
			 spec);
		return ret;
	}
	s = sym_lookup_addr(syms, addr);
	if (!sym_in_text(syms, addr)) {
		snprintf(err, errlen, "'%s' (0x%llx) is not in the kernel's text", spec, (unsigned long long)addr);
		return -EINVAL;
	}
	ret = add(ps, spec, stage ? stage : "user", addr, s && s->addr == addr && s->func, syms);
	if (ret)
		snprintf(err, errlen, "out of memory");
	return ret;
}

int probes_load_file(struct probe_set *ps, const char *path, const char *nic, struct symtab *syms,
		     char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[512];
	int lineno = 0, ret = 0;

	if (!f) {
		snprintf(err, errlen, "cannot read probe file %s: %s", path, strerror(errno));
		return -errno;
	}
	while (!ret && fgets(line, sizeof(line), f)) {
		char *save = NULL, *a, *b;

		lineno++;
		line[strcspn(line, "#\n")] = '\0';
		a = strtok_r(line, " \t", &save);
		if (!a)
			continue;
		b = strtok_r(NULL, " \t", &save);
		if (!strcmp(a, "set")) {
			ret = b ? probes_add_set(ps, b, nic, syms) : -EINVAL;
			if (ret)
				snprintf(err, errlen, "%s:%d: unknown probe set '%s' (have rx, oops, none)", path,
					 lineno, b ? b : "");
		} else {
			char msg[384];

			ret = probes_add_spec(ps, a, b, syms, msg, sizeof(msg));
			if (ret)
				snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
		}
	}
	fclose(f);
	return ret;
}

void probes_relocate(struct probe_set *ps, uint64_t offset)
{
	for (size_t i = 0; i < ps->n; i++)
		if (!ps->v[i].module)
			ps->v[i].addr += offset;
}

size_t probes_resolve_modules(struct probe_set *ps, probes_lookup_fn lookup, void *ctx)
{
	size_t resolved = 0;

	for (size_t i = 0; i < ps->n; i++) {
		struct probe *p = &ps->v[i];
		char symbol[128], *plus;
		unsigned long long off = 0;
		uint64_t addr;

		if (!p->module || p->addr)
			continue;
		snprintf(symbol, sizeof(symbol), "%s", strchr(p->spec, ':') + 1);
		if ((plus = strchr(symbol, '+'))) {
			*plus = '\0';
			off = strtoull(plus + 1, NULL, 0);
		}
		if (lookup(ctx, p->module, symbol, &addr))
			continue;
		p->addr = addr + off;
		p->at_entry = !off;
		resolved++;
	}
	return resolved;
}

struct probe *probes_find(struct probe_set *ps, uint64_t addr)
{
	for (size_t i = 0; addr && i < ps->n; i++)
		if (ps->v[i].addr == addr)
			return &ps->v[i];
	return NULL;
}

void probes_free(struct probe_set *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		free(ps->v[i].spec);
		free(ps->v[i].stage);
		free(ps->v[i].module);
	}
	for (size_t i = 0; i < ps->nskipped; i++)
		free(ps->skipped[i]);
	free(ps->v);
	free(ps->skipped);
	memset(ps, 0, sizeof(*ps));
}
