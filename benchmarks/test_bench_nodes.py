"""Node creation: binary ops in a loop, results dropped at once (the cost of making and freeing
one node, per op)."""
import pytest

from bench_support import ENGINES, describe
from micrograd.bench import workloads


@pytest.mark.parametrize("kit", ENGINES, indirect=True)
def test_node_creation(benchmark, timed, gate, kit):
    gate(kit, "node-creation")
    a, b = kit.param(workloads.CHAIN_A), kit.param(workloads.CHAIN_B)
    n = workloads.NODE_CREATION_OPS
    describe(benchmark, kit, "node-creation", n)
    benchmark.extra_info["ops"] = n
    timed(lambda: workloads.node_creation(a, b, n))
    assert (a + b).data == workloads.CHAIN_A + workloads.CHAIN_B
