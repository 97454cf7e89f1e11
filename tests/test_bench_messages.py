"""The bench's words to the user: a pinned PyTorch install hint (a plain `pip install torch`
pulls gigabytes of CUDA packages), and target notes that name only the engines really missing."""
from micrograd.bench import report, runner


def test_the_torch_hint_is_pinned_and_points_at_the_cpu_build(monkeypatch):
    monkeypatch.setattr(runner, "torch_available", lambda: False)
    hint = runner.availability("torch-batched", runner.Config.quick_config())
    assert "pip install torch==2.13.0" in hint
    assert "--index-url https://download.pytorch.org/whl/cpu" in hint
    assert "pip install torch " not in hint + " " and not hint.rstrip(")").endswith("pip install torch")


def run_with(results, statuses):
    return {"engines": {e: {"status": s} for e, s in statuses.items()}, "results": results}


def target_detail(run, name_start):
    return next(t for t in report.targets(run) if t["target"].startswith(name_start))


def test_a_target_note_names_only_the_engine_without_a_timing():
    # the compiled engine has its demo-step timing; Karpathy's ran but has none
    run = run_with([{"engine": "cython", "workload": "demo-step", "size": None, "median": 1e-3}],
                   {"cython": "ok", "karpathy": "partial"})
    t = target_detail(run, "demo-step: compiled engine at least 100x")
    assert t["status"] == "n/a" and t["detail"] == "not checked: karpathy has no timing"


def test_a_target_note_names_engines_that_did_not_run():
    run = run_with([{"engine": "cython", "workload": "demo-step", "size": None, "median": 1e-3}],
                   {"cython": "ok", "karpathy": "skipped"})
    assert target_detail(run, "demo-step: compiled engine at least 100x")["detail"] == "not checked: karpathy skipped"
    run = run_with([], {"cython": "ok"})  # no timings at all: the check stops at the first it needs
    assert target_detail(run, "demo-step: compiled engine at least 100x")["detail"] == "not checked: karpathy not run"
    assert target_detail(run, "chain-forward: compiled engine")["detail"] == "not checked: cython has no timing"
