"""The op table both engines follow, and the input checks and error messages they share.

Each op has a code (the engines and tapes switch on it), a name, an arity (how many Value
operands), the symbol Karpathy's micrograd shows as ``Value._op``, and the ``Value`` method
that applies it. Every list of ops in the package is derived from ``OPS``, or checked against
it when its module loads. The formulas live in one place per language: ``micrograd/kernels.py``
(Python) and ``micrograd/_kernels.h`` (C), which must agree bit for bit. Every backward rule
has one form: ``child.grad += local * out.grad``, for each operand in order, where ``local`` is
the op's local derivative d(out)/d(child) (microgpt's ``_local_grads``):

    op       forward              local derivatives (a, b: operands; out: the result)
    add      a + b                1, 1
    mul      a * b                b, a
    powc     a ** k (k constant)  k * a**(k-1)
    pow      a ** b (b a Value)   b * a**(b-1), out * log(a) (0 where a == 0 and b >= 0)
    relu     0 if a < 0 else a    1 if out > 0 else 0
    tanh     tanh(a)              1 - out*out
    exp      exp(a)               out
    log      log(a)               1 / a
    sigmoid  1/(1+exp(-a)), a>=0  out * (1 - out)
             e/(1+e), e=exp(a)
    abs      |a|                  1 if a > 0, -1 if a < 0, 0 at a == 0 (as PyTorch)

``pow`` in forward is checked (see `pow_error`); in backward it is C's pow(), which returns
inf or nan instead of raising, so a backward pass never stops half way.

Besides the ops there are two kinds of node built by hand, whose backward rule was given when
the node was made (see `CUSTOM` and `LOCAL_GRADS`); tapes cannot replay them.
"""
from __future__ import annotations

import math
from typing import NamedTuple


class Op(NamedTuple):
    code: int
    name: str
    arity: int  # Value operands (powc's exponent is a constant, not an operand)
    symbol: str
    method: str  # the Value method that applies it ('' for a leaf)


OPS = (
    Op(0, "leaf", 0, "", ""),
    Op(1, "add", 2, "+", "__add__"),
    Op(2, "mul", 2, "*", "__mul__"),
    Op(3, "powc", 1, "**", "__pow__"),  # constant exponent, kept in the node; shown as '**2' like Karpathy's
    Op(4, "pow", 2, "**", "__pow__"),  # Value exponent
    Op(5, "relu", 1, "ReLU", "relu"),
    Op(6, "tanh", 1, "tanh", "tanh"),
    Op(7, "exp", 1, "exp", "exp"),
    Op(8, "log", 1, "log", "log"),
    Op(9, "sigmoid", 1, "sigmoid", "sigmoid"),
    Op(10, "abs", 1, "abs", "abs"),
)
OP_CODES = {op.name: op.code for op in OPS}
LEAF, ADD, MUL, POWC, POW, RELU, TANH, EXP, LOG, SIGMOID, ABS = (op.code for op in OPS)
BUILTIN_CODES = frozenset(op.code for op in OPS if op.code != LEAF)

# Nodes built by hand with ``Value(data, children, ...)`` (not ops: each carries its own rule).
# CUSTOM: Karpathy's lecture style, ``Value(data, children, '<any _op>')``; its backward does
#   nothing until a Python function is assigned to ``_backward`` (assigning one to any node
#   makes it CUSTOM).
# LOCAL_GRADS: microgpt style, ``Value(data, children, local_grads)``; its backward adds
#   ``local_grads[i] * out.grad`` into child i, in order.
CUSTOM = 64
LOCAL_GRADS = 65
HAND_BUILT_CODES = frozenset((CUSTOM, LOCAL_GRADS))


def format_exponent(k: float) -> str:
    """'2' for 2.0, '-1' for -1.0, '0.5' for 0.5: how Karpathy's '**{other}' reads for ints."""
    return str(int(k)) if k.is_integer() else repr(k)


def symbol(code: int, aux: float) -> str:
    """The ``_op`` string of a built-in op's node: its symbol, with the exponent for ``powc``."""
    if code == POWC:
        return "**" + format_exponent(aux)
    return OPS[code].symbol


def unknown_op(code: int) -> ValueError:
    """The error every loop over op codes raises for a code it does not know (never another
    op's formula)."""
    return ValueError(
        f"op code {code} has no forward or backward rule: the ops are codes 1-{len(OPS) - 1} of "
        "micrograd._ops.OPS (0 is a leaf)"
    )


# ---------------------------------------------------------------------------------------------
# Input checks. A number is anything with __float__ or __index__ (int, float, bool, NumPy
# scalars, Fraction, Decimal); strings are not numbers even though float("1") works.


def is_number(x: object) -> bool:
    t = type(x)
    return hasattr(t, "__float__") or hasattr(t, "__index__")


def to_float(x: object) -> float:
    """``float(x)`` for numbers; TypeError naming the type for anything else."""
    if type(x) is float:
        return x  # type: ignore[return-value]
    if not is_number(x):
        raise TypeError(
            f"Value data must be a real number (int, float or anything with __float__), "
            f"not {type(x).__name__!r}"
        )
    return float(x)  # type: ignore[arg-type]  # OverflowError for huge ints, as float() does


def check_label(label: object) -> str:
    if not isinstance(label, str):
        raise TypeError(f"Value label must be a str, not {type(label).__name__!r}")
    return label


def check_children(children: object, value_type: type) -> tuple:
    try:
        kids = tuple(children)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(
            f"Value _children must be an iterable of Value, not {type(children).__name__!r}"
        ) from None
    for kid in kids:
        if not isinstance(kid, value_type):
            raise TypeError(f"Value _children must hold Value objects, not {type(kid).__name__!r}")
    return kids


def check_op(op: object) -> str:
    if not isinstance(op, str):
        raise TypeError(f"Value _op must be a str, not {type(op).__name__!r}")
    return op


def check_local_grads(local_grads: object, n_children: int) -> tuple:
    """microgpt's ``local_grads``: one number per child, kept as floats."""
    try:
        grads: tuple = tuple(local_grads)  # type: ignore[call-overload, arg-type]
    except TypeError:
        raise TypeError(
            f"Value local_grads must be an iterable of numbers, not {type(local_grads).__name__!r}"
        ) from None
    if len(grads) != n_children:
        raise ValueError(f"Value local_grads has {len(grads)} numbers for {n_children} children")
    return tuple(to_float(g) for g in grads)


def python_backward(fn: object) -> object:
    """What may be assigned to ``Value._backward``: a callable taking no argument."""
    if not callable(fn):
        raise TypeError(f"Value._backward must be callable (a function of no arguments), not {type(fn).__name__!r}")
    return fn


def creates_cycle(node: object, children: tuple) -> ValueError:
    return ValueError(
        f"Value.__init__: {node!r} cannot take these children: it is one of them or below one "
        "of them, so the graph would have a cycle (a node must be made from nodes made before it)"
    )


def stale_backward(node: object) -> ValueError:
    return ValueError(
        f"this _backward was read from {node!r} before it was re-initialised; it no longer fits "
        "the node (read _backward again)"
    )


def no_local_grads(node: object) -> AttributeError:
    return AttributeError(
        f"{node!r} (_op {getattr(node, '_op', '')!r}) has no _local_grads: its backward is a Python "
        "function (or nothing), assigned through _backward"
    )


# ---------------------------------------------------------------------------------------------
# Math errors: the exception classes Python's float and math raise, with a message that says
# which op and which value. Both engines detect the same conditions and raise these.


def pow_error(x: float, k: float) -> ArithmeticError:
    """The error for ``x ** k`` when it has no real finite result (called only on failure)."""
    where = f"Value ** : {x!r} ** {k!r}"
    if x == 0.0 and k < 0.0:
        return ZeroDivisionError(f"{where}: 0.0 cannot be raised to a negative power")
    if x < 0.0 and math.isfinite(k) and not k.is_integer():
        return ValueError(f"{where}: a negative number cannot be raised to a fractional power")
    return OverflowError(f"{where}: result too large")


def log_error(x: float) -> ValueError:
    return ValueError(f"Value.log: math domain error, log of {x!r} (needs a positive number)")


def exp_error(x: float) -> OverflowError:
    return OverflowError(f"Value.exp: math range error, exp({x!r}) is too large")
