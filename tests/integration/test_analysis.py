# SPDX-License-Identifier: MIT
"""Issue 12 (its first part): a step trace as a call tree and folded stacks,
checked against the trace's own events."""
import collections
import json
import os
import re
import shutil
import tempfile

from harness import VMLINUX, babeltrace, events, kstep, run, test


def stepped(workload, *args, size="2"):
    """kstep step @args on @workload into a fresh directory: (it, its steps)."""
    d = tempfile.mkdtemp(prefix="kstep-analysis-")
    p = kstep("step", "--workload", workload, "--size", size, *args, "-o", d, "-q")
    assert p.returncode == 0, p.stderr[-600:]
    return d, [e for e in events(babeltrace(d)) if e["kind"] == "step"]


@test
def test_step_call_tree_and_folded_stacks_add_up():
    d, steps = stepped("rx-udp", "--at", "udp_rcv", "--until-return", size="3")
    folded = kstep("report", "--folded", d)
    assert folded.returncode == 0, folded.stderr
    lines = [l.rsplit(" ", 1) for l in folded.stdout.splitlines()]
    assert sum(int(n) for _, n in lines) == len(steps), "folded counts sum to the steps"
    assert all(path.startswith("udp_rcv") for path, _ in lines[:-1] if "udp_rcv" in path)
    # A function's exclusive count, with the functions inlined into it, is
    # the number of steps whose pc is in it.
    in_fn = collections.Counter(re.split(r"[+.]", e["symbol"])[0] for e in steps)
    excl, inlined = collections.Counter(), collections.Counter()
    for path, n in lines:
        frames = path.split(";")
        excl[[f for f in frames if not f.endswith(" (inlined)")][-1]] += int(n)
        if frames[-1].endswith(" (inlined)"):
            inlined[frames[-1][:-len(" (inlined)")]] += int(n)
    for fn in ("__udp4_lib_rcv", "udp_queue_rcv_one_skb", "__udp_enqueue_schedule_skb"):
        assert excl[fn] == in_fn[fn] > 0, (fn, excl[fn], in_fn[fn])
    # Steps in inlined code count in the innermost inlined function, as
    # binutils' addr2line -i tells it from the same DWARF.
    a2l = run(["addr2line", "-i", "-f", "-a", "-e", VMLINUX] + ["0x%x" % e["pc"] for e in steps], timeout=300)
    innermost = collections.Counter()
    for block in re.split(r"^0x[0-9a-f]+\n", a2l.stdout, flags=re.M)[1:]:
        names = block.splitlines()[0::2]
        if len(names) > 1:
            innermost[names[0]] += 1
    assert inlined and inlined == innermost, (inlined.most_common(5), innermost.most_common(5))
    tree = kstep("report", d)
    assert "%d instructions stepped" % len(steps) in tree.stdout, tree.stdout[:400]
    m = re.search(r"^ +(\d+) +(\d+)  +[0-9.]+  udp_rcv$", tree.stdout, re.M)
    assert m and int(m.group(1)) == len(steps) - 1, tree.stdout[:600]  # the last is back in the caller
    assert "    __udp4_lib_rcv" in kstep("report", "--depth", "2", d).stdout
    assert "      udp_unicast_rcv_skb" not in kstep("report", "--depth", "2", d).stdout
    shutil.rmtree(d)


def chromium(url, *args):
    """Headless Chromium on a page from disk (as root it needs --no-sandbox;
    no proxy, so a page that wanted the network would get nothing)."""
    p = run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-proxy-server",
             "--proxy-server=127.0.0.1:9", *args, url], timeout=120)
    assert p.returncode == 0, p.stderr[-600:]
    return p.stdout


@test
def test_flamegraph_renders_in_chromium():
    d, _ = stepped("rx-udp", "--at", "udp_rcv", "--until-return", size="3")
    folded = kstep("report", "--folded", d).stdout
    html, svg = os.path.join(d, "flame.html"), os.path.join(d, "flame.svg")
    for f in (html, svg):
        r = kstep("report", "--flamegraph", f, d)
        assert r.returncode == 0 and "flame graph of" in r.stderr, r.stderr
        assert run(["xmllint", "--noout", f]).returncode == 0, "not well formed: " + f
        text = open(f).read()
        assert "<script src" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    # Every function of the folded stacks is a frame; the page draws them all.
    names = {n for line in folded.splitlines() for n in line.rsplit(" ", 1)[0].split(";")}
    dom = chromium("file://" + html, "--dump-dom")
    frames = re.findall(r'<g class="f" data-n="([^"]+)"', dom)
    assert names == set(frames), names ^ set(frames)
    assert 'data-rendered="%d"' % len(frames) in dom, "the script laid out every frame"
    assert re.search(r'<text x="[\d.]+" y="\d+">udp_rcv</text>', dom), "the root frame is labelled"
    # Zoom and search, from the address.
    zoom = chromium("file://" + html + "#zoom=udp_queue_rcv_one_skb", "--dump-dom")
    shown = int(re.search(r'data-rendered="(\d+)"', zoom).group(1))
    assert 0 < shown < len(frames), shown
    hits = chromium("file://" + html + "#search=^csum", "--dump-dom")
    assert 'data-matches="%d"' % len([n for n in frames if n.startswith("csum")]) in hits
    # A screenshot of it (kept in the trace directory while the test runs).
    png = os.path.join(d, "flame.png")
    chromium("file://" + html, "--window-size=1200,600", "--screenshot=" + png)
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 10000
    # The output file is new, never through a link.
    os.symlink("/etc/passwd", os.path.join(d, "link.svg"))
    r = kstep("report", "--flamegraph", os.path.join(d, "link.svg"), d)
    assert r.returncode == 1 and "cannot create" in r.stderr, r.stderr
    r = kstep("report", "--flamegraph", os.path.join(d, "x.png"), d)
    assert r.returncode == 2 and ".svg or .html" in r.stderr
    shutil.rmtree(d)


@test
def test_annotate_counts_add_up_to_the_function():
    d, steps = stepped("rx-udp", "--at", "udp_rcv", "--until-return", size="3")
    mine = [e for e in steps if re.split(r"[+.]", e["symbol"])[0] == "__udp4_lib_rcv"]
    out = kstep("report", "--annotate", "__udp4_lib_rcv", d).stdout
    assert "annotate __udp4_lib_rcv: %d instructions stepped in it" % len(mine) in out, out[:300]
    per_line, per_insn = out.split("per source line")[1].split("per instruction:")
    lines = re.findall(r"^ +(\d+)  (\S+:\d+) ", per_line, re.M)
    assert sum(int(n) for n, _ in lines) == len(mine), lines
    insns = re.findall(r"^ +(\d+)  ([0-9a-f]{16})  ", per_insn, re.M)
    assert sum(int(n) for n, _ in insns) == len(mine)
    assert {int(a, 16) for _, a in insns} == {e["pc"] for e in mine}
    # The source text is there (the tree make images built from).
    assert re.search(r"net/ipv4/udp\.c:\d+ +.*[;{}(]", per_line), per_line[:800]
    top = kstep("report", "--annotate", "__udp4_lib_rcv", "--top", "3", d).stdout
    assert len(re.findall(r"^ +\d+  \S+:\d+ ", top.split("per instruction:")[0], re.M)) == 3
    shutil.rmtree(d)


def deciding(a, b, d):
    """What diff should name for a branch at step @d-1: each register the
    branch or the instruction before it reads ("%r12", eflags of a jcc),
    where the two runs' steps differ."""
    insns = a[d - 1]["insn"] + " " + a[d - 2]["insn"]
    named = [r for r in a[d - 1]["regs"] if "%" + r in insns or (r == "eflags" and a[d - 1]["insn"][0] == "j")]
    return ["%s A=0x%x B=0x%x" % (r, a[d - 1]["regs"][r], b[d - 1]["regs"][r])
            for r in named if r != "rip" and a[d - 1]["regs"][r] != b[d - 1]["regs"][r]]


def first_difference(ea, eb):
    return next((i for i, (x, y) in enumerate(zip(ea, eb)) if x["pc"] != y["pc"]), None)


@test
def test_diff_finds_where_two_packets_part():
    # The same UDP datagram's path twice. It is the same path unless the
    # boot's random hash mix put another socket in the lookup's slot
    # (one boot in 128, the guest's UDP hash size): diff says what the traces' pcs say.
    u1, e1 = stepped("rx-udp", "--at", "udp_rcv", "--until-return")
    u2, e2 = stepped("rx-udp", "--at", "udp_rcv", "--until-return")
    out = kstep("diff", u1, u2).stdout
    d = first_difference(e1, e2)
    if d is None and len(e1) == len(e2):
        assert "no divergence: the same %d instructions" % len(e1) in out, out[:600]
    elif d is not None:
        assert "first divergence after %d common instructions" % d in out, out[:600]
    else:
        assert "the same %d instructions, then" % min(len(e1), len(e2)) in out, out[:600]
    # An echo reply against a datagram from ip_local_deliver on: the report's
    # divergence is where the traces' pcs first differ, and its branch is
    # the instruction both ran last, decided by the values the two runs
    # had there (not those of any other step).
    a, ea = stepped("rx-icmp", "--at", "ip_local_deliver", "--count", "400")
    b, eb = stepped("rx-udp", "--at", "ip_local_deliver", "--count", "400")
    d = first_difference(ea, eb)
    out = kstep("diff", a, b).stdout
    assert "first divergence after %d common instructions" % d in out, out[:800]
    assert "%016x %s" % (ea[d - 1]["pc"], ea[d - 1]["symbol"]) in out, out[:800]
    assert "A went on to %016x" % ea[d]["pc"] in out and "B went on to %016x" % eb[d]["pc"] in out
    want = deciding(ea, eb, d)
    assert want and re.search(r"values that decided it: %s \(" % re.escape(", ".join(want)), out), (want, out[:800])
    assert re.search(r"^ +\d+ +0 +-\d+  icmp_rcv$", out, re.M) or "icmp_rcv" not in out, out
    assert kstep("diff", a).returncode == 2
    r = kstep("diff", a, tempfile.mkdtemp())
    assert r.returncode == 1 and "not a kstep trace" in r.stderr, r.stderr
    for x in (u1, u2, a, b):
        shutil.rmtree(x)


@test
def test_step_until_a_function():
    d, evs = stepped("rx-udp", "--at", "udp_rcv", "--until", "__udp_enqueue_schedule_skb")
    assert evs[0]["symbol"] == "udp_rcv" and evs[-1]["symbol"] == "__udp_enqueue_schedule_skb", evs[-1]
    assert sum(1 for e in evs if e["symbol"] == "__udp_enqueue_schedule_skb") == 1, "it ends at the first"
    p = kstep("step", "--at", "udp_rcv", "--until", "no_such_fn_xyz", "-o", tempfile.mkdtemp())
    assert p.returncode == 1 and "--until no_such_fn_xyz: no such symbol" in p.stderr, p.stderr
    shutil.rmtree(d)


def depth_below(e, fn):
    """How many calls below @fn the event @e is (-1: not under it)."""
    names = [f.split("+")[0] for f in e["bt"]]
    return names.index(fn) if fn in names else -1


@test
def test_max_depth_runs_deeper_calls_whole():
    # The same datagram stepped into every call, then only one call deep.
    d, full = stepped("rx-udp", "--at", "udp_rcv", "--until-return", size="3")
    d1, cut = stepped("rx-udp", "--at", "udp_rcv", "--until-return", "--max-depth", "1", size="3")
    deep = [depth_below(e, "udp_rcv") for e in full]
    # Every instruction up to one call deep, and the first of each call made there.
    expect = [e["pc"] for i, e in enumerate(full) if deep[i] <= 1 or (deep[i] == 2 and deep[i - 1] == 1)]
    assert [e["pc"] for e in cut] == expect, (len(cut), len(expect))
    over = [e for e in cut if e["probe"] == "stepped-over"]
    assert over and all(depth_below(e, "udp_rcv") == 2 for e in over), [e["bt"] for e in over][:3]
    assert all(e["probe"] == "step" for e in cut if e not in over)
    tree = kstep("report", d1).stdout
    # Each call that ran whole has the guest time it took: to the next step.
    for e in over:
        name = e["bt"][0].split("+")[0]
        took = cut[cut.index(e) + 1]["guest_ns"] - e["guest_ns"]
        m = re.search(r"^ +1 +1 +([0-9.]+)  +%s  \[1 call ran whole" % re.escape(name), tree, re.M)
        assert m and round(float(m.group(1)) * 1000) == took > 8, (name, took, tree)
    m = re.search(r"^ +\d+ +\d+ +([0-9.]+)  udp_rcv$", tree, re.M)
    assert m and round(float(m.group(1)) * 1000) == cut[-1]["guest_ns"] - cut[0]["guest_ns"], tree[:300]
    # The same tree for tools: every step counted once, the calls run whole marked.
    tree = json.loads(kstep("report", "--json", d1).stdout)["calltree"]
    nodes, todo = [], [tree]
    while todo:
        nodes.append(todo.pop())
        todo.extend(nodes[-1]["children"])
    assert tree["inclusive"] == sum(n["exclusive"] for n in nodes) == len(cut), tree["inclusive"]
    assert sum(n.get("ran_whole", 0) for n in nodes) == len(over)
    assert tree["guest_ns"] == cut[-1]["guest_ns"] - cut[0]["guest_ns"]
    p = kstep("step", "--at", "udp_rcv", "--count", "5", "--max-depth", "-1", "-o", tempfile.mkdtemp())
    assert p.returncode == 2 and "--max-depth" in p.stderr, (p.returncode, p.stderr)
    shutil.rmtree(d)
    shutil.rmtree(d1)
