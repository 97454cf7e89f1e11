"""The one timing rule of every benchmark here: ``micrograd bench`` (worker.py in each engine's
subprocess, and the C floor, which asks for its rounds), and the pytest-benchmark suite in
``benchmarks/``.

One warm-up round, not kept, estimates how long a round takes; then as many rounds as fit in
``budget['seconds']``, within ``[min_rounds, max_rounds]``. Setup and teardown (a fresh graph
before a round, freeing it after) run outside the timing. The garbage collector stays on, as in
a user's program and in pytest-benchmark's default, but whatever the process held before is
frozen out of it (``gc.freeze``), so that its cost depends on the workload, not on what else
lives in the process.

Standard library only, and no ``micrograd`` import: it also runs in the subprocess of
Karpathy's micrograd, whose package has the same import name.
"""
from __future__ import annotations

import contextlib
import gc
import statistics
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

Budget = Dict[str, Any]  # {"seconds": float, "min_rounds": int, "max_rounds": int}
DEFAULT_BUDGET: Budget = {"seconds": 0.5, "min_rounds": 5, "max_rounds": 1000}
QUICK_BUDGET: Budget = {"seconds": 0.05, "min_rounds": 3, "max_rounds": 200}


def rounds_for(estimate: float, budget: Budget) -> int:
    """How many rounds of ``estimate`` seconds fit in the budget, within its bounds."""
    rounds = int(budget["seconds"] / max(estimate, 1e-9))
    return max(budget["min_rounds"], min(budget["max_rounds"], rounds))


def one_round(fn: Callable[[], Any], setup: Optional[Callable[[], Any]] = None,
              teardown: Optional[Callable[[], Any]] = None) -> float:
    """Seconds taken by fn(), with setup before and teardown after, untimed."""
    if setup is not None:
        setup()
    t0 = time.perf_counter()
    fn()
    t1 = time.perf_counter()
    if teardown is not None:
        teardown()
    return t1 - t0


@contextlib.contextmanager
def frozen_gc() -> Iterator[None]:
    """Collect, then keep every object alive now out of the collector's work until the end."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def measure(fn: Callable[[], Any], budget: Budget, setup: Optional[Callable[[], Any]] = None,
            teardown: Optional[Callable[[], Any]] = None) -> List[float]:
    """Seconds per round of fn(), by the rule above."""
    with frozen_gc():
        rounds = rounds_for(one_round(fn, setup, teardown), budget)
        return [one_round(fn, setup, teardown) for _ in range(rounds)]


def summary(times: List[float]) -> Dict[str, Any]:
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "rounds": len(times)}
