// SPDX-License-Identifier: MIT
/*
 * target_desc: a target description (GDB manual G, "Target Descriptions")
 * parsed into the register layout (reglayout.h), following xi:include
 * through the caller's fetch: socket-free, fuzzed (fuzz_tdesc).
 */
#include <errno.h>
#include <string.h>

#include <libxml/parser.h>

#include "target.h"

/* Nested xi:include deeper than this is a loop. */
#define TARGET_MAX_INCLUDE_DEPTH 8

struct desc_parse {
	struct target_desc *d;
	target_fetch_fn fetch;
	void *ctx;
	unsigned int next_regnum;
	char *err;
	size_t errlen;
};

static int desc_add_reg(struct desc_parse *p, xmlNode *n)
{
	xmlChar *name = xmlGetProp(n, BAD_CAST "name");
	xmlChar *bits = xmlGetProp(n, BAD_CAST "bitsize");
	xmlChar *regnum = xmlGetProp(n, BAD_CAST "regnum");
	struct target_reg *tmp, *r;
	int err = 0;
	char *end;

	if (!name || !bits) {
		snprintf(p->err, p->errlen, "target description: <reg> without name or bitsize");
		err = -EINVAL;
		goto out;
	}
	tmp = realloc(p->d->regs, (p->d->nregs + 1) * sizeof(*tmp));
	if (!tmp) {
		err = -ENOMEM;
		goto out;
	}
	p->d->regs = tmp;
	r = &p->d->regs[p->d->nregs];
	memset(r, 0, sizeof(*r));
	r->bitsize = (unsigned int)strtoul((char *)bits, &end, 10);
	if (*end || !r->bitsize || r->bitsize % 8 || r->bitsize > 4096) {
		snprintf(p->err, p->errlen, "target description: register %s has bitsize '%s'",
			 (char *)name, (char *)bits);
		err = -EINVAL;
		goto out;
	}
	if (regnum)
		p->next_regnum = (unsigned int)strtoul((char *)regnum, NULL, 0);
	r->regnum = p->next_regnum++;
	r->name = strdup((char *)name);
	if (!r->name) {
		err = -ENOMEM;
		goto out;
	}
	p->d->nregs++;
out:
	xmlFree(name);
	xmlFree(bits);
	xmlFree(regnum);
	return err;
}

static int desc_walk(struct desc_parse *p, xmlNode *node, int depth);

static int desc_parse_doc(struct desc_parse *p, const char *xml, size_t len, const char *name, int depth)
{
	xmlDoc *doc;
	int err;

	if (depth > TARGET_MAX_INCLUDE_DEPTH) {
		snprintf(p->err, p->errlen, "target description: xi:include nested too deep at %s", name);
		return -EINVAL;
	}
	doc = xmlReadMemory(xml, (int)len, name, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc) {
		snprintf(p->err, p->errlen, "target description: %s is not well-formed XML", name);
		return -EINVAL;
	}
	err = desc_walk(p, xmlDocGetRootElement(doc), depth);
	xmlFreeDoc(doc);
	return err;
}

static int desc_walk(struct desc_parse *p, xmlNode *node, int depth)
{
	for (xmlNode *n = node; n; n = n->next) {
		int err = 0;

		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (!xmlStrcmp(n->name, BAD_CAST "reg")) {
			err = desc_add_reg(p, n);
		} else if (!xmlStrcmp(n->name, BAD_CAST "architecture")) {
			xmlChar *arch = xmlNodeGetContent(n);

			free(p->d->arch);
			p->d->arch = arch ? strdup((char *)arch) : NULL;
			xmlFree(arch);
		} else if (!xmlStrcmp(n->name, BAD_CAST "include") ||
			   !xmlStrcmp(n->name, BAD_CAST "xi:include")) {
			/* QEMU uses the xi: prefix without declaring it, so libxml2
			 * keeps it in the element name. */
			xmlChar *href = xmlGetProp(n, BAD_CAST "href");
			size_t len = 0;
			char *text = href && p->fetch ? p->fetch(p->ctx, (char *)href, &len) : NULL;

			if (!text) {
				snprintf(p->err, p->errlen, "target description: cannot read included %s",
					 href ? (char *)href : "(no href)");
				err = -EINVAL;
			} else {
				err = desc_parse_doc(p, text, len, (char *)href, depth + 1);
			}
			free(text);
			xmlFree(href);
		} else if (n->children) {
			err = desc_walk(p, n->children, depth);
		}
		if (err)
			return err;
	}
	return 0;
}

static int reg_cmp(const void *a, const void *b)
{
	const struct target_reg *x = a, *y = b;

	return (x->regnum > y->regnum) - (x->regnum < y->regnum);
}

int target_desc_parse(struct target_desc *d, const char *xml, size_t len,
		      target_fetch_fn fetch, void *ctx, char *err, size_t errlen)
{
	struct desc_parse p = { .d = d, .fetch = fetch, .ctx = ctx, .err = err, .errlen = errlen };
	size_t off = 0;
	int ret;

	memset(d, 0, sizeof(*d));
	ret = desc_parse_doc(&p, xml, len, "target.xml", 0);
	if (!ret && !d->nregs) {
		snprintf(err, errlen, "target description has no registers");
		ret = -EINVAL;
	}
	if (ret) {
		target_desc_free(d);
		return ret;
	}
	/* 'g' carries the registers in regnum order (E.2, the 'g' packet). */
	qsort(d->regs, d->nregs, sizeof(*d->regs), reg_cmp);
	for (size_t i = 0; i < d->nregs; i++) {
		d->regs[i].offset = off;
		off += d->regs[i].bitsize / 8;
	}
	d->g_size = off;
	return 0;
}

void target_desc_free(struct target_desc *d)
{
	for (size_t i = 0; i < d->nregs; i++)
		free(d->regs[i].name);
	free(d->regs);
	free(d->arch);
	memset(d, 0, sizeof(*d));
}

int target_desc_find(const struct target_desc *d, const char *name)
{
	for (size_t i = 0; i < d->nregs; i++)
		if (!strcmp(d->regs[i].name, name))
			return (int)i;
	return -1;
}
