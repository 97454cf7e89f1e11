"""Every op's forward and backward rule, written once in Python.

The pure engine, the pure tape, ``explain`` and the graph tools call these; the compiled engine
and tape call their C twins in ``micrograd/_kernels.h``, which compute the same bits (same
operations in the same order; C built without fused multiply-add). To add an op, see
docs/adding-an-op.md.

Each op has two functions, side by side:

- ``forward(x, y) -> float``: the result, or the exception Python's float/math raise where it
  has none (``y`` is b's data for a binary op, the constant exponent for powc, unused otherwise);
- ``grads(x, y, out) -> tuple``: the local derivatives d(out)/d(operand), one per operand. Every
  backward rule is ``operand.grad += local * out.grad``, operands in order.

``KERNELS`` maps each op code of ``micrograd._ops.OPS`` (the leaf excepted) to them; it is
checked against ``OPS`` when this module loads.
"""
from __future__ import annotations

import math
import os
import re
from typing import Any, Callable, NamedTuple

from micrograd import _ops
from micrograd._ops import ABS, ADD, EXP, LOG, MUL, POW, POWC, RELU, SIGMOID, TANH

# -- add: out = a + b ---------------------------------------------------------------------------


def add(a: float, b: float) -> float:
    return a + b


def add_grads(a: float, b: float, out: float) -> tuple:
    return (1.0, 1.0)


# -- mul: out = a * b ---------------------------------------------------------------------------


def mul(a: float, b: float) -> float:
    return a * b


def mul_grads(a: float, b: float, out: float) -> tuple:
    return (b, a)


# -- pow (b a Value) and powc (k a constant): out = a ** k --------------------------------------


def power(x: float, k: float) -> float:
    """C's pow() where it has a real finite answer, else the error Python's float raises
    (ZeroDivisionError, ValueError, OverflowError)."""
    if (x == 0.0 and k < 0.0) or (x < 0.0 and math.isfinite(x) and math.isfinite(k) and not k.is_integer()):
        raise _ops.pow_error(x, k)
    try:
        return math.pow(x, k)  # the platform pow(), as the compiled engine calls it
    except OverflowError:
        raise _ops.pow_error(x, k) from None


def powc_grads(x: float, k: float, out: float) -> tuple:
    return (k * c_pow(x, k - 1.0),)


def pow_grads(x: float, k: float, out: float) -> tuple:
    return (k * c_pow(x, k - 1.0), exponent_slope(x, k, out))


def exponent_slope(x: float, k: float, out: float) -> float:
    """d(x ** k)/dk = x**k * log(x); taken as 0 where x == 0 and k >= 0 (as PyTorch does), nan for x < 0."""
    if x > 0.0:
        return out * math.log(x)
    if x == 0.0 and k >= 0.0:
        return 0.0
    return math.nan


# -- relu: out = 0 if a < 0 else a --------------------------------------------------------------


def relu(x: float, y: float = 0.0) -> float:
    return 0.0 if x < 0 else x


def relu_grads(x: float, y: float, out: float) -> tuple:
    return (1.0 if out > 0 else 0.0,)


# -- tanh: out = tanh(a) (math.tanh: no overflow, unlike the lecture's exp formula) -------------


def tanh(x: float, y: float = 0.0) -> float:
    return math.tanh(x)


def tanh_grads(x: float, y: float, out: float) -> tuple:
    return (1.0 - out * out,)


# -- exp: out = exp(a) --------------------------------------------------------------------------


def exp(x: float, y: float = 0.0) -> float:
    """exp(x), or OverflowError naming the op and value where the result is too large."""
    try:
        return math.exp(x)
    except OverflowError:
        raise _ops.exp_error(x) from None


def exp_grads(x: float, y: float, out: float) -> tuple:
    return (out,)


# -- log: out = log(a) --------------------------------------------------------------------------


def log(x: float, y: float = 0.0) -> float:
    """log(x), or ValueError naming the op and value where x is not positive."""
    if x <= 0.0:
        raise _ops.log_error(x)
    return math.log(x)


def log_grads(x: float, y: float, out: float) -> tuple:
    return (c_div(1.0, x),)  # (1 / a) * g, as microgpt computes it (not g / a)


# -- sigmoid: out = 1 / (1 + exp(-a)) -----------------------------------------------------------


def sigmoid(x: float, y: float = 0.0) -> float:
    """1 / (1 + exp(-x)), in a form that never overflows."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)  # for x < 0, exp(-x) could overflow; this form cannot
    return e / (1.0 + e)


def sigmoid_grads(x: float, y: float, out: float) -> tuple:
    return (out * (1.0 - out),)


# -- abs: out = |a| -----------------------------------------------------------------------------


def absolute(x: float, y: float = 0.0) -> float:
    return math.fabs(x)


def abs_grads(x: float, y: float, out: float) -> tuple:
    """sign(a): 1, -1, and 0 at a == 0 (PyTorch's choice: 0 is in [-1, 1], the subgradient);
    nan for a nan."""
    return (1.0 if x > 0.0 else -1.0 if x < 0.0 else 0.0 if x == 0.0 else x,)


# -- C arithmetic where Python raises -----------------------------------------------------------


def c_pow(x: float, k: float) -> float:
    """C99 pow(): math.pow, but returning inf/nan where math.pow raises (backward never raises)."""
    try:
        return math.pow(x, k)
    except OverflowError:  # |x ** k| too large: inf with the sign of the result
        return -math.inf if x < 0.0 and _is_odd_integer(k) else math.inf
    except ValueError:
        if x == 0.0:  # 0 ** negative: a pole
            return math.copysign(math.inf, x) if _is_odd_integer(k) else math.inf
        return math.nan  # negative ** fractional


def c_div(n: float, d: float) -> float:
    """n / d with IEEE results (inf, nan) where Python raises ZeroDivisionError, as C divides."""
    try:
        return n / d
    except ZeroDivisionError:
        if n != n or n == 0.0:
            return math.nan
        return math.copysign(math.inf, n) * math.copysign(1.0, d)


def _is_odd_integer(k: float) -> bool:
    return k.is_integer() and math.fmod(k, 2.0) != 0.0


# -- the table ----------------------------------------------------------------------------------


class Kernel(NamedTuple):
    forward: Callable[[float, float], float]
    grads: Callable[[float, float, float], tuple]
    formulas: tuple  # each local derivative in words, with out, a, b (for explain)


KERNELS = {
    ADD: Kernel(add, add_grads, ("1", "1")),
    MUL: Kernel(mul, mul_grads, ("b", "a")),
    POWC: Kernel(power, powc_grads, ("k*a**(k-1)",)),
    POW: Kernel(power, pow_grads, ("b*a**(b-1)", "out*log(a)")),
    RELU: Kernel(relu, relu_grads, ("1 if out > 0 else 0",)),
    TANH: Kernel(tanh, tanh_grads, ("1 - out**2",)),
    EXP: Kernel(exp, exp_grads, ("out",)),
    LOG: Kernel(log, log_grads, ("1/a",)),
    SIGMOID: Kernel(sigmoid, sigmoid_grads, ("out*(1 - out)",)),
    ABS: Kernel(absolute, abs_grads, ("sign(a)",)),
}


def _check_table() -> None:
    """KERNELS must cover exactly the ops of OPS, with one formula per operand."""
    if set(KERNELS) != _ops.BUILTIN_CODES:
        missing = sorted(_ops.BUILTIN_CODES - set(KERNELS))
        extra = sorted(set(KERNELS) - _ops.BUILTIN_CODES)
        raise ImportError(f"micrograd.kernels does not match micrograd._ops.OPS: missing {missing}, unknown {extra}")
    for code, kernel in KERNELS.items():
        if len(kernel.formulas) != max(_ops.OPS[code].arity, 1):
            raise ImportError(f"micrograd.kernels: op {_ops.OPS[code].name} needs one formula per operand")


_check_table()



def _no_rule(code: int) -> Callable[..., Any]:
    def raise_unknown(*args: float) -> Any:
        raise _ops.unknown_op(code)

    return raise_unknown


# For the tapes' loops: op code -> function, for every code a tape can hold (a byte), so that a
# code without a kernel (the leaf, an unknown code) raises. Plain dicts: CPython specialises
# their lookups in a loop.
FORWARD = {c: KERNELS[c].forward if c in KERNELS else _no_rule(c) for c in range(256)}
GRADS = {c: KERNELS[c].grads if c in KERNELS else _no_rule(c) for c in range(256)}

# The C twin of this module, shipped in the package (the extension and the bench's C floor
# include it).
C_HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_kernels.h")


def c_op_names() -> list:
    """The op names _kernels.h declares (its MG_OP_NAMES), in code order: tests compare them
    with OPS, and any C program built on the header can be checked the same way."""
    with open(C_HEADER, encoding="utf-8") as f:
        match = re.search(r'#define MG_OP_NAMES "([^"]*)"', f.read())
    if match is None:
        raise ValueError(f"{C_HEADER} has no MG_OP_NAMES")
    return match.group(1).split()


def forward(code: int, x: float, y: float = 0.0) -> float:
    """The result of op ``code`` (raising what eager mode raises); ValueError for an unknown code."""
    kernel = KERNELS.get(code)
    if kernel is None:
        raise _ops.unknown_op(code)
    return kernel.forward(x, y)


def local_grads(code: int, x: float, y: float, out: float) -> tuple:
    """d(out)/d(operand) of op ``code``, one per operand; ValueError for an unknown code."""
    kernel = KERNELS.get(code)
    if kernel is None:
        raise _ops.unknown_op(code)
    return kernel.grads(x, y, out)


def forward_error(code: int, x: float, y: float) -> Exception:
    """The exception eager mode raises where op ``code`` fails on (x, y): for the compiled
    engine and tape, whose C kernels only say that it fails."""
    try:
        forward(code, x, y)
    except (ArithmeticError, ValueError) as exc:
        return exc
    return RuntimeError(f"op {_ops.OPS[code].name} did not fail on ({x!r}, {y!r}) in Python but did in C")
