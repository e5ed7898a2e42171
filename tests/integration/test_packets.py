# SPDX-License-Identifier: MIT
"""Issue 25: packets in the terms network engineers use. --pcap-filter
keeps the stops whose packet matches a tcpdump expression (libpcap runs it
on the header bytes kstep read), and kstep report --pcap writes those
stops as pcapng that tshark reads: the bytes checked field by field
against what the rx-drop workload sent (100 zero bytes to UDP port 9 over
loopback; each is dropped with NO_SOCKET, and answered with an ICMP port
unreachable that the filter must leave out)."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

from harness import babeltrace, events, kstep, need, run, test
from test_qemu10 import qemu10

UDP9 = "udp and dst port 9"
STAGES = ["__netif_receive_skb_core", "ip_rcv", "ip_local_deliver", "udp_rcv"]


def probes_file(d):
    """The receive path and the drops: each packet's stages and its verdict."""
    path = os.path.join(d, "probes")
    with open(path, "w") as f:
        f.write("set rx\nset drops\n")
    return path


def tshark(pcap, *args):
    """tshark -r PCAP ARGS: its output lines. It must say nothing on stderr
    but its usual note about running as root."""
    p = run(["tshark", "-r", pcap, *args])
    assert p.returncode == 0, p.stderr[-600:]
    noise = [l for l in p.stderr.splitlines() if l.strip() and "Running as user" not in l]
    assert not noise, noise
    return [l for l in p.stdout.splitlines() if l.strip()]


def fields(pcap, *names, filt=None):
    args = ["-T", "fields", "-E", "separator=|"] + [a for n in names for a in ("-e", n)]
    return [l.split("|") for l in tshark(pcap, *(["-Y", filt] if filt else []), *args)]


@test
def test_bad_pcap_filter_or_snaplen_is_refused_before_the_guest_boots():
    t0 = time.monotonic()
    p = kstep("trace", "--workload", "rx-drop", "--pcap-filter", "udp and port", "-o",
              tempfile.mkdtemp(prefix="kstep-pcap-"), "--force")
    assert p.returncode == 2, (p.returncode, p.stderr[-400:])
    assert re.search(r"bad --pcap-filter 'udp and port': .*syntax error", p.stderr), p.stderr
    p = kstep("trace", "--workload", "rx-drop", "--snaplen", "4096", "-o", tempfile.mkdtemp(prefix="kstep-pcap-"))
    assert p.returncode == 2 and "--snaplen 4096: from 80 to 256 bytes" in p.stderr, p.stderr
    assert time.monotonic() - t0 < 10, "it booted a guest first"


@test
def test_pcap_filter_keeps_the_matching_packets_and_pcapng_reads_in_tshark():
    need("tshark")
    d = tempfile.mkdtemp(prefix="kstep-pcap-")
    out = os.path.join(d, "t")
    p = kstep("trace", "--workload", "rx-drop", "--size", "4", "-p", probes_file(d), "--pcap-filter", UDP9,
              "--snaplen", "200", "-o", out, "-q", timeout=300)
    assert p.returncode == 0, p.stderr[-800:]
    evs = events(babeltrace(out))
    with_skb = [e for e in evs if e["skb"]]
    # Every stop with a packet is one of the datagrams: the ICMP replies
    # (and anything else on the path) were left out, and said so.
    assert with_skb and all((e["args"]["proto"], e["args"]["dport"]) == ("udp", 9) for e in with_skb), \
        [(e["event"], e["args"].get("proto")) for e in with_skb][:12]
    assert len([e for e in with_skb if e["event"] == "ip_rcv"]) == 4, [e["event"] for e in evs]
    m = re.search(r"kstep: (\d+) hits did not match their --filter or --pcap-filter", p.stdout)
    assert m and int(m.group(1)) >= 4, p.stdout[-800:]

    pcap = os.path.join(d, "t.pcapng")
    r = kstep("report", out, "--pcap", pcap)
    assert r.returncode == 0, r.stderr
    assert re.search(r"\d+ packet records of 4 packets in ", r.stderr), r.stderr
    recs = fields(pcap, "frame.interface_name", "frame.time_epoch", "ip.src", "ip.dst", "ip.proto", "ip.len",
                  "udp.dstport", "udp.length", "data.data", "frame.comment")
    names = [r[0] for r in recs]
    for stage in STAGES:
        assert len([n for n in names if n.startswith(stage)]) == 4, (stage, names)
    # What the workload sent, field by field: 127.0.0.1 to itself, UDP to
    # port 9, 100 bytes of zeros (all of them: --snaplen 200 reaches past
    # the packet's 128 bytes, and the capture stops at its end).
    for r in recs:
        assert r[2:8] == ["127.0.0.1", "127.0.0.1", "17", "128", "9", "108"], r
        assert r[8] == "00" * 100, r[8]
    # Guest time order, and each packet's stages in kstep report's order.
    times = [float(r[1]) for r in recs]
    assert times == sorted(times), times
    assert [n.split(".")[0] for n in names[:4]] == STAGES, names[:4]
    # The comments: the function, the CPU and the verdict (each was dropped).
    for r in recs:
        assert re.fullmatch(r"\S+ cpu \d+: dropped SKB_DROP_REASON_NO_SOCKET in __udp4_lib_rcv\S*", r[9]), r[9]
    # Display filters select as on a capture.
    assert len(fields(pcap, "frame.number", filt="udp.dstport == 9")) == len(recs)
    assert fields(pcap, "frame.number", filt="icmp") == []
    # Written once: an existing file is not replaced.
    again = kstep("report", out, "--pcap", pcap)
    assert again.returncode == 1 and "exists" in again.stderr, again.stderr
    # The filtered trace reads as any other in report's other forms.
    for args in ([], ["--json"], ["--netdev-times"]):
        assert kstep("report", out, *args).returncode == 0, args
    shutil.rmtree(d)


@test
def test_pcap_filter_picks_the_packet_step_starts_at():
    """step --at ip_rcv --pcap-filter: the first ip_rcv of an ICMP packet is
    the port unreachable reply (the ICMP path), of a UDP one a datagram."""
    d = tempfile.mkdtemp(prefix="kstep-pcap-")
    seen = {}
    for expr in ("icmp", UDP9):
        out = os.path.join(d, expr.split()[0])
        p = kstep("step", "--workload", "rx-drop", "--size", "2", "--at", "ip_rcv", "--pcap-filter", expr,
                  "--count", "3000", "-o", out, "-q", timeout=300)
        assert p.returncode == 0, p.stderr[-800:]
        seen[expr] = {e["symbol"].split("+")[0] for e in events(babeltrace(out))}
    assert "icmp_rcv" in seen["icmp"] and "__udp4_lib_rcv" not in seen["icmp"], sorted(seen["icmp"])
    assert "__udp4_lib_rcv" in seen[UDP9] and "icmp_rcv" not in seen[UDP9], sorted(seen[UDP9])
    shutil.rmtree(d)


@test
def test_pcap_filter_through_the_plugin_keeps_what_the_gdbstub_keeps():
    env = qemu10()
    d = tempfile.mkdtemp(prefix="kstep-pcap-")
    kept = {}
    for engine in ("plugin", "rsp"):
        out = os.path.join(d, engine)
        p = kstep("trace", "--engine", engine, "--workload", "rx-drop", "--size", "3", "-p", "rx",
                  "--pcap-filter", "icmp", "-o", out, "-q", env=env, timeout=300)
        assert p.returncode == 0, p.stderr[-800:]
        evs = [e for e in events(babeltrace(out)) if e["skb"]]
        assert evs and all(e["args"]["proto"] == "icmp" for e in evs), [e["args"].get("proto") for e in evs]
        # Each run has its own IP ids and source port: compare the
        # stages, the bytes' length and ICMP's type and code (3/3: port
        # unreachable).
        kept[engine] = sorted((e["event"], len(e["args"]["pkt"]), e["args"]["pkt"][40:44]) for e in evs)
    assert kept["plugin"] == kept["rsp"], (kept["plugin"], kept["rsp"])
    assert {k[2] for k in kept["rsp"]} == {"0303"}, kept["rsp"]
    shutil.rmtree(d)


PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "host", "perfetto.proto")


def text_proto(text):
    """protoc's text format as nested dicts, each key's values in a list."""
    root, stack = {}, []
    cur = root
    for line in text.splitlines():
        line = line.strip()
        if line.endswith("{"):
            child = {}
            cur.setdefault(line[:-1].strip(), []).append(child)
            stack.append(cur)
            cur = child
        elif line == "}":
            cur = stack.pop()
        elif line:
            k, v = line.split(":", 1)
            v = v.strip()
            cur.setdefault(k, []).append(v[1:-1] if v.startswith('"') else v)
    return root


def timeline(path):
    """The file decoded by protoc against kstep's perfetto.proto: (tracks by
    uuid, track events in file order)."""
    need("protoc")
    with open(path, "rb") as f:
        p = subprocess.run(["protoc", "--decode=perfetto.protos.Trace", "--proto_path=" + os.path.dirname(PROTO),
                            PROTO], stdin=f, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()[-400:]
    packets = text_proto(p.stdout.decode()).get("packet", [])
    tracks, evs = {}, []
    for pk in packets:
        if "track_descriptor" in pk:
            td = pk["track_descriptor"][0]
            tracks[int(td["uuid"][0])] = td
        elif "track_event" in pk:
            te = pk["track_event"][0]
            assert pk.get("trusted_packet_sequence_id") == ["1"], pk
            evs.append(dict(te, ts=int(pk["timestamp"][0])))
        else:
            raise AssertionError("a packet that is neither a track nor an event: %s" % pk)
    return tracks, evs


def well_formed(tracks, evs):
    """Every event on a described track, time never going back, every
    begin ended on its track in nesting order, every flow through two or
    more events. Returns the slices per track: [(name, begin, end, event)]."""
    open_, slices, flows = {}, {}, {}
    last = 0
    for e in evs:
        t = int(e["track_uuid"][0])
        assert t in tracks, t
        assert e["ts"] >= last, (e["ts"], last)
        last = e["ts"]
        kind = e["type"][0]
        if kind == "TYPE_SLICE_BEGIN":
            open_.setdefault(t, []).append(e)
        elif kind == "TYPE_SLICE_END":
            assert open_.get(t), "an end with no slice open on track %d" % t
            b = open_[t].pop()
            slices.setdefault(t, []).append((b["name"][0], b["ts"], e["ts"], b))
        else:
            assert kind == "TYPE_INSTANT", kind
            slices.setdefault(t, []).append((e["name"][0], e["ts"], e["ts"], e))
        for f in e.get("flow_ids", []) + e.get("terminating_flow_ids", []):
            flows.setdefault(f, []).append(e)
    assert not any(open_.values()), "slices never ended: %s" % {t: len(v) for t, v in open_.items() if v}
    for f, on in flows.items():
        assert len(on) >= 2, "flow %s has one event" % f
        assert sum(1 for e in on if f in e.get("terminating_flow_ids", [])) == 1, f
    return slices


@test
def test_perfetto_timeline_is_well_formed_and_follows_the_report():
    """rx-full on rx-icmp: the softirq and NAPI calls its return probes time
    on the CPU tracks, a track per packet whose stages are kstep report's
    path, flows through each packet's stops; then a step trace's calls."""
    d = tempfile.mkdtemp(prefix="kstep-perfetto-")
    out = os.path.join(d, "t")
    p = kstep("trace", "--workload", "rx-icmp", "--size", "3", "-p", "rx-full", "-o", out, "-q", timeout=300)
    assert p.returncode == 0, p.stderr[-800:]
    pf = os.path.join(d, "t.perfetto")
    r = kstep("report", out, "--perfetto", pf)
    assert r.returncode == 0 and "open it in ui.perfetto.dev" in r.stderr, r.stderr
    tracks, evs = timeline(pf)
    slices = well_formed(tracks, evs)
    names = {int(u): t["name"][0] for u, t in tracks.items()}
    cpu = [u for u, n in names.items() if re.fullmatch(r"cpu \d+", n)]
    assert cpu and any(s[0] == "net_rx_action" and s[2] > s[1] for u in cpu for s in slices.get(u, [])), \
        "no softirq slice on a CPU track"
    rep = json.loads(kstep("report", out, "--json").stdout)
    pk = rep["packets"]
    assert pk, rep.keys()
    for i, packet in enumerate(pk):
        u = [t for t, n in names.items() if re.fullmatch(r"packet %d(: .*)?" % i, n)]
        assert len(u) == 1, (i, names)
        stages = [s[0] for s in slices[u[0]]]
        assert stages == [h["stage"] for h in packet["path"]], (i, stages, packet["path"])
        last = slices[u[0]][-1][3]
        assert "verdict" in str(last.get("debug_annotations")), last
    # Fetched fields are annotations: the ICMP stage has the packet's length.
    assert any("len" in str(s[3].get("debug_annotations")) for t in slices for s in slices[t]
               if s[0] == "icmp_rcv"), "no fields on icmp_rcv"
    # Written once, and a trace with nothing to draw is refused.
    assert kstep("report", out, "--perfetto", pf).returncode == 1

    st = os.path.join(d, "s")
    p = kstep("step", "--workload", "rx-icmp", "--size", "1", "--at", "icmp_rcv", "--count", "1500", "-o", st, "-q",
              timeout=300)
    assert p.returncode == 0, p.stderr[-800:]
    spf = os.path.join(d, "s.perfetto")
    assert kstep("report", st, "--perfetto", spf).returncode == 0
    tracks, evs = timeline(spf)
    slices = well_formed(tracks, evs)
    steps = [u for u, t in tracks.items() if t["name"][0].endswith(" steps")]
    assert len(steps) == 1, tracks
    calls = slices[steps[0]]
    # icmp_rcv runs inside its callers: some slice holds it.
    inner = [c for c in calls if c[0] == "icmp_rcv"]
    assert inner and any(o[1] <= inner[0][1] and o[2] >= inner[0][2] and o[0] == "ip_protocol_deliver_rcu"
                         for o in calls), [c[:3] for c in calls[:12]]
    shutil.rmtree(d)
