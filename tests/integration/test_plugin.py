# SPDX-License-Identifier: MIT
"""Issue 26: the plugin engine. kstep's QEMU plugin reports probe hits with
their registers and stack while the guest runs on (QEMU 10 from make qemu);
the events are the breakpoint engine's, nothing is lost when kstep falls
behind (the vCPU waits, and the waits are counted), and what the plugin
cannot serve is refused with the reason, or left to the gdbstub with it."""
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

from harness import KSTEP, TREE, babeltrace, events, file_size, kstep, kstep_together, run, test
from test_qemu10 import qemu10

PLUGIN_RE = r"the plugin reported (\d+) hits, kstep read (\d+); a vCPU waited for kstep (\d+) times"


def plugin_counts(stdout):
    m = re.search(PLUGIN_RE, stdout)
    assert m, stdout[-600:]
    return tuple(int(x) for x in m.groups())


def build_plugin(out, *defines):
    """kstep's plugin built as host/Makefile builds it, with @defines (a
    test's variant of it)."""
    flags = run(["pkg-config", "--cflags", "--libs", "glib-2.0", "capstone"]).stdout.split()
    srcs = run(["make", "-s", "-C", os.path.join(TREE, "host"), "print-plugin-srcs"]).stdout.split()
    p = run(["cc", "-std=gnu11", "-D_GNU_SOURCE", "-O2", "-fPIC", "-shared", "-fvisibility=hidden", *defines,
             "-I", os.path.join(TREE, "host"), *srcs, "-o", out, *flags, "-lpthread"], timeout=120)
    assert p.returncode == 0, p.stderr


@test
def test_plugin_hits_are_the_breakpoint_engines_events():
    """The same probes on the same workload, each engine: the plugin's
    events carry the probe's pc in rip, the skb in rdi, the stack words
    from rsp, and backtraces that start as the breakpoint engine's do.
    Each leaves nothing in its runtime directory (its sockets go)."""
    base = tempfile.mkdtemp(prefix="kstep-plugin-")
    rundir = os.path.join(base, "run")
    os.mkdir(rundir, 0o700)
    env = dict(qemu10(), XDG_RUNTIME_DIR=rundir)
    try:
        runs = {}
        for engine in ("plugin", "rsp"):
            d = os.path.join(base, engine)
            p = kstep("trace", "--engine", engine, "-p", "none", "--break", "ip_local_deliver", "--break",
                      "icmp_rcv len=skb->len dev=skb->dev->name proto=skb->protocol:be16 nh=skb->network_header",
                      "--break", "ip_list_rcv", "--break", "ip_rcv_core len=skb->len", "--filter", "len > 100000",
                      "-w", "rx-icmp", "-n", "3", "-o", d, "-q", env=env, timeout=300)
            assert p.returncode == 0, p.stderr[-600:]
            runs[engine] = (p, events(babeltrace(d)))
            left = [os.path.relpath(os.path.join(r, f), rundir) for r, ds, fs in os.walk(rundir) for f in ds + fs]
            assert not left, (engine, left)
        p, evs = runs["plugin"]
        reported, read, _ = plugin_counts(p.stdout)
        filtered = int(re.search(r"(\d+) hits did not match their --filter", p.stdout).group(1))
        assert reported == read == len(evs) + filtered and filtered >= 3, (reported, read, len(evs), filtered)
        assert "with kstep's QEMU plugin" in p.stderr, p.stderr[-400:]
        _, rsp_evs = runs["rsp"]
        for e in evs:
            assert e["regs"]["rip"] == e["pc"] and e["regs"]["rsp"] == e["rsp"], e["pc"]
            assert e["stack0"] != 0 and e["symbol"] != "ip_rcv_core", e["symbol"]
            # ip_list_rcv's skb is the first of its list (read from memory).
            assert e["skb"] == e["regs"]["rdi"] if e["symbol"] != "ip_list_rcv" else e["skb"] not in (0, e["regs"]["rdi"])
        # Fields read from guest memory at each hit, as the breakpoints read them.
        fields = lambda es: sorted(tuple(e["args"][k] for k in ("len", "dev", "proto", "nh"))
                                   for e in es if e["symbol"] == "icmp_rcv")
        assert fields(evs) == fields(runs["rsp"][1]) and fields(evs)[0][:3] == (64, "eth0", 2048), fields(evs)
        icmp = [e for e in evs if e["symbol"] == "icmp_rcv"]
        theirs = [e for e in rsp_evs if e["symbol"] == "icmp_rcv"]
        assert len(icmp) == 3 and len(theirs) == 3, (len(icmp), len(theirs))
        # From icmp_rcv down to net_rx_action the path is the packet's, not
        # the moment's: both engines name the same frames.
        names = lambda e: [f.split("+")[0] for f in e["bt"]]
        def upto_softirq(e):
            n = names(e)
            return n[:n.index("net_rx_action") + 1] if "net_rx_action" in n else n
        assert {tuple(upto_softirq(e)) for e in icmp} == {tuple(upto_softirq(e)) for e in theirs}, \
            ([upto_softirq(e) for e in icmp][:1], [upto_softirq(e) for e in theirs][:1])
    finally:
        shutil.rmtree(base)


@test
def test_plugin_waits_for_a_slow_kstep_and_loses_nothing():
    """kstep stopped (SIGSTOP) for two seconds in a UDP flood (rx-udp-flood:
    the guest's full packet rate, with fields fetched): the plugin's socket
    fills, the vCPU waits for kstep, and once kstep reads again every hit
    is an event, with its fields."""
    env = dict(os.environ, **qemu10())
    d = tempfile.mkdtemp(prefix="kstep-plugin-")
    try:
        proc = subprocess.Popen([KSTEP, "trace", "--engine", "plugin", "-p", "none", "--break",
                                 "ip_rcv len=skb->len name=skb->dev->name", "-w", "rx-udp-flood", "-n", "20000",
                                 "-o", d, "-q"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 120
        while file_size(os.path.join(d, "stream_0")) < (1 << 20) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(2)
        os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-600:]
        reported, read, waits = plugin_counts(out)
        evs = events(babeltrace(d))
        assert waits > 0, out[-400:]
        assert reported == read == len(evs) >= 20000, (reported, read, len(evs))
        # 64-byte datagrams over loopback: 92 bytes at ip_rcv, 20 of them IP's, 8 UDP's.
        flood = [e for e in evs if e["args"].get("len") == 92 and e["args"].get("name") == "lo"]
        assert len(flood) >= 20000, (len(flood), evs[0]["args"])
        assert re.search(r"\d+ stops in [\d.]+ s \(\d+/s; \d+/s from the first stop\)", out), out[-400:]
    finally:
        shutil.rmtree(d)


@test
def test_plugin_return_probes_are_the_gdbstub_ones_on_a_replay():
    """%return through the plugin: it keeps each call's return address and
    reports the return when the vCPU gets there with the call's frame gone
    (the guest never stops). On one recording, the two engines give the
    same returns: where, the value returned, registers, backtrace, and the
    call's guest time."""
    env = qemu10()
    rec = tempfile.mkdtemp(prefix="kstep-plret-")
    try:
        p = kstep("record", "--workload", "rx-udp", "--size", "5", "-o", rec, "--force", "-q", env=env, timeout=300)
        assert p.returncode == 0, p.stderr[-600:]
        probes = ["-p", "none", "-b", "udp_rcv%return", "-b", "__sys_sendto%return len=$retval", "-b", "ip_rcv"]
        runs = [os.path.join(rec, engine) for engine in ("plugin", "rsp")]
        done = kstep_together(*[("trace", "--engine", engine, *probes, "--replay", rec, "--pin", "off", "-q",
                                 "-o", d) for engine, d in zip(("plugin", "rsp"), runs)], env=env, timeout=600)
        for p in done:
            assert p.returncode == 0, p.stderr[-600:]
        mine, theirs = (events(babeltrace(d)) for d in runs)

        def seen(e):
            regs = dict(e["regs"], eflags=e["regs"]["eflags"] & ~0x8d5)
            return (e["event"], e["pc"], e["symbol"], sorted(regs.items()), e["bt"], e["args"].get("retval"),
                    e["args"].get("len"))
        assert len(mine) == len(theirs) > 20 and [seen(e) for e in mine] == [seen(e) for e in theirs], \
            next((a, b) for a, b in zip(map(seen, mine), map(seen, theirs)) if a != b)
        returns = [(a, b) for a, b in zip(mine, theirs) if a["kind"] == "return"]
        # TFTP's requests and acks, then rxload's 1400-byte datagrams.
        assert len(returns) > 10 and 1400 in {a["args"]["len"] for a, _ in returns if a["event"] == "__sys_sendto"}, \
            [a["args"] for a, _ in returns][:3]
        # The calls' guest time: the plugin's count and QEMU's agree but
        # for an instruction that faulted and ran again (8 ns each).
        assert all(abs(a["args"]["duration_ns"] - b["args"]["duration_ns"]) <= 80 for a, b in returns), \
            [(a["args"]["duration_ns"], b["args"]["duration_ns"]) for a, b in returns][:5]
    finally:
        shutil.rmtree(rec)


@test
def test_what_the_plugin_cannot_serve_is_refused_or_left_to_the_gdbstub():
    out = tempfile.mkdtemp(prefix="kstep-plugin-")
    try:
        # QEMU 7.2 (the system's) named: no memory reads for plugins.
        p = kstep("trace", "--engine", "plugin", "-p", "none", "--break", "icmp_rcv", "-o", out + "/a",
                  env={"QEMU": "qemu-system-x86_64"}, timeout=60)
        assert p.returncode == 2 and "QEMU 7.2 has no plugin memory reads" in p.stderr, p.stderr
        # None named: --engine plugin takes the QEMU 10 of make qemu beside the images.
        e = dict(os.environ)
        e.pop("QEMU", None)
        p = subprocess.run([KSTEP, "trace", "--engine", "plugin", "-p", "none", "--break", "icmp_rcv", "-n", "1",
                            "--max-stops", "1", "-o", out + "/g"], env=e, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0 and "images/qemu/bin/qemu-system-x86_64 (the system's is too old" in p.stderr, \
            p.stderr[-600:]
        p = kstep("trace", "-p", "none", "--break", "icmp_rcv", "-n", "1", "-o", out + "/b", timeout=300)
        assert p.returncode == 0 and "engine: the gdbstub's (QEMU 7.2" in p.stderr, p.stderr[-600:]
        # What the plugin does not serve yet: why (the oops catch: test_qemu10).
        p = kstep("why", "--engine", "plugin", "--at", "icmp_rcv", "--replay", out, "--addr", "skb->len",
                  "-o", out + "/d", timeout=60)
        assert p.returncode == 2 and "serves kstep trace, step and record so far" in p.stderr, p.stderr
        # A plugin built for API 1: QEMU refuses it at load, and says why.
        old = os.path.join(out, "old.so")
        build_plugin(old, "-DKSTEP_PLUGIN_API=1")
        p = kstep("trace", "--engine", "plugin", "-p", "none", "--break", "icmp_rcv", "-o", out + "/e",
                  env=dict(qemu10(), KSTEP_PLUGIN=old), timeout=120)
        assert p.returncode == 1 and "plugin requires API version 1" in p.stderr, p.stderr[-600:]
        # A plugin that gives up mid-run (one built to run out of memory
        # after 3 hits) says so before it goes: kstep fails at once with its
        # reason, even though the guest would finish; the trace keeps those 3.
        failing = os.path.join(out, "failing.so")
        build_plugin(failing, "-DKSTEP_PLUGIN_FAIL_AFTER=3")
        p = kstep("trace", "--engine", "plugin", "-p", "none", "--break", "icmp_rcv", "-w", "rx-icmp", "-n", "8",
                  "-o", out + "/f", env=dict(qemu10(), KSTEP_PLUGIN=failing), timeout=300)
        assert p.returncode == 1 and "plugin gave up after 3 hits (out of memory) while the guest ran on" \
            in p.stderr, p.stderr[-600:]
        assert len(events(babeltrace(out + "/f"))) == 3
        assert "kstep-plugin: out of memory; reporting stops" in open(out + "/f/guest/serial.log").read()
    finally:
        shutil.rmtree(out)


STEP_RE = r"kstep: (\d+) instructions in ([\d.]+) s \((\d+)/s\): (.*)"


@test
def test_plugin_step_filter_starts_at_the_first_matching_hit():
    """Issue 26: step --filter and --pcap-filter through the plugin. Each
    hit of --at asks kstep, which reads its fields (or packet) from the HIT
    and answers while the vCPU waits: the first udp_rcv hits are TFTP's
    (over the NIC), and the steps start at the first of more than 1000
    bytes, over loopback, as test_step_filter_steps_the_first_matching_hit
    has it through the gdbstub."""
    d = tempfile.mkdtemp(prefix="kstep-plugin-")
    try:
        p = kstep("step", "--engine", "plugin", "--workload", "rx-udp", "--size", "3", "--at", "udp_rcv",
                  "--filter", "skb->len > 1000", "--count", "3", "-o", d, env=qemu10(), timeout=300)
        # --engine plugin named: a run it cannot serve is refused, not left to the gdbstub.
        assert p.returncode == 0 and "3 instructions in" in p.stdout, p.stderr[-600:]
        evs = events(babeltrace(d))
        # The same with --pcap-filter: the packet's bytes come in the HIT.
        p = kstep("step", "--engine", "plugin", "--workload", "rx-udp", "--size", "3", "--at", "ip_rcv",
                  "--pcap-filter", "udp and greater 1000", "--count", "3", "-o", d + "/pcap", env=qemu10(),
                  timeout=300)
        assert p.returncode == 0 and "3 instructions in" in p.stdout, p.stderr[-600:]
        pcap = events(babeltrace(d + "/pcap"))
    finally:
        shutil.rmtree(d)
    assert len(evs) == 3 and evs[0]["symbol"] == "udp_rcv", [e["symbol"] for e in evs]
    assert pcap[0]["symbol"] == "ip_rcv", pcap[0]["symbol"]
    for first in evs[0], pcap[0]:
        bt = " ".join(first["bt"])
        assert "process_backlog" in bt and "e1000" not in bt, bt


def steps_of(d):
    """A step trace's instructions as both engines must record them: pc,
    registers (but the arithmetic flags TCG leaves unsettled where a plugin
    reads them, and the resume flag an interrupt's return leaves set, which
    QEMU's single step clears), stack, code and backtrace (each frame's
    address, name and line: the plugin's are the last step's where a step
    went on in its function, called or returned)."""
    def seen(e):
        regs = dict(e["regs"], eflags=e["regs"]["eflags"] & ~0x108d5)
        return (e["pc"], e["kind"], e["probe"], sorted(regs.items()), e["rsp"], e["stack0"], e["insn"], e["bt"],
                e["bt_end"], e["frames"])
    return [seen(e) for e in events(babeltrace(d))]


def recorded_rx_icmp(prefix):
    """A QEMU 10 recording of rx-icmp, made through the plugin, in a new
    directory named from @prefix: QEMU 10's environment and the directory."""
    env = qemu10()
    rec = tempfile.mkdtemp(prefix=prefix)
    p = kstep("record", "--engine", "plugin", "--workload", "rx-icmp", "--size", "2", "-o", rec, "--force", "-q",
              env=env, timeout=300)
    if p.returncode:
        shutil.rmtree(rec)
    assert p.returncode == 0, p.stderr[-600:]
    return env, rec


def is_irq_entry(step):
    """An external interrupt's first instruction (steps_of's tuple)."""
    where = step[7][0]
    return where.startswith("irq_entries_start") or where in ("asm_common_interrupt", "asm_spurious_interrupt") or \
        (where.startswith("asm_sysvec_") and "+" not in where)


def outside_interrupts(steps):
    """The steps outside interrupt handlers, and each handler's steps
    (from its entry to its iretq). QEMU's single step records the
    instruction an interrupt came in front of twice, before the interrupt
    and after its return (the step from it went to the handler instead):
    the first of the two is left out."""
    outside, handlers, inside, before = [], [], None, None
    for step in steps:
        if inside is None and is_irq_entry(step):
            inside, before = [], (outside[-1] if outside else None)
        if inside is None:
            if before and (before[0], before[4]) == (step[0], step[4]):
                outside.pop()
            before = None
            outside.append(step)
            continue
        inside.append(step)
        if step[6].startswith("iretq"):
            handlers.append(inside)
            inside = None
    return outside, handlers + ([inside] if inside else [])


@test
def test_plugin_steps_are_the_gdbstub_steps_on_a_replay():
    """A 5,000-instruction window from net_rx_action of one recording,
    1,000 from a system call's entry, and 100 back from a call, stepped by
    each engine: the same instructions with the same registers, stack words
    and backtraces. The gdbstub single-steps; the plugin reports every
    instruction of that vCPU while the guest runs on."""
    env, rec = recorded_rx_icmp("kstep-plstep-")
    try:
        # Four replays, two at a time: the windows from net_rx_action and
        # from entry_SYSCALL_64, each by both engines.
        windows = [(at, count, engine, os.path.join(rec, at + "-" + engine))
                   for at, count in (("net_rx_action", "5000"), ("entry_SYSCALL_64", "1000"))
                   for engine in ("plugin", "rsp")]
        done = kstep_together(*[("step", "--engine", engine, "--at", at, "--count", count, "--replay", rec, "-o", d,
                                 "--pin", "off", "-q") for at, count, engine, d in windows], env=env, timeout=600)
        for (at, count, engine, d), p in zip(windows, done):
            assert p.returncode == 0, p.stderr[-600:]
            m = re.search(STEP_RE, p.stdout)
            assert m and m.group(1) == count and "--count" in m.group(4), p.stdout[-400:]
        runs = {engine: steps_of(d) for at, count, engine, d in windows if at == "net_rx_action"}
        mine, theirs = runs["plugin"], runs["rsp"]
        assert len(mine) == len(theirs) == 5000, (len(mine), len(theirs))
        # The two differ only in where an interrupt comes in: the plugin
        # sees it where the guest takes it, after the instruction that
        # raised it (an MMIO write); QEMU's single step takes it one
        # instruction later. Apart from the interrupts' own instructions,
        # the windows are the same instruction for instruction.
        first = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), len(mine))
        assert first == len(mine) or is_irq_entry(mine[first]) or is_irq_entry(theirs[first]), \
            (first, mine[first][:2], theirs[first][:2], [x for x, y in zip(mine[first], theirs[first]) if x != y][:3])
        (out_m, irq_m), (out_t, irq_t) = outside_interrupts(mine), outside_interrupts(theirs)
        n = min(len(out_m), len(out_t))
        assert n > 4000 and out_m[:n] == out_t[:n], (n, next(i for i in range(n) if out_m[i] != out_t[i]))
        assert [[s[0] for s in h] for h in irq_m[:-1]] == [[s[0] for s in h] for h in irq_t[:len(irq_m) - 1]]
        assert len({s[0] for s in mine}) > 300, "a window that goes somewhere"
        # From a system call's entry: swapgs changes gs_base and
        # k_gs_base, which the plugin reads again only after such an
        # instruction or at a block's start (it keeps them otherwise), and
        # the entry code's one-frame walks end on what its registers hold.
        # No interrupt comes in here: the windows are equal throughout.
        runs = {engine: steps_of(d) for at, count, engine, d in windows if at == "entry_SYSCALL_64"}
        mine, theirs = runs["plugin"], runs["rsp"]
        assert len(mine) == 1000 and mine == theirs, \
            next(([i, [k for k in range(len(a)) if a[k] != b[k]]] for i, (a, b) in enumerate(zip(mine, theirs))
                  if a != b), len(theirs))
        gs = {dict(s[3])["gs_base"] for s in mine}
        assert len(gs) == 2 and 0 in gs, "a window with swapgs in it"
        # Back from --at: the 100 instructions before the 5th call of
        # kmem_cache_create (early in start_kernel: two short replays),
        # code that ran at the calls before, translated before the plugin
        # was told to step. Both engines' windows are the same, and end
        # right before the call.
        backs = {engine: os.path.join(rec, "back-" + engine) for engine in ("plugin", "rsp")}
        done = kstep_together(*[("step", "--engine", engine, "--at", "kmem_cache_create", "--hits", "5",
                                 "--backwards", "100", "--replay", rec, "-o", d, "--pin", "off", "-q")
                                for engine, d in backs.items()], env=env, timeout=300)
        for p in done:
            assert p.returncode == 0 and "100 instructions in" in p.stdout, p.stderr[-600:]
        mine, theirs = steps_of(backs["plugin"]), steps_of(backs["rsp"])
        assert len(mine) == 100 and mine == theirs, \
            next(([i, mine[i][7][:1], theirs[i][7][:1]] for i in range(min(len(mine), len(theirs)))
                  if mine[i] != theirs[i]), (len(mine), len(theirs)))
        last = events(babeltrace(backs["plugin"]))[-1]
        assert last["insn"].startswith("call"), last["insn"]
    finally:
        shutil.rmtree(rec)


SMALL_CACHE_QEMU = """#!/bin/sh
# %s with a 1 MiB translation cache (-accel tcg,tb-size=1): it fills and
# is flushed again and again.
n=$#
prev=
for a; do
	[ "$prev" = -accel ] && [ "$a" = tcg ] && a=tcg,tb-size=1
	prev=$a
	set -- "$@" "$a"
done
shift $n
exec %s "$@"
"""


@test
def test_plugin_steps_go_on_across_flushes_of_translated_code():
    """QEMU throws its translated code away when its cache is full (and at
    each gdbstub stop up to 10.1); the plugin then frees what it kept for
    each instruction translated (on_flush), and keeps a copy of the last
    step's. With a 1 MiB cache (flushed once within this window, 16 times
    in this replay), the 20,000 instructions from the 5th call of
    kmem_cache_create are those a full-size cache gives."""
    env, rec = recorded_rx_icmp("kstep-plflush-")
    try:
        small = os.path.join(rec, "qemu-small-cache")
        with open(small, "w") as f:
            f.write(SMALL_CACHE_QEMU % (env["QEMU"], shlex.quote(env["QEMU"])))
        os.chmod(small, 0o755)
        runs = {}
        for name, qemu in (("full", env["QEMU"]), ("small", small)):
            d = os.path.join(rec, name)
            p = kstep("step", "--engine", "plugin", "--at", "kmem_cache_create", "--hits", "5", "--count", "20000",
                      "--replay", rec, "-o", d, "--pin", "off", "-q", env=dict(env, QEMU=qemu), timeout=300)
            assert p.returncode == 0 and "20000 instructions in" in p.stdout, p.stderr[-600:]
            runs[name] = steps_of(d)
        mine, theirs = runs["small"], runs["full"]
        assert len(mine) == 20000 and mine == theirs, \
            next((i for i in range(min(len(mine), len(theirs))) if mine[i] != theirs[i]), (len(mine), len(theirs)))
    finally:
        shutil.rmtree(rec)


@test
def test_plugin_steps_a_whole_net_rx_action_on_rx_tcp():
    """net_rx_action of a TCP connection (its 20th run: the connection's
    segments come from the 10th on) stepped to its return through the
    plugin: every instruction from its first to the ret back to its caller,
    read by report's call tree; with --max-depth 1 the calls below it run
    whole, their first instruction recorded and marked; with --unwind check
    the frames each step carries over agree with a fresh walk."""
    env = qemu10()
    base = tempfile.mkdtemp(prefix="kstep-plstep-")
    try:
        d = os.path.join(base, "all")
        p = kstep("step", "--engine", "plugin", "--at", "net_rx_action", "--hits", "20", "--until-return",
                  "-w", "rx-tcp", "-o", d, env=env, timeout=600)
        assert p.returncode == 0, p.stderr[-600:]
        m = re.search(STEP_RE, p.stdout)
        assert m and m.group(4) == "returned to the caller", p.stdout[-400:]
        evs = events(babeltrace(d))
        n = int(m.group(1))
        assert n == len(evs) > 1000, (n, len(evs))
        # The plugin stops at the return: it sent what kstep wrote, no more.
        sent = re.search(r"the plugin sent (\d+) steps and hits, kstep read (\d+); a vCPU waited", p.stdout)
        assert sent and int(sent.group(1)) == int(sent.group(2)) == n, (sent and sent.groups(), n)
        # From its first instruction to its ret, and the caller's next one.
        assert evs[0]["symbol"] == "net_rx_action" and evs[-2]["insn"].startswith("ret"), (evs[0]["symbol"],
                                                                                          evs[-2]["insn"])
        assert evs[-2]["symbol"].startswith("net_rx_action") and evs[-1]["symbol"] == evs[0]["bt"][1], \
            (evs[-2]["symbol"], evs[-1]["symbol"], evs[0]["bt"][:2])
        # The stack beneath is a read syscall's TCP receive, softirq and GRO,
        # deeper than 32 frames and within the 64 a backtrace records.
        cuts = re.search(r"backtraces: .*", p.stdout)
        assert cuts and "depth-limit" not in cuts.group(0), p.stdout[-400:]
        assert max(len(e["bt"]) for e in evs) > 32 and all(e["bt_end"] != "depth-limit" for e in evs)
        # Each instruction's pc is its own (TCG updates rip once a block).
        assert all(e["regs"]["rip"] == e["pc"] for e in evs)
        # Guest time, from the plugin's instruction count: 8 ns a step, more
        # where an interrupt came in (passed by, as single steps hold it off).
        gaps = [b["guest_ns"] - a["guest_ns"] for a, b in zip(evs, evs[1:])]
        assert evs[0]["guest_ns"] > 10 ** 9 and all(g >= 8 and g % 8 == 0 for g in gaps), sorted(set(gaps))[:5]
        assert gaps.count(8) > 0.99 * len(gaps), sorted(set(gaps))[-5:]
        assert len({e["pc"] for e in evs}) > 200 and any(e["symbol"].startswith("tcp_v4_rcv") for e in evs)
        p = kstep("report", d, timeout=120)
        assert p.returncode == 0 and "net_rx_action" in p.stdout, p.stderr[-400:]
        # --max-depth 1: net_rx_action's own instructions and the first of each call.
        d1 = os.path.join(base, "depth1")
        p = kstep("step", "--engine", "plugin", "--at", "net_rx_action", "--hits", "20", "--until-return",
                  "--max-depth", "1", "-w", "rx-tcp", "-o", d1, "-q", env=env, timeout=600)
        assert p.returncode == 0, p.stderr[-600:]
        over = re.search(r"(\d+) calls deeper than --max-depth 1 ran whole", p.stdout)
        assert over and int(over.group(1)) > 0, p.stdout[-400:]
        evs = events(babeltrace(d1))

        def depth(e):
            names = [f.split("+")[0] for f in e["bt"]]
            return names.index("net_rx_action") if "net_rx_action" in names else 99
        over = [e for e in evs if e["probe"] == "stepped-over"]
        assert over and all(depth(e) == 2 for e in over), [(e["symbol"], e["bt"][:3]) for e in over][:3]
        inside = [e for e in evs[:-1] if e["probe"] == "step"]  # the last is back in the caller
        assert all(depth(e) <= 1 for e in inside), [(e["symbol"], e["bt"][:3]) for e in inside if depth(e) > 1][:3]
        # A step's frames follow from the step before's, past a call or a
        # return, also out of a backtrace cut at --max-stack 16 (the walk
        # went on beneath it): --unwind check walks afresh at each such step.
        # 300,000 steps: 100,000 gave 141-275 fresh walks, and a guest whose
        # timing moved gave 9; 300,000 gave 487-588 here, in the same 9 s.
        p = kstep("step", "--engine", "plugin", "--unwind", "check", "--max-stack", "16", "--at", "net_rx_action",
                  "--hits", "20",
                  "--count", "300000", "-w", "rx-tcp", "-o", os.path.join(base, "check"), "-q", env=env, timeout=600)
        assert p.returncode == 0, p.stderr[-600:]
        m = re.search(r"carried-over frames: .* agreed on (\d+) of (\d+) backtraces(.*)", p.stdout)
        assert m and m.group(1) == m.group(2) and int(m.group(2)) > 50000, p.stdout[-600:]
        cut = re.search(r"depth-limit (\d+)", p.stdout)
        assert cut and int(cut.group(1)) > 10000, p.stdout[-400:]
        m = re.search(r"cfi walks: kstep's cached rows and libdwfl's own agreed on (\d+) of (\d+) backtraces",
                      p.stdout)
        assert m and m.group(1) == m.group(2) and int(m.group(2)) > 100, p.stdout[-600:]
    finally:
        shutil.rmtree(base)


@test
def test_plugin_steps_carry_what_an_exception_entry_set():
    """A page fault between two STEPs (a read() of rxload copies into
    stack pages it has not touched yet): the STEP at asm_exc_page_fault
    carries the registers the entry set, cr2 the address that faulted,
    which the copy's STEP before it has in rdi. After integer code the
    plugin reads only what the instruction wrote; at a block's start rsp
    tells it that an entry came between (ran_on), and it reads them all.
    With a plugin whose ran_on always says no entry came, cr2 here is the
    fault before's. The window is 150,000 instructions from the first
    read, not that read alone: the first read mostly takes 64 KiB and
    faults, but about one boot in six it takes one segment, which may land
    on stack pages already touched before it; the read after it faults."""
    d = tempfile.mkdtemp(prefix="kstep-plfault-")
    try:
        p = kstep("step", "--engine", "plugin", "--at", "tcp_recvmsg", "--count", "150000", "-w", "rx-tcp", "-o", d,
                  "-q", env=qemu10(), timeout=600)
        assert p.returncode == 0, p.stderr[-600:]
        evs = events(babeltrace(d))
        faults = [(a, b) for a, b in zip(evs, evs[1:])
                  if b["symbol"] == "asm_exc_page_fault" and a["insn"].startswith("rep movs")]
        assert faults, sorted({e["symbol"] for e in evs if e["symbol"].startswith("asm_")})
        for before, entry in faults:
            assert entry["regs"]["cr2"] == before["regs"]["rdi"], \
                (hex(entry["regs"]["cr2"]), hex(before["regs"]["rdi"]), hex(before["regs"]["cr2"]))
            assert not entry["regs"]["eflags"] & 0x200  # an interrupt gate clears IF
    finally:
        shutil.rmtree(d)
