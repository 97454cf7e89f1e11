"""The parent side of ``micrograd bench``: which engines this environment offers, each run in its
own subprocess (worker.py, or the compiled C floor), and everything they report gathered into
one plain dict (the JSON the command writes)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from micrograd._cli import TORCH_HINT
from micrograd.bench import c_floor, timing, toy, workloads
from micrograd.progress import Progress

ENGINES = {  # name -> what it is; the order is the order of every table
    "python": "this package, pure-Python engine (MICROGRAD_PUREPYTHON=1)",
    "cython": "this package, compiled (Cython) engine",
    "python-tape": "pure engine, graph recorded once and replayed (micrograd.Tape)",
    "cython-tape": "compiled engine, graph recorded once and replayed (micrograd.Tape)",
    "karpathy": "Karpathy's original micrograd 0.1.0 from PyPI",
    "torch-scalar": "PyTorch, 0-d float64 tensors as the nodes, 1 thread",
    "torch-batched": "PyTorch as one would write it: float64 batched tensors (the toy suite: nn.Linear, torch.optim), 1 thread",
    "c-tape": "hand-written C loop over the same scalar tape (the floor for a replay)",
    "c-dense": "hand-written C over dense arrays (the floor for the demo step)",
}
OURS = ("python", "cython", "python-tape", "cython-tape")
# The suites: "core" times the engines on graphs (workloads.py), "toy" whole training steps of
# small networks against PyTorch (toy.py).
SUITES = {"core": tuple(workloads.WORKLOADS), "toy": tuple(toy.TOY)}
WORKLOAD_ABOUT = {**workloads.WORKLOADS, **{name: t.about for name, t in toy.TOY.items()}}
ALL_WORKLOADS = tuple(WORKLOAD_ABOUT)
QUICK_WORKLOADS = SUITES["core"] + toy.QUICK  # --quick: the toy suite's smallest workloads only
WORKLOADS_OF = {
    "python-tape": ("chain-forward", "chain-backward", "demo-step") + SUITES["toy"],
    "cython-tape": ("chain-forward", "chain-backward", "demo-step") + SUITES["toy"],
    "karpathy": SUITES["core"],
    "torch-scalar": SUITES["core"],
    "torch-batched": ("demo-step",) + SUITES["toy"],
    "c-tape": ("chain-forward", "chain-backward", "demo-step"),
    "c-dense": ("demo-step",),
}
PEER_TOLERANCE = 1e-9  # relative, for engines that sum in another order; ours must match exactly
KARPATHY_ENV = "MICROGRAD_BENCH_KARPATHY"
KARPATHY_PIN = "micrograd==0.1.0"
TORCH_PIN = toy.TORCH_PIN


@dataclass
class Config:
    quick: bool = False
    engines: List[str] = field(default_factory=lambda: list(ENGINES))
    workloads: List[str] = field(default_factory=lambda: list(ALL_WORKLOADS))
    sizes: List[int] = field(default_factory=lambda: [10**2, 10**3, 10**4, 10**5])
    budget: Dict[str, Any] = field(default_factory=lambda: dict(timing.DEFAULT_BUDGET))
    memory_n: int = 300_000
    depth_ladder: List[int] = field(default_factory=lambda: [10**2, 10**3, 10**4, 10**5, 10**6])
    depth_cap_s: float = 30.0
    timeout_s: float = 900.0
    probes: bool = True
    karpathy_path: Optional[str] = None
    # A toy workload whose rounds would take longer than this, estimated from its gate's speed,
    # is not run (the pure engine at the biggest sizes): the report gives the estimate instead.
    toy_cap_s: float = 60.0

    @classmethod
    def quick_config(cls, **overrides: Any) -> Config:
        """Under a minute in all: smaller graphs, a twentieth of a second per measurement."""
        base = dict(
            quick=True,
            sizes=[10**2, 10**3, 10**4],
            budget=dict(timing.QUICK_BUDGET),
            memory_n=100_000,
            depth_ladder=[10**2, 10**3, 10**4, 10**5],
            depth_cap_s=4.0,
            timeout_s=120.0,
            workloads=list(QUICK_WORKLOADS),
            toy_cap_s=10.0,
        )
        base.update(overrides)
        return cls(**base)


# ---------------------------------------------------------------------------------------------
# Where the peers are


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "micrograd-bench")


def karpathy_default_dir() -> str:
    return os.path.join(cache_dir(), "karpathy-micrograd-0.1.0")


def is_karpathy_dir(path: str) -> bool:
    """A --target install of Karpathy's micrograd (and not this package)."""
    pkg = os.path.join(path, "micrograd")
    return os.path.isfile(os.path.join(pkg, "engine.py")) and not os.path.exists(os.path.join(pkg, "pure.py"))


def karpathy_how_to() -> str:
    return (
        f"install it beside this package, not over it (same import name): "
        f"`pip install --target DIR {KARPATHY_PIN}`, then pass `--karpathy-path DIR` or set {KARPATHY_ENV}=DIR; "
        f"or run with --install-peers (installs into {karpathy_default_dir()})"
    )


def find_karpathy(explicit: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """(directory, None) where Karpathy's micrograd is, else (None, why not and how to get it)."""
    for origin, path in (("--karpathy-path", explicit), (KARPATHY_ENV, os.environ.get(KARPATHY_ENV))):
        if path:
            if is_karpathy_dir(path):
                return os.path.abspath(path), None
            return None, f"{origin} {path} holds no Karpathy micrograd (no micrograd/engine.py); {karpathy_how_to()}"
    if is_karpathy_dir(karpathy_default_dir()):
        return karpathy_default_dir(), None
    return None, f"Karpathy's micrograd 0.1.0 not found: {karpathy_how_to()}"


def install_karpathy(target: Optional[str] = None) -> str:
    """pip install --target the cache dir (or target); returns the directory."""
    target = target or karpathy_default_dir()
    os.makedirs(target, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target, KARPATHY_PIN]
    subprocess.run(cmd, check=True)
    return target


def torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def availability(engine: str, config: Config) -> Optional[str]:
    """None if the engine can run here, else why not and how to make it run."""
    from micrograd import engine as engine_module

    if engine in ("cython", "cython-tape") and "cython" not in engine_module.ENGINES:
        from micrograd._diagnose import missing_extension_reason

        return missing_extension_reason(engine_module.EXTENSION_ERROR)
    if engine == "karpathy":
        return find_karpathy(config.karpathy_path)[1]
    if engine.startswith("torch") and not torch_available():
        return f"PyTorch is not installed: {TORCH_HINT}"
    if engine.startswith("c-") and c_floor.find_compiler() is None:
        return "no C compiler found: install gcc or clang, or set CC"
    return None


# ---------------------------------------------------------------------------------------------
# Running


def gate_status(entry: Dict[str, Any]) -> str:
    """ok; partial (some gates failed: those workloads were not timed); failed (every gate
    failed); or the status the run already set (error, skipped)."""
    if entry["status"] != "ok":
        return entry["status"]
    passed = [v["passed"] for v in entry["gates"].values()]
    if passed and not any(passed):
        return "failed"
    return "partial" if not all(passed) else "ok"


ALL_GATES = workloads.GATES + toy.GATES


def gate_of(workload: str) -> str:
    """The gate that vouches for a workload."""
    return toy.TOY[workload].gate if workload in toy.TOY else workloads.gate_for(workload)


def workloads_of(engine: str, config: Config) -> List[str]:
    return [w for w in config.workloads if w in WORKLOADS_OF.get(engine, ALL_WORKLOADS)]


def runs_of(engine: str, config: Config) -> List[Tuple[str, Optional[int]]]:
    return [(w, n) for w in workloads_of(engine, config) for n in (config.sizes if w in workloads.SIZED else [None])]


def project_root() -> str:
    """The folder holding this micrograd package (put first on our engines' path)."""
    import micrograd

    return os.path.dirname(os.path.dirname(os.path.abspath(micrograd.__file__)))


def child_env(engine: str, karpathy_dir: Optional[str]) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MICROGRAD_PUREPYTHON", "MICROGRAD_REQUIRE_EXTENSION")}
    first = karpathy_dir if engine == "karpathy" else project_root()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (first, os.environ.get("PYTHONPATH", "")) if p)
    if engine.startswith("python"):
        env["MICROGRAD_PUREPYTHON"] = "1"
    elif engine.startswith("cython"):
        env["MICROGRAD_REQUIRE_EXTENSION"] = "1"
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = "1"  # one thread for every engine, as the scalar engines have
    return env


class Bench:
    """One run of the benchmark: prepare() the problem and the reference numbers, then run()."""

    def __init__(self, config: Config, progress: Optional[Progress] = None) -> None:
        self.config = config
        self.progress = progress or Progress(enabled=False)
        self.engines: Dict[str, Dict[str, Any]] = {}
        self.results: List[Dict[str, Any]] = []
        self.workdir: Optional[str] = None
        self.floor_exe: Optional[str] = None

    # -- the problem, the reference (the pure engine, in this process) and the node counts -----
    def prepare(self) -> None:
        from micrograd.datasets import make_moons

        self.progress.update("reference: the pure engine's numbers for the correctness gate")
        X, y = make_moons(n_samples=workloads.DEMO_SAMPLES, noise=0.1, seed=workloads.SEED)
        self.problem = workloads.make_problem(X, y)
        toys = [w for w in self.config.workloads if w in toy.TOY]
        if toys:
            self.problem["toy"] = toy.problem(toys, self.problem)
        ref = workloads.package_kit("python")
        needed = {gate_of(w) for w in self.config.workloads}
        self.reference = {g: workloads.gate(ref, g, self.problem) for g in workloads.GATES if g in needed}
        for g in toy.GATES:
            if g in needed:
                self.progress.update(f"reference: the pure engine's numbers for the correctness gate ({g})")
                self.reference[g] = toy.gate("python", g, self.problem["toy"])
        # where the tape's reference is the pure tape (see toy.TAPE_REFERENCE)
        tapes = any(e.endswith("-tape") for e in self.config.engines)
        self.tape_reference = {
            g: toy.gate(engine, g, self.problem["toy"]) for g, engine in toy.TAPE_REFERENCE.items() if g in needed and tapes
        }
        self.progress.update("counting graph nodes")
        self.nodes: Dict[str, int] = {"node-creation": 2 * (workloads.NODE_CREATION_OPS // 2)}
        setups = {"neuron-1000": workloads.neuron_setup, "mlp-sample": workloads.mlp_setup, "demo-step": workloads.demo_setup}
        for name, setup in setups.items():
            if name in self.config.workloads:
                graph, _ = setup(ref, self.problem)
                graph.forward()
                self.nodes[name] = workloads.count_nodes(graph.root)
        chains = set(self.config.sizes) if any(w in workloads.SIZED for w in self.config.workloads) else set()
        for n in sorted(chains | ({self.config.memory_n} if self.probing() else set())):
            self.nodes[f"chain:{n}"] = self.chain_nodes(ref, n)

    def probing(self) -> bool:
        """Memory and depth are probed on chains: when asked, and when the run has core workloads."""
        return self.config.probes and any(w in SUITES["core"] for w in self.config.workloads)

    @staticmethod
    def chain_nodes(kit: workloads.ValueKit, n: int) -> int:
        graph, _ = workloads.chain_setup(kit, n)
        graph.forward()
        return workloads.count_nodes(graph.root)

    def node_count(self, workload: str, size: Optional[int]) -> int:
        return self.nodes[f"chain:{size}"] if size is not None else self.nodes[workload]

    # -- the engines -------------------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        self.prepare()
        started = time.time()
        try:
            for i, engine in enumerate(self.config.engines, 1):
                self.step = f"[{i}/{len(self.config.engines)}] {engine}"
                entry = self.engines[engine] = {"about": ENGINES[engine], "status": "ok", "gates": {}}
                reason = availability(engine, self.config)
                if reason:
                    entry.update(status="skipped", reason=reason)
                    self.progress.note(f"skipped {engine}: {reason}")
                    continue
                entry["tolerance"] = 0.0 if engine in OURS else PEER_TOLERANCE
                try:
                    self.run_engine(engine, entry)
                except Exception as exc:  # one engine's trouble must not lose the others' results
                    entry.update(status="error", reason=f"{type(exc).__name__}: {exc}")
                    self.progress.note(f"{engine}: {entry['reason']}")
                entry["status"] = gate_status(entry)
            self.toy_nodes()
        finally:
            self.progress.clear()
            if self.workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
        return {"engines": self.engines, "results": self.results, "toy_data": self.toy_data(),
                "seconds": time.time() - started}

    def toy_data(self) -> Dict[str, str]:
        """Where the toy suite's data came from (the report says it beside the table)."""
        data = self.problem.get("toy", {})
        out = {}
        if "digits" in data:
            out["digits"] = data["digits"]["source"]
        if "gpt" in data:
            out["gpt"] = (f"{len(data['gpt']['docs'])} generated names of 3-12 letters (micrograd.bench.toy.gpt_docs), "
                          "one per step")
        return out

    def run_engine(self, engine: str, entry: Dict[str, Any]) -> None:
        if engine.startswith("c-"):
            self.run_floor(engine, entry)
            return
        self.run_worker(engine, entry, "time")
        chain_ok = entry["gates"].get("chain", {"passed": True})["passed"]
        if self.probing() and entry["status"] == "ok" and chain_ok and engine != "torch-batched":
            self.run_worker(engine, entry, "probe")

    def add_result(self, engine: str, workload: str, size: Optional[int], **fields: Any) -> None:
        # a toy workload's graph is counted by the engines that build it (see toy_nodes)
        nodes = fields.pop("nodes", None) if workload in toy.TOY else self.node_count(workload, size)
        row = {"workload": workload, "size": size, "engine": engine, "nodes": nodes, **fields}
        if "median" in fields and nodes:
            row["ns_per_node"] = fields["median"] / nodes * 1e9
        self.results.append(row)

    def toy_nodes(self) -> None:
        """One node count per toy workload, on all its rows: a tape's count (the graph it replays;
        for gpt-16 the whole window), else an eager engine's (it counts only graphs small enough
        to walk)."""
        for workload in toy.TOY:
            rows = [r for r in self.results if r["workload"] == workload]
            counts = [r["nodes"] for r in rows if r["nodes"] and r["engine"].endswith("-tape")]
            counts += [r["nodes"] for r in rows if r["nodes"]]
            for r in rows:
                r["nodes"] = counts[0] if counts else None
                if "median" in r and r["nodes"]:
                    r["ns_per_node"] = r["median"] / r["nodes"] * 1e9

    def config_for(self, engine: str, mode: str) -> Dict[str, Any]:
        gates = sorted({gate_of(w) for w in workloads_of(engine, self.config)}, key=ALL_GATES.index)
        memory_n = self.config.memory_n
        reference = dict(self.reference, **(self.tape_reference if engine.endswith("-tape") else {}))
        return {
            "engine": engine,
            "mode": mode,
            "problem": self.problem,
            "reference": reference,
            "tolerance": 0.0 if engine in OURS else PEER_TOLERANCE,
            "gates": gates,
            "runs": runs_of(engine, self.config),
            "budget": self.config.budget,
            "memory_n": memory_n,
            "memory_nodes": self.nodes.get(f"chain:{memory_n}"),
            "depth_ladder": self.config.depth_ladder,
            "depth_cap_s": self.config.depth_cap_s,
            "toy_cap_s": self.config.toy_cap_s,
        }

    def run_worker(self, engine: str, entry: Dict[str, Any], mode: str) -> None:
        """One subprocess of worker.py; its events fill entry and self.results."""
        karpathy_dir = find_karpathy(self.config.karpathy_path)[0] if engine == "karpathy" else None
        worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
        self.progress.update(f"{self.step}: starting ({'timings' if mode == 'time' else 'memory, depth'})")
        with tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(
                [sys.executable, worker],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                env=child_env(engine, karpathy_dir),
            )
            timer = threading.Timer(self.config.timeout_s, proc.kill)
            timer.start()
            state: Dict[str, Any] = {"done": False, "depth_ok": 0, "depth_try": None}
            try:
                try:
                    proc.stdin.write(json.dumps(self.config_for(engine, mode)))
                    proc.stdin.close()
                except OSError:
                    pass  # it died at once: its exit code and stderr will say why
                for line in proc.stdout:
                    self.handle(engine, entry, state, line)
                rc = proc.wait()
            finally:
                timed_out = not timer.is_alive() and proc.returncode not in (0, None)
                timer.cancel()
            err.seek(0)
            stderr_tail = err.read()[-600:].strip()
        if state["done"] or entry["status"] == "skipped":
            return
        if timed_out:
            why = f"timed out after {self.config.timeout_s:g} s"
        else:
            why = f"the process ended with exit code {rc}" + (f": {stderr_tail}" if stderr_tail else "")
        if mode == "probe" and state["depth_try"] is not None:
            # It died trying a depth: that is the depth probe's answer, not an engine error.
            entry["depth"] = {"largest_ok": state["depth_ok"], "first_failure": state["depth_try"], "error": why, "capped": False}
            return
        entry.update(status="error", reason=why)
        self.progress.note(f"{engine}: {why}")

    def handle(self, engine: str, entry: Dict[str, Any], state: Dict[str, Any], line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return  # not ours (worker.py keeps stdout clean, but be robust)
        kind = event.pop("event", None)
        if kind == "progress":
            self.progress.update(f"{self.step}: {event['what']}")
        elif kind == "info":
            entry["version"] = event["version"]
        elif kind == "skip":
            entry.update(status="skipped", reason=event["reason"])
            self.progress.note(f"skipped {engine}: {event['reason']}")
        elif kind == "gate":
            name = event.pop("gate")
            entry["gates"][name] = event
            if not event["passed"]:
                why = event.get("error") or f"max abs diff {event['max_abs_diff']!r}"
                self.progress.note(f"{engine}: correctness gate {name} FAILED ({why}); its workloads are not timed")
        elif kind == "result":
            self.add_result(engine, event.pop("workload"), event.pop("size"), **event)
        elif kind == "memory":
            entry["memory"] = event
        elif kind == "depth_try":
            state["depth_try"] = event["n"]
        elif kind == "depth_ok":
            state["depth_ok"] = max(state["depth_ok"], event["n"])
        elif kind == "depth":
            entry["depth"] = event
        elif kind == "done":
            state["done"] = True

    # -- the C floor -------------------------------------------------------------------------
    def compiled_floor(self) -> str:
        if self.floor_exe is None:
            self.workdir = tempfile.mkdtemp(prefix="micrograd-bench-")
            self.floor_exe = c_floor.compile_floor(c_floor.find_compiler(), self.workdir)
        return self.floor_exe

    def run_floor(self, engine: str, entry: Dict[str, Any]) -> None:
        budget, timeout = self.config.budget, self.config.timeout_s
        self.progress.update(f"{self.step}: compiling")
        try:
            exe = self.compiled_floor()
        except subprocess.CalledProcessError as exc:
            entry.update(status="error", reason=f"the C floor did not compile: {(exc.stderr or '').strip()[:300]}")
            self.progress.note(f"{engine}: {entry['reason']}")
            return
        version = c_floor.short_version(c_floor.compiler_version(c_floor.find_compiler()))
        entry["version"] = f"{version} {' '.join(c_floor.CFLAGS)}"

        def checked(gate: str, mode: str, text: str) -> Optional[Dict[str, Any]]:
            try:
                out = c_floor.run_floor(exe, mode, text, self.workdir, budget, timeout)
                verdict = workloads.compare(c_floor.gate_values(out), self.reference[gate], PEER_TOLERANCE)
            except (RuntimeError, ValueError, OSError, subprocess.SubprocessError) as exc:
                out, verdict = None, {"passed": False, "max_abs_diff": None, "error": str(exc)[:300]}
            entry["gates"][gate] = verdict
            if not verdict["passed"]:
                self.progress.note(f"{engine}: correctness gate {gate} FAILED; not timed")
                return None
            if out and out.get("bytes_per_node"):
                entry["memory"] = {"tape_layout_bytes_per_node": out["bytes_per_node"]}
            return out

        wanted = workloads_of(engine, self.config)
        if "demo-step" in wanted:
            self.progress.update(f"{self.step}: demo-step")
            text = c_floor.dense_text(self.problem) if engine == "c-dense" else c_floor.demo_tape(self.problem)
            out = checked("demo-step", "dense" if engine == "c-dense" else "tape-step", text)
            if out:
                self.add_floor_result(engine, "demo-step", None, out["demo-step"])
        chains = [w for w in wanted if w in workloads.SIZED]
        if chains:
            # the gate is on the gate's chain; the C program checks and times in one run, so
            # the times of a failed check are dropped
            if checked("chain", "tape-chain", c_floor.chain_tape(workloads.CHAIN_GATE_N)) is None:
                return
            for n in self.config.sizes:
                self.progress.update(f"{self.step}: chain n={n:,}")
                try:
                    out = c_floor.run_floor(exe, "tape-chain", c_floor.chain_tape(n), self.workdir, budget, timeout)
                except (RuntimeError, ValueError, OSError, subprocess.SubprocessError) as exc:
                    for w in chains:
                        self.add_result(engine, w, n, error=str(exc)[:300])
                    continue
                for w in chains:
                    self.add_floor_result(engine, w, n, out[w])

    def add_floor_result(self, engine: str, workload: str, size: Optional[int], times: List[float]) -> None:
        self.add_result(engine, workload, size, times=times, **timing.summary(times))


def config_dict(config: Config) -> Dict[str, Any]:
    return asdict(config)
