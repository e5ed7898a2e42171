# Receive-path breakpoints in plain gdb, logging one line per hit.
#
#   make run-guest HALT=1 WORKLOAD=rx-icmp &     (in another terminal)
#   gdb -batch -x gdbscripts/rx-path.gdb images/vmlinux
#
# Environment: GDB_TARGET (default: the gdb.sock of make run-guest's private
# run directory; a unix socket path or HOST:PORT),
# KSTEP_RX_LIMIT (hits before it detaches, default 50). Run it from the kstep
# tree, or set KSTEP_GDBSCRIPTS to this directory.
set pagination off
set confirm off
python
import os, sys
sys.path.insert(0, os.environ.get("KSTEP_GDBSCRIPTS", "gdbscripts"))
import kstep_skb
import stat
target = os.environ.get("GDB_TARGET")
if not target:
    # The run directory of make run-guest, only if it is ours and private
    # (guest/rundir.sh): someone else's could hold a stub of their own.
    rundir = os.environ.get("KSTEP_RUNDIR") or "%s/kstep-%d" % (os.environ.get("XDG_RUNTIME_DIR") or "/tmp",
                                                               os.getuid())
    st = os.lstat(rundir)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) != 0o700:
        raise gdb.GdbError("%s is not a private directory of yours: refusing it (set GDB_TARGET)" % rundir)
    target = rundir + "/gdb.sock"
gdb.execute("target remote " + target)
# A hardware breakpoint first: software ones set before the kernel is
# decompressed are lost under KVM. Skip it if the kernel already runs (a guest
# stopped in user space is below the kernel's text too, but in ring 3).
pc = int(gdb.parse_and_eval("$pc")) & (2**64 - 1)
if pc < 0xffffffff80000000 and int(gdb.parse_and_eval("$cs")) & 3 == 0:
    gdb.execute("hbreak start_kernel")
    gdb.execute("continue")
    gdb.execute("delete")
gdb.execute("kstep-rx-break " + os.environ.get("KSTEP_RX_LIMIT", "50"))
end
continue
