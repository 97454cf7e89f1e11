"""Karpathy's demo step replayed from a tape, side by side with the eager engines and PyTorch.

    python -m pytest benchmarks/test_bench_tape.py --benchmark-only

One group, ``demo-step``: the whole training step on 100 two-moons points, MLP(2, [16, 16, 1]),
max-margin loss + L2 1e-4, zero_grad, backward, SGD, written
- ``python-tape`` / ``cython-tape``: in Karpathy's shape with a tape (``tape.forward()``,
  ``model.zero_grad()``, ``tape.backward()``, ``p.data -= lr * p.grad``); the graph is
  captured once, outside the timing;
- ``python`` / ``cython``: Karpathy's eager step, the graph rebuilt every step;
- ``torch-batched``: as one would write it in PyTorch, float64 weight matrices, the 100 points
  as one batch, one thread (skipped when torch is not installed: it is optional).
"""
from __future__ import annotations

import random
from typing import Callable, Tuple

import pytest

from micrograd import Tape, nn
from micrograd.datasets import make_moons
from micrograd.engine import ENGINES

ENGINES_COMPARED = ["python-tape", "cython-tape", "python", "cython", "torch-batched"]
L2 = 1e-4


def demo_loss(model, Value, X, y):
    """Karpathy's demo loss; the inputs are leaf Values, so new points can be fed by .data."""
    inputs = [list(map(Value, row)) for row in X]
    scores = list(map(model, inputs))
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = L2 * sum(p * p for p in model.parameters())
    return scores, data_loss + reg_loss


def demo_lr(k: int) -> float:
    return 1.0 - 0.9 * (k % 100) / 100  # the demo's schedule


def demo_model(Value):
    random.seed(1337)
    return nn.MLP(2, [16, 16, 1], engine=Value)


def demo_tape_step(engine_name: str) -> Tuple[Callable[[], float], Tape]:
    """(one training step, its tape) for "python-tape" or "cython-tape". The step returns the
    loss of the forward pass it ran."""
    Value = engine_value(engine_name.replace("-tape", ""))
    X, y = make_moons(100, noise=0.1)
    model = demo_model(Value)
    scores, loss = demo_loss(model, Value, X, y)
    tape = Tape(loss, outputs=scores)
    params = model.parameters()
    k = [0]

    def step() -> float:
        out = tape.forward()
        model.zero_grad()
        tape.backward()
        lr = demo_lr(k[0])
        for p in params:
            p.data -= lr * p.grad
        k[0] += 1
        return out

    return step, tape


def demo_eager_step(engine_name: str) -> Callable[[], float]:
    """Karpathy's eager step on engine "python" or "cython": the graph is built every step."""
    Value = engine_value(engine_name)
    X, y = make_moons(100, noise=0.1)
    model = demo_model(Value)
    params = model.parameters()
    k = [0]

    def step() -> float:
        _, loss = demo_loss(model, Value, X, y)
        model.zero_grad()
        loss.backward()
        lr = demo_lr(k[0])
        for p in params:
            p.data -= lr * p.grad
        k[0] += 1
        return loss.data

    return step


def demo_torch_step() -> Callable[[], float]:
    """The same step in PyTorch: float64 matrices, one batch, one thread; the same data and
    initial weights (equal to rounding: the batched sums add in another order)."""
    try:
        import torch
    except ImportError:
        pytest.skip("torch is not installed (optional: pip install torch==2.13.0)")
    torch.set_num_threads(1)
    X, y = make_moons(100, noise=0.1)
    model = demo_model(ENGINES["python"])
    layers = []
    for layer in model.layers:
        W = torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=torch.float64, requires_grad=True)
        b = torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64, requires_grad=True)
        layers.append((W, b))
    params = [t for layer in layers for t in layer]
    Xt = torch.tensor(X, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.float64)
    k = [0]

    def step() -> float:
        h = Xt
        for i, (W, b) in enumerate(layers):
            h = h @ W.T + b
            if i != len(layers) - 1:
                h = h.relu()
        scores = h[:, 0]
        data_loss = (1 + -yt * scores).relu().sum() * (1.0 / len(scores))
        loss = data_loss + L2 * sum((p * p).sum() for p in params)
        for p in params:
            p.grad = None
        loss.backward()
        lr = demo_lr(k[0])
        with torch.no_grad():
            for p in params:
                p.sub_(lr * p.grad)
        k[0] += 1
        return float(loss.item())

    return step


def engine_value(name: str) -> type:
    if name not in ENGINES:
        pytest.skip(f"the {name} engine is not built here")
    return ENGINES[name]


@pytest.mark.parametrize("engine", ENGINES_COMPARED)
def test_demo_step(benchmark, engine):
    eager = demo_eager_step("python")
    expected_first_loss = eager()  # the pure engine's eager step: the reference
    if engine.endswith("-tape"):
        step, tape = demo_tape_step(engine)
        benchmark.extra_info.update(nodes=len(tape), leaves=len(tape.leaves), tape_bytes=tape.nbytes)
        assert step() == expected_first_loss  # replay gives eager's bits
    elif engine == "torch-batched":
        step = demo_torch_step()
        assert step() == pytest.approx(expected_first_loss, rel=1e-12)
    else:
        step = demo_eager_step(engine)
        assert step() == expected_first_loss
    benchmark.group = "demo-step"
    benchmark(step)
