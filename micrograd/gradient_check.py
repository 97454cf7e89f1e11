"""Check backpropagated gradients against central finite differences.

    gradcheck(loss)                          every leaf of the graph behind loss
    gradcheck(loss, model.parameters())      only these leaves of it
    gradcheck(f, [x, y])                     f(x, y) -> Value, for leaves x and y

For each leaf x the numeric gradient is (f(x + eps) - f(x - eps)) / (2 eps), everything else
held fixed; the analytic one is what ``backward()`` gives. A leaf passes when
``|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)``. The result lists every
leaf and names the worst relative error, ``|analytic - numeric| / max(|analytic|, |numeric|)``.

Neither form changes the caller's Values: the graph form rebuilds a copy of the graph (same
ops, same operand order, the engine's own operators) for each evaluation; the function form
perturbs the inputs' data in place and puts data and grads back afterwards. Where an op is not
differentiable (ReLU at exactly 0) the two gradients disagree, and the check says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from micrograd import _ops
from micrograd.engine import is_value
from micrograd.graph import apply_op, check_value, index_of, is_leaf, node_name, topological_order

Value = Any  # a Value of either engine
_EVALUATION_ERRORS = (ArithmeticError, ValueError)  # an op undefined at a perturbed point


@dataclass(frozen=True)
class LeafCheck:
    """One leaf's analytic gradient against its finite-difference estimate."""

    name: str
    data: float
    analytic: float
    numeric: float  # nan if f is undefined at data +- eps (e.g. log near 0)
    abs_error: float
    rel_error: float  # abs_error / max(|analytic|, |numeric|); 0 when both are 0
    ok: bool


@dataclass(frozen=True)
class GradcheckResult:
    """Per-leaf checks; true (``bool(result)``) when every leaf is within tolerance."""

    checks: tuple[LeafCheck, ...]
    eps: float
    rtol: float
    atol: float

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def __bool__(self) -> bool:
        return self.ok

    @property
    def worst(self) -> LeafCheck | None:
        """The leaf with the largest relative error (nan counts as largest); None if no leaves."""
        if not self.checks:
            return None
        return max(self.checks, key=lambda c: math.inf if math.isnan(c.rel_error) else c.rel_error)

    @property
    def max_rel_error(self) -> float:
        worst = self.worst
        return 0.0 if worst is None else worst.rel_error

    def summary(self) -> str:
        worst = self.worst
        where = f" ({worst.name})" if worst is not None else ""
        failed = sum(not c.ok for c in self.checks)
        verdict = "ok" if self.ok else f"FAILED ({failed} of {len(self.checks)})"
        return (
            f"gradcheck {verdict}: {len(self.checks)} lea{'f' if len(self.checks) == 1 else 'ves'}, worst relative error "
            f"{self.max_rel_error:.2e}{where}; eps {self.eps:g}, rtol {self.rtol:g}, atol {self.atol:g}"
        )

    def __str__(self) -> str:
        width = max([4] + [len(c.name) for c in self.checks])
        lines = [self.summary(), f"  {'leaf':<{width}}  {'data':>12}  {'analytic':>14}  {'numeric':>14}  {'rel error':>9}"]
        for c in self.checks:
            lines.append(
                f"  {c.name:<{width}}  {c.data:>12.6g}  {c.analytic:>14.8g}  {c.numeric:>14.8g}  "
                f"{c.rel_error:>9.2e}  {'ok' if c.ok else 'MISMATCH'}"
                + ("  (f undefined at data +- eps)" if math.isnan(c.numeric) else "")
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<{self.summary()}>"


def gradcheck(
    f: Value | Callable[..., Value],
    inputs: Iterable[Value] | None = None,
    *,
    eps: float = 1e-6,
    rtol: float = 1e-4,
    atol: float = 1e-6,
) -> GradcheckResult:
    """Compare backpropagated gradients with central finite differences.

    ``f`` is either a Value (the output of a graph: its leaves are checked, all of them or the
    ``inputs`` given), or a function called as ``f(*inputs)`` that builds and returns a Value
    from the leaf Values ``inputs``. ``eps`` is the finite-difference step.
    """
    eps, rtol, atol = (_positive(name, x) for name, x in (("eps", eps), ("rtol", rtol), ("atol", atol)))
    if callable(f) and not is_value(f):
        if inputs is None:
            raise TypeError("gradcheck(f, inputs): a function needs the list of input Values it takes")
        names, data, analytic, numeric = _check_function(f, list(inputs), eps)
    else:
        check_value(f, "gradcheck")
        names, data, analytic, numeric = _check_graph(f, None if inputs is None else list(inputs), eps)
    checks = tuple(_compare(*row, rtol=rtol, atol=atol) for row in zip(names, data, analytic, numeric))
    return GradcheckResult(checks=checks, eps=eps, rtol=rtol, atol=atol)


def _positive(name: str, x: object) -> float:
    if isinstance(x, bool) or not _ops.is_number(x):
        raise TypeError(f"gradcheck {name} must be a number, not {type(x).__name__!r}")
    x = float(x)  # type: ignore[arg-type]
    smallest_ok = "positive" if name == "eps" else ">= 0"  # a step must move; a tolerance may be 0
    if not math.isfinite(x) or x < 0.0 or (name == "eps" and x == 0.0):
        raise ValueError(f"gradcheck {name} must be {smallest_ok} and finite, got {x!r}")
    return x


def _compare(name: str, data: float, analytic: float, numeric: float, *, rtol: float, atol: float) -> LeafCheck:
    error = abs(analytic - numeric)
    scale = max(abs(analytic), abs(numeric))
    if math.isnan(error):
        rel = math.nan
    else:
        rel = error / scale if scale > 0.0 else 0.0
    return LeafCheck(name, data, analytic, numeric, error, rel, ok=error <= atol + rtol * scale)


def _central_difference(evaluate: Callable[[float], float], x: float, eps: float) -> float:
    """(f(x + eps) - f(x - eps)) / (2 eps), dividing by the step actually taken in floats."""
    hi, lo = x + eps, x - eps
    try:
        return (evaluate(hi) - evaluate(lo)) / (hi - lo)
    except _EVALUATION_ERRORS:
        return math.nan


# ---------------------------------------------------------------------------------------------
# gradcheck(root): rebuild the graph, leaf data changed, with the engine's own operators


def _rebuild(order: list[Value], index: dict[int, int], new_data: dict[int, float]) -> list[Value]:
    """A fresh copy of the graph (``order`` is topological): one new Value per node, leaves
    with their data (or ``new_data[position]``), every other node redone by its op."""
    value_type = type(order[-1])
    copies: list[Value] = []
    for i, node in enumerate(order):
        if is_leaf(node):
            copies.append(value_type(new_data.get(i, node.data)))
        else:
            copies.append(apply_op(node, [copies[index[id(child)]] for child in node._prev]))
    return copies


def _check_graph(root: Value, wanted: list[Value] | None, eps: float):
    order = topological_order(root)  # root comes last
    index = index_of(order)
    if wanted is None:
        targets = [i for i, node in enumerate(order) if is_leaf(node)]
    else:
        targets = []
        for k, leaf in enumerate(wanted):
            check_value(leaf, "gradcheck inputs")
            if id(leaf) not in index:
                raise ValueError(f"gradcheck inputs[{k}] ({leaf!r}) is not in the graph of the Value checked")
            if not is_leaf(leaf):
                raise ValueError(f"gradcheck inputs[{k}] is not a leaf: it is the result of {leaf._op!r}")
            targets.append(index[id(leaf)])
    copy = _rebuild(order, index, {})
    copy[-1].backward()
    analytic = [copy[i].grad for i in targets]

    def value_with(i: int) -> Callable[[float], float]:
        return lambda x: _rebuild(order, index, {i: x})[-1].data

    numeric = [_central_difference(value_with(i), order[i].data, eps) for i in targets]
    names = [node_name(order[i], i) for i in targets]
    return names, [order[i].data for i in targets], analytic, numeric


# ---------------------------------------------------------------------------------------------
# gradcheck(f, inputs): call f again with one input's data moved, then put it back


def _check_function(f: Callable[..., Value], inputs: Sequence[Value], eps: float):
    for k, x in enumerate(inputs):
        check_value(x, "gradcheck inputs")
        if not is_leaf(x):
            raise ValueError(f"gradcheck inputs[{k}] is not a leaf: it is the result of {x._op!r}")
    saved = [(x.data, x.grad) for x in inputs]
    try:
        for x in inputs:
            x.grad = 0.0
        out = f(*inputs)
        if not is_value(out):
            raise TypeError(f"gradcheck: f must return a micrograd Value, not {type(out).__name__!r}")
        out.backward()
        analytic = [x.grad for x in inputs]

        def value_with(x: Value) -> Callable[[float], float]:
            def evaluate(moved: float) -> float:
                x.data = moved
                return f(*inputs).data

            return evaluate

        numeric = []
        for x, (data, _) in zip(inputs, saved):
            numeric.append(_central_difference(value_with(x), data, eps))
            x.data = data
    finally:
        for x, (data, grad) in zip(inputs, saved):
            x.data = data
            x.grad = grad
    names = [x.label or f"inputs[{k}]" for k, x in enumerate(inputs)]
    return names, [data for data, _ in saved], analytic, numeric


__all__ = ["gradcheck", "GradcheckResult", "LeafCheck"]
