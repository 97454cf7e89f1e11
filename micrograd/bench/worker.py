"""One engine's side of ``micrograd bench``: runs in that engine's own subprocess.

    python worker.py < config.json      (the parent, micrograd/bench/runner.py, starts it)

It reads one JSON config on stdin and answers with JSON lines on stdout, one event each:
``info``, ``progress``, ``gate``, ``result``, ``memory``, ``depth_try``, ``depth_ok``,
``depth``, ``skip``, ``done``. Anything the engine itself prints goes to stderr, so stdout stays clean.

Two modes: ``time`` (the correctness gate, then the timings of the workloads whose gate passed) and
``probe`` (bytes per live node in a fresh process, then the largest chain depth that
back-propagates; a crash ends the process, which the parent reads as a failure at the depth
it was trying).

Like workloads.py and timing.py this file imports no ``micrograd`` at module level: for
Karpathy's engine the name ``micrograd`` is his package, first on this process's path.
"""
from __future__ import annotations

import gc
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

if __package__:
    from micrograd.bench import timing, toy, workloads
else:
    # Run as a script. Python put this folder first on sys.path; take it off, or its module
    # names could shadow others, and load the modules beside us by their paths instead.
    import importlib.util

    _here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == _here:
        del sys.path[0]

    def _load_beside(name: str) -> Any:
        spec = importlib.util.spec_from_file_location(f"_micrograd_bench_{name}", os.path.join(_here, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

    timing = _load_beside("timing")
    workloads = _load_beside("workloads")
    toy = _load_beside("toy")

OURS = ("python", "cython", "python-tape", "cython-tape")


class Protocol:
    """Writes events to the real stdout; print() inside engines lands on stderr instead."""

    def __init__(self) -> None:
        self.out = sys.stdout
        sys.stdout = sys.stderr

    def emit(self, event: str, **fields: Any) -> None:
        self.out.write(json.dumps({"event": event, **fields}) + "\n")
        self.out.flush()


# ---------------------------------------------------------------------------------------------
# Loading an engine


class Skip(Exception):
    """The engine is not available in this environment (with the reason)."""


def load_kit(engine: str, problem: Dict[str, Any]) -> tuple:
    """(kit, version string) for an engine; raises Skip if it cannot run here."""
    if engine in OURS:
        import micrograd

        base = engine.replace("-tape", "")
        if micrograd.BACKEND != base:
            raise Skip(f"asked for the {base} engine but micrograd loaded {micrograd.BACKEND}")
        return workloads.package_kit(engine), f"micrograd-fast {micrograd.__version__}"
    if engine == "karpathy":
        import micrograd
        from micrograd import engine as k_engine, nn as k_nn

        if hasattr(micrograd, "BACKEND"):
            raise Skip(f"the path given for Karpathy's micrograd holds this package ({micrograd.__file__})")
        return workloads.ValueKit(engine, k_engine.Value, k_nn.MLP), f"micrograd {_dist_version('micrograd')}"
    if engine in ("torch-scalar", "torch-batched"):
        try:
            import torch
        except ImportError as exc:
            raise Skip(f"PyTorch is not installed ({exc})") from None
        version = f"torch {torch.__version__}, 1 thread"
        if engine == "torch-batched":
            return workloads.TorchBatchedDemo(problem), version
        return workloads.TorchScalarKit(engine), version
    raise ValueError(f"unknown engine {engine!r}")


def _dist_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return "unknown version"


# ---------------------------------------------------------------------------------------------
# Timing (the rule is timing.py's)


def timed_runs(kit: Any, workload: str, size: Optional[int], problem: Dict[str, Any], budget: Dict[str, Any]) -> List[float]:
    """The timings of one workload on one kit."""
    if isinstance(kit, workloads.TorchBatchedDemo):
        if workload != "demo-step":
            raise ValueError(f"torch-batched runs only demo-step, not {workload}")
        k = iter(range(10**9))
        return timing.measure(lambda: kit.step(workloads.demo_lr(next(k))), budget)
    if workload == "node-creation":
        a, b = kit.param(workloads.CHAIN_A), kit.param(workloads.CHAIN_B)
        n = workloads.NODE_CREATION_OPS
        return timing.measure(lambda: workloads.node_creation(a, b, n), budget)
    if workload == "chain-forward":
        graph, _ = workloads.chain_setup(kit, size)
        return timing.measure(graph.forward, budget, teardown=graph.release)
    if workload == "chain-backward":
        graph, _ = workloads.chain_setup(kit, size)
        return timing.measure(graph.backward, budget, setup=graph.forward, teardown=graph.release)
    if workload == "neuron-1000":
        graph, _ = workloads.neuron_setup(kit, problem)
        return timing.measure(lambda: (graph.forward(), graph.backward()), budget, teardown=graph.release)
    if workload == "mlp-sample":
        graph, _ = workloads.mlp_setup(kit, problem)
        return timing.measure(lambda: (graph.forward(), graph.backward()), budget, teardown=graph.release)
    if workload == "demo-step":
        graph, params = workloads.demo_setup(kit, problem)
        opt = kit.optimizer(params)  # ours: micrograd.optim.SGD; the peers: the demo's loops
        k = iter(range(10**9))
        return timing.measure(lambda: workloads.demo_step(graph, opt, workloads.demo_lr(next(k))), budget)
    raise ValueError(f"unknown workload {workload!r}")


def run_gates(proto: Protocol, kit: Any, config: Dict[str, Any], seconds: Optional[Dict[str, List[float]]] = None) -> Dict[str, str]:
    """Each gate this engine's workloads need, before any timing: {gate: why it failed}.
    ``seconds`` gets the times of each toy gate's two steps (its workloads are estimated from them)."""
    failed: Dict[str, str] = {}
    for name in config["gates"]:
        try:
            if name in toy.GATES:
                values = toy.gate(config["engine"], name, config["problem"]["toy"], seconds.setdefault(name, []) if seconds is not None else None)
            elif isinstance(kit, workloads.TorchBatchedDemo):
                values = kit.gate()
            else:
                values = workloads.gate(kit, name, config["problem"])
            verdict = workloads.compare(values, config["reference"][name], config["tolerance"])
        except Exception as exc:  # RecursionError too: it is one
            verdict = {"passed": False, "max_abs_diff": None, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        proto.emit("gate", gate=name, **verdict)
        if not verdict["passed"]:
            failed[name] = verdict.get("error") or f"wrong numbers (max abs diff {verdict['max_abs_diff']!r})"
    return failed


def run_timings(proto: Protocol, kit: Any, config: Dict[str, Any]) -> None:
    """Times every run whose gate passed; a workload whose gate failed is reported, not timed."""
    gate_seconds: Dict[str, List[float]] = {}
    failed = run_gates(proto, kit, config, gate_seconds)
    broken: Dict[str, str] = {}  # workload -> error at a smaller size: larger sizes are skipped
    for workload, size in config["runs"]:
        label = workload if size is None else f"{workload} n={size:,}"
        gate_name = toy.TOY[workload].gate if workload in toy.TOY else workloads.gate_for(workload)
        if gate_name in failed:
            proto.emit("result", workload=workload, size=size, gate_failed=True,
                       error=f"not timed: failed the correctness gate ({failed[gate_name]})")
            continue
        if workload in broken:
            proto.emit("result", workload=workload, size=size, error=f"not run: {broken[workload]} at a smaller n")
            continue
        if workload in toy.TOY:
            run_toy(proto, workload, config, gate_seconds[gate_name])
            continue
        proto.emit("progress", what=label)
        try:
            times = timed_runs(kit, workload, size, config["problem"], config["budget"])
        except Exception as exc:  # RecursionError too: it is one
            broken[workload] = type(exc).__name__
            proto.emit("result", workload=workload, size=size, error=f"{type(exc).__name__}: {str(exc)[:200]}")
            continue
        finally:
            gc.collect()
        proto.emit("result", workload=workload, size=size, times=times, **timing.summary(times))


def run_toy(proto: Protocol, workload: str, config: Dict[str, Any], gate_seconds: List[float]) -> None:
    """Times one toy workload's training step, unless setting it up and its fewest rounds would
    take longer than the cap (estimated from the gate: two steps on a smaller instance, scaled
    up): then says so, with the estimate."""
    data, budget = config["problem"]["toy"], config["budget"]
    rounds = budget["min_rounds"] + 1  # and the warm-up
    step_s, total_s = toy.estimate(workload, data, gate_seconds, rounds)
    # Only this package's engines can be that slow (torch's gate time is mostly its start-up).
    if config["engine"] in OURS and total_s > config["toy_cap_s"]:
        proto.emit("result", workload=workload, size=None, not_run=True, estimate_s=step_s,
                   error=f"not run: est. {step_s:.3g} s a step, {total_s:.3g} s to set up and run {rounds} "
                         f"(from its gate), over the limit of {config['toy_cap_s']:g} s")
        return
    proto.emit("progress", what=f"{workload}: setting up")
    try:
        step = toy.make_step(config["engine"], workload, data)
        proto.emit("progress", what=workload)
        times = timing.measure(step.step, budget)
        nodes = step.nodes()
    except Exception as exc:
        proto.emit("result", workload=workload, size=None, error=f"{type(exc).__name__}: {str(exc)[:200]}")
        return
    finally:
        gc.collect()
    proto.emit("result", workload=workload, size=None, nodes=nodes, times=times, **timing.summary(times))


# ---------------------------------------------------------------------------------------------
# Memory and depth


def rss_bytes() -> Optional[int]:
    """Resident set size now (Linux /proc), else the peak (getrusage), else None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    except Exception:
        return None


def reset_peak_rss() -> bool:
    """Start a new high-water mark of the resident set (Linux >= 4.0), so that the peak of one
    step can be read after it; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> Optional[int]:
    """The resident set's high-water mark since the last reset_peak_rss() (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def settle() -> None:
    """Free what can be freed before reading the resident set: the cyclic garbage, and (glibc)
    the heap memory malloc keeps after a free, so that only live memory is counted."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass  # not glibc: freed memory may stay counted (an overestimate)


def measure_memory(proto: Protocol, kit: Any, n: int, nodes: int) -> None:
    """Bytes per live node of a chain of n ops (``nodes`` nodes in all), two ways: the growth of
    the resident set (everything, in a fresh process) and tracemalloc's count of Python heap
    allocations (exact, but blind to memory taken with plain malloc, as torch and a tape do).
    For a tape: the resident set's growth when it records that chain and replays it once
    (replay touches every array), its peak while recording (what capture holds on the way), and
    the size the tape reports for its own arrays."""
    params = [kit.param(workloads.CHAIN_X0), kit.param(workloads.CHAIN_A), kit.param(workloads.CHAIN_B)]
    settle()
    r0 = rss_bytes()
    root = workloads.chain(*params, n)
    settle()
    r1 = rss_bytes()
    result: Dict[str, Any] = {"n": n, "nodes": nodes}
    if r0 is not None and r1 is not None:
        result["rss_per_node"] = (r1 - r0) / nodes
    if kit.Tape is not None:
        peak_known = reset_peak_rss()
        tape = kit.Tape(root)
        peak = peak_rss_bytes() if peak_known else None
        tape.forward()
        tape.backward()
        settle()
        r2 = rss_bytes()
        recorded = len(tape)
        if r2 is not None and r1 is not None:
            result["tape_rss_per_node"] = (r2 - r1) / recorded
        if peak is not None and r1 is not None:
            result["tape_capture_peak_per_node"] = (peak - r1) / recorded
        result["tape_nbytes_per_node"] = tape.nbytes / recorded
        del tape
    del root
    settle()
    if not isinstance(kit, workloads.TorchScalarKit):
        import tracemalloc

        tracemalloc.start()
        t0 = tracemalloc.get_traced_memory()[0]
        alive = [workloads.chain(*params, n)]  # held until the count is read
        result["traced_per_node"] = (tracemalloc.get_traced_memory()[0] - t0) / nodes
        tracemalloc.stop()
        alive.clear()
    proto.emit("memory", **result)


def try_depth(kit: Any, n: int) -> Optional[str]:
    """None if backward through a chain n deep works and gives the right gradient d(root)/dx
    = b ** (number of multiplications), else what went wrong."""
    graph, params = workloads.chain_setup(kit, n)
    try:
        graph.forward()
        graph.backward()
        got = kit.grad(params[0])
    except Exception as exc:  # RecursionError too: it is one
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    finally:
        graph.release()
        del graph
    want = workloads.CHAIN_B ** ((n + 1) // 2)
    if not abs(got - want) <= 1e-6 * abs(want):
        return f"wrong gradient: {got!r}, expected {want!r}"
    return None


def probe_depth(proto: Protocol, kit: Any, ladder: List[int], cap_s: float) -> None:
    """Climb the ladder of depths until one fails or the next would pass the time cap; after
    an exception, bisect between the last depth that worked and the one that failed."""
    start, last_ok, last_s = time.perf_counter(), 0, 0.0
    for n in ladder:
        elapsed = time.perf_counter() - start
        if last_ok and elapsed + last_s * n / last_ok > cap_s:
            proto.emit("depth", largest_ok=last_ok, capped=True, next=n)
            return
        proto.emit("depth_try", n=n)  # if the process dies now, it died at depth n
        t0 = time.perf_counter()
        error = try_depth(kit, n)
        if error is None:
            last_ok, last_s = n, time.perf_counter() - t0
            proto.emit("depth_ok", n=n, seconds=last_s)
            gc.collect()
            continue
        lo, hi = last_ok, n
        while hi - lo > max(1, lo // 100) and hi <= 200_000:  # small depths only: cheap
            mid = (lo + hi) // 2
            proto.emit("depth_try", n=mid)
            if try_depth(kit, mid) is None:
                proto.emit("depth_ok", n=mid)
                lo = mid
            else:
                hi = mid
        proto.emit("depth", largest_ok=lo, first_failure=hi, error=error, capped=False)
        return
    proto.emit("depth", largest_ok=last_ok, capped=False)


# ---------------------------------------------------------------------------------------------


def main() -> int:
    proto = Protocol()
    config = json.loads(sys.stdin.read())
    engine = config["engine"]
    try:
        kit, version = load_kit(engine, config["problem"])
    except Skip as exc:
        proto.emit("skip", reason=str(exc))
        return 0
    proto.emit("info", engine=engine, version=version, python=sys.version.split()[0])
    if config["mode"] == "time":
        run_timings(proto, kit, config)
    elif isinstance(kit, workloads.ValueKit):  # probe: chains need a scalar engine
        proto.emit("progress", what="bytes per live node")
        measure_memory(proto, kit, config["memory_n"], config["memory_nodes"])
        proto.emit("progress", what="largest chain depth")
        probe_depth(proto, kit, config["depth_ladder"], config["depth_cap_s"])
    proto.emit("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
