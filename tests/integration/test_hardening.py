# SPDX-License-Identifier: MIT
"""Issue 9: no local root through the stub, no writes through symlinks, exit
statuses that say what happened, a trace that survives a full disk, a
guest kept off the host's loopback. Real guests under TCG; a second local
user where the test needs one (CI runs as root and creates it)."""
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from harness import (KSTEP, RUN_GUEST, TREE, Skip, babeltrace, events, free_port, halt_reason, kstep, qemu_pids, qmp,
                     need, run, test, wait_for)

OTHER_USER = "kstep-other"


def other_user():
    """A second, unprivileged local account: (uid, gid)."""
    assert os.getuid() == 0, "this test acts as a second local user: run it as root (make test does)"
    try:
        pw = pwd.getpwnam(OTHER_USER)
    except KeyError:
        run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER], check=True)
        pw = pwd.getpwnam(OTHER_USER)
    return pw.pw_uid, pw.pw_gid


def as_other(code):
    """Run python @code as the second user; its stdout."""
    uid, gid = other_user()
    return run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups", "python3", "-c", code],
               timeout=30).stdout


def shared_tmp():
    """A directory like /tmp: everyone may create in it (sticky)."""
    d = tempfile.mkdtemp(prefix="kstep-shared-")
    os.chmod(d, 0o1777)
    return d


def start_guest(env, workload="shell"):
    e = dict(os.environ, WORKLOAD=workload, ACCEL="tcg", HALT="1")
    e.pop("KSTEP_RUNDIR", None)
    e.update(env)
    return subprocess.Popen([RUN_GUEST], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True, text=True)


def stop(p):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(10)


@test
def test_second_user_cannot_reach_the_stub():
    base = shared_tmp()
    p = start_guest({"XDG_RUNTIME_DIR": base})
    rundir = os.path.join(base, "kstep-%d" % os.getuid())
    sock = os.path.join(rundir, "gdb.sock")
    try:
        wait_for(lambda: os.path.exists(sock) or p.poll() is not None, 20, "the gdbstub socket")
        assert p.poll() is None, p.stderr.read()
        assert os.stat(rundir).st_mode & 0o777 == 0o700
        # No TCP listener at all: QEMU's sockets are unix sockets.
        pid = qemu_pids(sock)[0]
        assert "pid=%d," % pid not in run(["ss", "-Hltnp"]).stdout, "QEMU listens on TCP"
        out = as_other("import socket\ns = socket.socket(socket.AF_UNIX)\n"
                       "try:\n    s.connect(%r); print('CONNECTED')\n"
                       "except OSError as e: print('REFUSED', e.errno)" % sock)
        assert out.startswith("REFUSED 13"), "a second user reached the stub: " + out
        # Its owner does reach it: halted at the reset vector.
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(sock)
            reply = halt_reason(s)
            assert reply.startswith(b"T05") or reply.startswith(b"S05"), reply
    finally:
        stop(p)
        shutil.rmtree(base, ignore_errors=True)
    # TCP only when asked for, and then with a warning that says what it exposes.
    port = free_port()
    p = start_guest({"KSTEP_RUNDIR": tempfile.mkdtemp(prefix="kstep-it-"), "GDB_PORT": str(port), "DRY_RUN": "1"})
    _, err = p.communicate(timeout=30)
    assert "WARNING: GDB_PORT=%d" % port in err and "every local" in err and "monitor" in err, err


@test
def test_run_directory_prepared_by_someone_else_is_refused():
    uid, _ = other_user()
    base = shared_tmp()
    rundir = os.path.join(base, "kstep-%d" % os.getuid())
    victim = os.path.join(base, "victim")
    open(victim, "w").write("precious\n")
    os.chown(victim, uid, -1)

    def made_by_other():
        os.mkdir(rundir, 0o700)
        os.chown(rundir, uid, -1)

    plants = ((made_by_other, "belongs to uid %d" % uid),
              (lambda: os.symlink(base, rundir), "not a directory of yours"),
              (lambda: os.mkdir(rundir, 0o755), "has mode 755, not 700"))
    try:
        for plant, why in plants:
            plant()
            for dry in ("1", "0"):
                p = start_guest({"XDG_RUNTIME_DIR": base, "DRY_RUN": dry})
                _, err = p.communicate(timeout=30)
                assert p.returncode == 2 and why in err, (why, dry, err)
            a = run([os.path.join(TREE, "gdbscripts", "attach.sh"), "-batch"], env={"XDG_RUNTIME_DIR": base})
            assert a.returncode == 2 and why in a.stderr, (why, a.stderr)
            g = run(["gdb", "-batch", "-nx", "-x", os.path.join(TREE, "gdbscripts", "rx-path.gdb")],
                    env={"XDG_RUNTIME_DIR": base, "KSTEP_GDBSCRIPTS": os.path.join(TREE, "gdbscripts")})
            assert "is not a private directory of yours: refusing it" in g.stdout + g.stderr, g.stderr[-400:]
            if os.path.islink(rundir):
                os.unlink(rundir)
            else:
                shutil.rmtree(rundir)
        assert open(victim).read() == "precious\n"
        assert not os.path.exists(os.path.join(base, "guest.env")), "written through the planted link"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@test
def test_output_directory_is_private_and_never_reused_silently():
    base = shared_tmp()
    try:
        victim = os.path.join(base, "victim")
        os.mkdir(victim)
        link = os.path.join(base, "trace")
        os.symlink(victim, link)
        t0 = time.monotonic()
        p = kstep("trace", "--max-stops", "3", "-o", link, "-q")
        assert p.returncode == 1 and "refusing to write through it" in p.stderr, p.stderr
        assert os.listdir(victim) == [] and time.monotonic() - t0 < 5, "it wrote or booted"
        stray = os.path.join(base, "stray")
        os.mkdir(stray)
        open(os.path.join(stray, "notes.txt"), "w").write("mine\n")
        p = kstep("trace", "--max-stops", "3", "-o", stray, "-q", "--force")
        assert p.returncode == 1 and "is not empty and is not a kstep trace" in p.stderr, p.stderr
        assert os.listdir(stray) == ["notes.txt"]
        old = os.path.join(base, "old")
        old_umask = os.umask(0o022)
        try:
            p = kstep("trace", "--max-stops", "3", "-o", old, "-q")
        finally:
            os.umask(old_umask)
        assert p.returncode == 0, p.stderr[-600:]
        # Private whatever the umask: a trace holds guest memory.
        for path in (old, os.path.join(old, "guest")):
            assert os.stat(path).st_mode & 0o777 == 0o700, path
        for name in ("metadata", "stream_0", "guest/serial.log"):
            assert os.stat(os.path.join(old, name)).st_mode & 0o777 == 0o600, name
        p = kstep("trace", "--max-stops", "3", "-o", old, "-q")
        assert p.returncode == 1 and "already holds a kstep trace: pass --force" in p.stderr, p.stderr
        p = kstep("trace", "--max-stops", "4", "-o", old, "-q", "--force")
        assert p.returncode == 0 and len(events(babeltrace(old))) == 4, p.stderr[-400:]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def traced_guest(rundir, out, *extra):
    """A long kstep trace whose private QEMU directory lands in @rundir."""
    return subprocess.Popen([KSTEP, "trace", "--workload", "rx-tcp", "--size", "500000000", "-o", out, "-q",
                             *extra], env=dict(os.environ, XDG_RUNTIME_DIR=rundir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def kstep_qmp(rundir):
    socks = glob.glob(os.path.join(rundir, "kstep-%d-*" % os.getuid(), "qmp.sock"))
    return socks[0] if len(socks) == 1 else None


@test
def test_each_ending_has_its_exit_status():
    # A reset and a QMP quit in the middle of a trace: not "finished".
    for command, code, text in (("system_reset", 5, "was reset (host-qmp-system-reset)"),
                                ("quit", 6, "QEMU was told to quit (QMP quit)")):
        rundir = tempfile.mkdtemp(prefix="kstep-run-")
        out = tempfile.mkdtemp(prefix="kstep-trace-")
        p = traced_guest(rundir, out)
        try:
            wait_for(lambda: os.path.exists(os.path.join(out, "stream_0")) and
                     os.path.getsize(os.path.join(out, "stream_0")) > 50000, 60, "stops in the trace")
            assert qmp(kstep_qmp(rundir), command).get("return") == {}
            o, err = p.communicate(timeout=60)
            assert p.returncode == code and text in err, (command, p.returncode, err[-600:])
            assert "finished its workload" not in err
            n = int(re.search(r"kstep: (\d+) stops", o).group(1))
            assert len(events(babeltrace(out))) == n
        finally:
            if p.poll() is None:
                p.kill()
            shutil.rmtree(rundir, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
    # A panic that no probe catches, and a workload that fails.
    for args, code, text in ((["--workload", "oops", "--probes", "rx"], 4, "the guest kernel panicked"),
                             (["--workload", "isolation", "--probes", "none", "--break", "icmp_rcv"], 3,
                              "workload isolation failed with rc 2")):
        out = tempfile.mkdtemp(prefix="kstep-trace-")
        p = kstep("trace", *args, "-o", out, "-q", timeout=120)
        shutil.rmtree(out, ignore_errors=True)
        assert p.returncode == code and text in p.stderr, (args, p.returncode, p.stderr[-600:])


@test
def test_full_disk_leaves_a_readable_trace():
    """On a 300 KiB tmpfs (a mount namespace of its own) the trace fills the
    disk: kstep says so, and the trace reads up to its last complete event."""
    work = tempfile.mkdtemp(prefix="kstep-full-")
    small = os.path.join(work, "small")
    kept = os.path.join(work, "kept")
    os.mkdir(small)
    script = ('mount -t tmpfs -o size=300k none "$1" || exit 99\n'
              '"$2" trace --workload rx-tcp --size 50000000 --accel tcg -q -o "$1/t"\n'
              'echo "kstep-rc=$?"\ncp -a "$1/t" "$3"\n')
    try:
        p = run(["unshare", "--mount", "--map-root-user", "sh", "-c", script, "sh", small, KSTEP, kept],
                timeout=300)
        assert "kstep-rc=1" in p.stdout, p.stdout[-400:] + p.stderr[-600:]
        assert "writing the trace: No space left on device" in p.stderr, p.stderr[-600:]
        n = int(re.search(r"kstep: (\d+) stops", p.stdout).group(1))
        assert n > 20 and len(events(babeltrace(kept))) == n, n
    finally:
        shutil.rmtree(work, ignore_errors=True)


@test
def test_busy_stub_is_named_as_such():
    d = tempfile.mkdtemp(prefix="kstep-it-")
    os.chmod(d, 0o700)
    sock = os.path.join(d, "gdb.sock")
    p = start_guest({"KSTEP_RUNDIR": d, "GDB_SOCK": sock}, workload="rx-icmp")
    try:
        wait_for(lambda: os.path.exists(sock), 20, "the gdbstub socket")
        with socket.socket(socket.AF_UNIX) as first:
            first.connect(sock)          # another debugger holds the stub
            k = kstep("trace", "--attach", "unix:" + sock, "--max-stops", "2", "-o", os.path.join(d, "t"), "-q",
                      timeout=60)
        assert k.returncode == 1 and "probably in use by another debugger" in k.stderr, k.stderr
    finally:
        stop(p)
        shutil.rmtree(d, ignore_errors=True)


@test
def test_break_past_the_function_is_refused():
    p = kstep("trace", "--break", "icmp_rcv+0x100000", "-o", tempfile.mkdtemp(prefix="kstep-it-"))
    assert p.returncode == 1 and "past the end of its function" in p.stderr, p.stderr


@test
def test_qemu_does_not_outlive_kstep_and_its_keeper():
    rundir = tempfile.mkdtemp(prefix="kstep-run-")
    out = tempfile.mkdtemp(prefix="kstep-trace-")
    p = traced_guest(rundir, out)
    try:
        wait_for(lambda: qemu_pids(out), 30, "QEMU")
        qemu = qemu_pids(out)[0]
        keeper = int(open("/proc/%d/stat" % qemu).read().rsplit(")", 1)[1].split()[1])
        assert keeper != p.pid and keeper != 1
        # A fresh image of kstep's binary, not a fork of kstep that shares
        # its pages (each first write kstep makes to one would copy it).
        # (A fork would have kstep's command line.)
        cmdline = open("/proc/%d/cmdline" % keeper, "rb").read().split(b"\0")
        assert cmdline[:2] == [b"kstep", b"__keeper"], cmdline[:6]
        os.kill(p.pid, signal.SIGKILL)
        os.kill(keeper, signal.SIGKILL)
        p.wait(10)
        wait_for(lambda: not os.path.exists("/proc/%d" % qemu) or
                 open("/proc/%d/stat" % qemu).read().rsplit(")", 1)[1].split()[0] == "Z", 10, "QEMU to die")
    finally:
        for pid in qemu_pids(out):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(rundir, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


@test
def test_a_host_without_proc_still_traces():
    """A container or chroot may have no /proc. The run directory's check
    read stat's answer through a process substitution, which needs
    /dev/fd, and kstep stopped with 'rundir.sh: /dev/fd/63: No such file
    or directory'; and the keeper, exec'd as /proc/self/exe, must run in
    the forked child instead. A private mount namespace without /proc."""
    need("unshare")
    if os.geteuid() != 0:
        raise Skip("unmounting /proc in a namespace needs root")
    out = tempfile.mkdtemp(prefix="kstep-noproc-")
    try:
        p = run(["unshare", "-m", "sh", "-c", 'umount -l /proc && test ! -e /proc/self && exec "$@"', "sh",
                 KSTEP, "trace", "-p", "rx", "-w", "rx-icmp", "--max-stops", "3", "-q", "--force", "-o", out])
        assert p.returncode == 0, p.stderr[-600:]
        assert len(events(babeltrace(out))) == 3
    finally:
        shutil.rmtree(out, ignore_errors=True)


@test
def test_the_keeper_argument_by_hand_is_refused():
    for args in (["__keeper"], ["__keeper", "99", "98", "-1", "/x", "true"]):
        p = kstep(*args)
        assert p.returncode == 2 and "__keeper is kstep's own" in p.stderr, (args, p.returncode, p.stderr)


@test
def test_guest_cannot_reach_host_loopback():
    """A server on the host's 127.0.0.1 is out of the guest's reach (10.0.2.2
    would forward to it under QEMU's default user network)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.5)
    got = []
    done = threading.Event()

    def accept():
        while not done.is_set() and not got:
            try:
                c, _ = srv.accept()
                got.append(c.recv(64))
                c.close()
            except socket.timeout:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    d = tempfile.mkdtemp(prefix="kstep-it-")
    try:
        p = run([RUN_GUEST], env={"WORKLOAD": "isolation", "COUNT": str(srv.getsockname()[1]), "ACCEL": "tcg",
                                  "KSTEP_RUNDIR": d}, timeout=120)
        out = p.stdout + p.stderr
        assert p.returncode == 0 and "is out of the guest's reach" in out, out[-800:]
        assert not got, "the guest reached the host's loopback: %r" % got
        # What the workloads need still works through the restricted network.
        assert "KSTEP-READY" in out
    finally:
        done.set()
        t.join(5)
        srv.close()
        shutil.rmtree(d, ignore_errors=True)


@test
def test_offline_commands_end_on_ctrl_c():
    """kstep oops, report and diff once caught SIGINT and went on to exit
    0; now they stop and exit 130 (oops on a log still being written)."""
    p = subprocess.Popen([KSTEP, "oops", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    p.stdin.write("[    1.0] a line of a log still being written\n")
    p.stdin.flush()
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130 and "interrupted after 1 lines" in err, (p.returncode, err)


@test
def test_a_slow_qemu_start_is_waited_for():
    """Under load (3-7) QEMU once took over 10 s to open its sockets, and
    kstep gave up ("did not open its sockets within 10000 ms"). kstep now
    waits while QEMU lives: a QEMU that takes 12 s to start is traced."""
    d = tempfile.mkdtemp(prefix="kstep-slowqemu-")
    try:
        slow = os.path.join(d, "qemu")
        with open(slow, "w") as f:
            f.write('#!/bin/sh\n# QEMU, 12 s late when it runs a guest (not for -device help)\n'
                    'case "$*" in *-gdb*) sleep 12 ;; esac\nexec qemu-system-x86_64 "$@"\n')
        os.chmod(slow, 0o755)
        out = os.path.join(d, "t")
        p = kstep("trace", "--workload", "rx-icmp", "--size", "1", "--accel", "tcg", "-q", "-o", out,
                  env={"QEMU": slow}, timeout=300)
        assert p.returncode == 0, p.stderr[-600:]
    finally:
        shutil.rmtree(d)


@test
def test_dump_refuses_a_run_directory_prepared_by_someone_else():
    """Issue 22: with XDG_RUNTIME_DIR a 1777 directory, another user wrote
    kstep-0/guest.env naming a QMP socket of theirs, and root's kstep dump
    handed that socket a descriptor of its new vmcore. Now the run
    directory must be root's and private, and the socket root's."""
    shared = shared_tmp()
    try:
        uid, _ = other_user()
        code = ("import os, socket\nd = %r\nos.mkdir(d, 0o700)\ns = socket.socket(socket.AF_UNIX)\n"
                "s.bind(d + '/qmp.sock')\nopen(d + '/guest.env', 'w').write('QMP_SOCK=' + d + '/qmp.sock\\n')\n"
                "print('planted')\n") % os.path.join(shared, "kstep-0")
        assert "planted" in as_other(code)
        out = os.path.join(tempfile.mkdtemp(prefix="kstep-dump-"), "my.vmcore")
        p = kstep("dump", "-o", out, env={"XDG_RUNTIME_DIR": shared, "KSTEP_RUNDIR": ""}, timeout=60)
        assert p.returncode == 1 and "belongs to uid %d" % uid in p.stderr, p.stderr
        # A private directory of root's whose guest.env names another's socket.
        mine = tempfile.mkdtemp(prefix="kstep-rd-")
        sock = os.path.join(shared, "kstep-0", "qmp.sock")
        with open(os.path.join(mine, "guest.env"), "w") as f:
            f.write("QMP_SOCK=%s\n" % sock)
        p = kstep("dump", "-o", out, env={"KSTEP_RUNDIR": mine}, timeout=60)
        assert p.returncode == 1 and "not a QMP socket of yours" in p.stderr, p.stderr
        assert not os.path.exists(out) or os.path.getsize(out) == 0
        shutil.rmtree(mine)
        shutil.rmtree(os.path.dirname(out))
    finally:
        subprocess.run(["rm", "-rf", shared])


@test
def test_run_guest_says_when_qemu_was_killed():
    """Issue 22: QEMU ended by SIGTERM once made run-guest.sh say 'guest
    finished: success' (QEMU exits 0 on SIGTERM); it names the signal and
    exits 128+15."""
    d = tempfile.mkdtemp(prefix="kstep-it-")
    os.chmod(d, 0o700)
    try:
        p = subprocess.Popen([RUN_GUEST], env=dict(os.environ, WORKLOAD="rx-udp", COUNT="100000000", ACCEL="tcg",
                                                   KSTEP_RUNDIR=d),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        wait_for(lambda: qemu_pids(d), 30, "QEMU")
        time.sleep(2)
        for pid in qemu_pids(d):
            os.kill(int(pid), signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 143, (p.returncode, err[-400:])
        assert "QEMU was ended by signal 15 before the guest finished" in err and "success" not in err, err[-400:]
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test
def test_record_on_a_full_disk_is_no_recording():
    """Issue 22: a full disk during record exited 1 where kstep record
    documents 6 for an unusable recording; and under umask 000 the replay
    log is 0600 all the same."""
    work = tempfile.mkdtemp(prefix="kstep-recfull-")
    small = os.path.join(work, "small")
    os.mkdir(small)
    script = ('mount -t tmpfs -o size=2m none "$1" || exit 99\n'
              '"$2" record --workload rx-tcp -q -o "$1/r"\necho "kstep-rc=$?"\n')
    try:
        p = run(["unshare", "--mount", "--map-root-user", "sh", "-c", script, "sh", small, KSTEP], timeout=300)
        assert "kstep-rc=6" in p.stdout, p.stdout[-400:] + p.stderr[-600:]
        assert "no usable recording" in p.stderr, p.stderr[-600:]
        rec = os.path.join(work, "rec")
        p = subprocess.run(["sh", "-c", 'umask 000; exec "$0" record --workload rx-icmp --size 1 -q -o "$1"', KSTEP,
                            rec], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-600:]
        for f in os.listdir(rec):
            assert os.stat(os.path.join(rec, f)).st_mode & 0o077 == 0, (f, oct(os.stat(os.path.join(rec, f)).st_mode))
    finally:
        shutil.rmtree(work, ignore_errors=True)
