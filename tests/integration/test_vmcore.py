# SPDX-License-Identifier: MIT
"""Issue 13 (its first part): a vmcore of the dying guest, and of any guest
with kstep dump, that crash and drgn (Debian's, the real ones) open, with
the panicking task's backtrace matching kstep's own."""
import os
import re
import shutil
import stat
import tempfile

from harness import KSTEP, VMLINUX, babeltrace, events, guest, kstep, qemu_pids, qmp, run, test, wait_for

DRGN_STACK = """
import sys
thread = prog.crashed_thread()
for frame in thread.stack_trace():
    try:
        print("FRAME", frame.name or prog.symbol(frame.pc).name)
    except (LookupError, ValueError):
        print("FRAME ?")
"""


def crash_bt(vmcore):
    """crash's backtrace of the panicking task: function names, innermost first."""
    p = run(["crash", "-s", "--kaslr", "auto", VMLINUX, vmcore], input="bt\nquit\n", timeout=300)
    names = re.findall(r"^ *#\d+ \[[0-9a-f]+\] (\S+) at ", p.stdout, re.M)
    assert p.returncode == 0 and names, p.stdout[-1500:] + p.stderr[-800:]
    return names


def drgn_bt(vmcore):
    """drgn's stack of the crashed thread: function names, innermost first."""
    script = os.path.join(tempfile.mkdtemp(prefix="kstep-drgn-"), "stack.py")
    with open(script, "w") as f:
        f.write(DRGN_STACK)
    p = run(["/usr/bin/python3", "-m", "drgn", "-q", "-c", vmcore, "-s", VMLINUX, script], timeout=300)
    names = re.findall(r"^FRAME (\S+)", p.stdout, re.M)
    assert p.returncode == 0 and names, p.stdout[-1500:] + p.stderr[-1500:]
    return names


def caught(*args):
    """kstep trace --workload oops: (its directory, the oops-end event's frames)."""
    d = tempfile.mkdtemp(prefix="kstep-vmcore-")
    p = kstep("trace", "--workload", "oops", *args, "-o", d, "--force", timeout=600)
    assert p.returncode == 4, (p.returncode, p.stderr[-800:])
    end = [e for e in events(babeltrace(d)) if e["probe"] == "oops-end"]
    assert end, p.stderr[-600:]
    assert "vmcore: %s/guest/vmcore" % d in p.stderr and "crash --kaslr auto " in p.stderr, p.stderr[-600:]
    return d, [f.split("+")[0] for f in end[-1]["bt"]], p


def release(d):
    """End the frozen QEMU the catch left (its console is in @d) and drop @d."""
    for pid in qemu_pids(d):
        os.kill(pid, 9)
    shutil.rmtree(d, ignore_errors=True)


def agree(kstep_frames, tool_frames, tool):
    """The functions both backtraces name come in the same order, from the
    syscall up to the panic. Where each starts differs: crash begins at
    panic, drgn at the caller it unwinds to first, kstep where the vCPU
    stopped after the report; drgn also names inlined functions."""
    mine = [f for f in kstep_frames if f in tool_frames]
    theirs = [f for f in tool_frames if f in kstep_frames]
    assert len(mine) >= 8 and mine == theirs, (tool, kstep_frames, tool_frames)


@test
def test_oops_writes_a_vmcore_crash_and_drgn_open():
    d, frames, _ = caught()
    try:
        core = os.path.join(d, "guest", "vmcore")
        st = os.stat(core)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_size > 16 << 20, oct(st.st_mode)
        assert open(core, "rb").read(4) == b"\x7fELF"
        agree(frames, crash_bt(core), "crash")
        agree(frames, drgn_bt(core), "drgn")
    finally:
        release(d)


@test
def test_vmcore_of_a_kaslr_guest_opens_in_both():
    d, frames, p = caught("--kaslr")
    try:
        core = os.path.join(d, "guest", "vmcore")
        agree(frames, crash_bt(core), "crash")
        agree(frames, drgn_bt(core), "drgn")
    finally:
        release(d)


@test
def test_dump_a_running_guest_and_it_runs_on():
    with guest("shell", halt=False) as (g, proc):
        wait_for(lambda: "KSTEP-READY" in open(g["log"]).read() or proc.poll() is not None, 120, "the guest's boot")
        core = os.path.join(g["dir"], "guest.vmcore")
        p = kstep("dump", "--attach", "unix:" + g["sock"], "-o", core)
        assert p.returncode == 0 and os.path.getsize(core) > 16 << 20, p.stderr
        assert qmp(g["qmp"], "query-status")["return"]["running"], "the guest runs on after the dump"
        assert "drgn" in p.stdout
        script = os.path.join(g["dir"], "uts.py")
        with open(script, "w") as f:
            f.write("print('UTS', prog['init_uts_ns'].name.release.string_().decode())\n")
        uts = run(["/usr/bin/python3", "-m", "drgn", "-q", "-c", core, "-s", VMLINUX, script], timeout=300)
        assert uts.stdout.startswith("UTS 6.1"), uts.stdout + uts.stderr[-600:]
        again = kstep("dump", "--attach", "unix:" + g["sock"], "-o", core)
        assert again.returncode == 1 and "something is there already" in again.stderr, again.stderr
    p = kstep("dump", "-o", "/tmp/x.vmcore", "--qmp", "/nonexistent/qmp.sock")
    assert p.returncode == 1 and "/nonexistent/qmp.sock" in p.stderr, p.stderr
    assert kstep("dump").returncode == 2


@test
def test_a_dump_that_fills_the_disk_leaves_the_trace_intact():
    work = tempfile.mkdtemp(prefix="kstep-full-")
    small, kept = os.path.join(work, "small"), os.path.join(work, "kept")
    os.mkdir(small)
    script = ('mount -t tmpfs -o size=8m none "$1" || exit 99\n'
              '"$2" trace --workload oops --accel tcg -q -o "$1/t"\n'
              'echo "kstep-rc=$?"\nls "$1/t/guest"\ncp -a "$1/t" "$3"\n')
    try:
        p = run(["unshare", "--mount", "--map-root-user", "sh", "-c", script, "sh", small, KSTEP, kept],
                timeout=600)
        for pid in qemu_pids(small):
            os.kill(pid, 9)
        assert "kstep-rc=4" in p.stdout, p.stdout[-400:] + p.stderr[-600:]
        assert re.search(r"no vmcore written \(the trace is intact\): .*No space left on device", p.stderr), \
            p.stderr[-600:]
        assert "vmcore" not in p.stdout.split("kstep-rc=4")[1], "no half vmcore left behind"
        assert any(e["probe"] == "oops-end" for e in events(babeltrace(kept)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
