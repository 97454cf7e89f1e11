"""Step through a backward pass one chain-rule step at a time, and say what each step does.

    stepper = BackwardStepper(o)      # sets o.grad = 1, as o.backward() does
    print(stepper.step())             # one node: its grad in, and per operand the local
                                      # derivative, the grad sent down and the operand's grad
    for step in stepper: print(step)  # the rest
    explain_backward(o)               # all steps, printed

Each step runs the node's own ``_backward()``, in the order ``backward()`` uses, so after the
last step every grad equals, bit for bit, what ``o.backward()`` gives. The numbers printed
beside it (local derivatives, grads sent down) come from the ops' kernels
(``micrograd/kernels.py``), or a hand-built node's ``_local_grads``; leaves have no step
(their backward does nothing). For a node with a Python ``_backward`` the local derivatives
are unknown (shown as nan); the step still runs it.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Iterator, TextIO

from micrograd import kernels
from micrograd._ops import ADD, CUSTOM, LOCAL_GRADS, MUL, POW, POWC, format_exponent
from micrograd.graph import index_of, is_leaf, node_name, op_code, topological_order

Value = Any  # a Value of either engine
PYTHON_BACKWARD = "(Python _backward)"  # the formula shown for a node with its own function


@dataclass(frozen=True)
class OperandStep:
    """What one step sends to one operand (child) of the node."""

    node: Value
    name: str
    formula: str  # the local derivative d(node)/d(operand), in words
    local: float  # its value
    grad_out: float  # the gradient sent down: local * grad_in, as the engine computes it
    grad_before: float  # the operand's grad before the step
    grad_after: float  # and after it; grad_after = grad_before + grad_out, except for `a op a`,
    #                    where both operand slots show the grad before and after both additions


@dataclass(frozen=True)
class BackwardStep:
    """One chain-rule step: ``node._backward()`` spreading ``node.grad`` to its operands."""

    number: int  # 1-based
    total: int
    node: Value
    name: str
    op: str
    expression: str  # e.g. "o = tanh(n)"
    grad_in: float  # node.grad: d(root)/d(node), complete by the time its step runs
    operands: tuple[OperandStep, ...]
    precision: int = 4

    def __str__(self) -> str:
        p = self.precision
        lines = [f"step {self.number}/{self.total}: {self.expression}    {self.name}.grad = {self.grad_in:.{p}f}"]
        for o in self.operands:
            if o.formula == PYTHON_BACKWARD:  # the local derivative is the function's secret
                sent = f"grad out (by the node's Python _backward) = {o.grad_out:.{p}f}"
            else:
                sent = (
                    f"local d({self.name})/d({o.name}) = {o.formula} = {o.local:.{p}f}; "
                    f"grad out = {o.local:.{p}f} * {self.grad_in:.{p}f} = {o.grad_out:.{p}f}"
                )
            lines.append(f"    {o.name}: {sent}; {o.name}.grad {o.grad_before:.{p}f} -> {o.grad_after:.{p}f}")
        return "\n".join(lines)


def _local_derivatives(node: Value, code: int, k: float) -> list[tuple[str, float]]:
    """(formula, value) of d(node)/d(operand) for each operand, from the op's kernel; symbols:
    out = this node, a and b = its operands."""
    prev = node._prev
    if code == LOCAL_GRADS:
        return [(f"local_grads[{i}]", g) for i, g in enumerate(node._local_grads)]
    if code == CUSTOM:
        return [(PYTHON_BACKWARD, math.nan)] * len(prev)
    kernel = kernels.KERNELS.get(code)
    if kernel is None:
        raise ValueError(f"no backward rule for op {node._op!r}")
    y = prev[1].data if len(prev) > 1 else k
    formulas = kernel.formulas
    if code == POWC:  # the exponent spelled out: 2*a**1
        formulas = (f"{format_exponent(k)}*a**{format_exponent(k - 1.0)}",)
    return list(zip(formulas, kernel.grads(prev[0].data, y, node.data)))


def _spell_names(formula: str, names: list[str], name: str) -> str:
    """Put the real names into a formula written with out/a/b, e.g. 'b' -> 'w1'."""
    symbols = {"out": name, "a": names[0], "b": names[1] if len(names) > 1 else ""}
    return "".join(symbols.get(token, token) for token in _tokens(formula))


def _tokens(text: str) -> list[str]:
    """Split a formula into identifiers and everything else ('b*a**(b-1)' -> b,*,a,**(,b,-1))."""
    tokens: list[str] = []
    for ch in text:
        if tokens and (ch.isalpha() == tokens[-1][-1].isalpha()):
            tokens[-1] += ch
        else:
            tokens.append(ch)
    return tokens


def _expression(name: str, op: str, code: int, names: list[str]) -> str:
    if code in (ADD, MUL):
        return f"{name} = {names[0]} {op} {names[1]}"
    if code == POWC:
        return f"{name} = {names[0]}{op}"
    if code == POW:
        return f"{name} = {names[0]}**{names[1]}"
    if code == LOCAL_GRADS and not op:  # microgpt's nodes have no _op
        op = "local_grads"
    return f"{name} = {op}({', '.join(names)})"


class BackwardStepper:
    """A backward pass run by hand: each `step` runs one node's ``_backward()``.

    Construction does what ``root.backward()`` does first: sort the graph and set
    ``root.grad = 1``. Like ``backward()`` it adds to the grads already there; pass
    ``zero_grad=True`` to set every grad in the graph to 0 first (e.g. after a backward()).
    """

    def __init__(self, root: Value, *, zero_grad: bool = False, precision: int = 4) -> None:
        order = topological_order(root)
        index = index_of(order)
        self.root = root
        self.precision = precision
        self._names = {id(node): node_name(node, index[id(node)]) for node in order}
        self._order = [node for node in reversed(order) if not is_leaf(node)]  # leaves do nothing
        self._position = 0
        if zero_grad:
            for node in order:
                node.grad = 0.0
        root.grad = 1.0

    def name_of(self, node: Value) -> str:
        """How the steps name ``node``: its label, or ``#<place in topological order>``."""
        return self._names[id(node)]

    def __len__(self) -> int:
        """The number of steps in the whole pass (one per op node)."""
        return len(self._order)

    @property
    def done(self) -> bool:
        return self._position == len(self._order)

    def step(self) -> BackwardStep | None:
        """Run the next node's chain-rule step and describe it; None once the pass is over."""
        if self.done:
            return None
        node = self._order[self._position]
        self._position += 1
        code, k = op_code(node)
        operands = node._prev
        names = [self._names[id(child)] for child in operands]
        name = self._names[id(node)]
        g = node.grad
        rules = _local_derivatives(node, code, k)
        before = [child.grad for child in operands]
        node._backward()  # the engine's own rule does the accumulation
        steps = tuple(
            OperandStep(
                node=child,
                name=names[i],
                formula=_spell_names(rules[i][0], names, name),
                local=rules[i][1],
                grad_out=rules[i][1] * g if code != CUSTOM else child.grad - before[i],
                grad_before=before[i],
                grad_after=child.grad,
            )
            for i, child in enumerate(operands)
        )
        return BackwardStep(
            number=self._position,
            total=len(self._order),
            node=node,
            name=name,
            op=node._op,
            expression=_expression(name, node._op, code, names),
            grad_in=g,
            operands=steps,
            precision=self.precision,
        )

    def __iter__(self) -> Iterator[BackwardStep]:
        """The remaining steps, each run as it is yielded."""
        while not self.done:
            yield self.step()  # type: ignore[misc]


def explain_backward(
    root: Value, *, zero_grad: bool = False, precision: int = 4, file: TextIO | None = None
) -> list[BackwardStep]:
    """Run ``root``'s backward pass step by step, printing each chain-rule step (to ``file``,
    default stdout); returns the steps. Afterwards the grads are those ``root.backward()`` gives."""
    out = file or sys.stdout
    stepper = BackwardStepper(root, zero_grad=zero_grad, precision=precision)
    name = stepper.name_of(root)
    print(f"{name}.grad = 1 (d({name})/d({name})); {len(stepper)} steps, from the output down:", file=out)
    steps = []
    for step in stepper:
        print(step, file=out)
        steps.append(step)
    return steps


__all__ = ["BackwardStepper", "BackwardStep", "OperandStep", "explain_backward"]
