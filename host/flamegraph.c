// SPDX-License-Identifier: MIT
/*
 * flamegraph: a call tree drawn by kstep itself as a self-contained SVG, or
 * an HTML page around it: one rectangle a call path, as wide as its count,
 * callers below callees; a tooltip with the counts and source line, click to
 * zoom into a frame, search by regular expression (also from the address:
 * #zoom=NAME, #search=RE). No external script or style: the page works from
 * disk without a network.
 */
#include "flamegraph.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define WIDTH 1200
#define ROW 17
#define TOP 44
#define SIDE 10

struct frames {
	struct calltree_frame *v;
	size_t n, cap;
	bool oom;
};

static void collect(void *ctx, const struct calltree_frame *f)
{
	struct frames *fs = ctx;

	if (fs->n == fs->cap) {
		size_t cap = fs->cap ? 2 * fs->cap : 256;
		struct calltree_frame *tmp = realloc(fs->v, cap * sizeof(*tmp));

		if (!tmp) {
			fs->oom = true;
			return;
		}
		fs->v = tmp;
		fs->cap = cap;
	}
	fs->v[fs->n++] = *f;
}

static void put_escaped(FILE *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", out);
			break;
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '"':
			fputs("&quot;", out);
			break;
		default:
			fputc(*s, out);
		}
	}
}

/* A warm colour of its own for each name, as flame graphs have them. */
static void colour(const char *name, char *out, size_t len)
{
	unsigned int h = 2166136261u;

	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	snprintf(out, len, "rgb(%u,%u,%u)", 205 + h % 50, 80 + (h >> 8) % 130, (h >> 16) % 60);
}

static void put_frame(FILE *out, const struct calltree_frame *f, uint64_t total, unsigned int deepest,
		      const char *(*source)(void *ctx, const char *name), void *ctx)
{
	const char *src = source ? source(ctx, f->name) : NULL;
	char fill[32];

	colour(f->name, fill, sizeof(fill));
	fprintf(out, "<g class=\"f\" data-n=\"");
	put_escaped(out, f->name);
	fprintf(out, "\" data-x=\"%" PRIu64 "\" data-w=\"%" PRIu64 "\" data-d=\"%u\"><title>", f->x, f->width, f->depth);
	put_escaped(out, f->name);
	fprintf(out, ": %" PRIu64 " (%.2f%%), exclusive %" PRIu64, f->width, 100.0 * (double)f->width / (double)total,
		f->exclusive);
	if (src && *src) {
		fputs(", ", out);
		put_escaped(out, src);
	}
	fprintf(out, "</title><rect x=\"0\" y=\"%u\" width=\"0\" height=\"%d\" fill=\"%s\" rx=\"2\"/>"
		     "<text x=\"0\" y=\"%u\"></text></g>\n",
		TOP + (deepest - f->depth) * ROW, ROW - 1, fill, TOP + (deepest - f->depth) * ROW + ROW - 5);
}

/* Lays the frames out for the zoom (x, width, depth) it is given; the
 * search marks the frames whose name matches. */
static const char script[] =
	"<script><![CDATA[\n"
	"(function () {\n"
	"  var W = %d, SIDE = %d, root = document.getElementById('kstep-flamegraph');\n"
	"  var frames = Array.prototype.slice.call(root.querySelectorAll('g.f'));\n"
	"  var total = %" PRIu64 ", info = document.getElementById('info');\n"
	"  function layout(x0, w0, d0) {\n"
	"    var s = (W - 2 * SIDE) / w0;\n"
	"    frames.forEach(function (g) {\n"
	"      var x = +g.dataset.x, w = +g.dataset.w, d = +g.dataset.d;\n"
	"      var inside = d >= d0 && x >= x0 && x + w <= x0 + w0, above = d < d0 && x <= x0 && x + w >= x0 + w0;\n"
	"      g.style.display = inside || above ? '' : 'none';\n"
	"      if (!inside && !above) return;\n"
	"      var nx = above ? SIDE : SIDE + (x - x0) * s, nw = above ? W - 2 * SIDE : w * s;\n"
	"      var r = g.querySelector('rect'), t = g.querySelector('text'), n = g.dataset.n;\n"
	"      r.setAttribute('x', nx); r.setAttribute('width', Math.max(nw - 0.5, 0.1));\n"
	"      t.setAttribute('x', nx + 3);\n"
	"      var fit = Math.floor((nw - 6) / 7);\n"
	"      t.textContent = fit < 3 ? '' : n.length <= fit ? n : n.slice(0, fit - 2) + '..';\n"
	"    });\n"
	"    root.setAttribute('data-rendered', frames.filter(function (g) { return g.style.display === ''; }).length);\n"
	"  }\n"
	"  function search(text) {\n"
	"    var re = null, hits = 0, n = 0;\n"
	"    try { re = text ? new RegExp(text) : null; } catch (e) { re = null; }\n"
	"    frames.forEach(function (g) {\n"
	"      var hit = re !== null && re.test(g.dataset.n);\n"
	"      g.querySelector('rect').style.stroke = hit ? '#c0f' : '';\n"
	"      g.querySelector('rect').style.strokeWidth = hit ? '2' : '';\n"
	"      if (hit) { n++; hits += +g.dataset.w; }\n"
	"    });\n"
	"    info.textContent = re ? n + ' frames match (' + (100 * hits / total).toFixed(1) + '%% counted with nesting)' : '';\n"
	"    root.setAttribute('data-matches', n);\n"
	"  }\n"
	"  frames.forEach(function (g) {\n"
	"    g.addEventListener('click', function () { layout(+g.dataset.x, +g.dataset.w, +g.dataset.d); });\n"
	"  });\n"
	"  document.getElementById('reset').addEventListener('click', function () { layout(0, total, 0); });\n"
	"  var q = document.getElementById('q');\n"
	"  if (q) q.addEventListener('input', function () { search(q.value); });\n"
	"  else document.getElementById('find').addEventListener('click', function () {\n"
	"    search(window.prompt('Search (regular expression)', '') || '');\n"
	"  });\n"
	"  layout(0, total, 0);\n"
	"  /* #search=RE and #zoom=NAME in the address: a view to link to (and test) */\n"
	"  var h = decodeURIComponent(location.hash.slice(1));\n"
	"  if (h.indexOf('search=') === 0) search(h.slice(7));\n"
	"  if (h.indexOf('zoom=') === 0) frames.some(function (g) {\n"
	"    if (g.dataset.n !== h.slice(5)) return false;\n"
	"    layout(+g.dataset.x, +g.dataset.w, +g.dataset.d);\n"
	"    return true;\n"
	"  });\n"
	"})();\n"
	"]]></script>\n";

static void put_svg(FILE *out, const struct frames *fs, uint64_t total, unsigned int deepest, const char *title,
		    bool in_html, const char *(*source)(void *ctx, const char *name), void *ctx)
{
	unsigned int height = TOP + (deepest + 1) * ROW + 10;

	fprintf(out, "<svg id=\"kstep-flamegraph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%u\" "
		     "viewBox=\"0 0 %d %u\" font-family=\"monospace\" font-size=\"12\">\n"
		     "<rect width=\"100%%\" height=\"100%%\" fill=\"#f8f4ec\"/>\n<text x=\"%d\" y=\"18\" font-size=\"15\">",
		WIDTH, height, WIDTH, height, SIDE);
	put_escaped(out, title);
	fprintf(out, "</text>\n<text id=\"reset\" x=\"%d\" y=\"36\" style=\"cursor:pointer\">[reset zoom]</text>\n",
		SIDE);
	if (!in_html)
		fprintf(out, "<text id=\"find\" x=\"%d\" y=\"36\" style=\"cursor:pointer\">[search]</text>\n", SIDE + 110);
	fprintf(out, "<text id=\"info\" x=\"%d\" y=\"36\"></text>\n", SIDE + 190);
	for (size_t i = 0; i < fs->n; i++)
		put_frame(out, &fs->v[i], total, deepest, source, ctx);
	fprintf(out, script, WIDTH, SIDE, total);
	fprintf(out, "</svg>\n");
}

int flamegraph_write(const struct calltree *t, FILE *out, bool html, const char *title,
		     const char *(*source)(void *ctx, const char *name), void *ctx)
{
	struct frames fs = { 0 };
	uint64_t total = calltree_total(t);
	unsigned int deepest = calltree_visit(t, collect, &fs);

	if (fs.oom) {
		free(fs.v);
		return -ENOMEM;
	}
	if (!total)
		total = 1;
	if (html) {
		fprintf(out, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"/><title>");
		put_escaped(out, title);
		fprintf(out, "</title></head>\n<body style=\"margin:0;background:#fff\">\n"
			     "<div style=\"font-family:sans-serif;padding:6px\">search (regular expression): "
			     "<input id=\"q\" size=\"40\"/> click a frame to zoom</div>\n");
	} else {
		fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	}
	put_svg(out, &fs, total, deepest, title, html, source, ctx);
	if (html)
		fprintf(out, "</body></html>\n");
	free(fs.v);
	return ferror(out) ? -EIO : 0;
}
