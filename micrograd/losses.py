"""Losses and softmax built from Value ops only, so gradients flow through them on either engine.

Every loss takes a batch and returns one Value, the mean over the batch, computed as Karpathy's
demo does: ``sum(terms) * (1.0 / n)``.

    mse(predictions, targets)                         mean of (p - t)**2
    hinge(scores, labels)                             the demo's max-margin loss, labels -1/+1
    l2(parameters, alpha)                             the demo's regulariser, alpha * sum(p*p)
    binary_cross_entropy_with_logits(logits, targets) targets 0/1 (or probabilities)
    cross_entropy(logits, targets)                    one list of class logits per sample,
                                                      targets are class indices
    softmax(logits), log_softmax(logits), logsumexp(logits)   for one list of logits

The exponentials are taken only of numbers <= 0, so no input overflows: log-sum-exp subtracts
the largest logit (its ``.data``, a constant, which leaves the gradients unchanged), and the
binary loss uses the form of softplus that suits the sign of the logit.
"""
from __future__ import annotations

from typing import Any, List, Sequence

Value = Any  # a Value of either engine


def mse(predictions: Sequence[Value], targets: Sequence[Any]) -> Value:
    """Mean squared error: mean of ``(p - t)**2``; targets are numbers or Values."""
    n = _batch_size("mse", predictions, targets)
    return sum((p - t) ** 2 for p, t in zip(predictions, targets)) * (1.0 / n)


def hinge(scores: Sequence[Value], labels: Sequence[Any]) -> Value:
    """The max-margin loss of Karpathy's demo, term for term: mean of ``relu(1 - y*s)`` for
    labels ``y`` of -1/+1, built exactly as ``(1 + -yi*scorei).relu()``."""
    n = _batch_size("hinge", scores, labels)
    return sum((1 + -yi * si).relu() for yi, si in zip(labels, scores)) * (1.0 / n)


max_margin = hinge


def l2(parameters: Sequence[Value], alpha: float = 1e-4) -> Value:
    """The demo's L2 regularisation: ``alpha * sum((p*p for p in parameters))``."""
    if not parameters:
        raise ValueError("l2 needs at least one parameter")
    return alpha * sum((p * p for p in parameters))


def softplus(x: Value) -> Value:
    """log(1 + exp(x)) without overflow: for x >= 0 it is x + log(1 + exp(-x)). Both forms are
    the same smooth function, so the gradient is sigmoid(x) everywhere, at 0 included."""
    if _data(x, "softplus") >= 0:
        return x + ((-x).exp() + 1).log()
    return (x.exp() + 1).log()


def binary_cross_entropy_with_logits(logits: Sequence[Value], targets: Sequence[Any]) -> Value:
    """Mean of ``-t*log(sigmoid(z)) - (1-t)*log(1 - sigmoid(z))`` for logits ``z`` and targets
    ``t`` in [0, 1], computed stably as ``softplus(z) - t*z``."""
    n = _batch_size("binary_cross_entropy_with_logits", logits, targets)
    for t in targets:
        if not 0 <= _data(t, "binary_cross_entropy_with_logits targets", numbers_ok=True) <= 1:
            raise ValueError(
                f"binary_cross_entropy_with_logits targets must lie in [0, 1], got {t!r} "
                "(for labels -1/+1 pass (y + 1) / 2)"
            )
    return sum(softplus(z) - z * t for z, t in zip(logits, targets)) * (1.0 / n)


def logsumexp(logits: Sequence[Value]) -> Value:
    """log(sum(exp(z))) as m + log(sum(exp(z - m))) with m the largest logit's value."""
    m = _max_data("logsumexp", logits)
    return ((sum((z - m).exp() for z in logits)).log()) + m


def log_softmax(logits: Sequence[Value]) -> List[Value]:
    """log(softmax(z)) for each logit: z - logsumexp(z), finite even for huge logits."""
    lse = logsumexp(logits)
    return [z - lse for z in logits]


def softmax(logits: Sequence[Value]) -> List[Value]:
    """exp(z - m) / sum(exp(z - m)), with m the largest logit's value; sums to 1."""
    m = _max_data("softmax", logits)
    exps = [(z - m).exp() for z in logits]
    total = sum(exps)
    return [e / total for e in exps]


def cross_entropy(logits: Sequence[Sequence[Value]], targets: Sequence[int]) -> Value:
    """Multi-class cross-entropy: for each sample (a list of class logits) and its target class
    index, ``logsumexp(z) - z[target]``; the mean over samples."""
    n = _batch_size("cross_entropy", logits, targets)
    terms = []
    for row, target in zip(logits, targets):
        if isinstance(target, bool) or not isinstance(target, int):
            raise TypeError(f"cross_entropy targets must be class indices (int), not {type(target).__name__!r}")
        if not 0 <= target < len(row):
            raise ValueError(f"cross_entropy target {target} is not a class index for {len(row)} logits")
        terms.append(logsumexp(row) - row[target])
    return sum(terms) * (1.0 / n)


# -- checks --------------------------------------------------------------------------------------
def _batch_size(name: str, outputs: Sequence[Any], targets: Sequence[Any]) -> int:
    for what, seq in (("predictions", outputs), ("targets", targets)):
        if not hasattr(seq, "__len__") or isinstance(seq, (str, bytes)):
            raise TypeError(f"{name}: {what} must be a list (one entry per sample), not {type(seq).__name__!r}")
    if len(outputs) != len(targets):
        raise ValueError(f"{name}: {len(outputs)} predictions but {len(targets)} targets")
    if not outputs:
        raise ValueError(f"{name}: the batch is empty")
    return len(outputs)


def _data(x: Any, name: str, numbers_ok: bool = False) -> float:
    """The float in ``x``: a Value's .data (or, where allowed, a plain number)."""
    if hasattr(x, "data") and hasattr(x, "grad"):
        return x.data
    if numbers_ok and isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    raise TypeError(f"{name} takes Values, not {type(x).__name__!r}")


def _max_data(name: str, logits: Sequence[Value]) -> float:
    if not hasattr(logits, "__len__") or len(logits) == 0:
        raise ValueError(f"{name} needs a non-empty list of logits")
    return max(_data(z, name) for z in logits)
