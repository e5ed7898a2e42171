# SPDX-License-Identifier: MIT
"""Issue 13 (its second part): the kernel's own kgdb on a serial line
(make run-guest KGDB=1: ttyS1 on a unix socket, kgdbwait), driven by gdb
(make attach KGDB=1) and by kstep (--attach serial:PATH), against what
QEMU's gdbstub gives for the same workload."""
import os
import shutil
import tempfile
import time

from harness import TREE, babeltrace, events, guest, kstep, run, test, wait_for

WAITING = "KGDB: Waiting for connection from remote gdb"


def kgdb_guest(workload, count):
    """A guest booted with kgdb waiting on its second serial line."""
    return guest(workload, count=count, halt=False, extra={"KGDB": "1"})


def waiting(g, proc):
    wait_for(lambda: WAITING in open(g["log"]).read() or proc.poll() is not None, 120, "kgdbwait")
    assert proc.poll() is None, open(g["log"]).read()[-600:]
    return "serial:" + os.path.join(g["dir"], "kgdb.sock")


def frames(e):
    return [f.split("+")[0] for f in e["bt"]]


@test
def test_gdb_attaches_over_kgdb_and_kstep_names_a_kernel_not_in_it():
    with kgdb_guest("rx-icmp", 1000) as (g, proc):
        line = waiting(g, proc)
        p = run([os.path.join(TREE, "gdbscripts", "attach.sh"), "-batch", "-ex", "bt"], timeout=120,
                env={"KGDB": "1", "KSTEP_RUNDIR": g["dir"]})
        assert "kgdb_breakpoint" in p.stdout and "init_kgdboc" in p.stdout, p.stdout[-800:] + p.stderr[-400:]
        # gdb detached: the kernel runs on, out of the debugger.
        wait_for(lambda: "KSTEP-READY" in open(g["log"]).read(), 60, "the boot after gdb detached")
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="kstep-kgdb-") as d:
            p = kstep("trace", "--attach", line, "-o", d, timeout=120)
        assert p.returncode == 1 and "the kernel is not in the debugger" in p.stderr, p.stderr[-600:]
        assert len(p.stderr.strip().splitlines()) <= 2 and time.monotonic() - t0 < 30, p.stderr


@test
def test_trace_over_kgdb_hits_the_rx_stages_as_the_gdbstub_does():
    d = tempfile.mkdtemp(prefix="kstep-kgdb-")
    with kgdb_guest("rx-icmp", 1000) as (g, proc):
        line = waiting(g, proc)
        p = kstep("trace", "--attach", line, "--max-stops", "60", "-o", os.path.join(d, "kgdb"), "-q", timeout=300)
        assert p.returncode == 0, p.stderr[-800:]
    p = kstep("trace", "--workload", "rx-icmp", "--size", "1000", "--max-stops", "60", "-o", os.path.join(d, "stub"),
              "-q", timeout=300)
    assert p.returncode == 0, p.stderr[-600:]
    kgdb, stub = (events(babeltrace(os.path.join(d, x))) for x in ("kgdb", "stub"))
    icmp = [e for e in kgdb if e["symbol"] == "icmp_rcv"]
    assert icmp, {e["symbol"] for e in kgdb}
    # The same receive path below icmp_rcv as QEMU's stub unwinds it.
    want = frames([e for e in stub if e["symbol"] == "icmp_rcv"][0])[:8]
    assert all(frames(e)[:8] == want for e in icmp), (want, [frames(e)[:8] for e in icmp])
    assert {e["probe"] for e in kgdb} >= {"driver", "gro", "ip-local", "icmp"}, {e["probe"] for e in kgdb}
    shutil.rmtree(d)


@test
def test_step_over_kgdb_is_the_gdbstubs_instruction_sequence():
    d = tempfile.mkdtemp(prefix="kstep-kgdb-")
    with kgdb_guest("rx-icmp", 3) as (g, proc):
        line = waiting(g, proc)
        p = kstep("step", "--attach", line, "--at", "icmp_rcv", "--count", "200", "-o", os.path.join(d, "kgdb"),
                  "-q", timeout=300)
        assert p.returncode == 0, p.stderr[-800:]
    p = kstep("step", "--workload", "rx-icmp", "--size", "3", "--at", "icmp_rcv", "--count", "200", "-o",
              os.path.join(d, "stub"), "-q", timeout=300)
    assert p.returncode == 0, p.stderr[-600:]
    diff = kstep("diff", os.path.join(d, "kgdb"), os.path.join(d, "stub"))
    assert diff.returncode == 0 and "no divergence: the same 200 instructions" in diff.stdout, diff.stdout
    shutil.rmtree(d)


@test
def test_a_field_kgdb_cannot_fetch_is_refused():
    # kgdb sends no per-CPU base: $comm would only ever read as a fault.
    with kgdb_guest("rx-icmp", 2) as (g, proc):
        line = waiting(g, proc)
        with tempfile.TemporaryDirectory(prefix="kstep-kgdb-") as d:
            p = kstep("trace", "--attach", line, "-p", "none", "--break", "icmp_rcv c=$comm len=skb->len",
                      "-o", d, "-q", timeout=120)
        assert p.returncode == 1, (p.returncode, p.stderr[-600:])
        assert "field 'c' reads per-CPU data" in p.stderr and "kgdb" in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr


@test
def test_kstep_boots_its_own_guest_under_kgdb():
    # --kgdb: kstep's own QEMU, the kernel waiting at kgdbwait on ttyS1, all
    # of it driven over that line; the workload runs to its end (exit 0).
    d = tempfile.mkdtemp(prefix="kstep-kgdb-")
    p = kstep("trace", "--kgdb", "--workload", "rx-icmp", "--size", "3", "-o", os.path.join(d, "t"), "-q", timeout=300)
    assert p.returncode == 0 and "the guest finished its workload" in p.stderr, p.stderr[-800:]
    console = open(os.path.join(d, "t", "guest", "serial.log")).read()
    assert WAITING in console and "kgdboc=ttyS1" in console, console[-600:]
    evs = events(babeltrace(os.path.join(d, "t")))
    assert {e["probe"] for e in evs} >= {"driver", "gro", "ip-local", "icmp", "copy"}, {e["probe"] for e in evs}
    p = kstep("step", "--kgdb", "--workload", "rx-icmp", "--size", "3", "--at", "icmp_rcv", "--count", "100", "-o",
              os.path.join(d, "s"), "-q", timeout=300)
    assert p.returncode == 0 and "100 instructions" in p.stdout, p.stdout[-300:] + p.stderr[-600:]
    assert kstep("trace", "--kgdb", "--attach", "serial:/nonexistent", "-o", os.path.join(d, "x")).returncode == 2
    shutil.rmtree(d)
