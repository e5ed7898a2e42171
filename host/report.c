// SPDX-License-Identifier: MIT
/*
 * report: packets, verdicts, latencies, drops and netdev-times from a
 * trace's events (see report.h).
 */

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <string.h>

#include "hash.h"
#include "inlines.h"
#include "stages.h"
#include "trace.h"

#include "report_priv.h"

const char *const report_verdict_names[] = { "in flight", "delivered", "merged by GRO", "dropped", "sent" };

int report_new(struct report **out)
{
	struct report *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	for (int i = 0; i < MAX_VCPUS; i++)
		r->cpu[i].block = -1;
	r->nslots = INTERN_SLOTS_MIN;
	r->names = calloc(r->nslots, sizeof(*r->names));
	if (!r->names || calltree_new(&r->step_tree) || calltree_new(&r->stop_tree)) {
		report_free(r);
		return -ENOMEM;
	}
	*out = r;
	return 0;
}

void report_free(struct report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nslots; i++)
		free((char *)r->names[i].s);
	free(r->names);
	for (size_t i = 0; i < r->nlat; i++)
		free(r->lat[i].v);
	for (size_t i = 0; i < r->nnd; i++)
		free(r->nd[i].lines);
	calltree_free(r->step_tree);
	calltree_free(r->stop_tree);
	inlines_close(r->inl);
	free(r->lat);
	free(r->drops);
	free(r->nd);
	free(r->pk);
	free(r);
}

/* One copy of each name (functions, stages, reasons), compared by pointer. */
static uint64_t name_hash(const char *s, size_t len)
{
	return hash_fnv1a(HASH_FNV1A_START, s, len);
}

/* The slot of @s[0..len) in a table of @nslots, or the empty slot where it
 * goes: the table is never full (it grows at half). */
static size_t name_slot(const struct name *names, size_t nslots, const char *s, size_t len)
{
	size_t i = name_hash(s, len) & (nslots - 1);

	while (names[i].s && (strncmp(names[i].s, s, len) || names[i].s[len]))
		i = (i + 1) & (nslots - 1);
	return i;
}

static int grow_names(struct report *r)
{
	size_t n = r->nslots * 2;
	struct name *bigger = calloc(n, sizeof(*bigger));

	if (!bigger)
		return -ENOMEM;
	for (size_t i = 0; i < r->nslots; i++)
		if (r->names[i].s)
			bigger[name_slot(bigger, n, r->names[i].s, strlen(r->names[i].s))] = r->names[i];
	free(r->names);
	r->names = bigger;
	r->nslots = n;
	return 0;
}

static bool has_control_bytes(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

/* @s[0..len) with its control bytes written \xNN: names come from a trace
 * that others may have written, and go to terminals, SVG and HTML (where
 * XML allows no control character at all). NULL: out of memory. */
static char *printable_copy(const char *s, size_t len)
{
	char *out = malloc(4 * len + 1), *o = out;

	for (size_t i = 0; out && i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			o += snprintf(o, 5, "\\x%02x", c);
		else
			*o++ = (char)c;
	}
	if (out)
		*o = '\0';
	return out;
}

static const char *intern(struct report *r, const char *s, size_t len)
{
	char *copy = has_control_bytes(s, len) ? printable_copy(s, len) : NULL;
	size_t i;

	if (copy) { /* the name as it is shown is the one kept and looked up */
		s = copy;
		len = strlen(copy);
	}
	i = name_slot(r->names, r->nslots, s, len);
	if (r->names[i].s) {
		free(copy);
		return r->names[i].s;
	}
	if (2 * (r->nnames + 1) > r->nslots) {
		if (grow_names(r)) {
			free(copy);
			r->oom = true;
			return "?";
		}
		i = name_slot(r->names, r->nslots, s, len);
	}
	if (!copy && !(copy = strndup(s, len))) {
		r->oom = true;
		return "?";
	}
	r->nnames++;
	return r->names[i].s = copy;
}

/* The entry of an interned name, NULL when there is none. */
static struct name *name_entry(const struct report *r, const char *name)
{
	size_t i = name_slot(r->names, r->nslots, name, strlen(name));

	return r->names[i].s ? &r->names[i] : NULL;
}

static void note_source(struct report *r, const char *fn, const char *src)
{
	struct name *e = name_entry(r, fn);

	if (e && !e->source && src && *src) {
		const char *copy = intern(r, src, strlen(src)); /* may grow the table: look again */

		if ((e = name_entry(r, fn)))
			e->source = copy;
	}
}

const char *report_source(void *ctx, const char *function)
{
	const struct name *e = name_entry(ctx, function);

	return e ? e->source : NULL;
}

/* The function of "name+0x10" (of "name.constprop.0+0x10": GCC's copies
 * are the function to the reader). */
static const char *function_of(struct report *r, const char *symbol)
{
	return intern(r, symbol, strcspn(symbol, "+."));
}

static size_t live_slot(const struct report *r, uint64_t skb)
{
	size_t i = hash_slot(skb >> 6, LIVE_SLOTS);

	while (r->live[i].skb && r->live[i].skb != skb)
		i = (i + 1) % LIVE_SLOTS;
	return i;
}

static struct packet *live_packet(struct report *r, uint64_t skb)
{
	size_t i = live_slot(r, skb);

	return r->live[i].skb ? &r->pk[r->live[i].idx] : NULL;
}

static struct packet *new_packet(struct report *r, uint64_t skb, uint32_t vcpu)
{
	size_t i = live_slot(r, skb);
	struct packet *p;

	if (r->npk == r->cappk) {
		size_t cap = r->cappk ? 2 * r->cappk : 256;
		struct packet *tmp = realloc(r->pk, cap * sizeof(*tmp));

		if (!tmp) {
			r->oom = true;
			return NULL;
		}
		r->pk = tmp;
		r->cappk = cap;
	}
	if (!r->live[i].skb && r->npk >= LIVE_SLOTS * 3 / 4)
		return NULL; /* the table is full of buffers: stop tracking new ones */
	p = &r->pk[r->npk];
	memset(p, 0, sizeof(*p));
	p->skb = skb;
	p->vcpu = vcpu;
	p->nd_block = p->nd_line = -1;
	r->live[i].skb = skb;
	r->live[i].idx = r->npk++;
	return p;
}

static bool has_hop(const struct packet *p, const char *fn)
{
	for (size_t i = 0; i < p->nhops; i++)
		if (p->hops[i].fn == fn)
			return true;
	return false;
}

static const char *text_field(const struct ctf_event *ev, const char *name)
{
	const struct ctf_field *f = ctf_field(ev, name);

	return f && f->is_text ? f->s : NULL;
}

static uint64_t int_field(const struct ctf_event *ev, const char *name, uint64_t dflt)
{
	const struct ctf_field *f = ctf_field(ev, name);

	return f && !f->is_text ? f->u : dflt;
}

static void note_flow(struct packet *p, const struct ctf_event *ev)
{
	const char *proto = text_field(ev, "proto");

	if (!proto || !*proto || p->proto[0])
		return;
	snprintf(p->proto, sizeof(p->proto), "%s", proto);
	snprintf(p->saddr, sizeof(p->saddr), "%s", text_field(ev, "saddr") ? text_field(ev, "saddr") : "");
	snprintf(p->daddr, sizeof(p->daddr), "%s", text_field(ev, "daddr") ? text_field(ev, "daddr") : "");
	p->sport = int_field(ev, "sport", 0);
	p->dport = int_field(ev, "dport", 0);
	p->len = int_field(ev, "len", 0);
}

/* ---- netdev-times ------------------------------------------------------------ */

static struct nd_line *nd_add(struct report *r, long block, uint64_t ns, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static struct nd_line *nd_add(struct report *r, long block, uint64_t ns, const char *fmt, ...)
{
	struct nd_block *b = &r->nd[block];
	struct nd_line *tmp = realloc(b->lines, (b->n + 1) * sizeof(*tmp)), *l;
	va_list ap;

	if (!tmp) {
		r->oom = true;
		return NULL;
	}
	b->lines = tmp;
	l = &b->lines[b->n++];
	memset(l, 0, sizeof(*l));
	l->ns = ns;
	va_start(ap, fmt);
	vsnprintf(l->text, sizeof(l->text), fmt, ap);
	va_end(ap);
	return l;
}

/* A NET_RX softirq starts on @vcpu: a new block, with the interrupt before it. */
static void nd_softirq_entry(struct report *r, struct vcpu_state *c, uint32_t vcpu, uint64_t ns)
{
	struct nd_block *tmp = realloc(r->nd, (r->nnd + 1) * sizeof(*tmp)), *b;

	if (!tmp) {
		r->oom = true;
		return;
	}
	r->nd = tmp;
	b = &r->nd[r->nnd];
	memset(b, 0, sizeof(*b));
	b->cpu = vcpu;
	b->entry_ns = ns;
	b->irq_ns = c->irq_ns;
	snprintf(b->irq, sizeof(b->irq), "%s", c->irq);
	c->irq_ns = 0;
	c->block = (long)r->nnd++;
}

static void nd_stop(struct report *r, const struct ctf_event *ev, struct packet *p)
{
	struct vcpu_state *c = &r->cpu[ev->vcpu % MAX_VCPUS];
	const char *stage = ev->probe;

	if (!strcmp(stage, "irq")) {
		c->irq_ns = ev->guest_ns;
		snprintf(c->irq, sizeof(c->irq), "%s", function_of(r, ev->symbol));
	} else if (!strcmp(stage, "softirq")) {
		nd_softirq_entry(r, c, ev->vcpu, ev->guest_ns);
	} else if (!strcmp(stage, "core") && p && c->block >= 0 && p->nd_block < 0 &&
		   nd_add(r, c->block, ev->guest_ns, "netif_receive_skb(+%%.3fmsec skb=%" PRIx64 " len=%" PRIu64 ")",
			  ev->skb, int_field(ev, "len", 0))) {
		p->nd_block = c->block;
		p->nd_line = (long)r->nd[c->block].n - 1;
	}
}

/* What became of an skb that netdev-times showed: copied, or freed. */
static void nd_follow(struct report *r, struct packet *p, uint64_t ns, const char *what)
{
	struct nd_line *l;

	if (p->nd_block < 0)
		return;
	l = &r->nd[p->nd_block].lines[p->nd_line];
	if (l->follow_ns)
		return;
	l->follow_ns = ns ? ns : 1;
	snprintf(l->follow, sizeof(l->follow), "%s", what);
}

static void nd_return(struct report *r, const struct ctf_event *ev)
{
	struct vcpu_state *c = &r->cpu[ev->vcpu % MAX_VCPUS];

	if (c->block < 0)
		return;
	if (!strcmp(ev->probe, "napi-poll"))
		nd_add(r, c->block, ev->guest_ns, "napi_poll_exit(+%%.3fmsec work=%" PRIu64 ")", int_field(ev, "work", 0));
	else if (!strcmp(ev->probe, "softirq")) {
		r->nd[c->block].exit_ns = ev->guest_ns;
		c->block = -1;
	}
}

/* ---- events ----------------------------------------------------------------------- */

static void set_verdict(struct packet *p, enum verdict v, uint64_t ns, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void set_verdict(struct packet *p, enum verdict v, uint64_t ns, const char *fmt, ...)
{
	va_list ap;

	p->verdict = v;
	p->verdict_ns = ns;
	va_start(ap, fmt);
	vsnprintf(p->detail, sizeof(p->detail), fmt, ap);
	va_end(ap);
}

static void count_drop(struct report *r, const char *reason, const char *where)
{
	struct drop *tmp;

	for (size_t i = 0; i < r->ndrops; i++)
		if (r->drops[i].reason == reason && r->drops[i].where == where) {
			r->drops[i].n++;
			return;
		}
	tmp = realloc(r->drops, (r->ndrops + 1) * sizeof(*tmp));
	if (!tmp) {
		r->oom = true;
		return;
	}
	r->drops = tmp;
	r->drops[r->ndrops++] = (struct drop){ reason, where, 1 };
}

/* The verdict a stage gives its packet. */
static void judge(struct report *r, struct packet *p, const struct ctf_event *ev)
{
	const char *stage = ev->probe;
	char what[128];

	if (!strcmp(stage, "copy")) {
		const char *comm = text_field(ev, "comm");

		if (comm)
			snprintf(what, sizeof(what), "%" PRIu64 ":%s", int_field(ev, "pid", 0), comm);
		else
			snprintf(what, sizeof(what), "a task");
		set_verdict(p, V_DELIVERED, ev->guest_ns, "to %s", what);
		nd_follow(r, p, ev->guest_ns, what);
	} else if (!strcmp(stage, "drop")) {
		const char *reason = text_field(ev, "reason");
		const char *where = ev->nbt > 1 ? ev->bt[1].func : ev->symbol;

		reason = intern(r, reason ? reason : "?", strlen(reason ? reason : "?"));
		where = function_of(r, where);
		count_drop(r, reason, where);
		set_verdict(p, V_DROPPED, ev->guest_ns, "%s in %s", reason, where);
		snprintf(what, sizeof(what), "kfree_skb %s", reason);
		nd_follow(r, p, ev->guest_ns, what);
	} else if (!strcmp(stage, "driver-xmit") || !strcmp(stage, "free")) {
		set_verdict(p, V_SENT, ev->guest_ns, "%s", "");
	}
}

static void add_stop(struct report *r, const struct ctf_event *ev)
{
	unsigned int order = stage_order(ev->probe);
	const char *fn = function_of(r, ev->symbol);
	struct packet *p = ev->skb ? live_packet(r, ev->skb) : NULL;

	if (!strcmp(ev->probe, "gro"))
		r->cpu[ev->vcpu % MAX_VCPUS].gro_skb = ev->skb;
	/* Back where it was, before its last stage, or already finished: the
	 * buffer carries a new packet. */
	if (p && (has_hop(p, fn) || (order && order < p->order) || p->verdict == V_DELIVERED ||
		  p->verdict == V_DROPPED))
		p = NULL;
	if (!p && ev->skb)
		p = new_packet(r, ev->skb, ev->vcpu);
	nd_stop(r, ev, p);
	if (!p)
		return;
	if (p->nhops < MAX_HOPS)
		p->hops[p->nhops++] = (struct hop){ fn, ev->guest_ns };
	if (order > p->order)
		p->order = order;
	note_flow(p, ev);
	judge(r, p, ev);
	if (r->opts.on_packet_stop)
		r->opts.on_packet_stop(r->opts.stop_ctx, ev, (size_t)(p - r->pk));
}

/* GRO's verdict on the skb napi_gro_receive was given. */
static void add_return(struct report *r, const struct ctf_event *ev)
{
	struct vcpu_state *c = &r->cpu[ev->vcpu % MAX_VCPUS];
	const char *gro = text_field(ev, "gro");
	struct packet *p;

	/* napi_gro_receive%return names it $retval */
	if (!gro && !strcmp(ev->name, "kstep:return:napi_gro_receive"))
		gro = text_field(ev, "retval");

	r->returns++;
	nd_return(r, ev);
	if (!gro || !c->gro_skb || !(p = live_packet(r, c->gro_skb)))
		return;
	if (!strcmp(gro, "GRO_MERGED") || !strcmp(gro, "GRO_MERGED_FREE"))
		set_verdict(p, V_MERGED, ev->guest_ns, "%s", gro);
	c->gro_skb = 0;
}

/* The trace's vmlinux for inlined functions, opened at the first step. A
 * trace read away from its vmlinux still gets its tree, without them. */
static struct inlines *step_inlines(struct report *r, const struct ctf_event *ev)
{
	char err[512];

	if (!r->inl_tried) {
		r->inl_tried = true;
		if (r->vmlinux[0] && inlines_open(&r->inl, r->vmlinux, err, sizeof(err)))
			snprintf(r->note, sizeof(r->note), "inlined functions not told apart: %s", err);
	}
	return r->inl && inlines_place(r->inl, ev->pc, ev->symbol) ? r->inl : NULL;
}

/* After a frame at @addr, the functions inlined there ("NAME (inlined)"). */
static size_t add_inlined(struct inlines *inl, uint64_t addr, const char **out, size_t room)
{
	const char *const *names;
	size_t n = inl ? inlines_at(inl, addr, &names) : 0;

	if (n > room)
		n = room;
	if (n)
		memcpy(out, names, n * sizeof(*out));
	return n;
}

/* The event's call path, outermost caller first, into @tree. A step's path
 * starts at the function stepping began in (@r->step_root): backtraces cut
 * at their depth limit would otherwise start at different callers. A step
 * in code inlined from another function counts in that one. */
static void add_path(struct report *r, struct calltree *tree, const struct ctf_event *ev, bool step)
{
	const char *frames[CTF_MAX_FRAMES * (INLINES_MAX + 1)];
	struct inlines *inl = step ? step_inlines(r, ev) : NULL;
	bool over = step && ev->probe && !strcmp(ev->probe, TRACE_STEPPED_OVER); /* counted at the callee */
	size_t n = 0, from = ev->nbt;

	if (step && !r->step_root)
		r->step_root = function_of(r, ev->nbt ? ev->bt[0].func : ev->symbol);
	for (size_t i = ev->nbt; step && i-- > 0;)
		if (function_of(r, ev->bt[i].func) == r->step_root) {
			from = i + 1;
			break;
		}
	if (step && from == ev->nbt) /* outside it (back in its caller): the frame alone */
		from = ev->nbt ? 1 : 0;
	for (size_t i = from; i-- > 0;) {
		frames[n++] = function_of(r, ev->bt[i].func);
		note_source(r, frames[n - 1], ev->bt[i].src);
		/* A caller's frame holds its return address: the call is before it. */
		if (i || !over)
			n += add_inlined(inl, i ? ev->bt[i].addr - 1 : ev->pc, frames + n, INLINES_MAX);
	}
	if (!n)
		frames[n++] = function_of(r, ev->symbol);
	if (over ? calltree_add_over(tree, frames, n) : calltree_add(tree, frames, n, 1))
		r->oom = true;
}

/* A step's guest time is until the next step (@ev): what it took (a whole
 * call, for one stepped over) goes to its node. */
static void add_step_time(struct report *r, const struct ctf_event *ev)
{
	if (r->step_ns && ev->guest_ns >= r->step_ns)
		calltree_add_ns(r->step_tree, r->step_node, ev->guest_ns - r->step_ns);
}

int report_add(struct report *r, const struct ctf_event *ev)
{
	if (r->opts.on_event)
		r->opts.on_event(r->opts.stop_ctx, ev);
	r->events++;
	if (ev->guest_ns)
		r->guest_time = true;
	if (!strcmp(ev->name, "kstep:step"))
		add_step_time(r, ev);
	add_path(r, strcmp(ev->name, "kstep:step") ? r->stop_tree : r->step_tree, ev, !strcmp(ev->name, "kstep:step"));
	if (!strcmp(ev->name, "kstep:step")) {
		r->step_node = calltree_last(r->step_tree);
		r->step_ns = ev->guest_ns;
		r->steps++;
		if (r->opts.annotate &&
		    annotate_add(r->opts.annotate, ev->symbol, ev->pc, ev->insn, ev->nbt ? ev->bt[0].src : ""))
			r->oom = true;
	}
	else if (!strncmp(ev->name, "kstep:return:", 13))
		add_return(r, ev);
	else
		add_stop(r, ev);
	return r->oom ? -ENOMEM : 0;
}

/* ---- finishing ------------------------------------------------------------------------ */

static void add_latency(struct report *r, const char *from, const char *to, uint64_t ns)
{
	struct latency *l = NULL;

	for (size_t i = 0; i < r->nlat && !l; i++)
		if (r->lat[i].from == from && r->lat[i].to == to)
			l = &r->lat[i];
	if (!l) {
		struct latency *tmp = realloc(r->lat, (r->nlat + 1) * sizeof(*tmp));

		if (!tmp) {
			r->oom = true;
			return;
		}
		r->lat = tmp;
		l = &r->lat[r->nlat++];
		*l = (struct latency){ from, to, NULL, 0, 0 };
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		uint64_t *tmp = realloc(l->v, cap * sizeof(*tmp));

		if (!tmp) {
			r->oom = true;
			return;
		}
		l->v = tmp;
		l->cap = cap;
	}
	l->v[l->n++] = ns;
}

static int by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static bool same_flow(const struct packet *a, const struct packet *b)
{
	return a->proto[0] && !strcmp(a->proto, b->proto) && !strcmp(a->saddr, b->saddr) &&
	       !strcmp(a->daddr, b->daddr) && a->sport == b->sport && a->dport == b->dport;
}

/* A merged segment went into the next skb of its flow that GRO let through. */
static void find_merge_targets(struct report *r)
{
	for (size_t i = 0; i < r->npk; i++) {
		struct packet *p = &r->pk[i];

		if (p->verdict != V_MERGED)
			continue;
		for (size_t j = i + 1; j < r->npk; j++)
			if (r->pk[j].verdict != V_MERGED && r->pk[j].nhops > 1 && same_flow(p, &r->pk[j])) {
				size_t len = strlen(p->detail);

				snprintf(p->detail + len, sizeof(p->detail) - len, " into skb %" PRIx64, r->pk[j].skb);
				break;
			}
	}
}

void report_finish(struct report *r)
{
	for (size_t i = 0; i < r->npk; i++) {
		const struct packet *p = &r->pk[i];

		for (size_t k = 1; k < p->nhops && r->guest_time; k++)
			add_latency(r, p->hops[k - 1].fn, p->hops[k].fn, p->hops[k].ns - p->hops[k - 1].ns);
	}
	for (size_t i = 0; i < r->nlat; i++)
		qsort(r->lat[i].v, r->lat[i].n, sizeof(uint64_t), by_value);
	find_merge_targets(r);
}

uint64_t report_packets(const struct report *r)
{
	return r->npk;
}

uint64_t report_events(const struct report *r)
{
	return r->events;
}

size_t report_cut_bytes(const struct report *r)
{
	return r->cut;
}

const char *report_note(const struct report *r)
{
	return r->note;
}

const char *report_vmlinux(const struct report *r)
{
	return r->vmlinux;
}

int report_read_dir(struct report **out, const char *dir, const struct report_opts *o, char *err, size_t errlen)
{
	struct ctf_reader *rd;
	struct ctf_event *ev = malloc(sizeof(*ev));
	struct report *r = NULL;
	int ret = ev ? ctf_open(&rd, dir, err, errlen) : -ENOMEM;

	if (ret) {
		free(ev);
		return ret;
	}
	if ((ret = report_new(&r)))
		goto out;
	if (o)
		r->opts = *o;
	snprintf(r->vmlinux, sizeof(r->vmlinux), "%s", ctf_vmlinux(rd));
	ctf_set_interrupt(rd, r->opts.interrupted);
	while ((ret = ctf_next(rd, ev)) > 0)
		if ((ret = report_add(r, ev)))
			break;
	if (ret < 0) {
		snprintf(err, errlen, "%s: %s", dir, ret == -ENOMEM ? "out of memory" : ctf_error(rd));
		report_free(r);
		goto out;
	}
	r->cut = ctf_trailing(rd);
	report_finish(r);
	*out = r;
	ret = 0;
out:
	ctf_close(rd);
	free(ev);
	return ret;
}

uint64_t report_steps(const struct report *r)
{
	return r->steps;
}

const struct calltree *report_calltree(const struct report *r)
{
	return r->steps ? r->step_tree : r->stop_tree;
}
