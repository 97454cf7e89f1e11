"""``python -m micrograd demo``: Karpathy's two-moons demo, trained on the compiled engine.

With the defaults it is his notebook step for step: 100 points of two moons (noise 0.1),
``random.seed(1337)`` and ``MLP(2, [16, 16, 1])``, the max-margin loss plus 1e-4 L2, 100 full-batch
steps of SGD with the learning rate ``1.0 - 0.9*k/100``. It shows a progress bar, prints the
final accuracy, estimates how long the pure-Python engine would take for the same training
(its first step, then its steady-state steps for about two seconds), and, with ``--plot``, draws
the decision boundary (needs matplotlib). It writes no file unless asked to.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple

from micrograd import engine, losses, optim
from micrograd._cli import program_name
from micrograd._diagnose import missing_extension_reason
from micrograd.datasets import DATASETS
from micrograd.nn import MLP
from micrograd.progress import Progress

DEFAULT_PLOT = "demo-boundary.png"  # where a bare --plot writes
ESTIMATE_SECONDS = 2.0  # pure-engine steady-state steps are timed for about this long ...
ESTIMATE_MIN_STEPS = 3  # ... and at least this many (fewer only if the run is shorter)
MATPLOTLIB_HINT = "pip install matplotlib, or the plot extra: pip install 'micrograd-fast[plot]'"
ENGINE_NAMES = {"cython": "compiled", "python": "pure"}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=program_name("demo"),
        description="Train a small MLP on a toy 2-D data set (by default Karpathy's two-moons demo), "
        "then say how long the pure-Python engine would take for the same run.",
    )
    p.add_argument("--dataset", choices=sorted(DATASETS), default="moons", help="data set (default: moons)")
    p.add_argument("--samples", type=_positive_int, default=100, help="number of points (default: 100)")
    p.add_argument("--noise", type=float, default=0.1, help="std of the noise on the points (default: 0.1)")
    p.add_argument("--hidden", type=_sizes, default=[16, 16], help="hidden layer sizes (default: 16,16)")
    p.add_argument("--steps", type=_positive_int, default=100, help="training steps (default: 100)")
    p.add_argument("--lr", type=float, default=1.0, help="initial learning rate, decayed to 10%% (default: 1.0)")
    p.add_argument("--alpha", type=float, default=1e-4, help="L2 regularisation strength (default: 1e-4)")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="points per step (default: all)")
    p.add_argument("--seed", type=int, default=1337, help="seed of the data, the weights and the batches (default: 1337)")
    p.add_argument(
        "--engine", choices=["auto", "cython", "python"], default="auto",
        help="engine to train on (default: auto, the compiled one where it is built)",
    )
    p.add_argument("--tape", action="store_true", help="capture the graph once and replay it (micrograd.Tape)")
    p.add_argument(
        "--plot", metavar="PATH", nargs="?", const=DEFAULT_PLOT,
        help=f"draw the decision boundary into a PNG file (PATH defaults to {DEFAULT_PLOT}; needs matplotlib)",
    )
    p.add_argument("--no-plot", action="store_true", help="draw nothing, even with --plot (the default is no picture)")
    p.add_argument("--no-estimate", action="store_true", help="do not time the pure engine for comparison (saves about 2 s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only the results")
    return p.parse_args(list(argv))


def _positive_int(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _sizes(text: str) -> List[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 16,16, got {text!r}") from None
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be at least 1, got {text!r}")
    return sizes


# -- the model and its loss, as in Karpathy's notebook ------------------------------------------
def build_model(hidden: List[int], seed: int, engine_name: str) -> MLP:
    """``random.seed(seed); MLP(2, hidden + [1])`` on the given engine: his initial weights."""
    random.seed(seed)
    return MLP(2, hidden + [1], engine=engine_name)


def loss_and_accuracy(model: MLP, X: List[List[float]], y: List[int], alpha: float, value: type) -> Tuple[Any, float, List[Any]]:
    """Karpathy's ``loss()``: max-margin loss + L2, the accuracy, and the scores."""
    inputs = [list(map(value, xrow)) for xrow in X]
    scores = list(map(model, inputs))
    data_loss = losses.hinge(scores, y)
    reg_loss = losses.l2(model.parameters(), alpha)
    total_loss = data_loss + reg_loss
    accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(y, scores)]
    return total_loss, sum(accuracy) / len(accuracy), scores


StepCallback = Callable[[int, float, float], None]


def train(
    model: MLP,
    X: List[List[float]],
    y: List[int],
    *,
    steps: int,
    lr: float = 1.0,
    alpha: float = 1e-4,
    batch_size: Optional[int] = None,
    seed: int = 1337,
    on_step: Optional[StepCallback] = None,
) -> None:
    """SGD with the learning rate decaying linearly from ``lr`` to a tenth of it, as Karpathy's
    loop does (``1.0 - 0.9*k/100`` for 100 steps). ``on_step(k, loss, accuracy)`` after each step."""
    value = type(model.parameters()[0])
    opt = optim.SGD(model.parameters(), lr=lr)
    batches = random.Random(seed)
    for k in range(steps):
        Xb, yb = _batch(X, y, batch_size, batches)
        total_loss, acc, _ = loss_and_accuracy(model, Xb, yb, alpha, value)
        opt.zero_grad()
        total_loss.backward()
        opt.lr = lr * (1.0 - 0.9 * k / steps)
        opt.step()
        if on_step is not None:
            on_step(k, total_loss.data, acc)


def train_with_tape(
    model: MLP,
    X: List[List[float]],
    y: List[int],
    *,
    steps: int,
    lr: float = 1.0,
    alpha: float = 1e-4,
    batch_size: Optional[int] = None,
    seed: int = 1337,
    on_step: Optional[StepCallback] = None,
) -> None:
    """``train()``, but the graph is built once and replayed by ``micrograd.Tape``. The batch's
    points and labels are leaf Values whose ``.data`` is set each step, so one tape serves
    every batch; the numbers are the same as ``train()``'s."""
    from micrograd.tape import Tape

    value = type(model.parameters()[0])
    opt = optim.SGD(model.parameters(), lr=lr)
    batches = random.Random(seed)
    n = len(X) if batch_size is None else min(batch_size, len(X))
    inputs = [[value(0.0), value(0.0)] for _ in range(n)]
    labels = [value(0.0) for _ in range(n)]
    scores = list(map(model, inputs))
    total_loss = losses.hinge(scores, labels) + losses.l2(model.parameters(), alpha)
    tape = Tape(total_loss, outputs=scores, params=model.parameters())  # inputs, labels: no grads
    for k in range(steps):
        Xb, yb = _batch(X, y, batch_size, batches)
        for leaf, xrow in zip(inputs, Xb):
            leaf[0].data, leaf[1].data = xrow
        for leaf, yi in zip(labels, yb):
            leaf.data = yi
        loss = tape.forward()
        acc = sum((yi > 0) == (s.data > 0) for yi, s in zip(yb, scores)) / n
        opt.zero_grad()
        tape.backward()
        opt.lr = lr * (1.0 - 0.9 * k / steps)
        opt.step()
        if on_step is not None:
            on_step(k, loss, acc)


def _batch(X: List[List[float]], y: List[int], batch_size: Optional[int], rng: random.Random) -> Tuple[List[List[float]], List[int]]:
    if batch_size is None or batch_size >= len(X):
        return X, y
    ri = rng.sample(range(len(X)), batch_size)
    return [X[i] for i in ri], [y[i] for i in ri]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _duration(seconds: float) -> str:
    """'0.85 s', '23 s', '18 min', '2.5 h': as precise as a reader needs."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _status(loss: float, accuracy: float, rate: float) -> str:
    return f"loss {loss:.4f}  accuracy {accuracy * 100:.1f}%  {rate:.0f} steps/s"


# -- the pure-engine estimate ----------------------------------------------------------------------
class _EnoughSteps(Exception):
    """Stops the timed pure-engine run once the estimate has what it needs."""


def estimate_pure_seconds(args: argparse.Namespace, X: List[List[float]], y: List[int], trainer: Callable[..., None]) -> Tuple[float, int]:
    """Seconds the pure engine would take for the same ``args.steps`` steps (same model, data,
    loss and trainer). A real run pays once for its first step (with ``--tape``, the capture
    too) and then repeats a steady-state step, which also frees the previous step's graph; so
    the first step is timed as it is, and the others from the mean of the steady-state steps
    that follow it, timed for about ``ESTIMATE_SECONDS``. Returns (estimate, steps timed)."""
    model = build_model(args.hidden, args.seed, "python")
    marks: List[float] = []

    def on_step(k: int, loss: float, accuracy: float) -> None:
        marks.append(time.perf_counter())
        steady = len(marks) - 1
        if steady >= ESTIMATE_MIN_STEPS and marks[-1] - marks[0] >= ESTIMATE_SECONDS:
            raise _EnoughSteps

    start = time.perf_counter()
    try:
        trainer(model, X, y, steps=args.steps, lr=args.lr, alpha=args.alpha, batch_size=args.batch_size, seed=args.seed, on_step=on_step)
    except _EnoughSteps:
        pass
    first = marks[0] - start
    if len(marks) == args.steps:  # the whole run was timed: no estimate needed
        return marks[-1] - start, len(marks)
    steady = (marks[-1] - marks[0]) / (len(marks) - 1)
    return first + steady * (args.steps - 1), len(marks)


def estimate_note(pure_seconds: float, timed: int, steps: int, tape: bool) -> str:
    """How the estimate reads. An eager pure run slows down as it goes (measured: its last
    steps take ~1.5x its first ones, with or without the cyclic GC and with a learning rate of
    0, so it is the process's memory getting scattered, not the numbers), so an estimate from
    its first steps is a lower bound. A taped run allocates nothing per step and stays steady."""
    if timed == steps:  # short runs are timed whole
        return f"pure engine took {_duration(pure_seconds)} for all {_count(timed, 'step')}"
    bound = "~" if tape else "at least ~"
    return f"pure engine would take {bound}{_duration(pure_seconds)} (estimated from its first {_count(timed, 'step')})"


# -- the picture -----------------------------------------------------------------------------------
def plot_boundary(model: MLP, X: List[List[float]], y: List[int], path: str, title: str, resolution: int = 100) -> None:
    """Draw where the model scores > 0 (its decision boundary) under the data points, as
    Karpathy's notebook does, on a finer grid, and save it as a PNG."""
    from matplotlib.figure import Figure  # imported here: matplotlib is optional

    xs = [p[0] for p in X]
    ys = [p[1] for p in X]
    x_min, x_max = min(xs) - 0.5, max(xs) + 0.5
    y_min, y_max = min(ys) - 0.5, max(ys) + 0.5
    gx = [x_min + (x_max - x_min) * i / (resolution - 1) for i in range(resolution)]
    gy = [y_min + (y_max - y_min) * j / (resolution - 1) for j in range(resolution)]
    scores = grid_scores(model, gx, gy)

    fig = Figure(figsize=(6, 5), dpi=100)
    ax = fig.subplots()
    low, high = min(map(min, scores)), max(map(max, scores))
    ax.contourf(gx, gy, scores, levels=[min(low, -1e-9), 0.0, max(high, 1e-9)], colors=["#9ecae1", "#fdae6b"], alpha=0.8)
    ax.contour(gx, gy, scores, levels=[0.0], colors="k", linewidths=1)
    for label, color in ((-1, "#08519c"), (1, "#d94801")):
        pts = [p for p, t in zip(X, y) if t == label]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], c=color, s=30, edgecolors="white", linewidths=0.5, label=f"y = {label:+d}")
    ax.set_xlim(x_min, x_max)
    ax.set_ylim(y_min, y_max)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)  # --plot out/boundary.png
    fig.savefig(path)


def grid_scores(model: MLP, gx: List[float], gy: List[float]) -> List[List[float]]:
    """The model's score at every grid point (rows follow ``gy``). The graph of one forward
    pass is captured once by ``micrograd.Tape`` and replayed per point, where the tape exists."""
    value = type(model.parameters()[0])
    point = [value(0.0), value(0.0)]
    score = model(point)
    try:
        from micrograd.tape import Tape
    except ImportError:  # no tape: one eager forward pass per point
        return [[model([value(a), value(b)]).data for a in gx] for b in gy]
    tape = Tape(score)
    rows = []
    for b in gy:
        point[1].data = b
        row = []
        for a in gx:
            point[0].data = a
            row.append(tape.forward())
        rows.append(row)
    return rows


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


# -- main --------------------------------------------------------------------------------------------
def choose_engine(requested: str) -> Tuple[Optional[str], str]:
    """(engine name or None, a note for the user)."""
    if requested == "auto":
        if engine.BACKEND == "cython":
            return "cython", ""
        if "cython" in engine.ENGINES:
            return "python", "MICROGRAD_PUREPYTHON is set: running on the pure engine"
        return "python", f"running on the pure engine: {missing_extension_reason(engine.EXTENSION_ERROR)}"
    if requested not in engine.ENGINES:
        return None, f"the {ENGINE_NAMES[requested]} engine is not available here: {missing_extension_reason(engine.EXTENSION_ERROR)}"
    return requested, ""


def missing_dependency(args: argparse.Namespace) -> Optional[str]:
    """What an explicitly requested option needs but cannot load, if anything. (A missing
    matplotlib is not one: the demo trains anyway and then says no picture was written.)"""
    if args.tape:
        try:
            import micrograd.tape  # noqa: F401
        except ImportError as exc:
            return f"--tape needs micrograd.tape, which did not load: {exc}"
    return None


def plot_path(args: argparse.Namespace) -> Optional[str]:
    """Where to draw the boundary: only where --plot asks (never a file the user did not ask for)."""
    return None if args.no_plot else args.plot


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = sys.stdout
    name, note = choose_engine(args.engine)
    if name is None:
        print(f"micrograd demo: {note}", file=sys.stderr)
        return 2
    problem = missing_dependency(args)
    if problem:
        print(f"micrograd demo: {problem}", file=sys.stderr)
        return 1
    if note:
        print(note, file=out)
    trainer = train_with_tape if args.tape else train

    X, y = DATASETS[args.dataset](n_samples=args.samples, noise=args.noise, seed=args.seed)
    model = build_model(args.hidden, args.seed, name)
    batch = "full batch" if args.batch_size is None or args.batch_size >= args.samples else f"batches of {args.batch_size}"
    print(
        f"micrograd demo: {args.dataset} ({args.samples} points, noise {args.noise}), "
        f"MLP(2, {args.hidden + [1]}) with {len(model.parameters())} parameters, "
        f"{_count(args.steps, 'step')} of SGD ({batch}{', taped' if args.tape else ''}) on the {ENGINE_NAMES[name]} engine ({name})",
        file=out,
        flush=True,
    )
    progress = Progress(args.steps, enabled=not args.quiet)

    def on_step(k: int, loss: float, accuracy: float) -> None:
        progress.update(_status(loss, accuracy, progress.rate(k + 1)), done=k + 1)

    start = time.perf_counter()
    trainer(
        model, X, y, steps=args.steps, lr=args.lr, alpha=args.alpha,
        batch_size=args.batch_size, seed=args.seed, on_step=on_step,
    )
    seconds = time.perf_counter() - start

    final_loss, accuracy, _ = loss_and_accuracy(model, X, y, args.alpha, type(model.parameters()[0]))
    print(f"final accuracy: {accuracy * 100:.1f}% (loss {final_loss.data:.4f}) on all {args.samples} points", file=out)
    timing = f"{ENGINE_NAMES[name]} engine: {_count(args.steps, 'step')} in {_duration(seconds)} ({args.steps / seconds:.0f} steps/s)"
    if name != "python" and not args.no_estimate:
        pure_seconds, timed = estimate_pure_seconds(args, X, y, trainer)
        timing += f"; {estimate_note(pure_seconds, timed, args.steps, args.tape)}: {pure_seconds / seconds:.0f}x faster"
    print(timing, file=out)

    path = plot_path(args)
    if path is None:
        return 0
    if not _have_matplotlib():
        print(f"no picture written to {path}: --plot needs matplotlib ({MATPLOTLIB_HINT})", file=out)
        return 0
    title = f"micrograd demo: {args.dataset}, MLP(2, {args.hidden + [1]}), {args.steps} steps, accuracy {accuracy * 100:.1f}%"
    plot_boundary(model, X, y, path, title)
    print(f"decision boundary written to {path}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
