"""micrograd/_matmul.h, the compiled tape's batched dot-product kernels: bit for bit the scalar loop.

The header is compiled here into a small shared library, with setup.py's flags (no fused
multiply-add), together with a naive triple loop written the obvious way; ctypes calls both.
Every instruction-set path this machine runs is forced in turn and must give the reference's
bytes (NaNs: both NaN, payloads aside) for random shapes, edge sizes, special values, and must
write nothing outside its outputs and its scratch. The naive loop itself is checked against
Python floats, which round as C doubles do.
"""
from __future__ import annotations

import ast
import ctypes
import math
import os
import random
import struct
import subprocess
import sys
from array import array
from pathlib import Path

import pytest

from micrograd.bench.c_floor import find_compiler

import micrograd

HEADER_DIR = Path(micrograd.__file__).resolve().parent  # the header the package ships
SETUP_PY = Path(__file__).resolve().parent.parent / "setup.py"
ISA_NAMES = ["c", "vec128", "avx2", "avx512"]

WRAPPER = r"""
#include "_matmul.h"
#ifdef _WIN32
#define EXPORT __declspec(dllexport)
#else
#define EXPORT __attribute__((visibility("default")))
#endif

EXPORT int t_force(int level) { return mg_mm_force_isa(level); }
EXPORT int t_isa(void) { return mg_mm_isa(); }
EXPORT int t_available(int level) { return mg_mm_isa_available(level); }
EXPORT ptrdiff_t t_scratch(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K) { return mg_mm_scratch_doubles(R, C, K); }
EXPORT void t_forward(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K, const double *W, const double *X, const double *S,
                      double *out, double *scratch) { mg_mm_forward(R, C, K, W, X, S, out, scratch); }
EXPORT void t_backward_w(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K, const double *X, const double *G, double *dW,
                         double *scratch) { mg_mm_backward_w(R, C, K, X, G, dW, scratch); }
EXPORT void t_backward_x(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K, const double *W, const double *G, double *dX,
                         double *scratch) { mg_mm_backward_x(R, C, K, W, G, dX, scratch); }

/* The reference: one accumulator at a time, acc = acc + a*b, terms in order. */
EXPORT void ref_forward(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K, const double *W, const double *X, const double *S,
                        double *out) {
    ptrdiff_t r, c, k;
    for (r = 0; r < R; r++)
        for (c = 0; c < C; c++) {
            double acc = S[r * C + c];
            for (k = 0; k < K; k++) acc = acc + W[r * K + k] * X[c * K + k];
            out[r * C + c] = acc;
        }
}
EXPORT void ref_backward_w(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K, const double *X, const double *G, double *dW) {
    ptrdiff_t r, c, k;
    for (r = 0; r < R; r++)
        for (k = 0; k < K; k++) {
            double acc = dW[r * K + k];
            for (c = 0; c < C; c++) acc = acc + X[c * K + k] * G[r * C + c];
            dW[r * K + k] = acc;
        }
}
EXPORT void ref_backward_x(ptrdiff_t R, ptrdiff_t C, ptrdiff_t K, const double *W, const double *G, double *dX) {
    ptrdiff_t r, c, k;
    for (c = 0; c < C; c++)
        for (k = 0; k < K; k++) {
            double acc = dX[c * K + k];
            for (r = 0; r < R; r++) acc = acc + W[r * K + k] * G[r * C + c];
            dX[c * K + k] = acc;
        }
}
"""


def setup_compile_args() -> list:
    """setup.py's extra_compile_args() for a release build, read from its source (importing
    setup.py would run setup())."""
    tree = ast.parse(SETUP_PY.read_text(encoding="utf-8"))
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "extra_compile_args")
    namespace = {"sys": sys, "os": os, "DEBUG": False, "SANITIZE": False, "SANITIZER_FLAGS": []}
    exec(compile(ast.Module(body=[func], type_ignores=[]), str(SETUP_PY), "exec"), namespace)
    return namespace["extra_compile_args"]()


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    cc = find_compiler()
    if cc is None:
        pytest.skip("no C compiler found ($CC, Python's CC, cc, gcc, clang): the header cannot be compiled here")
    flags = setup_compile_args() if SETUP_PY.exists() else ["-O2", "-ffp-contract=off"]
    work = tmp_path_factory.mktemp("matmul")
    source = work / "matmul_test.c"
    source.write_text(WRAPPER, encoding="utf-8")
    shared = work / ("matmul_test.dll" if sys.platform == "win32" else "matmul_test.so")
    cmd = [cc, *flags, "-Wall", "-Werror", "-shared", "-fPIC", "-I", str(HEADER_DIR), "-o", str(shared), str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    so = ctypes.CDLL(str(shared))
    sz, dp = ctypes.c_ssize_t, ctypes.POINTER(ctypes.c_double)
    for name in ("t_forward", "ref_forward"):
        getattr(so, name).argtypes = [sz, sz, sz, dp, dp, dp, dp] + ([dp] if name.startswith("t_") else [])
    for name in ("t_backward_w", "t_backward_x", "ref_backward_w", "ref_backward_x"):
        getattr(so, name).argtypes = [sz, sz, sz, dp, dp, dp] + ([dp] if name.startswith("t_") else [])
    so.t_scratch.argtypes = [sz, sz, sz]
    so.t_scratch.restype = sz
    yield so
    so.t_force(-1)


def available_levels(lib) -> list:
    return [level for level in range(len(ISA_NAMES)) if lib.t_available(level)]


@pytest.fixture(params=range(len(ISA_NAMES)), ids=ISA_NAMES)
def isa(request, lib):
    """Each path in turn; a path this compiler or CPU lacks is skipped (the C path never is)."""
    level = request.param
    if not lib.t_available(level):
        pytest.skip(f"the {ISA_NAMES[level]} path is not available with this compiler/CPU")
    assert lib.t_force(level) == 0
    assert lib.t_isa() == level
    yield level
    lib.t_force(-1)


# ---------------------------------------------------------------------------------------------
# Data

SPECIALS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308 / 3,
            1e200, -1e200, 1e-200, -1e-200, 1.7976931348623157e308, 1.0, -1.0]


def fill(rng: random.Random, n: int, special: float) -> array:
    """n doubles: normal values, with a share `special` of NaN, infinities, signed zeros,
    subnormals, and values whose products overflow or underflow."""
    return array("d", (rng.choice(SPECIALS) if rng.random() < special else rng.uniform(-2.0, 2.0)
                       for _ in range(n)))


GUARD = 16
SENTINEL = struct.unpack("<d", b"\x5a" * 8)[0]


def guarded(values) -> array:
    """values between two guards of SENTINEL, to catch writes out of bounds."""
    return array("d", [SENTINEL] * GUARD) + array("d", values) + array("d", [SENTINEL] * GUARD)


def ptr(buf: array, guarded_buf: bool = False):
    """A double* to buf's first element (past the leading guard for a guarded buffer)."""
    address = ctypes.addressof((ctypes.c_double * len(buf)).from_buffer(buf)) + (GUARD * 8 if guarded_buf else 0)
    return ctypes.cast(address, ctypes.POINTER(ctypes.c_double))


def inner(buf: array) -> array:
    assert buf[:GUARD].tobytes() == buf[-GUARD:].tobytes() == array("d", [SENTINEL] * GUARD).tobytes(), "a guard was overwritten"
    return buf[GUARD:-GUARD]


def assert_same_bits(got: array, want: array, what: str) -> None:
    if got.tobytes() == want.tobytes():
        return
    for i, (g, w) in enumerate(zip(got, want)):
        same = struct.pack("<d", g) == struct.pack("<d", w) or (math.isnan(g) and math.isnan(w))
        assert same, f"{what}: element {i} is {g!r} ({struct.pack('<d', g).hex()}), the scalar loop gives {w!r} ({struct.pack('<d', w).hex()})"


def check_all(lib, R: int, C: int, K: int, rng: random.Random, special: float = 0.0, init: float | None = None) -> None:
    """The three kernels on one random problem against the reference loop, with guards around
    every output and the scratch."""
    W, X, G = fill(rng, R * K, special), fill(rng, C * K, special), fill(rng, R * C, special)
    starts = {name: (array("d", [init] * n) if init is not None else fill(rng, n, special))
              for name, n in (("S", R * C), ("dW", R * K), ("dX", C * K))}
    scratch = guarded([0.0] * lib.t_scratch(R, C, K))

    want = array("d", [0.0] * (R * C))
    lib.ref_forward(R, C, K, ptr(W), ptr(X), ptr(starts["S"]), ptr(want))
    out = guarded([0.0] * (R * C))
    lib.t_forward(R, C, K, ptr(W), ptr(X), ptr(starts["S"]), ptr(out, True), ptr(scratch, True))
    assert_same_bits(inner(out), want, f"forward {R}x{C}x{K}")
    inner(scratch)

    want = array("d", starts["dW"])
    lib.ref_backward_w(R, C, K, ptr(X), ptr(G), ptr(want))
    got = guarded(starts["dW"])
    lib.t_backward_w(R, C, K, ptr(X), ptr(G), ptr(got, True), ptr(scratch, True))
    assert_same_bits(inner(got), want, f"backward_w {R}x{C}x{K}")
    inner(scratch)

    want = array("d", starts["dX"])
    lib.ref_backward_x(R, C, K, ptr(W), ptr(G), ptr(want))
    got = guarded(starts["dX"])
    lib.t_backward_x(R, C, K, ptr(W), ptr(G), ptr(got, True), ptr(scratch, True))
    assert_same_bits(inner(got), want, f"backward_x {R}x{C}x{K}")
    inner(scratch)


# ---------------------------------------------------------------------------------------------
# The reference is the scalar loop


def test_reference_loop_rounds_as_python_floats(lib):
    rng = random.Random(1)
    for R, C, K in [(1, 1, 1), (3, 5, 7), (4, 2, 9)]:
        W, X, S = fill(rng, R * K, 0.2), fill(rng, C * K, 0.2), fill(rng, R * C, 0.2)
        out = array("d", [0.0] * (R * C))
        lib.ref_forward(R, C, K, ptr(W), ptr(X), ptr(S), ptr(out))
        want = array("d", [0.0] * (R * C))
        for r in range(R):
            for c in range(C):
                acc = S[r * C + c]
                for k in range(K):
                    acc = acc + W[r * K + k] * X[c * K + k]
                want[r * C + c] = acc
        assert_same_bits(out, want, "reference forward")
        G, dW, dX = fill(rng, R * C, 0.2), fill(rng, R * K, 0.2), fill(rng, C * K, 0.2)
        want_w, want_x = array("d", dW), array("d", dX)
        lib.ref_backward_w(R, C, K, ptr(X), ptr(G), ptr(dW))
        lib.ref_backward_x(R, C, K, ptr(W), ptr(G), ptr(dX))
        for r in range(R):
            for k in range(K):
                for c in range(C):
                    want_w[r * K + k] = want_w[r * K + k] + X[c * K + k] * G[r * C + c]
        for c in range(C):
            for k in range(K):
                for r in range(R):
                    want_x[c * K + k] = want_x[c * K + k] + W[r * K + k] * G[r * C + c]
        assert_same_bits(dW, want_w, "reference backward_w")
        assert_same_bits(dX, want_x, "reference backward_x")


def test_fused_multiply_add_would_be_seen(lib):
    """The data below tell an fma from a multiply then an add: 1 + (1+2^-30)(1-2^-30) rounds
    the product to 1 first, an fma does not. So the equality tests can see a contraction."""
    a, b = 1.0 + 2.0 ** -30, 1.0 - 2.0 ** -30
    W, X, S = array("d", [a]), array("d", [b]), array("d", [-1.0])
    out = array("d", [7.0])
    lib.ref_forward(1, 1, 1, ptr(W), ptr(X), ptr(S), ptr(out))
    assert out[0] == 0.0  # (a*b rounds to 1.0) - 1.0; an fma would give -2^-60


# ---------------------------------------------------------------------------------------------
# Every path against the reference


def test_automatic_choice_is_the_best_available(lib):
    lib.t_force(-1)
    assert lib.t_isa() == max(available_levels(lib))
    assert lib.t_available(0) and lib.t_force(len(ISA_NAMES)) == -1


EDGE_SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 13, 15, 16, 17, 23, 31, 32, 33, 40]


def test_every_small_shape_edge(lib, isa):
    rng = random.Random(100 + isa)
    for R in EDGE_SIZES:
        for C in EDGE_SIZES[::2]:
            check_all(lib, R, C, rng.choice(EDGE_SIZES), rng)


def test_random_shapes(lib, isa):
    rng = random.Random(200 + isa)
    for _ in range(120):
        check_all(lib, rng.randint(1, 40), rng.randint(1, 40), rng.randint(1, 40), rng)


def test_large_shapes(lib, isa):
    rng = random.Random(300 + isa)
    for R, C, K in [(256, 100, 256), (10, 601, 32), (67, 3, 129)]:
        check_all(lib, R, C, K, rng)


def test_special_values(lib, isa):
    """NaN, infinities, signed zeros, subnormals, overflowing and underflowing products."""
    rng = random.Random(400 + isa)
    for _ in range(60):
        check_all(lib, rng.randint(1, 24), rng.randint(1, 24), rng.randint(1, 24), rng, special=0.5)


def test_negative_zero_accumulators(lib, isa):
    """-0.0 + (-0.0) stays -0.0 and -0.0 + 0.0 is +0.0: starts of -0.0 with zero products."""
    rng = random.Random(500 + isa)
    for _ in range(30):
        R, C, K = rng.randint(1, 20), rng.randint(1, 20), rng.randint(1, 20)
        check_all(lib, R, C, K, rng, special=0.0, init=-0.0)
    for R, C, K in [(5, 9, 3), (17, 4, 6)]:
        zeros = random.Random(7)
        zeros.choice = lambda seq: (-0.0 if zeros.random() < 0.5 else 0.0)  # every value a signed zero
        check_all(lib, R, C, K, zeros, special=1.0, init=-0.0)


def test_forward_in_place_and_any_scratch_alignment(lib, isa):
    """out may be S itself; scratch may start at any double (the kernels align their panels)."""
    rng = random.Random(600 + isa)
    for R, C, K in [(9, 37, 11), (16, 100, 16), (3, 8, 40)]:
        W, X, S = fill(rng, R * K, 0.1), fill(rng, C * K, 0.1), fill(rng, R * C, 0.1)
        want = array("d", [0.0] * (R * C))
        lib.ref_forward(R, C, K, ptr(W), ptr(X), ptr(S), ptr(want))
        for offset in range(8):
            scratch = guarded([0.0] * (lib.t_scratch(R, C, K) + offset))
            inplace = guarded(S)
            scratch_at = ctypes.cast(ctypes.addressof(ptr(scratch, True).contents) + 8 * offset, ctypes.POINTER(ctypes.c_double))
            lib.t_forward(R, C, K, ptr(W), ptr(X), ptr(inplace, True), ptr(inplace, True), scratch_at)
            assert_same_bits(inner(inplace), want, f"in-place forward {R}x{C}x{K}, scratch + {offset}")
            inner(scratch)


def test_header_is_shipped_as_package_data():
    root = Path(__file__).resolve().parent.parent
    assert '"_matmul.h"' in (root / "pyproject.toml").read_text(encoding="utf-8")
    assert (HEADER_DIR / "_matmul.h").is_file()
