// SPDX-License-Identifier: MIT
/*
 * report_print: a finished report printed: its packets' paths and
 * verdicts, latencies between stages, drops, perf's netdev-times view,
 * and the whole as JSON (see report.h).
 */
#include <json-c/json.h>
#include <string.h>

#include "report_priv.h"

static void path_text(const struct packet *p, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < p->nhops && n < len; i++)
		n += (size_t)snprintf(out + n, len - n, "%s%s", i ? " -> " : "", p->hops[i].fn);
}

struct path_count {
	char path[512];
	enum verdict verdict;
	uint64_t n;
};

static int by_count(const void *a, const void *b)
{
	const struct path_count *x = a, *y = b;

	return (x->n < y->n) - (x->n > y->n);
}

static void print_paths(const struct report *r, FILE *out)
{
	struct path_count *pc = calloc(r->npk ? r->npk : 1, sizeof(*pc));
	size_t n = 0;

	if (!pc)
		return;
	for (size_t i = 0; i < r->npk; i++) {
		char path[512];
		size_t k;

		path_text(&r->pk[i], path, sizeof(path));
		for (k = 0; k < n; k++)
			if (pc[k].verdict == r->pk[i].verdict && !strcmp(pc[k].path, path))
				break;
		if (k == n) {
			snprintf(pc[n].path, sizeof(pc[n].path), "%s", path);
			pc[n++].verdict = r->pk[i].verdict;
		}
		pc[k].n++;
	}
	qsort(pc, n, sizeof(*pc), by_count);
	fprintf(out, "packets: %zu, by path through the stages:\n", r->npk);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "  %6" PRIu64 "  %s  [%s]\n", pc[i].n, pc[i].path, report_verdict_names[pc[i].verdict]);
	free(pc);
}

static void print_packet_rows(const struct report *r, FILE *out, size_t max_rows)
{
	size_t shown = r->npk < max_rows ? r->npk : max_rows;

	fprintf(out, "\nper packet (first %zu of %zu; guest time from its first stage, us):\n", shown, r->npk);
	for (size_t i = 0; i < shown; i++) {
		const struct packet *p = &r->pk[i];

		fprintf(out, "  skb %" PRIx64 " cpu %u", p->skb, p->vcpu);
		if (p->proto[0])
			fprintf(out, " %s %s:%" PRIu64 " > %s:%" PRIu64 " len %" PRIu64, p->proto, p->saddr, p->sport,
				p->daddr, p->dport, p->len);
		fprintf(out, ": %s%s%s\n   ", report_verdict_names[p->verdict], p->detail[0] ? " " : "", p->detail);
		for (size_t k = 0; k < p->nhops; k++)
			fprintf(out, " %s(+%.3f)", p->hops[k].fn, (double)(p->hops[k].ns - p->hops[0].ns) / 1e3);
		fputc('\n', out);
	}
}

void report_verdict(const struct report *r, size_t packet, char *out, size_t len)
{
	const struct packet *p = packet < r->npk ? &r->pk[packet] : NULL;

	snprintf(out, len, "%s%s%s", p ? report_verdict_names[p->verdict] : "unknown", p && p->detail[0] ? " " : "",
		 p ? p->detail : "");
}

static uint64_t percentile(const struct latency *l, unsigned int pct)
{
	size_t i = (l->n * pct + 99) / 100;

	return l->v[i ? i - 1 : 0];
}

static void print_latencies(const struct report *r, FILE *out)
{
	if (!r->nlat)
		return;
	fprintf(out, "\nstage to stage, guest time in us %39s min   median      p99      max  count\n", "");
	for (size_t i = 0; i < r->nlat; i++) {
		const struct latency *l = &r->lat[i];

		fprintf(out, "  %-30.30s -> %-30.30s %8.3f %8.3f %8.3f %8.3f %6zu\n", l->from, l->to, l->v[0] / 1e3,
			percentile(l, 50) / 1e3, percentile(l, 99) / 1e3, l->v[l->n - 1] / 1e3, l->n);
	}
}

static void print_drops(const struct report *r, FILE *out)
{
	if (!r->ndrops)
		return;
	fprintf(out, "\ndrops by reason:\n");
	for (size_t i = 0; i < r->ndrops; i++)
		fprintf(out, "  %6" PRIu64 "  %s in %s\n", r->drops[i].n, r->drops[i].reason, r->drops[i].where);
}

void report_print(const struct report *r, FILE *out, size_t max_rows)
{
	uint64_t verdicts[5] = { 0 };

	if (!r->npk) {
		fprintf(out, "packets: none seen (no stop carried an skb)\n");
		return;
	}
	print_paths(r, out);
	for (size_t i = 0; i < r->npk; i++)
		verdicts[r->pk[i].verdict]++;
	fprintf(out, "verdicts:");
	for (int v = 0; v < 5; v++)
		if (verdicts[v])
			fprintf(out, " %s %" PRIu64 ";", report_verdict_names[v], verdicts[v]);
	fputc('\n', out);
	if (max_rows)
		print_packet_rows(r, out, max_rows);
	if (!r->guest_time)
		fprintf(out, "\n(no guest time in this trace: latencies need a guest kstep started under TCG)\n");
	print_latencies(r, out);
	print_drops(r, out);
}

void report_print_netdev_times(const struct report *r, FILE *out)
{
	if (!r->nnd) {
		fprintf(out, "netdev-times: no NET_RX softirq in this trace (trace with: -p rx-full)\n");
		return;
	}
	for (size_t i = 0; i < r->nnd; i++) {
		const struct nd_block *b = &r->nd[i];
		uint64_t base = b->irq_ns ? b->irq_ns : b->entry_ns;

		fprintf(out, "%.6fsec cpu=%u\n", base / 1e9, b->cpu);
		if (b->irq_ns)
			fprintf(out, "  irq_entry(+0.000msec %s)\n         |\n", b->irq);
		fprintf(out, "  softirq_entry(+%.3fmsec)\n         |\n", (b->entry_ns - base) / 1e6);
		for (size_t k = 0; k < b->n; k++) {
			const struct nd_line *l = &b->lines[k];
			bool skb_line = !strncmp(l->text, "netif", 5);

			fprintf(out, skb_line ? "         |---" : "  ");
			fprintf(out, l->text, (l->ns - base) / 1e6);
			fputc('\n', out);
			if (l->follow_ns)
				fprintf(out, "         |            |\n         |      %s(+%.3fmsec)\n", l->follow,
					(l->follow_ns - base) / 1e6);
			fprintf(out, "         |\n");
		}
		if (b->exit_ns)
			fprintf(out, "  softirq_exit(+%.3fmsec)\n", (b->exit_ns - base) / 1e6);
		fputc('\n', out);
	}
}

/* ---- JSON ----------------------------------------------------------------------------------- */

static json_object *packet_json(const struct packet *p)
{
	json_object *o = json_object_new_object(), *path = json_object_new_array();
	char skb[32];

	snprintf(skb, sizeof(skb), "0x%" PRIx64, p->skb);
	json_object_object_add(o, "skb", json_object_new_string(skb));
	json_object_object_add(o, "cpu", json_object_new_int((int)p->vcpu));
	json_object_object_add(o, "verdict", json_object_new_string(report_verdict_names[p->verdict]));
	json_object_object_add(o, "detail", json_object_new_string(p->detail));
	if (p->proto[0]) {
		json_object_object_add(o, "proto", json_object_new_string(p->proto));
		json_object_object_add(o, "saddr", json_object_new_string(p->saddr));
		json_object_object_add(o, "daddr", json_object_new_string(p->daddr));
		json_object_object_add(o, "sport", json_object_new_int64((int64_t)p->sport));
		json_object_object_add(o, "dport", json_object_new_int64((int64_t)p->dport));
		json_object_object_add(o, "len", json_object_new_int64((int64_t)p->len));
	}
	for (size_t k = 0; k < p->nhops; k++) {
		json_object *h = json_object_new_object();

		json_object_object_add(h, "stage", json_object_new_string(p->hops[k].fn));
		json_object_object_add(h, "guest_ns", json_object_new_int64((int64_t)p->hops[k].ns));
		json_object_object_add(h, "offset_ns", json_object_new_int64((int64_t)(p->hops[k].ns - p->hops[0].ns)));
		json_object_array_add(path, h);
	}
	json_object_object_add(o, "path", path);
	return o;
}

int report_print_json(const struct report *r, FILE *out)
{
	json_object *root = json_object_new_object(), *pk = json_object_new_array(), *lat = json_object_new_array(),
		    *drops = json_object_new_array();

	for (size_t i = 0; i < r->npk; i++)
		json_object_array_add(pk, packet_json(&r->pk[i]));
	for (size_t i = 0; i < r->nlat; i++) {
		const struct latency *l = &r->lat[i];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "from", json_object_new_string(l->from));
		json_object_object_add(o, "to", json_object_new_string(l->to));
		json_object_object_add(o, "count", json_object_new_int64((int64_t)l->n));
		json_object_object_add(o, "min_ns", json_object_new_int64((int64_t)l->v[0]));
		json_object_object_add(o, "median_ns", json_object_new_int64((int64_t)percentile(l, 50)));
		json_object_object_add(o, "p99_ns", json_object_new_int64((int64_t)percentile(l, 99)));
		json_object_object_add(o, "max_ns", json_object_new_int64((int64_t)l->v[l->n - 1]));
		json_object_array_add(lat, o);
	}
	for (size_t i = 0; i < r->ndrops; i++) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "reason", json_object_new_string(r->drops[i].reason));
		json_object_object_add(o, "where", json_object_new_string(r->drops[i].where));
		json_object_object_add(o, "count", json_object_new_int64((int64_t)r->drops[i].n));
		json_object_array_add(drops, o);
	}
	json_object_object_add(root, "events", json_object_new_int64((int64_t)r->events));
	json_object_object_add(root, "cut_bytes", json_object_new_int64((int64_t)r->cut));
	json_object_object_add(root, "guest_time", json_object_new_boolean(r->guest_time));
	json_object_object_add(root, "packets", pk);
	json_object_object_add(root, "latencies", lat);
	json_object_object_add(root, "drops", drops);
	if (r->steps)
		json_object_object_add(root, "calltree", calltree_json(r->step_tree));
	fprintf(out, "%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
	json_object_put(root);
	return 0;
}
