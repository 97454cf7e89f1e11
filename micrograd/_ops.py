"""The op table both engines follow, and the input checks and error messages they share.

Each op has a code (the Cython engine switches on it; the pure engine dispatches on it), a
name, an arity, and the symbol Karpathy's micrograd shows as ``Value._op``. The forward and
backward formulas live in the engines, side by side, and must be written identically there:
the two engines are required to agree bit for bit.

    op       forward              backward (g = out.grad; rules applied in this order)
    add      a + b                a.grad += g;                 b.grad += g
    mul      a * b                a.grad += b * g;             b.grad += a * g
    powc     a ** k (k constant)  a.grad += (k * a**(k-1)) * g
    pow      a ** b (b a Value)   a.grad += (b * a**(b-1)) * g;
                                  b.grad += (out * log(a)) * g  (0 where a == 0 and b >= 0)
    relu     0 if a < 0 else a    a.grad += (out > 0) * g
    tanh     tanh(a)              a.grad += (1 - out*out) * g
    exp      exp(a)               a.grad += out * g
    log      log(a)               a.grad += g / a
    sigmoid  1/(1+exp(-a)), a>=0  a.grad += (out * (1 - out)) * g
             e/(1+e), e=exp(a)

``pow`` in forward is checked (see `pow_error`); in backward it is C's pow(), which returns
inf or nan instead of raising, so a backward pass never stops half way.
"""
from __future__ import annotations

import math
from typing import NamedTuple


class Op(NamedTuple):
    code: int
    name: str
    arity: int
    symbol: str


OPS = (
    Op(0, "leaf", 0, ""),
    Op(1, "add", 2, "+"),
    Op(2, "mul", 2, "*"),
    Op(3, "powc", 1, "**"),  # constant exponent, kept in the node; shown as '**2' like Karpathy's
    Op(4, "pow", 2, "**"),  # Value exponent
    Op(5, "relu", 1, "ReLU"),
    Op(6, "tanh", 1, "tanh"),
    Op(7, "exp", 1, "exp"),
    Op(8, "log", 1, "log"),
    Op(9, "sigmoid", 1, "sigmoid"),
)
OP_CODES = {op.name: op.code for op in OPS}
LEAF, ADD, MUL, POWC, POW, RELU, TANH, EXP, LOG, SIGMOID = (op.code for op in OPS)


def format_exponent(k: float) -> str:
    """'2' for 2.0, '-1' for -1.0, '0.5' for 0.5: how Karpathy's '**{other}' reads for ints."""
    return str(int(k)) if k.is_integer() else repr(k)


def symbol(code: int, aux: float) -> str:
    """The ``_op`` string of a node: its op's symbol, with the exponent for ``powc``."""
    if code == POWC:
        return "**" + format_exponent(aux)
    return OPS[code].symbol


def parse_symbol(op: str, nchildren: int) -> tuple[int, float]:
    """(code, aux) for a Karpathy-style ``Value(data, _children, _op)`` call.

    Only needed when a user builds a node by hand; the engines' own ops never come here.
    """
    if not isinstance(op, str):
        raise TypeError(f"Value _op must be a str, not {type(op).__name__}")
    code, aux = None, 0.0
    if op.startswith("**") and len(op) > 2:
        code, aux = POWC, to_float(_parse_float(op[2:]))
    elif op == "**":
        code = POW
    elif op == "" and nchildren == 0:
        code = LEAF
    else:
        code = next((o.code for o in OPS[1:] if o.symbol == op and o.code != POWC), None)
    if code is None:
        known = ", ".join(repr(o.symbol) for o in OPS[1:] if o.code != POWC)
        raise ValueError(f"unknown Value _op {op!r}; expected '' for a leaf, '**<number>' or one of {known}")
    if OPS[code].arity != nchildren:
        raise ValueError(
            f"Value _op {op!r} takes {OPS[code].arity} children, got {nchildren}"
        )
    return code, aux


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"unknown Value _op '**{text}': the exponent is not a number") from None


# ---------------------------------------------------------------------------------------------
# Input checks. A number is anything with __float__ or __index__ (int, float, bool, NumPy
# scalars, Fraction, Decimal); strings are not numbers even though float("1") works.


def is_number(x: object) -> bool:
    t = type(x)
    return hasattr(t, "__float__") or hasattr(t, "__index__")


def to_float(x: object, what: str = "data") -> float:
    """``float(x)`` for numbers; TypeError naming the type (and ``what``: data, grad) otherwise."""
    if type(x) is float:
        return x  # type: ignore[return-value]
    if not is_number(x):
        raise TypeError(
            f"Value {what} must be a real number (int, float or anything with __float__), "
            f"not {type(x).__name__!r}"
        )
    return float(x)  # type: ignore[arg-type]  # OverflowError for huge ints, as float() does


def check_label(label: object) -> str:
    """The label as a plain str: a str subclass (``numpy.str_``) is accepted and stored as str."""
    if type(label) is str:
        return label
    if not isinstance(label, str):
        raise TypeError(f"Value label must be a str, not {type(label).__name__!r}")
    return str.__str__(label)  # the characters, not whatever a subclass's __str__ makes of them


POW_MODULO = "pow() 3rd argument (a modulo) is not supported by Value"


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
    if len(kids) > 2:
        raise ValueError(f"a Value has at most 2 children, got {len(kids)}")
    return kids


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
