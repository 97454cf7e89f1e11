"""The two engines give the same bits: same op table, same data, same grads, same errors."""
import math
import random

import pytest

from micrograd import _ops

pytestmark = pytest.mark.cython


def test_op_codes_match_the_shared_table():
    _engine = pytest.importorskip("micrograd._engine", reason="compiled engine not built")
    assert _engine.OP_CODES == _ops.OP_CODES


def bits(x):
    """A float's exact identity (nan == nan, 0.0 != -0.0)."""
    return math.nan if x != x else (x, math.copysign(1.0, x))


def op_builders(rng):
    """(unary, binary): one builder per op of the shared table, through the op's Value method,
    so a new op is drawn here without an edit; plus the composite forms (-, /, reflected)."""
    unary, binary = [lambda a: -a], [
        lambda a, b: a - b, lambda a, b: a / b, lambda a, b: a + rng.uniform(-1, 1),
        lambda a, b: rng.uniform(-1, 1) * b, lambda a, b: 2.0 ** a, lambda a, b: 1.5 - b,
        lambda a, b: 3.0 / b,
    ]
    for op in _ops.OPS:
        if op.code == _ops.POWC:
            unary.append(lambda a, m=op.method: getattr(a, m)(rng.choice([2, 3, -1, 0.5, -1.5])))
        elif op.arity == 2:
            binary.append(lambda a, b, m=op.method: getattr(a, m)(b))
        elif op.arity == 1:
            unary.append(lambda a, m=op.method: getattr(a, m)())
    return unary, binary


def test_every_op_is_drawn(both_engines):
    drawn = set()
    for seed in range(40):
        leaves, nodes, log = random_program(both_engines[0], seed)
        drawn |= {v._code for v in nodes}
    assert drawn == {op.code for op in _ops.OPS}


def random_program(Value, seed, n_leaves=6, n_ops=60):
    """Build a random graph using every op; return (leaves, nodes, outcome log). Ops that fail
    in the forward pass are logged with their exception type and skipped."""
    rng = random.Random(seed)
    leaves = [Value(rng.uniform(-2, 2)) for _ in range(n_leaves)]
    nodes = list(leaves)
    log = []
    unary, binary = op_builders(rng)
    for _ in range(n_ops):
        try:
            if rng.random() < 0.5:
                out = rng.choice(unary)(rng.choice(nodes))
            else:
                out = rng.choice(binary)(rng.choice(nodes), rng.choice(nodes))
        except (ValueError, ZeroDivisionError, OverflowError) as exc:
            log.append(type(exc).__name__)
            continue
        if math.isfinite(out.data) and abs(out.data) < 1e6:
            nodes.append(out)
            log.append(out._op)
    return leaves, nodes, log


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_give_identical_bits(both_engines, seed):
    results = []
    for Value in both_engines:
        leaves, nodes, log = random_program(Value, seed)
        root = sum(nodes[-8:], Value(0.0))
        root.backward()
        results.append((log, [bits(v.data) for v in nodes], [bits(v.grad) for v in nodes]))
    assert results[0][0] == results[1][0]
    assert results[0][1] == results[1][1]
    assert results[0][2] == results[1][2]


def test_mlp_training_steps_give_identical_bits(both_engines, monkeypatch):
    import micrograd.nn
    from micrograd.datasets import make_moons

    X, y = make_moons(30, noise=0.1, seed=3)
    runs = []
    for Value in both_engines:
        monkeypatch.setattr(micrograd.nn, "Value", Value)
        random.seed(1337)
        model = micrograd.nn.MLP(2, [8, 8, 1])
        trace = []
        for k in range(3):
            scores = [model([Value(a), Value(b)]) for a, b in X]
            losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
            loss = sum(losses) * (1.0 / len(losses)) + 1e-4 * sum(p * p for p in model.parameters())
            model.zero_grad()
            loss.backward()
            for p in model.parameters():
                p.data -= (1.0 - 0.9 * k / 3) * p.grad
            trace.append([loss.data] + [p.grad for p in model.parameters()] + [p.data for p in model.parameters()])
        runs.append(trace)
    assert runs[0] == runs[1]


def test_same_error_for_same_bad_step(both_engines):
    kinds = []
    for Value in both_engines:
        x = Value(3.0)
        y = x - 3.0
        with pytest.raises(ZeroDivisionError) as info:
            x / y
        kinds.append(str(info.value))
    assert kinds[0] == kinds[1]


def test_engines_do_not_mix(both_engines):
    Pure, Compiled = both_engines
    with pytest.raises(TypeError):
        Pure(1.0) + Compiled(2.0)
    with pytest.raises(TypeError):
        Compiled(1.0) * Pure(2.0)
