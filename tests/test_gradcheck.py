"""Finite-difference gradient checks (micrograd.gradient_check), on both engines.

Expected gradients are derived by hand; the failing cases are real mismatches (a kink, a node
whose stated op does not match its data, a wrong backward rule), not tolerances tuned to pass."""
import math
import random

import pytest

from micrograd import pure, viz
from micrograd._ops import TANH
from micrograd.gradient_check import GradcheckResult, gradcheck
from micrograd.graph import topological_order


def state(nodes):
    return [(v.data, v.grad) for v in nodes]


def test_neuron_passes_and_reports_every_leaf(engine):
    o = viz.neuron_example(engine)
    result = gradcheck(o)
    assert result.ok and bool(result)
    # leaves in topological order; do/dleaf by hand: 0.5 * the other factor, 0.5 for b
    assert [c.name for c in result.checks] == ["x1", "w1", "x2", "w2", "b"]
    assert [c.analytic for c in result.checks] == pytest.approx([-1.5, 1.0, 0.5, 0.0, 0.5])
    assert [c.numeric for c in result.checks] == pytest.approx([-1.5, 1.0, 0.5, 0.0, 0.5], abs=1e-8)
    assert [c.data for c in result.checks] == [2.0, -3.0, 0.0, 1.0, 6.8813735870195432]
    assert result.max_rel_error < 1e-8
    assert result.worst.rel_error == result.max_rel_error


def test_graph_form_leaves_the_graph_untouched(engine):
    o = viz.neuron_example(engine)
    nodes = topological_order(o)
    before = state(nodes)
    gradcheck(o)
    assert state(nodes) == before


def test_graph_form_checks_constant_leaves_too(engine):
    a, b = engine(3.0, label="a"), engine(2.0, label="b")
    result = gradcheck(a - b)  # a + b * c with a new leaf c = -1
    assert [c.name for c in result.checks] == ["a", "b", "#2"]
    # d/da = 1, d/db = c = -1, d/dc = b = 2
    assert [c.analytic for c in result.checks] == [1.0, -1.0, 2.0]
    assert result.ok


def test_graph_form_can_check_chosen_leaves_only(engine):
    o = viz.neuron_example(engine)
    leaves = {v.label: v for v in topological_order(o)}
    result = gradcheck(o, [leaves["b"], leaves["w1"]])
    assert [c.name for c in result.checks] == ["b", "w1"]
    assert [c.analytic for c in result.checks] == pytest.approx([0.5, 1.0])
    with pytest.raises(ValueError, match=r"inputs\[0\] .* is not in the graph"):
        gradcheck(o, [engine(1.0)])
    with pytest.raises(ValueError, match=r"inputs\[0\] is not a leaf: it is the result of 'tanh'"):
        gradcheck(o, [o])
    with pytest.raises(TypeError, match="gradcheck inputs expects a micrograd Value, not 'float'"):
        gradcheck(o, [1.0])


def test_every_op_passes(engine):
    a, b = engine(0.8, label="a"), engine(1.7, label="b")
    y = ((a * b + a**3 - b / a) ** 2 * 0.1).tanh() + (a**b).log() * a.exp() + (b - a).relu().sigmoid()
    result = gradcheck(y)
    assert result.ok, str(result)
    # a, b and three constant leaves: the -1 of each minus and the 0.1 (a ** k keeps k in its node)
    assert [c.data for c in result.checks] == [0.8, 1.7, -1.0, 0.1, -1.0]


def test_function_form(engine):
    x, y = engine(0.5, label="x"), engine(-1.25)

    def f(x, y):
        return x * y + x.tanh() - (y * y).exp()

    result = gradcheck(f, [x, y])
    assert [c.name for c in result.checks] == ["x", "inputs[1]"]
    # df/dx = y + 1 - tanh(x)^2; df/dy = x - 2y exp(y^2)
    expected = [-1.25 + 1 - math.tanh(0.5) ** 2, 0.5 - 2 * -1.25 * math.exp(1.25**2)]
    assert [c.analytic for c in result.checks] == pytest.approx(expected, rel=1e-12)
    assert [c.numeric for c in result.checks] == pytest.approx(expected, rel=1e-6)
    assert result.ok


def test_function_form_puts_data_and_grads_back(engine):
    x, y = engine(0.5), engine(2.0)
    x.grad, y.grad = 7.0, -3.0
    gradcheck(lambda x, y: x * y, [x, y])
    assert state([x, y]) == [(0.5, 7.0), (2.0, -3.0)]

    calls = []

    def fails_when_moved(x, y):
        calls.append(x.data)
        if len(calls) > 1:
            raise RuntimeError("boom")
        return x * y

    with pytest.raises(RuntimeError, match="boom"):
        gradcheck(fails_when_moved, [x, y])
    assert state([x, y]) == [(0.5, 7.0), (2.0, -3.0)]
    assert calls[1] != 0.5  # the failure came with x moved


def test_a_model_through_both_forms(nn, engine):
    random.seed(3)
    model = nn.MLP(2, [4, 4, 1])
    xs = [[0.5, -1.0], [2.0, 0.25], [-1.5, 1.5]]
    ys = [1.0, -1.0, 1.0]

    def loss(*_):
        return sum(((model(x) - y) ** 2 for x, y in zip(xs, ys)), engine(0.0))

    params = model.parameters()
    by_graph = gradcheck(loss(), params)
    by_function = gradcheck(loss, params)
    assert len(by_graph.checks) == len(params) == 4 * 3 + 4 * 5 + 5
    assert by_graph.ok, str(by_graph)
    assert by_function.ok, str(by_function)
    assert [c.analytic for c in by_graph.checks] == [c.analytic for c in by_function.checks]


def test_relu_kink_is_reported(engine):
    x = engine(0.0, label="x")
    result = gradcheck(x.relu())
    assert not result.ok and not bool(result)
    (check,) = result.checks
    # backward takes the slope at 0 as 0; (relu(eps) - relu(-eps)) / 2eps = 1/2
    assert (check.analytic, check.numeric, check.rel_error) == (0.0, 0.5, 1.0)
    assert result.worst is check
    assert "MISMATCH" in str(result) and "FAILED (1 of 1)" in str(result)


def test_a_hand_built_node_with_a_wrong_backward_is_caught(engine):
    """Built by hand with tanh's value and a backward that uses exp's rule (out * g): the
    analytic slope is tanh(x), while f really is tanh, with slope 1 - tanh(x)^2."""
    x = engine(0.5, label="x")

    def f(x):
        out = engine(math.tanh(x.data), (x,), "tanh")

        def _backward():
            x.grad += out.data * out.grad

        out._backward = _backward
        return out

    result = gradcheck(f, [x])
    (check,) = result.checks
    assert check.analytic == pytest.approx(math.tanh(0.5))
    assert check.numeric == pytest.approx(1 - math.tanh(0.5) ** 2)
    assert not result.ok


def test_the_graph_form_refuses_a_hand_built_node(engine):
    x = engine(0.5)
    out = engine(2 * x.data, (x,), "double") + 1
    with pytest.raises(ValueError, match="built by hand"):
        gradcheck(out)


def test_a_wrong_backward_rule_is_caught_pure_engine(monkeypatch):
    """Only the pure engine's rules can be swapped at run time."""
    o = viz.neuron_example(pure.Value)
    assert gradcheck(o).ok

    def tanh_backward_wrong(out):  # forgets the square: 1 - out instead of 1 - out**2
        (a,) = out._prev
        a._grad += (1.0 - out._data) * out._grad

    monkeypatch.setitem(pure._STEPS, TANH, tanh_backward_wrong)
    result = gradcheck(o)
    assert not result.ok
    assert all(not c.ok for c in result.checks if c.name != "w2")  # w2's grad is 0 either way


def test_undefined_at_a_moved_point_gives_nan_not_an_error(engine):
    x = engine(1e-7, label="x")
    result = gradcheck(lambda x: x.log(), [x])  # log(x - 1e-6) is undefined
    (check,) = result.checks
    assert check.analytic == pytest.approx(1e7)
    assert math.isnan(check.numeric) and math.isnan(check.rel_error)
    assert not result.ok and result.worst is check
    assert "f undefined at data +- eps" in str(result)
    assert x.data == 1e-7


def test_both_engines_give_the_same_report(both_engines):
    results = [gradcheck(viz.neuron_example(V)) for V in both_engines]
    assert results[0] == results[1]


def test_tolerances_decide_ok(engine):
    o = viz.neuron_example(engine)
    loose = gradcheck(o)
    assert gradcheck(o, rtol=0.0, atol=0.0).ok == all(c.abs_error == 0.0 for c in loose.checks)
    assert not gradcheck(o, eps=0.5, rtol=1e-6, atol=0.0).ok  # eps far too big for tanh's curve


def test_repr_and_str_are_readable(engine):
    result = gradcheck(viz.neuron_example(engine))
    assert repr(result).startswith("<gradcheck ok: 5 leaves, worst relative error ")
    lines = str(result).splitlines()
    assert lines[1].split() == ["leaf", "data", "analytic", "numeric", "rel", "error"]
    assert lines[2].split()[0] == "x1" and lines[2].endswith("ok")
    assert isinstance(result, GradcheckResult)


def test_bad_arguments(engine):
    x = engine(1.0)
    with pytest.raises(TypeError, match="gradcheck expects a micrograd Value, not 'float'"):
        gradcheck(1.0)
    with pytest.raises(TypeError, match="a function needs the list of input Values"):
        gradcheck(lambda x: x)
    with pytest.raises(TypeError, match="f must return a micrograd Value, not 'float'"):
        gradcheck(lambda x: x.data, [x])
    with pytest.raises(ValueError, match=r"inputs\[0\] is not a leaf"):
        gradcheck(lambda x: x, [x * 2])
    with pytest.raises(ValueError, match="eps must be positive and finite, got 0.0"):
        gradcheck(x, eps=0)
    with pytest.raises(TypeError, match="eps must be a number, not 'str'"):
        gradcheck(x, eps="1e-6")
    with pytest.raises(ValueError, match="rtol must be >= 0 and finite"):
        gradcheck(x, rtol=-1)


def test_a_lone_leaf_has_slope_one(engine):
    result = gradcheck(engine(3.0, label="x"))
    assert [(c.analytic, c.numeric) for c in result.checks] == [(1.0, 1.0)]


def test_every_leaf_of_a_small_network_passes(engine):
    result = gradcheck(viz.mlp_example(engine))  # 41 weights and biases, 48 inputs, 5 constants
    assert len(result.checks) == 94
    assert result.ok, str(result)
