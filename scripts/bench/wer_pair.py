"""Two real-time WER bench runs, clip by clip, from their debug logs.

Which decode each clip's transcript came from (the speculative one started at the dip, the one
at the pause, ...), the clips where that differs between the runs, and the medians. A change to
endpointing moves a few clips a lot; the machine's drift moves every clip a little, and this
tells the two apart.

    JARVIS_WER_REALTIME=1 JARVIS_WER_LIMIT=12 JARVIS_WER_VARIANTS=default \
    JARVIS_BENCH_LOG="warn,jarvis::stt=debug,wer=debug" cargo bench --bench wer > a.log 2>&1
    (the same with the other build > b.log)
    python3 scripts/bench/wer_pair.py a.log b.log
"""
import re
import statistics as st
import sys
from datetime import datetime


def stamp(line):
    return datetime.strptime(line[:26], "%Y-%m-%dT%H:%M:%S.%f").timestamp() * 1000


def load(path):
    """Per clip: end of speech -> transcript (ms), the event its decode started at, the decode's ms."""
    clips = {}
    cur = None
    for line in open(path):
        if "bench: clip clip=" in line:
            cur = {"ev": []}
            clips[line.split("clip=")[1].split()[0]] = cur
            continue
        if cur is None or not re.match(r"\d{4}-\d\d-\d\dT", line):
            continue
        ts = stamp(line)
        if "end of speech is sent" in line:
            cur["end"] = ts
        elif "vad event=" in line:
            cur["ev"].append((ts, line.split("event=")[1].split("(")[0].strip()))
        elif "whisper: transcribed" in line:
            m = re.search(r"took=([\d.]+)(m?s)", line)
            took = float(m.group(1)) * (1 if m.group(2) == "ms" else 1000)
            cur["ev"].append((ts, "done", took))
        elif "transcript received" in line:
            cur["got"] = ts
    out = {}
    for clip, c in clips.items():
        if "end" not in c or "got" not in c:
            continue
        dones = [e for e in c["ev"] if e[1] == "done" and e[0] <= c["got"] + 1]
        source, took = "none", None
        if dones:
            took = dones[-1][2]
            start = dones[-1][0] - took
            before = [e for e in c["ev"] if e[1] != "done" and e[0] <= start + 2]
            source = before[-1][1] if before else "none"
        out[clip] = (c["got"] - c["end"], source, took)
    return out


def main():
    a, b = load(sys.argv[1]), load(sys.argv[2])
    common = [k for k in a if k in b]
    changed = [k for k in common if a[k][1] != b[k][1]]
    print(f"clips {len(common)}, decode started elsewhere in {len(changed)}")
    for k in changed:
        print(f"  {k}: A from {a[k][1]} {a[k][0]:.0f} ms, B from {b[k][1]} {b[k][0]:.0f} ms")
    same = [a[k][0] - b[k][0] for k in common if k not in changed]
    if same:
        print(f"median A - B of the other clips: {st.median(same):+.1f} ms (the machine's drift)")
    for name, run in (("A", a), ("B", b)):
        took = [run[k][2] for k in common if run[k][2]]
        print(f"{name}: decode median {st.median(took):.0f} ms", end="")
        for kind in ("homelab", "everyday"):
            lat = [run[k][0] for k in common if kind in k]
            if lat:
                print(f", {kind} median {st.median(lat):.0f} ms", end="")
        print()


if __name__ == "__main__":
    main()
