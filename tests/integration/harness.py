# SPDX-License-Identifier: MIT
"""Helpers for the integration tests: they boot the real guest under TCG."""
import concurrent.futures
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

TREE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGES = os.environ.get("IMAGES", os.path.join(TREE, "images"))
KSTEP = os.path.join(TREE, "build", "kstep")
RUN_GUEST = os.path.join(TREE, "guest", "run-guest.sh")
VMLINUX = os.path.join(IMAGES, "vmlinux")
DECODE = os.path.join(IMAGES, "build", "linux-source-6.1", "scripts", "decode_stacktrace.sh")

TESTS = []

# Commands the tests run beyond kstep's own build. Each comes from a package
# in the Makefile's DEB_PACKAGES (test_firstrun checks it), so that no test
# passes because of something a developer installed by hand.
TOOLS = ("qemu-system-x86_64", "gdb", "babeltrace2", "chromium", "crash", "virsh", "libvirtd", "virtlogd",
         "busybox", "setpriv", "useradd", "unshare", "xmllint", "sshd", "perf", "tshark")


class Skip(Exception):
    """A test that cannot run here: what it needs is missing."""


def test(fn):
    TESTS.append(fn)
    return fn


def need(*tools):
    """Skip the calling test when a tool is missing; under CI=true, where
    `make test` has installed everything, a missing tool fails it instead."""
    import shutil
    missing = [t for t in tools if not shutil.which(t) and not os.path.exists(t)]
    if not missing:
        return
    what = ", ".join(missing) + " not installed (make deps installs it)"
    if os.environ.get("CI") == "true":
        raise AssertionError(what + "; CI runs every test")
    raise Skip(what)


def run(cmd, timeout=300, env=None, input=None, check=False):
    """Run to completion; on timeout the whole process group goes (a QEMU
    started by run-guest.sh must not outlive its test)."""
    e = dict(os.environ)
    e.update(env or {})
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e,
                            errors="replace", start_new_session=True,
                            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError("%s timed out after %d s" % (os.path.basename(cmd[0]), timeout))
    p = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check and p.returncode:
        raise AssertionError("%s failed (%d): %s" % (cmd[0], p.returncode, (p.stderr or p.stdout)[-400:]))
    return p


def kstep(*args, timeout=300, **kw):
    return run([KSTEP, *args], timeout=timeout, **kw)


def kstep_together(*argvs, timeout=300, **kw):
    """kstep with each of @argvs, two at a time (a replay runs on one core:
    this machine has two; give each --pin off, or both QEMUs are pinned to
    the same one): their CompletedProcesses, in order."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda a: kstep(*a, timeout=timeout, **kw), argvs))


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def interrupt_when_grown(proc, path, size, timeout, what, before=None):
    """Ctrl-C for @proc (a kstep started with text pipes) once @path has
    grown past @size bytes, after calling @before() if given: its (stdout,
    stderr) when it has ended. The one way the tests stop a running kstep."""
    wait_for(lambda: file_size(path) > size or proc.poll() is not None, timeout, what)
    assert proc.poll() is None, "ended before %s: %s" % (what, proc.communicate()[1][-400:])
    if before:
        before()
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=60)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def tcp_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def guest(workload="rx-icmp", count=None, halt=True, extra=None):
    """A guest from run-guest.sh, halted at reset, its gdbstub on a unix socket
    in a private directory. Yields (info dict, Popen)."""
    d = tempfile.mkdtemp(prefix="kstep-it-")
    os.chmod(d, 0o700)
    sock = os.path.join(d, "gdb.sock")
    env = dict(os.environ, WORKLOAD=workload, ACCEL="tcg", GDB_SOCK=sock, KSTEP_RUNDIR=d,
               HALT="1" if halt else "0")
    if count:
        env["COUNT"] = str(count)
    env.update(extra or {})
    log = open(os.path.join(d, "console.log"), "w+")
    p = subprocess.Popen([RUN_GUEST], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        wait_for(lambda: os.path.exists(sock) or p.poll() is not None, 20, "the gdbstub socket")
        assert p.poll() is None, "run-guest.sh exited early: " + open(log.name).read()[-400:]
        yield {"dir": d, "sock": sock, "qmp": os.path.join(d, "qmp.sock"), "log": log.name}, p
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        log.close()
        subprocess.run(["rm", "-rf", d])


def qmp(path, command):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        f = s.makefile("rw")
        json.loads(f.readline())
        f.write(json.dumps({"execute": "qmp_capabilities"}) + "\n")
        f.flush()
        json.loads(f.readline())
        f.write(json.dumps({"execute": command}) + "\n")
        f.flush()
        while True:
            r = json.loads(f.readline())
            if "return" in r or "error" in r:
                return r


def foreign_vmlinux(d):
    """A copy of vmlinux in @d whose banner names another release: what a
    vmlinux of another build looks like to kstep."""
    other = os.path.join(d, "vmlinux")
    data = bytearray(open(VMLINUX, "rb").read())
    for banner in re.finditer(rb"Linux version (\d+\.\d+\.\d+)", data):
        data[banner.start(1):banner.end(1)] = b"9" * (banner.end(1) - banner.start(1))
    open(other, "wb").write(data)
    return other


def halt_reason(s):
    """Send '?' on a connected raw RSP socket; the stop reply's payload."""
    s.sendall(b"+$?#3f")
    data = b""
    while b"#" not in data.split(b"$", 1)[-1]:
        data += s.recv(4096)
    return data.split(b"$", 1)[-1]


def babeltrace(path):
    p = run(["babeltrace2", path], timeout=120)
    assert p.returncode == 0, "babeltrace2 could not read %s: %s" % (path, p.stderr[-400:])
    return p.stdout


EVENT = re.compile(r"kstep:(stop|step|return)(?::(\S+))?: \{ seq = (\d+), guest_ns = (\d+), vcpu = (\d+), "
                   r"pc = (0x[0-9A-F]+), probe = \"([^\"]*)\", symbol = \"([^\"]*)\", skb = (0x[0-9A-F]+)(.*?), regs = ")
FIELD = re.compile(r'(\w+) = ("(?:[^"\\]|\\.)*"|-?0x[0-9A-F]+|-?\d+)')


def field_value(text):
    if text.startswith('"'):
        return text[1:-1]
    return int(text, 16) if "0x" in text else int(text)


# A step's registers: the first part, then regs_more (its length and the
# part, when written), before the stack words.
REGS = re.compile(r"regs = \{ (.*?) \}, (?:regs_more_len = (\d+), regs_more = \[ (.*?)\], )?"
                  r"(?:stack_kept = \d, )?stack_len")


def events(text):
    """Parse babeltrace2's text output into a list of dicts."""
    out = []
    for line in text.splitlines():
        m = EVENT.search(line)
        if not m:
            continue
        ev = {"kind": m.group(1), "event": m.group(2), "seq": int(m.group(3)), "guest_ns": int(m.group(4)),
              "vcpu": int(m.group(5)), "pc": int(m.group(6), 16), "probe": m.group(7), "symbol": m.group(8),
              "skb": int(m.group(9), 16), "bt": re.findall(r'func = "([^"]*)"', line),
              "args": {k: field_value(v) for k, v in FIELD.findall(m.group(10))}}
        im = re.search(r'insn = "([^"]*)", insn_len = (\d+)', line)
        if im:
            ev["insn"], ev["insn_len"] = im.group(1), int(im.group(2))
        lm = re.search(r"stack_len = (\d+)", line)
        ev["stack_len"] = int(lm.group(1)) if lm else None
        sm = re.search(r"stack = \[ \[0\] = (0x[0-9A-F]+)", line)
        ev["stack0"] = int(sm.group(1), 16) if sm else None
        # A step whose stack words are the step before's does not write them.
        if re.search(r"stack_kept = 1,", line):
            assert out and ev["stack_len"] == 0, "stack_kept after %s" % out[-1:]
            ev["stack_len"], ev["stack0"] = out[-1]["stack_len"], out[-1]["stack0"]
        # Each frame whole: its address, name and file:line.
        ev["frames"] = re.findall(r'addr = (0x[0-9A-F]+), func = "([^"]*)", src = "([^"]*)"', line)
        # A step names only the frames the event before did not have on
        # top of its own outermost ones (bt_kept: how many follow).
        km = re.search(r"bt_kept = (\d+)", line)
        kept = int(km.group(1)) if km else 0
        if kept:
            assert out and kept <= len(out[-1]["frames"]), "bt_kept %d after %s" % (kept, out[-1:])
            ev["bt"] += out[-1]["bt"][-kept:]
            ev["frames"] += out[-1]["frames"][-kept:]
        bm = re.search(r'bt_end = "([^"]*)"', line)
        ev["bt_end"] = bm.group(1) if bm else None
        rm = re.search(r"rsp = (0x[0-9A-F]+)", line)
        ev["rsp"] = int(rm.group(1), 16) if rm else None
        regs = REGS.search(line)
        ev["regs"] = {k: int(v, 16) for k, v in re.findall(r"(\w+) = (0x[0-9A-F]+)", regs.group(1))} if regs else {}
        # A step's registers from fs_base on, when they changed; else the
        # step before's.
        if regs and regs.group(2) == "0":
            assert out and "more" in out[-1], "regs_more_len = 0 with no step before"
            ev["more"] = out[-1]["more"]
        elif regs and regs.group(2):
            ev["more"] = {k: int(v, 16) for k, v in re.findall(r"(\w+) = (0x[0-9A-F]+)", regs.group(3))}
        ev["regs"].update(ev.get("more", {}))
        out.append(ev)
    return out


def qemu_pids(pattern):
    """QEMUs whose command line, or whose console (stdout: kstep hands QEMU
    the trace's guest/serial.log as an fd), names @pattern."""
    pids = []
    for pid in run(["pgrep", "-f", "qemu-system"]).stdout.split():
        try:
            cmd = open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode(errors="replace")
            out = os.readlink("/proc/%s/fd/1" % pid)
        except OSError:
            continue
        if pattern in cmd or pattern in out:
            pids.append(int(pid))
    return pids


def thread_cpus(pid):
    """The CPUs each thread of @pid may run on: {tid: set of CPUs}."""
    return {int(t): os.sched_getaffinity(int(t)) for t in os.listdir("/proc/%d/task" % pid)}


def pinned_cpus(smp=1):
    """Where PIN=auto puts QEMU: the last @smp of our CPUs, if more remain."""
    mine = sorted(os.sched_getaffinity(0))
    return set(mine[-smp:]) if len(mine) > smp else set(mine)
