// SPDX-License-Identifier: MIT
#include "report.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Packets in flight at once; older ones are finished when the table fills. */
#define REPORT_LIVE 1024
#define REPORT_PATH_MAX 512

struct live {
	uint64_t skb;
	unsigned int order;   /* of the furthest stage on the path so far */
	char path[REPORT_PATH_MAX];
};

struct path_count {
	char *path;
	uint64_t count;
};

struct report {
	struct live live[REPORT_LIVE];
	size_t nlive;
	struct path_count *paths;
	size_t npaths;
	uint64_t packets;
};

int report_new(struct report **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void report_free(struct report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->npaths; i++)
		free(r->paths[i].path);
	free(r->paths);
	free(r);
}

static int finish(struct report *r, struct live *l)
{
	struct path_count *tmp;

	r->packets++;
	for (size_t i = 0; i < r->npaths; i++)
		if (!strcmp(r->paths[i].path, l->path)) {
			r->paths[i].count++;
			return 0;
		}
	tmp = realloc(r->paths, (r->npaths + 1) * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	r->paths = tmp;
	r->paths[r->npaths].path = strdup(l->path);
	if (!r->paths[r->npaths].path)
		return -ENOMEM;
	r->paths[r->npaths++].count = 1;
	return 0;
}

static bool path_has(const char *path, const char *stage)
{
	size_t n = strlen(stage);

	for (const char *p = path; (p = strstr(p, stage)); p += n)
		if ((p == path || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
			return true;
	return false;
}

int report_add(struct report *r, uint64_t skb, const char *stage, unsigned int order)
{
	struct live *l = NULL;
	int err;

	if (!skb)
		return 0;
	for (size_t i = 0; i < r->nlive; i++)
		if (r->live[i].skb == skb) {
			l = &r->live[i];
			break;
		}
	if (l && (path_has(l->path, stage) || (order && order < l->order))) {
		/* Same buffer, back where it was or before: the previous packet is done. */
		if ((err = finish(r, l)))
			return err;
		l->path[0] = '\0';
		l->order = 0;
	}
	if (!l) {
		if (r->nlive == REPORT_LIVE) {
			if ((err = finish(r, &r->live[0])))
				return err;
			memmove(&r->live[0], &r->live[1], (REPORT_LIVE - 1) * sizeof(r->live[0]));
			r->nlive--;
		}
		l = &r->live[r->nlive++];
		l->skb = skb;
		l->order = 0;
		l->path[0] = '\0';
	}
	if (order > l->order)
		l->order = order;
	size_t len = strlen(l->path);

	if (len + strlen(stage) + 5 < sizeof(l->path))
		snprintf(l->path + len, sizeof(l->path) - len, "%s%s", len ? " -> " : "", stage);
	return 0;
}

static int by_count(const void *a, const void *b)
{
	const struct path_count *x = a, *y = b;

	return (x->count < y->count) - (x->count > y->count);
}

static void flush_live(struct report *r)
{
	for (size_t i = 0; i < r->nlive; i++)
		if (r->live[i].path[0])
			finish(r, &r->live[i]);
	r->nlive = 0;
}

uint64_t report_packets(struct report *r)
{
	flush_live(r);
	return r->packets;
}

void report_print(struct report *r, FILE *out)
{
	flush_live(r);
	if (!r->packets) {
		fprintf(out, "packets: none seen (no stop carried an skb)\n");
		return;
	}
	qsort(r->paths, r->npaths, sizeof(*r->paths), by_count);
	fprintf(out, "packets: %llu, by path through the stages:\n", (unsigned long long)r->packets);
	for (size_t i = 0; i < r->npaths; i++)
		fprintf(out, "  %6llu  %s\n", (unsigned long long)r->paths[i].count, r->paths[i].path);
}
