"""The toy suite of ``python -m micrograd bench --suite toy`` (micrograd/bench/toy.py): one whole
training step (forward, zero_grad, backward, optimizer update) of two-moons MLPs of width 16, 64
and 256, a digits MLP(64, [32, 10]) with cross-entropy on a minibatch of 32 and on the full
batch, and the microgpt-style GPT with Adam; eager and replayed by micrograd.Tape.

moons-64 and the big graphs (moons-256: 13.5M nodes, digits-full: 8.8M) run on the compiled
engine only: a pure-engine step there takes seconds to tens of seconds (the bench command times
or estimates them). A smoke run (``--benchmark-disable``) checks the big workloads' gates and
skips their full-size steps, which take about 25 s to build.
Before timing, the workload's gate (two steps on a smaller instance) must equal the pure
engine's numbers bit for bit (the pure tape's for a replayed digits step: see
toy.TAPE_REFERENCE)."""
import math

import pytest

from micrograd import engine as engine_module
from micrograd.bench import toy, workloads
from micrograd.datasets import make_moons

SMALL = ["moons-16", "digits-32", "gpt-16"]  # every engine
MEDIUM = ["moons-64"]  # 884k nodes: the compiled engine (a pure step takes seconds)
BIG = ["moons-256", "digits-full"]  # 13.5M, 8.8M nodes: timed only when benchmarking (see below)
OURS = ["python", "cython", "python-tape", "cython-tape"]


def case(engine, workload):
    marks = [pytest.mark.cython] if engine.startswith("cython") else []
    return pytest.param(engine, workload, id=f"{workload}-{engine}", marks=marks)


CASES = [case(e, w) for w in SMALL for e in OURS] + [case(e, w) for w in MEDIUM + BIG for e in ("cython", "cython-tape")]


@pytest.fixture(scope="module")
def toy_data():
    X, y = make_moons(n_samples=workloads.DEMO_SAMPLES, noise=0.1, seed=workloads.SEED)
    return toy.problem(list(toy.TOY), workloads.make_problem(X, y))


@pytest.fixture(scope="module")
def references():
    return {}


def check_gate(engine, workload, toy_data, references):
    gate = toy.TOY[workload].gate
    ref_engine = toy.TAPE_REFERENCE.get(gate, "python") if engine.endswith("-tape") else "python"
    if (ref_engine, gate) not in references:
        references[ref_engine, gate] = toy.gate(ref_engine, gate, toy_data)
    verdict = workloads.compare(toy.gate(engine, gate, toy_data), references[ref_engine, gate], 0.0)
    if not verdict["passed"]:
        pytest.fail(f"{engine} fails the correctness gate of {workload}: {verdict}")


@pytest.mark.parametrize("engine, workload", CASES)
def test_toy_step(benchmark, timed, engine, workload, toy_data, references):
    if engine.replace("-tape", "") not in engine_module.ENGINES:
        if engine_module.flag("MICROGRAD_REQUIRE_EXTENSION"):
            pytest.fail(f"compiled engine required but not loaded: {engine_module.EXTENSION_ERROR}")
        pytest.skip(f"compiled engine not built here: {engine_module.EXTENSION_ERROR}")
    check_gate(engine, workload, toy_data, references)
    if benchmark.disabled and workload in BIG:
        # A smoke run checks the gate (above) but does not build the graph of millions of
        # nodes (about 25 s for the four cases); timing runs do.
        pytest.skip(f"{workload}: gate passed; the full-size step runs only when benchmarking (without --benchmark-disable)")
    step = toy.make_step(engine, workload, toy_data)
    benchmark.group = f"toy {workload}"
    benchmark.extra_info.update(engine=engine, workload=workload, nodes=step.nodes())
    losses = []
    timed(lambda: losses.append(step.step()))
    assert losses and all(math.isfinite(v) for v in losses)
