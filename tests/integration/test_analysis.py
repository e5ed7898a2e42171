# SPDX-License-Identifier: MIT
"""Issue 12 (its first part): a step trace as a call tree and folded stacks,
checked against the trace's own events."""
import collections
import re
import shutil
import tempfile

from harness import babeltrace, events, kstep, test


@test
def test_step_call_tree_and_folded_stacks_add_up():
    d = tempfile.mkdtemp(prefix="kstep-analysis-")
    p = kstep("step", "--workload", "rx-udp", "--size", "3", "--at", "udp_rcv", "--until-return", "-o", d, "-q")
    assert p.returncode == 0, p.stderr[-600:]
    steps = [e for e in events(babeltrace(d)) if e["kind"] == "step"]
    folded = kstep("report", "--folded", d)
    assert folded.returncode == 0, folded.stderr
    lines = [l.rsplit(" ", 1) for l in folded.stdout.splitlines()]
    assert sum(int(n) for _, n in lines) == len(steps), "folded counts sum to the steps"
    assert all(path.startswith("udp_rcv") for path, _ in lines[:-1] if "udp_rcv" in path)
    # A function's exclusive count is the number of steps whose pc is in it.
    in_fn = collections.Counter(re.split(r"[+.]", e["symbol"])[0] for e in steps)
    excl = collections.Counter()
    for path, n in lines:
        excl[path.split(";")[-1]] += int(n)
    for fn in ("__udp4_lib_rcv", "udp_queue_rcv_one_skb", "__udp_enqueue_schedule_skb"):
        assert excl[fn] == in_fn[fn] > 0, (fn, excl[fn], in_fn[fn])
    tree = kstep("report", d)
    assert "%d instructions stepped" % len(steps) in tree.stdout, tree.stdout[:400]
    m = re.search(r"^ +(\d+) +(\d+)  udp_rcv$", tree.stdout, re.M)
    assert m and int(m.group(1)) == len(steps) - 1, tree.stdout[:600]  # the last is back in the caller
    assert "    __udp4_lib_rcv" in kstep("report", "--depth", "2", d).stdout
    assert "      udp_unicast_rcv_skb" not in kstep("report", "--depth", "2", d).stdout
    shutil.rmtree(d)
