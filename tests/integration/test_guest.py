# SPDX-License-Identifier: MIT
"""Issue 2: the debug guest, its workloads and run-guest.sh."""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

from harness import (IMAGES, RUN_GUEST, TREE, VMLINUX, free_port, guest, halt_reason, pinned_cpus, qemu_pids, run,
                     tcp_open, test, thread_cpus, wait_for)


def shell_session(commands, timeout=120):
    """Boot the shell workload, wait for its prompt, then type @commands."""
    d = tempfile.mkdtemp(prefix="kstep-it-")
    env = dict(os.environ, WORKLOAD="shell", ACCEL="tcg", GDB_PORT=str(free_port()), KSTEP_RUNDIR=d)
    p = subprocess.Popen([RUN_GUEST], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    out = ""
    try:
        end = time.monotonic() + timeout
        while "'exit' ends the guest" not in out:
            line = p.stdout.readline()
            assert line and time.monotonic() < end, "no shell prompt: " + out[-400:]
            out += line
        time.sleep(0.5)  # the shell itself starts after the banner
        rest, err = p.communicate(commands, timeout=timeout)
        return p.returncode, out + rest, err
    finally:
        if p.poll() is None:
            os.killpg(p.pid, 9)
        shutil.rmtree(d, ignore_errors=True)


def boot(workload, count=None, input=None, timeout=180, **env):
    e = {"WORKLOAD": workload, "ACCEL": "tcg", "GDB_PORT": str(free_port()),
         "KSTEP_RUNDIR": tempfile.mkdtemp(prefix="kstep-it-")}
    if count:
        e["COUNT"] = str(count)
    e.update(env)
    p = run([RUN_GUEST], env=e, timeout=timeout, input=input)
    shutil.rmtree(e["KSTEP_RUNDIR"], ignore_errors=True)
    return p


@test
def test_images_are_debug_images():
    for f in ("bzImage", "vmlinux", "initramfs.cpio.gz", "vmlinux-gdb.py", "kernel.stamp", "kernel.config"):
        assert os.path.exists(os.path.join(IMAGES, f)), "images/%s missing" % f
    config = open(os.path.join(IMAGES, "kernel.config")).read()
    for opt in ("CONFIG_DEBUG_INFO_DWARF5=y", "CONFIG_FRAME_POINTER=y", "CONFIG_GDB_SCRIPTS=y", "CONFIG_E1000=y",
                "CONFIG_VIRTIO_NET=y", "CONFIG_POSIX_TIMERS=y", "CONFIG_MAGIC_SYSRQ=y"):
        assert opt in config, opt + " not in the kernel config"
    # KASLR is built in, as on distribution kernels, and off unless asked.
    assert "CONFIG_RANDOMIZE_BASE=y" in config and "CONFIG_X86_MPPARSE=y" in config
    dry = run([RUN_GUEST], env={"DRY_RUN": "1", "ACCEL": "tcg", "KSTEP_RUNDIR": tempfile.mkdtemp(prefix="kstep-it-")})
    assert dry.returncode == 0 and re.search(r"\bnokaslr\b", dry.stdout), dry.stdout + dry.stderr
    # Debug info names sources relative to the tree, not the clone that built it.
    info = run(["readelf", "--debug-dump=info", VMLINUX], timeout=300).stdout[:200000]
    dirs = set(re.findall(r"DW_AT_comp_dir\s*: \(.*?\): (\S+)", info))
    assert dirs == {"."}, dirs
    assert TREE not in open(VMLINUX, "rb").read(20000000).decode("latin-1"), "an absolute path of this clone"
    stamp = open(os.path.join(IMAGES, "kernel.stamp")).read()
    assert re.search(r"^source=\S+", stamp, re.M) and re.search(r"^config=[0-9a-f]{16}$", stamp, re.M), stamp
    out = run(["readelf", "-S", VMLINUX], check=True).stdout
    assert ".debug_info" in out and ".debug_line" in out, "vmlinux has no DWARF"


@test
def test_rx_icmp_boots_fast_and_pings():
    p = boot("rx-icmp", count=4)
    out = p.stdout + p.stderr
    assert p.returncode == 0, "QEMU exit %d: %s" % (p.returncode, out[-600:])
    assert "KSTEP-READY workload=rx-icmp" in out
    assert "4 packets transmitted, 4 packets received" in out, out[-600:]
    # No reply held back by the NIC model (QEMU's e1000 receive hold).
    rtts = [float(t) for t in re.findall(r"seq=\d+ ttl=\d+ time=([0-9.]+) ms", out)]
    assert len(rtts) == 4 and max(rtts) < 500, "ping round trips %s ms" % rtts
    assert "KSTEP-WORKLOAD-DONE rx-icmp 0" in out
    m = re.search(r"KSTEP-READY ([0-9.]+) s after QEMU started", out)
    assert m, "the boot time is not printed"
    print("     boot to KSTEP-READY: %s s" % m.group(1))


@test
def test_rx_icmp_on_virtio():
    p = boot("rx-icmp", count=2, NIC="virtio")
    assert p.returncode == 0, p.stdout[-600:]
    assert "2 packets received" in p.stdout and "virtio" in p.stderr


@test
def test_rx_udp():
    p = boot("rx-udp", count=300)
    assert p.returncode == 0, p.stdout[-800:]
    assert "tftp received 262144 bytes over the NIC" in p.stdout
    assert "udp-loop received 300 of 300 datagrams" in p.stdout


@test
def test_rx_tcp():
    p = boot("rx-tcp", count=4 << 20)
    assert p.returncode == 0, p.stdout[-800:]
    assert "received 1048576 bytes over the NIC" in p.stdout
    assert "tcp-loop received 4194304 of 4194304 bytes" in p.stdout


@test
def test_oops_workload_panics_and_ends_qemu():
    p = boot("oops")
    assert p.returncode == 1, "a panic must end QEMU with status 1, got %d" % p.returncode
    assert "Kernel panic - not syncing: sysrq triggered crash" in p.stdout
    assert "sysrq_handle_crash+" in p.stdout
    assert "kernel panic" in p.stderr


@test
def test_failing_workload_sets_qemu_status():
    # The workload's exit code travels through isa-debug-exit: rc 3 -> status 7.
    rc, out, err = shell_session("exit 3\n")
    assert "KSTEP-WORKLOAD-DONE shell 3" in out, out[-400:]
    assert rc == 7, "QEMU exit %d" % rc
    assert "workload failed with rc 3" in err, err


@test
def test_shell_workload_interactive():
    rc, out, err = shell_session("echo kstep-$((6*7))\nexit\n")
    assert rc == 0, out[-500:]
    assert "kstep-42" in out


@test
def test_halted_stub_is_private_and_answers():
    port = free_port()
    d = tempfile.mkdtemp(prefix="kstep-it-")
    env = dict(os.environ, WORKLOAD="rx-icmp", ACCEL="tcg", HALT="1", GDB_PORT=str(port), KSTEP_RUNDIR=d)
    p = subprocess.Popen([RUN_GUEST], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True, text=True)
    try:
        wait_for(lambda: tcp_open(port), 20, "the gdbstub on 127.0.0.1:%d" % port)
        # Every socket QEMU listens on is loopback or a unix socket.
        pid = int(run(["pgrep", "-f", "gdb tcp:127.0.0.1:%d" % port]).stdout.split()[0])
        ss = run(["ss", "-Hltnp"]).stdout + run(["ss", "-Hlunp"]).stdout
        mine = [l for l in ss.splitlines() if "pid=%d," % pid in l]
        assert mine, "QEMU listens on nothing? " + ss
        for line in mine:
            local = line.split()[3]
            assert local.startswith("127.0.0.1:"), "QEMU listens on " + local
        assert oct(os.stat(d).st_mode & 0o777) == "0o700", "the run directory is not private"
        # The stub answers RSP: halted at the reset vector.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"$qSupported#37")
            data = b""
            while b"#" not in data.split(b"$", 1)[-1] or len(data.split(b"#")[-1]) < 2:
                data += s.recv(4096)
            assert b"PacketSize=" in data, data
            reply = halt_reason(s)
            assert reply.startswith(b"T05") or reply.startswith(b"S05"), reply
    finally:
        os.killpg(p.pid, 15)
        p.wait(10)
        shutil.rmtree(d, ignore_errors=True)


@test
def test_bad_input_fails_at_once():
    p = boot("no-such-workload", timeout=20)
    assert p.returncode == 2 and "unknown WORKLOAD 'no-such-workload'" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    p = boot("rx-icmp", timeout=20, NIC="rtl8139")
    assert p.returncode == 2 and "NIC must be e1000 or virtio" in p.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        t0 = time.monotonic()
        p = boot("rx-icmp", timeout=20, GDB_PORT=str(busy.getsockname()[1]))
        assert p.returncode == 2 and "already in use" in p.stderr, p.stderr
        assert time.monotonic() - t0 < 5
    p = run(["make", "-s", "-C", TREE, "images", "KERNEL_SRC=/nonexistent/linux"], timeout=60)
    assert p.returncode != 0 and "KERNEL_SRC=/nonexistent/linux: no such directory" in p.stderr, p.stderr


@test
def test_no_apic_timer_under_icount():
    """Under ICOUNT=1 or RR the kernel boots with noapictimer: its APIC
    timer's calibration spins on pause for 200 ms of guest time, and in a
    recording every turn is a checkpoint its replay waits on. APIC_TIMER=1
    keeps the timer (a recording an older kstep made with it); without
    icount nothing changes."""
    def kernel_args(**env):
        p = boot("rx-icmp", timeout=20, PRINT_ARGS="1", **env)
        assert p.returncode == 0, p.stderr
        args = p.stdout.split("\0")
        return args[args.index("-append") + 1].split()
    assert "noapictimer" in kernel_args(ICOUNT="1")
    assert "noapictimer" in kernel_args(RR="replay", RR_LOG="/dev/null")
    assert "noapictimer" not in kernel_args(ICOUNT="1", APIC_TIMER="1")
    assert "noapictimer" not in kernel_args()
    p = boot("rx-icmp", timeout=20, ICOUNT="1", APIC_TIMER="off")
    assert p.returncode == 2 and "APIC_TIMER must be 0 or 1, not 'off'" in p.stderr, p.stderr


@test
def test_qemu_runs_on_cpus_of_its_own():
    """PIN=auto: every QEMU thread on the last SMP CPUs (when more remain),
    the rest left for the debugger; PIN=off and SMP=all: anywhere."""
    mine = os.sched_getaffinity(0)
    for extra, want in (({}, pinned_cpus()), ({"PIN": "off"}, mine), ({"SMP": str(len(mine))}, mine)):
        with guest("rx-icmp", extra=extra) as (g, proc):
            wait_for(lambda: qemu_pids(g["sock"]), 10, "QEMU")
            cpus = thread_cpus(qemu_pids(g["sock"])[0])
            assert len(cpus) > 1 and all(c == want for c in cpus.values()), (extra, cpus, want)
            log = open(g["log"]).read()
            assert ("QEMU on CPU" in log) == (want != mine), log
    p = boot("rx-icmp", timeout=20, PIN="always")
    assert p.returncode == 2 and "PIN must be auto or off, not 'always'" in p.stderr, p.stderr


@test
def test_rebuild_only_when_inputs_change():
    script = os.path.join(TREE, "guest", "build-kernel.sh")
    p = run([script, "--check"], timeout=60)
    assert p.returncode == 0 and "up to date" in p.stderr, p.stderr
    t0 = time.monotonic()
    p = run(["make", "-s", "-C", TREE, "kernel"], timeout=120)
    assert p.returncode == 0 and "up to date" in p.stderr and time.monotonic() - t0 < 30, p.stderr
    with tempfile.NamedTemporaryFile("w", suffix=".fragment") as frag:
        frag.write(open(os.path.join(TREE, "guest", "kernel.fragment")).read() + "CONFIG_IKCONFIG=y\n")
        frag.flush()
        p = run([script, "--check"], env={"FRAGMENT": frag.name}, timeout=60)
        assert p.returncode == 10 and "config changed" in p.stderr, p.stderr
    # A user's tree is another source: it would be built from there.
    tree = os.path.join(IMAGES, "build", "linux-source-6.1")
    p = run([script, "--check"], env={"KERNEL_SRC": tree}, timeout=60)
    assert p.returncode == 10 and "source changed" in p.stderr, p.stderr
    p = run([script, "--check"], env={"KERNEL_SRC": "/etc"}, timeout=60)
    assert p.returncode == 1 and "not a Linux source tree" in p.stderr, p.stderr


@test
def test_gdb_attach_hbreak_start_kernel_and_lx_dmesg():
    with guest("rx-icmp", count=20) as (g, proc):
        p = run([os.path.join(TREE, "gdbscripts", "attach.sh"), "-batch",
                 "-ex", "hbreak start_kernel", "-ex", "continue", "-ex", "delete",
                 "-ex", "break icmp_rcv", "-ex", "continue", "-ex", "lx-dmesg", "-ex", "lx-ps",
                 "-ex", "list icmp_rcv", "-ex", "info source", "-ex", "detach"], env={"GDB_SOCK": g["sock"]},
                timeout=120)
        out = p.stdout + p.stderr
        assert "Breakpoint 1, start_kernel ()" in out, out[-800:]
        assert "icmp_rcv (skb=" in out, out[-800:]
        # Sources come from this tree (the debug info names them relative).
        assert re.search(r"^\d+\t.*skb", out, re.M), "gdb listed no source: " + out[-1500:]
        assert "Located in %s/" % IMAGES in out, out[-800:]
        assert "Linux version 6.1" in out, "lx-dmesg printed no kernel log: " + out[-800:]
        assert "ksoftirqd/0" in out or "swapper" in out, "lx-ps printed no tasks"
