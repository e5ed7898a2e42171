# SPDX-License-Identifier: MIT
"""Compare kstep oops output with scripts/decode_stacktrace.sh, frame by frame."""
import re

# "func (file:line (discriminator N) file:line ...)" as both tools print it
FRAME = re.compile(r"(?:^|\s|:)([A-Za-z_.$][\w.$]*) \(((?:[^\s()]+:\d+(?: \(discriminator \d+\))? ?)+)\)")
ENTRY = re.compile(r"([A-Za-z_.$][\w.$]*)\+0x([0-9a-f]+)/0x([0-9a-f]+)")


def frames(text):
    """[(function, [file:line, ...])] in order of appearance."""
    out = []
    for line in text.splitlines():
        m = FRAME.search(line)
        if m:
            locs = re.sub(r" \(discriminator \d+\)", "", m.group(2)).split()
            out.append((m.group(1), locs))
    return out


def call_sites(log):
    """The log with each Call Trace entry moved to address-1 (the call), as
    kstep looks return addresses up; RIP lines stay as they are."""
    lines = []
    for line in log.splitlines():
        if "RIP:" not in line:
            def dec(m):
                off = int(m.group(2), 16)
                return "%s+0x%x/0x%s" % (m.group(1), off - 1 if off else 0, m.group(3))
            line = ENTRY.sub(dec, line, count=1)
        lines.append(line)
    return "\n".join(lines) + "\n"
