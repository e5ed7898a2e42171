// SPDX-License-Identifier: MIT
/*
 * Probes and places several commands resolve the same way: the NIC whose
 * driver stages a set takes, --pcap-filter, step's and why's --at with
 * several places, --until, and what a kgdb line cannot fetch.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "linespec.h"

#include "session.h"

/* The NIC whose driver stages a set takes: the one kstep's own guest has;
 * for a guest kstep did not start, the one --nic names, else NULL: every
 * driver's stages, each placed where its function is (vmlinux, or a module
 * once it loads), so the driver actually bound is the one that is hit. */
const char *places_set_nic(const struct guest_opts *g)
{
	return (g->attach || g->domain) && !g->nic_given ? NULL : g->nic;
}

/* kgdb sends no gs base: a field that reads per-CPU data would only ever
 * read as a fault. One the user wrote is refused before the guest runs on;
 * one of a builtin set (the copy stage's pid) is said once and left so. */
int places_check_kgdb_fields(struct session *s, const struct probe_set *ps)
{
	bool said = false;

	for (size_t i = 0; target_is_kgdb(s->target) && i < ps->n; i++) {
		const struct probe *p = &ps->v[i];

		for (size_t k = 0; k < p->nargs + p->nret_args; k++) {
			const struct farg *a = k < p->nargs ? p->args[k] : p->ret_args[k - p->nargs];

			if (!farg_needs_percpu(a))
				continue;
			if (!strcmp(p->stage, "user")) {
				say_error("%s: field '%s' reads per-CPU data ($current, $comm), and kgdb sends no per-CPU "
				          "base (gs_base): it cannot be fetched over kgdb", p->spec, farg_name(a));
				return -EINVAL;
			}
			if (!said)
				say_info("over kgdb (no per-CPU base) %s's field '%s' and any like it read as (fault)", p->spec,
				         farg_name(a));
			said = true;
		}
	}
	return 0;
}

/* --pcap-filter EXPR, compiled before anything boots: a bad expression
 * exits 2 with libpcap's reason. Every probe with an skb then decodes its
 * packet, for the filter to look at. */
struct pcap_filter *places_pcap_filter(const char *cmd, const char *expr, struct probe_set *ps)
{
	struct pcap_filter *f;
	char err[512];

	if (pcap_filter_compile(&f, expr, err, sizeof(err)))
		say_usage(cmd, "%s", err);
	ps->packets = true;
	return f;
}

/* --at SPEC gave several places (a line compiled to two, an inline's
 * instances): the run takes the first, and says which. */
void places_say_several(struct session *s, const char *at, const struct probe_set *ps)
{
	char where[192];

	if (ps->n < 2)
		return;
	if (ps->v[0].addr)
		sym_format(s->syms, ps->v[0].addr, where, sizeof(where));
	else
		snprintf(where, sizeof(where), "%s", ps->v[0].spec);
	say_info("--at %s: %zu places; from the first, %s (kstep probe '%s' lists them)", at, ps->n, where, at);
}

/* --until SPEC: a symbol, or a line (its first statement start). */
int places_until(struct session *s, const struct probe_set *ps, const char *until, uint64_t *addr)
{
	struct line_sites sites;
	char err[512];
	int ret;

	if (!linespec_is_line(until)) {
		ret = sym_resolve(s->syms, until, addr);
		if (ret)
			say_error("--until %s: %s", until, ret == -ENOENT ? "no such symbol in this vmlinux"
								    : "use NAME, NAME+OFF, 0xADDR or a line (FUNC:LINE)");
		return ret;
	}
	if ((ret = linespec_resolve(s->syms, until, ps->srcdir, &sites, err, sizeof(err)))) {
		say_error("--until %s", err);
		return ret;
	}
	*addr = sites.v[0].addr;
	if (sites.n > 1)
		say_info("--until %s: %zu places; stepping until the first, 0x%" PRIx64, until, sites.n, *addr);
	linespec_free(&sites);
	return 0;
}

/* A --pcap-filter needs a probe with an skb to filter on. */
int places_check_pcap(const struct session *s, const struct probe_set *ps)
{
	for (size_t i = 0; s->g->eng.pcap && i < ps->n; i++)
		if (ps->v[i].packet || ps->v[i].module)
			return 0;
	if (s->g->eng.pcap)
		say_error("--pcap-filter: none of the probes has an skb argument whose packet it could filter");
	return s->g->eng.pcap ? -EINVAL : 0;
}

int places_at(struct session *s, struct probe_set *atp, const char *at, const char *filter, const char *stage)
{
	char err[512];

	probes_set_paths(atp, s->syms, s->g->vmlinux, s->g->moddir, s->g->srcdir);
	if (probes_add_spec(atp, at, stage, s->syms, err, sizeof(err)) ||
	    (filter && probes_set_filter(atp, 0, filter, s->syms, err, sizeof(err)))) {
		say_error("%s", err);
		return -EINVAL;
	}
	places_say_several(s, at, atp);
	return 0;
}
