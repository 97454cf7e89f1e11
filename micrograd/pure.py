"""The pure-Python engine: Karpathy's ``Value``, readable, and the reference for the compiled one.

Differences from karpathy/micrograd, all deliberate:
- ``_prev`` is a tuple in argument order (not a set), so the order in which gradients
  accumulate is fixed and the compiled engine can reproduce it bit for bit;
- ``backward()`` sorts the graph with an explicit stack, so any depth works;
- each op's formulas live in ``micrograd/kernels.py``, found through the node's op code (no
  closure per node, and so no reference cycle per node);
- data and grad are always floats; bad input raises TypeError naming the type.
Nodes built by hand work as in Karpathy's lecture (``Value(data, children, '<op>')``, then
assign ``_backward``) and microgpt (``Value(data, children, local_grads)``).
See ``micrograd/_ops.py`` for the table of ops both engines share.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Iterable

from micrograd import _ops, kernels
from micrograd._ops import ABS, CUSTOM, EXP, LEAF, LOCAL_GRADS, LOG, POW, POWC, RELU, SIGMOID, TANH

Number = Any  # int, float, or anything with __float__


def _as_float(x: object) -> float:
    return x if type(x) is float else _ops.to_float(x)  # type: ignore[return-value]


class _HandBuilt:
    """What a node built by hand carries besides the common fields (in Value._hand)."""

    __slots__ = ("op", "backward", "local_grads")

    def __init__(self, op: str, backward: Callable[[], None] | None, local_grads: tuple | None) -> None:
        self.op = op
        self.backward = backward
        self.local_grads = local_grads


class Value:
    """stores a single scalar value and its gradient"""

    # No __weakref__: the compiled Value has none either (it would cost 8 bytes a node).
    __slots__ = ("_data", "_grad", "_prev", "_code", "_aux", "_label", "_hand")

    def __init__(
        self,
        data: Number,
        _children: Iterable[Value] = (),
        _op: str | Iterable[Number] = "",  # or microgpt's local_grads, given by position
        label: str = "",
        *,
        local_grads: Iterable[Number] | None = None,
    ) -> None:
        # Everything is checked before anything is assigned: a failed __init__ changes nothing.
        d = _as_float(data)
        kids = _ops.check_children(_children, Value) if _children else ()
        if not isinstance(_op, str) and _op is not None and local_grads is None:
            local_grads, _op = _op, ""  # microgpt's Value(data, children, local_grads)
        op = _ops.check_op(_op)
        label = _ops.check_label(label)
        grads = None if local_grads is None else _ops.check_local_grads(local_grads, len(kids))
        if not kids and not op:
            code, hand = LEAF, None
        else:
            code = LOCAL_GRADS if grads is not None else CUSTOM
            hand = _HandBuilt(op, None, grads)
        # A Value never initialised has no parents; one that is re-initialised might be below
        # its new children: refuse what would close a cycle.
        if kids and hasattr(self, "_code") and _reaches(kids, self):
            raise _ops.creates_cycle(self, kids)
        self._data, self._grad, self._prev, self._code, self._aux = d, 0.0, kids, code, 0.0
        self._label, self._hand = label, hand

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
        self._grad = _as_float(value)

    @property
    def label(self) -> str:
        return self._label

    @label.setter
    def label(self, value: str) -> None:
        self._label = _ops.check_label(value)

    @property
    def _op(self) -> str:
        if self._hand is not None:
            return self._hand.op
        return _ops.symbol(self._code, self._aux)

    @property
    def _children(self) -> tuple:
        """The children, in order (microgpt's name for _prev)."""
        return self._prev

    @property
    def _local_grads(self) -> tuple:
        """d(self)/d(child) for each child, in order (microgpt's): computed from the current data
        for an op's node, as given for a Value(data, children, local_grads)."""
        code = self._code
        if code == LEAF:
            return ()
        if code == LOCAL_GRADS:
            grads: tuple = self._hand.local_grads  # type: ignore[union-attr, assignment]
            return grads
        if code == CUSTOM:
            raise _ops.no_local_grads(self)
        x, y = _operands(self)
        return kernels.local_grads(code, x, y, self._data)

    # -- ops: each is micrograd/kernels.py's forward; backward() applies its local derivatives ---
    def __add__(self, other: Value | Number) -> Value:
        other = _wrap(other)
        if other is NotImplemented:
            return NotImplemented
        return _node(kernels.add(self._data, other._data), _ops.ADD, (self, other))

    def __mul__(self, other: Value | Number) -> Value:
        other = _wrap(other)
        if other is NotImplemented:
            return NotImplemented
        return _node(kernels.mul(self._data, other._data), _ops.MUL, (self, other))

    def __pow__(self, other: Value | Number) -> Value:
        if isinstance(other, Value):
            return _node(kernels.power(self._data, other._data), POW, (self, other))
        if not _ops.is_number(other):
            return NotImplemented
        k = _as_float(other)
        return _node(kernels.power(self._data, k), POWC, (self,), k)

    def relu(self) -> Value:
        return _node(kernels.relu(self._data), RELU, (self,))

    def tanh(self) -> Value:
        return _node(kernels.tanh(self._data), TANH, (self,))

    def exp(self) -> Value:
        return _node(kernels.exp(self._data), EXP, (self,))

    def log(self) -> Value:
        return _node(kernels.log(self._data), LOG, (self,))

    def sigmoid(self) -> Value:
        return _node(kernels.sigmoid(self._data), SIGMOID, (self,))

    def abs(self) -> Value:
        return _node(kernels.absolute(self._data), ABS, (self,))

    def __abs__(self) -> Value:
        return self.abs()

    # -- backpropagation -----------------------------------------------------------------------
    @property
    def _backward(self) -> Callable[[], None]:
        """This node's chain-rule step, as a function of no arguments (the lecture calls
        ``o._backward()`` node by node). Assign a Python function to give the node your own rule:
        backward() then calls it for this node (it reads ``out.grad``, adds into the children)."""
        if self._code == CUSTOM:
            fn = self._hand.backward  # type: ignore[union-attr]
            return _no_backward if fn is None else fn
        return functools.partial(_rule_step, self, self._code)

    @_backward.setter
    def _backward(self, fn: Callable[[], None]) -> None:
        _ops.python_backward(fn)
        if self._hand is None:
            self._hand = _HandBuilt(self._op, None, None)
        self._hand.backward = fn
        self._code = CUSTOM

    def backward(self) -> None:
        """Set this node's grad to 1 and accumulate d(self)/d(node) into every node below it."""
        topo = _topological_order(self)
        self._grad = 1.0
        steps = _STEPS
        for v in reversed(topo):
            steps[v._code](v)

    # -- composite ops: built from the ones above, exactly as Karpathy's are -------------------
    def __neg__(self) -> Value:  # -self
        return self * -1

    def __radd__(self, other: Number) -> Value:  # other + self
        return self.__add__(other)  # not `self + other`: that bounces between unrelated types

    def __sub__(self, other: Value | Number) -> Value:  # self - other
        if not isinstance(other, Value) and not _ops.is_number(other):
            return NotImplemented
        return self + (-other)

    def __rsub__(self, other: Number) -> Value:  # other - self
        if not _ops.is_number(other):
            return NotImplemented
        return other + (-self)

    def __rmul__(self, other: Number) -> Value:  # other * self
        return self.__mul__(other)

    def __truediv__(self, other: Value | Number) -> Value:  # self / other
        if not isinstance(other, Value) and not _ops.is_number(other):
            return NotImplemented
        return self * other**-1

    def __rtruediv__(self, other: Number) -> Value:  # other / self
        if not _ops.is_number(other):
            return NotImplemented
        return other * self**-1

    def __rpow__(self, other: Number) -> Value:  # other ** self
        if not _ops.is_number(other):
            return NotImplemented
        return Value(other) ** self

    def __repr__(self) -> str:
        label = f", label={self._label!r}" if self._label else ""
        return f"Value(data={self._data!r}, grad={self._grad!r}{label})"

    def __reduce__(self) -> tuple:
        # A pickled Value is a leaf (data, grad, label), restored on whichever engine is active.
        from micrograd.engine import _restore_value

        return _restore_value, (self._data, self._grad, self._label)


def _no_backward() -> None:
    """The backward of a node built by hand with no _backward assigned: nothing (Karpathy's)."""


def _operands(node: Value) -> tuple:
    """(x, y) for the kernels: operand a's data, and b's data or powc's exponent (0 if unused)."""
    kids = node._prev
    return kids[0]._data, (kids[1]._data if len(kids) > 1 else node._aux)


def _op_rule(code: int) -> Callable[[Value], None]:
    """The backward step of op ``code``: child.grad += local * out.grad, children in order, the
    local derivatives (all taken first) from the op's kernel."""
    grads = kernels.KERNELS[code].grads

    if _ops.OPS[code].arity == 2:

        def step(out: Value) -> None:
            a, b = out._prev
            g = out._grad
            da, db = grads(a._data, b._data, out._data)
            a._grad += da * g
            b._grad += db * g

    else:

        def step(out: Value) -> None:
            (a,) = out._prev
            a._grad += grads(a._data, out._aux, out._data)[0] * out._grad

    return step


def _custom_step(out: Value) -> None:
    fn = out._hand.backward  # type: ignore[union-attr]
    if fn is not None:
        fn()


def _local_grads_step(out: Value) -> None:
    g = out._grad
    grads: tuple = out._hand.local_grads  # type: ignore[union-attr, assignment]
    for child, local in zip(out._prev, grads):
        child._grad += local * g


def _no_rule(code: int) -> Callable[[Value], None]:
    def raise_unknown(out: Value) -> None:
        raise _ops.unknown_op(code)

    return raise_unknown


# op code -> backward step, for every code a node can hold: an unknown code is an error, never
# another op's rule. A plain dict, whose lookups CPython specialises in backward()'s loop.
_STEPS = {code: _no_rule(code) for code in range(256)}
_STEPS.update({code: _op_rule(code) for code in kernels.KERNELS})
_STEPS[LEAF] = lambda out: None
_STEPS[CUSTOM] = _custom_step
_STEPS[LOCAL_GRADS] = _local_grads_step


def _rule_step(node: Value, code: int) -> None:
    """``node._backward`` of an op's node (or of Value(data, children, local_grads)): one
    chain-rule step of that rule, checked first against the node as it is now."""
    if code == LOCAL_GRADS:
        if node._hand is None or node._hand.local_grads is None:
            raise _ops.stale_backward(node)
    elif code != LEAF:
        if code not in kernels.KERNELS:
            raise _ops.unknown_op(code)
        if len(node._prev) != max(_ops.OPS[code].arity, 1):  # re-initialised since it was read
            raise _ops.stale_backward(node)
    _STEPS[code](node)


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
    out._hand = None
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


def _reaches(roots: tuple, target: Value) -> bool:
    """Whether target is one of roots or below one of them (a depth-first search)."""
    seen = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node is target:
            return True
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(node._prev)
    return False
