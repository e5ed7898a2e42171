#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests against the real guest under TCG.
   run.py [-k SUBSTRING]    ends with 'integration: N passed, N failed'"""
import argparse
import glob
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_guest  # noqa: E402,F401  issue 2: images, workloads, run-guest
import test_kstep  # noqa: E402,F401  issue 3: the RSP driver
import test_gdb_oops  # noqa: E402,F401  issue 4: gdb side and oops decoding
import test_hardening  # noqa: E402,F401  issue 9: security, endings, durability, SMP
import test_kernels  # noqa: E402,F401  issue 8: KASLR (modules, CFI and distro kernels to come)
import test_probes  # noqa: E402,F401  issue 10: fetch args, returns, filters, sets, guest time, report
import test_analysis  # noqa: E402,F401  issue 12: call tree and folded stacks of step traces
import test_vmcore  # noqa: E402,F401  issue 13: vmcore for crash and drgn
import test_kgdb  # noqa: E402,F401  issue 13: kgdb over a serial line
import test_libvirt  # noqa: E402,F401  issue 11: libvirt domains
import test_replay  # noqa: E402,F401  issue 14: record, replay, backwards, why
import test_firstrun  # noqa: E402,F401  issue 21: first-run paths against empty stand-ins
import test_install  # noqa: E402,F401  issue 21: make install, man pages, completion
import test_qemu10  # noqa: E402,F401  issue 26: QEMU 10 smoke set
import test_plugin  # noqa: E402,F401  issue 26: the plugin engine
import test_packets  # noqa: E402,F401  issue 25: pcap filters, pcapng
import test_lines  # noqa: E402,F401  issue 24: lines, inlines, locals


def leftover_qemus(before):
    """QEMUs started since @before (pids) that are still running 10 s on,
    killed: a test must not leave one behind (a frozen guest it was
    handed, a keeper that never ended it), or the next tests share the
    machine with it."""
    deadline = time.monotonic() + 10
    left = set(harness.qemu_pids("")) - before
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = set(harness.qemu_pids("")) - before
    for pid in left:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    return sorted(left)


def kstep_dirs():
    """kstep's private QEMU directories (qemu.c: kstep-UID-XXXXXX in
    XDG_RUNTIME_DIR or /tmp): kstep removes its own as it ends."""
    bases = {"/tmp", os.environ.get("XDG_RUNTIME_DIR") or "/tmp"}
    return {d for b in bases for d in glob.glob(os.path.join(b, "kstep-%d-??????" % os.getuid()))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="", help="run the tests whose name contains this")
    args = ap.parse_args()
    passed = failed = skipped = 0
    for fn in harness.TESTS:
        name = "%s.%s" % (fn.__module__, fn.__name__)
        if args.k not in name:
            continue
        t0 = time.monotonic()
        before, dirs = set(harness.qemu_pids("")), kstep_dirs()
        try:
            fn()
            left = leftover_qemus(before)
            assert not left, "left QEMU running (pids %s)" % left
            left = sorted(kstep_dirs() - dirs)
            assert not left, "kstep left its private directories: %s" % left
        except harness.Skip as e:
            skipped += 1
            print("skip %s: %s" % (name, e), flush=True)
        except Exception as e:  # a failing test must not stop the others
            failed += 1
            detail = str(e) or traceback.format_exc(limit=3)
            print("FAIL %s (%.1fs): %s" % (name, time.monotonic() - t0, detail), flush=True)
            if not isinstance(e, AssertionError):
                traceback.print_exc()
        else:
            passed += 1
            print("ok   %s (%.1fs)" % (name, time.monotonic() - t0), flush=True)
    print("integration: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
