"""``python -m micrograd bench``: named workloads, a correctness gate before any timing, and the
same programs run by every engine this environment has (this package's two engines and their
tape replay, Karpathy's original micrograd, PyTorch, and a hand-written C floor), each in its
own subprocess.

    cli.py        the command line
    runner.py     which engines can run here; running each in its subprocess; collecting results
    worker.py     an engine's side of it (runs in the subprocess; stdlib only)
    workloads.py  the workloads, the gate, the engine adapters (stdlib only; this package's
                  engines use its nn and losses)
    toy.py        the toy suite (--suite toy): whole training steps of small networks (moons
                  MLPs, digits, a microgpt-style GPT) on our engines and in idiomatic PyTorch
    timing.py     the one timing rule, also used by benchmarks/ and the C floor (stdlib only)
    c_floor.py    compiles and runs floor.c, the C reference loops, on the engines' tapes
    report.py     ratios, targets, the text table, Markdown and JSON
    machine.py    machine metadata
    plotting.py   --plot (matplotlib)

The pytest-benchmark suite in ``benchmarks/`` times the same workloads by the same rule (see
its README).
"""
from micrograd.bench.cli import main

__all__ = ["main"]
