# SPDX-License-Identifier: MIT
"""Issue 21: the paths that run only the first time on a machine. This
machine, and CI's, already have every package, so each path is run here
against empty stand-ins: an empty root for installed kernels
(KSTEP_SYSROOT), apt-get, apt-cache and dpkg-query on PATH that answer as a
machine with nothing installed and no package lists would, a kernel source
tarball not yet unpacked, a read-only tree in a mount namespace, and no
libvirtd. Each checks that the path goes through, and that where it cannot
it says why on stderr instead of failing in silence."""
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile

from harness import IMAGES, TOOLS, TREE, run, test, wait_for

APT_STANDINS = r'''#!/bin/sh
# Stand-in for @NAME@: logs its call; answers as a machine on which
# nothing is installed and whose package lists were never fetched.
echo "@NAME@ $*" >>"$STANDIN_LOG"
lists=$STANDIN_DIR/lists-fetched
case "@NAME@ $1" in
"apt-get update") touch "$lists" ;;
"apt-cache search") [ -e "$lists" ] && echo "linux-image-6.1.0-99-cloud-amd64-dbg - Debug symbols" ;;
"apt-get install")
	[ -e "$lists" ] || { echo "E: Unable to locate package" >&2; exit 100; }
	r=
	for a in "$@"; do case $a in linux-image-*-unsigned) r=${a#linux-image-}; r=${r%-unsigned} ;; esac; done
	[ -n "$r" ] || exit 0
	mkdir -p "$KSTEP_SYSROOT/boot" "$KSTEP_SYSROOT/usr/lib/debug/boot" "$KSTEP_SYSROOT/lib/modules/$r/kernel"
	echo bzimage >"$KSTEP_SYSROOT/boot/vmlinuz-$r"
	echo vmlinux >"$KSTEP_SYSROOT/usr/lib/debug/boot/vmlinux-$r"
	for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover \
		net_failover virtio_net pvpanic pvpanic-pci; do
		echo "$m" >"$KSTEP_SYSROOT/lib/modules/$r/kernel/$m.ko"
	done ;;
"dpkg-query -W") exit 1 ;;
esac
exit 0
'''


def standins():
    """A directory of stand-in package tools first on PATH, and its log."""
    d = tempfile.mkdtemp(prefix="kstep-firstrun-")
    bindir = os.path.join(d, "bin")
    os.mkdir(bindir)
    for name in ("apt-get", "apt-cache", "dpkg-query"):
        path = os.path.join(bindir, name)
        with open(path, "w") as f:
            f.write(APT_STANDINS.replace("@NAME@", name))
        os.chmod(path, 0o755)
    log = os.path.join(d, "calls")
    open(log, "w").close()
    env = {"PATH": bindir + ":" + os.environ["PATH"], "STANDIN_LOG": log, "STANDIN_DIR": d,
           "KSTEP_SYSROOT": os.path.join(d, "root")}
    os.mkdir(env["KSTEP_SYSROOT"])
    return d, env, log


def project_images(d):
    """An images directory with the project's initramfs, as make images
    leaves it, for build-distro.sh to add modules to."""
    images = os.path.join(d, "images")
    os.makedirs(os.path.join(images, "build", "initramfs", "bin"))
    shutil.copy(os.path.join(IMAGES, "initramfs.cpio.gz"), images)
    return images


def as_nobody(cmd):
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]


@test
def test_distro_kernel_first_run_no_kernel_no_lists():
    """The failure a fresh machine met: no cloud kernel installed, package
    lists never fetched. build-distro.sh fetches the lists, installs the
    newest kernel with its -dbg, and builds images/distro."""
    d, env, log = standins()
    try:
        env["IMAGES"] = project_images(d)
        p = run([os.path.join(TREE, "guest", "build-distro.sh")], env=env, timeout=120)
        calls = open(log).read().splitlines()
        assert p.returncode == 0, "build-distro.sh failed (%d): %s\ncalls: %s" % (p.returncode, p.stderr, calls)
        assert "no package lists yet" in p.stderr, p.stderr
        update = calls.index("apt-get update -qq")
        install = [i for i, c in enumerate(calls) if c.startswith("apt-get install")]
        assert install and install[0] > update, calls
        assert "linux-image-6.1.0-99-cloud-amd64-unsigned linux-image-6.1.0-99-cloud-amd64-dbg" in calls[install[0]]
        out = os.path.join(env["IMAGES"], "distro")
        assert open(os.path.join(out, "bzImage")).read() == "bzimage\n"
        assert os.readlink(os.path.join(out, "vmlinux")).startswith(env["KSTEP_SYSROOT"])
        names = subprocess.run("zcat %s | cpio -t --quiet" % os.path.join(out, "initramfs.cpio.gz"), shell=True,
                               capture_output=True, text=True).stdout.split()
        assert "modules/virtio_net.ko" in names, names[:20]
        # A second run finds the kernel installed and has nothing to do.
        p = run([os.path.join(TREE, "guest", "build-distro.sh")], env=env, timeout=60)
        assert p.returncode == 0 and "up to date" in p.stderr, p.stderr
    finally:
        shutil.rmtree(d)


@test
def test_distro_kernel_refusals_say_why():
    """Where the first run cannot go on, one line on stderr says why: as a
    user who cannot install, and where the registry has no cloud kernel."""
    d, env, log = standins()
    try:
        env["IMAGES"] = project_images(d)
        os.chmod(d, 0o755)
        os.chmod(log, 0o666)
        script = os.path.join(TREE, "guest", "build-distro.sh")
        p = run(as_nobody([script]), env=env, timeout=60)
        assert p.returncode != 0
        assert re.search(r"build-distro: no Debian cloud kernel in the package lists", p.stderr), p.stderr
        open(os.path.join(d, "lists-fetched"), "w").close()
        p = run(as_nobody([script]), env=env, timeout=60)
        assert p.returncode != 0
        assert "as root run: apt-get install linux-image-6.1.0-99-cloud-amd64-unsigned" in p.stderr, p.stderr
        # Lists that name a kernel the mirror no longer has: one update, one
        # retry, then the log's tail and the reason.
        os.unlink(os.path.join(d, "lists-fetched"))
        env["DISTRO_RELEASE"] = "6.1.0-98-cloud-amd64"
        p = run([script], env=env, timeout=60)
        calls = open(log).read().splitlines()
        assert p.returncode == 0, p.stderr
        assert "apt-get install failed; updating the package lists and trying again" in p.stderr, p.stderr
        assert calls[-3:] == ["apt-get install -y -qq --no-install-recommends linux-image-6.1.0-98-cloud-amd64-unsigned "
                              "linux-image-6.1.0-98-cloud-amd64-dbg", "apt-get update -qq",
                              "apt-get install -y -qq --no-install-recommends linux-image-6.1.0-98-cloud-amd64-unsigned "
                              "linux-image-6.1.0-98-cloud-amd64-dbg"], calls
    finally:
        shutil.rmtree(d)


def deb_packages():
    text = open(os.path.join(TREE, "Makefile")).read()
    m = re.search(r"^DEB_PACKAGES := ((?:.*\\\n)*.*)$", text, re.M)
    return m.group(1).replace("\\\n", " ").split()


@test
def test_make_deps_on_a_machine_with_nothing_installed():
    """make deps with no package installed and no lists: apt-get update,
    then one install naming every package the suite needs; as a user, the
    command to run as root."""
    d, env, log = standins()
    try:
        env["IMAGES"] = d
        p = run(["make", "-s", "-C", TREE, "deps", "IMAGES=" + d], env=env, timeout=120)
        assert p.returncode == 0, p.stderr
        calls = open(log).read().splitlines()
        install = [c for c in calls if c.startswith("apt-get install")]
        assert calls.index("apt-get update -qq") < calls.index(install[0]), calls
        asked = set(install[0].split())
        for pkg in ("qemu-system-x86", "chromium", "crash", "python3-drgn", "libvirt-daemon-system",
                    "linux-source-6.1", "busybox-static", "clang"):
            assert pkg in asked, "make deps does not install %s: %s" % (pkg, install[0])
        os.chmod(d, 0o777)
        p = run(as_nobody(["make", "-s", "-C", TREE, "deps", "IMAGES=" + d]), env=env, timeout=60)
        assert p.returncode != 0 and "deps: missing packages; as root run: apt-get install" in p.stderr, p.stderr
    finally:
        shutil.rmtree(d)


@test
def test_make_bench_builds_what_it_measures():
    """make bench on a fresh clone: bench/run also times Debian's kernel
    (images/distro) and the plugin on QEMU 10 (images/qemu), so both are
    built before it runs, not found missing ten minutes in."""
    p = run(["make", "-n", "-C", TREE, "bench"], timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    order = [next((i for i, l in enumerate(lines) if what in l), None)
             for what in ("guest/build-kernel.sh", "guest/build-distro.sh", "guest/build-qemu.sh", "bench/run")]
    assert None not in order and order[-1] == max(order), "make bench runs: %s" % p.stdout


@test
def test_every_tool_the_tests_use_comes_from_make_deps():
    """No test passes because of something installed by hand: each command
    the tests run belongs to a package make deps installs, or to one every
    Debian system has (priority required or important)."""
    wanted = set(deb_packages())
    for tool in TOOLS:
        path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
        assert path, "%s is not installed: make deps should have installed it" % tool
        # With /bin a link to /usr/bin, dpkg knows a file by the path its
        # package shipped it under: ask for each.
        base = os.path.basename(path)
        for cand in (os.path.realpath(path), path, "/bin/" + base, "/sbin/" + base, "/usr/bin/" + base,
                     "/usr/sbin/" + base):
            p = run(["dpkg", "-S", cand], timeout=30)
            if p.returncode == 0:
                break
        assert p.returncode == 0, "%s (%s) belongs to no Debian package: installed by hand?" % (tool, path)
        # linux-perf diverts /usr/bin/perf to a wrapper: dpkg names the
        # diversion first, then the package that ships the path.
        owner = [l for l in p.stdout.splitlines() if not l.startswith("diversion by ")]
        assert owner, "%s (%s): dpkg names only a diversion: %s" % (tool, path, p.stdout)
        pkg = owner[0].split(":")[0].strip()
        if pkg in wanted:
            continue
        prio = run(["dpkg-query", "-W", "-f=${Priority}", pkg], timeout=30).stdout.strip()
        assert prio in ("required", "important"), \
            "%s comes from %s, which make deps does not install (priority %s)" % (tool, pkg, prio or "?")


@test
def test_drgn_the_tests_use_comes_from_make_deps():
    """drgn is a module of Debian's python3, not a command: the one the
    vmcore tests import must be python3-drgn's, which make deps installs."""
    p = run(["/usr/bin/python3", "-c", "import drgn; print(drgn.__file__)"], timeout=60)
    assert p.returncode == 0, "drgn is not importable by /usr/bin/python3: " + p.stderr[-300:]
    owner = run(["dpkg", "-S", p.stdout.strip()], timeout=30)
    assert owner.returncode == 0 and owner.stdout.split(":")[0] == "python3-drgn", owner.stdout + owner.stderr
    assert "python3-drgn" in deb_packages()


def fake_kernel_tarball(d):
    """A linux-source tarball stand-in: its Makefile answers the targets
    build-kernel.sh asks for and makes small stand-ins of the outputs."""
    src = os.path.join(d, "linux-source-6.1")
    os.makedirs(os.path.join(src, "scripts", "kconfig"))
    with open(os.path.join(src, "Makefile"), "w") as f:
        f.write("""kernelversion:
\t@echo 6.1.99
tinyconfig olddefconfig:
\t@mkdir -p $(O) && touch $(O)/.config
bzImage vmlinux scripts_gdb:
\t@mkdir -p $(O)/arch/x86/boot $(O)/scripts/gdb/linux
\t@echo 'Linux version 6.1.99 (stand-in)' >$(O)/vmlinux
\t@echo bz >$(O)/arch/x86/boot/bzImage
\t@echo '# gdb' >$(O)/vmlinux-gdb.py
\t@echo '# gdb' >$(O)/scripts/gdb/linux/utils.py
""")
    open(os.path.join(src, "Kconfig"), "w").close()
    merge = os.path.join(src, "scripts", "kconfig", "merge_config.sh")
    with open(merge, "w") as f:
        f.write('#!/bin/sh\n# -m -O DIR BASE FRAGMENT\ncat "$5" >"$3/.config.new" && mv "$3/.config.new" "$3/.config"\n')
    os.chmod(merge, 0o755)
    tarball = os.path.join(d, "linux-source-6.1.tar.xz")
    with tarfile.open(tarball, "w:xz") as t:
        t.add(src, arcname="linux-source-6.1")
    shutil.rmtree(src)
    return tarball


@test
def test_kernel_first_run_source_not_unpacked_no_cache():
    """No kernel source unpacked, nothing cached: build-kernel.sh unpacks
    the tarball, configures, builds, installs and fills the cache; the next
    clone takes the cache. With no tarball at all it names the package."""
    d = tempfile.mkdtemp(prefix="kstep-firstrun-")
    try:
        env = {"IMAGES": os.path.join(d, "images"), "KERNEL_TARBALL": fake_kernel_tarball(d),
               "KSTEP_CACHE": os.path.join(d, "cache")}
        script = os.path.join(TREE, "guest", "build-kernel.sh")
        p = run([script], env=env, timeout=120)
        assert p.returncode == 0, p.stderr
        assert "unpacking" in p.stderr and "compiling" in p.stderr, p.stderr
        assert open(os.path.join(env["IMAGES"], "vmlinux")).read().startswith("Linux version 6.1.99")
        assert os.listdir(env["KSTEP_CACHE"]), "nothing cached"
        env["IMAGES"] = os.path.join(d, "images2")
        p = run([script], env=env, timeout=120)
        assert p.returncode == 0 and "using cached build" in p.stderr, p.stderr
        env["KERNEL_TARBALL"] = os.path.join(d, "none.tar.xz")
        env["IMAGES"] = os.path.join(d, "images3")
        p = run([script], env=env, timeout=60)
        assert p.returncode == 1 and "build-kernel: no kernel source: install linux-source-6.1" in p.stderr, p.stderr
    finally:
        shutil.rmtree(d)


def read_only(tree, cmd, env):
    """Run @cmd with @tree mounted read-only in a mount namespace of its own."""
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", tree, *cmd],
               env=env, timeout=300)


@test
def test_read_only_source_trees():
    """A read-only kstep tree builds its initramfs and kernel into IMAGES
    elsewhere, and a read-only KERNEL_SRC is built out of tree."""
    d = tempfile.mkdtemp(prefix="kstep-firstrun-")
    try:
        env = {"IMAGES": os.path.join(d, "images")}
        p = read_only(TREE, [os.path.join(TREE, "guest", "build-initramfs.sh")], env)
        assert p.returncode == 0, p.stderr
        assert os.path.exists(os.path.join(d, "images", "initramfs.cpio.gz"))
        tarball = fake_kernel_tarball(d)
        subprocess.run(["tar", "-C", d, "-xJf", tarball], check=True)
        env = {"IMAGES": os.path.join(d, "images"), "KERNEL_SRC": os.path.join(d, "linux-source-6.1"),
               "KSTEP_CACHE": ""}
        p = read_only(env["KERNEL_SRC"], [os.path.join(TREE, "guest", "build-kernel.sh")], env)
        assert p.returncode == 0, p.stderr
        assert open(os.path.join(d, "images", "vmlinux")).read().startswith("Linux version 6.1.99")
        assert not os.path.exists(os.path.join(env["KERNEL_SRC"], ".config")), "wrote into the source tree"
    finally:
        shutil.rmtree(d)


@test
def test_libvirtd_not_running_is_started():
    """No libvirtd running, as on every fresh machine and in CI: the tests'
    helper starts libvirtd and virtlogd and reaches them."""
    import test_libvirt
    for pidfile in ("/run/libvirtd.pid", "/run/virtlogd.pid"):
        try:
            pid = int(open(pidfile).read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not os.path.exists("/proc/%d" % pid), 10, "pid %d to end" % pid)
    assert test_libvirt.virsh("version", timeout=10).returncode != 0, "libvirtd still answers"
    test_libvirt.libvirtd()
    assert test_libvirt.virsh("version", timeout=30).returncode == 0
