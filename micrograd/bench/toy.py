"""The toy suite: one whole training step (forward, zero_grad, backward, optimizer update) of the
small networks people train with micrograd, on this package's engines (eager, and replayed by
``micrograd.Tape``) and in PyTorch as one would write it there (float64 batched tensors,
``nn.Linear``, ``torch.optim``, one thread).

    moons-16/64/256  MLP(2, [w, w, 1]) on 100 two-moons points, Karpathy's max-margin loss + L2, SGD
    digits-32        MLP(64, [32, 10]) on 32 digits (8x8), softmax cross-entropy, SGD
    digits-full      the same on all 1,797 digits (full batch)
    gpt-16           the microgpt-style GPT of micrograd/gpt.py (n_embd 16, 4 heads, 1 layer,
                     block 16), one name per step, Adam

Every workload is deterministic (seeded data and weights), so each contender runs the very same
training step and is checked number for number before it is timed (the gate): the loss and every
parameter gradient of two steps in a row, on a smaller instance of the workload (fewer points:
the same code), against the pure engine's. Ours must match exactly, PyTorch within a tolerance.

Like workloads.py, this module imports no ``micrograd`` at load time (worker.py loads it beside
itself, in every engine's process); the functions import the package, or torch, when called.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

SEED = 1337
MOONS_SAMPLES = 100
MOONS_NOISE = 0.1
MOONS_LR = 0.1
L2 = 1e-4  # the demo's alpha
DIGITS_LR = 0.1
GPT_LR = 0.01
GPT_CONFIG = {"n_embd": 16, "n_head": 4, "n_layer": 1, "block_size": 16}  # micrograd.gpt.Config's defaults
GPT_DOCS = 200  # generated names, cycled through, one per step
TORCH_PIN = "torch==2.13.0"


@dataclass(frozen=True)
class Toy:
    """A toy workload: ``family`` moons/digits/gpt, ``size`` the hidden width (moons), the batch
    (digits; 0 = the whole set) or the block (gpt); ``gate`` the name of the gate that vouches
    for it and ``gate_samples`` how many points that gate uses (0: the workload's own)."""

    family: str
    size: int
    about: str
    gate: str
    gate_samples: int = 0
    quick: bool = False  # part of `micrograd bench --quick`


def _moons(width: int, quick: bool = False) -> Toy:
    return Toy(
        "moons", width,
        f"{MOONS_SAMPLES} two-moons points, MLP(2, [{width}, {width}, 1]), max-margin loss + L2 {L2:g}, SGD (lr {MOONS_LR:g})",
        gate=f"toy-moons-{width}", gate_samples=1 if width > 64 else 4, quick=quick,
    )


TOY: Dict[str, Toy] = {
    "moons-16": _moons(16, quick=True),
    "moons-64": _moons(64),
    "moons-256": _moons(256),
    "digits-32": Toy("digits", 32, f"digits (8x8), MLP(64, [32, 10]), softmax cross-entropy, SGD (lr {DIGITS_LR:g}), a minibatch of 32 "
                     "(the same one every step)", gate="toy-digits", gate_samples=8, quick=True),
    "digits-full": Toy("digits", 0, f"digits (8x8), MLP(64, [32, 10]), softmax cross-entropy, SGD (lr {DIGITS_LR:g}), the full batch",
                       gate="toy-digits", gate_samples=8),
    "gpt-16": Toy("gpt", 16, "microgpt-style GPT (n_embd 16, 4 heads, 1 layer, block 16), one generated name per "
                  f"step, Adam (lr {GPT_LR:g}, betas 0.85, 0.99); the tape replays one 16-position window with one-hot leaf tokens for every name, "
                  "eager builds each name's own (shorter) graph; nodes: the window's", gate="toy-gpt-16", quick=True),
}
GATES = tuple(dict.fromkeys(t.gate for t in TOY.values()))
QUICK = tuple(name for name, t in TOY.items() if t.quick)
# The tape's reference for a gate is the pure engine's eager step where replay reproduces eager
# bit for bit. Cross-entropy's log-sum-exp subtracts the largest logit's value, a constant the
# tape freezes at capture: after an update the replay rounds differently from a fresh eager
# graph (same maths), so the tape engines' reference there is the pure engine's tape.
TAPE_REFERENCE = {"toy-digits": "python-tape"}


def gate_workload(gate: str) -> str:
    """A workload the gate runs (smaller, see ``Toy.gate_samples``)."""
    return next(name for name, t in TOY.items() if t.gate == gate)


# ---------------------------------------------------------------------------------------------
# The data: made in the parent, sent to the workers as JSON


def digits_data() -> Dict[str, Any]:
    """scikit-learn's bundled digits when it is installed (no download), else a generated set of
    the same shape (micrograd.datasets.make_digits); pixels scaled to [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        from micrograd.datasets import make_digits

        X, y = make_digits(seed=SEED)
        source = "generated (micrograd.datasets.make_digits: scikit-learn is not installed)"
    else:
        bunch = load_digits()
        X, y = bunch.data.tolist(), bunch.target.tolist()
        source = "scikit-learn's load_digits (bundled, 8x8 handwritten)"
    return {"X": [[float(v) / 16.0 for v in row] for row in X], "y": [int(v) for v in y], "source": source}


def gpt_docs(n: int = GPT_DOCS, seed: int = SEED) -> Dict[str, Any]:
    """``n`` made-up names of 3 to 12 letters a-z, tokenised as examples/microgpt.py does (BOS,
    letters, BOS; BOS = 26): generated, so the bench needs no data file."""
    rng = random.Random(seed)
    docs = [[26] + [rng.randrange(26) for _ in range(rng.randint(3, 12))] + [26] for _ in range(n)]
    return {"docs": docs, "vocab_size": 27}


def problem(names: Sequence[str], moons: Dict[str, Any]) -> Dict[str, Any]:
    """What the toy workloads ``names`` need, JSON-ready; ``moons``: the demo's X and y."""
    families = {TOY[n].family for n in names}
    out: Dict[str, Any] = {}
    if "moons" in families:
        out["moons"] = {"X": moons["X"], "y": moons["y"]}
    if "digits" in families:
        out["digits"] = digits_data()
    if "gpt" in families:
        out["gpt"] = gpt_docs()
    return out


def batch(toy: Toy, data: Dict[str, Any], samples: int = 0) -> tuple:
    """(X, y) of a moons or digits workload: its first ``samples`` points (0: the workload's)."""
    n = samples or (MOONS_SAMPLES if toy.family == "moons" else toy.size) or len(data["X"])
    return data["X"][:n], data["y"][:n]


def sizes(toy: Toy) -> List[int]:
    return [2, toy.size, toy.size, 1] if toy.family == "moons" else [64, 32, 10]


def initial_weights(shape: Sequence[int]) -> List[float]:
    """Karpathy's MLP initialisation as plain floats (workloads.initial_weights)."""
    from micrograd.bench.workloads import initial_weights as karpathys

    return karpathys(shape, SEED)


# ---------------------------------------------------------------------------------------------
# This package's engines: a training step, eager or replayed


class ValueStep:
    """One training step on this package's engine. Eager: ``build(k)`` makes the k-th step's
    loss graph. Replayed: ``tape`` recorded one such graph; ``load(k)`` writes the k-th step's
    data into its leaves before each replay."""

    def __init__(self, build: Callable[[int], Any], params: List[Any], optimizer: Any, tape: Any = None,
                 load: Optional[Callable[[int], None]] = None, size_hint: int = 0, dataset: Sequence[Any] = ()) -> None:
        self.build, self.params, self.opt, self.load, self.tape = build, params, optimizer, load, tape
        self.dataset = dataset  # the input Values the tape was told are constants
        self.size_hint = size_hint  # about the nodes of an eager graph, 0 if unknown
        self.k = 0

    def step(self) -> float:
        k, self.k = self.k, self.k + 1
        if self.tape is None:
            loss = self.build(k)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            return float(loss.data)
        if self.load is not None:
            self.load(k)
        value = self.tape.forward()
        self.opt.zero_grad()
        self.tape.backward()
        self.opt.step()
        return float(value)

    def grads(self) -> List[float]:
        return [float(p.grad) for p in self.params]

    def nodes(self, limit: int = 2_000_000) -> Optional[int]:
        """Nodes in the step's graph: the tape's count, else a walk of one eager graph when it
        is small enough for a walk (the parent takes big eager counts from a tape's row)."""
        if self.tape is not None:
            return len(self.tape)
        if self.size_hint > limit:
            return None
        from micrograd.graph import topological_order

        return len(topological_order(self.build(0)))


def value_step(engine: str, name: str, data: Dict[str, Any], samples: int = 0) -> ValueStep:
    """The step of toy workload ``name`` on engine ``engine`` ('python', 'cython', with '-tape'
    replayed), on its first ``samples`` points (0: all of the workload's)."""
    import micrograd
    from micrograd import losses, nn, optim
    from micrograd.engine import ENGINES

    Value = ENGINES[engine.replace("-tape", "")]
    tape = micrograd.Tape if engine.endswith("-tape") else None
    toy = TOY[name]
    if toy.family == "gpt":
        return _gpt_value_step(Value, tape, data["gpt"])
    X, y = batch(toy, data[toy.family], samples)
    model = nn.MLP(sizes(toy)[0], sizes(toy)[1:], engine=Value)
    params = model.parameters()
    for p, w in zip(params, initial_weights(sizes(toy))):
        p.data = w
    if toy.family == "moons":
        def loss(rows: List[List[Any]]) -> Any:
            return losses.hinge([model(row) for row in rows], y) + losses.l2(params, L2)

        opt = optim.SGD(params, lr=MOONS_LR)
    else:
        def loss(rows: List[List[Any]]) -> Any:
            return losses.cross_entropy([model(row) for row in rows], y)

        opt = optim.SGD(params, lr=DIGITS_LR)

    def inputs() -> List[List[Any]]:
        return [[Value(v) for v in row] for row in X]

    def build(k: int) -> Any:  # as Karpathy's demo: the inputs made anew each step
        return loss(inputs())

    hint = len(X) * sum(2 * a * b for a, b in zip(sizes(toy), sizes(toy)[1:]))  # a mul and an add a weight
    if tape is None:
        return ValueStep(build, params, opt, size_hint=hint)
    # A tape is told what a PyTorch user tells autograd: the parameters need grads; the dataset
    # does not, and it does not change from step to step.
    rows = inputs()
    dataset = [v for row in rows for v in row]
    recorded = tape(loss(rows), params=params, constants=dataset)
    return ValueStep(build, params, opt, recorded, size_hint=hint, dataset=dataset)


def _gpt_value_step(Value: type, tape: Any, data: Dict[str, Any]) -> ValueStep:
    from micrograd import gpt

    model = gpt.GPT(data["vocab_size"], gpt.Config(**GPT_CONFIG), seed=SEED, engine=Value)
    docs = data["docs"]
    opt = gpt.adam(model, GPT_LR)
    if tape is None:
        return ValueStep(lambda k: gpt.name_loss(model, docs[k % len(docs)]), model.parameters(), opt)
    window = gpt.Window(Value, data["vocab_size"], model.cfg.block_size)
    params = model.parameters()
    recorded = tape(gpt.window_loss(model, window), params=params)  # the one-hot inputs change: read
    return ValueStep(lambda k: gpt.window_loss(model, window), params, opt, recorded,
                     load=lambda k: window.load(docs[k % len(docs)]))


# ---------------------------------------------------------------------------------------------
# PyTorch, as one would write these there


class TorchStep:
    """The same training step in PyTorch: float64 (the default dtype set), batched tensors,
    ``nn.Linear`` layers, ``torch.optim``, one thread. Same data, initial weights, losses and
    updates as ours; sums in another order, so it matches to rounding, not bit for bit."""

    def __init__(self, name: str, data: Dict[str, Any], samples: int = 0) -> None:
        import torch

        torch.set_num_threads(1)
        torch.set_default_dtype(torch.float64)
        self.torch, self.toy, self.k = torch, TOY[name], 0
        if self.toy.family == "gpt":
            self._gpt(data["gpt"])
        else:
            self._mlp(*batch(self.toy, data[self.toy.family], samples))

    def _mlp(self, X: List[List[float]], y: List[int]) -> None:
        torch, nn, toy = self.torch, self.torch.nn, self.toy
        shape, it = sizes(toy), iter(initial_weights(sizes(toy)))
        layers: List[Any] = []
        for nin, nout in zip(shape, shape[1:]):
            linear = nn.Linear(nin, nout)
            rows = [[next(it) for _ in range(nin + 1)] for _ in range(nout)]  # each neuron: w..., b
            with torch.no_grad():
                linear.weight.copy_(torch.tensor([r[:nin] for r in rows]))
                linear.bias.copy_(torch.tensor([r[nin] for r in rows]))
            layers += [linear, nn.ReLU()]
        self.model = nn.Sequential(*layers[:-1])  # no ReLU after the last layer
        self.X = torch.tensor(X)
        if toy.family == "moons":
            self.y = torch.tensor(y, dtype=torch.float64)
            self.opt = torch.optim.SGD(self.model.parameters(), lr=MOONS_LR)
        else:
            self.y = torch.tensor(y, dtype=torch.long)
            self.opt = torch.optim.SGD(self.model.parameters(), lr=DIGITS_LR)

    def _gpt(self, data: Dict[str, Any]) -> None:
        from micrograd import gpt

        torch = self.torch
        ours = gpt.GPT(data["vocab_size"], gpt.Config(**GPT_CONFIG), seed=SEED, engine="python")  # the weights
        self.model = torch_gpt(torch, ours)
        self.docs = [(torch.tensor(d[:-1][:ours.cfg.block_size]), torch.tensor(d[1:][:ours.cfg.block_size]))
                     for d in data["docs"]]
        self.opt = torch.optim.Adam(self.model.parameters(), lr=GPT_LR, betas=(0.85, 0.99), eps=1e-8)

    def loss(self, k: int) -> Any:
        F = self.torch.nn.functional
        if self.toy.family == "gpt":
            idx, targets = self.docs[k % len(self.docs)]
            return F.cross_entropy(self.model(idx), targets)
        out = self.model(self.X)
        if self.toy.family == "digits":
            return F.cross_entropy(out, self.y)
        data_loss = self.torch.relu(1 - self.y * out[:, 0]).mean()
        return data_loss + L2 * sum((p * p).sum() for p in self.model.parameters())

    def step(self) -> float:
        k, self.k = self.k, self.k + 1
        loss = self.loss(k)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()

    def grads(self) -> List[float]:
        """Every gradient in this package's parameter order."""
        out: List[float] = []
        if self.toy.family == "gpt":
            for p in self.model.parameters():  # registered in micrograd.gpt's order, rows as its
                out += p.grad.reshape(-1).tolist()
            return out
        for layer in self.model:
            if isinstance(layer, self.torch.nn.Linear):
                for j in range(layer.weight.shape[0]):
                    out += layer.weight.grad[j].tolist() + [float(layer.bias.grad[j])]
        return out

    def nodes(self) -> None:
        return None  # a tensor graph: no scalar nodes to count


def torch_gpt(torch: Any, ours: Any) -> Any:
    """micrograd.gpt.GPT as a PyTorch module over a whole name at once (positions batched, a
    causal mask), with ``ours``' weights; its parameters registered in ``ours.parameters()``'
    order."""
    nn, F = torch.nn, torch.nn.functional

    def weight(rows: Sequence[Sequence[Any]]) -> Any:
        return nn.Parameter(torch.tensor([[v.data for v in row] for row in rows]))

    def rmsnorm(x: Any) -> Any:
        return x * ((x * x).mean(-1, keepdim=True) + 1e-5) ** -0.5

    class GPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte, self.wpe, self.lm_head = weight(ours.wte.w), weight(ours.wpe.w), weight(ours.lm_head.w)
            self.blocks = nn.ParameterList(
                [weight(m.w) for b in ours.blocks for m in (b.wq, b.wk, b.wv, b.wo, b.fc1, b.fc2)]
            )
            self.n_head = ours.cfg.n_head

        def forward(self, idx: Any) -> Any:
            n = idx.shape[0]
            x = rmsnorm(self.wte[idx] + self.wpe[:n])
            mask = torch.ones(n, n, dtype=torch.bool).tril()
            for i in range(0, len(self.blocks), 6):
                wq, wk, wv, wo, fc1, fc2 = self.blocks[i:i + 6]
                h = rmsnorm(x)
                q, k, v = (F.linear(h, w).view(n, self.n_head, -1).transpose(0, 1) for w in (wq, wk, wv))
                att = (q @ k.transpose(1, 2)) / q.shape[-1] ** 0.5
                att = att.masked_fill(~mask, float("-inf")).softmax(-1)
                x = x + F.linear((att @ v).transpose(0, 1).reshape(n, -1), wo)
                x = x + F.linear(F.linear(rmsnorm(x), fc1).relu(), fc2)
            return F.linear(x, self.lm_head)

    return GPT()


# ---------------------------------------------------------------------------------------------
# The gate and the step, for any contender


def make_step(engine: str, name: str, data: Dict[str, Any], samples: int = 0) -> Any:
    if engine.startswith("torch"):
        return TorchStep(name, data, samples)
    return value_step(engine, name, data, samples)


def gate(engine: str, gate_name: str, data: Dict[str, Any], seconds: Optional[List[float]] = None) -> List[float]:
    """The loss and every gradient of two training steps in a row (the second after the first's
    update, so a replay is checked too), on the gate's smaller instance of the workload.
    ``seconds`` gets the time of each: setting up and the first step, then the second step."""
    name = gate_workload(gate_name)
    start = time.perf_counter()
    step = make_step(engine, name, data, TOY[name].gate_samples)
    out: List[float] = []
    for _ in range(2):
        loss = step.step()
        out += [loss] + step.grads()
        if seconds is not None:
            seconds.append(time.perf_counter() - start)
            start = time.perf_counter()
    return out


def estimate(name: str, data: Dict[str, Any], gate_seconds: Sequence[float], rounds: int) -> tuple:
    """(seconds a step, seconds for setting up and ``rounds`` steps) of a workload, scaled up
    from its gate's (setting up with the first step, then a step): the graph grows with the
    points, so does the time. Rough (a tape's capture and a big graph's memory scale worse)."""
    first, step = (t * gate_scale(name, data) for t in gate_seconds)
    return step, first + (rounds - 1) * step


def gate_scale(name: str, data: Dict[str, Any]) -> float:
    """How many times the workload's data the gate's is (to estimate a step from the gate)."""
    toy = TOY[name]
    if not toy.gate_samples:
        return 1.0
    return len(batch(toy, data[toy.family])[0]) / len(batch(toy, data[toy.family], toy.gate_samples)[0])
