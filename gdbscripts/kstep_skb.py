# SPDX-License-Identifier: MIT
"""kstep helpers for plain gdb.

  kstep-skb ADDR          an skb's Ethernet / IPv4 / TCP, UDP or ICMP headers
  kstep-rx-break [LIMIT]  breakpoints on the receive path (the rx probe set of
                          kstep), each with `commands` that log one line
                          (function, skb, length, protocol) and continue; after
                          LIMIT hits (default 50) gdb detaches and quits
  kstep-rx-hit            the per-hit logger those `commands` call
"""
import struct

import gdb

# The rx probe set of host/probes.c, in receive order.
RX_FUNCTIONS = [
    "e1000_clean_rx_irq", "virtnet_poll", "net_rx_action", "napi_gro_receive",
    "__netif_receive_skb_core", "__netif_receive_skb_list_core", "ip_rcv",
    "ip_list_rcv", "ip_local_deliver", "tcp_v4_rcv", "udp_rcv", "icmp_rcv",
    "skb_copy_datagram_iter",
]
ARG_REGS = ["rdi", "rsi", "rdx", "rcx", "r8", "r9"]
IPPROTO = {1: "ICMP", 6: "TCP", 17: "UDP"}
ETH_P = {0x0800: "IPv4", 0x0806: "ARP", 0x86DD: "IPv6"}


def _u64(addr):
    return struct.unpack("<Q", bytes(gdb.selected_inferior().read_memory(addr, 8)))[0]


def _mem(addr, n):
    return bytes(gdb.selected_inferior().read_memory(addr, n))


def _find_function(name):
    """The function symbol, or a GCC clone of it (name.constprop.0 ...)."""
    sym = gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)
    if sym is not None:
        return name, sym
    for clone in (".constprop.0", ".isra.0", ".part.0"):
        try:
            gdb.parse_and_eval("&'%s%s'" % (name, clone))
            return name + clone, gdb.lookup_static_symbol(name)
        except gdb.error:
            continue
    return None, None


def _skb_arg(sym):
    """(argument index, levels) of the struct sk_buff argument; levels 0 for a
    list_head of skbs (ip_list_rcv), as kstep's probes do."""
    if sym is None:
        return None
    try:
        params = sym.type.fields()
    except (TypeError, AttributeError):
        return None
    for i, p in enumerate(params):
        t, depth = p.type.strip_typedefs(), 0
        while t.code == gdb.TYPE_CODE_PTR:
            t, depth = t.target().strip_typedefs(), depth + 1
        if t.code == gdb.TYPE_CODE_STRUCT and t.tag == "sk_buff" and depth:
            return i, depth
        if t.code == gdb.TYPE_CODE_STRUCT and t.tag == "list_head" and depth == 1 and i == 0:
            return i, 0
    return None


def _skb_at_entry(spec):
    """The skb a function got, read from the argument registers at its entry."""
    if spec is None or spec[0] >= len(ARG_REGS):
        return 0
    value = int(gdb.parse_and_eval("$" + ARG_REGS[spec[0]])) & (2**64 - 1)
    try:
        if spec[1] == 2:
            return _u64(value)
        if spec[1] == 0:  # sk_buff starts with its list node: head->next
            nxt = _u64(value)
            return 0 if nxt == value else nxt
    except gdb.MemoryError:
        return 0
    return value


def skb_summary(addr):
    """(length, protocol text, header lines) of the skb at addr."""
    skb = gdb.parse_and_eval("*(struct sk_buff *)%d" % addr)
    length = int(skb["len"])
    head = int(skb["head"])
    lines, proto = [], "?"
    mac, net, trans = int(skb["mac_header"]), int(skb["network_header"]), int(skb["transport_header"])
    unset = 0xFFFF
    # skb->protocol (big endian) is 0 for local messages (netlink, unix):
    # they have no link or network headers to decode.
    l2 = struct.unpack(">H", struct.pack("<H", int(skb["protocol"]) & 0xFFFF))[0]
    if l2 == 0:
        return length, "local", lines
    if mac != unset:
        eth = _mem(head + mac, 14)
        etype = struct.unpack(">H", eth[12:14])[0]
        lines.append("eth   %s -> %s type 0x%04x (%s)" % (
            ":".join("%02x" % b for b in eth[6:12]), ":".join("%02x" % b for b in eth[0:6]),
            etype, ETH_P.get(etype, "?")))
        proto = ETH_P.get(etype, "0x%04x" % etype)
    if net != unset:
        ip = _mem(head + net, 20)
        if ip[0] >> 4 == 4:
            p = ip[9]
            proto = IPPROTO.get(p, "IP proto %d" % p)
            lines.append("ipv4  %s -> %s proto %d (%s) ttl %d len %d" % (
                ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20])), p,
                IPPROTO.get(p, "?"), ip[8], struct.unpack(">H", ip[2:4])[0]))
            if trans != unset and trans != net:
                th = _mem(head + trans, 20)
                if p == 6:
                    sport, dport, seq, ack = struct.unpack(">HHII", th[:12])
                    lines.append("tcp   %d -> %d seq %u ack %u flags 0x%02x" % (sport, dport, seq, ack, th[13]))
                elif p == 17:
                    sport, dport, ulen = struct.unpack(">HHH", th[:6])
                    lines.append("udp   %d -> %d len %d" % (sport, dport, ulen))
                elif p == 1:
                    lines.append("icmp  type %d code %d id %d seq %d" % (
                        th[0], th[1], struct.unpack(">H", th[4:6])[0], struct.unpack(">H", th[6:8])[0]))
    return length, proto, lines


class KstepSkb(gdb.Command):
    """kstep-skb ADDR: print an skb's Ethernet, IPv4 and TCP/UDP/ICMP headers."""

    def __init__(self):
        super().__init__("kstep-skb", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        if not arg.strip():
            raise gdb.GdbError("usage: kstep-skb ADDR (an struct sk_buff pointer)")
        addr = int(gdb.parse_and_eval(arg)) & (2**64 - 1)
        try:
            length, proto, lines = skb_summary(addr)
        except gdb.MemoryError as e:
            raise gdb.GdbError("cannot read the skb at 0x%x: %s" % (addr, e))
        gdb.write("skb 0x%x: len %d, %s\n" % (addr, length, proto))
        for line in lines:
            gdb.write("  " + line + "\n")


class RxState:
    limit = 50
    hits = 0
    specs = {}  # breakpoint address -> (name, skb argument spec)


class KstepRxHit(gdb.Command):
    """kstep-rx-hit: log this receive-path stop in one line (used by kstep-rx-break)."""

    def __init__(self):
        super().__init__("kstep-rx-hit", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        pc = int(gdb.parse_and_eval("$pc")) & (2**64 - 1)
        name, spec = RxState.specs.get(pc, ("0x%x" % pc, None))
        RxState.hits += 1
        skb = _skb_at_entry(spec)
        extra = ""
        if skb:
            try:
                length, proto, _ = skb_summary(skb)
                extra = " len %d proto %s" % (length, proto)
            except (gdb.MemoryError, gdb.error):
                extra = " (skb unreadable)"
        gdb.write("kstep-rx: #%d %s skb 0x%x%s\n" % (RxState.hits, name, skb, extra))
        if RxState.hits >= RxState.limit:
            gdb.write("kstep-rx: hit limit %d reached; detaching\n" % RxState.limit)
            gdb.execute("delete")
            gdb.execute("detach")
            gdb.execute("quit")


class KstepRxBreak(gdb.Command):
    """kstep-rx-break [LIMIT]: logging breakpoints on the receive path."""

    def __init__(self):
        super().__init__("kstep-rx-break", gdb.COMMAND_BREAKPOINTS)

    def invoke(self, arg, from_tty):
        if arg.strip():
            RxState.limit = int(arg)
        for fn in RX_FUNCTIONS:
            real, sym = _find_function(fn)
            if real is None:
                gdb.write("kstep-rx: %s is not in this vmlinux: skipped\n" % fn)
                continue
            addr = int(gdb.parse_and_eval("(unsigned long)&'%s'" % real)) & (2**64 - 1)
            # At the first instruction the arguments are where the ABI says.
            bp = gdb.Breakpoint("*0x%x" % addr, internal=False)
            bp.commands = "silent\nkstep-rx-hit\ncontinue"
            RxState.specs[addr] = (fn, _skb_arg(sym))
        gdb.write("kstep-rx: %d breakpoints, stopping after %d hits\n" % (len(RxState.specs), RxState.limit))


KstepSkb()
KstepRxHit()
KstepRxBreak()
