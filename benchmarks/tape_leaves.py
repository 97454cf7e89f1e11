"""What Tape's ``params`` and ``constants`` save: one training step of toy workloads on the
compiled tape, recorded three ways from one graph.

    python benchmarks/tape_leaves.py [WORKLOAD ...] [--rounds 7] [--steps 20]

- ``Tape(loss)``: every leaf read by forward and given a grad by backward (the default);
- ``params=``: backward writes the parameters' grads only;
- ``params= constants=``: and forward reads the dataset's input Values once, at capture (what
  ``micrograd bench --suite toy`` times).

The three tapes replay the same graph and train the same parameters; every round times
``--steps`` steps of each, in turn (so a noisy neighbour hits all alike), and the medians of
the rounds are printed with their ratio to the default's. The parameters' grads of the three
are compared bit for bit first. Workloads: micrograd.bench.toy's MLPs (default digits-full
and moons-256, the two whose steps gain most). Not a test: run it by hand.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def tapes(name: str) -> tuple:
    """(the workload's step, {label: tape}) for the three ways of recording its graph."""
    from micrograd.bench import toy, workloads
    from micrograd.datasets import make_moons
    from micrograd.tape import Tape

    X, y = make_moons(n_samples=workloads.DEMO_SAMPLES, noise=0.1, seed=workloads.SEED)
    data = toy.problem([name], workloads.make_problem(X, y))
    step = toy.make_step("cython-tape", name, data)
    root = step.tape.root
    return step, {
        "Tape(loss)": Tape(root),
        "params=": Tape(root, params=step.params),
        "params= constants=": step.tape,
    }


def run_steps(step, tape, n: int) -> float:
    """Seconds per training step, over n steps of this tape."""
    start = time.perf_counter()
    for _ in range(n):
        tape.forward()
        step.opt.zero_grad()
        tape.backward()
        step.opt.step()
    return (time.perf_counter() - start) / n


def same_grads(step, variants: dict) -> bool:
    """Do the tapes give the parameters the same grads, bit for bit (at the same weights)?"""
    seen = []
    for tape in variants.values():
        tape.forward()
        step.opt.zero_grad()
        tape.backward()
        seen.append([p.grad.hex() for p in step.params])
    return all(g == seen[0] for g in seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workloads", nargs="*", default=["digits-full", "moons-256"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    from micrograd.engine import ENGINES

    if "cython" not in ENGINES:
        sys.exit("the compiled engine is not built here: this compares compiled tapes")
    for name in args.workloads:
        step, variants = tapes(name)
        if not same_grads(step, variants):
            sys.exit(f"{name}: the three tapes give different grads")
        times: dict = {label: [] for label in variants}
        for _ in range(args.rounds):
            for label, tape in variants.items():
                times[label].append(run_steps(step, tape, args.steps))
        base = statistics.median(times["Tape(loss)"])
        print(f"{name} ({len(step.tape):,} nodes, {len(step.tape.leaves):,} leaves, "
              f"{len(step.params):,} params, {len(step.dataset):,} dataset inputs), median of {args.rounds} rounds:")
        for label, seconds in times.items():
            median = statistics.median(seconds)
            print(f"  {label:20s} {median * 1e6:9.0f} us   {median / base:5.2f}x")


if __name__ == "__main__":
    main()
