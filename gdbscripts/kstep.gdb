# kstep's gdb setup, loaded by `make attach` (gdbscripts/attach.sh) after the
# kernel's own vmlinux-gdb.py (lx-symbols, lx-dmesg, lx-ps, $lx_current()).
set pagination off
set confirm off
set print pretty on
python
import os, sys
sys.path.insert(0, os.environ.get("KSTEP_GDBSCRIPTS", "gdbscripts"))
import kstep_skb
end

define kstep-help
  echo kstep gdb commands:\n
  echo \ \ kstep-skb ADDR          headers of an skb (Ethernet, IPv4, TCP/UDP/ICMP)\n
  echo \ \ kstep-rx-break [LIMIT]  logging breakpoints on the receive path\n
  echo \ \ lx-dmesg, lx-ps, lx-symbols, p $lx_current()   the kernel's helpers\n
end
document kstep-help
List the commands kstep adds to gdb.
end
