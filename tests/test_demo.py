"""The demo: its training loop is Karpathy's, step for step, on both engines; the command runs,
reports, draws, and fails clearly on bad options."""
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

import micrograd
from micrograd import demo
from micrograd.datasets import make_moons

# Subprocesses must import the micrograd under test (the source tree, or the installed copy in
# CI), so they get its folder on PYTHONPATH and run elsewhere than the checkout, where the
# current directory would come first on sys.path.
PACKAGE_PARENT = Path(micrograd.__file__).resolve().parent.parent


def karpathy_training(nn, engine, X, y, steps):
    """The training cell of karpathy/micrograd demo.ipynb, transcribed (with `steps` for 100)."""
    random.seed(1337)
    model = nn.MLP(2, [16, 16, 1])

    def loss():
        inputs = [list(map(engine, xrow)) for xrow in X]
        scores = list(map(model, inputs))
        losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        alpha = 1e-4
        reg_loss = alpha * sum((p * p for p in model.parameters()))
        total_loss = data_loss + reg_loss
        accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(y, scores)]
        return total_loss, sum(accuracy) / len(accuracy)

    history = []
    for k in range(steps):
        total_loss, acc = loss()
        model.zero_grad()
        total_loss.backward()
        learning_rate = 1.0 - 0.9 * k / 100
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        history.append((k, total_loss.data, acc))
    return model, history


def demo_training(nn, X, y, steps, trainer=demo.train, **kwargs):
    random.seed(1337)
    model = nn.MLP(2, [16, 16, 1])
    history = []
    trainer(model, X, y, steps=steps, on_step=lambda *row: history.append(row), **kwargs)
    return model, history


def test_train_is_karpathys_loop_bit_for_bit(nn, engine):
    X, y = make_moons(n_samples=12)
    theirs, their_history = karpathy_training(nn, engine, X, y, steps=4)
    # his schedule is 1.0 - 0.9*k/100 for 100 steps; ours is lr*(1.0 - 0.9*k/steps)
    ours, our_history = demo_training(nn, X, y, steps=100, trainer=_first_steps(4))
    assert our_history == their_history
    assert [p.data for p in ours.parameters()] == [p.data for p in theirs.parameters()]


def _first_steps(n):
    """demo.train for a 100-step schedule, stopped after n steps."""

    class Stop(Exception):
        pass

    def trainer(model, X, y, steps, on_step, **kwargs):
        def count(k, loss, acc):
            on_step(k, loss, acc)
            if k + 1 == n:
                raise Stop

        try:
            demo.train(model, X, y, steps=steps, on_step=count, **kwargs)
        except Stop:
            pass

    return trainer


def test_taped_training_gives_the_same_numbers(nn):
    pytest.importorskip("micrograd.tape", reason="micrograd.Tape not available in this build")
    X, y = make_moons(n_samples=12)
    for batch_size in (None, 5):
        eager, eager_history = demo_training(nn, X, y, steps=5, batch_size=batch_size)
        taped, taped_history = demo_training(nn, X, y, steps=5, trainer=demo.train_with_tape, batch_size=batch_size)
        assert taped_history == eager_history
        assert [p.data for p in taped.parameters()] == [p.data for p in eager.parameters()]


def test_minibatches_follow_the_seed(nn):
    X, y = make_moons(n_samples=12)
    _, a = demo_training(nn, X, y, steps=3, batch_size=4, seed=1)
    _, b = demo_training(nn, X, y, steps=3, batch_size=4, seed=1)
    _, c = demo_training(nn, X, y, steps=3, batch_size=4, seed=2)
    _, full = demo_training(nn, X, y, steps=3)
    assert a == b and a != c and a != full


@pytest.mark.cython
def test_the_default_demo_reaches_full_accuracy(both_engines, capsys):
    # Karpathy's run reaches 100%. The pure engine computes the same numbers bit for bit (see
    # above and tests/test_parity.py), so this runs on the compiled one only, to stay quick.
    assert demo.main(["--engine", "cython", "--no-estimate", "--no-plot", "--quiet"]) == 0
    assert "final accuracy: 100.0% (loss " in capsys.readouterr().out


# -- the command -------------------------------------------------------------------------------
def run_demo(tmp_path, *args, pure=False):
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_PARENT))
    env.pop("MICROGRAD_PUREPYTHON", None)
    if pure:
        env["MICROGRAD_PUREPYTHON"] = "1"
        env.pop("MICROGRAD_REQUIRE_EXTENSION", None)
    return subprocess.run(
        [sys.executable, "-m", "micrograd", "demo", *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )


def test_demo_command_runs_and_reports(tmp_path):
    done = run_demo(tmp_path, "--steps", "3", "--samples", "20", "--no-estimate", "--no-plot")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "moons (20 points, noise 0.1), MLP(2, [16, 16, 1]) with 337 parameters, 3 steps of SGD" in out
    assert "final accuracy: " in out and "% (loss " in out
    assert " engine: 3 steps in " in out and "would take" not in out
    assert "step 3/3: loss" in done.stderr  # not a terminal: plain progress lines


@pytest.mark.cython
def test_demo_times_a_short_pure_run_whole(both_engines, tmp_path):
    done = run_demo(tmp_path, "--steps", "4", "--samples", "10", "--hidden", "4", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "compiled engine: 4 steps in " in done.stdout
    assert "pure engine took " in done.stdout and " for all 4 steps: " in done.stdout
    assert done.stderr == ""  # --quiet: no progress
    assert list(tmp_path.iterdir()) == []  # no picture unless --plot asks


@pytest.mark.cython
def test_demo_estimates_a_long_pure_run_from_a_few_steps(both_engines, monkeypatch, capsys):
    monkeypatch.setattr(demo, "ESTIMATE_SECONDS", 0.0)  # stop as soon as the minimum is timed
    assert demo.main(["--engine", "cython", "--steps", "50", "--samples", "6", "--hidden", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    timed = 1 + demo.ESTIMATE_MIN_STEPS  # the first step, then the steady-state ones
    assert "pure engine would take at least ~" in out and f"(estimated from its first {timed} steps): " in out


def test_the_estimate_of_an_eager_run_is_a_lower_bound_and_of_a_taped_one_not():
    assert demo.estimate_note(30.0, 12, 100, tape=False) == "pure engine would take at least ~30 s (estimated from its first 12 steps)"
    assert demo.estimate_note(4.2, 50, 100, tape=True) == "pure engine would take ~4.20 s (estimated from its first 50 steps)"
    assert demo.estimate_note(0.5, 4, 4, tape=False) == "pure engine took 0.50 s for all 4 steps"


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("tape", [False, True])
def test_estimate_counts_the_first_step_once_and_extrapolates_steady_steps(monkeypatch, tape):
    # A fake trainer on a fake clock: a setup cost (the tape's capture), a slow first step
    # (warm-up), then steady steps. The estimate must be what the whole run really costs.
    clock = FakeClock()
    monkeypatch.setattr(demo.time, "perf_counter", clock)
    setup, first, steady = (5.0 if tape else 0.0), 3.0, 0.5
    ran = []

    def trainer(model, X, y, *, steps, on_step, **kwargs):
        clock.now += setup
        for k in range(steps):
            clock.now += first if k == 0 else steady
            ran.append(k)
            on_step(k, 0.0, 1.0)

    args = demo.parse_args(["--steps", "100", "--hidden", "2"])
    estimate, timed = demo.estimate_pure_seconds(args, [[0.0, 0.0]], [1], trainer)
    assert estimate == setup + first + 99 * steady
    # steady steps are timed for ESTIMATE_SECONDS (2 s at 0.5 s each: 4), after the first one
    assert timed == 1 + int(demo.ESTIMATE_SECONDS / steady) == len(ran) < 100


def test_estimate_of_a_short_run_is_the_run_itself(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(demo.time, "perf_counter", clock)

    def trainer(model, X, y, *, steps, on_step, **kwargs):
        for k in range(steps):
            clock.now += 1.0 + k  # not steady at all: nothing may be extrapolated
            on_step(k, 0.0, 1.0)

    args = demo.parse_args(["--steps", "3", "--hidden", "2"])
    assert demo.estimate_pure_seconds(args, [[0.0, 0.0]], [1], trainer) == (1.0 + 2.0 + 3.0, 3)


def test_demo_on_the_pure_engine_says_so(tmp_path):
    done = run_demo(tmp_path, "--steps", "2", "--samples", "10", "--hidden", "4", "--no-plot", pure=True)
    assert done.returncode == 0, done.stderr
    assert "running on the pure engine" in done.stdout
    assert "on the pure engine (python)" in done.stdout and "would take" not in done.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--hidden", "a,b"], "expected sizes like 16,16"),
        (["--hidden", "16,0"], "layer sizes must be at least 1"),
        (["--steps", "0"], "must be at least 1"),
        (["--dataset", "mnist"], "invalid choice: 'mnist'"),
    ],
)
def test_bad_options_exit_with_usage(capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        demo.main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_asking_for_a_missing_engine_fails_clearly(monkeypatch, capsys):
    from micrograd import engine

    monkeypatch.setattr(engine, "ENGINES", {"python": engine.ENGINES["python"]})
    monkeypatch.setattr(engine, "EXTENSION_ERROR", "ImportError: no _engine")
    assert demo.main(["--engine", "cython", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "the compiled engine is not available here: " in err and "(ImportError: no _engine)" in err
    monkeypatch.setattr(engine, "BACKEND", "python")
    name, note = demo.choose_engine("auto")
    assert name == "python" and note.startswith("running on the pure engine: ") and "(ImportError: no _engine)" in note


def test_without_matplotlib_the_demo_trains_then_says_no_picture_was_written(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(demo, "_have_matplotlib", lambda: False)
    path = tmp_path / "b.png"
    args = ["--plot", str(path), "--steps", "1", "--samples", "6", "--hidden", "2", "--no-estimate", "--quiet"]
    assert demo.main(args) == 0
    out = capsys.readouterr().out
    assert "final accuracy: " in out  # it trained
    assert f"no picture written to {path}: --plot needs matplotlib (pip install matplotlib" in out
    assert not path.exists()
    # without --plot, matplotlib is never mentioned: no picture was asked for
    assert demo.main(args[2:]) == 0
    assert "matplotlib" not in capsys.readouterr().out


def test_demo_draws_the_decision_boundary(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib not installed: the optional picture is skipped")
    path = tmp_path / "new-folder" / "boundary.png"  # a folder that does not exist yet
    args = ["--steps", "2", "--samples", "10", "--hidden", "4", "--no-estimate", "--quiet", "--plot", str(path)]
    assert demo.main(args) == 0
    assert f"decision boundary written to {path}" in capsys.readouterr().out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_grid_scores_are_the_models_outputs(nn):
    random.seed(0)
    model = nn.MLP(2, [3, 1])
    gx, gy = [-1.0, 0.0, 0.5], [0.25, 2.0]
    assert demo.grid_scores(model, gx, gy) == [[model([a, b]).data for a in gx] for b in gy]


@pytest.mark.parametrize("seconds, text", [(0.853, "0.85 s"), (23.4, "23 s"), (1100.0, "18 min"), (9000.0, "2.5 h")])
def test_durations_read_naturally(seconds, text):
    assert demo._duration(seconds) == text


def test_a_picture_only_where_asked(monkeypatch):
    monkeypatch.setattr(demo, "_have_matplotlib", lambda: True)
    assert demo.plot_path(demo.parse_args([])) is None  # no file the user did not ask for
    assert demo.plot_path(demo.parse_args(["--plot"])) == "demo-boundary.png"
    assert demo.plot_path(demo.parse_args(["--plot", "x.png"])) == "x.png"
    assert demo.plot_path(demo.parse_args(["--plot", "x.png", "--no-plot"])) is None


def test_tape_option_without_the_tape_module(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "micrograd.tape", None)  # makes the import fail
    assert demo.main(["--tape", "--steps", "1", "--no-plot"]) == 1
    assert "--tape needs micrograd.tape, which did not load" in capsys.readouterr().err
