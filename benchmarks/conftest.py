"""The pytest-benchmark suite: the workloads of ``python -m micrograd bench``
(micrograd/bench/workloads.py) on this package's engines, in this process.

The engine is a string parameter ('python', 'cython', and for the replayed workloads
'python-tape', 'cython-tape'); each workload (and chain size) is its own benchmark group, so
the table shows the engines side by side. Before a workload is timed on an engine, its output
and gradients must equal the pure engine's exactly (the correctness gate). Graph sizes are in
``extra_info``. See benchmarks/README.md.
"""
from __future__ import annotations

import pytest

from micrograd import engine as engine_module
from micrograd.bench import timing, workloads
from micrograd.datasets import make_moons


def pytest_report_header(config):
    return f"micrograd benchmarks: engines loaded {', '.join(engine_module.ENGINES)}"


@pytest.fixture(scope="session")
def problem():
    X, y = make_moons(n_samples=workloads.DEMO_SAMPLES, noise=0.1, seed=workloads.SEED)
    return workloads.make_problem(X, y)


@pytest.fixture(scope="session")
def gate_cache():
    return {}


@pytest.fixture
def kit(request):
    """The engine under test as a workload kit (its own nn.MLP), e.g. 'cython' or 'cython-tape'."""
    name = request.param
    if name.replace("-tape", "") not in engine_module.ENGINES:
        if engine_module.flag("MICROGRAD_REQUIRE_EXTENSION"):
            pytest.fail(f"compiled engine required but not loaded: {engine_module.EXTENSION_ERROR}")
        pytest.skip(f"compiled engine not built here: {engine_module.EXTENSION_ERROR}")
    return workloads.package_kit(name)


@pytest.fixture
def gate(problem, gate_cache):
    """gate(kit, workload): fails the benchmark unless the engine reproduces the pure engine's
    output and gradients exactly (checked once per engine and gate in a session)."""

    def check(kit: workloads.ValueKit, workload: str) -> None:
        name = workloads.gate_for(workload)
        if ("reference", name) not in gate_cache:
            gate_cache["reference", name] = workloads.gate(workloads.package_kit("python"), name, problem)
        if (kit.name, name) not in gate_cache:
            got = workloads.gate(kit, name, problem)
            gate_cache[kit.name, name] = workloads.compare(got, gate_cache["reference", name], 0.0)
        verdict = gate_cache[kit.name, name]
        if not verdict["passed"]:
            pytest.fail(f"{kit.name} fails the correctness gate of {workload}: {verdict}")

    return check


@pytest.fixture
def timed(benchmark):
    """timed(fn, setup=None, teardown=None): benchmark.pedantic with as many rounds as
    ``micrograd bench`` would time (micrograd/bench/timing.py: one warm-up round estimates a
    round, the default budget gives the rounds; the objects the process already holds,
    pytest's own and other tests', frozen out of the garbage collector meanwhile)."""

    def run(fn, setup=None, teardown=None):
        if benchmark.disabled:
            return benchmark.pedantic(fn, setup=setup, teardown=teardown, rounds=1)
        with timing.frozen_gc():
            rounds = timing.rounds_for(timing.one_round(fn, setup, teardown), timing.DEFAULT_BUDGET)
            return benchmark.pedantic(fn, setup=setup, teardown=teardown, rounds=rounds)

    return run
