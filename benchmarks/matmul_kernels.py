"""Speed of micrograd/_matmul.h's kernels, per instruction-set path, with numpy for scale.

    python benchmarks/matmul_kernels.py [--rounds 7] [--shapes 64x100x64,16x100x16]

Prints GFLOP/s (a term, one multiply and one add, counts 2 flops) of mg_mm_forward,
mg_mm_backward_w and mg_mm_backward_x for shapes R x C x K, the median of interleaved rounds
(every shape, path and kernel once per round, so a noisy neighbour hits all alike). numpy's
matching product (W @ X.T, G @ X, G.T @ W) is timed the same way, for scale only: BLAS uses
fused multiply-adds and its own order of summation, which the tape must not.
Not a test: run it by hand on a quiet machine.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time
from array import array

# numpy on one thread, as the kernels run (set before numpy is imported)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from micrograd.bench.c_floor import CFLAGS, find_compiler  # noqa: E402

HEADER_DIR = os.path.join(os.path.dirname(HERE), "micrograd")
ISA_NAMES = ["c", "vec128", "avx2", "avx512"]
KERNELS = ["forward", "backward_w", "backward_x"]
SHAPES = [(64, 100, 64), (256, 100, 256), (32, 1797, 64), (10, 1797, 32), (16, 100, 16)]

# The loop lives in C: a ctypes call costs about a microsecond, as much as a small product.
SOURCE = r"""
#include "_matmul.h"
int b_force(int level) { return mg_mm_force_isa(level); }
int b_available(int level) { return mg_mm_isa_available(level); }
ptrdiff_t b_scratch(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K) { return mg_mm_scratch_doubles(R, C, K); }
void b_repeat(int kernel, long reps, ptrdiff_t R, ptrdiff_t C, ptrdiff_t K, const double *W, const double *X,
              double *G, double *out, double *scratch) {
    long i;
    for (i = 0; i < reps; i++) {
        if (kernel == 0) mg_mm_forward(R, C, K, W, X, G, out, scratch);
        else if (kernel == 1) mg_mm_backward_w(R, C, K, X, G, out, scratch);
        else mg_mm_backward_x(R, C, K, W, G, out, scratch);
    }
}
"""


def build(workdir: str, extra=()) -> ctypes.CDLL:
    cc = find_compiler()
    if cc is None:
        sys.exit("no C compiler found ($CC, cc, gcc, clang)")
    src, lib = os.path.join(workdir, "mm_bench.c"), os.path.join(workdir, "mm_bench.so")
    with open(src, "w") as f:
        f.write(SOURCE)
    subprocess.run([cc, *CFLAGS, *extra, "-shared", "-fPIC", "-I", HEADER_DIR, "-o", lib, src], check=True)
    so = ctypes.CDLL(lib)
    sz, dp = ctypes.c_ssize_t, ctypes.POINTER(ctypes.c_double)
    so.b_repeat.argtypes = [ctypes.c_int, ctypes.c_long, sz, sz, sz, dp, dp, dp, dp, dp]
    so.b_scratch.argtypes = [sz, sz, sz]
    so.b_scratch.restype = sz
    return so


def buffer(n: int, seed: int):
    values = array("d", ((i * 7919 + seed) % 1000 / 1000.0 - 0.5 for i in range(n)))
    return values, ctypes.cast((ctypes.c_double * n).from_buffer(values), ctypes.POINTER(ctypes.c_double))


def calibrate(run, target: float = 0.02) -> int:
    """A repeat count that takes about `target` seconds."""
    reps = 1
    while True:
        t0 = time.perf_counter()
        run(reps)
        elapsed = time.perf_counter() - t0
        if elapsed > target / 4:
            return max(1, round(reps * target / elapsed))
        reps *= 4


def numpy_runs(shape):
    try:
        import numpy as np
    except ImportError:
        return {}
    R, C, K = shape
    rng = np.random.default_rng(0)
    W, X, G = rng.standard_normal((R, K)), rng.standard_normal((C, K)), rng.standard_normal((R, C))
    return {
        "forward": lambda reps: [W @ X.T for _ in range(reps)],
        "backward_w": lambda reps: [G @ X for _ in range(reps)],
        "backward_x": lambda reps: [G.T @ W for _ in range(reps)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cflags", default="", help="extra compiler flags, e.g. -DMG_MM_AVX512_MR=8 to try a tile")
    parser.add_argument("--shapes", help="comma-separated RxCxK (default: the tape's MLP and digits shapes)")
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")] if args.shapes else SHAPES

    with tempfile.TemporaryDirectory() as work:
        so = build(work, args.cflags.split())
        levels = [lv for lv in range(len(ISA_NAMES)) if so.b_available(lv)]
        runs = {}  # (shape, contender, kernel) -> (run(reps), reps)
        keep = []
        for shape in shapes:
            R, C, K = shape
            W, pw = buffer(R * K, 1)
            X, px = buffer(C * K, 2)
            G, pg = buffer(R * C, 3)
            out, po = buffer(max(R * C, R * K, C * K), 4)
            scratch, ps = buffer(so.b_scratch(R, C, K), 5)
            keep += [W, X, G, out, scratch]
            for lv in levels:
                for kid, kernel in enumerate(KERNELS):
                    def run(reps, lv=lv, kid=kid, shape=shape, p=(pw, px, pg, po, ps)):
                        so.b_force(lv)
                        so.b_repeat(kid, reps, *shape, *p)
                    runs[(shape, ISA_NAMES[lv], kernel)] = run
            for kernel, run in numpy_runs(shape).items():
                runs[(shape, "numpy", kernel)] = run
        reps = {key: calibrate(run) for key, run in runs.items()}
        times = {key: [] for key in runs}
        for _ in range(args.rounds):
            for key, run in runs.items():
                t0 = time.perf_counter()
                run(reps[key])
                times[key].append((time.perf_counter() - t0) / reps[key])
        so.b_force(-1)

    contenders = [ISA_NAMES[lv] for lv in levels] + (["numpy"] if any(k[1] == "numpy" for k in runs) else [])
    print(f"GFLOP/s (2 flops per term), median of {args.rounds} interleaved rounds")
    print(f"{'shape RxCxK':>14} {'kernel':>11} " + " ".join(f"{c:>8}" for c in contenders))
    for shape in shapes:
        flops = 2.0 * shape[0] * shape[1] * shape[2]
        for kernel in KERNELS:
            cells = []
            for c in contenders:
                t = times.get((shape, c, kernel))
                cells.append(f"{flops / statistics.median(t) / 1e9:8.2f}" if t else f"{'-':>8}")
            print(f"{'x'.join(map(str, shape)):>14} {kernel:>11} " + " ".join(cells))


if __name__ == "__main__":
    main()
