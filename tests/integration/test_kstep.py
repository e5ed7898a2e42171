# SPDX-License-Identifier: MIT
"""Issue 3: kstep, the RSP driver, against the real guest under TCG."""
import collections
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from harness import (IMAGES, KSTEP, VMLINUX, babeltrace, events, foreign_vmlinux, guest, interrupt_when_grown, kstep,
                     pinned_cpus, qemu_pids, run, test, thread_cpus, wait_for)

# Instructions after which the next pc is not pc + length: branches, and rep
# string instructions, which step one iteration at a time.
BRANCH = re.compile(r"^(j|call|ret|iret|sysret|syscall|int|ud2|loop|jrcxz|hlt|rep)")


def outdir():
    return tempfile.mkdtemp(prefix="kstep-trace-")


def recorded(*args, timeout=300):
    """Run kstep with @args into a fresh trace directory, require success,
    read the trace with babeltrace2 and remove it: (process, events, text)."""
    d = outdir()
    try:
        p = kstep(*args, "-o", d, "-q", timeout=timeout)
        assert p.returncode == 0, p.stderr[-800:]
        text = babeltrace(d)
        return p, events(text), text
    finally:
        shutil.rmtree(d)


def nm_has(name):
    out = run(["nm", VMLINUX], check=True).stdout
    return re.search(r" [tT] %s(\.\w+\.\d+)?$" % re.escape(name), out, re.M) is not None


@test
def test_trace_rx_icmp():
    p, evs, text = recorded("trace", "--workload", "rx-icmp", "--size", "4", "--max-stops", "400")
    assert evs and all(e["kind"] == "stop" for e in evs)
    m = re.search(r"kstep: (\d+) stops", p.stdout)
    assert m and int(m.group(1)) == len(evs), "summary and trace disagree"
    hit = {e["symbol"] for e in evs}
    # Every stage of the ICMP receive path that this vmlinux has is hit.
    for stage in (["e1000_clean_rx_irq"], ["net_rx_action"], ["napi_gro_receive"],
                  ["__netif_receive_skb_core", "__netif_receive_skb_list_core"], ["ip_rcv", "ip_list_rcv"],
                  ["ip_local_deliver"], ["icmp_rcv"], ["skb_copy_datagram_iter"]):
        present = [f for f in stage if nm_has(f)]
        if present:
            assert any(f in hit for f in present), "no stop at %s: hit %s" % (stage, sorted(hit))
    # Backtraces at icmp_rcv go up through ip_local_deliver and then
    # __netif_receive_skb*, in that order.
    icmp = [e for e in evs if e["symbol"] == "icmp_rcv"]
    assert len(icmp) >= 4, "expected a stop per echo reply"
    for e in icmp:
        names = [f.split("+")[0] for f in e["bt"]]
        assert names[0] == "icmp_rcv", names
        assert "ip_local_deliver" in names, names
        core = [i for i, n in enumerate(names) if n.startswith("__netif_receive_skb")]
        assert core and core[0] > names.index("ip_local_deliver"), names
    # One packet carries the same skb from the IP layer to ICMP.
    ip_skbs = {e["skb"] for e in evs if e["symbol"] in ("ip_rcv", "ip_list_rcv") and e["skb"]}
    icmp_skbs = {e["skb"] for e in icmp}
    assert ip_skbs & icmp_skbs, "no skb seen at both ip_rcv/ip_list_rcv and icmp_rcv"
    # A snapshot has every register, rip == pc, and the stack window.
    text = text.splitlines()[0]
    for reg in ("rax", "rsp", "rip", "eflags", "cr3", "fs_base", "st0", "xmm15", "mxcsr"):
        assert " %s = " % reg in text, reg + " missing from the snapshot"
    first = evs[0]
    assert re.search(r"rip = 0x%X\b" % first["pc"], text), "rip differs from pc"
    assert "stack_len = 32," in text, "--stack-bytes 256 means 32 words"
    assert "packets:" in p.stdout and "icmp_rcv" in p.stdout
    # Per packet, the stages follow the receive path forward: a recycled
    # buffer starts a new packet rather than running the path backwards.
    order = {"napi_gro_receive": 3, "__netif_receive_skb_core": 4, "__netif_receive_skb_list_core": 4,
             "ip_rcv": 5, "ip_list_rcv": 5, "ip_local_deliver": 6, "icmp_rcv": 7, "skb_copy_datagram_iter": 8}
    paths = re.findall(r"^ +\d+  (.+?)  \[", p.stdout.split("packets:")[1], re.M)
    assert any("ip_local_deliver -> icmp_rcv" in x for x in paths), paths
    for path in paths:
        places = [order[s] for s in path.split(" -> ") if s in order]
        assert places == sorted(places), path


@test
def test_trace_udp_and_tcp_stages():
    p, evs, _ = recorded("trace", "--workload", "rx-udp", "--size", "20", "--probes", "rx", "--max-stops", "300")
    assert any(e["symbol"] == "udp_rcv" for e in evs), "udp_rcv never hit"
    probes = tempfile.NamedTemporaryFile("w", suffix=".probes", delete=False)
    probes.write("# transport only\ntcp_v4_rcv tcp\nip_rcv ip\n")
    probes.close()
    p, evs, _ = recorded("trace", "--workload", "rx-tcp", "--probes", probes.name, "--max-stops", "40",
                         "--max-stack", "3")
    assert {e["probe"] for e in evs} <= {"tcp", "ip"}, "probes from the file only"
    # --max-stack 3: no backtrace records more, and the deeper ones say so.
    assert max(len(e["bt"]) for e in evs) == 3 and all(e["bt_end"] == "depth-limit" for e in evs if len(e["bt"]) == 3)
    assert "depth-limit" in p.stdout, p.stdout[-400:]
    assert any(e["symbol"] == "tcp_v4_rcv" and e["skb"] for e in evs), "tcp_v4_rcv never hit"
    os.unlink(probes.name)


def check_step_trace(evs, until_return):
    assert evs and all(e["kind"] == "step" for e in evs)
    pushes = pops = 0
    for a, b in zip(evs, evs[1:]):
        if a["vcpu"] == b["vcpu"] and not BRANCH.match(a["insn"]):
            assert b["pc"] == a["pc"] + a["insn_len"], \
                "instruction skipped after %s (%s): 0x%x -> 0x%x" % (a["symbol"], a["insn"], a["pc"], b["pc"])
        # The stack window must be this instruction's, not a stale copy:
        # what a push stored is on top of the next one, what a pop loaded
        # was on top of this one.
        m = re.match(r"push[qw]? %(\w+)$", a["insn"])
        if m and m.group(1) in a["regs"]:
            assert b["stack0"] == a["regs"][m.group(1)], "stale stack after %s at %s" % (a["insn"], a["symbol"])
            pushes += 1
        m = re.match(r"pop[qw]? %(\w+)$", a["insn"])
        if m and m.group(1) in b["regs"] and m.group(1) != "rsp":
            assert b["regs"][m.group(1)] == a["stack0"], "stack top was not what %s loaded" % a["insn"]
            pops += 1
    assert len(evs) < 30 or pushes + pops, "no push/pop seen to check the stack against"
    # Every step has its whole stack window (default 256 bytes), unless the
    # stack ends before that.
    short = [e for e in evs if e["stack_len"] != 32 and (e["rsp"] + 8 * e["stack_len"]) % 16384]
    assert not short, "%d of %d steps without the whole window, first at %s (%s)" % (
        len(short), len(evs), short[0]["symbol"], short[0].get("insn"))
    if until_return:
        # The return address was on top of the stack at entry.
        assert evs[-1]["pc"] == evs[0]["stack0"], "did not end at the return address"
        assert not evs[-1]["symbol"].startswith(evs[0]["symbol"] + "+"), evs[-1]["symbol"]
        assert BRANCH.match(evs[-2]["insn"]) and evs[-2]["insn"].startswith("ret"), evs[-2]


@test
def test_step_until_return():
    # ip_rcv is on the loopback path (rx-udp); e1000 + GRO uses ip_list_rcv.
    p, evs, _ = recorded("step", "--workload", "rx-udp", "--size", "20", "--at", "ip_rcv", "--until-return")
    assert "returned to the caller" in p.stdout, p.stdout
    assert evs[0]["symbol"] == "ip_rcv" and evs[0]["insn"].startswith("push"), evs[0]
    check_step_trace(evs, True)
    n = int(re.search(r"kstep: (\d+) instructions", p.stdout).group(1))
    assert n == len(evs) and n > 50, "%d instructions, %d events" % (n, len(evs))
    # Callees are stepped into, and each step has a backtrace.
    assert any(not e["symbol"].startswith("ip_rcv") for e in evs[1:-1])
    assert all(e["bt"] and e["bt"][0] == e["symbol"] for e in evs)
    # The summary's instructions per function agree with the trace.
    per_fn = collections.Counter(e["symbol"].split("+")[0] for e in evs)
    lines = re.findall(r"^ +(\d+)  (\S+)$", p.stdout.split("instructions per function:")[1], re.M)
    assert lines and [int(c) for c, _ in lines] == sorted((int(c) for c, _ in lines), reverse=True), lines
    assert all(per_fn[fn] == int(c) for c, fn in lines), (lines, per_fn.most_common(5))
    more = re.search(r"^ +(\d+)  \((\d+) more functions\)$", p.stdout, re.M)
    assert sum(int(c) for c, _ in lines) + (int(more.group(1)) if more else 0) == n
    assert len(lines) + (int(more.group(2)) if more else 0) == len(per_fn)


@test
def test_step_count_and_hits():
    p, evs, _ = recorded("step", "--workload", "rx-icmp", "--size", "3", "--at", "icmp_rcv", "--hits", "2",
                         "--count", "120")
    assert len(evs) == 120 and evs[0]["symbol"] == "icmp_rcv"
    check_step_trace(evs, False)


@test
def test_smp2():
    """The guest really has two CPUs; the loopback receive path of a workload
    on CPU 1 stops on vCPU 1, and a step there holds vCPU 0."""
    d = outdir()
    p = kstep("trace", "--smp", "2", "--workload-cpu", "1", "--workload", "rx-udp", "--size", "40", "--probes",
              "none", "--break", "udp_rcv", "--max-stops", "30", "-o", d, "-q")
    assert p.returncode == 0, p.stderr[-600:]
    serial = open(os.path.join(d, "guest", "serial.log"), errors="replace").read()
    assert "smp: Brought up 1 node, 2 CPUs" in serial, re.findall(r".*CPU.*", serial)[:5]
    evs = events(babeltrace(d))
    shutil.rmtree(d)
    assert len(evs) == 30 and {e["symbol"] for e in evs} == {"udp_rcv"}, {e["symbol"] for e in evs}
    assert {e["vcpu"] for e in evs} == {1}, "receive path on CPU 1: %s" % {e["vcpu"] for e in evs}
    p, evs, _ = recorded("step", "--smp", "2", "--workload-cpu", "1", "--workload", "rx-udp", "--size", "40",
                         "--at", "udp_rcv", "--count", "150")
    assert len(evs) == 150 and {e["vcpu"] for e in evs} == {1}, "a step stays on its vCPU"
    check_step_trace(evs, False)


def long_trace(d):
    return subprocess.Popen([KSTEP, "trace", "--workload", "rx-tcp", "--size", "500000000", "-o", d, "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stream_size(d):
    try:
        return os.path.getsize(os.path.join(d, "stream_0"))
    except OSError:
        return 0


@test
def test_ctrl_c_leaves_a_readable_trace():
    d = outdir()
    p = long_trace(d)

    def pinned():
        assert qemu_pids(d), "no QEMU for this trace?"
        # --pin auto (the default): QEMU on a CPU of its own when there is a spare
        cpus = thread_cpus(qemu_pids(os.path.join(d, "guest", "serial.log"))[0])
        assert all(c == pinned_cpus() for c in cpus.values()), cpus

    out, err = interrupt_when_grown(p, os.path.join(d, "stream_0"), 200000, 60, "stops in the trace", pinned)
    assert p.returncode == 130, "Ctrl-C exits 130: %d %s" % (p.returncode, err[-600:])
    assert "interrupted" in out and "the trace holds everything up to here" in err, out + err
    n = int(re.search(r"kstep: (\d+) stops", out).group(1))
    assert len(events(babeltrace(d))) == n
    wait_for(lambda: not qemu_pids(d), 10, "QEMU to go away")
    shutil.rmtree(d)


@test
def test_killed_qemu_leaves_a_readable_trace():
    d = outdir()
    p = long_trace(d)
    wait_for(lambda: stream_size(d) > 200000, 60, "stops in the trace")
    for pid in qemu_pids(os.path.join(d, "guest", "serial.log")):
        os.kill(pid, signal.SIGKILL)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 6, "a killed QEMU exits 6, not %d" % p.returncode
    assert "QEMU was killed by signal 9 before the workload finished" in err, err
    n = int(re.search(r"kstep: (\d+) stops", out).group(1))
    assert n > 0 and len(events(babeltrace(d))) == n
    shutil.rmtree(d)


@test
def test_the_tracing_line_says_which_probes_came_from_the_set_and_which_from_break():
    """A --break adds to the sets (rx,oops unless -p says otherwise): the
    line that starts the run counts each. -p takes a list of sets."""
    counts = {}
    for sets in ("drops", "drops,oops"):
        d = outdir()
        p = kstep("trace", "-p", sets, "--break", "icmp_rcv", "-w", "rx-icmp", "-n", "1", "--max-stops", "2",
                  "-o", d)
        shutil.rmtree(d)
        assert p.returncode == 0, p.stderr[-600:]
        m = re.search(r"tracing (\d+) probes \((\d+) of %s, 1 from --break\) on " % sets, p.stderr)
        assert m and int(m.group(1)) == int(m.group(2)) + 1, p.stderr[-600:]
        counts[sets] = int(m.group(2))
    # oops_begin, __warn and panic come with the oops set.
    assert counts["drops,oops"] == counts["drops"] + 3, counts


@test
def test_unknown_symbol_fails_before_booting():
    t0 = time.monotonic()
    p = kstep("trace", "--break", "no_such_function_xyz", "-o", outdir())
    assert p.returncode == 1
    assert "unknown symbol 'no_such_function_xyz'" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert time.monotonic() - t0 < 5, "it booted a guest first"
    p = kstep("step", "--at", "no_such_function_xyz", "--count", "5")
    assert p.returncode == 1 and "unknown symbol" in p.stderr
    p = kstep("trace", "--break", "icmp_rcv+zz")
    assert p.returncode == 1 and "cannot parse breakpoint" in p.stderr


@test
def test_mismatched_vmlinux_is_refused():
    d = tempfile.mkdtemp(prefix="kstep-it-")
    other = foreign_vmlinux(d)
    # Refused before anything boots, for the right reason.
    t0 = time.monotonic()
    p = kstep("trace", "--vmlinux", other, "--max-stops", "5", "-o", os.path.join(d, "t"), timeout=120)
    assert p.returncode == 1
    assert "is from another build than" in p.stderr and "--vmlinux" in p.stderr, p.stderr
    assert time.monotonic() - t0 < 5 and not os.path.exists(os.path.join(d, "t", "metadata")), "it booted"
    assert not os.path.exists(os.path.join(d, "t", "guest", "serial.log")), "QEMU was started"
    shutil.rmtree(d)


@test
def test_bad_arguments_and_help():
    for args, text in ((["trace", "--max-stops", "abc"], "--max-stops wants a whole number"),
                       (["trace", "--accel", "xen"], "--accel must be auto, kvm or tcg"),
                       (["step", "--pin", "yes"], "--pin must be auto or off"),
                       (["trace", "--stack-bytes", "7"], "--stack-bytes"),
                       (["trace", "--max-stack", "0"], "--max-stack wants a whole number above 0"),
                       (["step", "--max-stack", "65"], "--max-stack must be 1 to 64, not '65'"),
                       (["step", "--count", "5"], "--at SPEC is required"),
                       (["step", "--at", "icmp_rcv"], "--count N, --until SPEC, --until-return or --backwards N"),
                       (["report"], "report wants one trace directory"),
                       (["report", "--rows", "x", "d"], "--rows wants a number"),
                       (["diff", "a"], "diff wants two step trace directories"),
                       (["frobnicate"], "unknown command")):
        p = kstep(*args)
        assert p.returncode == 2 and text in p.stderr, (args, p.stderr)
    p = kstep("trace", "--vmlinux", "/nonexistent/vmlinux")
    assert p.returncode == 1 and "cannot open /nonexistent/vmlinux" in p.stderr, p.stderr
    p = kstep("trace", "--workload", "nope", "-o", outdir(), timeout=60)
    assert p.returncode == 1 and "unknown WORKLOAD 'nope'" in p.stderr, p.stderr
    for cmd in ("trace", "step", "oops", "report", "diff", "record", "why", "dump"):
        p = kstep(cmd, "--help")
        assert p.returncode == 0 and p.stdout.startswith("Usage: kstep " + cmd)
    assert kstep("--help").returncode == 0 and kstep("--version").stdout.startswith("kstep ")


@test
def test_attach_to_a_running_guest():
    with guest("rx-icmp", count=6) as (g, proc):
        p, evs, _ = recorded("trace", "--attach", "unix:" + g["sock"], "--max-stops", "25")
        assert len(evs) == 25
        # Detached: the guest goes on and finishes its workload.
        assert proc.wait(60) == 0, "the guest did not finish after kstep detached"


@test
def test_attach_to_a_guest_that_is_already_running():
    # Connecting stops a running guest and QEMU says so with a stop reply
    # that no request asked for; kstep must not take it for an answer.
    with guest("rx-udp", count=5000000, halt=False) as (g, proc):
        wait_for(lambda: "udp-loop" in open(g["log"]).read() or "tftp received" in open(g["log"]).read(),
                 30, "the workload to run")
        p, evs, _ = recorded("trace", "--attach", "unix:" + g["sock"], "--probes", "none", "--break", "udp_rcv",
                             "--max-stops", "10")
        assert len(evs) == 10 and all(e["symbol"] == "udp_rcv" for e in evs)
        assert re.search(r"\d+\.\d+ ms a stop in kstep", p.stdout), p.stdout


@test
def test_accel_auto_falls_back_or_uses_kvm():
    probe = os.path.join(IMAGES, "accel.probe")
    if os.path.exists(probe):
        os.unlink(probe)
    d = outdir()
    p = kstep("trace", "--accel", "auto", "--max-stops", "3", "-o", d, "-q", timeout=120)
    assert p.returncode == 0, p.stderr[-600:]
    kvm_ok = os.access("/dev/kvm", os.R_OK | os.W_OK)
    if kvm_ok and "falling back to TCG" not in p.stderr:
        assert "on a kvm guest" in p.stderr, p.stderr
    else:
        assert "falling back to TCG" in p.stderr or "no usable /dev/kvm" in p.stderr, p.stderr
        assert "on a tcg guest" in p.stderr
    # Remembered: the second run does not probe again.
    p = kstep("trace", "--accel", "auto", "--max-stops", "3", "-o", d, "-q", "--force", timeout=120)
    assert p.returncode == 0 and "falling back" not in p.stderr, p.stderr
    shutil.rmtree(d)


@test
def test_wire_switch_prints_packets():
    d = outdir()
    p = kstep("trace", "--wire", "--max-stops", "2", "-o", d, "-q")
    assert p.returncode == 0
    assert "=> qSupported" in p.stderr and "<= PacketSize=" in p.stderr and "=> Z0," in p.stderr
    shutil.rmtree(d)


@test
def test_a_stop_reads_memory_in_few_round_trips():
    """At ip_rcv over loopback the frame chain runs from the softirq stack
    onto the task stack: the window comes with the registers, the rest of the
    chain in one burst, not a read per frame."""
    p, evs, _ = recorded("trace", "--wire", "--workload", "rx-udp", "--size", "200", "--probes", "none",
                         "--break", "ip_rcv", "--max-stops", "30")
    reads, n = [], 0
    for line in p.stderr.splitlines():
        if line.startswith("<= T05"):
            reads.append(n)
            n = 0
        elif line.startswith("=> m"):
            n += 1
    reads = sorted(reads[1:])  # after the first stop at ip_rcv
    assert len(reads) >= 20 and reads[len(reads) // 2] <= 2, reads
    assert all(len(e["bt"]) >= 8 for e in evs), "the chain reaches the task stack"
