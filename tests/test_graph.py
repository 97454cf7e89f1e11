"""Graph walking and statistics (micrograd.graph), on both engines.

Expected counts are derived by hand from how each op builds nodes (``a - b`` = ``a + b*-1``,
``a / b`` = ``a * b**-1``, as in Karpathy's micrograd)."""
import sys

import pytest

from micrograd import graph, pure
from micrograd.graph import GraphStats, graph_stats, op_code, topological_order


def neuron(V):
    """The lecture's neuron, labelled as there (no backward)."""
    x1, x2 = V(2.0, label="x1"), V(0.0, label="x2")
    w1, w2 = V(-3.0, label="w1"), V(1.0, label="w2")
    b = V(6.8813735870195432, label="b")
    x1w1 = x1 * w1
    x1w1.label = "x1*w1"
    x2w2 = x2 * w2
    x2w2.label = "x2*w2"
    s = x1w1 + x2w2
    s.label = "x1*w1 + x2*w2"
    n = s + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    return o, dict(x1=x1, x2=x2, w1=w1, w2=w2, b=b, n=n, o=o)


def test_topological_order_of_the_neuron(engine):
    o, _ = neuron(engine)
    order = [v.label for v in topological_order(o)]
    # depth-first, operands in order, each node after its operands
    assert order == ["x1", "w1", "x1*w1", "x2", "w2", "x2*w2", "x1*w1 + x2*w2", "b", "n", "o"]


def test_topological_order_lists_shared_nodes_once_children_first(engine):
    a, b = engine(1.5, label="a"), engine(-2.0, label="b")
    c = a * b
    d = (c + a) * c.tanh() + a * a
    order = topological_order(d)
    ids = [id(v) for v in order]
    assert len(ids) == len(set(ids))
    position = {id(v): i for i, v in enumerate(order)}
    for v in order:
        for child in v._prev:
            assert position[id(child)] < position[id(v)]
    assert order[-1] is d
    assert sum(1 for v in order if v is a) == 1


def test_order_matches_the_pure_engine_backward_order(engine):
    """The tools replay backward() in this order: it must be the engine's own."""
    def program(V):
        a, b = V(0.5, label="a"), V(2.0, label="b")
        return ((a * b + b) ** 2 - a / b).sigmoid() * (a + b).log() + a.exp() ** b

    mine = [(v._op, v.data) for v in topological_order(program(engine))]
    pure_root = program(pure.Value)
    reference = [(v._op, v.data) for v in pure._topological_order(pure_root)]
    assert mine == reference


def test_deep_chain_needs_no_recursion(engine):
    x = engine(0.1)
    for _ in range(100_000):
        x = x.tanh()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        stats = graph_stats(x)
        order = topological_order(x)
    finally:
        sys.setrecursionlimit(limit)
    assert len(order) == 100_001
    assert stats.depth == 100_000
    assert stats.ops == {"tanh": 100_000}


def test_stats_of_the_neuron(engine):
    o, _ = neuron(engine)
    stats = graph_stats(o)
    # x1 w1 x2 w2 b; x1*w1, x2*w2 (*); their sum, n (+); o (tanh)
    assert stats.nodes == 10
    assert stats.leaves == 5
    assert stats.op_nodes == 5
    assert stats.ops == {"*": 2, "+": 2, "tanh": 1}
    assert list(stats.ops) == ["*", "+", "tanh"]  # most common first, ties by symbol
    assert stats.depth == 4  # o <- n <- sum <- x1*w1 <- x1
    assert stats.edges == 9  # 2 per binary op, 1 for tanh
    assert stats.parameters is None and stats.unused_parameters is None


def test_stats_see_the_ops_that_minus_and_divide_are_made_of(engine):
    a, b = engine(3.0), engine(2.0)
    c = a / b - a  # (a * b**-1) + (a * -1): the -1 is a new leaf
    stats = graph_stats(c)
    assert stats.ops == {"*": 2, "**-1": 1, "+": 1}
    assert stats.leaves == 3
    assert stats.nodes == 7
    assert stats.edges == 7
    assert stats.depth == 3  # + <- * <- **-1 <- b


def test_stats_count_shared_nodes_once_and_every_operand_link(engine):
    a, b = engine(1.0), engine(2.0)
    c = a + b
    d = c * c
    stats = graph_stats(d)
    assert (stats.nodes, stats.leaves, stats.edges, stats.depth) == (4, 2, 4, 2)


def test_stats_count_given_parameters(engine):
    o, v = neuron(engine)
    stray = engine(0.0)
    stats = graph_stats(o, parameters=[v["w1"], v["w2"], v["b"], v["b"], stray])
    assert stats.parameters == 3  # b given twice counts once
    assert stats.unused_parameters == 1
    assert "3 used, 1 not reached" in str(stats)


def test_stats_of_a_lone_leaf(engine):
    stats = graph_stats(engine(4.0))
    assert stats == GraphStats(nodes=1, leaves=1, ops={}, depth=0, edges=0)
    assert "ops: none" in str(stats)


def test_stats_str_names_the_counts(engine):
    o, _ = neuron(engine)
    text = str(graph_stats(o))
    assert "10 Values: 5 leaves, 5 ops; depth 4, 9 edges" in text
    assert "ops: * 2, + 2, tanh 1" in text


def test_non_values_are_rejected_with_a_type_error(engine):
    with pytest.raises(TypeError, match="expects a micrograd Value, not 'float'"):
        graph_stats(1.0)
    with pytest.raises(TypeError, match="not 'list'"):
        topological_order([engine(1.0)])
    with pytest.raises(TypeError, match="graph_stats parameters expects a micrograd Value, not 'int'"):
        graph_stats(engine(1.0), parameters=[3])


@pytest.mark.parametrize("k", [2, -1, 0.5, 0.1, 1 / 3, -2.5e-7, 1e300])
def test_op_code_recovers_the_exponent_exactly(engine, k):
    code, aux = op_code(engine(1.0) ** k)  # 1 ** k: defined for every k here
    assert code == graph._ops.POWC
    assert aux == float(k)


def test_apply_op_redoes_every_op_with_the_engines_operators(engine):
    a, b = engine(0.7), engine(1.3)
    for node in [a + b, a * b, a**3, a**b, (a - b).relu(), a.tanh(), a.exp(), a.log(), a.sigmoid()]:
        redone = graph.apply_op(node, list(node._prev))
        assert redone._op == node._op
        assert redone.data == node.data
