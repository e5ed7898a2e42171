# SPDX-License-Identifier: MIT
"""Issue 14: record once (kstep record: QEMU's record mode), replay exactly
(trace|step --replay), step backwards (--backwards) and find the last write
to a location (kstep why). One rx-tcp recording serves every test; the
replays run two or three at a time (--pin off: no QEMU tied to a CPU)."""
import os
import re
import shutil
import subprocess
import tempfile

from harness import IMAGES, KSTEP, TREE, babeltrace, events, interrupt_when_grown, kstep, qemu_pids, test
from test_qemu10 import qemu10

_recordings = {}


def recording(workload="rx-tcp"):
    """A recording of @workload, made once for all tests."""
    if workload not in _recordings:
        d = tempfile.mkdtemp(prefix="kstep-rec-")
        p = kstep("record", "--workload", workload, "-o", d, "--force", "-q", timeout=300)
        assert p.returncode == 0, p.stderr[-800:]
        assert re.search(r"recorded %s in [\d.]+ s, replay log [\d.]+ MB" % workload, p.stdout), p.stdout
        info = dict(line.split("=", 1) for line in open(os.path.join(d, "recording")).read().splitlines()[1:])
        assert info["state"] == "complete" and info["workload"] == workload, info
        assert int(info["log_bytes"]) == os.path.getsize(os.path.join(d, "replay.bin")) > 0
        _recordings[workload] = d
    return _recordings[workload]


def replays_of(runs, timeout=600):
    """Run kstep commands side by side, each (recording, ARGV) replaying
    that recording; their (process, output dir) pairs, ended, whatever
    their exit status (proc.stdout_text, proc.stderr_text)."""
    started = []
    for rec, argv in runs:
        d = tempfile.mkdtemp(prefix="kstep-replay-")
        cmd = [KSTEP, *argv, "--replay", rec, "--pin", "off", "-q", "-o", d, "--force"]
        started.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), d))
    for proc, d in started:
        proc.stdout_text, proc.stderr_text = proc.communicate(timeout=timeout)
    return started


def replays(*argvs, timeout=600):
    """Run kstep commands side by side (each [workload:]ARGV, rx-tcp's
    recording by default), each succeeding; their (process, output dir)
    pairs."""
    runs = [(recording(argv[0][1:]), argv[1:]) if argv[0].startswith(":") else (recording(), argv) for argv in argvs]
    out = replays_of(runs, timeout)
    for (proc, d), (_, argv) in zip(out, runs):
        assert proc.returncode == 0, (argv, proc.stderr_text[-800:])
    return out


def shared(evs, pcs):
    """What the guest was at each event at @pcs: where, when (its clock),
    every register, the stack's top, the backtrace, the skb. Not what names
    the probe (a set's stage or a --break) or the fields it fetched."""
    return [(e["pc"], e["guest_ns"], e["skb"], sorted(e["regs"].items()), e["rsp"], e["stack0"], e["bt"])
            for e in evs if e["pc"] in pcs]


@test
def test_two_replays_are_identical_and_probes_do_not_perturb():
    rx_full = ["trace", "-p", "rx-full", "-b", "tcp_v4_rcv", "-b", "ip_rcv_core", "-b", "tcp_rcv_established"]
    three = ["trace", "-p", "none", "-b", "tcp_v4_rcv", "-b", "ip_rcv_core", "-b", "tcp_rcv_established"]
    # All three at once: a replay keeps a core busy, and the third alone
    # would leave the other idle for a whole replay.
    (p1, a), (p2, b), (p3, c) = replays(rx_full, rx_full, three)
    for name in ("stream_0", "metadata"):
        assert open(os.path.join(a, name), "rb").read() == open(os.path.join(b, name), "rb").read(), name
    # The guest printed what it printed when recorded, kernel timestamps too.
    recorded = open(os.path.join(recording(), "serial.log"), "rb").read()
    assert open(os.path.join(a, "guest", "serial.log"), "rb").read() == recorded and b"KSTEP-WORKLOAD-DONE" in recorded
    text = babeltrace(a)
    evs = events(text)
    assert {"irq", "driver", "gro", "ip", "tcp", "copy"} <= {e["probe"] for e in evs}, {e["probe"] for e in evs}
    # Event timestamps are the guest's clock, which the stops do not move.
    assert all(e["guest_ns"] > 0 for e in evs)
    assert 'replay = "' in open(os.path.join(a, "metadata")).read()
    small = events(babeltrace(c))
    pcs = {e["pc"] for e in small}
    assert {e["symbol"].split(".")[0] for e in small} <= {"tcp_v4_rcv", "ip_rcv_core", "tcp_rcv_established"}
    assert {"tcp_v4_rcv", "tcp_rcv_established"} <= {e["symbol"] for e in small}
    mine, theirs = shared(small, pcs), shared(evs, pcs)
    assert len(mine) == len(small) > 20 and mine == theirs, (len(mine), len(theirs))
    for d in (a, b, c):
        shutil.rmtree(d)


@test
def test_backwards_ends_right_before_the_point():
    back = ["step", "--at", "tcp_v4_rcv", "--backwards", "100"]
    fwd = ["step", "--at", "ip_rcv_core", "--until", "tcp_v4_rcv"]
    (pb, b), (pf, f) = replays(back, fwd)
    steps_b, steps_f = events(babeltrace(b)), events(babeltrace(f))
    assert len(steps_b) == 100, (len(steps_b), pb.stderr_text[-600:])
    first = next(i for i, e in enumerate(steps_f) if e["symbol"] == "tcp_v4_rcv")
    assert first >= 100, first
    want = steps_f[first - 100:first]
    # pc and instruction: a step's guest_ns counts steps from where stepping
    # began (an interrupt's entry, which runs no instruction, counts as one),
    # and the two began at different places.
    got = [(hex(e["pc"]), e["insn"]) for e in steps_b]
    exp = [(hex(e["pc"]), e["insn"]) for e in want]
    assert got == exp, [(i, a, b) for i, (a, b) in enumerate(zip(got, exp)) if a != b][:4]
    assert "after" in pb.stderr_text and "replay 2: from instruction" in pb.stderr_text
    shutil.rmtree(b)
    shutil.rmtree(f)


@test
def test_why_names_a_store_follows_a_register_and_an_oops_address():
    """Three questions, one replay each, all at once: a field's last store
    before a point, the register that carried an argument, and the
    address an oops read through."""
    # The LKDTM oops (ACCESS_NULL): its RIP from the recorded console.
    console = open(os.path.join(recording("oops-lkdtm"), "serial.log"), errors="replace").read()
    rip = re.search(r"BUG: kernel NULL pointer dereference.*?RIP: 0010:(\w+\+0x[0-9a-f]+)/", console, re.S).group(1)
    (p, d), (pr, dr), (po, do) = replays(["why", "--at", "tcp_v4_rcv", "--addr", "skb->len"],
                                         ["why", "--at", "tcp_v4_rcv", "--addr", "%rdi"],
                                         [":oops-lkdtm", "why", "--at", rip, "--operand"])
    out = p.stdout_text
    m = re.search(r"at instruction (\d+): (\S+)\s+(.*)\n\s+it left (0x[0-9a-f]+); at the point it holds (0x[0-9a-f]+)",
                  out)
    assert m, out
    where, insn, left, now = m.group(2), m.group(3), m.group(4), m.group(5)
    # The store that set skb->len last before tcp_v4_rcv: ip_local_deliver
    # pulls the IP header (__skb_pull, inlined), and writes it with a mov.
    assert where.startswith("ip_local_deliver") and insn.startswith("mov"), (where, insn)
    assert left == now and int(now, 16) > 0, out
    writes = [e for e in events(babeltrace(d)) if e["probe"] == "write"]
    n = int(re.search(r"(\d+) writes seen", out).group(1))
    assert len(writes) == n and writes[-1]["symbol"].startswith("ip_local_deliver"), (len(writes), n)
    # The recorded stop is right after the store (where the watchpoint fires).
    assert "ip_local_deliver" in writes[-1]["bt"][0]
    # tcp_v4_rcv's skb came in %rdi, set by its caller right before the call.
    m = re.search(r"at instruction \d+: (\S+)\s+(mov\S* %\w+, %rdi)\n\s+it left (0x[0-9a-f]+); at the point it "
                  r"holds (0x[0-9a-f]+)", pr.stdout_text)
    assert m and m.group(1).startswith("ip_protocol_deliver_rcu") and m.group(3) == m.group(4), pr.stdout_text
    # ACCESS_NULL reads through a NULL the compiler put into the instruction.
    assert re.search(r"the address of mov\S* 0, %\w+ at " + re.escape(rip) +
                     r" is a constant of the instruction itself \(0x0\)", po.stdout_text), po.stdout_text
    for x in (d, dr, do):
        shutil.rmtree(x)


@test
def test_what_cannot_be_recorded_or_replayed_is_refused():
    rec = recording()
    for argv, code, words in [
        (["record", "--smp", "2"], 2, "one vCPU"),
        (["record", "--accel", "kvm"], 2, "TCG"),
        (["record", "--workload", "shell"], 2, "console"),
        (["trace", "--replay", rec, "--workload", "rx-icmp"], 2, "fixed by the recording"),
        (["trace", "--replay", rec, "--accel", "kvm"], 2, "TCG"),
        (["trace", "--replay", rec, "--attach", "unix:/nonexistent"], 2, "--replay runs a recording"),
        (["step", "--at", "tcp_v4_rcv", "--backwards", "5"], 2, "needs a replay"),
        (["why", "--at", "tcp_v4_rcv", "--addr", "skb->len"], 2, "--replay DIR is required"),
        (["trace", "--replay", "/nonexistent"], 1, "not a kstep recording"),
    ]:
        p = kstep(*argv, "-o", tempfile.mkdtemp(prefix="kstep-refused-"), timeout=60)
        assert p.returncode == code and words in p.stderr, (argv, p.returncode, p.stderr[-400:])
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    # A recording of other images: named, not replayed into a divergence.
    images = tempfile.mkdtemp(prefix="kstep-images-")
    for name in ("bzImage", "vmlinux", "kernel.config"):
        os.symlink(os.path.join(TREE, "images", name), os.path.join(images, name))
    shutil.copy(os.path.join(TREE, "images", "initramfs.cpio.gz"), images)
    with open(os.path.join(images, "initramfs.cpio.gz"), "ab") as f:
        f.write(b"\0" * 512)
    p = kstep("trace", "--replay", rec, "--images", images, "-o", tempfile.mkdtemp(), timeout=60)
    assert p.returncode == 1 and "initramfs.cpio.gz is not the one recorded" in p.stderr, p.stderr
    shutil.rmtree(images)
    # Another QEMU than the one that recorded it (QEMU 10 for a 7.2
    # recording): named, and never run from the recording's word.
    assert re.search(r"^qemu=\d+\.\d+$", open(os.path.join(rec, "recording")).read(), re.M)
    p = kstep("trace", "--replay", rec, "-o", tempfile.mkdtemp(), env=qemu10(), timeout=60)
    assert p.returncode == 1 and re.search(r"recorded with QEMU 7\.2, and \S+ is QEMU 10\.\d+: a replay follows only",
                                           p.stderr), p.stderr
    # A location that is not in memory (a register) is refused before any replay.
    p = kstep("why", "--replay", rec, "--at", "tcp_v4_rcv", "--addr", "$arg1", "-o", tempfile.mkdtemp(), timeout=60)
    assert p.returncode == 1 and "not in memory" in p.stderr, p.stderr


@test
def test_a_recording_cut_short_is_marked_and_refused():
    d = tempfile.mkdtemp(prefix="kstep-rec-cut-")
    proc = subprocess.Popen([KSTEP, "record", "--workload", "rx-icmp", "--size", "50", "-o", d, "--force", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = interrupt_when_grown(proc, os.path.join(d, "replay.bin"), 1 << 20, 60, "the replay log to grow")
    assert proc.returncode == 130 and "cut short" in err, (proc.returncode, err)
    assert "state=interrupted" in open(os.path.join(d, "recording")).read()
    p = kstep("trace", "--replay", d, "-o", tempfile.mkdtemp(), timeout=60)
    assert p.returncode == 1 and "was interrupted, not completed" in p.stderr, p.stderr
    assert not qemu_pids(d), "the recording's QEMU outlived kstep"
    shutil.rmtree(d)


@test
def test_a_replay_directory_name_cannot_add_qemu_options():
    """Issue 22: a recording in a directory named to end QEMU's -icount
    option with ",rr=record,rrfile=..." once made QEMU record through a link
    onto a file of the victim's. Now QEMU reads the log through a
    descriptor kstep opened, and every name in an option has its commas
    doubled: the replay runs as any other, and the file is untouched."""
    base = tempfile.mkdtemp(prefix="kstep-inject-")
    try:
        x = os.path.join(base, "x")
        os.mkdir(x)
        victim = os.path.join(base, "victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        os.chmod(victim, 0o600)
        os.symlink(victim, os.path.join(x, "replay.bin"))
        rec = os.path.join(base, "rec,rr=record,rrfile=" + x)
        shutil.copytree(recording("rx-icmp"), rec)
        out = os.path.join(base, "out")
        # QEMU opens the log as it starts: a few seconds of the replay tell.
        p = kstep("trace", "--replay", rec, "-p", "none", "--duration", "3", "-q", "-o", out, timeout=600)
        assert open(victim).read() == "precious\n", "QEMU wrote through the planted link"
        assert p.returncode == 0 and "reached --duration" in p.stdout + p.stderr, p.stderr[-800:]
        # A replay log that is a link is not followed.
        os.unlink(os.path.join(rec, "replay.bin"))
        os.symlink(victim, os.path.join(rec, "replay.bin"))
        p = kstep("trace", "--replay", rec, "--break", "icmp_rcv", "-q", "-o", out + "2", timeout=120)
        assert p.returncode == 1 and "replay.bin" in p.stderr, p.stderr[-400:]
    finally:
        shutil.rmtree(base)


def fnv1a(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h


def edited_recording(base, name, edit):
    """A copy of rx-icmp's recording in @base/@name, its settings edited by
    @edit (a dict of them to a dict) and their check made right."""
    rec = os.path.join(base, name)
    shutil.copytree(recording("rx-icmp"), rec)
    path = os.path.join(rec, "recording")
    lines = open(path).read().splitlines()
    info = edit(dict(line.split("=", 1) for line in lines[1:]))
    check = "\n".join([info["id"], info["workload"], info["size"], info["nic"], info["mem"], info["kaslr"],
                       info["bzImage"], info["initramfs"], info["qemu"]] +
                      (["apic_timer=" + info["apic_timer"]] if info.get("apic_timer") else []))
    info["settings"] = "%016x" % fnv1a(check.encode())
    open(path, "w").write("\n".join([lines[0]] + ["%s=%s" % kv for kv in info.items()]) + "\n")
    return rec


@test
def test_an_edited_recording_is_refused_or_said_to_diverge():
    """Issue 22: an edited `workload` once made a replay hang 300 s in
    silence. An edit is refused at once (the settings' check); one made
    with the check recomputed replays another run than the log's, and the
    engine ends it when the instruction count stops moving. A recording
    without apic_timer (an older kstep's) replays with the guest's APIC
    timer, as such a one was made: this one was made without, and its
    replay diverges where the timer is calibrated."""
    base = tempfile.mkdtemp(prefix="kstep-edited-")
    try:
        rec = os.path.join(base, "rec")
        shutil.copytree(recording("rx-icmp"), rec)
        path = os.path.join(rec, "recording")
        text = open(path).read()
        open(path, "w").write(text.replace("workload=rx-icmp", "workload=rx-udp"))
        p = kstep("trace", "--replay", rec, "-q", "-o", os.path.join(base, "t1"), timeout=60)
        assert p.returncode == 1 and "was edited" in p.stderr, p.stderr[-400:]
        other = edited_recording(base, "other", lambda i: dict(i, workload="rx-udp"))
        older = edited_recording(base, "older", lambda i: {k: v for k, v in i.items() if k != "apic_timer"})
        for (p, d), r in zip(replays_of([(other, ["trace"]), (older, ["trace"])], timeout=240), (other, older)):
            shutil.rmtree(d)
            assert p.returncode != 0, "a replay of another run than the recorded one ended as a success: " + r
            err = p.stderr_text
            assert "no progress" in err or "diverge" in err or "did not reach" in err, err[-600:]
    finally:
        shutil.rmtree(base)


def source_line(path, after, text):
    """The number of the first line holding @text after the line holding
    @after in the kernel tree's @path: the test's own reading of the source."""
    stamp = open(os.path.join(IMAGES, "kernel.stamp")).read()
    src = re.search(r"^srcdir=(.*)$", stamp, re.M).group(1)
    lines = open(os.path.join(src, path)).read().splitlines()
    start = next(i for i, l in enumerate(lines) if after in l)
    return next(i for i in range(start, len(lines)) if text in lines[i]) + 1


@test
def test_why_drop_names_the_deciding_check_of_three_drops():
    """rx-drops: datagrams to a port nobody listens on, to a socket whose
    receive buffer is full, and with a bad UDP checksum. For each, why
    --drop names the branch that sent the packet to the drop, by its line
    in the kernel source (found here from the source, not from kstep),
    what it compared and where that came from."""
    cases = [  # filter, reason, deciding line, the call that gave the value
        ("dport == 9", "SKB_DROP_REASON_NO_SOCKET",
         source_line("net/ipv4/udp.c", "sk = __udp4_lib_lookup_skb(skb, uh->source, uh->dest, udptable);",
                     "if (sk)"), "__udp4_lib_lookup"),
        ("dport == 5002 && reason == SKB_DROP_REASON_SOCKET_RCVBUFF", "SKB_DROP_REASON_SOCKET_RCVBUFF",
         source_line("net/ipv4/udp.c", "rc = __udp_enqueue_schedule_skb(sk, skb);", "if (rc < 0)"),
         "__udp_enqueue_schedule_skb"),
        ("dport == 5003", "SKB_DROP_REASON_NOT_SPECIFIED",
         source_line("net/ipv4/udp.c", "err = skb_copy_and_csum_datagram_msg(skb, off, msg);", "if (err == -EINVAL)"),
         "skb_copy_and_csum_datagram_msg"),
    ]
    runs = replays(*[[":rx-drops", "why", "--drop", "--filter", filt] for filt, _, _, _ in cases], timeout=1800)
    for (proc, d), (filt, reason, line, callee) in zip(runs, cases):
        out = proc.stdout_text
        assert re.search(r"^drop: %s, by the call at " % reason, out, re.M), out
        m = re.search(r"^  at net/ipv4/udp\.c:(\d+) ", out, re.M)
        assert m and int(m.group(1)) == line, (filt, line, out)
        assert re.search(r"^  it tested the flags of: (test|cmp)\S* ", out, re.M), out
        assert re.search(r"^    %rax = 0x[0-9a-f]+.*: returned by " + callee + r", called at ", out, re.M), out
        shutil.rmtree(d)
