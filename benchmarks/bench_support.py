"""What the benchmark files share (kept out of conftest.py, which tests/ has too: a test file
importing ``conftest`` could get the other one)."""
from __future__ import annotations

import pytest

from micrograd.bench import workloads

CHAIN_SIZES = [10**2, 10**3, 10**4, 10**5]


def engine_param(name: str):
    return pytest.param(name, marks=pytest.mark.cython) if name.startswith("cython") else name


ENGINES = [engine_param(n) for n in ("python", "cython")]
ENGINES_AND_TAPES = [engine_param(n) for n in ("python", "cython", "python-tape", "cython-tape")]


def describe(benchmark, kit: workloads.ValueKit, workload: str, nodes: int, n=None) -> None:
    benchmark.group = workload if n is None else f"{workload} n={n}"
    benchmark.extra_info.update(engine=kit.name, workload=workload, nodes=nodes)
    if n is not None:
        benchmark.extra_info["n"] = n
