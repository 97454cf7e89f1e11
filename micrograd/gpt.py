"""A microgpt-style GPT made of scalar Values: the model of ``examples/microgpt.py``, here in
the package so that the example and ``micrograd bench`` (its ``gpt-16`` workload) run the same
code.

After Andrej Karpathy's microgpt (February 2026: the gist karpathy/8627fe009c40f57531cb18360106ce95,
and the post https://karpathy.github.io/2026/02/12/microgpt/): a character-level GPT (token and
position embeddings, RMSNorm, causal multi-head attention, a ReLU MLP, residual connections, no
biases), trained one document (name) at a time with Adam.

    GPT(vocab_size, Config(), seed, engine)   the model, its weights drawn from random.Random(seed)
    name_loss(model, tokens)                  the eager loss of one document: a graph as long as it
    Window, window_loss, capture              one graph for every document: one-hot leaf tokens and
                                              a mask, so a single micrograd.Tape replays them all
    adam(model, lr)                           microgpt's Adam settings (micrograd.optim.Adam)

Where it differs from Karpathy's code (see examples/microgpt.py): softmax does not subtract the
largest logit (a tape would freeze that number at capture), a position's loss is
``logsumexp(z) - z[t]``, and Adam is ``micrograd.optim.Adam``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, List, Sequence

import micrograd
from micrograd.engine import ENGINES
from micrograd.nn import Module
from micrograd.optim import Adam

# -- the model --------------------------------------------------------------------------------
@dataclass
class Config:
    n_embd: int = 16
    n_head: int = 4
    n_layer: int = 1
    block_size: int = 16  # the longest context (positions) the model has embeddings for
    init_std: float = 0.08


class Linear(Module):
    """``y = W x`` without bias, as every matrix in microgpt: ``nout`` rows of ``nin`` weights."""

    def __init__(self, nin: int, nout: int, value: type, rng: random.Random, std: float) -> None:
        self.w = [[value(rng.gauss(0.0, std)) for _ in range(nin)] for _ in range(nout)]

    def __call__(self, x: Sequence[Any]) -> List[Any]:
        return [sum(wi * xi for wi, xi in zip(row, x)) for row in self.w]

    def parameters(self) -> List[Any]:
        return [p for row in self.w for p in row]


class Embedding(Module):
    """A table of ``n`` rows of ``dim`` weights. ``row(i)`` looks a row up by index (eager);
    ``mix(onehot)`` computes the same row as ``sum(onehot[i] * row_i)``, which a tape can replay
    for any token: the token is then data in leaf Values, not a Python index frozen at capture."""

    def __init__(self, n: int, dim: int, value: type, rng: random.Random, std: float) -> None:
        self.w = [[value(rng.gauss(0.0, std)) for _ in range(dim)] for _ in range(n)]

    def row(self, i: int) -> List[Any]:
        return self.w[i]

    def mix(self, onehot: Sequence[Any]) -> List[Any]:
        return [sum(o * row[j] for o, row in zip(onehot, self.w)) for j in range(len(self.w[0]))]

    def parameters(self) -> List[Any]:
        return [p for row in self.w for p in row]


def rmsnorm(x: Sequence[Any]) -> List[Any]:
    """x / sqrt(mean(x**2) + 1e-5): each vector rescaled to about unit size."""
    ms = sum(xi * xi for xi in x) / len(x)
    scale = (ms + 1e-5) ** -0.5
    return [xi * scale for xi in x]


def softmax(z: Sequence[Any]) -> List[Any]:
    """exp(z) / sum(exp(z)), without the usual max-shift (see the module's docstring)."""
    exps = [zi.exp() for zi in z]
    total = sum(exps)
    return [e / total for e in exps]


def logsumexp(z: Sequence[Any]) -> Any:
    return sum(zi.exp() for zi in z).log()


class Block(Module):
    """One transformer block: causal multi-head self-attention, then a ReLU MLP, each with
    RMSNorm before it and a residual connection around it."""

    def __init__(self, cfg: Config, value: type, rng: random.Random) -> None:
        d, std = cfg.n_embd, cfg.init_std
        self.n_head = cfg.n_head
        self.wq, self.wk, self.wv, self.wo = (Linear(d, d, value, rng, std) for _ in range(4))
        self.fc1 = Linear(d, 4 * d, value, rng, std)
        self.fc2 = Linear(4 * d, d, value, rng, std)

    def __call__(self, x: List[Any], keys: List[List[Any]], values: List[List[Any]]) -> List[Any]:
        """x at the next position; keys and values of the positions before it (the KV cache),
        to which this position's are appended."""
        residual = x
        x = rmsnorm(x)
        q = self.wq(x)
        keys.append(self.wk(x))
        values.append(self.wv(x))
        head_dim = len(q) // self.n_head
        heads: List[Any] = []
        for h in range(0, len(q), head_dim):
            qh = q[h:h + head_dim]
            scores = [sum(qi * ki for qi, ki in zip(qh, k[h:h + head_dim])) / head_dim**0.5 for k in keys]
            weights = softmax(scores)
            heads += [sum(w * v[j] for w, v in zip(weights, values)) for j in range(h, h + head_dim)]
        x = [a + b for a, b in zip(self.wo(heads), residual)]
        residual = x
        x = self.fc2([hi.relu() for hi in self.fc1(rmsnorm(x))])
        return [a + b for a, b in zip(x, residual)]

    def parameters(self) -> List[Any]:
        return [p for m in (self.wq, self.wk, self.wv, self.wo, self.fc1, self.fc2) for p in m.parameters()]


class GPT(Module):
    """The whole model, its weights drawn from N(0, init_std) with ``random.Random(seed)``, as
    Values of ``engine``: 'cython', 'python', a Value class, or None for the active engine."""

    def __init__(self, vocab_size: int, cfg: Config = Config(), seed: int = 42, engine: Any = None) -> None:
        self.cfg = cfg
        self.Value = ENGINES[engine] if isinstance(engine, str) else engine or micrograd.Value
        rng, value, d = random.Random(seed), self.Value, cfg.n_embd
        self.wte = Embedding(vocab_size, d, value, rng, cfg.init_std)
        self.wpe = Embedding(cfg.block_size, d, value, rng, cfg.init_std)
        self.lm_head = Linear(d, vocab_size, value, rng, cfg.init_std)
        self.blocks = [Block(cfg, value, rng) for _ in range(cfg.n_layer)]

    def __call__(self, token: List[Any], pos: int, cache: List[tuple]) -> List[Any]:
        """The logits of the token after this one, given this token's embedding, its position
        and the KV cache of the positions before (one (keys, values) per block)."""
        x = rmsnorm([t + p for t, p in zip(token, self.wpe.row(pos))])
        for block, (keys, values) in zip(self.blocks, cache):
            x = block(x, keys, values)
        return self.lm_head(x)

    def new_cache(self) -> List[tuple]:
        return [([], []) for _ in self.blocks]

    def parameters(self) -> List[Any]:
        mods = [self.wte, self.wpe, self.lm_head, *self.blocks]
        return [p for m in mods for p in m.parameters()]


# -- the loss of one name -----------------------------------------------------------------------
def name_loss(model: GPT, tokens: Sequence[int]) -> Any:
    """Mean cross-entropy of predicting each next token of one name (truncated to the block),
    the tokens looked up by index: the eager way, a graph as long as the name."""
    n = min(model.cfg.block_size, len(tokens) - 1)
    cache = model.new_cache()
    terms = []
    for pos in range(n):
        logits = model(model.wte.row(tokens[pos]), pos, cache)
        terms.append(logsumexp(logits) - logits[tokens[pos + 1]])
    return sum(terms) * (1.0 / n)


class Window:
    """The leaf Values a tape reads one name from: for each of ``size`` positions a one-hot
    input token, a one-hot target token and a mask (1 on the name, 0 on the padding after it),
    and ``inv_n``, 1 / the number of positions that count."""

    def __init__(self, value: type, vocab_size: int, size: int) -> None:
        self.size = size
        self.inputs = [[value(0.0) for _ in range(vocab_size)] for _ in range(size)]
        self.targets = [[value(0.0) for _ in range(vocab_size)] for _ in range(size)]
        self.mask = [value(0.0) for _ in range(size)]
        self.inv_n = value(1.0)
        self._hot: List[Any] = []  # the leaves set to 1 by the last load

    def load(self, tokens: Sequence[int]) -> None:
        """Write one name into the leaves (its tokens truncated to the window)."""
        for leaf in self._hot:
            leaf.data = 0.0
        n = min(self.size, len(tokens) - 1)
        self._hot = [self.inputs[p][tokens[p]] for p in range(n)]
        self._hot += [self.targets[p][tokens[p + 1]] for p in range(n)]
        self._hot += self.mask[:n]
        for leaf in self._hot:
            leaf.data = 1.0
        self.inv_n.data = 1.0 / n


def window_loss(model: GPT, w: Window) -> Any:
    """``name_loss`` written over a Window's leaves, so one graph fits every name: the same
    formulas, and on the positions of the name the same numbers (a one-hot sum adds only exact
    zeros to the picked term, and the masked padding adds zeros to the loss)."""
    cache = model.new_cache()
    terms = []
    for pos in range(w.size):
        logits = model(model.wte.mix(w.inputs[pos]), pos, cache)
        picked = sum(t * z for t, z in zip(w.targets[pos], logits))
        terms.append(w.mask[pos] * (logsumexp(logits) - picked))
    return sum(terms) * w.inv_n


# -- training helpers -------------------------------------------------------------------------
def adam(model: GPT, lr: float) -> Adam:
    """Adam with microgpt's settings (beta1 0.85, beta2 0.99); PyTorch's update formula."""
    return Adam(model.parameters(), lr=lr, betas=(0.85, 0.99), eps=1e-8)



def capture(model: GPT, size: int) -> tuple:
    """(tape, window): the graph of ``window_loss`` built once and recorded; backward writes
    the parameters' grads (the window's leaves, loaded each step, need none)."""
    window = Window(model.Value, len(model.wte.w), size)
    return micrograd.Tape(window_loss(model, window), params=model.parameters()), window


def window_size(docs: Sequence[List[int]], cfg: Config) -> int:
    """Positions a tape needs: the longest name's, at most the block size."""
    return min(cfg.block_size, max(len(t) for t in docs) - 1)
