# SPDX-License-Identifier: MIT
"""Issue 8: kernels as people run them. KASLR on the project's own kernel
(built with RANDOMIZE_BASE, booted without nokaslr): kstep's own boot, attach
to a guest halted at reset and to one already running, steps, the offset
override, and a foreign vmlinux named as such. CFI backtraces against the
frame-pointer walk. Debian's cloud kernel (images/distro, make distro):
trace with KASLR and CFI, and kstep oops against decode_stacktrace.sh."""
import os
import re
import shutil
import tempfile

from harness import DECODE, IMAGES, RUN_GUEST, VMLINUX, babeltrace, events, foreign_vmlinux, guest, kstep, run, test
from oopscmp import frames

KASLR_MSG = re.compile(r"KASLR: the kernel runs 0x([0-9a-f]+) above vmlinux's addresses \(([^)]*)\)")

_nm = {}


def link_address(name):
    if not _nm:
        for line in run(["nm", VMLINUX]).stdout.splitlines():
            f = line.split()
            if len(f) == 3 and f[1] in "tTwW":
                _nm.setdefault(f[2], int(f[0], 16))
    return _nm[name]


def traced(*args, timeout=300):
    """kstep with @args into a fresh directory: (process, events)."""
    d = tempfile.mkdtemp(prefix="kstep-trace-")
    try:
        p = kstep(*args, "-o", d, "-q", timeout=timeout)
        evs = events(babeltrace(d)) if p.returncode == 0 else []
        console = os.path.join(d, "guest", "serial.log")
        p.console = open(console, errors="replace").read() if os.path.exists(console) else ""
        return p, evs
    finally:
        shutil.rmtree(d)


def offset_of(p):
    m = KASLR_MSG.search(p.stderr)
    return (int(m.group(1), 16), m.group(2)) if m else (0, None)


def check_at_moved_addresses(evs, offset):
    """Every stop at a function's entry is at its link address + offset, and
    its backtrace is named all the way (no bare addresses in the kernel)."""
    entries = [e for e in evs if "+" not in e["symbol"]]
    assert entries, "no stop at a function entry"
    for e in entries:
        assert e["pc"] == link_address(e["symbol"]) + offset, (e["symbol"], hex(e["pc"]), hex(offset))
        assert e["bt"] and not any(f.startswith("0x") for f in e["bt"][:3]), e["bt"]


@test
def test_kaslr_own_boot_trace_and_step():
    # KASLR may pick offset 0 (one chance in hundreds): boot again then.
    for _ in range(3):
        p, evs = traced("trace", "--kaslr", "--workload", "rx-icmp", "--size", "3", "--max-stops", "60")
        assert p.returncode == 0, p.stderr[-800:]
        offset, how = offset_of(p)
        if offset:
            break
    assert offset and how.startswith("found from linux_banner"), p.stderr
    assert offset % 0x200000 == 0
    assert "the guest is stopped early in its boot" in p.stderr, p.stderr
    assert any(e["symbol"] == "icmp_rcv" for e in evs), {e["symbol"] for e in evs}
    check_at_moved_addresses(evs, offset)
    p, evs = traced("step", "--kaslr", "--workload", "rx-icmp", "--size", "2", "--at", "icmp_rcv", "--count", "80")
    assert p.returncode == 0, p.stderr[-800:]
    offset, _ = offset_of(p)
    assert len(evs) == 80 and evs[0]["symbol"] == "icmp_rcv"
    assert evs[0]["pc"] == link_address("icmp_rcv") + offset


def attach_trace(sock, *extra):
    return traced("trace", "--attach", "unix:" + sock, "--probes", "none", "--break", "udp_rcv", "--max-stops",
                  "5", *extra)


@test
def test_kaslr_attach_halted_running_and_override():
    # A guest whose KASLR picked offset 0 (one chance in hundreds) shows
    # nothing: take another.
    for _ in range(3):
        with guest("rx-udp", count=5000000, extra={"KASLR": "1"}) as (g, proc):
            # Halted at reset: kstep catches the moved kernel early in its boot.
            p, evs = attach_trace(g["sock"])
            assert p.returncode == 0, p.stderr[-800:]
            offset, how = offset_of(p)
            if not offset:
                continue
            assert "the guest is stopped early in its boot" in p.stderr, p.stderr
            check_at_moved_addresses(evs, offset)
            # The same kernel, now running: taken from --kaslr-offset
            # (checked against guest memory), or found from where it stands.
            p, evs = attach_trace(g["sock"], "--kaslr-offset", hex(offset))
            assert p.returncode == 0, p.stderr[-800:]
            assert offset_of(p) == (offset, "--kaslr-offset, checked in guest memory"), p.stderr
            check_at_moved_addresses(evs, offset)
            p, evs = attach_trace(g["sock"])
            assert p.returncode == 0 and offset_of(p)[0] == offset, p.stderr[-800:]
            check_at_moved_addresses(evs, offset)
            return
    raise AssertionError("three KASLR guests in a row at offset 0")


@test
def test_foreign_vmlinux_on_a_kaslr_guest_is_named():
    d = tempfile.mkdtemp(prefix="kstep-it-")
    other = foreign_vmlinux(d)
    try:
        with guest("rx-icmp", count=50, extra={"KASLR": "1"}) as (g, proc):
            p, _ = traced("trace", "--attach", "unix:" + g["sock"], "--vmlinux", other, "--max-stops", "3",
                          timeout=120)
            assert p.returncode == 1, p.stderr
            assert "none of the places KASLR can move it to" in p.stderr and "runs another kernel" in p.stderr, \
                p.stderr
            assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    finally:
        shutil.rmtree(d)


def unwinders_agreed(p, which="unwinders: cfi and frame pointers"):
    m = re.search(re.escape(which) + r" agreed on (\d+) of (\d+) backtraces", p.stdout)
    assert m, p.stdout[-800:] + p.stderr[-400:]
    return int(m.group(1)), int(m.group(2))


ROWS = "cfi walks: kstep's cached rows and libdwfl's own"


@test
def test_cfi_and_frame_pointers_agree_on_this_kernel():
    """The project's kernel has both frame pointers and CFI: at every stop
    and every step the two unwinders give the same frames."""
    d = tempfile.mkdtemp(prefix="kstep-trace-")
    try:
        p = kstep("trace", "--unwind", "check", "--workload", "rx-tcp", "--max-stops", "150", "-o", d, "-q")
        assert p.returncode == 0, p.stderr[-600:]
        agreed, compared = unwinders_agreed(p)
        assert compared == 150 and agreed == compared, p.stdout
        # The walk through kstep's cached CFI rows is libdwfl's, frame for frame.
        agreed, compared = unwinders_agreed(p, ROWS)
        assert compared == 150 and agreed == compared, p.stdout
        # Each event says how its backtrace ended; the summary counts them.
        text = babeltrace(d)
        ends = re.findall(r'bt_end = "([a-z-]+)", bt_reliable = ([01])', text)
        assert len(ends) == 150 and {e for e, _ in ends} <= {"stack-end", "depth-limit", "bad-pointer", "loop",
                                                             "not-text", "unknown-code"}, set(ends)
        m = re.search(r"backtraces: (\d+) whole, (\d+) cut short", p.stdout)
        assert m and int(m.group(1)) + int(m.group(2)) == 150, p.stdout
        assert int(m.group(1)) == sum(1 for _, r in ends if r == "1")
        # A stop in the protocol handler reaches the softirq and its entry.
        bts = [e["bt"] for e in events(text) if e["symbol"] in ("tcp_v4_rcv", "ip_rcv", "ip_list_rcv")]
        assert bts and all(any(f.startswith("net_rx_action") for f in bt) for bt in bts), bts[:2]
        assert all(any(f.split("+")[0] in ("common_interrupt", "run_ksoftirqd", "do_softirq", "__do_softirq")
                       for f in bt) for bt in bts), bts[:2]
    finally:
        shutil.rmtree(d)
    p, evs = traced("step", "--unwind", "check", "--workload", "rx-icmp", "--size", "2", "--at", "icmp_rcv",
                    "--count", "200")
    assert p.returncode == 0, p.stderr[-600:]
    agreed, compared = unwinders_agreed(p)
    assert compared >= 200 and agreed == compared, p.stdout


@test
def test_cfi_steps_name_the_real_caller():
    """Steps through icmp_rcv's prologue and body: every backtrace's second
    frame is icmp_rcv's caller, never a value left on the stack."""
    p, evs = traced("step", "--unwind", "cfi", "--workload", "rx-icmp", "--size", "2", "--at", "icmp_rcv",
                    "--count", "200")
    assert p.returncode == 0, p.stderr[-600:]
    own = [e for e in evs if e["symbol"].split("+")[0] == "icmp_rcv"]
    assert len(own) > 20
    callers = {e["bt"][1].split("+")[0] for e in own}
    assert callers == {"ip_protocol_deliver_rcu"}, callers


@test
def test_vmlinux_without_cfi():
    d = tempfile.mkdtemp(prefix="kstep-it-")
    bare = os.path.join(d, "vmlinux")
    try:
        run(["objcopy", "--remove-section", ".debug_frame", "--remove-section", ".rela.debug_frame", VMLINUX,
             bare], check=True, timeout=300)
        p = kstep("trace", "--unwind", "cfi", "--vmlinux", bare, "--max-stops", "3", "-o", os.path.join(d, "a"))
        assert p.returncode == 1 and "has no call frame information" in p.stderr, p.stderr
        p = kstep("trace", "--vmlinux", bare, "--max-stops", "3", "-o", os.path.join(d, "b"), "-q")
        assert p.returncode == 0 and "backtraces follow frame pointers only" in p.stderr, p.stderr[-600:]
    finally:
        shutil.rmtree(d)


DISTRO = os.path.join(IMAGES, "distro")
DISTRO_VMLINUX = os.path.join(DISTRO, "vmlinux")


def distro_boot(workload):
    d = tempfile.mkdtemp(prefix="kstep-it-")
    try:
        return run([RUN_GUEST], env={"IMAGES": DISTRO, "NIC": "virtio", "KASLR": "1", "WORKLOAD": workload,
                                     "ACCEL": "tcg", "KSTEP_RUNDIR": d}, timeout=180)
    finally:
        shutil.rmtree(d)


@test
def test_distro_kernel_trace():
    """Debian's cloud kernel (KASLR, no frame pointers, virtio-net as a
    module) with its -dbg vmlinux and module debug info: probes in vmlinux
    hit at their moved addresses, the NIC's poll function in its module,
    and CFI backtraces are whole through the module to the softirq."""
    release = open(os.path.join(DISTRO, "release")).read().split()[0]
    assert "CONFIG_UNWINDER_ORC=y" in open("/boot/config-" + release).read()
    p, evs = traced("trace", "--images", DISTRO, "--nic", "virtio", "--kaslr", "--workload", "rx-icmp", "--size",
                    "3", "--unwind", "check")
    assert p.returncode == 0, p.stderr[-800:]
    # KASLR, modules, the IRQ stack: kstep's cached CFI rows walk as libdwfl does.
    agreed, compared = unwinders_agreed(p, ROWS)
    assert compared == len(evs) > 0 and agreed == compared, p.stdout
    offset, how = offset_of(p)
    assert offset and how.startswith("found from linux_banner"), p.stderr
    # The NIC's poll function is in virtio_net.ko: probed once the module
    # is loaded (kstep stops at the module loader), named from its debug info.
    m = re.search(r"^ +(\d+)  driver +virtio_net:virtnet_poll$", p.stdout, re.M)
    assert m and int(m.group(1)) > 0, p.stdout
    polls = [e for e in evs if e["probe"] == "driver"]
    assert polls and all(e["symbol"] == "virtnet_poll [virtio_net]" for e in polls), polls[:1]
    funcs = {f[7]: int(f[1], 16) for f in (l.split() for l in run(["readelf", "-sW", DISTRO_VMLINUX]).stdout
                                           .splitlines()) if len(f) == 8 and f[3] == "FUNC"}
    icmp = [e for e in evs if e["symbol"] == "icmp_rcv"]
    assert len(icmp) >= 3, {e["symbol"] for e in evs}
    for e in icmp:
        assert e["pc"] == funcs["icmp_rcv"] + offset
        names = [f.split("+")[0] for f in e["bt"]]
        # Without frame pointers: whole from CFI, from the protocol handler
        # through IP, the NAPI poll in the virtio_net module, to the softirq.
        assert names[:3] == ["icmp_rcv", "ip_protocol_deliver_rcu", "ip_local_deliver_finish"], names
        assert "__netif_receive_skb_list_core" in names and "napi_complete_done" in names, names
        assert "virtnet_poll [virtio_net]" in [f.split("+")[0] + (" [virtio_net]" if "[virtio_net]" in f else "")
                                              for f in e["bt"]], e["bt"]
        assert "net_rx_action" in names and "handle_softirqs" in names, names
    # A function vmlinux lacks is looked for in its modules' debug info.
    p, evs = traced("trace", "--images", DISTRO, "--nic", "virtio", "--kaslr", "--workload", "rx-icmp", "--size",
                    "3", "--probes", "none", "--break", "virtnet_poll", "--max-stops", "3")
    assert p.returncode == 0 and len(evs) == 3, p.stdout + p.stderr[-600:]
    assert all(e["symbol"] == "virtnet_poll [virtio_net]" for e in evs), evs
    # Steps too: kstep waits for the module, then steps its function.
    p, evs = traced("step", "--images", DISTRO, "--nic", "virtio", "--kaslr", "--workload", "rx-icmp", "--size",
                    "2", "--at", "virtnet_poll", "--count", "100")
    assert p.returncode == 0 and "waiting for module virtio_net to be loaded" in p.stderr, p.stderr[-600:]
    assert len(evs) == 100 and evs[0]["symbol"] == "virtnet_poll [virtio_net]", evs[:1]
    assert re.search(r"^ +\d+  virtnet_poll$", p.stdout, re.M), p.stdout
    p = kstep("trace", "--images", DISTRO, "--break", "no_such_function_xyz", "-o", tempfile.mkdtemp())
    assert p.returncode == 1 and "and its modules in /usr/lib/debug/lib/modules/" in p.stderr, p.stderr


@test
def test_distro_oops_matches_decode_stacktrace():
    log = distro_boot("oops").stdout
    assert "Call Trace:" in log and "sysrq_handle_crash" in log, log[-800:]
    ref = run([DECODE, DISTRO_VMLINUX], input=log, timeout=300).stdout
    p = kstep("oops", "--raw-addresses", "--vmlinux", DISTRO_VMLINUX, "-", input=log)
    assert p.returncode == 0, p.stderr
    assert len(frames(ref)) >= 10 and frames(p.stdout) == frames(ref), (frames(ref), frames(p.stdout))
    assert "do not fit" not in p.stderr and "another build" not in p.stdout
    # A frame in a module is decoded from the module's debug info, found
    # where decode_stacktrace.sh looks (the -dbg package's modules path).
    release = open(os.path.join(DISTRO, "release")).read().split()[0]
    moddir = "/usr/lib/debug/lib/modules/" + release
    ko = run(["find", moddir, "-name", "virtio_net.ko"]).stdout.split()[0]
    size = next(int(f[2]) for f in (l.split() for l in run(["readelf", "-sW", ko]).stdout.splitlines())
                if len(f) == 8 and f[7] == "virtnet_poll")
    lines = log.splitlines(True)
    at = next(i for i, l in enumerate(lines) if "Call Trace:" in l) + 1
    lines.insert(at, "%s] virtnet_poll+0x2e/0x%x [virtio_net]\n" % (lines[at].split("]")[0], size))
    log = "".join(lines)
    ref = run([DECODE, DISTRO_VMLINUX, "auto", moddir], input=log, timeout=300).stdout
    p = kstep("oops", "--raw-addresses", "--vmlinux", DISTRO_VMLINUX, "-", input=log)
    assert re.search(r"virtnet_poll \(drivers/net/virtio_net\.c:\d+\) \[virtio_net\]", p.stdout), p.stdout[-1500:]
    assert frames(p.stdout) == frames(ref), (frames(ref), frames(p.stdout))
    p = kstep("oops", "--modules", "/nonexistent", "--vmlinux", DISTRO_VMLINUX, "-", input=log)
    assert "(in module virtio_net: no debug info for it in /nonexistent, not decoded)" in p.stdout, p.stdout[-800:]


@test
def test_distro_drops_are_the_kernels_own():
    """Issue 22: kstep's drops set and the kernel's skb:kfree_skb tracepoint
    (dropwatch's and perf's view) see the same frees, one for one. The
    workload turns the tracepoint's histogram on (by skb address and
    reason), runs rx-drop and prints it; the frees kstep recorded in that
    window, the last ones it recorded, must be exactly those."""
    p, evs = traced("trace", "--images", DISTRO, "--nic", "virtio", "--kaslr", "--workload", "rx-drop-traced",
                    "--size", "4", "-p", "drops")
    assert p.returncode == 0, p.stderr[-800:]
    block = p.console[p.console.index("KSTEP-TRACE-BEGIN"):p.console.index("KSTEP-TRACE-END")]
    names = dict((int(n), s) for n, s in re.findall(r'\{ (\d+), "([A-Z_]+)" \}', block))
    kernel = []
    for addr, reason, hits in re.findall(r"skbaddr: ([0-9a-f]+), reason: +(\d+) \} hitcount: +(\d+)", block):
        kernel += [(int(addr, 16), names[int(reason)])] * int(hits)
    assert len([k for k in kernel if k[1] == "NO_SOCKET"]) == 4, kernel
    drops = [(e["skb"], e["args"]["reason"].replace("SKB_DROP_REASON_", "")) for e in evs
             if e["event"] == "kfree_skb_reason"]
    assert sorted(drops[-len(kernel):]) == sorted(kernel), (drops[-len(kernel) - 2:], kernel)


@test
def test_distro_attached_from_reset_follows_modules_and_irq_stacks():
    """Issue 22: the distribution kernel booted by hand, halted at reset,
    kstep attached with its -dbg vmlinux. The rx set's driver stage is the
    bound driver's (virtnet_poll in virtio_net.ko, loaded after kstep
    attached), not e1000's; backtraces at icmp_rcv name the module's frame,
    cross from the IRQ stack (do_softirq's call_on_stack) to the
    interrupted task, and end at the stack's end for at least 95% of the
    stops."""
    d = tempfile.mkdtemp(prefix="kstep-trace-")
    try:
        # Eight replies: under load the kernel hands softirqs to ksoftirqd
        # (no IRQ stack to cross); CI once saw three in a row go that way.
        with guest("rx-icmp", count=8, extra={"IMAGES": DISTRO, "NIC": "virtio", "KASLR": "1"}) as (g, _):
            # Attached, kstep cannot tell the guest's end from QEMU's: 6.
            p = kstep("trace", "--attach", "unix:" + g["sock"], "--vmlinux", DISTRO_VMLINUX, "-o", d, "-q",
                      timeout=300)
        assert p.returncode == 6 and "the stub closed the connection" in p.stderr, p.stderr[-800:]
        evs = events(babeltrace(d))
    finally:
        shutil.rmtree(d)
    assert re.search(r"^ +[1-9]\d*  driver +virtio_net:virtnet_poll$", p.stdout, re.M), p.stdout
    icmp = [e for e in evs if e["symbol"] == "icmp_rcv"]
    assert len(icmp) >= 3, {e["symbol"] for e in evs}
    for e in icmp:
        names = [f.split("+")[0] for f in e["bt"]]
        assert any(f.startswith("virtnet_poll") and "[virtio_net]" in f for f in e["bt"]), e["bt"]
        assert "net_rx_action" in names and e["bt_end"] == "stack-end", (names, e["bt_end"])
        # The stack's bottom: a syscall's entry, a kernel thread's start, an
        # interrupt's entry when it came from user space, or the boot CPU's
        # idle task (start_kernel's caller) when the interrupt woke it from
        # idle (CI once saw it, interrupted in finish_task_switch).
        assert names[-1].startswith(("entry_SYSCALL_64", "ret_from_fork", "asm_", "secondary_startup_64")), names
    # Softirqs run on the IRQ stack from do_softirq (call_on_stack): past
    # it, the task that raised them (a ping's sendto, here).
    crossed = [[f.split("+")[0] for f in e["bt"]] for e in icmp]
    crossed = [names for names in crossed if "do_softirq.part.0" in names]
    assert crossed, [e["bt"] for e in icmp][:1]
    for names in crossed:
        assert len(names) > names.index("do_softirq.part.0") + 2, names
    whole = len([e for e in evs if e["bt_end"] == "stack-end"])
    assert whole >= 0.95 * len(evs), (whole, len(evs), {e["bt_end"] for e in evs})


@test
def test_distro_module_unloaded_and_loaded_again():
    """Issue 22: module loads and unloads followed. At free_module kstep
    takes its breakpoints out of the going module (under KVM or kgdb they
    are bytes in its code: put back later, they would land in whatever
    reuses the memory), forgets its unwinding, and probes it again when it
    comes back: pvpanic_pci_probe is hit at the boot's load and at the
    workload's."""
    p, evs = traced("trace", "--images", DISTRO, "--nic", "virtio", "--kaslr", "--workload", "module-cycle",
                    "-p", "none", "--break", "pvpanic_pci:pvpanic_pci_probe")
    assert p.returncode == 0, p.stderr[-800:]
    assert "module pvpanic_pci unloaded" in p.stderr and "module pvpanic unloaded" in p.stderr, p.stderr[-600:]
    hits = [e for e in evs if e["symbol"].startswith("pvpanic_pci_probe")]
    assert len(hits) == 2, [e["symbol"] for e in evs]
    assert all(e["bt_end"] == "stack-end" for e in hits), [e["bt"] for e in hits]
