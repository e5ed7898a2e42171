# SPDX-License-Identifier: MIT
"""Issue 11: libvirt domains. A real libvirtd (Debian's; started here with
virtlogd when no service manager runs one, stopped again at the end) runs
the debug guest as a transient domain (make run-guest VIA=libvirt); kstep
traces, steps and dumps it through libvirt's API and hands it back as it
found it, with no gdbserver of its own left in it."""
import atexit
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time

from harness import RUN_GUEST, TREE, VMLINUX, babeltrace, events, free_port, interrupt_when_grown, kstep, run, test, wait_for

URI = "qemu:///system"
_started = []


def virsh(*args, timeout=60):
    return run(["virsh", "-q", "-c", URI, *args], timeout=timeout)


def _stop_daemons():
    for pidfile in ("/run/libvirtd.pid", "/run/virtlogd.pid"):
        if pidfile in _started and os.path.exists(pidfile):
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(open(pidfile).read().split()[0]), signal.SIGTERM)


def libvirtd():
    """libvirtd at qemu:///system, started once for these tests if no service
    manager runs it (CI, containers)."""
    if virsh("version", timeout=30).returncode == 0:
        return
    assert os.geteuid() == 0, "libvirtd is not running and only root can start it for qemu:///system"
    for daemon, pidfile in (("virtlogd", "/run/virtlogd.pid"), ("libvirtd", "/run/libvirtd.pid")):
        p = run([daemon, "-d"], timeout=30)
        assert p.returncode == 0, "%s -d failed: %s" % (daemon, p.stderr[-400:])
        _started.append(pidfile)
    atexit.register(_stop_daemons)
    wait_for(lambda: virsh("version", timeout=30).returncode == 0, 30, "libvirtd to answer")


def chardevs(name):
    return virsh("qemu-monitor-command", name, "--hmp", "info chardev").stdout


def has_stub(name):
    return any(line.startswith("gdb:") for line in chardevs(name).splitlines())


def state(name):
    return virsh("domstate", name).stdout.strip()


@contextlib.contextmanager
def domain(workload="rx-icmp", count=100000, halt=False):
    """The debug guest as a transient libvirt domain (run-guest.sh VIA=libvirt,
    destroyed with it), booted to its workload."""
    libvirtd()
    name = "kstep-it-%d-%d" % (os.getpid(), int(time.monotonic() * 1000) % 100000)
    d = tempfile.mkdtemp(prefix="kstep-lv-")
    os.chmod(d, 0o700)
    log = open(os.path.join(d, "run-guest.log"), "w+")
    env = dict(os.environ, VIA="libvirt", DOMAIN=name, WORKLOAD=workload, COUNT=str(count), ACCEL="tcg",
               KSTEP_RUNDIR=d, HALT="1" if halt else "0")
    p = subprocess.Popen([RUN_GUEST], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        ready = "paused; gdbstub" if halt else "KSTEP-READY"
        wait_for(lambda: ready in open(log.name).read() or p.poll() is not None, 120, "the domain's " + ready)
        assert p.poll() is None, open(log.name).read()[-600:]
        yield {"name": name, "dir": d, "log": log.name}
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(30)
        virsh("destroy", name)  # in case: autodestroy has done it already
        log.close()
        subprocess.run(["rm", "-rf", d])


def handed_back(name, want):
    assert state(name) == want, "domain left %s, not %s" % (state(name), want)
    assert not has_stub(name), "a gdbserver was left in the domain: " + chardevs(name)


@test
def test_trace_a_running_domain_through_libvirt_and_hand_it_back():
    out = tempfile.mkdtemp(prefix="kstep-lv-")
    with domain() as dom:
        assert not has_stub(dom["name"])
        p = kstep("trace", "--domain", dom["name"], "--libvirt", URI, "--max-stops", "40", "-o",
                  os.path.join(out, "t"), "-q", timeout=300)
        assert p.returncode == 0, p.stderr[-800:]
        handed_back(dom["name"], "running")
        evs = events(babeltrace(os.path.join(out, "t")))
        assert len(evs) == 40 and {"icmp_rcv", "ip_local_deliver"} <= {e["symbol"] for e in evs}, {e["symbol"] for e in evs}
        icmp = [e for e in evs if e["symbol"] == "icmp_rcv"][0]
        assert "ip_local_deliver" in " ".join(icmp["bt"]), icmp["bt"]
        meta = open(os.path.join(out, "t", "metadata")).read()
        assert 'libvirt_uri = "%s"' % URI in meta and 'libvirt_domain = "%s"' % dom["name"] in meta
        # A vmcore of the same domain, through libvirt's own dump: crash opens it.
        core = os.path.join(out, "vmcore")
        p = kstep("dump", "--domain", dom["name"], "-o", core, timeout=300)
        assert p.returncode == 0 and os.stat(core).st_mode & 0o777 == 0o600, p.stderr[-400:]
        handed_back(dom["name"], "running")
        c = run(["crash", "-s", "--kaslr", "auto", VMLINUX, core], input="sys\nquit\n", timeout=300)
        assert "RELEASE: " in c.stdout, c.stdout[-400:] + c.stderr[-400:]
    subprocess.run(["rm", "-rf", out])


@test
def test_step_a_paused_domain_leaves_it_paused():
    out = tempfile.mkdtemp(prefix="kstep-lv-")
    with domain() as dom:
        assert virsh("suspend", dom["name"]).returncode == 0
        p = kstep("step", "--domain", dom["name"], "--at", "icmp_rcv", "--count", "100", "-o",
                  os.path.join(out, "s"), "-q", timeout=300)
        assert p.returncode == 0 and "100 instructions" in p.stdout, p.stdout[-400:] + p.stderr[-600:]
        handed_back(dom["name"], "paused")
        steps = [e for e in events(babeltrace(os.path.join(out, "s"))) if e["kind"] == "step"]
        assert len(steps) == 100 and steps[0]["symbol"] == "icmp_rcv", steps[:1]
    subprocess.run(["rm", "-rf", out])


@test
def test_ctrl_c_mid_trace_hands_the_domain_back():
    out = tempfile.mkdtemp(prefix="kstep-lv-")
    with domain() as dom:
        p = subprocess.Popen([os.path.join(TREE, "build", "kstep"), "trace", "--domain", dom["name"], "-o",
                              os.path.join(out, "t"), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        stdout, stderr = interrupt_when_grown(p, os.path.join(out, "t", "stream_0"), 4096, 120,
                                              "the domain's first stops")
        assert p.returncode == 130 and "interrupted" in stderr, stderr[-600:]
        handed_back(dom["name"], "running")
        assert events(babeltrace(os.path.join(out, "t")))
    subprocess.run(["rm", "-rf", out])


def refused(args, message):
    out = tempfile.mkdtemp(prefix="kstep-lv-")
    p = kstep("trace", *args, "-o", os.path.join(out, "t"), timeout=120)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1 and message in lines[0], p.stderr[-600:]
    assert not os.listdir(out) or os.listdir(out) == ["t"] and not os.listdir(os.path.join(out, "t"))
    subprocess.run(["rm", "-rf", out])


@test
def test_bad_libvirt_input_says_what_is_wrong_and_leaves_the_domain_alone():
    libvirtd()
    refused(["--libvirt", "qemu:///system?socket=/nonexistent/libvirt-sock", "--domain", "x"],
            "cannot connect to libvirt at qemu:///system?socket=/nonexistent/libvirt-sock")
    refused(["--domain", "no-such-domain-%d" % os.getpid()], "no domain 'no-such-domain")
    # libvirt's test driver holds an i686 domain named test.
    refused(["--libvirt", "test:///default", "--domain", "test"], "is an i686 guest: kstep debugs x86-64")
    with domain() as dom:
        xml = os.path.join(dom["dir"], "off.xml")
        env = dict(os.environ, VIA="libvirt", PRINT_XML="1", DOMAIN=dom["name"] + "-off", KSTEP_RUNDIR=dom["dir"])
        open(xml, "w").write(run([RUN_GUEST], env=env, check=True).stdout)
        assert virsh("define", xml).returncode == 0
        try:
            refused(["--domain", dom["name"] + "-off"], "is not running (shut off)")
        finally:
            virsh("undefine", dom["name"] + "-off")
        # QEMU cannot create a socket where its user may not write.
        refused(["--domain", dom["name"], "--stub-path", "/root/kstep-no/gdb.sock"], "its QEMU cannot open a gdbstub")
        handed_back(dom["name"], "running")
        # A stub someone else holds is not taken over.
        sock = "/var/lib/libvirt/qemu/%s.sock" % dom["name"]
        virsh("qemu-monitor-command", dom["name"], "--hmp", "gdbserver unix:%s,server=on,wait=off" % sock)

        with socket.socket(socket.AF_UNIX) as held:
            held.connect(sock)
            wait_for(lambda: "disconnected" not in chardevs(dom["name"]), 10, "the stub to be held")
            before = state(dom["name"])  # QEMU stops the guest for the debugger that connected
            refused(["--domain", dom["name"]], "is held by another debugger")
            assert state(dom["name"]) == before and has_stub(dom["name"])
        virsh("qemu-monitor-command", dom["name"], "--hmp", "gdbserver none")


@test
def test_run_guest_via_libvirt_and_gdb_attach_to_a_domain():
    libvirtd()
    d = tempfile.mkdtemp(prefix="kstep-lv-")
    os.chmod(d, 0o700)
    env = {"VIA": "libvirt", "DOMAIN": "kstep-it-rg-%d" % os.getpid(), "WORKLOAD": "rx-icmp", "ACCEL": "tcg",
           "KSTEP_RUNDIR": d}
    p = run([RUN_GUEST], env=env, timeout=300)
    assert p.returncode == 0 and "KSTEP-WORKLOAD-DONE rx-icmp 0" in p.stdout, p.stdout[-400:] + p.stderr[-400:]
    assert "guest finished: success" in p.stderr
    assert virsh("domstate", env["DOMAIN"]).returncode != 0, "the transient domain outlived run-guest"
    with domain() as dom:
        p = run([os.path.join(TREE, "gdbscripts", "attach.sh"), "-batch", "-ex", "bt"], timeout=180,
                env={"DOMAIN": dom["name"], "KSTEP_RUNDIR": dom["dir"]})
        assert p.returncode == 0 and "#0" in p.stdout, p.stdout[-600:] + p.stderr[-600:]
        handed_back(dom["name"], "running")
    subprocess.run(["rm", "-rf", d])


@contextlib.contextmanager
def sshd():
    """This machine's own sshd on a loopback port of its own, with a key made
    here: a qemu+ssh:// URI to this host, as to a lab machine."""
    d = tempfile.mkdtemp(prefix="kstep-sshd-")
    port = free_port()
    for key in ("host", "client"):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, key)], check=True)
    os.makedirs("/run/sshd", exist_ok=True)
    open(os.path.join(d, "config"), "w").write(
        "Port %d\nListenAddress 127.0.0.1\nHostKey %s/host\nPidFile %s/pid\nAuthorizedKeysFile %s/client.pub\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n" % (port, d, d, d))
    p = run(["/usr/sbin/sshd", "-f", os.path.join(d, "config"), "-E", os.path.join(d, "log")], timeout=30)
    assert p.returncode == 0, p.stderr[-400:]
    try:
        wait_for(lambda: os.path.exists(os.path.join(d, "pid")), 10, "sshd")
        yield "qemu+ssh://root@127.0.0.1:%d/system?keyfile=%s/client&no_verify=1" % (port, d)
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(open(os.path.join(d, "pid")).read()), signal.SIGTERM)
        run(["ssh-keygen", "-R", "[127.0.0.1]:%d" % port])
        subprocess.run(["rm", "-rf", d])


@test
def test_remote_domain_over_ssh_and_a_dropped_connection():
    out = tempfile.mkdtemp(prefix="kstep-lv-")
    with domain() as dom, sshd() as uri:
        p = kstep("trace", "--libvirt", uri, "--domain", dom["name"], "--max-stops", "20", "-o",
                  os.path.join(out, "t"), "-q", timeout=300, env={"KSTEP_RUNDIR": dom["dir"]})
        assert p.returncode == 0, p.stderr[-800:]
        handed_back(dom["name"], "running")
        assert 'libvirt_uri = "%s"' % uri in open(os.path.join(out, "t", "metadata")).read()
        assert len(events(babeltrace(os.path.join(out, "t")))) == 20
        assert not [f for f in os.listdir(dom["dir"]) if f.endswith("gdb.sock")], "the forwarded socket stayed"
        # The ssh that carries the stub dies mid-trace: kstep says so, takes
        # its breakpoints out through a new connection and hands the domain back.
        k = subprocess.Popen([os.path.join(TREE, "build", "kstep"), "trace", "--libvirt", uri, "--domain", dom["name"],
                              "-o", os.path.join(out, "drop"), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=dict(os.environ, KSTEP_RUNDIR=dom["dir"]))
        forwarded = lambda: [f for f in os.listdir(dom["dir"]) if f.endswith("gdb.sock")]  # noqa: E731
        wait_for(lambda: forwarded() or k.poll() is not None, 60, "the forwarded stub")
        time.sleep(3)
        assert run(["pkill", "-f", "--", "ExitOnForwardFailure=yes .*" + forwarded()[0]]).returncode == 0
        try:
            stdout, stderr = k.communicate(timeout=120)
        finally:
            k.kill()
        assert k.returncode == 1 and "the connection to its gdbstub broke" in stderr, stderr[-600:]
        wait_for(lambda: state(dom["name"]) == "running", 10, "the domain to run on")
        time.sleep(2)  # no breakpoint of kstep's stops it again
        handed_back(dom["name"], "running")
        assert events(babeltrace(os.path.join(out, "drop")))
    subprocess.run(["rm", "-rf", out])


def domains():
    return virsh("list", "--all", "--name").stdout.split()


@test
def test_kstep_boots_its_guest_as_a_libvirt_domain():
    libvirtd()
    out = tempfile.mkdtemp(prefix="kstep-lv-")
    before = domains()
    p = kstep("trace", "--libvirt", URI, "--workload", "rx-icmp", "--size", "3", "-o", os.path.join(out, "t"), "-q",
              timeout=300)
    assert p.returncode == 0 and "the guest finished its workload" in p.stderr, p.stderr[-800:]
    assert "KSTEP-WORKLOAD-DONE rx-icmp 0" in open(os.path.join(out, "t", "guest", "serial.log")).read()
    assert {"icmp_rcv", "skb_copy_datagram_iter"} <= {e["symbol"] for e in events(babeltrace(os.path.join(out, "t")))}
    assert domains() == before, "kstep's domain outlived it"
    # The dying guest: the oops is caught, its vmcore written through libvirt.
    p = kstep("trace", "--libvirt", URI, "--workload", "oops", "-o", os.path.join(out, "oops"), "-q", timeout=300)
    assert p.returncode == 4 and "OOPS caught" in p.stderr, p.stderr[-800:]
    assert os.path.getsize(os.path.join(out, "oops", "guest", "vmcore")) > 1 << 20, p.stderr[-400:]
    assert domains() == before, "kstep's domain outlived it"
    subprocess.run(["rm", "-rf", out])
