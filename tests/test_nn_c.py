"""Neuron and Layer calls on compiled-engine parameters make their nodes in a C loop
(micrograd._nn, issue 10 part 4). It must make the graph Karpathy's Python loop makes: the same
nodes with the same ops, children in the same order, the same labels and the same bits, before
and after backward; and every input the Python loop takes or refuses, it takes or refuses alike.

Each test builds the same model twice (same seed) and calls it once through the C loop and
once with nn's C loop switched off (``nn._C = None``: Karpathy's generator, zip and sum), then
compares the two graphs node for node; the pure engine's graph must match too."""
from __future__ import annotations

import io
import math
import random
import struct

import pytest

from micrograd import nn
from micrograd.explain import explain_backward
from micrograd.viz import to_dot

pytestmark = pytest.mark.cython


@pytest.fixture
def cvalue(both_engines):
    """The compiled engine's Value (the test skips where it is not built)."""
    value = both_engines[1]
    if nn._C is None:
        pytest.fail("the compiled engine is loaded but micrograd._nn is not: rebuild the extension")
    return value


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def graph(root) -> list:
    """Every node below ``root`` (``root`` a Value or a list of Values), numbered in the order of
    a depth-first walk through ``_prev``: (type, op, label, data bits, grad bits, children's
    numbers). Two graphs with equal lists have the same shape, ops, child order and bits."""
    roots = root if isinstance(root, list) else [root]
    index: dict = {}
    rows: list = []

    def number(node) -> int:
        if id(node) not in index:
            index[id(node)] = len(rows)
            rows.append(None)
            todo.append(node)
        return index[id(node)]

    todo: list = []
    for r in roots:
        number(r)
    while todo:
        node = todo.pop()
        kids = [number(child) for child in node._prev]
        rows[index[id(node)]] = (node._op, node.label, bits(node.data), bits(node.grad), kids)
    return rows


def call(model, x, *, c_loop: bool):
    """model(x), through nn's C loop or, with it off, Karpathy's Python loop."""
    saved = nn._C
    if not c_loop:
        nn._C = None
    try:
        return model(x)
    finally:
        nn._C = saved


def backward(out) -> None:
    (out if not isinstance(out, list) else sum(out)).backward()


def make(cls, engine, seed=7, *args, **kwargs):
    random.seed(seed)
    return cls(*args, engine=engine, **kwargs)


SHAPES = [
    (2, [16, 16, 1], {}),
    (3, [1, 4, 2], {}),  # a hidden layer of one neuron
    (5, [7], {"activation": "tanh"}),
    (4, [3, 3, 2], {"activation": ["sigmoid", "tanh", "relu"]}),
    (1, [2, 1], {"activation": "linear", "output_activation": "sigmoid"}),
    (6, [5, 1], {"init": "he"}),
]


def inputs(kind: str, n: int, value: type, rng: random.Random) -> list:
    xs = [rng.uniform(-2, 2) for _ in range(n)]
    if kind == "values":
        return [value(x) for x in xs]
    if kind == "floats":
        return xs
    if kind == "ints":
        return [int(3 * x) for x in xs]
    if kind == "mixed":  # Values, floats, ints and a bool, interleaved
        return [value(x) if i % 3 == 0 else (x if i % 3 == 1 else (True if i == 2 else int(x))) for i, x in enumerate(xs)]
    raise AssertionError(kind)


@pytest.mark.parametrize("nin, nouts, options", SHAPES)
@pytest.mark.parametrize("kind", ["values", "floats", "ints", "mixed"])
def test_mlp_graph_is_the_python_loops_node_for_node(cvalue, both_engines, nin, nouts, options, kind):
    pure = both_engines[0]
    graphs = []
    for value, c_loop in [(cvalue, True), (cvalue, False), (pure, False)]:
        model = make(nn.MLP, value, 7, nin, nouts, **options)
        out = call(model, inputs(kind, nin, value, random.Random(11)), c_loop=c_loop)
        before = graph(out)
        backward(out)
        graphs.append((before, graph(out)))
    assert graphs[0] == graphs[1]  # the C loop's graph is Karpathy's loop's, on the same engine
    assert graphs[0] == graphs[2]  # and the pure engine's, bit for bit


def test_compiled_models_take_the_c_loop(cvalue, monkeypatch):
    """Without this, every comparison here could pass with the C loop never running."""
    taken = []

    class Spy:
        def __getattr__(self, name):
            def spied(*args):
                out = getattr(c_loops, name)(*args)
                taken.append((name, out is not NotImplemented))
                return out

            return spied

    c_loops = nn._C
    monkeypatch.setattr(nn, "_C", Spy())
    model = make(nn.MLP, cvalue, 1, 2, [3, 1])
    model([0.5, 1.0])
    model.layers[0].neurons[0]([0.5, 1.0])
    assert taken == [("layer", True), ("layer", True), ("neuron", True)]


def test_neuron_sums_in_karpathys_order(cvalue):
    """b + w0*x0, then + w1*x1, ...: the first add's children are (bias, first product)."""
    n = make(nn.Neuron, cvalue, 3, 3, activation="linear")
    x = [cvalue(1.5), 2.0, cvalue(-0.5)]
    out = n(x)
    terms = []
    node = out
    while node._op == "+":
        node, term = node._prev
        terms.append(term)
    terms.reverse()
    assert node is n.b
    assert all(t._op == "*" and t._prev[0] is w for t, w in zip(terms, n.w)) and len(terms) == 3
    assert terms[0]._prev[1] is x[0] and terms[2]._prev[1] is x[2]
    leaf = terms[1]._prev[1]
    assert leaf._prev == () and leaf.data == 2.0  # the float became a leaf, the right operand


@pytest.mark.parametrize("activation", nn.ACTIVATIONS)
def test_each_activation_is_one_node_of_its_op(cvalue, activation):
    out = make(nn.Neuron, cvalue, 1, 2, activation=activation)([0.25, -3.0])
    python = call(make(nn.Neuron, cvalue, 1, 2, activation=activation), [0.25, -3.0], c_loop=False)
    assert out._op == python._op
    assert graph(out) == graph(python)


def test_draw_dot_and_explain_backward_see_the_same_graph(cvalue):
    texts = []
    for c_loop in (True, False):
        model = make(nn.MLP, cvalue, 5, 2, [3, 1])
        out = call(model, [0.5, -1.0], c_loop=c_loop)
        steps = io.StringIO()
        explain_backward(out, file=steps)
        texts.append((to_dot(out, max_nodes=None), steps.getvalue()))
    assert texts[0] == texts[1]


def test_operands_are_evaluated_in_karpathys_order(cvalue):
    """Inputs that are not Values or floats are converted when their product is made: one at
    a time, interleaved with the C steps, in zip's order."""
    seen = []

    class Loud:
        def __init__(self, x):
            self.x = x

        def __float__(self):
            seen.append(self.x)
            return float(self.x)

    for c_loop in (True, False):
        model = make(nn.Layer, cvalue, 1, 3, 2)
        out = call(model, [Loud(1), 2.0, Loud(3)], c_loop=c_loop)
        assert len(out) == 2
    assert seen == [1, 3, 1, 3, 1, 3, 1, 3]


# -- what the Python loop refuses, the C loop refuses alike ---------------------------------------
class Opaque:
    """No number: Value's ``*`` declines it and so does its own side."""


BAD_INPUTS = [
    ["a", 1.0],
    [1.0, None],
    [Opaque(), 1.0],
    [1.0, [2.0]],
    [float("nan"), 1e308],  # not an error: nan and inf flow through
    [10**400, 1.0],  # OverflowError converting the int
]


def outcome(fn):
    try:
        out = fn()
    except Exception as exc:  # noqa: BLE001 - the exception is what is compared
        return type(exc), str(exc)
    return graph(out)


@pytest.mark.parametrize("x", BAD_INPUTS, ids=repr)
@pytest.mark.parametrize("cls", ["Neuron", "Layer", "MLP"])
def test_bad_inputs_raise_what_the_python_loop_raises(cvalue, x, cls):
    args = {"Neuron": (2,), "Layer": (2, 3), "MLP": (2, [3, 1])}[cls]
    results = [outcome(lambda: call(make(getattr(nn, cls), cvalue, 1, *args), list(x), c_loop=c)) for c in (True, False)]
    assert results[0] == results[1]


OTHER_INPUTS = {
    "tuple": lambda: (0.5, -1.0),
    "iterator": lambda: iter([0.5, -1.0]),  # the first neuron empties it: the second gets none
    "short": lambda: [0.5],
    "long": lambda: [0.5, 1.0, 2.0],
    "number": lambda: 0.5,
    "str": lambda: "ab",
    "dict": lambda: {0.5: 1, -1.0: 2},
}


@pytest.mark.parametrize("kind", OTHER_INPUTS)
def test_other_sequences_and_wrong_lengths_behave_as_before(cvalue, kind):
    results = [outcome(lambda: call(make(nn.MLP, cvalue, 1, 2, [3, 1]), OTHER_INPUTS[kind](), c_loop=c)) for c in (True, False)]
    assert results[0] == results[1]
    if kind in ("short", "long", "iterator"):
        assert results[0][0] is ValueError


def test_an_activation_changed_after_construction_behaves_as_before(cvalue):
    results = []
    for c_loop in (True, False):
        layer = make(nn.Layer, cvalue, 1, 2, 2)
        layer.neurons[0].activation = "softplus"  # bypasses the constructor's check
        results.append(outcome(lambda: call(layer, [1.0, 2.0], c_loop=c_loop)))
        layer.neurons[0].activation = 3
        results.append(outcome(lambda: call(layer, [1.0, 2.0], c_loop=c_loop)))
        layer.neurons[0].nonlin = False
        results.append(outcome(lambda: call(layer, [1.0, 2.0], c_loop=c_loop)))
    assert results[:3] == results[3:]
    assert results[0][0] is AttributeError


def test_mixed_engines_fall_back_to_the_python_loop(both_engines):
    pure, compiled = both_engines
    model = make(nn.MLP, compiled, 1, 2, [2, 1])
    model.layers[0].neurons[1].w[0] = pure(0.5)  # a pure weight in a compiled model
    results = [outcome(lambda: call(model, [1.0, 2.0], c_loop=c)) for c in (True, False)]
    assert results[0] == results[1]
    assert nn._C.neuron(model.layers[0].neurons[1].w, model.layers[0].neurons[1].b, [1.0, 2.0], "relu") is NotImplemented
    # pure inputs into a compiled model: the same error either way
    results = [outcome(lambda: call(make(nn.MLP, compiled, 1, 2, [2, 1]), [pure(1.0), 2.0], c_loop=c)) for c in (True, False)]
    assert results[0] == results[1]


def test_the_pure_engine_runs_karpathys_loop(both_engines):
    pure = both_engines[0]
    n = make(nn.Neuron, pure, 1, 2)
    assert nn._C.neuron(n.w, n.b, [1.0, 2.0], n.activation) is NotImplemented
    assert graph(nn._C.layer([n], [1.0, 2.0], nn.Neuron)) == graph(n([1.0, 2.0]))  # through n(x)
    assert type(n([1.0, 2.0])) is pure


def test_subclasses_and_replaced_lists_are_called_as_before(cvalue):
    calls = []

    class Counting(nn.Neuron):
        def __call__(self, x):
            calls.append(len(x))
            return super().__call__(x)

    layer = make(nn.Layer, cvalue, 1, 2, 2)
    layer.neurons[1] = make(Counting, cvalue, 2, 2)
    layer.neurons[0].w = tuple(layer.neurons[0].w)  # a tuple of weights: the Python loop's zip takes it
    out = layer([1.0, 2.0])
    python = call(layer, [1.0, 2.0], c_loop=False)
    assert calls == [2, 2]
    assert graph(out) == graph(python)


def test_a_replaced_neuron_call_is_called_by_layers(cvalue, monkeypatch):
    calls = []
    karpathys = nn.Neuron.__call__

    def traced(self, x):
        calls.append(self)
        return karpathys(self, x)

    layer = make(nn.Layer, cvalue, 1, 2, 3)
    monkeypatch.setattr(nn.Neuron, "__call__", traced)
    layer([1.0, 2.0])
    assert calls == layer.neurons


def test_a_bias_replaced_by_a_number_takes_the_python_loop(cvalue):
    results = []
    for c_loop in (True, False):
        n = make(nn.Neuron, cvalue, 1, 2)
        n.b = 0.5
        results.append(outcome(lambda: call(n, [1.0, 2.0], c_loop=c_loop)))
    assert results[0] == results[1]
    assert results[0][0][0] == "ReLU"  # a graph, not an error


def test_an_input_that_empties_the_list_midway_stops_the_loop_as_zip_does(cvalue):
    """A Python ``*`` may run user code that changes the input list: no dangling pointer, and
    the same (shorter) sum as zip makes."""
    results = []
    for c_loop in (True, False):
        x: list = []

        class Clearing:
            def __float__(self):
                x.clear()
                return 2.0

        x += [1.0, Clearing(), 3.0, 4.0]
        n = make(nn.Neuron, cvalue, 1, 4, activation="linear")
        results.append(graph(call(n, x, c_loop=c_loop)))
    assert results[0] == results[1]
    assert sum(op == "*" for op, *_ in results[0]) == 2


def test_numbers_nan_and_large_graphs(cvalue):
    model = make(nn.MLP, cvalue, 3, 8, [32, 32, 4])
    x = [math.inf if i == 3 else random.Random(i).uniform(-1, 1) for i in range(8)]
    assert graph(model(x)) == graph(call(model, x, c_loop=False))
