"""Capture the graph behind a loss once, then replay it every step without rebuilding it.

    loss = total_loss(model, inputs)          # build the graph once, eagerly
    tape = Tape(loss, outputs=scores)         # record it: order, ops, children, slots
    for k in range(100):
        tape.forward()                        # re-read the leaves' .data, recompute every node
        model.zero_grad()
        tape.backward()                       # accumulate into the leaves' .grad
        for p in model.parameters():
            p.data -= 0.01 * p.grad

A tape is a flat record of the graph behind ``root``: its nodes in the order eager
``backward()`` uses (the post-order of a depth-first search visiting children in ``_prev``
order), each with its op code and the slots of its children, plus one slot of data and one of
grad per node. The *leaves* (every Value without children: parameters, inputs, and the
constants ops create for numbers, like the ``1`` in ``1 + x``) stay the user's own Value
objects: ``forward()`` reads their ``.data`` and ``backward()`` adds into their ``.grad``.
Replay computes the same formulas in the same order as eager mode, so its results are
bit-identical to rebuilding the graph and calling ``backward()`` on it.

``Tape(root)`` picks the implementation of root's engine: ``PythonTape`` below loops in
Python; ``micrograd._tape.CompiledTape`` loops in C over the same arrays, without the GIL.

When a tape stays valid: it replays the graph as it was captured. Everything your Python
code decided while building it is frozen: branches on ``.data``, loop counts, which points
are in the batch, and numbers passed as plain floats (they became constant leaves). To feed
new values, make them leaf Values and set their ``.data``. Capture again when the structure
should change (a new model, a new batch size, a different branch).
"""
from __future__ import annotations

import abc
import threading
from array import array
from typing import Any, List, Sequence, Tuple

from micrograd import _ops, kernels, pure
from micrograd._ops import LEAF, POWC

# The ops a tape can replay: every op of micrograd._ops.OPS, through micrograd.kernels. Nodes
# built by hand (a Python _backward, constant local gradients) are refused.
SUPPORTED_CODES = frozenset(op.code for op in _ops.OPS)

# Bytes the tape's own arrays take: data and grad per node, op code and two child indices per
# interior node, a pointer per leaf, an exponent per distinct constant exponent, an index per
# output. Both implementations use this layout, so both report the same nbytes.
DATA_GRAD_BYTES = 16
INTERIOR_BYTES = 1 + 4 + 4
LEAF_BYTES = 8
CONST_BYTES = 8
OUTPUT_BYTES = 4
MAX_NODES = 2**31 - 1  # child indices are int32


class Tape(abc.ABC):
    """A recorded graph, replayed forward and backward without rebuilding it.

    ``Tape(root, outputs=(), params=None, constants=())`` captures the graph behind ``root``
    (a Value of either engine; the tape uses that engine). ``outputs`` are other Values of that
    graph (one, or an iterable, e.g. the model's scores) whose ``.data`` replay keeps up to
    date. The last two say which leaves need what, as PyTorch's ``requires_grad`` does (each
    one Value or an iterable of leaf Values; leaves not in the graph are ignored):

    - ``params``: the leaves ``backward()`` adds grads into (e.g. ``model.parameters()``).
      The other leaves' ``.grad`` is left alone, and work that only they need is skipped.
      ``None`` (the default): every leaf that is not a constant.
    - ``constants``: leaves whose ``.data`` never changes (a fixed dataset): the tape reads
      it once, at capture, never writes their ``.grad``, and ``forward()`` does not read them
      again, so a change to their ``.data`` is not seen: capture a new tape for that.

    - ``forward() -> float``: read every leaf's ``.data`` (but the constants'), recompute every
      node; write the new values into ``root.data`` and each output's ``.data``, and return
      ``root.data``.
    - ``backward()``: back-propagate from root (its grad set to 1) through the values of the
      last forward (or of capture, for a fresh tape) and *add* into every leaf's ``.grad``
      (the params' only), as eager ``root.backward()`` does on a fresh graph: call
      ``zero_grad()`` first.
    - ``leaves``: the leaf Values, ``root``, ``outputs``; ``len(tape)``: nodes recorded;
      ``nbytes``: memory of the tape's own arrays (25 bytes per interior node, 24 per leaf,
      plus 8 per distinct constant exponent and 4 per output); ``engine``: "python"/"cython".

    What replay writes: the leaves' ``.grad`` (the params' only), ``root.data`` and
    ``root.grad`` (set to 1, as eager does), and the outputs' ``.data``. Other interior Values
    keep the data and grad they had at capture. The tape holds references to root, outputs and leaves: they (and, through
    root, the eager graph) live as long as the tape.

    Errors: a forward that fails (``log`` of a non-positive number, ``exp`` or ``**``
    overflow, ``0 ** -1``...) raises the exception eager mode raises for that node, writes
    nothing into any Value, and ``backward()`` refuses to run until a forward succeeds. When
    several nodes would fail, the first in the tape's order (children before parents, as
    eager ``backward()`` orders them) is reported.
    """

    def __new__(cls, root: Any, *, outputs: Any = (), params: Any = None, constants: Any = ()) -> Tape:
        # The implementations are registered, not inherited, so that Python does not call
        # __init__ a second time on the instance returned here.
        impl = implementation_for(root)
        return impl(root, outputs=outputs, params=params, constants=constants)  # type: ignore[no-any-return]

    # The interface both implementations provide (for help() and type checkers; an instance
    # is always a PythonTape or a CompiledTape, which define these).
    engine: str

    @abc.abstractmethod
    def forward(self) -> float:
        """Recompute every node from the leaves' current ``.data`` (the constants' as captured);
        return the root's value."""

    @abc.abstractmethod
    def backward(self) -> None:
        """Add d(root)/d(leaf) into every leaf's ``.grad``, or only the params' if given (root's
        grad set to 1)."""

    @property
    @abc.abstractmethod
    def leaves(self) -> Tuple[Any, ...]:
        """The leaf Values, in slot order."""

    @property
    @abc.abstractmethod
    def root(self) -> Any:
        """The Value the tape was captured from."""

    @property
    @abc.abstractmethod
    def outputs(self) -> Tuple[Any, ...]:
        """The Values whose ``.data`` forward() keeps up to date, besides the root."""

    @property
    @abc.abstractmethod
    def nbytes(self) -> int:
        """Bytes of the tape's own arrays."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Nodes recorded (leaves included)."""


def implementation_for(root: object) -> type:
    """The tape class of root's engine (TypeError if root is not a Value)."""
    if isinstance(root, pure.Value):
        return PythonTape
    from micrograd import engine

    compiled = engine.ENGINES.get("cython")
    if compiled is not None and isinstance(root, compiled):
        try:
            from micrograd._tape import CompiledTape
        except ImportError as exc:
            raise ImportError(
                "micrograd._tape (the compiled tape) is not built, but the compiled engine is; "
                f"rebuild with `python setup.py build_ext --inplace` ({exc})"
            ) from exc
        return CompiledTape
    raise TypeError(f"Tape needs a Value to capture, not {type(root).__name__!r}")


# ---------------------------------------------------------------------------------------------
# Checks and messages shared by both implementations (micrograd._tape calls these too).


def check_outputs(outputs: Any, value_type: type) -> tuple:
    """``outputs`` as a tuple of Values of ``value_type``: one Value or an iterable of them."""
    return check_values("outputs", outputs, value_type)


def check_values(what: str, values: Any, value_type: type) -> tuple:
    """``values`` (the Tape argument ``what``) as a tuple of Values of ``value_type``: one
    Value or an iterable of them."""
    if isinstance(values, value_type):
        return (values,)
    try:
        out = tuple(values)
    except TypeError:
        raise TypeError(
            f"Tape {what} must be a Value or an iterable of Values, not {type(values).__name__!r}"
        ) from None
    for i, v in enumerate(out):
        if not isinstance(v, value_type):
            raise TypeError(
                f"Tape {what}[{i}] must be a Value of the same engine as the root "
                f"({value_type.__module__}.Value), not {type(v).__module__}.{type(v).__name__}"
            )
    return out


def leaf_roles(leaves: Sequence[Any], params: Any, constants: Any, value_type: type) -> Tuple[Sequence[int], Sequence[int]]:
    """(the slots of the leaves ``forward()`` reads, the slots of those ``backward()`` adds
    grads into), from Tape's ``params`` and ``constants`` (see Tape), in slot order."""
    fixed = _leaf_ids("constants", check_values("constants", constants, value_type))
    reads: Sequence[int] = range(len(leaves))  # the default: every leaf, without a pass over them
    if fixed:
        reads = [i for i, leaf in enumerate(leaves) if id(leaf) not in fixed]
    if params is None:
        return reads, reads
    wanted = check_values("params", params, value_type)
    ids = _leaf_ids("params", wanted)
    for i, v in enumerate(wanted):
        if id(v) in fixed:
            raise ValueError(f"Tape params[{i}] ({v!r}) is also in constants: a constant gets no grad")
    return reads, [i for i, leaf in enumerate(leaves) if id(leaf) in ids]


def _leaf_ids(what: str, values: tuple) -> set:
    ids = set()
    for i, v in enumerate(values):
        if v._code != LEAF:
            raise ValueError(
                f"Tape {what}[{i}] ({v!r}) is not a leaf (it has children): a tape reads "
                "and writes only its leaves"
            )
        ids.add(id(v))
    return ids


def output_not_in_graph(i: int, v: object) -> ValueError:
    return ValueError(
        f"Tape outputs[{i}] ({v!r}) is not part of the graph behind the root: a tape replays "
        "only the nodes the root depends on"
    )


def unsupported_op(code: int) -> ValueError:
    return ValueError(f"Tape cannot replay op code {code}: the tape knows codes {sorted(SUPPORTED_CODES)}")


def hand_built_node(node: Any) -> ValueError:
    what = "a Python _backward" if node._code == _ops.CUSTOM else "constant local gradients"
    name = f" {node.label!r}" if node.label else ""
    return ValueError(
        f"Tape cannot replay the node{name} {node!r} (_op {node._op!r}): it was built by hand, with "
        f"{what} fixed when it was made; a tape replays only the built-in ops ({', '.join(o.name for o in _ops.OPS[1:])})"
    )


def graph_has_cycle() -> ValueError:
    return ValueError(
        "Tape: the graph behind the root has a cycle (a Value re-initialised with one of its "
        "own descendants as a child); it cannot be ordered for replay"
    )


def too_large(n: int) -> OverflowError:
    return OverflowError(f"Tape cannot record {n} nodes: at most {MAX_NODES} (child indices are int32)")


NOT_PICKLABLE = (
    "a Tape cannot be pickled (it refers to live Values by address): pickle the model's "
    "parameters and capture a new tape after loading"
)


def not_captured(what: str) -> RuntimeError:
    return RuntimeError(
        f"Tape.{what}: this tape holds no captured graph (it was made without Tape(root), or its "
        "capture failed); make one with Tape(root)"
    )


def not_replayable() -> RuntimeError:
    return RuntimeError(
        "Tape.backward: the last forward() failed, so the tape holds no complete forward pass; "
        "call forward() again once it succeeds"
    )


def busy(what: str) -> RuntimeError:
    return RuntimeError(
        f"Tape.{what}: this tape is being replayed in another thread; a tape replays one pass "
        "at a time (capture one tape per thread)"
    )


def tape_nbytes(n_leaves: int, n_interior: int, n_consts: int, n_outputs: int) -> int:
    return (
        (n_leaves + n_interior) * DATA_GRAD_BYTES
        + n_interior * INTERIOR_BYTES
        + n_leaves * LEAF_BYTES
        + n_consts * CONST_BYTES
        + n_outputs * OUTPUT_BYTES
    )


def tape_repr(tape: Any) -> str:
    return f"<{type(tape).__name__} of {len(tape)} nodes ({len(tape.leaves)} leaves), engine={tape.engine!r}>"


# ---------------------------------------------------------------------------------------------
# The pure-Python tape: the reference for micrograd._tape, with the same layout.


class PythonTape:
    """The tape of the pure engine: the same arrays as the compiled one, replayed in Python.

    Slots 0..L-1 hold the leaves, slots L..N-1 the interior nodes in eager backward's order
    (the root last). Interior node j (slot L+j) has op ``code[j]`` and children in slots
    ``a[j]`` and ``b[j]``; for ``powc`` (constant exponent) ``b[j]`` indexes ``consts``.
    """

    engine = "python"

    def __init__(self, root: pure.Value, *, outputs: Any = (), params: Any = None, constants: Any = ()) -> None:
        if not isinstance(root, pure.Value):
            raise TypeError(f"PythonTape needs a pure-engine Value, not {type(root).__name__!r}")
        outs = check_outputs(outputs, pure.Value)
        order = pure._topological_order(root)  # the very order eager backward() uses
        if len(order) > MAX_NODES:
            raise too_large(len(order))
        leaves = [v for v in order if v._code == LEAF]
        slot = {v: i for i, v in enumerate(leaves)}
        code, a, b = array("B"), array("i"), array("i")
        consts: List[float] = []
        const_slot: dict = {}  # exponent bits -> index in consts (one slot per distinct exponent)
        data = array("d", (v._data for v in leaves))
        for v in order:
            if v._code == LEAF:
                continue
            if v._code in _ops.HAND_BUILT_CODES:
                raise hand_built_node(v)
            if v._code not in SUPPORTED_CODES:
                raise unsupported_op(v._code)
            if any(kid not in slot for kid in v._prev):  # post-order: children come first
                raise graph_has_cycle()
            slot[v] = len(data)
            code.append(v._code)
            a.append(slot[v._prev[0]])
            if v._code == POWC:
                key = _float_key(v._aux)
                if key not in const_slot:
                    const_slot[key] = len(consts)
                    consts.append(v._aux)
                b.append(const_slot[key])
            else:
                b.append(slot[v._prev[1]] if len(v._prev) > 1 else 0)
            data.append(v._data)
        self._output_slots = array("i")
        for i, v in enumerate(outs):
            if v not in slot:
                raise output_not_in_graph(i, v)
            self._output_slots.append(slot[v])
        reads, grads = leaf_roles(leaves, params, constants, pure.Value)
        self._reads = [(i, leaves[i]) for i in reads]  # (slot, leaf): forward reads these
        self._grads = [(i, leaves[i]) for i in grads]  # backward writes these
        self._root, self._outputs, self._leaves = root, outs, leaves
        self._code, self._a, self._b = code, a, b
        self._consts = array("d", consts)
        self._data = data  # a fresh tape holds the captured graph's values: backward() works
        self._grad = array("d", bytes(8 * len(data)))
        self._complete = True  # False after a failed forward, until one succeeds
        self._busy = threading.Lock()  # held while a replay runs (other threads can look in)

    # -- public API ----------------------------------------------------------------------------
    @property
    def root(self) -> pure.Value:
        return self._root

    @property
    def outputs(self) -> Tuple[pure.Value, ...]:
        return self._outputs

    @property
    def leaves(self) -> Tuple[pure.Value, ...]:
        return tuple(self._leaves)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def nbytes(self) -> int:
        return tape_nbytes(len(self._leaves), len(self._code), len(self._consts), len(self._outputs))

    def __repr__(self) -> str:
        return tape_repr(self)

    def __reduce__(self) -> tuple:
        raise TypeError(NOT_PICKLABLE)

    def forward(self) -> float:
        self._enter("forward")
        try:
            data = self._data
            for i, leaf in self._reads:  # a constant's slot keeps what capture read
                data[i] = leaf._data
            self._complete = False
            self._forward_interior(data)
            self._complete = True
            out = data[len(data) - 1]
            self._root.data = out
            for v, s in zip(self._outputs, self._output_slots):
                v.data = data[s]
            return out
        finally:
            self._busy.release()

    def backward(self) -> None:
        self._enter("backward")  # first: a forward running in another thread is not a failed one
        try:
            if not self._complete:
                raise not_replayable()
            leaves, grad = self._leaves, self._grad
            n_leaves = len(leaves)
            # Interior grads start at 0, as on a fresh eager graph; leaf grads start at the
            # leaves' own, and get the same contributions in the same order as in eager mode.
            # (The slots of leaves without grads are computed too, and never read.)
            for i in range(n_leaves, len(grad)):
                grad[i] = 0.0
            for i, leaf in self._grads:
                grad[i] = leaf._grad
            grad[len(grad) - 1] = 1.0
            self._backward_interior(grad)
            for i, leaf in self._grads:
                leaf.grad = grad[i]
            self._root.grad = 1.0
        finally:
            self._busy.release()

    def _enter(self, what: str) -> None:
        if not hasattr(self, "_busy"):  # __init__ sets it last: never run, or it failed
            raise not_captured(what)
        if not self._busy.acquire(blocking=False):
            raise busy(what)

    # -- the replay loops: micrograd.kernels, as eager mode runs them, in the same order ------
    def _forward_interior(self, data: array) -> None:
        consts, forward = self._consts, kernels.FORWARD
        for i, c, ia, ib in zip(range(len(self._leaves), len(data)), self._code, self._a, self._b):
            data[i] = forward[c](data[ia], consts[ib] if c == POWC else data[ib])

    def _backward_interior(self, grad: array) -> None:
        data, consts, grads = self._data, self._consts, kernels.GRADS
        slots = range(len(grad) - 1, len(self._leaves) - 1, -1)
        for i, c, ia, ib in zip(slots, reversed(self._code), reversed(self._a), reversed(self._b)):
            g = grad[i]
            if c == POWC:
                grad[ia] += grads[c](data[ia], consts[ib], data[i])[0] * g
                continue
            local = grads[c](data[ia], data[ib], data[i])
            grad[ia] += local[0] * g
            if len(local) == 2:
                grad[ib] += local[1] * g

    def _structure(self) -> tuple:
        """(codes, a, b, consts, output slots, leaf count) as lists: for tests comparing engines."""
        if not hasattr(self, "_busy"):
            raise not_captured("_structure")
        return (list(self._code), list(self._a), list(self._b), list(self._consts),
                list(self._output_slots), len(self._leaves))


Tape.register(PythonTape)


def _float_key(x: float) -> bytes:
    """A dict key telling apart every float bit pattern (0.0 from -0.0; nan equal to itself)."""
    return array("d", (x,)).tobytes()
