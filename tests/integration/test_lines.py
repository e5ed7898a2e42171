# SPDX-License-Identifier: MIT
"""Issue 24: probes on any line and any inlined function, and any variable
in scope, with perf probe's syntax. kstep probe --lines and --vars are
checked against perf probe -L and -V (Debian's linux-perf reads a vmlinux
offline with -k) on receive-path functions; then real guests: a FILE:LINE
probe in ip_rcv_core fetching a local, an inlined helper hit in its
caller, a lazy pattern on the UDP drop branch, steps between two lines,
and a module's line on Debian's kernel."""
import os
import re
import shutil
import tempfile

from harness import IMAGES, babeltrace, events, kstep, need, run, test

VMLINUX = os.path.join(IMAGES, "vmlinux")
SRC = os.path.join(IMAGES, "build", "linux-source-6.1")
RX_FUNCS = ["ip_rcv_core", "ip_rcv_finish_core", "ip_local_deliver", "ip_local_deliver_finish",
            "__netif_receive_skb_core", "__udp4_lib_rcv", "udp_queue_rcv_one_skb", "icmp_rcv", "tcp_v4_rcv",
            "napi_gro_receive", "e1000_clean_rx_irq", "net_rx_action"]


def numbered(text):
    """The line numbers a -L listing marks as probe-able."""
    return [int(m.group(1)) for m in re.finditer(r"^ +(\d+)  ", text, re.M)]


def perf(*args):
    need("perf")
    p = run(["perf", "probe", "-k", VMLINUX, "-s", SRC, *args], timeout=120)
    return p


@test
def test_probe_lines_mark_what_perf_probe_marks():
    for fn in RX_FUNCS:
        ours = kstep("probe", "--lines", fn)
        assert ours.returncode == 0, (fn, ours.stderr)
        theirs = perf("-L", fn)
        assert theirs.returncode == 0, (fn, theirs.stderr[-300:])
        assert numbered(ours.stdout) and numbered(ours.stdout) == numbered(theirs.stdout), \
            (fn, numbered(ours.stdout), numbered(theirs.stdout))
        # The source text is the same too (the listing's own lines).
        assert [l.split("  ", 1)[-1] for l in ours.stdout.splitlines()[1:6]] == \
               [l.split("  ", 1)[-1] for l in theirs.stdout.splitlines()[1:6]], fn
    p = kstep("probe", "--lines", "no_such_function_xyz")
    assert p.returncode == 1 and "no function 'no_such_function_xyz'" in p.stderr, p.stderr


def vars_by_address(text):
    """{offset: {name: note}} from a --vars or -V listing. Ours notes what
    it cannot read ('!why'), constants and whose a variable is."""
    out, at, unreadable = {}, None, False
    for line in text.splitlines():
        m = re.match(r"\t@<[^+>]+\+(0x[0-9a-f]+|\d+)>", line)
        if m:
            at, unreadable = int(m.group(1), 0), False
            out[at] = {}
        elif line.startswith("\tnot readable here:"):
            unreadable = True
        elif line.startswith("\t\t") and at is not None:
            cols = line.strip("\t").split("\t")
            out[at][cols[1]] = ("!" + " ".join(cols[2:])) if unreadable else " ".join(cols[2:])
    return out


@test
def test_probe_vars_name_what_perf_probe_names():
    """Each address perf lists has the same variables in kstep's list, with
    two differences kstep states per variable: it also reads values the
    DWARF gives as constants (perf cannot, "(a constant here)") and those
    of an enclosing inline instance (NF_HOOK's, "(of NF_HOOK)"); and perf
    names a computed location (rt = r13 & ~1) that kstep refuses with the
    DWARF ops it cannot run."""
    specs = ["ip_local_deliver_finish"]
    for fn in ["ip_rcv_core", "__udp4_lib_rcv", "icmp_rcv", "ip_rcv_finish_core", "udp_queue_rcv_one_skb"]:
        lines = numbered(kstep("probe", "--lines", fn).stdout)
        specs += ["%s:%d" % (fn, lines[2]), "%s:%d" % (fn, lines[len(lines) // 2])]
    for spec in specs:
        ours, theirs = kstep("probe", "--vars", spec), perf("-V", spec)
        assert ours.returncode == 0, (spec, ours.stderr)
        if theirs.returncode != 0:
            continue  # perf cannot place it (a line sharing code): kstep may
        o, t = vars_by_address(ours.stdout), vars_by_address(theirs.stdout)
        assert set(o) == set(t), (spec, sorted(o), sorted(t))
        for at in t:
            for name in t[at]:
                assert name in o[at], (spec, at, name, o[at])
                assert not o[at][name].startswith("!") or "cannot read it (DWARF ops" in o[at][name], \
                    (spec, at, name, o[at][name])
            for name, note in o[at].items():
                if name not in t[at] and not note.startswith("!"):
                    assert "(a constant here)" in note or "(of " in note, (spec, at, name, note)


def source_line(path, text):
    """The number of the first line of SRC/@path holding @text."""
    with open(os.path.join(SRC, path)) as f:
        for n, line in enumerate(f, 1):
            if text in line:
                return n
    raise AssertionError("%s not in %s" % (text, path))


def trace(*args, timeout=300):
    d = tempfile.mkdtemp(prefix="kstep-lines-")
    try:
        p = kstep(*args, "-o", d, "-q", timeout=timeout)
        assert p.returncode == 0, p.stderr[-800:]
        return p, events(babeltrace(d))
    finally:
        shutil.rmtree(d)


@test
def test_file_line_fetches_a_local_and_an_inline_names_its_caller():
    line = source_line("net/ipv4/ip_input.c", "len = ntohs(iph->tot_len);")
    p, evs = trace("trace", "-p", "none", "-w", "rx-icmp", "-n", "3",
                   "-b", "ip_input.c:%d proto=iph->protocol tot=iph->tot_len:be16 $vars" % line,
                   "-b", "ip_local_deliver_finish")
    at_line = [e for e in evs if e["event"] == "ip_rcv_core_L%d" % line]
    # iph is a local of ip_rcv_core, in a register there (its location list).
    assert len(at_line) == 3 and all(e["args"]["proto"] == 1 and e["args"]["tot"] == 84 for e in at_line), \
        [e["args"] for e in at_line]
    assert all("iph" in e["args"] and e["args"]["iph"] for e in at_line), at_line[0]["args"]
    assert all(e["symbol"].startswith("ip_rcv_core") for e in at_line), at_line[0]["symbol"]
    # ip_local_deliver_finish has no code of its own: GCC inlined it into
    # ip_local_deliver. Each hit is named by the probe and sits in the caller.
    inl = [e for e in evs if e["event"] == "ip_local_deliver_finish"]
    assert len(inl) == 3 and all(e["symbol"].startswith("ip_local_deliver+0x") for e in inl), \
        [e["symbol"] for e in inl]
    assert all(e["bt"] and e["bt"][0].startswith("ip_local_deliver+") for e in inl), inl[0]["bt"]
    # A local that lives nowhere at the line is refused before the guest runs.
    p = kstep("trace", "-p", "none", "-b", "ip_rcv_core:53 len", "-o", tempfile.mkdtemp(prefix="kstep-lines-"))
    assert p.returncode == 1 and "is optimized out at ip_rcv_core" in p.stderr and "available at" in p.stderr, \
        p.stderr


@test
def test_lazy_pattern_finds_the_udp_drop_branch():
    """rx-drop sends datagrams to UDP port 9, where nothing listens:
    __udp4_lib_rcv frees each with NO_SOCKET on its kfree_skb_reason line,
    which the pattern finds in the source."""
    sites = kstep("probe", "__udp4_lib_rcv;*kfree_skb_reason*")
    assert sites.returncode == 0 and len(sites.stdout.splitlines()) == 1, sites.stdout + sites.stderr
    p, evs = trace("trace", "-p", "none", "-w", "rx-drop", "-n", "4",
                   "-b", "__udp4_lib_rcv;*kfree_skb_reason* reason=drop_reason")
    drops = [e for e in evs if e["event"] and e["event"].startswith("__udp4_lib_rcv_L")]
    # drop_reason is an int there: SKB_DROP_REASON_NO_SOCKET's value, its
    # place in 6.1's enum skb_drop_reason (after SKB_NOT_DROPPED_YET = 0).
    with open(os.path.join(SRC, "include/net/dropreason.h")) as f:
        body = f.read().split("enum skb_drop_reason {")[1].split("};")[0]
    no_socket = re.findall(r"^\s+(SKB_DROP_REASON_\w+),", body, re.M).index("SKB_DROP_REASON_NO_SOCKET") + 1
    assert len(drops) == 4 and all(e["args"]["reason"] == no_socket for e in drops), \
        ([e["args"] for e in drops], no_socket)


@test
def test_step_from_one_line_to_another():
    p, evs = trace("step", "-w", "rx-icmp", "-n", "1", "--at", "ip_rcv_core:58", "--until", "ip_rcv_core:70")
    start = kstep("probe", "ip_rcv_core:58").stdout.split()[0]
    until = kstep("probe", "ip_rcv_core:70").stdout.split()[0]
    assert evs and evs[0]["pc"] == int(start, 16), (evs[:1], start)
    assert int(until, 16) not in [e["pc"] for e in evs[:-1]] and len(evs) < 200, len(evs)
    assert "until" in p.stdout + p.stderr, p.stdout[-300:]


@test
def test_module_line_on_the_distro_kernel():
    """A line of virtio_net's virtnet_poll on Debian's kernel (KASLR, the
    driver a module): resolved from the module's debug info, placed when
    the module is loaded, hit in the module."""
    distro = os.path.join(IMAGES, "distro")
    spec = "virtio_net:virtnet_poll:5"
    sites = kstep("probe", "--vmlinux", os.path.join(distro, "vmlinux"), spec)
    assert sites.returncode == 0, sites.stderr
    offsets = set(re.findall(r"virtio_net:virtnet_poll\+(0x[0-9a-f]+)", sites.stdout))
    assert offsets, sites.stdout
    # What can be read there: the same variables as perf probe -m KO -V.
    release = open(os.path.join(distro, "release")).read().split()[0]
    ko = run(["find", "/usr/lib/debug/lib/modules/" + release, "-name", "virtio_net.ko"]).stdout.split()[0]
    ours = kstep("probe", "--vmlinux", os.path.join(distro, "vmlinux"), "--vars", spec)
    need("perf")
    theirs = run(["perf", "probe", "-k", os.path.join(distro, "vmlinux"), "-m", ko, "-V", "virtnet_poll:5"])
    assert ours.returncode == 0 and theirs.returncode == 0, ours.stderr + theirs.stderr
    o, t = vars_by_address(ours.stdout), vars_by_address(theirs.stdout)
    assert {a: {n for n, v in d.items() if not v.startswith("!")} for a, d in o.items()} == \
           {a: set(d) for a, d in t.items()}, (o, t)
    # Hit in the module, fetching a parameter and a local through the
    # module's own DWARF (NAPI's budget is 64).
    p, evs = trace("trace", "--images", distro, "--nic", "virtio", "--kaslr", "-w", "rx-icmp", "-n", "2",
                   "-p", "none", "-b", spec + " budget rq", "--max-stops", "4")
    assert evs, p.stdout
    for e in evs:
        m = re.match(r"virtnet_poll\+(0x[0-9a-f]+) \[virtio_net\]", e["symbol"])
        assert m and m.group(1) in offsets, (e["symbol"], offsets)
        assert e["args"]["budget"] == 64 and e["args"]["rq"] >= 0xffff800000000000, e["args"]
