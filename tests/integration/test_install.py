# SPDX-License-Identifier: MIT
"""Issue 21: kstep as people install it. make install into a DESTDIR, the
installed kstep run by a non-root user from another directory, its man
pages (each command's options exactly those of its --help, no lint
warnings, shown by kstep help), bash completion driven as bash drives it,
and make uninstall leaving nothing behind."""
import os
import re
import shutil
import subprocess
import tempfile

from harness import IMAGES, KSTEP, TREE, Skip, babeltrace, events, need, run, test

COMMANDS = ("trace", "step", "probe", "oops", "report", "diff", "dump", "record", "why")
MAN = os.path.join(TREE, "doc", "man")
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def help_options(cmd):
    out = run([KSTEP, cmd, "--help"], timeout=30).stdout
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", out))


def man_options(page):
    text = open(os.path.join(MAN, page)).read()
    return set("--" + m for m in re.findall(r"(?:Fl -|(?<![\w-])--)([a-z][a-z0-9-]*)", text))


@test
def test_man_pages_match_help_and_render_cleanly():
    need("mandoc", "man")
    for cmd in COMMANDS:
        page = "kstep-%s.1" % cmd
        h, m = help_options(cmd), man_options(page)
        assert h == m, "%s: only in --help: %s; only in the man page: %s" % (cmd, sorted(h - m), sorted(m - h))
    pages = sorted(os.listdir(MAN))
    assert {"kstep.1", "kstep-probes.7"} <= set(pages), pages
    for page in pages:
        p = run(["mandoc", "-T", "lint", "-W", "warning", os.path.join(MAN, page)], timeout=30)
        assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), p.stdout + p.stderr
    p = run([KSTEP, "help", "record"], env={"MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "80"}, timeout=30)
    assert p.returncode == 0 and "kstep-record" in p.stdout and "--workload" in p.stdout, p.stderr
    p = run([KSTEP, "help", "nosuch"], timeout=30)
    assert p.returncode == 2 and "no command 'nosuch'" in p.stderr, p.stderr


def complete(line, env=None):
    """What bash's completion offers at the end of @line."""
    words = line.split(" ")
    script = ('source "$1"; COMP_WORDS=(%s); COMP_CWORD=%d; COMP_LINE="%s"; _kstep; printf "%%s\\n" "${COMPREPLY[@]}"'
              % (" ".join("'%s'" % w for w in words), len(words) - 1, line))
    e = dict(os.environ, PATH=os.path.dirname(KSTEP) + ":" + os.environ["PATH"])
    e.update(env or {})
    p = subprocess.run(["bash", "-c", script, "bash", os.path.join(TREE, "doc", "kstep.bash-completion")],
                       capture_output=True, text=True, env=e, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


@test
def test_bash_completion():
    cache = tempfile.mkdtemp(prefix="kstep-comp-")
    try:
        env = {"XDG_CACHE_HOME": cache}
        assert complete("kstep tr") == ["trace"]
        assert "--max-stops" in complete("kstep trace --max", env)
        assert "--backwards" in complete("kstep step --back", env)
        assert complete("kstep trace -p rx-", env)[:1] == ["rx-full"]
        assert complete("kstep trace -p drops,o", env) == ["drops,oops"]
        assert set(complete("kstep trace -p oops,rx", env)) == {"oops,rx", "oops,rx-full"}
        # The sets it offers are kstep's own, as kstep names them.
        p = run([KSTEP, "trace", "-p", "no-such-set"], timeout=60)
        m = re.search(r"a probe set: have ([^)]+)\)", p.stderr)
        assert p.returncode == 1 and m, p.stderr
        assert set(complete("kstep trace -p drops,", env)) == {"drops," + n for n in m.group(1).split(", ")}
        assert set(complete("kstep trace --workload rx-", env)) >= {"rx-icmp", "rx-tcp", "rx-drop"}
        syms = complete("kstep trace --break tcp_v4_r", env)
        assert "tcp_v4_rcv" in syms, syms
        assert "ip_rcv_core" in complete("kstep step --images %s --at ip_rcv_c" % IMAGES, env)
        d = os.path.join(cache, "outdir")
        os.mkdir(d)
        assert complete("kstep report %s/out" % cache, env) == [d]
        assert "record" in complete("kstep help rec", env)
    finally:
        shutil.rmtree(cache)


@test
def test_install_run_as_a_user_uninstall():
    """make install into a DESTDIR; a non-root user runs the installed kstep
    from another directory with images in its own cache, traces rx-icmp;
    a missing image names the command that builds it; make uninstall
    leaves no file behind."""
    base = tempfile.mkdtemp(prefix="kstep-install-")
    os.chmod(base, 0o755)
    try:
        dest = os.path.join(base, "dest")
        p = run(["make", "-s", "-C", TREE, "install", "DESTDIR=" + dest, "PREFIX=/usr/local"], timeout=600)
        assert p.returncode == 0, p.stderr[-800:]
        kstep = os.path.join(dest, "usr", "local", "bin", "kstep")
        for f in ("share/kstep/guest/run-guest.sh", "share/kstep/guest/workloads/rx-icmp", "share/man/man1/kstep-trace.1",
                  "share/man/man7/kstep-probes.7", "share/bash-completion/completions/kstep",
                  "share/kstep/gdbscripts/kstep.gdb"):
            assert os.path.exists(os.path.join(dest, "usr", "local", f)), f
        home = os.path.join(base, "home")
        images = os.path.join(home, ".cache", "kstep", "images")
        os.makedirs(images)
        user_env = {"HOME": home, "XDG_CACHE_HOME": "", "XDG_RUNTIME_DIR": "", "KSTEP_RUNDIR": os.path.join(home, "run"),
                    "KSTEP_IMAGES": ""}
        subprocess.run(["chown", "-R", "65534:65534", home], check=True)
        work = os.path.join(home, "work")
        os.mkdir(work)
        os.chown(work, 65534, 65534)
        # No images yet: the error names the command.
        p = run(NOBODY + [kstep, "trace", "-q", "-o", os.path.join(work, "t0")], env=user_env, timeout=120)
        assert p.returncode == 1 and "kstep build-images" in p.stderr, p.stderr
        for f in ("bzImage", "initramfs.cpio.gz", "vmlinux", "kernel.config"):
            shutil.copy(os.path.join(IMAGES, f), images)
        subprocess.run(["chown", "-R", "65534:65534", home], check=True)
        p = subprocess.run(NOBODY + [kstep, "trace", "--workload", "rx-icmp", "--size", "2", "-q", "-o", "t"],
                           cwd=work, env=dict(os.environ, **user_env), capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-800:]
        assert [e for e in events(babeltrace(os.path.join(work, "t"))) if e["symbol"].startswith("icmp_rcv")]
        p = run(["make", "-s", "-C", TREE, "uninstall", "DESTDIR=" + dest, "PREFIX=/usr/local"], timeout=120)
        assert p.returncode == 0, p.stderr
        left = [os.path.join(r, f) for r, _, fs in os.walk(dest) for f in fs]
        assert not left, "left behind: %s" % left[:10]
    finally:
        shutil.rmtree(base)


@test
def test_kernel_tree_boots_the_kernel_built_there():
    """--kernel-tree DIR: a kernel developer traces the kernel just built
    (DIR/arch/x86/boot/bzImage and DIR/vmlinux) with the images' initramfs;
    a directory with no kernel in it is named."""
    tree = os.path.join(IMAGES, "build", "kernel")
    if not os.path.exists(os.path.join(tree, "vmlinux")) and os.environ.get("CI") != "true":
        raise Skip("no kernel build directory %s (the images came from the cache)" % tree)
    out = tempfile.mkdtemp(prefix="kstep-ktree-")
    try:
        p = run([KSTEP, "trace", "--kernel-tree", tree, "--workload", "rx-icmp", "--size", "1", "-q", "-o", out,
                 "--force"], timeout=300)
        assert p.returncode == 0, p.stderr[-800:]
        assert [e for e in events(babeltrace(out)) if e["symbol"].startswith("icmp_rcv")]
        p = run([KSTEP, "trace", "--kernel-tree", out, "-q", "-o", out + "2"], timeout=60)
        assert p.returncode == 1 and "arch/x86/boot/bzImage: No such file" in p.stderr, p.stderr
    finally:
        shutil.rmtree(out)
