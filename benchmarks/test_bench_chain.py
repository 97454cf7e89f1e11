"""A long chain x = x*b + a of n ops: building it (forward) and back-propagating through it
(backward, on a freshly built graph each round), n from 10^2 to 10^5: the cost per node and how
it grows with the graph."""
import pytest

from bench_support import CHAIN_SIZES, ENGINES_AND_TAPES, describe
from micrograd.bench import workloads


@pytest.mark.parametrize("n", CHAIN_SIZES)
@pytest.mark.parametrize("kit", ENGINES_AND_TAPES, indirect=True)
def test_chain_forward(benchmark, timed, gate, kit, n):
    gate(kit, "chain-forward")
    graph, params = workloads.chain_setup(kit, n)
    graph.forward()
    assert graph.value() > workloads.CHAIN_X0  # the chain was built (x*b + a grows from 0.5)
    describe(benchmark, kit, "chain-forward", workloads.count_nodes(graph.root), n)
    timed(graph.forward, teardown=graph.release)


@pytest.mark.parametrize("n", CHAIN_SIZES)
@pytest.mark.parametrize("kit", ENGINES_AND_TAPES, indirect=True)
def test_chain_backward(benchmark, timed, gate, kit, n):
    gate(kit, "chain-backward")
    graph, params = workloads.chain_setup(kit, n)
    graph.forward()
    describe(benchmark, kit, "chain-backward", workloads.count_nodes(graph.root), n)
    timed(graph.backward, setup=graph.forward, teardown=graph.release)
    assert params[0].grad > 0  # d(root)/dx = b ** (n/2) > 0, added up over the rounds
