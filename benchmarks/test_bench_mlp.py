"""Networks: one neuron with 1,000 inputs (a wide sum), the MLP(2, [16, 16, 1]) on one point,
and the full demo training step (100 two-moons points, max-margin loss + L2 1e-4, SGD); the
demo step also with the fast-training path, micrograd.Tape (engines 'python-tape' and
'cython-tape': the graph recorded once, then replayed each step)."""
import math

import pytest

from bench_support import ENGINES, ENGINES_AND_TAPES, describe
from micrograd.bench import workloads


def nodes_of(graph):
    if graph.root is None:
        graph.forward()
    return workloads.count_nodes(graph.root)


@pytest.mark.parametrize("kit", ENGINES, indirect=True)
def test_neuron_1000(benchmark, timed, gate, kit, problem):
    gate(kit, "neuron-1000")
    graph, params = workloads.neuron_setup(kit, problem)
    describe(benchmark, kit, "neuron-1000", nodes_of(graph))
    timed(lambda: (graph.forward(), graph.backward()), teardown=graph.release)
    assert params[-1].grad > 0  # the bias: the ReLU is open


@pytest.mark.parametrize("kit", ENGINES, indirect=True)
def test_mlp_sample(benchmark, timed, gate, kit, problem):
    gate(kit, "mlp-sample")
    graph, params = workloads.mlp_setup(kit, problem)
    describe(benchmark, kit, "mlp-sample", nodes_of(graph))
    timed(lambda: (graph.forward(), graph.backward()), teardown=graph.release)
    assert any(p.grad != 0 for p in params)


@pytest.mark.parametrize("kit", ENGINES_AND_TAPES, indirect=True)
def test_demo_step(benchmark, timed, gate, kit, problem):
    gate(kit, "demo-step")
    graph, params = workloads.demo_setup(kit, problem)
    describe(benchmark, kit, "demo-step", nodes_of(graph))
    opt = kit.optimizer(params)  # micrograd.optim.SGD, as the bench command's demo step
    steps = iter(range(10**9))
    losses = []
    timed(lambda: losses.append(workloads.demo_step(graph, opt, workloads.demo_lr(next(steps)))))
    assert losses and all(math.isfinite(v) for v in losses)
