"""The named workloads of the benchmark, written once for every engine.

This module imports only the standard library at load time, never ``micrograd``: it also runs
inside the subprocess of Karpathy's original micrograd, whose package has the same import name.
An engine is reached through a *kit* (how to make a leaf, read a grad, run backward, ...). This
package's engines build the workloads with the package's own ``nn.MLP`` and ``losses`` and
update with its ``optim.SGD`` (``package_kit``, which imports them when called); the peers keep
the demo's loops over the parameters (``LoopSGD``), and PyTorch's kit uses ``micrograd.losses``
on its tensors. What cannot come from the package is here, small: the demo's loss
(``demo_loss``) for Karpathy's engine, whose subprocess cannot import this package (his has
the same name), and an MLP over 0-d tensors (``ScalarMLP``) for PyTorch, as ``nn.MLP`` makes
this package's Values.
PyTorch's kits import torch only when they are made.

Every workload is deterministic: the data, the initial weights and the leaves come from fixed
seeds, so each engine runs the very same program and its results can be compared number for
number before it is timed (the correctness gate, see ``gate``).
"""
from __future__ import annotations

import functools
import random
from typing import Any, Callable, Dict, List, Sequence

SEED = 1337
DEMO_SIZES = (2, 16, 16, 1)  # MLP(2, [16, 16, 1]), Karpathy's demo
DEMO_SAMPLES = 100
L2 = 1e-4  # the demo's alpha
GATE_LR = 1.0  # the demo's first learning rate, used between the gate's two steps
CHAIN_X0, CHAIN_A, CHAIN_B = 0.5, 0.5, 0.999  # x -> x*b + a stays bounded at any depth
CHAIN_GATE_N = 100
NEURON_INPUTS = 1000
NEURON_BIAS = 50.0  # keeps the ReLU open, so every input gets a nonzero gradient
NODE_CREATION_OPS = 10_000

# name -> what is timed; the order is the order of the report.
WORKLOADS = {
    "demo-step": (
        f"Karpathy's demo step: {DEMO_SAMPLES} two-moons points, MLP(2, [16, 16, 1]), "
        f"max-margin loss + L2 {L2:g}, zero_grad, backward, SGD (this package's engines: "
        "micrograd.optim.SGD; Karpathy's and torch: their own loops)"
    ),
    "mlp-sample": "MLP(2, [16, 16, 1]) on one point: forward + backward",
    "neuron-1000": f"one ReLU neuron with {NEURON_INPUTS:,} inputs (a wide sum): forward + backward",
    "node-creation": f"{NODE_CREATION_OPS:,} binary ops (a+b, a*b) on two leaves, results dropped (per op)",
    "chain-forward": "build a chain x = x*b + a of n ops (the graph is freed outside the timing)",
    "chain-backward": "backward() through a chain of n ops, a freshly built graph each round",
}
SIZED = ("chain-forward", "chain-backward")  # the workloads run at several graph sizes


# ---------------------------------------------------------------------------------------------
# The problem every engine is given: data and initial weights, as plain floats


def initial_weights(sizes: Sequence[int] = DEMO_SIZES, seed: int = SEED) -> List[float]:
    """The MLP's parameters in Karpathy's order (each neuron's weights, then its bias 0), drawn
    as his nn draws them: ``random.seed(seed); MLP(...)`` gives exactly these."""
    rng = random.Random(seed)
    weights: List[float] = []
    for nin, nout in zip(sizes, sizes[1:]):
        for _ in range(nout):
            weights += [rng.uniform(-1, 1) for _ in range(nin)] + [0.0]
    return weights


def neuron_problem(seed: int = SEED, nin: int = NEURON_INPUTS) -> Dict[str, List[float]]:
    rng = random.Random(seed + 1)
    return {"w": [rng.uniform(-1, 1) for _ in range(nin)], "x": [rng.uniform(-1, 1) for _ in range(nin)]}


def make_problem(X: List[List[float]], y: List[int]) -> Dict[str, Any]:
    """Everything a worker needs, JSON-ready (floats survive JSON exactly)."""
    return {
        "X": [[float(a), float(b)] for a, b in X],
        "y": [int(v) for v in y],
        "sizes": list(DEMO_SIZES),
        "weights": initial_weights(),
        "neuron": neuron_problem(),
    }


# ---------------------------------------------------------------------------------------------
# Kits: one engine seen through the few operations the workloads need


class ValueKit:
    """An engine whose nodes are Karpathy-style ``Value`` objects: ours (either engine) and his.

    ``MLP`` is the engine's own ``nn.MLP`` when it has one (so the demo runs the package's own
    network code), else None, and the generic ``ScalarMLP`` below is used. ``loss(scores, y,
    params)`` is the demo's loss (default: ``demo_loss``). With ``Tape`` given
    (``micrograd.Tape``) the graph is recorded once and then replayed (see ``Replay``).
    """

    def __init__(self, name: str, Value: type, MLP: Any = None, Tape: Any = None, loss: Any = None) -> None:
        self.name = name
        self.Value = Value
        self.MLP = MLP
        self.Tape = Tape
        self.loss = loss or demo_loss

    def leaf(self, x: float) -> Any:
        return self.Value(x)

    param = leaf  # a Value always has a grad

    def value(self, node: Any) -> float:
        return float(node.data)

    def grad(self, node: Any) -> float:
        return float(node.grad)

    def set_data(self, node: Any, x: float) -> None:
        node.data = x

    def backward(self, root: Any) -> None:
        root.backward()

    def zero_grad(self, params: Sequence[Any]) -> None:
        for p in params:
            p.grad = 0.0

    def sgd(self, params: Sequence[Any], lr: float) -> None:
        for p in params:
            p.data -= lr * p.grad

    def optimizer(self, params: Sequence[Any]) -> Any:
        """What the demo's zero_grad and update run on (``lr``, ``zero_grad()``, ``step()``):
        here the demo's own loops over the parameters (``LoopSGD``); ``PackageKit`` gives
        ``micrograd.optim.SGD`` instead."""
        return LoopSGD(self, params, GATE_LR)

    def relu(self, node: Any) -> Any:
        return node.relu()

    def mlp(self, sizes: Sequence[int], weights: Sequence[float]) -> tuple:
        """(model, parameters) with the given initial weights."""
        if self.MLP is None:
            model = ScalarMLP(self, sizes, weights)
            return model, model.params
        model = self.MLP(sizes[0], list(sizes[1:]))
        params = model.parameters()
        if len(params) != len(weights):
            raise ValueError(f"{self.name}: MLP has {len(params)} parameters, expected {len(weights)}")
        for p, w in zip(params, weights):
            p.data = w
        return model, params

    def graph(self, build: Callable[[], Any]) -> Any:
        return Replay(self, build) if self.Tape is not None else Rebuild(self, build)


class PackageKit(ValueKit):
    """This package's engines: the update is the package's own optimizer, as a user of the
    package would write the demo for speed. ``micrograd.optim.SGD`` runs one C loop over
    compiled-engine parameters (the Python loop on the pure engine), with the same bits as the
    demo's ``p.data -= lr * p.grad``."""

    def optimizer(self, params: Sequence[Any]) -> Any:
        from micrograd import optim

        return optim.SGD(params, lr=GATE_LR)


class LoopSGD:
    """Karpathy's demo update, as his demo writes it: ``p.grad = 0`` and ``p.data -= lr *
    p.grad``, a Python loop over the parameters (the kit's ``zero_grad`` and ``sgd``). Used
    by the engines that have no ``micrograd.optim``: Karpathy's, and torch on 0-d tensors.
    Its face is ``micrograd.optim.SGD``'s: ``lr`` (set between steps), ``zero_grad()``,
    ``step()``."""

    def __init__(self, kit: ValueKit, params: Sequence[Any], lr: float) -> None:
        self.kit, self.params, self.lr = kit, params, lr

    def zero_grad(self) -> None:
        self.kit.zero_grad(self.params)

    def step(self) -> None:
        self.kit.sgd(self.params, self.lr)


class TorchScalarKit(ValueKit):
    """PyTorch with 0-d float64 tensors as the nodes: the same scalar programs, run by torch's
    autograd. One thread (``torch.set_num_threads(1)``), as every other engine has."""

    def __init__(self, name: str = "torch-scalar") -> None:
        import torch

        torch.set_num_threads(1)
        # Its subprocess can import this package: the loss is micrograd.losses' (on tensors).
        super().__init__(name, Value=None, loss=package_loss)
        self.torch = torch

    def leaf(self, x: float) -> Any:
        return self.torch.tensor(x, dtype=self.torch.float64)

    def param(self, x: float) -> Any:
        return self.torch.tensor(x, dtype=self.torch.float64, requires_grad=True)

    def value(self, node: Any) -> float:
        return float(node.item())

    def grad(self, node: Any) -> float:
        return 0.0 if node.grad is None else float(node.grad.item())

    def set_data(self, node: Any, x: float) -> None:
        with self.torch.no_grad():
            node.fill_(x)

    def zero_grad(self, params: Sequence[Any]) -> None:
        for p in params:
            p.grad = None

    def sgd(self, params: Sequence[Any], lr: float) -> None:
        with self.torch.no_grad():
            for p in params:
                p.sub_(lr * p.grad)  # p - (lr*g): rounded as the Value engines round it


class Rebuild:
    """An eager engine's step: forward builds the graph anew from the leaves' current data."""

    def __init__(self, kit: ValueKit, build: Callable[[], Any]) -> None:
        self.kit, self.build, self.root = kit, build, None

    def forward(self) -> None:
        self.root = self.build()

    def backward(self) -> None:
        self.kit.backward(self.root)

    def value(self) -> float:
        return self.kit.value(self.root)

    def release(self) -> None:
        self.root = None


class Replay:
    """The fast-training path: ``micrograd.Tape`` records the graph once; forward() recomputes
    it from the leaves' current data and backward() accumulates into the leaves' grads."""

    def __init__(self, kit: ValueKit, build: Callable[[], Any]) -> None:
        self.kit = kit
        self.root = build()
        self.tape = kit.Tape(self.root)
        self._value = kit.value(self.root)

    def forward(self) -> None:
        self._value = self.tape.forward()

    def backward(self) -> None:
        self.tape.backward()

    def value(self) -> float:
        return float(self._value)

    def release(self) -> None:
        pass  # the recorded graph is the point: it stays


class ScalarMLP:
    """Karpathy's nn.MLP over any kit: the same ops in the same order (``sum(w*x, b)``, ReLU
    on all layers but the last), for engines that bring no nn of their own (PyTorch)."""

    def __init__(self, kit: ValueKit, sizes: Sequence[int], weights: Sequence[float]) -> None:
        it = iter(weights)
        self.layers = []
        for i, (nin, nout) in enumerate(zip(sizes, sizes[1:])):
            neurons = [([kit.param(next(it)) for _ in range(nin)], kit.param(next(it))) for _ in range(nout)]
            self.layers.append((neurons, i != len(sizes) - 2))
        self.params = [p for neurons, _ in self.layers for w, b in neurons for p in (*w, b)]

    def __call__(self, x: Sequence[Any]) -> Any:
        for neurons, nonlin in self.layers:
            out = []
            for w, b in neurons:
                act = sum((wi * xi for wi, xi in zip(w, x)), b)
                out.append(act.relu() if nonlin else act)
            x = out[0] if len(out) == 1 else out
        return x


class TorchBatchedDemo:
    """The demo step as one would write it in PyTorch instead: float64 weight matrices, the 100
    points as one batch, one thread. Same data, weights, loss and update as the scalar programs;
    only the order of the sums differs (so it matches to rounding, not bit for bit)."""

    def __init__(self, problem: Dict[str, Any]) -> None:
        import torch

        torch.set_num_threads(1)
        self.torch = torch
        f64 = torch.float64
        sizes, it = problem["sizes"], iter(problem["weights"])
        self.layers = []  # (W of shape (nout, nin), b of shape (nout,))
        for nin, nout in zip(sizes, sizes[1:]):
            rows = [[next(it) for _ in range(nin + 1)] for _ in range(nout)]  # each neuron: w..., b
            W = torch.tensor([r[:nin] for r in rows], dtype=f64, requires_grad=True)
            b = torch.tensor([r[nin] for r in rows], dtype=f64, requires_grad=True)
            self.layers.append((W, b))
        self.params = [t for layer in self.layers for t in layer]
        self.X = torch.tensor(problem["X"], dtype=f64)
        self.y = torch.tensor(problem["y"], dtype=f64)

    def loss(self) -> Any:
        h = self.X
        for i, (W, b) in enumerate(self.layers):
            h = h @ W.T + b
            if i != len(self.layers) - 1:
                h = h.relu()
        scores = h[:, 0]
        data_loss = (1 + -self.y * scores).relu().sum() * (1.0 / len(scores))
        reg_loss = L2 * sum((p * p).sum() for p in self.params)
        return data_loss + reg_loss

    def step(self, lr: float) -> float:
        loss = self.loss()
        for p in self.params:
            p.grad = None
        loss.backward()
        with self.torch.no_grad():
            for p in self.params:
                p.sub_(lr * p.grad)
        return float(loss.item())

    def grads(self) -> List[float]:
        """The gradients in Karpathy's parameter order (each neuron's weights, then its bias)."""
        out: List[float] = []
        for W, b in self.layers:
            for j in range(W.shape[0]):
                out += W.grad[j].tolist() + [float(b.grad[j])]
        return out

    def gate(self) -> List[float]:
        out: List[float] = []
        for _ in range(2):
            loss = self.step(GATE_LR)  # grads are those of the loss before the update
            out += [loss] + self.grads()
        return out


# ---------------------------------------------------------------------------------------------
# The programs


def chain(x: Any, a: Any, b: Any, n: int) -> Any:
    """n ops deep: x*b + a, repeated (a lone x*b last when n is odd)."""
    for _ in range(n // 2):
        x = x * b + a
    if n % 2:
        x = x * b
    return x


def node_creation(a: Any, b: Any, n: int) -> None:
    for _ in range(n // 2):
        a + b
        a * b


def neuron(w: Sequence[Any], x: Sequence[Any], b: Any) -> Any:
    return sum((wi * xi for wi, xi in zip(w, x)), b).relu()


def demo_loss(scores: Sequence[Any], y: Sequence[int], params: Sequence[Any]) -> Any:
    """Karpathy's demo loss: SVM max-margin on the scores plus L2 regularisation. The peers'
    copy of ``micrograd.losses.hinge(scores, y) + micrograd.losses.l2(params, L2)``, op for op."""
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = L2 * sum(p * p for p in params)
    return data_loss + reg_loss


def package_loss(scores: Sequence[Any], y: Sequence[int], params: Sequence[Any]) -> Any:
    """The demo's loss from this package's ``micrograd.losses``."""
    from micrograd import losses

    return losses.hinge(scores, y) + losses.l2(params, L2)


def package_kit(name: str) -> PackageKit:
    """This package's engine ``name`` ('python', 'cython'; with '-tape', replayed by
    ``micrograd.Tape``), with its own ``nn.MLP``, ``losses`` and ``optim.SGD``. KeyError if
    not loaded."""
    import micrograd
    from micrograd import nn
    from micrograd.engine import ENGINES

    Value = ENGINES[name.replace("-tape", "")]
    tape = micrograd.Tape if name.endswith("-tape") else None
    return PackageKit(name, Value, functools.partial(nn.MLP, engine=Value), tape, package_loss)


def demo_lr(k: int) -> float:
    """The demo's learning-rate schedule; the k-th timed step is the demo's step k mod 100."""
    return 1.0 - 0.9 * (k % 100) / 100


# ---------------------------------------------------------------------------------------------
# Setting a workload up on a kit: each returns (graph, params) or the callables to time


def chain_setup(kit: ValueKit, n: int) -> tuple:
    params = [kit.param(CHAIN_X0), kit.param(CHAIN_A), kit.param(CHAIN_B)]
    x, a, b = params
    return kit.graph(lambda: chain(x, a, b, n)), params


def neuron_setup(kit: ValueKit, problem: Dict[str, Any]) -> tuple:
    w = [kit.param(v) for v in problem["neuron"]["w"]]
    x = [kit.param(v) for v in problem["neuron"]["x"]]
    b = kit.param(NEURON_BIAS)
    return kit.graph(lambda: neuron(w, x, b)), w + x + [b]


def mlp_setup(kit: ValueKit, problem: Dict[str, Any]) -> tuple:
    model, params = kit.mlp(problem["sizes"], problem["weights"])
    point = problem["X"][0]
    return kit.graph(lambda: model([kit.leaf(v) for v in point])), params


def demo_setup(kit: ValueKit, problem: Dict[str, Any]) -> tuple:
    model, params = kit.mlp(problem["sizes"], problem["weights"])
    X, y = problem["X"], problem["y"]

    def build() -> Any:  # as the demo's loss(): the inputs are made anew each step
        return kit.loss([model([kit.leaf(v) for v in row]) for row in X], y, params)

    return kit.graph(build), params


def demo_step(graph: Any, opt: Any, lr: float) -> float:
    """One step of the demo at learning rate ``lr``: ``opt`` is the kit's ``optimizer(params)``."""
    graph.forward()
    opt.zero_grad()
    graph.backward()
    opt.lr = lr  # how micrograd.optim schedules a learning rate: an attribute, set between steps
    opt.step()
    return graph.value()


# ---------------------------------------------------------------------------------------------
# The correctness gate: numbers each engine must reproduce before it is timed


GATES = ("chain", "neuron-1000", "mlp-sample", "demo-step")


def gate_for(workload: str) -> str:
    """The gate that vouches for a workload (the chain's covers node creation: the same ops)."""
    return "chain" if workload in ("node-creation", "chain-forward", "chain-backward") else workload


def gate(kit: ValueKit, name: str, problem: Dict[str, Any]) -> List[float]:
    """The output and every parameter's gradient, twice: once as set up, then again after the
    leaves changed (an SGD step of the demo's first learning rate, or x += 0.25 on a chain), so
    an engine that replays a recorded graph is checked on the replay too. zero_grad and the
    step are the kit's ``optimizer``'s, the same code the timed demo step runs."""
    if name == "chain":
        graph, params = chain_setup(kit, CHAIN_GATE_N)
        opt = kit.optimizer(params)
        change = lambda: kit.set_data(params[0], CHAIN_X0 + 0.25)  # noqa: E731
    elif name in ("neuron-1000", "mlp-sample", "demo-step"):
        setup = {"neuron-1000": neuron_setup, "mlp-sample": mlp_setup, "demo-step": demo_setup}[name]
        graph, params = setup(kit, problem)
        opt = kit.optimizer(params)  # lr: GATE_LR
        change = opt.step
    else:
        raise ValueError(f"unknown gate {name!r}; the gates are {', '.join(GATES)}")
    out: List[float] = []
    for _ in range(2):
        opt.zero_grad()
        graph.forward()
        graph.backward()
        out += [graph.value()] + [kit.grad(p) for p in params]
        change()
    return out


def compare(values: Sequence[float], reference: Sequence[float], rel_tol: float) -> Dict[str, Any]:
    """Max abs difference, and whether it is within rel_tol of the reference's scale (0 = exact;
    nan anywhere fails)."""
    if len(values) != len(reference):
        return {"passed": False, "max_abs_diff": None, "error": f"{len(values)} numbers, expected {len(reference)}"}
    diff = max((abs(a - b) for a, b in zip(values, reference)), default=0.0)
    scale = max((abs(b) for b in reference), default=0.0)
    if not all(a == a for a in values) or diff != diff:  # nan: never a pass
        return {"passed": False, "max_abs_diff": None, "tolerance": rel_tol, "error": "nan in the results"}
    passed = diff == 0.0 if rel_tol == 0 else diff <= rel_tol * max(1.0, scale)
    return {"passed": passed, "max_abs_diff": diff, "tolerance": rel_tol}


def count_nodes(root: Any) -> int:
    """Nodes in the graph below a Value of this package (leaves included)."""
    from micrograd.graph import topological_order

    return len(topological_order(root))
