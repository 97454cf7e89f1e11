"""The logic of ``python -m micrograd bench`` (micrograd/bench/): the correctness gate, the
subprocess protocol, missing peers, the depth probe, the C floor, targets, JSON and Markdown.
Fast on purpose: tiny graphs and budgets, and no assertion on any speed."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from micrograd import kernels
from micrograd.bench import c_floor, cli, report, runner, timing, toy, worker, workloads
from micrograd.datasets import make_moons


@pytest.fixture(scope="module")
def problem():
    X, y = make_moons(n_samples=workloads.DEMO_SAMPLES, noise=0.1, seed=workloads.SEED)
    return workloads.make_problem(X, y)


@pytest.fixture(scope="module")
def reference(problem):
    kit = workloads.package_kit("python")
    return {g: workloads.gate(kit, g, problem) for g in ("chain", "mlp-sample")}


class Events:
    """Stands in for worker.Protocol: keeps the events instead of printing them."""

    def __init__(self):
        self.events = []

    def emit(self, event, **fields):
        self.events.append(dict(event=event, **fields))

    def of(self, kind):
        return [e for e in self.events if e["event"] == kind]


class OffByOneUlpKit(workloads.ValueKit):
    """An engine whose gradients are a hair wrong: the gate must notice."""

    def grad(self, node):
        return math.nextafter(float(node.grad), math.inf)


def tiny_config(problem, reference, **overrides):
    config = {
        "problem": problem,
        "reference": reference,
        "tolerance": 0.0,
        "gates": ["chain"],
        "runs": [["chain-forward", 10], ["chain-backward", 10]],
        "budget": {"seconds": 0.001, "min_rounds": 2, "max_rounds": 3},
    }
    config.update(overrides)
    return config


# ---------------------------------------------------------------------------------------------
# The correctness gate


def test_gate_is_exact_between_identical_programs(engine, problem, reference):
    kit = workloads.ValueKit("x", engine)
    verdict = workloads.compare(workloads.gate(kit, "chain", problem), reference["chain"], 0.0)
    assert verdict == {"passed": True, "max_abs_diff": 0.0, "tolerance": 0.0}


def test_gate_rejects_an_engine_one_ulp_off_and_does_not_time_it(engine, problem, reference):
    events = Events()
    worker.run_timings(events, OffByOneUlpKit("wrong", engine), tiny_config(problem, reference))
    (gate,) = events.of("gate")
    assert gate["gate"] == "chain" and not gate["passed"] and gate["max_abs_diff"] > 0
    results = events.of("result")
    assert len(results) == 2
    assert all("median" not in r and r["gate_failed"] and "correctness gate" in r["error"] for r in results)


def test_peer_tolerance_accepts_rounding_but_not_a_real_difference():
    ref = [1.0, -2.0, 300.0]
    assert workloads.compare([1.0, -2.0, 300.0 * (1 + 1e-13)], ref, 1e-9)["passed"]
    assert not workloads.compare([1.0, -2.0, 300.0 * (1 + 1e-13)], ref, 0.0)["passed"]
    assert not workloads.compare([1.0, -2.0, 300.1], ref, 1e-9)["passed"]
    assert not workloads.compare([1.0, float("nan"), 300.0], ref, 1e-9)["passed"]
    assert not workloads.compare([1.0, -2.0], ref, 1e-9)["passed"]  # a missing gradient


def test_a_gate_that_raises_counts_as_failed(engine, problem, reference):
    class Raising(workloads.ValueKit):
        def backward(self, root):
            raise RecursionError("maximum recursion depth exceeded")

    events = Events()
    worker.run_timings(events, Raising("deep", engine), tiny_config(problem, reference))
    (gate,) = events.of("gate")
    assert not gate["passed"] and gate["error"].startswith("RecursionError")


def test_gate_sees_the_replayed_step_too(engine, problem, reference):
    """The gate's second half runs after the leaves changed: a tape that ignored new leaf data
    (replaying stale numbers) must fail it."""

    class StaleReplay:
        def __init__(self, kit, build):
            self.kit, self.root = kit, build()
            self.root.backward()
            self.first = [(p, p.grad) for p in _leaves(self.root)]

        def forward(self):
            pass  # never re-reads the leaves

        def backward(self):
            for p, g in self.first:
                p.grad += g

        def value(self):
            return self.root.data

        def release(self):
            pass

    class StaleKit(workloads.ValueKit):
        def graph(self, build):
            return StaleReplay(self, build)

    got = workloads.gate(StaleKit("stale", engine), "chain", problem)
    half = len(got) // 2
    assert got[:half] == reference["chain"][:half]  # the first evaluation is right...
    assert not workloads.compare(got, reference["chain"], 0.0)["passed"]  # ...the replay is not


def _leaves(root):
    from micrograd.graph import topological_order

    return [v for v in topological_order(root) if not v._prev]


# ---------------------------------------------------------------------------------------------
# Workloads


def test_chain_node_count_and_gradient(engine):
    kit = workloads.ValueKit("x", engine)
    graph, (x, a, b) = workloads.chain_setup(kit, 7)  # 3 mul-adds and a last mul: 7 ops
    graph.forward()
    assert workloads.count_nodes(graph.root) == 7 + 3
    graph.backward()
    # root = (((x*b + a)*b + a)*b + a)*b: d/dx = b**4, d/da = b + b**2 + b**3
    B = workloads.CHAIN_B
    assert x.grad == pytest.approx(B**4, rel=1e-15)
    assert a.grad == pytest.approx(B + B**2 + B**3, rel=1e-15)


def test_peer_copies_build_the_packages_demo_op_for_op(engine, problem):
    """What the peers run instead of this package's nn.MLP, losses and optim.SGD (they cannot
    import it): on our Value, ScalarMLP, demo_loss and the demo's update loops give exactly the
    package's numbers."""
    from micrograd import optim
    from micrograd.engine import ENGINES

    ours = workloads.package_kit(next(name for name, V in ENGINES.items() if V is engine))
    copies = workloads.ValueKit("copies", engine)  # no MLP given: ScalarMLP; loss: demo_loss
    assert type(ours.optimizer([engine(1.0)])) is optim.SGD
    assert type(copies.optimizer([engine(1.0)])) is workloads.LoopSGD
    assert workloads.gate(copies, "demo-step", problem) == workloads.gate(ours, "demo-step", problem)


@pytest.mark.parametrize("tape", [False, True], ids=["eager", "tape"])
def test_our_demo_step_updates_with_the_package_optimizer(engine, tape, problem, monkeypatch):
    """The timed demo step of this package's engines runs zero_grad and the update through
    micrograd.optim.SGD (its C loop on the compiled engine), at the demo's learning-rate
    schedule, and never through the demo's per-parameter Python loops."""
    from micrograd import optim
    from micrograd.engine import ENGINES

    name = next(n for n, V in ENGINES.items() if V is engine) + ("-tape" if tape else "")
    calls = []
    real_step, real_zero = optim.SGD.step, optim.SGD.zero_grad

    def step(self):
        real_step(self)
        calls.append(("step", self.lr, self.last_loop))

    def zero_grad(self):
        real_zero(self)
        calls.append(("zero_grad", None, self.last_loop))

    def loop(*args):
        raise AssertionError("the demo's Python loop ran on one of this package's engines")

    monkeypatch.setattr(optim.SGD, "step", step)
    monkeypatch.setattr(optim.SGD, "zero_grad", zero_grad)
    monkeypatch.setattr(workloads.ValueKit, "sgd", loop)
    monkeypatch.setattr(workloads.ValueKit, "zero_grad", loop)
    budget = {"seconds": 0.0, "min_rounds": 3, "max_rounds": 3}
    times = worker.timed_runs(workloads.package_kit(name), "demo-step", None, problem, budget)
    steps = len(times) + 1  # and the warm-up round
    loop_kind = "c" if name.startswith("cython") else "python"
    assert calls[0::2] == [("zero_grad", None, loop_kind)] * steps
    assert calls[1::2] == [("step", workloads.demo_lr(k), loop_kind) for k in range(steps)]


def test_timing_rule_fits_the_budget_within_bounds():
    budget = {"seconds": 0.1, "min_rounds": 2, "max_rounds": 5}
    assert timing.rounds_for(0.01, budget) == 5  # 10 would fit: capped
    assert timing.rounds_for(0.03, budget) == 3
    assert timing.rounds_for(1.0, budget) == 2  # none would fit: the minimum
    calls = []
    times = timing.measure(lambda: calls.append("fn"), budget, setup=lambda: calls.append("setup"))
    assert len(times) == 5 and calls == ["setup", "fn"] * 6  # a warm-up round, then 5


def test_initial_weights_are_karpathys_draws(engine):
    import random

    from micrograd import nn

    random.seed(workloads.SEED)
    model = nn.MLP(2, [16, 16, 1], engine=engine)
    assert [p.data for p in model.parameters()] == workloads.initial_weights()


# ---------------------------------------------------------------------------------------------
# The depth probe and memory (in this process, with fake limits)


class DepthLimitedKit(workloads.ValueKit):
    """backward() raises RecursionError on chains deeper than `limit`, as Karpathy's does."""

    limit = 57

    def backward(self, root):
        if workloads.count_nodes(root) - 3 > self.limit:
            raise RecursionError("maximum recursion depth exceeded")
        root.backward()


def test_depth_probe_bisects_to_the_exact_limit(engine):
    events = Events()
    worker.probe_depth(events, DepthLimitedKit("k", engine), [10, 100, 1000], cap_s=60)
    (depth,) = events.of("depth")
    assert depth["largest_ok"] == 57 and depth["first_failure"] == 58
    assert depth["error"].startswith("RecursionError")


def test_depth_probe_reports_the_largest_rung_when_all_work(engine):
    events = Events()
    worker.probe_depth(events, workloads.ValueKit("k", engine), [10, 100], cap_s=60)
    assert events.of("depth") == [{"event": "depth", "largest_ok": 100, "capped": False}]


def test_memory_reports_bytes_per_node(engine):
    events = Events()
    worker.measure_memory(events, workloads.ValueKit("k", engine), 2000, 2003)
    (mem,) = events.of("memory")
    # a node holds at least its data and grad (16 bytes); tracemalloc sees every Python block
    assert 16 <= mem["traced_per_node"] < 1000


@pytest.mark.skipif(not worker.reset_peak_rss(), reason="the resident set's peak cannot be reset here (Linux only)")
def test_memory_reports_the_tapes_peak_while_capturing(engine):
    from micrograd.tape import Tape

    events = Events()
    worker.measure_memory(events, workloads.ValueKit("k", engine, Tape=Tape), 100_000, 100_003)
    (mem,) = events.of("memory")
    # Reported, not judged: a memory target is the bench's to check (the figure depends on the
    # allocator, e.g. it grows under AddressSanitizer), never a unit test's.
    assert mem["tape_capture_peak_per_node"] >= 0


# ---------------------------------------------------------------------------------------------
# Missing peers: skipped with how to install, never a crash


def test_missing_karpathy_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv(runner.KARPATHY_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty cache
    config = runner.Config(karpathy_path=None)
    reason = runner.availability("karpathy", config)
    assert "pip install --target" in reason and "micrograd==0.1.0" in reason and "--karpathy-path" in reason


def test_karpathy_path_must_hold_karpathys_package_not_ours(tmp_path):
    path, why = runner.find_karpathy(runner.project_root())  # its micrograd/ is this package
    assert path is None and "holds no Karpathy micrograd" in why
    fake = tmp_path / "k" / "micrograd"
    fake.mkdir(parents=True)
    (fake / "engine.py").write_text("class Value: pass\n")
    assert runner.find_karpathy(str(tmp_path / "k")) == (str(tmp_path / "k"), None)


def test_install_peers_uses_pip_target_with_the_pin(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    assert runner.install_karpathy(str(tmp_path / "k")) == str(tmp_path / "k")
    (cmd,) = calls
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"]
    assert "--target" in cmd and cmd[cmd.index("--target") + 1] == str(tmp_path / "k") and cmd[-1] == "micrograd==0.1.0"


def test_missing_torch_and_compiler_are_skipped_with_a_message(monkeypatch):
    monkeypatch.setattr(runner, "torch_available", lambda: False)
    monkeypatch.setattr(c_floor, "find_compiler", lambda: None)
    config = runner.Config()
    assert "pip install torch" in runner.availability("torch-scalar", config)
    assert "pip install torch" in runner.availability("torch-batched", config)
    assert "no C compiler" in runner.availability("c-tape", config)
    assert runner.availability("python", config) is None


def test_a_run_with_every_peer_missing_still_reports(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "torch_available", lambda: False)
    monkeypatch.setattr(c_floor, "find_compiler", lambda: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(runner.KARPATHY_ENV, raising=False)
    out_json = tmp_path / "b.json"
    rc = cli.main([
        "--engines", "python,karpathy,torch-scalar,c-tape", "--workloads", "chain-forward",
        "--sizes", "10", "--budget", "0.001", "--no-probes", "--no-progress", "--json", str(out_json),
    ])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Skipped" in out and "karpathy: Karpathy's micrograd 0.1.0 not found" in out
    data = json.loads(out_json.read_text())
    assert {e: v["status"] for e, v in data["engines"].items()} == {
        "python": "ok", "karpathy": "skipped", "torch-scalar": "skipped", "c-tape": "skipped",
    }
    targets = {t["target"]: t for t in data["targets"]}
    per_node = targets["chain-forward: compiled engine under 120 ns per node (largest n)"]
    assert per_node["status"] == "n/a" and "cython not run" in per_node["detail"]
    # only the targets of the workloads run are listed
    assert not any(t.startswith(("demo-step", "chain-backward", "moons")) for t in targets)


# ---------------------------------------------------------------------------------------------
# A whole (tiny) run through the subprocesses: the JSON it writes


def test_tiny_run_writes_the_documented_json(tmp_path):
    out_json, out_md = tmp_path / "bench.json", tmp_path / "bench.md"
    engines = "python,cython" if "cython" in runner_engines() else "python"
    rc = cli.main([
        "--quick", "--engines", engines, "--workloads", "chain-forward,chain-backward",
        "--sizes", "10,40", "--budget", "0.001", "--no-probes", "--no-progress",
        "--json", str(out_json), "--markdown", str(out_md),
    ])
    assert rc == 0
    data = json.loads(out_json.read_text())
    assert data["schema"] == "micrograd-bench/1"
    assert data["command"].startswith("python -m micrograd bench --quick")
    for key in ("cpu", "cores_usable", "python", "cython", "c_compiler_version", "micrograd_fast", "extension", "os"):
        assert key in data["machine"]
    assert data["config"]["quick"] is True and data["config"]["sizes"] == [10, 40]
    assert set(data["methods"]) >= {"timing", "gate", "update", "ns_per_node", "ratios", "memory", "depth"}
    rows = [r for r in data["results"] if r["engine"] == "python"]
    assert {(r["workload"], r["size"]) for r in rows} == {
        ("chain-forward", 10), ("chain-forward", 40), ("chain-backward", 10), ("chain-backward", 40)
    }
    for r in data["results"]:
        assert r["min"] <= r["median"] <= r["max"] and r["rounds"] == len(r["times"]) >= 3
        assert r["nodes"] == r["size"] + 3  # the chain's n ops and its 3 leaves
        assert r["ns_per_node"] == pytest.approx(r["median"] / r["nodes"] * 1e9)
        python = next(p for p in rows if (p["workload"], p["size"]) == (r["workload"], r["size"]))
        assert r["vs_python"] == pytest.approx(python["median"] / r["median"])
    assert all(v["gates"]["chain"] == {"passed": True, "max_abs_diff": 0.0, "tolerance": 0.0}
               for v in data["engines"].values())
    assert all(t["status"] in ("PASS", "FAIL", "n/a") for t in data["targets"])
    assert "| engine |" in out_md.read_text() and data["command"] in out_md.read_text()


def runner_engines():
    from micrograd.engine import ENGINES

    return ENGINES


def test_an_engine_whose_process_fails_is_an_error_and_the_exit_code_says_so(monkeypatch, capsys, tmp_path):
    real_env = runner.child_env

    def broken_env(engine, karpathy_dir):  # both flags set: micrograd refuses to import
        return dict(real_env(engine, karpathy_dir), MICROGRAD_PUREPYTHON="1", MICROGRAD_REQUIRE_EXTENSION="1")

    monkeypatch.setattr(runner, "child_env", broken_env)
    out_json = tmp_path / "b.json"
    rc = cli.main(["--engines", "python", "--workloads", "chain-forward", "--sizes", "10",
                   "--budget", "0.001", "--no-probes", "--no-progress", "--json", str(out_json)])
    assert rc == 1
    assert "this package's engines failed: python" in capsys.readouterr().err
    python = json.loads(out_json.read_text())["engines"]["python"]
    assert python["status"] == "error"
    assert "MICROGRAD_PUREPYTHON and MICROGRAD_REQUIRE_EXTENSION are both set" in python["reason"]


def test_quick_is_a_small_configuration():
    quick, full = runner.Config.quick_config(), runner.Config()
    assert max(quick.sizes) < max(full.sizes) and quick.budget["seconds"] < full.budget["seconds"]
    assert max(quick.depth_ladder) < max(full.depth_ladder) and quick.timeout_s < full.timeout_s


def test_bad_arguments_are_rejected(capsys):
    for argv in (["--engines", "nope"], ["--workloads", "demo"], ["--sizes", "ten"], ["--budget", "-1"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2
    assert "unknown engine nope" in capsys.readouterr().err


def test_plot_without_matplotlib_stops_before_running(monkeypatch, capsys, tmp_path):
    from micrograd.bench import plotting

    monkeypatch.setattr(plotting, "available", lambda: False)
    assert cli.main(["--plot", str(tmp_path / "p.png"), "--no-progress"]) == 2
    assert "pip install matplotlib" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The worker as a script: its folder must not shadow modules, its stdout is the protocol


def test_worker_script_speaks_json_lines(problem, reference):
    config = dict(tiny_config(problem, reference), engine="python", mode="time")
    env = runner.child_env("python", None)
    script = os.path.join(os.path.dirname(worker.__file__), "worker.py")
    done = subprocess.run([sys.executable, script], input=json.dumps(config), capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[0]["event"] == "info" and events[-1] == {"event": "done"}
    assert [e["workload"] for e in events if e["event"] == "result"] == ["chain-forward", "chain-backward"]


def test_list_says_what_can_run(capsys):
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in runner.ENGINES) and all(w in out for w in workloads.WORKLOADS)


# ---------------------------------------------------------------------------------------------
# The C floor


@pytest.fixture(scope="module")
def floor(tmp_path_factory):
    cc = c_floor.find_compiler()
    if cc is None:
        pytest.skip("no C compiler here (the C floor is optional)")
    workdir = str(tmp_path_factory.mktemp("floor"))
    return c_floor.compile_floor(cc, workdir), workdir


def test_c_tape_reproduces_the_pure_engine_bit_for_bit(floor, reference):
    exe, workdir = floor
    budget = {"seconds": 0.001, "min_rounds": 1, "max_rounds": 2}
    out = c_floor.run_floor(exe, "tape-chain", c_floor.chain_tape(workloads.CHAIN_GATE_N), workdir, budget, 60)
    assert c_floor.gate_values(out) == reference["chain"]
    assert len(out["chain-forward"]) >= 1 and out["bytes_per_node"] == 25


def test_c_tape_runs_the_rounds_the_timing_rule_gives(floor):
    """The C program asks for its rounds (timing.rounds_for) instead of deciding them."""
    exe, workdir = floor
    budget = {"seconds": 10.0, "min_rounds": 3, "max_rounds": 3}
    out = c_floor.run_floor(exe, "tape-chain", c_floor.chain_tape(10), workdir, budget, 60)
    assert len(out["chain-forward"]) == len(out["chain-backward"]) == 3


def test_c_tape_replays_the_demo_step_bit_for_bit(floor, problem):
    exe, workdir = floor
    budget = {"seconds": 0.001, "min_rounds": 1, "max_rounds": 1}
    out = c_floor.run_floor(exe, "tape-step", c_floor.demo_tape(problem), workdir, budget, 60)
    assert c_floor.gate_values(out) == workloads.gate(workloads.package_kit("python"), "demo-step", problem)


def test_floor_source_ships_with_the_package_and_includes_the_engines_kernels():
    with open(c_floor.SOURCE) as f:
        assert '#include "_kernels.h"' in f.read()  # the op rules, not a copy of them
    assert os.path.exists(kernels.C_HEADER)
    c_floor.check_op_codes(kernels.c_op_names())  # raises on a drift
    with pytest.raises(RuntimeError, match="not micrograd._ops.OPS"):
        c_floor.check_op_codes(["leaf", "mul", "add"])


def test_c_dense_matches_the_demo_to_rounding(floor, problem):
    exe, workdir = floor
    budget = {"seconds": 0.001, "min_rounds": 1, "max_rounds": 2}
    out = c_floor.run_floor(exe, "dense", c_floor.dense_text(problem), workdir, budget, 60)
    want = workloads.gate(workloads.package_kit("python"), "demo-step", problem)
    assert workloads.compare(c_floor.gate_values(out), want, 1e-9)["passed"]


# ---------------------------------------------------------------------------------------------
# Report: targets and formatting from a made-up run


def made_up_run(karpathy_s=1.0, cython_s=0.005):
    results = []
    for engine, median in (("karpathy", karpathy_s), ("cython", cython_s), ("python", 0.5)):
        if median is not None:
            results.append({"engine": engine, "workload": "demo-step", "size": None, "nodes": 1000,
                            "median": median, "min": median, "max": median, "ns_per_node": median / 1000 * 1e9})
    engines = {e: {"status": "ok", "gates": {}} for e in ("python", "cython", "karpathy")}
    if karpathy_s is None:
        engines["karpathy"] = {"status": "skipped", "reason": "not found", "gates": {}}
    return {"results": results, "engines": engines}


def test_targets_from_a_run():
    run = made_up_run(karpathy_s=1.0, cython_s=0.005)  # 200x
    report.add_ratios(run)
    t = {x["target"]: x for x in report.targets(run)}
    fast = t["demo-step: compiled engine at least 100x faster than Karpathy's micrograd 0.1.0"]
    assert fast["status"] == "PASS" and fast["detail"].startswith("200x")
    assert t["demo-step: pure engine no slower than Karpathy's micrograd 0.1.0"]["status"] == "PASS"
    assert t["chain-forward: compiled engine under 120 ns per node (largest n)"]["status"] == "n/a"
    slow = made_up_run(karpathy_s=1.0, cython_s=0.02)  # 50x
    report.add_ratios(slow)
    t = {x["target"]: x for x in report.targets(slow)}
    assert t["demo-step: compiled engine at least 100x faster than Karpathy's micrograd 0.1.0"]["status"] == "FAIL"
    cython_row = next(r for r in slow["results"] if r["engine"] == "cython")
    assert cython_row["vs_karpathy"] == pytest.approx(50) and cython_row["vs_python"] == pytest.approx(25)


def test_formatting():
    assert report.fmt_time(1.5) == "1.5 s"
    assert report.fmt_time(0.00123) == "1.23 ms"
    assert report.fmt_time(4.2e-7) == "420 ns"
    assert report.fmt_time(0.0009996) == "1 ms"  # three digits round up into the next unit
    assert report.fmt_time(0.000999) == "999 us"
    assert report.fmt_ratio(123.4) == "123x" and report.fmt_ratio(2.345) == "2.35x"
    assert report.finite({"a": [float("nan"), 1.0, float("inf")]}) == {"a": [None, 1.0, None]}
    assert c_floor.short_version("gcc (Debian 12.2.0-14+deb12u1) 12.2.0") == "gcc 12.2.0"
    assert c_floor.short_version("clang version 16.0.6 (Fedora 16.0.6-3.fc39)") == "clang 16.0.6"


# ---------------------------------------------------------------------------------------------
# The toy suite (micrograd/bench/toy.py): training steps, their gates, the table


@pytest.fixture(scope="module")
def toy_data(problem):
    return toy.problem(list(toy.TOY), problem)


@pytest.fixture
def small_gpt(monkeypatch):
    """The toy GPT at a size that keeps the pure engine's gate well under a second."""
    monkeypatch.setattr(toy, "GPT_CONFIG", {"n_embd": 8, "n_head": 2, "n_layer": 1, "block_size": 6})


def our_engines():
    from micrograd.engine import ENGINES

    if "cython" not in ENGINES:
        from micrograd import engine as engine_module

        if engine_module.flag("MICROGRAD_REQUIRE_EXTENSION"):
            pytest.fail(f"compiled engine required but not loaded: {engine_module.EXTENSION_ERROR}")
        return ["python-tape"]
    return ["cython", "python-tape", "cython-tape"]


@pytest.mark.parametrize("gate", ["toy-moons-16", "toy-digits", "toy-gpt-16"])
def test_toy_gates_are_exact_on_our_engines_eager_and_replayed(gate, toy_data, small_gpt):
    reference = toy.gate("python", gate, toy_data)
    for engine in our_engines():
        ref = toy.gate(toy.TAPE_REFERENCE[gate], gate, toy_data) if engine.endswith("-tape") and gate in toy.TAPE_REFERENCE else reference
        assert workloads.compare(toy.gate(engine, gate, toy_data), ref, 0.0)["passed"], engine
    name = toy.gate_workload(gate)
    step = toy.make_step("python", name, toy_data, toy.TOY[name].gate_samples)
    assert len(reference) == 2 * (1 + len(step.params))  # two steps: the loss and every gradient
    assert reference[0] != reference[len(reference) // 2]  # the update changed the second step


def test_toy_gate_sees_the_optimizer_update(toy_data, monkeypatch):
    """Two steps, the second after the first's update: a wrong learning rate changes only the
    second half, and the gate fails."""
    reference = toy.gate("python", "toy-moons-16", toy_data)
    monkeypatch.setattr(toy, "MOONS_LR", toy.MOONS_LR * (1 + 1e-12))
    got = toy.gate("python", "toy-moons-16", toy_data)
    half = len(got) // 2
    assert got[:half] == reference[:half]
    assert not workloads.compare(got, reference, 0.0)["passed"]


def test_digits_replay_rounds_like_the_pure_tape_not_like_eager(toy_data):
    """Why the tape's digits reference is the pure tape: cross-entropy subtracts the largest
    logit's value, which a tape freezes at capture, so after an update the replay rounds
    differently from eager (to within rounding: the same maths)."""
    assert toy.TAPE_REFERENCE == {"toy-digits": "python-tape"}
    eager, taped = (toy.gate(e, "toy-digits", toy_data) for e in ("python", "python-tape"))
    half = len(eager) // 2
    assert taped[:half] == eager[:half]  # the captured step is eager's
    assert taped != eager and workloads.compare(taped, eager, 1e-12)["passed"]


def test_toy_step_counts_the_issues_nodes(toy_data):
    step = toy.make_step("python-tape", "moons-16", toy_data)
    assert step.nodes() == toy.make_step("python", "moons-16", toy_data).nodes() == 65_818
    losses = [step.step() for _ in range(3)]
    assert losses[0] > losses[1] > losses[2]  # it trains


def test_torch_steps_match_ours_within_the_peer_tolerance(toy_data, small_gpt):
    pytest.importorskip("torch", reason="PyTorch is optional (pip install torch==2.13.0)")
    for gate in ("toy-moons-16", "toy-digits", "toy-gpt-16"):
        verdict = workloads.compare(toy.gate("torch-batched", gate, toy_data), toy.gate("python", gate, toy_data),
                                    runner.PEER_TOLERANCE)
        assert verdict["passed"] and verdict["max_abs_diff"] > 0, gate  # close, not bit for bit


def test_generated_digits_have_load_digits_shape():
    from micrograd.datasets import make_digits

    X, y = make_digits()
    assert len(X) == len(y) == 1797 and all(len(row) == 64 for row in X)
    assert sorted(set(y)) == list(range(10))
    assert all(v == int(v) and 0 <= v <= 16 for row in X for v in row)
    assert make_digits(n_samples=50, seed=1) == make_digits(n_samples=50, seed=1) != make_digits(n_samples=50, seed=2)


def test_digits_say_where_they_came_from(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    data = toy.digits_data()
    assert data["source"].startswith("generated") and "scikit-learn is not installed" in data["source"]
    assert len(data["X"]) == 1797 and max(max(r) for r in data["X"]) <= 1.0  # pixels scaled to [0, 1]


def test_a_toy_workload_too_slow_for_the_cap_is_not_run_and_says_its_estimate(toy_data):
    events = Events()
    config = {"engine": "python", "problem": {"toy": toy_data}, "toy_cap_s": 1.0,
              "budget": {"seconds": 0.001, "min_rounds": 3, "max_rounds": 3}}
    worker.run_toy(events, "moons-256", config, [0.4, 0.25])  # gate: setup + step, then a step, of 1 point
    (result,) = events.of("result")
    assert result["not_run"] and result["estimate_s"] == pytest.approx(0.25 * 100)
    assert result["error"].startswith("not run: est. 25 s a step, 115 s to set up and run 4") and "median" not in result
    events = Events()
    worker.run_toy(events, "moons-16", dict(config, toy_cap_s=60.0), [0.01, 0.01])
    (result,) = events.of("result")
    assert result["rounds"] == 3 and result["nodes"] == 65_818


def test_suite_selects_workloads():
    def chosen(*argv):
        return cli.make_config(cli.build_parser().parse_args(list(argv))).workloads

    assert chosen("--suite", "toy") == list(toy.TOY)
    assert chosen("--suite", "core") == list(workloads.WORKLOADS)
    assert chosen() == list(workloads.WORKLOADS) + list(toy.TOY)
    assert chosen("--quick", "--suite", "toy") == list(toy.QUICK) == ["moons-16", "digits-32", "gpt-16"]
    assert chosen("--quick") == list(workloads.WORKLOADS) + list(toy.QUICK)
    assert chosen("--suite", "toy", "--workloads", "gpt-16,demo-step") == ["gpt-16"]
    engines = cli.make_config(cli.build_parser().parse_args(["--suite", "toy"])).engines
    assert engines == ["python", "cython", "python-tape", "cython-tape", "torch-batched"]  # those with toy workloads
    with pytest.raises(SystemExit) as exc:
        chosen("--suite", "toy", "--workloads", "demo-step")
    assert exc.value.code == 2


def test_toy_run_writes_the_table_to_json_and_markdown(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "torch_available", lambda: False)
    out_json, out_md = tmp_path / "toy.json", tmp_path / "toy.md"
    engines = "python,cython-tape,torch-batched" if "cython" in runner_engines() else "python,python-tape,torch-batched"
    rc = cli.main(["--suite", "toy", "--workloads", "moons-16", "--engines", engines, "--budget", "0.001",
                   "--no-progress", "--json", str(out_json), "--markdown", str(out_md)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Toy suite: one training step" in out and "not installed (pip install torch==2.13.0)" in out
    data = json.loads(out_json.read_text())
    (row,) = data["toy"]["rows"]
    assert row["workload"] == "moons-16" and row["nodes"] == 65_818
    assert row["median"]["python"] > 0 and row["median"]["torch-batched"] is None and row["tape_vs_torch"] is None
    assert row["cells"]["torch-batched"] == "not installed (pip install torch==2.13.0)"
    assert data["engines"]["python"]["gates"]["toy-moons-16"]["max_abs_diff"] == 0.0
    assert [r["ns_per_node"] for r in data["results"] if r["engine"] == "python"][0] > 0
    (target,) = data["targets"]  # a toy-only run lists only the toy workload's target
    assert target["target"].startswith("moons-16: the tape's training step") and target["status"] == "n/a"
    md = out_md.read_text()
    assert "| workload | nodes | python |" in md and "| moons-16 | 65,818 |" in md


def test_toy_table_and_targets_from_a_made_up_run():
    def row(engine, median):
        return {"engine": engine, "workload": "digits-32", "size": None, "nodes": 1000,
                "median": median, "min": median, "max": median}

    run = {
        "config": {"workloads": ["digits-32"]},
        "engines": {e: {"status": "ok", "gates": {}} for e in ("python", "cython-tape", "torch-batched")},
        "results": [row("python", 0.4), row("cython-tape", 0.0002), row("torch-batched", 0.0001),
                    {"engine": "python-tape", "workload": "digits-32", "size": None, "nodes": 1000,
                     "not_run": True, "estimate_s": 30.0, "error": "not run: est. 30 s"}],
        "toy_data": {"digits": "generated"},
    }
    run["engines"]["python-tape"] = {"status": "ok", "gates": {}}
    (summary,) = report.toy_summary(run)["rows"]
    assert summary["tape_vs_torch"] == pytest.approx(2.0)
    assert summary["cells"]["python-tape"] == "not run: est. 30 s" and summary["cells"]["cython"] == "-"
    (target,) = report.targets(run)
    assert target["status"] == "FAIL" and target["detail"].startswith("2.00x torch's time")
    headers, rows, notes = report.toy_table(run)
    assert rows[0][-1] == "2x" and "digits data: generated" in notes
