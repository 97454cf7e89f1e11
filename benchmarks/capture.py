"""Capture against an eager build of the same graph: time per node, and memory.

    python benchmarks/capture.py [WIDTH ...] [--repeats N]

For each width, in a fresh process: build the moons demo's loss eagerly (100 points,
MLP(2, [WIDTH, WIDTH, 1]), SVM loss) and time it, then time Tape(root) on it; repeats
alternate the two, medians are printed. Memory is the growth of the resident set (/proc,
Linux): the eager graph's, and capture's peak above it (the high-water mark, reset before
capturing), which covers the malloc'd arrays tracemalloc cannot see. Widths 16, 64 and 220
give about 65 thousand, 880 thousand and 10 million nodes (about 1 GB of RAM at 220).
"""
import argparse
import gc
import os
import statistics
import subprocess
import sys
import time


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def measure(width: int, repeats: int) -> None:
    from micrograd.datasets import make_moons
    from micrograd.engine import BACKEND, Value
    from micrograd.nn import MLP
    from micrograd.tape import Tape

    X, y = make_moons(100, noise=0.1)
    model = MLP(2, [width, width, 1])

    def build() -> Value:
        scores = [model([Value(float(a)) for a in x]) for x in X]
        losses = [(1 + -float(yi) * s).relu() for yi, s in zip(y, scores)]
        return sum(losses, Value(0.0)) * (1.0 / len(losses))

    gc.disable()  # the graph is acyclic: collections would only add noise
    builds, captures = [], []
    for r in range(repeats):
        r0 = rss()
        t0 = time.perf_counter()
        root = build()
        t1 = time.perf_counter()
        r1 = rss()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the high-water mark to the current resident set
        t2 = time.perf_counter()
        tape = Tape(root)
        t3 = time.perf_counter()
        if r == 0:
            eager_mb, peak_mb = (r1 - r0) / 1e6, (peak_rss() - r1) / 1e6
        builds.append(t1 - t0)
        captures.append(t3 - t2)
        n = len(tape)
        del tape, root
    b, c = statistics.median(builds), statistics.median(captures)
    print(f"{BACKEND} width {width:>3}: {n:>10,} nodes  build {b / n * 1e9:5.0f} ns/node  "
          f"capture {c / n * 1e9:5.0f} ns/node ({c / b:.2f}x)  eager graph {eager_mb:7.1f} MB  "
          f"capture peak {peak_mb:6.1f} MB ({peak_mb / eager_mb:.0%})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("widths", nargs="*", type=int, default=[16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.one:
        measure(args.widths[0], args.repeats)
        return
    for width in args.widths:
        subprocess.run([sys.executable, __file__, "--one", str(width), "--repeats", str(args.repeats)], check=True)


if __name__ == "__main__":
    main()
