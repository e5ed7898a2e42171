# SPDX-License-Identifier: MIT
"""Issue 4: gdb attach, rx-path.gdb, kstep oops, and the live oops catch."""
import json
import os
import re
import shutil
import subprocess
import tempfile

from harness import (DECODE, RUN_GUEST, TREE, VMLINUX, babeltrace, events, free_port, guest, kstep, qemu_pids,
                     qmp, run, test, wait_for)
from oopscmp import call_sites, frames

_logs = {}


def oops_log(workload):
    """The serial log of a real crash of the guest (cached per run)."""
    if workload not in _logs:
        d = tempfile.mkdtemp(prefix="kstep-it-")
        p = run([RUN_GUEST], env={"WORKLOAD": workload, "ACCEL": "tcg", "GDB_PORT": str(free_port()),
                                  "KSTEP_RUNDIR": d}, timeout=120)
        shutil.rmtree(d, ignore_errors=True)
        _logs[workload] = p.stdout
    return _logs[workload]


def decode_reference(log):
    p = run([DECODE, VMLINUX], input=log, timeout=300)
    assert p.returncode == 0, p.stderr[-400:]
    return p.stdout


@test
def test_oops_decode_matches_decode_stacktrace():
    log = oops_log("oops") + oops_log("oops-lkdtm")
    assert "sysrq_handle_crash+" in log and "lkdtm_ACCESS_NULL+" in log and "lkdtm_WARNING+" in log
    # As the kernel's script looks addresses up (as printed)...
    ref = frames(decode_reference(log))
    p = kstep("oops", "--raw-addresses", "-", input=log)
    assert p.returncode == 0, p.stderr
    mine = frames(p.stdout)
    assert len(ref) >= 30 and mine == ref, "frames differ:\n%s\n%s" % (ref, mine)
    # ...and at address-1 for return addresses, the call site (the default).
    ref = frames(decode_reference(call_sites(log)))
    p = kstep("oops", "-", input=log)
    assert frames(p.stdout) == ref
    # The output is the log with decoded lines: every original line is kept.
    assert p.stdout.count("Call Trace:") == log.count("Call Trace:")
    assert "[unreliable]" in p.stdout  # '?' entries
    # Code: lines are disassembled with the trapping instruction marked.
    assert re.search(r"\*\s+48 8b 1c 25 00 00 00 00\s+movq 0, %rbx\s+<-- trapping instruction", p.stdout), \
        "lkdtm_ACCESS_NULL's faulting load not marked"
    assert re.search(r"ffffffff[0-9a-f]{8}:\* 0f 0b\s+ud2", p.stdout), "the WARN's ud2 not marked with its address"


@test
def test_oops_json():
    log = oops_log("oops-lkdtm")
    p = kstep("oops", "--json", "-", input=log)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    titles = [r["title"] for r in doc["reports"]]
    assert any(t.startswith("WARNING: CPU:") for t in titles) and any("NULL pointer" in t for t in titles), titles
    null = next(r for r in doc["reports"] if "NULL pointer" in r["title"])
    rip = [f for f in null["frames"] if f["rip"]][0]
    assert rip["function"] == "lkdtm_ACCESS_NULL" and rip["locations"][0]["file"].endswith("lkdtm/perms.c")
    assert any(i["trapping"] and i["text"].startswith("movq") for i in null["code"])


@test
def test_oops_bad_input():
    empty = kstep("oops", "-", input="")
    assert empty.returncode == 1 and "is empty" in empty.stderr, empty.stderr
    garbage = kstep("oops", "-", input="\x00\xff\xfe random \x1b[31m noise\n" * 50 + "".join(map(chr, range(1, 255))))
    assert garbage.returncode == 1 and "no oops, BUG, WARNING or panic report" in garbage.stderr, garbage.stderr
    log = oops_log("oops")
    cut = log[:log.index("Call Trace:") + 400]
    trunc = kstep("oops", "-", input=cut)
    assert trunc.returncode == 0 and "no end marker" in trunc.stderr
    assert frames(trunc.stdout), "the frames before the cut are decoded"
    missing = kstep("oops", "/nonexistent.log")
    assert missing.returncode == 1 and "cannot read /nonexistent.log" in missing.stderr
    module = kstep("oops", "-", input="BUG: x\nCall Trace:\n e1000_clean+0x10/0x700 [e1000]\n nosuchfn+0x1/0x2\n")
    assert "(in module e1000: no debug info for it" in module.stdout and "nosuchfn (not in vmlinux" in module.stdout
    assert "frame(s) in modules were not decoded" in module.stderr, module.stderr
    wrong = kstep("oops", "--vmlinux", "/etc/passwd", "-", input=log)
    assert wrong.returncode == 1 and "not an ELF file" in wrong.stderr


@test
def test_live_oops_catch_freezes_the_guest_for_gdb():
    d = tempfile.mkdtemp(prefix="kstep-trace-")
    rundir = tempfile.mkdtemp(prefix="kstep-run-")
    env = {"XDG_RUNTIME_DIR": rundir}
    p = kstep("trace", "--workload", "oops", "-o", d, "-q", env=env, timeout=120)
    info = {}
    try:
        assert p.returncode == 4, "a caught oops exits 4: %d %s" % (p.returncode, p.stderr[-600:])
        assert "OOPS caught at panic" in p.stderr and "is frozen" in p.stderr, p.stderr
        assert "sysrq_handle_crash" in p.stderr, "the decoded backtrace is printed"
        evs = events(babeltrace(d))
        oops = [e for e in evs if e["probe"] == "oops"]
        assert len(oops) == 1 and oops[0]["symbol"] == "panic" and evs[-1]["probe"] == "oops-end"
        assert any(f.startswith("sysrq_handle_crash") for f in oops[0]["bt"]), oops[0]["bt"]
        env_file = os.path.join(rundir, "kstep-%d" % os.getuid(), "guest.env")
        info = dict(l.split("=", 1) for l in open(env_file).read().split())
        status = qmp(info["QMP_SOCK"], "query-status")["return"]
        assert status["running"] is False, status
        # Scripted gdb through make attach's script: the dying state.
        g = run([os.path.join(TREE, "gdbscripts", "attach.sh"), "-batch", "-ex", "bt", "-ex", "info registers rip",
                 "-ex", "lx-dmesg"], env={"KSTEP_RUNDIR": os.path.dirname(env_file)}, timeout=120)
        out = g.stdout + g.stderr
        # Frozen where panic() has printed its report, before pvpanic runs.
        assert re.search(r"#0 +atomic_notifier_call_chain", out), out[-1500:]
        assert re.search(r"#1 +0x[0-9a-f]+ in panic \(", out), out[-1500:]
        assert re.search(r"#2 +0x[0-9a-f]+ in sysrq_handle_crash", out), out[-1500:]
        assert re.search(r"^rip +0xffffffff[0-9a-f]+ +0x[0-9a-f]+ <atomic_notifier_call_chain", out, re.M), out
        assert "Kernel panic - not syncing: sysrq triggered crash" in out, "lx-dmesg lacks the oops"
    finally:
        # kstep left this QEMU running on purpose: end it, whatever happened.
        try:
            qmp(info["QMP_SOCK"], "quit")
            wait_for(lambda: not qemu_pids(d), 10, "the frozen QEMU to quit")
        except Exception:
            for pid in qemu_pids(d):
                os.kill(pid, 9)
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(rundir, ignore_errors=True)


@test
def test_rx_path_gdb_script():
    with guest("rx-icmp", count=10) as (g, proc):
        p = run(["gdb", "-batch", "-x", os.path.join(TREE, "gdbscripts", "rx-path.gdb"), VMLINUX],
                env={"GDB_TARGET": g["sock"], "KSTEP_RX_LIMIT": "40",
                     "KSTEP_GDBSCRIPTS": os.path.join(TREE, "gdbscripts")}, timeout=180)
        out = p.stdout + p.stderr
        hits = re.findall(r"^kstep-rx: #(\d+) (\S+) skb (0x[0-9a-f]+)(.*)$", out, re.M)
        assert len(hits) == 40, out[-1500:]
        names = {h[1] for h in hits}
        assert "icmp_rcv" in names and names & {"ip_rcv", "ip_list_rcv"}, names
        icmp = [h for h in hits if h[1] == "icmp_rcv"]
        assert all("proto ICMP" in h[3] for h in icmp), icmp
        assert "hit limit 40 reached" in out
        # Detached at the limit: the guest finishes its pings.
        assert proc.wait(60) == 0


@test
def test_kstep_skb_decodes_headers():
    with guest("rx-icmp", count=5) as (g, proc):
        p = run([os.path.join(TREE, "gdbscripts", "attach.sh"), "-batch", "-ex", "hbreak start_kernel",
                 "-ex", "continue", "-ex", "delete", "-ex", "break icmp_rcv", "-ex", "continue",
                 "-ex", "kstep-skb skb", "-ex", "kstep-skb 0", "-ex", "detach"],
                env={"GDB_SOCK": g["sock"]}, timeout=120)
        out = p.stdout + p.stderr
        assert re.search(r"ipv4 +10\.0\.2\.2 -> 10\.0\.2\.15 proto 1 \(ICMP\)", out), out[-1000:]
        assert re.search(r"icmp +type 0 code 0", out), "an echo reply"
        assert "cannot read the skb at 0x0" in out


@test
def test_attached_oops_catch_leaves_the_guest_frozen():
    """Issue 8: attached, a caught oops used to detach (resuming the dying
    guest) and then crash kstep (SIGSEGV)."""
    with guest("oops") as (g, proc):
        d = tempfile.mkdtemp(prefix="kstep-trace-")
        try:
            p = kstep("trace", "--attach", "unix:" + g["sock"], "-o", d, "-q", timeout=120)
            assert p.returncode == 4, "a caught oops exits 4, not %d: %s" % (p.returncode, p.stderr[-600:])
            assert "OOPS caught at panic" in p.stderr and "attach gdb to the same stub" in p.stderr, p.stderr
            assert g["sock"] in p.stderr
            assert proc.poll() is None, "the dying guest was let go"
            assert qmp(g["qmp"], "query-status")["return"]["running"] is False
            evs = events(babeltrace(d))
            assert evs[-1]["probe"] == "oops-end", evs[-1]
        finally:
            shutil.rmtree(d, ignore_errors=True)


@test
def test_oops_sizes_as_kallsyms_prints_them():
    """Issue 8: the size after '/' is kallsyms' distance to the next symbol
    (padding included: the unit test has padded cases; this kernel has no
    padding). A size between the ELF size and the next function is this
    vmlinux's; one outside is named as another build's, not as "outside
    vmlinux"."""
    log = oops_log("oops") + oops_log("oops-lkdtm")
    funcs = sorted({int(f[1], 16): (f[7], int(f[2])) for f in (l.split() for l in run(
        ["readelf", "-sW", VMLINUX]).stdout.splitlines()) if len(f) == 8 and f[3] == "FUNC"}.items())
    span = {n: nxt[0] - a for (a, (n, _)), nxt in zip(funcs, funcs[1:])}
    size = {n: sz for _, (n, sz) in funcs}
    plain = kstep("oops", "-", input=log)
    assert plain.returncode == 0 and "fit" not in plain.stderr, plain.stderr
    name = "sysrq_handle_crash"
    for wrong in (size[name] - 1, span[name] + 0x10):
        bad = re.sub(r"%s\+(0x[0-9a-f]+)/0x[0-9a-f]+" % name, lambda m: "%s+%s/0x%x" % (name, m.group(1), wrong),
                     log)
        p = kstep("oops", "-", input=bad)
        assert "(size 0x%x does not fit this vmlinux's %s: another build?)" % (wrong, name) in p.stdout, \
            p.stdout[-800:]
        assert "sizes that do not fit this vmlinux: another build?" in p.stderr, p.stderr
        assert "outside vmlinux" not in p.stderr
