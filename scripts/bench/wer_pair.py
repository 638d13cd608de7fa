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
import statistics as st
import sys

from wer_timeline import read


def load(path):
    """Per clip: end of speech -> transcript (ms), the event its decode started at, the decode's ms."""
    out = {}
    for c in read(path):
        if "end" not in c or "got" not in c:
            continue
        dones = [d for d in c["decodes"] if d[0] <= c["got"] + 1]
        source, took = "none", None
        if dones:
            took = dones[-1][1]
            start = dones[-1][0] - took
            before = [e for e in c["vad"] if e[0] <= start + 2]
            source = before[-1][1] if before else "none"
        out[c["clip"]] = (c["got"] - c["end"], source, took)
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
