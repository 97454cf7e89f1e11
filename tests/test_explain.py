"""Stepping the backward pass by hand (micrograd.explain), on both engines.

The stepper must leave exactly the grads backward() leaves (checked with ==), and what it
reports for each operand must be the very amount the engine added to that operand's grad."""
import io
import math
import random
import sys

import pytest

from micrograd import viz
from micrograd.explain import BackwardStepper, explain_backward
from micrograd.graph import topological_order


def neuron(V):
    o = viz.neuron_example(V)  # labelled as in the lecture, after o.backward()
    for v in topological_order(o):
        v.grad = 0.0
    return o


def program(V, seed, size=40):
    """A random graph using every op, each value kept in its op's domain; the same seed gives
    the same graph on either engine. Returns (root, every Value made, in creation order)."""
    rng = random.Random(seed)
    made = [V(rng.uniform(-2, 2), label=f"x{i}") for i in range(4)]

    def pick():
        return made[rng.randrange(len(made))]

    for _ in range(size):
        a, b = pick(), pick()  # may be the same node: a*a, a+a
        kind = rng.randrange(11)
        if kind == 0:
            v = a + b
        elif kind == 1:
            v = a * b
        elif kind == 2:
            v = a - b
        elif kind == 3:
            v = a / (b.sigmoid() + 0.5)
        elif kind == 4:
            v = a ** rng.choice([2, 3, -1, 0.5]) if a.data > 0.1 else a**2
        elif kind == 5:
            v = a.sigmoid() ** b.tanh()  # Value exponent, positive base
        elif kind == 6:
            v = a.relu()
        elif kind == 7:
            v = a.tanh()
        elif kind == 8:
            v = (a.tanh()).exp()
        elif kind == 9:
            v = a.sigmoid().log()
        else:
            v = a * 0.5 + 1
        made.append(v)
    root = sum(made[-6:], made[-7])
    return root, topological_order(root)


def test_neuron_steps_run_from_the_output_down(engine):
    steps = list(BackwardStepper(neuron(engine)))
    # reverse of the topological order x1 w1 x1*w1 x2 w2 x2*w2 sum b n o, op nodes only
    assert [s.name for s in steps] == ["o", "n", "x1*w1 + x2*w2", "x2*w2", "x1*w1"]
    assert [s.number for s in steps] == [1, 2, 3, 4, 5]
    assert all(s.total == 5 for s in steps)
    assert [s.expression for s in steps] == [
        "o = tanh(n)",
        "n = x1*w1 + x2*w2 + b",
        "x1*w1 + x2*w2 = x1*w1 + x2*w2",
        "x2*w2 = x2 * w2",
        "x1*w1 = x1 * w1",
    ]


def test_neuron_first_step_is_the_tanh_rule(engine):
    o = neuron(engine)
    stepper = BackwardStepper(o)
    assert o.grad == 1.0  # set on construction, as backward() does
    step = stepper.step()
    (n,) = step.operands
    assert step.grad_in == 1.0
    assert n.name == "n" and n.formula == "1 - o**2"
    assert n.local == 1 - math.tanh(n.node.data) ** 2
    assert n.local == pytest.approx(0.5)
    assert (n.grad_before, n.grad_after) == (0.0, n.grad_out)
    assert n.node.grad == n.local  # what the step reported is what the node now holds
    # nothing below n has been touched yet
    assert [v.grad for v in topological_order(o) if v.label != "o" and v.label != "n"] == [0.0] * 8


def test_neuron_product_step_sends_each_factor_the_other_one(engine):
    steps = list(BackwardStepper(neuron(engine)))
    x1, w1 = steps[4].operands
    assert (x1.name, x1.formula, x1.local) == ("x1", "w1", -3.0)
    assert (w1.name, w1.formula, w1.local) == ("w1", "x1", 2.0)
    assert steps[4].grad_in == pytest.approx(0.5)
    assert x1.grad_out == -3.0 * steps[4].grad_in
    assert x1.node.grad == pytest.approx(-1.5)
    assert w1.node.grad == pytest.approx(1.0)


def test_explain_prints_every_step(engine):
    out = io.StringIO()
    steps = explain_backward(neuron(engine), file=out)
    text = out.getvalue().splitlines()
    assert len(steps) == 5
    assert text[0] == "o.grad = 1 (d(o)/d(o)); 5 steps, from the output down:"
    assert text[1] == "step 1/5: o = tanh(n)    o.grad = 1.0000"
    assert text[2] == (
        "    n: local d(o)/d(n) = 1 - o**2 = 0.5000; grad out = 0.5000 * 1.0000 = 0.5000; n.grad 0.0000 -> 0.5000"
    )
    assert text[-2] == (
        "    x1: local d(x1*w1)/d(x1) = w1 = -3.0000; grad out = -3.0000 * 0.5000 = -1.5000; x1.grad 0.0000 -> -1.5000"
    )
    assert text[-1] == (
        "    w1: local d(x1*w1)/d(w1) = x1 = 2.0000; grad out = 2.0000 * 0.5000 = 1.0000; w1.grad 0.0000 -> 1.0000"
    )
    assert len(text) == 1 + 5 + 9  # header, a line per step, a line per operand


def test_explain_prints_to_stdout_by_default(engine, capsys):
    explain_backward(neuron(engine))
    assert "step 5/5: x1*w1 = x1 * w1" in capsys.readouterr().out


@pytest.mark.parametrize("seed", range(8))
def test_stepping_leaves_exactly_the_grads_of_backward(engine, seed):
    root, nodes = program(engine, seed)
    twin, twin_nodes = program(engine, seed)
    root.backward()
    list(BackwardStepper(twin))
    assert [v.data for v in twin_nodes] == [v.data for v in nodes]
    assert [v.grad for v in twin_nodes] == [v.grad for v in nodes]


@pytest.mark.parametrize("seed", range(8))
def test_reported_grad_out_is_what_the_engine_added(engine, seed):
    root, _ = program(engine, seed)
    seen_ops = set()
    for step in BackwardStepper(root):
        seen_ops.add(step.op if not step.op.startswith("**") or step.op == "**" else "**k")
        children = [o.node for o in step.operands]
        for o in step.operands:
            if children.count(o.node) == 1:  # a op a adds twice; checked below
                assert o.grad_after == o.grad_before + o.grad_out
            else:
                assert o.grad_after == (o.grad_before + o.grad_out) + o.grad_out
            assert o.grad_out == o.local * step.grad_in or step.op == "log"
    if seed == 0:
        assert seen_ops >= {"+", "*", "**k", "**", "ReLU", "tanh", "exp", "log", "sigmoid"}


def test_log_step_divides_as_the_engine_does(engine):
    a = engine(3.0, label="a")
    y = a.log() * 0.7
    step = list(BackwardStepper(y))[-1]
    (o,) = step.operands
    assert step.op == "log" and o.formula == "1/a"
    assert o.local == 1 / 3.0
    assert o.grad_out == step.grad_in / 3.0 == a.grad


def test_pow_steps_name_their_rules(engine):
    a, b = engine(2.0, label="a"), engine(3.0, label="b")
    steps = list(BackwardStepper(a**b + a**2))
    by_op = {s.op: s for s in steps}
    base, exponent = by_op["**"].operands
    assert (base.formula, base.local) == ("b*a**(b-1)", 3.0 * 2.0**2)
    assert exponent.formula.endswith("*log(a)") and exponent.local == pytest.approx(8 * math.log(2))
    (square,) = by_op["**2"].operands
    assert (square.formula, square.local) == ("2*a**1", 4.0)
    assert by_op["**"].expression.endswith(" = a**b")


def test_stepping_adds_to_existing_grads_unless_told_to_zero_them(engine):
    o = neuron(engine)
    o.backward()
    once = [v.grad for v in topological_order(o)]
    list(BackwardStepper(o, zero_grad=True))
    assert [v.grad for v in topological_order(o)] == once
    list(BackwardStepper(o))  # like a second backward(): grads accumulate, intermediate ones too
    twin = neuron(engine)
    twin.backward()
    twin.backward()
    assert [v.grad for v in topological_order(o)] == [v.grad for v in topological_order(twin)]
    assert o.grad == 1.0 and abs(topological_order(o)[0].grad) > 1.5  # x1 grew


def test_step_returns_none_when_done(engine):
    stepper = BackwardStepper(neuron(engine))
    assert len(stepper) == 5 and not stepper.done
    for _ in range(5):
        assert stepper.step() is not None
    assert stepper.done
    assert stepper.step() is None
    assert list(stepper) == []


def test_a_leaf_has_no_steps(engine):
    x = engine(3.0)
    stepper = BackwardStepper(x)
    assert len(stepper) == 0 and stepper.done
    assert x.grad == 1.0


def test_deep_chain_steps_without_recursion(engine):
    def chain(V):
        x = V(0.3)
        nodes = [x]
        for _ in range(20_000):
            x = (x * 0.999).tanh()
            nodes.append(x)
        return x, nodes

    root, nodes = chain(engine)
    twin, twin_nodes = chain(engine)
    root.backward()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        stepper = BackwardStepper(twin)
        for _ in stepper:
            pass
    finally:
        sys.setrecursionlimit(limit)
    assert len(stepper) == 40_000
    assert [v.grad for v in twin_nodes] == [v.grad for v in nodes]


def test_stepper_rejects_non_values(engine):
    with pytest.raises(TypeError, match="expects a micrograd Value, not 'float'"):
        BackwardStepper(2.0)
