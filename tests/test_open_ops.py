"""Nodes built by hand, identically on both engines: Karpathy's lecture style (any _op, then
assign _backward) and microgpt's (Value(data, children, local_grads)); and what reads them."""
import math
import random
import struct

import pytest

from micrograd import _ops
from micrograd.explain import BackwardStepper
from micrograd.tape import Tape


def bits(x):
    return struct.pack("<d", x)


def lecture_tanh(Value, x):
    """The lecture's tanh, written as a user would outside the class: exp formula, closure."""
    n = x.data
    t = (math.exp(2 * n) - 1) / (math.exp(2 * n) + 1)
    out = Value(t, (x,), "tanh")

    def _backward():
        x.grad += (1 - t**2) * out.grad

    out._backward = _backward
    return out


def test_lecture_custom_op_runs_unchanged(engine):
    x1, w1, b = engine(2.0, label="x1"), engine(-3.0, label="w1"), engine(6.8813735870195432, label="b")
    n = x1 * w1 + b
    o = lecture_tanh(engine, n)
    assert o._op == "tanh" and o._prev == (n,)
    o.backward()
    assert o.data == pytest.approx(math.sqrt(0.5))
    assert n.grad == pytest.approx(0.5) and x1.grad == pytest.approx(-1.5) and w1.grad == pytest.approx(1.0)


def test_any_op_string_is_accepted_and_does_nothing_until_given_a_backward(engine):
    x = engine(3.0)
    for op in ("double", "tanh", "+", "**2", ""):
        out = engine(2 * x.data, (x,), op)
        assert out._op == op and out._prev == (x,) and out._code == _ops.CUSTOM
        out.backward()
        assert x.grad == 0.0 and out.grad == 1.0
    out._backward()  # callable, and does nothing (Karpathy's default is lambda: None)
    assert x.grad == 0.0


def test_backward_is_readable_on_every_node_and_runs_its_step(engine):
    a, b = engine(2.0), engine(-3.0)
    c = a * b
    c.grad = 1.0
    step = c._backward
    assert callable(step)
    step()
    assert (a.grad, b.grad) == (-3.0, 2.0)
    a._backward()  # a leaf's step does nothing
    assert a.grad == -3.0


def test_a_built_in_backward_can_be_wrapped(engine):
    a, b = engine(2.0), engine(-3.0)
    c = a + b
    calls = []
    builtin = c._backward

    def traced():
        calls.append(c.grad)
        builtin()

    c._backward = traced
    assert c._op == "+" and c._code == _ops.CUSTOM
    (c * 4).backward()
    assert calls == [4.0] and (a.grad, b.grad) == (4.0, 4.0)


def test_backward_must_be_callable(both_engines):
    messages = []
    for Value in both_engines:
        v = Value(1.0) + 1
        with pytest.raises(TypeError) as info:
            v._backward = 3
        messages.append(str(info.value))
        assert v._op == "+" and v._code == _ops.ADD  # unchanged
    assert messages[0] == messages[1] and "callable" in messages[0]


def test_an_error_in_a_python_backward_propagates(engine):
    x = engine(1.0)
    out = engine(1.0, (x,), "boom")

    def _backward():
        raise RuntimeError("boom")

    out._backward = _backward
    with pytest.raises(RuntimeError, match="boom"):
        (out * 2).backward()
    (x * 3).backward()  # the engine still works
    assert x.grad == 3.0


def test_a_python_backward_that_rewires_the_graph_does_not_crash(engine):
    # The compiled engine holds every node while Python code runs in backward().
    x = engine(2.0)
    chain = x
    for _ in range(50):
        chain = chain * 1.5 + 1
    holder = [chain]
    out = engine(chain.data, (chain,), "id")

    def _backward():
        top = holder.pop()
        out.__init__(0.0)  # drops out's reference to the chain
        top.__init__(1.0)  # and this the chain's to everything below: only backward() holds it

    out._backward = _backward
    del chain
    out.backward()
    assert out._prev == () and x.grad == 0.0


def test_microgpt_dialect_positionally_and_by_keyword(engine):
    a, b = engine(2.0), engine(3.0)
    m = engine(6.0, (a, b), (b.data, a.data))
    k = engine(5.0, (a, b), local_grads=(1, 1))
    assert m._children == (a, b) and m._local_grads == (3.0, 2.0)
    assert type(k._local_grads[0]) is float and k._op == "" and m._code == _ops.LOCAL_GRADS
    out = engine(m.data + k.data, (m, k), (1, 1))
    out.backward()
    assert (a.grad, b.grad) == (3.0 + 1.0, 2.0 + 1.0)
    a.grad = 0.0
    m.grad = 2.0
    m._backward()
    assert a.grad == 6.0


def test_more_than_two_children(engine):
    xs = [engine(float(i)) for i in range(1, 6)]
    s = engine(sum(x.data for x in xs), xs, [1.0] * 5)
    p = engine(2.0, xs, [0.5, 1.0, 1.5, 2.0, 2.5])
    assert s._prev == tuple(xs) and len(s._children) == 5
    (s * p).backward()
    assert [x.grad for x in xs] == [2.0 + k * 15.0 for k in (0.5, 1.0, 1.5, 2.0, 2.5)]


def test_local_grads_must_match_the_children(both_engines):
    messages = []
    for Value in both_engines:
        x = Value(1.0)
        for bad, exc in [((1.0,), None), (("a", 1.0), TypeError), (5, TypeError), ((1.0, 2.0, 3.0), ValueError)]:
            if exc is None:
                continue
            with pytest.raises(exc) as info:
                Value(2.0, (x, x), bad)
            messages.append(str(info.value))
    half = len(messages) // 2
    assert messages[:half] == messages[half:]


def test_local_grads_of_built_in_ops_are_computed_from_data(engine):
    a, b = engine(2.0), engine(3.0)
    assert (a + b)._local_grads == (1.0, 1.0) and (a * b)._local_grads == (3.0, 2.0)
    assert (a**3)._local_grads == (12.0,) and a.log()._local_grads == (0.5,)
    assert a._local_grads == () and engine(-2.0).abs()._local_grads == (-1.0,)
    custom = engine(1.0, (a,), "f")
    with pytest.raises(AttributeError, match="Python function"):
        custom._local_grads


def microgpt_backward(root):
    """microgpt's own backward loop (recursive topological sort, then child.grad +=
    local_grad * v.grad), run over our graph through _children and _local_grads."""
    topo, visited = [], set()

    def build_topo(v):
        if v not in visited:
            visited.add(v)
            for child in v._children:
                build_topo(child)
            topo.append(v)

    build_topo(root)
    root.grad = 1
    for v in reversed(topo):
        for child, local_grad in zip(v._children, v._local_grads):
            child.grad += local_grad * v.grad


def random_graph(Value, seed, n_ops=40):
    rng = random.Random(seed)
    nodes = [Value(rng.uniform(0.2, 1.5)) for _ in range(4)]
    ops = [
        lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a.relu(), lambda a, b: a.tanh(),
        lambda a, b: (a * 0.3).exp(), lambda a, b: (a * a + 0.5).log(), lambda a, b: a.sigmoid(),
        lambda a, b: abs(a - b), lambda a, b: (a * a + 0.1) ** b.sigmoid(), lambda a, b: a**2,
        lambda a, b: a / (b * b + 1), lambda a, b: Value(a.data * 2, (a, b), (2.0, 0.0)),
        lambda a, b: Value(a.data + b.data, (a, b.tanh(), a, b), (1.0, 0.5, 1.0, 0.25)),
        lambda a, b: Value(a.data - b.data, (b, a, a * b), [-1.0, 1.0, 0.0]),
    ]
    for _ in range(n_ops):
        nodes.append(rng.choice(ops)(rng.choice(nodes), rng.choice(nodes)))
    return nodes, sum(nodes[-5:], nodes[-6])


@pytest.mark.parametrize("seed", range(6))
def test_microgpt_backward_loop_over_our_graph_gives_our_bits(engine, seed):
    nodes, root = random_graph(engine, seed)
    root.backward()
    ours = [bits(v.grad) for v in nodes]
    nodes, root = random_graph(engine, seed)
    microgpt_backward(root)
    assert [bits(v.grad) for v in nodes] == ours


@pytest.mark.parametrize("seed", range(6))
def test_hand_built_graphs_give_identical_bits_on_both_engines(both_engines, seed):
    runs = []
    for Value in both_engines:
        nodes, root = random_graph(Value, seed)
        lecture = lecture_tanh(Value, root)
        lecture.backward()
        runs.append([bits(v.data) for v in nodes] + [bits(v.grad) for v in nodes])
    assert runs[0] == runs[1]


@pytest.mark.parametrize(
    "make",
    [
        lambda V, x: lecture_tanh(V, x),
        lambda V, x: V(1.0, (x,), "double"),
        lambda V, x: V(1.0, (x,), (2.0,)),
        lambda V, x: V(1.0, (), "constant"),
    ],
    ids=["python-backward", "no-backward", "local-grads", "childless"],
)
def test_tape_refuses_a_hand_built_node_naming_it(engine, make):
    x = engine(0.5)
    node = make(engine, x)
    node.label = "mine"
    with pytest.raises(ValueError, match="Tape cannot replay the node 'mine'") as info:
        Tape((node + x) * 2)
    assert "built by hand" in str(info.value)


def test_explain_steps_through_hand_built_nodes(engine):
    x = engine(0.5, label="x")
    y = engine(x.data * 3, (x,), (3.0,))
    y.label = "y"
    o = lecture_tanh(engine, y)
    steps = list(BackwardStepper(o))
    assert [s.name for s in steps] == ["#2", "y"]
    assert steps[1].operands[0].formula == "local_grads[0]" and steps[1].operands[0].local == 3.0
    assert math.isnan(steps[0].operands[0].local)
    assert steps[0].operands[0].grad_after == y.grad
    text = "\n".join(map(str, steps))
    assert "grad out (by the node's Python _backward) =" in text and "y = local_grads(x)" in text


def test_a_hand_built_node_with_no_children_runs_its_backward(engine):
    # As in Karpathy's engine: backward() calls every node's _backward, leaves' included.
    side = engine(0.0)
    c = engine(5.0, (), "const")
    calls = []
    c._backward = lambda: calls.append(1)
    (c * 2).backward()
    assert calls == [1] and side.grad == 0.0
    leaf = engine(3.0)  # a leaf given a backward is no longer a leaf
    leaf._backward = lambda: calls.append(2)
    (leaf + 1).backward()
    assert calls == [1, 2] and leaf._prev == () and leaf._op == ""


def test_a_deep_chain_of_hand_built_nodes_backpropagates_and_frees(engine):
    x = engine(1.0)
    v = x
    for _ in range(100_000):
        v = engine(v.data, (v, x, v), (0.5, 0.0, 0.5))
    v.backward()
    assert x.grad == 1.0
    del v  # freed in a loop, not by recursion


def test_backward_visits_hand_built_nodes_in_the_same_order_on_both_engines(both_engines):
    # Children beyond the second are reached through the compiled engine's hidden links; the
    # order of backward steps must still be the pure engine's.
    orders = []
    for Value in both_engines:
        rng = random.Random(7)
        calls = []
        nodes = [Value(float(i)) for i in range(4)]
        for k in range(30):
            kids = [rng.choice(nodes) for _ in range(rng.randint(0, 5))]
            node = Value(1.0, kids, f"n{k}")
            node._backward = lambda k=k: calls.append(k)
            nodes.append(node if rng.random() < 0.7 else node * 2)
        root = Value(0.0, nodes[-6:], "root")
        root.backward()
        orders.append(calls)
    assert orders[0] == orders[1] and len(orders[0]) > 10
