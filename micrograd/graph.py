"""Walking the graph behind a ``Value``: topological order, node names, op codes, statistics.

Shared by the drawing (``micrograd.viz``), the gradient check (``micrograd.gradient_check``)
and the backward stepper (``micrograd.explain``). Everything here works on Values of either
engine through the public API plus ``_prev`` and ``_op``, walks the graph with an explicit
stack (a 10^6-deep chain is fine), and visits nodes in a fixed order, so the same program
gives the same output, byte for byte, on both engines and on every run.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from micrograd import _ops, pure
from micrograd.engine import is_value

Value = Any  # a Value of either engine


def check_value(obj: object, who: str) -> None:
    """TypeError unless ``obj`` is a Value of one of the loaded engines."""
    if not is_value(obj):
        raise TypeError(f"{who} expects a micrograd Value, not {type(obj).__name__!r}")


def topological_order(root: Value) -> list[Value]:
    """Every Value below ``root`` (itself and the leaves included) once, children before parents.

    The order is the post-order of a depth-first search that visits children in ``_prev``
    order: the order both engines' ``backward()`` uses, so walking it in reverse replays a
    backward pass exactly. Nodes are told apart by identity, never by ``==``.
    """
    check_value(root, "topological_order")
    # The pure engine's own sort: it reads only ``_prev`` and hashes nodes, and a Value of
    # either engine hashes by identity, so it serves both.
    return pure._topological_order(root)


def index_of(order: list[Value]) -> dict[int, int]:
    """``id(node) -> position in order``, to look nodes up by identity."""
    return {id(node): i for i, node in enumerate(order)}


def node_name(node: Value, index: int) -> str:
    """How tools refer to a node: its label, or ``#<index>`` (its place in topological order)."""
    return node.label or f"#{index}"


def is_leaf(node: Value) -> bool:
    """A Value made directly (data, maybe a label), not by an op nor built by hand."""
    return node._code == _ops.LEAF


def op_code(node: Value) -> tuple[int, float]:
    """(op code, aux) of a node: its code in the shared op table (or _ops.CUSTOM /
    _ops.LOCAL_GRADS for a node built by hand) and, for ``**k``, the exponent k, recovered
    exactly from the ``_op`` symbol (which spells it with ``repr``)."""
    code = node._code
    if code == _ops.POWC:
        return code, float(node._op[2:])
    return code, 0.0


def apply_op(node: Value, operands: list[Value]) -> Value:
    """Redo ``node``'s op on new operands, through the engine's own operators (the method of
    the op's row in ``micrograd._ops.OPS``)."""
    code, k = op_code(node)
    if code in _ops.HAND_BUILT_CODES:
        raise ValueError(
            f"cannot redo the node {node!r} (_op {node._op!r}): it was built by hand, so its data "
            "is not a function of its children that micrograd knows"
        )
    method = getattr(operands[0], _ops.OPS[code].method)
    return method(k) if code == _ops.POWC else method(*operands[1:])


def by_op(nodes: Iterable[Value]) -> dict[str, int]:
    """How many of ``nodes`` each op made, leaves under ``"leaf"`` (and nodes built by hand with
    no _op, as microgpt's, under ``"hand-built"``); most common first, ties
    in symbol order, so printing it is deterministic."""
    counts = Counter(node._op or ("leaf" if is_leaf(node) else "hand-built") for node in nodes)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def format_counts(counts: dict[str, int]) -> str:
    """``{'*': 3, 'leaf': 2}`` -> ``'* 3, leaf 2'``."""
    return ", ".join(f"{op} {n}" for op, n in counts.items())


@dataclass(frozen=True)
class GraphStats:
    """The size and shape of the graph behind a Value (see `graph_stats`)."""

    nodes: int  # distinct Values: the root, every interior node and every leaf
    leaves: int  # Values made directly, not by an op: inputs, parameters and constants
    ops: dict[str, int]  # interior nodes by ``_op`` ('+', '*', '**-1', 'tanh', ...), most common first
    depth: int  # ops on the longest path from the root down to a leaf (0 for a lone leaf)
    edges: int  # operand links: ``a * a`` has two
    parameters: int | None = None  # how many of the given parameters the graph uses
    unused_parameters: int | None = None  # given parameters the graph never reaches (grad stays 0)
    op_nodes: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "op_nodes", self.nodes - self.leaves)

    def __str__(self) -> str:
        lines = [
            f"{self.nodes} Values: {self.leaves} leaves, {self.op_nodes} ops; "
            f"depth {self.depth}, {self.edges} edges",
            f"ops: {format_counts(self.ops) or 'none'}",
        ]
        if self.parameters is not None:
            lines.append(f"parameters: {self.parameters} used, {self.unused_parameters} not reached")
        return "\n".join(lines)


def graph_stats(root: Value, parameters: Iterable[Value] | None = None) -> GraphStats:
    """Count the graph behind ``root``: Values, leaves, nodes by op, depth and edges.

    A graph does not record which leaves are trainable: a weight, an input and the ``-1`` that
    ``a - b`` creates are all leaves. Pass ``parameters`` (e.g. ``model.parameters()``) to
    count how many of them the graph uses and how many it never reaches; a parameter that is
    not reached gets no gradient, which is usually a bug.
    """
    order = topological_order(root)
    height: dict[int, int] = {}  # longest path down to a leaf, filled children first
    leaves = edges = 0
    for node in order:
        prev = node._prev
        edges += len(prev)
        if prev:
            height[id(node)] = 1 + max(height[id(child)] for child in prev)
        else:
            height[id(node)] = 0
            leaves += 1
    used = unused = None
    if parameters is not None:
        given = list(parameters)
        for p in given:
            check_value(p, "graph_stats parameters")
        distinct = {id(p) for p in given}
        used = len(distinct & height.keys())
        unused = len(distinct) - used
    return GraphStats(
        nodes=len(order),
        leaves=leaves,
        ops=by_op(node for node in order if node._prev),
        depth=height[id(root)],
        edges=edges,
        parameters=used,
        unused_parameters=unused,
    )
