"""The pure-Python engine: Karpathy's ``Value``, readable, and the reference for the compiled one.

Differences from karpathy/micrograd, all deliberate:
- ``_prev`` is a tuple in argument order (not a set), so the order in which gradients
  accumulate is fixed and the compiled engine can reproduce it bit for bit;
- ``backward()`` sorts the graph with an explicit stack, so any depth works;
- each op's backward rule is a method next to its forward, found through the node's op code
  (no closure per node, and so no reference cycle per node);
- data and grad are always floats; bad input raises TypeError naming the type.
See ``micrograd/_ops.py`` for the table of ops both engines share.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from micrograd import _ops
from micrograd._ops import ADD, EXP, LEAF, LOG, MUL, POW, POWC, RELU, SIGMOID, TANH

Number = Any  # int, float, or anything with __float__


def _as_float(x: object) -> float:
    return x if type(x) is float else _ops.to_float(x)  # type: ignore[return-value]


class Value:
    """stores a single scalar value and its gradient"""

    # No __weakref__: the compiled Value has none either (it would cost 8 bytes a node).
    __slots__ = ("_data", "_grad", "_prev", "_code", "_aux", "_label")

    def __init__(
        self,
        data: Number,
        _children: Iterable[Value] = (),
        _op: str = "",
        label: str = "",
    ) -> None:
        self._data = _as_float(data)
        self._grad = 0.0
        self._prev = _ops.check_children(_children, Value) if _children else ()
        self._code, self._aux = _ops.parse_symbol(_op, len(self._prev)) if (_op or self._prev) else (LEAF, 0.0)
        self._label = _ops.check_label(label)

    # -- attributes ----------------------------------------------------------------------------
    @property
    def data(self) -> float:
        return self._data

    @data.setter
    def data(self, value: Number) -> None:
        self._data = _as_float(value)

    @property
    def grad(self) -> float:
        return self._grad

    @grad.setter
    def grad(self, value: Number) -> None:
        self._grad = value if type(value) is float else _ops.to_float(value, "grad")

    @property
    def label(self) -> str:
        return self._label

    @label.setter
    def label(self, value: str) -> None:
        self._label = _ops.check_label(value)

    @property
    def _op(self) -> str:
        return _ops.symbol(self._code, self._aux)

    # -- ops: forward and backward side by side ------------------------------------------------
    def __add__(self, other: Value | Number) -> Value:
        other = _wrap(other)
        if other is NotImplemented:
            return NotImplemented
        return _node(self._data + other._data, ADD, (self, other))

    def _add_backward(out: Value) -> None:
        a, b = out._prev
        a._grad += out._grad
        b._grad += out._grad

    def __mul__(self, other: Value | Number) -> Value:
        other = _wrap(other)
        if other is NotImplemented:
            return NotImplemented
        return _node(self._data * other._data, MUL, (self, other))

    def _mul_backward(out: Value) -> None:
        a, b = out._prev
        a._grad += b._data * out._grad
        b._grad += a._data * out._grad

    def __pow__(self, other: Value | Number, modulo: None = None) -> Value:
        if modulo is not None:
            raise TypeError(_ops.POW_MODULO)
        if isinstance(other, Value):
            return _node(_checked_pow(self._data, other._data), POW, (self, other))
        if not _ops.is_number(other):
            return NotImplemented
        k = _as_float(other)
        return _node(_checked_pow(self._data, k), POWC, (self,), k)

    def _powc_backward(out: Value) -> None:
        (a,) = out._prev
        k = out._aux
        a._grad += (k * _c_pow(a._data, k - 1.0)) * out._grad

    def _pow_backward(out: Value) -> None:
        a, b = out._prev
        x, k = a._data, b._data
        a._grad += (k * _c_pow(x, k - 1.0)) * out._grad
        b._grad += _exponent_slope(x, k, out._data) * out._grad

    def relu(self) -> Value:
        x = self._data
        return _node(0.0 if x < 0 else x, RELU, (self,))

    def _relu_backward(out: Value) -> None:
        (a,) = out._prev
        a._grad += (out._data > 0) * out._grad

    def tanh(self) -> Value:
        return _node(math.tanh(self._data), TANH, (self,))

    def _tanh_backward(out: Value) -> None:
        (a,) = out._prev
        t = out._data
        a._grad += (1.0 - t * t) * out._grad

    def exp(self) -> Value:
        return _node(_checked_exp(self._data), EXP, (self,))

    def _exp_backward(out: Value) -> None:
        (a,) = out._prev
        a._grad += out._data * out._grad

    def log(self) -> Value:
        return _node(_checked_log(self._data), LOG, (self,))

    def _log_backward(out: Value) -> None:
        (a,) = out._prev
        a._grad += _c_div(out._grad, a._data)

    def sigmoid(self) -> Value:
        return _node(_sigmoid(self._data), SIGMOID, (self,))

    def _sigmoid_backward(out: Value) -> None:
        (a,) = out._prev
        s = out._data
        a._grad += (s * (1.0 - s)) * out._grad

    def _leaf_backward(out: Value) -> None:
        pass

    # -- backpropagation -----------------------------------------------------------------------
    def _backward(self) -> None:
        """Propagate this node's grad to its children (one chain-rule step, as in the lecture)."""
        _BACKWARD[self._code](self)

    def backward(self) -> None:
        """Set this node's grad to 1 and accumulate d(self)/d(node) into every node below it."""
        topo = _topological_order(self)
        self._grad = 1.0
        rules = _BACKWARD
        for v in reversed(topo):
            rules[v._code](v)

    # -- composite ops: built from the ones above, exactly as Karpathy's are -------------------
    def __neg__(self) -> Value:  # -self
        return self * -1

    def __radd__(self, other: Number) -> Value:  # other + self
        return self.__add__(other)  # not `self + other`: that bounces between unrelated types

    # A number operand becomes a float before it is negated or inverted: -np.uint8(3) wraps
    # around and np.int64(3) ** -1 raises, where float(...) gives what the leaf would hold.
    def __sub__(self, other: Value | Number) -> Value:  # self - other
        if isinstance(other, Value):
            return self + (-other)
        if not _ops.is_number(other):
            return NotImplemented
        return self + (-_as_float(other))

    def __rsub__(self, other: Number) -> Value:  # other - self
        if not _ops.is_number(other):
            return NotImplemented
        return _as_float(other) + (-self)

    def __rmul__(self, other: Number) -> Value:  # other * self
        return self.__mul__(other)

    def __truediv__(self, other: Value | Number) -> Value:  # self / other
        if isinstance(other, Value):
            return self * other**-1
        if not _ops.is_number(other):
            return NotImplemented
        return self * _as_float(other) ** -1  # float ** -1: ZeroDivisionError for 0, as 1/0.0

    def __rtruediv__(self, other: Number) -> Value:  # other / self
        if not _ops.is_number(other):
            return NotImplemented
        return _as_float(other) * self**-1

    def __rpow__(self, other: Number, modulo: None = None) -> Value:  # other ** self
        if modulo is not None or not _ops.is_number(other):
            return NotImplemented  # pow(x, v, m): Python's own TypeError, as for any class
        return Value(other) ** self

    def __repr__(self) -> str:
        label = f", label={self._label!r}" if self._label else ""
        return f"Value(data={self._data!r}, grad={self._grad!r}{label})"

    def __reduce__(self) -> tuple:
        # A pickled Value is a leaf (data, grad, label), restored on whichever engine is active.
        from micrograd.engine import _restore_value

        return _restore_value, (self._data, self._grad, self._label)

    # A copy is a leaf too, as after pickling, but of this engine: copying stays in the process.
    def __copy__(self) -> Value:
        out = Value(self._data, label=self._label)
        out._grad = self._grad
        return out

    def __deepcopy__(self, memo: dict[int, Any]) -> Value:
        return self.__copy__()


_BACKWARD: dict[int, Callable[[Value], None]] = {
    LEAF: Value._leaf_backward,
    ADD: Value._add_backward,
    MUL: Value._mul_backward,
    POWC: Value._powc_backward,
    POW: Value._pow_backward,
    RELU: Value._relu_backward,
    TANH: Value._tanh_backward,
    EXP: Value._exp_backward,
    LOG: Value._log_backward,
    SIGMOID: Value._sigmoid_backward,
}

_new = object.__new__


def _node(data: float, code: int, children: tuple, aux: float = 0.0) -> Value:
    """A new interior node; skips __init__'s checks, which the op has already done."""
    out = _new(Value)
    out._data = data
    out._grad = 0.0
    out._prev = children
    out._code = code
    out._aux = aux
    out._label = ""
    return out


def _wrap(other: object) -> Value:
    if isinstance(other, Value):
        return other
    if _ops.is_number(other):
        return Value(other)
    return NotImplemented  # type: ignore[return-value]


def _topological_order(root: Value) -> list[Value]:
    """Nodes below root, children before parents: the post-order of a depth-first search that
    visits children in ``_prev`` order (Karpathy's build_topo, with a stack instead of recursion)."""
    topo: list[Value] = []
    visited = {root}
    stack = [(root, iter(root._prev))]
    while stack:
        node, children = stack[-1]
        for child in children:
            if child not in visited:
                visited.add(child)
                stack.append((child, iter(child._prev)))
                break
        else:
            stack.pop()
            topo.append(node)
    return topo


def _checked_pow(x: float, k: float) -> float:
    """x ** k for the forward pass: C's pow() where it has a real finite answer, else the error
    Python's float raises (ZeroDivisionError, ValueError, OverflowError)."""
    # 0 ** -inf is inf, not an error: Python's float says so (0 ** -1 is a pole; -inf is a limit)
    if (x == 0.0 and k < 0.0 and math.isfinite(k)) or (x < 0.0 and math.isfinite(x) and math.isfinite(k) and not k.is_integer()):
        raise _ops.pow_error(x, k)
    try:
        return math.pow(x, k)  # the platform pow(), as the compiled engine calls it
    except OverflowError:
        raise _ops.pow_error(x, k) from None


def _checked_exp(x: float) -> float:
    """exp(x), or OverflowError naming the op and value where the result is too large."""
    try:
        return math.exp(x)
    except OverflowError:
        raise _ops.exp_error(x) from None


def _checked_log(x: float) -> float:
    """log(x), or ValueError naming the op and value where x is not positive."""
    if x <= 0.0:
        raise _ops.log_error(x)
    return math.log(x)


def _sigmoid(x: float) -> float:
    """1 / (1 + exp(-x)), in a form that never overflows."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)  # for x < 0, exp(-x) could overflow; this form cannot
    return e / (1.0 + e)


def _c_pow(x: float, k: float) -> float:
    """C99 pow(): math.pow, but returning inf/nan where math.pow raises (backward never raises)."""
    try:
        return math.pow(x, k)
    except OverflowError:  # |x ** k| too large: inf with the sign of the result
        return -math.inf if x < 0.0 and _is_odd_integer(k) else math.inf
    except ValueError:
        if x == 0.0:  # 0 ** negative: a pole
            return math.copysign(math.inf, x) if _is_odd_integer(k) else math.inf
        return math.nan  # negative ** fractional


def _c_div(n: float, d: float) -> float:
    """n / d with IEEE results (inf, nan) where Python raises ZeroDivisionError, as C divides."""
    try:
        return n / d
    except ZeroDivisionError:
        if n != n or n == 0.0:
            return math.nan
        return math.copysign(math.inf, n) * math.copysign(1.0, d)


def _is_odd_integer(k: float) -> bool:
    return k.is_integer() and math.fmod(k, 2.0) != 0.0


def _exponent_slope(x: float, k: float, out: float) -> float:
    """d(x ** k)/dk = x**k * log(x); taken as 0 where x == 0 and k >= 0 (as PyTorch does), nan for x < 0."""
    if x > 0.0:
        return out * math.log(x)
    if x == 0.0 and k >= 0.0:
        return 0.0
    return math.nan
